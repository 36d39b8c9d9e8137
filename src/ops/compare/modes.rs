//! The modes a comparison builds: the default static link, dyndev, and the
//! other linkers found on `PATH` (the fast ones, unless asked otherwise).

use anyhow::{Result, bail};
use serde::Serialize;

use crate::helpers::linker::LinkerMode;
use crate::shell::Shell;

/// How one mode builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mode {
    /// `static rust-lld`, `dyndev`, `static mold`.
    pub name: String,
    pub dyndev: bool,
    pub linker: LinkerMode,
}

impl Mode {
    pub(super) fn slug(&self) -> String {
        self.name.replace(' ', "-")
    }
}

/// Linkers compared by default besides rustc's own, when installed: the
/// ones a user might switch to for speed. The others found on `PATH` (gold,
/// GNU ld, ld.lld, which rust-lld already stands for) are many times slower
/// on a large program, or add nothing, so they run only when asked for.
const FAST_LINKERS: &[&str] = &["mold", "wild"];

/// dyndev, the default static link, then each other linker asked for.
pub(super) fn modes(shell: &Shell, linkers: Option<&str>) -> Result<Vec<Mode>> {
    let mut modes = vec![
        Mode {
            name: "static rust-lld".into(),
            dyndev: false,
            linker: LinkerMode::default_linker(),
        },
        Mode {
            name: "dyndev".into(),
            dyndev: true,
            linker: LinkerMode::default_linker(),
        },
    ];
    let found = LinkerMode::found_on_path();
    if linkers.is_none() {
        let slow: Vec<&str> = found
            .iter()
            .map(|m| m.name.as_str())
            .filter(|n| !FAST_LINKERS.contains(n))
            .collect();
        if !slow.is_empty() {
            shell.status(
                "Skipping",
                format_args!(
                    "{}, also on PATH: ask with `--linkers all` or by name",
                    slow.join(", ")
                ),
            );
        }
    }
    for linker in chosen_linkers(found, linkers)? {
        modes.push(Mode {
            name: format!("static {}", linker.name),
            dyndev: false,
            linker,
        });
    }
    Ok(modes)
}

/// The static linkers to compare besides rustc's default, from those found
/// on `PATH`: the fast ones by default, `all`, `none`, or a list of names.
fn chosen_linkers(found: Vec<LinkerMode>, linkers: Option<&str>) -> Result<Vec<LinkerMode>> {
    Ok(match linkers {
        None => found
            .into_iter()
            .filter(|m| FAST_LINKERS.contains(&m.name.as_str()))
            .collect(),
        Some("all") => found,
        Some("none") => Vec::new(),
        Some(list) => {
            let mut out = Vec::new();
            for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match found.iter().find(|m| m.name == name) {
                    Some(m) => out.push(m.clone()),
                    None => bail!(
                        "linker `{name}` was not found on PATH (found: {})",
                        if found.is_empty() {
                            "none".to_owned()
                        } else {
                            found
                                .iter()
                                .map(|m| m.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ),
                }
            }
            out
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linker(name: &str) -> LinkerMode {
        LinkerMode {
            name: name.into(),
            replace_default: true,
            args: Vec::new(),
        }
    }

    #[test]
    fn the_fast_linkers_are_compared_by_default_the_slow_ones_on_request() {
        let found = || -> Vec<LinkerMode> {
            ["mold", "ld.lld", "gold", "bfd", "wild"]
                .into_iter()
                .map(linker)
                .collect()
        };
        let names = |request: Option<&str>| -> Vec<String> {
            chosen_linkers(found(), request)
                .unwrap()
                .into_iter()
                .map(|m| m.name)
                .collect()
        };
        assert_eq!(names(None), ["mold", "wild"]);
        assert_eq!(
            names(Some("all")),
            ["mold", "ld.lld", "gold", "bfd", "wild"]
        );
        assert_eq!(names(Some("none")), Vec::<String>::new());
        assert_eq!(names(Some("gold, mold")), ["gold", "mold"]);
        let err = chosen_linkers(vec![linker("gold")], Some("mold")).unwrap_err();
        assert!(err.to_string().contains("found: gold"), "{err}");
        assert!(chosen_linkers(Vec::new(), None).unwrap().is_empty());
    }
}
