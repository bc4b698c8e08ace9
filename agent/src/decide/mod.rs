//! Decisions: what Vigil concludes about the world, to be turned into evidence and events.
//!
//! Camera health, settlement verification, physician presence; bed and chair presence; ward phones'
//! bedside photos and physicians' check-ins (judged by `phones`, carried here as decisions).

pub mod camera;
pub mod dialysis;
pub mod liveness;
pub mod physicians;
pub mod presence;
pub mod role;
pub mod rollcall;
pub mod roster;
pub mod settings;
pub mod settlement;
pub mod tamper;

/// Defined where it is detected; named here too, as decisions carry it.
pub use crate::source::tamper::TamperKind;

/// The clock moved to a foundation module (source uses it too); kept here so `decide::clock` paths work.
pub use crate::clock;

pub use role::CameraRole;

use std::time::SystemTime;

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DecisionKind {
    /// The camera stopped delivering frames (stream error, end, stall); `reason` says which.
    CameraOffline { reason: String },
    /// Frames flow again after `camera_offline`.
    CameraOnline,
    /// A tamper condition held long enough to be raised; `onset` is when it began (the first frame
    /// showing it), the condition's hold time before the decision's `at`.
    CameraTamper {
        tamper: TamperKind,
        #[serde(with = "humantime_serde_compat")]
        onset: SystemTime,
    },
    /// A raised tamper condition is gone.
    CameraTamperCleared { tamper: TamperKind },
    /// The face at the window during a settlement is the claimed insured person (one of the faces seen
    /// there: a companion beside them does not matter).
    SettlementVerified {
        transaction_id: String,
        claimed_id: String,
        distance: f32,
        /// The verified face (box and detector score on the decisive frame, good frames).
        face: settlement::FaceJudgement,
        /// Distinct faces seen at the window during the watch.
        faces_seen: usize,
    },
    /// Nobody at the window is the claimed person; `best_match` names an enrolled person the face
    /// nearest to the claimed person is. `faces` holds every judged face, that one first.
    SettlementIdentityMismatch {
        transaction_id: String,
        claimed_id: String,
        distance: Option<f32>,
        best_match: Option<String>,
        best_distance: Option<f32>,
        faces: Vec<settlement::FaceJudgement>,
        faces_seen: usize,
    },
    /// No usable face at the window during the settlement watch.
    SettlementNoFace { transaction_id: String, claimed_id: String, faces_seen: usize },
    /// The same face settled under another claimed id within the sharing window (card lending).
    IdentitySharedAcrossIds {
        transaction_id: String,
        claimed_id: String,
        other_transaction_id: String,
        other_claimed_id: String,
        /// When the earlier settlement was.
        #[serde(with = "humantime_serde_compat")]
        other_at: SystemTime,
        /// Distance between this settlement's face and the earlier settlement's.
        distance: f32,
        /// This settlement's face that settled before.
        face: settlement::FaceJudgement,
    },
    /// With `[liveness]` on: a face judged at the window looks like a photo or a screen held up to the
    /// camera (its spoof score at or above the threshold). Beside the verdict (`verdict`,
    /// `verdict_event_id`), never instead of it.
    SettlementSpoofSuspected {
        transaction_id: String,
        claimed_id: String,
        /// The verdict's event kind, e.g. `settlement_verified`.
        verdict: String,
        verdict_event_id: String,
        /// The face, with its liveness evidence.
        face: settlement::FaceJudgement,
    },
    /// A physician on shift has not been seen for the configured time.
    PhysicianAbsent {
        physician: String,
        shift_start: SystemTime,
        shift_end: SystemTime,
        /// Unseen since (last sighting, or when watching began).
        since: SystemTime,
    },
    /// A physician's shift ended: what was seen of them.
    PhysicianShiftSummary(physicians::ShiftSummary),
    /// At a roll-call, a registered inpatient's bed was empty.
    BedAbsent(rollcall::Absence),
    /// The K-th (2K-th, …) consecutive roll-call finding the bed empty.
    BedAbsenceEscalated(rollcall::Absence),
    /// One per roll-call: what it found.
    RollcallSummary(RollcallReport),
    /// A dialysis session's verdict: patient mismatch (early), or verified / short / chair empty /
    /// unverifiable at its end.
    Dialysis(dialysis::SessionOutcome),
    /// Writing the camera's recording failed (disk full, directory unwritable): the camera is analysed
    /// but not recorded. Once per episode; recording is retried periodically.
    RecordingStopped { reason: String },
    /// Recording works again after `recording_stopped`.
    RecordingResumed { stopped_secs: u64 },
    /// A ward assistant's bedside photo of an inpatient passed every check.
    BedsideCheckVerified(PhoneCheck),
    /// A bedside photo failed one check or more (the report names them), or came from a revoked phone.
    BedsideCheckRejected(PhoneCheck),
    /// A physician checked in with their phone (their face, their position), verified or not; a verified
    /// one is a sighting for the physician ledger.
    PhysicianCheckin(PhoneCheck),
    /// A region's empty reference no longer fits the picture (the bed or chair was moved): the region
    /// is Unknown, not judged from it, until it fits again or a new reference is taken.
    RegionReferenceStale(presence::StaleReference),
}

/// A judged phone upload: what was claimed and every check (docs/ward-phones.md, "Checks"). The event
/// and the evidence bundle are built from the report by `publish` and the runtime.
#[derive(Debug, Clone, Serialize)]
pub struct PhoneCheck {
    /// Boxed: a report is large, and decisions of every kind travel by value.
    #[serde(skip)]
    pub report: Box<crate::phones::CheckReport>,
}

/// The payload of `rollcall_summary`.
#[derive(Debug, Clone, Serialize)]
pub struct RollcallReport {
    /// "scheduled" or "requested" (the `rollcall` command).
    pub trigger: String,
    pub summary: rollcall::RollcallSummary,
    pub absent: Vec<rollcall::BedRef>,
    pub unknown: Vec<rollcall::BedRef>,
    pub unregistered_occupied: Vec<rollcall::BedRef>,
}

/// A decision about one camera at one time.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// UUIDv7: time-ordered, unique; the event's id everywhere (evidence bundle, MQTT `event_id`).
    pub id: uuid::Uuid,
    pub camera: String,
    #[serde(with = "humantime_serde_compat")]
    pub at: SystemTime,
    #[serde(flatten)]
    pub kind: DecisionKind,
    /// An evidence bundle was requested for it (an `evidence_ready` will follow).
    pub evidence: bool,
}

impl Decision {
    pub fn new(camera: &str, at: SystemTime, kind: DecisionKind) -> Decision {
        Decision { id: uuid::Uuid::now_v7(), camera: camera.to_owned(), at, kind, evidence: false }
    }

    /// Whether the decision is backed by an evidence bundle.
    pub fn needs_evidence(&self) -> bool {
        matches!(
            self.kind,
            DecisionKind::CameraTamper { .. }
                | DecisionKind::SettlementIdentityMismatch { .. }
                | DecisionKind::SettlementNoFace { .. }
                | DecisionKind::IdentitySharedAcrossIds { .. }
                | DecisionKind::SettlementSpoofSuspected { .. }
                | DecisionKind::BedAbsent(_)
                | DecisionKind::BedsideCheckVerified(_)
                | DecisionKind::BedsideCheckRejected(_)
                | DecisionKind::PhysicianCheckin(_)
                | DecisionKind::RegionReferenceStale(_)
        ) || matches!(&self.kind, DecisionKind::Dialysis(o) if o.verdict != dialysis::SessionVerdict::Verified)
    }

    /// When the condition decided on began, for decisions raised some time after it (tamper): their
    /// evidence must show the onset, not only the raise.
    pub fn onset(&self) -> Option<SystemTime> {
        match self.kind {
            DecisionKind::CameraTamper { onset, .. } => Some(onset),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match &self.kind {
            DecisionKind::CameraOffline { .. } => "camera_offline",
            DecisionKind::CameraOnline => "camera_online",
            DecisionKind::CameraTamper { .. } => "camera_tamper",
            DecisionKind::CameraTamperCleared { .. } => "camera_tamper_cleared",
            DecisionKind::SettlementVerified { .. } => "settlement_verified",
            DecisionKind::SettlementIdentityMismatch { .. } => "settlement_identity_mismatch",
            DecisionKind::SettlementNoFace { .. } => "settlement_no_face",
            DecisionKind::IdentitySharedAcrossIds { .. } => "identity_shared_across_ids",
            DecisionKind::SettlementSpoofSuspected { .. } => "settlement_spoof_suspected",
            DecisionKind::PhysicianAbsent { .. } => "physician_absent",
            DecisionKind::PhysicianShiftSummary(_) => "physician_shift_summary",
            DecisionKind::BedAbsent(_) => "bed_absent",
            DecisionKind::BedAbsenceEscalated(_) => "bed_absence_escalated",
            DecisionKind::RollcallSummary(_) => "rollcall_summary",
            DecisionKind::Dialysis(o) => o.verdict.name(),
            DecisionKind::RecordingStopped { .. } => "recording_stopped",
            DecisionKind::RecordingResumed { .. } => "recording_resumed",
            DecisionKind::BedsideCheckVerified(_) => "bedside_check_verified",
            DecisionKind::BedsideCheckRejected(_) => "bedside_check_rejected",
            DecisionKind::PhysicianCheckin(_) => "physician_checkin",
            DecisionKind::RegionReferenceStale(_) => "region_reference_stale",
        }
    }
}

/// Times as RFC 3339 UTC with milliseconds.
mod humantime_serde_compat {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }
}
