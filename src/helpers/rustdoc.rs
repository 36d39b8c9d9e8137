//! The rustdoc recorder: this executable as `dyndev-rustdoc`, cargo's
//! rustdoc while `cargo dyndev test` builds. Cargo runs the doctests of
//! each library as `rustdoc --test ...` once everything they need is
//! built; the recorder writes each such command down (its arguments,
//! environment and working directory, in cargo's order) and runs nothing,
//! so the doctests' units go through dyndev's build like every other
//! unit, and the driver runs the doctests afterwards, exactly as cargo
//! would have ([`crate::doctest`]). Any other rustdoc command goes to the
//! real rustdoc.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::contract::env;
use crate::doctest::Recorded;

/// The proxy's entry point. Returns the exit code.
pub fn main() -> i32 {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: cargo-dyndev's rustdoc recorder failed: {e:#}");
            crate::error::code::FAILURE
        }
    }
}

fn run() -> Result<i32> {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if let Some(dir) = std::env::var_os(env::DOCTEST_RECORD)
        && args.iter().any(|a| a == "--test")
    {
        let recorded = Recorded {
            args,
            env: std::env::vars_os()
                .map(|(k, v)| {
                    (
                        k.to_string_lossy().into_owned(),
                        v.to_string_lossy().into_owned(),
                    )
                })
                .collect(),
            cwd: std::env::current_dir().context("failed to read the working directory")?,
        };
        recorded.write(Path::new(&dir))?;
        return Ok(0);
    }
    let real = std::env::var_os(env::REAL_RUSTDOC).unwrap_or_else(|| "rustdoc".into());
    let mut cmd = Command::new(&real);
    cmd.args(&args);
    let shown = real.to_string_lossy().into_owned();
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let err = cmd.exec();
        Err(err).with_context(|| format!("failed to run `{shown}`"))
    }
    #[cfg(not(unix))]
    {
        let status = cmd
            .status()
            .with_context(|| format!("failed to run `{shown}`"))?;
        Ok(crate::cargo::exit_code(status))
    }
}
