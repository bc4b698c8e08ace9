//! Event payloads (`vigil.event.v1`, docs/mqtt-api.md) and their outbox records.

use std::time::SystemTime;

use serde_json::{Value, json};

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

/// The outbox record of a decision.
pub fn decision_record(base: &str, site: &str, device: &str, decision: &Decision) -> NewRecord {
    let mut details = serde_json::Map::new();
    match &decision.kind {
        DecisionKind::CameraOffline { reason } => {
            details.insert("reason".into(), Value::from(reason.clone()));
        }
        DecisionKind::CameraTamper { tamper } | DecisionKind::CameraTamperCleared { tamper } => {
            details.insert("tamper".into(), Value::from(tamper.as_str()));
        }
        DecisionKind::CameraOnline => {}
        DecisionKind::SettlementVerified { transaction_id, claimed_id, distance } => {
            details.insert("transaction_id".into(), Value::from(transaction_id.clone()));
            details.insert("claimed_id".into(), Value::from(claimed_id.clone()));
            details.insert("distance".into(), Value::from(format!("{distance:.3}")));
        }
        DecisionKind::SettlementIdentityMismatch { transaction_id, claimed_id, distance, best_match } => {
            details.insert("transaction_id".into(), Value::from(transaction_id.clone()));
            details.insert("claimed_id".into(), Value::from(claimed_id.clone()));
            details.insert("distance".into(), distance.map_or(Value::Null, |d| Value::from(format!("{d:.3}"))));
            details.insert("best_match".into(), best_match.clone().map_or(Value::Null, Value::from));
        }
        DecisionKind::SettlementNoFace { transaction_id, claimed_id } => {
            details.insert("transaction_id".into(), Value::from(transaction_id.clone()));
            details.insert("claimed_id".into(), Value::from(claimed_id.clone()));
        }
        DecisionKind::IdentitySharedAcrossIds {
            transaction_id,
            claimed_id,
            other_transaction_id,
            other_claimed_id,
        } => {
            details.insert("transaction_id".into(), Value::from(transaction_id.clone()));
            details.insert("claimed_id".into(), Value::from(claimed_id.clone()));
            details.insert("other_transaction_id".into(), Value::from(other_transaction_id.clone()));
            details.insert("other_claimed_id".into(), Value::from(other_claimed_id.clone()));
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
