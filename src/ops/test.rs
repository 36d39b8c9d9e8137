//! `cargo dyndev test`: build the test targets against the bundle with
//! `cargo test --no-run` (and what the doctests need with `cargo test
//! --doc`, their commands recorded), then run the test binaries it made
//! and the doctests as `cargo test` would. Every test binary binds to the
//! bundle instead of linking each dependency again, and sees the
//! environment plain `cargo test` gives it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cargo_metadata::TargetKind;

use crate::cli::TestArgs;
use crate::doctest;
use crate::error::{Failure, code};
use crate::ops::build::{BuildRequest, DoctestBuild, Outcome, build};
use crate::shell::Shell;
use crate::test_binaries::{self, RunOptions};
use crate::workspace::Workspace;

pub fn exec(shell: &Shell, args: &TestArgs) -> Result<()> {
    let ws = Workspace::load(shell, &args.compile)?;
    // Package, feature and build options: what every cargo run here gets.
    let mut common = Vec::new();
    args.packages.push_cargo_args(&mut common);
    args.features.push_cargo_args(&mut common);
    args.compile.push_build_args(&mut common);
    args.global.push_cargo_args(&mut common);
    let mut selection = Vec::new();
    args.push_target_args(&mut selection);
    if args.doc && !selection.is_empty() {
        return Err(Failure::Selection(
            "can't mix --doc with other target selecting options".into(),
        )
        .into());
    }
    // `cargo test --doc --no-run` is refused; what doctests use is the
    // library and the dev-dependencies, which its unit tests use too.
    if args.doc && args.no_run {
        return Err(Failure::Selection("can't skip running doc tests with --no-run".into()).into());
    }
    // A test name without targets selects what cargo then selects: the
    // library's and the integration tests, no doctests.
    let build_selection: Vec<String> = selection
        .iter()
        .cloned()
        .chain(args.filter.clone())
        .collect();
    let cwd = std::env::current_dir().context("failed to read the working directory")?;
    let config = load_config(&cwd)?;
    let mut req = BuildRequest::new(
        shell,
        &ws,
        "test",
        build_selection
            .iter()
            .chain(&common)
            .cloned()
            .chain(["--no-run".into()])
            .collect(),
        &args.features,
        &args.compile,
    );
    // Doctests run when asked for, or when neither a target nor a test
    // name was given; their units are built with the rest.
    // `--doc` runs every selected library's doctests, as cargo does,
    // `doctest = false` or not; otherwise only those of libraries with
    // doctests.
    let documented = documented(&ws, args)?;
    let doctests = !args.no_run
        && (args.doc || (selection.is_empty() && args.filter.is_none() && !documented.is_empty()));
    if doctests {
        req.doctests = Some(DoctestBuild {
            args: common.clone(),
            test_args: args
                .filter
                .iter()
                .map(OsString::from)
                .chain(args.args.iter().cloned())
                .collect(),
            only: args.doc,
            rustdoc: doctest::real_rustdoc(Some(&config)),
        });
    }
    let outcome = build(&req)?;
    let mut binaries = test_binaries::from_artifacts(&outcome.artifacts, &ws.metadata.packages);
    if !ws.build_dir_configured {
        for b in &mut binaries {
            b.exe = test_binaries::beside_programs(&b.exe, &req.layout)?;
        }
    }
    if args.no_run {
        for b in &binaries {
            shell.status("Executable", b.display(&cwd));
        }
        return Ok(());
    }

    let mut test_args: Vec<OsString> = args.filter.iter().map(OsString::from).collect();
    test_args.extend(args.args.iter().cloned());
    let with_package = needs_package_flag(&ws, args);
    let opts = RunOptions {
        shell,
        cwd: &cwd,
        test_args: &test_args,
        no_fail_fast: args.no_fail_fast,
        runner: runner(&config)?,
        with_package,
    };
    let mut failed = Vec::new();
    if !args.doc {
        let sysroot_lib = toolchain_libdir(&outcome);
        let ran = test_binaries::run(&binaries, &opts, |bin| {
            let env = crate::program_env::cargo_env(
                &bin.package,
                &outcome.build_scripts,
                &req.layout,
                sysroot_lib.as_deref(),
            );
            crate::program_env::with_config_env(env, &cwd, &args.compile.config)
        })?;
        match ran {
            test_binaries::Outcome::Stopped(code) => {
                return Err(Failure::Cargo { code }.into());
            }
            test_binaries::Outcome::Ran(f) => failed = f,
        }
    }
    if doctests {
        let rustdoc = doctest::real_rustdoc(Some(&config));
        let mut recorded = outcome.doctests.clone();
        if !args.doc {
            recorded
                .recorded
                .retain(|r| documented.iter().any(|p| p == r.package()));
        }
        let ran = doctest::run(
            &recorded,
            &opts,
            &rustdoc,
            shell.color().as_str(),
            outcome.bundle.as_ref(),
        )?;
        match ran {
            test_binaries::Outcome::Stopped(code) => {
                return Err(Failure::Cargo { code }.into());
            }
            test_binaries::Outcome::Ran(f) => failed.extend(f),
        }
    }
    match test_binaries::failed_targets_message(&failed) {
        None => Ok(()),
        Some(message) => {
            shell.error(message);
            Err(Failure::Cargo { code: code::CARGO }.into())
        }
    }
}

/// rustc's `target-libdir`, where `libstd-*.so` lives: cargo puts it on
/// the tests' library path.
fn toolchain_libdir(outcome: &Outcome) -> Option<PathBuf> {
    outcome.bundle.as_ref().map(|b| b.sysroot_lib.clone())
}

/// Whether cargo names the package in its rerun hints: when the
/// selection may hold more than one.
fn needs_package_flag(ws: &Workspace, args: &TestArgs) -> bool {
    let p = &args.packages;
    if !p.packages.is_empty() || !p.exclude.is_empty() {
        return true;
    }
    if p.workspace {
        return ws.members().count() > 1;
    }
    let defaults = &ws.metadata.workspace_default_members;
    if defaults.is_available() {
        defaults.len() > 1
    } else {
        ws.metadata.root_package().is_none() && ws.members().count() > 1
    }
}

/// Cargo's configuration as cargo reads it from `cwd`, with rustc's host
/// (`rustc -vV`, milliseconds): left to find the host itself,
/// cargo-config2 asks `cargo -vV`, which also runs `lsb_release` and cost
/// about 0.2 s of each test loop, twice.
fn load_config(cwd: &Path) -> Result<cargo_config2::Config> {
    let host = crate::cargo::host_triple(&crate::cargo::rustc_program())?;
    cargo_config2::Config::load_with_options(
        cwd,
        cargo_config2::ResolveOptions::default().host_triple(host),
    )
    .context("failed to read cargo's configuration")
}

/// `target.<host>.runner` (or a matching `target.<cfg>.runner`).
fn runner(config: &cargo_config2::Config) -> Result<Option<(PathBuf, Vec<OsString>)>> {
    let host = config
        .host_triple()
        .context("failed to learn rustc's host")?
        .to_owned();
    Ok(config
        .runner(host.as_str())
        .context("failed to read `target.runner` from cargo's configuration")?
        .map(|r| (r.path, r.args)))
}

/// The selected packages whose library has doctests (`doctest = true`,
/// the default), by name: those `cargo test` runs doctests of.
fn documented(ws: &Workspace, args: &TestArgs) -> Result<Vec<String>> {
    Ok(ws
        .select(&args.packages)?
        .into_iter()
        .filter(|p| {
            p.targets.iter().any(|t| {
                t.doctest
                    && t.kind.iter().any(|k| {
                        matches!(
                            k,
                            TargetKind::Lib
                                | TargetKind::RLib
                                | TargetKind::DyLib
                                | TargetKind::ProcMacro
                        )
                    })
            })
        })
        .map(|p| p.name.to_string())
        .collect())
}
