//! The box's health on MQTT: a retained `vigil.health.v1` message on `<base>/health`
//! (docs/mqtt-api.md, "Health") every minute and as soon as something an operator acts on changes — a
//! camera going offline or coming back, a tamper condition raised or cleared, readiness, the outbox's
//! backlog crossing [`BACKLOG_RECORDS`], a new broker session. The central platform sees a fleet's
//! health from its subscriptions, without scraping each box.
//!
//! Built from the same [`Sources`] `/metrics` reads, never counted twice. The `vigil-health` thread
//! looks at the essentials every [`CHECK_EVERY`] (atomics and one outbox query) and builds a full
//! message when they changed or [`SEND_EVERY`] passed.
//!
//! Why not through the outbox: the outbox keeps every record until the broker acknowledges it, which is
//! right for events (each one matters) and wrong for a state (only the newest matters). A box offline for
//! a day would queue 1 440 health messages, delay the events behind them, and replay stale states on
//! reconnection. The message goes instead into a `watch` channel the publisher reads, as the evidence
//! head does: the channel holds only the newest, the publisher sends it retained on every connection and
//! whenever a new one comes, and nothing piles up while the broker is away. A health message lost
//! because the connection dropped before its PUBACK is replaced by the next one on the next connection.
//!
//! Kept coherent with the retained `…/status` (`online`, and the `offline` last will or clean-stop
//! message): the health message says what the box measured at its `at`; `status` says whether the box
//! is connected now. The platform reads health as current only while `status` is `online` (the health
//! left retained after a death stays as the last word the box said, stamped with its time).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use super::Shutdown;
use super::metrics::{ProcessStats, Sources};
use crate::publish::health::{
    CameraHealth, EvidenceHealth, HEALTH_SCHEMA, Health, OutboxHealth, ProcessHealth, StorageHealth,
};

/// A health message at least this often.
pub const SEND_EVERY: Duration = Duration::from_secs(60);
/// How often the essentials are looked at for a change.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// An outbox holding at least this many undelivered records has a backlog: crossing it either way is a
/// change worth telling (the platform sees delivery falling behind, or catching up).
pub const BACKLOG_RECORDS: u64 = 100;

/// What, when it changes, makes a health message at once.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Essentials {
    /// Per camera: online, tamper bits.
    cameras: Vec<(bool, u8)>,
    ready: bool,
    backlog: Option<bool>,
    /// Broker sessions established (a reconnection changes it).
    connections: u64,
}

impl Essentials {
    fn of(sources: &Sources) -> Essentials {
        Essentials {
            cameras: sources
                .cameras
                .iter()
                .map(|c| (c.online(), c.analysis.tampered.load(Ordering::Relaxed)))
                .collect(),
            ready: sources.not_ready().is_empty(),
            backlog: sources.undelivered().map(|n| n >= BACKLOG_RECORDS),
            connections: sources.mqtt.connections.load(Ordering::Relaxed),
        }
    }
}

/// Builds health messages; remembers the frame counts of the last one for the frame rates.
pub struct Reporter {
    site: String,
    device: String,
    last: Option<(Instant, Vec<u64>)>,
}

impl Reporter {
    pub fn new(site: &str, device: &str) -> Reporter {
        Reporter { site: site.to_owned(), device: device.to_owned(), last: None }
    }

    /// The health now. Frame rates are over the time since the previous message (0 for the first).
    pub fn build(&mut self, sources: &Sources, at: SystemTime) -> Health {
        let now = Instant::now();
        let frames: Vec<u64> = sources.cameras.iter().map(|c| c.counters.frames.load(Ordering::Relaxed)).collect();
        let cameras = sources
            .cameras
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let fps = match &self.last {
                    Some((then, before)) if now > *then => {
                        frames[i].saturating_sub(before.get(i).copied().unwrap_or(0)) as f64
                            / now.duration_since(*then).as_secs_f64()
                    }
                    _ => 0.0,
                };
                let tamper = c.analysis.tampered().into_iter().map(|k| k.as_str()).collect();
                CameraHealth::new(&c.id, c.online(), fps, tamper, c.counters.restarts.load(Ordering::Relaxed))
            })
            .collect();
        self.last = Some((now, frames));
        let outbox = sources.outbox();
        let process = ProcessStats::read();
        let not_ready = sources.not_ready();
        Health {
            schema: HEALTH_SCHEMA,
            site: self.site.clone(),
            device: self.device.clone(),
            at: humantime::format_rfc3339_millis(at).to_string(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_secs: process.map_or(0, |p| p.uptime().as_secs()),
            ready: not_ready.is_empty(),
            not_ready,
            cameras,
            outbox: OutboxHealth {
                undelivered: outbox.map(|o| o.undelivered),
                oldest_undelivered_age_secs: outbox.map(|o| o.oldest_age.as_secs()),
            },
            evidence: EvidenceHealth {
                pending: sources.pending.count() as u64,
                bundles_written: sources.evidence.bundles_written.load(Ordering::Relaxed),
            },
            storage: StorageHealth { free_bytes: sources.free_bytes() },
            process: process
                .map_or_else(|| ProcessHealth::new(0.0, 0), |p| ProcessHealth::new(p.cpu_seconds, p.resident_bytes)),
        }
    }
}

/// The health channel: the publisher reads the receiver; [`start`] takes the sender once the
/// metrics' sources exist (after the publisher is started).
pub fn channel() -> (watch::Sender<Option<Health>>, watch::Receiver<Option<Health>>) {
    watch::channel(None)
}

/// Starts `vigil-health`, which sends a health message into `tx` at once, on every change of the
/// essentials, and at least every [`SEND_EVERY`], until shutdown.
pub fn start(
    sources: Arc<Sources>,
    mut reporter: Reporter,
    tx: watch::Sender<Option<Health>>,
    shutdown: &Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    let stop = shutdown.clone();
    std::thread::Builder::new().name("vigil-health".into()).spawn(move || {
        let mut sent: Option<(Essentials, Instant)> = None;
        while !stop.is_set() {
            let essentials = Essentials::of(&sources);
            let due = sent.as_ref().is_none_or(|(was, at)| *was != essentials || at.elapsed() >= SEND_EVERY);
            if due {
                let health = reporter.build(&sources, SystemTime::now());
                tracing::debug!(
                    ready = health.ready,
                    cameras_online = health.cameras.iter().filter(|c| c.online).count(),
                    "health message built"
                );
                tx.send_replace(Some(health));
                sent = Some((essentials, Instant::now()));
            }
            let until = Instant::now() + CHECK_EVERY;
            while !stop.is_set() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::evidence::pending::Pending;
    use crate::outbox::{NewRecord, Outbox};
    use crate::runtime::camera::{TAMPER_KINDS, tamper_bit};
    use crate::runtime::metrics::CameraSource;
    use crate::source::tamper::TamperKind;

    fn sources(dir: &std::path::Path) -> (Sources, CameraSource) {
        let camera = CameraSource {
            id: "ward3-bed1".into(),
            counters: Arc::default(),
            slot: Arc::default(),
            offline: Arc::new(AtomicBool::new(false)),
            analysis: Arc::default(),
        };
        let sources = Sources {
            cameras: vec![camera.clone()],
            outbox: Arc::new(Mutex::new(Outbox::open(&dir.join("o.sqlite"), 1000).unwrap())),
            mqtt: Arc::default(),
            models: Default::default(),
            evidence: Arc::default(),
            pending: Arc::new(Pending::new(&dir.join("evidence-pending"))),
            data_dir: dir.to_owned(),
        };
        (sources, camera)
    }

    #[test]
    fn the_health_says_what_the_counters_say() {
        let dir = tempfile::tempdir().unwrap();
        let (sources, camera) = sources(dir.path());
        let mut reporter = Reporter::new("hosp-0427", "edge-ward3");
        let first = reporter.build(&sources, SystemTime::now());
        assert_eq!(
            (first.schema, first.site.as_str(), first.device.as_str()),
            (HEALTH_SCHEMA, "hosp-0427", "edge-ward3")
        );
        assert!(first.ready && first.not_ready.is_empty());
        let cam = &first.cameras[0];
        assert_eq!((cam.id.as_str(), cam.online, cam.fps, cam.restarts), ("ward3-bed1", false, 0.0, 0));
        assert_eq!(first.outbox, OutboxHealth { undelivered: Some(0), oldest_undelivered_age_secs: Some(0) });
        assert!(first.storage.free_bytes.is_some_and(|b| b > 0));
        assert!(first.process.resident_memory_bytes > 0 && first.process.cpu_seconds > 0.0, "{:?}", first.process);
        assert_eq!(first.version, env!("CARGO_PKG_VERSION"));

        camera.counters.frames.fetch_add(50, Ordering::Relaxed);
        camera.counters.restarts.fetch_add(2, Ordering::Relaxed);
        camera.analysis.tampered.fetch_or(tamper_bit(TamperKind::Covered), Ordering::Relaxed);
        let record = NewRecord {
            event_id: "e1".into(),
            topic: "vigil/v1/h/d/events/camera_tamper".into(),
            payload: b"{}".to_vec(),
            camera: None,
            evidence: None,
        };
        sources.outbox.lock().unwrap().append_batch(&[record]).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let second = reporter.build(&sources, SystemTime::now());
        let cam = &second.cameras[0];
        assert!(cam.online && cam.fps > 0.0, "{cam:?}");
        assert_eq!((cam.tamper.clone(), cam.restarts), (vec!["covered"], 2));
        assert_eq!(second.outbox.undelivered, Some(1));
        // Serialised as the schema has it: every field, numbers rounded.
        let json = serde_json::to_value(&second).unwrap();
        assert_eq!(json["cameras"][0]["tamper"], serde_json::json!(["covered"]));
        assert_eq!(json["outbox"]["undelivered"], 1);
        assert_eq!(json["schema"], "vigil.health.v1");
    }

    #[test]
    fn a_camera_going_offline_or_tampered_is_a_change_a_steady_count_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (sources, camera) = sources(dir.path());
        camera.counters.frames.fetch_add(1, Ordering::Relaxed);
        let before = Essentials::of(&sources);
        camera.counters.frames.fetch_add(100, Ordering::Relaxed);
        assert_eq!(Essentials::of(&sources), before, "frames flowing is no change");
        camera.offline.store(true, Ordering::Relaxed);
        let offline = Essentials::of(&sources);
        assert_ne!(offline, before);
        camera.offline.store(false, Ordering::Relaxed);
        assert_eq!(Essentials::of(&sources), before);
        for kind in TAMPER_KINDS {
            camera.analysis.tampered.store(tamper_bit(kind), Ordering::Relaxed);
            assert_ne!(Essentials::of(&sources), before, "{kind:?}");
        }
        camera.analysis.tampered.store(0, Ordering::Relaxed);
        sources.mqtt.connections.fetch_add(1, Ordering::Relaxed);
        assert_ne!(Essentials::of(&sources), before, "a new broker session");
    }

    #[test]
    fn the_thread_sends_at_once_then_on_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let (sources, camera) = sources(dir.path());
        camera.counters.frames.fetch_add(1, Ordering::Relaxed);
        let sources = Arc::new(sources);
        let (tx, mut rx) = channel();
        let shutdown = Shutdown::new();
        let thread = start(sources.clone(), Reporter::new("h", "d"), tx, &shutdown).unwrap();
        let first = wait(&mut rx);
        assert!(first.cameras[0].online);
        camera.offline.store(true, Ordering::Relaxed);
        let second = wait(&mut rx);
        assert!(!second.cameras[0].online, "{second:?}");
        shutdown.trigger();
        thread.join().unwrap();
    }

    /// The next health sent, within 10 s.
    fn wait(rx: &mut watch::Receiver<Option<Health>>) -> Health {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), rx.changed()).await.expect("a health message").unwrap();
        });
        rx.borrow_and_update().clone().expect("a health message")
    }
}
