//! dyndev shares cargo's build dir with the user's own builds: what plain
//! cargo compiled, dyndev does not compile again, and the other way round.
//! Each test has a target dir of its own, so "compiled once" is exact.

use std::path::Path;
use std::process::Command;

use crate::support::*;

fn app(config: &str) -> Project {
    project()
        .file(".cargo/config.toml", config)
        .file(
            "Cargo.toml",
            &manifest("shared-app", "[dependencies]\nitoa = \"=1.0.18\"\n"),
        )
        .file(
            "src/main.rs",
            "fn main() { println!(\"{}\", itoa::Buffer::new().format(42u8)); }\n",
        )
        .build()
}

/// Plain `cargo build` in the project, with `target` as its target dir.
fn cargo_build(p: &Project, target: &Path) -> Run {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.arg("build")
        .current_dir(&p.root)
        .env("CARGO_TARGET_DIR", target)
        .env("CARGO_TERM_COLOR", "never")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTFLAGS");
    run(cmd).success()
}

fn dyndev_build(p: &Project, target: &Path) -> Run {
    let mut cmd = dyndev_cmd(&p.root, &["build"]);
    cmd.env("CARGO_TARGET_DIR", target);
    run(cmd).success()
}

fn compiled(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("Compiling "))
        .collect()
}

#[test]
fn a_dependency_cargo_built_is_not_compiled_again_by_dyndev() {
    let p = app("");
    let target = p.root.join("target");
    let plain = cargo_build(&p, &target);
    assert!(
        compiled(&plain).iter().any(|c| c.starts_with("itoa ")),
        "{plain}"
    );

    // The first dyndev build compiles the member alone, and links the bundle.
    let first = dyndev_build(&p, &target);
    let units = compiled(&first);
    assert!(
        units.iter().all(|c| c.starts_with("shared-app ")),
        "{first}"
    );
    let dynamic = target.join("dyndev/debug/shared-app");
    assert_needs_a_bundle(&dynamic);
    assert_eq!(run_outside_cargo(&dynamic, &[]).success().stdout, "42\n");

    // Plain cargo finds everything fresh, and its program is still its own.
    let again = cargo_build(&p, &target);
    assert_eq!(compiled(&again), Vec::<&str>::new(), "{again}");
    let own = target.join("debug/shared-app");
    let needed = cargo_dyndev::testing::dynamic_info(&own).unwrap().needed;
    assert!(
        !needed.iter().any(|n| n.starts_with("libdyndev_")),
        "{needed:?}"
    );
    assert_eq!(run_outside_cargo(&own, &[]).success().stdout, "42\n");
    // And so does dyndev.
    let second = dyndev_build(&p, &target);
    assert_eq!(compiled(&second), Vec::<&str>::new(), "{second}");
}

#[test]
fn a_configured_build_dir_is_shared_the_other_way_round() {
    let p = app("[build]\nbuild-dir = \"cache\"\n");
    let target = p.root.join("target");

    let first = dyndev_build(&p, &target);
    assert!(
        compiled(&first).iter().any(|c| c.starts_with("itoa ")),
        "{first}"
    );
    let in_cache = |dir: &Path| {
        dir.join("debug/deps")
            .read_dir()
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("libitoa-"))
    };
    assert!(in_cache(&p.root.join("cache")), "the user's build dir");
    assert!(!in_cache(&target), "the target dir holds no unit");

    // Plain cargo compiles its own member only.
    let plain = cargo_build(&p, &target);
    let units = compiled(&plain);
    assert_eq!(units.len(), 1, "{plain}");
    assert!(units[0].starts_with("shared-app "), "{plain}");
    let dynamic = target.join("dyndev/debug/shared-app");
    assert_eq!(run_outside_cargo(&dynamic, &[]).success().stdout, "42\n");
}

/// `compare` builds a copy of the project in every mode, in the user's
/// build dir: the dependencies the user's `cargo build` compiled are fresh
/// for each mode, and the user's own units are left as they were.
#[test]
fn compare_compiles_no_dependency_the_user_built() {
    let p = app("");
    let target = p.root.join("target");
    cargo_build(&p, &target);
    let mut cmd = dyndev_cmd(&p.root, &["compare", "--runs", "1", "--linkers", "none"]);
    cmd.env("CARGO_TARGET_DIR", &target);
    let out = run(cmd).success();
    let units = compiled(&out);
    assert!(
        !units.is_empty(),
        "the first build shows cargo's progress: {out}"
    );
    assert!(units.iter().all(|c| c.starts_with("shared-app ")), "{out}");
    // The user's builds find everything as they left it.
    let again = cargo_build(&p, &target);
    assert_eq!(compiled(&again), Vec::<&str>::new(), "{again}");
    assert_eq!(
        run_outside_cargo(&target.join("debug/shared-app"), &[])
            .success()
            .stdout,
        "42\n"
    );
}

/// A build dir that moved (configured elsewhere since, or an older dyndev
/// that kept its units in a dir of its own) leaves the bundle's state
/// naming dependency units there. When a new bundle is made, units of
/// another selection carried over from that state must not bring them
/// back: the bundle's link finds crates only in the build dir in use, and
/// a dependency of theirs (here `inner`, which `outer` uses) is not there.
/// (helix, built by a dyndev from before the build dir was shared: "can't
/// find crate for `serde_derive` which `serde` depends on".)
#[test]
fn units_of_a_build_dir_no_longer_in_use_stay_out_of_the_bundle() {
    let p = project()
        .file(
            "Cargo.toml",
            "[workspace]\nmembers = [\"app\", \"tool\"]\nresolver = \"2\"\n\n\
             [workspace.metadata.dyndev]\ninclude = [\"outer\", \"inner\"]\n",
        )
        .file(
            "app/Cargo.toml",
            &manifest(
                "moved-app",
                "[features]\nloud = [\"dep:cfg-if\"]\n\n[dependencies]\nitoa = \"=1.0.18\"\n\
                 cfg-if = { version = \"=1.0.5\", optional = true }\n",
            ),
        )
        .file(
            "app/src/main.rs",
            "fn main() { println!(\"{}\", itoa::Buffer::new().format(7)); }\n",
        )
        .file(
            "tool/Cargo.toml",
            &manifest(
                "moved-tool",
                "[dependencies]\nouter = { path = \"../../outer\" }\n",
            ),
        )
        .file(
            "tool/src/main.rs",
            "fn main() { println!(\"{}\", outer::twice(4)); }\n",
        )
        .file(
            "../outer/Cargo.toml",
            &manifest("outer", "[dependencies]\ninner = { path = \"../inner\" }\n"),
        )
        .file(
            "../outer/src/lib.rs",
            "pub fn twice(n: u32) -> u32 { inner::add(n, n) }\n",
        )
        .file("../inner/Cargo.toml", &manifest("inner", ""))
        .file(
            "../inner/src/lib.rs",
            "pub fn add(a: u32, b: u32) -> u32 { a + b }\n",
        )
        .build();
    let target = p.root.join("target");
    let old_build_dir = p.root.join("old-build");

    // Both programs, with the build dir elsewhere.
    let mut first = dyndev_cmd(&p.root, &["build"]);
    first
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_BUILD_BUILD_DIR", &old_build_dir);
    run(first).success();
    assert_eq!(
        run_outside_cargo(&target.join("dyndev/debug/moved-tool"), &[])
            .success()
            .stdout,
        "8\n"
    );

    // One program, in the default build dir, with a dependency the bundle
    // lacks: a new bundle, without `outer`'s unit in the old dir.
    let mut second = dyndev_cmd(&p.root, &["build", "-p", "moved-app", "--features", "loud"]);
    second.env("CARGO_TARGET_DIR", &target);
    run(second).success();
    assert_eq!(
        run_outside_cargo(&target.join("dyndev/debug/moved-app"), &[])
            .success()
            .stdout,
        "7\n"
    );
    // And the other selection builds again in the build dir in use.
    let mut third = dyndev_cmd(&p.root, &["build"]);
    third.env("CARGO_TARGET_DIR", &target);
    run(third).success();
    assert_eq!(
        run_outside_cargo(&target.join("dyndev/debug/moved-tool"), &[])
            .success()
            .stdout,
        "8\n"
    );
}
