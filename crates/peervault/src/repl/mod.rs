//! The interactive prompt (`-interactive`).
//!
//! The REPL runs on its own thread (line editing blocks) and drives the node
//! directly through its API, blocking on the node's runtime for each command. The
//! command table below is the single source for dispatch, `help` and suggestions.
//! Words are split like a shell does, so names with spaces can be quoted.

use std::path::Path;

use anyhow::{Context, bail};
use clap::{CommandFactory, Parser, Subcommand};
use peervault_node::Node;
use rustyline::Editor;
use rustyline::config::Configurer;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use tokio::runtime::Handle;

use crate::cli::args::{Command, DESTRUCTIVE};
use crate::commands::{Console, Surface};
use crate::ui;

/// The prompt, as in the original.
pub const PROMPT: &str = "PeerVault> ";

/// Entries kept in the history file.
const HISTORY_ENTRIES: usize = 1000;

enum Flow {
    Continue,
    Quit,
}

/// One line at the prompt: a node command, with the same definitions as the
/// client subcommands (`store` and `list` are `put` and `ls` by their other
/// names), or one of the prompt's own.
#[derive(Debug, Parser)]
#[command(multicall = true, disable_help_subcommand = true)]
struct Line {
    #[command(subcommand)]
    command: LineCommand,
}

#[derive(Debug, Subcommand)]
enum LineCommand {
    #[command(flatten)]
    Node(Command),
    /// Show the commands, or details of one
    #[command(visible_alias = "?")]
    Help {
        /// A command.
        command: Option<String>,
    },
    /// Stop the node and leave (Ctrl-D too; Ctrl-C cancels the line being typed)
    #[command(visible_alias = "exit")]
    Quit,
}

/// Commands of the shell only: they print files for the shell, not a node's.
const SHELL_ONLY: &[&str] = &["completions", "man"];

/// The prompt's commands, as clap knows them, in the order `help` lists them.
fn commands() -> Vec<clap::Command> {
    Line::command()
        .get_subcommands()
        .filter(|c| !SHELL_ONLY.contains(&c.get_name()))
        .cloned()
        .collect()
}

/// What the prompt calls a command: the name users of the original type
/// (`store`, `list`, `delete`), which is a visible alias here.
fn prompt_name(command: &clap::Command) -> String {
    const OTHER_NAMES: &[&str] = &["store", "list", "delete"];
    command
        .get_visible_aliases()
        .find(|a| OTHER_NAMES.contains(a))
        .unwrap_or(command.get_name())
        .to_string()
}

/// Every word that names a command.
fn command_words() -> Vec<String> {
    commands()
        .iter()
        .flat_map(|c| {
            std::iter::once(c.get_name().to_string()).chain(c.get_all_aliases().map(str::to_string))
        })
        .collect()
}

/// `store <path> [name]`: the prompt's name and the positional arguments (a
/// subcommand such as `quota set <size>` as an optional part).
fn usage(command: &clap::Command) -> String {
    let mut out = prompt_name(command);
    for arg in command.get_positionals() {
        let name = arg
            .get_value_names()
            .and_then(|n| n.first())
            .map_or_else(|| arg.get_id().to_string(), ToString::to_string)
            .to_ascii_lowercase();
        if arg.is_required_set() {
            out.push_str(&format!(" <{name}>"));
        } else {
            out.push_str(&format!(" [{name}]"));
        }
    }
    for sub in command.get_subcommands() {
        let inner = usage(sub);
        out.push_str(&format!(" [{inner}]"));
    }
    out
}

fn about(command: &clap::Command) -> String {
    command
        .get_about()
        .map(|a| a.to_string().trim_end_matches('.').to_string())
        .unwrap_or_default()
}

fn find(word: &str) -> Option<clap::Command> {
    let word = word.to_ascii_lowercase();
    commands()
        .into_iter()
        .find(|c| c.get_name() == word || c.get_all_aliases().any(|a| a == word))
}

fn suggestion(word: &str) -> Option<String> {
    command_words()
        .into_iter()
        .filter(|name| !DESTRUCTIVE.contains(&name.as_str()))
        // Optimal string alignment: a swap of neighbours counts as one edit.
        .map(|name| {
            (
                strsim::osa_distance(&word.to_ascii_lowercase(), &name),
                name,
            )
        })
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, name)| name)
}

mod complete;

struct Repl {
    node: Node,
    rt: Handle,
    editor: Editor<complete::ReplHelper, DefaultHistory>,
}

/// Runs the prompt until `quit` or Ctrl-D; Ctrl-C cancels the line being typed,
/// as in a shell. History lives in `history`.
pub fn run(node: Node, rt: Handle, history: &Path) -> anyhow::Result<()> {
    let mut editor: Editor<complete::ReplHelper, DefaultHistory> =
        Editor::new().context("cannot start the line editor")?;
    let names = command_words();
    editor.set_helper(Some(complete::ReplHelper::new(
        node.clone(),
        rt.clone(),
        names,
    )));
    editor.set_completion_type(rustyline::CompletionType::List);
    let _ = editor.set_max_history_size(HISTORY_ENTRIES);
    // Only a regular file (or none yet) is history: reading a FIFO would hang the
    // prompt, and writing would go into a device (and chmod it).
    let history = match peervault_node::files::destination(history) {
        Ok(peervault_node::files::Destination::Replace(real)) => Some(real),
        Ok(other) => {
            eprintln!(
                "note: {} is not a regular file; the prompt keeps no history",
                other.path().display()
            );
            None
        }
        Err(e) => {
            eprintln!("note: the prompt keeps no history ({e})");
            None
        }
    };
    if let Some(history) = &history {
        let _ = editor.load_history(history);
    }
    // Log lines go above the prompt, not onto it (a terminal only: with a
    // script on stdin there is no prompt line to keep).
    let _logs_above = ui::stdin_is_terminal()
        .then(|| editor.create_external_printer().ok())
        .flatten()
        .map(crate::log_output::above_prompt);
    let mut repl = Repl { node, rt, editor };
    println!("Type 'help' for the commands, 'quit' or Ctrl-D to leave.");
    loop {
        let line = match repl.editor.readline(PROMPT) {
            Ok(line) => line,
            // As in a shell: Ctrl-C drops the line, it does not stop the node.
            Err(ReadlineError::Interrupted) => {
                eprintln!("(line cancelled; type quit or press Ctrl-D to leave)");
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("error: cannot read input: {e}");
                break;
            }
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = repl.editor.add_history_entry(line);
        let Some(words) = shlex::split(line) else {
            eprintln!("error: unbalanced quotes in {line:?}");
            continue;
        };
        let Some(first) = words.first() else {
            continue;
        };
        if find(first).is_none() {
            match suggestion(first) {
                Some(near) => eprintln!(
                    "Unknown command '{first}'. Did you mean '{near}'? Type 'help' for the list."
                ),
                None => eprintln!("Unknown command '{first}'. Type 'help' for the list."),
            }
            continue;
        }
        // Command words are matched whatever their case (`LS` is `ls`).
        let mut words = words;
        words[0] = words[0].to_ascii_lowercase();
        let line = match Line::try_parse_from(&words) {
            Ok(line) => line,
            Err(e) => {
                // `status --help` and the like print their help; mistakes their error.
                let _ = e.print();
                continue;
            }
        };
        match repl.run_line(line.command) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Quit) => break,
            Err(e) => eprintln!("error: {}", ui::error_text(&e)),
        }
    }
    if let Some(history) = &history {
        if let Err(e) = repl.editor.save_history(history) {
            tracing::debug!("could not save the REPL history: {e}");
        }
        // What was typed may name private files: the owner's only, like the data dir.
        let _ =
            std::fs::set_permissions(history, std::os::unix::fs::PermissionsExt::from_mode(0o600));
    }
    Ok(())
}

impl Repl {
    fn help(&mut self, command: Option<&str>) -> anyhow::Result<Flow> {
        match command {
            None => {
                println!("Commands:");
                for command in commands() {
                    println!("  {:<22} {}", usage(&command), about(&command));
                }
            }
            Some(word) => match find(word) {
                Some(command) => {
                    println!("{}\n  {}", usage(&command), about(&command));
                    let name = prompt_name(&command);
                    let also: Vec<String> = std::iter::once(command.get_name())
                        .chain(command.get_visible_aliases())
                        .filter(|w| *w != name)
                        .map(str::to_string)
                        .collect();
                    if !also.is_empty() {
                        println!("  Also: {}", also.join(", "));
                    }
                }
                None => bail!("no command '{word}'; type 'help' for the list"),
            },
        }
        Ok(Flow::Continue)
    }

    /// Runs one parsed line.
    fn run_line(&mut self, command: LineCommand) -> anyhow::Result<Flow> {
        let command = match command {
            LineCommand::Help { command } => return self.help(command.as_deref()),
            LineCommand::Quit => return Ok(Flow::Quit),
            LineCommand::Node(command) => command,
        };
        match command {
            Command::Completions { .. } | Command::Man => {
                bail!("that is for the shell: run `peervault completions` or `peervault man` there")
            }
            other => {
                let node = self.node.clone();
                let rt = self.rt.clone();
                let mut console = PromptConsole {
                    editor: &mut self.editor,
                };
                // The exit code is for scripts; the prompt has shown the outcome.
                rt.block_on(crate::commands::run_on(other, &node, &mut console))?;
                Ok(Flow::Continue)
            }
        }
    }
}

/// The prompt's console: questions through its line editor.
struct PromptConsole<'a> {
    editor: &'a mut Editor<complete::ReplHelper, DefaultHistory>,
}

impl Console for PromptConsole<'_> {
    fn surface(&self) -> Surface {
        Surface::Prompt
    }

    fn confirm(&mut self, question: &str, _refusal: &str) -> anyhow::Result<bool> {
        ask(self.editor, question)
    }

    fn read_line(&mut self, prompt: &str) -> anyhow::Result<Option<String>> {
        match self.editor.readline(prompt) {
            Ok(answer) => Ok(Some(answer)),
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Asks `question` through the line editor; Ctrl-C and Ctrl-D answer no.
fn ask(
    editor: &mut Editor<complete::ReplHelper, DefaultHistory>,
    question: &str,
) -> anyhow::Result<bool> {
    match editor.readline(&format!("{question} (y/N): ")) {
        Ok(answer) => Ok(matches!(
            answer.trim().to_ascii_lowercase().as_str(),
            "y" | "yes"
        )),
        Err(ReadlineError::Interrupted | ReadlineError::Eof) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_find_near_misses() {
        assert_eq!(suggestion("stor").as_deref(), Some("store"));
        assert_eq!(suggestion("lsit").as_deref(), Some("list"));
        assert_eq!(suggestion("qiut").as_deref(), Some("quit"));
        assert_eq!(suggestion("xyzzy"), None);
        // A typo never leads to a command that removes data.
        assert_eq!(suggestion("clear"), None);
        assert_eq!(suggestion("delet"), None);
        assert!(find("LS").is_some());
    }

    #[test]
    fn help_shows_the_prompts_names_and_the_shared_arguments() {
        let line = |word: &str| {
            let command = find(word).unwrap();
            (usage(&command), about(&command))
        };
        assert_eq!(line("store").0, "store <path> [name]");
        assert_eq!(line("put").0, "store <path> [name]");
        assert_eq!(line("get").0, "get <name> [dest]");
        assert_eq!(line("rm").0, "delete <name>");
        assert_eq!(line("list").0, "list [prefix]");
        assert_eq!(line("quota").0, "quota [set <size>]");
        assert_eq!(line("verify").0, "verify [name]");
        assert_eq!(line("send").0, "send <name> <peer>");
        assert!(
            line("fetch")
                .1
                .starts_with("Copy a file from that peer only")
        );
        assert!(
            find("completions").is_none(),
            "a shell-only command at the prompt"
        );
    }
}
