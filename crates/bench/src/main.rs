//! `peervault-bench`: measures PeerVault beside raw baselines taken in the same run
//! and prints ratios. It never asserts on time: machines are noisy, and the point is
//! the comparison.
//!
//! ```text
//! cargo build --release --workspace
//! target/release/peervault-bench local --size 1GiB --rss-size 4GiB
//! ```

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use peervault_node::parse_size;

mod baseline;
mod cluster;
mod coded;
mod delay;
mod local;
mod node;
mod rekey;
mod report;
mod rtt;
mod s3;
mod scale;
mod small;
mod tree;

#[derive(Parser)]
#[command(
    name = "peervault-bench",
    about = "Benchmarks PeerVault against raw baselines measured in the same run"
)]
struct Args {
    /// The peervault binary [default: beside this program].
    #[arg(long, global = true)]
    peervault: Option<PathBuf>,
    /// Where to put data dirs and files [default: the system temp dir].
    #[arg(long, global = true)]
    dir: Option<PathBuf>,
    /// Never drop the page cache (reads are then measured warm only).
    #[arg(long, global = true)]
    keep_caches: bool,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand)]
enum Workload {
    /// One node: put and get through the client, against write+fsync and read.
    Local {
        /// Bytes to store and read back.
        #[arg(long, default_value = "1GiB", value_parser = parse_size)]
        size: u64,
        /// Also measure the node's peak RSS for a 64 MiB file and a file this large (0 skips).
        #[arg(long, default_value = "4GiB", value_parser = parse_size)]
        rss_size: u64,
        /// Rounds of each measurement (medians are reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Four nodes: a put with 3 replicas, and a get on a node holding nothing,
    /// against plain loopback TCP.
    Cluster {
        /// Bytes to store and read back.
        #[arg(long, default_value = "1GiB", value_parser = parse_size)]
        size: u64,
        /// Rounds of each measurement (medians are reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Also measure every node's peak RSS for a 64 MiB file and a file this
        /// large, on fresh nodes (0 skips).
        #[arg(long, default_value = "4GiB", value_parser = parse_size)]
        rss_size: u64,
    },
    /// Three nodes: many 4 KiB files with 3 copies each, against raw
    /// create+write+fsync of three times as many files.
    Small {
        /// How many files to store.
        #[arg(long, default_value_t = 10_000)]
        files: usize,
        /// Puts in flight at once (each on its own connection).
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Three nodes: a folder of many files (mostly small) put with `put -r`
    /// and read with `get -r`, against `cp -r` + `sync`; and the bytes sent for
    /// a 100-byte change to a large file.
    Tree {
        /// How many files in the folder.
        #[arg(long, default_value_t = 10_000)]
        files: usize,
        /// Cap every file at this many bytes (for very many files: 100,000
        /// files of the usual mix would be 6 GB per copy).
        #[arg(long)]
        max_file_size: Option<usize>,
    },
    /// One node serving S3: a multipart upload and download through boto3
    /// (python3 with boto3 installed), against `put` and `get` on the same vault.
    S3 {
        /// Bytes of the object.
        #[arg(long, default_value = "1GiB", value_parser = parse_size)]
        size: u64,
        /// Also measure the node's peak RSS for an object this large (0 skips).
        #[arg(long, default_value = "4GiB", value_parser = parse_size)]
        rss_size: u64,
        /// Rounds of each measurement (medians are reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// The client's part size in MiB (boto3's default is 8).
        #[arg(long, default_value_t = 8)]
        part_mib: u64,
    },
    /// `rekey --all`: re-encryption of what one node holds against its `get`
    /// (paced as by default, and unpaced), and a replicated put on three nodes
    /// while they re-encrypt, against one alone.
    Rekey {
        /// Bytes each node holds and re-encrypts.
        #[arg(long, default_value = "1GiB", value_parser = parse_size)]
        size: u64,
        /// Rounds of each measurement (medians are reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Six nodes: `--redundancy 4+2` against `--replicas 3` on the same
    /// file: put and get time, bytes the writer sent, bytes stored. Each node
    /// on a shaped link in a network namespace of its own (root needed), or on
    /// loopback with --rate-mbit 0.
    Coded {
        /// Bytes of the file.
        #[arg(long, default_value = "64MiB", value_parser = parse_size)]
        size: u64,
        /// Each node's link, each way, in Mbit/s (0: loopback, unshaped).
        #[arg(long, default_value_t = 100)]
        rate_mbit: u64,
    },
    /// Three nodes each behind a link with a rate and a delay (a proxy): a
    /// put with two copies and a remote get, the first on new connections and
    /// the next on the same ones, against one plain TCP stream through the
    /// same kind of link, per round trip, with peak RSS.
    Rtt {
        /// Bytes of each file (at 64 MiB, the round trips every acknowledged
        /// transfer needs are a large part of the time across 200 ms).
        #[arg(long, default_value = "256MiB", value_parser = parse_size)]
        size: u64,
        /// One-way delays in ms, comma-separated (the round trip is twice).
        #[arg(long, value_delimiter = ',', default_value = "50,100")]
        delay_ms: Vec<u64>,
        /// Each link's rate each way, in Mbit/s.
        #[arg(long, default_value_t = 1000)]
        rate_mbit: u64,
    },
    /// One node filled with many tiny files: `ls`, restart and a new node's
    /// catalogue sync, per catalogue size, to show how they grow.
    Scale {
        /// Catalogue sizes to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        entries: Vec<usize>,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = node::find_binary(args.peervault)?;
    let dir = args.dir.unwrap_or_else(std::env::temp_dir);
    let runtime = tokio::runtime::Runtime::new()?;
    println!("machine: {}", report::machine(&dir));
    match args.workload {
        Workload::Local {
            size,
            rss_size,
            rounds,
        } => runtime.block_on(local::run(local::LocalArgs {
            bin: &bin,
            dir: &dir,
            size,
            rss_size,
            rounds: rounds.max(1),
            drop_caches: !args.keep_caches,
        })),
        Workload::Cluster {
            size,
            rounds,
            rss_size,
        } => runtime.block_on(cluster::run(cluster::ClusterArgs {
            bin: &bin,
            dir: &dir,
            size,
            rounds: rounds.max(1),
            rss_size,
            drop_caches: !args.keep_caches,
        })),
        Workload::S3 {
            size,
            rss_size,
            rounds,
            part_mib,
        } => runtime.block_on(s3::run(s3::S3Args {
            bin: &bin,
            dir: &dir,
            size,
            rss_size,
            rounds: rounds.max(1),
            part_mib: part_mib.max(5),
            drop_caches: !args.keep_caches,
        })),
        Workload::Rekey { size, rounds } => runtime.block_on(rekey::run(rekey::RekeyArgs {
            bin: &bin,
            dir: &dir,
            size,
            rounds: rounds.max(1),
        })),
        Workload::Rtt {
            size,
            delay_ms,
            rate_mbit,
        } => runtime.block_on(rtt::run(rtt::RttArgs {
            bin: &bin,
            dir: &dir,
            size,
            delays_ms: delay_ms,
            rate_mbit: rate_mbit.max(1),
        })),
        Workload::Coded { size, rate_mbit } => runtime.block_on(coded::run(coded::CodedArgs {
            bin: &bin,
            dir: &dir,
            size,
            rate_mbit,
        })),
        Workload::Scale { entries } => runtime.block_on(scale::run(scale::ScaleArgs {
            bin: &bin,
            dir: &dir,
            entries,
        })),
        Workload::Tree {
            files,
            max_file_size,
        } => runtime.block_on(tree::run(tree::TreeArgs {
            bin: &bin,
            dir: &dir,
            files: files.max(1),
            max_file_size: max_file_size.unwrap_or(usize::MAX),
        })),
        Workload::Small { files, concurrency } => runtime.block_on(small::run(small::SmallArgs {
            bin: &bin,
            dir: &dir,
            files: files.max(1),
            concurrency,
        })),
    }
}
