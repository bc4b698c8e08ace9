//! `vigil bench cameras`: CPU and memory of camera ingestion and analysis. N cameras play the same H.264
//! file in a loop at its own pace (as live cameras would), each recording into its ring and handing
//! frames to its analysis: tamper detection always, plus (`--analysis faces`) the whole face path of a
//! settlement window — detect, align, quality gate, embed, 1:N search — or (`--analysis presence`) the
//! presence path of a ward — person detection, occupancy of each region against its empty reference,
//! a roll-call every minute. Process CPU time over the measured window is divided by N.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
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

/// What each camera's analysis does besides tamper detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Analysis {
    Tamper,
    Faces,
    Presence,
}

#[derive(Debug, Serialize)]
pub struct CameraBench {
    pub analysis: Analysis,
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
    /// Faces embedded (passed the quality gate) per second, all cameras (`faces`).
    pub faces_per_s: Option<f64>,
    /// Faces embedded per second of CPU time of the whole process: faces per second per core (`faces`).
    pub faces_per_cpu_s: Option<f64>,
    /// Roll-calls held in the window (`presence`).
    pub rollcalls: Option<u64>,
    /// Enrolments (`--enroll-during N`: the MQTT `enroll` handler, N photos each, back to back) completed in
    /// the window, and the median seconds one took.
    pub enrolments: Option<u64>,
    pub enrolment_median_s: Option<f64>,
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

/// The models (and for faces a 1,000-person gallery) shared by the cameras, as in `vigil run`.
struct Work {
    models: Arc<std::sync::Mutex<crate::analyze::Models>>,
    index: crate::gallery::search::SearchIndex,
    faces: AtomicU64,
    rollcalls: AtomicU64,
}

impl Work {
    fn load(analysis: Analysis) -> anyhow::Result<Option<Arc<Work>>> {
        if analysis == Analysis::Tamper {
            return Ok(None);
        }
        crate::analyze::runtime::init(None)?;
        let models = crate::analyze::Models::load(&Default::default(), &Default::default(), &Default::default())?;
        let entries: Vec<crate::gallery::Entry> = (0..1000u32)
            .map(|i| crate::gallery::Entry {
                id: format!("p-{i}"),
                role: crate::gallery::Role::Patient,
                embeddings: vec![(0..128).map(|d| ((i * 131 + d * 7) % 97) as f32 / 500.0 - 0.1).collect()],
                quality: 1.0,
                enrolled_at: String::new(),
            })
            .collect();
        Ok(Some(Arc::new(Work {
            models: Arc::new(std::sync::Mutex::new(models)),
            index: crate::gallery::search::SearchIndex::build(&entries),
            faces: AtomicU64::new(0),
            rollcalls: AtomicU64::new(0),
        })))
    }
}

/// Beds of the presence analysis: the frame's left and right halves, lower part.
const BEDS: [[[f64; 2]; 4]; 2] =
    [[[0.05, 0.5], [0.45, 0.5], [0.45, 0.95], [0.05, 0.95]], [[0.55, 0.5], [0.95, 0.5], [0.95, 0.95], [0.55, 0.95]]];

fn analyse(work: &Work, analysis: Analysis, frame: &crate::source::Frame, state: &mut PresenceState) {
    use crate::decide::presence::{Polygon, RegionMonitor};
    match analysis {
        Analysis::Tamper => {}
        Analysis::Faces => {
            let thresholds = crate::config::Faces::default().video_quality();
            let mut models = work.models.lock().unwrap_or_else(|e| e.into_inner());
            for face in models.faces.detect(&frame.image).unwrap_or_default() {
                let chip = crate::analyze::align::extract_chip(&frame.image, &face.landmarks);
                if crate::gallery::quality::assess(&face, &chip, &thresholds).ok() {
                    if let Ok(e) = models.embedder.embed(std::slice::from_ref(&chip)) {
                        let _ = work.index.best(&e[0], None);
                        work.faces.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        Analysis::Presence => {
            let persons = {
                let mut models = work.models.lock().unwrap_or_else(|e| e.into_inner());
                models.persons.detect(&frame.image).unwrap_or_default()
            };
            if state.monitors.is_empty() {
                let (w, h) = frame.image.dimensions();
                for (i, bed) in BEDS.iter().enumerate() {
                    let mut monitor = RegionMonitor::new(
                        &format!("bed-{i}"),
                        Polygon::from_normalised(bed, w, h).expect("a bed"),
                        Default::default(),
                    );
                    monitor.set_reference(&frame.image);
                    state.monitors.push(monitor);
                }
            }
            for monitor in &mut state.monitors {
                monitor.observe(&frame.image, &persons, frame.captured);
            }
            if state.last_rollcall.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                state.last_rollcall = Some(Instant::now());
                let checks: Vec<_> = state
                    .monitors
                    .iter()
                    .map(|m| crate::decide::rollcall::BedCheck {
                        camera: "bench".into(),
                        bed: m.name.clone(),
                        patient: Some(format!("p-{}", m.name)),
                        state: m.tracker.state(),
                    })
                    .collect();
                state.rollcall.evaluate(frame.captured, &checks);
                work.rollcalls.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[derive(Default)]
struct PresenceState {
    monitors: Vec<crate::decide::presence::RegionMonitor>,
    rollcall: crate::decide::rollcall::RollcallTracker,
    last_rollcall: Option<Instant>,
}

#[allow(clippy::too_many_arguments)]
pub fn cameras(
    file: &Path,
    count: usize,
    keyframes_only: bool,
    analysis_fps: f64,
    analysis: Analysis,
    record: Option<&Path>,
    warmup: Duration,
    window: Duration,
    enrol: Option<&EnrolLoad>,
) -> anyhow::Result<CameraBench> {
    pipeline::init()?;
    let work = Work::load(analysis)?;
    if enrol.is_some() && work.is_none() {
        anyhow::bail!("--enroll-during needs --analysis faces or presence (it shares their models, as `vigil run` does)");
    }
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
            supervision: Default::default(),
        };
        threads.push(std::thread::spawn(move || worker.run()));
        let (stop, analysed, work) = (stop.clone(), analysed.clone(), work.clone());
        threads.push(std::thread::spawn(move || {
            let mut tamper = TamperDetector::new(Default::default(), None);
            let mut state = PresenceState::default();
            while !stop.load(Ordering::Relaxed) {
                if let Some(frame) = slot.take(Duration::from_millis(200)) {
                    tamper.observe(&frame.image, frame.captured);
                    if let Some(work) = &work {
                        analyse(work, analysis, &frame, &mut state);
                    }
                    analysed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let enrolments = Arc::new(std::sync::Mutex::new(Vec::<(Instant, Duration)>::new()));
    if let (Some(load), Some(work)) = (enrol, &work) {
        let handler = enrol_handler(work, load)?;
        let (stop, enrolments, command) = (stop.clone(), enrolments.clone(), load.command());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                if let Err(e) = handler(&command) {
                    eprintln!("enroll failed: {e}");
                    return;
                }
                enrolments.lock().unwrap().push((started, started.elapsed()));
            }
        }));
    }
    std::thread::sleep(warmup);
    let faces = || work.as_ref().map_or(0, |w| w.faces.load(Ordering::Relaxed));
    let rollcalls = || work.as_ref().map_or(0, |w| w.rollcalls.load(Ordering::Relaxed));
    let (cpu0, frames0, faces0, calls0, t0) =
        (cpu_time()?, analysed.load(Ordering::Relaxed), faces(), rollcalls(), Instant::now());
    std::thread::sleep(window);
    let (cpu1, frames1, faces1, calls1, elapsed) =
        (cpu_time()?, analysed.load(Ordering::Relaxed), faces(), rollcalls(), t0.elapsed());
    let (rss, peak) = memory();
    stop.store(true, Ordering::Relaxed);
    let mut took: Vec<f64> = enrolments
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, d)| *at >= t0 && *at + *d <= t0 + elapsed)
        .map(|(_, d)| d.as_secs_f64())
        .collect();
    took.sort_by(f64::total_cmp);
    for t in threads {
        let _ = t.join();
    }
    let secs = elapsed.as_secs_f64();
    let cpu = (cpu1 - cpu0).as_secs_f64();
    Ok(CameraBench {
        analysis,
        faces_per_s: (analysis == Analysis::Faces).then(|| (faces1 - faces0) as f64 / secs),
        faces_per_cpu_s: (analysis == Analysis::Faces).then(|| (faces1 - faces0) as f64 / cpu.max(1e-9)),
        rollcalls: (analysis == Analysis::Presence).then_some(calls1 - calls0),
        file: file.display().to_string(),
        cameras: count,
        keyframes_only,
        analysis_fps: (!keyframes_only).then_some(analysis_fps),
        recording: record.is_some(),
        seconds: secs,
        cpu_per_camera: cpu / secs / count as f64,
        frames_analysed_per_camera_per_s: (frames1 - frames0) as f64 / secs / count as f64,
        frames_dropped: slots.iter().map(|s| s.dropped()).sum(),
        enrolments: enrol.map(|_| took.len() as u64),
        enrolment_median_s: took.get(took.len() / 2).copied(),
        rss_bytes: rss,
        peak_rss_bytes: peak,
    })
}

/// `--enroll-during N`: the MQTT `enroll` command with N photos, run again and again during the window.
pub struct EnrolLoad {
    pub photos: Vec<Vec<u8>>,
    pub count: usize,
    /// The gallery the enrolments go to (a scratch folder).
    pub dir: PathBuf,
}

impl EnrolLoad {
    pub fn new(photos: &[PathBuf], count: usize, dir: PathBuf) -> anyhow::Result<EnrolLoad> {
        anyhow::ensure!(!photos.is_empty(), "--enroll-during needs at least one --enroll-photo");
        anyhow::ensure!((1..=20).contains(&count), "--enroll-during: 1..20 photos (the enroll command's limit)");
        let photos = photos
            .iter()
            .map(|p| std::fs::read(p).with_context(|| format!("--enroll-photo {}", p.display())))
            .collect::<anyhow::Result<_>>()?;
        Ok(EnrolLoad { photos, count, dir })
    }

    fn command(&self) -> crate::publish::commands::Command {
        use base64::Engine;
        let images: Vec<String> = (0..self.count)
            .map(|i| base64::engine::general_purpose::STANDARD.encode(&self.photos[i % self.photos.len()]))
            .collect();
        crate::publish::commands::Command {
            name: "enroll".into(),
            nonce: "bench".into(),
            args: serde_json::json!({"id": "bench-enrolee", "role": "patient", "images": images}),
        }
    }
}

/// The real `enroll` handler of `vigil run`, sharing the cameras' models as `vigil run` does.
fn enrol_handler(work: &Work, load: &EnrolLoad) -> anyhow::Result<crate::publish::commands::Handler> {
    std::fs::create_dir_all(&load.dir)?;
    let gallery = crate::gallery::Gallery::open(&load.dir.join("gallery.bin"), &load.dir.join("gallery.key"))?;
    let enrolment = crate::app::handlers::Enrolment {
        models: work.models.clone(),
        index: Arc::new(std::sync::RwLock::new(crate::gallery::search::SearchIndex::build(gallery.entries()))),
        gallery: Arc::new(std::sync::Mutex::new(gallery)),
        thresholds: crate::config::Faces::default().quality(),
    };
    Ok(enrolment.enroll_handler())
}

/// Where `vigil bench cameras` records when asked to: a scratch folder, removed afterwards.
pub fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("vigil-bench-{}", std::process::id()))
}
