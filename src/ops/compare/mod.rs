//! `cargo dyndev compare`: edit -> binary time, static against dynamic,
//! measured on the user's own project. It works on a copy of the sources
//! under the target dir, builds every mode into one target dir (the linker
//! is a proxy that picks the real linker per mode, so switching modes never
//! invalidates cargo's fingerprints), alternates the modes run by run, and
//! reports the time, its parts, memory, sizes and start-up cost as a table,
//! JSON and an SVG chart.

pub mod chart;
pub mod interrupt;
pub mod mirror;
pub mod program;
pub mod progress;
pub mod scenario;
pub mod stats;

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cargo_metadata::{Package, Target};
use serde::Serialize;

use crate::cli::{CompareArgs, MessageFormat, PackageArgs};
use crate::error::Failure;
use crate::layout::Layout;
use crate::linker::{self, LinkRecord, LinkerMode};
use crate::measure::{self, CompileRecord};
use crate::ops::run::{Runnable, choose};
use crate::shell::Shell;
use crate::state::BundleState;
use crate::workspace::Workspace;
use mirror::Mirror;
pub use program::Startup;
use scenario::{Kind, Scenario};
use stats::{Summary, duration};

/// How one mode builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mode {
    /// `static rust-lld`, `dyndev`, `static mold`.
    pub name: String,
    pub dyndev: bool,
    pub linker: LinkerMode,
}

impl Mode {
    fn slug(&self) -> String {
        self.name.replace(' ', "-")
    }
}

/// One timed build.
#[derive(Debug, Clone, Default)]
struct Sample {
    wall_ms: f64,
    link_ms: f64,
    compile_ms: f64,
    peak_kib: u64,
    link_peak_kib: u64,
    /// Each link of the build: (artifact, milliseconds, peak KiB).
    links: Vec<(String, f64, u64)>,
}

/// The links of one artifact over a mode's runs.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactLink {
    /// The file linked, without cargo's hash: `game`, `libfoo.so`.
    pub artifact: String,
    pub link: Summary,
    pub peak_kib: u64,
}

/// `deps/game-0123abcd` -> `game`.
fn artifact_name(output: &Path) -> String {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    match name.rsplit_once('-') {
        Some((base, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) && !hash.is_empty() => {
            base.to_owned()
        }
        _ => name.into_owned(),
    }
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
    pub modes: Vec<ModeReport>,
    pub bundle: Option<BundleReport>,
    pub verdict: String,
    pub chart: PathBuf,
}

/// Everything the builds of one comparison share.
struct Bench {
    copy_root: PathBuf,
    manifest: PathBuf,
    target_dir: PathBuf,
    target_flag: Vec<String>,
    build_args: Vec<String>,
    env: Vec<(String, OsString)>,
    link_log: PathBuf,
    rustc_log: PathBuf,
    stderr_log: PathBuf,
}

/// Ctrl-C stops the comparison early: what was measured is still shown,
/// and the exit code is [`crate::error::code::INTERRUPTED`].
pub fn exec(shell: &Shell, args: &CompareArgs) -> Result<()> {
    interrupt::install()?;
    let report = match compare(shell, args) {
        Ok(report) => report,
        Err(_) if interrupt::interrupted() => {
            shell.status(
                "Interrupted",
                "before the first timed build: nothing was measured",
            );
            return Err(Failure::Interrupted.into());
        }
        Err(e) => return Err(e),
    };
    match args.message_format {
        MessageFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        MessageFormat::Human => print_report(shell, &report, args.no_run),
    }
    if report.interrupted {
        return Err(Failure::Interrupted.into());
    }
    Ok(())
}

fn compare(shell: &Shell, args: &CompareArgs) -> Result<Report> {
    let cmp = Comparison::prepare(shell, args)?;
    let cold = if args.cold {
        cmp.cold_builds(shell)?
    } else {
        vec![None; cmp.modes.len()]
    };
    let (bundle_link_peak, warm_ms) = cmp.warm_up(shell)?;
    let timed = cmp.timed_runs(shell, &warm_ms)?;
    cmp.report(shell, &timed, &cold, bundle_link_peak)
}

/// The timed builds, as far as they got.
struct Timed {
    /// Per mode; empty for a mode Ctrl-C came before.
    samples: Vec<Vec<Sample>>,
    /// Each mode's last binary, kept aside.
    binaries: Vec<PathBuf>,
    interrupted: bool,
}

/// One comparison: the copy, the edit, the modes, and how they build.
struct Comparison<'a> {
    args: &'a CompareArgs,
    workspace_root: PathBuf,
    /// `bin `game``, for titles.
    target_label: String,
    /// The package's directory in the copy, for the program's environment.
    package_dir: PathBuf,
    /// `<target-dir>/dyndev-compare`.
    dir: PathBuf,
    copy_root: PathBuf,
    scenario: Scenario,
    /// The edited file, relative to the workspace root.
    shown_file: PathBuf,
    modes: Vec<Mode>,
    bench: Bench,
    _lock: std::fs::File,
}

impl<'a> Comparison<'a> {
    /// Reads the workspace, copies it, and sets up the edit, the modes and
    /// the instruments.
    fn prepare(shell: &Shell, args: &'a CompareArgs) -> Result<Comparison<'a>> {
        let host = crate::cargo::host_triple(&crate::cargo::rustc_program())?;
        let ws = Workspace::load_with_deps(shell, &args.compile, &args.features, &host)?;
        let packages = args.executable.packages();
        let runnable = choose(&ws, &packages, &args.executable)?;
        let (package, target) = find_target(&ws, &packages, &runnable)?;

        let base = ws.target_dir(args.compile.target_dir.as_deref());
        let dir = base.join("dyndev-compare");
        crate::fs::create_dir_all(&dir)?;
        let lock = Layout {
            target_dir: dir.clone(),
            profile_dir: dir.clone(),
            state_dir: dir.clone(),
        }
        .lock(shell)?;

        // The copy: the workspace and its path dependencies outside it.
        let mut roots = vec![ws.root().to_owned()];
        for p in &ws.metadata.packages {
            if p.source.is_none()
                && let Some(d) = p.manifest_path.parent()
                && !d.as_std_path().starts_with(ws.root())
            {
                roots.push(d.as_std_path().to_owned());
            }
        }
        let mirror = Mirror::new(&dir.join("src"), &roots, std::slice::from_ref(&base));
        let synced = mirror.sync()?;
        shell.verbose_status(
            "Copied",
            format_args!(
                "{} files ({}), {} unchanged, {} removed",
                synced.copied,
                crate::ops::plan::human_size(synced.bytes_copied),
                synced.unchanged,
                synced.removed
            ),
        );
        let copy_root = mirror
            .map(ws.root())
            .context("the workspace is not in its copy")?;
        mirror::make_workspace_root(&copy_root.join("Cargo.toml"))?;
        let manifest = mirror
            .map(package.manifest_path.as_std_path())
            .context("the package is not in the copy")?;

        let (kind, user_file) = match (&args.edit, &args.touch) {
            (Some(f), _) => (Kind::Edit, absolute(f)?),
            (None, Some(f)) => (Kind::Touch, absolute(f)?),
            (None, None) => (Kind::Edit, target.src_path.clone().into_std_path_buf()),
        };
        let copy_file = mirror
            .map(&user_file)
            .filter(|f| f.exists())
            .with_context(|| {
                format!(
                    "`{}` is not a file of the workspace or its path dependencies",
                    user_file.display()
                )
            })?;
        let shown_file = user_file
            .strip_prefix(ws.root())
            .unwrap_or(&user_file)
            .to_owned();

        let (target_flag, target_label) = match &runnable {
            Runnable::Bin(n) => (format!("--bin={n}"), format!("bin `{n}`")),
            Runnable::Example(n) => (format!("--example={n}"), format!("example `{n}`")),
            Runnable::List(_) => unreachable!("checked by find_target"),
        };
        let bench = Bench::new(&dir, &host, copy_root.clone(), manifest, target_flag, args)?;
        Ok(Comparison {
            args,
            workspace_root: ws.root().to_owned(),
            target_label,
            package_dir: manifest_dir(&bench.manifest),
            dir,
            copy_root,
            scenario: Scenario::new(kind, &copy_file)?,
            shown_file,
            modes: modes(shell, args.linkers.as_deref())?,
            bench,
            _lock: lock,
        })
    }

    /// A number no edit has used before, in this comparison or an earlier
    /// one: each edit must make the compiler generate code anew.
    fn next_edit(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default()
    }

    /// One build of each mode from an empty target dir.
    fn cold_builds(&self, shell: &Shell) -> Result<Vec<Option<f64>>> {
        let mut cold = Vec::new();
        for mode in &self.modes {
            shell.status(
                "Cold",
                format_args!("build of {} from an empty target dir", mode.name),
            );
            let target_dir = &self.bench.target_dir;
            if target_dir.exists() {
                std::fs::remove_dir_all(target_dir)
                    .with_context(|| format!("failed to remove `{}`", target_dir.display()))?;
            }
            cold.push(Some(self.bench.build(shell, mode, false)?.wall_ms));
        }
        Ok(cold)
    }

    /// Builds each mode once (the first compiles the dependencies, for all
    /// modes), then once more after an edit, so incremental caches are warm.
    /// Returns the peak memory of a bundle link, if one happened, and each
    /// mode's edit build time, a first guess at its timed builds.
    fn warm_up(&self, shell: &Shell) -> Result<(u64, Vec<f64>)> {
        shell.status(
            "Preparing",
            format_args!(
                "{} modes: {} (the first build compiles the dependencies)",
                self.modes.len(),
                self.modes
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        let mut bundle_link_peak = 0;
        for mode in &self.modes {
            self.bench.clear_logs();
            self.bench.build(shell, mode, true)?;
            if mode.dyndev {
                bundle_link_peak = bundle_link_peak.max(read_bundle_link_peak(&self.bench)?);
            }
        }
        let mut warm_ms = Vec::new();
        for mode in &self.modes {
            self.scenario.apply(self.next_edit())?;
            warm_ms.push(self.bench.build(shell, mode, false)?.wall_ms);
        }
        Ok((bundle_link_peak, warm_ms))
    }

    /// The timed builds, the modes taking turns, until done or Ctrl-C;
    /// then each mode's binary, kept aside (the modes share a target dir).
    fn timed_runs(&self, shell: &Shell, warm_ms: &[f64]) -> Result<Timed> {
        let runs = self.args.runs;
        let n = self.modes.len();
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); n];
        let mut last_binary: Vec<PathBuf> = vec![PathBuf::new(); n];
        let left = |samples: &[Vec<Sample>]| {
            let walls: Vec<Vec<f64>> = samples
                .iter()
                .map(|s| s.iter().map(|s| s.wall_ms).collect())
                .collect();
            progress::builds_left_ms(warm_ms, &walls, runs)
        };
        shell.status(
            "Measuring",
            format_args!(
                "{runs} {} of {n} modes ({} of builds); Ctrl-C stops early and still \
                 shows what was measured",
                if runs == 1 { "run" } else { "runs" },
                progress::about(left(&samples))
            ),
        );
        let mut interrupted = false;
        'runs: for run in 0..runs {
            for k in 0..n {
                // Rotate the order, so drift hits every mode alike.
                let i = (k + run as usize) % n;
                let mode = &self.modes[i];
                self.scenario.apply(self.next_edit())?;
                self.bench.clear_logs();
                let mut sample = match self.bench.build(shell, mode, false) {
                    Ok(sample) => sample,
                    Err(_) if interrupt::interrupted() => {
                        interrupted = true;
                        break 'runs;
                    }
                    Err(e) => return Err(e),
                };
                let binary = self.bench.read_logs(&mut sample)?;
                if let Some(b) = binary {
                    last_binary[i] = b;
                }
                let wall_ms = sample.wall_ms;
                samples[i].push(sample);
                let left = left(&samples);
                shell.status(
                    "Measured",
                    format_args!(
                        "run {}/{runs}: {:<16} {}{}",
                        run + 1,
                        mode.name,
                        duration(wall_ms),
                        if left > 0.0 {
                            format!(", {} left", progress::about(left))
                        } else {
                            String::new()
                        }
                    ),
                );
                if interrupt::interrupted() {
                    interrupted = true;
                    break 'runs;
                }
            }
        }
        self.scenario.restore()?;

        let mut binaries = Vec::new();
        for (mode, path) in self.modes.iter().zip(&last_binary) {
            let kept = self.dir.join("binaries").join(mode.slug());
            crate::fs::create_dir_all(&kept)?;
            let dest = kept.join(path.file_name().unwrap_or_default());
            if path.is_file() {
                std::fs::copy(path, &dest)
                    .with_context(|| format!("failed to copy `{}`", path.display()))?;
            }
            binaries.push(dest);
        }
        Ok(Timed {
            samples,
            binaries,
            interrupted,
        })
    }

    /// Start-up measurements, summaries, the verdict and the chart.
    fn report(
        &self,
        shell: &Shell,
        timed: &Timed,
        cold: &[Option<f64>],
        bundle_link_peak: u64,
    ) -> Result<Report> {
        let mut modes = Vec::new();
        let mut not_built = Vec::new();
        let mut helped = false;
        let to_run = timed
            .samples
            .iter()
            .filter(|s| !s.is_empty() && !self.args.no_run)
            .count();
        let started = Instant::now();
        let mut ran = 0;
        for (i, mode) in self.modes.iter().enumerate() {
            if timed.samples[i].is_empty() {
                not_built.push(mode.name.as_str());
                continue;
            }
            let startup = if self.args.no_run || interrupt::interrupted() {
                None
            } else {
                let left = if ran == 0 {
                    String::new()
                } else {
                    let each = started.elapsed().as_secs_f64() * 1000.0 / ran as f64;
                    format!(", {} left", progress::about(each * (to_run - ran) as f64))
                };
                shell.status(
                    "Running",
                    format_args!(
                        "{} binary, to measure its start-up and run time{left}",
                        mode.name
                    ),
                );
                ran += 1;
                let startup = program::measure(
                    &timed.binaries[i],
                    &self.args.args,
                    &self.copy_root,
                    &self.package_dir,
                    Duration::from_secs(self.args.timeout),
                );
                if let Some(failure) = &startup.run_failure
                    && *failure != program::Outcome::Interrupted
                {
                    let mut message = format!(
                        "the run time of {} was not measured: {}",
                        mode.name,
                        failure.reason()
                    );
                    if let Some(help) = failure.help().filter(|_| !helped) {
                        message.push_str(&format!("\nhelp: {help}"));
                        helped = true;
                    }
                    shell.warn(message);
                }
                Some(startup)
            };
            modes.push(mode_report(
                mode,
                &timed.samples[i],
                &timed.binaries[i],
                startup,
                cold[i],
            ));
        }
        if !not_built.is_empty() {
            shell.status(
                "Skipped",
                format_args!(
                    "{}: Ctrl-C came before their first run",
                    not_built.join(", ")
                ),
            );
        }
        let baseline = modes
            .iter()
            .find(|r| !r.dyndev)
            .map(|r| r.edit_to_binary.median_ms)
            .unwrap_or(1.0);
        for r in &mut modes {
            r.speedup = baseline / r.edit_to_binary.median_ms.max(1.0);
        }

        let layout = Layout::new(
            &self.bench.target_dir,
            &self.args.compile.profile_dir(),
            &self.copy_root,
        );
        let bundle = BundleState::load(&layout)?.map(|b| BundleReport {
            bytes: b.size,
            exported_symbols: b.exported_symbols,
            link_ms: b.link_millis,
            link_peak_kib: bundle_link_peak.max(b.link_peak_kib),
            file: b.file,
        });
        let chart_path = self.dir.join("compare.svg");
        let report = Report {
            workspace: self.workspace_root.clone(),
            target: self.target_label.clone(),
            scenario: self.scenario.kind.as_str().into(),
            file: self.shown_file.clone(),
            runs: self.args.runs,
            interrupted: timed.interrupted || interrupt::interrupted(),
            modes_asked: self.modes.len(),
            verdict: verdict(&modes),
            modes,
            bundle,
            chart: chart_path.clone(),
        };
        let title = format!(
            "{} of {}: {} -> binary ready, median of {} runs",
            report.scenario,
            report.file.display(),
            report.target,
            report.runs
        );
        crate::fs::write_atomic(
            &chart_path,
            chart::render(&title, &bars(&report)).as_bytes(),
        )?;
        Ok(report)
    }
}

fn manifest_dir(manifest: &Path) -> PathBuf {
    manifest.parent().unwrap_or(manifest).to_owned()
}

/// One mode's samples, summarised.
fn mode_report(
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

fn absolute(p: &Path) -> Result<PathBuf> {
    p.canonicalize()
        .with_context(|| format!("failed to find `{}`", p.display()))
}

fn find_target<'w>(
    ws: &'w Workspace,
    packages: &PackageArgs,
    runnable: &Runnable,
) -> Result<(&'w Package, &'w Target)> {
    let (name, example) = match runnable {
        Runnable::Bin(n) => (n.as_str(), false),
        Runnable::Example(n) => (n.as_str(), true),
        Runnable::List(flag) => {
            return Err(Failure::Selection(format!(
                "`{flag}` needs a name: `cargo dyndev compare` measures one binary"
            ))
            .into());
        }
    };
    let selected = if packages.packages.is_empty() {
        ws.members().collect()
    } else {
        ws.select(packages)?
    };
    for p in selected {
        for t in &p.targets {
            let kind_ok = if example { t.is_example() } else { t.is_bin() };
            if kind_ok && t.name == name {
                return Ok((p, t));
            }
        }
    }
    Err(Failure::Selection(format!(
        "no {} target named `{name}`",
        if example { "example" } else { "bin" }
    ))
    .into())
}

/// Linkers compared by default besides rustc's own, when installed: the
/// ones a user might switch to for speed. The others found on `PATH` (gold,
/// GNU ld, ld.lld, which rust-lld already stands for) are many times slower
/// on a large program, or add nothing, so they run only when asked for.
const FAST_LINKERS: &[&str] = &["mold", "wild"];

/// dyndev, the default static link, then each other linker asked for.
fn modes(shell: &Shell, linkers: Option<&str>) -> Result<Vec<Mode>> {
    let mut modes = vec![
        Mode {
            name: "static rust-lld".into(),
            dyndev: false,
            linker: LinkerMode::default_linker(),
        },
        Mode {
            name: "dyndev".into(),
            dyndev: true,
            linker: LinkerMode::default_linker(),
        },
    ];
    let found = LinkerMode::found_on_path();
    if linkers.is_none() {
        let slow: Vec<&str> = found
            .iter()
            .map(|m| m.name.as_str())
            .filter(|n| !FAST_LINKERS.contains(n))
            .collect();
        if !slow.is_empty() {
            shell.status(
                "Skipping",
                format_args!(
                    "{}, also on PATH: ask with `--linkers all` or by name",
                    slow.join(", ")
                ),
            );
        }
    }
    for linker in chosen_linkers(found, linkers)? {
        modes.push(Mode {
            name: format!("static {}", linker.name),
            dyndev: false,
            linker,
        });
    }
    Ok(modes)
}

/// The static linkers to compare besides rustc's default, from those found
/// on `PATH`: the fast ones by default, `all`, `none`, or a list of names.
fn chosen_linkers(found: Vec<LinkerMode>, linkers: Option<&str>) -> Result<Vec<LinkerMode>> {
    Ok(match linkers {
        None => found
            .into_iter()
            .filter(|m| FAST_LINKERS.contains(&m.name.as_str()))
            .collect(),
        Some("all") => found,
        Some("none") => Vec::new(),
        Some(list) => {
            let mut out = Vec::new();
            for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match found.iter().find(|m| m.name == name) {
                    Some(m) => out.push(m.clone()),
                    None => bail!(
                        "linker `{name}` was not found on PATH (found: {})",
                        if found.is_empty() {
                            "none".to_owned()
                        } else {
                            found
                                .iter()
                                .map(|m| m.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ),
                }
            }
            out
        }
    })
}

fn is_bundle_output(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("libdyndev_bundle_"))
}

fn read_bundle_link_peak(bench: &Bench) -> Result<u64> {
    let links: Vec<LinkRecord> = measure::read_log(&bench.link_log)?;
    Ok(links
        .iter()
        .filter(|l| is_bundle_output(&l.output))
        .map(|l| l.max_rss_kib)
        .max()
        .unwrap_or(0))
}

impl Bench {
    fn new(
        dir: &Path,
        host: &str,
        copy_root: PathBuf,
        manifest: PathBuf,
        target_flag: String,
        args: &CompareArgs,
    ) -> Result<Bench> {
        let tools = dir.join("bin");
        let linker = measure::install_instrument(&tools, linker::LINKER_NAME)?;
        let timer = measure::install_instrument(&tools, measure::TIMER_NAME)?;
        let logs = dir.join("logs");
        crate::fs::create_dir_all(&logs)?;
        let mut build_args = Vec::new();
        args.features.push_cargo_args(&mut build_args);
        let c = &args.compile;
        for (flag, on) in [
            ("--release", c.release),
            ("--locked", c.locked),
            ("--offline", c.offline),
            ("--frozen", c.frozen),
        ] {
            if on {
                build_args.push(flag.into());
            }
        }
        if let Some(p) = &c.profile {
            build_args.push(format!("--profile={p}"));
        }
        if let Some(j) = &c.jobs {
            build_args.push(format!("--jobs={j}"));
        }
        for cfg in &c.config {
            build_args.extend(["--config".into(), cfg.clone()]);
        }
        let linker_var = format!(
            "CARGO_TARGET_{}_LINKER",
            host.to_uppercase().replace(['-', '.'], "_")
        );
        let link_log = logs.join("links.jsonl");
        let rustc_log = logs.join("rustc.jsonl");
        // The linker the user configured runs behind the proxy, so "static"
        // means their own set-up: from their environment, else from the
        // configuration cargo reads for the copy.
        let user_linker = match std::env::var_os(&linker_var) {
            Some(l) => Some(PathBuf::from(l)),
            None => crate::cargo_config::Sources::discover(
                &copy_root,
                crate::cargo_config::cargo_home().as_deref(),
                &c.config,
            )?
            .target_linker(host)?,
        };
        let mut env: Vec<(String, OsString)> = vec![
            (linker_var, linker.into_os_string()),
            ("RUSTC_WRAPPER".into(), timer.into_os_string()),
            (linker::env::LINK_LOG.into(), link_log.clone().into()),
            (measure::env::RUSTC_LOG.into(), rustc_log.clone().into()),
        ];
        if let Some(l) = user_linker {
            env.push((linker::env::REAL_LINKER.into(), l.into_os_string()));
        }
        Ok(Bench {
            copy_root,
            manifest,
            target_dir: dir.join("target"),
            target_flag: vec![target_flag],
            build_args,
            env,
            link_log,
            rustc_log,
            stderr_log: logs.join("stderr.txt"),
        })
    }

    /// Fills in a timed build's link and compile times from the
    /// instruments' logs; returns the final binary's path.
    fn read_logs(&self, sample: &mut Sample) -> Result<Option<PathBuf>> {
        let links: Vec<LinkRecord> = measure::read_log(&self.link_log)?;
        let compiles: Vec<CompileRecord> = measure::read_log(&self.rustc_log)?;
        let final_links: Vec<&LinkRecord> = links
            .iter()
            .filter(|l| !is_bundle_output(&l.output))
            .collect();
        sample.link_ms = final_links.iter().map(|l| l.millis as f64).sum();
        sample.links = final_links
            .iter()
            .map(|l| (artifact_name(&l.output), l.millis as f64, l.max_rss_kib))
            .collect();
        sample.link_peak_kib = final_links.iter().map(|l| l.max_rss_kib).max().unwrap_or(0);
        sample.compile_ms =
            (compiles.iter().map(|c| c.millis as f64).sum::<f64>() - sample.link_ms).max(0.0);
        Ok(final_links.last().map(|l| l.output.clone()))
    }

    fn clear_logs(&self) {
        let _ = std::fs::remove_file(&self.link_log);
        let _ = std::fs::remove_file(&self.rustc_log);
    }

    /// Builds one mode, timed; `show` lets cargo's progress through (for
    /// the long first build), otherwise output is kept and shown on failure.
    fn build(&self, shell: &Shell, mode: &Mode, show: bool) -> Result<Sample> {
        interrupt::check()?;
        let mut cmd = if mode.dyndev {
            let mut c = Command::new(crate::fs::self_exe()?);
            c.args(["dyndev", "build"]);
            c.arg(format!("--target-dir={}", self.target_dir.display()));
            c
        } else {
            let mut c = Command::new(crate::cargo::cargo_program());
            c.arg("build");
            // Static builds share dyndev's cargo target dir, so each
            // dependency compiles once for all modes.
            c.arg(format!(
                "--target-dir={}",
                self.target_dir.join("dyndev").display()
            ));
            c
        };
        cmd.arg(format!("--manifest-path={}", self.manifest.display()))
            .args(&self.target_flag)
            .args(&self.build_args)
            .current_dir(&self.copy_root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .env(
                linker::env::LINKER_MODE,
                serde_json::to_string(&mode.linker)?,
            )
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove(crate::wrapper::env::STATE_DIR);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if show && shell.verbosity() > crate::shell::Verbosity::Quiet {
            cmd.stderr(Stdio::inherit());
        } else {
            cmd.arg("--quiet");
            let log = std::fs::File::create(&self.stderr_log)
                .with_context(|| format!("failed to create `{}`", self.stderr_log.display()))?;
            cmd.stderr(Stdio::from(log));
        }
        // A group of its own, which Ctrl-C reaches through [`interrupt`],
        // whether it came from the terminal or to this process alone.
        cmd.process_group(0);
        let start = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("failed to run the {} build", mode.name))?;
        let running = interrupt::running(child.id());
        let (status, ms, peak) = measure::wait_measured(child, start)
            .with_context(|| format!("failed to wait for the {} build", mode.name))?;
        drop(running);
        if !status.success() {
            interrupt::check()?;
            let output = std::fs::read_to_string(&self.stderr_log).unwrap_or_default();
            bail!(
                "the {} build of the copy in `{}` failed\n\n{}",
                mode.name,
                self.copy_root.display(),
                output.trim_end()
            );
        }
        Ok(Sample {
            wall_ms: ms as f64,
            peak_kib: peak,
            ..Sample::default()
        })
    }
}

/// What the numbers say, in one or two sentences.
pub fn verdict(modes: &[ModeReport]) -> String {
    let Some(stat) = modes.iter().find(|m| !m.dyndev) else {
        return String::new();
    };
    let Some(dyn_) = modes.iter().find(|m| m.dyndev) else {
        return String::new();
    };
    let total = stat.edit_to_binary.median_ms;
    let link = stat.link.median_ms;
    let mut out = if dyn_.speedup >= 1.5 {
        format!(
            "dyndev makes an edit {:.1}x faster here: the static link takes {} of {}, \
             the dynamic one {}.",
            dyn_.speedup,
            duration(link),
            duration(total),
            duration(dyn_.link.median_ms)
        )
    } else if dyn_.speedup >= 1.1 {
        format!(
            "dyndev helps a little here ({:.1}x): the static link takes {} of {}.",
            dyn_.speedup,
            duration(link),
            duration(total)
        )
    } else {
        format!(
            "dynamic linking does not help here: the static link takes only {} of {}; \
             the time goes into compiling, which no linker choice changes.",
            duration(link),
            duration(total)
        )
    };
    if let Some(best) = modes
        .iter()
        .filter(|m| !m.dyndev && m.name != stat.name)
        .max_by(|a, b| a.speedup.total_cmp(&b.speedup))
        && best.speedup >= dyn_.speedup * 0.9
    {
        out.push_str(&format!(
            " {} gets {:.1}x with no change to how the program loads.",
            best.name, best.speedup
        ));
    }
    if let Some(ms) = dyn_.startup.as_ref().and_then(|s| s.loader_ms)
        && ms >= 5.0
    {
        out.push_str(&format!(
            " The price: about {ms:.0} ms of dynamic loading at each start"
        ));
        match (
            stat.startup.as_ref().and_then(|s| s.run_ms),
            dyn_.startup.as_ref().and_then(|s| s.run_ms),
        ) {
            (Some(s), Some(d)) if d > s * 1.1 => out.push_str(&format!(
                ", and the program ran {:.0}% slower (calls into the bundle go through \
                 the PLT, thread-locals through `__tls_get_addr`).",
                (d / s - 1.0) * 100.0
            )),
            _ => out.push('.'),
        }
    }
    out
}

fn bars(report: &Report) -> Vec<chart::Bar> {
    report
        .modes
        .iter()
        .map(|m| {
            let total = m.edit_to_binary.median_ms;
            let compile = m.compile.median_ms.min(total);
            let link = m.link.median_ms.min(total - compile);
            chart::Bar {
                label: m.name.clone(),
                rustc_ms: compile,
                link_ms: link,
                other_ms: (total - compile - link).max(0.0),
                startup_ms: m.startup.as_ref().and_then(|s| s.loader_ms).unwrap_or(0.0),
                note: format!("{} ({:.1}x)", duration(total), m.speedup),
            }
        })
        .collect()
}

fn kib(k: u64) -> String {
    crate::ops::plan::human_size(k * 1024)
}

fn print_report(shell: &Shell, report: &Report, no_run: bool) {
    shell.status(
        "Compared",
        format_args!(
            "{} of {} for {}, {} runs per mode",
            report.scenario,
            report.file.display(),
            report.target,
            report.runs
        ),
    );
    shell.header(format_args!(
        "{:<16} {:>26} {:>8} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9}",
        "MODE",
        "EDIT -> BINARY",
        "SPEEDUP",
        "LINK",
        "COMPILE",
        "PEAK MEM",
        "BINARY",
        "START-UP",
        "RUN"
    ));
    for m in &report.modes {
        let e = &m.edit_to_binary;
        let startup = match &m.startup {
            Some(s) => match (s.loader_ms, s.loader_cycles) {
                (Some(ms), _) => format!("{ms:.1} ms"),
                (None, Some(cycles)) => format!("{}k cyc", cycles / 1000),
                (None, None) => "-".into(),
            },
            None => "-".into(),
        };
        let run = match &m.startup {
            Some(s) => match (s.run_ms, &s.run_failure) {
                (Some(ms), _) => duration(ms),
                (None, Some(failure)) => failure.cell(),
                (None, None) => "-".into(),
            },
            None if no_run => "not run".into(),
            None => "-".into(),
        };
        shell.print(format_args!(
            "{:<16} {:>26} {:>7.1}x {:>9} {:>9} {:>10} {:>10} {:>9} {:>9}",
            m.name,
            format!(
                "{} ({}-{})",
                duration(e.median_ms),
                duration(e.min_ms),
                duration(e.max_ms)
            ),
            m.speedup,
            duration(m.link.median_ms),
            duration(m.compile.median_ms),
            kib(m.peak_kib),
            crate::ops::plan::human_size(m.binary_bytes),
            startup,
            run
        ));
    }
    if report.modes.iter().any(|m| m.cold_ms.is_some()) {
        let cold: Vec<String> = report
            .modes
            .iter()
            .filter_map(|m| Some(format!("{} {}", m.name, duration(m.cold_ms?))))
            .collect();
        shell.status("Cold", cold.join(", "));
    }
    if let Some(b) = &report.bundle {
        shell.status(
            "Bundle",
            format_args!(
                "{}, {} exported symbols, linked once in {} ({} peak)",
                crate::ops::plan::human_size(b.bytes),
                crate::ops::plan::group_digits(b.exported_symbols),
                duration(b.link_ms as f64),
                kib(b.link_peak_kib)
            ),
        );
    }
    if report.interrupted {
        let done: usize = report.modes.iter().map(|m| m.edit_to_binary.samples).sum();
        let all = report.runs as usize * report.modes_asked;
        if done < all {
            shell.status(
                "Interrupted",
                format_args!("after {done} of {all} timed builds: the figures are from those"),
            );
        } else {
            shell.status(
                "Interrupted",
                "while running the programs: figures not measured are shown `-`",
            );
        }
    }
    if !report.verdict.is_empty() {
        shell.status("Verdict", &report.verdict);
    }
    shell.status("Chart", report.chart.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_named_without_cargos_hash() {
        assert_eq!(
            artifact_name(Path::new("/t/debug/deps/game-0123abcdef")),
            "game"
        );
        assert_eq!(
            artifact_name(Path::new("/t/debug/examples/my-demo-99")),
            "my-demo"
        );
        assert_eq!(
            artifact_name(Path::new("/t/libdyndev_bundle_ab.so")),
            "libdyndev_bundle_ab.so"
        );
    }

    fn mode(name: &str, dyndev: bool, median: f64, link: f64, speedup: f64) -> ModeReport {
        let s = |v| Summary {
            median_ms: v,
            min_ms: v,
            max_ms: v,
            samples: 1,
        };
        ModeReport {
            name: name.into(),
            dyndev,
            linker: "rust-lld".into(),
            edit_to_binary: s(median),
            speedup,
            link: s(link),
            links: Vec::new(),
            compile: s(median - link),
            peak_kib: 0,
            link_peak_kib: 0,
            binary_bytes: 0,
            startup: None,
            cold_ms: None,
        }
    }

    #[test]
    fn the_verdict_says_when_dynamic_linking_helps_and_when_not() {
        let helps = verdict(&[
            mode("static rust-lld", false, 3500.0, 2900.0, 1.0),
            mode("dyndev", true, 700.0, 80.0, 5.0),
        ]);
        assert!(
            helps.starts_with("dyndev makes an edit 5.0x faster here"),
            "{helps}"
        );
        let not = verdict(&[
            mode("static rust-lld", false, 900.0, 250.0, 1.0),
            mode("dyndev", true, 880.0, 60.0, 1.02),
        ]);
        assert!(
            not.starts_with("dynamic linking does not help here"),
            "{not}"
        );
        let mold = verdict(&[
            mode("static rust-lld", false, 3500.0, 2900.0, 1.0),
            mode("dyndev", true, 700.0, 80.0, 5.0),
            mode("static mold", false, 760.0, 150.0, 4.6),
        ]);
        assert!(mold.contains("static mold gets 4.6x"), "{mold}");
    }

    fn startup(run: Result<f64, program::Outcome>) -> Startup {
        let (run_ms, run_failure) = match run {
            Ok(ms) => (Some(ms), None),
            Err(outcome) => (None, Some(outcome)),
        };
        Startup {
            loader_cycles: Some(40_000_000),
            relocations: 300_000,
            loader_ms: Some(14.0),
            run_ms,
            run_not_measured: run_failure.as_ref().map(program::Outcome::reason),
            run_failure,
        }
    }

    #[test]
    fn only_successful_runs_make_a_run_time_claim() {
        let with = |stat: Startup, dynamic: Startup| {
            let mut s = mode("static rust-lld", false, 3000.0, 2000.0, 1.0);
            s.startup = Some(stat);
            let mut d = mode("dyndev", true, 1200.0, 200.0, 2.5);
            d.startup = Some(dynamic);
            verdict(&[s, d])
        };
        let measured = with(startup(Ok(820.0)), startup(Ok(960.0)));
        assert!(measured.contains("ran 17% slower"), "{measured}");

        // Time to a panic, or to an exit with an error, says nothing about
        // how fast the program runs.
        let panicked = program::Outcome::Panicked("src/main.rs:3:5: no display".into());
        for failed in [
            panicked,
            program::Outcome::Exited(1),
            program::Outcome::Signalled(11),
        ] {
            for v in [
                with(startup(Err(failed.clone())), startup(Err(failed.clone()))),
                with(startup(Ok(20.0)), startup(Err(failed.clone()))),
                with(startup(Err(failed.clone())), startup(Ok(40.0))),
            ] {
                assert!(!v.contains(" ran "), "{failed:?}: {v}");
                // The loader's work before `main` is still the price.
                assert!(v.contains("14 ms of dynamic loading"), "{v}");
            }
        }
    }

    fn linker(name: &str) -> LinkerMode {
        LinkerMode {
            name: name.into(),
            replace_default: true,
            args: Vec::new(),
        }
    }

    #[test]
    fn the_fast_linkers_are_compared_by_default_the_slow_ones_on_request() {
        let found = || -> Vec<LinkerMode> {
            ["mold", "ld.lld", "gold", "bfd", "wild"]
                .into_iter()
                .map(linker)
                .collect()
        };
        let names = |request: Option<&str>| -> Vec<String> {
            chosen_linkers(found(), request)
                .unwrap()
                .into_iter()
                .map(|m| m.name)
                .collect()
        };
        assert_eq!(names(None), ["mold", "wild"]);
        assert_eq!(
            names(Some("all")),
            ["mold", "ld.lld", "gold", "bfd", "wild"]
        );
        assert_eq!(names(Some("none")), Vec::<String>::new());
        assert_eq!(names(Some("gold, mold")), ["gold", "mold"]);
        let err = chosen_linkers(vec![linker("gold")], Some("mold")).unwrap_err();
        assert!(err.to_string().contains("found: gold"), "{err}");
        assert!(chosen_linkers(Vec::new(), None).unwrap().is_empty());
    }
}
