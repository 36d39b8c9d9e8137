//! The edit a comparison makes before each build: a change that forces the
//! crate to be compiled again (`--edit`), or only a new mtime (`--touch`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

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
}

/// The edited text for build number `n`: the original plus an exported
/// function whose body changes with `n`. Exported (`no_mangle`), so the
/// compiler must generate code for it, as for a real one-line edit.
pub fn edited(original: &str, n: u64) -> String {
    let mut text = original.to_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "#[doc(hidden)] #[allow(dead_code)] #[unsafe(no_mangle)] \
         pub extern \"C\" fn __cargo_dyndev_compare_edit() -> u64 {{ {n} }}\n"
    ));
    text
}

impl Scenario {
    pub fn new(kind: Kind, file: &Path) -> Result<Scenario> {
        let original = crate::fs::read(file)?;
        Ok(Scenario {
            kind,
            file: file.to_owned(),
            original,
        })
    }

    /// Makes the change for build number `n`.
    pub fn apply(&self, n: u64) -> Result<()> {
        match self.kind {
            Kind::Edit => {
                let text = std::str::from_utf8(&self.original)
                    .with_context(|| format!("`{}` is not UTF-8", self.file.display()))?;
                crate::fs::write_atomic(&self.file, edited(text, n).as_bytes())
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
        let a = edited("fn main() {}", 1);
        let b = edited("fn main() {}", 2);
        assert!(a.starts_with("fn main() {}\n"));
        assert_ne!(a, b);
        assert!(a.contains("#[unsafe(no_mangle)]"));
        assert!(a.ends_with("{ 1 }\n"));
    }

    #[test]
    fn restores_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("main.rs");
        std::fs::write(&f, "fn main() {}").unwrap();
        {
            let s = Scenario::new(Kind::Edit, &f).unwrap();
            s.apply(7).unwrap();
            assert!(std::fs::read_to_string(&f).unwrap().contains("{ 7 }"));
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
        let s = Scenario::new(Kind::Touch, &f).unwrap();
        s.apply(1).unwrap();
        assert!(std::fs::metadata(&f).unwrap().modified().unwrap() > old);
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "pub fn f() {}");
    }

    #[test]
    fn edited_code_compiles() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("main.rs");
        std::fs::write(&f, edited("fn main() { println!(\"x\"); }", 3)).unwrap();
        let out = std::process::Command::new("rustc")
            .args(["--edition=2021", "--crate-type=bin", "-o"])
            .arg(dir.path().join("main"))
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
