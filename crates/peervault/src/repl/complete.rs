//! Tab completion at the prompt: command names, local paths where a command takes
//! one, vault names, peers (by number and peer id), and `quota set`.
//!
//! Vault names and peers are read from the node at the moment Tab is pressed
//! (the local catalogue and the connected peers: no network round trip), so
//! completion always offers what exists now.

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

use peervault_node::Node;
use tokio::runtime::Handle;

/// What a command's arguments are, position by position.
#[derive(Clone, Copy)]
enum Arg {
    Path,
    VaultName,
    Peer,
    Command,
    QuotaAction,
}

fn args_of(command: &str) -> &'static [Arg] {
    match command {
        "store" | "put" => &[Arg::Path, Arg::VaultName],
        "get" => &[Arg::VaultName, Arg::Path],
        "delete" | "rm" | "verify" | "versions" | "undelete" | "restore" => &[Arg::VaultName],
        "send" | "fetch" => &[Arg::VaultName, Arg::Peer],
        "help" => &[Arg::Command],
        "quota" => &[Arg::QuotaAction],
        _ => &[],
    }
}

pub struct ReplHelper {
    node: Node,
    rt: Handle,
    paths: FilenameCompleter,
    commands: Vec<String>,
}

impl ReplHelper {
    pub fn new(node: Node, rt: Handle, commands: Vec<String>) -> Self {
        Self {
            node,
            rt,
            paths: FilenameCompleter::new(),
            commands,
        }
    }

    fn vault_names(&self) -> Vec<String> {
        self.rt.block_on(self.node.names()).unwrap_or_default()
    }

    fn peers(&self) -> Vec<(String, String)> {
        self.rt
            .block_on(self.node.peers())
            .into_iter()
            .map(|p| (p.number.to_string(), p.peer_id))
            .collect()
    }
}

/// A candidate shown as `display` and inserted as `text` followed by a space,
/// quoted when the text has spaces or quotes (the prompt splits words like a
/// shell).
fn pair(display: &str, text: &str) -> Pair {
    let quoted = shlex::try_quote(text)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| text.to_string());
    Pair {
        display: display.to_string(),
        replacement: format!("{quoted} "),
    }
}

fn starting_with<'a>(words: impl IntoIterator<Item = &'a str>, prefix: &str) -> Vec<Pair> {
    let mut out: Vec<Pair> = words
        .into_iter()
        .filter(|w| w.starts_with(prefix))
        .map(|w| pair(w, w))
        .collect();
    out.sort_by(|a, b| a.display.cmp(&b.display));
    out.dedup_by(|a, b| a.display == b.display);
    out
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let prefix = before[start..].trim_start_matches(['"', '\'']);
        let done: Vec<String> = shlex::split(&before[..start]).unwrap_or_default();
        let Some((command, args)) = done.split_first() else {
            return Ok((
                start,
                starting_with(self.commands.iter().map(String::as_str), prefix),
            ));
        };
        let Some(kind) = args_of(command).get(args.len()) else {
            return Ok((pos, Vec::new()));
        };
        let candidates = match kind {
            Arg::Path => return self.paths.complete(line, pos, ctx),
            Arg::Command => starting_with(self.commands.iter().map(String::as_str), prefix),
            Arg::QuotaAction => starting_with(["set"], prefix),
            Arg::VaultName => {
                let names = self.vault_names();
                starting_with(names.iter().map(String::as_str), prefix)
            }
            Arg::Peer => {
                let mut out: Vec<Pair> = self
                    .peers()
                    .iter()
                    .filter(|(n, id)| n.starts_with(prefix) || id.starts_with(prefix))
                    .map(|(n, id)| {
                        if id.starts_with(prefix) && !prefix.is_empty() {
                            pair(id, id)
                        } else {
                            pair(&format!("{n} ({id})"), n)
                        }
                    })
                    .collect();
                out.sort_by(|a, b| a.display.cmp(&b.display));
                out
            }
        };
        Ok((start, candidates))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {}

impl Validator for ReplHelper {}

impl Helper for ReplHelper {}
