//! Running the test binaries a build made, as `cargo test` runs them: in
//! cargo's order, announced in cargo's words, each in the environment
//! cargo gives it (and nothing of dyndev's), with cargo's reports of
//! failures and cargo's exit codes.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use anyhow::{Context, Result};
use cargo_metadata::{Artifact, Package, TargetKind};
use toml_edit::{DocumentMut, Item};

use crate::shell::{Shell, Verbosity};

/// Kinds of targets in cargo's order: a package's library runs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Lib,
    Bin,
    Test,
    Bench,
    Example,
}

impl Kind {
    fn of(kinds: &[TargetKind]) -> Kind {
        let has = |k: TargetKind| kinds.contains(&k);
        if has(TargetKind::Test) {
            Kind::Test
        } else if has(TargetKind::Bench) {
            Kind::Bench
        } else if has(TargetKind::Bin) {
            Kind::Bin
        } else if has(TargetKind::Example) {
            Kind::Example
        } else {
            Kind::Lib
        }
    }

    /// The manifest's table for targets of this kind.
    fn table(self) -> &'static str {
        match self {
            Kind::Lib => "lib",
            Kind::Bin => "bin",
            Kind::Test => "test",
            Kind::Bench => "bench",
            Kind::Example => "example",
        }
    }
}

/// One test binary to run.
#[derive(Debug, Clone)]
pub struct TestBinary {
    pub package: Package,
    pub kind: Kind,
    pub target: String,
    /// The target's root source file.
    pub src_path: PathBuf,
    pub exe: PathBuf,
    /// Whether it uses libtest (`harness = true`, the default).
    pub harness: bool,
}

impl TestBinary {
    /// `unittests src/lib.rs (target/...)` or `tests/it.rs (target/...)`,
    /// as cargo announces a binary, paths relative to the package and to
    /// the working directory.
    pub fn display(&self, cwd: &Path) -> String {
        let root = self.package_root();
        let src = self.src_path.strip_prefix(root).unwrap_or(&self.src_path);
        let exe = self.exe.strip_prefix(cwd).unwrap_or(&self.exe);
        match self.kind {
            Kind::Test | Kind::Bench => format!("{} ({})", src.display(), exe.display()),
            _ => format!("unittests {} ({})", src.display(), exe.display()),
        }
    }

    pub fn package_root(&self) -> &Path {
        let manifest = self.package.manifest_path.as_std_path();
        manifest.parent().unwrap_or(manifest)
    }

    /// What to pass cargo to run this binary again: `--lib`,
    /// `--test NAME`, with `-p NAME` in front when the selection needs it.
    pub fn rerun_args(&self, with_package: bool) -> String {
        let mut args = if with_package {
            format!("-p {} ", self.package.name)
        } else {
            String::new()
        };
        match self.kind {
            Kind::Lib => args.push_str("--lib"),
            other => args.push_str(&format!("--{} {}", other.table(), self.target)),
        }
        args
    }
}

/// The test binaries among a build's artifacts (units built in test
/// mode), in the order `cargo test` runs them: by package, then target
/// kind, then name.
pub fn from_artifacts(artifacts: &[Artifact], packages: &[Package]) -> Vec<TestBinary> {
    let mut out: Vec<TestBinary> = artifacts
        .iter()
        .filter(|a| a.profile.test)
        .filter_map(|a| {
            let exe = a.executable.as_ref()?.clone().into_std_path_buf();
            let package = packages.iter().find(|p| p.id == a.package_id)?.clone();
            let kind = Kind::of(&a.target.kind);
            let harness = harness(&package, kind, &a.target.name);
            Some(TestBinary {
                package,
                kind,
                target: a.target.name.clone(),
                src_path: a.target.src_path.clone().into_std_path_buf(),
                exe,
                harness,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        (
            &a.package.name,
            &a.package.version,
            &a.package.id,
            a.kind,
            &a.target,
        )
            .cmp(&(
                &b.package.name,
                &b.package.version,
                &b.package.id,
                b.kind,
                &b.target,
            ))
    });
    out
}

/// Where a test binary runs from, as under `cargo test`: beside the
/// programs of the same build. Cargo runs test binaries from
/// `<target-dir>/debug/deps`, and tests find the package's programs from
/// there (`current_exe()` then `../name`, as ripgrep's do). dyndev's units
/// are built in the build dir it shares with the user's builds, whose
/// `debug/` holds the user's static programs (absent, or older than the
/// code under test), while dyndev's programs are in
/// `<target-dir>/dyndev/debug`. So the binary runs from a hard link (a
/// copy across file systems) in `<target-dir>/dyndev/debug/deps`, made
/// again when the build dir's file is new. A build dir the user configured
/// is left as it is: cargo runs the binaries from there too.
pub fn beside_programs(exe: &Path, layout: &crate::layout::Layout) -> Result<PathBuf> {
    let deps = layout.profile_dir.join("deps");
    let (Some(name), Some(dir)) = (exe.file_name(), exe.parent()) else {
        return Ok(exe.to_owned());
    };
    if crate::fs::same_dir(dir, &deps) {
        return Ok(exe.to_owned());
    }
    let to = deps.join(name);
    if crate::fs::same_inode(exe, &to) {
        return Ok(to);
    }
    crate::fs::create_dir_all(&deps)?;
    let tmp = deps.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let placed = std::fs::hard_link(exe, &tmp)
        .or_else(|_| std::fs::copy(exe, &tmp).map(drop))
        .and_then(|()| std::fs::rename(&tmp, &to));
    if placed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    placed.with_context(|| {
        format!(
            "failed to place `{}` in `{}`",
            exe.display(),
            deps.display()
        )
    })?;
    Ok(to)
}

/// Whether the target uses libtest, from `harness` in its manifest table.
fn harness(package: &Package, kind: Kind, name: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(&package.manifest_path) else {
        return true;
    };
    let Ok(doc) = text.parse::<DocumentMut>() else {
        return true;
    };
    let table = match doc.get(kind.table()) {
        Some(Item::Table(t)) if kind == Kind::Lib => Some(t.clone()),
        Some(Item::ArrayOfTables(a)) => a
            .iter()
            .find(|t| t.get("name").and_then(Item::as_str) == Some(name))
            .cloned(),
        _ => None,
    };
    table
        .and_then(|t| t.get("harness").and_then(Item::as_bool))
        .unwrap_or(true)
}

/// How to run the binaries.
#[derive(Debug)]
pub struct RunOptions<'a> {
    pub shell: &'a Shell,
    pub cwd: &'a Path,
    /// The test name filter, then the arguments after `--`.
    pub test_args: &'a [OsString],
    pub no_fail_fast: bool,
    /// `target.<triple>.runner`: the program and its arguments.
    pub runner: Option<(PathBuf, Vec<OsString>)>,
    /// Whether cargo would print `-p NAME` in a rerun hint.
    pub with_package: bool,
}

/// What the binaries' run came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// All ran; these failed (only with `--no-fail-fast`), by rerun hint.
    Ran(Vec<String>),
    /// One failed and the run stopped: exit with this code.
    Stopped(i32),
}

/// Runs each binary with the environment `env_of` gives it, reporting
/// failures as cargo does.
pub fn run(
    binaries: &[TestBinary],
    opts: &RunOptions<'_>,
    env_of: impl Fn(&TestBinary) -> Result<Vec<(String, OsString)>>,
) -> Result<Outcome> {
    let mut failed = Vec::new();
    for bin in binaries {
        let mut cmd = match &opts.runner {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&bin.exe);
                c
            }
            None => Command::new(&bin.exe),
        };
        cmd.args(opts.test_args);
        if bin.harness && opts.shell.verbosity() == Verbosity::Quiet {
            cmd.arg("--quiet");
        }
        cmd.envs(env_of(bin)?).current_dir(bin.package_root());
        let shown = show_command(&cmd);
        if opts.shell.verbosity() >= Verbosity::Verbose {
            opts.shell.status("Running", format_args!("`{shown}`"));
        } else {
            opts.shell.status("Running", bin.display(opts.cwd));
        }
        let status = cmd
            .status()
            .with_context(|| format!("could not execute process `{shown}`"))?;
        if status.success() {
            continue;
        }
        let hint = bin.rerun_args(opts.with_package);
        let which = if bin.kind == Kind::Bench {
            "bench failed"
        } else {
            "test failed"
        };
        report_failure(opts, which, bin.harness, &hint, &shown, status);
        if !opts.no_fail_fast {
            return Ok(Outcome::Stopped(status.code().unwrap_or(101)));
        }
        failed.push(hint);
    }
    Ok(Outcome::Ran(failed))
}

/// `error: test failed, to rerun pass ...` (`which` says what failed),
/// with the process's status when it did not fail the usual way (libtest
/// exits with 101).
pub(crate) fn report_failure(
    opts: &RunOptions<'_>,
    which: &str,
    harness: bool,
    hint: &str,
    shown: &str,
    status: ExitStatus,
) {
    let mut message = format!("{which}, to rerun pass `{hint}`");
    if status.code() == Some(101) {
        opts.shell.error(message);
        return;
    }
    message.push_str(&format!(
        "\n\nCaused by:\n  process didn't exit successfully: `{shown}` ({})",
        crate::process::cargo_status(status)
    ));
    opts.shell.error(message);
    let nocapture = opts
        .test_args
        .iter()
        .any(|a| a == "--nocapture" || a == "--no-capture");
    if status.code().is_some() && harness && !nocapture {
        opts.shell.print(
            "note: test exited abnormally; to see the full output pass --no-capture to the harness.",
        );
    }
}

/// `error: 2 targets failed:` and the list, as cargo ends a run with
/// `--no-fail-fast`.
pub fn failed_targets_message(hints: &[String]) -> Option<String> {
    let list: Vec<String> = hints.iter().map(|h| format!("    `{h}`")).collect();
    match hints.len() {
        0 => None,
        1 => Some(format!("1 target failed:\n{}", list.join("\n"))),
        n => Some(format!("{n} targets failed:\n{}", list.join("\n"))),
    }
}

pub(crate) fn show_command(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        s.push(' ');
        if a.is_empty() || a.contains(char::is_whitespace) {
            s.push_str(&format!("'{a}'"));
        } else {
            s.push_str(&a);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, manifest: &str) -> Package {
        serde_json::from_value(serde_json::json!({
            "name": name, "version": "0.1.0", "id": format!("path+file:///w/{name}#0.1.0"),
            "source": null, "dependencies": [], "targets": [], "features": {},
            "manifest_path": manifest, "authors": [], "categories": [], "keywords": [],
            "edition": "2021", "links": null, "publish": null, "metadata": null,
            "license": null, "license_file": null, "description": null, "readme": null,
            "repository": null, "homepage": null, "documentation": null,
            "default_run": null, "rust_version": null
        }))
        .unwrap()
    }

    fn artifact(pkg: &Package, kind: &str, name: &str, src: &str, test: bool) -> Artifact {
        serde_json::from_value(serde_json::json!({
            "package_id": pkg.id.repr,
            "manifest_path": pkg.manifest_path,
            "target": {"name": name, "kind": [kind], "crate_types": ["bin"],
                       "src_path": src, "edition": "2021", "doctest": false, "test": true,
                       "doc": false, "required-features": []},
            "profile": {"opt_level": "0", "debuginfo": 2, "debug_assertions": true,
                        "overflow_checks": true, "test": test},
            "features": [], "filenames": [format!("/t/deps/{name}-1")],
            "executable": format!("/t/deps/{name}-1"), "fresh": true
        }))
        .unwrap()
    }

    #[test]
    fn runs_in_cargos_order_and_speaks_its_words() {
        let b = package("b", "/w/b/Cargo.toml");
        let a = package("a", "/w/a/Cargo.toml");
        let artifacts = vec![
            artifact(&b, "test", "zeta", "/w/b/tests/zeta.rs", true),
            artifact(&b, "test", "alpha", "/w/b/tests/alpha.rs", true),
            artifact(&b, "bin", "b", "/w/b/src/main.rs", true),
            artifact(&b, "lib", "b", "/w/b/src/lib.rs", true),
            artifact(&a, "test", "it", "/w/a/tests/it.rs", true),
            // Built, not a test: an example checked by `--examples`.
            artifact(&a, "example", "demo", "/w/a/examples/demo.rs", false),
        ];
        let bins = from_artifacts(&artifacts, &[a, b]);
        let shown: Vec<String> = bins.iter().map(|t| t.display(Path::new("/t"))).collect();
        assert_eq!(
            shown,
            [
                "tests/it.rs (deps/it-1)",
                "unittests src/lib.rs (deps/b-1)",
                "unittests src/main.rs (deps/b-1)",
                "tests/alpha.rs (deps/alpha-1)",
                "tests/zeta.rs (deps/zeta-1)",
            ]
        );
        let hints: Vec<String> = bins.iter().map(|t| t.rerun_args(false)).collect();
        assert_eq!(
            hints,
            [
                "--test it",
                "--lib",
                "--bin b",
                "--test alpha",
                "--test zeta"
            ]
        );
        assert_eq!(bins[0].rerun_args(true), "-p a --test it");
    }

    #[test]
    fn reads_harness_false_from_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("Cargo.toml");
        std::fs::write(
            &manifest,
            "[package]\nname = \"p\"\n[[test]]\nname = \"custom\"\nharness = false\n\
             [[test]]\nname = \"plain\"\n",
        )
        .unwrap();
        let p = package("p", manifest.to_str().unwrap());
        assert!(!harness(&p, Kind::Test, "custom"));
        assert!(harness(&p, Kind::Test, "plain"));
        assert!(harness(&p, Kind::Lib, "p"));
    }

    #[test]
    fn sums_failures_as_cargo_does() {
        assert_eq!(failed_targets_message(&[]), None);
        assert_eq!(
            failed_targets_message(&["--lib".into()]).unwrap(),
            "1 target failed:\n    `--lib`"
        );
        assert_eq!(
            failed_targets_message(&["--lib".into(), "--doc".into()]).unwrap(),
            "2 targets failed:\n    `--lib`\n    `--doc`"
        );
    }
}
