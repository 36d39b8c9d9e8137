//! The rustc timer: this executable as `dyndev-rustc-timer`, which
//! `compare` installs as `RUSTC_WRAPPER`. It logs how long each compilation
//! takes, so a crate's compile time without its link can be read off.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::contract::{CompileRecord, env};
use crate::measure::append_json_line;

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
