//! The demo (what `scripts/demo` runs) end to end: it needs rvsd, rvsadm and rvs-rs beside it,
//! which a workspace `cargo test` builds into the same directory.

use std::process::Command;

#[test]
fn the_demo_runs_and_shows_what_it_says() {
    let demo = env!("CARGO_BIN_EXE_rvs-demo");
    let out = Command::new(demo).output().expect("running rvs-demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "rvs-demo failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    // wrr 3:2:1 by direct routing and again through GUE tunnels.
    for line in [
        "rs0 weight 3      30",
        "rs1 weight 2      20",
        "rs2 weight 1      10",
    ] {
        assert_eq!(stdout.matches(line).count(), 2, "{line}\n{stdout}");
    }
    assert!(stdout.contains("Tunnel  gue:6080"), "{stdout}");
    // NAT from keepalived.conf, with the answers counted, and the health check at work.
    assert!(stdout.contains("Masq    1"), "{stdout}");
    assert!(stdout.contains("rvsd took rs1 out after"), "{stdout}");
    assert!(stdout.contains("answered by: 0000000000"), "{stdout}");
    assert!(stdout.contains("rvsd put rs1 back after"), "{stdout}");
    assert!(stdout.contains("Torn down"), "{stdout}");
}
