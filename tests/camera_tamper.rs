//! Tamper detection on generated H.264 clips with a known timeline: the expected tamper kinds, at the
//! expected times, and nothing on normal footage (static scene with sensor noise, lights dimming).

mod common;

use std::time::UNIX_EPOCH;

use image::RgbImage;
use vigil::analyze::image::frame_from;
use vigil::decide::TamperKind;
use vigil::source::tamper::{TamperChange, TamperDetector};

use common::media::{add_noise, decode_clip, encode_clip, scale_brightness};

const FPS: u32 = 10;
const SECONDS: usize = 60;

/// A ward-like view: a registry photo fitted into a 640×360 frame.
fn view(photo: &str) -> RgbImage {
    let img = vigil::analyze::image::load_rgb(&common::face_images().join(photo)).unwrap();
    frame_from(&img, 640, 360)
}

/// Encodes a 60 s clip whose frame at second `t` is `scene(t, frame index)`, decodes it again and runs
/// the tamper detector over the decoded frames (reference = the view at configuration time).
fn tamper_changes(
    name: &str,
    reference: &RgbImage,
    scene: impl Fn(f64, usize) -> RgbImage,
) -> Vec<(u64, TamperChange)> {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join(format!("{name}.mp4"));
    encode_clip(&clip, 640, 360, FPS, SECONDS * FPS as usize, 2 * FPS, |i| scene(i as f64 / f64::from(FPS), i));
    let frames = decode_clip(&clip);
    assert_eq!(frames.len(), SECONDS * FPS as usize, "{name}: frames lost in encoding");
    let mut detector = TamperDetector::new(Default::default(), Some(reference));
    let mut changes = Vec::new();
    for (pts, img) in &frames {
        for change in detector.observe(img, UNIX_EPOCH + *pts) {
            changes.push((pts.as_secs(), change));
        }
    }
    changes
}

fn noisy(base: &RgbImage, seed: usize) -> RgbImage {
    let mut img = base.clone();
    add_noise(&mut img, 6, seed as u64);
    img
}

#[test]
fn normal_footage_raises_nothing() {
    let room = view("obama.jpg");
    // Static scene, sensor noise, lights dimming to 55 % over seconds 20-30 and staying there.
    let changes = tamper_changes("normal", &room, |t, i| {
        let mut img = noisy(&room, i);
        scale_brightness(&mut img, (1.0 - 0.045 * (t - 20.0).clamp(0.0, 10.0)) as f32);
        img
    });
    assert_eq!(changes, vec![], "false tamper alarms on a normal scene");
}

#[test]
fn covered_lens_is_raised_and_cleared() {
    let room = view("obama.jpg");
    let dark = RgbImage::from_pixel(640, 360, image::Rgb([12, 11, 14]));
    let changes =
        tamper_changes("covered", &room, |t, i| noisy(if (20.0..40.0).contains(&t) { &dark } else { &room }, i));
    let kinds: Vec<_> = changes.iter().map(|(_, c)| *c).collect();
    assert_eq!(
        kinds,
        vec![TamperChange::Raised(TamperKind::Covered), TamperChange::Cleared(TamperKind::Covered)],
        "{changes:?}"
    );
    // Default hold time 5 s: raised about 25 s in, cleared about 45 s in.
    assert!((24..=26).contains(&changes[0].0) && (44..=46).contains(&changes[1].0), "{changes:?}");
}

#[test]
fn frozen_picture_is_raised() {
    let room = view("obama.jpg");
    let stuck = noisy(&room, 12345);
    let changes = tamper_changes("frozen", &room, |t, i| if t >= 15.0 { stuck.clone() } else { noisy(&room, i) });
    assert_eq!(
        changes.iter().map(|(_, c)| *c).collect::<Vec<_>>(),
        vec![TamperChange::Raised(TamperKind::Frozen)],
        "{changes:?}"
    );
    assert!((34..=37).contains(&changes[0].0), "{changes:?}");
}

#[test]
fn view_turned_away_is_raised_as_moved() {
    let room = view("obama.jpg");
    let elsewhere = view("biden.jpg");
    let changes = tamper_changes("moved", &room, |t, i| noisy(if t >= 15.0 { &elsewhere } else { &room }, i));
    assert_eq!(
        changes.iter().map(|(_, c)| *c).collect::<Vec<_>>(),
        vec![TamperChange::Raised(TamperKind::Moved)],
        "{changes:?}"
    );
    assert!((29..=31).contains(&changes[0].0), "{changes:?}");
}
