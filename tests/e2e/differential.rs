//! The differential checker on a small workspace: seeded edits of every
//! kind the checker makes, after each of which the program plain cargo
//! builds and the one `cargo dyndev` builds must print the same and exit
//! the same. The checker itself must catch a stale program.

#[path = "../differential/checker.rs"]
mod checker;

use std::path::Path;

use crate::support::*;

fn fixture() -> Project {
    project()
        .file(
            "Cargo.toml",
            "[workspace]\nmembers = [\"core\", \"mid\", \"app\"]\nresolver = \"2\"\n",
        )
        .file(
            "core/Cargo.toml",
            &manifest("diff-core", "[dependencies]\nitoa = \"=1.0.18\"\n"),
        )
        .file("core/src/data.txt", "data\n")
        .file(
            "core/src/lib.rs",
            r#"pub const BASE: u32 = 10;
pub static NAME: &str = "core";

macro_rules! twice {
    ($e:expr) => {
        $e * 2
    };
}

pub fn plain() -> u32 {
    3
}

pub fn label() -> String {
    format!("label-{}", itoa::Buffer::new().format(4))
}

#[inline]
pub fn inlined() -> u32 {
    5
}

pub fn generic<T: Into<u64>>(t: T) -> u64 {
    t.into() + 6
}

pub const fn konst() -> u32 {
    7
}

pub fn with_macro() -> u32 {
    twice!(8)
}

pub fn located() -> u32 {
    line!()
}

#[track_caller]
pub fn caller() -> u32 {
    std::panic::Location::caller().line()
}

pub const DATA: &str = include_str!("data.txt");

pub struct Point {
    pub x: u32,
}

impl Point {
    pub fn sum(&self) -> u32 {
        self.x + 9
    }
}

pub trait Shape {
    fn area(&self) -> u32 {
        11
    }
}

impl Shape for Point {}
"#,
        )
        .file(
            "mid/Cargo.toml",
            &manifest(
                "diff-mid",
                "[dependencies]\ncore = { path = \"../core\", package = \"diff-core\" }\n",
            ),
        )
        .file(
            "mid/src/lib.rs",
            r#"use core::Shape;

pub fn combined() -> u64 {
    core::plain() as u64 + core::generic(2u8) + 12
}

pub fn describe() -> String {
    format!("{} {} {}", core::label(), core::NAME, core::Point { x: 1 }.area())
}

pub fn here() -> u32 {
    core::caller()
}
"#,
        )
        .file(
            "app/Cargo.toml",
            &manifest(
                "diff-app",
                "[dependencies]\ncore = { path = \"../core\", package = \"diff-core\" }\n\
                 mid = { path = \"../mid\", package = \"diff-mid\" }\n",
            ),
        )
        .file(
            "app/src/main.rs",
            r#"fn main() {
    println!("{} {} {}", core::BASE, core::NAME, core::plain());
    println!("{} {} {}", core::label(), core::inlined(), core::generic(1u32));
    println!("{} {} {}", core::konst(), core::with_macro(), core::located());
    println!("{} {}", core::DATA.trim(), core::Point { x: 1 }.sum());
    println!("{} {} {}", mid::combined(), mid::describe(), mid::here());
    std::process::exit((core::plain() % 4) as i32);
}
"#,
        )
        .build()
}

fn options(p: &Project, scratch: &Path, dyndev: &Path, edits: usize) -> checker::Options {
    checker::Options {
        workspace: p.root.clone(),
        scratch: scratch.to_path_buf(),
        dyndev: dyndev.to_path_buf(),
        edits,
        seed: 17,
        compare: checker::Compare::Programs(vec![("diff-app".into(), Vec::new())]),
        packages: Vec::new(),
        verbose: false,
        timeout: std::time::Duration::from_secs(600),
    }
}

#[test]
fn generated_edits_give_the_same_programs_as_cargo() {
    let p = fixture();
    let scratch = tempfile::tempdir().unwrap();
    let report = checker::run(&options(
        &p,
        scratch.path(),
        Path::new(env!("CARGO_BIN_EXE_cargo-dyndev")),
        10,
    ))
    .unwrap();
    assert!(
        report.mismatches.is_empty(),
        "{}",
        checker::describe(&report)
    );
    // The edits reached the program: the check checked something.
    assert!(report.observable >= 3, "{}", checker::describe(&report));
}

/// A "dyndev" that runs the program it built first, whatever changed: the
/// checker must see that its program is stale.
#[test]
fn the_checker_catches_a_stale_program() {
    let p = fixture();
    let scratch = tempfile::tempdir().unwrap();
    let fake = scratch.path().join("stale-dyndev");
    std::fs::write(
        &fake,
        "#!/bin/sh\nshift\nbin=\"$CARGO_TARGET_DIR/debug/diff-app\"\n\
         if [ -x \"$bin\" ]; then exec \"$bin\"; fi\nexec cargo \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let report = checker::run(&options(&p, scratch.path(), &fake, 6)).unwrap();
    assert!(
        !report.mismatches.is_empty(),
        "{}",
        checker::describe(&report)
    );
}
