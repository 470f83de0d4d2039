//! rvs: the Linux Virtual Server architecture on an XDP data plane.
//!
//! - [`model`]: services and real servers as ipvsadm sees them, with the kernel's rules for
//!   adding, editing and deleting them.
//! - [`sched`]: the IPVS schedulers, each as a user-space reference of the kernel's rule and as
//!   the data the XDP program follows.
//! - [`dataplane`]: loading the XDP program, its pinned maps (behind `MapsRead`/`MapsWrite`),
//!   neighbour resolution, and writing the model into the maps.
//! - [`daemon`]: rvsd's tasks under one supervisor: the director (the one owner of the model),
//!   expiry, rates, next hops, locality caches, keepalived.conf, the saved state, sync's wire.
//! - [`control`]: the request/response protocol between rvsadm and rvsd over a Unix socket.
//! - [`ipvsadm`]: ipvsadm's command line, messages and output formats.
//! - [`keepalived`]: keepalived.conf's grammar, read into services, checkers and VRRP blocks.
//! - [`check`]: the health checkers and what their verdicts do to a service.
//! - [`realserver`]: `rvs-rs`, preparing a real server for direct routing or tunnels.
//! - [`ebpf`]: the XDP programs, built by build.rs and embedded.

pub mod check;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod ebpf;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod ipvsadm;
pub mod keepalived;
pub mod model;
pub mod realserver;
pub mod sched;

/// The IPVS version rvs reports (IP_VS_VERSION_CODE 0x010201), as ipvsadm prints it.
pub const IPVS_VERSION: &str = "1.2.1";
/// rvs's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
