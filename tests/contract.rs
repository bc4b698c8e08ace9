//! The wire contract (docs/mqtt-api.md, docs/contract/): every payload the code builds equals the
//! documentation's example of its kind, validates against its JSON Schema, and the AsyncAPI document
//! lists exactly the topics the code uses. As config/vigil.example.toml is parsed by a test, the
//! examples in docs/mqtt-api.md cannot drift from the code: each one is rebuilt here from the same facts
//! through the code that builds real events and compared field by field.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use serde_json::{Value, json};
use vigil::decide::dialysis::{PatientMatch, SessionOutcome, SessionVerdict};
use vigil::decide::liveness::{Cue, Liveness};
use vigil::decide::physicians::ShiftSummary;
use vigil::decide::presence::{Lighting, StaleReference};
use vigil::decide::rollcall::{Absence, BedRef, RollcallSummary};
use vigil::decide::settlement::FaceJudgement;
use vigil::decide::{Decision, DecisionKind, PhoneCheck, RollcallReport, TamperKind};
use vigil::phones::{Check, CheckName, CheckReport, Mode, Position};
use vigil::publish::commands::{self, CmdResult, Reject};
use vigil::publish::events::{self, ChainHead, EventKind, EventPayload, EvidenceEpochDetails, EvidenceReadyDetails};
use vigil::publish::results;

const SITE: &str = "hosp-0427";
const DEVICE: &str = "edge-ward3";

fn t(text: &str) -> SystemTime {
    vigil::times::parse(text, vigil::times::Naive::Refuse).unwrap()
}

/// A ```json block of docs/mqtt-api.md: where it is and what it holds.
struct Block {
    line: usize,
    heading: String,
    value: Value,
}

fn doc_blocks() -> Vec<Block> {
    let text = std::fs::read_to_string(common::repo("docs/mqtt-api.md")).unwrap();
    let (mut blocks, mut heading, mut open) = (Vec::new(), String::new(), None::<(usize, String)>);
    for (i, line) in text.lines().enumerate() {
        match &mut open {
            Some((start, body)) if line.trim_start().starts_with("```") => {
                let value = serde_json::from_str(body)
                    .unwrap_or_else(|e| panic!("docs/mqtt-api.md line {start}: the json block is not JSON: {e}"));
                blocks.push(Block { line: *start, heading: heading.clone(), value });
                open = None;
            }
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None if line.trim_start() == "```json" => open = Some((i + 1, String::new())),
            None if line.starts_with('#') => heading = line.trim_start_matches('#').trim().to_owned(),
            None => {}
        }
    }
    blocks
}

/// Differences between two JSON values, as `path: built … documented …` lines.
fn differences(path: &str, built: &Value, doc: &Value, out: &mut Vec<String>) {
    match (built, doc) {
        (Value::Object(a), Value::Object(b)) => {
            for key in a.keys().chain(b.keys()).collect::<BTreeSet<_>>() {
                let here = format!("{path}.{key}");
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => differences(&here, x, y, out),
                    (Some(_), None) => out.push(format!("{here}: built by the code, missing from the doc")),
                    (None, Some(_)) => out.push(format!("{here}: in the doc, not built by the code")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences(&format!("{path}[{i}]"), x, y, out);
            }
        }
        _ if built == doc => {}
        _ => out.push(format!("{path}: built {built}, documented {doc}")),
    }
}

fn face(bbox: [f32; 4], score: f32, good: usize, distance: f32, best: Option<(&str, f32)>) -> FaceJudgement {
    FaceJudgement {
        bbox,
        score,
        good_frames: good,
        distance: Some(distance),
        best_match: best.map(|b| b.0.to_owned()),
        best_distance: best.map(|b| b.1),
        liveness: None,
    }
}

fn decision(id: &str, camera: &str, at: &str, kind: DecisionKind) -> Decision {
    let mut d = Decision::new(camera, t(at), kind);
    d.id = id.parse().unwrap();
    d.evidence = d.needs_evidence();
    d
}

#[allow(clippy::too_many_arguments)]
fn dialysis(
    session: &str,
    patient: &str,
    chair: &str,
    at: &str,
    verdict: SessionVerdict,
    occupied: f64,
    unknown: f64,
    share: f64,
    patient_match: PatientMatch,
) -> DecisionKind {
    DecisionKind::Dialysis(SessionOutcome {
        session_id: session.into(),
        patient: patient.into(),
        camera: "dialysis-a".into(),
        chair: chair.into(),
        at: t(at),
        verdict,
        occupied_minutes: occupied,
        unknown_minutes: unknown,
        billed_minutes: 240,
        share,
        patient_match,
        face: None,
    })
}

/// A judged phone upload with the facts of docs/mqtt-api.md's example: the checks as (outcome, reason)
/// in check order.
#[allow(clippy::too_many_arguments)]
fn phone_check(
    phone: &str,
    mode: Mode,
    claimed: &str,
    bed: Option<&str>,
    captured: &str,
    received: &str,
    late: bool,
    position: (f64, f64, f64),
    checks: [(&str, &str); 8],
) -> PhoneCheck {
    let checks = CheckName::ALL
        .iter()
        .zip(checks)
        .map(|(name, (outcome, reason))| match outcome {
            "passed" => Check::passed(*name, reason, "…"),
            "failed" => Check::failed(*name, reason, "…"),
            _ => Check::skipped(*name, reason, "…"),
        })
        .collect();
    PhoneCheck {
        report: Box::new(CheckReport {
            capture_id: uuid::Uuid::now_v7(),
            phone_id: phone.into(),
            ward: "ward-3".into(),
            mode,
            claimed: claimed.into(),
            bed: bed.map(str::to_owned),
            camera: bed.map(|_| "ward3-room12".to_owned()),
            captured_at: t(captured),
            received_at: t(received),
            late,
            position: Some(Position { lat: position.0, lon: position.1, accuracy_m: position.2 }),
            checks,
        }),
    }
}

const PASSED_UP_TO_FACE: [(&str, &str); 7] = [
    ("passed", "registered_phone"),
    ("passed", "decoded"),
    ("passed", "browser_position"),
    ("passed", "inside"),
    ("passed", "on_time"),
    ("passed", "new_photo"),
    ("passed", "matches"),
];

fn with_bed_camera(outcome: &'static str, reason: &'static str) -> [(&'static str, &'static str); 8] {
    let p = PASSED_UP_TO_FACE;
    [p[0], p[1], p[2], p[3], p[4], p[5], p[6], (outcome, reason)]
}

fn bed(camera: &str, bed: &str, patient: Option<&str>) -> BedRef {
    BedRef { camera: camera.into(), bed: bed.into(), patient: patient.map(str::to_owned) }
}

/// One decision per event kind, with the facts of docs/mqtt-api.md's example of that kind. The
/// dialysis numbers are the unrounded values the code computes: the wire rounds them.
fn documented_decisions() -> Vec<Decision> {
    let absence = Absence {
        camera: "ward3-room12".into(),
        bed: "bed-2".into(),
        patient: "p-30118".into(),
        consecutive: 3,
        absent_since: t("2025-03-13T10:21:48.000Z"),
    };
    vec![
        decision(
            "01959271-79a0-79c3-b7aa-0796610c88da",
            "ward3-room12",
            "2025-03-14T02:17:45.120Z",
            DecisionKind::CameraOffline { reason: "no frame for 10 s".into() },
        ),
        decision(
            "01959272-ad4c-76e5-8766-4ceb064ce76c",
            "ward3-room12",
            "2025-03-14T02:19:03.884Z",
            DecisionKind::CameraOnline,
        ),
        decision(
            "01959407-6538-7b2a-83c0-1c8d2e68acd1",
            "ward3-room12",
            "2025-03-14T09:41:07.512Z",
            DecisionKind::CameraTamper { tamper: TamperKind::Covered, onset: t("2025-03-14T09:41:02.480Z") },
        ),
        decision(
            "0195940d-9d35-7d9d-a3f4-284eb7f35bd5",
            "ward3-room12",
            "2025-03-14T09:47:55.061Z",
            DecisionKind::CameraTamperCleared { tamper: TamperKind::Covered },
        ),
        decision(
            "0195941a-fe26-76da-a967-043e66dee294",
            "cashier-2",
            "2025-03-14T10:02:31.846Z",
            DecisionKind::SettlementVerified {
                transaction_id: "txn-20250314-000871".into(),
                claimed_id: "ins-3301958842".into(),
                distance: 0.4121,
                face: face([812.2, 203.6, 1003.0, 441.4], 0.8419, 3, 0.4121, Some(("ins-3301958842", 0.398))),
                faces_seen: 2,
            },
        ),
        decision(
            "0195941d-708d-7489-98e7-fd5421cd1953",
            "cashier-2",
            "2025-03-14T10:05:12.205Z",
            DecisionKind::SettlementIdentityMismatch {
                transaction_id: "txn-20250314-000874".into(),
                claimed_id: "ins-4410237765".into(),
                distance: Some(0.874),
                best_match: Some("ins-2208815430".into()),
                best_distance: Some(0.351),
                faces: vec![
                    face([802.0, 198.0, 996.0, 447.0], 0.842, 3, 0.874, Some(("ins-2208815430", 0.351))),
                    face([214.0, 230.0, 380.0, 431.0], 0.913, 4, 0.951, None),
                ],
                faces_seen: 2,
            },
        ),
        decision(
            "0195941f-d4c2-779b-a2db-2ff8300daa90",
            "cashier-2",
            "2025-03-14T10:07:48.930Z",
            DecisionKind::SettlementNoFace {
                transaction_id: "txn-20250314-000877".into(),
                claimed_id: "ins-1187203349".into(),
                faces_seen: 0,
            },
        ),
        decision(
            "01959422-c892-76fb-abeb-5ef50461431f",
            "cashier-2",
            "2025-03-14T10:11:02.417Z",
            DecisionKind::IdentitySharedAcrossIds {
                transaction_id: "txn-20250314-000880".into(),
                claimed_id: "ins-5120094471".into(),
                other_transaction_id: "txn-20250302-000213".into(),
                other_claimed_id: "ins-3301958842".into(),
                other_at: t("2025-03-02T15:40:19.002Z"),
                distance: 0.287,
                face: face([640.0, 212.0, 841.0, 470.0], 0.877, 3, 0.918, None),
            },
        ),
        decision(
            "01959425-2c10-7b3e-8d2a-41f7c9e6b0d2",
            "cashier-2",
            "2025-03-14T10:13:40.502Z",
            DecisionKind::SettlementSpoofSuspected {
                transaction_id: "txn-20250314-000885".into(),
                claimed_id: "ins-3301958842".into(),
                verdict: "settlement_verified".into(),
                verdict_event_id: "01959425-1b7e-7f0a-9c41-6f2d8b1e3a57".into(),
                face: FaceJudgement {
                    liveness: Some(Liveness {
                        score: Some(0.725),
                        suspected: true,
                        threshold: 0.5,
                        cue: Cue::RigidPlanarMotion,
                        frames: 14,
                        span_secs: 2.6,
                        deformation: 0.011,
                        motion: 0.093,
                    }),
                    ..face([812.2, 203.6, 1003.0, 441.4], 0.8419, 3, 0.4121, Some(("ins-3301958842", 0.398)))
                },
            },
        ),
        decision(
            "0195927b-8a16-7a77-bec3-b66689f6a160",
            "dialysis-a",
            "2025-03-14T02:28:44.694Z",
            DecisionKind::PhysicianAbsent {
                physician: "dr-0412".into(),
                shift_start: t("2025-03-14T00:00:00Z"),
                shift_end: t("2025-03-14T08:00:00Z"),
                since: t("2025-03-14T01:58:44.210Z"),
            },
        ),
        decision(
            "019593aa-d19c-7446-8ff0-afdeb005a01a",
            "",
            "2025-03-14T08:00:00Z",
            DecisionKind::PhysicianShiftSummary(ShiftSummary {
                physician: "dr-0412".into(),
                shift_start: t("2025-03-14T00:00:00Z"),
                shift_end: t("2025-03-14T08:00:00Z"),
                watched_from: t("2025-03-14T00:00:00Z"),
                first_seen: Some(t("2025-03-14T00:06:31.118Z")),
                last_seen: Some(t("2025-03-14T07:52:09.574Z")),
                sightings: 1873,
                seen_minutes: 211,
                absences: 1,
                cameras: vec!["dialysis-a".into(), "dialysis-b".into()],
            }),
        ),
        decision(
            "019595fb-5ca6-796c-8dc4-0d90bb3102a5",
            "ward3-room12",
            "2025-03-14T18:47:13Z",
            DecisionKind::BedAbsent(absence.clone()),
        ),
        decision(
            "019595fb-5cbe-77a8-854e-436cacc9ea74",
            "ward3-room12",
            "2025-03-14T18:47:13Z",
            DecisionKind::BedAbsenceEscalated(absence),
        ),
        decision(
            "019595fb-5cc7-7b97-97c2-5159c8f705ae",
            "",
            "2025-03-14T18:47:13Z",
            DecisionKind::RollcallSummary(RollcallReport {
                trigger: "scheduled".into(),
                summary: RollcallSummary {
                    checked: 14,
                    present: 12,
                    absent: 1,
                    unknown: 1,
                    unregistered: 2,
                    unregistered_occupied: 1,
                },
                absent: vec![bed("ward3-room12", "bed-2", Some("p-30118"))],
                unknown: vec![bed("ward3-room14", "bed-1", Some("p-30452"))],
                unregistered_occupied: vec![bed("ward3-room12", "bed-4", None)],
            }),
        ),
        decision(
            "019592f3-b638-7d45-aa41-55c5751b41e2",
            "dialysis-a",
            "2025-03-14T04:40:00.312Z",
            dialysis(
                "hd-20250314-0117",
                "p-10442",
                "chair-3",
                "2025-03-14T04:40:00.312Z",
                SessionVerdict::Verified,
                236.40853333333334,
                0.0,
                0.9850355555555556,
                PatientMatch::Matched,
            ),
        ),
        decision(
            "01959211-c3c0-7a9a-88d1-9ab08690094a",
            "dialysis-a",
            "2025-03-14T00:33:12.640Z",
            dialysis(
                "hd-20250314-0121",
                "p-10587",
                "chair-5",
                "2025-03-14T00:33:12.640Z",
                SessionVerdict::PatientMismatch {
                    distance: Some(0.97),
                    best_match: Some("p-20931".into()),
                    best_distance: Some(0.41),
                },
                2.8733333333333335,
                0.0,
                0.011972222222222223,
                PatientMatch::Mismatch,
            ),
        ),
        decision(
            "0195930f-2cfc-7e38-858d-5d0b3c6a0833",
            "dialysis-a",
            "2025-03-14T05:10:00.188Z",
            dialysis(
                "hd-20250314-0124",
                "p-11803",
                "chair-1",
                "2025-03-14T05:10:00.188Z",
                SessionVerdict::Short,
                131.19833333333332,
                0.0,
                0.5466597222222221,
                PatientMatch::Matched,
            ),
        ),
        decision(
            "01959406-5f16-7126-8420-5e90ae1149a9",
            "dialysis-a",
            "2025-03-14T09:40:00.406Z",
            dialysis(
                "hd-20250314-0130",
                "p-12077",
                "chair-6",
                "2025-03-14T09:40:00.406Z",
                SessionVerdict::ChairEmpty,
                0.0,
                0.0,
                0.0,
                PatientMatch::NotSeen,
            ),
        ),
        decision(
            "0195930f-2cff-727b-bb74-d369f86d85d8",
            "dialysis-a",
            "2025-03-14T05:10:00.191Z",
            dialysis(
                "hd-20250314-0126",
                "p-10995",
                "chair-2",
                "2025-03-14T05:10:00.191Z",
                SessionVerdict::Unverifiable,
                171.30499999999998,
                62.41,
                0.7137708333333332,
                PatientMatch::Matched,
            ),
        ),
        decision(
            "0195931a-55af-7f0e-9d2c-3f0f6a1e4b21",
            "ward3-room12",
            "2025-03-14T03:02:11.407Z",
            DecisionKind::RecordingStopped {
                reason: "No space left on the resource. (../plugins/elements/gstelements_private.c(338): \
                         gst_writev_iovecs (): /GstPipeline:pipeline3/GstSplitMuxSink:rec/GstFileSink:sink)"
                    .into(),
            },
        ),
        decision(
            "01959325-5e21-7a54-8d8e-6f2b8f0c1d77",
            "ward3-room12",
            "2025-03-14T03:14:12.001Z",
            DecisionKind::RecordingResumed { stopped_secs: 720 },
        ),
        decision(
            "0195a0c4-1b2e-7d3a-9c41-5e2f7a8b9c01",
            "ward3-room12",
            "2025-03-14T09:12:40.218Z",
            DecisionKind::BedsideCheckVerified(phone_check(
                "ph-7Kq2mX9pLw",
                Mode::Bedside,
                "p-30118",
                Some("bed-2"),
                "2025-03-14T09:12:31.904Z",
                "2025-03-14T09:12:40.218Z",
                false,
                (31.2304161, 121.4737009, 12.0),
                with_bed_camera("passed", "occupied"),
            )),
        ),
        decision("0195a11c-3d5a-7e61-8b0f-2c4d6e8fa013", "ward3-room12", "2025-03-14T11:02:07.530Z", {
            let mut checks = with_bed_camera("failed", "bed_empty");
            checks[3] = ("failed", "outside_geofence");
            checks[4] = ("passed", "late");
            DecisionKind::BedsideCheckRejected(phone_check(
                "ph-7Kq2mX9pLw",
                Mode::Bedside,
                "p-30118",
                Some("bed-2"),
                "2025-03-14T10:31:55.002Z",
                "2025-03-14T11:02:07.530Z",
                true,
                (31.241873, 121.490112, 8.5),
                checks,
            ))
        }),
        decision(
            "0195a2c4-0b7e-7d31-9a55-3c8e1f0b7d22",
            "ward3-room12",
            "2025-03-14T15:06:41.000Z",
            DecisionKind::RegionReferenceStale(StaleReference {
                region: "bed-2".into(),
                lighting: Lighting::NightIr,
                what: "structure",
                fit: 0.21249,
                shifted_fit: 0.7341,
                shift_px: [132.3, -3.6],
                since: t("2025-03-14T15:06:09.000Z"),
            }),
        ),
        decision("0195a07d-52c1-7f3e-a6b4-9d0e1f2a3b4c", "phone:ph-Vd3sQ8nT2a", "2025-03-14T08:03:12.771Z", {
            let mut checks = with_bed_camera("skipped", "not_applicable");
            checks[3] = ("passed", "within_accuracy");
            DecisionKind::PhysicianCheckin(phone_check(
                "ph-Vd3sQ8nT2a",
                Mode::Physician,
                "dr-0412",
                None,
                "2025-03-14T08:03:10.120Z",
                "2025-03-14T08:03:12.771Z",
                false,
                (31.230377, 121.474052, 31.0),
                checks,
            ))
        }),
    ]
}

fn documented_evidence_ready() -> EventPayload {
    let details = EvidenceReadyDetails {
        for_event_id: "01959407-6538-7b2a-83c0-1c8d2e68acd1".into(),
        bundle: "0000000042-01959407-6538-7b2a-83c0-1c8d2e68acd1".into(),
        sequence: 42,
        manifest_sha256: "5e513e4534c3881f1ea24637069021dd508a04596441d351567c25e63f47dbdb".into(),
        chain_head: head_42(),
    };
    let mut payload = events::evidence_payload(SITE, DEVICE, "ward3-room12", details, t("2025-03-14T09:41:20.318Z"));
    payload.event_id = "01959407-973e-7b12-a344-5ab58dcd2534".into();
    payload
}

fn head_42() -> ChainHead {
    ChainHead {
        sequence: 42,
        manifest_sha256: "5e513e4534c3881f1ea24637069021dd508a04596441d351567c25e63f47dbdb".into(),
        epoch: 1,
    }
}

fn documented_evidence_epoch() -> EventPayload {
    let details = EvidenceEpochDetails {
        epoch: 2,
        chain_head: ChainHead {
            sequence: 43,
            manifest_sha256: "0b7e1c9d54a3f2e8d6c4b2a0918f7e6d5c4b3a29180f7e6d5c4b3a2918070605".into(),
            epoch: 2,
        },
        previous_head: head_42(),
        reason: format!(
            "the evidence store /var/lib/vigil/evidence was empty at start, but this agent had written up to \
             42:{} (epoch 1): wiped or replaced",
            head_42().manifest_sha256
        ),
    };
    let mut payload = events::epoch_payload(SITE, DEVICE, details, t("2025-03-14T10:02:11.530Z"));
    payload.event_id = "01959412-3f4a-7c1e-9b2d-6e8f0a1b2c3d".into();
    payload
}

/// The retained evidence head as the publisher sends it.
fn documented_evidence_head() -> Value {
    serde_json::to_value(events::EvidenceHead::new(SITE, DEVICE, &head_42(), t("2025-03-14T09:41:20.402Z"))).unwrap()
}

/// Every event payload as it goes out (the bytes of its outbox record), by kind.
fn built_events() -> BTreeMap<&'static str, Value> {
    let mut built = BTreeMap::new();
    for d in documented_decisions() {
        let record = events::decision_record("vigil/v1/hosp-0427/edge-ward3", SITE, DEVICE, &d);
        let kind = EventKind::of(&d.kind);
        assert_eq!(kind.as_str(), d.name(), "publish and decide name the kind differently");
        assert_eq!(record.topic, format!("vigil/v1/hosp-0427/edge-ward3/events/{}", kind.as_str()));
        let value: Value = serde_json::from_slice(&record.payload).unwrap();
        assert!(built.insert(kind.as_str(), value).is_none(), "two samples of {}", kind.as_str());
    }
    let record = events::evidence_record(
        "vigil/v1/h/d",
        SITE,
        DEVICE,
        "ward3-room12",
        "01959407-6538-7b2a-83c0-1c8d2e68acd1",
        "0000000042-01959407-6538-7b2a-83c0-1c8d2e68acd1",
        42,
        &"5e".repeat(32),
        head_42(),
    );
    assert_eq!(record.topic, "vigil/v1/h/d/events/evidence_ready");
    let mut from_record: Value = serde_json::from_slice(&record.payload).unwrap();
    let mut documented = events::to_json(&documented_evidence_ready());
    for v in [&mut from_record, &mut documented] {
        let o = v.as_object_mut().unwrap();
        o.remove("event_id");
        o.remove("at");
        o["details"].as_object_mut().unwrap().remove("manifest_sha256");
    }
    assert_eq!(from_record, documented, "evidence_record and evidence_payload build the same event");
    built.insert("evidence_ready", events::to_json(&documented_evidence_ready()));
    let record = events::epoch_record("vigil/v1/h/d", SITE, DEVICE, documented_evidence_epoch_details());
    assert_eq!(record.topic, "vigil/v1/h/d/events/evidence_epoch");
    let mut from_record: Value = serde_json::from_slice(&record.payload).unwrap();
    let mut documented = events::to_json(&documented_evidence_epoch());
    for v in [&mut from_record, &mut documented] {
        let o = v.as_object_mut().unwrap();
        o.remove("event_id");
        o.remove("at");
    }
    assert_eq!(from_record, documented, "epoch_record and epoch_payload build the same event");
    built.insert("evidence_epoch", events::to_json(&documented_evidence_epoch()));
    for (kind, payload) in documented_config_events() {
        let record = events::config_record("vigil/v1/h/d", SITE, DEVICE, payload.details.clone());
        assert_eq!(record.topic, format!("vigil/v1/h/d/events/{kind}"));
        let mut from_record: Value = serde_json::from_slice(&record.payload).unwrap();
        let mut documented = events::to_json(&payload);
        for v in [&mut from_record, &mut documented] {
            let o = v.as_object_mut().unwrap();
            o.remove("event_id");
            o.remove("at");
        }
        assert_eq!(from_record, documented, "config_record and config_payload build the same {kind}");
        built.insert(kind, events::to_json(&payload));
    }
    built.insert("console_audit", documented_console_audit());
    built
}

/// `console_audit` as the audit relay builds it, with the facts of the doc's example: the event id is the
/// one derived from the audit store's instance id and the row's id.
fn documented_console_audit() -> Value {
    let instance = uuid::Uuid::parse_str("6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b").unwrap();
    let details = || events::ConsoleAuditDetails {
        audit_id: 42,
        who: "zhang.wei".into(),
        role: "supervisor".into(),
        action: "legal_hold".into(),
        address: "10.20.3.41".into(),
        outcome: "ok".into(),
        details: json!({"event_id": "0195a1f0-7c2d-7e4a-9b1c-5d3e2f1a0b9c", "reason": "insurer's inquiry 2025-117"}),
    };
    let at = t("2025-03-14T10:02:17.415Z");
    let record = events::audit_record("vigil/v1/h/d", SITE, DEVICE, &instance, details(), at);
    assert_eq!(record.topic, "vigil/v1/h/d/events/console_audit");
    let payload = events::to_json(&events::audit_payload(SITE, DEVICE, &instance, details(), at));
    assert_eq!(serde_json::from_slice::<Value>(&record.payload).unwrap(), payload, "the same row, the same event");
    payload
}

const NEW_CONFIG: &str = "9d4c1f0e7b2a5c8d3e6f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d";
const OLD_CONFIG: &str = "2b7e9a4c1d0f8e3a6b5c4d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";

/// `config_applied` and `config_rolled_back` with the facts of the doc's examples.
fn documented_config_events() -> Vec<(&'static str, EventPayload)> {
    let applied = events::Details::ConfigApplied(events::ConfigAppliedDetails {
        nonce: "5b0e2c9a7d4f4e1a9c3b8d6e2f1a0b9c".into(),
        config_sha256: NEW_CONFIG.into(),
        previous_sha256: OLD_CONFIG.into(),
        cameras: vec!["window-1".into(), "window-2".into()],
        trial_secs: events::real(7.5123),
    });
    let rolled_back = events::Details::ConfigRolledBack(events::ConfigRolledBackDetails {
        nonce: "c41d7e2a9b0f4a6e8d3c5b1a7f9e2d0c".into(),
        config_sha256: NEW_CONFIG.into(),
        rejected_sha256: "e0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f".into(),
        reason: "unhealthy",
        cameras_offline: vec!["window-1".into()],
        mqtt_connected: Some(true),
        detail: "not healthy within 30 s: camera window-1 offline".into(),
    });
    let mut out = Vec::new();
    for (kind, details, id, at) in [
        ("config_applied", applied, "0195a2b8-6f31-7c4e-8a1d-3b5c7e9f0a12", "2025-03-14T11:20:41.318Z"),
        ("config_rolled_back", rolled_back, "0195a2c2-0d4e-7b3a-9f5c-1e2d3c4b5a69", "2025-03-14T11:31:09.870Z"),
    ] {
        let mut payload = events::config_payload(SITE, DEVICE, details, t(at));
        assert_eq!(payload.kind.as_str(), kind);
        payload.event_id = id.into();
        out.push((kind, payload));
    }
    out
}

fn documented_evidence_epoch_details() -> EvidenceEpochDetails {
    match documented_evidence_epoch().details {
        events::Details::EvidenceEpoch(d) => d,
        _ => unreachable!("an evidence_epoch"),
    }
}

#[test]
fn evidence_head_matches_its_documented_example() {
    let blocks = doc_blocks();
    let documented: Vec<&Block> = blocks.iter().filter(|b| b.value["schema"] == "vigil.evidence-head.v1").collect();
    assert_eq!(documented.len(), 1, "one evidence head example in docs/mqtt-api.md");
    let mut diffs = Vec::new();
    differences("", &documented_evidence_head(), &documented[0].value, &mut diffs);
    assert!(diffs.is_empty(), "evidence head (docs/mqtt-api.md line {}):\n{}", documented[0].line, diffs.join("\n"));
    assert_eq!(events::head_topic("vigil/v1/h/d"), "vigil/v1/h/d/evidence/head");
}

/// The retained health message as the runtime builds it, with the facts of the doc's example.
fn documented_health() -> Value {
    use vigil::publish::health::{
        CameraHealth, EvidenceHealth, HEALTH_SCHEMA, Health, OutboxHealth, ProcessHealth, StorageHealth,
    };
    let health = Health {
        schema: HEALTH_SCHEMA,
        site: SITE.into(),
        device: DEVICE.into(),
        at: "2025-03-14T09:42:00.118Z".into(),
        version: "0.1.0".into(),
        uptime_secs: 86_412,
        ready: true,
        not_ready: Vec::new(),
        cameras: vec![
            CameraHealth::new("ward3-room12", true, 5.0, Vec::new(), 0),
            CameraHealth::new("ward3-door", false, 0.0, Vec::new(), 4),
            CameraHealth::new("window-1", true, 4.983_251, vec!["moved"], 1),
        ],
        outbox: OutboxHealth { undelivered: Some(3), oldest_undelivered_age_secs: Some(42) },
        evidence: EvidenceHealth { pending: 1, bundles_written: 17 },
        storage: StorageHealth { free_bytes: Some(98_765_422_592) },
        process: ProcessHealth::new(1834.270_4, 412_876_800),
    };
    serde_json::to_value(health).unwrap()
}

#[test]
fn health_matches_its_documented_example() {
    let blocks = doc_blocks();
    let documented: Vec<&Block> = blocks.iter().filter(|b| b.value["schema"] == "vigil.health.v1").collect();
    assert_eq!(documented.len(), 1, "one health example in docs/mqtt-api.md");
    let mut diffs = Vec::new();
    differences("", &documented_health(), &documented[0].value, &mut diffs);
    assert!(diffs.is_empty(), "health (docs/mqtt-api.md line {}):\n{}", documented[0].line, diffs.join("\n"));
    assert_eq!(vigil::publish::health::health_topic("vigil/v1/h/d"), "vigil/v1/h/d/health");
}

/// One cmd-result per outcome: `ok`, and each refusal reason, with the facts of the doc's examples.
fn built_cmd_results() -> BTreeMap<String, Value> {
    let nonce = Some("9f1c2a7be04d4e1b8c3d5a6f7e8b9c0d");
    let at = t("2025-03-14T09:50:00.214Z");
    let refused = |reason: Reject, at: &str| CmdResult::new("ping", nonce, Err(reason), t(at));
    let results = [
        CmdResult::new("ping", nonce, Ok(json!({"pong": "2025-03-14T09:50:00.214Z"})), at),
        CmdResult::new("ping", None, Err(Reject::Malformed("missing nonce (8..128 characters)".into())), at),
        refused(Reject::Unsigned, "2025-03-14T09:50:00.214Z"),
        refused(Reject::UnsupportedAlg("\"none\"".into()), "2025-03-14T09:50:00.214Z"),
        refused(Reject::BadSignature, "2025-03-14T09:50:00.214Z"),
        refused(Reject::Expired, "2025-03-14T09:50:00.214Z"),
        refused(Reject::Replayed, "2025-03-14T09:50:41.007Z"),
        CmdResult::new("reboot", nonce, Err(Reject::UnknownCommand("reboot".into())), at),
        refused(
            Reject::Failed("no platform key configured (mqtt.platform_public_key)".into()),
            "2025-03-14T09:50:00.214Z",
        ),
    ];
    let mut built = BTreeMap::new();
    for r in results {
        let key = r.reason.unwrap_or("ok").to_owned();
        built.insert(key, serde_json::to_value(&r).unwrap());
    }
    let reasons: BTreeSet<&str> = built.keys().map(String::as_str).filter(|k| *k != "ok").collect();
    assert_eq!(reasons, Reject::CODES.into_iter().collect(), "a sample of every refusal reason");
    built
}

fn cmd_result_key(v: &Value) -> String {
    if v["ok"] == true { "ok".into() } else { v["reason"].as_str().unwrap_or("?").into() }
}

#[test]
fn every_event_kind_matches_its_documented_example() {
    let built = built_events();
    let emitted: BTreeSet<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
    let sampled: BTreeSet<&str> = built.keys().copied().collect();
    assert_eq!(sampled, emitted, "the test builds a sample of every kind the code can emit");

    let mut documented: BTreeMap<String, &Block> = BTreeMap::new();
    let blocks = doc_blocks();
    for b in blocks.iter().filter(|b| b.value["schema"] == "vigil.event.v1") {
        let kind = b.value["kind"].as_str().unwrap_or_else(|| panic!("line {}: an event without kind", b.line));
        assert!(documented.insert(kind.to_owned(), b).is_none(), "docs/mqtt-api.md has two examples of {kind}");
    }
    let mut problems = Vec::new();
    for kind in &emitted {
        if !documented.contains_key(*kind) {
            problems.push(format!("{kind}: the code emits it, docs/mqtt-api.md has no example"));
        }
    }
    for (kind, b) in &documented {
        match built.get(kind.as_str()) {
            None => problems.push(format!("{kind} (line {}): documented, but the code never emits it", b.line)),
            Some(value) => {
                let mut diffs = Vec::new();
                differences("", value, &b.value, &mut diffs);
                problems.extend(diffs.into_iter().map(|d| format!("{kind} (docs/mqtt-api.md line {}){d}", b.line)));
            }
        }
    }
    assert!(problems.is_empty(), "the code and docs/mqtt-api.md disagree:\n{}", problems.join("\n"));
}

#[test]
fn every_cmd_result_matches_its_documented_example() {
    let built = built_cmd_results();
    let mut documented: BTreeMap<String, &Block> = BTreeMap::new();
    let blocks = doc_blocks();
    for b in blocks.iter().filter(|b| b.value["schema"] == "vigil.cmd-result.v1") {
        let key = cmd_result_key(&b.value);
        assert!(documented.insert(key.clone(), b).is_none(), "docs/mqtt-api.md has two cmd-result examples for {key}");
    }
    let mut problems = Vec::new();
    for key in built.keys() {
        if !documented.contains_key(key) {
            problems.push(format!("cmd-result {key}: the code sends it, docs/mqtt-api.md has no example"));
        }
    }
    for (key, b) in &documented {
        match built.get(key) {
            None => problems.push(format!("cmd-result {key} (line {}): documented, never sent", b.line)),
            Some(value) => {
                let mut diffs = Vec::new();
                differences("", value, &b.value, &mut diffs);
                problems.extend(diffs.into_iter().map(|d| format!("cmd-result {key} (line {}){d}", b.line)));
            }
        }
    }
    assert!(problems.is_empty(), "the code and docs/mqtt-api.md disagree:\n{}", problems.join("\n"));
}

/// Every non-integer number of a payload has at most three decimals (the one number format).
fn numbers_are_rounded(path: &str, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap();
            if (x * 1000.0 - (x * 1000.0).round()).abs() > 1e-6 {
                out.push(format!("{path}: {x} has more than three decimals"));
            }
        }
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| numbers_are_rounded(&format!("{path}[{i}]"), x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| numbers_are_rounded(&format!("{path}.{k}"), x, out)),
        _ => {}
    }
}

/// Payload variants the doc examples do not show (nulls, optional members), built by the same code.
fn more_events() -> Vec<(String, Value)> {
    let none =
        FaceJudgement { distance: None, best_match: None, best_distance: None, ..face([0.0; 4], 0.5, 3, 0.0, None) };
    let decisions = [
        Decision::new(
            "cashier-2",
            SystemTime::now(),
            DecisionKind::SettlementIdentityMismatch {
                transaction_id: "t".into(),
                claimed_id: "c".into(),
                distance: None,
                best_match: None,
                best_distance: None,
                faces: vec![none],
                faces_seen: 3,
            },
        ),
        Decision::new(
            "",
            SystemTime::now(),
            DecisionKind::PhysicianAbsent {
                physician: "dr-1".into(),
                shift_start: SystemTime::now(),
                shift_end: SystemTime::now(),
                since: SystemTime::now(),
            },
        ),
        Decision::new(
            "",
            SystemTime::now(),
            DecisionKind::PhysicianShiftSummary(ShiftSummary {
                physician: "dr-1".into(),
                shift_start: SystemTime::now(),
                shift_end: SystemTime::now(),
                watched_from: SystemTime::now(),
                first_seen: None,
                last_seen: None,
                sightings: 0,
                seen_minutes: 0,
                absences: 0,
                cameras: vec![],
            }),
        ),
        Decision::new(
            "dialysis-a",
            SystemTime::now(),
            dialysis(
                "s",
                "p",
                "c",
                "2025-03-14T00:33:12.640Z",
                SessionVerdict::PatientMismatch { distance: None, best_match: None, best_distance: None },
                1.0 / 3.0,
                0.0,
                1.0 / 720.0,
                PatientMatch::Mismatch,
            ),
        ),
        // A revoked phone's upload: no bed, no position; every check after `signature` skipped.
        Decision::new("phone:ph-7Kq2mX9pLw", SystemTime::now(), {
            let mut check = phone_check(
                "ph-7Kq2mX9pLw",
                Mode::Bedside,
                "p-1",
                None,
                "2025-03-14T10:31:55.002Z",
                "2025-03-14T11:02:07.530Z",
                false,
                (0.0, 0.0, 0.0),
                [("skipped", "phone_revoked"); 8],
            );
            check.report.checks[0] = Check::failed(CheckName::Signature, "phone_revoked", "…");
            check.report.position = None;
            DecisionKind::BedsideCheckRejected(check)
        }),
    ];
    let mut out: Vec<(String, Value)> = decisions
        .into_iter()
        .map(|mut d| {
            d.evidence = d.needs_evidence();
            let record = events::decision_record("b", SITE, DEVICE, &d);
            (format!("events/{}.schema.json", d.name()), serde_json::from_slice(&record.payload).unwrap())
        })
        .collect();
    // A trial interrupted by a restart: no camera list, MQTT state unknown.
    let interrupted = events::Details::ConfigRolledBack(events::ConfigRolledBackDetails {
        nonce: "c41d7e2a9b0f4a6e8d3c5b1a7f9e2d0c".into(),
        config_sha256: NEW_CONFIG.into(),
        rejected_sha256: OLD_CONFIG.into(),
        reason: "interrupted",
        cameras_offline: vec![],
        mqtt_connected: None,
        detail: "the agent stopped during the trial".into(),
    });
    let record = events::config_record("b", SITE, DEVICE, interrupted);
    out.push(("events/config_rolled_back.schema.json".into(), serde_json::from_slice(&record.payload).unwrap()));
    out
}

/// What the code signs for each command, in both forms, with the doc's roster as the roster's args.
fn built_commands() -> Vec<(String, String, Value)> {
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap().as_ref(),
    )
    .unwrap();
    let roster = doc_blocks().into_iter().find(|b| b.heading == "roster").expect("a roster example").value;
    let args: BTreeMap<&str, Value> = [
        ("ping", json!({})),
        (
            "settlement",
            json!({"camera": "cashier-2", "claimed_id": "ins-1", "transaction_id": "tx-1", "watch_secs": 30}),
        ),
        ("enroll", json!({"id": "ins-1", "role": "patient", "embeddings": ["AAAA"]})),
        ("unenroll", json!({"id": "ins-1"})),
        ("roster", roster),
        ("rollcall", json!({})),
        ("phone_add", json!({"ward": "ward-3", "name": "Li Na", "physician": "dr-0412"})),
        ("phone_revoke", json!({"phone": "ph-k7m2q9x4ta", "reason": "lost on the ward"})),
        (
            "config_apply",
            json!({"config": "[site]\nid = \"hosp-0427\"\ndevice_id = \"edge-ward3\"\n", "confirm_within_s": 90}),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(args.keys().copied().collect::<BTreeSet<_>>(), commands::COMMANDS.into_iter().collect());
    let mut out = Vec::new();
    for (name, args) in args {
        let schema = format!("commands/{name}.schema.json");
        let canonical = commands::sign(&pair, name, args.clone(), SystemTime::now(), "0123456789abcdef");
        out.push((format!("{name} command (canonical JSON)"), schema.clone(), canonical));
        let jws = commands::sign_jws(&pair, name, args, SystemTime::now(), "0123456789abcdef");
        let claims = {
            use base64::Engine;
            let part = jws.split('.').nth(1).unwrap();
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
        };
        out.push((format!("{name} command (JWS)"), schema.clone(), Value::String(jws)));
        out.push((format!("{name} command (JWS payload)"), format!("{schema}#/$defs/claims"), claims));
    }
    out
}

/// Each command's `result` as its handler builds it (publish::results), with the facts of the doc's
/// examples; validated against `cmd-results/<name>.schema.json#/$defs/result`.
fn built_results() -> Vec<(&'static str, Value)> {
    use vigil::analyze::quality::Quality;
    use vigil::gallery::PersonKind;
    use vigil::gallery::enrol::{EnrollReport, ImageVerdict};
    let quality = Quality {
        size_px: 188.0,
        sharpness: 412.7,
        score: 0.998,
        roll_deg: 2.4,
        yaw_ratio: 0.07,
        problems: Vec::new(),
    };
    let report = EnrollReport {
        id: "ins-3301958842".into(),
        role: PersonKind::Patient,
        enrolled: true,
        images: vec![
            ImageVerdict { image: "images[0]".into(), accepted: true, reason: None, quality: Some(quality) },
            ImageVerdict {
                image: "images[1]".into(),
                accepted: false,
                reason: Some("no face found".into()),
                quality: None,
            },
        ],
    };
    let settled_at = t("2025-03-14T09:41:12.507Z");
    let phone = vigil::phones::Phone {
        id: "ph-k7m2q9x4ta".into(),
        ward: "ward-3".into(),
        name: "Li Na".into(),
        mode: vigil::phones::Mode::Bedside,
        physician: None,
        public_key: None,
        created_at: settled_at,
        enrolled_at: None,
        revoked_at: None,
    };
    let link = "https://vigil-ward3.lan:8443/ward/#enrol=q3Zp0V6m9sYg1kTzB8xWc2rN5uHj7aLd4eFi6oPy0bM";
    vec![
        ("ping", events::to_json(&results::Pong::at(t("2025-03-14T09:50:00.214Z")))),
        ("settlement", events::to_json(&results::SettlementWatching::new("window-1", "tx-1", settled_at))),
        (
            "settlement",
            events::to_json(&results::SettlementAlreadySettled::new(
                "tx-1",
                "settlement_verified",
                "0195a3c2-7f10-7c3e-9a4b-1d2e3f405162",
                "window-1",
                "ins-3301958842",
                settled_at,
            )),
        ),
        ("enroll", events::to_json(&results::Enrolled::from(&report))),
        ("unenroll", events::to_json(&results::Unenrolled { removed: "ins-3301958842".into() })),
        ("roster", events::to_json(&results::RosterApplied { inpatients: 2, dialysis_sessions: 1, shifts: 3 })),
        ("phone_add", events::to_json(&results::PhoneAdded::new(&phone, &link, t("2025-03-15T09:41:12.507Z")))),
        (
            "phone_revoke",
            events::to_json(&results::PhoneRevoked::new("ph-k7m2q9x4ta", t("2025-03-14T09:41:12.507Z"), false)),
        ),
        (
            "config_apply",
            events::to_json(&results::ConfigAccepted {
                accepted: true,
                config_sha256: NEW_CONFIG.into(),
                previous_sha256: OLD_CONFIG.into(),
                confirm_within_s: 90,
            }),
        ),
    ]
}

/// The enroll result in docs/mqtt-api.md is exactly what the code builds from the same facts.
#[test]
fn enroll_result_matches_its_documented_example() {
    let built = built_results().into_iter().find(|(name, _)| *name == "enroll").unwrap().1;
    let blocks = doc_blocks();
    let documented = blocks
        .iter()
        .find(|b| b.heading == "enroll" && b.value.get("images").is_some())
        .expect("docs/mqtt-api.md has an example of the enroll result");
    let mut diffs = Vec::new();
    differences("", &built, &documented.value, &mut diffs);
    assert!(diffs.is_empty(), "enroll result (docs/mqtt-api.md line {}):{}", documented.line, diffs.join("\n"));
}

#[test]
fn payloads_and_examples_validate_against_the_json_schemas() {
    let mut cases: Vec<Value> = Vec::new();
    let mut case = |label: String, schema: String, instance: Value| {
        cases.push(json!({"label": label, "schema": schema, "instance": instance}));
    };
    let mut unrounded = Vec::new();
    for (kind, value) in built_events() {
        numbers_are_rounded(kind, &value, &mut unrounded);
        case(format!("built {kind}"), format!("events/{kind}.schema.json"), value);
    }
    for (schema, value) in more_events() {
        numbers_are_rounded(&schema, &value, &mut unrounded);
        case(format!("built {schema}"), schema, value);
    }
    assert!(unrounded.is_empty(), "{}", unrounded.join("\n"));
    for (key, value) in built_cmd_results() {
        let name = value["name"].as_str().unwrap().to_owned();
        let schema = if commands::COMMANDS.contains(&name.as_str()) {
            format!("cmd-results/{name}.schema.json")
        } else {
            "cmd-result.schema.json".into()
        };
        case(format!("built cmd-result {key}"), schema, value);
    }
    for (name, value) in built_results() {
        numbers_are_rounded(name, &value, &mut unrounded);
        case(format!("built {name} result"), format!("cmd-results/{name}.schema.json#/$defs/result"), value);
    }
    assert!(unrounded.is_empty(), "{}", unrounded.join("\n"));
    // The real ping handler's answer.
    let registry = commands::Registry::default();
    let ping = commands::Command { name: "ping".into(), nonce: "0123456789abcdef".into(), args: json!({}) };
    case(
        "ping handler".into(),
        "cmd-results/ping.schema.json".into(),
        commands::result("ping", Some("0123456789abcdef"), registry.run(&ping)),
    );
    for status in ["online", "offline"] {
        case(format!("status {status}"), "status.schema.json".into(), json!(status));
    }
    case("built evidence head".into(), "evidence-head.schema.json".into(), documented_evidence_head());
    case("built health".into(), "health.schema.json".into(), documented_health());
    for (label, schema, value) in built_commands() {
        case(label, schema, value);
    }
    // Every example in the documentation.
    for b in doc_blocks() {
        let label = format!("docs/mqtt-api.md line {} ({})", b.line, b.heading);
        let v = b.value;
        let schema = if v["schema"] == "vigil.event.v1" {
            format!("events/{}.schema.json", v["kind"].as_str().unwrap())
        } else if v["schema"] == "vigil.evidence-head.v1" {
            "evidence-head.schema.json".into()
        } else if v["schema"] == "vigil.health.v1" {
            "health.schema.json".into()
        } else if v["schema"] == "vigil.cmd-result.v1" {
            let name = v["name"].as_str().unwrap();
            if commands::COMMANDS.contains(&name) {
                format!("cmd-results/{name}.schema.json")
            } else {
                "cmd-result.schema.json".into()
            }
        } else if b.heading == "roster" && v.get("inpatients").is_some_and(Value::is_array) {
            "commands/roster.schema.json#/$defs/args".into()
        } else if commands::COMMANDS.contains(&b.heading.as_str()) {
            format!("cmd-results/{}.schema.json#/$defs/result", b.heading)
        } else {
            panic!("{label}: a json block the contract test cannot place: give it a schema");
        };
        case(label, schema, v);
    }
    let out = common::validate_against_contract(&cases);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "JSON Schema validation failed:\n{stdout}\n{stderr}");
    eprintln!("{stdout}");
}

#[test]
fn asyncapi_lists_exactly_the_topics_the_code_uses() {
    // A valid AsyncAPI 3.0 document, by AsyncAPI's own meta-schema (models/manifest.toml installs it).
    let meta = common::samples("asyncapi-specs").join("3.0.0.json");
    let out = std::process::Command::new(common::python())
        .arg(common::repo("tests/contract_validate.py"))
        .arg("--asyncapi")
        .arg(&meta)
        .arg(common::repo("docs/contract/asyncapi.json"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "not a valid AsyncAPI 3.0.0 document:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let text = std::fs::read_to_string(common::repo("docs/contract/asyncapi.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["asyncapi"].as_str().map(|v| v.starts_with("3.")), Some(true), "an AsyncAPI 3 document");
    let base = "vigil/v1/{site}/{device}/";
    let mut expected: BTreeSet<String> =
        EventKind::ALL.iter().map(|k| format!("{base}events/{}", k.as_str())).collect();
    expected.insert(format!("{base}status"));
    expected.insert(format!("{base}evidence/head"));
    expected.insert(format!("{base}health"));
    for name in commands::COMMANDS {
        expected.insert(format!("{base}cmd/{name}"));
        expected.insert(format!("{base}cmd-result/{name}"));
    }
    // The box subscribes to cmd/+ and answers a command of any other name with its refusal.
    expected.insert(format!("{base}cmd-result/{{command}}"));
    let channels = doc["channels"].as_object().unwrap();
    let listed: BTreeSet<String> = channels.values().map(|c| c["address"].as_str().unwrap().to_owned()).collect();
    let missing: Vec<_> = expected.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&expected).collect();
    assert!(missing.is_empty() && extra.is_empty(), "asyncapi.json misses {missing:?}, lists unused {extra:?}");

    // Each channel's messages resolve, and their payloads are schema files that exist; every channel
    // has an operation in the right direction.
    let resolve = |pointer: &str| doc.pointer(pointer.trim_start_matches('#')).cloned();
    let mut problems = Vec::new();
    for (id, channel) in channels {
        let address = channel["address"].as_str().unwrap();
        for message in channel["messages"].as_object().unwrap().values() {
            let Some(message) = message["$ref"].as_str().and_then(&resolve) else {
                problems.push(format!("{id}: a message reference does not resolve"));
                continue;
            };
            let file = message["payload"]["schema"]["$ref"].as_str().unwrap_or("");
            if !common::repo("docs/contract").join(file).is_file() {
                problems.push(format!("{id}: payload schema {file:?} is not a file in docs/contract"));
            }
        }
        let receive = address.contains("/cmd/");
        let ops: Vec<&Value> = doc["operations"]
            .as_object()
            .unwrap()
            .values()
            .filter(|op| op["channel"]["$ref"].as_str() == Some(&format!("#/channels/{id}")))
            .collect();
        let action = if receive { "receive" } else { "send" };
        if ops.len() != 1 || ops[0]["action"] != action {
            problems.push(format!("{id}: wants exactly one operation with action {action}"));
        }
    }
    // The payload schema of each channel is the one of its topic.
    for (id, channel) in channels {
        let address = channel["address"].as_str().unwrap().strip_prefix(base).unwrap();
        let file = match address.split_once('/') {
            None => format!("./{address}.schema.json"),
            Some(("events", kind)) => format!("./events/{kind}.schema.json"),
            Some(("cmd", name)) => format!("./commands/{name}.schema.json"),
            Some(("cmd-result", "{command}")) => "./cmd-result.schema.json".to_owned(),
            Some(("cmd-result", name)) => format!("./cmd-results/{name}.schema.json"),
            Some(("evidence", "head")) => "./evidence-head.schema.json".to_owned(),
            Some(_) => format!("(no schema for {address})"),
        };
        let message = channel["messages"].as_object().unwrap().values().next().unwrap();
        let payload = resolve(message["$ref"].as_str().unwrap()).unwrap()["payload"]["schema"]["$ref"].clone();
        if payload != json!(file) {
            problems.push(format!("{id}: payload {payload}, expected {file}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
