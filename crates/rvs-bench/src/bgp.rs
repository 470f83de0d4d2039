//! BGP (issue 14): how fast rvsd's speaker announces its prefixes, and how soon a route is gone
//! at the peer once its service goes down, side by side with BIRD doing the same job.
//!
//! Topology: the packet line ([`Line`]): the *receiver*, a BIRD 2 in the client's namespace
//! (198.18.0.1, AS 65002, passive, importing everything, no kernel protocol), peers with the
//! *speaker* in the director's namespace (198.18.0.2, AS 65001): rvsd (`rvs_bgp`) or, as the
//! reference, another BIRD announcing the same prefixes as static routes. The one real server,
//! 198.19.16.1, lives on the sink. Every figure is read at the receiver through its control
//! socket, kept open and asked every [`POLL`]: `show protocols all speaker` (the session's state
//! and its imported routes) or `show route PREFIX`.
//!
//! - *Announce*: N /32 prefixes in 198.19.128.0/17, each standing for one of [`SERVICES`] DR
//!   virtual services (`services VIP:80`) with one real server and no checker; from the
//!   session's Established to the receiver holding all N routes, and from the speaker's start.
//! - *Withdraw*: with [`BACKGROUND`] such prefixes announced besides, the time from a change at
//!   the director to the route gone at the receiver: (a) `rvsadm -d` of a service's last real
//!   server, against BIRD's static route removed from its file and `birdc configure`; (b) the
//!   TCP_CHECK failing (the real server's listener closed, short timers), with the BGP share
//!   from rvsd's own log line of the removal; (c) SIGTERM of the speaker (rvsd's Cease, and
//!   BIRD's), to all its routes gone.

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, Result, bail, ensure};
use rvs_testbed::{
    Bird, Netns,
    bird::{BgpPeer, BirdConfig, Channel, Filter},
};

use crate::{
    Plan,
    line::{CLIENT_IP, DIRECTOR_IP, Line},
    progress,
    rvs::{Bins, Rvsd},
};

const SPEAKER_AS: u32 = 65001;
const RECEIVER_AS: u32 = 65002;
/// The receiver's name for the session.
const SESSION: &str = "speaker";
/// Between two questions to the receiver.
const POLL: Duration = Duration::from_millis(2);
/// Bound on anything waited for.
const BOUND: Duration = Duration::from_secs(60);
/// Prefixes announced besides the one a withdrawal trial takes away.
pub const BACKGROUND: usize = 1000;
const PORT: u16 = 80;
/// The prefix of the rvsadm trials, and of the checker's.
const RVSADM_VIP: Ipv4Addr = Ipv4Addr::new(198, 19, 200, 1);
const CHECKED_VIP: Ipv4Addr = Ipv4Addr::new(198, 19, 200, 2);
/// The checker's timers (keepalived.conf's words).
pub const CHECK_TIMERS: &str =
    "delay_loop 0.2, connect_timeout 0.2, retry 1, delay_before_retry 0.1";

fn real_server() -> Ipv4Addr {
    Line::real_server(0)
}

/// The i-th announced prefix's address: 198.19.128.0 + i.
fn vip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 128, 0)) + i as u32)
}

/// Who speaks to the receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speaker {
    Rvsd,
    Bird,
}

impl Speaker {
    pub fn name(self) -> &'static str {
        match self {
            Speaker::Rvsd => "rvsd",
            Speaker::Bird => "BIRD",
        }
    }
}

/// N prefixes announced by one speaker, over the repetitions.
#[derive(Clone, Debug)]
pub struct AnnounceRow {
    pub speaker: Speaker,
    pub prefixes: usize,
    /// From the session's Established to all N routes at the receiver.
    pub from_established: Vec<Duration>,
    /// From the speaker's start (its process spawned) to all N routes.
    pub from_start: Vec<Duration>,
    pub error: Option<String>,
}

/// One way of taking a route away, by one speaker.
#[derive(Clone, Debug)]
pub struct WithdrawRow {
    pub speaker: Speaker,
    pub what: &'static str,
    pub times: Vec<Duration>,
    /// For the checker: from rvsd's log line of the removal to the route gone.
    pub bgp_share: Vec<Duration>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct BgpReport {
    pub reps: usize,
    pub trials: usize,
    pub background: usize,
    pub announce: Vec<AnnounceRow>,
    pub withdraw: Vec<WithdrawRow>,
}

impl BgpReport {
    /// Every figure that failed, for the report's failures.
    pub fn failures(&self) -> Vec<String> {
        let a = self.announce.iter().filter_map(|r| {
            r.error
                .as_ref()
                .map(|e| format!("bgp, {} announcing {}: {e}", r.speaker.name(), r.prefixes))
        });
        let w = self.withdraw.iter().filter_map(|r| {
            r.error
                .as_ref()
                .map(|e| format!("bgp, {} {}: {e}", r.speaker.name(), r.what))
        });
        a.chain(w).collect()
    }
}

/// (prefix counts, repetitions of each, withdrawal trials, background prefixes)
fn plan_of(plan: &Plan) -> (Vec<usize>, usize, usize, usize) {
    match plan.mode {
        "smoke" => (vec![100], 1, 1, 10),
        "quick" => (vec![1000, 10_000], 3, 5, BACKGROUND),
        _ => (vec![1000, 10_000], 3, 10, BACKGROUND),
    }
}

pub fn run(plan: &Plan, bins: &Bins, dir: &Path) -> Result<BgpReport> {
    let (counts, reps, trials, background) = plan_of(plan);
    progress(&format!(
        "bgp: routes announced per second ({counts:?} prefixes, {reps} rep(s)), withdrawal \
         times ({trials} trial(s)), rvsd against BIRD"
    ));
    let line = Line::build(1)?;
    let sink = &line.sink;
    sink.ip(&["addr", "add", &format!("{}/32", real_server()), "dev", "lo"])?;
    let mut rep = BgpReport {
        reps,
        trials,
        background,
        ..Default::default()
    };
    for &n in &counts {
        for speaker in [Speaker::Rvsd, Speaker::Bird] {
            let mut row = AnnounceRow {
                speaker,
                prefixes: n,
                from_established: Vec::new(),
                from_start: Vec::new(),
                error: None,
            };
            for _ in 0..reps {
                match announce(&line, bins, dir, speaker, n) {
                    Ok((est, start)) => {
                        row.from_established.push(est);
                        row.from_start.push(start);
                    }
                    Err(e) => {
                        progress(&format!(
                            "  FAILED {} announcing {n}: {e:#}",
                            speaker.name()
                        ));
                        row.error = Some(format!("{e:#}"));
                        break;
                    }
                }
            }
            progress(&format!(
                "  {:<4} {n:>6} prefixes: from Established {} ({}), from start {}",
                speaker.name(),
                summary(&row.from_established),
                rate(n, &row.from_established),
                summary(&row.from_start),
            ));
            rep.announce.push(row);
        }
    }
    let mut rows = Vec::new();
    match withdraw_rvsd(&line, bins, dir, trials, background, &mut rows) {
        Ok(()) => {}
        Err(e) => {
            progress(&format!("  FAILED rvsd withdrawals: {e:#}"));
            mark_missing(&mut rows, Speaker::Rvsd, &RVSD_WITHDRAWALS, &e);
        }
    }
    match withdraw_bird(&line, dir, trials, background, &mut rows) {
        Ok(()) => {}
        Err(e) => {
            progress(&format!("  FAILED BIRD withdrawals: {e:#}"));
            mark_missing(&mut rows, Speaker::Bird, &BIRD_WITHDRAWALS, &e);
        }
    }
    for r in &rows {
        progress(&format!(
            "  {:<4} {:<40} {}{}",
            r.speaker.name(),
            r.what,
            summary(&r.times),
            if r.bgp_share.is_empty() {
                String::new()
            } else {
                format!(", BGP share {}", summary(&r.bgp_share))
            }
        ));
    }
    rep.withdraw = rows;
    Ok(rep)
}

pub const RVSADM_LAST: &str = "rvsadm -d of the last real server";
pub const CHECKER: &str = "TCP_CHECK fails (listener closed)";
pub const SIGTERM: &str = "SIGTERM of the speaker (Cease)";
pub const BIRD_STATIC: &str = "static route removed, birdc configure";
const RVSD_WITHDRAWALS: [&str; 3] = [RVSADM_LAST, CHECKER, SIGTERM];
const BIRD_WITHDRAWALS: [&str; 2] = [BIRD_STATIC, SIGTERM];

/// Rows of `speaker` that a failure stopped: the failing one says why, the ones never reached
/// too.
fn mark_missing(
    rows: &mut Vec<WithdrawRow>,
    speaker: Speaker,
    whats: &[&'static str],
    e: &anyhow::Error,
) {
    for &what in whats {
        match rows
            .iter_mut()
            .find(|r| r.speaker == speaker && r.what == what)
        {
            Some(r) if r.error.is_none() && r.times.is_empty() => r.error = Some(format!("{e:#}")),
            Some(_) => {}
            None => rows.push(WithdrawRow {
                speaker,
                what,
                times: Vec::new(),
                bgp_share: Vec::new(),
                error: Some(format!("{e:#}")),
            }),
        }
    }
}

/// `median (worst) ms`, to a tenth.
pub fn summary(v: &[Duration]) -> String {
    match median_and_worst(v) {
        Some((m, w)) => format!("{:.1} ({:.1}) ms", ms(m), ms(w)),
        None => "—".into(),
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn median_and_worst(v: &[Duration]) -> Option<(Duration, Duration)> {
    let mut v = v.to_vec();
    v.sort();
    Some((*v.get(v.len() / 2)?, *v.last()?))
}

/// Routes per second at the median time (a bound when it is below the polling interval).
pub fn rate(n: usize, v: &[Duration]) -> String {
    match median_and_worst(v) {
        Some((m, _)) if m < POLL => {
            format!("over {:.0} routes/s", n as f64 / POLL.as_secs_f64())
        }
        Some((m, _)) => format!("{:.0} routes/s", n as f64 / m.as_secs_f64()),
        None => "—".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The receiver and its control socket.

/// BIRD's control socket, held open: one command at a time.
struct Ctl {
    rd: BufReader<UnixStream>,
    wr: UnixStream,
}

impl Ctl {
    fn open(socket: &Path) -> Result<Ctl> {
        let s = UnixStream::connect(socket)
            .with_context(|| format!("connecting to {}", socket.display()))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let wr = s.try_clone()?;
        let mut c = Ctl {
            rd: BufReader::new(s),
            wr,
        };
        let hello = c.reply()?;
        ensure!(hello.contains("BIRD"), "not BIRD's greeting: {hello:?}");
        Ok(c)
    }

    /// Lines up to the one whose four-digit code is followed by a space (the last).
    fn reply(&mut self) -> Result<String> {
        let mut out = String::new();
        for _ in 0..1_000_000 {
            let mut l = String::new();
            ensure!(
                self.rd.read_line(&mut l)? > 0,
                "BIRD closed its control socket"
            );
            let b = l.as_bytes();
            let last = b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b' ';
            out.push_str(&l);
            if last {
                return Ok(out);
            }
        }
        bail!("no end to BIRD's reply")
    }

    fn cmd(&mut self, c: &str) -> Result<String> {
        writeln!(self.wr, "{c}")?;
        self.reply()
    }

    /// The session's (Established, routes imported over its channels).
    fn session(&mut self) -> Result<(bool, u64)> {
        let r = self.cmd(&format!("show protocols all {SESSION}"))?;
        let established = r
            .lines()
            .any(|l| l.starts_with("1002-") && l.contains(" Established"));
        let imported = r
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Routes:"))
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        Ok((established, imported))
    }

    /// When the session last changed state (its Established, once up), by BIRD's clock.
    fn since(&mut self) -> Result<SystemTime> {
        let r = self.cmd(&format!("show protocols {SESSION}"))?;
        let line = r
            .lines()
            .find(|l| l.starts_with("1002-"))
            .with_context(|| format!("no protocol {SESSION}: {r:?}"))?;
        let w: Vec<&str> = line.split_whitespace().collect();
        w.get(4..6)
            .and_then(|t| bird_time(t[0], t[1]))
            .with_context(|| format!("no time in {line:?}"))
    }

    /// BIRD's clock now.
    fn server_time(&mut self) -> Result<SystemTime> {
        let r = self.cmd("show status")?;
        r.lines()
            .find_map(|l| l.trim().strip_prefix("Current server time is "))
            .and_then(|t| t.split_once(' '))
            .and_then(|(d, t)| bird_time(d, t.trim()))
            .with_context(|| format!("no server time in {r:?}"))
    }

    /// Whether the receiver has a route for exactly `prefix`.
    fn has_route(&mut self, prefix: &str) -> Result<bool> {
        let r = self.cmd(&format!("show route {prefix}"))?;
        Ok(r.contains(prefix))
    }
}

/// A fresh receiver BIRD, passive, for `speaker` at 198.18.0.2.
fn receiver(line: &Line) -> Result<Bird> {
    let peer = BgpPeer::new(SESSION, RECEIVER_AS, IpAddr::V4(DIRECTOR_IP), SPEAKER_AS)
        .local(IpAddr::V4(CLIENT_IP))
        .passive(true)
        .ipv4(Channel::new(Filter::All, Filter::None))
        .ipv6(Channel::new(Filter::All, Filter::None));
    // Milliseconds in the protocols' times: the session's Established is read from them.
    let cfg = BirdConfig::new(CLIENT_IP)
        .raw("timeformat protocol iso long ms;\ntimeformat base iso long ms;")
        .bgp(&peer);
    Bird::start(&line.client, "receiver", cfg.text())
}

/// Polls the receiver in a thread every [`POLL`] until `done` holds; returns when it first did.
/// Started before the change it waits for, so that no observation is missed.
fn watch(
    socket: &Path,
    what: String,
    mut done: impl FnMut(&mut Ctl) -> Result<bool> + Send + 'static,
) -> Result<JoinHandle<Result<Instant>>> {
    let mut ctl = Ctl::open(socket)?;
    Ok(std::thread::spawn(move || {
        let deadline = Instant::now() + BOUND;
        while Instant::now() < deadline {
            if done(&mut ctl)? {
                return Ok(Instant::now());
            }
            std::thread::sleep(POLL);
        }
        bail!("{what}: not within {} s", BOUND.as_secs())
    }))
}

fn join<T>(h: JoinHandle<Result<T>>) -> Result<T> {
    h.join()
        .map_err(|_| anyhow::anyhow!("a watcher thread panicked"))?
}

/// Waits (bounded) for `done` at the receiver, on this thread.
fn wait(
    socket: &Path,
    what: &str,
    done: impl FnMut(&mut Ctl) -> Result<bool> + Send + 'static,
) -> Result<()> {
    join(watch(socket, what.into(), done)?).map(drop)
}

// ---------------------------------------------------------------------------------------------
// The speakers' configurations.

/// The `rvs_bgp` block: `prefixes` standing for the services inside them, and `named` prefixes
/// each standing for one of the [`SERVICES`] (round robin).
fn rvs_bgp(prefixes: &[String], named: &[String]) -> String {
    let mut s = format!(
        "rvs_bgp {{\n    router_id {DIRECTOR_IP}\n    local_as {SPEAKER_AS}\n    \
         connect_retry 1\n    neighbor {CLIENT_IP} {{\n        remote_as {RECEIVER_AS}\n        \
         local_address {DIRECTOR_IP}\n    }}\n"
    );
    for p in prefixes {
        let _ = writeln!(s, "    prefix {p}");
    }
    for (i, p) in named.iter().enumerate() {
        let _ = writeln!(
            s,
            "    prefix {p} {{\n        services {}:{PORT}\n    }}",
            service_vip(i % SERVICES)
        );
    }
    s + "}\n"
}

/// The virtual services the announced prefixes stand for: rvsd saves its whole model after each
/// change, so loading one service per prefix would take minutes for 10000 (the time grows with
/// the square of the services), and the speaker is what is measured here.
pub const SERVICES: usize = 10;

fn service_vip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 201, 1)) + i as u32)
}

/// The [`SERVICES`], with no checker.
fn services() -> String {
    (0..SERVICES)
        .map(|i| virtual_server(service_vip(i), ""))
        .collect()
}

/// A DR virtual service at `vip` with the one real server, and `check` (a checker block, or
/// nothing) on it.
fn virtual_server(vip: Ipv4Addr, check: &str) -> String {
    format!(
        "virtual_server {vip} {PORT} {{\n    delay_loop 0.2\n    lb_algo rr\n    lb_kind DR\n    \
         protocol TCP\n    real_server {} {PORT} {{\n        weight 1\n{check}    }}\n}}\n",
        real_server()
    )
}

const TCP_CHECK: &str = "        TCP_CHECK {\n            connect_timeout 0.2\n            \
                         retry 1\n            delay_before_retry 0.1\n        }\n";

fn prefixes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{}/32", vip(i))).collect()
}

fn bird_speaker(prefixes: &[String]) -> BirdConfig {
    let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    BirdConfig::new(DIRECTOR_IP).originate(&refs).bgp(
        &BgpPeer::new("receiver", SPEAKER_AS, IpAddr::V4(CLIENT_IP), RECEIVER_AS)
            .local(IpAddr::V4(DIRECTOR_IP))
            .ipv4(Channel::announce_static()),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let p = dir.join(name);
    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    Ok(p)
}

fn start_rvsd(line: &Line, bins: &Bins, conf: &Path) -> Result<Rvsd> {
    Rvsd::start_with(
        &line.director,
        bins,
        &["eth0"],
        65_536,
        &["-f", conf.to_str().context("a non-UTF-8 path")?],
    )
}

// ---------------------------------------------------------------------------------------------
// Announcing.

/// One repetition: (Established → all N routes, start → all N routes).
fn announce(
    line: &Line,
    bins: &Bins,
    dir: &Path,
    speaker: Speaker,
    n: usize,
) -> Result<(Duration, Duration)> {
    let recv = receiver(line)?;
    let established: Arc<std::sync::Mutex<Option<Instant>>> = Default::default();
    let est = established.clone();
    let all = watch(
        recv.socket(),
        format!("{n} routes at the receiver"),
        move |c| {
            let (up, imported) = c.session()?;
            let mut e = est.lock().expect("lock");
            if up && e.is_none() {
                *e = Some(Instant::now());
            }
            Ok(up && imported >= n as u64)
        },
    )?;
    let ps = prefixes(n);
    let start;
    let _speaker: Box<dyn std::any::Any> = match speaker {
        Speaker::Rvsd => {
            let text = rvs_bgp(&[], &ps) + &services();
            let conf = write(dir, "bgp-announce.conf", &text)?;
            start = Instant::now();
            Box::new(start_rvsd(line, bins, &conf)?)
        }
        Speaker::Bird => {
            let cfg = bird_speaker(&ps);
            start = Instant::now();
            Box::new(Bird::start(&line.director, "speaker", cfg.text())?)
        }
    };
    let done = join(all)?;
    if std::env::var_os("RVS_BENCH_DEBUG").is_some()
        && let Some(r) = _speaker.downcast_ref::<Rvsd>()
    {
        eprintln!("{}", r.log());
    }
    let polled = established
        .lock()
        .expect("lock")
        .context("all routes but never Established")?;
    // The receiver's own time of the Established (its routes may come in the same read, before
    // it answers a poll), on this clock.
    let mut ctl = Ctl::open(recv.socket())?;
    let since = ctl.since()?;
    let (server, now) = (ctl.server_time()?, Instant::now());
    let est = server
        .duration_since(since)
        .ok()
        .and_then(|ago| now.checked_sub(ago))
        .unwrap_or(polled);
    Ok((done.saturating_duration_since(est), done - start))
}

// ---------------------------------------------------------------------------------------------
// Withdrawing.

/// A TCP listener on the real server (in the sink's namespace) that accepts and drops every
/// connection until stopped; `stop` returns when its socket is closed.
struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Instant>>,
}

impl Listener {
    fn start(ns: &Netns) -> Result<Listener> {
        let addr = SocketAddr::new(IpAddr::V4(real_server()), PORT);
        let l = ns.enter(|| TcpListener::bind(addr))??;
        l.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => drop(c),
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
            drop(l);
            Instant::now()
        });
        Ok(Listener {
            stop,
            thread: Some(thread),
        })
    }

    /// Closes it; the moment its socket was closed.
    fn stop(mut self) -> Result<Instant> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .context("stopped twice")?
            .join()
            .map_err(|_| anyhow::anyhow!("the listener panicked"))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn row(speaker: Speaker, what: &'static str) -> WithdrawRow {
    WithdrawRow {
        speaker,
        what,
        times: Vec::new(),
        bgp_share: Vec::new(),
        error: None,
    }
}

fn has(prefix: String) -> impl FnMut(&mut Ctl) -> Result<bool> + Send + 'static {
    move |c| c.has_route(&prefix)
}

fn gone(prefix: String) -> impl FnMut(&mut Ctl) -> Result<bool> + Send + 'static {
    move |c| Ok(!c.has_route(&prefix)?)
}

fn all_gone() -> impl FnMut(&mut Ctl) -> Result<bool> + Send + 'static {
    |c| Ok(c.session()?.1 == 0)
}

fn imported(n: usize) -> impl FnMut(&mut Ctl) -> Result<bool> + Send + 'static {
    move |c| {
        let (up, imported) = c.session()?;
        Ok(up && imported >= n as u64)
    }
}

/// Runs `f` for one row, recording its failure in the row.
fn trials_of(
    rows: &mut Vec<WithdrawRow>,
    mut r: WithdrawRow,
    f: impl FnOnce(&mut WithdrawRow) -> Result<()>,
) {
    if let Err(e) = f(&mut r) {
        progress(&format!("  FAILED {} {}: {e:#}", r.speaker.name(), r.what));
        r.error = Some(format!("{e:#}"));
    }
    rows.push(r);
}

fn withdraw_rvsd(
    line: &Line,
    bins: &Bins,
    dir: &Path,
    trials: usize,
    background: usize,
    rows: &mut Vec<WithdrawRow>,
) -> Result<()> {
    let recv = receiver(line)?;
    let sock = recv.socket().to_path_buf();
    let a = format!("{RVSADM_VIP}/32");
    let b = format!("{CHECKED_VIP}/32");
    let mut text = rvs_bgp(&[a.clone(), b.clone()], &prefixes(background)) + &services();
    text.push_str(&virtual_server(CHECKED_VIP, TCP_CHECK));
    let conf = write(dir, "bgp-withdraw.conf", &text)?;
    let mut listener = Some(Listener::start(&line.sink)?);
    let rvsd = start_rvsd(line, bins, &conf)?;
    let svc = format!("{RVSADM_VIP}:{PORT}");
    let rs = format!("{}:{PORT}", real_server());
    rvsd.rvsadm(&["-A", "-t", &svc, "-s", "rr"])?;
    rvsd.rvsadm(&["-a", "-t", &svc, "-r", &rs, "-g", "-w", "1"])?;
    let total = background + 2;
    wait(&sock, "every route of rvsd", imported(total)).with_context(|| rvsd.log())?;

    // (a) rvsadm -d of the last real server.
    trials_of(rows, row(Speaker::Rvsd, RVSADM_LAST), |r| {
        for _ in 0..trials {
            let w = watch(&sock, format!("{a} withdrawn"), gone(a.clone()))?;
            let t0 = Instant::now();
            rvsd.rvsadm(&["-d", "-t", &svc, "-r", &rs])?;
            r.times.push(join(w)? - t0);
            rvsd.rvsadm(&["-a", "-t", &svc, "-r", &rs, "-g", "-w", "1"])?;
            wait(&sock, &format!("{a} announced again"), has(a.clone()))?;
            settle(r.times.len());
        }
        Ok(())
    });

    // (b) the checker: the real server's listener closed.
    trials_of(rows, row(Speaker::Rvsd, CHECKER), |r| {
        for _ in 0..trials {
            wait(&sock, &format!("{b} announced"), has(b.clone()))?;
            settle(r.times.len());
            let w = watch(&sock, format!("{b} withdrawn"), gone(b.clone()))?;
            let wall0 = SystemTime::now();
            let closed = listener.take().context("no listener")?.stop()?;
            let done = join(w)?;
            let wall_done = SystemTime::now() - Instant::now().saturating_duration_since(done);
            r.times.push(done.saturating_duration_since(closed));
            // rvsd's own line of the removal, after the listener closed.
            match removal_logged(&rvsd.log(), wall0) {
                Some(t) => r
                    .bgp_share
                    .push(wall_done.duration_since(t).unwrap_or_default()),
                None if std::env::var_os("RVS_BENCH_DEBUG").is_some() => {
                    eprintln!("no removal logged after {wall0:?}:\n{}", rvsd.log())
                }
                None => {}
            }
            listener = Some(Listener::start(&line.sink)?);
        }
        Ok(())
    });
    wait(&sock, &format!("{b} announced"), has(b.clone()))?;
    drop(listener);

    // (c) SIGTERM: rvsd ends the session with a Cease; a new rvsd for each trial.
    let mut rvsd = Some(rvsd);
    trials_of(rows, row(Speaker::Rvsd, SIGTERM), |r| {
        for i in 0..trials {
            let d = match rvsd.take() {
                Some(d) => d,
                None => {
                    let d = start_rvsd(line, bins, &conf)?;
                    wait(&sock, "rvsd's routes again", imported(background + 1))
                        .with_context(|| d.log())?;
                    d
                }
            };
            if i == 0 {
                // The rvsadm service goes with it: only the configured ones come back.
                d.rvsadm(&["-D", "-t", &svc])?;
                wait(&sock, "the rvsadm route gone", gone(a.clone()))?;
            }
            settle(i);
            let pid = d.pid().context("rvsd's pid")?;
            let w = watch(&sock, "every route of rvsd withdrawn".into(), all_gone())?;
            let t0 = Instant::now();
            // SAFETY: kill has no memory preconditions; rvsd is our child, not yet reaped.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
            r.times.push(join(w)? - t0);
            drop(d);
        }
        Ok(())
    });
    Ok(())
}

/// A pause between trials that varies with the trial, so that the trials do not all fall on the
/// same phase of the speaker's timers.
fn settle(i: usize) {
    std::thread::sleep(Duration::from_millis(150 + (i as u64 * 37) % 100));
}

/// The time of rvsd's first log line of the checked real server's removal after `after`.
fn removal_logged(log: &str, after: SystemTime) -> Option<SystemTime> {
    let needle = format!("Removing service [{}]:{PORT} from VS", real_server());
    log.lines()
        .map(strip_ansi)
        .filter(|l| l.contains(&needle))
        .filter_map(|l| parse_rfc3339(l.split_whitespace().next()?))
        .find(|t| *t >= after)
}

/// BIRD's `2026-12-02 20:43:20.783` (`iso long ms`), read as UTC: only differences between two
/// of its times are used.
fn bird_time(date: &str, time: &str) -> Option<SystemTime> {
    parse_rfc3339(&format!("{date}T{time}Z"))
}

/// A log line without its colours (`ESC [ ... m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `2026-12-02T20:34:02.192345Z` (tracing's timestamps) as a time.
fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<u64>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next()??);
    let digits = frac.len().min(9);
    let nanos = frac.get(..digits)?.parse::<u64>().ok()? * 10u64.pow(9 - digits as u32);
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos))
}

fn withdraw_bird(
    line: &Line,
    _dir: &Path,
    trials: usize,
    background: usize,
    rows: &mut Vec<WithdrawRow>,
) -> Result<()> {
    let recv = receiver(line)?;
    let sock = recv.socket().to_path_buf();
    let mut ps = prefixes(background);
    let a = format!("{RVSADM_VIP}/32");
    let without = bird_speaker(&ps).text().to_owned();
    ps.push(a.clone());
    let with = bird_speaker(&ps).text().to_owned();
    let mut speaker = Some(Bird::start(&line.director, "speaker", &with)?);
    wait(&sock, "every route of BIRD", imported(background + 1))?;

    // (a) the static route removed from the file, birdc configure.
    trials_of(rows, row(Speaker::Bird, BIRD_STATIC), |r| {
        let s = speaker.as_ref().context("no speaker")?;
        for _ in 0..trials {
            let w = watch(&sock, format!("{a} withdrawn"), gone(a.clone()))?;
            let t0 = Instant::now();
            s.reconfigure(&without)?;
            r.times.push(join(w)? - t0);
            s.reconfigure(&with)?;
            wait(&sock, &format!("{a} announced again"), has(a.clone()))?;
            settle(r.times.len());
        }
        Ok(())
    });

    // (c) SIGTERM: BIRD's Cease; a new BIRD for each trial.
    trials_of(rows, row(Speaker::Bird, SIGTERM), |r| {
        for i in 0..trials {
            let s = match speaker.take() {
                Some(s) => s,
                None => {
                    let s = Bird::start(&line.director, "speaker", &with)?;
                    wait(&sock, "BIRD's routes again", imported(background + 1))?;
                    s
                }
            };
            settle(i);
            let w = watch(&sock, "every route of BIRD withdrawn".into(), all_gone())?;
            let t0 = Instant::now();
            // SAFETY: kill has no memory preconditions; BIRD is our child, not yet reaped.
            unsafe {
                libc::kill(s.pid() as i32, libc::SIGTERM);
            }
            r.times.push(join(w)? - t0);
            drop(s);
        }
        Ok(())
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracing_timestamps_parse() {
        let t = parse_rfc3339("2026-12-02T20:34:02.192345Z").unwrap();
        let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        // date -u -d '2026-12-02T20:34:02Z' +%s
        assert_eq!(d.as_secs(), 1_796_243_642);
        assert_eq!(d.subsec_micros(), 192_345);
    }

    #[test]
    fn colours_are_taken_off() {
        let l = "\x1b[2m2026-12-02T20:38:25.453781Z\x1b[0m \x1b[32m INFO\x1b[0m Removing";
        assert_eq!(strip_ansi(l), "2026-12-02T20:38:25.453781Z  INFO Removing");
    }

    #[test]
    fn prefixes_stay_in_the_test_range() {
        assert_eq!(vip(0), Ipv4Addr::new(198, 19, 128, 0));
        assert_eq!(vip(10_000), Ipv4Addr::new(198, 19, 167, 16));
    }
}
