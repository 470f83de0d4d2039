//! The TCP server: answers every line with `<name> <line>` on a connection kept open until the
//! client closes it, an HTTP `GET` with a minimal HTTP/1.0 response whose body is `<name>`, or
//! a bulk request (`SEND`/`RECV`, see [`crate::bulk`]) with a bulk transfer.

use std::{
    io::{self, ErrorKind, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use anyhow::{Context, Result};
use nix::sys::socket::{Backlog, SockType, listen};

use super::{TICK, bulk, lines::LineReader, socket};
use crate::{Netns, bulk::Request};

/// How long a reply may wait for a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// A running TCP server; dropping it stops it and closes its connections.
#[derive(Debug)]
pub struct TcpServer {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    name: String,
    stop: AtomicBool,
    connections: AtomicU64,
    requests: AtomicU64,
}

impl TcpServer {
    /// Listens on `addr` inside `ns` and answers as `name`. On `[::]` it takes IPv4 too.
    pub fn start(ns: &Netns, name: &str, addr: SocketAddr) -> Result<Self> {
        let fd = socket::bound(ns, addr, SockType::Stream)?;
        listen(&fd, Backlog::MAXCONN)
            .with_context(|| format!("cannot listen on TCP {addr} in {}", ns.name()))?;
        let listener = TcpListener::from(fd);
        // Nonblocking, so that accept cannot hang when a connection vanishes after poll saw it.
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            stop: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("tcp-{name}"))
                .spawn(move || accept_loop(&listener, &shared))
                .context("cannot start a TCP server thread")?
        };
        Ok(Self {
            shared,
            local_addr,
            acceptor: Some(acceptor),
        })
    }

    /// The name it answers with.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How many connections it has accepted.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// How many lines, HTTP requests and bulk requests it has answered. Counted before the answer leaves, so a
    /// client holding its answer sees it counted.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::Relaxed) {
        match wait_readable(listener, TICK) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                eprintln!("rvs-testbed: TCP server {}: poll: {e}", shared.name);
                break;
            }
        }
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::ConnectionAborted
                ) =>
            {
                continue;
            }
            Err(e) => {
                eprintln!("rvs-testbed: TCP server {}: accept: {e}", shared.name);
                break;
            }
        };
        shared.connections.fetch_add(1, Ordering::Relaxed);
        connections.retain(|c| !c.is_finished());
        let shared = Arc::clone(shared);
        // A client resetting its connection is its own business, not an error of the server.
        match thread::Builder::new().spawn(move || drop(serve(stream, &shared))) {
            Ok(handle) => connections.push(handle),
            Err(e) => eprintln!("rvs-testbed: cannot start a connection thread: {e}"),
        }
    }
    for connection in connections {
        let _ = connection.join();
    }
}

fn serve(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(TICK))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut lines = LineReader::new(stream);
    let Some(mut line) = lines.next_line(&shared.stop)? else {
        return Ok(());
    };
    if let Some(request) = Request::parse(&line) {
        shared.requests.fetch_add(1, Ordering::Relaxed);
        return bulk::serve(
            request,
            &shared.name,
            lines.rest(),
            &mut writer,
            &shared.stop,
        );
    }
    if line.starts_with("GET ") {
        // The request ends with an empty line; its headers do not matter.
        loop {
            match lines.next_line(&shared.stop)? {
                None => return Ok(()),
                Some(header) if header.is_empty() => break,
                Some(_) => {}
            }
        }
        let body = format!("{}\n", shared.name);
        let response = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        shared.requests.fetch_add(1, Ordering::Relaxed);
        writer.write_all(response.as_bytes())?;
        return Ok(());
    }
    loop {
        shared.requests.fetch_add(1, Ordering::Relaxed);
        writer.write_all(format!("{} {line}\n", shared.name).as_bytes())?;
        match lines.next_line(&shared.stop)? {
            Some(next) => line = next,
            None => return Ok(()),
        }
    }
}

/// Waits up to `timeout` for `listener` to have a connection to accept.
fn wait_readable(listener: &TcpListener, timeout: Duration) -> io::Result<bool> {
    let mut fd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `fd` is one valid pollfd that outlives the call.
    match unsafe { libc::poll(&mut fd, 1, millis) } {
        -1 => match io::Error::last_os_error() {
            e if e.kind() == ErrorKind::Interrupted => Ok(false),
            e => Err(e),
        },
        0 => Ok(false),
        _ => Ok(true),
    }
}
