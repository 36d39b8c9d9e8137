//! Measuring processes: wall time and peak memory (`wait4`), and the
//! rustc timer `compare` installs as `RUSTC_WRAPPER` (this executable under
//! the name `dyndev-rustc-timer`), which logs how long each compilation
//! takes, so a crate's compile time without its link can be read off.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub const TIMER_NAME: &str = "dyndev-rustc-timer";

pub mod env {
    /// Where compile records are appended, one JSON line each.
    pub const RUSTC_LOG: &str = "__CARGO_DYNDEV_RUSTC_LOG";
}

/// The program name this process was started as.
pub(crate) fn invoked_as() -> Option<String> {
    let arg0 = std::env::args_os().next()?;
    Some(Path::new(&arg0).file_name()?.to_string_lossy().into_owned())
}

pub fn is_timer_invocation() -> bool {
    invoked_as().as_deref() == Some(TIMER_NAME)
}

/// One compilation, as logged by the timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompileRecord {
    pub crate_name: String,
    /// `CARGO_PKG_NAME` of the unit.
    pub package: String,
    /// Wall time of rustc, its link included.
    pub millis: u64,
}

/// Runs a process to completion and returns its status, wall time in
/// milliseconds and the peak resident memory of it and its descendants in
/// KiB (from `wait4`).
pub fn run_measured(cmd: &mut Command) -> std::io::Result<(ExitStatus, u64, u64)> {
    let start = Instant::now();
    let child = cmd.spawn()?;
    wait_measured(child, start)
}

/// [`run_measured`] for a child the caller spawned at `start`, so that it
/// can know the child's id while it runs.
pub fn wait_measured(
    child: std::process::Child,
    start: Instant,
) -> std::io::Result<(ExitStatus, u64, u64)> {
    let (status, max_rss_kib) = wait_with_rusage(child)?;
    Ok((status, start.elapsed().as_millis() as u64, max_rss_kib))
}

#[allow(unsafe_code)]
fn wait_with_rusage(child: std::process::Child) -> std::io::Result<(ExitStatus, u64)> {
    use std::os::unix::process::ExitStatusExt;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data that wait4 fills in; all-zero is a valid
    // value for it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own child, not yet waited for (we took the
        // Child by value and never call its wait); the pointers are to
        // locals that outlive the call.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    // The child is reaped; forget the handle so its Drop does nothing more.
    std::mem::forget(child);
    // ru_maxrss is in KiB on Linux.
    Ok((ExitStatus::from_raw(status), usage.ru_maxrss.max(0) as u64))
}

pub(crate) fn append_json_line<T: Serialize>(log: &Path, record: &T) -> Result<()> {
    let mut line = serde_json::to_vec(record)?;
    line.push(b'\n');
    // One `write` of a short line to an O_APPEND file: lines from parallel
    // processes do not interleave.
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("failed to open `{}`", log.display()))?;
    file.write_all(&line)
        .with_context(|| format!("failed to write `{}`", log.display()))
}

/// Reads a log of JSON lines.
pub fn read_log<T: for<'de> Deserialize<'de>>(log: &Path) -> Result<Vec<T>> {
    let Ok(text) = std::fs::read_to_string(log) else {
        return Ok(Vec::new());
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).with_context(|| format!("bad line in `{}`", log.display()))
        })
        .collect()
}

/// The rustc timer's entry point: `argv[1]` is the compiler (or the next
/// wrapper). Returns the exit code.
pub fn timer_main() -> i32 {
    let mut argv = std::env::args_os().skip(1);
    let Some(program) = argv.next() else {
        eprintln!("error: cargo-dyndev's rustc timer expects the compiler as its first argument");
        return crate::error::code::FAILURE;
    };
    let args: Vec<OsString> = argv.collect();
    let text: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let inv = crate::rustc_args::Invocation::parse(text);
    let start = Instant::now();
    let status = match Command::new(&program).args(&args).status() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: failed to run `{}`: {e}", program.to_string_lossy());
            return crate::error::code::FAILURE;
        }
    };
    if let (Ok(log), Some(name)) = (std::env::var(env::RUSTC_LOG), inv.crate_name.clone())
        && inv.links()
    {
        let record = CompileRecord {
            crate_name: name,
            package: std::env::var("CARGO_PKG_NAME").unwrap_or_default(),
            millis: start.elapsed().as_millis() as u64,
        };
        if let Err(e) = append_json_line(Path::new(&log), &record) {
            eprintln!("warning: {e:#}");
        }
    }
    crate::cargo::exit_code(status)
}

/// Makes `dir/<name>` a symlink to this executable: the wrapper, the
/// linker proxy and the rustc timer run under such names.
pub fn install_instrument(dir: &Path, name: &str) -> Result<PathBuf> {
    crate::fs::create_dir_all(dir)?;
    let exe = crate::fs::self_exe()?;
    let link = dir.join(name);
    if std::fs::read_link(&link).ok().as_deref() != Some(exe.as_path()) {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&exe, &link)
            .with_context(|| format!("failed to create `{}`", link.display()))?;
    }
    Ok(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_process() {
        let (status, millis, rss) =
            run_measured(Command::new("sh").args(["-c", "sleep 0.05"])).unwrap();
        assert!(status.success());
        assert!(millis >= 40, "{millis}");
        assert!(rss > 0);
    }

    #[test]
    fn logs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("links.jsonl");
        let r = CompileRecord {
            crate_name: "app".into(),
            package: "app".into(),
            millis: 12,
        };
        append_json_line(&log, &r).unwrap();
        append_json_line(&log, &r).unwrap();
        assert_eq!(read_log::<CompileRecord>(&log).unwrap(), vec![r.clone(), r]);
    }
}
