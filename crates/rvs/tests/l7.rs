//! Layer-7 dispatch end to end: rvsd listens on the VIP (`rvs_l7_server`), reads each request
//! and routes it by Host, path prefix, header or cookie to a pool, a real server in the pool by
//! its scheduler, checkers and persistence; TLS by the ClientHello's server name, never
//! decrypted. The real servers are HTTP echo servers that answer with what reached them, so each
//! test reads where a request went, with which X-Forwarded-For or PROXY header, and its body.

mod common;

use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpStream},
    sync::Arc,
    time::{Duration, Instant},
};

use common::keepalived::{ConfDir, KaLab, short_timers};
use rvs_testbed::{DrCluster, HttpEcho, HttpServer};

/// The lab's own line servers listen here; the L7 servers use other ports.
const LINE_PORT: u16 = 7000;

fn cluster(real_servers: usize) -> DrCluster {
    DrCluster::builder()
        .real_servers(real_servers)
        .build()
        .expect("building the cluster")
}

fn any(port: u16) -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], port))
}

/// An HTTP response as the client saw it.
#[derive(Debug)]
struct Response {
    status: u16,
    head: String,
    body: String,
}

impl Response {
    /// `key=value` from the echo server's answer.
    fn seen(&self, key: &str) -> String {
        self.body
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {self:?}"))
            .to_owned()
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// A client connection from the client's namespace.
struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(lab: &KaLab, port: u16) -> Client {
        let to = SocketAddr::from((lab.lab.vip(), port));
        let s = lab
            .lab
            .cluster
            .client()
            .netns()
            .enter(|| TcpStream::connect_timeout(&to, Duration::from_secs(5)))
            .unwrap()
            .unwrap_or_else(|e| panic!("connecting to {to}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client { s, buf: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    fn more(&mut self) -> usize {
        let mut b = [0u8; 65536];
        let n = self.s.read(&mut b).unwrap_or(0);
        self.buf.extend_from_slice(&b[..n]);
        n
    }

    /// The next response (framed by Content-Length, as every answer here is).
    fn response(&mut self) -> Response {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(
                self.more() > 0,
                "connection closed before a response: {:?}",
                self.buf
            );
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let status = head[9..12].parse().unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        while self.buf.len() < end + len {
            assert!(self.more() > 0, "connection closed mid-body");
        }
        let body = String::from_utf8_lossy(&self.buf[end..end + len]).into_owned();
        self.buf.drain(..end + len);
        Response { status, head, body }
    }

    fn get(&mut self, host: &str, path: &str, extra: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n").as_bytes());
        self.response()
    }

    /// Whether the server closed the connection (EOF within the read timeout).
    fn closed(&mut self) -> bool {
        self.buf.is_empty() && self.more() == 0
    }
}

fn once(lab: &KaLab, port: u16, host: &str, path: &str, extra: &str) -> Response {
    Client::connect(lab, port).get(host, path, extra)
}

/// Waits until `f` holds (bounded).
fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn routing_conf(c: &DrCluster) -> String {
    let vip = c.vip();
    let rs = |i: usize| c.real_servers()[i].ip();
    format!(
        "rvs_l7_server {vip} 80 {{
    head_timeout 2
    rule {{
        host api.example.com *.api.example.com
        pool api
    }}
    rule {{
        path_prefix /img/
        pool img
    }}
    rule {{
        header X-Canary yes
        pool img
    }}
    default_pool web
    pool web {{
        lb_algo rr
        real_server {} 8080
        real_server {} 8080
    }}
    pool api {{
        lb_algo wlc
        forward_for proxy_v2
        real_server {} 8081
    }}
    pool img {{
        lb_algo rr
        forward_for none
        real_server {} 8082
    }}
}}
rvs_l7_server {vip} 81 {{
    rule {{
        host only.example.com
        pool only
    }}
    pool only {{
        real_server {} 8080
    }}
}}
",
        rs(0),
        rs(1),
        rs(2),
        rs(2),
        rs(0)
    )
}

struct Echoes {
    _all: Vec<HttpEcho>,
}

fn echoes(c: &DrCluster, which: &[(usize, u16, &str)]) -> Echoes {
    Echoes {
        _all: which
            .iter()
            .map(|&(i, port, name)| {
                HttpEcho::start(c.real_servers()[i].netns(), name, any(port)).unwrap()
            })
            .collect(),
    }
}

#[test]
fn requests_are_routed_by_host_path_and_header_also_on_one_keepalive_connection() {
    let c = cluster(3);
    let _e = echoes(
        &c,
        &[
            (0, 8080, "web0"),
            (1, 8080, "web1"),
            (2, 8081, "api"),
            (2, 8082, "img"),
        ],
    );
    let conf = routing_conf(&c);
    let director_ip = c.director().ip();
    let client_ip = c.client().ip();
    let lab = KaLab::on(c, LINE_PORT, ConfDir::new(), &conf);

    // Host: the exact name and the suffix; the default pool by rr on new connections.
    let r = once(&lab, 80, "api.example.com", "/", "");
    assert_eq!((r.status, r.seen("server")), (200, "api".into()), "{r:?}");
    // The api pool speaks PROXY v2: the real server learns the client's own address.
    assert!(
        r.seen("proxy").starts_with(&format!("{client_ip}:")),
        "{r:?}"
    );
    assert_eq!(r.seen("xff"), "");
    assert_eq!(
        once(&lab, 80, "EU.API.example.com:80", "/", "").seen("server"),
        "api"
    );
    let web: Vec<String> = (0..4)
        .map(|_| once(&lab, 80, "www.example.com", "/", "").seen("server"))
        .collect();
    assert_eq!(web, ["web0", "web1", "web0", "web1"]);
    // X-Forwarded-For (the default) is appended to what the client sent.
    let r = once(
        &lab,
        80,
        "www.example.com",
        "/",
        "X-Forwarded-For: 203.0.113.7\r\n",
    );
    assert_eq!(r.seen("xff"), format!("203.0.113.7, {client_ip}"));
    // Path prefix and header rules; `forward_for none` adds nothing.
    let r = once(&lab, 80, "www.example.com", "/img/logo.png", "");
    assert_eq!((r.seen("server"), r.seen("xff")), ("img".into(), "".into()));
    assert_eq!(
        once(&lab, 80, "www.example.com", "/x", "X-Canary: yes\r\n").seen("server"),
        "img"
    );

    // One keep-alive connection, each request routed by its own head.
    let mut k = Client::connect(&lab, 80);
    let mut went = Vec::new();
    for (host, path) in [
        ("api.example.com", "/a"),
        ("www.example.com", "/b"),
        ("www.example.com", "/img/c"),
        ("api.example.com", "/d"),
    ] {
        let r = k.get(host, path, "");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), None, "{r:?}");
        assert_eq!(r.seen("target"), path);
        went.push(r.seen("server"));
    }
    assert_eq!(went[0], "api");
    assert!(went[1].starts_with("web"), "{went:?}");
    assert_eq!((went[2].as_str(), went[3].as_str()), ("img", "api"));
    // Pipelined: two requests in one write, two answers in order.
    k.send(
        b"GET /p1 HTTP/1.1\r\nHost: api.example.com\r\n\r\nGET /img/p2 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(k.response().seen("target"), "/p1");
    assert_eq!(k.response().seen("target"), "/img/p2");

    // Bodies arrive exactly: by Content-Length and chunked.
    let mut b = Client::connect(&lab, 80);
    b.send(
        b"POST /form HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 11\r\n\r\nhello world",
    );
    assert_eq!(b.response().seen("body"), "hello world");
    b.send(b"POST /up HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-T: 1\r\n\r\n");
    assert_eq!(b.response().seen("body"), "hello world");
    b.send(b"POST /e HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
    let cont = b.response();
    assert_eq!(cont.status, 100, "{cont:?}");
    b.send(b"ok");
    assert_eq!(b.response().seen("body"), "ok");

    // HTTP/1.0 without Host goes to the default pool and the connection closes after it.
    let mut old = Client::connect(&lab, 80);
    old.send(b"GET /old HTTP/1.0\r\n\r\n");
    let r = old.response();
    assert_eq!(
        (r.seen("server").starts_with("web"), r.header("connection")),
        (true, Some("close".into()))
    );
    assert!(old.closed());

    // No rule and no default pool: 404, and the keep-alive connection stays.
    let mut n = Client::connect(&lab, 81);
    assert_eq!(n.get("other.example.com", "/", "").status, 404);
    assert_eq!(n.get("only.example.com", "/", "").seen("server"), "web0");

    // Connections to the real servers are reused: far fewer than the requests they carried.
    let status = lab.lab.ok(&["--l7"]);
    assert!(
        status.contains("rule host api.example.com *.api.example.com -> pool api"),
        "{status}"
    );
    assert!(status.contains("rule default -> pool web"), "{status}");
    assert!(status.contains("unrouted"), "{status}");
    // The rates (IPVS's estimator, 2-second samples) show the burst.
    eventually(
        "a request rate on the api rule",
        Duration::from_secs(6),
        || {
            let st = lab.lab.ok(&["--l7"]);
            let line = st
                .lines()
                .find(|l| l.contains("-> pool api"))
                .unwrap()
                .to_owned();
            !line.ends_with("(0/s)")
        },
    );
    let reused = _e._all[0].connections_from(IpAddr::V4(director_ip));
    let answered = _e._all[0].requests();
    assert!(
        answered >= 5 && reused < answered,
        "web0: {reused} connections for {answered} requests\n{status}"
    );
}

#[test]
fn bad_requests_are_refused_and_never_reach_a_real_server() {
    let c = cluster(3);
    let e = echoes(
        &c,
        &[
            (0, 8080, "web0"),
            (1, 8080, "web1"),
            (2, 8081, "api"),
            (2, 8082, "img"),
        ],
    );
    let conf = routing_conf(&c);
    let lab = KaLab::on(c, LINE_PORT, ConfDir::new(), &conf);
    let before: u64 = e._all.iter().map(|s| s.requests()).sum();
    let cases: [(&[u8], u16); 8] = [
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", 400),
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", 400),
    ];
    for (bytes, want) in cases {
        let mut k = Client::connect(&lab, 80);
        k.send(bytes);
        let r = k.response();
        assert_eq!(
            r.status,
            want,
            "{:?}: {r:?}",
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(r.header("connection").as_deref(), Some("close"));
        assert!(
            k.closed(),
            "still open after {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    // Too large: one huge header field, and too many fields.
    let mut k = Client::connect(&lab, 80);
    k.send(
        format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
            "b".repeat(20000)
        )
        .as_bytes(),
    );
    assert_eq!(k.response().status, 431);
    let many: String = (0..150).map(|i| format!("X-{i}: v\r\n")).collect();
    let mut k = Client::connect(&lab, 80);
    k.send(format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n").as_bytes());
    assert_eq!(k.response().status, 431);
    // A bad chunk size after a good head: 400, the connection closes.
    let mut k = Client::connect(&lab, 80);
    k.send(b"POST / HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    assert_eq!(k.response().status, 400);
    // A slow client: half a head, then nothing: 408 after head_timeout (2 s), closed.
    let mut k = Client::connect(&lab, 80);
    let start = Instant::now();
    k.send(b"GET / HTTP/1.1\r\nHost: a");
    let r = k.response();
    assert_eq!(r.status, 408, "{r:?}");
    assert!(
        start.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    assert!(k.closed());
    // A client that connects and sends nothing is closed too.
    let mut k = Client::connect(&lab, 80);
    assert_eq!(k.response().status, 408);

    let after: u64 = e._all.iter().map(|s| s.requests()).sum();
    // Only the bad chunked body's head reached a real server (its body was cut at the bad size).
    assert!(
        after - before <= 1,
        "{} bad requests reached real servers",
        after - before
    );
    let status = lab.lab.ok(&["--l7"]);
    assert!(status.contains("refused 400:9 408:2 431:2"), "{status}");
    // rvsd still serves.
    assert_eq!(once(&lab, 80, "api.example.com", "/", "").status, 200);
}

#[test]
fn what_reaches_a_real_server_is_framed_as_rvsd_read_it() {
    let c = cluster(3);
    let e = echoes(
        &c,
        &[
            (0, 8080, "web0"),
            (1, 8080, "web1"),
            (2, 8081, "api"),
            (2, 8082, "img"),
        ],
    );
    let conf = routing_conf(&c);
    let client_ip = c.client().ip();
    let lab = KaLab::on(c, LINE_PORT, ConfDir::new(), &conf);
    let api = || e._all[2].requests();
    // `Connection: content-length` may not strip the length: the smuggled request stays body.
    let smuggled = "GET /admin HTTP/1.1\r\nHost: internal\r\n\r\n";
    let before = api();
    let mut k = Client::connect(&lab, 80);
    k.send(
        format!(
            "POST / HTTP/1.1\r\nHost: api.example.com\r\nConnection: content-length\r\n\
             Content-Length: {}\r\n\r\n{smuggled}",
            smuggled.len()
        )
        .as_bytes(),
    );
    let r = k.response();
    // (The echo's `body=` line shows the body's first line.)
    assert_eq!(
        (r.seen("target"), r.seen("body")),
        ("/".into(), "GET /admin HTTP/1.1".into())
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(api() - before, 1, "the real server ran a second request");
    // A chunk-size line with a bare LF in its extension is refused before anything of it goes on.
    let mut k = Client::connect(&lab, 80);
    k.send(b"POST / HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nGET /x\r\nhello\r\n0\r\n\r\n");
    assert_eq!(k.response().status, 400);
    // Trailers are dropped; the body arrives whole.
    let mut k = Client::connect(&lab, 80);
    k.send(b"POST / HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n");
    assert_eq!(k.response().seen("body"), "abc");
    // Two X-Forwarded-For fields: one goes on, the client last.
    let r = once(
        &lab,
        80,
        "www.example.com",
        "/",
        "X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 6.6.6.6\r\n",
    );
    assert_eq!(r.seen("xff"), format!("1.1.1.1, 6.6.6.6, {client_ip}"));
    // An absolute-form target is routed by its own host, and the server sees origin form.
    let r = once(
        &lab,
        80,
        "www.example.com",
        "http://api.example.com/abs",
        "",
    );
    assert_eq!(
        (r.seen("server"), r.seen("target"), r.seen("host")),
        ("api".into(), "/abs".into(), "api.example.com".into())
    );
    // An HTTP/1.0 client gets no 100 Continue.
    let mut k = Client::connect(&lab, 80);
    k.send(b"POST /e HTTP/1.0\r\nHost: api.example.com\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nok");
    let r = k.response();
    assert_eq!((r.status, r.seen("body")), (200, "ok".into()));
}

#[test]
fn cookie_persistence_sorry_server_and_503_follow_the_checkers() {
    let c = cluster(3);
    let vip = c.vip();
    let rs = |i: usize| c.real_servers()[i].ip();
    let check = format!("TCP_CHECK {{\n {}\n }}", short_timers());
    let conf = format!(
        "rvs_l7_server {vip} 80 {{
    rule {{
        path_prefix /lonely/
        pool lonely
    }}
    default_pool web
    pool web {{
        lb_algo rr
        delay_loop 1
        persistence cookie RVSID
        sorry_server {} 8090
        real_server {} 8080 {{ {check} }}
        real_server {} 8080 {{ {check} }}
    }}
    pool lonely {{
        delay_loop 1
        real_server {} 8081 {{ {check} }}
    }}
}}
",
        rs(2),
        rs(0),
        rs(1),
        rs(2)
    );
    let web0 = HttpEcho::start(c.real_servers()[0].netns(), "web0", any(8080)).unwrap();
    let web1 = HttpEcho::start(c.real_servers()[1].netns(), "web1", any(8080)).unwrap();
    let _sorry = HttpEcho::start(c.real_servers()[2].netns(), "sorry", any(8090)).unwrap();
    let lonely = HttpEcho::start(c.real_servers()[2].netns(), "lonely", any(8081)).unwrap();
    let lab = KaLab::on(c, LINE_PORT, ConfDir::new(), &conf);

    // The first answer sets the cookie; every later request carrying it (on new connections)
    // goes to the same server, though the pool is rr.
    let first = once(&lab, 80, "www.example.com", "/", "");
    let set = first.header("set-cookie").expect("a Set-Cookie");
    assert!(
        set.starts_with("RVSID=") && set.contains("HttpOnly"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let server = first.seen("server");
    for _ in 0..5 {
        let r = once(
            &lab,
            80,
            "www.example.com",
            "/",
            &format!("Cookie: a=b; {cookie}\r\n"),
        );
        assert_eq!(r.seen("server"), server);
        assert_eq!(r.header("set-cookie"), None);
    }
    // Without it, rr.
    let other = once(&lab, 80, "www.example.com", "/", "").seen("server");
    assert_ne!(
        other,
        once(&lab, 80, "www.example.com", "/", "").seen("server")
    );

    // Both web servers fail: their checkers take them out and the sorry server answers.
    drop(web0);
    drop(web1);
    eventually(
        "the sorry server to answer",
        Duration::from_secs(20),
        || {
            once(&lab, 80, "www.example.com", "/", "")
                .body
                .contains("server=sorry")
        },
    );
    assert!(lab.lab.ok(&["--l7"]).contains("(no quorum)"));
    // A pool with no server and no sorry server: 503, and the connection stays usable.
    drop(lonely);
    eventually("503 from the lonely pool", Duration::from_secs(20), || {
        once(&lab, 80, "www.example.com", "/lonely/x", "").status == 503
    });
    let mut k = Client::connect(&lab, 80);
    assert_eq!(k.get("x", "/lonely/", "").status, 503);
    assert_eq!(k.get("x", "/", "").seen("server"), "sorry");
    let log = lab.lab.rvsd_log();
    assert!(
        log.contains("L7 ") && log.contains("pool web: real server"),
        "{log}"
    );
}

#[test]
fn tls_is_routed_by_server_name_without_being_decrypted() {
    let c = cluster(2);
    let vip = c.vip();
    let rs = |i: usize| c.real_servers()[i].ip();
    let cert =
        rcgen::generate_simple_self_signed(vec!["a.example.com".into(), "b.example.com".into()])
            .unwrap();
    let (der, key) = (cert.cert.der().to_vec(), cert.signing_key.serialize_der());
    let https: Vec<HttpServer> = c
        .real_servers()
        .iter()
        .map(|h| {
            HttpServer::start_tls(h.netns(), h.name(), any(8443), der.clone(), key.clone()).unwrap()
        })
        .collect();
    let conf = format!(
        "rvs_l7_server {vip} 443 {{
    mode tls
    rule {{
        host a.example.com
        pool a
    }}
    default_pool b
    pool a {{
        real_server {} 8443
    }}
    pool b {{
        persistence source
        real_server {} 8443
    }}
}}
",
        rs(0),
        rs(1)
    );
    let names: Vec<String> = c
        .real_servers()
        .iter()
        .map(|h| h.name().to_owned())
        .collect();
    let lab = KaLab::on(c, LINE_PORT, ConfDir::new(), &conf);
    let pem = cert.cert.pem();
    let get = |sni: &str| -> String {
        let config = Arc::new(rvs_testbed::tls::pinned_client_config(pem.as_bytes()).unwrap());
        let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
        let conn = rustls::ClientConnection::new(config, name).unwrap();
        let mut tcp = Client::connect(&lab, 443).s;
        let mut tls = rustls::StreamOwned::new(conn, &mut tcp);
        tls.write_all(format!("GET / HTTP/1.1\r\nHost: {sni}\r\n\r\n").as_bytes())
            .unwrap();
        let mut out = String::new();
        let _ = tls.read_to_string(&mut out);
        out
    };
    // The certificate is the real server's own: rvsd only read the name.
    assert!(get("a.example.com").ends_with(&format!("{}\n", names[0])));
    assert!(get("b.example.com").ends_with(&format!("{}\n", names[1])));
    assert!(get("c.example.com").ends_with(&format!("{}\n", names[1])));
    assert_eq!(https[0].sni(), ["a.example.com"]);
    assert_eq!(https[1].sni(), ["b.example.com", "c.example.com"]);
    // Not TLS at all: closed, counted, nothing forwarded.
    let mut k = Client::connect(&lab, 443);
    k.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(k.closed());
    assert_eq!(https[0].requests() + https[1].requests(), 3);
    let status = lab.lab.ok(&["--l7"]);
    assert!(
        status.contains("mode tls") && status.contains("refused 400:1"),
        "{status}"
    );
}

#[test]
fn sighup_changes_the_rules_for_new_requests_and_keeps_open_connections() {
    let c = cluster(2);
    let _e = echoes(&c, &[(0, 8080, "web0"), (1, 8080, "web1")]);
    let vip = c.vip();
    let ips = [c.real_servers()[0].ip(), c.real_servers()[1].ip()];
    let rs = |i: usize| ips[i];
    let conf = |default: &str| {
        format!(
            "rvs_l7_server {vip} 80 {{
    default_pool {default}
    pool one {{
        real_server {} 8080
    }}
    pool two {{
        real_server {} 8080
    }}
}}
",
            rs(0),
            rs(1)
        )
    };
    let lab = KaLab::on(c, LINE_PORT, ConfDir::new(), &conf("one"));
    let mut held = Client::connect(&lab, 80);
    assert_eq!(held.get("x", "/", "").seen("server"), "web0");

    lab.rewrite(&conf("two"));
    lab.reload();
    lab.expect_log("L7 reloaded (1 servers)");
    // New connections follow the new configuration; the open one finishes on its own.
    assert_eq!(once(&lab, 80, "x", "/", "").seen("server"), "web1");
    assert_eq!(held.get("x", "/", "").seen("server"), "web0");

    // A file that does not load changes nothing.
    lab.rewrite("rvs_l7_server 198.18.0.100 80 {\n pool p {\n }\n}\n");
    lab.reload();
    lab.expect_log("the running L7 servers stay");
    assert_eq!(once(&lab, 80, "x", "/", "").seen("server"), "web1");
}

#[test]
fn nginx_reads_the_proxy_v2_header_as_the_clients_address() {
    let c = cluster(1);
    let vip = c.vip();
    let rs = c.real_servers()[0].ip();
    let client_ip = c.client().ip();
    // nginx, the real peer, with `listen ... proxy_protocol`: it answers with the address the
    // PROXY header gave it.
    let dir = ConfDir::new();
    let nginx_conf = dir.write(
        "nginx.conf",
        &format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/nginx.err warn;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  server {{\n    listen 8083 proxy_protocol;\n    \
             location / {{ return 200 \"client=$proxy_protocol_addr:$proxy_protocol_port \
             host=$host peer=$remote_addr\\n\"; }}\n  }}\n}}\n",
            d = dir.0.display()
        ),
        false,
    );
    let _nginx = c.real_servers()[0]
        .spawn(
            std::process::Command::new("nginx")
                .arg("-c")
                .arg(&nginx_conf)
                .arg("-e")
                .arg(dir.path("nginx.err")),
            dir.path("nginx.log"),
        )
        .expect("starting nginx");
    let conf = format!(
        "rvs_l7_server {vip} 80 {{
    default_pool p
    pool p {{
        forward_for proxy_v2
        real_server {rs} 8083
    }}
}}
"
    );
    let lab = KaLab::on(c, LINE_PORT, ConfDir::new(), &conf);
    eventually(
        "nginx to answer through rvsd",
        Duration::from_secs(10),
        || once(&lab, 80, "www.example.com", "/", "").status == 200,
    );
    let mut k = Client::connect(&lab, 80);
    let r = k.get("www.example.com", "/", "");
    assert!(r.body.starts_with(&format!("client={client_ip}:")), "{r:?}");
    assert!(r.body.contains("host=www.example.com"), "{r:?}");
    // A second request on the same client connection reuses its private server connection.
    assert_eq!(k.get("www.example.com", "/again", "").body, r.body);
}
