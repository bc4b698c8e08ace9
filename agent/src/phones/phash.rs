//! A 64-bit perceptual hash (the DCT hash of pHash): the same picture re-encoded, resized or lightly
//! recompressed keeps nearly all its bits; a different photo flips about half. The replay check calls
//! two photos the same picture when their hashes differ in at most `[phones] near_duplicate_bits`.
//!
//! The image is converted to luma, reduced to 32×32 (a triangle filter as wide as the reduction, so
//! every source pixel counts and a resized copy reduces to nearly the same 32×32), transformed with a
//! 2-D DCT-II, and the 8×8 lowest frequencies after the DC row and column (as pHash takes them: the DC
//! term and the pure-horizontal/vertical gradients say most about exposure, least about content) are
//! compared with their median: one bit each.

use image::RgbImage;
use image::imageops::{self, FilterType};

const SIDE: usize = 32;
const LOW: usize = 8;

/// The 64-bit DCT hash of an image.
pub fn phash(img: &RgbImage) -> u64 {
    let grey = imageops::grayscale(img);
    let small = imageops::resize(&grey, SIDE as u32, SIDE as u32, FilterType::Triangle);
    let pixels: Vec<f64> = small.as_raw().iter().map(|v| f64::from(*v)).collect();
    let coefficients = dct_low(&pixels);
    let mut sorted = coefficients;
    sorted.sort_by(f64::total_cmp);
    let median = (sorted[31] + sorted[32]) / 2.0;
    coefficients.iter().enumerate().fold(0u64, |hash, (i, c)| if *c > median { hash | 1 << i } else { hash })
}

/// Bits that differ.
pub fn distance(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

/// The DCT-II coefficients (u, v) for u, v in 1..=8 of a 32×32 block (row-major, scale irrelevant: only
/// their order against the median matters).
fn dct_low(block: &[f64]) -> [f64; LOW * LOW] {
    let cos: Vec<f64> = (0..=LOW)
        .flat_map(|k| {
            (0..SIDE).map(move |n| ((std::f64::consts::PI / SIDE as f64) * (n as f64 + 0.5) * k as f64).cos())
        })
        .collect();
    let basis = |k: usize, n: usize| cos[k * SIDE + n];
    // Rows first: for each image row, the horizontal frequencies 1..=8.
    let mut rows = [[0.0f64; LOW]; SIDE];
    for (y, row) in rows.iter_mut().enumerate() {
        for (u, out) in row.iter_mut().enumerate() {
            *out = (0..SIDE).map(|x| block[y * SIDE + x] * basis(u + 1, x)).sum();
        }
    }
    let mut out = [0.0f64; LOW * LOW];
    for v in 0..LOW {
        for u in 0..LOW {
            out[v * LOW + u] = (0..SIDE).map(|y| rows[y][u] * basis(v + 1, y)).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::*;

    /// A synthetic scene with structure at several scales.
    fn scene(w: u32, h: u32, seed: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f64 / w as f64, y as f64 / h as f64);
            let s = seed as f64;
            let v = 128.0
                + 60.0 * (fx * (3.0 + s) * 3.1).sin() * (fy * (2.0 + s * 0.7) * 3.1).cos()
                + 40.0 * ((fx + fy * s) * 7.0).sin();
            let v = v.clamp(0.0, 255.0) as u8;
            Rgb([v, v / 2 + 40, 255 - v])
        })
    }

    #[test]
    fn resized_copies_hash_alike_and_other_scenes_do_not() {
        let a = scene(640, 480, 1);
        let half = imageops::resize(&a, 320, 240, FilterType::Triangle);
        let (ha, hh) = (phash(&a), phash(&half));
        assert!(distance(ha, hh) <= 4, "resized: {} bits", distance(ha, hh));
        let b = scene(640, 480, 4);
        assert!(distance(ha, phash(&b)) >= 16, "different: {} bits", distance(ha, phash(&b)));
        // Half the bits are set: the median splits the 64 coefficients.
        assert_eq!(ha.count_ones(), 32);
    }

    #[test]
    fn a_flat_image_hashes_without_panicking() {
        let flat = RgbImage::from_pixel(50, 50, Rgb([90, 90, 90]));
        let _ = phash(&flat);
        let tiny = RgbImage::from_pixel(1, 1, Rgb([0, 0, 0]));
        let _ = phash(&tiny);
    }
}
