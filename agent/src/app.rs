//! Wires the stages together and runs them until a shutdown signal.
//!
//! Per camera: a supervisor thread running its GStreamer pipeline ([`CameraWorker`]) and an analysis
//! thread taking the latest frame from the camera's [`FrameSlot`]. Decisions from all cameras go through
//! one channel to the decision sink (for now: the log).
//!
//! Shutdown is bounded: after SIGINT or SIGTERM every worker thread gets [`SHUTDOWN_GRACE`] (10 s) in
//! total — cameras stop in parallel, each within about 8.5 s even when its pipeline is stuck (see
//! `source::camera`), then the decision sink drains and the evidence worker finishes — and the
//! publisher up to 5 s more to deliver. Threads still busy at the deadline are named in a WARN and
//! left behind; the process exits 0 all the same, about 15 s after the signal at worst (the unit's
//! `TimeoutStopSec` is 30 s). What leaving them can lose is bounded too: a camera left behind is one
//! whose pipeline is stuck (it has no frames to decide on), evidence requests not yet written are saved
//! and written at the next start, and only decisions still queued for the sink at the deadline (none,
//! unless the outbox itself is stuck) would be dropped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

pub(crate) mod handlers;
mod people;
mod presence;

use anyhow::Context;
use tracing::{error, info, warn};

use crate::analyze::{Models, runtime};
use crate::config::{Camera, Config, Role, redact_url};
use crate::decide::clock::{Clock, SystemClock};
use crate::decide::physicians::{PhysicianEvent, SightingFilter};
use crate::decide::settlement::{
    FaceJudgement, FaceObservation, SettledTransaction, SettlementRules, Transactions, Verdict, Watch, shared_identity,
};
use crate::decide::{Decision, DecisionKind};
use crate::evidence::keys::DeviceKey;
use crate::evidence::keys::PublicKey;
use crate::evidence::pending::Pending;
use crate::evidence::store::Detection;
use crate::evidence::store::{self, EvidenceRequest, Store};
use crate::gallery::quality::QualityThresholds;
use crate::gallery::search::SearchIndex;
use crate::gallery::settlements::SettlementLog;
use crate::gallery::{Gallery, Role as GalleryRole};
use crate::outbox::{NewRecord, Outbox};
use crate::publish::commands::Registry;
use crate::publish::events;
use crate::publish::publisher::{Publisher, PublisherCounters, PublisherSettings, TlsFiles};
use crate::source::bounded::join_within;
use crate::source::camera::{CameraCounters, CameraWorker, Supervision};
use crate::source::pipeline;
use crate::source::recorder;
use crate::source::slot::FrameSlot;
use crate::source::tamper::{TamperChange, TamperDetector};
use crate::storage_lock::DataDirLock;
use handlers::{Enrolment, roster_handler, settlement_handler};
use people::People;
use presence::{Presence, PresenceCamera};

/// Runs the agent with a validated configuration until SIGINT or SIGTERM.
pub fn run(config: Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vigil-rt")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(run_async(config))
}

async fn run_async(config: Config) -> anyhow::Result<()> {
    // Listen before anything else, so a signal during start-up is a clean shutdown, not a kill.
    let shutdown = shutdown_signal()?;
    // One agent per data directory, before anything in it is opened; held until this function returns.
    let lock = DataDirLock::acquire(&config.storage.data_dir)?;
    info!(path = %lock.path().display(), pid = std::process::id(), "data directory locked");
    let ort = runtime::init(config.models.ort_library.as_deref())?;
    info!(version = %ort.version, path = %ort.path.display(), "ONNX Runtime loaded");
    // Refuse to start on a missing or modified model: every decision and evidence manifest names them.
    let models = Models::load(&config.models, &config.faces, &config.persons)?;
    for model in &models.bundle.models {
        info!(model = %model.name, sha256 = %model.sha256, path = %model.path.display(), "model verified");
    }
    let gallery = Gallery::open(&config.storage.gallery_file(), &config.storage.gallery_key_file())?;
    info!(enrolled = gallery.entries().len(), "gallery loaded (encrypted)");
    let index = Arc::new(RwLock::new(SearchIndex::build(gallery.entries())));
    let gallery = Arc::new(Mutex::new(gallery));
    let face_retention = Duration::from_secs(u64::from(config.settlement.face_retention_days) * 86_400);
    let settled = Arc::new(Mutex::new(SettlementLog::open(
        &config.storage.data_dir.join("settlement-faces.bin"),
        &config.storage.gallery_key_file(),
        face_retention,
        SystemTime::now(),
    )?));
    let people = Arc::new(People::load(&config));
    pipeline::init()?;
    // The device's identity signs every bundle: refuse to run without it, or with a key others can read.
    let key_file = config.storage.key_file(&config.evidence);
    let key = DeviceKey::load(&key_file)?;
    info!(public_key = %key.public().to_base64(), path = %key_file.display(), "device key loaded");
    let model_hashes = models.bundle.models.iter().map(|m| (m.name.clone(), m.sha256.clone())).collect();
    let models = Arc::new(Mutex::new(models));
    // One command channel per window camera: `settlement` opens a watch there.
    let mut watches: HashMap<String, mpsc::Sender<Watch>> = HashMap::new();
    let mut watch_receivers: HashMap<String, mpsc::Receiver<Watch>> = HashMap::new();
    for camera in config.cameras.iter().filter(|c| c.role == Role::SettlementWindow) {
        let (tx, rx) = mpsc::channel();
        watches.insert(camera.id.clone(), tx);
        watch_receivers.insert(camera.id.clone(), rx);
    }
    // Transaction ids being watched or settled: a repeated `settlement` never opens a second watch.
    let transactions = Arc::new(Mutex::new(Transactions::default()));
    let mut registry = Registry::default();
    registry.register(
        "settlement",
        settlement_handler(watches, transactions.clone(), Duration::from_secs(config.settlement.watch_secs)),
    );
    let enrolment = Enrolment {
        models: models.clone(),
        gallery: gallery.clone(),
        index: index.clone(),
        thresholds: config.faces.quality(),
    };
    registry.register("enroll", enrolment.clone().enroll_handler());
    registry.register("unenroll", enrolment.unenroll_handler());
    registry.register("roster", roster_handler(config.clone(), people.clone()));
    let (decisions_tx, decisions_rx) = mpsc::channel::<Decision>();
    let (evidence_tx, evidence_rx) = mpsc::channel::<EvidenceRequest>();
    let pending = Arc::new(Pending::new(&config.storage.data_dir.join("evidence-pending")));
    let outlets: Vec<Outlet> = config
        .cameras
        .iter()
        .map(|camera| Outlet {
            camera: camera.id.clone(),
            pending: pending.clone(),
            decisions: decisions_tx.clone(),
            evidence: evidence_tx.clone(),
            recordings: config.storage.recordings_dir().join(&camera.id),
            pre_roll: Duration::from_secs(config.evidence.pre_roll_secs),
            post_roll: Duration::from_secs(config.evidence.post_roll_secs),
        })
        .collect();
    let presence_cameras: Vec<Arc<PresenceCamera>> = config
        .cameras
        .iter()
        .zip(&outlets)
        .filter(|(c, _)| c.role != Role::SettlementWindow && !c.regions.is_empty())
        .map(|(c, out)| Arc::new(PresenceCamera::new(&config, c, out.clone())))
        .collect();
    let presence = Arc::new(Presence::new(presence_cameras, &config, decisions_tx.clone()));
    registry.register("rollcall", handlers::rollcall_handler(Arc::downgrade(&presence), people.clone()));
    let registry = Arc::new(registry);
    let store =
        Store::open(&config.storage.evidence_dir(), key, &config.site.id, &config.site.device_id, model_hashes)?;

    let outbox_path = config.storage.data_dir.join("outbox.sqlite");
    let outbox = Arc::new(Mutex::new(Outbox::open(&outbox_path, config.outbox.max_records)?));
    info!(path = %outbox_path.display(), undelivered = outbox.lock().unwrap().len()?, "outbox open");
    let wake = Arc::new(tokio::sync::Notify::new());
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let base = events::base_topic(
        config.mqtt.as_ref().map_or("vigil/v1", |m| m.topic_prefix.as_str()),
        &config.site.id,
        &config.site.device_id,
    );
    let publisher = match &config.mqtt {
        Some(mqtt) => {
            let settings = publisher_settings(&config, mqtt, &base)?;
            let publisher = Publisher {
                settings,
                outbox: outbox.clone(),
                wake: wake.clone(),
                shutdown: shutdown_rx,
                counters: Arc::new(PublisherCounters::default()),
                registry: registry.clone(),
                on_delivered: None,
            };
            info!(host = %redact_url(&mqtt.host), topics = %base, "MQTT delivery configured");
            Some(tokio::spawn(publisher.run()))
        }
        None => {
            warn!("no [mqtt] in the config: events are kept in the outbox until a broker is configured");
            None
        }
    };

    let stop = Arc::new(AtomicBool::new(false));
    let rules = SettlementRules {
        match_distance: config.faces.match_distance,
        min_good_frames: config.settlement.min_good_frames,
        sharing_window: Duration::from_secs(u64::from(config.settlement.sharing_window_days) * 86_400),
    };
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    for (camera, out) in config.cameras.iter().zip(outlets) {
        info!(camera = %camera.id, role = camera.role.as_str(), url = %redact_url(&camera.url),
            keyframes_only = camera.keyframes_only(), regions = camera.regions.len(), "camera configured");
        let faces = FaceWork {
            models: models.clone(),
            gallery: index.clone(),
            watches: watch_receivers.remove(&camera.id),
            settled: settled.clone(),
            transactions: transactions.clone(),
            rules,
            people: people.clone(),
            presence: presence.camera(&camera.id).cloned(),
        };
        threads.extend(start_camera(&config, camera, out, stop.clone(), faces)?);
    }
    let schedule = config.rollcalls.schedule(rollcall_seed(&config)?).map_err(|problems| {
        anyhow::anyhow!(
            "roll-call schedule: {}",
            problems.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; ")
        )
    })?;
    let scheduler = {
        let (config, people, decisions, stop) = (config.clone(), people.clone(), decisions_tx.clone(), stop.clone());
        let presence = presence.clone();
        std::thread::Builder::new()
            .name("vigil-schedule".into())
            .spawn(move || scheduler(&config, &people, &presence, &schedule, &decisions, &SystemClock, &stop))?
    };
    threads.push(scheduler);
    // Only the camera and scheduler threads may hold decision senders from here on: when they are
    // joined at shutdown, the channels close and the decision and evidence workers finish.
    drop(presence);
    drop(decisions_tx);
    drop(evidence_tx);
    let emitter = Emitter::new(outbox.clone(), wake.clone(), &base, &config.site.id, &config.site.device_id);
    let (evidence_stop, evidence_emitter) = (stop.clone(), emitter.clone());
    let evidence = std::thread::Builder::new()
        .name("vigil-evidence".into())
        .spawn(move || evidence_worker(store, &pending, evidence_rx, evidence_stop, evidence_emitter))?;
    let (retention_config, retention_stop) = (config.clone(), stop.clone());
    let retention = std::thread::Builder::new()
        .name("vigil-retention".into())
        .spawn(move || retention_worker(&retention_config, &retention_stop, &settled))?;
    // Set at shutdown once the producers are joined or given up on: a producer left behind still holds
    // a sender, so the channel alone would never say the stream of decisions has ended.
    let producers_done = Arc::new(AtomicBool::new(false));
    let sink_done = producers_done.clone();
    let sink = std::thread::Builder::new().name("vigil-decisions".into()).spawn(move || {
        loop {
            let decision = match decisions_rx.recv_timeout(Duration::from_millis(200)) {
                Ok(decision) => decision,
                Err(mpsc::RecvTimeoutError::Timeout) if sink_done.load(Ordering::Relaxed) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    emitter.retry_held();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            record_decision(&emitter, decision);
        }
        // Last chance for events the outbox refused (the evidence worker has stopped by now or soon will).
        emitter.retry_held();
        let lost = emitter.held_count();
        if lost > 0 {
            error!(events = lost, "EVENTS LOST at shutdown: the outbox could not take them (disk full?)");
        }
    })?;
    info!(site = %config.site.id, device = %config.site.device_id, cameras = config.cameras.len(), "vigil started");

    let signal = shutdown.await;
    info!(signal, "shutting down");
    stop.store(true, Ordering::Relaxed);
    let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
    let left_behind = tokio::task::spawn_blocking(move || {
        // Producers first; then the sink drains what they sent before it stops.
        let mut left = join_within(threads, deadline);
        producers_done.store(true, Ordering::Relaxed);
        left.extend(join_within(vec![sink, evidence, retention], deadline));
        left
    })
    .await?;
    if !left_behind.is_empty() {
        warn!(threads = %left_behind.join(", "), grace_secs = SHUTDOWN_GRACE.as_secs(),
            "threads still busy at the shutdown deadline are left behind; exiting without them \
             (events already in the outbox are kept; unwritten evidence is written at the next start)");
    }
    // Cameras and evidence are stopped and every event is in the outbox: now let the publisher go.
    let _ = shutdown_tx.send(true);
    if let Some(task) = publisher {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    info!("stopped cleanly");
    drop(lock);
    Ok(())
}

/// The evidence to gather for a decision taken on `frame`: the clip from pre-roll to post-roll, the frame.
fn evidence_request(
    decision: &Decision,
    frame: &crate::source::Frame,
    details: std::collections::BTreeMap<String, String>,
    detections: Vec<Detection>,
    recordings: &Path,
    pre_roll: Duration,
    post_roll: Duration,
) -> EvidenceRequest {
    EvidenceRequest {
        event_id: decision.id,
        kind: decision.name().to_owned(),
        camera: decision.camera.clone(),
        at: decision.at,
        details,
        snapshot: frame.image.clone(),
        snapshot_at: frame.captured,
        detections,
        recordings: recordings.to_owned(),
        clip_from: decision.at - pre_roll,
        clip_to: decision.at + post_roll,
    }
}

/// What a camera's analysis needs for faces: the shared models, the gallery index, (window cameras) the
/// settlement watches opened by commands and the log of settled faces, and the roster's people.
struct FaceWork {
    models: Arc<Mutex<Models>>,
    gallery: Arc<RwLock<SearchIndex>>,
    watches: Option<mpsc::Receiver<Watch>>,
    settled: Arc<Mutex<SettlementLog>>,
    transactions: Arc<Mutex<Transactions>>,
    rules: SettlementRules,
    people: Arc<People>,
    /// Ward and dialysis-room cameras with regions.
    presence: Option<Arc<PresenceCamera>>,
}

/// Faces in a frame: every detected face's box, with its embedding when it passes the quality gate.
fn observe_faces(
    models: &Mutex<Models>,
    img: &image::RgbImage,
    thresholds: &QualityThresholds,
) -> Vec<FaceObservation> {
    let mut models = models.lock().unwrap_or_else(|e| e.into_inner());
    let faces = match models.faces.detect(img) {
        Ok(f) => f,
        Err(e) => {
            warn!(error = %e, "face detection failed on a frame");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for face in faces {
        let chip = crate::analyze::align::extract_chip(img, &face.landmarks);
        let quality = crate::gallery::quality::assess(&face, &chip, thresholds);
        if !quality.ok() {
            tracing::trace!(problems = %quality.problems.join("; "), "face below the quality gate");
        }
        let good = quality.ok();
        let embedding = if good { models.embedder.embed(std::slice::from_ref(&chip)).ok().map(|e| e[0]) } else { None };
        out.push(FaceObservation { bbox: face.bbox, score: face.score, embedding });
    }
    out
}

/// How long worker threads get, in total, to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How often each camera's counters are logged.
const STATS_EVERY: Duration = Duration::from_secs(300);

/// Starts the supervisor and analysis threads of one camera.
fn start_camera(
    config: &Config,
    camera: &Camera,
    out: Outlet,
    stop: Arc<AtomicBool>,
    faces: FaceWork,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let slot = Arc::new(FrameSlot::default());
    let counters = Arc::new(CameraCounters::default());
    let worker = CameraWorker {
        camera: camera.clone(),
        recordings: Some(config.storage.recordings_dir().join(&camera.id)),
        segment: Duration::from_secs(10),
        max_recording_bytes: config.retention.recordings_max_bytes_per_camera.0,
        slot: slot.clone(),
        decisions: out.decisions.clone(),
        shutdown: stop.clone(),
        counters: counters.clone(),
        supervision: Supervision::default(),
    };
    let supervisor = std::thread::Builder::new().name(format!("cam-{}", camera.id)).spawn(move || worker.run())?;

    let reference_path = reference_path(&config.storage.data_dir, &camera.id);
    let reference = load_reference(&reference_path);
    let mut tamper = TamperDetector::new(config.tamper.clone(), reference.as_ref());
    let camera_id = camera.id.clone();
    let thresholds = config.faces.video_quality();
    let physicians_every =
        camera.watch_physicians().then(|| Duration::from_secs_f64(config.physicians.scan_every_secs));
    let mut sightings = SightingFilter::new(config.physicians.sighting_matches, Duration::from_secs(60));
    let match_distance = config.faces.match_distance;
    let analysis = std::thread::Builder::new().name(format!("ana-{}", camera.id)).spawn(move || {
        let mut last_report = std::time::Instant::now();
        let mut last_scan: Option<std::time::Instant> = None;
        let mut open: Vec<Watch> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            if let Some(rx) = &faces.watches {
                open.extend(rx.try_iter());
            }
            if last_report.elapsed() >= STATS_EVERY {
                last_report = std::time::Instant::now();
                info!(camera = %camera_id, frames = slot.delivered(), dropped = slot.dropped(),
                    restarts = counters.restarts.load(Ordering::Relaxed),
                    segments_evicted = counters.segments_evicted.load(Ordering::Relaxed),
                    abandoned_teardowns = counters.abandoned_teardowns.load(Ordering::Relaxed),
                    abandoned_starts = counters.abandoned_starts.load(Ordering::Relaxed),
                    stuck_pipelines = counters.stuck(),
                    watchdog_offline = counters.watchdog_offline.load(Ordering::Relaxed),
                    recording_failures = counters.recording_failures.load(Ordering::Relaxed), "camera counters");
            }
            let Some(frame) = slot.take(Duration::from_millis(250)) else { continue };
            // Physicians are looked for every few seconds, and only while one is on shift.
            let scan_physicians = physicians_every.is_some_and(|every| {
                last_scan.is_none_or(|t| t.elapsed() >= every) && faces.people.any_shift_on(frame.captured)
            });
            // Beds and chairs: the person detector on every analysed frame.
            let chair_faces = faces.presence.as_ref().is_some_and(|p| {
                let persons = {
                    let mut models = faces.models.lock().unwrap_or_else(|e| e.into_inner());
                    models.persons.detect(&frame.image).unwrap_or_else(|e| {
                        warn!(camera = %camera_id, error = %e, "person detection failed on a frame");
                        Vec::new()
                    })
                };
                p.observe(&frame, &persons);
                p.wants_faces(frame.captured)
            });
            let observed = if !open.is_empty() || scan_physicians || chair_faces {
                observe_faces(&faces.models, &frame.image, &thresholds)
            } else {
                Vec::new()
            };
            if scan_physicians {
                last_scan = Some(std::time::Instant::now());
                let index = faces.gallery.read().unwrap_or_else(|e| e.into_inner());
                tracing::debug!(camera = %camera_id, faces = observed.len(),
                    good = observed.iter().filter(|f| f.embedding.is_some()).count(), "physician scan");
                for embedding in observed.iter().filter_map(|f| f.embedding.as_ref()) {
                    let Some(m) = index.best(embedding, Some(GalleryRole::Physician)) else { continue };
                    tracing::debug!(camera = %camera_id, physician = %m.id, distance = m.distance, "physician match");
                    if m.distance < match_distance && sightings.matched(&m.id, frame.captured) {
                        faces.people.sighting(&m.id, &camera_id, frame.captured);
                    }
                }
            }
            if let (true, Some(p)) = (chair_faces, &faces.presence) {
                let index = faces.gallery.read().unwrap_or_else(|e| e.into_inner());
                p.observe_faces(&frame, &observed, &index, &faces.rules);
            }
            if !open.is_empty() {
                let index = faces.gallery.read().unwrap_or_else(|e| e.into_inner());
                let mut finished = Vec::new();
                for (i, watch) in open.iter_mut().enumerate() {
                    if let Some(outcome) = watch.observe(&observed, frame.captured, &index, &faces.rules) {
                        finished.push(i);
                        settle(&out, &frame, outcome, &faces.settled, &faces.transactions, &faces.rules);
                    }
                }
                drop(index);
                for i in finished.into_iter().rev() {
                    open.remove(i);
                }
            }
            if !tamper.has_reference() && TamperDetector::usable_as_reference(&frame.image) {
                save_reference(&reference_path, &frame.image, &camera_id);
                tamper.set_reference(&frame.image);
            }
            for change in tamper.observe(&frame.image, frame.captured) {
                let (kind, tamper) = match change {
                    TamperChange::Raised(tamper) => (DecisionKind::CameraTamper { tamper }, tamper),
                    TamperChange::Cleared(tamper) => (DecisionKind::CameraTamperCleared { tamper }, tamper),
                };
                let details = [("tamper".to_owned(), tamper.as_str().to_owned())].into();
                out.decide(Some(&frame), frame.captured, kind, details, Vec::new());
            }
        }
    })?;
    Ok(vec![supervisor, analysis])
}

#[derive(Clone)]
/// Where one camera's decisions go: the decision channel, and (for those that need it) the evidence
/// worker with what to cut.
struct Outlet {
    camera: String,
    /// Requests are saved here before their decision goes out.
    pending: Arc<Pending>,
    decisions: mpsc::Sender<Decision>,
    evidence: mpsc::Sender<EvidenceRequest>,
    recordings: PathBuf,
    pre_roll: Duration,
    post_roll: Duration,
}

impl Outlet {
    /// Sends a decision taken at `at` on `frame`, with an evidence request when the kind needs one and
    /// there is a frame to show (without one, the event goes out saying it has no evidence).
    fn decide(
        &self,
        frame: Option<&crate::source::Frame>,
        at: SystemTime,
        kind: DecisionKind,
        details: std::collections::BTreeMap<String, String>,
        detections: Vec<Detection>,
    ) -> uuid::Uuid {
        let mut decision = Decision::new(&self.camera, at, kind);
        decision.evidence = decision.needs_evidence() && frame.is_some();
        if let (true, Some(frame)) = (decision.evidence, frame) {
            let request = evidence_request(
                &decision,
                frame,
                details,
                detections,
                &self.recordings,
                self.pre_roll,
                self.post_roll,
            );
            if let Err(e) = self.pending.save(&request) {
                error!(event = %decision.id, error = %e,
                    "cannot save the evidence request; its bundle is lost if the agent stops before it is written");
            }
            let _ = self.evidence.send(request);
        }
        let id = decision.id;
        let _ = self.decisions.send(decision);
        id
    }
}

/// Turns a settlement watch's outcome into decisions (with evidence for mismatch and no face), checks
/// the faces it records against earlier settlements for card lending, remembers them, and records the
/// verdict so that a repeated `settlement` for the transaction is answered with it.
///
/// Each evidence manifest carries the event's details (distances, best matches, the other transaction)
/// and the judged faces' boxes with the detector's scores.
fn settle(
    out: &Outlet,
    frame: &crate::source::Frame,
    outcome: crate::decide::settlement::Outcome,
    settled: &Mutex<SettlementLog>,
    transactions: &Mutex<Transactions>,
    rules: &SettlementRules,
) {
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

/// Appends events to the outbox (durably) and wakes the publisher.
#[derive(Clone)]
struct Emitter {
    outbox: Arc<Mutex<Outbox>>,
    wake: Arc<tokio::sync::Notify>,
    base: String,
    site: String,
    device: String,
    /// Events the outbox could not take yet (disk full, I/O error), oldest first.
    held: Arc<Mutex<Held>>,
}

/// At most this many events wait in memory for the outbox; beyond, the oldest is lost (ERROR each).
const MAX_HELD_EVENTS: usize = 10_000;

/// An event waiting for the outbox, and what may happen only once the outbox has it.
struct HeldEvent {
    record: NewRecord,
    on_commit: Box<dyn FnOnce() + Send>,
}

#[derive(Default)]
struct Held {
    events: std::collections::VecDeque<HeldEvent>,
    /// Since when the outbox refuses events (None: it takes them).
    failing_since: Option<std::time::Instant>,
}

impl Emitter {
    fn new(outbox: Arc<Mutex<Outbox>>, wake: Arc<tokio::sync::Notify>, base: &str, site: &str, device: &str) -> Self {
        Emitter {
            outbox,
            wake,
            base: base.to_owned(),
            site: site.to_owned(),
            device: device.to_owned(),
            held: Arc::default(),
        }
    }

    /// Commits the record to the outbox, then runs `on_commit` (a log line claiming the event, the
    /// removal of what the event replaces). When the outbox cannot take it, the record waits in memory
    /// behind the others and is committed, in order, by a later `emit` or [`Emitter::retry_held`]:
    /// nothing accepted is dropped because a write failed once (a full disk clears within seconds when
    /// the retention worker makes room). Returns whether it is committed now.
    fn emit(&self, record: NewRecord, on_commit: impl FnOnce() + Send + 'static) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.events.push_back(HeldEvent { record, on_commit: Box::new(on_commit) });
        self.commit_held(&mut held);
        held.events.is_empty()
    }

    /// Tries again to commit the events waiting in memory (called every fraction of a second).
    fn retry_held(&self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if !held.events.is_empty() {
            self.commit_held(&mut held);
        }
    }

    /// How many events wait in memory.
    fn held_count(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).events.len()
    }

    fn commit_held(&self, held: &mut Held) {
        let mut committed = 0usize;
        {
            let mut outbox = self.outbox.lock().unwrap_or_else(|e| e.into_inner());
            while let Some(event) = held.events.front() {
                match outbox.append(&event.record) {
                    Ok(_) => {
                        let event = held.events.pop_front().expect("front exists");
                        (event.on_commit)();
                        committed += 1;
                    }
                    Err(e) => {
                        if held.failing_since.is_none() {
                            held.failing_since = Some(std::time::Instant::now());
                            error!(event_id = %event.record.event_id, topic = %event.record.topic, error = %e,
                                "OUTBOX CANNOT TAKE EVENTS: they wait in memory and are retried; they are lost \
                                 only if the agent stops before the outbox takes them");
                        }
                        while held.events.len() > MAX_HELD_EVENTS {
                            let lost = held.events.pop_front().expect("not empty");
                            error!(event_id = %lost.record.event_id, topic = %lost.record.topic,
                                max = MAX_HELD_EVENTS, "EVENT LOST: too many events wait for the outbox");
                        }
                        break;
                    }
                }
            }
        }
        if committed > 0 {
            self.wake.notify_one();
        }
        if let (true, Some(since)) = (held.events.is_empty(), held.failing_since) {
            held.failing_since = None;
            warn!(failing_for = ?since.elapsed(), committed, "the outbox takes events again; the events that waited are committed");
        }
    }
}

/// Commits the decision's event to the outbox, then logs the decision: the log never claims a decision
/// that a crash could lose (docs/outbox.md, invariant 1).
fn record_decision(emitter: &Emitter, decision: Decision) {
    let record = events::decision_record(&emitter.base, &emitter.site, &emitter.device, &decision);
    let (name, camera, id) = (decision.name(), decision.camera.clone(), decision.id);
    if !emitter.emit(record, move || log_decision(&decision)) {
        error!(decision = name, %camera, event_id = %id,
            "DECISION NOT RECORDED YET: the outbox refused its event; it waits in memory and is retried");
    }
}

fn publisher_settings(config: &Config, mqtt: &crate::config::Mqtt, base: &str) -> anyhow::Result<PublisherSettings> {
    let read = |path: &Path, what: &str| {
        std::fs::read(path).with_context(|| format!("mqtt: cannot read the {what} {}", path.display()))
    };
    let credentials = match (&mqtt.username, &mqtt.password_file) {
        (Some(user), Some(file)) => {
            let text = String::from_utf8(read(file, "password file")?).context("mqtt.password_file is not UTF-8")?;
            Some((user.clone(), text.lines().next().unwrap_or("").to_owned()))
        }
        (Some(user), None) => Some((user.clone(), String::new())),
        _ => None,
    };
    let tls = match &mqtt.tls {
        Some(tls) => Some(TlsFiles {
            ca: read(&tls.ca_file, "CA file")?,
            client: match (&tls.client_cert, &tls.client_key) {
                (Some(cert), Some(key)) => Some((read(cert, "client certificate")?, read(key, "client key")?)),
                _ => None,
            },
        }),
        None => None,
    };
    let platform_key = match &mqtt.platform_public_key {
        Some(text) => {
            let pem = std::fs::read_to_string(text).unwrap_or_else(|_| text.clone());
            Some(PublicKey::parse(&pem).with_context(|| {
                format!("mqtt.platform_public_key: {text:?} is neither a PEM public key file nor base64 of 32 bytes")
            })?)
        }
        None => None,
    };
    Ok(PublisherSettings {
        host: mqtt.host.clone(),
        port: mqtt.port.unwrap_or(if mqtt.tls.is_some() { 8883 } else { 1883 }),
        client_id: mqtt
            .client_id
            .clone()
            .unwrap_or_else(|| format!("vigil-{}-{}", config.site.id, config.site.device_id)),
        credentials,
        keepalive: Duration::from_secs(mqtt.keepalive_secs),
        tls,
        base_topic: base.to_owned(),
        inflight: mqtt.inflight,
        platform_key,
        command_window: Duration::from_secs(mqtt.command_window_secs),
        evidence_dir: Some(config.storage.evidence_dir()),
    })
}

/// A request waiting for its bundle.
struct Waiting {
    request: EvidenceRequest,
    /// When to (re)try: after the post-roll, then with backoff while writing fails.
    due: SystemTime,
    failures: u32,
    /// Tried once during shutdown (not retried then: what fails waits for the next start).
    tried_at_stop: bool,
}

/// Retries of a bundle that could not be written: 2 s doubling to 30 s.
fn evidence_retry_after(failures: u32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(failures.min(5)).min(30))
}

/// Writes each bundle once its post-roll has been recorded (plus a margin for the last fragment to reach
/// the disk). A bundle that cannot be written (a full disk, a failing clip) stays pending, on disk and in
/// memory, its video pinned (`Pending`), and is retried with backoff during the run; the failure is
/// logged at ERROR once per episode (until a bundle is written again). On shutdown, pending bundles are
/// tried once with what was recorded so far; those failing are written at the next start.
fn evidence_worker(
    mut store: Store,
    saved: &Arc<Pending>,
    requests: mpsc::Receiver<EvidenceRequest>,
    stop: Arc<AtomicBool>,
    emitter: Emitter,
) {
    const MARGIN: Duration = Duration::from_secs(3);
    let announce = |request: &EvidenceRequest, bundle: &store::BundleInfo| {
        let name = bundle.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let (saved, event_id) = (saved.clone(), request.event_id);
        // The saved request is removed only once the outbox holds the announcement (it may wait in memory
        // for a full disk to clear).
        let record = events::evidence_record(
            &emitter.base,
            &emitter.site,
            &emitter.device,
            &request.camera,
            &request.event_id.to_string(),
            &name,
            bundle.sequence,
            &bundle.manifest_sha256,
        );
        let (kind, camera, sequence) = (request.kind.clone(), request.camera.clone(), bundle.sequence);
        let announcement = record.event_id.clone();
        emitter.emit(record, move || {
            info!(event_id = %announcement, for_event_id = %event_id, kind = %kind, camera = %camera, sequence,
                "evidence bundle announced");
            if let Err(e) = saved.remove(event_id) {
                warn!(event = %event_id, error = %e, "cannot remove the saved evidence request");
            }
        });
    };
    let waiting_for = |request: EvidenceRequest| Waiting {
        due: request.clip_to + MARGIN,
        request,
        failures: 0,
        tried_at_stop: false,
    };
    // Requests saved before a crash or stop: written now (their post-roll is long recorded), or only
    // announced when the bundle was written but the request not yet removed.
    let mut pending: Vec<Waiting> = Vec::new();
    for request in saved.load_all() {
        match store.existing(request.event_id) {
            Ok(Some(bundle)) => announce(&request, &bundle),
            Ok(None) => pending.push(waiting_for(request)),
            Err(e) => error!(event = %request.event_id, error = %e, "cannot check the evidence store"),
        }
    }
    if !pending.is_empty() {
        info!(requests = pending.len(), "evidence requests saved before the last stop: writing their bundles");
    }
    // Since when writing fails, and how many bundles were written late once it works again.
    let mut failing_since: Option<std::time::Instant> = None;
    let mut open = true;
    while open || pending.iter().any(|w| !w.tried_at_stop) {
        emitter.retry_held();
        match requests.recv_timeout(Duration::from_millis(500)) {
            Ok(request) => pending.push(waiting_for(request)),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
        }
        let stopping = stop.load(Ordering::Relaxed) || !open;
        let now = SystemTime::now();
        let mut i = 0;
        while i < pending.len() {
            let due = if stopping { !pending[i].tried_at_stop } else { pending[i].due <= now };
            if !due {
                i += 1;
                continue;
            }
            pending[i].tried_at_stop = stopping;
            let waiting = pending.len();
            match store.write(&pending[i].request) {
                Ok(bundle) => {
                    let w = pending.remove(i);
                    let request = &w.request;
                    info!(event = %request.event_id, kind = %request.kind, camera = %request.camera,
                        sequence = bundle.sequence, dir = %bundle.dir.display(), attempts = w.failures + 1,
                        "evidence bundle written");
                    if let Some(since) = failing_since.take() {
                        warn!(
                            failing_secs = since.elapsed().as_secs(),
                            waiting = waiting - 1,
                            "evidence bundles are written again"
                        );
                    }
                    announce(request, &bundle);
                }
                Err(e) => {
                    let w = &mut pending[i];
                    let request = &w.request;
                    w.failures += 1;
                    let retry = evidence_retry_after(w.failures);
                    w.due = SystemTime::now() + retry;
                    // Kept on disk too, if saving failed when it was decided (the same full disk).
                    let saved_now = saved.is_saved(request.event_id) || saved.save(request).is_ok();
                    // An episode starts with a bundle failing for the first time while others were
                    // written: a bundle that keeps failing (its video was never recorded) does not raise
                    // a new ERROR each time another one is written in between; a WARN at its 8th, 16th,
                    // 32nd, … failure keeps it visible.
                    if w.failures >= 8 && w.failures.is_power_of_two() {
                        warn!(event = %request.event_id, kind = %request.kind, camera = %request.camera,
                            error = %e, failures = w.failures, "evidence bundle still not written; retried");
                    } else if w.failures > 1 {
                        tracing::debug!(event = %request.event_id, error = %e, failures = w.failures,
                            retry_in = ?retry, "evidence bundle still not written");
                    } else if failing_since.is_none() {
                        failing_since = Some(std::time::Instant::now());
                        error!(event = %request.event_id, kind = %request.kind, camera = %request.camera,
                            error = %e, saved = saved_now, waiting,
                            "EVIDENCE BUNDLE NOT WRITTEN: kept with its video pinned and retried every 2-30 s \
                             (further failures logged at WARN once per bundle until one is written)");
                    } else {
                        warn!(event = %request.event_id, kind = %request.kind, camera = %request.camera,
                            error = %e, saved = saved_now, "evidence bundle not written yet; retried");
                    }
                    i += 1;
                }
            }
        }
    }
    if !pending.is_empty() {
        let unsaved = pending.iter().filter(|w| !saved.is_saved(w.request.event_id)).count();
        error!(
            bundles = pending.len(),
            unsaved,
            "evidence bundles not written at shutdown: saved requests are written at the next start \
             (unsaved ones, if any, are lost)"
        );
    }
}

/// Time-driven decisions: roll-calls at their times, dialysis verdicts when due, physicians' absences
/// and shift summaries; and the roster file. Runs every half second; roll-call times are taken over
/// consecutive intervals, so none is missed or held twice (a roll-call due while the box was off is
/// not held late).
fn scheduler(
    config: &Config,
    people: &People,
    presence: &Presence,
    schedule: &crate::decide::rollcall::Schedule,
    decisions: &mpsc::Sender<Decision>,
    clock: &dyn Clock,
    stop: &AtomicBool,
) {
    let mut scheduler = Scheduler::new(config, people, presence, schedule, decisions, clock.now());
    while !stop.load(Ordering::Relaxed) {
        scheduler.step(clock.now());
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The scheduler's state between steps; `step` is driven by the real clock in `vigil run` and by a
/// simulated one in tests (days of roll-calls in milliseconds).
struct Scheduler<'a> {
    config: &'a Config,
    people: &'a People,
    presence: &'a Presence,
    schedule: &'a crate::decide::rollcall::Schedule,
    decisions: &'a mpsc::Sender<Decision>,
    /// Roll-call times before this were handled.
    checked_until: SystemTime,
    next_file_poll: SystemTime,
}

impl<'a> Scheduler<'a> {
    fn new(
        config: &'a Config,
        people: &'a People,
        presence: &'a Presence,
        schedule: &'a crate::decide::rollcall::Schedule,
        decisions: &'a mpsc::Sender<Decision>,
        now: SystemTime,
    ) -> Self {
        Scheduler { config, people, presence, schedule, decisions, checked_until: now, next_file_poll: now }
    }

    fn step(&mut self, now: SystemTime) {
        if now >= self.next_file_poll {
            self.people.poll_file(self.config);
            self.next_file_poll = now + Duration::from_secs(5);
        }
        if now > self.checked_until {
            for at in self.schedule.times_between(self.checked_until, now) {
                self.presence.rollcall(self.people, at, "scheduled");
            }
            self.checked_until = now;
        }
        self.presence.tick(self.people, now);
        for event in self.people.tick(now) {
            let decision = match event {
                PhysicianEvent::Absent { physician, shift_start, shift_end, since, last_camera } => Decision::new(
                    last_camera.as_deref().unwrap_or(""),
                    now,
                    DecisionKind::PhysicianAbsent { physician, shift_start, shift_end, since },
                ),
                PhysicianEvent::ShiftSummary(summary) => {
                    Decision::new("", summary.shift_end, DecisionKind::PhysicianShiftSummary(summary))
                }
            };
            let _ = self.decisions.send(decision);
        }
    }
}

/// The roll-call seed: from the config (to reproduce a schedule), else a secret one made at first start
/// in `<data_dir>/keys/rollcall.seed` (0600, created durably), so staff cannot predict the random
/// roll-calls.
fn rollcall_seed(config: &Config) -> anyhow::Result<u64> {
    if let Some(seed) = config.rollcalls.seed {
        return Ok(seed);
    }
    let path = config.storage.data_dir.join("keys/rollcall.seed");
    let read = |text: String| {
        text.trim().parse::<u64>().with_context(|| {
            format!(
                "{} does not hold a number ({text:?}; cut short by a crash?): delete it, and a new secret seed is \
                 made at the next start",
                path.display()
            )
        })
    };
    if let Ok(text) = std::fs::read_to_string(&path) {
        return read(text);
    }
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| anyhow::anyhow!("no system randomness"))?;
    let seed = u64::from_le_bytes(bytes).max(1);
    match crate::fsio::create_new(&path, format!("{seed}\n").as_bytes(), crate::fsio::PRIVATE_FILE) {
        Ok(()) => Ok(seed),
        // Another start made one meanwhile: that one is the seed.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(std::fs::read_to_string(&path)?),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// How often free space is checked: statvfs is cheap, and a camera writing 1 MB/s gets through a
/// floor's worth of disk in minutes, not hours.
const FREE_SPACE_EVERY: Duration = Duration::from_secs(1);

/// Every second and after each closed segment: keep free disk space above `retention.min_free_bytes` by
/// deleting as many of the oldest recording segments as it takes (never evidence, never video pinned by a bundle not yet written).
/// Every minute: prune acknowledged, expired, unheld bundles and expired settlement faces.
fn retention_worker(config: &Config, stop: &AtomicBool, settled: &Mutex<SettlementLog>) {
    let recordings = config.storage.recordings_dir();
    let _ = std::fs::create_dir_all(&recordings);
    let evidence_dir = config.storage.evidence_dir();
    let min_free = config.retention.min_free_bytes.0;
    let keep = Duration::from_secs(u64::from(config.retention.evidence_days) * 86_400);
    let mut floor = recorder::FloorWatch::default();
    let mut check_failing = false;
    let (mut next_check, mut next_prune) = (std::time::Instant::now(), std::time::Instant::now());
    let (mut evicted, mut evicted_bytes) = (0u64, 0u64);
    let mut segments_seen = recorder::wait_for_segment(u64::MAX, Duration::ZERO);
    while !stop.load(Ordering::Relaxed) {
        let now = std::time::Instant::now();
        if now < next_check {
            // Also right after a camera closes a segment.
            let closed = recorder::wait_for_segment(segments_seen, Duration::from_millis(100).min(next_check - now));
            if closed > segments_seen {
                segments_seen = closed;
                next_check = std::time::Instant::now();
            }
            continue;
        }
        next_check = now + FREE_SPACE_EVERY;
        match recorder::make_room(&recordings, min_free, || recorder::free_bytes(&recordings)) {
            Ok(room) => {
                check_failing = false;
                evicted += room.deleted as u64;
                evicted_bytes += room.deleted_bytes;
                if room.deleted > 0 {
                    tracing::debug!(
                        deleted = room.deleted,
                        deleted_bytes = room.deleted_bytes,
                        free_bytes = room.free_bytes,
                        "oldest recordings deleted to keep the free-space floor"
                    );
                }
                match floor.observe(&room, min_free, now) {
                    Some(recorder::FloorNotice::Evicting) => warn!(
                        deleted = room.deleted,
                        free_bytes = room.free_bytes,
                        min_free_bytes = min_free,
                        "free disk space reached retention.min_free_bytes: the oldest recordings are deleted to \
                         keep it (the cameras' recordings_max_bytes_per_camera add up to more than the disk)"
                    ),
                    Some(recorder::FloorNotice::CannotKeep) => error!(
                        free_bytes = room.free_bytes,
                        min_free_bytes = min_free,
                        deleted = room.deleted,
                        pinned_segments = room.pinned,
                        pinned_bytes = room.pinned_bytes,
                        open_segments_bytes = room.newest_bytes,
                        evidence_bytes = recorder::dir_bytes(&evidence_dir),
                        bundles_waiting = recorder::pins().len(),
                        "DISK FULL: free space below retention.min_free_bytes and no recording left that may be \
                         deleted (the rest is evidence, video pinned by bundles not yet written, and open \
                         segments; evidence is never deleted): free disk space, new recordings and events may fail"
                    ),
                    Some(recorder::FloorNotice::Recovered { after }) => warn!(
                        free_bytes = room.free_bytes,
                        min_free_bytes = min_free,
                        below_secs = after.as_secs(),
                        "free disk space back above retention.min_free_bytes"
                    ),
                    None => {}
                }
            }
            Err(e) if !check_failing => {
                check_failing = true;
                error!(error = %e, dir = %recordings.display(),
                    "cannot check or make free disk space (retried every second)");
            }
            Err(_) => {}
        }
        if now < next_prune {
            continue;
        }
        next_prune = now + Duration::from_secs(60);
        if evicted > 0 {
            info!(segments = evicted, bytes = evicted_bytes, "recordings deleted for free space in the last minute");
            (evicted, evicted_bytes) = (0, 0);
        }
        match settled.lock().unwrap_or_else(|e| e.into_inner()).expire(SystemTime::now()) {
            Ok(0) => {}
            Ok(n) => info!(forgotten = n, "settlement faces past settlement.face_retention_days deleted"),
            Err(e) => error!(error = %e, "cannot delete expired settlement faces"),
        }
        match store::prune(&evidence_dir, keep, SystemTime::now()) {
            Ok(0) => {}
            Ok(n) => info!(pruned = n, "media of acknowledged, expired evidence bundles removed (manifests kept)"),
            Err(e) => warn!(error = %e, "evidence retention failed"),
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
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let worker = CameraWorker {
        camera: camera.clone(),
        recordings: None,
        segment: Duration::from_secs(10),
        max_recording_bytes: 0,
        slot: slot.clone(),
        decisions: tx,
        shutdown: stop.clone(),
        counters: Arc::new(CameraCounters::default()),
        supervision: Supervision::default(),
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
                    let path = presence::empty_reference_path(&config.storage.data_dir, &camera.id);
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
    stop.store(true, Ordering::Relaxed);
    let left = join_within(vec![thread], std::time::Instant::now() + SHUTDOWN_GRACE);
    if !left.is_empty() {
        warn!(camera = %camera.id, "the camera did not stop within {} s; exiting without it", SHUTDOWN_GRACE.as_secs());
    }
    result
}

fn save_reference(path: &Path, img: &image::RgbImage, camera: &str) {
    let mut png = Vec::new();
    let result = img
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| e.to_string())
        .and_then(|()| crate::fsio::write(path, &png, crate::fsio::PRIVATE_FILE).map_err(|e| e.to_string()));
    match result {
        Ok(()) => {
            info!(camera, path = %path.display(), "reference frame captured (view-moved detection compares with it; \
            after re-aiming the camera, replace it with `vigil reference` and restart)")
        }
        Err(e) => warn!(camera, path = %path.display(), error = %e, "cannot save the reference frame"),
    }
}

fn log_decision(decision: &Decision) {
    let at = humantime::format_rfc3339_millis(decision.at);
    match &decision.kind {
        DecisionKind::CameraOffline { reason } => {
            warn!(decision = decision.name(), event_id = %decision.id, camera = %decision.camera, %at, reason, "decision")
        }
        DecisionKind::CameraTamper { tamper } => {
            warn!(decision = decision.name(), event_id = %decision.id, camera = %decision.camera, %at, tamper = tamper.as_str(), "decision")
        }
        DecisionKind::CameraTamperCleared { tamper } => {
            info!(decision = decision.name(), event_id = %decision.id, camera = %decision.camera, %at, tamper = tamper.as_str(), "decision")
        }
        DecisionKind::CameraOnline
        | DecisionKind::RecordingResumed { .. }
        | DecisionKind::SettlementVerified { .. }
        | DecisionKind::PhysicianShiftSummary(_)
        | DecisionKind::RollcallSummary(_) => {
            info!(decision = decision.name(), event_id = %decision.id, camera = %decision.camera, %at, kind = ?decision.kind, "decision")
        }
        DecisionKind::Dialysis(o) if o.verdict == crate::decide::dialysis::SessionVerdict::Verified => {
            info!(decision = decision.name(), event_id = %decision.id, camera = %decision.camera, %at, kind = ?decision.kind, "decision")
        }
        _ => {
            warn!(decision = decision.name(), event_id = %decision.id, camera = %decision.camera, %at, kind = ?decision.kind, "decision")
        }
    }
}

/// Starts listening for SIGINT and SIGTERM now; the future resolves with the first one's name.
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = &'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::person_detector::Person;
    use crate::decide::clock::ManualClock;

    /// The decision's log line is written only once its event is committed: when the line is written,
    /// another connection to the outbox file already sees the record. When the outbox refuses the
    /// event, no decision line is written but an ERROR saying so.
    #[test]
    fn decision_logged_only_after_outbox_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.sqlite");
        let emitter = Emitter::new(
            Arc::new(Mutex::new(Outbox::open(&path, 100).unwrap())),
            Arc::new(tokio::sync::Notify::new()),
            "vigil/v1/h/d",
            "h",
            "d",
        );
        /// Each log line, with whether the outbox held the event when the line was written.
        #[derive(Clone)]
        struct Probe {
            path: PathBuf,
            event_id: String,
            lines: Arc<Mutex<Vec<(String, bool)>>>,
        }
        impl std::io::Write for Probe {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                let conn = rusqlite::Connection::open(&self.path).unwrap();
                let committed = conn
                    .query_row("SELECT COUNT(*) FROM records WHERE event_id = ?1", [&self.event_id], |r| {
                        r.get::<_, i64>(0)
                    })
                    .unwrap_or(0)
                    == 1;
                self.lines.lock().unwrap().push((String::from_utf8_lossy(b).into_owned(), committed));
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let run = |decision: &Decision| {
            let probe = Probe {
                path: path.clone(),
                event_id: decision.id.to_string(),
                lines: Arc::new(Mutex::new(Vec::new())),
            };
            let writer = probe.clone();
            let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
            tracing::subscriber::with_default(subscriber, || record_decision(&emitter, decision.clone()));
            probe.lines.lock().unwrap().clone()
        };

        let offline = Decision::new("cam1", SystemTime::now(), DecisionKind::CameraOffline { reason: "gone".into() });
        let lines = run(&offline);
        let claims: Vec<&(String, bool)> =
            lines.iter().filter(|(l, _)| l.contains(r#"decision="camera_offline""#)).collect();
        assert_eq!(claims.len(), 1, "{lines:?}");
        assert!(claims[0].1, "the decision was logged before its event was in the outbox: {}", claims[0].0);

        rusqlite::Connection::open(&path).unwrap().execute_batch("DROP TABLE records").unwrap();
        let lost = Decision::new("cam1", SystemTime::now(), DecisionKind::CameraOffline { reason: "again".into() });
        let lines = run(&lost);
        let claims: Vec<&String> =
            lines.iter().map(|(l, _)| l).filter(|l| l.contains(r#"decision="camera_offline""#)).collect();
        assert_eq!(claims.len(), 1, "{lines:?}");
        assert!(claims[0].contains("ERROR") && claims[0].contains("DECISION NOT RECORDED"), "{}", claims[0]);
    }

    /// A full disk made the outbox refuse events, and they were lost: now they wait in memory and are
    /// committed, in order, once the outbox takes them again; the decision is logged only then.
    #[test]
    fn events_refused_by_the_outbox_wait_in_memory_and_are_committed_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.sqlite");
        let outbox = Arc::new(Mutex::new(Outbox::open(&path, 100).unwrap()));
        let emitter = Emitter::new(outbox.clone(), Arc::new(tokio::sync::Notify::new()), "vigil/v1/h/d", "h", "d");
        let sql = rusqlite::Connection::open(&path).unwrap();
        sql.execute_batch("ALTER TABLE records RENAME TO records_away").unwrap();
        let decisions: Vec<Decision> = (0..3)
            .map(|i| Decision::new("cam1", SystemTime::now(), DecisionKind::CameraOffline { reason: format!("r{i}") }))
            .collect();
        let logged = Arc::new(Mutex::new(Vec::new()));
        for d in &decisions {
            let (logged, id) = (logged.clone(), d.id);
            let record = events::decision_record("vigil/v1/h/d", "h", "d", d);
            assert!(!emitter.emit(record, move || logged.lock().unwrap().push(id)), "the outbox refuses");
        }
        emitter.retry_held();
        assert_eq!(emitter.held_count(), 3);
        assert!(logged.lock().unwrap().is_empty(), "nothing may claim an event the outbox does not hold");

        sql.execute_batch("ALTER TABLE records_away RENAME TO records").unwrap();
        emitter.retry_held();
        assert_eq!(emitter.held_count(), 0);
        let ids: Vec<uuid::Uuid> = decisions.iter().map(|d| d.id).collect();
        assert_eq!(*logged.lock().unwrap(), ids, "committed in the order they were decided, each then claimed");
        let pending = outbox.lock().unwrap().pending_after(0, 10).unwrap();
        let stored: Vec<String> = pending.iter().map(|r| r.event_id.clone()).collect();
        assert_eq!(stored, ids.iter().map(ToString::to_string).collect::<Vec<_>>());
    }

    /// Three simulated days of a ward in milliseconds: the scheduler, driven by a manual clock, holds
    /// every scheduled and random roll-call once; bed 1's patient is always in bed, bed 2's never.
    #[test]
    fn three_days_of_roll_calls_on_a_simulated_clock() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[site]\nid = \"h\"\ndevice_id = \"d\"\n[storage]\ndata_dir = \"{}\"\n\
             [rollcalls]\ntimes = [\"08:00\", \"20:00\"]\nrandom_per_day = 2\nrandom_between = [\"21:00\", \"06:00\"]\n\
             seed = 7\nutc_offset = \"+08:00\"\nescalate_after = 3\n\
             [[cameras]]\nid = \"ward-3\"\nrole = \"ward\"\nurl = \"test://black\"\n\
             regions = {{ bed-1 = [[0,0.5],[0.5,0.5],[0.5,1],[0,1]], bed-2 = [[0.5,0.5],[1,0.5],[1,1],[0.5,1]] }}\n",
            dir.path().display()
        );
        let config = crate::config::parse(Path::new("t.toml"), &text).unwrap();
        assert!(crate::config::validate(&config).is_empty());
        let start = humantime::parse_rfc3339("2026-11-24T00:00:00Z").unwrap();
        let clock = ManualClock::new(start);
        let people = People::load(&config);
        let roster = serde_json::json!({"inpatients": [
            {"patient": "p-1", "camera": "ward-3", "bed": "bed-1"},
            {"patient": "p-2", "camera": "ward-3", "bed": "bed-2"}]});
        people.apply(crate::decide::roster::Roster::parse(&roster, &config).unwrap(), start).unwrap();
        let (decisions_tx, decisions) = mpsc::channel();
        let (evidence_tx, evidence) = mpsc::channel();
        let outlet = Outlet {
            camera: "ward-3".into(),
            pending: Arc::new(Pending::new(&dir.path().join("evidence-pending"))),
            decisions: decisions_tx.clone(),
            evidence: evidence_tx,
            recordings: dir.path().join("recordings/ward-3"),
            pre_roll: Duration::from_secs(10),
            post_roll: Duration::from_secs(10),
        };
        let camera = Arc::new(PresenceCamera::new(&config, &config.cameras[0], outlet));
        let presence = Presence::new(vec![camera.clone()], &config, decisions_tx.clone());
        let schedule = config.rollcalls.schedule(7).unwrap();
        let mut scheduler = Scheduler::new(&config, &people, &presence, &schedule, &decisions_tx, start);
        // A keyframe every 2 s; the detector sees a person lying across bed 1 (160×90 frames).
        let lying = [Person { bbox: [5.0, 50.0, 75.0, 88.0], score: 0.8 }];
        let end = start + Duration::from_secs(3 * 86_400);
        let mut seq = 0;
        while clock.now() < end {
            let now = clock.advance(Duration::from_secs(2));
            seq += 1;
            let frame =
                crate::source::Frame { image: image::RgbImage::new(160, 90), captured: now, seq, keyframe: true };
            camera.observe(&frame, &lying);
            if seq % 15 == 0 {
                scheduler.step(now);
            }
        }
        let decisions: Vec<Decision> = decisions.try_iter().collect();
        let names = |name: &str| decisions.iter().filter(|d| d.name() == name).collect::<Vec<_>>();
        let expected = schedule.times_between(start, clock.now());
        assert_eq!(expected.len(), 12, "2 scheduled + 2 random a day for 3 days: {expected:?}");
        let summaries = names("rollcall_summary");
        assert_eq!(summaries.iter().map(|d| d.at).collect::<Vec<_>>(), expected, "each once, at its time");
        // The first roll-call (08:00 local = 00:00 UTC) falls before bed 2 had 60 s of empty frames.
        let absent = names("bed_absent");
        assert!(absent.iter().all(|d| matches!(&d.kind, DecisionKind::BedAbsent(a) if a.bed == "bed-2")));
        assert!(absent.len() >= 11, "{} absences", absent.len());
        let escalated: Vec<u32> = names("bed_absence_escalated")
            .iter()
            .map(|d| match &d.kind {
                DecisionKind::BedAbsenceEscalated(a) => a.consecutive,
                _ => 0,
            })
            .collect();
        assert_eq!(escalated, [3, 6, 9], "escalated at K, 2K, 3K consecutive absences");
        assert_eq!(evidence.try_iter().count(), absent.len(), "a snapshot bundle per absence");
        // The streak outlives a restart: the next absence continues the count.
        let (tx, _rx) = mpsc::channel();
        let restarted = Presence::new(vec![camera.clone()], &config, tx);
        let report = restarted.rollcall(&people, clock.now(), "requested");
        assert_eq!(report.summary.absent, 1);
        let streak = restarted.streak("ward-3", "bed-2");
        assert_eq!(streak, absent.len() as u32 + 1);
    }

    /// The seed is made once, durably (0600, no temp file left); one cut short by a crash under an older
    /// version is named with the fix instead of an opaque parse error.
    #[test]
    fn rollcall_seed_is_created_once_and_a_cut_one_is_named_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let text =
            format!("[site]\nid = \"h\"\ndevice_id = \"d\"\n[storage]\ndata_dir = \"{}\"\n", dir.path().display());
        let config = crate::config::parse(Path::new("t.toml"), &text).unwrap();
        let seed = rollcall_seed(&config).unwrap();
        assert_eq!(rollcall_seed(&config).unwrap(), seed, "the same seed after a restart");
        let path = dir.path().join("keys/rollcall.seed");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path().join("keys")).unwrap().count(), 1, "no temp file left");
        std::fs::write(&path, "").unwrap();
        let err = format!("{:#}", rollcall_seed(&config).unwrap_err());
        assert!(err.contains("keys/rollcall.seed") && err.contains("delete it"), "{err}");
    }
}
