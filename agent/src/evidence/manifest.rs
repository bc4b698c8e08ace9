//! The content of a bundle's manifest: what happened (the event), what the bundle holds (clip,
//! snapshot, detections, files). The store adds the chain fields around it (schema, sequence, previous
//! manifest, device, models, created) and signs the whole.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::store::EvidenceRequest;
use crate::hashing::sha256_hex;
use crate::source::clip::ClipInfo;

/// RFC 3339 UTC with milliseconds, as every time in a manifest.
pub fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
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
    let content = json!({
        "event": {
            "id": req.event_id.to_string(),
            "kind": req.kind,
            "camera": req.camera,
            "at": time(req.at),
            "details": req.details,
        },
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
    match content {
        Value::Object(map) => map,
        _ => unreachable!("built as an object"),
    }
}
