//! Test doubles: a resolver with a fixed table, and a backend that hands requests to rvsd's own
//! [`Director`] over in-memory maps (no daemon, no kernel), so these tests check the director too.

use std::{
    cell::RefCell,
    io,
    net::{IpAddr, Ipv4Addr},
    rc::Rc,
};

use super::{Io, resolve::Resolver, run_with};
use crate::control::{
    client::Backend,
    proto::{Request, Response},
};
use crate::daemon::{Director, DirectorOptions};
use crate::dataplane::memory::MemoryMaps;
use crate::model::Model;

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
pub struct State {
    /// rvsd's own director, over in-memory maps.
    pub director: Director,
    /// The maps it writes, where a test sets counters and flows as the data plane would.
    pub maps: MemoryMaps,
    /// Every request but Info.
    pub log: Vec<Request>,
    /// Answer every request but Info with this error.
    pub fail_with: Option<(i32, String)>,
}

impl State {
    fn new() -> State {
        let maps = MemoryMaps::new();
        let director = Director::new(
            Model::new(64, 64),
            Box::new(maps.clone()),
            DirectorOptions {
                state_file: None,
                conn_table_size: 4096,
            },
        );
        State {
            director,
            maps,
            log: Vec::new(),
            fail_with: None,
        }
    }
}

/// The client end of a connection to that director, as the control socket serves it.
pub struct DirectorBackend(pub Rc<RefCell<State>>);

impl Backend for DirectorBackend {
    fn call(&mut self, req: &Request) -> io::Result<Response> {
        let mut state = self.0.borrow_mut();
        if *req != Request::Info {
            state.log.push(req.clone());
            if let Some((errno, detail)) = state.fail_with.clone() {
                return Ok(Response::Error { errno, detail });
            }
        }
        Ok(state.director.handle(req.clone()))
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
            state: Rc::new(RefCell::new(State::new())),
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
                None => Ok(Box::new(DirectorBackend(Rc::clone(&state)))),
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
