//! An executable that need not be compiled again still needs its
//! libraries' new code: it is pointed at their new shared versions when it
//! was linked against shared versions, else linked again from the objects
//! its last compile kept.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use super::record::UnitRecord;
use super::{Context, shared};
use crate::contract::FileId;
use crate::kept::KeptLink;
use crate::rustc_args::{Invocation, unit_stem_of};

/// Gives the binary of `inv`, last compiled as `record`, its libraries'
/// code as it is now; returns the updated record.
pub fn relink(ctx: &Context<'_>, inv: &Invocation, record: &UnitRecord) -> Result<UnitRecord> {
    let out_dir = inv
        .out_dir
        .as_deref()
        .context("an executable without an out dir")?;
    let stem = inv.unit_stem().context("an executable without a name")?;
    let output = out_dir.join(&stem);
    let kept = KeptLink::latest(&ctx.store.links(), &output).context("its link was not kept")?;
    if kept.linked.is_none() || kept.linked != record.outputs.get(&output).copied() {
        anyhow::bail!("its kept link made another binary");
    }
    let mut args = kept.args.clone();
    // The kept rlibs are the old ones: link the current ones.
    let mut rlibs_now = Vec::new();
    for rlib in &kept.rlibs {
        let now = out_dir.join(rlib.file_name().context("an rlib without a name")?);
        let kept_path = rlib.display().to_string();
        for a in args.iter_mut().filter(|a| **a == kept_path) {
            *a = now.display().to_string();
        }
        rlibs_now.push(now);
    }
    for file in kept.objects.iter().chain(&kept.temps) {
        if !file.exists() {
            anyhow::bail!("a kept object is gone");
        }
    }
    let code = super::code_of(ctx, &rlibs_now);
    let newly_used = newly_used(ctx, &record.code, &code);
    let repointed = !kept.shared.is_empty() && repoint(ctx, &kept, &args, &rlibs_now, newly_used)?;
    if repointed {
        // Newer than the libraries, for cargo.
        super::touch(&output)?;
        // The shared versions' links are logged on their own.
        log_link(&output, "repoint", 0, 0, true);
    } else {
        link_again(&output, &kept, &args)?;
    }
    let linked = FileId::of(&output).context("the relinked binary is missing")?;
    // The kept link now stands for the new binary; one linked again is
    // static, and no later edit repoints it.
    let mut link = kept.clone();
    link.linked = Some(linked);
    if !repointed {
        link.shared.clear();
    }
    let json = serde_json::to_vec(&link)?;
    let name = output.file_name().context("no file name")?;
    crate::fs::write_atomic(
        &ctx.store
            .links()
            .join(format!("{}.json", name.to_string_lossy())),
        &json,
    )?;
    crate::fs::write_atomic(&kept.dir.join("link.json"), &json)?;
    let mut updated = record.clone();
    updated.outputs.insert(output, linked);
    updated.code = code;
    Ok(updated)
}

/// The symbols the libraries' code uses now and did not when the binary
/// was linked; `None` when that is not known (a library whose code the
/// cutoff did not record).
fn newly_used(
    ctx: &Context<'_>,
    then: &std::collections::BTreeMap<String, String>,
    now: &std::collections::BTreeMap<String, String>,
) -> Option<BTreeSet<String>> {
    if then.keys().ne(now.keys()) {
        return None;
    }
    let mut out = BTreeSet::new();
    for (stem, code) in now {
        let before = &then[stem];
        if before == code {
            continue;
        }
        let (before, after) = (ctx.store.lines(before)?, ctx.store.lines(code)?);
        out.extend(after.difference(&before).cloned());
    }
    Some(out)
}

/// Points each of the binary's links to a workspace library at the
/// library's current shared version; `false` when one of its workspace
/// libraries is linked statically or shows another interface than the
/// binary was linked against (its link's name holds the interface), or
/// the new code needs what the binary does not load.
fn repoint(
    ctx: &Context<'_>,
    kept: &KeptLink,
    args: &[String],
    rlibs: &[PathBuf],
    newly_used: Option<BTreeSet<String>>,
) -> Result<bool> {
    let Some(newly_used) = newly_used else {
        return Ok(false);
    };
    let root = ctx.store.root();
    let mut pointed = Vec::new();
    for rlib in rlibs {
        let Some(stem) = unit_stem_of(rlib) else {
            continue;
        };
        if !ctx.is_member(stem) {
            continue;
        }
        let interface = shared::interface(root, rlib)?;
        let name =
            shared::link_name(rlib, &kept.output, &interface).context("an rlib without a name")?;
        if !kept.shared.contains(&name) {
            return Ok(false);
        }
        let version = shared::version(root, &kept.driver, args, rlib)?;
        pointed.push((name, version));
    }
    if !newly_used.is_empty() {
        let mut loaded: Vec<PathBuf> = args
            .iter()
            .filter(|a| a.ends_with(".so") || a.contains(".so."))
            .map(PathBuf::from)
            .collect();
        loaded.extend(pointed.iter().map(|(_, v)| v.clone()));
        let exported = super::symbol_names(loaded.iter().map(PathBuf::as_path), true, |s| {
            object::ObjectSymbol::is_definition(s)
        });
        if newly_used.iter().any(|s| !exported.contains(s)) {
            return Ok(false);
        }
    }
    for (name, version) in pointed {
        shared::point(root, &name, &version)?;
    }
    Ok(true)
}

/// Runs the kept link again, into a new file: the store keeps a link to
/// the old one, which a linker writing in place would change.
fn link_again(output: &Path, kept: &KeptLink, args: &[String]) -> Result<()> {
    let _ = std::fs::remove_file(output);
    let mut cmd = std::process::Command::new(&kept.driver);
    cmd.args(args);
    if let Some(path) = &kept.path_env {
        cmd.env("PATH", path);
    }
    let errors = kept.dir.join("relink.err");
    let file = std::fs::File::create(&errors)
        .with_context(|| format!("failed to create `{}`", errors.display()))?;
    cmd.stdout(std::process::Stdio::null()).stderr(file);
    let (status, millis, max_rss_kib) = crate::measure::run_measured(&mut cmd)
        .with_context(|| format!("failed to run `{}`", kept.driver))?;
    log_link(output, "relink", millis, max_rss_kib, status.success());
    if !status.success() {
        let text = std::fs::read_to_string(&errors).unwrap_or_default();
        anyhow::bail!("linking it again failed: {}", text.trim());
    }
    Ok(())
}

/// `compare` and the benchmarks count every link, and take the program
/// from the last one: a binary pointed at new code counts as linked.
fn log_link(output: &Path, linker: &str, millis: u64, max_rss_kib: u64, success: bool) {
    crate::contract::LinkRecord {
        output: output.to_path_buf(),
        linker: linker.into(),
        millis,
        max_rss_kib,
        success,
    }
    .log();
}
