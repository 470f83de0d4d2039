//! keepalived.conf in rvsd: the services it describes are put into the director, and the health
//! checkers' verdicts turned into real servers added, removed and reweighted, notify scripts run
//! and mail sent. Every change goes through [`Director::handle`] with the requests rvsadm sends,
//! so `rvsadm -L -n` shows exactly what the checkers decided.
//!
//! SIGHUP re-reads the file and applies only what changed: services whose configuration is the
//! same keep their state and are not touched; changed ones are brought from what the director
//! holds to what the new configuration wants; removed ones are emptied and deleted. A file that
//! does not load is reported and the running configuration stays.
//!
//! Where rvsd differs from keepalived, on purpose:
//! - at SIGTERM the table is left as it is (only `omega` notifiers run), since rvsd detaches
//!   and a restarted rvsd resumes its flows from the pinned maps; keepalived empties it;
//! - a service the director already holds when rvsd starts (a restart with the saved model) is
//!   resumed like a changed service on reload, so its flows and counters carry on;
//! - services rvsadm added by hand are left alone, also by `lvs_flush`-less reloads.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use tokio::{
    signal::unix::{Signal, SignalKind, signal},
    sync::{mpsc, oneshot},
};
use tracing::{debug, error, info, warn};

use super::{Director, DirectorHandle};
use crate::{
    check::{
        Action, CheckEvent, DesiredService, Health, Mail, Runner, ServerStates,
        notify::{self, MailSettings},
    },
    control::proto::{Request, Response},
    keepalived::{self, ConfigError, KeepalivedConfig, LvsTimeouts},
    model::{DestAddr, DestConfig, FwdMethod, MarkRule, ServiceId},
};

/// Room for checker events waiting while the director is busy.
const EVENT_QUEUE: usize = 1024;
/// How long stopping waits for the `omega` notifications to go out.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A service of the configuration that the director holds.
struct Installed {
    desired: DesiredService,
    health: Health,
}

/// The running configuration: what it installed, its checkers and where mail goes.
pub struct Keepalived {
    path: PathBuf,
    director: DirectorHandle,
    router_id: String,
    mail: Option<MailSettings>,
    timeouts: LvsTimeouts,
    installed: Vec<Installed>,
    /// The `rvs_mark` rules this driver added.
    marks: Vec<MarkRule>,
    /// The peers' directors of `rvs_cluster` as rvsd started with it: tunnel destinations at
    /// these addresses are the cluster task's, and left alone here.
    cluster_directors: Vec<IpAddr>,
    cluster: Option<keepalived::ClusterBlock>,
    runner: Runner,
    events: mpsc::Receiver<CheckEvent>,
    mailer: mpsc::UnboundedSender<(MailSettings, Mail)>,
    hangup: Signal,
}

/// What keepalived only warns about (unknown keywords, what rvs does not do), as
/// `FILE:LINE: message` where the position is known.
pub fn warnings(cfg: &KeepalivedConfig) -> Vec<String> {
    cfg.warnings.iter().map(|w| w.to_string()).collect()
}

pub fn log_warnings(cfg: &KeepalivedConfig) {
    for w in warnings(cfg) {
        warn!("{w}");
    }
}

impl Keepalived {
    /// Puts the services of `cfg` (read from `path`) into the director and starts their
    /// checkers. A service the director refuses is logged and left out; the others go on.
    pub async fn start(
        path: PathBuf,
        cfg: KeepalivedConfig,
        director: DirectorHandle,
    ) -> std::io::Result<Keepalived> {
        // Before anything slow: from now on SIGHUP reloads instead of ending rvsd.
        let hangup = signal(SignalKind::hangup())?;
        super::health::enable();
        let (mail_tx, mail_rx) = mpsc::unbounded_channel();
        tokio::spawn(mailer(mail_rx));
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let mut k = Keepalived {
            path,
            director,
            router_id: keepalived::router_id(&cfg.global),
            mail: keepalived::mail_settings(&cfg.global),
            timeouts: LvsTimeouts::default(),
            installed: Vec::new(),
            marks: Vec::new(),
            cluster_directors: super::cluster::owned_directors(&cfg),
            cluster: cfg.cluster.clone(),
            runner: Runner::start(&[], events_tx),
            events,
            mailer: mail_tx,
            hangup,
        };
        if cfg.global.lvs_flush {
            info!("lvs_flush: clearing every service");
            k.request(Request::Clear).await;
        }
        k.set_timeouts(cfg.global.lvs_timeouts).await;
        k.sync_marks(cfg.mark_rules()).await;
        for svc in keepalived::desired_services(&cfg) {
            k.install(svc, &ServerStates::new()).await;
        }
        k.restart_checkers(&ServerStates::new()).await;
        k.publish_quorum();
        info!(
            "{}: {} virtual services configured, {} real servers checked",
            k.path.display(),
            k.installed.len(),
            k.checked()
        );
        Ok(k)
    }

    /// Follows the checkers and SIGHUP until `stop` fires (or its sender goes away).
    pub async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        loop {
            tokio::select! {
                Some(ev) = self.events.recv() => self.on_event(ev).await,
                _ = self.hangup.recv() => self.reload().await,
                _ = &mut stop => break,
            }
        }
        self.stop().await;
    }

    async fn on_event(&mut self, ev: CheckEvent) {
        let Some(i) = self.position(&ev.service) else {
            debug!("checker event for {} which is not installed", ev.service);
            return;
        };
        super::health::record(
            ev.service,
            ev.dest,
            ev.up,
            &ev.reason,
            super::vrrp::status::unix_ms_now(),
        );
        let actions = self.installed[i].health.on_event(&ev);
        self.carry_out(actions).await;
        self.publish_quorum();
    }

    /// Each service's quorum, for the BGP speaker.
    fn publish_quorum(&self) {
        super::health::publish_quorum(
            self.installed
                .iter()
                .map(|i| (i.desired.service, i.health.quorum_up()))
                .collect(),
        );
    }

    /// SIGHUP: re-read the file and apply the differences.
    async fn reload(&mut self) {
        info!("SIGHUP: reloading {}", self.path.display());
        let cfg = match load_off_thread(&self.path).await {
            Ok(cfg) => cfg,
            Err(e) => {
                error!("{e}");
                error!(
                    "{}: not reloaded; the running configuration stays",
                    self.path.display()
                );
                return;
            }
        };
        log_warnings(&cfg);
        if !super::cluster::same_block(cfg.cluster.as_ref(), self.cluster.as_ref()) {
            warn!("rvs_cluster is read at start only: restart rvsd for its changes to apply");
        }
        // The checkers' verdicts carry over to the new ones (and to rebuilt services).
        self.stop_checkers().await;
        self.drain_events().await;
        let states = self.states();

        let router_id = keepalived::router_id(&cfg.global);
        let identity_changed = router_id != self.router_id;
        self.router_id = router_id;
        self.mail = keepalived::mail_settings(&cfg.global);
        let wanted = keepalived::desired_services(&cfg);

        // Services that left the configuration go first, as keepalived removes them first.
        let mut kept = Vec::new();
        for inst in std::mem::take(&mut self.installed) {
            if wanted.iter().any(|w| w.service == inst.desired.service) {
                kept.push(inst);
                continue;
            }
            let mut inst = inst;
            info!(
                "Removing VS {}: no longer in the configuration",
                inst.desired.name
            );
            let actions = inst.health.shutdown();
            self.carry_out(actions).await;
            self.request(Request::DeleteService {
                service: inst.desired.service,
            })
            .await;
        }
        self.set_timeouts(cfg.global.lvs_timeouts).await;
        self.sync_marks(cfg.mark_rules()).await;
        let (mut unchanged, mut changed, mut added) = (0, 0, 0);
        for svc in wanted {
            match kept.iter().position(|k| k.desired.service == svc.service) {
                Some(i) if !identity_changed && same(&kept[i].desired, &svc) => {
                    let mut inst = kept.swap_remove(i);
                    // The block may have moved in the file: the runner pairs by its index.
                    inst.desired = svc;
                    self.installed.push(inst);
                    unchanged += 1;
                }
                Some(i) => {
                    kept.swap_remove(i);
                    self.install(svc, &states).await;
                    changed += 1;
                }
                None => {
                    self.install(svc, &states).await;
                    added += 1;
                }
            }
        }
        self.restart_checkers(&states).await;
        self.publish_quorum();
        info!(
            "{}: reloaded: {unchanged} services unchanged, {changed} changed, {added} added",
            self.path.display()
        );
    }

    /// Puts a service in the director as `svc` wants it: added if new, edited and brought from
    /// its current table otherwise (only the differences are applied).
    async fn install(&mut self, svc: DesiredService, states: &ServerStates) {
        let current = {
            let view = self.director.view();
            view.model.service(&svc.service).map(|s| {
                // The cluster task's destinations are not this service's to keep or remove.
                let table: Vec<(DestAddr, DestConfig)> = s
                    .dests
                    .iter()
                    .filter(|d| {
                        !(d.config.fwd == FwdMethod::Tunnel
                            && self.cluster_directors.contains(&d.addr.addr))
                    })
                    .map(|d| (d.addr, d.config.clone()))
                    .collect();
                (s.config.clone(), table)
            })
        };
        let mut health = Health::new(svc.clone(), &self.router_id, states);
        let actions = match current {
            None => {
                let r = self
                    .handle(Request::AddService {
                        service: svc.service,
                        config: svc.config.clone(),
                    })
                    .await;
                if let Response::Error { detail, .. } = r {
                    error!(
                        "VS {}: cannot be added ({detail}); going on without it",
                        svc.name
                    );
                    return;
                }
                health.start()
            }
            Some((config, table)) => {
                if config != svc.config {
                    info!("VS {}: settings changed", svc.name);
                    let r = self
                        .handle(Request::EditService {
                            service: svc.service,
                            config: svc.config.clone(),
                        })
                        .await;
                    if let Response::Error { detail, .. } = r {
                        error!("VS {}: settings cannot be changed: {detail}", svc.name);
                    }
                }
                health.resume(table)
            }
        };
        // Checker events log their own reasons; these changes come from the file.
        for a in &actions {
            if let Some(req) = table_request(a) {
                info!("VS {}: {}", svc.name, describe(&req));
            }
        }
        self.carry_out(actions).await;
        self.installed.push(Installed {
            desired: svc,
            health,
        });
    }

    /// Stops the checkers; their queued events stay to be read.
    async fn stop_checkers(&mut self) {
        let (idle, _) = mpsc::channel(1);
        let old = std::mem::replace(&mut self.runner, Runner::start(&[], idle));
        old.stop().await;
    }

    async fn restart_checkers(&mut self, states: &ServerStates) {
        let services: Vec<DesiredService> =
            self.installed.iter().map(|i| i.desired.clone()).collect();
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let old = std::mem::replace(&mut self.runner, Runner::start_from(&services, tx, states));
        old.stop().await;
        self.events = rx;
    }

    /// `rvs_mark` rules: those of the file are added (one already there, from a previous rvsd or
    /// rvsadm, counts as added), those this driver added that the file no longer has are
    /// removed; rules added by hand are left alone.
    async fn sync_marks(&mut self, wanted: Vec<MarkRule>) {
        for rule in std::mem::take(&mut self.marks) {
            if !wanted.contains(&rule) {
                info!("removing mark rule {rule}: no longer in the configuration");
                self.request(Request::DeleteMarkRule { rule }).await;
            }
        }
        for rule in wanted {
            match self.handle(Request::AddMarkRule { rule }).await {
                Response::Ok => {}
                Response::Error { errno, .. } if errno == libc::EEXIST => {}
                Response::Error { detail, .. } => {
                    warn!("mark rule {rule}: {detail}");
                    continue;
                }
                other => warn!("mark rule {rule}: unexpected answer {other:?}"),
            }
            self.marks.push(rule);
        }
    }

    /// `lvs_timeouts`: the values given replace the running ones.
    async fn set_timeouts(&mut self, wanted: LvsTimeouts) {
        if !wanted.is_set() || wanted == self.timeouts {
            return;
        }
        self.timeouts = wanted;
        let current = match self.handle(Request::GetTimeouts).await {
            Response::Timeouts { timeouts } => timeouts,
            other => {
                warn!("lvs_timeouts: cannot read the running timeouts: {other:?}");
                return;
            }
        };
        let timeouts = wanted.apply(current);
        info!(
            "lvs_timeouts: tcp {} tcpfin {} udp {}",
            timeouts.tcp, timeouts.tcp_fin, timeouts.udp
        );
        self.request(Request::SetTimeouts { timeouts }).await;
    }

    /// Carries out a service's actions in order. The table changes go to the director as one
    /// job, so rvsadm and the data plane see a server swap (real servers out, sorry server in)
    /// as one; scripts, mail and logs follow.
    async fn carry_out(&mut self, actions: Vec<Action>) {
        let changes: Vec<Request> = actions.iter().filter_map(table_request).collect();
        if !changes.is_empty() {
            let servers: Vec<IpAddr> = changes
                .iter()
                .filter_map(|r| match r {
                    Request::AddDest { dest, .. } | Request::EditDest { dest, .. } => {
                        Some(dest.addr)
                    }
                    _ => None,
                })
                .collect();
            let done = self
                .director
                .with(servers, move |d| {
                    for req in changes {
                        change_table(d, req);
                    }
                })
                .await;
            if done.is_none() {
                warn!("the director stopped: table changes not made");
            }
        }
        for action in actions {
            if table_request(&action).is_some() {
                continue;
            }
            match action {
                Action::RunScript { command } => run_script(&command),
                Action::Mail(mail) => match &self.mail {
                    Some(settings) => {
                        let _ = self.mailer.send((settings.clone(), mail));
                    }
                    None => debug!("no smtp_server: not mailing '{}'", mail.subject),
                },
                Action::Log(line) => info!("{line}"),
                _ => {}
            }
        }
    }

    async fn handle(&self, req: Request) -> Response {
        self.director.request(req).await
    }

    /// Sends a request; a refusal is logged.
    async fn request(&self, req: Request) {
        let what = describe(&req);
        if let Response::Error { detail, .. } = self.handle(req).await {
            warn!("{what}: {detail}");
        }
    }

    /// Applies the events the stopped checkers left queued.
    async fn drain_events(&mut self) {
        while let Ok(ev) = self.events.try_recv() {
            self.on_event(ev).await;
        }
    }

    /// Up/down of every real server as the services last heard it: where the next checkers
    /// start. (The runner's own states may be ahead of the events read.)
    fn states(&self) -> ServerStates {
        let mut states = ServerStates::new();
        for inst in &self.installed {
            for d in &inst.desired.dests {
                if let Some(up) = inst.health.is_alive(&d.addr) {
                    states.insert((inst.desired.service, d.addr), up);
                }
            }
        }
        states
    }

    /// SIGTERM: the checkers stop; `omega` services run their down notifiers. The table stays
    /// for the next rvsd (see the module's notes).
    async fn stop(mut self) {
        self.stop_checkers().await;
        self.drain_events().await;
        let mut mails = Vec::new();
        for inst in &mut self.installed {
            if !inst.desired.omega {
                continue;
            }
            for action in inst.health.shutdown() {
                match action {
                    Action::RunScript { command } => run_script(&command),
                    Action::Mail(m) => mails.extend(self.mail.clone().map(|s| (s, m))),
                    _ => {}
                }
            }
        }
        let send = async {
            for (settings, mail) in &mails {
                send_one(settings, mail).await;
            }
        };
        if tokio::time::timeout(STOP_GRACE, send).await.is_err() {
            warn!("omega: mail not all sent within {STOP_GRACE:?}");
        }
    }

    fn position(&self, service: &ServiceId) -> Option<usize> {
        self.installed
            .iter()
            .position(|i| i.desired.service == *service)
    }

    fn checked(&self) -> usize {
        self.installed
            .iter()
            .flat_map(|i| &i.desired.dests)
            .filter(|d| !d.checkers.is_empty())
            .count()
    }
}

/// Whether a reload leaves a service as it is: everything equal but the index of its block.
fn same(a: &DesiredService, b: &DesiredService) -> bool {
    a == &DesiredService {
        virtual_server: a.virtual_server,
        ..b.clone()
    }
}

/// A request as the log names it.
fn describe(req: &Request) -> String {
    match req {
        Request::AddService { service, .. } => format!("adding service {service}"),
        Request::EditService { service, .. } => format!("editing service {service}"),
        Request::DeleteService { service } => format!("deleting service {service}"),
        Request::AddDest {
            service,
            dest,
            config,
        } => format!("adding {dest} to {service} (weight {})", config.weight),
        Request::EditDest {
            service,
            dest,
            config,
        } => format!("editing {dest} of {service} (weight {})", config.weight),
        Request::DeleteDest { service, dest } => format!("removing {dest} from {service}"),
        Request::Clear => "lvs_flush".to_owned(),
        Request::SetTimeouts { .. } => "lvs_timeouts".to_owned(),
        other => format!("{other:?}"),
    }
}

/// Sends a table change. One already made by hand (the server added, or removed, with rvsadm)
/// is taken as done, with the configured settings.
fn change_table(director: &mut Director, req: Request) {
    let what = describe(&req);
    let (done_already, instead) = match &req {
        Request::AddDest {
            service,
            dest,
            config,
        } => (
            libc::EEXIST,
            Some(Request::EditDest {
                service: *service,
                dest: *dest,
                config: config.clone(),
            }),
        ),
        Request::EditDest {
            service,
            dest,
            config,
        } => (
            libc::ENOENT,
            Some(Request::AddDest {
                service: *service,
                dest: *dest,
                config: config.clone(),
            }),
        ),
        _ => (libc::ENOENT, None),
    };
    let mut r = director.handle(req);
    if let Response::Error { errno, .. } = r
        && errno == done_already
    {
        r = match instead {
            Some(req) => director.handle(req),
            None => Response::Ok,
        };
    }
    if let Response::Error { detail, .. } = r {
        warn!("{what}: {detail}");
    }
}

/// The director request of a table action.
fn table_request(a: &Action) -> Option<Request> {
    Some(match a.clone() {
        Action::AddDest {
            service,
            dest,
            config,
        } => Request::AddDest {
            service,
            dest,
            config,
        },
        Action::EditDest {
            service,
            dest,
            config,
        } => Request::EditDest {
            service,
            dest,
            config,
        },
        Action::DeleteDest { service, dest } => Request::DeleteDest { service, dest },
        _ => return None,
    })
}

fn run_script(command: &str) {
    info!("running '{command}'");
    if let Err(e) = notify::run_script(command) {
        warn!("cannot run '{command}': {e}");
    }
}

/// Sends mail one at a time, in order, so a slow SMTP server delays no check.
async fn mailer(mut queue: mpsc::UnboundedReceiver<(MailSettings, Mail)>) {
    while let Some((settings, mail)) = queue.recv().await {
        send_one(&settings, &mail).await;
    }
}

async fn send_one(settings: &MailSettings, mail: &Mail) {
    match notify::send_mail(settings, mail).await {
        Ok(()) => info!(
            "mailed '{}' to {} through {}:{}",
            mail.subject,
            settings.to.join(", "),
            settings.server,
            settings.port
        ),
        Err(e) => warn!("cannot mail '{}': {e}", mail.subject),
    }
}

/// Reads keepalived.conf on a blocking thread of its own: a slow or stuck file system holds up
/// this reload, never another task of rvsd.
pub(crate) async fn load_off_thread(
    path: &std::path::Path,
) -> Result<KeepalivedConfig, ConfigError> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || keepalived::load(&owned))
        .await
        .unwrap_or_else(|e| {
            Err(ConfigError::file(
                &path.display().to_string(),
                format!("the loader stopped: {e}"),
            ))
        })
}
