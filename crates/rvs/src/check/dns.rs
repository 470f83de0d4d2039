//! DNS_CHECK: a query over UDP of the configured type for the configured name, recursion desired;
//! it passes on a reply with the same id, QR set and RCODE 0 (NOERROR).

use super::{CheckSpec, DnsCheck, net};

pub async fn check(spec: &CheckSpec, d: &DnsCheck) -> Result<String, String> {
    let sock = net::connect_udp(spec).await?;
    let id = net::random_u64() as u16;
    let query = query(id, d.qtype.code(), &d.name);
    sock.send(&query)
        .await
        .map_err(|e| format!("sending query: {}", net::describe(&e)))?;
    let mut buf = [0u8; 4096];
    loop {
        let n = sock
            .recv(&mut buf)
            .await
            .map_err(|e| format!("receiving reply: {}", net::describe(&e)))?;
        // A stray datagram (an old reply) is not our answer; keep waiting.
        if let Some(rcode) = judge(id, &buf[..n]) {
            return match rcode {
                0 => Ok(format!("{} {} answered", d.name, type_name(d.qtype.code()))),
                r => Err(format!("reply with RCODE {r}")),
            };
        }
    }
}

/// A query: header (id, RD, one question) and the question (name, type, class IN).
pub fn query(id: u16, qtype: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes());
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        // Labels were checked when the configuration was read; cut rather than corrupt.
        let label = &label.as_bytes()[..label.len().min(63)];
        q.push(label.len() as u8);
        q.extend_from_slice(label);
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

/// The RCODE of a reply to query `id`, or None when the datagram is not one.
pub fn judge(id: u16, reply: &[u8]) -> Option<u8> {
    if reply.len() < 12 || u16::from_be_bytes([reply[0], reply[1]]) != id || reply[2] & 0x80 == 0 {
        return None;
    }
    Some(reply[3] & 0x0f)
}

fn type_name(code: u16) -> String {
    match code {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        c => format!("TYPE{c}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_bytes() {
        assert_eq!(
            query(0x1234, 6, "."),
            [
                0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1
            ]
        );
        let q = query(1, 1, "www.example.org.");
        assert_eq!(&q[12..], b"\x03www\x07example\x03org\x00\x00\x01\x00\x01");
    }

    use crate::check::{
        CheckKind, DnsType, run_once,
        testing::{closed_port, dns_server, spec},
    };

    fn dns() -> CheckKind {
        CheckKind::Dns(DnsCheck {
            qtype: DnsType::Soa,
            name: ".".into(),
        })
    }

    #[tokio::test]
    async fn against_a_responder() {
        let (ok, _t1) = dns_server(0, 2).await;
        let out = run_once(&spec(dns(), ok)).await;
        assert!(out.ok, "replies with another id are skipped: {out:?}");
        let (refused, _t2) = dns_server(5, 0).await;
        assert_eq!(
            run_once(&spec(dns(), refused)).await.detail,
            "reply with RCODE 5"
        );
        let out = run_once(&spec(dns(), closed_port())).await;
        assert!(
            out.detail.contains("connection refused"),
            "ICMP port unreachable: {out:?}"
        );
    }

    #[test]
    fn replies() {
        let mut r = query(7, 6, ".");
        assert_eq!(judge(7, &r), None, "a query is not a reply");
        r[2] |= 0x80;
        assert_eq!(judge(7, &r), Some(0));
        assert_eq!(judge(8, &r), None);
        r[3] = 0x83;
        assert_eq!(judge(7, &r), Some(3));
    }
}
