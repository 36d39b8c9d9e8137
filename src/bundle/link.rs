//! Linking the libraries, each from the exact rlibs of the user's build,
//! in order (a library after those it loads, one level in parallel), and
//! reusing any linked before; then the facades, and the new state.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

use super::Request;
use super::facade::compile_facades;
use super::native::culprits;
use super::place::Placed;
use super::space::{self, NoRoom};
use super::toolchain::{Toolchain, rustc, show};
use crate::error::Failure;
use crate::fs::StableHasher;
use crate::inspect::NativeSymbols;
use crate::rustc_args::crate_of_stem;
use crate::shell::Shell;
use crate::state::{BundleState, Lib, LibMade, Root, STATE_VERSION, Stamp};

pub(super) enum Linked {
    Done(Box<BundleState>),
    /// Linking failed; the packages to blame (id -> linker message).
    Failed {
        culprits: BTreeMap<String, String>,
        message: String,
    },
}

/// Link arguments of every library beyond rustc's own. A change to them
/// bumps [`STATE_VERSION`], so bundles linked before are linked again.
///
/// `-Bsymbolic-functions` binds a library's calls to its own functions at
/// link time, so the loader no longer looks each one up, in every test
/// binary and program that loads it. Only functions: a static keeps one
/// address for every library and executable, and Rust code never relies
/// on a function being interposed from outside.
const LINK_ARGS: &[&str] = &["-Wl,-Bsymbolic-functions"];

fn alias_of(stem: &str) -> String {
    format!(
        "{}_{}",
        crate_of_stem(stem),
        crate::rustc_args::hash_of_stem(stem)
    )
}

pub(super) fn link(
    shell: &Shell,
    req: &Request<'_>,
    toolchain: &Toolchain,
    placed: &Placed,
    native: &BTreeMap<String, NativeSymbols>,
    proxy: &Path,
) -> Result<Linked> {
    let dir = req.layout.lib_dir();
    crate::fs::create_dir_all(&dir)?;
    let mut libs = identify(req, toolchain, placed);
    let todo = reuse(&dir, &mut libs);
    let started = Instant::now();
    let mut peak_kib = 0;
    if !todo.is_empty() {
        let crates: usize = todo.iter().map(|&i| libs[i].crates.len()).sum();
        shell.status(
            "Bundling",
            format_args!(
                "{} into {}",
                crate::shell::count(crates, "crate", "crates"),
                crate::shell::count(todo.len(), "shared library", "shared libraries"),
            ),
        );
        for batch in levels(placed, &todo) {
            let results = crate::pool::parallel_map(&batch, |&i| {
                link_lib(shell, req, toolchain, &libs, i, placed, native, proxy)
            });
            let mut blamed = BTreeMap::new();
            let mut messages = Vec::new();
            let mut no_room = None;
            for (&i, result) in batch.iter().zip(results) {
                match result? {
                    Ok(made) => {
                        let lib = &mut libs[i];
                        peak_kib = peak_kib.max(made.link_peak_kib);
                        lib.made = made;
                        let json = serde_json::to_vec_pretty(&*lib)
                            .context("failed to serialize a library's record")?;
                        crate::fs::write_atomic(&record_of(&dir, lib), &json)?;
                    }
                    Err(message) => {
                        if let Some((shortage, said)) = space::shortage(&message) {
                            no_room.get_or_insert(NoRoom {
                                shortage,
                                file: libs[i].file.clone(),
                                free: space::free_space(&dir),
                                dir: dir.clone(),
                                needed: input_size(&libs[i], placed),
                                said,
                                log: log_of(&dir, &libs[i]),
                            });
                        }
                        blamed.extend(culprits(&message, req, &placed.plan.bundled_packages));
                        messages.push(message);
                    }
                }
            }
            // Out of room, nothing can be learned about the dependencies.
            if let Some(no_room) = no_room {
                return Err(Failure::NoRoom(no_room.to_string()).into());
            }
            if !messages.is_empty() {
                return Ok(Linked::Failed {
                    culprits: blamed,
                    message: messages.join("\n"),
                });
            }
        }
    }
    let mut roots = roots(&dir, &libs, placed)?;
    compile_facades(shell, toolchain, &dir, &libs, &mut roots)?;
    let link_millis = if todo.is_empty() {
        0
    } else {
        started.elapsed().as_millis() as u64
    };
    Ok(Linked::Done(Box::new(state(
        req,
        toolchain,
        placed,
        libs,
        roots,
        link_millis,
        peak_kib,
    ))))
}

/// Names each library by its content: its crates (with their rlibs'
/// mtimes), the libraries it loads, and the toolchain. The state dir is
/// part of every id: workspaces sharing a target dir can share member units
/// (cargo hashes a member's path relative to its workspace), and each must
/// see the other's build as stale.
fn identify(req: &Request<'_>, toolchain: &Toolchain, placed: &Placed) -> Vec<Lib> {
    let dir = req.layout.lib_dir();
    let mut base = StableHasher::default();
    base.write_str(&req.layout.state_dir.to_string_lossy())
        .write_str(&STATE_VERSION.to_string())
        .write_str(env!("CARGO_PKG_VERSION"))
        .write_str(&toolchain.rustc.to_string_lossy())
        .write_str(toolchain.target.as_deref().unwrap_or(""));
    for a in toolchain.link_args.iter().chain(&toolchain.search_paths) {
        base.write_str(a);
    }
    let mut libs: Vec<Lib> = Vec::new();
    for plan in &placed.split.libs {
        let mut h = base.clone();
        for c in &plan.crates {
            let mtime = placed
                .rlibs
                .get(c)
                .and_then(|p| crate::fs::mtime_nanos(p))
                .unwrap_or_default();
            h.write_str(c).write_str(&mtime.to_string());
        }
        for &d in &plan.deps {
            h.write_str(&libs[d].id);
        }
        let id = h.finish_hex();
        let crate_name = format!("dyndev_bundle_{}", &id[..12]);
        libs.push(Lib {
            file: dir.join(format!("lib{crate_name}.so")),
            crate_name,
            id,
            crates: plan.crates.clone(),
            users: plan.users.clone(),
            deps: plan
                .deps
                .iter()
                .map(|&d| libs[d].crate_name.clone())
                .collect(),
            ..Lib::default()
        });
    }
    libs
}

/// Where a linked library's record (its size, symbols and link cost) is
/// kept; its presence says the link finished.
fn record_of(dir: &Path, lib: &Lib) -> std::path::PathBuf {
    dir.join(format!("{}.json", lib.crate_name))
}

/// Where a library's link writes its output (rustc's and the linker's).
fn log_of(dir: &Path, lib: &Lib) -> std::path::PathBuf {
    dir.join(format!("{}.log", lib.crate_name))
}

/// The size of the rlibs linked into `lib`: about what its link writes.
fn input_size(lib: &Lib, placed: &Placed) -> u64 {
    lib.crates
        .iter()
        .filter_map(|c| placed.rlibs.get(c))
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// Takes over the records of libraries linked before (the same crates,
/// say after switching back to an earlier selection); returns the indices
/// of those still to link.
fn reuse(dir: &Path, libs: &mut [Lib]) -> Vec<usize> {
    let mut todo = Vec::new();
    for (i, lib) in libs.iter_mut().enumerate() {
        // The library must be the file its link made, not one changed since.
        let reused: Option<Lib> = std::fs::read(record_of(dir, lib))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|r: &Lib| Stamp::of(&lib.file) == Some(r.made.stamp));
        match reused {
            Some(r) => lib.made = r.made,
            None => todo.push(i),
        }
    }
    todo
}

/// `todo` in batches that can link in parallel: a library loads only
/// libraries of earlier batches.
fn levels(placed: &Placed, todo: &[usize]) -> Vec<Vec<usize>> {
    let libs = &placed.split.libs;
    let mut level = vec![0usize; libs.len()];
    for i in 0..libs.len() {
        level[i] = libs[i]
            .deps
            .iter()
            .map(|&d| level[d] + 1)
            .max()
            .unwrap_or(0);
    }
    let max = level.iter().copied().max().unwrap_or(0);
    (0..=max)
        .map(|l| todo.iter().copied().filter(|&i| level[i] == l).collect())
        .filter(|b: &Vec<usize>| !b.is_empty())
        .collect()
}

/// Each root with its library and facade. A facade is named by its library
/// and root, so one made before for the same pair is kept.
fn roots(dir: &Path, libs: &[Lib], placed: &Placed) -> Result<BTreeMap<String, Root>> {
    let mut roots = BTreeMap::new();
    for (stem, c) in &placed.roots {
        let lib = &libs[placed
            .split
            .lib_of(stem)
            .context("a root is in no library")?];
        let fhash = StableHasher::default()
            .write_str(&lib.id)
            .write_str(stem)
            .finish_hex();
        roots.insert(
            stem.clone(),
            Root {
                package_id: c.package_id.clone(),
                crate_name: crate_of_stem(stem).to_owned(),
                alias: alias_of(stem),
                lib: lib.crate_name.clone(),
                facade: dir.join(format!("lib{}-{fhash}.rlib", crate_of_stem(stem))),
                facade_stamp: Stamp::default(),
                rlib_mtime: crate::fs::mtime_nanos(&c.rlib).unwrap_or_default(),
                rlib: c.rlib.clone(),
            },
        );
    }
    Ok(roots)
}

/// The bundle's state: its plan, its libraries and roots, and totals.
fn state(
    req: &Request<'_>,
    toolchain: &Toolchain,
    placed: &Placed,
    libs: Vec<Lib>,
    roots: BTreeMap<String, Root>,
    link_millis: u64,
    link_peak_kib: u64,
) -> BundleState {
    let mut id = StableHasher::default();
    for lib in &libs {
        id.write_str(&lib.id);
    }
    for root in roots.values() {
        id.write_str(&root.facade.to_string_lossy());
    }
    let linked = crate::state::Linked {
        file: libs
            .iter()
            .max_by_key(|l| l.made.size)
            .map(|l| l.file.clone())
            .unwrap_or_default(),
        size: libs.iter().map(|l| l.made.size).sum(),
        exported_symbols: libs.iter().map(|l| l.made.exported_symbols).sum(),
        link_millis,
        link_peak_kib,
    };
    BundleState {
        state_version: STATE_VERSION,
        id: id.finish_hex(),
        generation: req.generation.to_owned(),
        dir: req.layout.lib_dir(),
        sysroot_lib: toolchain.sysroot_lib.clone(),
        plan: placed.plan.clone(),
        libs,
        roots,
        linked,
    }
}

/// Links library `i` of `libs`. `Ok(Err(log))` when the linker failed.
#[allow(clippy::too_many_arguments)]
fn link_lib(
    shell: &Shell,
    req: &Request<'_>,
    toolchain: &Toolchain,
    libs: &[Lib],
    i: usize,
    placed: &Placed,
    native: &BTreeMap<String, NativeSymbols>,
    proxy: &Path,
) -> Result<Result<LibMade, String>> {
    let lib = &libs[i];
    let dir = req.layout.lib_dir();
    let aliases: Vec<String> = lib.crates.iter().map(|s| alias_of(s)).collect();
    let alias_refs: Vec<&str> = aliases.iter().map(String::as_str).collect();
    let deps: Vec<&str> = lib.deps.iter().map(String::as_str).collect();
    let users: Vec<&str> = lib.users.iter().map(|u| crate_of_stem(u)).collect();
    let lib_rs = dir.join(format!("{}.rs", lib.crate_name));
    crate::fs::write_atomic(
        &lib_rs,
        crate::templates::bundle_lib(req.workspace_name, &users.join(", "), &alias_refs, &deps)?
            .as_bytes(),
    )?;

    // C code that `-sys` crates bundle into their rlibs is linked into the
    // library, but rustc exports only Rust symbols from a dylib. The linker
    // proxy exports the C symbols too, so code that calls them directly
    // still links.
    let packages: BTreeSet<&String> = lib
        .crates
        .iter()
        .filter_map(|s| req.packages_by_stem.get(s))
        .collect();
    let symbols: BTreeSet<&String> = packages
        .iter()
        .filter_map(|id| native.get(*id))
        .flat_map(|n| &n.exported)
        .collect();
    let exports = dir.join(format!("{}.exports", lib.crate_name));
    let mut list: String = symbols.iter().map(|s| format!("{s}\n")).collect();
    if list.is_empty() {
        list.push('\n');
    }
    crate::fs::write_atomic(&exports, list.as_bytes())?;
    let (user_linker, link_args) = split_linker(&toolchain.link_args);

    // rustc and the linker write into a directory of their own (objects,
    // rustc's temporaries, the library as it grows); only the finished
    // library is renamed into place, and a failed or interrupted link
    // leaves nothing in the library dir.
    let scratch = crate::fs::Scratch::new(&dir, &lib.crate_name)?;
    let mut cmd = rustc(toolchain);
    cmd.args(["--crate-name", &lib.crate_name, "--edition=2021"])
        .arg(&lib_rs)
        .args([
            "--crate-type",
            "dylib",
            "--emit=link",
            "--cap-lints",
            "allow",
        ])
        .args([
            "-C",
            "prefer-dynamic",
            "-C",
            &format!("metadata={}", lib.id),
        ])
        .arg("--out-dir")
        .arg(scratch.path())
        .args(toolchain.search_path_args())
        .arg("-L")
        .arg(format!("dependency={}", dir.display()))
        .args(&link_args)
        .arg("-C")
        .arg(format!("linker={}", proxy.display()))
        .env(crate::contract::env::EXPORTS, &exports)
        .args([
            "-C".to_owned(),
            format!("link-arg=-Wl,-rpath,{}", toolchain.sysroot_lib.display()),
            "-C".to_owned(),
            "link-arg=-Wl,-rpath,$ORIGIN".to_owned(),
        ]);
    for a in LINK_ARGS {
        cmd.arg("-C").arg(format!("link-arg={a}"));
    }
    for (stem, alias) in lib.crates.iter().zip(&aliases) {
        let rlib = placed
            .rlibs
            .get(stem)
            .context("a bundled crate without an rlib")?;
        cmd.arg("--extern")
            .arg(format!("{alias}={}", rlib.display()));
    }
    for d in libs[..i]
        .iter()
        .filter(|d| lib.deps.contains(&d.crate_name))
    {
        cmd.arg("--extern")
            .arg(format!("{}={}", d.crate_name, d.file.display()));
    }
    // The user's own linker runs behind the proxy, unless it is the proxy
    // already (as under `compare`).
    match user_linker {
        Some(l) if Path::new(&l).file_name() != Some(crate::contract::names::LINKER.as_ref()) => {
            cmd.env(crate::contract::env::REAL_LINKER, l);
        }
        _ => {}
    }
    shell.verbose_status("Running", format_args!("`{}`", show(&cmd)));
    let log = log_of(&dir, lib);
    let log_file = std::fs::File::create(&log)
        .with_context(|| format!("failed to create `{}`", log.display()))?;
    cmd.stdout(std::process::Stdio::null()).stderr(log_file);
    let (status, millis, peak_kib) = crate::measure::run_measured(&mut cmd)
        .with_context(|| format!("failed to run `{}`", toolchain.rustc.display()))?;
    if !status.success() {
        return Ok(Err(crate::fs::read_to_string(&log)?));
    }
    let name = lib
        .file
        .file_name()
        .context("a library without a file name")?
        .to_string_lossy();
    let info = crate::inspect::dynamic_info(&scratch.path().join(&*name))?;
    scratch.rename_out(&name, &lib.file)?;
    let stamp = Stamp::of(&lib.file)
        .with_context(|| format!("`{}` is gone after its link", lib.file.display()))?;
    Ok(Ok(LibMade {
        stamp,
        size: stamp.len,
        exported_symbols: info.exported,
        link_millis: millis,
        link_peak_kib: peak_kib,
    }))
}

/// Takes `-C linker=...` out of link arguments: `(the linker, the rest)`.
fn split_linker(args: &[String]) -> (Option<String>, Vec<String>) {
    let mut linker = None;
    let mut rest = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if args[i] == "-C"
            && let Some(l) = args.get(i + 1).and_then(|v| v.strip_prefix("linker="))
        {
            linker = Some(l.to_owned());
            i += 2;
            continue;
        }
        rest.push(args[i].clone());
        i += 1;
    }
    (linker, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_linker_is_taken_out_of_the_link_arguments() {
        let args: Vec<String> = [
            "-C",
            "debuginfo=2",
            "-C",
            "linker=clang",
            "-C",
            "link-arg=-fuse-ld=mold",
        ]
        .map(str::to_owned)
        .to_vec();
        let (linker, rest) = split_linker(&args);
        assert_eq!(linker.as_deref(), Some("clang"));
        assert_eq!(rest, ["-C", "debuginfo=2", "-C", "link-arg=-fuse-ld=mold"]);
    }

    #[test]
    fn aliases_are_unique_per_unit() {
        assert_eq!(alias_of("libregex-0123abcd"), "regex_0123abcd");
        assert_eq!(alias_of("libitoa-1"), "itoa_1");
    }
}
