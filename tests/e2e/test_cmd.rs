//! `cargo dyndev test`: unit tests, integration tests with dev-dependencies
//! and doctests all run, with the test binaries linked against the bundle.

use std::collections::BTreeMap;
use std::process::Command;

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

/// A project whose tests write down the environment they see: an
/// integration test into `$DUMP`, and a doctest that fails on any variable
/// of dyndev's.
fn env_project(name: &str) -> Project {
    project()
        .file(
            "Cargo.toml",
            &manifest(name, "[dependencies]\nitoa = \"=1.0.18\"\n"),
        )
        .file(
            "src/lib.rs",
            r#"
/// ```
/// for (k, _) in std::env::vars() {
///     assert!(!k.contains("DYNDEV") && k != "RUSTC_WORKSPACE_WRAPPER", "{k}");
/// }
/// ```
pub fn fmt(n: u32) -> String {
    itoa::Buffer::new().format(n).to_owned()
}
"#,
        )
        .file(
            "tests/dump.rs",
            r#"
#[test]
fn dump() {
    let mut lines = vec![format!("cwd={}", std::env::current_dir().unwrap().display())];
    for (k, v) in std::env::vars() {
        lines.push(format!("{k}={v}"));
    }
    lines.sort();
    std::fs::write(std::env::var("DUMP").unwrap(), lines.join("\n")).unwrap();
}
"#,
        )
        .build()
}

/// The environment a test saw, by variable, without the values that
/// name the target dir (dyndev builds into a dir of its own).
fn dumped(path: &std::path::Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| *k != "LD_LIBRARY_PATH" && *k != "DUMP")
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn tests_see_the_environment_cargo_test_gives_them() {
    let p = env_project("env-seen");
    let dir = tempfile::tempdir().unwrap();
    let (plain, dyndev) = (dir.path().join("plain"), dir.path().join("dyndev"));
    let mut cargo = std::process::Command::new(env!("CARGO"));
    cargo
        .args(["test", "--quiet"])
        .current_dir(&p.root)
        .env("CARGO_TARGET_DIR", shared_target_dir())
        .env("CARGO_TERM_COLOR", "never")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTFLAGS")
        .env("DUMP", &plain);
    run(cargo).success();
    let out = run({
        let mut c = dyndev_cmd(&p.root, &["test"]);
        c.env("DUMP", &dyndev);
        c
    })
    .success();
    assert!(out.stdout.contains("test dump ... ok"), "{out}");
    assert!(
        out.stdout.contains("src/lib.rs - fmt (line 2) ... ok"),
        "{out}"
    );
    let (plain, dyndev) = (dumped(&plain), dumped(&dyndev));
    assert_eq!(
        dyndev["cwd"],
        p.root.display().to_string(),
        "tests run in the package's root"
    );
    assert_eq!(dyndev["CARGO_PKG_NAME"], "env-seen");
    assert_eq!(plain, dyndev);
}

#[test]
fn the_command_is_itself_even_in_the_wrappers_environment() {
    // As a test of a project run by `cargo dyndev test` could see it.
    let p = env_project("env-nested");
    let out = run({
        let mut c = dyndev_cmd(&p.root, &["test", "--lib"]);
        c.env("__CARGO_DYNDEV_STATE", "/nonexistent")
            .env("CARGO_DYNDEV_BUNDLE", "none");
        c
    })
    .success();
    assert!(out.stdout.contains("running 0 tests"), "{out}");
}

#[test]
fn no_fail_fast_runs_everything_and_sums_up_as_cargo_does() {
    let p = tested_project("tested-c");
    let out = p.dyndev(&["test", "--tests"]).code(101);
    assert!(
        out.stderr
            .contains("error: test failed, to rerun pass `--test broken`"),
        "{out}"
    );
    // Cargo stops at the first failing binary: `finds` comes after.
    assert!(!out.stderr.contains("tests/finds.rs"), "{out}");

    let out = p.dyndev(&["test", "--no-fail-fast"]).code(101);
    let running: Vec<&str> = out
        .stderr
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("Running "))
        .map(|l| l.split(" (").next().unwrap())
        .collect();
    assert_eq!(
        running,
        ["unittests src/lib.rs", "tests/broken.rs", "tests/finds.rs"],
        "{out}"
    );
    assert!(out.stderr.contains("   Doc-tests tested"), "{out}");
    assert!(
        out.stderr
            .contains("error: 1 target failed:\n    `--test broken`"),
        "{out}"
    );
}

#[test]
fn doctests_build_what_they_need_first() {
    // A dependency outside the workspace, bundled.
    let p = project()
        .file(
            "Cargo.toml",
            &manifest(
                "doc-fresh",
                "[dependencies]\nhelper = { path = \"../helper\" }\n",
            ),
        )
        .file(
            "src/lib.rs",
            "/// ```\n/// assert_eq!(doc_fresh::value(), 1);\n/// ```\n\
             pub fn value() -> u32 { helper::value() }\n",
        )
        .file("../helper/Cargo.toml", &manifest("helper", ""))
        .file("../helper/src/lib.rs", "pub fn value() -> u32 { 1 }\n")
        .build();
    // Nothing built yet for this workspace.
    let out = p.dyndev(&["test", "--doc"]).success();
    assert!(out.stdout.contains("1 passed"), "{out}");
    // The dependency changes: the doctest sees the new one.
    std::fs::write(
        p.root.join("../helper/src/lib.rs"),
        "pub fn value() -> u32 { 2 }\n",
    )
    .unwrap();
    let out = p.dyndev(&["test", "--doc"]).code(101);
    assert!(out.stdout.contains("left: 2"), "{out}");
}

/// `errs`'s doctest needs a feature of `log` that only `other` turns on:
/// it passes when the workspace is tested together, as under cargo, and
/// `other` has a failing doctest, so the run goes on past it.
fn doctest_workspace() -> Project {
    project()
        .file(
            "Cargo.toml",
            "[workspace]\nmembers = [\"errs\", \"other\"]\nresolver = \"2\"\n",
        )
        .file(
            "errs/Cargo.toml",
            &manifest("doc-errs", "[dependencies]\nlog = \"=0.4.35\"\n"),
        )
        .file(
            "errs/src/lib.rs",
            "//! ```\n\
             //! struct L;\n\
             //! impl log::Log for L {\n\
             //!     fn enabled(&self, _: &log::Metadata) -> bool { true }\n\
             //!     fn log(&self, _: &log::Record) {}\n\
             //!     fn flush(&self) {}\n\
             //! }\n\
             //! log::set_boxed_logger(Box::new(L)).unwrap();\n\
             //! assert_eq!(doc_errs::add(1, 2), 3);\n\
             //! ```\n\
             pub fn add(a: u32, b: u32) -> u32 { a + b }\n",
        )
        .file(
            "other/Cargo.toml",
            &manifest(
                "doc-other",
                "[dependencies]\nlog = { version = \"=0.4.35\", features = [\"std\"] }\n\
                 doc-errs = { path = \"../errs\" }\n",
            ),
        )
        .file(
            "other/src/lib.rs",
            "/// ```\n/// assert_eq!(doc_other::twice(2), 4);\n/// ```\n\
             pub fn twice(n: u32) -> u32 { doc_errs::add(n, n) }\n\
             /// ```\n/// assert_eq!(doc_other::twice(2), 5);\n/// ```\n\
             pub fn broken() {}\n",
        )
        .build()
}

/// The lines a user compares: what ran, in which order, and its results.
fn outline(run: &Run) -> Vec<String> {
    run.stderr
        .lines()
        .chain(run.stdout.lines())
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with("Running ") || l.starts_with("Doc-tests ") || l.starts_with("error:")
        })
        .map(|l| l.split(" (").next().unwrap().trim().to_owned())
        .chain(
            run.stdout
                .lines()
                .filter(|l| l.starts_with("test result:"))
                .map(|l| l.split("; finished").next().unwrap().to_owned()),
        )
        .collect()
}

#[test]
fn doctests_of_a_workspace_run_as_cargo_runs_them() {
    let p = doctest_workspace();
    let ours = p
        .dyndev(&["test", "--workspace", "--no-fail-fast"])
        .code(101);
    let mut cargo = std::process::Command::new(env!("CARGO"));
    cargo
        .args(["test", "--workspace", "--no-fail-fast"])
        .current_dir(&p.root)
        .env("CARGO_TARGET_DIR", shared_target_dir())
        .env("CARGO_TERM_COLOR", "never")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTFLAGS");
    let theirs = run(cargo).code(101);
    assert_eq!(outline(&ours), outline(&theirs), "{ours}\n{theirs}");
    let doc = outline(&ours);
    assert!(
        doc.contains(&"Doc-tests doc_errs".to_owned())
            && doc
                .contains(&"error: doctest failed, to rerun pass `-p doc-other --doc`".to_owned()),
        "{ours}"
    );
    // Nothing of dyndev's was left for cargo to take as built: the
    // doctests alone, and then everything, run the same again.
    let again = p
        .dyndev(&["test", "--doc", "--workspace", "--no-fail-fast"])
        .code(101);
    assert!(
        again.stdout.contains("test result: ok. 1 passed"),
        "{again}"
    );
    let all = p
        .dyndev(&["test", "--workspace", "--no-fail-fast"])
        .code(101);
    assert_eq!(outline(&all), outline(&theirs), "{all}");
}

/// `doctest = false` leaves a library's doctests out of `cargo test`, and
/// `--doc` runs them anyway: as cargo does, whose results must be ours.
#[test]
fn doctest_false_is_honoured_and_doc_overrides_it() {
    let p = project()
        .file(
            "Cargo.toml",
            "[workspace]\nmembers = [\"p1\", \"p2\"]\nresolver = \"2\"\n",
        )
        .file(
            "p1/Cargo.toml",
            &manifest("nodoc-p1", "[lib]\ndoctest = false\n"),
        )
        .file(
            "p1/src/lib.rs",
            "/// ```\n/// this is not rust\n/// ```\npub fn one() {}\n",
        )
        .file("p2/Cargo.toml", &manifest("nodoc-p2", ""))
        .file(
            "p2/src/lib.rs",
            "/// ```\n/// assert_eq!(nodoc_p2::two(), 2);\n/// ```\npub fn two() -> u32 { 2 }\n",
        )
        .build();
    let cargo = |args: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO"));
        c.args(args)
            .current_dir(&p.root)
            .env("CARGO_TARGET_DIR", shared_target_dir())
            .env("CARGO_TERM_COLOR", "never")
            .env_remove("RUSTC_WORKSPACE_WRAPPER");
        run(c)
    };
    let ours = p.dyndev(&["test"]).success();
    let theirs = cargo(&["test"]).success();
    assert_eq!(outline(&ours), outline(&theirs), "{ours}");
    assert!(!ours.stderr.contains("Doc-tests nodoc_p1"), "{ours}");
    let ours = p.dyndev(&["test", "-p", "nodoc-p1", "--doc"]).code(101);
    let theirs = cargo(&["test", "-p", "nodoc-p1", "--doc"]).code(101);
    assert_eq!(outline(&ours), outline(&theirs), "{ours}");
}

#[test]
fn a_configured_runner_runs_the_tests() {
    let p = project()
        .file("Cargo.toml", &manifest("run-through", ""))
        .file("src/lib.rs", "#[test]\nfn runs() {}\n")
        .file(
            ".cargo/config.toml",
            "[target.'cfg(unix)']\nrunner = [\"sh\", \"-c\", \"echo ran-by-runner; exec \\\"$0\\\" \\\"$@\\\"\"]\n",
        )
        .build();
    let out = p.dyndev(&["test", "--lib"]).success();
    assert!(out.stdout.contains("ran-by-runner"), "{out}");
    assert!(out.stdout.contains("test runs ... ok"), "{out}");
}

#[test]
fn nextest_runs_the_binaries_dyndev_built() {
    require_tool("cargo-nextest");
    let p = project()
        .file(
            "Cargo.toml",
            &manifest("under-nextest", "[dependencies]\nitoa = \"=1.0.18\"\n"),
        )
        .file(
            "src/lib.rs",
            "pub fn fmt(n: u32) -> String { itoa::Buffer::new().format(n).to_owned() }\n",
        )
        .file(
            "tests/two.rs",
            r#"
#[test]
fn passes() {
    assert_eq!(under_nextest::fmt(3), "3");
    for (k, _) in std::env::vars() {
        assert!(!k.contains("DYNDEV") && k != "RUSTC_WORKSPACE_WRAPPER", "{k}");
    }
}
#[test]
fn fails() { assert_eq!(under_nextest::fmt(1), "2"); }
"#,
        )
        .build();
    let out = p.dyndev(&["nextest", "run", "--no-fail-fast"]).code(100);
    assert!(
        out.stderr
            .contains("2 tests run: 1 passed, 1 failed, 0 skipped"),
        "{out}"
    );
    assert!(out.stderr.contains("FAIL"), "{out}");
    // nextest ran dyndev's binary, which binds to the bundle.
    assert!(out.stderr.contains("under-nextest::two fails"), "{out}");
    assert_needs_a_bundle(&newest_harness("two"));
    let out = p
        .dyndev(&["nextest", "run", "-E", "test(passes)"])
        .success();
    assert!(out.stderr.contains("1 test run: 1 passed"), "{out}");
}

/// A proc-macro crate's own tests are host code, linked with its host-only
/// dependencies as cargo links them; the workspace's other tests still use
/// the bundle. (clap's workspace: `clap_derive`'s tests use `heck`, which
/// nothing else does, and the build stopped with an internal error.)
#[test]
fn a_proc_macro_crates_tests_build_as_cargo_builds_them() {
    let p = project()
        .file(
            "Cargo.toml",
            "[workspace]\nmembers = [\"mac\", \"user\"]\nresolver = \"2\"\n",
        )
        .file(
            "mac/Cargo.toml",
            &manifest(
                "mac",
                "[lib]\nproc-macro = true\n\n[dependencies]\nitoa = \"=1.0.18\"\n",
            ),
        )
        .file(
            "mac/src/lib.rs",
            r#"
use proc_macro::TokenStream;

#[proc_macro]
pub fn forty_two(_: TokenStream) -> TokenStream {
    itoa::Buffer::new().format(42).parse().unwrap()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_with_a_host_only_dependency() {
        assert_eq!(itoa::Buffer::new().format(7), "7");
    }
}
"#,
        )
        .file(
            "user/Cargo.toml",
            &manifest(
                "user",
                "[dependencies]\nmac = { path = \"../mac\" }\nmemchr = \"=2.8.3\"\n",
            ),
        )
        .file(
            "user/src/lib.rs",
            "#[test]\nfn uses_the_macro() { assert_eq!(mac::forty_two!(), 42); \
             assert_eq!(memchr::memchr(b'4', b\"42\"), Some(0)); }\n",
        )
        .build();
    let out = p.dyndev(&["test", "--workspace"]).success();
    assert!(
        out.stdout
            .contains("test tests::formats_with_a_host_only_dependency ... ok"),
        "{out}"
    );
    assert!(out.stdout.contains("test uses_the_macro ... ok"), "{out}");
    assert_needs_a_bundle(&newest_harness("user"));
    // The proc-macro crate's harness is cargo's: its dependencies linked in.
    let mac = newest_harness("mac");
    let needed = cargo_dyndev::testing::dynamic_info(&mac).unwrap().needed;
    assert!(
        !needed.iter().any(|n| n.starts_with("libdyndev_bundle_")),
        "{}: {needed:?}",
        mac.display()
    );
}

const CUT_LIB: &str = r#"
pub const LIMIT: u32 = 10;

pub fn fmt(n: u32) -> String {
    let shown = n;
    itoa::Buffer::new().format(shown).to_owned()
}

pub fn pick<T: Copy>(a: T, _b: T) -> T {
    a
}

#[cfg(test)]
mod unit {
    #[test]
    fn one() {}
}
"#;

/// After an edit inside a plain function's body, test crates are linked
/// with the new library without being compiled; any other edit compiles
/// them. Either way they run the library as it now is.
#[test]
fn a_body_edit_relinks_the_tests_and_other_edits_compile_them() {
    let p = project()
        .file(
            "Cargo.toml",
            &manifest("cut-loop", "[dependencies]\nitoa = \"=1.0.18\"\n"),
        )
        .file("src/lib.rs", CUT_LIB)
        .file(
            "tests/shows.rs",
            "#[test]\nfn shows() {\n    let unused = 1;\n    println!(\"fmt={} limit={}\", cut_loop::fmt(1), cut_loop::LIMIT);\n}\n",
        )
        .file(
            "tests/picks.rs",
            "#[test]\nfn picks() { println!(\"picked={}\", cut_loop::pick(1, 2)); }\n",
        )
        .build();
    let test = || {
        p.dyndev(&["test", "--tests", "--", "--nocapture"])
            .success()
    };
    let first = test();
    assert!(first.stdout.contains("fmt=1 limit=10"), "{first}");
    assert!(first.stderr.contains("unused variable"), "{first}");
    assert!(!first.stderr.contains("Relinked"), "{first}");
    // The library is a shared library for its tests, each through a link
    // of its own (for the library's interface).
    let harness = newest_harness("shows");
    let needed = cargo_dyndev::testing::dynamic_info(&harness)
        .unwrap()
        .needed;
    let own = format!("~{}~", harness.file_name().unwrap().to_str().unwrap());
    assert!(
        needed
            .iter()
            .any(|n| n.starts_with("libcut_loop-") && n.contains(&own) && n.ends_with(".so")),
        "{needed:?}"
    );
    let inode =
        |p: &std::path::Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = inode(&harness);

    // A body: both test crates are only linked again, and the warning
    // their compile gave is shown again, as cargo shows it.
    p.write(
        "src/lib.rs",
        &CUT_LIB.replace("let shown = n;", "let shown = n + 100;"),
    );
    let body = test();
    assert!(body.stdout.contains("fmt=101 limit=10"), "{body}");
    assert!(
        body.stderr.contains(
            "Relinked 2 test targets without compiling them: nothing they compile against changed"
        ),
        "{body}"
    );
    assert!(body.stderr.contains("unused variable"), "{body}");
    // Not even linked: the same file, now bound to the new library.
    assert_eq!(inode(&harness), before);

    // The library's own unit tests are no concern of the others.
    let body_lib = CUT_LIB.replace("let shown = n;", "let shown = n + 100;");
    p.write(
        "src/lib.rs",
        &body_lib.replace("fn one() {}", "fn one() {}\n    #[test]\n    fn two() {}"),
    );
    let unit = test();
    assert!(unit.stdout.contains("test unit::two ... ok"), "{unit}");
    assert!(
        unit.stderr
            .contains("Relinked 2 test targets without compiling them"),
        "{unit}"
    );

    // A constant, then a generic function's body: what test crates compile
    // into themselves.
    let limit = CUT_LIB.replace("let shown = n;", "let shown = n + 100;");
    let limit = limit.replace("LIMIT: u32 = 10", "LIMIT: u32 = 11");
    p.write("src/lib.rs", &limit);
    let constant = test();
    assert!(constant.stdout.contains("fmt=101 limit=11"), "{constant}");
    assert!(!constant.stderr.contains("Relinked"), "{constant}");
    p.write("src/lib.rs", &limit.replace("    a\n}", "    _b\n}"));
    let generic = p
        .dyndev(&["test", "-v", "--tests", "--", "--nocapture"])
        .success();
    assert!(generic.stdout.contains("picked=2"), "{generic}");
    // `-v` says why: the token that changed the library's interface, with
    // its file's path, and what that meant for the test crates.
    assert!(
        generic.stderr.contains(
            "its interface is new: in `src/lib.rs`, line 10 changed outside the body of a \
             plain function"
        ),
        "{generic}"
    );
    assert!(
        generic
            .stderr
            .contains("in full: the interface of `cut_loop` changed"),
        "{generic}"
    );
    assert!(!generic.stderr.contains("Relinked"), "{generic}");
}

/// A library with a section the linker gathers from the whole program
/// (as `linkme` makes) stays static in its test binaries: in a shared
/// library its part of the list would be apart from the executable's.
#[test]
fn a_library_with_a_gathered_section_links_its_tests_statically() {
    let p = project()
        .file(
            "Cargo.toml",
            &manifest("gathered", "[dependencies]\nitoa = \"=1.0.18\"\n"),
        )
        .file(
            "src/lib.rs",
            r#"
#[used]
#[unsafe(link_section = "gathered_list")]
static ENTRY: u32 = 7;

unsafe extern "C" {
    static __start_gathered_list: u32;
}

pub fn first() -> u32 {
    unsafe { std::ptr::addr_of!(__start_gathered_list).read() }
}

pub fn fmt(n: u32) -> String {
    itoa::Buffer::new().format(n).to_owned()
}
"#,
        )
        .file(
            "tests/reads.rs",
            "#[test]\nfn reads() { assert_eq!(gathered::first(), 7); println!(\"{}\", gathered::fmt(1)); }\n",
        )
        .build();
    p.dyndev(&["test", "--test", "reads"]).success();
    let needed = cargo_dyndev::testing::dynamic_info(&newest_harness("reads"))
        .unwrap()
        .needed;
    assert!(
        !needed.iter().any(|n| n.starts_with("libgathered-")),
        "{needed:?}"
    );
    assert!(
        needed.iter().any(|n| n.starts_with("libdyndev_bundle_")),
        "{needed:?}"
    );
}

/// A file a library includes is data, whatever it holds: a change to it,
/// even in a comment of a file that parses as Rust, compiles the tests.
#[test]
fn an_included_file_counts_byte_for_byte() {
    let p = project()
        .file(
            "Cargo.toml",
            &manifest("included", "[dependencies]\nitoa = \"=1.0.18\"\n"),
        )
        .file(
            "src/lib.rs",
            "pub const TEMPLATE: &str = include_str!(\"template.rs\");\n\npub fn fmt(n: u32) -> String {\n    itoa::Buffer::new().format(n).to_owned()\n}\n",
        )
        .file("src/template.rs", "// template v1\nfn main() {}\n")
        .file(
            "tests/shows.rs",
            "#[test]\nfn shows() { println!(\"first={:?} n={}\", included::TEMPLATE.lines().next(), included::fmt(1)); }\n",
        )
        .build();
    let test = || {
        p.dyndev(&["test", "-v", "--test", "shows", "--", "--nocapture"])
            .success()
    };
    test();
    p.write("src/template.rs", "// template v2\nfn main() {}\n");
    let out = test();
    assert!(
        out.stdout.contains("first=Some(\"// template v2\")"),
        "{out}"
    );
    assert!(!out.stderr.contains("Relinked"), "{out}");
    assert!(
        out.stderr
            .contains("`src/template.rs` changed, and it is not only a module's source"),
        "{out}"
    );
}

/// What a relinked test binary does not link again must be there when it
/// runs: a crate the library starts to use joins every test crate's graph
/// (they compile), and a symbol the executable defines that the library
/// starts to call is found by linking again.
#[test]
fn a_body_that_reaches_for_new_code_is_linked_or_compiled_again() {
    let p = project()
        .file(
            "Cargo.toml",
            "[workspace]\nmembers = [\"x\", \"y\"]\nresolver = \"2\"\n",
        )
        .file("y/Cargo.toml", &manifest("y", ""))
        .file("y/src/lib.rs", "pub fn y_value() -> u32 {\n    40\n}\n")
        .file(
            "x/Cargo.toml",
            &manifest("x", "[dependencies]\ny = { path = \"../y\" }\n"),
        )
        .file(
            "x/src/lib.rs",
            "unsafe extern \"Rust\" {\n    fn backend() -> u32;\n}\n\npub fn x_value() -> u32 {\n    1\n}\n\npub fn from_backend() -> u32 {\n    0\n}\n",
        )
        .file(
            "x/tests/t.rs",
            "#[unsafe(no_mangle)]\nfn backend() -> u32 { 77 }\n#[test]\nfn t() { println!(\"x={} backend={}\", x::x_value(), x::from_backend()); }\n",
        )
        .build();
    let test = || {
        p.dyndev(&["test", "-v", "-p", "x", "--test", "t", "--", "--nocapture"])
            .success()
    };
    test();
    let lib = std::fs::read_to_string(p.root.join("x/src/lib.rs")).unwrap();
    p.write(
        "x/src/lib.rs",
        &lib.replacen("    0\n", "    unsafe { backend() }\n", 1),
    );
    let backend = test();
    assert!(backend.stdout.contains("x=1 backend=77"), "{backend}");
    assert!(
        backend.stderr.contains("Relinked 1 test target"),
        "{backend}"
    );
    let lib = std::fs::read_to_string(p.root.join("x/src/lib.rs")).unwrap();
    p.write(
        "x/src/lib.rs",
        &lib.replacen("    1\n", "    y::y_value() + 2\n", 1),
    );
    let uses_y = test();
    assert!(uses_y.stdout.contains("x=42 backend=77"), "{uses_y}");
    assert!(
        uses_y.stderr.contains("it starts to use the crate `y`"),
        "{uses_y}"
    );
}

/// Tests that find the package's program beside their own binary
/// (`current_exe()` then `../name`, as ripgrep's do) run the program this
/// build made, as under `cargo test`: not the user's static one of an
/// older build, which lies beside the build dir's units.
#[test]
fn a_test_finds_the_program_of_its_own_build_beside_it() {
    let finds = r#"
#[test]
fn runs_the_program_beside_it() {
    let exe = std::env::current_exe().unwrap();
    let program = exe.parent().unwrap().join("../beside-programs");
    let out = std::process::Command::new(&program).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "two\n", "{}", program.display());
}
"#;
    let p = project()
        .file(
            "Cargo.toml",
            &manifest("beside-programs", "[dependencies]\nitoa = \"=1.0.18\"\n"),
        )
        .file(
            "src/main.rs",
            "fn main() { println!(\"{}\", if itoa::Buffer::new().format(1) == \"1\" { \"one\" } else { \"?\" }); }\n",
        )
        .file("tests/finds.rs", finds)
        .build();
    // The user's own build, of the first sources, in the shared build dir.
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .arg("build")
        .current_dir(&p.root)
        .env("CARGO_TARGET_DIR", shared_target_dir())
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTFLAGS");
    run(cargo).success();
    let stale = shared_target_dir().join("debug/beside-programs");
    assert_eq!(run_outside_cargo(&stale, &[]).stdout, "one\n");

    p.write(
        "src/main.rs",
        "fn main() { println!(\"{}\", if itoa::Buffer::new().format(2) == \"2\" { \"two\" } else { \"?\" }); }\n",
    );
    let out = p.dyndev(&["test"]).success();
    assert!(
        out.stdout
            .contains("test runs_the_program_beside_it ... ok"),
        "{out}"
    );
    require_tool("cargo-nextest");
    let out = p.dyndev(&["nextest", "run"]).success();
    assert!(out.stderr.contains("1 test run: 1 passed"), "{out}");
    // The user's program is left as the user built it.
    assert_eq!(run_outside_cargo(&stale, &[]).stdout, "one\n");
}
