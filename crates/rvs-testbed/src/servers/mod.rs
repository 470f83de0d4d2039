//! In-process servers for the real servers: threads whose sockets were created inside a host's
//! namespace. Each answers with its host's name, so a test sees which real server it reached.
//!
//! Every blocking call in them wakes up at least every [`TICK`] to look at the stop flag, so
//! dropping a server's handle ends its threads promptly.

mod accept;
mod bulk;
mod dns;
mod http;
mod http_echo;
mod lines;
mod smtp;
mod socket;
mod tcp;
mod udp;

use std::time::Duration;

pub use dns::DnsServer;
pub use http::HttpServer;
pub use http_echo::HttpEcho;
pub use smtp::{ReceivedMail, SmtpServer};
pub use tcp::TcpServer;
pub use udp::UdpServer;

/// How often server threads look at their stop flag.
const TICK: Duration = Duration::from_millis(50);
