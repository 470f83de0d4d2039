//! What the checkers and the action layer work from: the services with their real servers as the
//! director should hold them, each real server's checkers with every setting resolved (keepalived's
//! inheritance virtual server → real server → checker already applied), and the sorry server and
//! quorum of each service. Built from keepalived.conf by [`crate::keepalived::desired_services`].

use std::{net::SocketAddr, time::Duration};

use crate::model::{DestAddr, DestConfig, ServiceConfig, ServiceId};

/// A virtual service as the configuration wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredService {
    pub service: ServiceId,
    pub config: ServiceConfig,
    /// Index of the `virtual_server` block it comes from. The services a
    /// `virtual_server group` expands into share it, and share one set of checkers, as in
    /// keepalived.
    pub virtual_server: usize,
    /// The virtual server as keepalived names it in logs and mails (`[10.0.0.1]:80`,
    /// `FWM 5`, `group web`).
    pub name: String,
    pub dests: Vec<DesiredDest>,
    pub sorry_server: Option<SorryServer>,
    /// Minimum total weight of live real servers for the service to have quorum (default 1).
    pub quorum: u32,
    /// Flap damping around `quorum` (default 0).
    pub hysteresis: u32,
    /// Shell commands run when quorum is gained or lost.
    pub quorum_up: Option<String>,
    pub quorum_down: Option<String>,
    /// Send mail on quorum changes (keepalived: off unless `smtp_alert` says so).
    pub smtp_alert: bool,
    /// Run the down notifiers at shutdown too.
    pub omega: bool,
    /// Suspend checks while the VIP is not configured (parsed; rvs does not act on it yet).
    pub ha_suspend: bool,
}

/// A real server of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredDest {
    pub addr: DestAddr,
    /// Forwarding method, configured weight, thresholds, tunnel settings.
    pub config: DestConfig,
    pub checkers: Vec<CheckSpec>,
    /// Keep the server in the table with weight 0 while it is down, instead of removing it.
    pub inhibit_on_failure: bool,
    /// Shell commands run when the server goes up or down.
    pub notify_up: Option<String>,
    pub notify_down: Option<String>,
    /// Send mail when the server changes state (keepalived: on when mail is configured).
    pub smtp_alert: bool,
}

impl DesiredDest {
    /// Whether the server counts as up before any check ran: yes unless a checker starts in
    /// `alpha` mode (keepalived adds servers at start and removes them on failure).
    pub fn initially_up(&self) -> bool {
        self.checkers.iter().all(|c| !c.alpha)
    }
}

/// The server put in the table instead of the real servers while the service lacks quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SorryServer {
    pub addr: DestAddr,
    pub config: DestConfig,
    /// `sorry_server_inhibit`: keep it in the table at weight 0 while not needed.
    pub inhibit: bool,
}

/// One checker of a real server with every setting resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckSpec {
    pub kind: CheckKind,
    /// Where to connect: `connect_ip`/`connect_port`, defaulting to the real server's.
    pub target: SocketAddr,
    /// Source address and port (`bindto`, `bind_port`).
    pub bind: Option<SocketAddr>,
    /// The limit of one attempt (connect and exchange).
    pub connect_timeout: Duration,
    /// Failures after the first that mark an up checker down.
    pub retry: u32,
    pub delay_before_retry: Duration,
    /// Time between checks.
    pub delay_loop: Duration,
    /// Upper bound of the random delay before the first check (0: start at once).
    pub warmup: Duration,
    /// Start as failed.
    pub alpha: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckKind {
    /// TCP_CHECK: the connection completes.
    Tcp,
    /// HTTP_GET, or SSL_GET when `tls` is set.
    Http(HttpCheck),
    /// SMTP_CHECK: 220 banner, HELO answered by 250, QUIT.
    Smtp(SmtpCheck),
    /// DNS_CHECK: a query answered with the same id, QR set and RCODE 0.
    Dns(DnsCheck),
    /// UDP_CHECK: a datagram not refused (and answered as required).
    Udp(UdpCheck),
    /// PING_CHECK: an ICMP(v6) echo reply.
    Ping,
    /// MISC_CHECK: a script's exit status.
    Misc(MiscCheck),
}

impl CheckKind {
    /// The keyword of the checker in keepalived.conf.
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Tcp => "TCP_CHECK",
            CheckKind::Http(h) if h.tls.is_some() => "SSL_GET",
            CheckKind::Http(_) => "HTTP_GET",
            CheckKind::Smtp(_) => "SMTP_CHECK",
            CheckKind::Dns(_) => "DNS_CHECK",
            CheckKind::Udp(_) => "UDP_CHECK",
            CheckKind::Ping => "PING_CHECK",
            CheckKind::Misc(_) => "MISC_CHECK",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCheck {
    /// Every url must pass.
    pub urls: Vec<UrlCheck>,
    /// Host header for urls without their own (checker, real server, virtual server in turn).
    pub virtualhost: Option<String>,
    pub protocol: HttpProtocol,
    /// Some for SSL_GET.
    pub tls: Option<TlsOptions>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HttpProtocol {
    /// `GET ... HTTP/1.0` (the default).
    #[default]
    Http10,
    /// HTTP/1.0 with `Connection: close`.
    Http10Close,
    /// HTTP/1.1 with `Connection: close`.
    Http11,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlCheck {
    pub path: String,
    /// Accepted status codes as inclusive ranges; empty means 200-299.
    pub status: Vec<(u16, u16)>,
    /// MD5 of the body in lowercase hex (what keepalived's genhash prints).
    pub digest: Option<String>,
    pub virtualhost: Option<String>,
}

impl UrlCheck {
    pub fn accepts(&self, code: u16) -> bool {
        if self.status.is_empty() {
            return (200..=299).contains(&code);
        }
        self.status
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&code))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `enable_sni`: send the url's virtualhost as server name.
    pub enable_sni: bool,
    /// `sni_name`: send this server name.
    pub sni_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpCheck {
    pub helo_name: String,
}

/// keepalived's HELO name when none is configured.
pub const SMTP_DEFAULT_HELO: &str = "smtpchecker.keepalived.org";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsCheck {
    pub qtype: DnsType,
    /// The name queried, `.` for the root.
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsType {
    A,
    Ns,
    Cname,
    Soa,
    Mx,
    Txt,
    Aaaa,
}

impl DnsType {
    pub fn from_name(name: &str) -> Option<DnsType> {
        Some(match name.to_ascii_uppercase().as_str() {
            "A" => DnsType::A,
            "NS" => DnsType::Ns,
            "CNAME" => DnsType::Cname,
            "SOA" => DnsType::Soa,
            "MX" => DnsType::Mx,
            "TXT" => DnsType::Txt,
            "AAAA" => DnsType::Aaaa,
            _ => return None,
        })
    }

    pub fn code(self) -> u16 {
        match self {
            DnsType::A => 1,
            DnsType::Ns => 2,
            DnsType::Cname => 5,
            DnsType::Soa => 6,
            DnsType::Mx => 15,
            DnsType::Txt => 16,
            DnsType::Aaaa => 28,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpCheck {
    /// The datagram sent; random bytes when None.
    pub payload: Option<Vec<u8>>,
    /// Some: a reply is required; its leading bytes must match these (value, mask) pairs.
    pub require_reply: Option<Vec<(u8, u8)>>,
    pub min_reply_length: usize,
    pub max_reply_length: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MiscCheck {
    /// Run with `/bin/sh -c`.
    pub path: String,
    /// Killed after this long; None: the checker's delay_loop (keepalived's default).
    pub timeout: Option<Duration>,
    /// Exit 0 up, 1 down, 2..=255 up with weight = status - 2.
    pub dynamic: bool,
}
