//! VRRP (issue 11): director failover, interoperable with keepalived's `vrrp_instance`,
//! `vrrp_sync_group` and `vrrp_script`.
//!
//! - [`wire`]: advertisements on the wire (v2/v3, IPv4/IPv6, checksums, PASS), pure.
//! - [`machine`]: the state machine of one instance, pure, driven by (event, time).
//! - [`instance`]: the parsed configuration made runnable, keepalived's defaults filled in.
//! - [`task`]: the one task that runs all instances: sockets, timers, addresses,
//!   announcements, notify scripts, sync groups. It runs on a thread and runtime of its own and
//!   shares no lock with anything else, so no control request, reload or busy worker can delay
//!   an advert; it publishes a [`status::VrrpStatus`] on a watch channel.
//! - [`socket`], [`addrs`], [`announce`], [`notify`], [`track`]: its I/O, one concern each.

pub mod addrs;
pub mod announce;
pub mod instance;
pub mod machine;
pub mod notify;
pub mod socket;
pub mod status;
pub mod task;
pub mod track;
pub mod wire;

pub use status::VrrpStatus;
pub use task::{Vrrp, start};

/// Starts VRRP when `cfg` has instances, and publishes its status for the control socket.
pub fn start_published(
    cfg: Option<&crate::keepalived::KeepalivedConfig>,
) -> anyhow::Result<Option<Vrrp>> {
    match cfg {
        Some(c) if !c.vrrp_instances.is_empty() => {
            let (v, rx) = start(c)?;
            status::publish(rx);
            Ok(Some(v))
        }
        _ => Ok(None),
    }
}

/// The answer to `rvsadm --vrrp`, from the published snapshot (never the director's lock).
pub fn status_response() -> crate::control::proto::Response {
    crate::control::proto::Response::Vrrp {
        status: status::current(),
    }
}
