//! The edit loop: after an edit to a workspace member, only the member is
//! rebuilt; the bundle is not relinked, not even touched.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::support::*;

/// A workspace whose binary is called `game` (names are unique per test:
/// binaries of all tests land in one shared target dir).
fn edit_project(game: &str) -> Project {
    project()
        .file(
            "Cargo.toml",
            &format!("[workspace]\nmembers = [\"engine\", \"{game}\"]\nresolver = \"2\"\n"),
        )
        .file(
            "engine/Cargo.toml",
            "[package]\nname = \"engine\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [dependencies]\nitoa = \"=1.0.18\"\n",
        )
        .file(
            "engine/src/lib.rs",
            "pub fn score(n: u32) -> String { format!(\"score {}\", itoa::Buffer::new().format(n)) }\n",
        )
        .file(
            &format!("{game}/Cargo.toml"),
            &format!(
                "[package]\nname = \"{game}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
                 [dependencies]\nengine = {{ path = \"../engine\" }}\nlog = \"=0.4.35\"\n"
            ),
        )
        .file(
            &format!("{game}/src/main.rs"),
            "fn main() { log::info!(\"start\"); println!(\"v1 {}\", engine::score(1)); }\n",
        )
        // A library next to the binary, in the same package.
        .file(
            &format!("{game}/src/lib.rs"),
            "pub fn title() -> &'static str { \"game\" }\n",
        )
        .build()
}

/// What identifies a file on disk: a relink would change all of it.
fn identity(path: &Path) -> (u64, i64, i64) {
    let m = std::fs::metadata(path).unwrap();
    (m.ino(), m.mtime(), m.mtime_nsec())
}

#[test]
fn editing_members_never_relinks_the_bundle() {
    let p = edit_project("edit-loop-game");
    p.dyndev(&["build"]).success();
    let bundle = p.bundle_file();
    let before = identity(&bundle);
    let out = run_outside_cargo(&p.bin("edit-loop-game"), &[]).success();
    assert_eq!(out.stdout, "v1 score 1\n");

    // An edit to the binary's own crate.
    p.write(
        "edit-loop-game/src/main.rs",
        "fn main() { log::info!(\"start\"); println!(\"v2 {} {}\", engine::score(2), edit_loop_game::title()); }\n",
    );
    let build = p.dyndev(&["build", "-v"]).success();
    assert!(!build.stderr.contains("Bundling"), "{build}");
    assert!(!build.stderr.contains("Probing"), "{build}");
    assert_eq!(
        run_outside_cargo(&p.bin("edit-loop-game"), &[])
            .success()
            .stdout,
        "v2 score 2 game\n"
    );

    // An edit to a library member the binary uses.
    p.write(
        "engine/src/lib.rs",
        "pub fn score(n: u32) -> String { format!(\"points {}\", itoa::Buffer::new().format(n)) }\n",
    );
    let build = p.dyndev(&["build"]).success();
    assert!(!build.stderr.contains("Bundling"), "{build}");
    assert_eq!(
        run_outside_cargo(&p.bin("edit-loop-game"), &[])
            .success()
            .stdout,
        "v2 points 2 game\n"
    );

    assert_eq!(p.bundle_file(), bundle, "same bundle");
    assert_eq!(
        identity(&bundle),
        before,
        "the bundle file was not rewritten"
    );
}

#[test]
fn a_new_dependency_rebuilds_the_bundle_with_it() {
    let p = edit_project("new-dep-game");
    p.dyndev(&["build"]).success();
    let first = p.bundle_file();
    p.write(
        "new-dep-game/Cargo.toml",
        "[package]\nname = \"new-dep-game\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dependencies]\nengine = { path = \"../engine\" }\nlog = \"=0.4.35\"\nmemchr = \"=2.8.3\"\n",
    );
    p.write(
        "new-dep-game/src/main.rs",
        "fn main() { println!(\"{:?} {}\", memchr::memchr(b'b', b\"abc\"), engine::score(3)); }\n",
    );
    let build = p.dyndev(&["build"]).success();
    assert!(build.stderr.contains("Bundling"), "{build}");
    assert_ne!(p.bundle_file(), first);
    let out = run_outside_cargo(&p.bin("new-dep-game"), &[]).success();
    assert_eq!(out.stdout, "Some(1) score 3\n");
    let plan = p.plan_json(&[]);
    assert_eq!(plan_entry(&plan, "memchr")["placement"], "bundle");
}
