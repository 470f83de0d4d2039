//! `/api/v1/...` and the routes of the whole monitor (who may ask is [`super::auth`]'s). A
//! viewer reads everything; changes need an admin. Bodies are JSON with no unknown fields, at
//! most [`BODY_LIMIT`] bytes; a change that is refused changes nothing, and every change (done
//! or refused) goes to the audit log.

use std::{net::SocketAddr, time::Instant};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State as AxState},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

pub use super::auth::{Admin, Principal, Via, authenticate};
use super::{
    State, audit,
    auth::{basic_user, bearer, login, logout, session_info},
    ids::{dest_key, parse_dest, parse_service, service_key},
    metrics,
    users::{self, Role},
};
use crate::{
    control::proto::{self, DestView, Request, ServiceView},
    model::{DestAddr, DestConfig, FwdMethod, ServiceId},
};

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 16 * 1024;
/// The highest weight (IPVS takes 0 to 65535 from ipvsadm).
pub const MAX_WEIGHT: i64 = 65535;
/// Page size when none is asked for, and the largest one.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

pub fn router(state: State) -> Router {
    Router::new()
        .route("/", get(super::console::index))
        .route("/login", get(super::console::login_page))
        .route("/assets/{file}", get(super::console::asset))
        .route("/metrics", get(metrics_handler))
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/session", get(session_info))
        .route("/api/v1/director", get(director))
        .route("/api/v1/dataplane", get(dataplane))
        .route("/api/v1/services", get(services))
        .route("/api/v1/services/{svc}", get(service))
        .route(
            "/api/v1/services/{svc}/servers",
            get(servers).post(add_server),
        )
        .route(
            "/api/v1/services/{svc}/servers/{rs}",
            get(server)
                .put(set_server)
                .patch(set_server)
                .delete(remove_server),
        )
        .route("/api/v1/connections", get(connections))
        .route("/api/v1/health", get(health))
        .route("/api/v1/vrrp", get(vrrp))
        .route("/api/v1/sync", get(sync))
        .route("/api/v1/bgp", get(bgp))
        .route("/api/v1/l7", get(l7))
        .route("/api/v1/cluster", get(cluster))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{id}", delete(revoke_token))
        .route("/api/v1/events", get(super::console::events))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(json_only))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}

/// A request with a body must say it is JSON: a cross-site HTML form cannot, so a login or a
/// change cannot be forged from another site's page even before the CSRF token is checked.
async fn json_only(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v != "0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if has_body && !json {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as Content-Type: application/json",
        )
        .into_response();
    }
    next.run(req).await
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such page or API call")
}

/// An error answer: `{"error": "...", "errno": N}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub errno: Option<i32>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            errno: None,
        }
    }
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    /// The director's refusal, with rvsadm's errno and message.
    fn director(errno: i32, detail: String) -> ApiError {
        let status = match errno {
            libc::ESRCH | libc::ENOENT => StatusCode::NOT_FOUND,
            libc::EEXIST => StatusCode::CONFLICT,
            libc::EINVAL | libc::ERANGE => StatusCode::BAD_REQUEST,
            libc::ESHUTDOWN => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError {
            status,
            message: detail,
            errno: Some(errno),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(e) = self.errno {
            body["errno"] = json!(e);
        }
        let mut r = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rvsd\""),
            );
        }
        r
    }
}

pub type ApiResult<T = Json<Value>> = Result<T, ApiError>;

/// Parses a JSON body strictly: malformed JSON, wrong types and unknown fields are 400s.
pub fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad(format!("bad request body: {e}")))
}

pub fn now_ms() -> u64 {
    crate::daemon::vrrp::status::unix_ms_now()
}

// ---- reads ----

/// Asks the director as rvsadm does.
async fn ask(state: &State, req: Request) -> Result<proto::Response, ApiError> {
    match state.director.request(req).await {
        proto::Response::Error { errno, detail } => Err(ApiError::director(errno, detail)),
        r => Ok(r),
    }
}

pub async fn list_services(
    state: &State,
    only: Option<ServiceId>,
) -> Result<Vec<ServiceView>, ApiError> {
    match ask(state, Request::ListServices { service: only }).await? {
        proto::Response::Services { services } => Ok(services),
        other => Err(unexpected(other)),
    }
}

pub async fn counters(state: &State) -> Result<Vec<(String, u64)>, ApiError> {
    match ask(state, Request::Counters).await? {
        proto::Response::Counters { counters } => Ok(counters),
        other => Err(unexpected(other)),
    }
}

fn unexpected(r: proto::Response) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("unexpected answer from the director: {r:?}"),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    #[serde(default)]
    pub offset: usize,
    pub limit: Option<usize>,
}

impl Page {
    fn range(&self, total: usize) -> Result<std::ops::Range<usize>, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::bad(format!("limit must be 1 to {MAX_LIMIT}")));
        }
        let start = self.offset.min(total);
        Ok(start..(start + limit).min(total))
    }
}

pub fn server_json(d: &DestView, health: Option<&crate::daemon::health::ServerHealth>) -> Value {
    json!({
        "id": dest_key(&d.dest),
        "address": d.dest.addr,
        "port": d.dest.port,
        "forward": d.config.fwd,
        "forward_name": d.config.fwd.name(),
        "weight": d.config.weight,
        "u_threshold": d.config.u_threshold,
        "l_threshold": d.config.l_threshold,
        "tun_type": d.config.tun_type,
        "tun_port": d.config.tun_port,
        "tun_csum": d.config.tun_csum,
        "active_conns": d.active_conns,
        "inactive_conns": d.inactive_conns,
        "persist_conns": d.persist_conns,
        "stats": d.stats,
        "rate": d.rate,
        "health": health,
    })
}

/// A service; its real servers (those in `page`) when given.
pub fn service_json(
    s: &ServiceView,
    page: Option<std::ops::Range<usize>>,
    health: &Option<Vec<crate::daemon::health::ServerHealth>>,
) -> Value {
    let mut v = json!({
        "id": service_key(&s.service),
        "name": s.service.to_string(),
        "service": s.service,
        "scheduler": s.config.scheduler,
        "persistent": s.config.persistent(),
        "persistence_timeout": s.config.timeout,
        "stats": s.stats,
        "rate": s.rate,
        "servers_total": s.dests.len(),
        "active_conns": s.dests.iter().map(|d| d.active_conns as u64).sum::<u64>(),
        "inactive_conns": s.dests.iter().map(|d| d.inactive_conns as u64).sum::<u64>(),
    });
    if let Some(r) = page {
        let h = |d: &DestView| {
            health
                .iter()
                .flatten()
                .find(|h| h.service == s.service && h.dest == d.dest)
        };
        v["servers_offset"] = json!(r.start);
        v["servers"] = Value::Array(s.dests[r].iter().map(|d| server_json(d, h(d))).collect());
    }
    v
}

async fn services(AxState(state): AxState<State>, _p: Principal) -> ApiResult {
    let health = crate::daemon::health::current();
    let list = list_services(&state, None).await?;
    Ok(Json(json!({
        "services": list.iter().map(|s| service_json(s, Some(0..s.dests.len()), &health)).collect::<Vec<_>>()
    })))
}

fn path_service(s: &str) -> Result<ServiceId, ApiError> {
    parse_service(s).map_err(ApiError::bad)
}

fn path_dest(s: &str) -> Result<DestAddr, ApiError> {
    parse_dest(s).map_err(ApiError::bad)
}

async fn one_service(state: &State, svc: &str) -> Result<ServiceView, ApiError> {
    let id = path_service(svc)?;
    list_services(state, Some(id))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("service {id} does not exist"),
            )
        })
}

async fn service(
    AxState(state): AxState<State>,
    _p: Principal,
    Path(svc): Path<String>,
) -> ApiResult {
    let s = one_service(&state, &svc).await?;
    let health = crate::daemon::health::current();
    Ok(Json(service_json(&s, Some(0..s.dests.len()), &health)))
}

async fn servers(
    AxState(state): AxState<State>,
    _p: Principal,
    Path(svc): Path<String>,
    Query(page): Query<Page>,
) -> ApiResult {
    let s = one_service(&state, &svc).await?;
    let r = page.range(s.dests.len())?;
    let health = crate::daemon::health::current();
    let v = service_json(&s, Some(r), &health);
    Ok(Json(json!({
        "total": s.dests.len(),
        "offset": v["servers_offset"],
        "servers": v["servers"],
    })))
}

async fn server(
    AxState(state): AxState<State>,
    _p: Principal,
    Path((svc, rs)): Path<(String, String)>,
) -> ApiResult {
    let s = one_service(&state, &svc).await?;
    let dest = path_dest(&rs)?;
    let d = find_dest(&s, &dest)?;
    let health = crate::daemon::health::current();
    let h = health
        .iter()
        .flatten()
        .find(|h| h.service == s.service && h.dest == dest);
    Ok(Json(server_json(d, h)))
}

fn find_dest<'a>(s: &'a ServiceView, dest: &DestAddr) -> Result<&'a DestView, ApiError> {
    s.dests.iter().find(|d| d.dest == *dest).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("real server {dest} is not in service {}", s.service),
        )
    })
}

async fn connections(
    AxState(state): AxState<State>,
    _p: Principal,
    Query(page): Query<Page>,
) -> ApiResult {
    let mut conns = match ask(&state, Request::ListConns).await? {
        proto::Response::Conns { conns } => conns,
        other => return Err(unexpected(other)),
    };
    // A stable order, so pages do not overlap while the table stands still.
    conns.sort_by(|a, b| {
        (a.virtual_addr, a.virtual_port, a.client, a.client_port).cmp(&(
            b.virtual_addr,
            b.virtual_port,
            b.client,
            b.client_port,
        ))
    });
    let r = page.range(conns.len())?;
    Ok(Json(json!({
        "total": conns.len(),
        "offset": r.start,
        "connections": &conns[r],
    })))
}

/// The data plane's counters and the connection table's fill (flows counted by real server,
/// from `services`).
pub async fn dataplane_json(state: &State, services: &[ServiceView]) -> Result<Value, ApiError> {
    let counters = counters(state).await?;
    let flows: u64 = services
        .iter()
        .flat_map(|s| &s.dests)
        .map(|d| (d.active_conns + d.inactive_conns + d.persist_conns) as u64)
        .sum();
    let size = state.director.view().conn_table_size;
    Ok(json!({
        "counters": counters
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect::<serde_json::Map<_, _>>(),
        "conn_table_size": size,
        "conn_table_flows": flows,
    }))
}

async fn dataplane(AxState(state): AxState<State>, _p: Principal) -> ApiResult {
    let services = list_services(&state, None).await?;
    Ok(Json(dataplane_json(&state, &services).await?))
}

pub fn director_json(state: &State) -> Value {
    json!({
        "interfaces": state.info.interfaces,
        "xdp_mode": state.info.xdp_mode,
        "rvs_version": state.info.rvs_version,
        "certificate_sha256": state.info.certificate_sha256,
        "uptime_seconds": state.started.elapsed().as_secs(),
        "services": state.director.view().model.services.len(),
    })
}

async fn director(AxState(state): AxState<State>, _p: Principal) -> ApiResult {
    Ok(Json(director_json(&state)))
}

async fn health(_p: Principal) -> ApiResult {
    Ok(Json(match crate::daemon::health::current() {
        Some(servers) => json!({ "checkers": true, "servers": servers }),
        None => json!({
            "checkers": false,
            "servers": [],
            "note": "no health checkers run: rvsd was started without keepalived.conf (-f)",
        }),
    }))
}

async fn vrrp(_p: Principal) -> ApiResult {
    Ok(Json(json!(crate::daemon::vrrp::status::current())))
}

/// The L7 servers' rules, pools, real servers and counters; `null` when no L7 task runs.
async fn l7(_p: Principal) -> ApiResult {
    Ok(Json(json!(crate::daemon::l7::status::current())))
}

/// The BGP speaker's sessions and prefixes; `null` when no rvs_bgp block runs.
async fn bgp(_p: Principal) -> ApiResult {
    Ok(Json(json!(crate::daemon::bgp::status::current())))
}

async fn sync(_p: Principal) -> ApiResult {
    Ok(Json(json!(crate::daemon::sync::status::current())))
}

/// Cluster balancing: loads, decisions per peer, forwarded share, drops; `null` without
/// `rvs_cluster`.
async fn cluster(_p: Principal) -> ApiResult {
    Ok(Json(json!(crate::daemon::cluster::status::current())))
}

// ---- changes ----

fn audit(
    state: &State,
    p: &Principal,
    action: &str,
    target: &str,
    result: &Result<Value, ApiError>,
) {
    let r = match result {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("refused: {}", e.message),
    };
    state.audit.record(&audit::Entry {
        time_unix_ms: now_ms(),
        user: &p.user,
        via: &p.via_name(),
        from: p.from,
        action,
        target,
        result: &r,
    });
    tracing::info!("web: {} ({}) {action} {target}: {r}", p.user, p.via_name());
}

async fn change(state: &State, req: Request) -> Result<(), ApiError> {
    match state.director.request(req).await {
        proto::Response::Ok => Ok(()),
        proto::Response::Error { errno, detail } => Err(ApiError::director(errno, detail)),
        other => Err(unexpected(other)),
    }
}

fn check_weight(w: i64) -> Result<i32, ApiError> {
    if !(0..=MAX_WEIGHT).contains(&w) {
        return Err(ApiError::bad(format!(
            "weight {w} is out of range: use 0 (drain) to {MAX_WEIGHT}"
        )));
    }
    Ok(w as i32)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetServer {
    weight: i64,
}

async fn set_server(
    AxState(state): AxState<State>,
    Admin(p): Admin,
    Path((svc, rs)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult {
    let target = format!("{svc} {rs}");
    let r = async {
        let b: SetServer = body(&bytes)?;
        let weight = check_weight(b.weight)?;
        let s = one_service(&state, &svc).await?;
        let dest = path_dest(&rs)?;
        let d = find_dest(&s, &dest)?;
        let config = DestConfig {
            weight,
            ..d.config.clone()
        };
        change(
            &state,
            Request::EditDest {
                service: s.service,
                dest,
                config,
            },
        )
        .await?;
        let s = one_service(&state, &svc).await?;
        Ok(server_json(find_dest(&s, &dest)?, None))
    }
    .await;
    let action = match bytes_weight(&bytes) {
        Some(w) => format!("set weight {w}"),
        None => "set weight".to_owned(),
    };
    audit(&state, &p, &action, &target, &r);
    r.map(Json)
}

fn bytes_weight(b: &Bytes) -> Option<i64> {
    serde_json::from_slice::<Value>(b)
        .ok()?
        .get("weight")?
        .as_i64()
}

async fn remove_server(
    AxState(state): AxState<State>,
    Admin(p): Admin,
    Path((svc, rs)): Path<(String, String)>,
) -> ApiResult {
    let target = format!("{svc} {rs}");
    let r = async {
        let s = one_service(&state, &svc).await?;
        let dest = path_dest(&rs)?;
        let removed = server_json(find_dest(&s, &dest)?, None);
        change(
            &state,
            Request::DeleteDest {
                service: s.service,
                dest,
            },
        )
        .await?;
        Ok(json!({ "removed": removed }))
    }
    .await;
    audit(&state, &p, "remove real server", &target, &r);
    r.map(Json)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddServer {
    /// `ADDR:PORT` or `ADDR`.
    server: String,
    #[serde(default = "one")]
    weight: i64,
    #[serde(default)]
    forward: Option<FwdMethod>,
    #[serde(default)]
    u_threshold: u32,
    #[serde(default)]
    l_threshold: u32,
    #[serde(default)]
    tun_type: Option<crate::model::TunType>,
    #[serde(default)]
    tun_port: u16,
    #[serde(default)]
    tun_csum: Option<crate::model::TunCsum>,
}

fn one() -> i64 {
    1
}

async fn add_server(
    AxState(state): AxState<State>,
    Admin(p): Admin,
    Path(svc): Path<String>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut target = svc.clone();
    let r = async {
        let b: AddServer = body(&bytes)?;
        let dest = path_dest(&b.server)?;
        target = format!("{svc} {}", dest_key(&dest));
        let weight = check_weight(b.weight)?;
        let service = path_service(&svc)?;
        let d = DestConfig::default();
        let config = DestConfig {
            fwd: b.forward.unwrap_or(d.fwd),
            weight,
            u_threshold: b.u_threshold,
            l_threshold: b.l_threshold,
            tun_type: b.tun_type.unwrap_or(d.tun_type),
            tun_port: b.tun_port,
            tun_csum: b.tun_csum.unwrap_or(d.tun_csum),
        };
        change(
            &state,
            Request::AddDest {
                service,
                dest,
                config,
            },
        )
        .await?;
        let s = one_service(&state, &svc).await?;
        Ok(server_json(find_dest(&s, &dest)?, None))
    }
    .await;
    audit(&state, &p, "add real server", &target, &r);
    r.map(|v| (StatusCode::CREATED, Json(v)))
}

// ---- tokens ----

#[derive(Serialize)]
struct TokenView<'a> {
    id: &'a str,
    name: &'a str,
    role: Role,
    created_by: &'a str,
    created_unix_ms: u64,
}

async fn list_tokens(AxState(state): AxState<State>, p: Principal) -> ApiResult {
    if p.role != Role::Admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "only an admin may list tokens",
        ));
    }
    let tokens = state.tokens.list();
    Ok(Json(json!({
        "tokens": tokens.iter().map(|t| TokenView {
            id: &t.id, name: &t.name, role: t.role, created_by: &t.created_by, created_unix_ms: t.created_unix_ms,
        }).collect::<Vec<_>>()
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    #[serde(default)]
    role: Option<Role>,
}

async fn create_token(
    AxState(state): AxState<State>,
    Admin(p): Admin,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut target = String::new();
    let r = async {
        let b: NewToken = body(&bytes)?;
        if !users::valid_name(&b.name) {
            return Err(ApiError::bad(
                "token name: use 1 to 64 letters, digits, '.', '_' or '-'",
            ));
        }
        target = b.name.clone();
        let role = b.role.unwrap_or(Role::Viewer);
        let (t, secret) = state
            .tokens
            .create(&b.name, role, &p.user, now_ms())
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
        Ok(json!({ "id": t.id, "name": t.name, "role": t.role, "token": secret }))
    }
    .await;
    let logged = r
        .as_ref()
        .map(|v| json!({ "id": v["id"] }))
        .map_err(|e| ApiError::new(e.status, e.message.clone()));
    audit(&state, &p, "create token", &target, &logged);
    r.map(|v| (StatusCode::CREATED, Json(v)))
}

async fn revoke_token(
    AxState(state): AxState<State>,
    Admin(p): Admin,
    Path(id): Path<String>,
) -> ApiResult {
    let r = match state.tokens.revoke(&id) {
        Ok(Some(t)) => Ok(json!({ "revoked": t.id, "name": t.name })),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no token {id}"),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{e:#}"),
        )),
    };
    audit(&state, &p, "revoke token", &id, &r);
    r.map(Json)
}

// ---- metrics ----

async fn metrics_handler(
    AxState(state): AxState<State>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let authorized = bearer(&headers).is_some_and(|t| state.tokens.check(t).is_some()) || {
        let from = peer.ip();
        if state.limiter.check(from, Instant::now()).is_some() {
            false
        } else if basic_user(&state, &headers).await.is_some() {
            true
        } else {
            if headers.contains_key(header::AUTHORIZATION) {
                state.limiter.failed(from, Instant::now());
            }
            false
        }
    };
    if !authorized {
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "give a web user's name and password (basic auth) or a token (Bearer)",
        )
        .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"rvsd metrics\""),
        );
        return r;
    }
    match metrics_snapshot(&state).await {
        Ok(snap) => {
            let om = metrics::render(&snap);
            let wants_om = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("application/openmetrics-text"));
            if wants_om {
                ([(header::CONTENT_TYPE, metrics::OPENMETRICS)], om).into_response()
            } else {
                (
                    [(header::CONTENT_TYPE, metrics::PROMETHEUS_TEXT)],
                    metrics::to_prometheus_text(&om),
                )
                    .into_response()
            }
        }
        Err(e) => e.into_response(),
    }
}

async fn metrics_snapshot(state: &State) -> Result<metrics::Snapshot, ApiError> {
    Ok(metrics::Snapshot {
        services: list_services(state, None).await?,
        counters: counters(state).await?,
        conn_table_size: state.director.view().conn_table_size,
        vrrp: crate::daemon::vrrp::status::current(),
        sync: crate::daemon::sync::status::current(),
        bgp: crate::daemon::bgp::status::current(),
        l7: crate::daemon::l7::status::current(),
        cluster: crate::daemon::cluster::status::current(),
        health: crate::daemon::health::current(),
    })
}
