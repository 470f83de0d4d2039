//! rvsd: the rvs director daemon. Loads the XDP director onto the given interfaces with its maps
//! pinned in bpffs, keeps the model of services and real servers, serves rvsadm on a Unix socket,
//! expires connections, estimates rates and keeps real servers' next hops resolved. With
//! `-f keepalived.conf` it also runs the file's services and health checkers (SIGHUP reloads).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use rvs::{
    control::{self, server},
    daemon::{Director, DirectorOptions, expiry, keepalived::Keepalived, state},
    dataplane::{AttachMode, Dataplane, DirectorMaps, LoadOptions, Neighbours, cleanup_pins},
    keepalived::KeepalivedConfig,
    model::Model,
};
use rvs_common::maps::{Config, DEFAULT_CONN_TABLE_SIZE, MAX_DESTS, MAX_SERVICES, config_flags};
use tokio::{
    signal::unix::SignalKind,
    sync::{Mutex, oneshot},
};
use tracing::{info, warn};

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
    /// End a flow at once when its real server is deleted (and schedule a SYN afresh), instead
    /// of letting it drain; also reschedule a SYN that finds a flow to a weight-0 server
    /// (IPVS's expire_nodest_conn=1).
    #[arg(long)]
    expire_nodest_conn: bool,
    /// Do not honour persistence templates of weight-0 servers (expire_quiescent_template=1).
    #[arg(long)]
    expire_quiescent_template: bool,
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
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RVS_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    if args.check_config {
        let path = args
            .use_file
            .as_deref()
            .context("--check-config needs -f FILE")?;
        return check_config(path);
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
    // A configuration that cannot be used stops rvsd before it touches the data plane.
    let keepalived = match &args.use_file {
        Some(path) => {
            let cfg = rvs::keepalived::load(path)?;
            rvs::daemon::vrrp::instance::plan(&cfg)?; // VRRP (issue 11): refuse what cannot run
            rvs::daemon::keepalived::log_warnings(path, &cfg);
            Some((path.clone(), cfg))
        }
        None => None,
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(args, keepalived))
}

/// `--check-config -f FILE`: the warnings and the first error, as rvsd would log them.
fn check_config(path: &Path) -> Result<()> {
    let cfg = rvs::keepalived::load(path)?;
    rvs::daemon::vrrp::instance::plan(&cfg)?; // VRRP (issue 11): refuse what cannot run
    let warnings = rvs::daemon::keepalived::warnings(path, &cfg);
    for w in &warnings {
        eprintln!("{w}");
    }
    let services = rvs::keepalived::desired_services(&cfg);
    eprintln!(
        "{}: configuration OK ({} virtual services, {} warnings)",
        path.display(),
        services.len(),
        warnings.len()
    );
    Ok(())
}

async fn run(args: Args, keepalived: Option<(PathBuf, KeepalivedConfig)>) -> Result<()> {
    let listener = server::bind(&args.socket)?;
    let _socket_file = server::SocketFile(args.socket.clone());
    let opts = LoadOptions {
        pin_dir: args.pin_dir.clone(),
        interfaces: args.interfaces.clone(),
        mode: match args.xdp_mode {
            XdpModeArg::Driver => AttachMode::Driver,
            XdpModeArg::Generic => AttachMode::Generic,
        },
        conn_table_size: args.conn_table_size,
    };
    let plane_program = Dataplane::load(&opts)?;
    let resumed = plane_program.resumed;
    for (name, ifindex) in &plane_program.interfaces {
        info!(
            "director attached to {name} (ifindex {ifindex}, {:?} mode)",
            opts.mode
        );
    }
    let model = match state::load(&args.state_file)? {
        Some(m) => {
            info!(
                "loaded {} services from {}{}",
                m.services.len(),
                args.state_file.display(),
                if resumed {
                    "; connections carried over"
                } else {
                    "; maps are new, connections start afresh"
                }
            );
            m
        }
        None => Model::new(MAX_SERVICES, MAX_DESTS),
    };
    let mut plane = dataplane_handles(&args)?;
    let mut flags = 0;
    if args.expire_nodest_conn {
        flags |= config_flags::EXPIRE_NODEST_CONN;
    }
    if args.expire_quiescent_template {
        flags |= config_flags::EXPIRE_QUIESCENT_TEMPLATE;
    }
    let config = Config {
        flags,
        new_flow_rate: args.new_flow_rate,
        lblcr_expiration_ns: args.lblcr_expiration.saturating_mul(1_000_000_000),
    };
    plane
        .maps
        .config
        .set(0, config, 0)
        .context("writing the data plane's settings")?;
    let mut director = Director::new(
        model,
        Some(plane),
        DirectorOptions {
            state_file: Some(args.state_file.clone()),
            conn_table_size: args.conn_table_size,
        },
    );
    director.reconcile(resumed).await?;
    let director = Arc::new(Mutex::new(director));
    // The configured services are in place before rvsadm is served.
    let (stop_keepalived, stopped) = oneshot::channel();
    // VRRP (issue 11): its own task, started once the services are in place; rvsadm --vrrp reads
    // its published status, never the director's lock.
    let vrrp_conf = keepalived.as_ref().map(|(_, c)| c.clone());
    let mut keepalived = match keepalived {
        Some((path, cfg)) => {
            let k = Keepalived::start(path, cfg, director.clone()).await?;
            Some(tokio::spawn(k.run(stopped)))
        }
        None => None,
    };

    let vrrp = rvs::daemon::vrrp::start_published(vrrp_conf.as_ref())?;

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(server::serve(listener, director.clone()));
    tasks.spawn(estimator_loop(director.clone()));
    tasks.spawn(next_hop_loop(director.clone()));
    tasks.spawn(expiry_loop(director.clone(), args.pin_dir.clone()));
    tasks.spawn(locality_loop(
        director.clone(),
        args.pin_dir.clone(),
        Duration::from_secs(args.lblc_expiration),
        Duration::from_secs(args.lblcr_expiration),
    ));
    info!("serving rvsadm on {}", args.socket.display());

    let mut term = tokio::signal::unix::signal(SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: detaching and exiting"),
        _ = int.recv() => info!("SIGINT: detaching and exiting"),
        r = tasks.join_next() => warn!("a task ended unexpectedly: {r:?}"),
        r = async { keepalived.as_mut().expect("guarded").await }, if keepalived.is_some() => {
            warn!("the keepalived checkers ended unexpectedly: {r:?}");
            keepalived = None;
        }
    }
    tasks.abort_all();
    if let Some(v) = vrrp {
        // Priority 0 to the backups and the addresses removed before anything else stops.
        v.stop(Duration::from_secs(5)).await;
    }
    if let Some(k) = keepalived {
        // Lets omega notifiers run; the table is kept for the next rvsd.
        let _ = stop_keepalived.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), k).await;
    }
    drop(plane_program);
    info!("detached; pinned maps kept in {}", args.pin_dir.display());
    Ok(())
}

fn dataplane_handles(args: &Args) -> Result<rvs::daemon::Plane> {
    Ok(rvs::daemon::Plane::new(
        DirectorMaps::open(&args.pin_dir)?,
        Neighbours::new()?,
    ))
}

/// Expires the lblc and lblcr caches.
async fn locality_loop(
    director: Arc<Mutex<Director>>,
    pin_dir: PathBuf,
    lblc: Duration,
    lblcr: Duration,
) {
    let mut maps = match DirectorMaps::open(&pin_dir) {
        Ok(m) => m,
        Err(e) => {
            warn!("locality cache expiry disabled: {e:#}");
            return;
        }
    };
    let mut tick = tokio::time::interval(rvs::daemon::locality::INTERVAL);
    loop {
        tick.tick().await;
        let (lblc_services, lblcr_services) = director.lock().await.locality_services();
        let gone = rvs::daemon::locality::sweep(&mut maps.lblc, &lblc_services, lblc)
            + rvs::daemon::locality::sweep(&mut maps.lblcr, &lblcr_services, lblcr);
        if gone > 0 {
            tracing::debug!("expired {gone} locality cache entries");
        }
    }
}

async fn estimator_loop(director: Arc<Mutex<Director>>) {
    let mut tick = tokio::time::interval(rvs::daemon::estimator::INTERVAL);
    loop {
        tick.tick().await;
        director.lock().await.estimate();
    }
}

async fn next_hop_loop(director: Arc<Mutex<Director>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        director.lock().await.refresh_next_hops().await;
    }
}

/// Flows of the main table walked per second at most, on average; the period between walks is
/// between 1 and 8 seconds.
const MAIN_WALK_RATE: usize = 250_000;

fn main_walk_period(entries: usize) -> Duration {
    Duration::from_millis((entries * 1000 / MAIN_WALK_RATE).clamp(1000, 8000) as u64)
}

/// Walks the connection tables about once a second (back to back when a walk takes longer).
async fn expiry_loop(director: Arc<Mutex<Director>>, pin_dir: PathBuf) {
    let maps = match DirectorMaps::open(&pin_dir) {
        Ok(m) => Arc::new(std::sync::Mutex::new(m)),
        Err(e) => {
            warn!("connection expiry disabled: {e:#}");
            return;
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // The embryonic table is walked every second (a SYN flood is shed from it); the main table
    // as often while it is small, and less often as it grows, so that a table of millions of
    // flows does not keep a CPU busy walking it (flows then expire up to a few seconds late).
    let mut main_due = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let (inputs, trash) = director.lock().await.expiry_inputs();
        let m = maps.clone();
        let walk_main = tokio::time::Instant::now() >= main_due;
        let sweep = tokio::task::spawn_blocking(move || {
            let mut m = m.lock().expect("expiry maps");
            let m = &mut *m;
            expiry::sweep(
                &mut m.conns_new,
                &mut m.conns,
                &mut m.nat_replies,
                &m.dest_conns,
                &inputs,
                walk_main,
            )
        })
        .await;
        match sweep {
            Ok(s) => {
                if walk_main {
                    main_due = tokio::time::Instant::now() + main_walk_period(s.walked_main);
                }
                if s.expired + s.flushed > 0 {
                    tracing::debug!(
                        "expired {} and flushed {} of {} connections",
                        s.expired,
                        s.flushed,
                        s.walked
                    );
                }
                director.lock().await.expiry_done(&s, &trash);
            }
            Err(e) => warn!("connection expiry walk failed: {e}"),
        }
    }
}
