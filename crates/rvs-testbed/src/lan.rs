//! A LAN: a bridge in a namespace of its own, into which hosts plug veths.

use std::{
    collections::{HashMap, hash_map::Entry},
    time::Duration,
};

use anyhow::{Context, Result};
use rvs::dataplane::{PassProgram, attach_pass_program};

use crate::{Link, Netns, cmd, names, poll::poll_until};

/// The name of the bridge in a LAN namespace.
pub const BRIDGE: &str = "br0";
/// How long the LANs may take to pass traffic after their links are up.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// Creates the namespace `<topology>-<role>` holding a bridge that is up.
pub(crate) fn create(topology: &str, role: &str) -> Result<Netns> {
    let lan = Netns::create(names::netns_name(topology, role))?;
    lan.ip(&["link", "add", "name", BRIDGE, "type", "bridge"])?;
    lan.ip(&["link", "set", "dev", BRIDGE, "up"])?;
    // With br_netfilter loaded, a bridge hands IP packets to the firewall hooks, which first
    // drop any whose headers are inconsistent (and cost time per packet). A LAN is a plain wire
    // here, as a switch is: the tests send malformed packets on purpose, and the benchmarks
    // should not pay for hooks no one uses. The settings are per namespace (this one only).
    if std::path::Path::new("/proc/sys/net/bridge").exists() {
        lan.sysctl(&[
            "net.bridge.bridge-nf-call-iptables=0",
            "net.bridge.bridge-nf-call-ip6tables=0",
            "net.bridge.bridge-nf-call-arptables=0",
        ])?;
    }
    Ok(lan)
}

/// Attaches the pass program to the bridge port of `link`, so that frames a director sends into
/// that link with XDP_TX or a redirect are delivered (see TOOLCHAIN.md).
pub(crate) fn attach_pass(lan: &Netns, link: &Link) -> Result<PassProgram> {
    let port = link.bridge_port();
    let ifindex = lan.ifindex(port)?;
    // The kernel looks the ifindex up in the calling thread's namespace.
    lan.enter(|| attach_pass_program(ifindex))?
        .with_context(|| format!("cannot attach the pass program to {port} in {}", lan.name()))
}

/// Waits until every link's bridge port forwards and its host end is up.
pub(crate) fn wait_ready<'a>(links: impl IntoIterator<Item = &'a Link>) -> Result<()> {
    let mut pending: Vec<&Link> = links.into_iter().collect();
    poll_until(READY_TIMEOUT, "the LAN links to come up", || {
        let mut forwarding: HashMap<&str, Vec<String>> = HashMap::new();
        let mut still = Vec::new();
        for link in pending.drain(..) {
            // One look at each LAN per round.
            let ports = match forwarding.entry(link.lan()) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(forwarding_ports(link.lan())?),
            };
            if !(ports.iter().any(|p| p == link.bridge_port()) && link.host_end_ready()?) {
                still.push(link);
            }
        }
        pending = still;
        Ok(pending.is_empty().then_some(()))
    })
}

/// The ports of the bridge in namespace `lan` that are in the forwarding state.
fn forwarding_ports(lan: &str) -> Result<Vec<String>> {
    // Lines look like `3: v-rs0@if2: <...> master br0 state forwarding priority 32 cost 2`.
    let out = cmd::run("bridge", &["-n", lan, "link", "show"])?;
    Ok(out
        .lines()
        .filter(|line| line.contains(" state forwarding "))
        .filter_map(|line| line.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_owned())
        .collect())
}
