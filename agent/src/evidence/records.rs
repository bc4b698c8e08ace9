//! Signed records: every change of a bundle's state that matters is a chain entry of its own, signed and
//! chained like a bundle (docs/evidence.md, "Chain entries"): `ack` (the platform acknowledged the
//! bundle's `evidence_ready`), `hold` / `release` (legal hold), `prune` (retention removed media files,
//! written and made durable before they are removed), `epoch` (a new epoch after a wiped store).
//!
//! The store keeps the state of each bundle in memory ([`BundleState`]), built at open from the records
//! ([`scan`]) and moved on with each record appended; nothing reads marker files any more, except to
//! migrate those of a v1 store to records once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::canonical;
use super::head::Head;
use super::keys::PublicKey;
use super::store::{
    EntryInfo, EvidenceError, SCHEMA_V1, StartedEpoch, Store, bundles, fsync_dir, io_error, millis, sha256_hex, time,
};

/// The `type` of a chain entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryType {
    Bundle,
    Ack,
    Hold,
    Release,
    Prune,
    Epoch,
}

impl EntryType {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryType::Bundle => "bundle",
            EntryType::Ack => "ack",
            EntryType::Hold => "hold",
            EntryType::Release => "release",
            EntryType::Prune => "prune",
            EntryType::Epoch => "epoch",
        }
    }

    /// The type a manifest says (a v1 manifest, without `type`, is a bundle).
    pub fn of(manifest: &Value) -> Option<EntryType> {
        match manifest["type"].as_str() {
            None if manifest["schema"] == SCHEMA_V1 => Some(EntryType::Bundle),
            Some("bundle") => Some(EntryType::Bundle),
            Some("ack") => Some(EntryType::Ack),
            Some("hold") => Some(EntryType::Hold),
            Some("release") => Some(EntryType::Release),
            Some("prune") => Some(EntryType::Prune),
            Some("epoch") => Some(EntryType::Epoch),
            _ => None,
        }
    }
}

/// What the records say about one bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleState {
    pub sequence: u64,
    pub event_id: String,
    pub manifest_sha256: String,
    pub epoch: u64,
    pub dir: PathBuf,
    /// Its `created`, in milliseconds since the Unix epoch: retention counts its age from it.
    pub created_ms: u64,
    /// The files its manifest lists.
    pub files: Vec<String>,
    /// An `ack` record names it.
    pub acked: bool,
    /// Under legal hold: a `hold` record without a later `release`.
    pub held: bool,
    /// The files `prune` records say were removed.
    pub pruned: BTreeSet<String>,
}

impl BundleState {
    pub fn new(info: &EntryInfo, event_id: &str, created_ms: u64, files: Vec<String>) -> BundleState {
        BundleState {
            sequence: info.sequence,
            event_id: event_id.to_owned(),
            manifest_sha256: info.manifest_sha256.clone(),
            epoch: info.epoch,
            dir: info.dir.clone(),
            created_ms,
            files,
            acked: false,
            held: false,
            pruned: BTreeSet::new(),
        }
    }

    /// `{sequence, event_id, manifest_sha256}`: how a record names its bundle.
    fn target(&self) -> Map<String, Value> {
        let Value::Object(target) = json!({
            "sequence": self.sequence,
            "event_id": self.event_id,
            "manifest_sha256": self.manifest_sha256,
        }) else {
            unreachable!("an object")
        };
        target
    }
}

/// The names a manifest lists in `files` that are plain file names (docs/evidence.md): retention never
/// removes anything else.
pub fn listed(manifest: &Value) -> Vec<String> {
    let safe = |name: &&String| {
        let bytes = name.as_bytes();
        (1..=64).contains(&bytes.len())
            && bytes[0].is_ascii_alphanumeric()
            && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b".-_".contains(b))
    };
    manifest["files"].as_object().map(|files| files.keys().filter(safe).cloned().collect()).unwrap_or_default()
}

fn created_ms(manifest: &Value) -> u64 {
    manifest["created"].as_str().and_then(|t| humantime::parse_rfc3339(t).ok()).map_or(0, millis)
}

/// The last entry of a store, as open needs it.
pub(super) struct Last {
    pub head: Head,
    pub created_ms: u64,
}

/// What open learns from reading every entry.
pub(super) struct Scan {
    pub bundles: BTreeMap<u64, BundleState>,
    pub last: Option<Last>,
    /// Each entry's manifest hash and `previous_manifest_sha256`, by sequence.
    links: BTreeMap<u64, (String, String)>,
}

impl Scan {
    /// Whether the store holds `head` (that sequence, that hash) chained to its last entry.
    pub fn contains(&self, head: &Head) -> bool {
        if self.links.get(&head.sequence).map(|(sha, _)| sha) != Some(&head.manifest_sha256) {
            return false;
        }
        let mut previous = &head.manifest_sha256;
        for (sha, prev) in self.links.range(head.sequence + 1..).map(|(_, link)| link) {
            if prev != previous {
                return false;
            }
            previous = sha;
        }
        // Every sequence from the head to the end is present.
        let last = self.links.keys().next_back().copied().unwrap_or(0);
        self.links.range(head.sequence..).count() as u64 == last - head.sequence + 1
    }
}

/// Reads every entry of a store: the bundles, the state the records give them, the last entry. An entry
/// this device did not sign is reported and does not change any state; an unreadable one is reported
/// and skipped, unless it is the last (the chain cannot continue from it).
pub(super) fn scan(dir: &Path, key: &PublicKey) -> Result<Scan, EvidenceError> {
    let mut scan = Scan { bundles: BTreeMap::new(), last: None, links: BTreeMap::new() };
    let entries = bundles(dir)?;
    let count = entries.len();
    for (i, (sequence, path)) in entries.into_iter().enumerate() {
        let manifest_path = path.join("manifest.json");
        let bytes = match crate::input::read_limited(&manifest_path, crate::input::MAX_JSON_BYTES) {
            Ok(bytes) => bytes,
            Err(e) if i + 1 == count => {
                return Err(EvidenceError::Manifest(format!("{}: {e}", manifest_path.display())));
            }
            Err(e) => {
                tracing::warn!(entry = %path.display(), error = %e, "evidence entry unreadable; skipped");
                continue;
            }
        };
        let manifest: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let sha = sha256_hex(&bytes);
        let previous = manifest["previous_manifest_sha256"].as_str().unwrap_or("").to_owned();
        let epoch = manifest["epoch"].as_u64().unwrap_or(1);
        scan.links.insert(sequence, (sha.clone(), previous));
        scan.last = Some(Last {
            head: Head { sequence, manifest_sha256: sha.clone(), epoch },
            created_ms: created_ms(&manifest),
        });
        let signature = crate::input::read_limited(&path.join("manifest.sig"), 64).unwrap_or_default();
        if !key.verify(&bytes, &signature) {
            tracing::warn!(entry = %path.display(),
                "evidence entry not signed by this device's key: it changes no bundle's state");
            continue;
        }
        apply(&mut scan.bundles, sequence, &path, &sha, epoch, &manifest);
    }
    Ok(scan)
}

/// One entry's effect on the bundles' state.
fn apply(bundles: &mut BTreeMap<u64, BundleState>, sequence: u64, dir: &Path, sha: &str, epoch: u64, m: &Value) {
    let record = &m["record"];
    // A record names its bundle by sequence, event id and hash: all three must match.
    let target = |bundles: &mut BTreeMap<u64, BundleState>, t: &Value| -> Option<u64> {
        let seq = t["sequence"].as_u64()?;
        let b = bundles.get(&seq)?;
        (t["event_id"] == b.event_id.as_str() && t["manifest_sha256"] == b.manifest_sha256.as_str()).then_some(seq)
    };
    match EntryType::of(m) {
        Some(EntryType::Bundle) => {
            let event_id = m["event"]["id"].as_str().unwrap_or("").to_owned();
            let state = BundleState {
                sequence,
                event_id,
                manifest_sha256: sha.to_owned(),
                epoch,
                dir: dir.to_owned(),
                created_ms: created_ms(m),
                files: listed(m),
                acked: false,
                held: false,
                pruned: BTreeSet::new(),
            };
            bundles.insert(sequence, state);
        }
        Some(EntryType::Ack) => {
            if let Some(seq) = target(bundles, &record["target"]) {
                bundles.get_mut(&seq).expect("found").acked = true;
            }
        }
        Some(kind @ (EntryType::Hold | EntryType::Release)) => {
            if let Some(seq) = target(bundles, &record["target"]) {
                bundles.get_mut(&seq).expect("found").held = kind == EntryType::Hold;
            }
        }
        Some(EntryType::Prune) => {
            for t in record["targets"].as_array().into_iter().flatten() {
                if let Some(seq) = target(bundles, t) {
                    let removed = t["removed"].as_array().into_iter().flatten().filter_map(Value::as_str);
                    bundles.get_mut(&seq).expect("found").pruned.extend(removed.map(str::to_owned));
                }
            }
        }
        Some(EntryType::Epoch) | None => {}
    }
}

/// The v1 marker files, replaced by records.
const ACKED: &str = "ACKED";
const HOLD: &str = "HOLD";
const PRUNED: &str = "PRUNED";

impl Store {
    /// Appends a record (`record.id` is added: a fresh UUIDv7, also the directory's name), with the
    /// same protocol as a bundle: temp dir, manifest and signature fsync'd, rename, parent fsync'd.
    fn append_record(&mut self, entry: EntryType, mut record: Map<String, Value>) -> Result<EntryInfo, EvidenceError> {
        let created = self.signing_time()?;
        let id = uuid::Uuid::now_v7().to_string();
        record.insert("id".into(), Value::String(id.clone()));
        let mut manifest = self.chain_fields(entry, created);
        manifest.insert("record".into(), Value::Object(record));
        let bytes =
            canonical::to_bytes(&Value::Object(manifest)).map_err(|e| EvidenceError::Manifest(e.to_string()))?;
        let tmp = self.dir.join(format!(".tmp-{id}"));
        std::fs::create_dir(&tmp).map_err(io_error(&tmp))?;
        let written = (|| {
            for (name, content) in [("manifest.json", &bytes[..]), ("manifest.sig", &self.key.sign(&bytes)[..])] {
                let path = tmp.join(name);
                std::fs::write(&path, content).map_err(io_error(&path))?;
                std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(io_error(&path))?;
            }
            fsync_dir(&tmp)?;
            self.commit(&tmp, &id, entry, &bytes, created)
        })();
        if written.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        let info = written?;
        tracing::info!(record = entry.as_str(), sequence = info.sequence, dir = %info.dir.display(),
            "evidence record written");
        Ok(info)
    }

    fn state_of(&self, event_id: &str) -> Result<&BundleState, EvidenceError> {
        self.bundle_state(event_id).ok_or_else(|| EvidenceError::UnknownEvent(event_id.to_owned()))
    }

    /// Records that the platform acknowledged the bundle's `evidence_ready` (delivery calls it). `None`:
    /// it was already acknowledged (a record sent twice is acknowledged twice).
    pub fn acknowledge(&mut self, event_id: &str, at: SystemTime) -> Result<Option<EntryInfo>, EvidenceError> {
        self.acknowledge_with(event_id, at, None)
    }

    fn acknowledge_with(
        &mut self,
        event_id: &str,
        at: SystemTime,
        reason: Option<String>,
    ) -> Result<Option<EntryInfo>, EvidenceError> {
        let bundle = self.state_of(event_id)?;
        if bundle.acked {
            return Ok(None);
        }
        let (sequence, mut record) = (bundle.sequence, Map::new());
        record.insert("target".into(), Value::Object(bundle.target()));
        record.insert("acknowledged_at".into(), Value::String(time(at)));
        if let Some(reason) = reason {
            record.insert("reason".into(), Value::String(reason));
        }
        let info = self.append_record(EntryType::Ack, record)?;
        self.index.get_mut(&sequence).expect("indexed").acked = true;
        Ok(Some(info))
    }

    /// Places a legal hold: the bundle's media are never pruned until it is released. `None`: it was
    /// already held.
    pub fn hold(&mut self, event_id: &str, reason: &str) -> Result<Option<EntryInfo>, EvidenceError> {
        self.set_hold(event_id, reason, true)
    }

    /// Lifts a legal hold. `None`: it was not held.
    pub fn release(&mut self, event_id: &str, reason: &str) -> Result<Option<EntryInfo>, EvidenceError> {
        self.set_hold(event_id, reason, false)
    }

    fn set_hold(&mut self, event_id: &str, reason: &str, held: bool) -> Result<Option<EntryInfo>, EvidenceError> {
        let bundle = self.state_of(event_id)?;
        if bundle.held == held {
            return Ok(None);
        }
        let (sequence, mut record) = (bundle.sequence, Map::new());
        record.insert("target".into(), Value::Object(bundle.target()));
        record.insert("reason".into(), Value::String(reason.to_owned()));
        let info = self.append_record(if held { EntryType::Hold } else { EntryType::Release }, record)?;
        self.index.get_mut(&sequence).expect("indexed").held = held;
        Ok(Some(info))
    }

    /// Removes the media of bundles that are acknowledged, older than `evidence_days` (counted from
    /// their `created`) and not held. One `prune` record names every bundle and file removed; it is
    /// durable before any file is removed, so a crash leaves files the record names (removed by the
    /// next call), never files removed without a record. Returns how many bundles were pruned.
    pub fn prune(&mut self, evidence_days: u32, now: SystemTime) -> Result<usize, EvidenceError> {
        // Files a prune record names but a crash left behind.
        for bundle in self.index.values().filter(|b| !b.pruned.is_empty()) {
            remove_files(&bundle.dir, bundle.pruned.iter())?;
        }
        let keep_ms = u64::from(evidence_days) * 86_400_000;
        let mut targets = Vec::new();
        let mut removing: Vec<(u64, Vec<String>)> = Vec::new();
        for b in self.index.values() {
            if !b.acked || b.held || !b.pruned.is_empty() || b.created_ms.saturating_add(keep_ms) > millis(now) {
                continue;
            }
            let present: Vec<String> = b.files.iter().filter(|f| b.dir.join(f).exists()).cloned().collect();
            if present.is_empty() {
                continue;
            }
            let mut target = b.target();
            target.insert("removed".into(), json!(present));
            targets.push(Value::Object(target));
            removing.push((b.sequence, present));
        }
        if targets.is_empty() {
            return Ok(0);
        }
        self.append_prune(targets, evidence_days, None)?;
        if self.crash_before_prune_removal {
            std::process::abort();
        }
        for (sequence, files) in &removing {
            let bundle = self.index.get_mut(sequence).expect("indexed");
            bundle.pruned.extend(files.iter().cloned());
            remove_files(&bundle.dir, files.iter())?;
            self.counters.bundles_pruned.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(removing.len())
    }

    fn append_prune(
        &mut self,
        targets: Vec<Value>,
        evidence_days: u32,
        reason: Option<String>,
    ) -> Result<EntryInfo, EvidenceError> {
        let mut record = Map::new();
        record.insert("targets".into(), Value::Array(targets));
        record.insert("policy".into(), json!({"evidence_days": evidence_days}));
        if let Some(reason) = reason {
            record.insert("reason".into(), Value::String(reason));
        }
        self.append_record(EntryType::Prune, record)
    }

    /// A new epoch after `previous`, the head this agent last wrote, in a store found empty: an `epoch`
    /// record at the next sequence, chained to `previous` (a signed checkpoint). Sequences are never
    /// reused.
    pub(super) fn start_epoch(&mut self, previous: &Head) -> Result<(), EvidenceError> {
        self.next_sequence = previous.sequence + 1;
        self.last_manifest_sha256 = previous.manifest_sha256.clone();
        self.epoch = previous.epoch + 1;
        let reason = format!(
            "the evidence store {} was empty at start, but this agent had written up to {} (epoch {}): wiped or \
             replaced",
            self.dir.display(),
            previous.id(),
            previous.epoch
        );
        let mut record = Map::new();
        record.insert("epoch".into(), json!(self.epoch));
        record.insert("reason".into(), Value::String(reason.clone()));
        record.insert(
            "previous_head".into(),
            json!({"sequence": previous.sequence, "manifest_sha256": previous.manifest_sha256}),
        );
        let info = self.append_record(EntryType::Epoch, record)?;
        tracing::error!(dir = %self.dir.display(), previous_head = %previous.id(), epoch = self.epoch,
            sequence = info.sequence, reason = %reason,
            "EVIDENCE STORE WIPED: a new chain epoch starts (announced as evidence_epoch); the earlier entries \
             are gone from this box");
        self.started_epoch = Some(StartedEpoch { entry: info, previous: previous.clone(), reason });
        Ok(())
    }

    /// Replaces the marker files of a v1 store (`ACKED`, `HOLD`, `PRUNED`, unsigned) with signed records,
    /// each saying it was migrated and when the marker was written, then removes the marker. A failure
    /// (a full disk, a clock behind the chain) is logged and leaves the markers for the next start.
    pub(super) fn migrate_markers(&mut self, evidence_days: u32) {
        let found: Vec<(u64, String, PathBuf)> =
            self.index.values().map(|b| (b.sequence, b.event_id.clone(), b.dir.clone())).collect();
        for (sequence, event_id, dir) in found {
            if let Err(e) = self.migrate_bundle(sequence, &event_id, &dir, evidence_days) {
                tracing::error!(bundle = %dir.display(), error = %e,
                    "cannot migrate the bundle's v1 marker files to signed records (retried at the next start)");
                return;
            }
        }
    }

    fn migrate_bundle(&mut self, sequence: u64, event_id: &str, dir: &Path, days: u32) -> Result<(), EvidenceError> {
        let mut migrated = 0;
        if let Some((written, _)) = marker(dir, ACKED) {
            let reason = format!("migrated from an unsigned v1 marker written {}", time(written));
            self.acknowledge_with(event_id, written, Some(reason))?;
            remove_marker(dir, ACKED)?;
            migrated += 1;
        }
        if let Some((written, text)) = marker(dir, HOLD) {
            let held = text.lines().nth(1).unwrap_or("").trim();
            let reason = format!("migrated from an unsigned v1 marker written {}: {held}", time(written));
            self.set_hold(event_id, &reason, true)?;
            remove_marker(dir, HOLD)?;
            migrated += 1;
        }
        if let Some((written, _)) = marker(dir, PRUNED) {
            let bundle = &self.index[&sequence];
            if bundle.pruned.is_empty() {
                // v1 wrote PRUNED before removing the media: all of them were (or were to be) removed.
                let mut target = bundle.target();
                target.insert("removed".into(), json!(bundle.files));
                let reason = format!("migrated from an unsigned v1 marker written {}", time(written));
                self.append_prune(vec![Value::Object(target)], days, Some(reason))?;
                let bundle = self.index.get_mut(&sequence).expect("indexed");
                bundle.pruned.extend(bundle.files.iter().cloned());
                remove_files(dir, bundle.files.iter())?;
            }
            remove_marker(dir, PRUNED)?;
            migrated += 1;
        }
        if migrated > 0 {
            tracing::warn!(bundle = %dir.display(), markers = migrated,
                "v1 marker files replaced by signed records");
        }
        Ok(())
    }
}

/// A marker's time (its first line, else its modification time) and text.
fn marker(dir: &Path, name: &str) -> Option<(SystemTime, String)> {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).ok()?;
    let written = text
        .lines()
        .next()
        .and_then(|line| humantime::parse_rfc3339(line.trim()).ok())
        .or_else(|| std::fs::metadata(&path).and_then(|m| m.modified()).ok())
        .unwrap_or(UNIX_EPOCH + Duration::ZERO);
    Some((written, text))
}

fn remove_marker(dir: &Path, name: &str) -> Result<(), EvidenceError> {
    let path = dir.join(name);
    std::fs::remove_file(&path).map_err(io_error(&path))?;
    fsync_dir(dir)
}

/// Removes the named files of a bundle that are still there, then syncs the directory.
fn remove_files<'a>(dir: &Path, names: impl Iterator<Item = &'a String>) -> Result<(), EvidenceError> {
    let mut removed = false;
    for name in names {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(EvidenceError::Io { path, source: e }),
        }
    }
    if removed { fsync_dir(dir) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::head;
    use crate::evidence::keys::DeviceKey;
    use crate::evidence::store::{GENESIS, OpenOptions, SCHEMA_V2};

    /// 2026-11-24T10:00:00Z.
    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_514_400)
    }

    struct Fixture {
        _root: tempfile::TempDir,
        dir: PathBuf,
        head_file: PathBuf,
        key_file: PathBuf,
    }

    impl Fixture {
        fn new() -> Fixture {
            let root = tempfile::tempdir().unwrap();
            let key_file = root.path().join("keys/device.pem");
            DeviceKey::init(&key_file).unwrap();
            Fixture {
                dir: root.path().join("evidence"),
                head_file: root.path().join("evidence-head"),
                key_file,
                _root: root,
            }
        }

        fn key(&self) -> DeviceKey {
            DeviceKey::load(&self.key_file).unwrap()
        }

        fn open(&self) -> Result<Store, EvidenceError> {
            let options =
                OpenOptions { head_file: Some(self.head_file.clone()), evidence_days: 30, ..Default::default() };
            Store::open_with(&self.dir, self.key(), "hosp", "edge", Vec::new(), &options)
        }

        /// A bundle as a v1 agent wrote it (schema v1, no type, no epoch), with its two media files.
        fn v1_bundle(&self, sequence: u64, previous: &str, created: SystemTime) -> (PathBuf, String) {
            let id = uuid::Uuid::now_v7().to_string();
            let dir = self.dir.join(format!("{sequence:010}-{id}"));
            std::fs::create_dir_all(&dir).unwrap();
            let mut files = Map::new();
            for (name, bytes) in [("clip.mp4", &b"clip bytes"[..]), ("snapshot.jpg", &b"jpeg bytes"[..])] {
                std::fs::write(dir.join(name), bytes).unwrap();
                files.insert(name.into(), json!({"sha256": sha256_hex(bytes), "bytes": bytes.len()}));
            }
            let manifest = json!({
                "schema": SCHEMA_V1,
                "sequence": sequence,
                "previous_manifest_sha256": previous,
                "device": {"site": "hosp", "device": "edge", "public_key": self.key().public().to_base64()},
                "event": {"id": id, "kind": "camera_tamper", "camera": "ward-1", "at": time(created), "details": {}},
                "files": files,
                "created": time(created),
            });
            let bytes = canonical::to_bytes(&manifest).unwrap();
            std::fs::write(dir.join("manifest.json"), &bytes).unwrap();
            std::fs::write(dir.join("manifest.sig"), self.key().sign(&bytes)).unwrap();
            (dir, sha256_hex(&bytes))
        }

        /// Two v1 bundles: (dir, event id) each.
        fn two_bundles(&self) -> Vec<(PathBuf, String)> {
            let (a, sha) = self.v1_bundle(1, GENESIS, t0());
            let (b, _) = self.v1_bundle(2, &sha, t0() + Duration::from_secs(60));
            [a, b].into_iter().map(|d| (d.clone(), d.file_name().unwrap().to_str().unwrap()[11..].to_owned())).collect()
        }

        fn manifest(&self, sequence: u64) -> Value {
            let (_, dir) = bundles(&self.dir).unwrap().into_iter().find(|(s, _)| *s == sequence).unwrap();
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
        }
    }

    #[test]
    fn records_are_chain_entries_and_the_state_survives_a_reopen() {
        let f = Fixture::new();
        let b = f.two_bundles();
        let mut store = f.open().unwrap();
        let ack = store.acknowledge(&b[0].1, t0() + Duration::from_secs(90)).unwrap().unwrap();
        assert_eq!((ack.sequence, ack.epoch, ack.entry), (3, 1, EntryType::Ack));
        assert!(store.acknowledge(&b[0].1, t0()).unwrap().is_none(), "acknowledged once");
        store.hold(&b[1].1, "court case 42").unwrap().unwrap();
        assert!(store.hold(&b[1].1, "again").unwrap().is_none(), "already held");
        let m = f.manifest(3);
        assert_eq!(
            (m["schema"].as_str(), m["type"].as_str(), m["epoch"].as_u64()),
            (Some(SCHEMA_V2), Some("ack"), Some(1))
        );
        let second = sha256_hex(&std::fs::read(b[1].0.join("manifest.json")).unwrap());
        assert_eq!(m["previous_manifest_sha256"], second.as_str());
        assert_eq!(m["record"]["target"]["event_id"], b[0].1.as_str());
        assert_eq!(m["record"]["target"]["sequence"], 1);
        assert_eq!(m["record"]["acknowledged_at"], "2026-11-24T10:01:30.000Z");
        assert_eq!(ack.dir.file_name().unwrap().to_str().unwrap()[11..], *m["record"]["id"].as_str().unwrap());
        let hold = f.manifest(4);
        assert_eq!((hold["type"].as_str(), hold["record"]["reason"].as_str()), (Some("hold"), Some("court case 42")));
        let states = |s: &Store| (s.bundle_state(&b[0].1).cloned().unwrap(), s.bundle_state(&b[1].1).cloned().unwrap());
        let before = states(&store);
        assert!(before.0.acked && !before.0.held && before.1.held && !before.1.acked);
        assert_eq!(head::read(&f.head_file).unwrap(), store.head());
        drop(store);
        let mut store = f.open().unwrap();
        assert_eq!(states(&store), before, "rebuilt from the records");
        store.release(&b[1].1, "").unwrap().unwrap();
        assert!(!store.bundle_state(&b[1].1).unwrap().held);
        assert_eq!(store.head().unwrap().sequence, 5);
        assert!(matches!(store.hold("no-such-event", "x"), Err(EvidenceError::UnknownEvent(_))));
    }

    #[test]
    fn v1_markers_migrate_to_signed_records() {
        let f = Fixture::new();
        let b = f.two_bundles();
        std::fs::write(b[0].0.join("ACKED"), "2026-11-24T11:00:00.000Z\n").unwrap();
        std::fs::write(b[0].0.join("PRUNED"), "2026-12-30T11:00:00.000Z\n").unwrap();
        std::fs::remove_file(b[0].0.join("clip.mp4")).unwrap();
        std::fs::write(b[1].0.join("HOLD"), "2026-11-25T08:00:00.000Z\ncourt case 42\n").unwrap();
        let store = f.open().unwrap();
        for (dir, _) in &b {
            for marker in [ACKED, HOLD, PRUNED] {
                assert!(!dir.join(marker).exists(), "{marker} left in {}", dir.display());
            }
        }
        let (first, second) = (store.bundle_state(&b[0].1).unwrap(), store.bundle_state(&b[1].1).unwrap());
        assert!(first.acked && !first.held && second.held && !second.acked);
        assert_eq!(first.pruned, ["clip.mp4".to_owned(), "snapshot.jpg".to_owned()].into());
        assert!(!b[0].0.join("snapshot.jpg").exists(), "the interrupted v1 prune is finished");
        let (ack, prune, hold) = (f.manifest(3), f.manifest(4), f.manifest(5));
        assert_eq!(ack["type"], "ack");
        assert_eq!(ack["record"]["acknowledged_at"], "2026-11-24T11:00:00.000Z");
        assert_eq!(ack["record"]["reason"], "migrated from an unsigned v1 marker written 2026-11-24T11:00:00.000Z");
        assert_eq!(prune["type"], "prune");
        assert_eq!(prune["record"]["targets"][0]["removed"], json!(["clip.mp4", "snapshot.jpg"]));
        assert_eq!(prune["record"]["policy"]["evidence_days"], 30);
        assert_eq!(prune["record"]["reason"], "migrated from an unsigned v1 marker written 2026-12-30T11:00:00.000Z");
        assert_eq!(hold["type"], "hold");
        assert_eq!(
            hold["record"]["reason"],
            "migrated from an unsigned v1 marker written 2026-11-25T08:00:00.000Z: court case 42"
        );
        drop(store);
        let store = f.open().unwrap();
        assert_eq!(store.head().unwrap().sequence, 5, "migrated once");
    }

    #[test]
    fn records_are_not_signed_with_a_clock_behind_the_chain() {
        let f = Fixture::new();
        let b = f.two_bundles();
        let mut store = f.open().unwrap();
        // The last bundle was created at t0 + 60 s; the clock says t0 + 59.5 s.
        store.set_clock(|| t0() + Duration::from_millis(59_500));
        let e = store.acknowledge(&b[0].1, t0()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "not signing evidence: the clock (2026-11-24T10:00:59.500Z) is behind the last signed entry \
             (2026-11-24T10:01:00.000Z, sequence 2); fix the system clock"
        );
        assert_eq!(bundles(&f.dir).unwrap().len(), 2, "nothing written");
        assert!(!store.bundle_state(&b[0].1).unwrap().acked);
        // The same time is not earlier.
        store.set_clock(|| t0() + Duration::from_secs(60));
        assert_eq!(store.acknowledge(&b[0].1, t0()).unwrap().unwrap().sequence, 3);
    }

    #[test]
    fn prune_needs_an_ack_age_and_no_hold_and_names_what_it_removes() {
        let f = Fixture::new();
        let b = f.two_bundles();
        let mut store = f.open().unwrap();
        let day = Duration::from_secs(86_400);
        assert_eq!(store.prune(1, t0() + 10 * day).unwrap(), 0, "nothing acknowledged");
        store.acknowledge(&b[0].1, t0()).unwrap();
        store.acknowledge(&b[1].1, t0()).unwrap();
        store.hold(&b[1].1, "court").unwrap();
        assert_eq!(store.prune(1, t0() + day / 2).unwrap(), 0, "younger than a day");
        assert_eq!(store.prune(1, t0() + 2 * day).unwrap(), 1, "the held one is kept");
        let prune = f.manifest(6);
        assert_eq!(prune["type"], "prune");
        assert_eq!(prune["record"]["targets"].as_array().unwrap().len(), 1);
        assert_eq!(prune["record"]["targets"][0]["event_id"], b[0].1.as_str());
        assert_eq!(prune["record"]["targets"][0]["removed"], json!(["clip.mp4", "snapshot.jpg"]));
        assert_eq!(prune["record"]["policy"], json!({"evidence_days": 1}));
        assert!(!b[0].0.join("clip.mp4").exists() && b[1].0.join("clip.mp4").exists());
        assert_eq!(store.prune(1, t0() + 3 * day).unwrap(), 0, "pruned once");
        store.release(&b[1].1, "case closed").unwrap();
        assert_eq!(store.prune(1, t0() + 3 * day).unwrap(), 1);
        assert!(!b[1].0.join("snapshot.jpg").exists());
        // The metrics' count: each bundle once, however many prune runs.
        assert_eq!(store.counters.bundles_pruned.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    #[test]
    fn start_up_against_the_recorded_head() {
        let f = Fixture::new();
        let b = f.two_bundles();
        let mut store = f.open().unwrap();
        assert_eq!(head::read(&f.head_file).unwrap(), store.head(), "adopted and recorded");
        store.acknowledge(&b[0].1, t0()).unwrap();
        let at_3 = store.head().unwrap();
        store.acknowledge(&b[1].1, t0()).unwrap();
        let at_4 = store.head().unwrap();
        drop(store);

        // A crash between an entry's rename and the head's update: adopted.
        head::write(&f.head_file, &at_3).unwrap();
        assert_eq!(f.open().unwrap().head(), Some(at_4.clone()));
        assert_eq!(head::read(&f.head_file).unwrap(), Some(at_4.clone()));

        // The last entry removed: refused, both heads named.
        let last = bundles(&f.dir).unwrap().pop().unwrap().1;
        let aside = f.dir.with_file_name("aside");
        std::fs::rename(&last, &aside).unwrap();
        let e = f.open().err().unwrap().to_string();
        assert!(e.starts_with("evidence store went backwards: "), "{e}");
        assert!(e.contains(&format!("ends at {} but this agent last wrote {}", at_3.id(), at_4.id())), "{e}");
        assert!(e.contains(&f.head_file.display().to_string()), "{e}");
        // Replaced by another entry at the same sequence: refused too.
        std::fs::rename(&aside, &last).unwrap();
        let manifest = last.join("manifest.json");
        let original = std::fs::read(&manifest).unwrap();
        std::fs::write(&manifest, [&original[..], b" "].concat()).unwrap();
        let e = f.open().err().unwrap().to_string();
        assert!(e.contains(&format!("ends at 4:{} but", sha256_hex(&[&original[..], b" "].concat()))), "{e}");
        std::fs::write(&manifest, &original).unwrap();
        assert_eq!(f.open().unwrap().head(), Some(at_4.clone()));

        // Wiped: a new epoch, chained to the last head, at the next sequence; refused where asked.
        std::fs::remove_dir_all(&f.dir).unwrap();
        let options =
            OpenOptions { head_file: Some(f.head_file.clone()), refuse_new_epoch: true, ..Default::default() };
        let e = Store::open_with(&f.dir, f.key(), "hosp", "edge", Vec::new(), &options).err().unwrap().to_string();
        assert!(e.contains("is empty but this agent last wrote"), "{e}");
        let store = f.open().unwrap();
        let started = store.started_epoch().unwrap();
        assert_eq!((started.entry.sequence, started.entry.epoch), (5, 2));
        assert_eq!(started.previous, at_4);
        let epoch = f.manifest(5);
        assert_eq!(epoch["type"], "epoch");
        assert_eq!(epoch["epoch"], 2);
        assert_eq!(epoch["previous_manifest_sha256"], at_4.manifest_sha256.as_str());
        assert_eq!(epoch["record"]["epoch"], 2);
        assert_eq!(epoch["record"]["previous_head"], json!({"sequence": 4, "manifest_sha256": at_4.manifest_sha256}));
        assert_eq!(head::read(&f.head_file).unwrap(), store.head());
        drop(store);
        assert!(f.open().unwrap().started_epoch().is_none(), "one epoch per wipe");
    }
}
