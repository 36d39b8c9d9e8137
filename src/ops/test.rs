//! `cargo dyndev test`: build the test targets against the bundle, then
//! become `cargo test` in the same wrapped environment, so cargo finds
//! every unit fresh and only runs the tests. Every test binary then binds
//! to the bundle instead of linking each dependency again.

use anyhow::Result;

use crate::cli::TestArgs;
use crate::ops::build::{BuildRequest, build, wrapped_cargo};
use crate::shell::Shell;
use crate::workspace::Workspace;
use crate::wrapper::env;

pub fn exec(shell: &Shell, args: &TestArgs) -> Result<()> {
    let ws = Workspace::load(shell, &args.compile)?;
    let mut selection = Vec::new();
    args.packages.push_cargo_args(&mut selection);
    args.targets.push_cargo_args(&mut selection);
    for t in &args.tests {
        selection.push(if t.is_empty() {
            "--test".to_owned()
        } else {
            format!("--test={t}")
        });
    }
    if args.all_tests {
        selection.push("--tests".into());
    }
    args.features.push_cargo_args(&mut selection);
    args.compile.push_build_args(&mut selection);
    args.global.push_cargo_args(&mut selection);

    let req = BuildRequest::new(
        shell,
        &ws,
        "test",
        selection
            .iter()
            .cloned()
            .chain(["--no-run".into()])
            .collect(),
        &args.features,
        &args.compile,
    );
    // Doctests alone build nothing with rustc (and cargo refuses
    // `--doc --no-run`); the library they use is built by `cargo test`.
    let outcome = if args.doc { None } else { Some(build(&req)?) };
    if args.no_run {
        return Ok(());
    }

    let bundle = outcome
        .and_then(|o| o.bundle)
        .or(crate::state::BundleState::load(&req.layout)?);
    let bundle_env = bundle.as_ref().map_or(env::NONE, |b| b.id.as_str());
    let mut cmd = wrapped_cargo(&req, "test", bundle_env, "test")?;
    cmd.args(&selection);
    if args.doc {
        cmd.arg("--doc");
    }
    if args.no_fail_fast {
        cmd.arg("--no-fail-fast");
    }
    if let Some(filter) = &args.filter {
        cmd.arg(filter);
    }
    if !args.args.is_empty() {
        cmd.arg("--").args(&args.args);
    }
    // rustdoc is not wrapped: doctests link the members' libraries, which
    // use the bundle, so rustdoc needs to find it and link as the wrapper
    // would.
    if let Some(b) = &bundle {
        let mut flags: Vec<String> = match std::env::var("CARGO_ENCODED_RUSTDOCFLAGS") {
            Ok(f) if !f.is_empty() => f.split('\u{1f}').map(str::to_owned).collect(),
            _ => std::env::var("RUSTDOCFLAGS")
                .map(|f| f.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
        };
        flags.extend([
            "-L".into(),
            format!("dependency={}", b.dir.display()),
            "-C".into(),
            "prefer-dynamic".into(),
        ]);
        for dir in [&b.dir, &b.sysroot_lib] {
            flags.extend([
                "-C".into(),
                format!("link-arg=-Wl,-rpath,{}", dir.display()),
            ]);
        }
        cmd.env("CARGO_ENCODED_RUSTDOCFLAGS", flags.join("\u{1f}"))
            .env_remove("RUSTDOCFLAGS");
    }
    cmd.exec_replace(shell)
}
