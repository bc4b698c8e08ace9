//! One camera: its supervisor thread (the GStreamer pipeline, [`CameraWorker`]) and its analysis thread,
//! [`CameraAnalysis`], which takes the latest frame from the camera's [`FrameSlot`] and runs what the
//! camera's role needs on it — settlement watches, physician scans, beds and chairs, tamper detection.
//! `vigil run` and `vigil bench cameras` run this same code.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use tracing::{error, info, warn};

use crate::analyze::boxes::{BBox, Rect};
use crate::analyze::face_detector::Face;
use crate::analyze::faces::FaceAnalyzer;
use crate::analyze::motion::Motion;
use crate::analyze::person_detector::{Person, PersonDetector};
use crate::analyze::quality::QualityThresholds;
use crate::analyze::{AnalyzeError, Models};
use crate::config::{Camera, Config, Role};
use crate::decide::physicians::SightingFilter;
use crate::decide::settlement::{
    FaceJudgement, FaceObservation, SettledTransaction, SettlementRules, Transactions, Verdict, Watch, shared_identity,
};
use crate::decide::{Decision, DecisionKind};
use crate::evidence::store::Detection;
use crate::gallery::PersonKind;
use crate::gallery::search::SearchIndex;
use crate::gallery::settlements::SettlementLog;
use crate::histogram::Histogram;
use crate::publish::events;
use crate::source::Frame;
use crate::source::bounded::join_within;
use crate::source::camera::{CameraCounters, CameraWorker, Supervision};
use crate::source::decode::{DecodeControl, DecodeMode};
use crate::source::pipeline;
use crate::source::settings::Decode;
use crate::source::slot::FrameSlot;
use crate::source::tamper::{TamperChange, TamperDetector, TamperKind};

use super::metrics::{CameraSource, Watched};
use super::people::People;
use super::presence::{self, PresenceCamera};
use super::sink::Outlet;
use super::{SHUTDOWN_GRACE, Shutdown};

/// What every camera's analysis shares: the gallery index, the log of settled faces, the transactions
/// being watched, the settlement rules and the roster's people. Never the model sessions.
#[derive(Clone)]
pub struct Shared {
    pub gallery: Arc<RwLock<SearchIndex>>,
    pub settled: Arc<Mutex<SettlementLog>>,
    pub transactions: Arc<Mutex<Transactions>>,
    pub rules: SettlementRules,
    pub people: Arc<People>,
}

/// Frames analysed and faces embedded by one camera's analysis (read by `vigil bench cameras` and the
/// metrics), and its tamper conditions now.
#[derive(Debug, Default)]
pub struct AnalysisCounters {
    pub frames: AtomicU64,
    pub faces_embedded: AtomicU64,
    /// Faces detected and not embedded because their watch had judged them already.
    pub embeddings_saved: AtomicU64,
    /// Person detector runs (a still picture reuses the last one's answer).
    pub person_detections: AtomicU64,
    /// The tamper conditions raised and not cleared, one bit per [`TamperKind`] ([`tamper_bit`]).
    pub tampered: AtomicU8,
}

impl AnalysisCounters {
    /// The tamper conditions that hold now.
    pub fn tampered(&self) -> Vec<TamperKind> {
        let bits = self.tampered.load(Ordering::Relaxed);
        TAMPER_KINDS.into_iter().filter(|k| bits & tamper_bit(*k) != 0).collect()
    }
}

/// Every tamper condition, in the order metrics and health list them.
pub const TAMPER_KINDS: [TamperKind; 3] = [TamperKind::Covered, TamperKind::Frozen, TamperKind::Moved];

/// The bit of `kind` in [`AnalysisCounters::tampered`].
pub fn tamper_bit(kind: TamperKind) -> u8 {
    match kind {
        TamperKind::Covered => 1,
        TamperKind::Frozen => 2,
        TamperKind::Moved => 4,
    }
}

/// `session.run` times of every camera's model calls, by model (shared by all cameras: a label per
/// model, not per camera, keeps the series few).
#[derive(Debug)]
pub struct ModelTimings {
    pub face_detector: Arc<Histogram>,
    pub embedder: Arc<Histogram>,
    pub person_detector: Arc<Histogram>,
}

impl Default for ModelTimings {
    fn default() -> Self {
        let h = || Arc::new(Histogram::new(crate::histogram::MODEL_CALL_BOUNDS));
        ModelTimings { face_detector: h(), embedder: h(), person_detector: h() }
    }
}

/// A window camera's face window in pixels: the polygon and its bounding box, where faces are looked for.
#[derive(Debug, Clone)]
pub struct FaceWindow {
    polygon: crate::decide::presence::Polygon,
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl FaceWindow {
    /// The window of normalised `points` in a `width` × `height` frame (None when it is no polygon there).
    pub fn new(points: &[Vec<f64>], width: u32, height: u32) -> Option<FaceWindow> {
        let polygon = crate::decide::presence::Polygon::from_config(points, width, height).ok()?;
        let b = polygon.bounds();
        let x = (b[0].max(0.0).floor() as u32).min(width.saturating_sub(1));
        let y = (b[1].max(0.0).floor() as u32).min(height.saturating_sub(1));
        let right = (b[2].ceil() as u32).clamp(x + 1, width);
        let bottom = (b[3].ceil() as u32).clamp(y + 1, height);
        Some(FaceWindow { polygon, x, y, width: right - x, height: bottom - y })
    }

    /// The window's bounding box, where the detector looks.
    pub fn rect(&self) -> Rect {
        Rect { x: self.x, y: self.y, width: self.width, height: self.height }
    }

    /// Whether a face (frame coordinates) is the window's: its centre is inside the polygon.
    pub fn keeps(&self, face: &Face) -> bool {
        let (cx, cy) = ((face.bbox[0] + face.bbox[2]) / 2.0, (face.bbox[1] + face.bbox[3]) / 2.0);
        self.polygon.contains(f64::from(cx), f64::from(cy))
    }
}

/// Faces in a frame and how many were not embedded because `wants` said so.
#[derive(Debug, Default)]
pub struct FacesSeen {
    /// Every detected face's box (frame coordinates), with its embedding when it passed the quality gate
    /// and was wanted.
    pub faces: Vec<FaceObservation>,
    /// Faces detected and not embedded because their track needs no more ([`Watch::wants_embedding`]).
    pub skipped: u64,
}

/// Faces in a frame: every detected face's box (frame coordinates), with its embedding when it passes
/// the quality gate and `wants` its box. With a face window (`[[cameras]] face_window`), the detector
/// sees the window's bounding box only (a smaller picture: faster, and the customer's face larger in
/// it), and a face whose centre is outside the polygon is dropped. Faces are aligned from the whole
/// frame.
pub fn faces_in(
    faces: &mut FaceAnalyzer,
    img: &image::RgbImage,
    gate: &QualityThresholds,
    window: Option<&[Vec<f64>]>,
    wants: impl Fn(&BBox) -> bool,
) -> Result<FacesSeen, AnalyzeError> {
    let window = window.and_then(|points| FaceWindow::new(points, img.width(), img.height()));
    let detected = match &window {
        Some(w) => faces.detector.detect_in(img, w.rect())?.into_iter().filter(|f| w.keeps(f)).collect(),
        None => faces.detect(img)?,
    };
    let mut seen = FacesSeen::default();
    for face in detected {
        if !wants(&face.bbox) {
            seen.skipped += 1;
            seen.faces.push(FaceObservation {
                bbox: face.bbox,
                score: face.score,
                embedding: None,
                landmarks: Some(face.landmarks),
            });
            continue;
        }
        let f = faces.examine(img, face, gate);
        if !f.quality.ok() {
            tracing::trace!(problems = %f.quality.problems.join("; "), "face below the quality gate");
        }
        seen.faces.push(FaceObservation {
            bbox: f.face.bbox,
            score: f.face.score,
            embedding: f.embedding.ok(),
            landmarks: Some(f.face.landmarks),
        });
    }
    Ok(seen)
}

/// The person detector's last answer on a camera with regions.
#[derive(Default)]
struct SeenPersons {
    found: Vec<Person>,
    /// When the frame it was for was captured; None before the first.
    at: Option<SystemTime>,
    motion: Motion,
}

/// A person detector's answer is used at most this long while the picture stays still.
const PERSONS_MAX_AGE: Duration = Duration::from_secs(30);
/// A block whose mean luma moved by more than this many grey levels has changed ([`Motion`]): noise and
/// compression flicker stay well under it, a person moving changes whole blocks by tens of levels.
const MOTION_LEVELS: f32 = 8.0;
/// The picture changed when this share of its blocks did: a patient turning in bed moves a few dozen of
/// a 1280×720 frame's 3,600 blocks.
const MOTION_SHARE: f32 = 0.003;

/// How long an on-demand camera keeps decoding every frame after its last settlement watch ended.
const WATCH_LINGER: Duration = Duration::from_secs(2);

/// Tamper detection looks at one analysed frame in this time (every keyframe of a keyframes-only camera);
/// a little under a second, so that frames a second apart pass despite their timestamps' jitter.
const TAMPER_EVERY: Duration = Duration::from_millis(950);

/// How often each camera's counters are logged.
const STATS_EVERY: Duration = Duration::from_secs(300);

/// One camera's analysis: its own model sessions (none shared with another camera or with enrolment),
/// its settlement watches, its physician scan, its beds or chairs, its tamper detector, and its outlet.
pub struct CameraAnalysis {
    camera: String,
    /// Window cameras, cameras watching for physicians, dialysis rooms with chairs.
    faces: Option<FaceAnalyzer>,
    /// Ward and dialysis-room cameras with regions.
    person_detector: Option<PersonDetector>,
    /// The person detector's last answer, and the frame it was for (motion is measured against it).
    persons: SeenPersons,
    gate: QualityThresholds,
    match_distance: f32,
    shared: Shared,
    presence: Option<Arc<PresenceCamera>>,
    /// Window cameras: watches opened by `settlement` commands.
    watches: Option<mpsc::Receiver<Watch>>,
    open: Vec<Watch>,
    /// What the camera's pipeline decodes; this analysis sets it on every turn when the camera decodes
    /// on demand ([`CameraAnalysis::wanted_mode`]).
    decode: Arc<DecodeControl>,
    on_demand: bool,
    /// When the last watch ended: full-rate decoding lingers a little after it.
    watch_ended: Option<Instant>,
    physicians_every: Option<Duration>,
    last_scan: Option<Instant>,
    sightings: SightingFilter,
    tamper: TamperDetector,
    /// When tamper detection last looked at a frame (it looks at most every [`TAMPER_EVERY`]).
    last_tamper: Option<SystemTime>,
    reference_path: PathBuf,
    /// Where a console-taken empty reference of the regions is stored: it needs the data directory and
    /// the lighting thresholds (each lighting condition keeps its own).
    empty_references: (PathBuf, crate::decide::presence::PresenceSettings),
    /// Window cameras: where faces are looked for (the console changes it live).
    face_window: Arc<RwLock<Option<Vec<Vec<f64>>>>>,
    /// References asked for by the console, taken from the next analysed frame.
    references: mpsc::Receiver<ReferenceRequest>,
    references_tx: mpsc::Sender<ReferenceRequest>,
    out: Outlet,
    pub counters: Arc<AnalysisCounters>,
}

/// A reference the console asks the running camera for: `empty` also makes it the regions' empty
/// reference; a uniform picture is refused unless `uniform_ok`. Answered on `reply` from the next frame.
pub struct ReferenceRequest {
    pub empty: bool,
    pub uniform_ok: bool,
    pub reply: mpsc::Sender<Result<(), ReferenceRefused>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReferenceRefused {
    #[error("the camera shows a uniform picture (covered?); not usable as a reference unless confirmed")]
    Uniform,
    #[error("cannot save the reference: {0}")]
    Save(String),
}

/// What the console changes in a running camera's analysis: its face window, its references, its regions.
#[derive(Clone)]
pub struct LiveAnalysis {
    pub face_window: Arc<RwLock<Option<Vec<Vec<f64>>>>>,
    pub references: mpsc::Sender<ReferenceRequest>,
    pub presence: Option<Arc<PresenceCamera>>,
    /// The camera's name, role and URL in evidence manifests.
    pub identity: Arc<RwLock<crate::evidence::manifest::CameraIdentity>>,
    /// What the pipeline decodes now.
    pub decode: Arc<DecodeControl>,
}

impl CameraAnalysis {
    /// Opens the sessions the camera's role needs and loads its tamper reference.
    pub fn new(
        config: &Config,
        camera: &Camera,
        models: &Models,
        shared: Shared,
        presence: Option<Arc<PresenceCamera>>,
        watches: Option<mpsc::Receiver<Watch>>,
        out: Outlet,
    ) -> Result<CameraAnalysis, AnalyzeError> {
        let chairs = camera.role == Role::DialysisRoom && presence.is_some();
        let wants_faces = camera.role == Role::SettlementWindow || camera.watch_physicians() || chairs;
        let reference_path = reference_path(&config.storage.data_dir, &camera.id);
        let reference = load_reference(&reference_path);
        let (references_tx, references) = mpsc::channel();
        Ok(CameraAnalysis {
            camera: camera.id.clone(),
            faces: if wants_faces { Some(models.face_analyzer()?) } else { None },
            person_detector: if presence.is_some() { Some(models.person_detector()?) } else { None },
            persons: SeenPersons::default(),
            gate: config.faces.video_quality(),
            match_distance: config.faces.match_distance,
            shared,
            presence,
            watches,
            open: Vec::new(),
            decode: Arc::new(DecodeControl::new(DecodeMode::Keyframes)),
            on_demand: camera.decode() == Decode::OnDemand,
            watch_ended: None,
            physicians_every: camera
                .watch_physicians()
                .then(|| Duration::from_secs_f64(config.physicians.scan_every_secs)),
            last_scan: None,
            sightings: SightingFilter::new(config.physicians.sighting_matches, Duration::from_secs(60)),
            tamper: TamperDetector::new(config.tamper.clone(), reference.as_ref()),
            last_tamper: None,
            reference_path,
            empty_references: (config.storage.data_dir.clone(), config.presence.settings(&config.persons)),
            face_window: Arc::new(RwLock::new(camera.face_window.clone())),
            references,
            references_tx,
            out,
            counters: Arc::default(),
        })
    }

    /// The handle through which the console changes this analysis while it runs.
    pub fn live(&self) -> LiveAnalysis {
        LiveAnalysis {
            face_window: self.face_window.clone(),
            references: self.references_tx.clone(),
            presence: self.presence.clone(),
            identity: self.out.identity(),
            decode: self.decode.clone(),
        }
    }

    /// A reference the console asked for, from this frame: the tamper detector's (and, for `empty`,
    /// the regions') from now on, saved where `vigil reference` saves them.
    fn take_reference(&mut self, frame: &Frame, request: &ReferenceRequest) -> Result<(), ReferenceRefused> {
        if !request.uniform_ok && !TamperDetector::usable_as_reference(&frame.image) {
            return Err(ReferenceRefused::Uniform);
        }
        write_reference(&self.reference_path, &frame.image).map_err(ReferenceRefused::Save)?;
        // The empty reference belongs to the lighting condition the picture shows (day colour or night
        // infrared): each condition keeps its own.
        let empty = request.empty.then(|| {
            let (data_dir, settings) = &self.empty_references;
            presence::empty_reference_for(data_dir, settings, &self.camera, &frame.image)
        });
        if let Some((_, path)) = &empty {
            write_reference(path, &frame.image).map_err(ReferenceRefused::Save)?;
        }
        self.tamper.set_reference(&frame.image);
        if let (Some((lighting, _)), Some(presence)) = (&empty, &self.presence) {
            presence.set_reference(*lighting, frame.image.clone());
        }
        info!(camera = %self.camera, empty = request.empty, lighting = empty.as_ref().map(|(l, _)| l.as_str()),
            uniform_ok = request.uniform_ok,
            "reference taken from the running camera (console); tamper detection compares with it from now on");
        Ok(())
    }

    /// Counts each model call's `session.run` time in `timings`.
    pub fn time_models(&mut self, timings: &ModelTimings) {
        if let Some(faces) = self.faces.as_mut() {
            faces.detector.timings = Some(timings.face_detector.clone());
            faces.embedder.timings = Some(timings.embedder.clone());
        }
        if let Some(persons) = self.person_detector.as_mut() {
            persons.timings = Some(timings.person_detector.clone());
        }
    }

    /// Faces in a frame: every detected face's box, with its embedding when it passes the quality gate
    /// and some duty still needs it (`all`: a physician scan or a chair's identity window needs every face;
    /// otherwise only faces an open watch has not judged yet).
    fn observe_faces(&mut self, img: &image::RgbImage, all: bool) -> Vec<FaceObservation> {
        let Some(faces) = self.faces.as_mut() else { return Vec::new() };
        let window = self.face_window.read().unwrap_or_else(|e| e.into_inner()).clone();
        let (open, rules) = (&self.open, &self.shared.rules);
        let wants = |bbox: &BBox| all || open.iter().any(|w| w.wants_embedding(bbox, rules));
        match faces_in(faces, img, &self.gate, window.as_deref(), wants) {
            Ok(seen) => {
                let embedded = seen.faces.iter().filter(|f| f.embedding.is_some()).count() as u64;
                self.counters.faces_embedded.fetch_add(embedded, Ordering::Relaxed);
                self.counters.embeddings_saved.fetch_add(seen.skipped, Ordering::Relaxed);
                seen.faces
            }
            Err(e) => {
                warn!(camera = %self.camera, error = %e, "face detection failed on a frame");
                Vec::new()
            }
        }
    }

    /// What the analysis thread does on every turn, frame or not: takes the watches opened since, and
    /// tells the pipeline what to decode (a watch opened while only keyframes are decoded switches the
    /// camera to full rate within this turn, not at the next frame).
    pub fn poll(&mut self) {
        if let Some(rx) = &self.watches {
            self.open.extend(rx.try_iter());
        }
        if self.on_demand {
            self.decode.set(self.wanted_mode(SystemTime::now()));
        }
    }

    /// The control of what this camera's pipeline decodes (give it to its [`CameraWorker`]).
    pub fn decode_control(&self) -> Arc<DecodeControl> {
        self.decode.clone()
    }

    /// What the camera's duties need decoded now: every frame while a settlement watch is open (and
    /// [`WATCH_LINGER`] after the last one ended, for the next customer), or while a dialysis session is
    /// in its identity window; keyframes otherwise, which is enough for tamper detection, presence and
    /// physician scans (a scan every few seconds takes the next keyframe).
    pub fn wanted_mode(&self, now: SystemTime) -> DecodeMode {
        let watching = !self.open.is_empty() || self.watch_ended.is_some_and(|t| t.elapsed() < WATCH_LINGER);
        let identifying = self.presence.as_ref().is_some_and(|p| p.wants_faces(now));
        if watching || identifying { DecodeMode::Full } else { DecodeMode::Keyframes }
    }

    /// Everything the camera's role asks of one analysed frame.
    pub fn on_frame(&mut self, frame: &Frame) {
        self.poll();
        let requests: Vec<ReferenceRequest> = self.references.try_iter().collect();
        for request in requests {
            let taken = self.take_reference(frame, &request);
            let _ = request.reply.send(taken);
        }
        // Physicians are looked for every few seconds, and only while one is on shift.
        let scan_physicians = self.physicians_every.is_some_and(|every| {
            self.last_scan.is_none_or(|t| t.elapsed() >= every) && self.shared.people.any_shift_on(frame.captured)
        });
        // Beds and chairs: the person detector on every analysed frame.
        let chair_faces = match (&self.presence, self.person_detector.as_mut()) {
            (Some(p), Some(detector)) if p.has_regions() => {
                // The person detector is the costly part of a ward's frame: it runs again only when the
                // picture changed since its last answer (someone moving, lights) or that answer is
                // [`PERSONS_MAX_AGE`] old; a still room keeps its last answer.
                let stale = self
                    .persons
                    .at
                    .is_none_or(|at| frame.captured.duration_since(at).map_or(true, |age| age >= PERSONS_MAX_AGE));
                if stale || self.persons.motion.changed(&frame.image, None, MOTION_LEVELS) >= MOTION_SHARE {
                    self.persons.found = detector.detect(&frame.image).unwrap_or_else(|e| {
                        warn!(camera = %self.camera, error = %e, "person detection failed on a frame");
                        Vec::new()
                    });
                    self.persons.motion.reset(&frame.image, None);
                    self.persons.at = Some(frame.captured);
                    self.counters.person_detections.fetch_add(1, Ordering::Relaxed);
                }
                p.observe(frame, &self.persons.found);
                p.wants_faces(frame.captured)
            }
            _ => false,
        };
        let observed = if !self.open.is_empty() || scan_physicians || chair_faces {
            self.observe_faces(&frame.image, scan_physicians || chair_faces)
        } else {
            Vec::new()
        };
        if scan_physicians {
            self.last_scan = Some(Instant::now());
            let index = self.shared.gallery.read().unwrap_or_else(|e| e.into_inner());
            tracing::debug!(camera = %self.camera, faces = observed.len(),
                good = observed.iter().filter(|f| f.embedding.is_some()).count(), "physician scan");
            for embedding in observed.iter().filter_map(|f| f.embedding.as_ref()) {
                let Some(m) = index.best(embedding, Some(PersonKind::Physician)) else { continue };
                tracing::debug!(camera = %self.camera, physician = %m.id, distance = m.distance, "physician match");
                if m.distance < self.match_distance && self.sightings.matched(&m.id, frame.captured) {
                    self.shared.people.sighting(&m.id, &self.camera, frame.captured);
                }
            }
        }
        if let (true, Some(p)) = (chair_faces, &self.presence) {
            let index = self.shared.gallery.read().unwrap_or_else(|e| e.into_inner());
            p.observe_faces(frame, &observed, &index, &self.shared.rules);
        }
        if !self.open.is_empty() {
            let index = self.shared.gallery.read().unwrap_or_else(|e| e.into_inner());
            let mut finished = Vec::new();
            for (i, watch) in self.open.iter_mut().enumerate() {
                if let Some(outcome) = watch.observe(&observed, frame.captured, &index, &self.shared.rules) {
                    finished.push(i);
                    settle(&self.out, frame, outcome, &self.shared);
                }
            }
            drop(index);
            for i in finished.into_iter().rev() {
                self.open.remove(i);
            }
            if self.open.is_empty() {
                self.watch_ended = Some(Instant::now());
            }
        }
        self.look_for_tamper(frame);
        self.counters.frames.fetch_add(1, Ordering::Relaxed);
    }

    /// Tamper detection on this frame, if its second has come: conditions are held for seconds before
    /// they count, so one look a second is enough, and spares a face camera's 5 fps the two passes over
    /// each frame.
    fn look_for_tamper(&mut self, frame: &Frame) {
        if self.last_tamper.is_some_and(|t| frame.captured.duration_since(t).is_ok_and(|d| d < TAMPER_EVERY)) {
            return;
        }
        self.last_tamper = Some(frame.captured);
        if !self.tamper.has_reference() && TamperDetector::usable_as_reference(&frame.image) {
            save_reference(&self.reference_path, &frame.image, &self.camera);
            self.tamper.set_reference(&frame.image);
        }
        for change in self.tamper.observe(&frame.image, frame.captured) {
            match change {
                TamperChange::Raised(kind) => self.counters.tampered.fetch_or(tamper_bit(kind), Ordering::Relaxed),
                TamperChange::Cleared(kind) => self.counters.tampered.fetch_and(!tamper_bit(kind), Ordering::Relaxed),
            };
            let details = [("tamper".to_owned(), change.kind().as_str().to_owned())].into();
            let onset = self.tamper.onset(change.kind()).unwrap_or(frame.captured);
            let kind = crate::decide::tamper::decision_kind(change, onset);
            self.out.decide(Some(frame), frame.captured, kind, details, Vec::new());
        }
    }
}

/// A started camera: its supervisor and analysis threads, and the slot between them.
pub struct StartedCamera {
    pub threads: Vec<JoinHandle<()>>,
    pub slot: Arc<FrameSlot>,
    /// Each thread's progress, for the systemd watchdog.
    pub watched: Vec<super::notify::Watched>,
    /// Its counters and health, for the metrics.
    pub metrics: CameraSource,
    /// What the console reads and changes.
    pub handle: CameraHandle,
}

/// Starts the supervisor and analysis threads of one camera, recording into `recordings` if given.
pub fn start_camera(
    config: &Config,
    camera: &Camera,
    mut analysis: CameraAnalysis,
    recordings: Option<PathBuf>,
    decisions: mpsc::Sender<Decision>,
    shutdown: &Shutdown,
) -> anyhow::Result<StartedCamera> {
    let slot = Arc::new(FrameSlot::default());
    let counters = Arc::new(CameraCounters::default());
    let offline = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let metrics = CameraSource {
        id: camera.id.clone(),
        counters: counters.clone(),
        slot: slot.clone(),
        offline: offline.clone(),
        analysis: analysis.counters.clone(),
    };
    let control = Arc::new(StreamControl {
        next: Mutex::new(camera.stream()),
        current: Mutex::new(Arc::default()),
        started: Mutex::new(Instant::now()),
    });
    let live = analysis.live();
    let decode_control = analysis.decode_control();
    let (run_control, global, slot_for_worker) = (control.clone(), shutdown.flag(), slot.clone());
    let health: Arc<dyn crate::source::health::HealthSink> = Arc::new(Watched { inner: decisions, offline });
    let (max_recording_bytes, worker_counters) = (config.retention.recordings_max_bytes_per_camera.0, counters.clone());
    // One worker after another on this thread: a new one when the console changes the camera's URL
    // (`StreamControl::restart`), none after the agent's shutdown.
    let supervisor = std::thread::Builder::new().name(format!("cam-{}", camera.id)).spawn(move || {
        loop {
            let restart = Arc::new(std::sync::atomic::AtomicBool::new(false));
            *run_control.current.lock().unwrap_or_else(|e| e.into_inner()) = restart.clone();
            let worker = CameraWorker {
                camera: run_control.next.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                recordings: recordings.clone(),
                segment: Duration::from_secs(10),
                max_recording_bytes,
                slot: slot_for_worker.clone(),
                health: health.clone(),
                shutdown: global.clone(),
                restart: Some(restart),
                counters: worker_counters.clone(),
                supervision: Supervision::default(),
                decode: decode_control.clone(),
            };
            worker.run();
            if global.load(Ordering::Relaxed) {
                return;
            }
        }
    })?;
    let stop = shutdown.clone();
    let camera_id = camera.id.clone();
    let frames = slot.clone();
    let supervisor_progress = counters.progress.clone();
    let progress = super::notify::Progress::default();
    let analysed = progress.clone();
    let hang = super::notify::hang_analysis(&camera.id);
    let thread = std::thread::Builder::new().name(format!("ana-{}", camera.id)).spawn(move || {
        let mut last_report = Instant::now();
        while !stop.is_set() {
            // Bumped on every turn, a frame or the take's timeout: an idle camera is not a stuck thread.
            analysed.fetch_add(1, Ordering::Relaxed);
            if last_report.elapsed() >= STATS_EVERY {
                last_report = Instant::now();
                info!(camera = %camera_id, frames = frames.delivered(), dropped = frames.dropped(),
                    restarts = counters.restarts.load(Ordering::Relaxed),
                    segments_evicted = counters.segments_evicted.load(Ordering::Relaxed),
                    abandoned_teardowns = counters.abandoned_teardowns.load(Ordering::Relaxed),
                    abandoned_starts = counters.abandoned_starts.load(Ordering::Relaxed),
                    stuck_pipelines = counters.stuck(),
                    watchdog_offline = counters.watchdog_offline.load(Ordering::Relaxed),
                    recording_failures = counters.recording_failures.load(Ordering::Relaxed), "camera counters");
            }
            analysis.poll();
            if let Some(frame) = frames.take(Duration::from_millis(100)) {
                analysis.on_frame(&frame);
                frames.keep(frame);
                if hang {
                    warn!(camera = %camera_id, "VIGIL_TEST_HANG_ANALYSIS: this analysis thread now hangs (test-only)");
                    while !stop.is_set() {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        }
    })?;
    let watched = vec![
        super::notify::Watched::new(format!("cam-{}", camera.id), supervisor_progress),
        super::notify::Watched::new(format!("ana-{}", camera.id), progress),
    ];
    let handle = CameraHandle { id: camera.id.clone(), source: metrics.clone(), live, stream: control };
    Ok(StartedCamera { threads: vec![supervisor, thread], slot, watched, metrics, handle })
}

/// The stream settings of a camera's next worker, and the flag that stops the current one.
struct StreamControl {
    next: Mutex<crate::source::settings::StreamSettings>,
    current: Mutex<Arc<std::sync::atomic::AtomicBool>>,
    /// When the current worker started (the console's uptime of a camera).
    started: Mutex<Instant>,
}

/// A running camera as the console sees and changes it: counters, frames, its analysis' live settings,
/// and its stream's restart.
#[derive(Clone)]
pub struct CameraHandle {
    pub id: String,
    pub source: CameraSource,
    pub live: LiveAnalysis,
    stream: Arc<StreamControl>,
}

impl CameraHandle {
    /// Stops the camera's pipeline and starts it again with `stream` (a new URL); the analysis thread,
    /// its counters and every other camera go on.
    pub fn restart(&self, stream: crate::source::settings::StreamSettings) {
        *self.stream.next.lock().unwrap_or_else(|e| e.into_inner()) = stream;
        *self.stream.started.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.stream.current.lock().unwrap_or_else(|e| e.into_inner()).store(true, Ordering::Relaxed);
        info!(camera = %self.id, "camera restarting with its new stream settings (console)");
    }

    /// Since when the camera's current stream runs (its start, or its last restart by the console).
    pub fn running_since(&self) -> Instant {
        *self.stream.started.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Turns a settlement watch's outcome into decisions (with evidence for mismatch and no face), checks
/// the faces it records against earlier settlements for card lending, remembers them, and records the
/// verdict so that a repeated `settlement` for the transaction is answered with it.
///
/// Each evidence manifest carries the event's details (distances, best matches, the other transaction)
/// and the judged faces' boxes with the detector's scores.
fn settle(out: &Outlet, frame: &Frame, outcome: crate::decide::settlement::Outcome, shared: &Shared) {
    let (settled, transactions, rules) = (&shared.settled, &shared.transactions, &shared.rules);
    let (tx, claimed) = (outcome.transaction_id.clone(), outcome.claimed_id.clone());
    let boxed = |faces: &[&FaceJudgement]| -> Vec<Detection> {
        faces.iter().map(|f| Detection { label: "face".into(), bbox: f.bbox, score: f.score }).collect()
    };
    let judged: Vec<&FaceJudgement> = outcome.faces.iter().map(|f| &f.judgement).collect();
    let kind = match &outcome.verdict {
        Verdict::Verified { distance, .. } => DecisionKind::SettlementVerified {
            transaction_id: tx.clone(),
            claimed_id: claimed.clone(),
            distance: *distance,
            face: judged[0].clone(),
            faces_seen: outcome.faces_seen,
        },
        Verdict::IdentityMismatch { distance, best_match, best_distance, .. } => {
            DecisionKind::SettlementIdentityMismatch {
                transaction_id: tx.clone(),
                claimed_id: claimed.clone(),
                distance: *distance,
                best_match: best_match.clone(),
                best_distance: *best_distance,
                faces: judged.iter().map(|f| (*f).clone()).collect(),
                faces_seen: outcome.faces_seen,
            }
        }
        Verdict::NoFace { faces_seen } => DecisionKind::SettlementNoFace {
            transaction_id: tx.clone(),
            claimed_id: claimed.clone(),
            faces_seen: *faces_seen,
        },
    };
    let verdict_name = match outcome.verdict {
        Verdict::Verified { .. } => "settlement_verified",
        Verdict::IdentityMismatch { .. } => "settlement_identity_mismatch",
        Verdict::NoFace { .. } => "settlement_no_face",
    };
    let details = events::flat_details(&events::details(&kind));
    let event_id = out.decide(Some(frame), outcome.at, kind, details, boxed(&judged));
    // With `[liveness]` on: each judged face that looks like a photo or a screen, beside the verdict.
    for face in judged.iter().filter(|f| f.liveness.as_ref().is_some_and(|l| l.suspected)) {
        let liveness = face.liveness.as_ref().expect("filtered on it");
        warn!(camera = %outcome.camera, transaction = %tx, score = ?liveness.score, cue = ?liveness.cue,
            deformation = liveness.deformation, "settlement face looks like a photo or a screen (liveness)");
        let kind = DecisionKind::SettlementSpoofSuspected {
            transaction_id: tx.clone(),
            claimed_id: claimed.clone(),
            verdict: verdict_name.to_owned(),
            verdict_event_id: event_id.to_string(),
            face: (*face).clone(),
        };
        let details = events::flat_details(&events::details(&kind));
        out.decide(Some(frame), outcome.at, kind, details, boxed(&[face]));
    }
    transactions.lock().unwrap_or_else(|e| e.into_inner()).settle(SettledTransaction {
        transaction_id: tx.clone(),
        camera: outcome.camera.clone(),
        claimed_id: claimed.clone(),
        verdict: verdict_name.to_owned(),
        event_id: event_id.to_string(),
        at: outcome.at,
    });
    let faces = outcome.settled_faces();
    if faces.is_empty() {
        return;
    }
    let mut log = settled.lock().unwrap_or_else(|e| e.into_inner());
    for sharing in shared_identity(log.faces(), &outcome, rules) {
        let face = &outcome.faces[sharing.face].judgement;
        let kind = DecisionKind::IdentitySharedAcrossIds {
            transaction_id: tx.clone(),
            claimed_id: claimed.clone(),
            other_transaction_id: sharing.earlier.transaction_id.clone(),
            other_claimed_id: sharing.earlier.claimed_id.clone(),
            other_at: sharing.earlier.at,
            distance: sharing.distance,
            face: face.clone(),
        };
        let details = events::flat_details(&events::details(&kind));
        out.decide(Some(frame), outcome.at, kind, details, boxed(&[face]));
    }
    for face in faces {
        if let Err(e) = log.add(face, SystemTime::now()) {
            error!(error = %e, "cannot record the settlement face; card lending by this face may go unnoticed");
        }
    }
}

/// `<data_dir>/references/<camera>.png`: what the camera's view should look like (for `moved`).
pub fn reference_path(data_dir: &Path, camera: &str) -> PathBuf {
    data_dir.join("references").join(format!("{camera}.png"))
}

fn load_reference(path: &Path) -> Option<image::RgbImage> {
    if !path.exists() {
        return None;
    }
    match crate::analyze::image::load_rgb(path) {
        Ok(img) => Some(img),
        Err(e) => {
            warn!(error = %e, "reference frame unreadable; a new one will be captured");
            None
        }
    }
}

/// `vigil reference`: takes a fresh frame from the camera (not recorded) and makes it the reference of
/// view-moved detection. For operators, after installing or re-aiming a camera.
pub fn capture_reference(
    config: &Config,
    camera: &Camera,
    timeout: Duration,
    empty: bool,
    uniform_ok: bool,
) -> anyhow::Result<PathBuf> {
    pipeline::init()?;
    let slot = Arc::new(FrameSlot::default());
    let stop = Shutdown::new();
    let (tx, rx) = mpsc::channel();
    let worker = CameraWorker {
        camera: camera.stream(),
        recordings: None,
        segment: Duration::from_secs(10),
        max_recording_bytes: 0,
        slot: slot.clone(),
        health: Arc::new(tx),
        shutdown: stop.flag(),
        restart: None,
        counters: Arc::new(CameraCounters::default()),
        supervision: Supervision::default(),
        decode: Arc::new(crate::source::decode::DecodeControl::new(crate::source::decode::DecodeMode::Full)),
    };
    let thread = std::thread::Builder::new().name(format!("cam-{}", camera.id)).spawn(move || worker.run())?;
    let started = std::time::Instant::now();
    let mut result = Err(anyhow::anyhow!("no usable frame from camera {} within {} s", camera.id, timeout.as_secs()));
    // Uniform frames in a row before giving up: a covered lens stays covered.
    let mut uniform_frames = 0;
    while started.elapsed() < timeout && uniform_frames < 10 {
        if let Ok(Decision { kind: DecisionKind::CameraOffline { reason }, .. }) = rx.try_recv() {
            result = Err(anyhow::anyhow!("camera {} is offline: {reason}", camera.id));
        }
        // Skip the first frames: cameras often need a moment to settle exposure.
        if let Some(frame) = slot.take(Duration::from_millis(200)).filter(|f| f.seq >= 5) {
            if uniform_ok || TamperDetector::usable_as_reference(&frame.image) {
                let path = reference_path(&config.storage.data_dir, &camera.id);
                save_reference(&path, &frame.image, &camera.id);
                if empty {
                    // Stored as the reference of the lighting the picture shows: run it once by day and
                    // once with the camera in its night infrared mode.
                    let settings = config.presence.settings(&config.persons);
                    let (lighting, path) =
                        presence::empty_reference_for(&config.storage.data_dir, &settings, &camera.id, &frame.image);
                    info!(camera = %camera.id, lighting = lighting.as_str(), path = %path.display(),
                        "empty reference of the regions for this lighting condition");
                    save_reference(&path, &frame.image, &camera.id);
                }
                result = Ok(path);
                break;
            }
            uniform_frames += 1;
            result = Err(anyhow::anyhow!(
                "camera {} shows a uniform picture (covered?); not usable as a reference — if the view \
                 really is a bare counter or wall, confirm with --uniform",
                camera.id
            ));
        }
    }
    stop.trigger();
    let left = join_within(vec![thread], std::time::Instant::now() + SHUTDOWN_GRACE);
    if !left.is_empty() {
        warn!(camera = %camera.id, "the camera did not stop within {} s; exiting without it", SHUTDOWN_GRACE.as_secs());
    }
    result
}

fn save_reference(path: &Path, img: &image::RgbImage, camera: &str) {
    match write_reference(path, img) {
        Ok(()) => {
            info!(camera, path = %path.display(), "reference frame captured (view-moved detection compares with it; \
            after re-aiming the camera, replace it with `vigil reference` and restart)")
        }
        Err(e) => warn!(camera, path = %path.display(), error = %e, "cannot save the reference frame"),
    }
}

/// A reference frame as PNG, written durably.
fn write_reference(path: &Path, img: &image::RgbImage) -> Result<(), String> {
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| e.to_string())
        .and_then(|()| crate::fsio::write(path, &png, crate::fsio::PRIVATE_FILE).map_err(|e| e.to_string()))
}

#[cfg(test)]
mod face_window_tests {
    use super::*;

    fn face(bbox: [f32; 4]) -> Face {
        Face { bbox, score: 0.9, landmarks: [[bbox[0], bbox[1]]; 5] }
    }

    /// The detector looks in the polygon's bounding box; a face is kept only when its centre is inside
    /// the polygon (a triangle here: its bounding box's corners are not).
    #[test]
    fn faces_are_kept_only_inside_the_polygon() {
        let points = vec![vec![0.25, 0.5], vec![0.75, 0.5], vec![0.5, 1.0]];
        let w = FaceWindow::new(&points, 800, 400).unwrap();
        assert_eq!(w.rect(), Rect { x: 200, y: 200, width: 400, height: 200 });
        assert!(w.keeps(&face([380.0, 220.0, 420.0, 260.0])), "centre (400, 240) is inside");
        assert!(!w.keeps(&face([200.0, 260.0, 240.0, 300.0])), "the box's lower-left corner is outside the triangle");
        assert!(FaceWindow::new(&[vec![0.1, 0.1], vec![0.2, 0.2]], 800, 400).is_none());
    }
}
