//! Doctests under `cargo dyndev test`. The build runs `cargo test --doc`
//! with the rustdoc recorder ([`crate::helpers::rustdoc`]) as cargo's
//! rustdoc, so the units doctests need are built like every other unit and
//! cargo writes down each doctest command in its own order, with its own
//! features and environment. The driver then runs those commands itself,
//! as cargo would have: linked against the bundle, with cargo's words and
//! exit codes, and nothing of dyndev's in the doctests' environment.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::shell::Verbosity;
use crate::state::BundleState;
use crate::test_binaries::{Outcome, RunOptions, report_failure, show_command};

/// One `rustdoc --test` command as cargo ran it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

impl Recorded {
    /// Writes the command into `dir`, named so that commands sort in the
    /// order cargo ran them (one at a time).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let json = serde_json::to_vec(self).context("failed to serialize a doctest command")?;
        crate::fs::write_atomic(
            &dir.join(format!("{stamp:024}-{}.json", std::process::id())),
            &json,
        )
    }

    /// Every command recorded in `dir`, in the order cargo ran them.
    pub fn read_all(dir: &Path) -> Result<Vec<Recorded>> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(Vec::new());
        };
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| {
                serde_json::from_slice(&crate::fs::read(p)?)
                    .with_context(|| format!("failed to parse `{}`", p.display()))
            })
            .collect()
    }

    fn var(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The library's target name, which cargo announces.
    pub fn crate_name(&self) -> &str {
        self.args
            .windows(2)
            .find(|w| w[0] == "--crate-name")
            .map_or("?", |w| w[1].as_str())
    }

    /// The package, for the rerun hint.
    pub fn package(&self) -> &str {
        self.var("CARGO_PKG_NAME")
            .unwrap_or_else(|| self.crate_name())
    }
}

/// What dyndev's build changed in the environment of the cargo that
/// recorded the commands, to be given back as the user has it.
#[derive(Debug, Clone, Default)]
pub struct Doctests {
    pub recorded: Vec<Recorded>,
    /// The variables the build set or removed for cargo.
    pub changed: Vec<String>,
}

/// The arguments that link a doctest against the bundle and find it at
/// run time, as the wrapper links an executable.
pub fn bundle_flags(bundle: &BundleState) -> Vec<String> {
    let mut flags = vec![
        "-L".into(),
        format!("dependency={}", bundle.dir.display()),
        "-C".into(),
        "prefer-dynamic".into(),
    ];
    for dir in [&bundle.dir, &bundle.sysroot_lib] {
        flags.extend([
            "-C".into(),
            format!("link-arg=-Wl,-rpath,{}", dir.display()),
        ]);
    }
    flags
}

/// The arguments cargo would have run rustdoc with: as recorded, but for
/// what the recording cargo was told for dyndev's sake (JSON messages, a
/// pipe for stderr), then the bundle's flags.
pub fn replay_args(recorded: &[String], color: &str, bundle: Option<&BundleState>) -> Vec<String> {
    let mut args = Vec::with_capacity(recorded.len() + 8);
    let mut it = recorded.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--error-format" => {
                let value = it.next().map_or("human", String::as_str);
                args.push(a.clone());
                args.push(if value == "json" { "human" } else { value }.to_owned());
            }
            "--color" => {
                it.next();
                args.extend([a.clone(), color.to_owned()]);
            }
            _ => args.push(a.clone()),
        }
    }
    if let Some(b) = bundle {
        args.extend(bundle_flags(b));
    }
    args
}

/// The environment a doctest command gets: what cargo gave it, less what
/// dyndev set for its own build, with the user's values back.
pub fn replay_env(recorded: &Recorded, changed: &[String]) -> BTreeMap<String, OsString> {
    let mut env: BTreeMap<String, OsString> = recorded
        .env
        .iter()
        .filter(|(k, _)| !crate::contract::env::is_dyndevs(k) && !changed.iter().any(|c| c == k))
        .map(|(k, v)| (k.clone(), OsString::from(v)))
        .collect();
    for key in changed
        .iter()
        .filter(|k| !crate::contract::env::is_dyndevs(k))
    {
        if let Some(value) = std::env::var_os(key) {
            env.insert(key.clone(), value);
        }
    }
    env
}

/// Runs the recorded doctests in order, as cargo runs them: `Doc-tests`,
/// the real rustdoc, cargo's report of a failure.
pub fn run(
    doctests: &Doctests,
    opts: &RunOptions<'_>,
    rustdoc: &OsString,
    color: &str,
    bundle: Option<&BundleState>,
) -> Result<Outcome> {
    let mut failed = Vec::new();
    for recorded in &doctests.recorded {
        opts.shell.status("Doc-tests", recorded.crate_name());
        let mut cmd = Command::new(rustdoc);
        cmd.args(replay_args(&recorded.args, color, bundle))
            .env_clear()
            .envs(replay_env(recorded, &doctests.changed))
            .current_dir(&recorded.cwd);
        let shown = show_command(&cmd);
        if opts.shell.verbosity() >= Verbosity::Verbose {
            opts.shell.status("Running", format_args!("`{shown}`"));
        }
        let status = cmd
            .status()
            .with_context(|| format!("could not execute process `{shown}`"))?;
        if status.success() {
            continue;
        }
        let hint = if opts.with_package {
            format!("-p {} --doc", recorded.package())
        } else {
            "--doc".to_owned()
        };
        report_failure(opts, "doctest failed", true, &hint, &shown, status);
        if !opts.no_fail_fast {
            return Ok(Outcome::Stopped(status.code().unwrap_or(101)));
        }
        failed.push(hint);
    }
    Ok(Outcome::Ran(failed))
}

/// The rustdoc cargo would run: `$RUSTDOC`, else `build.rustdoc`, else
/// `rustdoc`.
pub fn real_rustdoc(config: Option<&cargo_config2::Config>) -> OsString {
    std::env::var_os("RUSTDOC")
        .filter(|r| !r.is_empty())
        .filter(|r| {
            std::path::Path::new(r).file_name() != Some(crate::contract::names::RUSTDOC.as_ref())
        })
        .or_else(|| config?.build.rustdoc.clone().map(PathBuf::into_os_string))
        .unwrap_or_else(|| "rustdoc".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn replayed_commands_speak_to_the_terminal_and_link_the_bundle() {
        let bundle = BundleState {
            dir: "/s/b1".into(),
            sysroot_lib: "/sys/lib".into(),
            ..BundleState::default()
        };
        let recorded = s(&[
            "--edition=2021",
            "--crate-type",
            "lib",
            "--color",
            "never",
            "--crate-name",
            "core",
            "--test",
            "--cfg",
            "docsrs",
            "--error-format",
            "json",
        ]);
        assert_eq!(
            replay_args(&recorded, "always", Some(&bundle)).join(" "),
            "--edition=2021 --crate-type lib --color always --crate-name core --test \
             --cfg docsrs --error-format human -L dependency=/s/b1 -C prefer-dynamic \
             -C link-arg=-Wl,-rpath,/s/b1 -C link-arg=-Wl,-rpath,/sys/lib"
        );
        assert_eq!(
            replay_args(&s(&["--error-format", "short"]), "auto", None),
            s(&["--error-format", "short"])
        );
    }

    #[test]
    fn doctests_see_the_users_environment() {
        let recorded = Recorded {
            args: s(&["--crate-name", "core", "--test"]),
            env: vec![
                ("CARGO_PKG_NAME".into(), "core-lib".into()),
                ("__CARGO_DYNDEV_STATE".into(), "/s".into()),
                ("CARGO_DYNDEV_BUNDLE".into(), "b1".into()),
                ("RUSTC_WORKSPACE_WRAPPER".into(), "/s/bin/wrapper".into()),
            ],
            cwd: "/w".into(),
        };
        // Whatever the user had for the wrapper, if anything; never ours.
        let env = replay_env(&recorded, &s(&["RUSTC_WORKSPACE_WRAPPER"]));
        assert_eq!(env.get("CARGO_PKG_NAME").unwrap(), "core-lib");
        assert!(!env.keys().any(|k| k.contains("DYNDEV")));
        assert_ne!(
            env.get("RUSTC_WORKSPACE_WRAPPER").map(|v| v.as_os_str()),
            Some(std::ffi::OsStr::new("/s/bin/wrapper"))
        );
        assert_eq!(recorded.crate_name(), "core");
        assert_eq!(recorded.package(), "core-lib");
    }

    #[test]
    fn commands_read_back_in_the_order_they_ran() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["first", "second", "third"] {
            Recorded {
                args: s(&["--crate-name", name, "--test"]),
                env: Vec::new(),
                cwd: "/w".into(),
            }
            .write(dir.path())
            .unwrap();
        }
        let names: Vec<String> = Recorded::read_all(dir.path())
            .unwrap()
            .iter()
            .map(|r| r.crate_name().to_owned())
            .collect();
        assert_eq!(names, ["first", "second", "third"]);
    }
}
