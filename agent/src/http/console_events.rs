//! The console's events and evidence (docs/console.md, "Events and evidence"): the list of evidence
//! bundles with filters and paging, the live stream of new bundles (server-sent events), one bundle's
//! manifest, boxes, holds and on-box verification, its files with HTTP ranges (so a `<video>` plays and
//! seeks), and legal hold on and off.
//!
//! What the store holds reaches this module through [`Evidence`], implemented by the runtime (which owns
//! the one store writer); here are the query's checks, the JSON, the ranges, the stream and the audit
//! rows. What a manifest says in one line ([`summarize`]) is here too: it is how the console words it.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::console::{ConsoleApi, Require, Reviewer, SignedIn};
use super::error::ApiError;
use crate::console::Audit;
use crate::evidence::verify::{is_safe_file_name, is_uuid};

/// One evidence bundle as the list (and the stream) shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventSummary {
    pub event_id: String,
    pub seq: u64,
    pub kind: String,
    pub camera: String,
    /// The event's time (RFC 3339 UTC).
    pub at: String,
    /// The decision's outcome where it has one ([`verdict_of`]).
    pub verdict: Option<&'static str>,
    /// One English line built from the manifest's decision facts.
    pub summary: String,
    /// Under legal hold now.
    pub held: bool,
    /// The files the manifest lists.
    pub files: Vec<String>,
}

/// What the list is asked for (each field checked by [`parse_filter`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub kind: Option<String>,
    pub camera: Option<String>,
    /// `Some(None)`: bundles without a verdict (`verdict=none`).
    pub verdict: Option<Option<&'static str>>,
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    /// Only bundles with a lower sequence (the previous page's `next_before`).
    pub before: Option<u64>,
    pub limit: usize,
}

impl Filter {
    /// Whether `event` (at `at`) passes every filter but `before` and `limit`.
    pub fn matches(&self, event: &EventSummary, at: SystemTime) -> bool {
        self.kind.as_ref().is_none_or(|k| *k == event.kind)
            && self.camera.as_ref().is_none_or(|c| *c == event.camera)
            && self.verdict.is_none_or(|v| v == event.verdict)
            && self.since.is_none_or(|s| at >= s)
            && self.until.is_none_or(|u| at <= u)
    }
}

/// A page of the list, newest first.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Page {
    pub events: Vec<EventSummary>,
    /// `before` for the next page; None when this page is the last.
    pub next_before: Option<u64>,
}

/// A box drawn on one of the bundle's pictures, normalised to its size (0..1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrawnBox {
    pub file: String,
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub label: String,
}

/// The bundle verified on the box when it was asked for.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub ok: bool,
    pub checked_at: String,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    /// Its place in the chain, in one line.
    pub chain: String,
}

/// A signed `hold` or `release` record naming the bundle.
#[derive(Debug, Clone, Serialize)]
pub struct Hold {
    pub on: bool,
    /// The record's `created`.
    pub at: String,
    pub reason: String,
    /// The console user who asked for it (from the audit log); None for `vigil hold`.
    pub by: Option<String>,
    /// The record's sequence in the chain.
    pub sequence: u64,
}

/// One bundle in full.
#[derive(Debug, Clone, Serialize)]
pub struct Detail {
    pub event: EventSummary,
    /// The manifest as stored.
    pub manifest: Value,
    pub boxes: Vec<DrawnBox>,
    pub verification: Verification,
    pub holds: Vec<Hold>,
}

/// What a hold request did.
#[derive(Debug, Clone)]
pub struct HoldChange {
    /// False: the bundle was already in that state (nothing signed).
    pub changed: bool,
    /// The record signed, when one was.
    pub record_sequence: Option<u64>,
    pub holds: Vec<Hold>,
}

/// New bundles as they are written, until the server stops.
pub struct Subscription {
    pub bundles: tokio::sync::broadcast::Receiver<EventSummary>,
    /// Becomes true when the agent stops (the stream ends, so the server's graceful stop is not held up).
    pub closed: tokio::sync::watch::Receiver<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("no evidence bundle for event {0}")]
    UnknownEvent(String),
    /// The name is not a file of the bundle, or the file is gone (pruned); the message says which.
    #[error("{0}")]
    NoFile(String),
    /// The store cannot be read or written now (a full disk, the clock behind the chain).
    #[error("{0}")]
    Store(String),
}

/// What the runtime provides: the evidence store, read and held through its one writer.
pub trait Evidence: Send + Sync + 'static {
    fn list(&self, filter: &Filter) -> Page;
    fn subscribe(&self) -> Subscription;
    /// The bundle of `event_id`, verified now (reads and hashes its files).
    fn detail(&self, event_id: &str) -> Result<Detail, ReviewError>;
    /// The path of a file the bundle's manifest lists.
    fn file(&self, event_id: &str, name: &str) -> Result<PathBuf, ReviewError>;
    /// Places (`on`) or lifts a legal hold: a signed record through the store's one writer.
    fn hold(&self, event_id: &str, on: bool, reason: &str) -> Result<HoldChange, ReviewError>;
}

/// The kinds of events that have evidence bundles (`settlement_verified` and
/// `dialysis_session_verified` have none today; listed so a filter on them is not an error).
pub const KINDS: [&str; 15] = [
    "camera_tamper",
    "settlement_verified",
    "settlement_identity_mismatch",
    "settlement_no_face",
    "identity_shared_across_ids",
    "settlement_spoof_suspected",
    "bed_absent",
    "bedside_check_verified",
    "bedside_check_rejected",
    "physician_checkin",
    "dialysis_patient_mismatch",
    "dialysis_session_verified",
    "dialysis_session_short",
    "dialysis_chair_empty",
    "dialysis_session_unverifiable",
];

/// Every verdict the list can show (and filter by; `none` filters bundles without one).
pub const VERDICTS: [&str; 9] = [
    "matched",
    "mismatch",
    "no_face",
    "shared_identity",
    "verified",
    "rejected",
    "short",
    "chair_empty",
    "unverifiable",
];

/// The outcome of a decision, from its kind (and, for a physician's check-in, its details).
pub fn verdict_of(kind: &str, details: &Value) -> Option<&'static str> {
    Some(match kind {
        "settlement_verified" => "matched",
        "settlement_identity_mismatch" | "dialysis_patient_mismatch" => "mismatch",
        "settlement_no_face" => "no_face",
        "identity_shared_across_ids" => "shared_identity",
        "bedside_check_verified" | "dialysis_session_verified" => "verified",
        "bedside_check_rejected" => "rejected",
        "physician_checkin" if details["verified"] == "true" => "verified",
        "physician_checkin" => "rejected",
        "dialysis_session_short" => "short",
        "dialysis_chair_empty" => "chair_empty",
        "dialysis_session_unverifiable" => "unverifiable",
        _ => return None,
    })
}

/// The list object of the bundle whose manifest is `manifest` (None: not a bundle).
pub fn summarize(seq: u64, manifest: &Value, held: bool) -> Option<EventSummary> {
    let event = &manifest["event"];
    let kind = event["kind"].as_str()?.to_owned();
    let details = &event["details"];
    let files = manifest["files"]
        .as_object()
        .map(|f| f.keys().filter(|n| is_safe_file_name(n)).cloned().collect())
        .unwrap_or_default();
    Some(EventSummary {
        event_id: event["id"].as_str()?.to_owned(),
        seq,
        verdict: verdict_of(&kind, details),
        summary: summary_line(&kind, event),
        camera: event["camera"].as_str().unwrap_or("").to_owned(),
        at: event["at"].as_str().unwrap_or("").to_owned(),
        kind,
        held,
        files,
    })
}

/// One human line from the event's facts.
fn summary_line(kind: &str, event: &Value) -> String {
    let d = &event["details"];
    let f = |key: &str| d[key].as_str().unwrap_or("?").to_owned();
    let camera = event["camera"].as_str().unwrap_or("?");
    match kind {
        "camera_tamper" => {
            let what = match d["tamper"].as_str() {
                Some("covered") => "lens covered",
                Some("frozen") => "picture frozen",
                Some("moved") => "view moved away",
                _ => "tampered with",
            };
            match event["onset"].as_str() {
                Some(onset) => format!("Camera {camera}: {what} since {onset}"),
                None => format!("Camera {camera}: {what}"),
            }
        }
        "settlement_verified" => {
            format!(
                "Settlement {}: {} verified at the window (distance {})",
                f("transaction_id"),
                f("claimed_id"),
                f("distance")
            )
        }
        "settlement_identity_mismatch" => {
            let nearest = match d["best_match"].as_str() {
                Some(best) => format!("; nearest enrolled person {best} (distance {})", f("best_distance")),
                None => "; no enrolled person near".to_owned(),
            };
            format!("Settlement {}: the face at the window is not {}{nearest}", f("transaction_id"), f("claimed_id"))
        }
        "settlement_no_face" => {
            format!("Settlement {} for {}: no usable face at the window", f("transaction_id"), f("claimed_id"))
        }
        "identity_shared_across_ids" => format!(
            "Settlement {} as {}: the same face settled as {} ({}, {})",
            f("transaction_id"),
            f("claimed_id"),
            f("other_claimed_id"),
            f("other_transaction_id"),
            f("other_at")
        ),
        "bed_absent" => {
            format!("Roll-call: {} not in {} ({} in a row)", f("patient"), f("bed"), f("consecutive"))
        }
        "bedside_check_verified" => format!("Bedside photo of {}: every check passed", f("patient")),
        "bedside_check_rejected" => format!("Bedside photo of {}: failed {}", f("patient"), f("failed")),
        "physician_checkin" if d["verified"] == "true" => format!("Physician {} checked in: verified", f("physician")),
        "physician_checkin" => {
            format!("Physician {} checked in: not verified (failed {})", f("physician"), f("failed"))
        }
        k if k.starts_with("dialysis_") => format!(
            "Dialysis session {} of {} at {}: {}",
            f("session"),
            f("patient"),
            f("chair"),
            k.trim_start_matches("dialysis_").replace('_', " ")
        ),
        other => format!("{} on camera {camera}", other.replace('_', " ")),
    }
}

/// The boxes of a bundle's pictures, normalised: a camera bundle's detections on `snapshot.jpg`, a
/// check-in's faces on `annotated.jpg`.
pub fn boxes(manifest: &Value) -> Vec<DrawnBox> {
    let mut found = Vec::new();
    let mut add = |file: &str, size: &Value, label: &str, b: &Value| {
        let (Some(w), Some(h)) = (size["width"].as_f64(), size["height"].as_f64()) else { return };
        let c: Vec<f64> = b.as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
        if c.len() != 4 || w <= 0.0 || h <= 0.0 || manifest["files"].get(file).is_none() {
            return;
        }
        let round = |v: f64| (v.clamp(0.0, 1.0) * 10_000.0).round() / 10_000.0;
        found.push(DrawnBox {
            file: file.to_owned(),
            x: round(c[0] / w),
            y: round(c[1] / h),
            w: round((c[2] - c[0]) / w),
            h: round((c[3] - c[1]) / h),
            label: label.to_owned(),
        });
    };
    for d in manifest["detections"].as_array().into_iter().flatten() {
        add("snapshot.jpg", &manifest["snapshot"], d["label"].as_str().unwrap_or(""), &d["box"]);
    }
    for b in manifest["annotated"]["faces"].as_array().into_iter().flatten() {
        add("annotated.jpg", &manifest["annotated"], "face", b);
    }
    found
}

/// The events routes (state: the console's, whose `events` is set).
pub fn router() -> Router<ConsoleApi> {
    Router::new()
        .route("/console/api/events", get(list))
        .route("/console/api/events/stream", get(stream))
        .route("/console/api/events/{event_id}", get(detail))
        .route("/console/api/events/{event_id}/files/{name}", get(file))
        .route("/console/api/events/{event_id}/hold", post(hold))
}

fn evidence(api: &ConsoleApi) -> Result<Arc<dyn Evidence>, ApiError> {
    api.events.clone().ok_or_else(|| ApiError::Unavailable("this agent serves no evidence store".into()))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::Internal(format!("a worker failed: {e}")))
}

fn review_error(e: ReviewError) -> ApiError {
    match e {
        ReviewError::UnknownEvent(_) | ReviewError::NoFile(_) => ApiError::NotFound(e.to_string()),
        ReviewError::Store(message) => {
            tracing::error!(error = %message, "the console cannot use the evidence store");
            ApiError::Storage(message)
        }
    }
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An event id as the path gives it: a lower-case UUID (nothing else names a bundle).
fn event_id(id: &str) -> Result<&str, ApiError> {
    if is_uuid(id) {
        Ok(id)
    } else {
        Err(ApiError::NotFound(format!("no evidence bundle for event {:?}", id.chars().take(80).collect::<String>())))
    }
}

/// The list's query: every parameter checked, each bad one named.
pub fn parse_filter(pairs: &[(String, String)]) -> Result<Filter, String> {
    let mut filter = Filter { limit: 100, ..Filter::default() };
    let mut seen = std::collections::BTreeSet::new();
    let time = |name: &str, value: &str| {
        humantime::parse_rfc3339_weak(value)
            .map_err(|_| format!("{name}: {value:?} is not a time (RFC 3339, e.g. 2026-12-06T08:00:00Z)"))
    };
    for (name, value) in pairs {
        if !seen.insert(name.as_str()) {
            return Err(format!("{name}: given more than once"));
        }
        match name.as_str() {
            "kind" if value.is_empty() => {}
            "kind" => match KINDS.iter().find(|k| **k == value) {
                Some(_) => filter.kind = Some(value.clone()),
                None => {
                    return Err(format!("kind: {value:?} is not a kind of event with evidence ({})", KINDS.join(", ")));
                }
            },
            "camera" if value.is_empty() => {}
            "camera" => {
                let ok = value.len() <= 128 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
                if !ok {
                    return Err(format!("camera: {:?} is not a camera id", value.chars().take(80).collect::<String>()));
                }
                filter.camera = Some(value.clone());
            }
            "verdict" if value.is_empty() => {}
            "verdict" if value == "none" => filter.verdict = Some(None),
            "verdict" => match VERDICTS.iter().find(|v| **v == value) {
                Some(v) => filter.verdict = Some(Some(v)),
                None => return Err(format!("verdict: {value:?} is not a verdict (none, {})", VERDICTS.join(", "))),
            },
            "since" if value.is_empty() => {}
            "since" => filter.since = Some(time("since", value)?),
            "until" if value.is_empty() => {}
            "until" => filter.until = Some(time("until", value)?),
            "before" if value.is_empty() => {}
            "before" => match value.parse::<u64>() {
                Ok(n) if n >= 1 => filter.before = Some(n),
                _ => return Err(format!("before: {value:?} is not a sequence number (an integer ≥ 1)")),
            },
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=500).contains(&n) => filter.limit = n,
                _ => return Err(format!("limit: {value:?} is not 1..500")),
            },
            other => {
                return Err(format!(
                    "{}: not a parameter of the list (kind, camera, verdict, since, until, before, limit)",
                    other.chars().take(40).collect::<String>()
                ));
            }
        }
    }
    if let (Some(since), Some(until)) = (filter.since, filter.until)
        && until < since
    {
        return Err("until: earlier than since".into());
    }
    Ok(filter)
}

/// `GET /console/api/events?kind=&camera=&verdict=&since=&until=&before=&limit=` (any role).
async fn list(
    State(api): State<ConsoleApi>,
    _: SignedIn,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::BadRequest(format!("the query: {e}")))?;
    let filter = parse_filter(&pairs).map_err(ApiError::BadRequest)?;
    let evidence = evidence(&api)?;
    let page = blocking(move || evidence.list(&filter)).await?;
    Ok(no_store(Json(json!({"events": page.events, "next_before": page.next_before})).into_response()))
}

/// How often the stream sends a comment, so proxies and the idle timeout keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /console/api/events/stream` (any role): `event: bundle` with the list object of each bundle
/// written while connected; `: keep-alive` every 15 s; ends when the agent stops.
async fn stream(State(api): State<ConsoleApi>, signed_in: SignedIn) -> Result<Response, ApiError> {
    let Subscription { bundles, closed } = evidence(&api)?.subscribe();
    tracing::info!(user = %signed_in.session.user, client = %signed_in.address, "console event stream opened");
    let events = futures_util::stream::unfold((bundles, closed), |(mut bundles, mut closed)| async move {
        loop {
            if *closed.borrow() {
                return None;
            }
            tokio::select! {
                _ = closed.changed() => return None,
                received = bundles.recv() => match received {
                    Ok(summary) => {
                        let event = Event::default().event("bundle").json_data(&summary);
                        return Some((event.map_err(|e| ApiError::Internal(e.to_string())), (bundles, closed)));
                    }
                    // A reader too slow for a burst misses some: it says so, and the page reloads the list.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        let event = Event::default().event("lagged").data(missed.to_string());
                        return Some((Ok(event), (bundles, closed)));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    });
    let sse = Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text(" keep-alive"));
    Ok(no_store(sse.into_response()))
}

/// `GET /console/api/events/{event_id}` (any role): the bundle, verified now.
async fn detail(State(api): State<ConsoleApi>, _: SignedIn, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = event_id(&id)?.to_owned();
    let (evidence, console) = (evidence(&api)?, api.store.clone());
    let detail = blocking(move || {
        let mut detail = evidence.detail(&id).map_err(review_error)?;
        fill_by(&console, &id, &mut detail.holds);
        Ok::<_, ApiError>(detail)
    })
    .await??;
    if !detail.verification.ok {
        tracing::warn!(event = %detail.event.event_id, problems = ?detail.verification.problems,
            "evidence bundle does not verify (seen in the console)");
    }
    Ok(no_store(Json(detail).into_response()))
}

/// The audit actions of the hold endpoint.
const HOLD_ACTIONS: [&str; 2] = ["legal_hold", "legal_hold_release"];

/// Who asked for each hold record, from the audit rows that name its sequence.
fn fill_by(console: &crate::console::Store, event_id: &str, holds: &mut [Hold]) {
    let rows = match console.audit_about(&HOLD_ACTIONS, "event_id", event_id) {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the audit log: holds shown without who placed them");
            return;
        }
    };
    let by: BTreeMap<u64, String> =
        rows.into_iter().filter_map(|r| Some((r.details["record_sequence"].as_u64()?, r.who))).collect();
    for hold in holds {
        hold.by = by.get(&hold.sequence).cloned();
    }
}

/// The content type of a bundle's file, by its name.
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).as_deref() {
        Some("mp4") => "video/mp4",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// A `Range` header against a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Ranged {
    /// No range (or one this server ignores, as RFC 9110 allows: several ranges, another unit).
    Whole,
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// Not satisfiable (416), or malformed.
    Unsatisfiable(String),
}

/// One `bytes=` range: `a-b`, `a-`, `-n`.
pub fn parse_range(header: Option<&str>, size: u64) -> Ranged {
    let Some(value) = header else { return Ranged::Whole };
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return Ranged::Whole };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let bad = || {
        Ranged::Unsatisfiable(format!(
            "Range {:?} is not bytes=START-END within 0..{size}",
            value.chars().take(60).collect::<String>()
        ))
    };
    let Some((a, b)) = spec.trim().split_once('-') else { return bad() };
    let number =
        |s: &str| if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) { s.parse::<u64>().ok() } else { None };
    match (a.trim(), b.trim()) {
        ("", n) => match number(n) {
            Some(n) if n > 0 && size > 0 => Ranged::Part(size.saturating_sub(n), size - 1),
            _ => bad(),
        },
        (a, "") => match number(a) {
            Some(a) if a < size => Ranged::Part(a, size - 1),
            _ => bad(),
        },
        (a, b) => match (number(a), number(b)) {
            (Some(a), Some(b)) if a <= b && a < size => Ranged::Part(a, b.min(size - 1)),
            _ => bad(),
        },
    }
}

/// `GET /console/api/events/{event_id}/files/{name}` (any role): a file the manifest lists, with
/// `Range` (206) so a `<video>` plays and seeks.
async fn file(
    State(api): State<ConsoleApi>,
    _: SignedIn,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = event_id(&id)?.to_owned();
    if !is_safe_file_name(&name) {
        return Err(ApiError::NotFound(format!(
            "{:?} is not a file of a bundle",
            name.chars().take(80).collect::<String>()
        )));
    }
    let evidence = evidence(&api)?;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let kind = content_type(&name);
    let opened = blocking(move || {
        let path = evidence.file(&id, &name).map_err(review_error)?;
        // Never through a link: the bundle's own file or nothing.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| ApiError::NotFound(format!("{name} of event {id}: {e}")))?;
        let size = file.metadata().map_err(|e| ApiError::Internal(format!("{name}: {e}")))?.len();
        Ok::<_, ApiError>((file, size))
    })
    .await??;
    let (mut file, size) = opened;
    let (status, start, end) = match parse_range(range.as_deref(), size) {
        Ranged::Whole => (StatusCode::OK, 0, size.saturating_sub(1)),
        Ranged::Part(start, end) => (StatusCode::PARTIAL_CONTENT, start, end),
        Ranged::Unsatisfiable(message) => {
            let mut response = (
                StatusCode::RANGE_NOT_SATISFIABLE,
                Json(json!({"error": {"code": "range_not_satisfiable", "message": message}})),
            )
                .into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_RANGE, HeaderValue::from_str(&format!("bytes */{size}")).expect("ASCII"));
            headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            return Ok(no_store(response));
        }
    };
    let length = if size == 0 { 0 } else { end - start + 1 };
    file.seek(SeekFrom::Start(start)).map_err(|e| ApiError::Internal(e.to_string()))?;
    let body = Body::from_stream(chunks(file.take(length)));
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if status == StatusCode::PARTIAL_CONTENT {
        let range = format!("bytes {start}-{end}/{size}");
        h.insert(header::CONTENT_RANGE, HeaderValue::from_str(&range).expect("ASCII"));
    }
    Ok(no_store(response))
}

/// A file read in blocks off the async threads.
fn chunks(reader: impl Read + Send + 'static) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> {
    futures_util::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        let read = tokio::task::spawn_blocking(move || {
            let mut block = vec![0u8; 256 << 10];
            let n = reader.read(&mut block)?;
            block.truncate(n);
            Ok::<_, std::io::Error>((block, reader))
        })
        .await;
        match read {
            Ok(Ok((block, _))) if block.is_empty() => None,
            Ok(Ok((block, reader))) => Some((Ok(block), Some(reader))),
            Ok(Err(e)) => Some((Err(e), None)),
            Err(e) => Some((Err(std::io::Error::other(e)), None)),
        }
    })
}

/// The longest reason of a hold, in characters.
const MAX_REASON: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldRequest {
    on: bool,
    reason: String,
}

/// `POST /console/api/events/{event_id}/hold {"on", "reason"}` (supervisors and installers, CSRF
/// token): a signed `hold` or `release` record; audited `legal_hold` / `legal_hold_release`.
async fn hold(
    State(api): State<ConsoleApi>,
    allowed: Require<Reviewer>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let who = allowed.0;
    let id = event_id(&id)?.to_owned();
    if body.len() > 4096 {
        return Err(ApiError::TooLarge { limit: 4096 });
    }
    let request: HoldRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!("the body must be JSON {{\"on\": true|false, \"reason\": \"...\"}}: {e}"))
    })?;
    let reason = request.reason.trim().to_owned();
    let chars = reason.chars().count();
    if !(1..=MAX_REASON).contains(&chars) || reason.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "reason: 1..{MAX_REASON} characters without control characters (got {chars})"
        )));
    }
    let (evidence, console) = (evidence(&api)?, api.store.clone());
    let on = request.on;
    let action = if on { "legal_hold" } else { "legal_hold_release" };
    let (user, role, address) = (who.session.user.clone(), who.session.role, who.address.clone());
    let answer = blocking(move || {
        let change = evidence.hold(&id, on, &reason).map_err(review_error)?;
        let details = json!({
            "event_id": id,
            "reason": reason,
            "changed": change.changed,
            "record_sequence": change.record_sequence,
        });
        let audited = console.audit(
            Audit { who: &user, role: Some(role), action, address: &address, outcome: "ok", details },
            SystemTime::now(),
        );
        if let Err(e) = audited {
            tracing::error!(error = %e, event = %id, action, record = ?change.record_sequence,
                "legal hold recorded in the evidence chain but its audit row could not be written");
            return Err(ApiError::Internal(format!(
                "the {action} was signed into the evidence chain but its audit row could not be written: {e}"
            )));
        }
        let mut holds = change.holds;
        fill_by(&console, &id, &mut holds);
        tracing::info!(user = %user, event = %id, on, changed = change.changed, record = ?change.record_sequence,
            "console legal hold");
        Ok::<_, ApiError>(json!({"changed": change.changed, "held": on, "holds": holds}))
    })
    .await??;
    Ok(no_store(Json(answer).into_response()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn every_bad_parameter_is_named() {
        let ok = parse_filter(&pairs(&[("kind", "camera_tamper"), ("verdict", "none"), ("limit", "5")])).unwrap();
        assert_eq!((ok.kind.as_deref(), ok.verdict, ok.limit), (Some("camera_tamper"), Some(None), 5));
        for (name, value) in [
            ("kind", "tamper"),
            ("camera", "a b"),
            ("verdict", "ok"),
            ("since", "yesterday"),
            ("until", "2026-13-01T00:00:00Z"),
            ("before", "0"),
            ("limit", "501"),
            ("limit", "0"),
            ("colour", "red"),
        ] {
            let e = parse_filter(&pairs(&[(name, value)])).unwrap_err();
            assert!(e.starts_with(&format!("{name}: ")), "{name}={value}: {e}");
        }
        let e = parse_filter(&pairs(&[("since", "2026-12-06T10:00:00Z"), ("until", "2026-12-06T09:00:00Z")]));
        assert!(e.unwrap_err().starts_with("until: "));
        assert!(parse_filter(&pairs(&[("limit", "1"), ("limit", "2")])).unwrap_err().starts_with("limit: "));
    }

    #[test]
    fn ranges_as_a_video_element_sends_them() {
        assert_eq!(parse_range(None, 100), Ranged::Whole);
        assert_eq!(parse_range(Some("bytes=0-"), 100), Ranged::Part(0, 99));
        assert_eq!(parse_range(Some("bytes=10-19"), 100), Ranged::Part(10, 19));
        assert_eq!(parse_range(Some("bytes=90-200"), 100), Ranged::Part(90, 99));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Ranged::Part(90, 99));
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Ranged::Whole);
        for bad in ["bytes=100-", "bytes=20-10", "bytes=x-", "bytes=-0", "bytes=5"] {
            assert!(matches!(parse_range(Some(bad), 100), Ranged::Unsatisfiable(_)), "{bad}");
        }
    }

    #[test]
    fn a_manifest_in_one_line_with_its_verdict_and_boxes() {
        let m = json!({
            "event": {"id": "0193", "kind": "settlement_identity_mismatch", "camera": "window-1", "at": "t",
                      "details": {"transaction_id": "tx-9", "claimed_id": "p-1", "best_match": "p-2", "best_distance": "0.310"}},
            "files": {"clip.mp4": {}, "snapshot.jpg": {}, "../x": {}},
            "snapshot": {"width": 200, "height": 100},
            "detections": [{"label": "face", "box": [20, 10, 70, 60], "score": "0.9"}],
        });
        let s = summarize(7, &m, true).unwrap();
        assert_eq!(s.verdict, Some("mismatch"));
        assert_eq!(s.files, ["clip.mp4", "snapshot.jpg"], "an unsafe name is not served");
        assert_eq!(
            s.summary,
            "Settlement tx-9: the face at the window is not p-1; nearest enrolled person p-2 (distance 0.310)"
        );
        assert_eq!(
            boxes(&m),
            [DrawnBox { file: "snapshot.jpg".into(), x: 0.1, y: 0.1, w: 0.25, h: 0.5, label: "face".into() }]
        );
        let tamper = json!({"event": {"id": "1", "kind": "camera_tamper", "camera": "c", "at": "t",
            "onset": "2026-12-06T05:00:00.000Z", "details": {"tamper": "covered"}}});
        let s = summarize(1, &tamper, false).unwrap();
        assert_eq!((s.verdict, s.summary.as_str()), (None, "Camera c: lens covered since 2026-12-06T05:00:00.000Z"));
        let checkin = json!({"event": {"id": "2", "kind": "physician_checkin", "details": {"verified": "true", "physician": "dr-wang"}}});
        assert_eq!(summarize(2, &checkin, false).unwrap().verdict, Some("verified"));
        assert!(summarize(3, &json!({"record": {}}), false).is_none(), "a record is not an event");
    }
}
