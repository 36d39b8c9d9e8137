//! The command line. Flags are cargo's own, parsed with clap and turned back
//! into cargo arguments by each group's `push_cargo_args`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::styling::{AnsiColor, Styles};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::shell::{ColorChoice, Verbosity};

const STYLES: Styles = Styles::styled()
    .header(AnsiColor::Green.on_default().bold())
    .usage(AnsiColor::Green.on_default().bold())
    .literal(AnsiColor::Cyan.on_default().bold())
    .placeholder(AnsiColor::Cyan.on_default())
    .error(AnsiColor::Red.on_default().bold())
    .valid(AnsiColor::Cyan.on_default().bold())
    .invalid(AnsiColor::Yellow.on_default().bold());

/// `cargo dyndev ...`: cargo runs `cargo-dyndev dyndev ...`.
#[derive(Debug, Parser)]
#[command(name = "cargo", bin_name = "cargo", styles = STYLES)]
pub enum Cli {
    Dyndev(Dyndev),
}

#[derive(Debug, Args)]
#[command(
    version,
    about = "Dynamic-linking dev builds: dependencies linked once, your crates relinked in milliseconds",
    long_about = "Dynamic-linking dev builds for any workspace.\n\n\
        Third-party dependencies are linked once into shared libraries (the bundle); \
        your crates link against it, so after an edit the link only binds symbols. \
        Nothing in your workspace is changed: everything dyndev makes lives in \
        <target-dir>/dyndev.",
    after_help = "Run `cargo dyndev plan` to see what goes into the bundle."
)]
pub struct Dyndev {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compile the workspace, with dependencies linked dynamically
    Build(BuildArgs),
    /// Build and run a binary or example, with dependencies linked dynamically
    Run(RunArgs),
    /// Build and run the tests, with dependencies linked dynamically
    Test(TestArgs),
    /// Build the tests with dependencies linked dynamically and run them with cargo-nextest
    Nextest(NextestArgs),
    /// Show where every package goes: into the bundle, or linked statically and why
    Plan(PlanArgs),
    /// Measure edit -> binary time statically and with dyndev, side by side
    Compare(CompareArgs),
    /// Run a program (or the tests) and restart it on the new build after every save
    Watch(Box<WatchArgs>),
}

/// `-v`, `-q`, `--color`: accepted by every command.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Display Options")]
pub struct GlobalArgs {
    /// Use verbose output (-vv very verbose)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Do not print cargo log messages
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Coloring
    #[arg(long, value_name = "WHEN", global = true)]
    pub color: Option<ColorChoice>,
}

impl GlobalArgs {
    pub fn verbosity(&self) -> Verbosity {
        match (self.quiet, self.verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => Verbosity::Normal,
            _ => Verbosity::Verbose,
        }
    }

    /// These options as `watch` hands them on, to cargo and to the
    /// `cargo dyndev test` it reruns: its first `-v` shows its own details
    /// (each reload's costs, what a restart is for), `-vv` makes cargo
    /// verbose too. `build`, `run` and `test` pass `-v` to cargo, as
    /// cargo's own commands take it.
    pub fn for_watch(&self) -> GlobalArgs {
        GlobalArgs {
            verbose: self.verbose.saturating_sub(1),
            ..self.clone()
        }
    }

    pub fn push_cargo_args(&self, out: &mut Vec<String>) {
        if self.quiet {
            out.push("--quiet".into());
        }
        for _ in 0..self.verbose {
            out.push("--verbose".into());
        }
        if let Some(color) = self.color {
            out.push(format!("--color={}", color.as_str()));
        }
    }
}

/// `-p`, `--workspace`, `--exclude`.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Package Selection")]
pub struct PackageArgs {
    /// Package to build (see `cargo help pkgid`)
    #[arg(short, long = "package", value_name = "SPEC")]
    pub packages: Vec<String>,
    /// Build all packages in the workspace
    #[arg(long, visible_alias = "all")]
    pub workspace: bool,
    /// Exclude packages from the build
    #[arg(long, value_name = "SPEC", requires = "workspace")]
    pub exclude: Vec<String>,
}

impl PackageArgs {
    pub fn push_cargo_args(&self, out: &mut Vec<String>) {
        for p in &self.packages {
            out.extend(["--package".into(), p.clone()]);
        }
        if self.workspace {
            out.push("--workspace".into());
        }
        for p in &self.exclude {
            out.extend(["--exclude".into(), p.clone()]);
        }
    }
}

/// `--lib`, `--bin`, `--example` and their plural forms.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Target Selection")]
pub struct TargetArgs {
    /// Build only this package's library
    #[arg(long)]
    pub lib: bool,
    /// Build only the specified binary
    #[arg(long = "bin", value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
    pub bins: Vec<String>,
    /// Build all binaries
    #[arg(long = "bins")]
    pub all_bins: bool,
    /// Build only the specified example
    #[arg(long = "example", value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
    pub examples: Vec<String>,
    /// Build all examples
    #[arg(long = "examples")]
    pub all_examples: bool,
    /// Build only the specified test target
    #[arg(long = "test", value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
    pub tests: Vec<String>,
    /// Build all targets that have `test = true` set
    #[arg(long = "tests")]
    pub all_tests: bool,
    /// Build only the specified bench target
    #[arg(long = "bench", value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
    pub benches: Vec<String>,
    /// Build all targets that have `bench = true` set
    #[arg(long = "benches")]
    pub all_benches: bool,
    /// Build all targets (lib, bins, examples, tests, benches)
    #[arg(long)]
    pub all_targets: bool,
}

impl TargetArgs {
    pub fn push_cargo_args(&self, out: &mut Vec<String>) {
        if self.lib {
            out.push("--lib".into());
        }
        push_named(out, "--bin", &self.bins);
        if self.all_bins {
            out.push("--bins".into());
        }
        push_named(out, "--example", &self.examples);
        if self.all_examples {
            out.push("--examples".into());
        }
        push_named(out, "--test", &self.tests);
        if self.all_tests {
            out.push("--tests".into());
        }
        push_named(out, "--bench", &self.benches);
        if self.all_benches {
            out.push("--benches".into());
        }
        if self.all_targets {
            out.push("--all-targets".into());
        }
    }
}

/// `--bin NAME` for each name; a bare `--bin` (cargo then lists the bins).
fn push_named(out: &mut Vec<String>, flag: &str, names: &[String]) {
    for name in names {
        if name.is_empty() {
            out.push(flag.into());
        } else {
            out.push(format!("{flag}={name}"));
        }
    }
}

/// `-F`, `--all-features`, `--no-default-features`.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Feature Selection")]
pub struct FeatureArgs {
    /// Space or comma separated list of features to activate
    #[arg(short = 'F', long, value_name = "FEATURES")]
    pub features: Vec<String>,
    /// Activate all available features
    #[arg(long)]
    pub all_features: bool,
    /// Do not activate the `default` feature
    #[arg(long)]
    pub no_default_features: bool,
}

impl FeatureArgs {
    pub fn push_cargo_args(&self, out: &mut Vec<String>) {
        for f in &self.features {
            out.extend(["--features".into(), f.clone()]);
        }
        if self.all_features {
            out.push("--all-features".into());
        }
        if self.no_default_features {
            out.push("--no-default-features".into());
        }
    }
}

/// Profile, paths, jobs and the lockfile switches.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Compilation Options")]
pub struct CompileArgs {
    /// Build artifacts in release mode, with optimizations
    #[arg(short, long, conflicts_with = "profile")]
    pub release: bool,
    /// Build artifacts with the specified profile
    #[arg(long, value_name = "PROFILE-NAME")]
    pub profile: Option<String>,
    /// Number of parallel jobs, defaults to # of CPUs
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<String>,
    /// Directory for all generated artifacts; dyndev uses <DIRECTORY>/dyndev
    #[arg(long, value_name = "DIRECTORY")]
    pub target_dir: Option<PathBuf>,
    /// Path to Cargo.toml
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Assert that `Cargo.lock` will remain unchanged
    #[arg(long)]
    pub locked: bool,
    /// Run without accessing the network
    #[arg(long)]
    pub offline: bool,
    /// Equivalent to specifying both --locked and --offline
    #[arg(long)]
    pub frozen: bool,
    /// Override a configuration value
    #[arg(long = "config", value_name = "KEY=VALUE|PATH")]
    pub config: Vec<String>,
    /// Ignore `rust-version` specification in packages
    #[arg(long)]
    pub ignore_rust_version: bool,
    /// Output a build timing report at the end of the build
    #[arg(long)]
    pub timings: bool,
    /// Outputs a future incompatibility report at the end of the build
    #[arg(long)]
    pub future_incompat_report: bool,
}

impl CompileArgs {
    /// Arguments every cargo command accepts (`metadata` included).
    pub fn push_workspace_args(&self, out: &mut Vec<String>) {
        if let Some(path) = &self.manifest_path {
            out.push(format!("--manifest-path={}", path.display()));
        }
        for (flag, on) in [
            ("--locked", self.locked),
            ("--offline", self.offline),
            ("--frozen", self.frozen),
        ] {
            if on {
                out.push(flag.into());
            }
        }
        for c in &self.config {
            out.extend(["--config".into(), c.clone()]);
        }
    }

    /// Arguments for `cargo build`, less `--target-dir`, which dyndev sets.
    pub fn push_build_args(&self, out: &mut Vec<String>) {
        self.push_workspace_args(out);
        if self.release {
            out.push("--release".into());
        }
        if let Some(p) = &self.profile {
            out.push(format!("--profile={p}"));
        }
        if let Some(j) = &self.jobs {
            out.push(format!("--jobs={j}"));
        }
        for (flag, on) in [
            ("--ignore-rust-version", self.ignore_rust_version),
            ("--timings", self.timings),
            ("--future-incompat-report", self.future_incompat_report),
        ] {
            if on {
                out.push(flag.into());
            }
        }
    }

    /// The profile's name, as cargo's manifests spell it.
    pub fn profile_name(&self) -> String {
        match &self.profile {
            _ if self.release => "release".into(),
            Some(p) => p.clone(),
            None => "dev".into(),
        }
    }

    /// The directory cargo uses for this profile inside a target dir.
    pub fn profile_dir(&self) -> String {
        match self.profile.as_deref() {
            _ if self.release => "release".into(),
            None | Some("dev") | Some("test") => "debug".into(),
            Some("bench") => "release".into(),
            Some(other) => other.into(),
        }
    }
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Do not abort the build as soon as there is an error
    #[arg(long, help_heading = "Compilation Options")]
    pub keep_going: bool,
    #[command(flatten)]
    pub packages: PackageArgs,
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub features: FeatureArgs,
    #[command(flatten)]
    pub compile: CompileArgs,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// `-p`, `--bin`, `--example`: the one executable `run` and `compare` are
/// about. Chosen as `cargo run` chooses when none is named.
#[derive(Debug, Clone, Default, Args)]
pub struct ExecutableArgs {
    /// Package with the target
    #[arg(
        short,
        long = "package",
        value_name = "SPEC",
        help_heading = "Package Selection"
    )]
    pub package: Option<String>,
    /// Name of the bin target
    #[arg(long, value_name = "NAME", help_heading = "Target Selection", num_args = 0..=1, default_missing_value = "")]
    pub bin: Option<String>,
    /// Name of the example target
    #[arg(long, value_name = "NAME", help_heading = "Target Selection", conflicts_with = "bin", num_args = 0..=1, default_missing_value = "")]
    pub example: Option<String>,
}

impl ExecutableArgs {
    pub fn packages(&self) -> PackageArgs {
        PackageArgs {
            packages: self.package.iter().cloned().collect(),
            ..PackageArgs::default()
        }
    }
}

#[derive(Debug, Clone, Args)]
#[command(after_help = "To pass `--help` to the program, use `-- --help`.")]
pub struct RunArgs {
    #[command(flatten)]
    pub executable: ExecutableArgs,
    /// Do not abort the build as soon as there is an error
    #[arg(long, help_heading = "Compilation Options")]
    pub keep_going: bool,
    #[command(flatten)]
    pub features: FeatureArgs,
    #[command(flatten)]
    pub compile: CompileArgs,
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Arguments for the binary or example to run
    #[arg(last = true, value_name = "ARGS", help_heading = "Arguments")]
    pub args: Vec<OsString>,
}

#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Test binaries link against the bundle. To pass arguments to them, \
    use `-- ARGS`: `cargo dyndev test -- --nocapture`."
)]
pub struct TestArgs {
    /// If specified, only run tests containing this string in their names
    #[arg(value_name = "TESTNAME")]
    pub filter: Option<String>,
    #[command(flatten)]
    pub packages: PackageArgs,
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Test only this library's documentation
    #[arg(long, help_heading = "Target Selection")]
    pub doc: bool,
    #[command(flatten)]
    pub features: FeatureArgs,
    #[command(flatten)]
    pub compile: CompileArgs,
    /// Compile, but don't run tests
    #[arg(long)]
    pub no_run: bool,
    /// Run all tests regardless of failure
    #[arg(long)]
    pub no_fail_fast: bool,
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Arguments for the test binaries
    #[arg(last = true, value_name = "ARGS", help_heading = "Arguments")]
    pub args: Vec<OsString>,
}

impl TestArgs {
    /// The cargo arguments that select test targets: `--lib`, `--bin`,
    /// ..., `--test NAME`, `--tests`.
    pub fn push_target_args(&self, out: &mut Vec<String>) {
        self.targets.push_cargo_args(out);
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "`cargo dyndev nextest run [ARGS]` takes the arguments of `cargo nextest run`: \
    cargo's options select and build the tests, the rest go to the run."
)]
pub struct NextestArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// `run`, then the arguments of `cargo nextest run`
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true
    )]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MessageFormat {
    /// A table on stderr
    Human,
    /// One JSON document on stdout
    Json,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub packages: PackageArgs,
    #[command(flatten)]
    pub features: FeatureArgs,
    #[command(flatten)]
    pub compile: CompileArgs,
    /// Plan for the test targets too (dev-dependencies join the bundle)
    #[arg(long)]
    pub tests: bool,
    /// Output format
    #[arg(long, value_name = "FMT", default_value = "human")]
    pub message_format: MessageFormat,
    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Works on a copy of the sources under <target-dir>/dyndev-compare: \
    your files are never changed. Every mode builds into one target dir, so \
    dependencies compile once."
)]
pub struct CompareArgs {
    #[command(flatten)]
    pub executable: ExecutableArgs,
    #[command(flatten)]
    pub features: FeatureArgs,
    #[command(flatten)]
    pub compile: CompileArgs,
    /// Timed builds per mode; the modes alternate run by run
    #[arg(long, default_value_t = 5, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Before each build, add a function to this Rust file (a module of the
    /// crate) so its crate compiles again [default: the root file of the
    /// target]
    #[arg(long, value_name = "FILE", conflicts_with = "touch")]
    pub edit: Option<PathBuf>,
    /// Before each build, only update this file's modification time
    #[arg(long, value_name = "FILE")]
    pub touch: Option<PathBuf>,
    /// Also time one build of each mode from an empty target dir
    #[arg(long)]
    pub cold: bool,
    /// Static linkers to compare besides rustc's default: a comma-separated
    /// list, `all` (every one on PATH) or `none` [default: mold and wild,
    /// when on PATH]
    #[arg(long, value_name = "LIST")]
    pub linkers: Option<String>,
    /// Seconds to let the program run when measuring its start-up and run
    /// time; a run still going then is not measured, and if it is the first
    /// run, the other modes' programs are stopped once started
    #[arg(long, default_value_t = 20, value_name = "SECS")]
    pub timeout: u64,
    /// Time the builds only: do not run the program (for one that needs a
    /// display or input)
    #[arg(long, conflicts_with = "args")]
    pub no_run: bool,
    /// Measure the test loop instead: edit the package's library [default:
    /// its root file], then `cargo test` until the suite is done
    #[arg(long, conflicts_with_all = ["bin", "example", "args", "no_run"])]
    pub tests: bool,
    /// Output format
    #[arg(long, value_name = "FMT", default_value = "human")]
    pub message_format: MessageFormat,
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Arguments for the program when its start-up and run time are
    /// measured
    #[arg(last = true, value_name = "ARGS", help_heading = "Arguments")]
    pub args: Vec<OsString>,
}

/// `watch`: `watch run` when no mode is named.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Watches exactly the files the build read (sources, `include_str!` inputs, \
    manifests, `Cargo.lock`, cargo's configuration, build scripts' `rerun-if-changed` paths), \
    never a target dir. A failed build leaves the running program alone. `-v` shows watch's own \
    details (each reload's costs, why a save restarts), `-vv` makes cargo verbose too. To pass \
    `--help` to the program, use `-- --help`."
)]
pub struct WatchArgs {
    #[command(subcommand)]
    pub mode: Option<WatchMode>,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub watch: WatchOptions,
}

impl WatchArgs {
    /// The display options, wherever they were given.
    pub fn global(&self) -> &GlobalArgs {
        match &self.mode {
            None => &self.run.global,
            Some(WatchMode::Run(a)) => &a.run.global,
            Some(WatchMode::Test(a)) => &a.test.global,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum WatchMode {
    /// Build and run a binary or example; restart it on every save (the default)
    Run(WatchRunArgs),
    /// Build and run the tests on every save
    Test(WatchTestArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "`-v` shows watch's own details (each reload's costs, why a save restarts), \
    `-vv` makes cargo verbose too. To pass `--help` to the program, use `-- --help`."
)]
pub struct WatchRunArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub watch: WatchOptions,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Filters and `-- ARGS` go to the tests as with `cargo dyndev test`. `-v` shows \
    watch's own details, `-vv` makes cargo verbose too."
)]
pub struct WatchTestArgs {
    #[command(flatten)]
    pub test: TestArgs,
    #[command(flatten)]
    pub watch: WatchOptions,
}

/// How `watch` restarts.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Watch Options")]
pub struct WatchOptions {
    /// How long the old instance gets to exit after SIGTERM before SIGKILL
    /// (`2s`, `500ms`)
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub grace: std::time::Duration,
    /// Clear the screen before each build
    #[arg(long)]
    pub clear: bool,
    /// How long a burst of changes must have been quiet before a build
    #[arg(long, value_name = "DURATION", default_value = "50ms", value_parser = parse_duration, hide = true)]
    pub debounce: std::time::Duration,
    /// Always build with cargo, never by replaying captured rustc commands
    #[arg(long)]
    pub no_fast_path: bool,
    /// Reload the running program in place (same process) when a save
    /// allows it; restart it when not
    #[arg(long, conflicts_with = "no_fast_path")]
    pub hot: bool,
}

/// `2s`, `500ms`, `1.5s`, `3` (seconds), `1m`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration such as `2s` or `500ms`"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        other => return Err(format!("unknown unit `{other}`: use `ms`, `s` or `m`")),
    };
    std::time::Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())
}

impl Cli {
    /// Parses the process arguments, accepting both `cargo dyndev build`
    /// (argv: `cargo-dyndev dyndev build`) and `cargo-dyndev build`.
    pub fn from_env() -> Result<Dyndev, clap::Error> {
        let mut args: Vec<OsString> = std::env::args_os().collect();
        if args.get(1).is_none_or(|a| a != "dyndev") {
            args.insert(1, "dyndev".into());
        }
        Cli::try_parse_from(args).map(|Cli::Dyndev(d)| d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Dyndev {
        let Cli::Dyndev(d) = Cli::try_parse_from(args).unwrap();
        d
    }

    #[test]
    fn build_flags_round_trip_to_cargo() {
        let d = parse(&[
            "cargo",
            "dyndev",
            "build",
            "-p",
            "game",
            "--bin",
            "client",
            "-F",
            "fast",
            "--no-default-features",
            "--release",
            "--manifest-path",
            "x/Cargo.toml",
            "-vv",
            "--color",
            "never",
            "--locked",
        ]);
        let Command::Build(b) = d.command else {
            panic!("not build")
        };
        let mut out = Vec::new();
        b.packages.push_cargo_args(&mut out);
        b.targets.push_cargo_args(&mut out);
        b.features.push_cargo_args(&mut out);
        b.compile.push_build_args(&mut out);
        b.global.push_cargo_args(&mut out);
        assert_eq!(
            out,
            [
                "--package",
                "game",
                "--bin=client",
                "--features",
                "fast",
                "--no-default-features",
                "--manifest-path=x/Cargo.toml",
                "--locked",
                "--release",
                "--verbose",
                "--verbose",
                "--color=never"
            ]
        );
        assert_eq!(b.compile.profile_dir(), "release");
    }

    #[test]
    fn run_takes_program_arguments_after_double_dash() {
        let d = parse(&[
            "cargo",
            "dyndev",
            "run",
            "--example",
            "demo",
            "--",
            "-x",
            "--help",
        ]);
        let Command::Run(r) = d.command else {
            panic!("not run")
        };
        assert_eq!(r.executable.example.as_deref(), Some("demo"));
        assert_eq!(r.args, ["-x", "--help"]);
    }

    #[test]
    fn bare_bin_asks_cargo_for_the_list() {
        let d = parse(&["cargo", "dyndev", "build", "--bin"]);
        let Command::Build(b) = d.command else {
            panic!("not build")
        };
        let mut out = Vec::new();
        b.targets.push_cargo_args(&mut out);
        assert_eq!(out, ["--bin"]);
    }

    #[test]
    fn profile_dirs_follow_cargo() {
        let mut c = CompileArgs::default();
        assert_eq!(c.profile_dir(), "debug");
        c.profile = Some("bench".into());
        assert_eq!(c.profile_dir(), "release");
        c.profile = Some("fast-dev".into());
        assert_eq!(c.profile_dir(), "fast-dev");
    }

    #[test]
    fn watch_defaults_to_run_and_takes_modes() {
        let d = parse(&[
            "cargo", "dyndev", "watch", "-p", "game", "--grace", "500ms", "--", "--level", "3",
        ]);
        let Command::Watch(w) = d.command else {
            panic!("not watch")
        };
        assert!(w.mode.is_none());
        assert_eq!(w.run.executable.package.as_deref(), Some("game"));
        assert_eq!(w.run.args, ["--level", "3"]);
        assert_eq!(w.watch.grace, std::time::Duration::from_millis(500));

        let d = parse(&[
            "cargo",
            "dyndev",
            "watch",
            "test",
            "parse",
            "--clear",
            "-q",
            "--",
            "--nocapture",
        ]);
        let Command::Watch(w) = d.command else {
            panic!("not watch")
        };
        let Some(WatchMode::Test(t)) = w.mode else {
            panic!("not watch test")
        };
        assert_eq!(t.test.filter.as_deref(), Some("parse"));
        assert!(t.watch.clear && t.test.global.quiet);
        assert_eq!(t.test.args, ["--nocapture"]);
    }

    #[test]
    fn watch_keeps_the_first_v_for_itself() {
        let cargo_args = |args: &[&str]| {
            let d = parse(args);
            let global = match &d.command {
                Command::Watch(w) => w.global().for_watch(),
                Command::Build(b) => b.global.clone(),
                _ => panic!("not watch or build"),
            };
            let mut out = Vec::new();
            global.push_cargo_args(&mut out);
            (global.verbosity(), out)
        };
        assert_eq!(
            cargo_args(&["cargo", "dyndev", "watch", "--hot", "-v"]),
            (Verbosity::Normal, vec![])
        );
        assert_eq!(
            cargo_args(&["cargo", "dyndev", "watch", "-vv", "--", "-v"]),
            (Verbosity::Verbose, vec!["--verbose".to_owned()])
        );
        assert_eq!(
            cargo_args(&["cargo", "dyndev", "watch", "test", "-v"]),
            (Verbosity::Normal, vec![])
        );
        assert_eq!(
            cargo_args(&["cargo", "dyndev", "watch", "-q"]).1,
            ["--quiet"]
        );
        // Cargo's own commands take `-v` as cargo does.
        assert_eq!(
            cargo_args(&["cargo", "dyndev", "build", "-v"]).1,
            ["--verbose"]
        );
    }

    #[test]
    fn durations_read_as_people_write_them() {
        use std::time::Duration;
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3h").is_err());
    }

    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
