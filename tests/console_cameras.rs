//! The console's cameras against a real `vigil run` (plain HTTP on 127.0.0.1, as tests/console_auth.rs):
//! a ward camera playing a generated clip (tests/common/scenes.rs: a patient lying in the bed the whole
//! time, the empty room as the regions' empty reference) and a settlement window on a test pattern.
//!
//! - every camera endpoint refuses a request without a session, a viewer's change and a change without
//!   the CSRF token;
//! - a change with several bad values is refused with every problem named, the file byte for byte as
//!   it was and no `.previous` written;
//! - a bed the roster in force names may not be removed or renamed;
//! - moving the ward's bed region from the wall onto the bed: the file is changed (comments kept,
//!   `.previous` holding the old text) and the bed's occupancy goes from empty to occupied without a
//!   restart (same process start, the other camera's stream untouched) — in the console's list and in a
//!   `rollcall` command's result (the patient absent before, present after); a bed drawn live can be
//!   given a patient by the next `roster` command;
//! - a URL change restarts that camera alone; a face window on the window camera is saved and shown;
//! - references from the running cameras: the empty one written where `vigil reference --empty`
//!   writes it; a uniform view refused unless confirmed;
//! - the audit log holds a row for each change and refusal.

mod common;

use std::time::{Duration, Instant};

use common::agent::{Agent, Platform};
use common::mqtt::{Mosquitto, Subscriber, free_port};
use common::scenes::{Action, Event, Scene};
use serde_json::{Value, json};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;
/// The bed region on the wall, above the bed: nobody is ever there.
const ON_THE_WALL: [[f64; 2]; 4] = [[0.02, 0.02], [0.30, 0.02], [0.30, 0.20], [0.02, 0.20]];
/// The bed region where the scene's bed is (scenes.rs `BED`).
const ON_THE_BED: [[f64; 2]; 4] = [[0.12, 0.30], [0.63, 0.30], [0.63, 0.66], [0.12, 0.66]];

struct Answer {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: Value,
    bytes: Vec<u8>,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

struct Console {
    base: String,
    agent: ureq::Agent,
}

impl Console {
    fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Value>) -> Answer {
        let mut request = ureq::http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(body.map(|b| b.to_string()).unwrap_or_default()).unwrap();
        let mut response = self.agent.run(request).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.body_mut().read_to_vec().unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer { status, headers, body, bytes }
    }

    /// Signs in: the cookie header and the CSRF token.
    fn session(&self, name: &str, password: &str) -> (String, String) {
        let answer = self.call("POST", "/console/api/login", &[], Some(json!({"name": name, "password": password})));
        assert_eq!(answer.status, 200, "{name}: {:?}", answer.body);
        let set = answer.headers["set-cookie"].to_str().unwrap();
        (set.split(';').next().unwrap().to_owned(), answer.body["csrf_token"].as_str().unwrap().to_owned())
    }

    fn cameras(&self, cookie: &str) -> Vec<Value> {
        let answer = self.call("GET", "/console/api/cameras", &[("cookie", cookie)], None);
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        answer.body["cameras"].as_array().unwrap().clone()
    }

    fn camera(&self, cookie: &str, id: &str) -> Value {
        self.cameras(cookie).into_iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("no camera {id}"))
    }

    /// Polls the camera list until `done` holds of `id`'s object; panics with the log after `within`.
    fn wait_for(
        &self,
        cookie: &str,
        id: &str,
        within: Duration,
        agent: &Agent,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let camera = self.camera(cookie, id);
            if done(&camera) {
                return camera;
            }
            assert!(
                started.elapsed() < within,
                "{what}: not within {within:?}; last {camera}\nlog:\n{}",
                agent.log_text()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn polygon(points: &[[f64; 2]]) -> Value {
    json!(points.iter().map(|p| vec![p[0], p[1]]).collect::<Vec<_>>())
}

/// Sends a signed command and waits for its cmd-result (the `n`-th on the broker).
fn command(sub: &Subscriber, platform: &Platform, name: &str, args: Value, n: usize, agent: &Agent) -> Value {
    sub.publish(&format!("vigil/v1/hosp/edge/cmd/{name}"), platform.sign(name, &args));
    let arrived =
        sub.wait_for(Duration::from_secs(20), |m| m.iter().filter(|(t, _, _)| t.contains("/cmd-result/")).count() >= n);
    assert!(arrived, "no cmd-result for {name}\n{}", agent.log_text());
    sub.payloads("/cmd-result/")[n - 1].clone()
}

#[test]
fn cameras_are_shown_edited_live_and_their_references_taken() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();

    // A patient lies in the bed throughout; the clip loops.
    let scene = Scene::new(WIDTH, HEIGHT, 8.0, vec![Event { action: Action::LieInBed, from: 0.0, to: 9.0 }]);
    let clip = root.join("ward.mp4");
    scene.encode(&clip, 5);
    // The regions' empty reference, as `vigil reference --empty` would have taken it of the empty room.
    std::fs::create_dir_all(root.join("state/references")).unwrap();
    let empty = root.join("state/references/ward-1-empty.png");
    scene.empty_reference().save(&empty).unwrap();
    let seeded = std::fs::read(&empty).unwrap();

    let broker = Mosquitto::start(root);
    let sub = Subscriber::start(broker.port, "vigil/v1/hosp/edge/cmd-result/#");
    let platform = Platform::new(root);
    let wall = polygon(&ON_THE_WALL);
    let config = root.join("vigil.toml");
    let text = format!(
        "# Ward 3's box.\n{}\
         [rollcalls]\nrandom_per_day = 0\n\
         [presence]\nenter_secs = 2\nleave_secs = 2\n\
         [http]\nlisten = \"127.0.0.1:{port}\"\nplain_http = true\n\n\
         [[cameras]]\nid = \"ward-1\"  # room 12\nrole = \"ward\"\nurl = \"file://{}\"\nloop = true\n\
         keyframes_only = false\nanalysis_fps = 2\n\n\
         [cameras.regions]\n# Bed 1, by the window.\nbed-1 = {wall}\n\n\
         [[cameras]]\nid = \"window-1\"\nrole = \"settlement_window\"\nurl = \"test://smpte\"\n",
        common::agent::config_head(broker.port, &platform),
        clip.display()
    );
    std::fs::write(&config, &text).unwrap();
    common::agent::add_console_user(&config, "ana", "installer", "ana's long password");
    common::agent::add_console_user(&config, "vic", "viewer", "vic's long password");
    let keys = common::vigil().args(["keys", "init", "--config"]).arg(&config).output().unwrap();
    assert!(keys.status.success(), "{}", String::from_utf8_lossy(&keys.stderr));

    let agent = Agent::start(&config, root.join("agent.log"));
    let console = Console {
        base: format!("http://127.0.0.1:{port}"),
        // A refusal answers before the body is read, and the server then closes the connection: a
        // pooled connection could be found closed by the next request, so none is kept.
        agent: ureq::Agent::config_builder().http_status_as_error(false).max_idle_connections(0).build().into(),
    };
    let started = Instant::now();
    while ureq::get(&format!("{}/healthz", console.base)).call().is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "the agent did not serve; log:\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    let (installer, csrf) = console.session("ana", "ana's long password");
    let (viewer, viewer_csrf) = console.session("vic", "vic's long password");
    let with_token = [("cookie", installer.as_str()), ("x-csrf-token", csrf.as_str())];

    // The ward sees its bed region (on the wall) empty: frames decoded, the reference compared.
    let ward = console.wait_for(&installer, "ward-1", Duration::from_secs(30), &agent, "the wall region empty", |c| {
        c["occupancy"]["bed-1"] == "empty"
    });
    assert_eq!((ward["role"].as_str(), ward["online"].as_bool()), (Some("ward"), Some(true)), "{ward}");
    assert_eq!((ward["width"].as_u64(), ward["height"].as_u64()), (Some(640), Some(360)), "{ward}");
    assert!(ward["fps"].as_f64().unwrap() > 0.0 && ward["frames_decoded"].as_u64().unwrap() > 0, "{ward}");
    assert_eq!(ward["tamper"], "ok");
    assert_eq!(ward["regions"]["bed-1"], wall);
    assert!(ward["references"]["empty"]["taken_at"].is_string(), "{ward}");
    let window = console.camera(&installer, "window-1");
    assert_eq!((window["face_window"].clone(), window["occupancy"].clone()), (Value::Null, json!({})), "{window}");

    // The roster puts a patient in bed 1; a roll-call finds the bed (still drawn on the wall) empty.
    let roster = json!({"inpatients": [{"patient": "p-12", "camera": "ward-1", "bed": "bed-1"}]});
    let applied = command(&sub, &platform, "roster", roster, 1, &agent);
    assert_eq!(applied["ok"], true, "{applied}");
    let before = command(&sub, &platform, "rollcall", json!({}), 2, &agent);
    assert_eq!(
        (before["result"]["summary"]["absent"].as_u64(), before["result"]["summary"]["present"].as_u64()),
        (Some(1), Some(0)),
        "{before}"
    );

    // The latest frame, as JPEG, to any signed-in user.
    let frame = console.call("GET", "/console/api/cameras/ward-1/frame.jpg", &[("cookie", &viewer)], None);
    assert_eq!((frame.status, frame.headers["content-type"].to_str().unwrap()), (200, "image/jpeg"));
    let decoded = image::load_from_memory(&frame.bytes).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (640, 360));
    let unknown = console.call("GET", "/console/api/cameras/ward-9/frame.jpg", &[("cookie", &viewer)], None);
    assert_eq!((unknown.status, unknown.code()), (404, "not_found"));

    // Refusals: no session, a viewer, no CSRF token; none of them changes anything.
    let change = json!({"regions": {"bed-1": polygon(&ON_THE_BED)}});
    let reference = json!({"kind": "empty", "uniform_ok": false});
    for (method, path, body) in [
        ("GET", "/console/api/cameras", None),
        ("GET", "/console/api/cameras/ward-1/frame.jpg", None),
        ("PUT", "/console/api/cameras/ward-1", Some(change.clone())),
        ("POST", "/console/api/cameras/ward-1/reference", Some(reference.clone())),
    ] {
        let bare = console.call(method, path, &[], body.clone());
        assert_eq!((bare.status, bare.code()), (401, "unauthorized"), "{method} {path}: {:?}", bare.body);
        if method == "GET" {
            continue;
        }
        let viewed = [("cookie", viewer.as_str()), ("x-csrf-token", viewer_csrf.as_str())];
        let refused = console.call(method, path, &viewed, body.clone());
        assert_eq!((refused.status, refused.code()), (403, "forbidden"), "{method} {path}: {:?}", refused.body);
        let no_token = console.call(method, path, &[("cookie", &installer)], body.clone());
        assert_eq!((no_token.status, no_token.code()), (403, "csrf"), "{method} {path}: {:?}", no_token.body);
    }
    assert_eq!(std::fs::read_to_string(&config).unwrap(), text);

    // Several bad values: every one named, nothing written.
    let bad = json!({
        "url": "ftp://camera/1",
        "regions": {"bed-1": [[0.1, 0.1], [1.5, 0.2], [0.3, 0.4]], "bed 2": [[0.1, 0.1], [0.2, 0.2]]},
        "face_window": polygon(&ON_THE_BED),
    });
    let refused = console.call("PUT", "/console/api/cameras/ward-1", &with_token, Some(bad));
    assert_eq!((refused.status, refused.code()), (422, "invalid_config"), "{:?}", refused.body);
    let problems: Vec<&str> =
        refused.body["problems"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    for wanted in [
        "cameras[ward-1].url:",
        "cameras[ward-1].regions.bed-1[1]: coordinates are normalised to 0..1, got 1.5",
        "cameras[ward-1].regions.bed 2:",
        "cameras[ward-1].regions.bed 2: polygon needs ≥3 points, got 2",
        "cameras[ward-1].face_window: only a settlement_window camera has a face window",
    ] {
        assert!(problems.iter().any(|p| p.starts_with(wanted)), "{wanted:?} missing in {problems:#?}");
    }
    assert_eq!(refused.body["error"]["problems"], refused.body["problems"]);
    let regions_on_window = json!({"regions": {"bed-1": polygon(&ON_THE_BED)}});
    let refused_window = console.call("PUT", "/console/api/cameras/window-1", &with_token, Some(regions_on_window));
    assert_eq!(refused_window.status, 422, "{:?}", refused_window.body);
    assert!(refused_window.body["problems"][0].as_str().unwrap().starts_with("cameras[window-1].regions:"));
    // Renaming the roster's bed: refused, naming the patient.
    let renamed = json!({"regions": {"bed-7": polygon(&ON_THE_BED)}});
    let refused_rename = console.call("PUT", "/console/api/cameras/ward-1", &with_token, Some(renamed));
    assert_eq!(refused_rename.status, 422, "{:?}", refused_rename.body);
    let problem = refused_rename.body["problems"][0].as_str().unwrap();
    assert!(problem.starts_with("cameras[ward-1].regions.bed-1: the roster in force has patient p-12"), "{problem}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), text, "the file is byte for byte as it was");
    assert!(!root.join("vigil.toml.previous").exists());

    // The bed region moved onto the bed: written (comments kept, the old text as .previous), and the
    // bed is seen occupied without a restart.
    let window_stream = console.camera(&installer, "window-1")["stream_started_at"].clone();
    let ward_stream = console.camera(&installer, "ward-1")["stream_started_at"].clone();
    let frames_before = console.camera(&installer, "ward-1")["frames_decoded"].as_u64().unwrap();
    let change = json!({"regions": {"bed-1": polygon(&ON_THE_BED), "bed-2": wall}});
    let moved = console.call("PUT", "/console/api/cameras/ward-1", &with_token, Some(change));
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    assert_eq!(moved.body["applied"], "live");
    assert_eq!(moved.body["regions"]["bed-1"], polygon(&ON_THE_BED));
    let written = std::fs::read_to_string(&config).unwrap();
    assert_eq!(std::fs::read_to_string(root.join("vigil.toml.previous")).unwrap(), text);
    for kept in ["# Ward 3's box.", "# room 12", "# Bed 1, by the window.", "id = \"window-1\""] {
        assert!(written.contains(kept), "{kept:?} lost:\n{written}");
    }
    assert!(written.contains("bed-1 = [[0.12, 0.3], [0.63, 0.3], [0.63, 0.66], [0.12, 0.66]]"), "{written}");
    let ward = console.wait_for(&installer, "ward-1", Duration::from_secs(30), &agent, "the bed occupied", |c| {
        c["occupancy"]["bed-1"] == "occupied"
    });
    assert!(ward["frames_decoded"].as_u64().unwrap() > frames_before, "the ward's counters go on: {ward}");
    assert_eq!(ward["stream_started_at"], ward_stream, "the ward camera was not restarted");
    assert_eq!(console.camera(&installer, "window-1")["stream_started_at"], window_stream);
    let after = command(&sub, &platform, "rollcall", json!({}), 3, &agent);
    assert_eq!(
        (after["result"]["summary"]["absent"].as_u64(), after["result"]["summary"]["present"].as_u64()),
        (Some(0), Some(1)),
        "{after}"
    );
    // The bed drawn a moment ago is one the roster may use.
    let roster = json!({"inpatients": [{"patient": "p-12", "camera": "ward-1", "bed": "bed-1"},
                                       {"patient": "p-13", "camera": "ward-1", "bed": "bed-2"}]});
    let applied = command(&sub, &platform, "roster", roster, 4, &agent);
    assert_eq!(applied["ok"], true, "{applied}");

    // A URL change restarts that camera alone.
    let black = json!({"url": "test://black", "regions": {}});
    let restarted = console.call("PUT", "/console/api/cameras/window-1", &with_token, Some(black));
    assert_eq!(
        (restarted.status, restarted.body["applied"].as_str()),
        (200, Some("camera_restarted")),
        "{:?}",
        restarted.body
    );
    assert_eq!(restarted.body["url"], "test://black");
    assert_ne!(console.camera(&installer, "window-1")["stream_started_at"], window_stream);
    assert_eq!(console.camera(&installer, "ward-1")["stream_started_at"], ward_stream);
    assert!(agent.log_text().contains("camera restarting with its new stream settings"));

    // A face window on the window camera: saved, shown, in force.
    let face_window = json!([[0.25, 0.1], [0.75, 0.1], [0.75, 0.9], [0.25, 0.9]]);
    let windowed = console.call(
        "PUT",
        "/console/api/cameras/window-1",
        &with_token,
        Some(json!({"regions": {}, "face_window": face_window, "name": "Counter 2"})),
    );
    assert_eq!((windowed.status, windowed.body["applied"].as_str()), (200, Some("live")), "{:?}", windowed.body);
    let window = console.camera(&installer, "window-1");
    assert_eq!((window["face_window"].clone(), window["name"].as_str()), (face_window, Some("Counter 2")));
    assert!(std::fs::read_to_string(&config).unwrap().contains("face_window = [[0.25, 0.1], [0.75, 0.1]"));

    // References from the running cameras: the ward's empty view; the black window refused as uniform
    // until confirmed.
    let took = console.call("POST", "/console/api/cameras/ward-1/reference", &with_token, Some(reference));
    assert_eq!(took.status, 200, "{:?}", took.body);
    assert!(took.body["references"]["view"]["taken_at"].is_string(), "{:?}", took.body);
    assert_ne!(std::fs::read(&empty).unwrap(), seeded, "the empty reference is the running camera's frame now");
    assert!(root.join("state/references/ward-1.png").exists());
    let uniform = json!({"kind": "view", "uniform_ok": false});
    let black_view = console.call("POST", "/console/api/cameras/window-1/reference", &with_token, Some(uniform));
    assert_eq!((black_view.status, black_view.code()), (409, "uniform_view"), "{:?}", black_view.body);
    let confirmed = json!({"kind": "view", "uniform_ok": true});
    let black_view = console.call("POST", "/console/api/cameras/window-1/reference", &with_token, Some(confirmed));
    assert_eq!(black_view.status, 200, "{:?}", black_view.body);
    assert!(root.join("state/references/window-1.png").exists());

    // The audit log: each change, refusal and reference.
    let audit = console.call("GET", "/console/api/audit?limit=100", &[("cookie", &installer)], None);
    let rows: Vec<(String, String)> = audit.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap().to_owned(), e["outcome"].as_str().unwrap().to_owned()))
        .collect();
    let count = |action: &str, outcome: &str| rows.iter().filter(|(a, o)| a == action && o == outcome).count();
    assert_eq!((count("camera_update", "ok"), count("camera_update", "refused")), (3, 3), "{rows:?}");
    assert_eq!((count("reference_take", "ok"), count("reference_take", "uniform_view")), (2, 1), "{rows:?}");
    let text = audit.body.to_string();
    assert!(text.contains("\"regions_changed\":[\"bed-1\"]") && text.contains("\"url_changed\":true"), "{text}");
    assert!(text.contains("\"regions_added\":[\"bed-2\"]"), "{text}");

    // One process start, never restarted in it.
    let log = agent.stop();
    assert_eq!(log.matches("vigil started").count(), 1, "{log}");
}

/// `face_window` doing its work with the real face detector: two people at the counter, the window
/// drawn around the right one. Without the window both faces are found; with it only the right one,
/// placed back in frame coordinates.
#[test]
fn the_face_window_keeps_only_the_faces_inside_it() {
    let mut models = common::models();
    let (left, right) = (common::face_photo("biden.jpg"), common::face_photo("obama.jpg"));
    let half = |img: &image::RgbImage| image::imageops::resize(img, 480, 480, image::imageops::FilterType::Triangle);
    let mut frame = image::RgbImage::new(960, 480);
    image::imageops::replace(&mut frame, &half(&left), 0, 0);
    image::imageops::replace(&mut frame, &half(&right), 480, 0);
    let gate = vigil::analyze::quality::QualityThresholds::default();
    let everyone = vigil::runtime::camera::faces_in(&mut models.faces, &frame, &gate, None, |_| true).unwrap().faces;
    let centres: Vec<f32> = everyone.iter().map(|f| (f.bbox[0] + f.bbox[2]) / 2.0).collect();
    assert!(centres.iter().any(|x| *x < 480.0) && centres.iter().any(|x| *x > 480.0), "both faces: {centres:?}");
    let window = vec![vec![0.52, 0.02], vec![0.98, 0.02], vec![0.98, 0.98], vec![0.52, 0.98]];
    let inside =
        vigil::runtime::camera::faces_in(&mut models.faces, &frame, &gate, Some(&window), |_| true).unwrap().faces;
    assert_eq!(inside.len(), 1, "{:?}", inside.iter().map(|f| f.bbox).collect::<Vec<_>>());
    let [x1, y1, x2, y2] = inside[0].bbox;
    assert!(x1 > 480.0 && x2 < 960.0 && y1 >= 0.0 && y2 <= 480.0, "in frame coordinates: {:?}", inside[0].bbox);
    assert!(inside[0].embedding.is_some(), "the face in the window is embedded");
}
