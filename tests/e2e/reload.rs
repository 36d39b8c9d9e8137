//! Reload in place: an edit of a function body reaches the running program
//! (same process), including calls through a pointer a bundled dependency
//! stored, while another thread runs the function in a tight loop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use cargo_dyndev::testing::{Image, Invocation, PatchLink, Refusal, Session};

use crate::support::*;

const REGISTRY: &str = "\
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
static HANDLERS: Mutex<Vec<fn(u64) -> u64>> = Mutex::new(Vec::new());
static SEEN: AtomicU64 = AtomicU64::new(0);
pub fn publish(v: u64) { SEEN.store(v, Ordering::Relaxed); }
pub fn seen() -> u64 { SEEN.load(Ordering::Relaxed) }
pub fn register(f: fn(u64) -> u64) { HANDLERS.lock().unwrap().push(f); }
pub fn call(i: usize, x: u64) -> u64 { let f = HANDLERS.lock().unwrap()[i]; f(x) }
";

/// The program: `compute` is what the edits change.
fn main_rs(state: &str, compute: &str) -> String {
    main_rs_printing(state, compute, "0")
}

/// The program, printing `extra` (an expression) after the results.
fn main_rs_printing(state: &str, compute: &str, extra: &str) -> String {
    format!(
        "use std::io::Write;

#[derive(Default)]
struct State {{ {state} }}

fn compute(x: u64) -> u64 {{
    {compute}
}}

fn spin() {{
    let mut acc = 0u64;
    loop {{
        let mut sum = 0u64;
        let mut i = 0;
        while i < 1000 {{
            sum = sum.wrapping_add(compute(i & 1));
            i += 1;
        }}
        registry::publish(compute(0));
        acc = acc.wrapping_add(registry::call(0, acc) ^ sum);
    }}
}}

fn main() {{
    registry::register(compute);
    std::thread::spawn(spin);
    let mut state = Box::<State>::default();
    loop {{
        state.counter += 1;
        println!(\"tick {{}} {{}} {{}} {{}}\", state.counter, registry::call(0, 0), registry::seen(), {extra});
        std::io::stdout().flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }}
}}
"
    )
}

/// Saves the final rustc command of the binary (what reload compiles
/// again), then runs it: a user's own workspace wrapper, as dyndev allows.
/// With `RECORD_PROXY` set, the binary links through dyndev's linker
/// proxy, which keeps its objects under `RECORD_KEEP`, as under
/// `watch --hot`.
const RECORDER: &str = "#!/bin/sh
case \" $* \" in *\" --crate-type bin \"*)
  if [ -n \"$RECORD_PROXY\" ]; then
    set -- \"$@\" -C \"linker=$RECORD_PROXY\"
    export __CARGO_DYNDEV_KEEP_LINK=\"$RECORD_KEEP\"
  fi
  printf '%s\\0' \"$@\" > \"$RECORD_DIR/args\"; env -0 > \"$RECORD_DIR/env\"; pwd > \"$RECORD_DIR/cwd\";;
esac
exec \"$@\"
";

fn reload_project(bin: &str) -> Project {
    project()
        .file(
            "Cargo.toml",
            &format!(
                "[workspace]\nmembers = [\"{bin}\"]\nresolver = \"2\"\n\n\
                 [workspace.metadata.dyndev]\ninclude = [\"registry\"]\n"
            ),
        )
        .file(
            &format!("{bin}/Cargo.toml"),
            &manifest(
                bin,
                "[dependencies]\nregistry = { path = \"../../registry\" }\n",
            ),
        )
        .file(
            &format!("{bin}/src/main.rs"),
            &main_rs("counter: u64", "x + 1000"),
        )
        // Frame pointers give every function a 1-byte first instruction
        // (`push rbp`): threads can stop inside the bytes a jump covers.
        .file(
            ".cargo/config.toml",
            "[build]\nrustflags = [\"-C\", \"force-frame-pointers=yes\"]\n",
        )
        .file("../registry/Cargo.toml", &manifest("registry", ""))
        .file("../registry/src/lib.rs", REGISTRY)
        .build()
}

/// Builds with the recorder and returns the recorded command; with
/// `kept`, the binary's link is kept for reloads of changed objects.
fn build_recorded_as(p: &Project, kept: bool) -> Invocation {
    let record = p.root.join("../record");
    std::fs::create_dir_all(&record).unwrap();
    let script = p.root.join("../recorder.sh");
    std::fs::write(&script, RECORDER).unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let mut cmd = dyndev_cmd(&p.root, &["build"]);
    cmd.env("RUSTC_WORKSPACE_WRAPPER", &script)
        .env("RECORD_DIR", &record)
        // Linked as under `watch --hot`: the workspace's libraries in the
        // program, where reloads patch it.
        .env(
            cargo_dyndev::testing::env::HOT_KEEP,
            cargo_dyndev::testing::kept_links(&scratch(p)),
        );
    if kept {
        let tools = p.root.join("../tools");
        std::fs::create_dir_all(&tools).unwrap();
        let proxy = tools.join("dyndev-linker");
        let _ = std::fs::remove_file(&proxy);
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_cargo-dyndev"), &proxy).unwrap();
        cmd.env("RECORD_PROXY", &proxy).env(
            "RECORD_KEEP",
            cargo_dyndev::testing::kept_links(&scratch(p)),
        );
    }
    run(cmd).success();
    Invocation::read_recorded(&record).unwrap()
}

/// The binary linked from kept objects on each reload, as `watch --hot`
/// builds it.
fn build_recorded(p: &Project) -> Invocation {
    build_recorded_as(p, true)
}

/// The running program, killed when the test ends.
struct Running {
    child: Child,
    lines: Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn start(bin: &Path) -> Running {
        let mut child = Command::new(bin)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                if tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    /// Waits for a `tick N R W` line where both the main thread's call
    /// through the stored pointer (R) and the worker's direct call (W)
    /// returned `r`; returns N.
    #[track_caller]
    fn tick_with(&self, r: u64) -> u64 {
        self.tick_fields(r)[0]
    }

    /// The numbers of the first `tick N R W ...` line with R = W = `r`:
    /// N and whatever follows W.
    #[track_caller]
    fn tick_fields(&self, r: u64) -> Vec<u64> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = String::new();
        while Instant::now() < deadline {
            let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) else {
                continue;
            };
            let parts: Vec<&str> = line.split(' ').collect();
            if parts.len() >= 4 && parts[2] == r.to_string() && parts[3] == r.to_string() {
                let mut fields = vec![parts[1].parse().unwrap()];
                fields.extend(parts[4..].iter().map(|p| p.parse::<u64>().unwrap()));
                return fields;
            }
            last = line;
        }
        panic!("no tick with result {r}; last line: {last:?}");
    }

    fn assert_alive(&mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "the program died");
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap()
    }
}

/// Rebuilds and applies, which must refuse with a restart whose reason
/// says `why`; the old code keeps running.
#[track_caller]
fn expect_restart(session: &mut Session, inv: &Invocation, why: &str) {
    match session.rebuild_and_apply(inv) {
        Err(Refusal::Restart(reason)) => assert!(reason.contains(why), "{reason}"),
        other => panic!("expected a restart, got {other:?}"),
    }
}

fn scratch(p: &Project) -> PathBuf {
    p.root.join("../reload")
}

#[test]
fn edits_reach_the_running_program_through_stored_pointers() {
    let bin = "hot-counter";
    let p = reload_project(bin);
    let inv = build_recorded(&p);
    let mut app = Running::start(&p.bin(bin));
    let before = app.tick_with(1000);
    let pid = app.child.id() as i32;
    let mut session = Session::new(pid, &p.bin(bin), &scratch(&p)).unwrap();

    let main = format!("{bin}/src/main.rs");
    let first_rss = app.rss_kib();
    let mut last_tick = before;
    for k in 2..=21u64 {
        p.write(
            &main,
            &main_rs("counter: u64", &format!("x + {}", k * 1000)),
        );
        let outcome = session
            .rebuild_and_apply(&inv)
            .unwrap_or_else(|e| panic!("reload {k}: {e}"));
        assert!(outcome.patched > 0, "{outcome:?}");
        // Linked from the one object the edit changed (and what it needs).
        assert!((1..10).contains(&outcome.objects), "{outcome:?}");
        // Mapped where asked, near the executable: every jump is direct.
        assert_eq!(outcome.via_trampoline, 0, "{outcome:?}");
        let tick = app.tick_with(k * 1000);
        assert!(
            tick > last_tick,
            "the counter went on: {tick} after {last_tick}"
        );
        last_tick = tick;
        app.assert_alive();
        eprintln!(
            "reload {k}: {} sites, {} threads stepped, build {:?}, check {:?}, load {:?}, \
             stopped {:?}, total {:?}, rss {} KiB",
            outcome.patched,
            outcome.stepped,
            outcome.build,
            outcome.check,
            outcome.load,
            outcome.stopped,
            outcome.total,
            app.rss_kib()
        );
    }
    assert_eq!(session.reloads(), 20);
    assert_eq!(app.child.id() as i32, session.pid());
    // Each reload maps one more small library; memory must not run away.
    let growth = app.rss_kib().saturating_sub(first_rss);
    assert!(
        growth < 64 * 1024,
        "rss grew by {growth} KiB over 20 reloads"
    );
}

#[test]
fn a_layout_change_or_a_compile_error_leaves_the_old_code_running() {
    let bin = "hot-refusals";
    let p = reload_project(bin);
    let inv = build_recorded(&p);
    let mut app = Running::start(&p.bin(bin));
    app.tick_with(1000);
    let mut session = Session::new(app.child.id() as i32, &p.bin(bin), &scratch(&p)).unwrap();
    let main = format!("{bin}/src/main.rs");

    // The type of a value that lives across the loop changes layout.
    p.write(&main, &main_rs("counter: u32, extra: u32", "x + 7000"));
    expect_restart(&mut session, &inv, "`hot_refusals::State` changed layout");
    app.tick_with(1000);

    // A changed signature (of a function nested in `compute`).
    p.write(
        &main,
        &main_rs(
            "counter: u64",
            "fn helper(a: u64) -> u64 { a }\n    helper(x) + 7000",
        ),
    );
    session.rebuild_and_apply(&inv).unwrap();
    app.tick_with(7000);
    p.write(
        &main,
        &main_rs(
            "counter: u64",
            "fn helper(a: u32) -> u64 { a as u64 }\n    helper(x as u32) + 6000",
        ),
    );
    // Legacy mangling hashes a function's signature: the new `helper` is
    // another symbol, old callers keep the old one, new code calls the new.
    let outcome = session.rebuild_and_apply(&inv).unwrap();
    assert_eq!(
        outcome.stale,
        ["hot_refusals::compute::helper"],
        "{outcome:?}"
    );
    app.tick_with(6000);

    // A compile error.
    p.write(&main, &main_rs("counter: u64", "x + \"oops\""));
    match session.rebuild_and_apply(&inv) {
        Err(Refusal::Failed(e)) => assert!(format!("{e:#}").contains("did not build"), "{e:#}"),
        other => panic!("expected a build failure, got {other:?}"),
    }
    app.tick_with(6000);
    app.assert_alive();

    // A thread-local of the crate: an executable's code cannot be a library.
    p.write(
        &main,
        &main_rs(
            "counter: u64",
            "thread_local!(static CALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) });\n    \
             CALLS.with(|c| c.set(c.get() + 1));\n    x + 8000",
        ),
    );
    expect_restart(&mut session, &inv, "CALLS` is a new thread-local");
    app.tick_with(6000);

    // And a body edit still goes through afterwards.
    p.write(&main, &main_rs("counter: u64", "x + 9000"));
    session.rebuild_and_apply(&inv).unwrap();
    app.tick_with(9000);
    app.assert_alive();
}

/// The same two builds applied in turn, many times, without compiling in
/// between: what the stop-the-world write costs, and whether threads caught
/// inside a function's first bytes are moved out safely.
#[test]
fn many_reloads_in_a_row_keep_the_program_alive() {
    let bin = "hot-stress";
    let p = reload_project(bin);
    let inv = build_recorded(&p);
    let main = format!("{bin}/src/main.rs");
    let dir = scratch(&p);
    std::fs::create_dir_all(&dir).unwrap();
    let mut libs = Vec::new();
    for k in [2u64, 3] {
        p.write(
            &main,
            &main_rs("counter: u64", &format!("x + {}", k * 1000)),
        );
        let lib = dir.join(format!("build-{k}.so"));
        inv.build_patch(&lib, &dir.join("incremental"), &PatchLink::default())
            .unwrap()
            .unwrap();
        libs.push((k * 1000, lib));
    }
    let mut app = Running::start(&p.bin(bin));
    app.tick_with(1000);
    let mut session = Session::new(app.child.id() as i32, &p.bin(bin), &dir).unwrap();
    // Built without a place to be mapped: far from the executable, so its
    // jumps go through trampolines.
    let (mut stepped, mut stopped, mut totals) = (0, Duration::ZERO, Vec::new());
    for round in 0..40 {
        let (r, lib) = &libs[round % 2];
        let outcome = session.apply(lib).unwrap();
        stepped += outcome.stepped;
        assert!(outcome.via_trampoline > 0, "{outcome:?}");
        stopped = stopped.max(outcome.stopped);
        totals.push((outcome.total, outcome.check, outcome.patched));
        app.tick_with(*r);
        app.assert_alive();
    }
    totals.sort();
    eprintln!(
        "40 reloads: apply median {:?} (check {:?}), max {:?} ({} sites), longest stop {stopped:?}, \
         {stepped} threads stepped out of a function's first bytes",
        totals[20].0, totals[20].1, totals[39].0, totals[39].2
    );
}

/// An edit in a library member: cargo rebuilds its rlib, the executable's
/// crate is compiled again against it, and the library's functions, linked
/// statically into the executable, are patched like the executable's own.
/// A workspace of the program `bin` (`main`) and the library member
/// `engine` (`engine_rs`), with `registry` in the bundle.
fn engine_project(bin: &str, main: &str, engine_rs: &str) -> Project {
    project()
        .file(
            "Cargo.toml",
            &format!(
                "[workspace]\nmembers = [\"{bin}\", \"engine\"]\nresolver = \"2\"\n\n\
                 [workspace.metadata.dyndev]\ninclude = [\"registry\"]\n"
            ),
        )
        .file(
            &format!("{bin}/Cargo.toml"),
            &manifest(
                bin,
                "[dependencies]\nregistry = { path = \"../../registry\" }\n\
                 engine = { path = \"../engine\" }\n",
            ),
        )
        .file(&format!("{bin}/src/main.rs"), main)
        .file("engine/Cargo.toml", &manifest("engine", ""))
        .file("engine/src/lib.rs", engine_rs)
        .file("../registry/Cargo.toml", &manifest("registry", ""))
        .file("../registry/src/lib.rs", REGISTRY)
        .build()
}

#[test]
fn an_edit_in_a_library_member_reaches_the_running_program() {
    let bin = "hot-member";
    let engine = |bonus: u64| format!("pub fn bonus() -> u64 {{ {bonus} }}\n");
    let p = engine_project(
        bin,
        // The old main loop also calls the library's function directly:
        // its copy in the executable must be redirected too.
        &main_rs_printing("counter: u64", "x + engine::bonus()", "engine::bonus()"),
        &engine(1000),
    );
    // The whole crate compiled again as a library: a program whose link
    // was not kept.
    build_recorded_as(&p, false);
    let mut app = Running::start(&p.bin(bin));
    app.tick_with(1000);
    let mut session = None;
    for k in 2..=4u64 {
        p.write("engine/src/lib.rs", &engine(k * 1000));
        // The member's rlib comes from a normal build (which also relinks
        // the executable on disk; the running one is unaffected).
        let inv = build_recorded_as(&p, false);
        // Started after the relink: the session reads the running file,
        // which the kernel now names `... (deleted)`.
        let session = session.get_or_insert_with(|| {
            Session::new(app.child.id() as i32, &p.bin(bin), &scratch(&p)).unwrap()
        });
        let outcome = session.rebuild_and_apply(&inv).unwrap();
        assert!(outcome.stale.is_empty(), "{outcome:?}");
        assert_eq!(outcome.objects, 0, "{outcome:?}");
        assert_eq!(app.tick_fields(k * 1000)[1], k * 1000);
        app.assert_alive();
    }
}

/// The crate's own static keeps its state: new code is pointed at the
/// running program's copy, so the old `main` loop (which never returns, so
/// keeps its old code) and the new `compute` count in the same place.
#[test]
fn new_code_keeps_using_the_programs_statics() {
    let bin = "hot-statics";
    let main_rs = |ty: &str, k: u64| {
        format!(
            "use std::io::Write;
use std::sync::atomic::{{{ty}, Ordering}};

static CALLS: {ty} = {ty}::new(0);

thread_local!(static LOCAL: std::cell::Cell<u64> = const {{ std::cell::Cell::new(0) }});

fn compute(x: u64) -> u64 {{
    CALLS.fetch_add(1, Ordering::Relaxed);
    LOCAL.with(|l| l.set(l.get() + 1));
    x + {k}
}}

fn main() {{
    registry::register(compute);
    loop {{
        let r = registry::call(0, 0);
        let local = LOCAL.with(|l| l.get());
        println!(\"tick {{}} {{}} {{}} {{}}\", CALLS.load(Ordering::Relaxed), r, r, local);
        std::io::stdout().flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }}
}}
"
        )
    };
    let p = project()
        .file(
            "Cargo.toml",
            &format!(
                "[workspace]\nmembers = [\"{bin}\"]\nresolver = \"2\"\n\n\
                 [workspace.metadata.dyndev]\ninclude = [\"registry\"]\n"
            ),
        )
        .file(
            &format!("{bin}/Cargo.toml"),
            &manifest(
                bin,
                "[dependencies]\nregistry = { path = \"../../registry\" }\n",
            ),
        )
        .file(&format!("{bin}/src/main.rs"), &main_rs("AtomicU64", 1000))
        .file("../registry/Cargo.toml", &manifest("registry", ""))
        .file("../registry/src/lib.rs", REGISTRY)
        .build();
    let inv = build_recorded(&p);
    let mut app = Running::start(&p.bin(bin));
    let mut last = app.tick_fields(1000);
    let mut session = Session::new(app.child.id() as i32, &p.bin(bin), &scratch(&p)).unwrap();
    let main = format!("{bin}/src/main.rs");
    for k in 2..=4u64 {
        p.write(&main, &main_rs("AtomicU64", k * 1000));
        let outcome = session.rebuild_and_apply(&inv).unwrap();
        assert!(outcome.statics_kept > 0, "{outcome:?}");
        // Linked from kept objects: the thread-local's own object came
        // along (its offset is fixed at the program's link).
        assert!(outcome.objects > 0, "{outcome:?}");
        // The counts the old loop reads go on: the new code counts there,
        // in the static and in the main thread's thread-local alike.
        let first = app.tick_fields(k * 1000);
        assert!(
            first[0] >= last[0] && first[1] >= last[1],
            "{first:?} after {last:?}"
        );
        let next = app.tick_fields(k * 1000);
        assert!(
            next[0] > first[0] && next[1] > first[1],
            "the old loop sees the new code's calls: {next:?} after {first:?}"
        );
        last = next;
    }
    // A static's type changes: its old value cannot be read as the new type.
    p.write(&main, &main_rs("AtomicU32", 9000));
    expect_restart(&mut session, &inv, "`hot_statics::CALLS` changed type");
    app.tick_with(4000);
    app.assert_alive();
}

/// An `async fn` whose future stays alive across reloads (a loop polled
/// by `main`): a body edit that keeps its await points reloads, and the
/// suspended future resumes in the new code; moving an `.await` keeps the
/// state machine's layout but would resume old states at other places,
/// so it restarts.
#[test]
fn a_moved_await_restarts_and_a_body_edit_reloads() {
    let bin = "hot-async";
    let main_rs = |body: &str| {
        format!(
            "use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{{AtomicU64, Ordering}};
use std::task::{{Context, Poll, Waker}};

static OUT: AtomicU64 = AtomicU64::new(0);

struct Yield(bool);

impl Future for Yield {{
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {{
        if self.0 {{ Poll::Ready(()) }} else {{ self.0 = true; Poll::Pending }}
    }}
}}

async fn worker() {{
    let mut n = 0u64;
    loop {{
        n += 1;
{body}
    }}
}}

fn main() {{
    let mut future = Box::pin(worker());
    let mut cx = Context::from_waker(Waker::noop());
    let mut ticks = 0;
    loop {{
        let _ = future.as_mut().poll(&mut cx);
        ticks += 1;
        let r = OUT.load(Ordering::Relaxed);
        println!(\"tick {{ticks}} {{r}} {{r}}\");
        std::io::stdout().flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }}
}}
"
        )
    };
    let body = |value: u64, await_first: bool| {
        let store = format!("        OUT.store({value} + n * 0, Ordering::Relaxed);");
        let wait = "        Yield(false).await;";
        match await_first {
            false => format!("{store}\n{wait}\n{wait}"),
            true => format!("{wait}\n{store}\n{wait}"),
        }
    };
    let p = project()
        .file(
            "Cargo.toml",
            &format!("[workspace]\nmembers = [\"{bin}\"]\nresolver = \"2\"\n"),
        )
        .file(&format!("{bin}/Cargo.toml"), &manifest(bin, ""))
        .file(&format!("{bin}/src/main.rs"), &main_rs(&body(1000, false)))
        .build();
    let inv = build_recorded(&p);
    let mut app = Running::start(&p.bin(bin));
    app.tick_with(1000);
    let mut session = Session::new(app.child.id() as i32, &p.bin(bin), &scratch(&p)).unwrap();
    let main = format!("{bin}/src/main.rs");

    p.write(&main, &main_rs(&body(2000, false)));
    let outcome = session.rebuild_and_apply(&inv).unwrap();
    assert!(outcome.objects > 0, "{outcome:?}");
    // The suspended future goes on in the new code.
    app.tick_with(2000);

    p.write(&main, &main_rs(&body(3000, true)));
    expect_restart(
        &mut session,
        &inv,
        "worker::{async_fn_env#0}` changed its state machine",
    );
    app.tick_with(2000);
    app.assert_alive();
}

/// A patch holds the code that changed and binds the rest to the running
/// program: an edit of the program's crate that calls a workspace
/// library's function brings none of the library's code along (a linker
/// given the library's rlib would take its members out for the symbols
/// the program already has, and keep and run its constructors).
#[test]
fn a_patch_holds_only_the_changed_code() {
    let bin = "hot-thin";
    let p = engine_project(
        bin,
        &main_rs_printing("counter: u64", "x + engine::bonus()", "0"),
        // A constructor, as `ctor` or `inventory` registers them: a patch
        // holding this code would run it again when loaded.
        "pub fn bonus() -> u64 { std::hint::black_box(1000) }\n\
         #[used]\n#[link_section = \".init_array\"]\n\
         static INIT: extern \"C\" fn() = init;\n\
         extern \"C\" fn init() { std::hint::black_box(0); }\n",
    );
    let inv = build_recorded(&p);
    let mut app = Running::start(&p.bin(bin));
    app.tick_with(1000);
    let mut session = Session::new(app.child.id() as i32, &p.bin(bin), &scratch(&p)).unwrap();
    p.write(
        &format!("{bin}/src/main.rs"),
        &main_rs_printing("counter: u64", "x + engine::bonus() + 1000", "0"),
    );
    let outcome = session.rebuild_and_apply(&inv).unwrap();
    assert!(outcome.objects > 0, "{outcome:?}");
    app.tick_with(2000);
    let patch = session.libraries().last().unwrap().to_path_buf();
    let defined: Vec<String> = Image::read(&patch)
        .unwrap()
        .functions
        .keys()
        .map(|f| cargo_dyndev::testing::demangle_path(f))
        .collect();
    assert!(
        defined.iter().any(|f| f.starts_with("hot_thin::")),
        "{defined:?}"
    );
    assert!(
        !defined.iter().any(|f| f.starts_with("engine::")),
        "{defined:?}"
    );
    app.assert_alive();
}
