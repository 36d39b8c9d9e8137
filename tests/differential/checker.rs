//! The differential checker: applies a long sequence of generated edits to
//! a copy of a workspace and, after every edit, compares what plain cargo
//! and `cargo dyndev` make of it: each test's result (and the panic
//! locations failures print), or each program's output and exit code.
//! Any difference is a mismatch; the edits so far are kept to replay it.
//!
//! Shared by the `differential` bench (any workspace, many edits) and the
//! end-to-end suite (a small generated workspace, a few seeded edits).
//! Edits are made on the source text at spans `syn` reports:
//!
//! - a literal inside a function's body (plain, generic, `#[inline]`,
//!   `const`, `async` or a method alike), inside a macro call there, in a
//!   `macro_rules!` definition, a `const` or a `static`;
//! - a new function, or one this checker added taken away again;
//! - a private function made `pub(crate)`, an attribute added to an item;
//! - a new unit struct with a `Display` impl;
//! - a blank line before an item (every later span moves: panic lines);
//! - two neighbouring items swapped (moved code);
//! - a file an `include_str!`/`include_bytes!` reads, changed.
//!
//! Nothing is compiled by the checker itself: both sides compile the same
//! sources, and a compile error must be one on both.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use syn::spanned::Spanned;
use syn::visit::Visit;

/// What to compare after each edit.
#[derive(Debug, Clone)]
pub enum Compare {
    /// `cargo test ARGS --no-fail-fast`: each test's result.
    Tests(Vec<String>),
    /// `cargo run --bin NAME ARGS` for each program: output and exit code.
    Programs(Vec<(String, Vec<String>)>),
}

#[derive(Debug, Clone)]
pub struct Options {
    /// The workspace to copy; never changed.
    pub workspace: PathBuf,
    /// Where the copy and both target dirs live.
    pub scratch: PathBuf,
    /// The `cargo-dyndev` executable.
    pub dyndev: PathBuf,
    pub edits: usize,
    pub seed: u64,
    pub compare: Compare,
    /// Member packages whose sources may be edited (all when empty).
    pub packages: Vec<String>,
    /// Say each step on stderr.
    pub verbose: bool,
    /// How long one side's build and run may take: an edit can make a
    /// program or a test loop for ever (on both sides alike). Both timing
    /// out counts as agreeing, and the edit is taken back.
    pub timeout: std::time::Duration,
}

/// What the two sides made after one edit, where they differ.
#[derive(Debug, Clone)]
pub struct Mismatch {
    pub step: usize,
    pub edit: String,
    pub cargo: String,
    pub dyndev: String,
}

#[derive(Debug, Default)]
pub struct Report {
    /// Each step's edit, in order.
    pub edits: Vec<String>,
    pub mismatches: Vec<Mismatch>,
    /// Steps after which both sides failed to build, or to end in time.
    pub both_failed: usize,
    /// Steps whose result differed from the step before (the edit was seen).
    pub observable: usize,
}

/// A small, seeded generator (xorshift64*): runs replay exactly.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One place an edit can be made, and how.
#[derive(Debug, Clone)]
struct Site {
    file: PathBuf,
    kind: &'static str,
    /// Byte range replaced, and by what.
    range: std::ops::Range<usize>,
    with: String,
}

/// Runs the check; `Err` only for the checker's own failures.
pub fn run(opts: &Options) -> Result<Report, String> {
    let copy = opts.scratch.join("src");
    copy_tree(&opts.workspace, &copy)?;
    let mut rng = Rng::new(opts.seed);
    let mut report = Report::default();
    let mut previous: Option<String> = None;
    // The starting point, before any edit: both must agree there too.
    let first = compare_once(opts, &copy, 0, "(no edit)", &mut report)?;
    if !report.mismatches.is_empty() {
        // Every later step would differ the same way and say nothing new.
        return Ok(report);
    }
    previous = first.or(previous);
    for step in 1..=opts.edits {
        let sites = sites(&copy, &opts.packages, step, &mut rng)?;
        if sites.is_empty() {
            return Err("no place to edit in the workspace's sources".into());
        }
        let site = pick(&sites, &mut rng);
        let before = read(&site.file)?;
        let old = before
            .get(site.range.clone())
            .unwrap_or_default()
            .to_owned();
        apply(site)?;
        let rel = site.file.strip_prefix(&copy).unwrap_or(&site.file);
        let what = format!(
            "{}: {} at byte {} ({:?} -> {:?})",
            rel.display(),
            site.kind,
            site.range.start,
            clip(&old),
            clip(&site.with)
        );
        if opts.verbose {
            eprintln!("[{step}/{}] {what}", opts.edits);
        }
        report.edits.push(what.clone());
        let seen = compare_once(opts, &copy, step, &what, &mut report)?;
        if seen
            .as_deref()
            .is_some_and(|s| s.starts_with("build failed") || s.starts_with(TIMED_OUT))
        {
            // Both agree it does not build (or does not end): take the
            // edit back, so that later edits change a workspace that does.
            write(&site.file, &before)?;
            if opts.verbose {
                eprintln!(
                    "       taken back: {}",
                    seen.as_deref()
                        .unwrap_or_default()
                        .lines()
                        .next()
                        .unwrap_or_default()
                );
            }
            report
                .edits
                .push(format!("{}: the edit above, taken back", rel.display()));
            continue;
        }
        if seen.is_some() && seen != previous {
            report.observable += 1;
        }
        previous = seen.or(previous);
    }
    Ok(report)
}

/// A site: first a kind (edits that change what a program computes weigh
/// more), then one of its sites.
fn pick<'a>(sites: &'a [Site], rng: &mut Rng) -> &'a Site {
    let mut kinds: Vec<&'static str> = sites.iter().map(|s| s.kind).collect();
    kinds.sort();
    kinds.dedup();
    let weight = |k: &str| {
        if k.starts_with("a literal in") {
            6
        } else if k.starts_with("a constant") || k.starts_with("a static") {
            3
        } else {
            1
        }
    };
    let total: usize = kinds.iter().map(|k| weight(k)).sum();
    let mut n = rng.below(total);
    let kind = kinds
        .iter()
        .find(|k| {
            let w = weight(k);
            if n < w {
                true
            } else {
                n -= w;
                false
            }
        })
        .copied()
        .unwrap_or(kinds[0]);
    let of_kind: Vec<&Site> = sites.iter().filter(|s| s.kind == kind).collect();
    of_kind[rng.below(of_kind.len())]
}

/// A text short enough for a report line.
fn clip(text: &str) -> String {
    let mut out: String = text.chars().take(60).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// Builds and runs both sides once; records a mismatch. Returns what they
/// agreed on, when they did.
fn compare_once(
    opts: &Options,
    copy: &Path,
    step: usize,
    edit: &str,
    report: &mut Report,
) -> Result<Option<String>, String> {
    let cargo = outcome(opts, copy, false)?;
    let dyndev = outcome(opts, copy, true)?;
    if cargo != dyndev {
        if opts.verbose {
            eprintln!("MISMATCH after step {step}:\n--- cargo\n{cargo}\n--- dyndev\n{dyndev}");
        }
        report.mismatches.push(Mismatch {
            step,
            edit: edit.to_owned(),
            cargo,
            dyndev,
        });
        return Ok(None);
    }
    if cargo.starts_with("build failed") || cargo.starts_with(TIMED_OUT) {
        report.both_failed += 1;
    }
    Ok(Some(cargo))
}

/// What a side that did not end within [`Options::timeout`] made.
const TIMED_OUT: &str = "timed out";

/// What one side made, as comparable text.
fn outcome(opts: &Options, copy: &Path, dyndev: bool) -> Result<String, String> {
    let target = opts.scratch.join(if dyndev {
        "target-dyndev"
    } else {
        "target-cargo"
    });
    let command = |args: &[String]| {
        // coreutils' `timeout` runs the command in a process group of its
        // own and ends the whole group: tests' children too.
        let mut cmd = Command::new("timeout");
        cmd.args(["-k", "10"])
            .arg(format!("{}", opts.timeout.as_secs().max(1)));
        if dyndev {
            cmd.arg(&opts.dyndev).arg("dyndev");
        } else {
            cmd.arg(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        }
        cmd.args(args)
            .current_dir(copy)
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO_TERM_COLOR", "never")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("RUSTFLAGS")
            .stdin(std::process::Stdio::null());
        cmd
    };
    match &opts.compare {
        Compare::Tests(args) => {
            let mut full = vec!["test".to_owned(), "--no-fail-fast".to_owned()];
            full.extend(args.iter().cloned());
            let out = command(&full)
                .output()
                .map_err(|e| format!("failed to run the tests: {e}"))?;
            if timed_out(&out.status) {
                return Ok(format!("{TIMED_OUT} after {:?}", opts.timeout));
            }
            Ok(test_results(&out))
        }
        Compare::Programs(programs) => {
            let mut text = String::new();
            for (bin, args) in programs {
                let mut full = vec![
                    "run".to_owned(),
                    "-q".to_owned(),
                    "--bin".to_owned(),
                    bin.clone(),
                ];
                if !args.is_empty() {
                    full.push("--".into());
                    full.extend(args.iter().cloned());
                }
                let out = command(&full)
                    .output()
                    .map_err(|e| format!("failed to run `{bin}`: {e}"))?;
                if timed_out(&out.status) {
                    return Ok(format!("{TIMED_OUT} after {:?}: `{bin}`", opts.timeout));
                }
                let stderr = String::from_utf8_lossy(&out.stderr);
                if !out.status.success() && is_build_failure(&stderr) {
                    return Ok(format!("build failed\n{}", errors(&stderr)));
                }
                text.push_str(&format!(
                    "== {bin}: {:?}\n{}{}",
                    out.status.code(),
                    String::from_utf8_lossy(&out.stdout),
                    panics(&stderr)
                ));
            }
            Ok(text)
        }
    }
}

/// Whether cargo's output says the build failed (not a program or test).
/// Whether `timeout` ended the command (124, or 137 when it had to kill).
fn timed_out(status: &std::process::ExitStatus) -> bool {
    matches!(status.code(), Some(124 | 137))
}

fn is_build_failure(stderr: &str) -> bool {
    stderr.contains("error: could not compile")
        || stderr.contains("error[E")
        || stderr.contains("error: aborting due to")
}

/// rustc's error codes and first lines, as both sides would show them.
fn errors(stderr: &str) -> String {
    let mut lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error[E") || l.starts_with("error: could not compile"))
        .collect();
    lines.sort();
    lines.dedup();
    lines.join("\n")
}

/// The panic locations a run printed, sorted (threads race).
fn panics(text: &str) -> String {
    let mut found: Vec<String> = text
        .lines()
        .filter_map(|l| {
            l.split_once("panicked at ")
                .map(|(_, at)| doctest_dir_named(at.trim_end_matches(':')))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .map(|p| format!("panic at {p}\n"))
        .collect()
}

/// A panic location with rustdoc's temporary directory for merged
/// doctests (`/tmp/rustdoctestAbC123/doctest_bundle_2024.rs`) under one
/// name: it is new on every run, under cargo and dyndev alike.
fn doctest_dir_named(at: &str) -> String {
    const DIR: &str = "rustdoctest";
    let Some(start) = at.find(DIR) else {
        return at.to_owned();
    };
    let rest = &at[start + DIR.len()..];
    let end = rest.find('/').unwrap_or(rest.len());
    format!("{}{DIR}*{}", &at[..start], &rest[end..])
}

/// Each test binary's results: the binary (as cargo announces it, without
/// its path), each test and its outcome, the panics printed; then the exit
/// code. A build failure is only that.
fn test_results(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if is_build_failure(&stderr) && !stderr.contains("Running ") {
        return format!("build failed\n{}", errors(&stderr));
    }
    // Binaries are announced on stderr, their output is on stdout, in the
    // same order: pair them up by order.
    let binaries: Vec<String> = stderr
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            l.strip_prefix("Running ")
                .or_else(|| l.strip_prefix("Doc-tests "))
                .map(|rest| rest.split(" (").next().unwrap_or(rest).to_owned())
        })
        .collect();
    let mut sections: Vec<BTreeSet<String>> = Vec::new();
    let mut current: Option<BTreeSet<String>> = None;
    for line in stdout.lines() {
        if line.starts_with("running ") && line.ends_with(" tests") || line == "running 1 test" {
            if let Some(done) = current.take() {
                sections.push(done);
            }
            current = Some(BTreeSet::new());
            continue;
        }
        let Some(section) = current.as_mut() else {
            continue;
        };
        if let Some(rest) = line.strip_prefix("test ")
            && let Some((name, result)) = rest.rsplit_once(" ... ")
        {
            section.insert(format!("{name}: {result}"));
        } else if let Some((_, at)) = line.split_once("panicked at ") {
            section.insert(format!("panic at {}", at.trim_end_matches(':')));
        } else if line.starts_with("test result: ") {
            let summary = line.split("; finished").next().unwrap_or(line);
            section.insert(summary.to_owned());
        }
    }
    if let Some(done) = current.take() {
        sections.push(done);
    }
    let mut text = String::new();
    for (i, section) in sections.iter().enumerate() {
        let name = binaries.get(i).map_or("?", String::as_str);
        text.push_str(&format!("== {name}\n"));
        for line in section {
            text.push_str(line);
            text.push('\n');
        }
    }
    text.push_str(&format!("exit {:?}\n", out.status.code()));
    text
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("failed to read `{}`: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("failed to write `{}`: {e}", path.display()))
}

fn apply(site: &Site) -> Result<(), String> {
    let mut text = read(&site.file)?;
    text.replace_range(site.range.clone(), &site.with);
    write(&site.file, &text)
}

/// Copies a workspace, leaving out target dirs and version control.
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(to);
    for entry in walkdir::WalkDir::new(from).into_iter().filter_entry(|e| {
        let name = e.file_name().to_string_lossy();
        !(e.file_type().is_dir() && (name == "target" || name == ".git"))
    }) {
        let entry = entry.map_err(|e| e.to_string())?;
        let rel = entry.path().strip_prefix(from).map_err(|e| e.to_string())?;
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
        } else if entry.file_type().is_file() {
            std::fs::copy(entry.path(), &dest).map_err(|e| e.to_string())?;
        } else if entry.file_type().is_symlink() {
            // A link stays a link (crossbeam's crates share one module
            // file this way): an edit of the file reaches every crate
            // that links to it, as in the workspace itself.
            let link = std::fs::read_link(entry.path()).map_err(|e| e.to_string())?;
            std::os::unix::fs::symlink(&link, &dest).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// The member packages' directories, from `cargo metadata --no-deps`.
fn member_dirs(copy: &Path, only: &[String]) -> Result<Vec<PathBuf>, String> {
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["metadata", "--no-deps", "--format-version=1"])
        .current_dir(copy)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let mut dirs = Vec::new();
    for p in meta["packages"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default();
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        if let Some(manifest) = p["manifest_path"].as_str() {
            dirs.push(Path::new(manifest).parent().unwrap_or(copy).to_path_buf());
        }
    }
    Ok(dirs)
}

/// Every place an edit can be made now.
fn sites(copy: &Path, only: &[String], step: usize, rng: &mut Rng) -> Result<Vec<Site>, String> {
    let mut out = Vec::new();
    for dir in member_dirs(copy, only)? {
        for entry in walkdir::WalkDir::new(&dir)
            .into_iter()
            // A package nested in a member's directory is not the member's
            // (rand's `benches/`): its files never compile as the member's.
            .filter_entry(|e| {
                e.file_name() != "target"
                    && e.file_name() != ".git"
                    && (e.depth() == 0
                        || !e.file_type().is_dir()
                        || !e.path().join("Cargo.toml").exists())
            })
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "rs") && entry.file_type().is_file() {
                let text = read(path)?;
                if let Ok(file) = syn::parse_file(&text) {
                    file_sites(path, &text, &file, step, rng, &mut out);
                }
            }
        }
    }
    Ok(out)
}

/// Byte offsets of `LineColumn`s in one text.
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Lines<'a> {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { text, starts }
    }
    fn offset(&self, at: proc_macro2::LineColumn) -> Option<usize> {
        let start = *self.starts.get(at.line.checked_sub(1)?)?;
        let line = &self.text[start..];
        let bytes = line
            .char_indices()
            .nth(at.column)
            .map_or(line.len(), |(b, _)| b);
        Some(start + bytes)
    }
    fn range(&self, span: proc_macro2::Span) -> Option<std::ops::Range<usize>> {
        let (a, b) = (self.offset(span.start())?, self.offset(span.end())?);
        (a <= b && b <= self.text.len()).then_some(a..b)
    }
}

/// A literal's new text: another number, string, or truth value.
fn changed_literal(text: &str, rng: &mut Rng) -> Option<String> {
    if text == "true" {
        return Some("false".into());
    }
    if text == "false" {
        return Some("true".into());
    }
    if text.starts_with('"') && text.ends_with('"') && text.len() >= 2 {
        let inner = &text[1..text.len() - 1];
        return Some(format!("\"{inner}{}\"", ["~", "x", "!"][rng.below(3)]));
    }
    let digits: String = text
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '_')
        .collect();
    if digits.is_empty()
        || text.starts_with("0x")
        || text.starts_with("0b")
        || text.starts_with("0o")
    {
        return None;
    }
    let suffix = &text[digits.len()..];
    if suffix.starts_with('.') || suffix.starts_with('e') {
        return None;
    }
    let value: u64 = digits.replace('_', "").parse().ok()?;
    // Mostly the same width, so that nothing after it moves.
    let new = if rng.below(4) == 0 {
        value.saturating_add(10)
    } else if value % 10 == 9 {
        value - 1
    } else {
        value + 1
    };
    Some(format!("{new}{suffix}"))
}

/// The sites in one parsed file.
fn file_sites(
    path: &Path,
    text: &str,
    file: &syn::File,
    step: usize,
    rng: &mut Rng,
    out: &mut Vec<Site>,
) {
    let lines = Lines::new(text);
    let mut scan = Scan {
        path,
        lines: &lines,
        rng,
        out,
        context: Vec::new(),
    };
    scan.visit_file(file);
    // Items: added, removed, swapped, moved down, changed in attributes.
    let items = &file.items;
    let end = text.len();
    out.push(Site {
        file: path.to_path_buf(),
        kind: "a new function",
        range: end..end,
        with: format!("\npub fn dyndev_diff_{step}() -> u32 {{\n    {step}\n}}\n"),
    });
    out.push(Site {
        file: path.to_path_buf(),
        kind: "a new type with a trait impl",
        range: end..end,
        with: format!(
            "\npub struct DyndevDiff{step};\nimpl core::fmt::Display for DyndevDiff{step} {{\n    \
             fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {{\n        \
             f.write_str(\"{step}\")\n    }}\n}}\n"
        ),
    });
    for (i, item) in items.iter().enumerate() {
        let Some(range) = lines.range(item.span()) else {
            continue;
        };
        if let syn::Item::Fn(f) = item
            && f.sig.ident.to_string().starts_with("dyndev_diff_")
        {
            out.push(Site {
                file: path.to_path_buf(),
                kind: "a function the checker added, taken away",
                range: range.clone(),
                with: String::new(),
            });
        }
        if let syn::Item::Fn(f) = item
            && matches!(f.vis, syn::Visibility::Inherited)
            && f.sig.ident != "main"
            && let Some(at) = lines.range(f.sig.fn_token.span)
        {
            out.push(Site {
                file: path.to_path_buf(),
                kind: "a private function made pub(crate)",
                range: at.start..at.start,
                with: "pub(crate) ".into(),
            });
        }
        if !matches!(
            item,
            syn::Item::Use(_) | syn::Item::ExternCrate(_) | syn::Item::Macro(_)
        ) {
            out.push(Site {
                file: path.to_path_buf(),
                kind: "an attribute added to an item",
                range: range.start..range.start,
                with: "#[cfg(all())]\n".into(),
            });
        }
        out.push(Site {
            file: path.to_path_buf(),
            kind: "a blank line before an item",
            range: range.start..range.start,
            with: "\n".into(),
        });
        if let Some(next) = items.get(i + 1)
            && !matches!(item, syn::Item::Macro(_) | syn::Item::Use(_))
            && !matches!(next, syn::Item::Macro(_) | syn::Item::Use(_))
            && item.span().start().line != next.span().start().line
            && let Some(next_range) = lines.range(next.span())
            && range.end <= next_range.start
        {
            // Swap `item` and `next`, keeping what is between them.
            let between = &text[range.end..next_range.start];
            let swapped = format!(
                "{}{between}{}",
                &text[next_range.clone()],
                &text[range.clone()]
            );
            out.push(Site {
                file: path.to_path_buf(),
                kind: "two neighbouring items swapped",
                range: range.start..next_range.end,
                with: swapped,
            });
        }
    }
    // Files read by `include_str!`/`include_bytes!` with a literal path.
    for (target, _) in include_literals(text) {
        let included = path.parent().unwrap_or(Path::new("")).join(&target);
        if let Ok(data) = std::fs::read_to_string(&included) {
            let n = data.len();
            out.push(Site {
                file: included,
                kind: "a file include_str! reads",
                range: n..n,
                with: format!("{step}\n"),
            });
        }
    }
}

/// `include_str!("path")` and `include_bytes!("path")` literal paths.
fn include_literals(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for mac in ["include_str!(\"", "include_bytes!(\""] {
        for (at, _) in text.match_indices(mac) {
            let rest = &text[at + mac.len()..];
            if let Some(end) = rest.find('"') {
                out.push((rest[..end].to_owned(), at));
            }
        }
    }
    out
}

/// Walks a file for literals, tagging each with where it sits.
struct Scan<'a, 'b> {
    path: &'a Path,
    lines: &'a Lines<'a>,
    rng: &'b mut Rng,
    out: &'b mut Vec<Site>,
    /// What encloses the literal: `fn`, `generic fn`, `macro_rules!`, ...
    context: Vec<&'static str>,
}

impl Scan<'_, '_> {
    fn literal(&mut self, span: proc_macro2::Span, text: &str) {
        let Some(range) = self.lines.range(span) else {
            return;
        };
        if self.lines.text.get(range.clone()) != Some(text) {
            return;
        }
        let Some(with) = changed_literal(text, self.rng) else {
            return;
        };
        let kind = match self.context.last() {
            Some(k) => *k,
            None => return,
        };
        self.out.push(Site {
            file: self.path.to_path_buf(),
            kind,
            range,
            with,
        });
    }

    fn tokens(&mut self, stream: proc_macro2::TokenStream) {
        for tree in stream {
            match tree {
                proc_macro2::TokenTree::Literal(l) => {
                    let text = l.to_string();
                    self.literal(l.span(), &text);
                }
                proc_macro2::TokenTree::Group(g) => self.tokens(g.stream()),
                _ => {}
            }
        }
    }

    fn function(&mut self, attrs: &[syn::Attribute], sig: &syn::Signature, block: &syn::Block) {
        let kind = if sig.constness.is_some() {
            "a literal in a const fn's body"
        } else if sig.asyncness.is_some() {
            "a literal in an async fn's body"
        } else if !sig.generics.params.is_empty() {
            "a literal in a generic function's body"
        } else if attrs.iter().any(|a| a.path().is_ident("inline")) {
            "a literal in an #[inline] function's body"
        } else {
            "a literal in a function's body"
        };
        self.context.push(kind);
        self.visit_block(block);
        self.context.pop();
    }
}

impl<'ast> Visit<'ast> for Scan<'_, '_> {
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.function(&f.attrs, &f.sig, &f.block);
    }
    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.function(&f.attrs, &f.sig, &f.block);
    }
    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.function(&f.attrs, &f.sig, block);
        }
    }
    fn visit_item_const(&mut self, c: &'ast syn::ItemConst) {
        self.context.push("a constant's value");
        self.visit_expr(&c.expr);
        self.context.pop();
    }
    fn visit_item_static(&mut self, s: &'ast syn::ItemStatic) {
        self.context.push("a static's value");
        self.visit_expr(&s.expr);
        self.context.pop();
    }
    fn visit_item_macro(&mut self, m: &'ast syn::ItemMacro) {
        if m.mac.path.is_ident("macro_rules") {
            self.context.push("a literal in a macro_rules! definition");
            self.tokens(m.mac.tokens.clone());
            self.context.pop();
        }
    }
    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        // A path `include_str!` reads is changed as a file, not a name.
        let include = m
            .path
            .get_ident()
            .is_some_and(|i| i.to_string().starts_with("include"));
        if !self.context.is_empty() && !include {
            self.context.push("a literal in a macro call");
            self.tokens(m.tokens.clone());
            self.context.pop();
        }
    }
    fn visit_lit(&mut self, l: &'ast syn::Lit) {
        if self.context.is_empty() {
            return;
        }
        let text = l.to_token_stream_string();
        self.literal(l.span(), &text);
    }
    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {}
}

trait LitText {
    fn to_token_stream_string(&self) -> String;
}

impl LitText for syn::Lit {
    fn to_token_stream_string(&self) -> String {
        quote::ToTokens::to_token_stream(self).to_string()
    }
}

/// The mismatches as a report a person can act on.
pub fn describe(report: &Report) -> String {
    let mut text = format!(
        "{} edits, {} observable, {} where both failed to build or to end, {} mismatches\n",
        report.edits.len(),
        report.observable,
        report.both_failed,
        report.mismatches.len()
    );
    for m in &report.mismatches {
        text.push_str(&format!(
            "\nafter step {} ({}):\n--- cargo\n{}\n--- dyndev\n{}\n",
            m.step, m.edit, m.cargo, m.dyndev
        ));
    }
    if !report.mismatches.is_empty() {
        text.push_str("\nedits, in order:\n");
        for (i, e) in report.edits.iter().enumerate() {
            text.push_str(&format!("{:>4}. {e}\n", i + 1));
        }
    }
    text
}

/// Counts of edits by kind, for a summary.
pub fn kinds(report: &Report) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in &report.edits {
        let kind = e
            .split_once(": ")
            .map(|(_, rest)| rest.split(" at byte").next().unwrap_or(rest))
            .unwrap_or(e);
        *out.entry(kind.to_owned()).or_insert(0) += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn rustdocs_temporary_dir_is_left_out_of_a_panic_location() {
        assert_eq!(
            super::panics(
                "thread 'main' panicked at /tmp/rustdoctestFVEySW/doctest_bundle_2024.rs:64:1:\n"
            ),
            "panic at /tmp/rustdoctest*/doctest_bundle_2024.rs:64:1\n"
        );
        assert_eq!(
            super::panics("thread 't' panicked at src/lib.rs:3:5:\n"),
            "panic at src/lib.rs:3:5\n"
        );
    }
}
