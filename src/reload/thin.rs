//! New code linked from only what a compile changed.
//!
//! The program's crate is compiled with the very command that built the
//! running code, same incremental cache, so rustc reuses every codegen
//! unit the edit did not touch and writes the same bytes for it. The
//! linker proxy keeps what each link was made of ([`KeptLink`]): the
//! crate's objects and the rlibs beside the output. The objects (and rlib
//! members) whose bytes differ from the running code's are the new code;
//! they alone are linked into a small shared library, their references to
//! the rest of the program bound to the running program's own addresses
//! (`--defsym=name=address`), so the library must be mapped
//! where it was linked, near the executable. Objects the new code needs
//! that the program lacks (a function no old code called, a thread-local)
//! are linked in too.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use object::read::archive::ArchiveFile;
use object::{Object, ObjectSymbol};

pub use crate::kept::KeptLink;

/// An object's name without the part that changes with every compile
/// session: `<stem>.<cgu>.<session>.rcgu.o` becomes `<stem>.<cgu>`.
pub fn object_key(name: &str) -> &str {
    match name
        .strip_suffix(".rcgu.o")
        .and_then(|n| n.rsplit_once('.'))
    {
        Some((key, _session)) => key,
        None => name,
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether two files have the same bytes (a hard link of one file is).
fn same_file(a: &Path, b: &Path) -> Result<bool> {
    if crate::fs::same_inode(a, b) {
        return Ok(true);
    }
    let meta = |p: &Path| {
        std::fs::metadata(p).with_context(|| format!("failed to read `{}`", p.display()))
    };
    let (ma, mb) = (meta(a)?, meta(b)?);
    if ma.len() != mb.len() {
        return Ok(false);
    }
    Ok(crate::fs::read(a)? == crate::fs::read(b)?)
}

/// What changed between the link of the running code and a new compile.
#[derive(Debug, Default)]
pub struct Changed {
    /// The new objects (and extracted rlib members), in link order.
    pub objects: Vec<PathBuf>,
    /// The running code's versions of the changed crate objects.
    pub previous: Vec<PathBuf>,
}

/// The objects of `new` whose bytes differ from `old`'s, and the members
/// of its rlibs that differ (written out beside `new`'s kept copies).
pub fn changed(old: &KeptLink, new: &KeptLink) -> Result<Changed> {
    let mut out = Changed::default();
    let old_objects: HashMap<String, &PathBuf> = old
        .objects
        .iter()
        .map(|p| (object_key(&file_name(p)).to_owned(), p))
        .collect();
    for p in &new.objects {
        match old_objects.get(object_key(&file_name(p))) {
            Some(o) if new.same_origin(p, old, o) || same_file(o, p)? => {}
            Some(o) => {
                out.objects.push(p.clone());
                out.previous.push((*o).clone());
            }
            None => out.objects.push(p.clone()),
        }
    }
    let old_rlibs: HashMap<String, &PathBuf> =
        old.rlibs.iter().map(|p| (file_name(p), p)).collect();
    for rlib in &new.rlibs {
        let Some(before) = old_rlibs.get(&file_name(rlib)) else {
            continue;
        };
        if new.same_origin(rlib, old, before) || same_file(before, rlib)? {
            continue;
        }
        out.objects.extend(changed_members(before, rlib, &new.dir)?);
    }
    Ok(out)
}

/// The object members of the archive `new` that `old` lacks or has with
/// other bytes, written into `dir`.
fn changed_members(old: &Path, new: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    let old_data = crate::fs::read(old)?;
    let new_data = crate::fs::read(new)?;
    let members = |data: &[u8]| -> Result<BTreeMap<String, (String, std::ops::Range<usize>)>> {
        let archive = ArchiveFile::parse(data)?;
        let mut out = BTreeMap::new();
        for m in archive.members() {
            let m = m?;
            let name = String::from_utf8_lossy(m.name()).into_owned();
            if !name.ends_with(".o") {
                continue;
            }
            let (start, len) = m.file_range();
            out.insert(
                object_key(&name).to_owned(),
                (name, start as usize..(start + len) as usize),
            );
        }
        Ok(out)
    };
    let before = members(&old_data)
        .with_context(|| format!("failed to read the archive `{}`", old.display()))?;
    let after = members(&new_data)
        .with_context(|| format!("failed to read the archive `{}`", new.display()))?;
    let stem = file_name(new);
    let mut out = Vec::new();
    for (key, (name, range)) in &after {
        let bytes = &new_data[range.clone()];
        if before
            .get(key)
            .is_some_and(|(_, r)| &old_data[r.clone()] == bytes)
        {
            continue;
        }
        let path = dir.join(format!("{stem}-{name}"));
        std::fs::write(&path, bytes)
            .with_context(|| format!("failed to write `{}`", path.display()))?;
        out.push(path);
    }
    Ok(out)
}

/// The global symbols an object defines and the ones it uses.
#[derive(Debug, Default)]
struct Symbols {
    defined: BTreeSet<String>,
    undefined: BTreeSet<String>,
}

fn symbols(path: &Path) -> Result<Symbols> {
    let data = crate::fs::read(path)?;
    let file = object::File::parse(&*data)
        .with_context(|| format!("failed to read the object `{}`", path.display()))?;
    let mut out = Symbols::default();
    for sym in file.symbols() {
        if sym.is_local() {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        if sym.is_undefined() {
            out.undefined.insert(name.to_owned());
        } else {
            out.defined.insert(name.to_owned());
        }
    }
    Ok(out)
}

/// Where the running program has a symbol: its address, or `None` when it
/// has none (or several) by that name.
pub trait Running {
    fn address(&self, name: &str) -> Option<u64>;
    /// A thread-local of the executable: reached by an offset fixed at its
    /// link, so new code gets the defining object and reload rewrites the
    /// offset.
    fn is_thread_local(&self, name: &str) -> bool;
    /// Whether the executable binds it from a shared library.
    fn imports(&self, name: &str) -> bool;
}

/// What a patch is linked from.
#[derive(Debug, Default)]
pub struct Resolved {
    /// `changed` plus the objects defining what they need that the
    /// program lacks.
    pub objects: Vec<PathBuf>,
    /// The program's addresses their other references bind to.
    pub bound: BTreeMap<String, u64>,
    /// What they define that the running program has: the code to patch,
    /// the roots the link keeps (with what they reach) when it drops the
    /// rest, such as code that was dead in the program and the statics
    /// only it used.
    pub roots: BTreeSet<String>,
}

/// Where the kept link defines each global symbol: its crate objects,
/// then the members of its rlibs (by each archive's symbol index), which
/// are written out when one is needed.
struct Index<'a> {
    kept: &'a KeptLink,
    objects: HashMap<String, PathBuf>,
    members: HashMap<String, (usize, u64)>,
    archives: Vec<Vec<u8>>,
}

impl<'a> Index<'a> {
    fn new(kept: &'a KeptLink) -> Result<Index<'a>> {
        let mut objects = HashMap::new();
        for p in &kept.objects {
            for name in symbols(p)?.defined {
                objects.entry(name).or_insert_with(|| p.clone());
            }
        }
        let mut members = HashMap::new();
        let mut archives = Vec::new();
        for (i, rlib) in kept.rlibs.iter().enumerate() {
            let data = crate::fs::read(rlib)?;
            {
                let archive = ArchiveFile::parse(&*data)
                    .with_context(|| format!("failed to read the archive `{}`", rlib.display()))?;
                for sym in archive.symbols()?.into_iter().flatten() {
                    let sym = sym?;
                    let name = String::from_utf8_lossy(sym.name()).into_owned();
                    members.entry(name).or_insert((i, sym.offset().0));
                }
            }
            archives.push(data);
        }
        Ok(Index {
            kept,
            objects,
            members,
            archives,
        })
    }

    /// The object defining `name`, an rlib member written out if need be.
    fn find(&self, name: &str) -> Result<Option<PathBuf>> {
        if let Some(p) = self.objects.get(name) {
            return Ok(Some(p.clone()));
        }
        let Some(&(i, offset)) = self.members.get(name) else {
            return Ok(None);
        };
        let archive = ArchiveFile::parse(&*self.archives[i])?;
        let member = archive.member(object::read::archive::ArchiveOffset(offset))?;
        let path = self.kept.dir.join(format!(
            "{}-{}",
            file_name(&self.kept.rlibs[i]),
            String::from_utf8_lossy(member.name())
        ));
        if !path.exists() {
            std::fs::write(&path, member.data(&*self.archives[i])?)
                .with_context(|| format!("failed to write `{}`", path.display()))?;
        }
        Ok(Some(path))
    }
}

/// The objects to link, the addresses they bind to and what they must
/// keep: see [`Resolved`]. The rlibs are not given to the linker: it
/// would take members out of them for symbols the program has (symbols
/// it is given are defined only after the archives are searched),
/// so the members new code needs are found here, like the objects.
pub fn resolve(changed: &[PathBuf], kept: &KeptLink, running: &dyn Running) -> Result<Resolved> {
    let mut set: Vec<PathBuf> = changed.to_vec();
    let mut seen: BTreeSet<String> = set.iter().map(|p| file_name(p)).collect();
    let mut cache: HashMap<PathBuf, Symbols> = HashMap::new();
    let mut index: Option<Index<'_>> = None;
    let mut bound = BTreeMap::new();
    let mut done = 0;
    loop {
        let mut missing = BTreeSet::new();
        for p in &set[done..] {
            if !cache.contains_key(p) {
                cache.insert(p.clone(), symbols(p)?);
            }
        }
        done = set.len();
        let defined: BTreeSet<&String> = set.iter().flat_map(|p| &cache[p].defined).collect();
        for p in &set {
            for name in &cache[p].undefined {
                if defined.contains(name) || bound.contains_key(name) {
                    continue;
                }
                if running.is_thread_local(name) {
                    missing.insert(name.clone());
                } else if let Some(addr) = running.address(name) {
                    bound.insert(name.clone(), addr);
                } else if !running.imports(name) {
                    missing.insert(name.clone());
                }
            }
        }
        if missing.is_empty() {
            break;
        }
        // Which kept object defines each: read once, only when needed.
        let index = match &mut index {
            Some(i) => i,
            None => index.insert(Index::new(kept)?),
        };
        let mut added = Vec::new();
        for m in &missing {
            if let Some(p) = index.find(m)?
                && seen.insert(file_name(&p))
            {
                added.push(p);
            }
        }
        if added.is_empty() {
            // The rest come from rlibs or shared libraries, or nowhere
            // (then the link says so).
            break;
        }
        set.extend(added);
    }
    let roots = set
        .iter()
        .flat_map(|p| &cache[p].defined)
        .filter(|name| running.address(name).is_some())
        .cloned()
        .collect();
    Ok(Resolved {
        objects: set,
        bound,
        roots,
    })
}

/// The linker's own arguments binding each name to its address in the
/// program (`--defsym`) and keeping the roots (`--undefined`), one
/// a line, for a response file: rust-lld, mold and GNU ld all read them,
/// where mold takes no symbol assignments in a linker script.
pub fn bindings(bound: &BTreeMap<String, u64>, roots: &BTreeSet<String>) -> String {
    let mut text: String = bound
        .iter()
        .map(|(name, addr)| format!("--defsym={name}={addr:#x}\n"))
        .collect();
    for name in roots {
        text.push_str(&format!("--undefined={name}\n"));
    }
    text
}

/// The driver's arguments that link `objects` into the shared library
/// `out`: the kept link's, without the crate's objects and rlibs
/// ([`resolve`] chose what the patch needs of them), rustc's temporary
/// files, `-pie` and the shared libraries (the program has them loaded,
/// and the loader binds new code to them). `--gc-sections` stays: what
/// `bindings` does not keep or reach goes.
pub fn link_args(
    kept: &KeptLink,
    objects: &[PathBuf],
    bindings: &Path,
    base: Option<u64>,
    local_exec_tls: bool,
    out: &Path,
) -> Vec<String> {
    let out_dir = kept.output.parent().unwrap_or(Path::new("/"));
    let temp = |a: &str| {
        kept.temps.iter().any(|t| t.as_os_str() == a)
            || Path::new(a).strip_prefix(out_dir).is_ok_and(|rel| {
                rel.components()
                    .next()
                    .is_some_and(|c| c.as_os_str().to_string_lossy().starts_with("rustc"))
            })
    };
    let objects_kept: BTreeSet<String> = kept
        .objects
        .iter()
        .chain(&kept.rlibs)
        .map(|p| p.display().to_string())
        .collect();
    let mut args: Vec<String> = objects.iter().map(|p| p.display().to_string()).collect();
    // rustc's own rust-lld (its `gcc-ld` dir on the driver's path) links
    // the patch whatever linker the program chose: mold and GNU ld place a
    // shared library at 0 whatever base they are given.
    let own_lld = kept
        .args
        .iter()
        .any(|a| a.starts_with("-B") && a.trim_end_matches('/').ends_with("gcc-ld"));
    let mut it = kept.args.iter().peekable();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" => {
                it.next();
                continue;
            }
            "-L" if it.peek().is_some_and(|p| temp(p)) => {
                it.next();
                continue;
            }
            "-pie" => continue,
            _ if own_lld && a.starts_with("-fuse-ld=") => continue,
            _ => {}
        }
        if objects_kept.contains(a) || temp(a) || a.ends_with(".so") || a.contains(".so.") {
            continue;
        }
        args.push(a.clone());
    }
    if own_lld {
        args.push("-fuse-ld=lld".into());
    }
    args.push(format!("-Wl,@{}", bindings.display()));
    args.extend(["-shared", "-Wl,--emit-relocs"].map(String::from));
    if let Some(base) = base {
        args.push(format!("-Wl,--image-base={base:#x}"));
    }
    if local_exec_tls {
        args.push("-Wl,--noinhibit-exec".into());
    }
    args.push("-o".into());
    args.push(out.display().to_string());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_matched_without_their_session() {
        assert_eq!(
            object_key("game-1f47.ca9a2vpkro9bl4vckbygys107.1b512ws.rcgu.o"),
            "game-1f47.ca9a2vpkro9bl4vckbygys107"
        );
        assert_eq!(object_key("symbols.o"), "symbols.o");
    }

    #[test]
    fn the_thin_link_drops_what_the_executable_alone_needs() {
        let kept = KeptLink {
            version: KeptLink::VERSION,
            driver: "cc".into(),
            args: [
                "-m64",
                "/t/deps/rustcAbC/symbols.o",
                "/k/game-1.a.s.rcgu.o",
                "/k/game-1.b.s.rcgu.o",
                "-Wl,-Bstatic",
                "/k/libengine-2.rlib",
                "-Wl,-Bdynamic",
                "/b/libdyndev_bundle_1.so",
                "-lc",
                "-L",
                "/t/deps/rustcAbC/raw-dylibs",
                "-o",
                "/t/deps/game-1",
                "-Wl,--gc-sections",
                "-pie",
                "-Wl,-rpath,/b",
            ]
            .map(String::from)
            .to_vec(),
            objects: vec!["/k/game-1.a.s.rcgu.o".into(), "/k/game-1.b.s.rcgu.o".into()],
            rlibs: vec!["/k/libengine-2.rlib".into()],
            output: "/t/deps/game-1".into(),
            linked: None,
            dir: "/k".into(),
            temps: Vec::new(),
            path_env: None,
            shared: Vec::new(),
            origins: Default::default(),
        };
        let args = link_args(
            &kept,
            &["/k/game-1.b.s.rcgu.o".into()],
            Path::new("/k/bind.args"),
            Some(0x5000_0000),
            true,
            Path::new("/p/patch.so"),
        );
        assert_eq!(
            args.join(" "),
            "/k/game-1.b.s.rcgu.o -m64 -Wl,-Bstatic -Wl,-Bdynamic -lc \
             -Wl,--gc-sections -Wl,-rpath,/b -Wl,@/k/bind.args -shared -Wl,--emit-relocs \
             -Wl,--image-base=0x50000000 -Wl,--noinhibit-exec -o /p/patch.so"
        );
    }

    #[test]
    fn the_patch_links_with_rustcs_own_lld_whatever_the_program_chose() {
        let kept = KeptLink {
            version: KeptLink::VERSION,
            driver: "cc".into(),
            args: [
                "/k/game-1.a.s.rcgu.o",
                "-B/r/lib/rustlib/x86_64-unknown-linux-gnu/bin/gcc-ld",
                "-fuse-ld=lld",
                "-fuse-ld=mold",
                "-o",
                "/t/deps/game-1",
            ]
            .map(String::from)
            .to_vec(),
            objects: vec!["/k/game-1.a.s.rcgu.o".into()],
            rlibs: Vec::new(),
            output: "/t/deps/game-1".into(),
            linked: None,
            dir: "/k".into(),
            temps: Vec::new(),
            path_env: None,
            shared: Vec::new(),
            origins: Default::default(),
        };
        let args = link_args(
            &kept,
            &["/k/game-1.a.s.rcgu.o".into()],
            Path::new("/k/bind.args"),
            None,
            false,
            Path::new("/p/patch.so"),
        );
        let fuse: Vec<&String> = args.iter().filter(|a| a.starts_with("-fuse-ld=")).collect();
        assert_eq!(fuse, ["-fuse-ld=lld"]);
    }

    #[test]
    fn bindings_are_linker_arguments_one_a_line() {
        let bound = BTreeMap::from([("_ZN4game4tick17h0E".to_owned(), 0x1234u64)]);
        let roots = BTreeSet::from(["_ZN4game4draw17h1E".to_owned()]);
        assert_eq!(
            bindings(&bound, &roots),
            "--defsym=_ZN4game4tick17h0E=0x1234\n--undefined=_ZN4game4draw17h1E\n"
        );
    }
}
