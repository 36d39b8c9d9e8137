//! The rustc wrapper. Cargo runs it (`RUSTC_WORKSPACE_WRAPPER`) for every
//! compilation of a workspace member. For libraries and executables it
//! either compiles against the bundle, swapping each bundled dependency for
//! its facade and linking executables with `-C prefer-dynamic`, or, when
//! the bundle does not cover the unit, probes: records what the unit needs
//! and compiles nothing, so the driver can link a new bundle and build
//! again. Everything else (build scripts, proc-macros, cdylibs, queries)
//! goes to rustc untouched.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::contract::env;
use crate::layout::Layout;
use crate::rustc_args::{Invocation, UnitKind, crate_of_stem, set_extern_path};
use crate::state::{BundleState, Cutoff, Damage, JournalEntry, JournalExtern, Stamp};

/// What to do with one member compilation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Compile with these arguments (facades swapped in, link flags added).
    Compile(Vec<String>),
    /// Compile nothing; record the unit for the next bundle.
    Probe(String),
    /// Compile as plain cargo would, statically: the unit asks for what a
    /// shared standard library cannot serve.
    Static(String),
}

/// The facts `decide` needs from outside, so it can be tested.
#[allow(missing_debug_implementations)]
pub struct Facts<'a> {
    pub bundle_env: &'a str,
    pub state: Option<&'a BundleState>,
    pub member_libs: &'a [String],
    /// Member libraries that build scripts, proc-macros or non-Rust
    /// libraries link.
    pub host_linked: &'a [String],
    /// Was the member unit with this stem probed earlier in this build?
    pub member_probed: &'a dyn Fn(&str) -> bool,
    pub mtime: &'a dyn Fn(&Path) -> Option<u128>,
    pub stamp: &'a dyn Fn(&Path) -> Option<Stamp>,
}

/// Whether the unit can compile against the current bundle: every compiled
/// dependency it uses must be a root (swapped for its facade, and unchanged
/// since the bundle was linked), known to stay static, or a workspace member
/// compiled, not probed, in this build; and the bundle's libraries and the
/// facades must be the files dyndev made. Otherwise it probes, saying why.
pub fn decide(inv: &Invocation, facts: &Facts<'_>) -> Decision {
    // Compiling would fail with rustc's puzzling error; the driver says why.
    if let Some(setting) = inv.unsupported() {
        return Decision::Static(format!("{setting} cannot link with a shared std"));
    }
    // Compiled even while the bundle is planned, as cargo asks: what links
    // it cannot wait for the bundle, and cannot load it. Through the
    // cutoff like any library, so a body edit of it compiles it alone.
    if is_host_linked(inv, facts.host_linked) {
        return Decision::Compile(inv.args.clone());
    }
    if facts.bundle_env == env::PROBE {
        return Decision::Probe("the bundle is being planned".into());
    }
    let Some(state) = facts.state else {
        return Decision::Probe("there is no bundle yet".into());
    };
    if state.id != facts.bundle_env {
        return Decision::Probe("the bundle changed during the build".into());
    }
    if let Some(damage) = state
        .libs
        .iter()
        .find_map(|l| Damage::check(&l.file, l.made.stamp, (facts.stamp)(&l.file)))
    {
        return Decision::Probe(format!("the bundle's {damage}"));
    }
    let mut args = inv.args.clone();
    for ext in &inv.externs {
        let Some(stem) = ext.unit_stem() else {
            continue;
        };
        let krate = crate_of_stem(stem);
        if let Some(root) = state.roots.get(stem) {
            if (facts.mtime)(&root.rlib) != Some(root.rlib_mtime) {
                return Decision::Probe(format!(
                    "`{krate}` was rebuilt after the bundle was linked"
                ));
            }
            match (facts.stamp)(&root.facade) {
                None => return Decision::Probe(format!("the facade of `{krate}` is missing")),
                Some(s) if s != root.facade_stamp => {
                    return Decision::Probe(format!(
                        "the facade of `{krate}` was modified after dyndev made it"
                    ));
                }
                Some(_) => {}
            }
            set_extern_path(&mut args, ext, &root.facade);
            continue;
        }
        if facts.member_libs.iter().any(|m| m == krate) {
            if (facts.member_probed)(stem) {
                return Decision::Probe(format!("workspace member `{krate}` was probed"));
            }
            continue;
        }
        if state.plan.static_stems.contains(stem) {
            continue;
        }
        return Decision::Probe(format!("`{krate}` ({stem}) is new to the bundle"));
    }
    args.push("-L".into());
    args.push(format!("dependency={}", state.dir.display()));
    if inv.kind() == UnitKind::Executable {
        args.extend(["-C".into(), "prefer-dynamic".into()]);
        for dir in [&state.dir, &state.sysroot_lib] {
            args.extend([
                "-C".into(),
                format!("link-arg=-Wl,-rpath,{}", dir.display()),
            ]);
        }
    }
    Decision::Compile(args)
}

/// Whether the unit is a library that host code links
/// ([`Facts::host_linked`]).
fn is_host_linked(inv: &Invocation, host_linked: &[String]) -> bool {
    inv.kind() == UnitKind::Rlib
        && !inv.test
        && inv
            .crate_name
            .as_deref()
            .is_some_and(|n| host_linked.iter().any(|h| h == n))
}

/// A comma-separated list from the environment.
fn list_var(name: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Entry point when cargo runs us as the wrapper: `argv[1]` is rustc.
/// Returns the exit code.
pub fn main() -> i32 {
    match run(std::env::args_os().collect()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: cargo-dyndev's rustc wrapper failed: {e:#}");
            crate::error::code::FAILURE
        }
    }
}

fn run(argv: Vec<OsString>) -> Result<i32> {
    let rustc = argv
        .get(1)
        .context("expected the path of rustc as the first argument")?
        .clone();
    let raw: Vec<OsString> = argv[2..].to_vec();
    let Some(args) = raw
        .iter()
        .map(|a| a.to_str().map(str::to_owned))
        .collect::<Option<Vec<String>>>()
    else {
        return passthrough(&rustc, &raw);
    };
    let inv = Invocation::parse(args);
    let handled = matches!(inv.kind(), UnitKind::Rlib | UnitKind::Executable)
        && inv.links()
        && inv.crate_name.is_some();
    if !handled {
        return passthrough(&rustc, &raw);
    }
    // Under `watch`: how to run this compile again, through this wrapper,
    // so that watch's fast path goes through the cutoff as cargo does.
    if let (Some(dir), Some(stem)) = (
        std::env::var_os(crate::contract::env::CAPTURE_DIR),
        inv.unit_stem(),
    ) {
        crate::helpers::capture::record_wrapped(Path::new(&dir), &stem, &argv);
    }

    let state_dir = PathBuf::from(std::env::var_os(env::STATE_DIR).unwrap_or_default());
    let layout = Layout::from_state_dir(&state_dir);
    let bundle_env = std::env::var(env::BUNDLE).unwrap_or_else(|_| env::NONE.into());
    let run_id = std::env::var(env::RUN).unwrap_or_default();
    let run_dir = layout.run_dir(&run_id);
    let member_libs = list_var(env::MEMBER_LIBS);
    let host_linked = list_var(env::HOST_LINKED_LIBS);
    // The tests of a proc-macro crate are host code, with the crate's
    // host-only dependencies (clap_derive's use heck, which nothing on the
    // target side does): built as cargo builds them, like the crate, unless
    // they use a workspace library, which needs the bundle.
    if inv.is_proc_macro_test()
        && !inv.externs.iter().any(|e| {
            e.unit_stem()
                .is_some_and(|s| member_libs.iter().any(|m| m == crate_of_stem(s)))
        })
    {
        return passthrough(&rustc, &raw);
    }
    let state = BundleState::load(&layout)?;
    let member_probed =
        |stem: &str| JournalEntry::read(&run_dir, stem).is_some_and(|entry| entry.probed);
    let decision = decide(
        &inv,
        &Facts {
            bundle_env: &bundle_env,
            state: state.as_ref(),
            member_libs: &member_libs,
            host_linked: &host_linked,
            member_probed: &member_probed,
            mtime: &crate::fs::mtime_nanos,
            stamp: &Stamp::of,
        },
    );

    let stem = inv.unit_stem().context("unit without a crate name")?;
    let entry = JournalEntry {
        stem,
        package: std::env::var("CARGO_PKG_NAME").unwrap_or_default(),
        probed: matches!(decision, Decision::Probe(_)),
        probe_reason: match &decision {
            Decision::Probe(reason) => Some(reason.clone()),
            Decision::Compile(_) | Decision::Static(_) => None,
        },
        executable: inv.kind() == UnitKind::Executable,
        kind: kind_label(&inv).to_owned(),
        rustc: PathBuf::from(&rustc),
        externs: inv
            .externs
            .iter()
            .filter_map(|e| {
                Some(JournalExtern {
                    name: e.name.clone(),
                    stem: e.unit_stem()?.to_owned(),
                    path: e.path.clone()?,
                })
            })
            .collect(),
        search_paths: inv.search_paths.clone(),
        link_args: inv.link_codegen_args(),
        target: target_of(&inv),
        unsupported: inv.unsupported(),
        host_linked: is_host_linked(&inv, &host_linked),
        global_allocator: None,
        cutoff: None,
    };
    entry.write(&run_dir)?;

    match decision {
        Decision::Probe(_) => {
            write_probe_dep_info(&inv)?;
            Ok(0)
        }
        Decision::Static(_) => passthrough(&rustc, &raw),
        Decision::Compile(args) => {
            let final_inv = Invocation::parse(args.clone());
            if crate::cutoff::handles(&final_inv) {
                let store = crate::cutoff::Store::new(&state_dir);
                let proxy = layout
                    .state_dir
                    .join("bin")
                    .join(crate::contract::names::LINKER);
                let ctx = crate::cutoff::Context {
                    store: &store,
                    rustc: &|| rustc_command(&rustc),
                    members: &member_libs,
                    proxy: &proxy,
                    shared_members: std::env::var_os(crate::contract::env::HOT_KEEP).is_none(),
                };
                let (code, cutoff) = crate::cutoff::compile(&ctx, &final_inv, &args)?;
                let compiled = matches!(cutoff, Cutoff::Compiled(_) | Cutoff::Library { .. });
                let mut entry = JournalEntry {
                    cutoff: Some(cutoff),
                    ..entry
                };
                // Compiled against the bundle: again when it changes. A
                // library host code links is compiled against no bundle.
                if code == 0 && compiled {
                    if !entry.host_linked {
                        append_env_dep(&inv, &bundle_env)?;
                    }
                    entry.global_allocator = global_allocator_in(&inv);
                }
                entry.write(&run_dir)?;
                return Ok(code);
            }
            let mut cmd = rustc_command(&rustc);
            let status = cmd
                .args(&args)
                .status()
                .with_context(|| failed_to_run(&cmd))?;
            if status.success() {
                append_env_dep(&inv, &bundle_env)?;
            }
            Ok(crate::cargo::exit_code(status))
        }
    }
}

/// What the unit is, in cargo's words.
fn kind_label(inv: &Invocation) -> &'static str {
    if inv.test {
        "test"
    } else if inv.kind() == UnitKind::Rlib {
        "lib"
    } else if inv
        .out_dir
        .as_deref()
        .is_some_and(|d| d.ends_with("examples"))
    {
        "example"
    } else {
        "bin"
    }
}

fn target_of(inv: &Invocation) -> Option<String> {
    inv.args
        .iter()
        .position(|a| a == "--target")
        .and_then(|i| inv.args.get(i + 1).cloned())
        .or_else(|| {
            inv.args
                .iter()
                .find_map(|a| a.strip_prefix("--target=").map(str::to_owned))
        })
}

/// rustc, or the user's own workspace wrapper around it.
fn rustc_command(rustc: &OsString) -> Command {
    match std::env::var_os(env::INNER_WRAPPER).filter(|w| !w.is_empty()) {
        Some(inner) => {
            let mut cmd = Command::new(inner);
            cmd.arg(rustc);
            cmd
        }
        None => Command::new(rustc),
    }
}

/// The error of a command that did not start: it names the program that
/// was not found, the user's wrapper or rustc.
fn failed_to_run(cmd: &Command) -> String {
    format!("failed to run `{}`", cmd.get_program().to_string_lossy())
}

fn passthrough(rustc: &OsString, args: &[OsString]) -> Result<i32> {
    let mut cmd = rustc_command(rustc);
    cmd.args(args);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let err = cmd.exec();
        Err(err).with_context(|| failed_to_run(&cmd))
    }
    #[cfg(not(unix))]
    {
        let status = cmd.status().with_context(|| failed_to_run(&cmd))?;
        Ok(crate::cargo::exit_code(status))
    }
}

/// Where the crate sets a `#[global_allocator]`, from the sources its
/// compile read (`src/main.rs:12`), leaving out what its `cfg`s turn off.
fn global_allocator_in(inv: &Invocation) -> Option<String> {
    let dep_info = std::fs::read_to_string(inv.dep_info_path()?).ok()?;
    let (_, files) = dep_info.lines().next()?.split_once(": ")?;
    let cfgs = cfgs_of(inv);
    for file in files.split_whitespace().filter(|f| f.ends_with(".rs")) {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        if let Some(line) = sets_global_allocator(&text, &cfgs) {
            return Some(format!("{file}:{}", line + 1));
        }
    }
    None
}

/// The `--cfg` values of a compile (`feature="dhat"`, `test`), spaces out.
fn cfgs_of(inv: &Invocation) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut args = inv.args.iter();
    while let Some(a) = args.next() {
        let value = match a.strip_prefix("--cfg=") {
            Some(v) => Some(v),
            None if a == "--cfg" => args.next().map(String::as_str),
            None => None,
        };
        if let Some(v) = value {
            out.insert(v.split_whitespace().collect());
        }
    }
    out
}

/// The line (from 0) of the first `#[global_allocator]` attribute of an
/// item its `cfg` attributes leave in. A `cfg` this cannot decide (a
/// target's, say) leaves the item in.
fn sets_global_allocator(source: &str, cfgs: &BTreeSet<String>) -> Option<usize> {
    use syn::visit::Visit;
    struct Find<'a> {
        cfgs: &'a BTreeSet<String>,
        line: Option<usize>,
    }
    impl Find<'_> {
        fn off(&self, attrs: &[syn::Attribute]) -> bool {
            attrs.iter().any(|a| {
                a.path().is_ident("cfg")
                    && a.parse_args::<syn::Meta>()
                        .is_ok_and(|m| cfg_holds(&m, self.cfgs) == Some(false))
            })
        }
    }
    impl<'ast> Visit<'ast> for Find<'_> {
        fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
            if !self.off(&m.attrs) {
                syn::visit::visit_item_mod(self, m);
            }
        }
        fn visit_item_static(&mut self, s: &'ast syn::ItemStatic) {
            if self.line.is_some() || self.off(&s.attrs) {
                return;
            }
            if let Some(a) = s
                .attrs
                .iter()
                .find(|a| a.path().is_ident("global_allocator"))
            {
                self.line = Some(a.pound_token.span.start().line.saturating_sub(1));
            }
        }
    }
    let file = syn::parse_file(source).ok()?;
    let mut find = Find { cfgs, line: None };
    find.visit_file(&file);
    find.line
}

/// Whether a `cfg` predicate holds for a compile with `cfgs`, when that
/// can be told: features and `--cfg` names are all on the command line;
/// anything else (`target_os`, `debug_assertions`) is not decided here.
fn cfg_holds(meta: &syn::Meta, cfgs: &BTreeSet<String>) -> Option<bool> {
    use quote::ToTokens;
    match meta {
        syn::Meta::Path(p) => {
            let name = p.get_ident()?.to_string();
            (name == "test").then(|| cfgs.contains(&name))
        }
        syn::Meta::NameValue(nv) if nv.path.is_ident("feature") => {
            let value = nv.value.to_token_stream().to_string();
            Some(cfgs.contains(&format!("feature={value}")))
        }
        syn::Meta::NameValue(_) => None,
        syn::Meta::List(list) => {
            let inner: Vec<syn::Meta> = list
                .parse_args_with(
                    syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated,
                )
                .ok()?
                .into_iter()
                .collect();
            let each: Vec<Option<bool>> = inner.iter().map(|m| cfg_holds(m, cfgs)).collect();
            if list.path.is_ident("not") {
                return match each.as_slice() {
                    [one] => one.map(|b| !b),
                    _ => None,
                };
            }
            if list.path.is_ident("all") {
                if each.contains(&Some(false)) {
                    return Some(false);
                }
                return each.iter().all(|e| *e == Some(true)).then_some(true);
            }
            if list.path.is_ident("any") {
                if each.contains(&Some(true)) {
                    return Some(true);
                }
                return each.iter().all(|e| *e == Some(false)).then_some(false);
            }
            None
        }
    }
}

/// A probed unit still leaves the dep-info cargo expects, naming the probe
/// in its env-dep so that the next build with a real bundle recompiles it.
fn write_probe_dep_info(inv: &Invocation) -> Result<()> {
    let path = inv
        .dep_info_path()
        .context("cannot tell where rustc would write dep-info")?;
    let target = path.with_extension("");
    let text = format!(
        "{}: \n\n# env-dep:{}={}\n",
        target.display(),
        env::BUNDLE,
        env::PROBE
    );
    crate::fs::write_atomic(&path, text.as_bytes())
}

/// Makes the unit depend on the bundle's id: cargo reads `# env-dep:` lines
/// from dep-info and rebuilds the unit when the variable changes.
fn append_env_dep(inv: &Invocation, bundle: &str) -> Result<()> {
    let Some(path) = inv.dep_info_path() else {
        return Ok(());
    };
    if !path.exists() {
        return Ok(());
    }
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .with_context(|| format!("failed to open `{}`", path.display()))?;
    writeln!(file, "\n# env-dep:{}={bundle}", env::BUNDLE)
        .with_context(|| format!("failed to write `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Root;
    use std::collections::BTreeMap;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn state() -> BundleState {
        BundleState {
            state_version: crate::state::STATE_VERSION,
            id: "b1".into(),
            generation: "g".into(),
            dir: "/s/b1".into(),
            sysroot_lib: "/sys/lib".into(),
            roots: BTreeMap::from([(
                "liblog-1".to_owned(),
                Root {
                    package_id: "log".into(),
                    crate_name: "log".into(),
                    alias: "log_1".into(),
                    lib: "dyndev_bundle_b1".into(),
                    rlib: "/t/deps/liblog-1.rlib".into(),
                    rlib_mtime: 7,
                    facade: "/s/b1/liblog-f1.rlib".into(),
                    facade_stamp: made(Path::new("/s/b1/liblog-f1.rlib")).unwrap(),
                },
            )]),
            libs: vec![crate::state::Lib {
                crate_name: "dyndev_bundle_b1".into(),
                file: "/s/b1/libdyndev_bundle_b1.so".into(),
                made: crate::state::LibMade {
                    stamp: made(Path::new("/s/b1/libdyndev_bundle_b1.so")).unwrap(),
                    ..Default::default()
                },
                ..Default::default()
            }],
            plan: crate::state::BundlePlan {
                static_stems: BTreeSet::from(["libengine-2".to_owned()]),
                ..Default::default()
            },
            ..BundleState::default()
        }
    }

    /// The bundle's files as dyndev made them.
    fn made(path: &Path) -> Option<Stamp> {
        path.starts_with("/s/b1").then_some(Stamp {
            len: path.as_os_str().len() as u64,
            mtime_ns: 11,
        })
    }

    fn decide_with(cmd: &str, bundle_env: &str, mtime: u128) -> Decision {
        let inv = Invocation::parse(words(cmd));
        let s = state();
        let libs = vec!["core".to_owned()];
        decide(
            &inv,
            &Facts {
                bundle_env,
                state: Some(&s),
                member_libs: &libs,
                host_linked: &[],
                member_probed: &|stem| stem == "libcore-probed",
                mtime: &|_| Some(mtime),
                stamp: &made,
            },
        )
    }

    const APP: &str = "--crate-name app --crate-type bin --emit=dep-info,link -C extra-filename=-9 \
        --extern log=/t/deps/liblog-1.rlib --extern engine=/t/deps/libengine-2.rlib \
        --extern core=/t/deps/libcore-3.rmeta --extern serde_derive=/t/deps/libserde_derive-4.so";

    #[test]
    fn swaps_bundled_crates_for_facades_and_links_dynamically() {
        let Decision::Compile(args) = decide_with(APP, "b1", 7) else {
            panic!("expected a compile")
        };
        let joined = args.join(" ");
        assert!(
            joined.contains("--extern log=/s/b1/liblog-f1.rlib"),
            "{joined}"
        );
        assert!(joined.contains("--extern engine=/t/deps/libengine-2.rlib"));
        assert!(joined.contains("--extern core=/t/deps/libcore-3.rmeta"));
        assert!(joined.contains("--extern serde_derive=/t/deps/libserde_derive-4.so"));
        assert!(joined.ends_with(
            "-L dependency=/s/b1 -C prefer-dynamic -C link-arg=-Wl,-rpath,/s/b1 -C link-arg=-Wl,-rpath,/sys/lib"
        ));
    }

    #[test]
    fn libraries_get_facades_but_no_link_flags() {
        let Decision::Compile(args) = decide_with(
            "--crate-name core --crate-type lib --emit=dep-info,metadata,link --extern log=/t/deps/liblog-1.rmeta",
            "b1",
            7,
        ) else {
            panic!("expected a compile")
        };
        assert!(args.contains(&"log=/s/b1/liblog-f1.rlib".to_owned()));
        assert!(!args.contains(&"prefer-dynamic".to_owned()));
    }

    #[test]
    fn probes_when_the_bundle_does_not_cover_the_unit() {
        let unknown = APP.replace("libengine-2", "libengine-5");
        assert_eq!(
            decide_with(&unknown, "b1", 7),
            Decision::Probe("`engine` (libengine-5) is new to the bundle".into())
        );
        assert_eq!(
            decide_with(APP, "b1", 8),
            Decision::Probe("`log` was rebuilt after the bundle was linked".into())
        );
        assert!(matches!(
            decide_with(APP, env::PROBE, 7),
            Decision::Probe(_)
        ));
        assert!(matches!(decide_with(APP, "b0", 7), Decision::Probe(_)));
        let after_probe = APP.replace("libcore-3", "libcore-probed");
        assert_eq!(
            decide_with(&after_probe, "b1", 7),
            Decision::Probe("workspace member `core` was probed".into())
        );
    }

    #[test]
    fn a_library_host_code_links_compiles_as_cargo_would_even_while_planning() {
        let s = state();
        let decide_lib = |cmd: &str| {
            decide(
                &Invocation::parse(words(cmd)),
                &Facts {
                    bundle_env: env::PROBE,
                    state: Some(&s),
                    member_libs: &["util".to_owned()],
                    host_linked: &["util".to_owned()],
                    member_probed: &|_| false,
                    mtime: &|_| Some(7),
                    stamp: &made,
                },
            )
        };
        let lib = "--crate-name util --crate-type lib --emit=dep-info,metadata,link \
                   --extern log=/t/deps/liblog-1.rmeta";
        // Compiled as cargo asks, never probed, never against facades.
        let Decision::Compile(args) = decide_lib(lib) else {
            panic!("{lib}: not compiled");
        };
        assert!(
            args.iter().any(|a| a == "log=/t/deps/liblog-1.rmeta"),
            "{args:?}"
        );
        // Its tests are a program like any other.
        let tests = "--crate-name util --test --emit=dep-info,link";
        assert!(matches!(decide_lib(tests), Decision::Probe(_)));
    }

    #[test]
    fn a_global_allocator_is_an_attribute_not_words() {
        let none = BTreeSet::new();
        let set = "use std::alloc::System;\n\n#[global_allocator]\nstatic A: System = System;\n";
        assert_eq!(sets_global_allocator(set, &none), Some(2));
        let quoted = "fn f() { let src = \"#[global_allocator]\\nstatic A: System = System;\"; }\n\
                      // #[global_allocator] in a comment\n";
        assert_eq!(sets_global_allocator(quoted, &none), None);
        // Behind a feature: only when the compile turns it on.
        let gated = "#[cfg(feature = \"mimalloc\")]\n#[global_allocator]\nstatic A: M = M;\n";
        assert_eq!(sets_global_allocator(gated, &none), None);
        let on = BTreeSet::from(["feature=\"mimalloc\"".to_owned()]);
        assert_eq!(sets_global_allocator(gated, &on), Some(1));
        let not =
            "#[cfg(all(not(feature = \"x\"), unix))]\n#[global_allocator]\nstatic A: M = M;\n";
        assert_eq!(
            sets_global_allocator(not, &none),
            Some(1),
            "undecided: kept"
        );
        let inv = Invocation::parse(
            [
                "--crate-name",
                "a",
                "--cfg",
                "feature=\"mimalloc\"",
                "--cfg=test",
            ]
            .map(String::from)
            .to_vec(),
        );
        assert_eq!(
            cfgs_of(&inv),
            BTreeSet::from(["feature=\"mimalloc\"".to_owned(), "test".to_owned()])
        );
    }

    #[test]
    fn a_missing_facade_means_a_new_bundle() {
        let inv = Invocation::parse(words(APP));
        let s = state();
        let decision = decide(
            &inv,
            &Facts {
                bundle_env: "b1",
                state: Some(&s),
                member_libs: &[],
                host_linked: &[],
                member_probed: &|_| false,
                mtime: &|p| (!p.starts_with("/s")).then_some(7),
                stamp: &|p| made(p).filter(|_| p.extension().is_some_and(|e| e == "so")),
            },
        );
        assert_eq!(
            decision,
            Decision::Probe("the facade of `log` is missing".into())
        );
    }

    #[test]
    fn a_facade_or_library_changed_after_it_was_made_means_a_new_bundle() {
        let inv = Invocation::parse(words(APP));
        let s = state();
        let decide_seeing = |changed: &str| {
            let changed = Path::new(changed);
            decide(
                &inv,
                &Facts {
                    bundle_env: "b1",
                    state: Some(&s),
                    member_libs: &["core".to_owned()],
                    host_linked: &[],
                    member_probed: &|_| false,
                    mtime: &|_| Some(7),
                    stamp: &|p| {
                        made(p).map(|m| {
                            if p == changed {
                                Stamp { len: 0, ..m }
                            } else {
                                m
                            }
                        })
                    },
                },
            )
        };
        assert_eq!(
            decide_seeing("/s/b1/liblog-f1.rlib"),
            Decision::Probe("the facade of `log` was modified after dyndev made it".into())
        );
        assert_eq!(
            decide_seeing("/s/b1/libdyndev_bundle_b1.so"),
            Decision::Probe(
                "the bundle's `libdyndev_bundle_b1.so` is 0 B where dyndev made 28 B".into()
            )
        );
        assert!(matches!(decide_seeing("/nothing"), Decision::Compile(_)));
    }
}
