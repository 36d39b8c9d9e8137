//! The verdict: what the numbers say, in one or two sentences, about
//! dynamic linking here and the static linkers that come close to it.

use super::report::ModeReport;
use crate::shell::duration;

/// What the numbers say, in one or two sentences.
pub fn verdict(modes: &[ModeReport]) -> String {
    let Some(stat) = modes.iter().find(|m| !m.dyndev) else {
        return String::new();
    };
    let Some(dyn_) = modes.iter().find(|m| m.dyndev) else {
        return String::new();
    };
    let total = stat.edit_to_binary.median_ms;
    // Several links (a test suite's binaries) run side by side: their sum
    // can exceed the wall time, and says so.
    let link = |only: &str| match stat.links.len() {
        0 | 1 => format!(
            "the static link takes {only}{} of {}",
            duration(stat.link.median_ms),
            duration(total)
        ),
        n => format!(
            "the {n} static links take {only}{} together, some side by side, of {} in all",
            duration(stat.link.median_ms),
            duration(total)
        ),
    };
    let mut out = if dyn_.speedup >= 1.5 {
        format!(
            "dyndev makes an edit {:.1}x faster here: {}, the dynamic one {}.",
            dyn_.speedup,
            link(""),
            duration(dyn_.link.median_ms)
        )
    } else if dyn_.speedup >= 1.1 {
        format!(
            "dyndev helps a little here ({:.1}x): {}.",
            dyn_.speedup,
            link("")
        )
    } else {
        format!(
            "dynamic linking does not help here: {}; the time goes into compiling, \
             which no linker choice changes.",
            link("only ")
        )
    };
    if let Some(best) = modes
        .iter()
        .filter(|m| !m.dyndev && m.name != stat.name)
        .max_by(|a, b| a.speedup.total_cmp(&b.speedup))
        && best.speedup >= dyn_.speedup * 0.9
    {
        out.push_str(&format!(
            " {} gets {:.1}x with no change to how the program loads.",
            best.name, best.speedup
        ));
    }
    if let Some(ms) = dyn_.startup.as_ref().and_then(|s| s.loader_ms)
        && ms >= 5.0
    {
        out.push_str(&format!(
            " The price: about {ms:.0} ms of dynamic loading at each start"
        ));
        match (
            stat.startup.as_ref().and_then(|s| s.run_ms),
            dyn_.startup.as_ref().and_then(|s| s.run_ms),
        ) {
            (Some(s), Some(d)) if d > s * 1.1 => out.push_str(&format!(
                ", and the program ran {:.0}% slower (calls into the bundle go through \
                 the PLT, thread-locals through `__tls_get_addr`).",
                (d / s - 1.0) * 100.0
            )),
            _ => out.push('.'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::compare::program::{self, Startup};
    use crate::ops::compare::stats::Summary;

    fn mode(name: &str, dyndev: bool, median: f64, link: f64, speedup: f64) -> ModeReport {
        let s = |v| Summary {
            median_ms: v,
            min_ms: v,
            max_ms: v,
            samples: 1,
        };
        ModeReport {
            name: name.into(),
            dyndev,
            linker: "rust-lld".into(),
            edit_to_binary: s(median),
            speedup,
            link: s(link),
            links: Vec::new(),
            compile: s(median - link),
            peak_kib: 0,
            link_peak_kib: 0,
            binary_bytes: 0,
            startup: None,
            cold_ms: None,
        }
    }

    #[test]
    fn the_verdict_says_when_dynamic_linking_helps_and_when_not() {
        let helps = verdict(&[
            mode("static rust-lld", false, 3500.0, 2900.0, 1.0),
            mode("dyndev", true, 700.0, 80.0, 5.0),
        ]);
        assert!(
            helps.starts_with("dyndev makes an edit 5.0x faster here"),
            "{helps}"
        );
        let not = verdict(&[
            mode("static rust-lld", false, 900.0, 250.0, 1.0),
            mode("dyndev", true, 880.0, 60.0, 1.02),
        ]);
        assert!(
            not.starts_with("dynamic linking does not help here"),
            "{not}"
        );
        let mold = verdict(&[
            mode("static rust-lld", false, 3500.0, 2900.0, 1.0),
            mode("dyndev", true, 700.0, 80.0, 5.0),
            mode("static mold", false, 760.0, 150.0, 4.6),
        ]);
        assert!(mold.contains("static mold gets 4.6x"), "{mold}");
    }

    fn startup(run: Result<f64, program::Outcome>) -> Startup {
        let (run_ms, run_failure) = match run {
            Ok(ms) => (Some(ms), None),
            Err(outcome) => (None, Some(outcome)),
        };
        Startup {
            loader_cycles: Some(40_000_000),
            relocations: 300_000,
            loader_ms: Some(14.0),
            run_ms,
            run_not_measured: run_failure.as_ref().map(program::Outcome::reason),
            run_failure,
            runs: 1,
        }
    }

    #[test]
    fn only_successful_runs_make_a_run_time_claim() {
        let with = |stat: Startup, dynamic: Startup| {
            let mut s = mode("static rust-lld", false, 3000.0, 2000.0, 1.0);
            s.startup = Some(stat);
            let mut d = mode("dyndev", true, 1200.0, 200.0, 2.5);
            d.startup = Some(dynamic);
            verdict(&[s, d])
        };
        let measured = with(startup(Ok(820.0)), startup(Ok(960.0)));
        assert!(measured.contains("ran 17% slower"), "{measured}");

        // Time to a panic, or to an exit with an error, says nothing about
        // how fast the program runs.
        let panicked = program::Outcome::Panicked("src/main.rs:3:5: no display".into());
        for failed in [
            panicked,
            program::Outcome::Exited(1),
            program::Outcome::Signalled(11),
            program::Outcome::TimedOut(std::time::Duration::from_secs(20)),
            program::Outcome::Stopped(std::time::Duration::from_secs(20)),
        ] {
            for v in [
                with(startup(Err(failed.clone())), startup(Err(failed.clone()))),
                with(startup(Ok(20.0)), startup(Err(failed.clone()))),
                with(startup(Err(failed.clone())), startup(Ok(40.0))),
            ] {
                assert!(!v.contains(" ran "), "{failed:?}: {v}");
                // The loader's work before `main` is still the price.
                assert!(v.contains("14 ms of dynamic loading"), "{v}");
            }
        }
    }
}
