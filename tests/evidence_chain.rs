//! The evidence chain's completeness (docs/evidence.md, "Chain entries", "Head, epochs"): state changes
//! are signed records, the head is kept outside the store and on MQTT, a store that lost its end is
//! refused, a wiped one starts an announced epoch, and nothing is signed with a clock behind the chain.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::agent::{Agent, Platform};
use common::mqtt::{Mosquitto, Subscriber};
use image::RgbImage;
use serde_json::Value;
use vigil::evidence::head::{self, Head};
use vigil::evidence::keys::DeviceKey;
use vigil::evidence::store::{self, Detection, EvidenceRequest, OpenOptions, Store};

/// 2026-11-24T10:00:00Z: the recording's first frame.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_514_400)
}

/// A 20 s recording of camera `ward-1` under `root`.
fn recording(root: &Path) -> PathBuf {
    let dir = root.join("recordings/ward-1");
    std::fs::create_dir_all(&dir).unwrap();
    let segment = vigil::source::pipeline::segment_path(&dir, t0());
    common::media::encode_clip(&segment, 320, 180, 10, 200, 20, |i| {
        let mut img = RgbImage::from_pixel(320, 180, image::Rgb([90, 110, 130]));
        common::media::add_noise(&mut img, 8, i as u64);
        img
    });
    dir
}

fn request(recordings: &Path, second: u64) -> EvidenceRequest {
    let at = t0() + Duration::from_secs(second);
    EvidenceRequest {
        event_id: uuid::Uuid::now_v7(),
        kind: "camera_tamper".into(),
        camera: "ward-1".into(),
        camera_info: vigil::evidence::manifest::CameraIdentity::new("ward-1", "ward", None, "rtsp://10.0.0.7/stream1"),
        at,
        onset: Some(at - Duration::from_secs(1)),
        thresholds: BTreeMap::from([("covered_secs".to_owned(), "2".to_owned())]),
        details: BTreeMap::from([("tamper".to_owned(), "covered".to_owned())]),
        snapshot: RgbImage::from_pixel(320, 180, image::Rgb([20, 20, 20])),
        snapshot_at: at,
        detections: vec![Detection { label: "person".into(), bbox: [10.0, 5.0, 30.0, 34.0], score: 0.87 }],
        recordings: recordings.to_owned(),
        clip_from: at - Duration::from_secs(2),
        clip_to: at + Duration::from_secs(2),
    }
}

/// A box's state directory: `<root>/state` with its device key (`vigil keys init`), and the store the
/// agent opens there (evidence dir, recorded head).
struct Edge {
    root: PathBuf,
    config: PathBuf,
}

impl Edge {
    fn new(root: &Path, extra: &str) -> Edge {
        let config = root.join("vigil.toml");
        std::fs::write(
            &config,
            format!("[site]\nid = \"hosp\"\ndevice_id = \"edge\"\n[storage]\ndata_dir = \"state\"\n{extra}"),
        )
        .unwrap();
        let keys = common::vigil().args(["keys", "init", "--config"]).arg(&config).output().unwrap();
        assert!(keys.status.success(), "{}", String::from_utf8_lossy(&keys.stderr));
        Edge { root: root.to_owned(), config }
    }

    fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    fn evidence(&self) -> PathBuf {
        self.state().join("evidence")
    }

    fn head_file(&self) -> PathBuf {
        self.state().join("evidence-head")
    }

    fn open(&self) -> Store {
        let key = DeviceKey::load(&self.state().join("keys/device-ed25519.pem")).unwrap();
        let options = OpenOptions { head_file: Some(self.head_file()), evidence_days: 30, ..Default::default() };
        Store::open_with(&self.evidence(), key, "hosp", "edge", Vec::new(), &options).unwrap()
    }

    fn manifest(&self, dir: &Path) -> Value {
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
    }

    fn entries(&self) -> Vec<(u64, PathBuf)> {
        store::bundles(&self.evidence()).unwrap()
    }

    fn types(&self) -> Vec<String> {
        self.entries().iter().map(|(_, d)| self.manifest(d)["type"].as_str().unwrap_or("").to_owned()).collect()
    }
}

fn event_id(dir: &Path) -> String {
    dir.file_name().unwrap().to_str().unwrap()[11..].to_owned()
}

/// The camera config of a tamper: `test://black` is covered from the start.
const BLACK_CAMERA: &str = "[tamper]\ncovered_secs = 2\n[evidence]\npre_roll_secs = 1\npost_roll_secs = 1\n\
                            [[cameras]]\nid = \"ward\"\nrole = \"dialysis_room\"\nurl = \"test://black\"\n";

/// The agent, started on a store whose last entry was removed, refuses to start and names both heads
/// (the store's and the one it recorded outside it); before, it continued the chain and reused the
/// removed entry's sequence.
#[test]
fn removed_tail_refuses_start_naming_both_heads() {
    let root = tempfile::tempdir().unwrap();
    let b = Edge::new(root.path(), BLACK_CAMERA);
    let recordings = recording(root.path());
    let (first, second) = {
        let mut store = b.open();
        (store.write(&request(&recordings, 4)).unwrap(), store.write(&request(&recordings, 8)).unwrap())
    };
    assert_eq!(head::read(&b.head_file()).unwrap(), Some(second.head()));
    std::fs::remove_dir_all(&second.dir).unwrap();

    let out = common::vigil().arg("run").arg("--config").arg(&b.config).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the agent started on a store that went backwards:\n{log}");
    let expected = format!(
        "evidence store went backwards: {} ends at {} but this agent last wrote {} (recorded in {}); entries \
         were removed from its end.",
        b.evidence().display(),
        first.head().id(),
        second.head().id(),
        b.head_file().display()
    );
    assert!(log.contains(&expected), "expected {expected:?} in:\n{log}");
    assert_eq!(b.entries().len(), 1, "nothing written");
}

/// A wiped store: the agent starts epoch 2 with a signed `epoch` record at sequence 3 (never 1 again),
/// chained to the last head, announces it as `evidence_epoch` and publishes the new head retained.
#[test]
fn wiped_store_starts_announced_epoch_without_reusing_sequence() {
    let root = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(root.path());
    let platform = Platform::new(root.path());
    let mqtt = common::agent::config_head(broker.port, &platform);
    let extra = mqtt.split_once("data_dir = \"state\"\n").unwrap().1;
    let b = Edge::new(
        root.path(),
        &format!("{extra}[[cameras]]\nid = \"ward\"\nrole = \"dialysis_room\"\nurl = \"test://black\"\n"),
    );
    let recordings = recording(root.path());
    let last = {
        let mut store = b.open();
        store.write(&request(&recordings, 4)).unwrap();
        store.write(&request(&recordings, 8)).unwrap().head()
    };
    std::fs::remove_dir_all(b.evidence()).unwrap();

    let subscriber = Subscriber::start(broker.port, "vigil/v1/hosp/edge/#");
    let agent = Agent::start(&b.config, root.path().join("agent.log"));
    let announced = subscriber.wait_for(Duration::from_secs(60), |m| {
        common::agent::kinds(m).contains(&"evidence_epoch".to_owned())
            && m.iter().any(|(t, p, _)| {
                t.ends_with("/evidence/head") && serde_json::from_slice::<Value>(p).is_ok_and(|h| h["sequence"] == 3)
            })
    });
    let log = agent.stop();
    assert!(announced, "no evidence_epoch event and head 3 on MQTT:\n{log}");
    let epoch = subscriber.payloads("/events/evidence_epoch").pop().unwrap();
    let entries = b.entries();
    assert_eq!(entries[0].0, 3, "the sequence after the last head, never 1 again: {entries:?}");
    let manifest = b.manifest(&entries[0].1);
    let sha = vigil::hashing::sha256_hex(&std::fs::read(entries[0].1.join("manifest.json")).unwrap());
    assert_eq!(manifest["type"], "epoch");
    assert_eq!(manifest["epoch"], 2);
    assert_eq!(manifest["previous_manifest_sha256"], last.manifest_sha256.as_str());
    assert_eq!(manifest["record"]["previous_head"]["sequence"], 2);
    assert_eq!(epoch["details"]["epoch"], 2);
    assert_eq!(epoch["details"]["chain_head"], serde_json::json!({"sequence": 3, "manifest_sha256": sha, "epoch": 2}));
    assert_eq!(
        epoch["details"]["previous_head"],
        serde_json::json!({"sequence": 2, "manifest_sha256": last.manifest_sha256, "epoch": 1})
    );
    let recorded = head::read(&b.head_file()).unwrap().unwrap();
    assert_eq!((recorded.sequence, recorded.epoch), (entries.last().unwrap().0, 2));
    if entries.len() == 1 {
        assert_eq!(recorded, Head { sequence: 3, manifest_sha256: sha, epoch: 2 });
    }
    assert!(log.contains("EVIDENCE STORE WIPED"), "{log}");
}

/// The last entry was signed "tomorrow" (a clock since set back): the agent decides a tamper but does not
/// sign its bundle, says why at ERROR naming both times, and keeps the request for a retry.
#[test]
fn clock_behind_last_entry_is_not_signed_and_request_kept() {
    let root = tempfile::tempdir().unwrap();
    let b = Edge::new(root.path(), BLACK_CAMERA);
    let recordings = recording(root.path());
    let tomorrow = SystemTime::now() + Duration::from_secs(86_400);
    let written = {
        let mut store = b.open();
        store.set_clock(move || tomorrow);
        store.write(&request(&recordings, 4)).unwrap()
    };
    let agent = Agent::start(&b.config, root.path().join("agent.log"));
    let refused =
        common::mqtt::wait(Duration::from_secs(60), || agent.log_text().contains("not signing evidence: the clock ("));
    let log = agent.stop();
    assert!(refused, "the bundle was not refused:\n{log}");
    let line = log.lines().find(|l| l.contains("not signing evidence")).unwrap();
    assert!(line.contains(" ERROR "), "{line}");
    let created = humantime::format_rfc3339_millis(tomorrow).to_string();
    assert!(
        line.contains(&format!("is behind the last signed entry ({created}, sequence 1); fix the system clock")),
        "{line}"
    );
    assert_eq!(b.entries().len(), 1, "nothing signed:\n{log}");
    assert_eq!(head::read(&b.head_file()).unwrap(), Some(written.head()));
    let saved: Vec<_> = std::fs::read_dir(b.state().join("evidence-pending"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .collect();
    assert_eq!(saved.len(), 1, "the request is kept for the next try:\n{log}");
}

const PRUNE_CRASH_ENV: &str = "VIGIL_TEST_PRUNE_CRASH";

/// Not a test: a process that dies once its prune record is durable, before removing any file.
#[test]
fn prune_crash_child() {
    let Ok(root) = std::env::var(PRUNE_CRASH_ENV) else { return };
    let b = Edge { root: PathBuf::from(&root), config: PathBuf::new() };
    let mut store = b.open();
    store.crash_before_prune_removal = true;
    store.prune(0, SystemTime::now() + Duration::from_secs(1)).unwrap();
    unreachable!("the pruning process should have died");
}

/// Pruning appends its signed record (naming the bundle and each file) and makes it durable before it
/// removes anything: a process killed in between leaves the record and the files, and the next prune
/// removes exactly those files without a second record.
#[test]
fn prune_writes_signed_record_before_removing_media() {
    let root = tempfile::tempdir().unwrap();
    let b = Edge::new(root.path(), BLACK_CAMERA);
    let recordings = recording(root.path());
    let bundle = {
        let mut store = b.open();
        let bundle = store.write(&request(&recordings, 4)).unwrap();
        store.acknowledge(&event_id(&bundle.dir), SystemTime::now()).unwrap();
        bundle
    };
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "prune_crash_child", "--nocapture", "--test-threads=1"])
        .env(PRUNE_CRASH_ENV, root.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the pruning process was supposed to die");
    assert_eq!(b.types(), ["bundle", "ack", "prune"]);
    let (_, prune_dir) = b.entries().pop().unwrap();
    let prune = b.manifest(&prune_dir);
    let target = &prune["record"]["targets"][0];
    assert_eq!(target["sequence"], 1);
    assert_eq!(target["event_id"], event_id(&bundle.dir).as_str());
    assert_eq!(target["manifest_sha256"], bundle.manifest_sha256.as_str());
    assert_eq!(target["removed"], serde_json::json!(["clip.mp4", "frame.jpg", "snapshot.jpg"]));
    assert!(bundle.dir.join("clip.mp4").exists() && bundle.dir.join("frame.jpg").exists(), "removed before");
    let key = DeviceKey::load(&b.state().join("keys/device-ed25519.pem")).unwrap().public();
    let bytes = std::fs::read(prune_dir.join("manifest.json")).unwrap();
    assert!(key.verify(&bytes, &std::fs::read(prune_dir.join("manifest.sig")).unwrap()), "signed");

    let mut store = b.open();
    assert_eq!(store.prune(0, SystemTime::now() + Duration::from_secs(1)).unwrap(), 0, "no second record");
    for file in ["clip.mp4", "frame.jpg", "snapshot.jpg"] {
        assert!(!bundle.dir.join(file).exists(), "{file} left");
    }
    assert!(bundle.dir.join("manifest.json").exists());
    assert_eq!(b.types(), ["bundle", "ack", "prune"]);
}

/// `vigil hold` appends a signed hold record (refusing while an agent holds the data directory: the
/// chain has one writer); a held, acknowledged, expired bundle is not pruned until `vigil hold
/// --release` appends its release.
#[test]
fn hold_blocks_prune_and_release_allows_it() {
    let root = tempfile::tempdir().unwrap();
    let b = Edge::new(root.path(), BLACK_CAMERA);
    let recordings = recording(root.path());
    let bundles: Vec<PathBuf> = {
        let mut store = b.open();
        [4, 8].iter().map(|s| store.write(&request(&recordings, *s)).unwrap().dir).collect()
    };
    let (a, held) = (event_id(&bundles[0]), event_id(&bundles[1]));
    let hold = |args: &[&str]| common::vigil().arg("hold").arg("--config").arg(&b.config).args(args).output().unwrap();
    {
        let _agent = vigil::storage_lock::DataDirLock::acquire(&b.state()).unwrap();
        let out = hold(&[&held]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "vigil hold appended beside a running agent");
        assert!(stderr.contains("is running") && stderr.contains("one writer"), "{stderr}");
        assert_eq!(b.entries().len(), 2);
    }
    let out = hold(&["--reason", "court case 42", &held]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("legal hold placed"));

    let mut store = b.open();
    store.acknowledge(&a, SystemTime::now()).unwrap();
    store.acknowledge(&held, SystemTime::now()).unwrap();
    let later = SystemTime::now() + Duration::from_secs(1);
    assert_eq!(store.prune(0, later).unwrap(), 1, "only the unheld one");
    assert!(!bundles[0].join("clip.mp4").exists() && bundles[1].join("clip.mp4").exists());
    drop(store);

    let out = hold(&["--release", &held]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("hold released"));
    let mut store = b.open();
    assert_eq!(store.prune(0, later).unwrap(), 1);
    assert!(!bundles[1].join("clip.mp4").exists());
    assert_eq!(b.types(), ["bundle", "bundle", "hold", "ack", "ack", "prune", "release", "prune"]);
    let hold_record = b.manifest(&b.entries()[2].1);
    assert_eq!(hold_record["record"]["reason"], "court case 42");
    assert_eq!(hold_record["record"]["target"]["event_id"], held.as_str());
    for (_, dir) in b.entries() {
        for marker in ["ACKED", "HOLD", "PRUNED"] {
            assert!(!dir.join(marker).exists(), "{marker} written in {}", dir.display());
        }
    }
}

/// A running agent: each `evidence_ready` carries the chain's head after its bundle, the bundle's
/// acknowledgement is a signed record, and the head after it is retained on `…/evidence/head` (a
/// subscriber arriving later gets it).
#[test]
fn evidence_ready_carries_chain_head_and_head_is_retained() {
    let root = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(root.path());
    let platform = Platform::new(root.path());
    let mqtt = common::agent::config_head(broker.port, &platform);
    let extra = mqtt.split_once("data_dir = \"state\"\n").unwrap().1;
    let b = Edge::new(root.path(), &format!("{extra}{BLACK_CAMERA}"));
    let subscriber = Subscriber::start(broker.port, "vigil/v1/hosp/edge/events/#");
    let agent = Agent::start(&b.config, root.path().join("agent.log"));
    let ready =
        subscriber.wait_for(Duration::from_secs(60), |m| common::agent::kinds(m).contains(&"evidence_ready".into()));
    assert!(ready, "no evidence_ready:\n{}", agent.log_text());
    // The acknowledgement record follows the PUBACK.
    let acked = common::mqtt::wait(Duration::from_secs(20), || b.types().contains(&"ack".to_owned()));
    let log = agent.stop();
    assert!(acked, "no ack record:\n{log}");

    let event = subscriber.payloads("/events/evidence_ready").remove(0);
    let details = &event["details"];
    let entries = b.entries();
    let bundle = entries.iter().find(|(_, d)| event_id(d) == details["for_event_id"].as_str().unwrap()).unwrap();
    let sha = vigil::hashing::sha256_hex(&std::fs::read(bundle.1.join("manifest.json")).unwrap());
    assert_eq!(details["chain_head"], serde_json::json!({"sequence": bundle.0, "manifest_sha256": sha, "epoch": 1}));

    let recorded = head::read(&b.head_file()).unwrap().unwrap();
    let (last_seq, last_dir) = entries.last().unwrap();
    assert_eq!(recorded.sequence, *last_seq);
    assert_eq!(
        recorded.manifest_sha256,
        vigil::hashing::sha256_hex(&std::fs::read(last_dir.join("manifest.json")).unwrap())
    );
    // The agent is gone: a new subscriber gets the last head from the broker, retained.
    let later = Subscriber::start(broker.port, "vigil/v1/hosp/edge/evidence/head");
    assert!(later.wait_for(Duration::from_secs(10), |m| !m.is_empty()), "no retained head");
    let (_, payload, retained) = later.messages.lock().unwrap()[0].clone();
    assert!(retained);
    let head: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(head["schema"], "vigil.evidence-head.v1");
    assert_eq!((head["site"].as_str(), head["device"].as_str()), (Some("hosp"), Some("edge")));
    assert_eq!(head["sequence"], recorded.sequence);
    assert_eq!(head["manifest_sha256"], recorded.manifest_sha256.as_str());
    assert_eq!(head["epoch"], 1);
}
