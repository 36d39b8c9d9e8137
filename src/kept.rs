//! Kept links: what a program's link was made of (its crate's objects,
//! copied; the rlibs beside it, linked; the driver's arguments), kept by
//! the linker proxy so that the cutoff can link the program again without
//! compiling it, and reload can link only what a later compile changed.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::contract::FileId;
use crate::rustc_args::Invocation;

/// How many kept links of one output stay on disk, newest first, unless
/// the keep dir's `.newest` file says otherwise: a running program's and
/// the ones after it, for reload (the cutoff's store needs 1).
const KEPT_LINKS: usize = 3;

/// What one link of an executable was made of, kept for reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptLink {
    /// [`KeptLink::VERSION`] when written; a record of another version is
    /// no record (the link happens as cargo asks).
    pub version: u32,
    /// The C compiler driver that links, and rustc's arguments to it, in
    /// which the crate's objects and rlibs name their kept copies.
    pub driver: String,
    pub args: Vec<String>,
    /// The crate's own objects (kept copies), in link order.
    pub objects: Vec<PathBuf>,
    /// The rlibs in the output's directory (workspace libraries and
    /// dependencies linked statically), kept copies.
    pub rlibs: Vec<PathBuf>,
    /// The output file (`-o`), and its identity once linked (`None` when
    /// the link was skipped).
    pub output: PathBuf,
    pub linked: Option<FileId>,
    /// The directory holding the kept copies.
    pub dir: PathBuf,
    /// Files rustc wrote for this link alone in a temporary directory
    /// (`symbols.o`), kept copies.
    pub temps: Vec<PathBuf>,
    /// The `PATH` rustc ran the linker with (it finds `rust-lld` there).
    pub path_env: Option<String>,
    /// The links to workspace libraries' shared versions the output was
    /// linked against instead of their rlibs ([`crate::cutoff::shared`]);
    /// `args` are the static link's.
    pub shared: Vec<String>,
    /// What each kept copy was copied from, as it was then, by the copy's
    /// path: two kept links whose copies came from one unchanged file
    /// (an object rustc's incremental cache served twice) hold the same
    /// bytes, with no need to read them.
    pub origins: BTreeMap<PathBuf, FileId>,
}

impl KeptLink {
    /// Bumped whenever a record's meaning changes.
    pub const VERSION: u32 = 2;

    /// A record as written, if it is one of this version.
    fn parse(bytes: &[u8]) -> Option<KeptLink> {
        serde_json::from_slice::<KeptLink>(bytes)
            .ok()
            .filter(|k| k.version == KeptLink::VERSION)
    }

    /// The record of the newest kept link of `output` under `root`.
    pub fn latest(root: &Path, output: &Path) -> Option<KeptLink> {
        let name = output.file_name()?.to_string_lossy().into_owned();
        KeptLink::parse(&std::fs::read(root.join(format!("{name}.json"))).ok()?)
    }

    /// Whether kept copy `mine` of this link and `theirs` of `other` were
    /// copied from one file that had not changed in between.
    pub fn same_origin(&self, mine: &Path, other: &KeptLink, theirs: &Path) -> bool {
        match (self.origins.get(mine), other.origins.get(theirs)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }

    /// This link again with its workspace libraries as they are now (their
    /// rlibs beside the output), kept under `root` as the newest link of
    /// its output: what a compile of a crate whose own inputs did not
    /// change would keep. Its objects are its own (kept files are never
    /// written again, so a hard link of one is as good as a copy).
    pub fn renewed(&self, root: &Path) -> Result<KeptLink> {
        let name = self
            .output
            .file_name()
            .context("the link's output has no file name")?
            .to_string_lossy()
            .into_owned();
        let out_dir = self
            .output
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let dir = new_kept_dir(root, &name)?;
        let mut renewed = KeptLink {
            dir: dir.clone(),
            args: Vec::with_capacity(self.args.len()),
            objects: Vec::new(),
            rlibs: Vec::new(),
            temps: Vec::new(),
            origins: BTreeMap::new(),
            ..self.clone()
        };
        for a in &self.args {
            let path = PathBuf::from(a);
            let is = |list: &[PathBuf]| list.contains(&path);
            if !(is(&self.objects) || is(&self.temps) || is(&self.rlibs)) {
                renewed.args.push(a.clone());
                continue;
            }
            let file = path.file_name().context("a kept file has no name")?;
            let copy = dir.join(file);
            if is(&self.rlibs) {
                let now = out_dir.join(file);
                if let Some(origin) = FileId::of(&now) {
                    renewed.origins.insert(copy.clone(), origin);
                }
                keep_rlib(&now, &copy)?;
                renewed.rlibs.push(copy.clone());
            } else {
                if let Some(origin) = self.origins.get(&path) {
                    renewed.origins.insert(copy.clone(), *origin);
                }
                keep_rlib(&path, &copy)?;
                if is(&self.objects) {
                    renewed.objects.push(copy.clone());
                } else {
                    renewed.temps.push(copy.clone());
                }
            }
            renewed.args.push(copy.display().to_string());
        }
        save_kept(root, &name, &renewed)?;
        Ok(renewed)
    }

    /// The newest kept link under `root` whose output is the file `id`.
    pub fn of_file(root: &Path, id: FileId) -> Option<KeptLink> {
        std::fs::read_dir(root)
            .ok()?
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| KeptLink::parse(&std::fs::read(e.path()).ok()?))
            .find(|k| k.linked.is_some_and(|l| (l.dev, l.ino) == (id.dev, id.ino)))
    }
}

/// Whether `arg` is one of the crate's own objects for the link of
/// `output`: rustc names them `<output file name>.<cgu>...rcgu.o`.
fn is_crate_object(arg: &str, output: &Path) -> bool {
    let (Some(dir), Some(name)) = (output.parent(), output.file_name()) else {
        return false;
    };
    let path = Path::new(arg);
    arg.ends_with(".rcgu.o")
        && path.parent().is_some_and(|p| crate::fs::same_dir(p, dir))
        && path.file_name().is_some_and(|f| {
            f.to_string_lossy()
                .starts_with(&format!("{}.", name.to_string_lossy()))
        })
}

/// The output a link's arguments name (`-o PATH`).
pub fn output_of<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Option<PathBuf> {
    args.iter()
        .position(|a| a.as_ref() == "-o")
        .and_then(|i| args.get(i + 1))
        .map(|a| PathBuf::from(a.as_ref()))
}

/// Keeps the inputs of the link `args` (driver `driver`) under `root`.
pub fn keep(
    root: &Path,
    driver: &str,
    args: &[OsString],
    linked: bool,
    shared: Vec<String>,
) -> Result<()> {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let output = output_of(&args).context("the link names no output")?;
    let name = output
        .file_name()
        .context("the link's output has no file name")?
        .to_string_lossy()
        .into_owned();
    let dir = new_kept_dir(root, &name)?;
    let out_dir = output.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut kept = KeptLink {
        version: KeptLink::VERSION,
        driver: driver.to_owned(),
        args: Vec::with_capacity(args.len()),
        objects: Vec::new(),
        rlibs: Vec::new(),
        output: output.clone(),
        linked: None,
        dir: dir.clone(),
        temps: Vec::new(),
        path_env: std::env::var("PATH").ok(),
        shared,
        origins: BTreeMap::new(),
    };
    for a in &args {
        let path = Path::new(a);
        let object = is_crate_object(a, &output);
        let rlib = a.ends_with(".rlib")
            && path
                .parent()
                .is_some_and(|p| crate::fs::same_dir(p, &out_dir));
        // rustc's temporary directory for the link, `<out dir>/rustcXXXXXX`.
        let temp = path.parent().is_some_and(|p| {
            p.parent().is_some_and(|d| crate::fs::same_dir(d, &out_dir))
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("rustc"))
        }) && path.is_file();
        if !(object || rlib || temp) {
            kept.args.push(a.clone());
            continue;
        }
        let copy = dir.join(path.file_name().expect("a file"));
        if let Some(origin) = FileId::of(path) {
            kept.origins.insert(copy.clone(), origin);
        }
        if rlib {
            keep_rlib(path, &copy)?;
        } else {
            keep_copy(path, &copy)?;
        }
        kept.args.push(copy.display().to_string());
        if object {
            kept.objects.push(copy);
        } else if temp {
            kept.temps.push(copy);
        } else {
            kept.rlibs.push(copy);
        }
    }
    if linked {
        kept.linked = FileId::of(&output);
    }
    save_kept(root, &name, &kept)
}

/// A new directory for a kept link of the output `name`.
fn new_kept_dir(root: &Path, name: &str) -> Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = root
        .join(name)
        .join(format!("{stamp:024}-{}", std::process::id()));
    crate::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Writes a kept link as the newest of its output `name`, and removes the
/// oldest beyond what `root` keeps.
fn save_kept(root: &Path, name: &str, kept: &KeptLink) -> Result<()> {
    let json = serde_json::to_vec(kept).context("failed to serialize a kept link")?;
    crate::fs::write_atomic(&kept.dir.join("link.json"), &json)?;
    crate::fs::write_atomic(&root.join(format!("{name}.json")), &json)?;
    // The newest few stay: a running program's and the ones after it.
    let family = root.join(name);
    if let Ok(entries) = std::fs::read_dir(&family) {
        let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        dirs.sort();
        let newest = std::fs::read_to_string(root.join(".newest"))
            .ok()
            .and_then(|n| n.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(KEPT_LINKS);
        for old in dirs.iter().rev().skip(newest) {
            let _ = std::fs::remove_dir_all(old);
        }
    }
    Ok(())
}

/// Keeps an object or a temporary of the link as a file of its own,
/// never a hard link: rustc's objects are hard links into its incremental
/// cache, which later compiles trust, so a write to a kept object reached
/// the cache too (and the other way round). `std::fs::copy` copies with
/// `copy_file_range`, which a file system with reflinks (XFS, btrfs)
/// answers with a clone of the extents, sharing blocks until either file
/// is written; elsewhere the kernel copies.
fn keep_copy(path: &Path, copy: &Path) -> Result<()> {
    std::fs::copy(path, copy).with_context(|| format!("failed to keep `{}`", path.display()))?;
    Ok(())
}

/// Keeps an rlib by hard link, a copy across file systems. rustc writes an
/// rlib under a temporary name and renames it over the old one, so its
/// next write makes a new file and the kept link keeps the old one. A copy
/// would cost the whole rlib for every test binary that links it (the
/// test-loop fixture's library: 20 MiB and 13 ms, twelve times).
fn keep_rlib(path: &Path, copy: &Path) -> Result<()> {
    if std::fs::hard_link(path, copy).is_err() {
        keep_copy(path, copy)?;
    }
    Ok(())
}

/// An executable's rustc command made to link through the linker proxy
/// `proxy` (the last `-C linker` wins), and the environment that tells the
/// proxy which linker the command chose before and where to keep the
/// link's inputs.
pub fn through_proxy(
    inv: &Invocation,
    proxy: &str,
    keep: &str,
) -> (Vec<String>, Vec<(String, String)>) {
    let mut args = inv.args.clone();
    let mut env = vec![(crate::contract::env::KEEP.to_owned(), keep.to_owned())];
    match inv.codegen_value("linker") {
        // Already the proxy (a replay), or another copy of it (`compare`'s
        // timer): that one keeps the link.
        Some(l)
            if l == proxy
                || Path::new(l).file_name() == Some(crate::contract::names::LINKER.as_ref()) =>
        {
            return (args, env);
        }
        Some(l) => env.push((crate::contract::env::REAL_LINKER.to_owned(), l.to_owned())),
        None => {}
    }
    args.extend(["-C".to_owned(), format!("linker={proxy}")]);
    (args, env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn rustcs_next_write_never_reaches_a_kept_file() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let (deps, root) = (dir.path().join("deps"), dir.path().join("links"));
        std::fs::create_dir_all(&deps).unwrap();
        let object = deps.join("app-1.app.a1b2-cgu.0.rcgu.o");
        let rlib = deps.join("libcore-2.rlib");
        let output = deps.join("app-1");
        std::fs::write(&object, b"object as compiled").unwrap();
        std::fs::write(&rlib, b"rlib as compiled").unwrap();
        let args = os(&[
            "-m64",
            object.to_str().unwrap(),
            rlib.to_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
        ]);
        keep(&root, "cc", &args, false, Vec::new()).unwrap();
        let kept = KeptLink::latest(&root, &output).unwrap();
        assert_eq!((kept.objects.len(), kept.rlibs.len()), (1, 1));

        // An object written in place, as a file of rustc's incremental
        // cache (which it is a hard link of), and an rlib replaced as rustc
        // replaces it: the kept files stay as they were.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&object)
            .unwrap();
        f.write_all(b"garbage").unwrap();
        drop(f);
        let tmp = deps.join(".tmp-archive");
        std::fs::write(&tmp, b"rlib compiled again").unwrap();
        std::fs::rename(&tmp, &rlib).unwrap();
        assert_eq!(
            std::fs::read(&kept.objects[0]).unwrap(),
            b"object as compiled"
        );
        assert_eq!(std::fs::read(&kept.rlibs[0]).unwrap(), b"rlib as compiled");

        // A second keep of the same, unchanged files is known to hold the
        // same bytes without reading them.
        std::fs::write(&object, b"object as compiled").unwrap();
        keep(&root, "cc", &args, false, Vec::new()).unwrap();
        let again = KeptLink::latest(&root, &output).unwrap();
        assert_ne!(again.dir, kept.dir);
        assert!(!again.same_origin(&again.objects[0], &kept, &kept.objects[0]));
        keep(&root, "cc", &args, false, Vec::new()).unwrap();
        let third = KeptLink::latest(&root, &output).unwrap();
        assert!(third.same_origin(&third.objects[0], &again, &again.objects[0]));
    }
}
