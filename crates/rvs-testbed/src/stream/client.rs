//! The client side of the streams: TCP connections echoing a checked pattern and UDP flows of
//! numbered datagrams, each on its own thread, and the report of how each ended.

use std::{
    collections::BTreeMap,
    io::{ErrorKind, Read, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};

use super::{MAX_CHUNK, MAX_NAME, TICK, is_timeout, join_by, raise_nofile, spawn_thread};
use crate::{
    Netns,
    bulk::{Checker, Pattern},
    poll_until,
};

/// Bytes of pattern in each UDP datagram, after the flow and sequence numbers.
const UDP_PATTERN: usize = 48;
/// The longest a run goes on without being told to stop.
const DEFAULT_CAP: Duration = Duration::from_secs(600);

/// What a client runs.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The virtual (or real) address streamed to.
    pub addr: IpAddr,
    /// Its TCP port.
    pub port: u16,
    /// TCP connections.
    pub conns: u32,
    /// Its UDP port, for `udp_flows`.
    pub udp_port: Option<u16>,
    /// UDP flows, each from a port of its own.
    pub udp_flows: u32,
    /// The client's source address (one of its host's), or None for the route's.
    pub source: Option<IpAddr>,
    /// Each connection sends a chunk, and each flow a datagram, this often.
    pub interval: Duration,
    /// Bytes of each chunk, 1 to [`MAX_CHUNK`].
    pub chunk: usize,
    /// No echo for this long marks a connection stalled.
    pub stall: Duration,
    /// After the stop, how long echoes may still come (None: the stall time, at least 2 s).
    pub drain: Option<Duration>,
    pub connect_timeout: Duration,
    pub connect_retries: u32,
    /// Connections opened at a time.
    pub batch: u32,
    /// Seeds every connection's and flow's pattern.
    pub seed: u64,
    /// Datagrams a flow may lose and still be ok.
    pub udp_max_lost: u64,
}

impl ClientConfig {
    /// `conns` connections to `addr:port`, no UDP, the defaults: 512 bytes every 20 ms, stalled
    /// after 5 s, connects of 2 s tried 4 times, 10 at a time.
    pub fn new(addr: IpAddr, port: u16, conns: u32) -> Self {
        Self {
            addr,
            port,
            conns,
            udp_port: None,
            udp_flows: 0,
            source: None,
            interval: Duration::from_millis(20),
            chunk: 512,
            stall: Duration::from_secs(5),
            drain: None,
            connect_timeout: Duration::from_secs(2),
            connect_retries: 3,
            batch: 10,
            seed: 1,
            udp_max_lost: 0,
        }
    }

    /// `flows` UDP flows to `addr:port` as well.
    pub fn udp(mut self, port: u16, flows: u32) -> Self {
        self.udp_port = Some(port);
        self.udp_flows = flows;
        self
    }

    /// From the source address `source`.
    pub fn from(mut self, source: IpAddr) -> Self {
        self.source = Some(source);
        self
    }

    /// The drain time in effect.
    pub fn drain(&self) -> Duration {
        self.drain
            .unwrap_or_else(|| self.stall.max(Duration::from_secs(2)))
    }

    /// Refuses what cannot run.
    pub fn check(&self) -> Result<()> {
        if !(1..=MAX_CHUNK).contains(&self.chunk) {
            bail!("--chunk must be 1 to {MAX_CHUNK}");
        }
        if self.interval.is_zero() || self.batch == 0 || self.stall.is_zero() {
            bail!("--interval-ms, --batch and --stall-ms must be positive");
        }
        if self.udp_flows > 0 && self.udp_port.is_none() {
            bail!("--udp-flows needs --udp-port");
        }
        if let Some(source) = self.source
            && source.is_ipv4() != self.addr.is_ipv4()
        {
            bail!(
                "the source {source} and the address {} differ in family",
                self.addr
            );
        }
        Ok(())
    }
}

/// What a run shows while it goes on: echoed bytes of each connection, answered datagrams of
/// each flow, and whether every connection was tried.
pub struct Live {
    echoed: Vec<AtomicU64>,
    answered: Vec<AtomicU64>,
    streaming: AtomicBool,
}

impl Live {
    pub fn new(config: &ClientConfig) -> Self {
        Self {
            echoed: (0..config.conns).map(|_| AtomicU64::new(0)).collect(),
            answered: (0..config.udp_flows).map(|_| AtomicU64::new(0)).collect(),
            streaming: AtomicBool::new(false),
        }
    }

    /// Whether every connection was tried and the run is streaming.
    pub fn streaming(&self) -> bool {
        self.streaming.load(Ordering::Relaxed)
    }

    pub fn progress(&self) -> Progress {
        let read = |v: &[AtomicU64]| v.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        Progress {
            echoed: read(&self.echoed),
            answered: read(&self.answered),
        }
    }
}

/// A snapshot of a run's progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes echoed on each connection so far.
    pub echoed: Vec<u64>,
    /// Datagrams answered on each flow so far.
    pub answered: Vec<u64>,
}

impl Progress {
    /// The connections and flows that have not moved on since `earlier`, as "conn N" and
    /// "flow N".
    pub fn stuck_since(&self, earlier: &Progress) -> Vec<String> {
        let conns = (self.echoed.iter().zip(&earlier.echoed).enumerate())
            .filter(|(_, (now, then))| now <= then)
            .map(|(i, _)| format!("conn {i}"));
        let flows = (self.answered.iter().zip(&earlier.answered).enumerate())
            .filter(|(_, (now, then))| now <= then)
            .map(|(i, _)| format!("flow {i}"));
        conns.chain(flows).collect()
    }
}

/// What every client thread shares.
struct Shared {
    config: ClientConfig,
    start: Instant,
    /// When the run was told to stop.
    stop_at: OnceLock<Instant>,
    live: Arc<Live>,
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
            match connect_from(c.source, addr, c.connect_timeout) {
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
                    if self.shared.past(self.shared.config.drain()) {
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
                    if let Some(live) = self.shared.live.echoed.get(self.id as usize) {
                        live.store(self.report.echoed, Ordering::Relaxed);
                    }
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
                    if self.shared.past(self.shared.config.drain()) {
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
                    if self.shared.past(self.shared.config.drain()) {
                        return self.failed(End::Unfinished, "the server did not close in time");
                    }
                }
                Err(e) => return self.io_failed("closing", &e),
            }
        }
    }
}

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
    let local = SocketAddr::new(any_source(c.source, c.addr), 0);
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
    let udp_drain = c.drain().min(Duration::from_secs(1));
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
        if let Some(live) = shared.live.answered.get(flow as usize) {
            live.store(report.answered, Ordering::Relaxed);
        }
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

/// The address to bind a client socket to: `source`, or any of `addr`'s family.
fn any_source(source: Option<IpAddr>, addr: IpAddr) -> IpAddr {
    source.unwrap_or(match addr {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    })
}

/// A TCP connection to `addr` from `source` (or the route's address) within `timeout`.
fn connect_from(
    source: Option<IpAddr>,
    addr: SocketAddr,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrStorage, bind, connect, setsockopt, socket,
        sockopt::SendTimeout,
    };
    let Some(source) = source else {
        return TcpStream::connect_timeout(&addr, timeout);
    };
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    // Linux bounds a blocking connect by the send timeout.
    let micros = timeout.as_micros().clamp(1, i64::MAX as u128) as i64;
    setsockopt(
        &fd,
        SendTimeout,
        &nix::sys::time::TimeVal::new(micros / 1_000_000, micros % 1_000_000),
    )?;
    bind(
        fd.as_raw_fd(),
        &SockaddrStorage::from(SocketAddr::new(source, 0)),
    )?;
    connect(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    let stream = TcpStream::from(fd);
    stream.set_write_timeout(None)?;
    Ok(stream)
}

/// The name of the server a new TCP connection from `source` to `addr` reaches (the name line
/// of a [`StreamServer`](super::StreamServer)), from the calling thread's namespace.
pub fn tcp_server_of(
    source: Option<IpAddr>,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<String> {
    let stream =
        connect_from(source, addr, timeout).with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(TICK))?;
    let name = read_name(&stream, timeout);
    let _ = stream.shutdown(Shutdown::Both);
    name
}

/// The name of the server that answers a UDP datagram from `source` (port `from_port`, 0 for
/// any) to `addr`, from the calling thread's namespace.
pub fn udp_server_of(
    source: Option<IpAddr>,
    from_port: u16,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<String> {
    let local = SocketAddr::new(any_source(source, addr.ip()), from_port);
    let socket = UdpSocket::bind(local).with_context(|| format!("cannot bind {local}"))?;
    socket.connect(addr)?;
    socket.set_read_timeout(Some(timeout))?;
    socket.send(b"\0\0\0\0which server?")?;
    let mut buf = [0u8; 1024];
    let n = socket
        .recv(&mut buf)
        .with_context(|| format!("no answer from {addr} within {timeout:?}"))?;
    let split = buf[..n]
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| anyhow!("an answer without a name line"))?;
    String::from_utf8(buf[..split].to_vec()).context("not UTF-8")
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

/// How a run went.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub conns: u32,
    /// Connections that read their server's name.
    pub opened: usize,
    /// Connections that streamed to the end and closed cleanly, never stalled.
    pub ok: usize,
    pub reset: usize,
    pub eof: usize,
    pub mismatch: usize,
    /// Connections that stalled once or more, and those that never reported.
    pub stalled: usize,
    pub open_failed: usize,
    pub unfinished: usize,
    pub bytes_sent: u64,
    pub bytes_echoed: u64,
    /// Connections by the server they were on.
    pub servers: BTreeMap<String, u32>,
    pub longest_gap: Duration,
    pub udp_flows: u32,
    pub udp_ok: usize,
    pub udp_sent: u64,
    pub udp_answered: u64,
    pub udp_lost: u64,
    /// Flows answered by more than one server.
    pub udp_moved: usize,
    pub udp_mismatch: u64,
    /// Flows by the (last) server that answered them.
    pub udp_servers: BTreeMap<String, u32>,
    pub udp_longest_gap: Duration,
    /// How long the run streamed.
    pub seconds: f64,
}

impl Report {
    /// Every connection and every flow was ok.
    pub fn all_ok(&self) -> bool {
        self.ok == self.conns as usize && self.udp_ok == self.udp_flows as usize
    }

    /// The report as one JSON line.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"conns\":{},\"opened\":{},\"ok\":{},\"reset\":{},\"eof\":{},\
             \"mismatch\":{},\"stalled\":{},\"open_failed\":{},\"unfinished\":{},\
             \"bytes_sent\":{},\"bytes_echoed\":{},\"servers\":{},\"moved\":0,\
             \"longest_gap_ms\":{},\"udp_flows\":{},\"udp_ok\":{},\"udp_sent\":{},\
             \"udp_answered\":{},\"udp_lost\":{},\"udp_moved\":{},\
             \"udp_mismatch\":{},\"udp_servers\":{},\"udp_longest_gap_ms\":{},\"seconds\":{:.3}}}",
            self.conns,
            self.opened,
            self.ok,
            self.reset,
            self.eof,
            self.mismatch,
            self.stalled,
            self.open_failed,
            self.unfinished,
            self.bytes_sent,
            self.bytes_echoed,
            json_map(&self.servers),
            self.longest_gap.as_millis(),
            self.udp_flows,
            self.udp_ok,
            self.udp_sent,
            self.udp_answered,
            self.udp_lost,
            self.udp_moved,
            self.udp_mismatch,
            json_map(&self.udp_servers),
            self.udp_longest_gap.as_millis(),
            self.seconds,
        )
    }
}

/// Runs a client in the calling thread's namespace until `should_stop` says so. It is asked
/// every few milliseconds, with the time streaming began once every connection was tried (None
/// before), and stopping by itself after 600 s of streaming.
pub fn run_client(
    config: &ClientConfig,
    live: &Arc<Live>,
    should_stop: &dyn Fn(Option<Instant>) -> bool,
) -> Result<Report> {
    config.check()?;
    raise_nofile();
    let shared = Arc::new(Shared {
        config: config.clone(),
        start: Instant::now(),
        stop_at: OnceLock::new(),
        live: Arc::clone(live),
    });
    let stop = |since: Option<Instant>| {
        should_stop(since) || since.is_some_and(|t| t.elapsed() >= DEFAULT_CAP)
    };
    let (done_tx, done_rx) = mpsc::channel::<ConnReport>();
    let (flow_tx, flow_rx) = mpsc::channel::<FlowReport>();
    let (opened_tx, opened_rx) = mpsc::channel::<()>();

    for flow in 0..config.udp_flows {
        let (flow_shared, tx) = (Arc::clone(&shared), flow_tx.clone());
        if let Err(e) = spawn_thread(format!("flow-{flow}"), move || {
            let _ = tx.send(run_flow(flow, &flow_shared));
        }) {
            shared.stop();
            return Err(e);
        }
    }
    drop(flow_tx);

    // Open the connections a batch at a time: each batch is given the time its connects may take.
    let per_batch = (config.connect_timeout + Duration::from_millis(200) * config.connect_retries)
        * (config.connect_retries + 1)
        + Duration::from_secs(5);
    let mut spawned = 0;
    let mut tried = 0;
    while spawned < config.conns && !stop(None) {
        let batch = config.batch.min(config.conns - spawned);
        for id in spawned..spawned + batch {
            let (conn_shared, tx, opened) =
                (Arc::clone(&shared), done_tx.clone(), opened_tx.clone());
            if let Err(e) = spawn_thread(format!("conn-{id}"), move || {
                let _ = tx.send(run_conn(id, &conn_shared, &opened));
            }) {
                // Those started so far end at once.
                shared.stop();
                return Err(e);
            }
        }
        spawned += batch;
        let deadline = Instant::now() + per_batch;
        while tried < spawned && !stop(None) {
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
    live.streaming.store(true, Ordering::Relaxed);
    while !stop(Some(streaming_since)) {
        thread::sleep(Duration::from_millis(20));
    }
    shared.stop();
    let run_seconds = streaming_since.elapsed().as_secs_f64();

    // Every thread ends within the drain time plus a tick or so; wait for them a bit longer.
    let deadline = Instant::now() + config.drain() + Duration::from_secs(3);
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
    Ok(Report {
        conns: config.conns,
        opened: conns.iter().filter(|r| r.server.is_some()).count(),
        ok: conns
            .iter()
            .filter(|r| r.end == End::Ok && !r.stalled && r.server.is_some())
            .count(),
        reset: count(End::Reset),
        eof: count(End::Eof),
        mismatch: count(End::Mismatch),
        // Connections that never reported were never opened or hang: count them as stalled.
        stalled: conns.iter().filter(|r| r.stalled).count() + missing_conns,
        open_failed: count(End::OpenFailed),
        unfinished: count(End::Unfinished),
        bytes_sent: conns.iter().map(|r| r.sent).sum(),
        bytes_echoed: conns.iter().map(|r| r.echoed).sum(),
        servers,
        longest_gap: conns
            .iter()
            .map(|r| r.longest_gap)
            .max()
            .unwrap_or_default(),
        udp_flows: config.udp_flows,
        udp_ok: flows.iter().filter(|f| flow_ok(f)).count(),
        udp_sent,
        udp_answered,
        udp_lost: udp_sent - udp_answered,
        udp_moved: flows.iter().filter(|f| f.moved).count(),
        udp_mismatch: flows.iter().map(|f| f.mismatch).sum(),
        udp_servers,
        udp_longest_gap: flows
            .iter()
            .map(|f| f.longest_gap)
            .max()
            .unwrap_or_default(),
        seconds: run_seconds,
    })
}

/// A client running on a thread of its own, in-process: a test streams through its topology
/// while it fails over, watches the progress, and stops it for the report.
pub struct StreamClient {
    live: Arc<Live>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Report>>>,
    drain: Duration,
}

impl StreamClient {
    /// Starts `config` in the calling thread's namespace.
    pub fn start(config: ClientConfig) -> Result<Self> {
        config.check()?;
        let live = Arc::new(Live::new(&config));
        let stop = Arc::new(AtomicBool::new(false));
        let drain = config.drain();
        let thread = {
            let (live, stop) = (Arc::clone(&live), Arc::clone(&stop));
            spawn_thread("stream-client".to_owned(), move || {
                run_client(&config, &live, &|_| stop.load(Ordering::Relaxed))
            })?
        };
        Ok(Self {
            live,
            stop,
            thread: Some(thread),
            drain,
        })
    }

    /// Starts `config` inside `ns`: its sockets and threads are that namespace's.
    pub fn start_in(ns: &Netns, config: ClientConfig) -> Result<Self> {
        ns.enter(|| Self::start(config))?
    }

    /// Waits (at most `timeout`) until every connection was tried and the run streams.
    pub fn wait_streaming(&self, timeout: Duration) -> Result<()> {
        poll_until(timeout, "the stream client to open its connections", || {
            Ok(self.live.streaming().then_some(()))
        })
    }

    /// What has been echoed and answered so far.
    pub fn progress(&self) -> Progress {
        self.live.progress()
    }

    /// Waits (at most `timeout`) until every connection and every flow has moved on since
    /// `earlier`; the error names those that did not.
    pub fn wait_progress(&self, earlier: &Progress, timeout: Duration) -> Result<()> {
        let mut stuck = Vec::new();
        poll_until(timeout, "every connection and flow to move on", || {
            stuck = self.progress().stuck_since(earlier);
            Ok(stuck.is_empty().then_some(()))
        })
        .with_context(|| format!("still stuck: {}", stuck.join(", ")))
    }

    /// Tells the run to stop, without waiting: [`StreamClient::stop`] or dropping it then takes
    /// at most the drain time. Lets a test stop many clients at once.
    pub fn signal_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Stops the run and returns its report.
    pub fn stop(mut self) -> Result<Report> {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self
            .thread
            .take()
            .context("the client was stopped already")?;
        let deadline = Instant::now() + self.drain + Duration::from_secs(10);
        join_by(thread, deadline).context("the stream client did not finish")?
    }
}

impl Drop for StreamClient {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            join_by(
                thread,
                Instant::now() + self.drain + Duration::from_secs(10),
            );
        }
    }
}
