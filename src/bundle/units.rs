//! What a new bundle starts from: the member units of this build (and of
//! earlier builds of the same generation), the dependency units they name
//! directly, and each one's exact closure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::{Request, Toolchain};
use crate::closure::{Closure, Prober};
use crate::state::{BundleState, Unit};

/// A dependency unit a member names directly: a root, if it can be bundled.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    pub(super) rlib: PathBuf,
    pub(super) package_id: String,
}

/// What planning starts from: the units, the candidates and their closures.
pub(super) struct Inputs {
    pub(super) units: BTreeMap<String, Unit>,
    pub(super) candidates: BTreeMap<String, Candidate>,
    pub(super) closures: BTreeMap<String, Result<Closure, String>>,
    /// Unit stem -> package id, this build's and earlier ones'.
    pub(super) packages_by_stem: BTreeMap<String, String>,
}

/// The member units of this build, and those of earlier builds of the same
/// generation whose dependencies are unchanged; every dependency unit they
/// name; the closure of each.
pub(super) fn inputs(
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
        for (stem, package) in &prev.plan.packages_by_stem {
            packages_by_stem
                .entry(stem.clone())
                .or_insert_with(|| package.clone());
        }
        // A root rebuilt since is stale for the selection that used it;
        // that selection brings its units back when it builds again. So is
        // one outside the build dir this build uses (an older dyndev's
        // units, in a dir of its own, or a build dir configured since):
        // the bundle's link finds crates only there.
        let current: BTreeSet<String> = candidates.keys().cloned().collect();
        let deps_dir = req.layout.deps_dir();
        let fresh = |stem: &str| match prev.roots.get(stem) {
            Some(root) => {
                root.rlib
                    .parent()
                    .is_some_and(|dir| crate::fs::same_dir(dir, &deps_dir))
                    && crate::fs::mtime_nanos(&root.rlib) == Some(root.rlib_mtime)
            }
            None => prev.plan.static_stems.contains(stem) || current.contains(stem),
        };
        for (stem, unit) in &prev.plan.units {
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
