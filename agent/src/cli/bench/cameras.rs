//! `vigil bench cameras`: CPU and memory of camera ingestion and analysis. N cameras play the same H.264
//! file in a loop at its own pace (as live cameras would), each recording into its ring and handing
//! frames to its analysis — the very [`CameraAnalysis`] of `vigil run`, with its own model sessions:
//! tamper detection always, plus (`--analysis faces`) a settlement window under a watch that never
//! concludes, so that every analysed frame goes through the face path (detect, align, quality gate,
//! embed) as during a settlement, or (`--analysis idle-window`) a settlement window with no watch open —
//! what a window costs between settlements — or (`--analysis presence`) a ward with two beds of
//! registered inpatients — person detection, occupancy of each bed against its reference, a roll-call
//! every minute. Window cameras decode as their role's default says unless `--keyframes-only` is given
//! (ward cameras: all frames unless `--keyframes-only`, as before). `--detect-file` gives each camera a
//! second clip as its analysis sub-stream (`detect_url`), `--face-window` a face window. Process CPU
//! time over the measured window is divided by N. `--enroll-during N` runs the MQTT `enroll` handler of
//! `vigil run` meanwhile, N photos per command, back to back.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use serde::Serialize;

use vigil::analyze::Models;
use vigil::decide::settlement::{Transactions, Watch};
use vigil::evidence::pending::Pending;
use vigil::gallery::search::SearchIndex;
use vigil::gallery::settlements::SettlementLog;
use vigil::gallery::{Entry, Gallery, PersonKind};
use vigil::runtime::camera::{self, AnalysisCounters, CameraAnalysis, Shared};
use vigil::runtime::handlers::Enrolment;
use vigil::runtime::people::People;
use vigil::runtime::presence::{Presence, PresenceCamera};
use vigil::runtime::sink::Outlet;
use vigil::runtime::{Shutdown, settlement_rules, watch_channels};
use vigil::source::decode::DecodeMode;
use vigil::source::pipeline;
use vigil::source::settings::Decode;

use crate::cli::{CliError, CliResult};

/// What each camera's analysis does besides tamper detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Analysis {
    Tamper,
    Faces,
    IdleWindow,
    Presence,
}

/// A face window given on the command line as a rectangle `X0,Y0,X1,Y1` (normalised 0..1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rect(pub [f64; 4]);

impl Rect {
    /// The `face_window` polygon of a camera's configuration.
    pub fn polygon(&self) -> String {
        let [x0, y0, x1, y1] = self.0;
        format!("[[{x0}, {y0}], [{x1}, {y0}], [{x1}, {y1}], [{x0}, {y1}]]")
    }
}

/// Parses `X0,Y0,X1,Y1`, each in 0..1 with X0 < X1 and Y0 < Y1.
pub fn parse_rect(text: &str) -> Result<Rect, String> {
    let values: Vec<f64> = text
        .split(',')
        .map(|v| v.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{text:?}: expected X0,Y0,X1,Y1 (four numbers, normalised 0..1)"))?;
    let [x0, y0, x1, y1] = values[..] else {
        return Err(format!("{text:?}: expected four numbers X0,Y0,X1,Y1, got {}", values.len()));
    };
    if !(0.0..1.0).contains(&x0) || !(0.0..1.0).contains(&y0) || x1 <= x0 || y1 <= y0 || x1 > 1.0 || y1 > 1.0 {
        return Err(format!("{text:?}: need 0 <= X0 < X1 <= 1 and 0 <= Y0 < Y1 <= 1"));
    }
    Ok(Rect([x0, y0, x1, y1]))
}

#[derive(clap::Args)]
pub struct CamerasArgs {
    /// An H.264 MP4 (e.g. 1080p25 with a 2 s GOP).
    #[arg(long)]
    file: PathBuf,
    #[arg(long, default_value_t = 1)]
    cameras: usize,
    /// Decode keyframes only.
    #[arg(long)]
    keyframes_only: bool,
    /// Frames per second to analysis when decoding all frames.
    #[arg(long, default_value_t = 5.0)]
    analysis_fps: f64,
    /// Also record each camera into a ring of segments (in a scratch folder, removed afterwards).
    #[arg(long)]
    record: bool,
    /// Analysis of each frame besides tamper detection: faces (a settlement window under a watch:
    /// detect, align, gate, embed), idle-window (a settlement window with no watch open) or presence
    /// (ward: persons, two beds, a roll-call a minute). `tamper` alone is a ward camera.
    #[arg(long, value_enum, default_value = "tamper")]
    analysis: Analysis,
    /// A second H.264 MP4 each camera analyses instead of `--file` (its `detect_url`: an IP camera's
    /// low-resolution sub-stream); `--file` is still what is recorded.
    #[arg(long, value_name = "FILE")]
    detect_file: Option<PathBuf>,
    /// Window cameras: look for faces in this rectangle only (their `face_window`), normalised
    /// `X0,Y0,X1,Y1`.
    #[arg(long, value_name = "X0,Y0,X1,Y1", value_parser = parse_rect)]
    face_window: Option<Rect>,
    /// Seconds measured, after 5 s of warm-up.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Meanwhile run the MQTT `enroll` command with this many photos (1..20) again and again, as
    /// `vigil run` would (same handler, its own sessions).
    #[arg(long, value_name = "N")]
    enroll_during: Option<usize>,
    /// Enrolment photos for --enroll-during (used in turn).
    #[arg(long, value_name = "FILE")]
    enroll_photo: Vec<PathBuf>,
}

pub fn run(args: CamerasArgs) -> CliResult {
    let scratch = super::scratch_dir();
    let enrol = args
        .enroll_during
        .map(|n| EnrolLoad::new(&args.enroll_photo, n))
        .transpose()
        .map_err(|e| CliError::Usage(format!("vigil bench cameras: {e:#}")))?;
    let result =
        cameras(&args, &scratch, enrol.as_ref(), Duration::from_secs(5), Duration::from_secs(args.seconds.max(1)));
    let _ = std::fs::remove_dir_all(&scratch);
    let report = result.map_err(|e| CliError::Failed(format!("vigil bench cameras: {e:#}")))?;
    super::print_json(&report)
}

#[derive(Debug, Serialize)]
pub struct CameraBench {
    pub analysis: Analysis,
    pub file: String,
    /// `--detect-file`: the clip analysed (each camera's `detect_url`).
    pub detect_file: Option<String>,
    pub face_window: Option<Rect>,
    /// The face detector's settings, as configured by default (`[faces]`).
    pub detector_options: String,
    pub cameras: usize,
    /// Keyframes only because `--keyframes-only` said so; otherwise window cameras decode as their
    /// role's default says and ward cameras all frames.
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
    /// Resident memory added by one more set of face sessions (detector + embedder), opened and run on a
    /// 1080p frame twice: what each window camera's own sessions cost (`faces`).
    pub rss_per_face_sessions_bytes: Option<u64>,
    /// Width and height of the frames analysed (of the first camera's tamper reference, taken from its
    /// first analysed frame): the sub-stream's with `--detect-file` when this Vigil analyses it.
    pub analysed_frame: Option<[u32; 2]>,
    /// Cameras decoding every frame at the end of the window: by configuration, or, decoding on demand,
    /// as their analysis asks (an idle window: keyframes only; a window with a watch open: every frame).
    pub cameras_decoding_all_frames: usize,
    /// Resident memory at the end of the window, and its peak.
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
}

/// (user + system) CPU time of this process, every thread's, from /proc/self/stat (clock ticks of 1/100 s
/// on Linux).
pub(super) fn cpu_time() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("unreadable /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> { Ok(fields.get(i).context("short /proc/self/stat")?.parse()?) };
    // utime and stime are fields 14 and 15 of the line: indexes 11 and 12 after the name.
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

pub(super) fn memory() -> (u64, u64) {
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

/// Beds of the presence analysis: the frame's left and right halves, lower part.
const BEDS: [&str; 2] = [
    "bed-0 = [[0.05, 0.5], [0.45, 0.5], [0.45, 0.95], [0.05, 0.95]]",
    "bed-1 = [[0.55, 0.5], [0.95, 0.5], [0.95, 0.95], [0.55, 0.95]]",
];

/// One `[[cameras]]` entry of a bench configuration.
pub(super) struct BenchCamera<'a> {
    pub id: String,
    pub role: &'static str,
    pub file: &'a Path,
    pub detect_file: Option<&'a Path>,
    pub face_window: Option<Rect>,
    /// `keyframes_only = …` when given; otherwise the role's default.
    pub keyframes_only: Option<bool>,
    pub analysis_fps: f64,
    /// More lines of the entry (regions).
    pub extra: String,
}

/// The configuration `vigil run` would have for these cameras (data in `scratch/data`).
pub(super) fn bench_toml(cameras: &[BenchCamera], scratch: &Path) -> anyhow::Result<vigil::config::Config> {
    let mut text = format!(
        "[site]\nid = \"bench\"\ndevice_id = \"bench\"\n[storage]\ndata_dir = \"{}\"\n",
        scratch.join("data").display()
    );
    for c in cameras {
        text += &format!(
            "[[cameras]]\nid = \"{}\"\nrole = \"{}\"\nurl = \"file://{}\"\nloop = true\nanalysis_fps = {}\n\
             watch_physicians = false\n{}",
            c.id,
            c.role,
            c.file.display(),
            c.analysis_fps,
            c.extra
        );
        if let Some(keyframes_only) = c.keyframes_only {
            text += &format!("keyframes_only = {keyframes_only}\n");
        }
        if let Some(detect) = c.detect_file {
            text += &format!("detect_url = \"file://{}\"\n", detect.display());
        }
        if let Some(window) = c.face_window {
            text += &format!("face_window = {}\n", window.polygon());
        }
    }
    vigil::config::parse(Path::new("bench.toml"), &text).map_err(|e| {
        let e = anyhow::Error::from(e);
        if cameras.iter().any(|c| c.detect_file.is_some()) && format!("{e:#}").contains("detect_url") {
            e.context("--detect-file needs a Vigil whose cameras take a `detect_url` (an analysis sub-stream)")
        } else {
            e
        }
    })
}

/// The configuration `vigil run` would have for these cameras (data in the scratch folder).
fn bench_config(args: &CamerasArgs, file: &Path, scratch: &Path) -> anyhow::Result<vigil::config::Config> {
    let detect = args.detect_file.as_deref().map(std::path::absolute).transpose()?;
    if let Some(detect) = &detect {
        anyhow::ensure!(detect.exists(), "--detect-file {} does not exist", detect.display());
    }
    let cameras: Vec<BenchCamera> = (0..args.cameras.max(1))
        .map(|i| {
            let (role, extra) = match args.analysis {
                Analysis::Faces | Analysis::IdleWindow => ("settlement_window", String::new()),
                Analysis::Presence => ("ward", format!("regions = {{ {} }}\n", BEDS.join(", "))),
                Analysis::Tamper => ("ward", String::new()),
            };
            BenchCamera {
                id: format!("bench-{i}"),
                role,
                file,
                detect_file: detect.as_deref(),
                face_window: if role == "settlement_window" { args.face_window } else { None },
                // Ward cameras decode all frames unless told otherwise (what this bench always did); window
                // cameras as their role's default says, which is what `vigil run` would do.
                keyframes_only: match (args.keyframes_only, role) {
                    (true, _) => Some(true),
                    (false, "ward") => Some(false),
                    (false, _) => None,
                },
                analysis_fps: args.analysis_fps,
                extra,
            }
        })
        .collect();
    bench_toml(&cameras, scratch)
}

/// 1,000 enrolled people (synthetic embeddings), as the 1:N search of `vigil run` would see.
pub(super) fn synthetic_gallery() -> Vec<Entry> {
    (0..1000u32)
        .map(|i| Entry {
            id: format!("p-{i}"),
            role: PersonKind::Patient,
            embeddings: vec![(0..128).map(|d| ((i * 131 + d * 7) % 97) as f32 / 500.0 - 0.1).collect()],
            quality: 1.0,
            enrolled_at: String::new(),
        })
        .collect()
}

/// What the cameras of `vigil run` share, with the data in `scratch/data`.
pub(super) fn shared_state(
    config: &vigil::config::Config,
    scratch: &Path,
    gallery: Arc<RwLock<SearchIndex>>,
    rules: vigil::decide::settlement::SettlementRules,
) -> anyhow::Result<Shared> {
    Ok(Shared {
        gallery,
        settled: Arc::new(Mutex::new(SettlementLog::open(
            &scratch.join("data/settlement-faces.bin"),
            &scratch.join("data/gallery.key"),
            Duration::from_secs(86_400),
            SystemTime::now(),
        )?)),
        transactions: Arc::new(Mutex::new(Transactions::default())),
        rules,
        people: Arc::new(People::load(config)),
    })
}

fn cameras(
    args: &CamerasArgs,
    scratch: &Path,
    enrol: Option<&EnrolLoad>,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<CameraBench> {
    pipeline::init()?;
    let file = std::path::absolute(&args.file)?;
    anyhow::ensure!(file.exists(), "{} does not exist", file.display());
    if enrol.is_some() && args.analysis == Analysis::Tamper {
        anyhow::bail!("--enroll-during needs --analysis faces, idle-window or presence");
    }
    std::fs::create_dir_all(scratch.join("data"))?;
    let config = bench_config(args, &file, scratch)?;
    // Verified as `vigil run` does; sessions are opened only for what each camera's role needs.
    vigil::analyze::runtime::init(None)?;
    let mut models = Models::load(&config.models, &config.faces.detector(), &config.persons.detector())?;
    let rss_per_face_sessions = if args.analysis == Analysis::Faces { Some(face_sessions_rss(&models)?) } else { None };
    anyhow::ensure!(
        args.face_window.is_none() || matches!(args.analysis, Analysis::Faces | Analysis::IdleWindow),
        "--face-window needs --analysis faces or idle-window (a settlement window)"
    );
    let mut rules = settlement_rules(&config);
    // A watch that never has enough good frames to conclude: every frame of the window is analysed as
    // the first frames of a settlement are, with no verdict (and no evidence) in between.
    rules.min_good_frames = usize::MAX;
    let index = Arc::new(RwLock::new(SearchIndex::build(&synthetic_gallery())));
    let shared = shared_state(&config, scratch, index, rules)?;
    let (decisions_tx, decisions_rx) = mpsc::channel();
    let (evidence_tx, evidence_rx) = mpsc::channel();
    let pending = Arc::new(Pending::new(&scratch.join("data/evidence-pending")));
    let outlet = |id: &str| Outlet::new(&config, id, pending.clone(), decisions_tx.clone(), evidence_tx.clone());
    if args.analysis == Analysis::Presence {
        let inpatients: Vec<serde_json::Value> = config
            .cameras
            .iter()
            .flat_map(|c| {
                (0..2).map(move |b| serde_json::json!({"patient": format!("p-{}-{b}", c.id), "camera": c.id, "bed": format!("bed-{b}")}))
            })
            .collect();
        let roster = vigil::decide::roster::Roster::parse(&serde_json::json!({"inpatients": inpatients}), &config)
            .map_err(|e| anyhow::anyhow!("bench roster: {}", e.join("; ")))?;
        shared.people.apply(roster, SystemTime::now())?;
    }
    if args.analysis == Analysis::Presence {
        // As an operator does before a ward goes live: the beds' empty reference (`vigil reference --empty`).
        let first = &config.cameras[0];
        let path = vigil::runtime::capture_reference(&config, first, Duration::from_secs(30), true, true)?;
        let empty = vigil::runtime::presence::empty_reference_path(&config.storage.data_dir, &first.id);
        for camera in &config.cameras[1..] {
            std::fs::copy(&path, vigil::runtime::reference_path(&config.storage.data_dir, &camera.id))?;
            std::fs::copy(
                &empty,
                vigil::runtime::presence::empty_reference_path(&config.storage.data_dir, &camera.id),
            )?;
        }
    }
    let presence_cameras: Vec<Arc<PresenceCamera>> = config
        .cameras
        .iter()
        .filter(|c| !c.regions.is_empty())
        .map(|c| Arc::new(PresenceCamera::new(&config, c, outlet(&c.id))))
        .collect();
    let presence = Arc::new(Presence::new(presence_cameras, &config, decisions_tx.clone()));
    let (watches, mut watch_receivers) = watch_channels(&config);
    let until = SystemTime::now() + warmup + window + Duration::from_secs(60);
    // An idle window has no watch: it waits for a `settlement` command.
    for (id, watch) in watches.iter().filter(|_| args.analysis == Analysis::Faces) {
        watch.send(Watch::open(
            &format!("bench-{id}"),
            "p-0",
            id,
            SystemTime::now(),
            until.duration_since(SystemTime::now())?,
        ))?;
    }
    let shutdown = Shutdown::new();
    let mut threads = Vec::new();
    let enrolments = Arc::new(Mutex::new(Vec::<(Instant, Duration)>::new()));
    if let Some(load) = enrol {
        std::fs::create_dir_all(scratch.join("enrol"))?;
        let gallery = Gallery::open(&scratch.join("enrol/gallery.bin"), &scratch.join("enrol/gallery.key"))?;
        let enrol_index = Arc::new(RwLock::new(SearchIndex::build(gallery.entries())));
        let enrolment = Enrolment::start(
            models.face_analyzer()?,
            Arc::new(Mutex::new(gallery)),
            enrol_index,
            config.faces.quality(),
        )?;
        let handler = enrolment.enroll_handler();
        let (stop, enrolments, command) = (shutdown.clone(), enrolments.clone(), load.command());
        threads.push(std::thread::spawn(move || {
            while !stop.is_set() {
                let started = Instant::now();
                if let Err(e) = handler(&command) {
                    eprintln!("enroll failed: {e}");
                    return;
                }
                enrolments.lock().unwrap().push((started, started.elapsed()));
            }
        }));
    }
    let mut counters: Vec<Arc<AnalysisCounters>> = Vec::new();
    let mut decodes = Vec::new();
    let mut slots = Vec::new();
    for camera in config.cameras.iter() {
        let analysis = CameraAnalysis::new(
            &config,
            camera,
            &models,
            shared.clone(),
            presence.camera(&camera.id).cloned(),
            watch_receivers.remove(&camera.id),
            outlet(&camera.id),
        )?;
        counters.push(analysis.counters.clone());
        decodes.push(analysis.live().decode);
        let recordings = args.record.then(|| config.storage.recordings_dir().join(&camera.id));
        let started = camera::start_camera(&config, camera, analysis, recordings, decisions_tx.clone(), &shutdown)?;
        slots.push(started.slot);
        threads.extend(started.threads);
    }
    // Every session is open, as in `vigil run`.
    models.release_bytes();
    drop(decisions_tx);
    drop(evidence_tx);
    // What the cameras decide goes nowhere (counted): the decision and evidence tasks are not measured here.
    let drained = std::thread::spawn(move || decisions_rx.iter().count() + evidence_rx.try_iter().count());
    let rollcalls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    if args.analysis == Analysis::Presence {
        let (presence, people, stop, rollcalls) =
            (presence.clone(), shared.people.clone(), shutdown.clone(), rollcalls.clone());
        threads.push(std::thread::spawn(move || {
            let mut last: Option<Instant> = None;
            while !stop.is_set() {
                if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    last = Some(Instant::now());
                    presence.rollcall(&people, SystemTime::now(), "scheduled");
                    rollcalls.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }));
    }
    drop(presence);
    std::thread::sleep(warmup);
    let frames = || counters.iter().map(|c| c.frames.load(Ordering::Relaxed)).sum::<u64>();
    let faces = || counters.iter().map(|c| c.faces_embedded.load(Ordering::Relaxed)).sum::<u64>();
    let (cpu0, frames0, faces0, calls0, t0) =
        (cpu_time()?, frames(), faces(), rollcalls.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(window);
    let (cpu1, frames1, faces1, calls1, elapsed) =
        (cpu_time()?, frames(), faces(), rollcalls.load(Ordering::Relaxed), t0.elapsed());
    let (rss, peak) = memory();
    let full = config
        .cameras
        .iter()
        .zip(&decodes)
        .filter(|(c, control)| match c.decode() {
            Decode::All => true,
            Decode::Keyframes => false,
            Decode::OnDemand => control.mode() == DecodeMode::Full,
        })
        .count();
    shutdown.trigger();
    for t in threads {
        let _ = t.join();
    }
    let _ = drained.join();
    let mut took: Vec<f64> = enrolments
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, d)| *at >= t0 && *at + *d <= t0 + elapsed)
        .map(|(_, d)| d.as_secs_f64())
        .collect();
    took.sort_by(f64::total_cmp);
    let secs = elapsed.as_secs_f64();
    let cpu = (cpu1 - cpu0).as_secs_f64();
    let count = config.cameras.len();
    let analysis = args.analysis;
    Ok(CameraBench {
        analysis,
        faces_per_s: (analysis == Analysis::Faces).then(|| (faces1 - faces0) as f64 / secs),
        faces_per_cpu_s: (analysis == Analysis::Faces).then(|| (faces1 - faces0) as f64 / cpu.max(1e-9)),
        rollcalls: (analysis == Analysis::Presence).then_some(calls1 - calls0),
        file: file.display().to_string(),
        detect_file: args.detect_file.as_ref().map(|f| f.display().to_string()),
        face_window: args.face_window,
        detector_options: format!("{:?}", config.faces.detector()),
        cameras: count,
        keyframes_only: args.keyframes_only,
        analysis_fps: (!args.keyframes_only).then_some(args.analysis_fps),
        recording: args.record,
        seconds: secs,
        cpu_per_camera: cpu / secs / count as f64,
        frames_analysed_per_camera_per_s: (frames1 - frames0) as f64 / secs / count as f64,
        frames_dropped: slots.iter().map(|s| s.dropped()).sum(),
        enrolments: enrol.map(|_| took.len() as u64),
        enrolment_median_s: took.get(took.len() / 2).copied(),
        rss_per_face_sessions_bytes: rss_per_face_sessions,
        analysed_frame: analysed_frame(&config),
        cameras_decoding_all_frames: full,
        rss_bytes: rss,
        peak_rss_bytes: peak,
    })
}

/// The size of the first camera's analysed frames, read from the tamper reference its first frame left.
pub(super) fn analysed_frame(config: &vigil::config::Config) -> Option<[u32; 2]> {
    let path = vigil::runtime::reference_path(&config.storage.data_dir, &config.cameras.first()?.id);
    image::image_dimensions(path).ok().map(|(w, h)| [w, h])
}

/// RSS added by one more set of face sessions, warmed on a 1080p frame (ONNX Runtime allocates its
/// arenas on the first runs).
fn face_sessions_rss(models: &Models) -> anyhow::Result<u64> {
    let frame = image::RgbImage::from_pixel(1920, 1080, image::Rgb([128, 128, 128]));
    let before = memory().0;
    let mut faces = models.face_analyzer()?;
    for _ in 0..2 {
        faces.analyse(&frame, &Default::default())?;
        // The embedder too: the detector finds no face in a grey frame.
        faces.embedder.embed(&[image::RgbImage::new(150, 150)])?;
    }
    let after = memory().0;
    drop(faces);
    Ok(after.saturating_sub(before))
}

/// `--enroll-during N`: the MQTT `enroll` command with N photos, run again and again during the window.
pub struct EnrolLoad {
    photos: Vec<Vec<u8>>,
    count: usize,
}

impl EnrolLoad {
    pub fn new(photos: &[PathBuf], count: usize) -> anyhow::Result<EnrolLoad> {
        anyhow::ensure!(!photos.is_empty(), "--enroll-during needs at least one --enroll-photo");
        anyhow::ensure!((1..=20).contains(&count), "--enroll-during: 1..20 photos (the enroll command's limit)");
        let photos = photos
            .iter()
            .map(|p| std::fs::read(p).with_context(|| format!("--enroll-photo {}", p.display())))
            .collect::<anyhow::Result<_>>()?;
        Ok(EnrolLoad { photos, count })
    }

    fn command(&self) -> vigil::publish::commands::Command {
        use base64::Engine;
        let images: Vec<String> = (0..self.count)
            .map(|i| base64::engine::general_purpose::STANDARD.encode(&self.photos[i % self.photos.len()]))
            .collect();
        vigil::publish::commands::Command {
            name: "enroll".into(),
            nonce: "bench".into(),
            args: serde_json::json!({"id": "bench-enrolee", "role": "patient", "images": images}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_face_window_is_four_normalised_numbers_in_order() {
        let r = parse_rect("0.05, 0,0.45,0.5").unwrap();
        assert_eq!(r.0, [0.05, 0.0, 0.45, 0.5]);
        assert_eq!(r.polygon(), "[[0.05, 0], [0.45, 0], [0.45, 0.5], [0.05, 0.5]]");
        for bad in ["0,0,1", "0,0,1,1,1", "a,0,1,1", "0.5,0,0.4,1", "0,0,1.2,1", "-0.1,0,1,1"] {
            assert!(parse_rect(bad).is_err(), "{bad} accepted");
        }
    }
}
