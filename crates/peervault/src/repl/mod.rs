//! The interactive prompt (`-interactive`).
//!
//! The REPL runs on its own thread (line editing blocks) and drives the node
//! directly through its API, blocking on the node's runtime for each command. The
//! command table below is the single source for dispatch, `help` and suggestions.
//! Words are split like a shell does, so names with spaces can be quoted.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{CommandFactory, Parser, Subcommand};
use futures::StreamExt;
use peervault_node::{FileInfo, HumanSize, Node, NodeError, StoreError};
use rustyline::Editor;
use rustyline::config::Configurer;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use tokio::io::AsyncWriteExt;
use tokio::runtime::Handle;

use crate::atomic_file::Download;
use crate::cli::args::Command;
use crate::commands::{Console, Surface};
use crate::progress::{Counted, Progress};
use crate::ui;

/// The prompt, as in the original.
pub const PROMPT: &str = "PeerVault> ";

/// Files up to this size that are text are printed by `get` without a destination.
const PRINT_LIMIT_BYTES: u64 = 64 * 1024;

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
    /// Stop the node and leave (Ctrl-D and Ctrl-C too)
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

/// True for bytes worth printing on a terminal.
fn is_printable_text(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes)
        .map(|s| {
            s.chars()
                .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
        })
        .unwrap_or(false)
}

mod complete;

struct Repl {
    node: Node,
    rt: Handle,
    editor: Editor<complete::ReplHelper, DefaultHistory>,
}

/// Runs the prompt until `quit`, Ctrl-D or Ctrl-C. History lives in `history`.
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
    let mut repl = Repl { node, rt, editor };
    println!("Type 'help' for the commands, 'quit' to leave.");
    loop {
        let line = match repl.editor.readline(PROMPT) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => break,
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
    fn store(&mut self, path: &Path, name: Option<String>) -> anyhow::Result<Flow> {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            bail!("{} is a directory; store takes one file", path.display());
        }
        let name = match name {
            Some(name) => name,
            None => ui::vault_name_for(path, "give one: store <path> <name>")?,
        };
        if !self.make_room(meta.len())? {
            return Ok(Flow::Continue);
        }
        let node = self.node.clone();
        let size = meta.len();
        let bar = Progress::bytes(Some(size), &format!("storing {name}"), false);
        let out = self.rt.block_on(async {
            let file = Counted::new(tokio::fs::File::from_std(file), Some(size), &bar);
            let (progress, mut copies) =
                tokio::sync::watch::channel(peervault_node::CopyProgress::default());
            let store = node.store_watched(&name, file, Some(size), Some(&progress));
            tokio::pin!(store);
            loop {
                tokio::select! {
                    stored = &mut store => break stored,
                    Ok(()) = copies.changed() => bar.copies(*copies.borrow_and_update()),
                }
            }
        });
        bar.finish();
        let out = out?;
        println!(
            "{}",
            ui::stored_line(&out.file, out.replication.copies, out.replication.target)
        );
        for why in out.replication.failure_lines() {
            eprintln!("  not copied: {why}");
        }
        Ok(Flow::Continue)
    }

    /// Before a store that would not fit the quota: the original's prompt to free
    /// space by deleting files held here. Returns false if the user cancelled (or
    /// nothing can be deleted); then nothing was stored and nothing deleted that the
    /// user did not pick.
    fn make_room(&mut self, size: u64) -> anyhow::Result<bool> {
        loop {
            let (needed, available) = match self.node.check_fits(size) {
                Ok(()) => return Ok(true),
                Err(NodeError::Store(StoreError::QuotaExceeded {
                    needed, available, ..
                })) => (needed, available),
                Err(e) => return Err(e.into()),
            };
            let files: Vec<FileInfo> = self
                .rt
                .block_on(self.node.list())?
                .into_iter()
                .filter(|f| f.local)
                .collect();
            println!("⚠️  Insufficient storage space!");
            println!(
                "Required: {}, Available: {} (Need to free: {})",
                HumanSize(needed),
                HumanSize(available),
                HumanSize(needed.saturating_sub(available))
            );
            if files.is_empty() {
                println!(
                    "No file held on this node can be deleted to make room; raise the quota with: quota set <size>"
                );
                return Ok(false);
            }
            println!("\nFiles available for deletion (a deleted file is removed from every node):");
            println!("{}", ui::deletion_table(&files));
            let prompt =
                "Enter file numbers to delete (comma-separated, e.g., 1,3,5) or 'cancel': ";
            let answer = match self.editor.readline(prompt) {
                Ok(answer) => answer.trim().to_string(),
                Err(ReadlineError::Interrupted | ReadlineError::Eof) => String::new(),
                Err(e) => return Err(e.into()),
            };
            if answer.is_empty() || answer.eq_ignore_ascii_case("cancel") {
                println!("Store cancelled; nothing was deleted.");
                return Ok(false);
            }
            let chosen = match ui::parse_choices(&answer, files.len()) {
                Ok(chosen) => chosen,
                Err(why) => {
                    eprintln!("error: {why}");
                    continue;
                }
            };
            for i in chosen {
                let name = &files[i].name;
                let out = self.rt.block_on(self.node.delete(name))?;
                println!(
                    "File '{name}' deleted successfully ({} freed on this node)",
                    HumanSize(out.freed_bytes)
                );
            }
        }
    }

    fn get(&mut self, name: &str, dest: Option<PathBuf>) -> anyhow::Result<Flow> {
        let node = self.node.clone();
        match dest {
            Some(dest) => {
                let size = self.rt.block_on(async {
                    let mut target = Download::open(&dest)
                        .await
                        .with_context(|| format!("cannot write {}", dest.display()))?;
                    let mut reader = node.get(name).await?;
                    let size = reader.manifest().size;
                    let bar = Progress::bytes(Some(size), &format!("reading {name}"), false);
                    let mut done = 0u64;
                    while let Some(piece) = reader.next().await {
                        let piece = piece?;
                        target.file().write_all(&piece).await?;
                        done += piece.len() as u64;
                        bar.set(done);
                    }
                    bar.finish();
                    target.commit().await?;
                    anyhow::Ok(size)
                })?;
                println!(
                    "File '{name}' retrieved successfully to {} ({})",
                    dest.display(),
                    HumanSize(size)
                );
            }
            None => {
                let contents = self.rt.block_on(async {
                    let info = node.stat(name).await?;
                    if info.size > PRINT_LIMIT_BYTES {
                        return anyhow::Ok(Err(info.size));
                    }
                    let mut reader = node.get(name).await?;
                    let mut bytes = Vec::new();
                    while let Some(piece) = reader.next().await {
                        bytes.extend_from_slice(&piece?);
                    }
                    Ok(Ok(bytes))
                })?;
                match contents {
                    Ok(bytes) if is_printable_text(&bytes) => {
                        println!(
                            "File '{name}' retrieved successfully ({}):",
                            HumanSize(bytes.len() as u64)
                        );
                        let mut out = std::io::stdout().lock();
                        out.write_all(&bytes)?;
                        if !bytes.ends_with(b"\n") {
                            writeln!(out)?;
                        }
                    }
                    Ok(bytes) => bail!(
                        "'{name}' is {} of binary data; give a destination: get {name} <path>",
                        HumanSize(bytes.len() as u64)
                    ),
                    Err(size) => bail!(
                        "'{name}' is {} (too long to show); give a destination: get {name} <path>",
                        HumanSize(size)
                    ),
                }
            }
        }
        Ok(Flow::Continue)
    }

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
            Command::Put {
                path,
                name,
                as_name,
                quiet: _,
            } => self.store(&path, name.or(as_name)),
            Command::Get {
                name,
                output,
                dest,
                quiet: _,
            } => self.get(&name, output.or(dest)),
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
        assert_eq!(line("list").0, "list");
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

    #[test]
    fn printable_text() {
        assert!(is_printable_text(b"hello\nworld\t!\r\n"));
        assert!(!is_printable_text(b"\x1b[2J"));
        assert!(!is_printable_text(&[0xff, 0xfe]));
    }
}
