//! Where each package goes: into the bundle, statically into every binary,
//! or onto the host (proc-macros, build scripts). Pure: a package graph in,
//! placements out, so the rules can be read and tested without cargo.
//!
//! The rules, in order:
//! 1. Packages reached from the selected members through normal (and, for
//!    tests, dev) dependencies are target code; proc-macros and build
//!    dependencies, and everything under them, are host code.
//! 2. Target code that is not a workspace member may be bundled unless it
//!    is excluded by config, is a path dependency (edited with the
//!    workspace, so kept static unless `include`d), has no rlib, or failed
//!    to link into a shared library.
//! 3. A package depending on one that stays static stays static too: the
//!    bundle would otherwise hold a copy of the static one.
//! 4. The bundle holds the members' bundleable direct dependencies (the
//!    roots) and everything they depend on.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use cargo_metadata::{DependencyKind, Metadata};
use serde::{Deserialize, Serialize};

use crate::settings::Settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Registry,
    Git,
    Path,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub name: String,
    pub version: String,
    pub source: Source,
    pub member: bool,
    pub proc_macro: bool,
    /// Crate types of the library target; `None` for a package without one.
    pub lib_types: Option<Vec<String>>,
    pub deps: Vec<Edge>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub id: String,
    pub normal: bool,
    pub build: bool,
    pub dev: bool,
}

/// The package graph, keyed by package id.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub nodes: BTreeMap<String, Node>,
}

impl Graph {
    /// From `cargo metadata` output with its `resolve` section.
    pub fn from_metadata(meta: &Metadata) -> Graph {
        let mut nodes = BTreeMap::new();
        let deps_of: BTreeMap<_, _> = meta
            .resolve
            .iter()
            .flat_map(|r| &r.nodes)
            .map(|n| (n.id.repr.clone(), &n.deps))
            .collect();
        for pkg in &meta.packages {
            let lib = pkg.targets.iter().find(|t| {
                t.is_lib()
                    || t.is_proc_macro()
                    || t.crate_types.iter().any(|c| {
                        matches!(
                            c,
                            cargo_metadata::CrateType::RLib
                                | cargo_metadata::CrateType::DyLib
                                | cargo_metadata::CrateType::CDyLib
                                | cargo_metadata::CrateType::StaticLib
                        )
                    }) && !t.is_bin()
            });
            let source = match &pkg.source {
                None => Source::Path,
                Some(s) if s.repr.starts_with("git+") => Source::Git,
                Some(_) => Source::Registry,
            };
            let deps = deps_of
                .get(&pkg.id.repr)
                .map(|deps| {
                    deps.iter()
                        .map(|d| Edge {
                            id: d.pkg.repr.clone(),
                            normal: d.dep_kinds.iter().any(|k| k.kind == DependencyKind::Normal),
                            build: d.dep_kinds.iter().any(|k| k.kind == DependencyKind::Build),
                            dev: d
                                .dep_kinds
                                .iter()
                                .any(|k| k.kind == DependencyKind::Development),
                        })
                        .collect()
                })
                .unwrap_or_default();
            nodes.insert(
                pkg.id.repr.clone(),
                Node {
                    id: pkg.id.repr.clone(),
                    name: pkg.name.to_string(),
                    version: pkg.version.to_string(),
                    source,
                    member: meta.workspace_members.contains(&pkg.id),
                    proc_macro: lib.is_some_and(|t| t.is_proc_macro()),
                    lib_types: lib.map(|t| t.crate_types.iter().map(|c| c.to_string()).collect()),
                    deps,
                },
            );
        }
        Graph { nodes }
    }

    fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.get(id)
    }

    /// Only the packages in `keep`, and the edges between them. `cargo
    /// metadata` resolves optional dependencies for every feature anyone
    /// asks for; a build knows which packages it really compiled.
    pub fn restricted_to(&self, keep: &BTreeSet<String>) -> Graph {
        let nodes = self
            .nodes
            .iter()
            .filter(|(id, _)| keep.contains(*id))
            .map(|(id, node)| {
                let mut node = node.clone();
                node.deps.retain(|e| keep.contains(&e.id));
                (id.clone(), node)
            })
            .collect();
        Graph { nodes }
    }
}

/// Why a package is not in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reason {
    WorkspaceMember,
    ProcMacro,
    BuildDependency,
    /// A path dependency outside the workspace: edited with it, so static.
    LocalPath,
    /// Named in `exclude`.
    Excluded,
    /// Its library is not an rlib (a dylib, cdylib or staticlib).
    NotRlib {
        crate_types: Vec<String>,
    },
    /// Linking it into the bundle failed; the linker's words.
    LinkFailed {
        message: String,
    },
    /// Its C code has hidden symbols (like `symbol`): a shared library cannot
    /// export them, and code outside the bundle may call them.
    HiddenNativeSymbols {
        symbol: String,
    },
    /// Depends on a package that stays static.
    DependsOn {
        package: String,
    },
    /// Only static packages need it, so it links with them.
    OnlyUnder {
        package: String,
    },
    /// rustc could not link a program using it, so its closure is unknown.
    ClosureUnknown {
        message: String,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::WorkspaceMember => f.write_str("workspace member"),
            Reason::ProcMacro => f.write_str("proc-macro, runs in the compiler"),
            Reason::BuildDependency => f.write_str("build-dependency only"),
            Reason::LocalPath => {
                f.write_str("path dependency, edited with the workspace (`include` to bundle it)")
            }
            Reason::Excluded => f.write_str("excluded by config"),
            Reason::NotRlib { crate_types } => {
                write!(
                    f,
                    "cannot be a dylib: its library is {}",
                    crate_types.join(", ")
                )
            }
            Reason::LinkFailed { message } => {
                write!(
                    f,
                    "cannot be a dylib: linking it into the bundle failed: {message}"
                )
            }
            Reason::HiddenNativeSymbols { symbol } => write!(
                f,
                "cannot be a dylib: its C code hides its symbols (`{symbol}`), so a shared library cannot export them"
            ),
            Reason::DependsOn { package } => write!(f, "depends on `{package}`, which is static"),
            Reason::OnlyUnder { package } => {
                write!(f, "needed only by `{package}`, which is static")
            }
            Reason::ClosureUnknown { message } => write!(
                f,
                "cannot be a dylib: its dependencies could not be read: {message}"
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "placement", rename_all = "kebab-case")]
pub enum Placement {
    /// In the bundle; `root` when a member uses it directly.
    Bundle { root: bool },
    /// Linked statically into each binary that uses it.
    Static { reason: Reason },
    /// Compiled for the host only.
    Host { reason: Reason },
}

impl Placement {
    pub fn is_bundled(&self) -> bool {
        matches!(self, Placement::Bundle { .. })
    }

    pub fn label(&self) -> &'static str {
        match self {
            Placement::Bundle { .. } => "bundle",
            Placement::Static { .. } => "static",
            Placement::Host { .. } => "host",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    pub graph: &'a Graph,
    /// The members being built, by id.
    pub selected: Vec<String>,
    /// Whether dev-dependencies are built (tests, examples).
    pub dev: bool,
    pub settings: &'a Settings,
    /// Packages already found unable to link into a shared library.
    pub link_failed: &'a BTreeMap<String, String>,
    /// Packages whose native code defines hidden symbols, with one of them.
    pub hidden_native: &'a BTreeMap<String, String>,
    /// The roots actually used, when known from a build; otherwise every
    /// bundleable direct dependency of a target-side member.
    pub roots: Option<&'a BTreeSet<String>>,
}

/// Every package of the build, by id, with its placement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub placements: BTreeMap<String, Placement>,
}

impl Plan {
    pub fn placement(&self, id: &str) -> Option<&Placement> {
        self.placements.get(id)
    }
}

pub fn plan(input: &PlanInput<'_>) -> Plan {
    let graph = input.graph;
    let (target, host) = split_target_and_host(input);

    // Rule 2: what may be bundled on its own merits.
    let own_reason = |node: &Node| -> Option<Reason> {
        if node.member {
            return Some(Reason::WorkspaceMember);
        }
        if input.settings.exclude.contains(&node.name) {
            return Some(Reason::Excluded);
        }
        if let Some(message) = input.link_failed.get(&node.id) {
            return Some(Reason::LinkFailed {
                message: message.clone(),
            });
        }
        if let Some(symbol) = input.hidden_native.get(&node.id) {
            return Some(Reason::HiddenNativeSymbols {
                symbol: symbol.clone(),
            });
        }
        match &node.lib_types {
            Some(types) if types.iter().any(|t| t == "lib" || t == "rlib") => {}
            Some(types) => {
                return Some(Reason::NotRlib {
                    crate_types: types.clone(),
                });
            }
            None => {
                return Some(Reason::NotRlib {
                    crate_types: Vec::new(),
                });
            }
        }
        if node.source == Source::Path && !input.settings.include.contains(&node.name) {
            return Some(Reason::LocalPath);
        }
        None
    };

    // Rule 3: static-ness flows up from dependencies.
    let mut verdict: BTreeMap<&str, Option<Reason>> = BTreeMap::new();
    /// Why `id` must stay static, or `None` when it may be bundled.
    fn static_reason<'g>(
        id: &'g str,
        graph: &'g Graph,
        own_reason: &dyn Fn(&Node) -> Option<Reason>,
        verdict: &mut BTreeMap<&'g str, Option<Reason>>,
    ) -> Option<Reason> {
        if let Some(v) = verdict.get(id) {
            return v.clone();
        }
        let node = graph.node(id)?;
        // Guard against cycles through path members.
        verdict.insert(id, None);
        let mut reason = own_reason(node);
        if reason.is_none() {
            for edge in node.deps.iter().filter(|e| e.normal) {
                let Some(dep) = graph.node(&edge.id) else {
                    continue;
                };
                if dep.proc_macro {
                    continue;
                }
                if static_reason(&edge.id, graph, own_reason, verdict).is_some() {
                    reason = Some(Reason::DependsOn {
                        package: dep.name.clone(),
                    });
                    break;
                }
            }
        }
        verdict.insert(id, reason.clone());
        reason
    }

    // Rule 4: roots and their closure.
    let computed_roots: BTreeSet<String>;
    let roots = match input.roots {
        Some(r) => r,
        None => {
            computed_roots = target
                .iter()
                .filter_map(|id| graph.node(id))
                .filter(|n| n.member)
                .flat_map(|m| {
                    m.deps
                        .iter()
                        .filter(|e| e.normal || (input.dev && e.dev))
                        .map(|e| e.id.clone())
                })
                .filter(|id| target.contains(id))
                .filter(|id| graph.node(id).is_some_and(|n| !n.member && !n.proc_macro))
                .collect();
            &computed_roots
        }
    };

    let mut placements = BTreeMap::new();
    let mut queue: VecDeque<(&str, bool)> = VecDeque::new();
    for root in roots {
        if static_reason(root, graph, &own_reason, &mut verdict).is_none() {
            queue.push_back((root.as_str(), true));
        }
    }
    while let Some((id, root)) = queue.pop_front() {
        let entry = placements
            .entry(id.to_owned())
            .or_insert(Placement::Bundle { root });
        if root {
            *entry = Placement::Bundle { root: true };
        }
        if let Some(node) = graph.node(id) {
            for e in node.deps.iter().filter(|e| e.normal) {
                let proc_macro = graph.node(&e.id).is_some_and(|n| n.proc_macro);
                if !proc_macro && !placements.contains_key(&e.id) {
                    queue.push_back((e.id.as_str(), false));
                }
            }
        }
    }

    // Everything else on the target side is static, with its reason.
    for id in &target {
        if placements.contains_key(id) {
            continue;
        }
        let reason = match static_reason(id, graph, &own_reason, &mut verdict) {
            Some(reason) => reason,
            None => Reason::OnlyUnder {
                package: static_parent(id, &target, graph, &placements)
                    .unwrap_or_else(|| "?".into()),
            },
        };
        placements.insert(id.clone(), Placement::Static { reason });
    }
    for id in host {
        placements.entry(id.clone()).or_insert_with(|| {
            let reason = if graph.node(&id).is_some_and(|n| n.proc_macro) {
                Reason::ProcMacro
            } else {
                Reason::BuildDependency
            };
            Placement::Host { reason }
        });
    }
    Plan { placements }
}

/// Rule 1: walks from the selected members, splitting target code from
/// host code. A package can be both; it is then listed by its target role.
fn split_target_and_host(input: &PlanInput<'_>) -> (BTreeSet<String>, BTreeSet<String>) {
    let graph = input.graph;
    let mut target = BTreeSet::new();
    let mut host = BTreeSet::new();
    let mut queue: VecDeque<(String, bool)> = input
        .selected
        .iter()
        .map(|id| {
            let is_host = graph.node(id).is_some_and(|n| n.proc_macro);
            (id.clone(), is_host)
        })
        .collect();
    while let Some((id, is_host)) = queue.pop_front() {
        let set = if is_host { &mut host } else { &mut target };
        if !set.insert(id.clone()) {
            continue;
        }
        let Some(node) = graph.node(&id) else {
            continue;
        };
        // Dev-dependencies count only for the selected members themselves.
        let dev = input.dev && node.member && input.selected.contains(&id);
        for e in &node.deps {
            let dep_is_proc_macro = graph.node(&e.id).is_some_and(|n| n.proc_macro);
            if e.build || (is_host && (e.normal || e.dev && dev)) {
                queue.push_back((e.id.clone(), true));
            }
            if !is_host && (e.normal || (dev && e.dev)) {
                queue.push_back((e.id.clone(), dep_is_proc_macro));
            }
        }
    }
    (target, host)
}

/// The name of a static package on the target side that depends on `id`.
fn static_parent(
    id: &str,
    target: &BTreeSet<String>,
    graph: &Graph,
    placements: &BTreeMap<String, Placement>,
) -> Option<String> {
    target
        .iter()
        .filter_map(|p| graph.node(p))
        .filter(|n| !placements.get(&n.id).is_some_and(Placement::is_bundled))
        .find(|n| n.deps.iter().any(|e| e.normal && e.id == id))
        .map(|n| n.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small graph: `app` (member) uses `log`, `serde` (+ derive), a path
    /// crate `engine` that uses `itoa`, and `tokio` only as a dev-dependency.
    struct Fixture {
        graph: Graph,
    }

    fn node(name: &str, source: Source, deps: &[(&str, &str)]) -> Node {
        Node {
            id: name.into(),
            name: name.into(),
            version: "1.0.0".into(),
            source,
            member: false,
            proc_macro: false,
            lib_types: Some(vec!["lib".into()]),
            deps: deps
                .iter()
                .map(|(id, kind)| Edge {
                    id: (*id).into(),
                    normal: *kind == "normal",
                    build: *kind == "build",
                    dev: *kind == "dev",
                })
                .collect(),
        }
    }

    fn fixture() -> Fixture {
        let mut nodes = vec![
            node(
                "app",
                Source::Path,
                &[
                    ("log", "normal"),
                    ("serde", "normal"),
                    ("engine", "normal"),
                    ("tokio", "dev"),
                    ("cc", "build"),
                ],
            ),
            node("log", Source::Registry, &[("cfg-if", "normal")]),
            node("cfg-if", Source::Registry, &[]),
            node("serde", Source::Registry, &[("serde_derive", "normal")]),
            node("serde_derive", Source::Registry, &[("syn", "normal")]),
            node("syn", Source::Registry, &[]),
            node("engine", Source::Path, &[("itoa", "normal")]),
            node("itoa", Source::Registry, &[]),
            node("tokio", Source::Registry, &[("cfg-if", "normal")]),
            node("cc", Source::Registry, &[]),
        ];
        nodes[0].member = true;
        nodes[4].proc_macro = true;
        Fixture {
            graph: Graph {
                nodes: nodes.into_iter().map(|n| (n.id.clone(), n)).collect(),
            },
        }
    }

    /// Plans `app` of the fixture with the given inputs.
    fn plan_app(
        f: &Fixture,
        config: &Settings,
        dev: bool,
        link_failed: &BTreeMap<String, String>,
        hidden_native: &BTreeMap<String, String>,
        roots: Option<&BTreeSet<String>>,
    ) -> Plan {
        plan(&PlanInput {
            graph: &f.graph,
            selected: vec!["app".into()],
            dev,
            settings: config,
            link_failed,
            hidden_native,
            roots,
        })
    }

    fn run(f: &Fixture, config: &Settings, dev: bool) -> Plan {
        plan_app(f, config, dev, &BTreeMap::new(), &BTreeMap::new(), None)
    }

    fn label(p: &Plan, id: &str) -> String {
        match p.placement(id) {
            Some(Placement::Bundle { root: true }) => "bundle root".into(),
            Some(Placement::Bundle { root: false }) => "bundle".into(),
            Some(Placement::Static { reason }) => format!("static: {reason}"),
            Some(Placement::Host { reason }) => format!("host: {reason}"),
            None => "absent".into(),
        }
    }

    #[test]
    fn places_each_kind_of_package() {
        let f = fixture();
        let p = run(&f, &Settings::default(), false);
        assert_eq!(label(&p, "app"), "static: workspace member");
        assert_eq!(label(&p, "log"), "bundle root");
        assert_eq!(label(&p, "cfg-if"), "bundle");
        assert_eq!(label(&p, "serde"), "bundle root");
        assert_eq!(
            label(&p, "serde_derive"),
            "host: proc-macro, runs in the compiler"
        );
        assert_eq!(label(&p, "syn"), "host: build-dependency only");
        assert_eq!(label(&p, "cc"), "host: build-dependency only");
        assert!(label(&p, "engine").starts_with("static: path dependency"));
        assert_eq!(
            label(&p, "itoa"),
            "static: needed only by `engine`, which is static"
        );
        assert_eq!(
            label(&p, "tokio"),
            "absent",
            "dev-dependencies only count for tests"
        );
    }

    #[test]
    fn tests_bring_dev_dependencies_into_the_bundle() {
        let f = fixture();
        let p = run(&f, &Settings::default(), true);
        assert_eq!(label(&p, "tokio"), "bundle root");
    }

    #[test]
    fn exclusion_flows_up_to_dependents() {
        let f = fixture();
        let config = Settings {
            exclude: vec!["cfg-if".into()],
            ..Settings::default()
        };
        let p = run(&f, &config, false);
        assert_eq!(label(&p, "cfg-if"), "static: excluded by config");
        assert_eq!(
            label(&p, "log"),
            "static: depends on `cfg-if`, which is static"
        );
        assert_eq!(
            label(&p, "serde"),
            "bundle root",
            "serde does not use cfg-if"
        );
    }

    #[test]
    fn include_bundles_a_path_dependency() {
        let f = fixture();
        let config = Settings {
            include: vec!["engine".into()],
            ..Settings::default()
        };
        let p = run(&f, &config, false);
        assert_eq!(label(&p, "engine"), "bundle root");
        assert_eq!(label(&p, "itoa"), "bundle");
    }

    #[test]
    fn link_failures_and_non_rlibs_stay_static() {
        let mut f = fixture();
        f.graph.nodes.get_mut("itoa").unwrap().source = Source::Registry;
        f.graph.nodes.get_mut("log").unwrap().lib_types = Some(vec!["cdylib".into()]);
        let failed = BTreeMap::from([("serde".to_owned(), "relocation R_X86_64_32".to_owned())]);
        let p = plan_app(
            &f,
            &Settings::default(),
            false,
            &failed,
            &BTreeMap::new(),
            None,
        );
        assert_eq!(
            label(&p, "log"),
            "static: cannot be a dylib: its library is cdylib"
        );
        assert!(label(&p, "serde").contains("relocation R_X86_64_32"));
    }

    #[test]
    fn hidden_c_symbols_keep_a_package_and_its_users_static() {
        let f = fixture();
        let hidden = BTreeMap::from([("cfg-if".to_owned(), "z_deflate".to_owned())]);
        let p = plan_app(
            &f,
            &Settings::default(),
            false,
            &BTreeMap::new(),
            &hidden,
            None,
        );
        assert!(label(&p, "cfg-if").contains("hides its symbols (`z_deflate`)"));
        assert_eq!(
            label(&p, "log"),
            "static: depends on `cfg-if`, which is static"
        );
    }

    #[test]
    fn packages_the_build_did_not_compile_are_left_out() {
        let f = fixture();
        let built: BTreeSet<String> = [
            "app",
            "log",
            "serde",
            "serde_derive",
            "syn",
            "engine",
            "itoa",
            "cc",
        ]
        .map(str::to_owned)
        .into();
        let g = Fixture {
            graph: f.graph.restricted_to(&built),
        };
        let p = run(&g, &Settings::default(), false);
        assert_eq!(label(&p, "cfg-if"), "absent");
        assert_eq!(label(&p, "log"), "bundle root");
    }

    #[test]
    fn given_roots_limit_the_bundle() {
        let f = fixture();
        let roots = BTreeSet::from(["serde".to_owned()]);
        let none = BTreeMap::new();
        let p = plan_app(&f, &Settings::default(), false, &none, &none, Some(&roots));
        assert_eq!(label(&p, "serde"), "bundle root");
        assert_eq!(
            label(&p, "log"),
            "static: needed only by `app`, which is static"
        );
    }
}
