//! One client connection in `mode tls`: the ClientHello is read (within `head_timeout` and
//! `max_head` bytes) and parsed by rustls's `Acceptor` on a copy, only to learn the server
//! name; the connection is never decrypted. The pool is chosen by the rules' hosts, a real server
//! by the pool's scheduler, and from then on bytes flow both ways untouched, the ClientHello
//! first.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
};

use tokio::{net::TcpStream, time::Instant};
use tracing::debug;

use super::{body::Buffered, proxy_v2, site::Request, site::Site};
use crate::keepalived::l7::ForwardFor;

/// What the buffered bytes say so far.
pub enum Hello {
    /// The server name (None: the client sent none).
    Complete(Option<String>),
    More,
    NotTls,
}

/// The server name of the ClientHello at the start of `bytes`, read on a copy.
pub fn server_name(bytes: &[u8]) -> Hello {
    let mut acceptor = rustls::server::Acceptor::default();
    let mut rest = bytes;
    while !rest.is_empty() {
        match acceptor.read_tls(&mut rest) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => return Hello::NotTls,
        }
    }
    match acceptor.accept() {
        Ok(Some(accepted)) => Hello::Complete(
            accepted
                .client_hello()
                .server_name()
                .map(|n| n.to_ascii_lowercase()),
        ),
        Ok(None) => Hello::More,
        Err(_) => Hello::NotTls,
    }
}

pub async fn serve(site: Arc<Site>, stream: TcpStream, client: SocketAddr, local: SocketAddr) {
    let c = &site.counters;
    c.connections.fetch_add(1, Ordering::Relaxed);
    c.active_connections.fetch_add(1, Ordering::Relaxed);
    relay(&site, Buffered::new(stream), client, local).await;
    c.active_connections.fetch_sub(1, Ordering::Relaxed);
}

async fn relay(site: &Site, mut conn: Buffered, client: SocketAddr, local: SocketAddr) {
    let cfg = &site.config;
    let deadline = Instant::now() + cfg.head_timeout;
    let name = loop {
        if !conn.data().is_empty() {
            match server_name(conn.data()) {
                Hello::Complete(n) => break n,
                Hello::NotTls => {
                    debug!("L7 {}: not a TLS ClientHello", cfg.name());
                    site.counters.refuse(400);
                    return;
                }
                Hello::More if conn.data().len() > cfg.max_head => {
                    site.counters.refuse(431);
                    return;
                }
                Hello::More => {}
            }
        }
        match tokio::time::timeout_at(deadline, conn.fill()).await {
            Err(_) => {
                site.counters.refuse(408);
                return;
            }
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
    };
    site.counters.requests.fetch_add(1, Ordering::Relaxed);
    let none = |_: &str| None;
    let host = name.unwrap_or_default();
    let Some(pool) = site
        .route(&Request {
            host: &host,
            path: "",
            field: &none,
            cookie: &none,
        })
        .map(|i| &site.pools[i])
    else {
        site.counters.unrouted.fetch_add(1, Ordering::Relaxed);
        return;
    };
    pool.requests.fetch_add(1, Ordering::Relaxed);
    let backend = match pool.choose(client, None) {
        Some(c) => &pool.servers[c.backend],
        None => match &pool.sorry {
            Some(s) => {
                pool.to_sorry.fetch_add(1, Ordering::Relaxed);
                s
            }
            None => {
                pool.unavailable.fetch_add(1, Ordering::Relaxed);
                return;
            }
        },
    };
    backend.requests.fetch_add(1, Ordering::Relaxed);
    // The same connect as in http mode: bounded, TCP_NODELAY, the PROXY header first.
    let proxy_header =
        (pool.config.forward_for == ForwardFor::ProxyV2).then(|| proxy_v2::header(client, local));
    let Some(mut up) = super::http::connect(backend, proxy_header).await else {
        backend.failures.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if super::body::send(&mut up.io, conn.data(), cfg.head_timeout)
        .await
        .is_err()
    {
        backend.failures.fetch_add(1, Ordering::Relaxed);
        return;
    }
    backend.active.fetch_add(1, Ordering::Relaxed);
    if let Ok((a, b)) = tokio::io::copy_bidirectional(&mut conn.io, &mut up.io).await {
        site.counters.bytes_in.fetch_add(a, Ordering::Relaxed);
        site.counters.bytes_out.fetch_add(b, Ordering::Relaxed);
    }
    backend.active.fetch_sub(1, Ordering::Relaxed);
}
