//! The `result` object of each command's cmd-result, as the wire carries it (docs/mqtt-api.md,
//! docs/contract/cmd-results/*.schema.json). Handlers build these; renaming a field of an internal type
//! (an enrolment report, a quality measurement) cannot change the wire format silently.

use std::time::SystemTime;

use serde::Serialize;

use super::events::real;
use crate::analyze::quality::Quality;
use crate::gallery::PersonKind;
use crate::gallery::enrol::{EnrollReport, ImageVerdict};

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// `ping`.
#[derive(Debug, Serialize)]
pub struct Pong {
    pub pong: String,
}

impl Pong {
    pub fn at(at: SystemTime) -> Pong {
        Pong { pong: time(at) }
    }
}

/// `settlement`: a watch was opened on the window camera.
#[derive(Debug, Serialize)]
pub struct SettlementWatching {
    pub watching: String,
    pub transaction_id: String,
    pub until: String,
}

impl SettlementWatching {
    pub fn new(camera: &str, transaction_id: &str, until: SystemTime) -> SettlementWatching {
        SettlementWatching {
            watching: camera.to_owned(),
            transaction_id: transaction_id.to_owned(),
            until: time(until),
        }
    }
}

/// `settlement` repeated after its verdict: the verdict, no new watch.
#[derive(Debug, Serialize)]
pub struct SettlementAlreadySettled {
    pub transaction_id: String,
    pub already_settled: String,
    pub event_id: String,
    pub camera: String,
    pub claimed_id: String,
    pub at: String,
}

impl SettlementAlreadySettled {
    pub fn new(
        transaction_id: &str,
        verdict: &str,
        event_id: &str,
        camera: &str,
        claimed_id: &str,
        at: SystemTime,
    ) -> SettlementAlreadySettled {
        SettlementAlreadySettled {
            transaction_id: transaction_id.to_owned(),
            already_settled: verdict.to_owned(),
            event_id: event_id.to_owned(),
            camera: camera.to_owned(),
            claimed_id: claimed_id.to_owned(),
            at: time(at),
        }
    }
}

/// `enroll`: each photo's verdict (`vigil enroll` prints the same object).
#[derive(Debug, Serialize)]
pub struct Enrolled {
    pub id: String,
    pub role: &'static str,
    pub enrolled: bool,
    pub images: Vec<PhotoVerdict>,
}

#[derive(Debug, Serialize)]
pub struct PhotoVerdict {
    pub image: String,
    pub accepted: bool,
    pub reason: Option<String>,
    pub quality: Option<FaceQuality>,
}

/// A face's measurements, reals to three decimals.
#[derive(Debug, Serialize)]
pub struct FaceQuality {
    pub size_px: f64,
    pub sharpness: f64,
    pub score: f64,
    pub roll_deg: f64,
    pub yaw_ratio: f64,
    pub problems: Vec<String>,
}

pub fn role(kind: PersonKind) -> &'static str {
    match kind {
        PersonKind::Patient => "patient",
        PersonKind::Physician => "physician",
    }
}

impl From<&Quality> for FaceQuality {
    fn from(q: &Quality) -> FaceQuality {
        FaceQuality {
            size_px: real(f64::from(q.size_px)),
            sharpness: real(q.sharpness),
            score: real(f64::from(q.score)),
            roll_deg: real(f64::from(q.roll_deg)),
            yaw_ratio: real(f64::from(q.yaw_ratio)),
            problems: q.problems.clone(),
        }
    }
}

impl From<&ImageVerdict> for PhotoVerdict {
    fn from(v: &ImageVerdict) -> PhotoVerdict {
        PhotoVerdict {
            image: v.image.clone(),
            accepted: v.accepted,
            reason: v.reason.clone(),
            quality: v.quality.as_ref().map(FaceQuality::from),
        }
    }
}

impl From<&EnrollReport> for Enrolled {
    fn from(r: &EnrollReport) -> Enrolled {
        Enrolled {
            id: r.id.clone(),
            role: role(r.role),
            enrolled: r.enrolled,
            images: r.images.iter().map(PhotoVerdict::from).collect(),
        }
    }
}

/// `unenroll`.
#[derive(Debug, Serialize)]
pub struct Unenrolled {
    pub removed: String,
}

/// `roster`: how many entries of each list the new roster has.
#[derive(Debug, Serialize)]
pub struct RosterApplied {
    pub inpatients: usize,
    pub dialysis_sessions: usize,
    pub shifts: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reals are rounded as in events; a rejected photo keeps its reason and no quality.
    #[test]
    fn enrolment_report_on_the_wire() {
        let quality = Quality {
            size_px: 188.0,
            sharpness: 412.734_56,
            score: 0.998_123,
            roll_deg: 2.4,
            yaw_ratio: 0.071_9,
            problems: vec![],
        };
        let report = EnrollReport {
            id: "p1".into(),
            role: PersonKind::Physician,
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
        let wire = serde_json::to_value(Enrolled::from(&report)).unwrap();
        assert_eq!(wire["role"], "physician");
        assert_eq!(wire["images"][0]["quality"]["sharpness"], 412.735);
        assert_eq!(wire["images"][0]["quality"]["score"], 0.998);
        assert_eq!(wire["images"][0]["quality"]["roll_deg"], 2.4);
        assert_eq!(wire["images"][0]["quality"]["yaw_ratio"], 0.072);
        assert_eq!(wire["images"][1]["reason"], "no face found");
        assert!(wire["images"][1]["quality"].is_null());
    }
}

/// `phone_add`: the new phone and its one-time enrolment link (a secret until used: hand it only to the
/// phone's holder).
#[derive(Debug, Serialize)]
pub struct PhoneAdded {
    pub phone: String,
    pub ward: String,
    pub name: String,
    /// `bedside` or `physician`.
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physician: Option<String>,
    pub enrolment_link: String,
    pub expires_at: String,
}

impl PhoneAdded {
    pub fn new(phone: &crate::phones::Phone, enrolment_link: &str, expires_at: SystemTime) -> PhoneAdded {
        PhoneAdded {
            phone: phone.id.clone(),
            ward: phone.ward.clone(),
            name: phone.name.clone(),
            mode: match phone.mode {
                crate::phones::Mode::Bedside => "bedside",
                crate::phones::Mode::Physician => "physician",
            },
            physician: phone.physician.clone(),
            enrolment_link: enrolment_link.to_owned(),
            expires_at: time(expires_at),
        }
    }
}

/// `phone_revoke`: when the phone was revoked (the first time, when it already was).
#[derive(Debug, Serialize)]
pub struct PhoneRevoked {
    pub phone: String,
    pub revoked_at: String,
    pub already_revoked: bool,
}

impl PhoneRevoked {
    pub fn new(phone: &str, revoked_at: SystemTime, already_revoked: bool) -> PhoneRevoked {
        PhoneRevoked { phone: phone.to_owned(), revoked_at: time(revoked_at), already_revoked }
    }
}

/// `config_apply`: the new configuration is valid and written; the agent restarts with it and tries it
/// until `trial_until`, then says `config_applied` or `config_rolled_back` (events).
#[derive(Debug, Serialize)]
pub struct ConfigAccepted {
    pub accepted: bool,
    /// SHA-256 (hex) of the new file.
    pub config_sha256: String,
    /// SHA-256 of the file it replaces, kept as `<config>.previous`.
    pub previous_sha256: String,
    /// The trial's length, seconds (`confirm_within_s`, bounded).
    pub confirm_within_s: u64,
}
