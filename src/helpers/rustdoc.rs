//! The rustdoc proxy: this executable as `dyndev-rustdoc`, cargo's rustdoc
//! under `cargo dyndev test`. Cargo runs doctests through rustdoc, which
//! needs the wrapped build's environment to find the members fresh, and
//! hands that environment to every doctest it runs. The proxy puts back the
//! environment the user had and runs the real rustdoc, whose doctests then
//! see what `cargo test` gives them.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{Context, Result};

pub const NAME: &str = "dyndev-rustdoc";

pub mod env {
    /// The rustdoc to run.
    pub const REAL_RUSTDOC: &str = "__CARGO_DYNDEV_REAL_RUSTDOC";
    /// The user's values of the variables dyndev changed for cargo, as a
    /// JSON object (`null`: unset).
    pub const RESTORE: &str = "__CARGO_DYNDEV_RESTORE";
}

/// The variables a driver sets that no program of the user's should see.
fn is_dyndev_var(key: &str) -> bool {
    key.starts_with("__CARGO_DYNDEV_") || key.starts_with("CARGO_DYNDEV_")
}

/// The user's values of `keys`, to hand the proxy in [`env::RESTORE`].
pub fn restore_value<'a>(keys: impl IntoIterator<Item = &'a str>) -> String {
    let map: BTreeMap<&str, Option<String>> = keys
        .into_iter()
        .map(|k| {
            (
                k,
                std::env::var_os(k).map(|v| v.to_string_lossy().into_owned()),
            )
        })
        .collect();
    serde_json::to_string(&map).unwrap_or_default()
}

/// The proxy's entry point. Returns the exit code.
pub fn main() -> i32 {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: cargo-dyndev's rustdoc proxy failed: {e:#}");
            crate::error::code::FAILURE
        }
    }
}

fn run() -> Result<i32> {
    let real = std::env::var_os(env::REAL_RUSTDOC).unwrap_or_else(|| "rustdoc".into());
    let restore: BTreeMap<String, Option<String>> =
        serde_json::from_str(&std::env::var(env::RESTORE).unwrap_or_default()).unwrap_or_default();
    let mut cmd = Command::new(&real);
    cmd.args(std::env::args_os().skip(1));
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(is_dyndev_var) {
            cmd.env_remove(key);
        }
    }
    for (key, value) in restore {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dyndevs_own_variables_are_taken_away() {
        assert!(is_dyndev_var("__CARGO_DYNDEV_STATE"));
        assert!(is_dyndev_var("CARGO_DYNDEV_BUNDLE"));
        assert!(!is_dyndev_var("CARGO_PKG_NAME"));
        assert!(!is_dyndev_var("RUSTC_WORKSPACE_WRAPPER"));
    }
}
