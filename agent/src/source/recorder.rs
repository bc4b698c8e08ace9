//! The recording ring of one camera: `<recordings_dir>/<camera>/<unix ms>.mp4` segments, oldest deleted
//! first when the camera's disk budget is exceeded.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// Deletes the oldest segments until the camera's total is within `max_bytes`, never the newest one
/// (it may be open). Returns the deleted segments.
pub fn prune(dir: &Path, max_bytes: u64) -> std::io::Result<Vec<Segment>> {
    let all = segments(dir)?;
    let mut total: u64 = all.iter().map(|s| s.bytes).sum();
    let mut deleted = Vec::new();
    for segment in all.iter().take(all.len().saturating_sub(1)) {
        if total <= max_bytes {
            break;
        }
        std::fs::remove_file(&segment.path)?;
        total -= segment.bytes;
        deleted.push(segment.clone());
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

/// When free space under `recordings` falls below `min_free`, deletes the oldest segments of all cameras
/// (never a camera's newest, which may be open) until it is back above. Evidence is never touched.
/// Returns the number of segments deleted and the free bytes after.
pub fn make_room(
    recordings: &Path,
    min_free: u64,
    free: impl Fn() -> std::io::Result<u64>,
) -> std::io::Result<(usize, u64)> {
    let mut available = free()?;
    if available >= min_free {
        return Ok((0, available));
    }
    let mut candidates = Vec::new();
    if let Ok(cameras) = std::fs::read_dir(recordings) {
        for camera in cameras.flatten() {
            let mut segs = segments(&camera.path())?;
            segs.pop();
            candidates.extend(segs);
        }
    }
    candidates.sort_by_key(|s| s.start);
    let mut deleted = 0;
    for segment in candidates {
        if available >= min_free {
            break;
        }
        std::fs::remove_file(&segment.path)?;
        deleted += 1;
        available = free()?;
    }
    Ok((deleted, available))
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
        let (deleted, available) = make_room(dir.path(), 300, free).unwrap();
        assert_eq!((deleted, available), (2, 300));
        let left: Vec<_> = ["a", "b"]
            .iter()
            .flat_map(|c| segments(&dir.path().join(c)).unwrap())
            .map(|s| s.path.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(left, ["0000000004000.mp4", "0000000003000.mp4", "0000000005000.mp4"]);
        assert!(free_bytes(dir.path()).unwrap() > 0);
    }
}
