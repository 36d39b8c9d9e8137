//! Bad input gets cargo's message once and a documented exit code; two
//! runs at once both finish.

use std::process::Stdio;

use crate::support::*;

#[test]
fn outside_a_cargo_project() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dyndev_cmd(dir.path(), &["build"])).code(101);
    assert!(out.stderr.contains("could not find `Cargo.toml`"), "{out}");
    assert_eq!(out.stderr_count("error"), 1, "said once: {out}");
}

#[test]
fn a_broken_manifest_is_cargos_error_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Cargo.toml"), "[package]\nname = \n").unwrap();
    let out = run(dyndev_cmd(dir.path(), &["run"])).code(101);
    // Cargo's own words, pointing into the manifest, exactly once.
    assert_eq!(out.stderr_count("error: "), 1, "{out}");
    assert!(out.stderr.contains("--> Cargo.toml:2:8"), "{out}");
}

#[test]
fn a_compile_error_shows_rustcs_diagnostic_once_and_exits_101() {
    let p = project()
        .file(
            "Cargo.toml",
            &manifest(
                "broken-app",
                "[dependencies]\nitoa = \"=1.0.18\"\n",
            ),
        )
        .file(
            "src/main.rs",
            "fn main() { let n: u32 = \"not a number\"; println!(\"{}\", itoa::Buffer::new().format(n)); }\n",
        )
        .build();
    // Before any bundle exists...
    let out = p.dyndev(&["build"]).code(101);
    assert_eq!(
        out.stderr_count("error[E0308]: mismatched types"),
        1,
        "{out}"
    );
    assert_eq!(
        out.stderr_count("could not compile `broken-app`"),
        1,
        "{out}"
    );
    // ...and once there is one, after a fix and a new mistake.
    p.write(
        "src/main.rs",
        "fn main() { println!(\"{}\", itoa::Buffer::new().format(1u8)); }\n",
    );
    p.dyndev(&["build"]).success();
    p.write("src/main.rs", "fn main() { undefined_function(); }\n");
    let out = p.dyndev(&["run"]).code(101);
    assert_eq!(
        out.stderr_count("cannot find function `undefined_function`"),
        1,
        "{out}"
    );
    assert!(!out.stderr.contains("Running"), "nothing ran: {out}");
}

#[test]
fn a_bad_flag_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dyndev_cmd(dir.path(), &["build", "--frobnicate"])).code(2);
    assert!(
        out.stderr.contains("unexpected argument '--frobnicate'"),
        "{out}"
    );
}

#[test]
fn two_runs_at_once_both_finish() {
    let p = project()
        .file(
            "Cargo.toml",
            &manifest("twice-app", "[dependencies]\nitoa = \"=1.0.18\"\n"),
        )
        .file(
            "src/main.rs",
            "fn main() { println!(\"{}\", itoa::Buffer::new().format(2u8)); }\n",
        )
        .build();
    let spawn = || {
        dyndev_cmd(&p.root, &["run"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = Run::from_output(child.wait_with_output().unwrap()).success();
        assert_eq!(out.stdout, "2\n");
    }
}

#[test]
fn a_profile_a_shared_std_cannot_serve_is_refused_plainly() {
    let p = project()
        .file(
            "Cargo.toml",
            &manifest(
                "abort-app",
                "[dependencies]\nitoa = \"=1.0.18\"\n\n[profile.dev]\npanic = \"abort\"\n",
            ),
        )
        .file(
            "src/main.rs",
            "fn main() { println!(\"{}\", itoa::Buffer::new().format(1u8)); }\n",
        )
        .build();
    let out = p.dyndev(&["build"]).code(1);
    assert!(
        out.stderr.contains(
            "error: the `dev` profile sets `panic = \"abort\"`, which cannot work with a shared standard library"
        ),
        "{out}"
    );
    assert!(
        out.stderr.contains("help: build with a profile without it"),
        "{out}"
    );
    assert!(!out.stderr.contains("error[E"), "no compiler error: {out}");
}

/// `cargo test` builds the binaries integration tests run with the
/// profile's `panic = "abort"` (and the library they use once more), and
/// the tests with `unwind`: the binary builds statically, as under plain
/// cargo, and the tests still use the bundle.
#[test]
fn units_a_shared_std_cannot_serve_build_statically_beside_the_others() {
    let p = project()
        .file(
            "Cargo.toml",
            &manifest(
                "abort-mixed",
                "[dependencies]\nitoa = \"=1.0.18\"\n\n[profile.dev]\npanic = \"abort\"\n",
            ),
        )
        .file(
            "src/lib.rs",
            "pub fn one() -> String { itoa::Buffer::new().format(1u8).to_owned() }\n\n\
             #[test]\nfn one_is_one() { assert_eq!(one(), \"1\"); }\n",
        )
        .file(
            "src/main.rs",
            "fn main() { println!(\"{}\", abort_mixed::one()); }\n",
        )
        .file(
            "tests/cli.rs",
            "#[test]\nfn prints_one() {\n    let out = std::process::Command::new(env!(\"CARGO_BIN_EXE_abort-mixed\"))\n        .output()\n        .unwrap();\n    assert_eq!(out.stdout, b\"1\\n\");\n}\n",
        )
        .build();
    let out = p.dyndev(&["test"]).success();
    assert!(out.stdout.contains("test one_is_one ... ok"), "{out}");
    assert!(out.stdout.contains("test prints_one ... ok"), "{out}");
    assert!(
        out.stderr.contains(
            "note: 2 units built statically: the `dev` profile sets `panic = \"abort\"` \
             for abort-mixed (bin), abort-mixed (lib)"
        ),
        "{out}"
    );
    // The library's own tests call into itoa through the bundle.
    let lib_tests = std::fs::read_dir(shared_deps_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("abort_mixed-") && p.extension().is_none()
        })
        .any(|p| {
            cargo_dyndev::testing::dynamic_info(&p)
                .unwrap()
                .needed
                .iter()
                .any(|n| n.starts_with("libdyndev_bundle_"))
        });
    assert!(lib_tests, "a test harness of abort-mixed needs the bundle");
    let bin = shared_target_dir().join("dyndev/debug/abort-mixed");
    let needed = cargo_dyndev::testing::dynamic_info(&bin).unwrap().needed;
    assert!(
        !needed
            .iter()
            .any(|n| n.starts_with("libdyndev_") || n.starts_with("libstd-")),
        "the binary links statically, as cargo links it: {needed:?}"
    );
}

#[test]
fn a_global_allocator_a_shared_std_ignores_is_reported() {
    let p = project()
        .file(
            "Cargo.toml",
            &manifest("alloc-app", "[dependencies]\nitoa = \"=1.0.18\"\n"),
        )
        .file(
            "src/main.rs",
            "use std::alloc::System;\n\n#[global_allocator]\nstatic A: System = System;\n\n\
             fn main() { println!(\"{}\", itoa::Buffer::new().format(3u8)); }\n",
        )
        .build();
    let out = p.dyndev(&["run"]).success();
    assert_eq!(out.stdout, "3\n");
    assert!(
        out.stderr.contains(
            "warning: `alloc-app` sets a `#[global_allocator]` (src/main.rs:3); with a shared standard library it goes unused"
        ),
        "{out}"
    );
}
