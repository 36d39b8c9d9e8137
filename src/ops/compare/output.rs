//! The report shown: a table and status lines on stderr in cargo's voice,
//! or, with `--message-format json`, JSON on stdout.

use anyhow::Result;

use super::program::Startup;
use super::report::Report;
use crate::cli::{CompareArgs, MessageFormat};
use crate::shell::{Shell, duration, group_digits, human_size};

/// Prints the report as asked: JSON on stdout, or the table on stderr.
pub fn show(shell: &Shell, report: &Report, args: &CompareArgs) -> Result<()> {
    match args.message_format {
        MessageFormat::Json => println!("{}", serde_json::to_string_pretty(report)?),
        MessageFormat::Human => print_report(shell, report, args.no_run || args.tests),
    }
    Ok(())
}

fn print_report(shell: &Shell, report: &Report, no_run: bool) {
    shell.status(
        "Compared",
        format_args!(
            "{} of {} for {}, {} runs per mode",
            report.scenario,
            report.file.display(),
            report.target,
            report.runs
        ),
    );
    shell.header(format_args!(
        "{:<16} {:>26} {:>8} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9}",
        "MODE",
        if report.tests {
            "EDIT -> TESTS DONE"
        } else {
            "EDIT -> BINARY"
        },
        "SPEEDUP",
        "LINK",
        "COMPILE",
        "PEAK MEM",
        "BINARY",
        "START-UP",
        "RUN"
    ));
    for m in &report.modes {
        let e = &m.edit_to_binary;
        let startup = match &m.startup {
            Some(s) => match (s.loader_ms, s.loader_cycles) {
                (Some(ms), _) => format!("{ms:.1} ms"),
                (None, Some(cycles)) => format!("{}k cyc", cycles / 1000),
                (None, None) => "-".into(),
            },
            None => "-".into(),
        };
        let run = run_cell(m.startup.as_ref(), no_run);
        shell.print(format_args!(
            "{:<16} {:>26} {:>7.1}x {:>9} {:>9} {:>10} {:>10} {:>9} {:>9}",
            m.name,
            format!(
                "{} ({}-{})",
                duration(e.median_ms),
                duration(e.min_ms),
                duration(e.max_ms)
            ),
            m.speedup,
            duration(m.link.median_ms),
            duration(m.compile.median_ms),
            kib(m.peak_kib),
            human_size(m.binary_bytes),
            startup,
            run
        ));
    }
    if report.modes.iter().any(|m| m.cold_ms.is_some()) {
        let cold: Vec<String> = report
            .modes
            .iter()
            .filter_map(|m| Some(format!("{} {}", m.name, duration(m.cold_ms?))))
            .collect();
        shell.status("Cold", cold.join(", "));
    }
    if let Some(b) = &report.bundle {
        shell.status(
            "Bundle",
            format_args!(
                "{}, {} exported symbols, linked once in {} ({} peak)",
                human_size(b.bytes),
                group_digits(b.exported_symbols),
                duration(b.link_ms as f64),
                kib(b.link_peak_kib)
            ),
        );
    }
    if report.interrupted {
        let done: usize = report.modes.iter().map(|m| m.edit_to_binary.samples).sum();
        let all = report.runs as usize * report.modes_asked;
        if done < all {
            shell.status(
                "Interrupted",
                format_args!("after {done} of {all} timed builds: the figures are from those"),
            );
        } else {
            shell.status(
                "Interrupted",
                "while running the programs: figures not measured are shown `-`",
            );
        }
    }
    if !report.verdict.is_empty() {
        shell.status("Verdict", &report.verdict);
    }
    shell.status("Chart", report.chart.display());
}

/// The RUN column: the median run, else why there is none.
fn run_cell(startup: Option<&Startup>, no_run: bool) -> String {
    match startup {
        Some(s) => match (s.run_ms, &s.run_failure) {
            (Some(ms), _) => duration(ms),
            (None, Some(failure)) => failure.cell(),
            (None, None) => "-".into(),
        },
        None if no_run => "not run".into(),
        None => "-".into(),
    }
}

fn kib(k: u64) -> String {
    human_size(k * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::compare::program::{Outcome, Run, summarise};
    use std::time::Duration;

    fn startup(outcome: Outcome) -> Startup {
        summarise(
            &[Run {
                ms: 12.0,
                outcome,
                loader: Some((1_000, 10)),
            }],
            Some(1000.0),
        )
    }

    #[test]
    fn the_run_column_says_why_a_run_is_missing() {
        let second = Duration::from_secs(1);
        assert_eq!(run_cell(Some(&startup(Outcome::Success)), false), "12 ms");
        assert_eq!(
            run_cell(Some(&startup(Outcome::TimedOut(second))), false),
            "timed out"
        );
        assert_eq!(
            run_cell(Some(&startup(Outcome::Stopped(second))), false),
            "skipped"
        );
        assert_eq!(run_cell(None, true), "not run");
        assert_eq!(run_cell(None, false), "-");
    }
}
