//! Cargo's configuration, read as cargo reads it: settings dyndev takes
//! over keep doing what the user set them for.

use crate::support::*;

#[test]
fn a_workspace_wrapper_from_configuration_still_runs() {
    let p = project()
        .file(
            "Cargo.toml",
            &manifest("wrapped-app", "[dependencies]\nitoa = \"=1.0.18\"\n"),
        )
        .file(
            "src/main.rs",
            "fn main() { println!(\"{}\", itoa::Buffer::new().format(7u8)); }\n",
        )
        .file(
            ".cargo/config.toml",
            "[build]\nrustc-workspace-wrapper = \"tools/wrap.sh\"\n",
        )
        .file(
            "tools/wrap.sh",
            "#!/bin/sh\necho \"$@\" >> \"$(dirname \"$0\")/wrapped.log\"\nexec \"$@\"\n",
        )
        .build();
    let script = p.root.join("tools/wrap.sh");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    p.dyndev(&["build"]).success();
    let log = std::fs::read_to_string(p.root.join("tools/wrapped.log")).unwrap_or_default();
    assert!(log.contains("--crate-name wrapped_app"), "{log}");
    let bin = p.bin("wrapped-app");
    assert_needs_a_bundle(&bin);
    assert_eq!(run_outside_cargo(&bin, &[]).success().stdout, "7\n");
}

#[test]
fn doctests_get_the_configured_rustdocflags() {
    let p = project()
        .file(
            "Cargo.toml",
            &manifest("doc-flags", "[dependencies]\nitoa = \"=1.0.18\"\n"),
        )
        .file(
            "src/lib.rs",
            "pub fn fmt() -> String { itoa::Buffer::new().format(1u8).to_owned() }\n\
             /// ```\n/// assert_eq!(doc_flags::fmt(), \"1\");\n/// ```\n\
             #[cfg(from_config)]\n\
             pub fn documented() {}\n",
        )
        .file(
            ".cargo/config.toml",
            "[build]\nrustdocflags = [\"--cfg\", \"from_config\"]\n",
        )
        .build();
    // The doctest exists only with the configured flag.
    let out = p.dyndev(&["test", "--doc"]).success();
    assert!(out.stdout.contains("1 passed"), "{out}");
}

#[test]
fn rustc_wrapper_keeps_wrapping_every_compilation() {
    // As sccache does: the outer wrapper runs what follows it.
    let p = project()
        .file(
            "Cargo.toml",
            &manifest("outer-wrapped", "[dependencies]\nitoa = \"=1.0.18\"\n"),
        )
        .file(
            "src/main.rs",
            "fn main() { println!(\"{}\", itoa::Buffer::new().format(9u8)); }\n",
        )
        .file(
            "tools/cache.sh",
            "#!/bin/sh\necho \"$@\" >> \"$(dirname \"$0\")/cache.log\"\nexec \"$@\"\n",
        )
        .build();
    let script = p.root.join("tools/cache.sh");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Its own target dir: the shared one has itoa built already.
    let target = tempfile::tempdir().unwrap();
    let mut cmd = dyndev_cmd(&p.root, &["build"]);
    cmd.env("RUSTC_WRAPPER", &script)
        .env("CARGO_TARGET_DIR", target.path());
    run(cmd).success();
    let log = std::fs::read_to_string(p.root.join("tools/cache.log")).unwrap_or_default();
    assert!(log.contains("--crate-name itoa"), "{log}");
    assert!(log.contains("--crate-name outer_wrapped"), "{log}");
    let bin = target.path().join("dyndev/debug/outer-wrapped");
    assert_needs_a_bundle(&bin);
    assert_eq!(run_outside_cargo(&bin, &[]).success().stdout, "9\n");
}

/// `--offline` builds what plain cargo builds offline, as long as what
/// planning reads is on disk; when it is not (another member's
/// dev-dependency was never downloaded), the error says what to do. A
/// cargo home of its own, so that what is downloaded is known.
#[test]
fn offline_builds_use_what_is_downloaded_and_say_what_is_missing() {
    let p = project()
        .file(
            "Cargo.toml",
            "[workspace]\nmembers = [\"app\", \"lazy\"]\nresolver = \"2\"\n",
        )
        .file(
            "app/Cargo.toml",
            &manifest("offline-app", "[dependencies]\nitoa = \"=1.0.18\"\n"),
        )
        .file(
            "app/src/main.rs",
            "fn main() { println!(\"{}\", itoa::Buffer::new().format(8u8)); }\n",
        )
        .file(
            "lazy/Cargo.toml",
            &manifest(
                "offline-lazy",
                "[dev-dependencies]\nsmallvec = \"=1.11.1\"\n",
            ),
        )
        .file("lazy/src/lib.rs", "")
        .build();
    let home = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let with_home = |mut cmd: std::process::Command| {
        cmd.env("CARGO_HOME", home.path())
            .env("CARGO_TARGET_DIR", target.path());
        cmd
    };
    let mut fetch = std::process::Command::new(env!("CARGO"));
    fetch
        .args(["build", "-p", "offline-app"])
        .current_dir(&p.root);
    run(with_home(fetch)).success();

    // Plain cargo built offline-app without smallvec; planning's `cargo
    // metadata` wants it, and cannot fetch it offline.
    let out = run(with_home(dyndev_cmd(
        &p.root,
        &["run", "-p", "offline-app", "--offline"],
    )))
    .code(101);
    assert!(
        out.stderr.contains("run `cargo fetch` once while online"),
        "{out}"
    );
    // Online, it is fetched once; offline then works.
    run(with_home(dyndev_cmd(
        &p.root,
        &["build", "-p", "offline-app"],
    )))
    .success();
    let out = run(with_home(dyndev_cmd(
        &p.root,
        &["run", "-p", "offline-app", "--offline"],
    )))
    .success();
    assert_eq!(out.stdout, "8\n", "{out}");
}
