//! Human output on stderr in cargo's voice, honouring `--color`, `-q` and `-v`,
//! and the sizes, counts and durations it shows, written as people read them.

use std::fmt::Display;
use std::io::Write;

use anstyle::{AnsiColor, Style};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// `--color` values, as cargo spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// The choice from the flag, else from `CARGO_TERM_COLOR`, else auto.
    pub fn resolve(flag: Option<ColorChoice>) -> ColorChoice {
        flag.or_else(|| match std::env::var("CARGO_TERM_COLOR").ok()?.as_str() {
            "always" => Some(ColorChoice::Always),
            "never" => Some(ColorChoice::Never),
            "auto" => Some(ColorChoice::Auto),
            _ => None,
        })
        .unwrap_or(ColorChoice::Auto)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ColorChoice::Auto => "auto",
            ColorChoice::Always => "always",
            ColorChoice::Never => "never",
        }
    }
}

const STATUS: Style = AnsiColor::Green.on_default().bold();
const WARN: Style = AnsiColor::Yellow.on_default().bold();
const ERROR: Style = AnsiColor::Red.on_default().bold();
const HEADER: Style = Style::new().bold();
const NOTE: Style = AnsiColor::Cyan.on_default().bold();

#[derive(Debug, Clone)]
pub struct Shell {
    verbosity: Verbosity,
    color: ColorChoice,
}

impl Shell {
    pub fn new(verbosity: Verbosity, color: ColorChoice) -> Shell {
        Shell { verbosity, color }
    }

    pub fn verbosity(&self) -> Verbosity {
        self.verbosity
    }

    /// The `--color` choice, as given.
    pub fn color(&self) -> ColorChoice {
        self.color
    }

    /// `always` or `never`: the `--color` for a child whose stderr dyndev
    /// reads and passes on to its own.
    pub fn child_color(&self) -> &'static str {
        let choice = match self.color {
            ColorChoice::Auto => anstream::ColorChoice::Auto,
            ColorChoice::Always => anstream::ColorChoice::Always,
            ColorChoice::Never => anstream::ColorChoice::Never,
        };
        match anstream::AutoStream::new(std::io::stderr(), choice).current_choice() {
            anstream::ColorChoice::Never => "never",
            _ => "always",
        }
    }

    fn stderr(&self) -> anstream::AutoStream<std::io::Stderr> {
        let choice = match self.color {
            ColorChoice::Auto => anstream::ColorChoice::Auto,
            ColorChoice::Always => anstream::ColorChoice::Always,
            ColorChoice::Never => anstream::ColorChoice::Never,
        };
        anstream::AutoStream::new(std::io::stderr(), choice)
    }

    /// `    Bundling 42 crates into ...`: the word right-aligned in 12 columns.
    pub fn status(&self, word: &str, message: impl Display) {
        if self.verbosity > Verbosity::Quiet {
            let _ = writeln!(self.stderr(), "{STATUS}{word:>12}{STATUS:#} {message}");
        }
    }

    /// A status line shown only with `-v`.
    pub fn verbose_status(&self, word: &str, message: impl Display) {
        if self.verbosity >= Verbosity::Verbose {
            self.status(word, message);
        }
    }

    pub fn warn(&self, message: impl Display) {
        if self.verbosity > Verbosity::Quiet {
            let _ = writeln!(self.stderr(), "{WARN}warning{WARN:#}: {message}");
        }
    }

    /// Something the user may want to know, not a problem (cargo's `note:`).
    pub fn note(&self, message: impl Display) {
        if self.verbosity > Verbosity::Quiet {
            let _ = writeln!(self.stderr(), "{NOTE}note{NOTE:#}: {message}");
        }
    }

    /// Errors are printed even under `-q`.
    pub fn error(&self, message: impl Display) {
        let _ = writeln!(self.stderr(), "{ERROR}error{ERROR:#}: {message}");
    }

    /// A plain line on stderr (tables, summaries), not hidden by `-q`
    /// because the user asked for it.
    pub fn print(&self, line: impl Display) {
        let _ = writeln!(self.stderr(), "{line}");
    }

    /// A bold line, for table headers.
    pub fn header(&self, line: impl Display) {
        let _ = writeln!(self.stderr(), "{HEADER}{line}{HEADER:#}");
    }
}

/// `text` without its ANSI escape sequences (colours, bold).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: `ESC [`, parameters, then a final byte in `@`..=`~`.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// A command line as a user would type it into a POSIX shell, for `-v`
/// and error messages: each word quoted only where it needs to be.
pub fn command_line<I, S>(words: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    words
        .into_iter()
        .map(|w| {
            let w = w.as_ref().to_string_lossy();
            shlex::try_quote(&w).map_or_else(|_| format!("{w:?}"), |q| q.into_owned())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `3 crates`, `1 library`: a count with its noun in the right number.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `512 B`, `3.5 MiB`: a size in bytes, as people read it.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `729,000`: a count with its thousands apart.
pub fn group_digits(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1.23 s` or `45 ms`, as tables show durations.
pub fn duration(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_counts_read_well() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(3 * 1024 * 1024 + 512 * 1024), "3.5 MiB");
        assert_eq!(group_digits(729_000), "729,000");
        assert_eq!(group_digits(12), "12");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(3520.0), "3.52 s");
        assert_eq!(duration(81.4), "81 ms");
    }
}
