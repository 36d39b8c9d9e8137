//! The bundle links with the linker the user configured, not only rustc's
//! default: GNU ld here, which every machine with a C toolchain has.

use crate::support::*;

#[test]
fn gnu_ld_links_the_bundle_and_exports_its_c_code() {
    let p = project()
        .file(
            "Cargo.toml",
            &manifest(
                "bfd-app",
                "[dependencies]\nitoa = \"=1.0.18\"\ncee = { path = \"../cee\" }\n\n\
             [package.metadata.dyndev]\ninclude = [\"cee\"]\n",
            ),
        )
        .file(
            "src/main.rs",
            "fn main() { println!(\"{} {}\", itoa::Buffer::new().format(5u8), unsafe { cee::cee_add(1, 2) }); }\n",
        )
        .file(
            "../cee/Cargo.toml",
            "[package]\nname = \"cee\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .file(
            "../cee/build.rs",
            r#"
fn main() {
    let out = std::env::var("OUT_DIR").unwrap();
    let obj = format!("{out}/cee.o");
    assert!(std::process::Command::new("cc").args(["-c", "-fPIC", "cee.c", "-o", &obj]).status().unwrap().success());
    assert!(std::process::Command::new("ar").args(["crs", &format!("{out}/libcee.a"), &obj]).status().unwrap().success());
    println!("cargo:rustc-link-search=native={out}");
    println!("cargo:rustc-link-lib=static=cee");
}
"#,
        )
        .file("../cee/cee.c", "int cee_add(int a, int b) { return a + b; }\n")
        .file(
            "../cee/src/lib.rs",
            "extern \"C\" { pub fn cee_add(a: i32, b: i32) -> i32; }\n",
        )
        .build();
    let mut cmd = dyndev_cmd(&p.root, &["run", "-q"]);
    cmd.env("RUSTFLAGS", "-C link-arg=-fuse-ld=bfd");
    let out = run(cmd).success();
    assert_eq!(out.stdout, "5 3\n");
    assert!(!out.stderr.contains("warning"), "nothing fell back: {out}");
    let plan = p.plan_json(&[]);
    assert_eq!(plan_entry(&plan, "cee")["placement"], "bundle", "{plan:#}");
    // rust-lld signs its output ("Linker: LLD ..." in .comment); GNU ld
    // does not. The bundle bears no LLD mark: the configured linker made it.
    let bundle = std::fs::read(p.bundle_file()).unwrap();
    assert!(!String::from_utf8_lossy(&bundle).contains("Linker: LLD"));
}

#[test]
fn a_crate_that_cannot_link_into_a_shared_library_stays_static() {
    // C code with local-exec TLS links into an executable but never into
    // a shared library: the linker refuses the relocation.
    let p = project()
        .file(
            "Cargo.toml",
            &manifest(
                "tls-app",
                "[dependencies]\nitoa = \"=1.0.18\"\ntls-sys = { path = \"../tls-sys\" }\n\n\
             [package.metadata.dyndev]\ninclude = [\"tls-sys\"]\n",
            ),
        )
        .file(
            "src/main.rs",
            "fn main() { println!(\"{} {}\", itoa::Buffer::new().format(7u8), tls_sys::bump()); }\n",
        )
        .file(
            "../tls-sys/Cargo.toml",
            "[package]\nname = \"tls-sys\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .file(
            "../tls-sys/build.rs",
            r#"
fn main() {
    let out = std::env::var("OUT_DIR").unwrap();
    let obj = format!("{out}/tls.o");
    let ok = std::process::Command::new("cc")
        .args(["-c", "-fPIC", "-ftls-model=local-exec", "tls.c", "-o", &obj])
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(std::process::Command::new("ar").args(["crs", &format!("{out}/libtls.a"), &obj]).status().unwrap().success());
    println!("cargo:rustc-link-search=native={out}");
    println!("cargo:rustc-link-lib=static=tls");
}
"#,
        )
        .file("../tls-sys/tls.c", "__thread int counter;\nint tls_bump(void) { return ++counter; }\n")
        .file(
            "../tls-sys/src/lib.rs",
            "extern \"C\" { fn tls_bump() -> i32; }\npub fn bump() -> i32 { unsafe { tls_bump() } }\n",
        )
        .build();
    let out = p.dyndev(&["run"]).success();
    assert_eq!(out.stdout, "7 1\n");
    assert!(
        out.stderr
            .contains("warning: `tls-sys` cannot be linked into a shared library; it stays static"),
        "{out}"
    );
    let plan = p.plan_json(&[]);
    let tls = plan_entry(&plan, "tls-sys");
    assert_eq!(tls["placement"], "static", "{tls}");
    assert_eq!(tls["reason"]["kind"], "link-failed", "{tls}");
    assert!(
        tls["reason"]["message"]
            .as_str()
            .unwrap()
            .contains("TPOFF32"),
        "{tls}"
    );
    assert_eq!(plan_entry(&plan, "itoa")["placement"], "bundle");
    // Learned once: the next build does not try again.
    let again = p.dyndev(&["build"]).success();
    assert!(!again.stderr.contains("warning"), "{again}");
}
