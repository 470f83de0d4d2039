//! Name lookups and libc's address text conversions.
//!
//! Lookups sit behind [`Resolver`] so that unit tests never touch the resolver configuration or
//! the network. The system implementation uses the reentrant libc calls: getaddrinfo (for
//! ipvsadm's gethostbyname), getnameinfo (for gethostbyaddr), getservbyname_r and getservbyport_r.
//! Text conversions call inet_pton/inet_ntop themselves, since their corner cases (an embedded
//! IPv4 part, `::0.2.0.3`) differ from Rust's parser and Display.

use std::{
    ffi::{CStr, CString, c_char, c_int},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    ptr,
};

/// The lookups ipvsadm makes.
pub trait Resolver {
    /// gethostbyname: the first IPv4 address of `name`.
    fn host_v4(&self, name: &str) -> Option<Ipv4Addr>;
    /// getservbyname: the port of a service name for `proto` (`tcp`, `udp`, `sctp`).
    fn service_port(&self, name: &str, proto: &str) -> Option<u16>;
    /// gethostbyaddr: the host name of an address.
    fn host_name(&self, addr: IpAddr) -> Option<String>;
    /// getservbyport: the service name of a port for `proto`.
    fn service_name(&self, port: u16, proto: &str) -> Option<String>;
}

/// Lookups through the C library (files, DNS, ... as nsswitch.conf says).
pub struct SystemResolver;

// Standard C library functions the libc crate does not declare (glibc and musl have them).
unsafe extern "C" {
    fn inet_pton(af: c_int, src: *const c_char, dst: *mut libc::c_void) -> c_int;
    fn inet_ntop(
        af: c_int,
        src: *const libc::c_void,
        dst: *mut c_char,
        size: libc::socklen_t,
    ) -> *const c_char;
    fn getservbyname_r(
        name: *const c_char,
        proto: *const c_char,
        result_buf: *mut libc::servent,
        buf: *mut c_char,
        buflen: libc::size_t,
        result: *mut *mut libc::servent,
    ) -> c_int;
    fn getservbyport_r(
        port: c_int,
        proto: *const c_char,
        result_buf: *mut libc::servent,
        buf: *mut c_char,
        buflen: libc::size_t,
        result: *mut *mut libc::servent,
    ) -> c_int;
}

const SERVENT_BUF: usize = 4096;

impl Resolver for SystemResolver {
    fn host_v4(&self, name: &str) -> Option<Ipv4Addr> {
        let name = CString::new(name).ok()?;
        // SAFETY: addrinfo is plain data; all-zero is its "no hints" value.
        let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
        hints.ai_family = libc::AF_INET;
        let mut res: *mut libc::addrinfo = ptr::null_mut();
        // SAFETY: valid C strings and pointers; the result list is freed below.
        let rc = unsafe { libc::getaddrinfo(name.as_ptr(), ptr::null(), &hints, &mut res) };
        if rc != 0 || res.is_null() {
            return None;
        }
        let mut found = None;
        let mut cur = res;
        while !cur.is_null() {
            // SAFETY: cur walks the list getaddrinfo returned.
            let ai = unsafe { &*cur };
            if ai.ai_family == libc::AF_INET && !ai.ai_addr.is_null() {
                // SAFETY: an AF_INET entry carries a sockaddr_in.
                let sin = unsafe { &*(ai.ai_addr as *const libc::sockaddr_in) };
                found = Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
                break;
            }
            cur = ai.ai_next;
        }
        // SAFETY: res came from getaddrinfo.
        unsafe { libc::freeaddrinfo(res) };
        found
    }

    fn service_port(&self, name: &str, proto: &str) -> Option<u16> {
        let name = CString::new(name).ok()?;
        let proto = CString::new(proto).ok()?;
        with_servent(|entry, buf, result| {
            // SAFETY: all pointers are valid for the call; buf has SERVENT_BUF bytes.
            unsafe {
                getservbyname_r(
                    name.as_ptr(),
                    proto.as_ptr(),
                    entry,
                    buf,
                    SERVENT_BUF,
                    result,
                )
            }
        })
        .map(|s| u16::from_be(s.s_port as u16))
    }

    fn host_name(&self, addr: IpAddr) -> Option<String> {
        let mut host = [0 as c_char; 1025];
        let rc = with_sockaddr(addr, |sa, len| {
            // SAFETY: sa points to a sockaddr of len bytes; host is writable.
            unsafe {
                libc::getnameinfo(
                    sa,
                    len,
                    host.as_mut_ptr(),
                    host.len() as libc::socklen_t,
                    ptr::null_mut(),
                    0,
                    libc::NI_NAMEREQD,
                )
            }
        });
        if rc != 0 {
            return None;
        }
        // SAFETY: getnameinfo NUL-terminates the host name on success.
        Some(
            unsafe { CStr::from_ptr(host.as_ptr()) }
                .to_string_lossy()
                .into_owned(),
        )
    }

    fn service_name(&self, port: u16, proto: &str) -> Option<String> {
        let proto = CString::new(proto).ok()?;
        with_servent(|entry, buf, result| {
            // SAFETY: as in service_port.
            unsafe {
                getservbyport_r(
                    c_int::from(port.to_be()),
                    proto.as_ptr(),
                    entry,
                    buf,
                    SERVENT_BUF,
                    result,
                )
            }
        })
        .map(|s| s.name)
    }
}

/// What we keep of a `struct servent`.
struct Servent {
    name: String,
    s_port: c_int,
}

fn with_servent(
    call: impl FnOnce(*mut libc::servent, *mut c_char, *mut *mut libc::servent) -> c_int,
) -> Option<Servent> {
    // SAFETY: servent is plain data (pointers and ints); zero is a valid placeholder.
    let mut entry: libc::servent = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as c_char; SERVENT_BUF];
    let mut result: *mut libc::servent = ptr::null_mut();
    let rc = call(&mut entry, buf.as_mut_ptr(), &mut result);
    if rc != 0 || result.is_null() || entry.s_name.is_null() {
        return None;
    }
    // SAFETY: on success s_name points into buf, NUL-terminated.
    let name = unsafe { CStr::from_ptr(entry.s_name) }
        .to_string_lossy()
        .into_owned();
    Some(Servent {
        name,
        s_port: entry.s_port,
    })
}

fn with_sockaddr(
    addr: IpAddr,
    call: impl FnOnce(*const libc::sockaddr, libc::socklen_t) -> c_int,
) -> c_int {
    match addr {
        IpAddr::V4(a) => {
            // SAFETY: sockaddr_in is plain data.
            let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from(a).to_be();
            call(
                (&sin as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        IpAddr::V6(a) => {
            // SAFETY: sockaddr_in6 is plain data.
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = a.octets();
            call(
                (&sin6 as *const libc::sockaddr_in6).cast(),
                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

/// `inet_pton(AF_INET6, text)`.
pub fn pton6(text: &str) -> Option<Ipv6Addr> {
    let c = CString::new(text).ok()?;
    let mut out = [0u8; 16];
    // SAFETY: out has room for an in6_addr.
    let rc = unsafe { inet_pton(libc::AF_INET6, c.as_ptr(), out.as_mut_ptr().cast()) };
    (rc == 1).then(|| Ipv6Addr::from(out))
}

/// `inet_pton(AF_INET, text)`: strict dotted quad.
pub fn pton4(text: &str) -> Option<Ipv4Addr> {
    let c = CString::new(text).ok()?;
    let mut out = [0u8; 4];
    // SAFETY: out has room for an in_addr.
    let rc = unsafe { inet_pton(libc::AF_INET, c.as_ptr(), out.as_mut_ptr().cast()) };
    (rc == 1).then(|| Ipv4Addr::from(out))
}

/// `inet_ntop`: dotted quad, or glibc's compressed IPv6 text.
pub fn ntop(addr: IpAddr) -> String {
    let (af, bytes): (c_int, Vec<u8>) = match addr {
        IpAddr::V4(a) => return a.to_string(),
        IpAddr::V6(a) => (libc::AF_INET6, a.octets().to_vec()),
    };
    let mut out = [0 as c_char; 64];
    // SAFETY: bytes holds an in6_addr; out is larger than INET6_ADDRSTRLEN.
    let p = unsafe {
        inet_ntop(
            af,
            bytes.as_ptr().cast(),
            out.as_mut_ptr(),
            out.len() as libc::socklen_t,
        )
    };
    if p.is_null() {
        return addr.to_string();
    }
    // SAFETY: inet_ntop NUL-terminates on success.
    unsafe { CStr::from_ptr(out.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_conversions_follow_libc() {
        assert_eq!(pton6("2001:db8::1"), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(pton6("1.2.3.4"), None);
        assert_eq!(pton6("2001:db8::1:80x"), None);
        assert_eq!(pton4("10.2"), None);
        assert_eq!(pton4("224.0.0.81"), Some(Ipv4Addr::new(224, 0, 0, 81)));
        assert_eq!(ntop("2001:DB8::10".parse().unwrap()), "2001:db8::10");
        assert_eq!(ntop("::2:3".parse().unwrap()), "::0.2.0.3");
        assert_eq!(ntop("::ffff:1.2.3.4".parse().unwrap()), "::ffff:1.2.3.4");
        assert_eq!(ntop("::1".parse().unwrap()), "::1");
    }

    #[test]
    fn numeric_host_lookup_needs_no_network() {
        assert_eq!(
            SystemResolver.host_v4("127.0.0.1"),
            Some(Ipv4Addr::LOCALHOST)
        );
    }
}
