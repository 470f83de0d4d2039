//! Long-lived streams through a virtual IP, for failover tests: many TCP connections echoing a
//! checked pattern both ways, and UDP flows, reporting exactly which ones were reset, cut,
//! corrupted, stalled or moved to another server.
//!
//! ```text
//! rvs-stream serve --port P [--udp-port Q] [--name NAME] [--bind ADDR] [--idle-ms MS]
//! rvs-stream client --addr ADDR --port P --conns N [--udp-port Q --udp-flows M]
//!     [--interval-ms 20] [--chunk 512] [--stall-ms 5000] [--drain-ms MS]
//!     [--connect-timeout-ms 2000] [--connect-retries 3] [--batch 10] [--seed S]
//!     [--udp-max-lost K] (--until FILE | --seconds S | both)
//! ```
//!
//! The server answers every TCP connection with one line `NAME\n`, then echoes every byte it
//! receives; it answers every UDP datagram with `NAME\n` followed by the datagram, from the
//! address the datagram was sent to (so it works on a direct-routing real server holding the
//! VIP). It logs `rvs-stream: NAME serving ...` to stderr once it listens.
//!
//! The client opens its connections `--batch` at a time, reads each one's server name, then on
//! each sends `--chunk` bytes of the [`Pattern`] seeded for that connection every interval and
//! waits for their echo, checked byte for byte. It logs `rvs-stream: streaming ...` to stderr once
//! every connection was tried, one line per problem as it happens, and at the end prints one
//! JSON line on stdout. It stops when FILE exists, S seconds after streaming began, or on SIGTERM
//! or SIGINT (without `--seconds`, after 600 s at most). Exit status: 0 if every connection and
//! every flow was ok, 1 otherwise, 2 on bad usage.

use std::{
    collections::BTreeMap,
    io::{ErrorKind, IoSlice, IoSliceMut, Read, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    path::PathBuf,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::socket::{
    AddressFamily, Backlog, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
    SockaddrStorage, bind, listen, recvmsg, sendmsg, setsockopt, socket,
    sockopt::{Ipv4PacketInfo, Ipv6RecvPacketInfo, Ipv6V6Only, ReuseAddr},
};
use rvs_testbed::bulk::{Checker, Pattern};

/// How often blocking calls wake up to look at the clock and the stop flag.
const TICK: Duration = Duration::from_millis(50);
/// The largest chunk: an echo of it always fits in the socket buffers of both ends, so the
/// send-then-read of one thread never deadlocks.
const MAX_CHUNK: usize = 64 * 1024;
/// The stop time without `--seconds`.
const DEFAULT_CAP: Duration = Duration::from_secs(600);
/// The longest server name line the client accepts.
const MAX_NAME: usize = 255;
/// The stack of each connection's thread.
const STACK: usize = 256 * 1024;
/// Bytes of pattern in each UDP datagram, after the flow and sequence numbers.
const UDP_PATTERN: usize = 48;

/// Set by SIGTERM and SIGINT in the client.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("serve") => match ServeConfig::parse(&args[1..]).and_then(|c| serve(&c)) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("rvs-stream: {e:#}");
                1
            }
        },
        Some("client") => match ClientConfig::parse(&args[1..]) {
            Ok(config) => match client(&config) {
                Ok(true) => 0,
                Ok(false) => 1,
                Err(e) => {
                    eprintln!("rvs-stream: {e:#}");
                    1
                }
            },
            Err(e) => {
                eprintln!("rvs-stream: {e:#}");
                2
            }
        },
        _ => {
            eprintln!(
                "usage: rvs-stream serve --port P [--udp-port Q] [--name NAME] [--bind ADDR]\n\
                 \x20      rvs-stream client --addr ADDR --port P --conns N [--udp-port Q \
                 --udp-flows M] [--interval-ms 20] [--chunk 512] [--stall-ms 5000] \
                 (--until FILE | --seconds S)"
            );
            2
        }
    };
    std::process::exit(code);
}

// ---------------------------------------------------------------------------------------------
// Arguments

/// `--key value` pairs.
struct Args(BTreeMap<String, String>);

impl Args {
    fn parse(args: &[String], known: &[&str]) -> Result<Self> {
        let mut map = BTreeMap::new();
        let mut it = args.iter();
        while let Some(key) = it.next() {
            let name = key
                .strip_prefix("--")
                .filter(|k| known.contains(k))
                .ok_or_else(|| anyhow!("unknown argument {key:?}"))?;
            let value = it.next().ok_or_else(|| anyhow!("{key} needs a value"))?;
            if map.insert(name.to_owned(), value.clone()).is_some() {
                bail!("{key} given twice");
            }
        }
        Ok(Self(map))
    }

    fn get<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        self.0
            .get(key)
            .map(|v| v.parse().map_err(|e| anyhow!("bad --{key} {v:?}: {e}")))
            .transpose()
    }

    fn or<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        Ok(self.get(key)?.unwrap_or(default))
    }

    fn need<T: std::str::FromStr>(&self, key: &str) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        self.get(key)?.ok_or_else(|| anyhow!("--{key} is required"))
    }
}

struct ServeConfig {
    bind: IpAddr,
    port: u16,
    udp_port: Option<u16>,
    name: String,
    idle: Duration,
}

impl ServeConfig {
    fn parse(args: &[String]) -> Result<Self> {
        let a = Args::parse(args, &["port", "udp-port", "name", "bind", "idle-ms"])?;
        let name = match a.get::<String>("name")? {
            Some(name) => name,
            None => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "rvs-stream".to_owned()),
        };
        if name.is_empty() || name.len() > MAX_NAME || name.contains('\n') {
            bail!("--name must be 1 to {MAX_NAME} bytes without a newline");
        }
        Ok(Self {
            bind: a.or("bind", IpAddr::V6(Ipv6Addr::UNSPECIFIED))?,
            port: a.need("port")?,
            udp_port: a.get("udp-port")?,
            name,
            idle: Duration::from_millis(a.or("idle-ms", 600_000)?),
        })
    }
}

#[derive(Clone, Debug)]
struct ClientConfig {
    addr: IpAddr,
    port: u16,
    conns: u32,
    udp_port: Option<u16>,
    udp_flows: u32,
    interval: Duration,
    chunk: usize,
    stall: Duration,
    drain: Duration,
    connect_timeout: Duration,
    connect_retries: u32,
    batch: u32,
    seed: u64,
    udp_max_lost: u64,
    until: Option<PathBuf>,
    seconds: Option<f64>,
}

impl ClientConfig {
    fn parse(args: &[String]) -> Result<Self> {
        let a = Args::parse(
            args,
            &[
                "addr",
                "port",
                "conns",
                "udp-port",
                "udp-flows",
                "interval-ms",
                "chunk",
                "stall-ms",
                "drain-ms",
                "connect-timeout-ms",
                "connect-retries",
                "batch",
                "seed",
                "udp-max-lost",
                "until",
                "seconds",
            ],
        )?;
        let stall = Duration::from_millis(a.or("stall-ms", 5000)?);
        let config = Self {
            addr: a.need("addr")?,
            port: a.need("port")?,
            conns: a.need("conns")?,
            udp_port: a.get("udp-port")?,
            udp_flows: a.or("udp-flows", 0)?,
            interval: Duration::from_millis(a.or("interval-ms", 20)?),
            chunk: a.or("chunk", 512)?,
            stall,
            drain: a
                .get("drain-ms")?
                .map_or(stall.max(Duration::from_secs(2)), Duration::from_millis),
            connect_timeout: Duration::from_millis(a.or("connect-timeout-ms", 2000)?),
            connect_retries: a.or("connect-retries", 3)?,
            batch: a.or("batch", 10)?,
            seed: a.or("seed", 1)?,
            udp_max_lost: a.or("udp-max-lost", 0)?,
            until: a.get("until")?,
            seconds: a.get("seconds")?,
        };
        if config.until.is_none() && config.seconds.is_none() {
            bail!("--until FILE or --seconds S is required");
        }
        if let Some(s) = config.seconds
            && !(s.is_finite() && s >= 0.0)
        {
            bail!("bad --seconds {s}");
        }
        if !(1..=MAX_CHUNK).contains(&config.chunk) {
            bail!("--chunk must be 1 to {MAX_CHUNK}");
        }
        if config.interval.is_zero() || config.batch == 0 || config.stall.is_zero() {
            bail!("--interval-ms, --batch and --stall-ms must be positive");
        }
        if config.udp_flows > 0 && config.udp_port.is_none() {
            bail!("--udp-flows needs --udp-port");
        }
        Ok(config)
    }
}

/// Lets this process have as many sockets as the hard limit allows.
fn raise_nofile() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain calls on a valid, owned struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn spawn_thread<T: Send + 'static>(
    name: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<thread::JoinHandle<T>> {
    thread::Builder::new()
        .name(name)
        .stack_size(STACK)
        .spawn(f)
        .context("cannot start a thread")
}

// ---------------------------------------------------------------------------------------------
// Server

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

fn serve(config: &ServeConfig) -> Result<()> {
    raise_nofile();
    let tcp_addr = SocketAddr::new(config.bind, config.port);
    let fd = bound(tcp_addr, SockType::Stream)?;
    listen(&fd, Backlog::MAXCONN).context("cannot listen")?;
    let listener = TcpListener::from(fd);
    let name = Arc::<str>::from(config.name.as_str());
    let mut what = format!("tcp {tcp_addr}");
    if let Some(port) = config.udp_port {
        let addr = SocketAddr::new(config.bind, port);
        let socket = UdpSocket::from(bound(addr, SockType::Datagram)?);
        match addr {
            SocketAddr::V4(_) => setsockopt(&socket, Ipv4PacketInfo, &true)?,
            SocketAddr::V6(_) => setsockopt(&socket, Ipv6RecvPacketInfo, &true)?,
        }
        let name = Arc::clone(&name);
        spawn_thread("udp".to_owned(), move || udp_echo(&socket, &name))?;
        what.push_str(&format!(" udp {addr}"));
    }
    eprintln!("rvs-stream: {} serving {what}", config.name);
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and the like: wait for connections to close rather than spin.
                eprintln!("rvs-stream: accept: {e}");
                thread::sleep(TICK);
                continue;
            }
        };
        let name = Arc::clone(&name);
        let idle = config.idle;
        if let Err(e) = spawn_thread(format!("echo-{peer}"), move || {
            let _ = tcp_echo(stream, &name, idle);
        }) {
            eprintln!("rvs-stream: {peer}: {e:#}");
        }
    }
}

/// Sends `NAME\n`, then echoes until the peer closes, an error, or `idle` without data.
fn tcp_echo(mut stream: TcpStream, name: &str, idle: Duration) -> std::io::Result<()> {
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
fn udp_echo(socket: &UdpSocket, name: &str) {
    let mut buf = vec![0u8; 65536];
    let mut cmsg = nix::cmsg_space!(libc::in_pktinfo, libc::in6_pktinfo);
    let head = format!("{name}\n");
    loop {
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
                    if e != nix::errno::Errno::EINTR && e != nix::errno::Errno::ECONNREFUSED {
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

// ---------------------------------------------------------------------------------------------
// Client

/// What every client thread shares.
struct Shared {
    config: ClientConfig,
    start: Instant,
    /// When the run was told to stop.
    stop_at: OnceLock<Instant>,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop_at.get().is_some()
    }

    /// Whether the stop came more than `grace` ago.
    fn past(&self, grace: Duration) -> bool {
        self.stop_at.get().is_some_and(|at| at.elapsed() >= grace)
    }

    fn stop(&self) {
        let _ = self.stop_at.set(Instant::now());
    }

    /// Logs a problem to stderr with the time since the start.
    fn problem(&self, who: &str, what: &str) {
        eprintln!(
            "rvs-stream: +{:.3}s {who}: {what}",
            self.start.elapsed().as_secs_f64()
        );
    }
}

/// How a connection ended, worst first kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Ok,
    /// Never connected, or no name line.
    OpenFailed,
    /// ECONNRESET or any other error.
    Reset,
    /// Closed by the peer before the end.
    Eof,
    /// An echoed byte differed from what was sent, or more came back.
    Mismatch,
    /// Its echo was still missing when the drain time ran out.
    Unfinished,
}

#[derive(Debug)]
struct ConnReport {
    end: End,
    server: Option<String>,
    stalled: bool,
    sent: u64,
    echoed: u64,
    longest_gap: Duration,
}

/// One TCP connection of the client.
struct Conn<'a> {
    id: u32,
    shared: &'a Shared,
    label: String,
    report: ConnReport,
}

impl Conn<'_> {
    fn problem(&self, what: &str) {
        self.shared.problem(&self.label, what);
    }

    /// Records the time waited for echo; flags a stall once.
    fn waited(&mut self, gap: Duration) {
        self.report.longest_gap = self.report.longest_gap.max(gap);
        if gap > self.shared.config.stall && !self.report.stalled {
            self.report.stalled = true;
            self.problem(&format!(
                "stalled: no echo for {} ms ({} of {} bytes echoed)",
                gap.as_millis(),
                self.report.echoed,
                self.report.sent
            ));
        }
    }

    fn failed(&mut self, end: End, what: &str) -> End {
        self.problem(what);
        self.report.end = end;
        end
    }

    fn io_failed(&mut self, doing: &str, e: &std::io::Error) -> End {
        let what = if e.kind() == ErrorKind::ConnectionReset {
            format!("reset while {doing}: {e}")
        } else {
            format!("error while {doing}: {e}")
        };
        self.failed(End::Reset, &what)
    }

    /// Connects with bounded retries and reads the server's name line.
    fn open(&mut self) -> Option<TcpStream> {
        let c = &self.shared.config;
        let addr = SocketAddr::new(c.addr, c.port);
        let mut attempt = 0;
        let stream = loop {
            match TcpStream::connect_timeout(&addr, c.connect_timeout) {
                Ok(stream) => break stream,
                Err(e) => {
                    attempt += 1;
                    if attempt > c.connect_retries || self.shared.stopping() {
                        self.failed(
                            End::OpenFailed,
                            &format!("cannot connect to {addr} after {attempt} tries: {e}"),
                        );
                        return None;
                    }
                    self.problem(&format!("connect to {addr} failed (try {attempt}): {e}"));
                    thread::sleep(Duration::from_millis(200) * attempt);
                }
            }
        };
        if let Ok(local) = stream.local_addr() {
            self.label = format!("conn {} (port {})", self.id, local.port());
        }
        let setup = stream
            .set_nodelay(true)
            .and_then(|()| stream.set_read_timeout(Some(TICK)))
            .and_then(|()| stream.set_write_timeout(Some(TICK)));
        if let Err(e) = setup {
            self.failed(End::OpenFailed, &format!("cannot set up the socket: {e}"));
            return None;
        }
        match read_name(
            &stream,
            self.shared
                .config
                .connect_timeout
                .max(Duration::from_secs(5)),
        ) {
            Ok(name) => {
                self.label = format!("{} on {name}", self.label);
                self.report.server = Some(name);
                Some(stream)
            }
            Err(e) => {
                self.failed(End::OpenFailed, &format!("no server name line: {e:#}"));
                None
            }
        }
    }

    /// Sends a chunk every interval and waits for its echo until told to stop.
    fn stream(&mut self, stream: &mut TcpStream) -> End {
        let c = &self.shared.config;
        let seed = (c.seed << 32) ^ u64::from(self.id);
        let mut pattern = Pattern::new(seed);
        let mut checker = Checker::new(seed, u64::MAX);
        let mut out = vec![0u8; c.chunk];
        let mut input = vec![0u8; MAX_CHUNK];
        let mut next = Instant::now();
        while !self.shared.stopping() {
            pattern.fill(&mut out);
            if let Err(end) = self.send(stream, &out) {
                return end;
            }
            if let Err(end) = self.await_echo(stream, &mut checker, &mut input) {
                return end;
            }
            next += c.interval;
            let now = Instant::now();
            if next > now {
                thread::sleep(next - now);
            } else {
                next = now;
            }
        }
        self.close(stream, &mut input)
    }

    fn send(&mut self, stream: &mut TcpStream, data: &[u8]) -> Result<(), End> {
        let mut done = 0;
        let mut since = Instant::now();
        while done < data.len() {
            match stream.write(&data[done..]) {
                Ok(0) => return Err(self.failed(End::Eof, "the connection takes no more data")),
                Ok(n) => {
                    done += n;
                    self.report.sent += n as u64;
                    since = Instant::now();
                }
                Err(e) if is_timeout(&e) => {
                    // The send buffer is full: the echo stopped too.
                    self.waited(since.elapsed());
                    if self.shared.past(self.shared.config.drain) {
                        return Err(self.failed(
                            End::Unfinished,
                            "could not send by the end of the drain time",
                        ));
                    }
                }
                Err(e) => return Err(self.io_failed("sending", &e)),
            }
        }
        Ok(())
    }

    /// Reads until everything sent has come back.
    fn await_echo(
        &mut self,
        stream: &mut TcpStream,
        checker: &mut Checker,
        buf: &mut [u8],
    ) -> Result<(), End> {
        let mut since = Instant::now();
        while self.report.echoed < self.report.sent {
            match stream.read(buf) {
                Ok(0) => {
                    let what = format!(
                        "closed by the peer ({} of {} bytes echoed)",
                        self.report.echoed, self.report.sent
                    );
                    return Err(self.failed(End::Eof, &what));
                }
                Ok(n) => {
                    self.waited(since.elapsed());
                    since = Instant::now();
                    checker.update(&buf[..n]);
                    self.report.echoed = checker.received();
                    if let Some(at) = checker.first_mismatch() {
                        return Err(self.failed(
                            End::Mismatch,
                            &format!("echo byte {at} differs from what was sent"),
                        ));
                    }
                    if self.report.echoed > self.report.sent {
                        let what = format!(
                            "{} bytes echoed where {} were sent",
                            self.report.echoed, self.report.sent
                        );
                        return Err(self.failed(End::Mismatch, &what));
                    }
                }
                Err(e) if is_timeout(&e) => {
                    self.waited(since.elapsed());
                    if self.shared.past(self.shared.config.drain) {
                        let what = format!(
                            "echo still missing at the end ({} of {} bytes)",
                            self.report.echoed, self.report.sent
                        );
                        return Err(self.failed(End::Unfinished, &what));
                    }
                }
                Err(e) => return Err(self.io_failed("reading the echo", &e)),
            }
        }
        Ok(())
    }

    /// Half-closes and waits for the server to close its half, with nothing more echoed.
    fn close(&mut self, stream: &mut TcpStream, buf: &mut [u8]) -> End {
        if let Err(e) = stream.shutdown(Shutdown::Write) {
            return self.io_failed("closing", &e);
        }
        loop {
            match stream.read(buf) {
                Ok(0) => return End::Ok,
                Ok(n) => {
                    let what = format!("{n} more bytes echoed after the last one sent");
                    return self.failed(End::Mismatch, &what);
                }
                Err(e) if is_timeout(&e) => {
                    if self.shared.past(self.shared.config.drain) {
                        return self.failed(End::Unfinished, "the server did not close in time");
                    }
                }
                Err(e) => return self.io_failed("closing", &e),
            }
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// Reads one line, byte by byte so nothing after it is taken, within `timeout`.
fn read_name(mut stream: &TcpStream, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    let mut line = Vec::new();
    let mut byte = [0u8];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => bail!("closed after {} bytes", line.len()),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => {
                line.push(byte[0]);
                if line.len() > MAX_NAME {
                    bail!("longer than {MAX_NAME} bytes");
                }
            }
            Err(e) if is_timeout(&e) => {
                if Instant::now() >= deadline {
                    bail!("none within {timeout:?}");
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    String::from_utf8(line).context("not UTF-8")
}

fn run_conn(id: u32, shared: &Shared, opened: &mpsc::Sender<()>) -> ConnReport {
    let mut conn = Conn {
        id,
        shared,
        label: format!("conn {id}"),
        report: ConnReport {
            end: End::Ok,
            server: None,
            stalled: false,
            sent: 0,
            echoed: 0,
            longest_gap: Duration::ZERO,
        },
    };
    let stream = conn.open();
    let _ = opened.send(());
    if let Some(mut stream) = stream {
        let end = conn.stream(&mut stream);
        conn.report.end = end;
    }
    conn.report
}

#[derive(Debug, Default)]
struct FlowReport {
    server: Option<String>,
    moved: bool,
    sent: u64,
    answered: u64,
    mismatch: u64,
    longest_gap: Duration,
    failed: bool,
}

/// The datagram `seq` of `flow`: both numbers, then pattern bytes seeded by both.
fn datagram(seed: u64, flow: u32, seq: u64) -> Vec<u8> {
    let mut data = Vec::with_capacity(12 + UDP_PATTERN);
    data.extend_from_slice(&flow.to_le_bytes());
    data.extend_from_slice(&seq.to_le_bytes());
    let mut tail = [0u8; UDP_PATTERN];
    Pattern::new(seed ^ (u64::from(flow) << 40) ^ seq).fill(&mut tail);
    data.extend_from_slice(&tail);
    data
}

fn run_flow(flow: u32, shared: &Shared) -> FlowReport {
    let mut report = FlowReport::default();
    let who = format!("udp flow {flow}");
    if let Err(e) = flow_loop(flow, shared, &mut report) {
        shared.problem(&who, &format!("{e:#}"));
        report.failed = true;
    }
    report
}

fn flow_loop(flow: u32, shared: &Shared, report: &mut FlowReport) -> Result<()> {
    let c = &shared.config;
    let port = c.udp_port.context("no --udp-port")?;
    let local: SocketAddr = match c.addr {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).context("cannot bind a UDP socket")?;
    socket
        .connect((c.addr, port))
        .context("cannot connect the UDP socket")?;
    let who = match socket.local_addr() {
        Ok(a) => format!("udp flow {flow} (port {})", a.port()),
        Err(_) => format!("udp flow {flow}"),
    };
    let mut answered: Vec<bool> = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut next = Instant::now();
    let mut last_answer = Instant::now();
    let mut refused = false;
    // Answers may come until a moment after the last datagram.
    let udp_drain = c.drain.min(Duration::from_secs(1));
    loop {
        let now = Instant::now();
        let stopping = shared.stopping();
        if stopping && (report.answered == report.sent || shared.past(udp_drain)) {
            break;
        }
        if !stopping && now >= next {
            let seq = report.sent;
            match socket.send(&datagram(c.seed, flow, seq)) {
                Ok(_) => {}
                Err(e) => {
                    if !refused {
                        shared.problem(&who, &format!("send {seq}: {e}"));
                    }
                    refused = true;
                }
            }
            report.sent += 1;
            answered.push(false);
            next += c.interval;
            if next < now {
                next = now;
            }
        }
        let wait = next
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), TICK);
        socket.set_read_timeout(Some(wait))?;
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if is_timeout(&e) => {
                let gap = last_answer.elapsed();
                report.longest_gap = report.longest_gap.max(gap);
                continue;
            }
            Err(e) => {
                // ECONNREFUSED: an ICMP error for an earlier datagram; the flow goes on.
                if !refused {
                    shared.problem(&who, &format!("receive: {e}"));
                }
                refused = true;
                continue;
            }
        };
        refused = false;
        let reply = &buf[..n];
        let Some(split) = reply.iter().position(|&b| b == b'\n') else {
            report.mismatch += 1;
            shared.problem(&who, "an answer without a server name line");
            continue;
        };
        let name = String::from_utf8_lossy(&reply[..split]).into_owned();
        let payload = &reply[split + 1..];
        let seq = (payload.get(4..12))
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
            .unwrap_or(u64::MAX);
        let Some(slot) = usize::try_from(seq).ok().and_then(|i| answered.get_mut(i)) else {
            report.mismatch += 1;
            shared.problem(&who, &format!("an answer from {name} for no datagram sent"));
            continue;
        };
        if payload != datagram(c.seed, flow, seq).as_slice() {
            report.mismatch += 1;
            shared.problem(&who, &format!("the answer to {seq} from {name} differs"));
            continue;
        }
        if *slot {
            continue;
        }
        *slot = true;
        report.answered += 1;
        report.longest_gap = report.longest_gap.max(last_answer.elapsed());
        last_answer = Instant::now();
        match &report.server {
            None => report.server = Some(name),
            Some(first) if *first != name => {
                if !report.moved {
                    shared.problem(&who, &format!("moved from {first} to {name} at {seq}"));
                }
                report.moved = true;
                report.server = Some(name);
            }
            Some(_) => {}
        }
    }
    let lost = report.sent - report.answered;
    if lost > 0 {
        shared.problem(
            &who,
            &format!("{lost} of {} datagrams not answered", report.sent),
        );
    }
    Ok(())
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_map(map: &BTreeMap<String, u32>) -> String {
    let items: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{}:{v}", json_str(k)))
        .collect();
    format!("{{{}}}", items.join(","))
}

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::Relaxed);
}

/// Whether the run should stop now.
fn should_stop(config: &ClientConfig, streaming_since: Option<Instant>) -> bool {
    if SIGNALLED.load(Ordering::Relaxed) {
        return true;
    }
    if config.until.as_ref().is_some_and(|f| f.exists()) {
        return true;
    }
    let cap = config.seconds.map_or(DEFAULT_CAP, Duration::from_secs_f64);
    streaming_since.is_some_and(|t| t.elapsed() >= cap)
}

fn client(config: &ClientConfig) -> Result<bool> {
    raise_nofile();
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let shared = Arc::new(Shared {
        config: config.clone(),
        start: Instant::now(),
        stop_at: OnceLock::new(),
    });
    let (done_tx, done_rx) = mpsc::channel::<ConnReport>();
    let (flow_tx, flow_rx) = mpsc::channel::<FlowReport>();
    let (opened_tx, opened_rx) = mpsc::channel::<()>();

    for flow in 0..config.udp_flows {
        let (shared, tx) = (Arc::clone(&shared), flow_tx.clone());
        spawn_thread(format!("flow-{flow}"), move || {
            let _ = tx.send(run_flow(flow, &shared));
        })?;
    }
    drop(flow_tx);

    // Open the connections a batch at a time: each batch is given the time its connects may take.
    let per_batch = (config.connect_timeout + Duration::from_millis(200) * config.connect_retries)
        * (config.connect_retries + 1)
        + Duration::from_secs(5);
    let mut spawned = 0;
    let mut tried = 0;
    while spawned < config.conns && !should_stop(config, None) {
        let batch = config.batch.min(config.conns - spawned);
        for id in spawned..spawned + batch {
            let (shared, tx, opened) = (Arc::clone(&shared), done_tx.clone(), opened_tx.clone());
            spawn_thread(format!("conn-{id}"), move || {
                let _ = tx.send(run_conn(id, &shared, &opened));
            })?;
        }
        spawned += batch;
        let deadline = Instant::now() + per_batch;
        while tried < spawned && !should_stop(config, None) {
            match opened_rx.recv_timeout(TICK) {
                Ok(()) => tried += 1,
                Err(_) if Instant::now() >= deadline => break,
                Err(_) => {}
            }
        }
    }
    drop(done_tx);
    let streaming_since = Instant::now();
    eprintln!(
        "rvs-stream: streaming on {spawned} of {} connections after {:.3}s",
        config.conns,
        shared.start.elapsed().as_secs_f64()
    );
    while !should_stop(config, Some(streaming_since)) {
        thread::sleep(Duration::from_millis(20));
    }
    shared.stop();
    let run_seconds = streaming_since.elapsed().as_secs_f64();

    // Every thread ends within the drain time plus a tick or so; wait for them a bit longer.
    let deadline = Instant::now() + config.drain + Duration::from_secs(3);
    let mut conns = Vec::new();
    while conns.len() < spawned as usize {
        let left = deadline.saturating_duration_since(Instant::now());
        match done_rx.recv_timeout(left) {
            Ok(report) => conns.push(report),
            Err(_) => break,
        }
    }
    let mut flows = Vec::new();
    while flows.len() < config.udp_flows as usize {
        let left = deadline.saturating_duration_since(Instant::now());
        match flow_rx.recv_timeout(left) {
            Ok(report) => flows.push(report),
            Err(_) => break,
        }
    }
    let missing_conns = config.conns as usize - conns.len();
    let missing_flows = config.udp_flows as usize - flows.len();
    if missing_conns + missing_flows > 0 {
        shared.problem(
            "client",
            &format!("{missing_conns} connections and {missing_flows} flows did not finish"),
        );
    }

    let count = |end: End| conns.iter().filter(|r| r.end == end).count();
    let opened = conns.iter().filter(|r| r.server.is_some()).count();
    let ok = conns
        .iter()
        .filter(|r| r.end == End::Ok && !r.stalled && r.server.is_some())
        .count();
    // Connections that never reported were never opened or hang: count them as stalled.
    let stalled = conns.iter().filter(|r| r.stalled).count() + missing_conns;
    let mut servers = BTreeMap::new();
    for name in conns.iter().filter_map(|r| r.server.clone()) {
        *servers.entry(name).or_insert(0) += 1;
    }
    let mut udp_servers = BTreeMap::new();
    for name in flows.iter().filter_map(|r| r.server.clone()) {
        *udp_servers.entry(name).or_insert(0) += 1;
    }
    let udp_sent: u64 = flows.iter().map(|f| f.sent).sum();
    let udp_answered: u64 = flows.iter().map(|f| f.answered).sum();
    let flow_ok = |f: &FlowReport| {
        !f.failed
            && !f.moved
            && f.answered > 0
            && f.mismatch == 0
            && f.sent - f.answered <= config.udp_max_lost
    };
    let udp_ok = flows.iter().filter(|f| flow_ok(f)).count();
    let longest_gap = conns
        .iter()
        .map(|r| r.longest_gap)
        .max()
        .unwrap_or_default();
    let udp_gap = flows
        .iter()
        .map(|f| f.longest_gap)
        .max()
        .unwrap_or_default();
    println!(
        "{{\"conns\":{},\"opened\":{opened},\"ok\":{ok},\"reset\":{},\"eof\":{},\
         \"mismatch\":{},\"stalled\":{stalled},\"open_failed\":{},\"unfinished\":{},\
         \"bytes_sent\":{},\"bytes_echoed\":{},\"servers\":{},\"moved\":0,\
         \"longest_gap_ms\":{},\"udp_flows\":{},\"udp_ok\":{udp_ok},\"udp_sent\":{udp_sent},\
         \"udp_answered\":{udp_answered},\"udp_lost\":{},\"udp_moved\":{},\
         \"udp_mismatch\":{},\"udp_servers\":{},\"udp_longest_gap_ms\":{},\"seconds\":{:.3}}}",
        config.conns,
        count(End::Reset),
        count(End::Eof),
        count(End::Mismatch),
        count(End::OpenFailed),
        count(End::Unfinished),
        conns.iter().map(|r| r.sent).sum::<u64>(),
        conns.iter().map(|r| r.echoed).sum::<u64>(),
        json_map(&servers),
        longest_gap.as_millis(),
        config.udp_flows,
        udp_sent - udp_answered,
        flows.iter().filter(|f| f.moved).count(),
        flows.iter().map(|f| f.mismatch).sum::<u64>(),
        json_map(&udp_servers),
        udp_gap.as_millis(),
        run_seconds,
    );
    let _ = std::io::stdout().flush();
    Ok(ok == config.conns as usize && udp_ok == config.udp_flows as usize)
}
