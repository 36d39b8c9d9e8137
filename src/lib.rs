//! cargo-dyndev: dynamic-linking dev builds for any Rust workspace.
//!
//! Third-party dependencies are linked once into shared libraries, the
//! bundle; workspace members link against it, so after an edit the final
//! link only binds symbols. The same executable is the `cargo dyndev`
//! command (the driver) and, under other names, the helpers that run inside
//! cargo's and rustc's processes ([`helpers`]). `docs/architecture.md` maps
//! the modules.

pub(crate) mod bundle;
pub(crate) mod cargo;
pub(crate) mod cargo_config;
pub(crate) mod cli;
pub(crate) mod closure;
pub(crate) mod contract;
pub(crate) mod cutoff;
pub(crate) mod depinfo;
pub(crate) mod doctest;
pub(crate) mod error;
pub(crate) mod fs;
pub(crate) mod helpers;
pub(crate) mod inspect;
pub(crate) mod kept;
pub(crate) mod layout;
pub(crate) mod measure;
pub(crate) mod ops;
pub(crate) mod plan;
pub(crate) mod pool;
pub(crate) mod process;
pub(crate) mod program_env;
pub(crate) mod reload;
pub(crate) mod rustc_args;
pub(crate) mod settings;
pub(crate) mod shell;
pub(crate) mod split;
pub(crate) mod state;
pub(crate) mod templates;
pub(crate) mod test_binaries;
pub(crate) mod workspace;

/// What the end-to-end tests and the benchmarks reach inside dyndev, and
/// nothing else: no interface, and no promise.
#[doc(hidden)]
pub mod testing {
    pub use crate::cli::parse_duration;
    pub use crate::contract::{CompileRecord, LinkRecord, env, names};
    pub use crate::inspect::{defines_symbol_containing, dynamic_info};
    pub use crate::layout::Layout;
    pub use crate::measure::read_log;
    pub use crate::ops::compare::mirror::{Mirror, make_workspace_root};
    pub use crate::ops::compare::program;
    pub use crate::ops::compare::stats::Summary;
    pub use crate::process::signal_group;
    pub use crate::reload::build::{Invocation, PatchLink};
    pub use crate::reload::elf::Image;
    pub use crate::reload::{Refusal, Session, demangle_path, kept_links};
}

use cli::{Cli, Command};
use error::{Failure, code};
use shell::{ColorChoice, Shell};

/// Runs the command line and exits with its documented code.
pub fn main() -> ! {
    // This executable also runs, under other names, inside cargo's, rustc's
    // and the watcher's processes: those come first.
    if let Some(helper) = helpers::entry() {
        std::process::exit(helper());
    }
    let cli = match Cli::from_env() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() {
                code::USAGE
            } else {
                code::SUCCESS
            });
        }
    };
    let global = match &cli.command {
        Command::Build(a) => &a.global,
        Command::Run(a) => &a.global,
        Command::Test(a) => &a.global,
        Command::Nextest(a) => &a.global,
        Command::Plan(a) => &a.global,
        Command::Compare(a) => &a.global,
        Command::Watch(a) => a.global(),
    };
    let shell = Shell::new(global.verbosity(), ColorChoice::resolve(global.color));
    let result = match &cli.command {
        Command::Build(args) => ops::build::exec(&shell, args),
        Command::Run(args) => ops::run::exec(&shell, args),
        Command::Test(args) => ops::test::exec(&shell, args),
        Command::Nextest(args) => ops::nextest::exec(&shell, args),
        Command::Plan(args) => ops::plan::exec(&shell, args),
        Command::Compare(args) => ops::compare::exec(&shell, args),
        Command::Watch(args) => ops::watch::exec(&shell, args),
    };
    match result {
        Ok(()) => std::process::exit(code::SUCCESS),
        Err(err) => std::process::exit(report(&shell, &err)),
    }
}

/// Prints an error in cargo's form (`error: ...` then `Caused by:`) unless
/// cargo already printed it, and returns the exit code.
fn report(shell: &Shell, err: &anyhow::Error) -> i32 {
    if let Some(failure) = err.downcast_ref::<Failure>() {
        if !failure.is_silent() {
            shell.error(failure);
        }
        return failure.exit_code();
    }
    let mut message = err.to_string();
    let causes: Vec<String> = err.chain().skip(1).map(|c| c.to_string()).collect();
    if !causes.is_empty() {
        message.push_str("\n\nCaused by:");
        for c in causes {
            for line in c.lines() {
                message.push_str("\n  ");
                message.push_str(line);
            }
        }
    }
    shell.error(message);
    code::FAILURE
}
