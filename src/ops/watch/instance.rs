//! The watched program's instances: each runs in a process group of its
//! own, is stopped as a group (SIGTERM, a grace period, SIGKILL), and dies
//! with the watcher, also when the watcher itself is killed.
//!
//! Two safeguards cover a watcher that dies without cleaning up: the
//! program gets SIGKILL as its parent-death signal, and a guard process
//! (this executable again) holds a pipe from the watcher; when the pipe
//! closes, it kills every group the watcher had running.

use std::io::Write;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::process;

/// One running instance of the program.
#[derive(Debug)]
pub struct Instance {
    /// Its pid, which is also its process group's id.
    pub pid: u32,
    pub started: Instant,
}

/// Starts `command` in a new process group, with the terminal's stdin,
/// stdout and stderr; `on_exit` is called from another thread with its
/// exit status.
pub fn start(
    mut command: Command,
    on_exit: impl FnOnce(u32, std::io::Result<ExitStatus>) + Send + 'static,
) -> std::io::Result<Instance> {
    use std::os::unix::process::CommandExt;
    command.process_group(0);
    process::set_parent_death_signal(&mut command);
    // Spawned from the watcher's main thread: the parent-death signal
    // fires when the thread that forked ends, and this one ends last.
    let child: Child = command.spawn()?;
    let pid = child.id();
    // Not `Child::wait`: see `process::wait_for_exit`.
    drop(child);
    std::thread::Builder::new()
        .name(format!("wait-{pid}"))
        .spawn(move || on_exit(pid, process::wait_for_exit(pid)))?;
    Ok(Instance {
        pid,
        started: Instant::now(),
    })
}

/// The guard process, told over a pipe which groups are running.
#[derive(Debug)]
pub struct Guard {
    child: Child,
    pipe: ChildStdin,
}

impl Guard {
    /// Starts the guard: this executable, in a process group of its own so
    /// the terminal's Ctrl-C does not reach it before the watcher is done.
    pub fn start() -> Result<Guard> {
        use std::os::unix::process::CommandExt;
        let exe = crate::fs::self_exe()?;
        let mut child = Command::new(&exe)
            .arg0(crate::helpers::guard::NAME)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("failed to start `{}`", exe.display()))?;
        let pipe = child
            .stdin
            .take()
            .context("the guard's stdin is not piped")?;
        Ok(Guard { child, pipe })
    }

    /// The group `pgid` is running: kill it should the watcher die.
    pub fn add(&mut self, pgid: u32) {
        let _ = writeln!(self.pipe, "+{pgid}");
    }

    /// The group `pgid` is gone.
    pub fn remove(&mut self, pgid: u32) {
        let _ = writeln!(self.pipe, "-{pgid}");
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = writeln!(self.pipe, "exit");
        let _ = self.child.wait();
    }
}
