//! `-L -c`: the connection table, in ipvsadm's columns (from the rows rvsd reports instead of
//! /proc/net/ip_vs_conn). Rows keep rvsd's order.

use super::{addr::addrport_to_anyname, format::Format, resolve::Resolver};
use crate::control::proto::ConnView;

/// The two header lines.
pub fn header(format: &Format) -> String {
    let mut out = String::from("IPVS connection entries\n");
    if format.persistent_conn {
        out.push_str(&format!(
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} {}\n",
            "state", "source", "virtual", "destination", "pe name", "pe_data"
        ));
    } else {
        out.push_str(&format!(
            "pro expire {:<11} {:<18} {:<18} {}\n",
            "state", "source", "virtual", "destination"
        ));
    }
    out
}

/// One connection.
pub fn row(conn: &ConnView, format: &Format, resolver: &dyn Resolver) -> String {
    // Templates of fwmark services have no protocol; the kernel calls them IP.
    let (proto_name, protocol) = match conn.protocol {
        Some(p) => (p.name(), u16::from(p.number())),
        None => ("IP", 0),
    };
    let name = |addr, port| addrport_to_anyname(addr, port, protocol, format.numeric, resolver);
    let client = name(conn.client, conn.client_port);
    let virt = name(conn.virtual_addr, conn.virtual_port);
    let dest = name(conn.dest, conn.dest_port);
    let expire = format!("{:02}:{:02}", conn.expires / 60, conn.expires % 60);
    let pe = match (&conn.pe_name, &conn.pe_data) {
        (Some(n), Some(d)) if format.persistent_conn && !n.is_empty() && !d.is_empty() => {
            Some((n, d))
        }
        _ => None,
    };
    match pe {
        Some((pe_name, pe_data)) => format!(
            "{proto_name:<3} {expire:<6} {:<11} {client:<18} {virt:<18} {dest:<16} {pe_name:<18} {pe_data}\n",
            conn.state
        ),
        None => format!(
            "{proto_name:<3} {expire:<6} {:<11} {client:<18} {virt:<18} {dest}\n",
            conn.state
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvsadm::testing::FakeResolver;
    use crate::model::Protocol;

    fn conn(
        proto: Option<Protocol>,
        c: &str,
        v: &str,
        d: &str,
        state: &str,
        expires: u64,
    ) -> ConnView {
        ConnView {
            protocol: proto,
            client: c.parse().unwrap(),
            client_port: 54321,
            virtual_addr: v.parse().unwrap(),
            virtual_port: 80,
            dest: d.parse().unwrap(),
            dest_port: if d.contains(':') { 8080 } else { 80 },
            state: state.to_owned(),
            expires,
            pe_name: None,
            pe_data: None,
        }
    }

    #[test]
    fn rows_as_ipvsadm_prints_them() {
        let f = Format {
            numeric: true,
            ..Format::default()
        };
        let r = FakeResolver;
        assert_eq!(
            header(&f),
            "IPVS connection entries\npro expire state       source             virtual            destination\n"
        );
        let tcp = conn(
            Some(Protocol::Tcp),
            "192.168.0.1",
            "10.0.0.1",
            "192.168.1.16",
            "ESTABLISHED",
            899,
        );
        assert_eq!(
            row(&tcp, &f, &r),
            "TCP 14:59  ESTABLISHED 192.168.0.1:54321  10.0.0.1:80        192.168.1.16:80\n"
        );
        let v6 = conn(
            Some(Protocol::Tcp),
            "2001:db8::2",
            "2001:db8::1",
            "2001:db8::10",
            "FIN_WAIT",
            60,
        );
        assert_eq!(
            row(&v6, &f, &r),
            "TCP 01:00  FIN_WAIT    [2001:db8::2]:54321 [2001:db8::1]:80   [2001:db8::10]:8080\n"
        );
        let sctp = conn(
            Some(Protocol::Sctp),
            "192.168.0.1",
            "10.0.0.1",
            "192.168.1.16",
            "ESTABLISHED",
            5,
        );
        assert_eq!(
            row(&sctp, &f, &r),
            "SCTP 00:05  ESTABLISHED 192.168.0.1:54321  10.0.0.1:80        192.168.1.16:80\n"
        );
        let mut tpl = conn(
            Some(Protocol::Tcp),
            "10.0.0.2",
            "10.0.0.1",
            "192.168.1.16",
            "NONE",
            6123,
        );
        tpl.client_port = 0;
        tpl.pe_name = Some("sip".to_owned());
        tpl.pe_data = Some("1234@example".to_owned());
        let pc = Format {
            persistent_conn: true,
            ..f
        };
        assert_eq!(
            header(&pc).lines().nth(1).unwrap(),
            "pro expire state       source             virtual            destination        pe name          pe_data"
        );
        assert_eq!(
            row(&tpl, &pc, &r),
            "TCP 102:03 NONE        10.0.0.2:0         10.0.0.1:80        192.168.1.16:80  sip                1234@example\n"
        );
        // Without --persistent-conn the pe fields are not shown.
        assert_eq!(
            row(&tpl, &f, &r),
            "TCP 102:03 NONE        10.0.0.2:0         10.0.0.1:80        192.168.1.16:80\n"
        );
        let fwm = conn(None, "10.0.0.2", "0.0.0.0", "192.168.1.16", "NONE", 0);
        assert_eq!(
            row(&fwm, &Format::default(), &r),
            "IP  00:00  NONE        10.0.0.2:54321     0.0.0.0:80         192.168.1.16:80\n"
        );
    }
}
