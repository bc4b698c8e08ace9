//! The console's sign-in over HTTP (docs/console.md): `POST /console/api/login`, `POST
//! /console/api/logout`, `GET /console/api/me`, and the audit log at `GET /console/api/audit`. What a
//! session, a password or a lock-out is lives in [`crate::console`]; here are the cookie, CSRF and
//! the role guard.
//!
//! The guard is the extractors: a handler that takes [`SignedIn`] cannot run without a live session,
//! and one that takes [`Require<R>`] without one of `R`'s roles. Both check, on every state-changing
//! method (anything but GET, HEAD, OPTIONS), the session's CSRF token in `X-CSRF-Token` (compared in
//! constant time) and, when the browser sends one, that `Origin` is this server. A later endpoint gets
//! all of it by naming the extractor in its arguments: it cannot forget the check.
//!
//! The session id travels only in the `__Host-vigil_session` cookie (Secure, HttpOnly,
//! SameSite=Strict, Path=/, no Domain); the page reads its CSRF token from `/me` or the login answer.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::listener::ClientAddr;
use crate::console::{Audit, ChangeError, LoginError, Policy, Role, Session, SessionEnd, Store, StoreError};

/// The session cookie's name; the `__Host-` prefix makes the browser refuse it unless it is Secure,
/// has Path=/ and no Domain (no sibling host can set or shadow it).
pub const COOKIE: &str = "__Host-vigil_session";

/// The header a state-changing request carries its session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A sign-in body is a name and a password: far below this.
const MAX_LOGIN_BYTES: usize = 4 << 10;

/// What the console routes share.
#[derive(Clone)]
pub struct ConsoleApi {
    pub store: Arc<Store>,
    pub policy: Policy,
    /// The evidence store, read and held through the runtime (events and evidence).
    pub events: Option<Arc<dyn super::console_events::Evidence>>,
    /// The roster, the gallery and the enrolment thread (`console_people`).
    pub people: Arc<dyn super::console_people::PeopleService>,
    /// The cameras (`console_cameras`), when the runtime provides them.
    pub cameras: Option<Arc<dyn super::console_cameras::ConsoleCameras>>,
}

/// The console's routes, with their state.
pub fn router(api: ConsoleApi) -> Router {
    Router::new()
        .route("/console/api/login", post(login))
        .route("/console/api/logout", post(logout))
        .route("/console/api/me", get(me))
        .route("/console/api/password", post(change_password))
        .route("/console/api/audit", get(audit_log))
        .merge(super::console_events::router())
        .merge(super::console_people::routes())
        .merge(super::console_cameras::routes())
        .with_state(api)
}

/// Runs a store call (SQLite, argon2) off the async threads.
pub(super) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::Internal(format!("a worker failed: {e}")))
}

pub(super) fn store_failed(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "the console store cannot be used");
    ApiError::Internal("the console store cannot be used".into())
}

fn address(parts: &Parts) -> String {
    parts.extensions.get::<ConnectInfo<ClientAddr>>().map_or_else(|| "-".to_owned(), |c| c.0.0.ip().to_string())
}

/// The session id of the request's cookie.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// Refuses a request whose `Origin` is another site (or `null`). No `Origin` is allowed: browsers send
/// one on every cross-origin request and on same-origin POSTs; a request without one is not a browser
/// tricked by another page, and still needs the CSRF token.
fn check_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let origin = origin.to_str().unwrap_or("null");
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let authority = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    match authority {
        Some(authority) if !host.is_empty() && authority.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(ApiError::Csrf(format!(
            "Origin {:?} is not this server ({host:?})",
            origin.chars().take(100).collect::<String>()
        ))),
    }
}

/// A live session: the request's cookie names one, not expired, whose user still exists; and, for a
/// state-changing method, the CSRF token and Origin check out.
pub struct SignedIn {
    pub session: Session,
    /// The cookie's id (for logout).
    id: String,
    /// The client's address, as the audit log names it.
    pub address: String,
}

impl FromRequestParts<ConsoleApi> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &ConsoleApi) -> Result<SignedIn, ApiError> {
        let address = address(parts);
        let Some(id) = cookie(&parts.headers) else {
            return Err(ApiError::Unauthorized("sign in first: this request has no console session".into()));
        };
        let (store, policy, key) = (api.store.clone(), api.policy, id.clone());
        let found = blocking(move || store.session(&key, &policy, SystemTime::now())).await?.map_err(store_failed)?;
        let session = found.map_err(|end| {
            ApiError::Unauthorized(
                match end {
                    SessionEnd::Unknown => "sign in again: this session is not known (signed out, or its user changed)",
                    SessionEnd::Idle => "sign in again: the session was unused for too long",
                    SessionEnd::MaxAge => "sign in again: the session reached its longest life",
                }
                .into(),
            )
        })?;
        if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            let sent = parts.headers.get(CSRF_HEADER).map(HeaderValue::as_bytes).unwrap_or_default();
            let refused = if let Err(ApiError::Csrf(reason)) = check_origin(&parts.headers) {
                Some(("origin", reason))
            } else if sent.is_empty() {
                Some(("csrf", format!("the {CSRF_HEADER} header is missing (the token of GET /console/api/me)")))
            } else if !bool::from(sent.ct_eq(session.csrf.as_bytes())) {
                Some(("csrf", format!("the {CSRF_HEADER} header is not this session's token")))
            } else {
                None
            };
            if let Some((check, reason)) = refused {
                tracing::warn!(client = %address, user = %session.user, path = %parts.uri.path(), reason = %reason,
                    "console request refused: possible cross-site request");
                refusal(api, &session, &address, parts, check).await?;
                return Err(ApiError::Csrf(reason));
            }
        }
        // A one-time password buys nothing but choosing one's own (and seeing who one is, signing out).
        if session.must_change && !ONE_TIME_PATHS.contains(&parts.uri.path()) {
            return Err(ApiError::PasswordChangeRequired);
        }
        Ok(SignedIn { session, id, address })
    }
}

/// What a session signed in with a one-time password may use.
const ONE_TIME_PATHS: &[&str] = &["/console/api/me", "/console/api/logout", "/console/api/password"];

/// Audits a signed-in request refused by the guard (`request`, outcome `refused`, the method, path and
/// which check refused it).
async fn refusal(
    api: &ConsoleApi,
    session: &Session,
    address: &str,
    parts: &Parts,
    check: &str,
) -> Result<(), ApiError> {
    let (store, who, role, address) = (api.store.clone(), session.user.clone(), session.role, address.to_owned());
    let details = json!({"method": parts.method.as_str(), "path": parts.uri.path(), "check": check});
    blocking(move || {
        let entry =
            Audit { who: &who, role: Some(role), action: "request", address: &address, outcome: "refused", details };
        store.audit(entry, SystemTime::now())
    })
    .await?
    .map_err(store_failed)?;
    Ok(())
}

/// A set of roles an endpoint is open to (see [`Require`]).
pub trait Allowed: Send + Sync + 'static {
    const ROLES: &'static [Role];
}

/// Installers only: what changes the box's setup.
pub struct Installer;
impl Allowed for Installer {
    const ROLES: &'static [Role] = &[Role::Installer];
}

/// Installers and supervisors: reviewing, legal holds, the audit log.
pub struct Reviewer;
impl Allowed for Reviewer {
    const ROLES: &'static [Role] = &[Role::Installer, Role::Supervisor];
}

/// A [`SignedIn`] session whose role is one of `R`'s; 403 otherwise.
pub struct Require<R: Allowed>(pub SignedIn, PhantomData<R>);

impl<R: Allowed> FromRequestParts<ConsoleApi> for Require<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &ConsoleApi) -> Result<Require<R>, ApiError> {
        let signed_in = SignedIn::from_request_parts(parts, api).await?;
        if !R::ROLES.contains(&signed_in.session.role) {
            let allowed: Vec<&str> = R::ROLES.iter().map(|r| r.as_str()).collect();
            tracing::warn!(client = %signed_in.address, user = %signed_in.session.user, role = %signed_in.session.role,
                path = %parts.uri.path(), "console request refused: role not allowed");
            refusal(api, &signed_in.session, &signed_in.address, parts, "role").await?;
            return Err(ApiError::Forbidden(format!(
                "a {} may not do this (only: {})",
                signed_in.session.role,
                allowed.join(", ")
            )));
        }
        Ok(Require(signed_in, PhantomData))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    name: String,
    password: String,
}

/// `POST /console/api/login {"name", "password"}` → the session cookie and `{name, role, csrf_token}`.
async fn login(State(api): State<ConsoleApi>, parts: Parts, body: axum::body::Bytes) -> Result<Response, ApiError> {
    check_origin(&parts.headers)?;
    if body.len() > MAX_LOGIN_BYTES {
        return Err(ApiError::TooLarge { limit: MAX_LOGIN_BYTES as u64 });
    }
    let request: LoginRequest = serde_json::from_slice(&body)
        .map_err(|_| ApiError::BadRequest("the body must be JSON {\"name\": ..., \"password\": ...}".into()))?;
    let address = address(&parts);
    let (store, policy, client) = (api.store.clone(), api.policy, address.clone());
    let name = request.name.clone();
    let result =
        blocking(move || store.login(&request.name, &request.password, &client, &policy, SystemTime::now())).await?;
    let new = match result {
        Ok(new) => new,
        Err(LoginError::BadCredentials) => {
            tracing::warn!(client = %address, user = %name.chars().take(64).collect::<String>(), "console sign-in refused");
            return Err(ApiError::BadCredentials);
        }
        Err(LoginError::Locked { retry_after }) => {
            tracing::warn!(client = %address, user = %name.chars().take(64).collect::<String>(),
                retry_after_secs = retry_after.as_secs(), "console sign-in refused: locked out");
            return Err(ApiError::Locked { retry_after });
        }
        Err(LoginError::Store(e)) => return Err(store_failed(e)),
    };
    tracing::info!(client = %address, user = %new.session.user, role = %new.session.role, "console sign-in");
    let cookie = format!(
        "{COOKIE}={}; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        new.id,
        api.policy.max_age.as_secs()
    );
    let mut response = no_store(Json(me_body(&new.session)).into_response());
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("ASCII cookie"));
    Ok(response)
}

/// `POST /console/api/logout` (CSRF token required): ends the session, clears the cookie; 204.
async fn logout(State(api): State<ConsoleApi>, signed_in: SignedIn) -> Result<Response, ApiError> {
    let store = api.store.clone();
    let SignedIn { session, id, address } = signed_in;
    let user = session.user.clone();
    blocking(move || store.logout(&id, &session, &address, SystemTime::now())).await?.map_err(store_failed)?;
    tracing::info!(user = %user, "console sign-out");
    let clear = format!("{COOKIE}=; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&clear).expect("ASCII cookie"));
    Ok(no_store(response))
}

fn me_body(session: &Session) -> serde_json::Value {
    json!({
        "name": session.user,
        "role": session.role,
        "csrf_token": session.csrf,
        "signed_in_at": humantime::format_rfc3339_millis(session.created_at).to_string(),
        "must_change_password": session.must_change,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordRequest {
    current: String,
    new: String,
}

/// `POST /console/api/password {"current", "new"}` (CSRF token required): the signed-in user's own new
/// password (at least 10 characters, not the current one). Ends their other sessions; 204. The only
/// endpoint besides `/me` and `/logout` a one-time password may use.
async fn change_password(
    State(api): State<ConsoleApi>,
    signed_in: SignedIn,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    if body.len() > MAX_LOGIN_BYTES {
        return Err(ApiError::TooLarge { limit: MAX_LOGIN_BYTES as u64 });
    }
    let request: PasswordRequest = serde_json::from_slice(&body)
        .map_err(|_| ApiError::BadRequest("the body must be JSON {\"current\": ..., \"new\": ...}".into()))?;
    let store = api.store.clone();
    let SignedIn { session, address, .. } = signed_in;
    let user = session.user.clone();
    let changed =
        blocking(move || store.change_password(&session, &request.current, &request.new, &address, SystemTime::now()))
            .await?;
    match changed {
        Ok(()) => {
            tracing::info!(user = %user, "console password changed by its user");
            Ok(no_store(StatusCode::NO_CONTENT.into_response()))
        }
        Err(ChangeError::WrongCurrent) => {
            tracing::warn!(user = %user, "console password change refused: wrong current password");
            Err(ApiError::WrongPassword)
        }
        Err(ChangeError::Store(StoreError::Password(e))) => Err(ApiError::BadRequest(e.to_string())),
        Err(ChangeError::Store(StoreError::Invalid(e))) => Err(ApiError::BadRequest(e)),
        Err(ChangeError::Store(e)) => Err(store_failed(e)),
    }
}

/// `GET /console/api/me` → `{name, role, csrf_token, signed_in_at}`.
async fn me(signed_in: SignedIn) -> Response {
    no_store(Json(me_body(&signed_in.session)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<u32>,
}

/// `GET /console/api/audit?limit=N` (installers and supervisors) → `{"entries": [...]}`, newest first
/// (N 1..1000, default 100).
async fn audit_log(
    State(api): State<ConsoleApi>,
    Require(_, _): Require<Reviewer>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(format!("the query: {e}")))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit must be 1..1000, got {limit}")));
    }
    let store = api.store.clone();
    let entries = blocking(move || store.audit_log(limit)).await?.map_err(store_failed)?;
    Ok(no_store(Json(json!({ "entries": entries })).into_response()))
}

/// Console answers name people and carry tokens: never cached.
pub(super) fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn the_cookie_is_found_among_others_and_only_by_its_exact_name() {
        let h = headers(&[("cookie", "a=1; __Host-vigil_session=abc; b=2")]);
        assert_eq!(cookie(&h).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers(&[("cookie", "vigil_session=abc")])), None);
        assert_eq!(cookie(&headers(&[("cookie", "x=1"), ("cookie", "__Host-vigil_session=d")])).as_deref(), Some("d"));
    }

    #[test]
    fn only_this_servers_origin_passes() {
        assert!(
            check_origin(&headers(&[("host", "10.0.0.5:8443")])).is_ok(),
            "no Origin: not a browser's cross-site request"
        );
        assert!(check_origin(&headers(&[("host", "10.0.0.5:8443"), ("origin", "https://10.0.0.5:8443")])).is_ok());
        for bad in ["https://evil.example", "null", "https://10.0.0.5:8444", "https://10.0.0.5:8443.evil.example"] {
            let e = check_origin(&headers(&[("host", "10.0.0.5:8443"), ("origin", bad)])).unwrap_err();
            assert_eq!(e.code(), "csrf", "{bad}");
        }
    }
}
