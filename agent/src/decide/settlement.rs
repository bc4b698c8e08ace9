//! Settlement verification at a window camera, as pure functions of (state, observations, time).
//!
//! A signed `settlement` command opens a watch: window camera, claimed insured id, transaction id, a
//! deadline. Faces seen at the window are tracked across frames (box overlap); a track is judged only on
//! several good frames (quality gate), never on one, by the median distance of those frames to the
//! claimed person's enrolled embeddings.
//!
//! Several people often stand at a window (a patient with a companion, a parent with a child), so every
//! well-seen face is judged, not only the most visible one:
//! - `settlement_verified` as soon as one well-seen face is the claimed person (that face is the one
//!   recorded and boxed);
//! - `settlement_identity_mismatch` only when nobody at the window is: every well-seen face was judged,
//!   and no face still at the window awaits its good frames (such a face holds the verdict back for a
//!   bounded time). It names each judged face's best enrolled match and distances;
//! - `settlement_no_face` when no face was well seen by the deadline.
//!
//! With `[liveness]` on, each judged face also carries its liveness evidence ([`crate::decide::liveness`]),
//! and is judged only once its track has the landmark frames that needs (or has left, or the deadline
//! came). Liveness never changes the verdict: a face suspected of being a photo or a screen gets a
//! `settlement_spoof_suspected` beside it (the runtime makes it from [`FaceJudgement::liveness`]).
//!
//! A face settling under two or more different claimed ids within a window → `identity_shared_across_ids`
//! ([`shared_identity`]). Which faces count is [`Outcome::settled_faces`]. Transaction ids are admitted
//! once ([`Transactions`]): a repeat while watched is refused, a repeat after the verdict answered with it.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::analyze::boxes::{BBox, iou};
use crate::analyze::embedder::Embedding;
use crate::decide::liveness::{Landmarks, Liveness, LivenessRules, MAX_SAMPLES, Sample};
use crate::gallery::search::SearchIndex;

/// Settings from config `[faces]` / `[settlement]`.
#[derive(Debug, Clone, Copy)]
pub struct SettlementRules {
    /// Same person below this embedding distance.
    pub match_distance: f32,
    /// Good frames of one face needed for a verdict.
    pub min_good_frames: usize,
    /// Window in which one face under two claimed ids counts as card lending.
    pub sharing_window: Duration,
    /// `[liveness]` when enabled.
    pub liveness: Option<LivenessRules>,
}

impl Default for SettlementRules {
    fn default() -> Self {
        SettlementRules {
            match_distance: 0.6,
            min_good_frames: 3,
            sharing_window: Duration::from_secs(30 * 86_400),
            liveness: None,
        }
    }
}

/// A face in one analysed frame: where, how sure the detector was, and (when it passed the quality
/// gate) its embedding.
#[derive(Debug, Clone)]
pub struct FaceObservation {
    pub bbox: BBox,
    /// The face detector's score (0..1), as it goes into evidence manifests.
    pub score: f32,
    /// None when the face failed the quality gate in this frame.
    pub embedding: Option<Embedding>,
    /// The detector's five landmarks (for liveness); None where no detector gave them.
    pub landmarks: Option<Landmarks>,
}

/// The verdict, with the facts of its decisive face: for a mismatch the judged face nearest to the
/// claimed person (all judged faces are in [`Outcome::faces`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Verdict {
    Verified {
        distance: f32,
        good_frames: usize,
    },
    IdentityMismatch {
        distance: Option<f32>,
        best_match: Option<String>,
        best_distance: Option<f32>,
        good_frames: usize,
    },
    NoFace {
        faces_seen: usize,
    },
}

/// What was concluded about one well-seen face. Holds no embedding: it goes into events and logs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaceJudgement {
    /// Box in the last frame the face was seen.
    #[serde(rename = "box")]
    pub bbox: BBox,
    /// The detector's score on that frame.
    pub score: f32,
    pub good_frames: usize,
    /// Median distance of its good frames to the claimed person; None when the claimed id is not enrolled.
    pub distance: Option<f32>,
    /// The enrolled person nearest to the face's mean embedding, if nearer than `match_distance`.
    pub best_match: Option<String>,
    pub best_distance: Option<f32>,
    /// With `[liveness]` on: the evidence from its landmarks over the watch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liveness: Option<Liveness>,
}

/// A judged face with the mean embedding of its good frames (for card-lending checks).
#[derive(Clone)]
pub struct JudgedFace {
    pub judgement: FaceJudgement,
    pub embedding: Embedding,
}

/// Outcomes are logged with their decisions: never the embedding (biometric data stays out of logs).
impl std::fmt::Debug for JudgedFace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JudgedFace").field("judgement", &self.judgement).finish_non_exhaustive()
    }
}

/// What the watch concluded.
#[derive(Clone)]
pub struct Outcome {
    pub transaction_id: String,
    pub claimed_id: String,
    pub camera: String,
    pub at: SystemTime,
    pub verdict: Verdict,
    /// Verified: the claimed person's face only. Mismatch: every well-seen face, the one nearest to the
    /// claimed person first. No face: empty.
    pub faces: Vec<JudgedFace>,
    /// Distinct faces (tracks) seen during the watch, well seen or not.
    pub faces_seen: usize,
    /// Mean embedding of the decisive face (`faces[0]`).
    pub embedding: Option<Embedding>,
    /// Box of the decisive face in the last frame it was seen.
    pub bbox: Option<BBox>,
}

/// Without the embedding: outcomes end up in decision logs (a dialysis verdict carries one).
impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcome")
            .field("transaction_id", &self.transaction_id)
            .field("claimed_id", &self.claimed_id)
            .field("camera", &self.camera)
            .field("at", &humantime::format_rfc3339_millis(self.at))
            .field("verdict", &self.verdict)
            .field("faces", &self.faces)
            .field("faces_seen", &self.faces_seen)
            .field("bbox", &self.bbox)
            .finish_non_exhaustive()
    }
}

impl Outcome {
    /// The faces this settlement records for card-lending checks. Verified: only the claimed person's —
    /// a companion (a relative, a carer bringing several patients in turn) is not the one settling, and
    /// recording them would later accuse them of lending cards. Mismatch: every judged face, since
    /// nobody there is the card holder and any of them may be the one presenting it. No face: none.
    pub fn settled_faces(&self) -> Vec<SettledFace> {
        self.faces
            .iter()
            .map(|f| SettledFace {
                transaction_id: self.transaction_id.clone(),
                claimed_id: self.claimed_id.clone(),
                at: self.at,
                embedding: f.embedding,
            })
            .collect()
    }
}

/// A face seen over several frames of one watch.
#[derive(Debug, Clone)]
struct Track {
    bbox: BBox,
    score: f32,
    good: Vec<Embedding>,
    /// Its landmarks in the latest [`MAX_SAMPLES`] frames it was seen (with `[liveness]` on).
    samples: Vec<Sample>,
    /// The frame (count within the watch) and time it was last seen.
    last_frame: u64,
    last_seen: SystemTime,
}

/// A face seen this recently that has not yet had its good frames holds back a mismatch: it may be the
/// claimed person, still turning towards the camera. (A detection missed in a frame or two does not
/// make a person leave.)
const STILL_AT_WINDOW: Duration = Duration::from_secs(2);

/// For at most this long after the first face was judged: a face that stays unjudgeable longer (turned
/// away, too far, or a face-like pattern in the scene) must not suppress the verdict — the event then
/// shows it as seen but not judged (`faces_seen` above the judged faces).
const HOLD_BACK: Duration = Duration::from_secs(10);

/// One open settlement watch.
#[derive(Debug, Clone)]
pub struct Watch {
    pub transaction_id: String,
    pub claimed_id: String,
    pub camera: String,
    pub deadline: SystemTime,
    tracks: Vec<Track>,
    frames: u64,
    /// When a face was first well seen enough to be judged.
    first_judged: Option<SystemTime>,
}

impl Watch {
    pub fn open(transaction_id: &str, claimed_id: &str, camera: &str, now: SystemTime, watch_for: Duration) -> Watch {
        Watch {
            transaction_id: transaction_id.into(),
            claimed_id: claimed_id.into(),
            camera: camera.into(),
            deadline: now + watch_for,
            tracks: Vec::new(),
            frames: 0,
            first_judged: None,
        }
    }

    /// Whether a face at `bbox` still needs its embedding: not when it is the face of a track that has
    /// its good frames already (judged: more would not change the verdict, which waits only for the
    /// other faces at the window). The face is still fed to [`Watch::observe`], without embedding, so
    /// its track goes on.
    pub fn wants_embedding(&self, bbox: &BBox, rules: &SettlementRules) -> bool {
        let track = self
            .tracks
            .iter()
            .map(|t| (iou(&t.bbox, bbox), t))
            .filter(|(o, _)| *o > 0.3)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, t)| t);
        track.is_none_or(|t| t.good.len() < rules.min_good_frames)
    }

    /// Feeds one analysed frame; returns the outcome once there is one.
    pub fn observe(
        &mut self,
        faces: &[FaceObservation],
        now: SystemTime,
        gallery: &SearchIndex,
        rules: &SettlementRules,
    ) -> Option<Outcome> {
        self.frames += 1;
        let frame = self.frames;
        for face in faces {
            // Associate with the track it overlaps most (a person moving a little between frames), each
            // track taking at most one face per frame (two people side by side stay two tracks).
            let best = self
                .tracks
                .iter_mut()
                .filter(|t| t.last_frame != frame)
                .map(|t| (iou(&t.bbox, &face.bbox), t))
                .filter(|(o, _)| *o > 0.3)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            let track = match best {
                Some((_, t)) => t,
                None => {
                    self.tracks.push(Track {
                        bbox: face.bbox,
                        score: face.score,
                        good: Vec::new(),
                        samples: Vec::new(),
                        last_frame: frame,
                        last_seen: now,
                    });
                    self.tracks.last_mut().expect("just pushed")
                }
            };
            track.bbox = face.bbox;
            track.score = face.score;
            track.last_frame = frame;
            track.last_seen = now;
            if let Some(e) = face.embedding {
                track.good.push(e);
            }
            if let (Some(landmarks), Some(_)) = (face.landmarks, rules.liveness) {
                if track.samples.len() == MAX_SAMPLES {
                    track.samples.remove(0);
                }
                track.samples.push(Sample { at: now, landmarks });
            }
        }
        // A face is judged on its good frames and, with liveness on, once its landmark frames are
        // enough to assess (or it has left the window, or the deadline came: then with what there is).
        let ready = |t: &Track| {
            t.good.len() >= rules.min_good_frames
                && rules.liveness.is_none_or(|l| {
                    l.enough(&t.samples)
                        || now >= self.deadline
                        || now.duration_since(t.last_seen).unwrap_or_default() > STILL_AT_WINDOW
                })
        };
        let mut judged: Vec<JudgedFace> =
            self.tracks.iter().filter(|t| ready(t)).map(|t| self.judge(t, gallery, rules)).collect();
        // Nearest to the claimed person first (unknown distances last, then the most good frames).
        judged.sort_by(|a, b| {
            let key = |f: &JudgedFace| f.judgement.distance.unwrap_or(f32::INFINITY);
            key(a).total_cmp(&key(b)).then(b.judgement.good_frames.cmp(&a.judgement.good_frames))
        });
        let claimed = judged.iter().position(|f| f.judgement.distance.is_some_and(|d| d < rules.match_distance));
        if let Some(i) = claimed {
            let face = judged.swap_remove(i);
            let verdict = Verdict::Verified {
                distance: face.judgement.distance.expect("matched on it"),
                good_frames: face.judgement.good_frames,
            };
            return Some(self.outcome(now, verdict, vec![face]));
        }
        if judged.is_empty() {
            // (With liveness on, a well-seen face may still be gathering landmark frames: at the
            // deadline every face with its good frames is ready, so none is lost to `no_face`.)
            return (now >= self.deadline)
                .then(|| self.outcome(now, Verdict::NoFace { faces_seen: self.tracks.len() }, Vec::new()));
        }
        let first_judged = *self.first_judged.get_or_insert(now);
        let awaited = self
            .tracks
            .iter()
            .any(|t| !ready(t) && now.duration_since(t.last_seen).unwrap_or_default() <= STILL_AT_WINDOW);
        let held_too_long = now.duration_since(first_judged).unwrap_or_default() >= HOLD_BACK;
        if !awaited || held_too_long || now >= self.deadline {
            let first = &judged[0].judgement;
            let verdict = Verdict::IdentityMismatch {
                distance: first.distance,
                best_match: first.best_match.clone(),
                best_distance: first.best_distance,
                good_frames: first.good_frames,
            };
            return Some(self.outcome(now, verdict, judged));
        }
        None
    }

    fn judge(&self, track: &Track, gallery: &SearchIndex, rules: &SettlementRules) -> JudgedFace {
        let mut distances: Vec<f32> =
            track.good.iter().filter_map(|e| gallery.distance_to(e, &self.claimed_id)).collect();
        distances.sort_by(f32::total_cmp);
        let median = (!distances.is_empty()).then(|| distances[distances.len() / 2]);
        let mean = mean_embedding(&track.good);
        let best = gallery.best(&mean, None).filter(|m| m.distance < rules.match_distance);
        JudgedFace {
            judgement: FaceJudgement {
                bbox: track.bbox,
                score: track.score,
                good_frames: track.good.len(),
                distance: median,
                best_distance: best.as_ref().map(|m| m.distance),
                best_match: best.map(|m| m.id),
                liveness: rules.liveness.map(|l| l.assess(&track.samples)),
            },
            embedding: mean,
        }
    }

    fn outcome(&self, now: SystemTime, verdict: Verdict, faces: Vec<JudgedFace>) -> Outcome {
        Outcome {
            transaction_id: self.transaction_id.clone(),
            claimed_id: self.claimed_id.clone(),
            camera: self.camera.clone(),
            at: now,
            verdict,
            embedding: faces.first().map(|f| f.embedding),
            bbox: faces.first().map(|f| f.judgement.bbox),
            faces,
            faces_seen: self.tracks.len(),
        }
    }
}

fn mean_embedding(items: &[Embedding]) -> Embedding {
    let mut mean = [0f32; 128];
    for e in items {
        for (m, v) in mean.iter_mut().zip(e) {
            *m += v / items.len() as f32;
        }
    }
    mean
}

/// Settlement faces are remembered by the gallery's settlement log; decide reads and makes them.
pub use crate::gallery::settlements::SettledFace;

/// One face of this settlement found in an earlier settlement under another claimed id.
#[derive(Debug, Clone)]
pub struct Sharing<'a> {
    /// Index into [`Outcome::faces`].
    pub face: usize,
    pub earlier: &'a SettledFace,
    /// Distance between this settlement's face and the earlier one.
    pub distance: f32,
}

/// Earlier settlements under a different claimed id, within the sharing window, by a face this
/// settlement records ([`Outcome::settled_faces`]): one per (face, earlier transaction), the nearest.
pub fn shared_identity<'a>(history: &'a [SettledFace], outcome: &Outcome, rules: &SettlementRules) -> Vec<Sharing<'a>> {
    let mut found: Vec<Sharing<'a>> = Vec::new();
    for (i, face) in outcome.faces.iter().enumerate() {
        for h in history
            .iter()
            .filter(|h| h.claimed_id != outcome.claimed_id && h.transaction_id != outcome.transaction_id)
            .filter(|h| outcome.at.duration_since(h.at).unwrap_or_default() <= rules.sharing_window)
        {
            let distance = crate::analyze::embedder::distance(&h.embedding, &face.embedding);
            if distance >= rules.match_distance {
                continue;
            }
            match found.iter_mut().find(|s| s.face == i && s.earlier.transaction_id == h.transaction_id) {
                Some(s) if s.distance > distance => *s = Sharing { face: i, earlier: h, distance },
                Some(_) => {}
                None => found.push(Sharing { face: i, earlier: h, distance }),
            }
        }
    }
    found
}

/// How many verdicts [`Transactions`] remembers (a window settles a few hundred a day: weeks of them).
pub const REMEMBERED_VERDICTS: usize = 10_000;

/// A transaction's verdict, as a repeated `settlement` command is answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SettledTransaction {
    pub transaction_id: String,
    pub camera: String,
    pub claimed_id: String,
    /// The verdict's event kind, e.g. `settlement_verified`.
    pub verdict: String,
    pub event_id: String,
    pub at: SystemTime,
}

/// Why a `settlement` command's transaction id is not opened again.
#[derive(Debug, Clone, PartialEq)]
pub enum Known {
    /// A watch for it is open (on `camera`, until `until`).
    Watching { camera: String, claimed_id: String, until: SystemTime },
    /// Its verdict was given.
    Settled(SettledTransaction),
}

#[derive(Debug, Clone)]
struct OpenWatch {
    camera: String,
    claimed_id: String,
    until: SystemTime,
}

/// The box's transaction ids: those being watched, and the last [`REMEMBERED_VERDICTS`] verdicts (in
/// memory: an agent restart forgets them, as it drops open watches). One per box, whichever camera,
/// so a retry sent to another window cannot open a second watch either.
#[derive(Debug)]
pub struct Transactions {
    open: HashMap<String, OpenWatch>,
    settled: HashMap<String, SettledTransaction>,
    /// Settled ids, oldest first, to forget beyond the capacity.
    order: VecDeque<String>,
    capacity: usize,
}

impl Default for Transactions {
    fn default() -> Self {
        Transactions::with_capacity(REMEMBERED_VERDICTS)
    }
}

impl Transactions {
    pub fn with_capacity(capacity: usize) -> Self {
        Transactions { open: HashMap::new(), settled: HashMap::new(), order: VecDeque::new(), capacity }
    }

    /// Admits a new watch of `transaction_id`, or says why not.
    pub fn admit(
        &mut self,
        transaction_id: &str,
        camera: &str,
        claimed_id: &str,
        until: SystemTime,
    ) -> Result<(), Known> {
        if let Some(w) = self.open.get(transaction_id) {
            return Err(Known::Watching { camera: w.camera.clone(), claimed_id: w.claimed_id.clone(), until: w.until });
        }
        if let Some(s) = self.settled.get(transaction_id) {
            return Err(Known::Settled(s.clone()));
        }
        self.open.insert(
            transaction_id.to_owned(),
            OpenWatch { camera: camera.to_owned(), claimed_id: claimed_id.to_owned(), until },
        );
        Ok(())
    }

    /// Forgets an admitted watch that could not be opened (its camera stopped).
    pub fn withdraw(&mut self, transaction_id: &str) {
        self.open.remove(transaction_id);
    }

    /// Records the verdict of a watch: repeats of its transaction id are answered with it from now on.
    pub fn settle(&mut self, verdict: SettledTransaction) {
        self.open.remove(&verdict.transaction_id);
        let id = verdict.transaction_id.clone();
        if self.settled.insert(id.clone(), verdict).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.settled.remove(&old);
            }
        }
    }

    pub fn watching(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gallery::{Entry, PersonKind};

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    /// `[v; 128]`: two such faces are `|v - w| · √128 ≈ 11.3 |v - w|` apart.
    fn gallery() -> SearchIndex {
        let mk = |id: &str, v: f32| Entry {
            id: id.into(),
            role: PersonKind::Patient,
            embeddings: vec![vec![v; 128]],
            quality: 1.0,
            enrolled_at: String::new(),
        };
        SearchIndex::build(&[mk("p-patient", 0.0), mk("p-other", 0.5)])
    }

    const PATIENT: f32 = 0.02;
    /// Not enrolled: nearer to nobody than 0.6.
    const COMPANION: f32 = -0.3;
    const PATIENT_BOX: BBox = [700.0, 200.0, 860.0, 400.0];
    const COMPANION_BOX: BBox = [300.0, 180.0, 480.0, 400.0];

    fn face(bbox: BBox, v: f32, good: bool) -> FaceObservation {
        FaceObservation { bbox, score: 0.84, embedding: good.then_some([v; 128]), landmarks: None }
    }

    /// Feeds `frames` one a second from t(0) until an outcome.
    fn run(watch: &mut Watch, frames: impl Fn(u64) -> Vec<FaceObservation>, until: u64) -> Option<(u64, Outcome)> {
        let (g, rules) = (gallery(), SettlementRules::default());
        (0..=until).find_map(|i| watch.observe(&frames(i), t(i), &g, &rules).map(|o| (i, o)))
    }

    /// The defect: the companion, seen well more often than the patient, was the judged face and the
    /// patient was accused. Now the patient among the well-seen faces verifies, and only their face is
    /// boxed and recorded.
    #[test]
    fn companion_at_the_window_does_not_accuse_the_patient() {
        let mut watch = Watch::open("tx-1", "p-patient", "window-1", t(0), Duration::from_secs(30));
        // The companion faces the camera; the patient passes the quality gate every other frame only.
        let frames = |i: u64| vec![face(COMPANION_BOX, COMPANION, true), face(PATIENT_BOX, PATIENT, i % 2 == 1)];
        let (at, outcome) = run(&mut watch, frames, 30).expect("a verdict");
        assert_eq!(at, 5, "on the patient's third good frame; not a mismatch on the companion's third (frame 2)");
        assert!(matches!(outcome.verdict, Verdict::Verified { good_frames: 3, .. }), "{:?}", outcome.verdict);
        assert_eq!(outcome.bbox, Some(PATIENT_BOX), "evidence boxes the patient");
        assert_eq!(outcome.faces.len(), 1);
        assert_eq!(outcome.faces[0].judgement.score, 0.84, "the detector's score");
        assert_eq!(outcome.faces_seen, 2);
        let recorded = outcome.settled_faces();
        assert_eq!(recorded.len(), 1, "only the verified face is recorded for card lending");
        assert_eq!(recorded[0].embedding, [PATIENT; 128]);
    }

    /// Once the companion's track has its good frames, their face is not embedded again; the patient's
    /// still is, and so is a face nobody has seen yet. Without embeddings, the companion's track goes on.
    #[test]
    fn a_judged_face_is_not_embedded_again() {
        let (g, rules) = (gallery(), SettlementRules::default());
        let mut watch = Watch::open("tx-6", "p-patient", "window-1", t(0), Duration::from_secs(30));
        for i in 0..3 {
            assert!(watch.wants_embedding(&COMPANION_BOX, &rules), "frame {i}");
            let frame = vec![face(COMPANION_BOX, COMPANION, true), face(PATIENT_BOX, PATIENT, false)];
            assert!(watch.observe(&frame, t(i), &g, &rules).is_none(), "the patient is still awaited");
        }
        assert!(!watch.wants_embedding(&COMPANION_BOX, &rules), "three good frames: judged");
        let moved = [COMPANION_BOX[0] + 10.0, COMPANION_BOX[1], COMPANION_BOX[2] + 10.0, COMPANION_BOX[3]];
        assert!(!watch.wants_embedding(&moved, &rules), "the same track, a little further");
        assert!(watch.wants_embedding(&PATIENT_BOX, &rules));
        assert!(watch.wants_embedding(&[0.0, 0.0, 50.0, 50.0], &rules), "a new face");
        let frame = vec![face(moved, COMPANION, false), face(PATIENT_BOX, PATIENT, true)];
        assert!(watch.observe(&frame, t(3), &g, &rules).is_none());
        assert!(!watch.wants_embedding(&moved, &rules), "the companion's track followed them");
    }

    /// Decision logs print outcomes (dialysis verdicts carry one): no embedding may appear in them.
    #[test]
    fn outcomes_are_logged_without_embeddings() {
        let mut watch = Watch::open("tx-5", "p-other", "window-1", t(0), Duration::from_secs(30));
        let (_, outcome) = run(&mut watch, |_| vec![face(PATIENT_BOX, 0.012_345_6, true)], 30).unwrap();
        assert!(outcome.embedding.is_some_and(|e| (e[0] - 0.012_345_6).abs() < 1e-6));
        let text = format!("{outcome:?}");
        assert!(text.contains("p-patient") && !text.contains("embedding") && !text.contains("0.01234"), "{text}");
    }

    #[test]
    fn mismatch_only_when_nobody_at_the_window_is_the_claimed_person() {
        let mut watch = Watch::open("tx-2", "p-other", "window-1", t(0), Duration::from_secs(30));
        let frames = |_| vec![face(COMPANION_BOX, COMPANION, true), face(PATIENT_BOX, PATIENT, true)];
        let (at, outcome) = run(&mut watch, frames, 30).expect("a verdict");
        assert_eq!(at, 2, "both faces judged on their third good frame");
        let Verdict::IdentityMismatch { distance, best_match, best_distance, good_frames } = &outcome.verdict else {
            panic!("{:?}", outcome.verdict)
        };
        // The face nearest to the claimed person (0.5) decides the top-level facts: the patient at 0.48·√128.
        assert!((distance.unwrap() - 0.48 * 128f32.sqrt()).abs() < 1e-3, "{distance:?}");
        assert_eq!(best_match.as_deref(), Some("p-patient"));
        assert!(best_distance.unwrap() < 0.6);
        assert_eq!(*good_frames, 3);
        // Every judged face is named, with its best match (none for the unenrolled companion).
        let faces: Vec<_> = outcome.faces.iter().map(|f| (f.judgement.bbox, f.judgement.best_match.clone())).collect();
        assert_eq!(faces, [(PATIENT_BOX, Some("p-patient".to_owned())), (COMPANION_BOX, None)]);
        assert!(outcome.faces.iter().all(|f| f.judgement.distance.is_some_and(|d| d >= 0.6)));
        assert_eq!((outcome.faces_seen, outcome.settled_faces().len()), (2, 2), "each judged face recorded");
    }

    /// A face at the window that has not yet passed the quality gate three times may be the claimed
    /// person: no mismatch on the other face for a while (10 s after it was judged, or until the
    /// deadline if sooner); then the event says two faces were seen and one judged.
    #[test]
    fn a_face_not_yet_judged_holds_back_the_mismatch_for_a_while() {
        let frames = |_| vec![face(COMPANION_BOX, COMPANION, true), face(PATIENT_BOX, PATIENT, false)];
        let mut watch = Watch::open("tx-3", "p-patient", "window-1", t(0), Duration::from_secs(30));
        let (at, outcome) = run(&mut watch, frames, 40).expect("a verdict");
        assert_eq!(at, 12, "the companion judged at 2 s, held back 10 s");
        assert!(matches!(outcome.verdict, Verdict::IdentityMismatch { .. }));
        assert_eq!((outcome.faces_seen, outcome.faces.len()), (2, 1));
        let mut watch = Watch::open("tx-3", "p-patient", "window-1", t(0), Duration::from_secs(8));
        assert_eq!(run(&mut watch, frames, 40).unwrap().0, 8, "the deadline comes first");
        // Once that face has left the window, the judged one is decided on at once.
        let mut watch = Watch::open("tx-4", "p-patient", "window-1", t(0), Duration::from_secs(20));
        let frames = |i| {
            let mut faces = vec![face(COMPANION_BOX, COMPANION, true)];
            if i == 0 {
                faces.push(face(PATIENT_BOX, PATIENT, false));
            }
            faces
        };
        assert_eq!(run(&mut watch, frames, 30).unwrap().0, 3, "the unjudged face was last seen 3 s before");
    }

    #[test]
    fn card_lending_is_checked_for_each_recorded_face() {
        let (g, rules) = (gallery(), SettlementRules::default());
        let judge = |tx: &str, claimed: &str, at: u64, faces: &[(BBox, f32)]| {
            let mut watch = Watch::open(tx, claimed, "window-1", t(at), Duration::from_secs(30));
            let frame: Vec<FaceObservation> = faces.iter().map(|(b, v)| face(*b, *v, true)).collect();
            (0..10).find_map(|i| watch.observe(&frame, t(at + i), &g, &rules)).unwrap()
        };
        let both = [(COMPANION_BOX, COMPANION), (PATIENT_BOX, PATIENT)];
        // The companion escorts the patient (verified: only the patient recorded), then claims p-other.
        let mut history = judge("tx-10", "p-patient", 0, &both).settled_faces();
        let alone = judge("tx-11", "p-other", 60, &[(COMPANION_BOX, COMPANION)]);
        assert!(shared_identity(&history, &alone, &rules).is_empty(), "a companion is not a card lender");
        history.extend(alone.settled_faces());
        // Both come back under a third id (nobody matches it): each face is compared.
        let third = judge("tx-12", "p-third", 120, &both);
        let mut shared: Vec<(String, String)> = shared_identity(&history, &third, &rules)
            .iter()
            .map(|s| {
                (third.faces[s.face].judgement.best_match.clone().unwrap_or_default(), s.earlier.transaction_id.clone())
            })
            .collect();
        shared.sort();
        assert_eq!(shared, [(String::new(), "tx-11".to_owned()), ("p-patient".to_owned(), "tx-10".to_owned())]);
    }

    /// With liveness on, a face with its good frames is judged once its landmarks span enough frames and
    /// time; the verdict is the same, with the liveness evidence (here a face that never moves: still,
    /// suspected). Off, the same frames give the verdict on the third good frame, without evidence.
    #[test]
    fn with_liveness_on_the_verdict_waits_for_landmark_frames_and_carries_them() {
        let g = gallery();
        let landmarks = [[720.0, 260.0], [780.0, 260.0], [750.0, 300.0], [725.0, 330.0], [775.0, 330.0]];
        let still = |_| vec![FaceObservation { landmarks: Some(landmarks), ..face(PATIENT_BOX, PATIENT, true) }];
        let on = SettlementRules { liveness: Some(LivenessRules::default()), ..Default::default() };
        let mut watch = Watch::open("tx-7", "p-patient", "window-1", t(0), Duration::from_secs(30));
        // One frame every 250 ms: ten frames over 2 s are there at frame 9 (2.25 s).
        let at = |i: u64| t(0) + Duration::from_millis(250 * i);
        let (i, outcome) = (0..40).find_map(|i| watch.observe(&still(i), at(i), &g, &on).map(|o| (i, o))).unwrap();
        assert_eq!(i, 9, "ten landmark frames spanning 2 s");
        assert!(matches!(outcome.verdict, Verdict::Verified { .. }), "liveness never changes the verdict");
        let liveness = outcome.faces[0].judgement.liveness.clone().expect("the evidence");
        assert_eq!((liveness.frames, liveness.suspected), (10, true), "{liveness:?}");
        assert_eq!(liveness.cue, crate::decide::liveness::Cue::Still);
        let mut watch = Watch::open("tx-8", "p-patient", "window-1", t(0), Duration::from_secs(30));
        let rules = SettlementRules::default();
        let (i, outcome) = (0..40).find_map(|i| watch.observe(&still(i), at(i), &g, &rules).map(|o| (i, o))).unwrap();
        assert_eq!((i, outcome.faces[0].judgement.liveness.clone()), (2, None));
    }

    /// The defect: a second `settlement` for a transaction being watched opened a second watch (two
    /// verdicts, duplicate card-lending events and evidence).
    #[test]
    fn duplicate_settlement_refused_while_watched_then_answered_idempotently() {
        let mut transactions = Transactions::with_capacity(2);
        assert_eq!(transactions.admit("tx-1", "window-1", "p-1", t(30)), Ok(()));
        let watching = Known::Watching { camera: "window-1".into(), claimed_id: "p-1".into(), until: t(30) };
        assert_eq!(transactions.admit("tx-1", "window-1", "p-1", t(35)), Err(watching.clone()));
        assert_eq!(transactions.admit("tx-1", "window-2", "p-1", t(35)), Err(watching), "whichever camera");
        let verdict = SettledTransaction {
            transaction_id: "tx-1".into(),
            camera: "window-1".into(),
            claimed_id: "p-1".into(),
            verdict: "settlement_verified".into(),
            event_id: "0195941a-fe26-76da-a967-043e66dee294".into(),
            at: t(4),
        };
        transactions.settle(verdict.clone());
        assert_eq!(transactions.watching(), 0);
        assert_eq!(transactions.admit("tx-1", "window-2", "p-1", t(40)), Err(Known::Settled(verdict.clone())));
        // A camera that stopped: the admitted id is withdrawn and may be sent again.
        assert_eq!(transactions.admit("tx-2", "window-1", "p-2", t(40)), Ok(()));
        transactions.withdraw("tx-2");
        assert_eq!(transactions.admit("tx-2", "window-1", "p-2", t(40)), Ok(()));
        // Memory is bounded: the oldest verdict is forgotten beyond the capacity.
        for tx in ["tx-2", "tx-3"] {
            transactions.settle(SettledTransaction { transaction_id: tx.into(), ..verdict.clone() });
        }
        assert_eq!(transactions.admit("tx-1", "window-1", "p-1", t(50)), Ok(()));
        assert!(matches!(transactions.admit("tx-3", "window-1", "p-1", t(50)), Err(Known::Settled(_))));
    }
}
