//! Ctrl-C during `compare`: the first one stops the measurement, which then
//! reports what it has; the process running at that moment (a build or the
//! program, each in a process group of its own) gets the signal with it.
//! A second Ctrl-C ends everything at once.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};

use anyhow::{Context, Result};

use crate::error::{Failure, code};
use crate::process::signal_group;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// The process group of the child running now; 0 when none runs.
static GROUP: AtomicU32 = AtomicU32::new(0);

#[allow(unsafe_code)]
extern "C" fn on_sigint(_: libc::c_int) {
    // Only async-signal-safe calls: atomics, `kill` and `_exit`.
    let group = GROUP.load(SeqCst);
    if INTERRUPTED.swap(true, SeqCst) {
        signal_group(group, libc::SIGKILL);
        // SAFETY: _exit ends the process without running anything else.
        unsafe { libc::_exit(code::INTERRUPTED) };
    }
    signal_group(group, libc::SIGINT);
}

/// Catches SIGINT for the rest of the process's life.
#[allow(unsafe_code)]
pub fn install() -> Result<()> {
    let handler: extern "C" fn(libc::c_int) = on_sigint;
    // SAFETY: sigaction is plain data; all-zero is a valid value for it, and
    // every field that matters is set below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler as libc::sighandler_t;
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: the pointers are to a local that outlives the calls; the
    // handler only touches atomics and calls async-signal-safe functions.
    let r = unsafe {
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut())
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error())
            .context("failed to install the handler for Ctrl-C");
    }
    Ok(())
}

/// Whether Ctrl-C was pressed.
pub fn interrupted() -> bool {
    INTERRUPTED.load(SeqCst)
}

/// An error if Ctrl-C was pressed: to call before starting more work.
pub fn check() -> Result<()> {
    if interrupted() {
        Err(Failure::Interrupted.into())
    } else {
        Ok(())
    }
}

/// A child running in its own process group (see [`spawn`]), registered so
/// that Ctrl-C reaches it and its descendants; unregistered on drop.
#[derive(Debug)]
pub struct Running {
    group: u32,
}

/// Starts `cmd` as the leader of a process group of its own, and registers
/// it, so that Ctrl-C reaches it and whatever it starts.
pub fn spawn(cmd: &mut Command) -> std::io::Result<(Child, Running)> {
    let child = cmd.process_group(0).spawn()?;
    let running = running(child.id());
    Ok((child, running))
}

/// Registers the child `pid`, the leader of its process group.
fn running(group: u32) -> Running {
    GROUP.store(group, SeqCst);
    // Ctrl-C before the store found no group to signal.
    if interrupted() {
        signal_group(group, libc::SIGINT);
    }
    Running { group }
}

impl Running {
    /// Kills every process left in the group.
    pub fn kill_all(&self) {
        signal_group(self.group, libc::SIGKILL);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        GROUP.store(0, SeqCst);
    }
}
