//! The files the driver and the wrapper share: the current bundle
//! (`state.json`) and the journal of one build (`runs/<run>/*.json`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::layout::Layout;

/// Bumped whenever the meaning of the state files changes; state written by
/// another version is ignored and rebuilt.
pub const STATE_VERSION: u32 = 6;

/// The bundle currently in use for one target dir and profile: its plan
/// (what goes where), the shared libraries the bundled crates are split
/// into, the facades members get in place of their direct dependencies,
/// and what linking them made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleState {
    pub state_version: u32,
    /// Content hash of every library and facade; members record it in
    /// their dep-info.
    pub id: String,
    /// Hash of `Cargo.lock` and the workspace manifests when it was made.
    pub generation: String,
    /// `<state>/lib`: the libraries and facades, for `-L` and run paths.
    pub dir: PathBuf,
    /// rustc's `target-libdir`, where `libstd-*.so` lives.
    pub sysroot_lib: PathBuf,
    pub plan: BundlePlan,
    /// The shared libraries, each after every library it loads.
    pub libs: Vec<Lib>,
    /// Dependency units members use directly and get a facade for, by unit
    /// stem (`libregex-0123abcd`).
    pub roots: BTreeMap<String, Root>,
    pub linked: Linked,
}

/// What goes where: decided before anything is linked, and what `plan`
/// prints after a build.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundlePlan {
    /// The member units the split was made for, by unit stem: this build's
    /// and, within a generation, earlier builds'.
    pub units: BTreeMap<String, Unit>,
    /// Package id of every bundled and static dependency unit, by stem.
    pub packages_by_stem: BTreeMap<String, String>,
    /// Dependency units the members use that stay static, by unit stem.
    pub static_stems: BTreeSet<String>,
    /// Packages that stay static, and why, by package id.
    pub static_packages: BTreeMap<String, crate::plan::Reason>,
    /// Packages inside the libraries (roots and what they pull in), by id.
    pub bundled_packages: BTreeSet<String>,
    /// Every package the builds of this generation compiled, by id.
    pub built_packages: BTreeSet<String>,
    /// Packages whose C code hides its symbols, with one of them, by id.
    pub hidden_native: BTreeMap<String, String>,
    /// Packages that failed to link into a shared library, with the
    /// linker's words, by id. Kept for the rest of the generation.
    pub link_failed: BTreeMap<String, String>,
}

/// What linking a bundle made and cost, all libraries together.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Linked {
    /// The largest library, the one most units load.
    pub file: PathBuf,
    /// Size of all libraries in bytes.
    pub size: u64,
    /// Symbols all libraries export.
    pub exported_symbols: usize,
    /// Wall time of linking the libraries and facades this build linked,
    /// in milliseconds; 0 when every one was reused.
    pub link_millis: u64,
    /// Peak resident memory of the largest library link, in KiB.
    pub link_peak_kib: u64,
}

/// One shared library of the bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lib {
    /// Content hash of its crates and the libraries it loads.
    pub id: String,
    /// Its crate name, `dyndev_<id prefix>`.
    pub crate_name: String,
    pub file: PathBuf,
    /// The crates linked into it, by unit stem.
    pub crates: BTreeSet<String>,
    /// The member units that load it, by unit stem.
    pub users: BTreeSet<String>,
    /// The crate names of the libraries it loads.
    pub deps: Vec<String>,
    pub made: LibMade,
}

/// What linking one library made and cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibMade {
    /// The file as it was when the link finished.
    pub stamp: Stamp,
    pub size: u64,
    pub exported_symbols: usize,
    /// Wall time of its link, in milliseconds, when it was made.
    pub link_millis: u64,
    /// Peak resident memory of its link, in KiB.
    pub link_peak_kib: u64,
}

/// A member unit the bundle was split for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// `app (bin)`, `core (lib)`, `core (test)`: for `plan`.
    pub label: String,
    /// Third-party units it names with `--extern`, by stem.
    pub deps: BTreeSet<String>,
    /// Member library units it names with `--extern`, by stem.
    pub member_libs: BTreeSet<String>,
}

/// One dependency unit a member uses directly, linked into a library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    pub package_id: String,
    /// The crate's name, as its rlib is named.
    pub crate_name: String,
    /// The name its library re-exports it under (`regex_0123abcd`).
    pub alias: String,
    /// The crate name of the library holding it.
    pub lib: String,
    /// The unit's rlib, as cargo built it for the user's build.
    pub rlib: PathBuf,
    /// The rlib's mtime when the library was linked: a rebuilt rlib means
    /// a stale bundle.
    pub rlib_mtime: u128,
    /// The facade rlib that user crates get in its place.
    pub facade: PathBuf,
    /// The facade as it was when it was compiled.
    pub facade_stamp: Stamp,
}

/// A file dyndev made, as it was when it made it: its size and
/// modification time. A file changed since (truncated, overwritten,
/// garbled in place) differs in one or the other; one `stat` tells, where
/// reading it would cost hundreds of megabytes a build. Files are written
/// under a temporary name and renamed into place, so a file with its final
/// name is whole; its stamp is taken after the rename, before the record
/// is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub len: u64,
    pub mtime_ns: u128,
}

impl Stamp {
    /// The stamp of `path` as it is now; `None` when it is missing.
    pub fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        let mtime_ns = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_nanos();
        Some(Stamp {
            len: meta.len(),
            mtime_ns,
        })
    }
}

/// A file of the bundle that is no longer as dyndev made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub file: PathBuf,
    pub made: Stamp,
    /// What it is now; `None` when it is missing.
    pub found: Option<Stamp>,
}

impl Damage {
    /// `file` against what dyndev recorded of it: `None` when they agree.
    pub fn check(file: &Path, made: Stamp, found: Option<Stamp>) -> Option<Damage> {
        (found != Some(made)).then(|| Damage {
            file: file.to_path_buf(),
            made,
            found,
        })
    }
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.file.file_name().unwrap_or(self.file.as_os_str());
        write!(f, "`{}` ", name.to_string_lossy())?;
        match self.found {
            None => f.write_str("is missing"),
            Some(found) if found.len != self.made.len => write!(
                f,
                "is {} where dyndev made {}",
                crate::shell::human_size(found.len),
                crate::shell::human_size(self.made.len)
            ),
            Some(_) => f.write_str("was modified after dyndev made it"),
        }
    }
}

impl BundleState {
    pub fn load(layout: &Layout) -> Result<Option<BundleState>> {
        let path = layout.state_file();
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        // State from another version of dyndev is not an error: rebuild.
        match serde_json::from_str::<BundleState>(&text) {
            Ok(state) if state.state_version == STATE_VERSION => Ok(Some(state)),
            _ => Ok(None),
        }
    }

    /// The libraries and facades that are not as dyndev made them
    /// (missing, truncated, written to): one `stat` each.
    pub fn damage(&self) -> Vec<Damage> {
        self.damage_with(&Stamp::of)
    }

    /// [`Self::damage`], with the file system's answers from `stamp`.
    pub fn damage_with(&self, stamp: &dyn Fn(&Path) -> Option<Stamp>) -> Vec<Damage> {
        let libs = self.libs.iter().map(|l| (&l.file, l.made.stamp));
        let facades = self.roots.values().map(|r| (&r.facade, r.facade_stamp));
        libs.chain(facades)
            .filter_map(|(file, made)| Damage::check(file, made, stamp(file)))
            .collect()
    }

    pub fn save(&self, layout: &Layout) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).context("failed to serialize bundle state")?;
        crate::fs::write_atomic(&layout.state_file(), &json)
    }
}

/// What the wrapper saw of one member unit during one build. Journals
/// live for one build (the run's directory is removed after it), so no
/// journal of an older dyndev is ever read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The unit's own stem (`app-0123abcd`, `libcore-4567ef01`).
    pub stem: String,
    /// `CARGO_PKG_NAME` of the member.
    pub package: String,
    /// Whether the wrapper probed instead of compiling.
    pub probed: bool,
    /// Why it probed, for `-v` and for errors.
    pub probe_reason: Option<String>,
    pub executable: bool,
    /// `lib`, `bin`, `test` or `example`, for `plan`.
    pub kind: String,
    /// The compiler cargo asked for.
    pub rustc: PathBuf,
    /// `--extern` dependencies that are compiled units (rlib or rmeta).
    pub externs: Vec<JournalExtern>,
    /// `-L` values.
    pub search_paths: Vec<String>,
    /// Link-shaping `-C` options, for the bundle's own link.
    pub link_args: Vec<String>,
    /// `--target`, when cross-compiling.
    pub target: Option<String>,
    /// A profile setting a shared standard library cannot serve.
    pub unsupported: Option<String>,
    /// A library that build scripts, proc-macros or non-Rust libraries
    /// link, compiled as cargo compiles it
    /// ([`crate::workspace::Workspace::host_linked_member_libs`]).
    pub host_linked: bool,
    /// Where the unit sets a `#[global_allocator]` (`src/main.rs:12`),
    /// which a shared standard library ignores.
    pub global_allocator: Option<String>,
    /// What the early cutoff ([`crate::cutoff`]) did with it.
    pub cutoff: Option<Cutoff>,
}

/// What the early cutoff ([`crate::cutoff`]) did with a member unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cutoff {
    /// A library not compiled: what it made is what a compile would make.
    Reused,
    /// An executable not compiled: pointed at its libraries' new code, or
    /// linked again.
    Relinked,
    /// An executable compiled, and why.
    Compiled(String),
    /// A library compiled, and why; and why its dependents see a new
    /// interface (`None`: they do not, only bodies they cannot see
    /// changed).
    Library {
        why: String,
        interface: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalExtern {
    pub name: String,
    pub stem: String,
    pub path: PathBuf,
}

impl JournalEntry {
    /// Whether the unit was compiled as plain cargo compiles it, without
    /// the bundle.
    pub fn is_static(&self) -> bool {
        self.unsupported.is_some() || self.host_linked
    }

    pub fn write(&self, run_dir: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).context("failed to serialize journal entry")?;
        crate::fs::write_atomic(&run_dir.join(format!("{}.json", self.stem)), &json)
    }

    pub fn read(run_dir: &Path, stem: &str) -> Option<JournalEntry> {
        let text = std::fs::read_to_string(run_dir.join(format!("{stem}.json"))).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Every entry of one build, sorted by stem.
    pub fn read_all(run_dir: &Path) -> Result<Vec<JournalEntry>> {
        let mut entries = Vec::new();
        let Ok(dir) = std::fs::read_dir(run_dir) else {
            return Ok(entries);
        };
        for item in dir {
            let path = item
                .with_context(|| format!("failed to list `{}`", run_dir.display()))?
                .path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = crate::fs::read_to_string(&path)?;
                entries.push(
                    serde_json::from_str(&text)
                        .with_context(|| format!("failed to parse `{}`", path.display()))?,
                );
            }
        }
        entries.sort_by(|a: &JournalEntry, b| a.stem.cmp(&b.stem));
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_is_any_library_or_facade_unlike_its_stamp() {
        let made = Stamp {
            len: 80_000,
            mtime_ns: 1_000,
        };
        let mut state = BundleState::default();
        for name in ["a", "b"] {
            state.libs.push(Lib {
                file: format!("/s/lib/libdyndev_bundle_{name}.so").into(),
                made: LibMade {
                    stamp: made,
                    ..LibMade::default()
                },
                ..Lib::default()
            });
        }
        state.roots.insert(
            "libitoa-1".into(),
            Root {
                package_id: "itoa".into(),
                crate_name: "itoa".into(),
                alias: "itoa_1".into(),
                lib: "dyndev_bundle_a".into(),
                rlib: "/t/deps/libitoa-1.rlib".into(),
                rlib_mtime: 0,
                facade: "/s/lib/libitoa-f.rlib".into(),
                facade_stamp: made,
            },
        );
        assert_eq!(state.damage_with(&|_| Some(made)), []);
        let found = state.damage_with(&|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            match name {
                "libdyndev_bundle_a.so" => Some(Stamp { len: 0, ..made }),
                "libdyndev_bundle_b.so" => None,
                _ => Some(Stamp {
                    mtime_ns: 2_000,
                    ..made
                }),
            }
        });
        let said: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            said,
            [
                "`libdyndev_bundle_a.so` is 0 B where dyndev made 78.1 KiB",
                "`libdyndev_bundle_b.so` is missing",
                "`libitoa-f.rlib` was modified after dyndev made it",
            ]
        );
    }
}
