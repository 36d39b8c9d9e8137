//! The controlling terminal's foreground process group: handed to the
//! program while it runs, taken back by the watcher.

use super::signal_group;

/// The controlling terminal, when the watcher runs in its foreground. The
/// program's group is made the terminal's foreground group while it runs,
/// so it can read the terminal and Ctrl-C reaches it (and what it started)
/// as under a shell; the watcher takes the terminal back when it ends.
#[derive(Debug)]
pub struct Terminal {
    own_group: libc::pid_t,
}

#[allow(unsafe_code)]
impl Terminal {
    /// The terminal on stdin, if this process is in its foreground group.
    pub fn detect() -> Option<Terminal> {
        // SAFETY: plain system calls on stdin.
        unsafe {
            if libc::isatty(libc::STDIN_FILENO) != 1 {
                return None;
            }
            let own_group = libc::getpgrp();
            (libc::tcgetpgrp(libc::STDIN_FILENO) == own_group).then_some(Terminal { own_group })
        }
    }

    /// Makes `pgid` the foreground group, and continues it should it have
    /// stopped reading the terminal before it was handed over.
    pub fn give(&self, pgid: u32) {
        if let Ok(group) = libc::pid_t::try_from(pgid) {
            set_foreground(group);
            signal_group(pgid, libc::SIGCONT);
        }
    }

    /// Makes the watcher's group the foreground group again.
    pub fn take_back(&self) {
        set_foreground(self.own_group);
    }
}

/// `tcsetpgrp` on stdin, with SIGTTOU blocked: from a background group the
/// call would otherwise stop the caller.
#[allow(unsafe_code)]
fn set_foreground(pgid: libc::pid_t) {
    // SAFETY: a signal set on the stack, and plain system calls.
    unsafe {
        let mut block: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGTTOU);
        libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut old);
        libc::tcsetpgrp(libc::STDIN_FILENO, pgid);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
}
