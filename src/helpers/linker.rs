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
//!   fingerprints;
//! - for `watch --hot`, keep what a program's link was made of (copies of
//!   the crate's objects and the rlibs beside it, and the arguments) as a [`KeptLink`], so that reload can link new code from
//!   the objects a later compile changed; and skip the link itself when
//!   only the objects are wanted.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::contract::{LinkRecord, env};
use crate::kept::{keep, output_of};
use crate::measure::{append_json_line, run_measured};

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
    let output = output_of(&args).unwrap_or_default();
    // rustc's own default is `cc`, whatever `$CC` says.
    let driver = std::env::var_os(env::REAL_LINKER)
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "cc".into());
    let args = mode.rewrite(args);
    let keep_root = std::env::var_os(env::KEEP).filter(|k| !k.is_empty());
    if let Some(root) = &keep_root
        && std::env::var_os(env::KEEP_ONLY).is_some()
    {
        keep(
            Path::new(root),
            &driver.to_string_lossy(),
            &args,
            false,
            Vec::new(),
        )?;
        return Ok(0);
    }
    // A test binary under `cargo dyndev test`: against shared versions of
    // the workspace libraries, when it can be.
    let mut shared = Vec::new();
    let mut outcome = None;
    if let Some(root) = std::env::var_os(crate::contract::env::SHARED_LIBS) {
        let words: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let members: Vec<String> = std::env::var(crate::contract::env::MEMBER_LIBS)
            .unwrap_or_default()
            .split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect();
        let driver_name = driver.to_string_lossy();
        if let Ok(Some((dynamic, links))) =
            crate::cutoff::shared::dynamic_link(Path::new(&root), &driver_name, &words, &members)
        {
            let mut cmd = Command::new(&driver);
            cmd.args(&dynamic);
            let (status, millis, rss, stderr) = run_linker(&mut cmd)?;
            if status.success() {
                eprint!("{stderr}");
                crate::cutoff::shared::retire(Path::new(&root), &links);
                shared = links;
                outcome = Some((status, millis, rss));
            }
            // Else the static link below, as rustc asked.
        }
    }
    let (status, millis, max_rss_kib) = match outcome {
        Some(done) => done,
        None => {
            let mut cmd = Command::new(&driver);
            cmd.args(&args);
            let (status, millis, rss, stderr) = run_linker(&mut cmd)?;
            eprint!("{stderr}");
            // rustc would show only the exit status the proxy passes on.
            if let Some(signal) = killed_by(status) {
                eprintln!(
                    "error: the linker `{}` was killed by {signal}",
                    driver.to_string_lossy()
                );
            }
            (status, millis, rss)
        }
    };
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
    if let Some(root) = &keep_root
        && status.success()
        && let Err(e) = keep(
            Path::new(root),
            &driver.to_string_lossy(),
            &args,
            true,
            shared,
        )
    {
        // Reload then builds new code the slow way; the link itself is fine.
        eprintln!("warning: cargo-dyndev could not keep the link's objects: {e:#}");
    }
    Ok(crate::cargo::exit_code(status))
}

/// `signal 7 (SIGBUS)`, when `status` is a death by a signal. A linker
/// writing into a full tmpfs dies of SIGBUS; one the kernel kills when
/// memory runs out, of SIGKILL.
fn killed_by(status: std::process::ExitStatus) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    let signal = status.signal()?;
    Some(match crate::process::signal_name(signal) {
        Some(name) => format!("signal {signal} ({name})"),
        None => format!("signal {signal}"),
    })
}

/// Runs the real linker, its stderr kept aside (a failed attempt at a
/// shared link is not rustc's business). Returns the status, wall time,
/// peak memory and stderr.
fn run_linker(cmd: &mut Command) -> Result<(std::process::ExitStatus, u64, u64, String)> {
    // The driver is a linker, never this proxy again: nothing of the
    // proxy's own settings goes on.
    cmd.env_remove(env::EXPORTS)
        .env_remove(env::KEEP)
        .env_remove(env::REAL_LINKER)
        .env_remove(crate::contract::env::SHARED_LIBS);
    let path = std::env::temp_dir().join(format!(
        "dyndev-link-{}-{}.err",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    let file = std::fs::File::create(&path)
        .with_context(|| format!("failed to create `{}`", path.display()))?;
    cmd.stderr(file);
    let program = cmd.get_program().to_string_lossy().into_owned();
    let result = run_measured(cmd).with_context(|| format!("failed to run `{program}`"));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    let (status, millis, rss) = result?;
    Ok((status, millis, rss, text))
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

    #[test]
    fn a_linker_killed_by_a_signal_is_named_so() {
        use std::os::unix::process::ExitStatusExt;
        let status = std::process::ExitStatus::from_raw;
        assert_eq!(killed_by(status(7)).as_deref(), Some("signal 7 (SIGBUS)"));
        assert_eq!(killed_by(status(9)).as_deref(), Some("signal 9 (SIGKILL)"));
        assert_eq!(killed_by(status(1 << 8)), None, "exit status 1");
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
