//! An HTTP server (optionally over TLS) that a test can tell to fail: it answers every request
//! with the status and body it was last given (by default `200` and `<name>\n`), so health
//! checks see a status or a body digest change while the server keeps running. Over TLS it
//! records the server names (SNI) clients sent.

use std::{
    io::{self, Read, Write},
    net::{IpAddr, SocketAddr, TcpStream},
    sync::{Arc, Mutex, atomic::AtomicBool},
};

use anyhow::{Context, Result};
use rustls::{
    ServerConfig, ServerConnection, StreamOwned,
    crypto::ring,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
};

use super::{accept::Acceptor, lines::LineReader};
use crate::Netns;

/// What the server answers, and what TLS clients asked for.
#[derive(Debug)]
struct State {
    status: u16,
    body: String,
    sni: Vec<String>,
    requests: u64,
}

/// A running HTTP server; dropping it stops it.
#[derive(Debug)]
pub struct HttpServer {
    state: Arc<Mutex<State>>,
    acceptor: Acceptor,
}

impl HttpServer {
    /// Plain HTTP on `addr` inside `ns`, answering `<name>\n`.
    pub fn start(ns: &Netns, name: &str, addr: SocketAddr) -> Result<Self> {
        Self::with_tls(ns, name, addr, None)
    }

    /// HTTPS on `addr` inside `ns` with a certificate (DER) and its PKCS#8 key (DER).
    pub fn start_tls(
        ns: &Netns,
        name: &str,
        addr: SocketAddr,
        cert: Vec<u8>,
        key: Vec<u8>,
    ) -> Result<Self> {
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert)],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
            )
            .context("the test certificate is not usable")?;
        Self::with_tls(ns, name, addr, Some(Arc::new(config)))
    }

    fn with_tls(
        ns: &Netns,
        name: &str,
        addr: SocketAddr,
        tls: Option<Arc<ServerConfig>>,
    ) -> Result<Self> {
        let state = Arc::new(Mutex::new(State {
            status: 200,
            body: format!("{name}\n"),
            sni: Vec::new(),
            requests: 0,
        }));
        let st = Arc::clone(&state);
        let acceptor = Acceptor::start(ns, name, addr, move |stream, stop| {
            // A client going away mid-request is its own business.
            let _ = match &tls {
                None => serve(stream, stop, &st),
                Some(config) => serve_tls(stream, stop, config, &st),
            };
        })?;
        Ok(Self { state, acceptor })
    }

    /// Answers with `status` from now on.
    pub fn set_status(&self, status: u16) {
        self.state.lock().expect("http state").status = status;
    }

    /// Answers with `body` from now on.
    pub fn set_body(&self, body: &str) {
        self.state.lock().expect("http state").body = body.to_owned();
    }

    /// The server names TLS clients sent, in order.
    pub fn sni(&self) -> Vec<String> {
        self.state.lock().expect("http state").sni.clone()
    }

    /// How many requests it answered.
    pub fn requests(&self) -> u64 {
        self.state.lock().expect("http state").requests
    }

    /// How many connections came from `ip`.
    pub fn connections_from(&self, ip: IpAddr) -> u64 {
        self.acceptor.connections_from(ip)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.acceptor.local_addr()
    }
}

fn serve(stream: TcpStream, stop: &AtomicBool, state: &Mutex<State>) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    answer(LineReader::new(stream), &mut writer, stop, state)
}

fn serve_tls(
    stream: TcpStream,
    stop: &AtomicBool,
    config: &Arc<ServerConfig>,
    state: &Mutex<State>,
) -> io::Result<()> {
    let conn = ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(conn, stream);
    // Reading drives the handshake; the name is known once the client's hello is in.
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        match tls.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    if let Some(name) = tls.conn.server_name() {
        state.lock().expect("http state").sni.push(name.to_owned());
    }
    tls.write_all(&response(state))?;
    tls.conn.send_close_notify();
    tls.flush()
}

/// Reads a request head and answers it.
fn answer<R: Read>(
    mut lines: LineReader<R>,
    out: &mut impl Write,
    stop: &AtomicBool,
    state: &Mutex<State>,
) -> io::Result<()> {
    loop {
        match lines.next_line(stop)? {
            None => return Ok(()),
            Some(l) if l.is_empty() => break,
            Some(_) => {}
        }
    }
    out.write_all(&response(state))
}

fn response(state: &Mutex<State>) -> Vec<u8> {
    let mut st = state.lock().expect("http state");
    st.requests += 1;
    let reason = match st.status {
        200 => "OK",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    format!(
        "HTTP/1.0 {} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{}",
        st.status,
        st.body.len(),
        st.body
    )
    .into_bytes()
}
