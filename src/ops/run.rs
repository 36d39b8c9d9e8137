//! `cargo dyndev run`: choose the executable as `cargo run` would, build it
//! against the bundle, and replace this process with it, in the
//! environment `cargo run` gives a program.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cargo_metadata::{Package, TargetKind};

use crate::cli::{ExecutableArgs, PackageArgs, RunArgs};
use crate::error::Failure;
use crate::layout::Layout;
use crate::ops::build::{BuildRequest, Outcome, build};
use crate::program_env;
use crate::shell::Shell;
use crate::workspace::Workspace;

/// What to run, before building.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runnable {
    Bin(String),
    Example(String),
    /// A bare `--bin` or `--example`: cargo lists what there is.
    List(&'static str),
}

pub fn exec(shell: &Shell, args: &RunArgs) -> Result<()> {
    let ws = Workspace::load(shell, &args.compile)?;
    let selected = select(&ws, args)?;
    let req = selected.request(shell, &ws, args);
    let outcome = build(&req)?;
    let program = program(&ws, args, &selected, &outcome, &req.layout)?;
    shell.status("Running", format_args!("`{}`", program.display()));
    exec_replace(program.command, &program.exe)
}

/// The executable `run` is about, and the cargo arguments that build it.
#[derive(Debug, Clone)]
pub struct Selected {
    kind: TargetKind,
    name: String,
    cargo_args: Vec<String>,
}

/// Chooses the executable as `cargo run` would, before building.
pub fn select(ws: &Workspace, args: &RunArgs) -> Result<Selected> {
    let packages = args.executable.packages();
    let runnable = choose(ws, &packages, &args.executable)?;

    let mut cargo_args = Vec::new();
    packages.push_cargo_args(&mut cargo_args);
    args.features.push_cargo_args(&mut cargo_args);
    args.compile.push_build_args(&mut cargo_args);
    if args.keep_going {
        cargo_args.push("--keep-going".into());
    }
    args.global.push_cargo_args(&mut cargo_args);
    let (kind, name) = match &runnable {
        Runnable::Bin(n) => (TargetKind::Bin, n.as_str()),
        Runnable::Example(n) => (TargetKind::Example, n.as_str()),
        Runnable::List(flag) => {
            // Cargo prints the available targets and fails.
            cargo_args.push((*flag).to_owned());
            (TargetKind::Bin, "")
        }
    };
    if !name.is_empty() {
        let flag = if kind == TargetKind::Bin {
            "--bin"
        } else {
            "--example"
        };
        cargo_args.push(format!("{flag}={name}"));
    }
    Ok(Selected {
        kind,
        name: name.to_owned(),
        cargo_args,
    })
}

impl Selected {
    /// The build that makes the executable.
    pub fn request<'a>(
        &self,
        shell: &'a Shell,
        ws: &'a Workspace,
        args: &'a RunArgs,
    ) -> BuildRequest<'a> {
        BuildRequest::new(
            shell,
            ws,
            "build",
            self.cargo_args.clone(),
            &args.features,
            &args.compile,
        )
    }
}

/// A built program, ready to start as `cargo run` would start it.
#[derive(Debug)]
pub struct Program {
    pub exe: PathBuf,
    pub args: Vec<OsString>,
    /// The executable with its arguments and `cargo run`'s environment.
    pub command: std::process::Command,
}

impl Program {
    /// The command line, relative to the working directory, for messages.
    pub fn display(&self) -> String {
        let cwd = std::env::current_dir().unwrap_or_default();
        display_command(&self.exe, &self.args, &cwd)
    }
}

/// The selected executable of a finished build, in the environment
/// `cargo run` gives it.
pub fn program(
    ws: &Workspace,
    args: &RunArgs,
    selected: &Selected,
    outcome: &Outcome,
    layout: &Layout,
) -> Result<Program> {
    let (kind, name) = (&selected.kind, selected.name.as_str());
    let artifact = outcome
        .artifacts
        .iter()
        .find(|a| a.executable.is_some() && a.target.name == name && a.target.kind.contains(kind))
        .context("cargo built no executable for the selected target")?;
    let exe = artifact
        .executable
        .as_ref()
        .map(|p| p.clone().into_std_path_buf())
        .context("artifact without an executable")?;
    let package = ws
        .metadata
        .packages
        .iter()
        .find(|p| p.id == artifact.package_id)
        .context("the executable's package is not in the workspace")?;

    let cwd = std::env::current_dir().unwrap_or_default();
    let mut command = std::process::Command::new(&exe);
    command.args(&args.args);
    let env = program_env::cargo_env(
        package,
        &outcome.build_scripts,
        layout,
        outcome.bundle.as_ref().map(|b| b.sysroot_lib.as_path()),
    );
    for (key, value) in program_env::with_config_env(env, &cwd, &args.compile.config)? {
        command.env(key, value);
    }
    Ok(Program {
        exe,
        args: args.args.clone(),
        command,
    })
}

/// Picks the target the way `cargo run` does: `--bin`/`--example` when
/// given, else the selected package's `default-run`, else its only binary.
pub fn choose(ws: &Workspace, packages: &PackageArgs, exe: &ExecutableArgs) -> Result<Runnable> {
    match (exe.bin.as_deref(), exe.example.as_deref()) {
        (Some(""), _) => return Ok(Runnable::List("--bin")),
        (_, Some("")) => return Ok(Runnable::List("--example")),
        (Some(b), _) => return Ok(Runnable::Bin(b.to_owned())),
        (_, Some(e)) => return Ok(Runnable::Example(e.to_owned())),
        (None, None) => {}
    }
    let selected = ws.select(packages)?;
    let default_runs: Vec<&str> = selected
        .iter()
        .filter_map(|p| p.default_run.as_deref())
        .collect();
    if let [only] = default_runs[..] {
        return Ok(Runnable::Bin(only.to_owned()));
    }
    let mut bins: Vec<&str> = selected
        .iter()
        .flat_map(|p: &&Package| &p.targets)
        .filter(|t| t.is_bin())
        .map(|t| t.name.as_str())
        .collect();
    bins.sort_unstable();
    match bins[..] {
        [] => Err(Failure::Selection(
            "a bin target must be available for `cargo dyndev run`".into(),
        )
        .into()),
        [only] => Ok(Runnable::Bin(only.to_owned())),
        _ => Err(Failure::Selection(format!(
            "`cargo dyndev run` could not determine which binary to run. Use the `--bin` \
             option to specify a binary, or the `default-run` manifest key.\n\
             available binaries: {}",
            bins.join(", ")
        ))
        .into()),
    }
}

fn display_command(exe: &Path, args: &[OsString], cwd: &Path) -> String {
    let shown = exe.strip_prefix(cwd).unwrap_or(exe);
    crate::shell::command_line(
        std::iter::once(shown.as_os_str()).chain(args.iter().map(|a| a.as_os_str())),
    )
}

/// Becomes the program, so its exit status, signals, stdin and stdout are
/// exactly its own.
#[cfg(unix)]
fn exec_replace(mut command: std::process::Command, exe: &Path) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let err = command.exec();
    Err(err).with_context(|| format!("failed to run `{}`", exe.display()))
}

#[cfg(not(unix))]
fn exec_replace(mut command: std::process::Command, exe: &Path) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("failed to run `{}`", exe.display()))?;
    std::process::exit(crate::cargo::exit_code(status));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_command_relative_to_the_working_directory() {
        let s = display_command(
            Path::new("/w/target/dyndev/debug/game"),
            &["--level".into(), "two words".into()],
            Path::new("/w"),
        );
        assert_eq!(s, "target/dyndev/debug/game --level 'two words'");
    }
}
