//! Save -> the new process's first line of output, with `cargo dyndev watch`
//! and the static way users restart a program today (a watcher running
//! plain `cargo run` again on every save), side by side in one run.
//!
//! ```text
//! cargo bench --bench watch-loop -- --manifest-path examples/headless-game/Cargo.toml --saves 7
//! ```
//!
//! Each mode works on its own copy of the project under
//! `<target-dir>/dyndev-watch-bench` (the project's files are never
//! touched) and builds into the project's target dir, so dependencies
//! compiled before are reused. The edit puts a numbered `println!` first in
//! `fn main`; a save is timed until that line arrives. The modes take turns
//! save by save, so drift hits both alike. The static loop restarts
//! `cargo run` the moment the file is written, with no watcher latency: a
//! bound in its favour.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use cargo_dyndev::compare::mirror::{Mirror, make_workspace_root};

const MARKER: &str = "dyndev-watch-bench";

struct Options {
    manifest: PathBuf,
    saves: usize,
    file: PathBuf,
    grace: String,
    program_args: Vec<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: cargo bench --bench watch-loop -- [--manifest-path PATH] [--saves N] \
         [--file SRC] [--grace DURATION] [-- ARGS]"
    );
    std::process::exit(2)
}

fn options() -> Options {
    let mut o = Options {
        manifest: PathBuf::from("examples/headless-game/Cargo.toml"),
        saves: 5,
        file: PathBuf::from("src/main.rs"),
        grace: "2s".into(),
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
            "--" => o.program_args = args.by_ref().collect(),
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            _ => usage(),
        }
    }
    o
}

/// `src` with `println!("<MARKER> <n>");` as the first statement of `main`.
fn marked(src: &str, n: usize) -> String {
    let at = src.find("fn main").expect("the file has no `fn main`");
    let brace = at + src[at..].find('{').expect("`fn main` without a body") + 1;
    format!(
        "{}\n    println!(\"{MARKER} {n}\");{}",
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

/// Waits for `<MARKER> n` and returns when it arrived.
fn wait_marker(rx: &Receiver<(Instant, String)>, n: usize, within: Duration) -> Instant {
    let deadline = Instant::now() + within;
    let want = format!("{MARKER} {n}");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((at, line)) if line.trim() == want => return at,
            Ok(_) => {}
            Err(_) => panic!("no `{want}` within {within:?}"),
        }
    }
}

/// One copy of the project, with the file the saves edit.
struct Copy {
    manifest: PathBuf,
    file: PathBuf,
    original: String,
}

impl Copy {
    fn new(project: &Path, target: &Path, name: &str, file: &Path) -> Copy {
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
        }
    }

    fn save(&self, n: usize) -> Instant {
        let text = marked(&self.original, n);
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
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .status();
            let _ = c.wait();
        }
    }

    fn save(&mut self, n: usize) -> Duration {
        let saved = self.copy.save(n);
        let rx = self.start();
        wait_marker(&rx, n, Duration::from_secs(600)) - saved
    }
}

/// `cargo dyndev watch`, left running.
struct Watch {
    copy: Copy,
    child: Child,
    rx: Receiver<(Instant, String)>,
}

impl Watch {
    fn save(&mut self, n: usize) -> Duration {
        let saved = self.copy.save(n);
        wait_marker(&self.rx, n, Duration::from_secs(600)) - saved
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
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
        copy: Copy::new(&project, &target, "static", &o.file),
        target: target.clone(),
        args: o.program_args.clone(),
        running: None,
    };
    let copy = Copy::new(&project, &target, "dyndev", &o.file);
    copy.save(0);
    eprintln!("watch-loop: first builds (the dependencies, once) ...");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cargo-dyndev"))
        .args([
            "dyndev",
            "watch",
            "--quiet",
            "--grace",
            &o.grace,
            "--manifest-path",
        ])
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
    let mut watch = Watch { copy, child, rx };
    wait_marker(&watch.rx, 0, Duration::from_secs(3600));
    fixed.copy.save(0);
    let rx = fixed.start();
    wait_marker(&rx, 0, Duration::from_secs(3600));

    // One save each to warm up (incremental state, page cache), not counted.
    let (mut static_times, mut watch_times) = (Vec::new(), Vec::new());
    for n in 1..=o.saves + 1 {
        let s = fixed.save(n);
        std::thread::sleep(Duration::from_millis(300));
        let w = watch.save(n);
        std::thread::sleep(Duration::from_millis(300));
        eprintln!(
            "watch-loop: save {n}{}: static {:.2}s, dyndev watch {:.2}s",
            if n == 1 { " (warm-up)" } else { "" },
            s.as_secs_f64(),
            w.as_secs_f64()
        );
        if n > 1 {
            static_times.push(s);
            watch_times.push(w);
        }
    }
    fixed.stop();
    drop(watch);

    println!(
        "save -> first line of the new process, {} saves of `{}` in {}",
        o.saves,
        o.file.display(),
        project.display()
    );
    println!("| mode | median | min | max |\n|---|---|---|---|");
    for (name, times) in [
        ("static: `cargo run` restarted on save", static_times),
        ("`cargo dyndev watch`", watch_times),
    ] {
        let (min, max) = (
            *times.iter().min().expect("at least one save"),
            *times.iter().max().expect("at least one save"),
        );
        println!(
            "| {name} | {:.2} s | {:.2} s | {:.2} s |",
            median(times).as_secs_f64(),
            min.as_secs_f64(),
            max.as_secs_f64()
        );
    }
}
