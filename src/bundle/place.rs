//! Which candidates become roots (the plan bundles them and everything in
//! their exact closure), how the bundled crates split into libraries, and
//! what stays static, with the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::Request;
use super::units::{Candidate, Inputs};
use crate::plan::{Graph, Placement, PlanInput, Reason};
use crate::rustc_args::crate_of_stem;
use crate::split::{Split, UnitUse};
use crate::state::BundlePlan;

/// The plan of one bundle: its roots, its libraries, what stays static.
#[derive(Debug)]
pub(super) struct Placed {
    pub(super) roots: BTreeMap<String, Candidate>,
    pub(super) split: Split,
    /// Every bundled crate's rlib, by stem.
    pub(super) rlibs: BTreeMap<String, PathBuf>,
    pub(super) plan: BundlePlan,
}

pub(super) fn place(
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
        settings: req.settings,
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
    let mut static_packages: BTreeMap<String, Reason> = plan
        .placements
        .iter()
        .filter_map(|(id, p)| match p {
            Placement::Static { reason } => Some((id.clone(), reason.clone())),
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
                    Reason::ClosureUnknown {
                        message: why.clone(),
                    },
                );
                continue;
            }
            None => continue,
        };
        if let Some(blocker) = closure.keys().find(|c| !bundleable(c)) {
            static_packages.insert(
                candidate.package_id.clone(),
                Reason::DependsOn {
                    package: name_of(blocker),
                },
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
    let static_stems: BTreeSet<String> = inputs
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
    let packages_by_stem = rlibs
        .keys()
        .chain(&static_stems)
        .filter_map(|s| Some((s.clone(), package_of(s)?.clone())))
        .collect();
    Placed {
        roots,
        split,
        rlibs,
        plan: BundlePlan {
            units: inputs.units.clone(),
            packages_by_stem,
            static_stems,
            static_packages,
            bundled_packages,
            built_packages: graph.nodes.keys().cloned().collect(),
            hidden_native: hidden_native.clone(),
            link_failed: link_failed.clone(),
        },
    }
}
