//! Sockets of the checkers: bound to `bindto`/`bind_port` when set, connected to the target.

use std::{
    hash::{BuildHasher, Hasher},
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use tokio::net::{TcpSocket, TcpStream, UdpSocket};

use super::CheckSpec;

pub(super) async fn connect_tcp(spec: &CheckSpec) -> Result<TcpStream, String> {
    let target = spec.target;
    let sock = if target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| format!("socket: {e}"))?;
    if let Some(bind) = spec.bind {
        sock.bind(bind)
            .map_err(|e| format!("bind to {bind}: {e}"))?;
    }
    sock.connect(target)
        .await
        .map_err(|e| format!("connect to {target}: {}", describe(&e)))
}

/// A UDP socket connected to the target, so that an ICMP error comes back as a receive error.
pub(super) async fn connect_udp(spec: &CheckSpec) -> Result<UdpSocket, String> {
    let local = spec
        .bind
        .unwrap_or_else(|| SocketAddr::new(unspecified(spec.target.ip()), 0));
    let sock = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("bind to {local}: {e}"))?;
    sock.connect(spec.target)
        .await
        .map_err(|e| format!("connect to {}: {}", spec.target, describe(&e)))?;
    Ok(sock)
}

pub(super) fn unspecified(like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// An error as a short phrase ("connection refused"), not Rust's debug form.
pub(super) fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
        io::ErrorKind::UnexpectedEof => "connection closed early".to_owned(),
        _ => e.to_string(),
    }
}

/// 64 random bits from the standard library's per-process hash keys (no crate needed for the
/// warmup jitter, DNS ids and UDP payloads).
pub(super) fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish()
}
