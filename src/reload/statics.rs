//! The crate's own statics: whether new code can use the running
//! program's (its references rewritten to them), and the writes that
//! bind it.

use std::collections::BTreeMap;

use anyhow::Result;

use super::elf::Image;
use super::names::demangle_path;
use super::ptrace::Tracee;
use super::{Refusal, Session};

/// What becomes of state in the crate's own statics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Statics {
    /// New code uses the running program's statics (its references are
    /// rewritten); refuse when that cannot be done.
    #[default]
    Keep,
    /// Accept that new code starts from fresh copies.
    Reset,
    /// Refuse any change to a crate that has statics with state.
    Refuse,
}

impl Session {
    /// Why the new code's statics cannot be what the running code uses.
    pub(super) fn statics_refusal(&self, image: &Image) -> Option<String> {
        let exe = &self.generations[0].image;
        let shared: Vec<&String> = image
            .mutable_statics
            .iter()
            .filter(|s| exe.mutable_statics.contains(s))
            .collect();
        // Legacy mangling hashes a static's type: a static whose type
        // changed is another symbol under the same path.
        if self.statics != Statics::Reset {
            let old_paths: BTreeMap<String, &String> = exe
                .mutable_statics
                .iter()
                .map(|s| (demangle_path(s), s))
                .collect();
            for name in &image.mutable_statics {
                let path = demangle_path(name);
                if old_paths.get(&path).is_some_and(|old| *old != name) {
                    return Some(format!("`{path}` changed type"));
                }
            }
        }
        if image.unknown_tls_refs > 0 {
            return Some("new code reaches a thread-local reload cannot identify".into());
        }
        match self.statics {
            Statics::Reset => None,
            // Code reaching a thread-local the executable lacks would
            // address memory of another module's block.
            _ if image
                .tls_refs
                .iter()
                .any(|(_, n, _)| !exe.thread_locals.contains_key(n)) =>
            {
                let (_, n, _) = image
                    .tls_refs
                    .iter()
                    .find(|(_, n, _)| !exe.thread_locals.contains_key(n))
                    .expect("found above");
                Some(format!(
                    "`{}` is a new thread-local, which only a restart can allocate",
                    demangle_path(n)
                ))
            }
            Statics::Refuse => shared.first().map(|s| {
                format!(
                    "`{}` is a static with state, and new code would get a fresh copy",
                    demangle_path(s)
                )
            }),
            Statics::Keep => {
                for name in shared {
                    let pair = match (exe.statics.get(name), image.statics.get(name)) {
                        (Some(old), Some(new)) => Some((old, new)),
                        _ => exe
                            .thread_locals
                            .get(name)
                            .zip(image.thread_locals.get(name)),
                    };
                    match pair {
                        Some((old, new)) if old.size == new.size => {}
                        _ => return Some(format!("`{}` changed type", demangle_path(name))),
                    }
                }
                let unbindable = image
                    .unbindable
                    .iter()
                    .find(|s| exe.statics.contains_key(*s) || exe.thread_locals.contains_key(*s));
                unbindable.map(|s| {
                    format!(
                        "new code reaches `{}` in a way reload cannot point at the running \
                         program's copy",
                        demangle_path(s)
                    )
                })
            }
        }
    }

    /// The writes that make the newest library use the executable's
    /// statics instead of its own copies.
    pub(super) fn bind_statics(&self, tracee: &Tracee) -> Result<Vec<(u64, Vec<u8>)>, Refusal> {
        let exe = &self.generations[0];
        let new = self.generations.last().expect("loaded");
        let mut writes = Vec::new();
        // Thread-locals: the local-exec offset of the executable's own.
        for (at, name, inside) in &new.image.tls_refs {
            let offset = exe.image.thread_locals.get(name).and_then(|old| {
                let tp = exe.image.exe_tp_offset(old.addr + inside)?;
                i32::try_from(tp).ok()
            });
            let Some(offset) = offset else {
                return Err(Refusal::Restart(format!(
                    "`{}` is a thread-local new code cannot reach",
                    demangle_path(name)
                )));
            };
            writes.push((new.bias + at, offset.to_le_bytes().to_vec()));
        }
        if self.statics != Statics::Keep {
            return Ok(writes);
        }
        for r in &new.image.static_refs {
            let (Some(old), Some(own)) = (
                exe.image.statics.get(&r.name),
                new.image.statics.get(&r.name),
            ) else {
                continue;
            };
            let delta = (exe.bias + old.addr).wrapping_sub(new.bias + own.addr) as i64;
            let at = new.bias + r.at;
            if r.pc_relative {
                let bytes = tracee.read(at, 4)?;
                let disp = i32::from_le_bytes(bytes.try_into().expect("4 bytes")) as i64;
                let Ok(disp) = i32::try_from(disp + delta) else {
                    return Err(Refusal::Restart(format!(
                        "the new code was mapped too far from `{}` to share it",
                        demangle_path(&r.name)
                    )));
                };
                writes.push((at, disp.to_le_bytes().to_vec()));
            } else {
                let bytes = tracee.read(at, 8)?;
                let addr = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
                writes.push((at, addr.wrapping_add(delta as u64).to_le_bytes().to_vec()));
            }
        }
        Ok(writes)
    }
}
