//! A link that failed for want of room, told from the linker's words: the
//! file system it writes to is full (ENOSPC), a linker writing through a
//! memory map into a full tmpfs died of SIGBUS, or the kernel killed it
//! when memory ran out (SIGKILL). No dependency is to blame, and keeping
//! one out of the bundle would not help: the user needs to know how much
//! room is wanted, and where.

use std::fmt;
use std::path::{Path, PathBuf};

/// What a link ran out of, as its output shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortage {
    /// ENOSPC (or EDQUOT): the file system is full.
    Space,
    /// The linker died of SIGBUS: what writing through a memory map into a
    /// full file system does.
    BusError,
    /// The linker was killed (SIGKILL), as the kernel kills a process when
    /// memory runs out.
    Killed,
}

/// Words of the linker, the C compiler driver, rustc, the linker proxy
/// and Rust's `ExitStatus` that tell each shortage, strongest first.
const SIGNS: &[(Shortage, &[&str])] = &[
    (
        Shortage::Space,
        &["No space left on device", "Disk quota exceeded", "ENOSPC"],
    ),
    (
        Shortage::BusError,
        &["signal 7 [Bus error]", "(SIGBUS)", "Bus error"],
    ),
    (Shortage::Killed, &["signal 9 [Killed]", "(SIGKILL)"]),
];

/// The shortage a failed link's output shows, and the line that shows it.
pub(super) fn shortage(output: &str) -> Option<(Shortage, String)> {
    // The linker's words only: rustc quotes the whole command line too.
    let lines: Vec<&str> = output
        .lines()
        .filter(|l| !l.contains("\" \""))
        .map(|l| l.trim().trim_start_matches("= note:").trim())
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect();
    SIGNS.iter().find_map(|(shortage, signs)| {
        lines
            .iter()
            .find(|l| signs.iter().any(|s| l.contains(s)))
            .map(|l| (*shortage, (*l).to_owned()))
    })
}

/// Free space for an unprivileged user on the file system of `dir`.
pub(super) fn free_space(dir: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

/// A link of the bundle that failed for want of room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoRoom {
    pub shortage: Shortage,
    /// The library being linked.
    pub file: PathBuf,
    /// Where it was being written.
    pub dir: PathBuf,
    /// Free space there after the failure, when known.
    pub free: Option<u64>,
    /// About what the library needs: the size of the rlibs it links.
    pub needed: u64,
    /// The linker's line that told.
    pub said: String,
    /// The link's whole output.
    pub log: PathBuf,
}

impl fmt::Display for NoRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = self.dir.display();
        let name = self
            .file
            .file_name()
            .unwrap_or(self.file.as_os_str())
            .to_string_lossy();
        f.write_str("failed to link the bundle: ")?;
        match self.shortage {
            Shortage::Space => write!(f, "no space left on the file system of `{dir}`")?,
            Shortage::BusError => write!(
                f,
                "the linker died of SIGBUS writing into `{dir}`, as it does when that file \
                 system (a tmpfs, say) has no space left"
            )?,
            Shortage::Killed => write!(
                f,
                "the linker was killed (SIGKILL), as the kernel kills a process when memory \
                 runs out (a tmpfs, if `{dir}` is on one, takes its space from memory too)"
            )?,
        }
        write!(
            f,
            "\n\n`{name}` needs about {} there (the size of the rlibs it links)",
            crate::shell::human_size(self.needed)
        )?;
        if let Some(free) = self.free {
            write!(f, "; {} free", crate::shell::human_size(free))?;
        }
        write!(
            f,
            "\nthe linker said: {}\n(its whole output: `{}`)\n\nhelp: ",
            self.said,
            self.log.display()
        )?;
        match self.shortage {
            Shortage::Space | Shortage::BusError => f.write_str(
                "make room there and build again (`cargo clean` empties the target dir), \
                 or build into a file system with room (`--target-dir`, `CARGO_TARGET_DIR`)",
            ),
            Shortage::Killed => f.write_str(
                "free memory (or room in that file system) and build again, or build into \
                 a file system on disk (`--target-dir`, `CARGO_TARGET_DIR`)",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// rust-lld through `cc`, out of space in a 20 MB tmpfs (captured).
    const LLD_ON_A_FULL_TMPFS: &str = r#"error: linking with `/t/dyndev/debug/bundle/mini-95f8837d/bin/dyndev-linker` failed: exit status: 1
  |
  = note:  "/t/dyndev/debug/bundle/mini-95f8837d/bin/dyndev-linker" "-Wl,--version-script=/t/lib/rustcNMkhYb/list" "-m64" "/t/dyndev/debug/deps/libitoa-6c1e270c698fa6a6.rlib" "-o" "/t/lib/libdyndev_bundle_33a49c296712.so" "-shared"
  = note: some arguments are omitted. use `--verbose` to show all linker arguments
  = note: PLEASE submit a bug report to https://github.com/llvm/llvm-project/issues/ and include the crash backtrace and instructions to reproduce the bug.
          collect2: fatal error: ld terminated with signal 7 [Bus error]
          compilation terminated.
          

error: aborting due to 1 previous error

"#;

    /// GNU ld, the same (captured).
    const BFD_ON_A_FULL_TMPFS: &str = r#"error: linking with `/t/bin/dyndev-linker` failed: exit status: 1
  |
  = note:  "/t/bin/dyndev-linker" "-m64" "/t/deps/libitoa-6c1e270c698fa6a6.rlib" "-o" "/t/lib/libdyndev_bundle_280822cbdf5d.so"
  = note: some arguments are omitted. use `--verbose` to show all linker arguments
  = note: /usr/bin/ld.bfd: final link failed: No space left on device
          collect2: error: ld returned 1 exit status
          

error: aborting due to 1 previous error
"#;

    #[test]
    fn a_full_disk_is_told_from_the_linkers_words() {
        assert_eq!(
            shortage(LLD_ON_A_FULL_TMPFS),
            Some((
                Shortage::BusError,
                "collect2: fatal error: ld terminated with signal 7 [Bus error]".into()
            ))
        );
        assert_eq!(
            shortage(BFD_ON_A_FULL_TMPFS),
            Some((
                Shortage::Space,
                "/usr/bin/ld.bfd: final link failed: No space left on device".into()
            ))
        );
        // The linker proxy, when the driver itself dies; and rustc, when
        // the proxy does.
        assert_eq!(
            shortage("  = note: error: the linker `cc` was killed by signal 9 (SIGKILL)")
                .map(|s| s.0),
            Some(Shortage::Killed)
        );
        assert_eq!(
            shortage("error: linking with `cc` failed: signal: 7 (SIGBUS) (core dumped)")
                .map(|s| s.0),
            Some(Shortage::BusError)
        );
        assert_eq!(
            shortage("error: could not write output to x.o: No space left on device").map(|s| s.0),
            Some(Shortage::Space)
        );
    }

    #[test]
    fn other_failures_and_the_command_line_are_no_shortage() {
        let relocation = r#"error: linking with `cc` failed: exit status: 1
  = note:  "cc" "/t/deps/libbus_error-1.rlib" "/t/deps/libkilled-2.rlib" "-o" "x.so"
  = note: rust-lld: error: relocation R_X86_64_TPOFF32 against counter cannot be used with -shared
"#;
        assert_eq!(shortage(relocation), None);
        // A path that names a crate of that name is not the linker saying so.
        assert_eq!(
            shortage(r#"  = note:  "cc" "/t/deps/Bus error/libx-1.rlib" "-o" "x.so""#),
            None
        );
    }

    #[test]
    fn says_what_ran_out_how_much_is_needed_and_where() {
        let no_room = NoRoom {
            shortage: Shortage::BusError,
            file: "/t/lib/libdyndev_bundle_1.so".into(),
            dir: "/t/lib".into(),
            free: Some(40 * 1024),
            needed: 3 * 1024 * 1024,
            said: "collect2: fatal error: ld terminated with signal 7 [Bus error]".into(),
            log: "/t/lib/dyndev_bundle_1.log".into(),
        };
        assert_eq!(
            no_room.to_string(),
            "failed to link the bundle: the linker died of SIGBUS writing into `/t/lib`, as it \
             does when that file system (a tmpfs, say) has no space left\n\n\
             `libdyndev_bundle_1.so` needs about 3.0 MiB there (the size of the rlibs it \
             links); 40.0 KiB free\n\
             the linker said: collect2: fatal error: ld terminated with signal 7 [Bus error]\n\
             (its whole output: `/t/lib/dyndev_bundle_1.log`)\n\n\
             help: make room there and build again (`cargo clean` empties the target dir), \
             or build into a file system with room (`--target-dir`, `CARGO_TARGET_DIR`)"
        );
        assert!(!no_room.to_string().contains("exclude"));
    }
}
