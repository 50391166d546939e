//! The `toolbridge-mcp` command line: parse, set up logging, dispatch.

use std::process::ExitCode;

use clap::Parser;
use toolbridge_mcp::app::{self, CallFailure, ToolsFormat};
use toolbridge_mcp::config::{Cli, Command, Config};
use toolbridge_mcp::{doctor, logging, stats, stdio};

fn main() -> ExitCode {
    unset_empty_settings();
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    // Stats reads only the log files: no upstream, no configuration to validate.
    if let Command::Stats {
        since,
        tool,
        errors,
        json,
        html,
    } = command
    {
        let options = stats::Options {
            log_dir: cli.options.log_dir,
            since,
            tool,
            errors,
            json,
            html,
        };
        return match stats::run(&options) {
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
        };
    }
    let config = match Config::from_options(cli.options) {
        Ok(config) => config,
        Err(message) if matches!(command, Command::Doctor) => {
            println!(
                "FAIL  configuration    {message}\n      fix: correct the flag or environment variable named above"
            );
            return ExitCode::FAILURE;
        }
        Err(message) => return fail(&message),
    };
    if let Command::Tools {
        json,
        markdown,
        write,
    } = &command
    {
        if let Some(dir) = write {
            return match app::write_catalog(&config, dir) {
                Ok(n) => {
                    eprintln!("wrote {n} tool definitions to {}", dir.display());
                    ExitCode::SUCCESS
                }
                Err(message) => fail(&message),
            };
        }
        let format = match (json, markdown) {
            (true, _) => ToolsFormat::Json,
            (_, true) => ToolsFormat::Markdown,
            _ => ToolsFormat::Lines,
        };
        println!("{}", app::tools(&config, format));
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(async move {
        match command {
            Command::Serve => {
                // Claim stdout before anything can write to it.
                let channel = match stdio::claim() {
                    Ok(channel) => channel,
                    Err(e) => return fail(&format!("cannot set up stdio: {e}")),
                };
                let _log = logging::init(&config.log_dir, &config.log_level);
                match app::serve(config, channel).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(message) => fail(&message),
                }
            }
            Command::Call { tool, args, json } => {
                let _log = logging::init(&config.log_dir, &config.log_level);
                match app::call(config, &tool, &args, json.as_deref()).await {
                    Ok(value) => {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&value).unwrap_or_default()
                        );
                        ExitCode::SUCCESS
                    }
                    Err(CallFailure::Setup(message)) => fail(&message),
                    Err(CallFailure::Tool(error)) => {
                        eprintln!(
                            "{}",
                            serde_json::to_string_pretty(&error).unwrap_or_default()
                        );
                        ExitCode::from(error.code.exit_code())
                    }
                }
            }
            Command::ServeApi { listen, secret } => {
                let _log = logging::init(&config.log_dir, &config.log_level);
                match app::serve_api(&config, listen, secret).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(message) => fail(&message),
                }
            }
            Command::Doctor => {
                let _log = logging::init(&config.log_dir, &config.log_level);
                if doctor::run(config).await {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Command::Tools { .. } | Command::Stats { .. } => ExitCode::SUCCESS,
        }
    })
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
        unsafe { std::env::remove_var(key) };
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("toolbridge-mcp: {message}");
    ExitCode::FAILURE
}
