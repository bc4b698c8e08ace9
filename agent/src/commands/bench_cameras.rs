//! `vigil bench cameras`: CPU and memory of camera ingestion. N cameras play the same H.264 file in a
//! loop at its own pace (as live cameras would), each recording into its ring and handing frames to a
//! consumer that runs tamper detection; process CPU time over the measured window is divided by N.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::config::Camera;
use crate::source::camera::{CameraCounters, CameraWorker};
use crate::source::pipeline;
use crate::source::slot::FrameSlot;
use crate::source::tamper::TamperDetector;

#[derive(Debug, Serialize)]
pub struct CameraBench {
    pub file: String,
    pub cameras: usize,
    pub keyframes_only: bool,
    pub analysis_fps: Option<f64>,
    pub recording: bool,
    pub seconds: f64,
    /// CPU time of the whole process over the window, as a share of one core, divided by `cameras`.
    pub cpu_per_camera: f64,
    pub frames_analysed_per_camera_per_s: f64,
    pub frames_dropped: u64,
    /// Resident memory at the end of the window, and its peak.
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
}

/// (user + system) CPU time of this process, from /proc/self/stat (clock ticks of 1/100 s on Linux).
fn cpu_time() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("unreadable /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> { Ok(fields.get(i).context("short /proc/self/stat")?.parse()?) };
    // utime and stime are fields 14 and 15 of the line: indexes 11 and 12 after the name.
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub fn cameras(
    file: &Path,
    count: usize,
    keyframes_only: bool,
    analysis_fps: f64,
    record: Option<&Path>,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<CameraBench> {
    pipeline::init()?;
    let file = std::path::absolute(file)?;
    anyhow::ensure!(file.exists(), "{} does not exist", file.display());
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, _rx) = mpsc::channel();
    let mut threads = Vec::new();
    let mut slots = Vec::new();
    let analysed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for i in 0..count {
        let text = format!(
            "id = \"bench-{i}\"\nrole = \"dialysis_room\"\nurl = \"file://{}\"\nloop = true\nkeyframes_only = {keyframes_only}\nanalysis_fps = {analysis_fps}\n",
            file.display()
        );
        let camera: Camera = toml::from_str(&text)?;
        let slot = Arc::new(FrameSlot::default());
        slots.push(slot.clone());
        let worker = CameraWorker {
            camera,
            recordings: record.map(|dir| dir.join(format!("bench-{i}"))),
            segment: Duration::from_secs(10),
            max_recording_bytes: 2 << 30,
            slot: slot.clone(),
            decisions: tx.clone(),
            shutdown: stop.clone(),
            counters: Arc::new(CameraCounters::default()),
        };
        threads.push(std::thread::spawn(move || worker.run()));
        let (stop, analysed) = (stop.clone(), analysed.clone());
        threads.push(std::thread::spawn(move || {
            let mut tamper = TamperDetector::new(Default::default(), None);
            while !stop.load(Ordering::Relaxed) {
                if let Some(frame) = slot.take(Duration::from_millis(200)) {
                    tamper.observe(&frame.image, frame.captured);
                    analysed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    std::thread::sleep(warmup);
    let (cpu0, frames0, t0) = (cpu_time()?, analysed.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(window);
    let (cpu1, frames1, elapsed) = (cpu_time()?, analysed.load(Ordering::Relaxed), t0.elapsed());
    let (rss, peak) = memory();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let secs = elapsed.as_secs_f64();
    Ok(CameraBench {
        file: file.display().to_string(),
        cameras: count,
        keyframes_only,
        analysis_fps: (!keyframes_only).then_some(analysis_fps),
        recording: record.is_some(),
        seconds: secs,
        cpu_per_camera: (cpu1 - cpu0).as_secs_f64() / secs / count as f64,
        frames_analysed_per_camera_per_s: (frames1 - frames0) as f64 / secs / count as f64,
        frames_dropped: slots.iter().map(|s| s.dropped()).sum(),
        rss_bytes: rss,
        peak_rss_bytes: peak,
    })
}

/// Where `vigil bench cameras` records when asked to: a scratch folder, removed afterwards.
pub fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("vigil-bench-{}", std::process::id()))
}
