//! Evidence clips cut from the recording ring: the requested interval is inside, the clip starts on a
//! keyframe, and standard tools accept the file.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use vigil::config::Camera;
use vigil::source::camera::{CameraCounters, CameraWorker};
use vigil::source::slot::FrameSlot;
use vigil::source::{clip, recorder};

/// Records ~14 s of a live 1280×720 25 fps H.264 test source (keyframe every 2 s) in 4 s segments.
fn record(dir: &std::path::Path) {
    vigil::source::pipeline::init().unwrap();
    let camera: Camera = toml::from_str("id = \"w\"\nrole = \"settlement_window\"\nurl = \"test://ball\"\n").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, _rx) = mpsc::channel::<vigil::source::health::HealthReport>();
    let worker = CameraWorker {
        camera: camera.stream(),
        recordings: Some(dir.to_owned()),
        segment: Duration::from_secs(4),
        max_recording_bytes: 1 << 30,
        slot: Arc::new(FrameSlot::default()),
        health: Arc::new(tx),
        shutdown: stop.clone(),
        restart: None,
        counters: Arc::new(CameraCounters::default()),
        supervision: Default::default(),
        decode: Default::default(),
    };
    let thread = std::thread::spawn(move || worker.run());
    std::thread::sleep(Duration::from_secs(14));
    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
}

fn discoverer_duration(path: &std::path::Path) -> Duration {
    let out =
        Command::new("gst-discoverer-1.0").arg(path).output().expect("gst-discoverer-1.0 (scripts/setup installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("H.264"), "gst-discoverer rejects {}:\n{text}", path.display());
    let line = text.lines().find(|l| l.trim_start().starts_with("Duration:")).expect("a duration");
    let hms = line.trim().trim_start_matches("Duration:").trim();
    let parts: Vec<f64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    Duration::from_secs_f64(parts[0] * 3600.0 + parts[1] * 60.0 + parts[2])
}

#[test]
fn clip_contains_the_interval_starts_on_a_keyframe_and_plays() {
    let dir = tempfile::tempdir().unwrap();
    let recordings = dir.path().join("w");
    record(&recordings);
    let segments = recorder::segments(&recordings).unwrap();
    assert!(segments.len() >= 3, "expected ~4 s segments, got {segments:?}");

    // An interval that starts between keyframes and spans a segment boundary.
    let from = segments[0].start + Duration::from_millis(5300);
    let to = from + Duration::from_secs(5);
    let out = dir.path().join("clip.mp4");
    let info = clip::cut(&recordings, from, to, &out).unwrap();
    assert!(info.start <= from && from.duration_since(info.start).unwrap() <= Duration::from_millis(2100), "{info:?}");
    assert!(info.end + Duration::from_millis(80) >= to, "clip ends before the interval: {info:?}");
    assert!(info.segments >= 2, "{info:?}");

    let flags = common::media::keyframes(&out);
    assert_eq!(flags.first(), Some(&true), "clip must start on a keyframe");
    assert!(flags.len() >= 5 * 25, "{} frames", flags.len());
    let duration = discoverer_duration(&out);
    assert!(duration >= Duration::from_secs(5), "duration {duration:?}");
    if Command::new("ffprobe").arg("-version").output().is_ok() {
        let probe = Command::new("ffprobe").args(["-v", "error", "-show_format"]).arg(&out).output().unwrap();
        assert!(probe.status.success(), "ffprobe: {}", String::from_utf8_lossy(&probe.stderr));
    }

    // Outside the recording: a clear error, no file.
    let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let err =
        clip::cut(&recordings, long_ago, long_ago + Duration::from_secs(5), &dir.path().join("none.mp4")).unwrap_err();
    assert!(err.to_string().contains("no recording"), "{err}");
    assert!(!dir.path().join("none.mp4").exists());
}

#[test]
fn vigil_clip_cuts_from_the_configured_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        "[site]\nid = \"s\"\ndevice_id = \"d\"\n[storage]\ndata_dir = \"state\"\n\
         [[cameras]]\nid = \"w\"\nrole = \"settlement_window\"\nurl = \"test://ball\"\n",
    )
    .unwrap();
    record(&dir.path().join("state/recordings/w"));
    let first = recorder::segments(&dir.path().join("state/recordings/w")).unwrap()[0].start;
    let secs = |t: SystemTime| format!("{:.3}", t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64());
    let out = dir.path().join("evidence.mp4");
    let run = common::vigil()
        .args(["clip", "--config"])
        .arg(&config)
        .args([
            "--camera",
            "w",
            "--from",
            &secs(first + Duration::from_secs(3)),
            "--to",
            &secs(first + Duration::from_secs(8)),
            "-o",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(discoverer_duration(&out) >= Duration::from_secs(5));
    let unknown = common::vigil()
        .args(["clip", "--config"])
        .arg(&config)
        .args(["--camera", "nope", "--from", "0", "--to", "1", "-o", "/tmp/x.mp4"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no camera \"nope\""));
}

/// The agent killed with SIGKILL mid-segment: the open segment was never finalised, yet its complete
/// fragments (one per second, written unbuffered) still give a playable clip.
#[test]
fn segment_open_at_sigkill_still_gives_a_clip() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        "[site]\nid = \"s\"\ndevice_id = \"d\"\n[storage]\ndata_dir = \"state\"\n\
         [[cameras]]\nid = \"w\"\nrole = \"settlement_window\"\nurl = \"test://ball\"\n",
    )
    .unwrap();
    let keys = common::vigil().args(["keys", "init", "--config"]).arg(&config).output().unwrap();
    assert!(keys.status.success(), "{}", String::from_utf8_lossy(&keys.stderr));
    let log_file = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let mut agent = common::vigil().arg("run").arg("--config").arg(&config).stderr(log_file).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(8));
    agent.kill().unwrap();
    agent.wait().unwrap();
    let dir_w = dir.path().join("state/recordings/w");
    let segments = recorder::segments(&dir_w).unwrap();
    let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap();
    assert_eq!(segments.len(), 1, "one (unfinished) segment after 8 s: {segments:?}\n{log}");
    let start = segments[0].start;
    let out = dir.path().join("after-kill.mp4");
    let info = clip::cut(&dir_w, start + Duration::from_secs(1), start + Duration::from_secs(5), &out).unwrap();
    assert!(info.frames >= 4 * 25, "{info:?}");
    assert!(discoverer_duration(&out) >= Duration::from_secs(4));
}
