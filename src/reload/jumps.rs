//! Jumps from old code to new: a `jmp rel32` written over each old entry,
//! through a trampoline page near it when the new code is out of reach,
//! after every thread inside the bytes it covers has stepped out.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};

use super::elf::{self, Image};
use super::names::demangle_path;
use super::ptrace::{Arg, Tracee};
use super::{Outcome, Session, libc_path};

/// `jmp rel32`.
const JMP_LEN: u64 = 5;
/// `jmp [rip+0]` then the 8-byte target.
const TRAMPOLINE_LEN: u64 = 16;
/// Trampoline pages are mapped this large.
const TRAMPOLINE_PAGE: u64 = 64 * 1024;
/// How far a `rel32` reaches, with a margin.
const REACH: u64 = (1 << 31) - (1 << 20);

/// A page of jumps near old code, for targets a `rel32` cannot reach.
#[derive(Debug)]
pub(super) struct TrampolinePage {
    addr: u64,
    used: u64,
}

impl Session {
    /// Every old entry (of every earlier generation) with its new target.
    pub(super) fn plan(
        &self,
        outcome: &mut Outcome,
        changed: Option<(&[PathBuf], &[PathBuf])>,
    ) -> Vec<Site> {
        let mut sites = Vec::new();
        let (new, olds) = self.generations.split_last().expect("generations");
        // What the previous code defined and the new does not: the whole
        // previous generation against the new library, or the running
        // versions of the changed objects against their new versions (the
        // library keeps only what is reachable).
        let functions = |objects: &[PathBuf]| -> BTreeSet<String> {
            objects
                .iter()
                .filter_map(|o| Image::read(o).ok())
                .flat_map(|i| i.functions.into_keys())
                .collect()
        };
        let (before, after): (BTreeSet<String>, BTreeSet<String>) = match changed {
            Some((previous, current)) => (functions(previous), functions(current)),
            None => (
                olds.last()
                    .map(|p| p.image.functions.keys().cloned().collect())
                    .unwrap_or_default(),
                new.image.functions.keys().cloned().collect(),
            ),
        };
        outcome.stale = before
            .difference(&after)
            .map(|name| demangle_path(name))
            .collect();
        outcome.stale.sort();
        outcome.stale.dedup();
        for old in olds {
            for (name, copies) in &old.image.functions {
                let Some(nf) = new.image.functions.get(name).and_then(|n| n.first()) else {
                    continue;
                };
                for f in copies {
                    if f.room < JMP_LEN {
                        outcome.too_short.push(demangle_path(name));
                        continue;
                    }
                    sites.push(Site {
                        entry: old.bias + f.addr,
                        target: new.bias + nf.addr,
                    });
                }
            }
        }
        sites
    }

    /// Gives every site whose target is out of `rel32` reach a trampoline
    /// slot within reach, mapping pages in the program as needed.
    pub(super) fn ensure_trampolines(
        &mut self,
        tracee: &mut Tracee,
        worker: i32,
        plan: &[Site],
    ) -> Result<()> {
        let mut mmap_addr = None;
        for site in plan {
            if reaches(site.entry, site.target) || self.slots.contains_key(&site.entry) {
                continue;
            }
            let page =
                match self.pages.iter_mut().find(|p| {
                    p.used + TRAMPOLINE_LEN <= TRAMPOLINE_PAGE && reaches(site.entry, p.addr)
                }) {
                    Some(p) => p,
                    None => {
                        let mmap = match mmap_addr {
                            Some(a) => a,
                            None => {
                                let maps = elf::maps(self.pid)?;
                                let libc = libc_path(&maps)?;
                                let a = elf::load_bias(&maps, &libc, 0)?
                                    + elf::dynamic_symbol(&libc, "mmap")?;
                                mmap_addr = Some(a);
                                a
                            }
                        };
                        let addr = self.map_page_near(tracee, worker, mmap, site.entry)?;
                        self.pages.push(TrampolinePage { addr, used: 0 });
                        self.pages.last_mut().expect("just pushed")
                    }
                };
            let slot = page.addr + page.used;
            page.used += TRAMPOLINE_LEN;
            self.slots.insert(site.entry, slot);
        }
        Ok(())
    }

    pub(super) fn map_page_near(
        &self,
        tracee: &mut Tracee,
        worker: i32,
        mmap: u64,
        near: u64,
    ) -> Result<u64> {
        for _ in 0..8 {
            let maps = elf::maps(self.pid)?;
            let at = elf::free_range_near(&maps, near, TRAMPOLINE_PAGE, REACH)
                .context("no free address space near the program's code for jumps")?;
            let got = tracee.call(
                worker,
                mmap,
                &[
                    Arg::Int(at),
                    Arg::Int(TRAMPOLINE_PAGE),
                    Arg::Int((libc::PROT_READ | libc::PROT_EXEC) as u64),
                    Arg::Int(
                        (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE)
                            as u64,
                    ),
                    Arg::Int(u64::MAX),
                    Arg::Int(0),
                ],
                &[],
            )?;
            if got == at {
                return Ok(at);
            }
        }
        bail!("could not map a page for jumps near {near:#x}")
    }

    pub(super) fn step_out(&self, tracee: &mut Tracee, plan: &[Site]) -> Result<usize> {
        let entries: Vec<u64> = plan.iter().map(|s| s.entry).collect();
        step_out(tracee, entries)
    }

    pub(super) fn write_jump(&self, tracee: &Tracee, site: &Site) -> Result<()> {
        let dest = match self.slots.get(&site.entry) {
            Some(&slot) if !reaches(site.entry, site.target) => {
                tracee.write(slot, &trampoline(site.target))?;
                slot
            }
            _ => site.target,
        };
        tracee.write(site.entry, &jump(site.entry, dest)?)
    }
}

/// Single-steps every stopped thread whose next instruction is inside the
/// bytes a jump will cover (past an entry's first byte), until it is out.
/// Returns how many threads moved.
pub fn step_out(tracee: &mut Tracee, mut entries: Vec<u64>) -> Result<usize> {
    entries.sort_unstable();
    let inside = |rip: u64| {
        let i = entries.partition_point(|&e| e < rip);
        i > 0 && rip < entries[i - 1] + JMP_LEN
    };
    let mut stepped = 0;
    for tid in tracee.thread_ids() {
        let mut steps = 0;
        while inside(tracee.regs(tid)?.rip) {
            if steps == 64 {
                bail!("thread {tid} stays at the start of a function being patched");
            }
            tracee.single_step(tid)?;
            steps += 1;
        }
        if steps > 0 {
            stepped += 1;
        }
    }
    Ok(stepped)
}

/// `jmp rel32` from `entry` to `dest`.
pub fn jump(entry: u64, dest: u64) -> Result<[u8; 5]> {
    let rel = dest.wrapping_sub(entry + JMP_LEN) as i64;
    let rel = i32::try_from(rel).map_err(|_| anyhow!("jump out of reach at {entry:#x}"))?;
    let mut jmp = [0xe9, 0, 0, 0, 0];
    jmp[1..].copy_from_slice(&rel.to_le_bytes());
    Ok(jmp)
}

/// `jmp [rip+0]; .quad target`, padded with `int3`.
pub fn trampoline(target: u64) -> [u8; TRAMPOLINE_LEN as usize] {
    let mut t = [0xcc; TRAMPOLINE_LEN as usize];
    t[..6].copy_from_slice(&[0xff, 0x25, 0, 0, 0, 0]);
    t[6..14].copy_from_slice(&target.to_le_bytes());
    t
}

/// One old entry point and where it must lead.
#[derive(Debug, Clone, Copy)]
pub(super) struct Site {
    pub(super) entry: u64,
    pub(super) target: u64,
}

pub(super) fn reaches(from: u64, to: u64) -> bool {
    from.abs_diff(to) < REACH
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    pub(super) fn jumps_encode_their_displacement() {
        assert_eq!(jump(0x1000, 0x1010).unwrap(), [0xe9, 0x0b, 0, 0, 0]);
        assert_eq!(
            jump(0x1000, 0x1000).unwrap(),
            [0xe9, 0xfb, 0xff, 0xff, 0xff]
        );
        assert!(jump(0x5500_0000_0000, 0x7f00_0000_0000).is_err());
        let t = trampoline(0x1122_3344_5566_7788);
        assert_eq!(t[..6], [0xff, 0x25, 0, 0, 0, 0]);
        assert_eq!(
            u64::from_le_bytes(t[6..14].try_into().unwrap()),
            0x1122_3344_5566_7788
        );
    }

    /// A child loops over the very bytes a jump covers (four `nop`s and a
    /// `jmp` back); it is stepped out to the entry, the jump is written,
    /// and it ends up spinning at the target.
    #[test]
    #[allow(unsafe_code)]
    pub(super) fn a_thread_inside_the_patched_bytes_is_stepped_out_then_jumps() {
        const AT: u64 = 0x10_0000_0000;
        let entry = AT;
        let target = AT + 64;
        let mut code = [0xccu8; 128];
        code[..6].copy_from_slice(&[0x90, 0x90, 0x90, 0x90, 0xeb, 0xfa]);
        code[64..66].copy_from_slice(&[0xeb, 0xfe]);
        // SAFETY: the child maps a page, copies the code and runs it; it
        // allocates nothing, so locks other threads held at fork are moot.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: a fresh anonymous mapping at an address we own, the
            // copy stays inside it, and the code in it never returns.
            unsafe {
                let p = libc::mmap(
                    AT as *mut libc::c_void,
                    4096,
                    libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                );
                if p as u64 != AT {
                    libc::_exit(3);
                }
                std::ptr::copy_nonoverlapping(code.as_ptr(), p as *mut u8, code.len());
                let run: extern "C" fn() -> ! = std::mem::transmute(p);
                run();
            }
        }
        struct Reap(i32);
        impl Drop for Reap {
            fn drop(&mut self) {
                // SAFETY: kill and waitpid on our own child.
                unsafe {
                    libc::kill(self.0, libc::SIGKILL);
                    libc::waitpid(self.0, std::ptr::null_mut(), 0);
                }
            }
        }
        let _reap = Reap(pid);
        std::thread::sleep(Duration::from_millis(50));
        let mut t = Tracee::seize(pid).unwrap();
        t.stop_all().unwrap();
        // Interrupts tend to land on branch targets (here: the entry); a
        // few steps put the thread where a jump's bytes would cut an
        // instruction.
        let mut rip = t.regs(pid).unwrap().rip;
        for _ in 0..6 {
            if rip > entry + 1 && rip < entry + 5 {
                break;
            }
            t.single_step(pid).unwrap();
            rip = t.regs(pid).unwrap().rip;
        }
        assert!(rip > entry && rip < entry + 5, "{rip:#x}");
        assert_eq!(step_out(&mut t, vec![entry]).unwrap(), 1);
        assert_eq!(t.regs(pid).unwrap().rip, entry);
        t.write(entry, &jump(entry, target).unwrap()).unwrap();
        t.resume_all_but(None).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        t.stop_all().unwrap();
        assert_eq!(t.regs(pid).unwrap().rip, target);
        t.detach().unwrap();
    }

    #[test]
    pub(super) fn reach_is_two_gigabytes() {
        assert!(reaches(0x5500_0000_0000, 0x5500_1000_0000));
        assert!(!reaches(0x5500_0000_0000, 0x7f00_0000_0000));
    }
}
