//! Counts the JSON records whose field matches a pattern: a small tool with
//! a few popular dependencies. Reads JSON lines from a file, or uses a
//! built-in sample when none is given.
//!
//! Usage: small-cli [--field NAME] [PATTERN] [FILE]

use std::io::{BufRead, BufReader};

use clap::Parser;
use regex::Regex;
use serde_json::Value;

#[derive(Parser)]
#[command(about = "Count JSON records whose field matches a pattern")]
struct Args {
    /// Regular expression to match
    #[arg(default_value = "^(a|e)")]
    pattern: String,
    /// File of JSON lines; a built-in sample when absent
    file: Option<std::path::PathBuf>,
    /// Field to match against
    #[arg(long, default_value = "name")]
    field: String,
}

const SAMPLE: &str = r#"{"name": "ada", "lang": "rust"}
{"name": "grace", "lang": "cobol"}
{"name": "edsger", "lang": "algol"}
{"name": "barbara", "lang": "clu"}
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let re = Regex::new(&args.pattern)?;
    let lines: Box<dyn BufRead> = match &args.file {
        Some(path) => Box::new(BufReader::new(std::fs::File::open(path)?)),
        None => Box::new(SAMPLE.as_bytes()),
    };
    let (mut seen, mut matched) = (0, 0);
    for line in lines.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Value = serde_json::from_str(&line)?;
        seen += 1;
        if record[&args.field].as_str().is_some_and(|v| re.is_match(v)) {
            matched += 1;
        }
    }
    println!("{matched} of {seen} records match /{}/ in `{}`", args.pattern, args.field);
    Ok(())
}
