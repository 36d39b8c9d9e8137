//! The process guard: this executable as `dyndev-watch-guard`, started by
//! `cargo dyndev watch` with a pipe. It learns which process groups the
//! watcher runs; if the pipe closes without `exit` (the watcher died, even
//! by SIGKILL), it kills every group still listed, so nothing outlives it.

use std::io::BufRead;

/// The name the guard runs under (its `argv[0]`).
pub const NAME: &str = "dyndev-watch-guard";

/// Reads `+PGID` and `-PGID` lines until `exit`; if the pipe closes
/// without one (the watcher died), kills every group still listed.
pub fn main() -> i32 {
    let mut groups: Vec<u32> = Vec::new();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line == "exit" {
            return 0;
        }
        if let Some(pgid) = line.strip_prefix('+').and_then(|p| p.parse().ok()) {
            groups.push(pgid);
        } else if let Some(pgid) = line.strip_prefix('-').and_then(|p| p.parse::<u32>().ok()) {
            groups.retain(|g| *g != pgid);
        }
    }
    for pgid in groups {
        crate::process::signal_group(pgid, libc::SIGKILL);
    }
    0
}
