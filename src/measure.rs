//! Measuring processes: wall time and peak memory (`wait4`), and the logs
//! of JSON lines the measuring helpers append to.

use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

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
        let r = crate::contract::CompileRecord {
            crate_name: "app".into(),
            package: "app".into(),
            millis: 12,
        };
        append_json_line(&log, &r).unwrap();
        append_json_line(&log, &r).unwrap();
        assert_eq!(
            read_log::<crate::contract::CompileRecord>(&log).unwrap(),
            vec![r.clone(), r]
        );
    }
}
