//! What a photo's own EXIF says about where and when it was taken (kamadak-exif): GPS latitude and
//! longitude with their N/S and E/W references, DateTimeOriginal and its OffsetTimeOriginal.
//!
//! A browser's camera capture usually carries no EXIF at all, a phone's camera app often does. EXIF is
//! a witness, not a requirement: none is a fact (`exif: none`), a block that does not parse is a fact
//! (`exif: unreadable`), and only what it does say is compared with the upload's claims.

use std::io::Cursor;
use std::time::SystemTime;

use exif::{Exif, In, Tag, Value};

use crate::times::{self, Naive};

/// What reading a photo's EXIF gave.
#[derive(Debug, Clone, PartialEq)]
pub enum ExifRead {
    /// The photo has no EXIF block.
    Absent,
    /// It has one that does not parse; the message says why (for logs and the check's facts).
    Unreadable(String),
    Present(ExifFacts),
}

impl ExifRead {
    /// The `exif` fact of the `image` check: `none`, `unreadable` or `read`.
    pub fn fact(&self) -> &'static str {
        match self {
            ExifRead::Absent => "none",
            ExifRead::Unreadable(_) => "unreadable",
            ExifRead::Present(_) => "read",
        }
    }

    pub fn facts(&self) -> Option<&ExifFacts> {
        match self {
            ExifRead::Present(facts) => Some(facts),
            _ => None,
        }
    }
}

/// The EXIF fields the checks use; each absent when the photo lacks it or it is malformed (`problems`
/// says which).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExifFacts {
    /// `[latitude, longitude]` in signed degrees (south and west negative).
    pub gps: Option<[f64; 2]>,
    pub taken: Option<TakenAt>,
    /// Fields present but unusable, in words (`GPSLatitude has 2 values`).
    pub problems: Vec<String>,
}

/// DateTimeOriginal: a wall-clock time, with the offset the camera recorded when it did.
#[derive(Debug, Clone, PartialEq)]
pub struct TakenAt {
    /// `YYYY-MM-DDTHH:MM:SS`, as the camera's clock showed it.
    pub local: String,
    /// OffsetTimeOriginal (`+08:00`), when present and well-formed.
    pub offset: Option<String>,
}

impl TakenAt {
    /// The instant: by the recorded offset, else taken as the site's wall-clock time.
    pub fn instant(&self, site_offset_secs: i32) -> Result<SystemTime, String> {
        match &self.offset {
            Some(offset) => times::parse(&format!("{}{offset}", self.local), Naive::Refuse),
            None => times::parse(&self.local, Naive::SiteOffset(site_offset_secs)),
        }
    }

    /// As written in facts: the local time and its offset when known.
    pub fn text(&self) -> String {
        format!("{}{}", self.local, self.offset.as_deref().unwrap_or(""))
    }
}

/// Reads the EXIF of a JPEG or PNG body.
pub fn read(bytes: &[u8]) -> ExifRead {
    match exif::Reader::new().read_from_container(&mut Cursor::new(bytes)) {
        Ok(exif) => ExifRead::Present(facts(&exif)),
        Err(exif::Error::NotFound(_)) => ExifRead::Absent,
        Err(e) => ExifRead::Unreadable(e.to_string()),
    }
}

/// The fields the checks use, from parsed EXIF.
pub fn facts(exif: &Exif) -> ExifFacts {
    let mut problems = Vec::new();
    let gps = match (
        coordinate(exif, Tag::GPSLatitude, Tag::GPSLatitudeRef, b'N', b'S', 90.0),
        coordinate(exif, Tag::GPSLongitude, Tag::GPSLongitudeRef, b'E', b'W', 180.0),
    ) {
        (Ok(Some(lat)), Ok(Some(lon))) => Some([lat, lon]),
        (Ok(None), Ok(None)) => None,
        (lat, lon) => {
            for problem in [lat.err(), lon.err()].into_iter().flatten() {
                problems.push(problem);
            }
            if problems.is_empty() {
                problems.push("GPS has only one of latitude and longitude".to_owned());
            }
            None
        }
    };
    let taken = match ascii(exif, Tag::DateTimeOriginal, In::PRIMARY) {
        None => None,
        Some(text) => match exif_datetime(&text) {
            Some(local) => {
                let offset = ascii(exif, Tag::OffsetTimeOriginal, In::PRIMARY).and_then(|o| {
                    let ok = o.len() == 6
                        && matches!(o.as_bytes()[0], b'+' | b'-')
                        && o.as_bytes()[3] == b':'
                        && o.bytes().enumerate().all(|(i, b)| i == 0 || i == 3 || b.is_ascii_digit());
                    if !ok {
                        problems.push(format!("OffsetTimeOriginal {o:?} is not like \"+08:00\""));
                    }
                    ok.then_some(o)
                });
                Some(TakenAt { local, offset })
            }
            None => {
                problems.push(format!("DateTimeOriginal {text:?} is not like \"2026:12:05 14:30:00\""));
                None
            }
        },
    };
    ExifFacts { gps, taken, problems }
}

/// The first ASCII string of a field, trimmed.
fn ascii(exif: &Exif, tag: Tag, ifd: In) -> Option<String> {
    match &exif.get_field(tag, ifd)?.value {
        Value::Ascii(values) => {
            let text = String::from_utf8_lossy(values.first()?).trim().trim_end_matches('\0').to_owned();
            (!text.is_empty()).then_some(text)
        }
        _ => None,
    }
}

/// `2026:12:05 14:30:00` → `2026-12-05T14:30:00`; `None` when it is not that shape.
fn exif_datetime(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let shape = b.len() == 19
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':'
        && b.iter().enumerate().all(|(i, c)| matches!(i, 4 | 7 | 10 | 13 | 16) || c.is_ascii_digit());
    shape.then(|| format!("{}-{}-{}T{}", &text[0..4], &text[5..7], &text[8..10], &text[11..19]))
}

/// A GPS coordinate (degrees, minutes, seconds as three rationals) signed by its reference.
fn coordinate(exif: &Exif, tag: Tag, reference: Tag, plus: u8, minus: u8, limit: f64) -> Result<Option<f64>, String> {
    let Some(field) = exif.get_field(tag, In::PRIMARY) else {
        return Ok(None);
    };
    let dms = match &field.value {
        Value::Rational(v) if v.len() == 3 => v,
        Value::Rational(v) => return Err(format!("{tag} has {} values, not 3", v.len())),
        _ => return Err(format!("{tag} is not degrees, minutes and seconds")),
    };
    if dms.iter().any(|r| r.denom == 0) {
        return Err(format!("{tag} has a zero denominator"));
    }
    let degrees = dms[0].to_f64() + dms[1].to_f64() / 60.0 + dms[2].to_f64() / 3600.0;
    let sign = match ascii(exif, reference, In::PRIMARY).as_deref().map(str::as_bytes) {
        Some([c]) if *c == plus => 1.0,
        Some([c]) if *c == minus => -1.0,
        other => {
            return Err(format!(
                "{reference} is {:?}, not {:?} or {:?}",
                other.map(String::from_utf8_lossy),
                plus as char,
                minus as char
            ));
        }
    };
    if degrees.is_nan() || degrees > limit {
        return Err(format!("{tag} is {degrees}°, beyond ±{limit}°"));
    }
    Ok(Some(sign * degrees))
}

#[cfg(test)]
mod tests {
    use exif::experimental::Writer;
    use exif::{Field, Rational};

    use super::*;

    fn ascii_field(tag: Tag, text: &str) -> Field {
        Field { tag, ifd_num: In::PRIMARY, value: Value::Ascii(vec![text.as_bytes().to_vec()]) }
    }

    fn dms(deg: f64) -> Field {
        let d = deg.abs();
        let (whole, minutes) = (d.trunc(), (d.fract() * 60.0));
        let seconds = (minutes.fract() * 60.0 * 10_000.0).round() as u32;
        Field {
            tag: Tag::GPSLatitude,
            ifd_num: In::PRIMARY,
            value: Value::Rational(vec![
                Rational { num: whole as u32, denom: 1 },
                Rational { num: minutes.trunc() as u32, denom: 1 },
                Rational { num: seconds, denom: 10_000 },
            ]),
        }
    }

    fn parsed(fields: &[Field]) -> ExifFacts {
        let mut writer = Writer::new();
        for f in fields {
            writer.push_field(f);
        }
        let mut tiff = Cursor::new(Vec::new());
        writer.write(&mut tiff, false).unwrap();
        facts(&exif::Reader::new().read_raw(tiff.into_inner()).unwrap())
    }

    #[test]
    fn gps_and_original_time_are_read_with_their_references() {
        // Rio de Janeiro: south and west.
        let lat = Field { tag: Tag::GPSLatitude, ..dms(-22.906_847) };
        let lon = Field { tag: Tag::GPSLongitude, ..dms(-43.172_897) };
        let facts = parsed(&[
            lat,
            ascii_field(Tag::GPSLatitudeRef, "S"),
            lon,
            ascii_field(Tag::GPSLongitudeRef, "W"),
            ascii_field(Tag::DateTimeOriginal, "2026:12:05 14:30:00"),
            ascii_field(Tag::OffsetTimeOriginal, "-03:00"),
        ]);
        let [la, lo] = facts.gps.unwrap();
        assert!((la + 22.906_847).abs() < 1e-6 && (lo + 43.172_897).abs() < 1e-6, "{la} {lo}");
        let taken = facts.taken.unwrap();
        assert_eq!(taken.text(), "2026-12-05T14:30:00-03:00");
        assert_eq!(times::format(taken.instant(8 * 3600).unwrap()), "2026-12-05T17:30:00Z", "the recorded offset wins");
        assert!(facts.problems.is_empty());
    }

    #[test]
    fn a_naive_original_time_is_the_site_s_wall_clock() {
        let facts = parsed(&[ascii_field(Tag::DateTimeOriginal, "2026:12:05 14:30:00")]);
        let taken = facts.taken.unwrap();
        assert_eq!(taken.offset, None);
        assert_eq!(times::format(taken.instant(8 * 3600).unwrap()), "2026-12-05T06:30:00Z");
        assert_eq!(facts.gps, None);
    }

    #[test]
    fn malformed_fields_are_problems_not_values() {
        let facts = parsed(&[
            Field { tag: Tag::GPSLatitude, ..dms(31.2) },
            ascii_field(Tag::GPSLatitudeRef, "Q"),
            ascii_field(Tag::DateTimeOriginal, "yesterday"),
        ]);
        assert_eq!(facts.gps, None);
        assert_eq!(facts.taken, None);
        assert_eq!(facts.problems.len(), 2, "{:?}", facts.problems);
    }

    #[test]
    fn damaged_exif_blocks_never_panic() {
        let lat = Field { tag: Tag::GPSLatitude, ..dms(39.9131) };
        let lon = Field { tag: Tag::GPSLongitude, ..dms(116.417) };
        let fields = [
            lat,
            ascii_field(Tag::GPSLatitudeRef, "N"),
            lon,
            ascii_field(Tag::GPSLongitudeRef, "E"),
            ascii_field(Tag::DateTimeOriginal, "2026:12:05 14:30:00"),
            ascii_field(Tag::OffsetTimeOriginal, "+08:00"),
        ];
        let mut writer = Writer::new();
        for f in &fields {
            writer.push_field(f);
        }
        let mut tiff = Cursor::new(Vec::new());
        writer.write(&mut tiff, true).unwrap();
        let tiff = tiff.into_inner();
        let segment = |tiff: &[u8]| {
            let len = (2 + 6 + tiff.len()) as u16;
            [&[0xFF, 0xD8, 0xFF, 0xE1][..], &len.to_be_bytes(), b"Exif\0\0", tiff, &[0xFF, 0xD9]].concat()
        };
        assert!(matches!(read(&segment(&tiff)), ExifRead::Present(ExifFacts { gps: Some(_), taken: Some(_), .. })));
        // Every byte of the TIFF set to a few hostile values, one at a time: offsets, counts and types
        // pointing anywhere.
        let mut outcomes = [0usize; 3];
        for at in 0..tiff.len() {
            for value in [0x00, 0x01, 0x7F, 0xFF] {
                let mut bad = tiff.clone();
                bad[at] = value;
                match read(&segment(&bad)) {
                    ExifRead::Absent => outcomes[0] += 1,
                    ExifRead::Unreadable(_) => outcomes[1] += 1,
                    ExifRead::Present(_) => outcomes[2] += 1,
                }
            }
        }
        assert!(outcomes[1] > 0 && outcomes[2] > 0, "{outcomes:?}");
    }

    #[test]
    fn no_exif_and_bad_exif_are_facts() {
        assert_eq!(read(b"\xFF\xD8\xFF\xDB\0\x04\0\0\xFF\xD9"), ExifRead::Absent);
        // An APP1 Exif segment whose TIFF header is garbage.
        let bad = [b"\xFF\xD8\xFF\xE1\x00\x10Exif\0\0XXXXXXXX".as_slice(), b"\xFF\xD9"].concat();
        let bad = read(&bad);
        assert_eq!(bad.fact(), "unreadable", "{bad:?}");
    }
}
