//! The edit, checked before the long build: rustc compiles it alone, under
//! the lint levels of the file it goes in, in a fraction of a second.
//!
//! The edit names nothing of the crate's ([`super::scenario`]), so whether
//! it compiles depends on two things only. Where it goes: the file must be
//! a module of items, which [`super::scenario::placement`] checks. And the
//! lint levels there, which this module gathers from where cargo and rustc
//! take them: the package's `[lints.rust]` (or the workspace's), the
//! rustflags of cargo's configuration and environment, and the `#![...]`
//! lint attributes of the crate root and of the edited file. A small crate
//! of those levels around the edit is compiled with `--emit=metadata`,
//! which runs every lint; only errors inside the edit count (the small
//! crate itself may well miss the documentation a crate-wide
//! `missing_docs` asks for). Levels set on a `mod` item or on a module
//! between the root and the file are not read: a build that fails after
//! the edit still says what to do.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Result, anyhow};
use quote::ToTokens;

use super::prepare::Comparison;
use super::scenario::{Kind, edit_items, way_out};
use crate::shell::{Shell, duration};

/// The attribute names that set lint levels.
const LEVELS: &[&str] = &["allow", "expect", "warn", "deny", "forbid"];

/// The `#![...]` attributes of a source file that set lint levels, as
/// source text; none if the file cannot be read as Rust.
pub fn lint_attributes(text: &str) -> Vec<String> {
    let Ok(file) = syn::parse_file(text) else {
        return Vec::new();
    };
    file.attrs
        .iter()
        .filter(|a| matches!(a.style, syn::AttrStyle::Inner(_)))
        .filter(|a| LEVELS.iter().any(|l| a.path().is_ident(l)))
        .map(|a| a.to_token_stream().to_string())
        .collect()
}

/// The flags cargo gives rustc for a package's `[lints.rust]`, or the
/// workspace's with `lints.workspace = true`: `--forbid=unsafe_code`,
/// ordered as cargo orders them (by priority, then as text).
pub fn manifest_lint_flags(package: &str, workspace: Option<&str>) -> Vec<String> {
    let parse = |text: &str| text.parse::<toml_edit::DocumentMut>().ok();
    let Some(package) = parse(package) else {
        return Vec::new();
    };
    let Some(lints) = package.get("lints") else {
        return Vec::new();
    };
    let inherited = lints
        .get("workspace")
        .and_then(|w| w.as_bool())
        .unwrap_or(false);
    let workspace = workspace.and_then(parse);
    let rust = if inherited {
        workspace
            .as_ref()
            .and_then(|w| w.get("workspace")?.get("lints")?.get("rust"))
    } else {
        lints.get("rust")
    };
    let Some(rust) = rust.and_then(|r| r.as_table_like()) else {
        return Vec::new();
    };
    let mut flags: Vec<(i64, String)> = rust
        .iter()
        .filter_map(|(name, value)| {
            let (level, priority) = match value.as_str() {
                Some(level) => (level, 0),
                None => {
                    let table = value.as_table_like()?;
                    let level = table.get("level")?.as_str()?;
                    let priority = table
                        .get("priority")
                        .and_then(|p| p.as_integer())
                        .unwrap_or(0);
                    (level, priority)
                }
            };
            ["allow", "warn", "deny", "forbid"]
                .contains(&level)
                .then(|| (priority, format!("--{level}={name}")))
        })
        .collect();
    flags.sort();
    flags.into_iter().map(|(_, flag)| flag).collect()
}

/// The lint flags among rustflags (`-D warnings`, `-Funsafe-code`,
/// `--cap-lints=warn`), each as one `--level=name` word.
pub fn rustflags_lint_flags(flags: &[String]) -> Vec<String> {
    let short = [
        ("-A", "allow"),
        ("-W", "warn"),
        ("-D", "deny"),
        ("-F", "forbid"),
    ];
    let long = ["allow", "warn", "force-warn", "deny", "forbid", "cap-lints"];
    let mut out = Vec::new();
    let mut words = flags.iter();
    while let Some(word) = words.next() {
        let mut take = |level: &str, attached: &str| {
            let name = if attached.is_empty() {
                words.next().cloned().unwrap_or_default()
            } else {
                attached.to_owned()
            };
            out.push(format!("--{level}={name}"));
        };
        if let Some((flag, level)) = short.iter().find(|(f, _)| word.starts_with(f)) {
            take(level, &word[flag.len()..]);
        } else if let Some(rest) = word.strip_prefix("--")
            && let Some(level) = long
                .iter()
                .find(|l| rest == **l || rest.starts_with(&format!("{l}=")))
        {
            take(level, rest[level.len()..].trim_start_matches('='));
        }
    }
    out
}

/// The source compiled: the crate root's lint attributes, then, when the
/// edited file is a module, a module with the file's own, around the
/// edit. Returns it with the first line of the edit.
pub fn check_source(root: &[String], module: Option<&[String]>, edit: &str) -> (String, usize) {
    let mut text =
        String::from("// The edit of `cargo dyndev compare`, under the crate's lint levels.\n");
    for a in root {
        text.push_str(a);
        text.push('\n');
    }
    if let Some(module) = module {
        text.push_str("mod edited {\n");
        for a in module {
            text.push_str(a);
            text.push('\n');
        }
    }
    let first_line = text.lines().count() + 1;
    text.push_str(edit);
    if module.is_some() {
        text.push_str("}\n");
    }
    (text, first_line)
}

/// rustc's rendered errors (from `--error-format=json` on stderr) whose
/// primary span starts at or after `first_line`.
pub fn errors_in_edit(stderr: &str, first_line: usize) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|d| d["level"] == "error")
        .filter(|d| {
            d["spans"].as_array().is_some_and(|spans| {
                spans.iter().any(|s| {
                    s["is_primary"] == true
                        && s["line_start"]
                            .as_u64()
                            .is_some_and(|l| l as usize >= first_line)
                })
            })
        })
        .filter_map(|d| d["rendered"].as_str().map(|r| r.trim_end().to_owned()))
        .collect()
}

impl Comparison<'_> {
    /// Compiles the edit alone under the edited file's lint levels; an
    /// error, with the way out, if rustc rejects it. Says nothing when it
    /// cannot tell (no crate found for the file, rustc not run).
    pub(super) fn check_edit(&self, shell: &Shell) -> Result<()> {
        if self.scenario.kind != Kind::Edit {
            return Ok(());
        }
        let Some(krate) = &self.edited_crate else {
            return Ok(());
        };
        let started = Instant::now();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let root_attrs = lint_attributes(&read(&krate.root));
        let module_attrs =
            (krate.root != self.scenario.file).then(|| lint_attributes(&read(&self.scenario.file)));
        let (source, first_line) =
            check_source(&root_attrs, module_attrs.as_deref(), &edit_items(1_000));
        let dir = self.dir.join("edit-check");
        crate::fs::create_dir_all(&dir)?;
        let file = dir.join("lib.rs");
        crate::fs::write_atomic(&file, source.as_bytes())?;

        let mut flags = manifest_lint_flags(
            &read(&krate.manifest),
            Some(&read(&self.copy_root.join("Cargo.toml"))),
        );
        flags.extend(rustflags_lint_flags(&self.rustflags()));
        let out = Command::new(crate::cargo::rustc_program())
            .current_dir(&self.copy_root)
            .args([
                "--crate-type=lib",
                "--crate-name=cargo_dyndev_compare_edit",
                "--emit=metadata",
                "--error-format=json",
            ])
            .arg(format!("--edition={}", krate.edition))
            .arg("--out-dir")
            .arg(&dir)
            .args(&flags)
            .arg(&file)
            .output();
        let Ok(out) = out else {
            return Ok(());
        };
        let errors = errors_in_edit(&String::from_utf8_lossy(&out.stderr), first_line);
        shell.verbose_status(
            "Checked",
            format_args!(
                "the edit of `{}` alone, under the crate's lint levels ({}{})",
                self.shown_file.display(),
                duration(started.elapsed().as_secs_f64() * 1000.0),
                if flags.is_empty() {
                    String::new()
                } else {
                    format!(", with {}", flags.join(" "))
                }
            ),
        );
        if errors.is_empty() {
            return Ok(());
        }
        Err(anyhow!(
            "compare's edit of `{}` would not compile under the crate's lint levels, \
             so nothing was built\n\n{}\n\n{}",
            self.shown_file.display(),
            errors.join("\n\n"),
            way_out(&self.typed_file)
        ))
    }

    /// The rustflags cargo would give the crate, from its configuration
    /// and environment; none if they cannot be read (the build will say
    /// why).
    fn rustflags(&self) -> Vec<String> {
        let options = cargo_config2::ResolveOptions::default().host_triple(self.host.clone());
        cargo_config2::Config::load_with_options(&self.copy_root, options)
            .ok()
            .and_then(|c| c.rustflags(self.host.as_str()).ok().flatten())
            .map(|f| f.flags)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_lint_attributes_of_a_file() {
        let text = "//! Doc.\n#![forbid(unsafe_code)]\n#![cfg_attr(docsrs, feature(doc_cfg))]\n\
                    #![deny(warnings, missing_docs)]\n#![doc = \"x\"]\n\n#[allow(dead_code)]\nfn f() {}\n";
        assert_eq!(
            lint_attributes(text),
            [
                "# ! [forbid (unsafe_code)]",
                "# ! [deny (warnings , missing_docs)]"
            ]
        );
        assert!(lint_attributes("40 + 2").is_empty());
    }

    #[test]
    fn turns_the_manifest_lints_into_cargos_flags() {
        let package = "[package]\nname = \"a\"\n\n[lints.rust]\nunsafe_code = \"forbid\"\n\
                       missing_docs = { level = \"deny\", priority = 1 }\ndead_code = \"warn\"\n\
                       unexpected_cfgs = { level = \"warn\", check-cfg = ['cfg(x)'] }\n\
                       [lints.clippy]\npedantic = \"deny\"\n";
        assert_eq!(
            manifest_lint_flags(package, None),
            [
                "--forbid=unsafe_code",
                "--warn=dead_code",
                "--warn=unexpected_cfgs",
                "--deny=missing_docs"
            ]
        );
        let inherits = "[package]\nname = \"a\"\n[lints]\nworkspace = true\n";
        let workspace = "[workspace]\n[workspace.lints.rust]\nunsafe_code = \"deny\"\n";
        assert_eq!(
            manifest_lint_flags(inherits, Some(workspace)),
            ["--deny=unsafe_code"]
        );
        assert!(manifest_lint_flags("[package]\nname = \"a\"\n", Some(workspace)).is_empty());
        assert!(manifest_lint_flags("not toml [", None).is_empty());
    }

    #[test]
    fn picks_the_lint_flags_out_of_rustflags() {
        let flags: Vec<String> = [
            "-D",
            "warnings",
            "-Funsafe-code",
            "-C",
            "target-cpu=native",
            "--cap-lints=warn",
            "--deny",
            "missing_docs",
            "-Aunused",
            "--cfg",
            "foo",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            rustflags_lint_flags(&flags),
            [
                "--deny=warnings",
                "--forbid=unsafe-code",
                "--cap-lints=warn",
                "--deny=missing_docs",
                "--allow=unused"
            ]
        );
    }

    #[test]
    fn only_errors_inside_the_edit_count() {
        let (source, first) = check_source(
            &["#![deny(missing_docs)]".into()],
            Some(&["#![forbid(unsafe_code)]".into()]),
            "fn f() {}\n",
        );
        assert_eq!(source.lines().nth(first - 1), Some("fn f() {}"));
        assert!(source.ends_with("fn f() {}\n}\n"), "{source}");
        let diagnostic = |line: usize, level: &str| {
            format!(
                "{{\"level\":\"{level}\",\"rendered\":\"at {line}\\n\",\"spans\":[{{\"is_primary\":true,\"line_start\":{line}}}]}}"
            )
        };
        let stderr = [
            diagnostic(1, "error"),
            diagnostic(first, "warning"),
            diagnostic(first + 1, "error"),
            "not json".into(),
        ]
        .join("\n");
        assert_eq!(
            errors_in_edit(&stderr, first),
            [format!("at {}", first + 1)]
        );
    }

    /// The old edit, an exported `no_mangle` function, under a crate that
    /// forbids unsafe code: what rustc says, found in a fraction of a
    /// second; the edit of today passes the same check.
    #[test]
    fn rustc_rejects_what_the_crate_forbids() {
        let dir = tempfile::tempdir().unwrap();
        let check = |edit: &str| {
            let (source, first) = check_source(
                &["#![deny(warnings, missing_docs)]".into()],
                Some(&["#![forbid(unsafe_code)]".into()]),
                edit,
            );
            let file = dir.path().join("lib.rs");
            std::fs::write(&file, source).unwrap();
            let out = Command::new("rustc")
                .args([
                    "--crate-type=lib",
                    "--emit=metadata",
                    "--error-format=json",
                    "--edition=2024",
                    "--deny=unsafe_code",
                    "--out-dir",
                ])
                .arg(dir.path())
                .arg(&file)
                .output()
                .unwrap();
            errors_in_edit(&String::from_utf8_lossy(&out.stderr), first)
        };
        let old = "#[doc(hidden)] #[allow(dead_code)] #[unsafe(no_mangle)] \
                   pub extern \"C\" fn __cargo_dyndev_compare_edit() -> u64 { 1 }\n";
        let errors = check(old);
        assert!(errors.iter().any(|e| e.contains("no_mangle")), "{errors:?}");
        assert_eq!(check(&edit_items(12_345)), Vec::<String>::new());
    }
}
