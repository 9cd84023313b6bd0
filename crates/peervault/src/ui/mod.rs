//! How things look to people: tables, quota bars, durations, confirmations.
//!
//! Shared by the REPL and the client commands so that both show the same layout.

use std::borrow::Cow;
use std::io::{self, BufRead, IsTerminal, Write};

use comfy_table::presets::UTF8_FULL;
use comfy_table::{CellAlignment, ContentArrangement, Table};
use peervault_node::{
    CleanReport, DiscoveryStatus, FileCheck, FileInfo, GcSummary, HumanSize, MetricsSnapshot,
    NodeStatus, PeerStatus, QuotaStatus, WorkerStatus,
};

mod grid;

use grid::Align;

/// Width of the quota bar in characters.
const BAR_WIDTH: usize = 50;

/// Narrower than this, a terminal's reported width is not believed (a pseudo
/// terminal without a size reports 0), and tables keep their natural width.
const MIN_TABLE_WIDTH: u16 = 40;

pub(crate) fn new_table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(UTF8_FULL).set_header(header.to_vec());
    // Wrap cells to fit a real terminal; never squash a table into a window
    // that only claims to be a few columns wide.
    let arrangement = match table.width() {
        Some(width) if width >= MIN_TABLE_WIDTH => ContentArrangement::Dynamic,
        _ => ContentArrangement::Disabled,
    };
    table.set_content_arrangement(arrangement);
    table
}

/// "1 file" / "3 files".
/// An error with its causes, each said once: most of our errors already name
/// their cause in their own message, which anyhow's `{:#}` would repeat.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The file list: name, size in bytes, first 8 hex digits of the hash, known
/// copies, and whether this node holds the file. Drawn by [`grid::draw`] where it
/// can (any list that needs no wrapping: `ls` of 100,000 files in 83 MB, not
/// 264), else by comfy-table, which draws the same table when both can.
pub fn files_table(files: &[FileInfo]) -> String {
    const HEADER: [&str; 5] = [
        "Filename",
        "Size (bytes)",
        "Hash (first 8 chars)",
        "Copies",
        "Here",
    ];
    let rows: Vec<[Cow<'_, str>; 5]> = files
        .iter()
        .map(|f| {
            [
                Cow::Borrowed(f.name.as_str()),
                Cow::Owned(f.size.to_string()),
                Cow::Borrowed(short_hash(&f.hash)),
                Cow::Owned(f.replicas.to_string()),
                Cow::Borrowed(if f.local { "yes" } else { "no" }),
            ]
        })
        .collect();
    let align = [
        Align::Left,
        Align::Right,
        Align::Left,
        Align::Right,
        Align::Left,
    ];
    // Where comfy-table would wrap to the terminal, a table wider than it is not
    // ours to draw; below MIN_TABLE_WIDTH neither wraps (see `new_table`).
    let wrap_to = grid::terminal_width().filter(|w| *w >= usize::from(MIN_TABLE_WIDTH));
    if let Some(drawn) = grid::draw(HEADER, align, &rows, wrap_to) {
        return drawn;
    }
    let mut table = new_table(&HEADER);
    for row in rows {
        table.add_row(row.map(Cow::into_owned));
    }
    for (col, align) in align.iter().enumerate() {
        if *align == Align::Right
            && let Some(col) = table.column_mut(col)
        {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    table.to_string()
}

/// The first 8 characters of a hash.
fn short_hash(hash: &str) -> &str {
    hash.char_indices()
        .nth(8)
        .map_or(hash, |(at, _)| &hash[..at])
}

/// One level of a folder (`ls PREFIX`): folders with their file count and
/// size, then files.
pub fn level_table(entries: &[serde_json::Value]) -> String {
    let mut table = new_table(&["Name", "Type", "Size", "Files / hash"]);
    for e in entries {
        let kind = e["type"].as_str().unwrap_or("file");
        let detail = if kind == "folder" {
            plural(e["files"].as_u64().unwrap_or(0) as usize, "file")
        } else {
            e["hash"].as_str().unwrap_or("").chars().take(8).collect()
        };
        table.add_row(vec![
            e["name"].as_str().unwrap_or("").to_string(),
            kind.to_string(),
            HumanSize(e["size"].as_u64().unwrap_or(0)).to_string(),
            detail,
        ]);
    }
    table.to_string()
}

/// A rate limit as given (`20MB`, `20MB/s`, `1.5 GB`), or `off`/`none`/`0` for
/// none: bytes per second.
pub fn parse_rate(text: &str) -> Result<Option<u64>, String> {
    let trimmed = text.trim();
    if ["off", "none", "unlimited", "0"].contains(&trimmed.to_ascii_lowercase().as_str()) {
        return Ok(None);
    }
    let amount = trimmed.strip_suffix("/s").unwrap_or(trimmed);
    match peervault_node::parse_size(amount) {
        Ok(0) => Ok(None),
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) => Err(format!(
            "{text:?} is not a rate ({e}); write bytes per second as 20MB or 500KB, or off"
        )),
    }
}

/// The bandwidth limits in one line.
pub fn limits_line(l: &peervault_node::RateLimits) -> String {
    format!(
        "Bandwidth: upload {}, download {}",
        peervault_node::bandwidth::describe(l.upload_bytes_per_second),
        peervault_node::bandwidth::describe(l.download_bytes_per_second)
    )
}

/// What a quota below what is already stored means, or `None` if it is not.
pub fn over_quota_warning(q: &QuotaStatus) -> Option<String> {
    (q.used_bytes > q.total_bytes).then(|| {
        format!(
            "warning: {} is stored here, {} over the new quota of {}. Nothing is removed; \
             new files and copies from peers are refused here until use falls below the quota \
             (rm deletes files from the vault; clean NAME drops this node's copy of files other nodes hold).",
            HumanSize(q.used_bytes),
            HumanSize(q.used_bytes - q.total_bytes),
            HumanSize(q.total_bytes)
        )
    })
}

/// Files offered for deletion when a store does not fit: number, name, size,
/// first 8 hex digits of the hash (the original's layout), and the copies known.
pub fn deletion_table(files: &[FileInfo]) -> String {
    let mut table = new_table(&["#", "Filename", "Size", "Hash (first 8)", "Copies"]);
    for (i, f) in files.iter().enumerate() {
        table.add_row(vec![
            (i + 1).to_string(),
            f.name.clone(),
            HumanSize(f.size).to_string(),
            f.hash.chars().take(8).collect(),
            f.replicas.to_string(),
        ]);
    }
    for col in [0, 2, 4] {
        if let Some(col) = table.column_mut(col) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    table.to_string()
}

/// Parses "1,3, 5" into distinct indexes into a list of `count` (1-based input).
pub fn parse_choices(answer: &str, count: usize) -> Result<Vec<usize>, String> {
    let mut chosen = Vec::new();
    for part in answer.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<usize>() {
            Ok(n) if (1..=count).contains(&n) => {
                if !chosen.contains(&(n - 1)) {
                    chosen.push(n - 1);
                }
            }
            _ => {
                return Err(format!(
                    "{part:?} is not a number from the list (1-{count})"
                ));
            }
        }
    }
    if chosen.is_empty() {
        return Err("no file numbers given".into());
    }
    Ok(chosen)
}

/// A peer's health in words: recent life signs and a sane round trip.
pub fn peer_health(p: &PeerStatus) -> &'static str {
    match (p.last_seen_seconds, p.rtt_ms) {
        (seen, _) if seen > 30.0 => "✗ Unresponsive",
        (_, Some(rtt)) if rtt > 1000.0 => "⚠ Slow",
        _ => "✓ Healthy",
    }
}

/// The `peers` table.
pub fn peers_table(peers: &[PeerStatus]) -> String {
    let mut table = new_table(&[
        "#",
        "Address",
        "Peer ID",
        "Status",
        "RTT",
        "Last Seen",
        "Found via",
        "Path",
    ]);
    for p in peers {
        table.add_row(vec![
            p.number.to_string(),
            p.address.clone(),
            p.peer_id.clone(),
            peer_health(p).to_string(),
            p.rtt_ms
                .map(|ms| format!("{ms:.1} ms"))
                .unwrap_or_else(|| "-".into()),
            format!("{} ago", human_duration(p.last_seen_seconds)),
            p.source.clone(),
            p.path.clone(),
        ]);
    }
    table.to_string()
}

/// The `devices` table.
pub fn devices_table(devices: &[peervault_node::devices::DeviceInfo]) -> String {
    let mut table = new_table(&[
        "Name",
        "Peer ID",
        "Online",
        "Last Seen",
        "Added By",
        "Added",
    ]);
    let name_of = |id: &str| {
        devices
            .iter()
            .find(|d| d.peer_id == id)
            .map(|d| d.name.clone())
            .unwrap_or_else(|| id.to_string())
    };
    for d in devices {
        let name = match d.this_device {
            true => format!("{} (this device)", d.name),
            false => d.name.clone(),
        };
        table.add_row(vec![
            name,
            d.peer_id.clone(),
            if d.online { "yes" } else { "no" }.to_string(),
            d.last_seen.clone().unwrap_or_else(|| "-".into()),
            name_of(&d.added_by),
            d.added_at.clone(),
        ]);
    }
    table.to_string()
}

/// `[█████░░░░░] 46.8%`
pub fn usage_bar(percent: f64) -> String {
    let filled = ((percent.clamp(0.0, 100.0) / 100.0) * BAR_WIDTH as f64).round() as usize;
    format!(
        "[{}{}] {percent:.1}%",
        "█".repeat(filled),
        "░".repeat(BAR_WIDTH - filled)
    )
}

/// The `quota` block.
pub fn quota_block(q: &QuotaStatus) -> String {
    let old_versions = match q.old_versions_bytes {
        Some(bytes) if bytes > 0 => format!(
            "  of which old versions: {} (they expire by the retention; see versions)\n",
            HumanSize(bytes)
        ),
        _ => String::new(),
    };
    format!(
        "=== Storage Quota ===\n\
         Used:      {}\n\
         {old_versions}\
         Total:     {}\n\
         Available: {}\n\
         Usage:     {:.1}%\n\
         {}",
        HumanSize(q.used_bytes),
        HumanSize(q.total_bytes),
        HumanSize(q.available_bytes),
        q.utilization_percent,
        usage_bar(q.utilization_percent)
    )
}

/// `2h 34m`, `5m 3s`, `42s`.
pub fn human_duration(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    let (d, h, m, sec) = (s / 86_400, (s / 3600) % 24, (s / 60) % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// The `metrics` block: the original's layout, then what it did not show.
pub fn metrics_block(m: &MetricsSnapshot) -> String {
    let started = m.system.start_time.replace('T', " ").replace('Z', " UTC");
    let mut out = format!(
        "=== PeerVault Metrics ===\n\n\
         File Operations:\n\
         \x20 Stored:     {}\n\
         \x20 Retrieved:  {}\n\
         \x20 Deleted:    {}\n\n\
         Network:\n\
         \x20 Bytes Sent:     {}\n\
         \x20 Bytes Received: {}\n\
         \x20 Peers Connected: {}\n\
         \x20 Peers Discovered: {}\n\n\
         Storage:\n\
         \x20 Used:        {}\n\
         \x20 Total:       {}\n\
         \x20 Utilization: {:.1}%\n\n\
         Replication:\n\
         \x20 Target copies:     {}\n\
         \x20 Under-replicated:  {}\n\
         \x20 Copies repaired:   {}\n\
         \x20 Replicas accepted: {}\n\n\
         Integrity GC:\n\
         \x20 Runs:      {}\n\
         \x20 Corrupted: {} ({} quarantined, {} restored)\n\
         \x20 Removed:   {}\n",
        m.files.stored,
        m.files.retrieved,
        m.files.deleted,
        HumanSize(m.network.bytes_sent),
        HumanSize(m.network.bytes_received),
        m.network.peers_connected,
        m.network.peers_discovered,
        HumanSize(m.storage.used_bytes),
        HumanSize(m.storage.total_bytes),
        m.storage.utilization_percent,
        m.replication.target,
        m.replication.under_replicated,
        m.replication.copies_repaired,
        m.replication.replicas_accepted,
        m.gc.runs,
        m.gc.chunks_corrupted,
        m.gc.chunks_quarantined,
        m.gc.chunks_restored,
        m.gc.chunks_removed,
    );
    if let Some(last) = &m.gc.last {
        out.push_str(&format!("  Last run:  {}\n", last.line()));
    }
    let refused: u64 = m.errors.refused.values().sum();
    let kinds: Vec<String> = m
        .errors
        .by_kind
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    let errors = if kinds.is_empty() {
        m.errors.total.to_string()
    } else {
        format!("{} ({})", m.errors.total, kinds.join(", "))
    };
    out.push_str(&format!(
        "\nSystem:\n  Errors:  {errors}\n  Refused: {refused} (no such file, bad name, no room: not errors of the node)\n  Uptime:  {}\n  Started: {started}",
        human_duration(m.system.uptime_seconds),
    ));
    out
}

/// The `status` block.
pub fn status_block(s: &NodeStatus) -> String {
    let list = |addrs: &[String]| {
        if addrs.is_empty() {
            "-".to_string()
        } else {
            addrs.join(", ")
        }
    };
    let listen = list(&s.listen_addrs);
    let advertised = list(&s.advertised_addrs);
    let relayed = if s.relayed_addrs.is_empty() {
        String::new()
    } else {
        format!("\nRelayed at:      {}", list(&s.relayed_addrs))
    };
    let paths = if s.paths.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = s
            .paths
            .iter()
            .map(|(path, n)| format!("{n} {path}"))
            .collect();
        format!("\nConnections:     {}", parts.join(", "))
    };
    let relaying = if s.relay_service {
        "\nRelay service:   on (for peers behind NAT)"
    } else {
        ""
    };
    let key_note = if s.insecure_default_key {
        " (the public default key: anyone can read this vault)".to_string()
    } else if s.key_source.is_empty() {
        String::new()
    } else {
        format!(" ({})", s.key_source)
    };
    let workers: String = s.workers.iter().map(worker_line).collect();
    let rekey = match s.rekey.state.as_str() {
        "" | "idle" => String::new(),
        state => format!(
            "; re-encryption to epoch {}: {state}, {} of {} chunks re-sealed",
            s.rekey.epoch, s.rekey.chunks_resealed, s.rekey.chunks_checked
        ),
    };
    // The original's first three lines, then the rest.
    let local_ip = s
        .listen_addrs
        .iter()
        .filter_map(|a| a.split('/').nth(2))
        .find(|ip| *ip != "127.0.0.1" && *ip != "::1")
        .or_else(|| s.listen_addrs.first().and_then(|a| a.split('/').nth(2)))
        .unwrap_or("-");
    let port = s
        .listen_addrs
        .first()
        .and_then(|a| a.rsplit('/').next())
        .unwrap_or("-");
    format!(
        "=== Node Status ===\n\
         Server listening on: :{port}\n\
         Local IP: {local_ip}\n\
         Connected peers: {}\n\n\
         Peer ID:         {}\n\
         Listening on:    {listen}\n\
                  Advertised:      {advertised}\n\
         Reachability:    {}{relayed}{relaying}{paths}\n\
         Replicas:        {}\n\
         Data dir:        {}\n\
         Files:           {}\n\
         Storage:         {} of {} used ({:.1}%)\n\
         Bandwidth:       upload {}, download {}\n\
         Transfers:       {} of {} buffers in use (peak {}, {} waited)\n\
         Uptime:          {}\n\
         Key fingerprint: {}{key_note}\n\
         Key epoch:       {} ({} recorded){rekey}\n\
         Version:         {}{workers}",
        s.peers_connected,
        s.peer_id,
        s.reachability,
        s.replicas,
        s.data_dir.display(),
        s.files,
        HumanSize(s.storage.used_bytes),
        HumanSize(s.storage.total_bytes),
        s.storage.utilization_percent,
        peervault_node::bandwidth::describe(s.limits.upload_bytes_per_second),
        peervault_node::bandwidth::describe(s.limits.download_bytes_per_second),
        HumanSize(s.transfer_memory.in_use_bytes),
        HumanSize(s.transfer_memory.budget_bytes),
        HumanSize(s.transfer_memory.peak_bytes),
        plural(s.transfer_memory.waits as usize, "time"),
        human_duration(s.uptime_seconds),
        s.key_fingerprint,
        s.key_epoch,
        plural(s.members, "member"),
        s.version,
    )
}

/// A background worker in the `status` block: what it does now, its rounds,
/// and what the last one did.
fn worker_line(w: &WorkerStatus) -> String {
    let now = match (w.state.as_str(), w.next_round_in_seconds) {
        ("running", _) => "running now".to_string(),
        (_, Some(next)) => format!("next round in {}", human_duration(next.ceil())),
        (state, None) => state.to_string(),
    };
    let failed = if w.failures > 0 {
        format!(", {} failed", w.failures)
    } else {
        String::new()
    };
    let last = w
        .last_outcome
        .as_ref()
        .map(|o| format!("\n                 last: {o}"))
        .unwrap_or_default();
    format!(
        "\nWorker {:<9} {now}; {}{failed}{last}",
        format!("{}:", w.name),
        plural(w.rounds as usize, "round")
    )
}

/// One line per file checked, then damaged chunks indented.
pub fn verify_lines(files: &[FileCheck]) -> String {
    let mut out = String::new();
    for f in files {
        if !f.held {
            out.push_str(&format!(
                "ELSEWHERE {} ({}; not held on this node)\n",
                f.name,
                plural(f.chunks, "chunk")
            ));
        } else if f.is_ok() {
            out.push_str(&format!(
                "OK       {} ({})\n",
                f.name,
                plural(f.chunks, "chunk")
            ));
        } else {
            out.push_str(&format!(
                "DAMAGED  {} ({} of {} damaged)\n",
                f.name,
                f.damaged.len(),
                plural(f.chunks, "chunk")
            ));
            for d in &f.damaged {
                let at = match (&d.segment, d.offset) {
                    (Some(segment), Some(offset)) => {
                        format!(" at byte {offset} of {}", segment.display())
                    }
                    _ => String::new(),
                };
                out.push_str(&format!(
                    "         chunk {} ({}): {}{at}\n",
                    d.index,
                    &d.chunk[..16],
                    d.problem
                ));
            }
        }
    }
    let damaged = files.iter().filter(|f| !f.is_ok()).count();
    let held = files.iter().filter(|f| f.held).count();
    let elsewhere = match files.len() - held {
        0 => String::new(),
        n => format!(" ({} held only by other nodes)", plural(n, "more file")),
    };
    if damaged == 0 {
        out.push_str(&format!(
            "All {} held here verified{elsewhere}.",
            plural(held, "file")
        ));
    } else {
        out.push_str(&format!(
            "{} of {} held here damaged{elsewhere}.",
            plural(damaged, "file"),
            plural(held, "file")
        ));
    }
    out
}

/// The name a local file gets in the vault when none is given: its file name
/// (never the path, so `../x/y` is stored as `y`). `hint` says how to give one.
pub fn vault_name_for(path: &std::path::Path, hint: &str) -> anyhow::Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("{} has no usable file name; {hint}", path.display()))
}

/// The `discover` block, in the original's layout.
pub fn discovery_block(d: &DiscoveryStatus) -> String {
    let mut out = String::from("=== Peer Discovery Status ===\n");
    if d.mdns_enabled {
        out.push_str(&format!("mDNS Discovered Peers: {}\n", d.mdns.len()));
        for p in &d.mdns {
            let addr = p.addresses.first().cloned().unwrap_or_else(|| "-".into());
            let note = if p.key_mismatch {
                " [network key mismatch: not connected]"
            } else if p.connected {
                " [connected]"
            } else {
                ""
            };
            out.push_str(&format!("  - {addr} ({}){note}\n", short_id(&p.peer_id)));
        }
    } else {
        out.push_str("mDNS: off (start the node with -discover-local)\n");
    }
    let exchange = if d.pex_enabled {
        "on connect and periodically"
    } else {
        "on connect only; -discover-pex adds periodic rounds"
    };
    out.push_str(&format!(
        "\nPeer Exchange (PEX): {} ({exchange})\n",
        plural(d.known.len(), "known peer")
    ));
    out.push_str(&format!(
        "  {} received, {} learnt from them\n",
        plural(d.pex_received as usize, "peer list"),
        plural(d.pex_learnt as usize, "new peer")
    ));
    for source in ["bootstrap", "mdns", "pex", "dht", "inbound", "manual"] {
        let n = d.known.iter().filter(|p| p.source == source).count();
        if n > 0 {
            out.push_str(&format!("  {source}: {}\n", plural(n, "peer")));
        }
    }
    out.push_str(&format!(
        "\nDHT: {} in the routing table",
        plural(d.dht_routing_table, "peer")
    ));
    if !d.banned.is_empty() {
        out.push_str(&format!(
            "\n\nBanned for sending invalid data: {}",
            plural(d.banned.len(), "peer")
        ));
        for (peer, left) in &d.banned {
            out.push_str(&format!("\n  {peer} ({left} s left)"));
        }
    }
    out
}

/// What `clean` did, exactly.
pub fn clean_lines(r: &CleanReport) -> String {
    let mut out = format!(
        "Removed this node's copies of {} ({} chunks, {} freed).",
        plural(r.files.len(), "file"),
        r.chunks,
        HumanSize(r.bytes_freed)
    );
    for name in &r.files {
        out.push_str(&format!("\n  - {name}"));
    }
    out.push_str(
        "\nThe vault still lists every file and other nodes keep their copies; reads here fetch from them.",
    );
    out
}

/// The result of a GC run: the original's summary line, then the details.
pub fn gc_block(s: &GcSummary) -> String {
    let mut out = s.line();
    if s.corrupted > s.repaired {
        out.push_str(&format!(
            "\n{} damaged chunks could not be restored from any peer (moved to quarantine/); `verify` names the files affected",
            s.corrupted - s.repaired
        ));
    }
    if s.bytes_freed > 0 {
        out.push_str(&format!("\n{} freed", HumanSize(s.bytes_freed)));
    }
    out
}

/// The first characters of a peer id, enough to tell peers apart on screen.
fn short_id(peer_id: &str) -> &str {
    let end = peer_id
        .char_indices()
        .nth(16)
        .map(|(i, _)| i)
        .unwrap_or(peer_id.len());
    &peer_id[..end]
}

/// The one-line outcome of a store, with the copies reached.
pub fn stored_line(file: &FileInfo, copies: usize, target: usize) -> String {
    let copies = if let Some(coded) = &file.redundancy {
        // K+M: the shards durable; readable while K of them are.
        let need: usize = coded
            .split('+')
            .next()
            .and_then(|k| k.parse().ok())
            .unwrap_or(target);
        match copies >= target {
            true => format!("{copies} of {target} shards durable, erasure coded {coded}"),
            false => format!(
                "only {copies} of {target} shards durable (erasure coded {coded}: {}); the \
                 repair worker places the rest when more peers are up",
                match copies >= need {
                    true => "readable",
                    false => "NOT readable until more are placed",
                }
            ),
        }
    } else if copies >= target {
        format!("{copies} of {target} copies durable")
    } else {
        format!(
            "only {copies} of {target} copies durable: not enough peers could take it; the repair worker makes the rest when more peers are up"
        )
    };
    format!(
        "File '{}' stored successfully ({}, hash {}; {copies})",
        file.name,
        HumanSize(file.size),
        &file.hash[..8],
    )
}

/// Asks a yes/no question on the terminal; anything but y/yes is no.
pub fn confirm(question: &str) -> io::Result<bool> {
    let mut stderr = io::stderr();
    write!(stderr, "{question} (y/N): ")?;
    stderr.flush()?;
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// True if standard input is an interactive terminal.
pub fn stdin_is_terminal() -> bool {
    io::stdin().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_and_durations() {
        assert!(usage_bar(46.8).ends_with("] 46.8%"));
        assert_eq!(usage_bar(100.0).matches('█').count(), BAR_WIDTH);
        assert_eq!(usage_bar(250.0).matches('█').count(), BAR_WIDTH);
        assert_eq!(human_duration(42.0), "42s");
        assert_eq!(human_duration(303.0), "5m 3s");
        assert_eq!(human_duration(9240.0), "2h 34m");
        assert_eq!(human_duration(90_000.0), "1d 1h");
    }

    #[test]
    fn file_table_shows_the_short_hash() {
        let files = vec![FileInfo {
            name: "myfile.txt".into(),
            size: 2048,
            hash: "a3b5c7d9e1".into(),
            chunks: 1,
            modified_unix_ms: 0,
            author: "x".into(),
            local: true,
            replicas: 3,
            kind: "file".into(),
            meta: Default::default(),
            redundancy: None,
        }];
        let table = files_table(&files);
        assert!(
            table.contains("myfile.txt") && table.contains("2048") && table.contains("a3b5c7d9")
        );
        assert!(!table.contains("a3b5c7d9e1"));
    }
}
