//! What changed: which paths of a file event are build inputs, whether
//! their bytes really changed since the last build, and watching the
//! directories of a new set of inputs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use notify::Watcher as _;

use super::Fingerprint;
use super::Session;
use super::inputs::{self, Inputs};

impl Session<'_> {
    /// The paths of an event that are inputs, or directories leading to
    /// one; never a target dir (a tree may hold one).
    pub(super) fn relevant(&self, paths: Vec<PathBuf>) -> BTreeSet<PathBuf> {
        paths
            .into_iter()
            .filter(|p| {
                self.inputs.affected_by(p) && !self.exclusions.excludes(&inputs::normalize(p))
            })
            .collect()
    }

    /// Whether `path` differs from what it was when the last build started
    /// (a save that changes nothing, or a build writing the same bytes
    /// again, starts no build).
    pub(super) fn really_changed(&self, path: &Path) -> bool {
        let path = inputs::normalize(path);
        match self.fingerprints.get(&path) {
            Some(before) => {
                let contents =
                    |f: &Fingerprint| f.as_ref().map(|(len, _, hash)| (*len, hash.clone()));
                contents(&fingerprint(&path, before.as_ref())) != contents(before)
            }
            // A directory on the way to an input, or a file not seen yet.
            None => true,
        }
    }

    pub(super) fn describe_changes(&self, changed: &[PathBuf]) -> String {
        let root = self.ws.root();
        let first = changed[0].strip_prefix(root).unwrap_or(&changed[0]);
        match changed.len() {
            1 => format!("`{}`", first.display()),
            n => format!("`{}` and {} more", first.display(), n - 1),
        }
    }

    /// Notes what every input holds before a build reads it.
    pub(super) fn refresh_fingerprints(&mut self) {
        self.fingerprints = self
            .inputs
            .files
            .iter()
            .map(|f| {
                let old = self.fingerprints.get(f).and_then(Option::as_ref);
                (f.clone(), fingerprint(f, old))
            })
            .collect();
    }

    /// Watches the directories of a new set of inputs.
    pub(super) fn set_inputs(&mut self, inputs: Inputs) {
        let dirs = inputs.dirs();
        for gone in self.watched.difference(&dirs) {
            let _ = self.fs.unwatch(gone);
        }
        let mut watched = BTreeSet::new();
        for dir in dirs {
            if self.watched.contains(&dir) {
                watched.insert(dir);
                continue;
            }
            match self.fs.watch(&dir, notify::RecursiveMode::NonRecursive) {
                Ok(()) => {
                    watched.insert(dir);
                }
                Err(e) => self
                    .shell
                    .warn(format_args!("cannot watch `{}`: {e}", dir.display())),
            }
        }
        for f in &inputs.files {
            if !self.fingerprints.contains_key(f) {
                let fp = fingerprint(f, None);
                self.fingerprints.insert(f.clone(), fp);
            }
        }
        self.watched = watched;
        self.shell.verbose_status(
            "Watching",
            format_args!(
                "{} files in {} directories",
                inputs.existing(),
                self.watched.len()
            ),
        );
        self.inputs = inputs;
    }
}

/// Size, modification time and (when those changed) a hash of the
/// contents, reusing `old`'s hash when size and time are the same.
pub(super) fn fingerprint(
    path: &Path,
    old: Option<&(u64, std::time::SystemTime, String)>,
) -> Fingerprint {
    let meta = std::fs::metadata(path).ok()?;
    let (len, modified) = (meta.len(), meta.modified().ok()?);
    if let Some((l, m, hash)) = old
        && *l == len
        && *m == modified
    {
        return Some((len, modified, hash.clone()));
    }
    let bytes = std::fs::read(path).ok()?;
    let hash = crate::fs::StableHasher::default()
        .write(&bytes)
        .finish_hex();
    Some((len, modified, hash))
}

/// A manifest, lockfile or configuration file: the workspace may have
/// changed shape.
pub(super) fn is_cargo_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    matches!(name, "Cargo.toml" | "Cargo.lock")
        || path.components().any(|c| c.as_os_str() == ".cargo")
}
