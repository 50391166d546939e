//! `toolbridge-mcp stats`: what the log files say, as a table, JSON, or an
//! HTML report. The work is in [`crate::stats`]; this prints and exits.

use std::process::ExitCode;

pub use crate::stats::Options;

pub fn run(options: Options) -> ExitCode {
    match crate::stats::run(&options) {
        Ok(output) => {
            print!("{output}");
            if let Some(path) = &options.html {
                eprintln!("wrote the HTML report to {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("toolbridge-mcp: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
