//! C code in the bundle: what each dependency's rlibs define (exported
//! from the libraries, or keeping a crate static when hidden), and which
//! packages a failed link names, to keep them static and try again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Result;

use super::Request;
use crate::inspect::NativeSymbols;

/// The C code inside each dependency's rlibs, by package id; packages
/// without any are left out.
pub(super) fn scan_native_code(req: &Request<'_>) -> Result<BTreeMap<String, NativeSymbols>> {
    let mut out = BTreeMap::new();
    for (id, rlibs) in req.rlibs_by_package {
        if req.graph.nodes.get(id).is_some_and(|n| n.member) {
            continue;
        }
        // Which variant of the package the bundle links is rustc's choice:
        // export only what every variant defines, so each export exists.
        let mut symbols: Option<NativeSymbols> = None;
        for rlib in rlibs {
            let found = crate::inspect::native_symbols(&[rlib.as_path()])?;
            symbols = Some(match symbols {
                None => found,
                Some(mut all) => {
                    all.exported
                        .retain(|s| found.exported.binary_search(s).is_ok());
                    all.hidden.extend(found.hidden);
                    all.hidden.sort();
                    all.hidden.dedup();
                    all
                }
            });
        }
        if let Some(symbols) = symbols.filter(|s| !s.exported.is_empty() || !s.hidden.is_empty()) {
            out.insert(id.clone(), symbols);
        }
    }
    Ok(out)
}

/// Finds the packages a failed link names: their rlibs
/// (`.../deps/libfoo-0123abcd.rlib`) or their build scripts' output
/// (`.../build/foo-sys-0123abcd/out/libfoo.a`).
pub(super) fn culprits(
    message: &str,
    req: &Request<'_>,
    bundled: &BTreeSet<String>,
) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    // Only the linker's own words: rustc also quotes the whole command
    // line, which names every rlib.
    let linker_says: String = message
        .lines()
        .filter(|l| !l.contains("\" \""))
        .collect::<Vec<_>>()
        .join("\n");
    let summary = linker_says
        .lines()
        .map(|l| l.trim().trim_start_matches("= note:").trim())
        .find(|l| l.contains("error:") && !l.starts_with("error: linking with"))
        .unwrap_or("the linker failed")
        .chars()
        .take(200)
        .collect::<String>();
    for word in linker_says.split(|c: char| {
        c.is_whitespace() || c == '\'' || c == '"' || c == '(' || c == ')' || c == '`'
    }) {
        let path = Path::new(word);
        // An rlib of the build: name it by its stem.
        if path.extension().is_some_and(|e| e == "rlib") {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str())
                && let Some(id) = req.packages_by_stem.get(stem)
            {
                found.insert(id.clone(), summary.clone());
            }
            continue;
        }
        // A build script's output dir: `build/<package>-<hash>/out/...`.
        let comps: Vec<&str> = word.split('/').collect();
        if let Some(i) = comps.iter().position(|c| *c == "build")
            && let Some((name, _hash)) = comps.get(i + 1).and_then(|c| c.rsplit_once('-'))
        {
            for id in bundled {
                if req.graph.nodes.get(id).is_some_and(|n| n.name == name) {
                    found.insert(id.clone(), summary.clone());
                }
            }
        }
    }
    // Never blame a package that is not in the bundle.
    found.retain(|id, _| bundled.contains(id));
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Layout;
    use crate::plan::Graph;
    use crate::settings::Settings;

    #[test]
    fn the_linker_is_blamed_only_for_what_it_names() {
        let message = r#"error: linking with `cc` failed: exit status: 1
  |
  = note:  "cc" "-Wl,--version-script=/t/list" "/t/deps/libgood-1.rlib" "/t/deps/libbad-2.rlib" "-o" "x.so"
  = note: rust-lld: error: relocation R_X86_64_TPOFF32 against counter cannot be used with -shared
          >>> defined in /t/deps/libbad-2.rlib(c.o)
"#;
        let graph = Graph {
            nodes: ["good", "bad"]
                .into_iter()
                .map(|n| {
                    (
                        n.to_owned(),
                        crate::plan::Node {
                            id: n.into(),
                            name: n.into(),
                            version: "1.0.0".into(),
                            source: crate::plan::Source::Registry,
                            member: false,
                            proc_macro: false,
                            lib_types: Some(vec!["lib".into()]),
                            deps: Vec::new(),
                        },
                    )
                })
                .collect(),
        };
        let by_stem = BTreeMap::from([
            ("libgood-1".to_owned(), "good".to_owned()),
            ("libbad-2".to_owned(), "bad".to_owned()),
        ]);
        let layout = Layout::new(Path::new("/t"), "debug", Path::new("/w"));
        let req = Request {
            layout: &layout,
            workspace_name: "w",
            generation: "g",
            entries: &[],
            packages_by_stem: &by_stem,
            rlibs_by_package: &BTreeMap::new(),
            built_packages: &BTreeSet::new(),
            graph: &graph,
            settings: &Settings::default(),
            previous: None,
        };
        let bundled = BTreeSet::from(["good".to_owned(), "bad".to_owned()]);
        let blamed = culprits(message, &req, &bundled);
        assert_eq!(blamed.keys().collect::<Vec<_>>(), ["bad"]);
        assert!(
            blamed["bad"].starts_with("rust-lld: error: relocation R_X86_64_TPOFF32"),
            "{blamed:?}"
        );
    }
}
