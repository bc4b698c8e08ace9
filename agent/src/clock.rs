//! Time as a seam, so schedules (roll-calls, dialysis sessions) and camera supervision (backoff,
//! stalls, outages) can be tested by running hours of them in milliseconds.
//!
//! A foundation module: every stage may use it, it uses no other module of the crate.
//! The decision code itself takes times as arguments; only the loops that drive it ask a `Clock` what
//! time it is. Production uses `SystemClock`; tests use `ManualClock` and move it forward themselves
//! (moonfire-nvr's `Clocks` / `SimulatedClocks` do the same: a wall clock for stamps, a monotonic one
//! for deadlines and durations).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    /// Wall-clock time: what decisions, outages and frames are stamped with.
    fn now(&self) -> SystemTime;
    /// Monotonic time: what deadlines, backoff delays and durations are measured with (it never jumps
    /// when the wall clock is set).
    fn monotonic(&self) -> Instant;
}

/// The operating system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn monotonic(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to. Clones share the same time, so a test can keep one and hand
/// another to the code under test.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Times>>,
}

#[derive(Debug)]
struct Times {
    wall: SystemTime,
    monotonic: Instant,
}

impl ManualClock {
    /// Starts at wall time `start`; its monotonic time starts at the real `Instant::now()` and then
    /// moves only with [`advance`](Self::advance).
    pub fn new(start: SystemTime) -> ManualClock {
        ManualClock { now: Arc::new(Mutex::new(Times { wall: start, monotonic: Instant::now() })) }
    }

    /// Sets the wall clock only (as an operator or NTP would): monotonic time does not move.
    pub fn set(&self, t: SystemTime) {
        self.lock().wall = t;
    }

    /// Moves both clocks forward by `d` and returns the new wall time.
    pub fn advance(&self, d: Duration) -> SystemTime {
        let mut now = self.lock();
        now.wall += d;
        now.monotonic += d;
        now.wall
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Times> {
        // A test that panicked while holding the lock leaves a valid time behind; keep using it.
        self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.lock().wall
    }

    fn monotonic(&self) -> Instant {
        self.lock().monotonic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_it() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let clock = ManualClock::new(start);
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        assert_eq!(shared.now(), start);
        let t0 = shared.monotonic();
        assert_eq!(clock.advance(Duration::from_secs(3600)), start + Duration::from_secs(3600));
        assert_eq!(shared.now(), start + Duration::from_secs(3600));
        assert_eq!(shared.monotonic() - t0, Duration::from_secs(3600));
        // Setting the wall clock back leaves monotonic time where it was.
        clock.set(start);
        assert_eq!(shared.now(), start);
        assert_eq!(shared.monotonic() - t0, Duration::from_secs(3600));
        assert!(SystemClock.now() > start);
    }
}
