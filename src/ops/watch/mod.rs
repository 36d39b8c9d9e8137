//! `cargo dyndev watch`: build, start the program, and whenever a file the
//! build read changes, rebuild while the program keeps running; only a
//! successful build stops it (and all it started) and starts the new
//! one. `watch test` reruns the tests the same way. With `--hot`, a save
//! the fast path can replay is loaded into the running process instead
//! (`crate::reload`), and only a change new code cannot carry restarts it.

mod changes;
mod hot;
pub mod inputs;
pub mod instance;
mod redraw;
pub mod replay;
mod setup;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cli::{RunArgs, TestArgs, WatchArgs, WatchMode, WatchOptions};
use crate::error::Failure;
use crate::ops::build::{BuildRequest, build};
use crate::ops::run;
use crate::process::{self, Terminal};
use crate::shell::Shell;
use crate::workspace::Workspace;
use changes::{fingerprint, is_cargo_file};
use hot::Hot;
use inputs::{Exclusions, Inputs, ScriptInputs};
use instance::Instance;
use replay::FastPath;
use setup::{clone_command, forget_program, install_capture, test_command, test_selection};

/// What to keep running.
#[derive(Debug, Clone, Copy)]
enum Mode<'a> {
    Run(&'a RunArgs),
    Test(&'a TestArgs),
}

pub fn exec(shell: &Shell, args: &WatchArgs) -> Result<()> {
    let (mode, options) = match &args.mode {
        None => (Mode::Run(&args.run), &args.watch),
        Some(WatchMode::Run(a)) => (Mode::Run(&a.run), &a.watch),
        Some(WatchMode::Test(a)) => (Mode::Test(&a.test), &a.watch),
    };
    if options.hot && matches!(mode, Mode::Test(_)) {
        bail!("`--hot` reloads a running program; `watch test` keeps none running");
    }
    // The first `-v` is watch's own: cargo's `Fresh` and `Running` lines
    // would bury each save's.
    let (run, test);
    let mode = match mode {
        Mode::Run(a) => {
            run = RunArgs {
                global: a.global.for_watch(),
                ..a.clone()
            };
            Mode::Run(&run)
        }
        Mode::Test(a) => {
            test = TestArgs {
                global: a.global.for_watch(),
                ..a.clone()
            };
            Mode::Test(&test)
        }
    };
    Session::new(shell, mode, options)?.run()
}

/// What reaches the watcher's loop.
#[derive(Debug)]
enum Event {
    /// The file system reported changes at these paths.
    Changed(Vec<PathBuf>),
    /// An instance ended by itself, or was stopped.
    Exited {
        pid: u32,
        status: std::io::Result<ExitStatus>,
    },
    /// SIGINT, SIGTERM or SIGHUP: stop everything and leave.
    Signal,
    /// The file system watcher failed.
    WatchError(String),
}

/// A successful build, ready to start.
struct Built {
    command: Command,
    shown: String,
    inputs: Inputs,
    /// What a replay of this build would need.
    fast: Option<FastPath>,
}

/// What the last look at an input found: its size, modification time and
/// content hash (none when the file does not exist).
type Fingerprint = Option<(u64, std::time::SystemTime, String)>;

/// The last good build, for the fast path: its units, and how to start
/// the program again.
struct Fast {
    path: FastPath,
    command: Command,
    /// The command as shown to the user.
    shown: String,
}

/// The instance of the program that runs, and its command as shown.
struct Running {
    instance: Instance,
    shown: String,
}

/// What became of a save offered to the fast path.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replayed {
    /// Done: the program rebuilt and restarted, reloaded, or a compile
    /// error shown while it keeps running. The fast path holds.
    Handled,
    /// Cargo must build this save; the fast path holds for later ones.
    ToCargo,
    /// Cargo must build, and the fast path is gone (it failed, or what it
    /// builds against changed).
    ToCargoAfresh,
}

struct Session<'a> {
    shell: &'a Shell,
    mode: Mode<'a>,
    options: &'a WatchOptions,
    ws: Workspace,
    exclusions: Exclusions,
    layout: crate::layout::Layout,
    rx: Receiver<Event>,
    tx: Sender<Event>,
    stopping: Arc<AtomicBool>,
    fs: notify::RecommendedWatcher,
    watched: BTreeSet<PathBuf>,
    inputs: Inputs,
    fingerprints: BTreeMap<PathBuf, Fingerprint>,
    running: Option<Running>,
    /// The terminal, handed to the program while it runs.
    terminal: Option<Terminal>,
    /// Where captured rustc commands are, when the fast path is on.
    captures: Option<PathBuf>,
    /// The last good build, for the fast path.
    fast: Option<Fast>,
    /// `--hot`: reloads of the running instance.
    hot: Option<Hot>,
    announced: bool,
}

impl<'a> Session<'a> {
    fn new(shell: &'a Shell, mode: Mode<'a>, options: &'a WatchOptions) -> Result<Session<'a>> {
        let compile = match mode {
            Mode::Run(a) => &a.compile,
            Mode::Test(a) => &a.compile,
        };
        let ws = Workspace::load(shell, compile)?;
        let layout = crate::layout::Layout::of(&ws, compile);
        let exclusions = Exclusions::for_workspace(&ws, &layout.target_dir);
        // The workspace's own: workspaces sharing a target dir, or watchers
        // of one after another, never touch each other's.
        let watch_dir = layout.state_dir.join("watch");
        let hot_scratch = watch_dir.join("hot");
        let captures = match mode {
            Mode::Run(_) if !options.no_fast_path => {
                let dir = watch_dir.clone();
                let bin = dir.join("bin");
                let capture = crate::helpers::install(&bin, crate::contract::names::CAPTURE)?;
                let captures = dir.join("captures");
                // `--hot` links new code from the objects of the program's
                // last link: its links go through the proxy, which keeps them.
                let hot_link = match options.hot {
                    true => Some((
                        crate::helpers::install(&bin, crate::contract::names::LINKER)?,
                        crate::reload::kept_links(&hot_scratch),
                    )),
                    false => None,
                };
                install_capture(&capture, &captures, hot_link);
                Some(captures)
            }
            _ => None,
        };
        let hot = match mode {
            Mode::Run(_) if options.hot => {
                let scratch = hot_scratch;
                // Libraries a watcher before this one loaded into programs
                // that are gone (`patch-PID-N.so`, `gen-PID-N.so`).
                if let Ok(entries) = std::fs::read_dir(&scratch) {
                    for e in entries.flatten() {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let pid = name
                            .strip_suffix(".so")
                            .and_then(|n| n.split('-').nth(1))
                            .and_then(|p| p.parse::<u32>().ok());
                        if pid.is_some_and(|p| !crate::process::exists(p)) {
                            let _ = std::fs::remove_file(e.path());
                        }
                    }
                }
                Some(Hot::new(scratch))
            }
            _ => None,
        };
        let (tx, rx) = channel();

        let stopping = Arc::new(AtomicBool::new(false));
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ])
        .context("failed to install signal handlers")?;
        let (signal_tx, flag) = (tx.clone(), stopping.clone());
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for _ in signals.forever() {
                    flag.store(true, Ordering::SeqCst);
                    let _ = signal_tx.send(Event::Signal);
                }
            })
            .context("failed to start the signal thread")?;

        let fs_tx = tx.clone();
        let fs = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let _ = match event {
                Ok(e) if matches!(e.kind, notify::EventKind::Access(_)) => Ok(()),
                Ok(e) => fs_tx.send(Event::Changed(e.paths)),
                Err(e) => fs_tx.send(Event::WatchError(e.to_string())),
            };
        })
        .context("failed to start watching files")?;

        Ok(Session {
            shell,
            mode,
            options,
            ws,
            exclusions,
            layout,
            rx,
            tx,
            stopping,
            fs,
            watched: BTreeSet::new(),
            inputs: Inputs::default(),
            fingerprints: BTreeMap::new(),
            running: None,
            terminal: Terminal::detect(),
            captures,
            fast: None,
            hot,
            announced: false,
        })
    }

    fn run(mut self) -> Result<()> {
        self.cycle(None, false);
        loop {
            let Some(event) = self.next_event(None) else {
                continue;
            };
            match event {
                Event::Changed(paths) => {
                    let saved = Instant::now();
                    let mut changed: BTreeSet<PathBuf> = self.relevant(paths);
                    if changed.is_empty() {
                        continue;
                    }
                    // One build for a burst: wait until it has been quiet.
                    loop {
                        match self.next_event(Some(self.options.debounce)) {
                            Some(Event::Changed(paths)) => changed.extend(self.relevant(paths)),
                            Some(Event::Signal) => return Ok(()),
                            Some(other) => self.handle(other),
                            None => break,
                        }
                        if self.stopping.load(Ordering::SeqCst) {
                            return Ok(());
                        }
                    }
                    let changed: Vec<PathBuf> = changed
                        .into_iter()
                        .filter(|p| self.really_changed(p))
                        .collect();
                    if changed.is_empty() {
                        continue;
                    }
                    let manifests = changed.iter().any(|p| is_cargo_file(p));
                    self.shell.status(
                        "Rebuilding",
                        format_args!("after a change to {}", self.describe_changes(&changed)),
                    );
                    if manifests || !self.replay(saved, &changed) {
                        if self.hot.is_some() && self.running.is_some() {
                            self.shell.warn(format_args!(
                                "{} needs cargo's build: restarting",
                                self.describe_changes(&changed)
                            ));
                        }
                        self.cycle(Some(saved), manifests);
                    }
                }
                Event::Signal => return Ok(()),
                other => self.handle(other),
            }
            if self.stopping.load(Ordering::SeqCst) {
                return Ok(());
            }
        }
    }

    /// The next event, waiting at most `timeout` (forever when none).
    fn next_event(&self, timeout: Option<Duration>) -> Option<Event> {
        match timeout {
            None => self.rx.recv().ok(),
            Some(t) => self.rx.recv_timeout(t).ok(),
        }
    }

    /// Events other than changes and signals.
    fn handle(&mut self, event: Event) {
        match event {
            Event::Exited { pid, status } => self.exited(pid, status),
            Event::WatchError(e) => self.shell.warn(format_args!("file watcher: {e}")),
            Event::Changed(_) | Event::Signal => {}
        }
    }

    /// Builds; on success stops the running instance and starts the new
    /// one; then watches what the build read.
    fn cycle(&mut self, saved: Option<Instant>, reload: bool) {
        if self.options.clear {
            use std::io::Write;
            let _ = write!(std::io::stderr(), "\x1b[2J\x1b[3J\x1b[H");
        }
        self.refresh_fingerprints();
        if reload {
            let compile = match self.mode {
                Mode::Run(a) => &a.compile,
                Mode::Test(a) => &a.compile,
            };
            match Workspace::load(self.shell, compile) {
                Ok(ws) => self.ws = ws,
                Err(e) => {
                    self.report(&e);
                    self.wait_message();
                    return;
                }
            }
        }
        // A test run still going holds cargo's lock on the target dir, and
        // its results are about to be stale: stop it before building.
        let mut replaced = matches!(self.mode, Mode::Test(_)) && self.stop_running();
        self.fast = None;
        let mut built = self.build();
        // `--hot` reloads from the rustc command of the program's crate,
        // captured when it compiles: if it was already built, build it once
        // more now so the first save reloads instead of restarting.
        if let Ok(b) = &built
            && self.hot.is_some()
            && !self.announced
            && b.fast.as_ref().is_some_and(|f| !f.knows_the_program())
            && forget_program(&self.layout.deps_dir(), b.command.get_program())
        {
            self.shell.verbose_status(
                "Rebuilding",
                "the program's crate, to capture its rustc command for reloads",
            );
            built = self.build();
        }
        // Cargo may have written the lockfile: its own write, not a change
        // to build again for.
        let lockfile = inputs::normalize(&self.ws.root().join("Cargo.lock"));
        let known = self.fingerprints.get(&lockfile).and_then(Option::as_ref);
        let now = fingerprint(&lockfile, known);
        self.fingerprints.insert(lockfile, now);
        match built {
            Ok(built) => {
                self.set_inputs(built.inputs);
                if let Some(fast) = built.fast {
                    self.fast = Some(Fast {
                        path: fast,
                        command: clone_command(&built.command),
                        shown: built.shown.clone(),
                    });
                }
                if self.stopping.load(Ordering::SeqCst) {
                    return;
                }
                replaced |= self.stop_running();
                self.launch(built.command, built.shown, saved, replaced, "");
            }
            Err(e) => {
                if self.stopping.load(Ordering::SeqCst) {
                    // Ctrl-C reached cargo too: not a failed build.
                    return;
                }
                self.report(&e);
                let known = Inputs::of_workspace(&self.ws)
                    .with_recent_dep_info(&self.ws, &self.layout.deps_dir())
                    .finish(&self.exclusions);
                let mut inputs = self.inputs.clone();
                inputs.files.extend(known.files);
                self.set_inputs(inputs);
                self.wait_message();
            }
        }
        if !self.announced {
            self.announced = true;
            self.shell.status(
                "Watching",
                format_args!(
                    "{} files in {} directories (Ctrl-C to stop)",
                    self.inputs.existing(),
                    self.watched.len()
                ),
            );
        }
    }

    /// Starts the new instance and says so.
    fn launch(
        &mut self,
        command: Command,
        shown: String,
        saved: Option<Instant>,
        replaced: bool,
        how: &str,
    ) {
        let exe = PathBuf::from(command.get_program());
        match instance::start(command, self.exit_notifier()) {
            Ok(instance) => {
                if let Some(hot) = &mut self.hot {
                    hot.prepare(instance.pid, exe);
                }
                if let Some(t) = &self.terminal {
                    t.give(instance.pid);
                }
                match saved {
                    Some(saved) => self.shell.status(
                        if replaced { "Restarted" } else { "Started" },
                        format_args!("`{shown}` in {:.2}s{how}", saved.elapsed().as_secs_f64()),
                    ),
                    None => self.shell.status("Running", format_args!("`{shown}`")),
                }
                self.running = Some(Running { instance, shown });
            }
            Err(e) => self
                .shell
                .error(format_args!("failed to start `{shown}`: {e}")),
        }
    }

    /// The fast path: replays the captured rustc commands of the units the
    /// change touches, without cargo. False when cargo must build instead.
    fn replay(&mut self, saved: Instant, changed: &[PathBuf]) -> bool {
        let Some(state) = self.fast.take() else {
            return false;
        };
        let replayed = self.replay_with(&state, saved, changed);
        if replayed != Replayed::ToCargoAfresh {
            self.fast = Some(state);
        }
        replayed == Replayed::Handled
    }

    fn replay_with(&mut self, fast: &Fast, saved: Instant, changed: &[PathBuf]) -> Replayed {
        let Fast {
            path: fast,
            command,
            shown,
        } = fast;
        let Some(plan) = fast.plan(changed) else {
            return Replayed::ToCargo;
        };
        if self.options.clear {
            use std::io::Write;
            let _ = write!(std::io::stderr(), "\x1b[2J\x1b[3J\x1b[H");
        }
        self.refresh_fingerprints();
        let units = plan.len();
        // No other dyndev builds into this target dir meanwhile.
        let lock = match self.layout.lock(self.shell) {
            Ok(lock) => lock,
            Err(e) => {
                self.shell.warn(format_args!("{e:#}"));
                return Replayed::ToCargo;
            }
        };
        // A replay compiles against the bundle and starts the program on
        // it: a bundle no longer as dyndev made it is cargo's build's to
        // make again.
        if crate::state::BundleState::load(&self.layout)
            .ok()
            .flatten()
            .is_some_and(|s| !s.damage().is_empty())
        {
            return Replayed::ToCargoAfresh;
        }
        if self.hot.is_some() && self.running.is_some() {
            let handled = self.reload(&plan, saved, changed, command, shown);
            drop(lock);
            return handled;
        }
        let replayed = plan.run(self.shell);
        drop(lock);
        if let Ok(true) = replayed {
            let mut inputs = self.inputs.clone();
            inputs.files.extend(plan.inputs());
            let inputs = inputs.finish(&self.exclusions);
            self.set_inputs(inputs);
        }
        let how = format!(
            " (replayed {units} rustc command{})",
            if units == 1 { "" } else { "s" }
        );
        self.finish_replay(replayed, command, shown, saved, &how)
    }

    /// After a replay: a program built (`Ok(true)`) replaces the running
    /// one; a compile error (`Ok(false)`) leaves it; a replay that could
    /// not run says so and hands over to cargo.
    fn finish_replay(
        &mut self,
        replayed: Result<bool>,
        command: &Command,
        shown: &str,
        saved: Instant,
        how: &str,
    ) -> Replayed {
        match replayed {
            Ok(true) => {
                if self.stopping.load(Ordering::SeqCst) {
                    return Replayed::Handled;
                }
                let replaced = self.stop_running();
                self.launch(
                    clone_command(command),
                    shown.to_owned(),
                    Some(saved),
                    replaced,
                    how,
                );
                Replayed::Handled
            }
            Ok(false) => {
                if !self.stopping.load(Ordering::SeqCst) {
                    self.wait_message();
                }
                Replayed::Handled
            }
            Err(e) => {
                self.shell.warn(format_args!(
                    "the fast path failed, building with cargo: {e:#}"
                ));
                Replayed::ToCargoAfresh
            }
        }
    }

    fn wait_message(&self) {
        match &self.running {
            Some(Running { shown, .. }) => self.shell.status(
                "Waiting",
                format_args!("for changes; `{shown}` keeps running the last good build"),
            ),
            None => self.shell.status("Waiting", "for changes"),
        }
    }

    fn report(&self, err: &anyhow::Error) {
        match err.downcast_ref::<Failure>() {
            Some(f) if f.is_silent() => {}
            _ => self.shell.error(format_args!("{err:#}")),
        }
    }

    fn build(&self) -> Result<Built> {
        let shell = self.shell;
        let ws = &self.ws;
        match self.mode {
            Mode::Run(args) => {
                let selected = run::select(ws, args)?;
                let req = selected.request(shell, ws, args);
                let outcome = build(&req)?;
                let mut program = run::program(ws, args, &selected, &outcome, &req.layout)?;
                let scripts =
                    ScriptInputs::of_build(ws, &outcome.artifacts, &outcome.build_scripts);
                let inputs = Inputs::of_build(ws, &outcome.artifacts, &scripts, &self.exclusions);
                let fast = self.captures.as_deref().map(|captures| {
                    FastPath::new(ws, &outcome.artifacts, &program.exe, captures, scripts)
                });
                // The program gets the environment the user gave watch.
                for var in [
                    crate::contract::env::CAPTURE_DIR,
                    crate::contract::env::CAPTURE_INNER,
                    crate::contract::env::HOT_LINKER,
                    crate::contract::env::HOT_KEEP,
                ] {
                    program.command.env_remove(var);
                }
                match std::env::var_os(crate::contract::env::CAPTURE_INNER) {
                    Some(user) if self.captures.is_some() => {
                        program.command.env("RUSTC_WORKSPACE_WRAPPER", user)
                    }
                    _ if self.captures.is_some() => {
                        program.command.env_remove("RUSTC_WORKSPACE_WRAPPER")
                    }
                    _ => &mut program.command,
                };
                Ok(Built {
                    shown: program.display(),
                    command: program.command,
                    inputs,
                    fast,
                })
            }
            Mode::Test(args) => {
                let mut cargo_args = test_selection(args);
                cargo_args.push("--no-run".into());
                let req =
                    BuildRequest::new(shell, ws, "test", cargo_args, &args.features, &args.compile);
                let outcome = build(&req)?;
                let scripts =
                    ScriptInputs::of_build(ws, &outcome.artifacts, &outcome.build_scripts);
                let inputs = Inputs::of_build(ws, &outcome.artifacts, &scripts, &self.exclusions);
                let mut command = Command::new(crate::fs::self_exe()?);
                command.args(test_command(args));
                Ok(Built {
                    command,
                    shown: "cargo dyndev test".into(),
                    inputs,
                    fast: None,
                })
            }
        }
    }

    fn exit_notifier(&self) -> impl FnOnce(u32, std::io::Result<ExitStatus>) + Send + 'static {
        let tx = self.tx.clone();
        move |pid, status| {
            let _ = tx.send(Event::Exited { pid, status });
        }
    }

    /// Ends what an instance left (every process it started), and forgets
    /// it: `--hot` drops its session.
    fn release(&mut self, instance: Instance) {
        let pid = instance.pid;
        instance.stop(self.options.grace);
        if let Some(hot) = &mut self.hot {
            hot.forget(Some(pid));
        }
    }

    /// Stops the running instance, if any; true when there was one.
    fn stop_running(&mut self) -> bool {
        let Some(Running { instance, .. }) = self.running.take() else {
            return false;
        };
        let (t, pid) = (Instant::now(), instance.pid);
        self.release(instance);
        if let Some(t) = &self.terminal {
            t.take_back();
        }
        self.shell.verbose_status(
            "Stopped",
            format_args!(
                "process {pid} and all it started in {:.2}s",
                t.elapsed().as_secs_f64()
            ),
        );
        true
    }

    /// The running instance ended by itself: say how, and make sure what
    /// it started ends too.
    fn exited(&mut self, pid: u32, status: std::io::Result<ExitStatus>) {
        let Some(Running { instance, shown }) = self.running.take_if(|r| r.instance.pid == pid)
        else {
            // An instance that was stopped.
            return;
        };
        let started = instance.started;
        self.release(instance);
        if let Some(t) = &self.terminal {
            t.take_back();
            // Ctrl-C went to the program, which had the terminal: the user
            // means to stop watching.
            if status.as_ref().is_ok_and(|s| {
                use std::os::unix::process::ExitStatusExt;
                s.signal() == Some(libc::SIGINT)
            }) {
                self.stopping.store(true, Ordering::SeqCst);
                return;
            }
        }
        let ran = started.elapsed().as_secs_f64();
        match (self.mode, status) {
            (_, Err(e)) => self
                .shell
                .warn(format_args!("lost track of `{shown}`: {e}")),
            (Mode::Test(_), Ok(s)) if s.success() => {
                self.shell.status("Finished", format_args!("tests passed"))
            }
            (Mode::Test(_), Ok(s)) => self
                .shell
                .error(format_args!("tests failed ({})", process::describe(s))),
            (Mode::Run(_), Ok(s)) if s.success() => self.shell.status(
                "Exited",
                format_args!("`{shown}` after {ran:.2}s ({})", process::describe(s)),
            ),
            (Mode::Run(_), Ok(s)) => self.shell.warn(format_args!(
                "`{shown}` ended after {ran:.2}s with {}",
                process::describe(s)
            )),
        }
        self.shell.status("Waiting", "for changes");
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if let Some(Running { shown, .. }) = &self.running {
            self.shell
                .verbose_status("Stopping", format_args!("`{shown}`"));
        }
        self.stop_running();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn manifests_and_configuration_reshape_the_workspace() {
        assert!(is_cargo_file(Path::new("/w/game/Cargo.toml")));
        assert!(is_cargo_file(Path::new("/w/.cargo/config.toml")));
        assert!(!is_cargo_file(Path::new("/w/src/main.rs")));
    }
}
