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

pub mod build;
pub mod code;
pub mod dwarf;
pub mod elf;
pub mod ptrace;
pub mod thin;

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

/// `jmp rel32`.
const JMP_LEN: u64 = 5;
/// `jmp [rip+0]` then the 8-byte target.
const TRAMPOLINE_LEN: u64 = 16;
/// Trampoline pages are mapped this large.
const TRAMPOLINE_PAGE: u64 = 64 * 1024;
/// How far a `rel32` reaches, with a margin.
const REACH: u64 = (1 << 31) - (1 << 20);

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

/// A page of jumps near old code, for targets a `rel32` cannot reach.
#[derive(Debug)]
struct TrampolinePage {
    addr: u64,
    used: u64,
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

    /// Why the new code's statics cannot be what the running code uses.
    fn statics_refusal(&self, image: &Image) -> Option<String> {
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
    fn bind_statics(&self, tracee: &Tracee) -> Result<Vec<(u64, Vec<u8>)>, Refusal> {
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

    /// Every old entry (of every earlier generation) with its new target.
    fn plan(&self, outcome: &mut Outcome, changed: Option<(&[PathBuf], &[PathBuf])>) -> Vec<Site> {
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
    fn ensure_trampolines(
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

    fn map_page_near(&self, tracee: &mut Tracee, worker: i32, mmap: u64, near: u64) -> Result<u64> {
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

    fn step_out(&self, tracee: &mut Tracee, plan: &[Site]) -> Result<usize> {
        let entries: Vec<u64> = plan.iter().map(|s| s.entry).collect();
        step_out(tracee, entries)
    }

    fn write_jump(&self, tracee: &Tracee, site: &Site) -> Result<()> {
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
struct Site {
    entry: u64,
    target: u64,
}

/// An executable's thread-locals use the local-exec model even when
/// compiled as PIC, which a shared library cannot link (`rust-lld: error:
/// relocation R_X86_64_TPOFF32 against NAME cannot be used with -shared`).
fn thread_local_in(stderr: &str) -> Option<String> {
    let rest = stderr.split("R_X86_64_TPOFF32 against ").nth(1)?;
    let name = rest.split(" cannot").next()?;
    Some(name.split("::_$").next().unwrap_or(name).to_owned())
}

fn reaches(from: u64, to: u64) -> bool {
    from.abs_diff(to) < REACH
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

/// `app::compute` for `_ZN3app7compute17h0123456789abcdefE`: the path
/// without the hash (legacy mangling), for messages.
pub fn demangle_path(mangled: &str) -> String {
    let Some(mut rest) = mangled.strip_prefix("_ZN") else {
        return mangled.to_owned();
    };
    let mut parts = Vec::new();
    while let Some(len_end) = rest.find(|c: char| !c.is_ascii_digit()) {
        if len_end == 0 {
            break;
        }
        let Ok(len) = rest[..len_end].parse::<usize>() else {
            break;
        };
        let Some(part) = rest.get(len_end..len_end + len) else {
            break;
        };
        rest = &rest[len_end + len..];
        let is_hash = part.len() == 17
            && part.starts_with('h')
            && part[1..].chars().all(|c| c.is_ascii_hexdigit());
        if !is_hash {
            // A part starting with `$` is written `_$`.
            let part = if part.starts_with("_$") {
                &part[1..]
            } else {
                part
            };
            parts.push(unescape(part));
        }
    }
    let path = parts.join("::");
    // A `thread_local!` is a value inside a constant inside a closure: name
    // the thread-local.
    match path.find("::{{constant}}") {
        Some(i) => path[..i].to_owned(),
        None => path,
    }
}

/// Legacy mangling's escapes (`$LT$`, `$u7b$`, `..`).
fn unescape(part: &str) -> String {
    const ESCAPES: &[(&str, &str)] = &[
        ("$SP$", "@"),
        ("$BP$", "*"),
        ("$RF$", "&"),
        ("$LT$", "<"),
        ("$GT$", ">"),
        ("$LP$", "("),
        ("$RP$", ")"),
        ("$C$", ","),
        ("$u20$", " "),
        ("$u27$", "'"),
        ("$u5b$", "["),
        ("$u5d$", "]"),
        ("$u7b$", "{"),
        ("$u7d$", "}"),
        ("$u7e$", "~"),
        ("..", "::"),
    ];
    let mut s = part.to_owned();
    for (from, to) in ESCAPES {
        s = s.replace(from, to);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_demangled_without_hash() {
        assert_eq!(
            demangle_path("_ZN3app7compute17h0d5edd5b252fb3fbE"),
            "app::compute"
        );
        assert_eq!(demangle_path("main"), "main");
        assert_eq!(
            demangle_path(
                "_ZN3app1T29_$u7b$$u7b$constant$u7d$$u7d$28_$u7b$$u7b$closure$u7d$$u7d$\
                 23__RUST_STD_INTERNAL_VAL17hcb2c155d2077c870E"
            ),
            "app::T"
        );
        assert_eq!(
            demangle_path(
                "_ZN4core3ptr42drop_in_place$LT$std..io..error..Error$GT$17h5ea4004d1302afb8E"
            ),
            "core::ptr::drop_in_place<std::io::error::Error>"
        );
    }

    #[test]
    fn thread_locals_are_named_from_the_link_error() {
        let stderr = "  = note: rust-lld: error: relocation R_X86_64_TPOFF32 against \
            app::T::_$u7b$$u7b$constant$u7d$$u7d$::__RUST_STD_INTERNAL_VAL::hcb2c cannot be used with -shared";
        assert_eq!(thread_local_in(stderr).as_deref(), Some("app::T"));
        assert_eq!(thread_local_in("error[E0308]: mismatched types"), None);
    }

    #[test]
    fn jumps_encode_their_displacement() {
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
    fn a_thread_inside_the_patched_bytes_is_stepped_out_then_jumps() {
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
    fn reach_is_two_gigabytes() {
        assert!(reaches(0x5500_0000_0000, 0x5500_1000_0000));
        assert!(!reaches(0x5500_0000_0000, 0x7f00_0000_0000));
    }
}
