//! Where dyndev keeps things. Its programs and state live under
//! `<target-dir>/dyndev`, cargo's target dir for dyndev builds, so plain
//! `cargo build` and `cargo dyndev` never overwrite each other's programs.
//! The units' intermediate artifacts live in cargo's build dir, which
//! dyndev shares with the user's own builds (`build.build-dir` if set,
//! else the target dir): a dependency compiles once for both. Member units
//! stay apart there, as cargo hashes dyndev's workspace wrapper into them.
//!
//! ```text
//! <target-dir>/dyndev/                 cargo's --target-dir for dyndev builds
//!   debug/                             cargo's profile dir: binaries land here
//!     bundle/<workspace>-<hash>/       dyndev's state for one workspace
//!       state.json                     the current bundle, read by the wrapper
//!       lock                           one dyndev at a time
//!       runs/<run>/                    what the wrapper saw during one build
//!       probe/                         closure probes and their cache
//!       lib/libdyndev_<id>.so          the bundle's libraries, facades, sources
//!       lib/.<name>.<pid>.tmp          a link or write not yet renamed into place
//! <build-dir>/debug/deps/              cargo's units, the user's and dyndev's
//! ```
//!
//! Workspaces that share a target dir (a global `CARGO_TARGET_DIR`) share
//! cargo's dependency units but keep a bundle each.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::shell::Shell;

#[derive(Debug, Clone)]
pub struct Layout {
    /// `<target-dir>/dyndev`: cargo's target dir for dyndev builds.
    pub target_dir: PathBuf,
    /// `<target-dir>/dyndev/debug` (or `release`, or a profile's name).
    pub profile_dir: PathBuf,
    /// `<profile_dir>/bundle/<workspace key>`.
    pub state_dir: PathBuf,
    /// Cargo's build dir's profile dir (`<build-dir>/debug`), shared with the
    /// user's own builds: every unit's intermediate artifacts.
    pub build_profile_dir: PathBuf,
}

impl Layout {
    /// The layout of the workspace's builds with `compile`'s target dir and
    /// profile.
    pub fn of(
        workspace: &crate::workspace::Workspace,
        compile: &crate::cli::CompileArgs,
    ) -> Layout {
        let flag = compile.target_dir.as_deref();
        let mut layout = Layout::new(
            &workspace.target_dir(flag),
            &compile.profile_dir(),
            workspace.root(),
        );
        layout.build_profile_dir = workspace.build_dir(flag).join(compile.profile_dir());
        layout
    }

    /// `base` is the user's target dir (`--target-dir` or cargo's default),
    /// also the build dir; `workspace_root` names the state dir.
    pub fn new(base: &Path, profile_dir_name: &str, workspace_root: &Path) -> Layout {
        let target_dir = base.join("dyndev");
        let profile_dir = target_dir.join(profile_dir_name);
        let name: String = workspace_root
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let hash = crate::fs::StableHasher::default()
            .write_str(&workspace_root.to_string_lossy())
            .finish_hex();
        let state_dir = profile_dir
            .join("bundle")
            .join(format!("{name}-{}", &hash[..8]));
        Layout {
            target_dir,
            profile_dir,
            state_dir,
            build_profile_dir: base.join(profile_dir_name),
        }
    }

    /// Cargo's build dir (`build.build-dir`), which dyndev's builds share
    /// with the user's.
    pub fn build_dir(&self) -> &Path {
        self.build_profile_dir
            .parent()
            .unwrap_or(&self.build_profile_dir)
    }

    /// Where cargo puts the units' outputs in the build dir, and a program's
    /// library path (cargo's `deps_output`).
    pub fn deps_dir(&self) -> PathBuf {
        self.build_profile_dir.join("deps")
    }

    /// Rebuilds a layout from the state dir the wrapper is handed, and the
    /// build dir the driver gave cargo (which cargo passes on).
    pub fn from_state_dir(state_dir: &Path) -> Layout {
        let profile_dir = state_dir
            .parent()
            .and_then(Path::parent)
            .unwrap_or(state_dir)
            .to_path_buf();
        let target_dir = profile_dir.parent().unwrap_or(&profile_dir).to_path_buf();
        let build_profile_dir = match std::env::var_os("CARGO_BUILD_BUILD_DIR") {
            Some(dir) => PathBuf::from(dir).join(profile_dir.file_name().unwrap_or_default()),
            None => profile_dir.clone(),
        };
        Layout {
            target_dir,
            profile_dir,
            state_dir: state_dir.to_path_buf(),
            build_profile_dir,
        }
    }

    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join("state.json")
    }

    pub fn run_dir(&self, run: &str) -> PathBuf {
        self.state_dir.join("runs").join(run)
    }

    /// The bundle's shared libraries and facades.
    pub fn lib_dir(&self) -> PathBuf {
        self.state_dir.join("lib")
    }

    /// Takes the state lock, waiting (and saying so, as cargo does) while
    /// another dyndev holds it. Released when the returned file is dropped.
    pub fn lock(&self, shell: &Shell) -> Result<File> {
        lock_dir(shell, &self.state_dir)
    }
}

/// Takes the lock of `dir` (its file `lock`), waiting (and saying so, as
/// cargo does) while another dyndev holds it. Released when the returned
/// file is dropped.
pub fn lock_dir(shell: &Shell, dir: &Path) -> Result<File> {
    crate::fs::create_dir_all(dir)?;
    let path = dir.join("lock");
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("failed to open `{}`", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            shell.status(
                "Blocking",
                "waiting for another `cargo dyndev` to finish with this target directory",
            );
            file.lock()
                .with_context(|| format!("failed to lock `{}`", path.display()))?;
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("failed to lock `{}`", path.display()));
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_nest_under_target_dyndev() {
        let l = Layout::new(Path::new("/w/target"), "debug", Path::new("/w/my game"));
        assert_eq!(l.target_dir, Path::new("/w/target/dyndev"));
        assert_eq!(l.profile_dir, Path::new("/w/target/dyndev/debug"));
        let state = l.state_file();
        let key = state
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        assert!(
            key.starts_with("my_game-") && key.len() == "my_game-".len() + 8,
            "{key}"
        );
        assert_eq!(
            state.parent().unwrap().parent().unwrap(),
            Path::new("/w/target/dyndev/debug/bundle")
        );
        let other = Layout::new(Path::new("/w/target"), "debug", Path::new("/v/my game"));
        assert_ne!(
            other.state_dir, l.state_dir,
            "workspaces keep a bundle each"
        );
        let back = Layout::from_state_dir(&l.state_dir);
        assert_eq!(back.target_dir, l.target_dir);
        assert_eq!(back.profile_dir, l.profile_dir);
    }
}
