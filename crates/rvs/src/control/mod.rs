//! rvsadm <-> rvsd: one JSON request per line over a Unix stream socket, one JSON response line
//! back. Each connection may carry several requests (rvsadm -R sends one per restored line).

pub mod client;
pub mod proto;
pub mod server;

/// The socket rvsd listens on unless told otherwise (`--socket`, `RVS_SOCKET`).
pub const DEFAULT_SOCKET: &str = "/run/rvs/rvsd.sock";
