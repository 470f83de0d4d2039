//! The monitor over real HTTPS: rvsd with `--web` on a director in namespaces, asked from the
//! client's namespace by a Rust HTTPS client (hyper over tokio-rustls) that trusts exactly the
//! certificate rvsd made. Logins, sessions and their expiry, CSRF, roles, bad input, plain
//! HTTP, API tokens, and `/metrics` checked by promtool and against `rvsadm -L -n --stats`.

mod common;

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::Duration,
};

use common::{Lab, RVSD, dest_rows, service_stats};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};
use rvs_testbed::DrCluster;

const PORT: u16 = 80;
const WEB_PORT: u16 = 8443;

/// Trusts one certificate, byte for byte (what an operator does with the logged fingerprint);
/// handshake signatures are verified as usual.
#[derive(Debug)]
struct Pinned(Vec<u8>, Arc<CryptoProvider>);

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.0.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not rvsd's certificate".into()))
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.1.signature_verification_algorithms.supported_schemes()
    }
}

struct Reply {
    status: u16,
    headers: hyper::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// An HTTPS client in the lab's client namespace.
struct Client<'a> {
    lab: &'a Lab,
    addr: SocketAddr,
    tls: tokio_rustls::TlsConnector,
    rt: tokio::runtime::Runtime,
}

impl<'a> Client<'a> {
    fn new(lab: &'a Lab) -> Client<'a> {
        let pem = std::fs::read(lab.dir.join("web-cert.pem")).expect("rvsd made its certificate");
        let cert = CertificateDer::from_pem_slice(&pem).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned(cert.to_vec(), provider)))
            .with_no_client_auth();
        Client {
            lab,
            addr: SocketAddr::new(IpAddr::V4(lab.cluster.director().ip()), WEB_PORT),
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    /// A TCP connection from the client's namespace.
    fn connect(&self) -> std::net::TcpStream {
        let s = self
            .lab
            .cluster
            .client()
            .netns()
            .enter(|| std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(3)))
            .unwrap()
            .expect("connecting to the monitor");
        s.set_nonblocking(true).unwrap();
        s
    }

    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let stream = self.connect();
        let (method, path, body) = (method.to_owned(), path.to_owned(), body.to_owned());
        self.rt.block_on(async {
            let tcp = tokio::net::TcpStream::from_std(stream).unwrap();
            let tls = self
                .tls
                .connect(ServerName::try_from("rvsd").unwrap(), tcp)
                .await
                .expect("TLS handshake");
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let mut req = hyper::Request::builder()
                .method(method.as_str())
                .uri(path.as_str())
                .header("host", "rvsd");
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if !body.is_empty() {
                req = req.header("content-type", "application/json");
            }
            let res = sender
                .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
                .await
                .expect("HTTP request");
            let status = res.status().as_u16();
            let headers = res.headers().clone();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            Reply {
                status,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            }
        })
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send("GET", path, headers, "")
    }

    /// Logs in: the session cookie (`rvs_session=...`) and the CSRF token.
    fn login(&self, user: &str, password: &str) -> (String, String) {
        let r = self.send(
            "POST",
            "/api/v1/login",
            &[],
            &serde_json::json!({"username": user, "password": password}).to_string(),
        );
        assert_eq!(r.status, 200, "login as {user}: {}", r.body);
        let set = r.headers["set-cookie"].to_str().unwrap().to_owned();
        for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(attr), "cookie without {attr}: {set}");
        }
        let cookie = set.split(';').next().unwrap().to_owned();
        (cookie, r.json()["csrf_token"].as_str().unwrap().to_owned())
    }
}

fn add_user(file: &Path, name: &str, role: &str, password: &str) {
    use std::io::Write;
    let mut c = Command::new(RVSD)
        .arg("--add-web-user")
        .arg(file)
        .args([name, role])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(c.stdin.take().unwrap(), "{password}").unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A lab whose rvsd serves the monitor, with an admin `alice` and a viewer `bob`, and a wrr
/// service of three real servers of weights 3, 2, 1.
fn lab(extra: &[&str]) -> (Lab, PathBuf) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let users = std::env::temp_dir().join(format!(
        "rvs-web-users-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&users);
    add_user(&users, "alice", "admin", "alice's secret");
    add_user(&users, "bob", "viewer", "bob's secret");
    let text = std::fs::read_to_string(&users).unwrap();
    assert!(text.contains("alice admin $argon2id$"), "{text}");
    let cluster = DrCluster::builder().real_servers(3).build().unwrap();
    let web = format!(":{WEB_PORT}");
    let mut args = vec!["--web", &web, "--web-users", users.to_str().unwrap()];
    args.extend_from_slice(extra);
    let lab = Lab::on(cluster, PORT, &args);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "wrr"]);
    for (i, w) in [3, 2, 1].iter().enumerate() {
        lab.ok(&[
            "-a",
            "-t",
            &vip,
            "-r",
            &format!("{}:{PORT}", lab.rs_ip(i)),
            "-g",
            "-w",
            &w.to_string(),
        ]);
    }
    assert!(
        lab.rvsd_log().contains("SHA-256 fingerprint"),
        "{}",
        lab.rvsd_log()
    );
    (lab, users)
}

fn weight_of(lab: &Lab, rs: &str) -> Option<i64> {
    dest_rows(&lab.ok(&["-L", "-n"]))
        .into_iter()
        .find(|r| r.0 == rs)
        .map(|r| r.2)
}

#[test]
fn login_sessions_csrf_roles_and_bad_input() {
    let (lab, users) = lab(&["--web-session-idle", "3"]);
    let c = Client::new(&lab);
    let svc = format!("tcp:{}", lab.vip_port(PORT));
    let rs = format!("{}:{PORT}", lab.rs_ip(0));
    let server = format!("/api/v1/services/{svc}/servers/{rs}");

    // Nobody logged in: 401 from the API, the login page from the console.
    let r = c.get("/api/v1/services", &[]);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().contains("log in"));
    let r = c.get("/", &[]);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("id=\"login-form\""), "{}", r.body);
    assert!(!r.body.contains("id=\"services\""));
    let r = c.send("PUT", &server, &[], r#"{"weight":5}"#);
    assert_eq!(r.status, 401);

    // Wrong password, unknown user, malformed login.
    for body in [
        r#"{"username":"alice","password":"wrong"}"#,
        r#"{"username":"mallory","password":"alice's secret"}"#,
    ] {
        let r = c.send("POST", "/api/v1/login", &[], body);
        assert_eq!(r.status, 401, "{body}: {}", r.body);
        assert!(!r.headers.contains_key("set-cookie"));
    }
    assert_eq!(c.send("POST", "/api/v1/login", &[], "{").status, 400);

    // The admin: the console, then a weight change visible in rvsadm at once.
    let (cookie, csrf) = c.login("alice", "alice's secret");
    let r = c.get("/", &[("cookie", &cookie)]);
    assert!(r.body.contains("id=\"services\""), "{}", r.body);
    let r = c.get("/api/v1/services", &[("cookie", &cookie)]);
    assert_eq!(r.status, 200);
    let s = &r.json()["services"][0];
    assert_eq!(s["id"], svc.as_str());
    assert_eq!(s["servers_total"], 3);

    // A change without the CSRF token, or with a wrong one: 403, nothing changes.
    let r = c.send("PUT", &server, &[("cookie", &cookie)], r#"{"weight":5}"#);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("CSRF"));
    let r = c.send(
        "PUT",
        &server,
        &[("cookie", &cookie), ("x-csrf-token", "0000")],
        r#"{"weight":5}"#,
    );
    assert_eq!(r.status, 403);
    assert_eq!(weight_of(&lab, &rs), Some(3));

    let auth = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let r = c.send("PUT", &server, &auth, r#"{"weight":5}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["weight"], 5);
    assert_eq!(weight_of(&lab, &rs), Some(5));
    // Drain.
    let r = c.send("PUT", &server, &auth, r#"{"weight":0}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(weight_of(&lab, &rs), Some(0));

    // Bad input: 400 (or 413, 404) with a message; the weight stays 0.
    for (body, status, says) in [
        (r#"{"weight":70000}"#.to_owned(), 400, "out of range"),
        (r#"{"weight":-1}"#.to_owned(), 400, "out of range"),
        (r#"{"weight":"five"}"#.to_owned(), 400, "bad request body"),
        (
            r#"{"weight":5,"color":"red"}"#.to_owned(),
            400,
            "unknown field",
        ),
        ("{weight:5".to_owned(), 400, "bad request body"),
        (
            format!(r#"{{"weight":5,"pad":"{}"}}"#, "x".repeat(20_000)),
            413,
            "",
        ),
    ] {
        let r = c.send("PUT", &server, &auth, &body);
        assert_eq!(
            r.status,
            status,
            "{}: {}",
            &body[..body.len().min(40)],
            r.body
        );
        assert!(r.body.contains(says), "{}", r.body);
    }
    let missing = format!("/api/v1/services/{svc}/servers/198.19.255.1:{PORT}");
    let r = c.send("PUT", &missing, &auth, r#"{"weight":5}"#);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(weight_of(&lab, &rs), Some(0));

    // Take it out and put it back, as the console does.
    let r = c.send("DELETE", &server, &auth, "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(weight_of(&lab, &rs), None);
    let removed = r.json()["removed"].clone();
    let back = serde_json::json!({
        "server": removed["id"], "weight": 2, "forward": removed["forward"],
    });
    let r = c.send(
        "POST",
        &format!("/api/v1/services/{svc}/servers"),
        &auth,
        &back.to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(weight_of(&lab, &rs), Some(2));
    // Adding it twice is refused as rvsadm is, with the same errno.
    let r = c.send(
        "POST",
        &format!("/api/v1/services/{svc}/servers"),
        &auth,
        &back.to_string(),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.json()["errno"], libc::EEXIST);

    // A viewer sees everything and changes nothing.
    let (vcookie, vcsrf) = c.login("bob", "bob's secret");
    let r = c.get(&server, &[("cookie", &vcookie)]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["weight"], 2);
    let r = c.send(
        "PUT",
        &server,
        &[("cookie", &vcookie), ("x-csrf-token", &vcsrf)],
        r#"{"weight":9}"#,
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("viewer"));
    assert_eq!(weight_of(&lab, &rs), Some(2));

    // Every change is in the audit log: who, what, from where.
    let log = std::fs::read_to_string(lab.dir.join("web-audit.log")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let client_ip = lab.cluster.client().ip().to_string();
    assert!(lines.iter().any(|l| l["user"] == "alice"
        && l["action"] == "set weight 5"
        && l["result"] == "ok"
        && l["from"] == client_ip.as_str()));
    assert!(
        lines
            .iter()
            .any(|l| l["user"] == "alice" && l["action"] == "remove real server")
    );
    assert!(
        lines
            .iter()
            .any(|l| l["user"] == "bob" && l["result"].as_str().unwrap().starts_with("refused"))
    );

    // Logout ends the session.
    let r = c.send("POST", "/api/v1/logout", &auth, "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        c.get("/api/v1/services", &[("cookie", &cookie)]).status,
        401
    );

    // An idle session expires (--web-session-idle 3); a used one does not.
    let (cookie, _) = c.login("alice", "alice's secret");
    for _ in 0..3 {
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(c.get("/api/v1/session", &[("cookie", &cookie)]).status, 200);
    }
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(c.get("/api/v1/session", &[("cookie", &cookie)]).status, 401);
    let r = c.get("/", &[("cookie", &cookie)]);
    assert!(r.body.contains("id=\"login-form\""));

    // Logins are rate-limited per source: after 5 failures within a minute (2 were above)
    // even the right password waits.
    let statuses: Vec<u16> = (0..4)
        .map(|_| {
            c.send(
                "POST",
                "/api/v1/login",
                &[],
                r#"{"username":"alice","password":"guess"}"#,
            )
            .status
        })
        .collect();
    assert_eq!(statuses, [401, 401, 401, 429]);
    let r = c.send(
        "POST",
        "/api/v1/login",
        &[],
        r#"{"username":"alice","password":"alice's secret"}"#,
    );
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.headers.contains_key("retry-after"));
    let _ = std::fs::remove_file(users);
}

#[test]
fn plain_http_is_refused_and_tokens_can_be_revoked() {
    use std::io::{Read, Write};
    let (lab, users) = lab(&[]);
    let c = Client::new(&lab);

    // Plain HTTP on the HTTPS port: a short refusal, never a page.
    let mut s = c.connect();
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /api/v1/services HTTP/1.1\r\nHost: rvsd\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("HTTPS only"), "{answer}");
    assert!(!answer.contains("services\""), "{answer}");

    // An admin makes a token for a script; it reads, and once revoked it does not.
    let (cookie, csrf) = c.login("alice", "alice's secret");
    let auth = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let r = c.send("POST", "/api/v1/tokens", &auth, r#"{"name":"ci"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    let (id, token) = (
        r.json()["id"].as_str().unwrap().to_owned(),
        r.json()["token"].as_str().unwrap().to_owned(),
    );
    let stored = std::fs::read_to_string(lab.dir.join("web-tokens.json")).unwrap();
    assert!(!stored.contains(&token), "tokens are stored hashed");
    let bearer = format!("Bearer {token}");
    let r = c.get("/api/v1/services", &[("authorization", &bearer)]);
    assert_eq!(r.status, 200, "{}", r.body);
    // A viewer token (the default) may not change; a token needs no CSRF token.
    let server = format!(
        "/api/v1/services/tcp:{}/servers/{}:{PORT}",
        lab.vip_port(PORT),
        lab.rs_ip(1)
    );
    let r = c.send(
        "PUT",
        &server,
        &[("authorization", &bearer)],
        r#"{"weight":7}"#,
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = c.send(
        "POST",
        "/api/v1/tokens",
        &auth,
        r#"{"name":"deploy","role":"admin"}"#,
    );
    let admin_token = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    let r = c.send(
        "PUT",
        &server,
        &[("authorization", &admin_token)],
        r#"{"weight":7}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        weight_of(&lab, &format!("{}:{PORT}", lab.rs_ip(1))),
        Some(7)
    );
    // The viewer bob may not make tokens.
    let (vcookie, vcsrf) = c.login("bob", "bob's secret");
    let r = c.send(
        "POST",
        "/api/v1/tokens",
        &[("cookie", &vcookie), ("x-csrf-token", &vcsrf)],
        r#"{"name":"mine"}"#,
    );
    assert_eq!(r.status, 403);

    let r = c.send("DELETE", &format!("/api/v1/tokens/{id}"), &auth, "");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c.get("/api/v1/services", &[("authorization", &bearer)]);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(c.get("/metrics", &[("authorization", &bearer)]).status, 401);
    let _ = std::fs::remove_file(users);
}

/// The samples of a Prometheus text exposition, by name and labels as written.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn metrics_pass_promtool_and_match_rvsadm() {
    let (lab, users) = lab(&[]);
    let c = Client::new(&lab);
    // Some traffic first, then none while the two are read.
    for _ in 0..12 {
        lab.ask(PORT);
    }
    std::thread::sleep(Duration::from_millis(300));

    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "bob:bob's secret"
        )
    );
    let wrong = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "bob:nope")
    );
    assert_eq!(c.get("/metrics", &[]).status, 401);
    assert_eq!(c.get("/metrics", &[("authorization", &wrong)]).status, 401);
    let r = c.get("/metrics", &[("authorization", &basic)]);
    assert_eq!(r.status, 200, "{}", r.body);
    let stats = lab.ok(&["-L", "-n", "--stats", "--exact"]);
    let listing = lab.ok(&["-L", "-n"]);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );

    // promtool (Debian's prometheus package) accepts it.
    let file = lab.dir.join("metrics.txt");
    std::fs::write(&file, &r.body).unwrap();
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("promtool (scripts/install-deps installs prometheus)");
    assert!(
        out.status.success(),
        "promtool: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        r.body
    );

    // The same numbers as rvsadm.
    let m = samples(&r.body);
    let vip = lab.vip_port(PORT);
    let [conns, inpkts, outpkts, inbytes, outbytes] = service_stats(&stats, "TCP", &vip);
    assert!(conns >= 12, "{stats}");
    for (name, v) in [
        ("node_ipvs_connections_total", conns),
        ("node_ipvs_incoming_packets_total", inpkts),
        ("node_ipvs_outgoing_packets_total", outpkts),
        ("node_ipvs_incoming_bytes_total", inbytes),
        ("node_ipvs_outgoing_bytes_total", outbytes),
    ] {
        assert_eq!(
            m.get(name),
            Some(&(v as f64)),
            "{name}\n{stats}\n{}",
            r.body
        );
    }
    let vaddr = lab.vip().to_string();
    for (rs, _fwd, weight, active, inactive) in dest_rows(&listing) {
        let (ip, port) = rs.rsplit_once(':').unwrap();
        let labels = format!(
            "{{local_address=\"{vaddr}\",local_port=\"{PORT}\",remote_address=\"{ip}\",remote_port=\"{port}\",proto=\"TCP\",local_mark=\"\"}}"
        );
        for (name, v) in [
            ("node_ipvs_backend_weight", weight as f64),
            ("node_ipvs_backend_connections_active", active as f64),
            ("node_ipvs_backend_connections_inactive", inactive as f64),
        ] {
            assert_eq!(
                m.get(&format!("{name}{labels}")),
                Some(&v),
                "{name}{labels}\n{}",
                r.body
            );
        }
        let per = service_stats(&stats.replace("  -> ", "TCP "), "TCP", &rs);
        assert_eq!(
            m.get(&format!("rvs_backend_connections_total{labels}")),
            Some(&(per[0] as f64))
        );
        assert_eq!(
            m.get(&format!("rvs_backend_incoming_packets_total{labels}")),
            Some(&(per[1] as f64))
        );
    }
    // rvs's own: the data plane's counters as rvsadm --dataplane shows them, no client address.
    let dp = lab.dataplane();
    assert_eq!(
        m.get("rvs_dataplane_events_total{event=\"forwarded\"}"),
        Some(&(dp["forwarded"] as f64))
    );
    assert!(m.contains_key("rvs_dataplane_drops_total{reason=\"ttl\"}"));
    assert_eq!(m.get("rvs_conn_table_size"), Some(&65536.0));
    assert_eq!(m.get("rvs_health_checkers"), Some(&0.0));
    let client = format!("\"{}\"", lab.cluster.client().ip());
    assert!(!r.body.contains(&client), "{client} in\n{}", r.body);

    // OpenMetrics when asked for it.
    let r = c.get(
        "/metrics",
        &[
            ("authorization", &basic),
            ("accept", "application/openmetrics-text; version=1.0.0"),
        ],
    );
    assert!(r.body.ends_with("# EOF\n"));
    assert!(r.body.contains("# TYPE node_ipvs_connections counter\n"));
    let _ = std::fs::remove_file(users);
}
