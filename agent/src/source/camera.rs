//! Supervision of one camera: run its pipeline, restart it when it fails, ends or stalls, with
//! exponential backoff (1 s doubling to 30 s), and turn the transitions into `camera_offline` /
//! `camera_online` decisions — once per outage, however many retries it takes.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gstreamer as gst;
use gstreamer::prelude::*;
use tracing::{debug, info, warn};

use super::pipeline::{self, PipelineOptions, PipelineStats};
use super::recorder;
use super::slot::FrameSlot;
use crate::config::Camera;
use crate::decide::{Decision, DecisionKind};

const MAX_BACKOFF: Duration = Duration::from_secs(30);

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
}

enum Outcome {
    Shutdown,
    Retry(RetryReason),
}

impl CameraWorker {
    /// Runs until `shutdown` is set. Call on a dedicated thread.
    pub fn run(self) {
        let mut backoff = Duration::from_secs(1);
        let mut offline_announced = false;
        let mut online = false;
        loop {
            if self.shutdown.load(Ordering::Relaxed) {
                return;
            }
            self.counters.starts.fetch_add(1, Ordering::Relaxed);
            match self.run_once(&mut online, &mut offline_announced, &mut backoff) {
                Outcome::Shutdown => return,
                Outcome::Retry(RetryReason::Eos) if self.camera.loop_file => {
                    debug!(camera = %self.camera.id, "file ended; looping");
                    continue;
                }
                Outcome::Retry(reason) => {
                    self.counters.restarts.fetch_add(1, Ordering::Relaxed);
                    if online || !offline_announced {
                        warn!(camera = %self.camera.id, %reason, "camera offline");
                        self.emit(DecisionKind::CameraOffline { reason: reason.to_string() });
                        offline_announced = true;
                        online = false;
                    } else {
                        debug!(camera = %self.camera.id, %reason, retry_in = ?backoff, "camera still offline");
                    }
                    if !self.sleep(backoff) {
                        return;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn emit(&self, kind: DecisionKind) {
        let _ = self.decisions.send(Decision::new(&self.camera.id, SystemTime::now(), kind));
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

    fn run_once(&self, online: &mut bool, offline_announced: &mut bool, backoff: &mut Duration) -> Outcome {
        let stats = Arc::new(PipelineStats::default());
        let options = PipelineOptions { recordings: self.recordings.clone(), segment: self.segment };
        let pipeline = match pipeline::build(&self.camera, &options, self.slot.clone(), stats.clone()) {
            Ok(p) => p,
            Err(e) => return Outcome::Retry(RetryReason::StateChange(e.to_string())),
        };
        let outcome = self.watch(&pipeline, &stats, online, offline_announced, backoff);
        self.stop(&pipeline, matches!(outcome, Outcome::Shutdown));
        self.counters.frames.fetch_add(stats.frames.load(Ordering::Relaxed), Ordering::Relaxed);
        outcome
    }

    fn watch(
        &self,
        pipeline: &gst::Pipeline,
        stats: &PipelineStats,
        online: &mut bool,
        offline_announced: &mut bool,
        backoff: &mut Duration,
    ) -> Outcome {
        if let Err(e) = pipeline.set_state(gst::State::Playing) {
            let detail = first_error(pipeline).unwrap_or_else(|| e.to_string());
            return Outcome::Retry(RetryReason::StateChange(pipeline::scrub(&detail, &self.camera)));
        }
        let Some(bus) = pipeline.bus() else { return Outcome::Retry(RetryReason::StateChange("no bus".into())) };
        let stall = Duration::from_secs(self.camera.stall_secs);
        let started = Instant::now();
        loop {
            if self.shutdown.load(Ordering::Relaxed) {
                return Outcome::Shutdown;
            }
            if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) {
                use gst::MessageView;
                match msg.view() {
                    MessageView::Error(err) => {
                        let text = match err.debug() {
                            Some(debug) => format!("{} ({debug})", err.error()),
                            None => err.error().to_string(),
                        };
                        return Outcome::Retry(RetryReason::Error(pipeline::scrub(&text, &self.camera)));
                    }
                    MessageView::Eos(_) => return Outcome::Retry(RetryReason::Eos),
                    MessageView::Element(e)
                        if e.structure().is_some_and(|s| s.name() == "splitmuxsink-fragment-closed") =>
                    {
                        self.prune();
                    }
                    _ => {}
                }
            }
            let frames = stats.frames.load(Ordering::Relaxed);
            if frames > 0 && !*online {
                *online = true;
                *backoff = Duration::from_secs(1);
                if *offline_announced {
                    info!(camera = %self.camera.id, "camera online");
                    self.emit(DecisionKind::CameraOnline);
                    *offline_announced = false;
                } else {
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
                return Outcome::Retry(RetryReason::Timeout(stall));
            }
        }
    }

    /// Stops the pipeline. On shutdown, an end-of-stream first lets the open segment be finalised.
    fn stop(&self, pipeline: &gst::Pipeline, graceful: bool) {
        if graceful && self.recordings.is_some() {
            pipeline.send_event(gst::event::Eos::new());
            if let Some(bus) = pipeline.bus() {
                let _ = bus.timed_pop_filtered(
                    gst::ClockTime::from_seconds(3),
                    &[gst::MessageType::Eos, gst::MessageType::Error],
                );
            }
        }
        let _ = pipeline.set_state(gst::State::Null);
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
