//! Make-style dep-info files, as rustc writes them and cargo reads them:
//! the files a compile read (the crate's root first) and the environment
//! variables it read (`# env-dep:` lines). One reader for every part of
//! dyndev that asks what a compile depended on.

use std::path::{Path, PathBuf};

/// What a dep-info file says a compile read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DepInfo {
    /// Every prerequisite, in the order rustc lists them (the crate's
    /// root first), each once. Relative paths are relative to where rustc
    /// ran.
    pub files: Vec<PathBuf>,
    /// `# env-dep:` lines: `NAME=value`, or `NAME` for an unset variable.
    pub env: Vec<String>,
}

impl DepInfo {
    pub fn parse(text: &str) -> DepInfo {
        let mut info = DepInfo::default();
        for line in text.lines() {
            if let Some(env) = line.strip_prefix("# env-dep:") {
                info.env.push(env.to_owned());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let Some(colon) = find_separator(line) else {
                continue;
            };
            for word in split_escaped(&line[colon + 1..]) {
                let path = PathBuf::from(word);
                if !info.files.contains(&path) {
                    info.files.push(path);
                }
            }
        }
        info
    }

    /// The dep-info at `path`; `None` when it cannot be read.
    pub fn read(path: &Path) -> Option<DepInfo> {
        Some(DepInfo::parse(&std::fs::read_to_string(path).ok()?))
    }
}

/// The `:` that ends the target: followed by a space or the line's end,
/// and not escaped.
fn find_separator(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b':' if bytes.get(i + 1).is_none_or(|b| *b == b' ') => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Words separated by blanks, with `\ `, `\\`, `\#` and `\:` unescaped.
fn split_escaped(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ (' ' | '\\' | '#' | ':')) => word.push(n),
                Some(n) => {
                    word.push('\\');
                    word.push(n);
                }
                None => {}
            },
            ' ' | '\t' => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_in_rustcs_order_with_escapes_and_env() {
        let info = DepInfo::parse(
            "/t/deps/a-1: src/lib.rs src/my\\ mod.rs C\\:/x.rs\n\n\
             src/lib.rs:\nsrc/my\\ mod.rs:\n\n\
             # env-dep:CARGO_PKG_NAME=webshop\n# env-dep:UNSET\n# checksum:abc\n",
        );
        assert_eq!(
            info.files,
            [
                PathBuf::from("src/lib.rs"),
                PathBuf::from("src/my mod.rs"),
                PathBuf::from("C:/x.rs")
            ]
        );
        assert_eq!(info.env, ["CARGO_PKG_NAME=webshop", "UNSET"]);
    }
}
