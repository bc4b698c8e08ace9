//! Whether a camera is announced offline, shared by its supervisor and its watchdog so that one outage
//! is reported once, whichever of the two notices it first.
//!
//! The supervisor reports what it sees (an error, an end of stream, a stall) before it tears the
//! pipeline down. The watchdog is a separate light thread that only watches the camera's frame count:
//! when no frame has arrived for `stall_secs` plus a margin — for any reason, including a supervisor
//! stuck in GStreamer — it raises the outage itself. Both go through [`Liveness`], which turns the
//! first report of an outage into [`HealthChange::Offline`] and the first frame after it into
//! [`HealthChange::Online`], in that order on the camera's [`HealthSink`], stamped by the camera's
//! [`Clock`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::camera::CameraCounters;
use super::health::{HealthChange, HealthReport, HealthSink, Reporter};
use super::slot::FrameSlot;
use super::supervisor::RetryReason;
use crate::clock::Clock;

struct State {
    offline: bool,
    /// The slot's delivered count when the outage was announced: only frames after it end the outage.
    frames_at_offline: u64,
    since: Option<Instant>,
}

/// The announced state of one camera.
pub struct Liveness {
    camera: String,
    sink: Arc<dyn HealthSink>,
    clock: Arc<dyn Clock>,
    // Held while reporting, so an offline and the online that ends it reach the sink in order.
    state: Mutex<State>,
}

impl Liveness {
    pub fn new(camera: &str, sink: Arc<dyn HealthSink>, clock: Arc<dyn Clock>) -> Liveness {
        Liveness {
            camera: camera.to_owned(),
            sink,
            clock,
            state: Mutex::new(State { offline: false, frames_at_offline: 0, since: None }),
        }
    }

    /// Announces an outage unless one is already announced; true if this call announced it.
    /// `frames` is the camera's delivered-frame count now.
    pub fn offline(&self, reason: RetryReason, frames: u64, by: Reporter) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.offline {
            return false;
        }
        *state = State { offline: true, frames_at_offline: frames, since: Some(self.clock.monotonic()) };
        match by {
            Reporter::Supervisor => warn!(camera = %self.camera, %reason, "camera offline"),
            Reporter::Watchdog => warn!(camera = %self.camera, %reason,
                "camera offline, noticed by the watchdog (the supervisor did not report it: restarting or stuck)"),
        }
        self.report(HealthChange::Offline { reason, by });
        true
    }

    /// Ends an announced outage if frames arrived since it began; true if this call announced it.
    pub fn online(&self, frames: u64) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.offline || frames <= state.frames_at_offline {
            return false;
        }
        let now = self.clock.monotonic();
        let down = state.since.map(|s| now.saturating_duration_since(s)).unwrap_or_default();
        state.offline = false;
        state.since = None;
        info!(camera = %self.camera, down_secs = down.as_secs_f64(), "camera online");
        self.report(HealthChange::Online { down });
        true
    }

    pub fn is_offline(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).offline
    }

    /// Reports a change of the camera's health now.
    pub fn report(&self, change: HealthChange) {
        self.sink.report(HealthReport { camera: self.camera.clone(), at: self.clock.now(), change });
    }
}

/// The watchdog of one camera: every `tick`, reads the slot's frame count; raises the outage after
/// `silence` without a new frame and ends it when frames come back. Returns when `stop` or `done` is set.
pub struct Watchdog {
    pub liveness: Arc<Liveness>,
    pub slot: Arc<FrameSlot>,
    pub counters: Arc<CameraCounters>,
    pub silence: Duration,
    pub tick: Duration,
    /// Measures the silence (monotonic time).
    pub clock: Arc<dyn Clock>,
    pub stop: Arc<AtomicBool>,
    pub done: Arc<AtomicBool>,
}

impl Watchdog {
    pub fn run(self) {
        let mut seen = self.slot.delivered();
        let mut last_change = self.clock.monotonic();
        while !self.stop.load(Ordering::Relaxed) && !self.done.load(Ordering::Relaxed) {
            std::thread::sleep(self.tick);
            let frames = self.slot.delivered();
            if frames != seen {
                seen = frames;
                last_change = self.clock.monotonic();
                self.liveness.online(frames);
            } else {
                let silent = self.clock.monotonic().saturating_duration_since(last_change);
                if silent > self.silence
                    && self.liveness.offline(RetryReason::Timeout(silent), frames, Reporter::Watchdog)
                {
                    self.counters.watchdog_offline.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, SystemClock};
    use std::sync::mpsc;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn frame() -> super::super::Frame {
        super::super::Frame { image: image::RgbImage::new(2, 2), captured: SystemTime::now(), seq: 0, keyframe: true }
    }

    fn names(rx: &mpsc::Receiver<HealthReport>) -> Vec<&'static str> {
        rx.try_iter()
            .map(|r| match r.change {
                HealthChange::Offline { .. } => "offline",
                HealthChange::Online { .. } => "online",
                HealthChange::RecordingStopped { .. } => "recording_stopped",
                HealthChange::RecordingResumed { .. } => "recording_resumed",
            })
            .collect()
    }

    fn no_frame(secs: u64) -> RetryReason {
        RetryReason::Timeout(Duration::from_secs(secs))
    }

    /// Supervisor and watchdog both see one outage: one offline; frames from before it do not end it.
    #[test]
    fn one_outage_is_announced_once_whoever_reports_it() {
        let (tx, rx) = mpsc::channel();
        let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let clock = ManualClock::new(start);
        let live = Liveness::new("cam", Arc::new(tx), Arc::new(clock.clone()));
        assert!(live.offline(RetryReason::Eos, 10, Reporter::Supervisor));
        clock.advance(Duration::from_secs(5));
        assert!(!live.offline(no_frame(15), 10, Reporter::Watchdog));
        assert!(!live.online(10), "no new frame yet");
        clock.advance(Duration::from_secs(7));
        assert!(live.online(11));
        assert!(!live.online(12), "already online");
        assert!(live.offline(no_frame(15), 12, Reporter::Watchdog));
        let reports: Vec<HealthReport> = rx.try_iter().collect();
        let at: Vec<_> = reports.iter().map(|r| r.at.duration_since(start).unwrap().as_secs()).collect();
        assert_eq!(at, [0, 12, 12], "stamped by the camera's clock");
        assert_eq!(reports[1].change, HealthChange::Online { down: Duration::from_secs(12) });
        assert!(reports.iter().all(|r| r.camera == "cam"));
        assert!(matches!(reports[2].change, HealthChange::Offline { by: Reporter::Watchdog, .. }));
    }

    /// A stuck supervisor reports nothing: the watchdog raises the outage after the silence, and ends
    /// it when frames return.
    #[test]
    fn watchdog_raises_an_outage_nobody_reported() {
        let (tx, rx) = mpsc::channel();
        let liveness = Arc::new(Liveness::new("cam", Arc::new(tx), Arc::new(SystemClock)));
        let slot = Arc::new(FrameSlot::default());
        let counters = Arc::new(CameraCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let watchdog = Watchdog {
            liveness: liveness.clone(),
            slot: slot.clone(),
            counters: counters.clone(),
            silence: Duration::from_millis(300),
            tick: Duration::from_millis(20),
            clock: Arc::new(SystemClock),
            stop: stop.clone(),
            done: Arc::new(AtomicBool::new(false)),
        };
        let thread = std::thread::spawn(move || watchdog.run());
        let wait_for = |offline: bool| {
            let until = Instant::now() + Duration::from_secs(10);
            while liveness.is_offline() != offline && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            liveness.is_offline() == offline
        };
        assert!(wait_for(true), "no offline after the silence");
        slot.put(frame());
        assert!(wait_for(false), "no online after a frame");
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
        // (A slow machine may see the next silence raised before the stop: only the first two count.)
        assert_eq!(names(&rx)[..2], ["offline", "online"]);
        assert_eq!(counters.watchdog_offline.load(Ordering::Relaxed), 1);
    }
}
