//! The build runner: one timed build of a mode (or, with `--tests`, one
//! build and run of the tests), all modes in one target dir (the linker
//! proxy picks each mode's linker, so cargo's fingerprints hold), and in
//! the user's own build dir: each dependency compiles once for the user's
//! builds and every mode. The copy's own crates stay apart there: cargo
//! hashes the workspace wrapper into them (dyndev's, or the timer's for
//! static modes), and the copy's would otherwise be the user's units, as
//! cargo names a path package by its path within the workspace.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::interrupt;
use super::modes::Mode;
use super::report::Sample;
use crate::cli::CompareArgs;
use crate::contract::CompileRecord;
use crate::contract::{self, LinkRecord};
use crate::measure;
use crate::shell::Shell;

/// Everything the builds of one comparison share.
pub(super) struct Bench {
    copy_root: PathBuf,
    pub(super) manifest: PathBuf,
    pub(super) target_dir: PathBuf,
    /// The user's build dir, which the modes share with the user's builds.
    build_dir: PathBuf,
    /// The timer, also the static modes' workspace wrapper.
    timer: PathBuf,
    /// The user's own workspace wrapper, run inside the timer.
    user_wrapper: Option<PathBuf>,
    target_flag: Vec<String>,
    /// `build`, or `test` to time the test loop (build and run).
    subcommand: &'static str,
    build_args: Vec<String>,
    env: Vec<(String, OsString)>,
    link_log: PathBuf,
    rustc_log: PathBuf,
    stderr_log: PathBuf,
}

impl Bench {
    pub(super) fn new(
        dir: &Path,
        host: &str,
        copy_root: PathBuf,
        manifest: PathBuf,
        build_dir: PathBuf,
        target_flag: Option<String>,
        args: &CompareArgs,
    ) -> Result<Bench> {
        let tools = dir.join("bin");
        let linker = crate::helpers::install(&tools, contract::names::LINKER)?;
        let timer = crate::helpers::install(&tools, crate::contract::names::TIMER)?;
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
        let user_wrapper = crate::cargo_config::workspace_wrapper(&copy_root)?
            .filter(|w| w.file_name() != Some(contract::names::WRAPPER.as_ref()));
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
            (contract::env::TIMER_LINKER.into(), linker.into_os_string()),
            ("RUSTC_WRAPPER".into(), timer.clone().into_os_string()),
            (contract::env::LINK_LOG.into(), link_log.clone().into()),
            (
                crate::contract::env::RUSTC_LOG.into(),
                rustc_log.clone().into(),
            ),
        ];
        if let Some(l) = user_linker {
            env.push((contract::env::REAL_LINKER.into(), l.into_os_string()));
        }
        Ok(Bench {
            copy_root,
            manifest,
            target_dir: dir.join("target"),
            build_dir,
            timer,
            user_wrapper,
            target_flag: target_flag.into_iter().collect(),
            subcommand: if args.tests { "test" } else { "build" },
            build_args,
            env,
            link_log,
            rustc_log,
            stderr_log: logs.join("stderr.txt"),
        })
    }

    /// Fills in a timed build's link and compile times from the
    /// instruments' logs; returns the final binary's path.
    pub(super) fn read_logs(&self, sample: &mut Sample) -> Result<Option<PathBuf>> {
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
        // The program: the last link of an executable (not of a workspace
        // library's shared version, which dyndev may link after it).
        Ok(final_links
            .iter()
            .rev()
            .find(|l| !is_shared_library(&l.output))
            .map(|l| l.output.clone()))
    }

    /// The peak memory of the bundle's link, if the last build linked it.
    pub(super) fn bundle_link_peak(&self) -> Result<u64> {
        let links: Vec<LinkRecord> = measure::read_log(&self.link_log)?;
        Ok(links
            .iter()
            .filter(|l| is_bundle_output(&l.output))
            .map(|l| l.max_rss_kib)
            .max()
            .unwrap_or(0))
    }

    pub(super) fn clear_logs(&self) {
        let _ = std::fs::remove_file(&self.link_log);
        let _ = std::fs::remove_file(&self.rustc_log);
    }

    /// Builds one mode, timed; `show` lets cargo's progress through (for
    /// the long first build), otherwise output is kept and shown on failure.
    pub(super) fn build(&self, shell: &Shell, mode: &Mode, show: bool) -> Result<Sample> {
        self.build_in(shell, mode, show, &self.build_dir)
    }

    /// [`Bench::build`] from nothing: in the comparison's own build dir,
    /// emptied first with its target dir.
    pub(super) fn cold_build(&self, shell: &Shell, mode: &Mode) -> Result<Sample> {
        if self.target_dir.exists() {
            std::fs::remove_dir_all(&self.target_dir)
                .with_context(|| format!("failed to remove `{}`", self.target_dir.display()))?;
        }
        self.build_in(shell, mode, false, &self.target_dir)
    }

    fn build_in(&self, shell: &Shell, mode: &Mode, show: bool, build_dir: &Path) -> Result<Sample> {
        interrupt::check()?;
        let mut cmd = if mode.dyndev {
            let mut c = Command::new(crate::fs::self_exe()?);
            c.args(["dyndev", self.subcommand]);
            c.arg(format!("--target-dir={}", self.target_dir.display()));
            c
        } else {
            let mut c = Command::new(crate::cargo::cargo_program());
            c.arg(self.subcommand);
            // Static builds land beside dyndev's.
            c.arg(format!(
                "--target-dir={}",
                self.target_dir.join("dyndev").display()
            ));
            c
        };
        if !mode.dyndev {
            cmd.env("RUSTC_WORKSPACE_WRAPPER", &self.timer);
            if let Some(w) = &self.user_wrapper {
                cmd.env(contract::env::INNER_WRAPPER, w);
            }
        }
        cmd.env("CARGO_BUILD_BUILD_DIR", build_dir)
            .arg(format!("--manifest-path={}", self.manifest.display()))
            .args(&self.target_flag)
            .args(&self.build_args)
            .current_dir(&self.copy_root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .env(
                contract::env::LINKER_MODE,
                serde_json::to_string(&mode.linker)?,
            )
            .env_remove(crate::contract::env::STATE_DIR);
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
        let start = Instant::now();
        let (child, running) = interrupt::spawn(&mut cmd)
            .with_context(|| format!("failed to run the {} build", mode.name))?;
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

/// `deps/game-0123abcd` -> `game`; a workspace library's shared version,
/// `v/libcore-0123abcd-4567ef.so` -> `libcore.so`.
fn artifact_name(output: &Path) -> String {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let strip = |name: &str| -> Option<String> {
        let (base, hash) = name.rsplit_once('-')?;
        (hash.chars().all(|c| c.is_ascii_hexdigit()) && !hash.is_empty()).then(|| base.to_owned())
    };
    if is_shared_library(output) && !is_bundle_output(output) {
        let stem = name.trim_end_matches(".so");
        if let Some(base) = strip(stem).as_deref().and_then(strip) {
            return format!("{base}.so");
        }
    }
    strip(&name).unwrap_or(name)
}

fn is_shared_library(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "so")
}

fn is_bundle_output(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("libdyndev_bundle_"))
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
        assert_eq!(
            artifact_name(Path::new("/s/so/v/libcore-0123abcd-4567ef.so")),
            "libcore.so"
        );
    }
}
