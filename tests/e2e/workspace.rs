//! A virtual workspace: a library member with a build script, a binary
//! member with two bins and an example, a member that is both an rlib and a
//! cdylib, a proc-macro member, `workspace = true` inheritance, an optional
//! dependency behind a feature, `[patch]`, and a path dependency outside
//! the workspace.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::support::*;

fn workspace_project() -> Project {
    project()
        .file(
            "Cargo.toml",
            r#"
[workspace]
members = ["core", "app", "plugin", "macros"]
resolver = "2"

[workspace.package]
version = "0.2.0"
edition = "2021"

[workspace.dependencies]
log = "=0.4.35"
itoa = "=1.0.18"

[patch.crates-io]
cfg-if = { path = "../patched/cfg-if" }

[workspace.metadata.dyndev]
colour = "always"
"#,
        )
        .file(
            "core/Cargo.toml",
            r#"
[package]
name = "core-lib"
version.workspace = true
edition.workspace = true

[dependencies]
itoa.workspace = true
log = { workspace = true }
"#,
        )
        .file(
            "core/build.rs",
            r#"
fn main() {
    let out = std::env::var("OUT_DIR").unwrap();
    std::fs::write(
        format!("{out}/greeting.rs"),
        "pub const GREETING: &str = \"hi from core's build script\";\n",
    )
    .unwrap();
}
"#,
        )
        .file(
            "core/src/lib.rs",
            r#"
include!(concat!(env!("OUT_DIR"), "/greeting.rs"));

pub fn render(n: u32) -> String {
    log::debug!("rendering {n}");
    format!("{GREETING} #{}", itoa::Buffer::new().format(n))
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders() {
        assert!(super::render(3).ends_with(char::is_numeric));
    }
}
"#,
        )
        .file(
            "plugin/Cargo.toml",
            r#"
[package]
name = "plugin"
version.workspace = true
edition.workspace = true

[lib]
crate-type = ["rlib", "cdylib"]

[dependencies]
log.workspace = true
"#,
        )
        .file(
            "plugin/src/lib.rs",
            "pub fn plugin_name() -> &'static str { log::trace!(\"asked\"); \"plugin\" }\n",
        )
        .file(
            "macros/Cargo.toml",
            "[package]\nname = \"macros\"\nversion = \"0.2.0\"\nedition = \"2021\"\n\n\
             [lib]\nproc-macro = true\n",
        )
        .file(
            "macros/src/lib.rs",
            r#"
use proc_macro::{TokenStream, TokenTree};

/// `impl X { fn type_name() }` for `struct X`, without syn.
#[proc_macro_derive(Named)]
pub fn named(input: TokenStream) -> TokenStream {
    let mut tokens = input.into_iter();
    let name = loop {
        match tokens.next() {
            Some(TokenTree::Ident(i)) if i.to_string() == "struct" => break tokens.next().unwrap(),
            Some(_) => {}
            None => panic!("Named works on structs"),
        }
    };
    format!("impl {name} {{ pub fn type_name() -> &'static str {{ \"{name}\" }} }}")
        .parse()
        .unwrap()
}
"#,
        )
        .file(
            "app/Cargo.toml",
            r#"
[package]
name = "ws-app"
version.workspace = true
edition.workspace = true
default-run = "ws-app"

[dependencies]
core-lib = { path = "../core" }
plugin = { path = "../plugin" }
macros = { path = "../macros" }
log.workspace = true
cfg-if = "=1.0.5"
shared = { path = "../../shared" }
memchr = { version = "=2.8.3", optional = true }

[features]
fast = ["dep:memchr"]
"#,
        )
        .file(
            "app/src/main.rs",
            r#"
#[derive(macros::Named)]
struct Player;

fn main() {
    println!("{}", core_lib::render(5));
    println!("{} from {}", Player::type_name(), plugin::plugin_name());
    println!("shared: {}", shared::hello());
    println!("patched cfg-if: {}", cfg_if::PATCHED);
    #[cfg(feature = "fast")]
    println!("memchr: {:?}", memchr::memchr(b'c', b"abc"));
}
"#,
        )
        .file(
            "app/src/bin/ws-tool.rs",
            "fn main() { println!(\"tool: {}\", core_lib::render(1)); }\n",
        )
        .file(
            "app/examples/demo.rs",
            "fn main() { println!(\"demo: {}\", core_lib::render(9)); }\n",
        )
        .file(
            "../patched/cfg-if/Cargo.toml",
            "[package]\nname = \"cfg-if\"\nversion = \"1.0.5\"\nedition = \"2018\"\n",
        )
        .file(
            "../patched/cfg-if/src/lib.rs",
            "pub const PATCHED: bool = true;\n",
        )
        .file(
            "../shared/Cargo.toml",
            "[package]\nname = \"shared\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [dependencies]\nlog = \"=0.4.35\"\n",
        )
        .file(
            "../shared/src/lib.rs",
            "pub fn hello() -> &'static str { log::trace!(\"hello\"); \"hello\" }\n",
        )
        .build()
}

struct Fixture {
    project: Project,
    before: BTreeMap<PathBuf, Vec<u8>>,
    build: Run,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let project = workspace_project();
        let before = project.snapshot();
        let build = project.dyndev(&["build"]).success();
        Fixture {
            project,
            before,
            build,
        }
    })
}

const APP_OUTPUT: &str =
    "hi from core's build script #5\nPlayer from plugin\nshared: hello\npatched cfg-if: true\n";

#[test]
fn build_makes_every_binary_of_the_default_members() {
    let f = fixture();
    let app = run_outside_cargo(&f.project.bin("ws-app"), &[]).success();
    assert_eq!(app.stdout, APP_OUTPUT);
    let tool = run_outside_cargo(&f.project.bin("ws-tool"), &[]).success();
    assert_eq!(tool.stdout, "tool: hi from core's build script #1\n");
}

#[test]
fn unknown_config_keys_get_a_warning() {
    let f = fixture();
    assert!(
        f.build
            .stderr
            .contains("warning: unused key `workspace.metadata.dyndev.colour`"),
        "{}",
        f.build
    );
}

#[test]
fn run_follows_default_run_and_the_selection_flags() {
    let f = fixture();
    let out = f.project.dyndev(&["run", "-q"]).success();
    assert_eq!(out.stdout, APP_OUTPUT);
    let out = f
        .project
        .dyndev(&["run", "-q", "--bin", "ws-tool"])
        .success();
    assert_eq!(out.stdout, "tool: hi from core's build script #1\n");
    let out = f
        .project
        .dyndev(&["run", "-q", "--example", "demo"])
        .success();
    assert_eq!(out.stdout, "demo: hi from core's build script #9\n");
    let out = f
        .project
        .dyndev_in("app", &["run", "-q", "-p", "ws-app", "--features", "fast"])
        .success();
    assert_eq!(out.stdout, format!("{APP_OUTPUT}memchr: Some(2)\n"));
}

#[test]
fn run_says_when_there_is_nothing_to_run() {
    let f = fixture();
    let out = f.project.dyndev_in("core", &["run"]).code(101);
    assert!(
        out.stderr
            .contains("error: a bin target must be available for `cargo dyndev run`"),
        "{out}"
    );
}

#[test]
fn an_unknown_bin_is_cargos_error_listing_the_bins() {
    let f = fixture();
    let out = f.project.dyndev(&["build", "--bin", "nope"]).code(101);
    assert!(out.stderr.contains("no bin target named `nope`"), "{out}");
    assert!(
        out.stderr.contains("ws-tool"),
        "lists the bins there are: {out}"
    );
    assert_eq!(
        out.stderr_count("no bin target named"),
        1,
        "said once: {out}"
    );
}

#[test]
fn all_targets_build_and_test_harnesses_link_the_bundle() {
    let f = fixture();
    f.project.dyndev(&["build", "--all-targets"]).success();
    // The test harness of core-lib: an executable like any other.
    let harness = newest_harness("core_lib");
    let out = run_outside_cargo(&harness, &[]).success();
    assert!(out.stdout.contains("test tests::renders ... ok"), "{out}");
    assert_needs_a_bundle(&harness);
}

#[test]
fn a_build_of_only_a_proc_macro_needs_no_bundle() {
    let f = fixture();
    f.project.dyndev(&["build", "-p", "macros"]).success();
}

#[test]
fn plan_explains_the_workspace() {
    let f = fixture();
    let plan = f.project.plan_json(&[]);
    assert_eq!(
        plan_entry(&plan, "core-lib")["reason"]["kind"],
        "workspace-member"
    );
    assert_eq!(
        plan_entry(&plan, "ws-app")["reason"]["kind"],
        "workspace-member"
    );
    assert_eq!(
        plan_entry(&plan, "plugin")["reason"]["kind"],
        "workspace-member"
    );
    assert_eq!(plan_entry(&plan, "macros")["placement"], "host");
    for local in ["shared", "cfg-if"] {
        let e = plan_entry(&plan, local);
        assert_eq!(e["placement"], "static", "{local}: {e}");
        assert_eq!(e["reason"]["kind"], "local-path", "{local}: {e}");
    }
    for bundled in ["log", "itoa"] {
        let e = plan_entry(&plan, bundled);
        assert_eq!(e["placement"], "bundle", "{bundled}: {e}");
        assert_eq!(e["root"], true);
    }
}

#[test]
fn the_workspace_files_are_unchanged() {
    let f = fixture();
    f.project.dyndev(&["run", "-q"]).success();
    f.project.dyndev(&["plan"]).success();
    assert_eq!(f.project.snapshot(), f.before);
}
