//! Driving the ward phone page (agent/assets/ward/) in a [`Tab`] as a ward assistant would: waiting
//! for a view, opening a bed's camera, pressing the shutter, reading the verdict and the queue, the
//! language switch, and phone-size screenshots into docs/screenshots/. Shared by tests/phone_page.rs
//! (a stand-in box) and tests/ward_phone_agent.rs (the real agent).
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::cdp::{self, Tab};

/// How long the page may take to reach a state (a check-in is judged by the real models).
pub const WAIT: Duration = Duration::from_secs(20);

/// A phone-size screenshot of `tab` to docs/screenshots/`name`.png.
pub fn screenshot(tab: &Tab, name: &str) {
    // Fonts and the camera frame settle a moment after the DOM does.
    std::thread::sleep(Duration::from_millis(300));
    tab.screenshot(&super::repo(&format!("docs/screenshots/{name}.png")));
}

pub fn view_is(tab: &Tab, view: &str) {
    tab.wait_for(&format!("document.body.dataset.view === '{view}'"), &format!("the {view} view"), WAIT);
}

/// A registry face photo (`face_recognition-test-images/<name>`) cropped to a 480×640 portrait, as a
/// phone held upright sees a face.
pub fn portrait_frame(name: &str) -> image::RgbImage {
    let photo = image::DynamicImage::ImageRgb8(super::face_photo(name));
    photo.resize_to_fill(480, 640, image::imageops::FilterType::Triangle).to_rgb8()
}

/// Writes `frame` as the fake camera's file at `path`, atomically (a camera opened before keeps the
/// frame it has; the next one the page opens shows this one).
pub fn set_camera_frame(frame: &image::RgbImage, path: &Path) {
    let next = path.with_extension("y4m.next");
    cdp::write_y4m(frame, &next);
    std::fs::rename(&next, path).unwrap();
}

/// Records the constraints the page asks the camera for (which camera: `facingMode`).
pub fn spy_on_camera(tab: &Tab) {
    tab.eval(
        "(() => { const md = navigator.mediaDevices; const original = md.getUserMedia.bind(md);
           md.getUserMedia = (c) => { window.__facing = c.video.facingMode; return original(c); }; return true; })()",
    );
}

/// Opens the camera for `patient`'s bed and waits until the frame and the position are there.
pub fn open_bed(tab: &Tab, patient: &str) {
    spy_on_camera(tab);
    tab.click(&format!("button.bed[data-patient='{patient}']"));
    view_is(tab, "camera");
    tab.wait_for(
        "document.getElementById('preview').videoWidth > 0 && !document.getElementById('shutter').disabled
         && document.getElementById('position').dataset.state === 'ok'",
        "the camera frame and the position",
        WAIT,
    );
    assert_eq!(tab.eval("window.__facing"), json!("environment"), "bedside photos use the back camera");
}

/// Presses the shutter and waits for the verdict or the saved-on-the-phone message; returns the
/// instants just before and after.
pub fn take_photo(tab: &Tab) -> (SystemTime, SystemTime) {
    let before = SystemTime::now();
    tab.click("#shutter");
    tab.wait_for(
        "document.body.dataset.view === 'verdict' || document.getElementById('message-title').textContent !== ''
           && document.body.dataset.view === 'message' && !document.getElementById('message-action').hidden",
        "the verdict or the saved-offline message",
        WAIT,
    );
    (before, SystemTime::now())
}

/// The verdict on screen: `verified`, `rejected` or `refused`.
pub fn verdict(tab: &Tab) -> String {
    tab.eval("document.getElementById('verdict').dataset.verdict").as_str().unwrap_or_default().to_owned()
}

/// The reasons listed under a rejected verdict, as shown.
pub fn verdict_reasons(tab: &Tab) -> Vec<String> {
    serde_json::from_value(tab.eval("[...document.querySelectorAll('#verdict-reasons li')].map(li => li.textContent)"))
        .unwrap()
}

/// `captured_at` of every capture waiting in the phone's queue (IndexedDB).
pub fn queued_captured_at(tab: &Tab) -> Vec<String> {
    serde_json::from_value(tab.eval(
        "(async () => { const s = await import('/ward/store.js'); return (await s.queued()).map(i => i.meta.captured_at); })()",
    ))
    .unwrap()
}

/// Waits for `selector`'s text (the panels re-render after reading IndexedDB).
pub fn wait_text(tab: &Tab, selector: &str, expected: &str) {
    tab.wait_for(
        &format!("document.querySelector({selector:?})?.innerText === {expected:?}"),
        &format!("{selector} to read {expected:?} (it reads {:?})", tab.text(selector)),
        WAIT,
    );
}

/// Switches the page to `lang` (`en` or `zh-CN`) with its language button, if it is not already.
pub fn set_language(tab: &Tab, lang: &str) {
    if tab.eval("document.documentElement.lang") != json!(lang) {
        tab.click("#lang");
    }
    assert_eq!(tab.eval("document.documentElement.lang"), json!(lang));
}

/// Lets `origin` use the camera and the position, sets the position, opens the enrolment `link` and
/// waits for the "registered" card.
pub fn enrol_from_link(tab: &Tab, origin: &str, link: &str, position: (f64, f64, f64)) {
    tab.grant(origin, &["geolocation", "videoCapture"]);
    tab.set_geolocation(position.0, position.1, position.2);
    tab.navigate(link);
    tab.wait_for(
        "document.body.dataset.view === 'message' && document.getElementById('message-card').classList.contains('ok')",
        "the phone to be registered",
        WAIT,
    );
    assert_eq!(tab.eval("location.hash"), json!(""), "the token stays in the address bar");
}
