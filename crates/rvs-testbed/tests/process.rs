//! `spawn_in`: a long-running program inside a namespace, logged, stopped on drop. Needs root.

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use rvs_testbed::{Netns, spawn_in};

fn log_path(test: &str) -> PathBuf {
    std::env::temp_dir().join(format!("rvs-testbed-{}-{test}.log", std::process::id()))
}

fn alive(pid: u32) -> bool {
    PathBuf::from(format!("/proc/{pid}")).exists()
}

#[test]
fn logs_and_is_stopped_on_drop() {
    let ns = Netns::new("proc").unwrap();
    let log = log_path("drop");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "ip -o link; echo ready >&2; exec sleep 30"]);
    let mut process = spawn_in(&ns, &mut cmd, &log).unwrap();
    process
        .wait_for_log("ready", Duration::from_secs(2))
        .unwrap();
    let text = process.log().unwrap();
    assert!(text.contains(": lo:") && !text.contains("eth"), "{text}");
    let pid = process.pid();
    drop(process);
    assert!(!alive(pid), "reaped on drop");
    std::fs::remove_file(log).unwrap();
}

#[test]
fn stop_reports_the_exit_status() {
    let ns = Netns::new("stop").unwrap();
    let log = log_path("stop");
    let process = spawn_in(&ns, Command::new("sleep").arg("30"), &log).unwrap();
    let status = process.stop(Duration::from_secs(2)).unwrap();
    assert!(!status.success(), "killed by SIGTERM");
    std::fs::remove_file(log).unwrap();
}

#[test]
fn waiting_for_a_log_line_fails_fast_when_it_exits() {
    let ns = Netns::new("early").unwrap();
    let log = log_path("early");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo bad config >&2; exit 3"]);
    let mut process = spawn_in(&ns, &mut cmd, &log).unwrap();
    let start = Instant::now();
    let err = process
        .wait_for_log("ready", Duration::from_secs(5))
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(format!("{err:#}").contains("bad config"), "{err:#}");
    std::fs::remove_file(log).unwrap();
}
