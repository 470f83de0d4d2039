//! rvsd: the rvs director daemon. Parses its options and hands them to the supervisor
//! (`rvs::daemon::supervisor`), which loads the XDP director, makes the director and runs its
//! tasks: the control socket, expiry, rates, next hops, locality caches and, with
//! `-f keepalived.conf`, the file's services and health checkers (SIGHUP reloads).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use rvs::{
    control,
    daemon::{
        supervisor::{self, Settings},
        sync::{SyncConfig, SyncOptions, SyncTiming},
    },
    dataplane::{AttachMode, cleanup_pins, detach_pins},
};
use rvs_common::maps::{Config, DEFAULT_CONN_TABLE_SIZE, config_flags};
use tracing::info;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum XdpModeArg {
    /// Native XDP in the driver.
    Driver,
    /// Generic XDP in the stack (slower; for interfaces without native support).
    Generic,
}

#[derive(Parser, Debug)]
#[command(
    name = "rvsd",
    version,
    about = "rvs director daemon: IPVS-style load balancing in XDP"
)]
struct Args {
    /// Interface to attach the director to (repeat for several).
    #[arg(short, long = "interface", value_name = "IF")]
    interfaces: Vec<String>,
    /// Control socket for rvsadm.
    #[arg(long, env = "RVS_SOCKET", default_value = control::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Let the members of this group (a name or a number) use the control socket too; without
    /// it only root and rvsd's own user may (the socket is 0600, and each client's credentials
    /// are checked).
    #[arg(long, value_name = "GROUP")]
    socket_group: Option<String>,
    /// Directory in bpffs where the maps are pinned (connections survive a restart there).
    #[arg(long, default_value = "/sys/fs/bpf/rvs")]
    pin_dir: PathBuf,
    /// Where the model of services is saved after each change.
    #[arg(long, default_value = "/run/rvs/state.json")]
    state_file: PathBuf,
    /// Capacity of the connection table (flows).
    #[arg(long, default_value_t = DEFAULT_CONN_TABLE_SIZE)]
    conn_table_size: u32,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value = "driver")]
    xdp_mode: XdpModeArg,
    /// Remove the pinned maps, the saved model and the socket of a stopped rvsd, then exit.
    #[arg(long)]
    cleanup: bool,
    /// Take a stopped rvsd's director off its interfaces (a stop leaves it forwarding the
    /// flows it holds, for the next rvsd to take over), keeping its maps, then exit.
    #[arg(long, conflicts_with = "cleanup")]
    detach: bool,
    /// Detach the director when rvsd stops: the flows it holds then reach the kernel's stack
    /// (which resets them) until an rvsd runs again.
    #[arg(long)]
    detach_on_exit: bool,
    /// End a flow at once when its real server is deleted (and schedule a SYN afresh), instead
    /// of letting it drain; also reschedule a SYN that finds a flow to a weight-0 server
    /// (IPVS's expire_nodest_conn=1).
    #[arg(long)]
    expire_nodest_conn: bool,
    /// Do not honour persistence templates of weight-0 servers (expire_quiescent_template=1).
    #[arg(long)]
    expire_quiescent_template: bool,
    /// Schedule a TCP packet without SYN of a flow this director does not know, instead of
    /// passing it to the kernel, for every service (IPVS's sloppy_tcp=1; per service: rvsadm
    /// -A --sloppy-tcp, keepalived.conf's sloppy_tcp). Behind ECMP such a packet belongs to a
    /// flow another director opened; with sh, dh or mh this director picks the same real server.
    #[arg(long)]
    sloppy_tcp: bool,
    /// Take tunnelled packets for this director's services (IPIP, IPv6-in-IPv6; another
    /// director forwarding to this one with -i): strip the outer header, decrement the inner
    /// TTL, and handle the inner packet as if it had arrived directly. Without it they pass to
    /// the kernel. keepalived.conf's rvs_cluster implies it.
    #[arg(long)]
    accept_tunnelled: bool,
    /// With --accept-tunnelled: take GUE on this UDP port too (as `-i --tun-type gue
    /// --tun-port PORT` sends it).
    #[arg(long, value_name = "PORT", requires = "accept_tunnelled")]
    accept_gue_port: Option<u16>,
    /// New flows admitted per second per CPU; beyond it new flows are dropped and counted
    /// (drop_admission), flows already known are untouched. 0 admits all.
    #[arg(long, default_value_t = 0)]
    new_flow_rate: u32,
    /// Seconds an lblc cache entry lives unused (lblc_expiration).
    #[arg(long, default_value_t = 86400)]
    lblc_expiration: u64,
    /// Seconds an lblcr set lives unchanged before it sheds a server, and unused before it goes
    /// (lblcr_expiration).
    #[arg(long, default_value_t = 86400)]
    lblcr_expiration: u64,
    /// keepalived.conf to run: its virtual servers, real servers and health checkers. SIGHUP
    /// re-reads it.
    #[arg(short = 'f', long = "use-file", value_name = "FILE")]
    use_file: Option<PathBuf>,
    /// Check the file given with -f and exit: 0 when it can be used, 1 when not.
    #[arg(long, alias = "config-test", requires = "use_file")]
    check_config: bool,
    /// Connection sync (with keepalived.conf's lvs_sync_daemon): send to this director, and
    /// accept only it, instead of the multicast group (repeat for several).
    #[arg(long = "sync-peer", value_name = "ADDR")]
    sync_peers: Vec<std::net::IpAddr>,
    /// Connection sync: a file with a shared key (16 bytes or more); every message then carries
    /// an HMAC-SHA256 and a sequence number, and unauthenticated ones are dropped. Without it
    /// the messages are the kernel's, byte for byte.
    #[arg(long, value_name = "FILE")]
    sync_key: Option<PathBuf>,
    /// Connection sync: how long a starting director waits for the whole connection table from
    /// its peer before VRRP starts (0: no bulk sync).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    sync_bulk_timeout: u64,
    /// Connection sync (IPVS's sync_threshold sysctl, first value): a flow is sent when it has
    /// had this many packets (modulo --sync-period).
    #[arg(long, value_name = "PACKETS", default_value_t = 3)]
    sync_threshold: u32,
    /// Connection sync (sync_threshold's second value): a flow is sent again every this many
    /// packets; 0 sends it once (or by --sync-refresh-period).
    #[arg(long, value_name = "PACKETS", default_value_t = 50)]
    sync_period: u32,
    /// Connection sync (IPVS's sync_refresh_period): a flow whose state did not change is not
    /// sent again within this many seconds (or half its timeout, if less); 0: off.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    sync_refresh_period: u32,
    /// Connection sync (IPVS's sync_retries, 0 to 3): repeats within the refresh period, each
    /// an eighth of it after the last, against lost messages.
    #[arg(long, value_name = "N", default_value_t = 0)]
    sync_retries: u8,
    /// With --check-config: print what was understood (services, real servers, checkers with
    /// their effective timings after keepalived's inheritance and defaults).
    #[arg(long, requires = "check_config")]
    dump: bool,
    /// Serve the monitor (HTTPS console, JSON API, /metrics) on [ADDR]:PORT (all addresses
    /// when ADDR is left out).
    #[arg(long, value_name = "[ADDR]:PORT")]
    web: Option<String>,
    /// The monitor's certificate (PEM); without --web-cert and --web-key a self-signed one is
    /// made once in the state file's directory.
    #[arg(long, value_name = "FILE", requires = "web_key")]
    web_cert: Option<PathBuf>,
    /// The monitor's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "web_cert")]
    web_key: Option<PathBuf>,
    /// The monitor's users (made with --add-web-user).
    #[arg(long, value_name = "FILE")]
    web_users: Option<PathBuf>,
    /// A monitor session ends after this many seconds without a request (default 900).
    #[arg(long, value_name = "SECONDS")]
    web_session_idle: Option<u64>,
    /// Add (or replace) a monitor user, reading the password from standard input, then exit.
    #[arg(long, num_args = 3, value_names = ["FILE", "NAME", "viewer|admin"])]
    add_web_user: Option<Vec<String>>,
}

/// `--add-web-user FILE NAME ROLE`, the password on standard input (its first line).
fn add_web_user(args: &[String]) -> Result<()> {
    let [file, name, role] = args else {
        bail!("--add-web-user FILE NAME viewer|admin");
    };
    let role: rvs::daemon::web::users::Role = role.parse()?;
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']);
    rvs::daemon::web::users::add_user(Path::new(file), name, role, password)?;
    eprintln!("{file}: {name} is a web {}", role.name());
    Ok(())
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvsd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    // Every file and socket rvsd creates (control socket, state file, keys) is private from the
    // moment it exists; what must be shared is opened up explicitly afterwards.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RVS_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    if let Some(a) = &args.add_web_user {
        return add_web_user(a);
    }
    if args.check_config {
        let path = args
            .use_file
            .as_deref()
            .context("--check-config needs -f FILE")?;
        return check_config(path, args.dump);
    }
    if args.detach {
        let n = detach_pins(&args.pin_dir)?;
        info!(
            "{n} attachments removed from {}; maps kept",
            args.pin_dir.display()
        );
        return Ok(());
    }
    if args.cleanup {
        cleanup_pins(&args.pin_dir)?;
        for f in [&args.state_file, &args.socket] {
            if f.exists() {
                std::fs::remove_file(f).with_context(|| format!("removing {}", f.display()))?;
            }
        }
        info!("removed {} and the saved state", args.pin_dir.display());
        return Ok(());
    }
    if args.interfaces.is_empty() {
        bail!("give at least one --interface to attach the director to");
    }
    if args.conn_table_size == 0 {
        bail!("--conn-table-size must be at least 1");
    }
    // A power of two, as the kernel's table (2^conn_tab_bits): ipvsadm's banner `size=` then
    // states the capacity exactly, in the form scripts expect.
    let Some(conn_table_size) = args.conn_table_size.checked_next_power_of_two() else {
        bail!("--conn-table-size must be at most {}", 1u32 << 31);
    };
    if conn_table_size != args.conn_table_size {
        info!(
            "--conn-table-size {} rounded up to {conn_table_size}, a power of two",
            args.conn_table_size
        );
    }
    // A configuration that cannot be used stops rvsd before it touches the data plane.
    let sync = SyncOptions {
        peers: args.sync_peers.clone(),
        key_file: args.sync_key.clone(),
        bulk_timeout: Duration::from_secs(args.sync_bulk_timeout),
        timing: SyncTiming::new(
            args.sync_threshold,
            args.sync_period,
            args.sync_refresh_period,
            args.sync_retries,
        )?,
    };
    let keepalived = match &args.use_file {
        Some(path) => {
            let cfg = rvs::keepalived::load(path)?;
            // A sync daemon that cannot run is refused before anything is touched.
            SyncConfig::from_keepalived(&cfg, &sync)?;
            // VRRP instances that cannot run are refused before anything is touched.
            rvs::daemon::vrrp::instance::plan(&cfg)?;
            rvs::daemon::keepalived::log_warnings(&cfg);
            Some((path.clone(), cfg))
        }
        None => None,
    };
    // Cluster balancing: its key is read before anything is touched.
    let cluster = match &keepalived {
        Some((_, cfg)) => rvs::daemon::cluster::ClusterSettings::from_keepalived(cfg)?,
        None => None,
    };
    // The monitor: the options, or keepalived.conf's rvs_web block for what they leave out.
    let block = keepalived
        .as_ref()
        .and_then(|(_, c)| c.web.clone())
        .unwrap_or_default();
    let listen = match &args.web {
        Some(l) => {
            Some(rvs::daemon::web::parse_listen(l).map_err(|e| anyhow::anyhow!("--web {e}"))?)
        }
        None => block.listen,
    };
    let (cert, key) = match (&args.web_cert, &args.web_key) {
        (Some(c), Some(k)) => (Some(c.clone()), Some(k.clone())),
        _ => (block.cert, block.key),
    };
    let web = listen.map(|listen| rvs::daemon::web::WebOptions {
        listen,
        cert,
        key,
        users: args.web_users.clone().or(block.users),
        state_dir: args
            .state_file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned(),
        session_idle: args
            .web_session_idle
            .map(Duration::from_secs)
            .or(block.session_idle)
            .unwrap_or(Duration::from_secs(900))
            .max(Duration::from_secs(1)),
    });
    let mut flags = 0;
    if args.expire_nodest_conn {
        flags |= config_flags::EXPIRE_NODEST_CONN;
    }
    if args.expire_quiescent_template {
        flags |= config_flags::EXPIRE_QUIESCENT_TEMPLATE;
    }
    if args.sloppy_tcp {
        flags |= config_flags::SLOPPY_TCP;
    }
    // A cluster's peers forward to this director through IPIP tunnels (rvs_cluster).
    if args.accept_tunnelled || cluster.is_some() {
        flags |= config_flags::ACCEPT_TUNNELLED;
    }
    if args.accept_gue_port == Some(0) {
        bail!("--accept-gue-port must be a port from 1 to 65535");
    }
    let settings = Settings {
        socket: args.socket,
        socket_access: control::server::Access {
            group: args.socket_group.as_deref().map(group_id).transpose()?,
        },
        pin_dir: args.pin_dir,
        state_file: args.state_file,
        interfaces: args.interfaces,
        mode: match args.xdp_mode {
            XdpModeArg::Driver => AttachMode::Driver,
            XdpModeArg::Generic => AttachMode::Generic,
        },
        detach_on_exit: args.detach_on_exit,
        conn_table_size,
        dataplane: Config {
            flags,
            new_flow_rate: args.new_flow_rate,
            lblcr_expiration_ns: args.lblcr_expiration.saturating_mul(1_000_000_000),
            accept_gue_port: args.accept_gue_port.unwrap_or(0).to_be(),
            ..Config::default()
        },
        lblc_expiration: Duration::from_secs(args.lblc_expiration),
        lblcr_expiration: Duration::from_secs(args.lblcr_expiration),
        keepalived,
        sync,
        web,
        cluster,
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(supervisor::run(settings))
}

/// `--check-config -f FILE`: the warnings and the first error, as rvsd would log them; with
/// `--dump`, what was understood, on standard output.
fn check_config(path: &Path, dump: bool) -> Result<()> {
    let cfg = rvs::keepalived::load(path)?;
    rvs::daemon::vrrp::instance::plan(&cfg)?;
    let warnings = rvs::daemon::keepalived::warnings(&cfg);
    for w in &warnings {
        eprintln!("{w}");
    }
    let services = rvs::keepalived::desired_services(&cfg);
    if dump {
        print!("{}", rvs::keepalived::dump(&cfg, &services));
    }
    eprintln!(
        "{}: configuration OK ({} virtual services, {} warnings)",
        path.display(),
        services.len(),
        warnings.len()
    );
    Ok(())
}

/// `--socket-group`: a group's name or number.
fn group_id(name: &str) -> Result<u32> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => bail!("--socket-group {name}: no such group"),
        Err(e) => Err(e).with_context(|| format!("--socket-group {name}")),
    }
}
