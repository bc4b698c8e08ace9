//! The retained health message of a real `vigil run` on a real mosquitto: it arrives on
//! `vigil/v1/hosp/edge/health`, retained, and validates against docs/contract/health.schema.json; when
//! a camera goes offline (its clip ends and the test removes the file, so the retries fail) a new one
//! says so at once, without waiting for the minute; a subscriber that comes later gets the last one
//! from the broker; a clean stop leaves `status` `offline` beside it.

mod common;

use std::path::Path;
use std::time::Duration;

use common::agent::{Agent, Platform};
use common::mqtt::{Mosquitto, Subscriber};
use serde_json::Value;

const HEALTH: &str = "vigil/v1/hosp/edge/health";

/// The health messages received, in order, with their retained flag.
fn healths(sub: &Subscriber) -> Vec<(Value, bool)> {
    healths_in(&sub.messages.lock().unwrap())
}

/// The same, of the messages [`Subscriber::wait_for`] hands over (it holds their lock).
fn healths_in(messages: &[(String, Vec<u8>, bool)]) -> Vec<(Value, bool)> {
    messages
        .iter()
        .filter(|(t, _, _)| t == HEALTH)
        .map(|(_, p, retained)| (serde_json::from_slice(p).expect("health is JSON"), *retained))
        .collect()
}

fn camera<'a>(health: &'a Value, id: &str) -> &'a Value {
    health["cameras"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("{id} in {health}"))
}

/// The payloads against docs/contract/health.schema.json, by the contract test's validator.
fn assert_valid(payloads: &[Value]) {
    let cases: Vec<Value> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| serde_json::json!({"label": format!("health #{i}"), "schema": "health.schema.json", "instance": p}))
        .collect();
    let out = common::validate_against_contract(&cases);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "health messages fail the schema:\n{stdout}\n{stderr}");
}

fn config(root: &Path, port: u16, platform: &Platform) -> String {
    format!(
        "{}\
         [rollcalls]\nrandom_per_day = 0\n\
         [metrics]\nenabled = false\n\
         [[cameras]]\nid = \"window-1\"\nrole = \"settlement_window\"\nurl = \"file://{}\"\nloop = true\n\
         decode = \"all\"\n\
         [[cameras]]\nid = \"window-2\"\nrole = \"settlement_window\"\nurl = \"file://{}\"\n",
        common::agent::config_head(port, platform),
        root.join("looping.mp4").display(),
        root.join("unplugged-soon.mp4").display(),
    )
}

#[test]
fn the_retained_health_message_follows_a_camera_going_offline() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let view = vigil::analyze::image::frame_from(&common::face_photo("obama.jpg"), 640, 360);
    common::media::still_clip(&root.join("looping.mp4"), &view, 30, 3);
    // 8 s at 10 fps: long enough to be seen online, then the camera ends.
    common::media::still_clip(&root.join("unplugged-soon.mp4"), &view, 80, 3);
    let platform = Platform::new(root);
    let broker = Mosquitto::start(root);
    let platform_side = Subscriber::start(broker.port, HEALTH);
    let config_file = root.join("vigil.toml");
    std::fs::write(&config_file, config(root, broker.port, &platform)).unwrap();
    let out = common::vigil().args(["keys", "init", "--config"]).arg(&config_file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let agent = Agent::start(&config_file, root.join("agent.log"));

    // Both cameras deliver frames: a health message says so (the first one may come before any frame).
    let both_online = |h: &Value| camera(h, "window-1")["online"] == true && camera(h, "window-2")["online"] == true;
    let seen = platform_side.wait_for(Duration::from_secs(60), |m| healths_in(m).iter().any(|(h, _)| both_online(h)));
    assert!(seen, "no health message with both cameras online: {:?}\n{}", healths(&platform_side), agent.log_text());
    // The camera is unplugged: its clip plays to the end, and every retry then fails.
    std::fs::remove_file(root.join("unplugged-soon.mp4")).unwrap();
    let offline = platform_side.wait_for(Duration::from_secs(60), |m| {
        healths_in(m).iter().skip_while(|(h, _)| !both_online(h)).any(|(h, _)| camera(h, "window-2")["online"] == false)
    });
    assert!(offline, "no health message with window-2 offline: {:?}\n{}", healths(&platform_side), agent.log_text());

    let received = healths(&platform_side);
    let payloads: Vec<Value> = received.iter().map(|(h, _)| h.clone()).collect();
    assert_valid(&payloads);
    let last = payloads.last().unwrap();
    assert_eq!((last["site"].as_str(), last["device"].as_str()), (Some("hosp"), Some("edge")));
    assert_eq!(last["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(last["ready"], true, "{last}");
    assert_eq!(camera(last, "window-1")["online"], true, "{last}");
    assert!(camera(last, "window-2")["restarts"].as_u64().unwrap() >= 1, "{last}");
    assert!(last["process"]["resident_memory_bytes"].as_u64().unwrap() > 10_000_000, "{last}");
    assert!(last["storage"]["free_bytes"].as_u64().unwrap() > 0, "{last}");
    // The frame rate of the looping camera, over the time between two messages: it plays at 10 fps and
    // decodes every frame (`decode = "all"`; an idle on-demand window would decode its keyframes only).
    let online_fps =
        payloads.iter().skip(1).map(|h| camera(h, "window-1")["fps"].as_f64().unwrap()).fold(0.0, f64::max);
    assert!(online_fps > 1.0, "window-1's fps in {payloads:?}");

    // A subscriber that comes now gets the retained last one from the broker.
    let late = Subscriber::start(broker.port, HEALTH);
    assert!(late.wait_for(Duration::from_secs(10), |m| !m.is_empty()), "no retained health for a late subscriber");
    let (retained, flag) = healths(&late).into_iter().next().unwrap();
    assert!(flag, "the health message is retained");
    assert_eq!(camera(&retained, "window-2")["online"], false, "{retained}");
    assert!(healths(&platform_side).iter().any(|(h, _)| *h == retained), "the retained one is one the platform got");

    // A clean stop: `status` says offline, the last health stays as the box's last word.
    let status = Subscriber::start(broker.port, "vigil/v1/hosp/edge/status");
    agent.stop();
    let stopped = status.wait_for(Duration::from_secs(10), |m| m.last().is_some_and(|(_, p, _)| p == b"offline"));
    assert!(stopped, "no offline status after a clean stop");
}
