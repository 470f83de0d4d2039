//! The accept loop the protocol servers share: a listening socket made inside a namespace, one
//! thread per connection, and a count of connections by client address, so a test can tell
//! whether a client's new connections still reach this server while health checks keep coming
//! from the director.

use std::{
    collections::HashMap,
    io::ErrorKind,
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
};

use anyhow::{Context, Result};
use nix::sys::socket::{Backlog, SockType, listen};

use super::{TICK, socket};
use crate::Netns;

/// A listener and its connection threads; dropping it stops them.
#[derive(Debug)]
pub struct Acceptor {
    stop: Arc<AtomicBool>,
    peers: Arc<Mutex<HashMap<IpAddr, u64>>>,
    local_addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    /// Listens on `addr` inside `ns` and runs `serve` on a thread of its own for each connection;
    /// `serve` should return soon after `stop` is set.
    pub fn start(
        ns: &Netns,
        name: &str,
        addr: SocketAddr,
        serve: impl Fn(TcpStream, &AtomicBool) + Send + Sync + 'static,
    ) -> Result<Self> {
        let fd = socket::bound(ns, addr, SockType::Stream)?;
        listen(&fd, Backlog::MAXCONN)
            .with_context(|| format!("cannot listen on TCP {addr} in {}", ns.name()))?;
        let listener = TcpListener::from(fd);
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let peers = Arc::new(Mutex::new(HashMap::new()));
        let thread = {
            let (stop, peers) = (Arc::clone(&stop), Arc::clone(&peers));
            let serve = Arc::new(serve);
            thread::Builder::new()
                .name(format!("accept-{name}"))
                .spawn(move || accept_loop(&listener, &stop, &peers, serve))
                .context("cannot start an accept thread")?
        };
        Ok(Self {
            stop,
            peers,
            local_addr,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How many connections came from `ip`.
    pub fn connections_from(&self, ip: IpAddr) -> u64 {
        let peers = self.peers.lock().expect("peer counts");
        peers.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Serve = dyn Fn(TcpStream, &AtomicBool) + Send + Sync;

fn accept_loop(
    listener: &TcpListener,
    stop: &Arc<AtomicBool>,
    peers: &Mutex<HashMap<IpAddr, u64>>,
    serve: Arc<Serve>,
) {
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if !readable(listener) {
            continue;
        }
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::ConnectionAborted
                ) =>
            {
                continue;
            }
            Err(e) => {
                eprintln!("rvs-testbed: accept: {e}");
                break;
            }
        };
        // An IPv4 client of a `[::]` listener shows as ::ffff:a.b.c.d.
        *peers
            .lock()
            .expect("peer counts")
            .entry(peer.ip().to_canonical())
            .or_default() += 1;
        connections.retain(|c| !c.is_finished());
        let (stop, serve) = (Arc::clone(stop), Arc::clone(&serve));
        // Blocking reads wake up every TICK to look at the stop flag.
        let _ = stream.set_read_timeout(Some(TICK));
        match thread::Builder::new().spawn(move || serve(stream, &stop)) {
            Ok(handle) => connections.push(handle),
            Err(e) => eprintln!("rvs-testbed: cannot start a connection thread: {e}"),
        }
    }
    for c in connections {
        let _ = c.join();
    }
}

/// Waits up to one TICK for a connection to accept.
fn readable(listener: &TcpListener) -> bool {
    let mut fd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `fd` is one valid pollfd that outlives the call.
    unsafe { libc::poll(&mut fd, 1, TICK.as_millis() as libc::c_int) > 0 }
}
