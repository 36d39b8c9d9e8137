//! `--hot`: the reload session of the running instance (read on a thread
//! of its own while the program starts) and a save loaded into it, or the
//! reason it must restart instead.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};

use super::replay::Replay;
use super::{Replayed, Session};
use crate::reload::{self, Refusal};

/// What `--hot` needs: where patch libraries go, and the reload session of
/// the running instance, read on a thread of its own while it starts.
pub(super) struct Hot {
    scratch: PathBuf,
    session: Option<(u32, HotSession)>,
}

enum HotSession {
    Reading(std::thread::JoinHandle<Result<reload::Session>>),
    Ready(Box<reload::Session>),
}

impl Hot {
    /// Patch libraries of this watch go to `scratch`.
    pub(super) fn new(scratch: PathBuf) -> Hot {
        Hot {
            scratch,
            session: None,
        }
    }

    /// Starts reading the instance `pid` runs (`exe`) for later reloads.
    pub(super) fn prepare(&mut self, pid: u32, exe: PathBuf) {
        self.forget(None);
        let scratch = self.scratch.clone();
        let reading = std::thread::Builder::new()
            .name(format!("hot-{pid}"))
            .spawn(move || reload::Session::new(pid as i32, &exe, &scratch));
        if let Ok(handle) = reading {
            self.session = Some((pid, HotSession::Reading(handle)));
        }
    }

    /// The session of instance `pid`, once read.
    pub(super) fn session(&mut self, pid: u32) -> Result<&mut reload::Session> {
        let session = match self.session.take() {
            Some((p, HotSession::Ready(s))) if p == pid => s,
            Some((p, HotSession::Reading(h))) if p == pid => Box::new(
                h.join()
                    .map_err(|_| anyhow!("reading the running program panicked"))??,
            ),
            _ => bail!("the running program was not started for reloads"),
        };
        let (_, HotSession::Ready(s)) = self.session.insert((pid, HotSession::Ready(session)))
        else {
            unreachable!("just inserted")
        };
        Ok(s)
    }

    /// Drops the session of an instance that is gone (any, with `None`),
    /// and the patch libraries it had loaded.
    pub(super) fn forget(&mut self, pid: Option<u32>) {
        let Some((p, _)) = self
            .session
            .take_if(|(p, _)| pid.is_none_or(|pid| pid == *p))
        else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(&self.scratch) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&format!("gen-{p}-")) || name.starts_with(&format!("patch-{p}-")) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

impl Session<'_> {
    /// `--hot`: compiles the libraries the change touches, then the
    /// program's crate as new code for the running instance, and loads it
    /// there. A change new code cannot carry restarts the program on a
    /// normal build; a compile error leaves it running. Returns what
    /// [`Session::replay_with`] does.
    pub(super) fn reload(
        &mut self,
        plan: &Replay<'_>,
        saved: Instant,
        changed: &[PathBuf],
        command: &Command,
        shown: &str,
    ) -> Replayed {
        match plan.run_libraries(self.shell) {
            Ok(true) => {}
            Ok(false) => {
                if !self.stopping.load(Ordering::SeqCst) {
                    self.wait_message();
                }
                return Replayed::Handled;
            }
            Err(e) => {
                self.shell.warn(format_args!(
                    "the fast path failed, building with cargo: {e:#}"
                ));
                return Replayed::ToCargoAfresh;
            }
        }
        let pid = self.running.as_ref().map(|r| r.instance.pid);
        let applied = match (plan.bin_capture(), pid, self.hot.as_mut()) {
            (Some(capture), Some(pid), Some(hot)) => {
                let invocation = reload::build::Invocation::from_capture(capture);
                hot.session(pid)
                    .map_err(Refusal::Failed)
                    .and_then(|s| s.rebuild_and_apply(&invocation))
            }
            _ => Err(Refusal::Failed(anyhow!(
                "the program's rustc command was not captured"
            ))),
        };
        let mut inputs = self.inputs.clone();
        inputs.files.extend(plan.inputs());
        let inputs = inputs.finish(&self.exclusions);
        self.set_inputs(inputs);
        // Whether a failure to build the new code is the user's compile
        // error (then the program's normal build fails too).
        let mut patch_failure = None;
        match applied {
            Ok(outcome) => {
                self.reloaded(&outcome, saved, changed);
                // A GUI that paints on input only would show the new code
                // at the next input: a reload that seems to have failed.
                if let Some(pid) = pid.filter(|_| outcome.functions > 0) {
                    super::redraw::after_reload(self.shell, pid);
                }
                return Replayed::Handled;
            }
            Err(Refusal::Restart(why)) => {
                self.shell.warn(format_args!("{why}: restarting"));
            }
            Err(Refusal::Failed(e)) if e.downcast_ref::<reload::build::BuildFailed>().is_some() => {
                patch_failure = Some(e);
            }
            Err(Refusal::Failed(e)) => {
                self.shell
                    .warn(format_args!("reload failed: {e:#}: restarting"));
            }
        }
        if self.stopping.load(Ordering::SeqCst) {
            return Replayed::Handled;
        }
        let built = plan.run_bin(self.shell);
        if let (Ok(true), Some(e)) = (&built, patch_failure) {
            self.shell.warn(format_args!(
                "the new code built as a program but not as a library to load: \
                 restarting\n{e:#}"
            ));
        }
        self.finish_replay(built, command, shown, saved, "")
    }

    /// rustc's warnings about the new code, as a restart shows them, then
    /// one line per reload, and its costs with `-v`.
    pub(super) fn reloaded(&self, outcome: &reload::Outcome, saved: Instant, changed: &[PathBuf]) {
        if !outcome.warnings.is_empty() {
            use std::io::Write;
            let _ = write!(anstream::stderr(), "{}", outcome.warnings);
        }
        self.shell.status(
            "Reloaded",
            format_args!(
                "{} in {:.2}s ({})",
                self.describe_changes(changed),
                saved.elapsed().as_secs_f64(),
                crate::shell::count(outcome.functions, "function", "functions")
            ),
        );
        let ms = |d: Duration| crate::shell::duration(d.as_secs_f64() * 1e3);
        let rss = self
            .running
            .as_ref()
            .and_then(|r| resident_kib(r.instance.pid))
            .map(|k| format!(", {} resident", crate::shell::human_size(k * 1024)))
            .unwrap_or_default();
        self.shell.verbose_status(
            "Reload",
            format_args!(
                "rustc {}, link {} ({}), check {}, load {}, stopped {}; {} entry points, {} \
                 references to statics kept{rss}",
                ms(outcome.build),
                ms(outcome.link),
                crate::shell::count(outcome.objects, "object", "objects"),
                ms(outcome.check),
                ms(outcome.load),
                ms(outcome.stopped),
                outcome.patched,
                outcome.statics_kept,
            ),
        );
        if !outcome.stale.is_empty() {
            self.shell.verbose_status(
                "Reload",
                format_args!(
                    "{} the new code no longer has (removed, or a new signature) keep \
                 their old code for old callers",
                    crate::shell::count(outcome.stale.len(), "function", "functions")
                ),
            );
        }
    }
}

/// The resident memory of a process, in KiB.
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    line.split_whitespace().next()?.parse().ok()
}
