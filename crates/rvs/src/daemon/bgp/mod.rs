//! The BGP-4 speaker (an rvs extension, keepalived.conf's `rvs_bgp { ... }` block): it
//! announces the VIPs' prefixes to the neighbors while the virtual services behind them are up
//! (and, tied to VRRP, while this director is MASTER), and withdraws them when they go down or
//! rvsd stops; it never installs what it receives. As the daemon's other tasks, it owns:
//! - [`wire`]: the messages, through netgauze-bgp-pkt (pure; the decoder is a fuzzing target);
//! - [`session`]: one session's state machine (pure, with the time passed in);
//! - [`routes`]: which prefixes are announced, with what (pure);
//! - [`peer`]: a neighbor's connection and session (the I/O);
//! - [`task`]: the speaker, its listener for passive neighbors and its reload on SIGHUP;
//! - [`status`]: what rvsadm --bgp, the monitor and the metrics show;
//! - [`md5`]: TCP MD5 signatures on the sockets.

pub mod md5;
pub mod peer;
pub mod routes;
pub mod session;
pub mod status;
pub mod task;
pub mod wire;

pub use status::BgpStatus;
pub use task::Bgp;
