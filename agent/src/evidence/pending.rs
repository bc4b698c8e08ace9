//! Evidence requests waiting for their post-roll, kept on disk so that a crash or power cut between a
//! decision and its bundle still yields the bundle at the next start.
//!
//! Each request is two files in `<data_dir>/evidence-pending/`: `<event_id>.png` (the decisive frame,
//! lossless) and `<event_id>.json` (everything else), each written to a temp file, fsync'd and renamed,
//! the JSON last: a request is pending exactly when its JSON exists. It is saved before the decision's
//! event is appended to the outbox, so an event announcing evidence always has its request on disk. The
//! file pair is removed once the bundle is written; a bundle already present for the event (a crash
//! between the bundle's rename and the removal) is not written twice.
//!
//! A pending request pins the recorded video its clip needs ([`recorder::pins`]) from the moment it is
//! saved (even when saving fails: a full disk) or loaded at start, until it is removed: neither the
//! camera's ring nor the free-space floor may delete the video of a bundle not yet written.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::manifest::CameraIdentity;
use super::store::{Detection, EvidenceRequest};
use crate::source::recorder::{self, Pin};

fn pin(request: &EvidenceRequest) {
    let pin = Pin { dir: request.recordings.clone(), from: request.clip_from, to: request.clip_to };
    recorder::pins().pin(request.event_id, pin);
}

/// A request's JSON. Fields added later are optional, so requests saved by an older version (before
/// an upgrade) still load: without `camera_info` the camera is [`CameraIdentity::unknown`] (the
/// evidence worker fills it in from the configuration), without `onset` the clip starts where it was
/// asked to, without `thresholds` the manifest records none.
#[derive(Serialize, Deserialize)]
struct Stored {
    event_id: uuid::Uuid,
    kind: String,
    camera: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    camera_info: Option<CameraIdentity>,
    at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    onset_ms: Option<u64>,
    #[serde(default)]
    thresholds: BTreeMap<String, String>,
    details: BTreeMap<String, String>,
    snapshot_at_ms: u64,
    detections: Vec<(String, [f32; 4], f32)>,
    recordings: PathBuf,
    clip_from_ms: u64,
    clip_to_ms: u64,
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

fn time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

pub struct Pending {
    dir: PathBuf,
}

impl Pending {
    pub fn new(dir: &Path) -> Pending {
        Pending { dir: dir.to_owned() }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let (tmp, path) = (self.dir.join(format!(".tmp-{name}")), self.dir.join(name));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    }

    /// Pins the request's video, then saves the request durably. On failure the pin stays: the
    /// evidence worker still holds the request and retries both.
    pub fn save(&self, request: &EvidenceRequest) -> std::io::Result<()> {
        pin(request);
        std::fs::create_dir_all(&self.dir)?;
        let mut png = Vec::new();
        let encoder = image::codecs::png::PngEncoder::new_with_quality(
            &mut png,
            image::codecs::png::CompressionType::Fast,
            image::codecs::png::FilterType::Sub,
        );
        request.snapshot.write_with_encoder(encoder).map_err(std::io::Error::other)?;
        let id = request.event_id;
        self.write(&format!("{id}.png"), &png)?;
        let stored = Stored {
            event_id: id,
            kind: request.kind.clone(),
            camera: request.camera.clone(),
            camera_info: Some(request.camera_info.clone()),
            at_ms: ms(request.at),
            onset_ms: request.onset.map(ms),
            thresholds: request.thresholds.clone(),
            details: request.details.clone(),
            snapshot_at_ms: ms(request.snapshot_at),
            detections: request.detections.iter().map(|d| (d.label.clone(), d.bbox, d.score)).collect(),
            recordings: request.recordings.clone(),
            clip_from_ms: ms(request.clip_from),
            clip_to_ms: ms(request.clip_to),
        };
        self.write(&format!("{id}.json"), &serde_json::to_vec(&stored).expect("serialises"))?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// Requests saved and not yet removed (their bundle not yet written, or written and not yet
    /// announced); 0 when the directory cannot be read (it does not exist before the first one).
    pub fn count(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return 0 };
        entries
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".json") && !n.starts_with(".tmp-")))
            .count()
    }

    /// Whether the request is on disk (its save may have failed on a full disk).
    pub fn is_saved(&self, event_id: uuid::Uuid) -> bool {
        self.dir.join(format!("{event_id}.json")).exists()
    }

    /// Forgets a request whose bundle is written, and unpins its video. A request that was never
    /// saved is not an error.
    pub fn remove(&self, event_id: uuid::Uuid) -> std::io::Result<()> {
        recorder::pins().unpin(event_id);
        match std::fs::remove_file(self.dir.join(format!("{event_id}.json"))) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let _ = std::fs::remove_file(self.dir.join(format!("{event_id}.png")));
        Ok(())
    }

    /// Every saved request, oldest event first, each pinning its video again (pins outlive a restart);
    /// leftovers of interrupted saves are removed, unreadable requests are reported and skipped (kept on
    /// disk for an operator).
    pub fn load_all(&self) -> Vec<EvidenceRequest> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut requests = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            let Some(id) = name.strip_suffix(".json") else { continue };
            match self.load(id) {
                Ok(r) => {
                    pin(&r);
                    requests.push(r);
                }
                Err(e) => tracing::error!(request = %entry.path().display(), error = %e,
                    "pending evidence request unreadable; its bundle cannot be written"),
            }
        }
        requests.sort_by_key(|r| r.at);
        requests
    }

    fn load(&self, id: &str) -> Result<EvidenceRequest, String> {
        let json = std::fs::read(self.dir.join(format!("{id}.json"))).map_err(|e| e.to_string())?;
        let s: Stored = serde_json::from_slice(&json).map_err(|e| e.to_string())?;
        let snapshot =
            crate::analyze::image::load_rgb(&self.dir.join(format!("{id}.png"))).map_err(|e| e.to_string())?;
        Ok(EvidenceRequest {
            event_id: s.event_id,
            kind: s.kind,
            camera_info: s.camera_info.unwrap_or_else(|| CameraIdentity::unknown(&s.camera)),
            camera: s.camera,
            at: time(s.at_ms),
            onset: s.onset_ms.map(time),
            thresholds: s.thresholds,
            details: s.details,
            snapshot,
            snapshot_at: time(s.snapshot_at_ms),
            detections: s.detections.into_iter().map(|(label, bbox, score)| Detection { label, bbox, score }).collect(),
            recordings: s.recordings,
            clip_from: time(s.clip_from_ms),
            clip_to: time(s.clip_to_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_survive_a_restart_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let pending = Pending::new(&dir.path().join("evidence-pending"));
        let t0 = UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
        let request = |id: u128, at: SystemTime| EvidenceRequest {
            event_id: uuid::Uuid::from_u128(id),
            kind: "bed_absent".into(),
            camera: "ward-3".into(),
            camera_info: CameraIdentity::new("ward-3", "ward", Some("Ward 3"), "rtsp://u:pw@cam3/live"),
            at,
            onset: None,
            thresholds: [("enter_secs".to_owned(), "60".to_owned())].into(),
            details: [("bed".to_owned(), "bed-2".to_owned())].into(),
            snapshot: image::RgbImage::from_fn(64, 36, |x, y| image::Rgb([x as u8, y as u8, 7])),
            snapshot_at: at,
            detections: vec![Detection { label: "bed-2".into(), bbox: [1.0, 2.0, 30.5, 20.0], score: 0.0 }],
            recordings: dir.path().join("recordings/ward-3"),
            clip_from: at - Duration::from_secs(10),
            clip_to: at + Duration::from_secs(10),
        };
        pending.save(&request(2, t0 + Duration::from_secs(5))).unwrap();
        pending.save(&request(1, t0)).unwrap();
        std::fs::write(dir.path().join("evidence-pending/.tmp-3.json"), b"{half").unwrap();
        let loaded = Pending::new(&dir.path().join("evidence-pending")).load_all();
        assert_eq!(loaded.iter().map(|r| r.event_id.as_u128()).collect::<Vec<_>>(), [1, 2], "oldest first");
        let first = &loaded[0];
        assert_eq!((first.at, first.clip_to), (t0, t0 + Duration::from_secs(10)));
        assert_eq!(first.snapshot, request(1, t0).snapshot, "the frame is kept losslessly");
        assert_eq!(first.detections[0].bbox, [1.0, 2.0, 30.5, 20.0]);
        assert_eq!(first.camera_info.url_redacted, "rtsp://u:***@cam3/live", "stored redacted");
        assert_eq!((first.camera_info.name.as_deref(), first.camera_info.role.as_str()), (Some("Ward 3"), "ward"));
        assert_eq!(first.thresholds["enter_secs"], "60");
        assert_eq!(first.onset, None);
        assert!(!dir.path().join("evidence-pending/.tmp-3.json").exists(), "leftovers removed");
        pending.remove(uuid::Uuid::from_u128(1)).unwrap();
        assert_eq!(pending.load_all().len(), 1);
    }

    /// Pins outlive a restart: a request saved before a stop pins its video again when loaded, until its
    /// bundle is written (the request removed). Before, only the in-memory request protected nothing,
    /// and eviction deleted the video of bundles waiting for a retry.
    #[test]
    fn saved_requests_pin_their_video_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let recordings = dir.path().join("recordings/ward-9");
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let request = EvidenceRequest {
            event_id: uuid::Uuid::now_v7(),
            kind: "camera_tamper".into(),
            camera: "ward-9".into(),
            camera_info: CameraIdentity::unknown("ward-9"),
            at,
            onset: Some(at - Duration::from_secs(5)),
            thresholds: BTreeMap::new(),
            details: BTreeMap::new(),
            snapshot: image::RgbImage::new(8, 8),
            snapshot_at: at,
            detections: Vec::new(),
            recordings: recordings.clone(),
            clip_from: at - Duration::from_secs(3),
            clip_to: at + Duration::from_secs(2),
        };
        let pending = Pending::new(&dir.path().join("evidence-pending"));
        pending.save(&request).unwrap();
        assert_eq!(recorder::pins().intervals(&recordings), [(request.clip_from, request.clip_to)]);
        // A restart: the process's pins are gone, the saved request brings its pin back.
        recorder::pins().unpin(request.event_id);
        assert!(recorder::pins().intervals(&recordings).is_empty());
        assert_eq!(Pending::new(&dir.path().join("evidence-pending")).load_all().len(), 1);
        assert_eq!(recorder::pins().intervals(&recordings), [(request.clip_from, request.clip_to)]);
        assert!(pending.is_saved(request.event_id));
        pending.remove(request.event_id).unwrap();
        assert!(recorder::pins().intervals(&recordings).is_empty());
        assert!(!pending.is_saved(request.event_id));
        pending.remove(request.event_id).unwrap();
    }

    /// A request saved by the previous version (no camera identity, onset or thresholds: a box upgraded
    /// with requests pending) still loads, and says what it does not know.
    #[test]
    fn requests_saved_before_an_upgrade_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let pending_dir = dir.path().join("evidence-pending");
        std::fs::create_dir_all(&pending_dir).unwrap();
        let id = uuid::Uuid::now_v7();
        let old = format!(
            r#"{{"event_id":"{id}","kind":"camera_tamper","camera":"door","at_ms":1800000000000,"details":{{"tamper":"covered"}},"snapshot_at_ms":1800000000000,"detections":[],"recordings":"{}","clip_from_ms":1799999990000,"clip_to_ms":1800000010000}}"#,
            dir.path().join("recordings/door").display()
        );
        std::fs::write(pending_dir.join(format!("{id}.json")), old).unwrap();
        image::RgbImage::new(4, 4).save(pending_dir.join(format!("{id}.png"))).unwrap();
        let loaded = Pending::new(&pending_dir).load_all();
        assert_eq!(loaded.len(), 1);
        let request = &loaded[0];
        assert_eq!(request.event_id, id);
        assert!(request.camera_info.is_unknown() && request.camera_info.id == "door");
        assert_eq!((request.onset, request.thresholds.len()), (None, 0));
        assert_eq!(request.clip_from, time(1_799_999_990_000));
        Pending::new(&pending_dir).remove(id).unwrap();
    }

    /// A save that fails (the disk is full) still pins the video: the request lives on in memory.
    #[test]
    fn a_failed_save_still_pins_the_video() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let recordings = dir.path().join("recordings/ward-8");
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_100);
        let request = EvidenceRequest {
            event_id: uuid::Uuid::now_v7(),
            kind: "camera_tamper".into(),
            camera: "ward-8".into(),
            camera_info: CameraIdentity::unknown("ward-8"),
            at,
            onset: Some(at - Duration::from_secs(5)),
            thresholds: BTreeMap::new(),
            details: BTreeMap::new(),
            snapshot: image::RgbImage::new(8, 8),
            snapshot_at: at,
            detections: Vec::new(),
            recordings: recordings.clone(),
            clip_from: at,
            clip_to: at + Duration::from_secs(1),
        };
        let pending = Pending::new(&file.join("evidence-pending"));
        assert!(pending.save(&request).is_err());
        assert_eq!(recorder::pins().intervals(&recordings).len(), 1);
        let _ = pending.remove(request.event_id);
        assert!(recorder::pins().intervals(&recordings).is_empty());
    }
}
