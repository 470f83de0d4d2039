//! The UDP server: answers every datagram with `<name>`, from the address it was sent to.
//!
//! Bound to the wildcard address, a plain `send_to` would answer from the host's own address;
//! a real server behind a direct-routing director receives datagrams for the VIP and must answer
//! from the VIP, or the client drops the reply. Like DNS servers, it reads each datagram's
//! destination (IP_PKTINFO, or IPV6_PKTINFO on an IPv6 socket, which reports IPv4 destinations
//! as `::ffff:a.b.c.d` too) and sends the answer from it.

use std::{
    io::{IoSlice, IoSliceMut},
    net::{SocketAddr, UdpSocket},
    os::fd::AsRawFd,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
};

use anyhow::{Context, Result};
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockType, SockaddrStorage, recvmsg, sendmsg,
    setsockopt,
    sockopt::{Ipv4PacketInfo, Ipv6RecvPacketInfo},
};

use super::{TICK, socket};
use crate::Netns;

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
    /// Binds `addr` inside `ns` and answers as `name`. On `[::]` it takes IPv4 too.
    pub fn start(ns: &Netns, name: &str, addr: SocketAddr) -> Result<Self> {
        let socket = UdpSocket::from(socket::bound(ns, addr, SockType::Datagram)?);
        // The timeout lets the thread see the stop flag.
        socket.set_read_timeout(Some(TICK))?;
        match addr {
            SocketAddr::V4(_) => {
                setsockopt(&socket, Ipv4PacketInfo, &true).context("cannot set IP_PKTINFO")?
            }
            SocketAddr::V6(_) => setsockopt(&socket, Ipv6RecvPacketInfo, &true)
                .context("cannot set IPV6_RECVPKTINFO")?,
        }
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

/// The destination of a datagram, where its answer comes from.
enum Destination {
    V4(libc::in_pktinfo),
    V6(libc::in6_pktinfo),
}

impl Destination {
    fn of(message: ControlMessageOwned) -> Option<Self> {
        match message {
            ControlMessageOwned::Ipv4PacketInfo(info) => Some(Self::V4(info)),
            ControlMessageOwned::Ipv6PacketInfo(info) => Some(Self::V6(info)),
            _ => None,
        }
    }

    /// Sends from the address the datagram was sent to, whatever interface it came in on.
    fn reply_from(&mut self) -> ControlMessage<'_> {
        match self {
            Self::V4(info) => {
                info.ipi_spec_dst = info.ipi_addr;
                info.ipi_ifindex = 0;
                ControlMessage::Ipv4PacketInfo(info)
            }
            Self::V6(info) => {
                info.ipi6_ifindex = 0;
                ControlMessage::Ipv6PacketInfo(info)
            }
        }
    }
}

fn answer_loop(socket: &UdpSocket, shared: &Shared) {
    let mut buf = vec![0u8; 65536];
    let mut cmsg = nix::cmsg_space!(libc::in_pktinfo, libc::in6_pktinfo);
    while !shared.stop.load(Ordering::Relaxed) {
        let (peer, mut local) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<SockaddrStorage>(
                socket.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            ) {
                Ok(msg) => {
                    let local = (msg.cmsgs().ok()).and_then(|mut c| c.find_map(Destination::of));
                    match msg.address {
                        Some(peer) => (peer, local),
                        None => continue,
                    }
                }
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
                // An ICMP error from an earlier reply's destination shows up here; it ends nothing.
                Err(nix::errno::Errno::ECONNREFUSED) => continue,
                Err(e) => {
                    eprintln!("rvs-testbed: UDP server {}: {e}", shared.name);
                    break;
                }
            }
        };
        // Counted before the answer leaves, so a client holding its answer sees it counted.
        shared.datagrams.fetch_add(1, Ordering::Relaxed);
        let iov = [IoSlice::new(shared.name.as_bytes())];
        let cmsgs: Vec<ControlMessage> = local.iter_mut().map(Destination::reply_from).collect();
        if let Err(e) = sendmsg(
            socket.as_raw_fd(),
            &iov,
            &cmsgs,
            MsgFlags::empty(),
            Some(&peer),
        ) {
            eprintln!(
                "rvs-testbed: UDP server {}: reply to {peer}: {e}",
                shared.name
            );
        }
    }
}
