//! The console's people against a real `vigil run` (plain HTTP on 127.0.0.1, two cameras playing a
//! generated clip, the roster from `[roster] file`): who may look and who may change (no session, a
//! viewer and a supervisor refused enrolment and removal, the CSRF token required); the roster as the
//! agent holds it with `enrolled` flags; enrolment from three registry photos of one person through the
//! agent's enrolment thread, each photo's verdict; photos with no face, two faces, a cut-off JPEG and a
//! text file refused with the very reasons `vigil enroll` gives them; too many photos, a photo too large,
//! a bad id, a missing role; the enrolled embeddings recognising a photo of the person that was not
//! uploaded (and not another person); removal; no uploaded byte anywhere under the data directory nor a
//! file name in the log; an audit row for each change.

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use common::agent::Agent;
use common::mqtt::free_port;
use common::photos;
use serde_json::{Value, json};

struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

struct Console {
    base: String,
    agent: ureq::Agent,
}

/// A body and its content type.
type Body = (String, Vec<u8>);

impl Console {
    fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Body>) -> Answer {
        let mut request = ureq::http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let bytes = match body {
            Some((content_type, bytes)) => {
                request = request.header("content-type", content_type);
                bytes
            }
            None => Vec::new(),
        };
        let mut response =
            self.agent.run(request.body(bytes).unwrap()).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        if status == 200 {
            assert_eq!(response.headers()["cache-control"], "no-store", "{method} {path}");
        }
        let text = response.body_mut().read_to_string().unwrap();
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
        Answer { status, body }
    }

    /// Signs in: the cookie header and the CSRF token.
    fn session(&self, name: &str, password: &str) -> (String, String) {
        let body = json!({"name": name, "password": password}).to_string().into_bytes();
        let request = ureq::http::Request::builder()
            .method("POST")
            .uri(format!("{}/console/api/login", self.base))
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        let mut response = self.agent.run(request).unwrap();
        assert_eq!(response.status().as_u16(), 200, "{name}");
        let cookie = response.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let answer: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        (cookie, answer["csrf_token"].as_str().unwrap().to_owned())
    }

    fn people(&self, cookie: &str) -> Value {
        let answer = self.call("GET", "/console/api/people", &[("cookie", cookie)], None);
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        answer.body
    }
}

/// A multipart/form-data body as a browser's FormData makes it: `fields` as text, `files` as (field,
/// file name, content type, bytes).
fn form(fields: &[(&str, &str)], files: &[(&str, &str, &str, &[u8])]) -> Body {
    let boundary = "----vigil-test-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    for (name, file, content_type, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                 Content-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// Slices of an upload that no other file would hold by chance: 32 bytes at a third and at two thirds.
fn samples_of(bytes: &[u8]) -> [&[u8]; 2] {
    let (a, b) = (bytes.len() / 3, bytes.len() * 2 / 3);
    [&bytes[a..a + 32], &bytes[b..b + 32]]
}

#[test]
fn roster_enrolment_from_uploaded_photos_removal_and_their_audit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let config = root.join("vigil.toml");

    // Two cameras (a ward and a dialysis room) playing a small textured still, so the roster can name
    // their beds and chair; the roster in a file, as on a site without a platform.
    let scene = image::RgbImage::from_fn(320, 240, |x, y| {
        let shade = ((x / 20 + y / 20) % 2 * 60) as u8;
        image::Rgb([90 + shade, 100 + shade / 2, 110])
    });
    common::media::still_clip(&root.join("room.mp4"), &scene, 20, 3);
    let now = SystemTime::now();
    let at = |secs: i64| {
        vigil::times::format(if secs < 0 {
            now - Duration::from_secs(secs.unsigned_abs())
        } else {
            now + Duration::from_secs(secs as u64)
        })
    };
    let roster = json!({
        "inpatients": [
            {"patient": "p-1", "camera": "ward-3", "bed": "bed-1"},
            {"patient": "p-2", "camera": "ward-3", "bed": "bed-2"},
        ],
        "dialysis_sessions": [
            {"session": "hd-0001", "patient": "p-1", "camera": "dial-1", "chair": "chair-1", "start": at(3600),
             "billed_minutes": 240},
        ],
        "shifts": [{"physician": "dr-7", "start": at(-3600), "end": at(8 * 3600)}],
    });
    std::fs::write(root.join("roster.json"), roster.to_string()).unwrap();
    let camera = |id: &str, role: &str, regions: &[&str]| {
        let regions: Vec<String> = regions
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let (left, right) = (0.05 + 0.45 * i as f64, 0.45 + 0.45 * i as f64);
                format!("{name} = [[{left}, 0.5], [{right}, 0.5], [{right}, 0.9], [{left}, 0.9]]")
            })
            .collect();
        format!(
            "[[cameras]]\nid = \"{id}\"\nrole = \"{role}\"\nurl = \"file://{}\"\nloop = true\n\
             keyframes_only = true\nanalysis_fps = 1\nregions = {{ {} }}\n",
            root.join("room.mp4").display(),
            regions.join(", ")
        )
    };
    // max_body_bytes above one photo's limit, so the per-photo limit is what refuses a large photo.
    std::fs::write(
        &config,
        format!(
            "[site]\nid = \"hosp\"\ndevice_id = \"edge\"\n[storage]\ndata_dir = \"state\"\n\
             [rollcalls]\nrandom_per_day = 0\n\
             [roster]\nfile = \"{}\"\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\nplain_http = true\nmax_body_bytes = 33554432\n{}{}",
            root.join("roster.json").display(),
            camera("ward-3", "ward", &["bed-1", "bed-2"]),
            camera("dial-1", "dialysis_room", &["chair-1"]),
        ),
    )
    .unwrap();
    common::agent::add_console_user(&config, "ana", "installer", "ana's long password");
    common::agent::add_console_user(&config, "sun", "supervisor", "sun's long password");
    common::agent::add_console_user(&config, "vic", "viewer", "vic's long password");
    let keys = common::vigil().args(["keys", "init", "--config"]).arg(&config).output().unwrap();
    assert!(keys.status.success(), "{}", String::from_utf8_lossy(&keys.stderr));

    let agent = Agent::start(&config, root.join("agent.log"));
    let console = Console {
        base: format!("http://127.0.0.1:{port}"),
        // A connection per request: the server closes one whose body it refused unread, and a reused
        // one would fail the next request.
        agent: ureq::Agent::config_builder().http_status_as_error(false).max_idle_connections(0).build().into(),
    };
    let started = Instant::now();
    while ureq::get(&format!("{}/healthz", console.base)).call().is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "the agent did not serve; log:\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    let (installer, csrf) = console.session("ana", "ana's long password");
    let (supervisor, supervisor_csrf) = console.session("sun", "sun's long password");
    let (viewer, viewer_csrf) = console.session("vic", "vic's long password");

    // The registry's photos: three of Barack Obama to enrol, a fourth to recognise him by; Joe Biden.
    let obama = photos::registry_face("obama.jpg");
    let obama2 = photos::registry_face("obama2.jpg");
    let obama_side = photos::registry_face("obama_partial_face.jpg");
    let good = form(
        &[("role", "patient")],
        &[
            ("photos", "obama.jpg", "image/jpeg", &obama),
            ("photos", "obama2.jpg", "image/jpeg", &obama2),
            ("photos", "obama_partial_face.jpg", "image/jpeg", &obama_side),
        ],
    );

    // Refusals before anything is read or changed. (A small body: the server answers without reading
    // it, and a client still sending a large one would see the connection closed under it.)
    let tiny = photos::jpeg_of(&image::RgbImage::from_pixel(8, 8, image::Rgb([9, 9, 9])), 80);
    let small = form(&[("role", "patient")], &[("photos", "x.jpg", "image/jpeg", &tiny)]);
    let enrol = "/console/api/people/p-1/enrol";
    for (method, path, body) in [
        ("GET", "/console/api/people", None),
        ("POST", enrol, Some(small.clone())),
        ("DELETE", "/console/api/people/p-1", None),
    ] {
        let answer = console.call(method, path, &[], body);
        assert_eq!((answer.status, answer.code()), (401, "unauthorized"), "{method} {path}: {:?}", answer.body);
    }
    for (who, token) in [(&viewer, &viewer_csrf), (&supervisor, &supervisor_csrf)] {
        let headers = [("cookie", who.as_str()), ("x-csrf-token", token.as_str())];
        let answer = console.call("POST", enrol, &headers, Some(small.clone()));
        assert_eq!((answer.status, answer.code()), (403, "forbidden"), "{:?}", answer.body);
        let answer = console.call("DELETE", "/console/api/people/p-1", &headers, None);
        assert_eq!((answer.status, answer.code()), (403, "forbidden"), "{:?}", answer.body);
    }
    let answer = console.call("POST", enrol, &[("cookie", &installer)], Some(small.clone()));
    assert_eq!((answer.status, answer.code()), (403, "csrf"), "{:?}", answer.body);
    let answer = console.call("DELETE", "/console/api/people/p-1", &[("cookie", &installer)], None);
    assert_eq!((answer.status, answer.code()), (403, "csrf"), "{:?}", answer.body);

    // The roster from the file, as any signed-in role sees it; nobody enrolled yet.
    let started = Instant::now();
    let view = loop {
        let view = console.people(&viewer);
        if view["roster_source"] == "file" {
            break view;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the roster file was not applied: {view}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        view["inpatients"],
        json!([
            {"patient": "p-1", "camera": "ward-3", "bed": "bed-1", "enrolled": false},
            {"patient": "p-2", "camera": "ward-3", "bed": "bed-2", "enrolled": false},
        ])
    );
    let session = &view["dialysis_sessions"][0];
    assert_eq!(
        (&session["session"], &session["chair"], &session["enrolled"]),
        (&json!("hd-0001"), &json!("chair-1"), &json!(false))
    );
    assert_eq!(session["start"], roster["dialysis_sessions"][0]["start"]);
    assert_eq!((&view["shifts"][0]["physician"], &view["shifts"][0]["enrolled"]), (&json!("dr-7"), &json!(false)));
    assert_eq!(view["enrolled"], json!([]));

    // Enrolment from three photos of one person: each photo's verdict and measurements.
    let with_token = [("cookie", installer.as_str()), ("x-csrf-token", csrf.as_str())];
    let asked = Instant::now();
    let done = console.call("POST", enrol, &with_token, Some(good));
    eprintln!("enrolment from 3 photos answered in {} ms", asked.elapsed().as_millis());
    assert_eq!(done.status, 200, "{:?}", done.body);
    assert_eq!(
        (&done.body["id"], &done.body["role"], &done.body["enrolled"]),
        (&json!("p-1"), &json!("patient"), &json!(true))
    );
    let verdicts = done.body["photos"].as_array().unwrap();
    let names: Vec<&str> = verdicts.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["obama.jpg", "obama2.jpg", "obama_partial_face.jpg"]);
    for v in verdicts {
        assert_eq!((&v["accepted"], &v["reason"]), (&json!(true), &Value::Null), "{v}");
        assert!(v["quality"]["size_px"].as_f64().unwrap() > 80.0 && v["quality"]["problems"] == json!([]), "{v}");
    }

    // Photos that cannot be enrolled get the reasons `vigil enroll` gives the same files.
    let bad_dir = root.join("bad");
    std::fs::create_dir(&bad_dir).unwrap();
    let bad: Vec<(&str, &str, Vec<u8>)> = vec![
        ("street.jpg", "image/jpeg", photos::no_face()),
        ("two-people.jpg", "image/jpeg", photos::two_faces()),
        ("cut-off.jpg", "image/jpeg", photos::truncated(&obama, 60)),
        ("notes.txt", "text/plain", b"Bed 2: Mr Zhang, allergic to penicillin.\n".repeat(4)),
    ];
    for (name, _, bytes) in &bad {
        std::fs::write(bad_dir.join(name), bytes).unwrap();
    }
    let cli_config = root.join("cli.toml");
    std::fs::write(&cli_config, "[site]\nid = \"s\"\ndevice_id = \"d\"\n[storage]\ndata_dir = \"cli-state\"\n")
        .unwrap();
    let cli = common::vigil()
        .args(["enroll", "--id", "p-2", "--role", "patient", "--config"])
        .arg(&cli_config)
        .args(bad.iter().map(|(name, _, _)| bad_dir.join(name)))
        .output()
        .unwrap();
    assert_eq!(cli.status.code(), Some(1), "{}", common::output_text(&cli));
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    let files: Vec<(&str, &str, &str, &[u8])> =
        bad.iter().map(|(name, kind, bytes)| ("photos", *name, *kind, bytes.as_slice())).collect();
    let refused =
        console.call("POST", "/console/api/people/p-2/enrol", &with_token, Some(form(&[("role", "patient")], &files)));
    assert_eq!((refused.status, refused.code()), (422, "no_photo_accepted"), "{:?}", refused.body);
    let details = &refused.body["error"]["details"];
    assert_eq!(details["enrolled"], false);
    for (i, (name, _, _)) in bad.iter().enumerate() {
        let ours = &details["photos"][i];
        let path = bad_dir.join(name).display().to_string();
        let theirs = cli["images"][i]["reason"].as_str().unwrap().replace(&path, name);
        assert_eq!((ours["name"].as_str(), ours["accepted"].as_bool()), (Some(*name), Some(false)), "{ours}");
        assert_eq!(ours["reason"].as_str(), Some(theirs.as_str()), "{name}");
        assert!(refused.message().contains(&theirs), "{}", refused.message());
    }
    let reasons: Vec<&str> = (0..4).map(|i| details["photos"][i]["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons[0], "no face found");
    assert_eq!(reasons[1], "2 faces found; an enrolment photo must show one person");
    assert!(reasons[2].starts_with("cut-off.jpg: corrupt or truncated image"), "{}", reasons[2]);
    assert_eq!(reasons[3], "notes.txt: not an image Vigil can read (JPEG or PNG expected)");

    // A physician: one good photo, one without a face; enrolled from the one, the other named.
    let biden = photos::registry_face("biden.jpg");
    let street = photos::no_face();
    let files = [("photos", "biden.jpg", "image/jpeg", &biden[..]), ("photos", "", "image/jpeg", &street[..])];
    let mixed = console.call(
        "POST",
        "/console/api/people/dr-7/enrol",
        &with_token,
        Some(form(&[("role", "physician")], &files)),
    );
    assert_eq!(mixed.status, 200, "{:?}", mixed.body);
    assert_eq!(mixed.body["photos"][0]["accepted"], true);
    assert_eq!(
        (&mixed.body["photos"][1]["name"], &mixed.body["photos"][1]["reason"]),
        (&json!("photos[1]"), &json!("no face found"))
    );

    // Bad requests, refused before the enrolment thread sees them. (Small photos where the refusal
    // comes before they are read: a client still sending would find the connection closed. The large
    // one is refused once 10 MiB of it are read, a few bytes before its end.)
    let eleven: Vec<(&str, &str, &str, &[u8])> =
        (0..11).map(|_| ("photos", "x.jpg", "image/jpeg", &tiny[..])).collect();
    let large = [obama.clone(), vec![0u8; (10 << 20) + 1 - obama.len()]].concat();
    let cases: Vec<(&str, Body, u16, &str, &str)> = vec![
        ("p-3", form(&[("role", "patient")], &eleven), 400, "bad_request", "at most 10 photos"),
        (
            "p-3",
            form(&[("role", "patient")], &[("photos", "big.jpg", "image/jpeg", &large)]),
            413,
            "too_large",
            "big.jpg",
        ),
        ("p-3", form(&[("role", "patient")], &[]), 400, "bad_request", "no photo"),
        ("p-3", form(&[], &[("photos", "a.jpg", "image/jpeg", &obama)]), 400, "bad_request", "role field is missing"),
        ("p-3", form(&[("role", "nurse")], &[("photos", "a.jpg", "image/jpeg", &tiny)]), 400, "bad_request", "patient"),
        ("p-3", form(&[("role", "patient"), ("note", "x")], &[]), 400, "bad_request", "unknown form field \"note\""),
        (
            "p%203",
            form(&[("role", "patient")], &[("photos", "a.jpg", "image/jpeg", &tiny)]),
            400,
            "bad_request",
            "person id \"p 3\"",
        ),
        ("p-3", ("application/json".into(), b"{}".to_vec()), 400, "bad_request", "multipart/form-data"),
    ];
    for (id, body, status, code, says) in cases {
        let answer = console.call("POST", &format!("/console/api/people/{id}/enrol"), &with_token, Some(body));
        assert_eq!((answer.status, answer.code()), (status, code), "{says}: {:?}", answer.body);
        assert!(answer.message().contains(says), "{says}: {:?}", answer.body);
    }

    // The roster now: p-1 (a bed and a dialysis chair) and the physician on shift are enrolled.
    let view = console.people(&viewer);
    let flags = |list: &str| -> Vec<bool> {
        view[list].as_array().unwrap().iter().map(|e| e["enrolled"].as_bool().unwrap()).collect()
    };
    assert_eq!(
        (flags("inpatients"), flags("dialysis_sessions"), flags("shifts")),
        (vec![true, false], vec![true], vec![true])
    );
    let enrolled: Vec<(&str, &str, u64)> = view["enrolled"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["role"].as_str().unwrap(), p["faces"].as_u64().unwrap()))
        .collect();
    assert_eq!(enrolled, [("dr-7", "physician", 1), ("p-1", "patient", 3)]);
    assert!(view["enrolled"][1]["enrolled_at"].as_str().unwrap().starts_with("20"), "{view}");

    // Recognised: the gallery the agent wrote finds p-1 in a photo of him that was never uploaded, and
    // not in Joe Biden's.
    let gallery =
        vigil::gallery::Gallery::open(&root.join("state/gallery.bin"), &root.join("state/keys/gallery.key")).unwrap();
    let index = vigil::gallery::search::SearchIndex::build(gallery.entries());
    let mut models = common::models();
    let probe = models.faces.embed_all(&common::face_photo("obama3.jpg")).unwrap().remove(0);
    let best = index.best(&probe.embedding, None).unwrap();
    assert_eq!(best.id, "p-1", "{best:?}");
    assert!(best.distance < 0.6, "{best:?}");
    assert!(index.distance_to(&probe.embedding, "dr-7").unwrap() > 0.6);

    // Removal: gone from the gallery and the roster's flags; a second removal finds nobody.
    let removed = console.call("DELETE", "/console/api/people/p-1", &with_token, None);
    assert_eq!((removed.status, &removed.body), (200, &json!({"removed": "p-1"})));
    let again = console.call("DELETE", "/console/api/people/p-1", &with_token, None);
    assert_eq!((again.status, again.code()), (404, "not_found"), "{:?}", again.body);
    let view = console.people(&installer);
    assert_eq!(view["inpatients"][0]["enrolled"], false);
    assert_eq!(view["enrolled"].as_array().unwrap().len(), 1);
    let gallery =
        vigil::gallery::Gallery::open(&root.join("state/gallery.bin"), &root.join("state/keys/gallery.key")).unwrap();
    assert_eq!(gallery.entries().iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["dr-7"]);

    // The audit log: each change with who made it, and the refused attempts; no photo or file name.
    let log = console.call("GET", "/console/api/audit?limit=1000", &[("cookie", &supervisor)], None);
    assert_eq!(log.status, 200, "{:?}", log.body);
    let mut rows: Vec<(String, String, String, Value)> = log.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] != "login")
        .map(|e| {
            let text = |field: &str| e[field].as_str().unwrap().to_owned();
            (text("who"), text("action"), text("outcome"), e["details"].clone())
        })
        .collect();
    rows.reverse();
    let row = |who: &str, action: &str, outcome: &str, details: Value| {
        (who.to_owned(), action.to_owned(), outcome.to_owned(), details)
    };
    let refused = |who: &str, method: &str, check: &str| {
        let path = if method == "POST" { enrol } else { "/console/api/people/p-1" };
        row(who, "request", "refused", json!({"check": check, "method": method, "path": path}))
    };
    let expected = vec![
        row("cli", "user_add", "ok", json!({"name": "ana", "role": "installer"})),
        row("cli", "user_add", "ok", json!({"name": "sun", "role": "supervisor"})),
        row("cli", "user_add", "ok", json!({"name": "vic", "role": "viewer"})),
        refused("vic", "POST", "role"),
        refused("vic", "DELETE", "role"),
        refused("sun", "POST", "role"),
        refused("sun", "DELETE", "role"),
        refused("ana", "POST", "csrf"),
        refused("ana", "DELETE", "csrf"),
        row("ana", "person_enrol", "ok", json!({"id": "p-1", "role": "patient", "photos": 3, "accepted": 3})),
        row("ana", "person_enrol", "rejected", json!({"id": "p-2", "role": "patient", "photos": 4, "accepted": 0})),
        row("ana", "person_enrol", "ok", json!({"id": "dr-7", "role": "physician", "photos": 2, "accepted": 1})),
        row("ana", "person_remove", "ok", json!({"id": "p-1"})),
        row("ana", "person_remove", "not_found", json!({"id": "p-1"})),
    ];
    assert_eq!(rows, expected);

    // The photos were held in memory only: not one uploaded byte under the data directory, after the
    // agent has written everything it holds; their file names are in no log line.
    let log = agent.stop();
    let uploads: Vec<&[u8]> = [&obama[..], &obama2, &obama_side, &biden, &street]
        .into_iter()
        .chain(bad.iter().map(|(_, _, bytes)| &bytes[..]))
        .collect();
    for file in files_under(&root.join("state")) {
        let content = std::fs::read(&file).unwrap();
        for (i, upload) in uploads.iter().enumerate() {
            for sample in samples_of(upload) {
                assert!(!content.windows(sample.len()).any(|w| w == sample), "upload {i} found in {}", file.display());
            }
        }
    }
    for name in ["obama2.jpg", "obama_partial_face.jpg", "street.jpg", "notes.txt", "big.jpg"] {
        assert!(!log.contains(name), "{name} in the agent's log");
    }
    assert!(log.contains("console: enrolment done"), "the enrolment is logged");
}
