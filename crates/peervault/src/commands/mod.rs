//! Client commands: each parses its arguments, asks the node, and renders the answer.
//!
//! One file per command. Every command finds the node through the data dir
//! (`--data-dir`, or the default for `--addr`), prints results on stdout and
//! problems on stderr, and exits non-zero on failure (3 when no node is running).

use std::process::ExitCode;

use crate::cli::args::Command;
use crate::control::client::Client;

/// `println!` for command output, except that a closed pipe (`peervault ls | head`)
/// ends the command quietly, as it does other Unix tools, instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::commands::say_line(format_args!($($arg)*))
    };
}

/// Writes one line of output; exits quietly (status 141, as a SIGPIPE would) when
/// nobody reads it any more.
pub(crate) fn say_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{args}").and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(141);
    }
}

mod discover;
mod get;
mod invite;
mod ls;
mod maintenance;
mod peers;
mod put;
mod rm;
mod status;
mod transfer;
mod verify;

/// Runs one client command against the node owning `client`'s data dir.
pub async fn run(command: Command, client: &Client) -> anyhow::Result<ExitCode> {
    match command {
        Command::Put { path, name, quiet } => put::run(client, &path, name, quiet).await,
        Command::Get {
            name,
            output,
            quiet,
        } => get::run(client, &name, output.as_deref(), quiet).await,
        Command::Ls { json } => ls::run(client, json).await,
        Command::Rm { name, yes } => rm::run(client, &name, yes).await,
        Command::Clean { yes } => rm::clean(client, yes).await,
        Command::Status { json } => status::run(client, json).await,
        Command::Invite { json } => invite::run(client, json).await,
        Command::Verify { name, json } => verify::run(client, name, json).await,
        Command::Peers { json } => peers::run(client, json).await,
        Command::Discover { json } => discover::run(client, json).await,
        Command::Quota { action, json } => maintenance::quota(client, action, json).await,
        Command::Gc { json } => maintenance::gc(client, json).await,
        Command::Metrics { json } => status::metrics(client, json).await,
        Command::Completions { .. } | Command::Man => {
            anyhow::bail!("completions and man need no node; this path is never taken")
        }
        Command::Send { name, peer } => transfer::send(client, &name, &peer).await,
        Command::Fetch { name, peer } => transfer::fetch(client, &name, &peer).await,
    }
}

/// Builds the error for a reply of the wrong kind.
fn unexpected(reply: crate::control::proto::Response) -> anyhow::Error {
    crate::control::client::ClientError::Unexpected(format!("{reply:?}")).into()
}
