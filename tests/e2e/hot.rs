//! `cargo dyndev watch --hot`: a save of a function body reaches the
//! running process (same PID, its heap state goes on), a library member's
//! too; a compile error keeps it running; a layout change restarts it with
//! the reason shown; its exit is still reported.

use std::time::Duration;

use crate::support::*;
use crate::watch::{Watching, alive, assert_gone};

/// A workspace: the library member `engine` and the program `app`, whose
/// `main` loops over a heap-held `State`, printing `compute(0)` and
/// `engine::word()`.
fn hot_project(app: &str) -> Project {
    engine_workspace(app, &hot_main("counter: u64", "x + 1000"))
}

fn hot_main(state: &str, compute: &str) -> String {
    hot_main_marked(state, compute, "")
}

/// [`hot_main`], whose loop prints `mark` at the end of each tick.
fn hot_main_marked(state: &str, compute: &str, mark: &str) -> String {
    format!(
        "use std::io::Write;

#[derive(Default)]
struct State {{ {state} }}

fn compute(x: u64) -> u64 {{
    {compute}
}}

fn main() {{
    let mut state = Box::<State>::default();
    loop {{
        state.counter += 1;
        println!(\"tick pid={{}} n={{}} r={{}} w={{}}{mark}\", std::process::id(), state.counter, compute(0), engine::word());
        std::io::stdout().flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }}
}}
"
    )
}

/// One line of the program's output.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tick {
    pid: i32,
    n: u64,
    r: u64,
    w: String,
}

fn ticks(stdout: &str) -> Vec<Tick> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut words = l.strip_prefix("tick ")?.split(' ');
            let mut field = |key: &str| words.next()?.strip_prefix(key).map(str::to_owned);
            Some(Tick {
                pid: field("pid=")?.parse().ok()?,
                n: field("n=")?.parse().ok()?,
                r: field("r=")?.parse().ok()?,
                w: field("w=")?,
            })
        })
        .collect()
}

/// Waits for the first tick that `matches`; returns it with every tick
/// before it.
#[track_caller]
fn wait_tick(w: &Watching, what: &str, matches: impl Fn(&Tick) -> bool) -> (Tick, Vec<Tick>) {
    let (out, _) = w.wait_for(what, |out, _| ticks(out).iter().any(&matches));
    let all = ticks(&out);
    let at = all.iter().position(&matches).expect("just seen");
    (all[at].clone(), all[..at].to_vec())
}

/// The ticks of one process count on by one: its heap state was never
/// reset.
#[track_caller]
fn assert_counts_on(w: &Watching, pid: i32) {
    let (out, err) = w.output();
    let ns: Vec<u64> = ticks(&out)
        .iter()
        .filter(|t| t.pid == pid)
        .map(|t| t.n)
        .collect();
    assert!(
        ns.windows(2).all(|p| p[1] == p[0] + 1) && ns.first() == Some(&1),
        "the counter of {pid} did not go on by one: {ns:?}\n{err}"
    );
}

#[test]
fn a_body_edit_reaches_the_running_process_and_a_compile_error_keeps_it() {
    let app = "hot-body";
    let p = hot_project(app);
    let main = format!("{app}/src/main.rs");
    let mut w = Watching::start(&p, &["--hot", "-v"]);
    let (first, _) = wait_tick(&w, "the first tick", |t| t.r == 1000);
    w.wait_for("the watcher to watch", |_, err| err.contains("Watching"));

    // The program's own crate: same process, new result, the counter on.
    p.write(&main, &hot_main("counter: u64", "x + 2000"));
    let (second, before) = wait_tick(&w, "the new code", |t| t.r == 2000);
    assert_eq!(second.pid, first.pid, "{}", w.output().1);
    assert!(before.iter().all(|t| t.pid == first.pid));
    assert!(second.n > first.n);
    // Linked from the objects the compile changed, not compiled again. The
    // new code may print before the watcher's lines about it.
    let thin =
        regex::Regex::new(r"Reload rustc \S+ \S+, link \S+ \S+ \([1-9][0-9]* objects?\)").unwrap();
    let (_, err) = w.wait_for("the reload's lines", |_, err| thin.is_match(err));
    assert!(
        err.contains(&format!("Reloaded `{main}` in ")) && err.contains(" functions)"),
        "{err}"
    );
    assert!(!err.contains("Restarted"), "{err}");
    assert_eq!(thin.find_iter(&err).count(), 1, "{err}");
    // `-v` is watch's own: cargo is not made verbose, its `Running` and
    // `Fresh` lines would bury the reload's.
    assert!(
        !err.contains("--crate-name") && !err.contains("Fresh "),
        "{err}"
    );

    // A library member: compiled first, then the program's crate against
    // it; `main`'s loop (old code) calls the library's new function.
    p.write(
        "engine/src/lib.rs",
        "pub fn word() -> &'static str { \"beta\" }\n",
    );
    let (third, _) = wait_tick(&w, "the library's new code", |t| t.w == "beta");
    assert_eq!((third.pid, third.r), (first.pid, 2000));
    let (_, err) = w.wait_for("the reload's lines", |_, err| {
        thin.find_iter(err).count() == 2
    });
    assert!(err.contains("Reloaded `engine/src/lib.rs` in "), "{err}");
    let engine = err.rfind("Replaying rustc for `libengine-").expect(&err);
    let reloaded = err.rfind("Reloaded `engine/src/lib.rs`").expect(&err);
    assert!(engine < reloaded, "{err}");
    // The library's changed object, out of the new rlib.
    assert_eq!(thin.find_iter(&err).count(), 2, "{err}");

    // A compile error: the old code keeps running in the same process.
    p.write(&main, &hot_main("counter: u64", "x + \"2\""));
    let (_, err) = w.wait_for("the compile error", |_, err| {
        err.contains("error[E0277]") && err.rfind("Waiting") > err.rfind("error[E0277]")
    });
    assert!(!err.contains("Restarted"), "{err}");
    let last = ticks(&w.output().0).last().expect("ticks").n;
    let (later, _) = wait_tick(&w, "ticks after the error", |t| t.n > last + 5);
    assert_eq!(
        (later.pid, later.r, later.w.as_str()),
        (first.pid, 2000, "beta")
    );
    assert!(alive(first.pid));
    assert_counts_on(&w, first.pid);

    // And a fix is reloaded again.
    p.write(&main, &hot_main("counter: u64", "x + 4000"));
    let (fixed, _) = wait_tick(&w, "the fix", |t| t.r == 4000);
    assert_eq!(fixed.pid, first.pid);
    assert_counts_on(&w, first.pid);
    w.interrupt();
    assert_gone(first.pid, "the program");
}

#[test]
fn a_layout_change_restarts_with_the_reason_and_an_exit_is_reported() {
    let app = "hot-layout";
    let p = hot_project(app);
    let main = format!("{app}/src/main.rs");
    let mut w = Watching::start(&p, &["--hot"]);
    let (first, _) = wait_tick(&w, "the first tick", |t| t.r == 1000);
    w.wait_for("the watcher to watch", |_, err| err.contains("Watching"));

    // `State` lives across the loop: a new field must not reach the old
    // value, so the program restarts, with the reason.
    p.write(&main, &hot_main("counter: u64, extra: u32", "x + 3000"));
    let (second, _) = wait_tick(&w, "the restarted program", |t| t.r == 3000);
    assert_ne!(second.pid, first.pid);
    // The new instance may print before the watcher's status line does.
    let (_, err) = w.wait_for("the restart's line", |_, err| err.contains("Restarted `"));
    assert!(
        err.contains("warning: `hot_layout::State` changed layout: restarting"),
        "{err}"
    );
    assert!(!err.contains("Reloaded"), "{err}");
    assert_gone(first.pid, "the old instance");
    assert_counts_on(&w, second.pid);

    // New code that ends the program: reloaded, then its exit reported.
    p.write(
        &main,
        &hot_main("counter: u64, extra: u32", "std::process::exit(3)"),
    );
    let (_, err) = w.wait_for("the exit", |_, err| err.contains("exit status 3"));
    assert!(err.contains("Reloaded `"), "{err}");
    assert_gone(second.pid, "the program");

    // Nothing running: a save starts it.
    p.write(&main, &hot_main("counter: u64, extra: u32", "x + 5000"));
    let (third, _) = wait_tick(&w, "the new start", |t| t.r == 5000);
    assert_ne!(third.pid, second.pid);
    std::thread::sleep(Duration::from_millis(100));
    w.interrupt();
    assert_gone(third.pid, "the program");
}

/// A program built before the watcher started (so no rustc command of it
/// was captured) is built once more at the start: the first save reloads.
#[test]
fn the_first_save_reloads_a_program_built_before() {
    let app = "hot-prebuilt";
    let p = hot_project(app);
    p.dyndev(&["build"]).success();
    let (w, first) = start_hot(&p);
    assert_a_save_reloads(&w, &p, app, &first);
}

/// `watch --hot` started, its program's first tick seen.
fn start_hot(p: &Project) -> (Watching, Tick) {
    let w = Watching::start(p, &["--hot"]);
    let (first, _) = wait_tick(&w, "the first tick", |t| t.r == 1000);
    w.wait_for("the watcher to watch", |_, err| err.contains("Watching"));
    (w, first)
}

/// A body edit of `app`'s `compute` reaches the running process `first`
/// came from: same PID, new result, a reload and no restart, the heap
/// counter going on.
fn assert_a_save_reloads(w: &Watching, p: &Project, app: &str, first: &Tick) {
    p.write(
        &format!("{app}/src/main.rs"),
        &hot_main("counter: u64", "x + 2000"),
    );
    let (second, _) = wait_tick(w, "the new code", |t| t.r == 2000);
    assert_eq!(second.pid, first.pid, "{}", w.output().1);
    let (_, err) = w.wait_for("the reload's line", |_, err| err.contains("Reloaded `"));
    assert!(!err.contains("restarting"), "{err}");
    assert_counts_on(w, first.pid);
}

/// A save that puts the sources back as they were when the watcher
/// started reaches the running process too: the reloaded code, not the
/// start's, is what it now runs.
#[test]
fn a_save_back_to_the_first_sources_reloads_them() {
    let app = "hot-revert";
    let p = hot_project(app);
    let (mut w, first) = start_hot(&p);
    assert_a_save_reloads(&w, &p, app, &first);
    p.write(
        &format!("{app}/src/main.rs"),
        &hot_main("counter: u64", "x + 1000"),
    );
    // A tick of the first code after one of the second.
    let back_again = |out: &str| {
        let all = ticks(out);
        let second = all.iter().position(|t| t.r == 2000)?;
        all[second..].iter().find(|t| t.r == 1000).cloned()
    };
    let (out, _) = w.wait_for("the first code again", |out, _| back_again(out).is_some());
    let back = back_again(&out).expect("just seen");
    assert_eq!(back.pid, first.pid, "{}", w.output().1);
    w.interrupt();
}

/// A program its user links with mold reloads too: the patch is linked by
/// rustc's own rust-lld, since mold places a shared library at 0 whatever
/// base it is given.
#[test]
fn a_program_linked_by_mold_reloads() {
    require_tool("mold");
    let app = "hot-mold";
    let p = hot_project(app);
    std::fs::create_dir_all(p.root.join(".cargo")).unwrap();
    p.write(
        ".cargo/config.toml",
        "[target.x86_64-unknown-linux-gnu]\nrustflags = [\"-C\", \"link-arg=-fuse-ld=mold\"]\n",
    );
    let (w, first) = start_hot(&p);
    let exe = std::fs::read(p.bin(app)).unwrap();
    assert!(
        exe.windows(5).any(|w| w == b"mold "),
        "the program was not linked by mold"
    );
    assert_a_save_reloads(&w, &p, app, &first);
}

/// What watch sets up for its own builds (the capture wrapper, the linker
/// proxy's keep dir) stays out of the program's environment.
#[test]
fn the_program_sees_none_of_the_watchers_own_variables() {
    let app = "hot-env";
    let p = engine_workspace(
        app,
        "fn main() {\n    let ours: Vec<String> = std::env::vars().map(|(k, _)| k)\n        \
         .filter(|k| k.contains(\"DYNDEV\") || k == \"RUSTC_WORKSPACE_WRAPPER\").collect();\n    \
         println!(\"ours: {ours:?}\");\n    \
         std::thread::sleep(std::time::Duration::from_secs(30));\n}\n",
    );
    let w = Watching::start(&p, &["--hot"]);
    let (out, _) = w.wait_for("the program's line", |out, _| out.contains("ours: "));
    assert!(out.contains("ours: []"), "{out}");
}

/// A library's body edit that its dependents cannot see reloads from the
/// library alone: the program's crate is not compiled (its dep-info, which
/// every compile writes, stays as it was).
#[test]
fn a_library_body_edit_reloads_without_compiling_the_programs_crate() {
    let app = "hot-libonly";
    let p = hot_project(app);
    let (w, first) = start_hot(&p);
    let dep_info = shared_deps_dir()
        .read_dir()
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|f| {
            let name = f.file_name().unwrap().to_str().unwrap();
            name.starts_with("hot_libonly-") && name.ends_with(".d")
        })
        .max_by_key(|f| std::fs::metadata(f).unwrap().modified().unwrap())
        .unwrap();
    let before = std::fs::metadata(&dep_info).unwrap().modified().unwrap();
    // Same length: nothing after the body moves.
    p.write(
        "engine/src/lib.rs",
        "pub fn word() -> &'static str { \"gamma\" }\n",
    );
    let (second, _) = wait_tick(&w, "the library's new code", |t| t.w == "gamma");
    assert_eq!(second.pid, first.pid, "{}", w.output().1);
    let (_, err) = w.wait_for("the reload's line", |_, err| {
        err.contains("Reloaded `engine/src/lib.rs`")
    });
    assert!(!err.contains("restarting"), "{err}");
    assert_eq!(
        std::fs::metadata(&dep_info).unwrap().modified().unwrap(),
        before,
        "the program's crate was compiled: {err}"
    );
    assert_counts_on(&w, first.pid);
}

/// `main` runs once: an edit of its loop can never reach the running
/// program, so it restarts, saying why, and never reports a reload; an
/// edit of what the loop calls still reloads, also in `main`'s file.
#[test]
fn an_edit_of_main_restarts_and_an_edit_of_what_it_calls_reloads() {
    let app = "hot-main";
    let p = hot_project(app);
    let main = format!("{app}/src/main.rs");
    let (mut w, first) = start_hot(&p);
    assert_a_save_reloads(&w, &p, app, &first);

    p.write(&main, &hot_main_marked("counter: u64", "x + 2000", " m=1"));
    let (out, _) = w.wait_for("the new loop", |out, _| out.contains(" m=1"));
    let second = out
        .lines()
        .find(|l| l.ends_with(" m=1"))
        .and_then(|l| ticks(l).first().cloned())
        .expect("a tick");
    assert_ne!(second.pid, first.pid);
    let (_, err) = w.wait_for("the restart's line", |_, err| err.contains("Restarted `"));
    assert!(
        err.contains(
            "warning: `hot_main::main` changed, and the running program never calls `main` \
             again: restarting"
        ),
        "{err}"
    );
    assert_eq!(err.matches("Reloaded `").count(), 1, "{err}");
    assert_gone(first.pid, "the old instance");

    // The new instance reloads an edit of `compute`, which sits above
    // `main` and grows by a line: `main`'s code is the same.
    p.write(
        &main,
        &hot_main_marked("counter: u64", "let y = x + 3000;\n    y", " m=1"),
    );
    let (third, _) = wait_tick(&w, "the new code", |t| t.r == 3000);
    assert_eq!(third.pid, second.pid, "{}", w.output().1);
    let (_, err) = w.wait_for("the reload's line", |_, err| {
        err.matches("Reloaded `").count() == 2
    });
    assert_eq!(err.matches("restarting").count(), 1, "{err}");
    assert_counts_on(&w, second.pid);
    w.interrupt();
    assert_gone(second.pid, "the program");
}

/// rustc's warnings about the code a save reloads are shown as a restart
/// shows them: rendered, once, before the reload's line.
#[test]
fn a_reload_shows_rustcs_warnings() {
    let app = "hot-warn";
    let p = hot_project(app);
    let (w, first) = start_hot(&p);
    p.write(
        &format!("{app}/src/main.rs"),
        &hot_main("counter: u64", "let unused_here = 1;\n    x + 2000"),
    );
    let (second, _) = wait_tick(&w, "the new code", |t| t.r == 2000);
    assert_eq!(second.pid, first.pid, "{}", w.output().1);
    let (_, err) = w.wait_for("the reload's line", |_, err| err.contains("Reloaded `"));
    let warning = "warning: unused variable: `unused_here`";
    assert_eq!(err.matches(warning).count(), 1, "{err}");
    assert!(err.contains(&format!("--> {app}/src/main.rs:")), "{err}");
    assert!(err.find(warning) < err.find("Reloaded `"), "{err}");
    assert!(!err.contains("\"$message_type\""), "{err}");
}

/// A window that paints on `Expose` only, as egui paints on input only:
/// each paint prints `compute(0)`.
fn gui_main(compute: &str) -> String {
    format!(
        "use std::io::Write;
use x11rb::connection::Connection;
use x11rb::protocol::Event;
use x11rb::protocol::xproto::*;
use x11rb::wrapper::ConnectionExt as _;

fn compute(x: u64) -> u64 {{
    {compute}
}}

fn main() {{
    let (conn, screen) = x11rb::connect(None).unwrap();
    let root = conn.setup().roots[screen].root;
    let window = conn.generate_id().unwrap();
    let aux = CreateWindowAux::new().event_mask(EventMask::EXPOSURE);
    conn.create_window(0, window, root, 0, 0, 64, 64, 0, WindowClass::INPUT_OUTPUT, 0, &aux)
        .unwrap();
    let pid = conn.intern_atom(false, b\"_NET_WM_PID\").unwrap().reply().unwrap().atom;
    conn.change_property32(PropMode::REPLACE, window, pid, AtomEnum::CARDINAL, &[std::process::id()])
        .unwrap();
    conn.map_window(window).unwrap();
    conn.flush().unwrap();
    let mut paints = 0;
    loop {{
        if let Event::Expose(e) = conn.wait_for_event().unwrap() {{
            if e.count == 0 {{
                paints += 1;
                println!(\"paint pid={{}} n={{paints}} r={{}}\", std::process::id(), compute(0));
                std::io::stdout().flush().unwrap();
            }}
        }}
    }}
}}
"
    )
}

/// The paints a program of [`gui_main`] printed: (pid, result).
fn paints(stdout: &str) -> Vec<(i32, u64)> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut words = l.strip_prefix("paint pid=")?.split(' ');
            let pid = words.next()?.parse().ok()?;
            let r = words.nth(1)?.strip_prefix("r=")?.parse().ok()?;
            Some((pid, r))
        })
        .collect()
}

/// After a reload, the program's window is asked to paint again (an X11
/// `Expose`), so a GUI that paints on input only shows the new code with
/// no input at all.
#[test]
fn a_reload_makes_the_programs_window_paint_again() {
    let x = Xvfb::start();
    let app = "hot-gui";
    let p = project()
        .file(
            "Cargo.toml",
            &manifest(
                app,
                "[dependencies]\nx11rb = { version = \"=0.14.0\", default-features = false }\n",
            ),
        )
        .file("src/main.rs", &gui_main("x + 1000"))
        .build();
    let mut w = Watching::start_in(&p, &["--hot", "-v"], &[("DISPLAY", &x.display)]);
    let (out, _) = w.wait_for("the first paint", |out, _| {
        paints(out).iter().any(|&(_, r)| r == 1000)
    });
    let (pid, _) = paints(&out)[0];
    w.wait_for("the watcher to watch", |_, err| err.contains("Watching"));

    p.write("src/main.rs", &gui_main("x + 2000"));
    let (out, err) = w.wait_for("a paint of the new code", |out, _| {
        paints(out).iter().any(|&(_, r)| r == 2000)
    });
    assert!(
        paints(&out).iter().all(|&(p, _)| p == pid),
        "the program restarted:\n{err}"
    );
    let (_, err) = w.wait_for("the redraw's line", |_, err| err.contains("Redraw "));
    assert!(
        err.contains(&format!(
            "Redraw asked 1 window of process {pid} on X11 `{}` to draw again",
            x.display
        )),
        "{err}"
    );
    w.interrupt();
    assert_gone(pid, "the program");
}
