//! Is the system clock synchronised? What the kernel says through `adjtimex(2)` (modes 0: read only),
//! the data `timedatectl` shows as "System clock synchronized": set by systemd-timesyncd, chrony or
//! ntpd while they discipline the clock. Every evidence manifest records it (`clock`,
//! docs/evidence.md "Trusted time"), because every time in a manifest rests on this clock.

use std::sync::atomic::{AtomicU8, Ordering};

/// The clock's synchronisation state at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSync {
    /// `STA_UNSYNC` is clear and `adjtimex` did not return `TIME_ERROR`.
    pub synchronized: bool,
    /// The kernel's maximum error estimate, microseconds (`timex.maxerror`); -1 when it could not be read.
    pub max_error_us: i64,
    /// The kernel's estimated error, microseconds (`timex.esterror`); -1 when it could not be read.
    pub est_error_us: i64,
}

/// `STA_UNSYNC`: the clock is not synchronised (linux/timex.h).
const STA_UNSYNC: i64 = 0x0040;
/// `TIME_ERROR`: the clock is not synchronised (the return value of `adjtimex`).
const TIME_ERROR: i64 = 5;

impl ClockSync {
    /// From what `adjtimex` returned and filled in.
    pub fn from_timex(state: i64, status: i64, max_error_us: i64, est_error_us: i64) -> ClockSync {
        ClockSync { synchronized: status & STA_UNSYNC == 0 && state != TIME_ERROR, max_error_us, est_error_us }
    }

    /// What is recorded when the kernel cannot be asked: not synchronised, errors unknown (-1).
    pub fn unknown() -> ClockSync {
        ClockSync { synchronized: false, max_error_us: -1, est_error_us: -1 }
    }

    /// The manifest's `clock` object (spec: integers, no floats).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "synchronized": self.synchronized,
            "source": "adjtimex",
            "max_error_us": self.max_error_us,
            "est_error_us": self.est_error_us,
        })
    }
}

/// Asks the kernel (`adjtimex` with modes 0 changes nothing and needs no privilege).
pub fn read() -> std::io::Result<ClockSync> {
    // SAFETY: `timex` is plain data; zeroed means modes 0 (read only); the kernel fills it in.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(ClockSync::from_timex(i64::from(state), i64::from(tx.status), tx.maxerror as i64, tx.esterror as i64))
}

/// The last state logged: 0 none yet, 1 synchronised, 2 not synchronised, 3 unreadable.
static LOGGED: AtomicU8 = AtomicU8::new(0);

/// [`read`], logging when the state differs from the last one logged: a WARN when evidence times rest on
/// an unsynchronised (or unreadable) clock, an INFO when it is synchronised again. So the first call
/// (at start) says so once, and each change is said once.
pub fn observe() -> ClockSync {
    let (now, code) = match read() {
        Ok(sync) => (sync, if sync.synchronized { 1 } else { 2 }),
        Err(e) => {
            if LOGGED.swap(3, Ordering::Relaxed) != 3 {
                tracing::warn!(error = %e, "cannot read the clock's synchronisation state (adjtimex): evidence \
                    manifests record the clock as not synchronised");
            }
            return ClockSync::unknown();
        }
    };
    let before = LOGGED.swap(code, Ordering::Relaxed);
    if before != code {
        if now.synchronized {
            if before != 0 {
                tracing::info!(
                    max_error_us = now.max_error_us,
                    est_error_us = now.est_error_us,
                    "the system clock is synchronised again"
                );
            }
        } else {
            tracing::warn!(
                max_error_us = now.max_error_us,
                "the system clock is not synchronised (no NTP: systemd-timesyncd or chrony): evidence times \
                 rest on an unsynchronised clock (recorded in each manifest's `clock`)"
            );
        }
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synchronised_only_without_sta_unsync_and_without_time_error() {
        // TIME_OK (0) with STA_PLL (0x0001): what a clock chrony disciplines shows.
        assert!(ClockSync::from_timex(0, 0x0001, 12_000, 300).synchronized);
        // TIME_INS / TIME_DEL / TIME_OOP / TIME_WAIT (1-4): leap second states are still synchronised.
        for state in 1..=4 {
            assert!(ClockSync::from_timex(state, 0x2001, 1, 1).synchronized, "state {state}");
        }
        // The kernel's state after boot with no NTP daemon: STA_UNSYNC set, TIME_ERROR returned.
        assert!(!ClockSync::from_timex(5, 0x0040, 16_000_000, 16_000_000).synchronized);
        // Either alone is enough.
        assert!(!ClockSync::from_timex(0, 0x0041, 1, 1).synchronized);
        assert!(!ClockSync::from_timex(5, 0x0001, 1, 1).synchronized);
        // Other bits (STA_NANO 0x2000, STA_CLOCKERR 0x1000) do not decide it; only STA_UNSYNC does.
        assert!(ClockSync::from_timex(0, 0x2000, 1, 1).synchronized);
        assert!(!ClockSync::from_timex(0, 0x2040, 1, 1).synchronized);
    }

    #[test]
    fn manifest_object_has_integers_and_the_source() {
        let json = ClockSync::from_timex(0, 0, 12_345, 67).to_json();
        assert_eq!(
            json,
            serde_json::json!({"synchronized": true, "source": "adjtimex", "max_error_us": 12_345, "est_error_us": 67})
        );
        assert_eq!(ClockSync::unknown().to_json()["max_error_us"], -1);
    }

    #[test]
    fn the_kernel_answers() {
        // adjtimex with modes 0 works unprivileged; the values are whatever this machine's clock is.
        let sync = read().unwrap();
        assert!(sync.max_error_us >= 0 && sync.est_error_us >= 0, "{sync:?}");
    }
}
