//! The benchmark must keep working: run it on tiny sizes (no timing is checked).

#[test]
fn local_benchmark_runs_on_small_sizes() {
    let bench = std::path::Path::new(env!("CARGO_BIN_EXE_peervault-bench"));
    let node = bench.with_file_name("peervault");
    if !node.exists() {
        let msg = format!(
            "{} is not built; run `cargo test --workspace`",
            node.display()
        );
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("skipping: {msg}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(bench)
        .args([
            "--dir",
            dir.path().to_str().expect("utf-8"),
            "--keep-caches",
            "local",
            "--size",
            "8MiB",
            "--rss-size",
            "16MiB",
        ])
        .output()
        .expect("run bench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in ["local put", "local get", "ratio", "peak RSS"] {
        assert!(text.contains(expected), "missing {expected:?}:\n{text}");
    }
}
