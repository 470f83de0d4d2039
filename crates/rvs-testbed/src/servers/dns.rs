//! A DNS responder over UDP: every query gets a reply with its id and question, QR and RA set,
//! RD copied, no records, and the RCODE a test sets (0, NOERROR, by default; 2, SERVFAIL, or 5,
//! REFUSED, make DNS_CHECK fail while the server keeps answering).

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    thread::{self, JoinHandle},
};

use anyhow::{Context, Result};
use nix::sys::socket::SockType;

use super::{TICK, socket};
use crate::Netns;

/// The queries received: sender and bytes.
type Queries = Mutex<Vec<(IpAddr, Vec<u8>)>>;

/// A running DNS responder; dropping it stops it.
#[derive(Debug)]
pub struct DnsServer {
    rcode: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    queries: Arc<Queries>,
    local_addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Answers on UDP `addr` inside `ns`.
    pub fn start(ns: &Netns, addr: SocketAddr) -> Result<Self> {
        let socket = UdpSocket::from(socket::bound(ns, addr, SockType::Datagram)?);
        socket.set_read_timeout(Some(TICK))?;
        let local_addr = socket.local_addr()?;
        let rcode = Arc::new(AtomicU8::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (rcode, stop, queries) = (rcode.clone(), stop.clone(), queries.clone());
            thread::Builder::new()
                .name("dns".into())
                .spawn(move || answer_loop(&socket, &rcode, &stop, &queries))
                .context("cannot start a DNS server thread")?
        };
        Ok(Self {
            rcode,
            stop,
            queries,
            local_addr,
            thread: Some(thread),
        })
    }

    /// Answers with `rcode` from now on.
    pub fn set_rcode(&self, rcode: u8) {
        self.rcode.store(rcode & 0x0f, Ordering::Relaxed);
    }

    /// The queries received: sender and bytes.
    pub fn queries(&self) -> Vec<(IpAddr, Vec<u8>)> {
        self.queries.lock().expect("dns queries").clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer_loop(socket: &UdpSocket, rcode: &AtomicU8, stop: &AtomicBool, queries: &Queries) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(_) => continue,
        };
        let query = &buf[..n];
        queries
            .lock()
            .expect("dns queries")
            .push((peer.ip().to_canonical(), query.to_vec()));
        if let Some(reply) = reply(query, rcode.load(Ordering::Relaxed)) {
            let _ = socket.send_to(&reply, peer);
        }
    }
}

/// The reply to `query`: its header with QR, RA and `rcode`, no records, the question kept.
fn reply(query: &[u8], rcode: u8) -> Option<Vec<u8>> {
    // A header, and not itself a reply.
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let mut r = query.to_vec();
    r[2] = 0x80 | (query[2] & 0x79);
    r[3] = 0x80 | rcode;
    // Answer, authority and additional counts: none.
    r[6..12].fill(0);
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_keep_id_and_question() {
        let q = [
            0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1,
        ];
        let r = reply(&q, 0).unwrap();
        assert_eq!(r[..4], [0x12, 0x34, 0x81, 0x80]);
        assert_eq!(r[12..], q[12..]);
        assert_eq!(reply(&q, 2).unwrap()[3], 0x82);
        assert_eq!(reply(&r, 0), None, "a reply is not answered");
    }
}
