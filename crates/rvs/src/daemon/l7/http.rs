//! One client connection in `mode http`: each request head is read within `head_timeout`,
//! judged ([`head::parse_request`]), routed by its own head (keep-alive connections may reach
//! several pools), sent to a real server over a reused or new connection, and the response
//! relayed back. A request refused before routing gets rvsd's own answer and the connection
//! closes; a request no server can take gets the sorry server, or 503.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::{io::AsyncWriteExt, net::TcpStream, time::Instant};
use tracing::debug;

use super::{
    body::{Buffered, RelayError, send},
    head::{self, BodyLen, RequestHead},
    pool::{self, Backend, Pool},
    proxy_v2,
    site::{Request, Site},
};
use crate::keepalived::l7::{ForwardFor, Persistence};

/// A real server that does not accept within this is skipped for the request.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Response heads are bounded like request heads, more generously.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// 1xx answers taken before the final one.
const MAX_INTERIM: usize = 8;

/// What became of one request.
enum Outcome {
    /// Answered; the connection may carry another request.
    KeepAlive,
    Close,
}

/// The connections of one client connection to real servers that only it may use (PROXY
/// protocol pools: the header names this client for the connection's whole life).
type Private = HashMap<SocketAddr, (Buffered, std::time::Instant)>;

pub async fn serve(site: Arc<Site>, stream: TcpStream, client: SocketAddr, local: SocketAddr) {
    let c = &site.counters;
    c.connections.fetch_add(1, Ordering::Relaxed);
    c.active_connections.fetch_add(1, Ordering::Relaxed);
    let mut conn = Buffered::new(stream);
    let mut private = Private::new();
    let mut first = true;
    loop {
        let head = match read_head(&site, &mut conn, first).await {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(status) => {
                c.refuse(status);
                let _ = send(
                    &mut conn.io,
                    &head::own_response(status, false, ""),
                    site.config.head_timeout,
                )
                .await;
                break;
            }
        };
        first = false;
        c.requests.fetch_add(1, Ordering::Relaxed);
        match request(&site, &mut conn, &mut private, head, client, local).await {
            Outcome::KeepAlive => {}
            Outcome::Close => break,
        }
    }
    let _ = conn.io.shutdown().await;
    c.active_connections.fetch_sub(1, Ordering::Relaxed);
}

/// The next request head. `Ok(None)`: the client closed (or went idle) between requests.
/// `Err(status)`: refused.
async fn read_head(
    site: &Site,
    conn: &mut Buffered,
    first: bool,
) -> Result<Option<RequestHead>, u16> {
    let cfg = &site.config;
    // Between requests the idle timeout runs; once a byte of a head is in, the head timeout.
    let mut deadline =
        (first || !conn.data().is_empty()).then(|| Instant::now() + cfg.head_timeout);
    loop {
        if !conn.data().is_empty() {
            match head::parse_request(conn.data(), cfg.max_head) {
                Ok(Some(h)) => {
                    conn.consume(h.len);
                    return Ok(Some(h));
                }
                Ok(None) => {}
                Err(r) => {
                    debug!("L7 {}: refused a request: {}", cfg.name(), r.reason);
                    return Err(r.status);
                }
            }
        }
        let until = deadline.unwrap_or_else(|| Instant::now() + cfg.idle_timeout);
        match tokio::time::timeout_at(until, conn.fill()).await {
            Err(_) if conn.data().is_empty() && deadline.is_none() => return Ok(None),
            Err(_) if conn.data().is_empty() && !first => return Ok(None),
            Err(_) => return Err(408),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(None),
            Ok(Ok(_)) => {
                deadline.get_or_insert_with(|| Instant::now() + cfg.head_timeout);
            }
        }
    }
}

/// Routes one request, forwards it and relays the answer.
async fn request(
    site: &Site,
    conn: &mut Buffered,
    private: &mut Private,
    mut head: RequestHead,
    client: SocketAddr,
    local: SocketAddr,
) -> Outcome {
    let field = |n: &str| {
        head.field(n)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let cookie = |n: &str| head.cookie(n);
    let route = site.route(&Request {
        host: &head.host,
        path: head.path(),
        field: &field,
        cookie: &cookie,
    });
    let Some(pool) = route.map(|i| &site.pools[i]) else {
        site.counters.unrouted.fetch_add(1, Ordering::Relaxed);
        return own(
            conn,
            &head,
            404,
            "no rule matches",
            site.config.idle_timeout,
        )
        .await;
    };
    pool.requests.fetch_add(1, Ordering::Relaxed);
    let persisted = match &pool.config.persistence {
        Some(Persistence::Cookie(name)) => head.cookie(name),
        _ => None,
    };
    let (backend, set_cookie) = match pool.choose(client, persisted.as_deref()) {
        Some(c) => (&pool.servers[c.backend], c.set_cookie),
        None => match &pool.sorry {
            Some(s) => {
                pool.to_sorry.fetch_add(1, Ordering::Relaxed);
                (s, None)
            }
            None => {
                pool.unavailable.fetch_add(1, Ordering::Relaxed);
                return own(
                    conn,
                    &head,
                    503,
                    "no real server is available",
                    site.config.idle_timeout,
                )
                .await;
            }
        },
    };
    // rvsd answers `Expect: 100-continue` itself, so the body is on its way before the real
    // server is asked.
    // (An HTTP/1.0 client gets no 1xx: RFC 9110 §15.2.)
    let expects = head
        .field("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
    if expects {
        head.fields
            .retain(|(n, _)| !n.eq_ignore_ascii_case("expect"));
        if head.minor == 1
            && send(
                &mut conn.io,
                b"HTTP/1.1 100 Continue\r\n\r\n",
                site.config.idle_timeout,
            )
            .await
            .is_err()
        {
            return Outcome::Close;
        }
    }
    forward(
        site, pool, backend, conn, private, &head, set_cookie, client, local,
    )
    .await
}

/// rvsd's own answer; the connection stays only if the request had no body to skip.
async fn own(
    conn: &mut Buffered,
    head: &RequestHead,
    status: u16,
    why: &str,
    limit: Duration,
) -> Outcome {
    let keep = head.keep_alive && head.body == BodyLen::None;
    let sent = send(&mut conn.io, &head::own_response(status, keep, why), limit).await;
    if sent.is_err() || !keep {
        return Outcome::Close;
    }
    Outcome::KeepAlive
}

/// The real server failed the request: counted against it, and the client answered `status`.
async fn server_failed(
    conn: &mut Buffered,
    head: &RequestHead,
    backend: &Backend,
    status: u16,
    why: &str,
    limit: Duration,
) -> Outcome {
    backend.failures.fetch_add(1, Ordering::Relaxed);
    own(conn, head, status, why, limit).await
}

/// Counts a request in flight on a server for as long as it lives.
struct InFlight<'a>(&'a Backend);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    site: &Site,
    pool: &Pool,
    backend: &Backend,
    conn: &mut Buffered,
    private: &mut Private,
    head: &RequestHead,
    set_cookie: Option<String>,
    client: SocketAddr,
    local: SocketAddr,
) -> Outcome {
    backend.active.fetch_add(1, Ordering::Relaxed);
    backend.requests.fetch_add(1, Ordering::Relaxed);
    let _in_flight = InFlight(backend);
    let cfg = &site.config;
    let proxy = pool.config.forward_for == ForwardFor::ProxyV2;
    let xff = (pool.config.forward_for == ForwardFor::XForwardedFor).then_some(client.ip());
    // A reused connection the server closed meanwhile is retried once on a new one, when the
    // request can be sent again.
    let mut retried = false;
    let (mut up, response) = loop {
        // Probed before use (bytes a server sent after its response, or its close, would
        // otherwise reach the next client's request).
        let reused = if proxy {
            private
                .remove(&backend.addr)
                .filter(|(u, since)| since.elapsed() < pool::IDLE_REUSE && pool::still_open(&u.io))
                .map(|(u, _)| u)
        } else {
            backend.take_idle().map(Buffered::new)
        };
        let was_reused = reused.is_some();
        let mut up = match reused {
            Some(u) => u,
            None => match connect(backend, proxy.then(|| proxy_v2::header(client, local))).await {
                Some(u) => u,
                None => {
                    return server_failed(
                        conn,
                        head,
                        backend,
                        502,
                        "the real server does not answer",
                        cfg.idle_timeout,
                    )
                    .await;
                }
            },
        };
        let sent = match conn
            .send_with_head(
                &mut up.io,
                head.for_upstream(xff),
                head.body,
                cfg.idle_timeout,
            )
            .await
        {
            Ok(n) => n,
            // A replayable request has no body, so nothing was taken: it can go again.
            Err(_) if was_reused && head.replayable() && !retried => {
                retried = true;
                continue;
            }
            Err(_) => {
                return server_failed(
                    conn,
                    head,
                    backend,
                    502,
                    "the real server closed the connection",
                    cfg.idle_timeout,
                )
                .await;
            }
        };
        match conn
            .relay_body(&mut up.io, head.body, sent, cfg.idle_timeout)
            .await
        {
            Ok(n) => {
                site.counters.bytes_in.fetch_add(n, Ordering::Relaxed);
            }
            Err(RelayError::Malformed(why)) => {
                debug!("L7 {}: request body: {why}", cfg.name());
                site.counters.refuse(400);
                let _ = send(
                    &mut conn.io,
                    &head::own_response(400, false, why),
                    cfg.idle_timeout,
                )
                .await;
                return Outcome::Close;
            }
            Err(RelayError::To(_)) => {
                return server_failed(
                    conn,
                    head,
                    backend,
                    502,
                    "the real server closed the connection",
                    cfg.idle_timeout,
                )
                .await;
            }
            Err(RelayError::From(_) | RelayError::Idle) => return Outcome::Close,
        }
        match read_response(&mut up, &head.method, head.minor, cfg.idle_timeout, conn).await {
            Ok(r) => break (up, r),
            Err(ResponseError::Closed) if was_reused && head.replayable() && !retried => {
                retried = true;
                continue;
            }
            Err(e) => {
                // A client that went away is no failure of the server's.
                let (status, why) = match e {
                    ResponseError::Timeout => (504, "the real server did not answer in time"),
                    ResponseError::Malformed(w) => (502, w),
                    ResponseError::Closed => (502, "the real server closed the connection"),
                    ResponseError::Client => return Outcome::Close,
                };
                return server_failed(conn, head, backend, status, why, cfg.idle_timeout).await;
            }
        }
    };
    if response.status == 101 {
        if !head.upgrade {
            let why = "101 to a request that asked for no upgrade";
            return server_failed(conn, head, backend, 502, why, cfg.idle_timeout).await;
        }
        return upgrade(site, conn, up, &response, cfg.idle_timeout).await;
    }
    // An HTTP/1.0 client cannot read chunks: it gets the data, and the close ends it.
    let dechunk = head.minor == 0 && response.body == BodyLen::Chunked;
    let keep = head.keep_alive && response.body != BodyLen::UntilClose && !dechunk;
    let extra: Vec<String> = set_cookie.into_iter().collect();
    let out_head = response.for_client(keep, &extra, dechunk);
    let relayed = if dechunk {
        match send(&mut conn.io, &out_head, cfg.idle_timeout).await {
            Ok(()) => up.relay_dechunked(&mut conn.io, cfg.idle_timeout).await,
            Err(e) => Err(e),
        }
    } else {
        match up
            .send_with_head(&mut conn.io, out_head, response.body, cfg.idle_timeout)
            .await
        {
            Ok(sent) => {
                up.relay_body(&mut conn.io, response.body, sent, cfg.idle_timeout)
                    .await
            }
            Err(e) => Err(e),
        }
    };
    match relayed {
        Ok(n) => {
            site.counters.bytes_out.fetch_add(n, Ordering::Relaxed);
        }
        Err(_) => return Outcome::Close,
    }
    if response.keep_alive && up.data().is_empty() {
        if proxy {
            private.insert(backend.addr, (up, std::time::Instant::now()));
        } else {
            backend.put_idle(up.io);
        }
    }
    if keep {
        Outcome::KeepAlive
    } else {
        Outcome::Close
    }
}

/// A new connection to `backend`, its PROXY header sent first if there is one.
pub(super) async fn connect(backend: &Backend, proxy_header: Option<Vec<u8>>) -> Option<Buffered> {
    let s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(backend.addr))
        .await
        .ok()?
        .ok()?;
    let _ = s.set_nodelay(true);
    let mut b = Buffered::new(s);
    if let Some(h) = proxy_header {
        send(&mut b.io, &h, CONNECT_TIMEOUT).await.ok()?;
    }
    Some(b)
}

enum ResponseError {
    /// Closed before a byte of the response came.
    Closed,
    Timeout,
    Malformed(&'static str),
    /// The client went away while an interim response was relayed.
    Client,
}

/// The final response head; interim (1xx) ones are relayed to the client on the way.
async fn read_response(
    up: &mut Buffered,
    method: &str,
    minor: u8,
    limit: Duration,
    conn: &mut Buffered,
) -> Result<head::ResponseHead, ResponseError> {
    // Interim answers are bounded in number, and all of them with the final head in time.
    let deadline = tokio::time::Instant::now() + limit;
    let mut interim = 0;
    loop {
        if !up.data().is_empty() {
            match head::parse_response(up.data(), method, MAX_RESPONSE_HEAD) {
                Ok(Some(r)) => {
                    up.consume(r.len);
                    if r.interim() {
                        interim += 1;
                        if interim > MAX_INTERIM {
                            return Err(ResponseError::Malformed("too many 1xx responses"));
                        }
                        if minor == 1 {
                            send(&mut conn.io, &r.for_client(true, &[], false), limit)
                                .await
                                .map_err(|_| ResponseError::Client)?;
                        }
                        continue;
                    }
                    return Ok(r);
                }
                Ok(None) => {}
                Err(why) => return Err(ResponseError::Malformed(why)),
            }
        }
        match tokio::time::timeout_at(deadline, up.fill()).await {
            Err(_) => return Err(ResponseError::Timeout),
            Ok(Ok(0)) | Ok(Err(_)) if up.data().is_empty() => return Err(ResponseError::Closed),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Err(ResponseError::Malformed("response head cut short"));
            }
            Ok(Ok(_)) => {}
        }
    }
}

/// 101 Switching Protocols: the head goes to the client, then bytes flow both ways untouched.
async fn upgrade(
    site: &Site,
    conn: &mut Buffered,
    mut up: Buffered,
    response: &head::ResponseHead,
    limit: Duration,
) -> Outcome {
    let mut to_client = response.for_client(true, &[], false);
    to_client.extend_from_slice(up.data());
    let pending = conn.data().to_vec();
    if send(&mut conn.io, &to_client, limit).await.is_err()
        || send(&mut up.io, &pending, limit).await.is_err()
    {
        return Outcome::Close;
    }
    if let Ok((a, b)) = tokio::io::copy_bidirectional(&mut conn.io, &mut up.io).await {
        site.counters.bytes_in.fetch_add(a, Ordering::Relaxed);
        site.counters.bytes_out.fetch_add(b, Ordering::Relaxed);
    }
    Outcome::Close
}
