//! TCP MD5 signatures (RFC 2385) on a BGP socket: the kernel signs and checks every segment
//! with the key set for the peer's address. Written by hand because neither socket2 nor nix
//! nor libc offers `TCP_MD5SIG` with its `struct tcp_md5sig` (linux/tcp.h).

use std::{io, net::IpAddr, os::fd::AsRawFd};

/// linux/tcp.h: `TCP_MD5SIG`.
const TCP_MD5SIG: libc::c_int = 14;
const TCP_MD5SIG_MAXKEYLEN: usize = 80;

/// linux/tcp.h's `struct tcp_md5sig`.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; TCP_MD5SIG_MAXKEYLEN],
}

/// Sets (or, with an empty key, clears) the key for segments to and from `peer` on `socket`,
/// a connecting socket or a listener.
pub fn set_key(socket: &impl AsRawFd, peer: IpAddr, key: &[u8]) -> io::Result<()> {
    if key.len() > TCP_MD5SIG_MAXKEYLEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a TCP MD5 key has at most 80 bytes",
        ));
    }
    // SAFETY: an all-zero tcp_md5sig is valid (family 0 until set below).
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    let storage = std::ptr::addr_of_mut!(sig.addr);
    match peer {
        IpAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
            let sin = unsafe { &mut *storage.cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from(a).to_be();
        }
        IpAddr::V6(a) => {
            // SAFETY: as above.
            let sin6 = unsafe { &mut *storage.cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = a.octets();
        }
    }
    sig.keylen = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: the option's value is a tcp_md5sig of the size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            TCP_MD5SIG,
            std::ptr::addr_of!(sig).cast(),
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_takes_a_key_on_a_listener_and_refuses_a_long_one() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_key(&l, "127.0.0.2".parse().unwrap(), b"secret").unwrap();
        set_key(&l, "::ffff:127.0.0.3".parse().unwrap(), b"").ok();
        assert!(set_key(&l, "127.0.0.2".parse().unwrap(), &[b'x'; 81]).is_err());
    }
}
