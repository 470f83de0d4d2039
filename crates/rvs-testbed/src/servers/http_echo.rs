//! An HTTP/1.1 server for layer-7 tests: it keeps connections open (keep-alive), reads request
//! bodies as framed (Content-Length or chunked), and answers each request with what it saw,
//! one `key=value` line each: its own name, the method, target, Host, X-Forwarded-For, the
//! client a PROXY protocol v2 header named, the body, and how many requests this connection
//! has carried. A test reads from the answer where a request went and what arrived there.

use std::{
    io::{self, Read, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::Result;

use super::accept::Acceptor;
use crate::Netns;

const SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// A running echo server; dropping it stops it.
#[derive(Debug)]
pub struct HttpEcho {
    acceptor: Acceptor,
    requests: Arc<Mutex<u64>>,
}

impl HttpEcho {
    pub fn start(ns: &Netns, name: &str, addr: SocketAddr) -> Result<Self> {
        let requests = Arc::new(Mutex::new(0));
        let (n, r) = (name.to_owned(), Arc::clone(&requests));
        let acceptor = Acceptor::start(ns, name, addr, move |stream, stop| {
            let _ = serve(stream, stop, &n, &r);
        })?;
        Ok(Self { acceptor, requests })
    }

    /// Requests answered.
    pub fn requests(&self) -> u64 {
        *self.requests.lock().expect("requests")
    }

    /// Connections accepted from `ip`.
    pub fn connections_from(&self, ip: IpAddr) -> u64 {
        self.acceptor.connections_from(ip)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.acceptor.local_addr()
    }
}

/// Bytes from a connection whose reads time out every tick to look at `stop`.
struct Input<'a> {
    s: TcpStream,
    buf: Vec<u8>,
    stop: &'a AtomicBool,
}

impl Input<'_> {
    /// Reads more; false at EOF or stop.
    fn more(&mut self) -> io::Result<bool> {
        let mut b = [0u8; 16384];
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            match self.s.read(&mut b) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&b[..n]);
                    return Ok(true);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn need(&mut self, n: usize) -> io::Result<bool> {
        while self.buf.len() < n {
            if !self.more()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        self.buf.drain(..n).collect()
    }

    fn line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let l = self.take(i + 2);
                return Ok(Some(l[..i].to_vec()));
            }
            if !self.more()? {
                return Ok(None);
            }
        }
    }
}

/// The client a PROXY v2 header names, if the connection starts with one.
fn proxy_header(input: &mut Input<'_>) -> io::Result<Option<SocketAddr>> {
    if !input.need(16)? || &input.buf[..12] != SIGNATURE {
        return Ok(None);
    }
    let len = u16::from_be_bytes([input.buf[14], input.buf[15]]) as usize;
    if !input.need(16 + len)? {
        return Ok(None);
    }
    let h = input.take(16 + len);
    Ok(match h[13] {
        0x11 if len >= 12 => {
            let ip = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
            Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([h[24], h[25]]),
            ))
        }
        0x21 if len >= 36 => {
            let ip: [u8; 16] = h[16..32].try_into().expect("16 bytes");
            Some(SocketAddr::new(
                Ipv6Addr::from(ip).into(),
                u16::from_be_bytes([h[48], h[49]]),
            ))
        }
        _ => None,
    })
}

fn serve(stream: TcpStream, stop: &AtomicBool, name: &str, count: &Mutex<u64>) -> io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut input = Input {
        s: stream,
        buf: Vec::new(),
        stop,
    };
    let proxy = proxy_header(&mut input)?;
    let mut on_this_connection = 0;
    loop {
        // The head.
        let head_len = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&input.buf) {
                Ok(httparse::Status::Complete(n)) => break n,
                Ok(httparse::Status::Partial) => {
                    if !input.more()? {
                        return Ok(());
                    }
                }
                Err(_) => {
                    out.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
                    return Ok(());
                }
            }
        };
        let raw = input.take(head_len);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        req.parse(&raw).expect("parsed above");
        let field = |name: &str| {
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let close = field("connection").is_some_and(|c| c.eq_ignore_ascii_case("close"));
        let mut body = Vec::new();
        if field("transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked")) {
            loop {
                let Some(size_line) = input.line()? else {
                    return Ok(());
                };
                let text = String::from_utf8_lossy(&size_line);
                let size = usize::from_str_radix(text.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| io::Error::other("bad chunk"))?;
                if size == 0 {
                    while let Some(l) = input.line()? {
                        if l.is_empty() {
                            break;
                        }
                    }
                    break;
                }
                if !input.need(size + 2)? {
                    return Ok(());
                }
                body.extend(input.take(size));
                input.take(2);
            }
        } else if let Some(len) =
            field("content-length").and_then(|l| l.trim().parse::<usize>().ok())
        {
            if !input.need(len)? {
                return Ok(());
            }
            body = input.take(len);
        }
        on_this_connection += 1;
        *count.lock().expect("requests") += 1;
        let text = format!(
            "server={name}\nmethod={}\ntarget={}\nhost={}\nxff={}\nproxy={}\nbody={}\nrequest_on_connection={on_this_connection}\n",
            req.method.unwrap_or(""),
            req.path.unwrap_or(""),
            field("host").unwrap_or_default(),
            field("x-forwarded-for").unwrap_or_default(),
            proxy.map(|p| p.to_string()).unwrap_or_default(),
            String::from_utf8_lossy(&body),
        );
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Server: {name}\r\n{}\r\n",
            text.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        out.write_all(head.as_bytes())?;
        if req.method != Some("HEAD") {
            out.write_all(text.as_bytes())?;
        }
        if close {
            return Ok(());
        }
    }
}
