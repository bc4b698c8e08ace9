//! The evidence store: chain entries in one directory, written with the protocol of docs/evidence.md
//! step by step (temp dir, fsync, rename, fsync the parent); opening it (crash leftovers, the head kept
//! outside it, v1 markers); writing bundles. Records (ack, hold, release, prune, epoch) and the
//! in-memory state of each bundle are in `records`, the recorded head in `head`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use image::RgbImage;
use serde_json::{Value, json};

use super::canonical;
use super::credentials::{Media, Provenance};
use super::head::{self, Head};
use super::keys::DeviceKey;
use super::manifest;
use super::records::{self, BundleState, EntryType};
use crate::analyze::boxes::BBox;
use crate::source::clip;

/// The schema of v1 bundles (no `type`: a bundle), still valid in a chain.
pub const SCHEMA_V1: &str = "vigil.evidence.v1";
/// The schema of every entry written now.
pub const SCHEMA_V2: &str = "vigil.evidence.v2";
pub const SCHEMA: &str = SCHEMA_V2;
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
    /// The clock is earlier than the last entry's `created`: nothing is signed (the request is kept).
    #[error(
        "not signing evidence: the clock ({now}) is behind the last signed entry ({created}, sequence {sequence}); \
         fix the system clock"
    )]
    ClockBehind { now: String, created: String, sequence: u64 },
    /// Start-up refused: the store and the head recorded outside it disagree.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Head(#[from] head::HeadError),
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

/// A chain entry that was written (a bundle or a record).
#[derive(Debug, Clone)]
pub struct BundleInfo {
    pub dir: PathBuf,
    pub sequence: u64,
    pub manifest_sha256: String,
    pub epoch: u64,
    pub entry: EntryType,
}

impl BundleInfo {
    pub fn head(&self) -> Head {
        Head { sequence: self.sequence, manifest_sha256: self.manifest_sha256.clone(), epoch: self.epoch }
    }
}

/// A chain entry that was written.
pub type EntryInfo = BundleInfo;

/// How a store is opened (beyond its directory and key).
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Where the head is kept outside the store (`<data_dir>/evidence-head`); `None`: not kept (tests,
    /// benchmarks).
    pub head_file: Option<PathBuf>,
    /// `retention.evidence_days`, named in the prune records that migrate v1 `PRUNED` markers.
    pub evidence_days: u32,
    /// Refuse to open a wiped store instead of starting a new epoch (`vigil hold`: only the agent, which
    /// announces the epoch, starts one).
    pub refuse_new_epoch: bool,
}

/// A new epoch started at open (the store was found empty after entries were written).
#[derive(Debug, Clone)]
pub struct StartedEpoch {
    /// The `epoch` record.
    pub entry: EntryInfo,
    /// The head this agent had written last.
    pub previous: Head,
    pub reason: String,
}

/// Called with each entry appended, once it is durable (the runtime publishes the new head; the
/// console's event list learns of new bundles and holds). Runs with the store locked: it must not lock
/// the store again, and should be quick.
pub type OnAppend = Box<dyn Fn(&EntryInfo) + Send>;

/// The only writer of a chain: everything that appends goes through one `Store` (the runtime shares it
/// behind a mutex; `vigil hold` opens it only while no agent holds the data directory).
pub struct Store {
    pub(super) dir: PathBuf,
    pub(super) key: DeviceKey,
    pub(super) site: String,
    pub(super) device: String,
    pub(super) models: Vec<(String, String)>,
    pub(super) next_sequence: u64,
    pub(super) last_manifest_sha256: String,
    pub(super) epoch: u64,
    /// The last entry's `created` (milliseconds since the Unix epoch) and sequence: nothing is signed
    /// with an earlier time.
    pub(super) last_created: Option<(u64, u64)>,
    /// Every bundle of the chain by sequence: acknowledged, held, pruned (built at open from the records).
    pub(super) index: BTreeMap<u64, BundleState>,
    pub(super) head_file: Option<PathBuf>,
    pub(super) clock: Box<dyn Fn() -> SystemTime + Send>,
    pub(super) on_append: Vec<OnAppend>,
    /// The epoch record written at open, when the store was found wiped.
    pub(super) started_epoch: Option<StartedEpoch>,
    /// Test hook: abort the process right after this step (crash tests).
    pub crash_after: Option<Step>,
    /// Test hook: abort the process once a prune record is durable, before any file is removed.
    pub crash_before_prune_removal: bool,
    /// C2PA signing credentials: with them, media files carry Content Credentials (`credentials`).
    pub credentials: Option<super::credentials::Credentials>,
    /// Bundles written and pruned since the store was opened (the runtime's metrics read them).
    pub counters: Arc<StoreCounters>,
}

/// What the store did since it was opened, readable without its lock.
#[derive(Debug, Default)]
pub struct StoreCounters {
    /// Bundles written (camera events and phone check-ins).
    pub bundles_written: AtomicU64,
    /// Bundles whose media retention removed.
    pub bundles_pruned: AtomicU64,
}

pub use crate::hashing::sha256_hex;

pub(super) fn time(t: SystemTime) -> String {
    manifest::time(t)
}

pub(super) fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

pub(super) fn fsync_dir(path: &Path) -> Result<(), EvidenceError> {
    std::fs::File::open(path).and_then(|d| d.sync_all()).map_err(io(path))
}

pub(super) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> EvidenceError + '_ {
    io(path)
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
        Ok(self.index.values().find(|b| b.event_id == id).map(|b| BundleInfo {
            dir: b.dir.clone(),
            sequence: b.sequence,
            manifest_sha256: b.manifest_sha256.clone(),
            epoch: b.epoch,
            entry: EntryType::Bundle,
        }))
    }

    /// Opens a store without a head kept outside it (tests, benchmarks): [`Store::open_with`].
    pub fn open(
        dir: &Path,
        key: DeviceKey,
        site: &str,
        device: &str,
        models: Vec<(String, String)>,
    ) -> Result<Store, EvidenceError> {
        Store::open_with(dir, key, site, device, models, &OpenOptions::default())
    }

    /// Opens the store: removes entries left half-written by a crash (`.tmp-*`), reads every entry
    /// (the bundles' state from the records), applies the start-up rules against the recorded head
    /// (adopt, refuse a store that went backwards, or start a new epoch after a wipe), and migrates v1
    /// marker files to signed records.
    pub fn open_with(
        dir: &Path,
        key: DeviceKey,
        site: &str,
        device: &str,
        models: Vec<(String, String)>,
        options: &OpenOptions,
    ) -> Result<Store, EvidenceError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                tracing::warn!(path = %entry.path().display(), "removing an evidence entry left incomplete by a crash");
                std::fs::remove_dir_all(entry.path()).map_err(io(dir))?;
            }
        }
        let mut scan = records::scan(dir, &key.public())?;
        let mut store = Store {
            dir: dir.to_owned(),
            key,
            site: site.to_owned(),
            device: device.to_owned(),
            models,
            next_sequence: 1,
            last_manifest_sha256: GENESIS.to_owned(),
            epoch: 1,
            last_created: None,
            index: std::mem::take(&mut scan.bundles),
            head_file: options.head_file.clone(),
            clock: Box::new(SystemTime::now),
            on_append: Vec::new(),
            started_epoch: None,
            crash_after: None,
            crash_before_prune_removal: false,
            credentials: None,
            counters: Arc::default(),
        };
        let last = scan.last.as_ref().map(|l| l.head.clone());
        if let Some(l) = &scan.last {
            store.next_sequence = l.head.sequence + 1;
            store.last_manifest_sha256 = l.head.manifest_sha256.clone();
            store.epoch = l.head.epoch;
            store.last_created = Some((l.created_ms, l.head.sequence));
        }
        let recorded = match &options.head_file {
            Some(file) => head::read(file)?,
            None => None,
        };
        let file = options.head_file.as_deref().unwrap_or(Path::new(""));
        match head::start(recorded.as_ref(), last.as_ref(), |h| scan.contains(h)) {
            head::Start::NewChain | head::Start::Normal => {}
            head::Start::AdoptUnrecorded => {
                let last = last.as_ref().expect("a last entry");
                if options.head_file.is_some() {
                    tracing::warn!(dir = %dir.display(), head = %last.id(), file = %file.display(),
                        "no evidence head recorded outside the store: adopting the store's last entry");
                    head::write(file, last)?;
                }
            }
            head::Start::AdoptAhead => {
                let (last, recorded) = (last.as_ref().expect("a last entry"), recorded.as_ref().expect("a head"));
                tracing::warn!(dir = %dir.display(), head = %last.id(), recorded = %recorded.id(),
                    file = %file.display(), "the evidence store is ahead of the recorded head (a crash after an \
                    entry was written): adopting it");
                head::write(file, last)?;
            }
            head::Start::WentBackwards => {
                let (last, recorded) = (last.as_ref().expect("a last entry"), recorded.as_ref().expect("a head"));
                return Err(EvidenceError::Refused(head::went_backwards(dir, last, recorded, file)));
            }
            head::Start::NewEpoch => {
                let recorded = recorded.expect("a head");
                if options.refuse_new_epoch {
                    return Err(EvidenceError::Refused(format!(
                        "the evidence store {} is empty but this agent last wrote {} (recorded in {}): start the \
                         agent (`vigil run`), which begins a new, announced epoch",
                        dir.display(),
                        recorded.id(),
                        file.display()
                    )));
                }
                store.start_epoch(&recorded)?;
            }
        }
        store.migrate_markers(options.evidence_days);
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The chain's head: its last entry (`None` for an empty store).
    pub fn head(&self) -> Option<Head> {
        (self.next_sequence > 1).then(|| Head {
            sequence: self.next_sequence - 1,
            manifest_sha256: self.last_manifest_sha256.clone(),
            epoch: self.epoch,
        })
    }

    /// The epoch record written at open, when the store was found wiped (the runtime announces it).
    pub fn started_epoch(&self) -> Option<&StartedEpoch> {
        self.started_epoch.as_ref()
    }

    /// The state of an event's bundle: acknowledged, held, pruned.
    pub fn bundle_state(&self, event_id: &str) -> Option<&BundleState> {
        self.index.values().find(|b| b.event_id == event_id)
    }

    /// Replaces the wall clock the store signs with (tests).
    pub fn set_clock(&mut self, clock: impl Fn() -> SystemTime + Send + 'static) {
        self.clock = Box::new(clock);
    }

    /// Adds a listener called with each entry appended from now on (after those added before).
    pub fn on_append(&mut self, callback: OnAppend) {
        self.on_append.push(callback);
    }

    /// The public half of the key the store signs with (what `vigil verify` checks against).
    pub fn public_key(&self) -> super::keys::PublicKey {
        self.key.public()
    }

    /// The state of the bundle at `sequence` (None: no bundle there).
    pub fn bundle_at(&self, sequence: u64) -> Option<&BundleState> {
        self.index.get(&sequence)
    }

    pub(super) fn step(&self, step: Step) {
        if self.crash_after == Some(step) {
            std::process::abort();
        }
    }

    /// The time the next entry is signed with: the clock, unless it is earlier than the last entry's
    /// `created` (then nothing may be signed: a bundle dated before its predecessor would be evidence
    /// of a wrong clock, not of an event).
    pub(super) fn signing_time(&self) -> Result<SystemTime, EvidenceError> {
        let now = UNIX_EPOCH + Duration::from_millis(millis((self.clock)()));
        match self.last_created {
            Some((created, sequence)) if millis(now) < created => Err(EvidenceError::ClockBehind {
                now: time(now),
                created: time(UNIX_EPOCH + Duration::from_millis(created)),
                sequence,
            }),
            _ => Ok(now),
        }
    }

    /// The fields every v2 manifest starts with (docs/evidence.md, "Chain entries").
    pub(super) fn chain_fields(&self, entry: EntryType, created: SystemTime) -> serde_json::Map<String, Value> {
        let Value::Object(fields) = json!({
            "schema": SCHEMA_V2,
            "type": entry.as_str(),
            "sequence": self.next_sequence,
            "previous_manifest_sha256": self.last_manifest_sha256,
            "epoch": self.epoch,
            "device": {"site": self.site, "device": self.device, "public_key": self.key.public().to_base64()},
            "created": time(created),
            "clock": crate::clock_sync::observe().to_json(),
        }) else {
            unreachable!("an object")
        };
        fields
    }

    /// The last steps of every entry, once its files are synced in `tmp`: rename into place, fsync the
    /// parent, move the chain on, record the head outside the store, tell the runtime.
    pub(super) fn commit(
        &mut self,
        tmp: &Path,
        id: &str,
        entry: EntryType,
        manifest: &[u8],
        created: SystemTime,
    ) -> Result<EntryInfo, EvidenceError> {
        let final_dir = self.dir.join(format!("{:010}-{id}", self.next_sequence));
        std::fs::rename(tmp, &final_dir).map_err(io(&final_dir))?;
        self.step(Step::Renamed);
        fsync_dir(&self.dir)?;
        self.step(Step::ParentSynced);
        let info = EntryInfo {
            dir: final_dir,
            sequence: self.next_sequence,
            manifest_sha256: sha256_hex(manifest),
            epoch: self.epoch,
            entry,
        };
        self.next_sequence += 1;
        self.last_manifest_sha256 = info.manifest_sha256.clone();
        self.last_created = Some((millis(created), info.sequence));
        if let Some(file) = &self.head_file {
            // The entry is written: failing here must not make the caller write it again. A head left
            // behind is adopted at the next start (the store contains it).
            if let Err(e) = head::write(file, &info.head()) {
                tracing::error!(error = %e, head = %info.head().id(),
                    "cannot record the evidence head outside the store (it is adopted from the store at the next start)");
            }
        }
        for callback in &self.on_append {
            callback(&info);
        }
        Ok(info)
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
        self.in_temp_dir(req.event_id, |store, tmp, created| store.write_into(tmp, req, created))
    }

    /// The first and last steps every bundle shares: the signing time, a fresh temp dir named after the
    /// event (one left by an earlier failed attempt is replaced), then `write` fills and commits it; the
    /// temp dir is removed when that fails, so nothing is left behind.
    pub(super) fn in_temp_dir(
        &mut self,
        event_id: uuid::Uuid,
        write: impl FnOnce(&mut Store, &Path, SystemTime) -> Result<BundleInfo, EvidenceError>,
    ) -> Result<BundleInfo, EvidenceError> {
        let created = self.signing_time()?;
        let tmp = self.dir.join(format!(".tmp-{event_id}"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        std::fs::create_dir(&tmp).map_err(io(&tmp))?;
        self.step(Step::TempDirCreated);
        let result = write(self, &tmp, created);
        match &result {
            Ok(_) => drop(self.counters.bundles_written.fetch_add(1, Ordering::Relaxed)),
            Err(_) => drop(std::fs::remove_dir_all(&tmp)),
        }
        result
    }

    fn write_into(
        &mut self,
        tmp: &Path,
        req: &EvidenceRequest,
        created: SystemTime,
    ) -> Result<BundleInfo, EvidenceError> {
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
        let mut manifest = self.chain_fields(EntryType::Bundle, created);
        let models = self.models.iter().map(|(name, sha)| json!({"name": name, "sha256": sha})).collect::<Vec<Value>>();
        manifest.insert("models".into(), Value::Array(models));
        let files = [
            manifest::BundleFile { name: "clip.mp4", bytes: &clip_bytes },
            manifest::BundleFile { name: "snapshot.jpg", bytes: &jpeg },
            manifest::BundleFile { name: "frame.jpg", bytes: &frame_jpeg },
        ];
        manifest.extend(manifest::bundle_content(req, &info, (snapshot.width(), snapshot.height()), &files));
        let manifest = Value::Object(manifest);
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

        let info = self.commit(tmp, &req.event_id.to_string(), EntryType::Bundle, &bytes, created)?;
        let state = BundleState::new(&info, &req.event_id.to_string(), millis(created), records::listed(&manifest));
        self.index.insert(info.sequence, state);
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
