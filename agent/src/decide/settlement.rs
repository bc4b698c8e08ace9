//! Settlement verification at a window camera, as pure functions of (state, observations, time).
//!
//! A signed `settlement` command opens a watch: window camera, claimed insured id, transaction id, a
//! deadline. Faces seen at the window are tracked across frames (box overlap); a track is judged only on
//! several good frames (quality gate), never on one: its median distance to the claimed person's
//! enrolled embeddings decides `settlement_verified` or `settlement_identity_mismatch` (with the best
//! matching enrolled person, if any is close enough). No good face before the deadline →
//! `settlement_no_face`. A face settling under two or more different claimed ids within a window →
//! `identity_shared_across_ids`.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::analyze::boxes::{BBox, iou};
use crate::analyze::embedder::Embedding;
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
}

impl Default for SettlementRules {
    fn default() -> Self {
        SettlementRules { match_distance: 0.6, min_good_frames: 3, sharing_window: Duration::from_secs(30 * 86_400) }
    }
}

/// A face in one analysed frame: where, and (when it passed the quality gate) its embedding.
#[derive(Debug, Clone)]
pub struct FaceObservation {
    pub bbox: BBox,
    /// None when the face failed the quality gate in this frame.
    pub embedding: Option<Embedding>,
}

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

/// What the watch concluded, with the embedding it judged (for card-lending checks and evidence).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub transaction_id: String,
    pub claimed_id: String,
    pub camera: String,
    pub at: SystemTime,
    pub verdict: Verdict,
    /// Mean embedding of the judged track's good frames.
    pub embedding: Option<Embedding>,
    /// Box of the judged face in the last frame it was seen.
    pub bbox: Option<BBox>,
}

#[derive(Debug, Clone)]
struct Track {
    bbox: BBox,
    good: Vec<Embedding>,
}

/// One open settlement watch.
#[derive(Debug, Clone)]
pub struct Watch {
    pub transaction_id: String,
    pub claimed_id: String,
    pub camera: String,
    pub deadline: SystemTime,
    tracks: Vec<Track>,
    faces_seen: usize,
}

impl Watch {
    pub fn open(transaction_id: &str, claimed_id: &str, camera: &str, now: SystemTime, watch_for: Duration) -> Watch {
        Watch {
            transaction_id: transaction_id.into(),
            claimed_id: claimed_id.into(),
            camera: camera.into(),
            deadline: now + watch_for,
            tracks: Vec::new(),
            faces_seen: 0,
        }
    }

    /// Feeds one analysed frame; returns the outcome once there is one.
    pub fn observe(
        &mut self,
        faces: &[FaceObservation],
        now: SystemTime,
        gallery: &SearchIndex,
        rules: &SettlementRules,
    ) -> Option<Outcome> {
        self.faces_seen += faces.len();
        for face in faces {
            // Associate with the track it overlaps most (a person moving a little between frames).
            let best = self
                .tracks
                .iter_mut()
                .map(|t| (iou(&t.bbox, &face.bbox), t))
                .filter(|(o, _)| *o > 0.3)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            let track = match best {
                Some((_, t)) => t,
                None => {
                    self.tracks.push(Track { bbox: face.bbox, good: Vec::new() });
                    self.tracks.last_mut().unwrap()
                }
            };
            track.bbox = face.bbox;
            if let Some(e) = face.embedding {
                track.good.push(e);
            }
        }
        // Judge the track with the most good frames once it has enough: the person at the window.
        if let Some(track) =
            self.tracks.iter().filter(|t| t.good.len() >= rules.min_good_frames).max_by_key(|t| t.good.len())
        {
            return Some(self.judge(track, now, gallery, rules));
        }
        (now >= self.deadline).then(|| Outcome {
            transaction_id: self.transaction_id.clone(),
            claimed_id: self.claimed_id.clone(),
            camera: self.camera.clone(),
            at: now,
            verdict: Verdict::NoFace { faces_seen: self.faces_seen },
            embedding: None,
            bbox: None,
        })
    }

    fn judge(&self, track: &Track, now: SystemTime, gallery: &SearchIndex, rules: &SettlementRules) -> Outcome {
        let mut distances: Vec<f32> =
            track.good.iter().filter_map(|e| gallery.distance_to(e, &self.claimed_id)).collect();
        distances.sort_by(f32::total_cmp);
        let median = (!distances.is_empty()).then(|| distances[distances.len() / 2]);
        let mean = mean_embedding(&track.good);
        let verdict = match median {
            Some(d) if d < rules.match_distance => Verdict::Verified { distance: d, good_frames: track.good.len() },
            _ => {
                let best = gallery.best(&mean, None).filter(|m| m.distance < rules.match_distance);
                Verdict::IdentityMismatch {
                    distance: median,
                    best_distance: best.as_ref().map(|m| m.distance),
                    best_match: best.map(|m| m.id),
                    good_frames: track.good.len(),
                }
            }
        };
        Outcome {
            transaction_id: self.transaction_id.clone(),
            claimed_id: self.claimed_id.clone(),
            camera: self.camera.clone(),
            at: now,
            verdict,
            embedding: Some(mean),
            bbox: Some(track.bbox),
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

/// A settlement face remembered for card-lending checks.
#[derive(Debug, Clone)]
pub struct SettledFace {
    pub transaction_id: String,
    pub claimed_id: String,
    pub at: SystemTime,
    pub embedding: Embedding,
}

/// Earlier settlements by the same face under a different claimed id, within the sharing window.
pub fn shared_identity<'a>(
    history: &'a [SettledFace],
    outcome: &Outcome,
    rules: &SettlementRules,
) -> Vec<&'a SettledFace> {
    let Some(embedding) = &outcome.embedding else { return Vec::new() };
    history
        .iter()
        .filter(|h| h.claimed_id != outcome.claimed_id)
        .filter(|h| outcome.at.duration_since(h.at).unwrap_or_default() <= rules.sharing_window)
        .filter(|h| crate::analyze::embedder::distance(&h.embedding, embedding) < rules.match_distance)
        .collect()
}
