//! The operating system's side of the processes dyndev starts: signals and
//! their names, process groups, the parent-death signal, descriptors
//! passed to a child, the subreaper and finding and stopping descendants,
//! the terminal's foreground group. What is Linux-specific about processes
//! is here, for watch, compare and the watch guard alike.

mod signals;
mod terminal;
mod tree;

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::process::{Command, ExitStatus};

pub use signals::{Signals, wait_readable};
pub use terminal::Terminal;
pub use tree::{become_subreaper, reap_children, stop_descendants};

/// A process's end in cargo's words, as its `process didn't exit
/// successfully: ... (...)` reports it: `exit status: 1`, or `signal: 6,
/// SIGABRT: process abort signal`.
pub fn cargo_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    let Some(signal) = status.signal() else {
        return status.to_string();
    };
    let name = match signal {
        libc::SIGABRT => ", SIGABRT: process abort signal",
        libc::SIGALRM => ", SIGALRM: alarm clock",
        libc::SIGFPE => ", SIGFPE: erroneous arithmetic operation",
        libc::SIGHUP => ", SIGHUP: hangup",
        libc::SIGILL => ", SIGILL: illegal instruction",
        libc::SIGINT => ", SIGINT: terminal interrupt signal",
        libc::SIGKILL => ", SIGKILL: kill",
        libc::SIGPIPE => ", SIGPIPE: write on a pipe with no one to read",
        libc::SIGQUIT => ", SIGQUIT: terminal quit signal",
        libc::SIGSEGV => ", SIGSEGV: invalid memory reference",
        libc::SIGTERM => ", SIGTERM: termination signal",
        libc::SIGBUS => ", SIGBUS: access to undefined memory",
        libc::SIGSYS => ", SIGSYS: bad system call",
        libc::SIGTRAP => ", SIGTRAP: trace/breakpoint trap",
        _ => "",
    };
    format!("signal: {signal}{name}")
}

/// Whether a process `pid` exists (a zombie counts).
pub fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether a process `pid` runs still: it exists and is not a zombie (one
/// that ended, not yet reaped), which writes nothing more.
pub fn runs(pid: u32) -> bool {
    tree::process(pid).is_some_and(|p| p.alive())
}

/// Sends `signal` to every process of the group `pgid`; false when none is
/// left. Async-signal-safe: a signal handler may call it.
#[allow(unsafe_code)]
pub fn signal_group(pgid: u32, signal: i32) -> bool {
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    if pgid <= 1 {
        return false;
    }
    // SAFETY: plain system call; a negative pid names a process group.
    unsafe { libc::kill(-pgid, signal) == 0 }
}

/// Makes the child `command` starts get SIGKILL when the thread that
/// spawns it ends: spawn from the thread that lives longest.
#[allow(unsafe_code)]
pub fn set_parent_death_signal(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: `getpid` before forking; in the child only `prctl`, `getppid`
    // and `_exit` run, which are async-signal-safe.
    let parent = unsafe { libc::getpid() };
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before the signal was armed.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Keeps `fds` open in the child `command` starts, under the same
/// numbers: this process opens them close-on-exec, so no other child
/// inherits them.
#[allow(unsafe_code)]
pub fn pass_fds(command: &mut Command, fds: &[RawFd]) {
    use std::os::unix::process::CommandExt;
    let fds = fds.to_vec();
    // SAFETY: in the child only `fcntl` runs, which is async-signal-safe;
    // the vector was allocated before the fork and is only read.
    unsafe {
        command.pre_exec(move || {
            for &fd in &fds {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Takes the descriptor `fd` the parent passed (see [`pass_fds`]), and
/// makes it close-on-exec, so what this process starts does not inherit
/// it.
#[allow(unsafe_code)]
pub fn inherited_fd(fd: RawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: plain system calls on a number; a descriptor that is not
    // open makes them fail.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return Err(std::io::Error::other(format!(
            "no descriptor {fd} was passed"
        )));
    }
    // SAFETY: the descriptor is open, and the parent passed it to this
    // process alone to own; nothing else here uses the number.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `exit status 3`, `signal 11 (SIGSEGV)`.
pub fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(s) => match signal_name(s) {
            Some(name) => format!("signal {s} ({name})"),
            None => format!("signal {s}"),
        },
        None => status.to_string(),
    }
}

/// `SIGSEGV` for 11: the signals a program is commonly killed by.
pub fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_end_is_named_as_cargo_names_it() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(cargo_status(ExitStatus::from_raw(1 << 8)), "exit status: 1");
        assert_eq!(
            cargo_status(ExitStatus::from_raw(libc::SIGABRT)),
            "signal: 6, SIGABRT: process abort signal"
        );
    }
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn describes_codes_and_signals() {
        assert_eq!(describe(ExitStatus::from_raw(3 << 8)), "exit status 3");
        assert_eq!(describe(ExitStatus::from_raw(11)), "signal 11 (SIGSEGV)");
    }

    #[test]
    fn a_process_that_ended_runs_no_more_before_it_is_reaped() {
        assert!(runs(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while runs(pid) {
            assert!(std::time::Instant::now() < deadline, "`true` never ended");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // A zombie: it exists until its parent waits for it.
        assert!(exists(pid));
        child.wait().unwrap();
    }
}
