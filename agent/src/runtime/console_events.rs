//! The console's view of the evidence store ([`crate::http::console_events::Evidence`]): an index of the
//! bundles (what the list filters on) and of the records naming each, built when the agent starts and
//! kept up by a listener on the store (a new bundle is also sent to the event streams); verification of
//! one bundle on the box (`evidence::verify::verify_entry`); legal holds through the store's one writer.
//!
//! The listener runs while the store is locked (inside its append): it reads the new entry's manifest
//! and never locks the store again. Everything else locks the index only, so a bundle being written
//! (seconds of clip cutting under the store's lock) never holds up the list; only a hold waits for it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use serde_json::Value;
use tracing::warn;

use super::evidence::{SharedStore, lock};
use crate::evidence::keys::PublicKey;
use crate::evidence::records::EntryType;
use crate::evidence::store::{self, EntryInfo, EvidenceError, Store};
use crate::evidence::verify;
use crate::http::console_events::{
    self as api, Detail, EventSummary, Evidence, Filter, Hold, HoldChange, Page, ReviewError, Subscription,
    Verification,
};

/// How many new bundles a slow stream reader may fall behind before it is told it missed some.
const STREAM_BUFFER: usize = 64;

/// One bundle in the index.
struct Indexed {
    summary: EventSummary,
    at: SystemTime,
    dir: PathBuf,
    /// The record entries naming it (ack, hold, release, prune), by sequence.
    records: BTreeMap<u64, PathBuf>,
}

#[derive(Default)]
struct Index {
    bundles: BTreeMap<u64, Indexed>,
    by_id: HashMap<String, u64>,
}

fn read_manifest(dir: &Path) -> Option<Value> {
    let bytes = crate::input::read_limited(&dir.join("manifest.json"), crate::input::MAX_JSON_BYTES).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The bundles a record names (`target`, or each of a prune's `targets`).
fn targets(manifest: &Value) -> Vec<u64> {
    let record = &manifest["record"];
    let mut found: Vec<u64> = record["target"]["sequence"].as_u64().into_iter().collect();
    found.extend(record["targets"].as_array().into_iter().flatten().filter_map(|t| t["sequence"].as_u64()));
    found
}

impl Index {
    /// Adds the entry at `sequence` (a bundle, or a record naming bundles); returns the new bundle's list
    /// object. Hold and release records move the bundle's `held`.
    fn add(&mut self, sequence: u64, dir: &Path, held: bool) -> Option<EventSummary> {
        let Some(manifest) = read_manifest(dir) else {
            warn!(entry = %dir.display(), "evidence entry unreadable: not in the console's list");
            return None;
        };
        match EntryType::of(&manifest) {
            Some(EntryType::Bundle) => {
                let summary = api::summarize(sequence, &manifest, held)?;
                let at = humantime::parse_rfc3339(&summary.at).unwrap_or(SystemTime::UNIX_EPOCH);
                self.by_id.insert(summary.event_id.clone(), sequence);
                let indexed = Indexed { summary: summary.clone(), at, dir: dir.to_owned(), records: BTreeMap::new() };
                self.bundles.insert(sequence, indexed);
                Some(summary)
            }
            Some(kind) => {
                for target in targets(&manifest) {
                    if let Some(bundle) = self.bundles.get_mut(&target) {
                        bundle.records.insert(sequence, dir.to_owned());
                        match kind {
                            EntryType::Hold => bundle.summary.held = true,
                            EntryType::Release => bundle.summary.held = false,
                            _ => {}
                        }
                    }
                }
                None
            }
            None => None,
        }
    }
}

/// The index, made from the store before it is shared and kept up by the listener it adds to it.
pub struct EventIndex {
    index: Arc<Mutex<Index>>,
    new: tokio::sync::broadcast::Sender<EventSummary>,
    dir: PathBuf,
    key: PublicKey,
}

impl EventIndex {
    /// Reads every entry of `store` (its bundles' `held` from the store's own state, rebuilt from the
    /// signed records) and adds the listener that keeps the index current.
    pub fn build(store: &mut Store) -> anyhow::Result<EventIndex> {
        let started = std::time::Instant::now();
        let mut index = Index::default();
        for (sequence, dir) in store::bundles(store.dir())? {
            index.add(sequence, &dir, false);
        }
        // What is held is what the store says: it applies only records signed by this device.
        for (sequence, bundle) in index.bundles.iter_mut() {
            bundle.summary.held = store.bundle_at(*sequence).is_some_and(|b| b.held);
        }
        tracing::info!(
            bundles = index.bundles.len(),
            ms = started.elapsed().as_millis() as u64,
            "console's evidence index built"
        );
        let index = Arc::new(Mutex::new(index));
        let (new, _) = tokio::sync::broadcast::channel(STREAM_BUFFER);
        let (listening, sender) = (index.clone(), new.clone());
        store.on_append(Box::new(move |entry: &EntryInfo| {
            let added = guard(&listening).add(entry.sequence, &entry.dir, false);
            if let Some(summary) = added {
                // No stream open is not an error.
                let _ = sender.send(summary);
            }
        }));
        Ok(EventIndex { index, new, dir: store.dir().to_owned(), key: store.public_key() })
    }
}

fn guard(index: &Mutex<Index>) -> MutexGuard<'_, Index> {
    index.lock().unwrap_or_else(|e| e.into_inner())
}

/// The console's evidence, over the agent's one store writer.
pub struct EvidenceReview {
    index: EventIndex,
    store: SharedStore,
    closed: tokio::sync::watch::Sender<bool>,
}

impl EvidenceReview {
    pub fn new(index: EventIndex, store: SharedStore) -> Arc<EvidenceReview> {
        Arc::new(EvidenceReview { index, store, closed: tokio::sync::watch::Sender::new(false) })
    }

    /// Ends the open event streams (the agent is stopping: the server's graceful stop must not wait for
    /// them).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    fn holds(records: &BTreeMap<u64, PathBuf>) -> Vec<Hold> {
        records
            .iter()
            .filter_map(|(sequence, dir)| {
                let m = read_manifest(dir)?;
                let on = match EntryType::of(&m)? {
                    EntryType::Hold => true,
                    EntryType::Release => false,
                    _ => return None,
                };
                Some(Hold {
                    on,
                    at: m["created"].as_str().unwrap_or("").to_owned(),
                    reason: m["record"]["reason"].as_str().unwrap_or("").to_owned(),
                    by: None,
                    sequence: *sequence,
                })
            })
            .collect()
    }

    /// The bundle's sequence, directory and records.
    fn find(&self, event_id: &str) -> Result<(u64, PathBuf, BTreeMap<u64, PathBuf>, EventSummary), ReviewError> {
        let index = guard(&self.index.index);
        let sequence = *index.by_id.get(event_id).ok_or_else(|| ReviewError::UnknownEvent(event_id.to_owned()))?;
        let b = &index.bundles[&sequence];
        Ok((sequence, b.dir.clone(), b.records.clone(), b.summary.clone()))
    }
}

impl Evidence for EvidenceReview {
    fn list(&self, filter: &Filter) -> Page {
        let index = guard(&self.index.index);
        let mut matching = index
            .bundles
            .range(..filter.before.unwrap_or(u64::MAX))
            .rev()
            .filter(|(_, b)| filter.matches(&b.summary, b.at))
            .map(|(_, b)| &b.summary);
        let events: Vec<EventSummary> = matching.by_ref().take(filter.limit).cloned().collect();
        let more = matching.next().is_some();
        Page { next_before: events.last().filter(|_| more).map(|e| e.seq), events }
    }

    fn subscribe(&self) -> Subscription {
        Subscription { bundles: self.index.new.subscribe(), closed: self.closed.subscribe() }
    }

    fn detail(&self, event_id: &str) -> Result<Detail, ReviewError> {
        let (sequence, dir, records, event) = self.find(event_id)?;
        let manifest = read_manifest(&dir)
            .ok_or_else(|| ReviewError::Store(format!("{}: manifest.json unreadable", dir.display())))?;
        let paths: Vec<PathBuf> = records.values().cloned().collect();
        let report = verify::verify_entry(&self.index.dir, sequence, &paths, &self.index.key);
        let verification = Verification {
            ok: report.problems.is_empty(),
            checked_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            problems: report.problems,
            warnings: report.warnings,
            chain: report.chain,
        };
        Ok(Detail { boxes: api::boxes(&manifest), holds: Self::holds(&records), event, manifest, verification })
    }

    fn file(&self, event_id: &str, name: &str) -> Result<PathBuf, ReviewError> {
        let (_, dir, records, event) = self.find(event_id)?;
        if !event.files.iter().any(|f| f == name) {
            return Err(ReviewError::NoFile(format!("{name} is not a file of the bundle of event {event_id}")));
        }
        let path = dir.join(name);
        if !path.exists() {
            let pruned = records.iter().find(|(_, d)| {
                read_manifest(d).is_some_and(|m| {
                    m["record"]["targets"].as_array().into_iter().flatten().any(|t| {
                        t["event_id"] == event_id
                            && t["removed"].as_array().is_some_and(|r| r.iter().any(|f| f == name))
                    })
                })
            });
            return Err(ReviewError::NoFile(match pruned {
                Some((sequence, _)) => {
                    format!("{name} of event {event_id} was removed by retention (prune record at sequence {sequence})")
                }
                None => format!("{name} of event {event_id} is missing from its bundle (no prune record names it)"),
            }));
        }
        Ok(path)
    }

    fn hold(&self, event_id: &str, on: bool, reason: &str) -> Result<HoldChange, ReviewError> {
        self.find(event_id)?;
        let written = {
            let mut store = lock(&self.store);
            if on { store.hold(event_id, reason) } else { store.release(event_id, reason) }
        };
        let record = match written {
            Ok(record) => record,
            Err(EvidenceError::UnknownEvent(_)) => return Err(ReviewError::UnknownEvent(event_id.to_owned())),
            Err(e) => {
                return Err(ReviewError::Store(format!(
                    "the {} record cannot be written: {e}",
                    if on { "hold" } else { "release" }
                )));
            }
        };
        if let Some(record) = &record {
            tracing::info!(event = %event_id, record = record.entry.as_str(), sequence = record.sequence,
                "legal hold changed from the console");
        }
        // The listener has indexed the record (it ran inside the append).
        let (_, _, records, _) = self.find(event_id)?;
        Ok(HoldChange {
            changed: record.is_some(),
            record_sequence: record.map(|r| r.sequence),
            holds: Self::holds(&records),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::evidence::checkin::CheckinRequest;
    use crate::evidence::keys::DeviceKey;

    /// A check-in bundle (no clip to cut): `verified` or rejected.
    fn checkin(verified: bool) -> CheckinRequest {
        let at = SystemTime::now();
        let time = |t| humantime::format_rfc3339_millis(t).to_string();
        CheckinRequest {
            event_id: uuid::Uuid::now_v7(),
            kind: if verified { "bedside_check_verified" } else { "bedside_check_rejected" }.into(),
            camera: "phone:ph-1".into(),
            camera_info: None,
            at,
            details: [("patient".to_owned(), "p-1".to_owned())].into(),
            checkin: serde_json::json!({
                "phone": "ph-abcdefghij", "ward": "w3", "mode": "bedside", "claimed": "p-1",
                "bed": "bed-2", "camera": "ward3-room12", "capture_id": uuid::Uuid::new_v4().to_string(),
                "captured_at": time(at), "received_at": time(at), "late": false,
                "position": {"lat": "31.230416", "lon": "121.473701", "accuracy_m": "12.0"},
                "checks": [{"name": "signature", "outcome": "passed", "reason": "registered_phone",
                            "detail": "Signed.", "facts": {"phone": "ph-abcdefghij"}}],
            }),
            photo: b"not a picture".to_vec().into(),
            annotation: None,
        }
    }

    /// Bundles written before and after the index is built are listed; a new one reaches the streams;
    /// a hold moves `held`; a file retention removed is named with its prune record, and the bundle
    /// still verifies (the prune record accounts for it).
    #[test]
    fn the_index_follows_the_store_and_a_pruned_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let key = DeviceKey::init(&dir.path().join("device.key")).unwrap();
        let mut store = Store::open(&dir.path().join("evidence"), key, "hosp", "edge", Vec::new()).unwrap();
        let before = checkin(false);
        store.write_checkin(&before).unwrap();
        let index = EventIndex::build(&mut store).unwrap();
        let mut streamed = index.new.subscribe();
        let after = checkin(true);
        store.write_checkin(&after).unwrap();
        assert_eq!(streamed.try_recv().unwrap().event_id, after.event_id.to_string());
        let shared = Arc::new(Mutex::new(store));
        let review = EvidenceReview::new(index, shared.clone());

        let all = review.list(&Filter { limit: 100, ..Filter::default() });
        let ids: Vec<&str> = all.events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, [after.event_id.to_string(), before.event_id.to_string()]);
        assert_eq!((all.events[0].verdict, all.events[1].verdict), (Some("verified"), Some("rejected")));
        let page = review.list(&Filter { limit: 1, ..Filter::default() });
        assert_eq!(page.next_before, Some(all.events[0].seq));
        let rejected = review.list(&Filter { limit: 100, verdict: Some(Some("rejected")), ..Filter::default() });
        assert_eq!(rejected.events.len(), 1);

        let (old, new) = (before.event_id.to_string(), after.event_id.to_string());
        let held = review.hold(&old, true, "court case 42").unwrap();
        assert!(held.changed && held.holds.len() == 1 && held.holds[0].on);
        assert!(!review.hold(&old, true, "again").unwrap().changed);
        assert!(review.list(&Filter { limit: 100, ..Filter::default() }).events[1].held);
        assert!(matches!(review.hold("no-such-event", true, "x"), Err(ReviewError::UnknownEvent(_))));

        {
            let mut store = lock(&shared);
            store.acknowledge(&new, SystemTime::now()).unwrap();
            assert_eq!(store.prune(0, SystemTime::now() + Duration::from_secs(1)).unwrap(), 1);
        }
        let gone = review.file(&new, "photo.bin").unwrap_err().to_string();
        assert!(gone.contains("was removed by retention (prune record at sequence"), "{gone}");
        let unlisted = review.file(&new, "manifest.json").unwrap_err().to_string();
        assert!(unlisted.contains("is not a file of the bundle"), "{unlisted}");
        assert!(review.file(&old, "photo.bin").unwrap().exists(), "the held bundle is kept");
        let detail = review.detail(&new).unwrap();
        assert!(detail.verification.ok, "{:?}", detail.verification.problems);
    }
}
