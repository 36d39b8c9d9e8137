//! The fast path: when only sources of workspace crates changed, run again
//! the rustc commands captured for those crates (and the members that use
//! them) instead of cargo, skipping cargo's own work on the whole graph.
//!
//! Commands are captured by this executable under another name, placed as
//! the innermost rustc wrapper (inside dyndev's own, so it sees the final
//! command line): it records the arguments, environment and working
//! directory, then runs rustc. Cargo's fingerprints are not updated by a
//! replay, so the sources stay newer than them and the next cargo build
//! compiles those crates again: a later `cargo dyndev build` is correct.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use cargo_metadata::{Artifact, PackageId};

use crate::shell::Shell;
use crate::workspace::Workspace;

use super::inputs::{ScriptInputs, normalize};
use crate::depinfo::DepInfo;
use crate::helpers::capture::Capture;

/// One member unit of the last build.
#[derive(Debug)]
struct Unit {
    stem: Option<String>,
    package: PackageId,
    lib: bool,
    capture: Option<Capture>,
    /// The same compile as dyndev's wrapper received it, to replay
    /// through the wrapper.
    wrapped: Option<Capture>,
    /// What its dep-info lists.
    files: BTreeSet<PathBuf>,
    /// The stems of the units it links (`--extern`).
    deps: BTreeSet<String>,
}

/// What the last build was made of, for planning replays.
#[derive(Debug)]
pub struct FastPath {
    units: Vec<Unit>,
    /// The executable the program runs from (cargo's uplifted copy).
    exe: PathBuf,
    /// The stem of the unit that links it.
    bin: Option<String>,
    /// Member packages and the member packages each depends on.
    member_deps: BTreeMap<PackageId, BTreeSet<PackageId>>,
    /// What runs a build script again: a change there needs cargo, which
    /// runs it; a replay would reuse what it printed last.
    scripts: ScriptInputs,
}

/// Units to compile again, in order, and where the executable comes from.
#[derive(Debug)]
pub struct Replay<'a> {
    units: Vec<&'a Unit>,
    exe: &'a Path,
    bin_output: PathBuf,
}

impl FastPath {
    /// Reads what the captures say about the member units of a build.
    pub fn new(
        ws: &Workspace,
        artifacts: &[Artifact],
        exe: &Path,
        captures: &Path,
        scripts: ScriptInputs,
    ) -> FastPath {
        let mut units = Vec::new();
        let mut bin = None;
        for a in artifacts.iter().filter(|a| ws.is_member(&a.package_id)) {
            if a.target.is_custom_build() || a.target.is_proc_macro() {
                continue;
            }
            let lib = a.target.is_lib();
            let stem = if lib {
                a.filenames
                    .iter()
                    .find(|f| f.extension() == Some("rlib"))
                    .and_then(|f| f.file_stem())
                    .map(str::to_owned)
            } else {
                // An executable's unit is found by the file cargo links
                // its uplifted copy to.
                let crate_name = a.target.name.replace('-', "_");
                let is_ours = |stem: &str| {
                    Capture::read(captures, stem)
                        .or_else(|| Capture::read_wrapped(captures, stem))
                        .and_then(|c| c.invocation().out_dir)
                        .is_some_and(|d| crate::fs::same_inode(&d.join(stem), exe))
                };
                let found = a
                    .executable
                    .as_ref()
                    .filter(|e| e.as_std_path() == exe)
                    .and_then(|_| {
                        std::fs::read_dir(captures).ok()?.flatten().find_map(|e| {
                            let name = e.file_name().into_string().ok()?;
                            let stem = name.strip_suffix(".json")?;
                            let stem = stem.strip_suffix(".wrapped").unwrap_or(stem);
                            let rest = stem.strip_prefix(&crate_name)?;
                            (rest.starts_with('-') && is_ours(stem)).then(|| stem.to_owned())
                        })
                    });
                if found.is_some() {
                    bin = found.clone();
                }
                found
            };
            let capture = stem.as_deref().and_then(|s| Capture::read(captures, s));
            let wrapped = stem
                .as_deref()
                .and_then(|s| Capture::read_wrapped(captures, s));
            let (files, deps) = match capture.as_ref().or(wrapped.as_ref()) {
                Some(c) => {
                    let inv = c.invocation();
                    let files = inv
                        .dep_info_path()
                        .and_then(|d| std::fs::read_to_string(d).ok())
                        .map(|t| {
                            DepInfo::parse(&t)
                                .files
                                .into_iter()
                                .map(|p| normalize(&c.cwd.join(p)))
                                .collect()
                        })
                        .unwrap_or_default();
                    let deps = inv
                        .externs
                        .iter()
                        .filter_map(|e| e.unit_stem().map(str::to_owned))
                        .collect();
                    (files, deps)
                }
                None => (BTreeSet::new(), BTreeSet::new()),
            };
            units.push(Unit {
                stem,
                package: a.package_id.clone(),
                lib,
                capture,
                wrapped,
                files,
                deps,
            });
        }
        let member_deps = ws
            .members()
            .map(|p| {
                let deps = p
                    .dependencies
                    .iter()
                    .filter_map(|d| d.path.as_ref())
                    .filter_map(|dir| {
                        ws.members()
                            .find(|m| m.manifest_path.parent() == Some(dir.as_path()))
                            .map(|m| m.id.clone())
                    })
                    .collect();
                (p.id.clone(), deps)
            })
            .collect();
        FastPath {
            units,
            exe: exe.to_owned(),
            bin,
            member_deps,
            scripts,
        }
    }

    /// Whether package `a` depends on package `b`, directly or not.
    fn depends(&self, a: &PackageId, b: &PackageId) -> bool {
        let mut stack = vec![a];
        let mut seen = BTreeSet::new();
        while let Some(p) = stack.pop() {
            for d in self.member_deps.get(p).into_iter().flatten() {
                if d == b {
                    return true;
                }
                if seen.insert(d) {
                    stack.push(d);
                }
            }
        }
        false
    }

    /// Whether the program's own crate was captured (it compiled in the
    /// build, now or in an earlier watch), so a save can replay it.
    pub fn knows_the_program(&self) -> bool {
        self.bin.is_some()
    }

    /// The units to compile again after `changed`, in order; none when
    /// cargo must do it (a file no captured unit lists, a change that runs
    /// a build script again, a unit never captured, or the executable not
    /// among them).
    pub fn plan(&self, changed: &[PathBuf]) -> Option<Replay<'_>> {
        let bin = self.bin.as_deref()?;
        for path in changed {
            if self.scripts.rerun_by(path) || !self.units.iter().any(|u| u.files.contains(path)) {
                return None;
            }
        }
        let mut rebuild: Vec<&Unit> = Vec::new();
        for u in &self.units {
            if changed.iter().any(|p| u.files.contains(p)) {
                rebuild.push(u);
            }
        }
        // Whatever links a rebuilt library is rebuilt too.
        loop {
            let stems: BTreeSet<&str> = rebuild.iter().filter_map(|u| u.stem.as_deref()).collect();
            let more: Vec<&Unit> = self
                .units
                .iter()
                .filter(|u| !rebuild.iter().any(|r| std::ptr::eq(*r, *u)))
                .filter(|u| u.deps.iter().any(|d| stems.contains(d.as_str())))
                .collect();
            if more.is_empty() {
                break;
            }
            rebuild.extend(more);
        }
        // A unit never captured is not known to be unaffected unless its
        // package cannot use the rebuilt libraries.
        for u in self
            .units
            .iter()
            .filter(|u| u.capture.is_none() && u.wrapped.is_none())
        {
            if rebuild.iter().any(|r| std::ptr::eq(*r, u)) {
                return None;
            }
            for r in rebuild.iter().filter(|r| r.lib) {
                if (u.package == r.package && !u.lib) || self.depends(&u.package, &r.package) {
                    return None;
                }
            }
        }
        // Libraries before what links them.
        let mut ordered: Vec<&Unit> = Vec::new();
        while ordered.len() < rebuild.len() {
            let done: BTreeSet<&str> = ordered.iter().filter_map(|u| u.stem.as_deref()).collect();
            let pending: BTreeSet<&str> = rebuild
                .iter()
                .filter_map(|u| u.stem.as_deref())
                .filter(|s| !done.contains(s))
                .collect();
            let next = rebuild.iter().find(|u| {
                !u.stem.as_deref().is_some_and(|s| done.contains(s))
                    && !u.deps.iter().any(|d| pending.contains(d.as_str()))
            })?;
            ordered.push(next);
        }
        let bin_unit = ordered.iter().find(|u| u.stem.as_deref() == Some(bin))?;
        let bin_output = bin_unit
            .capture
            .as_ref()
            .or(bin_unit.wrapped.as_ref())?
            .invocation()
            .out_dir?
            .join(bin);
        Some(Replay {
            units: ordered,
            exe: &self.exe,
            bin_output,
        })
    }
}

impl Replay<'_> {
    /// Runs the captured commands; false when one failed (its diagnostics
    /// shown). On success the executable is in place.
    pub fn run(&self, shell: &Shell) -> Result<bool> {
        Ok(self.run_libraries(shell)? && self.run_bin(shell)?)
    }

    /// Runs the commands of every unit but the program's own (the
    /// libraries it links, first); false when one failed.
    pub fn run_libraries(&self, shell: &Shell) -> Result<bool> {
        self.run_units(shell, |u| !self.is_bin(u))
    }

    /// Runs the command of the program's unit and puts the executable in
    /// place; false when it failed (its diagnostics shown).
    pub fn run_bin(&self, shell: &Shell) -> Result<bool> {
        if !self.run_units(shell, |u| self.is_bin(u))? {
            return Ok(false);
        }
        self.place_exe()?;
        Ok(true)
    }

    /// The captured command that builds the program's own crate.
    pub fn bin_capture(&self) -> Option<&Capture> {
        self.units
            .iter()
            .find(|u| self.is_bin(u))
            .and_then(|u| u.capture.as_ref())
    }

    fn is_bin(&self, u: &Unit) -> bool {
        u.stem
            .as_deref()
            .is_some_and(|s| self.bin_output.file_name() == Some(std::ffi::OsStr::new(s)))
    }

    fn run_units(&self, shell: &Shell, which: impl Fn(&Unit) -> bool) -> Result<bool> {
        for u in self.units.iter().filter(|u| which(u)) {
            // Through dyndev's wrapper when it recorded the compile, so
            // that the cutoff decides what needs compiling.
            let c = u
                .wrapped
                .as_ref()
                .or(u.capture.as_ref())
                .context("replaying a unit never captured")?;
            shell.verbose_status(
                "Replaying",
                format_args!("rustc for `{}`", u.stem.as_deref().unwrap_or("?")),
            );
            let mut child = Command::new(&c.program[0])
                .args(&c.program[1..])
                .args(&c.args)
                .env_clear()
                // Cargo's jobserver is gone with the cargo that made it.
                .envs(
                    c.env
                        .iter()
                        .filter(|(k, _)| {
                            !matches!(k.as_str(), "CARGO_MAKEFLAGS" | "MAKEFLAGS" | "MFLAGS")
                        })
                        .map(|(k, v)| (k, v)),
                )
                .current_dir(&c.cwd)
                .stdin(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("failed to run `{}`", c.program[0]))?;
            let stderr = child.stderr.take().context("rustc's stderr is not piped")?;
            let mut out = anstream::stderr();
            for line in BufReader::new(stderr).lines() {
                let line = line.context("failed to read rustc's messages")?;
                match serde_json::from_str::<serde_json::Value>(&line) {
                    Ok(v) => {
                        if let Some(text) = v.get("rendered").and_then(|r| r.as_str()) {
                            let _ = write!(out, "{text}");
                        }
                    }
                    Err(_) => {
                        let _ = writeln!(out, "{line}");
                    }
                }
            }
            let status = child.wait().context("failed to wait for rustc")?;
            if !status.success() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn place_exe(&self) -> Result<()> {
        // Where cargo would put it: a link to the unit's output.
        let _ = std::fs::remove_file(self.exe);
        if std::fs::hard_link(&self.bin_output, self.exe).is_err() {
            std::fs::copy(&self.bin_output, self.exe).with_context(|| {
                format!(
                    "failed to copy `{}` to `{}`",
                    self.bin_output.display(),
                    self.exe.display()
                )
            })?;
        }
        Ok(())
    }

    /// The files the replayed units read now (a new module, say).
    pub fn inputs(&self) -> BTreeSet<PathBuf> {
        let mut files = BTreeSet::new();
        for u in &self.units {
            if let Some(c) = u.capture.as_ref().or(u.wrapped.as_ref())
                && let Some(text) = c
                    .invocation()
                    .dep_info_path()
                    .and_then(|d| std::fs::read_to_string(d).ok())
            {
                files.extend(
                    DepInfo::parse(&text)
                        .files
                        .into_iter()
                        .map(|p| normalize(&c.cwd.join(p))),
                );
            }
        }
        files
    }

    pub fn len(&self) -> usize {
        self.units.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(name: &str, kind: &str) -> Capture {
        Capture {
            program: vec!["rustc".into()],
            args: [
                "--crate-name",
                name,
                "--crate-type",
                kind,
                "--emit=dep-info,link",
                "-C",
                "extra-filename=-1",
                "--out-dir",
                "/t/deps",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
            env: Vec::new(),
            cwd: PathBuf::from("/w"),
        }
    }

    fn unit(stem: &str, package: &str, lib: bool, files: &[&str], deps: &[&str]) -> Unit {
        let name = stem.trim_start_matches("lib").trim_end_matches("-1");
        Unit {
            stem: Some(stem.into()),
            package: PackageId {
                repr: package.into(),
            },
            lib,
            capture: Some(capture(name, if lib { "lib" } else { "bin" })),
            wrapped: None,
            files: files.iter().map(PathBuf::from).collect(),
            deps: deps.iter().map(|d| d.to_string()).collect(),
        }
    }

    /// `engine` (a library) and `game` (a binary using it), plus `tool`,
    /// a binary of another package that uses nothing.
    fn fast(tool_captured: bool) -> FastPath {
        let mut tool = unit("tool-1", "tool", false, &["/w/tool/main.rs"], &[]);
        if !tool_captured {
            tool.capture = None;
        }
        FastPath {
            units: vec![
                unit(
                    "game-1",
                    "game",
                    false,
                    &["/w/game/main.rs"],
                    &["libengine-1"],
                ),
                unit(
                    "libengine-1",
                    "engine",
                    true,
                    &["/w/engine/lib.rs", "/w/engine/data.txt"],
                    &[],
                ),
                tool,
            ],
            exe: PathBuf::from("/t/game"),
            bin: Some("game-1".into()),
            member_deps: [
                (
                    PackageId {
                        repr: "game".into(),
                    },
                    [PackageId {
                        repr: "engine".into(),
                    }]
                    .into(),
                ),
                (
                    PackageId {
                        repr: "engine".into(),
                    },
                    BTreeSet::new(),
                ),
                (
                    PackageId {
                        repr: "tool".into(),
                    },
                    BTreeSet::new(),
                ),
            ]
            .into(),
            scripts: ScriptInputs {
                rerun_if_changed: [PathBuf::from("/w/engine/build-input.txt")].into(),
                packages: ["/w/game", "/w/engine", "/w/tool"]
                    .into_iter()
                    .map(PathBuf::from)
                    .collect(),
                ..ScriptInputs::default()
            },
        }
    }

    fn stems(r: &Replay<'_>) -> Vec<String> {
        r.units.iter().map(|u| u.stem.clone().unwrap()).collect()
    }

    #[test]
    fn a_library_is_replayed_before_what_links_it() {
        let f = fast(true);
        let r = f.plan(&[PathBuf::from("/w/engine/data.txt")]).unwrap();
        assert_eq!(stems(&r), ["libengine-1", "game-1"]);
        assert_eq!(r.bin_output, Path::new("/t/deps/game-1"));
        let r = f.plan(&[PathBuf::from("/w/game/main.rs")]).unwrap();
        assert_eq!(stems(&r), ["game-1"]);
        // `watch --hot` builds the program's crate itself.
        let r = f.plan(&[PathBuf::from("/w/engine/lib.rs")]).unwrap();
        let bin = r.bin_capture().unwrap();
        assert!(bin.args.windows(2).any(|w| w == ["--crate-name", "game"]));
    }

    #[test]
    fn cargo_builds_what_the_captures_cannot_vouch_for() {
        let f = fast(true);
        // A file no unit reads, and a build script's input.
        assert!(f.plan(&[PathBuf::from("/w/README.md")]).is_none());
        assert!(
            f.plan(&[PathBuf::from("/w/engine/build-input.txt")])
                .is_none()
        );
        // A change that does not reach the program.
        assert!(f.plan(&[PathBuf::from("/w/tool/main.rs")]).is_none());
        // A unit never captured, unrelated to the change, is no obstacle.
        let f = fast(false);
        assert!(f.plan(&[PathBuf::from("/w/engine/lib.rs")]).is_some());
    }

    #[test]
    fn a_save_that_runs_a_build_script_again_goes_to_cargo() {
        let engine = |f: &mut FastPath| {
            f.units[1]
                .files
                .insert("/w/engine/assets/maps/a.txt".into());
        };
        // A directory the script watches: anything under it.
        let mut f = fast(true);
        engine(&mut f);
        f.scripts.rerun_if_changed.insert("/w/engine/assets".into());
        assert!(
            f.plan(&[PathBuf::from("/w/engine/assets/maps/a.txt")])
                .is_none()
        );
        assert!(f.plan(&[PathBuf::from("/w/engine/lib.rs")]).is_some());
        // A script that printed no `rerun-if`: any file of its package,
        // with another change or alone; other packages' files replay.
        let mut f = fast(true);
        engine(&mut f);
        f.scripts.whole_packages.insert("/w/engine".into());
        for changed in [
            &["/w/engine/lib.rs"][..],
            &["/w/game/main.rs", "/w/engine/assets/maps/a.txt"],
        ] {
            let changed: Vec<PathBuf> = changed.iter().map(PathBuf::from).collect();
            assert!(f.plan(&changed).is_none(), "{changed:?}");
        }
        assert!(f.plan(&[PathBuf::from("/w/game/main.rs")]).is_some());
    }

    #[test]
    fn an_uncaptured_user_of_a_changed_library_sends_the_build_to_cargo() {
        let mut f = fast(false);
        f.member_deps.insert(
            PackageId {
                repr: "tool".into(),
            },
            [PackageId {
                repr: "engine".into(),
            }]
            .into(),
        );
        assert!(f.plan(&[PathBuf::from("/w/engine/lib.rs")]).is_none());
        assert!(f.plan(&[PathBuf::from("/w/game/main.rs")]).is_some());
    }
}
