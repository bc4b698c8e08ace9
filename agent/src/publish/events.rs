//! Event payloads (`vigil.event.v1`, docs/mqtt-api.md) and their outbox records.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::decide::settlement::FaceJudgement;
use crate::decide::{Decision, DecisionKind};
use crate::outbox::NewRecord;

pub const SCHEMA: &str = "vigil.event.v1";

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// `<prefix>/<site>/<device>`.
pub fn base_topic(prefix: &str, site: &str, device: &str) -> String {
    format!("{prefix}/{site}/{device}")
}

fn object(value: &impl serde::Serialize) -> serde_json::Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

/// A distance as settlement events carry it: a decimal string with three decimals.
fn distance(d: f32) -> Value {
    Value::from(format!("{d:.3}"))
}

fn opt_distance(d: Option<f32>) -> Value {
    d.map_or(Value::Null, distance)
}

/// A judged face at a settlement window: where (integer pixels), the detector's score, and what it was
/// compared with.
fn face(f: &FaceJudgement) -> Value {
    json!({
        "box": f.bbox.map(|v| v.round() as i64),
        "score": format!("{:.3}", f.score),
        "good_frames": f.good_frames,
        "distance": opt_distance(f.distance),
        "best_match": f.best_match,
        "best_distance": opt_distance(f.best_distance),
    })
}

/// The `details` of a decision's event. Evidence manifests of settlement decisions carry the same facts
/// ([`flat_details`]).
pub fn details(kind: &DecisionKind) -> serde_json::Map<String, Value> {
    let mut details = serde_json::Map::new();
    match kind {
        DecisionKind::CameraOffline { reason } => {
            details.insert("reason".into(), Value::from(reason.clone()));
        }
        DecisionKind::CameraTamper { tamper } | DecisionKind::CameraTamperCleared { tamper } => {
            details.insert("tamper".into(), Value::from(tamper.as_str()));
        }
        DecisionKind::CameraOnline => {}
        DecisionKind::SettlementVerified { transaction_id, claimed_id, distance: d, face: f, faces_seen } => {
            details.insert("transaction_id".into(), Value::from(transaction_id.clone()));
            details.insert("claimed_id".into(), Value::from(claimed_id.clone()));
            details.insert("distance".into(), distance(*d));
            details.insert("face".into(), face(f));
            details.insert("faces_seen".into(), Value::from(*faces_seen));
        }
        DecisionKind::SettlementIdentityMismatch {
            transaction_id,
            claimed_id,
            distance: d,
            best_match,
            best_distance,
            faces,
            faces_seen,
        } => {
            details.insert("transaction_id".into(), Value::from(transaction_id.clone()));
            details.insert("claimed_id".into(), Value::from(claimed_id.clone()));
            details.insert("distance".into(), opt_distance(*d));
            details.insert("best_match".into(), best_match.clone().map_or(Value::Null, Value::from));
            details.insert("best_distance".into(), opt_distance(*best_distance));
            details.insert("faces".into(), Value::from(faces.iter().map(face).collect::<Vec<_>>()));
            details.insert("faces_judged".into(), Value::from(faces.len()));
            details.insert("faces_seen".into(), Value::from(*faces_seen));
        }
        DecisionKind::SettlementNoFace { transaction_id, claimed_id, faces_seen } => {
            details.insert("transaction_id".into(), Value::from(transaction_id.clone()));
            details.insert("claimed_id".into(), Value::from(claimed_id.clone()));
            details.insert("faces_seen".into(), Value::from(*faces_seen));
        }
        DecisionKind::IdentitySharedAcrossIds {
            transaction_id,
            claimed_id,
            other_transaction_id,
            other_claimed_id,
            other_at,
            distance: d,
            face: f,
        } => {
            details.insert("transaction_id".into(), Value::from(transaction_id.clone()));
            details.insert("claimed_id".into(), Value::from(claimed_id.clone()));
            details.insert("other_transaction_id".into(), Value::from(other_transaction_id.clone()));
            details.insert("other_claimed_id".into(), Value::from(other_claimed_id.clone()));
            details.insert("other_at".into(), Value::from(time(*other_at)));
            details.insert("distance".into(), distance(*d));
            details.insert("face".into(), face(f));
        }
        DecisionKind::PhysicianAbsent { physician, shift_start, shift_end, since } => {
            details.insert("physician".into(), Value::from(physician.clone()));
            details.insert("shift_start".into(), Value::from(time(*shift_start)));
            details.insert("shift_end".into(), Value::from(time(*shift_end)));
            details.insert("unseen_since".into(), Value::from(time(*since)));
        }
        DecisionKind::PhysicianShiftSummary(s) => {
            let opt = |t: Option<SystemTime>| t.map_or(Value::Null, |t| Value::from(time(t)));
            details.insert("physician".into(), Value::from(s.physician.clone()));
            details.insert("shift_start".into(), Value::from(time(s.shift_start)));
            details.insert("shift_end".into(), Value::from(time(s.shift_end)));
            details.insert("watched_from".into(), Value::from(time(s.watched_from)));
            details.insert("first_seen".into(), opt(s.first_seen));
            details.insert("last_seen".into(), opt(s.last_seen));
            details.insert("sightings".into(), Value::from(s.sightings));
            details.insert("seen_minutes".into(), Value::from(s.seen_minutes));
            details.insert("absences".into(), Value::from(s.absences));
            details.insert("cameras".into(), Value::from(s.cameras.clone()));
        }
        DecisionKind::BedAbsent(a) | DecisionKind::BedAbsenceEscalated(a) => {
            details = object(a);
        }
        DecisionKind::RollcallSummary(report) => details = object(report),
        DecisionKind::Dialysis(outcome) => details = object(outcome),
        DecisionKind::RecordingStopped { reason } => {
            details.insert("reason".into(), Value::from(reason.clone()));
        }
        DecisionKind::RecordingResumed { stopped_secs } => {
            details.insert("stopped_secs".into(), Value::from(*stopped_secs));
        }
    }
    details
}

/// Event details as an evidence manifest's `details` (an object of strings): nested objects and lists
/// of objects as dotted keys (`faces.0.best_match`, from 0), lists of numbers comma-separated
/// (`face.box` = `"412,188,598,420"`), numbers in decimal; `null` (nothing known, e.g. no enrolled person
/// near enough) leaves the key out.
pub fn flat_details(details: &serde_json::Map<String, Value>) -> BTreeMap<String, String> {
    fn walk(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
        match value {
            Value::Null => {}
            Value::String(s) => {
                out.insert(prefix.to_owned(), s.clone());
            }
            Value::Bool(_) | Value::Number(_) => {
                out.insert(prefix.to_owned(), value.to_string());
            }
            Value::Array(items) if items.iter().all(|v| !v.is_object() && !v.is_array()) => {
                let text: Vec<String> =
                    items.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect();
                out.insert(prefix.to_owned(), text.join(","));
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(&format!("{prefix}.{i}"), v, out);
                }
            }
            Value::Object(map) => {
                for (k, v) in map {
                    walk(&format!("{prefix}.{k}"), v, out);
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    for (k, v) in details {
        walk(k, v, &mut out);
    }
    out
}

/// The outbox record of a decision.
pub fn decision_record(base: &str, site: &str, device: &str, decision: &Decision) -> NewRecord {
    let details = details(&decision.kind);
    // Events about a person rather than a camera (physicians) carry no camera.
    let camera = (!decision.camera.is_empty()).then(|| decision.camera.clone());
    let payload = json!({
        "schema": SCHEMA,
        "event_id": decision.id.to_string(),
        "kind": decision.name(),
        "site": site,
        "device": device,
        "camera": camera,
        "at": time(decision.at),
        "details": details,
        "evidence": if decision.evidence { json!({"status": "pending"}) } else { Value::Null },
    });
    NewRecord {
        event_id: decision.id.to_string(),
        topic: format!("{base}/events/{}", decision.name()),
        payload: serde_json::to_vec(&payload).unwrap_or_default(),
        camera,
        evidence: None,
    }
}

/// The `evidence_ready` record announcing a written bundle; its delivery acknowledges the bundle.
pub fn evidence_record(
    base: &str,
    site: &str,
    device: &str,
    camera: &str,
    event_id: &str,
    bundle: &str,
    sequence: u64,
    manifest_sha256: &str,
) -> NewRecord {
    let id = uuid::Uuid::now_v7().to_string();
    let payload = json!({
        "schema": SCHEMA,
        "event_id": id,
        "kind": "evidence_ready",
        "site": site,
        "device": device,
        "camera": camera,
        "at": time(SystemTime::now()),
        "details": {"for_event_id": event_id, "bundle": bundle, "sequence": sequence, "manifest_sha256": manifest_sha256},
        "evidence": null,
    });
    NewRecord {
        event_id: id,
        topic: format!("{base}/events/evidence_ready"),
        payload: serde_json::to_vec(&payload).unwrap_or_default(),
        camera: Some(camera.to_owned()),
        evidence: Some(event_id.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(bbox: [f32; 4], score: f32, distance: f32, best: Option<(&str, f32)>) -> FaceJudgement {
        FaceJudgement {
            bbox,
            score,
            good_frames: 3,
            distance: Some(distance),
            best_match: best.map(|b| b.0.to_owned()),
            best_distance: best.map(|b| b.1),
        }
    }

    /// The defect: signed manifests of an accusation held only the transaction and claimed id, and
    /// every face scored "1.000". Now they carry the event's facts, each judged face's included.
    #[test]
    fn mismatch_manifest_names_distance_and_best_match() {
        let kind = DecisionKind::SettlementIdentityMismatch {
            transaction_id: "tx-2".into(),
            claimed_id: "p-biden".into(),
            distance: Some(0.874),
            best_match: Some("p-obama".into()),
            best_distance: Some(0.312),
            faces: vec![
                judged([700.4, 200.0, 860.0, 400.0], 0.84, 0.874, Some(("p-obama", 0.312))),
                judged([300.0, 180.0, 480.0, 400.0], 0.91, 0.902, None),
            ],
            faces_seen: 2,
        };
        let event = details(&kind);
        assert_eq!(event["best_distance"], "0.312");
        assert_eq!(event["faces"][1]["best_match"], Value::Null);
        assert_eq!(event["faces"][0]["box"], json!([700, 200, 860, 400]));
        let manifest = flat_details(&event);
        let get = |k: &str| manifest.get(k).map(String::as_str);
        assert_eq!(get("transaction_id"), Some("tx-2"));
        assert_eq!(get("claimed_id"), Some("p-biden"));
        assert_eq!(get("distance"), Some("0.874"));
        assert_eq!(get("best_match"), Some("p-obama"));
        assert_eq!(get("best_distance"), Some("0.312"));
        assert_eq!((get("faces_seen"), get("faces_judged")), (Some("2"), Some("2")));
        assert_eq!(get("faces.0.box"), Some("700,200,860,400"));
        assert_eq!(get("faces.0.score"), Some("0.840"));
        assert_eq!(get("faces.0.best_match"), Some("p-obama"));
        assert_eq!(get("faces.1.distance"), Some("0.902"));
        assert_eq!(get("faces.1.score"), Some("0.910"));
        assert_eq!(get("faces.1.best_match"), None, "nobody enrolled near the companion: no key");

        let shared = DecisionKind::IdentitySharedAcrossIds {
            transaction_id: "tx-4".into(),
            claimed_id: "p-carol".into(),
            other_transaction_id: "tx-1".into(),
            other_claimed_id: "p-obama".into(),
            other_at: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000),
            distance: 0.213,
            face: judged([1.0, 2.0, 3.0, 4.0], 0.84, 0.9, None),
        };
        let manifest = flat_details(&details(&shared));
        let get = |k: &str| manifest.get(k).map(String::as_str);
        assert_eq!((get("other_transaction_id"), get("other_claimed_id")), (Some("tx-1"), Some("p-obama")));
        assert_eq!(get("other_at"), Some("2027-01-15T08:00:00.000Z"));
        assert_eq!(get("distance"), Some("0.213"));
        assert_eq!(get("face.score"), Some("0.840"));
    }
}
