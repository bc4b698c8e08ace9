//! The console page (agent/assets/console/) in Debian's headless Chromium, driven over the DevTools
//! protocol with real mouse and touch input, against a stand-in box: the page is served by the real
//! `vigil::http::console_page::router()`, sign-in, sessions, CSRF, roles, lock-out and the audit log
//! by the real `vigil::http::console::router()` over a real console store; the cameras', events' and
//! people's endpoints are small handlers in this file that answer docs/console.md's JSON shapes
//! (behind the real `SignedIn` / `Require<Installer>` guards, so the page's CSRF token is checked) and
//! record what the page sent. The agent's own implementations of those endpoints have their own tests
//! (tests/console_cameras.rs, console_events.rs, console_people.rs).
//!
//! An installer signs in (after a wrong password), sees the cameras with their live frames, draws a
//! bed with the mouse on ward-1's picture, drags a corner and the whole shape, renames it, saves (the
//! polygon the box receives is checked), sees every problem of a refused change listed, moves a corner
//! with a finger on a tablet, takes the references (a uniform view refused, then accepted as uniform);
//! reviews the events (filtered, one arriving live), plays a tamper clip, sees the signature valid,
//! places a legal hold and finds it in the audit log, sees an invalid bundle called INVALID; enrols a
//! person from two photos with a result per photo, removes one; a viewer sees no editing controls and
//! no audit log; every view in Chinese; five wrong passwords lock the name out. Screenshots of every
//! view, desk, tablet and phone sizes, English and Chinese, go to docs/screenshots/console-*.png.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde_json::{Value, json};
use vigil::console::{Audit, Policy, Role, Store};
use vigil::http::ConsoleApi;
use vigil::http::console::{Installer, Require, Reviewer, SignedIn};

use common::cdp::{Browser, Options, Tab};
use common::console::{
    WAIT, draw_region, fill, frame_point, screenshot, screenshot_of, set_language, show_frame, sign_in, view_is,
    wait_for_element, wait_text,
};
use common::scenes::Scene;

const INSTALLER: (&str, &str) = ("ana", "ana's long password");
const VIEWER: (&str, &str) = ("vic", "vic's long password");

// --- the stand-in box -------------------------------------------------------------------------

#[derive(Default)]
struct Box {
    cameras: Vec<Value>,
    frame: Vec<u8>,
    clip: Vec<u8>,
    snapshot: Vec<u8>,
    events: Vec<Value>,
    /// Bundles sent to the next stream connection (the stand-in's stream answers them and ends; the
    /// page's EventSource comes back after `retry`).
    live: Vec<Value>,
    holds: Vec<Value>,
    people: Value,
    /// Every camera change the page sent: (camera, body).
    puts: Vec<(String, Value)>,
    references: Vec<Value>,
    /// The next empty reference is refused as a uniform view.
    uniform_next: bool,
    event_queries: Vec<String>,
    enrolments: Vec<(String, Vec<String>)>,
}

type Shared = Arc<Mutex<Box>>;

fn problem(status: StatusCode, code: &str, message: &str, problems: &[String]) -> Response {
    let mut error = json!({ "code": code, "message": message });
    if !problems.is_empty() {
        error["problems"] = json!(problems);
    }
    (status, [(header::CACHE_CONTROL, "no-store")], Json(json!({ "error": error }))).into_response()
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn audit(api: &ConsoleApi, who: &SignedIn, action: &str, details: Value) {
    let entry = Audit {
        who: &who.session.user,
        role: Some(who.session.role),
        action,
        address: &who.address,
        outcome: "ok",
        details,
    };
    api.store.audit(entry, SystemTime::now()).unwrap();
}

async fn cameras(_: SignedIn, Extension(state): Extension<Shared>) -> Response {
    Json(json!({ "cameras": state.lock().unwrap().cameras })).into_response()
}

async fn frame(_: SignedIn, Extension(state): Extension<Shared>, UrlPath(id): UrlPath<String>) -> Response {
    let state = state.lock().unwrap();
    match state.cameras.iter().find(|c| c["id"] == id.as_str()) {
        None => problem(StatusCode::NOT_FOUND, "not_found", "no such camera", &[]),
        Some(c) if c["width"] == 0 => problem(StatusCode::NOT_FOUND, "no_frame", "no frame yet", &[]),
        Some(_) => ([(header::CONTENT_TYPE, "image/jpeg")], state.frame.clone()).into_response(),
    }
}

/// Refuses what the real box would for the cases the test makes: a region the roster names removed,
/// a region smaller than 1 % of the picture; every problem at once.
async fn update_camera(
    State(api): State<ConsoleApi>,
    guard: Require<Installer>,
    Extension(state): Extension<Shared>,
    UrlPath(id): UrlPath<String>,
    Json(change): Json<Value>,
) -> Response {
    let who = &guard.0;
    let mut state = state.lock().unwrap();
    state.puts.push((id.clone(), change.clone()));
    let Some(index) = state.cameras.iter().position(|c| c["id"] == id.as_str()) else {
        return problem(StatusCode::NOT_FOUND, "not_found", "no such camera", &[]);
    };
    let regions = change["regions"].as_object().cloned().unwrap_or_default();
    let mut problems = Vec::new();
    for kept in ["bed-1"] {
        if id == "ward-1" && !regions.contains_key(kept) {
            problems.push(format!(
                "cameras[{id}].regions.{kept}: the roster's inpatient p-1001 lies in this bed; it cannot be removed"
            ));
        }
    }
    for (name, points) in &regions {
        let p: Vec<(f64, f64)> =
            points.as_array().unwrap().iter().map(|q| (q[0].as_f64().unwrap(), q[1].as_f64().unwrap())).collect();
        let area = p.iter().zip(p.iter().cycle().skip(1)).map(|(a, b)| a.0 * b.1 - b.0 * a.1).sum::<f64>().abs() / 2.0;
        if area < 0.01 {
            problems.push(format!(
                "cameras[{id}].regions.{name}: the polygon covers {:.2} % of the picture, less than 1 %",
                area * 100.0
            ));
        }
    }
    if !problems.is_empty() {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_config", "the change is not valid", &problems);
    }
    let camera = &mut state.cameras[index];
    camera["regions"] = Value::Object(regions.clone());
    camera["occupancy"] = regions.keys().map(|k| (k.clone(), json!("unknown"))).collect();
    if let Some(name) = change.get("name") {
        camera["name"] = name.clone();
    }
    if let Some(window) = change.get("face_window") {
        camera["face_window"] = window.clone();
    }
    let restarted = change.get("url").is_some();
    if let Some(url) = change.get("url") {
        camera["url"] = url.clone();
    }
    let mut answer = camera.clone();
    answer["applied"] = json!(if restarted { "camera_restarted" } else { "live" });
    audit(&api, who, "camera_update", json!({ "camera": id, "regions": regions.keys().collect::<Vec<_>>() }));
    Json(answer).into_response()
}

async fn reference(
    State(api): State<ConsoleApi>,
    guard: Require<Installer>,
    Extension(state): Extension<Shared>,
    UrlPath(id): UrlPath<String>,
    Json(body): Json<Value>,
) -> Response {
    let who = &guard.0;
    let mut state = state.lock().unwrap();
    state.references.push(body.clone());
    if body["kind"] == "empty" && state.uniform_next && body["uniform_ok"] != true {
        state.uniform_next = false;
        return problem(StatusCode::CONFLICT, "uniform_view", "the frame is uniform: covered?", &[]);
    }
    let kind = body["kind"].as_str().unwrap().to_owned();
    let camera = state.cameras.iter_mut().find(|c| c["id"] == id.as_str()).unwrap();
    camera["references"]["view"] = json!({ "taken_at": now() });
    if kind == "empty" {
        camera["references"]["empty"] = json!({ "taken_at": now() });
    }
    audit(&api, who, "reference_take", json!({ "camera": id, "kind": kind }));
    Json(json!({ "camera": id, "kind": kind, "taken_at": now() })).into_response()
}

async fn events(
    _: SignedIn,
    Extension(state): Extension<Shared>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let mut state = state.lock().unwrap();
    let mut names: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    names.sort();
    state.event_queries.push(names.join("&"));
    let wanted = |e: &&Value| {
        ["kind", "camera", "verdict"]
            .iter()
            .all(|f| query.get(*f).is_none_or(|v| v.is_empty() || e[*f].as_str() == Some(v.as_str())))
    };
    let events: Vec<&Value> = state.events.iter().filter(wanted).collect();
    Json(json!({ "events": events, "next_before": null })).into_response()
}

/// Server-Sent Events: each bundle put in `live` is sent (and joins the list), a keep-alive comment
/// otherwise, until the server stops.
async fn stream(_: SignedIn, Extension(state): Extension<Shared>) -> Response {
    let ticks = futures_util::stream::unfold((state, true), |(state, first)| async move {
        if !first {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let live: Vec<Value> = std::mem::take(&mut state.lock().unwrap().live);
        let mut text = String::from(if first { "retry: 1000\n: keep-alive\n\n" } else { "" });
        for event in live {
            state.lock().unwrap().events.insert(0, event.clone());
            text.push_str(&format!("event: bundle\ndata: {event}\n\n"));
        }
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(text)), (state, false)))
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-store")],
        axum::body::Body::from_stream(ticks),
    )
        .into_response()
}

async fn evidence(_: SignedIn, Extension(state): Extension<Shared>, UrlPath(id): UrlPath<String>) -> Response {
    let state = state.lock().unwrap();
    let Some(event) = state.events.iter().find(|e| e["event_id"] == id.as_str()) else {
        return problem(StatusCode::NOT_FOUND, "not_found", "no such event", &[]);
    };
    let tamper = event["kind"] == "camera_tamper";
    let verification = if tamper {
        json!({ "ok": true, "checked_at": now(), "problems": [], "chain": "entry 7 of 9, links to entry 6: verified" })
    } else {
        json!({ "ok": false, "checked_at": now(), "problems": ["snapshot.jpg: its SHA-256 is not the manifest's"], "chain": "entry 8 of 9, links to entry 7: verified" })
    };
    let manifest = json!({
        "version": 2, "event_id": id, "kind": event["kind"], "camera": event["camera"], "at": event["at"],
        "decision": { "outcome": if tamper { "covered" } else { "mismatch" }, "score": 0.21, "claimed": "p-1001" },
        "files": [{ "name": "snapshot.jpg", "sha256": "9f2c…" }],
        "clock": { "synchronised": true },
    });
    Json(json!({
        "event": event,
        "manifest": manifest,
        "boxes": [{ "file": "snapshot.jpg", "x": 0.12, "y": 0.3, "w": 0.51, "h": 0.36, "label": "person 0.91" }],
        "verification": verification,
        "holds": state.holds,
    }))
    .into_response()
}

/// A manifest's file, with `Range` (206) so the video element can seek.
async fn file(
    _: SignedIn,
    Extension(state): Extension<Shared>,
    UrlPath((_, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let state = state.lock().unwrap();
    let (bytes, kind) = match name.as_str() {
        "clip.mp4" => (state.clip.clone(), "video/mp4"),
        "snapshot.jpg" => (state.snapshot.clone(), "image/jpeg"),
        _ => return problem(StatusCode::NOT_FOUND, "not_found", "not a file of this bundle", &[]),
    };
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("bytes="));
    let Some((from, to)) = range.and_then(|r| r.split_once('-')) else {
        return ([(header::CONTENT_TYPE, kind), (header::ACCEPT_RANGES, "bytes")], bytes).into_response();
    };
    let from: usize = from.parse().unwrap_or(0);
    let to: usize = to.parse().unwrap_or(bytes.len() - 1).min(bytes.len() - 1);
    let part = bytes[from..=to].to_vec();
    let content_range = format!("bytes {from}-{to}/{}", bytes.len());
    (
        StatusCode::PARTIAL_CONTENT,
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (header::ACCEPT_RANGES, "bytes".into()),
            (header::CONTENT_RANGE, content_range),
        ],
        part,
    )
        .into_response()
}

async fn hold(
    State(api): State<ConsoleApi>,
    guard: Require<Reviewer>,
    Extension(state): Extension<Shared>,
    UrlPath(id): UrlPath<String>,
    Json(body): Json<Value>,
) -> Response {
    let who = &guard.0;
    let mut state = state.lock().unwrap();
    let on = body["on"].as_bool().unwrap();
    let reason = body["reason"].as_str().unwrap_or_default().to_owned();
    if reason.is_empty() {
        return problem(StatusCode::BAD_REQUEST, "bad_request", "reason is required", &[]);
    }
    let event = state.events.iter_mut().find(|e| e["event_id"] == id.as_str()).unwrap();
    let changed = event["held"] != on;
    event["held"] = json!(on);
    if changed {
        let by = who.session.user.clone();
        state.holds.push(json!({ "on": on, "at": now(), "reason": reason, "by": by }));
        audit(
            &api,
            who,
            if on { "legal_hold" } else { "legal_hold_release" },
            json!({ "event_id": id, "reason": reason }),
        );
    }
    Json(json!({ "changed": changed, "holds": state.holds })).into_response()
}

async fn people(_: SignedIn, Extension(state): Extension<Shared>) -> Response {
    Json(state.lock().unwrap().people.clone()).into_response()
}

/// The photos' names from the multipart body; a photo is accepted when it is one of Obama's (the real
/// quality gate is tests/console_people.rs's).
async fn enrol(
    _: Require<Installer>,
    Extension(state): Extension<Shared>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    let text = String::from_utf8_lossy(&body);
    let names: Vec<String> =
        text.split("filename=\"").skip(1).map(|rest| rest.split('"').next().unwrap().to_owned()).collect();
    assert!(text.contains("name=\"role\"\r\n\r\npatient"), "the role field is sent");
    let photos: Vec<Value> = names
        .iter()
        .map(|n| {
            let ok = n.starts_with("obama");
            json!({ "name": n, "accepted": ok, "reason": if ok { Value::Null } else { json!("no_face") }, "quality": {} })
        })
        .collect();
    let mut state = state.lock().unwrap();
    state.enrolments.push((id.clone(), names));
    let enrolled = photos.iter().any(|p| p["accepted"] == true);
    if enrolled {
        state.people["enrolled"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "id": id, "role": "patient", "enrolled_at": now(), "faces": 1 }));
    }
    Json(json!({ "enrolled": enrolled, "photos": photos })).into_response()
}

async fn remove(_: Require<Installer>, Extension(state): Extension<Shared>, UrlPath(id): UrlPath<String>) -> Response {
    let mut state = state.lock().unwrap();
    state.people["enrolled"].as_array_mut().unwrap().retain(|p| p["id"] != id.as_str());
    StatusCode::OK.into_response()
}

fn camera(id: &str, name: &str, role: &str, online: bool, regions: Value, face_window: Value) -> Value {
    let occupancy: serde_json::Map<String, Value> =
        regions.as_object().unwrap().keys().map(|k| (k.clone(), json!("empty"))).collect();
    let (w, h) = if online { (1280, 720) } else { (0, 0) };
    json!({
        "id": id, "name": name, "role": role, "url": format!("rtsp://10.0.0.9/{id}"), "online": online,
        "fps": if online { 4.0 } else { 0.0 }, "frames_decoded": 1200, "frames_dropped": if online { 0 } else { 17 },
        "restarts": if online { 0 } else { 3 }, "tamper": "ok", "keyframes_only": role == "ward",
        "width": w, "height": h, "regions": regions, "face_window": face_window,
        "references": { "view": { "taken_at": "2026-12-01T08:00:00Z" }, "empty": null },
        "occupancy": if role == "settlement_window" { json!({}) } else { Value::Object(occupancy) },
    })
}

fn jpeg(image: &image::RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image.clone()).write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

struct StandIn {
    base: String,
    /// `li`'s one-time password (an installer handed a first account over).
    one_time: String,
    state: Shared,
    _runtime: tokio::runtime::Runtime,
}

fn start(dir: &Path) -> StandIn {
    let store = Arc::new(Store::open(&dir.join("console.sqlite")).unwrap());
    for (name, role, password) in [
        (INSTALLER.0, Role::Installer, INSTALLER.1),
        ("sun", Role::Supervisor, "sun's long password"),
        (VIEWER.0, Role::Viewer, VIEWER.1),
    ] {
        store.add_user(name, role, password, "cli", SystemTime::now()).unwrap();
    }
    let (_, one_time) = store.add_user_one_time("li", Role::Supervisor, "cli", SystemTime::now()).unwrap();
    let policy = Policy {
        idle: Duration::from_secs(3600),
        max_age: Duration::from_secs(8 * 3600),
        lockout_failures: 5,
        lockout: Duration::from_secs(15 * 60),
    };
    let api = ConsoleApi { store, policy };

    let scene = Scene::ward(1280, 720);
    let ward = scene.render(160.0);
    let clip = dir.join("clip.mp4");
    let small = Scene::ward(640, 360);
    common::media::encode_clip(&clip, 640, 360, 10, 40, 10, |i| small.render(150.0 + i as f64 / 10.0));
    let bed1 = json!({ "bed-1": [[0.66, 0.2], [0.72, 0.2], [0.72, 0.7], [0.66, 0.7]] });
    let chair = json!({ "chair-1": [[0.74, 0.22], [0.94, 0.22], [0.94, 0.7], [0.74, 0.7]] });
    let at = |s: u64| humantime::format_rfc3339(SystemTime::now() - Duration::from_secs(s)).to_string();
    let state = Shared::new(Mutex::new(Box {
        cameras: vec![
            camera("ward-1", "Ward 5 · room 3", "ward", true, bed1, Value::Null),
            camera(
                "win-1",
                "Settlement window 1",
                "settlement_window",
                true,
                json!({}),
                json!([[0.3, 0.1], [0.7, 0.1], [0.7, 0.9], [0.3, 0.9]]),
            ),
            camera("dial-1", "Dialysis room", "dialysis_room", false, chair, Value::Null),
        ],
        frame: jpeg(&ward),
        clip: std::fs::read(&clip).unwrap(),
        snapshot: jpeg(&scene.render(160.0)),
        events: vec![
            json!({ "event_id": "ev-tamper", "seq": 9, "kind": "camera_tamper", "camera": "ward-1", "at": at(120), "verdict": null,
                    "summary": "ward-1 covered (brightness 0.04 of the reference)", "held": false, "files": ["clip.mp4", "snapshot.jpg", "manifest.json"] }),
            json!({ "event_id": "ev-settle", "seq": 8, "kind": "settlement_identity_mismatch", "camera": "win-1", "at": at(3600), "verdict": "mismatch",
                    "summary": "claimed p-1001, the face is not theirs (similarity 0.21)", "held": false, "files": ["snapshot.jpg", "manifest.json"] }),
        ],
        uniform_next: true,
        people: json!({
            "inpatients": [{ "patient": "p-1001", "camera": "ward-1", "bed": "bed-1", "enrolled": true },
                           { "patient": "p-1002", "camera": "ward-1", "bed": "bed-2", "enrolled": false }],
            "dialysis_sessions": [{ "patient": "p-2001", "camera": "dial-1", "chair": "chair-1", "start": "08:00", "end": "12:00", "enrolled": false }],
            "shifts": [{ "physician": "dr-li", "camera": "dial-1", "start": "08:00", "end": "16:00", "enrolled": true }],
            "enrolled": [{ "id": "p-1001", "role": "patient", "enrolled_at": at(86400), "faces": 3 },
                         { "id": "dr-li", "role": "physician", "enrolled_at": at(172800), "faces": 2 }],
            "roster_source": "file",
        }),
        ..Box::default()
    }));

    let stand_in = Router::new()
        .route("/console/api/cameras", get(cameras))
        .route("/console/api/cameras/{id}/frame.jpg", get(frame))
        .route("/console/api/cameras/{id}", put(update_camera))
        .route("/console/api/cameras/{id}/reference", post(reference))
        .route("/console/api/events", get(events))
        .route("/console/api/events/stream", get(stream))
        .route("/console/api/events/{id}", get(evidence))
        .route("/console/api/events/{id}/files/{name}", get(file))
        .route("/console/api/events/{id}/hold", post(hold))
        .route("/console/api/people", get(people))
        .route("/console/api/people/{id}/enrol", post(enrol))
        .route("/console/api/people/{id}", axum::routing::delete(remove))
        .layer(Extension(state.clone()))
        .with_state(api.clone());
    let app = vigil::http::console::router(api).merge(stand_in).merge(vigil::http::console_page::router());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    StandIn { base: format!("http://{addr}"), one_time, state, _runtime: runtime }
}

fn browser(dir: &Path) -> Browser {
    let video = dir.join("camera.y4m");
    common::cdp::write_y4m(&image::RgbImage::new(64, 48), &video);
    Browser::start(&Options { fake_video: video, extra_args: vec![] })
}

/// No uncaught exception, console error or CSP violation (answers with an error status are logged by
/// the browser too: the test asks for those on purpose).
fn no_page_errors(browser: &Browser) {
    let errors: Vec<_> =
        browser.page_errors().into_iter().filter(|e| !e.text.starts_with("log: Failed to load resource")).collect();
    assert!(errors.is_empty(), "the page reported errors: {errors:#?}");
}

#[test]
fn an_installer_draws_regions_reviews_evidence_and_enrols_in_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let stand_in = start(dir.path());
    let browser = browser(dir.path());
    let tab = browser.desk_tab("en-US", 1280, 800);
    let url = format!("{}/console/", stand_in.base);
    tab.navigate(&url);

    // Sign-in: a wrong password is said so, without saying which of the two is wrong.
    view_is(&tab, "signin");
    assert_eq!(tab.eval("document.documentElement.lang"), json!("en"));
    screenshot(&tab, "console-signin-en");
    sign_in(&tab, INSTALLER.0, "not the password");
    wait_text(&tab, "#signin-error", "Wrong name or password");
    sign_in(&tab, INSTALLER.0, INSTALLER.1);
    view_is(&tab, "cameras");
    wait_text(&tab, "#who", "ana · installer");

    // The cameras: every card, ward-1's live frame, the offline camera said so.
    tab.wait_for(
        "document.querySelectorAll('.camera-card').length === 3
         && document.querySelector(\".camera-card[data-camera='ward-1'] img.frame\").naturalWidth === 1280",
        "three cameras and ward-1's frame",
        WAIT,
    );
    wait_text(&tab, ".camera-card[data-camera='dial-1']", "offline");
    wait_text(&tab, ".camera-card[data-camera='dial-1']", "No picture");
    screenshot(&tab, "console-cameras-en");

    // The editor: draw a bed with the mouse where the scene's bed is.
    tab.click(".camera-card[data-camera='ward-1']");
    view_is(&tab, "editor");
    wait_for_element(&tab, "#editor-svg g.shape[data-region='bed-1']");
    let bed = [(0.12, 0.30), (0.63, 0.30), (0.63, 0.66), (0.12, 0.66)];
    draw_region(&tab, "#add-bed", &bed);
    wait_for_element(&tab, "#editor-svg g.shape[data-region='bed-2']");
    wait_text(&tab, "#status", "Changes not saved");
    // A corner dragged out and back, the whole shape dragged right and back (to within a pixel).
    show_frame(&tab);
    let corner = frame_point(&tab, 0.63, 0.66);
    let out = frame_point(&tab, 0.70, 0.75);
    tab.mouse_drag(corner, out, 5);
    tab.mouse_drag(out, corner, 5);
    let inside = frame_point(&tab, 0.3, 0.5);
    let right = frame_point(&tab, 0.4, 0.5);
    tab.mouse_drag(inside, right, 6);
    tab.mouse_drag(right, inside, 6);
    // Renamed in the list.
    fill(&tab, "input[data-rename='bed-2']", "bed-7");
    wait_for_element(&tab, "#editor-svg g.shape[data-region='bed-7']");
    screenshot(&tab, "console-editor-en");
    tab.click("#save");
    wait_text(&tab, "#editor-message", "Saved and applied");
    let (camera, sent) = stand_in.state.lock().unwrap().puts.last().cloned().unwrap();
    assert_eq!(camera, "ward-1");
    let drawn = sent["regions"]["bed-7"].as_array().unwrap_or_else(|| panic!("no bed-7 in {sent}"));
    assert_eq!(drawn.len(), 4, "{sent}");
    for (point, expected) in drawn.iter().zip(bed) {
        let (x, y) = (point[0].as_f64().unwrap(), point[1].as_f64().unwrap());
        assert!(
            (x - expected.0).abs() < 0.004 && (y - expected.1).abs() < 0.004,
            "{point} is not {expected:?}: {sent}"
        );
    }
    assert!(sent["regions"]["bed-1"].is_array() && sent.get("face_window").is_none(), "{sent}");
    assert_eq!(tab.eval("document.getElementById('save').disabled"), json!(true), "nothing left to save");

    // A refused change: every problem listed, nothing changed on the box.
    draw_region(&tab, "#add-bed", &[(0.02, 0.02), (0.10, 0.02), (0.06, 0.10)]);
    tab.click("button[data-delete='bed-1']");
    tab.click("#save");
    wait_text(&tab, "#editor-message", "the box found 2 problem(s)");
    let problems = tab.text("#editor-problems");
    assert!(problems.contains("regions.bed-1: the roster's inpatient p-1001"), "{problems}");
    assert!(problems.contains("regions.bed-2: the polygon covers"), "{problems}");
    screenshot(&tab, "console-editor-problems-en");
    tab.click("#discard");
    wait_for_element(&tab, "#editor-svg g.shape[data-region='bed-1']");

    // On a tablet, a finger moves a corner.
    tab.set_size(1024, 768, true);
    std::thread::sleep(Duration::from_millis(300));
    show_frame(&tab);
    let corner = frame_point(&tab, 0.12, 0.30);
    tab.touch_drag(corner, frame_point(&tab, 0.15, 0.25), 6);
    wait_text(&tab, "#status", "Changes not saved");
    screenshot(&tab, "console-editor-tablet-en");
    tab.click("#save");
    wait_text(&tab, "#editor-message", "Saved and applied");
    let (_, sent) = stand_in.state.lock().unwrap().puts.last().cloned().unwrap();
    let first = &sent["regions"]["bed-7"][0];
    assert!(
        (first[0].as_f64().unwrap() - 0.15).abs() < 0.004 && (first[1].as_f64().unwrap() - 0.25).abs() < 0.004,
        "{sent}"
    );

    // A new address (the shown one has no credentials: it is sent only when typed).
    fill(&tab, "#camera-url", "rtsp://10.0.0.9/ward-1-main");
    tab.click("#save");
    wait_text(&tab, "#editor-message", "the camera restarted");
    let (_, sent) = stand_in.state.lock().unwrap().puts.last().cloned().unwrap();
    assert_eq!(sent["url"], "rtsp://10.0.0.9/ward-1-main", "{sent}");
    assert_eq!(stand_in.state.lock().unwrap().puts[0].1.get("url"), None, "no address unless one is typed");

    // References: a uniform picture refused with what to do, then taken as uniform; the empty one.
    tab.click("#ref-empty");
    wait_text(&tab, "#editor-message", "The picture is uniform");
    tab.click("#ref-uniform");
    wait_text(&tab, "#editor-message", "accepted as uniform");
    tab.click("#ref-empty");
    wait_text(&tab, "#editor-message", "Empty reference taken");
    wait_text(&tab, "#editor-refs", "Empty reference taken");
    let references = stand_in.state.lock().unwrap().references.clone();
    assert_eq!(
        references,
        [
            json!({"kind": "empty", "uniform_ok": false}),
            json!({"kind": "view", "uniform_ok": true}),
            json!({"kind": "empty", "uniform_ok": false})
        ]
    );
    tab.set_size(768, 1024, true);
    screenshot(&tab, "console-editor-tablet-portrait-en");
    tab.set_size(390, 844, true);
    screenshot(&tab, "console-editor-phone-en");
    tab.set_size(1280, 800, false);

    // Events: the list, a filter sent to the box, one arriving live.
    tab.click("#nav a[data-nav='events']");
    view_is(&tab, "events");
    tab.wait_for("document.querySelectorAll('.event-row').length === 2", "two events", WAIT);
    wait_text(&tab, "#events-live", "live");
    fill(&tab, "#filter-kind", "camera_tamper");
    tab.wait_for("document.querySelectorAll('.event-row').length === 1", "the tamper event only", WAIT);
    assert!(stand_in.state.lock().unwrap().event_queries.last().unwrap().contains("kind=camera_tamper"));
    fill(&tab, "#filter-kind", "");
    tab.wait_for("document.querySelectorAll('.event-row').length === 2", "both events again", WAIT);
    stand_in.state.lock().unwrap().live.push(json!({
        "event_id": "ev-live", "seq": 10, "kind": "bed_absent", "camera": "ward-1", "at": now(), "verdict": null,
        "summary": "p-1001 out of bed-7 for 20 min", "held": false, "files": ["snapshot.jpg", "manifest.json"] }));
    tab.wait_for("!!document.querySelector(\".event-row.fresh[data-event='ev-live']\")", "the live event", WAIT);
    screenshot(&tab, "console-events-en");

    // The tamper event's evidence: the clip plays, the boxes are drawn, the signature is valid.
    tab.click(".event-row[data-event='ev-tamper']");
    view_is(&tab, "evidence");
    wait_text(&tab, "#signature", "Signature valid");
    wait_text(&tab, "#signature", "entry 7 of 9");
    tab.eval("document.getElementById('evidence-video').play().then(() => true)");
    tab.wait_for(
        "(() => { const v = document.getElementById('evidence-video'); return !v.paused && v.currentTime > 0.2 && v.readyState >= 3; })()",
        "the clip to play",
        WAIT,
    );
    tab.eval("document.getElementById('evidence-video').pause(); true");
    assert_eq!(tab.eval("document.querySelectorAll('.snapshot rect.box').length"), json!(1));
    wait_text(&tab, ".facts-table", "decision.outcome");
    // A legal hold needs its reason; placed, it is in the audit log.
    tab.click("#hold-toggle");
    wait_text(&tab, "#hold-message", "Write the reason first");
    fill(&tab, "#hold-reason", "complaint 2026-118");
    tab.click("#hold-toggle");
    wait_text(&tab, "#hold-message", "Legal hold placed");
    wait_text(&tab, "#hold", "held by ana — complaint 2026-118");
    screenshot(&tab, "console-evidence-en");
    tab.click("#nav a[data-nav='audit']");
    view_is(&tab, "audit");
    wait_text(&tab, ".audit-table", "legal hold placed");
    wait_text(&tab, ".audit-table", "complaint 2026-118");
    wait_text(&tab, ".audit-table", "failed sign-in");
    screenshot(&tab, "console-audit-en");

    // A bundle that does not verify is called INVALID, with the reason.
    tab.navigate(&format!("{url}#/events/ev-settle"));
    view_is(&tab, "evidence");
    wait_text(&tab, "#signature", "Signature INVALID: snapshot.jpg: its SHA-256 is not the manifest's");

    // People: the roster, an enrolment with a result per photo, a removal.
    tab.click("#nav a[data-nav='people']");
    view_is(&tab, "people");
    wait_text(&tab, "#view-people", "p-1002");
    wait_text(&tab, "#view-people", "Roster from the box's roster file");
    fill(&tab, "#enrol-id", "p-1002");
    let photos = common::face_images();
    set_files(&tab, "#enrol-photos", &[&photos.join("obama2.jpg"), &photos.join("32bit.png")]);
    tab.wait_for("document.querySelectorAll('#enrol-box .photo img').length === 2", "two previews", WAIT);
    tab.click("#enrol-submit");
    wait_text(&tab, "#enrol-message", "p-1002 is enrolled");
    wait_text(&tab, ".photo[data-photo='obama2.jpg']", "accepted");
    wait_text(&tab, ".photo[data-photo='32bit.png']", "refused: no face found");
    assert_eq!(
        stand_in.state.lock().unwrap().enrolments,
        [("p-1002".to_owned(), vec!["obama2.jpg".to_owned(), "32bit.png".to_owned()])]
    );
    screenshot_of(&tab, "#enrol-box", "console-people-en");
    // A removal asks for a second press.
    tab.click("button[data-remove='dr-li']");
    wait_text(&tab, "button[data-remove='dr-li']", "Press again");
    tab.click("button[data-remove='dr-li']");
    wait_text(&tab, "#remove-message", "dr-li removed");

    // Chinese: every view says its words in Chinese, and the choice is kept.
    tab.navigate(&format!("{url}#/cameras"));
    view_is(&tab, "cameras");
    set_language(&tab, "zh-CN");
    wait_text(&tab, "#view-cameras", "离线");
    screenshot(&tab, "console-cameras-zh");
    tab.click(".camera-card[data-camera='ward-1']");
    view_is(&tab, "editor");
    wait_text(&tab, "#editor-panel", "现在画面为空");
    screenshot(&tab, "console-editor-zh");
    tab.set_size(768, 1024, true);
    screenshot(&tab, "console-editor-tablet-portrait-zh");
    tab.set_size(1280, 800, false);
    tab.navigate(&format!("{url}#/events/ev-tamper"));
    view_is(&tab, "evidence");
    assert_eq!(tab.eval("document.documentElement.lang"), json!("zh-CN"), "the language is remembered");
    wait_text(&tab, "#signature", "签名有效");
    tab.wait_for("document.getElementById('evidence-video').readyState >= 3", "the clip's first frames", WAIT);
    screenshot(&tab, "console-evidence-zh");
    tab.click("#nav a[data-nav='events']");
    view_is(&tab, "events");
    tab.wait_for("document.querySelectorAll('.event-row').length === 3", "three events", WAIT);
    screenshot(&tab, "console-events-zh");
    tab.set_size(390, 844, true);
    screenshot(&tab, "console-events-phone-zh");
    tab.set_size(1024, 768, true);
    tab.click("#nav a[data-nav='people']");
    view_is(&tab, "people");
    wait_text(&tab, "#view-people", "住院患者");
    screenshot(&tab, "console-people-tablet-zh");
    tab.set_size(1280, 800, false);
    tab.click("#nav a[data-nav='audit']");
    view_is(&tab, "audit");
    wait_text(&tab, ".audit-table", "设置法律保全");
    screenshot(&tab, "console-audit-zh");
    set_language(&tab, "en");

    // A viewer: no editing, no audit log.
    tab.click("#signout");
    view_is(&tab, "signin");
    sign_in(&tab, VIEWER.0, VIEWER.1);
    view_is(&tab, "cameras");
    assert_eq!(tab.eval("document.querySelector(\"#nav a[data-nav='audit']\").hidden"), json!(true));
    tab.click(".camera-card[data-camera='ward-1']");
    view_is(&tab, "editor");
    wait_for_element(&tab, "#editor-refs");
    assert_eq!(
        tab.eval("!!document.querySelector('#add-bed, #save, #ref-empty, .hit, input[data-rename]')"),
        json!(false)
    );
    tab.navigate(&format!("{url}#/audit"));
    view_is(&tab, "cameras");
    tab.click("#signout");

    // A one-time password: nothing but choosing one's own, then the console.
    sign_in(&tab, "li", &stand_in.one_time);
    view_is(&tab, "password");
    assert_eq!(tab.eval("document.getElementById('nav').hidden"), json!(true));
    fill(&tab, "#password-current", &stand_in.one_time);
    fill(&tab, "#password-new", "li's own long password");
    fill(&tab, "#password-again", "li's own password, mistyped");
    tab.click("#password-submit");
    wait_text(&tab, "#password-error", "not the same");
    fill(&tab, "#password-again", "li's own long password");
    screenshot(&tab, "console-password-en");
    tab.click("#password-submit");
    view_is(&tab, "cameras");
    wait_text(&tab, "#who", "li · supervisor");
    tab.click("#signout");

    // Five wrong passwords: locked out, the right one too, with the minutes left.
    for _ in 0..5 {
        sign_in(&tab, "sun", "a wrong password");
        tab.wait_for(
            "!document.getElementById('signin-submit').disabled && !document.getElementById('signin-error').hidden",
            "the answer",
            WAIT,
        );
    }
    sign_in(&tab, "sun", "sun's long password");
    wait_text(&tab, "#signin-error", "locked out. Try again in 15 min");
    screenshot(&tab, "console-locked-en");
    no_page_errors(&browser);
}

/// Chooses `files` in a file input, as a person picking photos would.
fn set_files(tab: &Tab, selector: &str, files: &[&Path]) {
    let root = tab.call("DOM.getDocument", json!({}))["root"]["nodeId"].clone();
    let node = tab.call("DOM.querySelector", json!({ "nodeId": root, "selector": selector }))["nodeId"].clone();
    let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    tab.call("DOM.setFileInputFiles", json!({ "nodeId": node, "files": files }));
}

// --- against the real agent -------------------------------------------------------------------

/// The bed region on the wall, above the bed, where nobody ever is (the installer's first guess).
const ON_THE_WALL: [[f64; 2]; 4] = [[0.02, 0.02], [0.30, 0.02], [0.30, 0.20], [0.02, 0.20]];
/// Where the scene's bed is (tests/common/scenes.rs).
const ON_THE_BED: [(f64, f64); 4] = [(0.12, 0.30), (0.63, 0.30), (0.63, 0.66), (0.12, 0.66)];

fn add_user(config: &Path, name: &str, role: &str, password: &str) {
    use std::io::Write as _;
    let mut child = common::vigil()
        .args(["users", "add", "--name", name, "--role", role, "--config"])
        .arg(config)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The roll-call summaries received so far: (present, absent) of each.
fn rollcalls(sub: &common::mqtt::Subscriber) -> Vec<(u64, u64)> {
    sub.payloads("/events/")
        .iter()
        .filter(|e| e["kind"] == "rollcall_summary")
        .map(|e| {
            let s = &e["details"]["summary"];
            (s["present"].as_u64().unwrap_or(0), s["absent"].as_u64().unwrap_or(0))
        })
        .collect()
}

/// The scenario in the browser against `vigil run` with a generated ward clip (a patient lying
/// in the bed throughout) and a camera whose lens is covered: sign in; draw the bed where it is on
/// ward-1's picture and save → the bed is seen occupied and the roll-call finds the patient present
/// (absent before), without a restart; take the empty reference; open the covered camera's
/// camera_tamper event, its clip plays, "Signature valid"; place a legal hold and see it in the
/// audit log; five wrong passwords lock the name out.
#[test]
fn the_console_against_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = common::mqtt::free_port();
    let broker = common::mqtt::Mosquitto::start(root);
    let sub = common::mqtt::Subscriber::start(broker.port, "vigil/v1/hosp/edge/#");
    let platform = common::agent::Platform::new(root);

    let (w, h) = (640, 360);
    let scene = Scene::new(
        w,
        h,
        8.0,
        vec![common::scenes::Event { action: common::scenes::Action::LieInBed, from: 0.0, to: 9.0 }],
    );
    let ward_clip = root.join("ward.mp4");
    scene.encode(&ward_clip, 5);
    // The empty room as the regions' empty reference, as `vigil reference --empty` took it at installation.
    std::fs::create_dir_all(root.join("state/references")).unwrap();
    scene.empty_reference().save(root.join("state/references/ward-1-empty.png")).unwrap();
    // A lens covered by a hand: one uniform colour with the sensor's noise.
    let covered_clip = root.join("covered.mp4");
    common::media::still_clip(&covered_clip, &image::RgbImage::from_pixel(w, h, image::Rgb([40, 36, 34])), 40, 2);

    let polygon = |points: &[[f64; 2]]| json!(points).to_string();
    let config = root.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "{}[http]\nlisten = \"127.0.0.1:{port}\"\nplain_http = true\n\
             [presence]\nenter_secs = 2\nleave_secs = 2\n\
             [rollcalls]\nrandom_per_day = 0\n\
             [tamper]\ncovered_secs = 2\n\
             [evidence]\npre_roll_secs = 2\npost_roll_secs = 2\n\
             [[cameras]]\nid = \"ward-1\"\nname = \"Ward 3 · room 12\"\nrole = \"ward\"\nurl = \"file://{}\"\nloop = true\n\
             keyframes_only = false\nanalysis_fps = 2\n\
             [cameras.regions]\nbed-1 = {}\n\
             [[cameras]]\nid = \"hall-1\"\nrole = \"ward\"\nurl = \"file://{}\"\nloop = true\nkeyframes_only = false\nanalysis_fps = 2\n\
             [cameras.regions]\nbed-9 = {}\n",
            common::agent::config_head(broker.port, &platform),
            ward_clip.display(),
            polygon(&ON_THE_WALL),
            covered_clip.display(),
            polygon(&ON_THE_WALL),
        ),
    )
    .unwrap();
    add_user(&config, INSTALLER.0, "installer", INSTALLER.1);
    let keys = common::vigil().args(["keys", "init", "--config"]).arg(&config).output().unwrap();
    assert!(keys.status.success(), "{}", String::from_utf8_lossy(&keys.stderr));
    let agent = common::agent::Agent::start(&config, root.join("agent.log"));
    let online = |m: &[(String, Vec<u8>, bool)]| m.iter().any(|(t, p, _)| t.ends_with("/status") && p == b"online");
    assert!(sub.wait_for(Duration::from_secs(30), online), "agent not online:\n{}", agent.log_text());
    let roster = json!({ "inpatients": [{ "patient": "p-ward-a", "camera": "ward-1", "bed": "bed-1" }] });
    sub.publish("vigil/v1/hosp/edge/cmd/roster", platform.sign("roster", &roster));
    let rollcall = |n: usize| {
        sub.publish("vigil/v1/hosp/edge/cmd/rollcall", platform.sign("rollcall", &json!({})));
        let got = sub.wait_for(Duration::from_secs(20), |_| rollcalls(&sub).len() == n);
        assert!(got, "no roll-call summary {n}: {:?}\n{}", rollcalls(&sub), agent.log_text());
        rollcalls(&sub)[n - 1]
    };

    let browser = browser(root);
    let tab = browser.desk_tab("en-US", 1280, 800);
    let url = format!("http://127.0.0.1:{port}/console/");
    tab.navigate(&url);
    sign_in(&tab, INSTALLER.0, INSTALLER.1);
    view_is(&tab, "cameras");
    tab.wait_for(
        "document.querySelector(\".camera-card[data-camera='ward-1'] img.frame\")?.naturalWidth === 640",
        "ward-1's frame",
        Duration::from_secs(30),
    );

    // The bed where the installer guessed (on the wall) is empty: the patient is absent.
    tab.click(".camera-card[data-camera='ward-1']");
    view_is(&tab, "editor");
    tab.wait_for(
        "document.querySelector(\"[data-occupancy='bed-1']\")?.textContent === 'empty'",
        "bed-1 on the wall seen empty",
        Duration::from_secs(30),
    );
    assert_eq!(rollcall(1), (0, 1), "the patient is absent while the bed is on the wall");

    // Drawn again where the bed is and saved: occupied, present, without a restart.
    // When ward-1's stream started, as the box says (the same after a live change).
    let stream_started = || {
        tab.eval("fetch('/console/api/cameras').then(r => r.json()).then(a => a.cameras.find(c => c.id === 'ward-1').stream_started_at ?? null)")
    };
    let started = stream_started();
    tab.click("button[data-delete='bed-1']");
    draw_region(&tab, "#add-bed", &ON_THE_BED);
    wait_for_element(&tab, "#editor-svg g.shape[data-region='bed-1']");
    tab.click("#save");
    wait_text(&tab, "#editor-message", "Saved and applied");
    tab.wait_for(
        "document.querySelector(\"[data-occupancy='bed-1']\")?.textContent === 'occupied'",
        "bed-1 seen occupied",
        Duration::from_secs(30),
    );
    assert_eq!(rollcall(2), (1, 0), "the patient is present in the bed drawn");
    assert_eq!(stream_started(), started, "the camera was not restarted");
    let saved = std::fs::read_to_string(&config).unwrap();
    assert!(saved.contains("0.63") && root.join("vigil.toml.previous").exists(), "{saved}");
    screenshot(&tab, "console-agent-editor-en");

    // The empty reference, from the running camera.
    tab.click("#ref-empty");
    tab.wait_for(
        "['Empty reference taken', 'The picture is uniform'].some(s => (document.getElementById('editor-message')?.innerText ?? '').includes(s))",
        "the reference's answer",
        Duration::from_secs(30),
    );
    wait_text(&tab, "#editor-message", "Empty reference taken");
    wait_text(&tab, "#editor-refs", "Empty reference taken");

    // The covered camera's tamper event: its clip plays, its signature is valid; a legal hold.
    tab.click("#nav a[data-nav='events']");
    view_is(&tab, "events");
    tab.wait_for(
        "!!document.querySelector(\".event-row[data-kind='camera_tamper']\")",
        "hall-1's camera_tamper event",
        Duration::from_secs(40),
    );
    tab.click(".event-row[data-kind='camera_tamper']");
    view_is(&tab, "evidence");
    wait_text(&tab, "#signature", "Signature valid");
    tab.eval("document.getElementById('evidence-video').play().then(() => true)");
    tab.wait_for(
        "(() => { const v = document.getElementById('evidence-video'); return !v.paused && v.currentTime > 0.2; })()",
        "the clip to play",
        WAIT,
    );
    fill(&tab, "#hold-reason", "incident 2026-0412");
    tab.click("#hold-toggle");
    wait_text(&tab, "#hold-message", "Legal hold placed");
    screenshot(&tab, "console-agent-evidence-en");
    tab.click("#nav a[data-nav='audit']");
    view_is(&tab, "audit");
    wait_text(&tab, ".audit-table", "legal hold placed");
    wait_text(&tab, ".audit-table", "incident 2026-0412");
    tab.click("#signout");

    // Five wrong passwords: locked out, the right one too.
    for _ in 0..5 {
        sign_in(&tab, INSTALLER.0, "a wrong password");
        tab.wait_for(
            "!document.getElementById('signin-submit').disabled && !document.getElementById('signin-error').hidden",
            "the answer",
            WAIT,
        );
    }
    sign_in(&tab, INSTALLER.0, INSTALLER.1);
    wait_text(&tab, "#signin-error", "locked out");
    no_page_errors(&browser);
    drop(tab);
    drop(browser);
    agent.stop();
}
