//! `cargo dyndev plan`: every package of the build and where it goes, with
//! the reason when it is not bundled; the bundle's size and exported symbols
//! once it is built. A table on stderr, or JSON on stdout.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use serde::Serialize;

use crate::cli::{MessageFormat, PlanArgs};
use crate::layout::Layout;
use crate::plan::{Graph, Placement, PlanInput, Reason, Source};
use crate::shell::{Shell, group_digits, human_size};
use crate::state::BundleState;
use crate::workspace::Workspace;

#[derive(Debug, Serialize)]
struct Report {
    workspace_root: String,
    target_dir: String,
    /// `true` when the placements come from the bundle in use; `false` when
    /// predicted from the package graph before any build.
    built: bool,
    bundle: Option<BundleReport>,
    summary: BTreeMap<&'static str, usize>,
    packages: Vec<PackageReport>,
}

#[derive(Debug, Serialize)]
struct BundleReport {
    file: String,
    size: u64,
    exported_symbols: usize,
    link_millis: u64,
    /// The dependency units linked in, by the rlib cargo built for them.
    roots: Vec<RootReport>,
    /// The shared libraries, each after every library it loads.
    libs: Vec<LibReport>,
}

#[derive(Debug, Serialize)]
struct LibReport {
    crate_name: String,
    file: String,
    size: u64,
    exported_symbols: usize,
    /// The crates linked in, by crate name.
    crates: Vec<String>,
    /// The libraries it loads, by crate name.
    loads: Vec<String>,
    /// The member units that load it: `app (bin)`, `core (test)`.
    users: Vec<String>,
}

#[derive(Debug, Serialize)]
struct RootReport {
    package_id: String,
    crate_name: String,
    rlib: String,
    facade: String,
    /// The crate name of the library it is linked into.
    lib: String,
}

#[derive(Debug, Serialize)]
struct PackageReport {
    id: String,
    name: String,
    version: String,
    source: Source,
    #[serde(flatten)]
    placement: Placement,
    /// The reason in words, for static and host packages.
    note: Option<String>,
}

pub fn exec(shell: &Shell, args: &PlanArgs) -> Result<()> {
    let host = crate::cargo::host_triple(&crate::cargo::rustc_program())?;
    let ws = Workspace::load_with_deps(shell, &args.compile, &args.features, &host)?;
    let mut graph = Graph::from_metadata(&ws.metadata);
    let selected: Vec<String> = ws
        .select(&args.packages)?
        .iter()
        .map(|p| p.id.repr.clone())
        .collect();
    let layout = Layout::of(&ws, &args.compile);
    let state =
        BundleState::load(&layout)?.filter(|s| ws.generation().is_ok_and(|g| g == s.generation));
    // After a build, what it really compiled; before, a prediction.
    if let Some(s) = &state {
        graph = graph.restricted_to(&s.plan.built_packages);
    }
    let link_failed = state
        .as_ref()
        .map(|s| s.plan.link_failed.clone())
        .unwrap_or_default();
    let roots: Option<BTreeSet<String>> = state
        .as_ref()
        .map(|s| s.roots.values().map(|r| r.package_id.clone()).collect());
    let mut plan = crate::plan::plan(&PlanInput {
        graph: &graph,
        selected,
        dev: args.tests,
        settings: &ws.settings,
        link_failed: &link_failed,
        hidden_native: &state
            .as_ref()
            .map(|s| s.plan.hidden_native.clone())
            .unwrap_or_default(),
        roots: roots.as_ref(),
    });

    // After a build, what it really did with each package.
    if let Some(s) = &state {
        for (id, placement) in plan.placements.iter_mut() {
            if matches!(placement, Placement::Host { .. }) {
                continue;
            }
            *placement = if s.plan.bundled_packages.contains(id) {
                Placement::Bundle {
                    root: roots.as_ref().is_some_and(|r| r.contains(id)),
                }
            } else if let Some(reason) = s.plan.static_packages.get(id) {
                Placement::Static {
                    reason: reason.clone(),
                }
            } else if let Placement::Bundle { .. } = placement {
                Placement::Static {
                    reason: Reason::OnlyUnder {
                        package: "a static package".into(),
                    },
                }
            } else {
                placement.clone()
            };
        }
    }
    let mut packages: Vec<PackageReport> = plan
        .placements
        .iter()
        .filter_map(|(id, placement)| {
            let node = graph.nodes.get(id)?;
            let note = match placement {
                Placement::Bundle { root: true } => None,
                Placement::Bundle { root: false } => None,
                Placement::Static { reason } | Placement::Host { reason } => {
                    Some(reason.to_string())
                }
            };
            Some(PackageReport {
                id: id.clone(),
                name: node.name.clone(),
                version: node.version.clone(),
                source: node.source,
                placement: placement.clone(),
                note,
            })
        })
        .collect();
    packages.sort_by(|a, b| {
        rank(&a.placement)
            .cmp(&rank(&b.placement))
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.version.cmp(&b.version))
    });
    let mut summary = BTreeMap::new();
    for p in &packages {
        *summary.entry(p.placement.label()).or_insert(0) += 1;
    }
    let report = Report {
        workspace_root: ws.root().display().to_string(),
        target_dir: layout.target_dir.display().to_string(),
        built: state.is_some(),
        bundle: state.as_ref().map(|s| BundleReport {
            file: s.linked.file.display().to_string(),
            size: s.linked.size,
            exported_symbols: s.linked.exported_symbols,
            link_millis: s.linked.link_millis,
            roots: s
                .roots
                .values()
                .map(|r| RootReport {
                    package_id: r.package_id.clone(),
                    crate_name: r.crate_name.clone(),
                    rlib: r.rlib.display().to_string(),
                    facade: r.facade.display().to_string(),
                    lib: r.lib.clone(),
                })
                .collect(),
            libs: s
                .libs
                .iter()
                .map(|l| LibReport {
                    crate_name: l.crate_name.clone(),
                    file: l.file.display().to_string(),
                    size: l.made.size,
                    exported_symbols: l.made.exported_symbols,
                    crates: l
                        .crates
                        .iter()
                        .map(|c| crate::rustc_args::crate_of_stem(c).to_owned())
                        .collect(),
                    loads: l.deps.clone(),
                    users: unit_labels(s, &l.users),
                })
                .collect(),
        }),
        summary,
        packages,
    };

    match args.message_format {
        MessageFormat::Json => {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        MessageFormat::Human => print_table(shell, &ws, &report),
    }
    Ok(())
}

fn rank(p: &Placement) -> u8 {
    match p {
        Placement::Bundle { root: true } => 0,
        Placement::Bundle { root: false } => 1,
        Placement::Static { .. } => 2,
        Placement::Host { .. } => 3,
    }
}

fn print_table(shell: &Shell, ws: &Workspace, report: &Report) {
    let count = |k: &str| report.summary.get(k).copied().unwrap_or(0);
    shell.status(
        "Planning",
        format_args!(
            "{}: {} packages: {} in the bundle, {} static, {} host-only{}",
            ws.display_name(),
            report.packages.len(),
            count("bundle"),
            count("static"),
            count("host"),
            if report.built {
                ""
            } else {
                " (predicted; `cargo dyndev build` makes it exact)"
            }
        ),
    );
    let name_w = report
        .packages
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let ver_w = report
        .packages
        .iter()
        .map(|p| p.version.len())
        .max()
        .unwrap_or(7)
        .max(7);
    shell.header(format_args!(
        "{:name_w$}  {:ver_w$}  {:9}  NOTE",
        "PACKAGE", "VERSION", "PLACEMENT"
    ));
    for p in &report.packages {
        let note = match (&p.placement, &p.note) {
            (Placement::Bundle { root: true }, _) => "used by the workspace".to_owned(),
            (Placement::Bundle { root: false }, _) => String::new(),
            (_, Some(n)) => n.clone(),
            _ => String::new(),
        };
        shell.print(format_args!(
            "{:name_w$}  {:ver_w$}  {:9}  {note}",
            p.name,
            p.version,
            p.placement.label()
        ));
    }
    match &report.bundle {
        Some(b) => {
            shell.status(
                "Bundle",
                format_args!(
                    "{}: {}, {} exported symbols",
                    crate::shell::count(b.libs.len(), "shared library", "shared libraries"),
                    human_size(b.size),
                    group_digits(b.exported_symbols),
                ),
            );
            for lib in &b.libs {
                let name = std::path::Path::new(&lib.file)
                    .file_name()
                    .map_or_else(|| lib.file.clone(), |n| n.to_string_lossy().into_owned());
                shell.print(format_args!(
                    "{name}: {} ({}), {}; loaded by {}{}",
                    crate::shell::count(lib.crates.len(), "crate", "crates"),
                    abbreviate(&lib.crates, 6),
                    human_size(lib.size),
                    abbreviate(&lib.users, 6),
                    if lib.loads.is_empty() {
                        String::new()
                    } else {
                        format!("; loads {}", lib.loads.len())
                    }
                ));
            }
        }
        None => shell.status("Bundle", "not built yet; `cargo dyndev build` links it"),
    }
}

/// The first `max` items joined, and how many more there are.
fn abbreviate(items: &[String], max: usize) -> String {
    let shown = items
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    match items.len().saturating_sub(max) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// The labels of member units (`app (bin)`), sorted, one per label.
fn unit_labels(state: &BundleState, units: &BTreeSet<String>) -> Vec<String> {
    let labels: BTreeSet<String> = units
        .iter()
        .map(|u| {
            state
                .plan
                .units
                .get(u)
                .map_or_else(|| u.clone(), |unit| unit.label.clone())
        })
        .collect();
    labels.into_iter().collect()
}
