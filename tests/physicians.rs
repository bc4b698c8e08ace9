//! Physicians on shift must be seen: a dialysis-room camera shows one enrolled physician; the roster
//! (a signed `roster` command) puts two on shift. The one never seen is reported `physician_absent`,
//! once; the one on camera is not; both shifts end with a `physician_shift_summary`. A bad roster is
//! refused with every problem named, and the roster in force is kept.

mod common;

use std::time::{Duration, SystemTime};

use common::agent::{Agent, Platform, kinds};
use common::mqtt::{Mosquitto, Subscriber};

#[test]
fn a_physician_on_shift_and_unseen_is_absent_and_every_shift_is_summarised() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let person = vigil::analyze::image::frame_from(&common::face_photo("obama3.jpg"), 1280, 720);
    let room = root.join("room.mp4");
    common::media::still_clip(&room, &person, 200, 4);
    let broker = Mosquitto::start(root);
    let sub = Subscriber::start(broker.port, "vigil/v1/hosp/edge/#");
    let platform = Platform::new(root);
    let config = root.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "{}\
             [physicians]\nabsent_after_mins = 0.2\nscan_every_secs = 1\n\
             [[cameras]]\nid = \"dialysis-a\"\nrole = \"dialysis_room\"\nurl = \"file://{}\"\nloop = true\n\
             [cameras.regions]\nchair-1 = [[0.1, 0.3], [0.5, 0.3], [0.5, 0.9], [0.1, 0.9]]\n",
            common::agent::config_head(broker.port, &platform),
            room.display()
        ),
    )
    .unwrap();
    assert!(common::vigil().args(["keys", "init", "--config"]).arg(&config).output().unwrap().status.success());
    common::agent::enroll(&config, "physician", &[("d-obama", "obama.jpg"), ("d-biden", "biden.jpg")]);
    let agent = Agent::start(&config, root.join("agent.log"));
    assert!(
        sub.wait_for(Duration::from_secs(20), |m| m.iter().any(|(t, p, _)| t.ends_with("/status") && p == b"online")),
        "agent not online"
    );
    let time = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    let now = SystemTime::now();
    let (start, end) = (time(now - Duration::from_secs(600)), time(now + Duration::from_secs(30)));
    let bad = serde_json::json!({"shifts": [{"physician": "d-obama", "start": end, "end": start}],
        "dialysis_sessions": [{"session": "s-1", "patient": "p-1", "camera": "dialysis-a", "chair": "chair-9",
            "start": start, "billed_minutes": 240}]});
    sub.publish("vigil/v1/hosp/edge/cmd/roster", platform.sign("roster", &bad));
    let roster = serde_json::json!({"shifts": [
        {"physician": "d-obama", "start": start, "end": end},
        {"physician": "d-biden", "start": start, "end": end},
    ]});
    sub.publish("vigil/v1/hosp/edge/cmd/roster", platform.sign("roster", &roster));
    let ok = sub.wait_for(Duration::from_secs(60), |m| {
        kinds(m).iter().filter(|k| *k == "physician_shift_summary").count() == 2
    });
    std::thread::sleep(Duration::from_secs(1));
    let log = agent.stop();
    assert!(ok, "events: {:?}\nagent log:\n{log}", kinds(&sub.messages.lock().unwrap()));

    let results = sub.payloads("/cmd-result/roster");
    assert_eq!(results.len(), 2, "{results:?}");
    assert_eq!(results[0]["ok"], false);
    let detail = results[0]["detail"].as_str().unwrap();
    assert!(detail.contains("shifts[0].end") && detail.contains("chair-9"), "{detail}");
    assert_eq!((results[1]["ok"].as_bool(), results[1]["result"]["shifts"].as_u64()), (Some(true), Some(2)));

    let events = sub.payloads("/events/");
    let absent: Vec<_> = events.iter().filter(|e| e["kind"] == "physician_absent").collect();
    let summaries: Vec<_> = events.iter().filter(|e| e["kind"] == "physician_shift_summary").collect();
    assert_eq!(absent.len(), 1, "only the physician never on camera: {absent:?}\n{summaries:?}\n{log}");
    assert_eq!(absent[0]["details"]["physician"], "d-biden");
    assert_eq!(absent[0]["camera"], serde_json::Value::Null);
    let summary = |who: &str| {
        events
            .iter()
            .find(|e| e["kind"] == "physician_shift_summary" && e["details"]["physician"] == who)
            .unwrap_or_else(|| panic!("no summary for {who}: {events:?}"))
            .clone()
    };
    let seen = summary("d-obama");
    assert!(seen["details"]["sightings"].as_u64().unwrap() >= 2, "{seen}");
    assert_eq!(seen["details"]["absences"], 0, "{seen}");
    assert_eq!(seen["details"]["cameras"], serde_json::json!(["dialysis-a"]));
    let unseen = summary("d-biden");
    assert_eq!((unseen["details"]["sightings"].as_u64(), unseen["details"]["absences"].as_u64()), (Some(0), Some(1)));
    assert_eq!(unseen["details"]["first_seen"], serde_json::Value::Null);
    // The roster in force was stored for the next start.
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("state/roster.json")).unwrap()).unwrap();
    assert_eq!(stored["shifts"].as_array().unwrap().len(), 2);
}
