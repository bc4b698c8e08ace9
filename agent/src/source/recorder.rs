//! The recording ring of one camera: `<recordings_dir>/<camera>/<unix ms>.mp4` segments, oldest deleted
//! first when the camera's disk budget is exceeded ([`prune`], after each segment) or when free disk
//! space falls below `retention.min_free_bytes` ([`make_room`], every second and after each segment,
//! across cameras).
//!
//! Neither ever deletes a camera's newest segment (it may be open) nor a segment **pinned** by an
//! evidence bundle not yet written ([`Pins`]): the video a bundle needs is kept until the bundle exists.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A recorded segment: file, start time (from its name) and size.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub path: PathBuf,
    pub start: SystemTime,
    pub bytes: u64,
}

/// The camera's segments, oldest first. Files that are not segments are ignored.
pub fn segments(dir: &Path) -> std::io::Result<Vec<Segment>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let Some(ms) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".mp4"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let bytes = entry.metadata()?.len();
        found.push(Segment { path, start: UNIX_EPOCH + Duration::from_millis(ms), bytes });
    }
    found.sort_by_key(|s| s.start);
    Ok(found)
}

/// Video an evidence bundle still needs: the segments of the camera directory `dir` that overlap
/// `[from, to]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pin {
    pub dir: PathBuf,
    pub from: SystemTime,
    pub to: SystemTime,
}

/// Pinned video, by event. One registry per process rather than one handed to every worker: the ring
/// is pruned by each camera's supervisor thread and by the free-space check, while pins are placed by
/// whoever saves an evidence request (docs/evidence.md, "Retention"); the data directory's lock makes
/// this process the only one pruning it. Pins are matched by camera directory, so agents in one process
/// (tests) with different data directories do not see each other's.
#[derive(Debug, Default)]
pub struct Pins {
    by_event: Mutex<HashMap<uuid::Uuid, Pin>>,
}

static PINS: LazyLock<Pins> = LazyLock::new(Pins::default);

/// The pins of this process.
pub fn pins() -> &'static Pins {
    &PINS
}

impl Pins {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<uuid::Uuid, Pin>> {
        self.by_event.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps the video `pin` names until [`Pins::unpin`] of the same event.
    pub fn pin(&self, event: uuid::Uuid, pin: Pin) {
        self.map().insert(event, pin);
    }

    pub fn unpin(&self, event: uuid::Uuid) {
        self.map().remove(&event);
    }

    /// Events with pinned video.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pinned intervals in camera directory `dir`.
    pub fn intervals(&self, dir: &Path) -> Vec<(SystemTime, SystemTime)> {
        self.map().values().filter(|p| p.dir == dir).map(|p| (p.from, p.to)).collect()
    }
}

/// Which of `segments` (one camera's, oldest first) a pinned interval needs. A segment covers [its start,
/// the next one's start), the rule `clip::cut` picks segments by, so a pinned clip finds all it needs.
pub fn pinned(segments: &[Segment], intervals: &[(SystemTime, SystemTime)]) -> Vec<bool> {
    segments
        .iter()
        .enumerate()
        .map(|(i, segment)| {
            let next = segments.get(i + 1).map(|n| n.start);
            intervals.iter().any(|&(from, to)| segment.start <= to && next.is_none_or(|n| n > from))
        })
        .collect()
}

/// Removes a segment; one already gone (the camera's ring and the free-space check race) is not an error.
fn remove(segment: &Segment) -> std::io::Result<bool> {
    match std::fs::remove_file(&segment.path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Segments closed in this process (counted by [`prune`], which cameras call after each one), so the
/// free-space check can run right after a segment closes, not only on its timer.
static CLOSED: (Mutex<u64>, Condvar) = (Mutex::new(0), Condvar::new());

/// Waits up to `timeout` for a segment to close after the `seen`-th; returns the count now.
pub fn wait_for_segment(seen: u64, timeout: Duration) -> u64 {
    let (count, closed) = &CLOSED;
    let guard = count.lock().unwrap_or_else(|e| e.into_inner());
    let (guard, _) = closed.wait_timeout_while(guard, timeout, |n| *n <= seen).unwrap_or_else(|e| e.into_inner());
    *guard
}

/// Deletes the oldest segments until the camera's total is within `max_bytes`, never the newest one
/// (it may be open) nor a pinned one. Returns the deleted segments. Called after every segment.
pub fn prune(dir: &Path, max_bytes: u64) -> std::io::Result<Vec<Segment>> {
    {
        let (count, closed) = &CLOSED;
        *count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        closed.notify_all();
    }
    prune_pinned(dir, max_bytes, &pins().intervals(dir))
}

/// [`prune`] with the pinned intervals given.
pub fn prune_pinned(
    dir: &Path,
    max_bytes: u64,
    intervals: &[(SystemTime, SystemTime)],
) -> std::io::Result<Vec<Segment>> {
    let all = segments(dir)?;
    let keep = pinned(&all, intervals);
    let mut total: u64 = all.iter().map(|s| s.bytes).sum();
    let mut deleted = Vec::new();
    for (segment, pinned) in all.iter().zip(keep).take(all.len().saturating_sub(1)) {
        if total <= max_bytes {
            break;
        }
        if pinned {
            continue;
        }
        if remove(segment)? {
            deleted.push(segment.clone());
        }
        total -= segment.bytes;
    }
    Ok(deleted)
}

/// Free bytes on the file system holding `path` (for unprivileged users).
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `stat` a properly sized, writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// Bytes of the files under `dir`, recursively (0 when it does not exist): for the figures of a
/// full-disk report.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// What one free-space check found and did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Room {
    /// Segments deleted, and their bytes.
    pub deleted: usize,
    pub deleted_bytes: u64,
    /// Free bytes after the check.
    pub free_bytes: u64,
    /// Segments kept because an evidence bundle not yet written needs them, and their bytes (counted
    /// only when there was something to delete).
    pub pinned: usize,
    pub pinned_bytes: u64,
    /// Bytes of the cameras' newest segments, which may be open and are never deleted (idem).
    pub newest_bytes: u64,
}

/// When free space under `recordings` is below `min_free`, deletes as many of the oldest segments of
/// all cameras as it takes to be back above it, oldest first across cameras, never a camera's newest
/// nor a pinned one. Evidence is never touched.
pub fn make_room(recordings: &Path, min_free: u64, free: impl Fn() -> std::io::Result<u64>) -> std::io::Result<Room> {
    make_room_pinned(recordings, min_free, |dir| pins().intervals(dir), free)
}

/// [`make_room`] with the pinned intervals of each camera directory given by `intervals`.
pub fn make_room_pinned(
    recordings: &Path,
    min_free: u64,
    intervals: impl Fn(&Path) -> Vec<(SystemTime, SystemTime)>,
    free: impl Fn() -> std::io::Result<u64>,
) -> std::io::Result<Room> {
    let mut room = Room { free_bytes: free()?, ..Room::default() };
    if room.free_bytes >= min_free {
        return Ok(room);
    }
    let mut candidates = Vec::new();
    if let Ok(cameras) = std::fs::read_dir(recordings) {
        for camera in cameras.flatten() {
            let dir = camera.path();
            let mut segs = segments(&dir)?;
            let Some(newest) = segs.pop() else { continue };
            room.newest_bytes += newest.bytes;
            // The newest counts as the next one's start for the one before it, so judge with it present.
            let mut keep = pinned(&[segs.as_slice(), &[newest]].concat(), &intervals(&dir));
            keep.pop();
            for (segment, pinned) in segs.into_iter().zip(keep) {
                if pinned {
                    room.pinned += 1;
                    room.pinned_bytes += segment.bytes;
                } else {
                    candidates.push(segment);
                }
            }
        }
    }
    candidates.sort_by_key(|s| s.start);
    for segment in candidates {
        if room.free_bytes >= min_free {
            break;
        }
        if remove(&segment)? {
            room.deleted += 1;
            room.deleted_bytes += segment.bytes;
        }
        room.free_bytes = free()?;
    }
    Ok(room)
}

/// What an operator hears about the free-space floor: once per episode, not at every check.
#[derive(Debug, Clone, PartialEq)]
pub enum FloorNotice {
    /// Recordings were deleted to keep the floor, for the first time in this run (the cameras' budgets
    /// add up to more than the disk: the floor, not the budgets, bounds the ring).
    Evicting,
    /// Below the floor with no recording left that may be deleted.
    CannotKeep,
    /// Back above the floor after `after` below it.
    Recovered { after: Duration },
}

/// Turns the free-space checks into [`FloorNotice`]s.
#[derive(Debug, Default)]
pub struct FloorWatch {
    evicting_announced: bool,
    below_since: Option<Instant>,
}

impl FloorWatch {
    pub fn observe(&mut self, room: &Room, min_free: u64, now: Instant) -> Option<FloorNotice> {
        if room.free_bytes < min_free {
            if self.below_since.is_none() {
                self.below_since = Some(now);
                return Some(FloorNotice::CannotKeep);
            }
            return None;
        }
        if let Some(since) = self.below_since.take() {
            return Some(FloorNotice::Recovered { after: now.saturating_duration_since(since) });
        }
        if room.deleted > 0 && !self.evicting_announced {
            self.evicting_announced = true;
            return Some(FloorNotice::Evicting);
        }
        None
    }

    /// Whether the floor is not kept at the moment.
    pub fn below(&self) -> bool {
        self.below_since.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prunes_oldest_first_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        for (ms, size) in [(3000u64, 100usize), (1000, 100), (2000, 100), (4000, 500)] {
            std::fs::write(dir.path().join(format!("{ms:013}.mp4")), vec![0u8; size]).unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let deleted = prune(dir.path(), 650).unwrap();
        let names: Vec<_> = deleted.iter().map(|s| s.path.file_name().unwrap().to_str().unwrap().to_owned()).collect();
        assert_eq!(names, ["0000000001000.mp4", "0000000002000.mp4"]);
        // Even over budget, the newest (open) segment stays.
        prune(dir.path(), 0).unwrap();
        let left: Vec<_> = segments(dir.path()).unwrap().into_iter().map(|s| s.bytes).collect();
        assert_eq!(left, [500]);
    }

    #[test]
    fn make_room_deletes_oldest_across_cameras_until_enough_is_free() {
        let dir = tempfile::tempdir().unwrap();
        for (cam, ms) in [("a", 1000u64), ("a", 4000), ("b", 2000), ("b", 3000), ("b", 5000)] {
            std::fs::create_dir_all(dir.path().join(cam)).unwrap();
            std::fs::write(dir.path().join(cam).join(format!("{ms:013}.mp4")), vec![0u8; 100]).unwrap();
        }
        // Pretend the disk has 100 bytes free plus whatever was deleted; 300 are wanted.
        let root = dir.path().to_owned();
        let free = || {
            Ok(100
                + (5 - segments(&root.join("a")).unwrap().len() - segments(&root.join("b")).unwrap().len()) as u64
                    * 100)
        };
        let room = make_room_pinned(dir.path(), 300, |_| Vec::new(), free).unwrap();
        assert_eq!((room.deleted, room.free_bytes), (2, 300));
        let left: Vec<_> = ["a", "b"]
            .iter()
            .flat_map(|c| segments(&dir.path().join(c)).unwrap())
            .map(|s| s.path.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(left, ["0000000004000.mp4", "0000000003000.mp4", "0000000005000.mp4"]);
        assert!(free_bytes(dir.path()).unwrap() > 0);
    }

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn write_segments(dir: &Path, camera: &str, starts: &[u64], size: usize) {
        std::fs::create_dir_all(dir.join(camera)).unwrap();
        for ms in starts {
            std::fs::write(dir.join(camera).join(format!("{ms:013}.mp4")), vec![0u8; size]).unwrap();
        }
    }

    fn names(dir: &Path) -> Vec<u64> {
        segments(dir).unwrap().iter().map(|s| s.start.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64).collect()
    }

    #[test]
    fn a_segment_is_pinned_when_its_span_overlaps_the_clip() {
        let segs: Vec<Segment> = [0u64, 10_000, 20_000, 30_000]
            .iter()
            .map(|&ms| Segment { path: PathBuf::new(), start: at(ms), bytes: 1 })
            .collect();
        // [12 s, 25 s] needs the segments starting at 10 s and 20 s; [35 s, 40 s] the open-ended last one.
        assert_eq!(pinned(&segs, &[(at(12_000), at(25_000))]), [false, true, true, false]);
        assert_eq!(pinned(&segs, &[(at(35_000), at(40_000))]), [false, false, false, true]);
        // A clip starting exactly where a segment ends does not need it.
        assert_eq!(pinned(&segs, &[(at(10_000), at(10_500))]), [false, true, false, false]);
        assert_eq!(pinned(&segs, &[]), [false; 4]);
    }

    /// `prune` (the camera's ring after each segment) skips the video an unwritten bundle needs: before,
    /// eviction deleted the video of 6 bundles whose writing had failed, losing them for good.
    #[test]
    fn ring_prune_keeps_pinned_video() {
        let dir = tempfile::tempdir().unwrap();
        write_segments(dir.path(), "cam", &[1000, 2000, 3000, 4000, 5000], 100);
        let cam = dir.path().join("cam");
        // A bundle needs [2.5 s, 3.5 s]: segments 2000 and 3000.
        let deleted = prune_pinned(&cam, 150, &[(at(2500), at(3500))]).unwrap();
        assert_eq!(deleted.len(), 2, "1000 and 4000 deleted, the pinned ones skipped");
        assert_eq!(names(&cam), [2000, 3000, 5000]);
        // Through the process's pins, which `prune` consults; unpinned, they go.
        let event = uuid::Uuid::now_v7();
        pins().pin(event, Pin { dir: cam.clone(), from: at(2500), to: at(2600) });
        prune(&cam, 0).unwrap();
        assert_eq!(names(&cam), [2000, 5000]);
        pins().unpin(event);
        prune(&cam, 0).unwrap();
        assert_eq!(names(&cam), [5000], "the newest stays");
    }

    /// The free-space floor: as many segments as needed (not a fixed count), oldest first across
    /// cameras, pinned and newest ones skipped; the figures say what was kept and why.
    #[test]
    fn make_room_deletes_as_many_as_needed_and_skips_pinned_video() {
        let dir = tempfile::tempdir().unwrap();
        write_segments(dir.path(), "a", &[1000, 3000, 5000, 7000, 9000], 100);
        write_segments(dir.path(), "b", &[2000, 4000, 6000, 8000, 10_000], 100);
        let root = dir.path().to_owned();
        let count = || segments(&root.join("a")).unwrap().len() + segments(&root.join("b")).unwrap().len();
        // 50 bytes free plus what was deleted; 550 wanted: six segments must go.
        let free = || Ok(50 + (10 - count()) as u64 * 100);
        let cam_a = dir.path().join("a");
        let intervals = |d: &Path| if d == cam_a { vec![(at(3500), at(4000))] } else { Vec::new() };
        let room = make_room_pinned(dir.path(), 550, intervals, free).unwrap();
        assert_eq!((room.deleted, room.deleted_bytes, room.free_bytes), (5, 500, 550));
        assert_eq!((room.pinned, room.pinned_bytes, room.newest_bytes), (1, 100, 200));
        assert_eq!(names(&dir.path().join("a")), [3000, 7000, 9000], "a's pinned 3000 kept, 1000 and 5000 gone");
        assert_eq!(names(&dir.path().join("b")), [8000, 10_000], "b's oldest two gone");
        // Nothing left to delete: below the floor, and the figures say why.
        let room = make_room_pinned(dir.path(), 10_000, intervals, free).unwrap();
        assert_eq!((room.deleted, room.pinned, room.newest_bytes), (2, 1, 200));
        assert!(room.free_bytes < 10_000);
        assert_eq!(names(&dir.path().join("a")), [3000, 9000]);
        // Enough free: nothing listed or deleted.
        let room = make_room_pinned(dir.path(), 100, intervals, free).unwrap();
        assert_eq!(room.deleted, 0);
    }

    #[test]
    fn a_closed_segment_wakes_the_free_space_check() {
        let dir = tempfile::tempdir().unwrap();
        let seen = wait_for_segment(u64::MAX, Duration::ZERO);
        let started = Instant::now();
        let waiter = std::thread::spawn(move || wait_for_segment(seen, Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(50));
        prune(dir.path(), 0).unwrap();
        assert!(waiter.join().unwrap() > seen);
        assert!(started.elapsed() < Duration::from_secs(30), "woken by the segment, not the timeout");
    }

    #[test]
    fn the_floor_is_reported_once_per_episode() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut watch = FloorWatch::default();
        let room = |deleted, free_bytes| Room { deleted, free_bytes, ..Room::default() };
        assert_eq!(watch.observe(&room(0, 500), 100, s(0)), None);
        assert_eq!(watch.observe(&room(2, 150), 100, s(1)), Some(FloorNotice::Evicting));
        assert_eq!(watch.observe(&room(3, 150), 100, s(2)), None, "evicting is said once");
        assert_eq!(watch.observe(&room(1, 50), 100, s(3)), Some(FloorNotice::CannotKeep));
        assert!(watch.below());
        for t in 4..10 {
            assert_eq!(watch.observe(&room(0, 10), 100, s(t)), None, "one ERROR per episode");
        }
        assert_eq!(
            watch.observe(&room(0, 120), 100, s(10)),
            Some(FloorNotice::Recovered { after: Duration::from_secs(7) })
        );
        assert_eq!(watch.observe(&room(0, 120), 100, s(11)), None);
        assert_eq!(watch.observe(&room(0, 90), 100, s(12)), Some(FloorNotice::CannotKeep), "a new episode");
    }
}
