//! Reload in place: new code of an edited crate reaches a running program
//! (same process) with no change to the program.
//!
//! The crate is compiled again as a shared library ([`build`]); the
//! program is stopped with ptrace, loads it with its own `dlopen`, and the
//! entry of every function of the old code jumps to its new version, so
//! direct calls, stored function pointers and vtables all reach new code.
//! Nothing is ever unloaded. A change that new code cannot carry (a type's
//! layout, a function's signature, state in the crate's statics) is found
//! before anything is written and answered with [`Refusal::Restart`].
//! `docs/reload.md` tells the whole story.
//!
//! This module holds a session (compile, refuse, load, apply); the jumps
//! and trampolines are in `jumps.rs`, the binding of statics in
//! `statics.rs`, symbol names for messages in `names.rs`.

pub mod build;
pub mod code;
pub mod dwarf;
pub mod elf;
mod jumps;
mod names;
pub mod ptrace;
mod statics;
pub mod thin;

use jumps::{TrampolinePage, reaches};
pub use names::demangle_path;
pub use statics::Statics;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use dwarf::{Layouts, Mismatch};
use elf::Image;
use ptrace::{Arg, Tracee};

/// Where the linker proxy keeps the links of programs reloaded with
/// patch libraries in `scratch` ([`thin`]).
pub fn kept_links(scratch: &Path) -> PathBuf {
    scratch.join("links")
}

/// Why a patch was not applied; the program still runs its old code.
#[derive(Debug)]
pub enum Refusal {
    /// The change cannot be carried by a patch: restart the program.
    Restart(String),
    /// Reload itself failed.
    Failed(anyhow::Error),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Restart(why) => write!(f, "{why}: restarting"),
            Refusal::Failed(e) => write!(f, "reload failed: {e:#}"),
        }
    }
}

impl From<anyhow::Error> for Refusal {
    fn from(e: anyhow::Error) -> Refusal {
        Refusal::Failed(e)
    }
}

/// What one reload did, and what it cost.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Old entry points now jumping to new code (over all generations).
    pub patched: usize,
    /// Functions of the new code that those entry points lead to.
    pub functions: usize,
    /// Functions too short for a jump; they keep running old code.
    pub too_short: Vec<String>,
    /// Functions of the previous code the new code does not define under
    /// the same symbol (removed, renamed, or a changed signature, which
    /// legacy mangling hashes): whoever still calls them runs old code.
    pub stale: Vec<String>,
    /// Compiling the new code (by [`Session::rebuild_and_apply`]).
    pub build: Duration,
    /// Linking it, when only what changed is linked (else part of `build`).
    pub link: Duration,
    /// The objects linked then: the changed ones and what they needed.
    pub objects: usize,
    /// Reading and comparing old and new code.
    pub check: Duration,
    /// `dlopen` inside the program.
    pub load: Duration,
    /// From stopping every thread to letting them go.
    pub stopped: Duration,
    pub total: Duration,
    /// Threads moved out of a function's first bytes before the write.
    pub stepped: usize,
    /// References of the new code redirected to the program's statics.
    pub statics_kept: usize,
    /// Jumps that needed a trampoline (target beyond 2 GiB).
    pub via_trampoline: usize,
    /// What rustc said compiling the new code (its warnings), rendered as
    /// a terminal shows them; empty when it said nothing or did not run.
    pub warnings: String,
}

/// Code loaded in the program: the executable, then each patch library.
#[derive(Debug)]
struct Generation {
    path: PathBuf,
    bias: u64,
    image: Image,
}

/// The running program's symbols, for binding new code to them: the
/// executable's first, then those only earlier patches define.
struct RunningCode<'a>(&'a [Generation]);

impl thin::Running for RunningCode<'_> {
    fn address(&self, name: &str) -> Option<u64> {
        self.0
            .iter()
            .find_map(|g| g.image.defined.get(name).map(|a| a.map(|a| g.bias + a)))
            .flatten()
    }

    fn is_thread_local(&self, name: &str) -> bool {
        self.0[0].image.thread_locals.contains_key(name)
    }

    fn imports(&self, name: &str) -> bool {
        self.0[0].image.imports.contains(name)
    }
}

/// Reloads of one running program.
#[derive(Debug)]
pub struct Session {
    pid: i32,
    generations: Vec<Generation>,
    layouts: Layouts,
    pages: Vec<TrampolinePage>,
    /// Old entry -> its trampoline slot, reused by later reloads.
    slots: BTreeMap<u64, u64>,
    /// Where patch libraries are copied, each under a name of its own.
    scratch: PathBuf,
    pub statics: Statics,
    /// The program's thread-locals are local-exec, so patch links need
    /// `--noinhibit-exec`: learned from the first patch link that said so,
    /// so later reloads compile once, not twice.
    local_exec_tls: bool,
    /// What the running code was linked from, when the linker proxy kept
    /// it: new code is then linked from the objects a compile changed.
    kept: Option<thin::KeptLink>,
}

impl Session {
    /// A session for process `pid` running the executable `exe`; patch
    /// libraries are kept in `scratch` (never deleted while it runs).
    pub fn new(pid: i32, exe: &Path, scratch: &Path) -> Result<Session> {
        let exe = exe
            .canonicalize()
            .with_context(|| format!("failed to find `{}`", exe.display()))?;
        let running = std::fs::read_link(format!("/proc/{pid}/exe"))
            .with_context(|| format!("no process {pid}"))?;
        // A rebuild replaces the file: the kernel then names the running
        // one `PATH (deleted)`, in the maps too.
        let deleted = PathBuf::from(format!("{} (deleted)", exe.display()));
        if running != exe && running != deleted {
            bail!(
                "process {pid} runs `{}`, not `{}`",
                running.display(),
                exe.display()
            );
        }
        // Read what runs, not what is on disk now.
        let file = PathBuf::from(format!("/proc/{pid}/exe"));
        let image = Image::read(&file)?;
        let maps = elf::maps(pid)?;
        let bias = elf::load_bias(&maps, &running, image.first_vaddr)?;
        let layouts = Layouts::read(&file)?;
        crate::fs::create_dir_all(scratch)?;
        let kept = crate::contract::FileId::of(&file)
            .and_then(|id| thin::KeptLink::of_file(&kept_links(scratch), id));
        Ok(Session {
            pid,
            generations: vec![Generation {
                path: exe,
                bias,
                image,
            }],
            layouts,
            pages: Vec::new(),
            slots: BTreeMap::new(),
            scratch: scratch.to_owned(),
            statics: Statics::default(),
            local_exec_tls: false,
            kept,
        })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The patch libraries loaded so far, oldest first.
    pub fn libraries(&self) -> Vec<&Path> {
        self.generations[1..]
            .iter()
            .map(|g| g.path.as_path())
            .collect()
    }

    /// How many patch libraries are loaded.
    pub fn reloads(&self) -> usize {
        self.generations.len() - 1
    }

    /// Builds the new code with `invocation` and applies it. A compile
    /// error is a refusal: the old code keeps running.
    ///
    /// When the running code's link was kept ([`thin`]), the crate is
    /// compiled with its own command and only what changed is linked and
    /// loaded; otherwise it is compiled again as a whole library.
    pub fn rebuild_and_apply(
        &mut self,
        invocation: &build::Invocation,
    ) -> Result<Outcome, Refusal> {
        if let (Some(root), Some(kept)) = (invocation.keep_root(), self.kept.clone())
            && kept.output == invocation.output().unwrap_or_default()
        {
            return self.rebuild_thin(invocation, &root, &kept);
        }
        let n = self.generations.len();
        let out = self.scratch.join(format!("patch-{}-{n}.so", self.pid));
        let incremental = self.scratch.join("incremental");
        // Ask for a place near the executable: jumps then reach without
        // trampolines and the new code can reach the old statics.
        let maps = elf::maps(self.pid)?;
        let base = elf::free_range_near(&maps, self.generations[0].bias, 64 << 20, 1 << 30);
        let start = Instant::now();
        let mut link = build::PatchLink {
            base,
            local_exec_tls: self.local_exec_tls,
        };
        let mut built = invocation.build_patch(&out, &incremental, &link)?;
        if let Err(failed) = &built
            && !link.local_exec_tls
            && failed.only_local_exec_tls()
        {
            link.local_exec_tls = true;
            self.local_exec_tls = true;
            built = invocation.build_patch(&out, &incremental, &link)?;
        }
        match built {
            Ok(warnings) => {
                let build = start.elapsed();
                let mut outcome = self.apply(&out)?;
                outcome.warnings = warnings;
                outcome.build = build;
                outcome.total += build;
                Ok(outcome)
            }
            Err(failed) => match thread_local_in(&failed.stderr) {
                Some(name) => Err(Refusal::Restart(format!(
                    "`{name}` is a thread-local, which an executable's code reaches in a way \
                     a loaded library cannot"
                ))),
                None => Err(Refusal::Failed(anyhow!(failed))),
            },
        }
    }

    /// Compiles the crate with the command that built the running code,
    /// links what changed, and applies it.
    fn rebuild_thin(
        &mut self,
        invocation: &build::Invocation,
        root: &Path,
        kept: &thin::KeptLink,
    ) -> Result<Outcome, Refusal> {
        let start = Instant::now();
        // Nothing the crate reads changed (a library's body did): the new
        // code is in the libraries alone, and the crate is not compiled.
        let (new, warnings) = if invocation.unchanged() {
            (kept.renewed(root)?, String::new())
        } else {
            match invocation.compile_kept(root)? {
                Ok(new) => new,
                Err(failed) => return Err(Refusal::Failed(anyhow!(failed))),
            }
        };
        let compiled = start.elapsed();
        let changed = thin::changed(kept, &new)?;
        // Told after the refusals that name a cause (a layout, a static's
        // type), which a change of `main` often comes with.
        let once = self.never_called_again(invocation, kept, &changed)?;
        if changed.objects.is_empty() {
            self.kept = Some(new);
            let took = start.elapsed();
            return Ok(Outcome {
                build: compiled,
                link: took - compiled,
                total: took,
                warnings,
                ..Outcome::default()
            });
        }
        let n = self.generations.len();
        let out = self.scratch.join(format!("patch-{}-{n}.so", self.pid));
        let bindings = self.scratch.join(format!("patch-{}-{n}.args", self.pid));
        let maps = elf::maps(self.pid)?;
        let Some(base) = elf::free_range_near(&maps, self.generations[0].bias, 64 << 20, 1 << 30)
        else {
            return Err(Refusal::Restart(
                "there is no room for new code near the program's".into(),
            ));
        };
        let thin::Resolved {
            objects,
            bound,
            roots,
        } = thin::resolve(&changed.objects, &new, &RunningCode(&self.generations))?;
        crate::fs::write_atomic(&bindings, thin::bindings(&bound, &roots).as_bytes())?;
        let link = |tls: bool| -> Result<Result<(), build::BuildFailed>> {
            let args = thin::link_args(&new, &objects, &bindings, Some(base), tls, &out);
            let output = std::process::Command::new(&new.driver)
                .args(&args)
                .output()
                .with_context(|| format!("failed to run `{}`", new.driver))?;
            Ok(match output.status.success() {
                true => Ok(()),
                false => Err(build::BuildFailed {
                    stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                }),
            })
        };
        let mut linked = link(self.local_exec_tls)?;
        if let Err(failed) = &linked
            && !self.local_exec_tls
            && failed.only_local_exec_tls()
        {
            self.local_exec_tls = true;
            linked = link(true)?;
        }
        if let Err(failed) = linked {
            return Err(Refusal::Failed(anyhow!(failed)));
        }
        let build = start.elapsed();
        let mut outcome =
            self.apply_patch(&out, Some((&changed.previous, &changed.objects)), once)?;
        self.kept = Some(new);
        outcome.build = compiled;
        outcome.link = build - compiled;
        outcome.objects = objects.len();
        outcome.total += build;
        outcome.warnings = warnings;
        Ok(outcome)
    }

    /// Why the change cannot reach the running program: it changed code
    /// that runs once and never again. The program's `main` is called
    /// once by the runtime: a patch of its entry is never taken, and the
    /// frame that runs it (its loop included) goes on in the old code.
    fn never_called_again(
        &self,
        invocation: &build::Invocation,
        kept: &thin::KeptLink,
        changed: &thin::Changed,
    ) -> Result<Option<String>> {
        let Some(main) = invocation.crate_name().and_then(|c| self.program_main(&c)) else {
            return Ok(None);
        };
        let new = code::Objects::read(&changed.objects)?;
        let mut old = code::Objects::read(&changed.previous)?;
        if new.function(&main)?.is_some() && old.function(&main)?.is_none() {
            // Moved to another codegen unit: its running version is in
            // one of the objects that did not change.
            old = code::Objects::read(&kept.objects)?;
        }
        Ok(match code::changed(&old, &new, &main)? {
            Some(true) => Some(format!(
                "`{}` changed, and the running program never calls `main` again",
                demangle_path(&main)
            )),
            _ => None,
        })
    }

    /// The mangled name of the program's `main` (of crate `crate_name`).
    fn program_main(&self, crate_name: &str) -> Option<String> {
        let functions = &self.generations[0].image.functions;
        let legacy = format!("{crate_name}::main");
        // v0: `_RNvCs<disambiguator>_<len><crate>4main`.
        let v0 = format!("{}{crate_name}4main", crate_name.len());
        functions
            .keys()
            .find(|name| {
                demangle_path(name) == legacy || (name.starts_with("_RNvCs") && name.ends_with(&v0))
            })
            .cloned()
    }

    /// Loads the shared library `new_code` into the program and points
    /// every old function it also defines at its new version.
    pub fn apply(&mut self, new_code: &Path) -> Result<Outcome, Refusal> {
        self.apply_patch(new_code, None, None)
    }

    /// [`Session::apply`]; for new code linked from changed objects only
    /// (`changed`: the running versions of those objects, and the new
    /// ones), which is bound
    /// to the program's addresses and must be mapped where it was linked.
    /// `once`: why the change cannot reach the running code, refused
    /// after the checks of what it can carry.
    fn apply_patch(
        &mut self,
        new_code: &Path,
        changed: Option<(&[PathBuf], &[PathBuf])>,
        once: Option<String>,
    ) -> Result<Outcome, Refusal> {
        let start = Instant::now();
        let mut outcome = Outcome::default();

        // 1. Refuse what a patch cannot carry, before touching anything.
        let image = Image::read(new_code)?;
        let layouts = Layouts::read(new_code)?;
        match self.layouts.mismatch(&layouts) {
            Some(Mismatch::Type(t)) if t.contains("_env#") => {
                return Err(Refusal::Restart(format!(
                    "`{t}` changed its state machine (its layout or where it awaits)"
                )));
            }
            Some(Mismatch::Type(t)) => {
                return Err(Refusal::Restart(format!("`{t}` changed layout")));
            }
            Some(Mismatch::Signature(f)) => {
                return Err(Refusal::Restart(format!(
                    "`{}` changed signature",
                    demangle_path(&f)
                )));
            }
            Some(Mismatch::StaticType(s)) => {
                return Err(Refusal::Restart(format!(
                    "`{}` changed type",
                    demangle_path(&s)
                )));
            }
            Some(Mismatch::NoTypeInfo) => {
                return Err(Refusal::Restart(
                    "no type information to check the change against (debug info is off)".into(),
                ));
            }
            None => {}
        }
        if let Some(reason) = self.statics_refusal(&image).or(once) {
            return Err(Refusal::Restart(reason));
        }
        outcome.check = start.elapsed();

        // 2. A unique path: glibc hands back the old handle for a known one.
        let n = self.generations.len();
        let path = self.scratch.join(format!("gen-{}-{n}.so", self.pid));
        if new_code != path {
            std::fs::copy(new_code, &path)
                .with_context(|| format!("failed to copy `{}`", new_code.display()))?;
        }
        let path = path.canonicalize().context("failed to name the patch")?;

        let mut tracee = Tracee::seize(self.pid)?;
        tracee.stop_all()?;
        let worker = pick_worker(&mut tracee)?;
        let saved = tracee.save(worker)?;
        tracee.resume_all_but(Some(worker))?;

        // 3. Load it with the program's own dlopen, on one thread, while the
        //    others run (a stopped thread may hold a lock dlopen needs).
        let load_start = Instant::now();
        let loaded = self.load(&mut tracee, worker, &path);
        let planned = loaded.map_err(Refusal::Failed).and_then(|()| {
            let loaded = self.generations.last().expect("loaded");
            if changed.is_some() && loaded.bias != 0 {
                return Err(Refusal::Restart(
                    "the new code could not be mapped where it was linked".into(),
                ));
            }
            let binds = self.bind_statics(&tracee)?;
            let plan = self.plan(&mut outcome, changed);
            self.ensure_trampolines(&mut tracee, worker, &plan)?;
            Ok((plan, binds))
        });
        tracee.restore(worker, &saved)?;
        outcome.load = load_start.elapsed();
        let (plan, binds) = planned?;

        // 4. Stop the world, move threads out of the bytes to be written,
        //    write, let go.
        let stop_start = Instant::now();
        tracee.stop_all()?;
        outcome.stepped = self.step_out(&mut tracee, &plan)?;
        for (at, bytes) in &binds {
            tracee.write(*at, bytes)?;
        }
        outcome.statics_kept = binds.len();
        for site in &plan {
            self.write_jump(&tracee, site)?;
        }
        outcome.patched = plan.len();
        outcome.functions = plan.iter().map(|s| s.target).collect::<BTreeSet<_>>().len();
        outcome.via_trampoline = plan.iter().filter(|s| !reaches(s.entry, s.target)).count();
        tracee.detach()?;
        outcome.stopped = stop_start.elapsed();
        self.layouts.merge(layouts);
        outcome.total = start.elapsed();
        Ok(outcome)
    }

    fn load(&mut self, tracee: &mut Tracee, worker: i32, path: &Path) -> Result<()> {
        let maps = elf::maps(self.pid)?;
        let libc = libc_path(&maps)?;
        let libc_bias = elf::load_bias(&maps, &libc, 0)?;
        let dlopen = libc_bias + elf::dynamic_symbol(&libc, "dlopen")?;
        let mut data = path.as_os_str().as_encoded_bytes().to_vec();
        data.push(0);
        let flags = (libc::RTLD_NOW | libc::RTLD_LOCAL) as u64;
        let handle = tracee.call(worker, dlopen, &[Arg::Data(0), Arg::Int(flags)], &data)?;
        if handle == 0 {
            let dlerror = libc_bias + elf::dynamic_symbol(&libc, "dlerror")?;
            let msg = tracee.call(worker, dlerror, &[], &[])?;
            let text = if msg == 0 {
                String::from("unknown error")
            } else {
                tracee.read_c_string(msg)?
            };
            bail!("the program could not load the new code: {text}");
        }
        let image = Image::read(path)?;
        let maps = elf::maps(self.pid)?;
        let bias = elf::load_bias(&maps, path, image.first_vaddr)?;
        self.generations.push(Generation {
            path: path.to_owned(),
            bias,
            image,
        });
        Ok(())
    }
}

/// An executable's thread-locals use the local-exec model even when
/// compiled as PIC, which a shared library cannot link (`rust-lld: error:
/// relocation R_X86_64_TPOFF32 against NAME cannot be used with -shared`).
fn thread_local_in(stderr: &str) -> Option<String> {
    let rest = stderr.split("R_X86_64_TPOFF32 against ").nth(1)?;
    let name = rest.split(" cannot").next()?;
    Some(name.split("::_$").next().unwrap_or(name).to_owned())
}

fn libc_path(maps: &[elf::Mapping]) -> Result<PathBuf> {
    maps.iter()
        .filter_map(|m| m.path.as_ref())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == "libc.so.6")
        })
        .cloned()
        .context("the program has no glibc loaded")
}

/// The thread to run `dlopen` on: one blocked in a system call holds no
/// allocator or loader lock, unlike one stopped at a random instruction.
/// Every thread busy: let them run a moment and look again, a few times,
/// before settling for the first thread.
fn pick_worker(tracee: &mut Tracee) -> Result<i32> {
    for _ in 0..20 {
        for tid in tracee.thread_ids() {
            if (tracee.regs(tid)?.orig_rax as i64) >= 0 {
                return Ok(tid);
            }
        }
        tracee.resume_all_but(None)?;
        std::thread::sleep(Duration::from_millis(1));
        tracee.stop_all()?;
    }
    tracee
        .thread_ids()
        .first()
        .copied()
        .context("the program has no threads")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_locals_are_named_from_the_link_error() {
        let stderr = "  = note: rust-lld: error: relocation R_X86_64_TPOFF32 against \
            app::T::_$u7b$$u7b$constant$u7d$$u7d$::__RUST_STD_INTERNAL_VAL::hcb2c cannot be used with -shared";
        assert_eq!(thread_local_in(stderr).as_deref(), Some("app::T"));
        assert_eq!(thread_local_in("error[E0308]: mismatched types"), None);
    }
}
