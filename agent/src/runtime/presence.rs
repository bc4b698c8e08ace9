//! Bed and chair presence wired to cameras, the roster and the clock.
//!
//! Each ward or dialysis-room camera with regions has a [`PresenceCamera`]: the analysis thread feeds it
//! every analysed frame with the person detector's boxes (and, during a dialysis session's identity
//! window, the faces); the scheduler thread asks it for bed states at roll-calls and advances the
//! dialysis sessions on its chairs. The empty reference of the regions is the frame an operator took
//! with `vigil reference --empty` (the beds and chairs empty); without it, occupancy rests on the
//! person detector alone, which misses many lying people.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime};

use tracing::{debug, info, warn};

use super::people::People;
use super::sink::Outlet;
use crate::analyze::person_detector::Person;
use crate::config::{Camera, Config, Role};
use crate::decide::dialysis::{DialysisRules, Session, SessionCheck};
use crate::decide::presence::{Occupancy, Polygon, PresenceSettings, RegionMonitor};
use crate::decide::rollcall::{BedCheck, RollcallTracker};
use crate::decide::roster::Roster;
use crate::decide::settlement::{FaceObservation, SettlementRules};
use crate::decide::{Decision, DecisionKind, RollcallReport};
use crate::evidence::store::Detection;
use crate::gallery::search::SearchIndex;
use crate::source::Frame;

/// `<data_dir>/references/<camera>-empty.png`: the camera's view with its beds or chairs empty.
pub fn empty_reference_path(data_dir: &Path, camera: &str) -> PathBuf {
    data_dir.join("references").join(format!("{camera}-empty.png"))
}

struct State {
    /// Built at the first frame, when the frame size is known.
    monitors: Vec<RegionMonitor>,
    size: (u32, u32),
    last_frame: Option<Frame>,
    sessions: Vec<SessionCheck>,
    /// Sessions already given their final verdict (a roster repeating them does not start them again).
    finished: HashSet<String>,
}

pub struct PresenceCamera {
    pub id: String,
    pub role: Role,
    regions: Vec<(String, Vec<Vec<f64>>)>,
    settings: PresenceSettings,
    max_gap: Duration,
    reference: Option<image::RgbImage>,
    state: Mutex<State>,
    outlet: Outlet,
}

impl PresenceCamera {
    pub fn new(config: &Config, camera: &Camera, outlet: Outlet) -> PresenceCamera {
        let path = empty_reference_path(&config.storage.data_dir, &camera.id);
        let reference = match crate::analyze::image::load_rgb(&path) {
            Ok(img) => Some(img),
            Err(_) if !path.exists() => {
                warn!(camera = %camera.id, path = %path.display(), "no empty reference of the regions: occupancy \
                    rests on the person detector alone (it misses many lying people); take one with \
                    `vigil reference --empty` while the beds/chairs are empty");
                None
            }
            Err(e) => {
                warn!(camera = %camera.id, error = %e, "empty reference unreadable; occupancy uses the detector alone");
                None
            }
        };
        PresenceCamera {
            id: camera.id.clone(),
            role: camera.role,
            regions: camera.regions.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            settings: config.presence.settings(&config.persons),
            max_gap: Duration::from_secs(config.presence.max_gap_secs),
            reference,
            state: Mutex::new(State {
                monitors: Vec::new(),
                size: (0, 0),
                last_frame: None,
                sessions: Vec::new(),
                finished: HashSet::new(),
            }),
            outlet,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One analysed frame and the persons found in it.
    pub fn observe(&self, frame: &Frame, persons: &[Person]) {
        let mut state = self.state();
        let size = frame.image.dimensions();
        if state.size != size {
            state.monitors = self.monitors(&frame.image);
            state.size = size;
        }
        for monitor in &mut state.monitors {
            let update = monitor.observe(&frame.image, persons, frame.captured);
            if let Some(change) = update.change {
                info!(camera = %self.id, region = %monitor.name, from = ?change.from, to = ?change.to,
                    at = %humantime::format_rfc3339_seconds(change.at), "region occupancy changed");
            }
            debug!(camera = %self.id, region = %monitor.name, evidence = ?update.evidence, "region frame");
        }
        state.last_frame = Some(frame.clone());
    }

    fn monitors(&self, frame: &image::RgbImage) -> Vec<RegionMonitor> {
        let (w, h) = frame.dimensions();
        let reference = self.reference.as_ref().map(|r| {
            if r.dimensions() == (w, h) {
                r.clone()
            } else {
                image::imageops::resize(r, w, h, image::imageops::FilterType::Triangle)
            }
        });
        self.regions
            .iter()
            .filter_map(|(name, points)| match Polygon::from_config(points, w, h) {
                Ok(polygon) => {
                    let mut monitor = RegionMonitor::new(name, polygon, self.settings);
                    if let Some(r) = &reference {
                        if !monitor.set_reference(r) {
                            warn!(camera = %self.id, region = %name, "region not comparable in the empty reference");
                        }
                    }
                    Some(monitor)
                }
                Err(e) => {
                    warn!(camera = %self.id, region = %name, error = ?e, "region unusable");
                    None
                }
            })
            .collect()
    }

    /// Whether a dialysis session on this camera wants faces now.
    pub fn wants_faces(&self, now: SystemTime) -> bool {
        self.state().sessions.iter().any(|s| s.wants_faces(now))
    }

    /// Faces of a frame for the sessions in their identity window: each session sees the faces whose
    /// centre is inside its chair. A face that is not the patient is `dialysis_patient_mismatch` at once.
    pub fn observe_faces(
        &self,
        frame: &Frame,
        faces: &[FaceObservation],
        gallery: &SearchIndex,
        rules: &SettlementRules,
    ) {
        let mut state = self.state();
        let State { monitors, sessions, .. } = &mut *state;
        for check in sessions.iter_mut().filter(|s| s.wants_faces(frame.captured)) {
            let Some(chair) = monitors.iter().find(|m| m.name == check.session().chair) else { continue };
            let inside: Vec<FaceObservation> = faces
                .iter()
                .filter(|f| {
                    chair
                        .polygon
                        .contains(f64::from(f.bbox[0] + f.bbox[2]) / 2.0, f64::from(f.bbox[1] + f.bbox[3]) / 2.0)
                })
                .cloned()
                .collect();
            if let Some(outcome) = check.observe_faces(&inside, frame.captured, gallery, rules, &chair.tracker) {
                let detections = outcome
                    .face
                    .iter()
                    .flat_map(|f| f.faces.first())
                    .map(|f| Detection { label: "face".into(), bbox: f.judgement.bbox, score: f.judgement.score })
                    .collect();
                let details = session_details(check.session());
                self.outlet.decide(Some(frame), outcome.at, DecisionKind::Dialysis(outcome), details, detections);
            }
        }
    }

    /// The beds of this (ward) camera at `at`, with the registered patients.
    fn bed_checks(&self, roster: &Roster, at: SystemTime) -> Vec<BedCheck> {
        let state = self.state();
        if state.monitors.is_empty() {
            // No frame since start: every bed is unknown (never absent).
            return self
                .regions
                .iter()
                .map(|(bed, _)| BedCheck {
                    camera: self.id.clone(),
                    bed: bed.clone(),
                    patient: roster.patient_in(&self.id, bed).map(str::to_owned),
                    state: Occupancy::Unknown,
                })
                .collect();
        }
        state
            .monitors
            .iter()
            .map(|m| {
                let fresh =
                    m.tracker.last_frame().is_some_and(|t| at.duration_since(t).unwrap_or_default() <= self.max_gap);
                BedCheck {
                    camera: self.id.clone(),
                    bed: m.name.clone(),
                    patient: roster.patient_in(&self.id, &m.name).map(str::to_owned),
                    state: if fresh { m.tracker.state() } else { Occupancy::Unknown },
                }
            })
            .collect()
    }

    /// Sends a decision with the latest frame as its snapshot and the region's outline as detection.
    fn decide_on_region(&self, at: SystemTime, region: &str, kind: DecisionKind, details: Details) -> uuid::Uuid {
        let state = self.state();
        let bbox = state.monitors.iter().find(|m| m.name == region).map(|m| m.polygon.bounds());
        let detections =
            bbox.map(|b| vec![Detection { label: region.to_owned(), bbox: b, score: 0.0 }]).unwrap_or_default();
        // No frame yet: the event still goes out, without a bundle (and says so).
        self.outlet.decide(state.last_frame.as_ref(), at, kind, details, detections)
    }

    /// Takes the roster's sessions on this camera: new ones start being followed; removed ones are
    /// dropped. A session already over when first seen (judged before a restart, or ended while the box
    /// was off or before the roster arrived) is not judged: nothing of it was watched.
    fn sync_sessions(&self, roster: &Roster, rules: DialysisRules, now: SystemTime) {
        let mut state = self.state();
        let wanted: Vec<_> = roster.dialysis_sessions.iter().filter(|s| s.camera == self.id).collect();
        state.sessions.retain(|c| wanted.iter().any(|w| w.session == c.session().id));
        for s in wanted {
            if state.finished.contains(&s.session) || state.sessions.iter().any(|c| c.session().id == s.session) {
                continue;
            }
            let end = s.start + Duration::from_secs(u64::from(s.billed_minutes) * 60) + rules.grace;
            if end <= now {
                info!(camera = %self.id, session = %s.session, "dialysis session already over when first seen; not judged");
                state.finished.insert(s.session.clone());
                continue;
            }
            let session = Session {
                id: s.session.clone(),
                patient: s.patient.clone(),
                camera: s.camera.clone(),
                chair: s.chair.clone(),
                start: s.start,
                billed_minutes: s.billed_minutes,
            };
            state.sessions.push(SessionCheck::new(session, rules));
        }
    }

    /// Final verdicts of sessions that are due.
    fn tick_sessions(&self, now: SystemTime) {
        let mut due = Vec::new();
        {
            let mut state = self.state();
            let State { monitors, sessions, finished, .. } = &mut *state;
            for check in sessions.iter_mut() {
                let Some(chair) = monitors.iter().find(|m| m.name == check.session().chair) else {
                    // No frame yet on this camera: time passes as unknown.
                    let empty = crate::decide::presence::OccupancyTracker::new(self.settings);
                    if let Some(outcome) = check.tick(now, &empty) {
                        due.push((outcome, session_details(check.session())));
                    }
                    continue;
                };
                if let Some(outcome) = check.tick(now, &chair.tracker) {
                    due.push((outcome, session_details(check.session())));
                }
            }
            for check in sessions.iter().filter(|c| c.is_finished()) {
                finished.insert(check.session().id.clone());
            }
            sessions.retain(|c| !c.is_finished());
        }
        for (outcome, details) in due {
            let chair = outcome.chair.clone();
            info!(camera = %self.id, session = %outcome.session_id, verdict = outcome.verdict.name(),
                share = outcome.share, "dialysis session judged");
            self.decide_on_region(outcome.at, &chair, DecisionKind::Dialysis(outcome), details);
        }
    }
}

type Details = std::collections::BTreeMap<String, String>;

fn session_details(s: &Session) -> Details {
    Details::from([
        ("session".to_owned(), s.id.clone()),
        ("patient".to_owned(), s.patient.clone()),
        ("chair".to_owned(), s.chair.clone()),
        ("billed_minutes".to_owned(), s.billed_minutes.to_string()),
    ])
}

/// All presence cameras, the roll-call streaks, and where box-wide decisions go.
pub struct Presence {
    pub cameras: Vec<Arc<PresenceCamera>>,
    rollcalls: Mutex<RollcallTracker>,
    /// `<data_dir>/rollcall-streaks.json`: absence streaks survive restarts.
    streaks_file: PathBuf,
    rules: DialysisRules,
    decisions: mpsc::Sender<Decision>,
}

impl Presence {
    pub fn new(cameras: Vec<Arc<PresenceCamera>>, config: &Config, decisions: mpsc::Sender<Decision>) -> Presence {
        let rules = crate::decide::rollcall::RollcallRules { escalate_after: config.rollcalls.escalate_after };
        let mut tracker = RollcallTracker::new(rules);
        let streaks_file = config.storage.data_dir.join("rollcall-streaks.json");
        match std::fs::read(&streaks_file).map(|b| serde_json::from_slice(&b)) {
            Ok(Ok(stored)) => tracker.import(stored),
            Ok(Err(e)) => {
                warn!(path = %streaks_file.display(), error = %e, "absence streaks unreadable; starting afresh")
            }
            Err(_) => {}
        }
        Presence { cameras, rollcalls: Mutex::new(tracker), streaks_file, rules: config.dialysis.rules(), decisions }
    }

    /// A bed's current absence streak.
    #[cfg(test)]
    pub fn streak(&self, camera: &str, bed: &str) -> u32 {
        self.rollcalls.lock().unwrap_or_else(|e| e.into_inner()).streak(camera, bed)
    }

    pub fn camera(&self, id: &str) -> Option<&Arc<PresenceCamera>> {
        self.cameras.iter().find(|c| c.id == id)
    }

    /// A roll-call of every bed on the ward cameras at `at`: `bed_absent` (with a snapshot bundle) per
    /// registered patient not in bed, `bed_absence_escalated` at K consecutive absences, one
    /// `rollcall_summary`.
    pub fn rollcall(&self, people: &People, at: SystemTime, trigger: &str) -> RollcallReport {
        let checks: Vec<BedCheck> = {
            let roster = people.roster();
            self.cameras.iter().filter(|c| c.role == Role::Ward).flat_map(|c| c.bed_checks(&roster, at)).collect()
        };
        let outcome = {
            let mut tracker = self.rollcalls.lock().unwrap_or_else(|e| e.into_inner());
            let outcome = tracker.evaluate(at, &checks);
            let bytes = serde_json::to_vec(&tracker.export()).expect("streaks serialise");
            if let Err(e) = crate::fsio::write(&self.streaks_file, &bytes, crate::fsio::PRIVATE_FILE) {
                warn!(path = %self.streaks_file.display(), error = %e, "cannot store the absence streaks");
            }
            outcome
        };
        for absence in &outcome.absent {
            let Some(camera) = self.camera(&absence.camera) else { continue };
            let details = Details::from([
                ("patient".to_owned(), absence.patient.clone()),
                ("bed".to_owned(), absence.bed.clone()),
                ("consecutive".to_owned(), absence.consecutive.to_string()),
            ]);
            camera.decide_on_region(at, &absence.bed, DecisionKind::BedAbsent(absence.clone()), details);
        }
        for absence in &outcome.escalated {
            let _ = self.decisions.send(Decision::new(
                &absence.camera,
                at,
                DecisionKind::BedAbsenceEscalated(absence.clone()),
            ));
        }
        let report = RollcallReport {
            trigger: trigger.to_owned(),
            summary: outcome.summary,
            absent: outcome
                .absent
                .iter()
                .map(|a| crate::decide::rollcall::BedRef {
                    camera: a.camera.clone(),
                    bed: a.bed.clone(),
                    patient: Some(a.patient.clone()),
                })
                .collect(),
            unknown: outcome.unknown.clone(),
            unregistered_occupied: outcome.unregistered_occupied.clone(),
        };
        info!(
            trigger,
            checked = report.summary.checked,
            present = report.summary.present,
            absent = report.summary.absent,
            unknown = report.summary.unknown,
            "roll-call"
        );
        let _ = self.decisions.send(Decision::new("", at, DecisionKind::RollcallSummary(report.clone())));
        report
    }

    /// Follows the roster's dialysis sessions and gives the verdicts that are due.
    pub fn tick(&self, people: &People, now: SystemTime) {
        let roster = people.roster();
        for camera in self.cameras.iter().filter(|c| c.role == Role::DialysisRoom) {
            camera.sync_sessions(&roster, self.rules, now);
            camera.tick_sessions(now);
        }
    }
}
