//! The monitor: rvsd's HTTPS console, JSON API and Prometheus metrics, one task of its own
//! (`web` in the supervisor). It never holds up the director: reads are answered as rvsadm's
//! are (the published view and the maps, through [`DirectorHandle::request`]'s read path), and
//! changes are the same [`Request`](crate::control::proto::Request)s rvsadm sends, so
//! `rvsadm -L -n` shows them at once and a refusal carries the same errno and message.
//!
//! - [`tls`]: the certificate (or a self-signed one made once) and the plain-HTTP refusal;
//! - [`users`]: web users (argon2id hashes) and API tokens (stored hashed);
//! - [`session`]: login sessions, CSRF tokens, the login rate limit;
//! - [`auth`]: who is asking (session, token, basic auth), CSRF, login and logout;
//! - [`api`]: `/api/v1/...`, its reads and changes;
//! - [`metrics`]: `/metrics`, node_exporter's IPVS names and rvs's own;
//! - [`console`]: the one-page console, its assets embedded, and its live feed (SSE);
//! - [`audit`]: every change, as a JSON line;
//! - [`ids`]: how paths name services and real servers.

pub mod api;
pub mod audit;
pub mod auth;
pub mod console;
pub mod ids;
pub mod metrics;
pub mod session;
pub mod tls;
pub mod users;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use super::DirectorHandle;

/// How long a connection may take to say its first byte and finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; beyond it new ones wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 512;

/// `rvsd --web ...`.
#[derive(Clone, Debug)]
pub struct WebOptions {
    pub listen: SocketAddr,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// The users file (`--web-users`); None: nobody can log in (tokens cannot be made either).
    pub users: Option<PathBuf>,
    /// Where the self-signed certificate, the tokens and the audit log are kept.
    pub state_dir: PathBuf,
    /// A session ends after this long without a request.
    pub session_idle: Duration,
}

/// `[ADDR]:PORT`: `8443`, `:8443`, `198.18.0.1:8443`, `[2001:db8::1]:8443` (no address: all
/// of them, IPv4 and IPv6).
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    use std::net::{IpAddr, Ipv6Addr};
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    match s.strip_prefix(':').unwrap_or(s).parse::<u16>() {
        Ok(p) if p != 0 => Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), p)),
        _ => Err(format!(
            "{s:?}: expected [ADDR]:PORT, such as :8443 or 198.18.0.1:8443"
        )),
    }
}

/// What the console shows of the director beyond the view.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DirectorInfo {
    pub interfaces: Vec<String>,
    pub xdp_mode: String,
    pub rvs_version: String,
    pub certificate_sha256: String,
}

/// Everything the handlers share.
pub struct Web {
    pub director: DirectorHandle,
    pub users_file: Option<PathBuf>,
    pub sessions: session::Sessions,
    pub limiter: session::LoginLimiter,
    pub tokens: users::Tokens,
    pub audit: audit::Audit,
    pub info: DirectorInfo,
    pub started: Instant,
}

pub type State = Arc<Web>;

/// A bound, ready monitor.
pub struct Monitor {
    listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    state: State,
}

impl Monitor {
    /// Loads (or makes) the certificate, opens the token store and binds: everything that can
    /// fail does so here, before rvsd says it is up.
    pub async fn bind(
        opts: WebOptions,
        director: DirectorHandle,
        interfaces: Vec<String>,
        xdp_mode: String,
    ) -> Result<Monitor> {
        let id = tls::identity(
            opts.cert.as_deref(),
            opts.key.as_deref(),
            &opts.state_dir,
            opts.listen,
        )?;
        info!(
            "web: certificate {} SHA-256 fingerprint {}",
            id.cert_file.display(),
            id.fingerprint
        );
        if let Some(f) = &opts.users {
            let n = users::load(f)?.len();
            info!("web: {n} users in {}", f.display());
        } else {
            warn!("web: no --web-users file: nobody can log in");
        }
        let tokens = users::Tokens::open(opts.state_dir.join("web-tokens.json"))?;
        let listener = TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("web: binding {}", opts.listen))?;
        let state = Arc::new(Web {
            director,
            users_file: opts.users.clone(),
            sessions: session::Sessions::new(opts.session_idle),
            limiter: session::LoginLimiter::default(),
            tokens,
            audit: audit::Audit::new(opts.state_dir.join("web-audit.log")),
            info: DirectorInfo {
                interfaces,
                xdp_mode,
                rvs_version: crate::VERSION.to_owned(),
                certificate_sha256: id.fingerprint,
            },
            started: Instant::now(),
        });
        info!("web: serving https://{}/", opts.listen);
        Ok(Monitor {
            listener,
            tls: tokio_rustls::TlsAcceptor::from(id.config),
            state,
        })
    }

    /// Serves until the task is dropped.
    pub async fn serve(self) {
        let app = api::router(self.state.clone());
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let permit = slots.clone().acquire_owned().await.expect("never closed");
            let (stream, peer) = match self.listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    warn!("web: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (tls, app) = (self.tls.clone(), app.clone());
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = connection(stream, peer, tls, app).await {
                    debug!("web: {peer}: {e:#}");
                }
            });
        }
    }
}

async fn connection(
    mut stream: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: tokio_rustls::TlsAcceptor,
    app: axum::Router,
) -> Result<()> {
    let _ = stream.set_nodelay(true);
    // Listening on [::], IPv4 clients come as ::ffff:a.b.c.d: logged and limited as a.b.c.d.
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        if !tls::is_tls(&mut stream).await {
            anyhow::bail!("not TLS: refused");
        }
        Ok(tls.accept(stream).await?)
    })
    .await
    .context("handshake timed out")??;
    let svc = app.map_request(
        move |mut req: axum::extract::Request<hyper::body::Incoming>| {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            req
        },
    );
    let svc = hyper_util::service::TowerToHyperService::new(svc);
    hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(stream), svc)
        .await
        .context("serving")
}
