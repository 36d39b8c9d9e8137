//! Edit the library -> test suite done, `cargo test` against
//! `cargo dyndev test`, side by side in one run, with where the time goes.
//!
//! ```text
//! cargo bench --bench test-loop -- --runs 7 [--edit body|const]
//! ```
//!
//! The fixture (`benches/test_loop/fixture`) is an async web library (axum
//! on tokio) with a dozen integration-test binaries, each starting a server
//! on a loopback port and making requests to it. It is written under
//! `<target-dir>/dyndev-test-loop` at run time, with its own target dir,
//! so its dependencies compile once for every later run. Each timed run
//! changes one line of the library to a number never used before: a line
//! in a function's body (`--edit body`, the default), which `cargo dyndev
//! test` may answer by linking the test binaries again without compiling
//! them, or a public constant (`--edit const`), after which every test
//! crate is compiled again. The modes take turns run by run, so drift hits
//! both alike.
//!
//! The breakdown comes from the instruments `compare` uses: a rustc timer
//! (`RUSTC_WRAPPER`) and a linker proxy give the compile and link time of
//! every unit, and a runner (`target.<host>.runner`, this executable) logs
//! when each test binary starts and ends. Both modes run with all three,
//! so they pay the same small cost. After the timed runs each test binary
//! is run once more with glibc's `LD_DEBUG=statistics`, as `compare`
//! measures start-up: the dynamic loader's time and relocations, paid once
//! per binary.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cargo_dyndev::testing::program;
use cargo_dyndev::testing::{CompileRecord, LinkRecord, env, names};
use cargo_dyndev::testing::{Summary, read_log};

const RUNNER_FLAG: &str = "--test-loop-runner";
const TESTS: usize = 12;

const MANIFEST: &str = include_str!("test_loop/fixture/Cargo.toml-in");
const LOCK: &str = include_str!("test_loop/fixture/Cargo.lock-in");
const LIB: &str = include_str!("test_loop/fixture/src/lib.rs");
const TEST: &str = include_str!("test_loop/fixture/tests/api.rs-in");

struct Options {
    runs: usize,
    edit: Edit,
}

/// Which line of the library each run changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit {
    /// A function's body (`build_number`): test crates only link to it.
    Body,
    /// A public constant (`REVISION`): every test crate is compiled again.
    Const,
}

fn usage() -> ! {
    eprintln!("usage: cargo bench --bench test-loop -- [--runs N] [--edit body|const]");
    std::process::exit(2)
}

fn options() -> Options {
    let mut o = Options {
        runs: 5,
        edit: Edit::Body,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => {
                o.runs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| usage())
            }
            "--edit" => {
                o.edit = match args.next().as_deref() {
                    Some("body") => Edit::Body,
                    Some("const") => Edit::Const,
                    _ => usage(),
                }
            }
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            _ => usage(),
        }
    }
    o
}

/// One test binary's run, as the runner logs it.
#[derive(serde::Serialize, serde::Deserialize)]
struct BinaryRun {
    exe: PathBuf,
    start_ns: u128,
    end_ns: u128,
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// Under `target.<host>.runner`: `<this> --test-loop-runner LOG EXE ARGS`.
/// Runs the test binary, logs when it started and ended, exits as it did.
fn runner(mut args: impl Iterator<Item = OsString>) -> ! {
    let log = PathBuf::from(args.next().expect("the runner's log"));
    let exe = PathBuf::from(args.next().expect("the test binary"));
    let start_ns = now_ns();
    let status = Command::new(&exe)
        .args(args)
        .status()
        .expect("failed to run a test binary");
    let record = BinaryRun {
        exe,
        start_ns,
        end_ns: now_ns(),
    };
    let mut line = serde_json::to_vec(&record).expect("a record serializes");
    line.push(b'\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut f| f.write_all(&line))
        .expect("failed to write the runner's log");
    std::process::exit(status.code().unwrap_or(101))
}

/// Writes the fixture under `dir` (unchanged files are left alone, so
/// cargo's fingerprints hold from one benchmark run to the next).
fn write_fixture(dir: &Path) {
    let put = |rel: &str, text: &str| {
        let path = dir.join(rel);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(text) {
            return;
        }
        std::fs::create_dir_all(path.parent().expect("a file has a directory"))
            .expect("failed to create the fixture's directories");
        std::fs::write(&path, text).expect("failed to write the fixture");
    };
    put("Cargo.toml", MANIFEST);
    put("Cargo.lock", LOCK);
    put("src/lib.rs", LIB);
    for n in 1..=TESTS {
        put(
            &format!("tests/api_{n:02}.rs"),
            &TEST.replace("%N%", &n.to_string()),
        );
    }
}

/// The one-line edit: the body's `build` or `REVISION` set to `n`.
fn edit(lib: &Path, what: Edit, n: u128) {
    let n = n % 1_000_000_000_000;
    let (from, to) = match what {
        Edit::Body => ("    let build = 0;", format!("    let build = {n};")),
        Edit::Const => (
            "pub const REVISION: u64 = 0;",
            format!("pub const REVISION: u64 = {n};"),
        ),
    };
    let text = LIB.replace(from, &to);
    assert_ne!(text, LIB, "the fixture's library has no `{from}` line");
    std::fs::write(lib, text).expect("failed to edit the library");
}

/// User and system CPU time of the waited-for children so far.
#[allow(unsafe_code)]
fn children_cpu_ms() -> f64 {
    // SAFETY: rusage is plain data that getrusage fills in; all-zero is a
    // valid value for it, and the pointer is to a local.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

fn host() -> String {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("failed to run rustc");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc names no host")
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Cargo,
    Dyndev,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Cargo => "`cargo test`",
            Mode::Dyndev => "`cargo dyndev test`",
        }
    }
}

/// One timed run's figures, in milliseconds.
#[derive(Default, Clone)]
struct Sample {
    total: f64,
    /// CPU time of the command and everything it ran (user + system):
    /// less sensitive than wall time to a machine busy with other work.
    cpu: f64,
    /// Start to the first test binary's start: cargo, rustc, the links.
    build: f64,
    /// Sums over the build's processes (they run in parallel).
    compile: f64,
    /// The least the compiles alone take on this machine's cores: the
    /// library's, then the rest spread evenly.
    floor: f64,
    link: f64,
    links: usize,
    /// The test binaries' own runs, one after the other.
    tests: f64,
    binaries: usize,
    /// The first binary's start to the last one's end, minus their runs.
    between: f64,
    /// The last binary's end to the command's: doctests, exit.
    after: f64,
}

struct Bench {
    fixture: PathBuf,
    target: PathBuf,
    env: Vec<(String, OsString)>,
    link_log: PathBuf,
    rustc_log: PathBuf,
    runner_log: PathBuf,
    output_log: PathBuf,
}

impl Bench {
    fn clear_logs(&self) {
        for log in [&self.link_log, &self.rustc_log, &self.runner_log] {
            let _ = std::fs::remove_file(log);
        }
    }

    fn command(&self, mode: Mode) -> Command {
        let mut cmd = match mode {
            Mode::Cargo => {
                let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
                c.arg("test");
                c
            }
            Mode::Dyndev => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_cargo-dyndev"));
                c.args(["dyndev", "test"]);
                c
            }
        };
        cmd.arg("--manifest-path")
            .arg(self.fixture.join("Cargo.toml"))
            .arg("--locked")
            .current_dir(&self.fixture)
            .env("CARGO_TARGET_DIR", &self.target)
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs the mode's test command to the end; panics with its output if
    /// it fails.
    fn run(&self, mode: Mode, shown: bool) -> (Duration, f64) {
        let mut cmd = self.command(mode);
        if shown {
            // cargo's progress, not the tests' output: stdout is the table's.
            cmd.stdout(Stdio::null());
        } else {
            let out = std::fs::File::create(&self.output_log).expect("failed to create a log");
            cmd.stdout(out.try_clone().expect("a log file clones"))
                .stderr(out);
        }
        let cpu_before = children_cpu_ms();
        let start = Instant::now();
        let status = cmd.status().expect("failed to run the test command");
        let took = start.elapsed();
        let cpu = children_cpu_ms() - cpu_before;
        if !status.success() {
            let output = std::fs::read_to_string(&self.output_log).unwrap_or_default();
            panic!("{} failed ({status}):\n{output}", mode.name());
        }
        (took, cpu)
    }

    /// An edit, then one timed run of `mode`, with its breakdown.
    fn timed(&self, mode: Mode, what: Edit) -> (Sample, Vec<PathBuf>) {
        edit(&self.fixture.join("src/lib.rs"), what, now_ns());
        self.clear_logs();
        let started = now_ns();
        let (total, cpu) = self.run(mode, false);
        let links: Vec<LinkRecord> = read_log(&self.link_log).unwrap_or_default();
        let compiles: Vec<CompileRecord> = read_log(&self.rustc_log).unwrap_or_default();
        let runs: Vec<BinaryRun> = read_log(&self.runner_log).unwrap_or_default();
        let ms = |ns: u128| ns as f64 / 1e6;
        let link: f64 = links.iter().map(|l| l.millis as f64).sum();
        let total_ms = total.as_secs_f64() * 1000.0;
        let first = runs.iter().map(|r| r.start_ns).min().unwrap_or(started);
        let last = runs.iter().map(|r| r.end_ns).max().unwrap_or(first);
        let tests: f64 = runs.iter().map(|r| ms(r.end_ns - r.start_ns)).sum();
        let build = ms(first.saturating_sub(started));
        let sample = Sample {
            total: total_ms,
            cpu,
            build,
            compile: (compiles.iter().map(|c| c.millis as f64).sum::<f64>() - link).max(0.0),
            // The library compiles first (its rlib has no link); the test
            // crates, which need it, then share the cores.
            floor: {
                let library = compiles
                    .iter()
                    .filter(|c| c.crate_name == "webshop")
                    .map(|c| c.millis as f64)
                    .fold(f64::INFINITY, f64::min);
                let compile = compiles.iter().map(|c| c.millis as f64).sum::<f64>() - link;
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
                if library.is_finite() {
                    library + (compile - library).max(0.0) / cores
                } else {
                    compile / cores
                }
            },
            link,
            links: links.len(),
            tests,
            binaries: runs.len(),
            between: (ms(last - first) - tests).max(0.0),
            after: (total_ms - build - ms(last - first)).max(0.0),
        };
        (sample, runs.into_iter().map(|r| r.exe).collect())
    }
}

fn main() {
    let mut argv = std::env::args_os().skip(1);
    if argv.next().is_some_and(|a| a == RUNNER_FLAG) {
        runner(argv);
    }
    let o = options();
    let repo_target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = std::path::absolute(repo_target.join("dyndev-test-loop"))
        .expect("failed to resolve the bench's directory");
    let fixture = dir.join("webshop");
    write_fixture(&fixture);

    // The instruments `compare` uses: this project's executable under the
    // names it answers to.
    let tools = dir.join("bin");
    std::fs::create_dir_all(&tools).expect("failed to create the tools' dir");
    let tool = |name: &str| {
        let link = tools.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_cargo-dyndev"), &link)
            .expect("failed to install an instrument");
        link
    };
    let linker_proxy = tool(names::LINKER);
    let timer = tool(names::TIMER);
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).expect("failed to create the logs' dir");
    let triple = host().to_uppercase().replace(['-', '.'], "_");
    let this = std::env::current_exe().expect("the bench knows its own path");
    let runner_log = logs.join("runs.jsonl");
    let bench = Bench {
        target: dir.join("target"),
        env: vec![
            (format!("CARGO_TARGET_{triple}_LINKER"), linker_proxy.into()),
            ("RUSTC_WRAPPER".into(), timer.into()),
            (env::LINK_LOG.into(), logs.join("links.jsonl").into()),
            (env::RUSTC_LOG.into(), logs.join("rustc.jsonl").into()),
            (
                format!("CARGO_TARGET_{triple}_RUNNER"),
                format!("{} {RUNNER_FLAG} {}", this.display(), runner_log.display()).into(),
            ),
        ],
        link_log: logs.join("links.jsonl"),
        rustc_log: logs.join("rustc.jsonl"),
        runner_log,
        output_log: logs.join("output.txt"),
        fixture,
    };

    eprintln!("test-loop: first builds (the dependencies, once) ...");
    bench.run(Mode::Cargo, true);
    bench.run(Mode::Dyndev, true);
    let modes = [Mode::Cargo, Mode::Dyndev];
    let mut samples: [Vec<Sample>; 2] = Default::default();
    let mut binaries: [Vec<PathBuf>; 2] = Default::default();
    // One run each to warm up (incremental state, page cache), not counted.
    for run in 0..=o.runs {
        for k in 0..2 {
            let i = (k + run) % 2;
            let (s, bins) = bench.timed(modes[i], o.edit);
            eprintln!(
                "test-loop: run {run}{}: {} {:.2}s (build {:.2}s, tests {:.2}s)",
                if run == 0 { " (warm-up)" } else { "" },
                modes[i].name(),
                s.total / 1000.0,
                s.build / 1000.0,
                s.tests / 1000.0,
            );
            if run > 0 {
                samples[i].push(s);
                binaries[i] = bins;
            }
        }
    }
    std::fs::write(bench.fixture.join("src/lib.rs"), LIB).expect("failed to restore the library");

    // Start-up, as `compare` measures it: each test binary on its own.
    let startups: Vec<(f64, u64, f64)> = binaries
        .iter()
        .map(|bins| {
            let (mut loader, mut relocations, mut run) = (0.0, 0, 0.0);
            for b in bins {
                let s = program::measure(
                    b,
                    &["--quiet".into()],
                    &bench.fixture,
                    &bench.fixture,
                    Duration::from_secs(60),
                );
                loader += s.loader_ms.unwrap_or(0.0);
                relocations += s.relocations;
                run += s.run_ms.unwrap_or(0.0);
            }
            (loader, relocations, run)
        })
        .collect();

    let median = |i: usize, f: fn(&Sample) -> f64| {
        Summary::of(&samples[i].iter().map(f).collect::<Vec<_>>())
            .expect("at least one run")
            .median_ms
    };
    let secs = |ms: f64| format!("{:.2} s", ms / 1000.0);
    println!(
        "edit the library ({}) -> suite done, {} runs per mode, {TESTS} integration-test binaries",
        match o.edit {
            Edit::Body => "a function's body",
            Edit::Const => "a public constant",
        },
        o.runs
    );
    println!(
        "| mode | median | min | max | CPU | build | rustc compile (sum) | link (sum, count) | \
         tests' runs | between tests | after (doctests, exit) | loader start-up (sum, relocations) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for (i, mode) in modes.iter().enumerate() {
        let totals = Summary::of(&samples[i].iter().map(|s| s.total).collect::<Vec<_>>())
            .expect("at least one run");
        let last = samples[i].last().expect("at least one run");
        let (loader, relocations, _) = startups[i];
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} ({}) | {} ({} binaries) | {} | {} | {:.0} ms ({relocations}) |",
            mode.name(),
            secs(totals.median_ms),
            secs(totals.min_ms),
            secs(totals.max_ms),
            secs(median(i, |s| s.cpu)),
            secs(median(i, |s| s.build)),
            secs(median(i, |s| s.compile)),
            secs(median(i, |s| s.link)),
            last.links,
            secs(median(i, |s| s.tests)),
            last.binaries,
            secs(median(i, |s| s.between)),
            secs(median(i, |s| s.after)),
            loader,
        );
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (i, mode) in modes.iter().enumerate() {
        println!(
            "{}: rustc's compiles alone take at least {} on {cores} cores (the library's, then \
             the rest spread evenly), {:.2}x `cargo test`'s median",
            mode.name(),
            secs(median(i, |s| s.floor)),
            median(i, |s| s.floor) / median(0, |s| s.total),
        );
    }
    let ratio = median(1, |s| s.total) / median(0, |s| s.total);
    let cpu_ratio = median(1, |s| s.cpu) / median(0, |s| s.cpu);
    println!(
        "`cargo dyndev test` takes {ratio:.2}x the time of `cargo test` ({cpu_ratio:.2}x its CPU time)"
    );
}
