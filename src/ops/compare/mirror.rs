//! A copy of the user's sources under the target dir, so that `compare`
//! can edit and build without touching a single file of the user's. The
//! workspace and its path dependencies outside it are copied keeping their
//! relative layout, so relative `path = ".."` dependencies still resolve.
//! Later runs copy only what changed and remove what is gone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use walkdir::WalkDir;

#[derive(Debug)]
pub struct Mirror {
    /// The common ancestor of all roots, in the user's tree.
    base: PathBuf,
    /// Where `base` is mirrored.
    dest: PathBuf,
    roots: Vec<PathBuf>,
    /// Directories never copied: target dirs.
    skip: Vec<PathBuf>,
}

/// What a sync did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    pub copied: usize,
    pub unchanged: usize,
    pub removed: usize,
    pub bytes_copied: u64,
}

impl Mirror {
    /// `roots`: the workspace root and the roots of path dependencies
    /// outside it. `skip`: directories to leave out (target dirs).
    pub fn new(dest: &Path, roots: &[PathBuf], skip: &[PathBuf]) -> Mirror {
        let mut roots: Vec<PathBuf> = roots.to_vec();
        roots.sort();
        // A root inside another is copied with it.
        let mut kept: Vec<PathBuf> = Vec::new();
        for r in roots {
            if !kept.iter().any(|k| r.starts_with(k)) {
                kept.push(r);
            }
        }
        let base = common_ancestor(&kept);
        Mirror {
            base,
            dest: dest.to_owned(),
            roots: kept,
            skip: skip.to_vec(),
        }
    }

    /// Where a path of the user's tree is in the copy.
    pub fn map(&self, path: &Path) -> Option<PathBuf> {
        let rel = path.strip_prefix(&self.base).ok()?;
        // `join("")` would add a trailing slash, and paths are compared as
        // strings elsewhere.
        Some(if rel.as_os_str().is_empty() {
            self.dest.clone()
        } else {
            self.dest.join(rel)
        })
    }

    fn skipped(&self, path: &Path) -> bool {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == ".git" || self.skip.iter().any(|s| path.starts_with(s)) {
            return true;
        }
        // Cargo's configuration in a directory the copy lies in: cargo
        // finds it from the copy as it is, and a second copy of it would
        // count twice (its `rustflags` passed twice, every unit's flags
        // other than the user's builds').
        if name == ".cargo" && path.parent().is_some_and(|p| self.dest.starts_with(p)) {
            return true;
        }
        // Any cargo target dir: cargo marks them with CACHEDIR.TAG.
        name == "target" && path.join("CACHEDIR.TAG").exists()
    }

    /// Brings the copy up to date with the user's files.
    pub fn sync(&self) -> Result<SyncStats> {
        let mut stats = SyncStats::default();
        let mut wanted: BTreeSet<PathBuf> = BTreeSet::new();
        for root in &self.roots {
            let walker = WalkDir::new(root)
                .follow_links(false)
                .into_iter()
                .filter_entry(|e| !(e.file_type().is_dir() && self.skipped(e.path())));
            for entry in walker {
                let entry =
                    entry.with_context(|| format!("failed to walk `{}`", root.display()))?;
                let src = entry.path();
                let Some(dst) = self.map(src) else { continue };
                wanted.insert(dst.clone());
                let ty = entry.file_type();
                if ty.is_dir() {
                    crate::fs::create_dir_all(&dst)?;
                } else if ty.is_symlink() {
                    let target = std::fs::read_link(src)
                        .with_context(|| format!("failed to read link `{}`", src.display()))?;
                    if std::fs::read_link(&dst).ok() != Some(target.clone()) {
                        let _ = std::fs::remove_file(&dst);
                        std::os::unix::fs::symlink(&target, &dst)
                            .with_context(|| format!("failed to create `{}`", dst.display()))?;
                    }
                } else if ty.is_file() {
                    if up_to_date(src, &dst) {
                        stats.unchanged += 1;
                    } else {
                        if let Some(parent) = dst.parent() {
                            crate::fs::create_dir_all(parent)?;
                        }
                        let n = std::fs::copy(src, &dst).with_context(|| {
                            format!("failed to copy `{}` to `{}`", src.display(), dst.display())
                        })?;
                        stats.copied += 1;
                        stats.bytes_copied += n;
                    }
                }
            }
        }
        // Files the user deleted go from the copy too.
        for root in &self.roots {
            let Some(copy) = self.map(root) else { continue };
            if !copy.exists() {
                continue;
            }
            for entry in WalkDir::new(&copy).contents_first(true) {
                let entry =
                    entry.with_context(|| format!("failed to walk `{}`", copy.display()))?;
                let p = entry.path();
                if wanted.contains(p) {
                    continue;
                }
                // Never delete what builds made inside the copy. Judge by the
                // path within the copy: the copy itself lives in a target dir.
                let within = p.strip_prefix(&copy).unwrap_or(p);
                if within.components().any(|c| c.as_os_str() == "target") {
                    continue;
                }
                if entry.file_type().is_dir() {
                    let _ = std::fs::remove_dir(p);
                } else {
                    std::fs::remove_file(p)
                        .with_context(|| format!("failed to remove `{}`", p.display()))?;
                }
                stats.removed += 1;
            }
        }
        Ok(stats)
    }
}

/// Makes the manifest at `path` a workspace root, if it is not one: the
/// copy lives under a target dir, and cargo would otherwise attach a lone
/// package to any workspace found above it. Returns whether it changed.
pub fn make_workspace_root(path: &Path) -> Result<bool> {
    let text = crate::fs::read_to_string(path)?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("failed to parse `{}`", path.display()))?;
    if doc.contains_key("workspace") {
        return Ok(false);
    }
    doc.insert("workspace", toml_edit::Item::Table(toml_edit::Table::new()));
    crate::fs::write_atomic(path, doc.to_string().as_bytes())?;
    Ok(true)
}

/// A copy is up to date when it has the same length and is not older.
fn up_to_date(src: &Path, dst: &Path) -> bool {
    let (Ok(s), Ok(d)) = (std::fs::metadata(src), std::fs::metadata(dst)) else {
        return false;
    };
    match (s.modified(), d.modified()) {
        (Ok(sm), Ok(dm)) => s.len() == d.len() && dm >= sm,
        _ => false,
    }
}

fn common_ancestor(paths: &[PathBuf]) -> PathBuf {
    let Some(first) = paths.first() else {
        return PathBuf::from("/");
    };
    let mut base = first.clone();
    for p in &paths[1..] {
        while !p.starts_with(&base) {
            if !base.pop() {
                return PathBuf::from("/");
            }
        }
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_roots_with_their_relative_layout() {
        let user = tempfile::tempdir().unwrap();
        let ws = user.path().join("ws");
        let shared = user.path().join("shared");
        for (p, c) in [
            ("ws/Cargo.toml", "[workspace]"),
            ("ws/app/src/main.rs", "fn main() {}"),
            ("ws/target/CACHEDIR.TAG", "x"),
            ("ws/target/debug/big", "artifact"),
            ("ws/.git/HEAD", "ref"),
            ("shared/src/lib.rs", "pub fn f() {}"),
        ] {
            let path = user.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, c).unwrap();
        }
        let out = tempfile::tempdir().unwrap();
        let m = Mirror::new(out.path(), &[ws.clone(), shared.clone()], &[]);
        let stats = m.sync().unwrap();
        assert_eq!(stats.copied, 3, "{stats:?}");
        let copy = m.map(&ws).unwrap();
        assert_eq!(copy, out.path().join("ws"));
        let alone = Mirror::new(out.path(), std::slice::from_ref(&ws), &[]);
        assert_eq!(
            alone.map(&ws).unwrap().as_os_str(),
            out.path().as_os_str(),
            "no trailing slash"
        );
        assert!(copy.join("app/src/main.rs").exists());
        assert!(out.path().join("shared/src/lib.rs").exists());
        assert!(!copy.join("target").exists(), "target dirs are not copied");
        assert!(!copy.join(".git").exists());

        // A second sync copies nothing; a deleted file goes.
        assert_eq!(m.sync().unwrap().copied, 0);
        std::fs::remove_file(shared.join("src/lib.rs")).unwrap();
        let stats = m.sync().unwrap();
        assert!(stats.removed >= 1, "{stats:?}");
        assert!(!out.path().join("shared/src/lib.rs").exists());
    }

    #[test]
    fn a_lone_package_becomes_its_own_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("Cargo.toml");
        std::fs::write(&m, "[package] # the app\nname = \"a\"\n").unwrap();
        assert!(make_workspace_root(&m).unwrap());
        let text = std::fs::read_to_string(&m).unwrap();
        assert!(
            text.starts_with("[package] # the app\nname = \"a\"\n"),
            "kept as written: {text}"
        );
        assert!(text.contains("\n[workspace]\n"));
        assert!(!make_workspace_root(&m).unwrap(), "already a root");
    }

    #[test]
    fn deleted_files_go_even_when_the_copy_is_in_a_target_dir() {
        let user = tempfile::tempdir().unwrap();
        let ws = user.path().join("ws");
        std::fs::create_dir_all(ws.join("src")).unwrap();
        std::fs::write(ws.join("src/main.rs"), "fn main() {}").unwrap();
        std::fs::write(ws.join("gone.txt"), "soon gone").unwrap();
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("target/dyndev-compare/src");
        let m = Mirror::new(&dest, std::slice::from_ref(&ws), &[]);
        m.sync().unwrap();
        assert!(dest.join("gone.txt").exists());
        std::fs::remove_file(ws.join("gone.txt")).unwrap();
        std::fs::write(dest.join("made-by-a-build.txt"), "x").unwrap();
        m.sync().unwrap();
        assert!(!dest.join("gone.txt").exists());
        assert!(!dest.join("made-by-a-build.txt").exists());
        assert!(dest.join("src/main.rs").exists());
    }

    #[test]
    fn cargos_configuration_is_copied_only_where_cargo_would_not_find_it() {
        let user = tempfile::tempdir().unwrap();
        let ws = user.path().join("ws");
        std::fs::create_dir_all(ws.join(".cargo")).unwrap();
        std::fs::write(
            ws.join(".cargo/config.toml"),
            "[build]\nrustflags = [\"-Dx\"]\n",
        )
        .unwrap();
        std::fs::create_dir_all(ws.join("src")).unwrap();
        std::fs::write(ws.join("src/main.rs"), "fn main() {}").unwrap();
        // Under the project: cargo reads the project's own from the copy.
        std::fs::create_dir_all(ws.join("target")).unwrap();
        std::fs::write(ws.join("target/CACHEDIR.TAG"), "x").unwrap();
        let inside = ws.join("target/dyndev-compare/src");
        Mirror::new(&inside, std::slice::from_ref(&ws), &[])
            .sync()
            .unwrap();
        assert!(inside.join("src/main.rs").exists());
        assert!(!inside.join(".cargo").exists());
        // Elsewhere (a target dir outside it): copied.
        let out = tempfile::tempdir().unwrap();
        Mirror::new(out.path(), std::slice::from_ref(&ws), &[])
            .sync()
            .unwrap();
        assert!(out.path().join(".cargo/config.toml").exists());
    }

    #[test]
    fn common_ancestor_of_siblings() {
        assert_eq!(
            common_ancestor(&["/a/b/ws".into(), "/a/c/dep".into()]),
            Path::new("/a")
        );
        assert_eq!(common_ancestor(&["/a/ws".into()]), Path::new("/a/ws"));
    }
}
