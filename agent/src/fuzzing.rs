//! Fuzz targets: the parsers that take bytes from outside the box, each as a plain function over
//! arbitrary bytes that must never panic, hang or allocate without bound. They return nothing: an
//! error is a correct answer to bad input; only a panic (or a sanitizer report) is a finding.
//!
//! Two drivers call them: `fuzz/` (cargo-fuzz and libFuzzer, for long runs by hand) and `tests/fuzz.rs`
//! (a seeded, bounded mutation run in every `cargo test`). A crash found by either becomes a named
//! regression test in `tests/fuzz.rs`.

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use crate::evidence::canonical;
use crate::evidence::keys::PublicKey;
use crate::publish::commands;

/// A fixed platform key for the command target, so that a payload which is a JSON object can also be
/// signed and followed past the signature check.
fn platform() -> &'static (ring::signature::Ed25519KeyPair, PublicKey) {
    static KEY: OnceLock<(ring::signature::Ed25519KeyPair, PublicKey)> = OnceLock::new();
    KEY.get_or_init(|| {
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[7; 32]).expect("a 32-byte seed is a key");
        let public = ring::signature::KeyPair::public_key(&pair).as_ref();
        let public = PublicKey::parse(&B64.encode(public)).expect("32 bytes are a public key");
        (pair, public)
    })
}

/// A command payload as it arrives on `…/cmd/ping`: verified as is (almost always refused before the
/// signature), then, when it parses as an object, signed with the test platform key and verified
/// again at its own `issued_at`, which exercises the canonical form and the checks after the signature.
pub fn command(data: &[u8]) {
    let (pair, public) = platform();
    let window = Duration::from_secs(300);
    let mut accept_nonce = |_: &str, _: SystemTime| Ok(true);
    let _ = commands::verify("ping", data, Some(public), window, SystemTime::now(), &mut accept_nonce);
    let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(data) else { return };
    object.remove("signature");
    let mut value = Value::Object(object);
    let Ok(bytes) = canonical::to_bytes(&value) else { return };
    value["signature"] = Value::String(B64.encode(pair.sign(&bytes).as_ref()));
    let issued_at = value["issued_at"].as_str().and_then(|t| humantime::parse_rfc3339(t).ok());
    let now = issued_at.unwrap_or_else(SystemTime::now);
    let payload = value.to_string();
    if let Ok(command) = commands::verify("ping", payload.as_bytes(), Some(public), window, now, &mut accept_nonce) {
        let _ = canonical::to_bytes(&command.args);
    }
}

/// A configuration file: parsed, validated, and its roll-call schedule built, as `vigil check-config`
/// does (without the file checks, which look at this machine's files).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = crate::config::parse(Path::new("fuzz.toml"), text) else { return };
    let errors = crate::config::validate(&config);
    let _ = config.rollcalls.schedule(config.rollcalls.seed.unwrap_or(1));
    for error in errors {
        let _ = error.to_string();
    }
}

/// An image file (photo upload, enrolment photo): format sniffing, limits, decoding and the EXIF
/// orientation.
pub fn image(data: &[u8]) {
    let _ = crate::analyze::image::decode_rgb("fuzz", data);
}

/// An evidence manifest, as `vigil verify` parses it after the signature check.
pub fn manifest(data: &[u8]) {
    let mut problems = Vec::new();
    let _ = crate::evidence::verify::parse_manifest(data, &mut problems);
}

/// `image` (a JPEG or PNG from the `image` crate's encoders) with an EXIF block whose Orientation tag
/// (1..8, as in the EXIF standard) is `orientation`: an APP1 segment after a JPEG's start-of-image, or an
/// eXIf chunk after a PNG's header. What a phone writes for a photo held upright (6: "rotate 90°
/// clockwise to display"); seeds for the image target and the EXIF tests. `None` for other bytes.
pub fn with_exif_orientation(image: &[u8], orientation: u16) -> Option<Vec<u8>> {
    // TIFF header (big-endian), one IFD with one entry: 0x0112 Orientation, SHORT, count 1.
    let mut tiff = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
    tiff.extend(orientation.to_be_bytes());
    tiff.extend([0, 0, 0, 0, 0, 0]); // value padding, then no next IFD
    if image.starts_with(&[0xFF, 0xD8]) {
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend(&tiff);
        let mut out = image[..2].to_vec();
        out.extend([0xFF, 0xE1]);
        out.extend(u16::try_from(app1.len() + 2).ok()?.to_be_bytes());
        out.extend(app1);
        out.extend(&image[2..]);
        return Some(out);
    }
    const SIGNATURE_AND_IHDR: usize = 8 + 4 + 4 + 13 + 4;
    if image.starts_with(b"\x89PNG\r\n\x1a\n") && image.len() > SIGNATURE_AND_IHDR {
        let mut chunk = b"eXIf".to_vec();
        chunk.extend(&tiff);
        let mut out = image[..SIGNATURE_AND_IHDR].to_vec();
        out.extend(u32::try_from(tiff.len()).ok()?.to_be_bytes());
        out.extend(&chunk);
        out.extend(crc32(&chunk).to_be_bytes());
        out.extend(&image[SIGNATURE_AND_IHDR..]);
        return Some(out);
    }
    None
}

/// CRC-32 (ISO-HDLC, as PNG chunks use), bit by bit: seeds are small.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_png_s() {
        // The IEND chunk's CRC, in every PNG file.
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
    }
}
