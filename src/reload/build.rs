//! Building the new code of an edited crate as a shared library that can
//! be loaded into the running program, from the rustc command that built
//! the running code.
//!
//! The crate is compiled again with the very same arguments, crate type
//! included, so its symbols keep their names: rustc's legacy mangling
//! hashes the crate's identity (name, `-C metadata`, whether it is an
//! executable) but not function bodies. Only the output changes: position
//! independent code (`-C relocation-model=pic`, since an executable's code
//! may assume it is not in a library) linked `-shared`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::kept::KeptLink;

/// Cargo's jobserver: its file descriptors are gone outside the build.
const JOBSERVER: &[&str] = &["CARGO_MAKEFLAGS", "MAKEFLAGS", "MFLAGS"];

/// The rustc command that built a crate of the running program, as the
/// rustc wrapper saw it (after dyndev's own changes).
#[derive(Debug, Clone)]
pub struct Invocation {
    /// rustc, then its arguments.
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// The whole environment rustc ran in (`env!` reads `CARGO_*`).
    pub env: Vec<(String, String)>,
}

/// How the patch library is linked.
#[derive(Debug, Clone, Copy, Default)]
pub struct PatchLink {
    /// The address to ask to be mapped at.
    pub base: Option<u64>,
    /// Let the link through despite local-exec thread-local accesses.
    pub local_exec_tls: bool,
}

impl BuildFailed {
    /// Whether every linker error is a local-exec thread-local access,
    /// which reload can fix after loading (and only those).
    pub fn only_local_exec_tls(&self) -> bool {
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.contains("lld: error:") || l.contains("ld: error:"))
            .collect();
        let compile_errors = self.stderr.lines().any(|l| l.starts_with("error["));
        !compile_errors
            && !errors.is_empty()
            && errors.iter().all(|l| l.contains("R_X86_64_TPOFF32"))
    }
}

/// A compile error or a failed link: the old code keeps running.
#[derive(Debug)]
pub struct BuildFailed {
    pub stderr: String,
}

impl std::fmt::Display for BuildFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the new code did not build:\n{}", self.stderr)
    }
}

impl std::error::Error for BuildFailed {}

impl Invocation {
    /// Reads what a recording wrapper saved: `args` (NUL-separated argv),
    /// `env` (NUL-separated `KEY=VALUE`, as `env -0` prints) and `cwd`.
    pub fn read_recorded(dir: &Path) -> Result<Invocation> {
        let split = |name: &str| -> Result<Vec<String>> {
            let text = crate::fs::read_to_string(&dir.join(name))?;
            Ok(text
                .split('\0')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect())
        };
        let argv = split("args")?;
        let env = split("env")?
            .into_iter()
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
            })
            .collect();
        let cwd = PathBuf::from(crate::fs::read_to_string(&dir.join("cwd"))?.trim_end());
        Ok(Invocation { argv, cwd, env })
    }

    /// A command `cargo dyndev watch` captured (its innermost rustc
    /// wrapper sees the final command line): the program (rustc, or the
    /// user's wrapper then rustc) and its arguments.
    pub fn from_capture(capture: &crate::helpers::capture::Capture) -> Invocation {
        Invocation {
            argv: capture
                .program
                .iter()
                .chain(&capture.args)
                .cloned()
                .collect(),
            cwd: capture.cwd.clone(),
            env: capture.env.clone(),
        }
    }

    /// The crate's name (`--crate-name`).
    pub fn crate_name(&self) -> Option<String> {
        self.argv
            .windows(2)
            .find(|w| w[0] == "--crate-name")
            .map(|w| w[1].clone())
    }

    /// Whether the crate was built as an executable.
    pub fn is_executable(&self) -> bool {
        self.argv
            .windows(2)
            .any(|w| w[0] == "--crate-type" && w[1] == "bin")
    }

    /// The arguments that build the patch library `out`, with an
    /// incremental dir of its own so the normal build's cache is untouched.
    pub fn patch_args(&self, out: &Path, incremental: &Path, link: &PatchLink) -> Vec<String> {
        let mut args = Vec::new();
        let mut it = self.argv.iter().skip(1).peekable();
        let executable = self.is_executable();
        while let Some(a) = it.next() {
            let drop_with_value = ["--out-dir", "--emit", "--error-format", "--json", "-o"];
            if drop_with_value.contains(&a.as_str()) {
                it.next();
                continue;
            }
            if ["--out-dir=", "--emit=", "--error-format=", "--json="]
                .iter()
                .any(|p| a.starts_with(p))
            {
                continue;
            }
            if a == "-C"
                && it.peek().is_some_and(|v| {
                    v.starts_with("incremental=") || v.starts_with("extra-filename=")
                })
            {
                it.next();
                continue;
            }
            // A library member becomes a dylib: its symbols keep their
            // names (only executables hash differently).
            if !executable && a == "--crate-type" {
                it.next();
                args.extend(["--crate-type".into(), "dylib".into()]);
                continue;
            }
            args.push(a.clone());
        }
        args.extend(
            [
                "-C",
                "relocation-model=pic",
                "-C",
                "prefer-dynamic",
                "-C",
                "link-arg=-shared",
                "--emit=link",
            ]
            .map(String::from),
        );
        // Where the library asks to be mapped (glibc takes a library's
        // addresses as a hint), and the relocations kept, so its references
        // to statics can be pointed at the running program's.
        if let Some(base) = link.base {
            args.push("-C".into());
            args.push(format!("link-arg=-Wl,--image-base={base:#x}"));
        }
        // The executable's thread-locals are reached with the local-exec
        // model, which a library cannot link; reload rewrites those fields
        // itself, so the linker may leave them (and nothing else) wrong.
        if link.local_exec_tls {
            args.extend(["-C".into(), "link-arg=-Wl,--noinhibit-exec".into()]);
        }
        args.extend(["-C".into(), "link-arg=-Wl,--emit-relocs".into()]);
        args.push("-C".into());
        args.push(format!("incremental={}", incremental.display()));
        args.push("-o".into());
        args.push(out.display().to_string());
        args
    }

    /// Where the linker proxy keeps this command's links, when it links
    /// through the proxy (`watch --hot` builds do).
    pub fn keep_root(&self) -> Option<PathBuf> {
        self.env
            .iter()
            .find(|(k, _)| k == crate::contract::env::KEEP)
            .map(|(_, v)| PathBuf::from(v))
            .filter(|p| !p.as_os_str().is_empty())
    }

    /// Whether nothing the crate reads changed since it was compiled
    /// ([`crate::cutoff::unchanged`]): its new code can only be its
    /// libraries'.
    pub fn unchanged(&self) -> bool {
        let Some(state) = self.var(crate::contract::env::STATE_DIR) else {
            return false;
        };
        let members: Vec<String> = self
            .var(crate::contract::env::MEMBER_LIBS)
            .unwrap_or_default()
            .split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect();
        crate::cutoff::unchanged(Path::new(state), &members, &self.rustc_invocation())
    }

    /// The value of `key` in the command's environment.
    fn var(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(n, _)| n == key)
            .map(|(_, v)| v.as_str())
    }

    fn rustc_invocation(&self) -> crate::rustc_args::Invocation {
        crate::rustc_args::Invocation::parse(self.argv[1..].to_vec())
    }

    /// The executable this command links.
    pub fn output(&self) -> Option<PathBuf> {
        let inv = self.rustc_invocation();
        Some(inv.out_dir.clone()?.join(inv.unit_stem()?))
    }

    /// Compiles the crate with its own command, same incremental cache,
    /// and keeps the objects instead of linking them (the linker proxy's
    /// keep-only mode), with rustc's messages (its warnings) rendered. The
    /// executable on disk is left as it was.
    pub fn compile_kept(&self, root: &Path) -> Result<Result<(KeptLink, String), BuildFailed>> {
        let output = self.output().context("the command names no output")?;
        let name = output.file_name().context("an output has a name")?;
        let latest = root.join(format!("{}.json", name.to_string_lossy()));
        let _ = std::fs::remove_file(&latest);
        // The running code comes from this compile now, not the one the
        // cutoff recorded: a save that puts the sources back as they were
        // then must compile again, not find them unchanged.
        if let Some(state) = self.var(crate::contract::env::STATE_DIR) {
            crate::cutoff::forget(Path::new(state), &self.rustc_invocation());
        }
        // The command as it is, diagnostics' format included: rustc's
        // incremental cache holds for the normal build and this one alike.
        let out = self.run(&self.argv[1..], &[(crate::contract::env::KEEP_ONLY, "1")])?;
        if !out.status.success() {
            return Ok(Err(BuildFailed {
                stderr: rendered(&String::from_utf8_lossy(&out.stderr)),
            }));
        }
        let messages = rendered(&String::from_utf8_lossy(&out.stderr));
        KeptLink::latest(root, &output)
            .map(|kept| Ok((kept, messages)))
            .context("the compile kept no objects (it did not link through the linker proxy)")
    }

    /// Runs rustc with `args` where and as the command ran (`extra` added
    /// to its environment), and waits for its output.
    fn run(&self, args: &[String], extra: &[(&str, &str)]) -> Result<std::process::Output> {
        let rustc = self.argv.first().context("empty rustc command")?;
        Command::new(rustc)
            .args(args)
            .current_dir(&self.cwd)
            .env_clear()
            .envs(
                self.env
                    .iter()
                    .filter(|(k, _)| !JOBSERVER.contains(&k.as_str()))
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .envs(extra.iter().copied())
            .output()
            .with_context(|| format!("failed to run `{rustc}`"))
    }

    /// Compiles the crate into the shared library `out`; rustc's messages
    /// (its warnings) on success.
    pub fn build_patch(
        &self,
        out: &Path,
        incremental: &Path,
        link: &PatchLink,
    ) -> Result<Result<String, BuildFailed>> {
        let output = self.run(&self.patch_args(out, incremental, link), &[])?;
        if output.status.success() {
            Ok(Ok(String::from_utf8_lossy(&output.stderr).into_owned()))
        } else {
            remove_leftover_objects(out);
            Ok(Err(BuildFailed {
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }))
        }
    }
}

/// rustc's messages as a terminal shows them, from `--error-format=json`
/// lines (each with its `rendered` text; notices without one, such as
/// the artifacts it wrote, are for cargo); other lines as they are.
fn rendered(stderr: &str) -> String {
    stderr
        .lines()
        .filter_map(
            |line| match serde_json::from_str::<serde_json::Value>(line) {
                Ok(v) => v.get("rendered")?.as_str().map(str::to_owned),
                Err(_) => Some(format!("{line}\n")),
            },
        )
        .collect()
}

/// A failed link leaves rustc's objects (`NAME.*.rcgu.o`) next to `out`.
fn remove_leftover_objects(out: &Path) {
    let (Some(dir), Some(stem)) = (out.parent(), out.file_stem().and_then(|s| s.to_str())) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&format!("{stem}.")) && name.ends_with(".rcgu.o") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn json_diagnostics_are_rendered() {
        let stderr = "{\"$message_type\":\"diagnostic\",\"rendered\":\"error: no\\n\"}\nplain\n\
            {\"$message_type\":\"artifact\",\"artifact\":\"/t/app.d\",\"emit\":\"dep-info\"}\n";
        assert_eq!(rendered(stderr), "error: no\nplain\n");
    }

    #[test]
    fn captured_commands_become_invocations() {
        let capture = crate::helpers::capture::Capture {
            program: words("/t/rustc"),
            args: words("--crate-name app src/main.rs --crate-type bin"),
            env: vec![("CARGO_PKG_NAME".into(), "app".into())],
            cwd: PathBuf::from("/t"),
        };
        let inv = Invocation::from_capture(&capture);
        assert_eq!(inv.argv[0], "/t/rustc");
        assert!(inv.is_executable());
        assert_eq!(inv.env, capture.env);
    }

    #[test]
    fn patch_args_keep_identity_and_change_output() {
        let inv = Invocation {
            argv: words(
                "rustc --crate-name app --edition=2021 src/main.rs --error-format=json \
                 --json=artifacts --crate-type bin --emit=dep-info,link -C debuginfo=2 \
                 -C metadata=abc -C extra-filename=-abc --out-dir /t/deps \
                 -C incremental=/t/inc -L dependency=/t/deps -C prefer-dynamic",
            ),
            cwd: PathBuf::from("/t"),
            env: Vec::new(),
        };
        let args = inv
            .patch_args(
                Path::new("/t/p/libapp-1.so"),
                Path::new("/t/p/inc"),
                &PatchLink {
                    base: Some(0x5500_0000_0000),
                    local_exec_tls: false,
                },
            )
            .join(" ");
        assert_eq!(
            args,
            "--crate-name app --edition=2021 src/main.rs --crate-type bin -C debuginfo=2 \
             -C metadata=abc -L dependency=/t/deps -C prefer-dynamic \
             -C relocation-model=pic -C prefer-dynamic -C link-arg=-shared --emit=link \
             -C link-arg=-Wl,--image-base=0x550000000000 -C link-arg=-Wl,--emit-relocs \
             -C incremental=/t/p/inc -o /t/p/libapp-1.so"
        );
    }
}
