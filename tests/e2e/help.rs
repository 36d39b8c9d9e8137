//! The README shows `cargo dyndev --help`; this keeps it true.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-dyndev"))
        .arg("dyndev")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// The text between `<!-- name:start -->` and `<!-- name:end -->` in the
/// README, without the code fence around it.
fn readme_block(name: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = format!("<!-- {name}:start -->");
    let end = format!("<!-- {name}:end -->");
    let from = readme
        .find(&start)
        .unwrap_or_else(|| panic!("README has no {start}"))
        + start.len();
    let to = readme[from..].find(&end).unwrap() + from;
    let block = readme[from..to].trim();
    let block = block.strip_prefix("```text").unwrap_or(block);
    let block = block.strip_suffix("```").unwrap_or(block);
    block.trim().to_owned()
}

#[test]
fn the_readme_shows_the_current_help() {
    assert_eq!(readme_block("help"), help(&["--help"]).trim());
}

#[test]
fn every_command_has_help() {
    for cmd in [
        "build", "run", "test", "nextest", "plan", "compare", "watch",
    ] {
        let text = help(&[cmd, "--help"]);
        assert!(
            text.contains(&format!("Usage: cargo dyndev {cmd}")),
            "{text}"
        );
        // nextest's arguments are nextest's, cargo's options among them.
        let flag = if cmd == "nextest" {
            "arguments of `cargo nextest run`"
        } else {
            "--manifest-path"
        };
        assert!(text.contains(flag), "{cmd}: {text}");
    }
}
