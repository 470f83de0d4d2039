//! Running parsed command lines against rvsd: ipvsadm's `process_options`, its listings and
//! `-R`.

use std::io::{BufRead, Write};

use super::{
    check::Cmd,
    command::{self, Abort},
    conns,
    entry::CommandEntry,
    format::{self, Format},
    help,
    messages::{Func, io_error_text, ipvs_strerror},
    resolve::Resolver,
    restore::ConfigStream,
    sort,
};
use crate::control::{
    client::Backend,
    proto::{Info, Request, Response},
};

/// ipvsadm's `exit()`: ends the program with this code, even from inside `-R`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit(pub i32);

/// A connected rvsadm: the daemon, where output goes, and libipvs's "last function" (which picks
/// error messages, and which flush and the service dump leave as it was).
pub struct Session<'a> {
    pub backend: Box<dyn Backend>,
    pub info: Info,
    pub resolver: &'a dyn Resolver,
    pub posixly_correct: bool,
    pub last_func: Func,
    pub stdin: &'a mut dyn BufRead,
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
}

impl Session<'_> {
    // Output errors (a closed pipe) are ignored, as ipvsadm's printf results are.
    fn print(&mut self, text: &str) {
        let _ = self.out.write_all(text.as_bytes());
    }

    fn eprint(&mut self, text: &str) {
        let _ = self.err.write_all(text.as_bytes());
        let _ = self.err.flush();
    }

    fn eprintln(&mut self, text: &str) {
        self.eprint(&format!("{text}\n"));
    }

    /// `process_options`: `Ok(true)` when the command succeeded, `Ok(false)` when it failed in a
    /// way a restore survives (exit 255 otherwise).
    pub fn process_options(&mut self, argv: &[String], reading_stdin: bool) -> Result<bool, Exit> {
        let ce = match command::parse(argv, self.posixly_correct, self.resolver) {
            Ok(ce) => ce,
            Err(abort) => return self.abort(argv, abort),
        };
        match ce.cmd {
            Cmd::List => {
                self.list(&ce)?;
                Ok(true)
            }
            Cmd::Restore => self.restore(argv, reading_stdin),
            Cmd::Save => {
                let format = Format {
                    rule: true,
                    ..ce.format
                };
                // What ipvsadm saves, so that plain `ipvsadm -R` reads it; the mark rules are
                // saved apart, by --save-marks, as iptables-save keeps IPVS's marks apart.
                self.list_all(&format)?;
                Ok(true)
            }
            Cmd::SaveMarks => {
                self.save_marks()?;
                Ok(true)
            }
            Cmd::ListMarks => {
                self.list_marks()?;
                Ok(true)
            }
            Cmd::Dataplane => {
                self.dataplane()?;
                Ok(true)
            }
            Cmd::Vrrp => {
                self.vrrp()?;
                Ok(true)
            }
            Cmd::Bgp => {
                let status = match self.query(&Request::Bgp)? {
                    Response::Bgp { status } => status,
                    other => return Err(self.unexpected(other)),
                };
                let text = crate::daemon::bgp::status::render(
                    status.as_ref(),
                    crate::daemon::vrrp::status::unix_ms_now(),
                );
                self.print(&text);
                Ok(true)
            }
            Cmd::L7 => {
                let status = match self.query(&Request::L7)? {
                    Response::L7 { status } => status,
                    other => return Err(self.unexpected(other)),
                };
                self.print(&crate::daemon::l7::status::render(status.as_ref()));
                Ok(true)
            }
            Cmd::Drain | Cmd::Undrain => {
                let op = match ce.cmd {
                    Cmd::Drain => crate::daemon::drain::DrainOp::Start,
                    _ => crate::daemon::drain::DrainOp::Stop,
                };
                let status = match self.query(&Request::Drain { action: op })? {
                    Response::Drain { status } => status,
                    other => return Err(self.unexpected(other)),
                };
                self.print(&crate::daemon::drain::render(&status));
                Ok(true)
            }
            Cmd::Cluster => {
                let status = match self.query(&Request::Cluster)? {
                    Response::Cluster { status } => status,
                    other => return Err(self.unexpected(other)),
                };
                let text = crate::daemon::cluster::status::render(
                    status.as_deref(),
                    crate::daemon::vrrp::status::unix_ms_now(),
                );
                self.print(&text);
                Ok(true)
            }
            Cmd::Sync => {
                let text = crate::daemon::sync::status::render(&self.sync_status()?);
                self.print(&text);
                Ok(true)
            }
            _ => Ok(self.operate(&ce)),
        }
    }

    /// Prints what ends a command line early and says how it ends.
    fn abort(&mut self, argv: &[String], abort: Abort) -> Result<bool, Exit> {
        let program = argv.first().map_or("rvsadm", String::as_str);
        match abort {
            Abort::Fail(message) => {
                self.eprintln(&message);
                Err(Exit(2))
            }
            Abort::TryHelp => {
                self.eprintln(&try_help(program));
                Err(Exit(255))
            }
            Abort::Help => {
                self.print(&help::usage(program));
                Err(Exit(0))
            }
            Abort::Version => {
                self.print(&help::version());
                Err(Exit(0))
            }
            Abort::Popt(message) => {
                self.eprintln(&message);
                Ok(false)
            }
        }
    }

    /// The commands that change the table: one request, silent on success.
    fn operate(&mut self, ce: &CommandEntry) -> bool {
        let service = ce.svc.id();
        let (func, request) = match (ce.cmd, service) {
            (Cmd::Flush, _) => (None, Request::Clear),
            (Cmd::StartDaemon, _) => (
                Some(Func::StartDaemon),
                Request::StartDaemon {
                    daemon: ce.daemon.spec(),
                },
            ),
            (Cmd::StopDaemon, _) => (
                Some(Func::StopDaemon),
                Request::StopDaemon {
                    backup: ce.daemon.backup,
                },
            ),
            (Cmd::Set, _) => (
                Some(Func::SetTimeout),
                Request::SetTimeouts {
                    timeouts: ce.timeouts,
                },
            ),
            (Cmd::Zero, _) => (
                Some(Func::ZeroService),
                Request::Zero {
                    service: if ce.svc.is_unset() { None } else { service },
                },
            ),
            (Cmd::AddService, Some(service)) => (
                Some(Func::AddService),
                Request::AddService {
                    service,
                    config: ce.svc.config(),
                },
            ),
            (Cmd::EditService, Some(service)) => (
                Some(Func::UpdateService),
                Request::EditService {
                    service,
                    config: ce.svc.config(),
                },
            ),
            (Cmd::DeleteService, Some(service)) => {
                (Some(Func::DelService), Request::DeleteService { service })
            }
            (Cmd::AddServer, Some(service)) => (
                Some(Func::AddDest),
                Request::AddDest {
                    service,
                    dest: ce.dest.addr(),
                    config: ce.dest.config.clone(),
                },
            ),
            (Cmd::EditServer, Some(service)) => (
                Some(Func::UpdateDest),
                Request::EditDest {
                    service,
                    dest: ce.dest.addr(),
                    config: ce.dest.config.clone(),
                },
            ),
            (Cmd::DeleteServer, Some(service)) => (
                Some(Func::DelDest),
                Request::DeleteDest {
                    service,
                    dest: ce.dest.addr(),
                },
            ),
            (Cmd::AddMark | Cmd::DelMark, _) => {
                let Some(m) = ce.mark_match else {
                    self.eprintln("no match given");
                    return false;
                };
                let rule = m.with_mark(ce.svc.fwmark);
                let request = if ce.cmd == Cmd::AddMark {
                    Request::AddMarkRule { rule }
                } else {
                    Request::DeleteMarkRule { rule }
                };
                (Some(Func::MarkRule), request)
            }
            // The option table requires a service for the others, so this cannot happen.
            _ => {
                self.eprintln("no virtual service given");
                return false;
            }
        };
        // libipvs's flush does not record itself as the last function.
        if let Some(func) = func {
            self.last_func = func;
        }
        match self.backend.call(&request) {
            Ok(Response::Ok) => true,
            Ok(other) => {
                let message = self.error_text(other);
                self.eprintln(&message);
                false
            }
            Err(e) => {
                let message = io_error_text(self.last_func, &e);
                self.eprintln(&message);
                false
            }
        }
    }

    /// The message for a response that is not the expected one.
    fn error_text(&self, response: Response) -> String {
        match response {
            Response::Error { errno, detail } => ipvs_strerror(self.last_func, errno, &detail),
            other => format!("unexpected answer from rvsd: {other:?}"),
        }
    }

    /// Sends a query; a failure prints its message and exits 1, as ipvsadm's listings do.
    fn query(&mut self, request: &Request) -> Result<Response, Exit> {
        let message = match self.backend.call(request) {
            Ok(Response::Error { errno, detail }) => ipvs_strerror(self.last_func, errno, &detail),
            Ok(response) => return Ok(response),
            Err(e) => io_error_text(self.last_func, &e),
        };
        self.eprintln(&message);
        Err(Exit(1))
    }

    fn unexpected(&mut self, response: Response) -> Exit {
        let message = self.error_text(response);
        self.eprintln(&message);
        Exit(1)
    }

    /// `-L` in its modes.
    fn list(&mut self, ce: &CommandEntry) -> Result<(), Exit> {
        use super::check::Opt;
        if ce.options.has(Opt::Connection) {
            self.list_conns(&ce.format)
        } else if ce.options.has(Opt::Service) {
            self.list_service(ce)
        } else if ce.options.has(Opt::Timeout) {
            self.list_timeout()
        } else if ce.options.has(Opt::Daemon) {
            let text = crate::daemon::sync::status::render_daemons(&self.sync_status()?);
            self.print(&text);
            Ok(())
        } else {
            self.list_all(&ce.format)
        }
    }

    /// The whole table (`-L`), or its rules (`-S`).
    pub fn list_all(&mut self, format: &Format) -> Result<(), Exit> {
        if !format.rule {
            let banner = format!(
                "IP Virtual Server version {} (size={})\n",
                self.info.ipvs_version, self.info.conn_table_size
            );
            self.print(&banner);
        }
        // libipvs's service dump does not record itself as the last function.
        let mut services = match self.query(&Request::ListServices { service: None })? {
            Response::Services { services } => services,
            other => return Err(self.unexpected(other)),
        };
        if !format.nosort {
            sort::sort_services(&mut services);
        }
        let mut text = format::title(format);
        for view in &services {
            self.last_func = Func::GetDests;
            text.push_str(&format::service_entry(view, format, self.resolver));
        }
        self.print(&text);
        Ok(())
    }

    /// One service (`-L -t ...`): no banner.
    fn list_service(&mut self, ce: &CommandEntry) -> Result<(), Exit> {
        self.last_func = Func::GetService;
        let request = Request::ListServices {
            service: ce.svc.id(),
        };
        let view = match self.query(&request)? {
            Response::Services { services } => services.into_iter().next(),
            other => return Err(self.unexpected(other)),
        };
        let Some(view) = view else {
            let message = ipvs_strerror(Func::GetService, libc::ESRCH, "");
            self.eprintln(&message);
            return Err(Exit(1));
        };
        self.last_func = Func::GetDests;
        let text =
            format::title(&ce.format) + &format::service_entry(&view, &ce.format, self.resolver);
        self.print(&text);
        Ok(())
    }

    /// `-L --timeout`; ipvsadm fails silently here.
    fn list_timeout(&mut self) -> Result<(), Exit> {
        self.last_func = Func::GetTimeout;
        match self.backend.call(&Request::GetTimeouts) {
            Ok(Response::Timeouts { timeouts: t }) => {
                let line = format!(
                    "Timeout (tcp tcpfin udp): {} {} {}\n",
                    t.tcp, t.tcp_fin, t.udp
                );
                self.print(&line);
                Ok(())
            }
            _ => Err(Exit(1)),
        }
    }

    /// `-L -c`.
    fn list_conns(&mut self, format: &Format) -> Result<(), Exit> {
        let conns = match self.query(&Request::ListConns)? {
            Response::Conns { conns } => conns,
            other => return Err(self.unexpected(other)),
        };
        let mut text = conns::header(format);
        for conn in &conns {
            text.push_str(&conns::row(conn, format, self.resolver));
        }
        self.print(&text);
        Ok(())
    }

    fn mark_rules(&mut self) -> Result<Vec<crate::model::MarkRule>, Exit> {
        self.last_func = Func::MarkRule;
        match self.query(&Request::ListMarkRules)? {
            Response::MarkRules { rules } => Ok(rules),
            other => Err(self.unexpected(other)),
        }
    }

    /// `-S` ends with the mark rules (rvs extension), as commands `-R` reads back.
    fn save_marks(&mut self) -> Result<(), Exit> {
        let text: String = self
            .mark_rules()?
            .iter()
            .map(|r| format!("--add-mark -f {} --match {}\n", r.mark, r.matcher()))
            .collect();
        self.print(&text);
        Ok(())
    }

    /// `--list-marks` (rvs extension): the rules in the order they are tried.
    fn list_marks(&mut self) -> Result<(), Exit> {
        let rules = self.mark_rules()?;
        let mut text = String::from("Mark rules (first match wins)\nMark       Match\n");
        for r in &rules {
            text.push_str(&format!("{:<10} {}\n", r.mark, r.matcher()));
        }
        self.print(&text);
        Ok(())
    }

    /// `--dataplane` (rvs extension): one `name value` line per counter.
    fn dataplane(&mut self) -> Result<(), Exit> {
        let counters = match self.query(&Request::Counters)? {
            Response::Counters { counters } => counters,
            other => return Err(self.unexpected(other)),
        };
        let text: String = counters
            .iter()
            .map(|(name, value)| format!("{name} {value}\n"))
            .collect();
        self.print(&text);
        Ok(())
    }

    /// The sync daemon's status.
    fn sync_status(&mut self) -> Result<crate::daemon::sync::SyncStatus, Exit> {
        match self.query(&Request::SyncStatus)? {
            Response::Sync { status } => Ok(*status),
            other => Err(self.unexpected(other)),
        }
    }

    /// `--vrrp` (rvs extension): each VRRP instance's state, priority, master and counters.
    fn vrrp(&mut self) -> Result<(), Exit> {
        let status = match self.query(&Request::Vrrp)? {
            Response::Vrrp { status } => status,
            other => return Err(self.unexpected(other)),
        };
        let text = crate::daemon::vrrp::status::render(
            &status,
            crate::daemon::vrrp::status::unix_ms_now(),
        );
        self.print(&text);
        Ok(())
    }

    /// `-R`: every line of stdin as a command line. The result is the last line's.
    fn restore(&mut self, argv: &[String], reading_stdin: bool) -> Result<bool, Exit> {
        let program = argv.first().cloned().unwrap_or_default();
        if reading_stdin {
            // A restore inside a restore would read the same input forever.
            self.eprintln(&try_help(&program));
            return Err(Exit(255));
        }
        let mut result = true;
        loop {
            let line = {
                let mut stream = ConfigStream::new(&mut *self.stdin);
                stream.next_line()
            };
            let tokens = match line {
                Ok(Some(tokens)) => tokens,
                // ipvsadm's stream reader treats a read error as the end of the input.
                Ok(None) | Err(_) => break,
            };
            if tokens.is_empty() {
                continue;
            }
            let line_argv: Vec<String> = std::iter::once(program.clone()).chain(tokens).collect();
            result = self.process_options(&line_argv, true)?;
        }
        Ok(result)
    }
}

/// `tryhelp_exit`'s line (its mixed quotes are ipvsadm's).
pub fn try_help(program: &str) -> String {
    format!("Try `{program} -h' or '{program} --help' for more information.")
}
