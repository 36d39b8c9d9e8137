//! The records of compiles: what a unit was compiled from
//! ([`UnitRecord`]), the compile whose interface a library shows its
//! dependents ([`LibSnapshot`]), and what a library's rlib and rmeta hold
//! now ([`Published`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::contract::FileId;
use crate::rustc_args::Invocation;

/// The identity of one `--extern` as a compile read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExternId {
    /// A workspace library the cutoff published: the id of the interface
    /// its metadata shows, whatever code it holds.
    Interface(String),
    /// Anything else, by file identity.
    File(Option<FileId>),
}

/// A unit's last compile: everything rustc read, and what it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitRecord {
    /// The compile's arguments ([`comparable`]).
    pub args: Vec<String>,
    /// Environment variables the crate read (`env!`), with their values.
    pub env: BTreeMap<String, Option<String>>,
    /// Its source files (dep-info) and their content hashes.
    pub files: BTreeMap<PathBuf, String>,
    /// The static libraries it could link or bundle ([`native_archives`]).
    pub natives: BTreeMap<PathBuf, FileId>,
    pub externs: BTreeMap<PathBuf, ExternId>,
    /// What it wrote, as it was left: a library's rlib and rmeta, an
    /// executable's binary.
    pub outputs: BTreeMap<PathBuf, FileId>,
    /// rustc's diagnostics (JSON lines), replayed for cargo.
    pub stderr: String,
    /// An executable's workspace libraries: the code each held when it was
    /// linked, as the blob of the symbols that code uses from elsewhere.
    pub code: BTreeMap<String, String>,
}

/// One compile of a workspace library, as its dependents see it: the
/// compile whose metadata its rlib and rmeta show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibSnapshot {
    /// The hash of the rest; set when saved.
    #[serde(skip)]
    pub id: String,
    pub args: Vec<String>,
    /// `# env-dep:` lines of its dep-info.
    pub env_deps: Vec<String>,
    /// Its source files and their blobs.
    pub files: BTreeMap<PathBuf, String>,
    /// The crate's root file, the first of its dep-info.
    pub root: PathBuf,
    pub externs: BTreeMap<PathBuf, ExternId>,
    /// Compiled so that rustc inlines no function across crates unless
    /// asked to ([`compiled_opaquely`]).
    pub opaque: bool,
}

/// What a library's rlib and rmeta hold now: the interface of one compile
/// (a [`LibSnapshot`]) and the code of the newest. The interface is
/// published with the metadata, before dependents compile; the rest when
/// the compile ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// The id of the snapshot whose metadata they hold.
    pub interface: String,
    pub rmeta: FileId,
    pub rlib: Option<FileId>,
    /// The blob listing the symbols the code uses from elsewhere.
    pub code: Option<String>,
    /// The blob listing the global symbols the interface's own compile
    /// defined: what dependents may use, which later code must define.
    pub defined: Option<String>,
}

/// The content hash records name files and blobs by.
pub(crate) fn hash(bytes: &[u8]) -> String {
    crate::fs::StableHasher::default().write(bytes).finish_hex()
}

/// Arguments compared between compiles: the terminal width only shapes
/// how diagnostics are drawn.
pub fn comparable(args: &[String]) -> Vec<String> {
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
    // `-O` is `-C opt-level=3` spelled short (`RUSTFLAGS=-O`).
    let unoptimized = !inv.args.iter().any(|a| a == "-O")
        && matches!(inv.codegen_value("opt-level"), None | Some("0"));
    let unstable = inv.args.iter().any(|a| a.starts_with("-Z"));
    (incremental || unoptimized) && !unstable
}

/// The environment variables of `# env-dep:` lines, with their values now.
pub fn env_now(env_deps: &[String]) -> BTreeMap<String, Option<String>> {
    env_deps
        .iter()
        .map(|line| {
            let name = line.split_once('=').map_or(line.as_str(), |(n, _)| n);
            (name.to_owned(), std::env::var(name).ok())
        })
        .collect()
}

/// Every static library (`lib*.a`) in the native search paths of `inv`
/// (`-L native=`, `-L all=`, `-L`), by file identity: what a build script
/// compiled (as the `cc` crate does) is no source of the crate's, but
/// rustc bundles it into a library's rlib and links it into a program. A
/// build script that runs again writes it again.
pub fn native_archives(inv: &Invocation) -> BTreeMap<PathBuf, FileId> {
    let mut out = BTreeMap::new();
    for dir in inv.native_search_dirs() {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()) {
            let archive = path.extension().is_some_and(|e| e == "a")
                && path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("lib"));
            if archive && let Some(id) = FileId::of(&path) {
                out.insert(path, id);
            }
        }
    }
    out
}

/// Whether any of `files` was written or replaced at or after `time` (or
/// is gone): then what a compile started at `time` read is unknown. Check
/// it after reading them, so a write in between is seen.
pub fn saved_since(files: &[PathBuf], time: std::time::SystemTime) -> bool {
    files.iter().any(|f| crate::fs::changed_since(f, time))
}

impl UnitRecord {
    /// Why a compile with `args`, reading `externs`, is not the one
    /// recorded; `None` when nothing it reads changed.
    ///
    /// `output_id` gives the identity of an output where it is now (cargo
    /// may have deleted it, and the store keeps it).
    pub fn differs(
        &self,
        args: &[String],
        externs: &BTreeMap<PathBuf, ExternId>,
        output_id: &dyn Fn(&Path) -> Option<FileId>,
    ) -> Option<String> {
        if self.args != comparable(args) {
            return Some("its command changed".into());
        }
        if let Some(why) = self.inputs_differ(externs) {
            return Some(why);
        }
        for (path, id) in &self.outputs {
            if output_id(path) != Some(*id) {
                return Some(format!("`{}` changed since it was made", path.display()));
            }
        }
        None
    }

    /// Why what the compile reads (sources, environment, dependencies'
    /// interfaces) is not what it read last; `None` when it is.
    pub fn inputs_differ(&self, externs: &BTreeMap<PathBuf, ExternId>) -> Option<String> {
        for (file, h) in &self.files {
            let now = std::fs::read(file).ok().map(|b| hash(&b));
            if now.as_ref() != Some(h) {
                return Some(format!("`{}` changed", file.display()));
            }
        }
        if native_archives(&Invocation::parse(self.args.clone())) != self.natives {
            return Some("a static library it links changed".into());
        }
        for (name, value) in &self.env {
            if std::env::var(name).ok() != *value {
                return Some(format!("`{name}` changed"));
            }
        }
        if self.externs.keys().ne(externs.keys()) {
            return Some("its dependencies changed".into());
        }
        for (path, id) in externs {
            if self.externs.get(path) != Some(id) {
                return Some(match id {
                    ExternId::Interface(_) => {
                        format!("the interface of `{}` changed", name_of(path))
                    }
                    ExternId::File(_) => format!("`{}` was compiled again", name_of(path)),
                });
            }
        }
        None
    }
}

/// The crate an rlib, rmeta or other library file holds.
fn name_of(path: &Path) -> String {
    crate::rustc_args::unit_stem_of(path)
        .map(crate::rustc_args::crate_of_stem)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
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
        assert!(!compiled_opaquely(&inv("--crate-name a -O")));
        assert!(compiled_opaquely(&inv(
            "--crate-name a -O -C incremental=/i"
        )));
        assert!(!compiled_opaquely(&inv(
            "--crate-name a -C incremental=/i -Zinline-mir"
        )));
    }

    #[test]
    fn a_unit_is_reused_only_when_nothing_it_reads_changed() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("lib.rs");
        std::fs::write(&src, "pub fn f() {}\n").unwrap();
        let args: Vec<String> = ["--crate-name", "a", "--diagnostic-width=80"]
            .map(str::to_owned)
            .into();
        let dep = PathBuf::from("/t/deps/libcore-1.rmeta");
        let externs = BTreeMap::from([(dep.clone(), ExternId::Interface("i1".into()))]);
        let record = UnitRecord {
            args: comparable(&args),
            env: BTreeMap::new(),
            files: BTreeMap::from([(src.clone(), super::hash(b"pub fn f() {}\n"))]),
            natives: BTreeMap::new(),
            externs: externs.clone(),
            outputs: BTreeMap::new(),
            stderr: String::new(),
            code: BTreeMap::new(),
        };
        let id = |p: &Path| FileId::of(p);
        assert_eq!(record.differs(&args, &externs, &id), None);
        // The terminal's width is not the command.
        let mut wider = args.clone();
        wider[2] = "--diagnostic-width=120".into();
        assert_eq!(record.differs(&wider, &externs, &id), None);
        let other = BTreeMap::from([(dep.clone(), ExternId::Interface("i2".into()))]);
        assert_eq!(
            record.differs(&args, &other, &id).as_deref(),
            Some("the interface of `core` changed")
        );
        std::fs::write(&src, "pub fn f() { }\n").unwrap();
        assert!(
            record
                .differs(&args, &externs, &id)
                .unwrap()
                .contains("lib.rs")
        );
    }
}
