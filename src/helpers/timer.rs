//! The rustc timer: this executable as `dyndev-rustc-timer`, which
//! `compare` installs as `RUSTC_WRAPPER`. It logs how long each compilation
//! takes, so a crate's compile time without its link can be read off.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::measure::append_json_line;

pub const NAME: &str = "dyndev-rustc-timer";

pub mod env {
    /// Where compile records are appended, one JSON line each.
    pub const RUSTC_LOG: &str = "__CARGO_DYNDEV_RUSTC_LOG";
}

/// One compilation, as logged by the timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompileRecord {
    pub crate_name: String,
    /// `CARGO_PKG_NAME` of the unit.
    pub package: String,
    /// Wall time of rustc, its link included.
    pub millis: u64,
}

/// The rustc timer's entry point: `argv[1]` is the compiler (or the next
/// wrapper). Returns the exit code.
pub fn main() -> i32 {
    let mut argv = std::env::args_os().skip(1);
    let Some(program) = argv.next() else {
        eprintln!("error: cargo-dyndev's rustc timer expects the compiler as its first argument");
        return crate::error::code::FAILURE;
    };
    let args: Vec<OsString> = argv.collect();
    let text: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let inv = crate::rustc_args::Invocation::parse(text);
    let start = Instant::now();
    let status = match Command::new(&program).args(&args).status() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: failed to run `{}`: {e}", program.to_string_lossy());
            return crate::error::code::FAILURE;
        }
    };
    if let (Ok(log), Some(name)) = (std::env::var(env::RUSTC_LOG), inv.crate_name.clone())
        && inv.links()
    {
        let record = CompileRecord {
            crate_name: name,
            package: std::env::var("CARGO_PKG_NAME").unwrap_or_default(),
            millis: start.elapsed().as_millis() as u64,
        };
        if let Err(e) = append_json_line(Path::new(&log), &record) {
            eprintln!("warning: {e:#}");
        }
    }
    crate::cargo::exit_code(status)
}
