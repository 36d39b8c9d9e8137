//! The differential checker on any workspace: long sequences of generated
//! edits, and after each one what plain cargo and `cargo dyndev` make of
//! the workspace, compared (see `tests/differential/checker.rs`).
//!
//! ```text
//! cargo bench --bench differential -- --manifest-path PATH [--edits N]
//!     [--seed N] [--package NAME]... [--run BIN] [--cargo-arg ARG]...
//!     [--timeout SECS]
//! ```
//!
//! The workspace is copied under `<target-dir>/dyndev-differential` (the
//! user's files are never touched), with a target dir for each side, so a
//! first run compiles everything twice. By default it compares each test's
//! result and the panic locations failures print, under `cargo test
//! --workspace` (or the `--cargo-arg`s given instead); `--run BIN` compares
//! a program's output and exit code.
//! Edits are drawn from the sources of `--package`s (all members by
//! default). Exit code 1 when a mismatch is found: its edits are printed,
//! in order, to replay it. A side that has not ended after `--timeout`
//! seconds (default 600: an edit can make a test loop for ever) is ended
//! with everything it started; both ending so counts as agreeing, and the
//! edit is taken back, as one that fails to build on both sides is. A
//! difference before any edit stops the run there.

#[path = "../tests/differential/checker.rs"]
mod checker;

use std::path::PathBuf;

fn usage() -> ! {
    eprintln!(
        "usage: cargo bench --bench differential -- --manifest-path PATH [--edits N] [--seed N] \
         [--package NAME]... [--run BIN] [--cargo-arg ARG]... [--timeout SECS]"
    );
    std::process::exit(2)
}

fn main() {
    let mut manifest: Option<PathBuf> = None;
    let mut edits = 50;
    let mut seed = 1;
    let mut timeout = 600;
    let mut packages = Vec::new();
    let mut compare = checker::Compare::Tests(vec!["--workspace".into()]);
    let mut cargo_args: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--manifest-path" => manifest = args.next().map(PathBuf::from),
            "--edits" => {
                edits = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--seed" => {
                seed = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--timeout" => {
                timeout = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--package" | "-p" => packages.push(args.next().unwrap_or_else(|| usage())),
            "--run" => {
                let bin = args.next().unwrap_or_else(|| usage());
                compare = checker::Compare::Programs(vec![(bin, Vec::new())]);
            }
            "--cargo-arg" => cargo_args.push(args.next().unwrap_or_else(|| usage())),
            // `cargo bench` passes this to harness-less benches.
            "--bench" => {}
            _ => usage(),
        }
    }
    let Some(manifest) = manifest else { usage() };
    if !cargo_args.is_empty()
        && let checker::Compare::Tests(args) = &mut compare
    {
        *args = cargo_args;
    }
    let workspace = manifest
        .canonicalize()
        .unwrap_or(manifest)
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let name = workspace
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let scratch = target.join("dyndev-differential").join(name);
    let dyndev = PathBuf::from(env!("CARGO_BIN_EXE_cargo-dyndev"));
    let opts = checker::Options {
        workspace,
        scratch,
        dyndev,
        edits,
        seed,
        compare,
        packages,
        verbose: true,
        timeout: std::time::Duration::from_secs(timeout),
    };
    let started = std::time::Instant::now();
    match checker::run(&opts) {
        Ok(report) => {
            eprintln!("\n{}", checker::describe(&report));
            for (kind, n) in checker::kinds(&report) {
                eprintln!("{n:>5}  {kind}");
            }
            eprintln!("in {:.0} s", started.elapsed().as_secs_f64());
            std::process::exit(if report.mismatches.is_empty() { 0 } else { 1 });
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
