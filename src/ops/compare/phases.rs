//! The measuring phases after `prepare`: cold builds, the warm-up, the timed
//! builds (the modes taking turns), the programs' runs, and the report.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};

use super::modes::Mode;
use super::prepare::Comparison;
use super::program::{self, Outcome, Startup, Until};
use super::report::{BundleReport, Report, Sample, mode_report};
use super::scenario::{Kind, way_out};
use super::verdict::verdict;
use super::{chart, interrupt, progress};
use crate::layout::Layout;
use crate::shell::{Shell, duration};
use crate::state::BundleState;

/// The timed builds, as far as they got.
pub(super) struct Timed {
    /// Per mode; empty for a mode Ctrl-C came before.
    pub(super) samples: Vec<Vec<Sample>>,
    /// Each mode's last binary, kept aside.
    pub(super) binaries: Vec<PathBuf>,
    pub(super) interrupted: bool,
}

impl Comparison<'_> {
    /// Whether the program is left unrun: asked for, or a test loop, whose
    /// runs are in its timed builds.
    fn no_run(&self) -> bool {
        self.args.no_run || self.args.tests
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
    pub(super) fn cold_builds(&self, shell: &Shell) -> Result<Vec<Option<f64>>> {
        let mut cold = Vec::new();
        for mode in &self.modes {
            shell.status(
                "Cold",
                format_args!("build of {} from an empty target dir", mode.name),
            );
            cold.push(Some(self.bench.cold_build(shell, mode)?.wall_ms));
        }
        Ok(cold)
    }

    /// Builds each mode once (the first compiles the dependencies, for all
    /// modes), then once more after an edit, so incremental caches are warm.
    /// The first mode's edit comes right after its first build, so an edit
    /// the crate rejects stops the comparison before the other modes build.
    /// Returns the peak memory of a bundle link, if one happened, and each
    /// mode's edit build time, a first guess at its timed builds.
    pub(super) fn warm_up(&self, shell: &Shell) -> Result<(u64, Vec<f64>)> {
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
        let mut warm_ms = vec![0.0; self.modes.len()];
        for (i, mode) in self.modes.iter().enumerate() {
            self.bench.clear_logs();
            self.bench.build(shell, mode, true)?;
            if mode.dyndev {
                bundle_link_peak = bundle_link_peak.max(self.bench.bundle_link_peak()?);
            }
            if i == 0 {
                warm_ms[0] = self.edit_build(shell, mode)?;
            }
        }
        for (i, mode) in self.modes.iter().enumerate().skip(1) {
            warm_ms[i] = self.edit_build(shell, mode)?;
        }
        Ok((bundle_link_peak, warm_ms))
    }

    /// A warm-up build after an edit, whose mode built before it: if it
    /// fails, the edit is the likely cause, and the error says what to do.
    fn edit_build(&self, shell: &Shell, mode: &Mode) -> Result<f64> {
        self.scenario.apply(self.next_edit())?;
        match self.bench.build(shell, mode, false) {
            Ok(sample) => Ok(sample.wall_ms),
            Err(e) if interrupt::interrupted() || self.scenario.kind != Kind::Edit => Err(e),
            Err(e) => Err(anyhow!(
                "{e:#}\n\nnote: the {} build succeeded before compare's edit of `{}`\n{}",
                mode.name,
                self.shown_file.display(),
                way_out(&self.typed_file)
            )),
        }
    }

    /// The timed builds, the modes taking turns, until done or Ctrl-C;
    /// then each mode's binary, kept aside (the modes share a target dir).
    pub(super) fn timed_runs(&self, shell: &Shell, warm_ms: &[f64]) -> Result<Timed> {
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

    /// Runs each built mode's binary, to measure its start-up and run time;
    /// `None` for a mode not built, with `--no-run`, or once Ctrl-C came.
    /// When the first run is still going at the timeout (a GUI, a server),
    /// no run is waited for again: every other mode's program is stopped
    /// once started, for its start-up, and one note says why.
    pub(super) fn run_programs(&self, shell: &Shell, timed: &Timed) -> Vec<Option<Startup>> {
        let mut startups = Vec::new();
        let mut helped = false;
        let mut until = Until::End;
        let to_run = timed
            .samples
            .iter()
            .filter(|s| !s.is_empty() && !self.no_run())
            .count();
        let started = Instant::now();
        let mut ran = 0;
        for (i, mode) in self.modes.iter().enumerate() {
            if timed.samples[i].is_empty() || self.no_run() || interrupt::interrupted() {
                startups.push(None);
                continue;
            }
            let left = if ran == 0 || until == Until::Startup {
                String::new()
            } else {
                let each = started.elapsed().as_secs_f64() * 1000.0 / ran as f64;
                format!(", {} left", progress::about(each * (to_run - ran) as f64))
            };
            shell.status(
                "Running",
                format_args!(
                    "{} binary, to measure its start-up{}{left}",
                    mode.name,
                    if until == Until::End {
                        " and run time"
                    } else {
                        ""
                    }
                ),
            );
            let first = ran == 0;
            ran += 1;
            let measure = match until {
                Until::End => program::measure,
                Until::Startup => program::measure_startup,
            };
            let startup = measure(
                &timed.binaries[i],
                &self.args.args,
                &self.copy_root,
                &self.package_dir,
                Duration::from_secs(self.args.timeout),
            );
            match &startup.run_failure {
                Some(failure @ Outcome::TimedOut(_)) if first && startup.runs == 1 => {
                    until = Until::Startup;
                    let mut message = format!(
                        "{}: no mode's run is timed; each mode's start-up is still measured, \
                         and the other modes' programs are stopped as soon as they have started",
                        failure.reason()
                    );
                    if let Some(help) = failure.help() {
                        message.push_str(&format!("\nhelp: {help}"));
                        helped = true;
                    }
                    shell.warn(message);
                }
                Some(Outcome::Interrupted | Outcome::Stopped(_)) | None => {}
                Some(failure) => {
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
            }
            startups.push(Some(startup));
        }
        startups
    }

    /// Each built mode's summary, the bundle, the verdict and the chart.
    pub(super) fn report(
        &self,
        shell: &Shell,
        timed: &Timed,
        startups: &[Option<Startup>],
        cold: &[Option<f64>],
        bundle_link_peak: u64,
    ) -> Result<Report> {
        let mut modes = Vec::new();
        let mut not_built = Vec::new();
        for (i, mode) in self.modes.iter().enumerate() {
            if timed.samples[i].is_empty() {
                not_built.push(mode.name.as_str());
                continue;
            }
            modes.push(mode_report(
                mode,
                &timed.samples[i],
                &timed.binaries[i],
                startups[i].clone(),
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
            bytes: b.linked.size,
            exported_symbols: b.linked.exported_symbols,
            link_ms: b.linked.link_millis,
            link_peak_kib: bundle_link_peak.max(b.linked.link_peak_kib),
            file: b.linked.file,
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
            tests: self.args.tests,
            verdict: verdict(&modes),
            modes,
            bundle,
            chart: chart_path.clone(),
        };
        let title = format!(
            "{} of {}: {} -> {}, median of {} runs",
            report.scenario,
            report.file.display(),
            report.target,
            if report.tests {
                "suite done"
            } else {
                "binary ready"
            },
            report.runs
        );
        crate::fs::write_atomic(
            &chart_path,
            chart::render(&title, &chart::bars(&report)).as_bytes(),
        )?;
        Ok(report)
    }
}
