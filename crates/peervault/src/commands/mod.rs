//! The commands: each asks the node through [`Operations`] and renders the
//! answer, written once for both front ends.
//!
//! One file per command. A client subcommand reaches its node through the data
//! dir's control socket (`--data-dir`, or the default for `--addr`); the prompt
//! (`-interactive`, see [`crate::repl`]) parses its lines with the same
//! [`Command`] definitions and runs them here against its own node. Results go
//! to stdout, problems to stderr, and a failure exits non-zero (3 when no node
//! is running). What differs between the two is in
//! [`Console`]; how bytes travel, behind [`Operations`] (see [`crate::ops`]).

use std::process::ExitCode;

use crate::cli::args::Command;
use crate::control::client::Client;
use crate::ops::{Operations, Wanted};
use crate::ui;

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

mod devices;
mod discover;
mod get;
mod invite;
mod ls;
mod maintenance;
mod peers;
mod put;
mod rm;
mod s3;
mod status;
mod transfer;
mod tree;
mod verify;
mod versions;

/// Where a command runs: what differs between the two is here, nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Surface {
    /// A client subcommand in a shell: `peervault ls`.
    Shell,
    /// The node's own prompt (`-interactive`): `list`.
    Prompt,
}

/// How a command talks to the person who ran it, beyond printing.
pub(crate) trait Console {
    fn surface(&self) -> Surface;

    /// Whether someone can answer a question: always at the prompt, on the
    /// command line only when standard input is a terminal.
    fn can_ask(&self) -> bool {
        self.surface() == Surface::Prompt || ui::stdin_is_terminal()
    }

    /// Asks `question` (yes or no). `refusal` names the action for the error
    /// when nobody can be asked ("refusing to {refusal} without confirmation").
    fn confirm(&mut self, question: &str, refusal: &str) -> anyhow::Result<bool>;

    /// Asks for a line of text (the prompt's offer to free space); `None` if
    /// nobody can answer or the user gave up (Ctrl-C, Ctrl-D).
    fn read_line(&mut self, prompt: &str) -> anyhow::Result<Option<String>>;
}

/// A client subcommand's console: questions on the terminal, refused without one.
pub(crate) struct Shell;

impl Console for Shell {
    fn surface(&self) -> Surface {
        Surface::Shell
    }

    fn confirm(&mut self, question: &str, refusal: &str) -> anyhow::Result<bool> {
        if !self.can_ask() {
            anyhow::bail!(
                "refusing to {refusal} without confirmation: pass --yes when not on a terminal"
            );
        }
        Ok(ui::confirm(question)?)
    }

    fn read_line(&mut self, _prompt: &str) -> anyhow::Result<Option<String>> {
        Ok(None)
    }
}

/// Runs a client subcommand against the node owning `client`'s data dir.
pub async fn run(command: Command, client: &Client) -> anyhow::Result<ExitCode> {
    run_on(command, client, &mut Shell).await
}

/// Runs any command but `completions` and `man` (which print files for the
/// shell, not a node's answers) against `ops`, talking to the user through
/// `console`.
pub(crate) async fn run_on(
    command: Command,
    ops: &impl Operations,
    console: &mut impl Console,
) -> anyhow::Result<ExitCode> {
    match command {
        Command::Put {
            path,
            name,
            as_name,
            recursive: true,
            quiet,
            redundancy,
        } => {
            let keeping = redundancy.unwrap_or_default();
            tree::put(ops, &path, name.or(as_name), quiet, keeping, console).await
        }
        Command::Put {
            path,
            name,
            as_name,
            quiet,
            redundancy,
            ..
        } => {
            let keeping = redundancy.unwrap_or_default();
            put::run(ops, &path, name.or(as_name), quiet, keeping, console).await
        }
        Command::Get {
            name,
            output,
            dest,
            recursive: true,
            force,
            quiet,
            ..
        } => {
            let Some(out) = output.or(dest) else {
                anyhow::bail!("get -r writes a tree into a folder: give one with -o DIR");
            };
            tree::get(ops, &name, &out, force, quiet, console).await
        }
        Command::Get {
            name,
            output,
            dest,
            version,
            force,
            quiet,
            ..
        } => {
            let output = output.or(dest);
            let wanted = Wanted::version(&name, version.as_deref());
            get::run(ops, wanted, output.as_deref(), force, quiet, console).await
        }
        Command::Ls {
            prefix,
            recursive,
            json,
        } => ls::run(ops, prefix.as_deref(), recursive, json, console).await,
        Command::Rm {
            name,
            recursive: true,
            purge,
            yes,
        } => tree::rm(ops, &name, purge, yes, console).await,
        Command::Rm {
            name, purge, yes, ..
        } => rm::run(ops, &name, purge, yes, console).await,
        Command::Versions { name, json } => versions::list(ops, &name, json).await,
        Command::Undelete { name } => versions::undelete(ops, &name).await,
        Command::Restore { name, version } => versions::restore(ops, &name, &version).await,
        Command::Clean { names, yes } => rm::clean(ops, &names, yes, console).await,
        Command::Status { json } => status::run(ops, json).await,
        Command::Invite { expires, json } => invite::run(ops, &expires, json, console).await,
        Command::Devices { action, json } => devices::run(ops, action, json, console).await,
        Command::Rekey { all, json } => devices::rekey(ops, all, json).await,
        Command::Redundancy { set, json } => status::redundancy(ops, set, json).await,
        Command::S3 { action } => s3::run(ops, action).await,
        Command::Verify { name, json } => verify::run(ops, name.as_deref(), json).await,
        Command::Peers { json } => peers::run(ops, json).await,
        Command::Discover { json } => discover::run(ops, json).await,
        Command::Quota { action, json } => maintenance::quota(ops, action, json).await,
        Command::Limits { action, json } => maintenance::limits(ops, action, json).await,
        Command::Gc { json } => maintenance::gc(ops, json, console).await,
        Command::Metrics { json } => status::metrics(ops, json).await,
        Command::Send { name, peer } => transfer::send(ops, &name, &peer).await,
        Command::Fetch { name, peer } => transfer::fetch(ops, &name, &peer).await,
        Command::Completions { .. } | Command::Man => {
            anyhow::bail!(
                "that is for the shell: run `peervault completions` or `peervault man` there"
            )
        }
    }
}
