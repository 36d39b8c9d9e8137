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
    let mut argv = std::env::args_os().skip(1).peekable();
    // Also the workspace wrapper of `compare`'s static builds (its path
    // keeps their units apart from the user's in a shared build dir):
    // cargo runs `timer timer rustc ...`, timed once. The user's own
    // workspace wrapper, if any, runs inside.
    let nested = argv
        .peek()
        .is_some_and(|p| Path::new(p).file_name() == Some(crate::contract::names::TIMER.as_ref()));
    if nested {
        argv.next();
    }
    let Some(mut program) = argv.next() else {
        eprintln!("error: cargo-dyndev's rustc timer expects the compiler as its first argument");
        return crate::error::code::FAILURE;
    };
    let mut args: Vec<OsString> = argv.collect();
    let text: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let inv = crate::rustc_args::Invocation::parse(text);
    if let Some(proxy) = std::env::var_os(env::TIMER_LINKER)
        && inv.crate_name.is_some()
    {
        args = with_linker(args, &proxy);
    }
    if let Some(inner) = std::env::var_os(env::INNER_WRAPPER).filter(|w| nested && !w.is_empty()) {
        args.insert(0, std::mem::replace(&mut program, inner));
    }
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

/// `args` with `-C linker=proxy` in place of any linker they name (the
/// proxy runs that one: `compare` hands it over).
fn with_linker(args: Vec<OsString>, proxy: &std::ffi::OsStr) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len() + 2);
    let mut args = args.into_iter().peekable();
    while let Some(a) = args.next() {
        let text = a.to_string_lossy();
        if text == "-C"
            && args
                .peek()
                .is_some_and(|v| v.to_string_lossy().starts_with("linker="))
        {
            args.next();
            continue;
        }
        if text.starts_with("-Clinker=") {
            continue;
        }
        out.push(a);
    }
    let mut linker = OsString::from("linker=");
    linker.push(proxy);
    out.extend([OsString::from("-C"), linker]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_takes_the_place_of_any_linker() {
        let args = |s: &str| s.split(' ').map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            with_linker(
                args("--crate-name a -C linker=clang -C opt-level=0 -Clinker=cc"),
                "/p".as_ref()
            ),
            args("--crate-name a -C opt-level=0 -C linker=/p")
        );
    }
}
