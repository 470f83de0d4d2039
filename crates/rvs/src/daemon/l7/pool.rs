//! A pool of real servers at run time: their health as the checkers last said, the requests
//! each has in flight, its idle connections, and the choice of one for a request: persistence
//! first (cookie or source address), then the IPVS scheduler of the pool, the same code the
//! L4 director's schedulers are tested against (`sched::reference`, the counting picks, the sh
//! and mh tables).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::net::TcpStream;

use super::site::Rate;

use crate::{
    keepalived::l7::{L7Pool, Persistence},
    model::{Dest, DestAddr, DestConfig, svc_flags},
    sched::{
        Scheduler,
        candidate::Candidate,
        fo, lc, mh, nq, ovf,
        reference::{KernelRr, KernelWrr, RefDest},
        sed, sh, twos, wlc,
    },
};

/// Idle connections kept per real server.
const MAX_IDLE: usize = 64;
/// An idle connection older than this is not reused (servers close theirs after some seconds).
pub const IDLE_REUSE: Duration = Duration::from_secs(4);
/// Source-persistence entries before expired ones are first swept, and the most kept.
const SWEEP_AT: usize = 65536;
const MAX_SOURCES: usize = 1 << 20;

/// One real server of a pool.
pub struct Backend {
    pub addr: SocketAddr,
    /// The configured weight, and the one in force (a misc_dynamic checker may change it).
    pub configured_weight: i32,
    weight: AtomicI32,
    up: AtomicBool,
    /// Requests in flight (what lc/wlc count).
    pub active: AtomicU32,
    pub requests: AtomicU64,
    /// Connections that failed or answered nothing usable.
    pub failures: AtomicU64,
    /// The value of the pool's persistence cookie that names it.
    pub cookie: String,
    /// Requests per second.
    pub rate: Rate,
    idle: Mutex<Vec<(TcpStream, Instant)>>,
}

impl Backend {
    fn new(addr: SocketAddr, weight: i32, up: bool) -> Backend {
        Backend {
            addr,
            configured_weight: weight,
            weight: AtomicI32::new(weight),
            up: AtomicBool::new(up),
            active: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            cookie: cookie_value(addr),
            rate: Rate::default(),
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn weight(&self) -> i32 {
        self.weight.load(Ordering::Relaxed)
    }

    /// Takes new requests.
    pub fn usable(&self) -> bool {
        self.up() && self.weight() > 0
    }

    /// An idle connection young enough and still open, if there is one.
    pub fn take_idle(&self) -> Option<TcpStream> {
        let mut idle = self.idle.lock().expect("idle");
        while let Some((s, since)) = idle.pop() {
            if since.elapsed() < IDLE_REUSE && still_open(&s) {
                return Some(s);
            }
        }
        None
    }

    pub fn put_idle(&self, s: TcpStream) {
        let mut idle = self.idle.lock().expect("idle");
        if idle.len() < MAX_IDLE {
            idle.push((s, Instant::now()));
        }
    }

    pub fn idle_count(&self) -> usize {
        self.idle.lock().expect("idle").len()
    }
}

/// An idle connection to a real server is still open and silent: a read would block (not EOF,
/// stray bytes a server sent after its answer, or an error).
pub fn still_open(s: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// A short, stable name for a server in a cookie: it says nothing of the address.
fn cookie_value(addr: SocketAddr) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(addr.to_string().as_bytes());
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

enum Sched {
    Rr(KernelRr),
    Wrr(KernelWrr),
    /// sh and mh: the table over the usable servers (ids are positions in `servers`).
    Hash {
        mh: bool,
        table: Vec<u32>,
    },
    Counting(Scheduler),
}

/// The pool's choice for one request.
pub struct Choice {
    pub backend: usize,
    /// The response sets the persistence cookie (the request had none that still holds).
    pub set_cookie: Option<String>,
}

pub struct Pool {
    pub name: String,
    pub config: L7Pool,
    pub servers: Vec<Backend>,
    pub sorry: Option<Backend>,
    sched: Mutex<Sched>,
    flags: u32,
    sources: Mutex<HashMap<IpAddr, (usize, Instant)>>,
    /// Size of `sources` at which expired entries are swept next.
    next_sweep: AtomicUsize,
    rng: AtomicU64,
    pub requests: AtomicU64,
    /// Requests answered 503 (no usable server, no sorry server).
    pub unavailable: AtomicU64,
    /// Requests sent to the sorry server.
    pub to_sorry: AtomicU64,
    /// Requests per second.
    pub rate: Rate,
}

impl Pool {
    /// `initially_up[i]`: real server i counts as up before its checkers said anything.
    pub fn new(config: &L7Pool, initially_up: &[bool]) -> Pool {
        let servers: Vec<Backend> = config
            .servers
            .real_servers
            .iter()
            .zip(initially_up.iter().copied().chain(std::iter::repeat(true)))
            .map(|(rs, up)| {
                Backend::new(
                    SocketAddr::new(rs.addr, rs.port.expect("filled by the parser")),
                    rs.weight,
                    up,
                )
            })
            .collect();
        let sorry = config
            .servers
            .sorry_server
            .as_ref()
            .map(|s| Backend::new(SocketAddr::new(s.addr, s.port.expect("filled")), 1, true));
        let scheduler = Scheduler::from_name(&config.servers.scheduler).unwrap_or(Scheduler::Wlc);
        let sched = match scheduler {
            Scheduler::Rr => Sched::Rr(KernelRr::default()),
            Scheduler::Wrr => Sched::Wrr(KernelWrr::default()),
            Scheduler::Sh => Sched::Hash {
                mh: false,
                table: Vec::new(),
            },
            Scheduler::Mh => Sched::Hash {
                mh: true,
                table: Vec::new(),
            },
            s => Sched::Counting(s),
        };
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        let p = Pool {
            name: config.name.clone(),
            config: config.clone(),
            servers,
            sorry,
            sched: Mutex::new(sched),
            flags: config.servers.sched_flags,
            sources: Mutex::new(HashMap::new()),
            next_sweep: AtomicUsize::new(SWEEP_AT),
            rng: AtomicU64::new(seed),
            requests: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
            to_sorry: AtomicU64::new(0),
            rate: Rate::default(),
        };
        p.servers_changed();
        p
    }

    pub fn position(&self, addr: &DestAddr) -> Option<usize> {
        self.servers
            .iter()
            .position(|b| b.addr.ip() == addr.addr && b.addr.port() == addr.port)
    }

    /// A checker's verdict (and misc_dynamic's weight) on server `i`.
    pub fn set_health(&self, i: usize, up: bool, weight: Option<i32>) {
        let b = &self.servers[i];
        let before = (b.up(), b.weight());
        b.up.store(up, Ordering::Relaxed);
        if let Some(w) = weight {
            b.weight.store(w, Ordering::Relaxed);
        }
        if before != (b.up(), b.weight()) {
            self.servers_changed();
        }
    }

    /// The list as the reference schedulers see it: a down server has weight 0 (it stays in
    /// the list, as with inhibit_on_failure, so rr's and wrr's positions hold).
    fn ref_list(&self) -> Vec<RefDest> {
        self.servers
            .iter()
            .map(|b| RefDest {
                addr: DestAddr {
                    addr: b.addr.ip(),
                    port: b.addr.port(),
                },
                weight: if b.up() { b.weight() } else { 0 },
            })
            .collect()
    }

    /// The kernel's hooks when the list changes: wrr's state and the hash tables are redone.
    fn servers_changed(&self) {
        let mut s = self.sched.lock().expect("sched");
        match &mut *s {
            Sched::Wrr(w) => w.dest_changed(&self.ref_list()),
            Sched::Hash { mh: is_mh, table } => {
                let dests: Vec<Dest> = self
                    .servers
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.usable())
                    .map(|(i, b)| Dest {
                        addr: DestAddr {
                            addr: b.addr.ip(),
                            port: b.addr.port(),
                        },
                        config: DestConfig {
                            weight: b.weight(),
                            ..DestConfig::default()
                        },
                        id: i as u32,
                        last_weight: b.weight(),
                    })
                    .collect();
                *table = if *is_mh {
                    mh::table(&dests)
                } else {
                    sh::table(&dests)
                };
            }
            _ => {}
        }
    }

    /// Whether the usable servers' weights reach the pool's quorum.
    pub fn has_quorum(&self) -> bool {
        let total: i64 = self
            .servers
            .iter()
            .filter(|b| b.usable())
            .map(|b| b.weight() as i64)
            .sum();
        total > 0 && total >= self.config.servers.quorum as i64
    }

    /// The server for a request from `client` carrying `cookie` (the value of the pool's
    /// persistence cookie, if any). None: no server can take it.
    pub fn choose(&self, client: SocketAddr, cookie: Option<&str>) -> Option<Choice> {
        if !self.has_quorum() {
            return None;
        }
        match &self.config.persistence {
            Some(Persistence::Cookie(name)) => {
                if let Some(i) = cookie.and_then(|c| {
                    self.servers
                        .iter()
                        .position(|b| b.cookie == c && b.usable())
                }) {
                    return Some(Choice {
                        backend: i,
                        set_cookie: None,
                    });
                }
                let i = self.schedule(client)?;
                Some(Choice {
                    backend: i,
                    set_cookie: Some(format!(
                        "Set-Cookie: {name}={}; Path=/; HttpOnly",
                        self.servers[i].cookie
                    )),
                })
            }
            Some(Persistence::Source(timeout)) => {
                let now = Instant::now();
                let mut map = self.sources.lock().expect("sources");
                if let Some((i, at)) = map.get(&client.ip()).copied()
                    && now.duration_since(at) < *timeout
                    && self.servers[i].usable()
                {
                    map.insert(client.ip(), (i, now));
                    return Some(Choice {
                        backend: i,
                        set_cookie: None,
                    });
                }
                let i = self.schedule(client)?;
                // Expired entries go when the map has doubled since the last sweep; past
                // MAX_SOURCES fresh ones, new clients are scheduled without being remembered.
                let mut next = self.next_sweep.load(Ordering::Relaxed);
                if map.len() >= next {
                    map.retain(|_, (_, at)| now.duration_since(*at) < *timeout);
                    next = (map.len() * 2).max(SWEEP_AT);
                    self.next_sweep.store(next, Ordering::Relaxed);
                }
                if map.len() < MAX_SOURCES {
                    map.insert(client.ip(), (i, now));
                }
                Some(Choice {
                    backend: i,
                    set_cookie: None,
                })
            }
            None => self.schedule(client).map(|i| Choice {
                backend: i,
                set_cookie: None,
            }),
        }
    }

    fn schedule(&self, client: SocketAddr) -> Option<usize> {
        let mut s = self.sched.lock().expect("sched");
        let position = |a: DestAddr| {
            self.servers
                .iter()
                .position(|b| b.addr.ip() == a.addr && b.addr.port() == a.port)
        };
        match &mut *s {
            Sched::Rr(rr) => rr.schedule(&self.ref_list()).and_then(position),
            Sched::Wrr(wrr) => wrr.schedule(&self.ref_list()).and_then(position),
            Sched::Hash { mh: is_mh, table } => {
                let port = if self.flags & svc_flags::SCHED2 != 0 {
                    client.port()
                } else {
                    0
                };
                let fallback = self.flags & svc_flags::SCHED1 != 0;
                let usable = |id: u32| self.servers[id as usize].usable();
                let id = if *is_mh {
                    mh::pick(table, &client.ip(), port, fallback, usable)
                } else {
                    sh::pick(table, &client.ip(), port, fallback, usable)
                };
                id.map(|id| id as usize)
            }
            Sched::Counting(which) => {
                let list: Vec<Candidate> = self
                    .servers
                    .iter()
                    .map(|b| Candidate {
                        weight: if b.up() { b.weight() } else { 0 },
                        active: b.active.load(Ordering::Relaxed),
                        inactive: 0,
                        overloaded: !b.up(),
                    })
                    .collect();
                match which {
                    Scheduler::Lc => lc::pick(&list),
                    Scheduler::Sed => sed::pick(&list),
                    Scheduler::Nq => nq::pick(&list),
                    Scheduler::Fo => fo::pick(&list),
                    Scheduler::Ovf => ovf::pick(&list),
                    Scheduler::Twos => {
                        let range = twos::draw_range(&list)?;
                        let (r1, r2) = (self.random() % range, self.random() % range);
                        twos::pick(&list, r1, r2)
                    }
                    _ => wlc::pick(&list),
                }
            }
        }
    }

    /// xorshift64: enough for twos' two draws.
    fn random(&self) -> u32 {
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        (x >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(text: &str) -> Pool {
        let conf = format!(
            "rvs_l7_server 198.18.0.100 80 {{\n default_pool p\n pool p {{\n{text}\n real_server \
             198.19.0.1 80 {{ weight 2 }}\n real_server 198.19.0.2 80\n real_server 198.19.0.3 80\n }}\n}}\n"
        );
        let cfg = crate::keepalived::parse_str("t.conf", &conf).unwrap();
        Pool::new(&cfg.l7_servers[0].pools[0], &[true, true, true])
    }

    fn client(i: u8) -> SocketAddr {
        SocketAddr::new(IpAddr::from([198, 18, 1, i]), 40000 + i as u16)
    }

    fn picks(p: &Pool, n: u8) -> Vec<usize> {
        (0..n)
            .map(|i| p.choose(client(i), None).unwrap().backend)
            .collect()
    }

    #[test]
    fn rr_and_wrr_follow_the_kernel_and_skip_a_down_server() {
        let p = pool("lb_algo rr");
        assert_eq!(picks(&p, 6), [0, 1, 2, 0, 1, 2]);
        p.set_health(1, false, None);
        assert_eq!(picks(&p, 4), [0, 2, 0, 2]);
        let p = pool("lb_algo wrr");
        assert_eq!(picks(&p, 4), [0, 0, 1, 2]);
    }

    #[test]
    fn mh_keeps_a_client_on_its_server() {
        let p = pool("lb_algo mh");
        let first = picks(&p, 20);
        assert_eq!(first, picks(&p, 20));
        p.set_health(0, false, None);
        let after = picks(&p, 20);
        for (a, b) in first.iter().zip(&after) {
            assert!(*b != 0 && (*a == 0 || a == b), "{first:?} {after:?}");
        }
    }

    #[test]
    fn cookie_and_source_persistence() {
        let p = pool("lb_algo rr\n persistence cookie SID");
        let c = p.choose(client(1), None).unwrap();
        let set = c.set_cookie.unwrap();
        let value = set.split(['=', ';']).nth(1).unwrap();
        for _ in 0..3 {
            let again = p.choose(client(2), Some(value)).unwrap();
            assert_eq!((again.backend, again.set_cookie), (c.backend, None));
        }
        p.set_health(c.backend, false, None);
        let moved = p.choose(client(2), Some(value)).unwrap();
        assert!(moved.backend != c.backend && moved.set_cookie.is_some());

        let p = pool("lb_algo rr\n persistence source");
        let a = p.choose(client(7), None).unwrap().backend;
        for _ in 0..4 {
            assert_eq!(p.choose(client(7), None).unwrap().backend, a);
        }
    }

    #[test]
    fn no_quorum_no_choice() {
        let p = pool("lb_algo wlc\n quorum 3");
        assert!(p.choose(client(1), None).is_some());
        p.set_health(0, false, None);
        assert!(p.choose(client(1), None).is_none());
    }
}
