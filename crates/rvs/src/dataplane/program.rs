//! Writing the model into the maps: a service's entry and scheduler table, a real server's
//! forwarding entry. Tables are double-buffered by generation: the new slots are written first,
//! then the service entry is replaced in one update, then the old slots are deleted, so a packet
//! never sees half a table.

use anyhow::{Context, Result};
use rvs_common::{
    AF_INET, AF_INET6,
    dest::{DestEntry, dest_flags},
    service::{ServiceEntry, ServiceKey, SlotKey},
};

use super::{
    addr::{ip_words, port_be},
    maps::DirectorMaps,
    neigh::NextHop,
};
use crate::{
    model::{Dest, Service, ServiceId},
    sched::Plan,
};

/// The data-plane key of a service.
pub fn service_key(id: &ServiceId) -> ServiceKey {
    match id {
        ServiceId::Inet { proto, addr, port } => ServiceKey {
            addr: ip_words(addr),
            port: port_be(*port),
            proto: proto.number(),
            af: if addr.is_ipv6() { AF_INET6 } else { AF_INET },
        },
        ServiceId::Fwmark { mark, ipv6 } => ServiceKey {
            addr: [*mark, 0, 0, 0],
            port: 0,
            proto: 0,
            af: if *ipv6 { AF_INET6 } else { AF_INET },
        },
    }
}

/// Where a real server's frames go, and whether it is in its service's list.
#[derive(Clone, Copy, Debug)]
pub struct DestPlacement {
    pub next_hop: Option<NextHop>,
    pub available: bool,
}

/// Writes the forwarding entry of a real server.
pub fn write_dest(
    maps: &mut DirectorMaps,
    svc_index: u32,
    dest: &Dest,
    at: DestPlacement,
) -> Result<()> {
    let mut flags = 0;
    if at.available {
        flags |= dest_flags::AVAILABLE;
    }
    let hop = at.next_hop.unwrap_or(NextHop {
        ifindex: 0,
        smac: [0; 6],
        dmac: [0; 6],
    });
    if at.next_hop.is_some() {
        flags |= dest_flags::NEIGH_OK;
    }
    let entry = DestEntry {
        addr: ip_words(&dest.addr.addr),
        port: port_be(dest.addr.port),
        fwd: dest.config.fwd.code(),
        flags,
        ifindex: hop.ifindex,
        smac: hop.smac,
        dmac: hop.dmac,
        svc_id: svc_index,
        weight: dest.config.weight,
        af: if dest.addr.addr.is_ipv6() {
            AF_INET6
        } else {
            AF_INET
        },
        _pad0: [0; 3],
    };
    maps.dests
        .set(dest.id, entry, 0)
        .with_context(|| format!("writing real server {}", dest.addr))
}

/// Installs `plan` for `svc`, its counter restarting the plan at `base`.
pub fn program_service(
    maps: &mut DirectorMaps,
    svc: &Service,
    plan: &Plan,
    base: u64,
) -> Result<()> {
    let key = service_key(&svc.id);
    let old = maps.services.get(&key, 0).ok();
    let gen_ = old.map_or(0, |o| o.table_gen.wrapping_add(1));
    for (index, dest_id) in plan.slots.iter().enumerate() {
        let slot = SlotKey {
            svc_id: svc.index,
            gen_,
            index: index as u32,
        };
        maps.slots
            .insert(slot, dest_id, 0)
            .with_context(|| format!("writing the scheduler table of {}", svc.id))?;
    }
    let entry = ServiceEntry {
        id: svc.index,
        pick: plan.pick as u8,
        flags: 0,
        _pad0: 0,
        table_gen: gen_,
        table_len: plan.slots.len() as u32,
        table_start: plan.start,
        _pad1: 0,
        counter_base: base,
    };
    maps.services
        .insert(key, entry, 0)
        .with_context(|| format!("writing service {}", svc.id))?;
    if let Some(old) = old {
        delete_slots(maps, svc.index, old.table_gen, old.table_len);
    }
    Ok(())
}

/// Removes a service's entry and table.
pub fn remove_service(maps: &mut DirectorMaps, svc: &Service) -> Result<()> {
    let key = service_key(&svc.id);
    if let Ok(old) = maps.services.get(&key, 0) {
        maps.services
            .remove(&key)
            .with_context(|| format!("removing {}", svc.id))?;
        delete_slots(maps, svc.index, old.table_gen, old.table_len);
    }
    Ok(())
}

fn delete_slots(maps: &mut DirectorMaps, svc_id: u32, gen_: u32, len: u32) {
    for index in 0..len {
        let _ = maps.slots.remove(&SlotKey {
            svc_id,
            gen_,
            index,
        });
    }
}
