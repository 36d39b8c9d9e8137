//! What a build read, learned from the build itself: the files in the
//! dep-info of every workspace unit (modules, `#[path]`, `include_str!`),
//! build scripts' `rerun-if-changed` paths (a directory: everything under
//! it), manifests, `Cargo.lock` and cargo's configuration. Never anything
//! under a target dir. And what makes cargo run a build script again
//! ([`ScriptInputs`]), which the fast path leaves to cargo.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cargo_metadata::{Artifact, BuildScript, PackageId, TargetKind};

use crate::workspace::Workspace;

/// The files a build depends on, and the directories to watch for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    pub files: BTreeSet<PathBuf>,
    /// Directories whose every entry is an input: a `rerun-if-changed`
    /// directory, which cargo scans whole, and every directory under it
    /// (each watched itself, so a new file in any of them is seen).
    pub trees: BTreeSet<PathBuf>,
}

/// Where not to look: directories builds write to or that never change
/// under the user's hands.
#[derive(Debug, Clone, Default)]
pub struct Exclusions {
    pub dirs: Vec<PathBuf>,
}

impl Exclusions {
    /// dyndev's target dir (`dyndev_dir`), the user's, cargo's home
    /// (registry and git sources), and rustup's toolchains. A directory
    /// holding the workspace itself (a copy kept under a target dir) is
    /// not excluded as a whole; dyndev's own target dir always is.
    pub fn for_workspace(ws: &Workspace, dyndev_dir: &Path) -> Exclusions {
        let mut dirs: Vec<PathBuf> = vec![ws.metadata.target_directory.clone().into()];
        if let Some(home) = crate::cargo_config::cargo_home() {
            dirs.push(home);
        }
        if let Some(rustup) = std::env::var_os("RUSTUP_HOME") {
            dirs.push(rustup.into());
        } else if let Some(home) = std::env::var_os("HOME") {
            dirs.push(Path::new(&home).join(".rustup"));
        }
        Exclusions::new(ws.root(), dyndev_dir, dirs)
    }

    fn new(root: &Path, dyndev_dir: &Path, dirs: Vec<PathBuf>) -> Exclusions {
        let root = normalize(root);
        let mut dirs: Vec<PathBuf> = dirs
            .iter()
            .map(|d| normalize(d))
            .filter(|d| !root.starts_with(d))
            .collect();
        dirs.push(normalize(dyndev_dir));
        Exclusions { dirs }
    }

    pub fn excludes(&self, path: &Path) -> bool {
        self.dirs.iter().any(|d| path.starts_with(d))
    }
}

impl Inputs {
    /// Inputs of a build that reported `artifacts`, and whose build
    /// scripts watch `scripts`.
    pub fn of_build(
        ws: &Workspace,
        artifacts: &[Artifact],
        scripts: &ScriptInputs,
        exclusions: &Exclusions,
    ) -> Inputs {
        let root = ws.root();
        let mut files = BTreeSet::new();
        for a in artifacts.iter().filter(|a| ws.is_member(&a.package_id)) {
            for dep_info in dep_info_files(a) {
                if let Ok(text) = std::fs::read_to_string(&dep_info) {
                    files.extend(
                        crate::depinfo::DepInfo::parse(&text)
                            .files
                            .into_iter()
                            .map(|p| root.join(p)),
                    );
                }
            }
        }
        files.extend(scripts.rerun_if_changed.iter().cloned());
        let mut inputs = Inputs::of_workspace(ws);
        inputs.files.extend(files);
        inputs.trees.extend(
            scripts
                .rerun_if_changed
                .iter()
                .filter(|p| p.is_dir())
                .cloned(),
        );
        inputs.finish(exclusions)
    }

    /// Inputs known without a build: manifests, `Cargo.lock`, cargo's
    /// configuration and toolchain files, and every member target's root
    /// file with what the newest dep-info of its crate lists (for a build
    /// that failed before reporting anything).
    pub fn of_workspace(ws: &Workspace) -> Inputs {
        let root = ws.root();
        let mut files = BTreeSet::new();
        for name in [
            "Cargo.toml",
            "Cargo.lock",
            "rust-toolchain",
            "rust-toolchain.toml",
        ] {
            files.insert(root.join(name));
        }
        let cwd = std::env::current_dir().unwrap_or_else(|_| root.to_owned());
        for dir in cwd.ancestors().chain(root.ancestors()) {
            for name in ["config.toml", "config"] {
                let path = dir.join(".cargo").join(name);
                if path.is_file() || dir == root {
                    files.insert(path);
                }
            }
        }
        for p in ws.members() {
            files.insert(p.manifest_path.clone().into());
            for t in &p.targets {
                files.insert(t.src_path.clone().into());
            }
        }
        Inputs {
            files,
            trees: BTreeSet::new(),
        }
    }

    /// Adds what the newest dep-info of each member target lists: after a
    /// failed build, the dep-info rustc wrote before the error.
    pub fn with_recent_dep_info(mut self, ws: &Workspace, deps_dir: &Path) -> Inputs {
        let Ok(entries) = std::fs::read_dir(deps_dir) else {
            return self;
        };
        let mut newest: BTreeMap<String, (std::time::SystemTime, PathBuf)> = BTreeMap::new();
        let crates: BTreeSet<String> = ws
            .members()
            .flat_map(|p| &p.targets)
            .filter(|t| !t.kind.contains(&TargetKind::CustomBuild))
            .map(|t| t.name.replace('-', "_"))
            .collect();
        for e in entries.flatten() {
            let path = e.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(stem) = name.strip_suffix(".d") else {
                continue;
            };
            let Some((krate, _hash)) = stem.rsplit_once('-') else {
                continue;
            };
            if !crates.contains(krate) {
                continue;
            }
            let Ok(modified) = e.metadata().and_then(|m| m.modified()) else {
                continue;
            };
            if newest.get(krate).is_none_or(|(t, _)| *t < modified) {
                newest.insert(krate.to_owned(), (modified, path));
            }
        }
        for (_, (_, path)) in newest {
            if let Ok(text) = std::fs::read_to_string(&path) {
                self.files.extend(
                    crate::depinfo::DepInfo::parse(&text)
                        .files
                        .into_iter()
                        .map(|p| ws.root().join(p)),
                );
            }
        }
        self
    }

    /// Normalises every path and drops those under an excluded directory;
    /// lists what each tree holds now: its files, and its directories as
    /// trees of their own.
    pub fn finish(self, exclusions: &Exclusions) -> Inputs {
        let mut files: BTreeSet<PathBuf> = self
            .files
            .into_iter()
            .map(|p| normalize(&p))
            .filter(|p| !exclusions.excludes(p))
            .collect();
        let mut trees = BTreeSet::new();
        for tree in &self.trees {
            let tree = normalize(tree);
            // Cargo follows links when it scans a directory.
            let walk = walkdir::WalkDir::new(&tree)
                .follow_links(true)
                .into_iter()
                .filter_entry(|e| !exclusions.excludes(e.path()));
            for entry in walk.flatten() {
                match entry.file_type().is_dir() {
                    true => trees.insert(entry.into_path()),
                    false => files.insert(entry.into_path()),
                };
            }
        }
        Inputs { files, trees }
    }

    /// How many of the files exist (the others are watched for in case
    /// they appear: a `.cargo/config.toml`, a `rerun-if-changed` path).
    pub fn existing(&self) -> usize {
        self.files.iter().filter(|f| f.exists()).count()
    }

    /// The directories to watch: each file's parent, or its nearest
    /// existing ancestor when the parent does not exist (yet), and every
    /// tree.
    pub fn dirs(&self) -> BTreeSet<PathBuf> {
        self.files
            .iter()
            .filter_map(|f| f.ancestors().skip(1).find(|d| d.is_dir()))
            .map(Path::to_owned)
            .chain(self.trees.iter().filter(|t| t.is_dir()).cloned())
            .collect()
    }

    /// Whether a change at `path` may change the build: the path is an
    /// input, an entry of a tree, or a directory on the way to either
    /// (created, renamed, removed).
    pub fn affected_by(&self, path: &Path) -> bool {
        let path = normalize(path);
        let leads_to = |set: &BTreeSet<PathBuf>| {
            set.contains(&path)
                || set
                    .range(path.clone()..)
                    .next()
                    .is_some_and(|f| f.starts_with(&path) && f != &path)
        };
        leads_to(&self.files)
            || leads_to(&self.trees)
            || path.parent().is_some_and(|d| self.trees.contains(d))
    }
}

/// What makes cargo run the build scripts of a build's members again, as
/// its fingerprint of a script's run decides (see cargo's build-scripts
/// reference, "Change Detection"): a change to a `rerun-if-changed` path,
/// or to anything under it when it is a directory; a change to a file the
/// script's own compile read (cargo compiles the script again, then runs
/// it); and, for a script that printed neither `rerun-if-changed` nor
/// `rerun-if-env-changed`, a change to any file of its package.
///
/// A script that printed only `rerun-if-env-changed` runs again when one
/// of those variables changes, which no save of a source does: cargo
/// compares the watcher's own environment, fixed for the session, and its
/// `[env]` table, and a save of cargo's configuration is cargo's to build.
///
/// What a script printed is cargo's record of its run, the `output` file
/// next to the `OUT_DIR` its `build-script-executed` message names: the
/// message carries the script's `rustc-env` and `rustc-cfg` lines, not its
/// `rerun-if` ones, and a captured rustc command carries what the script
/// gave the compile, not what reruns it. A script whose record cannot be
/// read, or that compiled without a message of its run, is taken to run
/// again on a change to any file of its package, as cargo runs a script
/// it knows nothing of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptInputs {
    /// The `rerun-if-changed` paths, each a file or a directory.
    pub rerun_if_changed: BTreeSet<PathBuf>,
    /// The files the scripts' compiles read.
    pub sources: BTreeSet<PathBuf>,
    /// The directories of packages whose script runs again on a change to
    /// any of their files.
    pub whole_packages: BTreeSet<PathBuf>,
    /// The directory of every member: a file is the nearest one's, as
    /// cargo lists no file of a nested package as the outer package's
    /// (a nested package that is no member counts as the outer one's: a
    /// save there goes to cargo when cargo may not need it, never the
    /// other way).
    pub packages: BTreeSet<PathBuf>,
}

impl ScriptInputs {
    /// What reruns the build scripts of the members of a build that
    /// reported `artifacts` and `build_scripts`.
    pub fn of_build(
        ws: &Workspace,
        artifacts: &[Artifact],
        build_scripts: &[BuildScript],
    ) -> ScriptInputs {
        let dir_of = |id: &PackageId| {
            ws.members()
                .find(|p| &p.id == id)
                .and_then(|p| p.manifest_path.parent())
                .map(|d| normalize(d.as_std_path()))
        };
        let mut scripts = ScriptInputs {
            packages: ws.members().filter_map(|p| dir_of(&p.id)).collect(),
            ..ScriptInputs::default()
        };
        for a in artifacts.iter().filter(|a| a.target.is_custom_build()) {
            let Some(dir) = dir_of(&a.package_id) else {
                continue;
            };
            for dep_info in dep_info_files(a) {
                if let Some(info) = crate::depinfo::DepInfo::read(&dep_info) {
                    scripts.sources.extend(
                        info.files
                            .into_iter()
                            .map(|p| normalize(&ws.root().join(p))),
                    );
                }
            }
            if !build_scripts.iter().any(|s| s.package_id == a.package_id) {
                scripts.ran(dir, None);
            }
        }
        for s in build_scripts {
            let Some(dir) = dir_of(&s.package_id) else {
                continue;
            };
            // `output` beside `OUT_DIR`; `run/stdout` in cargo's newer
            // layout of the build dir.
            let output = s.out_dir.parent().and_then(|d| {
                std::fs::read_to_string(d.join("output"))
                    .or_else(|_| std::fs::read_to_string(d.join("run/stdout")))
                    .ok()
            });
            scripts.ran(dir, output.as_deref());
        }
        scripts
    }

    /// Notes a run of the build script of the package in `dir`, which
    /// printed `output` (`None`: not known).
    fn ran(&mut self, dir: PathBuf, output: Option<&str>) {
        let printed = output.map(Printed::parse).unwrap_or_default();
        if output.is_none()
            || (printed.rerun_if_changed.is_empty() && printed.rerun_if_env_changed.is_empty())
        {
            self.whole_packages.insert(dir.clone());
        }
        self.rerun_if_changed.extend(
            printed
                .rerun_if_changed
                .iter()
                .map(|p| normalize(&dir.join(p))),
        );
        self.packages.insert(dir);
    }

    /// Whether cargo runs a build script again after a change to `path`.
    pub fn rerun_by(&self, path: &Path) -> bool {
        let path = normalize(path);
        self.sources.contains(&path)
            || self.rerun_if_changed.iter().any(|p| path.starts_with(p))
            || path
                .ancestors()
                .find(|d| self.packages.contains(*d))
                .is_some_and(|d| self.whole_packages.contains(d))
    }
}

/// The `rerun-if` lines of a build script's output, read as cargo reads
/// them: in both the `cargo:` and `cargo::` spellings, each line trimmed,
/// a value's end trimmed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Printed {
    pub rerun_if_changed: Vec<PathBuf>,
    pub rerun_if_env_changed: Vec<String>,
}

impl Printed {
    pub fn parse(output: &str) -> Printed {
        let mut printed = Printed::default();
        for line in output.lines() {
            let line = line.trim();
            let Some(data) = line
                .strip_prefix("cargo::")
                .or_else(|| line.strip_prefix("cargo:"))
            else {
                continue;
            };
            match data.split_once('=') {
                Some(("rerun-if-changed", path)) => printed
                    .rerun_if_changed
                    .push(PathBuf::from(path.trim_end())),
                Some(("rerun-if-env-changed", var)) => {
                    printed.rerun_if_env_changed.push(var.trim_end().to_owned())
                }
                _ => {}
            }
        }
        printed
    }
}

/// The dep-info files for an artifact: rustc's (`deps/<crate>-<hash>.d`,
/// or next to a test executable) and cargo's own next to an uplifted
/// output, which adds build scripts' `rerun-if-changed` paths.
fn dep_info_files(a: &Artifact) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut outputs: Vec<PathBuf> = a
        .filenames
        .iter()
        .map(|f| f.clone().into_std_path_buf())
        .collect();
    if let Some(exe) = &a.executable {
        outputs.push(exe.clone().into_std_path_buf());
    }
    for f in outputs {
        let Some(name) = f.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let stem = name.split('.').next().unwrap_or(name);
        let mut stems = vec![stem.to_owned()];
        if let Some(unprefixed) = stem.strip_prefix("lib") {
            stems.push(unprefixed.to_owned());
        }
        // A build script's dep-info is named for its crate, not the
        // `build-script-build` link cargo reports.
        if a.target.is_custom_build()
            && let Some(dir) = f.parent()
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            out.extend(
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "d")),
            );
        }
        for stem in stems {
            let d = f.with_file_name(format!("{stem}.d"));
            if d.is_file() && !out.contains(&d) {
                out.push(d);
            }
        }
    }
    out
}

pub use crate::fs::normalize;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_a_script_printed_as_cargo_does() {
        let out = "cargo:rustc-cfg=x\ncargo:rerun-if-changed=a.txt\n\
                   \x20 cargo::rerun-if-changed=dir/b \r\n\
                   cargo:rerun-if-env-changed=CC\ncargo:rerun-if=x\n\
                   cargo:name=rerun-if-changed\nrerun-if-changed=c\n";
        assert_eq!(
            Printed::parse(out),
            Printed {
                rerun_if_changed: vec!["a.txt".into(), "dir/b".into()],
                rerun_if_env_changed: vec!["CC".into()],
            }
        );
    }

    /// `/w` a package with members nested in it: `engine`, whose script
    /// printed no `rerun-if`; `level`, whose script watches a directory;
    /// `quiet`, whose script watches only a variable; `tool`, without a
    /// script.
    fn scripts(root_output: Option<&str>) -> ScriptInputs {
        let mut s = ScriptInputs {
            packages: ["/w", "/w/engine", "/w/level", "/w/quiet", "/w/tool"]
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            sources: ["/w/engine/build.rs", "/w/shared/gen.rs"]
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            ..ScriptInputs::default()
        };
        s.ran("/w/engine".into(), Some("cargo:rustc-env=N=2\n"));
        s.ran(
            "/w/level".into(),
            Some("cargo::rerun-if-changed=assets\ncargo::rerun-if-changed=../extra.txt\n"),
        );
        s.ran("/w/quiet".into(), Some("cargo:rerun-if-env-changed=CC\n"));
        s.ran("/w".into(), root_output);
        s
    }

    #[test]
    fn a_build_script_runs_again_when_cargo_would_run_it() {
        let s = scripts(Some("cargo:rerun-if-changed=build.rs\n"));
        let reruns = |p: &str| s.rerun_by(Path::new(p));
        // No `rerun-if`: any file of the package, none of another's.
        assert!(reruns("/w/engine/src/lib.rs"));
        assert!(reruns("/w/engine/README.md"));
        assert!(!reruns("/w/tool/src/main.rs"));
        // A directory: anything under it, at any depth, and nothing else.
        assert!(reruns("/w/level/assets/a.txt"));
        assert!(reruns("/w/level/assets/maps/b.txt"));
        assert!(reruns("/w/level/assets"));
        assert!(!reruns("/w/level/assets.txt"));
        assert!(!reruns("/w/level/src/lib.rs"));
        assert!(reruns("/w/extra.txt"));
        // Only a variable: no file.
        assert!(!reruns("/w/quiet/src/lib.rs"));
        // What the scripts' compiles read.
        assert!(reruns("/w/shared/gen.rs"));
        assert!(reruns("/w/engine/src/../build.rs"));
        assert!(!reruns("/w/src/main.rs"));

        // The outer package's script reruns on its own files, not on those
        // of the members nested in it; one never heard from, on all its own.
        for s in [scripts(Some("")), scripts(None)] {
            assert!(s.rerun_by(Path::new("/w/src/main.rs")));
            assert!(s.rerun_by(Path::new("/w/shared/other.rs")));
            assert!(!s.rerun_by(Path::new("/w/quiet/src/lib.rs")));
            assert!(!s.rerun_by(Path::new("/w/tool/src/main.rs")));
        }
    }

    #[test]
    fn a_tree_is_everything_under_it_but_a_target_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for f in ["assets/a.txt", "assets/maps/b.txt", "assets/target/x.txt"] {
            std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
            std::fs::write(root.join(f), "x").unwrap();
        }
        let assets = root.join("assets");
        let inputs = Inputs {
            files: [assets.clone()].into(),
            trees: [assets.clone()].into(),
        }
        .finish(&Exclusions {
            dirs: vec![assets.join("target")],
        });
        assert_eq!(
            inputs.files,
            [
                assets.clone(),
                assets.join("a.txt"),
                assets.join("maps/b.txt")
            ]
            .into()
        );
        assert_eq!(inputs.trees, [assets.clone(), assets.join("maps")].into());
        assert_eq!(
            inputs.dirs(),
            [root.to_owned(), assets.clone(), assets.join("maps")].into()
        );
        // A new file, at any depth; never one in the target dir.
        assert!(inputs.affected_by(&assets.join("new.txt")));
        assert!(inputs.affected_by(&assets.join("maps/new.txt")));
        assert!(!inputs.affected_by(&assets.join("target/y.txt")));
        assert!(!inputs.affected_by(&root.join("other.txt")));
        // Finishing again finds the same.
        assert_eq!(
            inputs.clone().finish(&Exclusions {
                dirs: vec![assets.join("target")],
            }),
            inputs
        );
    }

    #[test]
    fn never_keeps_target_dirs_or_registry_sources() {
        let inputs = Inputs {
            files: [
                "/w/src/main.rs",
                "/w/target/dyndev/debug/bundle/x/facade/lib.rs",
                "/home/u/.cargo/registry/src/log-0.4/src/lib.rs",
                "/w/src/../assets/./a.txt",
            ]
            .into_iter()
            .map(PathBuf::from)
            .collect(),
            ..Inputs::default()
        }
        .finish(&Exclusions {
            dirs: vec!["/w/target".into(), "/home/u/.cargo".into()],
        });
        assert_eq!(
            inputs.files.iter().collect::<Vec<_>>(),
            [Path::new("/w/assets/a.txt"), Path::new("/w/src/main.rs")]
        );
    }

    #[test]
    fn a_workspace_inside_a_target_dir_is_still_watched() {
        let ex = Exclusions::new(
            Path::new("/p/target/copy/ws"),
            Path::new("/p/target/dyndev"),
            vec!["/p/target".into(), "/home/u/.cargo".into()],
        );
        let inputs = Inputs {
            files: [
                "/p/target/copy/ws/src/main.rs",
                "/p/target/dyndev/debug/build/x/out/gen.rs",
                "/home/u/.cargo/registry/src/log/src/lib.rs",
            ]
            .into_iter()
            .map(PathBuf::from)
            .collect(),
            ..Inputs::default()
        }
        .finish(&ex);
        assert_eq!(
            inputs.files.iter().collect::<Vec<_>>(),
            [Path::new("/p/target/copy/ws/src/main.rs")]
        );
    }

    #[test]
    fn a_change_matters_when_it_is_an_input_or_leads_to_one() {
        let inputs = Inputs {
            files: ["/w/src/main.rs", "/w/src/game/mod.rs", "/w/Cargo.toml"]
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            trees: ["/w/assets", "/w/assets/maps"]
                .into_iter()
                .map(PathBuf::from)
                .collect(),
        };
        assert!(inputs.affected_by(Path::new("/w/src/main.rs")));
        assert!(inputs.affected_by(Path::new("/w/src/game")));
        assert!(!inputs.affected_by(Path::new("/w/README.md")));
        assert!(!inputs.affected_by(Path::new("/w/src/main.rs.swp")));
        assert!(!inputs.affected_by(Path::new("/w/src/gam")));
        assert!(!inputs.affected_by(Path::new("/w/target/debug/app")));
        // A tree's entries, at any depth, and the way to it.
        assert!(inputs.affected_by(Path::new("/w/assets/new.txt")));
        assert!(inputs.affected_by(Path::new("/w/assets/maps/b.txt")));
        assert!(inputs.affected_by(Path::new("/w/assets")));
        assert!(!inputs.affected_by(Path::new("/w/assets.txt")));
    }
}
