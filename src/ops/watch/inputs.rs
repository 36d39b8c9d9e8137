//! What a build read, learned from the build itself: the files in the
//! dep-info of every workspace unit (modules, `#[path]`, `include_str!`),
//! build scripts' `rerun-if-changed` paths, manifests, `Cargo.lock` and
//! cargo's configuration. Never anything under a target dir.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cargo_metadata::{Artifact, BuildScript, TargetKind};

use crate::workspace::Workspace;

/// The files a build depends on, and the directories to watch for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    pub files: BTreeSet<PathBuf>,
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

    fn excludes(&self, path: &Path) -> bool {
        self.dirs.iter().any(|d| path.starts_with(d))
    }
}

impl Inputs {
    /// Inputs of a build that reported `artifacts` and `build_scripts`.
    pub fn of_build(
        ws: &Workspace,
        artifacts: &[Artifact],
        build_scripts: &[BuildScript],
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
        files.extend(script_inputs(ws, build_scripts));
        let mut inputs = Inputs::of_workspace(ws);
        inputs.files.extend(files);
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
        Inputs { files }
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

    /// Normalises every path and drops those under an excluded directory.
    pub fn finish(self, exclusions: &Exclusions) -> Inputs {
        Inputs {
            files: self
                .files
                .into_iter()
                .map(|p| normalize(&p))
                .filter(|p| !exclusions.excludes(p))
                .collect(),
        }
    }

    /// How many of the files exist (the others are watched for in case
    /// they appear: a `.cargo/config.toml`, a `rerun-if-changed` path).
    pub fn existing(&self) -> usize {
        self.files.iter().filter(|f| f.exists()).count()
    }

    /// The directories to watch: each file's parent, or its nearest
    /// existing ancestor when the parent does not exist (yet).
    pub fn dirs(&self) -> BTreeSet<PathBuf> {
        self.files
            .iter()
            .filter_map(|f| f.ancestors().skip(1).find(|d| d.is_dir()))
            .map(Path::to_owned)
            .collect()
    }

    /// Whether a change at `path` may change the build: the path is an
    /// input, or a directory on the way to one (created, renamed, removed).
    pub fn affected_by(&self, path: &Path) -> bool {
        let path = normalize(path);
        self.files.contains(&path)
            || self
                .files
                .range(path.clone()..)
                .next()
                .is_some_and(|f| f.starts_with(&path) && f != &path)
    }
}

/// The `rerun-if-changed` paths of the build scripts of workspace members.
pub fn script_inputs(ws: &Workspace, build_scripts: &[BuildScript]) -> BTreeSet<PathBuf> {
    let mut files = BTreeSet::new();
    for s in build_scripts {
        let Some(package) = ws.metadata.packages.iter().find(|p| p.id == s.package_id) else {
            continue;
        };
        let dir = package.manifest_path.parent().map(|d| d.as_std_path());
        let output = s.out_dir.parent().map(|d| d.join("output"));
        if let (Some(dir), Some(output)) = (dir, output)
            && let Ok(text) = std::fs::read_to_string(output)
        {
            files.extend(
                rerun_if_changed(&text)
                    .into_iter()
                    .map(|p| normalize(&dir.join(p))),
            );
        }
    }
    files
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

/// `rerun-if-changed` paths in a build script's output, in both the
/// `cargo:` and `cargo::` spellings.
pub fn rerun_if_changed(output: &str) -> Vec<PathBuf> {
    output
        .lines()
        .filter_map(|l| {
            l.strip_prefix("cargo::rerun-if-changed=")
                .or_else(|| l.strip_prefix("cargo:rerun-if-changed="))
        })
        .map(PathBuf::from)
        .collect()
}

pub use crate::fs::normalize;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rerun_if_changed_in_both_spellings() {
        let out =
            "cargo:rustc-cfg=x\ncargo:rerun-if-changed=a.txt\ncargo::rerun-if-changed=dir/b\n";
        assert_eq!(
            rerun_if_changed(out),
            [Path::new("a.txt"), Path::new("dir/b")]
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
        };
        assert!(inputs.affected_by(Path::new("/w/src/main.rs")));
        assert!(inputs.affected_by(Path::new("/w/src/game")));
        assert!(!inputs.affected_by(Path::new("/w/README.md")));
        assert!(!inputs.affected_by(Path::new("/w/src/main.rs.swp")));
        assert!(!inputs.affected_by(Path::new("/w/src/gam")));
        assert!(!inputs.affected_by(Path::new("/w/target/debug/app")));
    }
}
