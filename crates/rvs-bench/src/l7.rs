//! Layer-7 dispatch: the same HTTP job done by rvsd's `rvs_l7_server`, HAProxy and nginx in
//! turn on one director. Requests for `Host: api.example.com` go to pool api (one real server),
//! every other host to pool web (two), round robin within a pool, X-Forwarded-For added. wrk
//! alternates the two hosts request by request (a Lua script), over kept-alive connections and
//! with `Connection: close`; each proxy's own CPU time (its processes and their children) is
//! divided by the requests wrk counted.

use std::{
    collections::HashMap,
    fmt::Write as _,
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    path::Path,
    time::Duration,
};

use anyhow::{Context, Result, ensure};
use rvs_testbed::{DrCluster, Host, Netns, NsProcess};

use crate::{
    Plan,
    report::{MISSING, cell, kilo, range_cell, us},
    rvs::{Bins, Rvsd, process_cpu},
    stats::Sample,
    tools::{self, HTTP_PORT},
};

/// The real servers' port.
const RS_PORT: u16 = 8080;
/// Concurrent connections of wrk (as in the TCP part).
const CONNS: u32 = 32;
const API_HOST: &str = "api.example.com";
const WEB_HOST: &str = "www.example.com";
/// Bytes of each real server's answer body.
const BODY_LEN: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proxy {
    Rvs,
    Haproxy,
    Nginx,
}

impl Proxy {
    const ALL: [Proxy; 3] = [Proxy::Rvs, Proxy::Haproxy, Proxy::Nginx];

    pub fn name(self) -> &'static str {
        match self {
            Proxy::Rvs => "rvs L7",
            Proxy::Haproxy => "HAProxy",
            Proxy::Nginx => "nginx",
        }
    }
}

/// One mode of wrk (kept-alive or a connection per request).
#[derive(Clone, Debug, Default)]
pub struct Mode {
    pub rps: Sample,
    pub p50_us: Sample,
    pub p99_us: Sample,
    /// The proxy's CPU time per request, µs.
    pub cpu_us: Sample,
    pub errors: u64,
    /// wrk's output of a run with errors, for the report's reader.
    pub error_sample: Option<String>,
}

#[derive(Clone, Debug)]
pub struct L7Row {
    pub proxy: Proxy,
    pub result: Result<(Mode, Mode), String>,
}

/// The body a real server answers: its name, padded to BODY_LEN bytes with the newline.
fn body(name: &str) -> String {
    let mut b = format!("{name} ");
    while b.len() < BODY_LEN - 1 {
        b.push('.');
    }
    b.truncate(BODY_LEN - 1);
    b.push('\n');
    b
}

/// nginx on RS_PORT in each real server: a static body, and the X-Forwarded-For it received
/// echoed in a header (to check the proxies' work; nginx adds no header whose value is empty).
fn start_servers(real_servers: &[Host], dir: &Path) -> Result<Vec<NsProcess>> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut procs = Vec::new();
    for rs in real_servers {
        rs.netns().sysctl(&[
            "net.core.somaxconn=4096",
            "net.ipv4.tcp_max_syn_backlog=4096",
        ])?;
        let loc = format!(
            "location / {{ add_header X-Seen-XFF $http_x_forwarded_for; return 200 \"{}\"; }}",
            body(rs.name()).replace('\n', "\\n")
        );
        procs.push(tools::start_nginx_with(
            rs.netns(),
            &format!("l7-{}", rs.name()),
            dir,
            workers,
            RS_PORT,
            &loc,
        )?);
    }
    Ok(procs)
}

fn rvs_conf(vip: Ipv4Addr, rs: &[Ipv4Addr]) -> String {
    format!(
        "rvs_l7_server {vip} {HTTP_PORT} {{
    rule {{
        host {API_HOST}
        pool api
    }}
    default_pool web
    pool web {{
        lb_algo rr
        forward_for x_forwarded_for
        real_server {rs1} {RS_PORT}
        real_server {rs2} {RS_PORT}
    }}
    pool api {{
        lb_algo rr
        forward_for x_forwarded_for
        real_server {rs3} {RS_PORT}
    }}
}}
",
        rs1 = rs[0],
        rs2 = rs[1],
        rs3 = rs[2]
    )
}

fn haproxy_conf(vip: Ipv4Addr, rs: &[Ipv4Addr], threads: usize) -> String {
    format!(
        "global\n  maxconn 9000\n  nbthread {threads}\n\
         defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n  \
         timeout http-keep-alive 60s\n  option http-keep-alive\n  http-reuse safe\n\
         frontend l7\n  bind {vip}:{HTTP_PORT}\n  option forwardfor\n  \
         acl is_api hdr(host) -i {API_HOST}\n  use_backend api if is_api\n  default_backend web\n\
         backend web\n  balance roundrobin\n  server rs1 {}:{RS_PORT}\n  server rs2 {}:{RS_PORT}\n\
         backend api\n  balance roundrobin\n  server rs3 {}:{RS_PORT}\n",
        rs[0], rs[1], rs[2]
    )
}

fn nginx_http(vip: Ipv4Addr, rs: &[Ipv4Addr]) -> String {
    format!(
        "map $host $pool {{ {API_HOST} api; default web; }}\n\
         upstream web {{ server {}:{RS_PORT}; server {}:{RS_PORT}; keepalive 64; keepalive_requests 10000000; }}\n\
         upstream api {{ server {}:{RS_PORT}; keepalive 64; keepalive_requests 10000000; }}\n\
         server {{\n\
           listen {vip}:{HTTP_PORT} reuseport backlog=4096;\n\
           location / {{\n\
             proxy_pass http://$pool;\n\
             proxy_http_version 1.1;\n\
             proxy_set_header Connection \"\";\n\
             proxy_set_header Host $host;\n\
             proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
           }}\n\
         }}",
        rs[0], rs[1], rs[2]
    )
}

/// wrk's script: the two hosts in turn, request by request.
const SCRIPT: &str = "local n = 0\n\
request = function()\n\
  n = n + 1\n\
  if n % 2 == 0 then wrk.headers[\"Host\"] = \"api.example.com\" else wrk.headers[\"Host\"] = \"www.example.com\" end\n\
  return wrk.format()\n\
end\n";

/// One request with `host` from `ns` through `vip`: (body, X-Seen-XFF header).
fn get(ns: &Netns, vip: Ipv4Addr, host: &str) -> Result<(String, String)> {
    let addr = SocketAddr::from((vip, HTTP_PORT));
    let out = ns.enter(|| -> Result<String> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })??;
    let (head, body) = out
        .split_once("\r\n\r\n")
        .with_context(|| format!("odd answer {out:?}"))?;
    ensure!(head.contains(" 200 "), "answer {out:?}");
    let xff = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("x-seen-xff")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    Ok((body.to_owned(), xff))
}

/// Checks that `proxy` routes by host, round robin in pool web, and adds X-Forwarded-For.
fn check_routing(c: &DrCluster) -> Result<()> {
    let client = c.client().netns();
    let vip = c.vip();
    let names: Vec<&str> = c.real_servers().iter().map(Host::name).collect();
    // The proxy may need a moment after it listens (rvsd's checkers, connections to pools).
    let mut tries = 0;
    while let Err(e) = get(client, vip, API_HOST) {
        tries += 1;
        if tries >= 30 {
            return Err(e.context("no answer through the proxy"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut web_seen = HashMap::new();
    for i in 0..6 {
        let host = if i % 2 == 0 { API_HOST } else { WEB_HOST };
        let (b, xff) = get(client, vip, host)?;
        let from = names
            .iter()
            .find(|n| b.starts_with(&format!("{n} ")))
            .with_context(|| format!("answer body {b:?} from no real server"))?;
        ensure!(
            xff.contains(&c.client().ip().to_string()),
            "{host}: X-Forwarded-For {xff:?} lacks the client {}",
            c.client().ip()
        );
        if host == API_HOST {
            ensure!(
                *from == names[2],
                "{API_HOST} answered by {from}, not {}",
                names[2]
            );
        } else {
            ensure!(
                *from != names[2],
                "{WEB_HOST} answered by {from} (pool api)"
            );
            *web_seen.entry(*from).or_insert(0) += 1;
        }
    }
    ensure!(
        web_seen.len() == 2,
        "pool web answered only from {web_seen:?} over 3 requests"
    );
    Ok(())
}

/// Every pid of `root` and its descendants.
fn tree(root: u32) -> Vec<u32> {
    let mut parent: Vec<(u32, u32)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            if let Some(ppid) = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1))
                .and_then(|p| p.parse().ok())
            {
                parent.push((pid, ppid));
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parent.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

fn tree_cpu(pids: &[u32]) -> Duration {
    pids.iter().filter_map(|&p| process_cpu(p).ok()).sum()
}

/// wrk through the proxy whose processes are `root`'s tree, both modes.
fn measure(plan: &Plan, c: &DrCluster, root: u32, script: &Path) -> Result<(Mode, Mode)> {
    check_routing(c)?;
    let pids = tree(root);
    let (mut keep, mut close) = (Mode::default(), Mode::default());
    for _ in 0..plan.tcp_reps {
        for (m, is_close) in [(&mut keep, false), (&mut close, true)] {
            let before = tree_cpu(&pids);
            let (w, out) = tools::wrk_with(
                c.client().netns(),
                c.vip(),
                plan.tcp_secs,
                CONNS,
                is_close,
                Some(script),
            )?;
            let cpu = tree_cpu(&pids).saturating_sub(before);
            let requests = w.rps * f64::from(plan.tcp_secs);
            m.rps.push(w.rps);
            m.p50_us.push(w.p50_us);
            m.p99_us.push(w.p99_us);
            if requests > 0.0 {
                m.cpu_us.push(cpu.as_secs_f64() * 1e6 / requests);
            }
            if w.errors > 0 {
                m.errors += w.errors;
                m.error_sample.get_or_insert(out);
            }
        }
    }
    Ok((keep, close))
}

fn show(p: Proxy, r: &Result<(Mode, Mode), String>) {
    match r {
        Ok((k, c)) => crate::progress(&format!(
            "  {:<8} keep-alive {:>8.0} req/s p99 {:>6.0} us {:>5.1} us CPU/req ({} errors); \
             close {:>7.0} req/s p99 {:>6.0} us {:>5.1} us CPU/req ({} errors)",
            p.name(),
            k.rps.median().unwrap_or(0.0),
            k.p99_us.median().unwrap_or(0.0),
            k.cpu_us.median().unwrap_or(0.0),
            k.errors,
            c.rps.median().unwrap_or(0.0),
            c.p99_us.median().unwrap_or(0.0),
            c.cpu_us.median().unwrap_or(0.0),
            c.errors,
        )),
        Err(e) => crate::progress(&format!("  {:<8} failed: {e}", p.name())),
    }
}

pub fn run(plan: &Plan, bins: &Bins, dir: &Path) -> Result<Vec<L7Row>> {
    crate::progress("layer-7 dispatch (client, director, 3 real servers on one LAN)");
    let c = DrCluster::builder().real_servers(3).build()?;
    let client = c.client().netns();
    client.sysctl(&[
        "net.ipv4.ip_local_port_range=1024 65535",
        "net.ipv4.tcp_tw_reuse=1",
    ])?;
    let d = c.director().netns();
    d.sysctl(&[
        "net.core.somaxconn=4096",
        "net.ipv4.tcp_max_syn_backlog=4096",
        "net.ipv4.ip_local_port_range=1024 65535",
        "net.ipv4.tcp_tw_reuse=1",
    ])?;
    let _servers = start_servers(c.real_servers(), dir)?;
    let rs: Vec<Ipv4Addr> = c.real_servers().iter().map(Host::ip).collect();
    let vip = c.vip();
    let script = dir.join("l7-hosts.lua");
    std::fs::write(&script, SCRIPT)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rows = Vec::new();
    for p in Proxy::ALL {
        let r = (|| -> Result<(Mode, Mode)> {
            match p {
                Proxy::Rvs => {
                    let conf = dir.join("l7-keepalived.conf");
                    std::fs::write(&conf, rvs_conf(vip, &rs))?;
                    let conf = conf.to_string_lossy().into_owned();
                    let rvsd = Rvsd::start_with(d, bins, &["eth0"], 1 << 16, &["-f", &conf])?;
                    tools::wait_listening(d, HTTP_PORT, "rvsd's L7 listener")
                        .with_context(|| format!("rvsd log:\n{}", rvsd.log()))?;
                    let pid = rvsd.pid().context("rvsd's pid")?;
                    let m = measure(plan, &c, pid, Path::new(&script));
                    let log = rvsd.log();
                    let bad: Vec<&str> = log
                        .lines()
                        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                        .take(20)
                        .collect();
                    if !bad.is_empty() {
                        crate::progress(&format!("  rvsd warnings:\n{}", bad.join("\n")));
                    }
                    m.with_context(|| format!("rvsd log (end):\n{}", tail(&log, 30)))
                }
                Proxy::Haproxy => {
                    let conf = dir.join("l7-haproxy.cfg");
                    std::fs::write(&conf, haproxy_conf(vip, &rs, threads))?;
                    let mut cmd = std::process::Command::new("haproxy");
                    cmd.arg("-db").arg("-f").arg(&conf);
                    let h = rvs_testbed::spawn_in(d, &mut cmd, dir.join("l7-haproxy.log"))?;
                    let log = dir.join("l7-haproxy.log");
                    tools::wait_listening(d, HTTP_PORT, "haproxy").with_context(|| {
                        format!(
                            "haproxy's output: {}",
                            std::fs::read_to_string(&log).unwrap_or_default()
                        )
                    })?;
                    measure(plan, &c, h.pid(), &script)
                }
                Proxy::Nginx => {
                    let n = tools::start_nginx_http(
                        d,
                        "l7-proxy",
                        dir,
                        threads,
                        HTTP_PORT,
                        &nginx_http(vip, &rs),
                    )?;
                    measure(plan, &c, n.pid(), &script)
                }
            }
        })()
        .map_err(|e| format!("{e:#}"));
        show(p, &r);
        rows.push(L7Row {
            proxy: p,
            result: r,
        });
        // The proxy is gone; its port must be free for the next one.
        let _ = rvs_testbed::poll_until(Duration::from_secs(10), "port 80 free", || {
            let out = d.exec(&["ss", "-Hltn", "sport = :80"])?;
            Ok(out.trim().is_empty().then_some(()))
        });
    }
    Ok(rows)
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn failures(rows: &[L7Row]) -> Vec<String> {
    let mut v = Vec::new();
    for r in rows {
        match &r.result {
            Err(e) => v.push(format!("l7, {}: {e}", r.proxy.name())),
            Ok((k, c)) => {
                for (what, m) in [("keep-alive", k), ("connection close", c)] {
                    if m.errors > 0 {
                        v.push(format!(
                            "l7, {} {what}: wrk counted {} errors or non-2xx answers:\n{}",
                            r.proxy.name(),
                            m.errors,
                            m.error_sample.as_deref().unwrap_or("")
                        ));
                    }
                }
            }
        }
    }
    v
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".into(),
    }
}

pub fn render(r: &Result<Vec<L7Row>, String>) -> String {
    let mut s = String::from("## Layer-7 dispatch (HTTP routed by Host: rvs, HAProxy, nginx)\n\n");
    s.push_str(
        "`sudo ./scripts/bench --only l7`. The same job for each proxy, in turn on the same \
         director namespace (DR cluster's LAN: client, director, 3 real servers): requests with \
         `Host: api.example.com` to pool api (1 real server), every other host to pool web (2), \
         round robin in a pool, X-Forwarded-For added, kept-alive connections to the real \
         servers (rvsd: `rvs_l7_server` in keepalived.conf, `rvsd -f`; HAProxy: `mode http`, \
         acl on `hdr(host)`, `option forwardfor`, `http-reuse safe`; nginx: `map $host`, \
         upstreams with `keepalive 64`, `proxy_http_version 1.1`). Before measuring, the harness \
         checks each proxy's routing, round robin and X-Forwarded-For with real requests. Real \
         servers: nginx on port 8080 answering a 64-byte body. wrk from the client, 32 \
         connections, its Lua script alternating the two hosts request by request. \
         *Keep-alive*: kept-alive client connections; *close*: `Connection: close`, a new \
         client connection per request. *CPU/req*: the proxy's processes' CPU time (user + \
         system, from /proc/PID/stat, children included) over the run divided by the requests \
         wrk counted; softirq work the kernel accounts elsewhere is not in it. No CPU pinning: \
         wrk, the proxy and the real servers share the machine's CPUs.\n\n",
    );
    let rows = match r {
        Ok(rows) => rows,
        Err(e) => {
            let _ = writeln!(s, "The part failed: {e}\n");
            return s;
        }
    };
    s.push_str(
        "| proxy | keep-alive req/s | × HAProxy | p50 | p99 | CPU/req | close req/s | × HAProxy | p50 | p99 | CPU/req |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let med = |p: Proxy, close: bool, f: fn(&Mode) -> &Sample| {
        rows.iter()
            .find(|r| r.proxy == p)
            .and_then(|r| r.result.as_ref().ok())
            .and_then(|(k, c)| f(if close { c } else { k }).median())
    };
    let cpu = |v: f64| format!("{v:.1} µs");
    for r in rows {
        match &r.result {
            Err(_) => {
                let _ = writeln!(
                    s,
                    "| {} | {MISSING} | — | {MISSING} | {MISSING} | {MISSING} | {MISSING} | — | {MISSING} | {MISSING} | {MISSING} |",
                    r.proxy.name()
                );
            }
            Ok((k, c)) => {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    r.proxy.name(),
                    cell(&k.rps, kilo),
                    ratio(k.rps.median(), med(Proxy::Haproxy, false, |m| &m.rps)),
                    range_cell(&k.p50_us, us),
                    range_cell(&k.p99_us, us),
                    cell(&k.cpu_us, cpu),
                    cell(&c.rps, kilo),
                    ratio(c.rps.median(), med(Proxy::Haproxy, true, |m| &m.rps)),
                    range_cell(&c.p50_us, us),
                    range_cell(&c.p99_us, us),
                    cell(&c.cpu_us, cpu),
                );
            }
        }
    }
    s.push('\n');
    let errors: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let (k, c) = r.result.as_ref().ok()?;
            (k.errors + c.errors > 0).then(|| {
                format!(
                    "{} {} (keep-alive) + {} (close)",
                    r.proxy.name(),
                    k.errors,
                    c.errors
                )
            })
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(
            s,
            "wrk reported socket errors or non-2xx answers: {}.\n",
            errors.join(", ")
        );
    }
    for r in rows {
        if let Err(e) = &r.result {
            let _ = writeln!(
                s,
                "{} failed: {}\n",
                r.proxy.name(),
                e.lines().next().unwrap_or("")
            );
        }
    }
    // What the table says, rvs against HAProxy, worked out from the figures above.
    let mut said = Vec::new();
    for (close, what) in [(false, "keep-alive"), (true, "a connection per request")] {
        let (Some(a), Some(b)) = (
            med(Proxy::Rvs, close, |m| &m.rps),
            med(Proxy::Haproxy, close, |m| &m.rps),
        ) else {
            continue;
        };
        let (pa, pb) = (
            med(Proxy::Rvs, close, |m| &m.p99_us),
            med(Proxy::Haproxy, close, |m| &m.p99_us),
        );
        let p99 = match (pa, pb) {
            (Some(pa), Some(pb)) => format!(
                "p99 {} against {} ({})",
                us(pa),
                us(pb),
                if pa <= pb {
                    "rvs lower or equal"
                } else {
                    "rvs higher"
                }
            ),
            _ => "no p99 to compare".into(),
        };
        said.push(format!(
            "with {what}, rvs does {:.2}× HAProxy's requests per second ({}), {p99}",
            a / b,
            if a >= b { "ahead" } else { "behind" }
        ));
    }
    if !said.is_empty() {
        let _ = writeln!(s, "In this run, {}.\n", said.join("; "));
    }
    s
}
