//! Client side of the test servers, run from a client's namespace: only the sockets are created
//! inside it, the rest runs on the calling thread as usual. Bulk transfers are checked byte by
//! byte ([`bulk_download`]) or by the server's hash ([`bulk_upload`]).

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket},
    time::Duration,
};

use anyhow::{Context, Result, bail, ensure};

use crate::{Netns, bind::retry_in_use};

mod bulk;

pub use bulk::{STALL_TIMEOUT, bulk_download, bulk_upload, time_limit};

/// How long a TCP connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a reply may take, and a send may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects from `ns` to the TCP server at `ip:port`, sends one line and returns the name of the
/// server that answered.
pub fn tcp_request(ns: &Netns, ip: IpAddr, port: u16) -> Result<String> {
    open_tcp(ns, ip, port)?.ask("hello")
}

/// Opens a connection from `ns` to the TCP server at `ip:port`, to [`TcpConn::ask`] it
/// repeatedly.
pub fn open_tcp(ns: &Netns, ip: IpAddr, port: u16) -> Result<TcpConn> {
    let addr = SocketAddr::new(ip, port);
    let stream = connect(ns, addr)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    // Each request is one small write waiting for its answer: Nagle would only delay it.
    stream.set_nodelay(true)?;
    let reader = BufReader::new(stream.try_clone()?);
    Ok(TcpConn {
        addr,
        stream,
        reader,
    })
}

/// A TCP connection from `ns` to `addr`, within [`CONNECT_TIMEOUT`].
fn connect(ns: &Netns, addr: SocketAddr) -> Result<TcpStream> {
    ns.enter(|| TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT))?
        .with_context(|| format!("cannot connect from {} to {addr}", ns.name()))
}

/// Like [`open_tcp`], from the source address `from` (an address of `ns`, port 0 for any): lets a
/// test send flows from many client addresses or chosen ports.
pub fn open_tcp_from(ns: &Netns, from: SocketAddr, ip: IpAddr, port: u16) -> Result<TcpConn> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrStorage, bind, connect, setsockopt, socket,
        sockopt::{ReuseAddr, SendTimeout},
    };
    let addr = SocketAddr::new(ip, port);
    let family = if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = ns
        .enter(|| socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None))?
        .with_context(|| format!("cannot make a socket in {}", ns.name()))?;
    setsockopt(&fd, ReuseAddr, &true)?;
    // Bounds the connect as well: Linux applies the send timeout to a blocking connect.
    setsockopt(
        &fd,
        SendTimeout,
        &nix::sys::time::TimeVal::new(CONNECT_TIMEOUT.as_secs() as i64, 0),
    )?;
    retry_in_use(|| {
        Ok(bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &SockaddrStorage::from(from),
        )
        .map_err(std::io::Error::from))
    })?
    .with_context(|| format!("cannot bind {from} in {}", ns.name()))?;
    connect(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(addr),
    )
    .with_context(|| format!("cannot connect from {from} to {addr}"))?;
    let stream = TcpStream::from(fd);
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let reader = BufReader::new(stream.try_clone()?);
    Ok(TcpConn {
        addr,
        stream,
        reader,
    })
}

/// Sends an HTTP/1.0 `GET /` from `ns` to `ip:port` and returns the body without its last
/// newline: the name of the server that answered.
pub fn http_get(ns: &Netns, ip: IpAddr, port: u16) -> Result<String> {
    let conn = open_tcp(ns, ip, port)?;
    let mut stream = conn.stream;
    stream
        .write_all(format!("GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes())
        .with_context(|| format!("cannot send to {}", conn.addr))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .with_context(|| format!("no HTTP response from {}", conn.addr))?;
    let Some((head, body)) = response.split_once("\r\n\r\n") else {
        bail!("{} sent a response without a body: {response:?}", conn.addr);
    };
    ensure!(
        head.starts_with("HTTP/1.0 200 "),
        "{} answered {head:?}",
        conn.addr
    );
    Ok(body.trim_end_matches('\n').to_owned())
}

/// Sends `payload` from `ns`, from UDP port `from_port` (0: any), to `ip:port`, and returns the
/// reply. Distinct source ports make distinct flows.
pub fn udp_request(
    ns: &Netns,
    ip: IpAddr,
    port: u16,
    payload: &[u8],
    from_port: u16,
) -> Result<String> {
    let addr = SocketAddr::new(ip, port);
    let any: IpAddr = match ip {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = retry_in_use(|| ns.enter(|| UdpSocket::bind((any, from_port))))?
        .with_context(|| format!("cannot bind UDP port {from_port} in {}", ns.name()))?;
    // Connected, so that the kernel drops datagrams from anyone but `addr`.
    socket
        .connect(addr)
        .with_context(|| format!("cannot connect UDP to {addr}"))?;
    socket.set_read_timeout(Some(IO_TIMEOUT))?;
    socket.set_write_timeout(Some(IO_TIMEOUT))?;
    socket
        .send(payload)
        .with_context(|| format!("cannot send to UDP {addr}"))?;
    let mut buf = vec![0u8; 65536];
    let len = socket
        .recv(&mut buf)
        .with_context(|| format!("no answer from UDP {addr} to port {from_port}"))?;
    String::from_utf8(buf[..len].to_vec()).with_context(|| format!("non-UTF-8 answer from {addr}"))
}

/// An open connection to a test TCP server.
#[derive(Debug)]
pub struct TcpConn {
    addr: SocketAddr,
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl TcpConn {
    /// Sends `line` and returns the name of the server, which echoes the line after its name.
    pub fn ask(&mut self, line: &str) -> Result<String> {
        ensure!(!line.contains('\n'), "a request is one line");
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .with_context(|| format!("cannot send to {}", self.addr))?;
        let mut reply = String::new();
        let len = self
            .reader
            .read_line(&mut reply)
            .with_context(|| format!("no answer from {}", self.addr))?;
        if len == 0 {
            bail!("{} closed the connection", self.addr);
        }
        let reply = reply.trim_end_matches('\n');
        match reply.split_once(' ') {
            Some((name, echo)) if echo == line => Ok(name.to_owned()),
            _ => bail!("{} answered {reply:?} to {line:?}", self.addr),
        }
    }

    /// The address this connection was opened to.
    pub fn peer_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The connection's local address (its source port tells the flow).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.stream.local_addr()?)
    }
}
