//! rvsd running a keepalived.conf on a lab: the file in a directory of its own (which also holds
//! the scripts and files the configuration's notifiers write), SIGHUP reloads, the real servers
//! a service lists, and bounded waits that report how long a change took.

use std::{
    net::IpAddr,
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use rvs_testbed::{DrCluster, poll_until};

use super::{Lab, Topology, dest_rows};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The short timers every checker test uses (seconds).
pub const DELAY_LOOP: u64 = 1;
pub const CONNECT_TIMEOUT: u64 = 1;
pub const RETRY: u64 = 1;
pub const DELAY_BEFORE_RETRY: u64 = 1;

/// How long keepalived may take to notice a dead service: (retry+1)·connect_timeout +
/// retry·delay_before_retry + delay_loop.
pub fn failure_bound() -> Duration {
    Duration::from_secs((RETRY + 1) * CONNECT_TIMEOUT + RETRY * DELAY_BEFORE_RETRY + DELAY_LOOP)
}

/// What a measurement adds to the bound: polling rvsadm, and the director's own work.
pub const SLACK: Duration = Duration::from_millis(1500);

/// The checker timers as keepalived.conf lines.
pub fn short_timers() -> String {
    format!(
        "connect_timeout {CONNECT_TIMEOUT}\n            retry {RETRY}\n            \
         delay_before_retry {DELAY_BEFORE_RETRY}"
    )
}

/// A directory for a configuration and its scripts, removed on drop.
pub struct ConfDir(pub PathBuf);

impl ConfDir {
    pub fn new() -> ConfDir {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("rvs-ka-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        ConfDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `name` (an executable script when `exec`).
    pub fn write(&self, name: &str, text: &str, exec: bool) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        let mode = if exec { 0o755 } else { 0o644 };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }
}

impl Drop for ConfDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A lab whose rvsd runs `keepalived.conf` from its own directory. Fields drop in order: the
/// lab (rvsd first) before the directory.
pub struct KaLab<T: Topology = DrCluster> {
    pub lab: Lab<T>,
    pub dir: ConfDir,
}

impl<T: Topology> KaLab<T> {
    /// rvsd on `cluster` running `conf` (`{DIR}` in it stands for `dir`), the lab's line
    /// servers on `port`.
    pub fn on(cluster: T, port: u16, dir: ConfDir, conf: &str) -> KaLab<T> {
        let file = dir.write("keepalived.conf", &expand(&dir, conf), false);
        let file = file.to_str().unwrap().to_owned();
        let lab = Lab::on(cluster, port, &["-f", &file]);
        KaLab { lab, dir }
    }

    pub fn conf_path(&self) -> PathBuf {
        self.dir.path("keepalived.conf")
    }

    /// Rewrites the configuration file (not yet read).
    pub fn rewrite(&self, conf: &str) {
        self.dir
            .write("keepalived.conf", &expand(&self.dir, conf), false);
    }

    /// Sends SIGHUP and waits until rvsd logs the outcome (`reloaded` or `not reloaded`).
    pub fn reload(&self) {
        let before = self.reloads();
        let pid = self.lab.rvsd.as_ref().expect("rvsd is running").pid();
        kill(Pid::from_raw(pid as i32), Signal::SIGHUP).unwrap();
        self.wait("rvsd to finish the reload", Duration::from_secs(10), || {
            self.reloads() > before
        });
    }

    fn reloads(&self) -> usize {
        let log = self.lab.rvsd_log();
        log.matches(": reloaded: ").count() + log.matches(": not reloaded;").count()
    }

    /// `(address, weight)` of the real servers of service `proto addr` in `rvsadm -L -n`.
    pub fn dests(&self, proto: &str, addr: &str) -> Vec<(String, i64)> {
        service_dests(&self.lab.ok(&["-L", "-n"]), proto, addr)
            .into_iter()
            .map(|(a, _, w)| (a, w))
            .collect()
    }

    /// The weight `rs` has in service `proto addr`, None when it is not listed.
    pub fn weight(&self, proto: &str, addr: &str, rs: &str) -> Option<i64> {
        self.dests(proto, addr)
            .into_iter()
            .find(|(a, _)| a == rs)
            .map(|(_, w)| w)
    }

    /// Polls `f` every 50 ms for at most `limit`; returns how long it took. Fails with rvsd's
    /// log.
    pub fn wait(&self, what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
        let start = Instant::now();
        let r = poll_until(limit, what, || {
            if f() {
                return Ok(Some(()));
            }
            std::thread::sleep(Duration::from_millis(40));
            Ok(None)
        });
        if let Err(e) = r {
            panic!("{e:#}\nrvsd log:\n{}", self.lab.rvsd_log());
        }
        start.elapsed()
    }

    /// Waits for `rs` to leave service `proto addr` within the failure bound (plus [`SLACK`]).
    pub fn expect_removed(&self, proto: &str, addr: &str, rs: &str, since: Instant) {
        self.expect_within(&format!("{rs} to leave {proto} {addr}"), since, || {
            self.weight(proto, addr, rs).is_none()
        });
    }

    /// Waits for `f` to hold within the failure bound (plus [`SLACK`]) counted from `since`,
    /// when a service was broken.
    pub fn expect_within(&self, what: &str, since: Instant, f: impl FnMut() -> bool) {
        self.wait(what, failure_bound() + SLACK * 4, f);
        let took = since.elapsed();
        eprintln!("{what}: after {took:?}");
        assert!(
            took <= failure_bound() + SLACK,
            "{what}: took {took:?}, beyond keepalived's bound {:?}\nrvsd log:\n{}",
            failure_bound(),
            self.lab.rvsd_log()
        );
    }

    /// Waits (10 s at most) until `rs` is in service `proto addr` with `weight`.
    pub fn expect_weight(&self, proto: &str, addr: &str, rs: &str, weight: i64) {
        self.wait(
            &format!("{rs} in {proto} {addr} with weight {weight}"),
            Duration::from_secs(10),
            || self.weight(proto, addr, rs) == Some(weight),
        );
    }

    /// Waits (10 s at most) until rvsd's log contains `needle`.
    pub fn expect_log(&self, needle: &str) {
        self.wait(
            &format!("rvsd to log {needle:?}"),
            Duration::from_secs(10),
            || self.lab.rvsd_log().contains(needle),
        );
    }

    /// `ip:port` of real server `i`.
    pub fn rs(&self, i: usize, port: u16) -> String {
        format!("{}:{port}", self.lab.rs_ip(i))
    }

    pub fn client_ip(&self) -> IpAddr {
        IpAddr::V4(self.lab.cluster.client().ip())
    }
}

/// `{DIR}` → the configuration's directory.
fn expand(dir: &ConfDir, conf: &str) -> String {
    conf.replace("{DIR}", dir.0.to_str().unwrap())
}

/// The real servers of service `proto addr` in an `rvsadm -L -n` listing: (address, forward,
/// weight).
pub fn service_dests(listing: &str, proto: &str, addr: &str) -> Vec<(String, String, i64)> {
    let mut out = String::new();
    let mut inside = false;
    for line in listing.lines() {
        if !line.starts_with("  ") {
            let mut f = line.split_whitespace();
            inside = f.next() == Some(proto) && f.next() == Some(addr);
        } else if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    dest_rows(&out)
        .into_iter()
        .map(|r| (r.0, r.1, r.2))
        .collect()
}

/// The service line of `proto addr` in an `rvsadm -L -n` listing, if listed.
pub fn service_line(listing: &str, proto: &str, addr: &str) -> Option<String> {
    listing
        .lines()
        .find(|l| {
            let mut f = l.split_whitespace();
            f.next() == Some(proto) && f.next() == Some(addr)
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
}
