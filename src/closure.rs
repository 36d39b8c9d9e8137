//! The exact dependency closure of a compiled crate, as rustc itself sees
//! it. A program of one line, `extern crate the_crate;`, is compiled with
//! the linker proxy in record-only mode: every rlib rustc asks it to link
//! is in the crate's graph. Cargo's own views (`cargo metadata`, feature
//! resolution) over- or under-approximate; this does not. Cached by the
//! crate's rlib and its mtime, so it runs once per dependency per
//! `Cargo.lock`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// How to compile the probes: the members' compiler and search paths.
#[derive(Debug)]
pub struct Prober<'a> {
    pub rustc: &'a Path,
    pub target: Option<&'a str>,
    /// `-L` values of the members' compilations.
    pub search_paths: &'a [String],
    /// Where probes and the cache are written.
    pub dir: &'a Path,
    /// The linker proxy.
    pub proxy: &'a Path,
}

/// A crate's closure: every unit in its graph (itself included) by stem,
/// with its rlib.
pub type Closure = BTreeMap<String, PathBuf>;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Cache {
    entries: BTreeMap<String, CacheEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CacheEntry {
    mtime: u128,
    closure: Closure,
}

impl Prober<'_> {
    /// The closure of each crate (stem -> rlib), or why it could not be read.
    pub fn closures(
        &self,
        crates: &BTreeMap<String, PathBuf>,
    ) -> Result<BTreeMap<String, Result<Closure, String>>> {
        crate::fs::create_dir_all(self.dir)?;
        let cache_file = self.dir.join("closures.json");
        let mut cache: Cache = std::fs::read(&cache_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let mut out = BTreeMap::new();
        let mut todo = Vec::new();
        for (stem, rlib) in crates {
            let mtime = crate::fs::mtime_nanos(rlib).unwrap_or_default();
            match cache.entries.get(stem) {
                Some(e) if e.mtime == mtime && mtime != 0 => {
                    out.insert(stem.clone(), Ok(e.closure.clone()));
                }
                _ => todo.push((stem.clone(), rlib.clone(), mtime)),
            }
        }
        let results = crate::pool::parallel_map(&todo, |(stem, rlib, _)| self.probe(stem, rlib));
        for ((stem, _, mtime), result) in todo.into_iter().zip(results) {
            let result = result?;
            if let Ok(closure) = &result {
                cache.entries.insert(
                    stem.clone(),
                    CacheEntry {
                        mtime,
                        closure: closure.clone(),
                    },
                );
            }
            out.insert(stem, result);
        }
        // Only what this build asked about: the cache cannot grow for ever.
        cache.entries.retain(|stem, _| crates.contains_key(stem));
        let json = serde_json::to_vec(&cache).context("failed to serialize closures")?;
        crate::fs::write_atomic(&cache_file, &json)?;
        Ok(out)
    }

    /// One probe. `Err(String)` when rustc cannot link a program with the
    /// crate (the reason, for `plan`); `Err(anyhow)` when rustc did not run.
    fn probe(&self, stem: &str, rlib: &Path) -> Result<Result<Closure, String>> {
        let name = format!("probe_{}", stem.replace('-', "_"));
        let src = self.dir.join(format!("{name}.rs"));
        let record = self.dir.join(format!("{name}.json"));
        crate::fs::write_atomic(
            &src,
            format!("#![allow(unused_extern_crates)]\nextern crate {name};\nfn main() {{}}\n")
                .as_bytes(),
        )?;
        let _ = std::fs::remove_file(&record);
        let mut cmd = Command::new(self.rustc);
        if let Some(t) = self.target {
            cmd.args(["--target", t]);
        }
        cmd.args(["--crate-name", "dyndev_probe", "--edition=2021"])
            .args(["--crate-type", "bin", "--emit=link", "--cap-lints", "allow"])
            .arg("-o")
            .arg(self.dir.join(&name))
            .arg(&src)
            .arg("--extern")
            .arg(format!("{name}={}", rlib.display()))
            .args(self.search_paths.iter().flat_map(|p| ["-L", p.as_str()]))
            .arg("-C")
            .arg(format!("linker={}", self.proxy.display()))
            .env(crate::contract::env::RECORD_ONLY, &record);
        let out = cmd
            .output()
            .with_context(|| format!("failed to run `{}`", self.rustc.display()))?;
        let _ = std::fs::remove_file(&src);
        if !out.status.success() || !record.exists() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let first = stderr
                .lines()
                .find(|l| l.starts_with("error"))
                .unwrap_or("rustc could not link a program using it");
            return Ok(Err(first.to_owned()));
        }
        let args: Vec<String> = serde_json::from_slice(&crate::fs::read(&record)?)
            .with_context(|| format!("failed to parse `{}`", record.display()))?;
        let _ = std::fs::remove_file(&record);
        Ok(Ok(rlibs_in(&args, &self.dirs())))
    }

    /// The directories members find dependencies in.
    fn dirs(&self) -> Vec<PathBuf> {
        self.search_paths
            .iter()
            .filter_map(|p| match p.split_once('=') {
                Some(("dependency" | "crate" | "all", dir)) => Some(PathBuf::from(dir)),
                Some(_) => None,
                None => Some(PathBuf::from(p)),
            })
            .collect()
    }
}

/// The rlibs in a link command that live in one of `dirs` (the standard
/// library's do not), by stem. rustc may hand the linker a copy of an rlib,
/// so each is named by its file name and found again in `dirs`.
fn rlibs_in(args: &[String], dirs: &[PathBuf]) -> Closure {
    let mut out = Closure::new();
    for arg in args {
        let path = Path::new(arg.strip_prefix("-l:").unwrap_or(arg));
        let (Some(stem), Some(file)) = (crate::rustc_args::unit_stem_of(path), path.file_name())
        else {
            continue;
        };
        if path.extension().is_none_or(|e| e != "rlib") {
            continue;
        }
        if let Some(found) = dirs.iter().map(|d| d.join(file)).find(|p| p.exists()) {
            out.insert(stem.to_owned(), found);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_builds_own_rlibs_count() {
        let dir = tempfile::tempdir().unwrap();
        let deps = dir.path().join("deps");
        std::fs::create_dir_all(&deps).unwrap();
        std::fs::write(deps.join("libmemchr-1.rlib"), b"").unwrap();
        std::fs::write(deps.join("libserde_json-2.rlib"), b"").unwrap();
        let args: Vec<String> = [
            "-m64".to_owned(),
            "/tmp/rustcXYZ/libserde_json-2.rlib".to_owned(),
            deps.join("libmemchr-1.rlib").display().to_string(),
            "/sysroot/lib/libstd-3.rlib".to_owned(),
            "-o".to_owned(),
            "probe".to_owned(),
        ]
        .into();
        let found = rlibs_in(&args, std::slice::from_ref(&deps));
        assert_eq!(
            found.keys().collect::<Vec<_>>(),
            ["libmemchr-1", "libserde_json-2"]
        );
        assert_eq!(found["libserde_json-2"], deps.join("libserde_json-2.rlib"));
    }
}
