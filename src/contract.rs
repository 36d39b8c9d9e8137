//! The contract between the driver and its helpers: the names this
//! executable runs under inside cargo's, rustc's and the watcher's
//! processes, the environment variables that carry their inputs, and the
//! records they write for each other. Driver and helpers alike import it;
//! it imports nothing of theirs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The names the helpers run under (each a link to this executable).
pub mod names {
    /// Cargo's `RUSTC_WORKSPACE_WRAPPER`: every member compilation.
    pub const WRAPPER: &str = "dyndev-rustc-wrapper";
    /// rustc's linker.
    pub const LINKER: &str = "dyndev-linker";
    /// Cargo's rustdoc while tests build: records doctest commands.
    pub const RUSTDOC: &str = "dyndev-rustdoc";
    /// `compare`'s `RUSTC_WRAPPER`: times each compilation.
    pub const TIMER: &str = "dyndev-rustc-timer";
    /// `watch`'s innermost rustc wrapper: records rustc commands.
    pub const CAPTURE: &str = "dyndev-rustc-capture";
    /// `watch`'s guard: the program's parent and subreaper.
    pub const GUARD: &str = "dyndev-watch-guard";
}

/// The variables the driver (or a helper) sets for a helper, by reader.
pub mod env {
    // The rustc wrapper, set by the driver on cargo's environment.

    /// The state dir.
    pub const STATE_DIR: &str = "__CARGO_DYNDEV_STATE";
    /// The bundle id members are compiled against. Written into each
    /// member's dep-info, so cargo rebuilds members when it changes.
    pub const BUNDLE: &str = "CARGO_DYNDEV_BUNDLE";
    /// `BUNDLE` value: probe every member.
    pub const PROBE: &str = "probe";
    /// `BUNDLE` value: there is no bundle yet.
    pub const NONE: &str = "none";
    /// The journal of this build.
    pub const RUN: &str = "__CARGO_DYNDEV_RUN";
    /// Comma-separated crate names of the members' libraries.
    pub const MEMBER_LIBS: &str = "__CARGO_DYNDEV_MEMBER_LIBS";
    /// Comma-separated crate names of the members' libraries that host
    /// code links, compiled as cargo compiles them.
    pub const HOST_LINKED_LIBS: &str = "__CARGO_DYNDEV_HOST_LINKED_LIBS";
    /// A `RUSTC_WORKSPACE_WRAPPER` the user had set, run inside ours.
    pub const INNER_WRAPPER: &str = "__CARGO_DYNDEV_INNER_WRAPPER";

    // The linker proxy.

    /// The linker mode, as JSON (`compare`'s choice of linker).
    pub const LINKER_MODE: &str = "__CARGO_DYNDEV_LINKER_MODE";
    /// Where link records are appended, one JSON line each
    /// ([`super::LinkRecord`]).
    pub const LINK_LOG: &str = "__CARGO_DYNDEV_LINK_LOG";
    /// A file of symbol names, one a line, to export from the output.
    pub const EXPORTS: &str = "__CARGO_DYNDEV_EXPORTS";
    /// The linker to run, when the user configured one; else `cc`, as rustc.
    pub const REAL_LINKER: &str = "__CARGO_DYNDEV_REAL_LINKER";
    /// Write the arguments to this file, as a JSON array, and link nothing.
    pub const RECORD_ONLY: &str = "__CARGO_DYNDEV_RECORD_ONLY";
    /// Keep each link's inputs under this directory ([`crate::kept`]).
    pub const KEEP: &str = "__CARGO_DYNDEV_KEEP_LINK";
    /// With `KEEP`: keep the inputs and link nothing.
    pub const KEEP_ONLY: &str = "__CARGO_DYNDEV_KEEP_ONLY";
    /// The cutoff's store: link a program against shared versions of the
    /// workspace libraries ([`crate::cutoff::shared`]).
    pub const SHARED_LIBS: &str = "__CARGO_DYNDEV_SHARED_LIBS";

    // The rustdoc recorder.

    /// The rustdoc to run for anything but doctests.
    pub const REAL_RUSTDOC: &str = "__CARGO_DYNDEV_REAL_RUSTDOC";
    /// The directory doctest commands are recorded in.
    pub const DOCTEST_RECORD: &str = "__CARGO_DYNDEV_DOCTEST_RECORD";

    // The rustc timer.

    /// Where compile records are appended, one JSON line each.
    pub const RUSTC_LOG: &str = "__CARGO_DYNDEV_RUSTC_LOG";
    /// `compare`'s linker proxy, which the rustc timer gives every compile
    /// as `-C linker` (a linker from cargo's configuration would enter
    /// every unit's fingerprint, and the user's build dir would see them
    /// all as changed).
    pub const TIMER_LINKER: &str = "__CARGO_DYNDEV_TIMER_LINKER";

    // The capture, set by `watch`.

    /// Where captured commands are written, one JSON file per unit.
    pub const CAPTURE_DIR: &str = "__CARGO_DYNDEV_CAPTURE_DIR";
    /// The user's own workspace wrapper, run by the capture.
    pub const CAPTURE_INNER: &str = "__CARGO_DYNDEV_CAPTURE_INNER";
    /// Set by the cutoff when it compiles a library into a stage: the out
    /// dir cargo gave, which a replay writes to.
    pub const CAPTURE_OUT_DIR: &str = "__CARGO_DYNDEV_CAPTURE_OUT_DIR";
    /// `watch --hot`: the linker proxy executables link through, keeping
    /// their objects under `HOT_KEEP` for reload.
    pub const HOT_LINKER: &str = "__CARGO_DYNDEV_HOT_LINKER";
    pub const HOT_KEEP: &str = "__CARGO_DYNDEV_HOT_KEEP";

    /// Whether a variable is one of dyndev's: no program of the user's
    /// sees them.
    pub fn is_dyndevs(key: &str) -> bool {
        key.starts_with("__CARGO_DYNDEV_") || key.starts_with("CARGO_DYNDEV_")
    }
}

/// The identity of a file: whether it is still the one a record names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub mtime_ns: i128,
}

impl FileId {
    pub fn of(path: &Path) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileId {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        })
    }
}

/// One link, as logged by the linker proxy (and by the cutoff when it
/// links a program again or points it at new code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// The file written (`-o`).
    pub output: PathBuf,
    pub linker: String,
    pub millis: u64,
    /// Peak resident memory of the linker, in KiB.
    pub max_rss_kib: u64,
    pub success: bool,
}

impl LinkRecord {
    /// Appends the record to the log `LINK_LOG` names, if one does.
    pub fn log(&self) {
        if let Some(log) = std::env::var_os(env::LINK_LOG) {
            let _ = crate::measure::append_json_line(Path::new(&log), self);
        }
    }
}

/// One compilation, as logged by the rustc timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompileRecord {
    pub crate_name: String,
    /// `CARGO_PKG_NAME` of the unit.
    pub package: String,
    /// Wall time of rustc, its link included.
    pub millis: u64,
}
