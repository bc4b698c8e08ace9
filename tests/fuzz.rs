//! Fuzzing in every `cargo test`: the four parsers that take bytes from outside the box
//! (`vigil::fuzzing`: commands, configuration, images with EXIF, evidence manifests) run on real seeds
//! and on a bounded number of seeded mutations of them (bit flips, interesting bytes, insertions,
//! deletions, truncations, splices, duplicated ranges, tokens of the format). Deterministic: the same
//! inputs on every run, so a failure reproduces; the input that failed is written to
//! `target/fuzz-failures/` and named in the message. Long runs use libFuzzer on the same functions
//! (`fuzz/`, see its README). A crash found by either becomes a named regression test at the end.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use image::RgbImage;
use serde_json::json;
use vigil::fuzzing;

/// splitmix64: small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One to four mutations of a seed.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], tokens: &[&[u8]]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = [0x00, 0xFF, 0x7F, 0x80, b'"', b'\\', b'9', rng.next() as u8][rng.below(8)];
            }
            2 => {
                let at = rng.below(len + 1);
                let bytes: Vec<u8> = (0..1 + rng.below(8)).map(|_| rng.next() as u8).collect();
                data.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let from = rng.below(len);
                let to = (from + 1 + rng.below(16)).min(len);
                data.drain(from..to);
            }
            4 => data.truncate(rng.below(len + 1)),
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                let (a, b) = (rng.below(len + 1), rng.below(other.len() + 1));
                data.truncate(a);
                data.extend_from_slice(&other[b..]);
            }
            6 if !tokens.is_empty() => {
                let at = rng.below(len + 1);
                data.splice(at..at, tokens[rng.below(tokens.len())].iter().copied());
            }
            7 if len > 0 => {
                let from = rng.below(len);
                let to = (from + 1 + rng.below(64)).min(len);
                let copy = data[from..to].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, copy);
            }
            _ => {}
        }
    }
    data
}

/// Runs `target` on every seed, then on `iterations` mutations; a panic fails the test naming the
/// input, which is also saved for the regression test it must become.
fn fuzz(name: &str, target: fn(&[u8]), seeds: &[Vec<u8>], tokens: &[&[u8]], iterations: usize) {
    // `VIGIL_FUZZ_SEEDS=fuzz/seeds cargo test --test fuzz` refreshes the seed corpus of fuzz/.
    if let Some(dir) = std::env::var_os("VIGIL_FUZZ_SEEDS") {
        let dir = Path::new(&dir).join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
        }
    }
    let mut rng = Rng(0x5EED ^ name.len() as u64);
    let inputs = seeds.iter().cloned().chain((0..iterations).map(|_| mutate(&mut rng, seeds, tokens)));
    for (i, input) in inputs.enumerate() {
        if std::panic::catch_unwind(|| target(&input)).is_err() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-failures");
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("{name}-{i}.bin"));
            std::fs::write(&file, &input).unwrap();
            panic!("fuzz target {name} panicked on input {i} ({} bytes), saved to {}", input.len(), file.display());
        }
    }
}

fn platform_key() -> ring::signature::Ed25519KeyPair {
    ring::signature::Ed25519KeyPair::from_seed_unchecked(&[3; 32]).unwrap()
}

/// Signed commands of each kind the platform sends, as it sends them.
fn command_seeds() -> Vec<Vec<u8>> {
    let key = platform_key();
    let at = UNIX_EPOCH + Duration::from_secs(1_795_860_000);
    let embedding = {
        use base64::Engine;
        let floats: Vec<u8> = (0..128).flat_map(|i| (i as f32 / 200.0).to_le_bytes()).collect();
        base64::engine::general_purpose::STANDARD.encode(floats)
    };
    [
        ("ping", json!({})),
        ("settlement", json!({"camera": "window-1", "claimed_id": "p-1", "transaction_id": "tx-9", "watch_secs": 30})),
        (
            "roster",
            json!({
                "inpatients": [{"patient": "p-1", "camera": "ward-1", "bed": "bed-1"}],
                "dialysis_sessions": [{"session": "hd-1", "patient": "p-2", "camera": "dialysis-1",
                    "chair": "chair-2", "start": "2026-11-28T08:00:00+08:00", "billed_minutes": 240}],
                "shifts": [{"physician": "d-1", "start": "2026-11-28T08:00:00Z", "end": "2026-11-28T16:00:00Z"}],
            }),
        ),
        ("enroll", json!({"id": "p-3", "role": "patient", "embeddings": [embedding]})),
        ("rollcall", json!({"cameras": ["ward-1"]})),
    ]
    .into_iter()
    .map(|(name, args)| {
        vigil::publish::commands::sign(&key, name, args, at, "0123456789abcdef").to_string().into_bytes()
    })
    .collect()
}

const COMMAND_TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\u0000",
    b"\\ud800",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"1180591620717411303424",
    b"1e999",
    b"0.5",
    b"null",
    b"true",
    b"\"args\":",
    b"\"name\":\"ping\",",
    b"\"issued_at\":\"2026-11-28T10:00:00+08:00\",",
    b"\"signature\":null,",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
];

fn config_seeds() -> Vec<Vec<u8>> {
    let minimal = "[site]\nid = \"s\"\ndevice_id = \"d\"\n".as_bytes().to_vec();
    let example = std::fs::read(common::repo("config/vigil.example.toml")).unwrap();
    let demo = std::fs::read(common::repo("config/demo.toml")).unwrap();
    vec![minimal, example, demo]
}

const CONFIG_TOKENS: &[&[u8]] = &[
    b"\n[[cameras]]\nid = \"c\"\nrole = \"ward\"\nurl = \"rtsp://a:b/c@d/e\"\n",
    b"\n[rollcalls]\nutc_offset = \"+15:00\"\ntimes = [\"24:00\", \"07:5\"]\n",
    b"\n[faces]\nmin_face_px = -1.0\n",
    b" = nan\n",
    b" = -inf\n",
    b" = 1e308\n",
    b" = 99999999999999999999\n",
    b" = \"\"\n",
    b"[[0.1, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.9]]",
    b"\"",
    b"[",
    b"]",
    b"\n",
    b"'''",
    b"rtsp://[::1",
    b"\"+14:00\"",
    b"\"10 GiB\"",
    b"\"18446744073709551615 B\"",
];

/// Small images as phones and cameras send them: a face photo scaled down, as JPEG and PNG, plain and
/// with EXIF orientations.
fn image_seeds() -> Vec<Vec<u8>> {
    let photo = common::face_photo("obama.jpg");
    let small = image::imageops::resize(&photo, 48, 64, image::imageops::FilterType::Triangle);
    let gray = image::DynamicImage::ImageRgb8(small.clone()).into_luma8();
    let encode = |img: &image::DynamicImage, format| {
        let mut bytes = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut bytes), format).unwrap();
        bytes
    };
    let rgb = image::DynamicImage::ImageRgb8(small);
    let jpeg = encode(&rgb, image::ImageFormat::Jpeg);
    let png = encode(&rgb, image::ImageFormat::Png);
    vec![
        fuzzing::with_exif_orientation(&jpeg, 6).unwrap(),
        fuzzing::with_exif_orientation(&png, 8).unwrap(),
        jpeg,
        png,
        encode(&image::DynamicImage::ImageLuma8(gray), image::ImageFormat::Png),
    ]
}

const IMAGE_TOKENS: &[&[u8]] = &[
    b"\xFF\xD8",
    b"\xFF\xD9",
    b"\xFF\xDA",
    b"\xFF\xE1\x00\x10Exif\x00\x00",
    b"\xFF\xC0\x00\x11\x08\x40\x00\x40\x00",
    b"MM\x00\x2a",
    b"II\x2a\x00",
    b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x09",
    b"\xFF\xFF\xFF\xFF",
    b"IHDR",
    b"eXIf",
    b"IDAT",
];

/// A t0 for the recording and the bundle: 2026-11-24T10:00:00Z.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_514_400)
}

/// A real bundle written by the evidence store from a real recording; returns its directory.
fn store_bundle(root: &Path) -> PathBuf {
    let recordings = root.join("recordings/cam");
    std::fs::create_dir_all(&recordings).unwrap();
    let segment = vigil::source::pipeline::segment_path(&recordings, t0());
    common::media::encode_clip(&segment, 160, 120, 10, 40, 10, |i| {
        let mut img = RgbImage::from_pixel(160, 120, image::Rgb([90, 110, 130]));
        common::media::add_noise(&mut img, 8, i as u64);
        img
    });
    let key = vigil::evidence::keys::DeviceKey::init(&root.join("keys/device.pem")).unwrap();
    let models = vec![("centerface".to_owned(), "ab".repeat(32))];
    let mut store = vigil::evidence::store::Store::open(&root.join("evidence"), key, "hosp", "edge", models).unwrap();
    let at = t0() + Duration::from_secs(2);
    let request = vigil::evidence::store::EvidenceRequest {
        event_id: uuid::Uuid::now_v7(),
        kind: "settlement_identity_mismatch".into(),
        camera: "cam".into(),
        camera_info: vigil::evidence::manifest::CameraIdentity::new("cam", "settlement_window", None, "test://smpte"),
        at,
        onset: None,
        thresholds: BTreeMap::from([("match_distance".to_owned(), "0.6".to_owned())]),
        details: BTreeMap::from([("claimed_id".to_owned(), "p-1".to_owned())]),
        snapshot: RgbImage::from_pixel(160, 120, image::Rgb([20, 20, 20])),
        snapshot_at: at,
        detections: vec![vigil::evidence::store::Detection {
            label: "face".into(),
            bbox: [10.0, 10.0, 60.0, 70.0],
            score: 0.84,
        }],
        recordings,
        clip_from: at - Duration::from_secs(1),
        clip_to: at + Duration::from_secs(1),
    };
    store.write(&request).unwrap().dir
}

const MANIFEST_TOKENS: &[&[u8]] = &[
    b"\"files\":{\"../../etc/passwd\":{\"bytes\":1,\"sha256\":\"00\"}},",
    b"\"files\":{\"\":{}},",
    b"\"sequence\":18446744073709551616,",
    b"\"sequence\":-1,",
    b"\"schema\":\"vigil.evidence.v1\",",
    b"{",
    b"}",
    b"[",
    b"\"",
    b"\\u0000",
    b"1.5",
];

#[test]
fn command_parser_survives_mutated_commands() {
    fuzz("command", fuzzing::command, &command_seeds(), COMMAND_TOKENS, 15000);
}

#[test]
fn config_loader_survives_mutated_configs() {
    fuzz("config", fuzzing::config, &config_seeds(), CONFIG_TOKENS, 5000);
}

#[test]
fn image_decoder_survives_mutated_photos_with_exif() {
    fuzz("image", fuzzing::image, &image_seeds(), IMAGE_TOKENS, 10000);
}

#[test]
fn manifest_parser_survives_mutated_manifests() {
    let root = tempfile::tempdir().unwrap();
    let real = std::fs::read(store_bundle(root.path()).join("manifest.json")).unwrap();
    // The seed is whole: the entry point reads the store's own manifest without a problem.
    let mut problems = Vec::new();
    let manifest = vigil::evidence::verify::parse_manifest(&real, &mut problems).unwrap();
    assert_eq!(problems, Vec::<String>::new());
    let files: Vec<&str> = manifest.files.iter().map(|(f, _, _)| f.as_str()).collect();
    // v2: the original frame beside the annotated snapshot (evidence-v2 spec, "Bundle content").
    assert_eq!((manifest.sequence, files), (1, vec!["clip.mp4", "frame.jpg", "snapshot.jpg"]));
    let seeds = vec![real, b"{}".to_vec(), br#"{"files":{"a":{"bytes":1,"sha256":"x"}},"sequence":2}"#.to_vec()];
    fuzz("manifest", fuzzing::manifest, &seeds, MANIFEST_TOKENS, 30000);
}

// Regression tests: defects found on the way, each named after what it was.

/// A manifest listing "../x" made `vigil verify` hash a file outside the bundle (a signed manifest is
/// trusted for its content, not for where it points).
#[test]
fn manifest_listing_a_file_outside_the_bundle_is_refused() {
    let mut problems = Vec::new();
    let manifest = br#"{"files":{"../../etc/passwd":{"bytes":1,"sha256":"00"},"a/b":{},"clip.mp4":{}}}"#;
    let parsed = vigil::evidence::verify::parse_manifest(manifest, &mut problems).unwrap();
    let files: Vec<&str> = parsed.files.iter().map(|(f, _, _)| f.as_str()).collect();
    assert_eq!(files, vec!["clip.mp4"]);
    assert!(
        problems.iter().any(|p| p == "manifest lists \"../../etc/passwd\", which is not a file name inside the bundle"),
        "{problems:#?}"
    );
    assert!(problems.iter().any(|p| p.starts_with("manifest lists \"a/b\"")), "{problems:#?}");
}
