//! The camera supervisor's decisions as a state machine, without GStreamer: what to do after each
//! thing a pipeline run reports (started, a frame, an error, the end of the stream, a stall, a
//! recording failure, shutdown), with the retry delay, the reason, the counters, and the outage and
//! recording announcements to make.
//!
//! [`super::camera::CameraWorker`] drives it with a real pipeline; the tests below drive it with a
//! [`ManualClock`](crate::clock::ManualClock) and run minutes of outages in microseconds. Time comes
//! only from the [`Clock`]: wall time to judge a stall against the frames' own times, monotonic time
//! for every delay and deadline.
//!
//! Rules:
//! - A failure (error, end of stream, stall, would not start) announces an outage and retries after
//!   the backoff: `initial`, doubling to `max`, ±20 % jitter; the backoff resets once frames flow. The
//!   announcement goes through [`super::liveness::Liveness`], which makes it once per outage however
//!   many retries it takes, and the first frame after it `Online`.
//! - The end of a looping file restarts at once, without an outage.
//! - A recording failure restarts at once without the recording branch and announces
//!   `RecordingStopped` once per episode; recording is tried again after `recording_retry`, or as soon
//!   as [`ROOM_CAME_BACK`] bytes more are free than at the failure; `RecordingResumed` follows once a
//!   segment has been written to for [`RECORDING_PROBATION`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{debug, info};

use super::camera::CameraCounters;
use crate::clock::Clock;

/// A restarted recording counts as working once a segment has been open this long without error.
pub const RECORDING_PROBATION: Duration = Duration::from_secs(3);

/// Free space that must come back on the recordings' file system, over what it had when recording
/// failed, for recording to be tried again before `recording_retry` (a full disk that was cleared).
pub const ROOM_CAME_BACK: u64 = 32 << 20;

/// How often free space is looked at while recording is stopped.
const ROOM_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Why a pipeline was restarted.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryReason {
    /// GStreamer reported an error (connection refused, decode error, …).
    Error(String),
    /// The stream ended.
    Eos,
    /// No frame for this long.
    Timeout(Duration),
    /// The pipeline would not start.
    StateChange(String),
}

impl RetryReason {
    /// Short, stable names of the reasons (metrics labels), indexed by [`RetryReason::index`].
    pub const LABELS: [&'static str; 4] = ["error", "end_of_stream", "stalled", "start_failed"];

    pub fn index(&self) -> usize {
        match self {
            RetryReason::Error(_) => 0,
            RetryReason::Eos => 1,
            RetryReason::Timeout(_) => 2,
            RetryReason::StateChange(_) => 3,
        }
    }
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
    pub(crate) fn next(&self, current: Duration) -> Duration {
        (current * 2).min(self.max)
    }

    /// `delay` scaled by a factor in [0.8, 1.2), so cameras that failed together (a switch restarted)
    /// do not all reconnect in the same instant.
    pub(crate) fn jitter(delay: Duration, state: &mut u64) -> Duration {
        // xorshift64: spreading retries needs no cryptographic randomness.
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let unit = (*state >> 11) as f64 / (1u64 << 53) as f64;
        delay.mul_f64(0.8 + 0.4 * unit)
    }
}

/// The supervisor's settings that shape its decisions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub backoff: Backoff,
    /// No frame for this long ends the pipeline run (`RetryReason::Timeout`).
    pub stall: Duration,
    /// The camera is a file played in a loop: its end is a restart, not an outage.
    pub loop_file: bool,
    /// Whether the camera is to be recorded at all.
    pub record: bool,
    /// How long after a recording failure recording is tried again.
    pub recording_retry: Duration,
}

/// What a pipeline run reported.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The pipeline could not be built or would not start.
    WouldNotStart(String),
    /// GStreamer reported an error outside the recording branch.
    Error(String),
    /// The stream ended.
    Eos,
    /// The recording branch failed (only while the run records); `free`: the recordings' file
    /// system's free bytes now, if known.
    RecordingFailed { reason: String, free: Option<u64> },
    /// The recording branch opened a new segment.
    SegmentOpened,
    /// A look at the run, several times a second: `frames` decoded in this run so far, the wall time
    /// of the last one, and (when [`Supervisor::room_check_due`] said so) the free bytes now.
    Tick { frames: u64, last_frame: Option<SystemTime>, free: Option<u64> },
    /// Shutdown was asked for.
    Shutdown,
}

/// What to do with the pipeline next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Keep it and go on watching.
    Watch,
    /// Stop it and start a new one at once, without an outage.
    Restart,
    /// Stop it, wait `delay`, start a new one (a failure: an outage was announced).
    Retry { delay: Duration },
    /// Stop it (finalising the open segment) and return.
    Shutdown,
}

/// What to tell the rest of the agent, in this order.
#[derive(Debug, Clone, PartialEq)]
pub enum Announcement {
    /// The camera is offline, unless that outage is announced already.
    Offline(RetryReason),
    /// Frames flow in this run: the camera is online if it was announced offline.
    Online,
    RecordingStopped {
        reason: String,
    },
    RecordingResumed {
        stopped: Duration,
    },
}

/// The answer to one [`Event`].
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub next: Next,
    pub announce: Vec<Announcement>,
}

impl Step {
    fn watch() -> Step {
        Step { next: Next::Watch, announce: Vec::new() }
    }

    fn then(next: Next) -> Step {
        Step { next, announce: Vec::new() }
    }
}

/// Recording stopped by a failure.
struct Stopped {
    since: Instant,
    /// When recording is tried again, at the latest.
    retry_at: Instant,
    /// Free bytes at the last failure, and when they were last looked at.
    room: Option<(u64, Instant)>,
}

/// The current pipeline run.
struct Run {
    started: Instant,
    record: bool,
    flowing: bool,
    /// When the first segment of this run opened, while recording is stopped.
    probation: Option<Instant>,
}

/// The supervision state of one camera.
pub struct Supervisor {
    camera: String,
    policy: Policy,
    clock: Arc<dyn Clock>,
    counters: Arc<CameraCounters>,
    /// The next retry's delay, before jitter.
    delay: Duration,
    seed: u64,
    stopped: Option<Stopped>,
    run: Run,
}

impl Supervisor {
    pub fn new(camera: &str, policy: Policy, clock: Arc<dyn Clock>, counters: Arc<CameraCounters>) -> Supervisor {
        // Cameras started in the same instant still get different jitter: the seed mixes in the id.
        let mut seed = clock.now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
        for b in camera.bytes() {
            seed = seed.rotate_left(5) ^ u64::from(b);
        }
        let started = clock.monotonic();
        Supervisor {
            camera: camera.to_owned(),
            policy,
            clock,
            counters,
            delay: policy.backoff.initial,
            seed: seed | 1,
            stopped: None,
            run: Run { started, record: false, flowing: false, probation: None },
        }
    }

    /// A new pipeline run begins (counted in `starts`); returns whether it records.
    pub fn begin_run(&mut self) -> bool {
        self.counters.starts.fetch_add(1, Ordering::Relaxed);
        let now = self.clock.monotonic();
        let record = self.policy.record && self.stopped.as_ref().is_none_or(|s| now >= s.retry_at);
        self.run = Run { started: now, record, flowing: false, probation: None };
        record
    }

    /// Whether the current run records.
    pub fn recording(&self) -> bool {
        self.run.record
    }

    /// Whether the next [`Event::Tick`] should carry the free bytes of the recordings' file system.
    pub fn room_check_due(&self) -> bool {
        let now = self.clock.monotonic();
        !self.run.record
            && self.stopped.as_ref().is_some_and(|s| {
                now < s.retry_at && s.room.is_some_and(|(_, checked)| now.duration_since(checked) >= ROOM_CHECK_EVERY)
            })
    }

    pub fn on(&mut self, event: Event) -> Step {
        match event {
            Event::Shutdown => Step::then(Next::Shutdown),
            Event::Eos if self.policy.loop_file => {
                debug!(camera = %self.camera, "file ended; looping");
                Step::then(Next::Restart)
            }
            Event::Eos => self.failed(RetryReason::Eos),
            Event::Error(text) => self.failed(RetryReason::Error(text)),
            Event::WouldNotStart(text) => self.failed(RetryReason::StateChange(text)),
            Event::RecordingFailed { reason, free } => self.recording_failed(reason, free),
            Event::SegmentOpened => {
                if self.stopped.is_some() {
                    let now = self.clock.monotonic();
                    self.run.probation.get_or_insert(now);
                }
                Step::watch()
            }
            Event::Tick { frames, last_frame, free } => self.tick(frames, last_frame, free),
        }
    }

    /// An outage: announce it, retry after the backoff, which grows for the next one.
    fn failed(&mut self, reason: RetryReason) -> Step {
        self.counters.restarts.fetch_add(1, Ordering::Relaxed);
        self.counters.restarts_by_reason[reason.index()].fetch_add(1, Ordering::Relaxed);
        let delay = Backoff::jitter(self.delay, &mut self.seed);
        self.delay = self.policy.backoff.next(self.delay);
        Step { next: Next::Retry { delay }, announce: vec![Announcement::Offline(reason)] }
    }

    fn recording_failed(&mut self, reason: String, free: Option<u64>) -> Step {
        debug_assert!(self.run.record, "a recording failure while not recording");
        self.counters.recording_failures.fetch_add(1, Ordering::Relaxed);
        let now = self.clock.monotonic();
        let retry_at = now + self.policy.recording_retry;
        let room = free.map(|free| (free, now));
        match &mut self.stopped {
            Some(stopped) => {
                stopped.retry_at = retry_at;
                stopped.room = room;
                debug!(camera = %self.camera, %reason, "recording still failing");
                Step::then(Next::Restart)
            }
            None => {
                self.stopped = Some(Stopped { since: now, retry_at, room });
                Step { next: Next::Restart, announce: vec![Announcement::RecordingStopped { reason }] }
            }
        }
    }

    fn tick(&mut self, frames: u64, last_frame: Option<SystemTime>, free: Option<u64>) -> Step {
        let now = self.clock.monotonic();
        let mut step = Step::watch();
        if !self.run.record && self.retry_recording_due(now, free) {
            info!(camera = %self.camera, "trying to record again");
            return Step::then(Next::Restart);
        }
        if let Some(opened) = self.run.probation
            && now.duration_since(opened) >= RECORDING_PROBATION
            && let Some(stopped) = self.stopped.take()
        {
            self.run.probation = None;
            let stopped = now.duration_since(stopped.since);
            info!(camera = %self.camera, stopped_secs = stopped.as_secs(), "recording resumed");
            step.announce.push(Announcement::RecordingResumed { stopped });
        }
        if frames > 0 && !self.run.flowing {
            self.run.flowing = true;
            self.delay = self.policy.backoff.initial;
            step.announce.push(Announcement::Online);
        }
        let running = now.duration_since(self.run.started);
        let silent_for = match last_frame {
            None => running,
            // Frame times come from the stream; wall time of receipt is bounded below by them. A wall
            // clock set forward does not make a stall: never more than the run has lasted.
            Some(t) => self.clock.now().duration_since(t).unwrap_or_default().min(running),
        };
        if silent_for > self.policy.stall {
            let mut failed = self.failed(RetryReason::Timeout(self.policy.stall));
            step.announce.append(&mut failed.announce);
            step.next = failed.next;
        }
        step
    }

    /// Whether to try recording again now: its time has come, or the disk has room again (evidence
    /// clips need the video from the moment there is room, not up to `recording_retry` later).
    fn retry_recording_due(&mut self, now: Instant, free: Option<u64>) -> bool {
        let Some(stopped) = &mut self.stopped else { return false };
        if now >= stopped.retry_at {
            return true;
        }
        if let Some((free_then, checked)) = &mut stopped.room
            && now.duration_since(*checked) >= ROOM_CHECK_EVERY
        {
            *checked = now;
            if free.is_some_and(|free| free >= free_then.saturating_add(ROOM_CAME_BACK)) {
                stopped.retry_at = now;
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::source::health::{HealthChange, HealthReport, Reporter};
    use crate::source::liveness::Liveness;
    use std::sync::mpsc;

    const MIB: u64 = 1 << 20;

    fn policy() -> Policy {
        Policy {
            backoff: Backoff::default(),
            stall: Duration::from_secs(15),
            loop_file: false,
            record: true,
            recording_retry: Duration::from_secs(60),
        }
    }

    /// A supervisor on a manual clock, with the liveness its announcements go through, as
    /// `CameraWorker` wires them.
    struct Harness {
        clock: ManualClock,
        sup: Supervisor,
        live: Liveness,
        reports: mpsc::Receiver<HealthReport>,
        counters: Arc<CameraCounters>,
        /// The camera's delivered frames (the frame slot's count).
        delivered: u64,
    }

    impl Harness {
        fn new(policy: Policy) -> Harness {
            let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
            let counters = Arc::new(CameraCounters::default());
            let (tx, reports) = mpsc::channel();
            let shared: Arc<dyn Clock> = Arc::new(clock.clone());
            let live = Liveness::new("door", Arc::new(tx), shared.clone());
            let sup = Supervisor::new("door", policy, shared, counters.clone());
            Harness { clock, sup, live, reports, counters, delivered: 0 }
        }

        /// Feeds an event and makes its announcements as the camera worker does.
        fn on(&mut self, event: Event) -> Next {
            let step = self.sup.on(event);
            for a in step.announce {
                match a {
                    Announcement::Offline(reason) => {
                        self.live.offline(reason, self.delivered, Reporter::Supervisor);
                    }
                    Announcement::Online => {
                        self.live.online(self.delivered);
                    }
                    Announcement::RecordingStopped { reason } => {
                        self.live.report(HealthChange::RecordingStopped { reason })
                    }
                    Announcement::RecordingResumed { stopped } => {
                        self.live.report(HealthChange::RecordingResumed { stopped })
                    }
                }
            }
            step.next
        }

        /// `secs` of a run delivering a frame every 200 ms (stamped with the wall clock).
        fn stream(&mut self, secs: u64) -> Next {
            for frames in 1..=secs * 5 {
                self.clock.advance(Duration::from_millis(200));
                self.delivered += 1;
                let next = self.on(Event::Tick { frames, last_frame: Some(self.clock.now()), free: None });
                if next != Next::Watch {
                    return next;
                }
            }
            Next::Watch
        }

        /// Ticks every 200 ms without frames until the supervisor does something else, or `limit` passes.
        fn silence(&mut self, frames: u64, last_frame: Option<SystemTime>, limit: Duration) -> (Next, Duration) {
            let t0 = self.clock.monotonic();
            while self.clock.monotonic() - t0 < limit {
                self.clock.advance(Duration::from_millis(200));
                let next = self.on(Event::Tick { frames, last_frame, free: None });
                if next != Next::Watch {
                    return (next, self.clock.monotonic() - t0);
                }
            }
            (Next::Watch, limit)
        }

        fn changes(&self) -> Vec<HealthChange> {
            self.reports.try_iter().map(|r| r.change).collect()
        }
    }

    fn delay(next: &Next) -> Duration {
        match next {
            Next::Retry { delay } => *delay,
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    fn in_jitter(d: Duration, nominal: Duration) -> bool {
        d >= nominal.mul_f64(0.8) && d < nominal.mul_f64(1.2)
    }

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

    /// A camera that refuses connections for seven attempts: one `Offline`, delays 1, 2, 4, 8, 16, 30,
    /// 30 s (±20 %); the first frames bring one `Online` and reset the backoff.
    #[test]
    fn an_outage_is_announced_once_however_many_retries_and_frames_reset_the_backoff() {
        let mut h = Harness::new(policy());
        assert!(h.sup.begin_run());
        assert_eq!(h.stream(2), Next::Watch);
        let mut delays = Vec::new();
        for attempt in 0..7 {
            if attempt > 0 {
                h.sup.begin_run();
            }
            let next = h.on(Event::Error("connection refused".into()));
            delays.push(delay(&next));
            h.clock.advance(delays[attempt]);
        }
        for (d, nominal) in delays.iter().zip([1, 2, 4, 8, 16, 30, 30]) {
            assert!(in_jitter(*d, Duration::from_secs(nominal)), "{d:?} for a nominal {nominal} s ({delays:?})");
        }
        h.sup.begin_run();
        assert_eq!(h.stream(1), Next::Watch);
        let next = h.on(Event::WouldNotStart("no answer within 3 s".into()));
        assert!(in_jitter(delay(&next), Duration::from_secs(1)), "the backoff starts again at 1 s: {next:?}");
        let changes = h.changes();
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert!(matches!(&changes[0],
            HealthChange::Offline { reason: RetryReason::Error(e), by: Reporter::Supervisor } if e == "connection refused"));
        // Down from the first failure to the first frame of the run that worked.
        let HealthChange::Online { down } = changes[1] else { panic!("{changes:?}") };
        let retried: Duration = delays.iter().sum();
        assert!(down > retried && down <= retried + Duration::from_millis(200), "{down:?} vs {retried:?}");
        assert!(matches!(&changes[2], HealthChange::Offline { reason: RetryReason::StateChange(_), .. }));
        assert_eq!(h.counters.starts.load(Ordering::Relaxed), 8);
        assert_eq!(h.counters.restarts.load(Ordering::Relaxed), 8);
        // By reason: seven refusals, one start that did not come up.
        let by_reason: Vec<u64> = h.counters.restarts_by_reason.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(by_reason, [7, 0, 0, 1], "{:?}", RetryReason::LABELS);
    }

    /// No frame for `stall` after the last one (or after the start) ends the run as a timeout.
    #[test]
    fn a_stall_is_a_timeout_after_stall_secs_of_silence() {
        let mut h = Harness::new(policy());
        h.sup.begin_run();
        let (next, after) = h.silence(0, None, Duration::from_secs(60));
        assert!(matches!(next, Next::Retry { .. }), "{next:?}");
        assert_eq!(after, Duration::from_millis(15_200), "the first tick past 15 s");
        assert_eq!(
            h.changes(),
            [HealthChange::Offline { reason: RetryReason::Timeout(Duration::from_secs(15)), by: Reporter::Supervisor }]
        );
        h.sup.begin_run();
        assert_eq!(h.stream(3), Next::Watch);
        let last = h.clock.now();
        let (next, after) = h.silence(15, Some(last), Duration::from_secs(60));
        assert!(matches!(next, Next::Retry { .. }));
        assert_eq!(after, Duration::from_millis(15_200));
        assert!(matches!(&h.changes()[..], [HealthChange::Online { .. }, HealthChange::Offline { .. }]));
    }

    /// The wall clock set forward by an hour while frames flow is no stall: silence is never counted
    /// as longer than the run has lasted (monotonic time).
    #[test]
    fn a_wall_clock_jump_is_not_a_stall() {
        let mut h = Harness::new(policy());
        h.sup.begin_run();
        assert_eq!(h.stream(2), Next::Watch);
        let last = h.clock.now();
        h.clock.set(last + Duration::from_secs(3600));
        let (next, _) = h.silence(10, Some(last), Duration::from_secs(10));
        assert_eq!(next, Next::Watch);
    }

    #[test]
    fn the_end_of_a_looping_file_restarts_at_once_without_an_outage() {
        let mut h = Harness::new(Policy { loop_file: true, ..policy() });
        h.sup.begin_run();
        h.stream(1);
        assert_eq!(h.on(Event::Eos), Next::Restart);
        let mut live = Harness::new(policy());
        live.sup.begin_run();
        live.stream(1);
        assert!(matches!(live.on(Event::Eos), Next::Retry { .. }));
        assert_eq!(h.changes(), []);
        assert!(matches!(&live.changes()[..], [HealthChange::Offline { reason: RetryReason::Eos, .. }]));
        assert_eq!(h.counters.restarts.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn shutdown_is_obeyed_in_any_state() {
        let mut h = Harness::new(policy());
        assert_eq!(h.on(Event::Shutdown), Next::Shutdown);
        h.sup.begin_run();
        h.on(Event::Error("x".into()));
        assert_eq!(h.on(Event::Shutdown), Next::Shutdown);
    }

    /// A failing disk: recording stops once (analysis goes on without it), is retried every
    /// `recording_retry`, and resumes once a segment has been written to for the probation time.
    #[test]
    fn recording_stops_once_is_retried_and_resumes_after_probation() {
        let mut h = Harness::new(policy());
        assert!(h.sup.begin_run());
        h.stream(1);
        let full = Event::RecordingFailed { reason: "No space left on device".into(), free: None };
        assert_eq!(h.on(full.clone()), Next::Restart);
        assert!(!h.sup.begin_run(), "the next run does not record");
        assert_eq!(h.stream(59), Next::Watch, "analysis goes on, no outage");
        assert_eq!(h.stream(2), Next::Restart, "recording is tried again after 60 s");
        assert!(h.sup.begin_run());
        assert_eq!(h.on(full), Next::Restart, "still failing: no second announcement");
        assert!(!h.sup.begin_run());
        h.clock.advance(Duration::from_secs(61));
        assert_eq!(h.on(Event::Tick { frames: 0, last_frame: None, free: None }), Next::Restart);
        assert!(h.sup.begin_run());
        assert_eq!(h.on(Event::SegmentOpened), Next::Watch);
        assert_eq!(h.stream(2), Next::Watch);
        let before = h.changes();
        assert_eq!(h.stream(2), Next::Watch);
        let after = h.changes();
        assert!(matches!(&before[..], [HealthChange::RecordingStopped { reason }] if reason.contains("No space")));
        let [HealthChange::RecordingResumed { stopped }] = after[..] else { panic!("{after:?}") };
        assert!(stopped > Duration::from_secs(120), "{stopped:?}");
        assert_eq!(h.counters.recording_failures.load(Ordering::Relaxed), 2);
        assert_eq!(h.counters.restarts.load(Ordering::Relaxed), 0, "no outage");
    }

    /// A full disk cleared: recording is tried again as soon as 32 MiB more are free, not a minute later;
    /// free space is looked at at most once a second.
    #[test]
    fn recording_is_retried_as_soon_as_the_disk_has_room_again() {
        let mut h = Harness::new(policy());
        h.sup.begin_run();
        assert_eq!(h.on(Event::RecordingFailed { reason: "full".into(), free: Some(100 * MIB) }), Next::Restart);
        assert!(!h.sup.begin_run());
        assert!(!h.sup.room_check_due(), "just looked");
        h.clock.advance(Duration::from_millis(1000));
        assert!(h.sup.room_check_due());
        let tick = |free| Event::Tick { frames: 1, last_frame: None, free: Some(free) };
        assert_eq!(h.on(tick(120 * MIB)), Next::Watch, "20 MiB more is not enough");
        assert!(!h.sup.room_check_due());
        h.clock.advance(Duration::from_millis(500));
        assert_eq!(h.on(tick(200 * MIB)), Next::Watch, "not looked at twice in a second");
        h.clock.advance(Duration::from_millis(500));
        assert_eq!(h.on(tick(140 * MIB)), Next::Restart);
        assert!(h.sup.begin_run(), "the next run records");
    }
}
