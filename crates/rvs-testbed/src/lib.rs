//! Network-namespace topologies on one Linux machine for rvs's end-to-end tests, demo and
//! benchmarks.
//!
//! Everything lives in namespaces this crate creates (named `rvs-<pid>-<n>-<role>`) and deletes
//! on drop; the root namespace is never changed. Addresses come from 198.18.0.0/15.
//!
//! - [`Netns`]: one namespace: run commands in it, switch a thread into it, spawn into it.
//! - [`DrCluster`]: clients, a director and real servers on a bridged LAN, set up for LVS direct
//!   routing.
//! - [`TcpServer`], [`UdpServer`]: in-process servers answering with their host's name.
//! - [`client`]: requests to those servers from a client namespace.
//! - [`spawn_in`]: a long-running program (rvsd) in a namespace, with a log file.
//! - [`cleanup_stale`]: removes what dead processes left behind.
//!
//! Everything needs root.

mod bind;
mod builder;
mod cleanup;
pub mod client;
mod cluster;
mod cmd;
mod host;
mod mac;
mod names;
mod netns;
mod poll;
mod process;
mod servers;

pub use builder::{
    DEFAULT_CLIENT_IP, DEFAULT_DIRECTOR_IP, DEFAULT_REAL_SERVER_IP, DEFAULT_VIP, DrClusterBuilder,
};
pub use cleanup::cleanup_stale;
pub use client::TcpConn;
pub use cluster::DrCluster;
pub use host::{BRIDGE, Host, IFNAME};
pub use mac::Mac;
pub use names::PREFIX;
pub use netns::Netns;
pub use poll::poll_until;
pub use process::{NsProcess, spawn_in};
pub use servers::{TcpServer, UdpServer};
