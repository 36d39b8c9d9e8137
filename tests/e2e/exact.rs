//! Exact crate graphs: every unit sees the crates it has under plain cargo
//! and no others. Members with partly overlapping dependencies: `exact-a`
//! uses memchr, `exact-b` serde_json (which uses memchr and itoa) and
//! `exact-a`, `exact-c` itoa and `exact-a`. serde_json's `impl
//! PartialEq<Value> for u8` makes `exact-a`'s test ambiguous if serde_json
//! is anywhere in its graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::OnceLock;

use crate::support::*;

fn exact_project() -> &'static Project {
    static P: OnceLock<Project> = OnceLock::new();
    P.get_or_init(|| {
        project()
            .file(
                "Cargo.toml",
                "[workspace]\nmembers = [\"a\", \"b\", \"c\"]\nresolver = \"2\"\n",
            )
            .file(
                "a/Cargo.toml",
                &manifest("exact-a", "[dependencies]\nmemchr = \"=2.8.3\"\n"),
            )
            .file(
                "a/src/lib.rs",
                r#"
/// Where `x` is.
///
/// ```
/// // Ambiguous too when serde_json is in the doctest's graph.
/// assert_eq!(exact_a::hits(b"abc"), vec![]);
/// ```
pub fn hits(h: &[u8]) -> Vec<u8> {
    memchr::memchr_iter(b'x', h).map(|i| i as u8).collect()
}

#[test]
fn none() {
    // Ambiguous (E0282) when serde_json is in this crate's graph.
    assert_eq!(hits(b"abc"), vec![]);
}
"#,
            )
            .file(
                "b/Cargo.toml",
                &manifest(
                    "exact-b",
                    "[dependencies]\nserde_json = \"=1.0.154\"\nexact-a = { path = \"../a\" }\n",
                ),
            )
            .file(
                "b/src/main.rs",
                "fn main() {\n    let v = serde_json::json!({ \"hits\": exact_a::hits(b\"xax\") });\n    println!(\"b {v}\");\n}\n",
            )
            .file(
                "c/Cargo.toml",
                &manifest(
                    "exact-c",
                    "[dependencies]\nitoa = \"=1.0.18\"\nexact-a = { path = \"../a\" }\n",
                ),
            )
            .file(
                "c/src/main.rs",
                "fn main() {\n    let n = exact_a::hits(b\"xx\").len() as u32;\n    println!(\"c {}\", itoa::Buffer::new().format(n));\n}\n",
            )
            .build()
    })
}

/// The third-party crates in each unit's graph under plain cargo.
fn closure(unit: &str) -> BTreeSet<String> {
    let crates: &[&str] = match unit {
        "exact-a" => &["memchr"],
        "exact-b" => &["serde_json", "serde_core", "zmij", "itoa", "memchr"],
        "exact-c" => &["itoa", "memchr"],
        _ => unreachable!(),
    };
    crates.iter().map(|c| (*c).to_owned()).collect()
}

/// The crates of every bundle library an ELF file loads, following the
/// libraries' own `NEEDED` entries, as the dynamic loader does.
fn loaded_crates(file: &Path, libs: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let dir = libs_dir(file);
    let mut seen = BTreeSet::new();
    let mut crates = BTreeSet::new();
    let mut todo = vec![file.to_path_buf()];
    while let Some(f) = todo.pop() {
        let info = cargo_dyndev::testing::dynamic_info(&f).unwrap();
        for needed in info.needed {
            let Some(in_lib) = libs.get(&needed) else {
                continue;
            };
            if seen.insert(needed.clone()) {
                crates.extend(in_lib.iter().cloned());
                todo.push(dir.join(&needed));
            }
        }
    }
    crates
}

/// Where the bundle's libraries are: the run path entry that holds them.
fn libs_dir(file: &Path) -> std::path::PathBuf {
    let info = cargo_dyndev::testing::dynamic_info(file).unwrap();
    info.runpath
        .iter()
        .map(std::path::PathBuf::from)
        .find(|d| {
            std::fs::read_dir(d).is_ok_and(|mut r| {
                r.any(|e| {
                    e.unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with("libdyndev_bundle_")
                })
            })
        })
        .unwrap_or_else(|| file.parent().unwrap().to_path_buf())
}

#[test]
fn tests_and_doctests_compile_as_under_cargo_when_another_member_uses_serde_json() {
    let p = exact_project();
    let out = p.dyndev(&["test"]).success();
    assert!(out.stdout.contains("test none ... ok"), "{out}");
    assert!(
        out.stdout.contains("a/src/lib.rs - hits (line 4) ... ok"),
        "{out}"
    );
}

#[test]
fn each_unit_loads_exactly_the_libraries_of_its_own_closure() {
    let p = exact_project();
    p.dyndev(&["build"]).success();
    let b = run_outside_cargo(&p.bin("exact-b"), &[]).success();
    assert_eq!(b.stdout, "b {\"hits\":[0,2]}\n");
    let c = run_outside_cargo(&p.bin("exact-c"), &[]).success();
    assert_eq!(c.stdout, "c 2\n");

    let plan = p.plan_json(&[]);
    let libs: BTreeMap<String, BTreeSet<String>> = plan["bundle"]["libs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let file = Path::new(l["file"].as_str().unwrap());
            let crates = l["crates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect();
            (
                file.file_name().unwrap().to_string_lossy().into_owned(),
                crates,
            )
        })
        .collect();
    assert!(
        libs.len() >= 3,
        "memchr, itoa and serde_json's own: {plan:#}"
    );
    let mut all = BTreeSet::new();
    for crates in libs.values() {
        for c in crates {
            assert!(all.insert(c.clone()), "`{c}` is in two libraries: {libs:?}");
        }
    }

    // What the plan says each unit loads is its closure, exactly.
    for unit in ["exact-b", "exact-c"] {
        let label = format!("{unit} (bin)");
        let planned: BTreeSet<String> = plan["bundle"]["libs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["users"].as_array().unwrap().iter().any(|u| u == &label))
            .flat_map(|l| l["crates"].as_array().unwrap().clone())
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(planned, closure(unit), "{unit}: {plan:#}");
    }

    // And what the binaries really load holds nothing else.
    for unit in ["exact-b", "exact-c"] {
        let loaded = loaded_crates(&p.bin(unit), &libs);
        assert!(loaded.is_subset(&closure(unit)), "{unit} loads {loaded:?}");
        assert!(!loaded.is_empty(), "{unit} loads no bundle library");
    }
    p.dyndev(&["test", "--no-run", "-p", "exact-a"]).success();
    let harness = newest_harness("exact_a");
    let loaded = loaded_crates(&harness, &libs);
    assert_eq!(
        loaded,
        closure("exact-a"),
        "exact-a's tests load {loaded:?}"
    );
}
