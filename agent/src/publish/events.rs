//! Event payloads (`vigil.event.v1`, docs/mqtt-api.md) and their outbox records.
//!
//! This module owns the wire format. Each event kind has its payload struct below, with the field
//! names spelled out and built from the decision by explicit code, so renaming a field in `decide`
//! cannot change what the platform receives. One number format: counts are JSON integers, every
//! other quantity (distances, scores, minutes, shares) is a JSON number rounded to three decimals
//! ([`real`]). docs/contract/ holds the JSON Schema of each payload; tests/contract.rs checks the
//! payloads built here against it and against the examples in docs/mqtt-api.md.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use crate::decide::dialysis::{SessionOutcome, SessionVerdict};
use crate::decide::liveness::{Cue, Liveness};
use crate::decide::physicians::ShiftSummary;
use crate::decide::rollcall::{Absence, BedRef};
use crate::decide::settlement::FaceJudgement;
use crate::decide::{Decision, DecisionKind, RollcallReport};
use crate::outbox::NewRecord;
use crate::phones::{CheckName, CheckReport, Outcome, Position};

pub const SCHEMA: &str = "vigil.event.v1";

/// Decimal places of every non-integer number on the wire.
pub const DECIMALS: i32 = 3;

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// A quantity as the wire carries it: rounded to [`DECIMALS`] places (a JSON number such as `0.412`).
pub fn real(x: f64) -> f64 {
    let scale = 10f64.powi(DECIMALS);
    // `+ 0.0` turns a negative zero (e.g. occupied minutes summed from nothing) into 0.
    (x * scale).round() / scale + 0.0
}

/// `<prefix>/<site>/<device>`.
pub fn base_topic(prefix: &str, site: &str, device: &str) -> String {
    format!("{prefix}/{site}/{device}")
}

/// Every event kind the box can publish: the last level of `…/events/{kind}` and the payload's `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    CameraOffline,
    CameraOnline,
    CameraTamper,
    CameraTamperCleared,
    EvidenceReady,
    SettlementVerified,
    SettlementIdentityMismatch,
    SettlementNoFace,
    IdentitySharedAcrossIds,
    SettlementSpoofSuspected,
    PhysicianAbsent,
    PhysicianShiftSummary,
    BedAbsent,
    BedAbsenceEscalated,
    RollcallSummary,
    DialysisPatientMismatch,
    DialysisSessionVerified,
    DialysisSessionShort,
    DialysisChairEmpty,
    DialysisSessionUnverifiable,
    RecordingStopped,
    RecordingResumed,
    EvidenceEpoch,
    BedsideCheckVerified,
    BedsideCheckRejected,
    PhysicianCheckin,
    RegionReferenceStale,
    ConfigApplied,
    ConfigRolledBack,
    ConsoleAudit,
}

impl EventKind {
    pub const ALL: [EventKind; 30] = [
        EventKind::CameraOffline,
        EventKind::CameraOnline,
        EventKind::CameraTamper,
        EventKind::CameraTamperCleared,
        EventKind::EvidenceReady,
        EventKind::SettlementVerified,
        EventKind::SettlementIdentityMismatch,
        EventKind::SettlementNoFace,
        EventKind::IdentitySharedAcrossIds,
        EventKind::SettlementSpoofSuspected,
        EventKind::PhysicianAbsent,
        EventKind::PhysicianShiftSummary,
        EventKind::BedAbsent,
        EventKind::BedAbsenceEscalated,
        EventKind::RollcallSummary,
        EventKind::DialysisPatientMismatch,
        EventKind::DialysisSessionVerified,
        EventKind::DialysisSessionShort,
        EventKind::DialysisChairEmpty,
        EventKind::DialysisSessionUnverifiable,
        EventKind::RecordingStopped,
        EventKind::RecordingResumed,
        EventKind::EvidenceEpoch,
        EventKind::BedsideCheckVerified,
        EventKind::BedsideCheckRejected,
        EventKind::PhysicianCheckin,
        EventKind::RegionReferenceStale,
        EventKind::ConfigApplied,
        EventKind::ConfigRolledBack,
        EventKind::ConsoleAudit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::CameraOffline => "camera_offline",
            EventKind::CameraOnline => "camera_online",
            EventKind::CameraTamper => "camera_tamper",
            EventKind::CameraTamperCleared => "camera_tamper_cleared",
            EventKind::EvidenceReady => "evidence_ready",
            EventKind::SettlementVerified => "settlement_verified",
            EventKind::SettlementIdentityMismatch => "settlement_identity_mismatch",
            EventKind::SettlementNoFace => "settlement_no_face",
            EventKind::IdentitySharedAcrossIds => "identity_shared_across_ids",
            EventKind::SettlementSpoofSuspected => "settlement_spoof_suspected",
            EventKind::PhysicianAbsent => "physician_absent",
            EventKind::PhysicianShiftSummary => "physician_shift_summary",
            EventKind::BedAbsent => "bed_absent",
            EventKind::BedAbsenceEscalated => "bed_absence_escalated",
            EventKind::RollcallSummary => "rollcall_summary",
            EventKind::DialysisPatientMismatch => "dialysis_patient_mismatch",
            EventKind::DialysisSessionVerified => "dialysis_session_verified",
            EventKind::DialysisSessionShort => "dialysis_session_short",
            EventKind::DialysisChairEmpty => "dialysis_chair_empty",
            EventKind::DialysisSessionUnverifiable => "dialysis_session_unverifiable",
            EventKind::RecordingStopped => "recording_stopped",
            EventKind::RecordingResumed => "recording_resumed",
            EventKind::EvidenceEpoch => "evidence_epoch",
            EventKind::BedsideCheckVerified => "bedside_check_verified",
            EventKind::BedsideCheckRejected => "bedside_check_rejected",
            EventKind::PhysicianCheckin => "physician_checkin",
            EventKind::RegionReferenceStale => "region_reference_stale",
            EventKind::ConfigApplied => "config_applied",
            EventKind::ConfigRolledBack => "config_rolled_back",
            EventKind::ConsoleAudit => "console_audit",
        }
    }

    /// The kind of a decision's event.
    pub fn of(kind: &DecisionKind) -> EventKind {
        match kind {
            DecisionKind::CameraOffline { .. } => EventKind::CameraOffline,
            DecisionKind::CameraOnline => EventKind::CameraOnline,
            DecisionKind::CameraTamper { .. } => EventKind::CameraTamper,
            DecisionKind::CameraTamperCleared { .. } => EventKind::CameraTamperCleared,
            DecisionKind::SettlementVerified { .. } => EventKind::SettlementVerified,
            DecisionKind::SettlementIdentityMismatch { .. } => EventKind::SettlementIdentityMismatch,
            DecisionKind::SettlementNoFace { .. } => EventKind::SettlementNoFace,
            DecisionKind::IdentitySharedAcrossIds { .. } => EventKind::IdentitySharedAcrossIds,
            DecisionKind::SettlementSpoofSuspected { .. } => EventKind::SettlementSpoofSuspected,
            DecisionKind::PhysicianAbsent { .. } => EventKind::PhysicianAbsent,
            DecisionKind::PhysicianShiftSummary(_) => EventKind::PhysicianShiftSummary,
            DecisionKind::BedAbsent(_) => EventKind::BedAbsent,
            DecisionKind::BedAbsenceEscalated(_) => EventKind::BedAbsenceEscalated,
            DecisionKind::RollcallSummary(_) => EventKind::RollcallSummary,
            DecisionKind::Dialysis(o) => match o.verdict {
                SessionVerdict::PatientMismatch { .. } => EventKind::DialysisPatientMismatch,
                SessionVerdict::Verified => EventKind::DialysisSessionVerified,
                SessionVerdict::Short => EventKind::DialysisSessionShort,
                SessionVerdict::ChairEmpty => EventKind::DialysisChairEmpty,
                SessionVerdict::Unverifiable => EventKind::DialysisSessionUnverifiable,
            },
            DecisionKind::RecordingStopped { .. } => EventKind::RecordingStopped,
            DecisionKind::RecordingResumed { .. } => EventKind::RecordingResumed,
            DecisionKind::BedsideCheckVerified(_) => EventKind::BedsideCheckVerified,
            DecisionKind::BedsideCheckRejected(_) => EventKind::BedsideCheckRejected,
            DecisionKind::PhysicianCheckin(_) => EventKind::PhysicianCheckin,
            DecisionKind::RegionReferenceStale(_) => EventKind::RegionReferenceStale,
        }
    }
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The envelope every event shares (docs/mqtt-api.md, "Event envelope"). Serialised through
/// `serde_json::Value`, so that keys go out in alphabetical order as documented.
#[derive(Debug, Clone, Serialize)]
pub struct EventPayload {
    pub schema: &'static str,
    pub event_id: String,
    pub kind: EventKind,
    pub site: String,
    pub device: String,
    /// `None` for events about the box or a person rather than a camera.
    pub camera: Option<String>,
    pub at: String,
    pub details: Details,
    pub evidence: Option<EvidenceStatus>,
}

/// `{"status": "pending"}`: a signed evidence bundle is being made for the event.
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceStatus {
    pub status: &'static str,
}

/// The `details` of each kind. Untagged: the envelope's `kind` names the variant.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Details {
    CameraOffline(ReasonDetails),
    CameraOnline(NoDetails),
    CameraTamper(TamperDetails),
    CameraTamperCleared(TamperDetails),
    EvidenceReady(EvidenceReadyDetails),
    SettlementVerified(SettlementVerifiedDetails),
    SettlementIdentityMismatch(SettlementMismatchDetails),
    SettlementNoFace(SettlementNoFaceDetails),
    IdentitySharedAcrossIds(IdentitySharedDetails),
    SettlementSpoofSuspected(SpoofSuspectedDetails),
    PhysicianAbsent(PhysicianAbsentDetails),
    PhysicianShiftSummary(ShiftSummaryDetails),
    BedAbsent(BedAbsenceDetails),
    BedAbsenceEscalated(BedAbsenceDetails),
    RollcallSummary(RollcallDetails),
    /// The five dialysis kinds share one shape; `outcome` says which.
    Dialysis(DialysisDetails),
    RecordingStopped(ReasonDetails),
    RecordingResumed(RecordingResumedDetails),
    EvidenceEpoch(EvidenceEpochDetails),
    /// `bedside_check_verified` and `bedside_check_rejected` share one shape; `failed` says which.
    BedsideCheck(BedsideCheckDetails),
    PhysicianCheckin(PhysicianCheckinDetails),
    RegionReferenceStale(RegionReferenceStaleDetails),
    ConfigApplied(ConfigAppliedDetails),
    ConfigRolledBack(ConfigRolledBackDetails),
    ConsoleAudit(ConsoleAuditDetails),
}

/// `camera_online`: `{}`.
#[derive(Debug, Clone, Serialize)]
pub struct NoDetails {}

/// `camera_offline`, `recording_stopped`.
#[derive(Debug, Clone, Serialize)]
pub struct ReasonDetails {
    pub reason: String,
}

/// `camera_tamper`, `camera_tamper_cleared`.
#[derive(Debug, Clone, Serialize)]
pub struct TamperDetails {
    /// `covered`, `frozen` or `moved`.
    pub tamper: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvidenceReadyDetails {
    pub for_event_id: String,
    pub bundle: String,
    pub sequence: u64,
    pub manifest_sha256: String,
    /// The evidence chain's head after this bundle.
    pub chain_head: ChainHead,
}

/// A head of the evidence chain: its last entry (docs/evidence.md, "Head, epochs").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainHead {
    pub sequence: u64,
    pub manifest_sha256: String,
    pub epoch: u64,
}

/// `evidence_epoch`: the evidence store was found empty although the agent had written entries; a new
/// epoch starts with a signed `epoch` record chained to the last head written (no sequence is reused).
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceEpochDetails {
    pub epoch: u64,
    /// The `epoch` record: the new head.
    pub chain_head: ChainHead,
    /// The last head written before the store was found empty.
    pub previous_head: ChainHead,
    pub reason: String,
}

/// `config_applied`: a configuration sent by `config_apply` is in force, every camera online (and MQTT
/// connected) within the trial. Digests only: a configuration may hold camera passwords.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigAppliedDetails {
    /// The `config_apply` command's nonce.
    pub nonce: String,
    /// SHA-256 (hex) of the file now in force.
    pub config_sha256: String,
    /// SHA-256 of the file it replaced (kept as `<config>.previous`).
    pub previous_sha256: String,
    /// The cameras of the new configuration, all online.
    pub cameras: Vec<String>,
    /// Seconds from the restart with the new configuration to the healthy check.
    pub trial_secs: f64,
}

/// `config_rolled_back`: the configuration sent by `config_apply` was not healthy within its trial (or
/// did not start, or the agent stopped during the trial); the previous file is back in force.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigRolledBackDetails {
    pub nonce: String,
    /// SHA-256 of the file in force again (the previous one).
    pub config_sha256: String,
    /// SHA-256 of the file that was tried and given up.
    pub rejected_sha256: String,
    /// `unhealthy`, `start_failed` or `interrupted`.
    pub reason: &'static str,
    /// Cameras of the tried configuration that were not online at the deadline (empty unless unhealthy).
    pub cameras_offline: Vec<String>,
    /// Whether the publisher was connected at the deadline; `null` without `[mqtt]` or unless unhealthy.
    pub mqtt_connected: Option<bool>,
    /// What happened, for a person.
    pub detail: String,
}

/// The retained `…/evidence/head` message: the chain's head, republished after every new entry and on
/// every connection, so the platform always holds the latest head outside the box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceHead {
    pub schema: &'static str,
    pub site: String,
    pub device: String,
    pub sequence: u64,
    pub manifest_sha256: String,
    pub epoch: u64,
    pub at: String,
}

pub const EVIDENCE_HEAD_SCHEMA: &str = "vigil.evidence-head.v1";

/// `<base>/evidence/head`.
pub fn head_topic(base: &str) -> String {
    format!("{base}/evidence/head")
}

impl EvidenceHead {
    pub fn new(site: &str, device: &str, head: &ChainHead, at: SystemTime) -> EvidenceHead {
        EvidenceHead {
            schema: EVIDENCE_HEAD_SCHEMA,
            site: site.to_owned(),
            device: device.to_owned(),
            sequence: head.sequence,
            manifest_sha256: head.manifest_sha256.clone(),
            epoch: head.epoch,
            at: time(at),
        }
    }
}

/// A judged face at a settlement window (docs/mqtt-api.md, "Judged faces").
#[derive(Debug, Clone, Serialize)]
pub struct JudgedFace {
    /// `[x1, y1, x2, y2]`, integer pixels.
    #[serde(rename = "box")]
    pub bbox: [i64; 4],
    pub score: f64,
    pub good_frames: usize,
    pub distance: Option<f64>,
    pub best_match: Option<String>,
    pub best_distance: Option<f64>,
    /// Only with `[liveness]` on (docs/mqtt-api.md, "Liveness evidence").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liveness: Option<LivenessDetails>,
}

impl From<&FaceJudgement> for JudgedFace {
    fn from(f: &FaceJudgement) -> JudgedFace {
        JudgedFace {
            bbox: f.bbox.map(|v| v.round() as i64),
            score: real(f.score.into()),
            good_frames: f.good_frames,
            distance: f.distance.map(|d| real(d.into())),
            best_match: f.best_match.clone(),
            best_distance: f.best_distance.map(|d| real(d.into())),
            liveness: f.liveness.as_ref().map(LivenessDetails::from),
        }
    }
}

/// A judged face's liveness evidence (docs/mqtt-api.md, "Liveness evidence").
#[derive(Debug, Clone, Serialize)]
pub struct LivenessDetails {
    pub score: Option<f64>,
    pub suspected: bool,
    pub threshold: f64,
    pub cue: Cue,
    pub frames: usize,
    pub span_secs: f64,
    pub deformation: f64,
    pub motion: f64,
}

impl From<&Liveness> for LivenessDetails {
    fn from(l: &Liveness) -> LivenessDetails {
        LivenessDetails {
            score: l.score.map(|s| real(s.into())),
            suspected: l.suspected,
            threshold: real(l.threshold.into()),
            cue: l.cue,
            frames: l.frames,
            span_secs: real(l.span_secs.into()),
            deformation: real(l.deformation.into()),
            motion: real(l.motion.into()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SpoofSuspectedDetails {
    pub transaction_id: String,
    pub claimed_id: String,
    pub verdict: String,
    pub verdict_event_id: String,
    pub score: Option<f64>,
    pub threshold: f64,
    pub cue: Option<Cue>,
    pub face: JudgedFace,
}

#[derive(Debug, Clone, Serialize)]
pub struct SettlementVerifiedDetails {
    pub transaction_id: String,
    pub claimed_id: String,
    pub distance: f64,
    pub face: JudgedFace,
    pub faces_seen: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct SettlementMismatchDetails {
    pub transaction_id: String,
    pub claimed_id: String,
    pub distance: Option<f64>,
    pub best_match: Option<String>,
    pub best_distance: Option<f64>,
    pub faces: Vec<JudgedFace>,
    pub faces_judged: usize,
    pub faces_seen: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct SettlementNoFaceDetails {
    pub transaction_id: String,
    pub claimed_id: String,
    pub faces_seen: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdentitySharedDetails {
    pub transaction_id: String,
    pub claimed_id: String,
    pub other_transaction_id: String,
    pub other_claimed_id: String,
    pub other_at: String,
    pub distance: f64,
    pub face: JudgedFace,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhysicianAbsentDetails {
    pub physician: String,
    pub shift_start: String,
    pub shift_end: String,
    pub unseen_since: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShiftSummaryDetails {
    pub physician: String,
    pub shift_start: String,
    pub shift_end: String,
    pub watched_from: String,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub sightings: u32,
    pub seen_minutes: u32,
    pub absences: u32,
    pub cameras: Vec<String>,
}

impl From<&ShiftSummary> for ShiftSummaryDetails {
    fn from(s: &ShiftSummary) -> ShiftSummaryDetails {
        ShiftSummaryDetails {
            physician: s.physician.clone(),
            shift_start: time(s.shift_start),
            shift_end: time(s.shift_end),
            watched_from: time(s.watched_from),
            first_seen: s.first_seen.map(time),
            last_seen: s.last_seen.map(time),
            sightings: s.sightings,
            seen_minutes: s.seen_minutes,
            absences: s.absences,
            cameras: s.cameras.clone(),
        }
    }
}

/// `bed_absent`, `bed_absence_escalated`.
#[derive(Debug, Clone, Serialize)]
pub struct BedAbsenceDetails {
    pub camera: String,
    pub bed: String,
    pub patient: String,
    pub consecutive: u32,
    pub absent_since: String,
}

impl From<&Absence> for BedAbsenceDetails {
    fn from(a: &Absence) -> BedAbsenceDetails {
        BedAbsenceDetails {
            camera: a.camera.clone(),
            bed: a.bed.clone(),
            patient: a.patient.clone(),
            consecutive: a.consecutive,
            absent_since: time(a.absent_since),
        }
    }
}

/// `region_reference_stale`: a bed's or chair's empty reference no longer fits (it was moved); the
/// region is unknown until it fits again or a new reference is taken.
#[derive(Debug, Clone, Serialize)]
pub struct RegionReferenceStaleDetails {
    pub region: String,
    /// The lighting condition whose reference it is: `day` or `night_ir`.
    pub lighting: &'static str,
    /// What no longer fits: `structure` (the region's edges are found shifted).
    pub what: &'static str,
    /// The reference's fit in place, normalised gradient correlation -1..1.
    pub fit: f64,
    /// Its best fit shifted, and that shift in pixels `[dx, dy]`: where the furniture seems to be now.
    pub shifted_fit: f64,
    pub shift_px: [i64; 2],
    /// Since when it has not fitted.
    pub since: String,
}

impl From<&crate::decide::presence::StaleReference> for RegionReferenceStaleDetails {
    fn from(r: &crate::decide::presence::StaleReference) -> RegionReferenceStaleDetails {
        RegionReferenceStaleDetails {
            region: r.region.clone(),
            lighting: r.lighting.as_str(),
            what: r.what,
            fit: real(r.fit),
            shifted_fit: real(r.shifted_fit),
            shift_px: r.shift_px.map(|v| v.round() as i64),
            since: time(r.since),
        }
    }
}

/// A bed named by a roll-call.
#[derive(Debug, Clone, Serialize)]
pub struct Bed {
    pub camera: String,
    pub bed: String,
    pub patient: Option<String>,
}

impl From<&BedRef> for Bed {
    fn from(b: &BedRef) -> Bed {
        Bed { camera: b.camera.clone(), bed: b.bed.clone(), patient: b.patient.clone() }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RollcallCounts {
    pub checked: usize,
    pub present: usize,
    pub absent: usize,
    pub unknown: usize,
    pub unregistered: usize,
    pub unregistered_occupied: usize,
}

/// `rollcall_summary`, and the `result` of the `rollcall` command.
#[derive(Debug, Clone, Serialize)]
pub struct RollcallDetails {
    pub trigger: String,
    pub summary: RollcallCounts,
    pub absent: Vec<Bed>,
    pub unknown: Vec<Bed>,
    pub unregistered_occupied: Vec<Bed>,
}

impl From<&RollcallReport> for RollcallDetails {
    fn from(r: &RollcallReport) -> RollcallDetails {
        let s = &r.summary;
        RollcallDetails {
            trigger: r.trigger.clone(),
            summary: RollcallCounts {
                checked: s.checked,
                present: s.present,
                absent: s.absent,
                unknown: s.unknown,
                unregistered: s.unregistered,
                unregistered_occupied: s.unregistered_occupied,
            },
            absent: r.absent.iter().map(Bed::from).collect(),
            unknown: r.unknown.iter().map(Bed::from).collect(),
            unregistered_occupied: r.unregistered_occupied.iter().map(Bed::from).collect(),
        }
    }
}

/// The five dialysis kinds.
#[derive(Debug, Clone, Serialize)]
pub struct DialysisDetails {
    pub session_id: String,
    pub patient: String,
    pub camera: String,
    pub chair: String,
    pub at: String,
    /// `patient_mismatch`, `verified`, `short`, `chair_empty` or `unverifiable`.
    pub outcome: &'static str,
    /// Present for `patient_mismatch` only.
    #[serde(flatten)]
    pub mismatch: Option<DialysisMismatch>,
    pub occupied_minutes: f64,
    pub unknown_minutes: f64,
    pub billed_minutes: u32,
    pub share: f64,
    /// `matched`, `mismatch` or `not_seen`.
    pub patient_match: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct DialysisMismatch {
    pub distance: Option<f64>,
    pub best_match: Option<String>,
    pub best_distance: Option<f64>,
}

impl From<&SessionOutcome> for DialysisDetails {
    fn from(o: &SessionOutcome) -> DialysisDetails {
        let (outcome, mismatch) = match &o.verdict {
            SessionVerdict::PatientMismatch { distance, best_match, best_distance } => (
                "patient_mismatch",
                Some(DialysisMismatch {
                    distance: distance.map(|d| real(d.into())),
                    best_match: best_match.clone(),
                    best_distance: best_distance.map(|d| real(d.into())),
                }),
            ),
            SessionVerdict::Verified => ("verified", None),
            SessionVerdict::Short => ("short", None),
            SessionVerdict::ChairEmpty => ("chair_empty", None),
            SessionVerdict::Unverifiable => ("unverifiable", None),
        };
        DialysisDetails {
            session_id: o.session_id.clone(),
            patient: o.patient.clone(),
            camera: o.camera.clone(),
            chair: o.chair.clone(),
            at: time(o.at),
            outcome,
            mismatch,
            occupied_minutes: real(o.occupied_minutes),
            unknown_minutes: real(o.unknown_minutes),
            billed_minutes: o.billed_minutes,
            share: real(o.share),
            patient_match: o.patient_match.as_str(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordingResumedDetails {
    pub stopped_secs: u64,
}

/// A check as events name it: its name, outcome and reason (the facts are in the evidence bundle).
#[derive(Debug, Clone, Serialize)]
pub struct CheckOutcome {
    pub name: CheckName,
    pub outcome: Outcome,
    pub reason: String,
}

/// A phone's position on the wire: latitude and longitude as strings with six decimals (three would
/// be 100 m: the one number format is too coarse for them), the accuracy in metres as a number.
#[derive(Debug, Clone, Serialize)]
pub struct PositionDetails {
    pub lat: String,
    pub lon: String,
    pub accuracy_m: f64,
}

impl From<&Position> for PositionDetails {
    fn from(p: &Position) -> PositionDetails {
        PositionDetails { lat: format!("{:.6}", p.lat), lon: format!("{:.6}", p.lon), accuracy_m: real(p.accuracy_m) }
    }
}

fn check_outcomes(report: &CheckReport) -> Vec<CheckOutcome> {
    report.checks.iter().map(|c| CheckOutcome { name: c.name, outcome: c.outcome, reason: c.reason.clone() }).collect()
}

/// `bedside_check_verified`, `bedside_check_rejected`.
#[derive(Debug, Clone, Serialize)]
pub struct BedsideCheckDetails {
    pub phone: String,
    pub ward: String,
    pub patient: String,
    /// The patient's bed in the roster (None: not on this ward's beds).
    pub bed: Option<String>,
    pub captured_at: String,
    pub received_at: String,
    pub late: bool,
    pub position: Option<PositionDetails>,
    /// The names of the checks that failed, in check order (empty when verified).
    pub failed: Vec<&'static str>,
    pub checks: Vec<CheckOutcome>,
}

impl From<&CheckReport> for BedsideCheckDetails {
    fn from(r: &CheckReport) -> BedsideCheckDetails {
        BedsideCheckDetails {
            phone: r.phone_id.clone(),
            ward: r.ward.clone(),
            patient: r.claimed.clone(),
            bed: r.bed.clone(),
            captured_at: time(r.captured_at),
            received_at: time(r.received_at),
            late: r.late,
            position: r.position.as_ref().map(PositionDetails::from),
            failed: r.failed(),
            checks: check_outcomes(r),
        }
    }
}

/// `physician_checkin`.
#[derive(Debug, Clone, Serialize)]
pub struct PhysicianCheckinDetails {
    pub physician: String,
    pub phone: String,
    pub ward: String,
    pub verified: bool,
    pub captured_at: String,
    pub received_at: String,
    pub late: bool,
    pub position: Option<PositionDetails>,
    pub failed: Vec<&'static str>,
    pub checks: Vec<CheckOutcome>,
}

impl From<&CheckReport> for PhysicianCheckinDetails {
    fn from(r: &CheckReport) -> PhysicianCheckinDetails {
        PhysicianCheckinDetails {
            physician: r.claimed.clone(),
            phone: r.phone_id.clone(),
            ward: r.ward.clone(),
            verified: r.verified(),
            captured_at: time(r.captured_at),
            received_at: time(r.received_at),
            late: r.late,
            position: r.position.as_ref().map(PositionDetails::from),
            failed: r.failed(),
            checks: check_outcomes(r),
        }
    }
}

impl Details {
    /// The wire details of a decision.
    pub fn of(kind: &DecisionKind) -> Details {
        let settlement_ids = |t: &String, c: &String| (t.clone(), c.clone());
        match kind {
            DecisionKind::CameraOffline { reason } => Details::CameraOffline(ReasonDetails { reason: reason.clone() }),
            DecisionKind::CameraOnline => Details::CameraOnline(NoDetails {}),
            DecisionKind::CameraTamper { tamper, .. } => {
                Details::CameraTamper(TamperDetails { tamper: tamper.as_str() })
            }
            DecisionKind::CameraTamperCleared { tamper } => {
                Details::CameraTamperCleared(TamperDetails { tamper: tamper.as_str() })
            }
            DecisionKind::SettlementVerified { transaction_id, claimed_id, distance, face, faces_seen } => {
                let (transaction_id, claimed_id) = settlement_ids(transaction_id, claimed_id);
                Details::SettlementVerified(SettlementVerifiedDetails {
                    transaction_id,
                    claimed_id,
                    distance: real((*distance).into()),
                    face: face.into(),
                    faces_seen: *faces_seen,
                })
            }
            DecisionKind::SettlementIdentityMismatch {
                transaction_id,
                claimed_id,
                distance,
                best_match,
                best_distance,
                faces,
                faces_seen,
            } => {
                let (transaction_id, claimed_id) = settlement_ids(transaction_id, claimed_id);
                Details::SettlementIdentityMismatch(SettlementMismatchDetails {
                    transaction_id,
                    claimed_id,
                    distance: distance.map(|d| real(d.into())),
                    best_match: best_match.clone(),
                    best_distance: best_distance.map(|d| real(d.into())),
                    faces: faces.iter().map(JudgedFace::from).collect(),
                    faces_judged: faces.len(),
                    faces_seen: *faces_seen,
                })
            }
            DecisionKind::SettlementNoFace { transaction_id, claimed_id, faces_seen } => {
                let (transaction_id, claimed_id) = settlement_ids(transaction_id, claimed_id);
                Details::SettlementNoFace(SettlementNoFaceDetails {
                    transaction_id,
                    claimed_id,
                    faces_seen: *faces_seen,
                })
            }
            DecisionKind::IdentitySharedAcrossIds {
                transaction_id,
                claimed_id,
                other_transaction_id,
                other_claimed_id,
                other_at,
                distance,
                face,
            } => {
                let (transaction_id, claimed_id) = settlement_ids(transaction_id, claimed_id);
                Details::IdentitySharedAcrossIds(IdentitySharedDetails {
                    transaction_id,
                    claimed_id,
                    other_transaction_id: other_transaction_id.clone(),
                    other_claimed_id: other_claimed_id.clone(),
                    other_at: time(*other_at),
                    distance: real((*distance).into()),
                    face: face.into(),
                })
            }
            DecisionKind::SettlementSpoofSuspected { transaction_id, claimed_id, verdict, verdict_event_id, face } => {
                let (transaction_id, claimed_id) = settlement_ids(transaction_id, claimed_id);
                let face = JudgedFace::from(face);
                Details::SettlementSpoofSuspected(SpoofSuspectedDetails {
                    transaction_id,
                    claimed_id,
                    verdict: verdict.clone(),
                    verdict_event_id: verdict_event_id.clone(),
                    score: face.liveness.as_ref().and_then(|l| l.score),
                    threshold: face.liveness.as_ref().map_or(0.0, |l| l.threshold),
                    cue: face.liveness.as_ref().map(|l| l.cue),
                    face,
                })
            }
            DecisionKind::PhysicianAbsent { physician, shift_start, shift_end, since } => {
                Details::PhysicianAbsent(PhysicianAbsentDetails {
                    physician: physician.clone(),
                    shift_start: time(*shift_start),
                    shift_end: time(*shift_end),
                    unseen_since: time(*since),
                })
            }
            DecisionKind::PhysicianShiftSummary(s) => Details::PhysicianShiftSummary(s.into()),
            DecisionKind::BedAbsent(a) => Details::BedAbsent(a.into()),
            DecisionKind::BedAbsenceEscalated(a) => Details::BedAbsenceEscalated(a.into()),
            DecisionKind::RollcallSummary(report) => Details::RollcallSummary(report.into()),
            DecisionKind::Dialysis(outcome) => Details::Dialysis(outcome.into()),
            DecisionKind::RecordingStopped { reason } => {
                Details::RecordingStopped(ReasonDetails { reason: reason.clone() })
            }
            DecisionKind::RecordingResumed { stopped_secs } => {
                Details::RecordingResumed(RecordingResumedDetails { stopped_secs: *stopped_secs })
            }
            DecisionKind::BedsideCheckVerified(c) | DecisionKind::BedsideCheckRejected(c) => {
                Details::BedsideCheck(c.report.as_ref().into())
            }
            DecisionKind::PhysicianCheckin(c) => Details::PhysicianCheckin(c.report.as_ref().into()),
            DecisionKind::RegionReferenceStale(r) => Details::RegionReferenceStale(r.into()),
        }
    }
}

/// A payload as JSON with its keys in alphabetical order at every level. Sorted here, not left to
/// serde_json's map: a dependency (c2pa) turns on serde_json's `preserve_order`, which makes maps keep
/// insertion order for the whole build.
pub fn to_json(payload: &impl Serialize) -> Value {
    let mut value = serde_json::to_value(payload).unwrap_or(Value::Null);
    value.sort_all_objects();
    value
}

/// The `details` of a decision's event, as a JSON object. Evidence manifests of settlement decisions
/// carry the same facts ([`flat_details`]).
pub fn details(kind: &DecisionKind) -> serde_json::Map<String, Value> {
    match to_json(&Details::of(kind)) {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// Event details as an evidence manifest's `details` (an object of strings): nested objects and lists
/// of objects as dotted keys (`faces.0.best_match`, from 0), lists of numbers comma-separated
/// (`face.box` = `"412,188,598,420"`), integers in decimal, other numbers with three decimals (`"0.840"`:
/// manifests are canonical JSON, which has no floating-point numbers); `null` (nothing known, e.g. no
/// enrolled person near enough) leaves the key out.
pub fn flat_details(details: &serde_json::Map<String, Value>) -> BTreeMap<String, String> {
    fn text(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Number(n) if n.is_f64() => format!("{:.*}", DECIMALS as usize, n.as_f64().unwrap_or(f64::NAN)),
            _ => v.to_string(),
        }
    }
    fn walk(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
        match value {
            Value::Null => {}
            Value::String(_) | Value::Bool(_) | Value::Number(_) => {
                out.insert(prefix.to_owned(), text(value));
            }
            Value::Array(items) if items.iter().all(|v| !v.is_object() && !v.is_array()) => {
                let text: Vec<String> = items.iter().map(text).collect();
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

/// The payload of a decision's event.
pub fn decision_payload(site: &str, device: &str, decision: &Decision) -> EventPayload {
    EventPayload {
        schema: SCHEMA,
        event_id: decision.id.to_string(),
        kind: EventKind::of(&decision.kind),
        site: site.to_owned(),
        device: device.to_owned(),
        // Events about a person rather than a camera (physicians) carry no camera.
        camera: (!decision.camera.is_empty()).then(|| decision.camera.clone()),
        at: time(decision.at),
        details: Details::of(&decision.kind),
        evidence: decision.evidence.then_some(EvidenceStatus { status: "pending" }),
    }
}

/// The outbox record of a decision.
pub fn decision_record(base: &str, site: &str, device: &str, decision: &Decision) -> NewRecord {
    let payload = decision_payload(site, device, decision);
    NewRecord {
        event_id: payload.event_id.clone(),
        topic: format!("{base}/events/{}", payload.kind.as_str()),
        camera: payload.camera.clone(),
        payload: serde_json::to_vec(&to_json(&payload)).unwrap_or_default(),
        evidence: None,
    }
}

/// The payload of the `evidence_ready` event announcing a written bundle.
pub fn evidence_payload(
    site: &str,
    device: &str,
    camera: &str,
    details: EvidenceReadyDetails,
    at: SystemTime,
) -> EventPayload {
    EventPayload {
        schema: SCHEMA,
        event_id: uuid::Uuid::now_v7().to_string(),
        kind: EventKind::EvidenceReady,
        site: site.to_owned(),
        device: device.to_owned(),
        camera: Some(camera.to_owned()),
        at: time(at),
        details: Details::EvidenceReady(details),
        evidence: None,
    }
}

/// The `evidence_ready` record announcing a written bundle; its delivery acknowledges the bundle.
#[allow(clippy::too_many_arguments)]
pub fn evidence_record(
    base: &str,
    site: &str,
    device: &str,
    camera: &str,
    event_id: &str,
    bundle: &str,
    sequence: u64,
    manifest_sha256: &str,
    chain_head: ChainHead,
) -> NewRecord {
    let details = EvidenceReadyDetails {
        for_event_id: event_id.to_owned(),
        bundle: bundle.to_owned(),
        sequence,
        manifest_sha256: manifest_sha256.to_owned(),
        chain_head,
    };
    let payload = evidence_payload(site, device, camera, details, SystemTime::now());
    NewRecord {
        event_id: payload.event_id.clone(),
        topic: format!("{base}/events/{}", EventKind::EvidenceReady.as_str()),
        payload: serde_json::to_vec(&to_json(&payload)).unwrap_or_default(),
        camera: Some(camera.to_owned()),
        evidence: Some(event_id.to_owned()),
    }
}

/// The payload of the `evidence_epoch` event (about the box: no camera).
pub fn epoch_payload(site: &str, device: &str, details: EvidenceEpochDetails, at: SystemTime) -> EventPayload {
    EventPayload {
        schema: SCHEMA,
        event_id: uuid::Uuid::now_v7().to_string(),
        kind: EventKind::EvidenceEpoch,
        site: site.to_owned(),
        device: device.to_owned(),
        camera: None,
        at: time(at),
        details: Details::EvidenceEpoch(details),
        evidence: None,
    }
}

/// The payload of a box event about its configuration (`config_applied`, `config_rolled_back`).
pub fn config_payload(site: &str, device: &str, details: Details, at: SystemTime) -> EventPayload {
    let kind = match details {
        Details::ConfigRolledBack(_) => EventKind::ConfigRolledBack,
        _ => EventKind::ConfigApplied,
    };
    EventPayload {
        schema: SCHEMA,
        event_id: uuid::Uuid::now_v7().to_string(),
        kind,
        site: site.to_owned(),
        device: device.to_owned(),
        camera: None,
        at: time(at),
        details,
        evidence: None,
    }
}

/// `console_audit`: one row of the console's append-only audit log (docs/console.md): a change made in
/// the console or by `vigil users`, a sign-in, a refused request. Never a password, token or face image.
#[derive(Debug, Clone, Serialize)]
pub struct ConsoleAuditDetails {
    /// The row's id in the box's audit log (increasing).
    pub audit_id: i64,
    /// The console user, `cli` for `vigil users`, or the name tried at a failed sign-in.
    pub who: String,
    /// Their role, `-` when none.
    pub role: String,
    /// What was done, snake_case (`login`, `camera_update`, `legal_hold`, …).
    pub action: String,
    /// The client's address, `-` for the command line.
    pub address: String,
    /// `ok`, `refused`, `locked`, `failed`.
    pub outcome: String,
    /// What was changed, as the audit log holds it.
    pub details: Value,
}

/// The outbox record of an audit row. Its event id is derived from the audit store's instance id and the
/// row's id, so the row sent again (after a crash between the outbox and the relay's cursor) is the same
/// event, which the platform deduplicates.
pub fn audit_record(
    base: &str,
    site: &str,
    device: &str,
    instance: &uuid::Uuid,
    details: ConsoleAuditDetails,
    at: SystemTime,
) -> NewRecord {
    let payload = audit_payload(site, device, instance, details, at);
    NewRecord {
        event_id: payload.event_id.clone(),
        topic: format!("{base}/events/{}", EventKind::ConsoleAudit.as_str()),
        payload: serde_json::to_vec(&to_json(&payload)).unwrap_or_default(),
        camera: None,
        evidence: None,
    }
}

/// The payload of an audit row's event (see [`audit_record`]).
pub fn audit_payload(
    site: &str,
    device: &str,
    instance: &uuid::Uuid,
    details: ConsoleAuditDetails,
    at: SystemTime,
) -> EventPayload {
    // A UUIDv7 like every event id (its time the row's), its random bits taken from a hash of the store's
    // instance and the row's id instead of drawn: the same row always gives the same id.
    let millis = at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let digest =
        ring::digest::digest(&ring::digest::SHA256, format!("{instance}/audit/{}", details.audit_id).as_bytes());
    let mut random = [0u8; 10];
    random.copy_from_slice(&digest.as_ref()[..10]);
    let event_id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
    EventPayload {
        schema: SCHEMA,
        event_id: event_id.to_string(),
        kind: EventKind::ConsoleAudit,
        site: site.to_owned(),
        device: device.to_owned(),
        camera: None,
        at: time(at),
        details: Details::ConsoleAudit(details),
        evidence: None,
    }
}

/// The outbox record of a [`config_payload`].
pub fn config_record(base: &str, site: &str, device: &str, details: Details) -> NewRecord {
    let payload = config_payload(site, device, details, SystemTime::now());
    NewRecord {
        event_id: payload.event_id.clone(),
        topic: format!("{base}/events/{}", payload.kind.as_str()),
        payload: serde_json::to_vec(&to_json(&payload)).unwrap_or_default(),
        camera: None,
        evidence: None,
    }
}

/// The `evidence_epoch` record announcing a new chain epoch.
pub fn epoch_record(base: &str, site: &str, device: &str, details: EvidenceEpochDetails) -> NewRecord {
    let payload = epoch_payload(site, device, details, SystemTime::now());
    NewRecord {
        event_id: payload.event_id.clone(),
        topic: format!("{base}/events/{}", EventKind::EvidenceEpoch.as_str()),
        payload: serde_json::to_vec(&to_json(&payload)).unwrap_or_default(),
        camera: None,
        evidence: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn judged(bbox: [f32; 4], score: f32, distance: f32, best: Option<(&str, f32)>) -> FaceJudgement {
        FaceJudgement {
            bbox,
            score,
            good_frames: 3,
            distance: Some(distance),
            best_match: best.map(|b| b.0.to_owned()),
            best_distance: best.map(|b| b.1),
            liveness: None,
        }
    }

    /// The defect: signed manifests of an accusation held only the transaction and claimed id, and
    /// every face scored "1.000". Now they carry the event's facts, each judged face's included.
    #[test]
    fn payload_keys_go_out_in_alphabetical_order_at_every_level() {
        #[derive(Serialize)]
        struct Inner {
            zeta: u8,
            alpha: u8,
        }
        #[derive(Serialize)]
        struct Outer {
            zulu: Inner,
            bravo: u8,
        }
        let wire = serde_json::to_string(&to_json(&Outer { zulu: Inner { zeta: 1, alpha: 2 }, bravo: 3 })).unwrap();
        assert_eq!(wire, r#"{"bravo":3,"zulu":{"alpha":2,"zeta":1}}"#);
    }

    #[test]
    fn reals_are_rounded_to_three_decimals_without_negative_zero() {
        assert_eq!(serde_json::to_string(&real(-0.0)).unwrap(), "0.0");
        assert_eq!(serde_json::to_string(&real(-0.0001)).unwrap(), "0.0");
        assert_eq!(serde_json::to_string(&real(236.40853333333334)).unwrap(), "236.409");
        assert_eq!(serde_json::to_string(&real(f64::from(0.874f32))).unwrap(), "0.874");
    }

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
        assert_eq!(event["best_distance"], json!(0.312));
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
