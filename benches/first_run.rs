//! A new user's first run: `cargo build` from nothing, then the first
//! `cargo dyndev build`, then `cargo build` again, in one target dir, with
//! the time and disk each takes and what each compiled.
//!
//! ```text
//! cargo bench --bench first-run -- --manifest-path PATH [--dyndev-cold]
//! ```
//!
//! dyndev shares cargo's build dir with the user's builds, so its first
//! build should compile the workspace's own crates and link the bundle,
//! and no dependency; plain cargo afterwards should compile nothing. The
//! target dir is `<target-dir>/dyndev-first-run` of this repository,
//! emptied first. `--dyndev-cold` also times a first `cargo dyndev build`
//! from nothing in a second target dir, for the cost dyndev adds to a cold
//! start.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

struct Options {
    manifest: PathBuf,
    dyndev_cold: bool,
}

fn usage() -> ! {
    eprintln!("usage: cargo bench --bench first-run -- --manifest-path PATH [--dyndev-cold]");
    std::process::exit(2)
}

fn options() -> Options {
    let mut manifest = None;
    let mut dyndev_cold = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--manifest-path" => manifest = Some(args.next().unwrap_or_else(|| usage()).into()),
            "--dyndev-cold" => dyndev_cold = true,
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            _ => usage(),
        }
    }
    Options {
        manifest: manifest.unwrap_or_else(|| usage()),
        dyndev_cold,
    }
}

/// One timed build: its wall time and the packages it compiled (each once,
/// though a dyndev build's planning and final passes both name members).
struct Build {
    seconds: f64,
    compiled: BTreeSet<String>,
}

fn build(mut cmd: Command, what: &str) -> Build {
    eprintln!("     Running {what}");
    let start = Instant::now();
    let out = cmd
        .env("CARGO_TERM_COLOR", "never")
        .output()
        .unwrap_or_else(|e| panic!("failed to run {what}: {e}"));
    let seconds = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        eprintln!("{stderr}");
        panic!("{what} failed");
    }
    let compiled = stderr
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("Compiling "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    Build { seconds, compiled }
}

fn cargo_build(manifest: &Path, target: &Path) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(target)
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    cmd
}

fn dyndev_build(manifest: &Path, target: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-dyndev"));
    cmd.args(["dyndev", "build", "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target)
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    cmd
}

/// Bytes under `dir`, each file once however many links it has.
fn disk(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = BTreeSet::new();
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file() && seen.insert((m.dev(), m.ino())))
        .map(|m| m.blocks() * 512)
        .sum()
}

/// Bytes of the bundle's shared libraries dyndev linked under `target`.
fn bundle(target: &Path) -> u64 {
    walkdir::WalkDir::new(target.join("dyndev"))
        .into_iter()
        .flatten()
        .filter(|e| {
            e.path().parent().is_some_and(|p| p.ends_with("lib"))
                && e.file_name().to_string_lossy().starts_with("libdyndev_")
        })
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn main() {
    let o = options();
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(&o.manifest)
        .no_deps()
        .exec()
        .expect("cargo metadata");
    let members: BTreeSet<String> = metadata
        .workspace_packages()
        .iter()
        .map(|p| p.name.to_string())
        .collect();
    let dependencies = |b: &Build| b.compiled.iter().filter(|c| !members.contains(*c)).count();
    let members_compiled = |b: &Build| b.compiled.iter().filter(|c| members.contains(*c)).count();

    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    let target = here.join("dyndev-first-run");
    let _ = std::fs::remove_dir_all(&target);

    let cold = build(
        cargo_build(&o.manifest, &target),
        "`cargo build` from nothing",
    );
    let after_cargo = disk(&target);
    let first = build(
        dyndev_build(&o.manifest, &target),
        "the first `cargo dyndev build`",
    );
    let after_dyndev = disk(&target);
    let again = build(cargo_build(&o.manifest, &target), "`cargo build` again");
    let dyndev_cold = o.dyndev_cold.then(|| {
        let other = here.join("dyndev-first-run-cold");
        let _ = std::fs::remove_dir_all(&other);
        let b = build(
            dyndev_build(&o.manifest, &other),
            "`cargo dyndev build` from nothing",
        );
        let _ = std::fs::remove_dir_all(&other);
        b
    });

    let added = after_dyndev.saturating_sub(after_cargo);
    let bundle = bundle(&target);
    println!("first run on {}", o.manifest.display());
    println!(
        "  cargo build, from nothing      {:>8.1} s   {:>5} dependencies, {} members compiled   disk {}",
        cold.seconds,
        dependencies(&cold),
        members_compiled(&cold),
        mib(after_cargo)
    );
    println!(
        "  cargo dyndev build, first      {:>8.1} s   {:>5} dependencies, {} members compiled   disk +{} (bundle {}, the rest {})",
        first.seconds,
        dependencies(&first),
        members_compiled(&first),
        mib(added),
        mib(bundle),
        mib(added.saturating_sub(bundle))
    );
    println!(
        "  cargo build, again             {:>8.1} s   {:>5} dependencies, {} members compiled",
        again.seconds,
        dependencies(&again),
        members_compiled(&again)
    );
    if let Some(b) = dyndev_cold {
        println!(
            "  cargo dyndev build, from nothing {:>6.1} s   {:>5} dependencies, {} members compiled",
            b.seconds,
            dependencies(&b),
            members_compiled(&b)
        );
    }
    println!(
        "  first dyndev build: {:.1}% of the cold cargo build",
        100.0 * first.seconds / cold.seconds.max(0.001)
    );
}
