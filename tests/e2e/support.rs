//! Throwaway projects for end-to-end tests, and ways to look at what
//! dyndev made of them. All projects build into one shared target dir, so
//! each dependency compiles once for the whole suite.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The target dir every project shares.
pub fn shared_target_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-target");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// Where cargo puts every unit's output for dyndev's builds in the shared
/// target dir: the build dir, which dyndev shares with plain cargo.
pub fn shared_deps_dir() -> PathBuf {
    shared_target_dir().join("debug/deps")
}

/// Fails the test, naming the tool and how to get it, when `tool` is not
/// on `PATH`: a test never passes without what it tests.
#[track_caller]
pub fn require_tool(tool: &str) {
    assert!(
        which::which(tool).is_ok(),
        "this test needs `{tool}`, which is not on PATH: run `.ci/setup`, which installs \
         what the tests use"
    );
}

/// A headless X server on a display of its own (`-noreset`: it keeps
/// going when its last client leaves), stopped when dropped.
pub struct Xvfb {
    child: std::process::Child,
    /// `:N`, for `DISPLAY`.
    pub display: String,
}

impl Xvfb {
    /// Starts one and waits until it takes connections; fails the test,
    /// naming the tool, without `Xvfb`.
    #[track_caller]
    pub fn start() -> Xvfb {
        use std::io::BufRead;
        require_tool("Xvfb");
        // It picks a free display and writes its number once it listens.
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-noreset", "-nolisten", "tcp"])
            .args(["-screen", "0", "320x240x24"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("failed to start Xvfb");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let number: u32 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("Xvfb did not start: {line:?}"));
        Xvfb {
            child,
            display: format!(":{number}"),
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `cargo-dyndev dyndev ARGS`, run in `dir` with the shared target dir.
pub fn dyndev_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-dyndev"));
    cmd.arg("dyndev")
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", shared_target_dir())
        .env("CARGO_TERM_COLOR", "never")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTFLAGS")
        .stdin(Stdio::null());
    cmd
}

/// What a finished command printed, for assertions with context.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(out: Output) -> Run {
        use std::os::unix::process::ExitStatusExt;
        Run {
            code: out.status.code(),
            signal: out.status.signal(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn success(self) -> Run {
        assert_eq!(self.code, Some(0), "command failed:\n{self}");
        self
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(self.code, Some(code), "unexpected exit status:\n{self}");
        self
    }

    /// How many times `needle` appears on stderr.
    pub fn stderr_count(&self, needle: &str) -> usize {
        self.stderr.matches(needle).count()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {:?}, signal {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.signal, self.stdout, self.stderr
        )
    }
}

pub fn run(mut cmd: Command) -> Run {
    Run::from_output(cmd.output().expect("failed to start the command"))
}

/// A project in a temporary directory. `root` holds the workspace; files
/// may also be written next to it (`../shared/...`) for path dependencies
/// outside the workspace.
pub struct Project {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

pub struct ProjectBuilder {
    files: Vec<(String, String)>,
}

pub fn project() -> ProjectBuilder {
    ProjectBuilder { files: Vec::new() }
}

impl ProjectBuilder {
    pub fn file(mut self, path: &str, contents: &str) -> Self {
        self.files.push((path.to_owned(), contents.to_owned()));
        self
    }

    /// Writes the files and a `Cargo.lock`, as a user's checkout has.
    pub fn build(self) -> Project {
        let dir = tempfile::Builder::new()
            .prefix("dyndev-e2e-")
            .tempdir()
            .unwrap();
        let root = dir.path().join("ws");
        for (path, contents) in &self.files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, contents).unwrap();
        }
        let lock = Command::new(env!("CARGO"))
            .arg("generate-lockfile")
            .current_dir(&root)
            .output()
            .unwrap();
        assert!(
            lock.status.success(),
            "cargo generate-lockfile failed:\n{}",
            String::from_utf8_lossy(&lock.stderr)
        );
        Project { _dir: dir, root }
    }
}

impl Project {
    pub fn dyndev(&self, args: &[&str]) -> Run {
        run(dyndev_cmd(&self.root, args))
    }

    pub fn dyndev_in(&self, subdir: &str, args: &[&str]) -> Run {
        run(dyndev_cmd(&self.root.join(subdir), args))
    }

    /// Every file of the project outside target dirs, with its bytes: to
    /// compare before and after, proving dyndev changed nothing.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        let top = self.root.parent().unwrap();
        let mut stack = vec![top.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                let path = entry.path();
                if entry.file_type().unwrap().is_dir() {
                    if path.file_name().unwrap() != "target" {
                        stack.push(path);
                    }
                } else {
                    let rel = path.strip_prefix(top).unwrap().to_path_buf();
                    files.insert(rel, std::fs::read(&path).unwrap());
                }
            }
        }
        files
    }

    pub fn write(&self, path: &str, contents: &str) {
        let path = self.root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    /// `<target>/dyndev/debug/<name>`: where dyndev puts binaries.
    pub fn bin(&self, name: &str) -> PathBuf {
        shared_target_dir().join("dyndev/debug").join(name)
    }

    /// The `plan --message-format json` report.
    pub fn plan_json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["plan", "--message-format", "json"];
        full.extend_from_slice(args);
        let out = self.dyndev(&full).success();
        serde_json::from_str(&out.stdout).unwrap()
    }

    /// The bundle's shared library, from the plan report.
    pub fn bundle_file(&self) -> PathBuf {
        let plan = self.plan_json(&[]);
        PathBuf::from(plan["bundle"]["file"].as_str().expect("no bundle built"))
    }
}

/// A `Cargo.toml` for package `name` (version 0.1.0, edition 2021),
/// followed by `rest` (tables such as `[dependencies]`).
pub fn manifest(name: &str, rest: &str) -> String {
    format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n{rest}")
}

/// The newest test harness in the shared target dir whose name starts
/// with `crate_name-`.
pub fn newest_harness(crate_name: &str) -> PathBuf {
    let deps = shared_deps_dir();
    std::fs::read_dir(&deps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with(&format!("{crate_name}-")) && p.extension().is_none()
        })
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .unwrap_or_else(|| panic!("no test harness for `{crate_name}`"))
}

/// Asserts the program at `path` loads a dyndev bundle: itself, or
/// through a workspace library's shared version, as the loader finds them.
#[track_caller]
pub fn assert_loads_a_bundle(path: &Path) {
    let out = Command::new("ldd").arg(path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("libdyndev_bundle_")),
        "{}: {text}",
        path.display()
    );
}

/// Asserts the ELF file at `path` needs a dyndev bundle.
#[track_caller]
pub fn assert_needs_a_bundle(path: &Path) {
    let info = cargo_dyndev::testing::dynamic_info(path).unwrap();
    assert!(
        info.needed
            .iter()
            .any(|n| n.starts_with("libdyndev_bundle_")),
        "{}: {:?}",
        path.display(),
        info.needed
    );
}

/// Finds a package's entry in a plan report by name.
pub fn plan_entry<'a>(plan: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    plan["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("`{name}` not in the plan: {plan:#}"))
}

/// Runs a built binary directly, as a user would outside cargo: no
/// library path set, so only its run path can find the libraries.
pub fn run_outside_cargo(bin: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    run(cmd)
}

/// A workspace of two members: the library `engine`, whose `word()` says
/// `"alpha"`, and the program `app` using it, with `main_rs` as its main.
pub fn engine_workspace(app: &str, main_rs: &str) -> Project {
    project()
        .file(
            "Cargo.toml",
            &format!("[workspace]\nmembers = [\"engine\", \"{app}\"]\nresolver = \"2\"\n"),
        )
        .file("engine/Cargo.toml", &manifest("engine", ""))
        .file(
            "engine/src/lib.rs",
            "pub fn word() -> &'static str { \"alpha\" }\n",
        )
        .file(
            &format!("{app}/Cargo.toml"),
            &manifest(app, "[dependencies]\nengine = { path = \"../engine\" }\n"),
        )
        .file(&format!("{app}/src/main.rs"), main_rs)
        .build()
}

/// Everything `from` writes, gathered on a thread as it comes, for tests
/// that look at a running process's output.
pub fn collect_output(
    mut from: Box<dyn std::io::Read + Send>,
) -> std::sync::Arc<std::sync::Mutex<String>> {
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let into = text.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

/// A linker that links as `cc` does, except the link whose output matches
/// the glob `FAKE_CC_FAIL`: that one fails as an interrupted link does
/// (`FAKE_CC_HOW=fail`), or writes a part of its output and has the
/// process that started it killed (`kill-caller`).
const INTERRUPTING_CC: &str = r#"#!/bin/sh
out=
prev=
for a in "$@"; do
    if [ "$prev" = "-o" ]; then out=$a; fi
    prev=$a
done
if [ -n "$FAKE_CC_FAIL" ]; then
    case "$out" in
    $FAKE_CC_FAIL)
        if [ "$FAKE_CC_HOW" = kill-caller ]; then
            head -c 4096 /dev/zero > "$out"
            kill -KILL $PPID
        fi
        echo "fake-cc: the link of $out was interrupted" >&2
        exit 1;;
    esac
fi
exec cc "$@"
"#;

/// `cargo dyndev ARGS` in `p`, linking through [`INTERRUPTING_CC`] (every
/// build of `p` must, or cargo's fingerprints change); `interrupt` names
/// the link to interrupt (a glob of its output) and how.
pub fn dyndev_interrupting(p: &Project, interrupt: Option<(&str, &str)>, args: &[&str]) -> Run {
    use std::os::unix::fs::PermissionsExt;
    let cc = p.root.join("interrupting-cc");
    if !cc.exists() {
        std::fs::write(&cc, INTERRUPTING_CC).unwrap();
        std::fs::set_permissions(&cc, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut cmd = dyndev_cmd(&p.root, args);
    cmd.env("RUSTFLAGS", format!("-C linker={}", cc.display()));
    match interrupt {
        Some((output, how)) => cmd.env("FAKE_CC_FAIL", output).env("FAKE_CC_HOW", how),
        None => cmd.env_remove("FAKE_CC_FAIL"),
    };
    run(cmd)
}

/// Where the cutoff of `p`'s builds keeps its records and the workspace
/// libraries' shared versions (`so/`, `so/v/`).
pub fn cutoff_store(p: &Project) -> PathBuf {
    let root = p.root.canonicalize().unwrap();
    cargo_dyndev::testing::Layout::new(shared_target_dir(), "debug", &root)
        .state_dir
        .join("cutoff")
}

/// The shared libraries an ELF file needs (`DT_NEEDED`).
pub fn needed(path: &Path) -> Vec<String> {
    cargo_dyndev::testing::dynamic_info(path).unwrap().needed
}
