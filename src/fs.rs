//! File-system helpers that say which path failed, atomic writes, and the
//! small stable hash dyndev names things by.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result};

pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("failed to read `{}`", path.display()))
}

pub fn read_to_string(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("failed to read `{}`", path.display()))
}

pub fn create_dir_all(path: &Path) -> Result<()> {
    fs::create_dir_all(path)
        .with_context(|| format!("failed to create directory `{}`", path.display()))
}

/// Writes `contents` to a temporary file beside `path`, then renames it into
/// place: readers see the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("`{}` has no parent directory", path.display()))?;
    create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut file =
        fs::File::create(&tmp).with_context(|| format!("failed to create `{}`", tmp.display()))?;
    file.write_all(contents)
        .with_context(|| format!("failed to write `{}`", tmp.display()))?;
    drop(file);
    fs::rename(&tmp, path).with_context(|| format!("failed to write `{}`", path.display()))
}

/// A directory for one job's files beside their final place
/// (`<dir>/.<name>.<pid>.tmp`), removed with all it holds when dropped: a
/// compiler or linker writes there, and only a finished file is renamed
/// out of it. A crash, a full disk or a failed link leaves nothing under a
/// final name.
#[derive(Debug)]
pub struct Scratch {
    path: std::path::PathBuf,
}

impl Scratch {
    pub fn new(dir: &Path, name: &str) -> Result<Scratch> {
        let path = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        create_dir_all(&path)?;
        Ok(Scratch { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames `name` out of the scratch dir to `to`, which then names the
    /// whole new file at once (a program that has the old one open or
    /// mapped keeps the old one).
    pub fn rename_out(&self, name: &str, to: &Path) -> Result<()> {
        fs::rename(self.path.join(name), to)
            .with_context(|| format!("failed to write `{}`", to.display()))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Whether `name` is a temporary of [`write_atomic`] or [`Scratch`]: left
/// behind only when a process died before renaming it into place.
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// The process a temporary of [`write_atomic`], [`Scratch`] or a link
/// into one (`.<name>.<pid>.tmp`, or a linker's own `….tmp.tmpXXXXXX`
/// beside that) was made by; `None` when `name` is no such temporary.
pub fn temporary_owner(name: &str) -> Option<u32> {
    let parts: Vec<&str> = name.strip_prefix('.')?.split('.').collect();
    parts
        .windows(2)
        .find(|w| w[1] == "tmp")
        .and_then(|w| w[0].parse().ok())
}

/// `a/./b/../c` as `a/c`, without asking the file system (a path may not
/// exist, and links count as named).
pub fn normalize(path: &Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(c);
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Whether two paths name the same directory, however spelled (`a/../b`,
/// links).
pub fn same_dir(a: &Path, b: &Path) -> bool {
    a == b
        || match (fs::canonicalize(a), fs::canonicalize(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
}

/// Whether two paths are links of one file (cargo uplifts an executable
/// from the build dir as a hard link). False when either is missing.
pub fn same_inode(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Whether the file at `path` was written, or replaced, at or after `time`
/// (or is gone). A file put back with an older modification time (`cp -p`,
/// `rsync -t`, `tar x`, a move) still has a new status change time, which
/// no one can set.
pub fn changed_since(path: &Path, time: SystemTime) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::metadata(path) else {
        return true;
    };
    let changed = SystemTime::UNIX_EPOCH
        + std::time::Duration::new(
            u64::try_from(meta.ctime()).unwrap_or_default(),
            u32::try_from(meta.ctime_nsec()).unwrap_or_default(),
        );
    meta.modified().map_or(true, |m| m >= time) || changed >= time
}

/// Modification time in nanoseconds since the epoch, `None` when missing.
pub fn mtime_nanos(path: &Path) -> Option<u128> {
    let modified = fs::metadata(path).ok()?.modified().ok()?;
    Some(
        modified
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()?
            .as_nanos(),
    )
}

/// This executable's path. On Linux, a binary replaced while it runs (say,
/// by `cargo install`) reads as `path (deleted)`; the path itself is where
/// the new one is.
pub fn self_exe() -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe().context("failed to find cargo-dyndev's own path")?;
    let text = exe.to_string_lossy();
    Ok(match text.strip_suffix(" (deleted)") {
        Some(live) => std::path::PathBuf::from(live),
        None => exe,
    })
}

/// FNV-1a, 64 bits: stable across Rust releases and platforms, unlike
/// `DefaultHasher`. Names bundles and facades, not a security boundary.
#[derive(Debug, Clone)]
pub struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl StableHasher {
    pub fn write(&mut self, bytes: &[u8]) -> &mut Self {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        self
    }

    pub fn write_str(&mut self, s: &str) -> &mut Self {
        self.write(s.as_bytes())
    }

    pub fn finish_hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_dir_hands_out_whole_files_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("libx.so");
        std::fs::write(&target, b"old").unwrap();
        let scratch = Scratch::new(dir.path(), "x").unwrap();
        let name = scratch.path().file_name().unwrap().to_str().unwrap();
        assert!(is_temporary(name), "{name}");
        std::fs::write(scratch.path().join("libx.so"), b"new").unwrap();
        std::fs::write(scratch.path().join("x.rcgu.o"), b"object").unwrap();
        scratch.rename_out("libx.so", &target).unwrap();
        drop(scratch);
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["libx.so"]);
    }

    #[test]
    fn a_temporary_names_the_process_that_made_it() {
        assert_eq!(temporary_owner(".libcore-1-2.so.4321.tmp"), Some(4321));
        assert_eq!(temporary_owner(".libcore-1-2.facts.77.tmp"), Some(77));
        // A linker's own temporary beside its output.
        assert_eq!(temporary_owner(".libcore-1-2.77.tmp.tmpa1B2c3"), Some(77));
        assert_eq!(temporary_owner(".lock"), None);
        assert_eq!(temporary_owner("libcore-1-2.so"), None);
        assert_eq!(temporary_owner(".libcore.x.tmp"), None);
    }

    #[test]
    fn stable_hash_is_stable_and_separates_fields() {
        let mut a = StableHasher::default();
        a.write_str("ab").write_str("c");
        let mut b = StableHasher::default();
        b.write_str("a").write_str("bc");
        assert_ne!(a.finish_hex(), b.finish_hex());
        // Pinned: bundle names must not change between releases of the tool
        // for the same inputs.
        assert_eq!(
            StableHasher::default().write_str("dyndev").finish_hex(),
            "9a6b853ce771a3f8"
        );
    }
}
