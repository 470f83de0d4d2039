//! The outside programs of the TCP measurements: nginx as the real HTTP servers, iperf3, HAProxy,
//! nftables, and wrk as the client; their configurations and what their output says.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use rvs_testbed::{Netns, NsProcess, poll_until, spawn_in};

/// The port of the HTTP service and of the real servers' nginx.
pub const HTTP_PORT: u16 = 80;
/// The port of the bulk-transfer service (iperf3), always on the first real server alone.
pub const BULK_PORT: u16 = 5201;

/// Programs the measurements need, with the Debian package of each.
pub const REQUIRED: &[(&str, &str)] = &[
    ("wrk", "wrk"),
    ("iperf3", "iperf3"),
    ("nginx", "nginx-light"),
    ("haproxy", "haproxy"),
    ("nft", "nftables"),
    ("ethtool", "ethtool"),
    ("ping", "iputils-ping"),
];

/// Fails with what to install if a program is missing.
pub fn check_installed() -> Result<()> {
    let missing: Vec<&str> = REQUIRED
        .iter()
        .filter(|(bin, _)| which(bin).is_none())
        .map(|(_, pkg)| *pkg)
        .collect();
    if !missing.is_empty() {
        bail!(
            "missing programs; run scripts/install-deps (apt-get install {})",
            missing.join(" ")
        );
    }
    Ok(())
}

pub fn which(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// Waits until something listens on TCP `port` in `ns`.
pub fn wait_listening(ns: &Netns, port: u16, what: &str) -> Result<()> {
    let filter = format!("sport = :{port}");
    poll_until(Duration::from_secs(10), what, || {
        let out = ns.exec(&["ss", "-Hltn", &filter])?;
        Ok((!out.trim().is_empty()).then_some(()))
    })
}

/// nginx answering every request with a short body, its own name (`worker_processes` workers).
pub fn start_nginx(ns: &Netns, name: &str, dir: &Path, workers: usize) -> Result<NsProcess> {
    start_nginx_with(
        ns,
        name,
        dir,
        workers,
        HTTP_PORT,
        &format!("location / {{ return 200 \"{name}\\n\"; }}"),
    )
}

/// nginx on `port` with `server_body` inside its one `server` block (after `listen`).
pub fn start_nginx_with(
    ns: &Netns,
    name: &str,
    dir: &Path,
    workers: usize,
    port: u16,
    server_body: &str,
) -> Result<NsProcess> {
    start_nginx_http(
        ns,
        name,
        dir,
        workers,
        port,
        &format!(
            "server {{\n\
               listen {port} reuseport backlog=4096;\n\
               {server_body}\n\
             }}\n"
        ),
    )
}

/// nginx with `http` (the inside of its `http` block besides logging and keep-alive), waited
/// for on `port`.
pub fn start_nginx_http(
    ns: &Netns,
    name: &str,
    dir: &Path,
    workers: usize,
    port: u16,
    http: &str,
) -> Result<NsProcess> {
    let conf = dir.join(format!("nginx-{name}.conf"));
    let text = format!(
        "worker_processes {workers};\n\
         daemon off;\n\
         pid {dir}/nginx-{name}.pid;\n\
         error_log {dir}/nginx-{name}.err warn;\n\
         events {{ worker_connections 8192; }}\n\
         http {{\n\
           access_log off;\n\
           keepalive_requests 10000000;\n\
           keepalive_timeout 60s;\n\
           {http}\n\
         }}\n",
        dir = dir.display()
    );
    std::fs::write(&conf, text)?;
    let mut cmd = Command::new("nginx");
    cmd.arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.join(format!("nginx-{name}.err")));
    let p = spawn_in(ns, &mut cmd, dir.join(format!("nginx-{name}.log")))?;
    wait_listening(ns, port, &format!("nginx on {name}")).inspect_err(|_| {
        eprintln!(
            "{}",
            std::fs::read_to_string(dir.join(format!("nginx-{name}.err"))).unwrap_or_default()
        );
    })?;
    Ok(p)
}

/// An iperf3 server on `BULK_PORT`.
pub fn start_iperf3(ns: &Netns, name: &str, dir: &Path) -> Result<NsProcess> {
    let mut cmd = Command::new("iperf3");
    cmd.args(["-s", "-p", &BULK_PORT.to_string()]);
    let p = spawn_in(ns, &mut cmd, dir.join(format!("iperf3-{name}.log")))?;
    wait_listening(ns, BULK_PORT, &format!("iperf3 on {name}"))?;
    Ok(p)
}

/// HAProxy in TCP mode on `vip`: HTTP round robin over `servers`, bulk to the first alone.
pub fn start_haproxy(
    ns: &Netns,
    vip: Ipv4Addr,
    servers: &[Ipv4Addr],
    dir: &Path,
) -> Result<NsProcess> {
    let mut text = format!(
        "global\n  maxconn 9000\n  nbthread {threads}\n\
         defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
         frontend web\n  bind {vip}:{HTTP_PORT}\n  default_backend web\n\
         backend web\n  balance roundrobin\n",
        threads = std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for (i, s) in servers.iter().enumerate() {
        text += &format!("  server rs{i} {s}:{HTTP_PORT}\n");
    }
    text += &format!(
        "frontend bulk\n  bind {vip}:{BULK_PORT}\n  default_backend bulk\n\
         backend bulk\n  server rs0 {}:{BULK_PORT}\n",
        servers[0]
    );
    let conf = dir.join("haproxy.cfg");
    std::fs::write(&conf, text)?;
    let mut cmd = Command::new("haproxy");
    cmd.arg("-db").arg("-f").arg(&conf);
    let p = spawn_in(ns, &mut cmd, dir.join("haproxy.log"))?;
    wait_listening(ns, HTTP_PORT, "haproxy")?;
    Ok(p)
}

/// nftables' load balancing in `ns`: DNAT of `vip` with `numgen inc` over `servers` (TCP
/// HTTP_PORT and UDP `udp_port`), bulk to the first server; conntrack does the rest.
pub fn nft_balance(
    ns: &Netns,
    vip: Ipv4Addr,
    servers: &[Ipv4Addr],
    udp_port: u16,
    dir: &Path,
) -> Result<()> {
    let map: Vec<String> = servers
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{i} : {s}"))
        .collect();
    let map = map.join(", ");
    let n = servers.len();
    let text = format!(
        "table ip rvsbench {{\n\
           chain pre {{\n\
             type nat hook prerouting priority dstnat; policy accept;\n\
             ip daddr {vip} tcp dport {HTTP_PORT} dnat to numgen inc mod {n} map {{ {map} }}\n\
             ip daddr {vip} udp dport {udp_port} dnat to numgen inc mod {n} map {{ {map} }}\n\
             ip daddr {vip} tcp dport {BULK_PORT} dnat to {first}\n\
           }}\n\
         }}\n",
        first = servers[0]
    );
    let file = dir.join(format!("nft-{}.conf", ns.name()));
    std::fs::write(&file, text)?;
    ns.exec(&["nft", "-f", &file.to_string_lossy()])
        .context("loading the nftables ruleset")
        .map(drop)
}

/// Removes the ruleset of [`nft_balance`].
pub fn nft_clear(ns: &Netns) -> Result<()> {
    ns.exec(&["nft", "delete", "table", "ip", "rvsbench"])
        .map(drop)
}

/// What wrk reports.
#[derive(Clone, Copy, Debug)]
pub struct Wrk {
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub errors: u64,
}

/// wrk from `ns` to `http://ip/` for `secs` seconds with `conns` connections; `close` sends
/// `Connection: close`, so every request is a new TCP connection.
pub fn wrk(ns: &Netns, ip: Ipv4Addr, secs: u32, conns: u32, close: bool) -> Result<Wrk> {
    wrk_with(ns, ip, secs, conns, close, None).map(|(w, _)| w)
}

/// As [`wrk`], with a Lua `script` (`wrk -s`) if given.
pub fn wrk_with(
    ns: &Netns,
    ip: Ipv4Addr,
    secs: u32,
    conns: u32,
    close: bool,
    script: Option<&Path>,
) -> Result<(Wrk, String)> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(conns as usize);
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t",
        &threads.to_string(),
        "-c",
        &conns.to_string(),
        "-d",
        &format!("{secs}s"),
        "--timeout",
        "2s",
        "--latency",
    ]);
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    cmd.arg(format!("http://{ip}:{HTTP_PORT}/"));
    let out = ns.run(&mut cmd, Duration::from_secs(u64::from(secs) + 20))?;
    let w = parse_wrk(&out).with_context(|| format!("reading wrk's output:\n{out}"))?;
    if w.errors > 0 && std::env::var_os("RVS_BENCH_DEBUG").is_some() {
        eprintln!("{out}");
    }
    Ok((w, out))
}

fn parse_wrk(out: &str) -> Result<Wrk> {
    let mut rps = None;
    let (mut p50, mut p99) = (None, None);
    let mut errors = 0;
    for line in out.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["Requests/sec:", v, ..] => rps = v.parse().ok(),
            ["50%", v, ..] => p50 = duration_us(v),
            ["99%", v, ..] => p99 = duration_us(v),
            ["Socket", "errors:", rest @ ..] => {
                errors += rest
                    .iter()
                    .filter_map(|x| x.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>()
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => errors += n.parse().unwrap_or(0),
            _ => {}
        }
    }
    Ok(Wrk {
        rps: rps.context("no Requests/sec")?,
        p50_us: p50.context("no 50% latency")?,
        p99_us: p99.context("no 99% latency")?,
        errors,
    })
}

/// wrk's durations: `812.00us`, `1.55ms`, `2.01s`.
fn duration_us(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n,
        "ms" => n * 1e3,
        "s" => n * 1e6,
        "m" => n * 60e6,
        _ => return None,
    })
}

/// iperf3 from `ns` to `ip:BULK_PORT` for `secs` seconds (client to server); bits per second
/// received.
pub fn iperf3(ns: &Netns, ip: Ipv4Addr, secs: u32) -> Result<f64> {
    let mut last = None;
    // The server takes a moment to be ready for the next test after one ends.
    for _ in 0..3 {
        let mut cmd = Command::new("iperf3");
        cmd.args([
            "-c",
            &ip.to_string(),
            "-p",
            &BULK_PORT.to_string(),
            "-t",
            &secs.to_string(),
            "-J",
        ]);
        match ns.run(&mut cmd, Duration::from_secs(u64::from(secs) + 20)) {
            Ok(out) => return parse_iperf3(&out),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    Err(last.expect("tried").context("iperf3"))
}

fn parse_iperf3(out: &str) -> Result<f64> {
    let v: serde_json::Value = serde_json::from_str(out).context("iperf3's JSON")?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        bail!("iperf3: {e}");
    }
    v.pointer("/end/sum_received/bits_per_second")
        .and_then(|b| b.as_f64())
        .context("no end.sum_received.bits_per_second in iperf3's output")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk() {
        let out = "Running 2s test @ http://198.18.0.100:80/\n  2 threads and 32 connections\n\
            \x20 Thread Stats   Avg      Stdev     Max   +/- Stdev\n\
            \x20   Latency   386.17us  315.61us   9.62ms   93.53%\n\
            \x20 Latency Distribution\n     50%  319.00us\n     75%  416.00us\n     90%  574.00us\n\
            \x20    99%    1.55ms\n  170158 requests in 2.00s, 25.16MB read\n\
            \x20 Socket errors: connect 0, read 3, write 0, timeout 1\n\
            Requests/sec:  85037.02\nTransfer/sec:     12.57MB\n";
        let w = parse_wrk(out).unwrap();
        assert_eq!(w.rps, 85037.02);
        assert_eq!(w.p50_us, 319.0);
        assert_eq!(w.p99_us, 1550.0);
        assert_eq!(w.errors, 4);
    }

    #[test]
    fn reads_iperf3() {
        let out = r#"{"end":{"sum_received":{"bits_per_second":1.5e10}}}"#;
        assert_eq!(parse_iperf3(out).unwrap(), 1.5e10);
        assert!(parse_iperf3(r#"{"error":"busy"}"#).is_err());
    }
}
