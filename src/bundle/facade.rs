//! Facades: for each root, a tiny crate with the root's name that
//! re-exports it from its library, handed to members in the root's place,
//! so that the library joins their crate graph.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::toolchain::{Toolchain, rustc, show};
use crate::shell::Shell;
use crate::state::{Lib, Root, Stamp};

/// One facade per root, compiled in parallel: each is a tiny crate. A
/// facade is named by its library and root, so one already made, and
/// unchanged since, is kept. Sets each root's `facade_stamp`.
pub(super) fn compile_facades(
    shell: &Shell,
    toolchain: &Toolchain,
    dir: &Path,
    libs: &[Lib],
    roots: &mut BTreeMap<String, Root>,
) -> Result<()> {
    let mut jobs: Vec<&mut Root> = Vec::new();
    for root in roots.values_mut() {
        match made_before(&root.facade) {
            Some(stamp) => root.facade_stamp = stamp,
            None => jobs.push(root),
        }
    }
    let results = crate::pool::parallel_map(&jobs, |root| {
        let lib = libs
            .iter()
            .find(|l| l.crate_name == root.lib)
            .context("a facade's library is missing")?;
        compile_facade(shell, toolchain, dir, lib, root)
    });
    for (root, stamp) in jobs.into_iter().zip(results) {
        root.facade_stamp = stamp?;
    }
    Ok(())
}

/// The marker a finished facade compile leaves, holding the facade's
/// [`Stamp`].
fn marker_of(facade: &Path) -> std::path::PathBuf {
    facade.with_extension("ok")
}

/// The stamp of a facade compiled before, when it is still the file that
/// compile made.
fn made_before(facade: &Path) -> Option<Stamp> {
    let recorded: Stamp = serde_json::from_slice(&std::fs::read(marker_of(facade)).ok()?).ok()?;
    (Stamp::of(facade)? == recorded).then_some(recorded)
}

fn compile_facade(
    shell: &Shell,
    toolchain: &Toolchain,
    dir: &Path,
    lib: &Lib,
    root: &Root,
) -> Result<Stamp> {
    let file_stem = root
        .facade
        .file_stem()
        .and_then(|s| s.to_str())
        .context("facade path without a name")?;
    let hash = crate::rustc_args::hash_of_stem(file_stem);
    // Not `libNAME-HASH.rs`: rustc takes a `lib<crate>*.rs` in a search
    // dir for the interface of an `sdylib` and compiles it again, in a
    // child process, in every compile that loads the crate.
    let src = dir.join(format!("{file_stem}.facade"));
    crate::fs::write_atomic(
        &src,
        crate::templates::facade_lib(&root.crate_name, &lib.crate_name, &root.alias)?.as_bytes(),
    )?;
    // Written under another name, then renamed into place whole.
    let scratch = crate::fs::Scratch::new(dir, file_stem)?;
    let mut cmd = rustc(toolchain);
    cmd.args(["--crate-name", &root.crate_name, "--edition=2021"])
        .arg(&src)
        .args([
            "--crate-type",
            "rlib",
            "--emit=link",
            "--cap-lints",
            "allow",
        ])
        .args(["-C", &format!("metadata={hash}")])
        .args(["-C", &format!("extra-filename=-{hash}")])
        .arg("--out-dir")
        .arg(scratch.path())
        .arg("-L")
        .arg(format!("dependency={}", dir.display()))
        .args(toolchain.search_path_args())
        .arg("--extern")
        .arg(format!("{}={}", lib.crate_name, lib.file.display()));
    shell.verbose_status("Running", format_args!("`{}`", show(&cmd)));
    let out = cmd
        .output()
        .with_context(|| format!("failed to run `{}`", toolchain.rustc.display()))?;
    if !out.status.success() {
        bail!(
            "failed to compile the facade of `{}`\n\n{}",
            root.crate_name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let name = root
        .facade
        .file_name()
        .context("facade path without a name")?
        .to_string_lossy();
    scratch.rename_out(&name, &root.facade)?;
    let stamp = Stamp::of(&root.facade)
        .with_context(|| format!("`{}` is gone after its compile", root.facade.display()))?;
    let json = serde_json::to_vec(&stamp).context("failed to serialize a facade's stamp")?;
    crate::fs::write_atomic(&marker_of(&root.facade), &json)?;
    Ok(stamp)
}
