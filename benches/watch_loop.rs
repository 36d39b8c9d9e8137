//! Save -> the new code's first line of output, with `cargo dyndev watch`
//! (with and without its fast path, which replays rustc without cargo),
//! `cargo dyndev watch --hot` (new code loaded into the running process)
//! and the static way users restart a program today (a watcher running
//! plain `cargo run` again on every save), side by side in one run.
//!
//! ```text
//! cargo bench --bench watch-loop -- --manifest-path examples/headless-game/Cargo.toml --saves 7 \
//!     --hot-fn advance -- <arguments that keep the game running>
//! ```
//!
//! Under `--hot`, `main`'s own body keeps its old code (a loop on the
//! stack is never re-entered), so that mode edits the function named by
//! `--hot-fn` (one the program runs over and over, like a system), and
//! the line says which process printed it: "same process" counts the
//! saves whose line came from the process that was running before. A
//! program that exits by itself is simply started again by `--hot`, as by
//! the other modes.
//!
//! Each mode works on its own copy of the project under
//! `<target-dir>/dyndev-watch-bench` (the project's files are never
//! touched) and builds into the project's target dir, so dependencies
//! compiled before are reused. The edit puts a numbered `println!` first in
//! `fn main`; a save is timed until that line arrives. The modes take turns
//! save by save, so drift hits both alike; while one mode is timed, the
//! other modes' watchers and programs are stopped (`SIGSTOP`), so each
//! runs as a user's single watcher would. The static loop restarts
//! `cargo run` the moment the file is written, with no watcher latency: a
//! bound in its favour. Between saves the harness lets the program run for
//! `--settle` (2 s), then stops the static instance so it does not compete
//! for the CPU with the next build.
//!
//! For each save it also times, from outside (sampling processes every
//! 2 ms), the rustc that compiles the edited crate (`--crate`, the
//! package's own by default): the compile floor a loop cannot beat. "The
//! rest" is cargo's own work, dyndev's, and the program's start.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use cargo_dyndev::testing::signal_group;
use cargo_dyndev::testing::{Mirror, make_workspace_root};

const MARKER: &str = "dyndev-watch-bench";

struct Options {
    manifest: PathBuf,
    saves: usize,
    file: PathBuf,
    grace: String,
    settle: Duration,
    crate_name: Option<String>,
    hot_fn: String,
    program_args: Vec<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: cargo bench --bench watch-loop -- [--manifest-path PATH] [--saves N] \
         [--file SRC] [--crate NAME] [--hot-fn NAME] [--grace DURATION] [--settle DURATION] \
         [-- ARGS]"
    );
    std::process::exit(2)
}

fn options() -> Options {
    let mut o = Options {
        manifest: PathBuf::from("examples/headless-game/Cargo.toml"),
        saves: 5,
        file: PathBuf::from("src/main.rs"),
        grace: "2s".into(),
        settle: Duration::from_secs(2),
        crate_name: None,
        hot_fn: "main".into(),
        program_args: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--manifest-path" => o.manifest = args.next().unwrap_or_else(|| usage()).into(),
            "--saves" => {
                o.saves = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| usage())
            }
            "--file" => o.file = args.next().unwrap_or_else(|| usage()).into(),
            "--grace" => o.grace = args.next().unwrap_or_else(|| usage()),
            "--settle" => {
                o.settle = args
                    .next()
                    .and_then(|s| cargo_dyndev::testing::parse_duration(&s).ok())
                    .unwrap_or_else(|| usage())
            }
            "--crate" => o.crate_name = Some(args.next().unwrap_or_else(|| usage())),
            "--hot-fn" => o.hot_fn = args.next().unwrap_or_else(|| usage()),
            "--" => o.program_args = args.by_ref().collect(),
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            _ => usage(),
        }
    }
    o
}

/// `src` with a statement printing `<MARKER> <n> <pid>` once first in
/// `fn <function>` (a static of its own per save: new code loaded into the
/// running process prints too).
fn marked(src: &str, function: &str, n: usize) -> String {
    let head = format!("fn {function}(");
    let at = src
        .find(&head)
        .unwrap_or_else(|| panic!("the file has no `fn {function}`"));
    let brace = at + src[at..].find('{').expect("a function without a body") + 1;
    let once = format!("DYNDEV_BENCH_{n}");
    format!(
        "{}\n    {{ static {once}: std::sync::atomic::AtomicBool = \
         std::sync::atomic::AtomicBool::new(false); \
         if !{once}.swap(true, std::sync::atomic::Ordering::Relaxed) {{ \
         println!(\"{MARKER} {n} {{}}\", std::process::id()); }} }}{}",
        &src[..brace],
        &src[brace..]
    )
}

/// Lines of a child's stdout, as they come.
fn lines(child: &mut Child) -> Receiver<(Instant, String)> {
    let out = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for `<MARKER> n <pid>` and returns when it arrived.
fn wait_marker(rx: &Receiver<(Instant, String)>, n: usize, within: Duration) -> Instant {
    wait_marker_from(rx, n, within).0
}

/// Waits for `<MARKER> n <pid>`: when it arrived, and the pid.
fn wait_marker_from(
    rx: &Receiver<(Instant, String)>,
    n: usize,
    within: Duration,
) -> (Instant, u32) {
    let deadline = Instant::now() + within;
    let want = format!("{MARKER} {n} ");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((at, line)) if line.starts_with(&want) => {
                return (at, line[want.len()..].trim().parse().unwrap_or(0));
            }
            Ok(_) => {}
            Err(_) => panic!("no `{want}` within {within:?}"),
        }
    }
}

/// Watches, from outside, for the rustc that compiles `crate_name` into
/// `target` and measures how long it runs: the compile floor of a save.
/// Processes are sampled every 2 ms, so the figure is good to a few ms.
struct Spy {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Option<Duration>>,
}

impl Spy {
    fn start(crate_name: &str, target: &Path) -> Spy {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let needle = format!("--crate-name\0{crate_name}\0");
        let target = target.to_string_lossy().into_owned();
        let pids = || -> Vec<u32> {
            std::fs::read_dir("/proc")
                .map(|entries| {
                    entries
                        .flatten()
                        .filter_map(|e| e.file_name().to_str()?.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        // Processes running before the save are not the compiler.
        let before: HashSet<u32> = pids().into_iter().collect();
        let thread = std::thread::spawn(move || {
            let cmdline = |pid: u32| -> String {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default()
            };
            let (mut first, mut last): (Option<Instant>, Option<Instant>) = (None, None);
            while !flag.load(Ordering::Relaxed) {
                // A new process may still be a fork of its parent, about to
                // become rustc: look at every new one each time.
                let now = Instant::now();
                let running = pids()
                    .into_iter()
                    .filter(|p| !before.contains(p))
                    .any(|pid| {
                        let line = cmdline(pid);
                        let argv0 = line.split('\0').next().unwrap_or_default();
                        Path::new(argv0).file_name().is_some_and(|n| n == "rustc")
                            && line.contains(&needle)
                            && line.contains(&target)
                    });
                if running {
                    first.get_or_insert(now);
                    last = Some(now);
                } else if first.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let took = last? - first?;
            (took > Duration::ZERO).then_some(took)
        });
        Spy { stop, thread }
    }

    /// The rustc's run time, if one was seen.
    fn finish(self) -> Option<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().ok().flatten()
    }
}

/// One copy of the project, with the file the saves edit.
struct Copy {
    manifest: PathBuf,
    file: PathBuf,
    original: String,
    /// The function whose body gets the marker.
    function: String,
}

impl Copy {
    fn new(project: &Path, target: &Path, name: &str, file: &Path, function: &str) -> Copy {
        let dest = target.join("dyndev-watch-bench").join(name);
        let mirror = Mirror::new(&dest, &[project.to_owned()], &[target.to_owned()]);
        mirror.sync().expect("failed to copy the project");
        let root = mirror.map(project).expect("the project is mirrored");
        let manifest = root.join("Cargo.toml");
        make_workspace_root(&manifest).expect("failed to edit the copy's manifest");
        let file = root.join(file);
        let original = std::fs::read_to_string(
            project.join(file.strip_prefix(&root).expect("the file is in the copy")),
        )
        .expect("failed to read the file to edit");
        Copy {
            manifest,
            file,
            original,
            function: function.to_owned(),
        }
    }

    fn save(&self, n: usize) -> Instant {
        let text = marked(&self.original, &self.function, n);
        let at = Instant::now();
        std::fs::write(&self.file, text).expect("failed to save");
        at
    }
}

/// `cargo run`, restarted on every save by the harness itself.
struct Static {
    copy: Copy,
    target: PathBuf,
    args: Vec<String>,
    running: Option<Child>,
}

impl Static {
    fn start(&mut self) -> Receiver<(Instant, String)> {
        use std::os::unix::process::CommandExt;
        self.stop();
        let mut child = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["run", "--quiet", "--manifest-path"])
            .arg(&self.copy.manifest)
            .arg("--")
            .args(&self.args)
            .env("CARGO_TARGET_DIR", &self.target)
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("failed to run cargo");
        let rx = lines(&mut child);
        self.running = Some(child);
        rx
    }

    /// Stops `cargo run` and the program it started: its whole group.
    fn stop(&mut self) {
        if let Some(mut c) = self.running.take() {
            signal_group(c.id(), libc::SIGKILL);
            let _ = c.wait();
        }
    }

    /// Save -> first line, and how long the crate's rustc ran.
    fn save(&mut self, n: usize, crate_name: &str) -> (Duration, Option<Duration>) {
        let spy = Spy::start(crate_name, &self.target);
        let saved = self.copy.save(n);
        let rx = self.start();
        let took = wait_marker(&rx, n, Duration::from_secs(600)) - saved;
        (took, spy.finish())
    }
}

/// `cargo dyndev watch`, left running.
struct Watch {
    copy: Copy,
    child: Child,
    rx: Receiver<(Instant, String)>,
    /// The process that printed the last marker.
    pid: u32,
    /// Saves whose marker came from the process already running.
    same_process: usize,
}

impl Watch {
    /// Save -> first line, and how long the crate's rustc ran.
    fn save(&mut self, n: usize, crate_name: &str, target: &Path) -> (Duration, Option<Duration>) {
        let spy = Spy::start(crate_name, target);
        let saved = self.copy.save(n);
        let (at, pid) = wait_marker_from(&self.rx, n, Duration::from_secs(600));
        if pid == self.pid {
            self.same_process += 1;
        }
        self.pid = pid;
        (at - saved, spy.finish())
    }
}

impl Watch {
    /// Stops (`SIGSTOP`) or continues the watcher and its program, so that
    /// each mode is timed with only its own program running, as a user
    /// runs one watcher.
    fn pause(&self, paused: bool) {
        let signal = if paused { libc::SIGSTOP } else { libc::SIGCONT };
        signal_group(self.child.id(), signal);
        signal_group(self.pid, signal);
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // Ctrl-C, as a user stops it; the program goes with it.
        signal_group(self.child.id(), libc::SIGINT);
        let _ = self.child.wait();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

fn main() {
    use std::os::unix::process::CommandExt;
    let o = options();
    let manifest = std::fs::canonicalize(&o.manifest).expect("no such manifest");
    let project = manifest
        .parent()
        .expect("a manifest has a directory")
        .to_owned();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project.join("target"));

    let mut fixed = Static {
        copy: Copy::new(&project, &target, "static", &o.file, "main"),
        target: target.clone(),
        args: o.program_args.clone(),
        running: None,
    };
    let start_watch = |name: &str, extra: &[&str], function: &str| {
        let copy = Copy::new(&project, &target, name, &o.file, function);
        copy.save(0);
        // In a group of its own, as the terminal's foreground job would be.
        let mut child = Command::new(env!("CARGO_BIN_EXE_cargo-dyndev"))
            .process_group(0)
            .args(["dyndev", "watch", "--quiet", "--grace", &o.grace])
            .args(extra)
            .arg("--manifest-path")
            .arg(&copy.manifest)
            .arg("--")
            .args(&o.program_args)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("failed to run cargo-dyndev");
        let rx = lines(&mut child);
        let (_, pid) = wait_marker_from(&rx, 0, Duration::from_secs(3600));
        Watch {
            copy,
            child,
            rx,
            pid,
            same_process: 0,
        }
    };
    eprintln!("watch-loop: first builds (the dependencies, once) ...");
    let mut watch = start_watch("dyndev", &[], "main");
    let mut slow = start_watch("dyndev-cargo", &["--no-fast-path"], "main");
    let mut hot = start_watch("dyndev-hot", &["--hot"], &o.hot_fn);
    fixed.copy.save(0);
    let rx = fixed.start();
    wait_marker(&rx, 0, Duration::from_secs(3600));

    let crate_name = o
        .crate_name
        .clone()
        .unwrap_or_else(|| package_name(&manifest));
    // One save each to warm up (incremental state, page cache), not counted.
    let mut results: [Vec<(Duration, Option<Duration>)>; 4] = Default::default();
    let mut same = 0;
    // Each mode is timed with the other modes' programs stopped.
    let only = |which: Option<&Watch>, all: [&Watch; 3]| {
        for w in all {
            w.pause(!which.is_some_and(|k| std::ptr::eq(k, w)));
        }
    };
    for n in 1..=o.saves + 1 {
        only(None, [&slow, &watch, &hot]);
        let s = fixed.save(n, &crate_name);
        std::thread::sleep(o.settle);
        // The static instance would compete for the CPU: stop it.
        fixed.stop();
        only(Some(&slow), [&slow, &watch, &hot]);
        let c = slow.save(n, &crate_name, &target);
        std::thread::sleep(o.settle);
        only(Some(&watch), [&slow, &watch, &hot]);
        let w = watch.save(n, &crate_name, &target);
        std::thread::sleep(o.settle);
        only(Some(&hot), [&slow, &watch, &hot]);
        let before = hot.same_process;
        let h = hot.save(n, &crate_name, &target);
        let kept = hot.same_process > before;
        std::thread::sleep(o.settle);
        eprintln!(
            "watch-loop: save {n}{}: static {:.2}s (rustc {}), watch without the fast path \
             {:.2}s (rustc {}), watch {:.2}s (rustc {}), watch --hot {:.2}s (rustc {}{})",
            if n == 1 { " (warm-up)" } else { "" },
            s.0.as_secs_f64(),
            seconds(s.1),
            c.0.as_secs_f64(),
            seconds(c.1),
            w.0.as_secs_f64(),
            seconds(w.1),
            h.0.as_secs_f64(),
            seconds(h.1),
            if kept {
                ", same process"
            } else {
                ", new process"
            },
        );
        if n > 1 {
            same += usize::from(kept);
            results[0].push(s);
            results[1].push(c);
            results[2].push(w);
            results[3].push(h);
        }
    }
    fixed.stop();
    for w in [&slow, &watch, &hot] {
        w.pause(false);
    }
    drop(watch);
    drop(slow);
    drop(hot);

    println!(
        "save -> first line of the new code, {} saves of `{}` in {} (`--hot`: `fn {}`, \
         same process {same} of {})",
        o.saves,
        o.file.display(),
        project.display(),
        o.hot_fn,
        o.saves,
    );
    println!(
        "| mode | median | min | max | rustc of `{crate_name}` alone (median) | the rest |\n\
         |---|---|---|---|---|---|"
    );
    for (name, runs) in [
        ("static: `cargo run` restarted on save", &results[0]),
        ("`cargo dyndev watch --no-fast-path`", &results[1]),
        ("`cargo dyndev watch`", &results[2]),
        ("`cargo dyndev watch --hot`", &results[3]),
    ] {
        let times: Vec<Duration> = runs.iter().map(|r| r.0).collect();
        let floors: Vec<Duration> = runs.iter().filter_map(|r| r.1).collect();
        let (min, max) = (
            *times.iter().min().expect("at least one save"),
            *times.iter().max().expect("at least one save"),
        );
        let total = median(times);
        let floor = (!floors.is_empty()).then(|| median(floors));
        println!(
            "| {name} | {:.2} s | {:.2} s | {:.2} s | {} | {} |",
            total.as_secs_f64(),
            min.as_secs_f64(),
            max.as_secs_f64(),
            floor.map_or("?".into(), |f| format!("{:.2} s", f.as_secs_f64())),
            floor.map_or("?".into(), |f| format!(
                "{:.2} s",
                total.saturating_sub(f).as_secs_f64()
            )),
        );
    }
}

fn seconds(d: Option<Duration>) -> String {
    d.map_or("?".into(), |d| format!("{:.2}s", d.as_secs_f64()))
}

/// The package's name, from its manifest, as a crate name.
fn package_name(manifest: &Path) -> String {
    let text = std::fs::read_to_string(manifest).expect("failed to read the manifest");
    let doc: toml_edit::DocumentMut = text.parse().expect("failed to parse the manifest");
    doc["package"]["name"]
        .as_str()
        .expect("the manifest names no package; pass --crate")
        .replace('-', "_")
}
