//! Running the built program: what it costs at start (the dynamic loader's
//! own statistics, taken before `main`) and how long a whole run takes,
//! which counts only for runs that finished with success. A program that
//! does not end (a GUI, a server) can be run for its start-up alone.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::interrupt;
use super::stats::Summary;

/// Runs of the program per mode, when they finish with success.
pub const RUNS: usize = 3;

#[derive(Debug, Clone, Serialize)]
pub struct Startup {
    /// Cycles the dynamic loader spent before `main` (glibc's statistics).
    pub loader_cycles: Option<u64>,
    pub relocations: u64,
    /// The cycles in milliseconds, at the CPU's nominal clock.
    pub loader_ms: Option<f64>,
    /// Median wall time of whole runs of the program, when every run
    /// finished with success within the timeout.
    pub run_ms: Option<f64>,
    /// Why there is no `run_ms`: how a run ended.
    pub run_not_measured: Option<String>,
    #[serde(skip)]
    pub run_failure: Option<Outcome>,
    /// How many times the program was started.
    #[serde(skip)]
    pub runs: usize,
}

/// How far to run the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// To its end, up to [`RUNS`] times, for its run time too.
    End,
    /// Once, until the loader has reported its start-up, then stopped: for
    /// a program that does not end by itself.
    Startup,
}

/// How one run of the program ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Exited(i32),
    Signalled(i32),
    /// Where and what: `src/main.rs:2:5: no display`.
    Panicked(String),
    TimedOut(Duration),
    /// Stopped once started ([`Until::Startup`]), since the first run of
    /// the comparison was still going after this timeout.
    Stopped(Duration),
    Interrupted,
    /// It could not be started or waited for.
    Error(String),
}

impl Outcome {
    /// From the exit status and what the program wrote on stderr.
    pub fn classify(status: ExitStatus, stderr: &str) -> Outcome {
        if status.success() {
            return Outcome::Success;
        }
        // With `panic = "abort"` a panic ends in SIGABRT, else in status 101.
        if let Some(panic) = panic_message(stderr) {
            return Outcome::Panicked(panic);
        }
        match (status.code(), status.signal()) {
            (Some(code), _) => Outcome::Exited(code),
            (None, Some(signal)) => Outcome::Signalled(signal),
            (None, None) => Outcome::Error(format!("it ended with {status}")),
        }
    }

    pub fn is_success(&self) -> bool {
        *self == Outcome::Success
    }

    /// Why a run that ended so gives no run time.
    pub fn reason(&self) -> String {
        match self {
            Outcome::Success => "it succeeded".into(),
            Outcome::Exited(code) => format!("the program exited with status {code}"),
            Outcome::Signalled(signal) => match crate::process::signal_name(*signal) {
                Some(name) => format!("the program was killed by signal {signal} ({name})"),
                None => format!("the program was killed by signal {signal}"),
            },
            Outcome::Panicked(panic) => format!("the program panicked at {panic}"),
            Outcome::TimedOut(after) => format!(
                "the program was still running after {} s (`--timeout`)",
                after.as_secs()
            ),
            Outcome::Stopped(after) => format!(
                "not waited for: the program's first run was still going after {} s \
                 (`--timeout`)",
                after.as_secs()
            ),
            Outcome::Interrupted => "interrupted".into(),
            Outcome::Error(e) => format!("the program could not run: {e}"),
        }
    }

    /// The table's cell for a run time not measured.
    pub fn cell(&self) -> String {
        match self {
            Outcome::Success => "-".into(),
            Outcome::Exited(code) => format!("exit {code}"),
            Outcome::Signalled(signal) => format!("signal {signal}"),
            Outcome::Panicked(_) => "panicked".into(),
            Outcome::TimedOut(_) => "timed out".into(),
            Outcome::Stopped(_) => "skipped".into(),
            Outcome::Interrupted => "stopped".into(),
            Outcome::Error(_) => "failed".into(),
        }
    }

    /// How to measure the run anyway.
    pub fn help(&self) -> Option<&'static str> {
        match self {
            Outcome::Success | Outcome::Interrupted | Outcome::Stopped(_) => None,
            Outcome::TimedOut(_) => Some(
                "to time whole runs, give the program arguments that make it finish by \
                 itself (after `--`: `cargo dyndev compare -- ARGS`), or a longer `--timeout` \
                 if it ends later; `--no-run` times the builds alone",
            ),
            _ => Some(
                "a program that needs a display, a device or input to run can be given \
                 them: arguments after `--` (`cargo dyndev compare -- ARGS`), variables in \
                 the environment (compare passes its own on, `DISPLAY` included), or \
                 `--no-run` to time the builds alone",
            ),
        }
    }
}

/// `src/main.rs:2:5: no display` from Rust's panic message, skipping the
/// loader's statistics that share stderr.
pub fn panic_message(stderr: &str) -> Option<String> {
    let mut lines = stderr.lines().filter(|l| !is_loader_line(l));
    while let Some(line) = lines.next() {
        let Some(at) = line.find(" panicked at ") else {
            continue;
        };
        let location = line[at + " panicked at ".len()..].trim_end_matches(':');
        let mut message: String = lines.next().unwrap_or("").trim().to_owned();
        if message.chars().count() > 160 {
            message = message.chars().take(160).collect::<String>() + "...";
        }
        return Some(if message.is_empty() || message.starts_with("note: ") {
            location.to_owned()
        } else {
            format!("{location}: {message}")
        });
    }
    None
}

/// `   16224:\t...`: a line of glibc's `LD_DEBUG` output.
fn is_loader_line(line: &str) -> bool {
    let rest = line
        .trim_start()
        .trim_start_matches(|c: char| c.is_ascii_digit());
    rest.len() < line.trim_start().len() && rest.starts_with(':')
}

/// One run of the program.
#[derive(Debug, Clone)]
pub struct Run {
    pub ms: f64,
    pub outcome: Outcome,
    /// `(cycles, relocations)` from the loader's statistics.
    pub loader: Option<(u64, u64)>,
}

/// Runs the program up to [`RUNS`] times with glibc's loader statistics
/// on; a run that does not succeed ends the series (its loader statistics,
/// printed before `main`, still count).
pub fn measure(
    binary: &Path,
    args: &[OsString],
    cwd: &Path,
    package_dir: &Path,
    timeout: Duration,
) -> Startup {
    series(binary, args, cwd, package_dir, timeout, Until::End)
}

/// Runs the program once with glibc's loader statistics on, and stops it
/// as soon as the loader has reported: its start-up, and no run time.
pub fn measure_startup(
    binary: &Path,
    args: &[OsString],
    cwd: &Path,
    package_dir: &Path,
    timeout: Duration,
) -> Startup {
    series(binary, args, cwd, package_dir, timeout, Until::Startup)
}

fn series(
    binary: &Path,
    args: &[OsString],
    cwd: &Path,
    package_dir: &Path,
    timeout: Duration,
    until: Until,
) -> Startup {
    let mut runs = Vec::new();
    let times = if until == Until::Startup { 1 } else { RUNS };
    for _ in 0..times {
        let mut run = run_once(binary, args, cwd, package_dir, timeout, until);
        if until == Until::Startup && run.outcome.is_success() {
            // It ended by itself, sooner than the first run: still not a
            // run time to compare with anything.
            run.outcome = Outcome::Stopped(timeout);
        }
        let ended = !run.outcome.is_success();
        runs.push(run);
        if ended {
            break;
        }
    }
    summarise(&runs, cpu_mhz())
}

/// The figures from a series of runs: the run time only if every run
/// succeeded, else the reason it is not measured.
pub fn summarise(runs: &[Run], mhz: Option<f64>) -> Startup {
    let cycles: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.loader)
        .map(|l| l.0 as f64)
        .collect();
    let cycles = Summary::of(&cycles).map(|s| s.median_ms as u64);
    let relocations = runs
        .iter()
        .filter_map(|r| r.loader)
        .map(|l| l.1)
        .next_back();
    let failure = runs.iter().map(|r| &r.outcome).find(|o| !o.is_success());
    let run_ms = match failure {
        Some(_) => None,
        None => Summary::of(&runs.iter().map(|r| r.ms).collect::<Vec<_>>()).map(|s| s.median_ms),
    };
    Startup {
        loader_cycles: cycles,
        relocations: relocations.unwrap_or(0),
        loader_ms: cycles.zip(mhz).map(|(c, mhz)| c as f64 / (mhz * 1000.0)),
        run_ms,
        run_not_measured: failure.map(Outcome::reason),
        run_failure: failure.cloned(),
        runs: runs.len(),
    }
}

/// One run, in a process group of its own, so that whatever it starts
/// ends with it; with [`Until::Startup`], stopped once the loader has
/// reported.
fn run_once(
    binary: &Path,
    args: &[OsString],
    cwd: &Path,
    package_dir: &Path,
    timeout: Duration,
    until: Until,
) -> Run {
    let mut cmd = Command::new(binary);
    cmd.args(args)
        .current_dir(cwd)
        .env("LD_DEBUG", "statistics")
        .env("CARGO_MANIFEST_DIR", package_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let (mut child, running) = match interrupt::spawn(&mut cmd) {
        Ok(spawned) => spawned,
        Err(e) => {
            return Run {
                ms: 0.0,
                outcome: Outcome::Error(e.to_string()),
                loader: None,
            };
        }
    };
    // What the program wrote on stderr so far, read as it comes.
    let written = Arc::new(Mutex::new(Vec::new()));
    let reader = child.stderr.take().map(|mut stderr| {
        let written = Arc::clone(&written);
        std::thread::spawn(move || {
            let mut chunk = [0; 8192];
            while let Ok(n @ 1..) = std::io::Read::read(&mut stderr, &mut chunk) {
                if let Ok(mut text) = written.lock() {
                    text.extend_from_slice(&chunk[..n]);
                }
            }
        })
    });
    let text = || {
        String::from_utf8_lossy(&written.lock().map(|t| t.clone()).unwrap_or_default()).into_owned()
    };
    let ended = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) => {}
            Err(e) => break Err(Outcome::Error(e.to_string())),
        }
        if interrupt::interrupted() {
            break Err(Outcome::Interrupted);
        }
        if until == Until::Startup && startup_reported(&text()) {
            break Err(Outcome::Stopped(timeout));
        }
        if start.elapsed() > timeout {
            break Err(Outcome::TimedOut(timeout));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    // The program, if still running, and anything it left behind.
    running.kill_all();
    if ended.is_err() {
        let _ = child.wait();
    }
    drop(running);
    if let Some(reader) = reader {
        let _ = reader.join();
    }
    let text = text();
    Run {
        ms,
        outcome: match ended {
            // Ctrl-C reached the program too.
            Ok(_) if interrupt::interrupted() => Outcome::Interrupted,
            Ok(status) => Outcome::classify(status, &text),
            Err(outcome) => outcome,
        },
        loader: parse_loader_statistics(&text),
    }
}

/// Whether the loader's statistics of the start-up are all there: both
/// lines [`parse_loader_statistics`] reads, the last one whole.
pub fn startup_reported(text: &str) -> bool {
    let Some(at) = text.find("total startup time in dynamic loader:") else {
        return false;
    };
    text[at..]
        .find("number of relocations:")
        .is_some_and(|r| text[at + r..].contains('\n'))
}

/// `(cycles, relocations)` from glibc's `LD_DEBUG=statistics` output.
pub fn parse_loader_statistics(text: &str) -> Option<(u64, u64)> {
    let number_after = |key: &str| -> Option<u64> {
        text.lines()
            .find(|l| l.contains(key))?
            .split(key)
            .nth(1)?
            .split_whitespace()
            .next()?
            .replace(',', "")
            .parse()
            .ok()
    };
    let cycles = number_after("total startup time in dynamic loader:")?;
    let relocations = number_after("number of relocations:").unwrap_or(0);
    Some((cycles, relocations))
}

fn cpu_mhz() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_glibc_loader_statistics() {
        let text = "\
     16224:\t\n\
     16224:\truntime linker statistics:\n\
     16224:\t  total startup time in dynamic loader: 20866759 cycles\n\
     16224:\t            time needed for relocation: 20761376 cycles (99.4%)\n\
     16224:\t                 number of relocations: 359314\n";
        assert_eq!(parse_loader_statistics(text), Some((20_866_759, 359_314)));
        assert_eq!(parse_loader_statistics("no statistics"), None);
    }

    /// What a panicking program writes with `LD_DEBUG=statistics`.
    const PANIC: &str = "\
     71:\t\n\
     71:\truntime linker statistics:\n\
     71:\t  total startup time in dynamic loader: 900000 cycles\n\
\n\
thread 'main' panicked at src/main.rs:2:5:\n\
     71:\t  final number of relocations: 42\n\
failed to create the window: no display\n\
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";

    #[test]
    fn tells_a_panic_from_an_exit_status_and_a_signal() {
        assert_eq!(
            Outcome::classify(ExitStatus::from_raw(101 << 8), PANIC),
            Outcome::Panicked("src/main.rs:2:5: failed to create the window: no display".into())
        );
        // panic = "abort"
        assert!(matches!(
            Outcome::classify(ExitStatus::from_raw(libc::SIGABRT), PANIC),
            Outcome::Panicked(_)
        ));
        assert_eq!(
            Outcome::classify(ExitStatus::from_raw(3 << 8), "usage: app FILE\n"),
            Outcome::Exited(3)
        );
        assert_eq!(
            Outcome::classify(ExitStatus::from_raw(libc::SIGSEGV), ""),
            Outcome::Signalled(libc::SIGSEGV)
        );
        // A thread that panicked in a program that then exited 0 is a
        // success.
        assert_eq!(
            Outcome::classify(ExitStatus::from_raw(0), PANIC),
            Outcome::Success
        );
        assert_eq!(
            panic_message("thread 'main' panicked at src/main.rs:1:13:\nexplicit panic\n"),
            Some("src/main.rs:1:13: explicit panic".into())
        );
    }

    fn run(ms: f64, outcome: Outcome) -> Run {
        Run {
            ms,
            outcome,
            loader: Some((2_000_000, 100)),
        }
    }

    #[test]
    fn a_failed_run_gives_no_run_time_and_says_why() {
        let ok = summarise(
            &[
                run(10.0, Outcome::Success),
                run(30.0, Outcome::Success),
                run(20.0, Outcome::Success),
            ],
            Some(1000.0),
        );
        assert_eq!(ok.run_ms, Some(20.0));
        assert_eq!(ok.run_not_measured, None);
        assert_eq!(ok.loader_ms, Some(2.0));

        for (outcome, reason) in [
            (Outcome::Exited(2), "exited with status 2"),
            (Outcome::Signalled(libc::SIGSEGV), "signal 11 (SIGSEGV)"),
            (
                Outcome::Panicked("src/main.rs:1:1: no display".into()),
                "panicked",
            ),
            (Outcome::TimedOut(Duration::from_secs(20)), "after 20 s"),
        ] {
            let s = summarise(
                &[run(10.0, Outcome::Success), run(3.0, outcome.clone())],
                Some(1000.0),
            );
            assert_eq!(s.run_ms, None, "{outcome:?}");
            let why = s.run_not_measured.unwrap();
            assert!(why.contains(reason), "{why}");
            assert_eq!(s.run_failure, Some(outcome.clone()));
            assert!(outcome.help().unwrap().contains("--no-run"));
            // The loader's work happened before `main`: it still counts.
            assert_eq!(s.loader_ms, Some(2.0));
        }
    }

    #[test]
    fn runs_a_program_and_reads_how_it_ended() {
        let dir = Path::new("/");
        let sh = Path::new("/bin/sh");
        let long = Duration::from_secs(20);
        let ok = measure(sh, &["-c".into(), "exit 0".into()], dir, dir, long);
        assert!(ok.run_ms.is_some() && ok.loader_cycles.is_some(), "{ok:?}");
        let failed = measure(sh, &["-c".into(), "exit 4".into()], dir, dir, long);
        assert_eq!(failed.run_failure, Some(Outcome::Exited(4)));
        assert_eq!(failed.run_ms, None);
        let started = Instant::now();
        let slow = measure(
            sh,
            &["-c".into(), "sleep 30 & sleep 30".into()],
            dir,
            dir,
            Duration::from_millis(200),
        );
        assert_eq!(
            slow.run_failure,
            Some(Outcome::TimedOut(Duration::from_millis(200)))
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "one run that timed out ends the series, and what it started dies with it"
        );
    }

    #[test]
    fn a_program_that_does_not_end_is_stopped_once_its_start_up_is_reported() {
        let dir = Path::new("/");
        let started = Instant::now();
        let forever = measure_startup(
            Path::new("/bin/sh"),
            &["-c".into(), "sleep 30 & sleep 30".into()],
            dir,
            dir,
            Duration::from_secs(20),
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not waited for: {:?}",
            started.elapsed()
        );
        assert_eq!(
            forever.run_failure,
            Some(Outcome::Stopped(Duration::from_secs(20)))
        );
        assert_eq!(forever.runs, 1);
        assert_eq!(forever.run_ms, None);
        assert!(forever.loader_cycles.is_some(), "{forever:?}");
        let why = forever.run_not_measured.unwrap();
        assert!(why.starts_with("not waited for: "), "{why}");
        assert_eq!(Outcome::Stopped(Duration::from_secs(20)).help(), None);
        assert_eq!(Outcome::Stopped(Duration::from_secs(20)).cell(), "skipped");
    }

    #[test]
    fn the_start_up_is_reported_once_both_lines_are_whole() {
        let start = "     7:\t  total startup time in dynamic loader: 900 cycles\n";
        assert!(!startup_reported(""));
        assert!(!startup_reported(start));
        let cut = format!("{start}     7:\t            number of relocations: 35");
        assert!(!startup_reported(&cut), "the number may go on");
        assert!(startup_reported(&format!("{cut}9\n")));
        // The count a program prints at exit is not the start-up's.
        assert!(!startup_reported(
            "     7:\t       final number of relocations: 42\n"
        ));
    }
}
