//! `cargo dyndev test`: unit tests, integration tests with dev-dependencies
//! and doctests all run, with the test binaries linked against the bundle.

use crate::support::*;

/// `name` is unique per test: tests share a target dir, and identical
/// packages at identical paths share cargo's units.
fn tested_project(name: &str) -> Project {
    project()
        .file(
            "Cargo.toml",
            &format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
                 [lib]\nname = \"tested\"\n\n\
                 [dependencies]\nitoa = \"=1.0.18\"\n\n[dev-dependencies]\nmemchr = \"=2.8.3\"\n"
            ),
        )
        .file(
            "src/lib.rs",
            r#"
/// Formats a number.
///
/// ```
/// assert_eq!(tested::fmt(42), "42");
/// ```
pub fn fmt(n: u32) -> String {
    itoa::Buffer::new().format(n).to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        println!("captured unless --nocapture");
        assert_eq!(super::fmt(7), "7");
    }
}
"#,
        )
        .file(
            "tests/finds.rs",
            "#[test]\nfn finds() { assert_eq!(memchr::memchr(b'2', tested::fmt(123).as_bytes()), Some(1)); }\n",
        )
        .file(
            "tests/broken.rs",
            "#[test]\nfn fails_on_purpose() { assert_eq!(tested::fmt(1), \"2\"); }\n",
        )
        .build()
}

#[test]
fn unit_integration_and_doc_tests_run_against_the_bundle() {
    let p = tested_project("tested-a");
    let out = p.dyndev(&["test", "--lib", "--test", "finds", "--doc"]);
    // `--doc` with other targets is cargo's own error; run them apart.
    assert_eq!(out.code, Some(101), "{out}");
    let out = p.dyndev(&["test", "--lib", "--test", "finds"]).success();
    assert!(out.stdout.contains("test tests::formats ... ok"), "{out}");
    assert!(out.stdout.contains("test finds ... ok"), "{out}");
    let doc = p.dyndev(&["test", "--doc"]).success();
    assert!(
        doc.stdout.contains("src/lib.rs - fmt (line 4) ... ok"),
        "{doc}"
    );

    // The test harnesses bind to the bundle.
    let plan = p.plan_json(&["--tests"]);
    assert_eq!(
        plan_entry(&plan, "memchr")["placement"],
        "bundle",
        "{plan:#}"
    );
    assert_needs_a_bundle(&newest_harness("finds"));
}

#[test]
fn filters_arguments_and_failures_pass_through() {
    let p = tested_project("tested-b");
    let out = p
        .dyndev(&["test", "--lib", "formats", "--", "--nocapture"])
        .success();
    assert!(out.stdout.contains("captured unless --nocapture"), "{out}");
    assert!(out.stdout.contains("1 passed"), "{out}");
    let out = p.dyndev(&["test", "--test", "broken"]).code(101);
    assert!(
        out.stdout.contains("test fails_on_purpose ... FAILED"),
        "{out}"
    );
}

#[test]
fn two_checkouts_sharing_a_target_dir_test_at_once() {
    // Identical packages at identical paths: cargo would share their units
    // between the two, built against two different bundles.
    let (a, b) = (tested_project("twin"), tested_project("twin"));
    a.dyndev(&["test", "-q", "--lib"]).success();
    for _ in 0..3 {
        let doc = dyndev_cmd(&a.root, &["test", "--doc"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let lib = dyndev_cmd(&b.root, &["test", "--lib", "--test", "finds"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        for child in [doc, lib] {
            Run::from_output(child.wait_with_output().unwrap()).success();
        }
    }
}
