//! The ward phone page (agent/assets/ward/) in Debian's headless Chromium, driven over the DevTools
//! protocol: a phone enrols from its link, lists the ward's beds, photographs a patient with the
//! (fake) back camera at a set position, and shows the box's verdict; offline, the capture waits in
//! the queue and is sent with its original time when the network is back; a physician's phone checks
//! in with the front camera; the language follows the phone and switches.
//!
//! The page is served by the real `vigil::http::assets::router()`; the API behind it is a small box in
//! this file that follows docs/ward-phones.md's protocol with the real types (`UploadMeta`, `Answer`,
//! `WardView`) and verifies the page's real ECDSA signatures with ring, so the page's keys, hashing and
//! signing are tested for real. Its verdicts are fixed by patient (the checks are tests/checks.rs's).
//!
//! Screenshots at phone size go to docs/screenshots/ward-*.png.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use vigil::phones::protocol::{self, UploadMeta};
use vigil::phones::report::{Check, CheckName, Mode, Position};
use vigil::phones::service::{Answer, Inpatient, WardView};

use common::cdp::{self, Browser, Tab};
use common::ward_page::{
    self, WAIT, open_bed, queued_captured_at, set_language, spy_on_camera, take_photo, verdict, view_is, wait_text,
};

/// The box's verdict for this patient is a rejection (the others are verified).
const REJECTED_PATIENT: &str = "p-2002";
/// The DER header of a P-256 `id-ecPublicKey` SubjectPublicKeyInfo, before the 65-byte point.
const SPKI_P256_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const SKEW: Duration = Duration::from_secs(60);

// --- the box's side, as the protocol says -------------------------------------------------------

#[derive(Clone)]
struct Enrolled {
    id: String,
    ward: String,
    name: String,
    mode: Mode,
    physician: Option<String>,
}

struct Received {
    phone: String,
    meta: UploadMeta,
    content_type: String,
    body: Vec<u8>,
    received_at: SystemTime,
    answer: Answer,
}

#[derive(Default)]
struct BoxState {
    /// token → (phone, used)
    links: HashMap<String, (Enrolled, bool)>,
    /// phone id → (phone, SPKI)
    phones: HashMap<String, (Enrolled, Vec<u8>)>,
    uploads: Vec<Received>,
    ward_views: usize,
    /// Answer check-ins 503 busy (with Retry-After), as a box whose check workers are all taken.
    busy: bool,
    /// `[phones] skew_secs` for judging a capture late; None: [`SKEW`].
    late_after: Option<Duration>,
}

type Shared = Arc<Mutex<BoxState>>;

struct PhoneBox {
    base: String,
    state: Shared,
    _runtime: tokio::runtime::Runtime,
}

impl PhoneBox {
    fn start() -> PhoneBox {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let state = Shared::default();
        let app = axum::Router::new()
            .route("/api/phones/enrol", post(enrol))
            .route("/api/phones/ward", get(ward))
            .route("/api/phones/checkins", post(checkin))
            .with_state(state.clone())
            .merge(vigil::http::assets::router());
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        PhoneBox { base: format!("http://{addr}"), state, _runtime: runtime }
    }

    /// A one-time enrolment link, as `vigil phones add` prints it.
    fn link(&self, name: &str, mode: Mode, physician: Option<&str>) -> String {
        let token = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes().repeat(2));
        let id = format!("ph-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let phone = Enrolled { id, ward: "w5".into(), name: name.into(), mode, physician: physician.map(Into::into) };
        self.state.lock().unwrap().links.insert(token.clone(), (phone, false));
        format!("{}/ward/#enrol={token}", self.base)
    }

    fn uploads(&self) -> usize {
        self.state.lock().unwrap().uploads.len()
    }

    fn with_upload<T>(&self, index: usize, f: impl FnOnce(&Received) -> T) -> T {
        f(&self.state.lock().unwrap().uploads[index])
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": { "code": code, "message": message } }))).into_response()
}

fn verify(spki: &[u8], message: &[u8], signature: &str) -> bool {
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else { return false };
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &spki[SPKI_P256_PREFIX.len()..])
        .verify(message, &signature)
        .is_ok()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn enrol(State(state): State<Shared>, Json(request): Json<Value>) -> Response {
    let (Some(token), Some(key)) = (request["token"].as_str(), request["public_key"].as_str()) else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "token and public_key are required");
    };
    let Ok(spki) = STANDARD.decode(key) else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "public_key is not base64");
    };
    if spki.len() != 91 || spki[..26] != SPKI_P256_PREFIX || spki[26] != 4 {
        return error(StatusCode::BAD_REQUEST, "bad_request", "public_key is not a P-256 SPKI");
    }
    let mut state = state.lock().unwrap();
    let Some((phone, used)) = state.links.get_mut(token) else {
        return error(StatusCode::NOT_FOUND, "unknown_token", "no such enrolment link");
    };
    if *used {
        return error(StatusCode::GONE, "token_used", "this enrolment link was used already");
    }
    *used = true;
    let phone = phone.clone();
    state.phones.insert(phone.id.clone(), (phone.clone(), spki));
    let mut answer = json!({ "id": phone.id, "ward": phone.ward, "name": phone.name, "mode": phone.mode });
    if let Some(physician) = &phone.physician {
        answer["physician"] = json!(physician);
    }
    Json(json!({ "phone": answer })).into_response()
}

async fn ward(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let mut state = state.lock().unwrap();
    let (Some(id), Some(time), Some(signature)) = (
        header(&headers, protocol::HEADER_PHONE),
        header(&headers, protocol::HEADER_TIME),
        header(&headers, protocol::HEADER_SIGNATURE),
    ) else {
        return error(StatusCode::UNAUTHORIZED, "bad_signature", "signed headers missing");
    };
    let Some((phone, spki)) = state.phones.get(id).cloned() else {
        return error(StatusCode::UNAUTHORIZED, "unknown_phone", "no such phone");
    };
    let at = humantime::parse_rfc3339_weak(time).expect("X-Vigil-Time is RFC 3339");
    let now = SystemTime::now();
    assert!(
        now.duration_since(at).or_else(|e| Ok::<_, ()>(e.duration())).unwrap() < SKEW,
        "X-Vigil-Time {time} is not now"
    );
    if !verify(&spki, &protocol::get_message("/api/phones/ward", time), signature) {
        return error(StatusCode::UNAUTHORIZED, "bad_signature", "the signature does not verify");
    }
    state.ward_views += 1;
    let inpatients = [("p-1001", "12"), (REJECTED_PATIENT, "14"), ("p-1003", "15A")]
        .map(|(patient, bed)| Inpatient { patient: patient.into(), bed: bed.into(), camera: format!("cam-{bed}") })
        .to_vec();
    Json(WardView {
        phone: phone.id,
        phone_name: phone.name,
        mode: phone.mode,
        physician: phone.physician,
        ward: phone.ward,
        ward_name: "Ward 5 (internal medicine)".into(),
        inpatients: if phone.mode == Mode::Bedside { inpatients } else { Vec::new() },
    })
    .into_response()
}

async fn checkin(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let received_at = SystemTime::now();
    let mut state = state.lock().unwrap();
    if state.busy {
        let mut response = error(StatusCode::SERVICE_UNAVAILABLE, "busy", "every check worker is busy");
        response.headers_mut().insert("retry-after", "1".parse().unwrap());
        return response;
    }
    let (Some(id), Some(meta_header), Some(signature)) = (
        header(&headers, protocol::HEADER_PHONE),
        header(&headers, protocol::HEADER_META),
        header(&headers, protocol::HEADER_SIGNATURE),
    ) else {
        return error(StatusCode::UNAUTHORIZED, "bad_signature", "signed headers missing");
    };
    let Some((phone, spki)) = state.phones.get(id).cloned() else {
        return error(StatusCode::UNAUTHORIZED, "unknown_phone", "no such phone");
    };
    if !verify(&spki, &protocol::upload_message(meta_header), signature) {
        return error(StatusCode::UNAUTHORIZED, "bad_signature", "the signature does not verify");
    }
    // The real type, with its deny_unknown_fields: the page sends exactly what the box parses.
    let meta: UploadMeta = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(meta_header).expect("meta is base64url"))
        .unwrap_or_else(|e| panic!("the page's X-Vigil-Meta does not parse as UploadMeta: {e}"));
    if vigil::hashing::sha256_hex(&body) != meta.photo_sha256 {
        return error(StatusCode::BAD_REQUEST, "photo_hash_mismatch", "the body is not the photo that was signed");
    }
    if let Some(earlier) = state.uploads.iter().find(|u| u.phone == phone.id && u.meta.capture_id == meta.capture_id) {
        let answer = Answer { repeated: true, ..earlier.answer.clone() };
        return Json(answer).into_response();
    }
    let captured_at = humantime::parse_rfc3339_weak(&meta.captured_at).expect("captured_at is RFC 3339");
    let late = received_at.duration_since(captured_at).unwrap_or_default() > state.late_after.unwrap_or(SKEW);
    let mut checks = vec![Check::passed(CheckName::Signature, "registered_phone", "signed by the phone")];
    if meta.position.is_none() {
        checks.push(Check::failed(CheckName::Position, "no_position", "the phone sent no position"));
    } else if meta.patient.as_deref() == Some(REJECTED_PATIENT) {
        checks.push(Check::failed(CheckName::Geofence, "outside_geofence", "84 m outside the ward"));
        checks.push(Check::failed(CheckName::Face, "not_the_claimed_person", "distance 0.712"));
        checks.push(Check::failed(CheckName::BedCamera, "bed_empty", "the bed camera saw the bed empty"));
        checks.push(Check::failed(
            CheckName::Replay,
            "a_reason_the_page_does_not_know",
            "An English sentence from the box.",
        ));
    } else {
        checks.push(Check::passed(CheckName::Geofence, "inside", "inside the ward"));
        checks.push(Check::passed(CheckName::Face, "matches", "distance 0.312"));
    }
    let verified = checks.iter().all(|c| c.outcome != vigil::phones::report::Outcome::Failed);
    let answer = Answer {
        capture_id: meta.capture_id,
        event_id: uuid::Uuid::now_v7(),
        verdict: if verified { "verified" } else { "rejected" },
        late,
        repeated: false,
        checks,
    };
    state.uploads.push(Received {
        phone: phone.id,
        meta,
        content_type: header(&headers, "content-type").unwrap_or_default().to_owned(),
        body: body.to_vec(),
        received_at,
        answer: answer.clone(),
    });
    Json(answer).into_response()
}

// --- the phone's side ----------------------------------------------------------------------------

fn screenshot(tab: &Tab, name: &str) {
    ward_page::screenshot(tab, &format!("ward-{name}"));
}

/// The fake camera: a registry face photo, portrait, as a phone held upright sees a patient.
fn fake_video(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("camera.y4m");
    cdp::write_y4m(&ward_page::portrait_frame("obama.jpg"), &path);
    path
}

/// Resolved to 127.0.0.1 by the browser only; plain HTTP to it is not a secure context (no WebCrypto).
const INSECURE_HOST: &str = "ward-box.test";

const LAT: f64 = 31.230_416;
const LON: f64 = 121.473_701;
const ACCURACY_M: f64 = 12.0;

/// Enrols a phone from its link in `tab` and waits for the "registered" card.
fn enrol_from_link(tab: &Tab, phone_box: &PhoneBox, link: &str) {
    ward_page::enrol_from_link(tab, &phone_box.base, link, (LAT, LON, ACCURACY_M));
}

#[test]
fn ward_phones_enrol_photograph_queue_offline_and_check_in() {
    let dir = tempfile::tempdir().unwrap();
    let phone_box = PhoneBox::start();
    let browser = Browser::start(&cdp::Options {
        fake_video: fake_video(dir.path()),
        // A name that is not loopback: the box reached over plain HTTP on the network, not a secure context.
        extra_args: vec![format!("--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1")],
    });

    // --- a ward assistant's phone, in English --------------------------------------------------
    let tab = browser.phone_tab("en-US");
    let link = phone_box.link("Assistant Li", Mode::Bedside, None);
    enrol_from_link(&tab, &phone_box, &link);
    assert_eq!(tab.eval("document.documentElement.lang"), json!("en"));
    assert!(tab.text("#message-body").contains("Ward: Ward 5 (internal medicine)"), "{}", tab.text("#message-body"));
    screenshot(&tab, "enrolled-en");

    // The private key is a non-extractable CryptoKey kept in IndexedDB; its public half is the one
    // the box registered.
    let keys = tab.eval(
        "(async () => { const s = await import('/ward/store.js'); const k = await s.get('keys');
           let exported = 'exported';
           try { await crypto.subtle.exportKey('pkcs8', k.privateKey); } catch (e) { exported = e.name; }
           const spki = new Uint8Array(await crypto.subtle.exportKey('spki', k.publicKey));
           return { extractable: k.privateKey.extractable, type: k.privateKey.constructor.name, exported,
                    spki: btoa(String.fromCharCode(...spki)) }; })()",
    );
    assert_eq!(keys["extractable"], json!(false));
    assert_eq!(keys["type"], json!("CryptoKey"));
    assert_eq!(keys["exported"], json!("InvalidAccessError"), "the private key could be exported");
    let registered = phone_box.state.lock().unwrap().phones.values().next().unwrap().1.clone();
    assert_eq!(STANDARD.decode(keys["spki"].as_str().unwrap()).unwrap(), registered);

    // The service worker keeps the page's shell for opening without network.
    let cached = tab.eval(
        "(async () => { await navigator.serviceWorker.ready;
           for (let i = 0; i < 50; i++) { if (await caches.match('/ward/app.js')) return true;
             await new Promise(r => setTimeout(r, 100)); } return false; })()",
    );
    assert_eq!(cached, json!(true), "the service worker did not cache the page");

    // --- the bed list, from a signed GET ----------------------------------------------------------
    tab.click("#message-action");
    view_is(&tab, "beds");
    assert_eq!(tab.eval("document.querySelectorAll('button.bed').length"), json!(3));
    assert!(tab.text("#beds").contains("Bed 15A"), "{}", tab.text("#beds"));
    assert!(tab.text("#who").contains("Ward 5 (internal medicine)"), "{}", tab.text("#who"));
    screenshot(&tab, "beds-en");

    // --- a verified bedside photo -------------------------------------------------------------------
    open_bed(&tab, "p-1001");
    assert!(tab.text("#position").contains("12 m"), "{}", tab.text("#position"));
    screenshot(&tab, "camera-en");
    let (before, after) = take_photo(&tab);
    view_is(&tab, "verdict");
    assert_eq!(verdict(&tab), "verified");
    assert!(tab.text("#verdict-title").contains("Accepted"), "{}", tab.text("#verdict-title"));
    assert_eq!(phone_box.uploads(), 1);
    phone_box.with_upload(0, |upload| {
        assert_eq!(upload.meta.mode, Mode::Bedside);
        assert_eq!(upload.meta.patient.as_deref(), Some("p-1001"));
        assert_eq!(upload.meta.position, Some(Position { lat: LAT, lon: LON, accuracy_m: ACCURACY_M }));
        let captured = humantime::parse_rfc3339_weak(&upload.meta.captured_at).unwrap();
        // JavaScript's clock has millisecond resolution.
        assert!(
            captured + Duration::from_millis(1) >= before && captured <= after,
            "captured_at {}",
            upload.meta.captured_at
        );
        assert_eq!(upload.content_type, "image/jpeg");
        assert_eq!(upload.meta.photo_sha256, vigil::hashing::sha256_hex(&upload.body));
        let photo = image::load_from_memory_with_format(&upload.body, image::ImageFormat::Jpeg).expect("a JPEG");
        assert!(photo.width() >= 480 && photo.height() >= 640, "{}×{}", photo.width(), photo.height());
        assert!(!upload.answer.late);
    });
    screenshot(&tab, "verdict-verified-en");

    // --- a rejected one: every failed check in words --------------------------------------------
    tab.click("#verdict-next");
    view_is(&tab, "beds");
    open_bed(&tab, REJECTED_PATIENT);
    take_photo(&tab);
    view_is(&tab, "verdict");
    assert_eq!(verdict(&tab), "rejected");
    let reasons: Vec<String> = serde_json::from_value(
        tab.eval("[...document.querySelectorAll('#verdict-reasons li')].map(li => li.textContent)"),
    )
    .unwrap();
    assert_eq!(
        reasons,
        [
            "The photo was not taken on the ward.",
            "The face does not match patient p-2002. Check the bed and the patient.",
            "The ward camera saw bed 14 empty at that time.",
            // a reason this page does not know yet: the box's own sentence
            "An English sentence from the box.",
        ]
    );
    screenshot(&tab, "verdict-rejected-en");
    // "Take the photo again" reopens the camera for the same bed.
    tab.click("#verdict-retake");
    view_is(&tab, "camera");
    assert_eq!(tab.text("#camera-title"), "Bed 14 · p-2002");
    tab.click("#camera-back");
    view_is(&tab, "beds");

    // --- offline: the capture waits on the phone with its own time and position ---------------------
    tab.set_offline(true);
    tab.wait_for("navigator.onLine === false", "the phone to be offline", WAIT);
    open_bed(&tab, "p-1003");
    take_photo(&tab);
    view_is(&tab, "message");
    assert_eq!(tab.text("#message-title"), "Saved on this phone");
    tab.wait_for("document.getElementById('queue').dataset.count === '1'", "the queue to show 1", WAIT);
    wait_text(&tab, "#queue-title", "1 waiting to send");
    assert!(tab.text("#queue-list").contains("Bed 15A · p-1003"), "{}", tab.text("#queue-list"));
    let queued = queued_captured_at(&tab);
    assert_eq!(queued.len(), 1);
    assert_eq!(phone_box.uploads(), 2, "an upload arrived while offline");
    screenshot(&tab, "pending-en");

    // The language switch re-renders what is on screen, the queue included.
    set_language(&tab, "zh-CN");
    wait_text(&tab, "#queue-title", "1 条待发送");
    assert_eq!(tab.text("#message-title"), "已保存在手机上");
    assert_eq!(tab.text("#title"), "病区手机");
    screenshot(&tab, "pending-zh");

    // Reopened without network: the page comes from the service worker's cache, the beds from the
    // saved list, the capture is still queued.
    tab.reload();
    view_is(&tab, "beds");
    assert_eq!(
        tab.eval("navigator.serviceWorker.controller !== null"),
        json!(true),
        "not opened by the service worker"
    );
    assert_eq!(tab.eval("document.querySelectorAll('button.bed').length"), json!(3));
    assert!(!tab.text("#beds-note").is_empty(), "no word that the list is the saved one");
    tab.wait_for("document.getElementById('queue').dataset.count === '1'", "the queue to show 1 after reopening", WAIT);
    screenshot(&tab, "offline-beds-zh");

    // Back online: sent by itself, with the time it was taken. (A box with no skew window judges it
    // late: it was taken before it was sent, which is what the page shows.)
    phone_box.state.lock().unwrap().late_after = Some(Duration::ZERO);
    let back_online = SystemTime::now();
    tab.set_offline(false);
    tab.wait_for("document.getElementById('queue').hidden === true", "the queue to empty", Duration::from_secs(40));
    assert_eq!(phone_box.uploads(), 3);
    phone_box.with_upload(2, |upload| {
        assert_eq!(upload.meta.captured_at, queued[0], "the queued capture was re-stamped");
        assert_eq!(upload.meta.patient.as_deref(), Some("p-1003"));
        assert_eq!(upload.meta.position, Some(Position { lat: LAT, lon: LON, accuracy_m: ACCURACY_M }));
        assert!(humantime::parse_rfc3339_weak(&upload.meta.captured_at).unwrap() < back_online);
        assert!(upload.received_at >= back_online);
    });
    assert!(tab.text("#results-list").contains("15A"), "{}", tab.text("#results-list"));
    tab.wait_for("document.getElementById('beds-note').hidden", "the current list to replace the saved one", WAIT);
    phone_box.state.lock().unwrap().late_after = None;
    // Its verdict, from the recent results: late, with the time it was taken.
    tab.click("#results-list li");
    view_is(&tab, "verdict");
    assert!(tab.text("#verdict-who").contains("15A 床"), "{}", tab.text("#verdict-who"));
    assert!(tab.text("#verdict-note").starts_with("延迟发送"), "{}", tab.text("#verdict-note"));
    screenshot(&tab, "verdict-late-zh");
    tab.click("#verdict-next");

    // --- the rest in Chinese ---------------------------------------------------------------------------
    view_is(&tab, "beds");
    screenshot(&tab, "beds-zh");
    open_bed(&tab, "p-1001");
    assert!(tab.text("#camera-title").contains("12 床"), "{}", tab.text("#camera-title"));
    screenshot(&tab, "camera-zh");
    take_photo(&tab);
    view_is(&tab, "verdict");
    assert_eq!(verdict(&tab), "verified");
    assert!(tab.text("#verdict-title").contains("已通过"));
    screenshot(&tab, "verdict-verified-zh");
    tab.click("#verdict-next");
    view_is(&tab, "beds");
    open_bed(&tab, REJECTED_PATIENT);
    take_photo(&tab);
    view_is(&tab, "verdict");
    assert_eq!(verdict(&tab), "rejected");
    assert!(tab.text("#verdict-reasons").contains("照片不是在本病区内拍摄的。"), "{}", tab.text("#verdict-reasons"));
    screenshot(&tab, "verdict-rejected-zh");
    assert_eq!(phone_box.uploads(), 5);

    // A busy box (503 + Retry-After) keeps the capture queued; "Send now" sends it once it is free.
    phone_box.state.lock().unwrap().busy = true;
    tab.click("#verdict-next");
    view_is(&tab, "beds");
    open_bed(&tab, "p-1003");
    take_photo(&tab);
    view_is(&tab, "message");
    assert!(tab.text("#message-body").contains("病区服务器正忙"), "{}", tab.text("#message-body"));
    wait_text(&tab, "#queue-title", "1 条待发送");
    assert_eq!(phone_box.uploads(), 5);
    phone_box.state.lock().unwrap().busy = false;
    tab.click("#queue-send");
    tab.wait_for("document.getElementById('queue').hidden === true", "the queue to empty", WAIT);
    assert_eq!(phone_box.uploads(), 6);

    // A phone the box no longer knows (401): the refusal is shown and the capture leaves the queue
    // (sending it again would not change the answer).
    let forgotten = phone_box.with_upload(0, |upload| upload.phone.clone());
    phone_box.state.lock().unwrap().phones.remove(&forgotten);
    tab.click("#message-action");
    view_is(&tab, "beds");
    open_bed(&tab, "p-1001");
    take_photo(&tab);
    view_is(&tab, "verdict");
    assert_eq!(verdict(&tab), "refused");
    assert_eq!(tab.eval("document.getElementById('verdict-retake').hidden"), json!(true));
    assert!(tab.text("#verdict-body").contains("病区服务器已不认识本手机"), "{}", tab.text("#verdict-body"));
    tab.wait_for(
        "document.getElementById('queue').dataset.count === '0'",
        "the refused capture to leave the queue",
        WAIT,
    );
    screenshot(&tab, "refused-zh");
    assert_eq!(phone_box.uploads(), 6);

    // --- a phone set to Chinese opens in Chinese; a used link says so ---------------------------------
    let zh = browser.phone_tab("zh-CN");
    let link = phone_box.link("护工 王", Mode::Bedside, None);
    enrol_from_link(&zh, &phone_box, &link);
    assert_eq!(zh.eval("document.documentElement.lang"), json!("zh-CN"));
    assert_eq!(zh.text("#message-title"), "本手机已登记");
    screenshot(&zh, "enrolled-zh");
    zh.navigate(&link);
    zh.wait_for("document.getElementById('message-card').classList.contains('bad')", "the used-link message", WAIT);
    assert!(zh.text("#message-body").contains("该登记链接已被使用"), "{}", zh.text("#message-body"));
    screenshot(&zh, "link-used-zh");
    set_language(&zh, "en");
    assert!(zh.text("#message-body").contains("already been used"), "{}", zh.text("#message-body"));
    // Registered before: it goes on working with its first key.
    zh.click("#message-action");
    view_is(&zh, "beds");
    // Location refused: the camera view says so, the photo goes without a position and the box's
    // `no_position` comes back in words.
    zh.call(
        "Browser.setPermission",
        json!({ "permission": { "name": "geolocation" }, "setting": "denied", "origin": phone_box.base,
                "browserContextId": zh.context }),
    );
    zh.click("button.bed[data-patient='p-1001']");
    view_is(&zh, "camera");
    zh.wait_for(
        "!document.getElementById('shutter').disabled && document.getElementById('position').dataset.state === 'denied'",
        "the camera and the refused position",
        WAIT,
    );
    assert!(zh.text("#position").starts_with("Location is blocked"), "{}", zh.text("#position"));
    screenshot(&zh, "camera-no-position-en");
    let uploads = phone_box.uploads();
    take_photo(&zh);
    view_is(&zh, "verdict");
    assert_eq!(verdict(&zh), "rejected");
    assert!(zh.text("#verdict-reasons").contains("The phone gave no position."), "{}", zh.text("#verdict-reasons"));
    phone_box.with_upload(uploads, |upload| assert_eq!(upload.meta.position, None));

    // --- a physician's phone: front camera, no bed list, one Check in button ------------------------
    let doctor = browser.phone_tab("en-GB");
    let link = phone_box.link("Dr Zhang", Mode::Physician, Some("d-0042"));
    enrol_from_link(&doctor, &phone_box, &link);
    assert!(doctor.text("#message-body").contains("check in with your own face"), "{}", doctor.text("#message-body"));
    spy_on_camera(&doctor);
    doctor.click("#message-action");
    view_is(&doctor, "camera");
    doctor.wait_for(
        "document.getElementById('preview').videoWidth > 0 && !document.getElementById('shutter').disabled
         && document.getElementById('position').dataset.state === 'ok'",
        "the front camera and the position",
        WAIT,
    );
    assert_eq!(doctor.eval("window.__facing"), json!("user"), "a physician checks in with the front camera");
    assert_eq!(doctor.text("#shutter"), "Check in");
    assert_eq!(doctor.eval("document.querySelectorAll('button.bed').length"), json!(0));
    assert_eq!(doctor.eval("document.getElementById('camera-back').hidden"), json!(true));
    screenshot(&doctor, "physician-en");
    let uploads = phone_box.uploads();
    take_photo(&doctor);
    view_is(&doctor, "verdict");
    assert_eq!(verdict(&doctor), "verified");
    phone_box.with_upload(uploads, |upload| {
        assert_eq!(upload.meta.mode, Mode::Physician);
        assert_eq!(upload.meta.patient, None);
    });
    screenshot(&doctor, "physician-verdict-en");

    // --- opened over plain HTTP on the network: no WebCrypto, and the page says what to do --------------
    let insecure = browser.phone_tab("en-US");
    let link = phone_box.link("Assistant Wu", Mode::Bedside, None);
    let port = phone_box.base.rsplit(':').next().unwrap();
    insecure.navigate(&link.replace(&phone_box.base, &format!("http://{INSECURE_HOST}:{port}")));
    insecure.wait_for("document.body.dataset.view === 'message'", "the page to open", WAIT);
    assert_eq!(insecure.eval("isSecureContext"), json!(false));
    assert!(
        insecure.text("#message-body").contains("secure address (it starts with https://)"),
        "{}",
        insecure.text("#message-body")
    );
    screenshot(&insecure, "insecure-en");

    // No uncaught exception, console error or CSP violation on any page (failed requests while
    // offline and the used link's 410 are the browser's own notes, expected).
    let errors: Vec<_> =
        browser.page_errors().into_iter().filter(|e| !e.text.contains("Failed to load resource")).collect();
    assert!(errors.is_empty(), "page errors: {errors:#?}");
}
