//! The console: one page and its script and style, embedded in rvsd (`include_str!`, nothing
//! fetched from elsewhere), and its live feed: every second, by server-sent events, the
//! director's counters, each service's totals and one page of the chosen service's real
//! servers (so a service of 1000 real servers costs the browser one page). The charts are drawn
//! by the page's own small canvas code (assets/app.js): a few lines do what is needed, where a
//! charting library would have to be vendored and kept up to date.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::{Path, Query, State as AxState},
    http::{StatusCode, header},
    response::{
        Html, IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::Stream;
use serde::Deserialize;
use serde_json::json;

use super::{
    State,
    api::{self, ApiError, Principal, Via},
    ids::parse_service,
};

const INDEX: &str = include_str!("assets/index.html");
const LOGIN: &str = include_str!("assets/login.html");
const APP_JS: &str = include_str!("assets/app.js");
const LOGIN_JS: &str = include_str!("assets/login.js");
const STYLE: &str = include_str!("assets/style.css");

/// How often the live feed sends.
const TICK: Duration = Duration::from_secs(1);

/// The console for a logged-in user, the login page for anyone else.
pub async fn index(AxState(state): AxState<State>, req: axum::extract::Request) -> Response {
    let (parts, _) = req.into_parts();
    match api::authenticate(&state, &parts) {
        Some(Principal {
            via: Via::Session { .. },
            ..
        }) => Html(INDEX).into_response(),
        _ => Html(LOGIN).into_response(),
    }
}

pub async fn login_page() -> Html<&'static str> {
    Html(LOGIN)
}

pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "login.js" => (LOGIN_JS, "text/javascript; charset=utf-8"),
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feed {
    /// The service whose real servers to send (`tcp:ADDR:PORT`, ...); none: the first.
    service: Option<String>,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

/// `/api/v1/events`: the live feed.
pub async fn events(
    AxState(state): AxState<State>,
    p: Principal,
    Query(feed): Query<Feed>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let chosen = match &feed.service {
        Some(s) => Some(parse_service(s).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?),
        None => None,
    };
    let limit = feed.limit.unwrap_or(50).clamp(1, 1000);
    let offset = feed.offset;
    let via = p.via.clone();
    let stream = futures::stream::unfold(
        (state, tokio::time::interval(TICK)),
        move |(state, mut tick)| {
            let via = via.clone();
            async move {
                tick.tick().await;
                // A feed ends with its session (logout, idle expiry) or its token (revoked).
                let alive = match &via {
                    Via::Session { id, .. } => state.sessions.alive(id, std::time::Instant::now()),
                    Via::Token { id } => state.tokens.list().iter().any(|t| &t.id == id),
                };
                if !alive {
                    return None;
                }
                let data = snapshot(&state, chosen, offset, limit).await;
                let ev = Event::default().data(data.to_string());
                Some((Ok(ev), (state, tick)))
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

async fn snapshot(
    state: &State,
    chosen: Option<crate::model::ServiceId>,
    offset: usize,
    limit: usize,
) -> serde_json::Value {
    let health = crate::daemon::health::current();
    let services = api::list_services(state, None).await.unwrap_or_default();
    let chosen = chosen.or_else(|| services.first().map(|s| s.service));
    let list: Vec<_> = services
        .iter()
        .map(|s| {
            let page = (Some(s.service) == chosen).then(|| {
                let start = offset.min(s.dests.len());
                start..(start + limit).min(s.dests.len())
            });
            api::service_json(s, page, &health)
        })
        .collect();
    let dataplane = api::dataplane_json(state, &services)
        .await
        .unwrap_or_default();
    json!({
        "time_unix_ms": api::now_ms(),
        "director": api::director_json(state),
        "dataplane": dataplane,
        "services": list,
        "chosen": chosen.map(|c| super::ids::service_key(&c)),
        "vrrp": crate::daemon::vrrp::status::current(),
        "sync": crate::daemon::sync::status::current(),
        "bgp": crate::daemon::bgp::status::current(),
        "l7": crate::daemon::l7::status::current(),
        "health_checkers": health.is_some(),
    })
}
