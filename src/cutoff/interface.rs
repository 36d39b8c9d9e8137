//! A workspace library's compile, and the interface it shows.
//!
//! rustc compiles the library into a stage of its own. When its metadata
//! is ready (the moment cargo would start the dependents' compiles), the
//! new sources are compared with those of the compile whose interface the
//! library shows now (its [`LibSnapshot`]):
//!
//! - when something a dependent can see changed, the new metadata is
//!   published at once, as cargo would have it, and the new compile
//!   becomes the interface;
//! - when only bodies no dependent sees changed, the metadata waits for
//!   the code: once the new objects define every symbol the shown
//!   interface promised, the library keeps its metadata and takes the new
//!   objects ([`super::rlib::write_with_metadata`]); dependents then find
//!   everything they were compiled against unchanged and are not compiled
//!   again. Else the new compile is published after all.
//!
//! So every compile sees one consistent set of metadata, whatever was
//! skipped: a crate hash changes exactly when dependents compile again.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, Result};

use super::record::{ExternId, LibSnapshot, Published, comparable, compiled_opaquely, saved_since};
use super::{Context, source};
use crate::contract::FileId;
use crate::depinfo::DepInfo;
use crate::rustc_args::Invocation;

/// What became of a library's interface.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Interface {
    /// The metadata dependents see is unchanged; the code is new.
    Kept,
    /// The compile's own metadata is published, for this reason.
    New(String),
}

/// The outcome of a library's compile.
#[derive(Debug)]
pub struct Compiled {
    pub code: i32,
    /// What happened to the interface; `None` when rustc failed.
    pub interface: Option<Interface>,
}

/// Where cargo expects a library unit's outputs.
struct Outputs {
    dir: PathBuf,
    stem: String,
    /// The dep-info's file name, as cargo names it (`a-<hash>.d`).
    dep_info: String,
}

impl Outputs {
    fn rlib(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.rlib", self.stem))
    }
    fn rmeta(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.rmeta", self.stem))
    }
}

/// Compiles the library `inv` (its final arguments `args`) and publishes
/// its outputs as cargo expects them, keeping the interface where it can.
pub fn compile(ctx: &Context<'_>, inv: &Invocation, args: &[String]) -> Result<Compiled> {
    let stem = inv.unit_stem().context("a library without a name")?;
    let dir = inv
        .out_dir
        .clone()
        .context("a library without an out dir")?;
    let dep_info = inv
        .dep_info_path()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .context("a library without dep-info")?;
    let out = Outputs {
        dir,
        stem: stem.clone(),
        dep_info,
    };
    let _held = ctx.store.lock_stage(&stem)?;
    let stage = ctx.store.stage(&stem);
    let _ = std::fs::remove_dir_all(&stage);
    crate::fs::create_dir_all(&stage)?;
    let result = match inv.with_out_dir(&stage) {
        Some(staged) => compile_staged(ctx, inv, args, &staged, &out, &stage),
        None => {
            // Outputs named otherwise: compiled as cargo asked, shown as is.
            ctx.store.unpublish(&stem);
            ctx.store.forget_unit(&stem);
            let status = (ctx.rustc)()
                .args(args)
                .status()
                .context("failed to run rustc")?;
            Ok(Compiled {
                code: crate::cargo::exit_code(status),
                interface: status
                    .success()
                    .then(|| Interface::New("its outputs are named on its command line".into())),
            })
        }
    };
    let _ = std::fs::remove_dir_all(&stage);
    result
}

/// The interface decision, made when rustc's metadata is ready.
enum Early {
    /// The new metadata is published (for this reason), with its
    /// snapshot's id when the compile could be snapshotted.
    Published { why: String, id: Option<String> },
    /// Only bodies changed: what the library shows, to keep if the new
    /// code defines every symbol it promised, and the new compile's
    /// snapshot, to publish if not.
    Waiting {
        shown: Published,
        new: Box<LibSnapshot>,
    },
}

#[allow(clippy::too_many_arguments)]
fn compile_staged(
    ctx: &Context<'_>,
    inv: &Invocation,
    args: &[String],
    staged: &[String],
    out: &Outputs,
    stage: &Path,
) -> Result<Compiled> {
    let started = std::time::SystemTime::now();
    let mut child = (ctx.rustc)()
        .args(staged)
        .env(crate::contract::env::CAPTURE_OUT_DIR, &out.dir)
        .stderr(Stdio::piped())
        .spawn()
        .context("failed to run rustc")?;
    let stderr = child
        .stderr
        .take()
        .context("rustc's stderr was not piped")?;
    let mut to_cargo = std::io::stderr();
    let mut kept = String::new();
    let mut early: Option<Early> = None;
    let mut held: Vec<String> = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.context("failed to read rustc's messages")?;
        match artifact(&line) {
            Some(("metadata", _)) if early.is_none() => {
                early = Some(match decide(ctx, inv, args, out, stage, started) {
                    Err(why) => {
                        // Published before cargo starts the dependents,
                        // which ask what they compile against.
                        let id = publish_new_metadata(ctx, inv, args, out, stage, started)?;
                        let _ = writeln!(to_cargo, "{}", relocated(&line, stage, &out.dir));
                        Early::Published { why, id }
                    }
                    Ok((shown, new)) => {
                        held.push(line);
                        Early::Waiting {
                            shown,
                            new: Box::new(new),
                        }
                    }
                });
            }
            Some(_) => held.push(line),
            None => {
                let _ = writeln!(to_cargo, "{line}");
                kept.push_str(&line);
                kept.push('\n');
            }
        }
    }
    let status = child.wait().context("failed to run rustc")?;
    if !status.success() {
        // Nothing is recorded: the next compile starts from what is shown.
        ctx.store.forget_unit(&out.stem);
        return Ok(Compiled {
            code: crate::cargo::exit_code(status),
            interface: None,
        });
    }
    let facts = super::rlib::facts(&out.rlib(stage))?;
    let store = ctx.store;
    let code = store.put_blob(facts.undefined.join("\n").as_bytes())?;
    let defined = store.put_blob(facts.defined.join("\n").as_bytes())?;
    let (rlib, rmeta) = (out.rlib(&out.dir), out.rmeta(&out.dir));
    let (shown, interface) = match early {
        Some(Early::Waiting { shown, new }) => {
            let promised = shown
                .defined
                .as_deref()
                .and_then(|d| store.lines(d))
                .context("a snapshot's symbol list is gone")?;
            let now: BTreeSet<&String> = facts.defined.iter().collect();
            match promised.iter().find(|s| !now.contains(s)) {
                None => {
                    // What the library shows: the last rlib published,
                    // which the store keeps (cargo deleted it).
                    let shown_rlib = store
                        .kept_output(&out.stem, &rlib)
                        .context("an rlib without a name")?;
                    let metadata = super::rlib::metadata(&shown_rlib)?;
                    super::rlib::write_with_metadata(&out.rlib(stage), &metadata, &rlib)?;
                    // Not older than the rest of what it made, for cargo.
                    super::touch(&rmeta)?;
                    (Some((shown.interface, shown.defined)), Interface::Kept)
                }
                Some(gone) => {
                    publish_file(&out.rmeta(stage), &rmeta)?;
                    publish_file(&out.rlib(stage), &rlib)?;
                    let snap = store.save_snapshot(&out.stem, *new)?;
                    (
                        Some((snap.id, Some(defined))),
                        Interface::New(format!("it no longer defines `{gone}`")),
                    )
                }
            }
        }
        Some(Early::Published { why, id }) => {
            publish_file(&out.rlib(stage), &rlib)?;
            (id.map(|id| (id, Some(defined))), Interface::New(why))
        }
        // rustc wrote no metadata notice (no pipelining asked for).
        None => {
            publish_file(&out.rmeta(stage), &rmeta)?;
            publish_file(&out.rlib(stage), &rlib)?;
            let id = snapshot(ctx, inv, args, out, stage, started)
                .ok()
                .map(|snap| store.save_snapshot(&out.stem, snap))
                .transpose()?
                .map(|snap| (snap.id, Some(defined)));
            (
                id,
                Interface::New("rustc gave no notice of its metadata".into()),
            )
        }
    };
    publish_dep_info(out, stage)?;
    match (shown, FileId::of(&rlib), FileId::of(&rmeta)) {
        (Some((interface, defined)), Some(rlib_id), Some(rmeta_id)) => store.publish(
            &out.stem,
            &Published {
                interface,
                rmeta: rmeta_id,
                rlib: Some(rlib_id),
                code: Some(code),
                defined,
            },
        )?,
        _ => store.unpublish(&out.stem),
    }
    super::record_unit(
        ctx,
        inv,
        args,
        &out.dir.join(&out.dep_info),
        &[rlib, rmeta],
        kept,
        BTreeMap::new(),
        started,
    )?;
    // The metadata notice, if it was held, then the rest.
    for line in held {
        let _ = writeln!(to_cargo, "{}", relocated(&line, stage, &out.dir));
    }
    Ok(Compiled {
        code: 0,
        interface: Some(interface),
    })
}

/// Publishes the new compile's metadata, and its snapshot as the interface
/// the library shows (its code comes at the end of the compile); returns
/// the snapshot's id, `None` when the compile cannot be snapshotted.
fn publish_new_metadata(
    ctx: &Context<'_>,
    inv: &Invocation,
    args: &[String],
    out: &Outputs,
    stage: &Path,
    started: std::time::SystemTime,
) -> Result<Option<String>> {
    let rmeta = out.rmeta(&out.dir);
    // rustc reads its own copy again later: a copy.
    copy_file(&out.rmeta(stage), &rmeta)?;
    let Ok(snap) = snapshot(ctx, inv, args, out, stage, started) else {
        ctx.store.unpublish(&out.stem);
        return Ok(None);
    };
    let snap = ctx.store.save_snapshot(&out.stem, snap)?;
    ctx.store.publish(
        &out.stem,
        &Published {
            interface: snap.id.clone(),
            rmeta: FileId::of(&rmeta).context("the published rmeta is missing")?,
            rlib: None,
            code: None,
            defined: None,
        },
    )?;
    Ok(Some(snap.id))
}

/// `(emit, path)` of an artifact notice rustc writes on stderr
/// (`--json=artifacts`).
fn artifact(line: &str) -> Option<(&'static str, PathBuf)> {
    if !line.starts_with('{') || !line.contains("\"$message_type\":\"artifact\"") {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let path = PathBuf::from(value.get("artifact")?.as_str()?);
    let emit = match value.get("emit")?.as_str()? {
        "metadata" => "metadata",
        "link" => "link",
        "dep-info" => "dep-info",
        _ => "other",
    };
    Some((emit, path))
}

/// An artifact notice naming the published file instead of the staged one.
fn relocated(line: &str, stage: &Path, dir: &Path) -> String {
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(line) else {
        return line.to_owned();
    };
    let moved = value
        .get("artifact")
        .and_then(|a| a.as_str())
        .and_then(|p| Path::new(p).strip_prefix(stage).ok())
        .map(|rest| dir.join(rest).display().to_string());
    if let (Some(moved), Some(slot)) = (moved, value.get_mut("artifact")) {
        *slot = serde_json::Value::String(moved);
    }
    value.to_string()
}

/// Moves a staged output to where cargo expects it (same file system),
/// once rustc is done with it.
fn publish_file(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).with_context(|| format!("failed to write `{}`", to.display()))
}

/// Copies a staged output to where cargo expects it while rustc still uses
/// it (it keeps the metadata in its incremental cache at the end).
fn copy_file(from: &Path, to: &Path) -> Result<()> {
    let tmp = to.with_extension(format!("rmeta.{}.tmp", std::process::id()));
    std::fs::copy(from, &tmp).with_context(|| format!("failed to write `{}`", tmp.display()))?;
    publish_file(&tmp, to)
}

/// The staged dep-info, naming the published outputs, where cargo reads
/// it.
fn publish_dep_info(out: &Outputs, stage: &Path) -> Result<()> {
    let staged = stage.join(&out.dep_info);
    let text = crate::fs::read_to_string(&staged)?;
    let text = text.replace(&stage.display().to_string(), &out.dir.display().to_string());
    crate::fs::write_atomic(&out.dir.join(&out.dep_info), text.as_bytes())
}

/// The identity of each `--extern` of `inv`: a workspace library the
/// cutoff published by its interface, anything else by file.
pub fn extern_ids(ctx: &Context<'_>, inv: &Invocation) -> BTreeMap<PathBuf, ExternId> {
    let mut out = BTreeMap::new();
    for ext in &inv.externs {
        let Some(path) = &ext.path else { continue };
        let id = FileId::of(path);
        let interface = ext
            .unit_stem()
            .filter(|s| ctx.is_member(s))
            .and_then(|s| ctx.store.published(s))
            .filter(|p| id.is_some_and(|id| Some(id) == p.rlib || id == p.rmeta))
            .map(|p| ExternId::Interface(p.interface));
        out.insert(path.clone(), interface.unwrap_or(ExternId::File(id)));
    }
    out
}

/// The new compile's snapshot, from the staged dep-info and the sources
/// as they are; an error when they may not be what rustc read.
fn snapshot(
    ctx: &Context<'_>,
    inv: &Invocation,
    args: &[String],
    out: &Outputs,
    stage: &Path,
    started: std::time::SystemTime,
) -> Result<LibSnapshot, String> {
    let info = DepInfo::read(&stage.join(&out.dep_info)).ok_or("its dep-info is missing")?;
    let mut files = BTreeMap::new();
    for file in &info.files {
        let bytes = std::fs::read(file).map_err(|e| format!("`{}`: {e}", file.display()))?;
        let blob = ctx.store.put_blob(&bytes).map_err(|e| format!("{e:#}"))?;
        files.insert(file.clone(), blob);
    }
    if saved_since(&info.files, started) {
        return Err("a source was saved while it compiled".into());
    }
    Ok(LibSnapshot {
        id: String::new(),
        args: comparable(args),
        env_deps: info.env,
        files,
        root: info
            .files
            .first()
            .cloned()
            .ok_or("its dep-info names no root")?,
        externs: extern_ids(ctx, inv),
        opaque: compiled_opaquely(inv),
    })
}

/// Decides, when rustc's metadata is ready, whether the library can keep
/// the interface it shows: `Ok` with what it shows and the new compile's
/// snapshot when only eligible bodies changed, else why not.
fn decide(
    ctx: &Context<'_>,
    inv: &Invocation,
    args: &[String],
    out: &Outputs,
    stage: &Path,
    started: std::time::SystemTime,
) -> Result<(Published, LibSnapshot), String> {
    let published = ctx
        .store
        .published(&out.stem)
        .ok_or("it shows no recorded interface")?;
    // Cargo deletes the rlib before a compile; the store keeps it.
    let kept = ctx.store.kept_output(&out.stem, &out.rlib(&out.dir));
    if published.rlib.is_none()
        || published.defined.is_none()
        || kept.and_then(|k| FileId::of(&k)) != published.rlib
        || FileId::of(&out.rmeta(&out.dir)) != Some(published.rmeta)
    {
        return Err("its rlib or rmeta changed since dyndev wrote them".into());
    }
    let shown = ctx
        .store
        .snapshot(&out.stem, &published.interface)
        .ok_or("the record of its interface is gone")?;
    let new = snapshot(ctx, inv, args, out, stage, started)?;
    compare(ctx, &shown, &new)?;
    // The source says which crates a body names, not which crates rustc
    // loaded for it (a name also used in `#[cfg(test)]` code, a local of
    // that name, a macro's expansion): the metadata does.
    let read = |path: &Path| std::fs::read(path).map_err(|e| format!("`{}`: {e}", path.display()));
    let (old_rmeta, new_rmeta) = (read(&out.rmeta(&out.dir))?, read(&out.rmeta(stage))?);
    if let Some(name) = newly_loaded(inv, &old_rmeta, &new_rmeta) {
        return Err(format!("it starts to use the crate `{name}`"));
    }
    Ok((published, new))
}

/// An `--extern` crate the new metadata depends on and the shown metadata
/// does not. A crate's metadata lists every crate of its graph, each with
/// the file name suffix cargo gave it (`-0123abcd…`), and dependents link
/// what that list names: keeping metadata that lacks a crate the new code
/// calls would leave its code out of their links.
fn newly_loaded<'a>(inv: &'a Invocation, shown: &[u8], new: &[u8]) -> Option<&'a str> {
    inv.externs.iter().find_map(|ext| {
        let stem = ext.path.as_deref()?.file_stem()?.to_str()?;
        let hash = crate::rustc_args::hash_of_stem(stem);
        if hash.is_empty() {
            return None;
        }
        let suffix = format!("-{hash}");
        let lists = |metadata: &[u8]| memchr::memmem::find(metadata, suffix.as_bytes()).is_some();
        (lists(new) && !lists(shown)).then_some(ext.name.as_str())
    })
}

/// Whether `new` differs from `shown` in bodies no dependent sees alone.
pub fn compare(ctx: &Context<'_>, shown: &LibSnapshot, new: &LibSnapshot) -> Result<(), String> {
    if !(shown.opaque && new.opaque) {
        return Err("it is compiled with optimization and without incremental compilation".into());
    }
    if shown.args != new.args {
        return Err("its command changed".into());
    }
    if shown.env_deps != new.env_deps {
        return Err("an environment variable it reads changed".into());
    }
    for (path, id) in &new.externs {
        if shown.externs.get(path) != Some(id) {
            let name = crate::rustc_args::unit_stem_of(path)
                .map(crate::rustc_args::crate_of_stem)
                .unwrap_or("a dependency");
            return Err(match id {
                ExternId::Interface(_) => format!("the interface of `{name}` changed"),
                ExternId::File(_) => format!("`{name}` was compiled again"),
            });
        }
    }
    if shown.externs.len() != new.externs.len() {
        return Err("its dependencies changed".into());
    }
    if let Some(file) = shown
        .files
        .keys()
        .find(|f| !new.files.contains_key(*f))
        .or_else(|| new.files.keys().find(|f| !shown.files.contains_key(*f)))
    {
        return Err(format!("`{}` is new or gone", file.display()));
    }
    let changed: Vec<&PathBuf> = shown
        .files
        .iter()
        .filter(|(path, blob)| new.files[*path] != **blob)
        .map(|(path, _)| path)
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let read = |id: &str| -> Result<String, String> {
        let bytes = ctx.store.blob(id).ok_or("a snapshot's source is gone")?;
        String::from_utf8(bytes).map_err(|_| "a source is not UTF-8".to_owned())
    };
    // Rust files only, by normalized path, in both versions.
    let texts = |snap: &LibSnapshot| -> Result<BTreeMap<PathBuf, String>, String> {
        snap.files
            .iter()
            .filter(|(p, _)| p.extension().is_some_and(|e| e == "rs"))
            .map(|(p, id)| Ok((crate::fs::normalize(p), read(id)?)))
            .collect()
    };
    let (old_texts, new_texts) = (texts(shown)?, texts(new)?);
    let modules = |t: &BTreeMap<PathBuf, String>| {
        source::module_files(&new.root, t).ok_or("its module tree is unknown (`#[path]`)")
    };
    let (old_modules, new_modules) = (modules(&old_texts)?, modules(&new_texts)?);
    // Files read as data or code by `include!` and its kin count byte for
    // byte, whatever they hold.
    let mut included = BTreeSet::new();
    let read_files: BTreeSet<PathBuf> = new_texts.keys().cloned().collect();
    for (path, text) in old_texts.iter().chain(&new_texts) {
        included.extend(
            source::include_targets(path, text)
                .ok_or("it includes a file named by a computed path")?,
        );
        // A macro that reads a file it is given the name of.
        included.extend(source::files_named_in_macros(text, &read_files));
    }
    let std_macros = source::std_macros_unshadowed(
        old_texts
            .values()
            .chain(new_texts.values())
            .map(String::as_str),
    );
    let cfg_test = new.args.iter().any(|a| a == "--test")
        || new
            .args
            .windows(2)
            .any(|w| w[0] == "--cfg" && w[1].trim() == "test")
        || new.args.iter().any(|a| a == "--cfg=test");
    // A crate the library starts to use joins the crate graph of every
    // dependent, and its impls can change their inference.
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
    for ext in &Invocation::parse(new.args.clone()).externs {
        if new_idents.contains(&ext.name) && !old_idents.contains(&ext.name) {
            return Err(format!("it starts to use the crate `{}`", ext.name));
        }
    }
    for path in changed {
        let key = crate::fs::normalize(path);
        if !(old_modules.contains(&key) && new_modules.contains(&key)) || included.contains(&key) {
            return Err(format!(
                "`{}` changed, and it is not only a module's source",
                path.display()
            ));
        }
        let verdict = source::compare(&old_texts[&key], &new_texts[&key], std_macros, cfg_test);
        if let source::Verdict::Changed(why) = verdict {
            return Err(format!("in `{}`, {why}", path.display()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cutoff::Store;

    /// A snapshot of a library whose root file is `lib`, compiled with
    /// `args`, using `externs`.
    fn snap(store: &Store, lib: &str, args: &[&str], externs: &[(&str, ExternId)]) -> LibSnapshot {
        let root = PathBuf::from("src/lib.rs");
        LibSnapshot {
            id: String::new(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env_deps: Vec::new(),
            files: BTreeMap::from([(root.clone(), store.put_blob(lib.as_bytes()).unwrap())]),
            root,
            externs: externs
                .iter()
                .map(|(p, id)| (PathBuf::from(p), id.clone()))
                .collect(),
            opaque: true,
        }
    }

    const LIB: &str = "pub fn value() -> u32 {\n    1\n}\n\npub fn label() -> String {\n    format!(\"v{}\", value())\n}\n";
    const ARGS: &[&str] = &[
        "--crate-name",
        "core",
        "--crate-type",
        "lib",
        "--extern",
        "itoa=/t/deps/libitoa-1.rmeta",
    ];

    #[test]
    fn a_library_keeps_its_interface_only_when_dependents_can_see_nothing_new() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let ctx = Context {
            store: &store,
            rustc: &|| std::process::Command::new("rustc"),
            members: &["core".to_owned()],
            proxy: Path::new("/p"),
            shared_members: true,
        };
        let itoa = [("/t/deps/libitoa-1.rmeta", ExternId::Interface("i1".into()))];
        let shown = snap(&store, LIB, ARGS, &itoa);
        let check = |lib: &str, args: &[&str], externs: &[(&str, ExternId)]| {
            compare(&ctx, &shown, &snap(&store, lib, args, externs))
        };
        // The same sources, and a body edit that moves nothing.
        assert_eq!(check(LIB, ARGS, &itoa), Ok(()));
        assert_eq!(
            check(&LIB.replace("    1\n", "    2\n"), ARGS, &itoa),
            Ok(())
        );
        // What a dependent sees, or may: each says what changed first.
        let signature = check(&LIB.replace("-> u32", "-> u64"), ARGS, &itoa);
        assert!(
            signature
                .as_ref()
                .unwrap_err()
                .starts_with("in `src/lib.rs`, line 1"),
            "{signature:?}"
        );
        // A longer line moves nothing after it; a new line moves every
        // later span (panic locations, debug info of generic code).
        let longer = check(&LIB.replace("    1\n", "    10\n"), ARGS, &itoa);
        assert_eq!(longer, Ok(()));
        let moved = check(&LIB.replace("    1\n", "    1 +\n    0\n"), ARGS, &itoa);
        assert!(moved.is_err(), "a new line moves later spans");
        let item = check(&format!("{LIB}pub fn more() {{}}\n"), ARGS, &itoa);
        assert!(item.is_err());
        assert_eq!(
            check(LIB, &["--crate-name", "core", "--cfg", "x"], &itoa),
            Err("its command changed".into())
        );
        let newer = ("/t/deps/libitoa-1.rmeta", ExternId::Interface("i2".into()));
        assert_eq!(
            check(LIB, ARGS, &[newer]),
            Err("the interface of `itoa` changed".into())
        );
        // A crate the library starts to use joins every dependent's graph.
        let uses = LIB.replace("format!(\"v{}\", value())", "itoa::fmt(1)  ");
        assert_eq!(
            check(&uses, ARGS, &itoa),
            Err("it starts to use the crate `itoa`".into())
        );
        // Compiled so that rustc may inline any body across crates.
        let mut optimized = snap(&store, &LIB.replace("    1\n", "    2\n"), ARGS, &itoa);
        optimized.opaque = false;
        assert!(compare(&ctx, &shown, &optimized).is_err());
    }
}
