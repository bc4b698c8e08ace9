//! The runtime's check-in service: what happens to an upload once the HTTP server has verified who sent
//! it (docs/ward-phones.md). In order, for one upload:
//!
//! 1. **Idempotency.** The same (phone, capture id) answered before gets the same answer again
//!    (`repeated: true`): no new bundle, no new event. The same capture still being judged (a phone
//!    re-sending while its first request runs) is told to come back (`Unavailable`, 503).
//! 2. **Signature.** The server verified the signature; the report's first check says so: passed
//!    `registered_phone`, or failed `phone_revoked` — then every other check is `skipped` and nothing
//!    else is judged (the attempt is recorded all the same).
//! 3. **The checks** ([`Judge`], `phones::checks`: image, position, geofence, time, replay, face, bed
//!    camera), on one of a few [`Checkers`].
//! 4. **The bundle**, written synchronously through the one evidence [`Store`](crate::evidence::store::Store)
//!    (the shared writer).
//! 5. **The events**: the decision (`bedside_check_verified` / `bedside_check_rejected` /
//!    `physician_checkin`) and its `evidence_ready`, committed to the outbox through the [`Emitter`], in
//!    that order. The bundle exists before the event that announces it, as for every bundle.
//! 6. **The answer**, only once the outbox holds both events. A verified physician check-in is then a
//!    sighting for the physician ledger.
//!
//! What a failure leaves ("nothing half-recorded"):
//! - the bundle cannot be written (disk full, clock behind the chain): nothing is recorded, the phone
//!   is told `Storage` (503) and keeps the capture; its re-send is judged afresh.
//! - the bundle is written but the outbox refuses the events: they wait in memory, in order, and the
//!   emitter commits them as soon as the outbox takes them again (the evidence worker retries every
//!   half second). The phone is told `Storage` (503) and re-sends the same capture id; once the events
//!   are committed, the re-send gets the answer of that bundle and event (`repeated`), never a second
//!   bundle or event. (Only a stop of the agent before the outbox takes them loses the events; the
//!   bundle stays in the chain.)
//!
//! Answers are kept durably once their events are committed (`<data_dir>/checkins.sqlite`, for the
//! replay window), so a re-send after a restart still gets its answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use tracing::{error, info, warn};

use super::evidence::{SharedStore, chain_head, lock};
use super::people::People;
use super::presence::OccupancyHistory;
use super::sink::Emitter;
use crate::analyze::Models;
use crate::analyze::boxes::BBox;
use crate::config::Config;
use crate::decide::presence::Occupancy;
use crate::decide::{Decision, DecisionKind, PhoneCheck};
use crate::evidence::checkin::{Annotation, CheckinRequest};
use crate::evidence::manifest::CameraIdentity;
use crate::gallery::search::SearchIndex;
use crate::phones::checks::{CheckError, Checker, FaceRules, SiteFacts};
use crate::phones::replay::ReplayIndex;
use crate::phones::service::{Answer, Checkins, Inpatient, SignedUpload, SubmitError, WardView};
use crate::phones::{Check, CheckName, CheckReport, Mode, Phone, Ward};
use crate::publish::events;

/// What the checks concluded about an authentic upload from an unrevoked phone.
pub struct Judged {
    /// Every check from `image` on, in check order (a `signature` entry, if any, is replaced by the
    /// service's), with what was claimed, when, where.
    pub report: CheckReport,
    /// The photo, decoded (None when it did not decode: the bundle then has no annotated photo).
    pub picture: Option<image::RgbImage>,
    /// The faces found in it, as drawn on the annotated photo.
    pub faces: Vec<BBox>,
    /// The face check passed: the boxes are drawn green, else red.
    pub face_passed: bool,
}

/// The checks after `signature` ([`Checkers`], `phones::checks`). A trait so the service's own logic
/// can be tested alone. Blocking; called from several threads at once. `event_id` is the event (and
/// bundle) the upload becomes: a later replay of the photo names it.
pub trait Judge: Send + Sync + 'static {
    fn judge(&self, upload: &SignedUpload, event_id: uuid::Uuid) -> Result<Judged, SubmitError>;
}

/// How many checkers `vigil run` keeps: each holds its own face sessions (tens of MB), and the box has
/// few cores; more uploads at once wait for one.
pub const CHECKERS: usize = 2;

/// A few [`Checker`]s, each with its own face sessions and replay-index connection: an upload takes
/// one (waiting while all are busy), so no lock is held across a model run and memory stays bounded
/// whatever the number of uploads at once (the server bounds those to `[http] max_concurrent_uploads`).
pub struct Checkers {
    idle: Mutex<Vec<Checker>>,
    returned: Condvar,
    site: Site,
}

/// What the runtime knows that the checks need: wards, the roster's beds, the presence history.
struct Site {
    wards: Vec<Ward>,
    people: Arc<People>,
    history: Arc<OccupancyHistory>,
    /// The presence `enter_secs`: the window around a photo's time the bed is judged on.
    bed_tolerance: Duration,
}

impl SiteFacts for Site {
    fn ward(&self, id: &str) -> Option<Ward> {
        self.wards.iter().find(|w| w.id == id).cloned()
    }

    fn bed_of(&self, patient: &str) -> Option<(String, String)> {
        let roster = self.people.roster();
        roster.inpatients.iter().find(|p| p.patient == patient).map(|p| (p.camera.clone(), p.bed.clone()))
    }

    fn occupied(&self, camera: &str, bed: &str, at: SystemTime) -> Option<bool> {
        match self.history.around(camera, bed, at, self.bed_tolerance) {
            Occupancy::Occupied => Some(true),
            Occupancy::Empty => Some(false),
            Occupancy::Unknown => None,
        }
    }
}

impl Checkers {
    pub fn new(
        checkers: Vec<Checker>,
        config: &Config,
        people: Arc<People>,
        history: Arc<OccupancyHistory>,
    ) -> Checkers {
        Checkers {
            idle: Mutex::new(checkers),
            returned: Condvar::new(),
            site: Site {
                wards: config.wards.clone(),
                people,
                history,
                bed_tolerance: Duration::from_secs(config.presence.enter_secs),
            },
        }
    }
}

impl Judge for Checkers {
    fn judge(&self, upload: &SignedUpload, event_id: uuid::Uuid) -> Result<Judged, SubmitError> {
        let mut checker = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(checker) = idle.pop() {
                    break checker;
                }
                idle = self.returned.wait(idle).unwrap_or_else(|e| e.into_inner());
            }
        };
        // A panic in the checks (a bug) fails this upload, not the pool: the checker goes back either way.
        let checked =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| checker.check(upload, event_id, &self.site)));
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(checker);
        self.returned.notify_one();
        let checked = checked.map_err(|_| {
            error!(phone = %upload.phone.id, capture = %upload.meta.capture_id,
                "the checks panicked on this upload (a bug); it is not recorded and the phone will send it again");
            SubmitError::Unavailable("the checks failed on this upload".into())
        })?;
        let checked = checked.map_err(|e| match e {
            CheckError::Replay(e) => SubmitError::Storage(format!("the check-in index: {e}")),
            CheckError::Model(e) => SubmitError::Unavailable(format!("the face models failed: {e}")),
        })?;
        Ok(Judged {
            report: checked.report,
            picture: checked.image,
            faces: checked.faces,
            face_passed: checked.face_passed,
        })
    }
}

/// Where an upload's answer stands, while it is not yet in the answers' durable record.
enum Answered {
    /// Being judged and recorded now.
    InFlight,
    /// Its bundle is written; its events wait for the outbox (`committed` once it holds them).
    Recorded { answer: Answer, committed: Arc<AtomicBool> },
}

/// The answers given, by (phone, capture id): those committed are kept in the check-in index
/// (`<data_dir>/checkins.sqlite`, for the replay window), so a re-send after a restart gets its answer
/// too; those in flight or waiting for the outbox are in memory.
struct Answers {
    by_capture: HashMap<(String, uuid::Uuid), Answered>,
    index: ReplayIndex,
}

/// An answer as the index keeps it (the JSON the phone was sent), read back.
fn parse_answer(json: &str) -> Option<Answer> {
    let v: Value = serde_json::from_str(json).ok()?;
    Some(Answer {
        capture_id: v["capture_id"].as_str()?.parse().ok()?,
        event_id: v["event_id"].as_str()?.parse().ok()?,
        verdict: if v["verdict"] == "verified" { "verified" } else { "rejected" },
        late: v["late"].as_bool()?,
        repeated: true,
        checks: serde_json::from_value(v["checks"].clone()).ok()?,
    })
}

/// The check-in service the runtime hands the HTTP server.
pub struct CheckinService {
    wards: Vec<Ward>,
    cameras: Vec<CameraIdentity>,
    people: Arc<People>,
    store: SharedStore,
    emitter: Emitter,
    judge: Arc<dyn Judge>,
    answers: Arc<Mutex<Answers>>,
}

/// Removes an in-flight mark unless the upload was recorded (an error, or a panic in the checks).
struct InFlight<'a> {
    answers: &'a Mutex<Answers>,
    key: Option<(String, uuid::Uuid)>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
            if matches!(answers.by_capture.get(&key), Some(Answered::InFlight)) {
                answers.by_capture.remove(&key);
            }
        }
    }
}

/// The camera an upload's event is about: the bed's camera, or the phone.
pub fn event_camera(report: &CheckReport) -> String {
    report.camera.clone().unwrap_or_else(|| format!("phone:{}", report.phone_id))
}

/// The decision an upload's report is.
pub fn decision_kind(report: CheckReport) -> DecisionKind {
    let check = PhoneCheck { report: Box::new(report) };
    match (check.report.mode, check.report.verified()) {
        (Mode::Physician, _) => DecisionKind::PhysicianCheckin(check),
        (Mode::Bedside, true) => DecisionKind::BedsideCheckVerified(check),
        (Mode::Bedside, false) => DecisionKind::BedsideCheckRejected(check),
    }
}

fn report_of(kind: &DecisionKind) -> &CheckReport {
    match kind {
        DecisionKind::BedsideCheckVerified(c)
        | DecisionKind::BedsideCheckRejected(c)
        | DecisionKind::PhysicianCheckin(c) => &c.report,
        _ => unreachable!("a phone upload's decision"),
    }
}

/// The manifest's `checkin` object (docs/evidence.md, "Check-in bundles"): strings, booleans, no
/// floating-point number.
pub fn checkin_manifest(report: &CheckReport) -> Value {
    let mut checkin = json!({
        "phone": report.phone_id,
        "ward": report.ward,
        "mode": report.mode,
        "claimed": report.claimed,
        "capture_id": report.capture_id.to_string(),
        "captured_at": crate::evidence::manifest::time(report.captured_at),
        "received_at": crate::evidence::manifest::time(report.received_at),
        "late": report.late,
        "checks": report.checks,
    });
    let fields = checkin.as_object_mut().expect("an object");
    if let Some(bed) = &report.bed {
        fields.insert("bed".into(), json!(bed));
    }
    if let Some(camera) = &report.camera {
        fields.insert("camera".into(), json!(camera));
    }
    if let Some(p) = &report.position {
        fields.insert(
            "position".into(),
            json!({
                "lat": format!("{:.6}", p.lat),
                "lon": format!("{:.6}", p.lon),
                "accuracy_m": format!("{:.3}", p.accuracy_m),
            }),
        );
    }
    checkin
}

/// The `signature` check of an upload the server verified: passed `registered_phone` (facts: the phone
/// and its key's SHA-256), or failed `phone_revoked`.
pub fn signature_check(upload: &SignedUpload) -> Check {
    let phone = &upload.phone;
    let key_sha256 = phone.public_key.as_deref().map(crate::hashing::sha256_hex).unwrap_or_default();
    let check = if upload.revoked {
        Check::failed(
            CheckName::Signature,
            "phone_revoked",
            format!("Signed by phone {}, which was revoked: the upload is recorded but not judged.", phone.id),
        )
    } else {
        Check::passed(
            CheckName::Signature,
            "registered_phone",
            format!("Signed by enrolled phone {} ({}).", phone.id, phone.name),
        )
    };
    check.with("phone", &phone.id).with("key_sha256", key_sha256)
}

impl CheckinService {
    /// `answers` is a connection to the check-in index (`ReplayIndex::open`): where answers are kept.
    pub fn new(
        config: &Config,
        people: Arc<People>,
        store: SharedStore,
        emitter: Emitter,
        judge: Arc<dyn Judge>,
        answers: ReplayIndex,
    ) -> CheckinService {
        CheckinService {
            wards: config.wards.clone(),
            cameras: config.cameras.iter().map(|c| super::sink::camera_identity(config, &c.id)).collect(),
            people,
            store,
            emitter,
            judge,
            answers: Arc::new(Mutex::new(Answers { by_capture: HashMap::new(), index: answers })),
        }
    }

    /// The service of `vigil run`: [`CHECKERS`] checkers with their own face sessions (made from
    /// `models` before their bytes are released) and index connections.
    pub fn start(
        config: &Config,
        models: &Models,
        gallery: Arc<RwLock<SearchIndex>>,
        people: Arc<People>,
        history: Arc<OccupancyHistory>,
        store: SharedStore,
        emitter: Emitter,
    ) -> anyhow::Result<CheckinService> {
        use anyhow::Context;
        let index = ReplayIndex::path_in(&config.storage.data_dir);
        let days = config.phones.replay_window_days;
        let offset = crate::decide::roster::Site::utc_offset_secs(config).map_err(anyhow::Error::msg)?;
        let rules = FaceRules { match_distance: config.faces.match_distance, quality: config.faces.quality() };
        let mut checkers = Vec::new();
        for _ in 0..CHECKERS {
            let faces = models.face_analyzer().context("cannot open the face models for check-ins")?;
            let replay = ReplayIndex::open(&index, days).context("cannot open the check-in index")?;
            checkers.push(Checker::new(config.phones.clone(), faces, gallery.clone(), rules, offset, replay));
        }
        let judge = Arc::new(Checkers::new(checkers, config, people.clone(), history));
        let answers = ReplayIndex::open(&index, days).context("cannot open the check-in index")?;
        info!(checkers = CHECKERS, index = %index.display(), "check-in service ready");
        Ok(CheckinService::new(config, people, store, emitter, judge, answers))
    }

    /// The claimed patient's bed and its camera, from the roster.
    fn bed_of(&self, patient: &str) -> Option<(String, String)> {
        let roster = self.people.roster();
        roster.inpatients.iter().find(|p| p.patient == patient).map(|p| (p.bed.clone(), p.camera.clone()))
    }

    /// The report of a revoked phone's upload: `signature` failed, nothing else judged.
    fn revoked_report(&self, upload: &SignedUpload) -> CheckReport {
        let meta = &upload.meta;
        let claimed = match upload.phone.mode {
            Mode::Bedside => meta.patient.clone(),
            Mode::Physician => upload.phone.physician.clone(),
        }
        .unwrap_or_default();
        let bed = match upload.phone.mode {
            Mode::Bedside => self.bed_of(&claimed),
            Mode::Physician => None,
        };
        let mut checks = vec![signature_check(upload)];
        checks.extend(
            CheckName::ALL[1..]
                .iter()
                .map(|name| Check::skipped(*name, "phone_revoked", "Not judged: the phone that sent it is revoked.")),
        );
        CheckReport {
            capture_id: meta.capture_id,
            phone_id: upload.phone.id.clone(),
            ward: upload.phone.ward.clone(),
            mode: upload.phone.mode,
            claimed,
            camera: bed.as_ref().map(|b| b.1.clone()),
            bed: bed.map(|b| b.0),
            captured_at: humantime::parse_rfc3339_weak(&meta.captured_at).unwrap_or(upload.received_at),
            received_at: upload.received_at,
            late: false,
            position: meta.position,
            checks,
        }
    }

    /// The answer already given to this capture, if any (`repeated`), or the mark that it is being
    /// judged now.
    fn begin(&self, key: &(String, uuid::Uuid)) -> Result<Option<Answer>, SubmitError> {
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        match answers.by_capture.get(key) {
            None => {}
            Some(Answered::InFlight) => {
                return Err(SubmitError::Unavailable(format!(
                    "capture {} of phone {} is being judged now; send it again in a moment",
                    key.1, key.0
                )));
            }
            Some(Answered::Recorded { answer, committed }) => {
                let (answer, committed) = (answer.clone(), committed.clone());
                if !committed.load(Ordering::SeqCst) {
                    // Its events wait for the outbox: try now (their commit takes the answers' lock).
                    drop(answers);
                    self.emitter.retry_held();
                }
                return if committed.load(Ordering::SeqCst) {
                    Ok(Some(Answer { repeated: true, ..answer }))
                } else {
                    Err(SubmitError::Storage(format!(
                        "capture {} is recorded (the evidence bundle of event {}) but the outbox cannot take its \
                         event yet",
                        key.1, answer.event_id
                    )))
                };
            }
        }
        let stored = answers.index.answered(&key.0, key.1).map_err(|e| {
            error!(phone = %key.0, capture = %key.1, error = %e, "cannot read the check-in index");
            SubmitError::Storage(format!("the check-in index: {e}"))
        })?;
        if let Some(json) = stored {
            return match parse_answer(&json) {
                Some(answer) => Ok(Some(answer)),
                None => {
                    error!(phone = %key.0, capture = %key.1, answer = %json, "a stored answer is unreadable");
                    Err(SubmitError::Storage("a stored answer is unreadable".into()))
                }
            };
        }
        answers.by_capture.insert(key.clone(), Answered::InFlight);
        Ok(None)
    }
}

impl Checkins for CheckinService {
    fn submit(&self, upload: SignedUpload) -> Result<Answer, SubmitError> {
        let key = (upload.phone.id.clone(), upload.meta.capture_id);
        if let Some(answer) = self.begin(&key)? {
            info!(phone = %key.0, capture = %key.1, event_id = %answer.event_id, verdict = answer.verdict,
                "check-in sent again: the same answer");
            return Ok(answer);
        }
        let mut guard = InFlight { answers: &self.answers, key: Some(key.clone()) };
        let event_id = uuid::Uuid::now_v7();
        let (report, picture, faces, face_passed) = if upload.revoked {
            (self.revoked_report(&upload), None, Vec::new(), false)
        } else {
            let mut judged = self.judge.judge(&upload, event_id)?;
            judged.report.checks.retain(|c| c.name != CheckName::Signature);
            judged.report.checks.insert(0, signature_check(&upload));
            (judged.report, judged.picture, judged.faces, judged.face_passed)
        };
        let mut decision = Decision::new(&event_camera(&report), upload.received_at, decision_kind(report));
        decision.id = event_id;
        decision.evidence = true;
        let report = report_of(&decision.kind);
        let request = CheckinRequest {
            event_id: decision.id,
            kind: decision.name().to_owned(),
            camera: decision.camera.clone(),
            camera_info: report.camera.as_ref().and_then(|c| self.cameras.iter().find(|i| &i.id == c).cloned()),
            at: decision.at,
            details: events::flat_details(&events::details(&decision.kind)),
            checkin: checkin_manifest(report),
            photo: upload.photo.into(),
            annotation: picture.map(|picture| Annotation { picture, faces, face_passed }),
        };

        // The bundle, before anything announces it.
        let written = {
            let mut store = lock(&self.store);
            store.write_checkin(&request).map(|bundle| (bundle, store.head()))
        };
        let (bundle, head) = written.map_err(|e| {
            error!(phone = %key.0, capture = %key.1, event = %decision.id, error = %e,
                "CHECK-IN NOT RECORDED: its evidence bundle cannot be written; the phone keeps it and sends it again");
            SubmitError::Storage(format!("the evidence bundle cannot be written: {e}"))
        })?;

        let answer = Answer {
            capture_id: report.capture_id,
            event_id: decision.id,
            verdict: if report.verified() { "verified" } else { "rejected" },
            late: report.late,
            repeated: false,
            checks: report.checks.clone(),
        };
        let committed = Arc::new(AtomicBool::new(false));
        {
            let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
            answers
                .by_capture
                .insert(key.clone(), Answered::Recorded { answer: answer.clone(), committed: committed.clone() });
            guard.key = None;
        }

        // The events, in order: the decision, then its evidence_ready (the bundle is already written).
        let (verified, failed) = (report.verified(), report.failed().join(","));
        let sighting = match (&decision.kind, verified) {
            (DecisionKind::PhysicianCheckin(c), true) => {
                Some((c.report.claimed.clone(), decision.camera.clone(), c.report.captured_at))
            }
            _ => None,
        };
        let record = events::decision_record(&self.emitter.base, &self.emitter.site, &self.emitter.device, &decision);
        let (name, event_id, camera) = (decision.name(), decision.id, decision.camera.clone());
        self.emitter.counted.decision(name);
        self.emitter.counted.checkin(answer.verdict);
        let people = self.people.clone();
        let (phone, capture) = key.clone();
        let decided = self.emitter.emit(record, move || {
            if verified {
                info!(decision = name, event_id = %event_id, %camera, %phone, %capture, "decision");
            } else {
                warn!(decision = name, event_id = %event_id, %camera, %phone, %capture, failed = %failed, "decision");
            }
            if let Some((physician, camera, at)) = sighting {
                people.sighting(&physician, &camera, at);
            }
        });
        let name = bundle.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let announcement = events::evidence_record(
            &self.emitter.base,
            &self.emitter.site,
            &self.emitter.device,
            &decision.camera,
            &decision.id.to_string(),
            &name,
            bundle.sequence,
            &bundle.manifest_sha256,
            chain_head(&head.unwrap_or_else(|| bundle.head())),
        );
        let sequence = bundle.sequence;
        let (answers, stored) = (self.answers.clone(), serde_json::to_string(&answer).unwrap_or_default());
        let (at, remembered) = (upload.received_at, key.clone());
        let announced = self.emitter.emit(announcement, move || {
            info!(for_event_id = %event_id, sequence, "check-in evidence bundle announced");
            committed.store(true, Ordering::SeqCst);
            // Kept for a re-send (also after a restart); in memory only while the index cannot take it.
            let mut answers = answers.lock().unwrap_or_else(|e| e.into_inner());
            let key = remembered;
            match answers.index.remember(&key.0, key.1, &stored, at) {
                Ok(()) => {
                    answers.by_capture.remove(&key);
                }
                Err(e) => warn!(phone = %key.0, capture = %key.1, error = %e,
                    "cannot keep the check-in's answer in the index; a re-send gets it until the agent stops"),
            }
        });
        if decided && announced {
            Ok(answer)
        } else {
            error!(phone = %key.0, capture = %key.1, event = %decision.id, sequence,
                "check-in recorded in the evidence chain but the outbox cannot take its event yet: it waits in \
                 memory; the phone is told to send again and then gets this answer");
            Err(SubmitError::Storage("the outbox cannot take the check-in's event yet".into()))
        }
    }

    fn ward_view(&self, phone: &Phone) -> WardView {
        let ward = self.wards.iter().find(|w| w.id == phone.ward);
        let inpatients = match (ward, phone.mode) {
            (Some(ward), Mode::Bedside) => {
                let roster = self.people.roster();
                let mut inpatients: Vec<Inpatient> = roster
                    .inpatients
                    .iter()
                    .filter(|p| ward.cameras.contains(&p.camera))
                    .map(|p| Inpatient { patient: p.patient.clone(), bed: p.bed.clone(), camera: p.camera.clone() })
                    .collect();
                inpatients.sort_by(|a, b| (&a.camera, &a.bed).cmp(&(&b.camera, &b.bed)));
                inpatients
            }
            _ => Vec::new(),
        };
        if ward.is_none() {
            warn!(phone = %phone.id, ward = %phone.ward, "a phone's ward is no longer configured ([[wards]])");
        }
        WardView {
            phone: phone.id.clone(),
            phone_name: phone.name.clone(),
            mode: phone.mode,
            physician: phone.physician.clone(),
            ward: phone.ward.clone(),
            ward_name: ward.and_then(|w| w.name.clone()).unwrap_or_else(|| phone.ward.clone()),
            inpatients,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::roster::{Inpatient as RosterInpatient, Roster, Shift};
    use crate::evidence::keys::{DeviceKey, PublicKey};
    use crate::evidence::store::Store;
    use crate::outbox::{Outbox, Record};
    use crate::phones::{Outcome, Position, UploadMeta};
    use std::path::Path;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

    /// Stands for the checker in these tests of the service alone (tests/checkins.rs runs the real
    /// one): the outcome of each check after `signature` is set by the test.
    struct Scripted {
        /// (name, failed reason) of the checks to fail; the others pass.
        fail: Mutex<Vec<(CheckName, &'static str)>>,
        calls: AtomicUsize,
        /// When set, judging waits: it says it entered, then waits for the release.
        gate: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
        people: Arc<People>,
    }

    impl Judge for Scripted {
        fn judge(&self, upload: &SignedUpload, _event_id: uuid::Uuid) -> Result<Judged, SubmitError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if let Some((entered, release)) = self.gate.lock().unwrap().take() {
                entered.send(()).unwrap();
                release.recv().unwrap();
            }
            let fail = self.fail.lock().unwrap().clone();
            let checks = CheckName::ALL[1..]
                .iter()
                .map(|name| match fail.iter().find(|f| f.0 == *name) {
                    Some((_, reason)) => Check::failed(*name, reason, "scripted"),
                    None => Check::passed(*name, "scripted", "scripted"),
                })
                .collect();
            let meta = &upload.meta;
            let claimed = meta.patient.clone().or(upload.phone.physician.clone()).unwrap();
            let bed = self.people.roster().inpatients.iter().find(|p| p.patient == claimed).cloned();
            let face_passed = !fail.iter().any(|f| f.0 == CheckName::Face);
            Ok(Judged {
                report: CheckReport {
                    capture_id: meta.capture_id,
                    phone_id: upload.phone.id.clone(),
                    ward: upload.phone.ward.clone(),
                    mode: meta.mode,
                    claimed,
                    bed: bed.as_ref().map(|b| b.bed.clone()),
                    camera: bed.map(|b| b.camera),
                    captured_at: humantime::parse_rfc3339(&meta.captured_at).unwrap(),
                    received_at: upload.received_at,
                    late: false,
                    position: meta.position,
                    checks,
                },
                picture: image::load_from_memory(&upload.photo).ok().map(|i| i.to_rgb8()),
                faces: vec![[10.0, 8.0, 40.0, 44.0]],
                face_passed,
            })
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        root: std::path::PathBuf,
        service: CheckinService,
        judge: Arc<Scripted>,
        outbox: Arc<Mutex<Outbox>>,
        store: SharedStore,
        public: PublicKey,
        people: Arc<People>,
        config: Config,
        emitter: Emitter,
    }

    impl Fixture {
        /// The service as a restarted agent has it: the same store, outbox and index, nothing in memory.
        fn restarted(&self) -> CheckinService {
            let index = ReplayIndex::open(&ReplayIndex::path_in(&self.root), 30).unwrap();
            CheckinService::new(
                &self.config,
                self.people.clone(),
                self.store.clone(),
                self.emitter.clone(),
                self.judge.clone(),
                index,
            )
        }
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let text = format!(
            "[site]\nid = \"h\"\ndevice_id = \"d\"\n[storage]\ndata_dir = \"{}\"\n\
             [[cameras]]\nid = \"ward-3\"\nrole = \"ward\"\nurl = \"rtsp://admin:pw@cam/1\"\n\
             regions = {{ bed-1 = [[0,0],[0.5,0],[0.5,1]], bed-2 = [[0.5,0],[1,0],[1,1]] }}\n\
             [[cameras]]\nid = \"ward-4\"\nrole = \"ward\"\nurl = \"test://smpte\"\n\
             regions = {{ bed-1 = [[0,0],[0.5,0],[0.5,1]] }}\n\
             [[wards]]\nid = \"w3\"\nname = \"Ward 3\"\ncameras = [\"ward-3\"]\n\
             geofence = {{ center = [31.23, 121.47], radius_m = 100.0 }}\n",
            root.join("state").display(),
        );
        let config = crate::config::parse(Path::new("t.toml"), &text).unwrap();
        let people = Arc::new(People::load(&config));
        let roster = Roster {
            inpatients: vec![
                RosterInpatient { patient: "p-1".into(), camera: "ward-3".into(), bed: "bed-2".into() },
                RosterInpatient { patient: "p-2".into(), camera: "ward-3".into(), bed: "bed-1".into() },
                RosterInpatient { patient: "p-9".into(), camera: "ward-4".into(), bed: "bed-1".into() },
            ],
            dialysis_sessions: Vec::new(),
            shifts: vec![Shift {
                physician: "dr-1".into(),
                start: SystemTime::now() - Duration::from_secs(3600),
                end: SystemTime::now() + Duration::from_secs(3600),
            }],
        };
        people.apply(roster, SystemTime::now()).unwrap();
        let key = DeviceKey::init(&root.join("device.key")).unwrap();
        let public = key.public();
        let store = Arc::new(Mutex::new(Store::open(&root.join("evidence"), key, "h", "d", Vec::new()).unwrap()));
        let outbox = Arc::new(Mutex::new(Outbox::open(&root.join("outbox.sqlite"), 1000).unwrap()));
        let emitter = Emitter::new(outbox.clone(), Arc::new(tokio::sync::Notify::new()), "vigil/v1/h/d", "h", "d");
        let judge = Arc::new(Scripted {
            fail: Mutex::default(),
            calls: AtomicUsize::new(0),
            gate: Mutex::default(),
            people: people.clone(),
        });
        let index = ReplayIndex::open(&ReplayIndex::path_in(&root), 30).unwrap();
        let service =
            CheckinService::new(&config, people.clone(), store.clone(), emitter.clone(), judge.clone(), index);
        Fixture { _dir: dir, root, config, service, judge, outbox, store, public, people, emitter }
    }

    fn phone(id: &str, mode: Mode) -> Phone {
        Phone {
            id: id.into(),
            ward: "w3".into(),
            name: "Li Na".into(),
            mode,
            physician: (mode == Mode::Physician).then(|| "dr-1".to_owned()),
            public_key: Some(vec![0x30, 0x59, 1, 2, 3]),
            created_at: SystemTime::now(),
            enrolled_at: Some(SystemTime::now()),
            revoked_at: None,
        }
    }

    fn photo() -> Vec<u8> {
        let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 90]));
        crate::evidence::manifest::jpeg(&img).unwrap()
    }

    fn upload(phone: Phone, patient: Option<&str>) -> SignedUpload {
        let photo = photo();
        let now = SystemTime::now();
        SignedUpload {
            meta: UploadMeta {
                capture_id: uuid::Uuid::new_v4(),
                mode: phone.mode,
                patient: patient.map(str::to_owned),
                captured_at: humantime::format_rfc3339_millis(now - Duration::from_secs(5)).to_string(),
                position: Some(Position { lat: 31.2300417, lon: 121.4700083, accuracy_m: 12.5 }),
                photo_sha256: crate::hashing::sha256_hex(&photo),
            },
            phone,
            revoked: false,
            photo,
            content_type: Some("image/jpeg".into()),
            received_at: now,
        }
    }

    fn records(f: &Fixture) -> Vec<Record> {
        f.outbox.lock().unwrap().pending_after(0, 100).unwrap()
    }

    fn payload(r: &Record) -> Value {
        serde_json::from_slice(&r.payload).unwrap()
    }

    fn bundles(f: &Fixture) -> usize {
        lock(&f.store).head().map_or(0, |h| h.sequence as usize)
    }

    /// A verified bedside photo: the bundle is written (and verifies), then its event and evidence_ready
    /// are committed in that order, then the phone gets its answer, which the event and the bundle
    /// name alike.
    #[test]
    fn a_verified_bedside_photo_is_a_bundle_then_its_events_then_the_answer() {
        let f = fixture();
        let up = upload(phone("ph-a", Mode::Bedside), Some("p-1"));
        let capture = up.meta.capture_id;
        let answer = f.service.submit(up).unwrap();
        assert_eq!((answer.verdict, answer.repeated, answer.capture_id), ("verified", false, capture));
        let signature = &answer.checks[0];
        assert_eq!(
            (signature.name, signature.outcome, signature.reason.as_str()),
            (CheckName::Signature, Outcome::Passed, "registered_phone")
        );
        assert_eq!(signature.facts["key_sha256"], crate::hashing::sha256_hex(&[0x30, 0x59, 1, 2, 3]));
        assert_eq!(answer.checks.len(), 8);

        let records = records(&f);
        assert_eq!(records.len(), 2, "the decision and its evidence_ready");
        let event = payload(&records[0]);
        assert_eq!(records[0].topic, "vigil/v1/h/d/events/bedside_check_verified");
        assert_eq!(event["event_id"], answer.event_id.to_string());
        assert_eq!(event["camera"], "ward-3", "the bed's camera");
        assert_eq!(event["evidence"], json!({"status": "pending"}));
        assert_eq!(event["details"]["bed"], "bed-2");
        assert_eq!(event["details"]["position"], json!({"lat": "31.230042", "lon": "121.470008", "accuracy_m": 12.5}));
        assert_eq!(event["details"]["failed"], json!([]));
        assert_eq!(records[1].topic, "vigil/v1/h/d/events/evidence_ready");
        assert_eq!(records[1].evidence.as_deref(), Some(&*answer.event_id.to_string()));

        let bundle = lock(&f.store).existing(answer.event_id).unwrap().expect("the bundle");
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(bundle.dir.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest["checkin"]["capture_id"], capture.to_string());
        assert_eq!(manifest["checkin"]["position"]["accuracy_m"], "12.500");
        assert_eq!(manifest["camera"]["url_redacted"], "rtsp://admin:***@cam/1");
        assert_eq!(manifest["event"]["details"]["checks.0.reason"], "registered_phone");
        assert_eq!(std::fs::read(bundle.dir.join("photo.jpg")).unwrap(), photo());
        assert!(bundle.dir.join("annotated.jpg").exists());
        let report = crate::evidence::verify::verify(&[f.root.join("evidence")], &f.public);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }

    /// The phone sends the same capture again (it did not get the answer): the same answer, marked
    /// repeated; no second judgement, bundle or event.
    #[test]
    fn the_same_capture_again_gets_the_same_answer_and_no_new_event() {
        let f = fixture();
        let up = upload(phone("ph-a", Mode::Bedside), Some("p-1"));
        let first = f.service.submit(up.clone()).unwrap();
        let again = f.service.submit(up.clone()).unwrap();
        assert!(again.repeated);
        assert_eq!(Answer { repeated: false, ..again }, first);
        assert_eq!((f.judge.calls.load(Ordering::SeqCst), records(&f).len(), bundles(&f)), (1, 2, 1));
        // Another phone with the same capture id is another upload.
        let mut other = up;
        other.phone = phone("ph-b", Mode::Bedside);
        assert!(!f.service.submit(other).unwrap().repeated);
        assert_eq!(bundles(&f), 2);
    }

    /// A revoked phone's upload is recorded (bundle, rejected event) but not judged.
    #[test]
    fn a_revoked_phones_upload_is_recorded_as_rejected_without_judging() {
        let f = fixture();
        let mut up = upload(phone("ph-a", Mode::Bedside), Some("p-1"));
        up.revoked = true;
        let answer = f.service.submit(up).unwrap();
        assert_eq!(answer.verdict, "rejected");
        assert_eq!(f.judge.calls.load(Ordering::SeqCst), 0);
        assert_eq!((answer.checks[0].outcome, answer.checks[0].reason.as_str()), (Outcome::Failed, "phone_revoked"));
        assert!(answer.checks[1..].iter().all(|c| c.outcome == Outcome::Skipped && c.reason == "phone_revoked"));
        let event = payload(&records(&f)[0]);
        assert_eq!(event["kind"], "bedside_check_rejected");
        assert_eq!(event["details"]["failed"], json!(["signature"]));
        assert_eq!(event["camera"], "ward-3");
        let bundle = lock(&f.store).existing(answer.event_id).unwrap().unwrap();
        assert!(!bundle.dir.join("annotated.jpg").exists(), "not decoded: not judged");
    }

    /// A failed check makes a rejection that names it; a patient not on the roster has no bed: the
    /// event is about the phone.
    #[test]
    fn failed_checks_are_named_and_a_patient_without_bed_is_about_the_phone() {
        let f = fixture();
        f.judge.fail.lock().unwrap().extend([(CheckName::Geofence, "outside_geofence"), (CheckName::Face, "no_face")]);
        let answer = f.service.submit(upload(phone("ph-a", Mode::Bedside), Some("p-404"))).unwrap();
        assert_eq!(answer.verdict, "rejected");
        let event = payload(&records(&f)[0]);
        assert_eq!(event["kind"], "bedside_check_rejected");
        assert_eq!(event["camera"], "phone:ph-a");
        assert_eq!(event["details"]["failed"], json!(["geofence", "face"]));
        assert_eq!(event["details"]["bed"], Value::Null);
        let bundle = lock(&f.store).existing(answer.event_id).unwrap().unwrap();
        let annotated = image::open(bundle.dir.join("annotated.jpg")).unwrap().to_rgb8();
        let edge = annotated.get_pixel(10, 26);
        assert!(edge[0] > 150 && edge[1] < 90, "the face check failed: the box is red, {edge:?}");
    }

    /// A verified physician check-in counts as a sighting of the physician on `phone:<id>`; a rejected
    /// one does not.
    #[test]
    fn a_verified_physician_checkin_is_a_sighting() {
        let f = fixture();
        f.judge.fail.lock().unwrap().push((CheckName::Face, "not_the_claimed_person"));
        let rejected = f.service.submit(upload(phone("ph-x", Mode::Physician), None)).unwrap();
        assert_eq!(rejected.verdict, "rejected");
        f.judge.fail.lock().unwrap().clear();
        let answer = f.service.submit(upload(phone("ph-doc", Mode::Physician), None)).unwrap();
        assert_eq!(answer.verdict, "verified");
        let records = records(&f);
        let event = payload(&records[2]);
        assert_eq!(
            (event["kind"].as_str(), event["camera"].as_str()),
            (Some("physician_checkin"), Some("phone:ph-doc"))
        );
        assert_eq!(
            (event["details"]["physician"].as_str(), event["details"]["verified"].as_bool()),
            (Some("dr-1"), Some(true))
        );
        let summary = f
            .people
            .tick(SystemTime::now() + Duration::from_secs(7200))
            .into_iter()
            .find_map(|e| match e {
                crate::decide::physicians::PhysicianEvent::ShiftSummary(s) => Some(s),
                _ => None,
            })
            .expect("the shift ended");
        assert_eq!((summary.sightings, summary.cameras), (1, vec!["phone:ph-doc".to_owned()]));
    }

    /// The bundle cannot be written (here: the clock is behind the chain's last entry): nothing is
    /// recorded, the phone is told to come back, and its re-send is judged and recorded once.
    #[test]
    fn when_the_bundle_cannot_be_written_nothing_is_recorded() {
        let f = fixture();
        f.service.submit(upload(phone("ph-a", Mode::Bedside), Some("p-2"))).unwrap();
        lock(&f.store).set_clock(|| SystemTime::now() - Duration::from_secs(3600));
        let up = upload(phone("ph-a", Mode::Bedside), Some("p-1"));
        let e = f.service.submit(up.clone()).unwrap_err();
        assert!(matches!(e, SubmitError::Storage(_)), "{e}");
        assert!(e.to_string().contains("clock"), "{e}");
        assert_eq!((records(&f).len(), bundles(&f)), (2, 1), "no event, no bundle");
        lock(&f.store).set_clock(SystemTime::now);
        let answer = f.service.submit(up).unwrap();
        assert!(!answer.repeated, "judged afresh");
        assert_eq!((records(&f).len(), bundles(&f)), (4, 2));
    }

    /// The bundle is written but the outbox refuses the events: the phone is told to come back, the
    /// events wait in memory; its re-send once the outbox takes them again gets that bundle's answer —
    /// one bundle, one event, one judgement.
    #[test]
    fn when_the_outbox_refuses_the_event_the_resend_gets_the_same_bundles_answer() {
        let f = fixture();
        let sql = rusqlite::Connection::open(f.root.join("outbox.sqlite")).unwrap();
        sql.execute_batch("ALTER TABLE records RENAME TO records_away").unwrap();
        let up = upload(phone("ph-a", Mode::Bedside), Some("p-1"));
        let e = f.service.submit(up.clone()).unwrap_err();
        assert!(matches!(e, SubmitError::Storage(_)), "{e}");
        assert_eq!(bundles(&f), 1, "the bundle is written");
        let e = f.service.submit(up.clone()).unwrap_err();
        assert!(matches!(e, SubmitError::Storage(_)), "still refused: {e}");
        assert_eq!((bundles(&f), f.judge.calls.load(Ordering::SeqCst)), (1, 1), "not judged or written again");

        sql.execute_batch("ALTER TABLE records_away RENAME TO records").unwrap();
        let answer = f.service.submit(up).unwrap();
        assert!(answer.repeated);
        let records = records(&f);
        assert_eq!(records.len(), 2, "{:?}", records.iter().map(|r| &r.topic).collect::<Vec<_>>());
        assert_eq!(records[0].event_id, answer.event_id.to_string());
        assert_eq!(lock(&f.store).existing(answer.event_id).unwrap().map(|b| b.sequence), Some(1));
        assert_eq!(f.judge.calls.load(Ordering::SeqCst), 1);
    }

    /// While a capture is being judged, the same capture sent again is told to come back (never judged
    /// twice at once); a capture whose judging failed can be sent again.
    #[test]
    fn the_same_capture_is_never_judged_twice_at_once() {
        let f = Arc::new(fixture());
        let (entered_tx, entered) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        *f.judge.gate.lock().unwrap() = Some((entered_tx, release_rx));
        let up = upload(phone("ph-a", Mode::Bedside), Some("p-1"));
        let first = {
            let (f, up) = (f.clone(), up.clone());
            std::thread::spawn(move || f.service.submit(up))
        };
        entered.recv().unwrap();
        let e = f.service.submit(up.clone()).unwrap_err();
        assert!(matches!(e, SubmitError::Unavailable(_)), "{e}");
        release.send(()).unwrap();
        let answer = first.join().unwrap().unwrap();
        assert_eq!(f.service.submit(up).unwrap().event_id, answer.event_id);
    }

    /// After a restart, a re-sent capture still gets its answer (kept in the check-in index), without
    /// a second judgement, bundle or event.
    #[test]
    fn answers_survive_a_restart() {
        let f = fixture();
        let up = upload(phone("ph-a", Mode::Bedside), Some("p-1"));
        let first = f.service.submit(up.clone()).unwrap();
        let restarted = f.restarted();
        let again = restarted.submit(up).unwrap();
        assert!(again.repeated);
        assert_eq!(Answer { repeated: false, ..again }, first);
        assert_eq!((f.judge.calls.load(Ordering::SeqCst), records(&f).len(), bundles(&f)), (1, 2, 1));
    }

    /// The ward's inpatients are the roster's patients in the beds of the ward's cameras.
    #[test]
    fn the_ward_view_lists_the_inpatients_of_the_wards_cameras() {
        let f = fixture();
        let view = f.service.ward_view(&phone("ph-a", Mode::Bedside));
        assert_eq!((view.ward.as_str(), view.ward_name.as_str()), ("w3", "Ward 3"));
        let listed: Vec<(&str, &str, &str)> =
            view.inpatients.iter().map(|p| (p.patient.as_str(), p.camera.as_str(), p.bed.as_str())).collect();
        assert_eq!(listed, [("p-2", "ward-3", "bed-1"), ("p-1", "ward-3", "bed-2")], "p-9 is on another ward");
        let doctor = f.service.ward_view(&phone("ph-doc", Mode::Physician));
        assert!(doctor.inpatients.is_empty() && doctor.physician.as_deref() == Some("dr-1"));
    }
}
