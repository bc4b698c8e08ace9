//! Tamper detection over a camera's frames, with hysteresis: a condition must hold for its configured
//! time before it is raised, and be gone as long before it is cleared.
//!
//! - covered: the picture is uniform (spatial spread of a 64×36 luma thumbnail below a few grey
//!   levels): a hand or cloth over the lens, spray, a blacked-out stream. A view that is uniform by
//!   nature (a bare counter or wall, confirmed by an operator with `vigil reference --uniform`) counts as
//!   covered only when its brightness moves away from the reference's by more than
//!   `COVERED_BRIGHTNESS` grey levels; view-moved and frozen detection are off for it (no edges to
//!   compare, and a bare wall may legitimately not change).
//! - frozen: consecutive frames are the same at 160×90 sampled points (no averaging): fewer than 5 % of
//!   them differ by 3 grey levels or more. A live scene's sensor noise changes about half of them from
//!   frame to frame even when nothing moves; a stuck or replayed picture, re-encoded, changes almost
//!   none (measured on generated clips: ≥ 50 % live, ≤ 2.3 % frozen).
//! - moved: the edge structure of the view no longer correlates with the reference frame's (zero-mean
//!   normalised cross-correlation of gradient magnitudes, which ignores brightness and contrast, so
//!   lights going on or off do not count).
//!
//! Pure: frames and their times in, decisions out; tests drive it with generated clips.

use std::time::{Duration, SystemTime};

use image::RgbImage;
use serde::Serialize;

use super::settings::TamperSettings as Tamper;

const THUMB_W: usize = 64;
const THUMB_H: usize = 36;
const EDGE_W: usize = 128;
const EDGE_H: usize = 72;
const SAMPLE_W: usize = 160;
const SAMPLE_H: usize = 90;
/// Standard deviation of the luma thumbnail, in grey levels, below which the picture is uniform.
const UNIFORM_STD: f64 = 6.0;
/// With a uniform reference view, a uniform picture this much darker or brighter is covered.
const COVERED_BRIGHTNESS: f64 = 30.0;
/// A sample point has changed when its luma moved by at least this many grey levels.
const CHANGED_LEVELS: i16 = 3;
/// Below this share of changed sample points, two frames are the same picture.
const FROZEN_CHANGED_SHARE: f64 = 0.05;
/// A gap between frames longer than this (restart, outage) resets the timers.
const MAX_GAP: Duration = Duration::from_secs(60);

/// Luma (BT.601) box-averaged down to `w`×`h`. Integer sums of the weights in thousandths, one pass
/// over each block's contiguous rows: this runs on every frame tamper detection looks at.
fn luma_thumbnail(img: &RgbImage, w: usize, h: usize) -> Vec<f64> {
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let raw = img.as_raw();
    let mut out = vec![0.0; w * h];
    for ty in 0..h {
        let (y0, y1) = (ty * ih / h, ((ty + 1) * ih / h).max(ty * ih / h + 1).min(ih));
        for tx in 0..w {
            let (x0, x1) = (tx * iw / w, ((tx + 1) * iw / w).max(tx * iw / w + 1).min(iw));
            let mut sum = 0u64;
            for y in y0..y1 {
                let row = &raw[(y * iw + x0) * 3..(y * iw + x1) * 3];
                sum += row
                    .chunks_exact(3)
                    .map(|p| 299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2]))
                    .map(u64::from)
                    .sum::<u64>();
            }
            out[ty * w + tx] = sum as f64 / 1000.0 / ((y1.saturating_sub(y0)) * (x1.saturating_sub(x0))).max(1) as f64;
        }
    }
    out
}

/// The `w/2`×`h/2` thumbnail of a `w`×`h` one, each value the mean of 2×2: the same blocks
/// [`luma_thumbnail`] would average at half the size when the frame is at least `w`×`h` (its block
/// edges, `tx·iw/w`, fall on every other edge of the finer grid), for half the reading.
fn halved(thumb: &[f64], w: usize, h: usize, img: &RgbImage) -> Vec<f64> {
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    if iw < w || ih < h || w % 2 != 0 || h % 2 != 0 {
        return luma_thumbnail(img, w / 2, h / 2);
    }
    // Pixel counts differ between fine blocks when sizes do not divide: weight by them.
    let span = |i: usize, n: usize, of: usize| ((i + 1) * of / n - i * of / n) as f64;
    let (hw, hh) = (w / 2, h / 2);
    let mut out = vec![0.0; hw * hh];
    for ty in 0..hh {
        for tx in 0..hw {
            let (mut sum, mut count) = (0.0, 0.0);
            for (y, x) in [(2 * ty, 2 * tx), (2 * ty, 2 * tx + 1), (2 * ty + 1, 2 * tx), (2 * ty + 1, 2 * tx + 1)] {
                let n = span(y, h, ih) * span(x, w, iw);
                sum += thumb[y * w + x] * n;
                count += n;
            }
            out[ty * hw + tx] = sum / count;
        }
    }
    out
}

fn mean_of(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// The mean luma of a reference that is uniform, None for a textured one.
fn uniform_mean(reference: &RgbImage) -> Option<f64> {
    let t = luma_thumbnail(reference, THUMB_W, THUMB_H);
    (std_dev(&t) < UNIFORM_STD).then(|| mean_of(&t))
}

fn std_dev(v: &[f64]) -> f64 {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

/// Gradient magnitude of a thumbnail (central differences), the signature compared for `moved`.
fn edges(img: &RgbImage) -> Vec<f64> {
    edges_of(&luma_thumbnail(img, EDGE_W, EDGE_H))
}

/// [`edges`] of a frame's `EDGE_W`×`EDGE_H` luma thumbnail.
fn edges_of(t: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; EDGE_W * EDGE_H];
    for y in 1..EDGE_H - 1 {
        for x in 1..EDGE_W - 1 {
            let gx = t[y * EDGE_W + x + 1] - t[y * EDGE_W + x - 1];
            let gy = t[(y + 1) * EDGE_W + x] - t[(y - 1) * EDGE_W + x];
            out[y * EDGE_W + x] = gx.hypot(gy);
        }
    }
    out
}

/// Zero-mean normalised cross-correlation, -1..1 (0 when either side is flat).
fn zncc(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut num, mut da, mut db) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        num += (x - ma) * (y - mb);
        da += (x - ma).powi(2);
        db += (y - mb).powi(2);
    }
    if da == 0.0 || db == 0.0 { 0.0 } else { num / (da * db).sqrt() }
}

/// Luma of pixels at a fixed grid, unaveraged (so sensor noise survives).
fn samples(img: &RgbImage) -> Vec<i16> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut out = Vec::with_capacity(SAMPLE_W * SAMPLE_H);
    for sy in 0..SAMPLE_H {
        for sx in 0..SAMPLE_W {
            let (x, y) = ((sx * w / SAMPLE_W) as u32, (sy * h / SAMPLE_H) as u32);
            let [r, g, b] = img.get_pixel(x, y).0;
            out.push(((299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b)) / 1000) as i16);
        }
    }
    out
}

/// Share of sample points that changed between two frames.
fn changed_share(a: &[i16], b: &[i16]) -> f64 {
    let changed = a.iter().zip(b).filter(|(x, y)| (**x - **y).abs() >= CHANGED_LEVELS).count();
    changed as f64 / a.len() as f64
}

/// The measurements of one frame, exposed for tests and diagnostics.
#[derive(Debug, Clone, Copy)]
pub struct Measures {
    pub uniform: bool,
    pub identical_to_previous: bool,
    /// Similarity to the reference frame, when there is one.
    pub similarity: Option<f64>,
}

/// Hysteresis state of one condition.
#[derive(Debug, Default)]
struct Condition {
    /// Since when the condition is seen to hold (the hold time counts from here).
    since: Option<SystemTime>,
    /// When it began, while it holds: `since`, or the earlier frame whose picture froze.
    onset: Option<SystemTime>,
    cleared_since: Option<SystemTime>,
    raised: bool,
}

impl Condition {
    /// Feeds whether the condition holds at `t`; returns Some(true) when it becomes raised and
    /// Some(false) when it becomes cleared. A condition that starts holding at `t` began at `began`
    /// (`t`, or earlier when the frame only shows what an earlier one started: a picture that froze).
    fn update(&mut self, holds: bool, t: SystemTime, began: SystemTime, hold: Duration) -> Option<bool> {
        let elapsed = |since: SystemTime| t.duration_since(since).unwrap_or(Duration::ZERO);
        if holds {
            self.cleared_since = None;
            if self.since.is_none() {
                self.onset = Some(began.min(t));
            }
            let since = *self.since.get_or_insert(t);
            if !self.raised && elapsed(since) >= hold {
                self.raised = true;
                return Some(true);
            }
        } else {
            self.since = None;
            if self.raised {
                let since = *self.cleared_since.get_or_insert(t);
                if elapsed(since) >= hold {
                    self.raised = false;
                    self.cleared_since = None;
                    return Some(false);
                }
            }
        }
        None
    }
}

/// Tamper detector of one camera.
pub struct TamperDetector {
    settings: Tamper,
    reference: Option<Vec<f64>>,
    /// Mean luma of a reference view that is uniform by nature (None for a textured reference).
    uniform_reference: Option<f64>,
    previous: Option<Vec<i16>>,
    last_time: Option<SystemTime>,
    covered: Condition,
    frozen: Condition,
    moved: Condition,
}

/// A change of tamper state (`decide::tamper` makes decisions of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TamperChange {
    Raised(TamperKind),
    Cleared(TamperKind),
}

impl TamperChange {
    /// The condition raised or cleared.
    pub fn kind(self) -> TamperKind {
        match self {
            TamperChange::Raised(kind) | TamperChange::Cleared(kind) => kind,
        }
    }
}

/// How a camera was tampered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TamperKind {
    /// The picture is uniform: lens covered, sprayed, or the stream blacked out.
    Covered,
    /// The picture does not change at all: a stuck encoder or a replayed still.
    Frozen,
    /// The view no longer looks like the camera's reference frame: turned or moved away.
    Moved,
}

impl TamperKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TamperKind::Covered => "covered",
            TamperKind::Frozen => "frozen",
            TamperKind::Moved => "moved",
        }
    }
}

impl TamperDetector {
    pub fn new(settings: Tamper, reference: Option<&RgbImage>) -> TamperDetector {
        TamperDetector {
            settings,
            reference: reference.map(edges),
            uniform_reference: reference.and_then(uniform_mean),
            previous: None,
            last_time: None,
            covered: Condition::default(),
            frozen: Condition::default(),
            moved: Condition::default(),
        }
    }

    pub fn has_reference(&self) -> bool {
        self.reference.is_some()
    }

    pub fn set_reference(&mut self, reference: &RgbImage) {
        self.reference = Some(edges(reference));
        self.uniform_reference = uniform_mean(reference);
    }

    /// Whether `img` is usable as a reference frame (not uniform: something to compare against).
    pub fn usable_as_reference(img: &RgbImage) -> bool {
        std_dev(&luma_thumbnail(img, THUMB_W, THUMB_H)) >= UNIFORM_STD
    }

    pub fn measure(&mut self, img: &RgbImage) -> Measures {
        // One pass over the frame: the edge thumbnail, and the uniformity thumbnail from it.
        let fine = luma_thumbnail(img, EDGE_W, EDGE_H);
        let thumbnail = halved(&fine, EDGE_W, EDGE_H, img);
        debug_assert_eq!(thumbnail.len(), THUMB_W * THUMB_H);
        let uniform = std_dev(&thumbnail) < UNIFORM_STD
            && self.uniform_reference.is_none_or(|mean| (mean_of(&thumbnail) - mean).abs() > COVERED_BRIGHTNESS);
        let current = samples(img);
        let identical_to_previous =
            self.previous.as_ref().is_some_and(|p| changed_share(p, &current) < FROZEN_CHANGED_SHARE);
        self.previous = Some(current);
        let similarity = match self.uniform_reference {
            Some(_) => None,
            None => self.reference.as_ref().map(|r| zncc(r, &edges_of(&fine))),
        };
        Measures { uniform, identical_to_previous, similarity }
    }

    /// When a condition that holds now began (its onset: the first frame showing it), None when it
    /// does not hold. Right after [`TamperDetector::observe`] raised `kind`, this is what the raise
    /// is about: the raise itself comes the condition's hold time later.
    pub fn onset(&self, kind: TamperKind) -> Option<SystemTime> {
        match kind {
            TamperKind::Covered => self.covered.since.and(self.covered.onset),
            TamperKind::Frozen => self.frozen.since.and(self.frozen.onset),
            TamperKind::Moved => self.moved.since.and(self.moved.onset),
        }
    }

    /// Feeds one frame taken at `t`; returns the state changes it causes.
    pub fn observe(&mut self, img: &RgbImage, t: SystemTime) -> Vec<TamperChange> {
        // A frozen picture is seen on the frame after the one that froze: that one is its onset.
        let previous_frame = self.last_time.filter(|last| *last <= t).unwrap_or(t);
        if let Some(last) = self.last_time {
            let gap = t.duration_since(last);
            if gap.is_err() || gap.is_ok_and(|g| g > MAX_GAP) {
                // Time went backwards or the stream was away: judge the new stretch on its own.
                self.previous = None;
                self.covered.since = None;
                self.frozen.since = None;
                self.moved.since = None;
            }
        }
        self.last_time = Some(t);
        let m = self.measure(img);
        let secs = Duration::from_secs_f64;
        let mut changes = Vec::new();
        let mut record = |change: Option<bool>, kind| match change {
            Some(true) => changes.push(TamperChange::Raised(kind)),
            Some(false) => changes.push(TamperChange::Cleared(kind)),
            None => {}
        };
        record(self.covered.update(m.uniform, t, t, secs(self.settings.covered_secs)), TamperKind::Covered);
        // A covered lens is also unchanging and unlike the reference: report the cause, not the symptoms.
        // A view uniform by nature may legitimately look unchanging: no frozen detection there.
        let frozen = m.identical_to_previous && !m.uniform && self.uniform_reference.is_none();
        record(self.frozen.update(frozen, t, previous_frame, secs(self.settings.frozen_secs)), TamperKind::Frozen);
        let moved = !m.uniform && m.similarity.is_some_and(|s| s < self.settings.moved_similarity);
        record(self.moved.update(moved, t, t, secs(self.settings.moved_secs)), TamperKind::Moved);
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn scene(shift: u32, brightness: f32, noise_seed: u32) -> RgbImage {
        RgbImage::from_fn(320, 180, |x, y| {
            let (xs, ys) = (x + shift, y + shift);
            let base = if (xs / 40 + ys / 30) % 2 == 0 { 60.0 } else { 180.0 };
            let noise = ((x.wrapping_mul(73) ^ y.wrapping_mul(151) ^ noise_seed.wrapping_mul(2654435761)) % 7) as f32;
            let v = ((base + noise) * brightness).clamp(0.0, 255.0) as u8;
            image::Rgb([v, v, v])
        })
    }

    fn run(frames: impl Iterator<Item = (f64, RgbImage)>, reference: &RgbImage) -> Vec<(f64, TamperChange)> {
        let mut d = TamperDetector::new(Tamper::default(), Some(reference));
        frames
            .flat_map(|(t, img)| {
                d.observe(&img, UNIX_EPOCH + Duration::from_secs_f64(t)).into_iter().map(move |c| (t, c))
            })
            .collect()
    }

    /// The uniformity thumbnail made from the edge thumbnail is the one measured directly, for frame
    /// sizes that divide the grids and for sizes that do not (1279×719, a 1080p frame).
    #[test]
    fn the_halved_thumbnail_is_the_direct_one() {
        for (w, h) in [(1280, 720), (1279, 719), (1920, 1080), (130, 75), (100, 50)] {
            let img = RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([(x * 7 % 251) as u8, (y * 13 % 241) as u8, ((x * y) % 239) as u8])
            });
            let fine = luma_thumbnail(&img, EDGE_W, EDGE_H);
            let halved = halved(&fine, EDGE_W, EDGE_H, &img);
            let direct = luma_thumbnail(&img, THUMB_W, THUMB_H);
            let worst = halved.iter().zip(&direct).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(worst < 1e-9, "{w}×{h}: differs by {worst}");
        }
    }

    #[test]
    fn normal_scene_with_lighting_changes_raises_nothing() {
        let reference = scene(0, 1.0, 0);
        let frames = (0..120).map(|i| (i as f64, scene(0, if i < 60 { 1.0 } else { 0.6 }, i)));
        assert_eq!(run(frames, &reference), vec![]);
    }

    #[test]
    fn covering_the_lens_raises_then_clears_covered_only() {
        let reference = scene(0, 1.0, 0);
        let black = RgbImage::from_pixel(320, 180, image::Rgb([3, 3, 3]));
        let frames = (0..60).map(|i| (i as f64, if (10..30).contains(&i) { black.clone() } else { scene(0, 1.0, i) }));
        let changes = run(frames, &reference);
        assert_eq!(
            changes,
            vec![(15.0, TamperChange::Raised(TamperKind::Covered)), (35.0, TamperChange::Cleared(TamperKind::Covered))]
        );
    }

    /// The onset is the first frame showing the condition: the raise comes its hold time later, and a
    /// clip must start before the onset to show what happened (issue 14).
    #[test]
    fn each_raised_condition_knows_its_onset() {
        let reference = scene(0, 1.0, 0);
        let black = RgbImage::from_pixel(320, 180, image::Rgb([3, 3, 3]));
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        let mut onsets = Vec::new();
        let mut d = TamperDetector::new(Tamper::default(), Some(&reference));
        for i in 0..40u32 {
            // 0-9 live, 10-19 covered, 20-29 the camera turned away, from 30 a frozen picture.
            let img = match i {
                10..20 => black.clone(),
                20..30 => scene(20, 1.0, i),
                30.. => scene(20, 1.0, 999),
                _ => scene(0, 1.0, i),
            };
            for change in d.observe(&img, at(u64::from(i))) {
                if let TamperChange::Raised(kind) = change {
                    onsets.push((kind, d.onset(kind).unwrap(), at(u64::from(i))));
                }
            }
        }
        let covered = onsets.iter().find(|o| o.0 == TamperKind::Covered).unwrap();
        assert_eq!((covered.1, covered.2), (at(10), at(15)), "covered from the first black frame, raised 5 s later");
        let moved = onsets.iter().find(|o| o.0 == TamperKind::Moved).unwrap();
        assert_eq!(moved.1, at(20), "moved from the first frame of the other view");
        // The picture froze on frame 30; frame 31 is the first seen to be the same.
        let mut d = TamperDetector::new(Tamper::default(), Some(&reference));
        let mut frozen = None;
        for i in 0..60u32 {
            let img = scene(0, 1.0, if i >= 30 { 999 } else { i });
            if d.observe(&img, at(u64::from(i))).contains(&TamperChange::Raised(TamperKind::Frozen)) {
                frozen = Some((d.onset(TamperKind::Frozen).unwrap(), at(u64::from(i))));
            }
        }
        assert_eq!(frozen, Some((at(30), at(51))), "frozen from the frame that froze, raised when seen frozen_secs");
        assert_eq!(d.onset(TamperKind::Covered), None, "a condition that does not hold has no onset");
    }

    #[test]
    fn frozen_and_moved_need_their_hold_time() {
        let reference = scene(0, 1.0, 0);
        let frozen = (0..40).map(|i| (i as f64, scene(0, 1.0, if i >= 10 { 999 } else { i })));
        assert_eq!(run(frozen, &reference), vec![(31.0, TamperChange::Raised(TamperKind::Frozen))]);
        let moved = (0..40).map(|i| (i as f64, if i >= 10 { scene(20, 1.0, i) } else { scene(0, 1.0, i) }));
        assert_eq!(run(moved, &reference), vec![(25.0, TamperChange::Raised(TamperKind::Moved))]);
    }

    #[test]
    fn a_view_uniform_by_nature_is_covered_only_when_its_brightness_changes() {
        let wall = |seed: u32| {
            RgbImage::from_fn(320, 180, |x, y| {
                let n = ((x.wrapping_mul(73) ^ y.wrapping_mul(151) ^ seed.wrapping_mul(2654435761)) % 5) as u8;
                image::Rgb([150 + n, 140 + n, 120 + n])
            })
        };
        let reference = wall(0);
        assert!(!TamperDetector::usable_as_reference(&reference), "auto-capture still refuses a uniform view");
        let black = RgbImage::from_pixel(320, 180, image::Rgb([3, 3, 3]));
        let frames = (0..60).map(|i| (i as f64, if (20..40).contains(&i) { black.clone() } else { wall(i) }));
        assert_eq!(
            run(frames, &reference),
            vec![(25.0, TamperChange::Raised(TamperKind::Covered)), (45.0, TamperChange::Cleared(TamperKind::Covered))]
        );
        // Without that reference the same bare wall is (wrongly) covered: the operator's confirmation matters.
        let mut d = TamperDetector::new(Tamper::default(), None);
        let changes: Vec<_> =
            (0..10).flat_map(|i| d.observe(&wall(i), UNIX_EPOCH + Duration::from_secs(i as u64))).collect();
        assert_eq!(changes, vec![TamperChange::Raised(TamperKind::Covered)]);
    }
}
