//! `cargo dyndev compare`: edit -> binary time, static against dynamic,
//! measured on a copy of the user's project; `exec` walks the phases.

pub mod bench;
pub mod chart;
pub mod edit_check;
pub mod interrupt;
pub mod mirror;
pub mod modes;
pub mod output;
pub mod phases;
pub mod prepare;
pub mod program;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod verdict;

use anyhow::Result;

use crate::cli::CompareArgs;
use crate::error::Failure;
use crate::shell::Shell;
use prepare::Comparison;
use report::Report;

/// Ctrl-C stops the comparison early: what was measured is still shown,
/// and the exit code is [`crate::error::code::INTERRUPTED`].
pub fn exec(shell: &Shell, args: &CompareArgs) -> Result<()> {
    interrupt::install()?;
    let report = match compare(shell, args) {
        Ok(report) => report,
        Err(_) if interrupt::interrupted() => {
            shell.status(
                "Interrupted",
                "before the first timed build: nothing was measured",
            );
            return Err(Failure::Interrupted.into());
        }
        Err(e) => return Err(e),
    };
    output::show(shell, &report, args)?;
    if report.interrupted {
        return Err(Failure::Interrupted.into());
    }
    Ok(())
}

/// The phases, in order: [`prepare`], the check of the edit
/// ([`edit_check`]), then those in [`phases`].
fn compare(shell: &Shell, args: &CompareArgs) -> Result<Report> {
    let cmp = Comparison::prepare(shell, args)?;
    cmp.check_edit(shell)?;
    let cold = if args.cold {
        cmp.cold_builds(shell)?
    } else {
        vec![None; cmp.modes.len()]
    };
    let (bundle_link_peak, warm_ms) = cmp.warm_up(shell)?;
    let timed = cmp.timed_runs(shell, &warm_ms)?;
    let startups = cmp.run_programs(shell, &timed);
    cmp.report(shell, &timed, &startups, &cold, bundle_link_peak)
}
