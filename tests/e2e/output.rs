//! What the main commands print, pinned: a change of wording is a change
//! of these snapshots, reviewed like code. Paths, hashes, sizes and times
//! are redacted; `...` stands for lines that depend on what other tests
//! compiled into the shared target dir first.
//!
//! `SNAPSHOTS=overwrite cargo test --test e2e output` rewrites them.

use snapbox::{Assert, Redactions, str};

use crate::support::*;

fn assert() -> Assert {
    let mut r = Redactions::new();
    let add = |r: &mut Redactions, placeholder: &'static str, pattern: &str| {
        r.insert(placeholder, regex::Regex::new(pattern).unwrap())
            .unwrap();
    };
    add(&mut r, "[ELAPSED]", r"\d+\.\d+s");
    add(&mut r, "[SIZE]", r"\d+(\.\d)? (B|KiB|MiB|GiB)");
    add(&mut r, "[HASH]", r"[0-9a-f]{12,16}");
    add(&mut r, "[COUNT]", r"(?<redacted>\d[\d,]*) exported symbols");
    Assert::new().redact_with(r).action_env("SNAPSHOTS")
}

/// A small binary package named `name`, one per test.
fn output_project(name: &str) -> Project {
    project()
        .file(
            "Cargo.toml",
            &manifest(
                name,
                "[dependencies]\nitoa = \"=1.0.18\"\nlog = \"=0.4.35\"\n",
            ),
        )
            .file(
                "src/main.rs",
                "fn main() {\n    log::info!(\"quiet\");\n    println!(\"{}\", itoa::Buffer::new().format(7));\n}\n\n#[test]\nfn seven() {\n    assert_eq!(itoa::Buffer::new().format(7), \"7\");\n}\n",
            )
        .build()
}

/// The output with the project's root redacted, and without cargo's
/// `Blocking` lines, which only say that tests sharing the target dir ran
/// at the same time.
fn with_root(p: &Project, text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("Blocking waiting for"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .replace(&p.root.display().to_string(), "[ROOT]")
}

#[test]
fn build_then_plan() {
    let p = &output_project("pinned-out");
    let build = p.dyndev(&["build"]).success();
    assert().eq(
        with_root(p, &build.stderr),
        str![[r#"
...
   Compiling pinned-out v0.1.0 ([ROOT])
    Finished `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]
    Bundling 2 crates into 1 shared library
   Compiling pinned-out v0.1.0 ([ROOT])
    Finished `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]

"#]],
    );
    let plan = p.dyndev(&["plan"]).success();
    assert().eq(
        with_root(p, &plan.stderr),
        str![[r#"
    Planning `pinned-out`: 3 packages: 2 in the bundle, 1 static, 0 host-only
PACKAGE     VERSION  PLACEMENT  NOTE
itoa        1.0.18   bundle     used by the workspace
log         0.4.35   bundle     used by the workspace
pinned-out  0.1.0    static     workspace member
      Bundle 1 shared library: [SIZE], [COUNT] exported symbols
libdyndev_bundle_[HASH].so: 2 crates (itoa, log), [SIZE]; loaded by pinned-out (bin)

"#]],
    );
}

#[test]
fn an_edit_builds_the_member_alone() {
    let p = &output_project("pinned-edit");
    p.dyndev(&["build"]).success();
    p.write(
        "src/main.rs",
        "fn main() {\n    println!(\"{}\", itoa::Buffer::new().format(8));\n}\n",
    );
    let build = p.dyndev(&["build"]).success();
    assert().eq(
        with_root(p, &build.stderr),
        str![[r#"
   Compiling pinned-edit v0.1.0 ([ROOT])
    Finished `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]

"#]],
    );
}

#[test]
fn an_unsupported_profile_is_refused_with_what_to_change() {
    let p = project()
        .file(
            "Cargo.toml",
            &manifest(
                "pinned-abort",
                "[dependencies]\nitoa = \"=1.0.18\"\n\n[profile.dev]\npanic = \"abort\"\n",
            ),
        )
        .file("src/main.rs", "fn main() {}\n")
        .build();
    let out = p.dyndev(&["build"]).code(1);
    assert().eq(
        with_root(&p, &out.stderr),
        str![[r#"
...
   Compiling pinned-abort v0.1.0 ([ROOT])
    Finished `dev` profile [unoptimized + debuginfo] target(s) in [ELAPSED]
error: the `dev` profile sets `panic = "abort"`, which cannot work with a shared standard library

help: build with a profile without it (say `[profile.dev] lto = false, panic = "unwind"`), or use plain cargo for this profile

"#]],
    );
}
