//! UDP_CHECK: a datagram (the payload, or random bytes) sent on a connected socket. It fails
//! when an ICMP error comes back (the kernel reports it on the next receive). With
//! `require_reply` it needs an answer within connect_timeout, of a length within
//! min/max_reply_length, whose leading bytes match the pattern; without, silence is success.

use std::time::Duration;

use super::{CheckSpec, UdpCheck, net};

pub async fn check(spec: &CheckSpec, u: &UdpCheck) -> Result<String, String> {
    let sock = net::connect_udp(spec).await?;
    let payload = match &u.payload {
        Some(p) => p.clone(),
        None => net::random_u64().to_be_bytes().repeat(2),
    };
    sock.send(&payload)
        .await
        .map_err(|e| format!("sending: {}", net::describe(&e)))?;
    let mut buf = vec![0u8; 65536];
    let received = tokio::time::timeout(spec.connect_timeout, sock.recv(&mut buf)).await;
    match (received, &u.require_reply) {
        (Ok(Err(e)), _) => Err(format!("no service: {}", net::describe(&e))),
        (Err(_), None) => Ok(format!("no error within {}", millis(spec.connect_timeout))),
        (Err(_), Some(_)) => Err(format!("no reply within {}", millis(spec.connect_timeout))),
        (Ok(Ok(n)), None) => Ok(format!("{n}-byte reply")),
        (Ok(Ok(n)), Some(pattern)) => {
            judge(&buf[..n], pattern, u.min_reply_length, u.max_reply_length)
        }
    }
}

fn judge(reply: &[u8], pattern: &[(u8, u8)], min: usize, max: usize) -> Result<String, String> {
    if reply.len() < min || reply.len() > max {
        return Err(format!("{}-byte reply outside {min}..{max}", reply.len()));
    }
    // The pattern is compared as far as both go.
    if let Some(i) = reply
        .iter()
        .zip(pattern)
        .position(|(b, (v, m))| b & m != v & m)
    {
        return Err(format!("reply differs from require_reply at byte {i}"));
    }
    Ok(format!("{}-byte reply matches", reply.len()))
}

fn millis(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::check::{
        CheckKind, run_once,
        testing::{closed_port, spec, udp_server},
    };

    fn udp(payload: &[u8], require_reply: Option<Vec<(u8, u8)>>) -> CheckKind {
        CheckKind::Udp(UdpCheck {
            payload: Some(payload.to_vec()),
            require_reply,
            min_reply_length: 0,
            max_reply_length: 255,
        })
    }

    #[tokio::test]
    async fn replies_refusals_and_silence() {
        let (echo, _t) = udp_server(None).await;
        assert!(
            run_once(&spec(
                udp(b"\x01\x02", Some(vec![(0x01, 0xff), (0x00, 0x00)])),
                echo
            ))
            .await
            .ok
        );
        let out = run_once(&spec(udp(b"\x02", Some(vec![(0x01, 0xff)])), echo)).await;
        assert_eq!(out.detail, "reply differs from require_reply at byte 0");
        let refused = run_once(&spec(udp(b"x", None), closed_port())).await;
        assert_eq!(refused.detail, "no service: connection refused");
        // A server that never answers: fine without require_reply, a failure with it.
        let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut s = spec(udp(b"x", None), silent.local_addr().unwrap());
        s.connect_timeout = Duration::from_millis(100);
        assert!(run_once(&s).await.ok);
        s.kind = udp(b"x", Some(Vec::new()));
        assert_eq!(run_once(&s).await.detail, "no reply within 100 ms");
    }

    #[test]
    fn patterns() {
        let pat = [(0xab, 0xff), (0x10, 0xf0)];
        assert!(judge(&[0xab, 0x1f, 0x00], &pat, 0, 255).is_ok());
        assert!(
            judge(&[0xab], &pat, 0, 255).is_ok(),
            "compared as far as the reply goes"
        );
        assert!(judge(&[0xab, 0x2f], &pat, 0, 255).is_err());
        assert!(judge(&[0xab, 0x1f], &pat, 3, 255).is_err());
        assert!(judge(&[0xab, 0x1f], &pat, 0, 1).is_err());
    }
}
