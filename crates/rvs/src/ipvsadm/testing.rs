//! Test doubles: a resolver with a fixed table, and a backend that applies requests to a
//! [`Model`] the way rvsd does (without a daemon or a data plane).

use std::{
    cell::RefCell,
    io,
    net::{IpAddr, Ipv4Addr},
    rc::Rc,
};

use super::{Io, resolve::Resolver, run_with};
use crate::control::{
    client::Backend,
    proto::{ConnView, DestView, Info, Request, Response, ServiceView},
};
use crate::model::{Model, ModelError, ServiceId};

/// Names for a few addresses and ports, nothing else.
pub struct FakeResolver;

pub const LONG_HOST: &str = "a-very-long-host-name-that-goes-on-and-on.example.com";

impl Resolver for FakeResolver {
    fn host_v4(&self, name: &str) -> Option<Ipv4Addr> {
        match name {
            "web.example" => Some(Ipv4Addr::new(192, 0, 2, 80)),
            "localhost" => Some(Ipv4Addr::LOCALHOST),
            "averyveryverylonghostname.example.com" => Some(Ipv4Addr::new(192, 0, 2, 7)),
            _ => None,
        }
    }

    fn service_port(&self, name: &str, proto: &str) -> Option<u16> {
        match (name, proto) {
            ("http", _) => Some(80),
            ("https", "tcp" | "udp") => Some(443),
            ("http-alt", "tcp" | "udp") => Some(8080),
            ("domain", _) => Some(53),
            _ => None,
        }
    }

    fn host_name(&self, addr: IpAddr) -> Option<String> {
        let name = match addr.to_string().as_str() {
            "192.0.2.7" => "averyveryverylonghostname.example.com",
            "192.0.2.80" => "web.example",
            "192.0.2.99" => LONG_HOST,
            "2001:db8::1" => "v6host.example",
            _ => return None,
        };
        Some(name.to_owned())
    }

    fn service_name(&self, port: u16, proto: &str) -> Option<String> {
        let name = match (port, proto) {
            (80, _) => "http",
            (443, "tcp" | "udp") => "https",
            (8080, "tcp" | "udp") => "http-alt",
            (53, _) => "domain",
            _ => return None,
        };
        Some(name.to_owned())
    }
}

/// What the test backend holds; shared with the test through an `Rc`.
#[derive(Default)]
pub struct State {
    pub model: Model,
    /// Extra services answered by ListServices (features the model refuses, with counters).
    pub canned: Vec<ServiceView>,
    pub conns: Vec<ConnView>,
    /// Every request but Info.
    pub log: Vec<Request>,
    /// Answer every request but Info with this error.
    pub fail_with: Option<(i32, String)>,
}

pub struct ModelBackend(pub Rc<RefCell<State>>);

fn done(r: Result<(), ModelError>) -> Response {
    match r {
        Ok(()) => Response::Ok,
        Err(e) => Response::Error {
            errno: e.errno,
            detail: e.detail,
        },
    }
}

fn no_such_service() -> Response {
    Response::Error {
        errno: libc::ESRCH,
        detail: String::new(),
    }
}

fn view(svc: &crate::model::Service) -> ServiceView {
    ServiceView {
        service: svc.id,
        config: svc.config.clone(),
        stats: Default::default(),
        rate: Default::default(),
        dests: svc
            .dests
            .iter()
            .map(|d| DestView {
                dest: d.addr,
                config: d.config.clone(),
                active_conns: 0,
                inactive_conns: 0,
                persist_conns: 0,
                stats: Default::default(),
                rate: Default::default(),
            })
            .collect(),
    }
}

impl State {
    fn services(&self, only: Option<&ServiceId>) -> Vec<ServiceView> {
        self.model
            .services
            .iter()
            .map(view)
            .chain(self.canned.iter().cloned())
            .filter(|v| only.is_none_or(|id| v.service == *id))
            .collect()
    }

    fn answer(&mut self, req: &Request) -> Response {
        let m = &mut self.model;
        match req {
            Request::Info => unreachable!("answered by the backend"),
            Request::AddService { service, config } => {
                done(m.add_service(*service, config.clone()))
            }
            Request::EditService { service, config } => {
                done(m.edit_service(service, config.clone()))
            }
            Request::DeleteService { service } => done(m.delete_service(service)),
            Request::Clear => {
                m.clear();
                Response::Ok
            }
            Request::AddDest {
                service,
                dest,
                config,
            } => done(m.add_dest(service, *dest, config.clone()).map(|_| ())),
            Request::EditDest {
                service,
                dest,
                config,
            } => done(m.edit_dest(service, *dest, config.clone())),
            Request::DeleteDest { service, dest } => done(m.delete_dest(service, *dest)),
            Request::Zero { service } => match service {
                Some(id) if m.service(id).is_none() => no_such_service(),
                _ => Response::Ok,
            },
            Request::SetTimeouts { timeouts } => {
                m.set_timeouts(*timeouts);
                Response::Ok
            }
            Request::GetTimeouts => Response::Timeouts {
                timeouts: m.timeouts,
            },
            Request::ListServices { service } => {
                let services = self.services(service.as_ref());
                if service.is_some() && services.is_empty() {
                    no_such_service()
                } else {
                    Response::Services { services }
                }
            }
            Request::ListConns => Response::Conns {
                conns: self.conns.clone(),
            },
            Request::AddMarkRule { rule } => done(m.add_mark_rule(*rule)),
            Request::DeleteMarkRule { rule } => done(m.delete_mark_rule(*rule)),
            Request::ListMarkRules => Response::MarkRules {
                rules: m.mark_rules.clone(),
            },
            Request::Counters => Response::Counters {
                counters: vec![("xdp_pass".to_owned(), 7), ("xdp_drop".to_owned(), 0)],
            },
            // VRRP (issue 11): no instance runs in the unit tests.
            Request::Vrrp => crate::daemon::vrrp::status_response(),
        }
    }
}

impl Backend for ModelBackend {
    fn call(&mut self, req: &Request) -> io::Result<Response> {
        if *req == Request::Info {
            return Ok(Response::Info(Info {
                ipvs_version: crate::IPVS_VERSION.to_owned(),
                rvs_version: crate::VERSION.to_owned(),
                conn_table_size: 4096,
            }));
        }
        let mut state = self.0.borrow_mut();
        state.log.push(req.clone());
        if let Some((errno, detail)) = state.fail_with.clone() {
            return Ok(Response::Error { errno, detail });
        }
        Ok(state.answer(req))
    }
}

/// What one run printed and returned.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub out: String,
    pub err: String,
}

/// Runs command lines against one shared [`State`].
pub struct Harness {
    pub state: Rc<RefCell<State>>,
    /// Make connecting fail with this errno.
    pub refuse: Option<i32>,
}

impl Harness {
    pub fn new() -> Harness {
        Harness {
            state: Rc::new(RefCell::new(State {
                model: Model::new(64, 64),
                ..State::default()
            })),
            refuse: None,
        }
    }

    /// Runs `ipvsadm <args>` (the program is called `ipvsadm`, as in the spec's examples).
    pub fn run(&self, args: &[&str]) -> Outcome {
        self.run_stdin(args, "")
    }

    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> Outcome {
        let argv: Vec<String> = std::iter::once("ipvsadm")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        let state = Rc::clone(&self.state);
        let refuse = self.refuse;
        let mut connect = move || -> io::Result<Box<dyn Backend>> {
            match refuse {
                Some(errno) => Err(io::Error::from_raw_os_error(errno)),
                None => Ok(Box::new(ModelBackend(Rc::clone(&state)))),
            }
        };
        let mut input = stdin.as_bytes();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let io = Io {
            stdin: &mut input,
            out: &mut out,
            err: &mut err,
        };
        let code = run_with(&argv, &mut connect, &FakeResolver, false, io);
        Outcome {
            code,
            out: String::from_utf8_lossy(&out).into_owned(),
            err: String::from_utf8_lossy(&err).into_owned(),
        }
    }

    /// The requests sent so far (Info excluded), forgetting them.
    pub fn take_log(&self) -> Vec<Request> {
        std::mem::take(&mut self.state.borrow_mut().log)
    }
}
