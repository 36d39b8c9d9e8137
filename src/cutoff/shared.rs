//! Workspace libraries as shared libraries for programs.
//!
//! A workspace library's rlib holds its code and every generic instance it
//! made (a small axum service: 21 MB), and each program (every test binary
//! above all) links it again. The linker proxy links the rlib once into a
//! shared library per version of the library, and each program against
//! that, through a symbolic link of its own:
//!
//! ```text
//! <store>/so/v/lib<stem>-<version>.so     one per compile of the library
//! <store>/so/v/lib<stem>-<version>.made   its size and time, as linked
//! <store>/so/lib<stem>~<program>~<interface>.so -> v/lib<stem>-<version>.so
//! ```
//!
//! The program needs its own link's name, so a program the early cutoff
//! reuses is pointed at the library's new version by replacing that link,
//! without linking anything; a program left behind keeps the version it
//! was checked against.
//!
//! The name holds the library's interface (the hash of the metadata the
//! program was compiled against), and a link is only ever pointed at
//! versions of its own interface: a body edit repoints it; an edit that
//! changes a type's layout under the same symbol names makes another
//! name. So a program never loads code compiled for another layout. One
//! whose new link was interrupted keeps the library it had; once the new
//! link succeeds, the program's links to other interfaces go
//! ([`retire`]), and a copy of the old program stops at its start
//! ("cannot open shared object file") instead of running.
//!
//! A version is used only as it was linked (its `.made` record): one
//! missing or damaged is linked again, and the driver has the programs
//! that load one linked again before cargo runs ([`repair`]).
//!
//! The shared library is only made when the program's link has no
//! static code but the standard library's and the workspace libraries'
//! (no third-party rlib linked statically, no native library): code they
//! hold would be linked once into the executable and missing from the
//! shared library. When the link against it fails, the proxy links the
//! rlib statically, as rustc asked.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::contract::FileId;
use crate::kept::KeptLink;
use crate::rustc_args::{crate_of_stem, unit_stem_of};
use crate::state::{Damage, Stamp};

/// The libraries every Rust executable links on Linux: rustc's own choice.
const SYSTEM_LIBS: &[&str] = &["gcc_s", "util", "rt", "pthread", "m", "dl", "c"];

/// The directory of the shared libraries and their links.
pub fn dir(root: &Path) -> PathBuf {
    root.join("so")
}

/// The files of one version, by extension: the library, the record of it
/// as linked, the rlib's facts, and why it could not be linked.
const VERSION_FILES: &[&str] = &["so", "made", "facts", "failed"];

/// The link the program `output` needs for the library `rlib`, whose
/// interface is `interface` ([`interface`]).
pub fn link_name(rlib: &Path, output: &Path, interface: &str) -> Option<String> {
    let stem = unit_stem_of(rlib)?;
    let exe = output.file_name()?.to_string_lossy();
    Some(format!("{stem}~{exe}~{interface}.so"))
}

/// The library and program a link's name is for, without the interface:
/// `lib<stem>~<program>`.
fn owner_of(link: &str) -> Option<&str> {
    let (owner, _interface) = link.strip_suffix(".so")?.rsplit_once('~')?;
    owner.contains('~').then_some(owner)
}

/// The indices of the workspace libraries' rlibs among a link's
/// arguments, when all its other static code is the standard library's:
/// `None` when the link holds anything a shared library of the workspace
/// libraries could not find (third-party rlibs, native libraries).
pub fn member_rlibs(args: &[String], out_dir: &Path, members: &[String]) -> Option<Vec<usize>> {
    let mut found = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let path = Path::new(a);
        if a.ends_with(".rlib") {
            if !path
                .parent()
                .is_some_and(|p| crate::fs::same_dir(p, out_dir))
            {
                // The standard library's, or a bundle's facade.
                continue;
            }
            let stem = unit_stem_of(path)?;
            if !members.iter().any(|m| m == crate_of_stem(stem)) {
                return None;
            }
            found.push(i);
        } else if a.ends_with(".a") {
            return None;
        } else if let Some(lib) = a.strip_prefix("-l")
            && !SYSTEM_LIBS.contains(&lib)
        {
            return None;
        }
    }
    (!found.is_empty()).then_some(found)
}

/// Whether a linker flag is in force at `index` of a link's arguments:
/// the last of `on` or `off` before it.
fn flag_at(args: &[String], index: usize, on: &[&str], off: &[&str]) -> bool {
    let mut state = false;
    for a in &args[..index] {
        if let Some(opts) = a.strip_prefix("-Wl,") {
            for o in opts.split(',') {
                if on.contains(&o) {
                    state = true;
                } else if off.contains(&o) {
                    state = false;
                }
            }
        }
    }
    state
}

/// Whether `-Wl,-Bstatic` is in force at `index`.
fn static_at(args: &[String], index: usize) -> bool {
    flag_at(
        args,
        index,
        &["-Bstatic", "-static", "-dn", "-non_shared"],
        &["-Bdynamic", "-dy", "-call_shared"],
    )
}

/// Whether `-Wl,--as-needed` is in force at `index`.
fn as_needed_at(args: &[String], index: usize) -> bool {
    flag_at(args, index, &["--as-needed"], &["--no-as-needed"])
}

/// The version of the library `rlib` as it is now, linked if need be
/// (again, when it is not as it was linked): a shared library of all its
/// code, linked as the program's `args` link (same driver, linker and
/// libraries).
pub fn version(root: &Path, driver: &str, args: &[String], rlib: &Path) -> Result<PathBuf> {
    let (stem, tag) = version_tag(rlib)?;
    let stem = stem.as_str();
    let versions = dir(root).join("v");
    let so = versions.join(format!("{stem}-{tag}.so"));
    if damage(&so).is_none() {
        return Ok(so);
    }
    crate::fs::create_dir_all(&versions)?;
    let lock_path = versions.join(".lock");
    let lock = std::fs::File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .with_context(|| format!("failed to open `{}`", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("failed to lock `{}`", lock_path.display()))?;
    if damage(&so).is_none() {
        return Ok(so);
    }
    // Whatever is there is not what the link made.
    let _ = std::fs::remove_file(&so);
    let _ = std::fs::remove_file(so.with_extension("made"));
    // One failure is enough: the other test binaries link statically.
    let failed = versions.join(format!("{stem}-{tag}.failed"));
    if let Ok(why) = std::fs::read_to_string(&failed) {
        anyhow::bail!("{why}");
    }
    if let Some(why) = facts(root, rlib)?.gathered {
        let why = format!("`{stem}` {why}");
        let _ = crate::fs::write_atomic(&failed, why.as_bytes());
        anyhow::bail!("{why}");
    }
    let tmp = versions.join(format!(".{stem}-{tag}.{}.tmp", std::process::id()));
    let mut cmd = std::process::Command::new(driver);
    cmd.args(shared_library_args(args, rlib, &tmp));
    let start = std::time::Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("failed to run `{driver}`"))?;
    // `compare` and the benchmarks count every link.
    crate::contract::LinkRecord {
        output: so.clone(),
        linker: "shared library".into(),
        millis: start.elapsed().as_millis() as u64,
        max_rss_kib: 0,
        success: out.status.success(),
    }
    .log();
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        let why = format!(
            "linking `{stem}` as a shared library failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let _ = crate::fs::write_atomic(&failed, why.as_bytes());
        anyhow::bail!("{why}");
    }
    std::fs::rename(&tmp, &so).with_context(|| format!("failed to write `{}`", so.display()))?;
    // Recorded once it is in place: a version without a record is linked
    // again.
    let made = Stamp::of(&so).with_context(|| format!("`{}` is missing", so.display()))?;
    crate::fs::write_atomic(&so.with_extension("made"), &serde_json::to_vec(&made)?)?;
    remove_unlinked_versions(root, stem, &so);
    Ok(so)
}

/// What is wrong with the version `so` against the record of it as
/// linked; `None` when it is as linked. A `stat` and a small read: size
/// and time, as for the bundle's libraries.
pub fn damage(so: &Path) -> Option<Damage> {
    let record = so.with_extension("made");
    let found = Stamp::of(so);
    let made = std::fs::read(&record)
        .ok()
        .and_then(|b| serde_json::from_slice::<Stamp>(&b).ok());
    let missing = |file: &Path| Damage {
        file: file.to_path_buf(),
        made: Stamp::default(),
        found: None,
    };
    match made {
        Some(made) => Damage::check(so, made, found),
        None if found.is_none() => Some(missing(so)),
        // A link that did not finish, or the record is gone.
        None => Some(missing(&record)),
    }
}

/// The interface of the library `rlib` as it is now (the hash of its
/// metadata), which the names of programs' links to it hold.
pub fn interface(root: &Path, rlib: &Path) -> Result<String> {
    let interface = facts(root, rlib)?.interface;
    if interface.is_empty() {
        anyhow::bail!("`{}` holds no metadata", rlib.display());
    }
    Ok(interface)
}

/// The facts of the rlib as it is now, read once per version of it.
fn facts(root: &Path, rlib: &Path) -> Result<super::RlibFacts> {
    let (stem, tag) = version_tag(rlib)?;
    let cache = dir(root).join("v").join(format!("{stem}-{tag}.facts"));
    if let Some(facts) = std::fs::read(&cache)
        .ok()
        .and_then(|t| serde_json::from_slice::<super::RlibFacts>(&t).ok())
        .filter(|f| !f.interface.is_empty())
    {
        return Ok(facts);
    }
    let facts = super::rlib::facts(rlib)?;
    let _ = crate::fs::write_atomic(&cache, &serde_json::to_vec(&facts)?);
    Ok(facts)
}

/// The library's stem and a tag for the rlib as it is now.
fn version_tag(rlib: &Path) -> Result<(String, String)> {
    let id = crate::contract::FileId::of(rlib)
        .with_context(|| format!("`{}` is missing", rlib.display()))?;
    let stem = unit_stem_of(rlib).context("not an rlib")?;
    Ok((stem.to_owned(), tag_of(id)))
}

fn tag_of(id: crate::contract::FileId) -> String {
    crate::fs::StableHasher::default()
        .write(&id.dev.to_le_bytes())
        .write(&id.ino.to_le_bytes())
        .write(&id.len.to_le_bytes())
        .write(&id.mtime_ns.to_le_bytes())
        .finish_hex()
}

/// An rlib left as it was but touched (`was` its identity before): its
/// shared version, if one was made and is as it was linked, stands for it
/// still. A damaged one is linked again when a program needs it.
pub fn carry_version(root: &Path, rlib: &Path, was: FileId) {
    let Ok((stem, tag)) = version_tag(rlib) else {
        return;
    };
    let versions = dir(root).join("v");
    let from = versions.join(format!("{stem}-{}.so", tag_of(was)));
    let to = versions.join(format!("{stem}-{tag}.so"));
    let carried: &[&str] = if damage(&from).is_none() {
        &["so", "made", "facts"]
    } else {
        &["facts"]
    };
    for ext in carried {
        let (from, to) = (from.with_extension(ext), to.with_extension(ext));
        if from.exists() && !to.exists() {
            let _ = std::fs::hard_link(&from, &to);
        }
    }
}

/// The driver's arguments that link all of `rlib` into the shared library
/// `out`, from those of a test binary's link: its linker, search paths,
/// shared libraries and the standard library's rlibs; not its objects,
/// the other workspace libraries (found at run time), or what makes an
/// executable.
fn shared_library_args(args: &[String], rlib: &Path, out: &Path) -> Vec<String> {
    let output = crate::kept::output_of(args).unwrap_or_default();
    let out_dir = output.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut kept = Vec::new();
    let mut skip_next = false;
    for a in args {
        if skip_next {
            skip_next = false;
            continue;
        }
        let path = Path::new(a);
        let in_out_dir = path.is_absolute()
            && path
                .ancestors()
                .skip(1)
                .take(2)
                .any(|p| crate::fs::same_dir(p, &out_dir));
        match a.as_str() {
            "-o" => skip_next = true,
            "-pie" | "-static-pie" | "-Wl,--gc-sections" => {}
            _ if a.ends_with(".o") || a.ends_with(".rcgu.o") => {}
            _ if in_out_dir && (a.ends_with(".rlib") || a.ends_with(".o")) => {}
            _ => kept.push(a.clone()),
        }
    }
    let mut out_args = vec![
        "-shared".to_owned(),
        "-o".to_owned(),
        out.display().to_string(),
        "-Wl,--whole-archive".to_owned(),
        rlib.display().to_string(),
        "-Wl,--no-whole-archive".to_owned(),
    ];
    // The rlib is first: the archives after it serve what it needs.
    out_args.extend(kept);
    out_args
}

/// Removes the versions of `stem` no program's link names, but `keep`.
fn remove_unlinked_versions(root: &Path, stem: &str, keep: &Path) {
    let so_dir = dir(root);
    let linked: Vec<PathBuf> = std::fs::read_dir(&so_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|t| so_dir.join(t))
        .collect();
    let prefix = format!("{stem}-");
    for entry in std::fs::read_dir(so_dir.join("v"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let so = path.with_extension("so");
        let of_a_version = path
            .extension()
            .is_some_and(|e| VERSION_FILES.iter().any(|v| e == *v));
        if name.starts_with(&prefix) && of_a_version && so != keep && !linked.contains(&so) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Removes the links of the programs and libraries of `links` to the
/// libraries' other interfaces, once a link of the programs against
/// `links` succeeded: a copy of a program as it was then stops at its
/// start, naming the link, instead of running code compiled for another
/// layout. Until then, a program whose new link was interrupted keeps
/// working as it was.
pub fn retire(root: &Path, links: &[String]) {
    let owners: Vec<&str> = links.iter().filter_map(|l| owner_of(l)).collect();
    for entry in std::fs::read_dir(dir(root)).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !links.contains(&name) && owner_of(&name).is_some_and(|o| owners.contains(&o)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Removes what links and writes of processes that ended left in the
/// shared libraries' dirs: a killed link's half-made library, a link
/// never renamed into place. A process that runs still owns its own; one
/// killed but not yet reaped (a zombie) does not.
pub fn remove_leftovers(root: &Path) {
    let so_dir = dir(root);
    for d in [so_dir.join("v"), so_dir] {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let owner = crate::fs::temporary_owner(&name.to_string_lossy());
            if owner.is_some_and(|pid| !crate::process::runs(pid)) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// The programs whose links to shared versions are not as dyndev made
/// them (a version missing, truncated or written to, a link gone), by
/// crate name, with what is wrong. Nothing changed for cargo, which would
/// start them as they are: each one's binary is removed, so that cargo
/// runs its compile, and the cutoff points it at versions linked again
/// (or links it again). `links` is where the kept links are. Run by the
/// driver with the state lock held, before cargo.
pub fn repair(root: &Path, links: &Path) -> Vec<(String, Vec<Damage>)> {
    let mut repaired = Vec::new();
    for entry in std::fs::read_dir(links).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Some(kept) = std::fs::read(&path)
            .ok()
            .and_then(|t| serde_json::from_slice::<KeptLink>(&t).ok())
        else {
            continue;
        };
        // Only the binary that link made: another one is cargo's to make.
        let same = |a: FileId, b: FileId| (a.dev, a.ino) == (b.dev, b.ino);
        if kept.shared.is_empty()
            || !kept
                .linked
                .zip(FileId::of(&kept.output))
                .is_some_and(|(a, b)| same(a, b))
        {
            continue;
        }
        let damage = link_damage(root, &kept.shared);
        if damage.is_empty() || std::fs::remove_file(&kept.output).is_err() {
            continue;
        }
        let name = kept
            .output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = name.rsplit_once('-').map_or(name.as_str(), |(n, _)| n);
        repaired.push((name.to_owned(), damage));
    }
    repaired
}

/// What is wrong with each of a program's `links` and the version it
/// names.
fn link_damage(root: &Path, links: &[String]) -> Vec<Damage> {
    let so_dir = dir(root);
    links
        .iter()
        .filter_map(|name| {
            let link = so_dir.join(name);
            match std::fs::read_link(&link) {
                Ok(target) => damage(&so_dir.join(target)),
                Err(_) => Some(Damage {
                    file: link,
                    made: Stamp::default(),
                    found: None,
                }),
            }
        })
        .collect()
}

/// Points the program's link for a library at `version`.
pub fn point(root: &Path, link: &str, version: &Path) -> Result<()> {
    let so_dir = dir(root);
    let target = version.strip_prefix(&so_dir).unwrap_or(version);
    let path = so_dir.join(link);
    if std::fs::read_link(&path).ok().as_deref() == Some(target) {
        return Ok(());
    }
    let tmp = so_dir.join(format!(".{link}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("failed to create `{}`", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("failed to write `{}`", path.display()))
}

/// A program's link against shared versions of its workspace libraries:
/// the arguments, and the links they name. `None` when its link must stay
/// static.
pub fn dynamic_link(
    root: &Path,
    driver: &str,
    args: &[String],
    members: &[String],
) -> Result<Option<(Vec<String>, Vec<String>)>> {
    let Some(output) = crate::kept::output_of(args) else {
        return Ok(None);
    };
    let out_dir = output.parent().unwrap_or(Path::new("/")).to_path_buf();
    let Some(indices) = member_rlibs(args, &out_dir, members) else {
        return Ok(None);
    };
    // A symbol both the executable's objects and a library define fails a
    // static link; with the library shared, the executable's would win in
    // silence. Such a link stays static, and fails as cargo's does.
    let own = super::symbol_names(
        args.iter().filter(|a| a.ends_with(".o")).map(Path::new),
        false,
        |s| {
            use object::ObjectSymbol;
            s.is_global() && s.is_definition() && !s.is_weak()
        },
    );
    for &i in &indices {
        let rlib = Path::new(&args[i]);
        if facts(root, rlib)?.defined.iter().any(|s| own.contains(s)) {
            return Ok(None);
        }
    }
    let mut names = Vec::new();
    for &i in &indices {
        let rlib = Path::new(&args[i]);
        let version = version(root, driver, args, rlib)?;
        let interface = interface(root, rlib)?;
        let name = link_name(rlib, &output, &interface).context("an rlib without a name")?;
        point(root, &name, &version)?;
        names.push((i, name));
    }
    let new_args = against_links(args, &names, &dir(root));
    Ok(Some((
        new_args,
        names.into_iter().map(|(_, n)| n).collect(),
    )))
}

/// The link's arguments with the rlib at each index replaced by the link
/// named beside it, in `so_dir`.
fn against_links(args: &[String], links: &[(usize, String)], so_dir: &Path) -> Vec<String> {
    let mut new_args = Vec::with_capacity(args.len() + 4 * links.len() + 2);
    for (i, a) in args.iter().enumerate() {
        let Some((_, name)) = links.iter().find(|(at, _)| *at == i) else {
            new_args.push(a.clone());
            continue;
        };
        // Needed whether the executable uses it or not: the other
        // workspace libraries' shared versions find their symbols in it.
        let (stat, as_needed) = (static_at(args, i), as_needed_at(args, i));
        if stat {
            new_args.push("-Wl,-Bdynamic".into());
        }
        if as_needed {
            new_args.push("-Wl,--no-as-needed".into());
        }
        new_args.push(format!("-l:{name}"));
        if as_needed {
            new_args.push("-Wl,--as-needed".into());
        }
        if stat {
            new_args.push("-Wl,-Bstatic".into());
        }
    }
    new_args.push(format!("-L{}", so_dir.display()));
    new_args.push(format!("-Wl,-rpath,{}", so_dir.display()));
    new_args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn only_links_without_other_static_code_go_shared() {
        let members = s(&["shop", "core_lib"]);
        let out = Path::new("/t/deps");
        let args = s(&[
            "/t/deps/api-1.a.rcgu.o",
            "-Wl,-Bstatic",
            "/sys/lib/libtest-9.rlib",
            "/t/deps/libshop-1.rlib",
            "/t/deps/libcore_lib-2.rlib",
            "/b/lib/libaxum-3.rlib",
            "-Wl,-Bdynamic",
            "/b/lib/libdyndev_bundle_1.so",
            "-lgcc_s",
            "-lc",
        ]);
        assert_eq!(member_rlibs(&args, out, &members), Some(vec![3, 4]));
        let mut third_party = args.clone();
        third_party.insert(3, "/t/deps/libregex-4.rlib".into());
        assert_eq!(member_rlibs(&third_party, out, &members), None);
        let mut native = args.clone();
        native.push("-lsqlite3".into());
        assert_eq!(member_rlibs(&native, out, &members), None);
        assert!(static_at(&args, 3));
        assert!(!static_at(&args, 8));
    }

    #[test]
    fn a_link_names_each_library_through_its_own_link_in_the_mode_it_found() {
        let args = s(&[
            "/t/deps/api-1.a.rcgu.o",
            "-Wl,--as-needed",
            "-Wl,-Bstatic",
            "/t/deps/libshop-1.rlib",
            "/sys/lib/libtest-9.rlib",
            "-Wl,-Bdynamic",
            "/b/lib/libdyndev_bundle_1.so",
        ]);
        let got = against_links(
            &args,
            &[(3, "libshop-1~api-1.so".into())],
            Path::new("/s/so"),
        );
        assert_eq!(
            got,
            s(&[
                "/t/deps/api-1.a.rcgu.o",
                "-Wl,--as-needed",
                "-Wl,-Bstatic",
                "-Wl,-Bdynamic",
                "-Wl,--no-as-needed",
                "-l:libshop-1~api-1.so",
                "-Wl,--as-needed",
                "-Wl,-Bstatic",
                "/sys/lib/libtest-9.rlib",
                "-Wl,-Bdynamic",
                "/b/lib/libdyndev_bundle_1.so",
                "-L/s/so",
                "-Wl,-rpath,/s/so",
            ])
        );
    }

    #[test]
    fn a_shared_library_takes_the_links_libraries_not_its_objects() {
        let args = s(&[
            "-m64",
            "/t/deps/rustcX/symbols.o",
            "/t/deps/api-1.a.rcgu.o",
            "-Wl,-Bstatic",
            "/t/deps/libshop-1.rlib",
            "/sys/lib/libcompiler_builtins-5.rlib",
            "-Wl,-Bdynamic",
            "/b/lib/libdyndev_bundle_1.so",
            "-lc",
            "-B/sys/gcc-ld",
            "-fuse-ld=lld",
            "-o",
            "/t/deps/api-1",
            "-Wl,--gc-sections",
            "-pie",
            "-nodefaultlibs",
        ]);
        let got = shared_library_args(
            &args,
            Path::new("/t/deps/libshop-1.rlib"),
            Path::new("/s/x.so"),
        );
        assert_eq!(
            got,
            s(&[
                "-shared",
                "-o",
                "/s/x.so",
                "-Wl,--whole-archive",
                "/t/deps/libshop-1.rlib",
                "-Wl,--no-whole-archive",
                "-m64",
                "-Wl,-Bstatic",
                "/sys/lib/libcompiler_builtins-5.rlib",
                "-Wl,-Bdynamic",
                "/b/lib/libdyndev_bundle_1.so",
                "-lc",
                "-B/sys/gcc-ld",
                "-fuse-ld=lld",
                "-nodefaultlibs",
            ])
        );
        let name = link_name(
            Path::new("/t/deps/libshop-1.rlib"),
            Path::new("/t/deps/api-1"),
            "c0ffee",
        );
        assert_eq!(name.as_deref(), Some("libshop-1~api-1~c0ffee.so"));
    }

    #[test]
    fn a_program_keeps_only_its_links_to_the_interface_it_was_linked_against() {
        let dir = tempfile::tempdir().unwrap();
        let so_dir = super::dir(dir.path());
        std::fs::create_dir_all(&so_dir).unwrap();
        let names = [
            "libshop-1~api-1~old.so",
            "libshop-1~api-1~new.so",
            "libcore-2~api-1~old.so",
            "libshop-1~web-3~old.so",
            ".libshop-1~api-1~new.so.12.tmp",
        ];
        for name in names {
            std::os::unix::fs::symlink("v/x.so", so_dir.join(name)).unwrap();
        }
        retire(
            dir.path(),
            &s(&["libshop-1~api-1~new.so", "libcore-2~api-1~old.so"]),
        );
        let mut left: Vec<String> = std::fs::read_dir(&so_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            s(&[
                ".libshop-1~api-1~new.so.12.tmp",
                "libcore-2~api-1~old.so",
                "libshop-1~api-1~new.so",
                "libshop-1~web-3~old.so",
            ])
        );
    }

    #[test]
    fn a_version_is_used_only_as_it_was_linked_and_carried_only_so() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let versions = super::dir(root).join("v");
        std::fs::create_dir_all(&versions).unwrap();
        let rlib = root.join("libshop-1.rlib");
        std::fs::write(&rlib, b"rlib").unwrap();
        let was = FileId::of(&rlib).unwrap();
        let so = versions.join(format!("libshop-1-{}.so", tag_of(was)));
        std::fs::write(&so, b"a shared library").unwrap();
        assert!(damage(&so).is_some(), "no record of its link");
        let made = Stamp::of(&so).unwrap();
        std::fs::write(
            so.with_extension("made"),
            serde_json::to_vec(&made).unwrap(),
        )
        .unwrap();
        assert_eq!(damage(&so), None);

        // Touched, the rlib stands for the same code: so does the version.
        let touch = |at: u64| {
            let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(at);
            std::fs::File::open(&rlib)
                .unwrap()
                .set_modified(time)
                .unwrap();
        };
        touch(1_000_000);
        carry_version(root, &rlib, was);
        let (_, tag) = version_tag(&rlib).unwrap();
        let carried = versions.join(format!("libshop-1-{tag}.so"));
        assert_eq!(damage(&carried), None);

        // Truncated, it is neither used nor carried.
        std::fs::File::create(&carried).unwrap();
        let truncated = damage(&carried).unwrap();
        assert_eq!(truncated.found.map(|f| f.len), Some(0));
        let was = FileId::of(&rlib).unwrap();
        touch(2_000_000);
        carry_version(root, &rlib, was);
        let (_, tag) = version_tag(&rlib).unwrap();
        let not_carried = versions.join(format!("libshop-1-{tag}.so"));
        assert!(!not_carried.exists());
        assert_eq!(damage(&not_carried).map(|d| d.file), Some(not_carried));
    }
}
