//! Making the bundle: choosing its roots from what the members use, reading
//! each root's exact closure, splitting the bundled crates into shared
//! libraries by the units that use them ([`crate::split`]), linking each
//! from the exact rlibs of the user's build with rustc, and compiling a
//! facade for each root. Because the libraries are linked from the user
//! build's own units, and each crate goes into exactly one library, no
//! crate is ever compiled or linked twice; because a unit loads only the
//! libraries of its own closure, it sees exactly its own dependencies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::closure::{Closure, Prober};
use crate::config::Config;
use crate::fs::StableHasher;
use crate::inspect::NativeSymbols;
use crate::layout::Layout;
use crate::plan::{Graph, Placement, PlanInput};
use crate::shell::Shell;
use crate::split::{Split, UnitUse};
use crate::state::{BundleState, JournalEntry, Lib, Root, STATE_VERSION, Unit};
use crate::wrapper::crate_of_stem;

/// Everything a new bundle is made from.
#[derive(Debug)]
pub struct Request<'a> {
    pub layout: &'a Layout,
    /// For the generated source's comment: "the bundle of `game`".
    pub workspace_name: &'a str,
    pub generation: &'a str,
    /// What the wrapper recorded of every member unit of this build.
    pub entries: &'a [JournalEntry],
    /// Unit stem -> package id, from cargo's artifact messages.
    pub packages_by_stem: &'a BTreeMap<String, String>,
    /// Package id -> the rlibs cargo built for it, from the same messages.
    pub rlibs_by_package: &'a BTreeMap<String, Vec<PathBuf>>,
    /// Every package the build compiled, from the same messages.
    pub built_packages: &'a BTreeSet<String>,
    pub graph: &'a Graph,
    pub config: &'a Config,
    /// The bundle in use so far, whose units carry over within a generation.
    pub previous: Option<&'a BundleState>,
}

/// A dependency unit a member names directly: a root, if it can be bundled.
#[derive(Debug, Clone)]
struct Candidate {
    rlib: PathBuf,
    package_id: String,
}

/// What planning starts from: the units, the candidates and their closures.
struct Inputs {
    units: BTreeMap<String, Unit>,
    candidates: BTreeMap<String, Candidate>,
    closures: BTreeMap<String, Result<Closure, String>>,
    /// Unit stem -> package id, this build's and earlier ones'.
    packages_by_stem: BTreeMap<String, String>,
}

pub fn make(shell: &Shell, req: &Request<'_>) -> Result<BundleState> {
    let toolchain = Toolchain::from_entries(req.entries)?;
    let native = scan_native_code(req)?;
    let hidden_native: BTreeMap<String, String> = native
        .iter()
        .filter_map(|(id, n)| Some((id.clone(), n.hidden.first()?.clone())))
        .collect();
    let same_generation = req.previous.filter(|p| p.generation == req.generation);
    let mut link_failed: BTreeMap<String, String> = same_generation
        .map(|p| p.link_failed.clone())
        .unwrap_or_default();

    // Within a generation the bundle keeps the units of other selections,
    // so the packages they compiled count too.
    let mut built = req.built_packages.clone();
    if let Some(prev) = same_generation {
        built.extend(prev.built_packages.iter().cloned());
    }
    let graph = req.graph.restricted_to(&built);

    let proxy = crate::measure::install_instrument(
        &req.layout.state_dir.join("bin"),
        crate::linker::LINKER_NAME,
    )?;
    let inputs = inputs(req, same_generation, &toolchain, &proxy)?;

    loop {
        let placed = place(req, &graph, &inputs, &link_failed, &hidden_native);
        match link(shell, req, &toolchain, &inputs, &placed, &native, &proxy)? {
            Linked::Done(state) => return Ok(*state),
            Linked::Failed { culprits, message } => {
                if culprits.is_empty() {
                    bail!(
                        "failed to link the bundle, and could not tell which dependency is \
                         to blame\n\n{message}\n\nhelp: keep the dependency named above out \
                         of the bundle with `[workspace.metadata.dyndev] exclude = [\"NAME\"]`"
                    );
                }
                let mut learned = false;
                for (id, why) in culprits {
                    let name = req.graph.nodes.get(&id).map_or(id.as_str(), |n| &n.name);
                    shell.warn(format_args!(
                        "`{name}` cannot be linked into a shared library; it stays static ({why})"
                    ));
                    learned |= link_failed.insert(id, why).is_none();
                }
                // Blaming the same packages again would loop for ever.
                if !learned {
                    bail!("failed to link the bundle\n\n{message}");
                }
            }
        }
    }
}

/// The member units of this build, and those of earlier builds of the same
/// generation whose dependencies are unchanged; every dependency unit they
/// name; the closure of each.
fn inputs(
    req: &Request<'_>,
    same_generation: Option<&BundleState>,
    toolchain: &Toolchain,
    proxy: &Path,
) -> Result<Inputs> {
    let mut packages_by_stem = req.packages_by_stem.clone();
    // Member libraries are the units the wrapper saw; cargo may not report
    // an artifact for a unit that was probed.
    let member_units: BTreeSet<&str> = req.entries.iter().map(|e| e.stem.as_str()).collect();
    let mut units = BTreeMap::new();
    let mut candidates = BTreeMap::new();
    for entry in req.entries {
        let mut unit = Unit {
            label: format!("{} ({})", entry.package, entry.kind),
            ..Unit::default()
        };
        for ext in &entry.externs {
            let member = packages_by_stem
                .get(&ext.stem)
                .and_then(|id| req.graph.nodes.get(id))
                .is_some_and(|n| n.member);
            if member || member_units.contains(ext.stem.as_str()) {
                unit.member_libs.insert(ext.stem.clone());
                continue;
            }
            let Some(package_id) = packages_by_stem.get(&ext.stem) else {
                continue;
            };
            unit.deps.insert(ext.stem.clone());
            candidates
                .entry(ext.stem.clone())
                .or_insert_with(|| Candidate {
                    rlib: ext.path.with_extension("rlib"),
                    package_id: package_id.clone(),
                });
        }
        units.insert(entry.stem.clone(), unit);
    }
    if let Some(prev) = same_generation {
        for (stem, package) in &prev.packages_by_stem {
            packages_by_stem
                .entry(stem.clone())
                .or_insert_with(|| package.clone());
        }
        // A root rebuilt since is stale for the selection that used it;
        // that selection brings its units back when it builds again.
        let current: BTreeSet<String> = candidates.keys().cloned().collect();
        let fresh = |stem: &str| match prev.roots.get(stem) {
            Some(root) => crate::fs::mtime_nanos(&root.rlib) == Some(root.rlib_mtime),
            None => prev.static_stems.contains(stem) || current.contains(stem),
        };
        for (stem, unit) in &prev.units {
            if units.contains_key(stem) || !unit.deps.iter().all(|d| fresh(d)) {
                continue;
            }
            for dep in &unit.deps {
                if let Some(root) = prev.roots.get(dep) {
                    candidates.entry(dep.clone()).or_insert_with(|| Candidate {
                        rlib: root.rlib.clone(),
                        package_id: root.package_id.clone(),
                    });
                }
            }
            units.insert(stem.clone(), unit.clone());
        }
    }
    let prober = Prober {
        rustc: &toolchain.rustc,
        target: toolchain.target.as_deref(),
        search_paths: &toolchain.search_paths,
        dir: &req.layout.state_dir.join("probe"),
        proxy,
    };
    let closures = prober.closures(
        &candidates
            .iter()
            .map(|(stem, c)| (stem.clone(), c.rlib.clone()))
            .collect(),
    )?;
    Ok(Inputs {
        units,
        candidates,
        closures,
        packages_by_stem,
    })
}

/// The plan of one bundle: its roots, its libraries, what stays static.
#[derive(Debug)]
struct Placed {
    roots: BTreeMap<String, Candidate>,
    split: Split,
    /// Every bundled crate's rlib, by stem.
    rlibs: BTreeMap<String, PathBuf>,
    static_stems: BTreeSet<String>,
    static_packages: BTreeMap<String, String>,
    bundled_packages: BTreeSet<String>,
    hidden_native: BTreeMap<String, String>,
    link_failed: BTreeMap<String, String>,
    built_packages: BTreeSet<String>,
}

fn place(
    req: &Request<'_>,
    graph: &Graph,
    inputs: &Inputs,
    link_failed: &BTreeMap<String, String>,
    hidden_native: &BTreeMap<String, String>,
) -> Placed {
    let root_ids: BTreeSet<String> = inputs
        .candidates
        .values()
        .map(|c| c.package_id.clone())
        .collect();
    let selected = graph
        .nodes
        .values()
        .filter(|n| n.member)
        .map(|n| n.id.clone())
        .collect();
    let plan = crate::plan::plan(&PlanInput {
        graph,
        selected,
        dev: true,
        config: req.config,
        link_failed,
        hidden_native,
        roots: Some(&root_ids),
    });
    let package_of = |stem: &str| inputs.packages_by_stem.get(stem);
    let bundleable = |stem: &str| {
        package_of(stem)
            .and_then(|id| plan.placement(id))
            .is_some_and(Placement::is_bundled)
    };
    let name_of = |stem: &str| {
        package_of(stem)
            .and_then(|id| graph.nodes.get(id))
            .map_or_else(|| crate_of_stem(stem).to_owned(), |n| n.name.clone())
    };

    // A root is bundled when the plan bundles it and everything in its
    // exact closure.
    let mut roots = BTreeMap::new();
    let mut closures: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut rlibs = BTreeMap::new();
    let mut static_packages: BTreeMap<String, String> = plan
        .placements
        .iter()
        .filter_map(|(id, p)| match p {
            Placement::Static { reason } => Some((id.clone(), reason.to_string())),
            _ => None,
        })
        .collect();
    for (stem, candidate) in &inputs.candidates {
        if !bundleable(stem) {
            continue;
        }
        let closure = match inputs.closures.get(stem) {
            Some(Ok(closure)) => closure,
            Some(Err(why)) => {
                static_packages.insert(
                    candidate.package_id.clone(),
                    format!("cannot be a dylib: its dependencies could not be read: {why}"),
                );
                continue;
            }
            None => continue,
        };
        if let Some(blocker) = closure.keys().find(|c| !bundleable(c)) {
            static_packages.insert(
                candidate.package_id.clone(),
                crate::plan::Reason::DependsOn {
                    package: name_of(blocker),
                }
                .to_string(),
            );
            continue;
        }
        roots.insert(stem.clone(), candidate.clone());
        closures.insert(stem.clone(), closure.keys().cloned().collect());
        rlibs.extend(closure.iter().map(|(s, p)| (s.clone(), p.clone())));
    }

    let units: BTreeMap<String, UnitUse> = inputs
        .units
        .iter()
        .map(|(stem, u)| {
            (
                stem.clone(),
                UnitUse {
                    roots: u
                        .deps
                        .iter()
                        .filter(|d| roots.contains_key(*d))
                        .cloned()
                        .collect(),
                    member_libs: u.member_libs.clone(),
                },
            )
        })
        .collect();
    let split = crate::split::split(&units, &closures);
    let static_stems = inputs
        .units
        .values()
        .flat_map(|u| &u.deps)
        .filter(|d| !roots.contains_key(*d))
        .cloned()
        .collect();
    let bundled_packages: BTreeSet<String> = rlibs
        .keys()
        .filter_map(|s| package_of(s).cloned())
        .collect();
    static_packages.retain(|id, _| !bundled_packages.contains(id));
    Placed {
        roots,
        split,
        rlibs,
        static_stems,
        static_packages,
        bundled_packages,
        hidden_native: hidden_native.clone(),
        link_failed: link_failed.clone(),
        built_packages: graph.nodes.keys().cloned().collect(),
    }
}

/// The C code inside each dependency's rlibs, by package id; packages
/// without any are left out.
fn scan_native_code(req: &Request<'_>) -> Result<BTreeMap<String, NativeSymbols>> {
    let mut out = BTreeMap::new();
    for (id, rlibs) in req.rlibs_by_package {
        if req.graph.nodes.get(id).is_some_and(|n| n.member) {
            continue;
        }
        // Which variant of the package the bundle links is rustc's choice:
        // export only what every variant defines, so each export exists.
        let mut symbols: Option<NativeSymbols> = None;
        for rlib in rlibs {
            let found = crate::inspect::native_symbols(&[rlib.as_path()])?;
            symbols = Some(match symbols {
                None => found,
                Some(mut all) => {
                    all.exported
                        .retain(|s| found.exported.binary_search(s).is_ok());
                    all.hidden.extend(found.hidden);
                    all.hidden.sort();
                    all.hidden.dedup();
                    all
                }
            });
        }
        if let Some(symbols) = symbols.filter(|s| !s.exported.is_empty() || !s.hidden.is_empty()) {
            out.insert(id.clone(), symbols);
        }
    }
    Ok(out)
}

/// The compiler and the link settings the members were built with.
#[derive(Debug, Clone)]
struct Toolchain {
    rustc: PathBuf,
    search_paths: Vec<String>,
    link_args: Vec<String>,
    target: Option<String>,
    sysroot_lib: PathBuf,
}

impl Toolchain {
    fn from_entries(entries: &[JournalEntry]) -> Result<Toolchain> {
        let first = entries
            .iter()
            .find(|e| e.executable)
            .or_else(|| entries.first())
            .context("no workspace member was compiled, so there is nothing to bundle for")?;
        let mut search_paths = Vec::new();
        for e in entries {
            for p in &e.search_paths {
                if !search_paths.contains(p) {
                    search_paths.push(p.clone());
                }
            }
        }
        let mut cmd = Command::new(&first.rustc);
        cmd.args(["--print", "target-libdir"]);
        if let Some(t) = &first.target {
            cmd.args(["--target", t]);
        }
        let out = cmd
            .output()
            .with_context(|| format!("failed to run `{}`", first.rustc.display()))?;
        if !out.status.success() {
            bail!(
                "`{} --print target-libdir` failed: {}",
                first.rustc.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let sysroot_lib = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Ok(Toolchain {
            rustc: first.rustc.clone(),
            search_paths,
            link_args: first.link_args.clone(),
            target: first.target.clone(),
            sysroot_lib,
        })
    }
}

impl Toolchain {
    /// `-L` for every search path the members were compiled with.
    fn search_path_args(&self) -> impl Iterator<Item = String> + '_ {
        self.search_paths
            .iter()
            .flat_map(|p| ["-L".to_owned(), p.clone()])
    }
}

enum Linked {
    Done(Box<BundleState>),
    /// Linking failed; the packages to blame (id -> linker message).
    Failed {
        culprits: BTreeMap<String, String>,
        message: String,
    },
}

fn alias_of(stem: &str) -> String {
    let hash = stem.rsplit_once('-').map_or("", |(_, h)| h);
    format!("{}_{hash}", crate_of_stem(stem))
}

/// What one library's link measured.
#[derive(Debug, Clone, Copy, Default)]
struct LinkCost {
    millis: u64,
    peak_kib: u64,
}

fn link(
    shell: &Shell,
    req: &Request<'_>,
    toolchain: &Toolchain,
    inputs: &Inputs,
    placed: &Placed,
    native: &BTreeMap<String, NativeSymbols>,
    proxy: &Path,
) -> Result<Linked> {
    let dir = req.layout.lib_dir();
    crate::fs::create_dir_all(&dir)?;
    // The state dir is part of every id: workspaces sharing a target dir
    // can share member units (cargo hashes a member's path relative to its
    // workspace), and each must see the other's build as stale.
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

    // Libraries linked before (the same crates, say after switching back
    // to an earlier selection) are reused.
    let mut todo = Vec::new();
    for (i, lib) in libs.iter_mut().enumerate() {
        let record = dir.join(format!("{}.json", lib.crate_name));
        let reused: Option<Lib> = std::fs::read(&record)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|_| lib.file.exists());
        match reused {
            Some(r) => {
                lib.size = r.size;
                lib.exported_symbols = r.exported_symbols;
                lib.link_millis = r.link_millis;
                lib.link_peak_kib = r.link_peak_kib;
            }
            None => todo.push(i),
        }
    }

    let started = Instant::now();
    let mut peak_kib = 0;
    if !todo.is_empty() {
        let crates: usize = todo.iter().map(|&i| libs[i].crates.len()).sum();
        shell.status(
            "Bundling",
            format_args!(
                "{crates} {} into {} shared {}",
                if crates == 1 { "crate" } else { "crates" },
                todo.len(),
                if todo.len() == 1 {
                    "library"
                } else {
                    "libraries"
                },
            ),
        );
        // Libraries of one level load only libraries of earlier levels.
        let mut level = vec![0usize; libs.len()];
        for i in 0..libs.len() {
            level[i] = placed.split.libs[i]
                .deps
                .iter()
                .map(|&d| level[d] + 1)
                .max()
                .unwrap_or(0);
        }
        let max_level = level.iter().copied().max().unwrap_or(0);
        for l in 0..=max_level {
            let batch: Vec<usize> = todo.iter().copied().filter(|&i| level[i] == l).collect();
            let results = crate::pool::parallel_map(&batch, |&i| {
                link_lib(shell, req, toolchain, &libs, i, placed, native, proxy)
            });
            let mut culprits = BTreeMap::new();
            let mut messages = Vec::new();
            for (&i, result) in batch.iter().zip(results) {
                match result? {
                    Ok((cost, size, exported)) => {
                        let lib = &mut libs[i];
                        lib.link_millis = cost.millis;
                        lib.link_peak_kib = cost.peak_kib;
                        lib.size = size;
                        lib.exported_symbols = exported;
                        peak_kib = peak_kib.max(cost.peak_kib);
                        let json = serde_json::to_vec_pretty(&*lib)
                            .context("failed to serialize a library's record")?;
                        crate::fs::write_atomic(
                            &dir.join(format!("{}.json", lib.crate_name)),
                            &json,
                        )?;
                    }
                    Err(message) => {
                        culprits.extend(self::culprits(&message, req, &placed.bundled_packages));
                        messages.push(message);
                    }
                }
            }
            if !messages.is_empty() {
                return Ok(Linked::Failed {
                    culprits,
                    message: messages.join("\n"),
                });
            }
        }
    }

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
                rlib_mtime: crate::fs::mtime_nanos(&c.rlib).unwrap_or_default(),
                rlib: c.rlib.clone(),
            },
        );
    }
    compile_facades(shell, toolchain, &dir, &libs, &roots)?;

    let mut id = StableHasher::default();
    for lib in &libs {
        id.write_str(&lib.id);
    }
    for root in roots.values() {
        id.write_str(&root.facade.to_string_lossy());
    }
    let largest = libs.iter().max_by_key(|l| l.size);
    let packages_by_stem = placed
        .rlibs
        .keys()
        .chain(&placed.static_stems)
        .filter_map(|s| Some((s.clone(), inputs.packages_by_stem.get(s)?.clone())))
        .collect();
    let state = BundleState {
        state_version: STATE_VERSION,
        id: id.finish_hex(),
        generation: req.generation.to_owned(),
        dir,
        sysroot_lib: toolchain.sysroot_lib.clone(),
        file: largest.map(|l| l.file.clone()).unwrap_or_default(),
        size: libs.iter().map(|l| l.size).sum(),
        exported_symbols: libs.iter().map(|l| l.exported_symbols).sum(),
        link_millis: if todo.is_empty() {
            0
        } else {
            started.elapsed().as_millis() as u64
        },
        link_peak_kib: peak_kib,
        libs,
        roots,
        units: inputs.units.clone(),
        packages_by_stem,
        static_stems: placed.static_stems.clone(),
        static_packages: placed.static_packages.clone(),
        bundled_packages: placed.bundled_packages.clone(),
        hidden_native: placed.hidden_native.clone(),
        link_failed: placed.link_failed.clone(),
        built_packages: placed.built_packages.clone(),
    };
    Ok(Linked::Done(Box::new(state)))
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
) -> Result<Result<(LinkCost, u64, usize), String>> {
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
        .arg(&dir)
        .args(toolchain.search_path_args())
        .arg("-L")
        .arg(format!("dependency={}", dir.display()))
        .args(&link_args)
        .arg("-C")
        .arg(format!("linker={}", proxy.display()))
        .env(crate::linker::env::EXPORTS, &exports)
        .args([
            "-C".to_owned(),
            format!("link-arg=-Wl,-rpath,{}", toolchain.sysroot_lib.display()),
            "-C".to_owned(),
            "link-arg=-Wl,-rpath,$ORIGIN".to_owned(),
        ]);
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
        Some(l) if Path::new(&l).file_name() != Some(crate::linker::LINKER_NAME.as_ref()) => {
            cmd.env(crate::linker::env::REAL_LINKER, l);
        }
        _ => {}
    }
    shell.verbose_status("Running", format_args!("`{}`", show(&cmd)));
    let log = dir.join(format!("{}.log", lib.crate_name));
    let log_file = std::fs::File::create(&log)
        .with_context(|| format!("failed to create `{}`", log.display()))?;
    cmd.stdout(std::process::Stdio::null()).stderr(log_file);
    let (status, millis, peak_kib) = crate::measure::run_measured(&mut cmd)
        .with_context(|| format!("failed to run `{}`", toolchain.rustc.display()))?;
    if !status.success() {
        return Ok(Err(crate::fs::read_to_string(&log)?));
    }
    let info = crate::inspect::dynamic_info(&lib.file)?;
    let size = std::fs::metadata(&lib.file)
        .map(|m| m.len())
        .unwrap_or_default();
    Ok(Ok((LinkCost { millis, peak_kib }, size, info.exported)))
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

fn rustc(toolchain: &Toolchain) -> Command {
    let mut cmd = Command::new(&toolchain.rustc);
    if let Some(t) = &toolchain.target {
        cmd.args(["--target", t]);
    }
    cmd
}

fn show(cmd: &Command) -> String {
    crate::shell::command_line(std::iter::once(cmd.get_program()).chain(cmd.get_args()))
}

/// One facade per root, compiled in parallel: each is a tiny crate. A
/// facade is named by its library and root, so one already made is kept.
fn compile_facades(
    shell: &Shell,
    toolchain: &Toolchain,
    dir: &Path,
    libs: &[Lib],
    roots: &BTreeMap<String, Root>,
) -> Result<()> {
    let jobs: Vec<&Root> = roots
        .values()
        .filter(|r| !r.facade.exists() || !r.facade.with_extension("ok").exists())
        .collect();
    let results = crate::pool::parallel_map(&jobs, |root| {
        let lib = libs
            .iter()
            .find(|l| l.crate_name == root.lib)
            .context("a facade's library is missing")?;
        compile_facade(shell, toolchain, dir, lib, root)
    });
    results.into_iter().collect()
}

fn compile_facade(
    shell: &Shell,
    toolchain: &Toolchain,
    dir: &Path,
    lib: &Lib,
    root: &Root,
) -> Result<()> {
    let file_stem = root
        .facade
        .file_stem()
        .and_then(|s| s.to_str())
        .context("facade path without a name")?;
    let hash = file_stem.rsplit_once('-').map_or("", |(_, h)| h);
    let src = dir.join(format!("{file_stem}.rs"));
    crate::fs::write_atomic(
        &src,
        crate::templates::facade_lib(&root.crate_name, &lib.crate_name, &root.alias)?.as_bytes(),
    )?;
    let mut cmd = rustc(toolchain);
    cmd.args(["--crate-name", &root.crate_name, "--edition=2021"])
        .arg(&src)
        .args([
            "--crate-type",
            "rlib",
            "--emit=link",
            "--cap-lints",
            "allow",
        ])
        .args(["-C", &format!("metadata={hash}")])
        .args(["-C", &format!("extra-filename=-{hash}")])
        .arg("--out-dir")
        .arg(dir)
        .arg("-L")
        .arg(format!("dependency={}", dir.display()))
        .args(toolchain.search_path_args())
        .arg("--extern")
        .arg(format!("{}={}", lib.crate_name, lib.file.display()));
    shell.verbose_status("Running", format_args!("`{}`", show(&cmd)));
    let out = cmd
        .output()
        .with_context(|| format!("failed to run `{}`", toolchain.rustc.display()))?;
    if !out.status.success() {
        bail!(
            "failed to compile the facade of `{}`\n\n{}",
            root.crate_name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    crate::fs::write_atomic(&root.facade.with_extension("ok"), b"")
}

/// Finds the packages a failed link names: their rlibs
/// (`.../deps/libfoo-0123abcd.rlib`) or their build scripts' output
/// (`.../build/foo-sys-0123abcd/out/libfoo.a`).
fn culprits(
    message: &str,
    req: &Request<'_>,
    bundled: &BTreeSet<String>,
) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    // Only the linker's own words: rustc also quotes the whole command
    // line, which names every rlib.
    let linker_says: String = message
        .lines()
        .filter(|l| !l.contains("\" \""))
        .collect::<Vec<_>>()
        .join("\n");
    let summary = linker_says
        .lines()
        .map(|l| l.trim().trim_start_matches("= note:").trim())
        .find(|l| l.contains("error:") && !l.starts_with("error: linking with"))
        .unwrap_or("the linker failed")
        .chars()
        .take(200)
        .collect::<String>();
    for word in linker_says.split(|c: char| {
        c.is_whitespace() || c == '\'' || c == '"' || c == '(' || c == ')' || c == '`'
    }) {
        let path = Path::new(word);
        // An rlib of the build: name it by its stem.
        if path.extension().is_some_and(|e| e == "rlib") {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str())
                && let Some(id) = req.packages_by_stem.get(stem)
            {
                found.insert(id.clone(), summary.clone());
            }
            continue;
        }
        // A build script's output dir: `build/<package>-<hash>/out/...`.
        let comps: Vec<&str> = word.split('/').collect();
        if let Some(i) = comps.iter().position(|c| *c == "build")
            && let Some((name, _hash)) = comps.get(i + 1).and_then(|c| c.rsplit_once('-'))
        {
            for id in bundled {
                if req.graph.nodes.get(id).is_some_and(|n| n.name == name) {
                    found.insert(id.clone(), summary.clone());
                }
            }
        }
    }
    // Never blame a package that is not in the bundle.
    found.retain(|id, _| bundled.contains(id));
    found
}

/// Removes libraries and facades that neither the current nor the
/// previous bundle uses, and bundles of the earlier one-library layout.
pub fn collect_garbage(
    layout: &Layout,
    current: &BundleState,
    previous: Option<&BundleState>,
) -> Result<()> {
    let mut keep: BTreeSet<String> = BTreeSet::new();
    for state in std::iter::once(current).chain(previous) {
        keep.extend(state.libs.iter().map(|l| l.crate_name.clone()));
        keep.extend(state.roots.values().filter_map(|r| {
            Some(
                r.facade
                    .file_stem()?
                    .to_str()?
                    .trim_start_matches("lib")
                    .to_owned(),
            )
        }));
    }
    let kept = |name: &str| {
        let stem = name.split('.').next().unwrap_or(name);
        keep.contains(stem.strip_prefix("lib").unwrap_or(stem)) || keep.contains(stem)
    };
    if let Ok(dir) = std::fs::read_dir(layout.lib_dir()) {
        for item in dir.flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            if !kept(&name) {
                let _ = std::fs::remove_file(item.path());
            }
        }
    }
    let Ok(dir) = std::fs::read_dir(&layout.state_dir) else {
        return Ok(());
    };
    for item in dir.flatten() {
        let name = item.file_name();
        let name = name.to_string_lossy();
        let is_old_bundle_dir = name.len() == 16 && name.chars().all(|c| c.is_ascii_hexdigit());
        if is_old_bundle_dir {
            std::fs::remove_dir_all(item.path())
                .with_context(|| format!("failed to remove `{}`", item.path().display()))?;
        }
    }
    Ok(())
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
    fn the_linker_is_blamed_only_for_what_it_names() {
        let message = r#"error: linking with `cc` failed: exit status: 1
  |
  = note:  "cc" "-Wl,--version-script=/t/list" "/t/deps/libgood-1.rlib" "/t/deps/libbad-2.rlib" "-o" "x.so"
  = note: rust-lld: error: relocation R_X86_64_TPOFF32 against counter cannot be used with -shared
          >>> defined in /t/deps/libbad-2.rlib(c.o)
"#;
        let graph = Graph {
            nodes: ["good", "bad"]
                .into_iter()
                .map(|n| {
                    (
                        n.to_owned(),
                        crate::plan::Node {
                            id: n.into(),
                            name: n.into(),
                            version: "1.0.0".into(),
                            source: crate::plan::Source::Registry,
                            member: false,
                            proc_macro: false,
                            lib_types: Some(vec!["lib".into()]),
                            deps: Vec::new(),
                        },
                    )
                })
                .collect(),
        };
        let by_stem = BTreeMap::from([
            ("libgood-1".to_owned(), "good".to_owned()),
            ("libbad-2".to_owned(), "bad".to_owned()),
        ]);
        let layout = Layout::new(Path::new("/t"), "debug", Path::new("/w"));
        let req = Request {
            layout: &layout,
            workspace_name: "w",
            generation: "g",
            entries: &[],
            packages_by_stem: &by_stem,
            rlibs_by_package: &BTreeMap::new(),
            built_packages: &BTreeSet::new(),
            graph: &graph,
            config: &Config::default(),
            previous: None,
        };
        let bundled = BTreeSet::from(["good".to_owned(), "bad".to_owned()]);
        let blamed = culprits(message, &req, &bundled);
        assert_eq!(blamed.keys().collect::<Vec<_>>(), ["bad"]);
        assert!(
            blamed["bad"].starts_with("rust-lld: error: relocation R_X86_64_TPOFF32"),
            "{blamed:?}"
        );
    }

    #[test]
    fn aliases_are_unique_per_unit() {
        assert_eq!(alias_of("libregex-0123abcd"), "regex_0123abcd");
        assert_eq!(alias_of("libitoa-1"), "itoa_1");
    }
}
