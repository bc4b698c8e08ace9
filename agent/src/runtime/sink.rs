//! The decision sink: the one way a decision leaves a stage. A camera (or the scheduler) sends its
//! decisions through its [`Outlet`] — with an evidence request saved first when the decision needs one —
//! and the decision task hands each to the [`Emitter`], which commits its event to the outbox before the
//! decision is logged.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use tracing::{error, info, warn};

use super::Shutdown;
use crate::config::Config;
use crate::decide::{Decision, DecisionKind};
use crate::evidence::manifest::CameraIdentity;
use crate::evidence::pending::Pending;
use crate::evidence::store::{Detection, EvidenceRequest};
use crate::outbox::{NewRecord, Outbox};
use crate::publish::events;

/// The evidence to gather for a decision taken on `frame`: the clip from pre-roll before the onset of
/// what was decided (a tamper's onset comes its hold time before the raise; other decisions are about
/// their own moment) to post-roll after the decision, and the frame.
fn evidence_request(
    decision: &Decision,
    frame: &crate::source::Frame,
    details: std::collections::BTreeMap<String, String>,
    detections: Vec<Detection>,
    outlet: &Outlet,
) -> EvidenceRequest {
    let onset = decision.onset();
    EvidenceRequest {
        event_id: decision.id,
        kind: decision.name().to_owned(),
        camera: decision.camera.clone(),
        camera_info: outlet.identity.read().unwrap_or_else(|e| e.into_inner()).clone(),
        at: decision.at,
        onset,
        thresholds: outlet.thresholds.of(&decision.kind),
        details,
        snapshot: frame.image.clone(),
        snapshot_at: frame.captured,
        detections,
        recordings: outlet.recordings.clone(),
        clip_from: onset.unwrap_or(decision.at).min(decision.at) - outlet.pre_roll,
        clip_to: decision.at + outlet.post_roll,
    }
}

/// The camera as its configuration names it (evidence manifests' `camera`).
pub fn camera_identity(config: &Config, camera: &str) -> CameraIdentity {
    config.cameras.iter().find(|c| c.id == camera).map_or_else(
        || CameraIdentity::unknown(camera),
        |c| CameraIdentity::new(&c.id, c.role.as_str(), c.name.as_deref(), &c.url),
    )
}

/// The settings each kind of decision is taken with, as evidence manifests record them
/// (`decision.thresholds`): decimal strings as the configuration file would spell them (Rust's
/// shortest round-trip decimal of the configured value, never an exponent).
#[derive(Clone)]
struct Thresholds {
    tamper: crate::config::Tamper,
    match_distance: f32,
    settlement: crate::config::Settlement,
    person_detector: f32,
    presence: crate::config::Presence,
    dialysis: crate::config::Dialysis,
}

impl Thresholds {
    fn new(config: &Config) -> Thresholds {
        Thresholds {
            tamper: config.tamper.clone(),
            match_distance: config.faces.match_distance,
            settlement: config.settlement.clone(),
            person_detector: config.persons.detector_threshold,
            presence: config.presence.clone(),
            dialysis: config.dialysis.clone(),
        }
    }

    fn of(&self, kind: &DecisionKind) -> std::collections::BTreeMap<String, String> {
        use crate::decide::TamperKind;
        let (t, s, p, d) = (&self.tamper, &self.settlement, &self.presence, &self.dialysis);
        let values: Vec<(&str, String)> = match kind {
            DecisionKind::CameraTamper { tamper: TamperKind::Covered, .. } => {
                vec![("covered_secs", t.covered_secs.to_string())]
            }
            DecisionKind::CameraTamper { tamper: TamperKind::Frozen, .. } => {
                vec![("frozen_secs", t.frozen_secs.to_string())]
            }
            DecisionKind::CameraTamper { tamper: TamperKind::Moved, .. } => {
                vec![("moved_secs", t.moved_secs.to_string()), ("moved_similarity", t.moved_similarity.to_string())]
            }
            DecisionKind::SettlementVerified { .. }
            | DecisionKind::SettlementIdentityMismatch { .. }
            | DecisionKind::SettlementNoFace { .. } => vec![
                ("match_distance", self.match_distance.to_string()),
                ("min_good_frames", s.min_good_frames.to_string()),
                ("watch_secs", s.watch_secs.to_string()),
            ],
            DecisionKind::IdentitySharedAcrossIds { .. } => vec![
                ("match_distance", self.match_distance.to_string()),
                ("sharing_window_days", s.sharing_window_days.to_string()),
            ],
            DecisionKind::BedAbsent(_) | DecisionKind::BedAbsenceEscalated(_) => vec![
                ("person_detector_threshold", self.person_detector.to_string()),
                ("min_inside", p.min_inside.to_string()),
                ("min_cover", p.min_cover.to_string()),
                ("full_cover", p.full_cover.to_string()),
                ("changed_occupied", p.changed_occupied.to_string()),
                ("enter_secs", p.enter_secs.to_string()),
                ("leave_secs", p.leave_secs.to_string()),
            ],
            DecisionKind::Dialysis(_) => vec![
                ("match_distance", self.match_distance.to_string()),
                ("identity_window_mins", d.identity_window_mins.to_string()),
                ("grace_mins", d.grace_mins.to_string()),
                ("chair_empty_share", d.chair_empty_share.to_string()),
                ("min_share", d.min_share.to_string()),
                ("person_detector_threshold", self.person_detector.to_string()),
            ],
            _ => Vec::new(),
        };
        values.into_iter().map(|(name, value)| (name.to_owned(), value)).collect()
    }
}

/// Where one camera's decisions go: the decision channel, and (for those that need it) the evidence
/// worker with what to cut.
#[derive(Clone)]
pub struct Outlet {
    camera: String,
    /// Requests are saved here before their decision goes out.
    pending: Arc<Pending>,
    decisions: mpsc::Sender<Decision>,
    evidence: mpsc::Sender<EvidenceRequest>,
    recordings: PathBuf,
    pre_roll: Duration,
    post_roll: Duration,
    /// Shared by the camera's outlets; the console's camera changes (name, URL) replace it.
    identity: Arc<std::sync::RwLock<CameraIdentity>>,
    thresholds: Thresholds,
}

impl Outlet {
    pub fn new(
        config: &Config,
        camera: &str,
        pending: Arc<Pending>,
        decisions: mpsc::Sender<Decision>,
        evidence: mpsc::Sender<EvidenceRequest>,
    ) -> Outlet {
        Outlet {
            camera: camera.to_owned(),
            pending,
            decisions,
            evidence,
            recordings: config.storage.recordings_dir().join(camera),
            pre_roll: Duration::from_secs(config.evidence.pre_roll_secs),
            post_roll: Duration::from_secs(config.evidence.post_roll_secs),
            identity: Arc::new(std::sync::RwLock::new(camera_identity(config, camera))),
            thresholds: Thresholds::new(config),
        }
    }

    /// This outlet names its camera as `identity` does (one per camera, shared by its outlets).
    pub fn with_identity(mut self, identity: Arc<std::sync::RwLock<CameraIdentity>>) -> Outlet {
        self.identity = identity;
        self
    }

    /// The camera's name, role and URL as evidence manifests record them, changed in place by the console.
    pub fn identity(&self) -> Arc<std::sync::RwLock<CameraIdentity>> {
        self.identity.clone()
    }

    /// Sends a decision taken at `at` on `frame`, with an evidence request when the kind needs one and
    /// there is a frame to show (without one, the event goes out saying it has no evidence).
    pub fn decide(
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
            let request = evidence_request(&decision, frame, details, detections, self);
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

/// Appends events to the outbox (durably) and wakes the publisher.
#[derive(Clone)]
pub struct Emitter {
    outbox: Arc<Mutex<Outbox>>,
    wake: Arc<tokio::sync::Notify>,
    pub(super) base: String,
    pub(super) site: String,
    pub(super) device: String,
    /// Events the outbox could not take yet (disk full, I/O error), oldest first.
    held: Arc<Mutex<Held>>,
    /// Decisions and check-ins recorded, for the metrics.
    pub(super) counted: super::metrics::EventCounters,
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
    pub fn new(
        outbox: Arc<Mutex<Outbox>>,
        wake: Arc<tokio::sync::Notify>,
        base: &str,
        site: &str,
        device: &str,
    ) -> Self {
        Emitter {
            outbox,
            wake,
            base: base.to_owned(),
            site: site.to_owned(),
            device: device.to_owned(),
            counted: Default::default(),
            held: Arc::default(),
        }
    }

    /// Commits the record to the outbox, then runs `on_commit` (a log line claiming the event, the
    /// removal of what the event replaces). When the outbox cannot take it, the record waits in memory
    /// behind the others and is committed, in order, by a later `emit` or [`Emitter::retry_held`]:
    /// nothing accepted is dropped because a write failed once (a full disk clears within seconds when
    /// the retention worker makes room). Returns whether it is committed now.
    pub fn emit(&self, record: NewRecord, on_commit: impl FnOnce() + Send + 'static) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.events.push_back(HeldEvent { record, on_commit: Box::new(on_commit) });
        self.commit_held(&mut held);
        held.events.is_empty()
    }

    /// Tries again to commit the events waiting in memory (called every fraction of a second).
    pub fn retry_held(&self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if !held.events.is_empty() {
            self.commit_held(&mut held);
        }
    }

    /// How many events wait in memory.
    pub fn held_count(&self) -> usize {
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
pub fn record_decision(emitter: &Emitter, decision: Decision) {
    let record = events::decision_record(&emitter.base, &emitter.site, &emitter.device, &decision);
    let (name, camera, id) = (decision.name(), decision.camera.clone(), decision.id);
    emitter.counted.decision(name);
    if !emitter.emit(record, move || log_decision(&decision)) {
        error!(decision = name, %camera, event_id = %id,
            "DECISION NOT RECORDED YET: the outbox refused its event; it waits in memory and is retried");
    }
}

fn log_decision(decision: &Decision) {
    let at = humantime::format_rfc3339_millis(decision.at);
    match &decision.kind {
        DecisionKind::CameraOffline { reason } => {
            warn!(decision = decision.name(), event_id = %decision.id, camera = %decision.camera, %at, reason, "decision")
        }
        DecisionKind::CameraTamper { tamper, onset } => {
            let onset = humantime::format_rfc3339_millis(*onset);
            warn!(decision = decision.name(), event_id = %decision.id, camera = %decision.camera, %at, %onset, tamper = tamper.as_str(), "decision")
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

/// The decision task: takes every decision from the channel and records it ([`record_decision`]) until
/// the shutdown's second phase ([`Shutdown::producers_done`]), then drains what is left and stops.
pub fn start_decision_task(
    decisions: mpsc::Receiver<Decision>,
    emitter: Emitter,
    shutdown: &Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    let shutdown = shutdown.clone();
    std::thread::Builder::new().name("vigil-decisions".into()).spawn(move || {
        loop {
            let decision = match decisions.recv_timeout(Duration::from_millis(200)) {
                Ok(decision) => decision,
                Err(mpsc::RecvTimeoutError::Timeout) if shutdown.are_producers_done() => break,
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tamper's clip starts pre-roll before the condition began, not before the raise (which comes
    /// covered_secs / frozen_secs / moved_secs later): with the defaults a frozen clip started 10 s after
    /// the picture froze and showed none of it. Other decisions keep their clip around their moment.
    #[test]
    fn a_tamper_clip_starts_before_the_onset_and_records_its_thresholds() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[site]\nid = \"h\"\ndevice_id = \"d\"\n[storage]\ndata_dir = \"{}\"\n\
             [evidence]\npre_roll_secs = 4\npost_roll_secs = 3\n[tamper]\nmoved_similarity = 0.3\n\
             [[cameras]]\nid = \"door\"\nname = \"Ward 3 door\"\nrole = \"ward\"\n\
             url = \"rtsp://admin:pa:ss@cam-7:554/live?token=abc\"\n",
            dir.path().display()
        );
        let config = crate::config::parse(std::path::Path::new("t.toml"), &text).unwrap();
        let (decisions, _decisions_rx) = mpsc::channel();
        let (evidence, _evidence_rx) = mpsc::channel();
        let outlet = Outlet::new(&config, "door", Arc::new(Pending::new(dir.path())), decisions, evidence);
        let raised = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_100);
        let frame =
            crate::source::Frame { image: image::RgbImage::new(8, 8), captured: raised, seq: 1, keyframe: true };
        let secs = Duration::from_secs;
        for (tamper, held, thresholds) in [
            (crate::decide::TamperKind::Frozen, 20, vec![("frozen_secs", "20")]),
            (crate::decide::TamperKind::Moved, 15, vec![("moved_secs", "15"), ("moved_similarity", "0.3")]),
            (crate::decide::TamperKind::Covered, 5, vec![("covered_secs", "5")]),
        ] {
            let onset = raised - secs(held);
            let decision = Decision::new("door", raised, DecisionKind::CameraTamper { tamper, onset });
            let request = evidence_request(&decision, &frame, Default::default(), Vec::new(), &outlet);
            assert_eq!(request.onset, Some(onset));
            assert_eq!((request.clip_from, request.clip_to), (onset - secs(4), raised + secs(3)), "{tamper:?}");
            let expected: std::collections::BTreeMap<String, String> =
                thresholds.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            assert_eq!(request.thresholds, expected, "{tamper:?}");
            assert_eq!(request.camera_info.url_redacted, "rtsp://admin:***@cam-7:554/live?token=***");
            assert_eq!(request.camera_info.name.as_deref(), Some("Ward 3 door"));
            assert_eq!(request.camera_info.role, "ward");
        }
        let absent = Decision::new(
            "door",
            raised,
            DecisionKind::SettlementNoFace { transaction_id: "t".into(), claimed_id: "c".into(), faces_seen: 0 },
        );
        let request = evidence_request(&absent, &frame, Default::default(), Vec::new(), &outlet);
        assert_eq!((request.onset, request.clip_from), (None, raised - secs(4)));
        assert_eq!(request.thresholds["match_distance"], "0.6", "f32 settings read as configured");
    }

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
}
