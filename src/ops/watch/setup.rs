//! What watch sets up around its builds: the environment that puts its
//! capture wrapper under cargo, the command `watch test` runs after each
//! build, copies of a program's command, and the unit a restart must
//! compile again.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::TestArgs;

/// Makes cargo compile the executable `exe` again on the next build: the
/// unit's own output in the build dir (`exe` is cargo's hard link to it)
/// removed, which cargo takes for a stale unit. Nothing of the user's own
/// builds, which share the build dir, is touched. Whether there was one.
pub(super) fn forget_program(deps_dir: &Path, exe: &std::ffi::OsStr) -> bool {
    let exe = Path::new(exe);
    let Some(name) = exe.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let Ok(entries) = std::fs::read_dir(deps_dir) else {
        return false;
    };
    // The unit's file is named after the crate: `my_app-<hash>` for `my-app`.
    let stem = format!("{}-", name.replace('-', "_"));
    entries.flatten().any(|e| {
        e.file_name().to_str().is_some_and(|n| n.starts_with(&stem))
            && crate::fs::same_inode(&e.path(), exe)
            && std::fs::remove_file(e.path()).is_ok()
    })
}

/// Makes `capture` the innermost rustc wrapper of this process's builds
/// (dyndev's wrapper runs it, and it runs the user's own wrapper, if any),
/// writing into `dir`.
#[allow(unsafe_code)]
pub(super) fn install_capture(capture: &Path, dir: &Path, hot_link: Option<(PathBuf, PathBuf)>) {
    let user = std::env::var_os("RUSTC_WORKSPACE_WRAPPER").filter(|w| {
        !w.is_empty()
            && Path::new(w).file_name()
                != Some(std::ffi::OsStr::new(crate::contract::names::WRAPPER))
    });
    // SAFETY: called before this process starts any thread (the signal
    // and file watcher threads come later), so nothing reads the
    // environment concurrently.
    unsafe {
        if let Some(user) = user {
            std::env::set_var(crate::contract::env::CAPTURE_INNER, user);
        }
        std::env::set_var("RUSTC_WORKSPACE_WRAPPER", capture);
        std::env::set_var(crate::contract::env::CAPTURE_DIR, dir);
        if let Some((linker, keep)) = hot_link {
            std::env::set_var(crate::contract::env::HOT_LINKER, linker);
            std::env::set_var(crate::contract::env::HOT_KEEP, keep);
        }
    }
}

/// A copy of a command: program, arguments, environment, directory.
pub(super) fn clone_command(c: &Command) -> Command {
    let mut copy = Command::new(c.get_program());
    copy.args(c.get_args());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => copy.env(k, v),
            None => copy.env_remove(k),
        };
    }
    if let Some(dir) = c.get_current_dir() {
        copy.current_dir(dir);
    }
    copy
}

/// The cargo arguments that select what `watch test` builds, as
/// `cargo dyndev test` selects it.
pub(super) fn test_selection(args: &TestArgs) -> Vec<String> {
    let mut selection = Vec::new();
    args.packages.push_cargo_args(&mut selection);
    args.push_target_args(&mut selection);
    args.features.push_cargo_args(&mut selection);
    args.compile.push_build_args(&mut selection);
    args.global.push_cargo_args(&mut selection);
    selection
}

/// `cargo-dyndev dyndev test ...` with the arguments `watch test` got.
pub(super) fn test_command(args: &TestArgs) -> Vec<OsString> {
    let mut out: Vec<OsString> = vec!["dyndev".into(), "test".into()];
    out.extend(test_selection(args).into_iter().map(OsString::from));
    if let Some(dir) = &args.compile.target_dir {
        out.push("--target-dir".into());
        out.push(dir.into());
    }
    if args.doc {
        out.push("--doc".into());
    }
    if args.no_fail_fast {
        out.push("--no-fail-fast".into());
    }
    if args.no_run {
        out.push("--no-run".into());
    }
    if let Some(filter) = &args.filter {
        out.push(filter.into());
    }
    if !args.args.is_empty() {
        out.push("--".into());
        out.extend(args.args.iter().cloned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::WatchMode;
    use clap::Parser;

    #[test]
    fn watch_test_passes_its_arguments_to_the_tests() {
        let crate::cli::Cli::Dyndev(d) = crate::cli::Cli::try_parse_from([
            "cargo",
            "dyndev",
            "watch",
            "test",
            "-p",
            "core",
            "parse",
            "--no-fail-fast",
            "--target-dir",
            "t",
            "--",
            "--nocapture",
        ])
        .unwrap();
        let crate::cli::Command::Watch(w) = d.command else {
            panic!("not watch")
        };
        let Some(WatchMode::Test(t)) = w.mode else {
            panic!("not test")
        };
        assert_eq!(
            test_command(&t.test),
            [
                "dyndev",
                "test",
                "--package",
                "core",
                "--target-dir",
                "t",
                "--no-fail-fast",
                "parse",
                "--",
                "--nocapture"
            ]
        );
    }
}
