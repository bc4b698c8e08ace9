//! Issue 14's attacks on an evidence store, each run through both verifiers: `vigil verify` (the binary)
//! and tests/third_party_verify.py (Python `cryptography`, written from docs/evidence.md alone). The store
//! is written by the real `Store` (v1 bundles from a real recording); v2 records (ack, hold, release,
//! prune, epoch) are built here, signed with the device key as docs/evidence.md specifies; then each
//! attack is forged on disk.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use image::RgbImage;
use serde_json::{Value, json};
use vigil::evidence::canonical;
use vigil::evidence::keys::DeviceKey;
use vigil::evidence::store::{Detection, EvidenceRequest, Store};
use vigil::hashing::sha256_hex;

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_514_400)
}

/// A store of four bundles written once by the real `Store` (root: keys/, evidence/, pub.pem); each test
/// works on its own copy.
fn base() -> &'static Path {
    static BASE: OnceLock<tempfile::TempDir> = OnceLock::new();
    BASE.get_or_init(|| {
        let root = tempfile::tempdir().unwrap();
        let recordings = root.path().join("recordings/ward-1");
        std::fs::create_dir_all(&recordings).unwrap();
        let segment = vigil::source::pipeline::segment_path(&recordings, t0());
        common::media::encode_clip(&segment, 320, 180, 10, 200, 20, |i| {
            let mut img = RgbImage::from_pixel(320, 180, image::Rgb([90, 110, 130]));
            common::media::add_noise(&mut img, 8, i as u64);
            img
        });
        let key = DeviceKey::init(&root.path().join("keys/device.pem")).unwrap();
        std::fs::write(root.path().join("pub.pem"), key.public().to_pem()).unwrap();
        let models = vec![("centerface".to_owned(), "ab".repeat(32))];
        let mut store = Store::open(&root.path().join("evidence"), key, "hosp-1", "edge-1", models).unwrap();
        for second in [4, 8, 12, 16] {
            let at = t0() + Duration::from_secs(second);
            store
                .write(&EvidenceRequest {
                    event_id: uuid::Uuid::now_v7(),
                    kind: "camera_tamper".into(),
                    camera: "ward-1".into(),
                    camera_info: vigil::evidence::manifest::CameraIdentity::new(
                        "ward-1",
                        "ward",
                        None,
                        "rtsp://10.0.0.7/stream1",
                    ),
                    onset: Some(at - Duration::from_secs(1)),
                    thresholds: BTreeMap::from([("covered_secs".to_owned(), "1".to_owned())]),
                    at,
                    details: BTreeMap::from([("tamper".to_owned(), "covered".to_owned())]),
                    snapshot: RgbImage::from_pixel(320, 180, image::Rgb([20, 20, 20])),
                    snapshot_at: at,
                    detections: vec![Detection { label: "person".into(), bbox: [10.0, 5.0, 30.0, 34.0], score: 0.87 }],
                    recordings: recordings.clone(),
                    clip_from: at - Duration::from_secs(2),
                    clip_to: at + Duration::from_secs(2),
                })
                .unwrap();
        }
        root
    })
    .path()
}

/// A copy of the base store to attack.
struct Case {
    _root: tempfile::TempDir,
    root: PathBuf,
    key: DeviceKey,
}

impl Case {
    fn new() -> Case {
        let tmp = tempfile::tempdir().unwrap();
        let status = Command::new("cp").arg("-a").arg(base().join(".")).arg(tmp.path()).status().unwrap();
        assert!(status.success());
        let key = DeviceKey::load(&tmp.path().join("keys/device.pem")).unwrap();
        Case { root: tmp.path().to_owned(), _root: tmp, key }
    }

    fn store(&self) -> PathBuf {
        self.root.join("evidence")
    }

    /// Entry directories, by name (= by sequence).
    fn entries(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.store())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect();
        dirs.sort();
        dirs
    }

    fn bundle(&self, sequence: usize) -> PathBuf {
        self.entries()[sequence - 1].clone()
    }

    fn manifest(&self, entry: &Path) -> Value {
        serde_json::from_slice(&std::fs::read(entry.join("manifest.json")).unwrap()).unwrap()
    }

    /// `{sequence, event_id, manifest_sha256}` of bundle `sequence`.
    fn target(&self, sequence: usize) -> Value {
        let dir = self.bundle(sequence);
        let m = self.manifest(&dir);
        json!({"sequence": m["sequence"], "event_id": m["event"]["id"],
               "manifest_sha256": sha256_hex(&std::fs::read(dir.join("manifest.json")).unwrap())})
    }

    /// `SEQ:SHA256` of an entry.
    fn head(&self, entry: &Path) -> String {
        let m = self.manifest(entry);
        format!("{}:{}", m["sequence"], sha256_hex(&std::fs::read(entry.join("manifest.json")).unwrap()))
    }

    /// Rewrites an entry's manifest with `edit` and signs it with the device key (what a compromised or
    /// buggy writer could sign).
    fn resign(&self, entry: &Path, edit: impl FnOnce(&mut Value)) {
        let mut m = self.manifest(entry);
        edit(&mut m);
        let bytes = canonical::to_bytes(&m).unwrap();
        std::fs::write(entry.join("manifest.json"), &bytes).unwrap();
        std::fs::write(entry.join("manifest.sig"), self.key.sign(&bytes)).unwrap();
    }

    /// Appends a signed v2 record after the last entry (docs/evidence.md, "Records").
    fn append(&self, kind: &str, record: Value) -> PathBuf {
        let last = self.entries().last().cloned();
        let (sequence, previous, epoch, created) = match &last {
            Some(dir) => {
                let m = self.manifest(dir);
                let created = m["created"].as_str().unwrap().to_owned();
                (
                    m["sequence"].as_u64().unwrap() + 1,
                    sha256_hex(&std::fs::read(dir.join("manifest.json")).unwrap()),
                    m["epoch"].as_u64().unwrap_or(1),
                    created,
                )
            }
            None => (1, GENESIS.to_owned(), 1, String::new()),
        };
        let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        self.write_record(kind, record, sequence, &previous, epoch, now.max(created))
    }

    fn write_record(
        &self,
        kind: &str,
        mut record: Value,
        sequence: u64,
        previous: &str,
        epoch: u64,
        created: String,
    ) -> PathBuf {
        let id = uuid::Uuid::now_v7().to_string();
        record["id"] = json!(id);
        let manifest = json!({
            "schema": "vigil.evidence.v2",
            "type": kind,
            "sequence": sequence,
            "previous_manifest_sha256": previous,
            "epoch": epoch,
            "device": {"site": "hosp-1", "device": "edge-1", "public_key": self.key.public().to_base64()},
            "created": created,
            "clock": {"synchronized": true, "source": "adjtimex", "max_error_us": 16000, "est_error_us": 400},
            "record": record,
        });
        let dir = self.store().join(format!("{sequence:010}-{id}"));
        std::fs::create_dir(&dir).unwrap();
        let bytes = canonical::to_bytes(&manifest).unwrap();
        std::fs::write(dir.join("manifest.json"), &bytes).unwrap();
        std::fs::write(dir.join("manifest.sig"), self.key.sign(&bytes)).unwrap();
        dir
    }

    fn ack(&self, sequence: usize) {
        self.append("ack", json!({"target": self.target(sequence), "acknowledged_at": now()}));
    }

    fn prune(&self, sequence: usize, removed: &[&str]) {
        let mut target = self.target(sequence);
        target["removed"] = json!(removed);
        self.append("prune", json!({"targets": [target], "policy": {"evidence_days": 0}}));
    }

    fn remove(&self, sequence: usize, files: &[&str]) {
        for f in files {
            std::fs::remove_file(self.bundle(sequence).join(f)).unwrap();
        }
    }

    /// Both verifiers on the store (plus `extra` arguments): (vigil's exit code and stdout, Python's).
    fn verify(&self, extra: &[&str]) -> Verdict {
        self.verify_paths(&[self.store()], extra)
    }

    fn verify_paths(&self, paths: &[PathBuf], extra: &[&str]) -> Verdict {
        let pem = self.root.join("pub.pem");
        let vigil = common::vigil().args(["verify", "--key"]).arg(&pem).args(extra).args(paths).output().unwrap();
        let python = Command::new(common::python())
            .arg(common::repo("tests/third_party_verify.py"))
            .arg(&pem)
            .args(paths)
            .args(extra)
            .output()
            .unwrap();
        let text = |o: &std::process::Output| {
            format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
        };
        Verdict { vigil: (vigil.status.code(), text(&vigil)), python: (python.status.code(), text(&python)) }
    }
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

#[derive(Debug)]
struct Verdict {
    vigil: (Option<i32>, String),
    python: (Option<i32>, String),
}

impl Verdict {
    /// Both verifiers fail, `vigil verify` naming `vigil_says` and Python `python_says`.
    fn fails(&self, vigil_says: &str, python_says: &str) {
        assert_eq!(self.vigil.0, Some(1), "vigil verify should fail:\n{}", self.vigil.1);
        assert!(self.vigil.1.contains(vigil_says), "vigil verify should say {vigil_says:?}:\n{}", self.vigil.1);
        assert_eq!(self.python.0, Some(1), "the Python verifier should fail:\n{}", self.python.1);
        assert!(self.python.1.contains(python_says), "Python should say {python_says:?}:\n{}", self.python.1);
    }

    fn passes(&self) {
        assert_eq!(self.vigil.0, Some(0), "vigil verify should pass:\n{}", self.vigil.1);
        assert_eq!(self.python.0, Some(0), "the Python verifier should pass:\n{}", self.python.1);
    }
}

#[test]
fn untouched_store_passes_both_and_says_what_was_verified() {
    let case = Case::new();
    let verdict = case.verify(&[]);
    verdict.passes();
    assert!(
        verdict.vigil.1.contains("OK: verified files, signatures and chain of 4 entries from sequence 1 to 4"),
        "{}",
        verdict.vigil.1
    );
    assert!(verdict.python.1.contains("4 bundles, 0 problems"), "{}", verdict.python.1);
    // One entry alone: its files and signature, and the report says the chain was not checked.
    let verdict = case.verify_paths(&[case.bundle(2)], &[]);
    verdict.passes();
    assert!(verdict.vigil.1.contains("chain not checked"), "{}", verdict.vigil.1);
    assert!(verdict.python.1.contains("chain not checked"), "{}", verdict.python.1);
}

#[test]
fn empty_directory_fails() {
    let case = Case::new();
    let empty = case.root.join("empty");
    std::fs::create_dir(&empty).unwrap();
    case.verify_paths(&[empty], &[]).fails("no evidence entries here", "no evidence entries");
}

#[test]
fn forged_prune_media_deleted_and_pruned_marker_touched() {
    let case = Case::new();
    case.remove(2, &["clip.mp4", "snapshot.jpg"]);
    std::fs::write(case.bundle(2).join("PRUNED"), "2026-11-24T10:00:00.000Z\n").unwrap();
    case.verify(&[]).fails("clip.mp4 is missing (no prune record names it)", "clip.mp4 is missing");
    case.verify(&[]).fails("PRUNED is an unsigned v1 marker", "unexpected files ['PRUNED']");
}

#[test]
fn forged_prune_with_hold_and_acked_markers() {
    let case = Case::new();
    case.remove(3, &["clip.mp4", "snapshot.jpg"]);
    for marker in ["PRUNED", "ACKED", "HOLD"] {
        std::fs::write(case.bundle(3).join(marker), "2026-11-24T10:00:00.000Z\n").unwrap();
    }
    case.verify(&[]).fails("snapshot.jpg is missing (no prune record names it)", "snapshot.jpg is missing");
}

#[test]
fn forged_prune_one_file_removed() {
    let case = Case::new();
    case.ack(1);
    case.prune(1, &["clip.mp4"]);
    case.remove(1, &["clip.mp4", "snapshot.jpg"]);
    // The prune record names the clip; the snapshot went without one.
    case.verify(&[]).fails("snapshot.jpg is missing (no prune record names it)", "snapshot.jpg is missing");
}

#[test]
fn signed_prune_of_an_acknowledged_bundle_verifies() {
    let case = Case::new();
    case.ack(1);
    case.prune(1, &["clip.mp4", "snapshot.jpg"]);
    case.remove(1, &["clip.mp4", "snapshot.jpg"]);
    let verdict = case.verify(&[]);
    verdict.passes();
    assert!(
        verdict.vigil.1.contains("chain of 6 entries from sequence 1 to 6 (4 bundle(s), 2 record(s))"),
        "{}",
        verdict.vigil.1
    );
}

#[test]
fn signed_prune_of_a_bundle_under_hold_fails() {
    let case = Case::new();
    case.ack(2);
    case.append("hold", json!({"target": case.target(2), "reason": "court case 42"}));
    case.prune(2, &["clip.mp4", "snapshot.jpg"]);
    case.remove(2, &["clip.mp4", "snapshot.jpg"]);
    case.verify(&[]).fails("while it is under legal hold (hold at sequence 6", "under legal hold");
    // After a release, the same prune is allowed.
    let case = Case::new();
    case.ack(2);
    case.append("hold", json!({"target": case.target(2), "reason": "court case 42"}));
    case.append("release", json!({"target": case.target(2), "reason": ""}));
    case.prune(2, &["clip.mp4", "snapshot.jpg"]);
    case.remove(2, &["clip.mp4", "snapshot.jpg"]);
    case.verify(&[]).passes();
}

#[test]
fn signed_prune_of_a_bundle_never_acknowledged_fails() {
    let case = Case::new();
    case.prune(2, &["clip.mp4", "snapshot.jpg"]);
    case.remove(2, &["clip.mp4", "snapshot.jpg"]);
    case.verify(&[]).fails("prunes bundle 2, which was never acknowledged", "never acknowledged");
}

#[test]
fn removed_first_entry_fails() {
    let case = Case::new();
    std::fs::remove_dir_all(case.bundle(1)).unwrap();
    case.verify(&[]).fails(
        "the chain starts at sequence 2, which is neither sequence 1 nor an epoch checkpoint",
        "chain starts at sequence 2",
    );
}

#[test]
fn removed_tail_is_caught_by_the_platforms_head() {
    let case = Case::new();
    let tail = case.bundle(4);
    let head = case.head(&tail);
    std::fs::remove_dir_all(&tail).unwrap();
    // Without the platform's head, a removed tail cannot show: the report says so.
    let verdict = case.verify(&[]);
    verdict.passes();
    assert!(verdict.vigil.1.contains("no head from the platform given"), "{}", verdict.vigil.1);
    let missing =
        format!("entry 4 is missing: the platform holds head {head} (entries removed from the end of the chain)");
    case.verify(&["--expect-head", &head]).fails(&missing, &missing);
    // From a file of received heads (comments, blank lines, further tokens ignored).
    let heads = case.root.join("heads.txt");
    std::fs::write(&heads, format!("# received\n\n{} 1\n{head}\n", case.head(&case.bundle(3)))).unwrap();
    case.verify(&["--heads", heads.to_str().unwrap()]).fails(&missing, &missing);
}

#[test]
fn reused_sequence_is_caught() {
    let case = Case::new();
    let tail = case.bundle(4);
    let head = case.head(&tail);
    let aside = case.root.join("aside");
    std::fs::rename(&tail, &aside).unwrap();
    // The writer continues from what it finds: a different manifest gets sequence 4 again.
    let models = vec![("centerface".to_owned(), "ab".repeat(32))];
    let key = DeviceKey::load(&case.root.join("keys/device.pem")).unwrap();
    let mut store = Store::open(&case.store(), key, "hosp-1", "edge-1", models).unwrap();
    let at = t0() + Duration::from_secs(14);
    let again = store
        .write(&EvidenceRequest {
            event_id: uuid::Uuid::now_v7(),
            kind: "camera_tamper".into(),
            camera: "ward-1".into(),
            camera_info: vigil::evidence::manifest::CameraIdentity::new(
                "ward-1",
                "ward",
                None,
                "rtsp://10.0.0.7/stream1",
            ),
            onset: None,
            thresholds: BTreeMap::new(),
            at,
            details: BTreeMap::new(),
            snapshot: RgbImage::from_pixel(320, 180, image::Rgb([20, 20, 20])),
            snapshot_at: at,
            detections: vec![],
            recordings: case.root.join("recordings/ward-1"),
            clip_from: at - Duration::from_secs(2),
            clip_to: at + Duration::from_secs(2),
        })
        .unwrap();
    assert_eq!(again.sequence, 4);
    let replaced = "entry 4 was replaced: the platform holds head";
    case.verify(&["--expect-head", &head]).fails(replaced, replaced);
    // Both manifests in one store: two entries claim sequence 4.
    std::fs::rename(&aside, &tail).unwrap();
    case.verify(&[]).fails("both claim sequence 4", "both claim sequence 4");
}

#[test]
fn path_traversal_in_files_is_refused() {
    let case = Case::new();
    std::fs::write(case.store().join("outside.txt"), b"x").unwrap();
    let entry = case.bundle(2);
    case.resign(&entry, |m| {
        m["files"]["../outside.txt"] = json!({"sha256": sha256_hex(b"x"), "bytes": 1});
    });
    std::fs::remove_file(case.store().join("outside.txt")).unwrap();
    case.verify(&[]).fails(
        "manifest lists \"../outside.txt\", which is not a file name inside the bundle",
        "not an allowed file name",
    );
}

#[test]
fn symlinks_are_never_followed() {
    // A listed file that is a link to the real file elsewhere.
    let case = Case::new();
    let entry = case.bundle(2);
    std::fs::rename(entry.join("clip.mp4"), case.root.join("clip.mp4")).unwrap();
    std::os::unix::fs::symlink(case.root.join("clip.mp4"), entry.join("clip.mp4")).unwrap();
    case.verify(&[]).fails("clip.mp4 is a symbolic link (verify never follows links)", "clip.mp4 is a symbolic link");
    // An entry directory that is a link to a copy elsewhere.
    let case = Case::new();
    let entry = case.bundle(3);
    let elsewhere = case.root.join("elsewhere");
    std::fs::rename(&entry, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &entry).unwrap();
    case.verify(&[]).fails("is a symbolic link (verify never follows links)", "is a symbolic link");
}

#[test]
fn bad_key_field_is_named() {
    let case = Case::new();
    let other = DeviceKey::init(&case.root.join("other.pem")).unwrap().public().to_base64();
    case.resign(&case.bundle(2), |m| m["device"]["public_key"] = json!(other));
    case.verify(&[]).fails("device.public_key in the manifest", "device.public_key");
}

#[test]
fn event_at_yesterday_fails() {
    let case = Case::new();
    case.resign(&case.bundle(2), |m| m["event"]["at"] = json!("yesterday"));
    case.verify(&[]).fails("field event.at is \"yesterday\", not a time", "event.at");
}

#[test]
fn plus_sign_directory_name_is_refused() {
    let case = Case::new();
    let entry = case.bundle(3);
    let name = entry.file_name().unwrap().to_str().unwrap().to_owned();
    let forged = format!("+{}", &name[1..]);
    std::fs::rename(&entry, case.store().join(&forged)).unwrap();
    case.verify(&[]).fails(&format!("{forged}: not an evidence entry"), "not an evidence entry");
}

#[test]
fn bad_signature_is_reported_as_such_not_as_missing() {
    let case = Case::new();
    let entry = case.bundle(2);
    let mut bytes = std::fs::read(entry.join("manifest.json")).unwrap();
    let at = bytes.windows(6).position(|w| w == b"ward-1").unwrap();
    bytes[at] = b'W';
    std::fs::write(entry.join("manifest.json"), bytes).unwrap();
    let verdict = case.verify(&[]);
    verdict.fails("bad signature", "bad signature");
    for out in [&verdict.vigil.1, &verdict.python.1] {
        assert!(!out.contains("missing"), "a bad signature is not a missing entry:\n{out}");
    }
}

#[test]
fn temp_directory_is_a_warning_not_a_failure() {
    let case = Case::new();
    std::fs::create_dir(case.store().join(".tmp-0190f3a2-6c1e-7b7a-9f1e-2f0c5a7d9e11")).unwrap();
    let verdict = case.verify(&[]);
    verdict.passes();
    assert!(verdict.vigil.1.contains("WARN .tmp-0190f3a2-6c1e-7b7a-9f1e-2f0c5a7d9e11: ignored"), "{}", verdict.vigil.1);
    assert!(verdict.python.1.contains("warning: .tmp-0190f3a2"), "{}", verdict.python.1);
}

#[test]
fn wiped_store_starts_at_a_signed_epoch_checkpoint() {
    let case = Case::new();
    let tail = case.bundle(4);
    let (head_seq, head_sha) = {
        let h = case.head(&tail);
        let (s, sha) = h.split_once(':').unwrap();
        (s.parse::<u64>().unwrap(), sha.to_owned())
    };
    // Wiped: a new epoch continues the sequence from the recorded head.
    for entry in case.entries() {
        std::fs::remove_dir_all(entry).unwrap();
    }
    case.write_record(
        "epoch",
        json!({"epoch": 2, "reason": "evidence directory empty at start", "previous_head": {"sequence": head_seq, "manifest_sha256": head_sha}}),
        head_seq + 1,
        &head_sha,
        2,
        now(),
    );
    let verdict = case.verify(&[]);
    verdict.passes();
    assert!(verdict.vigil.1.contains("chain starts at a checkpoint (epoch 2 at sequence 5)"), "{}", verdict.vigil.1);
    assert!(verdict.python.1.contains("chain starts at a checkpoint (epoch 2 at sequence 5)"), "{}", verdict.python.1);
    // A record that follows in the same epoch verifies; one that claims another epoch does not.
    case.append("hold", json!({"target": {"sequence": 4, "event_id": "0190f3a2-6c1e-7b7a-9f1e-2f0c5a7d9e11", "manifest_sha256": head_sha}, "reason": "x"}))
        ;
    case.verify(&[]).fails("names entry 4, which is before the first entry given", "not in the chain");
}

#[test]
fn store_starting_at_a_bundle_that_is_not_sequence_1_fails() {
    let case = Case::new();
    std::fs::remove_dir_all(case.bundle(1)).unwrap();
    std::fs::remove_dir_all(case.bundle(1)).unwrap();
    case.verify(&[]).fails("the chain starts at sequence 3", "chain starts at sequence 3");
}

#[test]
fn clock_going_back_between_v2_entries_fails() {
    let case = Case::new();
    case.ack(1);
    let last = case.entries().last().cloned().unwrap();
    case.write_record(
        "ack",
        json!({"target": case.target(2), "acknowledged_at": now()}),
        6,
        &sha256_hex(&std::fs::read(last.join("manifest.json")).unwrap()),
        1,
        "2025-10-24T10:00:00.000Z".to_owned(),
    );
    case.verify(&[]).fails("the clock went back", "clock went back");
}

/// A v2 bundle (the last of the chain made v2: type, epoch, clock, agent, camera, decision, frame.jpg)
/// verifies with both; its v2 fields are checked for their types.
#[test]
fn v2_bundle_fields_are_checked() {
    let make_v2 = |case: &Case, edit: &dyn Fn(&mut Value)| {
        let entry = case.bundle(4);
        std::fs::copy(entry.join("snapshot.jpg"), entry.join("frame.jpg")).unwrap();
        let frame = std::fs::read(entry.join("frame.jpg")).unwrap();
        case.resign(&entry, |m| {
            m["schema"] = json!("vigil.evidence.v2");
            m["type"] = json!("bundle");
            m["epoch"] = json!(1);
            m["clock"] =
                json!({"synchronized": true, "source": "adjtimex", "max_error_us": 16000, "est_error_us": 400});
            m["agent"] = json!({"name": "vigil", "version": "0.1.0"});
            m["camera"] = json!({"id": "ward-1", "role": "dialysis_room", "url_redacted": "rtsp://cam/stream"});
            m["decision"] = json!({"thresholds": {"covered_secs": "2", "match_distance": "0.600"}});
            m["files"]["frame.jpg"] = json!({"sha256": sha256_hex(&frame), "bytes": frame.len()});
            edit(m);
        });
    };
    let case = Case::new();
    make_v2(&case, &|_| {});
    case.verify(&[]).passes();
    let case = Case::new();
    make_v2(&case, &|m| m["decision"]["thresholds"]["covered_secs"] = json!(2));
    case.verify(&[])
        .fails("field decision.thresholds.covered_secs is 2, not a decimal string", "decision.thresholds.covered_secs");
    let case = Case::new();
    make_v2(&case, &|m| m["clock"]["synchronized"] = json!("yes"));
    case.verify(&[]).fails("field clock.synchronized is \"yes\", not true or false", "clock.synchronized");
    let case = Case::new();
    make_v2(&case, &|m| {
        m["files"].as_object_mut().unwrap().remove("frame.jpg");
    });
    case.verify(&[]).fails("files does not list frame.jpg", "files does not list frame.jpg");
}
