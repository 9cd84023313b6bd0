//! The results table and the machine it was measured on.

use comfy_table::presets::UTF8_FULL;
use comfy_table::{CellAlignment, Table};

/// One measured workload beside its baseline.
pub struct Row {
    pub workload: String,
    pub bytes: u64,
    pub seconds: f64,
    pub baseline: String,
    pub baseline_seconds: f64,
    pub target: f64,
}

/// The middle value (the upper one of two); NaN for none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

pub fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / 1_000_000.0 / seconds.max(1e-9)
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub fn throughput_table(rows: &[Row]) -> String {
    let mut table = Table::new();
    table.load_style(UTF8_FULL).set_header(vec![
        "workload",
        "size",
        "MB/s",
        "baseline",
        "baseline MB/s",
        "ratio",
        "target",
    ]);
    for r in rows {
        let ours = mb_per_s(r.bytes, r.seconds);
        let base = mb_per_s(r.bytes, r.baseline_seconds);
        let ratio = ours / base;
        table.add_row(vec![
            r.workload.clone(),
            mib(r.bytes),
            format!("{ours:.0}"),
            r.baseline.clone(),
            format!("{base:.0}"),
            format!("{ratio:.2}"),
            format!(
                "≥ {:.1} {}",
                r.target,
                if ratio >= r.target { "✓" } else { "✗" }
            ),
        ]);
    }
    for col in 2..6 {
        if let Some(c) = table.column_mut(col) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    table.to_string()
}

/// CPU, cores, memory and file system of the benchmark directory.
pub fn machine(dir: &std::path::Path) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let fs = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "{model}, {cores} cores, {mem_gib:.0} GiB RAM, {fs} file system at {}",
        dir.display()
    )
}
