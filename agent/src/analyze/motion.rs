//! Cheap change detection, to gate the detectors: has anything person-sized changed in a frame (or in a
//! region of it, a face window) since a reference frame? The frame is cut into [`BLOCK`]×[`BLOCK`]
//! pixel blocks and each block's mean luma is compared with the reference's. A mean over a block
//! averages away sensor noise and compression flicker (the benchmark clip's 6 % snow moves a block's
//! mean by well under a grey level), while a person entering changes whole blocks by tens of levels.
//! Every second pixel of every second row is read: a quarter of the frame, a fraction of a millisecond
//! at 1280×720.

use image::RgbImage;

use super::boxes::Rect;

/// Side of a block, in frame pixels.
pub const BLOCK: u32 = 16;
/// Read every `STEP`-th pixel of every `STEP`-th row.
const STEP: usize = 2;

/// The block means of the last reference frame ([`Motion::reset`]).
#[derive(Debug, Default)]
pub struct Motion {
    /// Frame size and region the reference was taken from; another size or region has no reference.
    reference: Option<(u32, u32, Rect)>,
    means: Vec<f32>,
}

impl Motion {
    pub fn new() -> Motion {
        Motion::default()
    }

    /// Share of blocks (0..1) whose mean luma changed by more than `threshold` grey levels since the
    /// last [`Motion::reset`], over `rect` of the frame (the whole frame when `None`; clipped to it).
    /// 1 when there is no comparable reference: no reset yet, or one of another frame size or region
    /// (a caller gating on motion then looks rather than misses someone).
    pub fn changed(&self, img: &RgbImage, rect: Option<Rect>, threshold: f32) -> f32 {
        let Some(region) = region(img, rect) else { return 0.0 };
        if self.reference != Some((img.width(), img.height(), region)) {
            return 1.0;
        }
        let mut means = Vec::with_capacity(self.means.len());
        block_means(img, region, &mut means);
        let moved = means.iter().zip(&self.means).filter(|(now, then)| (*now - *then).abs() > threshold).count();
        moved as f32 / means.len() as f32
    }

    /// Takes `rect` of this frame (the whole frame when `None`) as the reference.
    pub fn reset(&mut self, img: &RgbImage, rect: Option<Rect>) {
        match region(img, rect) {
            Some(region) => {
                block_means(img, region, &mut self.means);
                self.reference = Some((img.width(), img.height(), region));
            }
            None => {
                self.means.clear();
                self.reference = None;
            }
        }
    }
}

/// The region looked at: `rect` clipped to the frame, or the whole frame; `None` when nothing is left.
fn region(img: &RgbImage, rect: Option<Rect>) -> Option<Rect> {
    rect.unwrap_or(Rect::full(img.width(), img.height())).clip(img.width(), img.height())
}

/// Mean luma (BT.601 weights, in integers) of each block of `region`, row by row, into `out`. Blocks
/// at the right and bottom edges may be smaller; each is averaged over the pixels it has.
fn block_means(img: &RgbImage, region: Rect, out: &mut Vec<f32>) {
    let (stride, src) = (img.width() as usize * 3, img.as_raw());
    let (x0, y0) = (region.x as usize, region.y as usize);
    let (w, h) = (region.width as usize, region.height as usize);
    let block = BLOCK as usize;
    let (cols, rows) = (w.div_ceil(block), h.div_ceil(block));
    out.clear();
    let mut sums = vec![0u32; cols];
    let mut counts = vec![0u32; cols];
    for by in 0..rows {
        sums.fill(0);
        counts.fill(0);
        for y in (by * block..((by + 1) * block).min(h)).step_by(STEP) {
            let row = &src[(y0 + y) * stride..(y0 + y + 1) * stride];
            for (bx, (sum, count)) in sums.iter_mut().zip(counts.iter_mut()).enumerate() {
                for x in (bx * block..((bx + 1) * block).min(w)).step_by(STEP) {
                    let p = &row[(x0 + x) * 3..(x0 + x) * 3 + 3];
                    // 77/150/29 of 256: 0.299, 0.587, 0.114.
                    *sum += 77 * u32::from(p[0]) + 150 * u32::from(p[1]) + 29 * u32::from(p[2]);
                    *count += 1;
                }
            }
        }
        out.extend(sums.iter().zip(&counts).map(|(&s, &n)| s as f32 / (256.0 * n as f32)));
    }
}

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::*;

    /// xorshift32: reproducible noise without a dependency.
    struct Noise(u32);

    impl Noise {
        fn next(&mut self) -> u8 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            (self.0 >> 24) as u8
        }
    }

    /// A textured 1280×720 scene (gradients and stripes, like a room) under `snow` as the benchmark clip
    /// makes it: each pixel blended 6 % with a fresh random grey (gstreamer's `videotestsrc
    /// pattern=snow` through a compositor at alpha 0.06).
    fn scene(noise: &mut Noise, snow: f32) -> RgbImage {
        RgbImage::from_fn(1280, 720, |x, y| {
            let base = [(x / 5) as f32 % 256.0, ((x + y) / 7 % 2 * 90 + y / 8) as f32, ((x * y) % 199) as f32];
            let grey = f32::from(noise.next());
            Rgb(base.map(|v| (v * (1.0 - snow) + grey * snow).round().clamp(0.0, 255.0) as u8))
        })
    }

    /// Paints a person-sized figure: a dark 180×480 px silhouette with a lighter face, standing at `x`.
    fn person(img: &mut RgbImage, x: u32) {
        for (px, py, p) in img.enumerate_pixels_mut() {
            if (x..x + 180).contains(&px) && (200..680).contains(&py) {
                let face = (x + 50..x + 130).contains(&px) && (200..300).contains(&py);
                *p = if face { Rgb([205, 160, 140]) } else { Rgb([40, 45, 60]) };
            }
        }
    }

    const THRESHOLD: f32 = 8.0;

    #[test]
    fn snow_is_not_motion() {
        let mut noise = Noise(0x1234_5678);
        let mut motion = Motion::new();
        motion.reset(&scene(&mut noise, 0.06), None);
        for _ in 0..5 {
            let changed = motion.changed(&scene(&mut noise, 0.06), None, THRESHOLD);
            assert_eq!(changed, 0.0, "6 % snow moved {:.1} % of the blocks", changed * 100.0);
        }
        // Twice the clip's snow moves a block's mean by 8 levels now and then, not a person's share.
        assert!(motion.changed(&scene(&mut noise, 0.12), None, THRESHOLD) < 0.005);
    }

    #[test]
    fn a_person_is_motion() {
        let mut noise = Noise(42);
        let mut motion = Motion::new();
        motion.reset(&scene(&mut noise, 0.06), None);
        let mut frame = scene(&mut noise, 0.06);
        person(&mut frame, 500);
        let changed = motion.changed(&frame, None, THRESHOLD);
        // The figure covers 180·480 / (1280·720) = 9.4 % of the frame.
        assert!((0.07..0.12).contains(&changed), "a person moved {:.1} % of the blocks", changed * 100.0);
        // Taken as the new reference, the same frame is still again.
        motion.reset(&frame, None);
        assert_eq!(motion.changed(&frame, None, THRESHOLD), 0.0);
    }

    #[test]
    fn only_the_region_counts() {
        let mut noise = Noise(7);
        let window = Some(Rect { x: 700, y: 100, width: 400, height: 600 });
        let mut motion = Motion::new();
        let still = scene(&mut noise, 0.06);
        motion.reset(&still, window);
        let mut outside = scene(&mut noise, 0.06);
        person(&mut outside, 100);
        assert_eq!(motion.changed(&outside, window, THRESHOLD), 0.0, "a person left of the window");
        let mut inside = scene(&mut noise, 0.06);
        person(&mut inside, 800);
        let changed = motion.changed(&inside, window, THRESHOLD);
        // 180·480 of the window's 400·600 px: 36 %.
        assert!(changed > 0.3, "a person in the window moved {:.1} % of its blocks", changed * 100.0);
    }

    #[test]
    fn without_a_comparable_reference_everything_changed() {
        let mut noise = Noise(99);
        let frame = scene(&mut noise, 0.0);
        let mut motion = Motion::new();
        assert_eq!(motion.changed(&frame, None, THRESHOLD), 1.0, "no reference yet");
        motion.reset(&frame, None);
        assert_eq!(motion.changed(&frame, None, THRESHOLD), 0.0);
        let window = Some(Rect { x: 0, y: 0, width: 640, height: 720 });
        assert_eq!(motion.changed(&frame, window, THRESHOLD), 1.0, "reference of another region");
        let smaller = image::imageops::crop_imm(&frame, 0, 0, 640, 360).to_image();
        assert_eq!(motion.changed(&smaller, None, THRESHOLD), 1.0, "reference of another size");
        // A region outside the frame has nothing to change.
        assert_eq!(motion.changed(&frame, Some(Rect { x: 2000, y: 0, width: 10, height: 10 }), THRESHOLD), 0.0);
    }
}
