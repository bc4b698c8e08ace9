//! Images in and out of the models: safe decoding of untrusted files (upright as their EXIF orientation
//! says), bilinear resampling into planar float tensors, and drawing boxes for operators.

use std::path::Path;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, Rgb, RgbImage};

use super::boxes::Rect;
use crate::input::{self, InputError, MAX_IMAGE_BYTES};

/// Largest image accepted, in pixels (a 50-megapixel phone photo fits; a 30000×30000 header does not).
pub const MAX_PIXELS: u64 = 60_000_000;
/// Largest side accepted, in pixels.
pub const MAX_SIDE: u32 = 16_384;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: cannot read: {source}")]
    Read { path: String, source: std::io::Error },
    /// Over [`MAX_IMAGE_BYTES`]: refused before reading.
    #[error("{0} (a photo may have at most 50 MiB)")]
    FileTooLarge(InputError),
    #[error("{path}: empty file (0 bytes)")]
    Empty { path: String },
    #[error("{path}: not an image Vigil can read (JPEG or PNG expected)")]
    UnknownFormat { path: String },
    #[error(
        "{path}: {width}×{height} pixels is over the limit ({MAX_SIDE} px a side, {MAX_PIXELS} px in all); refusing to decode it"
    )]
    TooLarge { path: String, width: u32, height: u32 },
    #[error("{path}: corrupt or truncated image: {message}")]
    Corrupt { path: String, message: String },
}

/// Decodes a JPEG or PNG into RGB, refusing files over [`MAX_IMAGE_BYTES`] (from their size, unread),
/// empty, unknown, oversized (decompression bombs: checked from the header, before any pixel is
/// allocated) and corrupt files with a message naming the file.
pub fn load_rgb(path: &Path) -> Result<RgbImage, ImageError> {
    let name = path.display().to_string();
    let bytes = input::read_limited(path, MAX_IMAGE_BYTES).map_err(|e| match e {
        InputError::Read { source, .. } => ImageError::Read { path: name.clone(), source },
        too_large @ InputError::TooLarge { .. } => ImageError::FileTooLarge(too_large),
    })?;
    decode_rgb(&name, &bytes)
}

/// As [`load_rgb`], for bytes already in memory; `name` is used in errors. The pixels come out upright:
/// phones store a portrait photo as landscape pixels plus an EXIF Orientation tag, and a face lying on
/// its side is neither detected nor judged frontal.
pub fn decode_rgb(name: &str, bytes: &[u8]) -> Result<RgbImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty { path: name.to_owned() });
    }
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| ImageError::Read { path: name.to_owned(), source })?;
    match reader.format() {
        None => {
            return Err(ImageError::UnknownFormat { path: name.to_owned() });
        }
        // The JPEG decoder fills a cut-off scan with grey and reports success; a photo offered as
        // evidence must be whole, so check the end of the scan ourselves.
        Some(image::ImageFormat::Jpeg) if !jpeg_is_complete(bytes) => {
            return Err(ImageError::Corrupt {
                path: name.to_owned(),
                message: "JPEG ends before its end-of-image marker".into(),
            });
        }
        Some(_) => {}
    }
    let corrupt = |e: image::ImageError| ImageError::Corrupt { path: name.to_owned(), message: e.to_string() };
    let (width, height) = reader.into_dimensions().map_err(corrupt)?;
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(ImageError::TooLarge { path: name.to_owned(), width, height });
    }
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| ImageError::Read { path: name.to_owned(), source })?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_PIXELS * 4 + (64 << 20));
    reader.limits(limits.clone());
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    // As `ImageReader::decode` does: the output buffer counts against the allocation limit.
    limits.reserve(decoder.total_bytes()).map_err(corrupt)?;
    decoder.set_limits(limits).map_err(corrupt)?;
    // An unreadable EXIF block does not spoil the pixels: such a photo is taken as it is stored.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let decoded = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    let mut upright = DynamicImage::ImageRgb8(decoded.into_rgb8());
    upright.apply_orientation(orientation);
    Ok(upright.into_rgb8())
}

/// True when an end-of-image marker (FF D9) follows the last start-of-scan marker (FF DA). Inside
/// entropy-coded data a literal FF is always followed by 00, so neither marker can appear by chance
/// there; an EXIF thumbnail's own markers come before the main image's last scan.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    let last_eoi = bytes.windows(2).rposition(|w| w == [0xFF, 0xD9]);
    matches!((last_sos, last_eoi), (Some(sos), Some(eoi)) if eoi > sos)
}

/// Precomputed taps of a 1-D bilinear resampling with half-pixel centres (OpenCV INTER_LINEAR, TF
/// half_pixel_centers): output i samples input (i + 0.5)·in/out − 0.5, clamped at the edges.
struct Taps {
    lo: Vec<usize>,
    hi: Vec<usize>,
    frac: Vec<f32>,
}

impl Taps {
    /// Taps of `out` samples over the `input` pixels starting at `start`, clamped to those pixels.
    fn new(out: usize, input: usize, start: usize) -> Taps {
        let scale = input as f64 / out as f64;
        let mut taps = Taps { lo: Vec::with_capacity(out), hi: Vec::with_capacity(out), frac: Vec::with_capacity(out) };
        let last = input as f64 - 1.0;
        for i in 0..out {
            let src = (i as f64 + 0.5) * scale - 0.5;
            let floor = src.floor();
            taps.lo.push(start + floor.clamp(0.0, last) as usize);
            taps.hi.push(start + (floor + 1.0).clamp(0.0, last) as usize);
            taps.frac.push((src - floor) as f32);
        }
        taps
    }
}

/// Resizes `img` (the whole of it) to `out_w`×`out_h` and writes it as planar float RGB into `dst`,
/// a [3, dst_h, dst_w] tensor, at offset (`left`, `top`). Pixels of `dst` outside that rectangle are
/// left as they are (callers fill padding first). Channel `c` of the output is input channel
/// `order[c]`, so models wanting BGR get it without a copy.
pub fn resize_into_planar(
    img: &RgbImage,
    out_w: usize,
    out_h: usize,
    dst: &mut [f32],
    dst_w: usize,
    dst_h: usize,
    left: usize,
    top: usize,
    order: [usize; 3],
) {
    let whole = Rect::full(img.width(), img.height());
    resize_region_into_planar(img, whole, out_w, out_h, dst, dst_w, dst_h, left, top, order);
}

/// As [`resize_into_planar`], for the `region` of `img` only (inside the image), read straight from the
/// frame: the same pixels as cropping first and resizing the crop, without the copy.
pub fn resize_region_into_planar(
    img: &RgbImage,
    region: Rect,
    out_w: usize,
    out_h: usize,
    dst: &mut [f32],
    dst_w: usize,
    dst_h: usize,
    left: usize,
    top: usize,
    order: [usize; 3],
) {
    let in_w = img.width() as usize;
    debug_assert!(left + out_w <= dst_w && top + out_h <= dst_h && dst.len() == 3 * dst_w * dst_h);
    debug_assert!(region.clip(img.width(), img.height()) == Some(region), "{region} outside the image");
    let xs = Taps::new(out_w, region.width as usize, region.x as usize);
    let ys = Taps::new(out_h, region.height as usize, region.y as usize);
    let src = img.as_raw();
    let plane = dst_w * dst_h;
    // The horizontally resampled input rows y0 and y1 of the current output row. Output rows walk down
    // the input, so the next y0 is often this y1: swap instead of recomputing.
    let (mut row0, mut row1) = ((usize::MAX, vec![0.0f32; out_w * 3]), (usize::MAX, vec![0.0f32; out_w * 3]));
    let horizontal = |y: usize, out: &mut [f32]| {
        let row = &src[y * in_w * 3..(y + 1) * in_w * 3];
        for x in 0..out_w {
            let (a, b, f) = (xs.lo[x] * 3, xs.hi[x] * 3, xs.frac[x]);
            for c in 0..3 {
                // a + (b − a)·f is exact on flat areas, unlike a·(1 − f) + b·f.
                let (pa, pb) = (f32::from(row[a + c]), f32::from(row[b + c]));
                out[x * 3 + c] = pa + (pb - pa) * f;
            }
        }
    };
    for y in 0..out_h {
        let (y0, y1, fy) = (ys.lo[y], ys.hi[y], ys.frac[y]);
        if row0.0 != y0 {
            if row1.0 == y0 {
                std::mem::swap(&mut row0, &mut row1);
            } else {
                horizontal(y0, &mut row0.1);
                row0.0 = y0;
            }
        }
        if row1.0 != y1 {
            horizontal(y1, &mut row1.1);
            row1.0 = y1;
        }
        let (r0, r1) = (&row0.1, &row1.1);
        let base = (top + y) * dst_w + left;
        for x in 0..out_w {
            for (c, &from) in order.iter().enumerate() {
                let (va, vb) = (r0[x * 3 + from], r1[x * 3 + from]);
                let v = va + (vb - va) * fy;
                dst[c * plane + base + x] = v;
            }
        }
    }
}

/// Draws a rectangle outline `thickness` pixels wide, clipped to the image.
pub fn draw_box(img: &mut RgbImage, bbox: [f32; 4], color: [u8; 3], thickness: u32) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let clamp = |v: f32, max: i64| (v.round() as i64).clamp(0, max - 1);
    let (x1, y1, x2, y2) = (clamp(bbox[0], w), clamp(bbox[1], h), clamp(bbox[2], w), clamp(bbox[3], h));
    let t = i64::from(thickness.max(1));
    let mut fill = |xa: i64, ya: i64, xb: i64, yb: i64| {
        for y in ya.max(0)..=yb.min(h - 1) {
            for x in xa.max(0)..=xb.min(w - 1) {
                img.put_pixel(x as u32, y as u32, Rgb(color));
            }
        }
    };
    fill(x1, y1, x2, y1 + t - 1);
    fill(x1, y2 - t + 1, x2, y2);
    fill(x1, y1, x1 + t - 1, y2);
    fill(x2 - t + 1, y1, x2, y2);
}

/// Draws a filled square dot centred on `p`.
pub fn draw_dot(img: &mut RgbImage, p: [f32; 2], color: [u8; 3], radius: u32) {
    let r = radius as f32;
    draw_box(img, [p[0] - r, p[1] - r, p[0] + r, p[1] + r], color, radius * 2 + 1);
}

/// Fits the whole of `img` into a `width`×`height` frame (centred, grey around it): a camera-like frame
/// from a portrait photo, face included (benchmarks, generated test scenes).
pub fn frame_from(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let scale = (f64::from(width) / f64::from(img.width())).min(f64::from(height) / f64::from(img.height()));
    let (w, h) = ((f64::from(img.width()) * scale).round() as u32, (f64::from(img.height()) * scale).round() as u32);
    let resized = image::imageops::resize(img, w.max(1), h.max(1), image::imageops::FilterType::Triangle);
    let mut frame = RgbImage::from_pixel(width, height, Rgb([128, 128, 128]));
    image::imageops::overlay(&mut frame, &resized, i64::from((width - w) / 2), i64::from((height - h) / 2));
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_of_a_constant_image_is_constant_and_respects_offsets() {
        let img = RgbImage::from_pixel(7, 5, Rgb([10, 20, 30]));
        let (dw, dh) = (8, 6);
        let mut dst = vec![-1.0; 3 * dw * dh];
        resize_into_planar(&img, 4, 3, &mut dst, dw, dh, 2, 1, [2, 1, 0]);
        let at = |c: usize, x: usize, y: usize| dst[c * dw * dh + y * dw + x];
        assert_eq!((at(0, 2, 1), at(1, 5, 3), at(2, 3, 2)), (30.0, 20.0, 10.0));
        assert_eq!(at(0, 0, 0), -1.0, "padding untouched");
        assert_eq!(at(0, 6, 1), -1.0, "right of the written area untouched");
    }

    #[test]
    fn resizing_a_region_is_resizing_its_crop() {
        let img = RgbImage::from_fn(97, 61, |x, y| Rgb([(x * 7 + y) as u8, (y * 5) as u8, (x * y) as u8]));
        let region = Rect { x: 13, y: 9, width: 50, height: 37 };
        let crop = image::imageops::crop_imm(&img, region.x, region.y, region.width, region.height).to_image();
        for (ow, oh) in [(20, 15), (50, 37), (64, 48)] {
            let (mut a, mut b) = (vec![0.0; 3 * ow * oh], vec![0.0; 3 * ow * oh]);
            resize_region_into_planar(&img, region, ow, oh, &mut a, ow, oh, 0, 0, [0, 1, 2]);
            resize_into_planar(&crop, ow, oh, &mut b, ow, oh, 0, 0, [0, 1, 2]);
            assert_eq!(a, b, "{ow}×{oh}");
        }
    }

    #[test]
    fn resize_interpolates_with_half_pixel_centres() {
        // A 2×1 image black|white upscaled to 4×1: samples at -0.25, 0.25, 0.75, 1.25 → 0, 0.25, 0.75, 1.
        let mut img = RgbImage::new(2, 1);
        img.put_pixel(1, 0, Rgb([255, 255, 255]));
        let mut dst = vec![0.0; 3 * 4];
        resize_into_planar(&img, 4, 1, &mut dst, 4, 1, 0, 0, [0, 1, 2]);
        assert_eq!(&dst[..4], &[0.0, 63.75, 191.25, 255.0]);
    }

    #[test]
    fn exif_orientation_turns_the_pixels_upright() {
        // Stored 64×32: left half red, right half blue, as a JPEG and as a PNG.
        let mut stored = RgbImage::from_pixel(64, 32, Rgb([0, 0, 255]));
        for (_, _, p) in stored.enumerate_pixels_mut().filter(|(x, _, _)| *x < 32) {
            *p = Rgb([255, 0, 0]);
        }
        let red = |p: &Rgb<u8>| p[0] > 200 && p[2] < 60;
        for format in [image::ImageFormat::Jpeg, image::ImageFormat::Png] {
            let mut bytes = Vec::new();
            stored.write_to(&mut std::io::Cursor::new(&mut bytes), format).unwrap();
            assert_eq!(decode_rgb("a", &bytes).unwrap().dimensions(), (64, 32), "{format:?} without EXIF");
            let at = |orientation: u16| {
                let tagged = crate::fuzzing::with_exif_orientation(&bytes, orientation).unwrap();
                decode_rgb("a", &tagged).unwrap_or_else(|e| panic!("{format:?} orientation {orientation}: {e}"))
            };
            // 6, "rotate 90° clockwise to display": the left column goes to the top.
            let upright = at(6);
            assert_eq!(upright.dimensions(), (32, 64), "{format:?}");
            assert!(red(upright.get_pixel(16, 8)) && !red(upright.get_pixel(16, 56)), "{format:?}");
            // 8, "rotate 270° clockwise": the left column goes to the bottom.
            let upright = at(8);
            assert!(!red(upright.get_pixel(16, 8)) && red(upright.get_pixel(16, 56)), "{format:?}");
            // 3, "rotate 180°": red on the right.
            let upright = at(3);
            assert_eq!(upright.dimensions(), (64, 32));
            assert!(!red(upright.get_pixel(8, 16)) && red(upright.get_pixel(56, 16)), "{format:?}");
        }
    }

    #[test]
    fn bad_files_are_named_errors() {
        assert!(matches!(decode_rgb("a", b""), Err(ImageError::Empty { .. })));
        assert!(matches!(decode_rgb("a", b"hello, not an image"), Err(ImageError::UnknownFormat { .. })));
        let mut png = Vec::new();
        RgbImage::new(4, 4).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        assert!(decode_rgb("a", &png).is_ok());
        assert!(matches!(decode_rgb("a", &png[..png.len() / 2]), Err(ImageError::Corrupt { .. })));
    }
}
