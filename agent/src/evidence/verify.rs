//! `vigil verify`: checks chain entries (bundles and signed records) as docs/evidence.md specifies, names
//! every problem, and says precisely what was verified.
//!
//! Nothing here trusts the store: directory names are parsed strictly, no symbolic link is followed (every
//! file is opened with `O_NOFOLLOW`, every directory entry looked at with `symlink_metadata`), a manifest
//! is only read for its content after its signature verifies, and every field is checked for its type and
//! format before it is used.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::canonical;
use super::keys::PublicKey;
use crate::hashing::sha256_hex;

pub const SCHEMA_V1: &str = "vigil.evidence.v1";
pub const SCHEMA_V2: &str = "vigil.evidence.v2";
/// `previous_manifest_sha256` of sequence 1.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The RFC 3161 token an entry may carry next to its manifest (not listed in `files`: it comes later).
pub const TIMESTAMP_FILE: &str = "timestamp.tsr";
/// The unsigned marker files of v1 stores (a v2 agent turns them into signed records).
const V1_MARKERS: [&str; 3] = ["ACKED", "HOLD", "PRUNED"];
const TIME_FORMAT: &str = "a time (YYYY-MM-DDTHH:MM:SS.mmmZ, UTC)";

/// `<sequence, exactly 10 digits>-<UUID, lower case>`, sequence ≥ 1; anything else is `None`
/// (`+000000003-…`, upper-case hex, a missing or extra character).
pub fn parse_entry_name(name: &str) -> Option<(u64, &str)> {
    let (seq, id) = (name.get(..10)?, name.get(11..)?);
    if name.as_bytes()[10] != b'-' || !seq.bytes().all(|b| b.is_ascii_digit()) || !is_uuid(id) {
        return None;
    }
    let sequence: u64 = seq.parse().ok()?;
    (sequence >= 1).then_some((sequence, id))
}

/// A lower-case UUID: 8-4-4-4-12 hex digits.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, and a real instant (no month 13).
pub fn is_time(s: &str) -> bool {
    let shape = s.len() == 24
        && s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'.',
            23 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    shape && humantime::parse_rfc3339(s).is_ok()
}

/// A quantity written as a decimal string: `-?digits(.digits)?`.
fn is_decimal(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "1"));
    !int.is_empty() && !frac.is_empty() && (int.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit())
}

/// A name allowed in `files`: `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`.
pub fn is_safe_file_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// A head the platform holds: the sequence of an entry and the SHA-256 of its manifest.json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub sequence: u64,
    pub manifest_sha256: String,
}

impl Head {
    /// `SEQ:SHA256` (hex, either case).
    pub fn parse(text: &str) -> Result<Head, String> {
        let bad = || format!("{text:?} is not a head (SEQ:SHA256, e.g. 12:{})", "ab".repeat(32));
        let (seq, sha) = text.split_once(':').ok_or_else(bad)?;
        let sequence: u64 = if !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()) {
            seq.parse().map_err(|_| bad())?
        } else {
            return Err(bad());
        };
        let sha = sha.to_ascii_lowercase();
        if sequence == 0 || !is_hex64(&sha) {
            return Err(bad());
        }
        Ok(Head { sequence, manifest_sha256: sha })
    }

    /// A file of heads: one `SEQ:SHA256` per line (further tokens on a line ignored), `#` comments and
    /// blank lines skipped. The agent's `<data_dir>/evidence-head` (`SEQ:SHA256 EPOCH`) is such a file.
    pub fn parse_file(text: &str) -> Result<Vec<Head>, String> {
        let mut heads = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let token = line.split_whitespace().next().unwrap_or("");
            heads.push(Head::parse(token).map_err(|e| format!("line {}: {e}", n + 1))?);
        }
        Ok(heads)
    }
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.sequence, self.manifest_sha256)
    }
}

/// What verification was asked to check besides the entries themselves.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Heads the platform received (`--expect-head`, `--heads`): each must be an entry of the chain.
    pub heads: Vec<Head>,
}

/// How much of the chain was checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Chain {
    /// Only entry directories were given (not a store): each was checked alone.
    #[default]
    NotChecked,
    /// From sequence 1 (the genesis link) to `last`.
    FromGenesis { entries: usize, last: u64 },
    /// From an `epoch` record (a signed checkpoint) at `first` to `last`.
    FromCheckpoint { entries: usize, epoch: u64, first: u64, last: u64 },
    /// The chain was checked and has problems (listed); it is not claimed verified.
    Broken,
}

/// The outcome of verifying.
#[derive(Debug, Default)]
pub struct Report {
    /// Entry directories looked at.
    pub entries: usize,
    pub bundles: usize,
    pub records: usize,
    /// One line per failure, naming the entry and what is wrong (exit 1).
    pub problems: Vec<String>,
    /// Things worth knowing that do not make the evidence invalid.
    pub warnings: Vec<String>,
    pub chain: Chain,
    /// Heads from the platform that matched an entry.
    pub heads_matched: usize,
    /// Entries carrying an RFC 3161 token over their manifest (imprint checked).
    pub timestamped: usize,
}

impl Report {
    /// What was verified, in one sentence (meaningful when there are no problems).
    pub fn verified(&self) -> String {
        let counts = format!("{} bundle(s), {} record(s)", self.bundles, self.records);
        let mut text = match self.chain {
            Chain::NotChecked => format!(
                "files and signatures of {} entries ({counts}); chain not checked (entry directories given, not a store)",
                self.entries
            ),
            Chain::FromGenesis { entries, last } => {
                format!("files, signatures and chain of {entries} entries from sequence 1 to {last} ({counts})")
            }
            Chain::FromCheckpoint { entries, epoch, first, last } => format!(
                "files, signatures and chain of {entries} entries from sequence {first} to {last} ({counts}); \
                 chain starts at a checkpoint (epoch {epoch} at sequence {first}): earlier entries were not given"
            ),
            Chain::Broken => format!("{} entries ({counts}); the chain has problems", self.entries),
        };
        text += &match self.timestamped {
            0 => "; no timestamp token".to_owned(),
            n => format!(
                "; {n} of {} entries carry an RFC 3161 timestamp token over their manifest (imprint checked; the \
                 TSA's signature is checked with openssl ts -verify)",
                self.entries
            ),
        };
        if self.heads_matched > 0 {
            text += &format!("; {} head(s) from the platform matched", self.heads_matched);
        } else if self.chain != Chain::NotChecked {
            text += "; no head from the platform given (entries removed from the end would not show)";
        }
        text
    }
}

/// A `target` of a record: the bundle concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub sequence: u64,
    pub event_id: String,
    pub manifest_sha256: String,
}

/// What a manifest is, beyond the common fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Bundle,
    Ack(Target),
    Hold(Target),
    Release(Target),
    /// (target, files removed), and the retention policy's `evidence_days`.
    Prune(Vec<(Target, Vec<String>)>, u64),
    /// The epoch it starts, and the head it continues (`None` only at sequence 1).
    Epoch(u64, Option<(u64, String)>),
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Bundle => "bundle",
            Kind::Ack(_) => "ack",
            Kind::Hold(_) => "hold",
            Kind::Release(_) => "release",
            Kind::Prune(..) => "prune",
            Kind::Epoch(..) => "epoch",
        }
    }
}

/// What a manifest says, as far as verification needs it.
#[derive(Debug)]
pub struct Manifest {
    /// 1 or 2.
    pub version: u8,
    pub kind: Kind,
    pub sequence: u64,
    /// `event.id` of a bundle, `record.id` of a record: the UUID in the directory name.
    pub id: String,
    pub previous_manifest_sha256: String,
    /// 1 for v1 entries.
    pub epoch: u64,
    pub public_key: String,
    pub created: String,
    /// `clock.synchronized` (v2).
    pub synchronized: Option<bool>,
    /// (file name, SHA-256 hex, size in bytes) as listed; a missing or mistyped hash or size is `None`
    /// and fails the comparison with the file.
    pub files: Vec<(String, Option<String>, Option<u64>)>,
}

/// Checks fields of a manifest by dotted path, pushing "missing field …" / "field … is …, not …".
struct Fields<'a> {
    root: &'a Value,
    problems: &'a mut Vec<String>,
}

fn lookup<'v>(root: &'v Value, path: &str) -> Result<&'v Value, String> {
    let mut at = root;
    let mut walked = String::new();
    for part in path.split('.') {
        if !walked.is_empty() {
            walked.push('.');
        }
        walked += part;
        let indexed = || part.parse::<usize>().ok().and_then(|i| at.get(i));
        at = match at.get(part).or_else(indexed) {
            Some(v) => v,
            None => return Err(walked),
        };
    }
    Ok(at)
}

fn show(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 60 { format!("{}…", text.chars().take(60).collect::<String>()) } else { text }
}

impl<'a> Fields<'a> {
    fn get(&mut self, path: &str, optional: bool) -> Option<&'a Value> {
        match lookup(self.root, path) {
            Ok(v) => Some(v),
            Err(missing) => {
                // An optional field is absent only when its parent exists.
                let parent_missing = missing != path;
                if !optional || parent_missing {
                    self.problems.push(format!("missing field {missing}"));
                }
                None
            }
        }
    }

    fn typed<T>(&mut self, path: &str, what: &str, optional: bool, ok: impl Fn(&'a Value) -> Option<T>) -> Option<T> {
        let value = self.get(path, optional)?;
        let found = ok(value);
        if found.is_none() {
            self.problems.push(format!("field {path} is {}, not {what}", show(value)));
        }
        found
    }

    fn str(&mut self, path: &str) -> Option<&'a str> {
        self.typed(path, "a string", false, Value::as_str)
    }
    fn uint(&mut self, path: &str) -> Option<u64> {
        self.typed(path, "an integer ≥ 0", false, Value::as_u64)
    }
    fn positive(&mut self, path: &str) -> Option<u64> {
        self.typed(path, "an integer ≥ 1", false, |v| v.as_u64().filter(|n| *n >= 1))
    }
    fn int(&mut self, path: &str) -> Option<i64> {
        self.typed(path, "an integer", false, Value::as_i64)
    }
    fn boolean(&mut self, path: &str) -> Option<bool> {
        self.typed(path, "true or false", false, Value::as_bool)
    }
    fn time(&mut self, path: &str) -> Option<&'a str> {
        self.typed(path, TIME_FORMAT, false, |v| v.as_str().filter(|s| is_time(s)))
    }
    fn uuid(&mut self, path: &str) -> Option<&'a str> {
        self.typed(path, "a lower-case UUID", false, |v| v.as_str().filter(|s| is_uuid(s)))
    }
    fn hex64(&mut self, path: &str) -> Option<&'a str> {
        self.typed(path, "64 lower-case hex digits (SHA-256)", false, |v| v.as_str().filter(|s| is_hex64(s)))
    }
    fn object(&mut self, path: &str) -> Option<&'a serde_json::Map<String, Value>> {
        self.typed(path, "an object", false, Value::as_object)
    }
    fn array(&mut self, path: &str) -> Option<&'a Vec<Value>> {
        self.typed(path, "a list", false, Value::as_array)
    }
    /// An object whose values are all strings (`check` each).
    fn string_map(&mut self, path: &str, what: &str, check: fn(&str) -> bool) {
        for (key, value) in self.object(path).into_iter().flatten() {
            if !value.as_str().is_some_and(check) {
                self.problems.push(format!("field {path}.{key} is {}, not {what}", show(value)));
            }
        }
    }
    /// Runs `each` on a sub-document (a list element) with paths prefixed.
    fn each(&mut self, path: &str, each: impl Fn(&mut Fields<'_>)) -> usize {
        let items = self.array(path).map(Vec::as_slice).unwrap_or_default();
        for (i, item) in items.iter().enumerate() {
            let mut inner = Vec::new();
            each(&mut Fields { root: item, problems: &mut inner });
            for p in inner {
                let p = match p.strip_prefix("missing field ") {
                    Some(rest) => format!("missing field {path}[{i}].{rest}"),
                    None => p.replacen("field ", &format!("field {path}[{i}]."), 1),
                };
                self.problems.push(p);
            }
        }
        items.len()
    }
    fn target(&mut self, path: &str) -> Option<Target> {
        let sequence = self.positive(&format!("{path}.sequence"));
        let event_id = self.uuid(&format!("{path}.event_id"));
        let sha = self.hex64(&format!("{path}.manifest_sha256"));
        Some(Target { sequence: sequence?, event_id: event_id?.to_owned(), manifest_sha256: sha?.to_owned() })
    }
}

/// Parses a manifest's bytes as `vigil verify` reads them, after the signature check: JSON, canonical
/// form, schema, every field's type and format, and file names that stay inside the entry. Problems are
/// pushed to `problems` (without the entry's name); `None` when the bytes are not a JSON object. Never
/// panics, whatever the bytes (fuzzed: `vigil::fuzzing::manifest`).
pub fn parse_manifest(bytes: &[u8], problems: &mut Vec<String>) -> Option<Manifest> {
    let manifest: Value = match serde_json::from_slice(bytes) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            problems.push("manifest.json is not a JSON object".into());
            return None;
        }
        Err(e) => {
            problems.push(format!("manifest.json is not JSON: {e}"));
            return None;
        }
    };
    if canonical::to_bytes(&manifest).ok().as_deref() != Some(bytes) {
        problems.push("manifest.json is not in canonical form".into());
    }
    let version = match manifest.get("schema").and_then(Value::as_str) {
        Some(SCHEMA_V1) => 1,
        Some(SCHEMA_V2) => 2,
        _ => {
            problems.push(format!(
                "unknown schema {} (expected \"{SCHEMA_V1}\" or \"{SCHEMA_V2}\")",
                manifest.get("schema").map_or("(none)".into(), show)
            ));
            0
        }
    };
    let mut f = Fields { root: &manifest, problems };
    let kind_name = if version == 2 { f.str("type").unwrap_or("") } else { "bundle" };
    let sequence = f.positive("sequence").unwrap_or(0);
    let previous = f.hex64("previous_manifest_sha256").unwrap_or("").to_owned();
    let epoch = if version == 2 { f.positive("epoch").unwrap_or(0) } else { 1 };
    f.str("device.site");
    f.str("device.device");
    let public_key = f.str("device.public_key").unwrap_or("").to_owned();
    let created = f.time("created").unwrap_or("").to_owned();
    let synchronized = if version == 2 {
        f.str("clock.source");
        f.int("clock.max_error_us");
        f.int("clock.est_error_us");
        f.boolean("clock.synchronized")
    } else {
        None
    };
    if sequence == 1 && !previous.is_empty() && previous != GENESIS {
        f.problems.push("sequence 1 must start the chain (previous_manifest_sha256 all zeros)".into());
    }
    if sequence > 1 && previous == GENESIS {
        f.problems.push(format!("sequence {sequence} has the all-zeros previous_manifest_sha256 of sequence 1"));
    }
    // A phone upload's bundle (v2): a photo and the checks instead of a clip and a snapshot.
    let checkin = version == 2 && kind_name == "bundle" && manifest.get("checkin").is_some();
    let (kind, id) = match kind_name {
        "bundle" if checkin => (Some(Kind::Bundle), checkin_fields(&mut f)),
        "bundle" => (Some(Kind::Bundle), bundle_fields(&mut f, version)),
        "ack" | "hold" | "release" | "prune" | "epoch" => record_fields(&mut f, kind_name, sequence, &previous),
        other => {
            if version == 2 {
                f.problems.push(format!(
                    "field type is {}, not one of bundle, ack, hold, release, prune, epoch",
                    show(&Value::from(other))
                ));
            }
            (None, String::new())
        }
    };
    let mut files = Vec::new();
    let listed = manifest.get("files");
    if kind == Some(Kind::Bundle) || listed.is_some_and(|v| v.as_object().is_none_or(|m| !m.is_empty())) {
        if kind.as_ref().is_some_and(|k| *k != Kind::Bundle) {
            problems.push("a record lists files (only bundles have files)".into());
        }
        files = file_list(&manifest, version, checkin, problems);
    }
    Some(Manifest {
        version: version.max(1),
        kind: kind.unwrap_or(Kind::Bundle),
        sequence,
        id,
        previous_manifest_sha256: previous,
        epoch,
        public_key,
        created,
        synchronized,
        files,
    })
}

/// The fields of a bundle (v1, and v2's additions); returns `event.id`.
fn bundle_fields(f: &mut Fields<'_>, version: u8) -> String {
    let id = f.uuid("event.id").unwrap_or("").to_owned();
    f.str("event.kind");
    f.str("event.camera");
    f.time("event.at");
    f.string_map("event.details", "a string", |_| true);
    for field in ["clip.requested_from", "clip.requested_to", "clip.start", "clip.end", "snapshot.at"] {
        f.time(field);
    }
    f.uint("clip.frames");
    f.uint("snapshot.width");
    f.uint("snapshot.height");
    f.each("detections", |d| {
        d.str("label");
        d.typed("box", "a list of 4 integers", false, |v| {
            v.as_array().filter(|b| b.len() == 4 && b.iter().all(|n| n.as_i64().is_some()))
        });
        d.typed("score", "a decimal string", false, |v| v.as_str().filter(|s| is_decimal(s)));
    });
    f.each("models", |m| {
        m.str("name");
        m.hex64("sha256");
    });
    if version == 2 {
        f.str("agent.name");
        f.str("agent.version");
        f.str("camera.id");
        f.str("camera.role");
        f.str("camera.url_redacted");
        f.typed("camera.name", "a string", true, Value::as_str);
        f.string_map("decision.thresholds", "a decimal string", is_decimal);
        f.typed("event.onset", TIME_FORMAT, true, |v| v.as_str().filter(|s| is_time(s)));
        if f.get("clip.missing", true).is_some() {
            f.each("clip.missing", |m| {
                m.time("from");
                m.time("to");
                m.str("reason");
            });
        }
    }
    id
}

/// The fields of a check-in bundle (docs/evidence.md, "Check-in bundles"); returns `event.id`.
fn checkin_fields(f: &mut Fields<'_>) -> String {
    let id = f.uuid("event.id").unwrap_or("").to_owned();
    f.str("event.kind");
    f.str("event.camera");
    f.time("event.at");
    f.string_map("event.details", "a string", |_| true);
    f.str("agent.name");
    f.str("agent.version");
    f.each("models", |m| {
        m.str("name");
        m.hex64("sha256");
    });
    // The bed's camera, when the bed has one.
    if f.get("camera", true).is_some() {
        f.str("camera.id");
        f.str("camera.role");
        f.str("camera.url_redacted");
        f.typed("camera.name", "a string", true, Value::as_str);
    }
    for field in ["checkin.phone", "checkin.ward", "checkin.mode", "checkin.claimed"] {
        f.str(field);
    }
    f.typed("checkin.bed", "a string", true, Value::as_str);
    f.typed("checkin.camera", "a string", true, Value::as_str);
    f.uuid("checkin.capture_id");
    f.time("checkin.captured_at");
    f.time("checkin.received_at");
    f.boolean("checkin.late");
    if f.get("checkin.position", true).is_some() {
        for field in ["checkin.position.lat", "checkin.position.lon", "checkin.position.accuracy_m"] {
            f.typed(field, "a decimal string", false, |v| v.as_str().filter(|s| is_decimal(s)));
        }
    }
    let checks = f.each("checkin.checks", |c| {
        c.str("name");
        c.typed("outcome", "passed, failed or skipped", false, |v| {
            v.as_str().filter(|s| ["passed", "failed", "skipped"].contains(s))
        });
        c.str("reason");
        c.str("detail");
        if c.get("facts", true).is_some() {
            c.string_map("facts", "a string", |_| true);
        }
    });
    if f.get("checkin.checks", false).is_some_and(Value::is_array) && checks == 0 {
        f.problems.push("field checkin.checks is an empty list: a check-in names its checks".into());
    }
    if f.get("annotated", true).is_some() {
        f.uint("annotated.width");
        f.uint("annotated.height");
        f.each("annotated.faces", |_| {});
    }
    id
}

/// The `record` of a v2 record entry; returns its kind and `record.id`.
fn record_fields(f: &mut Fields<'_>, kind: &str, sequence: u64, previous: &str) -> (Option<Kind>, String) {
    let id = f.uuid("record.id").unwrap_or("").to_owned();
    let kind = match kind {
        "ack" => {
            f.time("record.acknowledged_at");
            f.target("record.target").map(Kind::Ack)
        }
        "hold" | "release" => {
            f.str("record.reason");
            let target = f.target("record.target");
            target.map(if kind == "hold" { Kind::Hold } else { Kind::Release })
        }
        "prune" => {
            let days = f.uint("record.policy.evidence_days");
            let mut targets = Vec::new();
            let count = f.array("record.targets").map_or(0, Vec::len);
            if f.get("record.targets", false).is_some_and(|v| v.as_array().is_some()) && count == 0 {
                f.problems.push("field record.targets is an empty list: a prune record names what it removed".into());
            }
            for i in 0..count {
                let path = format!("record.targets.{i}");
                let target = f.target(&path);
                let removed: Vec<String> = f
                    .array(&format!("{path}.removed"))
                    .into_iter()
                    .flatten()
                    .filter_map(|v| {
                        let name = v.as_str().filter(|s| is_safe_file_name(s));
                        if name.is_none() {
                            f.problems.push(format!("field {path}.removed lists {}, not a file name", show(v)));
                        }
                        name.map(str::to_owned)
                    })
                    .collect();
                if removed.is_empty() {
                    f.problems.push(format!("field {path}.removed names no file"));
                }
                targets.extend(target.map(|t| (t, removed)));
            }
            (targets.len() == count && count > 0).then_some(()).and(days.map(|d| Kind::Prune(targets, d)))
        }
        _ => {
            f.str("record.reason");
            let epoch = f.positive("record.epoch");
            let head = match f.get("record.previous_head", false) {
                Some(Value::Null) => Some(None),
                Some(_) => {
                    let seq = f.positive("record.previous_head.sequence");
                    let sha = f.hex64("record.previous_head.manifest_sha256");
                    seq.zip(sha).map(|(s, h)| Some((s, h.to_owned())))
                }
                None => None,
            };
            match &head {
                Some(Some((seq, sha))) if *seq + 1 != sequence || sha != previous => {
                    f.problems.push(format!(
                        "record.previous_head {seq}:{sha} is not the entry this one follows ({}:{previous})",
                        sequence.saturating_sub(1)
                    ));
                }
                Some(None) if sequence != 1 => {
                    f.problems.push(format!(
                        "record.previous_head is null at sequence {sequence} (only sequence 1 has none)"
                    ));
                }
                _ => {}
            }
            if let (Some(e), Some(m)) = (epoch, f.root.get("epoch").and_then(Value::as_u64)) {
                if e != m {
                    f.problems.push(format!("record.epoch {e} differs from the manifest's epoch {m}"));
                }
            }
            epoch.zip(head).map(|(e, h)| Kind::Epoch(e, h))
        }
    };
    (kind, id)
}

/// `files`: name → {sha256, bytes}, names safe, and the media a bundle of this version has.
fn file_list(
    manifest: &Value,
    version: u8,
    checkin: bool,
    problems: &mut Vec<String>,
) -> Vec<(String, Option<String>, Option<u64>)> {
    let mut files = Vec::new();
    let Some(map) = manifest.get("files").and_then(Value::as_object) else {
        problems.push(match manifest.get("files") {
            None => "missing field files".into(),
            Some(v) => format!("field files is {}, not an object", show(v)),
        });
        return files;
    };
    for (file, expected) in map {
        // An entry is one flat directory of plainly named files: "../x", "a/b" or ".hidden" would make
        // verify read outside it or accept what a listing hides.
        if file.contains(['/', '\0']) || file == "." || file == ".." || file.is_empty() {
            problems.push(format!("manifest lists {file:?}, which is not a file name inside the bundle"));
            continue;
        }
        if !is_safe_file_name(file) || [("manifest.json"), "manifest.sig", TIMESTAMP_FILE].contains(&file.as_str()) {
            problems.push(format!(
                "manifest lists {file:?}, which is not an allowed file name (^[A-Za-z0-9][A-Za-z0-9._-]{{0,63}}$, \
                 not manifest.json, manifest.sig or {TIMESTAMP_FILE})"
            ));
            continue;
        }
        let sha256 = expected.get("sha256").and_then(Value::as_str).filter(|s| is_hex64(s));
        let bytes = expected.get("bytes").and_then(Value::as_u64);
        if sha256.is_none() || bytes.is_none() {
            problems.push(format!(
                "field files.{file} is {}, not {{\"bytes\": integer, \"sha256\": 64 hex digits}}",
                show(expected)
            ));
        }
        files.push((file.clone(), sha256.map(str::to_owned), bytes));
    }
    if checkin {
        // Exactly one photo; `annotated.jpg` whenever the photo decoded (the manifest says so).
        let photos: Vec<&str> =
            super::checkin::PHOTO_FILES.into_iter().filter(|name| map.contains_key(*name)).collect();
        if photos.len() != 1 {
            problems.push(format!(
                "a check-in bundle lists exactly one of photo.jpg, photo.png, photo.bin; it lists {}",
                if photos.is_empty() { "none".to_owned() } else { photos.join(", ") }
            ));
        }
        if manifest.get("annotated").is_some() != map.contains_key(super::checkin::ANNOTATED_FILE) {
            problems.push("files lists annotated.jpg if and only if the manifest has `annotated`".into());
        }
        return files;
    }
    let media: &[&str] =
        if version == 2 { &["clip.mp4", "snapshot.jpg", "frame.jpg"] } else { &["clip.mp4", "snapshot.jpg"] };
    for name in media {
        if !map.contains_key(*name) {
            problems.push(format!("files does not list {name}"));
        }
    }
    files
}

/// Opens a file without following a symbolic link, and refuses anything but a regular file (a FIFO
/// would block, a device would never end).
fn open_plain(path: &Path) -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok(file)
}

fn read_plain(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open_plain(path)?.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("larger than {limit} bytes")));
    }
    Ok(bytes)
}

/// SHA-256 (hex) and size of a file, read in blocks: a bundle's clip may be large.
fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = open_plain(path)?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let (mut buf, mut size) = (vec![0u8; 1 << 16], 0u64);
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        context.update(&buf[..n]);
        size += n as u64;
    }
    Ok((crate::hashing::hex(context.finish().as_ref()), size))
}

/// One entry directory, as checked on its own.
struct Entry {
    name: String,
    /// From the manifest when its signature verified, else from the directory name.
    sequence: u64,
    /// SHA-256 of manifest.json's bytes, when readable.
    manifest_sha256: Option<String>,
    /// The manifest, when its signature verified.
    manifest: Option<Manifest>,
    /// Listed files that are absent: a problem unless a prune record names them.
    missing: Vec<String>,
    /// Listed files that are present (and intact or reported).
    present: BTreeSet<String>,
    /// genTime of its RFC 3161 token (`timestamp.tsr`), when it has one over this manifest.
    timestamp: Option<String>,
}

/// Checks one entry directory on its own: signature, key, fields, name, files.
fn check_entry(dir: &Path, name: &str, key: &PublicKey, problems: &mut Vec<String>) -> Entry {
    let mut found = Vec::new();
    let named = parse_entry_name(name);
    let mut entry = Entry {
        name: name.to_owned(),
        sequence: named.map_or(0, |(s, _)| s),
        manifest_sha256: None,
        manifest: None,
        missing: Vec::new(),
        present: BTreeSet::new(),
        timestamp: None,
    };
    // What the directory holds, without following anything.
    let mut listing: BTreeMap<String, std::fs::FileType> = BTreeMap::new();
    match std::fs::read_dir(dir) {
        Ok(items) => {
            for item in items.flatten() {
                let file = item.file_name().to_string_lossy().into_owned();
                match std::fs::symlink_metadata(item.path()) {
                    Ok(meta) => {
                        listing.insert(file, meta.file_type());
                    }
                    Err(e) => found.push(format!("{file}: cannot read: {e}")),
                }
            }
        }
        Err(e) => found.push(format!("cannot read the directory: {e}")),
    }
    let plain = |file: &str| listing.get(file).is_some_and(|t| t.is_file());
    for (file, kind) in &listing {
        if kind.is_symlink() {
            found.push(format!("{file} is a symbolic link (verify never follows links)"));
        } else if kind.is_dir() {
            found.push(format!("{file} is a directory, not part of the entry"));
        } else if !kind.is_file() {
            found.push(format!("{file} is not a regular file"));
        }
    }
    let read = |file: &str, limit: u64| -> Result<Vec<u8>, String> {
        if !listing.contains_key(file) {
            return Err(format!("{file} is missing"));
        }
        if !plain(file) {
            return Err(String::new()); // named above
        }
        read_plain(&dir.join(file), limit).map_err(|e| format!("{file} unreadable: {e}"))
    };
    let bytes = read("manifest.json", crate::input::MAX_JSON_BYTES);
    let signature = read("manifest.sig", 64);
    let verified = match (&bytes, &signature) {
        (Ok(bytes), Ok(signature)) if signature.len() == 64 => {
            entry.manifest_sha256 = Some(sha256_hex(bytes));
            if key.verify(bytes, signature) {
                true
            } else {
                found.push(
                    "bad signature: manifest.sig is not a signature of manifest.json by this key (altered \
                     manifest, or signed by another key)"
                        .into(),
                );
                false
            }
        }
        (bytes, signature) => {
            if let Ok(b) = bytes {
                entry.manifest_sha256 = Some(sha256_hex(b));
            }
            for e in [bytes.as_ref().err(), signature.as_ref().err()].into_iter().flatten() {
                if !e.is_empty() {
                    found.push(e.clone());
                }
            }
            if let Ok(s) = signature {
                found
                    .push(format!("bad signature: manifest.sig is {} bytes, not a 64-byte Ed25519 signature", s.len()));
            }
            false
        }
    };
    let mut allowed: BTreeSet<String> =
        ["manifest.json", "manifest.sig", TIMESTAMP_FILE].iter().map(|s| s.to_string()).collect();
    if verified {
        let bytes = bytes.as_ref().unwrap();
        let manifest = parse_manifest(bytes, &mut found);
        if let Some(manifest) = manifest {
            if manifest.public_key != key.to_base64() {
                found.push(format!(
                    "device.public_key in the manifest ({}) is not the key given ({})",
                    manifest.public_key,
                    key.to_base64()
                ));
            }
            if named != Some((manifest.sequence, manifest.id.as_str())) {
                found.push(format!(
                    "directory name does not match its manifest (sequence {}, {} {}): renamed or reordered",
                    manifest.sequence,
                    if manifest.kind == Kind::Bundle { "event" } else { "record" },
                    manifest.id
                ));
            }
            for (file, sha256, size) in &manifest.files {
                allowed.insert(file.clone());
                match listing.get(file) {
                    None => entry.missing.push(file.clone()),
                    Some(t) if !t.is_file() => {} // named above
                    Some(_) => {
                        entry.present.insert(file.clone());
                        match hash_file(&dir.join(file)) {
                            Ok((actual_sha256, actual_size)) => {
                                if sha256.as_deref() != Some(actual_sha256.as_str()) || *size != Some(actual_size) {
                                    found.push(format!(
                                        "{file} was modified (SHA-256 or size differs from the manifest)"
                                    ));
                                }
                            }
                            Err(e) => found.push(format!("{file} unreadable: {e}")),
                        }
                    }
                }
            }
            entry.sequence = manifest.sequence;
            entry.manifest = Some(manifest);
        }
        for (file, kind) in &listing {
            if allowed.contains(file) || !kind.is_file() {
                continue;
            }
            if V1_MARKERS.contains(&file.as_str()) {
                found.push(format!(
                    "{file} is an unsigned v1 marker file, not part of the entry (a v2 agent turns markers into \
                     signed records)"
                ));
            } else {
                found.push(format!("{file} is not part of the entry"));
            }
        }
    }
    // `timestamp.tsr`: an RFC 3161 token over SHA-256(manifest.json), added after the entry was written.
    // Its imprint and genTime are checked here; the TSA's CMS signature needs the TSA's certificate
    // (`openssl ts -verify`, docs/evidence.md "Trusted time").
    if let (true, Ok(bytes)) = (verified, &bytes) {
        let digest: [u8; 32] =
            ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().try_into().unwrap_or([0; 32]);
        match super::timestamp::entry_token(dir, &digest) {
            Ok(token) => entry.timestamp = token.map(|t| t.gen_time),
            Err(e) => found.push(format!("timestamp token refused: {e}")),
        }
    }
    let mut seen = BTreeSet::new();
    for problem in found {
        if seen.insert(problem.clone()) {
            problems.push(format!("{name}: {problem}"));
        }
    }
    entry
}

/// Verifies each path: an entry directory (checked alone), or a store directory (its entries, and the
/// chain across all entries given).
pub fn verify(paths: &[PathBuf], key: &PublicKey) -> Report {
    verify_with(paths, key, &Options::default())
}

pub fn verify_with(paths: &[PathBuf], key: &PublicKey, options: &Options) -> Report {
    let mut report = Report::default();
    let mut entries: Vec<Entry> = Vec::new();
    let mut stores = 0;
    let mut seen = BTreeSet::new();
    for path in paths {
        let shown = path.display();
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                report.problems.push(format!("{shown}: not a directory (give a store or an entry directory)"));
                continue;
            }
            Err(e) => {
                report.problems.push(format!("{shown}: cannot read: {e}"));
                continue;
            }
        }
        if !seen.insert(std::fs::canonicalize(path).unwrap_or_else(|_| path.clone())) {
            continue;
        }
        if std::fs::symlink_metadata(path.join("manifest.json")).is_ok() {
            let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
            if parse_entry_name(&name).is_none() {
                report.problems.push(format!(
                    "{name}: not an entry directory name (<sequence, 10 digits>-<lower-case UUID>, sequence ≥ 1)"
                ));
            }
            entries.push(check_entry(path, &name, key, &mut report.problems));
            continue;
        }
        stores += 1;
        let before = entries.len();
        let items = match std::fs::read_dir(path) {
            Ok(items) => items,
            Err(e) => {
                report.problems.push(format!("{shown}: cannot read: {e}"));
                continue;
            }
        };
        let mut names: Vec<(String, PathBuf)> =
            items.flatten().map(|e| (e.file_name().to_string_lossy().into_owned(), e.path())).collect();
        names.sort();
        for (name, entry_path) in names {
            let kind = std::fs::symlink_metadata(&entry_path).map(|m| m.file_type());
            if name.starts_with(".tmp-") {
                report.warnings.push(format!(
                    "{name}: ignored: an entry being written, or left by a crash (the agent removes it at start-up); \
                     not evidence"
                ));
            } else if parse_entry_name(&name).is_none() {
                report.problems.push(format!(
                    "{name}: not an evidence entry (an entry directory is named <sequence, 10 digits>-<lower-case \
                     UUID>, sequence ≥ 1)"
                ));
            } else if kind.as_ref().is_ok_and(|k| k.is_symlink()) {
                report.problems.push(format!("{name}: is a symbolic link (verify never follows links)"));
            } else if !kind.as_ref().is_ok_and(|k| k.is_dir()) {
                report.problems.push(format!("{name}: not a directory"));
            } else {
                entries.push(check_entry(&entry_path, &name, key, &mut report.problems));
            }
        }
        if entries.len() == before {
            report.problems.push(format!("{shown}: no evidence entries here"));
        }
    }
    report.entries = entries.len();
    report.timestamped = entries.iter().filter(|e| e.timestamp.is_some()).count();
    for e in &entries {
        match e.manifest.as_ref().map(|m| &m.kind) {
            Some(Kind::Bundle) => report.bundles += 1,
            Some(_) => report.records += 1,
            None => {}
        }
    }
    let unsynchronized =
        entries.iter().filter(|e| e.manifest.as_ref().and_then(|m| m.synchronized) == Some(false)).count();
    if unsynchronized > 0 {
        report.warnings.push(format!(
            "{unsynchronized} entries were signed while the device clock was not synchronized (clock.synchronized \
             false): their times rest on the box's clock alone"
        ));
    }
    entries.sort_by(|a, b| (a.sequence, &a.name).cmp(&(b.sequence, &b.name)));
    let chain_problems_before = report.problems.len();
    if stores > 0 && !entries.is_empty() {
        check_chain(&entries, &mut report);
    }
    cross_check(&entries, stores > 0, &mut report.problems, &mut report.warnings);
    check_heads(&entries, &options.heads, &mut report);
    if stores > 0 && !entries.is_empty() && report.chain == Chain::NotChecked {
        report.chain = Chain::Broken;
    }
    if report.problems.len() > chain_problems_before && stores > 0 {
        report.chain = Chain::Broken;
    }
    report
}

/// Links, gaps, duplicates, the start (sequence 1 or an epoch checkpoint), epochs and time order.
fn check_chain(entries: &[Entry], report: &mut Report) {
    let problems = &mut report.problems;
    let first = &entries[0];
    let mut start = None;
    match first.manifest.as_ref() {
        _ if first.sequence == 1 => start = Some(Chain::FromGenesis { entries: 0, last: 0 }),
        Some(Manifest { kind: Kind::Epoch(epoch, _), .. }) => {
            start = Some(Chain::FromCheckpoint { entries: 0, epoch: *epoch, first: first.sequence, last: 0 })
        }
        _ => problems.push(format!(
            "{}: the chain starts at sequence {}, which is neither sequence 1 nor an epoch checkpoint: entries 1 to {} \
             are missing (removed from the start of the chain)",
            first.name,
            first.sequence,
            first.sequence.saturating_sub(1)
        )),
    }
    if let Some(m) = &first.manifest {
        if m.version == 2 && first.sequence == 1 && m.epoch != 1 && !matches!(m.kind, Kind::Epoch(..)) {
            problems.push(format!("{}: sequence 1 is in epoch {}, not 1", first.name, m.epoch));
        }
    }
    for pair in entries.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.sequence == a.sequence {
            problems.push(format!(
                "{} and {}: both claim sequence {} (a sequence number reused)",
                a.name, b.name, a.sequence
            ));
            continue;
        }
        if b.sequence > a.sequence + 1 {
            let missing = if b.sequence == a.sequence + 2 {
                format!("bundle {} is missing", a.sequence + 1)
            } else {
                format!("bundles {} to {} are missing", a.sequence + 1, b.sequence - 1)
            };
            problems.push(format!("{missing} (no entry with that sequence between {} and {})", a.name, b.name));
            continue;
        }
        let (Some(ma), Some(mb)) = (&a.manifest, &b.manifest) else { continue };
        if a.manifest_sha256.as_deref() != Some(mb.previous_manifest_sha256.as_str()) {
            problems.push(format!(
                "{}: chain broken: its previous_manifest_sha256 is not the hash of {}'s manifest (entries reordered \
                 or replaced)",
                b.name, a.name
            ));
        }
        if mb.version < ma.version {
            problems.push(format!("{}: a v1 entry after a v2 entry ({})", b.name, a.name));
        }
        match mb.kind {
            Kind::Epoch(epoch, _) if epoch != ma.epoch + 1 => problems.push(format!(
                "{}: epoch record starts epoch {epoch}, but the entry before it is in epoch {}",
                b.name, ma.epoch
            )),
            Kind::Epoch(..) => {}
            _ if mb.version == 2 && mb.epoch != ma.epoch => problems.push(format!(
                "{}: epoch {} differs from the previous entry's epoch {} without an epoch record",
                b.name, mb.epoch, ma.epoch
            )),
            _ => {}
        }
        if !mb.created.is_empty() && mb.created < ma.created {
            let text = format!(
                "{}: created {}, earlier than the previous entry's {} (sequence {}): the clock went back",
                b.name, mb.created, ma.created, a.sequence
            );
            if mb.version == 2 && ma.version == 2 {
                problems.push(text);
            } else {
                report.warnings.push(text);
            }
        }
    }
    let (count, last) = (entries.len(), entries.last().map_or(0, |e| e.sequence));
    report.chain = match start {
        Some(Chain::FromGenesis { .. }) => Chain::FromGenesis { entries: count, last },
        Some(Chain::FromCheckpoint { epoch, first, .. }) => {
            Chain::FromCheckpoint { entries: count, epoch, first, last }
        }
        _ => Chain::Broken,
    };
}

/// Records against the bundles they name: targets exist and match, ack before prune, no prune under
/// hold or before retention, and every missing media file named by a prune record. `complete` is true
/// when the entries are a store's chain (the whole history is given).
fn cross_check(entries: &[Entry], complete: bool, problems: &mut Vec<String>, warnings: &mut Vec<String>) {
    let by_sequence: BTreeMap<u64, &Entry> = entries.iter().map(|e| (e.sequence, e)).collect();
    let first = entries.first().map_or(0, |e| e.sequence);
    #[derive(Default)]
    struct State {
        acked: bool,
        hold: Option<u64>,
        removed: BTreeMap<String, u64>,
    }
    let mut states: BTreeMap<u64, State> = BTreeMap::new();
    for record in entries {
        let Some(m) = &record.manifest else { continue };
        let targets: Vec<&Target> = match &m.kind {
            Kind::Bundle | Kind::Epoch(..) => continue,
            Kind::Ack(t) | Kind::Hold(t) | Kind::Release(t) => vec![t],
            Kind::Prune(targets, _) => targets.iter().map(|(t, _)| t).collect(),
        };
        let name = &record.name;
        let mut valid = Vec::new();
        for t in targets {
            let problem = if t.sequence >= m.sequence {
                Some(format!("its target, sequence {}, is not before it", t.sequence))
            } else {
                match by_sequence.get(&t.sequence) {
                    None if !complete => None,
                    None if t.sequence < first => {
                        Some(format!("names entry {}, which is before the first entry given", t.sequence))
                    }
                    None => Some(format!("names entry {}, which is not in the chain", t.sequence)),
                    Some(b) => match &b.manifest {
                        None => {
                            Some(format!("names entry {} ({}), whose signature did not verify", t.sequence, b.name))
                        }
                        Some(bm) if bm.kind != Kind::Bundle => Some(format!(
                            "names entry {} ({}), which is a {} record, not a bundle",
                            t.sequence,
                            b.name,
                            bm.kind.name()
                        )),
                        Some(bm) if bm.id != t.event_id => Some(format!(
                            "names event {} at sequence {}, but {} is event {}",
                            t.event_id, t.sequence, b.name, bm.id
                        )),
                        Some(_) if b.manifest_sha256.as_deref() != Some(t.manifest_sha256.as_str()) => Some(format!(
                            "names entry {} with manifest SHA-256 {}, but {}'s manifest has {}",
                            t.sequence,
                            t.manifest_sha256,
                            b.name,
                            b.manifest_sha256.as_deref().unwrap_or("(unreadable)")
                        )),
                        Some(_) => {
                            valid.push(t.sequence);
                            None
                        }
                    },
                }
            };
            if let Some(p) = problem {
                problems.push(format!("{name}: {} record {p}", m.kind.name()));
            }
        }
        match &m.kind {
            Kind::Ack(t) => states.entry(t.sequence).or_default().acked = true,
            Kind::Hold(t) => states.entry(t.sequence).or_default().hold = Some(m.sequence),
            Kind::Release(t) => {
                let state = states.entry(t.sequence).or_default();
                if state.hold.is_none() && complete {
                    warnings.push(format!("{name}: releases a hold on entry {} that was not held", t.sequence));
                }
                state.hold = None;
            }
            Kind::Prune(targets, days) => {
                for (t, removed) in targets {
                    let state = states.entry(t.sequence).or_default();
                    if complete && valid.contains(&t.sequence) {
                        if !state.acked {
                            problems.push(format!(
                                "{name}: prunes bundle {}, which was never acknowledged (no ack record before it)",
                                t.sequence
                            ));
                        }
                        if let Some(h) = state.hold {
                            problems.push(format!(
                                "{name}: prunes bundle {} while it is under legal hold (hold at sequence {h}, not released)",
                                t.sequence
                            ));
                        }
                    }
                    if let Some(bm) = by_sequence.get(&t.sequence).and_then(|b| b.manifest.as_ref()) {
                        let due = humantime::parse_rfc3339(&bm.created)
                            .ok()
                            .map(|c| c + std::time::Duration::from_secs(days.saturating_mul(86_400).min(1 << 40)));
                        let at = humantime::parse_rfc3339(&m.created).ok();
                        if let (Some(due), Some(at)) = (due, at) {
                            if at < due {
                                problems.push(format!(
                                    "{name}: prunes bundle {} before its retention ended (created {}, evidence_days {days})",
                                    t.sequence, bm.created
                                ));
                            }
                        }
                        for file in removed {
                            if !bm.files.iter().any(|(f, _, _)| f == file) {
                                problems.push(format!(
                                    "{name}: prune record removes {file} from bundle {}, which does not list it",
                                    t.sequence
                                ));
                            }
                        }
                    }
                    for file in removed {
                        state.removed.insert(file.clone(), m.sequence);
                    }
                }
            }
            _ => {}
        }
    }
    for entry in entries {
        let state = states.get(&entry.sequence);
        for file in &entry.missing {
            if !state.is_some_and(|s| s.removed.contains_key(file)) {
                problems.push(format!("{}: {file} is missing (no prune record names it)", entry.name));
            }
        }
        for (file, at) in state.map(|s| &s.removed).into_iter().flatten() {
            if entry.present.contains(file) {
                warnings.push(format!(
                    "{}: {file} is named removed by the prune record at sequence {at} but is still present \
                     (pruning interrupted)",
                    entry.name
                ));
            }
        }
    }
}

/// One entry of a store checked where it stands (the console's evidence view): how it was checked.
#[derive(Debug, Default)]
pub struct EntryReport {
    /// Every failure, each naming the entry and what is wrong; empty: the entry verified.
    pub problems: Vec<String>,
    /// Things worth knowing that do not make it invalid.
    pub warnings: Vec<String>,
    /// Its place in the chain in one line: `entry N of M, …`.
    pub chain: String,
}

/// Verifies the entry at `sequence` of the store `store` without reading the whole chain: the entry on
/// its own, as [`verify`] checks every entry (signature, key, fields, name, each file's hash and size);
/// its link to the entry before it (its `previous_manifest_sha256` is the SHA-256 of that entry's
/// manifest, or the genesis at sequence 1) and the entry after it linking back to it; and `records`
/// (the record entries naming it), each checked on its own and held against it as the chain check does
/// (a prune record accounts for the media it removed).
pub fn verify_entry(store: &Path, sequence: u64, records: &[PathBuf], key: &PublicKey) -> EntryReport {
    let mut report = EntryReport::default();
    let mut at: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut last = 0;
    match std::fs::read_dir(store) {
        Ok(items) => {
            for item in items.flatten() {
                let name = item.file_name().to_string_lossy().into_owned();
                if let Some((seq, _)) = parse_entry_name(&name) {
                    last = last.max(seq);
                    if seq + 1 >= sequence && seq <= sequence + 1 {
                        at.entry(seq).or_default().push(name);
                    }
                }
            }
        }
        Err(e) => {
            report.problems.push(format!("{}: cannot read: {e}", store.display()));
            report.chain = "not checked: the store cannot be read".into();
            return report;
        }
    }
    let one = |report: &mut EntryReport, seq: u64| -> Option<String> {
        match at.get(&seq).map(Vec::as_slice) {
            Some([name]) => Some(name.clone()),
            Some(names) => {
                report
                    .problems
                    .push(format!("{}: both claim sequence {seq} (a sequence number reused)", names.join(" and ")));
                None
            }
            None => None,
        }
    };
    let Some(name) = one(&mut report, sequence) else {
        report.problems.push(format!("entry {sequence} is not in the store"));
        report.chain = format!("entry {sequence} of {last}: not found");
        return report;
    };
    let mut entries = vec![check_entry(&store.join(&name), &name, key, &mut report.problems)];
    for record in records {
        let record_name = record.file_name().unwrap_or_default().to_string_lossy().into_owned();
        entries.push(check_entry(record, &record_name, key, &mut report.problems));
    }
    cross_check(&entries, false, &mut report.problems, &mut report.warnings);
    let this = &entries[0];
    let links_before = report.problems.len();
    let previous = this.manifest.as_ref().map(|m| m.previous_manifest_sha256.clone());
    let before = if sequence == 1 {
        if previous.as_deref().is_some_and(|p| p != GENESIS) {
            report.problems.push(format!("{name}: sequence 1 does not start from the genesis"));
        }
        "starts the chain (genesis)".to_owned()
    } else {
        match one(&mut report, sequence - 1) {
            None => {
                report.problems.push(format!("{name}: entry {} before it is missing", sequence - 1));
                format!("entry {} before it is missing", sequence - 1)
            }
            Some(prev) => {
                let sha = read_plain(&store.join(&prev).join("manifest.json"), crate::input::MAX_JSON_BYTES)
                    .map(|bytes| sha256_hex(&bytes));
                match (sha, &previous) {
                    (Ok(sha), Some(previous)) if &sha == previous => format!("links to entry {}", sequence - 1),
                    (Ok(_), Some(_)) => {
                        report.problems.push(format!(
                            "{name}: chain broken: its previous_manifest_sha256 is not the hash of {prev}'s manifest \
                             (entries reordered or replaced)"
                        ));
                        format!("does not link to entry {}", sequence - 1)
                    }
                    (Err(e), _) => {
                        report.problems.push(format!("{prev}: manifest.json unreadable: {e}"));
                        format!("entry {} before it is unreadable", sequence - 1)
                    }
                    (_, None) => {
                        format!("link to entry {} not checked (its own manifest did not verify)", sequence - 1)
                    }
                }
            }
        }
    };
    let after = match one(&mut report, sequence + 1) {
        None if sequence >= last => "the newest entry".to_owned(),
        None => {
            report.problems.push(format!("{name}: entry {} after it is missing", sequence + 1));
            format!("entry {} after it is missing", sequence + 1)
        }
        Some(next) => {
            let dir = store.join(&next);
            let bytes = read_plain(&dir.join("manifest.json"), crate::input::MAX_JSON_BYTES);
            let signature = read_plain(&dir.join("manifest.sig"), 64);
            let linked = bytes
                .as_ref()
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(b).ok())
                .and_then(|m| m.get("previous_manifest_sha256").and_then(Value::as_str).map(str::to_owned));
            let signed = matches!((&bytes, &signature), (Ok(b), Ok(s)) if key.verify(b, s));
            match (signed, linked) {
                (true, Some(link)) if this.manifest_sha256.as_deref() == Some(link.as_str()) => {
                    format!("entry {} links to it", sequence + 1)
                }
                (true, _) => {
                    report.problems.push(format!(
                        "{next}: chain broken: its previous_manifest_sha256 is not the hash of {name}'s manifest \
                         (entries reordered or replaced)"
                    ));
                    format!("entry {} does not link to it", sequence + 1)
                }
                (false, _) => {
                    report.problems.push(format!("{next}: bad signature on the entry after {name}"));
                    format!("entry {} after it is not signed by this key", sequence + 1)
                }
            }
        }
    };
    let verdict = if report.problems.len() == links_before { "verified" } else { "NOT verified" };
    report.chain = format!("entry {sequence} of {last}: {before}, {after}: {verdict}");
    report
}

/// Every head the platform holds must be an entry given, with that manifest hash.
fn check_heads(entries: &[Entry], heads: &[Head], report: &mut Report) {
    let last = entries.iter().map(|e| e.sequence).max().unwrap_or(0);
    for head in heads {
        let at: Vec<&Entry> = entries.iter().filter(|e| e.sequence == head.sequence).collect();
        if at.is_empty() {
            let why = if head.sequence > last {
                "entries removed from the end of the chain"
            } else {
                "the entry was removed"
            };
            report.problems.push(format!("entry {} is missing: the platform holds head {head} ({why})", head.sequence));
        } else if at.iter().any(|e| e.manifest_sha256.as_deref() == Some(head.manifest_sha256.as_str())) {
            report.heads_matched += 1;
        } else {
            report.problems.push(format!(
                "entry {} was replaced: the platform holds head {head}, but {}'s manifest has SHA-256 {}",
                head.sequence,
                at[0].name,
                at[0].manifest_sha256.as_deref().unwrap_or("(unreadable)")
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store of three check-in bundles (the quickest real bundles: no clip to cut) and a hold.
    fn three_bundles(dir: &Path) -> (crate::evidence::store::Store, Vec<(PathBuf, String)>, PublicKey) {
        use crate::evidence::checkin::CheckinRequest;
        use crate::evidence::keys::DeviceKey;
        use crate::evidence::store::Store;
        let key = DeviceKey::init(&dir.join("device.key")).unwrap();
        let public = key.public();
        let evidence = dir.join("evidence");
        let mut store = Store::open(&evidence, key, "hosp", "edge", vec![("m".into(), "ab".repeat(32))]).unwrap();
        let at = std::time::SystemTime::now();
        let time = |t| humantime::format_rfc3339_millis(t).to_string();
        let mut written = Vec::new();
        for _ in 0..3 {
            let request = CheckinRequest {
                event_id: uuid::Uuid::now_v7(),
                kind: "bedside_check_rejected".into(),
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
            };
            let info = store.write_checkin(&request).unwrap();
            written.push((info.dir, request.event_id.to_string()));
        }
        (store, written, public)
    }

    #[test]
    fn one_entry_is_verified_with_its_links_and_the_records_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, bundles, key) = three_bundles(dir.path());
        let evidence = store.dir().to_owned();
        let report = verify_entry(&evidence, 2, &[], &key);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.chain, "entry 2 of 3: links to entry 1, entry 3 links to it: verified");
        let first = verify_entry(&evidence, 1, &[], &key);
        assert_eq!(first.chain, "entry 1 of 3: starts the chain (genesis), entry 2 links to it: verified");
        let last = verify_entry(&evidence, 3, &[], &key);
        assert_eq!(last.chain, "entry 3 of 3: links to entry 2, the newest entry: verified");
        assert!(verify_entry(&evidence, 9, &[], &key).problems[0].contains("entry 9 is not in the store"));

        // The entry before it replaced (its manifest changed): the link is broken, the entry itself is fine.
        let manifest = bundles[0].0.join("manifest.json");
        let original = std::fs::read(&manifest).unwrap();
        std::fs::write(&manifest, [&original[..], b" "].concat()).unwrap();
        let report = verify_entry(&evidence, 2, &[], &key);
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert!(report.problems[0].contains("chain broken"), "{:?}", report.problems);
        assert!(
            report.chain.ends_with("does not link to entry 1, entry 3 links to it: NOT verified"),
            "{}",
            report.chain
        );
        std::fs::write(&manifest, &original).unwrap();

        // Its own photo altered: named.
        std::fs::write(bundles[1].0.join("photo.bin"), b"another picture").unwrap();
        let report = verify_entry(&evidence, 2, &[], &key);
        assert!(report.problems.iter().any(|p| p.contains("photo.bin was modified")), "{:?}", report.problems);
        assert!(report.chain.ends_with(": verified"), "the links still hold: {}", report.chain);

        // A hold record naming entry 1 is checked with it (signature, target); given for another entry, it
        // changes nothing there.
        let hold = store.hold(&bundles[0].1, "court case 42").unwrap().unwrap();
        assert!(verify_entry(&evidence, 1, &[hold.dir.clone()], &key).problems.is_empty());
        let wrong = verify_entry(&evidence, 3, &[hold.dir], &key);
        assert!(
            wrong.problems.is_empty(),
            "a record naming another bundle is not held against this one: {:?}",
            wrong.problems
        );
    }

    #[test]
    fn entry_names_are_strict() {
        let id = "0190f3a2-6c1e-7b7a-9f1e-2f0c5a7d9e11";
        assert_eq!(parse_entry_name(&format!("0000000003-{id}")), Some((3, id)));
        for bad in [
            format!("+000000003-{id}"),
            format!("000000003-{id}"),
            format!("00000000003-{id}"),
            format!("0000000000-{id}"),
            format!("0000000003-{}", id.to_uppercase()),
            format!("0000000003_{id}"),
            format!("0000000003-{id}x"),
            "0000000003-".into(),
            "ünïcödé-ünïcödé".into(),
        ] {
            assert_eq!(parse_entry_name(&bad), None, "{bad}");
        }
    }

    #[test]
    fn formats() {
        assert!(is_time("2026-11-24T10:00:04.000Z"));
        for bad in ["yesterday", "2026-11-24T10:00:04Z", "2026-13-24T10:00:04.000Z", "2026-11-24 10:00:04.000Z"] {
            assert!(!is_time(bad), "{bad}");
        }
        assert!(is_decimal("0.870") && is_decimal("2") && is_decimal("-1.5"));
        assert!(!is_decimal("") && !is_decimal(".5") && !is_decimal("1.") && !is_decimal("1e3") && !is_decimal("x"));
        assert!(is_safe_file_name("clip.mp4") && is_safe_file_name(&"a".repeat(64)));
        for bad in ["", ".hidden", "../x", "a/b", "-x", "a b", &"a".repeat(65)] {
            assert!(!is_safe_file_name(bad), "{bad}");
        }
    }

    #[test]
    fn heads_parse_from_arguments_and_files() {
        let sha = "ab".repeat(32);
        assert_eq!(Head::parse(&format!("12:{sha}")), Ok(Head { sequence: 12, manifest_sha256: sha.clone() }));
        assert_eq!(Head::parse(&format!("12:{}", sha.to_uppercase())).unwrap().manifest_sha256, sha);
        for bad in [format!("0:{sha}"), format!("x:{sha}"), "12:abc".into(), sha.clone(), format!("+1:{sha}")] {
            assert!(Head::parse(&bad).is_err(), "{bad}");
        }
        let file = format!("# received heads\n\n3:{sha}\n  4:{sha} 1 extra tokens\n");
        assert_eq!(Head::parse_file(&file).unwrap().iter().map(|h| h.sequence).collect::<Vec<_>>(), [3, 4]);
        let err = Head::parse_file("1:00\n").unwrap_err();
        assert!(err.starts_with("line 1: \"1:00\" is not a head"), "{err}");
    }

    #[test]
    fn field_types_are_named() {
        let manifest = serde_json::json!({
            "schema": SCHEMA_V1, "sequence": 1, "previous_manifest_sha256": GENESIS,
            "device": {"site": "s", "device": "d", "public_key": "k"},
            "event": {"id": "0190f3a2-6c1e-7b7a-9f1e-2f0c5a7d9e11", "kind": "k", "camera": "c", "at": "yesterday",
                      "details": {"a": 1}},
            "clip": {"requested_from": "2026-11-24T10:00:04.000Z", "requested_to": "2026-11-24T10:00:04.000Z",
                     "start": "2026-11-24T10:00:04.000Z", "end": "2026-11-24T10:00:04.000Z", "frames": "12"},
            "snapshot": {"at": "2026-11-24T10:00:04.000Z", "width": 1, "height": 1},
            "detections": [{"label": "p", "box": [1, 2, 3], "score": "0.5"}],
            "models": [],
            "files": {"clip.mp4": {"sha256": "ab".repeat(32), "bytes": 1}, "snapshot.jpg": {"sha256": "x", "bytes": 1}},
            "created": "2026-11-24T10:00:04.000Z",
        });
        let mut problems = Vec::new();
        parse_manifest(&canonical::to_bytes(&manifest).unwrap(), &mut problems).unwrap();
        assert_eq!(
            problems,
            [
                "field event.at is \"yesterday\", not a time (YYYY-MM-DDTHH:MM:SS.mmmZ, UTC)",
                "field event.details.a is 1, not a string",
                "field clip.frames is \"12\", not an integer ≥ 0",
                "field detections[0].box is [1,2,3], not a list of 4 integers",
                "field files.snapshot.jpg is {\"bytes\":1,\"sha256\":\"x\"}, not {\"bytes\": integer, \"sha256\": 64 hex digits}",
            ]
        );
    }
}
