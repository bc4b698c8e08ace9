//! What the box concluded about one upload: every check by name, its outcome and the facts it was
//! judged on. The same report goes into the upload's evidence bundle, its MQTT event and the answer
//! the phone shows (docs/ward-phones.md, "Checks").

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The checks, in the order they run and are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    /// Signed by a registered, unrevoked phone (the signature covers the metadata and the photo's hash).
    Signature,
    /// A real JPEG or PNG within the size and pixel limits, decoded without error.
    Image,
    /// A position to judge: the browser's (with its accuracy) and, when the photo carries EXIF GPS,
    /// the two agree.
    Position,
    /// The position lies inside the ward's geofence, its accuracy taken into account.
    Geofence,
    /// The capture time is within the skew window of receipt (or of an offline capture's age limit);
    /// EXIF DateTimeOriginal, when present, agrees.
    Time,
    /// Not the same photo as an earlier upload of the ward: exact (SHA-256) or near (perceptual hash).
    Replay,
    /// Exactly one usable face (enrolment's quality gate), and it is the claimed person.
    Face,
    /// Where the bed has a camera: the camera saw the bed occupied at the capture time.
    BedCamera,
}

impl CheckName {
    pub const ALL: [CheckName; 8] = [
        CheckName::Signature,
        CheckName::Image,
        CheckName::Position,
        CheckName::Geofence,
        CheckName::Time,
        CheckName::Replay,
        CheckName::Face,
        CheckName::BedCamera,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Signature => "signature",
            CheckName::Image => "image",
            CheckName::Position => "position",
            CheckName::Geofence => "geofence",
            CheckName::Time => "time",
            CheckName::Replay => "replay",
            CheckName::Face => "face",
            CheckName::BedCamera => "bed_camera",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    Failed,
    /// Not applicable (no bed camera, a physician's check-in has no bed) or not possible because an
    /// earlier check failed (no face check on a photo that does not decode).
    Skipped,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: CheckName,
    pub outcome: Outcome,
    /// A stable machine-readable reason (`outside_geofence`, `near_duplicate`, `two_faces`, …); the
    /// phone page translates it, the platform can count it.
    pub reason: String,
    /// One English sentence for logs and supervisors.
    pub detail: String,
    /// What it was judged on, as strings (no floating-point numbers in evidence): distances, hashes,
    /// the earlier upload a replay matched, the face's box and distance.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, String>,
}

impl Check {
    pub fn passed(name: CheckName, reason: &str, detail: impl Into<String>) -> Check {
        Check {
            name,
            outcome: Outcome::Passed,
            reason: reason.to_owned(),
            detail: detail.into(),
            facts: BTreeMap::new(),
        }
    }

    pub fn failed(name: CheckName, reason: &str, detail: impl Into<String>) -> Check {
        Check {
            name,
            outcome: Outcome::Failed,
            reason: reason.to_owned(),
            detail: detail.into(),
            facts: BTreeMap::new(),
        }
    }

    pub fn skipped(name: CheckName, reason: &str, detail: impl Into<String>) -> Check {
        Check {
            name,
            outcome: Outcome::Skipped,
            reason: reason.to_owned(),
            detail: detail.into(),
            facts: BTreeMap::new(),
        }
    }

    pub fn with(mut self, fact: &str, value: impl ToString) -> Check {
        self.facts.insert(fact.to_owned(), value.to_string());
        self
    }
}

/// Bedside photo of an inpatient by a ward assistant, or a physician's own check-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Bedside,
    Physician,
}

/// A position as the phone reported it (WGS-84 degrees; accuracy in metres, the browser's radius).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: f64,
}

/// The verdict on one upload: what was claimed, when, and every check.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The phone's id for the capture (UUID): a re-sent upload has the same one and gets the same answer.
    pub capture_id: uuid::Uuid,
    pub phone_id: String,
    pub ward: String,
    pub mode: Mode,
    /// The patient (bedside) or physician (check-in) the photo is claimed to show.
    pub claimed: String,
    /// Bedside: the patient's bed and the ward camera that watches it (from the roster).
    pub bed: Option<String>,
    pub camera: Option<String>,
    pub captured_at: SystemTime,
    pub received_at: SystemTime,
    /// Captured longer before receipt than the skew window (kept on the phone while offline).
    pub late: bool,
    pub position: Option<Position>,
    pub checks: Vec<Check>,
}

impl CheckReport {
    /// Verified when no check failed (skipped ones do not count against it).
    pub fn verified(&self) -> bool {
        self.checks.iter().all(|c| c.outcome != Outcome::Failed)
    }

    /// The names of the checks that failed, in check order.
    pub fn failed(&self) -> Vec<&'static str> {
        self.checks.iter().filter(|c| c.outcome == Outcome::Failed).map(|c| c.name.as_str()).collect()
    }
}
