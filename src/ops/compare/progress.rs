//! What is left of a comparison, estimated from the builds timed so far,
//! for the status lines that show its progress.

/// Milliseconds left for the timed builds: each mode's remaining runs at
/// its median so far, or at `first_guess` (its warm-up edit build) before
/// its first timed run.
pub fn builds_left_ms(first_guess: &[f64], done: &[Vec<f64>], runs: u32) -> f64 {
    first_guess
        .iter()
        .zip(done)
        .map(|(guess, times)| {
            let each = super::stats::Summary::of(times).map_or(*guess, |s| s.median_ms);
            f64::from(runs.saturating_sub(times.len() as u32)) * each
        })
        .sum()
}

/// `about 45 s`, `about 3 min 10 s`: an estimate, rounded to what a
/// reader can use.
pub fn about(ms: f64) -> String {
    let secs = (ms / 1000.0).round() as u64;
    match secs {
        0..=9 => "a few seconds".into(),
        10..=59 => format!("about {secs} s"),
        60..=3599 => {
            let (m, s) = (secs / 60, secs % 60 / 10 * 10);
            if s == 0 {
                format!("about {m} min")
            } else {
                format!("about {m} min {s} s")
            }
        }
        _ => format!("about {} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_from_medians_and_warm_up_builds() {
        // Two modes, 3 runs: the first has two runs timed (median 2 s),
        // the second none yet (its warm-up edit took 10 s).
        let left = builds_left_ms(&[1000.0, 10_000.0], &[vec![2000.0, 2000.0], vec![]], 3);
        assert_eq!(left, 2000.0 + 3.0 * 10_000.0);
        assert_eq!(builds_left_ms(&[5.0], &[vec![1.0, 1.0]], 2), 0.0);
    }

    #[test]
    fn estimates_read_well() {
        assert_eq!(about(3000.0), "a few seconds");
        assert_eq!(about(45_200.0), "about 45 s");
        assert_eq!(about(190_000.0), "about 3 min 10 s");
        assert_eq!(about(120_000.0), "about 2 min");
        assert_eq!(about(3_900_000.0), "about 1 h 5 min");
    }
}
