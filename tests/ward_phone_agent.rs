//! The ward phone page against the real box: a `vigil run` with its HTTPS server (its self-signed
//! certificate), a ward camera playing a generated clip of the ward with bed 12 occupied (its empty
//! reference taken with `vigil reference --empty`), the roster from `[roster] file`, a patient enrolled
//! from a registry photo, mosquitto and a platform subscriber; Debian's headless Chromium whose fake
//! camera shows another registry photo of the same person, at a position set inside the ward's
//! geofence.
//!
//! The phone enrols from the link `vigil phones add` prints, checks in the patient of bed 12 → the
//! page shows the verdict, `bedside_check_verified` and its `evidence_ready` arrive on mosquitto; offline,
//! a second photo (another frame, the phone moved a little) waits on the phone, and once the network
//! is back it is sent and judged by its original capture time; a photo taken outside the geofence of
//! the wrong patient for bed 14 (empty) is rejected with the box's real reasons in words; a physician's
//! phone checking in from outside the ward with someone else's face is told so in its own words
//! (`physician_checkin`, not verified); the bedside phone revoked with `vigil phones revoke` while the
//! agent runs gets `phone_revoked` in words and no retake. Every bundle verifies with `vigil verify`.
//! Screenshots of the real verdicts (en, zh-CN) go to docs/screenshots/ward-agent-*.png.
//!
//! A second test checks the page has words, in both languages, for every reason a failed check can
//! give (read from the checks' sources).

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use image::RgbImage;
use serde_json::{Value, json};

use common::agent::{Agent, Platform, kinds};
use common::cdp::{self, Browser, Tab};
use common::mqtt::{Mosquitto, Subscriber, free_port};
use common::ward_page::{
    self, WAIT, open_bed, queued_captured_at, set_camera_frame, set_language, take_photo, verdict, verdict_reasons,
    view_is, wait_text,
};

/// The ward's geofence: a circle of `RADIUS_M` around this point.
const LAT: f64 = 31.224_361;
const LON: f64 = 121.469_170;
const RADIUS_M: f64 = 60.0;
const ACCURACY_M: f64 = 12.0;
/// About 330 m north of the ward: outside its geofence by far more than the accuracy.
const OUTSIDE_LAT: f64 = LAT + 0.003;
/// `[phones] near_duplicate_bits`: the frames the camera shows differ by more, so none is a replay.
const NEAR_DUPLICATE_BITS: u32 = 10;

// --- the ward the camera sees (as tests/presence.rs draws it) ---------------------------------------

const W: u32 = 1280;
const H: u32 = 720;

fn fill(img: &mut RgbImage, x0: u32, y0: u32, w: u32, h: u32, color: [u8; 3]) {
    for y in y0..(y0 + h).min(H) {
        for x in x0..(x0 + w).min(W) {
            img.put_pixel(x, y, image::Rgb(color));
        }
    }
}

/// Bed 12 (left) and bed 14 (right) in a plain room; `occupied` puts the patient lying in bed 12.
fn ward(occupied: bool) -> RgbImage {
    let mut img = RgbImage::from_fn(W, H, |x, y| {
        let shade = (x / 40 + y / 40) % 2 * 4;
        if y < H * 55 / 100 {
            image::Rgb([180 + shade as u8, 175, 160])
        } else {
            image::Rgb([120, 110 + shade as u8, 100])
        }
    });
    fill(&mut img, 100, 380, 480, 220, [200, 215, 235]);
    fill(&mut img, 700, 380, 480, 220, [200, 215, 235]);
    if occupied {
        let lying = image::imageops::rotate270(&common::face_photo("obama3.jpg"));
        let width = lying.width() * 180 / lying.height();
        let scaled = image::imageops::resize(&lying, width, 180, image::imageops::FilterType::Triangle);
        image::imageops::overlay(&mut img, &scaled, 120, 400);
    }
    img
}

fn config(root: &Path, port: u16, platform: &Platform, clip: &str, http_port: u16) -> String {
    format!(
        "{}\
         [presence]\nenter_secs = 2\nleave_secs = 10\n\
         [rollcalls]\nrandom_per_day = 0\n\
         [roster]\nfile = \"{}\"\n\
         [http]\nlisten = \"127.0.0.1:{http_port}\"\n\
         [phones]\nnear_duplicate_bits = {NEAR_DUPLICATE_BITS}\n\
         [[cameras]]\nid = \"ward3-room12\"\nrole = \"ward\"\nurl = \"file://{}\"\nloop = true\n\
         [cameras.regions]\n12 = [[0.078, 0.528], [0.453, 0.528], [0.453, 0.833], [0.078, 0.833]]\n\
         14 = [[0.547, 0.528], [0.922, 0.528], [0.922, 0.833], [0.547, 0.833]]\n\
         [[wards]]\nid = \"ward-3\"\nname = \"Ward 3 · 内科三病区\"\ncameras = [\"ward3-room12\"]\n\
         geofence = {{ center = [{LAT}, {LON}], radius_m = {RADIUS_M} }}\n",
        common::agent::config_head(port, platform),
        root.join("roster.json").display(),
        root.join(clip).display(),
    )
}

/// The link `vigil phones add` printed.
fn enrolment_link(printed: &str) -> String {
    printed
        .split_whitespace()
        .find(|w| w.starts_with("https://") && w.contains("/ward/#enrol="))
        .unwrap_or_else(|| panic!("no enrolment link in {printed:?}"))
        .to_owned()
}

fn vigil_ok(args: &[&str], config: &Path) -> String {
    let out = common::vigil().args(args).arg("--config").arg(config).output().unwrap();
    assert!(out.status.success(), "vigil {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Events of `kind` the platform received.
fn events(sub: &Subscriber, kind: &str) -> Vec<Value> {
    sub.payloads("/events/").into_iter().filter(|e| e["kind"] == kind).collect()
}

/// Waits for the `n`th event of `kind` and its `evidence_ready`; returns that event.
fn wait_event(sub: &Subscriber, agent: &Agent, kind: &str, n: usize) -> Value {
    let arrived = sub.wait_for(Duration::from_secs(30), |m| kinds(m).iter().filter(|k| *k == kind).count() >= n);
    assert!(arrived, "no {kind} #{n}: {:?}\n{}", kinds(&sub.messages.lock().unwrap()), agent.log_text());
    let event = events(sub, kind).remove(n - 1);
    let id = event["event_id"].clone();
    let ready = sub.wait_for(Duration::from_secs(30), |messages| {
        messages.iter().filter(|(topic, _, _)| topic.contains("/events/")).any(|(_, payload, _)| {
            serde_json::from_slice::<Value>(payload)
                .is_ok_and(|e| e["kind"] == "evidence_ready" && e["details"]["for_event_id"] == id)
        })
    });
    assert!(ready, "no evidence_ready for {kind} {id}\n{}", agent.log_text());
    event
}

/// Waits until the agent has decided `region` of the ward camera is `state` (`Occupied`, `Empty`): a
/// bed's occupancy is known some seconds after the camera starts (`[presence] enter_secs`,
/// `leave_secs`), and a photo taken before is judged `unknown`.
fn wait_for_region(agent: &Agent, region: &str, state: &str) {
    let line = format!("region occupancy changed camera=ward3-room12 region={region} ");
    let decided = common::mqtt::wait(Duration::from_secs(30), || {
        agent.log_text().lines().any(|l| l.contains(&line) && l.contains(&format!(" to={state} ")))
    });
    assert!(decided, "bed {region} not {state} in 30 s:\n{}", agent.log_text());
}

fn check<'a>(event: &'a Value, name: &str) -> &'a Value {
    event["details"]["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {name} check in {event}"))
}

fn screenshot(tab: &Tab, name: &str) {
    ward_page::screenshot(tab, &format!("ward-agent-{name}"));
}

#[test]
fn ward_phone_checks_in_with_the_real_agent() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();

    // The fake camera's frames: Obama (obama2.jpg; enrolled from obama.jpg), then the same photo
    // mirrored, zoomed in, zoomed in and mirrored: the same face, different pictures (no replay between
    // them; the page is given a new frame by replacing the file before it opens the camera again).
    let upright = ward_page::portrait_frame("obama2.jpg");
    let mirrored = image::imageops::flip_horizontal(&upright);
    let zoomed = image::imageops::resize(
        &image::imageops::crop_imm(&upright, 60, 80, 360, 480).to_image(),
        480,
        640,
        image::imageops::FilterType::Triangle,
    );
    let zoomed_mirrored = image::imageops::flip_horizontal(&zoomed);
    let hashes = [&upright, &mirrored, &zoomed, &zoomed_mirrored].map(vigil::phones::phash::phash);
    for (i, a) in hashes.iter().enumerate() {
        for b in &hashes[i + 1..] {
            assert!((a ^ b).count_ones() > NEAR_DUPLICATE_BITS + 4, "the camera's frames are too alike to test");
        }
    }
    let camera_file = root.join("camera.y4m");
    set_camera_frame(&upright, &camera_file);

    // The box: the ward clips, the empty reference (the install step), the roster, a patient, a phone.
    common::media::still_clip(&root.join("ward-empty.mp4"), &ward(false), 120, 3);
    common::media::still_clip(&root.join("ward.mp4"), &ward(true), 200, 3);
    let broker = Mosquitto::start(root);
    let sub = Subscriber::start(broker.port, "vigil/v1/hosp/edge/#");
    let platform = Platform::new(root);
    let http_port = free_port();
    let roster = json!({ "inpatients": [
        { "patient": "p-obama", "camera": "ward3-room12", "bed": "12" },
        { "patient": "p-biden", "camera": "ward3-room12", "bed": "14" },
    ]});
    std::fs::write(root.join("roster.json"), roster.to_string()).unwrap();
    let install = root.join("install.toml");
    std::fs::write(&install, config(root, broker.port, &platform, "ward-empty.mp4", http_port)).unwrap();
    vigil_ok(&["reference", "--empty", "--camera", "ward3-room12"], &install);
    let config_file = root.join("vigil.toml");
    std::fs::write(&config_file, config(root, broker.port, &platform, "ward.mp4", http_port)).unwrap();
    vigil_ok(&["keys", "init"], &config_file);
    common::agent::enroll(&config_file, "patient", &[("p-obama", "obama.jpg"), ("p-biden", "biden.jpg")]);
    common::agent::enroll(&config_file, "physician", &[("d-biden", "biden.jpg")]);
    let link =
        enrolment_link(&vigil_ok(&["phones", "add", "--ward", "ward-3", "--name", "Assistant Li"], &config_file));
    let origin = link.split("/ward/").next().unwrap().to_owned();
    assert_eq!(origin, format!("https://127.0.0.1:{http_port}"));

    let agent = Agent::start(&config_file, root.join("agent.log"));
    assert!(
        sub.wait_for(Duration::from_secs(30), |m| m.iter().any(|(t, p, _)| t.ends_with("/status") && p == b"online")),
        "agent not online\n{}",
        agent.log_text()
    );
    // The HTTPS server starts after MQTT: the page is opened once it listens.
    let listening =
        common::mqtt::wait(Duration::from_secs(30), || std::net::TcpStream::connect(("127.0.0.1", http_port)).is_ok());
    assert!(listening, "the HTTPS server does not listen\n{}", agent.log_text());
    let browser = Browser::start(&cdp::Options { fake_video: camera_file.clone(), extra_args: Vec::new() });

    // --- enrolment from the printed link, the ward's beds from the roster -------------------------------
    let tab = browser.phone_tab("en-US");
    ward_page::enrol_from_link(&tab, &origin, &link, (LAT, LON, ACCURACY_M));
    assert!(tab.text("#message-body").contains("Ward 3 · 内科三病区"), "{}", tab.text("#message-body"));
    tab.click("#message-action");
    view_is(&tab, "beds");
    assert_eq!(tab.eval("document.querySelectorAll('button.bed').length"), json!(2), "{}", tab.text("#beds"));
    assert!(tab.text("#beds").contains("Bed 12"), "{}", tab.text("#beds"));

    // --- bed 12: the patient, on the ward, the bed camera saw the bed taken ----------------------------
    wait_for_region(&agent, "12", "Occupied");
    open_bed(&tab, "p-obama");
    let (before, after) = take_photo(&tab);
    view_is(&tab, "verdict");
    assert_eq!(verdict(&tab), "verified", "{}\n{}", tab.text("#verdict"), agent.log_text());
    let verified = wait_event(&sub, &agent, "bedside_check_verified", 1);
    let details = &verified["details"];
    assert_eq!(
        (&details["patient"], &details["bed"], &details["ward"], &verified["camera"]),
        (&json!("p-obama"), &json!("12"), &json!("ward-3"), &json!("ward3-room12")),
        "{verified}"
    );
    assert_eq!(details["failed"], json!([]), "{verified}");
    assert_eq!(check(&verified, "face")["reason"], "matches", "{verified}");
    assert_eq!(check(&verified, "geofence")["reason"], "inside", "{verified}");
    assert_eq!(check(&verified, "bed_camera")["reason"], "occupied", "{verified}");
    let captured = humantime::parse_rfc3339_weak(details["captured_at"].as_str().unwrap()).unwrap();
    // JavaScript's clock has millisecond resolution.
    assert!(captured + Duration::from_millis(1) >= before && captured <= after, "{verified}");
    screenshot(&tab, "verified-en");
    set_language(&tab, "zh-CN");
    assert!(tab.text("#verdict-title").contains("已通过"), "{}", tab.text("#verdict-title"));
    screenshot(&tab, "verified-zh");
    set_language(&tab, "en");

    // --- offline: another photo of bed 12, a step away, waits on the phone ----------------------------
    tab.click("#verdict-next");
    view_is(&tab, "beds");
    tab.set_offline(true);
    tab.wait_for("navigator.onLine === false", "the phone to be offline", WAIT);
    set_camera_frame(&mirrored, &camera_file);
    tab.set_geolocation(LAT + 0.000_05, LON, ACCURACY_M);
    open_bed(&tab, "p-obama");
    take_photo(&tab);
    view_is(&tab, "message");
    assert_eq!(tab.text("#message-title"), "Saved on this phone");
    wait_text(&tab, "#queue-title", "1 waiting to send");
    let queued = queued_captured_at(&tab);
    assert_eq!(queued.len(), 1);
    assert_eq!(events(&sub, "bedside_check_verified").len(), 1, "a check-in arrived while offline");
    screenshot(&tab, "pending-en");
    // The phone stays offline a moment: the capture time and the send time are seconds apart.
    std::thread::sleep(Duration::from_secs(1));

    // Back online: the page sends it by itself, with the time it was taken.
    let back_online = SystemTime::now();
    tab.set_offline(false);
    tab.wait_for("document.getElementById('queue').hidden === true", "the queue to empty", Duration::from_secs(40));
    let late = wait_event(&sub, &agent, "bedside_check_verified", 2);
    let details = &late["details"];
    assert_eq!(details["captured_at"], json!(queued[0]), "the queued capture was re-stamped: {late}");
    assert!(humantime::parse_rfc3339_weak(&queued[0]).unwrap() < back_online);
    let received = humantime::parse_rfc3339_weak(details["received_at"].as_str().unwrap()).unwrap();
    assert!(received + Duration::from_millis(1) >= back_online, "{late}");
    let taken = humantime::parse_rfc3339_weak(&queued[0]).unwrap();
    assert!(received.duration_since(taken).unwrap() >= Duration::from_secs(1), "{late}");
    assert_eq!(check(&late, "replay")["reason"], "new_photo", "{late}");
    assert!(tab.text("#results-list").contains("12"), "{}", tab.text("#results-list"));

    // --- bed 14, from outside the ward, with bed 12's patient in the picture: rejected -----------------
    wait_for_region(&agent, "14", "Empty");
    set_camera_frame(&zoomed, &camera_file);
    tab.set_geolocation(OUTSIDE_LAT, LON, ACCURACY_M);
    open_bed(&tab, "p-biden");
    take_photo(&tab);
    view_is(&tab, "verdict");
    assert_eq!(verdict(&tab), "rejected", "{}", tab.text("#verdict"));
    let rejected = wait_event(&sub, &agent, "bedside_check_rejected", 1);
    let failed: Vec<String> = serde_json::from_value(rejected["details"]["failed"].clone()).unwrap();
    assert!(failed.contains(&"geofence".to_owned()) && failed.contains(&"face".to_owned()), "{rejected}");
    assert_eq!(check(&rejected, "geofence")["reason"], "outside_geofence", "{rejected}");
    assert_eq!(check(&rejected, "face")["reason"], "not_the_claimed_person", "{rejected}");
    assert_eq!(check(&rejected, "bed_camera")["reason"], "bed_empty", "{rejected}");
    // Each failed check in the page's own words, none left as the box's English sentence.
    let reasons = verdict_reasons(&tab);
    assert_eq!(reasons.len(), failed.len(), "{reasons:?} for {failed:?}");
    assert!(reasons.iter().any(|r| r.contains("m outside the ward. Take it at the patient's bed.")), "{reasons:?}");
    screenshot(&tab, "rejected-en");
    set_language(&tab, "zh-CN");
    let reasons_zh = verdict_reasons(&tab);
    assert!(reasons_zh.iter().all(|r| !r.is_ascii()), "{reasons_zh:?}");
    screenshot(&tab, "rejected-zh");

    // --- a physician's own phone: checking in from outside the ward with someone else's face -----------
    let printed =
        vigil_ok(&["phones", "add", "--ward", "ward-3", "--name", "Dr Biden", "--physician", "d-biden"], &config_file);
    set_camera_frame(&zoomed_mirrored, &camera_file);
    let doctor = browser.phone_tab("en-GB");
    ward_page::enrol_from_link(&doctor, &origin, &enrolment_link(&printed), (OUTSIDE_LAT, LON, ACCURACY_M));
    doctor.click("#message-action");
    view_is(&doctor, "camera");
    doctor.wait_for(
        "document.getElementById('preview').videoWidth > 0 && !document.getElementById('shutter').disabled
         && document.getElementById('position').dataset.state === 'ok'",
        "the front camera and the position",
        WAIT,
    );
    take_photo(&doctor);
    view_is(&doctor, "verdict");
    assert_eq!(verdict(&doctor), "rejected", "{}", doctor.text("#verdict"));
    let checkin = wait_event(&sub, &agent, "physician_checkin", 1);
    assert_eq!((&checkin["details"]["physician"], &checkin["details"]["verified"]), (&json!("d-biden"), &json!(false)));
    assert_eq!(check(&checkin, "face")["reason"], "not_the_claimed_person", "{checkin}");
    assert_eq!(check(&checkin, "geofence")["reason"], "outside_geofence", "{checkin}");
    assert_eq!(check(&checkin, "replay")["reason"], "new_photo", "{checkin}");
    // Said to the physician about their own face and position.
    let reasons = verdict_reasons(&doctor);
    assert_eq!(
        reasons,
        [
            "You were about 274 m outside the ward. Check in on the ward.",
            "The face does not match yours. Check in again with your own face."
        ],
        "{checkin}"
    );
    assert_eq!(doctor.text("#verdict-next"), "Check in again");
    screenshot(&doctor, "physician-rejected-en");
    set_language(&doctor, "zh-CN");
    assert_eq!(doctor.text("#verdict-next"), "重新签到");
    screenshot(&doctor, "physician-rejected-zh");

    // --- the bedside phone revoked (lost): its next photo is recorded, rejected, and not to be retaken ---
    let phone = verified["details"]["phone"].as_str().unwrap();
    vigil_ok(&["phones", "revoke", phone, "--reason", "lost on ward 3"], &config_file);
    tab.click("#verdict-retake");
    view_is(&tab, "camera");
    tab.wait_for(
        "document.getElementById('preview').videoWidth > 0 && !document.getElementById('shutter').disabled",
        "the camera",
        WAIT,
    );
    take_photo(&tab);
    view_is(&tab, "verdict");
    assert_eq!(verdict(&tab), "rejected", "{}", tab.text("#verdict"));
    let revoked = wait_event(&sub, &agent, "bedside_check_rejected", 2);
    assert_eq!(check(&revoked, "signature")["reason"], "phone_revoked", "{revoked}");
    assert_eq!(verdict_reasons(&tab), ["本手机已被停用。请联系护士长。"]);
    assert_eq!(tab.eval("document.getElementById('verdict-retake').hidden"), json!(true));
    screenshot(&tab, "revoked-zh");

    let errors: Vec<_> =
        browser.page_errors().into_iter().filter(|e| !e.text.contains("Failed to load resource")).collect();
    assert!(errors.is_empty(), "page errors: {errors:#?}");
    drop(browser);
    let log = agent.stop();
    assert_eq!(events(&sub, "bedside_check_verified").len(), 2, "{log}");
    common::agent::assert_evidence_verifies(&config_file, &root.join("state/evidence"));
}

/// The reasons a failed check can give, read from the checks' sources (`Check::failed(name, "reason",
/// …)`, and the image errors' `reason()`), outside their unit tests.
fn failed_reasons() -> Vec<String> {
    let mut sources: Vec<_> = std::fs::read_dir(common::repo("agent/src/phones"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    let service = common::repo("agent/src/runtime/checkins.rs");
    if service.exists() {
        sources.push(service);
    }
    let mut reasons = Vec::new();
    let literal = |text: &str| -> Option<String> {
        let text = text.trim_start().strip_prefix('"')?;
        let end = text.find('"')?;
        Some(text[..end].to_owned()).filter(|r| r.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    };
    for path in sources {
        let source = std::fs::read_to_string(&path).unwrap();
        let code = source.split("#[cfg(test)]\nmod tests").next().unwrap();
        for call in code.split("Check::failed(").skip(1) {
            // the first argument is the check's name, the second its reason
            if let Some(reason) = call.split_once(',').and_then(|(_, rest)| literal(rest)) {
                reasons.push(reason);
            }
        }
        if let Some((_, body)) = code.split_once("pub fn reason(&self) -> &'static str {") {
            let body = &body[..body.find("\n    }").unwrap()];
            reasons.extend(body.split("=>").skip(1).filter_map(literal));
        }
    }
    reasons.sort();
    reasons.dedup();
    reasons
}

#[test]
fn every_reason_the_checks_give_has_words_in_both_languages() {
    let reasons = failed_reasons();
    // A sanity check of the reading: reasons of each kind of check are there.
    for known in [
        "corrupt_image",
        "too_many_pixels",
        "no_position",
        "bad_position",
        "outside_geofence",
        "no_geofence",
        "too_old",
        "near_duplicate",
        "wrong_mode",
    ] {
        assert!(reasons.iter().any(|r| r == known), "{known} not found among {reasons:?}");
    }
    let table = std::fs::read_to_string(common::repo("agent/assets/ward/i18n.js")).unwrap();
    let (en, zh) = table.split_once("\"zh-CN\": {").expect("the zh-CN table");
    let missing: Vec<String> = reasons
        .iter()
        .flat_map(|r| {
            let key = format!("\"reason.{r}\":");
            [("en", en), ("zh-CN", zh)]
                .into_iter()
                .filter(move |(_, strings)| !strings.contains(&key))
                .map(move |(lang, _)| format!("{lang}: {r}"))
        })
        .collect();
    assert!(missing.is_empty(), "reasons the page has no words for (agent/assets/ward/i18n.js): {missing:?}");
}
