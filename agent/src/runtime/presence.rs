//! Bed and chair presence wired to cameras, the roster and the clock.
//!
//! Each ward or dialysis-room camera with regions has a [`PresenceCamera`]: the analysis thread feeds it
//! every analysed frame with the person detector's boxes (and, during a dialysis session's identity
//! window, the faces); the scheduler thread asks it for bed states at roll-calls and advances the
//! dialysis sessions on its chairs; it keeps the regions' state changes of the last hours in an
//! [`OccupancyHistory`] (was the bed occupied when a ward phone's photo was taken?).
//!
//! The empty reference of the regions is a frame an operator took with `vigil reference --empty` (or
//! the console) with the beds and chairs empty — one per lighting condition: the frame is recognised as
//! day colour or night infrared from the picture itself and stored as that condition's reference, so
//! the operator takes it once by day and once by night with the same command. Each analysed frame is
//! compared with the reference of its own condition; without one, occupancy rests on the person
//! detector alone, which misses many lying people. A region whose reference no longer fits (the bed
//! was moved) is reported `region_reference_stale` and is Unknown until it fits again or a new
//! reference is taken.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime};

use tracing::{debug, info, warn};

use super::people::People;
use super::sink::Outlet;
use crate::analyze::person_detector::Person;
use crate::config::{Camera, Config, Role};
use crate::decide::dialysis::{DialysisRules, Session, SessionCheck};
use crate::decide::presence::{
    Lighting, LightingJudge, Occupancy, Polygon, PresenceSettings, RegionMonitor, Staleness, StateChange,
};
use crate::decide::rollcall::{BedCheck, RollcallTracker};
use crate::decide::roster::Roster;
use crate::decide::settlement::{FaceObservation, SettlementRules};
use crate::decide::{Decision, DecisionKind, RollcallReport};
use crate::evidence::store::Detection;
use crate::gallery::search::SearchIndex;
use crate::source::Frame;

/// `<data_dir>/references/<camera>-empty.png`: the camera's view with its beds or chairs empty, in
/// day colour.
pub fn empty_reference_path(data_dir: &Path, camera: &str) -> PathBuf {
    empty_reference_path_for(data_dir, camera, Lighting::Day)
}

/// The empty reference of one lighting condition: `<camera>-empty.png` (day, the name it always had)
/// or `<camera>-empty-night.png` (night infrared).
pub fn empty_reference_path_for(data_dir: &Path, camera: &str, lighting: Lighting) -> PathBuf {
    let name = match lighting {
        Lighting::Day => format!("{camera}-empty.png"),
        Lighting::NightIr => format!("{camera}-empty-night.png"),
    };
    data_dir.join("references").join(name)
}

/// Where an empty reference taken from `img` belongs: the lighting condition the picture shows, and
/// that condition's file.
pub fn empty_reference_for(
    data_dir: &Path,
    settings: &PresenceSettings,
    camera: &str,
    img: &image::RgbImage,
) -> (Lighting, PathBuf) {
    let lighting = LightingJudge::new(settings).classify(img);
    (lighting, empty_reference_path_for(data_dir, camera, lighting))
}

struct State {
    /// The regions as configured (the console changes them live, [`PresenceCamera::set_regions`]).
    regions: Vec<(String, Vec<Vec<f64>>)>,
    /// The regions' empty look per lighting condition (`vigil reference --empty`, or taken live from
    /// the console).
    references: HashMap<Lighting, image::RgbImage>,
    /// The lighting condition of the frames, followed frame by frame.
    lighting: LightingJudge,
    /// Built at the first frame, when the frame size is known.
    monitors: Vec<RegionMonitor>,
    size: (u32, u32),
    last_frame: Option<Frame>,
    sessions: Vec<SessionCheck>,
    /// Sessions already given their final verdict (a roster repeating them does not start them again).
    finished: HashSet<String>,
}

/// At most this many state changes are kept per region: a region flapping all day (a bad empty
/// reference, a curtain in the wind) cannot grow the history without bound; the oldest go first.
const MAX_CHANGES_PER_REGION: usize = 4096;

/// The occupancy of every (camera, region) over the last hours, as the regions' trackers decided it:
/// what a ward phone's bedside photo is compared with (was the bed occupied when the photo was taken?).
/// A photo kept on the phone while it was offline arrives up to `[phones] max_offline_hours` late, so
/// that is the horizon kept. Fed by each [`PresenceCamera`] with every analysed frame.
pub struct OccupancyHistory {
    horizon: Duration,
    regions: Mutex<HashMap<(String, String), RegionHistory>>,
}

#[derive(Default)]
struct RegionHistory {
    /// (from, state): the region was in `state` from `from` until the next change; oldest first.
    changes: VecDeque<(SystemTime, Occupancy)>,
    /// Known time ends at the latest frame.
    last_frame: Option<SystemTime>,
}

impl RegionHistory {
    fn state_at(&self, t: SystemTime) -> Occupancy {
        if self.last_frame.is_none_or(|last| t > last) {
            return Occupancy::Unknown;
        }
        self.changes.iter().rev().find(|(from, _)| *from <= t).map_or(Occupancy::Unknown, |(_, state)| *state)
    }
}

impl OccupancyHistory {
    pub fn new(horizon: Duration) -> OccupancyHistory {
        OccupancyHistory { horizon, regions: Mutex::default() }
    }

    /// A frame of `camera` analysed at `at`, and the change of `region`'s state it caused, if any (a
    /// change may be backdated: it then replaces what was recorded from its time on).
    pub fn record(&self, camera: &str, region: &str, at: SystemTime, change: Option<StateChange>) {
        let mut regions = self.regions.lock().unwrap_or_else(|e| e.into_inner());
        let history = regions.entry((camera.to_owned(), region.to_owned())).or_default();
        if history.last_frame.is_none_or(|last| at > last) {
            history.last_frame = Some(at);
        }
        if let Some(change) = change {
            while history.changes.back().is_some_and(|(from, _)| *from >= change.at) {
                history.changes.pop_back();
            }
            if history.changes.back().is_none_or(|(_, state)| *state != change.to) {
                history.changes.push_back((change.at, change.to));
            }
        }
        // The change in force at the horizon stays (it says what the state was then); older ones go.
        if let Some(horizon) = at.checked_sub(self.horizon) {
            while history.changes.get(1).is_some_and(|(from, _)| *from <= horizon) {
                history.changes.pop_front();
            }
        }
        while history.changes.len() > MAX_CHANGES_PER_REGION {
            history.changes.pop_front();
        }
    }

    /// The region's state at `t`: Unknown before anything was decided, while the camera did not deliver
    /// frames (its gap is recorded as Unknown once frames resume), and after the latest frame.
    pub fn at(&self, camera: &str, region: &str, t: SystemTime) -> Occupancy {
        let regions = self.regions.lock().unwrap_or_else(|e| e.into_inner());
        regions.get(&(camera.to_owned(), region.to_owned())).map_or(Occupancy::Unknown, |h| h.state_at(t))
    }

    /// The region's state around `t` (± `tolerance`, the presence `enter_secs`: a patient who lay down
    /// a moment before the photo counts): Occupied when it was occupied at any time of the window the
    /// camera saw, Empty when it was empty throughout what the camera saw of it, else Unknown.
    pub fn around(&self, camera: &str, region: &str, t: SystemTime, tolerance: Duration) -> Occupancy {
        let regions = self.regions.lock().unwrap_or_else(|e| e.into_inner());
        let Some(history) = regions.get(&(camera.to_owned(), region.to_owned())) else { return Occupancy::Unknown };
        let (from, to) = (t.checked_sub(tolerance).unwrap_or(t), t + tolerance);
        let Some(seen_to) = history.last_frame.map(|last| last.min(to)) else { return Occupancy::Unknown };
        if from > seen_to {
            return Occupancy::Unknown;
        }
        let states: Vec<Occupancy> = std::iter::once(history.state_at(from))
            .chain(history.changes.iter().filter(|(at, _)| *at > from && *at <= seen_to).map(|(_, state)| *state))
            .collect();
        if states.contains(&Occupancy::Occupied) {
            Occupancy::Occupied
        } else if states.iter().all(|s| *s == Occupancy::Empty) {
            Occupancy::Empty
        } else {
            Occupancy::Unknown
        }
    }

    /// State changes kept for a region (tests, and to show the bound holds).
    pub fn kept(&self, camera: &str, region: &str) -> usize {
        let regions = self.regions.lock().unwrap_or_else(|e| e.into_inner());
        regions.get(&(camera.to_owned(), region.to_owned())).map_or(0, |h| h.changes.len())
    }
}

pub struct PresenceCamera {
    pub id: String,
    pub role: Role,
    settings: PresenceSettings,
    max_gap: Duration,
    state: Mutex<State>,
    outlet: Outlet,
    /// Where the regions' state changes are kept for later questions (ward phones' bed check).
    history: Option<Arc<OccupancyHistory>>,
}

impl PresenceCamera {
    pub fn new(config: &Config, camera: &Camera, outlet: Outlet) -> PresenceCamera {
        let mut references = HashMap::new();
        for lighting in Lighting::ALL {
            let path = empty_reference_path_for(&config.storage.data_dir, &camera.id, lighting);
            match crate::analyze::image::load_rgb(&path) {
                Ok(img) => {
                    references.insert(lighting, img);
                }
                Err(_) if !path.exists() => {
                    // Said once the camera is in this lighting (a camera without night mode never is).
                    debug!(camera = %camera.id, lighting = lighting.as_str(), path = %path.display(),
                        "no empty reference of the regions in this lighting");
                }
                Err(e) => {
                    warn!(camera = %camera.id, lighting = lighting.as_str(), error = %e,
                        "empty reference unreadable; occupancy in this lighting uses the detector alone");
                }
            }
        }
        if references.is_empty() {
            warn!(camera = %camera.id, "no empty reference of the regions: occupancy rests on the person detector \
                alone (it misses many lying people); take one with `vigil reference --empty` while the beds/chairs \
                are empty, by day and again by night if the camera has an infrared mode");
        }
        let settings = config.presence.settings(&config.persons);
        PresenceCamera {
            id: camera.id.clone(),
            role: camera.role,
            settings,
            max_gap: Duration::from_secs(config.presence.max_gap_secs),
            state: Mutex::new(State {
                regions: camera.regions.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                references,
                lighting: LightingJudge::new(&settings),
                monitors: Vec::new(),
                size: (0, 0),
                last_frame: None,
                sessions: Vec::new(),
                finished: HashSet::new(),
            }),
            outlet,
            history: None,
        }
    }

    /// Keeps the regions' state changes in `history` from now on.
    pub fn keep_history(mut self, history: Arc<OccupancyHistory>) -> PresenceCamera {
        self.history = Some(history);
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One analysed frame and the persons found in it.
    pub fn observe(&self, frame: &Frame, persons: &[Person]) {
        let mut stale = Vec::new();
        {
            let mut state = self.state();
            let size = frame.image.dimensions();
            if state.size != size {
                let references = scaled_all(&state.references, size);
                state.monitors = state
                    .regions
                    .iter()
                    .filter_map(|(name, points)| self.monitor(name, points, size, &references))
                    .collect();
                state.size = size;
            }
            let before = state.lighting.current();
            let lighting = state.lighting.observe(&frame.image);
            if before != Some(lighting) {
                let reference = state.references.contains_key(&lighting);
                info!(camera = %self.id, lighting = lighting.as_str(), reference,
                    "lighting condition of the picture; the regions compare with its empty reference");
                if !reference {
                    warn!(camera = %self.id, lighting = lighting.as_str(), "no empty reference of the regions in \
                        this lighting: occupancy rests on the person detector alone; take one with `vigil \
                        reference --empty` (or the console) while the beds/chairs are empty");
                }
            }
            for monitor in &mut state.monitors {
                let update = monitor.observe(&frame.image, persons, lighting, frame.captured);
                if let Some(history) = &self.history {
                    history.record(&self.id, &monitor.name, frame.captured, update.change);
                }
                if let Some(change) = update.change {
                    info!(camera = %self.id, region = %monitor.name, from = ?change.from, to = ?change.to,
                        at = %humantime::format_rfc3339_seconds(change.at), "region occupancy changed");
                }
                match update.staleness {
                    Some(Staleness::Raised(report)) => stale.push(report),
                    Some(Staleness::Cleared { region, lighting }) => {
                        info!(camera = %self.id, region = %region, lighting = lighting.as_str(),
                            "the region's empty reference fits again; occupancy is judged from it again");
                    }
                    None => {}
                }
                debug!(camera = %self.id, region = %monitor.name, lighting = lighting.as_str(),
                    evidence = ?update.evidence, "region frame");
            }
            state.last_frame = Some(frame.clone());
        }
        for report in stale {
            warn!(camera = %self.id, region = %report.region, lighting = report.lighting.as_str(), fit = report.fit,
                shifted_fit = report.shifted_fit, shift_px = ?report.shift_px,
                "the region's empty reference no longer fits (bed or chair moved?): the region is unknown until it \
                fits again or a new empty reference is taken");
            let region = report.region.clone();
            let details = Details::from([
                ("region".to_owned(), region.clone()),
                ("lighting".to_owned(), report.lighting.as_str().to_owned()),
            ]);
            self.decide_on_region(frame.captured, &region, DecisionKind::RegionReferenceStale(report), details);
        }
    }

    /// The monitor of one region at a frame size, compared with the (scaled) empty reference if any.
    fn monitor(
        &self,
        name: &str,
        points: &[Vec<f64>],
        (w, h): (u32, u32),
        references: &HashMap<Lighting, image::RgbImage>,
    ) -> Option<RegionMonitor> {
        match Polygon::from_config(points, w, h) {
            Ok(polygon) => {
                // A ward camera's regions are beds: someone sitting on the edge is beside the bed.
                let settings = PresenceSettings { beds: self.role == Role::Ward, ..self.settings };
                let mut monitor = RegionMonitor::new(name, polygon, settings);
                for (lighting, r) in references {
                    if !monitor.set_reference(*lighting, r) {
                        warn!(camera = %self.id, region = %name, lighting = lighting.as_str(),
                            "region not comparable in the empty reference");
                    }
                }
                Some(monitor)
            }
            Err(e) => {
                warn!(camera = %self.id, region = %name, error = ?e, "region unusable");
                None
            }
        }
    }

    /// Whether the camera has regions to watch (a dialysis room may have none yet).
    pub fn has_regions(&self) -> bool {
        !self.state().regions.is_empty()
    }

    /// The regions now.
    pub fn regions(&self) -> Vec<(String, Vec<Vec<f64>>)> {
        self.state().regions.clone()
    }

    /// New regions, live (the console's editor): a region whose points did not change keeps its state
    /// and its timeline; a changed or new one starts afresh (unknown until its tracker decides); a
    /// removed one is dropped. Returns the names of the regions that start afresh.
    pub fn set_regions(&self, regions: &std::collections::BTreeMap<String, Vec<Vec<f64>>>) -> Vec<String> {
        let mut state = self.state();
        let size = state.size;
        let references = scaled_all(&state.references, size);
        let old = std::mem::take(&mut state.monitors);
        let unchanged =
            |name: &str, points: &Vec<Vec<f64>>| state.regions.iter().any(|(n, p)| n == name && p == points);
        let mut fresh = Vec::new();
        let mut monitors = Vec::new();
        let mut old: HashMap<String, RegionMonitor> = old.into_iter().map(|m| (m.name.clone(), m)).collect();
        for (name, points) in regions {
            if unchanged(name, points) {
                if let Some(monitor) = old.remove(name) {
                    monitors.push(monitor);
                    continue;
                }
                if size == (0, 0) {
                    continue;
                }
            } else {
                fresh.push(name.clone());
            }
            if size != (0, 0) {
                monitors.extend(self.monitor(name, points, size, &references));
            }
        }
        state.monitors = monitors;
        state.regions = regions.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        info!(camera = %self.id, regions = state.regions.len(), changed = %fresh.join(","), "regions replaced live");
        fresh
    }

    /// A new empty reference of the regions in `lighting` (the condition the picture shows,
    /// [`empty_reference_for`]), live: every region compares its frames of that condition with it from
    /// the next one (their states and timelines go on; a stale reference is replaced).
    pub fn set_reference(&self, lighting: Lighting, empty: image::RgbImage) {
        let mut state = self.state();
        let reference = scaled(Some(&empty), state.size);
        if let Some(r) = &reference {
            for monitor in &mut state.monitors {
                if !monitor.set_reference(lighting, r) {
                    warn!(camera = %self.id, region = %monitor.name, lighting = lighting.as_str(),
                        "region not comparable in the empty reference");
                }
            }
        }
        state.references.insert(lighting, empty);
        info!(camera = %self.id, lighting = lighting.as_str(), "empty reference of the regions reloaded");
    }

    /// Whether an empty reference of the regions is loaded (in any lighting).
    pub fn has_reference(&self) -> bool {
        !self.state().references.is_empty()
    }

    /// The lighting conditions an empty reference is loaded for.
    pub fn reference_lightings(&self) -> Vec<Lighting> {
        let state = self.state();
        Lighting::ALL.into_iter().filter(|l| state.references.contains_key(l)).collect()
    }

    /// Each region's state now (unknown before its first frame, or after a gap longer than
    /// `[presence] max_gap_secs`).
    pub fn occupancy(&self, now: SystemTime) -> Vec<(String, Occupancy)> {
        let state = self.state();
        state
            .regions
            .iter()
            .map(|(name, _)| {
                let state = state
                    .monitors
                    .iter()
                    .find(|m| &m.name == name)
                    .filter(|m| {
                        m.tracker
                            .last_frame()
                            .is_some_and(|t| now.duration_since(t).unwrap_or_default() <= self.max_gap)
                    })
                    .map_or(Occupancy::Unknown, |m| m.tracker.state());
                (name.clone(), state)
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
            return state
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
                    state: if fresh { m.rollcall_state() } else { Occupancy::Unknown },
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

/// The empty reference at the frame size (`None` before the first frame).
fn scaled(reference: Option<&image::RgbImage>, (w, h): (u32, u32)) -> Option<image::RgbImage> {
    let r = reference?;
    if (w, h) == (0, 0) {
        None
    } else if r.dimensions() == (w, h) {
        Some(r.clone())
    } else {
        Some(image::imageops::resize(r, w, h, image::imageops::FilterType::Triangle))
    }
}

/// Every reference at the frame size.
fn scaled_all(references: &HashMap<Lighting, image::RgbImage>, size: (u32, u32)) -> HashMap<Lighting, image::RgbImage> {
    references.iter().filter_map(|(l, r)| scaled(Some(r), size).map(|r| (*l, r))).collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::presence::OccupancyTracker;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    /// Feeds `history` one frame per second from `from` to `to` (exclusive) with the raw verdict
    /// `occupied`, through a real tracker (enter 20 s, leave 60 s, gap 30 s).
    fn feed(history: &OccupancyHistory, tracker: &mut OccupancyTracker, from: u64, to: u64, occupied: bool) {
        for s in from..to {
            let change = tracker.observe(t(s), occupied);
            history.record("ward-3", "bed-2", t(s), change);
        }
    }

    /// A bed watched for a while: its state at past times is what the tracker decided then — unknown
    /// before the first decision, during a camera gap and after the latest frame.
    #[test]
    fn the_state_at_a_past_time_is_what_the_camera_decided_then() {
        let history = OccupancyHistory::new(Duration::from_secs(24 * 3600));
        let mut tracker = OccupancyTracker::new(PresenceSettings::default());
        feed(&history, &mut tracker, 0, 300, true); // occupied from 0 (decided at 20 s, backdated)
        feed(&history, &mut tracker, 300, 600, false); // empty from 300 (decided at 360 s)
        // The camera stops at 599 and comes back at 700: the gap is unknown.
        feed(&history, &mut tracker, 700, 900, true);
        let at = |s| history.at("ward-3", "bed-2", t(s));
        assert_eq!(at(10), Occupancy::Occupied, "backdated to when the patient was first seen");
        assert_eq!(at(299), Occupancy::Occupied);
        assert_eq!(at(450), Occupancy::Empty);
        assert_eq!(at(650), Occupancy::Unknown, "the camera delivered nothing then");
        assert_eq!(at(800), Occupancy::Occupied);
        assert_eq!(at(950), Occupancy::Unknown, "after the latest frame nothing is known");
        assert_eq!(history.at("ward-3", "bed-9", t(100)), Occupancy::Unknown, "a region never seen");
        assert_eq!(history.at("ward-4", "bed-2", t(100)), Occupancy::Unknown, "another camera");
    }

    /// Around a photo's time (± enter_secs): occupied if the bed was occupied at any moment of it, empty
    /// only when the camera saw it empty throughout.
    #[test]
    fn around_a_time_occupied_wins_and_empty_needs_the_whole_window() {
        let history = OccupancyHistory::new(Duration::from_secs(24 * 3600));
        let mut tracker = OccupancyTracker::new(PresenceSettings::default());
        feed(&history, &mut tracker, 0, 300, true);
        feed(&history, &mut tracker, 300, 600, false);
        let around = |s| history.around("ward-3", "bed-2", t(s), Duration::from_secs(20));
        assert_eq!(around(315), Occupancy::Occupied, "left 15 s before the photo: still counts");
        assert_eq!(around(400), Occupancy::Empty);
        assert_eq!(around(590), Occupancy::Empty, "the window runs past the latest frame: what was seen was empty");
        assert_eq!(around(700), Occupancy::Unknown, "nothing seen in the window");
        let fresh = OccupancyHistory::new(Duration::from_secs(3600));
        let mut tracker = OccupancyTracker::new(PresenceSettings::default());
        for s in 0..10 {
            fresh.record("ward-3", "bed-2", t(s), tracker.observe(t(s), false));
        }
        assert_eq!(
            fresh.around("ward-3", "bed-2", t(5), Duration::from_secs(20)),
            Occupancy::Unknown,
            "not decided yet (leave_secs not reached): unknown, never empty"
        );
    }

    /// Two days of a flapping region: only the horizon is kept (and the change in force at it), never
    /// more than the bound; older times are unknown.
    #[test]
    fn the_history_is_bounded_by_its_horizon_and_a_count() {
        let history = OccupancyHistory::new(Duration::from_secs(3600));
        let mut state = Occupancy::Empty;
        for minute in 0..(48 * 60) {
            let to = if state == Occupancy::Empty { Occupancy::Occupied } else { Occupancy::Empty };
            let change = StateChange { from: state, to, at: t(minute * 60) };
            state = to;
            history.record("ward-3", "bed-2", t(minute * 60), Some(change));
        }
        assert!(history.kept("ward-3", "bed-2") <= 61, "{}", history.kept("ward-3", "bed-2"));
        let last = t((48 * 60 - 1) * 60);
        assert_eq!(history.at("ward-3", "bed-2", last), state);
        assert_eq!(history.at("ward-3", "bed-2", last - Duration::from_secs(7200)), Occupancy::Unknown);

        let history = OccupancyHistory::new(Duration::from_secs(7 * 24 * 3600));
        for s in 0..(2 * MAX_CHANGES_PER_REGION as u64) {
            let to = if s % 2 == 0 { Occupancy::Occupied } else { Occupancy::Empty };
            history.record("ward-3", "bed-2", t(s), Some(StateChange { from: Occupancy::Unknown, to, at: t(s) }));
        }
        assert_eq!(history.kept("ward-3", "bed-2"), MAX_CHANGES_PER_REGION);
    }

    /// The console's live changes: a region with the same points keeps its state, a changed or new one
    /// starts afresh (unknown), a removed one goes; a new empty reference is taken without a reset.
    #[test]
    fn regions_are_swapped_live_and_only_changed_ones_start_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[site]\nid = \"h\"\ndevice_id = \"d\"\n[storage]\ndata_dir = \"state\"\n\
                    [presence]\nenter_secs = 2\nleave_secs = 2\n\
                    [[cameras]]\nid = \"ward-1\"\nrole = \"ward\"\nurl = \"test://ball\"\n\
                    regions = { bed-1 = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.6]], bed-2 = [[0.5, 0.1], [0.9, 0.1], [0.9, 0.6]] }\n";
        let path = dir.path().join("vigil.toml");
        std::fs::write(&path, text).unwrap();
        let config = crate::config::load(&path).unwrap();
        let (decisions, _d) = mpsc::channel();
        let (evidence, _e) = mpsc::channel();
        let pending = Arc::new(crate::evidence::pending::Pending::new(dir.path()));
        let outlet = Outlet::new(&config, "ward-1", pending, decisions, evidence);
        let camera = PresenceCamera::new(&config, &config.cameras[0], outlet);
        let frame = |s: u64| Frame { image: image::RgbImage::new(64, 48), captured: t(s), seq: s, keyframe: true };
        for s in 0..6 {
            camera.observe(&frame(s), &[]);
        }
        let states = |now| camera.occupancy(t(now)).into_iter().collect::<HashMap<_, _>>();
        assert_eq!(states(5), HashMap::from([("bed-1".into(), Occupancy::Empty), ("bed-2".into(), Occupancy::Empty)]));

        let mut regions: std::collections::BTreeMap<String, Vec<Vec<f64>>> = config.cameras[0].regions.clone();
        regions.insert("bed-2".into(), vec![vec![0.5, 0.2], vec![0.9, 0.2], vec![0.9, 0.7]]);
        regions.insert("bed-3".into(), vec![vec![0.1, 0.7], vec![0.4, 0.7], vec![0.4, 0.95]]);
        assert_eq!(camera.set_regions(&regions), ["bed-2", "bed-3"]);
        let now = states(5);
        assert_eq!(now["bed-1"], Occupancy::Empty, "unchanged: its state goes on");
        assert_eq!((now["bed-2"], now["bed-3"]), (Occupancy::Unknown, Occupancy::Unknown), "afresh");
        for s in 6..10 {
            camera.observe(&frame(s), &[]);
        }
        assert!(states(9).values().all(|s| *s == Occupancy::Empty), "{:?}", states(9));

        regions.remove("bed-1");
        assert!(camera.set_regions(&regions).is_empty());
        assert_eq!(camera.occupancy(t(9)).len(), 2, "bed-1 removed");
        assert!(!camera.has_reference());
        camera.set_reference(Lighting::Day, image::RgbImage::new(64, 48));
        assert!(camera.has_reference());
        assert!(states(9).values().all(|s| *s == Occupancy::Empty), "a new reference resets nothing");
    }

    /// A backdated change replaces what was recorded from its time on (the tracker revises the last
    /// `enter_secs` / `leave_secs`), and equal states are not repeated.
    #[test]
    fn a_backdated_change_replaces_the_later_ones() {
        let history = OccupancyHistory::new(Duration::from_secs(3600));
        let change = |to, at| Some(StateChange { from: Occupancy::Unknown, to, at: t(at) });
        history.record("c", "r", t(10), change(Occupancy::Occupied, 0));
        history.record("c", "r", t(100), change(Occupancy::Empty, 40));
        history.record("c", "r", t(101), change(Occupancy::Occupied, 40));
        assert_eq!(history.kept("c", "r"), 1, "empty lasted no time: occupied continues");
        assert_eq!(history.at("c", "r", t(60)), Occupancy::Occupied);
    }
}
