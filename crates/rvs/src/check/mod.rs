//! Health checks as keepalived runs them, on tokio.
//!
//! - [`spec`]: the services, real servers and checkers to run, settings resolved.
//! - one module per checker: [`tcp`], [`http`] (HTTP_GET and SSL_GET), [`smtp`], [`dns`], [`udp`],
//!   [`ping`], [`misc`]; [`run_once`] runs one attempt of any of them.
//! - [`Runner`]: every checker of every real server on its own timer with keepalived's warmup,
//!   retry and delay_loop, combined per real server into [`CheckEvent`]s.
//! - [`Health`]: what a service's table, scripts and mail should do on each event (quorum,
//!   hysteresis, sorry server, inhibit_on_failure), as plain data.
//! - [`notify`]: running notify scripts and sending mail over SMTP.
//!
//! Checks open their sockets (and run their scripts) on the runtime's threads, so they use the
//! network namespace those threads were created in: build the tokio runtime after entering the
//! director's namespace.
//!
//! Where rvs checks differently from keepalived, on purpose:
//! - HTTP_GET/SSL_GET fetch every url in each round, as keepalived does with `fast_recovery`;
//!   `regex` is not supported; a chunked body is digested as received (as keepalived does);
//! - scripts (MISC_CHECK, notifiers) run with `/bin/sh -c` as rvsd's user; keepalived splits the
//!   command itself and may switch to `script_user`;
//! - PING_CHECK uses an ICMP datagram socket when `ping_group_range` allows, else a raw socket
//!   (keepalived widens `ping_group_range` instead);
//! - mail says `X-Mailer: rvs` and dates in UTC.

pub mod dns;
pub mod health;
pub mod http;
pub mod misc;
mod net;
pub mod notify;
pub mod ping;
pub mod runner;
pub mod smtp;
pub mod spec;
pub mod tcp;
pub mod udp;

#[cfg(test)]
mod runner_tests;
#[cfg(test)]
mod testing;

use std::future::Future;

pub use health::{Action, Health, Mail};
pub use runner::{CheckEvent, Runner, ServerStates};
pub use spec::*;

/// The result of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    /// What happened, for logs and mail ("connection refused", "HTTP status 503").
    pub detail: String,
    /// MISC_CHECK with misc_dynamic: the weight the exit status asks for.
    pub weight: Option<i32>,
}

impl Outcome {
    fn from(result: Result<String, String>) -> Outcome {
        match result {
            Ok(detail) => Outcome {
                ok: true,
                detail,
                weight: None,
            },
            Err(detail) => Outcome {
                ok: false,
                detail,
                weight: None,
            },
        }
    }
}

/// Runs one attempt of a checker, bounded by its connect_timeout (UDP_CHECK waits that long
/// for an error on purpose; MISC_CHECK has misc_timeout).
pub async fn run_once(spec: &CheckSpec) -> Outcome {
    match &spec.kind {
        CheckKind::Tcp => Outcome::from(within(spec, tcp::check(spec)).await),
        CheckKind::Http(h) => Outcome::from(within(spec, http::check(spec, h)).await),
        CheckKind::Smtp(s) => Outcome::from(within(spec, smtp::check(spec, s)).await),
        CheckKind::Dns(d) => Outcome::from(within(spec, dns::check(spec, d)).await),
        CheckKind::Ping => Outcome::from(within(spec, ping::check(spec)).await),
        CheckKind::Udp(u) => Outcome::from(udp::check(spec, u).await),
        CheckKind::Misc(m) => match misc::check(m, spec.delay_loop).await {
            Ok(weight) => Outcome {
                ok: true,
                detail: match weight {
                    Some(w) => format!("script asked for weight {w}"),
                    None => "script succeeded".to_owned(),
                },
                weight,
            },
            Err(detail) => Outcome {
                ok: false,
                detail,
                weight: None,
            },
        },
    }
}

async fn within(
    spec: &CheckSpec,
    f: impl Future<Output = Result<String, String>>,
) -> Result<String, String> {
    match tokio::time::timeout(spec.connect_timeout, f).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {:?}", spec.connect_timeout)),
    }
}
