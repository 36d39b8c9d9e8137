//! The program's guard: this executable as `dyndev-watch-guard`, started by
//! `cargo dyndev watch` for each instance of the program. It starts the
//! program and is its parent and the subreaper of all the program starts,
//! so every such process stays its descendant, also one that left the
//! program's process group or session. It reports the program's start and
//! exit over one pipe and takes the watcher's order to stop over another;
//! if that pipe closes without one (the watcher died, even by SIGKILL), it
//! kills them all. Nothing here traces the program, so the guard may reap
//! any child it has without taking a tracer's notifications.
//!
//! Its command line: `CONTROL_FD REPORT_FD [--env KEY=VALUE | --unset
//! KEY]... -- PROGRAM [ARG]...`, in the program's working directory.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;
use std::time::Duration;

use crate::contract::names;
use crate::process;

/// What the guard tells the watcher, a line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The program runs, with this pid (also its process group's id).
    Started(u32),
    /// The program could not be started: why.
    Failed(String),
    /// The program ended, with this wait status.
    Exited(i32),
}

impl Report {
    pub fn line(&self) -> String {
        match self {
            Report::Started(pid) => format!("started {pid}\n"),
            Report::Failed(why) => format!("failed {}\n", why.replace('\n', " ")),
            Report::Exited(status) => format!("exited {status}\n"),
        }
    }

    pub fn parse(line: &str) -> Option<Report> {
        let (word, rest) = line.trim_end_matches('\n').split_once(' ')?;
        match word {
            "started" => Some(Report::Started(rest.parse().ok()?)),
            "failed" => Some(Report::Failed(rest.to_owned())),
            "exited" => Some(Report::Exited(rest.parse().ok()?)),
            _ => None,
        }
    }
}

/// The watcher's order to stop everything: SIGTERM, then SIGKILL after
/// `grace`.
pub fn stop_order(grace: Duration) -> String {
    format!("stop {}\n", grace.as_millis())
}

fn parse_stop_order(line: &[u8]) -> Option<Duration> {
    let ms = std::str::from_utf8(line).ok()?.strip_prefix("stop ")?;
    Some(Duration::from_millis(ms.trim_end().parse().ok()?))
}

/// The guard for `program`, which reads orders from `control` and writes
/// reports to `report` (descriptors it must be passed).
pub fn command(program: &Command, control: RawFd, report: RawFd) -> anyhow::Result<Command> {
    let mut guard = Command::new(crate::fs::self_exe()?);
    guard
        .arg0(names::GUARD)
        .args(arguments(program, control, report));
    if let Some(dir) = program.get_current_dir() {
        guard.current_dir(dir);
    }
    Ok(guard)
}

/// The guard's arguments after `argv[0]`, for `program`.
fn arguments(program: &Command, control: RawFd, report: RawFd) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![control.to_string().into(), report.to_string().into()];
    for (key, value) in program.get_envs() {
        match value {
            Some(value) => {
                let mut pair = key.to_owned();
                pair.push("=");
                pair.push(value);
                args.extend(["--env".into(), pair]);
            }
            None => args.extend(["--unset".into(), key.to_owned()]),
        }
    }
    args.push("--".into());
    args.push(program.get_program().to_owned());
    args.extend(program.get_args().map(OsStr::to_owned));
    args
}

/// The guard's command line, read back.
#[derive(Debug, PartialEq, Eq)]
struct Spec {
    control: RawFd,
    report: RawFd,
    env: Vec<(OsString, Option<OsString>)>,
    program: OsString,
    args: Vec<OsString>,
}

impl Spec {
    fn parse(args: impl IntoIterator<Item = OsString>) -> Option<Spec> {
        let mut args = args.into_iter();
        let fd = |a: Option<OsString>| a?.to_str()?.parse().ok();
        let (control, report) = (fd(args.next())?, fd(args.next())?);
        let mut env = Vec::new();
        loop {
            let flag = args.next()?;
            match flag.to_str()? {
                "--env" => {
                    let pair = args.next()?.into_vec();
                    let at = pair.iter().position(|b| *b == b'=')?;
                    let value = OsStr::from_bytes(&pair[at + 1..]).to_owned();
                    env.push((OsStr::from_bytes(&pair[..at]).to_owned(), Some(value)));
                }
                "--unset" => env.push((args.next()?, None)),
                "--" => break,
                _ => return None,
            }
        }
        Some(Spec {
            control,
            report,
            env,
            program: args.next()?,
            args: args.collect(),
        })
    }

    /// The program's command, as the watcher built it.
    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        for (key, value) in &self.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        command
    }
}

pub fn main() -> i32 {
    let Some(spec) = Spec::parse(std::env::args_os().skip(1)) else {
        eprintln!("{}: runs under `cargo dyndev watch` only", names::GUARD);
        return 2;
    };
    match guard(&spec) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{}: {e}", names::GUARD);
            1
        }
    }
}

/// Starts the program, reports, and waits for the order to stop, or for
/// the watcher's end; then stops everything below this process.
fn guard(spec: &Spec) -> std::io::Result<()> {
    let mut control = File::from(process::inherited_fd(spec.control)?);
    let mut report = File::from(process::inherited_fd(spec.report)?);
    // Children's ends and signals to stop come in on a descriptor, read
    // in the same loop as the watcher's orders.
    let signals =
        process::Signals::block(&[libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP])?;
    // Where the kernel refuses, a process whose parent ends is init's and
    // out of reach, unless it was found while its parent still ran.
    let _ = process::become_subreaper();

    let mut command = spec.command();
    // A group of its own, which the watcher hands the terminal.
    command.process_group(0);
    // Should this process be killed: spawned from its only thread.
    process::set_parent_death_signal(&mut command);
    signals.unblock_in(&mut command);
    let program = match command.spawn() {
        // Reaped below, with every other child.
        Ok(child) => child.id(),
        Err(e) => {
            let _ = report.write_all(Report::Failed(e.to_string()).line().as_bytes());
            return Ok(());
        }
    };
    let _ = report.write_all(Report::Started(program).line().as_bytes());
    let mut reap = || {
        for (pid, status) in process::reap_children() {
            if pid == program {
                let _ = report.write_all(Report::Exited(status.into_raw()).line().as_bytes());
            }
        }
    };

    // Zero: kill them all at once, as when the watcher is gone.
    let mut received = Vec::new();
    let grace = 'wait: loop {
        let Ok([orders, signalled]) = process::wait_readable([control.as_fd(), signals.as_fd()])
        else {
            break Duration::ZERO;
        };
        if signalled && signals.take().iter().any(|s| *s != libc::SIGCHLD) {
            break Duration::ZERO;
        }
        reap();
        if orders {
            let mut buf = [0u8; 64];
            match control.read(&mut buf) {
                // The watcher is gone without a word.
                Ok(0) | Err(_) => break Duration::ZERO,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
            while let Some(end) = received.iter().position(|b| *b == b'\n') {
                if let Some(grace) = parse_stop_order(&received[..end]) {
                    break 'wait grace;
                }
                received.drain(..=end);
            }
        }
    };
    process::stop_descendants(std::process::id(), program, grace, &mut reap);
    reap();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_the_program_it_was_given() {
        let mut program = Command::new("/bin/app");
        program
            .args(["--level", "a b", "--", "--env"])
            .env("LEVEL", "x=1\ny")
            .env_remove("RUSTC_WORKSPACE_WRAPPER");
        let spec = Spec::parse(arguments(&program, 3, 4)).unwrap();
        assert_eq!(
            spec,
            Spec {
                control: 3,
                report: 4,
                env: vec![
                    ("LEVEL".into(), Some("x=1\ny".into())),
                    ("RUSTC_WORKSPACE_WRAPPER".into(), None),
                ],
                program: "/bin/app".into(),
                args: ["--level", "a b", "--", "--env"]
                    .map(OsString::from)
                    .to_vec(),
            }
        );
        let again = spec.command();
        assert_eq!(again.get_program(), program.get_program());
        assert!(again.get_args().eq(program.get_args()));
        assert!(again.get_envs().eq(program.get_envs()));
        assert_eq!(
            Spec::parse(["3".into(), "4".into(), "/bin/app".into()]),
            None
        );
    }

    #[test]
    fn reports_and_orders_read_back() {
        for report in [
            Report::Started(42),
            Report::Failed("No such file or directory (os error 2)".into()),
            Report::Exited(9),
        ] {
            assert_eq!(Report::parse(&report.line()), Some(report));
        }
        let order = stop_order(Duration::from_millis(2500));
        assert_eq!(
            parse_stop_order(order.trim_end().as_bytes()),
            Some(Duration::from_millis(2500))
        );
    }
}
