//! The console's events and evidence against a real `vigil run` (plain HTTP on 127.0.0.1): two looping
//! file cameras whose generated clips go dark every loop, so the agent raises `camera_tamper` and writes
//! real signed bundles with clips. Through the console's API: refusals (no session, a viewer placing a
//! hold, a hold without the CSRF token); the live stream delivering a bundle written while connected;
//! the list, newest first, with each filter, paging, and bad values refused naming the parameter; one
//! bundle's manifest and its verification on the box; its files whole and by range (as `<video>` asks),
//! 416 for a range past the end, 404 for a file the manifest does not list and for path tricks; a legal
//! hold placed (a signed record, `vigil verify` still OK), placed again (nothing changes), released; a
//! bundle's file altered on disk and the verification naming it; the audit rows; and the stream ending
//! when the agent stops.

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::agent::Agent;
use common::mqtt::free_port;
use image::RgbImage;
use serde_json::{Value, json};

/// A response: status, headers, raw body.
struct Answer {
    status: u16,
    headers: ureq::http::HeaderMap,
    bytes: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }
    fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or("").to_owned()
    }
    fn message(&self) -> String {
        self.json()["error"]["message"].as_str().unwrap_or("").to_owned()
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
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
        let bytes = response.body_mut().with_config().limit(64 << 20).read_to_vec().unwrap();
        Answer { status, headers, bytes }
    }

    fn get(&self, path: &str, cookie: &str) -> Answer {
        self.call("GET", path, &[("cookie", cookie)], None)
    }

    /// Signs in: the cookie header to send back and the CSRF token.
    fn session(&self, name: &str, password: &str) -> (String, String) {
        let answer = self.call("POST", "/console/api/login", &[], Some(json!({"name": name, "password": password})));
        assert_eq!(answer.status, 200, "{name}: {:?}", answer.json());
        let pair = answer.header("set-cookie").split(';').next().unwrap().to_owned();
        (pair, answer.json()["csrf_token"].as_str().unwrap().to_owned())
    }

    fn hold(&self, event: &str, (cookie, csrf): &(String, String), on: bool, reason: &str) -> Answer {
        let path = format!("/console/api/events/{event}/hold");
        self.call(
            "POST",
            &path,
            &[("cookie", cookie), ("x-csrf-token", csrf)],
            Some(json!({"on": on, "reason": reason})),
        )
    }
}

/// A room for `seconds`, then dark from `dark_from` s: looped by the camera, a covered lens every loop.
fn tamper_clip(path: &Path, photo: &str, seconds: usize, dark_from: usize) {
    let room = vigil::analyze::image::frame_from(
        &vigil::analyze::image::load_rgb(&common::face_images().join(photo)).unwrap(),
        640,
        360,
    );
    common::media::encode_clip(path, 640, 360, 10, seconds * 10, 10, |i| {
        let mut img =
            if i >= dark_from * 10 { RgbImage::from_pixel(640, 360, image::Rgb([8, 8, 8])) } else { room.clone() };
        common::media::add_noise(&mut img, 6, i as u64);
        img
    });
}

/// Reads the event stream on its own thread: each `(event, data)` as it comes; the channel closes when
/// the stream ends.
fn open_stream(console: &Console, cookie: &str) -> (u16, String, mpsc::Receiver<(String, String)>) {
    let request = ureq::http::Request::builder()
        .uri(format!("{}/console/api/events/stream", console.base))
        .header("cookie", cookie)
        .body(())
        .unwrap();
    let response = console.agent.run(request).unwrap();
    let status = response.status().as_u16();
    let kind = response.headers().get("content-type").map_or("", |v| v.to_str().unwrap()).to_owned();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let reader = std::io::BufReader::new(response.into_body().into_reader());
        let mut event = String::new();
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if let Some(name) = line.strip_prefix("event: ").or_else(|| line.strip_prefix("event:")) {
                event = name.trim().to_owned();
            } else if let Some(data) = line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:")) {
                if tx.send((std::mem::take(&mut event), data.to_owned())).is_err() {
                    return;
                }
            }
        }
    });
    (status, kind, rx)
}

fn bundle_dir(evidence: &Path, event_id: &str) -> PathBuf {
    vigil::evidence::store::find(evidence, event_id).unwrap()
}

#[test]
fn events_stream_verification_files_and_legal_hold() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (clip_a, clip_b) = (root.join("a.mp4"), root.join("b.mp4"));
    tamper_clip(&clip_a, "obama.jpg", 12, 8);
    tamper_clip(&clip_b, "biden.jpg", 13, 9);
    let port = free_port();
    let config = root.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nid = \"hosp\"\ndevice_id = \"edge\"\n[storage]\ndata_dir = \"state\"\n\
             [rollcalls]\nrandom_per_day = 0\n[tamper]\ncovered_secs = 2\n\
             [evidence]\npre_roll_secs = 3\npost_roll_secs = 2\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\nplain_http = true\nrate_limit_per_minute = 6000\n\
             [[cameras]]\nid = \"window-a\"\nrole = \"settlement_window\"\nurl = \"file://{}\"\nloop = true\n\
             [[cameras]]\nid = \"window-b\"\nrole = \"settlement_window\"\nurl = \"file://{}\"\nloop = true\n",
            clip_a.display(),
            clip_b.display()
        ),
    )
    .unwrap();
    common::agent::add_console_user(&config, "ana", "installer", "ana's long password");
    common::agent::add_console_user(&config, "sun", "supervisor", "sun's long password");
    common::agent::add_console_user(&config, "vic", "viewer", "vic's long password");
    let keys = common::vigil().args(["keys", "init", "--config"]).arg(&config).output().unwrap();
    assert!(keys.status.success(), "{}", String::from_utf8_lossy(&keys.stderr));
    let evidence = root.join("state/evidence");

    let agent = Agent::start(&config, root.join("agent.log"));
    // A fresh connection per request: a request refused before its body is read closes its connection.
    let console = Console {
        base: format!("http://127.0.0.1:{port}"),
        agent: ureq::Agent::config_builder().http_status_as_error(false).max_idle_connections(0).build().into(),
    };
    while ureq::get(&format!("{}/healthz", console.base)).call().is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "the agent did not serve; log:\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    let ana = console.session("ana", "ana's long password");
    let sun = console.session("sun", "sun's long password");
    let vic = console.session("vic", "vic's long password");

    // No session: 401 for every endpoint.
    let some_id = "01930000-0000-7000-8000-000000000000";
    for path in [
        "/console/api/events".to_owned(),
        "/console/api/events/stream".to_owned(),
        format!("/console/api/events/{some_id}"),
        format!("/console/api/events/{some_id}/files/clip.mp4"),
    ] {
        let answer = console.call("GET", &path, &[], None);
        assert_eq!((answer.status, answer.code().as_str()), (401, "unauthorized"), "{path}");
    }
    let anonymous = console.call(
        "POST",
        &format!("/console/api/events/{some_id}/hold"),
        &[],
        Some(json!({"on": true, "reason": "x"})),
    );
    assert_eq!(anonymous.status, 401);

    // The stream, opened before any bundle exists: the first bundle written arrives on it.
    let (status, kind, stream) = open_stream(&console, &vic.0);
    assert_eq!((status, kind.as_str()), (200, "text/event-stream"));
    let (event, data) = stream.recv_timeout(Duration::from_secs(50)).unwrap_or_else(|_| {
        panic!("no bundle on the stream; log:\n{}", agent.log_text());
    });
    assert_eq!(event, "bundle");
    let streamed: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(streamed["kind"], "camera_tamper", "{streamed}");
    assert!(streamed["summary"].as_str().unwrap().contains("lens covered"), "{streamed}");
    assert_eq!(streamed["verdict"], Value::Null);
    assert_eq!(streamed["held"], false);
    let first = streamed["event_id"].as_str().unwrap().to_owned();

    // Bundles of both cameras.
    let list = |query: &str| -> Answer { console.get(&format!("/console/api/events{query}"), &vic.0) };
    let both = || {
        let events = list("").json()["events"].as_array().cloned().unwrap_or_default();
        ["window-a", "window-b"].iter().all(|c| events.iter().any(|e| e["camera"] == *c))
    };
    while !both() {
        assert!(started.elapsed() < Duration::from_secs(55), "no bundle of both cameras:\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(300));
    }
    let all = list("");
    assert_eq!((all.status, all.header("cache-control")), (200, "no-store"));
    let events = all.json()["events"].as_array().unwrap().clone();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first: {seqs:?}");
    assert!(events.iter().any(|e| e == &streamed), "the streamed object is the list's: {streamed}");
    for e in &events {
        let files: Vec<&str> = e["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        assert_eq!(files, ["clip.mp4", "frame.jpg", "snapshot.jpg"], "{e}");
    }
    let ids = |answer: &Answer| -> Vec<String> {
        answer.json()["events"].as_array().unwrap().iter().map(|e| e["event_id"].as_str().unwrap().to_owned()).collect()
    };
    let of_camera = |camera: &str| -> Vec<String> {
        events.iter().filter(|e| e["camera"] == camera).map(|e| e["event_id"].as_str().unwrap().to_owned()).collect()
    };
    let everything = ids(&all);
    // The cameras go on raising tampers: every query below is bounded to the bundles listed so far.
    let upto = |query: &str| list(&format!("?before={}{query}", seqs[0] + 1));
    assert_eq!(ids(&upto("")), everything);
    assert_eq!(ids(&upto("&kind=camera_tamper")), everything);
    assert!(ids(&upto("&kind=settlement_no_face")).is_empty());
    assert_eq!(ids(&upto("&camera=window-a")), of_camera("window-a"));
    assert_eq!(ids(&upto("&camera=window-b&kind=camera_tamper")), of_camera("window-b"));
    assert!(ids(&upto("&camera=window-z")).is_empty());
    assert_eq!(ids(&upto("&verdict=none")), everything, "a tamper has no verdict");
    assert!(ids(&upto("&verdict=mismatch")).is_empty());
    let newest_at = events[0]["at"].as_str().unwrap();
    let oldest_at = events.last().unwrap()["at"].as_str().unwrap();
    assert_eq!(ids(&upto(&format!("&since={newest_at}"))), [everything[0].clone()]);
    assert_eq!(ids(&upto(&format!("&until={oldest_at}"))), [everything.last().unwrap().clone()]);
    assert!(ids(&upto("&until=2001-01-01T00:00:00Z")).is_empty());
    // Paging: one at a time, each page's next_before leading to the next, the last saying there is none.
    let mut paged = Vec::new();
    let mut before = seqs[0] + 1;
    loop {
        let page = list(&format!("?limit=1&before={before}"));
        paged.extend(ids(&page));
        match page.json()["next_before"].as_u64() {
            Some(next) => before = next,
            None => break,
        }
        assert!(paged.len() <= everything.len(), "paging does not end: {paged:?}");
    }
    assert_eq!(paged, everything, "pages in order");
    // Bad values: 400 naming the parameter.
    for (query, parameter) in [
        ("?kind=tampering", "kind"),
        ("?verdict=maybe", "verdict"),
        ("?since=yesterday", "since"),
        ("?until=2026-99-01", "until"),
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?before=x", "before"),
        ("?camera=a%20b", "camera"),
        ("?colour=red", "colour"),
    ] {
        let answer = list(query);
        assert_eq!((answer.status, answer.code().as_str()), (400, "bad_request"), "{query}");
        assert!(answer.message().starts_with(&format!("{parameter}: ")), "{query}: {}", answer.message());
    }

    // One bundle: its manifest as stored, verified on the box.
    let detail = console.get(&format!("/console/api/events/{first}"), &vic.0);
    assert_eq!(detail.status, 200, "{:?}", detail.json());
    let detail = detail.json();
    let stored: Value =
        serde_json::from_slice(&std::fs::read(bundle_dir(&evidence, &first).join("manifest.json")).unwrap()).unwrap();
    assert_eq!(detail["manifest"], stored);
    assert_eq!(detail["event"]["event_id"], first.as_str());
    assert_eq!(detail["boxes"], json!([]), "a tamper has no detection");
    assert_eq!(detail["holds"], json!([]));
    let verification = &detail["verification"];
    assert_eq!(verification["ok"], true, "{verification}");
    assert_eq!(verification["problems"], json!([]));
    let seq = detail["event"]["seq"].as_u64().unwrap();
    let chain = verification["chain"].as_str().unwrap();
    assert!(chain.starts_with(&format!("entry {seq} of ")) && chain.ends_with(": verified"), "{chain}");
    assert!(chain.contains(if seq == 1 { "genesis" } else { "links to entry" }), "{chain}");
    for path in [format!("/console/api/events/{some_id}"), "/console/api/events/not-an-id".to_owned()] {
        assert_eq!(console.get(&path, &vic.0).status, 404, "{path}");
    }

    // Its files: whole, by range, past the end; only what the manifest lists.
    let clip = std::fs::read(bundle_dir(&evidence, &first).join("clip.mp4")).unwrap();
    let size = clip.len();
    let files = format!("/console/api/events/{first}/files");
    let whole = console.get(&format!("{files}/clip.mp4"), &vic.0);
    assert_eq!(
        (whole.status, whole.header("content-type"), whole.header("accept-ranges")),
        (200, "video/mp4", "bytes")
    );
    assert!(whole.bytes == clip, "the clip as stored");
    let ranged =
        |range: &str| console.call("GET", &format!("{files}/clip.mp4"), &[("cookie", &vic.0), ("range", range)], None);
    let part = ranged("bytes=100-1099");
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), format!("bytes 100-1099/{size}"));
    assert!(part.bytes == clip[100..1100], "bytes 100-1099");
    let tail = ranged("bytes=-64");
    assert_eq!(
        (tail.status, tail.header("content-range")),
        (206, format!("bytes {}-{}/{size}", size - 64, size - 1).as_str())
    );
    assert!(tail.bytes == clip[size - 64..]);
    let open = ranged(&format!("bytes={}-", size - 10));
    assert!(open.status == 206 && open.bytes == clip[size - 10..]);
    let past = ranged(&format!("bytes={size}-"));
    assert_eq!((past.status, past.header("content-range")), (416, format!("bytes */{size}").as_str()));
    let snapshot = console.get(&format!("{files}/snapshot.jpg"), &vic.0);
    assert_eq!((snapshot.status, snapshot.header("content-type")), (200, "image/jpeg"));
    assert!(snapshot.bytes.starts_with(&[0xff, 0xd8]));
    for name in ["manifest.json", "manifest.sig", "..%2Fmanifest.json", "..%2F..%2Fvigil.toml", "%2Fetc%2Fpasswd", ".."]
    {
        let answer = console.get(&format!("{files}/{name}"), &vic.0);
        assert_eq!((answer.status, answer.code().as_str()), (404, "not_found"), "{name}: {:?}", answer.json());
    }

    // Legal hold: refused to a viewer and without the CSRF token; a supervisor places it.
    let viewer_hold = console.hold(&first, &vic, true, "court case 42");
    assert_eq!((viewer_hold.status, viewer_hold.code().as_str()), (403, "forbidden"));
    let no_csrf = console.call(
        "POST",
        &format!("/console/api/events/{first}/hold"),
        &[("cookie", &sun.0)],
        Some(json!({"on": true, "reason": "court case 42"})),
    );
    assert_eq!((no_csrf.status, no_csrf.code().as_str()), (403, "csrf"));
    let empty_reason = console.hold(&first, &sun, true, " ");
    assert_eq!((empty_reason.status, empty_reason.code().as_str()), (400, "bad_request"));
    assert!(empty_reason.message().starts_with("reason: "), "{}", empty_reason.message());
    assert_eq!(console.hold(some_id, &sun, true, "x").status, 404);
    let held = console.hold(&first, &sun, true, "court case 42");
    assert_eq!(held.status, 200, "{:?}", held.json());
    let held = held.json();
    assert_eq!(held["changed"], true);
    assert_eq!(held["holds"][0]["on"], true);
    assert_eq!(held["holds"][0]["by"], "sun");
    assert_eq!(held["holds"][0]["reason"], "court case 42");
    // The signed record, naming the bundle; the chain still verifies.
    let record_seq = held["holds"][0]["sequence"].as_u64().unwrap();
    let (_, record_dir) =
        vigil::evidence::store::bundles(&evidence).unwrap().into_iter().find(|(s, _)| *s == record_seq).unwrap();
    let record: Value = serde_json::from_slice(&std::fs::read(record_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        (record["type"].as_str(), record["record"]["target"]["event_id"].as_str()),
        (Some("hold"), Some(first.as_str()))
    );
    assert_eq!(record["record"]["reason"], "court case 42");
    common::agent::assert_evidence_verifies(&config, &evidence);
    let listed = ids(&list("?limit=500"));
    let row = list("?limit=500").json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_id"] == first.as_str())
        .cloned()
        .unwrap();
    assert!(listed.contains(&first) && row["held"] == true, "{row}");
    // Again: nothing changes. Then released by the installer.
    let again = console.hold(&first, &sun, true, "court case 42").json();
    assert_eq!((again["changed"].as_bool(), again["holds"].as_array().map(Vec::len)), (Some(false), Some(1)));
    let released = console.hold(&first, &ana, false, "case closed").json();
    assert_eq!(released["changed"], true, "{released}");
    let holds: Vec<(bool, &str)> = released["holds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["on"].as_bool().unwrap(), h["by"].as_str().unwrap()))
        .collect();
    assert_eq!(holds, [(true, "sun"), (false, "ana")]);
    let detail = console.get(&format!("/console/api/events/{first}"), &vic.0).json();
    assert_eq!((detail["event"]["held"].as_bool(), detail["holds"].as_array().map(Vec::len)), (Some(false), Some(2)));
    assert_eq!(detail["verification"]["ok"], true, "the records naming it verify too: {}", detail["verification"]);

    // A file of another bundle altered on disk: its verification says so.
    let other = everything.iter().find(|id| **id != first).unwrap().clone();
    let snapshot = bundle_dir(&evidence, &other).join("snapshot.jpg");
    let mut bytes = std::fs::read(&snapshot).unwrap();
    bytes.extend_from_slice(b"tampered");
    std::fs::write(&snapshot, bytes).unwrap();
    let altered = console.get(&format!("/console/api/events/{other}"), &vic.0).json();
    let verification = &altered["verification"];
    assert_eq!(verification["ok"], false, "{verification}");
    let problems: Vec<&str> =
        verification["problems"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(problems.iter().any(|p| p.contains("snapshot.jpg was modified")), "{problems:?}");

    // The audit log: each hold request, and each refusal, with who asked.
    let log = console.get("/console/api/audit?limit=1000", &ana.0).json();
    let rows: Vec<String> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("legal_hold") || e["action"] == "request")
        .rev()
        .map(|e| {
            let d = &e["details"];
            let what = d["changed"]
                .as_bool()
                .map(|c| format!(" changed={c}"))
                .or_else(|| d["check"].as_str().map(|c| format!(" {c}")));
            format!(
                "{} {} {}{}",
                e["who"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
                what.unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            "vic request refused role",
            "sun request refused csrf",
            "sun legal_hold ok changed=true",
            "sun legal_hold ok changed=false",
            "ana legal_hold_release ok changed=true",
        ]
    );
    let hold_row = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "legal_hold" && e["details"]["changed"] == true)
        .unwrap();
    assert_eq!(hold_row["details"]["event_id"], first.as_str());
    assert_eq!(hold_row["details"]["record_sequence"], record_seq);

    // The agent stops promptly with the stream open, and the stream ends.
    let stopping = Instant::now();
    let log = agent.stop();
    assert!(!log.contains("HTTP requests still running"), "the stream held up the stop:\n{log}");
    let ended = Instant::now() + Duration::from_secs(10);
    loop {
        match stream.recv_timeout(ended.saturating_duration_since(Instant::now())) {
            Ok(_) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the stream did not end when the agent stopped"),
        }
    }
    eprintln!(
        "bundles listed: {}; whole test {:.1} s, stop {:.1} s",
        everything.len(),
        started.elapsed().as_secs_f64(),
        stopping.elapsed().as_secs_f64()
    );
}
