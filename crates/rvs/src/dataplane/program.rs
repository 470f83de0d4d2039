//! Writing the model into the maps: a service's entry and scheduler table, a real server's
//! forwarding entry. Tables are double-buffered by generation: the new slots are written first,
//! then the service entry is replaced in one update, then the old slots are deleted, so a packet
//! never sees half a table.

use anyhow::{Context, Result, bail};
use rvs_common::{
    AF_INET, AF_INET6,
    dest::{DestEntry, dest_flags, tun},
    service::{SchedDest, ServiceEntry, ServiceKey, SlotKey, svc_flags},
};

use super::{
    addr::{ip_words, port_be},
    list_space::ListSpace,
    neigh::NextHop,
    store::MapsWrite,
};
use crate::{
    model::{Dest, Service, ServiceId, TunCsum, TunType, svc_flags as model_flags},
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
    maps: &mut dyn MapsWrite,
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
        src: None,
        mtu: 1500,
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
        u_threshold: dest.config.u_threshold,
        l_threshold: dest.config.l_threshold,
        tun_type: match dest.config.tun_type {
            TunType::Ipip => tun::IPIP,
            TunType::Gue => tun::GUE,
            TunType::Gre => tun::GRE,
        },
        tun_csum: match dest.config.tun_csum {
            TunCsum::NoCsum => tun::NOCSUM,
            TunCsum::Csum => tun::CSUM,
            TunCsum::RemCsum => tun::REMCSUM,
        },
        tun_port: port_be(dest.config.tun_port),
        mtu: hop.mtu,
        src_addr: hop.src.map(|a| ip_words(&a)).unwrap_or_default(),
    };
    maps.set_dest(dest.id, entry)
        .with_context(|| format!("writing real server {}", dest.addr))
}

/// What happens to a service's scheduler table when its entry is written.
pub enum Table<'a> {
    /// Install this plan, its counter restarting it at `base`.
    New(&'a Plan, u64),
    /// Keep the installed table and list (a change to the service's settings only).
    Keep,
}

/// The data-plane flags of a service.
fn entry_flags(svc: &Service) -> u8 {
    let f = svc.config.flags;
    let mut out = 0;
    if f & model_flags::PERSISTENT != 0 {
        out |= svc_flags::PERSISTENT;
    }
    if f & model_flags::ONEPACKET != 0 {
        out |= svc_flags::ONE_PACKET;
    }
    if f & model_flags::SLOPPY_TCP != 0 {
        out |= svc_flags::SLOPPY_TCP;
    }
    for (m, d) in [
        (model_flags::SCHED1, svc_flags::SCHED1),
        (model_flags::SCHED2, svc_flags::SCHED2),
        (model_flags::SCHED3, svc_flags::SCHED3),
    ] {
        if f & m != 0 {
            out |= d;
        }
    }
    match svc.id {
        ServiceId::Fwmark { .. } => out |= svc_flags::FWMARK,
        ServiceId::Inet { port: 0, .. } => out |= svc_flags::PORT_ZERO,
        ServiceId::Inet { .. } => {}
    }
    out
}

/// Writes a service's entry (and, with `Table::New`, its table and real-server list).
pub fn program_service(
    maps: &mut dyn MapsWrite,
    space: &mut ListSpace,
    svc: &Service,
    table: Table<'_>,
) -> Result<()> {
    let key = service_key(&svc.id);
    let old = maps.service(&key);
    let ipv6 = svc.id.is_ipv6();
    let mut entry = ServiceEntry {
        id: svc.index,
        flags: entry_flags(svc),
        prefix6: if ipv6 {
            svc.config.netmask.min(128) as u8
        } else {
            0
        },
        persist_timeout: svc.config.timeout,
        netmask4: if ipv6 { 0 } else { svc.config.netmask.to_be() },
        fwmark: match svc.id {
            ServiceId::Fwmark { mark, .. } => mark,
            ServiceId::Inet { .. } => 0,
        },
        ..ServiceEntry::default()
    };
    match table {
        Table::Keep => {
            let old = old.unwrap_or_default();
            entry.pick = old.pick;
            entry.table_gen = old.table_gen;
            entry.table_len = old.table_len;
            entry.table_start = old.table_start;
            entry.list_off = old.list_off;
            entry.list_len = old.list_len;
            entry.counter_base = old.counter_base;
            return maps
                .set_service(key, entry)
                .with_context(|| format!("writing service {}", svc.id));
        }
        Table::New(plan, base) => {
            // Room for the list first, so that a refusal leaves nothing half-written.
            let len = svc.dests.len() as u32;
            let Some(off) = space.alloc_waiting(len) else {
                bail!("no room left for the real-server list of {}", svc.id);
            };
            let gen_ = old.map_or(0, |o| o.table_gen.wrapping_add(1));
            for (index, dest_id) in plan.slots.iter().enumerate() {
                let slot = SlotKey {
                    svc_id: svc.index,
                    gen_,
                    index: index as u32,
                };
                if let Err(e) = maps.set_slot(slot, *dest_id) {
                    delete_slots(maps, svc.index, gen_, index as u32);
                    space.release(off, len);
                    return Err(e)
                        .with_context(|| format!("writing the scheduler table of {}", svc.id));
                }
            }
            for (i, d) in svc.dests.iter().enumerate() {
                let item = SchedDest {
                    dest_id: d.id,
                    weight: d.config.weight,
                };
                if let Err(e) = maps.set_list_item(off + i as u32, item) {
                    delete_slots(maps, svc.index, gen_, plan.slots.len() as u32);
                    space.release(off, len);
                    return Err(e)
                        .with_context(|| format!("writing the real-server list of {}", svc.id));
                }
            }
            entry.pick = plan.pick as u8;
            entry.table_gen = gen_;
            entry.table_len = plan.slots.len() as u32;
            entry.table_start = plan.start;
            entry.list_off = off;
            entry.list_len = len;
            entry.counter_base = base;
        }
    }
    if let Err(e) = maps.set_service(key, entry) {
        delete_slots(maps, svc.index, entry.table_gen, entry.table_len);
        space.release(entry.list_off, entry.list_len);
        return Err(e).with_context(|| format!("writing service {}", svc.id));
    }
    if let Some(old) = old {
        delete_slots(maps, svc.index, old.table_gen, old.table_len);
        space.retire(old.list_off, old.list_len);
    }
    Ok(())
}

/// Removes a service's entry and table.
pub fn remove_service(
    maps: &mut dyn MapsWrite,
    space: &mut ListSpace,
    svc: &Service,
) -> Result<()> {
    let key = service_key(&svc.id);
    if let Some(old) = maps.service(&key) {
        maps.remove_service(&key)
            .with_context(|| format!("removing {}", svc.id))?;
        delete_slots(maps, svc.index, old.table_gen, old.table_len);
        space.retire(old.list_off, old.list_len);
    }
    Ok(())
}

fn delete_slots(maps: &mut dyn MapsWrite, svc_id: u32, gen_: u32, len: u32) {
    for index in 0..len {
        maps.remove_slot(&SlotKey {
            svc_id,
            gen_,
            index,
        });
    }
}
