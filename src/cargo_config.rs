//! The `[env]` table of cargo's configuration, read as cargo reads it, so
//! that `cargo dyndev run` gives the program the environment `cargo run`
//! would: config files from the working directory up (nearest wins), then
//! cargo's home, with `--config` values above all.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use toml_edit::{DocumentMut, Item, Value};

/// One `[env]` entry as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    value: String,
    force: bool,
    relative: bool,
    /// What a relative value is relative to: the directory holding the
    /// `.cargo` directory the file is in, or the working directory.
    root: PathBuf,
}

impl Entry {
    fn resolve(&self) -> OsString {
        if self.relative {
            self.root.join(&self.value).into_os_string()
        } else {
            OsString::from(&self.value)
        }
    }
}

/// Variables cargo refuses to take from `[env]`.
const DISALLOWED: &[&str] = &["CARGO_HOME", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN"];

/// The `[env]` variables to set for a program run from `cwd`, with the
/// given `--config` values: those not already in `existing`, and those
/// marked `force`.
pub fn env_table(
    cwd: &Path,
    cargo_home: Option<&Path>,
    cli: &[String],
    existing: impl Fn(&str) -> bool,
) -> Result<Vec<(String, OsString)>> {
    let mut merged: Vec<(String, Entry)> = Vec::new();
    let mut put = |key: String, entry: Entry| match merged.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = entry,
        None => merged.push((key, entry)),
    };

    // Lowest first: home, then the farthest ancestor down to the nearest.
    let mut files = Vec::new();
    let mut seen = Vec::new();
    for dir in cwd.ancestors() {
        let dot_cargo = dir.join(".cargo");
        if let Some(file) = config_file(&dot_cargo) {
            files.push(file);
        }
        seen.push(dot_cargo.canonicalize().unwrap_or(dot_cargo));
    }
    if let Some(home) = cargo_home {
        let canonical = home.canonicalize().unwrap_or_else(|_| home.to_owned());
        if !seen.contains(&canonical)
            && let Some(file) = config_file(home)
        {
            files.push(file);
        }
    }
    for file in files.iter().rev() {
        let text = crate::fs::read_to_string(file)?;
        let root = file
            .parent()
            .and_then(Path::parent)
            .unwrap_or(cwd)
            .to_owned();
        for (k, e) in entries(&text, &root).with_context(|| format!("in `{}`", file.display()))? {
            put(k, e);
        }
    }
    for value in cli {
        let path = cwd.join(value);
        let (text, root) = if value.ends_with(".toml") && path.is_file() {
            let root = path
                .parent()
                .and_then(Path::parent)
                .unwrap_or(cwd)
                .to_owned();
            (crate::fs::read_to_string(&path)?, root)
        } else {
            (value.clone(), cwd.to_owned())
        };
        for (k, e) in entries(&text, &root).with_context(|| format!("in `--config {value}`"))? {
            put(k, e);
        }
    }
    Ok(merged
        .into_iter()
        .filter(|(k, _)| !DISALLOWED.contains(&k.as_str()))
        .filter(|(k, e)| e.force || !existing(k))
        .map(|(k, e)| (k, e.resolve()))
        .collect())
}

/// `dir/config`, else `dir/config.toml`, as cargo looks them up.
fn config_file(dir: &Path) -> Option<PathBuf> {
    ["config", "config.toml"]
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

/// The `[env]` entries of one configuration source.
fn entries(text: &str, root: &Path) -> Result<Vec<(String, Entry)>> {
    let doc: DocumentMut = text.parse().context("not valid TOML")?;
    let Some(table) = doc.get("env").and_then(Item::as_table_like) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (key, item) in table.iter() {
        let entry = match item {
            Item::Value(Value::String(s)) => Entry {
                value: s.value().clone(),
                force: false,
                relative: false,
                root: root.to_owned(),
            },
            other => {
                let Some(t) = other.as_table_like() else {
                    anyhow::bail!("`env.{key}` must be a string or a table");
                };
                let flag = |name: &str| t.get(name).and_then(Item::as_bool).unwrap_or(false);
                let value = t
                    .get("value")
                    .and_then(Item::as_str)
                    .with_context(|| format!("`env.{key}` has no string `value`"))?;
                Entry {
                    value: value.to_owned(),
                    force: flag("force"),
                    relative: flag("relative"),
                    root: root.to_owned(),
                }
            }
        };
        out.push((key.to_owned(), entry));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn nearer_files_win_and_cli_wins_over_all() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path();
        let ws = top.join("ws");
        write(
            &top.join(".cargo/config.toml"),
            "[env]\nA = \"top\"\nB = \"top\"\n",
        );
        write(
            &ws.join(".cargo/config.toml"),
            "[env]\nB = \"ws\"\nASSETS = { value = \"assets\", relative = true }\n",
        );
        let home = top.join("home");
        write(
            &home.join("config.toml"),
            "[env]\nA = \"home\"\nH = \"home\"\n",
        );
        let env = env_table(&ws, Some(&home), &["env.C = \"cli\"".into()], |_| false).unwrap();
        let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(get("A").unwrap(), "top");
        assert_eq!(get("B").unwrap(), "ws");
        assert_eq!(get("H").unwrap(), "home");
        assert_eq!(get("C").unwrap(), "cli");
        assert_eq!(get("ASSETS").unwrap(), ws.join("assets").into_os_string());
    }

    #[test]
    fn set_variables_are_kept_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join(".cargo/config.toml"),
            "[env]\nKEPT = \"config\"\nFORCED = { value = \"config\", force = true }\n\
             CARGO_HOME = \"nope\"\n",
        );
        let env = env_table(dir.path(), None, &[], |k| k == "KEPT" || k == "FORCED").unwrap();
        assert_eq!(env, vec![("FORCED".to_owned(), OsString::from("config"))]);
    }

    #[test]
    fn a_bad_table_says_where() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join(".cargo/config.toml"), "[env]\nX = 3\n");
        let err = env_table(dir.path(), None, &[], |_| false).unwrap_err();
        assert!(
            format!("{err:#}").contains("`env.X` must be a string or a table"),
            "{err:#}"
        );
    }
}
