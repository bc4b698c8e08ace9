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
}
