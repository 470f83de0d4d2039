//! The monitor (issue 13): what rvsd's web console and `/metrics` cost. rvsd runs with `--web`
//! and a users file on the packet line's director (no traffic), an HTTPS client in the client's
//! namespace trusts exactly the certificate rvsd made:
//!
//! - rvsd's CPU (utime + stime from /proc/PID/stat over a fixed window) with one service of 1000
//!   real servers: idle, with the console's live feed (SSE, one page of 50 real servers, as the
//!   console asks) open by a logged-in client, and with `/metrics` scraped every second (basic
//!   auth, as Prometheus is configured, on one kept-alive connection);
//! - the time to answer `/metrics` for 100 services × 10 real servers on a kept-alive connection
//!   (so no handshake in it), with an API token and with basic auth (which verifies an argon2id
//!   hash each time), median and worst of N scrapes, and its size.

use std::{
    fmt::Write as _,
    net::{IpAddr, SocketAddr},
    path::Path,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};

use crate::{
    Plan,
    https::{self, Https},
    line::{DIRECTOR_IP, Line, VIP},
    progress,
    rvs::{self, Bins, Rvsd},
};

const WEB_PORT: u16 = 8443;
const USER: &str = "bench";
const PASSWORD: &str = "bench's secret";
/// Real servers of the CPU figures.
pub const CPU_SERVERS: usize = 1000;
/// Services and real servers each of the render figure.
pub const RENDER_SERVICES: usize = 100;
pub const RENDER_EACH: usize = 10;
/// The console's page of real servers.
const PAGE: usize = 50;

/// rvsd's CPU over one window, as a share of one CPU.
#[derive(Clone, Debug)]
pub struct CpuFigure {
    pub share: f64,
    pub secs: f64,
    /// Feed events or scrapes during the window.
    pub count: usize,
    /// Bytes the client received during the window.
    pub bytes: usize,
}

/// Answers to `/metrics`, timed on the client from the request to the last byte.
#[derive(Clone, Debug)]
pub struct RenderFigure {
    pub scrapes: usize,
    pub median: Duration,
    pub worst: Duration,
    pub bytes: usize,
}

#[derive(Clone, Debug)]
pub struct MonitorReport {
    pub window: Duration,
    pub idle: Result<CpuFigure, String>,
    pub feed: Result<CpuFigure, String>,
    pub scraped: Result<CpuFigure, String>,
    pub token: Result<RenderFigure, String>,
    pub basic: Result<RenderFigure, String>,
}

fn window(plan: &Plan) -> Duration {
    Duration::from_secs(match plan.mode {
        "smoke" => 2,
        "quick" => 10,
        _ => 20,
    })
}

fn scrapes(plan: &Plan) -> usize {
    match plan.mode {
        "smoke" => 5,
        "quick" => 20,
        _ => 50,
    }
}

pub fn run(plan: &Plan, bins: &Bins, dir: &Path) -> Result<MonitorReport> {
    progress("monitor: rvsd --web, its CPU and /metrics");
    let line = Line::build(1)?;
    let users = dir.join("web-users");
    let _ = std::fs::remove_file(&users);
    add_user(bins, &users)?;
    let listen = format!("{DIRECTOR_IP}:{WEB_PORT}");
    let rvsd = Rvsd::start_with(
        &line.director,
        bins,
        &["eth0"],
        1 << 16,
        &[
            "--web",
            &listen,
            "--web-users",
            users.to_str().context("temporary path")?,
        ],
    )?;
    let pid = rvsd.pid().context("rvsd's pid")?;
    let https = wait_for_web(&rvsd, &line)?;
    let err = |what: &str, e: anyhow::Error| {
        let msg = format!("{e:#}");
        progress(&format!("  FAILED {what}: {msg}"));
        msg
    };

    // One service of 1000 real servers.
    let mut rules = format!("-A -t {VIP}:80 -s wrr\n");
    for i in 0..CPU_SERVERS {
        let _ = writeln!(
            rules,
            "-a -t {VIP}:80 -r {}:80 -g -w 1",
            Line::real_server(i)
        );
    }
    rvsd.configure(&rules)?;
    let mut c = https.connect(&line.client)?;
    let login = c.request(
        "POST",
        "/api/v1/login",
        &[],
        &serde_json::json!({"username": USER, "password": PASSWORD}).to_string(),
    )?;
    ensure!(
        login.status == 200,
        "login: {} {}",
        login.status,
        login.text()
    );
    let cookie = login
        .header("set-cookie")
        .and_then(|s| s.split(';').next())
        .context("no session cookie")?
        .to_owned();
    let v: serde_json::Value = serde_json::from_slice(&login.body)?;
    let csrf = v["csrf_token"]
        .as_str()
        .context("no CSRF token")?
        .to_owned();
    // Let the login's argon2id and the new configuration settle.
    std::thread::sleep(Duration::from_secs(if plan.mode == "smoke" {
        1
    } else {
        5
    }));

    let w = window(plan);
    let idle = cpu_window(pid, w, || Ok((0, 0))).map_err(|e| err("idle CPU", e));
    show("idle", &idle);
    let feed_path = format!("/api/v1/events?service=tcp:{VIP}:80&offset=0&limit={PAGE}");
    let feed = feed_window(&https, &line, pid, w, &feed_path, &cookie)
        .map_err(|e| err("CPU with the feed", e));
    show("feed open", &feed);
    let scraped = scrape_window(&https, &line, pid, w).map_err(|e| err("CPU with scrapes", e));
    show("scraped", &scraped);

    // 100 services of 10 real servers.
    let mut rules = String::new();
    for s in 0..RENDER_SERVICES {
        let port = 1000 + s;
        let _ = writeln!(rules, "-A -t {VIP}:{port} -s wrr");
        for j in 0..RENDER_EACH {
            let _ = writeln!(
                rules,
                "-a -t {VIP}:{port} -r {}:{port} -g -w 1",
                Line::real_server(s * RENDER_EACH + j)
            );
        }
    }
    rvsd.configure(&rules)?;
    let n = scrapes(plan);
    let token = (|| {
        // A new connection: the login's has been idle long enough for rvsd to close it.
        let r = https.connect(&line.client)?.request(
            "POST",
            "/api/v1/tokens",
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
            r#"{"name":"bench","role":"viewer"}"#,
        )?;
        ensure!(
            r.status == 201,
            "creating a token: {} {}",
            r.status,
            r.text()
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body)?;
        let t = v["token"].as_str().context("no token")?;
        render(&https, &line, n, &format!("Bearer {t}"))
    })()
    .map_err(|e| err("/metrics with a token", e));
    show_render("token", &token);
    let basic = render(&https, &line, n, &https::basic(USER, PASSWORD))
        .map_err(|e| err("/metrics with basic auth", e));
    show_render("basic auth", &basic);
    drop(rvsd);
    let _ = std::fs::remove_file(&users);
    Ok(MonitorReport {
        window: w,
        idle,
        feed,
        scraped,
        token,
        basic,
    })
}

fn show(what: &str, f: &Result<CpuFigure, String>) {
    if let Ok(f) = f {
        progress(&format!(
            "  rvsd CPU, {what:<10} {:>5.2}% of a CPU over {:.1} s ({} events/scrapes)",
            f.share * 100.0,
            f.secs,
            f.count
        ));
    }
}

fn show_render(what: &str, f: &Result<RenderFigure, String>) {
    if let Ok(f) = f {
        progress(&format!(
            "  /metrics 100 x 10, {what:<10} median {:.2} ms, worst {:.2} ms, {} bytes",
            f.median.as_secs_f64() * 1e3,
            f.worst.as_secs_f64() * 1e3,
            f.bytes
        ));
    }
}

/// `rvsd --add-web-user FILE bench admin`, the password on standard input.
fn add_user(bins: &Bins, file: &Path) -> Result<()> {
    use std::io::Write;
    let mut c = Command::new(&bins.rvsd)
        .arg("--add-web-user")
        .arg(file)
        .args([USER, "admin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting rvsd --add-web-user")?;
    writeln!(c.stdin.take().context("stdin")?, "{PASSWORD}")?;
    let out = c.wait_with_output()?;
    ensure!(
        out.status.success(),
        "rvsd --add-web-user: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Waits (up to 30 s) for rvsd's certificate and for its monitor to answer.
fn wait_for_web(rvsd: &Rvsd, line: &Line) -> Result<Https> {
    let cert = rvsd.dir().join("web-cert.pem");
    let addr = SocketAddr::new(IpAddr::V4(DIRECTOR_IP), WEB_PORT);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(pem) = std::fs::read(&cert) {
            let h = Https::new(&pem, addr)?;
            match h
                .connect(&line.client)
                .and_then(|mut c| c.request("GET", "/api/v1/session", &[], ""))
            {
                Ok(_) => return Ok(h),
                Err(e) => last = format!("{e:#}"),
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!(
        "the monitor did not answer within 30 s ({last})\nrvsd log:\n{}",
        rvsd.log()
    )
}

/// rvsd's CPU over `w` while `during` runs on this thread (it returns when the window is over:
/// its count and bytes). Other work goes on other threads, started before.
fn cpu_window(
    pid: u32,
    w: Duration,
    during: impl FnOnce() -> Result<(usize, usize)>,
) -> Result<CpuFigure> {
    let t0 = rvs::process_cpu(pid)?;
    let start = Instant::now();
    std::thread::sleep(w);
    let used = rvs::process_cpu(pid)? - t0;
    let secs = start.elapsed().as_secs_f64();
    let (count, bytes) = during()?;
    Ok(CpuFigure {
        share: used.as_secs_f64() / secs,
        secs,
        count,
        bytes,
    })
}

/// The console's feed held open by a logged-in client while the window runs.
fn feed_window(
    https: &Https,
    line: &Line,
    pid: u32,
    w: Duration,
    path: &str,
    cookie: &str,
) -> Result<CpuFigure> {
    let mut c = https.connect(&line.client)?;
    let (status, headers) = c.open_stream(path, &[("cookie", cookie)])?;
    ensure!(status == 200, "the feed: status {status}");
    ensure!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("text/event-stream")),
        "the feed is not an event stream: {headers:?}"
    );
    // Its first event, before the window opens.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !contains(&seen, b"data:") {
        ensure!(Instant::now() < deadline, "no event within 10 s");
        let b = c.read_some()?;
        ensure!(!b.is_empty(), "the feed ended");
        seen.extend(b);
    }
    let closer = c.closer()?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    // Counts `data:` lines (an event each) and bytes until the connection is closed.
    let reader = std::thread::spawn(move || -> Result<(usize, usize)> {
        let (mut events, mut bytes) = (0usize, 0usize);
        let mut tail: Vec<u8> = Vec::new();
        while !stop2.load(Ordering::Relaxed) {
            let b = match c.read_some() {
                Ok(b) if !b.is_empty() => b,
                Ok(_) => break,
                Err(_) if stop2.load(Ordering::Relaxed) => break,
                Err(e) => return Err(e),
            };
            bytes += b.len();
            tail.extend_from_slice(&b);
            events += count(&tail, b"data:");
            let keep = tail.len().min(4);
            tail.drain(..tail.len() - keep);
        }
        Ok((events, bytes))
    });
    let f = cpu_window(pid, w, || {
        stop.store(true, Ordering::Relaxed);
        closer.close();
        reader
            .join()
            .map_err(|_| anyhow::anyhow!("the feed reader panicked"))?
    })?;
    ensure!(f.count > 0, "no event during the window");
    Ok(f)
}

/// `/metrics` scraped every second with basic auth on one kept-alive connection while the
/// window runs.
fn scrape_window(https: &Https, line: &Line, pid: u32, w: Duration) -> Result<CpuFigure> {
    let mut c = https.connect(&line.client)?;
    let auth = https::basic(USER, PASSWORD);
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let scraper = std::thread::spawn(move || -> Result<(usize, usize)> {
        let (mut n, mut bytes) = (0usize, 0usize);
        let start = Instant::now();
        // Bounded by the window (a scrape a second) and by a stop flag.
        for i in 0..10_000u32 {
            if stop2.load(Ordering::Relaxed) {
                break;
            }
            let r = c.request("GET", "/metrics", &[("authorization", &auth)], "")?;
            ensure!(r.status == 200, "/metrics: {} {}", r.status, r.text());
            n += 1;
            bytes += r.body.len();
            let next = start + Duration::from_secs(u64::from(i) + 1);
            while Instant::now() < next && !stop2.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok((n, bytes))
    });
    cpu_window(pid, w, || {
        stop.store(true, Ordering::Relaxed);
        scraper
            .join()
            .map_err(|_| anyhow::anyhow!("the scraper panicked"))?
    })
}

/// `n` scrapes of `/metrics` with `auth` on one connection (after one untimed).
fn render(https: &Https, line: &Line, n: usize, auth: &str) -> Result<RenderFigure> {
    let mut c = https.connect(&line.client)?;
    let mut times = Vec::with_capacity(n);
    let mut bytes = 0;
    for i in 0..=n {
        let start = Instant::now();
        let r = c.request("GET", "/metrics", &[("authorization", auth)], "")?;
        let took = start.elapsed();
        ensure!(r.status == 200, "/metrics: {} {}", r.status, r.text());
        let weights = r
            .text()
            .lines()
            .filter(|l| l.starts_with("node_ipvs_backend_weight{"))
            .count();
        ensure!(
            weights == RENDER_SERVICES * RENDER_EACH,
            "/metrics lists {weights} real servers"
        );
        bytes = r.body.len();
        if i > 0 {
            times.push(took);
        }
    }
    times.sort();
    Ok(RenderFigure {
        scrapes: n,
        median: times[times.len() / 2],
        worst: *times.last().context("no scrape")?,
        bytes,
    })
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    count(hay, needle) > 0
}
