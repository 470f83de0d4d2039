//! A lab for end-to-end tests: a cluster in namespaces (direct routing by default, or NAT) with
//! rvsd attached to the director, and rvsadm pointed at it. Everything it makes is removed when
//! it is dropped, also when the test panics.

#![allow(dead_code)]

pub mod frames;
pub mod ha;
pub mod keepalived;
pub mod web;

use std::{
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use rvs_testbed::{DrCluster, Host, NatCluster, NsProcess, TcpServer, UdpServer, poll_until};

pub const RVSD: &str = env!("CARGO_BIN_EXE_rvsd");
pub const RVSADM: &str = env!("CARGO_BIN_EXE_rvsadm");
pub const RVS_RS: &str = env!("CARGO_BIN_EXE_rvs-rs");

static NEXT: AtomicU32 = AtomicU32::new(0);

/// What a lab needs of a topology.
pub trait Topology {
    fn director(&self) -> &Host;
    fn client(&self) -> &Host;
    fn real_servers(&self) -> &[Host];
    fn vip(&self) -> Ipv4Addr;
    /// The director's interfaces rvsd attaches to.
    fn interfaces(&self) -> Vec<String>;
    fn serve_tcp(&self, port: u16) -> anyhow::Result<Vec<TcpServer>>;
    fn serve_udp(&self, port: u16) -> anyhow::Result<Vec<UdpServer>>;
}

impl Topology for DrCluster {
    fn director(&self) -> &Host {
        DrCluster::director(self)
    }
    fn client(&self) -> &Host {
        DrCluster::client(self)
    }
    fn real_servers(&self) -> &[Host] {
        DrCluster::real_servers(self)
    }
    fn vip(&self) -> Ipv4Addr {
        DrCluster::vip(self)
    }
    fn interfaces(&self) -> Vec<String> {
        vec!["eth0".into()]
    }
    fn serve_tcp(&self, port: u16) -> anyhow::Result<Vec<TcpServer>> {
        DrCluster::serve_tcp(self, port)
    }
    fn serve_udp(&self, port: u16) -> anyhow::Result<Vec<UdpServer>> {
        DrCluster::serve_udp(self, port)
    }
}

impl Topology for NatCluster {
    fn director(&self) -> &Host {
        NatCluster::director(self)
    }
    fn client(&self) -> &Host {
        NatCluster::client(self)
    }
    fn real_servers(&self) -> &[Host] {
        NatCluster::real_servers(self)
    }
    fn vip(&self) -> Ipv4Addr {
        NatCluster::vip(self)
    }
    fn interfaces(&self) -> Vec<String> {
        let mut v = vec![self.director_front().ifname().to_owned()];
        if !self.is_one_armed() {
            v.push(self.director_back().ifname().to_owned());
        }
        v
    }
    fn serve_tcp(&self, port: u16) -> anyhow::Result<Vec<TcpServer>> {
        NatCluster::serve_tcp(self, port)
    }
    fn serve_udp(&self, port: u16) -> anyhow::Result<Vec<UdpServer>> {
        NatCluster::serve_udp(self, port)
    }
}

/// Fields drop in order: rvsd first (so it detaches cleanly), then the servers, then the
/// namespaces.
pub struct Lab<T: Topology = DrCluster> {
    pub rvsd: Option<NsProcess>,
    /// Extra rvsd options this lab starts it with.
    pub rvsd_args: Vec<String>,
    pub tcp: Vec<TcpServer>,
    pub udp: Vec<UdpServer>,
    pub cluster: T,
    pub dir: PathBuf,
    pub pin_dir: PathBuf,
    /// The umask rvsd inherits, when a test sets one.
    pub umask: Option<u32>,
}

impl Lab<DrCluster> {
    /// A cluster of `real_servers` real servers with TCP servers on `port` and rvsd running.
    pub fn new(real_servers: usize, port: u16) -> Lab {
        Lab::with(real_servers, port, 24, &[])
    }

    /// As `new`, on a LAN of prefix `prefix_len` (16 leaves room for many client addresses), with
    /// extra rvsd options.
    pub fn with(real_servers: usize, port: u16, prefix_len: u8, rvsd_args: &[&str]) -> Lab {
        let cluster = DrCluster::builder()
            .real_servers(real_servers)
            .prefix_len(prefix_len)
            .build()
            .expect("building the cluster");
        Lab::on(cluster, port, rvsd_args)
    }
}

impl<T: Topology> Lab<T> {
    /// rvsd on the director of `cluster`, TCP servers on `port` on its real servers.
    pub fn on(cluster: T, port: u16, rvsd_args: &[&str]) -> Lab<T> {
        let tcp = cluster.serve_tcp(port).expect("starting TCP servers");
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(format!("rvs-test-{tag}"));
        std::fs::create_dir_all(&dir).unwrap();
        let pin_dir = PathBuf::from(format!("/sys/fs/bpf/rvs-test-{tag}"));
        let mut lab = Lab {
            rvsd: None,
            rvsd_args: rvsd_args.iter().map(|a| a.to_string()).collect(),
            tcp,
            udp: Vec::new(),
            cluster,
            dir,
            pin_dir,
            umask: None,
        };
        lab.start_rvsd();
        lab
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("rvsd.sock")
    }

    pub fn vip(&self) -> IpAddr {
        IpAddr::V4(self.cluster.vip())
    }

    /// `VIP:port` as rvsadm takes it.
    pub fn vip_port(&self, port: u16) -> String {
        format!("{}:{port}", self.cluster.vip())
    }

    pub fn rs_ip(&self, i: usize) -> Ipv4Addr {
        self.cluster.real_servers()[i].ip()
    }

    /// rvsd as this lab starts it, with this lab's pins, on `socket` with `state_file`.
    fn rvsd_command(&self, socket: &Path, state_file: &Path) -> Command {
        let mut cmd = Command::new(RVSD);
        for ifname in self.cluster.interfaces() {
            cmd.args(["--interface", &ifname]);
        }
        if !self.rvsd_args.iter().any(|a| a == "--conn-table-size") {
            cmd.args(["--conn-table-size", "65536"]);
        }
        cmd.arg("--socket")
            .arg(socket)
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .arg("--state-file")
            .arg(state_file)
            .args(&self.rvsd_args)
            .env("RVS_LOG", "info");
        if let Some(mask) = self.umask {
            use std::os::unix::process::CommandExt;
            // SAFETY: umask is async-signal-safe and touches no memory.
            unsafe {
                cmd.pre_exec(move || {
                    libc::umask(mask);
                    Ok(())
                });
            }
        }
        cmd
    }

    fn spawn_rvsd(&self, mut cmd: Command) -> NsProcess {
        let log = self
            .dir
            .join(format!("rvsd-{}.log", NEXT.fetch_add(1, Ordering::Relaxed)));
        self.cluster
            .director()
            .spawn(&mut cmd, &log)
            .expect("starting rvsd")
    }

    pub fn start_rvsd(&mut self) {
        assert!(self.rvsd.is_none(), "rvsd is already running");
        let mut p =
            self.spawn_rvsd(self.rvsd_command(&self.socket(), &self.dir.join("state.json")));
        // Generous: loading the programs is ~2 s of verifier time on an idle machine, and
        // much more while other tests keep both cores busy.
        p.wait_for_log("serving rvsadm", Duration::from_secs(60))
            .expect("rvsd did not come up");
        self.rvsd = Some(p);
    }

    /// Starts another rvsd on this lab's director and pins, on `socket` with `state_file`,
    /// which must refuse to run: returns what it printed.
    pub fn rvsd_refuses(&self, socket: &Path, state_file: &Path) -> String {
        let mut p = self.spawn_rvsd(self.rvsd_command(socket, state_file));
        let status = poll_until(Duration::from_secs(60), "rvsd to exit", || p.try_wait())
            .expect("rvsd kept running");
        let log = p.log().unwrap_or_default();
        assert!(!status.success(), "rvsd exited with {status}:\n{log}");
        log
    }

    /// Stops rvsd with SIGTERM and waits for it to exit cleanly; returns what it logged.
    pub fn stop_rvsd(&mut self) -> String {
        let p = self.rvsd.take().expect("rvsd is not running");
        let log_path = p.log_path().to_path_buf();
        let status = p.stop(Duration::from_secs(10)).expect("stopping rvsd");
        assert!(status.success(), "rvsd exited with {status}");
        std::fs::read_to_string(log_path).unwrap_or_default()
    }

    pub fn rvsd_log(&self) -> String {
        self.rvsd
            .as_ref()
            .and_then(|p| p.log().ok())
            .unwrap_or_default()
    }

    /// Runs rvsadm with `args` against this lab's rvsd.
    pub fn rvsadm(&self, args: &[&str]) -> Output {
        self.rvsadm_with_stdin(args, "")
    }

    pub fn rvsadm_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(RVSADM)
            .args(args)
            .env("RVS_SOCKET", self.socket())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting rvsadm");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().expect("running rvsadm")
    }

    /// Runs rvsadm, asserts it succeeded, returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.rvsadm(args);
        assert!(
            out.status.success(),
            "rvsadm {args:?} failed ({}): {}\nrvsd log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.rvsd_log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The name of the real server that answers a new TCP connection to the VIP.
    pub fn ask(&self, port: u16) -> String {
        self.ask_at(self.vip(), port)
    }

    /// The name of the real server that answers a new TCP connection to `vip`.
    pub fn ask_at(&self, vip: IpAddr, port: u16) -> String {
        self.cluster
            .client()
            .tcp_request(vip, port)
            .unwrap_or_else(|e| {
                panic!(
                    "request to {vip} port {port} failed: {e:#}\nrvsd log:\n{}",
                    self.rvsd_log()
                )
            })
    }

    /// The director's data-plane counters (`rvsadm --dataplane`), by name.
    pub fn dataplane(&self) -> std::collections::BTreeMap<String, u64> {
        self.ok(&["--dataplane"])
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_owned(), v.trim().parse().ok()?))
            })
            .collect()
    }

    /// One data-plane counter.
    pub fn counter(&self, name: &str) -> u64 {
        *self
            .dataplane()
            .get(name)
            .unwrap_or_else(|| panic!("no data-plane counter {name}"))
    }

    /// Waits until `f` holds (bounded).
    pub fn eventually(&self, what: &str, mut f: impl FnMut() -> bool) {
        poll_until(Duration::from_secs(10), what, || Ok(f().then_some(()))).unwrap();
    }
}

impl<T: Topology> Drop for Lab<T> {
    fn drop(&mut self) {
        if let Some(p) = self.rvsd.take() {
            let _ = p.stop(Duration::from_secs(5));
        }
        let _ = Command::new(RVSD)
            .arg("--cleanup")
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .arg("--state-file")
            .arg(self.dir.join("state.json"))
            .arg("--socket")
            .arg(self.socket())
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A real-server line of `rvsadm -L -n`: (address, forward, weight, active, inactive).
pub fn dest_rows(listing: &str) -> Vec<(String, String, i64, u64, u64)> {
    listing
        .lines()
        .filter(|l| l.starts_with("  -> ") && !l.contains("RemoteAddress"))
        .map(|l| {
            let f: Vec<&str> = l[5..].split_whitespace().collect();
            (
                f[0].to_owned(),
                f[1].to_owned(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                f[4].parse().unwrap(),
            )
        })
        .collect()
}

/// Counts how often each name occurs.
pub fn tally(names: &[String]) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for n in names {
        *m.entry(n.clone()).or_default() += 1;
    }
    m
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// The real-server rows of `rvsadm -L -n` as (address, active, inactive), in listing order.
pub fn counts(listing: &str) -> Vec<(String, u64, u64)> {
    dest_rows(listing)
        .into_iter()
        .map(|r| (r.0, r.3, r.4))
        .collect()
}

/// The counters of a service in `rvsadm -L -n --stats --exact`: (conns, inpkts, outpkts,
/// inbytes, outbytes). `proto` is `TCP` or `UDP`, `addr` as the listing prints it.
pub fn service_stats(listing: &str, proto: &str, addr: &str) -> [u64; 5] {
    let line = listing
        .lines()
        .find(|l| {
            let mut f = l.split_whitespace();
            f.next() == Some(proto) && f.next() == Some(addr)
        })
        .unwrap_or_else(|| panic!("no {proto} {addr} in\n{listing}"));
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(2)
        .map(|x| x.parse().unwrap())
        .collect();
    [v[0], v[1], v[2], v[3], v[4]]
}

/// `[a]` for IPv6, `a` for IPv4: how rvsadm takes and prints an address before `:port`.
pub fn bracket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// 50 MB, the size of the bulk transfers the forwarding tests check byte for byte.
pub const BULK: u64 = 50_000_000;

/// The stdout of `child` once it exits (killed after `limit`).
pub fn wait_output(child: &mut std::process::Child, limit: Duration) -> String {
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    use std::io::Read;
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    out
}

/// Waits up to 5 s for `f` to hold, without failing: the caller asserts what it expects.
pub fn poll(mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The Internet checksum (RFC 1071) of `bytes`.
pub fn inet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in bytes.chunks(2) {
        sum += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
