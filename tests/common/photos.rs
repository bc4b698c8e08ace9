//! Photos as a phone would upload them, made from the registry's real photos (scripts/setup fetches
//! them): face photos with EXIF GPS and DateTimeOriginal written by a library (kamadak-exif's
//! `experimental::Writer`, spliced into the JPEG as its APP1 segment), and the bad uploads the checks
//! must catch — re-encoded and resized copies, a truncated file, a photo with two faces, one with none,
//! a PNG whose header promises more pixels than the box decodes.
//!
//! Who is who in `face_recognition-test-images` (the `tests/faces.rs` identities): `obama.jpg`,
//! `obama2.jpg`, `obama3.jpg` are Barack Obama, `biden.jpg` is Joe Biden; each shows one face.
//! Every function returns bytes; none writes a file.

use std::io::Cursor;
use std::time::SystemTime;

use exif::experimental::Writer;
use exif::{Field, In, Rational, Tag, Value};
use image::{ImageEncoder, RgbImage};

/// What to write into a photo's EXIF.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExifTags {
    /// GPSLatitude/GPSLongitude with their N/S and E/W references, `[latitude, longitude]` in degrees.
    pub gps: Option<[f64; 2]>,
    /// DateTimeOriginal: this instant as the site's wall clock (`utc_offset_secs` east of UTC).
    pub taken: Option<SystemTime>,
    pub utc_offset_secs: i32,
    /// Also write OffsetTimeOriginal (`+08:00`); phones since 2018 do, older ones do not.
    pub write_offset: bool,
}

/// The face photos by name, `face_recognition-test-images/<name>`: the file's bytes with its own EXIF
/// (a 2010s camera's, with its own times) removed, so only what a test writes is there.
pub fn registry_face(name: &str) -> Vec<u8> {
    let bytes = std::fs::read(super::face_images().join(name)).unwrap();
    without_exif(&bytes)
}

/// `registry_face(name)` with `tags` written into its EXIF.
pub fn face_with_exif(name: &str, tags: &ExifTags) -> Vec<u8> {
    with_exif(&registry_face(name), tags)
}

/// The APP1 segment (`FF E1`, length, `Exif\0\0`, TIFF) holding `tags`, written by kamadak-exif.
pub fn exif_segment(tags: &ExifTags) -> Vec<u8> {
    let ascii =
        |tag, text: &str| Field { tag, ifd_num: In::PRIMARY, value: Value::Ascii(vec![text.as_bytes().to_vec()]) };
    let dms = |tag, degrees: f64| {
        let d = degrees.abs();
        let minutes = d.fract() * 60.0;
        let seconds = (minutes.fract() * 60.0 * 1000.0).round() as u32;
        Field {
            tag,
            ifd_num: In::PRIMARY,
            value: Value::Rational(vec![
                Rational { num: d.trunc() as u32, denom: 1 },
                Rational { num: minutes.trunc() as u32, denom: 1 },
                Rational { num: seconds, denom: 1000 },
            ]),
        }
    };
    let mut fields = Vec::new();
    if let Some([lat, lon]) = tags.gps {
        fields.push(Field { tag: Tag::GPSVersionID, ifd_num: In::PRIMARY, value: Value::Byte(vec![2, 3, 0, 0]) });
        fields.push(ascii(Tag::GPSLatitudeRef, if lat < 0.0 { "S" } else { "N" }));
        fields.push(dms(Tag::GPSLatitude, lat));
        fields.push(ascii(Tag::GPSLongitudeRef, if lon < 0.0 { "W" } else { "E" }));
        fields.push(dms(Tag::GPSLongitude, lon));
    }
    if let Some(taken) = tags.taken {
        let offset = jiff::tz::Offset::from_seconds(tags.utc_offset_secs).unwrap();
        let local = jiff::Timestamp::try_from(taken).unwrap().to_zoned(jiff::tz::TimeZone::fixed(offset));
        fields.push(ascii(Tag::DateTimeOriginal, &local.strftime("%Y:%m:%d %H:%M:%S").to_string()));
        if tags.write_offset {
            fields.push(ascii(Tag::OffsetTimeOriginal, &local.strftime("%:z").to_string()));
        }
    }
    fields.push(ascii(Tag::Make, "Vigil test fixtures"));
    let mut writer = Writer::new();
    for f in &fields {
        writer.push_field(f);
    }
    let mut tiff = Cursor::new(Vec::new());
    writer.write(&mut tiff, false).unwrap();
    let tiff = tiff.into_inner();
    let len = u16::try_from(2 + 6 + tiff.len()).expect("EXIF fits one segment");
    [&[0xFF, 0xE1][..], &len.to_be_bytes(), b"Exif\0\0", &tiff].concat()
}

/// The JPEG's marker segments before its first scan: (start, end) byte ranges, SOI excluded.
fn header_segments(jpeg: &[u8]) -> Vec<(usize, usize)> {
    assert!(jpeg.starts_with(&[0xFF, 0xD8]), "not a JPEG");
    let mut segments = Vec::new();
    let mut at = 2;
    while at + 4 <= jpeg.len() && jpeg[at] == 0xFF && jpeg[at + 1] != 0xDA {
        let len = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        segments.push((at, at + 2 + len));
        at += 2 + len;
    }
    segments
}

/// The JPEG without its APP1 EXIF segments (pixels untouched).
pub fn without_exif(jpeg: &[u8]) -> Vec<u8> {
    let mut out = jpeg.to_vec();
    for (start, end) in header_segments(jpeg).into_iter().rev() {
        if jpeg[start + 1] == 0xE1 && jpeg.get(start + 4..start + 10) == Some(b"Exif\0\0") {
            out.drain(start..end);
        }
    }
    out
}

/// The JPEG with `tags` as its only EXIF: any APP1 EXIF removed, the new one right after SOI (where
/// the EXIF standard puts it).
pub fn with_exif(jpeg: &[u8], tags: &ExifTags) -> Vec<u8> {
    let stripped = without_exif(jpeg);
    [&stripped[..2], &exif_segment(tags), &stripped[2..]].concat()
}

/// Decoded (upright) pixels of a JPEG or PNG.
pub fn pixels(bytes: &[u8]) -> RgbImage {
    vigil::analyze::image::decode_rgb("fixture", bytes).unwrap()
}

/// Pixels as a JPEG of this quality (no EXIF: what a re-encoding app or a screenshot leaves).
pub fn jpeg_of(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(img).unwrap();
    out.into_inner()
}

/// The photo decoded and encoded again as a JPEG at `quality` (60: a messenger's recompression).
pub fn reencoded(bytes: &[u8], quality: u8) -> Vec<u8> {
    jpeg_of(&pixels(bytes), quality)
}

/// The photo scaled to `percent` of its sides (triangle filter), as a JPEG at quality 90.
pub fn resized(bytes: &[u8], percent: u32) -> Vec<u8> {
    let img = pixels(bytes);
    let (w, h) = ((img.width() * percent / 100).max(1), (img.height() * percent / 100).max(1));
    jpeg_of(&image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle), 90)
}

/// The first `percent` of the file's bytes (an upload cut off mid-scan).
pub fn truncated(bytes: &[u8], percent: usize) -> Vec<u8> {
    bytes[..bytes.len() * percent / 100].to_vec()
}

/// Obama (`obama.jpg`) and Biden (`biden.jpg`) side by side, each 900 px high: two clear faces, as a
/// JPEG at quality 90 with no EXIF.
pub fn two_faces() -> Vec<u8> {
    let height = 900;
    let scaled = |name: &str| {
        let img = pixels(&registry_face(name));
        let w = img.width() * height / img.height();
        image::imageops::resize(&img, w, height, image::imageops::FilterType::Triangle)
    };
    let (left, right) = (scaled("obama.jpg"), scaled("biden.jpg"));
    let mut both = RgbImage::new(left.width() + right.width(), height);
    image::imageops::overlay(&mut both, &left, 0, 0);
    image::imageops::overlay(&mut both, &right, i64::from(left.width()), 0);
    jpeg_of(&both, 90)
}

/// A real photo with no face: the top of `ultralytics-assets/bus.jpg` (the bus's roof and the street's
/// buildings, above the people), as a JPEG at quality 90.
pub fn no_face() -> Vec<u8> {
    let bus = pixels(&std::fs::read(super::samples("ultralytics-assets").join("bus.jpg")).unwrap());
    let top = image::imageops::crop_imm(&bus, 0, 0, bus.width(), 300).to_image();
    jpeg_of(&top, 90)
}

/// A PNG whose header says `width`×`height` 8-bit grey pixels, all black: tens of kilobytes that
/// would decode to `width`·`height` bytes and more (a decompression bomb).
pub fn oversize_png(width: u32, height: u32) -> Vec<u8> {
    let black = vec![0u8; width as usize * height as usize];
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Best,
        image::codecs::png::FilterType::NoFilter,
    )
    .write_image(&black, width, height, image::ExtendedColorType::L8)
    .unwrap();
    out
}

/// Lower-case hex SHA-256, as `UploadMeta::photo_sha256` carries it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    vigil::hashing::sha256_hex(bytes)
}
