//! Reading the user's workspace through `cargo metadata`: its members,
//! targets and settings, the package graph for planning, and the
//! generation hash that says when the dependency set may have changed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cargo_metadata::{Metadata, MetadataCommand, Package, PackageId, TargetKind};

use crate::cargo::CargoCommand;
use crate::cli::{CompileArgs, FeatureArgs, PackageArgs};
use crate::error::Failure;
use crate::fs::StableHasher;
use crate::settings::Settings;
use crate::shell::Shell;

#[derive(Debug)]
pub struct Workspace {
    pub metadata: Metadata,
    pub settings: Settings,
    /// Whether the user set cargo's build dir (`build.build-dir`, in the
    /// configuration or the environment).
    pub build_dir_configured: bool,
}

impl Workspace {
    /// `cargo metadata --no-deps`: members and targets only, fast, and never
    /// writes a lockfile. A broken manifest or a missing project is cargo's
    /// error, printed once by cargo.
    pub fn load(shell: &Shell, compile: &CompileArgs) -> Result<Workspace> {
        let mut args = vec![
            "--format-version=1".to_owned(),
            "--no-deps".into(),
            "--color=never".into(),
        ];
        compile.push_workspace_args(&mut args);
        Workspace::from_args(shell, args)
    }

    /// `cargo metadata` with the dependency graph, resolved with the given
    /// features for `platform` (the host triple, normally).
    pub fn load_with_deps(
        shell: &Shell,
        compile: &CompileArgs,
        features: &FeatureArgs,
        platform: &str,
    ) -> Result<Workspace> {
        let mut args = vec![
            "--format-version=1".to_owned(),
            "--color=never".into(),
            "--filter-platform".into(),
            platform.into(),
        ];
        compile.push_workspace_args(&mut args);
        features.push_cargo_args(&mut args);
        // `cargo metadata` wants every package of the resolve, other
        // members' dev-dependencies too, where the build only downloaded
        // what it compiled: what is on disk is asked for first, so that
        // nothing more is fetched when it is enough.
        if !compile.offline && !compile.frozen {
            let mut offline = args.clone();
            offline.push("--offline".into());
            if let Some(out) = CargoCommand::new("metadata").args(offline).output_quietly() {
                return Workspace::from_output(shell, &out);
            }
        }
        let out = CargoCommand::new("metadata").args(args).output(shell);
        if out.is_err() && (compile.offline || compile.frozen) {
            shell.note(
                "dyndev plans the bundle from the whole dependency graph (`cargo metadata`), \
                 which needs every package of `Cargo.lock` for this platform, other members' \
                 dev-dependencies too; run `cargo fetch` once while online",
            );
        }
        Workspace::from_output(shell, &out?)
    }

    fn from_args(shell: &Shell, args: Vec<String>) -> Result<Workspace> {
        let out = CargoCommand::new("metadata").args(args).output(shell)?;
        Workspace::from_output(shell, &out)
    }

    fn from_output(shell: &Shell, out: &[u8]) -> Result<Workspace> {
        let metadata = MetadataCommand::parse(String::from_utf8_lossy(out))
            .context("failed to parse the output of `cargo metadata`")?;
        let root_metadata = metadata.root_package().map(|p| &p.metadata);
        let (settings, warnings) =
            Settings::from_metadata(&metadata.workspace_metadata, root_metadata);
        for w in warnings {
            shell.warn(w);
        }
        let cwd = std::env::current_dir().unwrap_or_default();
        let build_dir_configured = crate::cargo_config::build_dir_configured(&cwd)?;
        Ok(Workspace {
            metadata,
            settings,
            build_dir_configured,
        })
    }

    pub fn root(&self) -> &Path {
        self.metadata.workspace_root.as_std_path()
    }

    /// A short name for messages: the root package, or the root directory.
    pub fn display_name(&self) -> String {
        match self.metadata.root_package() {
            Some(p) => format!("`{}`", p.name),
            None => format!(
                "`{}`",
                self.root()
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| self.root().display().to_string())
            ),
        }
    }

    /// The user's target dir: `--target-dir`, else what cargo resolved
    /// (`CARGO_TARGET_DIR`, `build.target-dir`, `<root>/target`).
    pub fn target_dir(&self, flag: Option<&Path>) -> PathBuf {
        match flag {
            Some(dir) if dir.is_absolute() => dir.to_owned(),
            Some(dir) => std::env::current_dir()
                .map(|cwd| cwd.join(dir))
                .unwrap_or_else(|_| dir.to_owned()),
            None => self.metadata.target_directory.clone().into_std_path_buf(),
        }
    }

    /// Cargo's build dir for the user's own builds, where it keeps every
    /// unit's intermediate artifacts: the `build.build-dir` the user
    /// configured (as cargo resolved it), else the target dir, as cargo
    /// defaults it. dyndev builds into it too, so a dependency compiles
    /// once for plain cargo and dyndev alike.
    pub fn build_dir(&self, target_dir_flag: Option<&Path>) -> PathBuf {
        match &self.metadata.build_directory {
            Some(dir) if self.build_dir_configured => dir.clone().into_std_path_buf(),
            _ => self.target_dir(target_dir_flag),
        }
    }

    pub fn members(&self) -> impl Iterator<Item = &Package> {
        self.metadata.workspace_packages().into_iter()
    }

    pub fn is_member(&self, id: &PackageId) -> bool {
        self.metadata.workspace_members.contains(id)
    }

    /// The crate names of members' library targets: a dependency on one of
    /// these is a dependency on workspace code, never bundled.
    pub fn member_lib_crates(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .members()
            .flat_map(|p| &p.targets)
            .filter(|t| is_library(t))
            .map(|t| t.name.replace('-', "_"))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The crate names of members' libraries that code outside dyndev's
    /// reach links: build scripts (through build-dependencies),
    /// proc-macros, and libraries of other crate types (`cdylib`,
    /// `staticlib`, `dylib`), which rustc compiles and links as plain
    /// cargo does, and every member library those reach in turn. Such a
    /// library is compiled as cargo compiles it, never against the bundle:
    /// cargo builds one unit of it for the host code and the program alike
    /// when their settings match, and the host code cannot load the bundle.
    pub fn host_linked_member_libs(&self) -> Vec<String> {
        let members: Vec<&Package> = self.members().collect();
        let member_at = |path: &Path| {
            members.iter().copied().find(|p| {
                p.manifest_path
                    .parent()
                    .is_some_and(|dir| crate::fs::same_dir(dir.as_std_path(), path))
            })
        };
        let normal_member_deps = |p: &Package| -> Vec<&Package> {
            p.dependencies
                .iter()
                .filter(|d| d.kind == cargo_metadata::DependencyKind::Normal)
                .filter_map(|d| member_at(d.path.as_ref()?.as_std_path()))
                .collect()
        };
        let mut reached: Vec<&Package> = Vec::new();
        let mut queue: Vec<&Package> = Vec::new();
        for p in &members {
            queue.extend(
                p.dependencies
                    .iter()
                    .filter(|d| d.kind == cargo_metadata::DependencyKind::Build)
                    .filter_map(|d| member_at(d.path.as_ref()?.as_std_path())),
            );
            let linked_by_rustc = p.targets.iter().filter(|t| is_library(t)).any(|t| {
                t.crate_types.iter().any(|c| {
                    !matches!(
                        c,
                        cargo_metadata::CrateType::Lib | cargo_metadata::CrateType::RLib
                    )
                })
            });
            if linked_by_rustc {
                queue.extend(normal_member_deps(p));
            }
        }
        while let Some(p) = queue.pop() {
            if reached.iter().any(|r| r.id == p.id) {
                continue;
            }
            reached.push(p);
            queue.extend(normal_member_deps(p));
        }
        let mut names: Vec<String> = reached
            .iter()
            .flat_map(|p| &p.targets)
            .filter(|t| is_library(t))
            .map(|t| t.name.replace('-', "_"))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The packages a build selects, as cargo would: `-p` specs, or
    /// `--workspace`, or the default members.
    pub fn select(&self, packages: &PackageArgs) -> Result<Vec<&Package>> {
        if packages.workspace {
            return Ok(self
                .members()
                .filter(|p| !packages.exclude.iter().any(|e| spec_matches(e, p)))
                .collect());
        }
        if packages.packages.is_empty() {
            let defaults = &self.metadata.workspace_default_members;
            return Ok(self
                .members()
                .filter(|p| defaults.contains(&p.id))
                .collect());
        }
        let mut out = Vec::new();
        for spec in &packages.packages {
            let found: Vec<_> = self.members().filter(|p| spec_matches(spec, p)).collect();
            if found.is_empty() {
                return Err(Failure::Selection(format!(
                    "package ID specification `{spec}` did not match any packages in the workspace"
                ))
                .into());
            }
            out.extend(found);
        }
        Ok(out)
    }

    /// A hash of everything that decides which dependency units exist:
    /// `Cargo.lock` and every workspace manifest. Bundles of one generation
    /// may share roots; a new generation starts afresh.
    pub fn generation(&self) -> Result<String> {
        let mut h = StableHasher::default();
        let lock = self.root().join("Cargo.lock");
        h.write(&std::fs::read(&lock).unwrap_or_default());
        let mut manifests: Vec<&Path> = self
            .members()
            .map(|p| p.manifest_path.as_std_path())
            .collect();
        let root_manifest = self.root().join("Cargo.toml");
        manifests.push(&root_manifest);
        manifests.sort();
        manifests.dedup();
        for m in manifests {
            h.write_str(&m.to_string_lossy());
            h.write(&crate::fs::read(m)?);
        }
        Ok(h.finish_hex())
    }
}

/// Whether the target is a package's library, of any crate type.
fn is_library(target: &cargo_metadata::Target) -> bool {
    target.kind.iter().any(|k| {
        matches!(
            k,
            TargetKind::Lib
                | TargetKind::RLib
                | TargetKind::DyLib
                | TargetKind::CDyLib
                | TargetKind::StaticLib
                | TargetKind::ProcMacro
        )
    })
}

/// Does a package ID spec (`name`, `name@1.2`, `name:1.2`, or a URL ending
/// in `#name@1.2`) name this package?
pub fn spec_matches(spec: &str, pkg: &Package) -> bool {
    let spec = spec.rsplit('#').next().unwrap_or(spec);
    let (name, version) = match spec.split_once(['@', ':']) {
        Some((n, v)) => (n, Some(v)),
        None => (spec, None),
    };
    // A URL fragment may hold only a version (`...#1.2.3`).
    let name_ok = name == pkg.name.as_str()
        || (version.is_none()
            && name.parse::<cargo_metadata::semver::Version>().is_ok()
            && pkg.version.to_string() == name);
    name_ok && version.is_none_or(|v| pkg.version.to_string().starts_with(v))
}
