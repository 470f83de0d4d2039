//! The runner against real servers: keepalived's retry timing, alpha, the combination of
//! several checkers, misc_dynamic weights, shared checkers of a group, stopping and restarting,
//! and a stalled server not holding up the others.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use tokio::sync::mpsc;

use super::{
    CheckKind, CheckSpec, DesiredDest, DesiredService, HttpCheck, HttpProtocol, MiscCheck, Runner,
    UrlCheck,
    runner::{CheckEvent, ServerStates},
    testing::{HttpServer, spec},
};
use crate::model::{DestAddr, DestConfig, Protocol, ServiceConfig, ServiceId};

fn http_get() -> CheckKind {
    CheckKind::Http(HttpCheck {
        urls: vec![UrlCheck {
            path: "/".into(),
            status: Vec::new(),
            digest: None,
            virtualhost: None,
        }],
        virtualhost: None,
        protocol: HttpProtocol::Http10,
        tls: None,
    })
}

fn service(
    vip_port: u16,
    virtual_server: usize,
    dests: Vec<(SocketAddr, Vec<CheckSpec>)>,
) -> DesiredService {
    let service = ServiceId::Inet {
        proto: Protocol::Tcp,
        addr: "192.0.2.1".parse().unwrap(),
        port: vip_port,
    };
    DesiredService {
        service,
        config: ServiceConfig::new("wlc", false),
        virtual_server,
        name: format!("[192.0.2.1]:tcp:{vip_port}"),
        dests: dests
            .into_iter()
            .map(|(a, checkers)| DesiredDest {
                addr: DestAddr {
                    addr: a.ip(),
                    port: a.port(),
                },
                config: DestConfig::default(),
                checkers,
                inhibit_on_failure: false,
                notify_up: None,
                notify_down: None,
                smtp_alert: false,
            })
            .collect(),
        sorry_server: None,
        quorum: 1,
        hysteresis: 0,
        quorum_up: None,
        quorum_down: None,
        smtp_alert: false,
        omega: false,
        ha_suspend: false,
    }
}

async fn next(
    rx: &mut mpsc::Receiver<CheckEvent>,
    within: Duration,
) -> Option<(Instant, CheckEvent)> {
    tokio::time::timeout(within, rx.recv())
        .await
        .ok()
        .flatten()
        .map(|e| (Instant::now(), e))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test]
async fn retry_failures_mark_down_one_success_marks_up() {
    let server = HttpServer::start(false).await;
    let mut s = spec(http_get(), server.addr);
    (s.delay_loop, s.retry, s.delay_before_retry) = (ms(300), 2, ms(40));
    let (tx, mut rx) = mpsc::channel(16);
    let _runner = Runner::start(&[service(80, 0, vec![(server.addr, vec![s])])], tx);
    assert!(
        next(&mut rx, ms(300)).await.is_none(),
        "starts up: no event while it stays up"
    );

    server.set(500, "broken");
    let (down_at, down) = next(&mut rx, ms(2000)).await.expect("a down event");
    assert!(!down.up);
    assert!(down.reason.starts_with("HTTP_GET on "), "{}", down.reason);
    assert!(
        down.reason
            .contains("failed after 2 retries: GET /: HTTP status 500"),
        "{}",
        down.reason
    );
    let failures: Vec<Instant> = server
        .requests()
        .iter()
        .filter(|r| r.status == 500 && r.at <= down_at)
        .map(|r| r.at)
        .collect();
    assert_eq!(failures.len(), 3, "the first failure and `retry` more");
    for pair in failures.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= ms(38) && gap < ms(150),
            "retries are spaced by delay_before_retry: {gap:?}"
        );
    }

    server.set(200, "fine");
    let (up_at, up) = next(&mut rx, ms(2000)).await.expect("an up event");
    assert!(up.up, "{up:?}");
    let after: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.at > down_at && r.at <= up_at)
        .collect();
    let first_ok = after
        .iter()
        .position(|r| r.status == 200)
        .expect("a successful check");
    assert_eq!(first_ok, after.len() - 1, "the first success marks it up");
    let spacing: Vec<Duration> = after.windows(2).map(|p| p[1].at - p[0].at).collect();
    assert!(
        spacing.iter().all(|g| *g >= ms(190)),
        "while down, checks come every delay_loop: {spacing:?}"
    );
}

#[tokio::test]
async fn alpha_starts_down_and_retry_zero_fails_at_once() {
    let server = HttpServer::start(false).await;
    let mut s = spec(http_get(), server.addr);
    (s.alpha, s.retry, s.delay_loop) = (true, 0, ms(100));
    let (tx, mut rx) = mpsc::channel(16);
    let runner = Runner::start(&[service(80, 0, vec![(server.addr, vec![s])])], tx);
    assert_eq!(
        runner.states().values().copied().collect::<Vec<_>>(),
        [false],
        "alpha: down before any check"
    );
    let (_, e) = next(&mut rx, ms(500))
        .await
        .expect("up on the first success");
    assert!(e.up);
    server.set(404, "");
    let before = Instant::now();
    let (at, e) = next(&mut rx, ms(1000)).await.expect("down");
    assert!(
        !e.up && e.reason.ends_with("failed: GET /: HTTP status 404"),
        "{e:?}"
    );
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|r| r.status == 404 && r.at <= at)
            .count(),
        1
    );
    assert!(at - before < ms(600), "{:?}", at - before);
    runner.stop().await;
}

#[tokio::test]
async fn a_server_is_up_while_all_its_checkers_are() {
    let server = HttpServer::start(false).await;
    let mut tcp = spec(CheckKind::Tcp, server.addr);
    let mut http = spec(http_get(), server.addr);
    (tcp.retry, http.retry) = (0, 0);
    (tcp.delay_loop, http.delay_loop) = (ms(50), ms(50));
    let (tx, mut rx) = mpsc::channel(16);
    let _runner = Runner::start(&[service(80, 0, vec![(server.addr, vec![tcp, http])])], tx);
    server.set(500, "");
    let (_, e) = next(&mut rx, ms(1000)).await.unwrap();
    assert!(!e.up && e.reason.starts_with("HTTP_GET"), "{e:?}");
    assert!(
        next(&mut rx, ms(200)).await.is_none(),
        "the passing TCP_CHECK does not bring it up"
    );
    server.set(200, "");
    assert!(next(&mut rx, ms(1000)).await.unwrap().1.up);
}

#[tokio::test]
async fn a_stalled_server_does_not_delay_another() {
    let slow = HttpServer::start(false).await;
    slow.stall(true);
    let fast = HttpServer::start(false).await;
    let mut s1 = spec(http_get(), slow.addr);
    s1.connect_timeout = ms(2000);
    let mut s2 = spec(http_get(), fast.addr);
    (s2.alpha, s2.delay_loop) = (true, ms(50));
    let (tx, mut rx) = mpsc::channel(16);
    let start = Instant::now();
    let _runner = Runner::start(
        &[service(
            80,
            0,
            vec![(slow.addr, vec![s1]), (fast.addr, vec![s2])],
        )],
        tx,
    );
    let (at, e) = next(&mut rx, ms(1000))
        .await
        .expect("the fast server's event");
    assert_eq!(e.dest.port, fast.addr.port());
    assert!(at - start < ms(600), "{:?}", at - start);
    tokio::time::sleep(ms(500)).await;
    assert_eq!(slow.requests().len(), 1, "still waiting on the stalled one");
    assert!(
        fast.requests().len() >= 6,
        "{} checks",
        fast.requests().len()
    );
}

#[tokio::test]
async fn group_services_share_one_checker() {
    let server = HttpServer::start(false).await;
    let mut s = spec(http_get(), server.addr);
    (s.retry, s.delay_loop) = (0, ms(100));
    let services = [
        service(80, 3, vec![(server.addr, vec![s.clone()])]),
        service(81, 3, vec![(server.addr, vec![s])]),
    ];
    let (tx, mut rx) = mpsc::channel(16);
    let _runner = Runner::start(&services, tx);
    tokio::time::sleep(ms(350)).await;
    let n = server.requests().len();
    assert!((2..=5).contains(&n), "one checker, not two: {n} requests");
    server.set(500, "");
    let a = next(&mut rx, ms(1000)).await.unwrap().1;
    let b = next(&mut rx, ms(1000)).await.unwrap().1;
    assert_eq!(
        (a.service.port(), b.service.port(), a.up, b.up),
        (80, 81, false, false)
    );
}

#[tokio::test]
async fn misc_dynamic_weights() {
    let dir = std::env::temp_dir().join(format!("rvs-dyn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let status = dir.join("status");
    std::fs::write(&status, "12").unwrap();
    let misc = MiscCheck {
        path: format!("exit $(cat {})", status.display()),
        timeout: None,
        dynamic: true,
    };
    let mut s = spec(CheckKind::Misc(misc), "127.0.0.1:0".parse().unwrap());
    (s.retry, s.delay_loop) = (0, ms(50));
    let (tx, mut rx) = mpsc::channel(16);
    let _runner = Runner::start(
        &[service(
            80,
            0,
            vec![("127.0.0.1:8080".parse().unwrap(), vec![s])],
        )],
        tx,
    );
    let e = next(&mut rx, ms(1000)).await.unwrap().1;
    assert_eq!((e.up, e.weight), (true, Some(10)), "exit 12: weight 10");
    std::fs::write(&status, "1").unwrap();
    let e = next(&mut rx, ms(1000)).await.unwrap().1;
    assert_eq!((e.up, e.weight), (false, None), "exit 1: down");
    std::fs::write(&status, "22").unwrap();
    let e = next(&mut rx, ms(1000)).await.unwrap().1;
    assert_eq!((e.up, e.weight), (true, Some(20)));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn stop_and_restart_from_previous_states() {
    let server = HttpServer::start(false).await;
    let mut s = spec(http_get(), server.addr);
    (s.retry, s.delay_loop) = (0, ms(50));
    let svc = [service(80, 0, vec![(server.addr, vec![s])])];
    let (tx, mut rx) = mpsc::channel(16);
    let runner = Runner::start(&svc, tx.clone());
    server.set(503, "");
    assert!(!next(&mut rx, ms(1000)).await.unwrap().1.up);
    let states: ServerStates = runner.states();
    assert_eq!(states.values().copied().collect::<Vec<_>>(), [false]);
    runner.stop().await;
    let seen = server.requests().len();
    tokio::time::sleep(ms(150)).await;
    assert_eq!(server.requests().len(), seen, "no checks after stop");
    // Restarted (a reload) with the server still failing: it stays down without a new event.
    let runner = Runner::start_from(&svc, tx, &states);
    assert!(next(&mut rx, ms(200)).await.is_none());
    server.set(200, "");
    assert!(next(&mut rx, ms(1000)).await.unwrap().1.up);
    drop(runner);
}
