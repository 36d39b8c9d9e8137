//! Early cutoff for test binaries: after an edit that changed only the
//! private code of a workspace library, its test binaries are linked again
//! with the new library, without compiling them again.
//!
//! Cargo compiles every test crate again when a library it uses changed,
//! whatever changed in it. A test crate's compile reads the library's
//! metadata only, and [`source`] tells, from the library's sources before
//! and after, when nothing in that metadata a dependent uses can have
//! changed: only bodies of functions that are compiled in the library
//! alone. Then the wrapper links the test crate's kept objects (from its
//! last compile, by the linker proxy) with the new library, as rustc would
//! have, and replays that compile's diagnostics for cargo.
//!
//! Under `<state dir>/cutoff`:
//!
//! ```text
//! blobs/<hash>               source files and symbol lists, by content
//! libs/<lib stem>/<id>.json  a library's compile ([`LibSnapshot`])
//! libs/<lib stem>/current    the id of the library's newest compile
//! tests/<stem>.json          a test crate's last compile ([`TestRecord`])
//! links/                     the kept links of test binaries
//! ```
//!
//! A test crate is reused only when its own command, sources, environment
//! and other dependencies are as they were, its binary is the one that
//! compile made, and every workspace library it was compiled against
//! differs from that version in eligible bodies alone, still defining
//! every global symbol it did.

pub mod shared;
pub mod source;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::helpers::linker::{FileId, KeptLink};
use crate::rustc_args::{Invocation, crate_of_stem};
use crate::state::Cutoff;

/// Set by `cargo dyndev test` and `nextest`: libraries are snapshotted and
/// test crates reused when they can be.
pub const ENV: &str = "__CARGO_DYNDEV_CUTOFF";

/// Where the cutoff keeps its records.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// One compile of a workspace library, as test crates compiled against it
/// saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibSnapshot {
    pub id: String,
    /// The compile's arguments (without the terminal width); `None` for a
    /// library compiled before dyndev recorded it, snapshotted as it is.
    pub args: Option<Vec<String>>,
    /// `# env-dep:` lines of its dep-info.
    pub env_deps: Vec<String>,
    /// Its source files and their blobs.
    pub files: BTreeMap<PathBuf, String>,
    /// The crate's root file, the first of its dep-info.
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// The identity of each extern it was compiled with, other than
    /// workspace libraries, which have snapshots of their own.
    pub externs: BTreeMap<PathBuf, Option<FileId>>,
    /// The unit stems of the workspace libraries it uses.
    pub members: BTreeSet<String>,
    pub rlib: PathBuf,
    pub rlib_id: FileId,
    /// The blob listing the global symbols its rlib defines.
    pub symbols: String,
    /// The blob listing the symbols its rlib uses from elsewhere; `None`
    /// from older records.
    #[serde(default)]
    pub undefined: Option<String>,
    /// Compiled so that rustc inlines no function across crates unless
    /// asked to ([`compiled_opaquely`]).
    pub opaque: bool,
}

/// A test crate's last compile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestRecord {
    pub args: Vec<String>,
    /// Environment variables the crate read (`env!`), with their values.
    pub env: BTreeMap<String, Option<String>>,
    /// Its own source files and their content hashes.
    pub files: BTreeMap<PathBuf, String>,
    pub externs: BTreeMap<PathBuf, Option<FileId>>,
    /// The snapshot of each workspace library it was compiled against,
    /// directly or through another.
    pub libs: BTreeMap<String, String>,
    pub output: PathBuf,
    pub output_id: FileId,
    /// rustc's diagnostics on stderr (JSON lines), for cargo.
    pub stderr: String,
}

/// A test crate that may be linked instead of compiled.
struct Reusable {
    record: TestRecord,
    kept: KeptLink,
    /// Symbols its libraries use now and did not before (`None`: not
    /// known).
    newly_used: Option<BTreeSet<String>>,
}

fn hash(bytes: &[u8]) -> String {
    crate::fs::StableHasher::default().write(bytes).finish_hex()
}

/// Arguments compared between compiles: the terminal width only shapes
/// how diagnostics are drawn.
fn comparable(args: &[String]) -> Vec<String> {
    args.iter()
        .filter(|a| !a.starts_with("--diagnostic-width"))
        .cloned()
        .collect()
}

/// Whether rustc compiled the library so that a dependent sees the bodies
/// of only generic, `#[inline]` and `const` functions: with incremental
/// compilation or without optimization it infers no cross-crate inlining,
/// and no `-Z` option changes that.
pub fn compiled_opaquely(inv: &Invocation) -> bool {
    let incremental = inv.codegen_value("incremental").is_some();
    let unoptimized = matches!(inv.codegen_value("opt-level"), None | Some("0"));
    let unstable = inv.args.iter().any(|a| a.starts_with("-Z"));
    (incremental || unoptimized) && !unstable
}

/// The files and `# env-dep:` lines of a makefile-style dep-info file.
pub fn read_dep_info(path: &Path) -> Option<(Vec<PathBuf>, Vec<String>)> {
    let info = crate::depinfo::DepInfo::read(path)?;
    Some((info.files, info.env))
}

/// Whether any of `files` was modified at or after `time` (or is gone).
fn saved_since(files: &[PathBuf], time: std::time::SystemTime) -> bool {
    files.iter().any(|f| {
        std::fs::metadata(f)
            .and_then(|m| m.modified())
            .map_or(true, |m| m >= time)
    })
}

/// What an rlib's objects hold that the cutoff and the shared libraries
/// need, read in one pass over the archive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RlibFacts {
    /// The global symbols they define, sorted.
    pub defined: Vec<String>,
    /// The symbols they use without defining (from other crates, or the
    /// executable), sorted.
    pub undefined: Vec<String>,
    /// Why the rlib cannot be a shared library of its own: it takes part
    /// in a list the linker gathers from every object of the program (a
    /// section named as a C identifier, framed by `__start_`/`__stop_`
    /// symbols: `linkme`'s distributed slices), which a shared library
    /// would split from the executable's part.
    pub gathered: Option<String>,
}

pub fn rlib_facts(rlib: &Path) -> Result<RlibFacts> {
    use object::{Object, ObjectSection, ObjectSymbol};
    let data = crate::fs::read(rlib)?;
    let archive = object::read::archive::ArchiveFile::parse(&*data)
        .with_context(|| format!("`{}` is not an archive", rlib.display()))?;
    let mut defined = BTreeSet::new();
    let mut used = BTreeSet::new();
    let mut gathered = None;
    for member in archive.members() {
        let member = member?;
        if !member.name().ends_with(b".o") {
            continue;
        }
        let Ok(file) = object::File::parse(member.data(&*data)?) else {
            continue;
        };
        for section in file.sections() {
            let name = section.name().unwrap_or_default();
            let c_identifier = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if c_identifier && gathered.is_none() {
                gathered = Some(format!("has the linker gather section `{name}`"));
            }
        }
        for sym in file.symbols() {
            let Ok(name) = sym.name() else { continue };
            if (name.starts_with("__start_") || name.starts_with("__stop_")) && gathered.is_none() {
                gathered = Some(format!("uses `{name}`"));
            }
            if sym.is_global() && sym.is_definition() {
                defined.insert(name.to_owned());
            } else if sym.is_undefined() && !name.is_empty() {
                used.insert(name.to_owned());
            }
        }
    }
    let undefined = used.difference(&defined).cloned().collect();
    Ok(RlibFacts {
        defined: defined.into_iter().collect(),
        undefined,
        gathered,
    })
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

impl Store {
    pub fn new(state_dir: &Path) -> Store {
        Store {
            root: state_dir.join("cutoff"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the linker proxy keeps test binaries' links.
    pub fn links(&self) -> PathBuf {
        self.root.join("links")
    }

    fn put_blob(&self, bytes: &[u8]) -> Result<String> {
        let id = hash(bytes);
        let path = self.root.join("blobs").join(&id);
        if !path.exists() {
            crate::fs::write_atomic(&path, bytes)?;
        }
        Ok(id)
    }

    fn blob(&self, id: &str) -> Option<Vec<u8>> {
        std::fs::read(self.root.join("blobs").join(id)).ok()
    }

    fn lib_dir(&self, stem: &str) -> PathBuf {
        self.root.join("libs").join(stem)
    }

    fn snapshot(&self, stem: &str, id: &str) -> Option<LibSnapshot> {
        let text = std::fs::read(self.lib_dir(stem).join(format!("{id}.json"))).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// The library's newest snapshot, if it describes the rlib on disk.
    fn current(&self, stem: &str) -> Option<LibSnapshot> {
        let id = std::fs::read_to_string(self.lib_dir(stem).join("current")).ok()?;
        let snap = self.snapshot(stem, id.trim())?;
        (FileId::of(&snap.rlib) == Some(snap.rlib_id)).then_some(snap)
    }

    /// Records a library's compile that just succeeded.
    pub fn snapshot_lib(
        &self,
        inv: &Invocation,
        args: &[String],
        members: &[String],
        started: std::time::SystemTime,
    ) -> Result<()> {
        let stem = inv.unit_stem().context("a library without a name")?;
        let out_dir = inv
            .out_dir
            .as_deref()
            .context("a library without an out dir")?;
        let rlib = out_dir.join(format!("{stem}.rlib"));
        let dep_info = inv.dep_info_path().context("a library without dep-info")?;
        let (files, env_deps) =
            read_dep_info(&dep_info).context("failed to read the library's dep-info")?;
        // A file saved while rustc ran may not be what it compiled: no
        // snapshot then, and the tests compile (cargo compiles the library
        // again next time, for the same reason).
        if saved_since(&files, started) {
            let _ = std::fs::remove_file(self.lib_dir(&stem).join("current"));
            return Ok(());
        }
        let root = files.first().cloned();
        let mut sources = BTreeMap::new();
        for file in files {
            let bytes = crate::fs::read(&file)?;
            sources.insert(file, self.put_blob(&bytes)?);
        }
        let RlibFacts {
            defined, undefined, ..
        } = rlib_facts(&rlib)?;
        let rlib_id = FileId::of(&rlib).context("the library's rlib is missing")?;
        let mut externs = BTreeMap::new();
        let mut member_stems = BTreeSet::new();
        for ext in &inv.externs {
            let Some(path) = &ext.path else { continue };
            match ext.unit_stem() {
                Some(s) if members.iter().any(|m| m == crate_of_stem(s)) => {
                    member_stems.insert(s.to_owned());
                }
                _ => {
                    externs.insert(path.clone(), FileId::of(path));
                }
            }
        }
        let snap = LibSnapshot {
            id: String::new(),
            args: Some(comparable(args)),
            env_deps,
            files: sources,
            root,
            externs,
            members: member_stems,
            rlib,
            rlib_id,
            symbols: self.put_blob(defined.join("\n").as_bytes())?,
            undefined: Some(self.put_blob(undefined.join("\n").as_bytes())?),
            opaque: compiled_opaquely(inv),
        };
        self.save_snapshot(&stem, snap)?;
        Ok(())
    }

    fn save_snapshot(&self, stem: &str, mut snap: LibSnapshot) -> Result<LibSnapshot> {
        let json = serde_json::to_vec(&snap)?;
        snap.id = hash(&json);
        let dir = self.lib_dir(stem);
        crate::fs::write_atomic(
            &dir.join(format!("{}.json", snap.id)),
            &serde_json::to_vec(&snap)?,
        )?;
        crate::fs::write_atomic(&dir.join("current"), snap.id.as_bytes())?;
        Ok(snap)
    }

    /// A snapshot of a library compiled before dyndev recorded it (by an
    /// older dyndev, or a `build`): its sources as they are, which cargo
    /// found unchanged since its rlib. It stands for the library only as
    /// long as nothing of it changes.
    fn lazy_snapshot(&self, stem: &str, dir: &Path) -> Option<LibSnapshot> {
        let rlib = dir.join(format!("{stem}.rlib"));
        let rlib_id = FileId::of(&rlib)?;
        let dep_info = dir.join(format!("{}.d", stem.strip_prefix("lib").unwrap_or(stem)));
        let (files, env_deps) = read_dep_info(&dep_info)?;
        // Only sources older than the rlib are what it was compiled from.
        let rlib_time = std::fs::metadata(&rlib).ok()?.modified().ok()?;
        if saved_since(&files, rlib_time) {
            return None;
        }
        let root = files.first().cloned();
        let mut sources = BTreeMap::new();
        for file in files {
            let bytes = std::fs::read(&file).ok()?;
            sources.insert(file, self.put_blob(&bytes).ok()?);
        }
        let RlibFacts {
            defined, undefined, ..
        } = rlib_facts(&rlib).ok()?;
        let snap = LibSnapshot {
            id: String::new(),
            args: None,
            env_deps,
            files: sources,
            root,
            externs: BTreeMap::new(),
            members: BTreeSet::new(),
            rlib,
            rlib_id,
            symbols: self.put_blob(defined.join("\n").as_bytes()).ok()?,
            undefined: Some(self.put_blob(undefined.join("\n").as_bytes()).ok()?),
            opaque: false,
        };
        self.save_snapshot(stem, snap).ok()
    }

    /// The current snapshots of the workspace libraries `inv` uses,
    /// directly or through each other, by stem; `None` when one has none.
    fn closure(
        &self,
        inv: &Invocation,
        members: &[String],
    ) -> Option<BTreeMap<String, LibSnapshot>> {
        let mut todo: Vec<(String, PathBuf)> = inv
            .externs
            .iter()
            .filter_map(|e| Some((e.unit_stem()?, e.path.as_deref()?.parent()?)))
            .filter(|(s, _)| members.iter().any(|m| m == crate_of_stem(s)))
            .map(|(s, d)| (s.to_owned(), d.to_path_buf()))
            .collect();
        let mut found = BTreeMap::new();
        while let Some((stem, dir)) = todo.pop() {
            if found.contains_key(&stem) {
                continue;
            }
            let snap = self
                .current(&stem)
                .or_else(|| self.lazy_snapshot(&stem, &dir))?;
            let below = snap.rlib.parent().unwrap_or(&dir).to_path_buf();
            todo.extend(snap.members.iter().map(|m| (m.clone(), below.clone())));
            found.insert(stem, snap);
        }
        Some(found)
    }

    /// Removes the snapshots no test record and no library's `current`
    /// names, and the blobs no remaining snapshot or record uses. Run by
    /// the driver with the state lock held, when no wrapper is running.
    pub fn collect_garbage(&self) {
        let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
        for entry in std::fs::read_dir(self.root.join("tests"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Some(record) = std::fs::read(entry.path())
                .ok()
                .and_then(|t| serde_json::from_slice::<TestRecord>(&t).ok())
            {
                wanted.extend(record.libs);
            }
        }
        let mut blobs = BTreeSet::new();
        for lib in std::fs::read_dir(self.root.join("libs"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let stem = lib.file_name().to_string_lossy().into_owned();
            let current = std::fs::read_to_string(lib.path().join("current")).unwrap_or_default();
            for entry in std::fs::read_dir(lib.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let path = entry.path();
                let Some(id) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".json"))
                    .map(str::to_owned)
                else {
                    continue;
                };
                if id != current.trim() && !wanted.contains(&(stem.clone(), id.clone())) {
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                if let Some(snap) = self.snapshot(&stem, &id) {
                    blobs.extend(snap.files.into_values());
                    blobs.insert(snap.symbols);
                    blobs.extend(snap.undefined);
                }
            }
        }
        for entry in std::fs::read_dir(self.root.join("blobs"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if !blobs.contains(entry.file_name().to_string_lossy().as_ref()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn test_record_path(&self, stem: &str) -> PathBuf {
        self.root.join("tests").join(format!("{stem}.json"))
    }

    /// Records a test crate's compile that just succeeded. Without
    /// snapshots of every library it uses, no record: it is compiled next
    /// time.
    pub fn record_test(
        &self,
        inv: &Invocation,
        args: &[String],
        members: &[String],
        stderr: String,
        started: std::time::SystemTime,
    ) -> Result<()> {
        let stem = inv.unit_stem().context("a test without a name")?;
        let record_path = self.test_record_path(&stem);
        let _ = std::fs::remove_file(&record_path);
        let Some(libs) = self.closure(inv, members) else {
            return Ok(());
        };
        let out_dir = inv
            .out_dir
            .as_deref()
            .context("a test without an out dir")?;
        let output = out_dir.join(&stem);
        let dep_info = inv.dep_info_path().context("a test without dep-info")?;
        let (files, env_deps) =
            read_dep_info(&dep_info).context("failed to read the test's dep-info")?;
        // A file saved while rustc ran may not be what it compiled.
        if saved_since(&files, started) {
            return Ok(());
        }
        let mut sources = BTreeMap::new();
        for file in files {
            sources.insert(file.clone(), hash(&crate::fs::read(&file)?));
        }
        let mut env = BTreeMap::new();
        for line in env_deps {
            let name = line.split_once('=').map_or(line.as_str(), |(n, _)| n);
            env.insert(name.to_owned(), std::env::var(name).ok());
        }
        let externs = inv
            .externs
            .iter()
            .filter(|e| !e.unit_stem().is_some_and(|s| libs.contains_key(s)))
            .filter_map(|e| e.path.clone())
            .map(|p| {
                let id = FileId::of(&p);
                (p, id)
            })
            .collect();
        let record = TestRecord {
            args: comparable(args),
            env,
            files: sources,
            externs,
            libs: libs.into_iter().map(|(stem, s)| (stem, s.id)).collect(),
            output_id: FileId::of(&output).context("the test binary is missing")?,
            output,
            stderr,
        };
        crate::fs::write_atomic(&record_path, &serde_json::to_vec(&record)?)
    }

    /// Links the test crate `inv` from its last compile's objects when
    /// nothing it is compiled from changed but private code of the
    /// libraries it uses; otherwise says why it must be compiled.
    pub fn try_relink(&self, inv: &Invocation, args: &[String], members: &[String]) -> Cutoff {
        match self.reusable(inv, args, members) {
            Ok(Some(Reusable {
                record,
                kept,
                newly_used,
            })) => match self.relink(&record, &kept, inv, newly_used) {
                Ok(()) => {
                    eprint!("{}", record.stderr);
                    Cutoff::Relinked
                }
                Err(e) => Cutoff::Compiled(format!("{e:#}")),
            },
            Ok(None) => Cutoff::Compiled("no record of its last compile".into()),
            Err(why) => Cutoff::Compiled(why),
        }
    }

    fn reusable(
        &self,
        inv: &Invocation,
        args: &[String],
        members: &[String],
    ) -> Result<Option<Reusable>, String> {
        let Some(stem) = inv.unit_stem() else {
            return Ok(None);
        };
        let Some(record) = std::fs::read(self.test_record_path(&stem))
            .ok()
            .and_then(|t| serde_json::from_slice::<TestRecord>(&t).ok())
        else {
            return Ok(None);
        };
        if record.args != comparable(args) {
            return Err("its command changed".into());
        }
        if FileId::of(&record.output) != Some(record.output_id) {
            return Err("its binary changed since".into());
        }
        for (file, h) in &record.files {
            if std::fs::read(file).ok().map(|b| hash(&b)).as_ref() != Some(h) {
                return Err(format!("`{}` changed", file.display()));
            }
        }
        for (name, value) in &record.env {
            if std::env::var(name).ok() != *value {
                return Err(format!("`{name}` changed"));
            }
        }
        for (path, id) in &record.externs {
            if FileId::of(path) != *id {
                return Err(format!("`{}` changed", path.display()));
            }
        }
        let now = self
            .closure(inv, members)
            .ok_or("a library it uses has no snapshot")?;
        if now.keys().ne(record.libs.keys()) {
            return Err("the libraries it uses changed".into());
        }
        // Symbols the libraries use now and did not before (`None`: not
        // known): a binary not linked again must find them at run time.
        let mut newly_used = Some(BTreeSet::new());
        for (stem, snap) in &now {
            let basis = &record.libs[stem];
            if &snap.id == basis {
                continue;
            }
            let then = self
                .snapshot(stem, basis)
                .ok_or_else(|| format!("the snapshot of `{stem}` is gone"))?;
            let used = self
                .privately_changed(&then, snap)
                .map_err(|why| format!("`{}`: {why}", crate_of_stem(stem)))?;
            newly_used = newly_used.zip(used).map(|(mut all, more)| {
                all.extend(more);
                all
            });
        }
        let kept =
            KeptLink::latest(&self.links(), &record.output).ok_or("its link was not kept")?;
        if kept.linked != Some(record.output_id) {
            return Err("its kept link made another binary".into());
        }
        Ok(Some(Reusable {
            record,
            kept,
            newly_used,
        }))
    }

    /// Whether `now` differs from `then` in private code alone.
    /// Whether `now` differs from `then` in private code alone; if so, the
    /// symbols it uses from elsewhere that `then` did not (`None` when
    /// not recorded).
    fn privately_changed(
        &self,
        then: &LibSnapshot,
        now: &LibSnapshot,
    ) -> Result<Option<BTreeSet<String>>, String> {
        if then.args.is_none() || now.args.is_none() {
            return Err("it was compiled before `cargo dyndev test` recorded it".into());
        }
        if !(then.opaque && now.opaque) {
            return Err("compiled with optimization and without incremental compilation".into());
        }
        if then.args != now.args {
            return Err("its command changed".into());
        }
        if then.env_deps != now.env_deps {
            return Err("an environment variable it reads changed".into());
        }
        if then.externs != now.externs || then.members != now.members {
            return Err("its dependencies changed".into());
        }
        if then.files.keys().ne(now.files.keys()) {
            return Err("its source files changed".into());
        }
        let read = |id: &str| -> Result<String, String> {
            let bytes = self.blob(id).ok_or("a snapshot's source is gone")?;
            String::from_utf8(bytes).map_err(|_| "a source is not UTF-8".to_owned())
        };
        let changed: Vec<&PathBuf> = then
            .files
            .iter()
            .filter(|(path, old)| now.files[*path] != **old)
            .map(|(path, _)| path)
            .collect();
        // No source changed: compiled again because a workspace library
        // it uses changed, which the closure checks on its own.
        if !changed.is_empty() {
            let root = now.root.as_deref().ok_or("its root file is unknown")?;
            // Rust files only, by normalized path, in both versions.
            let texts = |snap: &LibSnapshot| -> Result<BTreeMap<PathBuf, String>, String> {
                snap.files
                    .iter()
                    .filter(|(p, _)| p.extension().is_some_and(|e| e == "rs"))
                    .map(|(p, id)| Ok((crate::fs::normalize(p), read(id)?)))
                    .collect()
            };
            let (old_texts, new_texts) = (texts(then)?, texts(now)?);
            let modules = |t: &BTreeMap<PathBuf, String>| {
                source::module_files(root, t).ok_or("its module tree is unknown (`#[path]`)")
            };
            let (old_modules, new_modules) = (modules(&old_texts)?, modules(&new_texts)?);
            // Files read as data or code by `include!` and its kin count
            // byte for byte, whatever they hold.
            let mut included = BTreeSet::new();
            for (path, text) in old_texts.iter().chain(&new_texts) {
                included.extend(
                    source::include_targets(path, text)
                        .ok_or("it includes a file named by a computed path")?,
                );
            }
            let std_macros = source::std_macros_unshadowed(
                old_texts
                    .values()
                    .chain(new_texts.values())
                    .map(String::as_str),
            );
            let args = now.args.as_deref().unwrap_or_default();
            let cfg_test = args.iter().any(|a| a == "--test")
                || args
                    .windows(2)
                    .any(|w| w[0] == "--cfg" && w[1].trim() == "test")
                || args.iter().any(|a| a == "--cfg=test");
            // A crate the library starts to use joins the crate graph of
            // every test crate, and its impls can change their inference.
            let idents = |t: &BTreeMap<PathBuf, String>| {
                let mut out = BTreeSet::new();
                for text in t.values() {
                    if let Ok(stream) = text.parse::<proc_macro2::TokenStream>() {
                        source::collect_idents(stream, &mut out);
                    }
                }
                out
            };
            let (old_idents, new_idents) = (idents(&old_texts), idents(&new_texts));
            for ext in &Invocation::parse(args.to_vec()).externs {
                if new_idents.contains(&ext.name) && !old_idents.contains(&ext.name) {
                    return Err(format!("it starts to use the crate `{}`", ext.name));
                }
            }
            for path in changed {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                let key = crate::fs::normalize(path);
                if !(old_modules.contains(&key) && new_modules.contains(&key))
                    || included.contains(&key)
                {
                    return Err(format!(
                        "`{name}` changed, and it is not only a module's source"
                    ));
                }
                let verdict =
                    source::compare(&old_texts[&key], &new_texts[&key], std_macros, cfg_test);
                if let source::Verdict::Changed(why) = verdict {
                    return Err(format!("in `{name}`, {why}"));
                }
            }
        }
        let symbols = |id: &str| -> Result<BTreeSet<String>, String> {
            Ok(read(id)?.lines().map(str::to_owned).collect())
        };
        let (old, new) = (symbols(&then.symbols)?, symbols(&now.symbols)?);
        if let Some(gone) = old.difference(&new).next() {
            return Err(format!("no longer defines `{gone}`"));
        }
        Ok(match (&then.undefined, &now.undefined) {
            (Some(a), Some(b)) => {
                let (before, after) = (symbols(a)?, symbols(b)?);
                Some(after.difference(&before).cloned().collect())
            }
            _ => None,
        })
    }

    /// Links the binary again from the kept objects, with the libraries
    /// as they are now; or, when it was linked against shared versions of
    /// them, points it at their current versions.
    fn relink(
        &self,
        record: &TestRecord,
        kept: &KeptLink,
        inv: &Invocation,
        newly_used: Option<BTreeSet<String>>,
    ) -> Result<()> {
        let out_dir = inv
            .out_dir
            .as_deref()
            .context("a test without an out dir")?;
        let mut args = kept.args.clone();
        // The kept rlibs are the old ones: link the current ones.
        let mut rlibs_now = Vec::new();
        for rlib in &kept.rlibs {
            let now = out_dir.join(rlib.file_name().context("an rlib without a name")?);
            let kept_path = rlib.display().to_string();
            for a in args.iter_mut().filter(|a| **a == kept_path) {
                *a = now.display().to_string();
            }
            rlibs_now.push(now);
        }
        for file in kept.objects.iter().chain(&kept.temps) {
            if !file.exists() {
                anyhow::bail!("a kept object is gone");
            }
        }
        let repointed =
            !kept.shared.is_empty() && self.repoint(record, kept, &args, &rlibs_now, newly_used)?;
        if repointed {
            // Newer than the libraries, for cargo.
            std::fs::File::open(&record.output)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()))
                .with_context(|| format!("failed to touch `{}`", record.output.display()))?;
        } else {
            self.link_again(record, kept, &args)?;
        }
        let mut updated = record.clone();
        updated.output_id = FileId::of(&record.output).context("the relinked binary is missing")?;
        let stem = inv.unit_stem().context("a test without a name")?;
        crate::fs::write_atomic(
            &self.test_record_path(&stem),
            &serde_json::to_vec(&updated)?,
        )?;
        // The kept link now stands for the new binary.
        let mut link = kept.clone();
        link.linked = Some(updated.output_id);
        let json = serde_json::to_vec(&link)?;
        let name = record.output.file_name().context("no file name")?;
        crate::fs::write_atomic(
            &self
                .links()
                .join(format!("{}.json", name.to_string_lossy())),
            &json,
        )?;
        crate::fs::write_atomic(&kept.dir.join("link.json"), &json)
    }

    /// Points each of the binary's links to a workspace library at the
    /// library's current shared version; `false` when one of its
    /// workspace libraries is linked statically.
    fn repoint(
        &self,
        record: &TestRecord,
        kept: &KeptLink,
        args: &[String],
        rlibs: &[PathBuf],
        newly_used: Option<BTreeSet<String>>,
    ) -> Result<bool> {
        // What the libraries now use must be there without a link: in the
        // shared libraries the binary loads. Else the link finds out.
        let Some(newly_used) = newly_used else {
            return Ok(false);
        };
        let mut pointed = Vec::new();
        for rlib in rlibs {
            let Some(stem) = crate::rustc_args::unit_stem_of(rlib) else {
                continue;
            };
            if !record.libs.contains_key(stem) {
                continue;
            }
            let name = shared::link_name(rlib, &record.output).context("an rlib without a name")?;
            if !kept.shared.contains(&name) {
                return Ok(false);
            }
            let version = shared::version(&self.root, &kept.driver, args, rlib)?;
            pointed.push((name, version));
        }
        if !newly_used.is_empty() {
            let mut loaded: Vec<PathBuf> = args
                .iter()
                .filter(|a| a.ends_with(".so") || a.contains(".so."))
                .map(PathBuf::from)
                .collect();
            loaded.extend(pointed.iter().map(|(_, v)| v.clone()));
            let exported = symbol_names(loaded.iter().map(PathBuf::as_path), true, |s| {
                object::ObjectSymbol::is_definition(s)
            });
            if newly_used.iter().any(|s| !exported.contains(s)) {
                return Ok(false);
            }
        }
        for (name, version) in pointed {
            shared::point(&self.root, &name, &version)?;
        }
        Ok(true)
    }

    /// Runs the kept link again.
    fn link_again(&self, record: &TestRecord, kept: &KeptLink, args: &[String]) -> Result<()> {
        let mut cmd = std::process::Command::new(&kept.driver);
        cmd.args(args);
        if let Some(path) = &kept.path_env {
            cmd.env("PATH", path);
        }
        let errors = kept.dir.join("relink.err");
        let file = std::fs::File::create(&errors)
            .with_context(|| format!("failed to create `{}`", errors.display()))?;
        cmd.stdout(std::process::Stdio::null()).stderr(file);
        let (status, millis, max_rss_kib) = crate::measure::run_measured(&mut cmd)
            .with_context(|| format!("failed to run `{}`", kept.driver))?;
        // `compare` and the benchmarks count every link.
        if let Ok(log) = std::env::var(crate::helpers::linker::env::LINK_LOG) {
            let entry = crate::helpers::linker::LinkRecord {
                output: record.output.clone(),
                linker: "relink".into(),
                millis,
                max_rss_kib,
                success: status.success(),
            };
            let _ = crate::measure::append_json_line(Path::new(&log), &entry);
        }
        if !status.success() {
            let text = std::fs::read_to_string(&errors).unwrap_or_default();
            anyhow::bail!("linking it again failed: {}", text.trim());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unoptimized_or_incremental_compiles_hide_bodies() {
        let inv = |a: &str| Invocation::parse(a.split(' ').map(str::to_owned).collect());
        assert!(compiled_opaquely(&inv(
            "--crate-name a -C incremental=/i -C opt-level=3"
        )));
        assert!(compiled_opaquely(&inv("--crate-name a")));
        assert!(!compiled_opaquely(&inv("--crate-name a -C opt-level=1")));
        assert!(!compiled_opaquely(&inv(
            "--crate-name a -C incremental=/i -Zinline-mir"
        )));
    }
}
