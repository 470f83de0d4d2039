//! Who is asking: a session cookie (the console), `Authorization: Bearer TOKEN` (scripts), or,
//! on `/metrics` only, HTTP basic auth with a web user's name and password; the extractors that
//! the handlers take ([`Principal`] to read, [`Admin`] to change: an admin, and from a session
//! with its CSRF token); and the login, logout and session calls.

use std::{net::SocketAddr, time::Instant};

use axum::{
    Json,
    body::Bytes,
    extract::{ConnectInfo, FromRequestParts, State as AxState},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use super::{
    State,
    api::{ApiError, ApiResult, body, now_ms},
    audit, session,
    users::{self, Role},
};

/// How a request was authenticated.
#[derive(Clone, Debug)]
pub enum Via {
    /// A console session, with its CSRF token and cookie id.
    Session {
        id: String,
        csrf: String,
    },
    Token {
        id: String,
    },
}

/// Who is asking.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user: String,
    pub role: Role,
    pub via: Via,
    pub from: std::net::IpAddr,
}

impl Principal {
    pub fn via_name(&self) -> String {
        match &self.via {
            Via::Session { .. } => "session".to_owned(),
            Via::Token { id } => format!("token:{id}"),
        }
    }
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn peer(parts: &Parts) -> std::net::IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// A session or a token (no basic auth: that is for `/metrics`).
pub fn authenticate(state: &State, parts: &Parts) -> Option<Principal> {
    let from = peer(parts);
    if let Some(t) = bearer(&parts.headers) {
        let t = state.tokens.check(t)?;
        return Some(Principal {
            user: t.name,
            role: t.role,
            via: Via::Token { id: t.id },
            from,
        });
    }
    let id = cookie(&parts.headers, session::COOKIE)?;
    let s = state.sessions.touch(&id, Instant::now())?;
    Some(Principal {
        user: s.user,
        role: s.role,
        via: Via::Session { id, csrf: s.csrf },
        from,
    })
}

impl FromRequestParts<State> for Principal {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, ApiError> {
        authenticate(state, parts).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "log in first (POST /api/v1/login) or give Authorization: Bearer TOKEN",
            )
        })
    }
}

/// An admin allowed to change: from a session, with its CSRF token.
pub struct Admin(pub Principal);

impl FromRequestParts<State> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, ApiError> {
        let p = Principal::from_request_parts(parts, state).await?;
        check_csrf(&p, &parts.headers)?;
        if p.role != Role::Admin {
            state.audit.record(&audit::Entry {
                time_unix_ms: now_ms(),
                user: &p.user,
                via: &p.via_name(),
                from: p.from,
                action: &format!("{} {}", parts.method, parts.uri.path()),
                target: "",
                result: "refused: not an admin",
            });
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("{} is a viewer: only an admin may change this", p.user),
            ));
        }
        Ok(Admin(p))
    }
}

/// A change from a session must carry the session's CSRF token.
fn check_csrf(p: &Principal, headers: &HeaderMap) -> Result<(), ApiError> {
    if let Via::Session { csrf, .. } = &p.via {
        let sent = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            sent.as_bytes(),
            csrf.as_bytes(),
        )) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "missing or wrong X-CSRF-Token (GET /api/v1/session gives it)",
            ));
        }
    }
    Ok(())
}

// ---- login ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

pub async fn login(
    AxState(state): AxState<State>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let b: LoginBody = body(&bytes)?;
    let from = peer.ip();
    if let Some(wait) = state.limiter.check(from, Instant::now()) {
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many failed logins from {from}: try again in {} s",
                wait.as_secs().max(1)
            ),
        )
        .into_response();
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return Ok(r);
    }
    // The file is read at every login, so a user added with --add-web-user can log in at once.
    let users = match &state.users_file {
        Some(f) => users::load(f).map_err(|e| {
            tracing::error!("web: {e:#}");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the users file cannot be read",
            )
        })?,
        None => Default::default(),
    };
    let user = users.get(&b.username).cloned();
    let password = b.password;
    // argon2 is slow on purpose: off the async threads. An unknown user costs the same.
    let ok = tokio::task::spawn_blocking(move || match user {
        Some(u) => users::verify_password(&u.hash, &password).then_some(u.role),
        None => {
            let _ = users::verify_password(dummy_hash(), &password);
            None
        }
    })
    .await
    .ok()
    .flatten();
    let Some(role) = ok else {
        state.limiter.failed(from, Instant::now());
        tracing::warn!("web: failed login for {:?} from {from}", b.username);
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong user name or password",
        ));
    };
    let (id, s) = state.sessions.create(&b.username, role, Instant::now());
    tracing::info!(
        "web: {} ({}) logged in from {from}",
        b.username,
        role.name()
    );
    let cookie = format!(
        "{}={id}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
        session::COOKIE,
        state.sessions.idle().as_secs().max(1)
    );
    let mut r = Json(json!({
        "user": s.user,
        "role": s.role,
        "csrf_token": s.csrf,
        "idle_expiry_seconds": state.sessions.idle().as_secs(),
    }))
    .into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("ascii"),
    );
    Ok(r)
}

/// A hash to verify against when the user does not exist, so that the answer takes as long as
/// for a wrong password (made once, with the same parameters as the users').
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| users::hash_password("no such user").expect("hashing"))
}

pub async fn logout(
    AxState(state): AxState<State>,
    p: Principal,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_csrf(&p, &headers)?;
    if let Via::Session { id, .. } = &p.via {
        state.sessions.remove(id);
    }
    let mut r = Json(json!({ "logged_out": p.user })).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
            session::COOKIE
        ))
        .expect("ascii"),
    );
    Ok(r)
}

pub async fn session_info(p: Principal) -> ApiResult {
    let csrf = match &p.via {
        Via::Session { csrf, .. } => Some(csrf.clone()),
        _ => None,
    };
    Ok(Json(
        json!({ "user": p.user, "role": p.role, "via": p.via_name(), "csrf_token": csrf }),
    ))
}

/// A web user's name and password by HTTP basic auth.
pub async fn basic_user(state: &State, headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(v.strip_prefix("Basic ")?.trim())
        .ok()?;
    let (name, password) = std::str::from_utf8(&raw).ok()?.split_once(':')?;
    let users = users::load(state.users_file.as_ref()?).ok()?;
    let hash = users.get(name)?.hash.clone();
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || users::verify_password(&hash, &password))
        .await
        .ok()?
        .then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_bearer_tokens_are_found() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; rvs_session=abc"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, session::COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "b").as_deref(), Some("2"));
        assert_eq!(cookie(&h, "rvs"), None);
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer rvs_x "),
        );
        assert_eq!(bearer(&h), Some("rvs_x"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic Ym9iOng="),
        );
        assert_eq!(bearer(&h), None);
    }
}
