//! Entry point: parse the command line, then run a node or a client command.
//!
//! Exit codes: 0 success, 1 failure, 2 bad command line, 3 no node running.

pub mod args;
mod completion;
mod manual;
pub mod settings;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::args::LogFormat;
use crate::control::client::{Client, ClientError};

/// Exit code when no node answers on the control socket.
pub const EXIT_NOT_RUNNING: u8 = 3;
/// Exit code for a bad command line or setting.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when a peer, or the data, cannot be reached now: a peer did not
/// answer or refused, or no reachable node holds a chunk. Trying again later, or
/// with other nodes up, may work; the command itself was fine.
pub const EXIT_UNAVAILABLE: u8 = 4;

/// Library chatter that is normal for a node and says nothing a user can act on:
/// the DHT warns on every periodic bootstrap while a node has no peers yet.
const QUIET: &str = "libp2p_kad::behaviour=error";

fn init_logging(filter: &str, format: LogFormat) {
    // The user's directive wins where it names the same target.
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{QUIET},{filter}"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal, and never when NO_COLOR is set (no-color.org).
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(crate::log_output::LogOutput);
    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        // One JSON object per line, with the target, for log shippers.
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

fn report(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", crate::ui::error_text(error));
    match error.downcast_ref::<ClientError>() {
        Some(ClientError::NotRunning { .. }) => ExitCode::from(EXIT_NOT_RUNNING),
        Some(ClientError::Remote {
            kind: peervault_node::ErrorKind::Unavailable,
            ..
        }) => ExitCode::from(EXIT_UNAVAILABLE),
        _ => ExitCode::FAILURE,
    }
}

/// Runs `peervault` with the process's arguments.
pub fn main() -> ExitCode {
    let argv = args::normalise_args(std::env::args_os());
    let parsed = args::Cli::command()
        .try_get_matches_from(argv)
        .and_then(|matches| {
            use clap::FromArgMatches;
            args::Cli::from_arg_matches(&matches).map(|cli| (cli, matches))
        })
        .map_err(args::without_destructive_tips);
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            // Prints help/version to stdout (exit 0) and errors to stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    let ignored = args::node_flags_given(&matches);
    if let Some(command) = matches.subcommand_name()
        && !ignored.is_empty()
    {
        // A node setting given to a client command would silently do nothing.
        eprintln!(
            "error: {} {} a node setting and does nothing for `{command}`; give it when \
             starting the node (peervault [FLAGS] without a command)",
            ignored.join(", "),
            if ignored.len() == 1 { "is" } else { "are" }
        );
        return ExitCode::from(EXIT_USAGE);
    }
    if cli.node.demo {
        let ignored: Vec<&String> = ignored.iter().filter(|f| *f != "--demo").collect();
        if !ignored.is_empty() {
            eprintln!(
                "note: -demo runs its own three nodes with a temporary vault; ignoring {}",
                ignored
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    // Commands about the program itself need neither a node nor a runtime.
    match &cli.command {
        Some(args::Command::Completions { shell }) => {
            return match completion::write(*shell, &mut std::io::stdout().lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => report(&e.into()),
            };
        }
        Some(args::Command::Man) => {
            return match manual::render(&mut std::io::stdout().lock()) {
                // `peervault man | head` is not an error.
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => report(&e.into()),
            };
        }
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.command {
        Some(_) => {
            let settings = match settings::client_settings(&cli) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            // Client commands keep quiet unless asked: their output is for the user.
            let filter = if cli.global.log_level.is_some() || cli.global.verbose || cli.global.debug
            {
                settings.log_filter.clone()
            } else {
                "warn".to_string()
            };
            init_logging(&filter, settings.log_format);
            let client = Client::new(&settings.data_dir);
            let command = cli.command.unwrap_or_else(|| unreachable!());
            runtime.block_on(crate::commands::run(command, &client))
        }
        None => {
            let settings = match settings::node_settings(&cli) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            init_logging(&settings.common.log_filter, settings.common.log_format);
            runtime.block_on(crate::run::run_node(settings))
        }
    };
    // Blocking tasks (a disk write, the REPL's pending call) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match outcome {
        Ok(code) => code,
        Err(e) => report(&e),
    }
}
