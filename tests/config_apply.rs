//! `config_apply` against a real `vigil run` (a looped file:// camera, a real mosquitto, `/metrics` on
//! loopback to see which cameras are online): a configuration with several mistakes is refused with
//! every one of them and changes nothing; a valid one (a second camera) is applied in process, tried and
//! kept (`config_applied`, the second camera online, `<config>.previous` kept); one that kills the
//! camera (its file does not exist) is rolled back by the agent itself after its short trial
//! (`config_rolled_back` naming the camera, the file restored, the cameras online again); an agent killed
//! during a trial rolls it back when it starts again.

mod common;

use std::path::Path;
use std::time::Duration;

use common::agent::{Agent, Platform};
use common::mqtt::{Mosquitto, Subscriber, free_port};
use serde_json::{Value, json};

const BASE: &str = "vigil/v1/hosp/edge";

fn config(head: &str, http_port: u16, cameras: &[(&str, &Path)]) -> String {
    let mut text = format!(
        "{head}[rollcalls]\nrandom_per_day = 0\n[http]\nlisten = \"127.0.0.1:{http_port}\"\nplain_http = true\n"
    );
    for (id, clip) in cameras {
        text.push_str(&format!(
            "[[cameras]]\nid = \"{id}\"\nrole = \"settlement_window\"\nurl = \"file://{}\"\nloop = true\n",
            clip.display()
        ));
    }
    text
}

/// `vigil_camera_online` of each camera on the agent's `/metrics` now (None while the server is down,
/// e.g. during a restart).
fn online(http_port: u16) -> Option<Vec<(String, bool)>> {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut response = agent.get(&format!("http://127.0.0.1:{http_port}/metrics")).call().ok()?;
    let text = response.body_mut().read_to_string().ok()?;
    let mut cameras: Vec<(String, bool)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("vigil_camera_online{camera=\""))
        .filter_map(|rest| rest.split_once("\"} "))
        .map(|(camera, value)| (camera.to_owned(), value.trim() == "1"))
        .collect();
    cameras.sort();
    Some(cameras)
}

fn all_online(http_port: u16, expected: &[&str]) -> bool {
    online(http_port).is_some_and(|cameras| {
        cameras.len() == expected.len() && cameras.iter().zip(expected).all(|((id, up), want)| id == want && *up)
    })
}

/// Publishes a signed command; returns its cmd-result (matched by nonce).
fn command(broker: &Subscriber, platform: &Platform, name: &str, args: Value) -> Value {
    let signed = platform.sign(name, &args);
    let nonce = serde_json::from_slice::<Value>(&signed).unwrap()["nonce"].as_str().unwrap().to_owned();
    broker.publish(&format!("{BASE}/cmd/{name}"), signed);
    let topic = format!("{BASE}/cmd-result/{name}");
    let answered = |m: &[(String, Vec<u8>, bool)]| {
        m.iter().rev().find_map(|(t, p, _)| {
            let v: Value = serde_json::from_slice(p).ok()?;
            (t == &topic && v["nonce"] == nonce.as_str()).then_some(v)
        })
    };
    assert!(broker.wait_for(Duration::from_secs(20), |m| answered(m).is_some()), "no cmd-result for {name}");
    answered(&broker.messages.lock().unwrap()).unwrap()
}

/// The first event of `kind` whose details name `nonce`.
fn event(broker: &Subscriber, kind: &str, nonce: &str, limit: Duration) -> Option<Value> {
    let find = |m: &[(String, Vec<u8>, bool)]| {
        m.iter().find_map(|(t, p, _)| {
            let v: Value = serde_json::from_slice(p).ok()?;
            (t.ends_with(&format!("/events/{kind}")) && v["details"]["nonce"] == nonce).then_some(v)
        })
    };
    broker.wait_for(limit, |m| find(m).is_some());
    find(&broker.messages.lock().unwrap())
}

#[test]
fn broken_refused_valid_applied_dead_cameras_rolled_back() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let broker = Mosquitto::start(&dir.join("broker"));
    let platform = Platform::new(dir);
    let clip = dir.join("window.mp4");
    let scene = vigil::analyze::image::frame_from(&common::face_photo("obama.jpg"), 640, 360);
    common::media::still_clip(&clip, &scene, 40, 4);
    let http_port = free_port();
    let head = common::agent::config_head(broker.port, &platform);
    let file = dir.join("vigil.toml");
    let first = config(&head, http_port, &[("window-1", &clip)]);
    std::fs::write(&file, &first).unwrap();
    let out = common::vigil().current_dir(dir).args(["keys", "init", "--config"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let platform_side = Subscriber::start(broker.port, &format!("{BASE}/#"));
    let agent = Agent::start(&file, dir.join("agent.log"));
    let up = |cameras: &[&str], limit: u64| {
        common::mqtt::wait(Duration::from_secs(limit), || all_online(http_port, cameras))
    };
    assert!(up(&["window-1"], 90), "window-1 never online: {:?}\n{}", online(http_port), agent.log_text());

    // (a) Several mistakes: all named in one refusal, nothing written, the camera still online.
    let broken = format!(
        "{}[outbox]\nmax_records = 5\n[models]\nthreads = 0\n",
        config(&head, http_port, &[("window-1", &clip), ("window 2", Path::new("relative.mp4"))])
    );
    let result = command(&platform_side, &platform, "config_apply", json!({"config": broken}));
    assert_eq!((&result["ok"], &result["reason"]), (&json!(false), &json!("failed")), "{result}");
    let detail = result["detail"].as_str().unwrap();
    for expected in [
        "configuration refused, 4 errors",
        "cameras[1].id: \"window 2\" contains ' '",
        "cameras[1].url: \"file://relative.mp4\" must name an absolute path",
        "outbox.max_records: must be at least 100, got 5",
        "models.threads: must be 1..64, got 0",
    ] {
        assert!(detail.contains(expected), "{expected:?} not in {detail:?}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), first, "a refused configuration was written");
    assert!(!dir.join("vigil.toml.previous").exists());
    let pong = command(&platform_side, &platform, "ping", json!({}));
    assert_eq!(pong["ok"], true, "{pong}");
    assert!(all_online(http_port, &["window-1"]), "{:?}", online(http_port));

    // (b) A second camera: accepted, restarted in process, tried, kept.
    let second = config(&head, http_port, &[("window-1", &clip), ("window-2", &clip)]);
    let result = command(&platform_side, &platform, "config_apply", json!({"config": second, "confirm_within_s": 60}));
    assert_eq!(result["ok"], true, "{result}");
    let accepted = &result["result"];
    assert_eq!((&accepted["accepted"], &accepted["confirm_within_s"]), (&json!(true), &json!(60)), "{result}");
    let sha = |text: &str| vigil::hashing::sha256_hex(text.as_bytes());
    assert_eq!(
        (accepted["config_sha256"].as_str(), accepted["previous_sha256"].as_str()),
        (Some(&*sha(&second)), Some(&*sha(&first)))
    );
    let nonce = result["nonce"].as_str().unwrap();
    let applied = event(&platform_side, "config_applied", nonce, Duration::from_secs(90))
        .unwrap_or_else(|| panic!("no config_applied:\n{}", agent.log_text()));
    eprintln!("config_applied: {applied}");
    let details = &applied["details"];
    assert_eq!(details["cameras"], json!(["window-1", "window-2"]), "{applied}");
    assert_eq!(
        (details["config_sha256"].as_str(), details["previous_sha256"].as_str()),
        (Some(&*sha(&second)), Some(&*sha(&first)))
    );
    assert!(
        all_online(http_port, &["window-1", "window-2"]),
        "the new camera is not in force: {:?}",
        online(http_port)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), second);
    assert_eq!(
        std::fs::read_to_string(dir.join("vigil.toml.previous")).unwrap(),
        first,
        ".previous is the replaced file"
    );
    assert!(!dir.join("state/config-trial.json").exists(), "the trial marker outlived the trial");

    // (c) window-1's file does not exist: not online within the 10 s trial, rolled back by the agent.
    let dead = config(&head, http_port, &[("window-1", &dir.join("gone.mp4")), ("window-2", &clip)]);
    let result = command(&platform_side, &platform, "config_apply", json!({"config": dead, "confirm_within_s": 10}));
    assert_eq!(result["ok"], true, "{result}");
    let nonce = result["nonce"].as_str().unwrap();
    let rolled = event(&platform_side, "config_rolled_back", nonce, Duration::from_secs(90))
        .unwrap_or_else(|| panic!("no config_rolled_back:\n{}", agent.log_text()));
    eprintln!("config_rolled_back: {rolled}");
    let details = &rolled["details"];
    assert_eq!(
        (&details["reason"], &details["cameras_offline"]),
        (&json!("unhealthy"), &json!(["window-1"])),
        "{rolled}"
    );
    assert_eq!(details["mqtt_connected"], true, "{rolled}");
    assert_eq!(
        (details["config_sha256"].as_str(), details["rejected_sha256"].as_str()),
        (Some(&*sha(&second)), Some(&*sha(&dead)))
    );
    assert!(details["detail"].as_str().unwrap().contains("camera window-1 offline"), "{rolled}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), second, "the previous file is back");
    assert!(up(&["window-1", "window-2"], 60), "not online again after the rollback: {:?}", online(http_port));
    assert!(event(&platform_side, "config_applied", nonce, Duration::ZERO).is_none(), "applied and rolled back");

    let log = agent.stop();
    assert!(log.contains("configuration applied") && log.contains("configuration rolled back"), "{log}");

    // (d) Killed (SIGKILL) during a trial: the next start writes the previous file back before anything
    // starts and says so.
    let agent = Agent::start(&file, dir.join("agent-2.log"));
    assert!(up(&["window-1", "window-2"], 90), "not online after a restart: {}", agent.log_text());
    let result = command(&platform_side, &platform, "config_apply", json!({"config": dead, "confirm_within_s": 60}));
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), dead, "the tried file is in place during its trial");
    drop(agent);
    let agent = Agent::start(&file, dir.join("agent-3.log"));
    let nonce = result["nonce"].as_str().unwrap();
    let rolled = event(&platform_side, "config_rolled_back", nonce, Duration::from_secs(90))
        .unwrap_or_else(|| panic!("no config_rolled_back after the restart:\n{}", agent.log_text()));
    assert_eq!(
        (&rolled["details"]["reason"], &rolled["details"]["mqtt_connected"]),
        (&json!("interrupted"), &Value::Null)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), second, "the previous file is back");
    assert!(up(&["window-1", "window-2"], 60), "not online after the rollback at start: {:?}", online(http_port));
    assert!(!dir.join("state/config-trial.json").exists());
    agent.stop();
}
