//! The bundle links with the linker the user configured, not only rustc's
//! default: GNU ld here, which every machine with a C toolchain has.

use crate::support::*;

#[test]
fn gnu_ld_links_the_bundle_and_exports_its_c_code() {
    let p = project()
        .file(
            "Cargo.toml",
            "[package]\nname = \"bfd-app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [dependencies]\nitoa = \"=1.0.18\"\ncee = { path = \"../cee\" }\n\n\
             [package.metadata.dyndev]\ninclude = [\"cee\"]\n",
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
