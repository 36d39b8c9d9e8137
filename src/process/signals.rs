//! Signals read from a file descriptor (signalfd) instead of caught by
//! handlers, and a wait on several descriptors at once: an event loop that
//! hears of a child's end, a signal and a pipe alike.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Signals blocked in this thread (in the watch guard, its only one) and
/// read from a descriptor instead. A child inherits the signal mask: see
/// [`Signals::unblock_in`].
#[derive(Debug)]
pub struct Signals {
    fd: OwnedFd,
    set: libc::sigset_t,
}

impl Signals {
    /// Blocks `signals` and opens a descriptor that reads them.
    #[allow(unsafe_code)]
    pub fn block(signals: &[i32]) -> std::io::Result<Signals> {
        // SAFETY: a signal set on the stack, filled by sigemptyset and
        // sigaddset; pthread_sigmask and signalfd read it; a non-negative
        // result of signalfd is a new descriptor we own.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &s in signals {
                libc::sigaddset(&mut set, s);
            }
            let r = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if r != 0 {
                return Err(std::io::Error::from_raw_os_error(r));
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(Signals {
                fd: OwnedFd::from_raw_fd(fd),
                set,
            })
        }
    }

    /// Unblocks these signals in the child `command` starts, which would
    /// otherwise inherit them blocked: a program deaf to Ctrl-C and to
    /// SIGTERM.
    #[allow(unsafe_code)]
    pub fn unblock_in(&self, command: &mut Command) {
        let set = self.set;
        // SAFETY: in the child only `pthread_sigmask` runs, which is
        // async-signal-safe, on a copy of the set.
        unsafe {
            command.pre_exec(move || {
                match libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) {
                    0 => Ok(()),
                    r => Err(std::io::Error::from_raw_os_error(r)),
                }
            });
        }
    }

    /// The signals that arrived since the last call (each once, however
    /// often it came), without waiting.
    #[allow(unsafe_code)]
    pub fn take(&self) -> Vec<i32> {
        let mut arrived = Vec::new();
        loop {
            // SAFETY: signalfd_siginfo is plain data, all-zero is valid.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: reads at most `size` bytes into `info`.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&raw mut info).cast::<libc::c_void>(),
                    size,
                )
            };
            if usize::try_from(n) != Ok(size) {
                // EAGAIN: none left.
                return arrived;
            }
            let signal = info.ssi_signo as i32;
            if !arrived.contains(&signal) {
                arrived.push(signal);
            }
        }
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Waits until one of `fds` can be read (or is at its end); which ones.
#[allow(unsafe_code)]
pub fn wait_readable<const N: usize>(fds: [BorrowedFd<'_>; N]) -> std::io::Result<[bool; N]> {
    let mut polls = fds.map(|fd| libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    });
    loop {
        // SAFETY: `polls` is an array of N pollfds on the stack.
        let r = unsafe { libc::poll(polls.as_mut_ptr(), N as libc::nfds_t, -1) };
        if r >= 0 {
            return Ok(polls.map(|p| p.revents != 0));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
