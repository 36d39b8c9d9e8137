//! Driving cargo as a subprocess: one builder for every cargo command, run
//! with cargo's own diagnostics on the user's terminal and its JSON
//! messages read from stdout.

use std::ffi::{OsStr, OsString};
use std::io::BufReader;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{Context, Result};
use cargo_metadata::Message;

use crate::error::Failure;
use crate::shell::Shell;

/// `$CARGO` as cargo sets it for subcommands, else `cargo` on `PATH`.
pub fn cargo_program() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

#[derive(Debug, Clone)]
pub struct CargoCommand {
    args: Vec<OsString>,
    envs: Vec<(OsString, Option<OsString>)>,
    cwd: Option<PathBuf>,
}

impl CargoCommand {
    pub fn new(subcommand: &str) -> CargoCommand {
        CargoCommand {
            args: vec![subcommand.into()],
            envs: Vec::new(),
            cwd: None,
        }
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self.arg(a);
        }
        self
    }

    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.envs
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// The variables this command sets or removes.
    pub fn changed_vars(&self) -> impl Iterator<Item = &OsStr> {
        self.envs.iter().map(|(k, _)| k.as_os_str())
    }

    /// The command as a user would type it, for `-v`.
    pub fn display(&self) -> String {
        crate::shell::command_line(
            std::iter::once(std::ffi::OsStr::new("cargo"))
                .chain(self.args.iter().map(|a| a.as_os_str())),
        )
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(cargo_program());
        cmd.args(&self.args);
        for (k, v) in &self.envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd
    }

    fn spawn_error(&self) -> String {
        format!(
            "failed to run `{}`; is cargo installed and on PATH?",
            self.display()
        )
    }

    /// Runs with stdout captured, stderr on the terminal; a failure becomes
    /// [`Failure::Cargo`], since cargo already said why.
    pub fn output(&self, shell: &Shell) -> Result<Vec<u8>> {
        shell.verbose_status("Running", format_args!("`{}`", self.display()));
        let out = self
            .command()
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| self.spawn_error())?;
        if !out.status.success() {
            return Err(Failure::Cargo {
                code: exit_code(out.status),
            }
            .into());
        }
        Ok(out.stdout)
    }

    /// Runs with stdout and stderr captured: stdout when cargo succeeded,
    /// else nothing (a first attempt whose failure is not the user's).
    pub fn output_quietly(&self) -> Option<Vec<u8>> {
        let out = self
            .command()
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status.success().then_some(out.stdout)
    }

    /// Runs to completion on the user's terminal.
    pub fn status(&self, shell: &Shell) -> Result<ExitStatus> {
        shell.verbose_status("Running", format_args!("`{}`", self.display()));
        self.command().status().with_context(|| self.spawn_error())
    }

    /// Runs a build with `--message-format=json-render-diagnostics`: cargo
    /// renders diagnostics on the terminal itself, and each JSON message is
    /// handed to `on_message`. Returns cargo's exit status.
    pub fn stream_messages(
        &self,
        shell: &Shell,
        mut on_message: impl FnMut(Message),
    ) -> Result<ExitStatus> {
        shell.verbose_status("Running", format_args!("`{}`", self.display()));
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| self.spawn_error())?;
        let stdout = child
            .stdout
            .take()
            .context("cargo's stdout was not piped")?;
        for message in Message::parse_stream(BufReader::new(stdout)) {
            let message = message.context("failed to read cargo's JSON messages")?;
            on_message(message);
        }
        child.wait().with_context(|| self.spawn_error())
    }

    /// [`Self::stream_messages`] with cargo's stderr passed on line by
    /// line, but for the lines `hide` accepts. Cargo draws no progress bar
    /// on a pipe; give it `--color` to keep its colours.
    pub fn stream_messages_hiding(
        &self,
        shell: &Shell,
        hide: impl Fn(&str) -> bool + Send + 'static,
        mut on_message: impl FnMut(Message),
    ) -> Result<ExitStatus> {
        use std::io::{BufRead, Write};
        shell.verbose_status("Running", format_args!("`{}`", self.display()));
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| self.spawn_error())?;
        let stdout = child
            .stdout
            .take()
            .context("cargo's stdout was not piped")?;
        let stderr = child
            .stderr
            .take()
            .context("cargo's stderr was not piped")?;
        let passing = std::thread::spawn(move || {
            let mut from = BufReader::new(stderr);
            let mut to = std::io::stderr();
            let mut line = Vec::new();
            while from.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                if !hide(&String::from_utf8_lossy(&line)) {
                    let _ = to.write_all(&line);
                }
                line.clear();
            }
        });
        for message in Message::parse_stream(BufReader::new(stdout)) {
            let message = message.context("failed to read cargo's JSON messages")?;
            on_message(message);
        }
        let status = child.wait().with_context(|| self.spawn_error());
        let _ = passing.join();
        status
    }
}

/// `$RUSTC` as cargo would use it, else `rustc` on `PATH`.
pub fn rustc_program() -> OsString {
    std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into())
}

/// The host triple of a compiler, from `rustc -vV`.
pub fn host_triple(rustc: &OsStr) -> Result<String> {
    let shown = rustc.to_string_lossy();
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .with_context(|| format!("failed to run `{shown} -vV`"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .with_context(|| format!("`{shown} -vV` did not name its host"))
}

impl CargoCommand {}

/// The code to exit with for a finished process: its exit code, or 128 +
/// the signal that killed it, as a shell reports it.
pub fn exit_code(status: ExitStatus) -> i32 {
    if let Some(code) = status.code() {
        return code;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return 128 + signal;
        }
    }
    crate::error::code::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_arguments_with_spaces() {
        let mut c = CargoCommand::new("build");
        c.args(["--features", "a b", "-p", "x"]);
        assert_eq!(c.display(), "cargo build --features 'a b' -p x");
    }
}
