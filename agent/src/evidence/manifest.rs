//! The content of a bundle's manifest: what happened (the event), what the bundle holds (clip,
//! snapshot, detections, files). The store adds the chain fields around it (schema, sequence, previous
//! manifest, device, models, created) and signs the whole.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::store::EvidenceRequest;
use crate::hashing::sha256_hex;
use crate::source::clip::ClipInfo;

/// RFC 3339 UTC with milliseconds, as every time in a manifest.
pub fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Who wrote the bundle: `agent` in every v2 manifest.
pub const AGENT_NAME: &str = "vigil";
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The camera an event was seen on, as its configuration names it (manifest `camera`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraIdentity {
    pub id: String,
    /// Its role (`ward`, `dialysis_room`, `settlement_window`).
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its URL with credentials replaced by `***` ([`crate::redact::redact_url`]).
    pub url_redacted: String,
}

/// What stands for a camera's role and URL when they are not known: a request saved by an older
/// version for a camera no longer configured.
pub const UNKNOWN: &str = "unknown";

impl CameraIdentity {
    /// The identity of a configured camera; its URL is redacted here, so no credential can reach a
    /// manifest.
    pub fn new(id: &str, role: &str, name: Option<&str>, url: &str) -> CameraIdentity {
        CameraIdentity {
            id: id.to_owned(),
            role: role.to_owned(),
            name: name.map(str::to_owned),
            url_redacted: crate::redact::redact_url(url),
        }
    }

    /// A camera known only by its id.
    pub fn unknown(id: &str) -> CameraIdentity {
        CameraIdentity { id: id.to_owned(), role: UNKNOWN.into(), name: None, url_redacted: UNKNOWN.into() }
    }

    pub fn is_unknown(&self) -> bool {
        self.role == UNKNOWN && self.url_redacted == UNKNOWN
    }
}

/// A bundle's JPEG (quality 90): `snapshot.jpg` (boxes drawn) and `frame.jpg` (the frame as seen).
pub fn jpeg(img: &image::RgbImage) -> Result<Vec<u8>, String> {
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(img).map_err(|e| e.to_string())?;
    Ok(jpeg)
}

/// A file of the bundle, as `files` lists it.
pub struct BundleFile<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
}

/// The content fields of a bundle's manifest for `req`, whose clip `clip` was cut and whose snapshot
/// is `snapshot_size` (width, height) pixels; `files` are the media files written beside it.
pub fn bundle_content(
    req: &EvidenceRequest,
    clip: &ClipInfo,
    snapshot_size: (u32, u32),
    files: &[BundleFile<'_>],
) -> Map<String, Value> {
    let mut event = json!({
        "id": req.event_id.to_string(),
        "kind": req.kind,
        "camera": req.camera,
        "at": time(req.at),
        "details": req.details,
    });
    if let (Some(onset), Value::Object(fields)) = (req.onset, &mut event) {
        fields.insert("onset".into(), time(onset).into());
    }
    let content = json!({
        "agent": {"name": AGENT_NAME, "version": AGENT_VERSION},
        "camera": req.camera_info,
        "decision": {"thresholds": req.thresholds},
        "event": event,
        "clip": {
            "requested_from": time(req.clip_from),
            "requested_to": time(req.clip_to),
            "start": time(clip.start),
            "end": time(clip.end),
            "frames": clip.frames,
        },
        "snapshot": {"at": time(req.snapshot_at), "width": snapshot_size.0, "height": snapshot_size.1},
        "detections": req.detections.iter().map(|d| json!({
            "label": d.label,
            "box": d.bbox.map(|v| v.round() as i64),
            "score": format!("{:.3}", d.score),
        })).collect::<Vec<Value>>(),
        "files": files
            .iter()
            .map(|f| (f.name.to_owned(), json!({"sha256": sha256_hex(f.bytes), "bytes": f.bytes.len()})))
            .collect::<Map<String, Value>>(),
    });
    let mut content = content;
    if !clip.missing.is_empty() {
        let missing: Vec<Value> =
            clip.missing.iter().map(|m| json!({"from": time(m.from), "to": time(m.to), "reason": m.reason})).collect();
        content["clip"]["missing"] = Value::Array(missing);
    }
    match content {
        Value::Object(map) => map,
        _ => unreachable!("built as an object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::store::Detection;
    use crate::source::clip::Missing;
    use std::time::{Duration, UNIX_EPOCH};

    /// Every v2 content field is there, with the type the format gives it (strings for times and
    /// quantities; no floating-point number anywhere).
    #[test]
    fn the_content_fields_are_present_and_typed() {
        let at = UNIX_EPOCH + Duration::from_millis(1_800_000_000_250);
        let secs = Duration::from_secs;
        let req = EvidenceRequest {
            event_id: uuid::Uuid::now_v7(),
            kind: "camera_tamper".into(),
            camera: "door".into(),
            camera_info: CameraIdentity::new("door", "ward", None, "rtsp://u:secret@cam/live"),
            at,
            onset: Some(at - secs(5)),
            thresholds: [("covered_secs".to_owned(), "5".to_owned())].into(),
            details: [("tamper".to_owned(), "covered".to_owned())].into(),
            snapshot: image::RgbImage::new(4, 2),
            snapshot_at: at,
            detections: vec![Detection { label: "person".into(), bbox: [1.0, 2.0, 3.4, 4.6], score: 0.5 }],
            recordings: "/nowhere".into(),
            clip_from: at - secs(15),
            clip_to: at + secs(10),
        };
        let clip = ClipInfo {
            start: at - secs(16),
            end: at + secs(2),
            frames: 180,
            segments: 2,
            missing: vec![Missing { from: at + secs(2), to: at + secs(10), reason: "not recorded: …".into() }],
        };
        let files = [
            BundleFile { name: "clip.mp4", bytes: b"clip" },
            BundleFile { name: "snapshot.jpg", bytes: b"boxes" },
            BundleFile { name: "frame.jpg", bytes: b"frame" },
        ];
        let m = Value::Object(bundle_content(&req, &clip, (4, 2), &files));
        assert_eq!(m["agent"], json!({"name": "vigil", "version": env!("CARGO_PKG_VERSION")}));
        assert_eq!(m["camera"], json!({"id": "door", "role": "ward", "url_redacted": "rtsp://u:***@cam/live"}));
        assert!(!m.to_string().contains("secret"), "no credential in a manifest");
        assert_eq!(m["decision"], json!({"thresholds": {"covered_secs": "5"}}));
        assert_eq!(m["event"]["at"], "2027-01-15T08:00:00.250Z");
        assert_eq!(m["event"]["onset"], "2027-01-15T07:59:55.250Z");
        assert_eq!(m["clip"]["requested_from"], "2027-01-15T07:59:45.250Z");
        assert_eq!(
            m["clip"]["missing"],
            json!([{"from": "2027-01-15T08:00:02.250Z", "to": "2027-01-15T08:00:10.250Z", "reason": "not recorded: …"}])
        );
        let mut names: Vec<&String> = m["files"].as_object().unwrap().keys().collect();
        names.sort(); // the manifest's bytes are canonical (sorted) whatever the map's order
        assert_eq!(names, ["clip.mp4", "frame.jpg", "snapshot.jpg"]);
        assert_eq!(m["files"]["frame.jpg"]["bytes"], 5);
        assert_eq!(m["snapshot"], json!({"at": "2027-01-15T08:00:00.250Z", "width": 4, "height": 2}));
        fn no_floats(v: &Value) -> bool {
            match v {
                Value::Number(n) => !n.is_f64(),
                Value::Array(a) => a.iter().all(no_floats),
                Value::Object(o) => o.values().all(no_floats),
                _ => true,
            }
        }
        assert!(no_floats(&m), "{m}");
        // Optional fields stay out when there is nothing to say.
        let (req, clip) = (EvidenceRequest { onset: None, ..req }, ClipInfo { missing: Vec::new(), ..clip });
        let m = Value::Object(bundle_content(&req, &clip, (4, 2), &files));
        assert!(m["event"].get("onset").is_none() && m["clip"].get("missing").is_none(), "{m}");
    }
}
