//! Removing what no bundle in use needs: libraries and facades of older
//! bundles, and bundles of the earlier one-library layout.

use std::collections::BTreeSet;

use anyhow::{Context, Result};

use crate::layout::Layout;
use crate::state::BundleState;

/// Removes libraries and facades that neither the current nor the
/// previous bundle uses, and bundles of the earlier one-library layout.
pub fn collect_garbage(
    layout: &Layout,
    current: &BundleState,
    previous: Option<&BundleState>,
) -> Result<()> {
    let mut keep: BTreeSet<String> = BTreeSet::new();
    for state in std::iter::once(current).chain(previous) {
        keep.extend(state.libs.iter().map(|l| l.crate_name.clone()));
        keep.extend(state.roots.values().filter_map(|r| {
            Some(
                r.facade
                    .file_stem()?
                    .to_str()?
                    .trim_start_matches("lib")
                    .to_owned(),
            )
        }));
    }
    let kept = |name: &str| {
        let stem = name.split('.').next().unwrap_or(name);
        keep.contains(stem.strip_prefix("lib").unwrap_or(stem)) || keep.contains(stem)
    };
    if let Ok(dir) = std::fs::read_dir(layout.lib_dir()) {
        for item in dir.flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            if !kept(&name) {
                let _ = std::fs::remove_file(item.path());
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
