//! Member libraries that host code links: a build script and a proc-macro
//! use a workspace library that the program uses too. Cargo builds one
//! unit of it for all three; dyndev compiles it with cargo's arguments,
//! since a build script cannot wait for the bundle nor load it, and a body
//! edit of it compiles it alone, as for any workspace library.

use crate::support::*;

fn host_project() -> Project {
    project()
        .file(
            "Cargo.toml",
            "[workspace]\nmembers = [\"util\", \"derive\", \"app\"]\nresolver = \"2\"\n",
        )
        .file("util/Cargo.toml", &manifest("host-util", "[dependencies]\nitoa = \"1\"\n"))
        .file(
            "util/src/lib.rs",
            "pub fn label(n: u8) -> String { format!(\"n={}\", itoa::Buffer::new().format(n)) }\n",
        )
        .file(
            "derive/Cargo.toml",
            &manifest(
                "host-derive",
                "[lib]\nproc-macro = true\n\n\
                 [dependencies]\nhost-util = { path = \"../util\" }\n",
            ),
        )
        .file(
            "derive/src/lib.rs",
            "#[proc_macro]\n\
             pub fn labelled(_: proc_macro::TokenStream) -> proc_macro::TokenStream {\n\
             \x20   format!(\"{:?}\", host_util::label(9)).parse().unwrap()\n\
             }\n",
        )
        .file(
            "app/Cargo.toml",
            &manifest(
                "host-app",
                "[dependencies]\nhost-util = { path = \"../util\" }\n\
                 host-derive = { path = \"../derive\" }\nitoa = \"1\"\n\n\
                 [build-dependencies]\nhost-util = { path = \"../util\" }\n",
            ),
        )
        .file(
            "app/build.rs",
            "fn main() { println!(\"cargo:rustc-env=BUILT={}\", host_util::label(7)); }\n",
        )
        .file(
            "app/src/main.rs",
            "fn main() {\n\
             \x20   let four = itoa::Buffer::new().format(4u8).to_owned();\n\
             \x20   println!(\"{} {} {} {four}\", env!(\"BUILT\"), host_derive::labelled!(), host_util::label(3));\n\
             }\n",
        )
        .build()
}

/// The build script's output, the macro's expansion and the program's own
/// call all come from the library, and all follow an edit of it.
#[test]
fn a_library_that_a_build_script_and_a_proc_macro_use_builds_and_follows_edits() {
    let p = host_project();
    let run = p.dyndev(&["run", "-p", "host-app"]).success();
    assert_eq!(run.stdout, "n=7 n=9 n=3 4\n", "{run}");
    // The program still loads the bundle for its own dependency.
    assert_loads_a_bundle(&p.bin("host-app"));

    p.write(
        "util/src/lib.rs",
        "pub fn label(n: u8) -> String { format!(\"m={}\", itoa::Buffer::new().format(n)) }\n",
    );
    let run = p.dyndev(&["run", "-v", "-p", "host-app"]).success();
    assert_eq!(run.stdout, "m=7 m=9 m=3 4\n", "{run}");
    assert!(
        run.stderr
            .contains("its interface is unchanged: only bodies no dependent sees changed"),
        "{run}"
    );
    // Nothing was left half-built: another build has nothing to do.
    let again = p.dyndev(&["build", "-p", "host-app"]).success();
    assert!(!again.stderr.contains("Compiling"), "{again}");
}
