//! `cargo dyndev build`, and the build every other command starts with.
//!
//! A build is one `cargo build` with dyndev as the rustc wrapper. When the
//! wrapper finds a member the bundle does not cover (the first build, a new
//! dependency, a rebuilt one), it probes instead of compiling; then the
//! driver runs one more pass in which every member probes, so it knows all
//! the units the build uses, links a new bundle from them, and builds again.
//! In the edit loop none of that happens: one cargo pass, members only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{Result, bail};
use cargo_metadata::{Artifact, BuildScript, Message};

use crate::bundle;
use crate::cargo::{CargoCommand, exit_code};
use crate::cli::{BuildArgs, CompileArgs, FeatureArgs};
use crate::error::Failure;
use crate::layout::Layout;
use crate::plan::Graph;
use crate::shell::Shell;
use crate::state::{BundleState, JournalEntry};
use crate::workspace::Workspace;
use crate::wrapper::env;

/// What a build needs to know.
#[derive(Debug)]
pub struct BuildRequest<'a> {
    pub shell: &'a Shell,
    pub workspace: &'a Workspace,
    pub layout: Layout,
    /// The cargo command that builds: `build`, or `test` (with `--no-run`
    /// among the arguments).
    pub subcommand: &'static str,
    /// Arguments for it, without `--target-dir` and `--message-format`,
    /// which dyndev sets.
    pub cargo_args: Vec<String>,
    pub features: &'a FeatureArgs,
    pub compile: &'a CompileArgs,
    /// The profile's name, for messages.
    pub profile: String,
}

/// What a successful build made.
#[derive(Debug)]
pub struct Outcome {
    pub artifacts: Vec<Artifact>,
    pub build_scripts: Vec<BuildScript>,
    /// The bundle in use; none when the build linked nothing against one
    /// (only proc-macros or cdylibs, say).
    pub bundle: Option<BundleState>,
}

/// One `cargo build` and what it reported.
struct Pass {
    artifacts: Vec<Artifact>,
    build_scripts: Vec<BuildScript>,
    journal: Vec<JournalEntry>,
}

impl<'a> BuildRequest<'a> {
    /// A build of `ws` into its dyndev target dir for the profile asked.
    pub fn new(
        shell: &'a Shell,
        workspace: &'a Workspace,
        subcommand: &'static str,
        cargo_args: Vec<String>,
        features: &'a FeatureArgs,
        compile: &'a CompileArgs,
    ) -> BuildRequest<'a> {
        BuildRequest {
            shell,
            workspace,
            layout: Layout::new(
                &workspace.target_dir(compile.target_dir.as_deref()),
                &compile.profile_dir(),
                workspace.root(),
            ),
            subcommand,
            cargo_args,
            features,
            compile,
            profile: compile.profile_name(),
        }
    }
}

pub fn exec(shell: &Shell, args: &BuildArgs) -> Result<()> {
    let ws = Workspace::load(shell, &args.compile)?;
    let mut cargo_args = Vec::new();
    args.packages.push_cargo_args(&mut cargo_args);
    args.targets.push_cargo_args(&mut cargo_args);
    args.features.push_cargo_args(&mut cargo_args);
    args.compile.push_build_args(&mut cargo_args);
    args.global.push_cargo_args(&mut cargo_args);
    build(&BuildRequest::new(
        shell,
        &ws,
        "build",
        cargo_args,
        &args.features,
        &args.compile,
    ))?;
    Ok(())
}

pub fn build(req: &BuildRequest<'_>) -> Result<Outcome> {
    let _lock = req.layout.lock(req.shell)?;
    // Journals left by an interrupted build; with the lock held, no other
    // build is writing one.
    let _ = std::fs::remove_dir_all(req.layout.state_dir.join("runs"));
    let previous = BundleState::load(&req.layout)?;
    let bundle_env = previous.as_ref().map_or(env::NONE, |s| s.id.as_str());

    let first = pass(req, bundle_env)?;
    if let Some(setting) = first.journal.iter().find_map(|e| e.unsupported.clone()) {
        return Err(Failure::Unsupported {
            setting,
            profile: req.profile.clone(),
        }
        .into());
    }
    let probed: Vec<&JournalEntry> = first.journal.iter().filter(|e| e.probed).collect();
    if probed.is_empty() {
        warn_global_allocators(req.shell, &first.journal);
        return Ok(Outcome {
            artifacts: first.artifacts,
            build_scripts: first.build_scripts,
            bundle: previous,
        });
    }
    for e in &probed {
        req.shell.verbose_status(
            "Probing",
            format_args!("{} ({})", e.stem, e.probe_reason.as_deref().unwrap_or("?")),
        );
    }

    // Every member unit of this build must be known to plan the bundle. If
    // the first pass probed them all, it is; otherwise ask again, with every
    // member probing (nothing is compiled, so this pass is quick).
    let member_units = first
        .artifacts
        .iter()
        .filter(|a| req.workspace.is_member(&a.package_id))
        .filter(|a| !a.target.is_custom_build() && !a.target.is_proc_macro())
        .count();
    let all_probed = probed.len() == first.journal.len() && first.journal.len() >= member_units;
    let planning = if all_probed {
        first
    } else {
        pass(req, env::PROBE)?
    };

    // After the first pass: cargo may have just written `Cargo.lock`.
    let generation = req.workspace.generation()?;
    let bundle = new_bundle(req, &planning, &generation, previous.as_ref())?;
    bundle.save(&req.layout)?;
    let keep: Vec<&str> = std::iter::once(bundle.dir.as_path())
        .chain(previous.as_ref().map(|p| p.dir.as_path()))
        .filter_map(|d| d.file_name().and_then(|n| n.to_str()))
        .collect();
    bundle::collect_garbage(&req.layout, &keep)?;

    let last = pass(req, &bundle.id)?;
    if let Some(e) = last.journal.iter().find(|e| e.probed) {
        bail!(
            "internal error: the new bundle does not cover `{}`: {}\n\
             help: run again with `-v` and report it; `cargo clean` starts afresh",
            e.stem,
            e.probe_reason.as_deref().unwrap_or("no reason recorded")
        );
    }
    warn_global_allocators(req.shell, &last.journal);
    Ok(Outcome {
        artifacts: last.artifacts,
        build_scripts: last.build_scripts,
        bundle: Some(bundle),
    })
}

/// A `#[global_allocator]` is silently ignored when std is a shared
/// library (rustc puts the allocator shim in `libstd.so`): say so.
fn warn_global_allocators(shell: &Shell, journal: &[JournalEntry]) {
    for e in journal {
        if let Some(place) = &e.global_allocator {
            shell.warn(format_args!(
                "`{}` sets a `#[global_allocator]` ({place}); with a shared standard \
                 library it goes unused, and the program allocates with Rust's default \
                 allocator under `cargo dyndev`",
                e.package
            ));
        }
    }
}

/// Plans and links the bundle from what the members of `planning` use.
fn new_bundle(
    req: &BuildRequest<'_>,
    planning: &Pass,
    generation: &str,
    previous: Option<&BundleState>,
) -> Result<BundleState> {
    let built_packages: BTreeSet<String> = planning
        .artifacts
        .iter()
        .map(|a| a.package_id.repr.clone())
        .collect();
    let mut packages_by_stem = BTreeMap::new();
    let mut rlibs_by_package: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for a in &planning.artifacts {
        for f in &a.filenames {
            if matches!(f.extension(), Some("rlib" | "rmeta"))
                && let Some(stem) = f.file_stem()
            {
                packages_by_stem.insert(stem.to_owned(), a.package_id.repr.clone());
            }
            if f.extension() == Some("rlib") {
                rlibs_by_package
                    .entry(a.package_id.repr.clone())
                    .or_default()
                    .push(f.clone().into_std_path_buf());
            }
        }
    }
    let host = host_triple(&planning.journal)?;
    let full = Workspace::load_with_deps(req.shell, req.compile, req.features, &host)?;
    let graph = Graph::from_metadata(&full.metadata);
    bundle::make(
        req.shell,
        &bundle::Request {
            layout: &req.layout,
            workspace_name: &req.workspace.display_name(),
            generation,
            entries: &planning.journal,
            packages_by_stem: &packages_by_stem,
            rlibs_by_package: &rlibs_by_package,
            built_packages: &built_packages,
            graph: &graph,
            config: &req.workspace.config,
            previous,
        },
    )
}

/// The target the members were compiled for, else the compiler's host.
fn host_triple(journal: &[JournalEntry]) -> Result<String> {
    if let Some(t) = journal.iter().find_map(|e| e.target.clone()) {
        return Ok(t);
    }
    match journal.first() {
        Some(e) => crate::cargo::host_triple(e.rustc.as_os_str()),
        None => crate::cargo::host_triple(&crate::cargo::rustc_program()),
    }
}

/// A cargo command in the environment that makes dyndev its rustc wrapper,
/// against the bundle `bundle_env`, journaling into run `run`.
pub fn wrapped_cargo(
    req: &BuildRequest<'_>,
    subcommand: &str,
    bundle_env: &str,
    run: &str,
) -> Result<CargoCommand> {
    let mut cmd = wrapped_cargo_command(req, &[subcommand], bundle_env, run)?;
    cmd.arg(format!("--target-dir={}", req.layout.target_dir.display()));
    Ok(cmd)
}

/// [`wrapped_cargo`] without `--target-dir`, for a cargo subcommand of
/// several words (`nextest list`) that takes it after them.
pub fn wrapped_cargo_command(
    req: &BuildRequest<'_>,
    subcommand: &[&str],
    bundle_env: &str,
    run: &str,
) -> Result<CargoCommand> {
    // Cargo hashes the wrapper's path into every member unit. A path of
    // the workspace's own (a link to this executable in its state dir)
    // keeps workspaces that share a target dir, and have identical members,
    // from sharing (and fighting over) member units built against
    // different bundles.
    let wrapper = crate::measure::install_instrument(
        &req.layout.state_dir.join("bin"),
        crate::wrapper::WRAPPER_NAME,
    )?;
    let mut cmd = CargoCommand::new(subcommand[0]);
    cmd.args(&subcommand[1..])
        .env("RUSTC_WORKSPACE_WRAPPER", &wrapper)
        .env(env::STATE_DIR, &req.layout.state_dir)
        .env(env::BUNDLE, bundle_env)
        .env(env::RUN, run)
        .env(
            env::MEMBER_LIBS,
            req.workspace.member_lib_crates().join(","),
        );
    // Ours takes the place of the user's, from the environment or cargo's
    // configuration, and runs it inside.
    let cwd = std::env::current_dir().unwrap_or_default();
    match crate::cargo_config::workspace_wrapper(&cwd)? {
        Some(inner) if inner.file_name() != Some(crate::wrapper::WRAPPER_NAME.as_ref()) => {
            cmd.env(env::INNER_WRAPPER, inner);
        }
        _ => {}
    }
    Ok(cmd)
}

fn pass(req: &BuildRequest<'_>, bundle_env: &str) -> Result<Pass> {
    let run = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let run_dir = req.layout.run_dir(&run);
    let mut cmd = wrapped_cargo(req, req.subcommand, bundle_env, &run)?;
    cmd.args(&req.cargo_args)
        .arg("--message-format=json-render-diagnostics");
    let mut artifacts = Vec::new();
    let mut build_scripts = Vec::new();
    let status = cmd.stream_messages(req.shell, |message| match message {
        Message::CompilerArtifact(a) => artifacts.push(a),
        Message::BuildScriptExecuted(s) => build_scripts.push(s),
        _ => {}
    })?;
    let journal = JournalEntry::read_all(&run_dir)?;
    let _ = std::fs::remove_dir_all(&run_dir);
    if !status.success() {
        return Err(Failure::Cargo {
            code: exit_code(status),
        }
        .into());
    }
    Ok(Pass {
        artifacts,
        build_scripts,
        journal,
    })
}
