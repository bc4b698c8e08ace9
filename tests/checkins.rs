//! Ward phones end to end: a real `vigil run` — its HTTPS server, the check-in service, a ward camera
//! watching two beds (a patient lying in bed 1, bed 2 empty) — a real mosquitto, the registry's face
//! photos with EXIF GPS and capture time written by a library, and uploads signed as the phone page
//! signs them (ECDSA P-256, r ‖ s), enrolled with `vigil phones add` and revoked with `vigil phones
//! revoke`. Every upload gets its verdict with the check that caught it: inside and outside the
//! geofence, stale, late from the phone's queue, an exact replay, re-encoded and resized replays, the
//! wrong patient, no face, two faces, oversize (body and pixels), not an image, truncated, a bad
//! signature, a revoked and an unknown phone, the same capture sent twice, a burst of 50 at once (every
//! one answered, the agent's memory bounded, the camera's analysis still running); each judged upload
//! is an event on mosquitto with its `evidence_ready`, and `vigil verify` accepts every bundle.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::agent::{Agent, Platform, kinds};
use common::mqtt::{Mosquitto, Subscriber};
use common::phone::TestPhone;
use common::photos::{self, ExifTags};
use image::RgbImage;
use serde_json::{Value, json};
use tokio_rustls::rustls;
use vigil::phones::protocol::{get_message, upload_message};
use vigil::phones::{Mode, Position, UploadMeta};

const W: u32 = 1280;
const H: u32 = 720;
/// The ward's geofence: a circle of 80 m.
const WARD: [f64; 2] = [31.2304, 121.4737];
const INSIDE: Position = Position { lat: 31.23045, lon: 121.47375, accuracy_m: 10.0 };
/// About 2 km away.
const OUTSIDE: Position = Position { lat: 31.2440, lon: 121.4880, accuracy_m: 10.0 };
const SITE_OFFSET: i32 = 8 * 3600;
/// `[http] max_body_bytes` of the test box.
const MAX_BODY: usize = 3 << 20;

fn fill(img: &mut RgbImage, x0: u32, y0: u32, w: u32, h: u32, color: [u8; 3]) {
    for y in y0..(y0 + h).min(H) {
        for x in x0..(x0 + w).min(W) {
            img.put_pixel(x, y, image::Rgb(color));
        }
    }
}

/// The ward: two beds; `occupied` puts a person lying in bed 1 (as tests/presence.rs).
fn ward(occupied: bool) -> RgbImage {
    let mut img = RgbImage::from_fn(W, H, |x, y| {
        let shade = ((x / 40 + y / 40) % 2 * 4) as u8;
        if y < H * 55 / 100 { image::Rgb([180 + shade, 175, 160]) } else { image::Rgb([120, 110 + shade, 100]) }
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

/// One upload as the phone sends it: the photo's bytes and its signed metadata.
#[derive(Clone)]
struct Upload {
    photo: Vec<u8>,
    meta: UploadMeta,
}

fn upload(photo: Vec<u8>, patient: Option<&str>, mode: Mode, taken: SystemTime, at: Option<Position>) -> Upload {
    let meta = UploadMeta {
        capture_id: uuid::Uuid::new_v4(),
        mode,
        patient: patient.map(str::to_owned),
        captured_at: humantime::format_rfc3339_millis(taken).to_string(),
        position: at,
        photo_sha256: photos::sha256_hex(&photo),
    };
    Upload { photo, meta }
}

/// A registry photo as a phone camera writes it: EXIF GPS where it was taken, DateTimeOriginal.
fn camera_photo(jpeg: &[u8], at: Position, taken: SystemTime) -> Vec<u8> {
    let tags =
        ExifTags { gps: Some([at.lat, at.lon]), taken: Some(taken), utc_offset_secs: SITE_OFFSET, write_offset: true };
    photos::with_exif(jpeg, &tags)
}

/// `name` mirrored left to right: the same person, another picture (its perceptual hash is far).
fn mirrored(name: &str) -> Vec<u8> {
    let img = image::imageops::flip_horizontal(&photos::pixels(&photos::registry_face(name)));
    photos::jpeg_of(&img, 90)
}

/// A response, as read off the wire.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or("").to_owned()
    }
    /// The answer of a judged upload: the body of a 200, the `details` of a 403.
    fn answer(&self) -> Value {
        let v = self.json();
        if self.status == 200 { v } else { v["error"]["details"].clone() }
    }
    fn failed(&self) -> Vec<String> {
        let answer = self.answer();
        let checks = answer["checks"].as_array().cloned().unwrap_or_default();
        checks.iter().filter(|c| c["outcome"] == "failed").map(|c| c["name"].as_str().unwrap().to_owned()).collect()
    }
    fn check(&self, name: &str) -> (String, String) {
        let answer = self.answer();
        let check = answer["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).cloned().unwrap();
        (check["outcome"].as_str().unwrap().to_owned(), check["reason"].as_str().unwrap().to_owned())
    }
}

/// The box's HTTPS API, as a phone that trusts its certificate reaches it.
struct Api {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
}

impl Api {
    fn new(addr: SocketAddr, cert_pem: &[u8]) -> Api {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(cert_pem).unwrap()).unwrap();
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Api { addr, tls: Arc::new(tls) }
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Reply {
        self.exchange(method, path, headers, body, true)
    }

    /// One request on its own connection; without `send_body`, only the head (with the body's
    /// `Content-Length`) is sent: a box that refuses an oversize body from its length answers at once.
    fn exchange(&self, method: &str, path: &str, headers: &[(&str, String)], body: &[u8], send_body: bool) -> Reply {
        let name = rustls::pki_types::ServerName::IpAddress(self.addr.ip().into());
        let conn = rustls::ClientConnection::new(self.tls.clone(), name).unwrap();
        let tcp = TcpStream::connect(self.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nHost: box\r\nConnection: close\r\nContent-Length: {}", body.len());
        for (name, value) in headers {
            head.push_str(&format!("\r\n{name}: {value}"));
        }
        head.push_str("\r\n\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        if send_body {
            stream.write_all(body).unwrap();
        }
        stream.flush().unwrap();
        let mut raw = Vec::new();
        let read = stream.read_to_end(&mut raw);
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
            panic!("{method} {path}: no complete response ({read:?}): {:?}", String::from_utf8_lossy(&raw));
        });
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let mut body = raw[end + 4..].to_vec();
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            body = dechunk(&body);
        }
        Reply { status, body }
    }

    fn enrol(&self, token: &str, phone: &TestPhone) -> Reply {
        let body = json!({"token": token, "public_key": STANDARD.encode(&phone.spki)}).to_string();
        self.request("POST", "/api/phones/enrol", &[("Content-Type", "application/json".into())], body.as_bytes())
    }

    /// Sends `upload` from `phone`, signed over `signed` (its metadata, unless a test tampers).
    fn send_as(&self, phone_id: &str, phone: &TestPhone, upload: &Upload, signed: &UploadMeta) -> Reply {
        self.upload(phone_id, phone, upload, signed, true)
    }

    fn upload(
        &self,
        phone_id: &str,
        phone: &TestPhone,
        upload: &Upload,
        signed: &UploadMeta,
        send_body: bool,
    ) -> Reply {
        let meta = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&upload.meta).unwrap());
        let signed_header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(signed).unwrap());
        let headers = [
            ("Content-Type", "image/jpeg".to_owned()),
            ("X-Vigil-Phone", phone_id.to_owned()),
            ("X-Vigil-Meta", meta),
            ("X-Vigil-Signature", phone.sign(&upload_message(&signed_header))),
        ];
        self.exchange("POST", "/api/phones/checkins", &headers, &upload.photo, send_body)
    }

    fn send(&self, phone: &TestPhone, upload: &Upload) -> Reply {
        self.send_as(&phone.id, phone, upload, &upload.meta)
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&body[line_end + 2..line_end + 2 + size]);
        body = &body[line_end + 2 + size + 2..];
    }
    out
}

/// `vigil phones add`: the new phone's id and the token of its enrolment link.
fn add_phone(config: &std::path::Path, name: &str, physician: Option<&str>) -> (String, String) {
    let mut cmd = common::vigil();
    cmd.args(["phones", "add", "--ward", "w3", "--name", name, "--config"]).arg(config);
    if let Some(p) = physician {
        cmd.args(["--physician", p]);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let id = text.split_whitespace().skip_while(|w| *w != "phone").nth(1).unwrap().to_owned();
    let token = text.split("#enrol=").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    (id, token)
}

/// The agent's peak resident memory (kB), from its pid in the data directory's lock file.
fn peak_rss_kb(data_dir: &std::path::Path) -> u64 {
    let pid = std::fs::read_to_string(data_dir.join("vigil.lock")).unwrap().trim().to_owned();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn ward_phone_uploads_are_judged_recorded_and_announced() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    common::media::still_clip(&root.join("ward-empty.mp4"), &ward(false), 200, 3);
    common::media::still_clip(&root.join("ward.mp4"), &ward(true), 200, 3);
    let broker = Mosquitto::start(root);
    let sub = Subscriber::start(broker.port, "vigil/v1/hosp/edge/#");
    let platform = Platform::new(root);
    let port = common::mqtt::free_port();
    let config_for = |clip: &str| {
        format!(
            "{}\
             [http]\nlisten = \"127.0.0.1:{port}\"\nmax_body_bytes = {MAX_BODY}\nrate_limit_per_minute = 1000\n\
             [presence]\nenter_secs = 2\nleave_secs = 6\n\
             [rollcalls]\nrandom_per_day = 0\nutc_offset = \"+08:00\"\n\
             [roster]\nfile = \"{}\"\n\
             [[cameras]]\nid = \"ward-3\"\nrole = \"ward\"\nurl = \"file://{}\"\nloop = true\n\
             [cameras.regions]\nbed-1 = [[0.078, 0.528], [0.453, 0.528], [0.453, 0.833], [0.078, 0.833]]\n\
             bed-2 = [[0.547, 0.528], [0.922, 0.528], [0.922, 0.833], [0.547, 0.833]]\n\
             [[wards]]\nid = \"w3\"\nname = \"Ward 3\"\ncameras = [\"ward-3\"]\n\
             geofence = {{ center = [{}, {}], radius_m = 80.0 }}\n",
            common::agent::config_head(broker.port, &platform),
            root.join("roster.json").display(),
            root.join(clip).display(),
            WARD[0],
            WARD[1],
        )
    };
    std::fs::write(
        root.join("roster.json"),
        json!({"inpatients": [{"patient": "p-obama", "camera": "ward-3", "bed": "bed-1"},
                              {"patient": "p-biden", "camera": "ward-3", "bed": "bed-2"}],
               "shifts": [{"physician": "d-obama",
                           "start": humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(3600)).to_string(),
                           "end": humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600)).to_string()}]})
        .to_string(),
    )
    .unwrap();
    let install = root.join("install.toml");
    std::fs::write(&install, config_for("ward-empty.mp4")).unwrap();
    let out = common::vigil()
        .args(["reference", "--empty", "--camera", "ward-3", "--config"])
        .arg(&install)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config = root.join("vigil.toml");
    std::fs::write(&config, config_for("ward.mp4")).unwrap();
    assert!(common::vigil().args(["keys", "init", "--config"]).arg(&config).output().unwrap().status.success());
    common::agent::enroll(&config, "patient", &[("p-obama", "obama.jpg"), ("p-biden", "biden.jpg")]);
    common::agent::enroll(&config, "physician", &[("d-obama", "obama.jpg")]);
    let (bedside_id, bedside_token) = add_phone(&config, "Li Na", None);
    let (doctor_id, doctor_token) = add_phone(&config, "Dr Wang", Some("d-obama"));
    let (lost_id, lost_token) = add_phone(&config, "Zhang Wei", None);

    let agent = Agent::start(&config, root.join("agent.log"));
    assert!(
        sub.wait_for(Duration::from_secs(30), |m| m.iter().any(|(t, p, _)| t.ends_with("/status") && p == b"online")),
        "agent not online:\n{}",
        agent.log_text()
    );
    let data_dir = root.join("state");
    // The server starts once the check-in service has its face sessions, after the MQTT connection.
    assert!(
        common::mqtt::wait(Duration::from_secs(30), || TcpStream::connect(("127.0.0.1", port)).is_ok()),
        "the HTTPS server does not listen:\n{}",
        agent.log_text()
    );
    let cert = std::fs::read(data_dir.join("http/cert.pem")).unwrap();
    let api = Api::new(format!("127.0.0.1:{port}").parse().unwrap(), &cert);
    let mut phone = TestPhone::new();
    let mut doctor = TestPhone::new();
    let mut lost = TestPhone::new();
    for (p, id, token) in [
        (&mut phone, bedside_id, bedside_token),
        (&mut doctor, doctor_id, doctor_token),
        (&mut lost, lost_id, lost_token),
    ] {
        let reply = api.enrol(&token, p);
        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
        p.id = id;
    }
    // The page's list: the ward's inpatients from the roster, by bed.
    let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let signature = phone.sign(&get_message("/api/phones/ward", &time));
    let headers = [("X-Vigil-Phone", phone.id.clone()), ("X-Vigil-Time", time), ("X-Vigil-Signature", signature)];
    let view = api.request("GET", "/api/phones/ward", &headers, b"");
    assert_eq!(view.status, 200, "{}", String::from_utf8_lossy(&view.body));
    assert_eq!(
        view.json()["inpatients"],
        json!([{"patient": "p-obama", "bed": "bed-1", "camera": "ward-3"}, {"patient": "p-biden", "bed": "bed-2", "camera": "ward-3"}])
    );
    // Bed 1 is seen occupied, bed 2 empty, before anyone uploads (the tracker's enter/leave times).
    std::thread::sleep(Duration::from_secs(10));

    let now = SystemTime::now;
    let hours = |h: u64| Duration::from_secs(h * 3600);
    let mut judged: Vec<(String, Value)> = Vec::new(); // (what, answer) of every judged upload
    let mut expect = |what: &str, reply: &Reply, verdict: &str, failed: &[&str]| {
        assert!(
            reply.status == 200 || reply.status == 403,
            "{what}: {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
        let answer = reply.answer();
        assert_eq!(answer["verdict"], verdict, "{what}: {answer}");
        for name in failed {
            assert!(reply.failed().iter().any(|f| f == name), "{what}: {name} did not fail: {answer}");
        }
        judged.push((what.to_owned(), answer));
    };

    // Inside the geofence, on time, the right patient in an occupied bed: verified.
    let t = now();
    let verified = upload(
        camera_photo(&photos::registry_face("obama.jpg"), INSIDE, t),
        Some("p-obama"),
        Mode::Bedside,
        t,
        Some(INSIDE),
    );
    let reply = api.send(&phone, &verified);
    expect("verified", &reply, "verified", &[]);
    assert_eq!(reply.check("bed_camera"), ("passed".into(), "occupied".into()));
    assert_eq!(reply.check("geofence").0, "passed");
    // The same capture again (the phone did not see the answer): the same answer, repeated.
    let again = api.send(&phone, &verified);
    assert_eq!(again.status, 200);
    assert_eq!(
        (again.json()["event_id"].clone(), again.json()["repeated"].clone()),
        (reply.json()["event_id"].clone(), json!(true))
    );

    // Taken offline two hours ago, sent now: judged by its capture time, late.
    let t = now() - hours(2);
    let late = upload(
        camera_photo(&photos::registry_face("obama3.jpg"), INSIDE, t),
        Some("p-obama"),
        Mode::Bedside,
        t,
        Some(INSIDE),
    );
    let reply = api.send(&phone, &late);
    expect("late", &reply, "verified", &[]);
    assert_eq!(reply.json()["late"], true);
    assert_eq!(reply.check("time"), ("passed".into(), "late".into()));

    // Outside the geofence.
    let t = now();
    let outside =
        upload(camera_photo(&mirrored("obama.jpg"), OUTSIDE, t), Some("p-obama"), Mode::Bedside, t, Some(OUTSIDE));
    let reply = api.send(&phone, &outside);
    expect("outside", &reply, "rejected", &["geofence"]);
    assert_eq!(reply.check("geofence"), ("failed".into(), "outside_geofence".into()));

    // Stale: taken 30 hours ago (over max_offline_hours).
    let t = now() - hours(30);
    let stale =
        upload(camera_photo(&mirrored("obama3.jpg"), INSIDE, t), Some("p-obama"), Mode::Bedside, t, Some(INSIDE));
    let reply = api.send(&phone, &stale);
    expect("stale", &reply, "rejected", &["time"]);
    assert_eq!(reply.check("time"), ("failed".into(), "too_old".into()));

    // Replays of the verified photo: the same bytes, re-encoded, resized.
    let t = now();
    for (what, bytes, reason) in [
        ("exact replay", verified.photo.clone(), "exact_replay"),
        ("re-encoded replay", photos::reencoded(&verified.photo, 70), "near_duplicate"),
        ("resized replay", photos::resized(&verified.photo, 60), "near_duplicate"),
    ] {
        let reply = api.send(&phone, &upload(bytes, Some("p-obama"), Mode::Bedside, t, Some(INSIDE)));
        expect(what, &reply, "rejected", &["replay"]);
        assert_eq!(reply.check("replay"), ("failed".into(), reason.into()), "{what}");
    }

    // The wrong patient; an empty bed; no face; two faces.
    let reply = api.send(
        &phone,
        &upload(
            camera_photo(&photos::registry_face("obama2.jpg"), INSIDE, t),
            Some("p-biden"),
            Mode::Bedside,
            t,
            Some(INSIDE),
        ),
    );
    expect("wrong patient", &reply, "rejected", &["face"]);
    assert_eq!(reply.check("face"), ("failed".into(), "not_the_claimed_person".into()));
    assert_eq!(reply.check("bed_camera"), ("failed".into(), "bed_empty".into()), "bed 2 is empty");
    let reply = api.send(&phone, &upload(photos::no_face(), Some("p-obama"), Mode::Bedside, t, Some(INSIDE)));
    expect("no face", &reply, "rejected", &["face"]);
    assert_eq!(reply.check("face"), ("failed".into(), "no_face".into()));
    let reply = api.send(&phone, &upload(photos::two_faces(), Some("p-obama"), Mode::Bedside, t, Some(INSIDE)));
    expect("two faces", &reply, "rejected", &["face"]);
    assert_eq!(reply.check("face"), ("failed".into(), "several_faces".into()));

    // Not a photo to judge: too many pixels, not an image, cut off.
    for (what, bytes, reason) in [
        ("too many pixels", photos::oversize_png(8000, 6000), "too_many_pixels"),
        ("not an image", b"Dear ward 3: this is a text file, not a photo.".to_vec(), "not_an_image"),
        ("truncated", photos::truncated(&photos::registry_face("biden.jpg"), 60), "corrupt_image"),
    ] {
        let reply = api.send(&phone, &upload(bytes, Some("p-obama"), Mode::Bedside, t, Some(INSIDE)));
        expect(what, &reply, "rejected", &["image"]);
        assert_eq!(reply.check("image"), ("failed".into(), reason.into()), "{what}");
        assert_eq!(reply.check("face").0, "skipped", "{what}");
    }

    // Refused before any check (no bundle, no event): over the body limit, a bad signature, an unknown phone.
    let big = upload(vec![0xff; MAX_BODY + 1024], Some("p-obama"), Mode::Bedside, t, Some(INSIDE));
    // Refused from its Content-Length, before the body is read (so the test sends none: a box that
    // waited for it would hang the request until its timeout, 408).
    let reply = api.upload(&phone.id, &phone, &big, &big.meta, false);
    assert_eq!((reply.status, reply.code()), (413, "too_large".into()));
    let forged = upload(photos::registry_face("biden.jpg"), Some("p-obama"), Mode::Bedside, t, Some(INSIDE));
    let mut other = forged.meta.clone();
    other.patient = Some("p-biden".into());
    // These two are refused from their headers too, before the body is read: sending it would race the
    // box closing the connection (a broken pipe in the test, not in the box).
    let reply = api.upload(&phone.id, &phone, &forged, &other, false);
    assert_eq!((reply.status, reply.code()), (401, "bad_signature".into()));
    let stranger = TestPhone::new();
    let reply = api.upload("ph-nobody0000", &stranger, &forged, &forged.meta, false);
    assert_eq!((reply.status, reply.code()), (401, "unknown_phone".into()));

    // A physician checks in: verified, a sighting.
    let t = now();
    let checkin = upload(camera_photo(&mirrored("obama2.jpg"), INSIDE, t), None, Mode::Physician, t, Some(INSIDE));
    let reply = api.send(&doctor, &checkin);
    expect("physician", &reply, "verified", &[]);
    assert_eq!(reply.check("bed_camera"), ("skipped".into(), "not_applicable".into()));

    // A revoked phone: recorded as rejected (signature failed), answered 403.
    let out = common::vigil()
        .args(["phones", "revoke", "--config"])
        .arg(&config)
        .arg(&lost.id)
        .args(["--reason", "lost on ward 3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reply =
        api.send(&lost, &upload(photos::registry_face("biden.jpg"), Some("p-biden"), Mode::Bedside, t, Some(INSIDE)));
    assert_eq!((reply.status, reply.code()), (403, "phone_revoked".into()));
    expect("revoked", &reply, "rejected", &["signature"]);
    assert_eq!(reply.check("signature"), ("failed".into(), "phone_revoked".into()));

    // A burst of 50 at once: every one answered, memory bounded, the camera's analysis still running.
    let before_kb = peak_rss_kb(&data_dir);
    let t = now();
    let burst: Vec<Upload> = (0..50)
        .map(|i| upload(photos::resized(&verified.photo, 40 + i), Some("p-obama"), Mode::Bedside, t, Some(INSIDE)))
        .collect();
    let replies: Vec<Reply> = std::thread::scope(|s| {
        let handles: Vec<_> = burst.iter().map(|u| s.spawn(|| api.send(&phone, u))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, reply) in replies.iter().enumerate() {
        expect(&format!("burst {i}"), reply, "rejected", &["replay"]);
    }
    let after_kb = peak_rss_kb(&data_dir);
    assert!(
        after_kb < before_kb + 400 * 1024,
        "peak memory grew from {before_kb} kB to {after_kb} kB during 50 uploads at once"
    );
    let t = now();
    let reply = api
        .send(&phone, &upload(photos::resized(&verified.photo, 95), Some("p-obama"), Mode::Bedside, t, Some(INSIDE)));
    assert_eq!(reply.check("bed_camera"), ("passed".into(), "occupied".into()), "the camera still watches bed 1");
    judged.push(("after the burst".into(), reply.answer()));

    // Every judged upload is an event (of its verdict's kind) with its evidence_ready on mosquitto.
    let ids: Vec<(String, String, String)> = judged
        .iter()
        .map(|(what, a)| {
            (what.clone(), a["event_id"].as_str().unwrap().to_owned(), a["verdict"].as_str().unwrap().to_owned())
        })
        .collect();
    let all_there = sub.wait_for(Duration::from_secs(30), |m| {
        let ready: Vec<String> = m
            .iter()
            .filter(|(t, _, _)| t.ends_with("/events/evidence_ready"))
            .filter_map(|(_, p, _)| serde_json::from_slice::<Value>(p).ok())
            .map(|v| v["details"]["for_event_id"].as_str().unwrap_or("").to_owned())
            .collect();
        ids.iter().all(|(_, id, _)| ready.contains(id))
    });
    let log = agent.stop();
    assert!(all_there, "events: {:?}\n{log}", kinds(&sub.messages.lock().unwrap()));
    let events = sub.payloads("/events/");
    for (what, id, verdict) in &ids {
        let event =
            events.iter().find(|e| e["event_id"] == id.as_str()).unwrap_or_else(|| panic!("{what}: no event {id}"));
        let kind = event["kind"].as_str().unwrap();
        match what.as_str() {
            "physician" => {
                assert_eq!(kind, "physician_checkin");
                assert_eq!(
                    (event["details"]["verified"].clone(), event["camera"].clone()),
                    (json!(true), json!(format!("phone:{}", doctor.id)))
                );
            }
            _ => assert_eq!(kind, format!("bedside_check_{verdict}"), "{what}: {event}"),
        }
    }
    let verified_event = events.iter().find(|e| e["event_id"] == ids[0].1.as_str()).unwrap();
    assert_eq!(verified_event["camera"], "ward-3");
    assert_eq!(verified_event["details"]["bed"], "bed-1");
    // No event for what was refused before the checks, and one per judged upload (the re-send made none).
    let judged_events = events
        .iter()
        .filter(|e| e["kind"].as_str().is_some_and(|k| k.starts_with("bedside_check") || k == "physician_checkin"))
        .count();
    assert_eq!(judged_events, ids.len(), "{:?}", kinds(&sub.messages.lock().unwrap()));
    common::agent::assert_evidence_verifies(&config, &data_dir.join("evidence"));
    // And by docs/evidence.md alone (no Vigil code), with the key assert_evidence_verifies wrote.
    let out = std::process::Command::new(common::python())
        .arg(common::repo("tests/third_party_verify.py"))
        .arg(config.with_file_name("device-public.pem"))
        .arg(data_dir.join("evidence"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let bundle = vigil::evidence::store::find(&data_dir.join("evidence"), &ids[0].1).unwrap();
    assert_eq!(std::fs::read(bundle.join("photo.jpg")).unwrap(), verified.photo, "the photo as the phone sent it");
    let manifest: Value = serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["checkin"]["bed"], "bed-1");
    assert_eq!(manifest["annotated"]["faces"].as_array().map(Vec::len), Some(1), "{}", manifest["annotated"]);
    assert!(image::open(bundle.join("annotated.jpg")).is_ok());
}
