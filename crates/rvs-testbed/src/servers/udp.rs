//! The UDP server: answers every datagram with `<name>`.

use std::{
    io::ErrorKind,
    net::{SocketAddr, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
};

use anyhow::{Context, Result};

use super::TICK;
use crate::{Netns, bind::retry_in_use};

/// A running UDP server; dropping it stops it.
#[derive(Debug)]
pub struct UdpServer {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    name: String,
    stop: AtomicBool,
    datagrams: AtomicU64,
}

impl UdpServer {
    /// Binds `addr` inside `ns` and answers as `name`.
    pub fn start(ns: &Netns, name: &str, addr: SocketAddr) -> Result<Self> {
        let socket = retry_in_use(|| ns.enter(|| UdpSocket::bind(addr)))?
            .with_context(|| format!("cannot bind UDP {addr} in {}", ns.name()))?;
        // The timeout lets the thread see the stop flag.
        socket.set_read_timeout(Some(TICK))?;
        let local_addr = socket.local_addr()?;
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            stop: AtomicBool::new(false),
            datagrams: AtomicU64::new(0),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("udp-{name}"))
                .spawn(move || answer_loop(&socket, &shared))
                .context("cannot start a UDP server thread")?
        };
        Ok(Self {
            shared,
            local_addr,
            thread: Some(thread),
        })
    }

    /// The name it answers with.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The address it is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How many datagrams it has answered.
    pub fn datagrams(&self) -> u64 {
        self.shared.datagrams.load(Ordering::Relaxed)
    }
}

impl Drop for UdpServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer_loop(socket: &UdpSocket, shared: &Shared) {
    let mut buf = vec![0u8; 65536];
    while !shared.stop.load(Ordering::Relaxed) {
        let peer = match socket.recv_from(&mut buf) {
            Ok((_, peer)) => peer,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            // An ICMP error from an earlier reply's destination shows up here; it ends nothing.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
            Err(e) => {
                eprintln!("rvs-testbed: UDP server {}: {e}", shared.name);
                break;
            }
        };
        // Counted before the answer leaves, so a client holding its answer sees it counted.
        shared.datagrams.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = socket.send_to(shared.name.as_bytes(), peer) {
            eprintln!(
                "rvs-testbed: UDP server {}: reply to {peer}: {e}",
                shared.name
            );
        }
    }
}
