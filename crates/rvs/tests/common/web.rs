//! The monitor's test client: an HTTPS client (hyper over tokio-rustls) in the lab's client
//! namespace that trusts exactly the certificate rvsd made, and a lab whose rvsd serves the
//! monitor with an admin and a viewer.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::Duration,
};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls::pki_types::ServerName;
use rvs_testbed::DrCluster;

use super::{Lab, RVSD, dest_rows};

pub const PORT: u16 = 80;
pub const WEB_PORT: u16 = 8443;

pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// An HTTPS client in the lab's client namespace.
pub struct Client<'a> {
    lab: &'a Lab,
    pub addr: SocketAddr,
    tls: tokio_rustls::TlsConnector,
    rt: tokio::runtime::Runtime,
}

impl<'a> Client<'a> {
    pub fn new(lab: &'a Lab) -> Client<'a> {
        let pem = std::fs::read(lab.dir.join("web-cert.pem")).expect("rvsd made its certificate");
        let config = rvs_testbed::tls::pinned_client_config(&pem).unwrap();
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
    pub fn connect(&self) -> std::net::TcpStream {
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

    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
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
            if !body.is_empty() && !headers.iter().any(|(k, _)| *k == "content-type") {
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

    /// The first event of a server-sent-events feed (`data: ...`), as JSON.
    pub fn first_event(&self, path: &str, headers: &[(&str, &str)]) -> serde_json::Value {
        self.events(path, headers, 1).remove(0)
    }

    /// The first `n` events of a server-sent-events feed, as JSON.
    pub fn events(&self, path: &str, headers: &[(&str, &str)], n: usize) -> Vec<serde_json::Value> {
        let stream = self.connect();
        let path = path.to_owned();
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
                .uri(path.as_str())
                .header("host", "rvsd");
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let res = sender
                .send_request(req.body(Full::new(Bytes::new())).unwrap())
                .await
                .expect("HTTP request");
            assert_eq!(res.status(), 200);
            assert!(
                res.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/event-stream")
            );
            let mut body = res.into_body();
            let mut text = String::new();
            let read = async {
                while text.matches("\n\n").count() < n {
                    let frame = body.frame().await.expect("the feed ended").unwrap();
                    if let Ok(d) = frame.into_data() {
                        text.push_str(&String::from_utf8_lossy(&d));
                    }
                }
            };
            tokio::time::timeout(Duration::from_secs(10 + 2 * n as u64), read)
                .await
                .expect("the feed was too slow");
            text.split("\n\n")
                .filter(|e| e.contains("data:"))
                .take(n)
                .map(|e| {
                    let data: String = e
                        .lines()
                        .filter_map(|l| {
                            l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:"))
                        })
                        .collect();
                    serde_json::from_str(&data).unwrap_or_else(|err| panic!("{err}: {e}"))
                })
                .collect()
        })
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send("GET", path, headers, "")
    }

    /// Logs in: the session cookie (`rvs_session=...`) and the CSRF token.
    pub fn login(&self, user: &str, password: &str) -> (String, String) {
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

pub fn add_user(file: &Path, name: &str, role: &str, password: &str) {
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
pub fn web_lab(extra: &[&str]) -> (Lab, PathBuf) {
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

pub fn weight_of(lab: &Lab, rs: &str) -> Option<i64> {
    dest_rows(&lab.ok(&["-L", "-n"]))
        .into_iter()
        .find(|r| r.0 == rs)
        .map(|r| r.2)
}
