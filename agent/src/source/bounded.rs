//! Waiting with a deadline on work that may never return.
//!
//! GStreamer state changes can block for good on a streaming thread that does not let go (rtspsrc
//! during a reconnect, a sink stuck in a write). Such work runs on a helper thread; the caller waits
//! up to a deadline and then carries on without it. The helper is left behind: if it ever finishes,
//! it says so (`late`), otherwise it stays blocked until the process exits. std threads cannot be
//! killed, so leaving them is the only bound there is.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const RUNNING: u8 = 0;
const DONE: u8 = 1;
const ABANDONED: u8 = 2;

/// Runs `work` on a thread named `name` and waits up to `deadline` for its result. `None`: it did not
/// finish in time (or no thread could be started) and was abandoned; `late` then runs on the helper
/// thread if the work finishes after all, with how long it took.
pub fn within<T: Send + 'static>(
    name: &str,
    deadline: Duration,
    work: impl FnOnce() -> T + Send + 'static,
    late: impl FnOnce(Duration) + Send + 'static,
) -> Option<T> {
    let (tx, rx) = mpsc::sync_channel(1);
    // Decides, exactly once, whether the result is the caller's or the work was given up on.
    let state = Arc::new(AtomicU8::new(RUNNING));
    let helper_state = state.clone();
    let started = Instant::now();
    let spawned = std::thread::Builder::new().name(name.to_owned()).spawn(move || {
        let result = work();
        if helper_state.compare_exchange(RUNNING, DONE, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            let _ = tx.send(result);
        } else {
            late(started.elapsed());
        }
    });
    if let Err(e) = spawned {
        tracing::error!(thread = name, error = %e, "cannot start a helper thread; the work is not done");
        return None;
    }
    match rx.recv_timeout(deadline) {
        Ok(result) => Some(result),
        Err(_) => match state.compare_exchange(RUNNING, ABANDONED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => None,
            // It finished just now: the result is on its way.
            Err(_) => rx.recv().ok(),
        },
    }
}

/// Joins the threads that finish before `deadline`; the others are left running (detached). Returns the
/// names of those left behind.
pub fn join_within(threads: Vec<JoinHandle<()>>, deadline: Instant) -> Vec<String> {
    let mut waiting = threads;
    loop {
        let (finished, running): (Vec<_>, Vec<_>) = waiting.into_iter().partition(|t| t.is_finished());
        for thread in finished {
            let name = thread.thread().name().unwrap_or("unnamed").to_owned();
            if thread.join().is_err() {
                tracing::error!(thread = %name, "thread panicked");
            }
        }
        waiting = running;
        if waiting.is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20).min(deadline.saturating_duration_since(Instant::now())));
    }
    waiting.iter().map(|t| t.thread().name().unwrap_or("unnamed").to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn a_result_in_time_is_returned() {
        assert_eq!(within("t-quick", Duration::from_secs(10), || 7, |_| panic!("not late")), Some(7));
    }

    /// Work that blocks past the deadline is abandoned within it, and reports when it ends after all.
    #[test]
    fn blocked_work_is_abandoned_at_the_deadline() {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (late_tx, late_rx) = mpsc::channel();
        let started = Instant::now();
        let result = within(
            "t-blocked",
            Duration::from_millis(200),
            move || release_rx.recv().is_ok(),
            move |took| late_tx.send(took).unwrap(),
        );
        assert_eq!(result, None);
        assert!(started.elapsed() < Duration::from_secs(5), "waited {:?}", started.elapsed());
        release_tx.send(()).unwrap();
        let took = late_rx.recv_timeout(Duration::from_secs(10)).expect("late report");
        assert!(took >= Duration::from_millis(200));
    }

    #[test]
    fn join_within_names_the_threads_left_behind() {
        let release = Arc::new(AtomicBool::new(false));
        let r = release.clone();
        let stuck = std::thread::Builder::new()
            .name("t-stuck".into())
            .spawn(move || {
                while !r.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
            .unwrap();
        let quick = std::thread::Builder::new().name("t-done".into()).spawn(|| {}).unwrap();
        let left = join_within(vec![stuck, quick], Instant::now() + Duration::from_millis(300));
        assert_eq!(left, ["t-stuck"]);
        release.store(true, Ordering::Relaxed);
    }
}
