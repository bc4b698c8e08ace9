//! Dialysis session verification: the billed patient sat in the billed chair for the billed time.
//!
//! Fraud patterns: phantom sessions (billed, nobody came), shortened ones (billed 4 h, 2 h given), and
//! substitution (another person dialysed under an insured patient's card). A session from the roster
//! names patient, camera, chair, start and billed minutes; it is checked in two phases:
//!
//! 1. **Identity**, during the first `identity_window` after the scheduled start: faces in the chair
//!    region are judged exactly like at a settlement window (`settlement::Watch`, claimed id = the
//!    patient): a mismatch is reported at once (so evidence is cut while the person is still there);
//!    a match is remembered; no judged face by the end of the window is `not_seen` (not an accusation:
//!    patients often sleep or face away). Faces of enrolled physicians are left out first, so the
//!    physician connecting the lines is not judged as the patient; staff who are not enrolled can still
//!    be, which is why a mismatch names the best match and carries the evidence for a human to review.
//! 2. **Duration**, at `start + billed + grace`: the chair's occupied time over
//!    `[start, start + billed + grace]`, capped at the billed time, as a share of it. The grace (default
//!    10 min) absorbs late starts: a session that starts 8 minutes late and runs its full length is
//!    still verified.
//!
//! **Unknown time** (camera offline, no decision) is never counted as occupied, and never as empty: a
//! negative verdict (`chair_empty`, `short`) is only given when it would hold even if every unknown
//! second had been occupied. When the unknown time is what separates a verified session from a short
//! one, the verdict is `unverifiable`. Switching the camera off thus cannot manufacture an accusation,
//! nor a verification; the outage is itself reported (`camera_offline`) and its minutes are in the
//! outcome.
//!
//! After a mismatch, a full session is not reported as verified (the mismatch said what there is to
//! say); `short` / `chair_empty` / `unverifiable` still are.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::presence::OccupancyTracker;
use super::settlement::{self, FaceObservation, SettlementRules, Watch};
use crate::gallery::PersonKind;
use crate::gallery::search::SearchIndex;

/// A billed dialysis session, from the roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    pub id: String,
    pub patient: String,
    pub camera: String,
    pub chair: String,
    #[serde(with = "super::humantime_serde_compat")]
    pub start: SystemTime,
    pub billed_minutes: u32,
}

/// Settings from config `[dialysis]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DialysisRules {
    /// Faces are judged during this long after the scheduled start. Default 15 min: the patient is
    /// seated, weighed and connected in that time, usually facing staff and the room.
    pub identity_window: Duration,
    /// Occupancy is measured until `start + billed + grace`. Default 10 min: late starts are common
    /// (previous session overrunning, cannulation trouble) and not fraud.
    pub grace: Duration,
    /// Below this occupied share the chair was empty: nobody came. Default 0.05 (12 min of a 4 h
    /// session): a patient who only sat down to be seen is still a phantom session.
    pub chair_empty_share: f64,
    /// Below this occupied share the session was short. Default 0.9 (24 min of 4 h): leaves room for
    /// a toilet break (the occupancy tracker already ignores absences under a minute) and detection
    /// gaps, while a session cut by an hour is caught.
    pub min_share: f64,
}

impl Default for DialysisRules {
    fn default() -> Self {
        DialysisRules {
            identity_window: Duration::from_secs(15 * 60),
            grace: Duration::from_secs(10 * 60),
            chair_empty_share: 0.05,
            min_share: 0.9,
        }
    }
}

/// Whether the person in the chair was the billed patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PatientMatch {
    Matched,
    Mismatch,
    /// No face judged during the identity window.
    NotSeen,
}

impl PatientMatch {
    pub fn as_str(self) -> &'static str {
        match self {
            PatientMatch::Matched => "matched",
            PatientMatch::Mismatch => "mismatch",
            PatientMatch::NotSeen => "not_seen",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SessionVerdict {
    /// The face in the chair is not the billed patient (emitted during the identity window).
    PatientMismatch { distance: Option<f32>, best_match: Option<String>, best_distance: Option<f32> },
    /// Occupied for at least `min_share` of the billed time.
    Verified,
    /// Occupied for less than `min_share` of the billed time even counting unknown time as occupied.
    Short,
    /// Occupied for less than `chair_empty_share` even counting unknown time as occupied.
    ChairEmpty,
    /// Short on the known time, but unknown time (camera offline) could make up the difference.
    Unverifiable,
}

impl SessionVerdict {
    /// The event name.
    pub fn name(&self) -> &'static str {
        match self {
            SessionVerdict::PatientMismatch { .. } => "dialysis_patient_mismatch",
            SessionVerdict::Verified => "dialysis_session_verified",
            SessionVerdict::Short => "dialysis_session_short",
            SessionVerdict::ChairEmpty => "dialysis_chair_empty",
            SessionVerdict::Unverifiable => "dialysis_session_unverifiable",
        }
    }
}

/// A verdict on a session, the event payload.
#[derive(Debug, Clone, Serialize)]
pub struct SessionOutcome {
    pub session_id: String,
    pub patient: String,
    pub camera: String,
    pub chair: String,
    #[serde(with = "super::humantime_serde_compat")]
    pub at: SystemTime,
    #[serde(flatten)]
    pub verdict: SessionVerdict,
    /// Occupied minutes of the measured span, at most the billed minutes. For a mismatch: so far.
    pub occupied_minutes: f64,
    /// Minutes of the measured span with no occupancy decision.
    pub unknown_minutes: f64,
    pub billed_minutes: u32,
    /// `occupied_minutes / billed_minutes`, 0..1 (1 for a session billed for nothing).
    pub share: f64,
    pub patient_match: PatientMatch,
    /// The judged face (box, embedding), for the evidence of a mismatch.
    #[serde(skip)]
    pub face: Option<settlement::Outcome>,
}

/// Follows one session from its start to its verdicts.
#[derive(Debug, Clone)]
pub struct SessionCheck {
    session: Session,
    rules: DialysisRules,
    watch: Watch,
    patient_match: Option<PatientMatch>,
    face: Option<settlement::Outcome>,
    finished: bool,
}

impl SessionCheck {
    pub fn new(session: Session, rules: DialysisRules) -> SessionCheck {
        let watch = Watch::open(&session.id, &session.patient, &session.camera, session.start, rules.identity_window);
        SessionCheck { session, rules, watch, patient_match: None, face: None, finished: false }
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// When the duration verdict is due: `start + billed + grace`.
    pub fn ends_at(&self) -> SystemTime {
        self.session.start + billed(&self.session) + self.rules.grace
    }

    /// Whether faces in the chair should be fed now (identity undecided, inside the identity window).
    pub fn wants_faces(&self, now: SystemTime) -> bool {
        self.patient_match.is_none() && now >= self.session.start && now < self.watch.deadline
    }

    /// The identity result so far (None while undecided).
    pub fn patient_match(&self) -> Option<PatientMatch> {
        self.patient_match
    }

    /// Whether the final verdict was given; the check can then be dropped.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Feeds faces seen inside the chair region in one frame. Returns a `PatientMismatch` outcome the
    /// moment the watch judges a face that is not the patient.
    pub fn observe_faces(
        &mut self,
        faces: &[FaceObservation],
        now: SystemTime,
        gallery: &SearchIndex,
        face_rules: &SettlementRules,
        chair: &OccupancyTracker,
    ) -> Option<SessionOutcome> {
        if !self.wants_faces(now) {
            return None;
        }
        let faces: Vec<FaceObservation> =
            faces.iter().filter(|f| !is_staff(f, &self.session.patient, gallery, face_rules)).cloned().collect();
        let outcome = self.watch.observe(&faces, now, gallery, face_rules)?;
        match &outcome.verdict {
            settlement::Verdict::Verified { .. } => {
                self.patient_match = Some(PatientMatch::Matched);
                self.face = Some(outcome);
                None
            }
            settlement::Verdict::NoFace { .. } => {
                self.patient_match = Some(PatientMatch::NotSeen);
                None
            }
            settlement::Verdict::IdentityMismatch { distance, best_match, best_distance, .. } => {
                self.patient_match = Some(PatientMatch::Mismatch);
                let verdict = SessionVerdict::PatientMismatch {
                    distance: *distance,
                    best_match: best_match.clone(),
                    best_distance: *best_distance,
                };
                self.face = Some(outcome.clone());
                Some(self.outcome(now, verdict, measure(&self.session, chair, now)))
            }
        }
    }

    /// Advances the check to `now`: closes the identity window and, once `ends_at` has passed, gives
    /// the duration verdict (exactly once).
    pub fn tick(&mut self, now: SystemTime, chair: &OccupancyTracker) -> Option<SessionOutcome> {
        if self.patient_match.is_none() && now >= self.watch.deadline {
            self.patient_match = Some(PatientMatch::NotSeen);
        }
        if self.finished || now < self.ends_at() {
            return None;
        }
        self.finished = true;
        let measured = measure(&self.session, chair, self.ends_at());
        let verdict = duration_verdict(&self.rules, billed(&self.session).as_secs_f64(), measured.0, measured.1);
        if verdict == SessionVerdict::Verified && self.patient_match == Some(PatientMatch::Mismatch) {
            return None;
        }
        Some(self.outcome(now, verdict, measured))
    }

    /// An outcome with `(occupied, unknown)` seconds as measured by `measure`.
    fn outcome(&self, at: SystemTime, verdict: SessionVerdict, (occupied, unknown): (f64, f64)) -> SessionOutcome {
        let billed_secs = billed(&self.session).as_secs_f64();
        SessionOutcome {
            session_id: self.session.id.clone(),
            patient: self.session.patient.clone(),
            camera: self.session.camera.clone(),
            chair: self.session.chair.clone(),
            at,
            verdict,
            occupied_minutes: occupied / 60.0,
            unknown_minutes: unknown / 60.0,
            billed_minutes: self.session.billed_minutes,
            share: if billed_secs > 0.0 { occupied / billed_secs } else { 1.0 },
            patient_match: self.patient_match.unwrap_or(PatientMatch::NotSeen),
            face: self.face.clone(),
        }
    }
}

fn billed(session: &Session) -> Duration {
    Duration::from_secs(u64::from(session.billed_minutes) * 60)
}

/// Occupied seconds (capped at the billed time) and unknown seconds of `[start, until]`.
fn measure(session: &Session, chair: &OccupancyTracker, until: SystemTime) -> (f64, f64) {
    let occupied = chair.occupied_secs(session.start, until).min(billed(session).as_secs_f64());
    (occupied, chair.unknown_secs(session.start, until))
}

/// The duration verdict from measured seconds; see the module doc for the treatment of unknown time.
pub fn duration_verdict(
    rules: &DialysisRules,
    billed_secs: f64,
    occupied_secs: f64,
    unknown_secs: f64,
) -> SessionVerdict {
    if billed_secs <= 0.0 || occupied_secs / billed_secs >= rules.min_share {
        return SessionVerdict::Verified;
    }
    let at_most = ((occupied_secs + unknown_secs) / billed_secs).min(1.0);
    if at_most < rules.chair_empty_share {
        SessionVerdict::ChairEmpty
    } else if at_most < rules.min_share {
        SessionVerdict::Short
    } else {
        SessionVerdict::Unverifiable
    }
}

/// A face of an enrolled physician (closer to them than to the patient): staff at the chair.
fn is_staff(face: &FaceObservation, patient: &str, gallery: &SearchIndex, rules: &SettlementRules) -> bool {
    let Some(e) = &face.embedding else { return false };
    gallery.best(e, Some(PersonKind::Physician)).is_some_and(|m| {
        m.distance < rules.match_distance && gallery.distance_to(e, patient).is_none_or(|d| d > m.distance)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::embedder::Embedding;
    use crate::decide::clock::{Clock, ManualClock};
    use crate::decide::presence::PresenceSettings;
    use crate::gallery::Entry;

    const BILLED: u32 = 240;

    fn start() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_251_200)
    }

    fn session() -> Session {
        Session {
            id: "s-1".into(),
            patient: "p1".into(),
            camera: "dialysis-1".into(),
            chair: "chair-3".into(),
            start: start(),
            billed_minutes: BILLED,
        }
    }

    fn embedding(v: f32) -> Embedding {
        [v; 128]
    }

    fn gallery() -> SearchIndex {
        let mk = |id: &str, role, v: f32| Entry {
            id: id.into(),
            role,
            embeddings: vec![vec![v; 128]],
            quality: 1.0,
            enrolled_at: String::new(),
        };
        SearchIndex::build(&[
            mk("p1", PersonKind::Patient, 0.0),
            mk("p2", PersonKind::Patient, 0.5),
            mk("dr", PersonKind::Physician, -0.5),
        ])
    }

    fn face(v: f32) -> FaceObservation {
        FaceObservation {
            bbox: [100.0, 100.0, 160.0, 170.0],
            score: 0.9,
            embedding: Some(embedding(v)),
            landmarks: None,
        }
    }

    /// Runs a session with frames every 4 s driven by a manual clock. `chair(minute)` is the raw
    /// occupancy of the frame (None: the camera delivers nothing); `faces(minute)` what is at the chair.
    fn run(chair: impl Fn(f64) -> Option<bool>, faces: impl Fn(f64) -> Vec<FaceObservation>) -> Vec<SessionOutcome> {
        let clock = ManualClock::new(start());
        let mut tracker = OccupancyTracker::new(PresenceSettings::default());
        let mut check = SessionCheck::new(session(), DialysisRules::default());
        let (index, rules) = (gallery(), SettlementRules::default());
        let mut outcomes = Vec::new();
        while !check.is_finished() {
            let now = clock.now();
            let minute = now.duration_since(start()).unwrap().as_secs_f64() / 60.0;
            if let Some(raw) = chair(minute) {
                tracker.observe(now, raw);
                if check.wants_faces(now) {
                    outcomes.extend(check.observe_faces(&faces(minute), now, &index, &rules, &tracker));
                }
            }
            outcomes.extend(check.tick(now, &tracker));
            clock.advance(Duration::from_secs(4));
            assert!(minute < 300.0, "the session never finished");
        }
        outcomes
    }

    fn patient_face(_: f64) -> Vec<FaceObservation> {
        vec![face(0.0)]
    }

    fn only(outcomes: &[SessionOutcome]) -> &SessionOutcome {
        assert_eq!(outcomes.len(), 1, "{outcomes:#?}");
        &outcomes[0]
    }

    #[test]
    fn a_full_session_is_verified() {
        let out = run(|m| Some(m < 240.0), patient_face);
        let o = only(&out);
        assert_eq!(o.verdict, SessionVerdict::Verified);
        assert_eq!(o.patient_match, PatientMatch::Matched);
        assert!((o.occupied_minutes - 240.0).abs() < 0.1 && o.share > 0.99, "{o:?}");
        assert!(o.unknown_minutes < 0.1);
        assert_eq!(o.at, start() + Duration::from_secs(250 * 60));
        let json = serde_json::to_value(o).unwrap();
        assert_eq!(json["outcome"], "verified");
        assert_eq!(json["patient_match"], "matched");
        assert_eq!(json["billed_minutes"], 240);
    }

    #[test]
    fn half_a_session_is_short() {
        let o = run(|m| Some(m < 120.0), patient_face);
        let o = only(&o);
        assert_eq!(o.verdict, SessionVerdict::Short);
        assert!((o.share - 0.5).abs() < 0.01, "{o:?}");
    }

    #[test]
    fn an_empty_chair_is_reported_with_no_face_seen() {
        let o = run(|_| Some(false), |_| Vec::new());
        let o = only(&o);
        assert_eq!(o.verdict, SessionVerdict::ChairEmpty);
        assert_eq!(o.patient_match, PatientMatch::NotSeen);
        assert_eq!(o.occupied_minutes, 0.0);
    }

    #[test]
    fn a_mismatch_is_reported_at_once_and_the_full_session_not_verified() {
        let out = run(|m| Some(m < 240.0), |_| vec![face(0.5)]);
        let o = only(&out);
        assert_eq!(o.verdict.name(), "dialysis_patient_mismatch");
        let SessionVerdict::PatientMismatch { best_match, .. } = &o.verdict else { unreachable!() };
        assert_eq!(best_match.as_deref(), Some("p2"));
        // Three good frames, 4 s apart.
        assert!(o.at <= start() + Duration::from_secs(12), "{:?}", o.at);
        assert!(o.face.as_ref().is_some_and(|f| f.bbox.is_some()));
        // The same substitute leaving after an hour: the mismatch, then short.
        let out = run(|m| Some(m < 60.0), |_| vec![face(0.5)]);
        let names: Vec<&str> = out.iter().map(|o| o.verdict.name()).collect();
        assert_eq!(names, ["dialysis_patient_mismatch", "dialysis_session_short"]);
        assert_eq!(out[1].patient_match, PatientMatch::Mismatch);
    }

    #[test]
    fn a_late_start_within_the_grace_is_verified() {
        let o = run(|m| Some((8.0..248.0).contains(&m)), |m| if m >= 8.0 { vec![face(0.0)] } else { Vec::new() });
        let o = only(&o);
        assert_eq!(o.verdict, SessionVerdict::Verified, "{o:?}");
        assert_eq!(o.patient_match, PatientMatch::Matched);
        // Half an hour late and stopped at the billed end anyway: 210 of 240 minutes.
        let o = run(|m| Some((30.0..240.0).contains(&m)), patient_face);
        assert_eq!(only(&o).verdict, SessionVerdict::Short);
    }

    #[test]
    fn a_physician_at_the_chair_is_not_judged_as_the_patient() {
        let o = run(|m| Some(m < 240.0), |m| if m < 1.0 { vec![face(-0.5)] } else { vec![face(-0.5), face(0.0)] });
        assert_eq!(only(&o).patient_match, PatientMatch::Matched);
    }

    #[test]
    fn camera_outages_never_make_an_accusation() {
        // Occupied whenever seen, camera offline for an hour in the middle: could have been full.
        let o = run(|m| if (100.0..160.0).contains(&m) { None } else { Some(m < 240.0) }, patient_face);
        let o = only(&o);
        assert_eq!(o.verdict, SessionVerdict::Unverifiable);
        assert!((o.unknown_minutes - 60.0).abs() < 0.2, "{o:?}");
        // Seen for 40 % then the camera off for 20 % then an empty chair: short even at best.
        let o = run(|m| if (96.0..144.0).contains(&m) { None } else { Some(m < 96.0) }, patient_face);
        assert_eq!(only(&o).verdict, SessionVerdict::Short);
        // Offline the whole session: nothing is known.
        let o = run(|_| None, |_| Vec::new());
        assert_eq!(only(&o).verdict, SessionVerdict::Unverifiable);
    }

    #[test]
    fn duration_verdict_thresholds() {
        let r = DialysisRules::default();
        let b = 14_400.0;
        assert_eq!(duration_verdict(&r, b, b * 0.9, 0.0), SessionVerdict::Verified);
        assert_eq!(duration_verdict(&r, b, b * 0.89, 0.0), SessionVerdict::Short);
        assert_eq!(duration_verdict(&r, b, b * 0.04, 0.0), SessionVerdict::ChairEmpty);
        assert_eq!(duration_verdict(&r, b, b * 0.04, b * 0.02), SessionVerdict::Short);
        assert_eq!(duration_verdict(&r, b, b * 0.5, b * 0.4), SessionVerdict::Unverifiable);
        assert_eq!(duration_verdict(&r, 0.0, 0.0, 0.0), SessionVerdict::Verified);
    }
}
