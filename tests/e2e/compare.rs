//! `cargo dyndev compare` on a small project: every field of the report is
//! there with a sane value, and the project's files are untouched; a run
//! that fails gives no run time, and Ctrl-C still shows what was measured.

use std::io::BufRead;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::*;

/// compare keeps one copy of the sources per target dir, and the tests
/// share one: each test holds this while it compares and looks at the copy.
fn one_compare_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn compare_measures_each_mode_on_a_copy() {
    let _one = one_compare_at_a_time();
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

/// The dependencies of every compare test: the same for all, so the
/// bundle of the copy is linked once.
const DEPS: &str = "[dependencies]\nitoa = \"=1.0.18\"\nlog = \"=0.4.35\"\n";

#[test]
fn a_run_that_fails_gives_no_run_time_and_no_claim() {
    let _one = one_compare_at_a_time();
    // It exits with an error when linked statically and panics when linked
    // against the bundle, as a program without the display it needs would.
    let p = project()
        .file("Cargo.toml", &manifest("cmp-fail", DEPS))
        .file(
            "src/main.rs",
            r#"fn main() {
    log::info!("x");
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    if maps.contains("libdyndev_bundle") {
        panic!("no display: {}", itoa::Buffer::new().format(0u8));
    }
    std::process::exit(3);
}
"#,
        )
        .build();
    let out = p
        .dyndev(&[
            "compare",
            "--runs",
            "1",
            "--linkers",
            "none",
            "--message-format",
            "json",
        ])
        .success();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let modes = report["modes"].as_array().unwrap();
    assert_eq!(modes.len(), 2, "{report}");
    for (m, why) in modes.iter().zip([
        "the program exited with status 3",
        "the program panicked at src/main.rs:5:9: no display: 0",
    ]) {
        let startup = &m["startup"];
        assert!(startup["run_ms"].is_null(), "{m}");
        assert_eq!(startup["run_not_measured"], why, "{m}");
        // The loader's statistics come before `main`: they still count.
        assert!(startup["loader_cycles"].as_u64().unwrap() > 0, "{m}");
    }
    let verdict = report["verdict"].as_str().unwrap();
    assert!(!verdict.contains(" ran "), "{verdict}");
    assert!(
        out.stderr
            .contains("warning: the run time of dyndev was not measured: the program panicked"),
        "{out}"
    );
    assert_eq!(out.stderr_count("--no-run"), 1, "{out}");
}

#[test]
fn ctrl_c_stops_early_and_shows_what_was_measured() {
    let _one = one_compare_at_a_time();
    let p = project()
        .file("Cargo.toml", &manifest("cmp-stop", DEPS))
        .file("src/main.rs", "fn main() { log::info!(\"x\"); }\n")
        .build();
    let before = p.snapshot();
    // Every process of the comparison inherits this, so none can hide.
    let mark = format!("DYNDEV_E2E_MARK=compare-{}", std::process::id());
    let (key, value) = mark.split_once('=').unwrap();
    let mut child = dyndev_cmd(&p.root, &["compare", "--runs", "50", "--linkers", "none"])
        .env(key, value)
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap();
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("no timed build within 10 minutes");
        if line.contains("Measured run 1/50") {
            break;
        }
    }
    // As `kill -INT` would: to the process alone, not its group.
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let stderr = reader.join().unwrap();
    let run = Run {
        code: status.code(),
        signal: std::os::unix::process::ExitStatusExt::signal(&status),
        stdout: String::new(),
        stderr,
    };
    assert_eq!(run.code, Some(130), "{run}");
    let table = run
        .stderr
        .split_once("MODE ")
        .unwrap_or_else(|| panic!("no table:\n{run}"))
        .1;
    assert!(table.contains("\nstatic rust-lld "), "{run}");
    assert!(run.stderr.contains("Interrupted after "), "{run}");
    assert!(!run.stderr.contains("Measured run 50/50"), "{run}");

    // Nothing the comparison started is left running.
    let left = || -> Vec<String> {
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            if environ.split(|b| *b == 0).any(|v| v == mark.as_bytes()) {
                pids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        pids
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !left().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(left(), Vec::<String>::new(), "processes left behind");
    assert_eq!(p.snapshot(), before, "compare works on a copy");
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

#[test]
fn compare_tests_times_the_test_loop_of_each_mode() {
    let _one = one_compare_at_a_time();
    let p = project()
        .file("Cargo.toml", &manifest("cmp-lib", DEPS))
        .file(
            "src/lib.rs",
            "pub fn show(n: u8) -> String { log::info!(\"x\"); itoa::Buffer::new().format(n).to_owned() }\n",
        )
        // Each run of the test writes down how it was linked.
        .file(
            "tests/it.rs",
            r#"#[test]
fn shows() {
    assert_eq!(cmp_lib::show(7), "7");
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let how = if maps.contains("libdyndev_bundle") { "bundle\n" } else { "static\n" };
    let log = std::env::var("CMP_TEST_LOG").unwrap();
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    std::io::Write::write_all(&mut f, how.as_bytes()).unwrap();
}
"#,
        )
        .build();
    let log = p.root.parent().unwrap().join("runs.txt");
    let mut cmd = dyndev_cmd(
        &p.root,
        &[
            "compare",
            "--tests",
            "--runs",
            "1",
            "--linkers",
            "none",
            "--message-format",
            "json",
        ],
    );
    cmd.env("CMP_TEST_LOG", &log);
    let out = run(cmd).success();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["tests"], true, "{report}");
    assert_eq!(report["target"], "tests of `cmp-lib`", "{report}");
    assert_eq!(report["file"], "src/lib.rs", "{report}");
    for m in report["modes"].as_array().unwrap() {
        assert_eq!(m["edit_to_binary"]["samples"], 1, "{m}");
        assert!(m["startup"].is_null(), "the loop's runs are timed: {m}");
    }
    // Each mode ran the tests on its warm-up builds and its timed one.
    let runs = std::fs::read_to_string(&log).unwrap();
    assert_eq!(runs.matches("static").count(), 3, "{runs}");
    assert_eq!(runs.matches("bundle").count(), 3, "{runs}");
}

#[test]
fn the_edit_compiles_in_a_crate_that_forbids_unsafe_code_and_denies_warnings() {
    let _one = one_compare_at_a_time();
    // The settings of many GUI crates: no unsafe code, no warning, every
    // public item documented, from the manifest and the crate alike.
    let p = project()
        .file(
            "Cargo.toml",
            &manifest(
                "cmp-strict",
                &format!(
                    "{DEPS}\n[lints.rust]\nunsafe_code = \"forbid\"\nmissing_docs = \"deny\"\n"
                ),
            ),
        )
        .file(
            "src/main.rs",
            r#"//! A program that allows no unsafe code and no warning.
#![forbid(unsafe_code)]
#![deny(warnings, missing_docs)]

mod show;

fn main() {
    log::info!("x");
    println!("{}", show::number(7));
}

#[cfg(test)]
mod tests {
    #[test]
    fn shows() {
        assert_eq!(super::show::number(7), "7");
    }
}
"#,
        )
        .file(
            "src/show.rs",
            "//! Numbers as text.\n\n/// `n` in decimal.\npub fn number(n: u8) -> String {\n    itoa::Buffer::new().format(n).to_owned()\n}\n",
        )
        .build();
    let before = p.snapshot();
    let out = p
        .dyndev(&[
            "compare",
            "--runs",
            "1",
            "--linkers",
            "none",
            "--no-run",
            "--message-format",
            "json",
        ])
        .success();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["file"], "src/main.rs", "{report}");
    let modes = report["modes"].as_array().unwrap();
    assert_eq!(modes.len(), 2, "{report}");
    for m in modes {
        assert_eq!(m["edit_to_binary"]["samples"], 1, "{m}");
        assert!(m["compile"]["median_ms"].as_f64().unwrap() > 0.0, "{m}");
    }
    assert_eq!(p.snapshot(), before, "compare works on a copy");
}

#[test]
fn an_edit_that_cannot_compile_stops_the_comparison_before_any_build() {
    let _one = one_compare_at_a_time();
    // `value.rs` is an expression, not a module: no item can be added to it.
    let p = project()
        .file("Cargo.toml", &manifest("cmp-badedit", DEPS))
        .file(
            "src/main.rs",
            "fn main() {\n    let n: u32 = include!(\"value.rs\");\n    log::info!(\"{n}\");\n    println!(\"{}\", itoa::Buffer::new().format(n));\n}\n",
        )
        .file("src/value.rs", "40 + 2\n")
        .build();
    let started = Instant::now();
    let out = p.dyndev(&[
        "compare",
        "--edit",
        "src/value.rs",
        "--runs",
        "1",
        "--linkers",
        "none",
    ]);
    let took = started.elapsed();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        !out.stderr.contains("Preparing"),
        "no build was started: {out}"
    );
    assert!(out.stderr.contains("error: "), "{out}");
    assert!(out.stderr.contains("`src/value.rs`"), "{out}");
    assert!(out.stderr.contains("--touch src/value.rs"), "{out}");
    assert!(out.stderr.contains("--edit FILE"), "{out}");
    eprintln!("the edit was refused in {took:?}");
}

#[test]
fn a_program_that_never_exits_is_waited_for_once() {
    let _one = one_compare_at_a_time();
    // A GUI program, as far as compare can tell: it runs until closed.
    let p = project()
        .file("Cargo.toml", &manifest("cmp-forever", DEPS))
        .file(
            "src/main.rs",
            r#"fn main() {
    log::info!("x");
    println!("{}", itoa::Buffer::new().format(1u8));
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
"#,
        )
        .build();
    let out = p
        .dyndev(&[
            "compare",
            "--runs",
            "1",
            "--linkers",
            "none",
            "--timeout",
            "1",
            "--message-format",
            "json",
        ])
        .success();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let modes = report["modes"].as_array().unwrap();
    assert_eq!(modes.len(), 2, "{report}");
    assert_eq!(
        modes[0]["startup"]["run_not_measured"],
        "the program was still running after 1 s (`--timeout`)",
        "{report}"
    );
    assert_eq!(
        modes[1]["startup"]["run_not_measured"],
        "not waited for: the program's first run was still going after 1 s (`--timeout`)",
        "{report}"
    );
    for m in modes {
        let startup = &m["startup"];
        assert!(startup["run_ms"].is_null(), "{m}");
        // The start-up figure comes before `main`: it is there for each mode.
        assert!(startup["loader_cycles"].as_u64().unwrap() > 0, "{m}");
    }
    let verdict = report["verdict"].as_str().unwrap();
    assert!(!verdict.contains(" ran "), "{verdict}");
    assert_eq!(out.stderr_count("warning: "), 1, "one note for all: {out}");
    assert_eq!(out.stderr_count("--no-run"), 1, "{out}");
    let chart = std::fs::read_to_string(report["chart"].as_str().unwrap()).unwrap();
    assert!(chart.contains(">dyndev</text>"), "{chart}");
}

/// `--edit` of a workspace library the program uses: after compare's first
/// edit, each edit is one inside a function body, so dyndev compiles the
/// library alone and points the program at its new shared version. The
/// program measured is the program, not a library linked after it.
#[test]
fn an_edit_of_a_workspace_library_times_the_library_alone() {
    let _one = one_compare_at_a_time();
    let p = project()
        .file(
            "Cargo.toml",
            "[workspace]\nmembers = [\"core\", \"app\"]\nresolver = \"2\"\n",
        )
        .file("core/Cargo.toml", &manifest("cmp-core", DEPS))
        .file(
            "core/src/lib.rs",
            "pub fn value() -> u8 {\n    9\n}\n",
        )
        .file(
            "app/Cargo.toml",
            &manifest(
                "cmp-lib-app",
                &format!("{DEPS}cmp-core = {{ path = \"../core\" }}\n"),
            ),
        )
        .file(
            "app/src/main.rs",
            "fn main() { log::info!(\"x\"); println!(\"{}\", itoa::Buffer::new().format(cmp_core::value())); }\n",
        )
        .build();
    let out = p
        .dyndev(&[
            "compare",
            "--edit",
            "core/src/lib.rs",
            "--runs",
            "2",
            "--linkers",
            "none",
            "--message-format",
            "json",
        ])
        .success();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["file"], "core/src/lib.rs");
    let dyndev = &report["modes"].as_array().unwrap()[1];
    assert_eq!(dyndev["name"], "dyndev");
    // The program ran, from the program's file.
    assert!(
        dyndev["startup"]["run_ms"].as_f64().unwrap() > 0.0,
        "{dyndev}"
    );
    assert_eq!(
        dyndev["startup"]["run_not_measured"],
        serde_json::Value::Null
    );
    let artifacts: Vec<&str> = dyndev["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["artifact"].as_str().unwrap())
        .collect();
    // The program was pointed at the library's new code; only the library
    // was linked, as a shared library.
    assert!(artifacts.contains(&"libcmp_core.so"), "{dyndev}");
    assert!(
        dyndev["compile"]["median_ms"].as_f64().unwrap()
            < report["modes"][0]["compile"]["median_ms"].as_f64().unwrap(),
        "one crate compiled: {report}"
    );
}
