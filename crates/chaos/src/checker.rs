//! The randomised workload checker: clients put, overwrite, read and delete
//! while faults are injected; afterwards, with every fault healed, the vault's
//! state is checked against what the clients were told.
//!
//! What must hold (each failure is counted in the [`Report`]):
//! * every node lists the same files with the same contents;
//! * the content a name ends with was written by some operation that no
//!   acknowledged operation on the same name superseded (started after it had
//!   finished): an acknowledged write is never lost and a deleted file never
//!   comes back, unless something later replaced it;
//! * every read returned bytes that some write wrote (no garbage, ever);
//! * every file is readable, byte-identical, on every node, and has its copies;
//! * after GC no node holds unreferenced data, and `verify` passes everywhere;
//! * no node crashed, except by injection.
//!
//! Everything random comes from one seed, so a failing run can be replayed with
//! the same operations and faults (not the same thread interleavings).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use peervault::control::client::Client;
use peervault::control::proto::{Request, Response};
use serde::Serialize;

use peervault_testkit::data::files_under;

use crate::cluster::{Cluster, ClusterConfig};
use crate::proxy::Fault;

/// Operations slower than this count as failed (their effect is unknown).
const OP_TIMEOUT: Duration = Duration::from_secs(30);
/// Two operations closer than this are concurrent (versions are milliseconds).
const CONCURRENT_WITHIN: Duration = Duration::from_millis(5);
/// Time allowed for catalogues to agree and copies to be made after healing.
const SETTLE: Duration = Duration::from_secs(90);

/// Flags every node of a checker run gets: quick catalogue sync, repair and GC
/// grace, so that a short run settles in seconds (GC itself runs when asked).
pub const NODE_FLAGS: [&str; 8] = [
    "--sync-interval",
    "2s",
    "--repair-delay",
    "3s",
    "--gc-grace",
    "1s",
    "--gc-delay",
    "1h",
];

/// A small, fast, seedable generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.below(high - low + 1))
    }
}

/// The faults a run may inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Kill,
    Pause,
    Delay,
    Drop,
    Stall,
    Reset,
    Partition,
    Corrupt,
}

impl FaultKind {
    pub const ALL: [FaultKind; 8] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Delay,
        FaultKind::Drop,
        FaultKind::Stall,
        FaultKind::Reset,
        FaultKind::Partition,
        FaultKind::Corrupt,
    ];

    pub fn parse(word: &str) -> Option<FaultKind> {
        Self::ALL
            .into_iter()
            .find(|k| format!("{k:?}").eq_ignore_ascii_case(word))
    }
}

/// How a run goes.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub cluster: ClusterConfig,
    pub seed: u64,
    pub ops: usize,
    pub clients: usize,
    /// Distinct names the clients write (few, so that operations collide).
    pub names: usize,
    /// Largest file written (some files span several chunks).
    pub max_size: u64,
    pub faults: Vec<FaultKind>,
    /// How long the workload should take: clients pause between operations so
    /// that faults have time to hit them.
    pub duration: Duration,
}

#[derive(Debug, Clone)]
enum Effect {
    Write {
        hash: blake3::Hash,
    },
    Delete,
    /// Reads change nothing; they are recorded for the counts.
    Read,
}

#[derive(Debug, Clone)]
struct Op {
    name: String,
    effect: Effect,
    start: Instant,
    end: Instant,
    acked: bool,
}

/// What a run found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub seed: u64,
    pub nodes: usize,
    pub ops: usize,
    pub acked_writes: usize,
    pub acked_deletes: usize,
    pub reads: usize,
    pub failed_ops: usize,
    pub faults: BTreeMap<FaultKind, usize>,
    pub seconds: f64,
    /// Names whose final state no unsuperseded acknowledged write explains.
    pub lost_writes: usize,
    /// Names that came back although only deletes were in force.
    pub resurrected: usize,
    /// Reads that returned bytes nobody wrote.
    pub garbage_reads: usize,
    /// Final files a node could not read back byte-identical.
    pub unreadable: usize,
    /// Nodes whose listing differs from node 0's after settling.
    pub divergent_nodes: usize,
    /// Files with fewer copies than the target after settling.
    pub under_replicated: usize,
    /// Unreferenced chunks a second GC run still found.
    pub orphans_after_gc: usize,
    pub verify_failures: usize,
    /// Nodes that died without being killed, or logged a panic.
    pub crashes: usize,
    /// Peers banned by a node. Every node of a run is honest, so a ban means the
    /// faults (a damaged disk, a broken connection) made one look hostile, and it
    /// would keep two members apart for the length of the ban.
    pub bans: usize,
    /// Human-readable details of every violation.
    pub problems: Vec<String>,
}

impl Report {
    pub fn violations(&self) -> usize {
        self.lost_writes
            + self.resurrected
            + self.garbage_reads
            + self.unreadable
            + self.divergent_nodes
            + self.under_replicated
            + self.orphans_after_gc
            + self.verify_failures
            + self.crashes
            + self.bans
    }
}

fn content(seed: u64, op: u64, len: u64) -> Vec<u8> {
    let mut out = vec![0u8; len as usize];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .update(&op.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// Runs the workload with faults, heals, checks. The cluster lives in
/// `config.cluster.dir`.
pub async fn run(config: RunConfig) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut cluster = Cluster::start(&config.cluster).await?;
    let clients: Vec<Client> = cluster.nodes.iter().map(|n| n.client.clone()).collect();
    let history = Arc::new(Mutex::new(Vec::<Op>::new()));
    let written: Arc<Mutex<HashMap<String, HashSet<blake3::Hash>>>> = Default::default();
    let mut report = Report {
        seed: config.seed,
        nodes: config.cluster.nodes,
        ops: config.ops,
        ..Report::default()
    };
    let garbage = Arc::new(Mutex::new(Vec::<String>::new()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let mut workers = Vec::new();
    for c in 0..config.clients {
        let per_client = config.ops / config.clients + usize::from(c < config.ops % config.clients);
        let mut rng = Rng::new(config.seed ^ (0x1000 + c as u64));
        let (clients, history, written, garbage) = (
            clients.clone(),
            history.clone(),
            written.clone(),
            garbage.clone(),
        );
        let config = config.clone();
        let pause_ms = (config.duration.as_millis() as u64 / per_client.max(1) as u64).max(1);
        workers.push(tokio::spawn(async move {
            for i in 0..per_client {
                tokio::time::sleep(rng.millis(0, 2 * pause_ms)).await;
                let op_id = ((c as u64) << 32) | i as u64;
                let node = rng.below(clients.len() as u64) as usize;
                let client = &clients[node];
                let name = format!("file-{}", rng.below(config.names as u64));
                let roll = rng.below(100);
                let start = Instant::now();
                if roll < 50 {
                    let len = if rng.below(4) == 0 {
                        rng.below(config.max_size + 1)
                    } else {
                        rng.below(64 * 1024)
                    };
                    let bytes = content(config.seed, op_id, len);
                    let hash = blake3::hash(&bytes);
                    written
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(name.clone())
                        .or_default()
                        .insert(hash);
                    let mut quiet = |_| {};
                    let put = client.put(&name, Some(len), &bytes[..], &mut quiet);
                    let acked = matches!(
                        tokio::time::timeout(OP_TIMEOUT, put).await,
                        Ok(Ok(Response::Stored { .. }))
                    );
                    record(&history, &name, Effect::Write { hash }, start, acked);
                } else if roll < 80 {
                    let mut sink = Vec::new();
                    let mut quiet = |_: u64, _: &_| {};
                    let get = client.get(&name, &mut sink, &mut quiet);
                    if let Ok(Ok(_)) = tokio::time::timeout(OP_TIMEOUT, get).await {
                        let hash = blake3::hash(&sink);
                        let known = written
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get(&name)
                            .is_some_and(|set| set.contains(&hash));
                        if !known {
                            garbage.lock().unwrap_or_else(|p| p.into_inner()).push(format!(
                                "a read of {name} on node {node} returned {} bytes nobody wrote",
                                sink.len()
                            ));
                        }
                    }
                    record(&history, &name, Effect::Read, start, false);
                } else {
                    let request = Request::Delete {
                        name: name.clone(),
                        purge: false,
                    };
                    let delete = client.call(&request);
                    let acked = matches!(
                        tokio::time::timeout(OP_TIMEOUT, delete).await,
                        Ok(Ok(Response::Deleted { .. }))
                    );
                    record(&history, &name, Effect::Delete, start, acked);
                }
            }
        }));
    }

    // Faults, one at a time, until the clients are done.
    let mut fault_rng = Rng::new(config.seed ^ 0xfa17);
    let faults = async {
        let mut injected: BTreeMap<FaultKind, usize> = BTreeMap::new();
        while !config.faults.is_empty() && !done.load(std::sync::atomic::Ordering::Relaxed) {
            tokio::time::sleep(fault_rng.millis(300, 1500)).await;
            if done.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let kind = config.faults[fault_rng.below(config.faults.len() as u64) as usize];
            let i = fault_rng.below(cluster.nodes.len() as u64) as usize;
            let hold = fault_rng.millis(500, 3000);
            *injected.entry(kind).or_default() += 1;
            tracing::info!("fault: {kind:?} on node {i} for {hold:?}");
            match kind {
                FaultKind::Kill => {
                    cluster.nodes[i].kill9();
                    tokio::time::sleep(hold).await;
                    cluster.nodes[i].restart()?;
                }
                FaultKind::Pause => {
                    cluster.nodes[i].pause();
                    tokio::time::sleep(hold).await;
                    cluster.nodes[i].resume();
                }
                FaultKind::Delay | FaultKind::Drop | FaultKind::Stall | FaultKind::Reset => {
                    let fault = match kind {
                        FaultKind::Delay => Fault::Delay(fault_rng.millis(20, 300)),
                        FaultKind::Drop => Fault::Drop,
                        FaultKind::Stall => Fault::Stall,
                        _ => Fault::Reset,
                    };
                    cluster.set_fault(i, fault);
                    tokio::time::sleep(hold).await;
                    cluster.set_fault(i, Fault::Pass);
                }
                FaultKind::Partition => {
                    cluster.isolate(i);
                    tokio::time::sleep(hold).await;
                    for node in &cluster.nodes {
                        node.proxy.cut(&[]);
                    }
                }
                FaultKind::Corrupt => {
                    corrupt_a_chunk(&cluster.nodes[i].data_dir, &mut fault_rng);
                }
            }
        }
        anyhow::Ok(injected)
    };
    let work = async {
        for worker in workers {
            let _ = worker.await;
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let (injected, ()) = tokio::join!(faults, work);
    report.faults = injected?;
    cluster.heal()?;
    cluster.wait_connected(SETTLE).await?;

    let history = history.lock().unwrap_or_else(|p| p.into_inner()).clone();
    report.acked_writes = history
        .iter()
        .filter(|o| o.acked && matches!(o.effect, Effect::Write { .. }))
        .count();
    report.acked_deletes = history
        .iter()
        .filter(|o| o.acked && matches!(o.effect, Effect::Delete))
        .count();
    let garbage = garbage.lock().unwrap_or_else(|p| p.into_inner()).clone();
    report.garbage_reads = garbage.len();
    report.problems.extend(garbage);
    report.reads = history.iter().filter(|o| is_read(o)).count();
    report.failed_ops = history.iter().filter(|o| !o.acked && !is_read(o)).count();

    check(&mut cluster, &history, &config, &mut report).await?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn is_read(op: &Op) -> bool {
    matches!(op.effect, Effect::Read)
}

fn record(history: &Mutex<Vec<Op>>, name: &str, effect: Effect, start: Instant, acked: bool) {
    history.lock().unwrap_or_else(|p| p.into_inner()).push(Op {
        name: name.to_string(),
        effect,
        start,
        end: Instant::now(),
        acked,
    });
}

/// Damages one block of one segment file: flips a byte in it, or zeroes it (as a
/// torn write would). The block may hold a chunk, padding or nothing at all.
fn corrupt_a_chunk(data_dir: &std::path::Path, rng: &mut Rng) {
    use std::os::unix::fs::FileExt;
    const BLOCK: u64 = 4096;
    let segments = files_under(&data_dir.join("segments"));
    if segments.is_empty() {
        return;
    }
    let path = &segments[rng.below(segments.len() as u64) as usize];
    let Ok(file) = std::fs::File::options().read(true).write(true).open(path) else {
        return;
    };
    let blocks = file.metadata().map(|m| m.len() / BLOCK).unwrap_or(0);
    if blocks == 0 {
        return;
    }
    let at = rng.below(blocks) * BLOCK;
    let mut block = vec![0u8; BLOCK as usize];
    if rng.below(2) == 0 {
        if file.read_exact_at(&mut block, at).is_err() {
            return;
        }
        let byte = rng.below(BLOCK) as usize;
        block[byte] ^= 0x40;
    }
    let _ = file.write_all_at(&block, at);
}

/// Listing of a node: name -> content hash (hex).
async fn listing(client: &Client) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(client
        .list()
        .await?
        .into_iter()
        .map(|f| (f.name, f.hash))
        .collect())
}

/// The states a name may end in, given its history: the writes and deletes that
/// no acknowledged operation superseded. `None` means the name may be absent.
fn allowed_endings(ops: &[&Op]) -> (HashSet<String>, bool, bool) {
    let in_force: Vec<&&Op> = ops
        .iter()
        .filter(|o| !is_read(o))
        .filter(|o| {
            !ops.iter().any(|later| {
                later.acked && !is_read(later) && later.start > o.end + CONCURRENT_WITHIN
            })
        })
        .collect();
    let hashes = in_force
        .iter()
        .filter_map(|o| match o.effect {
            Effect::Write { hash } => Some(hash.to_hex().to_string()),
            Effect::Delete | Effect::Read => None,
        })
        .collect();
    let acked_write_in_force = in_force
        .iter()
        .any(|o| o.acked && matches!(o.effect, Effect::Write { .. }));
    let may_be_absent = in_force
        .iter()
        .any(|o| matches!(o.effect, Effect::Delete) || !o.acked)
        || in_force.is_empty();
    (hashes, may_be_absent, acked_write_in_force)
}

async fn check(
    cluster: &mut Cluster,
    history: &[Op],
    config: &RunConfig,
    report: &mut Report,
) -> anyhow::Result<()> {
    // Catalogues converge.
    let deadline = Instant::now() + SETTLE;
    let reference = loop {
        let mut listings = Vec::new();
        for node in &cluster.nodes {
            listings.push(listing(&node.client).await?);
        }
        let agree = listings.windows(2).all(|w| w[0] == w[1]);
        if agree || Instant::now() > deadline {
            for (i, l) in listings.iter().enumerate().skip(1) {
                if *l != listings[0] {
                    report.divergent_nodes += 1;
                    report.problems.push(format!(
                        "node {i} lists {l:?}, node 0 lists {:?}",
                        listings[0]
                    ));
                }
            }
            break listings.swap_remove(0);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // Each name ends in a state its history allows.
    let mut names: HashSet<&str> = history.iter().map(|o| o.name.as_str()).collect();
    names.extend(reference.keys().map(String::as_str));
    for name in names {
        let ops: Vec<&Op> = history.iter().filter(|o| o.name == name).collect();
        let (hashes, may_be_absent, acked_write) = allowed_endings(&ops);
        match reference.get(name) {
            Some(hash) if hashes.contains(hash) => {}
            Some(hash) => {
                if hashes.is_empty() {
                    report.resurrected += 1;
                } else {
                    report.lost_writes += 1;
                }
                report.problems.push(format!(
                    "{name} ends as {hash:.12}, which no operation in force wrote"
                ));
            }
            None if may_be_absent => {}
            None => {
                report.lost_writes += usize::from(acked_write);
                report.problems.push(format!(
                    "{name} is gone although an acknowledged write was in force"
                ));
            }
        }
    }

    // Every file reads back byte-identical everywhere, with its copies.
    for (name, hash) in &reference {
        for node in &cluster.nodes {
            let mut sink = Vec::new();
            let got =
                tokio::time::timeout(OP_TIMEOUT, node.client.get(name, &mut sink, &mut |_, _| {}))
                    .await;
            let ok = matches!(got, Ok(Ok(_))) && blake3::hash(&sink).to_hex().as_str() == hash;
            if !ok {
                report.unreadable += 1;
                report.problems.push(format!(
                    "node {} cannot read {name} back ({got:?})",
                    node.index
                ));
            }
        }
    }
    // Whole copies, or (coded) nodes holding shards: one per shard index
    // when there are nodes enough.
    let holders = match &config.cluster.redundancy {
        None => config.cluster.replicas,
        Some(coded) => coded
            .split('+')
            .map(|n| n.trim().parse::<usize>().unwrap_or(0))
            .sum(),
    };
    let want = holders.min(cluster.nodes.len());
    let deadline = Instant::now() + SETTLE;
    loop {
        let files = cluster.nodes[0].client.list().await?;
        let short = files.iter().filter(|f| f.replicas < want).count();
        if short == 0 || Instant::now() > deadline {
            report.under_replicated = short;
            if short > 0 {
                report
                    .problems
                    .push(format!("{short} files have fewer than {want} copies"));
            }
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // GC repairs what was damaged and removes what nothing references; a second
    // run must find nothing left to remove, and verify must pass.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for round in 0..2 {
        for node in &cluster.nodes {
            let summary = node.client.call(&Request::Gc).await?;
            if round == 1
                && let Response::Gc { summary } = summary
                && summary.orphaned > 0
            {
                report.orphans_after_gc += summary.orphaned;
                report.problems.push(format!(
                    "node {} still had {} unreferenced chunks after GC",
                    node.index, summary.orphaned
                ));
            }
        }
    }
    for node in &cluster.nodes {
        match node.client.call(&Request::Verify { name: None }).await? {
            Response::Verified { files } => {
                let bad = files.iter().filter(|f| !f.damaged.is_empty()).count();
                if bad > 0 {
                    report.verify_failures += bad;
                    report
                        .problems
                        .push(format!("node {} fails verify on {bad} files", node.index));
                }
            }
            other => bail!("unexpected reply to verify: {other:?}"),
        }
    }

    for node in &mut cluster.nodes {
        let log = node.log_text();
        if !node.is_running() || log.contains("panicked") {
            report.crashes += 1;
            report.problems.push(format!(
                "node {} crashed; its log ends:\n{}",
                node.index,
                crash_lines(&log)
            ));
        }
        for line in log.lines().filter(|l| l.contains("banned for")) {
            report.bans += 1;
            report
                .problems
                .push(format!("node {} banned an honest peer: {line}", node.index));
        }
    }
    Ok(())
}

/// What a crashed node's log says of the crash: from its first panic on, or
/// else its last lines (a run's data dir, and the log with it, is often gone
/// by the time anyone reads the report).
fn crash_lines(log: &str) -> String {
    const LINES: usize = 20;
    let lines: Vec<&str> = log.lines().collect();
    let from = lines
        .iter()
        .position(|l| l.contains("panicked"))
        .unwrap_or(lines.len().saturating_sub(LINES));
    lines[from..]
        .iter()
        .take(LINES)
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(effect: Effect, start_ms: u64, end_ms: u64, acked: bool, base: Instant) -> Op {
        Op {
            name: "x".into(),
            effect,
            start: base + Duration::from_millis(start_ms),
            end: base + Duration::from_millis(end_ms),
            acked,
        }
    }

    fn write(tag: &[u8]) -> Effect {
        Effect::Write {
            hash: blake3::hash(tag),
        }
    }

    fn hex(tag: &[u8]) -> String {
        blake3::hash(tag).to_hex().to_string()
    }

    #[test]
    fn a_later_acknowledged_write_is_the_only_allowed_ending() {
        let t = Instant::now();
        let ops = [
            op(write(b"a"), 0, 10, true, t),
            op(write(b"b"), 100, 110, true, t),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        let (hashes, may_be_absent, acked) = allowed_endings(&refs);
        assert_eq!(hashes, HashSet::from([hex(b"b")]));
        assert!(!may_be_absent, "losing b would be a lost write");
        assert!(acked);
    }

    #[test]
    fn concurrent_writes_may_end_either_way_and_a_delete_in_force_allows_absence() {
        let t = Instant::now();
        let ops = [
            op(write(b"a"), 0, 50, true, t),
            op(write(b"b"), 10, 60, true, t),
            op(Effect::Delete, 20, 30, true, t),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        let (hashes, may_be_absent, _) = allowed_endings(&refs);
        assert_eq!(hashes, HashSet::from([hex(b"a"), hex(b"b")]));
        assert!(may_be_absent);
    }

    #[test]
    fn a_delete_after_a_write_forbids_the_write_coming_back() {
        let t = Instant::now();
        let ops = [
            op(write(b"a"), 0, 10, true, t),
            op(Effect::Delete, 100, 110, true, t),
            op(Effect::Read, 200, 210, false, t),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        let (hashes, may_be_absent, _) = allowed_endings(&refs);
        assert!(hashes.is_empty(), "a resurrected write would be caught");
        assert!(may_be_absent);
    }

    #[test]
    fn an_unacknowledged_write_may_or_may_not_have_landed() {
        let t = Instant::now();
        let ops = [
            op(write(b"a"), 0, 10, true, t),
            op(write(b"b"), 100, 30_000, false, t),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        let (hashes, may_be_absent, _) = allowed_endings(&refs);
        assert_eq!(hashes, HashSet::from([hex(b"a"), hex(b"b")]));
        assert!(may_be_absent, "the failed write's outcome is unknown");
    }

    #[test]
    fn the_generator_is_reproducible() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert!(Rng::new(8).next_u64() != xs[0]);
        assert!((0..1000).all(|_| a.below(7) < 7));
    }
}
