//! The server side of the streams: TCP echo with a name line first, UDP echo with a name line
//! first, answered from the address each datagram was sent to.

use std::{
    io::{ErrorKind, IoSlice, IoSliceMut, Read, Write},
    net::{IpAddr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use nix::sys::socket::{
    AddressFamily, Backlog, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
    SockaddrStorage, bind, listen, recvmsg, sendmsg, setsockopt, socket,
    sockopt::{Ipv4PacketInfo, Ipv6RecvPacketInfo, Ipv6V6Only, ReuseAddr},
};

use super::{MAX_CHUNK, MAX_NAME, TICK, is_timeout, join_by, raise_nofile, spawn_thread};
use crate::Netns;

/// What a [`StreamServer`] serves.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The address it listens on; `[::]` (the default) takes IPv4 too.
    pub bind: IpAddr,
    /// The TCP port.
    pub port: u16,
    /// The UDP port, if it serves UDP too.
    pub udp_port: Option<u16>,
    /// The name it answers with (1 to 255 bytes, no newline).
    pub name: String,
    /// A TCP connection without data for this long is closed.
    pub idle: Duration,
}

impl ServeConfig {
    /// TCP on `[::]:port`, answering as `name`, idle connections closed after 600 s.
    pub fn new(name: &str, port: u16) -> Self {
        Self {
            bind: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            port,
            udp_port: None,
            name: name.to_owned(),
            idle: Duration::from_secs(600),
        }
    }

    /// UDP as well, on `port`.
    pub fn udp(mut self, port: u16) -> Self {
        self.udp_port = Some(port);
        self
    }
}

/// A running stream server; dropping it stops it and closes its connections.
pub struct StreamServer {
    shared: Arc<Shared>,
    tcp_addr: SocketAddr,
    udp_addr: Option<SocketAddr>,
    threads: Vec<JoinHandle<()>>,
}

struct Shared {
    stop: AtomicBool,
    /// The open connections (a handle to shut each down) and their threads.
    conns: Mutex<Vec<(TcpStream, JoinHandle<()>)>>,
}

impl StreamServer {
    /// Listens in the calling thread's network namespace.
    pub fn start(config: &ServeConfig) -> Result<Self> {
        if config.name.is_empty() || config.name.len() > MAX_NAME || config.name.contains('\n') {
            bail!("the name must be 1 to {MAX_NAME} bytes without a newline");
        }
        raise_nofile();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
        });
        let name = Arc::<str>::from(config.name.as_str());
        let tcp_addr = SocketAddr::new(config.bind, config.port);
        let fd = bound(tcp_addr, SockType::Stream)?;
        listen(&fd, Backlog::MAXCONN).context("cannot listen")?;
        let listener = TcpListener::from(fd);
        // Nonblocking, so that the acceptor sees the stop flag.
        listener.set_nonblocking(true)?;
        let tcp_addr = listener.local_addr()?;
        let mut threads = Vec::new();
        let mut udp_addr = None;
        if let Some(port) = config.udp_port {
            let addr = SocketAddr::new(config.bind, port);
            let socket = UdpSocket::from(bound(addr, SockType::Datagram)?);
            match addr {
                SocketAddr::V4(_) => setsockopt(&socket, Ipv4PacketInfo, &true)?,
                SocketAddr::V6(_) => setsockopt(&socket, Ipv6RecvPacketInfo, &true)?,
            }
            socket.set_read_timeout(Some(TICK))?;
            udp_addr = Some(socket.local_addr()?);
            let (name, shared) = (Arc::clone(&name), Arc::clone(&shared));
            threads.push(spawn_thread("udp".to_owned(), move || {
                udp_echo(&socket, &name, &shared.stop)
            })?);
        }
        let idle = config.idle;
        let accept_shared = Arc::clone(&shared);
        threads.push(spawn_thread("accept".to_owned(), move || {
            accept_loop(&listener, &name, idle, &accept_shared)
        })?);
        Ok(Self {
            shared,
            tcp_addr,
            udp_addr,
            threads,
        })
    }

    /// Listens inside `ns`.
    pub fn start_in(ns: &Netns, config: &ServeConfig) -> Result<Self> {
        ns.enter(|| Self::start(config))?
            .with_context(|| format!("cannot serve streams in {}", ns.name()))
    }

    /// The TCP address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// The UDP address, if it serves UDP.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp_addr
    }

    /// Serves until the process ends.
    pub fn run_forever(self) -> ! {
        loop {
            thread::park();
        }
    }
}

impl Drop for StreamServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(5);
        for t in self.threads.drain(..) {
            join_by(t, deadline);
        }
        let conns =
            std::mem::take(&mut *self.shared.conns.lock().unwrap_or_else(|e| e.into_inner()));
        for (stream, _) in &conns {
            let _ = stream.shutdown(Shutdown::Both);
        }
        for (_, t) in conns {
            join_by(t, deadline);
        }
    }
}

fn accept_loop(listener: &TcpListener, name: &Arc<str>, idle: Duration, shared: &Shared) {
    while !shared.stop.load(Ordering::Relaxed) {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if is_timeout(&e) => {
                thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(e) => {
                // EMFILE and the like: wait for connections to close rather than spin.
                eprintln!("rvs-stream: accept: {e}");
                thread::sleep(TICK);
                continue;
            }
        };
        let handle = match stream.try_clone() {
            Ok(h) => h,
            Err(e) => {
                eprintln!("rvs-stream: {peer}: {e}");
                continue;
            }
        };
        let name = Arc::clone(name);
        match spawn_thread(format!("echo-{peer}"), move || {
            let _ = tcp_echo(stream, &name, idle);
        }) {
            Ok(t) => {
                let mut conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
                conns.retain(|(_, t)| !t.is_finished());
                conns.push((handle, t));
            }
            Err(e) => eprintln!("rvs-stream: {peer}: {e:#}"),
        }
    }
}

/// A socket of type `ty` bound to `addr`; on `[::]` it takes IPv4 too.
fn bound(addr: SocketAddr, ty: SockType) -> Result<std::os::fd::OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(family, ty, SockFlag::SOCK_CLOEXEC, None).context("cannot make a socket")?;
    if addr.is_ipv6() {
        setsockopt(&fd, Ipv6V6Only, &false).context("cannot turn IPV6_V6ONLY off")?;
    }
    if ty == SockType::Stream {
        setsockopt(&fd, ReuseAddr, &true)?;
    }
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))
        .with_context(|| format!("cannot bind {addr}"))?;
    Ok(fd)
}

/// Sends `NAME\n`, then echoes until the peer closes, an error, or `idle` without data.
fn tcp_echo(mut stream: TcpStream, name: &str, idle: Duration) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(idle))?;
    stream.set_write_timeout(Some(idle))?;
    stream.write_all(format!("{name}\n").as_bytes())?;
    let mut buf = vec![0u8; MAX_CHUNK];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        stream.write_all(&buf[..n])?;
    }
    // The client half-closed after its last echo: close our half too.
    stream.shutdown(Shutdown::Write)
}

/// The destination of a datagram, where its answer is sent from.
enum Destination {
    V4(libc::in_pktinfo),
    V6(libc::in6_pktinfo),
}

impl Destination {
    fn of(message: ControlMessageOwned) -> Option<Self> {
        match message {
            ControlMessageOwned::Ipv4PacketInfo(info) => Some(Self::V4(info)),
            ControlMessageOwned::Ipv6PacketInfo(info) => Some(Self::V6(info)),
            _ => None,
        }
    }

    fn reply_from(&mut self) -> ControlMessage<'_> {
        match self {
            Self::V4(info) => {
                info.ipi_spec_dst = info.ipi_addr;
                info.ipi_ifindex = 0;
                ControlMessage::Ipv4PacketInfo(info)
            }
            Self::V6(info) => {
                info.ipi6_ifindex = 0;
                ControlMessage::Ipv6PacketInfo(info)
            }
        }
    }
}

/// Answers every datagram with `NAME\n` and the datagram, from the address it was sent to.
fn udp_echo(socket: &UdpSocket, name: &str, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65536];
    let mut cmsg = nix::cmsg_space!(libc::in_pktinfo, libc::in6_pktinfo);
    let head = format!("{name}\n");
    while !stop.load(Ordering::Relaxed) {
        let (peer, mut local, len) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<SockaddrStorage>(
                socket.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            ) {
                Ok(msg) => {
                    let local = (msg.cmsgs().ok()).and_then(|mut c| c.find_map(Destination::of));
                    match msg.address {
                        Some(peer) => (peer, local, msg.bytes),
                        None => continue,
                    }
                }
                Err(e) => {
                    // EINTR, or an ICMP error from an earlier answer's destination.
                    let quiet = [
                        nix::errno::Errno::EINTR,
                        nix::errno::Errno::EAGAIN,
                        nix::errno::Errno::ECONNREFUSED,
                    ];
                    if !quiet.contains(&e) {
                        eprintln!("rvs-stream: udp: {e}");
                        thread::sleep(TICK);
                    }
                    continue;
                }
            }
        };
        let iov = [IoSlice::new(head.as_bytes()), IoSlice::new(&buf[..len])];
        let cmsgs: Vec<ControlMessage> = local.iter_mut().map(Destination::reply_from).collect();
        if let Err(e) = sendmsg(
            socket.as_raw_fd(),
            &iov,
            &cmsgs,
            MsgFlags::empty(),
            Some(&peer),
        ) {
            eprintln!("rvs-stream: udp: answer to {peer}: {e}");
        }
    }
}
