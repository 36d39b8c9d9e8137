//! The comparison as a picture: one stacked bar per mode (compiling, the
//! final link, the rest, start-up), as a self-contained SVG file that can
//! be pasted into an issue or a post.

use std::fmt::Write;

use super::report::Report;
use crate::shell::duration;

/// One bar: a mode and its median parts, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    /// Compiling without linking: the floor.
    pub rustc_ms: f64,
    pub link_ms: f64,
    /// Cargo's own work and anything else in the edit -> binary time.
    pub other_ms: f64,
    /// From exec to `main`, in the dynamic loader.
    pub startup_ms: f64,
    /// Shown at the end of the bar: `3.52 s (1.0x)`.
    pub note: String,
}

const SEGMENTS: [(&str, &str); 4] = [
    ("compile", "#4e79a7"),
    ("link", "#f28e2b"),
    ("other", "#bab0ac"),
    ("start-up", "#59a14f"),
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the bars, scaled to the longest.
pub fn render(title: &str, bars: &[Bar]) -> String {
    const LABEL_W: f64 = 170.0;
    const BAR_W: f64 = 520.0;
    const NOTE_W: f64 = 150.0;
    const ROW_H: f64 = 34.0;
    const TOP: f64 = 64.0;
    let width = LABEL_W + BAR_W + NOTE_W;
    let height = TOP + ROW_H * bars.len() as f64 + 24.0;
    let total = |b: &Bar| b.rustc_ms + b.link_ms + b.other_ms + b.startup_ms;
    let max = bars.iter().map(total).fold(1.0_f64, f64::max);
    let scale = BAR_W / max;

    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
        escape(title)
    );
    // Legend.
    let mut x = 10.0;
    for (name, color) in SEGMENTS {
        let _ = writeln!(
            svg,
            "<rect x=\"{x}\" y=\"34\" width=\"12\" height=\"12\" fill=\"{color}\"/>\
             <text x=\"{}\" y=\"45\">{name}</text>",
            x + 16.0
        );
        x += 100.0;
    }
    for (i, bar) in bars.iter().enumerate() {
        let y = TOP + ROW_H * i as f64;
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            LABEL_W - 10.0,
            y + 18.0,
            escape(&bar.label)
        );
        let mut x = LABEL_W;
        for (value, (name, color)) in [bar.rustc_ms, bar.link_ms, bar.other_ms, bar.startup_ms]
            .into_iter()
            .zip(SEGMENTS)
        {
            let w = (value.max(0.0) * scale).max(0.0);
            if w > 0.0 {
                let _ = writeln!(
                    svg,
                    "<rect class=\"{name}\" x=\"{x:.1}\" y=\"{}\" width=\"{w:.1}\" height=\"22\" \
                     fill=\"{color}\"><title>{name}: {:.0} ms</title></rect>",
                    y + 4.0,
                    value
                );
            }
            x += w;
        }
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\">{}</text>",
            x + 8.0,
            y + 19.0,
            escape(&bar.note)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// One bar per mode of the report: its median parts and its speed-up.
pub fn bars(report: &Report) -> Vec<Bar> {
    report
        .modes
        .iter()
        .map(|m| {
            let total = m.edit_to_binary.median_ms;
            let compile = m.compile.median_ms.min(total);
            let link = m.link.median_ms.min(total - compile);
            Bar {
                label: m.name.clone(),
                rustc_ms: compile,
                link_ms: link,
                other_ms: (total - compile - link).max(0.0),
                startup_ms: m.startup.as_ref().and_then(|s| s.loader_ms).unwrap_or(0.0),
                note: format!("{} ({:.1}x)", duration(total), m.speedup),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars() -> Vec<Bar> {
        vec![
            Bar {
                label: "static (rust-lld)".into(),
                rustc_ms: 600.0,
                link_ms: 2900.0,
                other_ms: 100.0,
                startup_ms: 0.3,
                note: "3.60 s".into(),
            },
            Bar {
                label: "dyndev".into(),
                rustc_ms: 600.0,
                link_ms: 80.0,
                other_ms: 40.0,
                startup_ms: 9.0,
                note: "0.73 s (4.9x)".into(),
            },
        ]
    }

    #[test]
    fn draws_one_bar_per_mode_with_its_parts_and_labels() {
        let svg = render("edit -> binary: game <&>", &bars());
        assert!(svg.starts_with("<svg "));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("game &lt;&amp;&gt;"), "title is escaped");
        assert_eq!(svg.matches("class=\"link\"").count(), 2);
        assert_eq!(svg.matches("class=\"compile\"").count(), 2);
        assert!(svg.contains(">static (rust-lld)</text>"));
        assert!(svg.contains(">0.73 s (4.9x)</text>"));
    }

    #[test]
    fn bars_are_scaled_to_the_longest() {
        let svg = render("t", &bars());
        // The static link (2.9 s of 3.6 s) is wider than dyndev's (80 ms).
        let widths: Vec<f64> = svg
            .lines()
            .filter(|l| l.contains("class=\"link\""))
            .map(|l| {
                let w = l.split("width=\"").nth(1).unwrap();
                w[..w.find('"').unwrap()].parse().unwrap()
            })
            .collect();
        assert!(widths[0] > 400.0 && widths[1] < 15.0, "{widths:?}");
    }
}
