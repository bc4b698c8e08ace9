//! Writing bundles (the protocol of docs/evidence.md, step by step), recovering after a crash, legal
//! holds, acknowledgements and retention.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use image::RgbImage;
use serde_json::{Value, json};

use super::canonical;
use super::credentials::{Media, Provenance};
use super::keys::DeviceKey;
use super::manifest;
use crate::analyze::boxes::BBox;
use crate::source::clip;

pub const SCHEMA: &str = "vigil.evidence.v1";
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("evidence store {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot cut the clip: {0}")]
    Clip(String),
    #[error("cannot encode the snapshot: {0}")]
    Snapshot(String),
    #[error("{0}")]
    Manifest(String),
    #[error("no bundle for event {0}")]
    UnknownEvent(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EvidenceError + '_ {
    move |source| EvidenceError::Io { path: path.to_owned(), source }
}

/// Steps of the writing protocol, in order. Tests kill the writer right after each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    TempDirCreated,
    ClipWritten,
    SnapshotWritten,
    ManifestWritten,
    SignatureWritten,
    FilesSynced,
    Renamed,
    ParentSynced,
}

impl Step {
    pub const ALL: [Step; 8] = [
        Step::TempDirCreated,
        Step::ClipWritten,
        Step::SnapshotWritten,
        Step::ManifestWritten,
        Step::SignatureWritten,
        Step::FilesSynced,
        Step::Renamed,
        Step::ParentSynced,
    ];
}

/// A box drawn on the snapshot and listed in the manifest.
#[derive(Debug, Clone)]
pub struct Detection {
    pub label: String,
    pub bbox: BBox,
    pub score: f32,
}

/// What a decision hands to the evidence stage.
#[derive(Debug, Clone)]
pub struct EvidenceRequest {
    pub event_id: uuid::Uuid,
    pub kind: String,
    pub camera: String,
    /// The camera as configured (manifest `camera`).
    pub camera_info: manifest::CameraIdentity,
    pub at: SystemTime,
    /// When the condition began, for decisions raised after it held for a while (tamper).
    pub onset: Option<SystemTime>,
    /// The settings the decision used (manifest `decision.thresholds`).
    pub thresholds: BTreeMap<String, String>,
    pub details: BTreeMap<String, String>,
    pub snapshot: RgbImage,
    pub snapshot_at: SystemTime,
    pub detections: Vec<Detection>,
    /// The camera's recording ring.
    pub recordings: PathBuf,
    pub clip_from: SystemTime,
    pub clip_to: SystemTime,
}

/// A bundle that was written.
#[derive(Debug, Clone)]
pub struct BundleInfo {
    pub dir: PathBuf,
    pub sequence: u64,
    pub manifest_sha256: String,
}

pub struct Store {
    dir: PathBuf,
    key: DeviceKey,
    site: String,
    device: String,
    models: Vec<(String, String)>,
    next_sequence: u64,
    last_manifest_sha256: String,
    /// Test hook: abort the process right after this step (crash tests).
    pub crash_after: Option<Step>,
    /// C2PA signing credentials: with them, media files carry Content Credentials (`credentials`).
    pub credentials: Option<super::credentials::Credentials>,
}

pub use crate::hashing::sha256_hex;

fn time(t: SystemTime) -> String {
    manifest::time(t)
}

fn fsync_dir(path: &Path) -> Result<(), EvidenceError> {
    std::fs::File::open(path).and_then(|d| d.sync_all()).map_err(io(path))
}

/// `<sequence, 10 digits>-<event id>`, parsed.
pub fn parse_bundle_name(name: &str) -> Option<(u64, &str)> {
    let (seq, id) = name.split_once('-')?;
    if seq.len() != 10 {
        return None;
    }
    Some((seq.parse().ok()?, id))
}

/// The bundles of a store directory, by sequence.
pub fn bundles(dir: &Path) -> Result<Vec<(u64, PathBuf)>, EvidenceError> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(EvidenceError::Io { path: dir.to_owned(), source: e }),
    };
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        if let Some((seq, _)) = entry.file_name().to_str().and_then(parse_bundle_name) {
            found.push((seq, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

impl Store {
    /// The bundle already written for an event, if any (recovery: a crash after the bundle's rename).
    pub fn existing(&self, event_id: uuid::Uuid) -> Result<Option<BundleInfo>, EvidenceError> {
        let id = event_id.to_string();
        for (sequence, dir) in bundles(&self.dir)? {
            if dir.file_name().and_then(|n| n.to_str()).and_then(parse_bundle_name).is_some_and(|(_, i)| i == id) {
                let manifest = dir.join("manifest.json");
                let bytes = std::fs::read(&manifest).map_err(io(&manifest))?;
                return Ok(Some(BundleInfo { dir, sequence, manifest_sha256: sha256_hex(&bytes) }));
            }
        }
        Ok(None)
    }

    /// Opens the store: removes bundles left half-written by a crash (`.tmp-*`), then continues the
    /// chain from the bundle with the highest sequence.
    pub fn open(
        dir: &Path,
        key: DeviceKey,
        site: &str,
        device: &str,
        models: Vec<(String, String)>,
    ) -> Result<Store, EvidenceError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                tracing::warn!(path = %entry.path().display(), "removing an evidence bundle left incomplete by a crash");
                std::fs::remove_dir_all(entry.path()).map_err(io(dir))?;
            }
        }
        let (next_sequence, last_manifest_sha256) = match bundles(dir)?.last() {
            Some((seq, path)) => {
                let manifest = path.join("manifest.json");
                let bytes = std::fs::read(&manifest).map_err(io(&manifest))?;
                (seq + 1, sha256_hex(&bytes))
            }
            None => (1, GENESIS.to_owned()),
        };
        Ok(Store {
            dir: dir.to_owned(),
            key,
            site: site.to_owned(),
            device: device.to_owned(),
            models,
            next_sequence,
            last_manifest_sha256,
            crash_after: None,
            credentials: None,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn step(&self, step: Step) {
        if self.crash_after == Some(step) {
            std::process::abort();
        }
    }

    /// Embeds the C2PA manifest in a media file of the bundle being written (before it is hashed);
    /// returns its new bytes, or None without credentials.
    fn content_credentials(
        &self,
        req: &EvidenceRequest,
        media: Media,
        path: &Path,
    ) -> Result<Option<Vec<u8>>, EvidenceError> {
        let Some(credentials) = &self.credentials else { return Ok(None) };
        let what = Provenance {
            site: self.site.clone(),
            device: self.device.clone(),
            sequence: self.next_sequence,
            event_id: req.event_id.to_string(),
            kind: req.kind.clone(),
            camera: req.camera.clone(),
            at: time(req.at),
        };
        let bytes = std::fs::read(path).map_err(io(path))?;
        let signed =
            credentials.embed(&self.key, media, &bytes, &what).map_err(|e| EvidenceError::Manifest(e.to_string()))?;
        std::fs::write(path, &signed).map_err(io(path))?;
        Ok(Some(signed))
    }

    /// Writes one bundle, following docs/evidence.md step by step.
    pub fn write(&mut self, req: &EvidenceRequest) -> Result<BundleInfo, EvidenceError> {
        let tmp = self.dir.join(format!(".tmp-{}", req.event_id));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        std::fs::create_dir(&tmp).map_err(io(&tmp))?;
        self.step(Step::TempDirCreated);
        let result = self.write_into(&tmp, req);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    fn write_into(&mut self, tmp: &Path, req: &EvidenceRequest) -> Result<BundleInfo, EvidenceError> {
        let clip_path = tmp.join("clip.mp4");
        let info = clip::cut(&req.recordings, req.clip_from, req.clip_to, &clip_path)
            .map_err(|e| EvidenceError::Clip(e.to_string()))?;
        self.content_credentials(req, Media::Clip, &clip_path)?;
        for m in &info.missing {
            tracing::warn!(event = %req.event_id, camera = %req.camera, from = %time(m.from), to = %time(m.to),
                reason = %m.reason, "evidence clip incomplete: the manifest's clip.missing names what was not recorded");
        }
        self.step(Step::ClipWritten);

        let snapshot_path = tmp.join("snapshot.jpg");
        let mut snapshot = req.snapshot.clone();
        let thickness = (snapshot.width().max(snapshot.height()) / 400).max(2);
        for d in &req.detections {
            crate::analyze::image::draw_box(&mut snapshot, d.bbox, [255, 60, 0], thickness);
        }
        let jpeg = manifest::jpeg(&snapshot).map_err(EvidenceError::Snapshot)?;
        std::fs::write(&snapshot_path, &jpeg).map_err(io(&snapshot_path))?;
        let jpeg = self.content_credentials(req, Media::Snapshot, &snapshot_path)?.unwrap_or(jpeg);
        // The decisive frame as it was seen, without the boxes drawn on the snapshot.
        let frame_path = tmp.join("frame.jpg");
        let frame_jpeg = manifest::jpeg(&req.snapshot).map_err(EvidenceError::Snapshot)?;
        std::fs::write(&frame_path, &frame_jpeg).map_err(io(&frame_path))?;
        let frame_jpeg = self.content_credentials(req, Media::Frame, &frame_path)?.unwrap_or(frame_jpeg);
        self.step(Step::SnapshotWritten);

        let clip_bytes = std::fs::read(&clip_path).map_err(io(&clip_path))?;
        let mut manifest = json!({
            "schema": SCHEMA,
            "sequence": self.next_sequence,
            "previous_manifest_sha256": self.last_manifest_sha256,
            "device": {"site": self.site, "device": self.device, "public_key": self.key.public().to_base64()},
            "models": self.models.iter().map(|(name, sha)| json!({"name": name, "sha256": sha})).collect::<Vec<Value>>(),
            "created": time(SystemTime::now()),
        });
        let files = [
            manifest::BundleFile { name: "clip.mp4", bytes: &clip_bytes },
            manifest::BundleFile { name: "snapshot.jpg", bytes: &jpeg },
            manifest::BundleFile { name: "frame.jpg", bytes: &frame_jpeg },
        ];
        let content = manifest::bundle_content(req, &info, (snapshot.width(), snapshot.height()), &files);
        if let Value::Object(fields) = &mut manifest {
            fields.extend(content);
        }
        let bytes = canonical::to_bytes(&manifest).map_err(|e| EvidenceError::Manifest(e.to_string()))?;
        let manifest_path = tmp.join("manifest.json");
        std::fs::write(&manifest_path, &bytes).map_err(io(&manifest_path))?;
        self.step(Step::ManifestWritten);

        let sig_path = tmp.join("manifest.sig");
        std::fs::write(&sig_path, self.key.sign(&bytes)).map_err(io(&sig_path))?;
        self.step(Step::SignatureWritten);

        for file in [&clip_path, &snapshot_path, &frame_path, &manifest_path, &sig_path] {
            std::fs::File::open(file).and_then(|f| f.sync_all()).map_err(io(file))?;
        }
        fsync_dir(tmp)?;
        self.step(Step::FilesSynced);

        let final_dir = self.dir.join(format!("{:010}-{}", self.next_sequence, req.event_id));
        std::fs::rename(tmp, &final_dir).map_err(io(&final_dir))?;
        self.step(Step::Renamed);
        fsync_dir(&self.dir)?;
        self.step(Step::ParentSynced);

        let info = BundleInfo { dir: final_dir, sequence: self.next_sequence, manifest_sha256: sha256_hex(&bytes) };
        self.next_sequence += 1;
        self.last_manifest_sha256 = info.manifest_sha256.clone();
        Ok(info)
    }
}

/// The bundle directory of an event.
pub fn find(dir: &Path, event_id: &str) -> Result<PathBuf, EvidenceError> {
    bundles(dir)?
        .into_iter()
        .map(|(_, path)| path)
        .find(|path| {
            path.file_name().and_then(|n| n.to_str()).and_then(parse_bundle_name).is_some_and(|(_, id)| id == event_id)
        })
        .ok_or_else(|| EvidenceError::UnknownEvent(event_id.to_owned()))
}

fn write_marker(bundle: &Path, name: &str, text: &str) -> Result<(), EvidenceError> {
    let path = bundle.join(name);
    std::fs::write(&path, text).map_err(io(&path))?;
    std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(io(&path))?;
    fsync_dir(bundle)
}

/// Records that the platform acknowledged the event (called by delivery).
pub fn acknowledge(dir: &Path, event_id: &str, at: SystemTime) -> Result<(), EvidenceError> {
    write_marker(&find(dir, event_id)?, "ACKED", &format!("{}\n", time(at)))
}

/// Places a legal hold: the bundle is never pruned.
pub fn hold(dir: &Path, event_id: &str, reason: &str, at: SystemTime) -> Result<PathBuf, EvidenceError> {
    let bundle = find(dir, event_id)?;
    write_marker(&bundle, "HOLD", &format!("{}\n{reason}\n", time(at)))?;
    Ok(bundle)
}

pub fn release(dir: &Path, event_id: &str) -> Result<PathBuf, EvidenceError> {
    let bundle = find(dir, event_id)?;
    let marker = bundle.join("HOLD");
    if marker.exists() {
        std::fs::remove_file(&marker).map_err(io(&marker))?;
        fsync_dir(&bundle)?;
    }
    Ok(bundle)
}

/// Removes the media of bundles that are acknowledged, older than `keep` and not held, leaving manifest,
/// signature and a `PRUNED` marker so the chain stays verifiable. Returns how many were pruned.
pub fn prune(dir: &Path, keep: Duration, now: SystemTime) -> Result<usize, EvidenceError> {
    let mut pruned = 0;
    for (_, bundle) in bundles(dir)? {
        if !bundle.join("ACKED").exists() || bundle.join("HOLD").exists() || bundle.join("PRUNED").exists() {
            continue;
        }
        let manifest = bundle.join("manifest.json");
        let modified = std::fs::metadata(&manifest).and_then(|m| m.modified()).map_err(io(&manifest))?;
        if now.duration_since(modified).unwrap_or_default() < keep {
            continue;
        }
        write_marker(&bundle, "PRUNED", &format!("{}\n", time(now)))?;
        for name in ["clip.mp4", "snapshot.jpg", "frame.jpg"] {
            let path = bundle.join(name);
            if path.exists() {
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        pruned += 1;
    }
    Ok(pruned)
}
