//! What a service does when its real servers change state, as keepalived does it, as plain data:
//! the table changes for the director, the notify scripts to run, the mail to send, and the log
//! lines saying why.
//!
//! - A real server is in the table while it is up; down, it is removed, or kept at weight 0
//!   with inhibit_on_failure.
//! - Quorum: the sum of the weights of live servers. Without quorum it is gained when the sum
//!   reaches quorum + hysteresis; with it, it is lost when the sum falls below
//!   quorum - hysteresis (or to 0). While it is lost, a sorry server, if configured, replaces
//!   all real servers; quorum_up/quorum_down run on the changes.
//! - notify_up/notify_down run, as configured and without added arguments (keepalived's real
//!   server notifiers), when a server changes state.

use super::{
    DesiredService,
    runner::{CheckEvent, ServerStates},
};
use crate::model::{DestAddr, DestConfig, ServiceId};

/// One thing to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    AddDest {
        service: ServiceId,
        dest: DestAddr,
        config: DestConfig,
    },
    EditDest {
        service: ServiceId,
        dest: DestAddr,
        config: DestConfig,
    },
    DeleteDest {
        service: ServiceId,
        dest: DestAddr,
    },
    /// A shell command for `/bin/sh -c` ([`super::notify::run_script`]).
    RunScript {
        command: String,
    },
    /// A notification for [`super::notify::send_mail`].
    Mail(Mail),
    /// A line for the log: a transition and its reason.
    Log(String),
}

/// A notification as keepalived words it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub body: String,
}

/// The state of one service.
#[derive(Clone, Debug)]
pub struct Health {
    svc: DesiredService,
    router_id: String,
    alive: Vec<bool>,
    /// Weights in force: configured, or set by misc_dynamic.
    weight: Vec<i32>,
    quorum_up: bool,
    /// What the director holds (as far as these actions went).
    table: Vec<(DestAddr, DestConfig)>,
}

impl Health {
    /// A service whose servers start as their checkers do (up unless alpha), or as `previous`
    /// says (a reload: [`super::Runner::states`]). `router_id` names the director in mail.
    pub fn new(svc: DesiredService, router_id: &str, previous: &ServerStates) -> Health {
        let alive = svc
            .dests
            .iter()
            .map(|d| {
                previous
                    .get(&(svc.service, d.addr))
                    .copied()
                    .unwrap_or_else(|| d.initially_up())
            })
            .collect();
        let weight = svc.dests.iter().map(|d| d.config.weight).collect();
        let mut h = Health {
            svc,
            router_id: router_id.to_owned(),
            alive,
            weight,
            quorum_up: false,
            table: Vec::new(),
        };
        h.quorum_up = h.live_weight() >= i64::from(h.svc.quorum) + i64::from(h.svc.hysteresis);
        h
    }

    pub fn service(&self) -> &DesiredService {
        &self.svc
    }

    pub fn quorum_up(&self) -> bool {
        self.quorum_up
    }

    pub fn is_alive(&self, dest: &DestAddr) -> Option<bool> {
        self.svc
            .dests
            .iter()
            .position(|d| d.addr == *dest)
            .map(|i| self.alive[i])
    }

    /// The real servers (and sorry server) the director should hold, with their weights.
    pub fn table(&self) -> &[(DestAddr, DestConfig)] {
        &self.table
    }

    /// The initial table (the service itself is added by the caller), and the quorum
    /// notifications of a service that starts without quorum but with a sorry server.
    pub fn start(&mut self) -> Vec<Action> {
        self.resume(Vec::new())
    }

    /// Like [`Health::start`] for a service the director already holds (a reload changed its
    /// settings): `current` is what its table holds now, and only the differences are applied.
    pub fn resume(&mut self, current: Vec<(DestAddr, DestConfig)>) -> Vec<Action> {
        self.table = current;
        let mut actions = Vec::new();
        let mut notices = Vec::new();
        let sorry_in = self.svc.sorry_server.as_ref().is_some_and(|s| {
            self.table
                .iter()
                .any(|(a, c)| *a == s.addr && c.weight == s.config.weight)
        });
        if !self.quorum_up && self.svc.sorry_server.is_some() && !sorry_in {
            self.quorum_notices("Starting with quorum down", &mut actions, &mut notices);
        }
        actions.extend(self.sync());
        actions.extend(notices);
        actions
    }

    /// Applies a checker event; events for other services or unknown servers change nothing.
    pub fn on_event(&mut self, ev: &CheckEvent) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut notices = Vec::new();
        let Some(i) = self
            .svc
            .dests
            .iter()
            .position(|d| d.addr == ev.dest)
            .filter(|_| ev.service == self.svc.service)
        else {
            return actions;
        };
        let rs = self.svc.dests[i].clone();
        let rs_name = dest_name(&rs.addr);
        if let Some(w) = ev.weight
            && w != self.weight[i]
        {
            actions.push(Action::Log(format!(
                "Changing weight from {} to {w} for {}active service {rs_name} of VS {}",
                self.weight[i],
                if self.alive[i] { "" } else { "in" },
                self.svc.name
            )));
            self.weight[i] = w;
        }
        if ev.up != self.alive[i] {
            self.alive[i] = ev.up;
            let verb = match (ev.up, rs.inhibit_on_failure) {
                (true, false) => "Adding service",
                (true, true) => "Enabling service",
                (false, false) => "Removing service",
                (false, true) => "Disabling service",
            };
            let prep = match (ev.up, rs.inhibit_on_failure) {
                (_, true) => "of",
                (true, false) => "to",
                (false, false) => "from",
            };
            actions.push(Action::Log(format!(
                "{verb} {rs_name} {prep} VS {} ({})",
                self.svc.name, ev.reason
            )));
            let script = if ev.up {
                &rs.notify_up
            } else {
                &rs.notify_down
            };
            if let Some(command) = script {
                notices.push(Action::RunScript {
                    command: command.clone(),
                });
            }
            if rs.smtp_alert {
                notices.push(Action::Mail(Mail {
                    subject: format!(
                        "[{}] Realserver {rs_name} of virtual server {} - {}",
                        self.router_id,
                        self.svc.name,
                        if ev.up { "UP" } else { "DOWN" }
                    ),
                    body: format!("=> {} <=", ev.reason),
                }));
            }
        }
        self.update_quorum(&mut actions, &mut notices);
        actions.extend(self.sync());
        actions.extend(notices);
        actions
    }

    /// Removes everything this service put in the table (rvsd stopping, or the service
    /// leaving the configuration). With `omega`, the down notifiers run as keepalived's do.
    pub fn shutdown(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut notices = Vec::new();
        if self.svc.omega {
            for (i, rs) in self.svc.dests.iter().enumerate() {
                if !self.alive[i] {
                    continue;
                }
                if let Some(command) = &rs.notify_down {
                    notices.push(Action::RunScript {
                        command: command.clone(),
                    });
                }
                if rs.smtp_alert {
                    notices.push(Action::Mail(Mail {
                        subject: format!(
                            "[{}] Realserver {} of virtual server {} - DOWN",
                            self.router_id,
                            dest_name(&rs.addr),
                            self.svc.name
                        ),
                        body: "=> Shutting down <=".to_owned(),
                    }));
                }
            }
            if self.quorum_up {
                if let Some(command) = &self.svc.quorum_down {
                    notices.push(Action::RunScript {
                        command: command.clone(),
                    });
                }
                if self.svc.smtp_alert {
                    notices.push(Action::Mail(Mail {
                        subject: format!(
                            "[{}] Virtualserver {} - DOWN",
                            self.router_id, self.svc.name
                        ),
                        body: "=> Shutting down <=".to_owned(),
                    }));
                }
            }
        }
        for (dest, _) in std::mem::take(&mut self.table) {
            actions.push(Action::DeleteDest {
                service: self.svc.service,
                dest,
            });
        }
        self.quorum_up = false;
        actions.extend(notices);
        actions
    }

    fn live_weight(&self) -> i64 {
        self.alive
            .iter()
            .zip(&self.weight)
            .filter(|(a, _)| **a)
            .map(|(_, w)| i64::from((*w).max(0)))
            .sum()
    }

    fn update_quorum(&mut self, actions: &mut Vec<Action>, notices: &mut Vec<Action>) {
        let sum = self.live_weight();
        let (quorum, hysteresis) = (i64::from(self.svc.quorum), i64::from(self.svc.hysteresis));
        if !self.quorum_up && sum >= quorum + hysteresis {
            self.quorum_up = true;
            self.quorum_notices("Gained quorum", actions, notices);
        } else if self.quorum_up && (sum == 0 || sum < quorum - hysteresis) {
            self.quorum_up = false;
            self.quorum_notices("Lost quorum", actions, notices);
        }
    }

    /// The log line, the sorry server's coming or going, the quorum script and mail.
    fn quorum_notices(&self, what: &str, actions: &mut Vec<Action>, notices: &mut Vec<Action>) {
        let sum = self.live_weight();
        let (q, h) = (i64::from(self.svc.quorum), i64::from(self.svc.hysteresis));
        let figures = if self.quorum_up {
            format!("{q}+{h}={} <= {sum}", q + h)
        } else {
            format!("{q}-{h}={} > {sum}", q - h)
        };
        actions.push(Action::Log(format!(
            "{what} {figures} for VS {}",
            self.svc.name
        )));
        if let Some(s) = &self.svc.sorry_server {
            let line = match (self.quorum_up, s.inhibit) {
                (true, false) => "Removing sorry server",
                (true, true) => "Disabling sorry server",
                (false, false) => "Adding sorry server",
                (false, true) => "Enabling sorry server",
            };
            let prep = if self.quorum_up { "from" } else { "to" };
            actions.push(Action::Log(format!(
                "{line} {} {prep} VS {}",
                dest_name(&s.addr),
                self.svc.name
            )));
        }
        let script = if self.quorum_up {
            &self.svc.quorum_up
        } else {
            &self.svc.quorum_down
        };
        if let Some(command) = script {
            notices.push(Action::RunScript {
                command: command.clone(),
            });
        }
        if self.svc.smtp_alert {
            notices.push(Action::Mail(Mail {
                subject: format!(
                    "[{}] Virtualserver {} - {}",
                    self.router_id,
                    self.svc.name,
                    if self.quorum_up { "UP" } else { "DOWN" }
                ),
                body: format!("=> {what} {figures} <="),
            }));
        }
    }

    /// What the table should hold now.
    fn wanted(&self) -> Vec<(DestAddr, DestConfig)> {
        let sorry_in = self.svc.sorry_server.is_some() && !self.quorum_up;
        let mut out: Vec<(DestAddr, DestConfig)> = Vec::new();
        for (i, rs) in self.svc.dests.iter().enumerate() {
            let weight = if self.alive[i] && !sorry_in {
                self.weight[i]
            } else if rs.inhibit_on_failure {
                0
            } else {
                continue;
            };
            out.push((
                rs.addr,
                DestConfig {
                    weight,
                    ..rs.config.clone()
                },
            ));
        }
        if let Some(s) = &self.svc.sorry_server {
            let weight = if sorry_in {
                s.config.weight
            } else if s.inhibit {
                0
            } else {
                return out;
            };
            let entry = (
                s.addr,
                DestConfig {
                    weight,
                    ..s.config.clone()
                },
            );
            // A sorry server that is also a real server stands in for it while needed.
            match out.iter_mut().find(|(a, _)| *a == s.addr) {
                Some(existing) if sorry_in => *existing = entry,
                Some(_) => {}
                None => out.push(entry),
            }
        }
        out
    }

    /// Table changes from what was applied to what is wanted. Servers leave (deleted, or set to
    /// weight 0) before others come in, as keepalived takes the real servers out before the
    /// sorry server goes in, and the other way round.
    fn sync(&mut self) -> Vec<Action> {
        let wanted = self.wanted();
        let service = self.svc.service;
        let mut leaving = Vec::new();
        let mut coming = Vec::new();
        for (dest, _) in &self.table {
            if !wanted.iter().any(|(a, _)| a == dest) {
                leaving.push(Action::DeleteDest {
                    service,
                    dest: *dest,
                });
            }
        }
        for (dest, config) in &wanted {
            let (dest, config) = (*dest, config.clone());
            match self.table.iter().find(|(a, _)| *a == dest) {
                None => coming.push(Action::AddDest {
                    service,
                    dest,
                    config,
                }),
                Some((_, old)) if *old == config => {}
                Some(_) if config.weight == 0 => leaving.push(Action::EditDest {
                    service,
                    dest,
                    config,
                }),
                Some(_) => coming.push(Action::EditDest {
                    service,
                    dest,
                    config,
                }),
            }
        }
        self.table = wanted;
        leaving.extend(coming);
        leaving
    }
}

/// keepalived's name of a real server: `[10.0.0.1]:80`.
pub fn dest_name(d: &DestAddr) -> String {
    format!("[{}]:{}", d.addr, d.port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        check::{CheckKind, CheckSpec, DesiredDest, SorryServer},
        model::{FwdMethod, Protocol, ServiceConfig},
    };

    fn svc_id() -> ServiceId {
        ServiceId::Inet {
            proto: Protocol::Tcp,
            addr: "192.0.2.1".parse().unwrap(),
            port: 80,
        }
    }

    fn addr(last: u8) -> DestAddr {
        DestAddr {
            addr: [10, 0, 0, last].into(),
            port: 80,
        }
    }

    fn checker(alpha: bool) -> CheckSpec {
        let mut s = crate::check::testing::spec(CheckKind::Tcp, "127.0.0.1:80".parse().unwrap());
        s.alpha = alpha;
        s
    }

    fn rs(last: u8, weight: i32) -> DesiredDest {
        DesiredDest {
            addr: addr(last),
            config: DestConfig {
                fwd: FwdMethod::Route,
                weight,
                ..DestConfig::default()
            },
            checkers: vec![checker(false)],
            inhibit_on_failure: false,
            notify_up: Some(format!("up {last}")),
            notify_down: Some(format!("down {last}")),
            smtp_alert: false,
        }
    }

    fn svc(dests: Vec<DesiredDest>) -> DesiredService {
        DesiredService {
            service: svc_id(),
            config: ServiceConfig::new("wrr", false),
            virtual_server: 0,
            name: "[192.0.2.1]:tcp:80".into(),
            dests,
            sorry_server: None,
            quorum: 1,
            hysteresis: 0,
            quorum_up: Some("qup".into()),
            quorum_down: Some("qdown".into()),
            smtp_alert: false,
            omega: false,
            ha_suspend: false,
        }
    }

    fn ev(last: u8, up: bool) -> CheckEvent {
        CheckEvent {
            service: svc_id(),
            dest: addr(last),
            up,
            reason: "TCP_CHECK on x failed".into(),
            weight: None,
        }
    }

    fn sorry() -> SorryServer {
        SorryServer {
            addr: DestAddr {
                addr: [10, 0, 9, 9].into(),
                port: 80,
            },
            config: DestConfig {
                fwd: FwdMethod::Masq,
                ..DestConfig::default()
            },
            inhibit: false,
        }
    }

    /// The table and script actions only (logs and mail aside), in a short form.
    fn brief(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::AddDest { dest, config, .. } => {
                    Some(format!("add {} w{}", dest.addr, config.weight))
                }
                Action::EditDest { dest, config, .. } => {
                    Some(format!("edit {} w{}", dest.addr, config.weight))
                }
                Action::DeleteDest { dest, .. } => Some(format!("del {}", dest.addr)),
                Action::RunScript { command } => Some(format!("run {command}")),
                Action::Mail(_) | Action::Log(_) => None,
            })
            .collect()
    }

    fn logs(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| {
                if let Action::Log(l) = a {
                    Some(l.clone())
                } else {
                    None
                }
            })
            .collect()
    }

    #[test]
    fn servers_leave_and_return() {
        let mut h = Health::new(svc(vec![rs(1, 3), rs(2, 2)]), "lb1", &ServerStates::new());
        assert_eq!(brief(&h.start()), ["add 10.0.0.1 w3", "add 10.0.0.2 w2"]);
        let a = h.on_event(&ev(1, false));
        assert_eq!(brief(&a), ["del 10.0.0.1", "run down 1"]);
        assert_eq!(
            logs(&a),
            ["Removing service [10.0.0.1]:80 from VS [192.0.2.1]:tcp:80 (TCP_CHECK on x failed)"]
        );
        assert!(
            brief(&h.on_event(&ev(1, false))).is_empty(),
            "no change, nothing to do"
        );
        assert_eq!(
            brief(&h.on_event(&ev(1, true))),
            ["add 10.0.0.1 w3", "run up 1"]
        );
        // Losing the last server loses quorum (quorum 1): the quorum_down script runs.
        h.on_event(&ev(1, false));
        let a = h.on_event(&ev(2, false));
        assert_eq!(brief(&a), ["del 10.0.0.2", "run down 2", "run qdown"]);
        assert_eq!(
            logs(&a)[1],
            "Lost quorum 1-0=1 > 0 for VS [192.0.2.1]:tcp:80"
        );
        assert!(!h.quorum_up());
        let a = h.on_event(&ev(2, true));
        assert_eq!(brief(&a), ["add 10.0.0.2 w2", "run up 2", "run qup"]);
        assert_eq!(
            logs(&a)[1],
            "Gained quorum 1+0=1 <= 2 for VS [192.0.2.1]:tcp:80"
        );
    }

    #[test]
    fn inhibit_on_failure_keeps_weight_zero() {
        let mut d = rs(1, 3);
        d.inhibit_on_failure = true;
        d.checkers = vec![checker(true)];
        let mut h = Health::new(svc(vec![d]), "lb1", &ServerStates::new());
        assert_eq!(
            brief(&h.start()),
            ["add 10.0.0.1 w0"],
            "alpha: in the table at weight 0"
        );
        let a = h.on_event(&ev(1, true));
        assert_eq!(brief(&a), ["edit 10.0.0.1 w3", "run up 1", "run qup"]);
        assert!(logs(&a)[0].starts_with("Enabling service [10.0.0.1]:80 of VS"));
        assert_eq!(
            brief(&h.on_event(&ev(1, false))),
            ["edit 10.0.0.1 w0", "run down 1", "run qdown"]
        );
        assert_eq!(h.table().len(), 1);
    }

    #[test]
    fn quorum_hysteresis_and_the_sorry_server() {
        let mut s = svc(vec![rs(1, 3), rs(2, 1), rs(3, 1)]);
        (s.quorum, s.hysteresis, s.sorry_server) = (4, 1, Some(sorry()));
        let mut h = Health::new(s, "lb1", &ServerStates::new());
        assert!(h.quorum_up(), "5 >= 4 + 1");
        assert_eq!(
            brief(&h.start()),
            ["add 10.0.0.1 w3", "add 10.0.0.2 w1", "add 10.0.0.3 w1"]
        );
        // 4 and then 3 stay above quorum - hysteresis = 3: no sorry server yet.
        assert_eq!(
            brief(&h.on_event(&ev(2, false))),
            ["del 10.0.0.2", "run down 2"]
        );
        assert_eq!(
            brief(&h.on_event(&ev(3, false))),
            ["del 10.0.0.3", "run down 3"]
        );
        assert!(h.quorum_up());
        // 0 < 3: lost; the live server makes way for the sorry server.
        let a = h.on_event(&ev(1, false));
        assert_eq!(
            brief(&a),
            ["del 10.0.0.1", "add 10.0.9.9 w1", "run down 1", "run qdown"]
        );
        assert_eq!(
            logs(&a)[1..],
            [
                "Lost quorum 4-1=3 > 0 for VS [192.0.2.1]:tcp:80",
                "Adding sorry server [10.0.9.9]:80 to VS [192.0.2.1]:tcp:80"
            ]
        );
        // Back to 3, then 4: below quorum + hysteresis = 5, the servers stay out.
        assert_eq!(brief(&h.on_event(&ev(1, true))), ["run up 1"]);
        assert_eq!(brief(&h.on_event(&ev(2, true))), ["run up 2"]);
        assert!(!h.quorum_up());
        // 5: gained; the sorry server goes, the live servers come back.
        let a = h.on_event(&ev(3, true));
        assert_eq!(
            brief(&a),
            [
                "del 10.0.9.9",
                "add 10.0.0.1 w3",
                "add 10.0.0.2 w1",
                "add 10.0.0.3 w1",
                "run up 3",
                "run qup"
            ]
        );
        assert_eq!(
            logs(&a)[1],
            "Gained quorum 4+1=5 <= 5 for VS [192.0.2.1]:tcp:80"
        );
    }

    #[test]
    fn starting_without_quorum_brings_the_sorry_server() {
        let mut a = rs(1, 1);
        a.checkers = vec![checker(true)];
        let mut s = svc(vec![a]);
        s.sorry_server = Some(SorryServer {
            inhibit: true,
            ..sorry()
        });
        s.smtp_alert = true;
        let mut h = Health::new(s, "lb1", &ServerStates::new());
        let actions = h.start();
        assert_eq!(brief(&actions), ["add 10.0.9.9 w1", "run qdown"]);
        assert!(actions.contains(&Action::Mail(Mail {
            subject: "[lb1] Virtualserver [192.0.2.1]:tcp:80 - DOWN".into(),
            body: "=> Starting with quorum down 1-0=1 > 0 <=".into(),
        })));
        // sorry_server_inhibit: kept at weight 0 once quorum is there.
        assert_eq!(
            brief(&h.on_event(&ev(1, true))),
            ["edit 10.0.9.9 w0", "add 10.0.0.1 w1", "run up 1", "run qup"]
        );
    }

    #[test]
    fn resume_applies_only_differences() {
        let mut s = svc(vec![rs(1, 3), rs(2, 2), rs(3, 1)]);
        s.sorry_server = Some(sorry());
        s.quorum = 10;
        let mut h = Health::new(s, "lb1", &ServerStates::new());
        let held = vec![(addr(1), rs(1, 3).config), (sorry().addr, sorry().config)];
        // The sorry server is already in: no "Starting with quorum down" again.
        assert_eq!(brief(&h.resume(held)), ["del 10.0.0.1"]);
        let mut s = svc(vec![rs(1, 3), rs(2, 2)]);
        s.dests[1].config.weight = 5;
        let mut h = Health::new(s, "lb1", &ServerStates::new());
        let held = vec![
            (addr(1), rs(1, 3).config),
            (addr(2), rs(2, 2).config),
            (addr(3), rs(3, 1).config),
        ];
        assert_eq!(brief(&h.resume(held)), ["del 10.0.0.3", "edit 10.0.0.2 w5"]);
    }

    #[test]
    fn previous_states_dynamic_weights_mail_and_shutdown() {
        let mut a = rs(1, 3);
        a.smtp_alert = true;
        let mut s = svc(vec![a, rs(2, 2)]);
        s.omega = true;
        let previous: ServerStates = [((svc_id(), addr(2)), false)].into();
        let mut h = Health::new(s, "lb1", &previous);
        assert_eq!(
            brief(&h.start()),
            ["add 10.0.0.1 w3"],
            "10.0.0.2 was down before the reload"
        );
        let mut e = ev(1, true);
        e.weight = Some(7);
        let actions = h.on_event(&e);
        assert_eq!(brief(&actions), ["edit 10.0.0.1 w7"]);
        assert_eq!(
            logs(&actions),
            [
                "Changing weight from 3 to 7 for active service [10.0.0.1]:80 of VS [192.0.2.1]:tcp:80"
            ]
        );
        let actions = h.on_event(&ev(1, false));
        assert!(actions.contains(&Action::Mail(Mail {
            subject:
                "[lb1] Realserver [10.0.0.1]:80 of virtual server [192.0.2.1]:tcp:80 - DOWN".into(),
            body: "=> TCP_CHECK on x failed <=".into(),
        })));
        h.on_event(&ev(1, true));
        let mut other = ev(2, true);
        other.service = ServiceId::Fwmark {
            mark: 1,
            ipv6: false,
        };
        assert!(h.on_event(&other).is_empty(), "another service's event");
        // omega: the down notifiers run at shutdown.
        assert_eq!(
            brief(&h.shutdown()),
            ["del 10.0.0.1", "run down 1", "run qdown"]
        );
        assert!(h.table().is_empty());
    }
}
