//! Relink, don't rebuild: the early cutoff for every member compile.
//!
//! Cargo compiles a crate again whenever a crate it depends on was
//! compiled again, whatever changed there. Under dyndev, the wrapper hands
//! every member compile that links against the bundle to [`compile`]:
//!
//! - A unit whose every input is as its last compile read it (command,
//!   sources, environment, and each dependency's *interface*) is not
//!   compiled: a library keeps what it made; an executable is pointed at
//!   its libraries' new code, or linked again ([`relink`]). rustc's
//!   diagnostics of that compile are replayed for cargo.
//! - A library that compiles keeps the interface its dependents were
//!   compiled against when only bodies they cannot see changed
//!   ([`interface`]); its dependents then find nothing new.
//!
//! So after an edit inside a function body of a workspace library, that
//! library alone compiles. Workspace libraries are shared libraries for
//! the executables that link them ([`shared`]), which is what makes
//! pointing an executable at new code a matter of replacing a link.
//!
//! The records are in [`Store`]; any doubt (a missing record, a file
//! changed behind dyndev's back, a source saved during a compile) means a
//! compile, as cargo would do.

pub mod interface;
pub mod record;
pub mod relink;
pub mod rlib;
pub mod shared;
pub mod source;
mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result};

use crate::contract::FileId;
use crate::depinfo::DepInfo;
use crate::kept::KeptLink;
use crate::rustc_args::{Invocation, UnitKind, crate_of_stem, unit_stem_of};
use crate::state::Cutoff;

pub use record::UnitRecord;
pub use rlib::RlibFacts;
pub use store::Store;

/// What a compile needs from the wrapper.
#[allow(missing_debug_implementations)]
pub struct Context<'a> {
    pub store: &'a Store,
    /// rustc, or the user's workspace wrapper around it, ready for
    /// arguments.
    pub rustc: &'a dyn Fn() -> Command,
    /// The crate names of the workspace's libraries.
    pub members: &'a [String],
    /// The linker proxy, which keeps executables' links and links them
    /// against shared versions of the workspace libraries.
    pub proxy: &'a Path,
    /// Whether executables link the workspace libraries' shared versions
    /// and keep their links (to be pointed at new code without a compile);
    /// not under `watch --hot`, whose reloads patch the program's own code
    /// and keep its links themselves.
    pub shared_members: bool,
}

impl Context<'_> {
    /// Whether the unit stem names a workspace library.
    pub fn is_member(&self, stem: &str) -> bool {
        let krate = crate_of_stem(stem);
        self.members.iter().any(|m| m == krate)
    }
}

/// Compiles the member unit `inv` (its final arguments `args`), or reuses
/// what its last compile made when nothing it reads changed. Returns
/// rustc's exit code and what the cutoff did.
pub fn compile(ctx: &Context<'_>, inv: &Invocation, args: &[String]) -> Result<(i32, Cutoff)> {
    let stem = inv.unit_stem().context("a unit without a name")?;
    let record = ctx
        .store
        .unit(&stem)
        .filter(|_| is_library(inv) || ctx.shared_members);
    let why = match record {
        None => "no record of its last compile".to_owned(),
        Some(record) => {
            let externs = interface::extern_ids(ctx, inv);
            let output_id = |path: &Path| {
                FileId::of(path).or_else(|| FileId::of(&ctx.store.kept_output(&stem, path)?))
            };
            match record.differs(args, &externs, &output_id) {
                Some(why) => why,
                None => match reuse(ctx, inv, &stem, &record) {
                    Ok(cutoff) => {
                        eprint!("{}", record.stderr);
                        return Ok((0, cutoff));
                    }
                    Err(e) => format!("{e:#}"),
                },
            }
        }
    };
    if is_library(inv) {
        let compiled = interface::compile(ctx, inv, args)?;
        let cutoff = Cutoff::Library {
            why,
            interface: match compiled.interface {
                Some(interface::Interface::Kept) => None,
                Some(interface::Interface::New(reason)) => Some(reason),
                None => Some("it failed to compile".into()),
            },
        };
        return Ok((compiled.code, cutoff));
    }
    let code = compile_executable(ctx, inv, args)?;
    Ok((code, Cutoff::Compiled(why)))
}

/// Whether the cutoff compiles `inv`: a library (not its tests) or an
/// executable, with its debug info in its objects. Split debug info
/// (`-C split-debuginfo=packed|unpacked`) names the files beside the
/// objects where rustc wrote them, which a staged compile moves.
pub fn handles(inv: &Invocation) -> bool {
    let split = inv
        .codegen_value("split-debuginfo")
        .is_some_and(|v| v != "off");
    !split && (is_library(inv) || inv.kind() == UnitKind::Executable)
}

fn is_library(inv: &Invocation) -> bool {
    inv.kind() == UnitKind::Rlib && !inv.test
}

/// What a unit left as it is needs: a library's outputs look new to cargo;
/// an executable gets its libraries' new code.
fn reuse(ctx: &Context<'_>, inv: &Invocation, stem: &str, record: &UnitRecord) -> Result<Cutoff> {
    for output in record.outputs.keys() {
        ctx.store.restore_output(stem, output)?;
    }
    if is_library(inv) {
        let mut updated = record.clone();
        for (path, id) in updated.outputs.iter_mut() {
            let was = *id;
            touch(path)?;
            *id = FileId::of(path).context("an output is missing")?;
            shared::carry_version(ctx.store.root(), path, was);
        }
        if let Some(mut published) = ctx.store.published(stem) {
            for (path, id) in &updated.outputs {
                match path.extension().and_then(|e| e.to_str()) {
                    Some("rlib") => published.rlib = Some(*id),
                    Some("rmeta") => published.rmeta = *id,
                    _ => {}
                }
            }
            ctx.store.publish(stem, &published)?;
        }
        ctx.store.save_unit(stem, &updated)?;
        return Ok(Cutoff::Reused);
    }
    let updated = relink::relink(ctx, inv, record)?;
    let outputs: Vec<PathBuf> = updated.outputs.keys().cloned().collect();
    ctx.store.keep_outputs(stem, &outputs)?;
    ctx.store.save_unit(stem, &updated)?;
    Ok(Cutoff::Relinked)
}

/// An executable compiled through the linker proxy, which keeps its link
/// (for [`relink`]) and links it against shared versions of the
/// workspace libraries; rustc's diagnostics recorded for the next time.
fn compile_executable(ctx: &Context<'_>, inv: &Invocation, args: &[String]) -> Result<i32> {
    let stem = inv.unit_stem().context("an executable without a name")?;
    if !ctx.shared_members {
        // `watch --hot` keeps the program's link its own way, for reload;
        // the record says when a reload needs no compile of it
        // ([`unchanged`]).
        let started = std::time::SystemTime::now();
        let (status, stderr) =
            run_keeping_stderr((ctx.rustc)().args(args)).context("failed to run rustc")?;
        if !status.success() {
            ctx.store.forget_unit(&stem);
            return Ok(crate::cargo::exit_code(status));
        }
        let output = inv
            .out_dir
            .as_deref()
            .context("an executable without an out dir")?
            .join(&stem);
        let dep_info = inv
            .dep_info_path()
            .context("an executable without dep-info")?;
        record_unit(
            ctx,
            inv,
            args,
            &dep_info,
            &[output],
            stderr,
            BTreeMap::new(),
            started,
        )?;
        return Ok(0);
    }
    let links = ctx.store.links().display().to_string();
    let (through, env) = crate::kept::through_proxy(inv, &ctx.proxy.display().to_string(), &links);
    let mut cmd = (ctx.rustc)();
    cmd.args(through)
        .envs(env)
        .env(crate::contract::env::SHARED_LIBS, ctx.store.root());
    let started = std::time::SystemTime::now();
    let (status, stderr) = run_keeping_stderr(&mut cmd).context("failed to run rustc")?;
    if !status.success() {
        ctx.store.forget_unit(&stem);
        return Ok(crate::cargo::exit_code(status));
    }
    let out_dir = inv
        .out_dir
        .as_deref()
        .context("an executable without an out dir")?;
    let output = out_dir.join(&stem);
    let dep_info = inv
        .dep_info_path()
        .context("an executable without dep-info")?;
    let rlibs: Vec<PathBuf> = KeptLink::latest(&ctx.store.links(), &output)
        .map(|k| {
            k.rlibs
                .iter()
                .filter_map(|r| Some(out_dir.join(r.file_name()?)))
                .collect()
        })
        .unwrap_or_default();
    let code = code_of(ctx, &rlibs);
    record_unit(ctx, inv, args, &dep_info, &[output], stderr, code, started)?;
    Ok(0)
}

/// Whether a compile of the executable `inv` would read what its last one
/// read: its sources, its environment, its dependencies' interfaces.
/// `watch --hot` then takes new code from the libraries alone, without
/// compiling the program's crate. `state_dir` and `members` come from the
/// compile's environment.
pub fn unchanged(state_dir: &Path, members: &[String], inv: &Invocation) -> bool {
    let store = Store::new(state_dir);
    let Some(record) = inv.unit_stem().and_then(|stem| store.unit(&stem)) else {
        return false;
    };
    let ctx = Context {
        store: &store,
        rustc: &|| Command::new("rustc"),
        members,
        proxy: Path::new(""),
        shared_members: false,
    };
    record
        .inputs_differ(&interface::extern_ids(&ctx, inv))
        .is_none()
}

/// Forgets the record of `inv`'s last compile: something else compiled the
/// unit since (a reload, which keeps its objects for the running program
/// alone), so the record no longer says what the running code was made
/// from, and [`unchanged`] must not answer from it.
pub fn forget(state_dir: &Path, inv: &Invocation) {
    if let Some(stem) = inv.unit_stem() {
        Store::new(state_dir).forget_unit(&stem);
    }
}

/// The code each workspace library among `rlibs` holds now, by stem: the
/// blob of the symbols it uses from elsewhere, or its file's identity when
/// the cutoff did not publish it.
fn code_of(ctx: &Context<'_>, rlibs: &[PathBuf]) -> BTreeMap<String, String> {
    rlibs
        .iter()
        .filter_map(|rlib| {
            let stem = unit_stem_of(rlib)?;
            if !ctx.is_member(stem) {
                return None;
            }
            let id = FileId::of(rlib);
            let code = ctx
                .store
                .published(stem)
                .filter(|p| p.rlib.is_some() && p.rlib == id)
                .and_then(|p| p.code)
                .unwrap_or_else(|| format!("file:{id:?}"));
            Some((stem.to_owned(), code))
        })
        .collect()
}

/// Records a compile that just succeeded, unless a source was saved while
/// it ran (what rustc read is then unknown, and it compiles next time).
#[allow(clippy::too_many_arguments)]
fn record_unit(
    ctx: &Context<'_>,
    inv: &Invocation,
    args: &[String],
    dep_info: &Path,
    outputs: &[PathBuf],
    stderr: String,
    code: BTreeMap<String, String>,
    started: std::time::SystemTime,
) -> Result<()> {
    let stem = inv.unit_stem().context("a unit without a name")?;
    let Some(info) = DepInfo::read(dep_info) else {
        ctx.store.forget_unit(&stem);
        return Ok(());
    };
    let mut files = BTreeMap::new();
    for file in &info.files {
        match std::fs::read(file) {
            Ok(bytes) => files.insert(file.clone(), record::hash(&bytes)),
            Err(_) => None,
        };
    }
    if files.len() != info.files.len() || record::saved_since(&info.files, started) {
        ctx.store.forget_unit(&stem);
        return Ok(());
    }
    let mut ids = BTreeMap::new();
    for path in outputs {
        ids.insert(
            path.clone(),
            FileId::of(path).with_context(|| format!("`{}` is missing", path.display()))?,
        );
    }
    ctx.store.keep_outputs(&stem, outputs)?;
    let record = UnitRecord {
        args: record::comparable(args),
        env: record::env_now(&info.env),
        files,
        natives: record::native_archives(inv),
        externs: interface::extern_ids(ctx, inv),
        outputs: ids,
        stderr,
        code,
    };
    ctx.store.save_unit(&stem, &record)
}

/// Sets a file's modification time to now. Opened to read: a program
/// that is running cannot be opened to write.
fn touch(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()))
        .with_context(|| format!("failed to touch `{}`", path.display()))
}

/// Runs `cmd`, passing its stderr on as it comes and keeping a copy.
fn run_keeping_stderr(cmd: &mut Command) -> std::io::Result<(std::process::ExitStatus, String)> {
    use std::io::Read;
    cmd.stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn()?;
    let mut from = child.stderr.take().expect("stderr is piped");
    let mut kept = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut to = std::io::stderr();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // cargo reads it; if it went away, the build is over anyway.
        let _ = to.write_all(&buf[..n]);
        kept.extend_from_slice(&buf[..n]);
    }
    let status = child.wait()?;
    Ok((status, String::from_utf8_lossy(&kept).into_owned()))
}

/// The names of the symbols of ELF files that `keep` accepts: their
/// dynamic symbols (what a shared library offers the loader) or their
/// symbol tables. Unreadable files count as holding none.
pub fn symbol_names<'a>(
    files: impl IntoIterator<Item = &'a Path>,
    dynamic: bool,
    keep: impl Fn(&object::Symbol<'_, '_>) -> bool,
) -> BTreeSet<String> {
    use object::{Object, ObjectSymbol};
    let mut out = BTreeSet::new();
    for path in files {
        let Ok(data) = std::fs::read(path) else {
            continue;
        };
        let Ok(file) = object::File::parse(&*data) else {
            continue;
        };
        let symbols = if dynamic {
            file.dynamic_symbols()
        } else {
            file.symbols()
        };
        for sym in symbols.filter(|s| keep(s)) {
            if let Ok(name) = sym.name() {
                out.insert(name.to_owned());
            }
        }
    }
    out
}
