//! What rvsd runs, one task a file, started and stopped by the [`supervisor`]:
//! - [`owner`]: the director's task, the one owner of the model and the map writer
//!   ([`director`]), applying changes in order and publishing a [`view::DirectorView`] after each;
//! - [`view`]: what readers see, and the answers to requests that only read;
//! - [`expiry`]: connection expiry; [`estimator`]: rate estimation; [`next_hop`]: next-hop
//!   refresh; [`locality`]: the lblc/lblcr caches; [`keepalived`]: keepalived.conf's services
//!   and health checkers;
//! - [`state`]: the saved model that lets a restart pick up where it left off;
//! - [`cluster`]: load exchange and tunnel balancing between clusters (`rvs_cluster`);
//! - [`sync`]: connection sync between directors (its wire format so far);
//! - [`vrrp`]: director failover by VRRP, on a thread of its own;
//! - [`health`]: the checkers' verdicts, published for the monitor;
//! - [`l7`]: layer-7 dispatch: rvsd proxies HTTP requests and TLS connections by content;
//! - [`web`]: the monitor: HTTPS console, JSON API and Prometheus metrics;
//! - [`bgp`]: the BGP speaker announcing the VIPs' prefixes by health; [`drain`]: taking this
//!   director out of an ECMP group (its routes withdrawn, forwarding going on).
//!
//! The control socket's task is in `control/server.rs`.

pub mod bgp;
pub mod cluster;
pub mod director;
pub mod drain;
pub mod estimator;
pub mod expiry;
pub mod health;
pub mod keepalived;
pub mod l7;
pub mod locality;
pub mod next_hop;
pub mod owner;
pub mod state;
pub mod supervisor;
pub mod sync;
pub mod view;
pub mod vrrp;
pub mod web;

pub use director::{Director, DirectorOptions};
pub use owner::DirectorHandle;
