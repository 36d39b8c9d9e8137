//! The environment cargo gives a program it runs (`cargo run`, and each
//! test binary of `cargo test`): the package's `CARGO_*` variables, its
//! build script's `OUT_DIR` and `rustc-env` values, a library path, and
//! the `[env]` table of cargo's configuration.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Result;
use cargo_metadata::{BuildScript, Package};

use crate::layout::Layout;

/// The variables cargo sets for a program of `package`, as cargo's
/// `fill_env` sets them. `sysroot_lib` is rustc's `target-libdir`.
pub fn cargo_env(
    package: &Package,
    build_scripts: &[BuildScript],
    layout: &Layout,
    sysroot_lib: Option<&Path>,
) -> Vec<(String, OsString)> {
    let mut env: Vec<(String, OsString)> = Vec::new();
    let mut set = |k: &str, v: OsString| env.push((k.to_owned(), v));
    let mut paths: Vec<PathBuf> = native_dirs(build_scripts, &layout.target_dir);
    paths.push(layout.profile_dir.clone());
    paths.push(layout.deps_dir());
    paths.extend(sysroot_lib.map(Path::to_owned));
    let existing: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
        .map_or_else(Vec::new, |p| std::env::split_paths(&p).collect());
    if existing.starts_with(&paths) {
        paths = existing;
    } else {
        paths.extend(existing);
    }
    if let Ok(joined) = std::env::join_paths(paths) {
        set("LD_LIBRARY_PATH", joined);
    }
    for script in build_scripts.iter().filter(|s| s.package_id == package.id) {
        set("OUT_DIR", script.out_dir.as_std_path().into());
        for (k, v) in &script.env {
            set(k, v.into());
        }
    }
    set("CARGO", crate::cargo::cargo_program());
    let manifest = package.manifest_path.as_std_path();
    set(
        "CARGO_MANIFEST_DIR",
        manifest.parent().unwrap_or(manifest).into(),
    );
    set("CARGO_MANIFEST_PATH", manifest.into());
    let v = &package.version;
    set("CARGO_PKG_VERSION_MAJOR", v.major.to_string().into());
    set("CARGO_PKG_VERSION_MINOR", v.minor.to_string().into());
    set("CARGO_PKG_VERSION_PATCH", v.patch.to_string().into());
    set("CARGO_PKG_VERSION_PRE", v.pre.as_str().into());
    set("CARGO_PKG_VERSION", v.to_string().into());
    set("CARGO_PKG_NAME", package.name.as_str().into());
    let opt = |o: &Option<String>| o.clone().unwrap_or_default().into();
    set("CARGO_PKG_DESCRIPTION", opt(&package.description));
    set("CARGO_PKG_HOMEPAGE", opt(&package.homepage));
    set("CARGO_PKG_REPOSITORY", opt(&package.repository));
    set("CARGO_PKG_LICENSE", opt(&package.license));
    set(
        "CARGO_PKG_LICENSE_FILE",
        package
            .license_file
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default()
            .into(),
    );
    set("CARGO_PKG_AUTHORS", package.authors.join(":").into());
    set(
        "CARGO_PKG_RUST_VERSION",
        package
            .rust_version
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_default()
            .into(),
    );
    set(
        "CARGO_PKG_README",
        package
            .readme
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default()
            .into(),
    );
    env
}

/// `cargo_env` with the `[env]` table of cargo's configuration (as read
/// from `cwd` with the `--config` values `cli`) under it: a configured
/// variable never replaces one cargo sets, nor one already set unless
/// forced.
pub fn with_config_env(
    mut env: Vec<(String, OsString)>,
    cwd: &Path,
    cli: &[String],
) -> Result<Vec<(String, OsString)>> {
    let home = crate::cargo_config::cargo_home();
    let configured = crate::cargo_config::env_table(cwd, home.as_deref(), cli, |k| {
        std::env::var_os(k).is_some()
    })?;
    for (key, value) in configured {
        if !env.iter().any(|(k, _)| *k == key) {
            env.push((key, value));
        }
    }
    Ok(env)
}

/// Link-search dirs build scripts made inside the target dir, where cargo
/// looks for native shared libraries at run time too.
fn native_dirs(scripts: &[BuildScript], target_dir: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for s in scripts {
        for p in &s.linked_paths {
            let p = p.as_str();
            let path = Path::new(p.split_once('=').map_or(p, |(_, path)| path));
            if path.starts_with(target_dir) && !dirs.iter().any(|d| d == path) {
                dirs.push(path.to_owned());
            }
        }
    }
    dirs
}
