//! The first phase: reads the workspace, copies it under the target dir, and
//! sets up the edit, the modes and the instruments as one `Comparison`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cargo_metadata::{Package, Target};

use super::bench::Bench;
use super::mirror::{self, Mirror};
use super::modes::{Mode, modes};
use super::scenario::{Kind, Scenario};
use crate::cli::{CompareArgs, PackageArgs};
use crate::error::Failure;
use crate::ops::run::{Runnable, choose};
use crate::shell::{Shell, human_size};
use crate::workspace::Workspace;

/// The crate the edited file belongs to, in the copy.
#[derive(Debug, Clone)]
pub(super) struct EditedCrate {
    /// Its root file: `src/main.rs`.
    pub(super) root: PathBuf,
    /// Its package's manifest.
    pub(super) manifest: PathBuf,
    pub(super) edition: String,
}

/// One comparison: the copy, the edit, the modes, and how they build.
pub(super) struct Comparison<'a> {
    pub(super) args: &'a CompareArgs,
    pub(super) workspace_root: PathBuf,
    /// `bin `game``, for titles.
    pub(super) target_label: String,
    /// The package's directory in the copy, for the program's environment.
    pub(super) package_dir: PathBuf,
    /// `<target-dir>/dyndev-compare`.
    pub(super) dir: PathBuf,
    pub(super) copy_root: PathBuf,
    pub(super) scenario: Scenario,
    /// The edited file, relative to the workspace root.
    pub(super) shown_file: PathBuf,
    /// The edited file as the user would type it, for help.
    pub(super) typed_file: PathBuf,
    /// The crate the edited file belongs to, for the check of the edit.
    pub(super) edited_crate: Option<EditedCrate>,
    pub(super) host: String,
    pub(super) modes: Vec<Mode>,
    pub(super) bench: Bench,
    _lock: std::fs::File,
}

impl<'a> Comparison<'a> {
    /// Reads the workspace, copies it, and sets up the edit, the modes and
    /// the instruments.
    pub(super) fn prepare(shell: &Shell, args: &'a CompareArgs) -> Result<Comparison<'a>> {
        let host = crate::cargo::host_triple(&crate::cargo::rustc_program())?;
        let ws = Workspace::load_with_deps(shell, &args.compile, &args.features, &host)?;
        let packages = args.executable.packages();
        let (package, target, target_flag, target_label) = if args.tests {
            let (p, lib) = find_library(&ws, &packages)?;
            (p, lib, None, format!("tests of `{}`", p.name))
        } else {
            let runnable = choose(&ws, &packages, &args.executable)?;
            let (p, t) = find_target(&ws, &packages, &runnable)?;
            let (flag, label) = match &runnable {
                Runnable::Bin(n) => (format!("--bin={n}"), format!("bin `{n}`")),
                Runnable::Example(n) => (format!("--example={n}"), format!("example `{n}`")),
                Runnable::List(_) => unreachable!("checked by find_target"),
            };
            (p, t, Some(flag), label)
        };

        let base = ws.target_dir(args.compile.target_dir.as_deref());
        let dir = base.join("dyndev-compare");
        crate::fs::create_dir_all(&dir)?;
        let lock = crate::layout::lock_dir(shell, &dir)?;

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
        // The file to edit, found before the copy (which can take a while).
        let (kind, user_file) = match (&args.edit, &args.touch) {
            (Some(f), _) => (Kind::Edit, absolute(f)?),
            (None, Some(f)) => (Kind::Touch, absolute(f)?),
            (None, None) => (Kind::Edit, target.src_path.clone().into_std_path_buf()),
        };
        let mirror = Mirror::new(&dir.join("src"), &roots, std::slice::from_ref(&base));
        let synced = mirror.sync()?;
        shell.verbose_status(
            "Copied",
            format_args!(
                "{} files ({}), {} unchanged, {} removed",
                synced.copied,
                human_size(synced.bytes_copied),
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
        let typed_file = as_typed(&user_file);
        let crate_root = ws
            .metadata
            .packages
            .iter()
            .flat_map(|p| &p.targets)
            .any(|t| t.src_path.as_std_path() == user_file);
        let edited_crate = crate_of(&ws, &user_file).and_then(|(p, t)| {
            Some(EditedCrate {
                root: mirror.map(t.src_path.as_std_path())?,
                manifest: mirror.map(p.manifest_path.as_std_path())?,
                edition: t.edition.as_str().to_owned(),
            })
        });

        let build_dir = ws.build_dir(args.compile.target_dir.as_deref());
        let bench = Bench::new(
            &dir,
            &host,
            copy_root.clone(),
            manifest,
            build_dir,
            target_flag,
            args,
        )?;
        Ok(Comparison {
            args,
            workspace_root: ws.root().to_owned(),
            target_label,
            package_dir: manifest_dir(&bench.manifest),
            dir,
            copy_root,
            scenario: Scenario::new(kind, &copy_file, &typed_file, crate_root)?,
            shown_file,
            typed_file,
            edited_crate,
            host,
            modes: modes(shell, args.linkers.as_deref())?,
            bench,
            _lock: lock,
        })
    }
}

/// The crate a source file belongs to: in the package whose directory
/// holds it most closely, the target whose root it is, else the one whose
/// root's directory holds it most closely (the library first).
fn crate_of<'w>(ws: &'w Workspace, file: &Path) -> Option<(&'w Package, &'w Target)> {
    let package = ws
        .metadata
        .packages
        .iter()
        .filter(|p| p.source.is_none())
        .filter(|p| {
            p.manifest_path
                .parent()
                .is_some_and(|d| file.starts_with(d.as_std_path()))
        })
        .max_by_key(|p| p.manifest_path.as_std_path().components().count())?;
    let depth = |t: &Target| {
        let dir = t.src_path.parent()?.as_std_path();
        file.starts_with(dir).then(|| dir.components().count())
    };
    let target = package
        .targets
        .iter()
        .find(|t| t.src_path.as_std_path() == file)
        .or_else(|| {
            package
                .targets
                .iter()
                .filter_map(|t| Some((depth(t)?, t.is_lib(), t)))
                .max_by_key(|(depth, lib, _)| (*depth, *lib))
                .map(|(_, _, t)| t)
        })?;
    Some((package, target))
}

fn manifest_dir(manifest: &Path) -> PathBuf {
    manifest.parent().unwrap_or(manifest).to_owned()
}

/// A path as the user would type it here: relative to the working
/// directory when it is under it, for help that can be pasted.
fn as_typed(path: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| cwd.canonicalize().ok())
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_owned))
        .unwrap_or_else(|| path.to_owned())
}

/// `p` as an absolute path: relative to the current directory, as cargo
/// takes the paths it is given.
fn absolute(p: &Path) -> Result<PathBuf> {
    p.canonicalize().with_context(|| {
        format!(
            "failed to find `{}` (a path relative to the current directory)",
            p.display()
        )
    })
}

/// The package whose tests `--tests` measures, and its library: the one
/// selected, else the root package, else the only member with a library.
fn find_library<'w>(
    ws: &'w Workspace,
    packages: &PackageArgs,
) -> Result<(&'w Package, &'w Target)> {
    let lib_of = |p: &'w Package| p.targets.iter().find(|t| t.is_lib()).map(|t| (p, t));
    let candidates: Vec<(&Package, &Target)> = if !packages.packages.is_empty() {
        ws.select(packages)?
            .into_iter()
            .filter_map(lib_of)
            .collect()
    } else if let Some(found) = ws
        .metadata
        .root_package()
        .and_then(|root| ws.members().find(|p| p.id == root.id).and_then(lib_of))
    {
        vec![found]
    } else {
        ws.members().filter_map(lib_of).collect()
    };
    match candidates.as_slice() {
        [one] => Ok(*one),
        [] => Err(Failure::Selection(
            "`--tests` measures a library's test loop, and the package has no library".into(),
        )
        .into()),
        _ => Err(Failure::Selection(
            "`--tests` measures one library's test loop: pass `-p NAME`".into(),
        )
        .into()),
    }
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
