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

/// Where cargo finds its configuration, lowest precedence first: cargo's
/// home, then each `.cargo/config(.toml)` from the root down to `cwd`, then
/// `--config` values. Each comes with the directory its relative paths are
/// relative to.
#[derive(Debug)]
pub struct Sources {
    sources: Vec<(String, PathBuf, String)>,
}

impl Sources {
    pub fn discover(cwd: &Path, cargo_home: Option<&Path>, cli: &[String]) -> Result<Sources> {
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
        let mut sources = Vec::new();
        for file in files.iter().rev() {
            sources.push((
                crate::fs::read_to_string(file)?,
                config_root(file, cwd),
                format!("`{}`", file.display()),
            ));
        }
        for value in cli {
            let path = cwd.join(value);
            if value.ends_with(".toml") && path.is_file() {
                sources.push((
                    crate::fs::read_to_string(&path)?,
                    config_root(&path, cwd),
                    format!("`{value}`"),
                ));
            } else {
                sources.push((value.clone(), cwd.to_owned(), format!("`--config {value}`")));
            }
        }
        Ok(Sources { sources })
    }

    /// The `[env]` variables to set for a program: those not already set
    /// (`existing`), and those marked `force`.
    pub fn env_table(&self, existing: impl Fn(&str) -> bool) -> Result<Vec<(String, OsString)>> {
        let mut merged: Vec<(String, Entry)> = Vec::new();
        for (text, root, name) in &self.sources {
            for (key, entry) in entries(text, root).with_context(|| format!("in {name}"))? {
                match merged.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = entry,
                    None => merged.push((key, entry)),
                }
            }
        }
        Ok(merged
            .into_iter()
            .filter(|(k, _)| !DISALLOWED.contains(&k.as_str()))
            .filter(|(k, e)| e.force || !existing(k))
            .map(|(k, e)| (k, e.resolve()))
            .collect())
    }

    /// `target.<triple>.linker`: a path if it names one (relative to its
    /// source's root), else a program to find on `PATH`.
    pub fn target_linker(&self, triple: &str) -> Result<Option<PathBuf>> {
        let mut found = None;
        for (text, root, name) in &self.sources {
            let doc: DocumentMut = text
                .parse()
                .with_context(|| format!("{name} is not valid TOML"))?;
            if let Some(linker) = doc
                .get("target")
                .and_then(|t| t.get(triple))
                .and_then(|t| t.get("linker"))
                .and_then(Item::as_str)
            {
                found = Some(if linker.contains('/') {
                    root.join(linker)
                } else {
                    PathBuf::from(linker)
                });
            }
        }
        Ok(found)
    }
}

/// The `[env]` variables to set for a program run from `cwd`, with the
/// given `--config` values: those not already in `existing`, and those
/// marked `force`.
pub fn env_table(
    cwd: &Path,
    cargo_home: Option<&Path>,
    cli: &[String],
    existing: impl Fn(&str) -> bool,
) -> Result<Vec<(String, OsString)>> {
    Sources::discover(cwd, cargo_home, cli)?.env_table(existing)
}

/// The workspace wrapper cargo would use from `cwd`, read as cargo reads
/// it: `RUSTC_WORKSPACE_WRAPPER`, else `build.rustc-workspace-wrapper`
/// from the environment or the configuration files (a path relative to
/// its file's root); none when unset or empty.
pub fn workspace_wrapper(cwd: &Path) -> Result<Option<PathBuf>> {
    let config = cargo_config2::Config::load_with_cwd(cwd)
        .context("failed to read cargo's configuration")?;
    Ok(config.build.rustc_workspace_wrapper)
}

/// Whether cargo's build dir is set for builds from `cwd`
/// (`build.build-dir` in the configuration, or `CARGO_BUILD_BUILD_DIR`).
pub fn build_dir_configured(cwd: &Path) -> Result<bool> {
    let config = cargo_config2::Config::load_with_cwd(cwd)
        .context("failed to read cargo's configuration")?;
    Ok(config.build.build_dir.is_some())
}

/// Cargo's home: `$CARGO_HOME`, else `~/.cargo`.
pub fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::home_dir().map(|h| h.join(".cargo")))
}

/// What relative paths in a config file are relative to: the directory
/// holding its `.cargo` directory.
fn config_root(file: &Path, cwd: &Path) -> PathBuf {
    file.parent()
        .and_then(Path::parent)
        .unwrap_or(cwd)
        .to_owned()
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
    fn finds_the_configured_linker() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        write(
            &ws.join(".cargo/config.toml"),
            "[target.x86_64-unknown-linux-gnu]\nlinker = \"tools/ld-wrapper\"\n",
        );
        let sources = Sources::discover(&ws, None, &[]).unwrap();
        assert_eq!(
            sources.target_linker("x86_64-unknown-linux-gnu").unwrap(),
            Some(ws.join("tools/ld-wrapper"))
        );
        assert_eq!(
            sources.target_linker("aarch64-unknown-linux-gnu").unwrap(),
            None
        );
        let cli = Sources::discover(
            &ws,
            None,
            &["target.x86_64-unknown-linux-gnu.linker = \"clang\"".into()],
        )
        .unwrap();
        assert_eq!(
            cli.target_linker("x86_64-unknown-linux-gnu").unwrap(),
            Some(PathBuf::from("clang"))
        );
    }

    #[test]
    fn the_workspace_wrapper_comes_from_configuration_too() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        write(
            &ws.join(".cargo/config.toml"),
            "[build]\nrustc-workspace-wrapper = \"tools/wrap\"\n",
        );
        // Only when the variables that come first are unset.
        if std::env::var_os("RUSTC_WORKSPACE_WRAPPER").is_none()
            && std::env::var_os("CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER").is_none()
        {
            assert_eq!(workspace_wrapper(&ws).unwrap(), Some(ws.join("tools/wrap")));
        }
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
