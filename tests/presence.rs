//! Beds and dialysis chairs end to end: generated video of a ward (one bed taken by a lying person, one
//! empty) and a dialysis room (the billed patient in chair 1, someone else in chair 2, chair 3 empty),
//! empty references taken with `vigil reference --empty`, the roster and roll-calls sent as signed
//! MQTT commands to a running agent, and every expected event checked — and no other of these kinds:
//! bed_absent for the empty bed at each roll-call, bed_absence_escalated at the 2nd, one
//! rollcall_summary each; dialysis_patient_mismatch for chair 2, dialysis_session_verified for chair 1,
//! dialysis_chair_empty for chair 3; region_reference_stale for bed 3, a bed pushed sideways since its
//! empty reference was taken (it has no registered patient, so it changes no roll-call). The evidence
//! verifies.

mod common;

use std::time::{Duration, SystemTime};

use common::agent::{Agent, Platform, kinds};
use common::mqtt::{Mosquitto, Subscriber};
use image::RgbImage;

const W: u32 = 1280;
const H: u32 = 720;

/// A plain room: wall, floor, sensor noise added per frame by the caller.
fn room() -> RgbImage {
    RgbImage::from_fn(W, H, |x, y| {
        let shade = (x / 40 + y / 40) % 2 * 4;
        if y < H * 55 / 100 {
            image::Rgb([180 + shade as u8, 175, 160])
        } else {
            image::Rgb([120, 110 + shade as u8, 100])
        }
    })
}

fn fill(img: &mut RgbImage, x0: u32, y0: u32, w: u32, h: u32, color: [u8; 3]) {
    for y in y0..(y0 + h).min(H) {
        for x in x0..(x0 + w).min(W) {
            img.put_pixel(x, y, image::Rgb(color));
        }
    }
}

/// Pastes `photo` scaled to `height` pixels with its top left at (x, y).
fn paste(img: &mut RgbImage, photo: &RgbImage, x: u32, y: u32, height: u32) {
    let width = photo.width() * height / photo.height();
    let scaled = image::imageops::resize(photo, width, height, image::imageops::FilterType::Triangle);
    image::imageops::overlay(img, &scaled, i64::from(x), i64::from(y));
}

/// Head and shoulders of a registry portrait (the upper 55 %, the middle 60–80 %).
fn portrait(name: &str) -> RgbImage {
    let img = common::face_photo(name);
    let (w, h) = img.dimensions();
    let margin = if w * 2 > h { w / 5 } else { w / 10 };
    image::imageops::crop_imm(&img, margin, 0, w - 2 * margin, h * 55 / 100).to_image()
}

/// Ward: bed 1 (left) and bed 2 (right); `occupied` puts a person lying in bed 1. Bed 3, against the
/// back wall, stands at `bed3_x`.
fn ward(occupied: bool, bed3_x: u32) -> RgbImage {
    let mut img = room();
    fill(&mut img, 100, 380, 480, 220, [200, 215, 235]);
    fill(&mut img, 700, 380, 480, 220, [200, 215, 235]);
    fill(&mut img, bed3_x, 90, 360, 200, [200, 215, 235]);
    if occupied {
        let lying = image::imageops::rotate270(&common::face_photo("obama3.jpg"));
        paste(&mut img, &lying, 120, 400, 180);
    }
    img
}

/// Dialysis room: three chairs; `seated` puts Obama in chair 1 and Biden in chair 2.
fn dialysis(seated: bool) -> RgbImage {
    let mut img = room();
    for x in [40, 460, 880] {
        fill(&mut img, x, 300, 380, 400, [90, 60, 50]);
    }
    if seated {
        paste(&mut img, &portrait("obama3.jpg"), 50, 130, 560);
        paste(&mut img, &portrait("biden.jpg"), 480, 130, 560);
    }
    img
}

#[test]
fn roll_calls_and_dialysis_sessions_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (name, scene) in [
        ("ward-empty.mp4", ward(false, 100)),
        // Bed 3 pushed 60 px to the right since the empty reference.
        ("ward.mp4", ward(true, 160)),
        ("room-empty.mp4", dialysis(false)),
        ("room.mp4", dialysis(true)),
    ] {
        common::media::still_clip(&root.join(name), &scene, 200, 3);
    }
    let broker = Mosquitto::start(root);
    let sub = Subscriber::start(broker.port, "vigil/v1/hosp/edge/#");
    let platform = Platform::new(root);
    let config_for = |ward: &str, room: &str| {
        format!(
            "{}\
             [evidence]\npre_roll_secs = 2\npost_roll_secs = 2\n\
             [presence]\nenter_secs = 2\nleave_secs = 10\nstale_secs = 4\n\
             [rollcalls]\nrandom_per_day = 0\nescalate_after = 2\n\
             [dialysis]\nidentity_window_mins = 0.5\ngrace_mins = 0.1\nmin_share = 0.8\n\
             [[cameras]]\nid = \"ward-3\"\nrole = \"ward\"\nurl = \"file://{}\"\nloop = true\n\
             [cameras.regions]\nbed-1 = [[0.078, 0.528], [0.453, 0.528], [0.453, 0.833], [0.078, 0.833]]\n\
             bed-2 = [[0.547, 0.528], [0.922, 0.528], [0.922, 0.833], [0.547, 0.833]]\n\
             bed-3 = [[0.078, 0.125], [0.359, 0.125], [0.359, 0.403], [0.078, 0.403]]\n\
             [[cameras]]\nid = \"dialysis-a\"\nrole = \"dialysis_room\"\nurl = \"file://{}\"\nloop = true\n\
             [cameras.regions]\nchair-1 = [[0.03, 0.15], [0.33, 0.15], [0.33, 0.98], [0.03, 0.98]]\n\
             chair-2 = [[0.36, 0.15], [0.66, 0.15], [0.66, 0.98], [0.36, 0.98]]\n\
             chair-3 = [[0.69, 0.15], [0.99, 0.15], [0.99, 0.98], [0.69, 0.98]]\n",
            common::agent::config_head(broker.port, &platform),
            root.join(ward).display(),
            root.join(room).display()
        )
    };
    // The operator's install step: empty references while the beds and chairs are empty.
    let install = root.join("install.toml");
    std::fs::write(&install, config_for("ward-empty.mp4", "room-empty.mp4")).unwrap();
    for camera in ["ward-3", "dialysis-a"] {
        let out = common::vigil()
            .args(["reference", "--empty", "--camera", camera, "--config"])
            .arg(&install)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let config = root.join("vigil.toml");
    std::fs::write(&config, config_for("ward.mp4", "room.mp4")).unwrap();
    assert!(common::vigil().args(["keys", "init", "--config"]).arg(&config).output().unwrap().status.success());
    common::agent::enroll(&config, "patient", &[("p-obama", "obama.jpg"), ("p-biden", "biden.jpg")]);
    let agent = Agent::start(&config, root.join("agent.log"));
    assert!(
        sub.wait_for(Duration::from_secs(20), |m| m.iter().any(|(t, p, _)| t.ends_with("/status") && p == b"online")),
        "agent not online"
    );
    let start = humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(1)).to_string();
    let session = |id: &str, patient: &str, chair: &str| {
        serde_json::json!({"session": id, "patient": patient, "camera": "dialysis-a", "chair": chair,
            "start": start, "billed_minutes": 1})
    };
    let roster = serde_json::json!({
        "inpatients": [{"patient": "p-ward-a", "camera": "ward-3", "bed": "bed-1"},
                       {"patient": "p-ward-b", "camera": "ward-3", "bed": "bed-2"}],
        "dialysis_sessions": [session("s-1", "p-obama", "chair-1"), session("s-2", "p-obama", "chair-2"),
                              session("s-3", "p-carol", "chair-3")],
    });
    sub.publish("vigil/v1/hosp/edge/cmd/roster", platform.sign("roster", &roster));
    // Roll-calls once the beds have settled (a bed is Unknown until 10 s of empty keyframes), then again.
    std::thread::sleep(Duration::from_secs(20));
    for n in 1..=2 {
        std::thread::sleep(Duration::from_secs(2));
        sub.publish("vigil/v1/hosp/edge/cmd/rollcall", platform.sign("rollcall", &serde_json::json!({})));
        assert!(
            sub.wait_for(Duration::from_secs(20), |m| kinds(m).iter().filter(|k| *k == "rollcall_summary").count()
                == n),
            "no roll-call summary {n}: {:?}\n{}",
            kinds(&sub.messages.lock().unwrap()),
            agent.log_text()
        );
    }
    // The sessions end 1 min + 6 s grace after their start.
    let done = sub.wait_for(Duration::from_secs(100), |m| {
        let k = kinds(m);
        k.contains(&"dialysis_session_verified".to_owned()) && k.contains(&"dialysis_chair_empty".to_owned())
    });
    std::thread::sleep(Duration::from_secs(8)); // evidence post-rolls, and any unexpected late event
    let log = agent.stop();
    let all = kinds(&sub.messages.lock().unwrap());
    assert!(done, "events: {all:?}\n{log}");

    let events = sub.payloads("/events/");
    let of = |kind: &str| events.iter().filter(|e| e["kind"] == kind).cloned().collect::<Vec<_>>();
    let presence_kinds = [
        "bed_absent",
        "bed_absence_escalated",
        "rollcall_summary",
        "dialysis_patient_mismatch",
        "dialysis_session_verified",
        "dialysis_session_short",
        "dialysis_chair_empty",
        "dialysis_session_unverifiable",
        "region_reference_stale",
    ];
    let mut got: Vec<(String, String)> = events
        .iter()
        .filter(|e| presence_kinds.contains(&e["kind"].as_str().unwrap()))
        .map(|e| {
            let d = &e["details"];
            let what = d["bed"].as_str().or(d["session_id"].as_str()).or(d["region"].as_str()).unwrap_or("").to_owned();
            (e["kind"].as_str().unwrap().to_owned(), what)
        })
        .collect();
    got.sort();
    let want: Vec<(String, String)> = [
        ("bed_absence_escalated", "bed-2"),
        ("bed_absent", "bed-2"),
        ("bed_absent", "bed-2"),
        ("dialysis_chair_empty", "s-3"),
        ("dialysis_patient_mismatch", "s-2"),
        ("dialysis_session_verified", "s-1"),
        ("region_reference_stale", "bed-3"),
        ("rollcall_summary", ""),
        ("rollcall_summary", ""),
    ]
    .iter()
    .map(|(k, w)| ((*k).to_owned(), (*w).to_owned()))
    .collect();
    assert_eq!(got, want, "every expected event and no other; log:\n{log}");
    let summary = &of("rollcall_summary")[0]["details"];
    assert_eq!(
        (summary["summary"]["present"].as_u64(), summary["summary"]["absent"].as_u64()),
        (Some(1), Some(1)),
        "{summary}"
    );
    assert_eq!(of("bed_absent")[1]["details"]["patient"], "p-ward-b");
    assert_eq!(of("bed_absence_escalated")[0]["details"]["consecutive"], 2);
    let mismatch = &of("dialysis_patient_mismatch")[0]["details"];
    assert_eq!(mismatch["best_match"], "p-biden", "{mismatch}");
    let verified = &of("dialysis_session_verified")[0]["details"];
    assert_eq!(verified["patient_match"], "matched", "{verified}");
    assert!(verified["share"].as_f64().unwrap() >= 0.8, "{verified}");
    let empty = &of("dialysis_chair_empty")[0]["details"];
    assert_eq!(empty["patient_match"], "not_seen", "{empty}");
    let stale = &of("region_reference_stale")[0];
    let d = &stale["details"];
    assert_eq!(
        (stale["camera"].as_str(), d["lighting"].as_str(), d["what"].as_str()),
        (Some("ward-3"), Some("day"), Some("structure")),
        "{stale}"
    );
    // Pushed 60 px of the 1280-wide clip: 30 px of the 640-wide frames a keyframes-only ward camera
    // analyses by default.
    let dx = d["shift_px"][0].as_i64().unwrap();
    assert!((22..=38).contains(&dx) && d["shift_px"][1].as_i64().unwrap().abs() <= 8, "pushed 30 px: {stale}");
    assert!(d["shifted_fit"].as_f64().unwrap() >= d["fit"].as_f64().unwrap() + 0.15, "{stale}");
    // Evidence: bed_absent ×2, mismatch, chair empty, stale reference — all delivered and verifiable.
    assert!(all.iter().filter(|k| *k == "evidence_ready").count() >= 5, "{all:?}");
    common::agent::assert_evidence_verifies(&config, &root.join("state/evidence"));
}
