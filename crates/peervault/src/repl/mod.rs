//! The interactive prompt (`-interactive`).
//!
//! The REPL runs on its own thread (line editing blocks) and drives the node
//! directly through its API, blocking on the node's runtime for each command. The
//! command table below is the single source for dispatch, `help` and suggestions.
//! Words are split like a shell does, so names with spaces can be quoted.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use futures::StreamExt;
use peervault_node::{FileInfo, HumanSize, Node, NodeError, StoreError, parse_size};
use rustyline::Editor;
use rustyline::config::Configurer;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use tokio::io::AsyncWriteExt;
use tokio::runtime::Handle;

use crate::atomic_file::Download;
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

struct Spec {
    name: &'static str,
    aliases: &'static [&'static str],
    usage: &'static str,
    about: &'static str,
    run: fn(&mut Repl, &[String]) -> anyhow::Result<Flow>,
}

const COMMANDS: &[Spec] = &[
    Spec {
        name: "store",
        aliases: &["put"],
        usage: "store <path> [name]",
        about: "Store a local file in the vault (name defaults to the file's name)",
        run: Repl::store,
    },
    Spec {
        name: "get",
        aliases: &[],
        usage: "get <name> [dest]",
        about: "Read a file: write it to dest, or show it if it is short text",
        run: Repl::get,
    },
    Spec {
        name: "delete",
        aliases: &["rm"],
        usage: "delete <name>",
        about: "Delete a file from the vault (asks first)",
        run: Repl::delete,
    },
    Spec {
        name: "list",
        aliases: &["ls"],
        usage: "list",
        about: "List the files in the vault",
        run: Repl::list,
    },
    Spec {
        name: "quota",
        aliases: &[],
        usage: "quota [set <size>]",
        about: "Show the storage quota, or change it (e.g. quota set 5GB)",
        run: Repl::quota,
    },
    Spec {
        name: "status",
        aliases: &[],
        usage: "status",
        about: "Show this node's identity, addresses, peers and storage",
        run: Repl::status,
    },
    Spec {
        name: "invite",
        aliases: &[],
        usage: "invite",
        about: "Print a code that lets another node join this vault (peervault -join CODE)",
        run: Repl::invite,
    },
    Spec {
        name: "peers",
        aliases: &[],
        usage: "peers",
        about: "Show connected peers with their health",
        run: Repl::peers,
    },
    Spec {
        name: "discover",
        aliases: &[],
        usage: "discover",
        about: "Show what discovery found: mDNS, peer exchange, the DHT",
        run: Repl::discover,
    },
    Spec {
        name: "clean",
        aliases: &[],
        usage: "clean",
        about: "Drop this node's copies of every file (the vault and other nodes keep them)",
        run: Repl::clean,
    },
    Spec {
        name: "metrics",
        aliases: &[],
        usage: "metrics",
        about: "Show the node's metrics: files, network, storage, replication, GC",
        run: Repl::metrics,
    },
    Spec {
        name: "gc",
        aliases: &[],
        usage: "gc",
        about: "Check every chunk now, restore damaged ones from peers, remove orphans",
        run: Repl::gc,
    },
    Spec {
        name: "send",
        aliases: &[],
        usage: "send <file> <peer>",
        about: "Push a complete copy of a file to a peer (number, id or address)",
        run: Repl::send,
    },
    Spec {
        name: "fetch",
        aliases: &[],
        usage: "fetch <file> <peer>",
        about: "Copy a file from that peer only, so this node holds it",
        run: Repl::fetch,
    },
    Spec {
        name: "verify",
        aliases: &[],
        usage: "verify [name]",
        about: "Check every chunk of one file, or of all files",
        run: Repl::verify,
    },
    Spec {
        name: "help",
        aliases: &["?"],
        usage: "help [command]",
        about: "Show the commands, or details of one",
        run: Repl::help,
    },
    Spec {
        name: "quit",
        aliases: &["exit"],
        usage: "quit",
        about: "Stop the node and leave (Ctrl-D and Ctrl-C too)",
        run: |_, _| Ok(Flow::Quit),
    },
];

fn find(word: &str) -> Option<&'static Spec> {
    let word = word.to_ascii_lowercase();
    COMMANDS
        .iter()
        .find(|s| s.name == word || s.aliases.contains(&word.as_str()))
}

fn suggestion(word: &str) -> Option<&'static str> {
    COMMANDS
        .iter()
        .flat_map(|s| std::iter::once(s.name).chain(s.aliases.iter().copied()))
        // Optimal string alignment: a swap of neighbours counts as one edit.
        .map(|name| (strsim::osa_distance(&word.to_ascii_lowercase(), name), name))
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
    let names = COMMANDS
        .iter()
        .flat_map(|s| std::iter::once(s.name).chain(s.aliases.iter().copied()))
        .collect();
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
        let Some(spec) = find(first) else {
            match suggestion(first) {
                Some(near) => eprintln!(
                    "Unknown command '{first}'. Did you mean '{near}'? Type 'help' for the list."
                ),
                None => eprintln!("Unknown command '{first}'. Type 'help' for the list."),
            }
            continue;
        };
        match (spec.run)(&mut repl, &words[1..]) {
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

fn usage_error(usage: &str) -> anyhow::Error {
    anyhow::anyhow!("usage: {usage}")
}

impl Repl {
    fn ask(&mut self, question: &str) -> anyhow::Result<bool> {
        match self.editor.readline(&format!("{question} (y/N): ")) {
            Ok(answer) => Ok(matches!(
                answer.trim().to_ascii_lowercase().as_str(),
                "y" | "yes"
            )),
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn store(&mut self, args: &[String]) -> anyhow::Result<Flow> {
        let (path, name) = match args {
            [path] => (PathBuf::from(path), None),
            [path, name] => (PathBuf::from(path), Some(name.clone())),
            _ => return Err(usage_error("store <path> [name]")),
        };
        let file = std::fs::File::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            bail!("{} is a directory; store takes one file", path.display());
        }
        let name = match name {
            Some(name) => name,
            None => ui::vault_name_for(&path, "give one: store <path> <name>")?,
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

    fn get(&mut self, args: &[String]) -> anyhow::Result<Flow> {
        let (name, dest) = match args {
            [name] => (name.clone(), None),
            [name, dest] => (name.clone(), Some(PathBuf::from(dest))),
            _ => return Err(usage_error("get <name> [dest]")),
        };
        let node = self.node.clone();
        match dest {
            Some(dest) => {
                let size = self.rt.block_on(async {
                    let mut target = Download::open(&dest)
                        .await
                        .with_context(|| format!("cannot write {}", dest.display()))?;
                    let mut reader = node.get(&name).await?;
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
                    let info = node.stat(&name).await?;
                    if info.size > PRINT_LIMIT_BYTES {
                        return anyhow::Ok(Err(info.size));
                    }
                    let mut reader = node.get(&name).await?;
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

    fn delete(&mut self, args: &[String]) -> anyhow::Result<Flow> {
        let [name] = args else {
            return Err(usage_error("delete <name>"));
        };
        let node = self.node.clone();
        self.rt.block_on(node.stat(name))?;
        if !self.ask(&format!(
            "Delete '{name}' from the vault? Every node will drop its copy."
        ))? {
            println!("Kept '{name}'.");
            return Ok(Flow::Continue);
        }
        let out = self.rt.block_on(node.delete(name))?;
        println!(
            "File '{}' deleted successfully ({} freed on this node)",
            out.name,
            HumanSize(out.freed_bytes)
        );
        Ok(Flow::Continue)
    }

    fn list(&mut self, args: &[String]) -> anyhow::Result<Flow> {
        if !args.is_empty() {
            return Err(usage_error("list"));
        }
        let files = self.rt.block_on(self.node.list())?;
        if files.is_empty() {
            println!("The vault is empty. Store a file with: store <path>");
        } else {
            println!("Files in the vault ({}):", ui::plural(files.len(), "file"));
            println!("{}", ui::files_table(&files));
        }
        Ok(Flow::Continue)
    }

    fn quota(&mut self, args: &[String]) -> anyhow::Result<Flow> {
        match args {
            [] => println!("{}", ui::quota_block(&self.node.quota())),
            [set, size] if set == "set" => {
                let bytes = parse_size(size)?;
                self.node.set_quota(bytes)?;
                println!(
                    "Quota set to {} ({bytes} bytes) and saved to .quota_config.json",
                    HumanSize(bytes)
                );
            }
            _ => return Err(usage_error("quota [set <size>]")),
        }
        Ok(Flow::Continue)
    }

    fn status(&mut self, args: &[String]) -> anyhow::Result<Flow> {
        if !args.is_empty() {
            return Err(usage_error("status"));
        }
        let status = self.rt.block_on(self.node.status())?;
        println!("{}", ui::status_block(&status));
        Ok(Flow::Continue)
    }

    fn invite(&mut self, args: &[String]) -> anyhow::Result<Flow> {
        if !args.is_empty() {
            return Err(usage_error("invite"));
        }
        let code = self.rt.block_on(self.node.invite())?;
        println!("{code}");
        println!(
            "Start the new node with:  peervault -join {code}\n\
             (anyone holding this code can join the vault and read everything in it)"
        );
        Ok(Flow::Continue)
    }

    fn peers(&mut self, args: &[String]) -> anyhow::Result<Flow> {
        if !args.is_empty() {
            return Err(usage_error("peers"));
        }
        let peers = self.rt.block_on(self.node.peers());
        if peers.is_empty() {
            println!("No connected peers.");
        } else {
            println!("Connected Peers ({}):", peers.len());
            println!("{}", ui::peers_table(&peers));
        }
        Ok(Flow::Continue)
    }

    fn discover(&mut self, args: &[String]) -> anyhow::Result<Flow> {
        if !args.is_empty() {
            return Err(usage_error("discover"));
        }
        let discovery = self.rt.block_on(self.node.discovery());
        println!("{}", ui::discovery_block(&discovery));
        Ok(Flow::Continue)
    }

    fn clean(&mut self, args: &[String]) -> anyhow::Result<Flow> {
        if !args.is_empty() {
            return Err(usage_error("clean"));
        }
        let held: Vec<FileInfo> = self
            .rt
            .block_on(self.node.list())?
            .into_iter()
            .filter(|f| f.local)
            .collect();
        let bytes = self.node.quota().used_bytes;
        if !self.ask(&format!(
            "Remove this node's copies of {} ({} on disk)? The vault still lists them and other nodes keep theirs.",
            ui::plural(held.len(), "file"),
            HumanSize(bytes)
        ))? {
            println!("Nothing removed.");
            return Ok(Flow::Continue);
        }
        let report = self.rt.block_on(self.node.clean())?;
        println!("{}", ui::clean_lines(&report));
        Ok(Flow::Continue)
    }

    fn metrics(&mut self, args: &[String]) -> anyhow::Result<Flow> {
        if !args.is_empty() {
            return Err(usage_error("metrics"));
        }
        let snapshot = self.rt.block_on(self.node.metrics_snapshot());
        println!("{}", ui::metrics_block(&snapshot));
        Ok(Flow::Continue)
    }

    fn gc(&mut self, args: &[String]) -> anyhow::Result<Flow> {
        if !args.is_empty() {
            return Err(usage_error("gc"));
        }
        println!("Running garbage collection (checking every chunk)...");
        let summary = self.rt.block_on(self.node.collect_garbage())?;
        println!("{}", ui::gc_block(&summary));
        Ok(Flow::Continue)
    }

    fn send(&mut self, args: &[String]) -> anyhow::Result<Flow> {
        let [name, peer] = args else {
            return Err(usage_error("send <file> <peer>"));
        };
        let node = self.node.clone();
        let peer = self.rt.block_on(async {
            let peer = node.resolve_peer(peer).await?;
            node.send_to(name, peer).await?;
            anyhow::Ok(peer)
        })?;
        println!("File '{name}' sent to {peer}: it holds a complete, durable copy");
        Ok(Flow::Continue)
    }

    fn fetch(&mut self, args: &[String]) -> anyhow::Result<Flow> {
        let [name, peer] = args else {
            return Err(usage_error("fetch <file> <peer>"));
        };
        let node = self.node.clone();
        let (peer, chunks) = self.rt.block_on(async {
            let peer = node.resolve_peer(peer).await?;
            let chunks = node.fetch_from(name, peer).await?;
            anyhow::Ok((peer, chunks))
        })?;
        println!(
            "File '{name}' fetched from {peer} ({chunks} chunks copied); this node now holds it"
        );
        Ok(Flow::Continue)
    }

    fn verify(&mut self, args: &[String]) -> anyhow::Result<Flow> {
        let name = match args {
            [] => None,
            [name] => Some(name.as_str()),
            _ => return Err(usage_error("verify [name]")),
        };
        let files = self.rt.block_on(self.node.verify(name))?;
        println!("{}", ui::verify_lines(&files));
        Ok(Flow::Continue)
    }

    fn help(&mut self, args: &[String]) -> anyhow::Result<Flow> {
        match args {
            [] => {
                println!("Commands:");
                for spec in COMMANDS {
                    println!("  {:<22} {}", spec.usage, spec.about);
                }
            }
            [word] => match find(word) {
                Some(spec) => {
                    println!("{}\n  {}", spec.usage, spec.about);
                    if !spec.aliases.is_empty() {
                        println!("  Also: {}", spec.aliases.join(", "));
                    }
                }
                None => bail!("no command '{word}'; type 'help' for the list"),
            },
            _ => return Err(usage_error("help [command]")),
        }
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_find_near_misses() {
        assert_eq!(suggestion("stor"), Some("store"));
        assert_eq!(suggestion("lsit"), Some("list"));
        assert_eq!(suggestion("qiut"), Some("quit"));
        assert_eq!(suggestion("xyzzy"), None);
        assert!(find("LS").is_some());
    }

    #[test]
    fn printable_text() {
        assert!(is_printable_text(b"hello\nworld\t!\r\n"));
        assert!(!is_printable_text(b"\x1b[2J"));
        assert!(!is_printable_text(&[0xff, 0xfe]));
    }
}
