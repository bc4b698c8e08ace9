//! systemd's service notifications (sd_notify(3)) and watchdog, without libsystemd: datagrams to
//! `$NOTIFY_SOCKET` (a path, or an abstract socket written `@name`). Nothing is sent when the agent is
//! not started by systemd (the variable is unset).
//!
//! The agent says `READY=1` once its cameras, outbox and MQTT publisher are set up, `STATUS=` lines as
//! it goes, and `STOPPING=1` at shutdown. With `WatchdogSec=` (systemd sets `$WATCHDOG_USEC`), a thread
//! sends `WATCHDOG=1` every half interval, but only while every watched worker — each camera's
//! supervisor and analysis thread, the evidence writer, the publisher — made progress within the
//! interval: each bumps a counter in its loop, waits included (an idle worker waiting on a channel
//! still turns its loop), so a counter that stands still means a stuck thread. The pings then stop, the
//! stuck workers are named in a WARN and in `STATUS=`, and systemd restarts the agent. The thread
//! starts with the workers, before the agent is ready; it pings only once `READY=1` is sent (systemd
//! arms the watchdog when start-up is complete, and a ping before READY=1 would say "alive" for an
//! agent that has not said it works).

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::Shutdown;

/// Where notifications go: `$NOTIFY_SOCKET`'s address, or nowhere.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    /// A failed send is logged once (a socket that went away stays away).
    failed: AtomicBool,
    /// `READY=1` was sent: systemd arms the watchdog once start-up is complete, and no ping may
    /// precede it (the watchdog thread starts with the workers, before the agent says it is ready).
    ready: AtomicBool,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; a value that is neither a path nor `@name` is logged and ignored.
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|value| {
            let bytes = std::os::unix::ffi::OsStrExt::as_bytes(value.as_os_str());
            let addr = match bytes.first() {
                Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
                Some(b'/') => SocketAddr::from_pathname(&value),
                _ => {
                    warn!(notify_socket = ?value, "NOTIFY_SOCKET is neither a path nor @name: systemd is not notified");
                    return None;
                }
            };
            match addr.and_then(|addr| Ok((UnixDatagram::unbound()?, addr))) {
                Ok(target) => Some(target),
                Err(e) => {
                    warn!(notify_socket = ?value, error = %e, "cannot use NOTIFY_SOCKET: systemd is not notified");
                    None
                }
            }
        });
        Notifier { target, failed: AtomicBool::new(false), ready: AtomicBool::new(false) }
    }

    /// Whether notifications go anywhere.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `state` (newline-separated `KEY=value` lines).
    pub fn notify(&self, state: &str) {
        self.send(state);
        if state.lines().any(|line| line == "READY=1") {
            self.ready.store(true, Ordering::Release);
        }
    }

    /// Whether `READY=1` has been sent.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn send(&self, state: &str) {
        let Some((socket, addr)) = &self.target else { return };
        match socket.send_to_addr(state.as_bytes(), addr) {
            Ok(_) => debug!(state, "systemd notified"),
            Err(e) => {
                if !self.failed.swap(true, Ordering::Relaxed) {
                    warn!(error = %e, state, "cannot notify systemd (further failures are not logged)");
                }
            }
        }
    }

    /// `STATUS=`, one line.
    pub fn status(&self, text: &str) {
        self.notify(&format!("STATUS={}", text.replace('\n', " ")));
    }
}

/// The watchdog interval systemd asked for (`$WATCHDOG_USEC`), unless `$WATCHDOG_PID` names another
/// process (the variables were inherited, not meant for us).
pub fn watchdog_interval() -> Option<Duration> {
    let another =
        std::env::var("WATCHDOG_PID").is_ok_and(|pid| pid.trim().parse::<u32>().ok() != Some(std::process::id()));
    if another {
        return None;
    }
    let usec = std::env::var("WATCHDOG_USEC").ok()?;
    match usec.trim().parse::<u64>() {
        Ok(usec) if usec > 0 => Some(Duration::from_micros(usec)),
        _ => {
            warn!(watchdog_usec = %usec, "WATCHDOG_USEC is not a positive number: no watchdog pings");
            None
        }
    }
}

/// A worker's progress: a counter its loop bumps.
pub type Progress = Arc<AtomicU64>;

/// A worker the watchdog watches.
pub struct Watched {
    pub name: String,
    read: Box<dyn Fn() -> u64 + Send>,
}

impl Watched {
    pub fn new(name: impl Into<String>, progress: Progress) -> Watched {
        Watched { name: name.into(), read: Box::new(move || progress.load(Ordering::Relaxed)) }
    }
}

/// Starts the watchdog thread: `WATCHDOG=1` every `interval / 2` while every worker's counter moved
/// within `interval`; stops with `shutdown`.
pub fn start_watchdog(
    notifier: Arc<Notifier>,
    workers: Vec<Watched>,
    interval: Duration,
    shutdown: &Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    let stop = shutdown.clone();
    info!(interval_ms = interval.as_millis() as u64, workers = workers.len(), "systemd watchdog enabled");
    std::thread::Builder::new().name("vigil-watchdog".into()).spawn(move || {
        let mut seen: Vec<(u64, Instant)> = workers.iter().map(|w| ((w.read)(), Instant::now())).collect();
        let mut stuck_before: Vec<String> = Vec::new();
        let tick = interval / 2;
        let mut next = Instant::now();
        while !stop.is_set() {
            if Instant::now() < next {
                std::thread::sleep(Duration::from_millis(100).min(next - Instant::now()));
                continue;
            }
            next += tick;
            let now = Instant::now();
            let mut stuck = Vec::new();
            for (worker, (last, since)) in workers.iter().zip(seen.iter_mut()) {
                let value = (worker.read)();
                if value != *last {
                    (*last, *since) = (value, now);
                } else if now.duration_since(*since) > interval {
                    stuck.push(worker.name.clone());
                }
            }
            if stuck.is_empty() {
                if notifier.ready() {
                    notifier.notify("WATCHDOG=1");
                }
                if !stuck_before.is_empty() {
                    info!(threads = %stuck_before.join(", "), "the stuck threads made progress again; watchdog pings resume");
                    notifier.status("running");
                }
            } else if stuck != stuck_before {
                warn!(threads = %stuck.join(", "), interval_ms = interval.as_millis() as u64,
                    "threads made no progress within the watchdog interval: pings to systemd stop \
                     (systemd restarts the agent)");
                notifier.status(&format!("stuck: {}", stuck.join(", ")));
            }
            stuck_before = stuck;
        }
    })
}

/// Test-only fault injection, read once: `VIGIL_TEST_HANG_ANALYSIS=<camera id>` makes that camera's
/// analysis thread hang (until shutdown) after its first frame, so that tests can see the watchdog
/// stop its pings. Not an operator option; not documented as one.
pub fn hang_analysis(camera: &str) -> bool {
    static HANG: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    HANG.get_or_init(|| std::env::var("VIGIL_TEST_HANG_ANALYSIS").ok()).as_deref() == Some(camera)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both address forms reach a bound socket; an abstract name has no file.
    #[test]
    fn notifications_reach_path_and_abstract_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let target = Some((UnixDatagram::unbound().unwrap(), SocketAddr::from_pathname(&path).unwrap()));
        Notifier { target, failed: AtomicBool::new(false), ready: AtomicBool::new(false) }.notify("READY=1");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        let name = format!("vigil-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        let notifier = Notifier {
            target: Some((UnixDatagram::unbound().unwrap(), addr)),
            failed: AtomicBool::new(false),
            ready: AtomicBool::new(false),
        };
        notifier.status("running:\n2 cameras");
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=running: 2 cameras");
    }
}
