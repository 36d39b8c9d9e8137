//! `cargo dyndev nextest run [ARGS]`: build the tests against the bundle,
//! then hand them to cargo-nextest through its own reuse-build support.
//! nextest lists the binaries of the (now fresh) build in the wrapped
//! environment, writing its binaries metadata, and then runs them from that
//! metadata in the user's environment, so the tests see nothing of dyndev.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::cli::{CompileArgs, FeatureArgs, NextestArgs};
use crate::contract::env;
use crate::error::Failure;
use crate::ops::build::{BuildRequest, build, wrapped_cargo_command};
use crate::shell::Shell;
use crate::workspace::Workspace;

/// nextest's options that are cargo's: they select and build the tests.
/// Each with whether it takes a value.
const CARGO_OPTIONS: &[(&str, Option<char>, bool)] = &[
    ("--package", Some('p'), true),
    ("--workspace", None, false),
    ("--exclude", None, true),
    ("--all", None, false),
    ("--lib", None, false),
    ("--bin", None, true),
    ("--bins", None, false),
    ("--example", None, true),
    ("--examples", None, false),
    ("--test", None, true),
    ("--tests", None, false),
    ("--bench", None, true),
    ("--benches", None, false),
    ("--all-targets", None, false),
    ("--features", Some('F'), true),
    ("--all-features", None, false),
    ("--no-default-features", None, false),
    ("--build-jobs", None, true),
    ("--release", Some('r'), false),
    ("--cargo-profile", None, true),
    ("--target", None, true),
    ("--target-dir", None, true),
    ("--manifest-path", None, true),
    ("--frozen", None, false),
    ("--locked", None, false),
    ("--offline", None, false),
    ("--cargo-quiet", None, false),
    ("--cargo-verbose", None, false),
    ("--ignore-rust-version", None, false),
    ("--config", None, true),
];

/// nextest's arguments, split: cargo's options (as `(name, value)`), and
/// the rest, for the run.
#[derive(Debug, Default, PartialEq, Eq)]
struct Split {
    cargo: Vec<(String, Option<String>)>,
    rest: Vec<String>,
}

fn split(args: &[String]) -> Result<Split> {
    let mut out = Split::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            out.rest.push(arg.clone());
            out.rest.extend(it.by_ref().cloned());
            break;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let found = CARGO_OPTIONS.iter().find(|(long, short, _)| {
            *long == name
                || short.is_some_and(|s| {
                    let mut chars = arg.chars();
                    chars.next() == Some('-') && chars.next() == Some(s)
                })
        });
        let Some((long, short, takes_value)) = found else {
            out.rest.push(arg.clone());
            continue;
        };
        let value = if !takes_value {
            None
        } else if let Some(v) = inline {
            Some(v)
        } else if let Some(v) = short
            .map(|s| format!("-{s}"))
            .and_then(|s| arg.strip_prefix(&s).filter(|v| !v.is_empty()))
        {
            Some(v.to_owned())
        } else {
            Some(
                it.next()
                    .with_context(|| format!("`{long}` needs a value"))?
                    .clone(),
            )
        };
        out.cargo.push(((*long).to_owned(), value));
    }
    Ok(out)
}

/// The same options as cargo spells them, for dyndev's build; the target
/// dir and profile go into `compile`, the features into `features`.
fn cargo_spelling(
    options: &[(String, Option<String>)],
    compile: &mut CompileArgs,
    features: &mut FeatureArgs,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, value) in options {
        let v = value.clone().unwrap_or_default();
        match name.as_str() {
            "--target-dir" => compile.target_dir = Some(PathBuf::from(v)),
            "--manifest-path" => compile.manifest_path = Some(PathBuf::from(v)),
            "--release" => compile.release = true,
            "--cargo-profile" => compile.profile = Some(v),
            "--build-jobs" => compile.jobs = Some(v),
            "--locked" => compile.locked = true,
            "--offline" => compile.offline = true,
            "--frozen" => compile.frozen = true,
            "--config" => compile.config.push(v),
            "--features" => features.features.push(v),
            "--all-features" => features.all_features = true,
            "--no-default-features" => features.no_default_features = true,
            "--all" => out.push("--workspace".into()),
            "--cargo-quiet" => out.push("--quiet".into()),
            "--cargo-verbose" => out.push("--verbose".into()),
            _ => {
                out.push(name.clone());
                out.extend(value.clone());
            }
        }
    }
    out
}

pub fn exec(shell: &Shell, args: &NextestArgs) -> Result<()> {
    let Some((sub, args_rest)) = args.args.split_first() else {
        bail!("expected a nextest command: `cargo dyndev nextest run [ARGS]`");
    };
    if sub != "run" {
        bail!("only `cargo dyndev nextest run` is supported, not `{sub}`");
    }
    let split = split(args_rest)?;
    let mut compile = CompileArgs::default();
    let mut features = FeatureArgs::default();
    let mut cargo_args = cargo_spelling(&split.cargo, &mut compile, &mut features);
    features.push_cargo_args(&mut cargo_args);
    compile.push_build_args(&mut cargo_args);
    args.global.push_cargo_args(&mut cargo_args);
    cargo_args.push("--no-run".into());

    let ws = Workspace::load(shell, &compile)?;
    let req = BuildRequest::new(shell, &ws, "test", cargo_args, &features, &compile);
    let outcome = build(&req)?;
    let bundle_env = outcome.bundle.as_ref().map_or(env::NONE, |b| b.id.as_str());

    // nextest's own list of the binaries: it asks cargo, which finds every
    // unit fresh in the wrapped environment.
    let meta_dir = req.layout.state_dir.join("nextest");
    crate::fs::create_dir_all(&meta_dir)?;
    let binaries = meta_dir.join("binaries-metadata.json");
    let mut list = wrapped_cargo_command(&req, &["nextest", "list"], bundle_env, "nextest")?;
    list.args(["--list-type", "binaries-only", "--message-format", "json"]);
    for (name, value) in &split.cargo {
        if !matches!(
            name.as_str(),
            "--target-dir" | "--cargo-quiet" | "--cargo-verbose"
        ) {
            list.arg(name).args(value);
        }
    }
    // The build above showed cargo's output; this pass compiles nothing.
    list.arg("--cargo-quiet");
    list.arg(format!("--target-dir={}", req.layout.target_dir.display()));
    let mut listed = list.output(shell)?;
    if !ws.build_dir_configured {
        listed = beside_programs(&listed, &req.layout)?;
    }
    crate::fs::write_atomic(&binaries, &listed)?;
    let metadata = meta_dir.join("cargo-metadata.json");
    let mut meta = crate::cargo::CargoCommand::new("metadata");
    let mut meta_args = vec!["--format-version=1".to_owned()];
    compile.push_workspace_args(&mut meta_args);
    meta.args(meta_args);
    crate::fs::write_atomic(&metadata, &meta.output(shell)?)?;

    // The run, in the user's environment: nextest builds nothing.
    let mut run = crate::cargo::CargoCommand::new("nextest");
    run.arg("run")
        .arg(format!("--binaries-metadata={}", binaries.display()))
        .arg(format!("--cargo-metadata={}", metadata.display()))
        .args(split.rest.iter().map(OsString::from));
    let status = run.status(shell)?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::Cargo {
            code: crate::cargo::exit_code(status),
        }
        .into())
    }
}

/// nextest's list of binaries with each test binary run from beside the
/// build's programs, as `cargo dyndev test` runs them
/// ([`crate::test_binaries::beside_programs`]).
fn beside_programs(listed: &[u8], layout: &crate::layout::Layout) -> Result<Vec<u8>> {
    let mut list: serde_json::Value =
        serde_json::from_slice(listed).context("nextest's list of binaries is not JSON")?;
    if let Some(binaries) = list
        .get_mut("rust-binaries")
        .and_then(serde_json::Value::as_object_mut)
    {
        for binary in binaries.values_mut() {
            let Some(path) = binary.get_mut("binary-path") else {
                continue;
            };
            if let Some(exe) = path.as_str() {
                let placed = crate::test_binaries::beside_programs(Path::new(exe), layout)?;
                *path = serde_json::Value::String(placed.to_string_lossy().into_owned());
            }
        }
    }
    Ok(serde_json::to_vec(&list)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn cargos_options_go_to_the_build_the_rest_to_the_run() {
        let s = split(&strings(
            "-p app --no-fail-fast -E test(foo) -Fserde --test=it -j 2 --release -- --ignored",
        ))
        .unwrap();
        assert_eq!(
            s.cargo,
            vec![
                ("--package".into(), Some("app".into())),
                ("--features".into(), Some("serde".into())),
                ("--test".into(), Some("it".into())),
                ("--release".into(), None),
            ]
        );
        assert_eq!(
            s.rest,
            strings("--no-fail-fast -E test(foo) -j 2 -- --ignored")
        );
        let mut compile = CompileArgs::default();
        let mut features = FeatureArgs::default();
        let cargo = cargo_spelling(&s.cargo, &mut compile, &mut features);
        assert_eq!(cargo, strings("--package app --test it"));
        assert!(compile.release);
        assert_eq!(features.features, ["serde"]);
    }
}
