//! The evidence task: writes each requested bundle once its post-roll is recorded, retries what fails,
//! and announces each written bundle through the outbox. And the acknowledgement task, which appends
//! the `ack` records of delivered bundles.
//!
//! One `Store` appends to the chain (a chain has one writer): the evidence task, the acknowledgement
//! task and retention share it behind a mutex ([`SharedStore`]); `vigil hold` opens it only while no
//! agent runs.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use tracing::{error, info, warn};

use super::Shutdown;
use super::sink::Emitter;
use crate::evidence::head::Head;
use crate::evidence::manifest::CameraIdentity;
use crate::evidence::pending::Pending;
use crate::evidence::store::{self, EvidenceError, EvidenceRequest, Store};
use crate::publish::events;

/// The one writer of the evidence chain, shared by the threads that append to it.
pub type SharedStore = Arc<Mutex<Store>>;

/// The store, also after a thread panicked holding it (its state is updated only after each entry is
/// durable, so what it holds stays true).
pub fn lock(store: &SharedStore) -> MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|e| e.into_inner())
}

/// A head as events carry it.
pub fn chain_head(head: &Head) -> events::ChainHead {
    events::ChainHead { sequence: head.sequence, manifest_sha256: head.manifest_sha256.clone(), epoch: head.epoch }
}

/// A request waiting for its bundle.
struct Waiting {
    request: EvidenceRequest,
    /// When to (re)try: after the post-roll, then with backoff while writing fails.
    due: SystemTime,
    failures: u32,
    /// Tried once during shutdown (not retried then: what fails waits for the next start).
    tried_at_stop: bool,
}

/// The recorder writes video a GOP and a fragment behind the stream (`source::clip`): a camera with
/// long GOPs has not written the end of a clip when its post-roll is over. While the camera is still
/// recording (its newest segment grew within [`RECORDING_LIVE`]) and has not reached the clip's end, the
/// bundle waits, up to [`RECORDER_WAIT`] past that end; after that, or with the recording stopped, it
/// is written with what there is (the manifest's `clip.missing` says what is not).
const RECORDING_LIVE: Duration = Duration::from_secs(5);
const RECORDER_WAIT: Duration = Duration::from_secs(30);

fn recorder_behind(request: &EvidenceRequest, now: SystemTime) -> bool {
    if now.duration_since(request.clip_to).is_ok_and(|late| late > RECORDER_WAIT) {
        return false;
    }
    match crate::source::clip::recorded_until(&request.recordings) {
        Ok(Some((until, modified))) => wait_for_recorder(until, modified, request.clip_to, now),
        _ => false,
    }
}

/// Whether the recording, written up to `until` and last modified at `modified`, is still on its way
/// to `clip_to` at `now`.
fn wait_for_recorder(until: SystemTime, modified: SystemTime, clip_to: SystemTime, now: SystemTime) -> bool {
    let live = now.duration_since(modified).map_or(true, |idle| idle <= RECORDING_LIVE);
    until < clip_to && live && now.duration_since(clip_to).map_or(true, |late| late <= RECORDER_WAIT)
}

/// Retries of a bundle that could not be written: 2 s doubling to 30 s.
fn evidence_retry_after(failures: u32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(failures.min(5)).min(30))
}

/// Writes each bundle once its post-roll has been recorded (plus a margin for the last fragment to reach
/// the disk). A bundle that cannot be written (a full disk, a failing clip) stays pending, on disk and in
/// memory, its video pinned (`Pending`), and is retried with backoff during the run; the failure is
/// logged at ERROR once per episode (until a bundle is written again). On shutdown, pending bundles are
/// tried once with what was recorded so far; those failing are written at the next start.
///
/// `cameras` names the configured cameras: a request saved by an older version, which did not record
/// its camera's identity, takes it from there.
pub fn start(
    store: SharedStore,
    saved: Arc<Pending>,
    requests: mpsc::Receiver<EvidenceRequest>,
    shutdown: &Shutdown,
    emitter: Emitter,
    cameras: Vec<CameraIdentity>,
    progress: super::notify::Progress,
) -> std::io::Result<JoinHandle<()>> {
    let stop = shutdown.clone();
    std::thread::Builder::new()
        .name("vigil-evidence".into())
        .spawn(move || evidence_worker(store, &saved, requests, &stop, &emitter, &cameras, &progress))
}

fn evidence_worker(
    store: SharedStore,
    saved: &Arc<Pending>,
    requests: mpsc::Receiver<EvidenceRequest>,
    stop: &Shutdown,
    emitter: &Emitter,
    cameras: &[CameraIdentity],
    progress: &super::notify::Progress,
) {
    const MARGIN: Duration = Duration::from_secs(3);
    let announce = |request: &EvidenceRequest, bundle: &store::BundleInfo, head: Option<Head>| {
        let name = bundle.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let (saved, event_id) = (saved.clone(), request.event_id);
        // The saved request is removed only once the outbox holds the announcement (it may wait in memory
        // for a full disk to clear).
        let record = events::evidence_record(
            &emitter.base,
            &emitter.site,
            &emitter.device,
            &request.camera,
            &request.event_id.to_string(),
            &name,
            bundle.sequence,
            &bundle.manifest_sha256,
            chain_head(&head.unwrap_or_else(|| bundle.head())),
        );
        let (kind, camera, sequence) = (request.kind.clone(), request.camera.clone(), bundle.sequence);
        let announcement = record.event_id.clone();
        emitter.emit(record, move || {
            info!(event_id = %announcement, for_event_id = %event_id, kind = %kind, camera = %camera, sequence,
                "evidence bundle announced");
            if let Err(e) = saved.remove(event_id) {
                warn!(event = %event_id, error = %e, "cannot remove the saved evidence request");
            }
        });
    };
    let waiting_for = |request: EvidenceRequest| Waiting {
        due: request.clip_to + MARGIN,
        request,
        failures: 0,
        tried_at_stop: false,
    };
    // Requests saved before a crash or stop: written now (their post-roll is long recorded), or only
    // announced when the bundle was written but the request not yet removed.
    let mut pending: Vec<Waiting> = Vec::new();
    for mut request in saved.load_all() {
        if request.camera_info.is_unknown() {
            if let Some(camera) = cameras.iter().find(|c| c.id == request.camera) {
                request.camera_info = camera.clone();
            }
        }
        let (existing, head) = {
            let store = lock(&store);
            (store.existing(request.event_id), store.head())
        };
        match existing {
            Ok(Some(bundle)) => announce(&request, &bundle, head),
            Ok(None) => pending.push(waiting_for(request)),
            Err(e) => error!(event = %request.event_id, error = %e, "cannot check the evidence store"),
        }
    }
    if !pending.is_empty() {
        info!(requests = pending.len(), "evidence requests saved before the last stop: writing their bundles");
    }
    // Since when writing fails, and how many bundles were written late once it works again.
    let mut failing_since: Option<std::time::Instant> = None;
    let mut open = true;
    while open || pending.iter().any(|w| !w.tried_at_stop) {
        // Every turn, a request or the wait's timeout, is progress for the systemd watchdog.
        progress.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        emitter.retry_held();
        match requests.recv_timeout(Duration::from_millis(500)) {
            Ok(request) => pending.push(waiting_for(request)),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
        }
        let stopping = stop.is_set() || !open;
        let now = SystemTime::now();
        let mut i = 0;
        while i < pending.len() {
            progress.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let due = if stopping { !pending[i].tried_at_stop } else { pending[i].due <= now };
            if !due {
                i += 1;
                continue;
            }
            if !stopping && recorder_behind(&pending[i].request, now) {
                pending[i].due = now + Duration::from_secs(1);
                i += 1;
                continue;
            }
            pending[i].tried_at_stop = stopping;
            let waiting = pending.len();
            let written = {
                let mut store = lock(&store);
                store.write(&pending[i].request).map(|bundle| (bundle, store.head()))
            };
            match written {
                Ok((bundle, head)) => {
                    let w = pending.remove(i);
                    let request = &w.request;
                    info!(event = %request.event_id, kind = %request.kind, camera = %request.camera,
                        sequence = bundle.sequence, dir = %bundle.dir.display(), attempts = w.failures + 1,
                        "evidence bundle written");
                    if let Some(since) = failing_since.take() {
                        warn!(
                            failing_secs = since.elapsed().as_secs(),
                            waiting = waiting - 1,
                            "evidence bundles are written again"
                        );
                    }
                    announce(request, &bundle, head);
                }
                Err(e) => {
                    let w = &mut pending[i];
                    let request = &w.request;
                    w.failures += 1;
                    let retry = evidence_retry_after(w.failures);
                    w.due = SystemTime::now() + retry;
                    // Kept on disk too, if saving failed when it was decided (the same full disk).
                    let saved_now = saved.is_saved(request.event_id) || saved.save(request).is_ok();
                    // An episode starts with a bundle failing for the first time while others were
                    // written: a bundle that keeps failing (its video was never recorded) does not raise
                    // a new ERROR each time another one is written in between; a WARN at its 8th, 16th,
                    // 32nd, … failure keeps it visible.
                    if matches!(e, EvidenceError::ClockBehind { .. }) {
                        // An operator must fix the clock: said every time, not once per episode.
                        error!(event = %request.event_id, kind = %request.kind, camera = %request.camera,
                            error = %e, failures = w.failures, retry_in = ?retry, saved = saved_now,
                            "evidence bundle not signed: kept and retried");
                    } else if w.failures >= 8 && w.failures.is_power_of_two() {
                        warn!(event = %request.event_id, kind = %request.kind, camera = %request.camera,
                            error = %e, failures = w.failures, "evidence bundle still not written; retried");
                    } else if w.failures > 1 {
                        tracing::debug!(event = %request.event_id, error = %e, failures = w.failures,
                            retry_in = ?retry, "evidence bundle still not written");
                    } else if failing_since.is_none() {
                        failing_since = Some(std::time::Instant::now());
                        error!(event = %request.event_id, kind = %request.kind, camera = %request.camera,
                            error = %e, saved = saved_now, waiting,
                            "EVIDENCE BUNDLE NOT WRITTEN: kept with its video pinned and retried every 2-30 s \
                             (further failures logged at WARN once per bundle until one is written)");
                    } else {
                        warn!(event = %request.event_id, kind = %request.kind, camera = %request.camera,
                            error = %e, saved = saved_now, "evidence bundle not written yet; retried");
                    }
                    i += 1;
                }
            }
        }
    }
    if !pending.is_empty() {
        let unsaved = pending.iter().filter(|w| !saved.is_saved(w.request.event_id)).count();
        error!(
            bundles = pending.len(),
            unsaved,
            "evidence bundles not written at shutdown: saved requests are written at the next start \
             (unsaved ones, if any, are lost)"
        );
    }
}

/// A delivered `evidence_ready`: the event whose bundle the platform acknowledged, and when.
pub type Ack = (String, SystemTime);

/// Acknowledgements that fail (a full disk, a clock behind the chain) are retried this often.
const ACK_RETRY: Duration = Duration::from_secs(30);

/// The acknowledgement task: appends an `ack` record for each delivered bundle (the publisher only
/// sends on the channel: it never waits for the store, which may be busy writing a bundle). Runs until
/// every sender is gone (the publisher stopped), having tried what was sent.
pub fn start_acks(store: SharedStore) -> std::io::Result<(mpsc::Sender<Ack>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel::<Ack>();
    let thread = std::thread::Builder::new().name("vigil-acks".into()).spawn(move || {
        let mut failed: Vec<Ack> = Vec::new();
        let mut retry_at = std::time::Instant::now() + ACK_RETRY;
        let mut open = true;
        while open {
            let mut due: Vec<Ack> = Vec::new();
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(ack) => due.push(ack),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
            }
            if !open || std::time::Instant::now() >= retry_at {
                due.append(&mut failed);
                retry_at = std::time::Instant::now() + ACK_RETRY;
            }
            for (event, at) in due {
                match lock(&store).acknowledge(&event, at) {
                    Ok(_) => {}
                    Err(e @ EvidenceError::UnknownEvent(_)) => {
                        warn!(event, error = %e, "delivered evidence_ready names no bundle of this store")
                    }
                    Err(e) => {
                        warn!(event, error = %e, retry_in = ?ACK_RETRY, "cannot record the bundle's acknowledgement");
                        failed.push((event, at));
                    }
                }
            }
        }
        if !failed.is_empty() {
            error!(
                bundles = failed.len(),
                "acknowledgements not recorded at shutdown: those bundles stay unacknowledged (never pruned)"
            );
        }
    })?;
    Ok((tx, thread))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A camera with 4 s GOPs had not written the last seconds of a clip 3 s after its post-roll: the
    /// bundle waits for the recorder while it records, and not for a recording that stopped or forever.
    #[test]
    fn a_bundle_waits_for_a_recorder_that_is_still_writing_its_clip() {
        let t = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s);
        let clip_to = t(100);
        assert!(wait_for_recorder(t(98), t(103), clip_to, t(103)), "recording, not there yet: wait");
        assert!(!wait_for_recorder(t(101), t(103), clip_to, t(103)), "written past the clip's end");
        assert!(!wait_for_recorder(t(96), t(96), clip_to, t(103)), "the recording stopped at 96 s (a crash)");
        assert!(!wait_for_recorder(t(98), t(131), clip_to, t(131)), "waited 30 s: written with what there is");
    }
}
