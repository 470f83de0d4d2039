//! The benchmark harness in its quickest form (`rvs-bench --smoke`, under a minute): every part
//! runs and every row of every table holds numbers. Benchmarks are not tests: no figure is
//! compared with anything, so nothing here fails on a timing.
//!
//! Needs root (namespaces, XDP). rvsd, rvsadm and rvs-rs must lie beside the harness's binary:
//! the test builds them there first.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

const BENCH: &str = env!("CARGO_BIN_EXE_rvs-bench");
/// What the report writes where a measurement failed (`report::MISSING` in the harness).
const MISSING: &str = "missing";

/// The directory holding the harness's binary, where it looks for rvsd and friends.
fn bin_dir() -> PathBuf {
    Path::new(BENCH).parent().unwrap().to_path_buf()
}

/// Builds rvs's binaries into the harness's target directory and profile (cargo does not build
/// another package's binaries for this one's tests); a no-op when they are up to date.
fn build_rvs_binaries() {
    let dir = bin_dir();
    let profile = dir.file_name().unwrap().to_string_lossy().into_owned();
    let target = dir.parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--locked", "-p", "rvs", "--bins", "--target-dir"])
        .arg(target);
    if profile == "release" {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("running cargo build -p rvs");
    assert!(status.success(), "building rvs's binaries failed");
}

/// The data rows of the Markdown tables of a document (header rows left out), as cells.
fn rows(doc: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> = doc.lines().collect();
    let is_table = |l: &str| l.starts_with("| ");
    let is_rule = |l: &str| l.starts_with("|---");
    (0..lines.len())
        .filter(|&i| is_table(lines[i]) && !lines.get(i + 1).is_some_and(|n| is_rule(n)))
        .map(|i| {
            lines[i]
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

#[test]
fn every_row_of_the_smoke_run_is_filled() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the harness needs root (namespaces, XDP programs)"
    );
    build_rvs_binaries();
    let out = std::env::temp_dir().join(format!("rvs-bench-smoke-{}.md", std::process::id()));
    let status = Command::new(BENCH)
        .args(["--smoke", "--quiet", "--out"])
        .arg(&out)
        .status()
        .expect("running rvs-bench");
    let doc = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    assert!(
        status.success(),
        "rvs-bench --smoke failed ({status}):\n{doc}"
    );

    let rows = rows(&doc);
    // Every case has a packet row and a TCP row.
    for case in [
        "ceiling", "rvs DR", "rvs TUN", "rvs NAT", "nftables", "HAProxy", "direct",
    ] {
        // HAProxy has a third row, in the layer-7 table.
        let want = if case == "HAProxy" { 3 } else { 2 };
        let n = rows.iter().filter(|r| r[0] == case).count();
        assert_eq!(
            n, want,
            "{case}: {n} rows instead of {want} (packets, TCP, L7):\n{doc}"
        );
    }
    for case in ["rvs L7", "nginx"] {
        assert!(rows.iter().any(|r| r[0] == case), "no {case} row:\n{doc}");
    }
    for section in [
        "## Scaling with the number of real servers",
        "## Connection table",
        "## Failover (VRRP)",
        "## Connection sync",
        "## Monitor: the web console and /metrics",
        "## BGP: routes announced and withdrawn",
        "## Layer-7 dispatch",
        "## Where the time goes",
    ] {
        assert!(doc.contains(section), "no {section:?}:\n{doc}");
    }
    for row in &rows {
        assert!(
            !row.iter().any(|c| c.contains(MISSING)),
            "a measurement is missing in {row:?}:\n{doc}"
        );
        // A row is numbers, or says why it has none (HAProxy forwards no packets).
        let values = &row[1..];
        assert!(
            values.iter().all(|c| c == "n/a")
                || values
                    .iter()
                    .any(|c| c.chars().any(|ch| ch.is_ascii_digit())),
            "no number in {row:?}:\n{doc}"
        );
    }
    // The goals are stated against this run's figures.
    assert!(doc.contains("of the ceiling"), "no goal lines:\n{doc}");
    // Failover of rvs to rvs and of keepalived to rvs; every sync figure.
    for row in ["rvs → rvs", "keepalived → rvs"] {
        assert!(
            rows.iter().any(|r| r[0] == row),
            "no failover row {row:?}:\n{doc}"
        );
    }
    for figure in [
        "sync lag",
        "connections synced per second",
        "bytes per 1000 new connections",
        "bulk sync of",
        "MASTER's known flows, pps, sync on / off",
    ] {
        assert!(
            rows.iter().any(|r| r[0].starts_with(figure)),
            "no sync figure {figure:?}:\n{doc}"
        );
    }
    // The monitor's CPU and /metrics figures.
    for figure in [
        "rvsd CPU, 1000 real servers, idle",
        "rvsd CPU, 1000 real servers, console's live feed open",
        "rvsd CPU, 1000 real servers, /metrics scraped every second",
        "/metrics, 100 services × 10 real servers, API token",
        "/metrics, 100 services × 10 real servers, basic auth",
    ] {
        assert!(
            rows.iter().any(|r| r[0] == figure),
            "no monitor figure {figure:?}:\n{doc}"
        );
    }
}
