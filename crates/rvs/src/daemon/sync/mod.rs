//! Connection sync between directors, so that a failover (and, beyond IPVS, a failback) breaks no
//! connection.
//!
//! The sync task will be what IPVS's sync daemon is, in rvsd: as master it collects the new
//! connections and state changes the data plane reports, chooses which to send by IPVS's rules
//! (`sync_threshold` / `sync_period`, TCP only in the states IPVS syncs, state changes at once,
//! `sync_refresh_period` and `sync_retries`, templates along with the connections they control),
//! packs them into datagrams of at most `sync_maxlen` bytes and sends them by UDP multicast to
//! 224.0.0.81:8848 with TTL 1 (or to a configured peer), flushing within 2 s; as backup it
//! receives them, drops and counts what is malformed or foreign, and writes the entries into its
//! own connection maps, each real server found by address, so that its XDP program forwards them
//! from the first packet after a takeover. Both roles may run at once.
//!
//! The parts:
//! - [`wire`]: the datagrams, version 1 (IPv4 and IPv6 entries, sequence and persistence-engine
//!   options) and version 0, laid out byte for byte as net/netfilter/ipvs/ip_vs_sync.c does, so
//!   that a kernel IPVS backup reads what rvs sends and rvs reads what a kernel master sends;
//! - [`auth`]: the optional authenticated envelope (HMAC and sequence number);
//! - [`config`]: the daemon from keepalived.conf, from `ipvsadm --start-daemon`, and rvsd's
//!   options; [`daemons`]: the running daemon, its roles started and stopped at run time;
//! - [`task`]: the loops (sending, receiving, bulk sync); [`refresh`]: IPVS's refresh period;
//! - [`plane`]: the data plane's ends (the ring buffer that reports flows, the maps written);
//! - [`convert`]: flows to and from wire entries; [`status`]: what `rvsadm --sync` shows.

pub mod auth;
pub mod config;
pub mod convert;
pub mod daemons;
pub mod plane;
pub mod refresh;
pub mod socket;
pub mod status;
pub mod task;
pub mod wire;

pub use config::{DaemonSpec, Roles, SyncConfig, SyncOptions, SyncTiming};
pub use daemons::SyncDaemons;
pub use status::SyncStatus;
pub use task::{FlowStore, SyncRunning};
