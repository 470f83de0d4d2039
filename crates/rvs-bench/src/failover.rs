//! Director failover (issue 11): the time from the MASTER's death (`kill -9`) to the VIP on the
//! BACKUP, and to the first new TCP connection that succeeds through the BACKUP, for rvs and
//! keepalived in every pairing, at VRRPv3 `advert_int 0.1` and VRRPv2 `advert_int 1`.
//!
//! Topology: [`HaCluster`]: two directors and two real servers on one LAN, the client behind a
//! router whose neighbour cache must follow the MASTER. Each director runs rvsd from a
//! keepalived.conf (the DR service and the VRRP instance), or keepalived's VRRP part with an
//! rvsd beside it that has the same service and no VRRP: this machine's kernel has no IPVS, so
//! rvs's data plane stands in for it, and, as IPVS's table outlives a killed keepalived, it
//! stays when keepalived is killed. Every pair is measured the same way: the first connection
//! counts only once the BACKUP's own data plane has counted it.

use std::{
    fmt::Write as _,
    net::{IpAddr, SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use rvs_testbed::{HaCluster, Host, NsProcess, TcpServer, poll_until, spawn_in};

use crate::{
    Plan, progress,
    rvs::{Bins, Rvsd},
};

const PORT: u16 = 80;
/// Bound on any state change waited for.
const BOUND: Duration = Duration::from_secs(20);
/// After a master is settled: past its second announcement (`garp_master_delay 1`) and the
/// router's neighbour-cache lock time (1 s) after it, as any master that has run a while is;
/// otherwise the router ignores the backup's first burst and waits for its second.
const SETTLE: Duration = Duration::from_millis(2500);

/// Who runs on the two directors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pair {
    RvsRvs,
    /// keepalived MASTER, rvs BACKUP.
    KeepalivedRvs,
    /// rvs MASTER, keepalived BACKUP.
    RvsKeepalived,
    KeepalivedKeepalived,
}

impl Pair {
    pub const ALL: [Pair; 4] = [
        Pair::RvsRvs,
        Pair::KeepalivedKeepalived,
        Pair::KeepalivedRvs,
        Pair::RvsKeepalived,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Pair::RvsRvs => "rvs → rvs",
            Pair::KeepalivedRvs => "keepalived → rvs",
            Pair::RvsKeepalived => "rvs → keepalived",
            Pair::KeepalivedKeepalived => "keepalived → keepalived",
        }
    }

    /// (master is keepalived, backup is keepalived)
    fn keepalived(self) -> (bool, bool) {
        match self {
            Pair::RvsRvs => (false, false),
            Pair::KeepalivedRvs => (true, false),
            Pair::RvsKeepalived => (false, true),
            Pair::KeepalivedKeepalived => (true, true),
        }
    }
}

/// A VRRP setting measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Setting {
    pub version: u8,
    /// Seconds, as keepalived.conf writes it.
    pub advert_int: &'static str,
}

/// One pair at one setting: the trials' times.
#[derive(Clone, Debug)]
pub struct FailoverRow {
    pub setting: Setting,
    pub pair: Pair,
    pub to_vip: Vec<Duration>,
    pub to_conn: Vec<Duration>,
    /// Why the trials stopped early, if they did.
    pub error: Option<String>,
}

/// The part's results.
#[derive(Clone, Debug, Default)]
pub struct FailoverReport {
    pub trials: usize,
    pub rows: Vec<FailoverRow>,
}

/// What a plan measures: settings, pairs and trials.
pub fn plan_of(plan: &Plan) -> (Vec<Setting>, Vec<Pair>, usize) {
    let fast = Setting {
        version: 3,
        advert_int: "0.1",
    };
    let slow = Setting {
        version: 2,
        advert_int: "1",
    };
    match plan.mode {
        "smoke" => (vec![fast], vec![Pair::RvsRvs, Pair::KeepalivedRvs], 1),
        "quick" => (vec![fast, slow], Pair::ALL.to_vec(), 3),
        _ => (vec![fast, slow], Pair::ALL.to_vec(), 10),
    }
}

pub fn run(plan: &Plan, bins: &Bins, dir: &Path) -> Result<FailoverReport> {
    let (settings, pairs, trials) = plan_of(plan);
    progress(&format!(
        "failover: kill -9 of the MASTER, {trials} trial(s) per pair and setting"
    ));
    let mut rep = FailoverReport {
        trials,
        rows: Vec::new(),
    };
    for &setting in &settings {
        for &pair in &pairs {
            let mut row = FailoverRow {
                setting,
                pair,
                to_vip: Vec::new(),
                to_conn: Vec::new(),
                error: None,
            };
            if let Err(e) = measure(bins, dir, setting, pair, trials, &mut row) {
                progress(&format!("  FAILED {}: {e:#}", pair.name()));
                row.error = Some(format!("{e:#}"));
            }
            progress(&format!(
                "  v{} advert_int {:>3} {:<24} to VIP {}, to first connection {}",
                setting.version,
                setting.advert_int,
                pair.name(),
                summary(&row.to_vip),
                summary(&row.to_conn),
            ));
            rep.rows.push(row);
        }
    }
    Ok(rep)
}

/// `median (worst) ms`.
pub fn summary(v: &[Duration]) -> String {
    match median_and_worst(v) {
        Some((m, w)) => format!("{} ({}) ms", m.as_millis(), w.as_millis()),
        None => "—".into(),
    }
}

pub fn median_and_worst(v: &[Duration]) -> Option<(Duration, Duration)> {
    let mut v = v.to_vec();
    v.sort();
    Some((*v.get(v.len() / 2)?, *v.last()?))
}

/// The DR virtual service, the same on both directors.
fn service(c: &HaCluster, vip: IpAddr) -> String {
    let mut s = format!(
        "virtual_server {vip} {PORT} {{\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n"
    );
    for rs in c.real_servers() {
        let _ = write!(
            s,
            "    real_server {} {PORT} {{\n        weight 1\n    }}\n",
            rs.ip()
        );
    }
    s + "}\n"
}

/// The `vrrp_instance` block.
fn instance(setting: Setting, priority: u8, vip: IpAddr) -> String {
    format!(
        "vrrp_instance VI_1 {{\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n    \
         priority {priority}\n    version {}\n    advert_int {}\n    garp_master_delay 1\n    \
         virtual_ipaddress {{\n        {vip}\n    }}\n}}\n",
        setting.version, setting.advert_int
    )
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn write_conf(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{name}-{n}.conf"));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// keepalived's VRRP part alone, in a director's namespace (TOOLCHAIN.md).
struct Keepalived {
    p: Option<NsProcess>,
    vrrp_pid: PathBuf,
}

impl Keepalived {
    fn start(host: &Host, dir: &Path, conf: &str, master: bool) -> Result<Keepalived> {
        let path = write_conf(dir, "keepalived", conf)?;
        let pid = path.with_extension("pid");
        let vrrp_pid = path.with_extension("vrrp.pid");
        let mut cmd = Command::new("keepalived");
        cmd.args(["-n", "-l", "-D", "--vrrp", "-f"])
            .arg(&path)
            .arg("-p")
            .arg(&pid)
            .arg("-r")
            .arg(&vrrp_pid);
        let mut p = spawn_in(host.netns(), &mut cmd, path.with_extension("log"))
            .context("starting keepalived")?;
        let state = if master {
            "Entering MASTER STATE"
        } else {
            "Entering BACKUP STATE"
        };
        p.wait_for_log(state, BOUND)?;
        Ok(Keepalived {
            p: Some(p),
            vrrp_pid,
        })
    }

    /// kill -9 of the parent (which would restart its VRRP child) and then of the child, by the
    /// pid it wrote.
    fn kill9(&mut self) {
        let Some(p) = self.p.take() else { return };
        let child: Option<i32> = std::fs::read_to_string(&self.vrrp_pid)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        // SAFETY: kill has no memory preconditions; the parent is not reaped yet, and the child
        // is the VRRP process keepalived wrote down.
        unsafe {
            libc::kill(p.pid() as i32, libc::SIGKILL);
            if let Some(c) = child {
                libc::kill(c, libc::SIGKILL);
            }
        }
        drop(p);
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        if let Some(p) = self.p.take() {
            let _ = p.stop(Duration::from_secs(10));
        }
    }
}

/// One director: rvsd running VRRP, or keepalived running it beside an rvsd without VRRP.
struct Director {
    vrrp: Vrrp,
    /// The data plane: the same rvsd as `Vrrp::Rvs`, or one beside keepalived.
    plane: Option<Rvsd>,
}

enum Vrrp {
    Rvs,
    Keepalived(Keepalived),
}

impl Director {
    fn kill9(&mut self) {
        match &mut self.vrrp {
            Vrrp::Rvs => {
                if let Some(p) = &mut self.plane {
                    p.kill9();
                }
            }
            // The data plane stays, as the kernel's IPVS table does.
            Vrrp::Keepalived(k) => k.kill9(),
        }
    }

    /// New connections its data plane has counted.
    fn conns(&self, vip: IpAddr) -> Result<u64> {
        let plane = self.plane.as_ref().context("no data plane")?;
        let listing = plane.rvsadm(&["-L", "-n", "--stats"])?;
        let svc = format!("{vip}:{PORT}");
        let line = listing
            .lines()
            .find(|l| l.starts_with("TCP") && l.split_whitespace().nth(1) == Some(svc.as_str()))
            .with_context(|| format!("no service {svc} in\n{listing}"))?;
        line.split_whitespace()
            .nth(2)
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("no connection count in {line:?}"))
    }
}

fn rvs_state(rvsd: &Rvsd) -> Option<String> {
    let out = rvsd.rvsadm(&["--vrrp"]).ok()?;
    let line = out.lines().find(|l| l.starts_with("VI_1"))?;
    line.split_whitespace().nth(4).map(str::to_owned)
}

struct Cluster<'a> {
    c: &'a HaCluster,
    bins: &'a Bins,
    dir: &'a Path,
    setting: Setting,
    vip: IpAddr,
}

impl Cluster<'_> {
    /// Starts director `i` (priority 150: the MASTER, 100: the BACKUP) and waits for its state.
    fn start(&self, i: usize, keepalived: bool, plane: Option<Rvsd>) -> Result<Director> {
        let prio = if i == 0 { 150 } else { 100 };
        let master = i == 0;
        let host = &self.c.directors()[i];
        let inst = instance(self.setting, prio, self.vip);
        let svc = service(self.c, self.vip);
        if keepalived {
            let plane = match plane {
                Some(p) => p,
                None => {
                    let conf = write_conf(self.dir, "dataplane", &svc)?;
                    Rvsd::start_with(
                        host.netns(),
                        self.bins,
                        &["eth0"],
                        65_536,
                        &["-f", path_str(&conf)?],
                    )?
                }
            };
            let k = Keepalived::start(host, self.dir, &inst, master)?;
            return Ok(Director {
                vrrp: Vrrp::Keepalived(k),
                plane: Some(plane),
            });
        }
        drop(plane);
        let conf = write_conf(self.dir, "rvsd", &(svc + &inst))?;
        let rvsd = Rvsd::start_with(
            host.netns(),
            self.bins,
            &["eth0"],
            65_536,
            &["-f", path_str(&conf)?],
        )?;
        let want = if master { "MASTER" } else { "BACKUP" };
        poll_until(BOUND, &format!("rvsd to be {want}"), || {
            Ok((rvs_state(&rvsd).as_deref() == Some(want)).then_some(()))
        })
        .with_context(|| rvsd.log())?;
        Ok(Director {
            vrrp: Vrrp::Rvs,
            plane: Some(rvsd),
        })
    }

    fn has_vip(&self, i: usize) -> bool {
        self.c.directors()[i]
            .netns()
            .ip(&["addr", "show", "dev", "eth0"])
            .map(|s| s.contains(&format!("{}/", self.vip)))
            .unwrap_or(false)
    }

    /// One connection attempt from the client (a short timeout: the backup may not forward yet).
    fn connect(&self) -> bool {
        let addr = SocketAddr::new(self.vip, PORT);
        self.c
            .client()
            .netns()
            .enter(|| TcpStream::connect_timeout(&addr, Duration::from_millis(50)))
            .map(|r| r.is_ok())
            .unwrap_or(false)
    }
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().context("a non-UTF-8 path")
}

fn measure(
    bins: &Bins,
    dir: &Path,
    setting: Setting,
    pair: Pair,
    trials: usize,
    row: &mut FailoverRow,
) -> Result<()> {
    let c = HaCluster::build(2, 1, false)?;
    let _tcp: Vec<TcpServer> = c.serve_tcp(PORT)?;
    let cl = Cluster {
        c: &c,
        bins,
        dir,
        setting,
        vip: IpAddr::V4(c.vips()[0]),
    };
    let (ka_master, ka_backup) = pair.keepalived();
    let mut master = cl.start(0, ka_master, None)?;
    let backup = cl.start(1, ka_backup, None)?;
    for trial in 0..trials {
        // Settled: the master's VIP, the backup without it, the router pointing right.
        poll_until(BOUND, "a settled pair", || {
            Ok((cl.has_vip(0) && !cl.has_vip(1)).then_some(()))
        })?;
        poll_until(BOUND, "a connection through the MASTER", || {
            Ok(c.client().tcp_request(cl.vip, PORT).ok())
        })?;
        std::thread::sleep(SETTLE);
        let before = backup.conns(cl.vip)?;
        let t0 = Instant::now();
        master.kill9();
        poll_until(BOUND, "the BACKUP to hold the VIP", || {
            Ok(cl.has_vip(1).then_some(()))
        })?;
        row.to_vip.push(t0.elapsed());
        let mut tries = 0u32;
        poll_until(BOUND, "a connection through the BACKUP", || {
            tries += 1;
            Ok((cl.connect() && backup.conns(cl.vip)? > before).then_some(()))
        })?;
        row.to_conn.push(t0.elapsed());
        if std::env::var_os("RVS_BENCH_DEBUG").is_some() {
            progress(&format!(
                "    trial {trial}: VIP {} ms, connection {} ms ({tries} tries)",
                row.to_vip.last().map_or(0, |d| d.as_millis()),
                row.to_conn.last().map_or(0, |d| d.as_millis()),
            ));
        }
        // The killed master returns and preempts (the settled check waits for it). A
        // keepalived director keeps its data plane.
        let plane = master.plane.take().filter(|_| ka_master);
        drop(master);
        master = cl.start(0, ka_master, plane)?;
    }
    if row.to_vip.len() != trials {
        bail!("only {} of {trials} trials", row.to_vip.len());
    }
    Ok(())
}
