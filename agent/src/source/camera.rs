//! Supervision of one camera: run its pipeline, restart it when it fails, ends or stalls, with
//! exponential backoff (1 s doubling to 30 s, ±20 % jitter), and report the transitions as health
//! changes (offline / online, once per outage however many retries it takes) to the camera's
//! [`HealthSink`]. What to do after each thing a pipeline reports is decided by the pure
//! [`Supervisor`] state machine (tested without GStreamer); this file drives it with real pipelines.
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
//! A watchdog thread ([`Watchdog`]) raises the outage when no frame has come for
//! `stall_secs` + `watchdog_margin`, whatever the supervisor is doing; the two share one announced
//! state ([`Liveness`]), so an outage is reported once.
//!
//! Recording failures degrade instead of taking the camera down: an error from the recording branch
//! (a full disk, an unwritable directory) reports one recording stop, restarts the pipeline without
//! that branch (analysis continues after a pause of about a second), and tries recording again every
//! `recording_retry`, or as soon as 32 MiB more are free on the recordings' file system than when it
//! failed (a full disk cleared: evidence clips need the video from then on); its resumption is reported
//! once a segment has been written to for `RECORDING_PROBATION` without error. No outage is reported
//! for any of it.
//!
//! Bound on stopping: after `shutdown` is set, [`CameraWorker::run`] returns within about 8.5 s with
//! the default deadlines, whatever the pipeline does: a 0.2 s bus poll (or a start in progress, at
//! most `state_change_timeout`, 3 s), then `eos_timeout` + `teardown_timeout` (3 s + 5 s), then a
//! quarter second for the watchdog. A stuck pipeline is left behind.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use tracing::{debug, error, info, warn};

use super::SourceError;
use super::bounded;
use super::decode::DecodeControl;
use super::health::{HealthChange, HealthSink, Reporter};
use super::liveness::{Liveness, Watchdog};
use super::pipeline::{self, PipelineOptions, PipelineStats};
use super::recorder;
use super::settings::StreamSettings;
use super::slot::FrameSlot;
use super::supervisor::{Announcement, Event, Next, Policy, Step, Supervisor};
pub use super::supervisor::{Backoff, RECORDING_PROBATION, RetryReason};
use crate::clock::{Clock, SystemClock};

/// Stuck pipelines of one camera from which an abandoned teardown is logged at ERROR (restart advised).
const STUCK_ALARM: u64 = 5;

/// Counters of a camera, readable while it runs.
#[derive(Default)]
pub struct CameraCounters {
    /// Pipeline (re)starts, including the first.
    pub starts: AtomicU64,
    /// Restarts after a failure, end or stall.
    pub restarts: AtomicU64,
    /// The same restarts by reason, indexed as [`RetryReason::LABELS`].
    pub restarts_by_reason: [AtomicU64; 4],
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
    /// Turns of the supervisor's loops (watching the bus, waiting to retry): standing still means the
    /// supervisor is stuck (the systemd watchdog watches it).
    pub progress: Arc<AtomicU64>,
}

impl CameraCounters {
    /// Helper threads still blocked in an abandoned state change (each holds a leaked pipeline).
    pub fn stuck(&self) -> u64 {
        let abandoned =
            self.abandoned_teardowns.load(Ordering::Relaxed) + self.abandoned_starts.load(Ordering::Relaxed);
        abandoned.saturating_sub(self.abandoned_finished_late.load(Ordering::Relaxed))
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
    /// Stamps outages and frames, measures stalls and delays.
    pub clock: Arc<dyn Clock>,
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
            clock: Arc::new(SystemClock),
        }
    }
}

/// Everything a camera worker needs.
pub struct CameraWorker {
    pub camera: StreamSettings,
    /// `<recordings_dir>/<camera id>`, or None to not record.
    pub recordings: Option<PathBuf>,
    pub segment: Duration,
    pub max_recording_bytes: u64,
    pub slot: Arc<FrameSlot>,
    /// Where outages and recording failures are reported (`decide::camera` makes decisions of them).
    pub health: Arc<dyn HealthSink>,
    pub shutdown: Arc<AtomicBool>,
    /// Set to stop this worker alone (the camera's settings changed: its owner starts a new one);
    /// `None` when only `shutdown` stops it.
    pub restart: Option<Arc<AtomicBool>>,
    pub counters: Arc<CameraCounters>,
    pub supervision: Supervision,
    /// The decode mode the camera's analysis asks for; outlives pipeline restarts.
    pub decode: Arc<DecodeControl>,
}

impl CameraWorker {
    /// The agent stops, or this worker is to make way for a new one.
    fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed) || self.restart.as_ref().is_some_and(|r| r.load(Ordering::Relaxed))
    }

    /// Runs until `shutdown` is set. Call on a dedicated thread.
    pub fn run(self) {
        let clock = self.supervision.clock.clone();
        let liveness = Arc::new(Liveness::new(&self.camera.id, self.health.clone(), clock.clone()));
        let done = Arc::new(AtomicBool::new(false));
        let watchdog = Watchdog {
            liveness: liveness.clone(),
            slot: self.slot.clone(),
            counters: self.counters.clone(),
            silence: Duration::from_secs(self.camera.stall_secs) + self.supervision.watchdog_margin,
            tick: Duration::from_millis(250),
            clock,
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
        let policy = Policy {
            backoff: self.supervision.backoff,
            stall: Duration::from_secs(self.camera.stall_secs),
            loop_file: self.camera.loop_file,
            record: self.recordings.is_some(),
            recording_retry: self.supervision.recording_retry,
        };
        let mut supervisor =
            Supervisor::new(&self.camera.id, policy, self.supervision.clock.clone(), self.counters.clone());
        loop {
            self.counters.progress.fetch_add(1, Ordering::Relaxed);
            if self.stopping() {
                return;
            }
            match self.run_once(&mut supervisor, liveness) {
                Next::Shutdown => return,
                Next::Restart | Next::Watch => continue,
                Next::Retry { delay } => {
                    if !self.sleep(delay) {
                        return;
                    }
                }
            }
        }
    }

    /// Sleeps, waking early on shutdown; false if shutting down.
    fn sleep(&self, total: Duration) -> bool {
        let until = Instant::now() + total;
        while Instant::now() < until {
            self.counters.progress.fetch_add(1, Ordering::Relaxed);
            if self.stopping() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100).min(until - Instant::now()));
        }
        !self.stopping()
    }

    /// One pipeline run: build, start, watch until the supervisor wants something else, stop.
    fn run_once(&self, supervisor: &mut Supervisor, liveness: &Liveness) -> Next {
        let record = supervisor.begin_run();
        let stats = Arc::new(PipelineStats::default());
        let options = PipelineOptions {
            recordings: self.recordings.clone().filter(|_| record),
            segment: self.segment,
            clock: self.supervision.clock.clone(),
            decode: self.decode.clone(),
        };
        let pipeline = match pipeline::build(&self.camera, &options, self.slot.clone(), stats.clone()) {
            Ok(p) => p,
            Err(SourceError::Recording(reason)) if record => {
                let step = supervisor.on(Event::RecordingFailed { reason, free: self.free_bytes() });
                return self.announce(liveness, step);
            }
            Err(e) => return self.announce(liveness, supervisor.on(Event::WouldNotStart(e.to_string()))),
        };
        if let Some(hook) = &self.supervision.on_pipeline {
            hook(&pipeline);
        }
        let step = match self.start(&pipeline) {
            Ok(()) => self.watch(&pipeline, &stats, supervisor, liveness),
            Err(reason) => supervisor.on(Event::WouldNotStart(reason)),
        };
        // From here the old pipeline's frames are ignored: an announced outage ends only with new ones.
        stats.retire();
        // Announced before the teardown, which may take until its deadline.
        let next = self.announce(liveness, step);
        self.stop(pipeline, next == Next::Shutdown && record);
        self.counters.frames.fetch_add(stats.uncounted(), Ordering::Relaxed);
        next
    }

    /// Makes a step's announcements; returns what to do next.
    fn announce(&self, liveness: &Liveness, step: Step) -> Next {
        for announcement in step.announce {
            match announcement {
                Announcement::Offline(reason) => {
                    if !liveness.offline(reason.clone(), self.slot.delivered(), Reporter::Supervisor) {
                        debug!(camera = %self.camera.id, %reason, "camera still offline");
                    }
                }
                Announcement::Online => {
                    if !liveness.online(self.slot.delivered()) {
                        info!(camera = %self.camera.id, url = %pipeline::display_url(&self.camera), "camera streaming");
                    }
                }
                Announcement::RecordingStopped { reason } => {
                    error!(camera = %self.camera.id, %reason, retry_secs = self.supervision.recording_retry.as_secs(),
                        "RECORDING STOPPED: the camera is analysed but not recorded (no clips for evidence) until \
                         recording works again");
                    liveness.report(HealthChange::RecordingStopped { reason });
                }
                Announcement::RecordingResumed { stopped } => {
                    liveness.report(HealthChange::RecordingResumed { stopped });
                }
            }
        }
        step.next
    }

    /// Free bytes on the recordings' file system, if recording is configured and they can be read.
    fn free_bytes(&self) -> Option<u64> {
        self.recordings.as_ref().and_then(|dir| recorder::free_bytes(dir).ok())
    }

    /// `set_state(Playing)` within `state_change_timeout`.
    fn start(&self, pipeline: &gst::Pipeline) -> Result<(), String> {
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
                Err(pipeline::scrub(&detail, &self.camera))
            }
            None => {
                self.counters.abandoned_starts.fetch_add(1, Ordering::Relaxed);
                warn!(camera = %self.camera.id, deadline_secs = deadline.as_secs_f64(),
                    stuck = self.counters.stuck(), "pipeline did not start in time: given up on");
                Err(format!("no answer within {} s", deadline.as_secs_f64()))
            }
        }
    }

    /// Feeds the pipeline's bus messages and a look at its frames (every 0.2 s at most) to the
    /// supervisor until it wants something other than watching; returns that step, unannounced.
    fn watch(
        &self,
        pipeline: &gst::Pipeline,
        stats: &PipelineStats,
        supervisor: &mut Supervisor,
        liveness: &Liveness,
    ) -> Step {
        let Some(bus) = pipeline.bus() else { return supervisor.on(Event::WouldNotStart("no bus".into())) };
        let record = supervisor.recording();
        loop {
            self.counters.progress.fetch_add(1, Ordering::Relaxed);
            self.counters.frames.fetch_add(stats.uncounted(), Ordering::Relaxed);
            if self.stopping() {
                return supervisor.on(Event::Shutdown);
            }
            let event = bus.timed_pop(gst::ClockTime::from_mseconds(200)).and_then(|msg| {
                use gst::MessageView;
                match msg.view() {
                    MessageView::Error(err) => {
                        let text = match err.debug() {
                            Some(debug) => format!("{} ({debug})", err.error()),
                            None => err.error().to_string(),
                        };
                        let text = pipeline::scrub(&text, &self.camera);
                        Some(if record && pipeline::from_recording_branch(pipeline, &msg) {
                            Event::RecordingFailed { reason: text, free: self.free_bytes() }
                        } else {
                            Event::Error(text)
                        })
                    }
                    MessageView::Eos(_) => Some(Event::Eos),
                    MessageView::Element(e) => match e.structure().map(|s| s.name()) {
                        Some(name) if name == "splitmuxsink-fragment-closed" => {
                            self.prune();
                            None
                        }
                        Some(name) if name == "splitmuxsink-fragment-opened" => Some(Event::SegmentOpened),
                        _ => None,
                    },
                    _ => None,
                }
            });
            for event in event.into_iter().chain([Event::Tick {
                frames: stats.frames.load(Ordering::Relaxed),
                last_frame: stats.last_frame(),
                free: if supervisor.room_check_due() { self.free_bytes() } else { None },
            }]) {
                let step = supervisor.on(event);
                if step.next != Next::Watch {
                    return step;
                }
                self.announce(liveness, step);
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
