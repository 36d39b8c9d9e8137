//! What a comparison found: one timed build (`Sample`), each mode's builds
//! summarised (`ModeReport`), and the whole `Report`, as JSON shows it.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::modes::Mode;
use super::program::Startup;
use super::stats::Summary;

/// One timed build.
#[derive(Debug, Clone, Default)]
pub(super) struct Sample {
    pub(super) wall_ms: f64,
    pub(super) link_ms: f64,
    pub(super) compile_ms: f64,
    pub(super) peak_kib: u64,
    pub(super) link_peak_kib: u64,
    /// Each link of the build: (artifact, milliseconds, peak KiB).
    pub(super) links: Vec<(String, f64, u64)>,
}

/// The links of one artifact over a mode's runs.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactLink {
    /// The file linked, without cargo's hash: `game`, `libfoo.so`.
    pub artifact: String,
    pub link: Summary,
    pub peak_kib: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModeReport {
    pub name: String,
    pub dyndev: bool,
    pub linker: String,
    /// One-edit -> binary-ready wall time.
    pub edit_to_binary: Summary,
    /// This mode's median against the default static mode's: above 1 is
    /// faster.
    pub speedup: f64,
    /// The final link(s) of the build, together.
    pub link: Summary,
    /// Each linked artifact on its own.
    pub links: Vec<ArtifactLink>,
    /// Compiling without linking: what dynamic linking cannot remove.
    pub compile: Summary,
    /// Peak resident memory of the whole build (median over runs), KiB.
    pub peak_kib: u64,
    /// Peak resident memory of the final link (median), KiB.
    pub link_peak_kib: u64,
    pub binary_bytes: u64,
    /// `None` with `--no-run`, or when Ctrl-C came first.
    pub startup: Option<Startup>,
    /// A build from an empty target dir, when asked with `--cold`.
    pub cold_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BundleReport {
    pub file: PathBuf,
    pub bytes: u64,
    pub exported_symbols: usize,
    /// Linking the bundle and its facades, once per dependency change.
    pub link_ms: u64,
    pub link_peak_kib: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub workspace: PathBuf,
    pub target: String,
    pub scenario: String,
    pub file: PathBuf,
    /// The runs asked for; each mode's `samples` says how many it got.
    pub runs: u32,
    /// Ctrl-C stopped the comparison: the figures are from the runs done,
    /// and modes not yet built are left out.
    pub interrupted: bool,
    /// The modes compared, those Ctrl-C came before included.
    pub modes_asked: usize,
    /// A test loop (`--tests`): each time is edit -> suite done, from
    /// building the tests to the end of their run.
    pub tests: bool,
    pub modes: Vec<ModeReport>,
    pub bundle: Option<BundleReport>,
    pub verdict: String,
    pub chart: PathBuf,
}

/// One mode's samples, summarised.
pub(super) fn mode_report(
    mode: &Mode,
    s: &[Sample],
    binary: &Path,
    startup: Option<Startup>,
    cold_ms: Option<f64>,
) -> ModeReport {
    let pick = |f: fn(&Sample) -> f64| {
        Summary::of(&s.iter().map(f).collect::<Vec<_>>()).unwrap_or_default()
    };
    let median_u64 = |f: fn(&Sample) -> u64| {
        let mut v: Vec<u64> = s.iter().map(f).collect();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    ModeReport {
        name: mode.name.clone(),
        dyndev: mode.dyndev,
        linker: mode.linker.name.clone(),
        edit_to_binary: pick(|s| s.wall_ms),
        speedup: 0.0,
        link: pick(|s| s.link_ms),
        links: per_artifact(s),
        compile: pick(|s| s.compile_ms),
        peak_kib: median_u64(|s| s.peak_kib),
        link_peak_kib: median_u64(|s| s.link_peak_kib),
        binary_bytes: std::fs::metadata(binary).map(|m| m.len()).unwrap_or(0),
        startup,
        cold_ms,
    }
}

/// Link times grouped by artifact, over a mode's runs.
fn per_artifact(samples: &[Sample]) -> Vec<ArtifactLink> {
    let mut by_name: std::collections::BTreeMap<&str, (Vec<f64>, u64)> = Default::default();
    for s in samples {
        for (name, ms, peak) in &s.links {
            let entry = by_name.entry(name).or_default();
            entry.0.push(*ms);
            entry.1 = entry.1.max(*peak);
        }
    }
    by_name
        .into_iter()
        .filter_map(|(name, (ms, peak))| {
            Some(ArtifactLink {
                artifact: name.to_owned(),
                link: Summary::of(&ms)?,
                peak_kib: peak,
            })
        })
        .collect()
}
