//! The `toolbridge-mcp` command line: parse, then dispatch.

use std::process::ExitCode;

use toolbridge_mcp::{command_line, commands};

fn main() -> ExitCode {
    unset_empty_settings();
    match command_line::parse(std::env::args_os().collect()) {
        Ok(cli) => commands::run(cli),
        Err(exit) => exit,
    }
}

/// An MCP host fills a setting the user left blank with `""` (an `.mcpb`
/// bundle's optional `user_config`, a client's env block): that means unset,
/// not "the empty URL".
fn unset_empty_settings() {
    let empty: Vec<_> = std::env::vars_os()
        .filter(|(key, value)| key.to_string_lossy().starts_with("TOOLBRIDGE_") && value.is_empty())
        .map(|(key, _)| key)
        .collect();
    for key in empty {
        // SAFETY: the first thing main does, before any thread is started.
        #[allow(unsafe_code)]
        unsafe {
            std::env::remove_var(key)
        };
    }
}
