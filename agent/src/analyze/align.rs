//! Face alignment: the 150×150 chip dlib's face recognition network expects, cut from the image by a
//! similarity transform (rotation, uniform scale, translation) fitted to the five landmarks.
//!
//! dlib's own pipeline fits its landmarks to a mean face shape (dlib `get_face_chip_details`, padding
//! 0.25). CenterFace gives other points (eye centres, nose tip, mouth corners), so our template places
//! those same anatomical points on dlib's mean face: eye centre = mean of the six points of each eye
//! (68-point indices 36–41, 42–47), nose tip = 30, mouth corners = 48 and 54. The chip then shows the
//! face where the network was trained to see it.

use image::RgbImage;

pub const CHIP_SIZE: u32 = 150;
/// dlib's padding for face recognition chips: the chip spans the mean face plus 25 % on each side.
pub const CHIP_PADDING: f64 = 0.25;

/// dlib's mean face shape (68-point indices 17..67), normalised to the unit square of the face.
const MEAN_X: [f64; 51] = [
    0.000213256,
    0.0752622,
    0.18113,
    0.29077,
    0.393397,
    0.586856,
    0.689483,
    0.799124,
    0.904991,
    0.98004,
    0.490127,
    0.490127,
    0.490127,
    0.490127,
    0.36688,
    0.426036,
    0.490127,
    0.554217,
    0.613373,
    0.121737,
    0.187122,
    0.265825,
    0.334606,
    0.260918,
    0.182743,
    0.645647,
    0.714428,
    0.793132,
    0.858516,
    0.79751,
    0.719335,
    0.254149,
    0.340985,
    0.428858,
    0.490127,
    0.551395,
    0.639268,
    0.726104,
    0.642159,
    0.556721,
    0.490127,
    0.423532,
    0.338094,
    0.290379,
    0.428096,
    0.490127,
    0.552157,
    0.689874,
    0.553364,
    0.490127,
    0.42689,
];
const MEAN_Y: [f64; 51] = [
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891, 0.0187482, 0.038915, 0.106454, 0.203352,
    0.307009, 0.409805, 0.515625, 0.587326, 0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852,
    0.231733, 0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099, 0.780233, 0.745405,
    0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805, 0.902192, 0.909281, 0.902192, 0.864805, 0.784792,
    0.778746, 0.785343, 0.778746, 0.784792, 0.824182, 0.831803, 0.824182,
];

/// Where the five CenterFace landmarks sit in a [`CHIP_SIZE`] chip, in chip pixels.
pub fn chip_template() -> [[f64; 2]; 5] {
    let mean_of = |from: usize, to: usize| {
        let n = (to - from + 1) as f64;
        let x: f64 = (from..=to).map(|i| MEAN_X[i - 17]).sum::<f64>() / n;
        let y: f64 = (from..=to).map(|i| MEAN_Y[i - 17]).sum::<f64>() / n;
        [x, y]
    };
    let point = |i: usize| [MEAN_X[i - 17], MEAN_Y[i - 17]];
    let face = [mean_of(36, 41), mean_of(42, 47), point(30), point(48), point(54)];
    let size = f64::from(CHIP_SIZE);
    face.map(|[x, y]| {
        [(CHIP_PADDING + x) / (1.0 + 2.0 * CHIP_PADDING) * size, (CHIP_PADDING + y) / (1.0 + 2.0 * CHIP_PADDING) * size]
    })
}

/// `x' = a·x − b·y + tx`, `y' = b·x + a·y + ty`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a: f64,
    pub b: f64,
    pub tx: f64,
    pub ty: f64,
}

impl Similarity {
    pub fn apply(&self, [x, y]: [f64; 2]) -> [f64; 2] {
        [self.a * x - self.b * y + self.tx, self.b * x + self.a * y + self.ty]
    }

    /// Scale factor of the transform.
    pub fn scale(&self) -> f64 {
        self.a.hypot(self.b)
    }
}

/// Least-squares similarity mapping `from[i]` onto `to[i]` (Umeyama without reflection).
pub fn fit_similarity(from: &[[f64; 2]], to: &[[f64; 2]]) -> Similarity {
    let n = from.len() as f64;
    let mean = |pts: &[[f64; 2]]| pts.iter().fold([0.0, 0.0], |acc, p| [acc[0] + p[0] / n, acc[1] + p[1] / n]);
    let (mf, mt) = (mean(from), mean(to));
    let (mut sxx, mut sxy, mut var) = (0.0, 0.0, 0.0);
    for (f, t) in from.iter().zip(to) {
        let (fx, fy) = (f[0] - mf[0], f[1] - mf[1]);
        let (tx, ty) = (t[0] - mt[0], t[1] - mt[1]);
        sxx += fx * tx + fy * ty;
        sxy += fx * ty - fy * tx;
        var += fx * fx + fy * fy;
    }
    if var == 0.0 {
        return Similarity { a: 1.0, b: 0.0, tx: mt[0] - mf[0], ty: mt[1] - mf[1] };
    }
    let (a, b) = (sxx / var, sxy / var);
    Similarity { a, b, tx: mt[0] - (a * mf[0] - b * mf[1]), ty: mt[1] - (b * mf[0] + a * mf[1]) }
}

/// The aligned chip for a face with `landmarks` (image pixels). Each chip pixel averages k×k bilinear
/// samples, k the chip-to-image scale rounded up, so a large face is low-pass filtered rather than
/// aliased (dlib downsamples through an image pyramid for the same reason).
pub fn extract_chip(img: &RgbImage, landmarks: &[[f32; 2]; 5]) -> RgbImage {
    let to: Vec<[f64; 2]> = landmarks.iter().map(|p| [f64::from(p[0]), f64::from(p[1])]).collect();
    let chip_to_image = fit_similarity(&chip_template(), &to);
    let k = chip_to_image.scale().ceil().clamp(1.0, 8.0) as usize;
    // The transform is affine: a sub-sample's image position is its chip pixel's plus a fixed offset.
    let (a, b) = (chip_to_image.a, chip_to_image.b);
    let offsets: Vec<[f64; 2]> = (0..k * k)
        .map(|i| {
            let u = ((i % k) as f64 + 0.5) / k as f64 - 0.5;
            let v = ((i / k) as f64 + 0.5) / k as f64 - 0.5;
            [a * u - b * v, b * u + a * v]
        })
        .collect();
    let mut chip = RgbImage::new(CHIP_SIZE, CHIP_SIZE);
    let inv = 1.0 / (k * k) as f64;
    for (cx, cy, pixel) in chip.enumerate_pixels_mut() {
        let [x, y] = chip_to_image.apply([f64::from(cx), f64::from(cy)]);
        let mut acc = [0.0; 3];
        for [dx, dy] in &offsets {
            sample(img, x + dx, y + dy, &mut acc);
        }
        // Non-negative, so adding a half and truncating rounds (f64::round is a libm call here).
        pixel.0 = acc.map(|v| (v * inv + 0.5).min(255.0) as u8);
    }
    chip
}

/// Adds the bilinear sample of `img` at (`x`, `y`) to `acc`, pixel centres at integer coordinates.
/// Outside the image is black, as in dlib's chips (a face cut by the frame edge must not be completed
/// with smeared edge pixels).
#[inline(always)]
fn sample(img: &RgbImage, x: f64, y: f64, acc: &mut [f64; 3]) {
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    let src = img.as_raw();
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (x0, y0) = (x0 as i64, y0 as i64);
    let mut add = |p00: &[u8], p10: &[u8], p01: &[u8], p11: &[u8]| {
        for c in 0..3 {
            let top = f64::from(p00[c]) * (1.0 - fx) + f64::from(p10[c]) * fx;
            let bottom = f64::from(p01[c]) * (1.0 - fx) + f64::from(p11[c]) * fx;
            acc[c] += top * (1.0 - fy) + bottom * fy;
        }
    };
    if x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h {
        // All four neighbours inside: two 6-byte runs of adjacent rows.
        let i = ((y0 * w + x0) * 3) as usize;
        let j = i + (w * 3) as usize;
        let (upper, lower) = (&src[i..i + 6], &src[j..j + 6]);
        add(&upper[..3], &upper[3..], &lower[..3], &lower[3..]);
    } else {
        let at = |xi: i64, yi: i64| -> [u8; 3] {
            if xi < 0 || yi < 0 || xi >= w || yi >= h {
                return [0; 3];
            }
            let i = ((yi * w + xi) * 3) as usize;
            [src[i], src[i + 1], src[i + 2]]
        };
        add(&at(x0, y0), &at(x0 + 1, y0), &at(x0, y0 + 1), &at(x0 + 1, y0 + 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_is_a_plausible_frontal_face() {
        let t = chip_template();
        // Eyes level and symmetric about the nose; mouth below the nose; all inside the chip.
        assert!((t[0][1] - t[1][1]).abs() < 1e-9);
        assert!(((t[0][0] + t[1][0]) / 2.0 - t[2][0]).abs() < 0.5);
        assert!(t[3][1] > t[2][1] && t[2][1] > t[0][1]);
        assert!(t.iter().flatten().all(|v| (0.0..150.0).contains(v)));
    }

    #[test]
    fn fit_recovers_a_known_similarity() {
        let truth = Similarity { a: 1.8 * 0.3f64.cos(), b: 1.8 * 0.3f64.sin(), tx: 40.0, ty: -12.0 };
        let from = chip_template();
        let to: Vec<_> = from.iter().map(|p| truth.apply(*p)).collect();
        let fit = fit_similarity(&from, &to);
        for (got, want) in [(fit.a, truth.a), (fit.b, truth.b), (fit.tx, truth.tx), (fit.ty, truth.ty)] {
            assert!((got - want).abs() < 1e-9, "{fit:?} vs {truth:?}");
        }
    }

    #[test]
    fn chip_samples_a_turned_and_scaled_face_where_the_transform_says() {
        // A linear ramp is reproduced exactly by bilinear sampling and by averaging samples around a
        // point, so each chip pixel is the ramp at its transformed centre (±1 for the 8-bit image).
        let ramp = |x: f64, y: f64| [0.3 * x + 0.1 * y, 0.05 * x + 0.4 * y, 200.0 - 0.2 * x - 0.1 * y];
        let img = RgbImage::from_fn(600, 500, |x, y| {
            image::Rgb(ramp(f64::from(x), f64::from(y)).map(|v| v.round().clamp(0.0, 255.0) as u8))
        });
        let truth = Similarity { a: 2.3 * 0.2f64.cos(), b: 2.3 * 0.2f64.sin(), tx: 180.0, ty: 60.0 };
        let landmarks = chip_template().map(|p| truth.apply(p)).map(|[x, y]| [x as f32, y as f32]);
        let chip = extract_chip(&img, &landmarks);
        let fit = fit_similarity(&chip_template(), &landmarks.map(|[x, y]| [f64::from(x), f64::from(y)]));
        for (cx, cy, p) in chip.enumerate_pixels() {
            let [x, y] = fit.apply([f64::from(cx), f64::from(cy)]);
            let want = ramp(x, y);
            for c in 0..3 {
                assert!(
                    (f64::from(p.0[c]) - want[c]).abs() <= 1.0,
                    "({cx}, {cy}) channel {c}: {} vs {}",
                    p.0[c],
                    want[c]
                );
            }
        }
    }

    #[test]
    fn chip_of_landmarks_at_the_template_is_the_image_itself() {
        let img = RgbImage::from_fn(150, 150, |x, y| image::Rgb([x as u8, y as u8, (x + y) as u8]));
        let t = chip_template().map(|[x, y]| [x as f32, y as f32]);
        let chip = extract_chip(&img, &t);
        assert_eq!(chip, img);
    }
}
