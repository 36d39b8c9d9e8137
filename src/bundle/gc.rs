//! Removing what no bundle in use needs: libraries and facades of older
//! bundles, and bundles of the earlier one-library layout.

use std::collections::BTreeSet;

use anyhow::{Context, Result};

use crate::layout::Layout;
use crate::state::BundleState;

/// The stems of every file a bundle needs in the library dir: a library's
/// `libNAME.so` and its `NAME.*` records, a facade's `libNAME-HASH.rlib`
/// with its source and marker.
fn kept_stems<'a>(states: impl Iterator<Item = &'a BundleState>) -> BTreeSet<String> {
    let mut keep = BTreeSet::new();
    for state in states {
        for lib in &state.libs {
            keep.insert(lib.crate_name.clone());
            keep.insert(format!("lib{}", lib.crate_name));
        }
        for root in state.roots.values() {
            if let Some(name) = root.facade.file_name().and_then(|n| n.to_str()) {
                keep.insert(stem_of(name).to_owned());
            }
        }
    }
    keep
}

/// A file name up to its first dot: the same for `x.so`, `x.json`, `x.rs`.
fn stem_of(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// Removes what no build will read from the library dir: temporaries of
/// writes and links a killed build never finished, and facade sources
/// that earlier versions wrote as `libNAME-HASH.rs` beside the rlibs
/// (rustc takes such a file in a search dir for the interface of an
/// `sdylib` and compiles it in a child process in every compile that
/// loads the crate: about 25 ms a facade, each time). Run with the state
/// lock held.
pub fn remove_leftovers(layout: &Layout) {
    let Ok(dir) = std::fs::read_dir(layout.lib_dir()) else {
        return;
    };
    for item in dir.flatten() {
        let name = item.file_name();
        let name = name.to_string_lossy();
        if crate::fs::is_temporary(&name) {
            remove(&item.path());
        } else if name.starts_with("lib") && name.ends_with(".rs") {
            let _ = std::fs::remove_file(item.path());
        }
    }
}

/// Removes a file, or a directory with all it holds.
fn remove(path: &std::path::Path) {
    if path.is_dir() {
        let _ = std::fs::remove_dir_all(path);
    } else {
        let _ = std::fs::remove_file(path);
    }
}

/// Removes libraries and facades that neither the current nor the
/// previous bundle uses, and bundles of the earlier one-library layout.
pub fn collect_garbage(
    layout: &Layout,
    current: &BundleState,
    previous: Option<&BundleState>,
) -> Result<()> {
    let keep = kept_stems(std::iter::once(current).chain(previous));
    if let Ok(dir) = std::fs::read_dir(layout.lib_dir()) {
        for item in dir.flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            if !keep.contains(stem_of(&name)) {
                remove(&item.path());
            }
        }
    }
    let Ok(dir) = std::fs::read_dir(&layout.state_dir) else {
        return Ok(());
    };
    for item in dir.flatten() {
        let name = item.file_name();
        let name = name.to_string_lossy();
        let is_old_bundle_dir = name.len() == 16 && name.chars().all(|c| c.is_ascii_hexdigit());
        if is_old_bundle_dir {
            std::fs::remove_dir_all(item.path())
                .with_context(|| format!("failed to remove `{}`", item.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Lib, Root};

    #[test]
    fn keeps_every_file_of_a_bundle_in_use_and_nothing_else() {
        let mut state = BundleState::default();
        state.libs.push(Lib {
            crate_name: "dyndev_bundle_0123".into(),
            ..Lib::default()
        });
        // A crate whose name starts like the `lib` prefix itself.
        state.roots.insert(
            "liblibc-1".into(),
            Root {
                package_id: "libc".into(),
                crate_name: "libc".into(),
                alias: "libc_1".into(),
                lib: "dyndev_bundle_0123".into(),
                rlib: "/t/deps/liblibc-1.rlib".into(),
                rlib_mtime: 0,
                facade: "/s/lib/liblibc-f00d.rlib".into(),
                facade_stamp: Default::default(),
            },
        );
        let keep = kept_stems(std::iter::once(&state));
        for name in [
            "libdyndev_bundle_0123.so",
            "dyndev_bundle_0123.json",
            "dyndev_bundle_0123.rs",
            "liblibc-f00d.rlib",
            "liblibc-f00d.ok",
            "liblibc-f00d.facade",
        ] {
            assert!(keep.contains(stem_of(name)), "{name} must be kept");
        }
        for name in [
            "libdyndev_bundle_4567.so",
            "liblibc-beef.rlib",
            "libc-f00d.rlib",
            // A link a killed build left unfinished.
            ".dyndev_bundle_0123.4242.tmp",
        ] {
            assert!(!keep.contains(stem_of(name)), "{name} must go");
        }
    }
}
