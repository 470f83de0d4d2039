//! How the API names services and real servers in paths: `tcp:198.18.0.100:80`,
//! `udp:[2001:db8::1]:53`, `fwm:1` (`fwm6:1` for IPv6), and `198.19.0.12:80` /
//! `[2001:db8::2]:80`.

use std::net::{IpAddr, SocketAddr};

use crate::model::{DestAddr, Protocol, ServiceId};

pub fn service_key(id: &ServiceId) -> String {
    match id {
        ServiceId::Inet { proto, addr, port } => {
            format!(
                "{}:{}",
                proto.service_db_name(),
                SocketAddr::new(*addr, *port)
            )
        }
        ServiceId::Fwmark { mark, ipv6 } => format!("fwm{}:{mark}", if *ipv6 { "6" } else { "" }),
    }
}

pub fn parse_service(s: &str) -> Result<ServiceId, String> {
    let bad =
        || format!("service {s:?}: expected tcp:ADDR:PORT, udp:ADDR:PORT, fwm:MARK or fwm6:MARK");
    let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
    match kind {
        "tcp" | "udp" | "sctp" => {
            let a: SocketAddr = rest.parse().map_err(|_| bad())?;
            let proto = match kind {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                _ => Protocol::Sctp,
            };
            Ok(ServiceId::Inet {
                proto,
                addr: a.ip(),
                port: a.port(),
            })
        }
        "fwm" | "fwm6" => Ok(ServiceId::Fwmark {
            mark: rest.parse().map_err(|_| bad())?,
            ipv6: kind == "fwm6",
        }),
        _ => Err(bad()),
    }
}

pub fn dest_key(d: &DestAddr) -> String {
    SocketAddr::new(d.addr, d.port).to_string()
}

/// `ADDR:PORT`, or a bare address (port 0, as for fwmark services).
pub fn parse_dest(s: &str) -> Result<DestAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(DestAddr {
            addr: a.ip(),
            port: a.port(),
        });
    }
    s.parse::<IpAddr>()
        .map(|addr| DestAddr { addr, port: 0 })
        .map_err(|_| format!("real server {s:?}: expected ADDR:PORT"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for s in [
            "tcp:198.18.0.100:80",
            "udp:[2001:db8::1]:53",
            "fwm:1",
            "fwm6:7",
        ] {
            assert_eq!(service_key(&parse_service(s).unwrap()), s);
        }
        for s in ["198.19.0.12:80", "[2001:db8::2]:80"] {
            assert_eq!(dest_key(&parse_dest(s).unwrap()), s);
        }
        assert_eq!(parse_dest("198.19.0.12").unwrap().port, 0);
        assert!(parse_service("tcp:1.2.3.4").is_err());
        assert!(parse_service("icmp:1.2.3.4:0").is_err());
        assert!(parse_dest("nonsense").is_err());
    }
}
