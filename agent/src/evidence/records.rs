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
