//! The director's task: the one owner of the model and the map writer. Every change (rvsadm's
//! requests, the keepalived checkers' verdicts, expiry's releases, next hops found) reaches it as
//! a message and is applied in order; after each one the new [`DirectorView`] is published.
//!
//! Nothing slow happens here: a request that names a new real server has its next hop resolved
//! by the sender, in the sender's task, before it is queued; readers answer from the published
//! view and the maps without queueing at all. So a VRRP advert, a sync message or `rvsadm -L`
//! never waits behind a slow change.

use std::{collections::BTreeSet, net::IpAddr, sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot, watch};

use super::{
    director::Director,
    expiry::Sweep,
    view::{self, DirectorView},
};
use crate::{
    control::proto::{Request, Response},
    dataplane::{MapsRead, Neighbours, NextHop},
};

/// How long a request naming a new real server waits for its MAC address to resolve.
pub const RESOLVE_WAIT: Duration = Duration::from_millis(1500);
/// Room for messages waiting for the director.
const INBOX: usize = 256;

type Job = Box<dyn FnOnce(&mut Director) + Send>;

/// A message to the director.
enum Command {
    Request {
        req: Request,
        hops: Vec<(IpAddr, Option<NextHop>)>,
        reply: oneshot::Sender<Response>,
    },
    /// Several changes applied back to back, with nothing in between (a checker's swap of real
    /// servers for the sorry server is seen as one).
    Job {
        hops: Vec<(IpAddr, Option<NextHop>)>,
        job: Job,
    },
    Estimate,
    ExpiryDone {
        sweep: Sweep,
        trash_at_start: BTreeSet<u32>,
    },
    NextHops(Vec<(IpAddr, Option<NextHop>)>),
}

/// What the other tasks hold of the director: a way to send it changes, its latest view, and
/// their own handle on the maps for reading.
#[derive(Clone)]
pub struct DirectorHandle {
    inbox: mpsc::Sender<Command>,
    view: watch::Receiver<DirectorView>,
    maps: Arc<dyn MapsRead>,
    neigh: Option<Neighbours>,
}

/// The director gone (rvsd stopping): changes are refused.
fn stopped() -> Response {
    Response::Error {
        errno: libc::ESHUTDOWN,
        detail: "rvs: rvsd is stopping".to_owned(),
    }
}

impl DirectorHandle {
    /// Follows the view: changed after every change of the director.
    pub fn subscribe(&self) -> watch::Receiver<DirectorView> {
        self.view.clone()
    }

    /// The director as of its last change.
    pub fn view(&self) -> DirectorView {
        self.view.borrow().clone()
    }

    /// Answers `req`: a read from the view and the maps, a change through the director.
    pub async fn request(&self, req: Request) -> Response {
        if let Some(r) = self.read(&req).await {
            return r;
        }
        let hops = self.resolve(new_servers(&req)).await;
        let (reply, answer) = oneshot::channel();
        if self
            .inbox
            .send(Command::Request { req, hops, reply })
            .await
            .is_err()
        {
            return stopped();
        }
        answer.await.unwrap_or_else(|_| stopped())
    }

    /// A read answered off the runtime's threads (a walk of the connection table can take a
    /// while), or None for a change.
    async fn read(&self, req: &Request) -> Option<Response> {
        if !is_read(req) {
            return None;
        }
        let (view, maps, req) = (self.view(), self.maps.clone(), req.clone());
        let answer =
            tokio::task::spawn_blocking(move || view::answer_read(&view, &*maps, &req)).await;
        Some(answer.ok().flatten().unwrap_or_else(stopped))
    }

    /// Runs `f` on the director, after resolving the next hops of the real servers in
    /// `servers`, with no other change in between; None if the director is gone.
    pub async fn with<R: Send + 'static>(
        &self,
        servers: Vec<IpAddr>,
        f: impl FnOnce(&mut Director) -> R + Send + 'static,
    ) -> Option<R> {
        let hops = self.resolve(servers).await;
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |d| {
            let _ = tx.send(f(d));
        });
        self.inbox.send(Command::Job { hops, job }).await.ok()?;
        rx.await.ok()
    }

    /// Resolves the next hops of `addrs` at once, each waiting up to [`RESOLVE_WAIT`].
    pub async fn resolve(&self, mut addrs: Vec<IpAddr>) -> Vec<(IpAddr, Option<NextHop>)> {
        addrs.sort();
        addrs.dedup();
        let Some(neigh) = &self.neigh else {
            return Vec::new();
        };
        let lookups = addrs.into_iter().map(|a| async move {
            match neigh.resolve(a, RESOLVE_WAIT).await {
                Ok(hop) => (a, hop),
                Err(e) => {
                    tracing::warn!("real server {a}: {e:#}");
                    (a, None)
                }
            }
        });
        futures::future::join_all(lookups).await
    }

    /// One estimator tick.
    pub async fn estimate(&self) {
        let _ = self.inbox.send(Command::Estimate).await;
    }

    /// A connection-expiry walk finished.
    pub async fn expiry_done(&self, sweep: Sweep, trash_at_start: BTreeSet<u32>) {
        let _ = self
            .inbox
            .send(Command::ExpiryDone {
                sweep,
                trash_at_start,
            })
            .await;
    }

    /// Next hops found by the refresh.
    pub async fn next_hops(&self, found: Vec<(IpAddr, Option<NextHop>)>) {
        let _ = self.inbox.send(Command::NextHops(found)).await;
    }
}

/// Requests that only read.
fn is_read(req: &Request) -> bool {
    matches!(
        req,
        Request::Info
            | Request::ListServices { .. }
            | Request::ListConns
            | Request::Counters
            | Request::GetTimeouts
            | Request::ListMarkRules
            | Request::Vrrp
            | Request::Bgp
            | Request::SyncStatus
            | Request::Cluster
            | Request::Drain { .. }
    )
}

/// The real servers a request may add, whose next hops it needs.
fn new_servers(req: &Request) -> Vec<IpAddr> {
    match req {
        Request::AddDest { dest, .. } => vec![dest.addr],
        _ => Vec::new(),
    }
}

/// Starts the director's task; `maps` is a second handle on the same maps, for the readers, and
/// `neigh` resolves next hops for senders (None: never resolved, as in tests).
pub fn spawn(
    director: Director,
    maps: Arc<dyn MapsRead>,
    neigh: Option<Neighbours>,
) -> (DirectorHandle, tokio::task::JoinHandle<()>) {
    let (inbox, rx) = mpsc::channel(INBOX);
    let (view_tx, view) = watch::channel(director.view());
    let task = tokio::spawn(run(director, rx, view_tx));
    (
        DirectorHandle {
            inbox,
            view,
            maps,
            neigh,
        },
        task,
    )
}

/// Applies messages in order until every sender is gone.
async fn run(
    mut director: Director,
    mut inbox: mpsc::Receiver<Command>,
    view: watch::Sender<DirectorView>,
) {
    while let Some(cmd) = inbox.recv().await {
        let reply = match cmd {
            Command::Request { req, hops, reply } => {
                director.learn_next_hops(hops);
                Some((reply, director.handle(req)))
            }
            Command::Job { hops, job } => {
                director.learn_next_hops(hops);
                job(&mut director);
                None
            }
            Command::Estimate => {
                director.estimate();
                None
            }
            Command::ExpiryDone {
                sweep,
                trash_at_start,
            } => {
                director.expiry_done(&sweep, &trash_at_start);
                None
            }
            Command::NextHops(found) => {
                director.next_hops(found);
                None
            }
        };
        // Published before the answer, so a client reads its own change.
        view.send_replace(director.view());
        if let Some((tx, r)) = reply {
            let _ = tx.send(r);
        }
    }
}
