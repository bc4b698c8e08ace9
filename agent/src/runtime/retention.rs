//! Retention: the free-space floor of the recordings, expired evidence and settlement faces.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use tracing::{error, info, warn};

use super::Shutdown;
use super::evidence::{SharedStore, lock};
use crate::config::Config;
use crate::gallery::settlements::SettlementLog;
use crate::source::recorder;

/// How often free space is checked: statvfs is cheap, and a camera writing 1 MB/s gets through a
/// floor's worth of disk in minutes, not hours.
const FREE_SPACE_EVERY: Duration = Duration::from_secs(1);

/// Every second and after each closed segment: keep free disk space above `retention.min_free_bytes` by
/// deleting as many of the oldest recording segments as it takes (never evidence, never video pinned by a bundle not yet written).
/// Every minute: prune acknowledged, expired, unheld bundles (through the one store: a prune record is
/// a chain entry) and expired settlement faces.
pub fn start(
    config: &Config,
    shutdown: &Shutdown,
    settled: Arc<Mutex<SettlementLog>>,
    store: SharedStore,
) -> std::io::Result<JoinHandle<()>> {
    let (config, stop) = (config.clone(), shutdown.clone());
    std::thread::Builder::new()
        .name("vigil-retention".into())
        .spawn(move || retention_worker(&config, &stop, &settled, &store))
}

fn retention_worker(config: &Config, stop: &Shutdown, settled: &Mutex<SettlementLog>, store: &SharedStore) {
    let recordings = config.storage.recordings_dir();
    let _ = std::fs::create_dir_all(&recordings);
    let evidence_dir = config.storage.evidence_dir();
    let min_free = config.retention.min_free_bytes.0;
    let evidence_days = config.retention.evidence_days;
    let mut floor = recorder::FloorWatch::default();
    let mut check_failing = false;
    let (mut next_check, mut next_prune) = (std::time::Instant::now(), std::time::Instant::now());
    let (mut evicted, mut evicted_bytes) = (0u64, 0u64);
    let mut segments_seen = recorder::wait_for_segment(u64::MAX, Duration::ZERO);
    while !stop.is_set() {
        let now = std::time::Instant::now();
        if now < next_check {
            // Also right after a camera closes a segment.
            let closed = recorder::wait_for_segment(segments_seen, Duration::from_millis(100).min(next_check - now));
            if closed > segments_seen {
                segments_seen = closed;
                next_check = std::time::Instant::now();
            }
            continue;
        }
        next_check = now + FREE_SPACE_EVERY;
        match recorder::make_room(&recordings, min_free, || recorder::free_bytes(&recordings)) {
            Ok(room) => {
                check_failing = false;
                evicted += room.deleted as u64;
                evicted_bytes += room.deleted_bytes;
                if room.deleted > 0 {
                    tracing::debug!(
                        deleted = room.deleted,
                        deleted_bytes = room.deleted_bytes,
                        free_bytes = room.free_bytes,
                        "oldest recordings deleted to keep the free-space floor"
                    );
                }
                match floor.observe(&room, min_free, now) {
                    Some(recorder::FloorNotice::Evicting) => warn!(
                        deleted = room.deleted,
                        free_bytes = room.free_bytes,
                        min_free_bytes = min_free,
                        "free disk space reached retention.min_free_bytes: the oldest recordings are deleted to \
                         keep it (the cameras' recordings_max_bytes_per_camera add up to more than the disk)"
                    ),
                    Some(recorder::FloorNotice::CannotKeep) => error!(
                        free_bytes = room.free_bytes,
                        min_free_bytes = min_free,
                        deleted = room.deleted,
                        pinned_segments = room.pinned,
                        pinned_bytes = room.pinned_bytes,
                        open_segments_bytes = room.newest_bytes,
                        evidence_bytes = recorder::dir_bytes(&evidence_dir),
                        bundles_waiting = recorder::pins().len(),
                        "DISK FULL: free space below retention.min_free_bytes and no recording left that may be \
                         deleted (the rest is evidence, video pinned by bundles not yet written, and open \
                         segments; evidence is never deleted): free disk space, new recordings and events may fail"
                    ),
                    Some(recorder::FloorNotice::Recovered { after }) => warn!(
                        free_bytes = room.free_bytes,
                        min_free_bytes = min_free,
                        below_secs = after.as_secs(),
                        "free disk space back above retention.min_free_bytes"
                    ),
                    None => {}
                }
            }
            Err(e) if !check_failing => {
                check_failing = true;
                error!(error = %e, dir = %recordings.display(),
                    "cannot check or make free disk space (retried every second)");
            }
            Err(_) => {}
        }
        if now < next_prune {
            continue;
        }
        next_prune = now + Duration::from_secs(60);
        if evicted > 0 {
            info!(segments = evicted, bytes = evicted_bytes, "recordings deleted for free space in the last minute");
            (evicted, evicted_bytes) = (0, 0);
        }
        match settled.lock().unwrap_or_else(|e| e.into_inner()).expire(SystemTime::now()) {
            Ok(0) => {}
            Ok(n) => info!(forgotten = n, "settlement faces past settlement.face_retention_days deleted"),
            Err(e) => error!(error = %e, "cannot delete expired settlement faces"),
        }
        // A signed prune record names what is removed, before it is.
        let pruned = lock(store).prune(evidence_days, SystemTime::now());
        match pruned {
            Ok(0) => {}
            Ok(n) => info!(
                pruned = n,
                "media of acknowledged, expired evidence bundles removed (manifests kept, \
                a signed prune record names them)"
            ),
            Err(e) => warn!(error = %e, "evidence retention failed"),
        }
    }
}
