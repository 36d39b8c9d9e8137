//! `cargo dyndev watch`: a save restarts the program on the new build,
//! only a save of a file the build read does, a failed build leaves the
//! program running, and no process outlives the watcher.

use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

/// How long anything may take on a busy machine.
const PATIENCE: Duration = Duration::from_secs(120);

/// A program that starts a child process, says who it is, and runs until
/// stopped.
fn program(version: &str) -> String {
    format!(
        "fn main() {{\n\
         \x20   let child = std::process::Command::new(\"sleep\").arg(\"300\").spawn().unwrap();\n\
         \x20   println!(\"{version} pid={{}} child={{}} data={{}}\", std::process::id(), child.id(), \
         include_str!(\"data.txt\").trim());\n\
         \x20   std::thread::sleep(std::time::Duration::from_secs(300));\n\
         }}\n"
    )
}

fn watch_project(name: &str) -> Project {
    project()
        .file("Cargo.toml", &manifest(name, ""))
        .file("src/main.rs", &program("v1"))
        .file("src/data.txt", "d1\n")
        .file("README.md", "# a program\n")
        .build()
}

/// One line of the program's output.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hello {
    version: String,
    pid: i32,
    child: i32,
    data: String,
}

fn hellos(stdout: &str) -> Vec<Hello> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut words = l.split(' ');
            let version = words.next()?.to_owned();
            let field = |w: Option<&str>, key: &str| w?.strip_prefix(key).map(str::to_owned);
            Some(Hello {
                version,
                pid: field(words.next(), "pid=")?.parse().ok()?,
                child: field(words.next(), "child=")?.parse().ok()?,
                data: field(words.next(), "data=")?,
            })
        })
        .collect()
}

/// Whether a process runs (a zombie does not).
pub(crate) fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 1..]
                .trim_start()
                .chars()
                .next();
            !matches!(state, Some('Z' | 'X'))
        }
        Err(_) => false,
    }
}

#[track_caller]
pub(crate) fn assert_gone(pid: i32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "{what} (pid {pid}) is still running"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[allow(unsafe_code)]
fn signal(pid: u32, signal: i32) {
    // SAFETY: a plain system call.
    let ok = unsafe { libc::kill(pid as i32, signal) } == 0;
    assert!(ok, "could not signal {pid}");
}

/// A running `cargo dyndev watch`, its output collected as it comes.
pub(crate) struct Watching {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Watching {
    pub(crate) fn start(p: &Project, args: &[&str]) -> Watching {
        Watching::start_in(p, args, &[])
    }

    /// [`Watching::start`] with the variables `env` set for the watcher
    /// and so for the program.
    pub(crate) fn start_in(p: &Project, args: &[&str], env: &[(&str, &str)]) -> Watching {
        let mut full = vec!["watch"];
        full.extend_from_slice(args);
        let mut child = dyndev_cmd(&p.root, &full)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = collect_output(Box::new(child.stdout.take().unwrap()));
        let stderr = collect_output(Box::new(child.stderr.take().unwrap()));
        Watching {
            child,
            stdout,
            stderr,
        }
    }

    pub(crate) fn output(&self) -> (String, String) {
        (
            self.stdout.lock().unwrap().clone(),
            self.stderr.lock().unwrap().clone(),
        )
    }

    /// Waits until `done` holds for (stdout, stderr), and returns them.
    #[track_caller]
    pub(crate) fn wait_for(
        &self,
        what: &str,
        done: impl Fn(&str, &str) -> bool,
    ) -> (String, String) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (out, err) = self.output();
            if done(&out, &err) {
                return (out, err);
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n--- stdout\n{out}\n--- stderr\n{err}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the program's `n`th line of output.
    #[track_caller]
    fn hello(&self, n: usize) -> Hello {
        let (out, _) = self.wait_for(&format!("start #{n}"), |out, _| hellos(out).len() >= n);
        hellos(&out)[n - 1].clone()
    }

    /// Sends SIGINT, as Ctrl-C does, and waits for the watcher to end.
    pub(crate) fn interrupt(&mut self) -> ExitStatus {
        signal(self.child.id(), libc::SIGINT);
        self.wait_exit()
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the watcher did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_save_restarts_the_program_and_only_a_save_of_an_input_does() {
    let p = watch_project("watch-restart");
    let mut expected = p.snapshot();
    let mut w = Watching::start(&p, &["--grace", "5s"]);
    let first = w.hello(1);
    assert_eq!((first.version.as_str(), first.data.as_str()), ("v1", "d1"));
    w.wait_for("the watcher to watch", |_, err| err.contains("Watching"));

    // An edit of the program: a new process with the new output, and the
    // old one is gone with the process it started.
    p.write("src/main.rs", &program("v2"));
    let second = w.hello(2);
    assert_eq!(second.version, "v2");
    assert_ne!(second.pid, first.pid);
    assert_gone(first.pid, "the old instance");
    assert_gone(first.child, "the old instance's child");
    assert!(alive(second.pid) && alive(second.child));

    // Files the build does not read, a save that changes no byte, then a
    // file the build reads through `include_str!`: one rebuild, for the
    // latter.
    p.write("README.md", "# still a program\n");
    p.write("src/main.rs", &program("v2"));
    std::fs::create_dir_all(p.root.join("target")).unwrap();
    std::fs::write(p.root.join("target/scratch.txt"), "x").unwrap();
    p.write("src/data.txt", "d2\n");
    let third = w.hello(3);
    assert_eq!((third.version.as_str(), third.data.as_str()), ("v2", "d2"));
    let (_, err) = w.output();
    assert_eq!(err.matches("Rebuilding").count(), 2, "{err}");
    assert!(
        err.contains("Rebuilding after a change to `src/data.txt`\n"),
        "{err}"
    );
    assert!(!err.contains("README"), "{err}");
    assert!(err.contains("Restarted `"), "{err}");

    // An editor's save (a temporary file renamed over the old one) and a
    // second file saved with it: one rebuild.
    std::fs::write(p.root.join("src/.main.rs.swp"), program("v4")).unwrap();
    std::fs::rename(p.root.join("src/.main.rs.swp"), p.root.join("src/main.rs")).unwrap();
    p.write("src/data.txt", "d4\n");
    let fourth = w.hello(4);
    assert_eq!(
        (fourth.version.as_str(), fourth.data.as_str()),
        ("v4", "d4")
    );
    // One more save, after which the next start must be its: a second
    // rebuild for the editor's save would have started first.
    p.write("src/data.txt", "d5\n");
    let fifth = w.hello(5);
    assert_eq!((fifth.version.as_str(), fifth.data.as_str()), ("v4", "d5"));
    let (out, err) = w.output();
    assert_eq!(err.matches("Rebuilding").count(), 4, "{err}");
    assert_eq!(hellos(&out).len(), 5, "{out}");

    // Ctrl-C ends the watcher, the program and what it started.
    w.interrupt();
    assert_gone(fifth.pid, "the program");
    assert_gone(fifth.child, "the program's child");
    assert_gone(third.pid, "an old instance");

    for (path, contents) in [
        ("src/main.rs", program("v4")),
        ("src/data.txt", "d5\n".into()),
        ("README.md", "# still a program\n".into()),
    ] {
        expected.insert(std::path::Path::new("ws").join(path), contents.into_bytes());
    }
    assert_eq!(p.snapshot(), expected, "the user's files changed");
}

/// `-vv` makes cargo verbose too (`-v` alone is watch's own: see
/// `hot::a_body_edit_reaches_the_running_process_and_a_compile_error_keeps_it`).
#[test]
fn watch_vv_makes_cargo_verbose() {
    let p = watch_project("watch-vv");
    let w = Watching::start(&p, &["-vv"]);
    w.hello(1);
    let (_, err) = w.wait_for("the watcher to watch", |_, err| err.contains("Watching"));
    assert!(err.contains("--crate-name watch_vv"), "{err}");
}

#[test]
fn a_failed_build_keeps_the_program_running() {
    let p = watch_project("watch-broken");
    let mut w = Watching::start(&p, &[]);
    let first = w.hello(1);

    p.write(
        "src/main.rs",
        "fn main() { let x: u32 = \"not a number\"; }\n",
    );
    let (_, err) = w.wait_for("the compile error", |_, err| err.contains("Waiting"));
    assert!(err.contains("error[E0308]"), "{err}");
    assert!(alive(first.pid) && alive(first.child), "{err}");
    assert_eq!(hellos(&w.output().0).len(), 1);

    // A program that ends by itself is reported, and watch waits.
    p.write(
        "src/main.rs",
        "fn main() { println!(\"v2 pid=0 child=0 data=x\"); std::process::exit(3) }\n",
    );
    w.wait_for("the exit", |_, err| err.contains("exit status 3"));
    assert_gone(first.pid, "the old instance");
    assert_gone(first.child, "the old instance's child");

    p.write("src/main.rs", &program("v3"));
    let third = w.hello(3);
    assert_eq!(third.version, "v3");
    w.interrupt();
    assert_gone(third.pid, "the program");
}

#[test]
fn nothing_is_left_when_the_watcher_is_killed() {
    let p = watch_project("watch-killed");
    let mut w = Watching::start(&p, &[]);
    let first = w.hello(1);
    w.wait_for("the watcher to watch", |_, err| err.contains("Watching"));
    signal(w.child.id(), libc::SIGKILL);
    w.wait_exit();
    assert_gone(first.pid, "the program");
    assert_gone(first.child, "the program's child");
}

/// A program that starts `sleep` in a session of its own (`setsid`), out
/// of reach of its process group, says who it is, and runs until stopped.
/// `marker`, sleep's argument, finds the sleep in `/proc`.
fn escaping_program(version: &str, marker: &str) -> String {
    format!(
        "fn main() {{\n\
         \x20   std::process::Command::new(\"setsid\").args([\"sleep\", \"{marker}\"]).spawn().unwrap();\n\
         \x20   println!(\"{version} pid={{}} child=0 data=x\", std::process::id());\n\
         \x20   std::thread::sleep(std::time::Duration::from_secs(300));\n\
         }}\n"
    )
}

/// The live process whose command line is `argv`, if any.
fn find_process(argv: &[&str]) -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.strip_suffix(&[0])?.split(|b| *b == 0).collect();
        let wanted: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
        (args == wanted && alive(pid)).then_some(pid)
    })
}

/// Waits for the process whose command line is `argv` to run.
#[track_caller]
fn wait_process(argv: &[&str], what: &str) -> i32 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(pid) = find_process(argv) {
            return pid;
        }
        assert!(Instant::now() < deadline, "{what} ({argv:?}) never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The session of process `pid`.
fn session(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .collect();
    fields[3].parse().unwrap()
}

/// The parent of process `pid`, if it is still there.
fn parent(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The signals process `pid` blocks, as a mask.
fn blocked_signals(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .unwrap();
    u64::from_str_radix(mask.trim(), 16).unwrap()
}

/// Kills, when a test ends, whatever still runs a command line it names:
/// a failed test leaves no `sleep 3000` behind.
struct KillLeftovers(Vec<Vec<String>>);

impl Drop for KillLeftovers {
    fn drop(&mut self) {
        for argv in &self.0 {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            while let Some(pid) = find_process(&argv) {
                signal(pid as u32, libc::SIGKILL);
                assert_gone(pid, "a leftover");
            }
        }
    }
}

/// A child that left the program's process group and session is no
/// descendant a group signal reaches: it is stopped all the same on a
/// restart, and when the watcher is killed.
#[test]
fn a_child_in_a_session_of_its_own_does_not_outlive_the_program() {
    if which::which("setsid").is_err() {
        eprintln!("skipped: no `setsid` to leave the session with");
        return;
    }
    let marker = |n: u32| format!("3000.{}{n}", std::process::id());
    let argv = |n: u32| vec!["sleep".to_owned(), marker(n)];
    let _leftovers = KillLeftovers(vec![argv(1), argv(2)]);
    let p = project()
        .file("Cargo.toml", &manifest("watch-setsid", ""))
        .file("src/main.rs", &escaping_program("v1", &marker(1)))
        .build();
    let mut w = Watching::start(&p, &[]);
    let first = w.hello(1);
    w.wait_for("the watcher to watch", |_, err| err.contains("Watching"));
    let escaped = wait_process(&["sleep", &marker(1)], "the first instance's child");
    assert_ne!(
        session(escaped),
        session(first.pid),
        "setsid made no session"
    );
    // As from a shell: Ctrl-C and SIGTERM reach it.
    assert_eq!(
        blocked_signals(first.pid),
        0,
        "the program starts with signals blocked"
    );

    // A restart: the old instance's child goes with it.
    p.write("src/main.rs", &escaping_program("v2", &marker(2)));
    let second = w.hello(2);
    assert_gone(first.pid, "the old instance");
    assert_gone(escaped, "the old instance's child in a session of its own");
    let escaped = wait_process(&["sleep", &marker(2)], "the second instance's child");

    // The watcher killed: the running instance's child goes too.
    signal(w.child.id(), libc::SIGKILL);
    w.wait_exit();
    assert_gone(second.pid, "the program");
    assert_gone(escaped, "the program's child in a session of its own");
}

/// A process the program leaves behind and that then ends is reaped, not
/// left a zombie by whoever adopted it.
#[test]
fn an_orphan_that_ends_is_reaped() {
    let p = project()
        .file("Cargo.toml", &manifest("watch-orphan", ""))
        .file(
            "src/main.rs",
            "fn main() {\n\
             \x20   let sh = \"sleep 1 >/dev/null 2>&1 & echo $!\";\n\
             \x20   let out = std::process::Command::new(\"sh\").args([\"-c\", sh]).output().unwrap();\n\
             \x20   let orphan = String::from_utf8(out.stdout).unwrap();\n\
             \x20   println!(\"v1 pid={} child={} data=x\", std::process::id(), orphan.trim());\n\
             \x20   std::thread::sleep(std::time::Duration::from_secs(300));\n\
             }\n",
        )
        .build();
    let mut w = Watching::start(&p, &[]);
    let first = w.hello(1);
    // Adopted by the program's parent, which watch put there for that.
    if let Some(adopter) = parent(first.child) {
        assert_eq!(Some(adopter), parent(first.pid));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::path::Path::new(&format!("/proc/{}", first.child)).exists() {
        let state = std::fs::read_to_string(format!("/proc/{}/stat", first.child));
        assert!(
            Instant::now() < deadline,
            "the orphan (pid {}) was not reaped: {state:?}",
            first.child
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(alive(first.pid));
    w.interrupt();
    assert_gone(first.pid, "the program");
}

#[test]
fn watch_test_reruns_the_tests() {
    let p = project()
        .file("Cargo.toml", &manifest("watch-tests", ""))
        .file(
            "src/lib.rs",
            "pub fn answer() -> u32 { 42 }\n\n\
             #[test]\nfn answers() { assert_eq!(answer(), 42); }\n\
             #[test]\nfn other() {}\n",
        )
        .build();
    let mut w = Watching::start(&p, &["test", "answers"]);
    let (out, err) = w.wait_for("the first run", |_, err| err.contains("tests passed"));
    assert!(out.contains("test answers ... ok"), "{out}\n{err}");
    assert!(!out.contains("test other"), "the filter was lost:\n{out}");

    p.write(
        "src/lib.rs",
        "pub fn answer() -> u32 { 41 }\n\n\
         #[test]\nfn answers() { assert_eq!(answer(), 42); }\n",
    );
    let (out, err) = w.wait_for("the failure", |_, err| err.contains("tests failed"));
    assert!(out.contains("test answers ... FAILED"), "{out}\n{err}");
    w.interrupt();
}

#[test]
fn a_build_script_input_restarts_the_program() {
    let p = project()
        .file("Cargo.toml", &manifest("watch-build-script", ""))
        .file(
            "build.rs",
            "fn main() {\n\
             \x20   println!(\"cargo:rerun-if-changed=assets/level.txt\");\n\
             \x20   let level = std::fs::read_to_string(\"assets/level.txt\").unwrap();\n\
             \x20   println!(\"cargo:rustc-env=LEVEL={}\", level.trim());\n\
             }\n",
        )
        .file(
            "src/main.rs",
            "fn main() {\n\
             \x20   println!(\"v1 pid={} child=0 data={}\", std::process::id(), env!(\"LEVEL\"));\n\
             \x20   std::thread::sleep(std::time::Duration::from_secs(300));\n\
             }\n",
        )
        .file("assets/level.txt", "one\n")
        .build();
    let mut w = Watching::start(&p, &[]);
    let first = w.hello(1);
    assert_eq!(first.data, "one");
    w.wait_for("the watcher to watch", |_, err| err.contains("Watching"));

    p.write("assets/level.txt", "two\n");
    let second = w.hello(2);
    assert_eq!(second.data, "two");
    assert_gone(first.pid, "the old instance");
    w.interrupt();
    assert_gone(second.pid, "the program");
}

/// A workspace whose build scripts cargo runs again for different saves:
/// `engine`'s prints no `rerun-if` (any file of the package reruns it;
/// it counts the `pub fn`s of its library), `level`'s watches the
/// directory `assets` (it joins what every file under it says, and the
/// library also reads `assets/a.txt`). The program says both.
fn scripts_project(app: &str) -> Project {
    project()
        .file(
            "Cargo.toml",
            &format!(
                "[workspace]\nmembers = [\"engine\", \"level\", \"{app}\"]\nresolver = \"2\"\n"
            ),
        )
        .file("engine/Cargo.toml", &manifest("engine", ""))
        .file(
            "engine/build.rs",
            "fn main() {\n\
             \x20   let lib = std::fs::read_to_string(\"src/lib.rs\").unwrap();\n\
             \x20   println!(\"cargo:rustc-env=NFNS={}\", lib.matches(\"pub fn \").count());\n\
             }\n",
        )
        .file(
            "engine/src/lib.rs",
            "pub fn count() -> &'static str {\n    env!(\"NFNS\")\n}\n",
        )
        .file("level/Cargo.toml", &manifest("level", ""))
        .file(
            "level/build.rs",
            "fn main() {\n\
             \x20   println!(\"cargo:rerun-if-changed=assets\");\n\
             \x20   let (mut dirs, mut said) = (vec![std::path::PathBuf::from(\"assets\")], vec![]);\n\
             \x20   while let Some(dir) = dirs.pop() {\n\
             \x20       for entry in std::fs::read_dir(dir).unwrap() {\n\
             \x20           let path = entry.unwrap().path();\n\
             \x20           match path.is_dir() {\n\
             \x20               true => dirs.push(path),\n\
             \x20               false => said.push(std::fs::read_to_string(path).unwrap().trim().to_owned()),\n\
             \x20           }\n\
             \x20       }\n\
             \x20   }\n\
             \x20   said.sort();\n\
             \x20   println!(\"cargo:rustc-env=LEVEL={}\", said.join(\"+\"));\n\
             }\n",
        )
        .file("level/src/lib.rs", &level_lib(""))
        .file("level/assets/a.txt", "a1\n")
        .file(
            &format!("{app}/Cargo.toml"),
            &manifest(
                app,
                "[dependencies]\n\
                 engine = { path = \"../engine\" }\n\
                 level = { path = \"../level\" }\n",
            ),
        )
        .file(
            &format!("{app}/src/main.rs"),
            "fn main() {\n\
             \x20   let data = format!(\"{}-{}\", engine::count(), level::level());\n\
             \x20   println!(\"v1 pid={} child=0 data={data}\", std::process::id());\n\
             \x20   std::thread::sleep(std::time::Duration::from_secs(300));\n\
             }\n",
        )
        .build()
}

/// `level`'s library: what its build script found, after `prefix`.
fn level_lib(prefix: &str) -> String {
    format!(
        "pub fn level() -> String {{\n\
         \x20   let _ = include_str!(\"../assets/a.txt\");\n\
         \x20   format!(\"{prefix}{{}}\", env!(\"LEVEL\"))\n\
         }}\n"
    )
}

/// The fast path replays rustc with what build scripts printed last: a
/// save that makes cargo run a script again is cargo's to build. Saves
/// cargo runs no script for are still replayed.
#[test]
fn a_save_that_runs_a_build_script_again_goes_to_cargo() {
    let p = scripts_project("watch-scripts");
    // `-vv`: cargo's own `-v`, which names each build script it runs.
    let mut w = Watching::start(&p, &["-vv"]);
    assert_eq!(w.hello(1).data, "1-a1");
    w.wait_for("the watcher to watch", |_, err| err.contains("Watching"));
    // The `n`th start: what the program said, and what the watcher said
    // since the save.
    let start = |n: usize| {
        let data = w.hello(n).data;
        let (_, err) = w.wait_for(&format!("restart #{n}"), |_, err| {
            err.matches("Restarted `").count() >= n - 1
        });
        (data, err[err.rfind("Rebuilding").unwrap()..].to_owned())
    };
    // Whether cargo built, running `package`'s build script.
    let script_ran = |last: &str, package: &str| {
        !last.contains("(replayed")
            && last.lines().any(|l| {
                l.contains(&format!("/build/{package}-")) && l.contains("build-script-build`")
            })
    };

    // A script that prints no `rerun-if`: a new function in its library.
    p.write(
        "engine/src/lib.rs",
        "pub fn count() -> &'static str {\n    env!(\"NFNS\")\n}\n\n\
         pub fn more() {}\n",
    );
    let (data, last) = start(2);
    assert_eq!(data, "2-a1", "{last}");
    assert!(script_ran(&last, "engine"), "{last}");

    // A script watching a directory: a file in it that the library also
    // reads, a new directory in it with a file, then that file.
    p.write("level/assets/a.txt", "a2\n");
    let (data, last) = start(3);
    assert_eq!(data, "2-a2", "{last}");
    assert!(script_ran(&last, "level"), "{last}");
    std::fs::create_dir(p.root.join("level/assets/maps")).unwrap();
    p.write("level/assets/maps/b.txt", "b1\n");
    let (data, last) = start(4);
    assert_eq!(data, "2-a2+b1", "{last}");
    p.write("level/assets/maps/b.txt", "b2\n");
    let (data, last) = start(5);
    assert_eq!(data, "2-a2+b2", "{last}");
    assert!(script_ran(&last, "level"), "{last}");

    // The library of a script that watches only its directory: replayed.
    p.write("level/src/lib.rs", &level_lib("L"));
    let (data, last) = start(6);
    assert_eq!(data, "2-La2+b2", "{last}");
    assert!(last.contains("(replayed 2 rustc commands)"), "{last}");
    w.interrupt();
}

/// Under a terminal (a pseudo-terminal made by `script`), the program
/// reads the terminal, and Ctrl-C there stops it, its child and the
/// watcher.
#[test]
fn in_a_terminal_the_program_reads_it_and_ctrl_c_stops_all() {
    use std::io::Write;
    require_tool("script");
    let p = project()
        .file("Cargo.toml", &manifest("watch-tty", ""))
        .file(
            "src/main.rs",
            "fn main() {\n\
             \x20   let child = std::process::Command::new(\"sleep\").arg(\"300\").spawn().unwrap();\n\
             \x20   println!(\"ready pid={} child={}\", std::process::id(), child.id());\n\
             \x20   let mut line = String::new();\n\
             \x20   std::io::stdin().read_line(&mut line).unwrap();\n\
             \x20   println!(\"got {}\", line.trim());\n\
             \x20   std::thread::sleep(std::time::Duration::from_secs(300));\n\
             }\n",
        )
        .build();
    let watcher = dyndev_cmd(&p.root, &["watch"]);
    let shown = std::iter::once(watcher.get_program())
        .chain(watcher.get_args())
        .map(|a| format!("'{}'", a.to_str().unwrap()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qfec", &shown, "/dev/null"])
        .current_dir(&p.root)
        .env("CARGO_TARGET_DIR", shared_target_dir())
        .env("CARGO_TERM_COLOR", "never")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    /// Ends `script` if the test fails: the terminal hangs up, and the
    /// watcher cleans up on SIGHUP.
    struct Script(Child);
    impl Drop for Script {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut script = Script(cmd.spawn().unwrap());
    let child = &mut script.0;
    let mut input = child.stdin.take().unwrap();
    let output = collect_output(Box::new(child.stdout.take().unwrap()));
    let wait = |what: &str, needle: &str| -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = output.lock().unwrap().clone();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let text = wait("the program", "ready pid=");
    let ids: Vec<i32> = text[text.find("ready pid=").unwrap()..]
        .lines()
        .next()
        .unwrap()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let (pid, grandchild) = (ids[0], ids[1]);

    input.write_all(b"hello\r").unwrap();
    wait("the program to read the terminal", "got hello");
    input.write_all(b"\x03").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "Ctrl-C did not stop the watcher:\n{}",
            output.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_gone(pid, "the program");
    assert_gone(grandchild, "the program's child");
}

/// A workspace with a library member and a binary using it.
fn fast_project(app: &str) -> Project {
    engine_workspace(app, &fast_main("v1"))
}

fn fast_main(version: &str) -> String {
    format!(
        "fn main() {{\n\
         \x20   println!(\"{version} pid={{}} child=0 data={{}}\", std::process::id(), engine::word());\n\
         \x20   std::thread::sleep(std::time::Duration::from_secs(300));\n\
         }}\n"
    )
}

#[test]
fn the_fast_path_replays_rustc_and_leaves_cargo_correct() {
    let app = "watch-fast";
    let p = fast_project(app);
    let mut w = Watching::start(&p, &["-v"]);
    w.hello(1);
    w.wait_for("the watcher to watch", |_, err| err.contains("Watching"));

    // The binary's crate, then the library it links: replayed without
    // cargo, the library before the binary.
    p.write(&format!("{app}/src/main.rs"), &fast_main("v2"));
    let second = w.hello(2);
    assert_eq!(second.version, "v2");
    p.write(
        "engine/src/lib.rs",
        "pub fn word() -> &'static str { \"beta\" }\n",
    );
    let third = w.hello(3);
    assert_eq!(
        (third.version.as_str(), third.data.as_str()),
        ("v2", "beta")
    );
    // The new instance may print before the watcher's status line does.
    let (_, err) = w.wait_for("the restart's line", |_, err| {
        err.contains("(replayed 2 rustc commands)")
    });
    let engine = err.rfind("Replaying rustc for `libengine-").expect(&err);
    let binary = err.rfind("Replaying rustc for `watch_fast-").expect(&err);
    assert!(engine < binary, "{err}");

    // A compile error on the fast path keeps the program running.
    p.write("engine/src/lib.rs", "pub fn word() -> &'static str { 1 }\n");
    let (_, err) = w.wait_for("the compile error", |_, err| err.contains("Waiting"));
    assert!(err.contains("error[E0308]"), "{err}");
    assert!(alive(third.pid));
    p.write(
        "engine/src/lib.rs",
        "pub fn word() -> &'static str { \"gamma\" }\n",
    );
    let fourth = w.hello(4);
    assert_eq!(fourth.data, "gamma");
    w.interrupt();
    assert_gone(fourth.pid, "the program");

    // Cargo did not see those builds: a plain build compiles both crates
    // again, and the binary is the latest.
    let build = p.dyndev(&["build"]).success();
    assert!(build.stderr.contains("Compiling engine"), "{build}");
    assert!(
        build.stderr.contains(&format!("Compiling {app}")),
        "{build}"
    );
    let bin = p.bin(app);
    let mut program = std::process::Command::new(&bin)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(program.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = program.kill();
    let _ = program.wait();
    assert!(
        line.starts_with("v2 ") && line.trim_end().ends_with("data=gamma"),
        "{line}"
    );
}

#[test]
fn no_fast_path_builds_with_cargo_every_time() {
    let app = "watch-slow";
    let p = fast_project(app);
    let mut w = Watching::start(&p, &["-v", "--no-fast-path"]);
    w.hello(1);
    w.wait_for("the watcher to watch", |_, err| err.contains("Watching"));
    p.write(&format!("{app}/src/main.rs"), &fast_main("v2"));
    w.hello(2);
    p.write(&format!("{app}/src/main.rs"), &fast_main("v3"));
    w.hello(3);
    let (_, err) = w.output();
    assert!(!err.contains("Replaying"), "{err}");
    let after_start = &err[err.find("Watching").unwrap()..];
    assert_eq!(
        after_start.matches(&format!("Compiling {app}")).count(),
        2,
        "{err}"
    );
    w.interrupt();
}

#[test]
fn a_new_dependency_relinks_the_bundle_and_restarts_once() {
    let p = watch_project("watch-new-dep");
    let mut w = Watching::start(&p, &[]);
    let first = w.hello(1);
    w.wait_for("the watcher to watch", |_, err| err.contains("Watching"));

    p.write(
        "Cargo.toml",
        &manifest("watch-new-dep", "[dependencies]\nitoa = \"=1.0.18\"\n"),
    );
    p.write(
        "src/main.rs",
        &program("v2").replace(
            "include_str!(\"data.txt\").trim()",
            "itoa::Buffer::new().format(42)",
        ),
    );
    let second = w.hello(2);
    assert_eq!(
        (second.version.as_str(), second.data.as_str()),
        ("v2", "42")
    );
    assert_gone(first.pid, "the old instance");
    // Cargo writing `Cargo.lock` during the build starts no second one.
    std::thread::sleep(Duration::from_millis(500));
    let (out, err) = w.output();
    assert!(err.contains("Bundling"), "{err}");
    assert_eq!(err.matches("Rebuilding").count(), 1, "{err}");
    assert_eq!(hellos(&out).len(), 2, "{out}");
    w.interrupt();
    assert_gone(second.pid, "the program");
}
