//! The linker proxy: this executable, under the name `dyndev-linker`, set
//! as rustc's linker. It runs the real linker and can do two things on the
//! way:
//!
//! - for the bundle's link, export the C symbols that `-sys` crates bundle
//!   into their rlibs: rustc exports only Rust symbols from a dylib, so the
//!   proxy adds the C ones to rustc's own version script (one script, which
//!   every linker accepts) and has the linker pull in the objects that
//!   define them, as a shared library of that C code would hold them;
//! - for the closure probes of [`crate::closure`], write down the
//!   libraries rustc asks it to link, and link nothing;
//! - for `compare`, pick the real linker the mode asks for, and log each
//!   link's output, wall time and peak memory. The linker path cargo sees
//!   stays the same across modes, so switching never invalidates cargo's
//!   fingerprints.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::invoked_as;
use crate::measure::{append_json_line, run_measured};

pub const LINKER_NAME: &str = "dyndev-linker";

pub mod env {
    /// The linker mode, as JSON ([`super::LinkerMode`]).
    pub const LINKER_MODE: &str = "__CARGO_DYNDEV_LINKER_MODE";
    /// Where link records are appended, one JSON line each.
    pub const LINK_LOG: &str = "__CARGO_DYNDEV_LINK_LOG";
    /// A file of symbol names, one a line, to export from the output.
    pub const EXPORTS: &str = "__CARGO_DYNDEV_EXPORTS";
    /// The linker to run, when the user configured one; else `cc`, as rustc.
    pub const REAL_LINKER: &str = "__CARGO_DYNDEV_REAL_LINKER";
    /// Write the arguments to this file, as a JSON array, and link nothing.
    pub const RECORD_ONLY: &str = "__CARGO_DYNDEV_RECORD_ONLY";
}

pub fn is_linker_invocation() -> bool {
    invoked_as().as_deref() == Some(LINKER_NAME)
}

/// How one mode links: the C compiler driver rustc would run, with the
/// linker-selecting arguments replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkerMode {
    /// A short name for tables: `rust-lld`, `mold`, `bfd`.
    pub name: String,
    /// Drop rustc's own choice (`-fuse-ld=lld` and its `-B` to the bundled
    /// `gcc-ld` dir) before adding `args`.
    pub replace_default: bool,
    /// Arguments added for the driver, such as `-fuse-ld=mold`.
    pub args: Vec<String>,
}

impl LinkerMode {
    /// rustc's default on this platform (rust-lld through `cc`).
    pub fn default_linker() -> LinkerMode {
        LinkerMode {
            name: "rust-lld".into(),
            replace_default: false,
            args: Vec::new(),
        }
    }

    /// The linkers found on `PATH`, each as a mode.
    pub fn found_on_path() -> Vec<LinkerMode> {
        let mut modes = Vec::new();
        let mut add = |program: &str, name: &str, args: Vec<String>| {
            if which::which(program).is_ok() {
                modes.push(LinkerMode {
                    name: name.into(),
                    replace_default: true,
                    args,
                });
            }
        };
        // mold forks and leaves its child to finish up; without the fork
        // its time and memory are the link's own.
        add(
            "mold",
            "mold",
            vec!["-fuse-ld=mold".into(), "-Wl,--no-fork".into()],
        );
        add("ld.lld", "ld.lld", vec!["-fuse-ld=lld".into()]);
        add("ld.gold", "gold", vec!["-fuse-ld=gold".into()]);
        add("ld.bfd", "bfd", vec!["-fuse-ld=bfd".into()]);
        if let Ok(wild) = which::which("wild") {
            modes.push(LinkerMode {
                name: "wild".into(),
                replace_default: true,
                args: vec![format!("--ld-path={}", wild.display())],
            });
        }
        modes
    }

    /// The driver's arguments for this mode, from rustc's.
    pub fn rewrite(&self, args: Vec<OsString>) -> Vec<OsString> {
        let mut out: Vec<OsString> = if self.replace_default {
            args.into_iter()
                .filter(|a| {
                    let s = a.to_string_lossy();
                    !(s.starts_with("-fuse-ld=") || (s.starts_with("-B") && s.ends_with("gcc-ld")))
                })
                .collect()
        } else {
            args
        };
        out.extend(self.args.iter().map(OsString::from));
        out
    }
}

/// One link, as logged by the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// The file written (`-o`).
    pub output: PathBuf,
    pub linker: String,
    pub millis: u64,
    /// Peak resident memory of the linker, in KiB.
    pub max_rss_kib: u64,
    pub success: bool,
}

/// Adds `symbols` to the `global:` part of a version script as rustc
/// writes them (`{ global: ...; local: *; };`).
pub fn merge_version_script(script: &str, symbols: &[String]) -> String {
    let names: String = symbols.iter().map(|s| format!("    {s};\n")).collect();
    if let Some(at) = script.find("global:") {
        let line_end = script[at..].find('\n').map_or(script.len(), |i| at + i + 1);
        format!("{}{names}{}", &script[..line_end], &script[line_end..])
    } else if let Some(at) = script.find('{') {
        format!(
            "{}\n  global:\n{names}{}",
            &script[..=at],
            &script[at + 1..]
        )
    } else {
        format!("{{\n  global:\n{names}}};\n{script}")
    }
}

/// The version script rustc passes to the linker, in any of its spellings.
fn version_script(args: &[OsString]) -> Option<PathBuf> {
    for (i, a) in args.iter().enumerate() {
        let a = a.to_string_lossy();
        for prefix in ["-Wl,--version-script=", "--version-script="] {
            if let Some(p) = a.strip_prefix(prefix) {
                return Some(PathBuf::from(p));
            }
        }
        if a == "-Wl,--version-script" || a == "--version-script" {
            let next = args.get(i + 1)?.to_string_lossy().into_owned();
            return Some(PathBuf::from(next.strip_prefix("-Wl,").unwrap_or(&next)));
        }
    }
    None
}

/// Makes the link export `symbols`: merged into rustc's version script, and
/// each named as undefined so the linker pulls in the object defining it.
fn add_exports(mut args: Vec<OsString>, symbols: &[String]) -> Result<Vec<OsString>> {
    if symbols.is_empty() {
        return Ok(args);
    }
    let script =
        version_script(&args).context("rustc passed no version script to extend with C symbols")?;
    let text = crate::fs::read_to_string(&script)?;
    std::fs::write(&script, merge_version_script(&text, symbols))
        .with_context(|| format!("failed to write `{}`", script.display()))?;
    args.extend(
        symbols
            .iter()
            .map(|s| OsString::from(format!("-Wl,--undefined={s}"))),
    );
    Ok(args)
}

/// The linker proxy's entry point. Returns the exit code.
pub fn main() -> i32 {
    match link() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: cargo-dyndev's linker proxy failed: {e:#}");
            crate::error::code::FAILURE
        }
    }
}

fn link() -> Result<i32> {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if let Some(record) = std::env::var_os(env::RECORD_ONLY) {
        let words: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let json = serde_json::to_vec(&words).context("failed to serialize link arguments")?;
        crate::fs::write_atomic(Path::new(&record), &json)?;
        return Ok(0);
    }
    let mode = std::env::var(env::LINKER_MODE)
        .ok()
        .and_then(|m| serde_json::from_str::<LinkerMode>(&m).ok())
        .unwrap_or_else(LinkerMode::default_linker);
    if let Some(list) = std::env::var_os(env::EXPORTS) {
        let text = crate::fs::read_to_string(Path::new(&list))?;
        let symbols: Vec<String> = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        args = add_exports(args, &symbols)?;
    }
    let output = args
        .iter()
        .position(|a| a == "-o")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_default();
    // rustc's own default is `cc`, whatever `$CC` says.
    let driver = std::env::var_os(env::REAL_LINKER)
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "cc".into());
    let mut cmd = Command::new(&driver);
    cmd.args(mode.rewrite(args)).env_remove(env::EXPORTS);
    let (status, millis, max_rss_kib) = run_measured(&mut cmd)
        .with_context(|| format!("failed to run `{}`", driver.to_string_lossy()))?;
    if let Ok(log) = std::env::var(env::LINK_LOG) {
        let record = LinkRecord {
            output,
            linker: mode.name,
            millis,
            max_rss_kib,
            success: status.success(),
        };
        if let Err(e) = append_json_line(Path::new(&log), &record) {
            eprintln!("warning: {e:#}");
        }
    }
    Ok(crate::cargo::exit_code(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn replacing_the_default_linker_drops_rustcs_choice() {
        let rustc_args = os(&[
            "-m64",
            "main.o",
            "-B/sysroot/lib/rustlib/x86_64-unknown-linux-gnu/bin/gcc-ld",
            "-fuse-ld=lld",
            "-o",
            "app",
        ]);
        let mold = LinkerMode {
            name: "mold".into(),
            replace_default: true,
            args: vec!["-fuse-ld=mold".into()],
        };
        assert_eq!(
            mold.rewrite(rustc_args.clone()),
            os(&["-m64", "main.o", "-o", "app", "-fuse-ld=mold"])
        );
        assert_eq!(
            LinkerMode::default_linker().rewrite(rustc_args.clone()),
            rustc_args
        );
    }

    const RUSTC_SCRIPT: &str = "{\n  global:\n    rust_fn;\n\n  local:\n    *;\n};\n";

    #[test]
    fn c_symbols_join_rustcs_global_list() {
        let merged = merge_version_script(RUSTC_SCRIPT, &["zlibVersion".into(), "deflate".into()]);
        assert_eq!(
            merged,
            "{\n  global:\n    zlibVersion;\n    deflate;\n    rust_fn;\n\n  local:\n    *;\n};\n"
        );
        let no_globals = merge_version_script("{\n  local:\n    *;\n};\n", &["f".into()]);
        assert_eq!(no_globals, "{\n  global:\n    f;\n\n  local:\n    *;\n};\n");
    }

    #[test]
    fn exports_extend_the_script_and_pull_the_objects_in() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("list");
        std::fs::write(&script, RUSTC_SCRIPT).unwrap();
        let args = os(&[
            &format!("-Wl,--version-script={}", script.display()),
            "-shared",
        ]);
        let out = add_exports(args, &["nat_add".into()]).unwrap();
        assert_eq!(out.last().unwrap(), "-Wl,--undefined=nat_add");
        assert!(
            std::fs::read_to_string(&script)
                .unwrap()
                .contains("    nat_add;\n")
        );
    }
}
