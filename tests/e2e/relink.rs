//! Relink, don't rebuild: after an edit inside a function body of a
//! workspace library, that library alone compiles; the crates above it
//! are reused and the program is pointed at the new code.

use crate::support::*;

fn chain(name: &str) -> Project {
    project()
        .file(
            "Cargo.toml",
            "[workspace]\nmembers = [\"base\", \"mid\", \"app\"]\nresolver = \"2\"\n",
        )
        .file("base/Cargo.toml", &manifest(&format!("{name}-base"), ""))
        .file("base/src/lib.rs", &base_rs("1"))
        .file(
            "mid/Cargo.toml",
            &manifest(
                &format!("{name}-mid"),
                &format!(
                    "[dependencies]\nbase = {{ path = \"../base\", package = \"{name}-base\" }}\n"
                ),
            ),
        )
        .file(
            "mid/src/lib.rs",
            "pub fn twice() -> u32 {\n    base::value() * 2\n}\n\n\
             #[cfg(test)]\nmod tests {\n    #[test]\n    fn doubles() {\n        \
             assert_eq!(super::twice(), 2 * base::value());\n    }\n}\n",
        )
        .file(
            "app/Cargo.toml",
            &manifest(
                name,
                &format!(
                    "[dependencies]\nbase = {{ path = \"../base\", package = \"{name}-base\" }}\n\
                     mid = {{ path = \"../mid\", package = \"{name}-mid\" }}\nitoa = \"=1.0.18\"\n"
                ),
            ),
        )
        .file(
            "app/src/main.rs",
            "fn main() {\n    let v = itoa::Buffer::new().format(base::value()).to_owned();\n    \
             println!(\"{v} {}\", mid::twice());\n}\n",
        )
        .build()
}

/// `value`'s body returns `n`; the line keeps its length for one-digit
/// values, so nothing after the body moves.
fn base_rs(n: &str) -> String {
    format!("pub fn value() -> u32 {{\n    {n}\n}}\n")
}

/// The workspace of the library `lib` (package `{app}-lib`, with
/// `lib_deps` in its manifest) and the program `app` that uses it, with
/// `root_extra` after the workspace table. Their sources are the caller's.
fn lib_and_app(app: &str, lib_deps: &str, root_extra: &str) -> ProjectBuilder {
    project()
        .file(
            "Cargo.toml",
            &format!("[workspace]\nmembers = [\"lib\", \"app\"]\nresolver = \"2\"\n{root_extra}"),
        )
        .file("lib/Cargo.toml", &manifest(&format!("{app}-lib"), lib_deps))
        .file(
            "app/Cargo.toml",
            &manifest(
                app,
                &format!(
                    "[dependencies]\nlib = {{ path = \"../lib\", package = \"{app}-lib\" }}\n"
                ),
            ),
        )
}

fn inode(path: &std::path::Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap())
}

#[test]
fn a_body_edit_compiles_the_edited_library_alone() {
    let app = "relink-app";
    let p = chain(app);
    let first = p.dyndev(&["run", "-p", app]).success();
    assert_eq!(first.stdout, "1 2\n", "{first}");
    let exe = p.bin(app);
    let before = inode(&exe);

    p.write("base/src/lib.rs", &base_rs("3"));
    let body = p.dyndev(&["run", "-v", "-p", app]).success();
    assert_eq!(body.stdout, "3 6\n", "{body}");
    assert!(
        body.stderr
            .contains("its interface is unchanged: only bodies no dependent sees changed"),
        "{body}"
    );
    assert!(body.stderr.contains("Reusing librelink_app_mid-"), "{body}");
    assert!(body.stderr.contains("Relinking relink_app-"), "{body}");
    // Nothing but the library compiled, and the program is the same file,
    // bound to the library's new code: outside cargo too.
    assert!(!body.stderr.contains(" in full: "), "{body}");
    assert_eq!(inode(&exe), before);
    assert_eq!(run_outside_cargo(&exe, &[]).success().stdout, "3 6\n");

    // Something dependents see: they compile, and everything later still
    // agrees on one version of each crate.
    p.write(
        "base/src/lib.rs",
        &format!("{}pub const EXTRA: u32 = 5;\n", base_rs("4")),
    );
    let interface = p.dyndev(&["run", "-v", "-p", app]).success();
    assert_eq!(interface.stdout, "4 8\n", "{interface}");
    assert!(
        interface.stderr.contains("its interface is new"),
        "{interface}"
    );
    assert!(
        interface
            .stderr
            .contains("in full: the interface of `relink_app_base` changed"),
        "{interface}"
    );
    p.write(
        "base/src/lib.rs",
        &format!("{}pub const EXTRA: u32 = 5;\n", base_rs("7")),
    );
    assert_eq!(p.dyndev(&["run", "-p", app]).success().stdout, "7 14\n");
    // The tests of the crate above compile against the same interface.
    let tests = p.dyndev(&["test", "-p", &format!("{app}-mid")]).success();
    assert!(
        tests.stdout.contains("test tests::doubles ... ok"),
        "{tests}"
    );
    // And a build that changes nothing compiles nothing.
    let again = p.dyndev(&["build", "-p", app]).success();
    assert!(!again.stderr.contains("Compiling"), "{again}");
}

/// Under `watch`, a save inside a library's function body restarts the
/// program on the new code without compiling the crates above the
/// library, on cargo's path and on the fast path alike (which goes through
/// the same decisions), even with the old program still running.
#[test]
fn watch_restarts_without_compiling_the_crates_above_the_library() {
    let app = "relink-watch";
    let p = chain(app);
    p.write(
        "app/src/main.rs",
        "fn main() {\n    println!(\"v={} {}\", base::value(), mid::twice());\n    \
         std::thread::sleep(std::time::Duration::from_secs(60));\n}\n",
    );
    let mut w = crate::watch::Watching::start(&p, &["-p", app]);
    w.wait_for("the first run", |out, err| {
        out.contains("v=1 2") && err.contains("Watching")
    });
    let deps = shared_deps_dir();
    let unit = |prefix: &str| {
        std::fs::read_dir(&deps)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|f| {
                let name = f.file_name().unwrap().to_str().unwrap();
                name.starts_with(prefix) && (f.extension().is_none() || name.ends_with(".rmeta"))
            })
            .max_by_key(|f| std::fs::metadata(f).unwrap().modified().unwrap())
            .unwrap()
    };
    let (program, mid) = (unit("relink_watch-"), unit("librelink_watch_mid-"));
    let (program_inode, mid_inode) = (inode(&program), inode(&mid));
    for (n, shown) in [("2", "v=2 4"), ("3", "v=3 6"), ("4", "v=4 8")] {
        p.write("base/src/lib.rs", &base_rs(n));
        w.wait_for(shown, |out, _| out.contains(shown));
        // The program was pointed at the library's new code, and the
        // library above it kept its outputs: neither was compiled.
        assert_eq!(inode(&program), program_inode, "{}", w.output().1);
        assert_eq!(inode(&mid), mid_inode, "{}", w.output().1);
    }
    w.interrupt();
}

/// A body that starts to call a crate the library declared but never
/// loaded (its name already in the sources, in `#[cfg(test)]` code) changes
/// what its dependents must link: they compile, and the program runs.
#[test]
fn a_body_that_starts_to_call_a_crate_compiles_the_dependents() {
    let app = "relink-newcrate";
    let lib = |body: &str| {
        format!(
            "pub fn value() -> String {{\n    {body}\n}}\n\n#[cfg(test)]\nmod tests {{\n    \
             #[test]\n    fn formats() {{\n        \
             assert_eq!(itoa::Buffer::new().format(1u8), \"1\");\n    }}\n}}\n"
        )
    };
    let p = lib_and_app(app, "[dependencies]\nitoa = \"=1.0.18\"\n", "")
        .file("lib/src/lib.rs", &lib("String::from(\"1\")"))
        .file(
            "app/src/main.rs",
            "fn main() {\n    println!(\"{}\", lib::value());\n}\n",
        )
        .build();
    assert_eq!(p.dyndev(&["run", "-p", app]).success().stdout, "1\n");
    p.write(
        "lib/src/lib.rs",
        &lib("itoa::Buffer::new().format(2u8).to_owned()"),
    );
    let edit = p.dyndev(&["run", "-v", "-p", app]).success();
    assert_eq!(edit.stdout, "2\n", "{edit}");
    assert!(
        edit.stderr.contains("it starts to use the crate `itoa`"),
        "{edit}"
    );
    // And stays right on the next build.
    assert_eq!(p.dyndev(&["run", "-p", app]).success().stdout, "2\n");
}

/// A source put back during its compile with an older modification time
/// (`cp -p`, `rsync -t`): what the compile read is unknown, so nothing is
/// recorded of it, and the next compile cargo asks for happens.
#[test]
fn a_source_replaced_during_its_compile_is_not_recorded() {
    let app = "relink-replaced";
    let p = chain(app);
    let lib = p.root.join("base/src/lib.rs");
    let spare = p.root.join("spare.rs");
    // The user's own workspace wrapper (dyndev runs it inside its own)
    // puts the spare in place right after the library's compile.
    p.write(
        ".cargo/config.toml",
        "[build]\nrustc-workspace-wrapper = \"tools/wrap.sh\"\n",
    );
    p.write(
        "tools/wrap.sh",
        &format!(
            "#!/bin/sh\n\"$@\"\ncode=$?\ncase \"$*\" in\n  *\"--crate-name relink_replaced_base \"*)\n    \
             if [ -f '{spare}' ]; then cp -p '{spare}' '{lib}' && rm '{spare}'; fi;;\nesac\nexit $code\n",
            spare = spare.display(),
            lib = lib.display()
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        p.root.join("tools/wrap.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    assert_eq!(p.dyndev(&["run", "-p", app]).success().stdout, "1 2\n");

    std::fs::write(&spare, base_rs("3")).unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    std::fs::File::open(&spare)
        .unwrap()
        .set_modified(old)
        .unwrap();
    p.write("base/src/lib.rs", &base_rs("2"));
    // What the compile read.
    assert_eq!(p.dyndev(&["run", "-p", app]).success().stdout, "2 4\n");
    assert_eq!(std::fs::read_to_string(&lib).unwrap(), base_rs("3"));

    // Saved again: cargo asks for the compile, and it happens.
    std::fs::File::open(&lib)
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    let again = p.dyndev(&["run", "-p", app]).success();
    assert_eq!(again.stdout, "3 6\n", "{again}");
}

/// A workspace library's C code, compiled by its build script into a
/// static library that rustc bundles into the rlib: a change of the C
/// code, and nothing else, still reaches the program.
#[test]
fn a_static_library_from_a_build_script_is_an_input() {
    let app = "relink-cee";
    let build = "use std::process::Command;\n\nfn main() {\n    \
        let out = std::env::var(\"OUT_DIR\").unwrap();\n    \
        let obj = format!(\"{out}/cee.o\");\n    \
        assert!(Command::new(\"cc\").args([\"-c\", \"-fPIC\", \"cee.c\", \"-o\", &obj]).status().unwrap().success());\n    \
        assert!(Command::new(\"ar\").args([\"crs\", &format!(\"{out}/libcee.a\"), &obj]).status().unwrap().success());\n    \
        println!(\"cargo:rustc-link-search=native={out}\");\n    \
        println!(\"cargo:rustc-link-lib=static=cee\");\n    \
        println!(\"cargo:rerun-if-changed=cee.c\");\n}\n";
    let p = lib_and_app(app, "", "")
        .file("lib/build.rs", build)
        .file("lib/cee.c", "int cee_value(void) { return 1; }\n")
        .file(
            "lib/src/lib.rs",
            "extern \"C\" {\n    fn cee_value() -> i32;\n}\n\n\
             pub fn value() -> i32 {\n    unsafe { cee_value() }\n}\n",
        )
        .file(
            "app/src/main.rs",
            "fn main() {\n    println!(\"cee {}\", lib::value());\n}\n",
        )
        .build();
    assert_eq!(p.dyndev(&["run", "-p", app]).success().stdout, "cee 1\n");
    p.write("lib/cee.c", "int cee_value(void) { return 2; }\n");
    let edit = p.dyndev(&["run", "-v", "-p", app]).success();
    assert_eq!(edit.stdout, "cee 2\n", "{edit}");
    assert!(
        edit.stderr.contains("a static library it links changed"),
        "{edit}"
    );
    assert_eq!(p.dyndev(&["run", "-p", app]).success().stdout, "cee 2\n");
}

/// Split debug info names its files where rustc wrote them: a backtrace
/// through a workspace library still shows the library's lines.
#[test]
fn split_debuginfo_keeps_a_librarys_lines_in_a_backtrace() {
    let app = "relink-split";
    let p = lib_and_app(app, "", "\n[profile.dev]\nsplit-debuginfo = \"packed\"\n")
        .file(
            "lib/src/lib.rs",
            "pub fn value(x: Option<u32>) -> u32 {\n    x.unwrap()\n}\n",
        )
        .file(
            "app/src/main.rs",
            "fn main() {\n    println!(\"{}\", lib::value(None));\n}\n",
        )
        .build();
    let mut cmd = dyndev_cmd(&p.root, &["run", "-p", app]);
    cmd.env("RUST_BACKTRACE", "1");
    let run = run(cmd).code(101);
    // The frame of `value` itself, beyond the panic's own message.
    assert!(run.stderr.contains("at ./lib/src/lib.rs:2:7"), "{run}");
}

/// A library whose `P` has `pad` of `[u64; n]` before `a`, and whose
/// `show` returns `a` times `k`: `n` changes the layout under the same
/// symbol names, `k` a body alone.
fn layout_rs(n: u32, k: u32) -> String {
    format!(
        "pub struct P {{\n    pub pad: [u64; {n}],\n    pub a: u64,\n}}\n\n\
         pub fn show(p: &P) -> u64 {{\n    p.a * {k}\n}}\n"
    )
}

/// The shared library `needed` names for the workspace library `lib`.
fn link_to<'a>(needed: &'a [String], lib: &str) -> &'a str {
    needed
        .iter()
        .find(|n| n.starts_with(&format!("lib{lib}-")))
        .unwrap_or_else(|| panic!("no link to `{lib}` in {needed:?}"))
}

/// A program runs the code of a later body edit of its library (the
/// point of its own link), never code compiled for another layout of the
/// library's types: not when its new link is interrupted, and not as a
/// copy taken before the edit, which stops at its start instead.
#[test]
fn a_program_never_runs_a_library_compiled_for_another_layout() {
    let app = "layout-app";
    let p = project()
        .file(
            "Cargo.toml",
            "[workspace]\nmembers = [\"core\", \"app\"]\nresolver = \"2\"\n",
        )
        .file("core/Cargo.toml", &manifest("layout-core", ""))
        .file("core/src/lib.rs", &layout_rs(4, 1))
        .file(
            "app/Cargo.toml",
            &manifest(
                app,
                "[dependencies]\ncore = { path = \"../core\", package = \"layout-core\" }\n",
            ),
        )
        .file(
            "app/src/main.rs",
            "fn main() {\n    let p = core::P { pad: Default::default(), a: 7 };\n    \
             println!(\"show={}\", core::show(&p));\n}\n",
        )
        .build();
    let build = |interrupt| dyndev_interrupting(&p, interrupt, &["build", "-p", app]);
    build(None).success();
    let exe = p.bin(app);
    assert_eq!(run_outside_cargo(&exe, &[]).success().stdout, "show=7\n");
    let copies = tempfile::tempdir().unwrap();
    let copy = copies.path().join(app);
    std::fs::copy(&exe, &copy).unwrap();

    // A body edit: the program is pointed at the new code, and so is the
    // copy, which loads the library through the same link.
    p.write("core/src/lib.rs", &layout_rs(4, 2));
    build(None).success();
    assert_eq!(run_outside_cargo(&exe, &[]).success().stdout, "show=14\n");
    assert_eq!(run_outside_cargo(&copy, &[]).success().stdout, "show=14\n");
    assert_eq!(needed(&exe), needed(&copy));

    // A field's type changes, its name does not: the program compiles
    // again, and its link is interrupted. The program left from before
    // runs as it did.
    p.write("core/src/lib.rs", &layout_rs(1, 2));
    let deps_output = format!("*/deps/{}-*", app.replace('-', "_"));
    let out = build(Some((&deps_output, "fail")));
    assert_ne!(out.code, Some(0), "{out}");
    assert!(out.stderr.contains("was interrupted"), "{out}");
    assert_eq!(run_outside_cargo(&exe, &[]).success().stdout, "show=14\n");
    assert_eq!(run_outside_cargo(&copy, &[]).success().stdout, "show=14\n");

    // Linked to the end, the program names the library's new interface;
    // the copy stops at its start, naming what it cannot load.
    build(None).success();
    assert_eq!(run_outside_cargo(&exe, &[]).success().stdout, "show=14\n");
    let old = link_to(&needed(&copy), "layout_core").to_owned();
    assert_ne!(link_to(&needed(&exe), "layout_core"), old);
    let stale = run_outside_cargo(&copy, &[]);
    assert_eq!(stale.code, Some(127), "{stale}");
    assert!(
        stale
            .stderr
            .contains(&format!("{old}: cannot open shared object file")),
        "{stale}"
    );
    assert_eq!(stale.stdout, "");
}
