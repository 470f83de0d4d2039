//! Namespace names: `rvs-<pid>-<topology>-<role>`.
//!
//! The pid makes names unique across processes and lets `cleanup_stale` tell whether the creator
//! is still alive; the per-process counter makes them unique across topologies in one process
//! (tests run in parallel threads).

use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every namespace this library creates.
pub const PREFIX: &str = "rvs-";

static NEXT_TOPOLOGY: AtomicU32 = AtomicU32::new(0);

/// A fresh topology id, `rvs-<pid>-<n>`, never returned twice by this process.
pub fn new_topology_id() -> String {
    let n = NEXT_TOPOLOGY.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{}-{n}", std::process::id())
}

/// The name of the namespace playing `role` in topology `topology` (from [`new_topology_id`]).
pub fn netns_name(topology: &str, role: &str) -> String {
    format!("{topology}-{role}")
}

/// The pid that created a namespace named by this library, or `None` for any other name.
pub fn creator_pid(name: &str) -> Option<u32> {
    let mut fields = name.strip_prefix(PREFIX)?.splitn(3, '-');
    let pid = fields.next()?.parse().ok()?;
    fields.next()?.parse::<u32>().ok()?;
    let role = fields.next()?;
    (!role.is_empty()).then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_to_their_pid() {
        let topology = new_topology_id();
        let name = netns_name(&topology, "rs-0");
        assert_eq!(creator_pid(&name), Some(std::process::id()));
        assert_ne!(new_topology_id(), topology);
    }

    #[test]
    fn foreign_names_are_not_ours() {
        for name in [
            "rvs",
            "rvs-",
            "rvs-x-0-a",
            "rvs-12-0",
            "rvs-12-y-a",
            "rvs-12-0-",
            "other-1-0-a",
        ] {
            assert_eq!(creator_pid(name), None, "{name}");
        }
    }
}
