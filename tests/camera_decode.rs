//! Decoding on demand, in a real camera pipeline: a camera idling on keyframes switches to full-rate
//! decoding mid-GOP, its GOP is replayed so frames come at `analysis_fps` at once (not at the next
//! keyframe), every replayed frame is the picture a full decode gives (no corruption), and it goes back
//! to keyframes.
//!
//! A camera with a `detect_url` records `url` and analyses `detect_url`, in one pipeline.
//!
//! The camera reads a generated 12 s clip (640×360, 25 fps, a keyframe every 50 frames, a picture that
//! moves every frame) paced like a live camera. The switches happen at exact stream positions (a probe
//! before the gate sets the control when unit 120, then 210, comes), so the expected frames are known.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use vigil::config::Camera;
use vigil::source::camera::{CameraCounters, CameraWorker, Supervision};
use vigil::source::decode::{DecodeControl, DecodeMode};
use vigil::source::settings::Decode;
use vigil::source::slot::FrameSlot;

const FPS: u64 = 25;
const GOP: u64 = 50;
const FRAMES: u64 = 300;
/// Unit at which the camera is switched to full decoding (mid-GOP: 19 deltas after keyframe 100).
const TO_FULL: u64 = 120;
/// Unit at which it goes back to keyframes.
const TO_KEYFRAMES: u64 = 210;

/// Frame index of a timestamp, from the stream's first (the camera's timestamper may offset them).
fn index(pts: gst::ClockTime, first: gst::ClockTime) -> u64 {
    ((pts - first).nseconds() * FPS + 500_000_000) / 1_000_000_000
}

fn make_clip(path: &Path, bframes: u32) {
    make_clip_coded(path, 640, 360, FRAMES, bframes);
}

fn make_clip_sized(path: &Path, width: u32, height: u32, frames: u64) {
    make_clip_coded(path, width, height, frames, 0);
}

/// A clip of `frames` frames; with `bframes`, that many B-frames between references (no pyramid), so
/// units come in decode order, not presentation order.
fn make_clip_coded(path: &Path, width: u32, height: u32, frames: u64, bframes: u32) {
    let status = Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc", &format!("num-buffers={frames}"), "pattern=smpte", "horizontal-speed=4", "!"])
        .args([&format!("video/x-raw,format=I420,width={width},height={height},framerate={FPS}/1"), "!"])
        .args(["x264enc", &format!("key-int-max={GOP}"), &format!("bframes={bframes}"), "b-pyramid=false"])
        .args(["speed-preset=ultrafast", "bitrate=1500", "!"])
        .args(["video/x-h264,profile=main", "!", "h264parse", "!", "mp4mux", "!", "filesink"])
        .arg(format!("location={}", path.display()))
        .status()
        .expect("gst-launch-1.0 (scripts/setup installs it)");
    assert!(status.success(), "cannot make the test clip");
}

/// Every frame of the clip fully decoded and converted as the camera pipeline converts, by frame index.
fn full_decode(path: &Path) -> BTreeMap<u64, Vec<u8>> {
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! qtdemux ! h264parse ! avdec_h264 ! videoscale ! videoconvert \
         ! video/x-raw,format=RGB,pixel-aspect-ratio=1/1 ! appsink name=s sync=false",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline.by_name("s").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let (mut frames, mut first) = (BTreeMap::new(), None);
    while let Ok(sample) = sink.pull_sample() {
        let buffer = sample.buffer().unwrap();
        let first = *first.get_or_insert(buffer.pts().unwrap());
        frames.insert(index(buffer.pts().unwrap(), first), buffer.map_readable().unwrap().to_vec());
    }
    pipeline.set_state(gst::State::Null).unwrap();
    frames
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as u64).sum::<u64>() as f64 / a.len() as f64
}

/// A frame that reached the appsink.
struct Out {
    index: u64,
    at: Instant,
    pixels: Vec<u8>,
}

#[test]
fn keyframes_then_a_replayed_gop_at_full_rate_then_keyframes_again() {
    switch_mid_gop(0);
}

/// The same with B-frames: the gate sees units in decode order (a B-frame after the reference it
/// follows in the picture), and the replay must hand the decoder the GOP in that order.
#[test]
fn with_b_frames_the_replay_keeps_decode_order() {
    switch_mid_gop(2);
}

fn switch_mid_gop(bframes: u32) {
    vigil::source::pipeline::init().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    make_clip(&clip, bframes);
    let reference = full_decode(&clip);
    assert_eq!(reference.len() as u64, FRAMES, "the reference decode has every frame");
    // The comparison can tell frames apart: neighbours differ clearly.
    assert!(mean_abs_diff(&reference[&104], &reference[&105]) > 5.0);

    let text =
        format!("id = \"d\"\nrole = \"settlement_window\"\nurl = \"file://{}\"\nanalysis_fps = 5\n", clip.display());
    let camera: Camera = toml::from_str(&text).unwrap();
    let mut stream = camera.stream();
    stream.decode = Decode::OnDemand;
    let control = Arc::new(DecodeControl::new(DecodeMode::Keyframes));
    let out: Arc<Mutex<Vec<Out>>> = Arc::default();
    let switched: Arc<Mutex<Option<Instant>>> = Arc::default();
    let first: Arc<Mutex<Option<gst::ClockTime>>> = Arc::default();
    // Units after keyframe 100 in decode order, counted until the switch: what the replay must hand on.
    let before_switch: Arc<Mutex<Option<u64>>> = Arc::default();
    let hook = {
        let (control, out, switched, first) = (control.clone(), out.clone(), switched.clone(), first.clone());
        let before_switch = before_switch.clone();
        move |pipeline: &gst::Pipeline| {
            let first_in = first.clone();
            // The analysis thread's part, at exact stream positions: on the unit before the gate.
            let control = control.clone();
            let switched = switched.clone();
            let before_switch = before_switch.clone();
            let queue = pipeline.by_name("decq").expect("the decoder's queue");
            queue.static_pad("src").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
                    let pts = buffer.pts().unwrap();
                    let first = *first_in.lock().unwrap().get_or_insert(pts);
                    let i = index(pts, first);
                    let mut counted = before_switch.lock().unwrap();
                    match (i, *counted, switched.lock().unwrap().is_some()) {
                        (100, None, false) => *counted = Some(0),
                        (_, Some(n), false) if i != TO_FULL => *counted = Some(n + 1),
                        _ => {}
                    }
                    match i {
                        TO_FULL => {
                            control.set(DecodeMode::Full);
                            *switched.lock().unwrap() = Some(Instant::now());
                        }
                        TO_KEYFRAMES => control.set(DecodeMode::Keyframes),
                        _ => {}
                    }
                }
                gst::PadProbeReturn::Ok
            });
            let out = out.clone();
            let first = first.clone();
            let sink = pipeline.by_name("frames").expect("the appsink");
            sink.static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
                    let pixels = buffer.map_readable().unwrap().to_vec();
                    let first = first.lock().unwrap().expect("a unit came before the frame");
                    out.lock().unwrap().push(Out {
                        index: index(buffer.pts().unwrap(), first),
                        at: Instant::now(),
                        pixels,
                    });
                }
                gst::PadProbeReturn::Ok
            });
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (health, _rx) = mpsc::channel::<vigil::source::health::HealthReport>();
    let counters = Arc::new(CameraCounters::default());
    let worker = CameraWorker {
        camera: stream,
        recordings: None,
        segment: Duration::from_secs(10),
        max_recording_bytes: 1 << 30,
        slot: Arc::new(FrameSlot::default()),
        health: Arc::new(health),
        shutdown: stop.clone(),
        restart: None,
        counters: counters.clone(),
        supervision: Supervision { on_pipeline: Some(Arc::new(hook)), ..Default::default() },
        decode: control.clone(),
    };
    let thread = std::thread::spawn(move || worker.run());
    // The clip lasts 12 s; its last keyframe is unit 250 (10 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !out.lock().unwrap().iter().any(|f| f.index >= 250) {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();

    let out = out.lock().unwrap();
    let indexes: Vec<u64> = out.iter().map(|f| f.index).collect();
    eprintln!("frames analysed (indexes): {indexes:?}");
    assert_eq!(counters.starts.load(Ordering::Relaxed), 1, "one pipeline run");
    // Keyframes only while idle (the first keyframe's successor 100 included).
    let idle: Vec<u64> = indexes.iter().copied().filter(|&i| i <= 100).collect();
    assert_eq!(idle, vec![0, 50, 100], "keyframes only before the switch");
    // The switch at unit 120 replays 101..119; the rate gate (5 of 25 fps) lets every 5th through:
    // 105, 110, 115 come from the replay, long before the next keyframe (150).
    let full: Vec<u64> = indexes.iter().copied().filter(|&i| i > 100 && i < TO_KEYFRAMES).collect();
    let expected: Vec<u64> = (105..TO_KEYFRAMES).step_by(5).collect();
    assert_eq!(full, expected, "every 5th frame from the replayed GOP on, until the switch back");
    let replayed = before_switch.lock().unwrap().expect("keyframe 100 came");
    if bframes == 0 {
        assert_eq!(replayed, 19, "without B-frames, units 101..119");
    }
    assert_eq!((control.switches(), control.replays(), control.replayed_units()), (1, 1, replayed));
    assert_eq!(control.gaps(), 0, "the decoder kept up: nothing dropped before the gate");
    // Back to keyframes: nothing but keyframes after the switch back.
    let after: Vec<u64> = indexes.iter().copied().filter(|&i| i >= TO_KEYFRAMES).collect();
    if bframes == 0 {
        assert_eq!(after, vec![250], "keyframes only after the switch back");
    } else {
        // A reference decoded before the switch back waits in the decoder's reorder buffer for the
        // B-frames shown before it, and comes out when the next keyframe pushes it: a whole picture.
        let (late, keyframes): (Vec<u64>, Vec<u64>) = after.iter().partition(|&&i| i % GOP != 0);
        assert_eq!(keyframes, vec![250], "keyframes only after the switch back");
        assert!(late.iter().all(|&i| i <= TO_KEYFRAMES + u64::from(bframes)), "only a reordered frame: {late:?}");
    }

    // No corrupt frame: each is the picture the full decode gives for the same frame.
    for frame in out.iter() {
        let diff = mean_abs_diff(&frame.pixels, &reference[&frame.index]);
        assert!(diff < 0.5, "frame {} differs from its full decode by {diff:.2} grey levels", frame.index);
    }

    let switched = switched.lock().unwrap().expect("the switch happened");
    let first = out.iter().find(|f| f.index > 100).unwrap();
    eprintln!(
        "switch to full at unit {TO_FULL}: first frame (unit {}, {} units before the switch point) {:.0} ms after the \
         switch; the next keyframe was {} units away",
        first.index,
        TO_FULL - first.index,
        first.at.duration_since(switched).as_secs_f64() * 1000.0,
        150 - TO_FULL
    );
}

#[test]
fn a_sub_stream_is_analysed_while_the_main_stream_is_recorded() {
    vigil::source::pipeline::init().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (main, sub) = (dir.path().join("main.mp4"), dir.path().join("sub.mp4"));
    make_clip_sized(&main, 640, 360, 150);
    make_clip_sized(&sub, 320, 180, 150);
    let text = format!("id = \"s\"\nrole = \"settlement_window\"\nurl = \"file://{}\"\n", main.display());
    let camera: Camera = toml::from_str(&text).unwrap();
    let mut stream = camera.stream();
    stream.detect_url = Some(format!("file://{}", sub.display()));
    stream.decode = Decode::All;
    let recordings = dir.path().join("rec");
    let stop = Arc::new(AtomicBool::new(false));
    let (health, _rx) = mpsc::channel::<vigil::source::health::HealthReport>();
    let slot = Arc::new(FrameSlot::default());
    let counters = Arc::new(CameraCounters::default());
    let worker = CameraWorker {
        camera: stream,
        recordings: Some(recordings.clone()),
        segment: Duration::from_secs(2),
        max_recording_bytes: 1 << 30,
        slot: slot.clone(),
        health: Arc::new(health),
        shutdown: stop.clone(),
        restart: None,
        counters: counters.clone(),
        supervision: Default::default(),
        decode: Default::default(),
    };
    let thread = std::thread::spawn(move || worker.run());
    let mut sizes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Some(frame) = slot.take(Duration::from_millis(200)) {
            sizes.push(frame.image.dimensions());
        }
    }
    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
    assert!(sizes.len() >= 10, "frames at 5 fps for 5 s, got {}", sizes.len());
    assert!(sizes.iter().all(|&s| s == (320, 180)), "analysis sees the sub-stream: {sizes:?}");
    assert_eq!(counters.starts.load(Ordering::Relaxed), 1, "one pipeline for both streams");
    let segments = vigil::source::recorder::segments(&recordings).unwrap();
    assert!(!segments.is_empty(), "the main stream is recorded");
    let out = Command::new("gst-discoverer-1.0").arg(&segments[0].path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Width: 640") && text.contains("Height: 360"), "the main stream is recorded:\n{text}");
}
