//! Failures a user can meet, each mapped to a documented exit code.
//! Plumbing errors travel as `anyhow::Error` and exit with [`code::FAILURE`].

use std::fmt;

/// Exit codes, as documented in the README.
pub mod code {
    /// Everything worked.
    pub const SUCCESS: i32 = 0;
    /// dyndev itself could not do its job (I/O, a bundle that failed to link).
    pub const FAILURE: i32 = 1;
    /// The command line is wrong.
    pub const USAGE: i32 = 2;
    /// Cargo failed: the workspace could not be read, the build failed, or
    /// the selection names nothing. Cargo uses the same code.
    pub const CARGO: i32 = 101;
    /// Stopped by Ctrl-C (SIGINT): 128 + 2, as shells and cargo report it.
    pub const INTERRUPTED: i32 = 130;
}

/// An expected failure, carrying what the user needs to act on it.
#[derive(Debug)]
pub enum Failure {
    /// Cargo failed and already printed why; exit with its code and say
    /// nothing more, so no error is printed twice.
    Cargo { code: i32 },
    /// The selection names no runnable target, or too many: cargo's wording,
    /// cargo's exit code.
    Selection(String),
    /// The build asks for something dynamic linking cannot give.
    Unsupported { setting: String, profile: String },
    /// Ctrl-C stopped the command, which has already said what it did.
    Interrupted,
    /// Linking the bundle ran out of room (disk or memory), not a
    /// dependency's fault: what ran out, how much is needed, and where
    /// (the bundle's own words).
    NoRoom(String),
}

impl Failure {
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Cargo { code } => *code,
            Failure::Selection(_) => code::CARGO,
            Failure::Unsupported { .. } => code::FAILURE,
            Failure::Interrupted => code::INTERRUPTED,
            Failure::NoRoom(_) => code::FAILURE,
        }
    }

    /// Whether the message was already shown (by cargo).
    pub fn is_silent(&self) -> bool {
        matches!(self, Failure::Cargo { .. } | Failure::Interrupted)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Cargo { code } => write!(f, "cargo exited with status {code}"),
            Failure::Selection(message) => f.write_str(message),
            Failure::Interrupted => f.write_str("interrupted"),
            Failure::NoRoom(message) => f.write_str(message),
            Failure::Unsupported { setting, profile } => write!(
                f,
                "the `{profile}` profile sets {setting}, which cannot work with a shared \
                 standard library\n\n\
                 help: build with a profile without it (say `[profile.{profile}] lto = false, \
                 panic = \"unwind\"`), or use plain cargo for this profile"
            ),
        }
    }
}

impl std::error::Error for Failure {}
