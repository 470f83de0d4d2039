//! Long-lived streams through a virtual IP, for failover tests: many TCP connections echoing a
//! checked pattern both ways, and UDP flows, reporting exactly which ones were reset, cut,
//! corrupted, stalled or moved to another server.
//!
//! ```text
//! rvs-stream serve --port P [--udp-port Q] [--name NAME] [--bind ADDR] [--idle-ms MS]
//! rvs-stream client --addr ADDR --port P --conns N [--udp-port Q --udp-flows M]
//!     [--interval-ms 20] [--chunk 512] [--stall-ms 5000] [--drain-ms MS]
//!     [--connect-timeout-ms 2000] [--connect-retries 3] [--batch 10] [--seed S]
//!     [--udp-max-lost K] [--source ADDR] (--until FILE | --seconds S | both)
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
//!
//! The logic is the library's [`rvs_testbed::stream`], which tests also run in-process.

use std::{
    collections::BTreeMap,
    io::Write,
    net::{IpAddr, Ipv6Addr},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Result, anyhow, bail};
use rvs_testbed::stream::{ClientConfig, Live, MAX_NAME, ServeConfig, StreamServer, run_client};

/// Set by SIGTERM and SIGINT in the client.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("serve") => match parse_serve(&args[1..]).and_then(|c| serve(&c)) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("rvs-stream: {e:#}");
                1
            }
        },
        Some("client") => match parse_client(&args[1..]) {
            Ok((config, stop)) => match client(&config, &stop) {
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
                 [--source ADDR] (--until FILE | --seconds S)"
            );
            2
        }
    };
    std::process::exit(code);
}

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

fn parse_serve(args: &[String]) -> Result<ServeConfig> {
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
    Ok(ServeConfig {
        bind: a.or("bind", IpAddr::V6(Ipv6Addr::UNSPECIFIED))?,
        port: a.need("port")?,
        udp_port: a.get("udp-port")?,
        name,
        idle: Duration::from_millis(a.or("idle-ms", 600_000)?),
    })
}

fn serve(config: &ServeConfig) -> Result<()> {
    let server = StreamServer::start(config)?;
    let mut what = format!("tcp {}", server.local_addr());
    if let Some(udp) = server.udp_addr() {
        what.push_str(&format!(" udp {udp}"));
    }
    eprintln!("rvs-stream: {} serving {what}", config.name);
    server.run_forever()
}

/// When the client stops: FILE exists, or S seconds after streaming began.
struct StopWhen {
    until: Option<PathBuf>,
    seconds: Option<f64>,
}

fn parse_client(args: &[String]) -> Result<(ClientConfig, StopWhen)> {
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
            "source",
            "until",
            "seconds",
        ],
    )?;
    let mut config = ClientConfig::new(a.need("addr")?, a.need("port")?, a.need("conns")?);
    config.udp_port = a.get("udp-port")?;
    config.udp_flows = a.or("udp-flows", 0)?;
    config.source = a.get("source")?;
    config.interval = Duration::from_millis(a.or("interval-ms", 20)?);
    config.chunk = a.or("chunk", 512)?;
    config.stall = Duration::from_millis(a.or("stall-ms", 5000)?);
    config.drain = a.get("drain-ms")?.map(Duration::from_millis);
    config.connect_timeout = Duration::from_millis(a.or("connect-timeout-ms", 2000)?);
    config.connect_retries = a.or("connect-retries", 3)?;
    config.batch = a.or("batch", 10)?;
    config.seed = a.or("seed", 1)?;
    config.udp_max_lost = a.or("udp-max-lost", 0)?;
    let stop = StopWhen {
        until: a.get("until")?,
        seconds: a.get("seconds")?,
    };
    if stop.until.is_none() && stop.seconds.is_none() {
        bail!("--until FILE or --seconds S is required");
    }
    if let Some(s) = stop.seconds
        && !(s.is_finite() && s >= 0.0)
    {
        bail!("bad --seconds {s}");
    }
    config.check()?;
    Ok((config, stop))
}

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::Relaxed);
}

fn client(config: &ClientConfig, when: &StopWhen) -> Result<bool> {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let should_stop = |streaming_since: Option<Instant>| {
        SIGNALLED.load(Ordering::Relaxed)
            || when.until.as_ref().is_some_and(|f| f.exists())
            || streaming_since
                .zip(when.seconds)
                .is_some_and(|(t, s)| t.elapsed() >= Duration::from_secs_f64(s))
    };
    let live = Arc::new(Live::new(config));
    let report = run_client(config, &live, &should_stop)?;
    println!("{}", report.to_json());
    let _ = std::io::stdout().flush();
    Ok(report.all_ok())
}
