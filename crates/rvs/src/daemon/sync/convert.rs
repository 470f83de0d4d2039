//! Between a flow as the data plane keeps it (a connection-table key and value, real servers and
//! services by index) and a flow as the sync protocol carries it (addresses, ports, fwmark, the
//! kernel's flags and states). Pure: both directions take the model they are read against.
//!
//! Real servers are named by address on the wire: the receiver finds its own real server of the
//! same service by (daddr, dport), as the kernel's ip_vs_find_dest does, so two directors may
//! number them differently.

use std::net::IpAddr;

use rvs_common::{
    AF_INET, AF_INET6,
    conn::{Conn, ConnKey, KIND_CONN, KIND_TEMPLATE, conn_flags},
};

use super::wire::{ConnAddrs, ConnEntry, flags};
use crate::{
    dataplane::{ip_from_words, ip_words},
    model::{Dest, FwdMethod, Model, Protocol, Service, ServiceId},
};

/// A flow of this director, ready for its tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalFlow {
    pub key: ConnKey,
    pub conn: Conn,
    /// Seconds left before it expires; 0: the state's own timeout.
    pub timeout: u32,
    /// The timeout expiry applies to it here: its state's, or its service's persistence
    /// timeout for a template.
    pub ttl: u32,
    /// Its service here is persistent: the flow is controlled by a template.
    pub controlled: bool,
    /// Its real server is reached by NAT (the flow needs a reply entry).
    pub nat: bool,
}

/// Why a received entry has no place here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unplaced {
    /// No such virtual service on this director.
    NoService,
    /// The service has no real server of that address and port.
    NoDest,
}

impl Unplaced {
    pub fn name(self) -> &'static str {
        match self {
            Unplaced::NoService => "no_service",
            Unplaced::NoDest => "no_dest",
        }
    }
}

fn fwd_flags(fwd: FwdMethod) -> u32 {
    match fwd {
        FwdMethod::Masq => flags::MASQ,
        FwdMethod::Local => flags::LOCALNODE,
        FwdMethod::Tunnel => flags::TUNNEL,
        FwdMethod::Route => flags::DROUTE,
        FwdMethod::Bypass => flags::BYPASS,
    }
}

/// The real server with data-plane id `id`, listed or draining.
fn dest_by_id(model: &Model, id: u32) -> Option<&Dest> {
    model.every_dest().find(|d| d.id == id)
}

/// The wire entry of a flow of this director, its remaining time `timeout` seconds. None when
/// the model no longer knows its service or real server (a flow of a deleted service).
pub fn to_wire(model: &Model, key: &ConnKey, conn: &Conn, timeout: u32) -> Option<ConnEntry> {
    let svc = model.services.iter().find(|s| s.index == conn.svc_id)?;
    let dest = dest_by_id(model, conn.dest_id)?;
    let ipv6 = key.af == AF_INET6;
    let caddr = ip_from_words(&key.caddr, ipv6);
    let vaddr = ip_from_words(&key.vaddr, ipv6);
    let addrs = match (caddr, vaddr, dest.addr.addr) {
        (IpAddr::V4(caddr), IpAddr::V4(vaddr), IpAddr::V4(daddr)) => ConnAddrs::V4 {
            caddr,
            vaddr,
            daddr,
        },
        (IpAddr::V6(caddr), IpAddr::V6(vaddr), IpAddr::V6(daddr)) => ConnAddrs::V6 {
            caddr,
            vaddr,
            daddr,
        },
        // An IPv4 service over IPv6 tunnel endpoints (or back) has no IPVS entry form.
        _ => return None,
    };
    let template = key.kind == KIND_TEMPLATE;
    let mut f = fwd_flags(dest.config.fwd);
    for (ours, theirs) in [
        (conn_flags::INACTIVE, flags::INACTIVE),
        (conn_flags::NOOUTPUT, flags::NOOUTPUT),
    ] {
        if conn.flags & ours != 0 {
            f |= theirs;
        }
    }
    if template {
        f |= flags::TEMPLATE;
    }
    let vport = u16::from_be(key.vport);
    Some(ConnEntry {
        protocol: key.proto,
        flags: f,
        state: conn.state as u16,
        cport: u16::from_be(key.cport),
        vport,
        // The port the flow reaches its server on (`dest->port ?: vport`, the client's for a
        // KEEP_PORT flow); none for a template of a port-zero service.
        dport: if template && vport == 0 {
            0
        } else {
            u16::from_be(key.server_port(dest.addr.port.to_be(), conn.flags))
        },
        fwmark: match svc.id {
            ServiceId::Fwmark { mark, .. } => mark,
            ServiceId::Inet { .. } => 0,
        },
        timeout,
        addrs,
        seq: None,
        pe: None,
    })
}

/// The service a received entry belongs to.
fn service_of<'m>(model: &'m Model, e: &ConnEntry) -> Option<&'m Service> {
    let ipv6 = e.is_ipv6();
    let by_id = |id: ServiceId| model.service(&id);
    if e.fwmark != 0 {
        return by_id(ServiceId::Fwmark {
            mark: e.fwmark,
            ipv6,
        });
    }
    let proto = Protocol::from_number(e.protocol)?;
    let vaddr = e.addrs.vaddr();
    by_id(ServiceId::Inet {
        proto,
        addr: vaddr,
        port: e.vport,
    })
    // A port-zero service's flows carry the port the client asked for.
    .or_else(|| {
        by_id(ServiceId::Inet {
            proto,
            addr: vaddr,
            port: 0,
        })
    })
}

/// A received entry as a flow of this director: its service and real server found by address.
pub fn from_wire(model: &Model, e: &ConnEntry) -> Result<LocalFlow, Unplaced> {
    let svc = service_of(model, e).ok_or(Unplaced::NoService)?;
    let daddr = e.addrs.daddr();
    let template = e.is_template();
    // A server without a port of its own (fwmark, port-zero services) serves the client's port,
    // and so does every server of a persistent one of those (KEEP_PORT).
    let keep_port = svc.keeps_client_port() && !template;
    let matches = |d: &&Dest| {
        d.addr.addr == daddr
            && (d.addr.port == e.dport || d.addr.port == 0 || template || keep_port)
    };
    let dest = svc
        .dests
        .iter()
        .find(matches)
        .or_else(|| {
            model
                .trash
                .iter()
                .filter(|t| t.service == svc.id)
                .map(|t| &t.dest)
                .find(matches)
        })
        .ok_or(Unplaced::NoDest)?;
    let ipv6 = e.is_ipv6();
    let mut conn_flags_local = 0;
    if e.flags & flags::INACTIVE != 0 {
        conn_flags_local |= conn_flags::INACTIVE;
    }
    // How replies travel follows this director's real server, as in the kernel.
    let nat = dest.config.fwd == FwdMethod::Masq;
    if !nat {
        conn_flags_local |= conn_flags::NOOUTPUT;
    }
    if template {
        conn_flags_local |= conn_flags::TEMPLATE;
    }
    if keep_port {
        conn_flags_local |= conn_flags::KEEP_PORT;
    }
    Ok(LocalFlow {
        key: ConnKey {
            caddr: ip_words(&e.addrs.caddr()),
            vaddr: ip_words(&e.addrs.vaddr()),
            cport: e.cport.to_be(),
            vport: e.vport.to_be(),
            proto: e.protocol,
            af: if ipv6 { AF_INET6 } else { AF_INET },
            kind: if template { KIND_TEMPLATE } else { KIND_CONN },
            _pad0: 0,
        },
        conn: Conn {
            dest_id: dest.id,
            svc_id: svc.index,
            last_seen_ns: 0,
            flags: conn_flags_local,
            state: e.state as u8,
            _pad0: 0,
            in_pkts: 0,
        },
        timeout: e.timeout,
        ttl: if template {
            svc.config.timeout
        } else {
            crate::daemon::expiry::timeout_secs(e.protocol, e.state as u8, &model.timeouts) as u32
        },
        controlled: svc.config.persistent() && !template,
        nat,
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::model::{DestAddr, DestConfig, ServiceConfig};

    fn vip() -> ServiceId {
        ServiceId::Inet {
            proto: Protocol::Tcp,
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)),
            port: 80,
        }
    }

    fn rs(last: u8) -> DestAddr {
        DestAddr {
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 1, last)),
            port: 8080,
        }
    }

    /// A director whose real servers were added in `order`, so ids differ between two of them.
    fn model(order: &[u8], fwd: FwdMethod) -> Model {
        let mut m = Model::new(8, 8);
        m.add_service(vip(), ServiceConfig::new("rr", false))
            .unwrap();
        for last in order {
            let config = DestConfig {
                fwd,
                ..DestConfig::default()
            };
            m.add_dest(&vip(), rs(*last), config).unwrap();
        }
        m
    }

    fn flow(m: &Model, last: u8) -> (ConnKey, Conn) {
        let svc = m.service(&vip()).unwrap();
        let d = svc.dest(&rs(last)).unwrap();
        (
            ConnKey {
                caddr: ip_words(&"198.18.200.1".parse().unwrap()),
                vaddr: ip_words(&"198.18.0.100".parse().unwrap()),
                cport: 40000u16.to_be(),
                vport: 80u16.to_be(),
                proto: 6,
                af: AF_INET,
                kind: KIND_CONN,
                _pad0: 0,
            },
            Conn {
                dest_id: d.id,
                svc_id: svc.index,
                flags: conn_flags::NOOUTPUT,
                state: 1,
                ..Conn::default()
            },
        )
    }

    #[test]
    fn a_flow_crosses_to_the_server_of_the_same_address_on_the_peer() {
        let master = model(&[1, 2, 3], FwdMethod::Route);
        let backup = model(&[3, 1, 2], FwdMethod::Route);
        let (key, conn) = flow(&master, 2);
        let e = to_wire(&master, &key, &conn, 900).unwrap();
        assert_eq!(e.addrs.daddr(), rs(2).addr);
        assert_eq!((e.cport, e.vport, e.dport), (40000, 80, 8080));
        assert_eq!(e.flags & flags::FWD_MASK, flags::DROUTE);
        assert_eq!(e.timeout, 900);
        let local = from_wire(&backup, &e).unwrap();
        let want = backup.service(&vip()).unwrap().dest(&rs(2)).unwrap().id;
        assert_ne!(conn.dest_id, want, "the ids differ between the two");
        assert_eq!(local.conn.dest_id, want);
        assert_eq!(local.key, key);
        assert_eq!(local.conn.state, 1);
        assert_eq!(local.conn.flags, conn_flags::NOOUTPUT);
        assert!(!local.nat);
    }

    #[test]
    fn nat_and_inactive_follow_the_local_server_and_the_sent_flags() {
        let master = model(&[1], FwdMethod::Masq);
        let backup = model(&[1], FwdMethod::Masq);
        let (key, mut conn) = flow(&master, 1);
        conn.flags = conn_flags::INACTIVE;
        conn.state = 4;
        let e = to_wire(&master, &key, &conn, 120).unwrap();
        assert_eq!(e.flags & flags::FWD_MASK, flags::MASQ);
        let local = from_wire(&backup, &e).unwrap();
        assert!(local.nat);
        assert_eq!(local.conn.flags, conn_flags::INACTIVE);
        assert_eq!(local.conn.state, 4);
    }

    #[test]
    fn entries_for_what_this_director_lacks_are_unplaced() {
        let master = model(&[1, 2], FwdMethod::Route);
        let (key, conn) = flow(&master, 2);
        let e = to_wire(&master, &key, &conn, 900).unwrap();
        assert_eq!(
            from_wire(&model(&[1], FwdMethod::Route), &e),
            Err(Unplaced::NoDest)
        );
        assert_eq!(from_wire(&Model::new(8, 8), &e), Err(Unplaced::NoService));
        // A flow of a deleted service has nothing to say.
        let mut gone = master.clone();
        gone.delete_service(&vip()).unwrap();
        assert_eq!(to_wire(&gone, &key, &conn, 900), None);
    }

    #[test]
    fn a_flow_of_a_persistent_port_zero_service_carries_the_clients_port() {
        let any_port = ServiceId::Inet {
            proto: Protocol::Tcp,
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)),
            port: 0,
        };
        let director = || {
            let mut m = Model::new(8, 8);
            let mut config = ServiceConfig::new("rr", false);
            config.flags |= crate::model::svc_flags::PERSISTENT;
            config.timeout = 60;
            m.add_service(any_port, config).unwrap();
            let d = DestConfig {
                fwd: FwdMethod::Masq,
                ..DestConfig::default()
            };
            m.add_dest(&any_port, rs(1), d).unwrap();
            m
        };
        let (master, backup) = (director(), director());
        let svc = master.service(&any_port).unwrap();
        let key = ConnKey {
            caddr: ip_words(&"198.18.200.1".parse().unwrap()),
            vaddr: ip_words(&"198.18.0.100".parse().unwrap()),
            cport: 40000u16.to_be(),
            vport: 7777u16.to_be(),
            proto: 6,
            af: AF_INET,
            kind: KIND_CONN,
            _pad0: 0,
        };
        let conn = Conn {
            dest_id: svc.dest(&rs(1)).unwrap().id,
            svc_id: svc.index,
            flags: conn_flags::CONTROLLED | conn_flags::KEEP_PORT,
            state: 1,
            ..Conn::default()
        };
        let e = to_wire(&master, &key, &conn, 900).unwrap();
        // The kernel's dport: the client's port, not the server's 8080.
        assert_eq!((e.vport, e.dport), (7777, 7777));
        let local = from_wire(&backup, &e).unwrap();
        assert_eq!(local.conn.dest_id, conn.dest_id);
        assert_ne!(local.conn.flags & conn_flags::KEEP_PORT, 0);
    }
}
