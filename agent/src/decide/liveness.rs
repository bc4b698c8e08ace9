//! Liveness at the settlement window (`[liveness]`, off by default): is the face at the window a live
//! person, or a photo or a phone screen held up to the camera? A pure function of one face track's
//! landmarks over the watch.
//!
//! The cue is temporal. A print or a screen is a rigid plane: whatever the hand does (shake, tilt, turn,
//! bring it nearer), its five landmarks (eyes, nose tip, mouth corners) move from frame to frame by one
//! 2-D transform, near enough an affine one at a window's distance, or do not move at all. A live face
//! is not a plane: turning or nodding moves the nose against the eyes and mouth (parallax), speaking
//! and smiling move the mouth corners. So for every pair of frames, the best affine map of one frame's
//! landmarks onto the other's is fitted, and what it leaves unexplained, in eye distances, is the
//! *deformation* of that pair; the track's deformation is the 75th percentile over its pairs (a pair
//! straddling a movement counts, one misplaced detection does not). The spoof score falls from 1 (flat
//! and rigid, or still) to 0 as the deformation reaches [`LIVE_DEFORMATION`].
//!
//! What it cannot tell (docs/models.md, "Liveness at the window"): a live person standing perfectly
//! still looks like a still print, and a blink does not move these five points. That is why liveness
//! is off by default, why the score only adds `settlement_spoof_suspected` beside the verdict, and why
//! it never changes the verdict itself.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// A face's five landmarks (left eye, right eye, nose tip, left and right mouth corners), in pixels.
pub type Landmarks = [[f32; 2]; 5];

/// Deformation (in eye distances) at which the spoof score reaches 0. Measured (docs/models.md): over
/// 2 s, generated recaptures (held in a hand, tilted, or still) stay under 0.02 in 77–100 % of windows
/// (the detector's landmark noise); a face turning its head exceeds 0.04; but people talking at a desk
/// without turning stay under 0.02 in 69–75 % of windows too, which is what makes this cue weak.
pub const LIVE_DEFORMATION: f32 = 0.04;

/// Landmarks moving less than this (RMS, in eye distances, between frames of the watch) is a still face.
pub const STILL_MOTION: f32 = 0.04;

/// The most landmark frames a track keeps (the latest): a few seconds at the window's analysis rate.
pub const MAX_SAMPLES: usize = 48;

/// `[liveness]` as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LivenessRules {
    /// `settlement_spoof_suspected` when a face's spoof score is at or above this.
    pub spoof_threshold: f32,
    /// Landmark frames of a face needed before it is assessed.
    pub min_frames: usize,
    /// Time those frames must span: a person needs a moment to move at all.
    pub min_span: Duration,
}

impl Default for LivenessRules {
    fn default() -> Self {
        LivenessRules { spoof_threshold: 0.5, min_frames: 10, min_span: Duration::from_secs(2) }
    }
}

/// `[liveness]` as the configuration file spells it (`config` embeds it).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LivenessSettings {
    /// Assess the liveness of settlement faces (default false). Never a reason to accuse on its own:
    /// it adds evidence to the verdict, and `settlement_spoof_suspected` beside it.
    #[serde(default)]
    pub enabled: bool,
    /// `settlement_spoof_suspected` at or above this spoof score, 0.05..1 (default 0.5: a deformation
    /// under 0.02 eye distances).
    #[serde(default = "default_spoof_threshold")]
    pub spoof_threshold: f32,
    /// Landmark frames of a face needed before it is assessed, 3..48 (default 10).
    #[serde(default = "default_min_frames")]
    pub min_frames: usize,
    /// Seconds those frames must span, 0.5..20 (default 2).
    #[serde(default = "default_min_secs")]
    pub min_secs: f64,
}

impl Default for LivenessSettings {
    fn default() -> Self {
        LivenessSettings {
            enabled: false,
            spoof_threshold: default_spoof_threshold(),
            min_frames: default_min_frames(),
            min_secs: default_min_secs(),
        }
    }
}

fn default_spoof_threshold() -> f32 {
    LivenessRules::default().spoof_threshold
}

fn default_min_frames() -> usize {
    LivenessRules::default().min_frames
}

fn default_min_secs() -> f64 {
    LivenessRules::default().min_span.as_secs_f64()
}

impl LivenessSettings {
    /// The rules when enabled.
    pub fn rules(&self) -> Option<LivenessRules> {
        self.enabled.then(|| LivenessRules {
            spoof_threshold: self.spoof_threshold,
            min_frames: self.min_frames,
            min_span: Duration::from_secs_f64(self.min_secs.clamp(0.0, 3600.0)),
        })
    }

    /// Every problem with `[liveness]` (checked whether enabled or not: a wrong value waiting to be
    /// switched on is still wrong).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !(0.05..=1.0).contains(&self.spoof_threshold) {
            problems.push(("spoof_threshold", format!("must be 0.05..1, got {}", self.spoof_threshold)));
        }
        if !(3..=MAX_SAMPLES).contains(&self.min_frames) {
            problems.push(("min_frames", format!("must be 3..{MAX_SAMPLES}, got {}", self.min_frames)));
        }
        if !(0.5..=20.0).contains(&self.min_secs) {
            problems.push(("min_secs", format!("must be 0.5..20 seconds, got {}", self.min_secs)));
        }
        problems
    }
}

/// One frame's landmarks of a tracked face.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: SystemTime,
    pub landmarks: Landmarks,
}

/// What the landmarks showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cue {
    /// Fewer frames than `min_frames`, or spanning less than `min_span`: no score.
    TooFewFrames,
    /// The landmarks hardly moved: a print on a stand, a screen held still — or a very still person.
    Still,
    /// They moved, by one planar transform: a print or a screen in a hand.
    RigidPlanarMotion,
    /// They moved against each other: a face turning, nodding, speaking.
    NonRigidMotion,
}

/// A face's liveness evidence: the figures, the cue, the score and whether it is above the threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Liveness {
    /// 0 (live) to 1 (flat and rigid, or still); None with too few frames.
    pub score: Option<f32>,
    pub suspected: bool,
    pub threshold: f32,
    pub cue: Cue,
    /// Landmark frames assessed, and the time they span.
    pub frames: usize,
    pub span_secs: f32,
    /// Landmark motion left after the best planar (affine) fit, in eye distances (75th percentile
    /// over pairs of frames).
    pub deformation: f32,
    /// Landmark motion between frames, in eye distances (75th percentile over pairs of frames).
    pub motion: f32,
}

impl LivenessRules {
    /// Whether `samples` are enough to assess.
    pub fn enough(&self, samples: &[Sample]) -> bool {
        samples.len() >= self.min_frames && span(samples) >= self.min_span
    }

    /// The liveness evidence of a face from its landmark frames.
    pub fn assess(&self, samples: &[Sample]) -> Liveness {
        let (deformation, motion) = deformation_and_motion(samples);
        let span_secs = span(samples).as_secs_f32();
        if !self.enough(samples) || !deformation.is_finite() {
            return Liveness {
                score: None,
                suspected: false,
                threshold: self.spoof_threshold,
                cue: Cue::TooFewFrames,
                frames: samples.len(),
                span_secs,
                deformation: if deformation.is_finite() { deformation } else { 0.0 },
                motion: if motion.is_finite() { motion } else { 0.0 },
            };
        }
        let score = (1.0 - deformation / LIVE_DEFORMATION).clamp(0.0, 1.0);
        let cue = if motion < STILL_MOTION {
            Cue::Still
        } else if score >= self.spoof_threshold {
            Cue::RigidPlanarMotion
        } else {
            Cue::NonRigidMotion
        };
        Liveness {
            score: Some(score),
            suspected: score >= self.spoof_threshold,
            threshold: self.spoof_threshold,
            cue,
            frames: samples.len(),
            span_secs,
            deformation,
            motion,
        }
    }
}

fn span(samples: &[Sample]) -> Duration {
    match (samples.first(), samples.last()) {
        (Some(a), Some(b)) => b.at.duration_since(a.at).unwrap_or_default(),
        _ => Duration::ZERO,
    }
}

/// (deformation, motion) of a track's landmark frames, in eye distances; NaN with fewer than two
/// frames or no measurable eye distance.
pub fn deformation_and_motion(samples: &[Sample]) -> (f32, f32) {
    let eyes: Vec<f32> = samples.iter().map(|s| distance(s.landmarks[0], s.landmarks[1])).collect();
    let eye_distance = eyes.iter().sum::<f32>() / eyes.len().max(1) as f32;
    if samples.len() < 2 || eye_distance.is_nan() || eye_distance < 1.0 {
        return (f32::NAN, f32::NAN);
    }
    let mut residuals = Vec::with_capacity(samples.len() * (samples.len() - 1) / 2);
    let mut motions = Vec::with_capacity(residuals.capacity());
    for (i, a) in samples.iter().enumerate() {
        for b in &samples[i + 1..] {
            if let Some(r) = affine_residual(&a.landmarks, &b.landmarks) {
                residuals.push(r / eye_distance);
            }
            motions.push(rms(a.landmarks.iter().zip(&b.landmarks).map(|(p, q)| distance(*p, *q))) / eye_distance);
        }
    }
    (percentile(&mut residuals, 0.75), percentile(&mut motions, 0.75))
}

/// RMS distance (pixels) between `to` and the best affine map of `from` onto it; None when `from`'s
/// points are (nearly) collinear.
pub fn affine_residual(from: &Landmarks, to: &Landmarks) -> Option<f32> {
    let centroid = |l: &Landmarks| {
        let n = l.len() as f64;
        (l.iter().map(|p| f64::from(p[0])).sum::<f64>() / n, l.iter().map(|p| f64::from(p[1])).sum::<f64>() / n)
    };
    let ((fx, fy), (tx, ty)) = (centroid(from), centroid(to));
    let p: Vec<(f64, f64)> = from.iter().map(|q| (f64::from(q[0]) - fx, f64::from(q[1]) - fy)).collect();
    let q: Vec<(f64, f64)> = to.iter().map(|q| (f64::from(q[0]) - tx, f64::from(q[1]) - ty)).collect();
    // Least squares for the linear part L (q ≈ L p, centred): L = (Σ q pᵀ)(Σ p pᵀ)⁻¹.
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    let (mut qxpx, mut qxpy, mut qypx, mut qypy) = (0.0, 0.0, 0.0, 0.0);
    for ((px, py), (qx, qy)) in p.iter().zip(&q) {
        sxx += px * px;
        sxy += px * py;
        syy += py * py;
        qxpx += qx * px;
        qxpy += qx * py;
        qypx += qy * px;
        qypy += qy * py;
    }
    let det = sxx * syy - sxy * sxy;
    if det <= 1e-9 * (sxx * syy).max(1e-12) {
        return None;
    }
    let (i11, i12, i22) = (syy / det, -sxy / det, sxx / det);
    let (a, b) = (qxpx * i11 + qxpy * i12, qxpx * i12 + qxpy * i22);
    let (c, d) = (qypx * i11 + qypy * i12, qypx * i12 + qypy * i22);
    let sum: f64 = p
        .iter()
        .zip(&q)
        .map(|((px, py), (qx, qy))| (a * px + b * py - qx).powi(2) + (c * px + d * py - qy).powi(2))
        .sum();
    Some((sum / p.len() as f64).sqrt() as f32)
}

fn distance(a: [f32; 2], b: [f32; 2]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

fn rms(values: impl Iterator<Item = f32>) -> f32 {
    let (sum, n) = values.fold((0.0f32, 0usize), |(s, n), v| (s + v * v, n + 1));
    (sum / n.max(1) as f32).sqrt()
}

/// The `q`-quantile (nearest rank) of `values`; NaN when empty.
fn percentile(values: &mut [f32], q: f32) -> f32 {
    if values.is_empty() {
        return f32::NAN;
    }
    values.sort_by(f32::total_cmp);
    let i = ((values.len() - 1) as f32 * q).round() as usize;
    values[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frontal face's landmarks, eye distance 60 px, centred on (300, 200).
    const FACE: Landmarks = [[270.0, 180.0], [330.0, 180.0], [300.0, 215.0], [275.0, 245.0], [325.0, 245.0]];

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_000 + ms)
    }

    fn map(l: &Landmarks, f: impl Fn(f32, f32) -> (f32, f32)) -> Landmarks {
        l.map(|[x, y]| {
            let (x, y) = f(x, y);
            [x, y]
        })
    }

    /// Frames 250 ms apart of `face(i)`.
    fn samples(n: usize, face: impl Fn(usize) -> Landmarks) -> Vec<Sample> {
        (0..n).map(|i| Sample { at: at(i as u64 * 250), landmarks: face(i) }).collect()
    }

    #[test]
    fn a_plane_moved_by_any_affine_map_leaves_no_residual() {
        let moved = map(&FACE, |x, y| (1.1 * x + 0.2 * y + 13.0, -0.1 * x + 0.9 * y - 7.0));
        assert!(affine_residual(&FACE, &moved).unwrap() < 1e-3);
        // The nose alone moving 6 px (a head turning) is left over.
        let mut turned = FACE;
        turned[2][0] += 6.0;
        assert!(affine_residual(&FACE, &turned).unwrap() > 1.5);
        assert!(affine_residual(&[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]], &FACE).is_none());
    }

    /// A print shaken, tilted and brought nearer: rigid planar motion, suspected. A head turning from side
    /// to side: not. A face that does not move at all: still, suspected (a still person is
    /// indistinguishable; the reason liveness never decides a verdict).
    #[test]
    fn rigid_motion_and_stillness_are_suspected_a_turning_head_is_not() {
        let rules = LivenessRules::default();
        let print = samples(12, |i| {
            let (a, s, t) = ((i as f32 * 0.7).sin() * 0.08, 1.0 + i as f32 * 0.02, (i as f32 * 1.3).cos() * 9.0);
            // Perspective-free tilt: a horizontal squeeze as the print turns.
            map(&FACE, |x, y| {
                (s * (x * a.cos() - y * a.sin()) * (1.0 - 0.01 * i as f32) + t, s * (x * a.sin() + y * a.cos()))
            })
        });
        let l = rules.assess(&print);
        assert_eq!((l.cue, l.suspected), (Cue::RigidPlanarMotion, true), "{l:?}");
        assert!(l.score.unwrap() > 0.95, "{l:?}");
        let head = samples(12, |i| {
            let mut f = map(&FACE, |x, y| (x + i as f32 * 2.0, y));
            f[2][0] += (i as f32 * 0.9).sin() * 8.0;
            f[3][1] += (i as f32 * 1.7).sin() * 3.0;
            f
        });
        let l = rules.assess(&head);
        assert_eq!((l.cue, l.suspected), (Cue::NonRigidMotion, false), "{l:?}");
        let still = rules.assess(&samples(12, |_| FACE));
        assert_eq!((still.cue, still.suspected, still.score), (Cue::Still, true, Some(1.0)), "{still:?}");
    }

    #[test]
    fn settings_are_off_by_default_and_checked() {
        assert_eq!(LivenessSettings::default().rules(), None);
        let on = LivenessSettings { enabled: true, ..Default::default() };
        assert_eq!(on.rules(), Some(LivenessRules::default()));
        assert!(on.problems().is_empty());
        let bad = LivenessSettings { spoof_threshold: 1.5, min_frames: 2, min_secs: 0.0, ..on };
        let fields: Vec<&str> = bad.problems().iter().map(|p| p.0).collect();
        assert_eq!(fields, ["spoof_threshold", "min_frames", "min_secs"]);
    }

    #[test]
    fn too_few_frames_or_too_short_a_span_gives_no_score() {
        let rules = LivenessRules::default();
        let l = rules.assess(&samples(5, |_| FACE));
        assert_eq!((l.cue, l.score, l.suspected, l.frames), (Cue::TooFewFrames, None, false, 5));
        // Twelve frames within a second: too short for a person to move.
        let quick: Vec<Sample> = (0..12).map(|i| Sample { at: at(i * 80), landmarks: FACE }).collect();
        assert!(!rules.enough(&quick));
        assert_eq!(rules.assess(&quick).score, None);
        assert_eq!(rules.assess(&[]).cue, Cue::TooFewFrames);
    }
}
