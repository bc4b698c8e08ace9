//! The checks an upload passes on the box (docs/ward-phones.md, "Checks"): `image`, `position`,
//! `geofence`, `time`, `replay`, `face` and `bed_camera`, in [`CheckName`] order. The `signature`
//! check is the server's and the runtime's (who sent it); everything here judges what was sent.
//!
//! Every check runs and says why, whatever the others found: a photo that does not decode still has
//! its position and time judged, so the report names every problem at once. Only what cannot be judged
//! without an earlier result is skipped (no face check without pixels, no geofence without a position).
//! Bad metadata (no patient in bedside mode, an unreadable capture time) fails the check it concerns
//! with a reason; it never stops the others.
//!
//! A [`Checker`] owns its face sessions and its connection to the replay index: the runtime gives each
//! check-in worker its own (as each camera's analysis has its own), so no lock is held across a model
//! run. What the runtime knows about the site (wards, the roster's beds, the presence history) comes in
//! through [`SiteFacts`].

use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use image::RgbImage;

use super::exif::{self, ExifRead};
use super::geofence;
use super::image::{self as photo, PhotoFormat};
use super::phash;
use super::replay::{ReplayError, ReplayIndex, Seen, Upload};
use super::report::{Check, CheckName, CheckReport, Mode, Position};
use super::service::SignedUpload;
use super::settings::{PhoneSettings, Ward};
use crate::analyze::boxes::BBox;
use crate::analyze::faces::{FaceAnalyzer, NotEmbedded};
use crate::analyze::image::draw_box;
use crate::analyze::quality::QualityThresholds;
use crate::gallery::search::SearchIndex;
use crate::hashing;
use crate::times::{self, Naive};

/// What the runtime knows that the checks need.
pub trait SiteFacts {
    /// The configured ward with this id.
    fn ward(&self, id: &str) -> Option<Ward>;
    /// The roster's bed of an inpatient: `(camera, bed)`; `None` when the patient is not an inpatient.
    fn bed_of(&self, patient: &str) -> Option<(String, String)>;
    /// Whether the presence history saw the bed occupied at `at` (within the presence `enter_secs` of
    /// it): `Some(true)` occupied, `Some(false)` empty, `None` unknown (no history then, camera down).
    fn occupied(&self, camera: &str, bed: &str, at: SystemTime) -> Option<bool>;
}

/// How faces are judged: enrolment's quality gate (`[faces]`, as `vigil enroll`) and the match distance.
#[derive(Debug, Clone, Copy)]
pub struct FaceRules {
    /// Same person when the embedding distance is below this (`[faces] match_distance`).
    pub match_distance: f32,
    /// Enrolment's gate (`config.faces.quality()`).
    pub quality: QualityThresholds,
}

/// Why an upload could not be judged at all: the box's fault, not the photo's (the service answers 503
/// and the phone sends it again later).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error("the face models failed: {0}")]
    Model(String),
}

/// The report and what the evidence bundle needs besides it.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Checks `image` … `bed_camera`; the runtime puts `signature` first.
    pub report: CheckReport,
    /// By the body's magic bytes: the original's extension in the bundle (`photo.jpg|png|bin`).
    pub format: PhotoFormat,
    /// The decoded photo, upright (for `annotated.jpg`); `None` when it did not decode.
    pub image: Option<RgbImage>,
    /// Every face detected, `[x1, y1, x2, y2]` in `image`'s pixels.
    pub faces: Vec<BBox>,
    /// The face check passed (boxes drawn green, else red).
    pub face_passed: bool,
    /// Lower-case hex SHA-256 of the body.
    pub sha256: String,
}

impl Checked {
    /// The decoded photo with every detected face boxed: green when the face check passed, red
    /// otherwise (`annotated.jpg` of the evidence bundle); `None` when the photo did not decode.
    pub fn annotated(&self) -> Option<RgbImage> {
        let mut img = self.image.clone()?;
        let color = if self.face_passed { [0, 200, 0] } else { [220, 0, 0] };
        // Visible on a phone photo of any size: about 0.4 % of the longer side.
        let thickness = (img.width().max(img.height()) / 250).max(2);
        for bbox in &self.faces {
            draw_box(&mut img, *bbox, color, thickness);
        }
        Some(img)
    }
}

pub struct Checker {
    settings: PhoneSettings,
    faces: FaceAnalyzer,
    gallery: Arc<RwLock<SearchIndex>>,
    rules: FaceRules,
    /// Seconds east of UTC (`[rollcalls] utc_offset`): EXIF times without an offset are the site's.
    site_offset_secs: i32,
    replay: ReplayIndex,
}

/// What the `position` check concluded, for the `geofence` check.
enum Located {
    Usable(Position),
    /// A position, but too vague to place anyone.
    Vague,
    None,
}

impl Checker {
    pub fn new(
        settings: PhoneSettings,
        faces: FaceAnalyzer,
        gallery: Arc<RwLock<SearchIndex>>,
        rules: FaceRules,
        site_offset_secs: i32,
        replay: ReplayIndex,
    ) -> Checker {
        Checker { settings, faces, gallery, rules, site_offset_secs, replay }
    }

    /// The replay index, with the answers remembered for re-sent captures (`answered` / `remember`).
    pub fn index(&mut self) -> &mut ReplayIndex {
        &mut self.replay
    }

    /// Judges one upload. `event_id` is the event (and bundle) it will become: a later replay of this
    /// photo names it. Every decoded upload is recorded for later replay checks, rejected ones too.
    ///
    /// A revoked phone's upload is not judged: every check is skipped (`phone_revoked`) and nothing is
    /// recorded; the runtime's failed `signature` check says why.
    pub fn check(
        &mut self,
        upload: &SignedUpload,
        event_id: uuid::Uuid,
        site: &dyn SiteFacts,
    ) -> Result<Checked, CheckError> {
        let meta = &upload.meta;
        let phone = &upload.phone;
        let sha256 = hashing::sha256_hex(&upload.photo);
        let format = PhotoFormat::sniff(&upload.photo);
        let ward = site.ward(&phone.ward);
        let captured = times::parse(&meta.captured_at, Naive::Refuse);
        let claimed = match phone.mode {
            Mode::Bedside => meta.patient.clone(),
            Mode::Physician => phone.physician.clone(),
        };
        let bed = match (phone.mode, &claimed) {
            (Mode::Bedside, Some(patient)) => site.bed_of(patient),
            _ => None,
        };
        let mut report = CheckReport {
            capture_id: meta.capture_id,
            phone_id: phone.id.clone(),
            ward: phone.ward.clone(),
            mode: phone.mode,
            claimed: claimed.clone().unwrap_or_default(),
            bed: bed.as_ref().map(|b| b.1.clone()),
            camera: bed.as_ref().map(|b| b.0.clone()),
            captured_at: captured.as_ref().copied().unwrap_or(upload.received_at),
            received_at: upload.received_at,
            late: false,
            position: meta.position,
            checks: Vec::with_capacity(7),
        };
        let mut checked =
            Checked { report: report.clone(), format, image: None, faces: Vec::new(), face_passed: false, sha256 };
        if upload.revoked {
            report.checks = CheckName::ALL[1..]
                .iter()
                .map(|name| Check::skipped(*name, "phone_revoked", "The phone is revoked: its upload is not judged."))
                .collect();
            checked.report = report;
            return Ok(checked);
        }

        // image
        let decoded = photo::decode(&upload.photo, self.settings.max_pixels);
        let exif = match &decoded {
            Ok(_) => exif::read(&upload.photo),
            Err(_) => ExifRead::Absent,
        };
        let mut image_check = match &decoded {
            Ok(d) => Check::passed(
                CheckName::Image,
                "decoded",
                format!("A {} photo of {}×{} pixels.", d.format.as_str().to_uppercase(), d.width, d.height),
            )
            .with("width", d.width)
            .with("height", d.height)
            .with("exif", exif.fact()),
            Err(e) => Check::failed(CheckName::Image, e.reason(), format!("{}.", capitalise(&e.to_string()))),
        };
        image_check = image_check
            .with("format", format.as_str())
            .with("bytes", upload.photo.len())
            .with("sha256", &checked.sha256);
        if let Some(ct) = &upload.content_type {
            image_check = image_check.with("content_type", ct);
        }
        match &exif {
            ExifRead::Unreadable(why) => image_check = image_check.with("exif_error", why),
            ExifRead::Present(f) if !f.problems.is_empty() => {
                image_check = image_check.with("exif_problems", f.problems.join("; "))
            }
            _ => {}
        }
        report.checks.push(image_check);

        // position, geofence
        let (position_check, located) = self.position(meta.position, exif.facts().and_then(|f| f.gps));
        report.checks.push(position_check);
        report.checks.push(match (&located, &ward) {
            (Located::None, _) => {
                Check::skipped(CheckName::Geofence, "no_position", "No usable position to place on the map.")
            }
            (Located::Vague, _) => Check::skipped(
                CheckName::Geofence,
                "position_too_vague",
                "The position is too vague to say whether it is inside the ward.",
            ),
            (Located::Usable(_), None) => unknown_ward(CheckName::Geofence, &phone.ward),
            (Located::Usable(p), Some(w)) => geofence::judge(&w.id, &w.geofence, p),
        });

        // time
        let (time_check, late) = self.time(&captured, &meta.captured_at, upload.received_at, &exif);
        report.late = late;
        report.checks.push(time_check);

        // replay
        let phash = decoded.as_ref().ok().map(|d| phash::phash(&d.pixels));
        report.checks.push(match phash {
            None => Check::skipped(CheckName::Replay, "no_image", "The photo did not decode: nothing to compare."),
            Some(hash) => self.replay_check(&Upload {
                ward: phone.ward.clone(),
                capture_id: meta.capture_id,
                phone: phone.id.clone(),
                sha256: checked.sha256.clone(),
                phash: hash,
                received_at: upload.received_at,
                event_id,
            })?,
        });

        // face
        let face_check = match &decoded {
            Err(_) => Check::skipped(CheckName::Face, "no_image", "The photo did not decode: no face to look for."),
            Ok(d) => {
                let (check, boxes) = self.face(&d.pixels, phone.mode, meta.mode, claimed.as_deref())?;
                checked.faces = boxes;
                check
            }
        };
        checked.face_passed = face_check.outcome == super::report::Outcome::Passed;
        report.checks.push(face_check);

        // bed_camera
        report.checks.push(bed_camera(phone.mode, claimed.as_deref(), bed, ward.as_ref(), &report, site));

        tracing::debug!(phone = %phone.id, capture_id = %meta.capture_id, verified = report.verified(),
            failed = ?report.failed(), "upload checked");
        checked.report = report;
        checked.image = decoded.ok().map(|d| d.pixels);
        Ok(checked)
    }

    fn position(&self, position: Option<Position>, exif_gps: Option<[f64; 2]>) -> (Check, Located) {
        let name = CheckName::Position;
        let Some(p) = position else {
            let check = Check::failed(name, "no_position", "The phone sent no position (location off or denied).");
            return (check, Located::None);
        };
        let valid = (-90.0..=90.0).contains(&p.lat)
            && (-180.0..=180.0).contains(&p.lon)
            && p.accuracy_m.is_finite()
            && p.accuracy_m >= 0.0;
        if !valid {
            let check = Check::failed(
                name,
                "bad_position",
                format!("The position ({}, {}, ±{} m) is not a place on earth.", p.lat, p.lon, p.accuracy_m),
            );
            return (check, Located::None);
        }
        let with_facts = |c: Check| {
            c.with("lat", format!("{:.6}", p.lat))
                .with("lon", format!("{:.6}", p.lon))
                .with("accuracy_m", format!("{:.1}", p.accuracy_m))
        };
        let mut exif_distance = None;
        if let Some(gps) = exif_gps {
            let d = geofence::haversine_m([p.lat, p.lon], gps);
            exif_distance = Some(d);
            if d > self.settings.exif_position_tolerance_m {
                let check = Check::failed(
                    name,
                    "exif_position_disagrees",
                    format!(
                        "The photo's own GPS position is {d:.0} m from the phone's, more than the {:.0} m allowed.",
                        self.settings.exif_position_tolerance_m
                    ),
                );
                let check = with_facts(check)
                    .with("exif_lat", format!("{:.6}", gps[0]))
                    .with("exif_lon", format!("{:.6}", gps[1]))
                    .with("exif_distance_m", format!("{d:.1}"));
                // The browser's position still places the phone: the geofence judges it.
                let located =
                    if p.accuracy_m > self.settings.max_accuracy_m { Located::Vague } else { Located::Usable(p) };
                return (check, located);
            }
        }
        let add_exif = |c: Check| match (exif_gps, exif_distance) {
            (Some(gps), Some(d)) => c
                .with("exif_lat", format!("{:.6}", gps[0]))
                .with("exif_lon", format!("{:.6}", gps[1]))
                .with("exif_distance_m", format!("{d:.1}")),
            _ => c,
        };
        if p.accuracy_m > self.settings.max_accuracy_m {
            let check = Check::failed(
                name,
                "position_too_vague",
                format!(
                    "The position is accurate to {:.0} m only; at most {:.0} m is accepted.",
                    p.accuracy_m, self.settings.max_accuracy_m
                ),
            );
            return (add_exif(with_facts(check)), Located::Vague);
        }
        let check = match exif_distance {
            Some(d) => Check::passed(
                name,
                "exif_agrees",
                format!("The phone's position, accurate to {:.0} m; the photo's GPS agrees ({d:.0} m).", p.accuracy_m),
            ),
            None => Check::passed(
                name,
                "browser_position",
                format!("The phone's position, accurate to {:.0} m.", p.accuracy_m),
            ),
        };
        (add_exif(with_facts(check)), Located::Usable(p))
    }

    /// The `time` check and whether the upload is late.
    fn time(
        &self,
        captured: &Result<SystemTime, String>,
        captured_text: &str,
        received: SystemTime,
        exif: &ExifRead,
    ) -> (Check, bool) {
        let name = CheckName::Time;
        let captured = match captured {
            Ok(t) => *t,
            Err(why) => {
                let check = Check::failed(name, "bad_capture_time", format!("The capture time is unreadable: {why}."))
                    .with("captured_at", captured_text);
                return (check, false);
            }
        };
        let skew = self.settings.skew_secs as i64;
        let age = secs_between(captured, received);
        let facts = |c: Check| {
            c.with("captured_at", times::format(captured))
                .with("received_at", times::format(received))
                .with("age_secs", age)
        };
        if age < -skew {
            let check = Check::failed(
                name,
                "in_the_future",
                format!("The capture time is {} s after the box received it: the phone's clock is wrong.", -age),
            );
            return (facts(check), false);
        }
        let max_age = self.settings.max_offline_hours as i64 * 3600;
        if age > max_age {
            let check = Check::failed(
                name,
                "too_old",
                format!(
                    "Captured {} before it was received; at most {} h is accepted.",
                    humantime::format_duration(std::time::Duration::from_secs(age as u64)),
                    self.settings.max_offline_hours
                ),
            );
            return (facts(check), false);
        }
        let late = age > skew;
        if let Some(taken) = exif.facts().and_then(|f| f.taken.as_ref()) {
            match taken.instant(self.site_offset_secs) {
                Ok(at) => {
                    let off = secs_between(captured, at);
                    if off.abs() > skew + 60 {
                        let check = Check::failed(
                            name,
                            "exif_time_disagrees",
                            format!(
                                "The photo's own time ({}) is {} s from the capture time the phone sent.",
                                taken.text(),
                                off.abs()
                            ),
                        );
                        return (facts(check).with("exif_time", taken.text()).with("exif_offset_secs", off), late);
                    }
                    let check = on_time(late, age);
                    return (facts(check).with("exif_time", taken.text()).with("exif_offset_secs", off), late);
                }
                Err(why) => {
                    return (
                        facts(on_time(late, age)).with("exif_time", taken.text()).with("exif_time_error", why),
                        late,
                    );
                }
            }
        }
        (facts(on_time(late, age)), late)
    }

    /// Judges the upload against the ward's earlier ones and records it, in one transaction.
    fn replay_check(&mut self, upload: &Upload) -> Result<Check, ReplayError> {
        let name = CheckName::Replay;
        let days = self.settings.replay_window_days;
        let earlier = |c: Check, e: &super::replay::Earlier| {
            c.with("earlier_event", &e.event_id)
                .with("earlier_capture", &e.capture_id)
                .with("earlier_phone", &e.phone)
                .with("earlier_received_at", times::format(e.received_at))
        };
        let check = match self.replay.seen_then_record(upload, self.settings.near_duplicate_bits)? {
            Seen::New => {
                Check::passed(name, "new_photo", format!("Not a photo this ward sent in the last {days} days."))
            }
            Seen::Exact(e) => earlier(
                Check::failed(
                    name,
                    "exact_replay",
                    format!("The same photo, byte for byte, was sent before (event {}).", e.event_id),
                ),
                &e,
            ),
            Seen::Near(e) => earlier(
                Check::failed(
                    name,
                    "near_duplicate",
                    format!(
                        "The same picture (re-encoded or resized; {} of 64 bits differ) was sent before (event {}).",
                        e.hamming_bits, e.event_id
                    ),
                ),
                &e,
            )
            .with("hamming_bits", e.hamming_bits),
        };
        Ok(check.with("phash", format!("{:016x}", upload.phash)))
    }

    /// The `face` check and every detected face's box.
    fn face(
        &mut self,
        img: &RgbImage,
        mode: Mode,
        sent_mode: Mode,
        claimed: Option<&str>,
    ) -> Result<(Check, Vec<BBox>), CheckError> {
        let name = CheckName::Face;
        let analysed = self.faces.analyse(img, &self.rules.quality).map_err(|e| CheckError::Model(e.to_string()))?;
        let boxes: Vec<BBox> = analysed.iter().map(|a| a.face.bbox).collect();
        let mut usable = Vec::new();
        let mut problems = Vec::new();
        for a in &analysed {
            match &a.embedding {
                Ok(e) => usable.push(*e),
                Err(NotEmbedded::BelowGate) => problems.push(a.quality.problems.join(", ")),
                Err(NotEmbedded::Model(e)) => return Err(CheckError::Model(e.clone())),
            }
        }
        let detected = analysed.len();
        let counts = |c: Check| c.with("faces_detected", detected).with("faces_usable", usable.len());
        if sent_mode != mode {
            let check = Check::failed(
                name,
                "wrong_mode",
                format!(
                    "The upload says {} mode but the phone is enrolled for {} mode.",
                    mode_name(sent_mode),
                    mode_name(mode)
                ),
            );
            return Ok((counts(check), boxes));
        }
        let Some(claimed) = claimed else {
            let check = match mode {
                Mode::Bedside => Check::failed(name, "no_patient", "The upload names no patient."),
                Mode::Physician => Check::failed(name, "no_physician", "The phone is not enrolled for a physician."),
            };
            return Ok((counts(check), boxes));
        };
        let embedding = match usable.as_slice() {
            [] => {
                let detail = if detected == 0 {
                    "No face was found in the photo.".to_owned()
                } else {
                    format!("{detected} face(s) found, none clear enough: {}.", problems.join("; "))
                };
                return Ok((counts(Check::failed(name, "no_face", detail)), boxes));
            }
            [one] => *one,
            several => {
                let check = Check::failed(
                    name,
                    "several_faces",
                    format!("{} clear faces in the photo; it must show one person.", several.len()),
                );
                return Ok((counts(check), boxes));
            }
        };
        let gallery = self.gallery.read().unwrap_or_else(|e| e.into_inner());
        let Some(distance) = gallery.distance_to(&embedding, claimed) else {
            let check =
                Check::failed(name, "not_enrolled", format!("{claimed:?} is not enrolled: no face to compare."));
            return Ok((counts(check).with("claimed", claimed), boxes));
        };
        let check = if distance < self.rules.match_distance {
            Check::passed(name, "matches", format!("The face is {claimed:?}'s (distance {distance:.3})."))
        } else {
            let mut check = Check::failed(
                name,
                "not_the_claimed_person",
                format!(
                    "The face is not {claimed:?}'s (distance {distance:.3}, at most {} allowed).",
                    self.rules.match_distance
                ),
            );
            if let Some(best) = gallery.best(&embedding, None).filter(|b| b.id != claimed && b.distance < distance) {
                check = check.with("best_match", &best.id).with("best_match_distance", format!("{:.3}", best.distance));
            }
            check
        };
        Ok((counts(check).with("claimed", claimed).with("distance", format!("{distance:.3}")), boxes))
    }
}

fn on_time(late: bool, age: i64) -> Check {
    if late {
        Check::passed(
            CheckName::Time,
            "late",
            format!(
                "Captured {} before it was received (kept on the phone while offline).",
                humantime::format_duration(std::time::Duration::from_secs(age.max(0) as u64))
            ),
        )
    } else {
        Check::passed(CheckName::Time, "on_time", "Captured just before it was received.")
    }
}

fn bed_camera(
    mode: Mode,
    patient: Option<&str>,
    bed: Option<(String, String)>,
    ward: Option<&Ward>,
    report: &CheckReport,
    site: &dyn SiteFacts,
) -> Check {
    let name = CheckName::BedCamera;
    if mode == Mode::Physician {
        return Check::skipped(name, "not_applicable", "A physician's check-in has no bed.");
    }
    let Some(patient) = patient else {
        return Check::skipped(name, "no_patient", "The upload names no patient, so no bed.");
    };
    let Some(ward) = ward else {
        return unknown_ward(name, &report.ward);
    };
    let Some((camera, bed)) = bed.filter(|(camera, _)| ward.cameras.contains(camera)) else {
        return Check::failed(
            name,
            "not_on_this_ward",
            format!("{patient:?} is not an inpatient of ward {:?} in the roster.", ward.id),
        )
        .with("patient", patient);
    };
    let facts = |c: Check| c.with("camera", &camera).with("bed", &bed);
    match site.occupied(&camera, &bed, report.captured_at) {
        Some(true) => {
            facts(Check::passed(name, "occupied", format!("Camera {camera:?} saw bed {bed:?} occupied then.")))
        }
        Some(false) => {
            facts(Check::failed(name, "bed_empty", format!("Camera {camera:?} saw bed {bed:?} empty then.")))
        }
        None => facts(Check::skipped(
            name,
            "unknown",
            format!("Camera {camera:?} has no record of bed {bed:?} at that time."),
        )),
    }
}

fn unknown_ward(name: CheckName, ward: &str) -> Check {
    Check::failed(name, "unknown_ward", format!("The phone's ward {ward:?} is not configured on this box."))
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Bedside => "bedside",
        Mode::Physician => "physician",
    }
}

/// Seconds from `a` to `b` (negative when `b` is earlier).
fn secs_between(a: SystemTime, b: SystemTime) -> i64 {
    match b.duration_since(a) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
