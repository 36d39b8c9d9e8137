//! Control of a running process from outside with ptrace: stopping all its
//! threads, calling a function on one of them, reading and writing memory.

#![allow(unsafe_code)]

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use libc::{c_long, c_void, pid_t, user_regs_struct};

/// `NT_X86_XSTATE`: every vector register, for a call that must not
/// disturb the interrupted code.
const NT_X86_XSTATE: libc::c_int = 0x202;
/// Room for the xsave area of any x86_64 CPU (AVX-512 needs ~2.7 KiB).
const XSTATE_LEN: usize = 16 * 1024;
/// How long a call inside the program may take before it is given up.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// What [`Tracee::next_status`] reports for a stop whose notification
/// someone else consumed: an interrupt stop (`PTRACE_EVENT_STOP`).
const STOLEN_STOP: i32 = ((libc::SIGTRAP | (libc::PTRACE_EVENT_STOP << 8)) << 8) | 0x7f;

/// A thread's state letter in `/proc` (`t`: stopped by a tracer).
fn thread_state(pid: pid_t, tid: pid_t) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

/// One thread of the traced process.
#[derive(Debug)]
struct Thread {
    tid: pid_t,
    stopped: bool,
    /// A signal that arrived while we stopped the thread, sent again when
    /// we leave.
    pending_signal: Option<i32>,
}

/// A process whose threads are all attached (`PTRACE_SEIZE`).
#[derive(Debug)]
pub struct Tracee {
    pid: pid_t,
    threads: Vec<Thread>,
    mem: File,
}

/// The registers of a thread, saved before a call and restored after.
#[derive(Debug, Clone)]
pub struct SavedState {
    regs: user_regs_struct,
    xstate: Vec<u8>,
    xstate_len: usize,
}

impl SavedState {}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn ptrace(request: libc::c_uint, tid: pid_t, addr: usize, data: usize) -> Result<c_long> {
    // SAFETY: every request used here reads or writes only the tracee or
    // the buffer `data` points at, which the callers size for the request.
    let r = unsafe { libc::ptrace(request, tid, addr as *mut c_void, data as *mut c_void) };
    if r == -1 {
        let e = std::io::Error::last_os_error();
        return Err(e).with_context(|| format!("ptrace request {request} on thread {tid} failed"));
    }
    Ok(r)
}

/// The thread ids of a process.
pub fn list_threads(pid: pid_t) -> Result<Vec<pid_t>> {
    let dir = format!("/proc/{pid}/task");
    let mut tids = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("failed to list `{dir}`"))? {
        let name = entry?.file_name();
        if let Some(tid) = name.to_str().and_then(|s| s.parse().ok()) {
            tids.push(tid);
        }
    }
    Ok(tids)
}

impl Tracee {
    /// Attaches to every thread of `pid` without stopping them.
    pub fn seize(pid: pid_t) -> Result<Tracee> {
        let mem = File::options()
            .read(true)
            .write(true)
            .open(format!("/proc/{pid}/mem"))
            .with_context(|| format!("failed to open the memory of process {pid}"))?;
        let mut t = Tracee {
            pid,
            threads: Vec::new(),
            mem,
        };
        t.seize_new_threads()?;
        Ok(t)
    }

    /// Attaches threads not attached yet; returns how many.
    fn seize_new_threads(&mut self) -> Result<usize> {
        let mut added = 0;
        for tid in list_threads(self.pid)? {
            if self.threads.iter().any(|t| t.tid == tid) {
                continue;
            }
            match ptrace(libc::PTRACE_SEIZE, tid, 0, 0) {
                Ok(_) => {}
                // Exited in the meantime.
                Err(_) if errno() == libc::ESRCH => continue,
                Err(e) => {
                    return Err(e).context(
                        "cannot trace the program (is another debugger attached, \
                         or is ptrace forbidden here?)",
                    );
                }
            }
            self.threads.push(Thread {
                tid,
                stopped: false,
                pending_signal: None,
            });
            added += 1;
        }
        Ok(added)
    }

    pub fn thread_ids(&self) -> Vec<pid_t> {
        self.threads.iter().map(|t| t.tid).collect()
    }

    /// The next wait status of `tid`, or `None` once it exited. Another
    /// thread of this process waiting on the program (as `Child::wait`
    /// does) can consume a stop's notification: a thread seen in tracing
    /// stop in `/proc` with nothing to wait for is reported as an
    /// interrupt stop.
    fn next_status(&self, tid: pid_t, timeout: Option<Duration>) -> Result<Option<i32>> {
        let start = Instant::now();
        let poll = |status: &mut i32| {
            // SAFETY: waitpid writes one int into `status`.
            unsafe { libc::waitpid(tid, status, libc::__WALL | libc::WNOHANG) }
        };
        loop {
            let mut status = 0;
            let mut r = poll(&mut status);
            if r == 0
                && start.elapsed() > Duration::from_millis(2)
                && thread_state(self.pid, tid) == Some('t')
            {
                // The notification follows the state change closely.
                std::thread::sleep(Duration::from_millis(1));
                r = poll(&mut status);
                if r == 0 && thread_state(self.pid, tid) == Some('t') {
                    return Ok(Some(STOLEN_STOP));
                }
            }
            match r {
                0 => {
                    if timeout.is_some_and(|t| start.elapsed() > t) {
                        bail!("a call inside the program did not return");
                    }
                    std::thread::sleep(Duration::from_micros(50));
                }
                -1 => match errno() {
                    libc::EINTR => {}
                    libc::ECHILD => return Ok(None),
                    _ => bail!(
                        "waitpid on thread {tid} failed: {}",
                        std::io::Error::last_os_error()
                    ),
                },
                _ if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) => return Ok(None),
                _ if libc::WIFSTOPPED(status) => return Ok(Some(status)),
                _ => {}
            }
        }
    }

    /// Waits until `tid` is in a ptrace stop; false if it exited.
    fn wait_stop(&mut self, tid: pid_t) -> Result<bool> {
        loop {
            let Some(status) = self.next_status(tid, None)? else {
                return Ok(false);
            };
            let sig = libc::WSTOPSIG(status);
            let event = status >> 16;
            if event != 0 || sig == libc::SIGTRAP {
                return Ok(true);
            }
            // A signal on its way to the thread: hold it back, deliver it
            // when we leave, and wait for our own stop.
            if let Some(t) = self.threads.iter_mut().find(|t| t.tid == tid) {
                t.pending_signal = Some(sig);
            }
            ptrace(libc::PTRACE_CONT, tid, 0, 0)?;
        }
    }

    /// Stops every thread, including threads started meanwhile.
    pub fn stop_all(&mut self) -> Result<()> {
        loop {
            self.stop_known()?;
            if self.seize_new_threads()? == 0 {
                return Ok(());
            }
        }
    }

    /// Stops the attached threads that run.
    fn stop_known(&mut self) -> Result<()> {
        let tids: Vec<pid_t> = self
            .threads
            .iter()
            .filter(|t| !t.stopped)
            .map(|t| t.tid)
            .collect();
        for &tid in &tids {
            // A thread that exited is found out by the wait below.
            let _ = ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0);
        }
        for tid in tids {
            if self.wait_stop(tid)? {
                self.thread_mut(tid).stopped = true;
            } else {
                self.threads.retain(|t| t.tid != tid);
            }
        }
        Ok(())
    }

    fn thread_mut(&mut self, tid: pid_t) -> &mut Thread {
        self.threads
            .iter_mut()
            .find(|t| t.tid == tid)
            .expect("known thread")
    }

    /// Lets every stopped thread but `except` run again.
    pub fn resume_all_but(&mut self, except: Option<pid_t>) -> Result<()> {
        for t in &mut self.threads {
            if t.stopped && Some(t.tid) != except {
                ptrace(libc::PTRACE_CONT, t.tid, 0, 0)?;
                t.stopped = false;
            }
        }
        Ok(())
    }

    pub fn regs(&self, tid: pid_t) -> Result<user_regs_struct> {
        // SAFETY: user_regs_struct is plain integers; all zeros is valid.
        let mut regs: user_regs_struct = unsafe { std::mem::zeroed() };
        ptrace(
            libc::PTRACE_GETREGS,
            tid,
            0,
            &mut regs as *mut user_regs_struct as usize,
        )?;
        Ok(regs)
    }

    fn set_regs(&self, tid: pid_t, regs: &user_regs_struct) -> Result<()> {
        ptrace(
            libc::PTRACE_SETREGS,
            tid,
            0,
            regs as *const user_regs_struct as usize,
        )?;
        Ok(())
    }

    pub fn save(&self, tid: pid_t) -> Result<SavedState> {
        let regs = self.regs(tid)?;
        let mut xstate = vec![0u8; XSTATE_LEN];
        let mut iov = libc::iovec {
            iov_base: xstate.as_mut_ptr() as *mut c_void,
            iov_len: xstate.len(),
        };
        ptrace(
            libc::PTRACE_GETREGSET,
            tid,
            NT_X86_XSTATE as usize,
            &mut iov as *mut libc::iovec as usize,
        )?;
        Ok(SavedState {
            regs,
            xstate_len: iov.iov_len,
            xstate,
        })
    }

    pub fn restore(&self, tid: pid_t, saved: &SavedState) -> Result<()> {
        self.set_regs(tid, &saved.regs)?;
        let mut xstate = saved.xstate.clone();
        let mut iov = libc::iovec {
            iov_base: xstate.as_mut_ptr() as *mut c_void,
            iov_len: saved.xstate_len,
        };
        ptrace(
            libc::PTRACE_SETREGSET,
            tid,
            NT_X86_XSTATE as usize,
            &mut iov as *mut libc::iovec as usize,
        )?;
        Ok(())
    }

    /// Calls `func(args...)` on the stopped thread `tid`, with `data`
    /// copied below its stack; `args` may name `DATA` to pass the copy's
    /// address. The thread's registers must be saved by the caller and
    /// restored after. Returns `rax`.
    pub fn call(&mut self, tid: pid_t, func: u64, args: &[Arg], data: &[u8]) -> Result<u64> {
        let mut regs = self.regs(tid)?;
        // Below the red zone, then room for `data`, 16-byte aligned.
        let data_addr = (regs.rsp - 256 - data.len() as u64) & !15;
        self.write(data_addr, data)?;
        let mut rsp = (data_addr - 64) & !15;
        rsp -= 8;
        // Return to address 0: the fault tells us the call is done.
        self.write(rsp, &0u64.to_le_bytes())?;
        let value = |a: &Arg| match a {
            Arg::Int(v) => *v,
            Arg::Data(off) => data_addr + *off as u64,
        };
        let mut slots = [0u64; 6];
        for (slot, a) in slots.iter_mut().zip(args) {
            *slot = value(a);
        }
        regs.rdi = slots[0];
        regs.rsi = slots[1];
        regs.rdx = slots[2];
        regs.rcx = slots[3];
        regs.r8 = slots[4];
        regs.r9 = slots[5];
        regs.rax = 0;
        regs.rsp = rsp;
        regs.rip = func;
        // Not in a system call any more: no restart on resume.
        regs.orig_rax = u64::MAX;
        self.set_regs(tid, &regs)?;
        ptrace(libc::PTRACE_CONT, tid, 0, 0)?;
        loop {
            let Some(status) = self.next_status(tid, Some(CALL_TIMEOUT))? else {
                bail!("the program ended during a call inside it");
            };
            let sig = libc::WSTOPSIG(status);
            let regs = self.regs(tid)?;
            // Returned to address 0 (the fault's notification may have
            // been consumed elsewhere: then only the address tells).
            if regs.rip == 0 {
                return Ok(regs.rax);
            }
            if sig == libc::SIGSEGV || sig == libc::SIGBUS || sig == libc::SIGILL {
                bail!(
                    "a call inside the program faulted (signal {sig} at {:#x})",
                    regs.rip
                );
            }
            // Another signal (or an event stop): keep it for later.
            if status >> 16 == 0 && sig != libc::SIGTRAP {
                self.thread_mut(tid).pending_signal = Some(sig);
            }
            ptrace(libc::PTRACE_CONT, tid, 0, 0)?;
        }
    }

    /// Runs one instruction of a stopped thread.
    pub fn single_step(&mut self, tid: pid_t) -> Result<()> {
        ptrace(libc::PTRACE_SINGLESTEP, tid, 0, 0)?;
        self.wait_stop(tid)?;
        Ok(())
    }

    pub fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.mem
            .read_exact_at(&mut buf, addr)
            .with_context(|| format!("failed to read the program's memory at {addr:#x}"))?;
        Ok(buf)
    }

    /// Writes the program's memory, code included: the kernel lets a
    /// tracer write pages the program itself may not.
    pub fn write(&self, addr: u64, bytes: &[u8]) -> Result<()> {
        self.mem
            .write_all_at(bytes, addr)
            .with_context(|| format!("failed to write the program's memory at {addr:#x}"))
    }

    pub fn read_c_string(&self, addr: u64) -> Result<String> {
        let bytes = self.read(addr, 512)?;
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Ok(String::from_utf8_lossy(&bytes[..end]).into_owned())
    }

    /// Detaches from every thread, letting them run, and sends again the
    /// signals held back.
    pub fn detach(mut self) -> Result<()> {
        self.detach_all()
    }

    fn detach_all(&mut self) -> Result<()> {
        // Only a stopped thread can be detached.
        self.stop_known()?;
        let mut first_err = None;
        for t in std::mem::take(&mut self.threads) {
            if let Err(e) = ptrace(libc::PTRACE_DETACH, t.tid, 0, 0) {
                first_err.get_or_insert(e);
            }
            if let Some(sig) = t.pending_signal {
                // SAFETY: tgkill only sends a signal.
                unsafe { libc::syscall(libc::SYS_tgkill, self.pid, t.tid, sig) };
            }
        }
        match first_err {
            Some(e) if errno() != libc::ESRCH => Err(e),
            _ => Ok(()),
        }
    }
}

impl Drop for Tracee {
    fn drop(&mut self) {
        let _ = self.detach_all();
    }
}

/// An argument of [`Tracee::call`].
#[derive(Debug, Clone, Copy)]
pub enum Arg {
    Int(u64),
    /// The address of `data[offset..]` in the program.
    Data(usize),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};

    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn libc_symbol(pid: pid_t, name: &str) -> u64 {
        let maps = crate::reload::elf::maps(pid).unwrap();
        let libc = maps
            .iter()
            .filter_map(|m| m.path.clone())
            .find(|p| p.file_name().is_some_and(|n| n == "libc.so.6"))
            .unwrap();
        crate::reload::elf::load_bias(&maps, &libc, 0).unwrap()
            + crate::reload::elf::dynamic_symbol(&libc, name).unwrap()
    }

    fn state(pid: pid_t) -> char {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat.rsplit(") ").next().unwrap().chars().next().unwrap()
    }

    #[test]
    fn a_call_inside_a_sleeping_process_returns_and_the_sleep_goes_on() {
        let child = Kill(Command::new("sleep").arg("30").spawn().unwrap());
        let pid = child.0.id() as pid_t;
        std::thread::sleep(Duration::from_millis(100));
        let getpid = libc_symbol(pid, "getpid");
        let atoi = libc_symbol(pid, "atoi");
        let mut t = Tracee::seize(pid).unwrap();
        t.stop_all().unwrap();
        let saved = t.save(pid).unwrap();
        assert!(saved.regs.orig_rax as i64 >= 0, "blocked in a system call");
        assert_eq!(t.call(pid, getpid, &[], &[]).unwrap(), pid as u64);
        let n = t.call(pid, atoi, &[Arg::Data(0)], b"1234\0").unwrap();
        assert_eq!(n, 1234);
        t.restore(pid, &saved).unwrap();
        t.detach().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(state(pid), 'S', "still sleeping");
    }

    /// `cargo dyndev watch` waits for its program with `Child::wait` on a
    /// thread of its own; that wait consumes the stops of a tracer in the
    /// same process (seen 8 times in 10 before `next_status` looked at
    /// `/proc`), and the tracer must not hang on them.
    #[test]
    fn another_thread_waiting_on_the_program_does_not_hang_the_tracer() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as pid_t;
        std::thread::sleep(Duration::from_millis(50));
        let getpid = libc_symbol(pid, "getpid");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait().map(|s| s.to_string()));
        });
        std::thread::sleep(Duration::from_millis(20));
        let tracer = std::thread::spawn(move || {
            let mut t = Tracee::seize(pid).unwrap();
            for _ in 0..10 {
                t.stop_all().unwrap();
                t.resume_all_but(None).unwrap();
            }
            t.stop_all().unwrap();
            let saved = t.save(pid).unwrap();
            let got = t.call(pid, getpid, &[], &[]).unwrap();
            t.restore(pid, &saved).unwrap();
            t.detach().unwrap();
            got
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !tracer.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let finished = tracer.is_finished();
        let waiter_saw = rx.try_recv().ok();
        // SAFETY: kill only sends a signal to our own child.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, libc::SIGKILL)
        };
        assert!(finished, "the tracer hung (the waiter saw {waiter_saw:?})");
        assert_eq!(tracer.join().unwrap(), pid as u64);
    }

    #[test]
    fn a_busy_thread_can_be_stepped() {
        let child = Kill(
            Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .unwrap(),
        );
        let pid = child.0.id() as pid_t;
        std::thread::sleep(Duration::from_millis(50));
        let mut t = Tracee::seize(pid).unwrap();
        for _ in 0..20 {
            t.stop_all().unwrap();
            let before = t.regs(pid).unwrap().rip;
            t.single_step(pid).unwrap();
            assert_ne!(t.regs(pid).unwrap().rip, before);
            t.resume_all_but(None).unwrap();
        }
        t.detach().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(state(pid), 'R', "still running");
    }
}
