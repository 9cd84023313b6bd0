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
    /// The ratio to reach; `None` for a row shown for information.
    pub target: Option<f64>,
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

/// A ratio to two decimals, rounded down: 0.596 is "0.59", not a "0.60" beside a
/// missed target of 0.6. (The nudge keeps 0.57, which is 56.999... hundredths in
/// binary, from showing as 0.56.)
fn ratio_text(ratio: f64) -> String {
    format!("{:.2}", (ratio * 100.0 + 1e-9).floor() / 100.0)
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
            ratio_text(ratio),
            match r.target {
                Some(target) => {
                    format!("≥ {target:.1} {}", if ratio >= target { "✓" } else { "✗" })
                }
                None => "none".to_string(),
            },
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
    let fs = std::fs::read_to_string("/proc/self/mounts")
        .ok()
        .and_then(|mounts| {
            let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
            file_system_of(&mounts, &dir)
        })
        .unwrap_or_else(|| "unknown".into());
    let mut line = format!(
        "{model}, {cores} cores, {mem_gib:.0} GiB RAM, {fs} file system at {}",
        dir.display()
    );
    if reports_free_pages() {
        line.push_str(
            "; the hypervisor takes back freed memory at once (free page reporting), so \
             memory touched again after a drop of the page cache costs a host fault: runs are noisy",
        );
    }
    line
}

/// The type of the file system `dir` is on: that of the longest mount point
/// containing it in a `/proc/self/mounts` listing. (`stat -f` names ext2, ext3
/// and ext4 alike, since they share a magic number.)
fn file_system_of(mounts: &str, dir: &std::path::Path) -> Option<String> {
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            let point = point.replace("\\040", " ");
            dir.starts_with(&point)
                .then(|| (point.len(), kind.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, kind)| kind)
}

/// True on a guest whose freed memory goes back to its host (virtio-balloon free
/// page reporting that has reported anything).
fn reports_free_pages() -> bool {
    std::fs::read_to_string("/sys/module/page_reporting/parameters/reported_kib")
        .ok()
        .and_then(|kib| kib.trim().parse::<u64>().ok())
        .is_some_and(|kib| kib > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_system_is_that_of_the_longest_mount_point_containing_the_dir() {
        let mounts = "/dev/vda / ext4 rw,relatime 0 0\n\
                      proc /proc proc rw 0 0\n\
                      tmpfs /tmp tmpfs rw 0 0\n\
                      /dev/vdb /work/my\\040disk xfs rw 0 0\n";
        let of = |dir: &str| file_system_of(mounts, std::path::Path::new(dir));
        assert_eq!(of("/work/benchtmp").as_deref(), Some("ext4"));
        assert_eq!(of("/tmp/x").as_deref(), Some("tmpfs"));
        assert_eq!(of("/work/my disk/b").as_deref(), Some("xfs"));
        // A path component, not a string prefix.
        assert_eq!(of("/tmpfoo").as_deref(), Some("ext4"));
        assert_eq!(file_system_of("", std::path::Path::new("/x")), None);
    }

    #[test]
    fn a_ratio_is_never_shown_above_what_it_is() {
        assert_eq!(ratio_text(857.0 / 1439.0), "0.59");
        assert_eq!(ratio_text(844.0 / 1403.0), "0.60");
        assert_eq!(ratio_text(1.0), "1.00");
        assert_eq!(ratio_text(0.6), "0.60");
        assert_eq!(ratio_text(0.57), "0.57");
    }

    #[test]
    fn a_row_without_a_target_is_neither_met_nor_missed() {
        let row = |target| Row {
            workload: "w".into(),
            bytes: 1_000_000,
            seconds: 2.0,
            baseline: "b".into(),
            baseline_seconds: 1.0,
            target,
        };
        let table = throughput_table(&[row(Some(0.4)), row(Some(0.6)), row(None)]);
        assert!(
            table.contains("≥ 0.4 ✓") && table.contains("≥ 0.6 ✗"),
            "{table}"
        );
        assert_eq!(table.matches('✓').count() + table.matches('✗').count(), 2);
        assert!(table.contains("none"), "{table}");
    }
}
