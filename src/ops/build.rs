//! `cargo dyndev build`, and the build every other command starts with.
//!
//! The build protocol. A build is one to three cargo passes with dyndev as
//! the workspace's rustc wrapper, and a link between them ([`Step`]):
//!
//! 1. The *edit pass*, against the bundle in use: the wrapper compiles every
//!    member unit the bundle covers and probes the others (records what the
//!    unit uses, compiles nothing). In the edit loop this is the only pass.
//! 2. The *planning pass*, when the edit pass probed some units but not
//!    all: every member probes, so the journal holds every unit.
//! 3. The driver links a new bundle from the journal ([`crate::bundle`]).
//! 4. The *final pass*, against the new bundle: every member compiles; a
//!    unit probing now is an internal error.
//!
//! What the protocol relies on cargo for:
//! - a probed unit leaves no output but a dep-info file, and cargo accepts
//!   that; the dep-info names `CARGO_DYNDEV_BUNDLE=probe`, so the next pass
//!   runs the unit again;
//! - `# env-dep:` lines in dep-info are tracked: a unit reruns when the
//!   variable's value changes, which is how members follow the bundle id;
//! - the wrapper's path is part of member units' fingerprints: a wrapper
//!   link per workspace keeps workspaces that share a target dir from
//!   sharing member units built against different bundles;
//! - flags never change between passes, so dependency units compile once
//!   and every pass reuses them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{Result, bail};
use cargo_metadata::{Artifact, BuildScript, Message};

use crate::bundle;
use crate::cargo::{CargoCommand, exit_code};
use crate::cli::{BuildArgs, CompileArgs, FeatureArgs};
use crate::doctest::Doctests;
use crate::error::Failure;
use crate::layout::Layout;
use crate::plan::Graph;
use crate::shell::Shell;
use crate::state::{BundleState, JournalEntry};

use crate::contract::env;
use crate::workspace::Workspace;

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
    /// Doctests built alongside, their commands recorded for the driver
    /// to run ([`crate::doctest`]).
    pub doctests: Option<DoctestBuild>,
}

/// The `cargo test --doc` each pass of a build runs after its own cargo
/// command, with the rustdoc recorder as rustdoc.
#[derive(Debug, Clone)]
pub struct DoctestBuild {
    /// Cargo's options, without `--doc`, `--message-format` and `--color`.
    pub args: Vec<String>,
    /// What goes after `--`: the test name filter and the harness's
    /// arguments.
    pub test_args: Vec<std::ffi::OsString>,
    /// The doctests are the whole build: the request's own command does
    /// not run (`cargo test --doc`).
    pub only: bool,
    /// The rustdoc cargo would run.
    pub rustdoc: std::ffi::OsString,
}

/// What a successful build made.
#[derive(Debug)]
pub struct Outcome {
    pub artifacts: Vec<Artifact>,
    pub build_scripts: Vec<BuildScript>,
    /// The bundle in use; none when the build linked nothing against one
    /// (only proc-macros or cdylibs, say).
    pub bundle: Option<BundleState>,
    /// The doctests cargo would run, when the request asked for them.
    pub doctests: Doctests,
}

/// One `cargo build` (and `cargo test --doc`) and what it reported.
struct Pass {
    artifacts: Vec<Artifact>,
    build_scripts: Vec<BuildScript>,
    journal: Vec<JournalEntry>,
    doctests: Doctests,
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
            layout: Layout::of(workspace, compile),
            subcommand,
            cargo_args,
            features,
            compile,
            profile: compile.profile_name(),
            doctests: None,
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
    if args.keep_going {
        cargo_args.push("--keep-going".into());
    }
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
    bundle::remove_leftovers(&req.layout);
    let store = crate::cutoff::Store::new(&req.layout.state_dir);
    let cleared = store.open();
    repair_shared(req.shell, &store);
    // Member executables link through it ([`crate::cutoff`]).
    crate::helpers::install(
        &req.layout.state_dir.join("bin"),
        crate::contract::names::LINKER,
    )?;
    let previous = BundleState::load(&req.layout)?;
    let bundle_env = match &previous {
        None => env::NONE,
        Some(state) if repair(req.shell, state) => env::PROBE,
        // What the programs were linked against may have gone with the
        // store: every member compiles again.
        Some(_) if cleared => env::PROBE,
        Some(state) => state.id.as_str(),
    };

    let first = pass(req, bundle_env)?;
    for e in first.journal.iter().filter(|e| e.probed) {
        req.shell.verbose_status(
            "Probing",
            format_args!("{} ({})", e.stem, e.probe_reason.as_deref().unwrap_or("?")),
        );
    }
    let member_units = first
        .artifacts
        .iter()
        .filter(|a| req.workspace.is_member(&a.package_id))
        .filter(|a| !a.target.is_custom_build() && !a.target.is_proc_macro())
        .count();
    let first_static: Vec<JournalEntry> = first
        .journal
        .iter()
        .filter(|e| e.is_static())
        .cloned()
        .collect();
    let planning = match Step::after_edit_pass(&first.journal, member_units) {
        Step::Refuse { setting } => {
            return Err(Failure::Unsupported {
                setting,
                profile: req.profile.clone(),
            }
            .into());
        }
        Step::Done => {
            warn_global_allocators(req.shell, &first.journal);
            note_cutoff(req.shell, &first.journal);
            crate::cutoff::Store::new(&req.layout.state_dir).collect_garbage();
            note_static_units(req, &first.journal);
            return Ok(Outcome {
                artifacts: first.artifacts,
                build_scripts: first.build_scripts,
                bundle: previous,
                doctests: first.doctests,
            });
        }
        Step::Link => first,
        Step::PlanThenLink => pass(req, env::PROBE)?,
    };

    // After the first pass: cargo may have just written `Cargo.lock`.
    let generation = req.workspace.generation()?;
    let served: Vec<JournalEntry> = planning
        .journal
        .iter()
        .filter(|e| !e.is_static())
        .cloned()
        .collect();
    let bundle = new_bundle(req, &planning, &served, &generation, previous.as_ref())?;
    bundle.save(&req.layout)?;
    bundle::collect_garbage(&req.layout, &bundle, previous.as_ref())?;

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
    note_cutoff(req.shell, &last.journal);
    crate::cutoff::Store::new(&req.layout.state_dir).collect_garbage();
    // Units built statically ran in the first pass and are fresh now.
    note_static_units(req, &first_static);
    Ok(Outcome {
        artifacts: last.artifacts,
        build_scripts: last.build_scripts,
        bundle: Some(bundle),
        doctests: last.doctests,
    })
}

/// Whether the bundle must be made again because its libraries or facades
/// are not the files dyndev made (truncated, garbled, missing); says which.
/// Every member then probes (to cargo nothing changed: it would compile
/// nothing and start the program on a damaged library), and the link
/// replaces each file that differs. A damaged file is never loaded, by a
/// program or by a compile whose errors would point at the user's code.
fn repair(shell: &Shell, state: &BundleState) -> bool {
    let damage = state.damage();
    if damage.is_empty() {
        return false;
    }
    let list: Vec<String> = damage.iter().map(ToString::to_string).collect();
    shell.warn(format_args!(
        "the bundle is not as dyndev made it: {}; making it again",
        list.join(", ")
    ));
    true
}

/// Links again the programs that load shared versions of workspace
/// libraries no longer as dyndev made them; says which and why
/// ([`crate::cutoff::shared::repair`]). To cargo nothing changed: it would
/// start a program that cannot load its libraries. Leftovers of links
/// that were killed go first.
fn repair_shared(shell: &Shell, store: &crate::cutoff::Store) {
    crate::cutoff::shared::remove_leftovers(store.root());
    for (program, damage) in crate::cutoff::shared::repair(store.root(), &store.links()) {
        let list: Vec<String> = damage.iter().map(ToString::to_string).collect();
        shell.warn(format_args!(
            "the shared libraries of `{program}` are not as dyndev made them: {}; \
             linking `{program}` again",
            list.join(", ")
        ));
    }
}

/// What the build does after its edit pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Every unit compiled against the bundle in use: the build is done.
    Done,
    /// A unit asks for what a shared standard library cannot serve.
    Refuse { setting: String },
    /// Every member unit probed: the journal is complete, link from it.
    Link,
    /// Some units probed, others compiled: probe them all, then link.
    PlanThenLink,
}

impl Step {
    /// `member_units` counts the member units cargo reported; a journal
    /// with fewer entries has not seen them all. Units a shared standard
    /// library cannot serve compiled statically, as under plain cargo; only
    /// when that is every unit is the build refused, since dyndev would
    /// change nothing.
    pub fn after_edit_pass(journal: &[JournalEntry], member_units: usize) -> Step {
        if !journal.is_empty() && journal.iter().all(|e| e.unsupported.is_some()) {
            let setting = journal[0].unsupported.clone().unwrap_or_default();
            return Step::Refuse { setting };
        }
        let served = journal.iter().filter(|e| !e.is_static()).count();
        let probed = journal.iter().filter(|e| e.probed).count();
        if probed == 0 {
            Step::Done
        } else if probed == served && journal.len() >= member_units {
            Step::Link
        } else {
            Step::PlanThenLink
        }
    }
}

/// Units the profile keeps from a shared standard library (`cargo test`
/// builds examples with the dev profile's `panic = "abort"`, say) were
/// compiled as plain cargo compiles them: say so once.
fn note_static_units(req: &BuildRequest<'_>, journal: &[JournalEntry]) {
    let units: Vec<String> = journal
        .iter()
        .filter(|e| e.unsupported.is_some())
        .map(|e| format!("{} ({})", e.package, e.kind))
        .collect();
    if let Some(setting) = journal.iter().find_map(|e| e.unsupported.as_deref()) {
        req.shell.note(format_args!(
            "{} built statically: the `{}` profile sets {setting} for {}",
            crate::shell::count(units.len(), "unit", "units"),
            req.profile,
            units.join(", ")
        ));
    }
    // A library can be two units (one for the build script's host, one
    // for the program): said once.
    let host_linked: BTreeSet<(&str, &str)> = journal
        .iter()
        .filter(|e| e.host_linked)
        .map(|e| (e.package.as_str(), e.kind.as_str()))
        .collect();
    for (package, kind) in host_linked {
        req.shell.verbose_status(
            "Static",
            format_args!(
                "{package} ({kind}): build scripts or proc-macros link it, so it is compiled \
                 with cargo's arguments, not against the bundle"
            ),
        );
    }
}

/// Says which units were not compiled (their inputs unchanged), and
/// (with `-v`) why the others were, and what their dependents see.
fn note_cutoff(shell: &Shell, journal: &[JournalEntry]) {
    use crate::state::Cutoff;
    let mut relinked = Vec::new();
    let mut reused = 0;
    for e in journal {
        match &e.cutoff {
            Some(Cutoff::Relinked) => {
                relinked.push(e.kind.as_str());
                shell.verbose_status("Relinking", &e.stem);
            }
            Some(Cutoff::Reused) => {
                reused += 1;
                shell.verbose_status("Reusing", &e.stem);
            }
            Some(Cutoff::Compiled(why)) => {
                shell.verbose_status("Compiling", format_args!("{} in full: {why}", e.stem));
            }
            Some(Cutoff::Library { why, interface }) => {
                let shows = match interface {
                    None => "its interface is unchanged: only bodies no dependent sees changed"
                        .to_owned(),
                    Some(new) => format!("its interface is new: {new}"),
                };
                shell.verbose_status("Compiling", format_args!("{} ({why}); {shows}", e.stem));
            }
            None => {}
        }
    }
    let without = |n: usize| {
        if n == 1 {
            "without compiling it: nothing it compiles against changed"
        } else {
            "without compiling them: nothing they compile against changed"
        }
    };
    if !relinked.is_empty() {
        shell.status(
            "Relinked",
            format_args!("{} {}", count_kinds(&relinked), without(relinked.len())),
        );
    }
    if reused > 0 {
        shell.status(
            "Reused",
            format_args!(
                "{} {}",
                crate::shell::count(reused, "library", "libraries"),
                without(reused)
            ),
        );
    }
}

/// `2 test targets and 1 binary`, from the units' kinds.
fn count_kinds(kinds: &[&str]) -> String {
    let mut parts = Vec::new();
    for (kind, one, many) in [
        ("test", "test target", "test targets"),
        ("bin", "binary", "binaries"),
        ("example", "example", "examples"),
    ] {
        let n = kinds.iter().filter(|k| **k == kind).count();
        if n > 0 {
            parts.push(crate::shell::count(n, one, many));
        }
    }
    match parts.len() {
        0 => crate::shell::count(kinds.len(), "executable", "executables"),
        1 => parts.remove(0),
        _ => {
            let last = parts.pop().unwrap_or_default();
            format!("{} and {last}", parts.join(", "))
        }
    }
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
    served: &[JournalEntry],
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
            if let Some(stem) = crate::rustc_args::unit_stem_of(f.as_std_path()) {
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
            entries: served,
            packages_by_stem: &packages_by_stem,
            rlibs_by_package: &rlibs_by_package,
            built_packages: &built_packages,
            graph: &graph,
            settings: &req.workspace.settings,
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
    let wrapper = crate::helpers::install(
        &req.layout.state_dir.join("bin"),
        crate::contract::names::WRAPPER,
    )?;
    let mut cmd = CargoCommand::new(subcommand[0]);
    cmd.args(&subcommand[1..])
        // The user's build dir: a dependency cargo built for the user is
        // fresh for dyndev and the other way round. Member units stay apart,
        // as cargo hashes the workspace wrapper into them.
        .env("CARGO_BUILD_BUILD_DIR", req.layout.build_dir())
        .env("RUSTC_WORKSPACE_WRAPPER", &wrapper)
        .env(env::STATE_DIR, &req.layout.state_dir)
        .env(env::BUNDLE, bundle_env)
        .env(env::RUN, run)
        .env(
            env::MEMBER_LIBS,
            req.workspace.member_lib_crates().join(","),
        )
        .env(
            env::HOST_LINKED_LIBS,
            req.workspace.host_linked_member_libs().join(","),
        );
    // Ours takes the place of the user's, from the environment or cargo's
    // configuration, and runs it inside.
    let cwd = std::env::current_dir().unwrap_or_default();
    match crate::cargo_config::workspace_wrapper(&cwd)? {
        Some(inner) if inner.file_name() != Some(crate::contract::names::WRAPPER.as_ref()) => {
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
    let mut artifacts: Vec<Artifact> = Vec::new();
    let mut build_scripts: Vec<BuildScript> = Vec::new();
    // The doctests' cargo reports again the units both commands build.
    // A unit is its package, target and mode, and what it wrote (nothing,
    // for a probed unit).
    let mut seen = BTreeSet::new();
    let mut on_message = |message| match message {
        Message::CompilerArtifact(a)
            if seen.insert(format!(
                "{} {} {:?} {} {:?}",
                a.package_id, a.target.name, a.target.kind, a.profile.test, a.filenames
            )) =>
        {
            artifacts.push(a);
        }
        Message::BuildScriptExecuted(s)
            if seen.insert(format!("{} build {}", s.package_id, s.out_dir)) =>
        {
            build_scripts.push(s);
        }
        _ => {}
    };
    let mut status = None;
    if !req.doctests.as_ref().is_some_and(|d| d.only) {
        let mut cmd = wrapped_cargo(req, req.subcommand, bundle_env, &run)?;
        cmd.args(&req.cargo_args)
            .arg("--message-format=json-render-diagnostics");
        status = Some(cmd.stream_messages(req.shell, &mut on_message)?);
    }
    let mut doctests = Doctests::default();
    if let Some(doc) = &req.doctests
        && status.is_none_or(|s| s.success())
    {
        let (s, recorded) = doctest_pass(req, doc, bundle_env, &run, &mut on_message)?;
        status = Some(s);
        doctests = recorded;
    }
    note_dependencies_compiled(req, &artifacts);
    let journal = JournalEntry::read_all(&run_dir)?;
    let _ = std::fs::remove_dir_all(&run_dir);
    if let Some(status) = status
        && !status.success()
    {
        return Err(Failure::Cargo {
            code: exit_code(status),
        }
        .into());
    }
    Ok(Pass {
        artifacts,
        build_scripts,
        journal,
        doctests,
    })
}

/// Under `-v`, which dependencies compiled: cargo's build dir, shared with
/// the user's own builds, did not hold them with these settings (profile,
/// features, flags), or nothing had built them yet.
fn note_dependencies_compiled(req: &BuildRequest<'_>, artifacts: &[Artifact]) {
    let compiled: BTreeSet<&str> = artifacts
        .iter()
        .filter(|a| !a.fresh && !a.target.is_custom_build())
        .filter(|a| !req.workspace.is_member(&a.package_id))
        .map(|a| a.target.name.as_str())
        .collect();
    if !compiled.is_empty() {
        req.shell.verbose_status(
            "Compiled",
            format_args!(
                "{} the build dir `{}` did not hold with these settings \
                 (profile, features, flags): {}",
                crate::shell::count(compiled.len(), "dependency", "dependencies"),
                req.layout.build_dir().display(),
                compiled.into_iter().collect::<Vec<_>>().join(", ")
            ),
        );
    }
}

/// `cargo test --doc` with the rustdoc recorder: builds what the doctests
/// need and writes their commands down. Cargo's own `Doc-tests` lines are
/// kept off the terminal (the doctests run later, each under its line).
fn doctest_pass(
    req: &BuildRequest<'_>,
    doc: &DoctestBuild,
    bundle_env: &str,
    run: &str,
    on_message: &mut dyn FnMut(Message),
) -> Result<(std::process::ExitStatus, Doctests)> {
    let record = req.layout.state_dir.join("doctests").join(run);
    let _ = std::fs::remove_dir_all(&record);
    crate::fs::create_dir_all(&record)?;
    let proxy = crate::helpers::install(
        &req.layout.state_dir.join("bin"),
        crate::contract::names::RUSTDOC,
    )?;
    let mut cmd = wrapped_cargo(req, "test", bundle_env, run)?;
    cmd.args(doc.args.iter().filter(|a| !a.starts_with("--color")))
        .arg("--doc")
        .arg("--message-format=json-render-diagnostics")
        .arg(format!("--color={}", req.shell.child_color()));
    if !doc.test_args.is_empty() {
        cmd.arg("--").args(&doc.test_args);
    }
    cmd.env("RUSTDOC", &proxy)
        .env(crate::contract::env::REAL_RUSTDOC, &doc.rustdoc)
        .env(crate::contract::env::DOCTEST_RECORD, &record);
    let changed = cmd
        .changed_vars()
        .filter_map(|k| k.to_str().map(str::to_owned))
        .collect();
    let shown_proxy = proxy.display().to_string();
    let asked = doc.only;
    let hide = move |line: &str| {
        let line = crate::shell::strip_ansi(line);
        let line = line.trim_start();
        line.starts_with("Doc-tests ")
            || (line.starts_with("Running `") && line.contains(&shown_proxy))
            // What `cargo test --doc` warns about, and `cargo test` not.
            || (!asked && line.starts_with("warning: doc tests are not supported for crate type"))
    };
    let status = cmd.stream_messages_hiding(req.shell, hide, on_message)?;
    let recorded = crate::doctest::Recorded::read_all(&record)?;
    let _ = std::fs::remove_dir_all(&record);
    Ok((status, Doctests { recorded, changed }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(stem: &str, probed: bool) -> JournalEntry {
        JournalEntry {
            stem: stem.into(),
            package: "app".into(),
            probed,
            probe_reason: None,
            executable: false,
            kind: "lib".into(),
            rustc: "rustc".into(),
            externs: Vec::new(),
            search_paths: Vec::new(),
            link_args: Vec::new(),
            target: None,
            unsupported: None,
            host_linked: false,
            global_allocator: None,
            cutoff: None,
        }
    }

    #[test]
    fn the_edit_loop_is_one_pass() {
        let journal = [entry("libcore-1", false), entry("app-2", false)];
        assert_eq!(Step::after_edit_pass(&journal, 2), Step::Done);
        assert_eq!(Step::after_edit_pass(&[], 0), Step::Done);
    }

    #[test]
    fn a_complete_probe_links_at_once_and_a_partial_one_probes_all() {
        let all = [entry("libcore-1", true), entry("app-2", true)];
        assert_eq!(Step::after_edit_pass(&all, 2), Step::Link);
        // Cargo reported a third member unit the wrapper never saw.
        assert_eq!(Step::after_edit_pass(&all, 3), Step::PlanThenLink);
        let some = [entry("libcore-1", false), entry("app-2", true)];
        assert_eq!(Step::after_edit_pass(&some, 2), Step::PlanThenLink);
    }

    #[test]
    fn a_profile_no_unit_can_use_is_refused() {
        let mut e = entry("app-2", false);
        e.unsupported = Some("`panic = \"abort\"`".into());
        assert_eq!(
            Step::after_edit_pass(&[e], 1),
            Step::Refuse {
                setting: "`panic = \"abort\"`".into()
            }
        );
    }

    #[test]
    fn units_built_statically_do_not_hold_up_the_others() {
        // `cargo test` builds examples with the dev profile's
        // `panic = "abort"` and the tests with `unwind`.
        let mut example = entry("demo-3", false);
        example.unsupported = Some("`panic = \"abort\"`".into());
        let tests = [
            entry("libcore-1", true),
            entry("core-2", true),
            example.clone(),
        ];
        assert_eq!(Step::after_edit_pass(&tests, 3), Step::Link);
        let done = [entry("libcore-1", false), example];
        assert_eq!(Step::after_edit_pass(&done, 2), Step::Done);
    }
}
