//! A small blocking HTTPS/1.1 client for the monitor part: rustls over a TCP connection made in
//! a namespace, trusting exactly the certificate rvsd made (what an operator does with the
//! fingerprint rvsd logs). Keep-alive connections, `Content-Length` and chunked bodies, and a
//! streaming read for the server-sent-events feed.

use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpStream},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use rustls::{ClientConfig, ClientConnection, StreamOwned, pki_types::ServerName};
use rvs_testbed::Netns;

/// Where the monitor is and how to trust it.
#[derive(Clone)]
pub struct Https {
    config: Arc<ClientConfig>,
    addr: SocketAddr,
}

/// A response.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Bound on every read and write: a stuck server fails the figure instead of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

impl Https {
    /// Trusts the certificate in `cert_pem` (PEM) for `addr`.
    pub fn new(cert_pem: &[u8], addr: SocketAddr) -> Result<Https> {
        let config =
            rvs_testbed::tls::pinned_client_config(cert_pem).context("rvsd's certificate")?;
        Ok(Https {
            config: Arc::new(config),
            addr,
        })
    }

    /// A connection from `ns` (the TLS handshake happens with the first request).
    pub fn connect(&self, ns: &Netns) -> Result<Conn> {
        let tcp = ns
            .enter(|| TcpStream::connect_timeout(&self.addr, Duration::from_secs(3)))?
            .with_context(|| format!("connecting to the monitor at {}", self.addr))?;
        tcp.set_read_timeout(Some(IO_TIMEOUT))?;
        tcp.set_write_timeout(Some(IO_TIMEOUT))?;
        tcp.set_nodelay(true)?;
        let raw = tcp.try_clone()?;
        let conn = ClientConnection::new(self.config.clone(), ServerName::try_from("rvsd")?)?;
        Ok(Conn {
            tls: StreamOwned::new(conn, tcp),
            raw,
            buf: Vec::new(),
        })
    }
}

/// One kept-alive HTTPS connection.
pub struct Conn {
    tls: StreamOwned<ClientConnection, TcpStream>,
    raw: TcpStream,
    /// Bytes read past what was consumed.
    buf: Vec<u8>,
}

impl Conn {
    /// A handle that closes the connection from another thread (ends a blocked read).
    pub fn closer(&self) -> Result<Closer> {
        Ok(Closer(self.raw.try_clone()?))
    }

    fn fill(&mut self) -> Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.tls.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    fn send_head(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<()> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nhost: rvsd\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() {
            req.push_str(&format!(
                "content-type: application/json\r\ncontent-length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.tls.write_all(req.as_bytes())?;
        self.tls.flush()?;
        Ok(())
    }

    /// Reads the status line and headers.
    fn read_head(&mut self) -> Result<(u16, Vec<(String, String)>)> {
        let end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.buf.len() > 64 * 1024 {
                bail!("response head over 64 KiB");
            }
            if self.fill()? == 0 {
                bail!("connection closed before the response");
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("odd response head {head:?}"))?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Ok((status, headers))
    }

    fn take(&mut self, n: usize) -> Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                bail!("connection closed inside a body");
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    fn line(&mut self) -> Result<String> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let l = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(l);
            }
            if self.fill()? == 0 {
                bail!("connection closed inside a chunked body");
            }
        }
    }

    /// Sends a request and reads the whole response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Reply> {
        self.send_head(method, path, headers, body)?;
        let (status, headers) = self.read_head()?;
        let get = |k: &str| headers.iter().find(|(h, _)| h == k).map(|(_, v)| v.clone());
        let body = if let Some(n) = get("content-length") {
            let n: usize = n.parse().context("content-length")?;
            self.take(n)?
        } else if get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            let mut body = Vec::new();
            // Bounded: a body of over 1 GiB is an error, not a figure.
            loop {
                let size = self.line()?;
                let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                    .with_context(|| format!("odd chunk size {size:?}"))?;
                if n == 0 {
                    // Trailers, if any, end with an empty line.
                    while !self.line()?.is_empty() {}
                    break;
                }
                body.extend(self.take(n)?);
                self.take(2)?;
                if body.len() > 1 << 30 {
                    bail!("response body over 1 GiB");
                }
            }
            body
        } else {
            bail!("a response without a length (status {status})");
        };
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Sends a request whose response is a stream: its status and headers; the body follows
    /// through [`Conn::read_some`].
    pub fn open_stream(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Vec<(String, String)>)> {
        self.send_head("GET", path, headers, "")?;
        self.read_head()
    }

    /// The next bytes of a streamed body as they come (chunk framing included); empty at its
    /// end.
    pub fn read_some(&mut self) -> Result<Vec<u8>> {
        if self.buf.is_empty() {
            self.fill()?;
        }
        Ok(std::mem::take(&mut self.buf))
    }
}

/// Closes a [`Conn`]'s socket from another thread.
pub struct Closer(TcpStream);

impl Closer {
    pub fn close(&self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `Basic` authorization header value.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}
