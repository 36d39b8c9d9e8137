//! Processes as a tree: who descends from whom, read from `/proc`; this
//! process as the subreaper of what it starts, and the reaping that comes
//! with it; stopping every descendant, also one that left its process
//! group or its session.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use super::signal_group;

/// One process, as `/proc/PID/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    /// `R`, `S`, `T`, `Z`...
    pub state: char,
    /// Clock ticks after boot: with the pid, names one process, not a
    /// later one given the same pid.
    pub start: u64,
}

impl Proc {
    /// Running, sleeping or stopped: not a zombie waiting to be reaped.
    pub fn alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X')
    }
}

/// Makes this process the subreaper of its descendants: one whose parent
/// ends becomes this process's child, not init's, so it stays a
/// descendant (to find, stop and reap). Linux 3.4 and later.
#[allow(unsafe_code)]
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: plain system call, no pointers.
    match unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Reaps every child of this process that has ended, without waiting.
///
/// Only for a process that traces nothing and whose children no one else
/// waits for, as the watch guard: in the process of a tracer, a wait for
/// any child takes the tracer's notifications.
#[allow(unsafe_code)]
pub fn reap_children() -> Vec<(u32, ExitStatus)> {
    use std::os::unix::process::ExitStatusExt;
    let mut reaped = Vec::new();
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes one int into `status`.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        match u32::try_from(pid) {
            Ok(0) => break,
            Ok(pid) => reaped.push((pid, ExitStatus::from_raw(status))),
            // ECHILD (no child left), or EINTR: nothing more now.
            Err(_) => break,
        }
    }
    reaped
}

/// Every process, from `/proc`; `None` where it cannot be read.
pub fn processes() -> Option<Vec<Proc>> {
    let entries = std::fs::read_dir("/proc").ok()?;
    Some(
        entries
            .flatten()
            .filter_map(|e| {
                let pid = e.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
                parse_stat(pid, &stat)
            })
            .collect(),
    )
}

/// The process `pid`, from `/proc`; `None` when there is none.
pub fn process(pid: u32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(pid, &stat)
}

/// `pid (comm) S ppid pgrp session ... starttime ...`, where `comm` may
/// hold spaces and parentheses; the start time is the 22nd field.
fn parse_stat(pid: u32, stat: &str) -> Option<Proc> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Proc {
        pid,
        ppid: fields.get(1)?.parse().ok()?,
        state: fields.first()?.chars().next()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// The processes of `procs` that descend from `ancestor`, at any depth,
/// zombies included.
pub fn descendants(ancestor: u32, procs: &[Proc]) -> Vec<Proc> {
    let mut children: BTreeMap<u32, Vec<&Proc>> = BTreeMap::new();
    for p in procs {
        children.entry(p.ppid).or_default().push(p);
    }
    let mut found = Vec::new();
    let mut visited = BTreeSet::from([ancestor]);
    let mut parents = vec![ancestor];
    while let Some(parent) = parents.pop() {
        for child in children.get(&parent).into_iter().flatten() {
            // A pid seen twice would be a cycle in a torn read of /proc.
            if visited.insert(child.pid) {
                found.push(**child);
                parents.push(child.pid);
            }
        }
    }
    found
}

/// Stops every process below `ancestor`, in whatever group or session:
/// SIGTERM (and SIGCONT, for a stopped one) to each, then SIGKILL to what
/// is left after `grace` (at once when it is zero). Returns once none is
/// left, or a second after SIGKILL should one not die of it (as in
/// uninterruptible sleep).
///
/// A process found below `ancestor` once is followed to its end, also if
/// it is reparented away (to init, where this process is no subreaper).
/// `reap` runs before every look: the caller collects its children there,
/// since a zombie no longer counts as running. Where `/proc` cannot be
/// read, `group` (the program's process group) is all there is to go by.
pub fn stop_descendants(ancestor: u32, group: u32, grace: Duration, mut reap: impl FnMut()) {
    let (mut signal, mut until) = match grace.is_zero() {
        true => (libc::SIGKILL, Instant::now() + Duration::from_secs(1)),
        false => (libc::SIGTERM, Instant::now() + grace),
    };
    let mut seen: BTreeMap<u32, u64> = BTreeMap::new();
    let mut signalled: Vec<u32> = Vec::new();
    loop {
        reap();
        match processes() {
            Some(procs) => {
                for d in descendants(ancestor, &procs) {
                    seen.entry(d.pid).or_insert(d.start);
                }
                let left: Vec<u32> = procs
                    .iter()
                    .filter(|p| p.alive() && seen.get(&p.pid) == Some(&p.start))
                    .map(|p| p.pid)
                    .collect();
                if left.is_empty() {
                    return;
                }
                for pid in left {
                    if !signalled.contains(&pid) {
                        signal_process(pid, signal);
                        if signal == libc::SIGTERM {
                            signal_process(pid, libc::SIGCONT);
                        }
                        signalled.push(pid);
                    }
                }
            }
            None => {
                if !signal_group(group, 0) {
                    return;
                }
                if signalled.is_empty() {
                    signal_group(group, signal);
                    if signal == libc::SIGTERM {
                        signal_group(group, libc::SIGCONT);
                    }
                    signalled.push(group);
                }
            }
        }
        if Instant::now() >= until {
            if signal == libc::SIGKILL {
                return;
            }
            signal = libc::SIGKILL;
            signalled.clear();
            until = Instant::now() + Duration::from_secs(1);
            continue;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[allow(unsafe_code)]
fn signal_process(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid)
        && pid > 1
    {
        // SAFETY: plain system call.
        unsafe { libc::kill(pid, signal) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn reads_parent_state_and_start_time_from_proc_stat() {
        let stat = "42 (a (b) c) Z 7 40 40 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 9001 0";
        assert_eq!(
            parse_stat(42, stat),
            Some(Proc {
                pid: 42,
                ppid: 7,
                state: 'Z',
                start: 9001
            })
        );
        assert_eq!(parse_stat(42, "42 (cut short) S 7"), None);
    }

    #[test]
    fn finds_descendants_at_any_depth_and_nothing_else() {
        let p = |pid, ppid| Proc {
            pid,
            ppid,
            state: 'S',
            start: 0,
        };
        let procs = [p(1, 0), p(10, 1), p(11, 10), p(12, 11), p(13, 10), p(20, 1)];
        let mut found: Vec<u32> = descendants(10, &procs).iter().map(|d| d.pid).collect();
        found.sort();
        assert_eq!(found, [11, 12, 13]);
        assert!(descendants(12, &procs).is_empty());
    }

    /// A shell with two children: one in a session of its own that ignores
    /// SIGTERM (its own child too), one in the shell's group. All three
    /// end, the first two only of SIGKILL after the grace period.
    #[test]
    fn stops_every_descendant_also_in_a_session_of_its_own() {
        let script = "setsid sh -c 'trap \"\" TERM; sleep 31' & sleep 32 & wait";
        let mut shell = Command::new("sh").args(["-c", script]).spawn().unwrap();
        let root = shell.id();
        let sleeps = |procs: &[Proc]| -> Vec<Proc> {
            descendants(root, procs)
                .into_iter()
                .filter(|d| {
                    let cmdline = std::fs::read(format!("/proc/{}/cmdline", d.pid));
                    cmdline.is_ok_and(|c| c.starts_with(b"sleep\0"))
                })
                .collect()
        };
        // Both sleeps run (so the trap is set, and inherited).
        let deadline = Instant::now() + Duration::from_secs(10);
        let started = loop {
            let found = sleeps(&processes().unwrap());
            if found.len() == 2 {
                break found;
            }
            assert!(Instant::now() < deadline, "the sleeps never ran");
            std::thread::sleep(Duration::from_millis(10));
        };
        let t = Instant::now();
        stop_descendants(root, root, Duration::from_millis(200), || {});
        assert!(t.elapsed() >= Duration::from_millis(200), "no grace period");
        let procs = processes().unwrap();
        for s in started {
            let now = procs.iter().find(|p| p.pid == s.pid && p.start == s.start);
            assert!(now.is_none_or(|p| !p.alive()), "{s:?} outlived the stop");
        }
        // The shell's children are gone: its `wait` returns.
        assert!(shell.wait().unwrap().success());
    }
}
