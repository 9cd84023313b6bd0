//! The command line, as clap definitions.
//!
//! `peervault [FLAGS]` runs a node; `peervault <COMMAND>` is a client of the node
//! that owns `--data-dir`. The original program's flags are single-dash Go flags
//! (`-addr :3000`); [`normalise_args`] rewrites them to clap's `--addr` before
//! parsing, so `-addr :3000`, `--addr :3000` and `--addr=:3000` all work.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

/// Help heading of the peer-to-peer options.
const NETWORK: &str = "Network options";

/// Help heading of the GC, repair and retention options.
const MAINTENANCE: &str = "Maintenance options";

#[derive(Debug, Parser)]
#[command(
    name = "peervault",
    version,
    about = "A peer-to-peer, encrypted, replicated file vault.",
    long_about = "A peer-to-peer, encrypted, replicated file vault.\n\n\
        Without a command, runs a node in the foreground until Ctrl-C or SIGTERM \
        (add -interactive for a prompt). With a command, talks to the node that owns \
        --data-dir on this machine.\n\n\
        Flags may be written -flag, --flag, --flag value or --flag=value.",
    after_help = "Examples:\n  \
        peervault -addr :3000 -interactive        run a node with a prompt\n  \
        peervault put ./report.pdf                store a file in the running node's vault\n  \
        peervault ls                              list the vault\n  \
        peervault get report.pdf -o ./copy.pdf    read it back\n\n\
        The default data dir is $XDG_DATA_HOME/peervault/node_port_<PORT> \
        (~/.local/share/peervault/node_port_3000 for -addr :3000)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(flatten)]
    pub node: NodeArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options for the node and for client commands alike.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Listen address: :PORT, HOST:PORT or a multiaddr [default: :3000]. Client
    /// commands use its port to find the node's default data dir.
    #[arg(long, global = true, value_name = "ADDR")]
    pub addr: Option<String>,

    /// Where the node keeps its vault, identity and quota
    /// [default: $XDG_DATA_HOME/peervault/node_port_<PORT>].
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Read settings from a TOML file (keys as the long flags, with _ for -).
    /// Flags given on the command line win.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log filter: error, warn, info, debug, trace, or a RUST_LOG-style directive
    /// [default: info; warn with -interactive].
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Log lines as text, or as one JSON object per line for log shippers
    /// [default: text].
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Log at debug level (same as -debug).
    #[arg(long, global = true)]
    pub verbose: bool,

    /// Log at debug level (same as -verbose).
    #[arg(long, global = true)]
    pub debug: bool,
}

/// Options that only a node uses.
#[derive(Debug, Args)]
#[command(next_help_heading = "Node options")]
pub struct NodeArgs {
    /// The vault's key: 64 hex digits, or a passphrase (stretched with the vault's
    /// own salt). Without one, the node uses the key kept in its data dir, made at
    /// random on its first start; add nodes with `peervault invite` and --join.
    #[arg(
        long,
        env = "PEERVAULT_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub key: Option<String>,

    /// Join the vault of the node that printed CODE (`peervault invite` there). The
    /// key is kept in this node's data dir; giving the code again later is harmless.
    #[arg(
        long,
        env = "PEERVAULT_JOIN",
        hide_env_values = true,
        value_name = "CODE"
    )]
    pub join: Option<String>,

    /// Run the interactive prompt (REPL) in this terminal.
    #[arg(long)]
    pub interactive: bool,

    /// Storage quota, e.g. 500MB, 5GB (1 GB = 1024^3 bytes). Saved to
    /// .quota_config.json; without it the saved value, a prompt (-interactive on a
    /// terminal, first start) or the 10 GB default applies.
    #[arg(long, value_name = "SIZE")]
    pub quota: Option<String>,

    /// Memory for the chunk buffers of all transfers together (S3, put/get,
    /// copies to peers, repair), e.g. 64MB, 1GB [default: 64MB]. Transfers
    /// beyond it wait for buffers to come back instead of failing.
    #[arg(long, value_name = "SIZE")]
    pub transfer_memory: Option<String>,

    /// Bytes per second the re-encryption after `rekey --all` re-seals at most
    /// (e.g. 64MB) [default: 256MB]: the node's own reads and writes keep the rest
    /// of the disk.
    #[arg(long, value_name = "SIZE")]
    pub rekey_rate: Option<String>,

    /// Upload limit, bytes per second for all peers together (e.g. 20MB; off for
    /// none): replication, repair and reads served to peers included. Change it
    /// at run time with `peervault limits set`.
    #[arg(long, value_name = "RATE", help_heading = NETWORK)]
    pub max_upload_rate: Option<String>,

    /// Download limit, bytes per second for all peers together (e.g. 20MB; off
    /// for none).
    #[arg(long, value_name = "RATE", help_heading = NETWORK)]
    pub max_download_rate: Option<String>,

    /// Address announced to peers (HOST:PORT or multiaddr), e.g. behind port forwarding.
    #[arg(long, value_name = "ADDR", help_heading = NETWORK)]
    pub advertise: Option<String>,

    /// Relay connections for peers behind NAT (circuit relay v2, with limits), so
    /// they can reach each other and punch holes for direct connections. Give it
    /// on nodes that peers can reach directly.
    #[arg(long, help_heading = NETWORK)]
    pub relay: bool,

    /// Announce only the --advertise address, not the addresses this node listens
    /// on (behind port forwarding or a proxy, where the listen addresses are not
    /// reachable from peers).
    #[arg(long, requires = "advertise", help_heading = NETWORK)]
    pub advertise_only: bool,

    /// Comma-separated peers to join at start (HOST:PORT or multiaddr); retried
    /// with backoff until they answer.
    #[arg(long, value_delimiter = ',', value_name = "ADDRS", help_heading = NETWORK)]
    pub bootstrap: Vec<String>,

    /// Advertise the address peers observe for this node (no outside service is asked).
    #[arg(long, help_heading = NETWORK)]
    pub public_ip: bool,

    /// Serve the dashboard, Prometheus metrics (/metrics, also /metrics/json and
    /// /metrics/human) and /health over HTTP on ADDR (e.g. :9090). The dashboard and
    /// /api need the token in <data dir>/http_token.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,

    /// Further names the HTTP server answers to, comma-separated (e.g. a reverse
    /// proxy's host name); the bound address and localhost always work. Requests
    /// for any other Host are refused (against DNS rebinding).
    #[arg(long, value_delimiter = ',', value_name = "HOSTS")]
    pub http_allow_host: Vec<String>,

    /// Serve the S3 API on ADDR (e.g. :9000) for restic, rclone, the AWS CLI
    /// and SDKs; a bucket is a top-level folder of the vault. Requests are
    /// signed with keys from `peervault s3 keys create NAME`. Plain HTTP: put a
    /// TLS proxy in front for other machines.
    #[arg(long, value_name = "ADDR")]
    pub s3: Option<String>,

    /// The domain of virtual-host style S3 addresses (BUCKET.DOMAIN); path
    /// style always works.
    #[arg(long, value_name = "DOMAIN")]
    pub s3_domain: Option<String>,

    /// Find peers on the local network with mDNS (they connect only if they share
    /// the network key).
    #[arg(long, help_heading = NETWORK)]
    pub discover_local: bool,

    /// Exchange peer lists with peers every --pex-interval (lists are always
    /// exchanged when a connection opens).
    #[arg(long, help_heading = NETWORK)]
    pub discover_pex: bool,

    /// Connections this node opens by itself; more may dial it, and unused ones beyond
    /// twice this are closed [default: 32].
    #[arg(long, value_name = "N", help_heading = NETWORK)]
    pub max_peers: Option<usize>,

    /// How often the catalogue is compared with a few random peers [default: 30s].
    #[arg(long, value_name = "DURATION", help_heading = NETWORK)]
    pub sync_interval: Option<String>,

    /// Copies of each file to keep, counting the writer: a number or "all" [default: 3].
    #[arg(long, value_name = "N|all", help_heading = NETWORK)]
    pub replicas: Option<String>,

    /// Erasure-code the files this node writes instead of copying them whole:
    /// K data and M parity shards per chunk on K+M nodes, readable with any M
    /// gone (e.g. 4+2 survives two lost nodes at 1.5x the size) [default: none].
    #[arg(long, value_name = "K+M", help_heading = NETWORK)]
    pub redundancy: Option<String>,

    /// How often peers exchange peer lists with -discover-pex [default: 5m].
    #[arg(long, value_name = "DURATION", help_heading = NETWORK)]
    pub pex_interval: Option<String>,

    /// How often the integrity GC runs: checks every chunk, restores damaged ones
    /// from peers, removes orphans [default: 1h].
    #[arg(long, value_name = "DURATION", help_heading = MAINTENANCE)]
    pub gc_interval: Option<String>,

    /// When the first GC run starts after the node does [default: 5m].
    #[arg(long, value_name = "DURATION", help_heading = MAINTENANCE)]
    pub gc_delay: Option<String>,

    /// Unreferenced chunks, and space left by interrupted writes, younger than this are
    /// kept [default: 10m].
    #[arg(long, value_name = "DURATION", help_heading = MAINTENANCE)]
    pub gc_grace: Option<String>,

    /// How long a holder may be gone before its files are copied to other nodes
    /// [default: 10m].
    #[arg(long, value_name = "DURATION", help_heading = MAINTENANCE)]
    pub repair_delay: Option<String>,

    /// How long deletions are remembered; a node away longer re-syncs before it
    /// offers its catalogue [default: 30d].
    #[arg(long, value_name = "DURATION", help_heading = MAINTENANCE)]
    pub tombstone_retention: Option<String>,

    /// Old versions of each file kept after overwrites, whatever their age
    /// (0 for none) [default: 10]. Use the same on every node.
    #[arg(long, value_name = "N", help_heading = MAINTENANCE)]
    pub keep_versions: Option<u32>,

    /// Old versions (and deleted files) are kept at least this long after they
    /// were replaced or deleted; 0 for no time [default: 30d]. Whichever of this
    /// and --keep-versions keeps more applies. Use the same on every node.
    #[arg(long, value_name = "DURATION", help_heading = MAINTENANCE)]
    pub version_retention: Option<String>,

    /// Run three nodes in this process with a temporary vault and show what
    /// PeerVault does (store, replicate, lose a node, read, delete, metrics), then exit.
    #[arg(long)]
    pub demo: bool,
}

/// The node-only flags given on the command line (not through the environment),
/// spelled `--flag`.
pub fn node_flags_given(matches: &clap::ArgMatches) -> Vec<String> {
    let command = Cli::command();
    let global: std::collections::HashSet<&str> = command
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.get_id().as_str())
        .collect();
    command
        .get_arguments()
        .filter(|a| !global.contains(a.get_id().as_str()) && a.get_long().is_some())
        .filter(|a| {
            matches.value_source(a.get_id().as_str())
                == Some(clap::parser::ValueSource::CommandLine)
        })
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect()
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `s3 keys ...`.
#[derive(Debug, Subcommand)]
pub enum S3Action {
    /// Access keys S3 clients sign requests with. They are kept in the vault,
    /// so every node's gateway accepts them.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
}

/// `s3 keys create NAME | ls | rm ID`.
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Make an access key; prints its id and secret for the client's config.
    Create {
        /// What the key is for (e.g. restic-laptop).
        name: String,
        /// Print {"access_key_id": ..., "secret_access_key": ...}.
        #[arg(long)]
        json: bool,
    },
    /// List the access keys (never their secrets).
    Ls {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete an access key on every node: requests signed with it fail.
    Rm {
        /// The access key id (from `s3 keys ls`).
        id: String,
    },
}

/// `limits set [--upload RATE] [--download RATE]`.
#[derive(Debug, Subcommand)]
pub enum LimitsAction {
    /// Change the bandwidth limits now, until the node stops (give the flags to
    /// the node, or put them in its config file, to keep them).
    Set {
        /// Upload limit in bytes per second (e.g. 20MB), or off.
        #[arg(long, value_name = "RATE")]
        upload: Option<String>,
        /// Download limit in bytes per second (e.g. 20MB), or off.
        #[arg(long, value_name = "RATE")]
        download: Option<String>,
    },
}

/// `quota set SIZE`.
#[derive(Debug, Subcommand)]
pub enum QuotaAction {
    /// Change the quota now and save it to .quota_config.json (e.g. 5GB, 500MB).
    Set {
        /// The new quota.
        size: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DevicesAction {
    /// Give a device a name (shown by `devices` on every node).
    Rename {
        /// The device: its peer id (or an unambiguous start of it) or its name.
        device: String,
        /// Its new name (1 to 64 printable characters).
        name: String,
    },
    /// Remove a device from the vault: no member accepts it again, it cannot read
    /// what is written from now on, and what it held is copied to the others.
    Remove {
        /// The device: its peer id (or an unambiguous start of it) or its name.
        device: String,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// Client commands: each talks to the node owning --data-dir.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Store a local file in the vault (name defaults to the file's name; - reads
    /// standard input, with a name).
    #[command(visible_alias = "store")]
    Put {
        /// The file to store, or - for standard input.
        path: PathBuf,
        /// Name in the vault [default: the file's name].
        #[arg(long, conflicts_with = "as_name")]
        name: Option<String>,
        /// Name in the vault, given after the path (as --name).
        #[arg(value_name = "NAME")]
        as_name: Option<String>,
        /// Store every file under the folder PATH as NAME/relative/path (NAME
        /// defaults to the folder's name), with modes, times and links; files
        /// unchanged since the last time are not sent again.
        #[arg(long, short = 'r')]
        recursive: bool,
        /// No progress bar.
        #[arg(long, short = 'q')]
        quiet: bool,
        /// Erasure-code this file as K data and M parity shards on K+M nodes
        /// (e.g. 4+2), or none for whole copies [default: the node's --redundancy].
        #[arg(long, value_name = "K+M|none", value_parser = peervault_node::Keeping::parse)]
        redundancy: Option<peervault_node::Keeping>,
    },
    /// Read a file: write it to a destination, or to standard output (the
    /// prompt shows short text instead).
    Get {
        /// Name in the vault.
        name: String,
        /// Where to write it; - or nothing for standard output.
        #[arg(short = 'o', long, value_name = "PATH", conflicts_with = "dest")]
        output: Option<PathBuf>,
        /// Where to write it, given after the name (as -o).
        #[arg(value_name = "DEST")]
        dest: Option<PathBuf>,
        /// Write every file under NAME/ into the folder given with -o, as it
        /// was stored (modes, times, links).
        #[arg(long, short = 'r', conflicts_with = "version")]
        recursive: bool,
        /// Read this old version (its label from `peervault versions NAME`, or
        /// its first 4 or more digits) instead of the current one.
        #[arg(long, value_name = "V")]
        version: Option<String>,
        /// Replace an existing file at the destination without asking.
        // No -f: a short letter makes Go-style words such as -frobnicate parse
        // as -f.
        #[arg(long)]
        force: bool,
        /// No progress bar.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// List the files in the vault.
    #[command(visible_alias = "list")]
    Ls {
        /// A folder: list what is directly in it (folders with their file
        /// count and size).
        prefix: Option<String>,
        /// Every file under the folder, not only one level.
        #[arg(long)]
        recursive: bool,
        /// Print JSON (an array of objects) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete a file from the vault (asks first).
    #[command(visible_alias = "delete")]
    Rm {
        /// Name in the vault.
        name: String,
        /// Delete every file under the folder NAME/.
        #[arg(long, short = 'r')]
        recursive: bool,
        /// Delete for good: every old version goes too, on every node, and
        /// nothing can bring the file back (for a file stored by mistake, or
        /// space needed now).
        #[arg(long)]
        purge: bool,
        /// Do not ask for confirmation (required when not on a terminal).
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// List the versions of a file kept by the vault, newest first (overwrites
    /// and deletes keep the versions before them; see --keep-versions).
    Versions {
        /// Name in the vault.
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Bring back a deleted file: its newest version becomes current again, on
    /// every node.
    Undelete {
        /// Name in the vault.
        name: String,
    },
    /// Make an old version of a file current again (a new write, so the
    /// version it replaces is kept in turn).
    Restore {
        /// Name in the vault.
        name: String,
        /// The version to bring back (from `peervault versions NAME`).
        #[arg(long, value_name = "V", required = true)]
        version: String,
    },
    /// The S3 gateway's access keys (start a node with -s3 ADDR to serve S3).
    S3 {
        #[command(subcommand)]
        action: S3Action,
    },
    /// Print an invitation: a code that lets one new device join this vault
    /// (`peervault -join CODE`), once, before it expires. It does not hold the vault's
    /// key: a member hands the keys to the device that redeems it.
    Invite {
        /// How long the invitation lasts (e.g. 30m, 24h, 7d; at most 30 days).
        #[arg(long, value_name = "DURATION", default_value = "24h")]
        expires: String,
        /// Print {"code", "id", "expires_at"} instead of the code alone.
        #[arg(long)]
        json: bool,
    },
    /// List the vault's member devices, or rename or remove one.
    Devices {
        #[command(subcommand)]
        action: Option<DevicesAction>,
        /// Print JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Start a new key epoch: data written from now on is sealed with a new key
    /// that only the current members receive.
    Rekey {
        /// Also re-encrypt everything every member holds in the new epoch, in the
        /// background (see `status`): then keys of earlier epochs, a removed
        /// device's included, open none of it.
        #[arg(long)]
        all: bool,
        /// Print {"epoch": N} instead of a sentence.
        #[arg(long)]
        json: bool,
    },
    /// Show or set how the vault keeps files: K+M erasure-codes each chunk in
    /// K data and M parity shards on K+M nodes (4+2 survives two lost nodes
    /// at 1.5x the size), none keeps whole copies. Files kept otherwise are
    /// re-encoded in the background, readable throughout.
    Redundancy {
        /// K+M, or none for whole copies [default: show the setting].
        #[arg(value_name = "K+M|none", value_parser = peervault_node::Keeping::parse)]
        set: Option<peervault_node::Keeping>,
        /// Print JSON instead of sentences.
        #[arg(long)]
        json: bool,
    },
    /// Show the node's identity, addresses, peers and storage.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show connected peers: address, peer id, health, how each was found.
    Peers {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show what discovery found: mDNS, peer exchange by source, the DHT.
    Discover {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show the storage quota, or change it with `quota set SIZE`.
    Quota {
        #[command(subcommand)]
        action: Option<QuotaAction>,
        /// Print JSON instead of text.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Show the bandwidth limits, or change them with `limits set`.
    Limits {
        #[command(subcommand)]
        action: Option<LimitsAction>,
        /// Print JSON instead of text.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Print a shell completion script: peervault completions bash > /etc/bash_completion.d/peervault
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): peervault man > /usr/local/share/man/man1/peervault.1
    Man,
    /// Drop this node's copies of some files, or of every file, to free space
    /// here; the vault and other nodes' copies stay, and the repair worker makes
    /// new copies where needed.
    Clean {
        /// Files whose copy here to drop [default: every file].
        names: Vec<String>,
        /// Do not ask for confirmation (required when not on a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Show the node's metrics: files, network, storage, replication, GC, errors.
    Metrics {
        /// Print JSON (the shape of /metrics/json) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run the integrity GC now: check every chunk, restore damaged ones from
    /// peers, remove orphans; prints the summary.
    Gc {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Push a complete copy of a file to one peer.
    Send {
        /// Name in the vault.
        name: String,
        /// The peer: its number in `peers`, its peer id, or its address.
        peer: String,
    },
    /// Copy a file from that peer only, so that this node holds it.
    Fetch {
        /// Name in the vault.
        name: String,
        /// The peer: its number in `peers`, its peer id, or its address.
        peer: String,
    },
    /// Check every chunk of one file (or of all files) against its hash and tag.
    Verify {
        /// Name in the vault [default: every file].
        name: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Commands that remove data: never offered as the correction of a typo
/// (`clear` is not `clean`), by clap's tips or the prompt's suggestions.
pub const DESTRUCTIVE: &[&str] = &["clean", "delete", "rm"];

/// `error` without a tip that would correct a typo into a destructive command.
pub fn without_destructive_tips(error: clap::Error) -> clap::Error {
    use clap::error::{ContextKind, ContextValue};
    let destructive = |value: &ContextValue| match value {
        ContextValue::String(name) => DESTRUCTIVE.contains(&name.as_str()),
        ContextValue::Strings(names) => names.iter().any(|n| DESTRUCTIVE.contains(&n.as_str())),
        _ => false,
    };
    if !error
        .get(ContextKind::SuggestedSubcommand)
        .is_some_and(destructive)
    {
        return error;
    }
    let mut told = clap::Error::new(error.kind()).with_cmd(&Cli::command());
    for (kind, value) in error.context() {
        if kind != ContextKind::SuggestedSubcommand {
            told.insert(kind, value.clone());
        }
    }
    told
}

/// Long and short option names known anywhere in the command tree.
fn option_names(cmd: &clap::Command, longs: &mut Vec<String>, shorts: &mut Vec<char>) {
    for arg in cmd.get_arguments() {
        longs.extend(arg.get_long().map(str::to_string));
        shorts.extend(arg.get_short());
    }
    for sub in cmd.get_subcommands() {
        option_names(sub, longs, shorts);
    }
}

/// Rewrites Go-style `-flag` and `-flag=value` to `--flag` forms clap understands.
/// A single-dash word that starts with a short option's letter (`-o`, `-ofile`, `-y`)
/// and is not a long option's name is left alone, as are values such as `-` or `-5`.
/// Everything after `--` is left alone. Unknown `-words` become `--words` so that
/// clap's error names the whole word (and suggests the nearest flag).
pub fn normalise_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let (mut known, mut shorts) = (Vec::new(), vec!['h', 'V']);
    option_names(&Cli::command(), &mut known, &mut shorts);
    known.push("help".into());
    known.push("version".into());
    let mut out = Vec::new();
    let mut passthrough = false;
    for (i, arg) in args.into_iter().enumerate() {
        if i == 0 || passthrough {
            out.push(arg);
            continue;
        }
        if arg == "--" {
            passthrough = true;
            out.push(arg);
            continue;
        }
        let rewritten = arg.to_str().and_then(|text| {
            let body = text.strip_prefix('-')?;
            if body.starts_with('-') {
                return None;
            }
            let name = body.split_once('=').map_or(body, |(n, _)| n);
            let first = name.chars().next()?;
            let is_long = name.len() > 1 && known.iter().any(|k| k == name);
            let is_unknown_word =
                name.len() > 1 && first.is_ascii_alphabetic() && !shorts.contains(&first);
            (is_long || is_unknown_word).then(|| OsString::from(format!("-{text}")))
        });
        out.push(rewritten.unwrap_or(arg));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let argv = normalise_args(args.iter().map(OsString::from));
        Cli::try_parse_from(argv)
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn single_and_double_dash_spellings_agree() {
        for args in [
            &["peervault", "-addr", ":3000", "-interactive"][..],
            &["peervault", "--addr", ":3000", "--interactive"],
            &["peervault", "--addr=:3000", "-interactive"],
            &["peervault", "-addr=:3000", "--interactive"],
        ] {
            let cli = parse(args).unwrap();
            assert_eq!(cli.global.addr.as_deref(), Some(":3000"), "{args:?}");
            assert!(cli.node.interactive);
        }
        let cli = parse(&[
            "peervault",
            "-bootstrap",
            "a:1,b:2",
            "-discover-local",
            "-public-ip",
        ])
        .unwrap();
        assert_eq!(cli.node.bootstrap, vec!["a:1", "b:2"]);
        assert!(cli.node.discover_local && cli.node.public_ip);
    }

    #[test]
    fn short_options_and_dash_values_are_left_alone() {
        let cli = parse(&["peervault", "get", "name", "-o", "-"]).unwrap();
        match cli.command {
            Some(Command::Get { output, .. }) => assert_eq!(output, Some(PathBuf::from("-"))),
            other => panic!("{other:?}"),
        }
        let cli = parse(&["peervault", "-data-dir", "/tmp/x", "ls", "-json"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Ls { json: true, .. })));
        assert_eq!(cli.global.data_dir, Some(PathBuf::from("/tmp/x")));
    }

    #[test]
    fn a_typo_is_never_corrected_into_a_destructive_command() {
        for (typo, tip) in [
            ("clear", None),
            ("remove", None),
            ("stat", Some("'status'")),
        ] {
            let error = without_destructive_tips(parse(&["peervault", typo]).unwrap_err());
            let text = error.render().to_string();
            assert!(
                text.contains(&format!("unrecognized subcommand '{typo}'")),
                "{text}"
            );
            match tip {
                Some(tip) => assert!(text.contains(tip), "{text}"),
                None => assert!(!text.contains("tip:"), "{text}"),
            }
            assert_eq!(error.exit_code(), 2);
        }
    }

    #[test]
    fn unknown_flags_fail() {
        assert!(parse(&["peervault", "-nonsense"]).is_err());
        assert!(parse(&["peervault", "--addr"]).is_err());
    }
}
