//! Supervision of one camera: run its pipeline, restart it when it fails, ends or stalls, with
//! exponential backoff (1 s doubling to 30 s, ±20 % jitter), and turn the transitions into
//! `camera_offline` / `camera_online` decisions — once per outage, however many retries it takes.
//!
//! Nothing here waits without a deadline. GStreamer state changes can block for good against a
//! streaming thread that does not let go (rtspsrc during a reconnect did, about once in 200–300
//! reconnects), so starting and stopping a pipeline run on helper threads ([`bounded::within`]): a
//! start that has not returned after `state_change_timeout`, or a stop (end-of-stream included) after
//! `eos_timeout` + `teardown_timeout`, is abandoned — the old pipeline is left behind on purpose,
//! counted in [`CameraCounters`] and logged with the camera id — and a fresh pipeline is started.
//! The hang seen (GStreamer 1.22): rtspsrc's own task, stopping its rtpbin after a stream ended, waits
//! for a jitterbuffer pad's lock whose loop never wakes, and `set_state(Null)` waits for rtspsrc.
//! Such a pipeline stays stuck until the process exits, with its threads; from `STUCK_ALARM` (5) of
//! them on, each new one is logged at ERROR, advising a restart.
//! A watchdog thread ([`liveness::Watchdog`]) raises `camera_offline` when no frame has come for
//! `stall_secs` + `watchdog_margin`, whatever the supervisor is doing; the two share one announced
//! state ([`Liveness`]), so an outage is reported once.
//!
//! Recording failures degrade instead of taking the camera down: an error from the recording branch
//! (a full disk, an unwritable directory) sends one `recording_stopped`, restarts the pipeline without
//! that branch (analysis continues after a pause of about a second), and tries recording again every
//! `recording_retry`, or as soon as 32 MiB more are free on the recordings' file system than when it
//! failed (a full disk cleared: evidence clips need the video from then on); `recording_resumed` follows once a segment has been written to for
//! `RECORDING_PROBATION` without error. No `camera_offline` is sent for any of it.
//!
//! Bound on stopping: after `shutdown` is set, [`CameraWorker::run`] returns within about 8.5 s with
//! the default deadlines, whatever the pipeline does: a 0.2 s bus poll (or a start in progress, at
//! most `state_change_timeout`, 3 s), then `eos_timeout` + `teardown_timeout` (3 s + 5 s), then a
//! quarter second for the watchdog. A stuck pipeline is left behind.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gstreamer as gst;
use gstreamer::prelude::*;
use tracing::{debug, error, info, warn};

use super::SourceError;
use super::bounded;
use super::liveness::{Liveness, Reporter, Watchdog};
use super::pipeline::{self, PipelineOptions, PipelineStats};
use super::recorder;
use super::slot::FrameSlot;
use crate::config::Camera;
use crate::decide::{Decision, DecisionKind};

/// Stuck pipelines of one camera from which an abandoned teardown is logged at ERROR (restart advised).
const STUCK_ALARM: u64 = 5;

/// A restarted recording counts as working once a segment has been open this long without error.
pub const RECORDING_PROBATION: Duration = Duration::from_secs(3);

/// Why a pipeline was restarted.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryReason {
    /// GStreamer reported an error (connection refused, decode error, …).
    Error(String),
    /// The stream ended.
    Eos,
    /// No frame for `stall_secs`.
    Timeout(Duration),
    /// The pipeline would not start.
    StateChange(String),
}

impl std::fmt::Display for RetryReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetryReason::Error(e) => write!(f, "error: {e}"),
            RetryReason::Eos => f.write_str("end of stream"),
            RetryReason::Timeout(d) => write!(f, "no frame for {} s", d.as_secs()),
            RetryReason::StateChange(e) => write!(f, "would not start: {e}"),
        }
    }
}

/// Counters of a camera, readable while it runs.
#[derive(Default)]
pub struct CameraCounters {
    /// Pipeline (re)starts, including the first.
    pub starts: AtomicU64,
    /// Restarts after a failure, end or stall.
    pub restarts: AtomicU64,
    /// Frames decoded over all pipeline runs.
    pub frames: AtomicU64,
    /// Segments deleted to keep the recording ring within budget.
    pub segments_evicted: AtomicU64,
    /// Pipelines that did not stop within the deadline and were left behind (leaked).
    pub abandoned_teardowns: AtomicU64,
    /// Pipelines that did not start within the deadline and were given up on.
    pub abandoned_starts: AtomicU64,
    /// Abandoned state changes that returned after all (their threads are gone).
    pub abandoned_finished_late: AtomicU64,
    /// Outages raised by the watchdog because the supervisor had not reported them.
    pub watchdog_offline: AtomicU64,
    /// Recording-branch failures (each restarts the pipeline without recording).
    pub recording_failures: AtomicU64,
}

impl CameraCounters {
    /// Helper threads still blocked in an abandoned state change (each holds a leaked pipeline).
    pub fn stuck(&self) -> u64 {
        let abandoned =
            self.abandoned_teardowns.load(Ordering::Relaxed) + self.abandoned_starts.load(Ordering::Relaxed);
        abandoned.saturating_sub(self.abandoned_finished_late.load(Ordering::Relaxed))
    }
}

/// Retry delays: `initial`, doubling up to `max`, reset once frames flow; each delay ±20 %.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(30) }
    }
}

impl Backoff {
    fn next(&self, current: Duration) -> Duration {
        (current * 2).min(self.max)
    }

    /// `delay` scaled by a factor in [0.8, 1.2), so cameras that failed together (a switch restarted)
    /// do not all reconnect in the same instant.
    fn jitter(delay: Duration, state: &mut u64) -> Duration {
        // xorshift64: spreading retries needs no cryptographic randomness.
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let unit = (*state >> 11) as f64 / (1u64 << 53) as f64;
        delay.mul_f64(0.8 + 0.4 * unit)
    }
}

/// Called with each new pipeline before it starts: a seam for tests (block a streaming thread to
/// make a teardown hang) and diagnostics.
pub type PipelineHook = Arc<dyn Fn(&gst::Pipeline) + Send + Sync>;

/// How a camera is supervised: retry delays and the deadlines of every wait.
#[derive(Clone)]
pub struct Supervision {
    pub backoff: Backoff,
    /// Longest wait for `set_state(Playing)` to return.
    pub state_change_timeout: Duration,
    /// Longest wait, on shutdown, for the end-of-stream that finalises the open segment.
    pub eos_timeout: Duration,
    /// Longest wait for `set_state(Null)`; past it the pipeline is abandoned.
    pub teardown_timeout: Duration,
    /// How long after a recording failure recording is tried again.
    pub recording_retry: Duration,
    /// The watchdog raises an outage after `stall_secs` + this without a frame (the supervisor, when
    /// it works, reports a stall at `stall_secs`).
    pub watchdog_margin: Duration,
    pub on_pipeline: Option<PipelineHook>,
}

impl Default for Supervision {
    fn default() -> Self {
        Supervision {
            backoff: Backoff::default(),
            state_change_timeout: Duration::from_secs(3),
            eos_timeout: Duration::from_secs(3),
            teardown_timeout: Duration::from_secs(5),
            recording_retry: Duration::from_secs(60),
            watchdog_margin: Duration::from_secs(5),
            on_pipeline: None,
        }
    }
}

/// Everything a camera worker needs.
pub struct CameraWorker {
    pub camera: Camera,
    /// `<recordings_dir>/<camera id>`, or None to not record.
    pub recordings: Option<PathBuf>,
    pub segment: Duration,
    pub max_recording_bytes: u64,
    pub slot: Arc<FrameSlot>,
    pub decisions: Sender<Decision>,
    pub shutdown: Arc<AtomicBool>,
    pub counters: Arc<CameraCounters>,
    pub supervision: Supervision,
}

enum Outcome {
    Shutdown,
    /// Restart at once, without an outage: a looping file ended, or recording stopped or is retried.
    Restart,
    /// Restart after the backoff; the outage has been announced.
    Retry,
}

/// What a pipeline run ended with, before the supervisor acts on it.
enum Ended {
    Shutdown,
    Failed(RetryReason),
    RecordingFailed(String),
    RetryRecording,
}

/// Free space that must come back on the recordings' file system, over what it had when recording
/// failed, for recording to be tried again before `recording_retry` (a full disk that was cleared).
const ROOM_CAME_BACK: u64 = 32 << 20;

/// Recording's state when recording is configured.
struct Recording {
    configured: bool,
    /// Set while recording is stopped by a failure: since when, why, when to try again.
    stopped: Option<(Instant, String, Instant)>,
    /// The recordings' directory, and its free bytes when recording last failed with when they were
    /// last compared (once a second).
    room: Option<(PathBuf, u64, Instant)>,
}

impl Recording {
    /// Whether the next pipeline records.
    fn wanted(&self) -> bool {
        self.configured && self.stopped.as_ref().is_none_or(|(_, _, retry_at)| Instant::now() >= *retry_at)
    }

    /// Whether to try recording again now: its time has come, or the disk has room again (evidence
    /// clips need the video from the moment there is room, not up to `recording_retry` later).
    fn retry_due(&mut self) -> bool {
        let Some((_, _, retry_at)) = &mut self.stopped else { return false };
        if Instant::now() >= *retry_at {
            return true;
        }
        if let Some((dir, free_then, checked)) = &mut self.room
            && checked.elapsed() >= Duration::from_secs(1)
        {
            *checked = Instant::now();
            if recorder::free_bytes(dir).is_ok_and(|free| free >= free_then.saturating_add(ROOM_CAME_BACK)) {
                *retry_at = Instant::now();
                return true;
            }
        }
        false
    }
}

impl CameraWorker {
    /// Runs until `shutdown` is set. Call on a dedicated thread.
    pub fn run(self) {
        let liveness = Arc::new(Liveness::new(&self.camera.id, self.decisions.clone()));
        let done = Arc::new(AtomicBool::new(false));
        let watchdog = Watchdog {
            liveness: liveness.clone(),
            slot: self.slot.clone(),
            counters: self.counters.clone(),
            silence: Duration::from_secs(self.camera.stall_secs) + self.supervision.watchdog_margin,
            tick: Duration::from_millis(250),
            stop: self.shutdown.clone(),
            done: done.clone(),
        };
        let watchdog = std::thread::Builder::new().name(format!("wd-{}", self.camera.id)).spawn(move || watchdog.run());
        if let Err(e) = &watchdog {
            error!(camera = %self.camera.id, error = %e, "cannot start the camera watchdog; the supervisor alone reports outages");
        }
        self.supervise(&liveness);
        done.store(true, Ordering::Relaxed);
        if let Ok(watchdog) = watchdog {
            bounded::join_within(vec![watchdog], Instant::now() + Duration::from_millis(500));
        }
    }

    fn supervise(&self, liveness: &Liveness) {
        let backoff_config = self.supervision.backoff;
        let mut backoff = backoff_config.initial;
        let mut recording = Recording { configured: self.recordings.is_some(), stopped: None, room: None };
        let mut seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1;
        loop {
            if self.shutdown.load(Ordering::Relaxed) {
                return;
            }
            self.counters.starts.fetch_add(1, Ordering::Relaxed);
            match self.run_once(liveness, &mut recording, &mut backoff) {
                Outcome::Shutdown => return,
                Outcome::Restart => continue,
                Outcome::Retry => {
                    self.counters.restarts.fetch_add(1, Ordering::Relaxed);
                    if !self.sleep(Backoff::jitter(backoff, &mut seed)) {
                        return;
                    }
                    backoff = backoff_config.next(backoff);
                }
            }
        }
    }

    /// Sleeps, waking early on shutdown; false if shutting down.
    fn sleep(&self, total: Duration) -> bool {
        let until = Instant::now() + total;
        while Instant::now() < until {
            if self.shutdown.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100).min(until - Instant::now()));
        }
        !self.shutdown.load(Ordering::Relaxed)
    }

    fn run_once(&self, liveness: &Liveness, recording: &mut Recording, backoff: &mut Duration) -> Outcome {
        let stats = Arc::new(PipelineStats::default());
        let record = recording.wanted();
        let options = PipelineOptions { recordings: self.recordings.clone().filter(|_| record), segment: self.segment };
        let pipeline = match pipeline::build(&self.camera, &options, self.slot.clone(), stats.clone()) {
            Ok(p) => p,
            Err(SourceError::Recording(e)) if record => {
                self.recording_failed(liveness, recording, e);
                return Outcome::Restart;
            }
            Err(e) => {
                self.announce(liveness, &RetryReason::StateChange(e.to_string()));
                return Outcome::Retry;
            }
        };
        if let Some(hook) = &self.supervision.on_pipeline {
            hook(&pipeline);
        }
        let ended = match self.start(&pipeline) {
            Ok(()) => self.watch(&pipeline, &stats, liveness, record, recording, backoff),
            Err(reason) => Ended::Failed(reason),
        };
        // From here the old pipeline's frames are ignored: an announced outage ends only with new ones.
        stats.retire();
        let outcome = match ended {
            Ended::Shutdown => Outcome::Shutdown,
            Ended::Failed(RetryReason::Eos) if self.camera.loop_file => {
                debug!(camera = %self.camera.id, "file ended; looping");
                Outcome::Restart
            }
            Ended::Failed(reason) => {
                // Announced before the teardown, which may take until its deadline.
                self.announce(liveness, &reason);
                Outcome::Retry
            }
            Ended::RecordingFailed(reason) => {
                self.recording_failed(liveness, recording, reason);
                Outcome::Restart
            }
            Ended::RetryRecording => {
                info!(camera = %self.camera.id, "trying to record again");
                Outcome::Restart
            }
        };
        self.stop(pipeline, matches!(outcome, Outcome::Shutdown) && record);
        self.counters.frames.fetch_add(stats.frames.load(Ordering::Relaxed), Ordering::Relaxed);
        outcome
    }

    fn announce(&self, liveness: &Liveness, reason: &RetryReason) {
        if !liveness.offline(&reason.to_string(), self.slot.delivered(), Reporter::Supervisor) {
            debug!(camera = %self.camera.id, %reason, "camera still offline");
        }
    }

    /// Recording stops (announced once per episode); the pipeline restarts without it.
    fn recording_failed(&self, liveness: &Liveness, recording: &mut Recording, reason: String) {
        self.counters.recording_failures.fetch_add(1, Ordering::Relaxed);
        let retry_at = Instant::now() + self.supervision.recording_retry;
        recording.room = self
            .recordings
            .as_ref()
            .and_then(|dir| recorder::free_bytes(dir).ok().map(|free| (dir.clone(), free, Instant::now())));
        match &mut recording.stopped {
            Some((_, _, next)) => {
                *next = retry_at;
                debug!(camera = %self.camera.id, %reason, "recording still failing");
            }
            None => {
                error!(camera = %self.camera.id, %reason, retry_secs = self.supervision.recording_retry.as_secs(),
                    "RECORDING STOPPED: the camera is analysed but not recorded (no clips for evidence) until \
                     recording works again");
                liveness.send(DecisionKind::RecordingStopped { reason: reason.clone() });
                recording.stopped = Some((Instant::now(), reason, retry_at));
            }
        }
    }

    /// `set_state(Playing)` within `state_change_timeout`.
    fn start(&self, pipeline: &gst::Pipeline) -> Result<(), RetryReason> {
        let deadline = self.supervision.state_change_timeout;
        let (p, counters, camera) = (pipeline.clone(), self.counters.clone(), self.camera.id.clone());
        let started = bounded::within(
            &format!("start-{}", self.camera.id),
            deadline,
            move || p.set_state(gst::State::Playing).map(|_| ()),
            move |took| {
                counters.abandoned_finished_late.fetch_add(1, Ordering::Relaxed);
                warn!(camera, took_secs = took.as_secs_f64(), "an abandoned pipeline start returned after all");
            },
        );
        match started {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => {
                let detail = first_error(pipeline).unwrap_or_else(|| e.to_string());
                Err(RetryReason::StateChange(pipeline::scrub(&detail, &self.camera)))
            }
            None => {
                self.counters.abandoned_starts.fetch_add(1, Ordering::Relaxed);
                warn!(camera = %self.camera.id, deadline_secs = deadline.as_secs_f64(),
                    stuck = self.counters.stuck(), "pipeline did not start in time: given up on");
                Err(RetryReason::StateChange(format!("no answer within {} s", deadline.as_secs_f64())))
            }
        }
    }

    fn watch(
        &self,
        pipeline: &gst::Pipeline,
        stats: &PipelineStats,
        liveness: &Liveness,
        record: bool,
        recording: &mut Recording,
        backoff: &mut Duration,
    ) -> Ended {
        let Some(bus) = pipeline.bus() else { return Ended::Failed(RetryReason::StateChange("no bus".into())) };
        let stall = Duration::from_secs(self.camera.stall_secs);
        let started = Instant::now();
        let mut flowing = false;
        // First segment opened in this run, while recording is being retried.
        let mut probation: Option<Instant> = None;
        loop {
            if self.shutdown.load(Ordering::Relaxed) {
                return Ended::Shutdown;
            }
            if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) {
                use gst::MessageView;
                match msg.view() {
                    MessageView::Error(err) => {
                        let text = match err.debug() {
                            Some(debug) => format!("{} ({debug})", err.error()),
                            None => err.error().to_string(),
                        };
                        let text = pipeline::scrub(&text, &self.camera);
                        if record && pipeline::from_recording_branch(pipeline, &msg) {
                            return Ended::RecordingFailed(text);
                        }
                        return Ended::Failed(RetryReason::Error(text));
                    }
                    MessageView::Eos(_) => return Ended::Failed(RetryReason::Eos),
                    MessageView::Element(e) => match e.structure().map(|s| s.name()) {
                        Some(name) if name == "splitmuxsink-fragment-closed" => self.prune(),
                        Some(name) if name == "splitmuxsink-fragment-opened" && recording.stopped.is_some() => {
                            probation.get_or_insert_with(Instant::now);
                        }
                        _ => {}
                    },
                    _ => {}
                }
            }
            if !record && recording.retry_due() {
                return Ended::RetryRecording;
            }
            if let Some(opened) = probation
                && opened.elapsed() >= RECORDING_PROBATION
                && let Some((since, _, _)) = recording.stopped.take()
            {
                probation = None;
                info!(camera = %self.camera.id, stopped_secs = since.elapsed().as_secs(), "recording resumed");
                liveness.send(DecisionKind::RecordingResumed { stopped_secs: since.elapsed().as_secs() });
            }
            let frames = stats.frames.load(Ordering::Relaxed);
            if frames > 0 && !flowing {
                flowing = true;
                *backoff = self.supervision.backoff.initial;
                if !liveness.online(self.slot.delivered()) {
                    info!(camera = %self.camera.id, url = %pipeline::display_url(&self.camera), "camera streaming");
                }
            }
            let last_ms = stats.last_frame_ms.load(Ordering::Relaxed);
            let silent_for = if last_ms == 0 {
                started.elapsed()
            } else {
                let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
                // Frame times come from the stream; wall time of receipt is bounded below by them.
                Duration::from_millis(now_ms.saturating_sub(last_ms)).min(started.elapsed())
            };
            if silent_for > stall {
                return Ended::Failed(RetryReason::Timeout(stall));
            }
        }
    }

    /// Stops the pipeline on a helper thread, within `teardown_timeout` (plus `eos_timeout` when
    /// `graceful`: an end-of-stream first lets the open segment be finalised). A pipeline that does
    /// not stop in time is left behind.
    fn stop(&self, pipeline: gst::Pipeline, graceful: bool) {
        let eos = graceful.then_some(self.supervision.eos_timeout);
        let deadline = self.supervision.teardown_timeout + eos.unwrap_or_default();
        let (counters, camera) = (self.counters.clone(), self.camera.id.clone());
        let stopped = bounded::within(
            &format!("stop-{}", self.camera.id),
            deadline,
            move || {
                if let Some(wait) = eos {
                    pipeline.send_event(gst::event::Eos::new());
                    if let Some(bus) = pipeline.bus() {
                        let _ = bus.timed_pop_filtered(
                            gst::ClockTime::from_nseconds(wait.as_nanos() as u64),
                            &[gst::MessageType::Eos, gst::MessageType::Error],
                        );
                    }
                }
                let _ = pipeline.set_state(gst::State::Null);
            },
            move |took| {
                counters.abandoned_finished_late.fetch_add(1, Ordering::Relaxed);
                warn!(camera, took_secs = took.as_secs_f64(), "an abandoned pipeline stopped after all");
            },
        );
        if stopped.is_none() {
            let total = self.counters.abandoned_teardowns.fetch_add(1, Ordering::Relaxed) + 1;
            let stuck = self.counters.stuck();
            if stuck >= STUCK_ALARM {
                // Each holds a dozen threads and its buffers until the process exits.
                error!(camera = %self.camera.id, deadline_secs = deadline.as_secs_f64(), abandoned = total, stuck,
                    "pipeline did not stop in time: left behind and replaced; this many stuck pipelines \
                     hold threads and memory, restart the agent to free them");
            } else {
                warn!(camera = %self.camera.id, deadline_secs = deadline.as_secs_f64(), abandoned = total, stuck,
                    "pipeline did not stop in time: left behind (leaked) and replaced by a fresh one");
            }
        }
        self.prune();
    }

    fn prune(&self) {
        let Some(dir) = &self.recordings else { return };
        match recorder::prune(dir, self.max_recording_bytes) {
            Ok(deleted) if !deleted.is_empty() => {
                self.counters.segments_evicted.fetch_add(deleted.len() as u64, Ordering::Relaxed);
                debug!(camera = %self.camera.id, evicted = deleted.len(), "recording ring pruned");
            }
            Ok(_) => {}
            Err(e) => {
                warn!(camera = %self.camera.id, error = %e, dir = %dir.display(), "cannot prune the recording ring")
            }
        }
    }
}

/// The first error message waiting on the bus, if any (why a state change failed).
fn first_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    let msg = bus.timed_pop_filtered(gst::ClockTime::from_mseconds(100), &[gst::MessageType::Error])?;
    match msg.view() {
        gst::MessageView::Error(err) => Some(err.error().to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_bounded_jitter() {
        let b = Backoff { initial: Duration::from_millis(10), max: Duration::from_millis(35) };
        let steps: Vec<_> = std::iter::successors(Some(b.initial), |d| Some(b.next(*d))).take(4).collect();
        assert_eq!(steps, [10, 20, 35, 35].map(Duration::from_millis));
        let mut seed = 42;
        let jittered: Vec<Duration> = (0..200).map(|_| Backoff::jitter(Duration::from_secs(1), &mut seed)).collect();
        assert!(jittered.iter().all(|d| (Duration::from_millis(800)..Duration::from_millis(1200)).contains(d)));
        assert!(
            jittered.iter().any(|d| *d < Duration::from_millis(900))
                && jittered.iter().any(|d| *d > Duration::from_millis(1100))
        );
    }
}
