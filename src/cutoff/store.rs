//! Where the cutoff keeps what it knows, under `<state dir>/cutoff`:
//!
//! ```text
//! version                     the store's format; another one is cleared
//! blobs/<hash>                source files and symbol lists, by content
//! units/<stem>.json           a unit's last compile ([`UnitRecord`])
//! libs/<stem>/<id>.json       a library's interface: the compile whose
//!                             metadata dependents see ([`LibSnapshot`])
//! libs/<stem>/published.json  what its rlib and rmeta hold now ([`Published`])
//! links/                      the kept links of executables
//! so/                         workspace libraries as shared libraries
//!                             ([`super::shared`])
//! stage/                      libraries being compiled
//! ```
//!
//! Every record is written atomically, and read as absent when it does not
//! parse: a missing or damaged record only means a compile.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::record::{LibSnapshot, Published, UnitRecord, hash};

/// Bumped whenever a record's meaning changes; a store of another version
/// is cleared, and every unit compiles once.
///
/// 3: records hold the static libraries a unit links.
/// 4: programs name their libraries' shared versions by interface.
const STORE_VERSION: u32 = 4;

/// The cutoff's records for one workspace.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
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

    /// Clears a store another version of dyndev wrote. Run by the driver,
    /// with the state lock held, before any wrapper reads it. Returns
    /// whether the store was cleared or missing: the shared versions
    /// programs load may be gone with it, and nothing says which programs.
    pub fn open(&self) -> bool {
        let version = self.root.join("version");
        let current = std::fs::read_to_string(&version).ok();
        if current.as_deref().map(str::trim) == Some(&STORE_VERSION.to_string()) {
            return false;
        }
        for dir in ["blobs", "units", "libs", "tests", "links", "so", "stage"] {
            let _ = std::fs::remove_dir_all(self.root.join(dir));
        }
        let _ = crate::fs::write_atomic(&version, STORE_VERSION.to_string().as_bytes());
        // The linker proxy keeps one link of each executable here: the
        // one its binary was made from.
        let _ = crate::fs::write_atomic(&self.links().join(".newest"), b"1");
        true
    }

    /// Where the linker proxy keeps executables' links.
    pub fn links(&self) -> PathBuf {
        self.root.join("links")
    }

    /// Where a library compiles before its outputs are published: the
    /// same directory for every compile of the unit, since rustc's
    /// incremental cache serves the code it generated before only to a
    /// compile that writes where the earlier one wrote (a directory of
    /// its own for each compile made rustc generate all of the library's
    /// code every time). One compile of a unit at a time: see
    /// [`Store::lock_stage`].
    pub fn stage(&self, stem: &str) -> PathBuf {
        self.root.join("stage").join(stem)
    }

    /// Holds the unit's stage until the returned file is dropped. dyndev
    /// builds of one workspace take turns already; the stage does not
    /// rely on it.
    pub fn lock_stage(&self, stem: &str) -> Result<std::fs::File> {
        let path = self.root.join("stage").join(format!("{stem}.lock"));
        crate::fs::create_dir_all(path.parent().unwrap_or(&self.root))?;
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("failed to open `{}`", path.display()))?;
        file.lock()
            .with_context(|| format!("failed to lock `{}`", path.display()))?;
        Ok(file)
    }

    pub fn put_blob(&self, bytes: &[u8]) -> Result<String> {
        let id = hash(bytes);
        let path = self.root.join("blobs").join(&id);
        if !path.exists() {
            crate::fs::write_atomic(&path, bytes)?;
        }
        Ok(id)
    }

    pub fn blob(&self, id: &str) -> Option<Vec<u8>> {
        std::fs::read(self.root.join("blobs").join(id)).ok()
    }

    /// A blob of lines, as a set.
    pub fn lines(&self, id: &str) -> Option<BTreeSet<String>> {
        let bytes = self.blob(id)?;
        Some(
            String::from_utf8_lossy(&bytes)
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    fn write<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
        crate::fs::write_atomic(path, &serde_json::to_vec(value)?)
    }

    fn unit_path(&self, stem: &str) -> PathBuf {
        self.root.join("units").join(format!("{stem}.json"))
    }

    pub fn unit(&self, stem: &str) -> Option<UnitRecord> {
        Store::read(&self.unit_path(stem))
    }

    pub fn save_unit(&self, stem: &str, record: &UnitRecord) -> Result<()> {
        Store::write(&self.unit_path(stem), record)
    }

    pub fn forget_unit(&self, stem: &str) {
        let _ = std::fs::remove_file(self.unit_path(stem));
        let _ = std::fs::remove_dir_all(self.root.join("units").join(stem));
    }

    /// The store's link to a unit's output. Cargo deletes a library's rlib
    /// and an uplifted executable before it runs the compiler again; a
    /// unit not compiled gets them back from here.
    pub fn kept_output(&self, stem: &str, output: &Path) -> Option<PathBuf> {
        let name = output.file_name()?;
        Some(self.root.join("units").join(stem).join(name))
    }

    /// Keeps a link to each of a unit's outputs (the same file: a library's
    /// outputs are only ever replaced, never written in place).
    pub fn keep_outputs(&self, stem: &str, outputs: &[PathBuf]) -> Result<()> {
        let dir = self.root.join("units").join(stem);
        let _ = std::fs::remove_dir_all(&dir);
        crate::fs::create_dir_all(&dir)?;
        for output in outputs {
            let Some(kept) = self.kept_output(stem, output) else {
                continue;
            };
            std::fs::hard_link(output, &kept)
                .with_context(|| format!("failed to keep `{}`", output.display()))?;
        }
        Ok(())
    }

    /// An output cargo deleted, put back from its kept link.
    pub fn restore_output(&self, stem: &str, output: &Path) -> Result<()> {
        if output.exists() {
            return Ok(());
        }
        let kept = self
            .kept_output(stem, output)
            .with_context(|| format!("`{}` has no name", output.display()))?;
        std::fs::hard_link(&kept, output)
            .with_context(|| format!("failed to restore `{}`", output.display()))
    }

    fn lib_dir(&self, stem: &str) -> PathBuf {
        self.root.join("libs").join(stem)
    }

    pub fn snapshot(&self, stem: &str, id: &str) -> Option<LibSnapshot> {
        let mut snap: LibSnapshot = Store::read(&self.lib_dir(stem).join(format!("{id}.json")))?;
        snap.id = id.to_owned();
        Some(snap)
    }

    /// Saves a snapshot under the hash of its content, which becomes its
    /// id.
    pub fn save_snapshot(&self, stem: &str, mut snap: LibSnapshot) -> Result<LibSnapshot> {
        snap.id = String::new();
        let json = serde_json::to_vec(&snap)?;
        snap.id = hash(&json);
        crate::fs::write_atomic(&self.lib_dir(stem).join(format!("{}.json", snap.id)), &json)?;
        Ok(snap)
    }

    pub fn published(&self, stem: &str) -> Option<Published> {
        Store::read(&self.lib_dir(stem).join("published.json"))
    }

    pub fn publish(&self, stem: &str, published: &Published) -> Result<()> {
        Store::write(&self.lib_dir(stem).join("published.json"), published)
    }

    pub fn unpublish(&self, stem: &str) {
        let _ = std::fs::remove_file(self.lib_dir(stem).join("published.json"));
    }

    /// Removes the snapshots no library publishes, and the blobs nothing
    /// names. Run by the driver with the state lock held, when no wrapper
    /// is running.
    pub fn collect_garbage(&self) {
        let mut blobs = BTreeSet::new();
        for unit in read_dir(&self.root.join("units")) {
            if let Some(record) = Store::read::<UnitRecord>(&unit) {
                blobs.extend(record.code.into_values());
            }
        }
        for lib in read_dir(&self.root.join("libs")) {
            let published: Option<Published> = Store::read(&lib.join("published.json"));
            let Some(published) = published else {
                let _ = std::fs::remove_dir_all(&lib);
                continue;
            };
            blobs.extend(published.code.clone());
            blobs.extend(published.defined.clone());
            for entry in read_dir(&lib) {
                let Some(id) = entry
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".json"))
                    .filter(|n| *n != "published")
                else {
                    continue;
                };
                if id != published.interface {
                    let _ = std::fs::remove_file(&entry);
                    continue;
                }
                if let Some(snap) = Store::read::<LibSnapshot>(&entry) {
                    blobs.extend(snap.files.into_values());
                }
            }
        }
        for blob in read_dir(&self.root.join("blobs")) {
            let name = blob.file_name().map(|n| n.to_string_lossy().into_owned());
            if !name.is_some_and(|n| blobs.contains(&n)) {
                let _ = std::fs::remove_file(&blob);
            }
        }
        let _ = std::fs::remove_dir_all(self.root.join("stage"));
    }
}

fn read_dir(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect()
}
