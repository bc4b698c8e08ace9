//! Wires the stages together and runs them until a shutdown signal.
//!
//! Per camera: a supervisor thread running its GStreamer pipeline and an analysis thread taking the
//! latest frame ([`camera`]). Decisions from all cameras, presence and the scheduler go through one
//! channel to the decision task ([`sink`]), which commits each event to the outbox; evidence requests go
//! to the evidence worker ([`evidence`]); the publisher delivers the outbox over MQTT and answers commands
//! ([`handlers`]). With `[http]`, the HTTPS server takes the ward phones' enrolments and uploads
//! ([`http`]); it stops with the cameras, letting uploads being checked finish.
//!
//! Shutdown is bounded and phased ([`Shutdown`]): after SIGINT or SIGTERM the worker threads get
//! [`SHUTDOWN_GRACE`] (10 s) in total — cameras stop in parallel, each within about 8.5 s even when its
//! pipeline is stuck (see `source::camera`), then the decision task drains and the evidence worker
//! finishes — and the publisher up to 5 s more to deliver. Threads still busy at the deadline are named
//! in a WARN and left behind; the process exits 0 all the same, about 15 s after the signal at worst
//! (the unit's `TimeoutStopSec` is 30 s). What leaving them can lose is bounded too: a camera left
//! behind is one whose pipeline is stuck (it has no frames to decide on), evidence requests not yet
//! written are saved and written at the next start, and only decisions still queued for the decision
//! task at the deadline (none, unless the outbox itself is stuck) would be dropped.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

mod audit;
pub mod camera;
pub mod checkins;
mod config_apply;
mod console_cameras;
mod console_events;
mod console_people;
mod evidence;
pub mod handlers;
mod health;
pub mod http;
pub mod metrics;
mod mqtt;
mod notify;
pub mod people;
pub mod presence;
mod retention;
mod scheduler;
pub mod shutdown;
pub mod sink;
mod timestamps;

use anyhow::Context;
use tracing::{info, warn};

use crate::analyze::{Models, runtime};
use crate::clock::SystemClock;
use crate::config::{Config, Role, redact_url};
use crate::decide::Decision;
use crate::decide::settlement::{SettlementRules, Transactions, Watch};
use crate::evidence::credentials::Credentials;
use crate::evidence::keys::DeviceKey;
use crate::evidence::pending::Pending;
use crate::evidence::store::{EvidenceRequest, OpenOptions, Store};
use crate::gallery::Gallery;
use crate::gallery::search::SearchIndex;
use crate::gallery::settlements::SettlementLog;
use crate::outbox::Outbox;
use crate::publish::commands::Registry;
use crate::publish::events;
use crate::publish::publisher::{Publisher, PublisherCounters};
use crate::source::bounded::join_within;
use crate::source::pipeline;
use crate::storage_lock::DataDirLock;
pub use camera::{CameraAnalysis, Shared, capture_reference, reference_path};
use checkins::CheckinService;
use handlers::{Enrolment, roster_handler, settlement_handler};
pub use people::People;
use presence::{OccupancyHistory, Presence, PresenceCamera};
pub use shutdown::Shutdown;
use sink::{Emitter, Outlet};

/// Runs the agent with a validated configuration, read from `file` (which `config_apply` replaces),
/// until SIGINT or SIGTERM.
pub fn run(config: Config, file: &std::path::Path) -> anyhow::Result<()> {
    let text = crate::input::read_text_limited(file, crate::input::MAX_TEXT_BYTES)
        .with_context(|| format!("cannot read {} again", file.display()))?;
    // Absolute: `config_apply` writes it (and `<config>.previous` beside it) whatever the directory then.
    let path = std::path::absolute(file).unwrap_or_else(|_| file.to_owned());
    let active = config_apply::Active { path, text, config };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vigil-rt")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(run_async(active))
}

/// The composition root: opens the state, wires the stages, waits for the signal, stops in order; in
/// between, restarts in process with each configuration `config_apply` hands over.
async fn run_async(mut active: config_apply::Active) -> anyhow::Result<()> {
    // Listen before anything else, so a signal during start-up is a clean shutdown, not a kill.
    let mut signal = std::pin::pin!(shutdown_signal()?);
    let notifier = Arc::new(notify::Notifier::from_env());
    notifier.status("starting");
    // One agent per data directory, before anything in it is opened; held until this function returns,
    // across the restarts of `config_apply`.
    let lock = DataDirLock::acquire(&active.config.storage.data_dir)?;
    info!(path = %lock.path().display(), pid = std::process::id(), "data directory locked");
    // A configuration trial the agent did not see through is rolled back before anything starts.
    let owed = config_apply::recover(&mut active)?;
    let (applies_tx, mut applies) = tokio::sync::mpsc::unbounded_channel();
    let (cameras_tx, mut camera_updates) = tokio::sync::mpsc::unbounded_channel();
    let requests = config_apply::Inbox { applies: applies_tx, cameras: cameras_tx };
    let mut running = Running::start(&active.config, &notifier, config_apply::reconfigure(&active, &requests))?;
    if let Some(owed) = owed {
        config_apply::finish_recovery(&running, &active, owed);
    }
    // Said at the start and after each restart `config_apply` makes; a console camera change is no restart.
    let mut started = true;
    loop {
        if std::mem::take(&mut started) {
            let config = &active.config;
            info!(site = %config.site.id, device = %config.site.device_id, cameras = config.cameras.len(), "vigil started");
            let delivery = match &config.mqtt {
                Some(mqtt) => format!("MQTT to {}", redact_url(&mqtt.host)),
                None => "no MQTT (events kept in the outbox)".to_owned(),
            };
            notifier.notify(&format!("READY=1\nSTATUS=running: {} cameras, {delivery}", config.cameras.len()));
        }
        tokio::select! {
            name = &mut signal => {
                info!(signal = name, "shutting down");
                break;
            }
            Some(update) = camera_updates.recv() => {
                // On this loop, as `config_apply`'s restarts: one writer of the file, and the
                // configuration in force follows.
                let reply = update.reply.clone();
                let done = console_cameras::apply(&mut active, &running.active, &running.cameras, &running.people, update);
                let _ = reply.send(done);
            }
            Some(apply) = applies.recv() => {
                let applied =
                    config_apply::apply(running, &mut active, apply, &notifier, &requests, &mut signal).await?;
                running = applied.running;
                started = true;
                if let Some(name) = applied.signal {
                    info!(signal = name, "shutting down");
                    break;
                }
            }
        }
    }
    notifier.notify("STOPPING=1\nSTATUS=stopping");
    running.stop().await?;
    info!("stopped cleanly");
    drop(lock);
    Ok(())
}

/// The started agent: its worker threads, in the groups [`Shutdown`]'s phases stop them in.
struct Running {
    shutdown: Shutdown,
    /// Phase 1: cameras, analysis, scheduler.
    producers: Vec<JoinHandle<()>>,
    /// Phase 2: the decision task drains what the producers sent; evidence and retention finish.
    consumers: Vec<JoinHandle<()>>,
    /// Phase 3.
    publisher: Option<tokio::task::JoinHandle<()>>,
    /// Phase 4: records the acknowledgements the publisher sent until it stopped.
    acks: JoinHandle<()>,
    /// Phase 1: the HTTPS server (when `[http]` is set) stops taking requests; those in flight finish.
    http: Option<crate::http::Server>,
    /// Phase 1: the metrics listener.
    ops: Option<crate::http::ops::OpsListener>,
    /// Phase 1: the console's evidence view (its event streams are closed).
    review: Option<Arc<console_events::EvidenceReview>>,
    /// What a `config_apply` trial watches: the cameras' and the publisher's counters.
    probe: config_apply::Probe,
    /// Events of the agent itself (`config_applied`, `config_rolled_back`) go out through it.
    emitter: Emitter,
    /// The configuration in force as the handlers read it (the console's camera changes replace it).
    active: console_cameras::ActiveView,
    /// What the console changes in the running cameras.
    cameras: Vec<camera::CameraHandle>,
    /// The roster in force (a camera change may not drop a bed or chair it names).
    people: Arc<People>,
}

impl Running {
    /// Starts every worker; with systemd's watchdog on, also the thread that pings it while they all
    /// make progress. `reconfigure` is what `config_apply` and the console's camera changes need. A start that fails
    /// half-way stops what it had started (all phases at once), so that a restart can follow in the
    /// same process.
    fn start(
        config: &Config,
        notifier: &Arc<notify::Notifier>,
        reconfigure: config_apply::Reconfigure,
    ) -> anyhow::Result<Running> {
        let shutdown = Shutdown::new();
        let started = Running::start_with(config, notifier, reconfigure, &shutdown);
        if started.is_err() {
            shutdown.stop_delivery();
        }
        started
    }

    fn start_with(
        config: &Config,
        notifier: &Arc<notify::Notifier>,
        reconfigure: config_apply::Reconfigure,
        shutdown: &Shutdown,
    ) -> anyhow::Result<Running> {
        let shutdown = shutdown.clone();
        let mut models = load_models(config)?;
        let state = State::open(config)?;
        pipeline::init()?;
        let mut store = open_store(config, &models)?;
        // Says now, at WARN, when evidence times would rest on an unsynchronised clock.
        crate::clock_sync::observe();
        let (decisions_tx, decisions_rx) = mpsc::channel::<Decision>();
        let (evidence_tx, evidence_rx) = mpsc::channel::<EvidenceRequest>();
        let pending = Arc::new(Pending::new(&config.storage.data_dir.join("evidence-pending")));
        // One identity per camera, shared by its outlets (analysis, presence): the console renames it live.
        let identities: HashMap<String, _> = config
            .cameras
            .iter()
            .map(|c| (c.id.clone(), Arc::new(RwLock::new(sink::camera_identity(config, &c.id)))))
            .collect();
        let outlet = |camera: &str| {
            let outlet = Outlet::new(config, camera, pending.clone(), decisions_tx.clone(), evidence_tx.clone());
            match identities.get(camera) {
                Some(identity) => outlet.with_identity(identity.clone()),
                None => outlet,
            }
        };
        // Bed occupancy over the hours an offline phone's photo may be late by (ward phones' bed check).
        let history = Arc::new(OccupancyHistory::new(Duration::from_secs(config.phones.max_offline_hours * 3600)));
        let presence =
            Arc::new(Presence::new(presence_cameras(config, outlet, &history), config, decisions_tx.clone()));
        // One command channel per window camera: `settlement` opens a watch there.
        let (watches, mut watch_receivers) = watch_channels(config);
        let enrolment = Enrolment::start(
            models.face_analyzer()?,
            state.gallery.clone(),
            state.shared.gallery.clone(),
            config.faces.quality(),
        )?;
        let phones = http::open_registry(config)?;
        // The console enrols on the same thread as the `enroll` command.
        let console_people =
            Arc::new(console_people::ConsolePeople::new(config, enrolment.clone(), state.shared.people.clone()));
        let mut registry = command_registry(config, &state, watches, enrolment, &presence, &phones);
        let (active_view, camera_updates) = (reconfigure.active.clone(), reconfigure.requests.cameras.clone());
        // A roster is checked against the cameras' regions in force, which the console changes live.
        registry.register("roster", console_cameras::roster_handler(active_view.clone(), state.shared.people.clone()));
        registry.register("config_apply", config_apply::handler(reconfigure));
        let registry = Arc::new(registry);
        let outbox = open_outbox(config)?;
        let wake = Arc::new(tokio::sync::Notify::new());
        let base = events::base_topic(
            config.mqtt.as_ref().map_or("vigil/v1", |m| m.topic_prefix.as_str()),
            &config.site.id,
            &config.site.device_id,
        );
        let emitter = Emitter::new(outbox.clone(), wake.clone(), &base, &config.site.id, &config.site.device_id);
        let own_events = emitter.clone();
        announce_epoch(&store, &emitter);
        // The chain's head, retained on MQTT: now, and after every entry appended.
        let head_now = |head: &crate::evidence::head::Head| {
            let at = SystemTime::now();
            events::EvidenceHead::new(&config.site.id, &config.site.device_id, &evidence::chain_head(head), at)
        };
        let (head_tx, head_rx) = tokio::sync::watch::channel(store.head().as_ref().map(head_now));
        let (site, device) = (config.site.id.clone(), config.site.device_id.clone());
        store.on_append(Box::new(move |entry| {
            let head = evidence::chain_head(&entry.head());
            head_tx.send_replace(Some(events::EvidenceHead::new(&site, &device, &head, SystemTime::now())));
        }));
        // The console's list of bundles, when the console is served.
        let events = match config.http() {
            Some(_) if config.console.enabled => Some(console_events::EventIndex::build(&mut store)?),
            _ => None,
        };
        let store_counters = store.counters.clone();
        let store = Arc::new(Mutex::new(store));
        let review = events.map(|index| console_events::EvidenceReview::new(index, store.clone()));
        let (ack_tx, acks) = evidence::start_acks(store.clone())?;
        let delivery = shutdown.delivery();
        let publisher_counters = Arc::new(PublisherCounters::default());
        let mut watched = Vec::new();
        if config.mqtt.is_some() {
            watched.push(notify::Watched::new("publisher", publisher_counters.progress.clone()));
        }
        // The health message: the publisher takes the channel now, the thread that fills it comes once
        // the metrics' sources exist.
        let (health_tx, health_rx) = health::channel();
        let retained = Retained { head: head_rx, health: health_rx };
        let publisher =
            start_publisher(config, &base, &outbox, &wake, delivery, registry, ack_tx, retained, &publisher_counters)?;
        let timings = camera::ModelTimings::default();
        let (mut producers, mut cameras, mut handles) = (Vec::new(), Vec::new(), Vec::new());
        for camera in &config.cameras {
            info!(camera = %camera.id, role = camera.role.as_str(), url = %redact_url(&camera.url),
                keyframes_only = camera.keyframes_only(), regions = camera.regions.len(), "camera configured");
            let mut analysis = CameraAnalysis::new(
                config,
                camera,
                &models,
                state.shared.clone(),
                presence.camera(&camera.id).cloned(),
                watch_receivers.remove(&camera.id),
                outlet(&camera.id),
            )?;
            analysis.time_models(&timings);
            let recordings = Some(config.storage.recordings_dir().join(&camera.id));
            let started = camera::start_camera(config, camera, analysis, recordings, decisions_tx.clone(), &shutdown)?;
            producers.extend(started.threads);
            watched.extend(started.watched);
            cameras.push(started.metrics);
            handles.push(started.handle);
        }
        let probe = config_apply::Probe {
            cameras: cameras.clone(),
            mqtt: config.mqtt.as_ref().map(|_| publisher_counters.clone()),
        };
        // Every camera is started: what `/metrics`, `/readyz` and the health message read.
        let sources = metrics::Sources {
            cameras,
            outbox: outbox.clone(),
            mqtt: publisher_counters,
            models: timings,
            evidence: store_counters,
            pending: pending.clone(),
            data_dir: config.storage.data_dir.clone(),
        };
        let metrics = Arc::new(metrics::Metrics::new(sources, &emitter.counted));
        // Ward phones' check-ins, when phones are served: the checkers' face sessions are opened now,
        // while the models' bytes are held.
        let checkins = match config.http() {
            Some(_) => Some(Arc::new(CheckinService::start(
                config,
                &models,
                state.shared.gallery.clone(),
                state.shared.people.clone(),
                history.clone(),
                store.clone(),
                emitter.clone(),
            )?)),
            None => None,
        };
        // Every session is open: the verified bytes are not needed twice.
        models.release_bytes();
        let people = &state.shared.people;
        // The console's accounts and audit log: the server signs in against it, the relay sends its rows.
        let console = if config.console.enabled { Some(http::open_console(config)?) } else { None };
        if let Some(store) = &console {
            producers.push(audit::start(store.clone(), emitter.clone(), outbox.clone(), &shutdown)?);
        }
        producers.push(scheduler::start(config, people, &presence, decisions_tx.clone(), &SystemClock, &shutdown)?);
        // Only the producers may hold decision senders from here on: when they are joined at shutdown, the
        // channels close and the decision and evidence workers finish.
        drop((presence, decisions_tx, evidence_tx));
        let cameras = config.cameras.iter().map(|c| sink::camera_identity(config, &c.id)).collect();
        let evidence_progress = notify::Progress::default();
        watched.push(notify::Watched::new("vigil-evidence", evidence_progress.clone()));
        let mut consumers = vec![
            sink::start_decision_task(decisions_rx, emitter.clone(), &shutdown)?,
            evidence::start(
                store.clone(),
                pending,
                evidence_rx,
                &shutdown,
                emitter,
                cameras,
                evidence_progress.clone(),
            )?,
            retention::start(config, &shutdown, state.shared.settled.clone(), store)?,
        ];
        consumers.extend(timestamps::start(config, &shutdown)?);
        if let Some(interval) = notify::watchdog_interval().filter(|_| notifier.enabled()) {
            consumers.push(notify::start_watchdog(notifier.clone(), watched, interval, &shutdown)?);
        }
        if config.mqtt.is_some() {
            let reporter = health::Reporter::new(&config.site.id, &config.site.device_id);
            consumers.push(health::start(metrics.sources(), reporter, health_tx, &shutdown)?);
        }
        let ops = start_ops_listener(config, &metrics)?;
        let http = match checkins {
            Some(checkins) => {
                let events = review.clone().map(|r| r as Arc<dyn crate::http::console_events::Evidence>);
                let cameras =
                    Arc::new(console_cameras::Cameras::new(handles.clone(), active_view.clone(), camera_updates));
                http::start(config, phones, checkins, metrics, console, events, console_people, cameras)?
            }
            None => None,
        };
        Ok(Running {
            shutdown,
            producers,
            consumers,
            publisher,
            acks,
            http,
            ops,
            review,
            probe,
            emitter: own_events,
            active: active_view,
            cameras: handles,
            people: state.shared.people.clone(),
        })
    }

    /// Stops the phases in order within [`SHUTDOWN_GRACE`], then gives the publisher up to 5 s more.
    async fn stop(self) -> anyhow::Result<()> {
        let Running { shutdown, producers, consumers, publisher, acks, http, ops, review, .. } = self;
        shutdown.trigger();
        // The console's event streams end first: the server's graceful stop waits for open responses.
        if let Some(review) = review {
            review.close();
        }
        let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
        // The server stops with the producers, before the decision task drains: uploads being checked
        // finish and reach the outbox while the cameras stop.
        let http_stopped = async move {
            if let Some(server) = http {
                server.stop(deadline.saturating_duration_since(std::time::Instant::now())).await;
            }
            if let Some(ops) = ops {
                ops.stop(deadline.saturating_duration_since(std::time::Instant::now())).await;
            }
        };
        let producers = tokio::task::spawn_blocking(move || join_within(producers, deadline));
        let ((), left) = tokio::join!(http_stopped, producers);
        let mut left_behind = left?;
        shutdown.producers_done();
        left_behind.extend(tokio::task::spawn_blocking(move || join_within(consumers, deadline)).await?);
        if !left_behind.is_empty() {
            warn!(threads = %left_behind.join(", "), grace_secs = SHUTDOWN_GRACE.as_secs(),
                "threads still busy at the shutdown deadline are left behind; exiting without them \
                 (events already in the outbox are kept; unwritten evidence is written at the next start)");
        }
        // Cameras and evidence are stopped and every event is in the outbox: now let the publisher go.
        shutdown.stop_delivery();
        if let Some(task) = publisher {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        // The publisher is gone (its acknowledgement sender with it): the acknowledgements it sent last
        // are recorded now.
        let acks_left = tokio::task::spawn_blocking(move || {
            join_within(vec![acks], std::time::Instant::now() + Duration::from_secs(2))
        })
        .await?;
        if !acks_left.is_empty() {
            warn!("the acknowledgement task is still busy at the deadline; left behind");
        }
        Ok(())
    }
}

/// Presence analysis for the cameras that watch beds or chairs.
fn presence_cameras(
    config: &Config,
    outlet: impl Fn(&str) -> Outlet,
    history: &Arc<OccupancyHistory>,
) -> Vec<Arc<PresenceCamera>> {
    config
        .cameras
        .iter()
        // Every ward and dialysis-room camera, with regions or not yet: the console may draw them live.
        .filter(|c| c.role != Role::SettlementWindow)
        .map(|c| Arc::new(PresenceCamera::new(config, c, outlet(&c.id)).keep_history(history.clone())))
        .collect()
}

fn open_outbox(config: &Config) -> anyhow::Result<Arc<Mutex<Outbox>>> {
    let path = config.storage.data_dir.join("outbox.sqlite");
    let outbox = Outbox::open(&path, config.outbox.max_records)?;
    info!(path = %path.display(), undelivered = outbox.len()?, "outbox open");
    Ok(Arc::new(Mutex::new(outbox)))
}

/// ONNX Runtime and the verified model set; refuses to start on a missing or modified model (every
/// decision and evidence manifest names them).
fn load_models(config: &Config) -> anyhow::Result<Models> {
    let ort = runtime::init(config.models.ort_library.as_deref())?;
    info!(version = %ort.version, path = %ort.path.display(), "ONNX Runtime loaded");
    let models = Models::load(&config.models, &config.faces.detector(), &config.persons.detector())?;
    for model in &models.set.models {
        info!(model = %model.name, sha256 = %model.sha256, path = %model.path.display(), "model verified");
    }
    Ok(models)
}

/// What outlives a frame: the gallery and its index, settled faces, transactions, the roster's people.
struct State {
    gallery: Arc<Mutex<Gallery>>,
    shared: Shared,
}

impl State {
    fn open(config: &Config) -> anyhow::Result<State> {
        let gallery = Gallery::open(&config.storage.gallery_file(), &config.storage.gallery_key_file())?;
        info!(enrolled = gallery.entries().len(), "gallery loaded (encrypted)");
        let index = Arc::new(RwLock::new(SearchIndex::build(gallery.entries())));
        let face_retention = Duration::from_secs(u64::from(config.settlement.face_retention_days) * 86_400);
        let settled = SettlementLog::open(
            &config.storage.data_dir.join("settlement-faces.bin"),
            &config.storage.gallery_key_file(),
            face_retention,
            SystemTime::now(),
        )?;
        Ok(State {
            gallery: Arc::new(Mutex::new(gallery)),
            shared: Shared {
                gallery: index,
                settled: Arc::new(Mutex::new(settled)),
                // Transaction ids being watched or settled: a repeated `settlement` never opens a second watch.
                transactions: Arc::new(Mutex::new(Transactions::default())),
                rules: settlement_rules(config),
                people: Arc::new(People::load(config)),
            },
        })
    }
}

pub fn settlement_rules(config: &Config) -> SettlementRules {
    SettlementRules {
        match_distance: config.faces.match_distance,
        min_good_frames: config.settlement.min_good_frames,
        sharing_window: Duration::from_secs(u64::from(config.settlement.sharing_window_days) * 86_400),
        liveness: config.liveness.rules(),
    }
}

/// The evidence store, signing with the device's key: refuses to run without it, or with a key others
/// can read; refuses a store whose end was removed (the head recorded in `<data_dir>/evidence-head`
/// says so), starts a new epoch after a wipe.
fn open_store(config: &Config, models: &Models) -> anyhow::Result<Store> {
    let key_file = config.storage.key_file(&config.evidence);
    let key = DeviceKey::load(&key_file)?;
    info!(public_key = %key.public().to_base64(), path = %key_file.display(), "device key loaded");
    // Content Credentials: the device certificate, self-issued now for a key made before Vigil had one.
    let cert_file = crate::evidence::credentials::cert_path(&config.storage.data_dir);
    let (credentials, issued) = Credentials::load_or_issue(&cert_file, &key, &config.site.id, &config.site.device_id)?;
    if issued {
        warn!(path = %cert_file.display(), "no device certificate: self-issued one for the device key (C2PA)");
    }
    info!(subject = %credentials.subject(), path = %cert_file.display(), "device certificate loaded");
    let model_hashes = models.set.models.iter().map(|m| (m.name.clone(), m.sha256.clone())).collect();
    let (site, device) = (&config.site.id, &config.site.device_id);
    let mut store = Store::open_with(
        &config.storage.evidence_dir(),
        key,
        site,
        device,
        model_hashes,
        &store_options(config, false),
    )?;
    store.credentials = Some(credentials);
    match store.head() {
        Some(head) => info!(head = %head.id(), epoch = head.epoch, "evidence chain open"),
        None => info!("evidence chain open: empty, the first bundle starts it"),
    }
    Ok(store)
}

/// How the agent (and `vigil hold`) open the evidence store.
pub fn store_options(config: &Config, refuse_new_epoch: bool) -> OpenOptions {
    OpenOptions {
        head_file: Some(config.storage.data_dir.join("evidence-head")),
        evidence_days: config.retention.evidence_days,
        refuse_new_epoch,
    }
}

/// A new epoch started at open (the store was found wiped): the platform is told, through the outbox.
fn announce_epoch(store: &Store, emitter: &Emitter) {
    let Some(started) = store.started_epoch() else { return };
    let details = events::EvidenceEpochDetails {
        epoch: started.entry.epoch,
        chain_head: evidence::chain_head(&started.entry.head()),
        previous_head: evidence::chain_head(&started.previous),
        reason: started.reason.clone(),
    };
    let record = events::epoch_record(&emitter.base, &emitter.site, &emitter.device, details);
    let (epoch, sequence) = (started.entry.epoch, started.entry.sequence);
    emitter.emit(record, move || info!(epoch, sequence, "new evidence chain epoch announced"));
}

type WatchChannels = (HashMap<String, mpsc::Sender<Watch>>, HashMap<String, mpsc::Receiver<Watch>>);

/// A channel per settlement-window camera, on which `settlement` commands open watches.
pub fn watch_channels(config: &Config) -> WatchChannels {
    let (mut senders, mut receivers) = (HashMap::new(), HashMap::new());
    for camera in config.cameras.iter().filter(|c| c.role == Role::SettlementWindow) {
        let (tx, rx) = mpsc::channel();
        senders.insert(camera.id.clone(), tx);
        receivers.insert(camera.id.clone(), rx);
    }
    (senders, receivers)
}

/// The signed commands `vigil run` answers.
fn command_registry(
    config: &Config,
    state: &State,
    watches: HashMap<String, mpsc::Sender<Watch>>,
    enrolment: Enrolment,
    presence: &Arc<Presence>,
    phones: &Arc<crate::phones::registry::Registry>,
) -> Registry {
    let mut registry = Registry::default();
    let watch_for = Duration::from_secs(config.settlement.watch_secs);
    registry.register("settlement", settlement_handler(watches, state.shared.transactions.clone(), watch_for));
    registry.register("enroll", enrolment.clone().enroll_handler());
    registry.register("unenroll", enrolment.unenroll_handler());
    registry.register("roster", roster_handler(config.clone(), state.shared.people.clone()));
    let people = state.shared.people.clone();
    registry.register("rollcall", handlers::rollcall_handler(Arc::downgrade(presence), people));
    registry.register("phone_add", handlers::phone_add_handler(config.clone(), phones.clone()));
    registry.register("phone_revoke", handlers::phone_revoke_handler(phones.clone()));
    registry
}

/// The metrics listener of `[metrics]`, or the default one on loopback when `[http]` is off. A port
/// the operator chose that cannot be bound stops the start; the default one only warns (another
/// exporter may hold 9464, and nobody asked for this one).
fn start_ops_listener(
    config: &Config,
    metrics: &Arc<metrics::Metrics>,
) -> anyhow::Result<Option<crate::http::ops::OpsListener>> {
    let Some((settings, explicit)) = config.metrics_listener() else { return Ok(None) };
    match crate::http::ops::OpsListener::start(&settings.listen, metrics.clone()) {
        Ok(listener) => Ok(Some(listener)),
        Err(e) if !explicit => {
            warn!(error = %e, "the default metrics listener could not start: /metrics is not served \
                (set [metrics] listen to a free port, or enabled = false)");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// What the publisher keeps retained on the broker, as the runtime updates it.
struct Retained {
    head: tokio::sync::watch::Receiver<Option<events::EvidenceHead>>,
    health: tokio::sync::watch::Receiver<Option<crate::publish::health::Health>>,
}

/// The MQTT publisher task, when `[mqtt]` is configured.
#[allow(clippy::too_many_arguments)]
fn start_publisher(
    config: &Config,
    base: &str,
    outbox: &Arc<Mutex<Outbox>>,
    wake: &Arc<tokio::sync::Notify>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    registry: Arc<Registry>,
    acks: mpsc::Sender<evidence::Ack>,
    retained: Retained,
    counters: &Arc<PublisherCounters>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(mqtt) = &config.mqtt else {
        warn!("no [mqtt] in the config: events are kept in the outbox until a broker is configured");
        return Ok(None);
    };
    let publisher = Publisher {
        settings: mqtt::publisher_settings(config, mqtt, base)?,
        outbox: outbox.clone(),
        wake: wake.clone(),
        shutdown,
        counters: counters.clone(),
        registry,
        on_delivered: Some(mqtt::acknowledge_bundles(acks)),
        head: Some(retained.head),
        health: Some(retained.health),
    };
    info!(host = %redact_url(&mqtt.host), topics = %base, "MQTT delivery configured");
    Ok(Some(tokio::spawn(publisher.run())))
}

/// How long worker threads get, in total, to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

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
