//! The command line as typed: clap's parse, with every refusal as one line on
//! stderr and an exit code of the README's scheme (1: a setting is invalid;
//! 2: the command line is wrong), and `call TOOL --help`.
//!
//! A setting can come from its flag or its environment variable; a refusal
//! names the one that was used, since a value nobody typed on the command
//! line is found in the environment or the client's config file.

use std::ffi::{OsStr, OsString};
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{Arg, CommandFactory, FromArgMatches};

use crate::config::{APP, Cli, Command, setting_name};

/// Exit code of an invalid setting (flag or environment variable).
const SETUP_ERROR: u8 = 1;
/// Exit code of a command line clap cannot make sense of.
const USAGE_ERROR: u8 = 2;

/// Parses `args` (the program name first). `Err` is the exit code once help,
/// the version or the refusal has been printed.
pub fn parse(args: Vec<OsString>) -> Result<Cli, ExitCode> {
    let error = match parse_settings(&args) {
        Ok(cli) => return Ok(cli),
        Err(error) => error,
    };
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            if error.kind() == ErrorKind::DisplayHelp {
                match tool_help(&args) {
                    Ok(Some(cli)) => return Ok(cli),
                    Err(refused) => return Err(refuse(&refused, &args)),
                    Ok(None) => {}
                }
            }
            // Help and the version go to stdout; nothing to report if the
            // reader has gone.
            let _ = error.print();
            Err(ExitCode::SUCCESS)
        }
        _ => Err(refuse(&error, &args)),
    }
}

/// Prints the one line for a command line clap refused; its exit code.
fn refuse(error: &clap::Error, args: &[OsString]) -> ExitCode {
    let (line, code) = refusal(error, args);
    eprintln!("{APP}: {line}");
    ExitCode::from(code)
}

/// [`Cli`], with the settings whose values came from the environment
/// marked, so that a later refusal names them as they were set.
fn parse_settings(args: &[OsString]) -> Result<Cli, clap::Error> {
    let mut matches = Cli::command().try_get_matches_from(args)?;
    // Asked before the values are taken out of the matches: a global
    // setting's source is propagated up to the top level; a subcommand's own
    // settings (`serve-api --listen`) are below it.
    let levels = std::iter::successors(Some(&matches), |m| m.subcommand().map(|(_, sub)| sub));
    let from_env = levels
        .flat_map(|m| {
            m.ids()
                .filter(|id| m.value_source(id.as_str()) == Some(ValueSource::EnvVariable))
                .map(|id| id.as_str().to_owned())
        })
        .collect();
    let mut cli = Cli::from_arg_matches_mut(&mut matches)?;
    cli.options.from_env = from_env;
    Ok(cli)
}

/// `call TOOL --help` is a request for TOOL's parameters, not for `call`'s
/// help: the same command line without `--help` names the tool (and the
/// settings that decide which tools exist). `None` when it does not parse
/// as a call, e.g. `call --help` with no tool: then clap's help stands.
/// `Err` when it names a tool but a setting's value is invalid: which tools
/// exist depends on the settings, and `call`'s general help would not say
/// what is wrong.
fn tool_help(args: &[OsString]) -> Result<Option<Cli>, clap::Error> {
    let without_help: Vec<OsString> = before_terminator(args)
        .filter(|a| !matches!(a.to_str(), Some("--help" | "-h")))
        .chain(after_terminator(args))
        .cloned()
        .collect();
    let mut cli = match parse_settings(&without_help) {
        Ok(cli) => cli,
        Err(error)
            if matches!(
                error.kind(),
                ErrorKind::InvalidValue | ErrorKind::ValueValidation
            ) && names_a_tool(&without_help) =>
        {
            return Err(error);
        }
        Err(_) => return Ok(None),
    };
    match &mut cli.command {
        Some(Command::Call { help, .. }) => {
            *help = true;
            Ok(Some(cli))
        }
        _ => Ok(None),
    }
}

/// Whether the command line is `call` with a word after it (the tool).
fn names_a_tool(args: &[OsString]) -> bool {
    let mut words = before_terminator(args).skip(1).map(|a| a.to_str());
    words.any(|w| w == Some("call")) && words.any(|w| w.is_some_and(|w| !w.starts_with('-')))
}

/// The line and exit code for a command line clap refused.
fn refusal(error: &clap::Error, args: &[OsString]) -> (String, u8) {
    if matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) && let Some(setting) = setting_of(error)
    {
        return (invalid_setting(error, &setting, args), SETUP_ERROR);
    }
    (usage_line(error), USAGE_ERROR)
}

/// The argument a value error is about, when it is a setting (it has an
/// environment variable).
fn setting_of(error: &clap::Error) -> Option<Arg> {
    let ContextValue::String(shown) = error.get(ContextKind::InvalidArg)? else {
        return None;
    };
    // Shown as `--call-timeout <CALL_TIMEOUT>`, or `--read-only` for a switch.
    let long = shown.split_whitespace().next()?.strip_prefix("--")?;
    // Built, so that each argument knows how many values it takes.
    let mut command = Cli::command();
    command.build();
    command
        .get_arguments()
        .chain(
            command
                .get_subcommands()
                .flat_map(clap::Command::get_arguments),
        )
        .find(|arg| arg.get_long() == Some(long) && arg.get_env().is_some())
        .cloned()
}

/// `TOOLBRIDGE_READ_ONLY=maybe: expected one of …` when the value came from
/// the environment, `--call-timeout 0: out of range …` when from the flag.
/// A secret's value is never repeated.
fn invalid_setting(error: &clap::Error, setting: &Arg, args: &[OsString]) -> String {
    let value = match error.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(value)) if !setting.is_hide_env_values_set() => value.as_str(),
        _ => "",
    };
    let reason = reason(error, setting);
    // No matches to ask the value's source of, as parsing stopped: clap
    // reads a variable only when its flag is absent from the command line.
    let from_env = !setting.get_long().is_some_and(|long| typed(args, long))
        && setting
            .get_env()
            .is_some_and(|name| std::env::var_os(name).is_some());
    let name = setting_name(setting, from_env);
    match (from_env, value) {
        (_, "") => format!("{name}: {reason}"),
        (true, value) => format!("{name}={value}: {reason}"),
        (false, value) => format!("{name} {value}: {reason}"),
    }
}

/// Why the value was refused, in the words of its parser.
fn reason(error: &clap::Error, setting: &Arg) -> String {
    // A switch (`--read-only`) takes no value on the command line, so a
    // refused value came from its variable, parsed as a boolean.
    if !setting.get_num_args().is_some_and(|n| n.takes_values()) {
        return "expected one of true/false/1/0/yes/no/on/off".into();
    }
    if let Some(ContextValue::Strings(valid)) = error.get(ContextKind::ValidValue) {
        return format!("expected one of {}", valid.join(", "));
    }
    match std::error::Error::source(error) {
        Some(source) => source.to_string(),
        None => "invalid value".into(),
    }
}

/// Whether the flag `--long` is on the command line (before any `--`).
fn typed(args: &[OsString], long: &str) -> bool {
    let flag = format!("--{long}");
    let with_value = format!("--{long}=");
    before_terminator(args).any(|a| {
        a.to_str()
            .is_some_and(|a| a == flag || a.starts_with(&with_value))
    })
}

fn before_terminator(args: &[OsString]) -> impl Iterator<Item = &OsString> {
    args.iter()
        .take_while(|a| a.as_os_str() != OsStr::new("--"))
}

fn after_terminator(args: &[OsString]) -> impl Iterator<Item = &OsString> {
    args.iter()
        .skip_while(|a| a.as_os_str() != OsStr::new("--"))
}

/// Clap's message without its usage block, on one line: `unexpected argument
/// '--read-onyl' found; tip: a similar argument exists: '--read-only'; see
/// --help`.
fn usage_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let mut line = String::new();
    for part in rendered
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        // A line ending in `:` introduces the next (`…not provided:` `<TOOL>`).
        if !line.is_empty() {
            line.push_str(if line.ends_with(':') { " " } else { "; " });
        }
        line.push_str(part.strip_prefix("error: ").unwrap_or(part));
    }
    line.push_str("; see --help");
    line
}
