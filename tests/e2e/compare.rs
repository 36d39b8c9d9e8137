//! `cargo dyndev compare` on a small project: every field of the report is
//! there with a sane value, and the project's files are untouched.

use crate::support::*;

#[test]
fn compare_measures_each_mode_on_a_copy() {
    let p = project()
        .file(
            "Cargo.toml",
            &manifest(
                "cmp-app",
                "[dependencies]\nitoa = \"=1.0.18\"\nlog = \"=0.4.35\"\n",
            ),
        )
        .file(
            "src/main.rs",
            "fn main() { log::info!(\"x\"); println!(\"{}\", itoa::Buffer::new().format(9u8)); }\n",
        )
        // A linker of the user's own: compare's static mode must use it.
        .file(
            "tools/logged-cc",
            "#!/bin/sh\necho linked >> \"$(dirname \"$0\")/../linker-was-used\"\nexec cc \"$@\"\n",
        )
        .file(
            ".cargo/config.toml",
            &format!("[target.{}]\nlinker = \"tools/logged-cc\"\n", host()),
        )
        .build();
    let script = p.root.join("tools/logged-cc");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let before = p.snapshot();
    let out = p
        .dyndev(&[
            "compare",
            "--runs",
            "2",
            "--linkers",
            "none",
            "--cold",
            "--message-format",
            "json",
        ])
        .success();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();

    assert_eq!(report["scenario"], "edit");
    assert_eq!(report["file"], "src/main.rs");
    assert_eq!(report["runs"], 2);
    assert_eq!(report["target"], "bin `cmp-app`");
    let modes = report["modes"].as_array().unwrap();
    let names: Vec<&str> = modes.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["static rust-lld", "dyndev"]);
    for m in modes {
        let e = &m["edit_to_binary"];
        assert_eq!(e["samples"], 2, "{m}");
        let (min, med, max) = (
            e["min_ms"].as_f64().unwrap(),
            e["median_ms"].as_f64().unwrap(),
            e["max_ms"].as_f64().unwrap(),
        );
        assert!(
            0.0 < min && min <= med && med <= max && max < 120_000.0,
            "{m}"
        );
        let link = m["link"]["median_ms"].as_f64().unwrap();
        let compile = m["compile"]["median_ms"].as_f64().unwrap();
        assert!(
            link > 0.0 && link < med,
            "the link is part of the build: {m}"
        );
        assert!(compile > 0.0 && compile < med, "{m}");
        assert!(m["peak_kib"].as_u64().unwrap() > 1024, "{m}");
        assert!(m["link_peak_kib"].as_u64().unwrap() > 0, "{m}");
        assert!(m["binary_bytes"].as_u64().unwrap() > 1000, "{m}");
        assert!(m["speedup"].as_f64().unwrap() > 0.0);
        let links = m["links"].as_array().unwrap();
        assert_eq!(links.len(), 1, "one artifact linked: {m}");
        assert_eq!(links[0]["artifact"], "cmp_app", "{m}");
        let cold = m["cold_ms"].as_f64().expect("--cold times each mode");
        assert!(cold > med, "a cold build takes longer than an edit: {m}");
        let startup = &m["startup"];
        assert!(startup["loader_cycles"].as_u64().unwrap() > 0, "{m}");
        assert!(startup["run_ms"].as_f64().unwrap() > 0.0, "{m}");
    }
    assert_eq!(
        modes[0]["speedup"], 1.0,
        "speedups are against the default static mode"
    );
    // The dynamic binary is the smaller one, and its loader does more work.
    assert!(modes[1]["binary_bytes"].as_u64() < modes[0]["binary_bytes"].as_u64());
    let bundle = &report["bundle"];
    assert!(bundle["bytes"].as_u64().unwrap() > 1000, "{bundle}");
    assert!(bundle["exported_symbols"].as_u64().unwrap() > 10);
    assert!(bundle["link_peak_kib"].as_u64().unwrap() > 0);
    assert!(!report["verdict"].as_str().unwrap().is_empty());
    let chart = std::fs::read_to_string(report["chart"].as_str().unwrap()).unwrap();
    assert!(chart.starts_with("<svg"));
    assert!(chart.contains(">static rust-lld</text>") && chart.contains(">dyndev</text>"));

    assert_eq!(p.snapshot(), before, "compare works on a copy");
    // The configured linker ran, in the copy.
    let copy = shared_target_dir().join("dyndev-compare/src");
    assert!(
        copy.join("linker-was-used").exists(),
        "the user's linker was used"
    );
}

fn host() -> String {
    let out = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .unwrap()
}
