//! The edit a comparison makes before each build: a change that forces the
//! crate to be compiled again (`--edit`), or only a new mtime (`--touch`).
//!
//! The edit adds a function and a `#[used]` static that points at it, so
//! the compiler must generate the function's code, which changes with each
//! build's number. Nothing in it is a thing a lint level can forbid: no
//! `unsafe` attribute (`no_mangle` is one, which `unsafe_code` rejects), no
//! `allow` (which `forbid` overrides), no public item (which `missing_docs`
//! or `unreachable_pub` may ask to document or hide), nothing unused (the
//! static is a root of the program, the function is used by it), no name
//! that starts with `_`, no unreadable literal, and documented, so the
//! edited crate compiles whatever it denies, `warnings` included.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Edit,
    Touch,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Edit => "edit",
            Kind::Touch => "touch",
        }
    }
}

/// One file of the mirrored sources, and its original bytes to restore.
#[derive(Debug)]
pub struct Scenario {
    pub kind: Kind,
    pub file: PathBuf,
    original: Vec<u8>,
    /// Where the edit goes in the original text, for [`Kind::Edit`].
    at: usize,
}

/// The items the edit adds for build number `n`, each line ending in a
/// line break.
pub fn edit_items(n: u64) -> String {
    format!(
        "/// Changed by `cargo dyndev compare` before each build.\n\
         #[used]\n\
         static CARGO_DYNDEV_COMPARE_EDIT: fn() -> u64 = cargo_dyndev_compare_edit;\n\
         /// Changed by `cargo dyndev compare` before each build.\n\
         fn cargo_dyndev_compare_edit() -> u64 {{\n    {}\n}}\n",
        grouped(n)
    )
}

/// `1_234_567`: digits in groups of three, as clippy's
/// `unreadable_literal` asks for.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('_');
        }
        out.push(c);
    }
    out
}

/// The edited text for build number `n`: the original with
/// [`edit_items`] at `at`, on lines of their own.
pub fn edited(original: &str, at: usize, n: u64) -> String {
    let (before, after) = original.split_at(at);
    let mut text = String::with_capacity(original.len() + 300);
    text.push_str(before);
    if !before.is_empty() && !before.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&edit_items(n));
    text.push_str(after);
    text
}

/// Where in a source file the edit goes: before its first `#[cfg(test)]`
/// module (clippy's `items_after_test_module` wants none after it), else
/// at the end. An error, with rustc's kind of position, when the file is
/// not a module of Rust items (an expression for `include!`, a data file),
/// where no item can be added.
pub fn placement(text: &str) -> Result<usize, String> {
    // syn skips a byte-order mark; its lines and columns are the rest's.
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let file = syn::parse_file(text).map_err(|e| {
        let at = e.span().start();
        let what = e.to_string();
        // syn lists every keyword an item may start with.
        let what = if what.starts_with("expected one of") {
            "expected an item".to_owned()
        } else {
            what
        };
        format!("at {}:{}: {what}", at.line, at.column + 1)
    })?;
    let test_module = file.items.iter().find_map(|item| match item {
        syn::Item::Mod(m) if m.attrs.iter().any(is_cfg_test) => m.attrs.first(),
        _ => None,
    });
    Ok(test_module
        .and_then(|first| offset(&text[bom..], first.pound_token.span.start()))
        .map_or(text.len(), |at| at + bom))
}

/// `#[cfg(test)]`, also within `all(...)` and the like.
fn is_cfg_test(attr: &syn::Attribute) -> bool {
    attr.path().is_ident("cfg")
        && matches!(&attr.meta, syn::Meta::List(l)
            if l.tokens.clone().into_iter().any(|t| mentions_test(&t)))
}

fn mentions_test(t: &proc_macro2::TokenTree) -> bool {
    match t {
        proc_macro2::TokenTree::Ident(i) => i == "test",
        proc_macro2::TokenTree::Group(g) => g.stream().into_iter().any(|t| mentions_test(&t)),
        _ => false,
    }
}

/// The byte offset of a line (from 1) and a column (in characters, from 0).
fn offset(text: &str, at: proc_macro2::LineColumn) -> Option<usize> {
    let mut start = 0;
    for _ in 1..at.line {
        start += text[start..].find('\n')? + 1;
    }
    let line = &text[start..];
    let column = line
        .char_indices()
        .nth(at.column)
        .map_or(line.len(), |(i, _)| i);
    Some(start + column)
}

/// How to measure when the edit cannot go in `shown`: the help of every
/// error that blames the edit.
pub fn way_out(shown: &Path) -> String {
    format!(
        "help: `--touch {0}` times a build after a new mtime alone; `--edit FILE` \
         edits another file, a module of the crate such as its root file",
        shown.display()
    )
}

impl Scenario {
    /// `shown` is the file as the user named it, for errors. A crate's root
    /// file is a module of items whatever syn makes of it (syntax newer
    /// than syn's): the edit goes at its end.
    pub fn new(kind: Kind, file: &Path, shown: &Path, crate_root: bool) -> Result<Scenario> {
        let original = crate::fs::read(file)?;
        let at = match kind {
            Kind::Touch => 0,
            Kind::Edit => {
                let text = std::str::from_utf8(&original).map_err(|_| {
                    anyhow!(
                        "compare's edit cannot go in `{}`: it is not UTF-8 text\n\n{}",
                        shown.display(),
                        way_out(shown)
                    )
                })?;
                placement(text).or_else(|why| {
                    if crate_root {
                        return Ok(text.len());
                    }
                    Err(anyhow!(
                        "compare's edit cannot go in `{0}`: it adds a function to a \
                         module's items, and `{0}` is not a module of Rust items ({why})\n\n{1}",
                        shown.display(),
                        way_out(shown)
                    ))
                })?
            }
        };
        Ok(Scenario {
            kind,
            file: file.to_owned(),
            original,
            at,
        })
    }

    /// Makes the change for build number `n`.
    pub fn apply(&self, n: u64) -> Result<()> {
        match self.kind {
            Kind::Edit => {
                let text = std::str::from_utf8(&self.original)
                    .with_context(|| format!("`{}` is not UTF-8", self.file.display()))?;
                crate::fs::write_atomic(&self.file, edited(text, self.at, n).as_bytes())
            }
            Kind::Touch => {
                let file = std::fs::File::options()
                    .write(true)
                    .open(&self.file)
                    .with_context(|| format!("failed to open `{}`", self.file.display()))?;
                file.set_modified(std::time::SystemTime::now())
                    .with_context(|| format!("failed to touch `{}`", self.file.display()))
            }
        }
    }

    /// Puts the original bytes back.
    pub fn restore(&self) -> Result<()> {
        crate::fs::write_atomic(&self.file, &self.original)
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let _ = self.restore();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_differ_per_build_and_keep_the_original() {
        let original = "fn main() {}";
        let at = placement(original).unwrap();
        let a = edited(original, at, 1);
        let b = edited(original, at, 2);
        assert!(a.starts_with("fn main() {}\n"));
        assert_ne!(a, b);
        assert!(a.contains("#[used]\nstatic CARGO_DYNDEV_COMPARE_EDIT: fn() -> u64"));
        assert!(a.ends_with("{\n    1\n}\n"), "{a}");
        for forbidden in ["unsafe", "allow", "pub ", "no_mangle", " _"] {
            assert!(!a.contains(forbidden), "{forbidden}: {a}");
        }
    }

    #[test]
    fn numbers_are_grouped_as_clippy_reads_them() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1_000");
        assert_eq!(
            grouped(1_712_345_678_901_234_567),
            "1_712_345_678_901_234_567"
        );
    }

    #[test]
    fn the_edit_goes_before_the_test_module_or_at_the_end() {
        let plain = "fn main() {}\n";
        assert_eq!(placement(plain), Ok(plain.len()));
        let tests = "fn main() {}\n\n/// Tests.\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() {}\n}\n";
        let at = placement(tests).unwrap();
        assert_eq!(&tests[at..at + 10], "/// Tests.");
        let text = edited(tests, at, 5);
        assert!(text.starts_with("fn main() {}\n\n/// Changed by"), "{text}");
        assert!(
            text.contains("    5\n}\n/// Tests.\n#[cfg(test)]"),
            "{text}"
        );

        // Also under `all(...)`, on a line with something before it, after
        // characters of several bytes and a byte-order mark.
        let odd = "\u{feff}//! é\nfn main() {} #[cfg(all(test, unix))] mod t {}\n";
        let at = placement(odd).unwrap();
        assert_eq!(&odd[at..at + 2], "#[");
        let text = edited(odd, at, 5);
        assert!(text.contains("fn main() {} \n/// Changed by"), "{text}");
        assert!(
            text.ends_with("}\n#[cfg(all(test, unix))] mod t {}\n"),
            "{text}"
        );

        // A module named `tests` that is always compiled is not one.
        let kept = "mod tests {}\n";
        assert_eq!(placement(kept), Ok(kept.len()));
    }

    #[test]
    fn a_file_that_is_not_a_module_of_items_has_no_place_for_the_edit() {
        let why = placement("40 + 2\n").unwrap_err();
        assert_eq!(why, "at 1:1: expected an item");
        assert!(placement("[package]\nname = \"a\"\n").is_err());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("value.rs");
        std::fs::write(&f, "40 + 2\n").unwrap();
        let err = Scenario::new(Kind::Edit, &f, Path::new("src/value.rs"), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`src/value.rs` is not a module of Rust items"),
            "{err}"
        );
        assert!(err.contains("`--touch src/value.rs`"), "{err}");
        assert!(err.contains("`--edit FILE`"), "{err}");
        // Touching it is fine.
        assert!(Scenario::new(Kind::Touch, &f, Path::new("src/value.rs"), false).is_ok());
        // A crate root syn cannot read is syn's limit, not the file's.
        let root = Scenario::new(Kind::Edit, &f, Path::new("src/main.rs"), true).unwrap();
        root.apply(3).unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.starts_with("40 + 2\n/// Changed by"), "{text}");
    }

    #[test]
    fn restores_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("main.rs");
        std::fs::write(&f, "fn main() {}").unwrap();
        {
            let s = Scenario::new(Kind::Edit, &f, Path::new("main.rs"), true).unwrap();
            s.apply(7).unwrap();
            assert!(std::fs::read_to_string(&f).unwrap().contains("    7\n"));
        }
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "fn main() {}");
    }

    #[test]
    fn touch_moves_the_mtime_and_keeps_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("lib.rs");
        std::fs::write(&f, "pub fn f() {}").unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let s = Scenario::new(Kind::Touch, &f, Path::new("lib.rs"), true).unwrap();
        s.apply(1).unwrap();
        assert!(std::fs::metadata(&f).unwrap().modified().unwrap() > old);
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "pub fn f() {}");
    }

    /// A crate that allows nothing: its root, and a module with lint
    /// levels of its own, each ending in a test module.
    const ROOT: &str = "//! A crate.\n\
        #![forbid(unsafe_code, warnings)]\n\
        #![deny(missing_docs, unused, dead_code, unreachable_pub, unused_results)]\n\
        #![deny(missing_debug_implementations, unused_qualifications, trivial_casts)]\n\
        #![deny(clippy::all, clippy::pedantic)]\n\n\
        mod strict;\n\n\
        /// Says hello.\n\
        pub fn hello() { strict::hello(); }\n\n\
        #[cfg(test)]\nmod tests {\n    #[test]\n    fn t() { super::hello(); }\n}\n";
    const MODULE: &str = "//! A module.\n\
        #![forbid(unsafe_code)]\n\n\
        pub(crate) fn hello() {}\n\n\
        #[cfg(test)]\nmod tests {\n    #[test]\n    fn t() { super::hello(); }\n}\n";

    /// Writes the crate with the edit in `edited` (`lib.rs` or
    /// `strict.rs`), as a library or a program.
    fn strict_crate(dir: &Path, edited_file: &str, bin: bool) -> PathBuf {
        let root = if bin {
            ROOT.replace(
                "/// Says hello.\npub fn hello()",
                "fn main() { hello(); }\nfn hello()",
            )
        } else {
            ROOT.to_owned()
        };
        for (name, text) in [("lib.rs", root.as_str()), ("strict.rs", MODULE)] {
            let text = if name == edited_file {
                edited(text, placement(text).unwrap(), 1_234_567_890)
            } else {
                text.to_owned()
            };
            std::fs::write(dir.join(name), text).unwrap();
        }
        dir.join("lib.rs")
    }

    fn compile(program: &str, args: &[&str], root: &Path, out: &Path) -> std::process::Output {
        std::process::Command::new(program)
            .args(args)
            .args([
                "-F",
                "unsafe-code",
                "-D",
                "warnings",
                "-D",
                "missing-docs",
                "-o",
            ])
            .arg(out)
            .arg(root)
            .output()
            .unwrap_or_else(|e| panic!("failed to run {program}: {e}"))
    }

    #[test]
    fn the_edit_compiles_whatever_the_crate_denies() {
        let dir = tempfile::tempdir().unwrap();
        for edition in ["2015", "2018", "2021", "2024"] {
            for file in ["lib.rs", "strict.rs"] {
                for bin in [false, true] {
                    let root = strict_crate(dir.path(), file, bin);
                    let edition = format!("--edition={edition}");
                    let kind = if bin {
                        "--crate-type=bin"
                    } else {
                        "--crate-type=lib"
                    };
                    for test in [&[][..], &["--test"][..]] {
                        let out = dir.path().join("out");
                        let args: Vec<&str> = [edition.as_str(), kind]
                            .iter()
                            .chain(test)
                            .copied()
                            .collect();
                        let out = compile("rustc", &args, &root, &out);
                        assert!(
                            out.status.success(),
                            "{edition} {file} bin={bin} {test:?}: {}",
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                }
            }
        }
    }

    /// Clippy's lints do not run in a build, but a crate that denies them
    /// should not see the edit as its own lapse.
    #[test]
    fn clippy_finds_nothing_to_say_about_the_edit() {
        let dir = tempfile::tempdir().unwrap();
        for file in ["lib.rs", "strict.rs"] {
            let root = strict_crate(dir.path(), file, false);
            for test in [&[][..], &["--test"][..]] {
                let args: Vec<&str> = ["--edition=2021", "--crate-type=lib"]
                    .iter()
                    .chain(test)
                    .copied()
                    .collect();
                let out = compile("clippy-driver", &args, &root, &dir.path().join("out"));
                assert!(
                    out.status.success(),
                    "{file} {test:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    /// The function's code is generated and linked into the program,
    /// optimised or not: each edit changes what the linker gets.
    #[test]
    fn the_edit_is_code_in_the_program() {
        use object::{Object, ObjectSymbol};
        let dir = tempfile::tempdir().unwrap();
        let root = strict_crate(dir.path(), "lib.rs", true);
        for opt in ["-Copt-level=0", "-Copt-level=3"] {
            let binary = dir.path().join("program");
            let out = compile("rustc", &["--edition=2021", opt], &root, &binary);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let bytes = std::fs::read(&binary).unwrap();
            let file = object::File::parse(&*bytes).unwrap();
            assert!(
                file.symbols().any(|s| s
                    .name()
                    .is_ok_and(|n| n.contains("cargo_dyndev_compare_edit"))),
                "{opt}: the edit's function is not in the program"
            );
        }
    }
}
