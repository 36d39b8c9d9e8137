//! One package with a typical graph: two versions of one crate (one
//! renamed), `#[macro_use] extern crate`, serde derive, a `-sys` crate
//! that compiles C in its build script, `#![no_std]` crates. Checks what a
//! user would: output, exit status, what the binary links, and that the
//! project's files are untouched.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;

use crate::support::*;

const MANIFEST: &str = r#"
[package]
name = "basic-app"
version = "0.3.1"
edition = "2021"
description = "a dyndev test fixture"

[dependencies]
log = "=0.4.35"
itoa = "=1.0.18"
itoa_old = { package = "itoa", version = "=0.4.8" }
serde = { version = "=1.0.229", features = ["derive"] }
serde_json = "=1.0.154"
libz-sys = { version = "=1.1.31", default-features = false, features = ["static"] }
native-sys = { path = "../native-sys" }

# A path dependency stays static unless included.
[package.metadata.dyndev]
include = ["native-sys"]
"#;

/// A `-sys` crate of our own, outside the package: its build script
/// compiles C (visible symbols) and generates Rust that `lib.rs` includes.
const NATIVE_MANIFEST: &str = r#"
[package]
name = "native-sys"
version = "0.1.0"
edition = "2021"
links = "native"
build = "build.rs"
"#;

const NATIVE_BUILD: &str = r#"
use std::process::Command;

fn main() {
    let out = std::env::var("OUT_DIR").unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let mut objects = Vec::new();
    for c in ["native.c", "only_declared.c"] {
        let obj = format!("{out}/{c}.o");
        let ok = Command::new(&cc).args(["-c", "-fPIC", c, "-o", &obj]).status().unwrap();
        assert!(ok.success(), "compiling {c} failed");
        objects.push(obj);
    }
    let ok = Command::new("ar")
        .args(["crs", &format!("{out}/libnative.a")])
        .args(&objects)
        .status()
        .unwrap();
    assert!(ok.success(), "archiving failed");
    println!("cargo:rustc-link-search=native={out}");
    println!("cargo:rustc-link-lib=static=native");
    println!("cargo:rerun-if-changed=native.c");
    println!("cargo:rerun-if-changed=only_declared.c");
    std::fs::write(
        format!("{out}/generated.rs"),
        "pub const GREETING: &str = \"hello from a build script\";\n",
    )
    .unwrap();
}
"#;

const NATIVE_C: &str =
    "static int calls;\nint native_add(int a, int b) { calls++; return a + b; }\n";

/// In an object of its own that no Rust code of the crate calls: only an
/// explicit export can bring it into the bundle.
const ONLY_DECLARED_C: &str = "int native_mul(int a, int b) { return a * b; }\n";

const NATIVE_LIB: &str = r#"
#![no_std]
include!(concat!(env!("OUT_DIR"), "/generated.rs"));

extern "C" {
    pub fn native_add(a: i32, b: i32) -> i32;
    pub fn native_mul(a: i32, b: i32) -> i32;
}

pub fn add(a: i32, b: i32) -> i32 {
    unsafe { native_add(a, b) }
}
"#;

const MAIN: &str = r##"
#[macro_use]
extern crate log;

use std::io::Read;

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Point {
    x: i32,
    y: i32,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("panic") => panic!("asked to panic"),
        Some("abort") => std::process::abort(),
        Some("exit") => std::process::exit(args[1].parse().unwrap()),
        Some("stdin") => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).unwrap();
            println!("stdin: {}", s.trim());
            return;
        }
        Some("env") => {
            for key in ["CARGO_MANIFEST_DIR", "CARGO_PKG_NAME", "CARGO_PKG_VERSION", "CARGO_PKG_DESCRIPTION", "GREETING", "ASSET_DIR"] {
                println!("{key}={}", std::env::var(key).unwrap_or_default());
            }
            return;
        }
        _ => {}
    }
    info!("no logger is installed, so this is not printed");
    println!("itoa 1: {}", itoa::Buffer::new().format(42u32));
    println!("itoa 0.4: {}", itoa_old::Buffer::new().format(7u8));
    let p: Point = serde_json::from_str(r#"{"x":1,"y":2}"#).unwrap();
    println!("json: {}", serde_json::to_string(&p).unwrap());
    let zlib = unsafe { std::ffi::CStr::from_ptr(libz_sys::zlibVersion()) };
    println!("zlib: {}", zlib.to_str().unwrap());
    let direct = unsafe { native_sys::native_add(4, 5) };
    let declared = unsafe { native_sys::native_mul(6, 7) };
    println!("native: {} {} {} {}", native_sys::add(2, 3), direct, declared, native_sys::GREETING);
    println!("args: {args:?}");
}
"##;

struct Fixture {
    project: Project,
    before: BTreeMap<PathBuf, Vec<u8>>,
    /// The first build's output.
    build: Run,
}

/// Built once; tests that only read share it.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let project = project()
            .file("Cargo.toml", MANIFEST)
            .file("src/main.rs", MAIN)
            .file(
                ".cargo/config.toml",
                "[env]\nGREETING = \"from cargo's config\"\n\
                 ASSET_DIR = { value = \"assets\", relative = true }\n",
            )
            .file("../native-sys/Cargo.toml", NATIVE_MANIFEST)
            .file("../native-sys/build.rs", NATIVE_BUILD)
            .file("../native-sys/native.c", NATIVE_C)
            .file("../native-sys/only_declared.c", ONLY_DECLARED_C)
            .file("../native-sys/src/lib.rs", NATIVE_LIB)
            .build();
        let before = project.snapshot();
        let build = project.dyndev(&["build"]).success();
        Fixture {
            project,
            before,
            build,
        }
    })
}

#[test]
fn run_passes_arguments_output_and_exit_code() {
    let f = fixture();
    let out = f.project.dyndev(&["run", "-q", "--", "exit", "3"]).code(3);
    assert_eq!(out.stdout, "");
    let out = f
        .project
        .dyndev(&["run", "--", "hello", "--help"])
        .success();
    assert_eq!(
        out.stdout,
        "itoa 1: 42\nitoa 0.4: 7\njson: {\"x\":1,\"y\":2}\nzlib: 1.3.2\n\
         native: 5 9 42 hello from a build script\nargs: [\"hello\", \"--help\"]\n"
    );
    assert!(
        out.stderr.contains("Running `"),
        "cargo-style status line: {out}"
    );
}

#[test]
fn run_passes_stdin_through() {
    let f = fixture();
    let mut child = dyndev_cmd(&f.project.root, &["run", "-q", "--", "stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from the pipe\n")
        .unwrap();
    let out = Run::from_output(child.wait_with_output().unwrap()).success();
    assert_eq!(out.stdout, "stdin: from the pipe\n");
}

#[test]
fn run_sets_the_environment_cargo_run_sets() {
    let f = fixture();
    let out = f.project.dyndev(&["run", "-q", "--", "env"]).success();
    let root = f.project.root.canonicalize().unwrap();
    assert!(
        out.stdout
            .contains(&format!("CARGO_MANIFEST_DIR={}\n", root.display())),
        "{out}"
    );
    assert!(out.stdout.contains("CARGO_PKG_NAME=basic-app\n"));
    assert!(out.stdout.contains("CARGO_PKG_VERSION=0.3.1\n"));
    assert!(
        out.stdout
            .contains("CARGO_PKG_DESCRIPTION=a dyndev test fixture\n")
    );
    // Cargo's `[env]` table too, relative paths resolved as cargo does.
    assert!(
        out.stdout.contains("GREETING=from cargo's config\n"),
        "{out}"
    );
    let assets = f.project.root.join("assets");
    assert!(
        out.stdout
            .contains(&format!("ASSET_DIR={}\n", assets.display())),
        "{out}"
    );
}

#[test]
fn a_panic_exits_101_and_a_signal_passes_through() {
    let f = fixture();
    let out = f.project.dyndev(&["run", "-q", "--", "panic"]).code(101);
    assert!(out.stderr.contains("asked to panic"), "{out}");
    let out = f.project.dyndev(&["run", "-q", "--", "abort"]);
    assert_eq!(out.signal, Some(6), "died of SIGABRT: {out}");
}

#[test]
fn the_binary_links_the_bundle_and_std_dynamically() {
    let f = fixture();
    let bin = f.project.bin("basic-app");
    let info = cargo_dyndev::testing::dynamic_info(&bin).unwrap();
    let bundle = f.project.bundle_file();
    let bundle_name = bundle.file_name().unwrap().to_str().unwrap();
    assert!(
        info.needed.iter().any(|n| n == bundle_name),
        "{:?}",
        info.needed
    );
    assert!(
        info.needed
            .iter()
            .any(|n| n.starts_with("libstd-") && n.ends_with(".so")),
        "{:?}",
        info.needed
    );
    // serde_json's code is imported from the bundle...
    let imported: Vec<&String> = info
        .imported
        .iter()
        .filter(|s| s.contains("10serde_json"))
        .collect();
    assert!(
        imported.len() >= 10,
        "serde_json's code is imported: {imported:?}"
    );
    let bundle_info = cargo_dyndev::testing::dynamic_info(&bundle).unwrap();
    for s in &imported {
        assert!(
            bundle_info.defined.binary_search(s).is_ok(),
            "the bundle exports {s}"
        );
    }
    // ...and not copied into the binary.
    assert!(imported.iter().any(|s| s.contains("parse_whitespace")));
    assert!(!cargo_dyndev::testing::defines_symbol_containing(&bin, "parse_whitespace").unwrap());
    // C compiled by a bundled crate's build script is exported by the
    // bundle, so the binary's direct call binds to it.
    for c_fn in ["native_add", "native_mul"] {
        assert!(
            info.imported.iter().any(|s| s == c_fn),
            "{c_fn}: {:?}",
            info.imported
        );
        assert!(
            bundle_info.defined.binary_search(&c_fn.to_owned()).is_ok(),
            "{c_fn}"
        );
    }
    // zlib hides its symbols, so libz-sys stays static: the code is in the
    // binary and not imported.
    assert!(!info.imported.iter().any(|s| s == "zlibVersion"));
    assert!(cargo_dyndev::testing::defines_symbol_containing(&bin, "zlibVersion").unwrap());
}

#[test]
fn the_binary_runs_outside_cargo() {
    let f = fixture();
    let out = run_outside_cargo(&f.project.bin("basic-app"), &["x"]).success();
    assert!(out.stdout.contains("itoa 1: 42\n"), "{out}");
    assert!(out.stdout.ends_with("args: [\"x\"]\n"));
}

/// rustc takes a `lib<crate>*.rs` in a search dir for the interface of an
/// `sdylib` and compiles it in a child process, in every compile that
/// loads the crate: the facades' sources must not look like one.
#[test]
fn no_facade_source_looks_like_a_crate_interface() {
    let f = fixture();
    let plan = f.project.plan_json(&[]);
    let roots = plan["bundle"]["roots"].as_array().unwrap();
    assert!(!roots.is_empty(), "{plan:#}");
    for root in roots {
        let facade = PathBuf::from(root["facade"].as_str().unwrap());
        assert!(facade.exists(), "{facade:?}");
        let dir = facade.parent().unwrap();
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                !(name.starts_with("lib") && name.ends_with(".rs")),
                "{name} in {dir:?}"
            );
        }
    }
}

#[test]
fn every_dependency_is_compiled_once() {
    let f = fixture();
    let plan = f.project.plan_json(&[]);
    let deps = shared_deps_dir();
    let rlibs = |prefix: &str| -> Vec<PathBuf> {
        std::fs::read_dir(&deps)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_str().unwrap();
                name.starts_with(prefix) && name.ends_with(".rlib")
            })
            .collect()
    };
    // The first build compiled each dependency at most once (other tests
    // may have compiled it already in the shared target dir), and the
    // bundle was linked from the very unit it compiled. The member itself
    // shows in each cargo pass.
    let compiled = f.build.stderr.lines().filter(|l| l.contains("Compiling"));
    for line in compiled.filter(|l| !l.contains("basic-app")) {
        assert_eq!(f.build.stderr_count(line), 1, "{}", f.build);
    }
    let roots = plan["bundle"]["roots"].as_array().unwrap();
    let root = roots
        .iter()
        .find(|r| r["crate_name"] == "serde_json")
        .expect("serde_json is a root");
    let rlib = PathBuf::from(root["rlib"].as_str().unwrap());
    assert!(rlibs("libserde_json-").contains(&rlib), "{rlib:?}");
    // Two versions of itoa, each compiled once, both in the bundle.
    let itoa_roots = roots.iter().filter(|r| r["crate_name"] == "itoa").count();
    assert_eq!(itoa_roots, 2, "{plan:#}");
}

#[test]
fn plan_places_every_package_with_a_reason() {
    let f = fixture();
    let plan = f.project.plan_json(&[]);
    assert_eq!(plan["built"], true);
    assert_eq!(plan_entry(&plan, "basic-app")["placement"], "static");
    assert_eq!(
        plan_entry(&plan, "basic-app")["reason"]["kind"],
        "workspace-member"
    );
    assert_eq!(plan_entry(&plan, "serde_derive")["placement"], "host");
    assert_eq!(
        plan_entry(&plan, "serde_derive")["reason"]["kind"],
        "proc-macro"
    );
    assert_eq!(
        plan_entry(&plan, "cc")["reason"]["kind"],
        "build-dependency"
    );
    for name in ["log", "serde", "serde_json", "native-sys"] {
        let e = plan_entry(&plan, name);
        assert_eq!(e["placement"], "bundle", "{name}: {e}");
        assert_eq!(e["root"], true, "{name} is used directly");
    }
    let zlib = plan_entry(&plan, "libz-sys");
    assert_eq!(zlib["placement"], "static", "{zlib}");
    assert_eq!(zlib["reason"]["kind"], "hidden-native-symbols");
    // serde_core comes in through serde: in the bundle, not a root.
    assert_eq!(plan_entry(&plan, "serde_core")["placement"], "bundle");
    assert_eq!(plan_entry(&plan, "serde_core")["root"], false);
    let bundle = &plan["bundle"];
    assert!(bundle["size"].as_u64().unwrap() > 10_000);
    assert!(bundle["exported_symbols"].as_u64().unwrap() > 50);

    let human = f.project.dyndev(&["plan"]).success();
    assert!(human.stderr.contains("Planning `basic-app`"), "{human}");
    assert!(human.stderr.contains("serde_derive"));
    assert!(human.stderr.contains("exported symbols"));
}

#[test]
fn the_projects_files_are_unchanged() {
    let f = fixture();
    f.project.dyndev(&["run", "-q"]).success();
    f.project.dyndev(&["plan"]).success();
    assert_eq!(
        f.project.snapshot(),
        f.before,
        "dyndev wrote into the project"
    );
}
