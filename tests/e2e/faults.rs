//! Files dyndev made, damaged after it made them: noticed before anything
//! uses them, said as such, and made again; never blamed on the user's
//! code. Each test damages a bundle of its own workspace.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::support::*;

/// A program that prints `n=<n>` with itoa, as package `name`.
fn itoa_app(name: &str) -> Project {
    project()
        .file(
            "Cargo.toml",
            &manifest(name, "[dependencies]\nitoa = \"=1.0.18\"\n"),
        )
        .file("src/main.rs", &itoa_main(5))
        .build()
}

fn itoa_main(n: u8) -> String {
    format!("fn main() {{ println!(\"n={{}}\", itoa::Buffer::new().format({n}u8)); }}\n")
}

/// The one file of the bundle's library dir named `prefix*suffix`.
fn lib_dir_file(lib_dir: &Path, prefix: &str, suffix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(lib_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(suffix)
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{prefix}*{suffix} in {lib_dir:?}: {found:?}"
    );
    found.into_iter().next().unwrap()
}

fn name_of(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn a_truncated_bundle_library_is_linked_again_before_the_program_starts() {
    let p = itoa_app("truncated-lib-app");
    assert_eq!(p.dyndev(&["run", "-q"]).success().stdout, "n=5\n");
    let lib = p.bundle_file();
    // Truncated in place, as `: > lib` does.
    std::fs::File::create(&lib).unwrap();

    // Nothing changed for cargo: the program would start as it is.
    let out = p.dyndev(&["run"]).success();
    assert_eq!(out.stdout, "n=5\n", "{out}");
    assert!(
        out.stderr.contains(&format!(
            "warning: the bundle is not as dyndev made it: `{}` is 0 B where dyndev made ",
            name_of(&lib)
        )),
        "{out}"
    );
    assert!(out.stderr.contains("; making it again"), "{out}");
    assert!(std::fs::metadata(&lib).unwrap().len() > 0);

    // Repaired: the next build after an edit says nothing of it.
    p.write("src/main.rs", &itoa_main(6));
    let out = p.dyndev(&["run"]).success();
    assert_eq!(out.stdout, "n=6\n", "{out}");
    assert!(!out.stderr.contains("warning"), "{out}");
}

#[test]
fn a_garbled_facade_is_compiled_again_and_never_blamed_on_the_users_code() {
    let p = itoa_app("garbled-facade-app");
    p.dyndev(&["build"]).success();
    let lib_dir = p.bundle_file().parent().unwrap().to_path_buf();
    let facade = lib_dir_file(&lib_dir, "libitoa-", ".rlib");
    // The same size, other bytes: garbled in place.
    let len = std::fs::metadata(&facade).unwrap().len();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&facade)
        .unwrap();
    file.write_all(&vec![0xa5; len as usize]).unwrap();
    drop(file);

    p.write("src/main.rs", &itoa_main(7));
    let out = p.dyndev(&["run"]).success();
    assert_eq!(out.stdout, "n=7\n", "{out}");
    assert!(
        out.stderr.contains(&format!(
            "warning: the bundle is not as dyndev made it: `{}` was modified after dyndev made it",
            name_of(&facade)
        )),
        "{out}"
    );
    assert!(!out.stderr.contains("error"), "{out}");
    assert_eq!(std::fs::metadata(&facade).unwrap().len(), len);
}

/// A linker that links as `cc` does, except a library of the bundle
/// while `FAKE_CC_FAIL` is set: of that it writes a part, then fails as a
/// full disk makes GNU ld fail (`enospc`) or a full tmpfs kills rust-lld
/// (`sigbus`).
const FAKE_CC: &str = r#"#!/bin/sh
out=
prev=
for a in "$@"; do
    if [ "$prev" = "-o" ]; then out=$a; fi
    prev=$a
done
case "$out" in
*/libdyndev_bundle_*)
    if [ -n "$FAKE_CC_FAIL" ]; then
        head -c 4096 /dev/zero > "$out"
        case "$FAKE_CC_FAIL" in
        enospc)
            echo "/usr/bin/ld.bfd: final link failed: No space left on device" >&2
            exit 1;;
        sigbus)
            kill -BUS $$;;
        esac
    fi;;
esac
exec cc "$@"
"#;

/// `itoa_app` linking through [`FAKE_CC`].
fn fake_cc_app(name: &str) -> Project {
    let p = project()
        .file(
            "Cargo.toml",
            &manifest(name, "[dependencies]\nitoa = \"=1.0.18\"\n"),
        )
        .file("src/main.rs", &itoa_main(5))
        .file("fake-cc", FAKE_CC)
        .build();
    use std::os::unix::fs::PermissionsExt;
    let cc = p.root.join("fake-cc");
    std::fs::set_permissions(&cc, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn run_with_fake_cc(p: &Project, fail: Option<&str>, args: &[&str]) -> Run {
    let mut cmd = dyndev_cmd(&p.root, args);
    cmd.env(
        "RUSTFLAGS",
        format!("-C linker={}", p.root.join("fake-cc").display()),
    );
    match fail {
        Some(how) => cmd.env("FAKE_CC_FAIL", how),
        None => cmd.env_remove("FAKE_CC_FAIL"),
    };
    run(cmd)
}

/// The library dir of `p`'s bundle (one per workspace), made or not.
fn lib_dir_of(p: &Project) -> PathBuf {
    let root = p.root.canonicalize().unwrap();
    cargo_dyndev::testing::Layout::new(shared_target_dir(), "debug", &root).lib_dir()
}

/// What in a library dir was left half-made: a library's output, rustc's
/// objects or temporaries.
fn half_made(lib_dir: &Path) -> Vec<String> {
    std::fs::read_dir(lib_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.ends_with(".so") || n.ends_with(".o") || n.starts_with('.') || n.starts_with("rustc")
        })
        .collect()
}

#[test]
fn a_link_that_fails_midway_leaves_nothing_half_made() {
    let p = fake_cc_app("half-made-app");
    let out = run_with_fake_cc(&p, Some("enospc"), &["build"]).code(1);
    let lib_dir = lib_dir_of(&p);
    assert_eq!(half_made(&lib_dir), Vec::<String>::new(), "{out}");

    // The next build links it whole.
    let out = run_with_fake_cc(&p, None, &["run", "-q"]).success();
    assert_eq!(out.stdout, "n=5\n");
}

#[test]
fn a_full_disk_during_the_bundle_link_is_named_as_such() {
    let p = fake_cc_app("full-disk-app");
    let lib_dir = lib_dir_of(&p);
    let needs = regex::Regex::new(
        r"`libdyndev_bundle_\w+\.so` needs about [\d.]+ (B|KiB|MiB) there \(the size of the rlibs it links\); [\d.]+ (B|KiB|MiB|GiB) free",
    )
    .unwrap();
    for (how, cause, said) in [
        (
            "enospc",
            format!(
                "error: failed to link the bundle: no space left on the file system of `{}`",
                lib_dir.display()
            ),
            "the linker said: /usr/bin/ld.bfd: final link failed: No space left on device",
        ),
        (
            "sigbus",
            format!(
                "error: failed to link the bundle: the linker died of SIGBUS writing into `{}`",
                lib_dir.display()
            ),
            "was killed by signal 7 (SIGBUS)",
        ),
    ] {
        let out = run_with_fake_cc(&p, Some(how), &["build"]).code(1);
        assert!(out.stderr.contains(&cause), "{how}: {out}");
        assert!(out.stderr.contains(said), "{how}: {out}");
        // How much, from what, and how much there is.
        assert!(needs.is_match(&out.stderr), "{how}: {out}");
        assert!(out.stderr.contains("help: make room there"), "{how}: {out}");
        // Neither a dependency's fault nor a setting's.
        assert!(!out.stderr.contains("to blame"), "{how}: {out}");
        assert!(!out.stderr.contains("exclude"), "{how}: {out}");
        let errors = out.stderr.lines().filter(|l| l.starts_with("error"));
        assert_eq!(errors.count(), 1, "said once: {how}: {out}");
        assert_eq!(half_made(&lib_dir), Vec::<String>::new(), "{how}: {out}");
    }
    let out = run_with_fake_cc(&p, None, &["run", "-q"]).success();
    assert_eq!(out.stdout, "n=5\n");
}

/// A workspace of `<name>-core` (`value()` returns `n`), `<name>-mid`
/// (`twice()`) and the program `name` printing both.
fn three_crates(name: &str) -> Project {
    project()
        .file(
            "Cargo.toml",
            "[workspace]\nmembers = [\"core\", \"mid\", \"app\"]\nresolver = \"2\"\n",
        )
        .file("core/Cargo.toml", &manifest(&format!("{name}-core"), ""))
        .file("core/src/lib.rs", &core_rs(1))
        .file(
            "mid/Cargo.toml",
            &manifest(
                &format!("{name}-mid"),
                &format!(
                    "[dependencies]\ncore = {{ path = \"../core\", package = \"{name}-core\" }}\n"
                ),
            ),
        )
        .file(
            "mid/src/lib.rs",
            "pub fn twice() -> u64 {\n    core::value() * 2\n}\n",
        )
        .file(
            "app/Cargo.toml",
            &manifest(
                name,
                &format!(
                    "[dependencies]\ncore = {{ path = \"../core\", package = \"{name}-core\" }}\n\
                     mid = {{ path = \"../mid\", package = \"{name}-mid\" }}\n"
                ),
            ),
        )
        .file(
            "app/src/main.rs",
            "fn main() {\n    println!(\"value={} twice={}\", core::value(), mid::twice());\n}\n",
        )
        .build()
}

fn core_rs(n: u8) -> String {
    format!("pub fn value() -> u64 {{\n    {n}\n}}\n")
}

/// The files of `dir` whose names end in `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| name_of(p).ends_with(suffix))
        .collect()
}

#[test]
fn shared_versions_damaged_or_gone_are_linked_again_before_the_program_starts() {
    let app = "so-damage";
    let p = three_crates(app);
    let run = || p.dyndev(&["run", "-p", app]);
    assert_eq!(run().success().stdout, "value=1 twice=2\n");
    let store = cutoff_store(&p);
    let versions = store.join("so/v");
    let made = files_ending(&versions, ".so");
    assert_eq!(made.len(), 2, "{made:?}");

    // Nothing changed for cargo: the program would start as it is.
    for so in &made {
        std::fs::remove_file(so).unwrap();
    }
    let out = run().success();
    assert_eq!(out.stdout, "value=1 twice=2\n", "{out}");
    assert!(
        out.stderr.contains(&format!(
            "warning: the shared libraries of `{}` are not as dyndev made them: `libso_damage_",
            app.replace('-', "_")
        )),
        "{out}"
    );
    assert!(out.stderr.contains(".so` is missing"), "{out}");
    assert!(out.stderr.contains("; linking `so_damage` again"), "{out}");
    assert_eq!(
        run_outside_cargo(&p.bin(app), &[]).success().stdout,
        "value=1 twice=2\n"
    );

    // Truncated in place, then a body edit: linked again, and the edit
    // reaches the program.
    for so in files_ending(&versions, ".so") {
        std::fs::File::create(&so).unwrap();
    }
    let out = run().success();
    assert_eq!(out.stdout, "value=1 twice=2\n", "{out}");
    assert!(
        out.stderr.contains(".so` is 0 B where dyndev made "),
        "{out}"
    );
    for so in files_ending(&versions, ".so") {
        std::fs::File::create(&so).unwrap();
    }
    p.write("core/src/lib.rs", &core_rs(2));
    assert_eq!(run().success().stdout, "value=2 twice=4\n");

    // The whole dir of shared versions and links, then the whole store.
    std::fs::remove_dir_all(store.join("so")).unwrap();
    let out = run().success();
    assert_eq!(out.stdout, "value=2 twice=4\n", "{out}");
    assert!(out.stderr.contains("~so_damage-"), "{out}");
    std::fs::remove_dir_all(&store).unwrap();
    assert_eq!(run().success().stdout, "value=2 twice=4\n");
    assert_eq!(
        run_outside_cargo(&p.bin(app), &[]).success().stdout,
        "value=2 twice=4\n"
    );

    // Repaired: nothing more to say.
    let out = run().success();
    assert!(!out.stderr.contains("warning"), "{out}");
}

/// What a shared-versions dir holds of links that never finished.
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| name_of(&e.unwrap().path()))
        .filter(|n| n.contains(".tmp"))
        .collect()
}

#[test]
fn a_shared_library_link_that_was_killed_leaves_nothing_behind() {
    let app = "so-killed";
    let p = three_crates(app);
    // The process linking `core`'s shared version is killed midway.
    let out = dyndev_interrupting(
        &p,
        Some(("*/so/v/.libso_killed_core-*", "kill-caller")),
        &["build", "-p", app],
    );
    assert_ne!(out.code, Some(0), "{out}");
    let versions = cutoff_store(&p).join("so/v");
    assert_eq!(temporaries(&versions).len(), 1, "{out}");

    let out = dyndev_interrupting(&p, None, &["run", "-p", app]).success();
    assert_eq!(out.stdout, "value=1 twice=2\n", "{out}");
    assert_eq!(temporaries(&versions), Vec::<String>::new(), "{out}");
    assert_eq!(temporaries(&versions.join("..")), Vec::<String>::new());
}
