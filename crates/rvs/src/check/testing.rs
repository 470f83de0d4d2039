//! What the checker tests run against: real servers on 127.0.0.1 with ephemeral ports, told to
//! fail or stall while the test runs.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rustls::{
    ServerConfig,
    crypto::ring,
    pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, UdpSocket},
    task::JoinHandle,
};
use tokio_rustls::TlsAcceptor;

use super::{CheckKind, CheckSpec};

/// A checker with short timings against `target`.
pub(crate) fn spec(kind: CheckKind, target: SocketAddr) -> CheckSpec {
    CheckSpec {
        kind,
        target,
        bind: None,
        connect_timeout: Duration::from_millis(500),
        retry: 1,
        delay_before_retry: Duration::from_millis(50),
        delay_loop: Duration::from_millis(100),
        warmup: Duration::ZERO,
        alpha: false,
    }
}

/// What an [`HttpServer`] answers, and what it was asked.
pub(crate) struct HttpState {
    pub status: u16,
    pub body: String,
    /// Accept, read the request, never answer.
    pub stall: bool,
    pub requests: Vec<Request>,
}

/// A request an [`HttpServer`] saw.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub at: Instant,
    pub head: String,
    /// The TLS server name the client sent.
    pub sni: Option<String>,
    /// The status it was answered with.
    pub status: u16,
}

pub(crate) struct HttpServer {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<HttpState>>,
    task: JoinHandle<()>,
}

impl HttpServer {
    pub async fn start(tls: bool) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(HttpState {
            status: 200,
            body: "ok\n".into(),
            stall: false,
            requests: Vec::new(),
        }));
        let acceptor = tls.then(tls_acceptor);
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        None => serve_http(tcp, st, None).await,
                        Some(a) => {
                            if let Ok(tls) = a.accept(tcp).await {
                                let sni = tls.get_ref().1.server_name().map(str::to_owned);
                                serve_http(tls, st, sni).await;
                            }
                        }
                    }
                });
            }
        });
        HttpServer { addr, state, task }
    }

    pub fn set(&self, status: u16, body: &str) {
        let mut s = self.state.lock().unwrap();
        s.status = status;
        s.body = body.to_owned();
    }

    pub fn stall(&self, on: bool) {
        self.state.lock().unwrap().stall = on;
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_http<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    st: Arc<Mutex<HttpState>>,
    sni: Option<String>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let (status, body, stall) = {
        let mut g = st.lock().unwrap();
        let head = String::from_utf8_lossy(&head).into_owned();
        let status = g.status;
        g.requests.push(Request {
            at: Instant::now(),
            head,
            sni,
            status,
        });
        (g.status, g.body.clone(), g.stall)
    };
    if stall {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let response = format!(
        "HTTP/1.0 {status} Whatever\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(response.as_bytes()).await;
    let _ = s.shutdown().await;
}

fn tls_acceptor() -> TlsAcceptor {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()));
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![key.cert.der().clone()], private)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// An SMTP responder: `banner` on connect, then 250 to HELO, 221 to QUIT; with `sink`, it
/// also takes MAIL/RCPT/DATA and keeps the whole transcript.
pub(crate) struct SmtpServer {
    pub addr: SocketAddr,
    pub transcript: Arc<Mutex<String>>,
    task: JoinHandle<()>,
}

impl SmtpServer {
    pub async fn start(banner: &'static str) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let transcript = Arc::new(Mutex::new(String::new()));
        let t = transcript.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve_smtp(s, banner, t.clone()));
            }
        });
        SmtpServer {
            addr,
            transcript,
            task,
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_smtp(s: tokio::net::TcpStream, banner: &str, t: Arc<Mutex<String>>) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    if w.write_all(banner.as_bytes()).await.is_err() {
        return;
    }
    let mut in_data = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        t.lock().unwrap().push_str(&line);
        let reply: &[u8] = if in_data {
            if line != ".\r\n" {
                continue;
            }
            in_data = false;
            b"250 queued\r\n"
        } else {
            match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
                "HELO" => b"250-hello\r\n250 pleased to meet you\r\n",
                "MAIL" | "RCPT" => b"250 ok\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 go ahead\r\n"
                }
                "QUIT" => {
                    let _ = w.write_all(b"221 bye\r\n").await;
                    return;
                }
                _ => b"500 what\r\n",
            }
        };
        if w.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// A DNS responder: answers each query with its id (or `id_offset` added), QR set and `rcode`;
/// first sends `decoys` replies with a wrong id.
pub(crate) async fn dns_server(rcode: u8, decoys: usize) -> (SocketAddr, JoinHandle<()>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 512];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let mut reply = buf[..n].to_vec();
            reply[2] |= 0x80;
            reply[3] = (reply[3] & 0xf0) | rcode;
            for _ in 0..decoys {
                let mut wrong = reply.clone();
                wrong[0] ^= 0xff;
                let _ = sock.send_to(&wrong, peer).await;
            }
            let _ = sock.send_to(&reply, peer).await;
        }
    });
    (addr, task)
}

/// A UDP server that answers every datagram with `reply` (or echoes it when None).
pub(crate) async fn udp_server(reply: Option<Vec<u8>>) -> (SocketAddr, JoinHandle<()>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let out = reply.clone().unwrap_or_else(|| buf[..n].to_vec());
            let _ = sock.send_to(&out, peer).await;
        }
    });
    (addr, task)
}

/// A local port nothing listens on (TCP and UDP).
pub(crate) fn closed_port() -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let a = s.local_addr().unwrap();
    drop(s);
    a
}
