//! Face quality: is this face good enough to enrol, or to decide on? Size, sharpness (variance of the
//! Laplacian of the aligned chip), detector score and frontal pose (eye-line roll, nose offset as a yaw
//! proxy).

use image::RgbImage;

use super::face_detector::Face;

/// Thresholds (from config `[faces]`).
#[derive(Debug, Clone, Copy)]
pub struct QualityThresholds {
    pub min_face_px: f32,
    pub min_sharpness: f64,
    pub min_score: f32,
    pub max_roll_deg: f32,
    /// |nose − eye midpoint| / eye distance, horizontally.
    pub max_yaw_ratio: f32,
}

impl Default for QualityThresholds {
    fn default() -> Self {
        QualityThresholds {
            min_face_px: 80.0,
            min_sharpness: 60.0,
            min_score: 0.6,
            max_roll_deg: 25.0,
            max_yaw_ratio: 0.35,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Quality {
    pub size_px: f32,
    pub sharpness: f64,
    pub score: f32,
    pub roll_deg: f32,
    pub yaw_ratio: f32,
    /// What fails, in words; empty when the face is good.
    pub problems: Vec<String>,
}

impl Quality {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// A 0..1 summary used to rank frames and record enrolment quality.
    pub fn score01(&self, t: &QualityThresholds) -> f32 {
        let size = (self.size_px / (2.0 * t.min_face_px)).min(1.0);
        let sharp = (self.sharpness / (3.0 * t.min_sharpness)).min(1.0) as f32;
        let pose = 1.0 - (self.yaw_ratio / t.max_yaw_ratio).min(1.0) * 0.5;
        (size + sharp + self.score.min(1.0) + pose) / 4.0
    }
}

/// Variance of the 4-neighbour Laplacian of the chip's luma: low when blurred.
pub fn sharpness(chip: &RgbImage) -> f64 {
    let (w, h) = (chip.width() as usize, chip.height() as usize);
    let luma: Vec<f64> = chip
        .pixels()
        .map(|p| 0.299 * f64::from(p.0[0]) + 0.587 * f64::from(p.0[1]) + 0.114 * f64::from(p.0[2]))
        .collect();
    let mut values = Vec::with_capacity(w * h);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let c = luma[y * w + x];
            values.push(
                luma[y * w + x - 1] + luma[y * w + x + 1] + luma[(y - 1) * w + x] + luma[(y + 1) * w + x] - 4.0 * c,
            );
        }
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64
}

pub fn assess(face: &Face, chip: &RgbImage, t: &QualityThresholds) -> Quality {
    let b = face.bbox;
    let size_px = (b[2] - b[0]).min(b[3] - b[1]);
    let [le, re, nose, _, _] = face.landmarks;
    let (dx, dy) = (re[0] - le[0], re[1] - le[1]);
    let roll_deg = dy.atan2(dx).to_degrees();
    let eye_distance = dx.hypot(dy).max(1.0);
    let yaw_ratio = ((nose[0] - (le[0] + re[0]) / 2.0) / eye_distance).abs();
    let sharp = sharpness(chip);
    let mut problems = Vec::new();
    if size_px < t.min_face_px {
        problems.push(format!("face too small: {size_px:.0} px, at least {:.0} needed", t.min_face_px));
    }
    if sharp < t.min_sharpness {
        problems.push(format!("face too blurred: sharpness {sharp:.0}, at least {:.0} needed", t.min_sharpness));
    }
    if face.score < t.min_score {
        problems.push(format!("face unclear: detector score {:.2}, at least {:.2} needed", face.score, t.min_score));
    }
    if roll_deg.abs() > t.max_roll_deg || yaw_ratio > t.max_yaw_ratio {
        problems.push(format!(
            "face not frontal: head tilted {roll_deg:.0}°, turned {yaw_ratio:.2} (at most {:.0}° and {:.2})",
            t.max_roll_deg, t.max_yaw_ratio
        ));
    }
    Quality { size_px, sharpness: sharp, score: face.score, roll_deg, yaw_ratio, problems }
}
