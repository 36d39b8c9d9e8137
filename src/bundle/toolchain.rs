//! The compiler and the link settings the members were built with, which
//! every library, facade and probe is made with too.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::state::JournalEntry;

/// The compiler and the link settings the members were built with.
#[derive(Debug, Clone)]
pub(super) struct Toolchain {
    pub(super) rustc: PathBuf,
    pub(super) search_paths: Vec<String>,
    pub(super) link_args: Vec<String>,
    pub(super) target: Option<String>,
    pub(super) sysroot_lib: PathBuf,
}

impl Toolchain {
    pub(super) fn from_entries(entries: &[JournalEntry]) -> Result<Toolchain> {
        let first = entries
            .iter()
            .find(|e| e.executable)
            .or_else(|| entries.first())
            .context("no workspace member was compiled, so there is nothing to bundle for")?;
        let mut search_paths = Vec::new();
        for e in entries {
            for p in &e.search_paths {
                if !search_paths.contains(p) {
                    search_paths.push(p.clone());
                }
            }
        }
        let mut cmd = Command::new(&first.rustc);
        cmd.args(["--print", "target-libdir"]);
        if let Some(t) = &first.target {
            cmd.args(["--target", t]);
        }
        let out = cmd
            .output()
            .with_context(|| format!("failed to run `{}`", first.rustc.display()))?;
        if !out.status.success() {
            bail!(
                "`{} --print target-libdir` failed: {}",
                first.rustc.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let sysroot_lib = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Ok(Toolchain {
            rustc: first.rustc.clone(),
            search_paths,
            link_args: first.link_args.clone(),
            target: first.target.clone(),
            sysroot_lib,
        })
    }
}

impl Toolchain {
    /// `-L` for every search path the members were compiled with.
    pub(super) fn search_path_args(&self) -> impl Iterator<Item = String> + '_ {
        self.search_paths
            .iter()
            .flat_map(|p| ["-L".to_owned(), p.clone()])
    }
}

/// rustc, for the members' target.
pub(super) fn rustc(toolchain: &Toolchain) -> Command {
    let mut cmd = Command::new(&toolchain.rustc);
    if let Some(t) = &toolchain.target {
        cmd.args(["--target", t]);
    }
    cmd
}

/// A command as `-v` shows it.
pub(super) fn show(cmd: &Command) -> String {
    crate::shell::command_line(std::iter::once(cmd.get_program()).chain(cmd.get_args()))
}
