//! The virtual addresses, added on MASTER and removed on leaving it, with rtnetlink.
//!
//! Addresses rvs adds carry the address protocol [`RVS_ADDR_PROTO`] (IFA_PROTO), so that rvs
//! removes only what it added: an address that was there before (an operator's, or a testbed's)
//! stays, and what a killed rvsd left behind is recognised and removed when the next one starts
//! as BACKUP.

use std::net::IpAddr;

use anyhow::{Context, Result};
use futures::TryStreamExt;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressMessage, AddressProtocol, AddressScope,
};
use rtnetlink::Handle;

/// The IFA_PROTO value of rvs's virtual addresses (VRRP's protocol number).
pub const RVS_ADDR_PROTO: u8 = 112;

/// A virtual address with its interface resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vip {
    pub addr: IpAddr,
    pub prefix_len: u8,
    pub ifindex: u32,
    pub label: Option<String>,
    pub scope: Option<String>,
}

fn scope(s: &str) -> AddressScope {
    match s {
        "host" => AddressScope::Host,
        "link" => AddressScope::Link,
        "site" => AddressScope::Site,
        "nowhere" => AddressScope::Nowhere,
        "global" => AddressScope::Universe,
        n => n
            .parse::<u8>()
            .map_or(AddressScope::Universe, AddressScope::from),
    }
}

pub struct Addresses {
    handle: Handle,
}

impl Addresses {
    /// Opens rtnetlink in the current network namespace; the connection runs on its own task.
    pub fn new() -> Result<Addresses> {
        let (conn, handle, _) = rtnetlink::new_connection().context("opening rtnetlink")?;
        tokio::spawn(conn);
        Ok(Addresses { handle })
    }

    /// Adds each address; one already there is left as it is (and so not ours to remove).
    pub async fn add(&self, vips: &[Vip]) -> Vec<(IpAddr, Result<bool>)> {
        let mut out = Vec::new();
        for v in vips {
            let mut req = self.handle.address().add(v.ifindex, v.addr, v.prefix_len);
            let m = req.message_mut();
            if let Some(s) = &v.scope {
                m.header.scope = scope(s);
            }
            if let (Some(l), IpAddr::V4(_)) = (&v.label, v.addr) {
                m.attributes.push(AddressAttribute::Label(l.clone()));
            }
            if v.addr.is_ipv6() {
                // A virtual address must work at once, not after duplicate detection.
                m.attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
            m.attributes
                .push(AddressAttribute::Protocol(AddressProtocol::Other(
                    RVS_ADDR_PROTO,
                )));
            let r = match req.execute().await {
                Ok(()) => Ok(true),
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => {
                    Ok(false)
                }
                Err(e) => Err(anyhow::Error::new(e).context(format!("adding {}", v.addr))),
            };
            out.push((v.addr, r));
        }
        out
    }

    /// Removes those of `vips` that rvs added (they carry its address protocol).
    pub async fn remove(&self, vips: &[Vip]) -> Result<Vec<IpAddr>> {
        let mut ifindexes: Vec<u32> = vips.iter().map(|v| v.ifindex).collect();
        ifindexes.sort_unstable();
        ifindexes.dedup();
        let mut removed = Vec::new();
        for ifindex in ifindexes {
            let msgs: Vec<AddressMessage> = self
                .handle
                .address()
                .get()
                .set_link_index_filter(ifindex)
                .execute()
                .try_collect()
                .await
                .context("listing addresses")?;
            for m in msgs {
                let ours = m.attributes.iter().any(|a| {
                    *a == AddressAttribute::Protocol(AddressProtocol::Other(RVS_ADDR_PROTO))
                });
                let addr = m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                });
                let Some(addr) = addr else { continue };
                if ours && vips.iter().any(|v| v.addr == addr && v.ifindex == ifindex) {
                    self.handle
                        .address()
                        .del(m)
                        .execute()
                        .await
                        .with_context(|| format!("removing {addr}"))?;
                    removed.push(addr);
                }
            }
        }
        Ok(removed)
    }
}
