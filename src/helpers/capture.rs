//! The command capture: this executable as `dyndev-rustc-capture`, the
//! innermost rustc wrapper under `cargo dyndev watch` (inside dyndev's own,
//! so it sees the final command line). It records each member's rustc
//! command, environment and working directory, then becomes rustc; watch's
//! fast path replays them ([`crate::ops::watch::replay`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::contract::env;
use crate::rustc_args::Invocation;

/// A rustc command as it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capture {
    /// The program and its leading arguments: rustc, or the user's
    /// wrapper and rustc.
    pub program: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

impl Capture {
    pub(crate) fn invocation(&self) -> Invocation {
        Invocation::parse(self.args.clone())
    }

    pub(crate) fn read(dir: &Path, stem: &str) -> Option<Capture> {
        let text = std::fs::read_to_string(dir.join(format!("{stem}.json"))).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The same compile as dyndev's wrapper received it
    /// ([`record_wrapped`]), to run again through the wrapper.
    pub(crate) fn read_wrapped(dir: &Path, stem: &str) -> Option<Capture> {
        let text = std::fs::read_to_string(dir.join(format!("{stem}.wrapped.json"))).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// Records a member compile as dyndev's wrapper received it (`argv`: the
/// wrapper, rustc, the arguments), with the wrapper's environment and
/// working directory: what watch's fast path runs again, so that the
/// compile goes through the wrapper's decisions (the bundle, the cutoff)
/// as under cargo.
pub fn record_wrapped(dir: &Path, stem: &str, argv: &[std::ffi::OsString]) {
    let text = |a: &std::ffi::OsString| a.to_string_lossy().into_owned();
    if argv.len() < 2 {
        return;
    }
    let capture = Capture {
        // The wrapper and rustc: the arguments alone are rustc's.
        program: argv[..2].iter().map(text).collect(),
        args: argv[2..].iter().map(text).collect(),
        env: std::env::vars_os()
            .map(|(k, v)| (k.to_string_lossy().into(), v.to_string_lossy().into()))
            .collect(),
        cwd: std::env::current_dir().unwrap_or_default(),
    };
    if let Ok(json) = serde_json::to_vec(&capture) {
        let _ = crate::fs::create_dir_all(dir).and_then(|()| {
            crate::fs::write_atomic(&dir.join(format!("{stem}.wrapped.json")), &json)
        });
    }
}

/// `dyndev-rustc-capture RUSTC ARGS...`: records the command when it
/// compiles a unit, then becomes it.
pub fn main() -> i32 {
    use std::os::unix::process::CommandExt;
    let argv: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let Some((rustc, args)) = argv.split_first() else {
        eprintln!("error: cargo-dyndev's rustc capture expects the compiler as its first argument");
        return crate::error::code::FAILURE;
    };
    let mut program: Vec<String> = Vec::new();
    if let Some(inner) = std::env::var_os(env::CAPTURE_INNER).filter(|w| !w.is_empty()) {
        program.push(inner.to_string_lossy().into_owned());
    }
    program.push(rustc.clone());
    let mut inv = Invocation::parse(args.to_vec());
    let mut extra_env = Vec::new();
    if let (Some(proxy), Some(keep), true) = (
        std::env::var(env::HOT_LINKER).ok(),
        std::env::var(env::HOT_KEEP).ok(),
        inv.links() && inv.crate_types.iter().any(|t| t == "bin"),
    ) {
        let (args, env) = crate::kept::through_proxy(&inv, &proxy, &keep);
        inv = Invocation::parse(args);
        extra_env = env;
    }
    // A library the cutoff compiles into a stage is replayed into cargo's
    // out dir: a replay goes around the cutoff.
    let recorded = match std::env::var_os(env::CAPTURE_OUT_DIR) {
        Some(out) => inv
            .with_out_dir(Path::new(&out))
            .unwrap_or_else(|| inv.args.clone()),
        None => inv.args.clone(),
    };
    let args = &inv.args;
    if let (Some(dir), Some(stem), true) = (
        std::env::var_os(env::CAPTURE_DIR),
        inv.unit_stem(),
        inv.out_dir.is_some() && inv.emit.iter().any(|e| e == "link") && !inv.print,
    ) {
        let capture = Capture {
            program: program.clone(),
            args: recorded,
            env: std::env::vars_os()
                .map(|(k, v)| (k.to_string_lossy().into(), v.to_string_lossy().into()))
                .filter(|(k, _): &(String, String)| extra_env.iter().all(|(e, _)| e != k))
                .filter(|(k, _)| k != env::CAPTURE_OUT_DIR)
                .chain(extra_env.iter().cloned())
                .collect(),
            cwd: std::env::current_dir().unwrap_or_default(),
        };
        let path = Path::new(&dir).join(format!("{stem}.json"));
        if let Ok(json) = serde_json::to_vec(&capture) {
            let _ = crate::fs::create_dir_all(Path::new(&dir))
                .and_then(|()| crate::fs::write_atomic(&path, &json));
        }
    }
    let err = Command::new(&program[0])
        .args(&program[1..])
        .args(args)
        .envs(extra_env)
        .exec();
    eprintln!("error: failed to run `{}`: {err}", program[0]);
    crate::error::code::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(args: &str) -> Invocation {
        Invocation::parse(args.split(' ').map(str::to_owned).collect())
    }

    #[test]
    fn executables_link_through_the_proxy_with_the_linker_they_chose() {
        let (args, env) = crate::kept::through_proxy(
            &inv("--crate-name app --crate-type bin -C linker=clang"),
            "/p/dyndev-linker",
            "/k",
        );
        assert_eq!(args[args.len() - 2..], ["-C", "linker=/p/dyndev-linker"]);
        assert_eq!(
            env,
            [
                ("__CARGO_DYNDEV_KEEP_LINK".to_owned(), "/k".to_owned()),
                ("__CARGO_DYNDEV_REAL_LINKER".to_owned(), "clang".to_owned()),
            ]
        );
        // A command that already links through it (a replay) is kept.
        let replayed = inv("--crate-name app --crate-type bin -C linker=/p/dyndev-linker");
        let (again, env) = crate::kept::through_proxy(&replayed, "/p/dyndev-linker", "/k");
        assert_eq!(again, replayed.args);
        assert_eq!(env.len(), 1);
    }
}
