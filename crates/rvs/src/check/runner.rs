//! Runs every checker of every real server on its own timer, as keepalived schedules them:
//!
//! - before the first check, a random delay of up to `warmup` (default delay_loop);
//! - a success marks the checker up at once and resets its retry count;
//! - a failure while up is retried after `delay_before_retry`, `retry` times; the failure after
//!   the last retry marks it down (so an up checker goes down after retry + 1 failures in a row);
//! - while down, or after a success, the next check comes after `delay_loop`;
//! - `alpha` checkers start down, the others up.
//!
//! A real server is up while all its checkers are; every change of that (or of the weight a
//! misc_dynamic script asks for) becomes a [`CheckEvent`] for each service the server belongs
//! to. Each checker runs in its own task, so a slow server delays nobody else.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    sync::mpsc,
    task::{JoinHandle, JoinSet},
};
use tracing::{debug, info};

use super::{CheckSpec, DesiredService, net, run_once};
use crate::model::{DestAddr, ServiceId};

/// A real server changed state (or weight) for one of its services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckEvent {
    pub service: ServiceId,
    pub dest: DestAddr,
    /// All of the server's checkers pass.
    pub up: bool,
    /// Which checker decided it and why ("TCP_CHECK on 10.0.0.1:80 failed: connection refused").
    pub reason: String,
    /// misc_dynamic: the weight the script asked for.
    pub weight: Option<i32>,
}

/// Up/down of every real server with checkers, by service and address.
pub type ServerStates = HashMap<(ServiceId, DestAddr), bool>;

/// The running checkers. Dropping it (or [`Runner::stop`]) stops them all.
pub struct Runner {
    tasks: Vec<JoinHandle<()>>,
    states: Arc<Mutex<ServerStates>>,
}

impl Runner {
    /// Starts the checkers of `services`; events go to `events`.
    pub fn start(services: &[DesiredService], events: mpsc::Sender<CheckEvent>) -> Runner {
        Runner::start_from(services, events, &ServerStates::new())
    }

    /// Starts the checkers, servers found in `previous` (a reload) starting from their state
    /// there instead of from `alpha`.
    pub fn start_from(
        services: &[DesiredService],
        events: mpsc::Sender<CheckEvent>,
        previous: &ServerStates,
    ) -> Runner {
        let states = Arc::new(Mutex::new(ServerStates::new()));
        // The services of one virtual_server (a group) share the checkers of each real server.
        let mut servers: HashMap<(usize, usize), Server> = HashMap::new();
        let mut order = Vec::new();
        for svc in services {
            for (i, dest) in svc.dests.iter().enumerate() {
                if dest.checkers.is_empty() {
                    continue;
                }
                let key = (svc.virtual_server, i);
                let server = servers.entry(key).or_insert_with(|| {
                    order.push(key);
                    Server {
                        targets: Vec::new(),
                        checkers: dest.checkers.clone(),
                        initial: None,
                    }
                });
                let target = (svc.service, dest.addr);
                if let Some(&up) = previous.get(&target) {
                    server.initial = Some(up);
                }
                server.targets.push(target);
            }
        }
        let mut tasks = Vec::new();
        for key in order {
            let Some(server) = servers.remove(&key) else {
                continue;
            };
            let initial = server
                .initial
                .unwrap_or_else(|| server.checkers.iter().all(|c| !c.alpha));
            if let Ok(mut s) = states.lock() {
                for t in &server.targets {
                    s.insert(*t, initial);
                }
            }
            tasks.push(tokio::spawn(run_server(
                server,
                events.clone(),
                states.clone(),
            )));
        }
        Runner { tasks, states }
    }

    /// The current state of every checked real server (to carry over a reload).
    pub fn states(&self) -> ServerStates {
        self.states.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stops every checker (scripts being run are killed) and waits for them to end.
    pub async fn stop(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct Server {
    /// (service, address) pairs this server stands for.
    targets: Vec<(ServiceId, DestAddr)>,
    checkers: Vec<CheckSpec>,
    /// State carried over a reload.
    initial: Option<bool>,
}

/// A checker's change, to its server's task.
struct Report {
    index: usize,
    up: bool,
    reason: String,
    weight: Option<i32>,
}

async fn run_server(
    server: Server,
    events: mpsc::Sender<CheckEvent>,
    states: Arc<Mutex<ServerStates>>,
) {
    let (tx, mut rx) = mpsc::channel(16);
    let mut up: Vec<bool> = server
        .checkers
        .iter()
        .map(|c| server.initial.unwrap_or(!c.alpha))
        .collect();
    // Dropping the set (when this task is aborted) aborts the checkers.
    let mut checkers = JoinSet::new();
    for (index, spec) in server.checkers.iter().enumerate() {
        checkers.spawn(run_checker(index, spec.clone(), up[index], tx.clone()));
    }
    drop(tx);
    let mut combined = up.iter().all(|&u| u);
    let mut weight = None;
    while let Some(report) = rx.recv().await {
        up[report.index] = report.up;
        let now = up.iter().all(|&u| u);
        let new_weight = report.weight.is_some() && report.weight != weight;
        if report.weight.is_some() {
            weight = report.weight;
        }
        if now == combined && !new_weight {
            continue;
        }
        combined = now;
        if let Ok(mut s) = states.lock() {
            for t in &server.targets {
                s.insert(*t, now);
            }
        }
        for &(service, dest) in &server.targets {
            let event = CheckEvent {
                service,
                dest,
                up: now,
                reason: report.reason.clone(),
                weight: report.weight,
            };
            if events.send(event).await.is_err() {
                return;
            }
        }
    }
}

async fn run_checker(index: usize, spec: CheckSpec, mut up: bool, tx: mpsc::Sender<Report>) {
    let name = spec.kind.name();
    let target = spec.target;
    if !spec.warmup.is_zero() {
        tokio::time::sleep(jitter(spec.warmup)).await;
    }
    let mut retries = 0;
    let mut weight = None;
    loop {
        let outcome = run_once(&spec).await;
        let delay = if outcome.ok {
            retries = 0;
            let changed = !up;
            let new_weight = outcome.weight.is_some() && outcome.weight != weight;
            if new_weight {
                weight = outcome.weight;
            }
            up = true;
            if changed || new_weight {
                let reason = format!("{name} on {target} succeeded: {}", outcome.detail);
                info!("{reason}");
                let report = Report {
                    index,
                    up,
                    reason,
                    weight: outcome.weight,
                };
                if tx.send(report).await.is_err() {
                    return;
                }
            }
            spec.delay_loop
        } else if up && retries < spec.retry {
            retries += 1;
            debug!(
                "{name} on {target} failed ({}), retry {retries} of {}",
                outcome.detail, spec.retry
            );
            spec.delay_before_retry
        } else {
            if up {
                let after = if spec.retry > 0 {
                    format!(" after {} retries", spec.retry)
                } else {
                    String::new()
                };
                let reason = format!("{name} on {target} failed{after}: {}", outcome.detail);
                info!("{reason}");
                up = false;
                retries = 0;
                if tx
                    .send(Report {
                        index,
                        up,
                        reason,
                        weight: None,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            spec.delay_loop
        };
        tokio::time::sleep(delay).await;
    }
}

/// A random duration in `[0, max]`.
fn jitter(max: Duration) -> Duration {
    let fraction = (net::random_u64() >> 11) as f64 / (1u64 << 53) as f64;
    max.mul_f64(fraction)
}
