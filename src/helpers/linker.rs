//! The linker proxy: this executable, under the name `dyndev-linker`, set
//! as rustc's linker. It runs the real linker and can do two things on the
//! way:
//!
//! - for the bundle's link, export the C symbols that `-sys` crates bundle
//!   into their rlibs: rustc exports only Rust symbols from a dylib, so the
//!   proxy adds the C ones to rustc's own version script (one script, which
//!   every linker accepts) and has the linker pull in the objects that
//!   define them, as a shared library of that C code would hold them;
//! - for the closure probes of [`crate::closure`], write down the
//!   libraries rustc asks it to link, and link nothing;
//! - for `compare`, pick the real linker the mode asks for, and log each
//!   link's output, wall time and peak memory. The linker path cargo sees
//!   stays the same across modes, so switching never invalidates cargo's
//!   fingerprints;
//! - for `watch --hot`, keep what a program's link was made of (copies of
//!   the crate's objects and the rlibs beside it, and the arguments) as a [`KeptLink`], so that reload can link new code from
//!   the objects a later compile changed; and skip the link itself when
//!   only the objects are wanted.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::invoked_as;
use crate::measure::{append_json_line, run_measured};

pub const LINKER_NAME: &str = "dyndev-linker";

pub mod env {
    /// The linker mode, as JSON ([`super::LinkerMode`]).
    pub const LINKER_MODE: &str = "__CARGO_DYNDEV_LINKER_MODE";
    /// Where link records are appended, one JSON line each.
    pub const LINK_LOG: &str = "__CARGO_DYNDEV_LINK_LOG";
    /// A file of symbol names, one a line, to export from the output.
    pub const EXPORTS: &str = "__CARGO_DYNDEV_EXPORTS";
    /// The linker to run, when the user configured one; else `cc`, as rustc.
    pub const REAL_LINKER: &str = "__CARGO_DYNDEV_REAL_LINKER";
    /// Write the arguments to this file, as a JSON array, and link nothing.
    pub const RECORD_ONLY: &str = "__CARGO_DYNDEV_RECORD_ONLY";
    /// Keep each link's inputs under this directory ([`super::KeptLink`]).
    pub const KEEP: &str = "__CARGO_DYNDEV_KEEP_LINK";
    /// With `KEEP`: keep the inputs and link nothing.
    pub const KEEP_ONLY: &str = "__CARGO_DYNDEV_KEEP_ONLY";
}

/// How many kept links of one output stay on disk, newest first, unless
/// the keep dir's `.newest` file says otherwise: a running program's and
/// the ones after it, for reload (the cutoff's store needs 1).
const KEPT_LINKS: usize = 3;

/// The identity of a file: a link's output, compared with what a process
/// runs (`/proc/PID/exe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub mtime_ns: i128,
}

impl FileId {
    pub fn of(path: &Path) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileId {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        })
    }
}

/// What one link of an executable was made of, kept for reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptLink {
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
    #[serde(default)]
    pub temps: Vec<PathBuf>,
    /// The `PATH` rustc ran the linker with (it finds `rust-lld` there).
    #[serde(default)]
    pub path_env: Option<String>,
    /// The links to workspace libraries' shared versions the output was
    /// linked against instead of their rlibs ([`crate::cutoff::shared`]);
    /// `args` are the static link's.
    #[serde(default)]
    pub shared: Vec<String>,
    /// What each kept copy was copied from, as it was then, by the copy's
    /// path: two kept links whose copies came from one unchanged file
    /// (an object rustc's incremental cache served twice) hold the same
    /// bytes, with no need to read them.
    #[serde(default)]
    pub origins: BTreeMap<PathBuf, FileId>,
}

impl KeptLink {
    /// The record of the newest kept link of `output` under `root`.
    pub fn latest(root: &Path, output: &Path) -> Option<KeptLink> {
        let name = output.file_name()?.to_string_lossy().into_owned();
        let text = std::fs::read(root.join(format!("{name}.json"))).ok()?;
        serde_json::from_slice(&text).ok()
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
            .filter_map(|e| serde_json::from_slice::<KeptLink>(&std::fs::read(e.path()).ok()?).ok())
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
fn keep(
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

pub fn is_linker_invocation() -> bool {
    invoked_as().as_deref() == Some(LINKER_NAME)
}

/// How one mode links: the C compiler driver rustc would run, with the
/// linker-selecting arguments replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkerMode {
    /// A short name for tables: `rust-lld`, `mold`, `bfd`.
    pub name: String,
    /// Drop rustc's own choice (`-fuse-ld=lld` and its `-B` to the bundled
    /// `gcc-ld` dir) before adding `args`.
    pub replace_default: bool,
    /// Arguments added for the driver, such as `-fuse-ld=mold`.
    pub args: Vec<String>,
}

impl LinkerMode {
    /// rustc's default on this platform (rust-lld through `cc`).
    pub fn default_linker() -> LinkerMode {
        LinkerMode {
            name: "rust-lld".into(),
            replace_default: false,
            args: Vec::new(),
        }
    }

    /// The linkers found on `PATH`, each as a mode.
    pub fn found_on_path() -> Vec<LinkerMode> {
        let mut modes = Vec::new();
        let mut add = |program: &str, name: &str, args: Vec<String>| {
            if which::which(program).is_ok() {
                modes.push(LinkerMode {
                    name: name.into(),
                    replace_default: true,
                    args,
                });
            }
        };
        // mold forks and leaves its child to finish up; without the fork
        // its time and memory are the link's own.
        add(
            "mold",
            "mold",
            vec!["-fuse-ld=mold".into(), "-Wl,--no-fork".into()],
        );
        add("ld.lld", "ld.lld", vec!["-fuse-ld=lld".into()]);
        add("ld.gold", "gold", vec!["-fuse-ld=gold".into()]);
        add("ld.bfd", "bfd", vec!["-fuse-ld=bfd".into()]);
        if let Ok(wild) = which::which("wild") {
            modes.push(LinkerMode {
                name: "wild".into(),
                replace_default: true,
                args: vec![format!("--ld-path={}", wild.display())],
            });
        }
        modes
    }

    /// The driver's arguments for this mode, from rustc's.
    pub fn rewrite(&self, args: Vec<OsString>) -> Vec<OsString> {
        let mut out: Vec<OsString> = if self.replace_default {
            args.into_iter()
                .filter(|a| {
                    let s = a.to_string_lossy();
                    !(s.starts_with("-fuse-ld=") || (s.starts_with("-B") && s.ends_with("gcc-ld")))
                })
                .collect()
        } else {
            args
        };
        out.extend(self.args.iter().map(OsString::from));
        out
    }
}

/// One link, as logged by the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// The file written (`-o`).
    pub output: PathBuf,
    pub linker: String,
    pub millis: u64,
    /// Peak resident memory of the linker, in KiB.
    pub max_rss_kib: u64,
    pub success: bool,
}

/// Adds `symbols` to the `global:` part of a version script as rustc
/// writes them (`{ global: ...; local: *; };`).
pub fn merge_version_script(script: &str, symbols: &[String]) -> String {
    let names: String = symbols.iter().map(|s| format!("    {s};\n")).collect();
    if let Some(at) = script.find("global:") {
        let line_end = script[at..].find('\n').map_or(script.len(), |i| at + i + 1);
        format!("{}{names}{}", &script[..line_end], &script[line_end..])
    } else if let Some(at) = script.find('{') {
        format!(
            "{}\n  global:\n{names}{}",
            &script[..=at],
            &script[at + 1..]
        )
    } else {
        format!("{{\n  global:\n{names}}};\n{script}")
    }
}

/// The version script rustc passes to the linker, in any of its spellings.
fn version_script(args: &[OsString]) -> Option<PathBuf> {
    for (i, a) in args.iter().enumerate() {
        let a = a.to_string_lossy();
        for prefix in ["-Wl,--version-script=", "--version-script="] {
            if let Some(p) = a.strip_prefix(prefix) {
                return Some(PathBuf::from(p));
            }
        }
        if a == "-Wl,--version-script" || a == "--version-script" {
            let next = args.get(i + 1)?.to_string_lossy().into_owned();
            return Some(PathBuf::from(next.strip_prefix("-Wl,").unwrap_or(&next)));
        }
    }
    None
}

/// Makes the link export `symbols`: merged into rustc's version script, and
/// each named as undefined so the linker pulls in the object defining it.
fn add_exports(mut args: Vec<OsString>, symbols: &[String]) -> Result<Vec<OsString>> {
    if symbols.is_empty() {
        return Ok(args);
    }
    let script =
        version_script(&args).context("rustc passed no version script to extend with C symbols")?;
    let text = crate::fs::read_to_string(&script)?;
    std::fs::write(&script, merge_version_script(&text, symbols))
        .with_context(|| format!("failed to write `{}`", script.display()))?;
    args.extend(
        symbols
            .iter()
            .map(|s| OsString::from(format!("-Wl,--undefined={s}"))),
    );
    Ok(args)
}

/// The linker proxy's entry point. Returns the exit code.
pub fn main() -> i32 {
    match link() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: cargo-dyndev's linker proxy failed: {e:#}");
            crate::error::code::FAILURE
        }
    }
}

fn link() -> Result<i32> {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if let Some(record) = std::env::var_os(env::RECORD_ONLY) {
        let words: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let json = serde_json::to_vec(&words).context("failed to serialize link arguments")?;
        crate::fs::write_atomic(Path::new(&record), &json)?;
        return Ok(0);
    }
    let mode = std::env::var(env::LINKER_MODE)
        .ok()
        .and_then(|m| serde_json::from_str::<LinkerMode>(&m).ok())
        .unwrap_or_else(LinkerMode::default_linker);
    if let Some(list) = std::env::var_os(env::EXPORTS) {
        let text = crate::fs::read_to_string(Path::new(&list))?;
        let symbols: Vec<String> = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        args = add_exports(args, &symbols)?;
    }
    let output = output_of(&args).unwrap_or_default();
    // rustc's own default is `cc`, whatever `$CC` says.
    let driver = std::env::var_os(env::REAL_LINKER)
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "cc".into());
    let args = mode.rewrite(args);
    let keep_root = std::env::var_os(env::KEEP).filter(|k| !k.is_empty());
    if let Some(root) = &keep_root
        && std::env::var_os(env::KEEP_ONLY).is_some()
    {
        keep(
            Path::new(root),
            &driver.to_string_lossy(),
            &args,
            false,
            Vec::new(),
        )?;
        return Ok(0);
    }
    // A test binary under `cargo dyndev test`: against shared versions of
    // the workspace libraries, when it can be.
    let mut shared = Vec::new();
    let mut outcome = None;
    if let Some(root) = std::env::var_os(crate::cutoff::shared::ENV) {
        let words: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let members: Vec<String> = std::env::var(crate::helpers::wrapper::env::MEMBER_LIBS)
            .unwrap_or_default()
            .split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect();
        let driver_name = driver.to_string_lossy();
        if let Ok(Some((dynamic, links))) =
            crate::cutoff::shared::dynamic_link(Path::new(&root), &driver_name, &words, &members)
        {
            let mut cmd = Command::new(&driver);
            cmd.args(&dynamic);
            let (status, millis, rss, stderr) = run_linker(&mut cmd)?;
            if status.success() {
                eprint!("{stderr}");
                shared = links;
                outcome = Some((status, millis, rss));
            }
            // Else the static link below, as rustc asked.
        }
    }
    let (status, millis, max_rss_kib) = match outcome {
        Some(done) => done,
        None => {
            let mut cmd = Command::new(&driver);
            cmd.args(&args);
            let (status, millis, rss, stderr) = run_linker(&mut cmd)?;
            eprint!("{stderr}");
            // rustc would show only the exit status the proxy passes on.
            if let Some(signal) = killed_by(status) {
                eprintln!(
                    "error: the linker `{}` was killed by {signal}",
                    driver.to_string_lossy()
                );
            }
            (status, millis, rss)
        }
    };
    if let Ok(log) = std::env::var(env::LINK_LOG) {
        let record = LinkRecord {
            output,
            linker: mode.name,
            millis,
            max_rss_kib,
            success: status.success(),
        };
        if let Err(e) = append_json_line(Path::new(&log), &record) {
            eprintln!("warning: {e:#}");
        }
    }
    if let Some(root) = &keep_root
        && status.success()
        && let Err(e) = keep(
            Path::new(root),
            &driver.to_string_lossy(),
            &args,
            true,
            shared,
        )
    {
        // Reload then builds new code the slow way; the link itself is fine.
        eprintln!("warning: cargo-dyndev could not keep the link's objects: {e:#}");
    }
    Ok(crate::cargo::exit_code(status))
}

/// `signal 7 (SIGBUS)`, when `status` is a death by a signal. A linker
/// writing into a full tmpfs dies of SIGBUS; one the kernel kills when
/// memory runs out, of SIGKILL.
fn killed_by(status: std::process::ExitStatus) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    let signal = status.signal()?;
    let name = match signal {
        libc::SIGBUS => "SIGBUS",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        _ => return Some(format!("signal {signal}")),
    };
    Some(format!("signal {signal} ({name})"))
}

/// Runs the real linker, its stderr kept aside (a failed attempt at a
/// shared link is not rustc's business). Returns the status, wall time,
/// peak memory and stderr.
fn run_linker(cmd: &mut Command) -> Result<(std::process::ExitStatus, u64, u64, String)> {
    // The driver is a linker, never this proxy again: nothing of the
    // proxy's own settings goes on.
    cmd.env_remove(env::EXPORTS)
        .env_remove(env::KEEP)
        .env_remove(env::REAL_LINKER)
        .env_remove(crate::cutoff::shared::ENV);
    let path = std::env::temp_dir().join(format!(
        "dyndev-link-{}-{}.err",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    let file = std::fs::File::create(&path)
        .with_context(|| format!("failed to create `{}`", path.display()))?;
    cmd.stderr(file);
    let program = cmd.get_program().to_string_lossy().into_owned();
    let result = run_measured(cmd).with_context(|| format!("failed to run `{program}`"));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    let (status, millis, rss) = result?;
    Ok((status, millis, rss, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn replacing_the_default_linker_drops_rustcs_choice() {
        let rustc_args = os(&[
            "-m64",
            "main.o",
            "-B/sysroot/lib/rustlib/x86_64-unknown-linux-gnu/bin/gcc-ld",
            "-fuse-ld=lld",
            "-o",
            "app",
        ]);
        let mold = LinkerMode {
            name: "mold".into(),
            replace_default: true,
            args: vec!["-fuse-ld=mold".into()],
        };
        assert_eq!(
            mold.rewrite(rustc_args.clone()),
            os(&["-m64", "main.o", "-o", "app", "-fuse-ld=mold"])
        );
        assert_eq!(
            LinkerMode::default_linker().rewrite(rustc_args.clone()),
            rustc_args
        );
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

    #[test]
    fn a_linker_killed_by_a_signal_is_named_so() {
        use std::os::unix::process::ExitStatusExt;
        let status = std::process::ExitStatus::from_raw;
        assert_eq!(killed_by(status(7)).as_deref(), Some("signal 7 (SIGBUS)"));
        assert_eq!(killed_by(status(9)).as_deref(), Some("signal 9 (SIGKILL)"));
        assert_eq!(killed_by(status(1 << 8)), None, "exit status 1");
    }

    const RUSTC_SCRIPT: &str = "{\n  global:\n    rust_fn;\n\n  local:\n    *;\n};\n";

    #[test]
    fn c_symbols_join_rustcs_global_list() {
        let merged = merge_version_script(RUSTC_SCRIPT, &["zlibVersion".into(), "deflate".into()]);
        assert_eq!(
            merged,
            "{\n  global:\n    zlibVersion;\n    deflate;\n    rust_fn;\n\n  local:\n    *;\n};\n"
        );
        let no_globals = merge_version_script("{\n  local:\n    *;\n};\n", &["f".into()]);
        assert_eq!(no_globals, "{\n  global:\n    f;\n\n  local:\n    *;\n};\n");
    }

    #[test]
    fn exports_extend_the_script_and_pull_the_objects_in() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("list");
        std::fs::write(&script, RUSTC_SCRIPT).unwrap();
        let args = os(&[
            &format!("-Wl,--version-script={}", script.display()),
            "-shared",
        ]);
        let out = add_exports(args, &["nat_add".into()]).unwrap();
        assert_eq!(out.last().unwrap(), "-Wl,--undefined=nat_add");
        assert!(
            std::fs::read_to_string(&script)
                .unwrap()
                .contains("    nat_add;\n")
        );
    }
}
