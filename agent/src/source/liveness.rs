//! Whether a camera is announced offline, shared by its supervisor and its watchdog so that one outage
//! is reported once, whichever of the two notices it first.
//!
//! The supervisor reports what it sees (an error, an end of stream, a stall) before it tears the
//! pipeline down. The watchdog is a separate light thread that only watches the camera's frame count:
//! when no frame has arrived for `stall_secs` plus a margin — for any reason, including a supervisor
//! stuck in GStreamer — it raises `camera_offline` itself. Both go through [`Liveness`], which turns
//! the first report of an outage into `camera_offline` and the first frame after it into
//! `camera_online`, in that order on the decision channel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tracing::{info, warn};

use super::camera::CameraCounters;
use super::slot::FrameSlot;
use crate::decide::{Decision, DecisionKind};

/// Who noticed an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reporter {
    Supervisor,
    Watchdog,
}

struct State {
    offline: bool,
    /// The slot's delivered count when the outage was announced: only frames after it end the outage.
    frames_at_offline: u64,
    since: Option<Instant>,
}

/// The announced state of one camera.
pub struct Liveness {
    camera: String,
    decisions: Sender<Decision>,
    // Held while sending, so an offline and the online that ends it reach the channel in order.
    state: Mutex<State>,
}

impl Liveness {
    pub fn new(camera: &str, decisions: Sender<Decision>) -> Liveness {
        Liveness {
            camera: camera.to_owned(),
            decisions,
            state: Mutex::new(State { offline: false, frames_at_offline: 0, since: None }),
        }
    }

    /// Announces an outage unless one is already announced; true if this call announced it.
    /// `frames` is the camera's delivered-frame count now.
    pub fn offline(&self, reason: &str, frames: u64, by: Reporter) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.offline {
            return false;
        }
        *state = State { offline: true, frames_at_offline: frames, since: Some(Instant::now()) };
        match by {
            Reporter::Supervisor => warn!(camera = %self.camera, reason, "camera offline"),
            Reporter::Watchdog => warn!(camera = %self.camera, reason,
                "camera offline, noticed by the watchdog (the supervisor did not report it: restarting or stuck)"),
        }
        self.send(DecisionKind::CameraOffline { reason: reason.to_owned() });
        true
    }

    /// Ends an announced outage if frames arrived since it began; true if this call announced it.
    pub fn online(&self, frames: u64) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.offline || frames <= state.frames_at_offline {
            return false;
        }
        let down = state.since.map(|s| s.elapsed()).unwrap_or_default();
        state.offline = false;
        state.since = None;
        info!(camera = %self.camera, down_secs = down.as_secs_f64(), "camera online");
        self.send(DecisionKind::CameraOnline);
        true
    }

    pub fn is_offline(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).offline
    }

    /// Sends a decision about the camera now (the channel only closes at shutdown).
    pub fn send(&self, kind: DecisionKind) {
        let _ = self.decisions.send(Decision::new(&self.camera, SystemTime::now(), kind));
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
    pub stop: Arc<AtomicBool>,
    pub done: Arc<AtomicBool>,
}

impl Watchdog {
    pub fn run(self) {
        let mut seen = self.slot.delivered();
        let mut last_change = Instant::now();
        while !self.stop.load(Ordering::Relaxed) && !self.done.load(Ordering::Relaxed) {
            std::thread::sleep(self.tick);
            let frames = self.slot.delivered();
            if frames != seen {
                seen = frames;
                last_change = Instant::now();
                self.liveness.online(frames);
            } else if last_change.elapsed() > self.silence {
                let reason = format!("no frame for {} s", last_change.elapsed().as_secs());
                if self.liveness.offline(&reason, frames, Reporter::Watchdog) {
                    self.counters.watchdog_offline.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn frame() -> super::super::Frame {
        super::super::Frame { image: image::RgbImage::new(2, 2), captured: SystemTime::now(), seq: 0, keyframe: true }
    }

    fn names(rx: &mpsc::Receiver<Decision>) -> Vec<&'static str> {
        rx.try_iter().map(|d| d.name()).collect()
    }

    /// Supervisor and watchdog both see one outage: one offline; frames from before it do not end it.
    #[test]
    fn one_outage_is_announced_once_whoever_reports_it() {
        let (tx, rx) = mpsc::channel();
        let live = Liveness::new("cam", tx);
        assert!(live.offline("end of stream", 10, Reporter::Supervisor));
        assert!(!live.offline("no frame for 15 s", 10, Reporter::Watchdog));
        assert!(!live.online(10), "no new frame yet");
        assert!(live.online(11));
        assert!(!live.online(12), "already online");
        assert!(live.offline("no frame for 15 s", 12, Reporter::Watchdog));
        assert_eq!(names(&rx), ["camera_offline", "camera_online", "camera_offline"]);
    }

    /// A stuck supervisor reports nothing: the watchdog raises the outage after the silence, and ends
    /// it when frames return.
    #[test]
    fn watchdog_raises_an_outage_nobody_reported() {
        let (tx, rx) = mpsc::channel();
        let liveness = Arc::new(Liveness::new("cam", tx));
        let slot = Arc::new(FrameSlot::default());
        let counters = Arc::new(CameraCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let watchdog = Watchdog {
            liveness: liveness.clone(),
            slot: slot.clone(),
            counters: counters.clone(),
            silence: Duration::from_millis(300),
            tick: Duration::from_millis(20),
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
        assert_eq!(names(&rx)[..2], ["camera_offline", "camera_online"]);
        assert_eq!(counters.watchdog_offline.load(Ordering::Relaxed), 1);
    }
}
