//! `rvs-stream`: long-lived checked echo streams between two hosts, intact, and a server killed
//! under them detected. Needs root.

use std::{
    path::PathBuf,
    process::{Command, ExitStatus},
    thread,
    time::Duration,
};

use rvs_testbed::{DrCluster, Host, NsProcess, poll_until};

const BIN: &str = env!("CARGO_BIN_EXE_rvs-stream");
const PORT: u16 = 9000;
const UDP_PORT: u16 = 9001;
const CONNS: u64 = 50;
const FLOWS: u64 = 5;

fn temp_path(test: &str, what: &str) -> PathBuf {
    std::env::temp_dir().join(format!("rvs-stream-{}-{test}-{what}", std::process::id()))
}

/// Starts `rvs-stream serve` on `rs`, named after it, and waits until it listens.
fn serve(rs: &Host, test: &str) -> NsProcess {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--name", rs.name()])
        .args(["--port", &PORT.to_string()])
        .args(["--udp-port", &UDP_PORT.to_string()]);
    let mut server = rs.spawn(&mut cmd, temp_path(test, "serve.log")).unwrap();
    server
        .wait_for_log("serving", Duration::from_secs(5))
        .unwrap();
    server
}

/// Starts `rvs-stream client` on `client` towards `rs`, with `stop` (`--seconds 3` or
/// `--until FILE`).
fn client(client: &Host, rs: &Host, test: &str, stop: &[&str]) -> NsProcess {
    let mut cmd = Command::new(BIN);
    cmd.args(["client", "--addr", &rs.ip().to_string()])
        .args(["--port", &PORT.to_string()])
        .args(["--conns", &CONNS.to_string()])
        .args(["--udp-port", &UDP_PORT.to_string()])
        .args(["--udp-flows", &FLOWS.to_string()])
        .args(["--stall-ms", "2000"])
        .args(stop);
    client
        .spawn(&mut cmd, temp_path(test, "client.log"))
        .unwrap()
}

/// Waits (bounded) for `process` to exit.
fn wait_exit(process: &mut NsProcess, timeout: Duration) -> ExitStatus {
    poll_until(timeout, "the client to exit", || process.try_wait()).unwrap()
}

/// The JSON line of the client's log.
fn report(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with('{')).collect();
    assert_eq!(lines.len(), 1, "one JSON line in:\n{log}");
    lines[0].to_owned()
}

/// The number `key` of a flat JSON report.
fn field(json: &str, key: &str) -> u64 {
    let pattern = format!("\"{key}\":");
    let at = json
        .find(&pattern)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + pattern.len();
    let digits: String = json[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {json}"))
}

#[test]
fn fifty_connections_and_five_flows_stream_intact() {
    let cluster = DrCluster::builder()
        .real_servers(1)
        .pass_program(false)
        .build()
        .unwrap();
    let rs = &cluster.real_servers()[0];
    let _server = serve(rs, "intact");
    let mut client = client(cluster.client(), rs, "intact", &["--seconds", "3"]);
    let status = wait_exit(&mut client, Duration::from_secs(30));
    let log = client.log().unwrap();
    assert!(status.success(), "{status}:\n{log}");
    let json = report(&log);
    for (key, want) in [
        ("conns", CONNS),
        ("opened", CONNS),
        ("ok", CONNS),
        ("reset", 0),
        ("eof", 0),
        ("mismatch", 0),
        ("stalled", 0),
        ("moved", 0),
        ("udp_flows", FLOWS),
        ("udp_ok", FLOWS),
        ("udp_lost", 0),
        ("udp_moved", 0),
        ("udp_mismatch", 0),
    ] {
        assert_eq!(field(&json, key), want, "{key} in {json}");
    }
    let sent = field(&json, "bytes_sent");
    // 50 connections, 512 bytes every 20 ms for 3 s: 3.8 MB if nothing is late.
    assert!(sent > CONNS * 512 * 50, "{json}");
    assert_eq!(field(&json, "bytes_echoed"), sent, "{json}");
    assert!(field(&json, "udp_sent") > FLOWS * 50, "{json}");
    assert!(json.contains(r#""servers":{"rs0":50}"#), "{json}");
    assert!(json.contains(r#""udp_servers":{"rs0":5}"#), "{json}");
}

#[test]
fn a_server_killed_mid_run_is_reported() {
    let cluster = DrCluster::builder()
        .real_servers(1)
        .pass_program(false)
        .build()
        .unwrap();
    let rs = &cluster.real_servers()[0];
    let server = serve(rs, "killed");
    let stop_file = temp_path("killed", "stop");
    let _ = std::fs::remove_file(&stop_file);
    let until = stop_file.to_str().unwrap();
    let mut client = client(
        cluster.client(),
        rs,
        "killed",
        &["--until", until, "--seconds", "30"],
    );
    client
        .wait_for_log("streaming", Duration::from_secs(20))
        .unwrap();
    thread::sleep(Duration::from_secs(1));
    // By its pid: SIGTERM, which rvs-stream serve does not catch.
    server.stop(Duration::from_secs(2)).unwrap();
    thread::sleep(Duration::from_millis(500));
    std::fs::write(&stop_file, b"").unwrap();
    let status = wait_exit(&mut client, Duration::from_secs(30));
    let _ = std::fs::remove_file(&stop_file);
    let log = client.log().unwrap();
    assert_eq!(status.code(), Some(1), "{status}:\n{log}");
    let json = report(&log);
    assert_eq!(field(&json, "opened"), CONNS, "{json}");
    assert_eq!(field(&json, "ok"), 0, "{json}");
    assert_eq!(
        field(&json, "reset") + field(&json, "eof"),
        CONNS,
        "every connection was cut: {json}"
    );
    assert_eq!(field(&json, "mismatch"), 0, "{json}");
    // Every flow lost the datagrams sent after the kill.
    assert!(field(&json, "udp_lost") > 0, "{json}");
    assert_eq!(field(&json, "udp_ok"), 0, "{json}");
    // One line per problem on stderr, naming the connection.
    assert!(log.contains("conn 0 (port "), "{log}");
}
