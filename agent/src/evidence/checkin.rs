//! The bundle of a phone upload (a bedside photo or a physician's check-in): the photo exactly as the
//! phone sent it, the decoded photo with the faces found drawn on it, and the manifest naming every
//! check and what it was judged on (docs/evidence.md, "Check-in bundles").
//!
//! Written by the same [`Store`] as camera bundles — one writer, one chain — following the same
//! protocol step by step: temp dir, files, manifest, signature, fsync, rename, fsync the parent. The
//! crash steps keep their meaning: [`Step::ClipWritten`] is the photo written, [`Step::SnapshotWritten`]
//! the annotated photo. The evidence stage knows nothing of phones: the runtime hands it a
//! [`CheckinRequest`] whose `checkin` is already the manifest's object (strings, integers, booleans:
//! no floating-point number, as every manifest).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use image::RgbImage;
use serde_json::{Value, json};

use super::canonical;
use super::credentials::{Media, Provenance};
use super::manifest::{self, AGENT_NAME, AGENT_VERSION, BundleFile, CameraIdentity};
use super::records::{self, BundleState, EntryType};
use super::store::{BundleInfo, EvidenceError, Step, Store, fsync_dir, io_error, millis, time};
use crate::analyze::boxes::BBox;

/// The photo's file name in the bundle, by what its bytes are (not by what the phone claimed).
pub fn photo_file_name(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        "photo.jpg"
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "photo.png"
    } else {
        "photo.bin"
    }
}

/// The media files a check-in bundle may list: exactly one photo, and the annotated photo when the
/// photo decoded.
pub const PHOTO_FILES: [&str; 3] = ["photo.jpg", "photo.png", "photo.bin"];
pub const ANNOTATED_FILE: &str = "annotated.jpg";

/// The colours of the face boxes on `annotated.jpg`: green when the face check passed, red otherwise.
pub const FACE_PASSED: [u8; 3] = [0, 200, 60];
pub const FACE_FAILED: [u8; 3] = [230, 30, 30];

/// The decoded photo and the faces found in it.
#[derive(Debug, Clone)]
pub struct Annotation {
    pub picture: RgbImage,
    pub faces: Vec<BBox>,
    /// The face check passed: the boxes are drawn green, else red.
    pub face_passed: bool,
}

/// What the runtime hands the store for an upload.
#[derive(Debug, Clone)]
pub struct CheckinRequest {
    pub event_id: uuid::Uuid,
    /// `bedside_check_verified`, `bedside_check_rejected` or `physician_checkin`.
    pub kind: String,
    /// The event's camera: the bed's camera, or `phone:<id>` without one.
    pub camera: String,
    /// The bed's camera as configured (manifest `camera`), when there is one.
    pub camera_info: Option<CameraIdentity>,
    /// The event's time (when the box judged the upload).
    pub at: SystemTime,
    /// The event's details, flattened to strings (as every bundle's `event.details`).
    pub details: BTreeMap<String, String>,
    /// The manifest's `checkin` object: who, where, when, every check with its facts.
    pub checkin: Value,
    /// The body as received, byte for byte.
    pub photo: std::sync::Arc<[u8]>,
    /// None when the photo did not decode (no `annotated.jpg`).
    pub annotation: Option<Annotation>,
}

impl CheckinRequest {
    fn provenance(&self, store: &Store) -> Provenance {
        Provenance {
            site: store.site.clone(),
            device: store.device.clone(),
            sequence: store.next_sequence,
            event_id: self.event_id.to_string(),
            kind: self.kind.clone(),
            camera: self.camera.clone(),
            at: time(self.at),
        }
    }
}

/// A floating-point number anywhere in `value` (a manifest has none), by its path.
fn float_in(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::Number(n) if n.is_f64() => Some(path.to_owned()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| float_in(v, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| float_in(v, &format!("{path}.{k}"))),
        _ => None,
    }
}

impl Store {
    /// Writes the bundle of a phone upload, following docs/evidence.md step by step. Nothing is left
    /// behind when it fails (the temp dir is removed; one left by a crash is removed at the next open).
    pub fn write_checkin(&mut self, req: &CheckinRequest) -> Result<BundleInfo, EvidenceError> {
        if let Some(path) = float_in(&req.checkin, "checkin") {
            return Err(EvidenceError::Manifest(format!("{path} is a floating-point number (write it as a string)")));
        }
        self.in_temp_dir(req.event_id, |store, tmp, created| store.write_checkin_into(tmp, req, created))
    }

    fn write_checkin_into(
        &mut self,
        tmp: &Path,
        req: &CheckinRequest,
        created: SystemTime,
    ) -> Result<BundleInfo, EvidenceError> {
        // The original stays as sent: no Content Credentials are embedded in it (that would change its
        // bytes, and its SHA-256 is what the phone signed).
        let photo_name = photo_file_name(&req.photo);
        let photo_path = tmp.join(photo_name);
        std::fs::write(&photo_path, &req.photo).map_err(io_error(&photo_path))?;
        self.step(Step::ClipWritten);

        let mut written = vec![photo_path];
        let annotated = match &req.annotation {
            Some(a) => {
                let mut picture = a.picture.clone();
                let thickness = (picture.width().max(picture.height()) / 300).max(2);
                let color = if a.face_passed { FACE_PASSED } else { FACE_FAILED };
                for bbox in &a.faces {
                    crate::analyze::image::draw_box(&mut picture, *bbox, color, thickness);
                }
                let jpeg = manifest::jpeg(&picture).map_err(EvidenceError::Snapshot)?;
                let jpeg = match &self.credentials {
                    Some(credentials) => credentials
                        .embed(&self.key, Media::Annotated, &jpeg, &req.provenance(self))
                        .map_err(|e| EvidenceError::Manifest(e.to_string()))?,
                    None => jpeg,
                };
                let path = tmp.join(ANNOTATED_FILE);
                std::fs::write(&path, &jpeg).map_err(io_error(&path))?;
                written.push(path);
                Some((jpeg, picture.dimensions()))
            }
            None => None,
        };
        self.step(Step::SnapshotWritten);

        let mut files = vec![BundleFile { name: photo_name, bytes: &req.photo }];
        if let Some((jpeg, _)) = &annotated {
            files.push(BundleFile { name: ANNOTATED_FILE, bytes: jpeg });
        }
        let mut manifest = self.chain_fields(EntryType::Bundle, created);
        let models = self.models.iter().map(|(name, sha)| json!({"name": name, "sha256": sha})).collect::<Vec<Value>>();
        manifest.insert("models".into(), Value::Array(models));
        manifest.insert("agent".into(), json!({"name": AGENT_NAME, "version": AGENT_VERSION}));
        manifest.insert(
            "event".into(),
            json!({
                "id": req.event_id.to_string(),
                "kind": req.kind,
                "camera": req.camera,
                "at": time(req.at),
                "details": req.details,
            }),
        );
        if let Some(camera) = &req.camera_info {
            manifest.insert("camera".into(), json!(camera));
        }
        manifest.insert("checkin".into(), req.checkin.clone());
        if let Some((_, (width, height))) = &annotated {
            let faces: Vec<Value> =
                req.annotation.iter().flat_map(|a| &a.faces).map(|b| json!(b.map(|v| v.round() as i64))).collect();
            manifest.insert("annotated".into(), json!({"width": width, "height": height, "faces": faces}));
        }
        let listed = files
            .iter()
            .map(|f| {
                (f.name.to_owned(), json!({"sha256": crate::hashing::sha256_hex(f.bytes), "bytes": f.bytes.len()}))
            })
            .collect::<serde_json::Map<String, Value>>();
        manifest.insert("files".into(), Value::Object(listed));
        let manifest = Value::Object(manifest);
        let bytes = canonical::to_bytes(&manifest).map_err(|e| EvidenceError::Manifest(e.to_string()))?;
        let manifest_path = tmp.join("manifest.json");
        std::fs::write(&manifest_path, &bytes).map_err(io_error(&manifest_path))?;
        self.step(Step::ManifestWritten);

        let sig_path = tmp.join("manifest.sig");
        std::fs::write(&sig_path, self.key.sign(&bytes)).map_err(io_error(&sig_path))?;
        self.step(Step::SignatureWritten);

        written.extend([manifest_path, sig_path]);
        for file in &written {
            std::fs::File::open(file).and_then(|f| f.sync_all()).map_err(io_error(file))?;
        }
        fsync_dir(tmp)?;
        self.step(Step::FilesSynced);

        let info = self.commit(tmp, &req.event_id.to_string(), EntryType::Bundle, &bytes, created)?;
        let state = BundleState::new(&info, &req.event_id.to_string(), millis(created), records::listed(&manifest));
        self.index.insert(info.sequence, state);
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::keys::DeviceKey;
    use crate::evidence::verify;
    use std::time::{Duration, UNIX_EPOCH};

    pub(crate) fn jpeg_photo() -> Vec<u8> {
        let img = RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 90]));
        manifest::jpeg(&img).unwrap()
    }

    fn request(photo: Vec<u8>, decoded: bool) -> CheckinRequest {
        let at = UNIX_EPOCH + Duration::from_millis(1_800_000_000_250);
        let picture = image::load_from_memory(&photo).ok().map(|i| i.to_rgb8());
        CheckinRequest {
            event_id: uuid::Uuid::now_v7(),
            kind: "bedside_check_verified".into(),
            camera: "ward3-room12".into(),
            camera_info: Some(CameraIdentity::new("ward3-room12", "ward", None, "rtsp://u:pw@cam/1")),
            at,
            details: [("patient".to_owned(), "p-1".to_owned()), ("failed".to_owned(), String::new())].into(),
            checkin: json!({
                "phone": "ph-abcdefghij", "ward": "w3", "mode": "bedside", "claimed": "p-1",
                "bed": "bed-2", "camera": "ward3-room12", "capture_id": uuid::Uuid::new_v4().to_string(),
                "captured_at": time(at - Duration::from_secs(20)), "received_at": time(at), "late": false,
                "position": {"lat": "31.230416", "lon": "121.473701", "accuracy_m": "12.0"},
                "checks": [{"name": "signature", "outcome": "passed", "reason": "registered_phone",
                            "detail": "Signed by ph-abcdefghij.", "facts": {"phone": "ph-abcdefghij"}}],
            }),
            photo: photo.into(),
            annotation: picture.filter(|_| decoded).map(|picture| Annotation {
                picture,
                faces: vec![[4.0, 4.0, 30.0, 40.0]],
                face_passed: true,
            }),
        }
    }

    fn store(dir: &Path) -> (Store, crate::evidence::keys::PublicKey) {
        let key_path = dir.join("device.key");
        let key = DeviceKey::init(&key_path).unwrap();
        let public = key.public();
        (Store::open(&dir.join("evidence"), key, "hosp", "edge", vec![("m".into(), "ab".repeat(32))]).unwrap(), public)
    }

    fn verified(dir: &Path, key: &crate::evidence::keys::PublicKey) -> verify::Report {
        verify::verify(&[dir.join("evidence")], key)
    }

    /// tests/third_party_verify.py (docs/evidence.md alone, no Vigil code) on the store: its output,
    /// and whether it found no problem.
    fn third_party(dir: &Path, key: &crate::evidence::keys::PublicKey) -> (bool, String) {
        let pem = dir.join("public.pem");
        std::fs::write(&pem, key.to_pem()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/third_party_verify.py");
        let out = std::process::Command::new(crate::cache::dir().join("venv/bin/python"))
            .arg(script)
            .arg(&pem)
            .arg(dir.join("evidence"))
            .output()
            .unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }

    /// The photo is kept byte for byte (its hash is what the phone signed), the annotated one is beside
    /// it, and `vigil verify` accepts the bundle without a clip.
    #[test]
    fn a_checkin_bundle_keeps_the_photo_as_sent_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, public) = store(dir.path());
        let photo = jpeg_photo();
        let req = request(photo.clone(), true);
        let info = store.write_checkin(&req).unwrap();
        assert_eq!(std::fs::read(info.dir.join("photo.jpg")).unwrap(), photo, "the original, unmodified");
        let annotated = image::open(info.dir.join("annotated.jpg")).unwrap().to_rgb8();
        let edge = annotated.get_pixel(4, 20);
        assert!(edge[1] > 150 && edge[0] < 90, "the face box is drawn green: {edge:?}");
        let m: Value = serde_json::from_slice(&std::fs::read(info.dir.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(m["checkin"]["claimed"], "p-1");
        assert_eq!(m["event"]["kind"], "bedside_check_verified");
        assert_eq!(m["camera"]["url_redacted"], "rtsp://u:***@cam/1");
        assert_eq!(m["annotated"]["faces"], json!([[4, 4, 30, 40]]));
        assert!(m.get("clip").is_none());
        let report = verified(dir.path(), &public);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(store.existing(req.event_id).unwrap().map(|b| b.sequence), Some(1));

        // A photo that did not decode: kept as photo.bin, no annotated photo, no camera; still verifies.
        let mut req = request(b"not a photo at all".to_vec(), false);
        req.camera = "phone:ph-abcdefghij".into();
        req.camera_info = None;
        let info = store.write_checkin(&req).unwrap();
        assert_eq!(std::fs::read(info.dir.join("photo.bin")).unwrap(), b"not a photo at all");
        assert!(!info.dir.join("annotated.jpg").exists());
        let report = verified(dir.path(), &public);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let (ok, out) = third_party(dir.path(), &public);
        assert!(ok && out.contains("2 bundles, 0 problems"), "{out}");
    }

    /// With the device certificate, `annotated.jpg` carries Content Credentials naming the event; the
    /// photo does not (it stays the bytes the phone signed).
    #[test]
    fn content_credentials_go_on_the_annotated_photo_only() {
        use crate::evidence::credentials::Credentials;
        let dir = tempfile::tempdir().unwrap();
        let (mut store, public) = store(dir.path());
        let key = DeviceKey::load(&dir.path().join("device.key")).unwrap();
        let cert = dir.path().join("device-cert.pem");
        store.credentials = Some(Credentials::load_or_issue(&cert, &key, "hosp", "edge").unwrap().0);
        let photo = jpeg_photo();
        let req = request(photo.clone(), true);
        let info = store.write_checkin(&req).unwrap();
        assert_eq!(std::fs::read(info.dir.join("photo.jpg")).unwrap(), photo);
        let annotated = std::fs::read(info.dir.join("annotated.jpg")).unwrap();
        let reader = c2pa::Reader::from_context(c2pa::Context::new())
            .with_stream("image/jpeg", std::io::Cursor::new(&annotated))
            .unwrap();
        let ours: Value = reader.active_manifest().unwrap().find_assertion("org.vigil.evidence").unwrap();
        assert_eq!(
            (ours["file"].as_str(), ours["event"]["id"].as_str()),
            (Some("annotated.jpg"), Some(&*req.event_id.to_string()))
        );
        assert!(
            c2pa::Reader::from_context(c2pa::Context::new())
                .with_stream("image/jpeg", std::io::Cursor::new(&photo))
                .is_err(),
            "the original has no manifest"
        );
        assert!(verified(dir.path(), &public).problems.is_empty());
    }

    /// Retention prunes a check-in bundle as any other: acknowledged and older than `evidence_days`, its
    /// photo and annotated photo are removed, a prune record names them, and the chain still verifies.
    #[test]
    fn retention_prunes_a_checkin_bundle_like_any_other() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, public) = store(dir.path());
        let req = request(jpeg_photo(), true);
        let info = store.write_checkin(&req).unwrap();
        let day = Duration::from_secs(86_400);
        let now = SystemTime::now();
        assert_eq!(store.prune(1, now + 2 * day).unwrap(), 0, "not acknowledged: kept");
        store.acknowledge(&req.event_id.to_string(), now).unwrap();
        store.set_clock(move || now + 2 * day);
        assert_eq!(store.prune(1, now + 2 * day).unwrap(), 1);
        assert!(!info.dir.join("photo.jpg").exists() && !info.dir.join("annotated.jpg").exists());
        let prune = crate::evidence::store::bundles(&dir.path().join("evidence")).unwrap().last().unwrap().1.clone();
        let prune: Value = serde_json::from_slice(&std::fs::read(prune.join("manifest.json")).unwrap()).unwrap();
        let mut removed: Vec<String> =
            serde_json::from_value(prune["record"]["targets"][0]["removed"].clone()).unwrap();
        removed.sort();
        assert_eq!(removed, ["annotated.jpg", "photo.jpg"]);
        let report = verified(dir.path(), &public);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let (ok, out) = third_party(dir.path(), &public);
        assert!(ok, "{out}");
    }

    /// A changed byte of the photo, or a removed file, is named by `vigil verify`.
    #[test]
    fn tampering_with_a_checkin_bundle_is_found() {
        for tamper in ["photo_byte", "remove_annotated", "remove_photo"] {
            let dir = tempfile::tempdir().unwrap();
            let (mut store, public) = store(dir.path());
            let info = store.write_checkin(&request(jpeg_photo(), true)).unwrap();
            match tamper {
                "photo_byte" => {
                    let path = info.dir.join("photo.jpg");
                    let mut bytes = std::fs::read(&path).unwrap();
                    let middle = bytes.len() / 2;
                    bytes[middle] ^= 0x01;
                    std::fs::write(&path, bytes).unwrap();
                }
                "remove_annotated" => std::fs::remove_file(info.dir.join("annotated.jpg")).unwrap(),
                _ => std::fs::remove_file(info.dir.join("photo.jpg")).unwrap(),
            }
            let report = verified(dir.path(), &public);
            assert!(!report.problems.is_empty(), "{tamper}: accepted");
            let named = report.problems.iter().any(|p| p.contains("photo.jpg") || p.contains("annotated.jpg"));
            assert!(named, "{tamper}: {:?}", report.problems);
            let (ok, out) = third_party(dir.path(), &public);
            assert!(!ok && (out.contains("photo.jpg") || out.contains("annotated.jpg")), "{tamper}: {out}");
        }
    }

    /// A request the store cannot write (a float in `checkin`: not canonical JSON) leaves no entry and
    /// moves no sequence; the next one is written as usual.
    #[test]
    fn a_failed_write_leaves_nothing_behind_and_floats_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, public) = store(dir.path());
        let mut req = request(jpeg_photo(), true);
        req.checkin["position"]["accuracy_m"] = json!(12.5);
        let e = store.write_checkin(&req).unwrap_err().to_string();
        assert!(e.contains("checkin.position.accuracy_m"), "{e}");
        let left: Vec<_> = std::fs::read_dir(dir.path().join("evidence")).unwrap().collect();
        assert!(left.is_empty(), "nothing written: {left:?}");
        assert!(store.head().is_none());
        store.write_checkin(&request(jpeg_photo(), true)).unwrap();
        assert!(verified(dir.path(), &public).problems.is_empty());
    }
}
