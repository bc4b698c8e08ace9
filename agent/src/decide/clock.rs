//! Wall-clock time as a seam, so schedules (roll-calls, dialysis sessions) can be tested by running
//! hours of them in milliseconds.
//!
//! The decision code itself takes times as arguments; only the loops that drive it ask a `Clock` what
//! time it is. Production uses `SystemClock`; tests use `ManualClock` and move it forward themselves
//! (moonfire-nvr's `Clocks` / `SimulatedClocks` do the same).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to. Clones share the same time, so a test can keep one and hand
/// another to the code under test.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<SystemTime>>,
}

impl ManualClock {
    pub fn new(start: SystemTime) -> ManualClock {
        ManualClock { now: Arc::new(Mutex::new(start)) }
    }

    pub fn set(&self, t: SystemTime) {
        *self.lock() = t;
    }

    /// Moves the clock forward by `d` and returns the new time.
    pub fn advance(&self, d: Duration) -> SystemTime {
        let mut now = self.lock();
        *now += d;
        *now
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SystemTime> {
        // A test that panicked while holding the lock leaves a valid time behind; keep using it.
        self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.lock()
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
        assert_eq!(clock.advance(Duration::from_secs(3600)), start + Duration::from_secs(3600));
        assert_eq!(shared.now(), start + Duration::from_secs(3600));
        clock.set(start);
        assert_eq!(shared.now(), start);
        assert!(SystemClock.now() > start);
    }
}
