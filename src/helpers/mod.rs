//! The helpers: code that runs inside other programs' processes. This
//! executable, under another name, is what cargo runs as the rustc wrapper
//! and as rustdoc, what rustc runs as its linker, what `compare` runs as a
//! rustc timer and what `watch` runs to capture rustc commands and to
//! guard the program and all it starts. Each helper is recognised by one
//! rule, the name it was started under; nothing here runs in the driver.
//!
//! ```text
//! dyndev-rustc-wrapper   wrapper.rs  every member compilation (RUSTC_WORKSPACE_WRAPPER)
//! dyndev-linker          linker.rs   rustc's linker: exports C code, records probes, times links
//! dyndev-rustdoc         rustdoc.rs  cargo's rustdoc for doctests: records their commands
//! dyndev-rustc-timer     timer.rs    compare's RUSTC_WRAPPER: times each compilation
//! dyndev-rustc-capture   capture.rs  watch's innermost wrapper: records rustc commands
//! dyndev-watch-guard     guard.rs    the program's parent and subreaper: stops all it started
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::contract::names;

pub mod capture;
pub mod guard;
pub mod linker;
pub mod rustdoc;
pub mod timer;
pub mod wrapper;

/// A helper's entry point; it returns the process's exit code.
type Main = fn() -> i32;

/// Every helper: the name it runs under and its entry point.
const HELPERS: &[(&str, Main)] = &[
    (names::WRAPPER, wrapper::main),
    (names::LINKER, linker::main),
    (names::RUSTDOC, rustdoc::main),
    (names::TIMER, timer::main),
    (names::CAPTURE, capture::main),
    (names::GUARD, guard::main),
];

/// The program name this process was started as.
pub fn invoked_as() -> Option<String> {
    let arg0 = std::env::args_os().next()?;
    Some(Path::new(&arg0).file_name()?.to_string_lossy().into_owned())
}

/// The entry point of the helper this process was started as, if any.
pub fn entry() -> Option<Main> {
    let name = invoked_as()?;
    HELPERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, main)| *main)
}

/// Makes `dir/<name>` a symlink to this executable: the wrapper, the
/// linker proxy and the rustc timer run under such names.
pub fn install(dir: &Path, name: &str) -> Result<PathBuf> {
    crate::fs::create_dir_all(dir)?;
    let exe = crate::fs::self_exe()?;
    let link = dir.join(name);
    if std::fs::read_link(&link).ok().as_deref() != Some(exe.as_path()) {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&exe, &link)
            .with_context(|| format!("failed to create `{}`", link.display()))?;
    }
    Ok(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_helper_has_its_own_name() {
        let mut names: Vec<&str> = HELPERS.iter().map(|(n, _)| *n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), HELPERS.len());
        assert!(names.iter().all(|n| n.starts_with("dyndev-")));
    }
}
