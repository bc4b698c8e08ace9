//! The `image` check's first half: what the body of an upload is. JPEG or PNG by its magic bytes (never
//! by the `Content-Type` the phone sent), its pixel count read from the header and refused above
//! `[phones] max_pixels` before a single pixel is allocated, then decoded by the one safe decoder
//! (`analyze::image::decode_rgb`: `image::Limits`, upright by EXIF orientation, and a JPEG whose scan is
//! cut off refused: the `image` crate's JPEG decoder pads a truncated scan with grey and reports
//! success, which `truncated_jpeg_is_corrupt_although_the_decoder_pads_it` below shows).

use std::io::Cursor;

use image::{ImageReader, RgbImage};

use crate::analyze::image::{ImageError, decode_rgb};

/// What the body's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhotoFormat {
    Jpeg,
    Png,
    /// Not JPEG or PNG: another image format, or not an image at all. Stored as `photo.bin`.
    Unknown,
}

impl PhotoFormat {
    /// By magic bytes alone.
    pub fn sniff(bytes: &[u8]) -> PhotoFormat {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            PhotoFormat::Jpeg
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            PhotoFormat::Png
        } else {
            PhotoFormat::Unknown
        }
    }

    /// The evidence bundle's file extension for the original photo (`photo.jpg`, `photo.png`, `photo.bin`).
    pub fn extension(self) -> &'static str {
        match self {
            PhotoFormat::Jpeg => "jpg",
            PhotoFormat::Png => "png",
            PhotoFormat::Unknown => "bin",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PhotoFormat::Jpeg => "jpeg",
            PhotoFormat::Png => "png",
            PhotoFormat::Unknown => "unknown",
        }
    }
}

/// Image formats a phone might send that Vigil does not take (told apart from "not an image", so the
/// page can say "set the camera to JPEG" rather than "this is not a photo").
fn other_image_format(bytes: &[u8]) -> Option<&'static str> {
    let at = |offset: usize, magic: &[u8]| bytes.get(offset..offset + magic.len()) == Some(magic);
    if at(0, b"GIF87a") || at(0, b"GIF89a") {
        Some("GIF")
    } else if at(0, b"RIFF") && at(8, b"WEBP") {
        Some("WebP")
    } else if at(4, b"ftyp") && (at(8, b"heic") || at(8, b"heix") || at(8, b"mif1") || at(8, b"msf1")) {
        Some("HEIC/HEIF")
    } else if at(4, b"ftyp") && (at(8, b"avif") || at(8, b"avis")) {
        Some("AVIF")
    } else if at(0, b"BM") {
        Some("BMP")
    } else if at(0, b"II*\0") || at(0, b"MM\0*") {
        Some("TIFF")
    } else {
        None
    }
}

/// Why a body is not a photo the checks can judge; each maps to the `image` check's reason.
#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    #[error("the upload is not an image (neither JPEG nor PNG by its first bytes)")]
    NotAnImage,
    #[error("the upload is a {0} image; only JPEG and PNG are accepted")]
    UnsupportedFormat(&'static str),
    #[error("{width}×{height} pixels is over the limit of {max} pixels; refused before decoding")]
    TooManyPixels { width: u32, height: u32, max: u64 },
    #[error(
        "{width}×{height} pixels has a side over {} pixels; refused before decoding",
        crate::analyze::image::MAX_SIDE
    )]
    SideTooLong { width: u32, height: u32 },
    #[error("the image is corrupt or truncated: {0}")]
    Corrupt(String),
}

impl PhotoError {
    /// The `image` check's stable reason.
    pub fn reason(&self) -> &'static str {
        match self {
            PhotoError::NotAnImage => "not_an_image",
            PhotoError::UnsupportedFormat(_) => "unsupported_format",
            PhotoError::TooManyPixels { .. } | PhotoError::SideTooLong { .. } => "too_many_pixels",
            PhotoError::Corrupt(_) => "corrupt_image",
        }
    }
}

/// A decoded upload: its pixels, upright.
#[derive(Debug, Clone)]
pub struct DecodedPhoto {
    pub format: PhotoFormat,
    /// As stored in the file (before the EXIF orientation is applied).
    pub width: u32,
    pub height: u32,
    pub pixels: RgbImage,
}

/// The dimensions a JPEG or PNG header declares, read without decoding.
pub fn header_dimensions(bytes: &[u8]) -> Result<(u32, u32), PhotoError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PhotoError::Corrupt(format!("cannot read the header: {e}")))?;
    reader.into_dimensions().map_err(|e| PhotoError::Corrupt(format!("cannot read the header: {e}")))
}

/// Sniffs, checks the header's pixel count against `max_pixels`, then decodes.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<DecodedPhoto, PhotoError> {
    let format = PhotoFormat::sniff(bytes);
    if format == PhotoFormat::Unknown {
        return Err(match other_image_format(bytes) {
            Some(name) => PhotoError::UnsupportedFormat(name),
            None => PhotoError::NotAnImage,
        });
    }
    let (width, height) = header_dimensions(bytes)?;
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(PhotoError::TooManyPixels { width, height, max: max_pixels });
    }
    let pixels = decode_rgb("upload", bytes).map_err(|e| match e {
        // The decoder's own ceilings (a side over 16384 px, 60 Mpx in all) are pixel limits too.
        ImageError::TooLarge { width, height, .. } => PhotoError::SideTooLong { width, height },
        ImageError::Corrupt { message, .. } => PhotoError::Corrupt(message),
        ImageError::Empty { .. } | ImageError::UnknownFormat { .. } => PhotoError::NotAnImage,
        other => PhotoError::Corrupt(other.to_string()),
    })?;
    Ok(DecodedPhoto { format, width, height, pixels })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real-looking JPEG: gradients and edges, so the entropy-coded scan is long.
    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x * 7 % 256) as u8, (y * 3 % 256) as u8, ((x ^ y) % 256) as u8])
        });
        let mut out = Cursor::new(Vec::new());
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img).unwrap();
        out.into_inner()
    }

    #[test]
    fn formats_are_told_by_their_magic_bytes() {
        assert_eq!(PhotoFormat::sniff(&jpeg(8, 8)), PhotoFormat::Jpeg);
        assert_eq!(PhotoFormat::sniff(b"\x89PNG\r\n\x1a\n...."), PhotoFormat::Png);
        assert_eq!(PhotoFormat::sniff(b"<html>"), PhotoFormat::Unknown);
        assert!(matches!(decode(b"GIF89a\x01\x00\x01\x00", 1_000_000), Err(PhotoError::UnsupportedFormat("GIF"))));
        assert!(matches!(
            decode(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", 1_000_000),
            Err(PhotoError::UnsupportedFormat("HEIC/HEIF"))
        ));
        assert!(matches!(decode(b"%PDF-1.7\n", 1_000_000), Err(PhotoError::NotAnImage)));
        assert!(matches!(decode(b"", 1_000_000), Err(PhotoError::NotAnImage)));
    }

    #[test]
    fn truncated_jpeg_is_corrupt_although_the_decoder_pads_it() {
        let whole = jpeg(320, 240);
        let cut = &whole[..whole.len() * 2 / 3];
        // The fact this module guards against: the `image` crate decodes the cut file without an error.
        let padded = image::load_from_memory_with_format(cut, image::ImageFormat::Jpeg);
        assert!(
            padded.is_ok(),
            "the decoder now errors on a truncated scan ({:?}); the EOI check is belt and braces",
            padded.err()
        );
        let err = decode(cut, 40_000_000).unwrap_err();
        assert_eq!(err.reason(), "corrupt_image", "{err}");
        // Cut inside the header: corrupt too, never a panic.
        for len in [3, 20, 200] {
            assert_eq!(decode(&whole[..len], 40_000_000).unwrap_err().reason(), "corrupt_image", "{len} bytes");
        }
        let ok = decode(&whole, 40_000_000).unwrap();
        assert_eq!((ok.format, ok.width, ok.height), (PhotoFormat::Jpeg, 320, 240));
        assert_eq!(ok.pixels.dimensions(), (320, 240));
    }

    #[test]
    fn pixels_over_the_limit_are_refused_from_the_header() {
        let whole = jpeg(2000, 1000);
        let err = decode(&whole, 1_000_000).unwrap_err();
        assert!(matches!(err, PhotoError::TooManyPixels { width: 2000, height: 1000, max: 1_000_000 }), "{err}");
        assert_eq!(err.reason(), "too_many_pixels");
        assert!(decode(&whole, 2_000_000).is_ok());
        let long = jpeg(17_000, 8);
        let err = decode(&long, 40_000_000).unwrap_err();
        assert!(matches!(err, PhotoError::SideTooLong { width: 17_000, height: 8 }), "{err}");
        assert_eq!(err.reason(), "too_many_pixels");
    }

    #[test]
    fn a_cut_at_any_point_is_an_error_never_a_panic() {
        let whole = jpeg(64, 48);
        for len in (0..whole.len() - 2).step_by(7) {
            assert!(decode(&whole[..len], 40_000_000).is_err(), "cut at {len} of {}", whole.len());
        }
    }
}
