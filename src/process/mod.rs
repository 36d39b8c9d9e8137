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
use std::time::{Duration, Instant};

pub use signals::{Signals, wait_readable};
pub use terminal::Terminal;
pub use tree::{become_subreaper, reap_children, stop_descendants};

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

/// Stops the whole group: SIGTERM, then SIGKILL to whatever is left after
/// `grace`. Returns once no process of the group is left (or after a
/// second more, should one not die even of SIGKILL, as in
/// uninterruptible sleep).
pub fn stop_group(pgid: u32, grace: Duration) {
    if !signal_group(pgid, libc::SIGTERM) {
        return;
    }
    // A stopped process (Ctrl-Z, a background read) handles SIGTERM only
    // once continued.
    signal_group(pgid, libc::SIGCONT);
    if wait_group_gone(pgid, grace) {
        return;
    }
    signal_group(pgid, libc::SIGKILL);
    wait_group_gone(pgid, Duration::from_secs(1));
}

fn wait_group_gone(pgid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if !group_alive(pgid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether a process of the group is still running. Zombies do not count:
/// an orphan's zombie waits for init to reap it, which may take a while.
pub fn group_alive(pgid: u32) -> bool {
    if !signal_group(pgid, 0) {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries.flatten().any(|e| {
        e.file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            && std::fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|stat| parse_stat(&stat))
                .is_some_and(|(state, group)| group == pgid && !matches!(state, 'Z' | 'X'))
    })
}

/// The state and process group in `/proc/PID/stat`: `pid (comm) S ppid
/// pgrp ...`, where `comm` may hold spaces and parentheses.
fn parse_stat(stat: &str) -> Option<(char, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    Some((state, fields.next()?.parse().ok()?))
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

/// Waits until the process `pid` (a child of this process) has ended, and
/// reaps it.
///
/// `watch --hot` traces the program from this process, and a tracer's
/// stops are reported to every `waitpid` on the child in the tracer's
/// process, asked for or not: `Child::wait` (one `waitpid`) would return
/// "stopped by signal 5" as if the program had ended, and take the
/// notification from the tracer. So the exit is awaited on a pidfd, which
/// only an exit makes readable, and nothing is taken from the tracer; the
/// reaping `waitpid` (also the fallback where pidfds are missing) goes on
/// waiting past any stop it is shown.
pub fn wait_for_exit(pid: u32) -> std::io::Result<ExitStatus> {
    wait_for_exit_with(pid, true)
}

#[allow(unsafe_code)]
fn wait_for_exit_with(pid: u32, use_pidfd: bool) -> std::io::Result<ExitStatus> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::process::ExitStatusExt;
    let pid = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
    // SAFETY: plain system call; a non-negative result is a new fd we own.
    let fd = match use_pidfd {
        true => unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) },
        false => -1,
    };
    if let Ok(fd) = i32::try_from(fd)
        && fd >= 0
    {
        // SAFETY: `fd` was just returned by pidfd_open and is ours alone.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        loop {
            let mut poll = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one pollfd on the stack.
            let r = unsafe { libc::poll(&mut poll, 1, -1) };
            if r > 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                break;
            }
        }
    }
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes one int into `status`.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == -1 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            return Ok(ExitStatus::from_raw(status));
        }
        // Stopped or continued: by a tracer or by job control, not gone.
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
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn reads_state_and_group_from_proc_stat() {
        assert_eq!(parse_stat("42 (a (b) c) Z 1 40 40 0 -1"), Some(('Z', 40)));
    }

    #[test]
    fn describes_codes_and_signals() {
        assert_eq!(describe(ExitStatus::from_raw(3 << 8)), "exit status 3");
        assert_eq!(describe(ExitStatus::from_raw(11)), "signal 11 (SIGSEGV)");
    }

    /// A tracer in the watcher's own process (as `watch --hot` is) stops
    /// the program over and over: the waiter must neither report an end
    /// nor take the tracer's notifications, and must still report the
    /// real end. Both ways of waiting: on a pidfd, and `waitpid` alone.
    #[test]
    fn a_tracer_in_the_same_process_is_not_taken_for_an_exit() {
        for use_pidfd in [true, false] {
            let child = Command::new("sleep").arg("30").spawn().unwrap();
            let pid = child.id();
            drop(child);
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(wait_for_exit_with(pid, use_pidfd));
            });
            std::thread::sleep(Duration::from_millis(20));
            let tracer = std::thread::spawn(move || {
                let mut t = crate::reload::ptrace::Tracee::seize(pid as i32).unwrap();
                for _ in 0..30 {
                    t.stop_all().unwrap();
                    t.resume_all_but(None).unwrap();
                }
                t.detach().unwrap();
            });
            let deadline = Instant::now() + Duration::from_secs(20);
            while !tracer.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let finished = tracer.is_finished();
            let early = rx.try_recv().ok();
            kill_child(pid, libc::SIGKILL);
            assert!(finished, "the tracer hung (pidfd: {use_pidfd})");
            tracer.join().unwrap();
            assert!(
                early.is_none(),
                "the waiter reported {early:?} while the program ran (pidfd: {use_pidfd})"
            );
            let status = rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
            assert_eq!(status.signal(), Some(libc::SIGKILL));
        }
    }

    #[allow(unsafe_code)]
    fn kill_child(pid: u32, signal: i32) {
        // SAFETY: kill only sends a signal to our own child.
        unsafe { libc::kill(pid as i32, signal) };
    }

    #[test]
    fn stops_a_group_that_ignores_sigterm() {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "trap '' TERM; sleep 30 & wait"])
            .process_group(0);
        let child = cmd.spawn().unwrap();
        let pid = child.id();
        drop(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(wait_for_exit(pid).ok());
        });
        // Let the shell install its trap.
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        stop_group(pid, Duration::from_millis(200));
        assert!(t.elapsed() >= Duration::from_millis(200));
        assert!(!group_alive(pid), "the group outlived SIGKILL");
        let status = rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}
