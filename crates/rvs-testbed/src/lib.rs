//! Network-namespace topologies on one Linux machine for rvs's end-to-end tests, demo and
//! benchmarks.
//!
//! Everything lives in namespaces this crate creates (named `rvs-<pid>-<n>-<role>`) and deletes
//! on drop; the root namespace is never changed. Addresses come from 198.18.0.0/15 and
//! 2001:db8::/32.
//!
//! - [`Netns`]: one namespace: run commands in it, switch a thread into it, spawn into it.
//! - [`DrCluster`]: clients, a director and real servers on a bridged LAN, set up for LVS direct
//!   routing, optionally with IPv6.
//! - [`NatCluster`]: clients and real servers on two subnets (two LANs, or one), the director
//!   routing between them, set up for LVS NAT.
//! - [`HaCluster`]: two directors and real servers on one LAN, a client behind a router, for
//!   failover (VRRP); or, for NAT, the real servers on an inside LAN behind a floating gateway.
//! - [`Host`], [`Link`]: one machine of a topology and its interfaces (addresses, MTU).
//! - [`TcpServer`], [`UdpServer`]: in-process servers answering with their host's name, on
//!   both address families; the TCP one also serves [`bulk`] transfers.
//! - [`HttpEcho`]: a keep-alive HTTP/1.1 server that answers with what it received (L7 tests).
//! - [`HttpServer`] (also over TLS), [`SmtpServer`], [`DnsServer`]: protocol servers a test
//!   can tell to fail, for health checks; they count connections by client address.
//! - [`stream`]: long-lived checked TCP echo streams and UDP flows for failover tests
//!   ([`stream::StreamServer`] on real servers, [`stream::StreamClient`] on a client), also the
//!   `rvs-stream` binary.
//! - [`client`]: requests to those servers from a client namespace, and checked bulk transfers.
//! - [`bird`]: BIRD 2 in a namespace ([`Bird`]): its configuration from pieces, its sessions
//!   and routes through `birdc`, bounded waits on them.
//! - [`BgpLab`]: the seed's BGP lab: one VIP prefix announced by two LVS clusters (AS5) through
//!   four BIRD routers of AS1, AS2 and AS3 to a client.
//! - [`spawn_in`]: a long-running program (rvsd) in a namespace, with a log file.
//! - [`cleanup_stale`]: removes what dead processes left behind.
//!
//! Everything needs root.

mod addr;
mod bgp_lab;
mod bind;
pub mod bird;
mod builder;
pub mod bulk;
mod cleanup;
pub mod client;
mod cluster;
mod cmd;
mod ha;
mod host;
mod lan;
mod link;
mod mac;
mod names;
mod nat;
mod netns;
mod poll;
mod process;
mod servers;
pub mod stream;
pub mod tls;

pub use bgp_lab::{
    BgpLab, BgpLabBuilder, BgpRouter, LAB_CLIENT_NET, LAB_LB_AS, LAB_PREFIX, LAB_PREFIX6, LAB_VIP,
    LAB_VIP6, LabBgp, LbPeering, LbSessions, Neighbor,
};
pub use bird::Bird;
pub use builder::{
    DEFAULT_CLIENT_IP, DEFAULT_DIRECTOR_IP, DEFAULT_REAL_SERVER_IP, DEFAULT_VIP, DrClusterBuilder,
    LAN6,
};
pub use cleanup::cleanup_stale;
pub use client::TcpConn;
pub use cluster::DrCluster;
pub use ha::{
    DIRECTOR_IPS, HA_CLIENT_IP, HaCluster, INSIDE_DIRECTOR_IPS, INSIDE_GATEWAY, INSIDE_IFNAME,
};
pub use host::{Host, IFNAME};
pub use lan::BRIDGE;
pub use link::Link;
pub use mac::Mac;
pub use names::PREFIX;
pub use nat::{BACK_IFNAME, BACK6, NatCluster, NatClusterBuilder};
pub use netns::{Netns, RUN_TIMEOUT};
pub use poll::poll_until;
pub use process::{NsProcess, spawn_in};
pub use servers::{
    DnsServer, HttpEcho, HttpServer, ReceivedMail, SmtpServer, TcpServer, UdpServer,
};
