//! The console's cameras (docs/console.md, "Cameras"): `GET /console/api/cameras` (every camera's
//! health, regions, references and occupancy), `GET /console/api/cameras/{id}/frame.jpg` (the latest
//! frame, peeked at, never taken from analysis), `PUT /console/api/cameras/{id}` (regions, face window,
//! name, URL: validated as a whole configuration, written, applied live) and `POST
//! /console/api/cameras/{id}/reference` (the view's references from the running camera).
//!
//! What a camera is and how a change is applied is the runtime's ([`ConsoleCameras`], implemented by
//! `runtime::console_cameras`); here are the routes, their roles, the bodies and the audit rows.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::console::{ConsoleApi, Installer, Require, SignedIn};
use super::error::{ApiError, ErrorCode};
use crate::console::Audit;

/// A camera as the console shows it (the list's objects, and a PUT's answer).
#[derive(Debug, Clone, Serialize)]
pub struct CameraView {
    pub id: String,
    pub name: Option<String>,
    pub role: &'static str,
    /// Without credentials.
    pub url: String,
    pub online: bool,
    /// Frames decoded per second over the last minute (or since the start, when younger).
    pub fps: f64,
    pub frames_decoded: u64,
    pub frames_dropped: u64,
    pub restarts: u64,
    /// When the camera's stream was last (re)started by the agent (its start, or a URL change), RFC 3339;
    /// null when it does not run.
    pub stream_started_at: Option<String>,
    /// `ok`, or the tamper conditions that hold (`covered`, `frozen`, `moved`), comma-separated.
    pub tamper: String,
    /// Whether only keyframes are decoded now: always (`decode = "keyframes"`), or for the moment (an
    /// on-demand camera with no watch open).
    pub keyframes_only: bool,
    /// Of the latest frame; 0 before the first.
    pub width: u32,
    pub height: u32,
    pub regions: BTreeMap<String, Vec<Vec<f64>>>,
    pub face_window: Option<Vec<Vec<f64>>>,
    pub references: References,
    /// Each region's state now: `occupied`, `empty` or `unknown` (ward and dialysis-room cameras).
    pub occupancy: BTreeMap<String, &'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct References {
    pub view: Option<Taken>,
    /// The empty reference by day (colour), and by night (infrared; none on a camera without IR).
    pub empty: Option<Taken>,
    pub empty_night: Option<Taken>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Taken {
    /// RFC 3339, UTC.
    pub taken_at: String,
}

/// A PUT's body: the camera's fields the console edits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraUpdate {
    pub name: Option<String>,
    pub url: Option<String>,
    pub regions: BTreeMap<String, Vec<Vec<f64>>>,
    /// Absent: unchanged; `null`: removed.
    #[serde(default, deserialize_with = "present")]
    pub face_window: Option<Option<Vec<Vec<f64>>>>,
}

/// A field given as `null` is `Some(None)`, told apart from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<Vec<Vec<f64>>>>, D::Error> {
    Option::<Vec<Vec<f64>>>::deserialize(d).map(Some)
}

/// What an accepted change did.
#[derive(Debug, Clone)]
pub struct Updated {
    pub camera: CameraView,
    /// `live`, or `camera_restarted` (the URL changed).
    pub applied: &'static str,
    /// For the audit row: region names added, changed, removed, and whether the URL changed.
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub url_changed: bool,
}

/// Which reference to take: the view (tamper detection), or the empty view (also the regions').
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceKind {
    View,
    Empty,
}

/// What the console's camera routes read and change, provided by the runtime.
pub trait ConsoleCameras: Send + Sync + 'static {
    /// Every camera, in the configuration's order.
    fn list(&self) -> Vec<CameraView>;
    /// The camera's latest frame as JPEG (quality 80, at most 1280 wide).
    fn frame_jpeg(&self, id: &str) -> Result<Vec<u8>, CameraError>;
    /// Validates and applies a change (blocks until the agent applied it or refused it).
    fn update(&self, id: &str, update: CameraUpdate) -> Result<Updated, CameraError>;
    /// Takes a reference from the running camera's next frame (blocks up to 10 s).
    fn take_reference(&self, id: &str, kind: ReferenceKind, uniform_ok: bool) -> Result<CameraView, CameraError>;
}

/// Why a camera request is refused.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    #[error("no camera {0:?} on this box")]
    NotFound(String),
    #[error("camera {0:?} has not delivered a frame yet")]
    NoFrame(String),
    /// Every problem, each naming its field.
    #[error("the configuration would not be valid: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// Another change of the configuration is under way.
    #[error("{0}")]
    Busy(String),
    #[error(
        "camera {0:?} shows a uniform picture (covered?); if the view really is a bare wall or counter, confirm with uniform_ok"
    )]
    Uniform(String),
    #[error("camera {0:?} delivered no frame within 10 s (offline?)")]
    Offline(String),
    #[error("{0}")]
    Internal(String),
}

impl CameraError {
    fn status(&self) -> StatusCode {
        match self {
            CameraError::NotFound(_) | CameraError::NoFrame(_) => StatusCode::NOT_FOUND,
            CameraError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            CameraError::Busy(_) | CameraError::Uniform(_) => StatusCode::CONFLICT,
            CameraError::Offline(_) => StatusCode::SERVICE_UNAVAILABLE,
            CameraError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            CameraError::NotFound(_) => "not_found",
            CameraError::NoFrame(_) => "no_frame",
            CameraError::Invalid(_) => "invalid_config",
            CameraError::Busy(_) => "busy",
            CameraError::Uniform(_) => "uniform_view",
            CameraError::Offline(_) => "camera_offline",
            CameraError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for CameraError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code(), "message": self.to_string()});
        let mut body = json!({});
        if let CameraError::Invalid(problems) = &self {
            error["problems"] = json!(problems);
            // Also at the top, where the page reads the list.
            body["problems"] = json!(problems);
        }
        body["error"] = error;
        let mut response = no_store((self.status(), Json(body)).into_response());
        response.extensions_mut().insert(ErrorCode(self.code()));
        response
    }
}

/// The camera routes (the console's state is given by `console::router`). Without cameras from the
/// runtime they answer 404.
pub fn routes() -> Router<ConsoleApi> {
    Router::new()
        .route("/console/api/cameras", get(list))
        .route("/console/api/cameras/{id}/frame.jpg", get(frame))
        .route("/console/api/cameras/{id}", axum::routing::put(update))
        .route("/console/api/cameras/{id}/reference", post(reference))
}

fn cameras(api: &ConsoleApi) -> Result<Arc<dyn ConsoleCameras>, ApiError> {
    api.cameras.clone().ok_or_else(|| ApiError::NotFound("the console's cameras".into()))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::Internal(format!("a worker failed: {e}")))
}

/// `GET /console/api/cameras` (any signed-in user).
async fn list(State(api): State<ConsoleApi>, _: SignedIn) -> Result<Response, ApiError> {
    let cameras = cameras(&api)?;
    let list = blocking(move || cameras.list()).await?;
    Ok(no_store(Json(json!({ "cameras": list })).into_response()))
}

/// `GET /console/api/cameras/{id}/frame.jpg` (any signed-in user).
async fn frame(State(api): State<ConsoleApi>, _: SignedIn, Path(id): Path<String>) -> Result<Response, Response> {
    let cameras = cameras(&api).map_err(IntoResponse::into_response)?;
    let jpeg = blocking(move || cameras.frame_jpeg(&id))
        .await
        .map_err(IntoResponse::into_response)?
        .map_err(IntoResponse::into_response)?;
    let mut response = ([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `PUT /console/api/cameras/{id}` (installers).
async fn update(
    State(api): State<ConsoleApi>,
    installer: Require<Installer>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, Response> {
    let who = installer.0;
    let cameras = cameras(&api).map_err(IntoResponse::into_response)?;
    let request: CameraUpdate = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be JSON {{\"regions\": {{name: [[x, y], ...]}}, \"name\"?, \"url\"?, \"face_window\"?}}: {e}"
        ))
        .into_response()
    })?;
    let camera = id.clone();
    let result = blocking(move || cameras.update(&camera, request)).await.map_err(IntoResponse::into_response)?;
    let (outcome, details) = match &result {
        Ok(u) => (
            "ok",
            json!({"camera": id, "applied": u.applied, "regions_added": u.added, "regions_changed": u.changed,
                "regions_removed": u.removed, "url_changed": u.url_changed}),
        ),
        Err(e) => ("refused", json!({"camera": id, "code": e.code()})),
    };
    audit(&api, &who, "camera_update", outcome, details).await.map_err(IntoResponse::into_response)?;
    match result {
        Ok(updated) => {
            tracing::info!(user = %who.session.user, camera = %id, applied = updated.applied, "camera changed from the console");
            let mut body = serde_json::to_value(&updated.camera).unwrap_or(Value::Null);
            body["applied"] = json!(updated.applied);
            Ok(no_store(Json(body).into_response()))
        }
        Err(e) => {
            tracing::warn!(user = %who.session.user, camera = %id, code = e.code(), error = %e, "camera change refused");
            Err(e.into_response())
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReferenceRequest {
    kind: ReferenceKind,
    #[serde(default)]
    uniform_ok: bool,
}

/// `POST /console/api/cameras/{id}/reference {"kind": "empty"|"view", "uniform_ok"}` (installers).
async fn reference(
    State(api): State<ConsoleApi>,
    installer: Require<Installer>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, Response> {
    let who = installer.0;
    let cameras = cameras(&api).map_err(IntoResponse::into_response)?;
    let request: ReferenceRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be JSON {{\"kind\": \"empty\"|\"view\", \"uniform_ok\": bool}}: {e}"
        ))
        .into_response()
    })?;
    let camera = id.clone();
    let (kind, uniform_ok) = (request.kind, request.uniform_ok);
    let result = blocking(move || cameras.take_reference(&camera, kind, uniform_ok))
        .await
        .map_err(IntoResponse::into_response)?;
    let outcome = match &result {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.code().to_owned(),
    };
    let details = json!({"camera": id, "kind": kind, "uniform_ok": uniform_ok});
    audit(&api, &who, "reference_take", &outcome, details).await.map_err(IntoResponse::into_response)?;
    match result {
        Ok(camera) => {
            tracing::info!(user = %who.session.user, camera = %id, kind = ?kind, "reference taken from the console");
            Ok(no_store(Json(camera).into_response()))
        }
        Err(e) => {
            tracing::warn!(user = %who.session.user, camera = %id, code = e.code(), error = %e, "reference not taken");
            Err(e.into_response())
        }
    }
}

async fn audit(api: &ConsoleApi, who: &SignedIn, action: &str, outcome: &str, details: Value) -> Result<(), ApiError> {
    let store = api.store.clone();
    let (user, role, address) = (who.session.user.clone(), who.session.role, who.address.clone());
    let (action, outcome) = (action.to_owned(), outcome.to_owned());
    blocking(move || {
        let entry =
            Audit { who: &user, role: Some(role), action: &action, address: &address, outcome: &outcome, details };
        store.audit(entry, SystemTime::now())
    })
    .await?
    .map(|_| ())
    .map_err(|e| {
        tracing::error!(error = %e, "the console store cannot be used");
        ApiError::Internal("the console store cannot be used".into())
    })
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `face_window` left out, `null` and a polygon are three different requests.
    #[test]
    fn face_window_absent_null_and_given_differ() {
        let parse = |s: &str| serde_json::from_str::<CameraUpdate>(s).unwrap().face_window;
        assert_eq!(parse(r#"{"regions":{}}"#), None);
        assert_eq!(parse(r#"{"regions":{},"face_window":null}"#), Some(None));
        assert_eq!(parse(r#"{"regions":{},"face_window":[[0,0],[1,0],[1,1]]}"#).unwrap().unwrap().len(), 3);
        assert!(serde_json::from_str::<CameraUpdate>(r#"{"regions":{},"zoom":2}"#).is_err(), "unknown fields refused");
    }
}
