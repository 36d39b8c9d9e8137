//! Making the bundle: choosing its roots from what the members use, linking
//! the exact rlibs of the user's build into one shared library with rustc,
//! and compiling a facade for each root. Because the bundle is linked from
//! the user build's own units, it never holds a second copy of a crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::config::Config;
use crate::fs::StableHasher;
use crate::inspect::NativeSymbols;
use crate::layout::Layout;
use crate::plan::{Graph, Placement, PlanInput};
use crate::shell::Shell;
use crate::state::{BundleState, JournalEntry, Root, STATE_VERSION};
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
    /// The bundle in use so far, whose roots carry over within a generation.
    pub previous: Option<&'a BundleState>,
}

/// One dependency unit a member uses, before planning.
#[derive(Debug, Clone)]
struct Candidate {
    stem: String,
    rlib: PathBuf,
    package_id: String,
}

pub fn make(shell: &Shell, req: &Request<'_>) -> Result<BundleState> {
    let candidates = candidates(req);
    let toolchain = Toolchain::from_entries(req.entries)?;
    let native = scan_native_code(req)?;
    let hidden_native: BTreeMap<String, String> = native
        .iter()
        .filter_map(|(id, n)| Some((id.clone(), n.hidden.first()?.clone())))
        .collect();
    let mut link_failed: BTreeMap<String, String> = req
        .previous
        .filter(|p| p.generation == req.generation)
        .map(|p| p.link_failed.clone())
        .unwrap_or_default();

    // Within a generation the bundle may keep roots of other selections, so
    // the packages they compiled count too.
    let mut built = req.built_packages.clone();
    if let Some(prev) = req.previous.filter(|p| p.generation == req.generation) {
        built.extend(prev.built_packages.iter().cloned());
    }
    let graph = req.graph.restricted_to(&built);

    loop {
        let placed = place(req, &graph, &candidates, &link_failed, &hidden_native);
        match link(shell, req, &toolchain, &placed, &native)? {
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

/// The units members use that are not workspace members, and those carried
/// over from the previous bundle of the same generation.
fn candidates(req: &Request<'_>) -> Vec<Candidate> {
    let mut out: BTreeMap<String, Candidate> = BTreeMap::new();
    for entry in req.entries {
        for ext in &entry.externs {
            let Some(package_id) = req.packages_by_stem.get(&ext.stem) else {
                continue;
            };
            if req.graph.nodes.get(package_id).is_some_and(|n| n.member) {
                continue;
            }
            out.entry(ext.stem.clone()).or_insert_with(|| Candidate {
                stem: ext.stem.clone(),
                rlib: ext.path.with_extension("rlib"),
                package_id: package_id.clone(),
            });
        }
    }
    if let Some(prev) = req.previous.filter(|p| p.generation == req.generation) {
        for (stem, root) in &prev.roots {
            // A root rebuilt since is stale for the selection that used it;
            // that selection will bring it back when it builds again.
            if crate::fs::mtime_nanos(&root.rlib) == Some(root.rlib_mtime) {
                out.entry(stem.clone()).or_insert_with(|| Candidate {
                    stem: stem.clone(),
                    rlib: root.rlib.clone(),
                    package_id: root.package_id.clone(),
                });
            }
        }
    }
    out.into_values().collect()
}

/// Candidates split by the plan into roots and static units.
#[derive(Debug)]
struct Placed {
    roots: Vec<Candidate>,
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
    candidates: &[Candidate],
    link_failed: &BTreeMap<String, String>,
    hidden_native: &BTreeMap<String, String>,
) -> Placed {
    let root_ids: BTreeSet<String> = candidates.iter().map(|c| c.package_id.clone()).collect();
    let members: BTreeSet<&str> = req.entries.iter().map(|e| e.package.as_str()).collect();
    let selected = graph
        .nodes
        .values()
        .filter(|n| n.member && members.contains(n.name.as_str()))
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
    let mut placed = Placed {
        roots: Vec::new(),
        static_stems: BTreeSet::new(),
        static_packages: BTreeMap::new(),
        bundled_packages: plan.bundled().map(str::to_owned).collect(),
        hidden_native: hidden_native.clone(),
        link_failed: link_failed.clone(),
        built_packages: graph.nodes.keys().cloned().collect(),
    };
    for c in candidates {
        match plan.placement(&c.package_id) {
            Some(Placement::Bundle { .. }) => placed.roots.push(c.clone()),
            _ => {
                placed.static_stems.insert(c.stem.clone());
            }
        }
    }
    for (id, placement) in &plan.placements {
        if let Placement::Static { reason } = placement {
            placed
                .static_packages
                .insert(id.clone(), reason.to_string());
        }
    }
    placed
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

fn link(
    shell: &Shell,
    req: &Request<'_>,
    toolchain: &Toolchain,
    placed: &Placed,
    native: &BTreeMap<String, NativeSymbols>,
) -> Result<Linked> {
    // The state dir is part of the id: workspaces sharing a target dir can
    // share member units (cargo hashes a member's path relative to its
    // workspace), and each must see the other's build as stale.
    let mut h = StableHasher::default();
    h.write_str(&req.layout.state_dir.to_string_lossy())
        .write_str(&STATE_VERSION.to_string())
        .write_str(env!("CARGO_PKG_VERSION"))
        .write_str(&toolchain.rustc.to_string_lossy())
        .write_str(toolchain.target.as_deref().unwrap_or(""));
    for root in &placed.roots {
        h.write_str(&root.stem).write_str(
            &crate::fs::mtime_nanos(&root.rlib)
                .unwrap_or_default()
                .to_string(),
        );
    }
    for a in toolchain.link_args.iter().chain(&toolchain.search_paths) {
        h.write_str(a);
    }
    let id = h.finish_hex();
    let crate_name = format!("dyndev_bundle_{}", &id[..12]);
    let dir = req.layout.bundle_dir(&id);
    let file = dir.join(format!("lib{crate_name}.so"));

    let mut roots = BTreeMap::new();
    for c in &placed.roots {
        let alias = alias_of(&c.stem);
        let fhash = StableHasher::default()
            .write_str(&id)
            .write_str(&c.stem)
            .finish_hex();
        roots.insert(
            c.stem.clone(),
            Root {
                package_id: c.package_id.clone(),
                crate_name: crate_of_stem(&c.stem).to_owned(),
                facade: dir.join(format!("lib{}-{fhash}.rlib", crate_of_stem(&c.stem))),
                alias,
                rlib_mtime: crate::fs::mtime_nanos(&c.rlib).unwrap_or_default(),
                rlib: c.rlib.clone(),
            },
        );
    }
    let mut state = BundleState {
        state_version: STATE_VERSION,
        id: id.clone(),
        generation: req.generation.to_owned(),
        crate_name: crate_name.clone(),
        dir: dir.clone(),
        file: file.clone(),
        sysroot_lib: toolchain.sysroot_lib.clone(),
        roots,
        static_stems: placed.static_stems.clone(),
        static_packages: placed.static_packages.clone(),
        bundled_packages: placed.bundled_packages.clone(),
        hidden_native: placed.hidden_native.clone(),
        link_failed: placed.link_failed.clone(),
        built_packages: placed.built_packages.clone(),
        size: 0,
        exported_symbols: 0,
        link_millis: 0,
        link_peak_kib: 0,
    };

    // The same inputs were linked before (say, switching back to an earlier
    // selection): reuse them.
    let done_marker = dir.join("done");
    if done_marker.exists() && state.roots.values().all(|r| r.facade.exists()) && file.exists() {
        let reused: Option<BundleState> = crate::fs::read_to_string(&dir.join("state.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        if let Some(mut reused) = reused {
            reused.generation = req.generation.to_owned();
            reused.static_stems = state.static_stems;
            reused.static_packages = state.static_packages;
            reused.bundled_packages = state.bundled_packages;
            reused.hidden_native = state.hidden_native;
            reused.link_failed = state.link_failed;
            reused.built_packages = state.built_packages;
            return Ok(Linked::Done(Box::new(reused)));
        }
    }

    let started = Instant::now();
    shell.status(
        "Bundling",
        format_args!(
            "{} {} ({} packages) into {}",
            state.roots.len(),
            if state.roots.len() == 1 {
                "dependency"
            } else {
                "dependencies"
            },
            state.bundled_packages.len(),
            file.file_name().unwrap_or_default().to_string_lossy()
        ),
    );
    let src = dir.join("src");
    crate::fs::create_dir_all(&src)?;
    let aliases: Vec<&str> = state.roots.values().map(|r| r.alias.as_str()).collect();
    let lib_rs = src.join("lib.rs");
    crate::fs::write_atomic(
        &lib_rs,
        crate::templates::bundle_lib(req.workspace_name, &aliases)?.as_bytes(),
    )?;

    // C code that `-sys` crates bundle into their rlibs is linked into the
    // bundle, but rustc exports only Rust symbols from a dylib. The linker
    // proxy exports the C symbols too, so members that call them directly
    // still link.
    let native: BTreeSet<&String> = state
        .bundled_packages
        .iter()
        .filter_map(|id| native.get(id))
        .flat_map(|n| &n.exported)
        .collect();
    let exports = dir.join("native-exports.txt");
    let mut list: String = native.iter().map(|s| format!("{s}\n")).collect();
    if list.is_empty() {
        list.push('\n');
    }
    crate::fs::write_atomic(&exports, list.as_bytes())?;
    let proxy = crate::measure::install_instrument(
        &req.layout.state_dir.join("bin"),
        crate::linker::LINKER_NAME,
    )?;
    let (user_linker, link_args) = split_linker(&toolchain.link_args);

    let mut cmd = rustc(toolchain);
    cmd.args(["--crate-name", &crate_name, "--edition=2021"])
        .arg(&lib_rs)
        .args([
            "--crate-type",
            "dylib",
            "--emit=link",
            "--cap-lints",
            "allow",
        ])
        .args(["-C", "prefer-dynamic", "-C", &format!("metadata={id}")])
        .arg("--out-dir")
        .arg(&dir)
        .args(toolchain.search_path_args())
        .args(&link_args)
        .arg("-C")
        .arg(format!("linker={}", proxy.display()))
        .env(crate::linker::env::EXPORTS, &exports)
        .args([
            "-C".to_owned(),
            format!("link-arg=-Wl,-rpath,{}", toolchain.sysroot_lib.display()),
        ]);
    for root in state.roots.values() {
        cmd.arg("--extern")
            .arg(format!("{}={}", root.alias, root.rlib.display()));
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
    let log = dir.join("link.log");
    let log_file = std::fs::File::create(&log)
        .with_context(|| format!("failed to create `{}`", log.display()))?;
    cmd.stdout(std::process::Stdio::null()).stderr(log_file);
    let (status, _, peak_kib) = crate::measure::run_measured(&mut cmd)
        .with_context(|| format!("failed to run `{}`", toolchain.rustc.display()))?;
    if !status.success() {
        let message = crate::fs::read_to_string(&log)?;
        return Ok(Linked::Failed {
            culprits: culprits(&message, req, &state),
            message,
        });
    }
    state.link_peak_kib = peak_kib;

    compile_facades(shell, toolchain, &state)?;

    let info = crate::inspect::dynamic_info(&file)?;
    state.size = std::fs::metadata(&file)
        .map(|m| m.len())
        .unwrap_or_default();
    state.exported_symbols = info.exported;
    state.link_millis = started.elapsed().as_millis() as u64;
    crate::fs::write_atomic(
        &dir.join("state.json"),
        &serde_json::to_vec_pretty(&state).context("failed to serialize bundle state")?,
    )?;
    crate::fs::write_atomic(&done_marker, b"")?;
    Ok(Linked::Done(Box::new(state)))
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
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// One facade per root, compiled in parallel: each is a tiny crate.
fn compile_facades(shell: &Shell, toolchain: &Toolchain, state: &BundleState) -> Result<()> {
    let jobs: Vec<(&String, &Root)> = state.roots.iter().collect();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let bundle_extern = format!("{}={}", state.crate_name, state.file.display());
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((_, root)) = jobs.get(i) else {
                            return Ok(());
                        };
                        compile_facade(shell, toolchain, state, root, &bundle_extern)?;
                    }
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a facade compile panicked"))??;
        }
        Ok(())
    })
}

fn compile_facade(
    shell: &Shell,
    toolchain: &Toolchain,
    state: &BundleState,
    root: &Root,
    bundle_extern: &str,
) -> Result<()> {
    let src = state.dir.join("src").join(format!("{}.rs", root.alias));
    crate::fs::write_atomic(
        &src,
        crate::templates::facade_lib(&root.crate_name, &state.crate_name, &root.alias)?.as_bytes(),
    )?;
    let file_stem = root
        .facade
        .file_stem()
        .and_then(|s| s.to_str())
        .context("facade path without a name")?;
    let hash = file_stem.rsplit_once('-').map_or("", |(_, h)| h);
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
        .arg(&state.dir)
        .arg("-L")
        .arg(format!("dependency={}", state.dir.display()))
        .args(toolchain.search_path_args())
        .args(["--extern", bundle_extern]);
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
    Ok(())
}

/// Finds the packages a failed link names: their rlibs
/// (`.../deps/libfoo-0123abcd.rlib`) or their build scripts' output
/// (`.../build/foo-sys-0123abcd/out/libfoo.a`).
fn culprits(message: &str, req: &Request<'_>, state: &BundleState) -> BTreeMap<String, String> {
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
            for id in &state.bundled_packages {
                if req.graph.nodes.get(id).is_some_and(|n| n.name == name) {
                    found.insert(id.clone(), summary.clone());
                }
            }
        }
    }
    // Never blame a package that is not in the bundle.
    found.retain(|id, _| state.bundled_packages.contains(id));
    found
}

/// Removes bundles other than the current and the previous one, and the
/// journals of finished builds.
pub fn collect_garbage(layout: &Layout, keep: &[&str]) -> Result<()> {
    let Ok(dir) = std::fs::read_dir(&layout.state_dir) else {
        return Ok(());
    };
    for item in dir.flatten() {
        let name = item.file_name();
        let name = name.to_string_lossy();
        let is_bundle_dir = name.len() == 16 && name.chars().all(|c| c.is_ascii_hexdigit());
        if is_bundle_dir && !keep.contains(&name.as_ref()) {
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
        let mut state = crate::state::BundleState {
            state_version: STATE_VERSION,
            id: "i".into(),
            generation: "g".into(),
            crate_name: "b".into(),
            dir: "/d".into(),
            file: "/d/b.so".into(),
            sysroot_lib: "/s".into(),
            ..Default::default()
        };
        state
            .bundled_packages
            .extend(["good".to_owned(), "bad".to_owned()]);
        let blamed = culprits(message, &req, &state);
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
