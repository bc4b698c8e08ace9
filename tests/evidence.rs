//! Evidence bundles: written from a real recording, verified by Vigil and by a third party (Python
//! `cryptography`, following docs/evidence.md only); every kind of tampering named; a writer killed at
//! each step of the protocol leaves a whole bundle or none.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use image::RgbImage;
use vigil::evidence::keys::{DeviceKey, PublicKey};
use vigil::evidence::store::{self, Detection, EvidenceRequest, Step, Store};
use vigil::evidence::verify;

/// 2026-11-24T10:00:00Z: the recording's first frame.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_514_400)
}

/// A 20 s recording (640×360, 10 fps, keyframe every 2 s) as one segment of camera `ward-1`.
fn recording(root: &Path) -> PathBuf {
    let dir = root.join("recordings/ward-1");
    std::fs::create_dir_all(&dir).unwrap();
    let segment = vigil::source::pipeline::segment_path(&dir, t0());
    common::media::encode_clip(&segment, 640, 360, 10, 200, 20, |i| {
        let mut img = RgbImage::from_pixel(640, 360, image::Rgb([90, 110, 130]));
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
        camera_info: vigil::evidence::manifest::CameraIdentity::new(
            "ward-1",
            "ward",
            Some("Ward 1, room 4"),
            "rtsp://admin:s3cret@10.0.0.7:554/stream1",
        ),
        at,
        onset: Some(at - Duration::from_secs(2)),
        thresholds: BTreeMap::from([("covered_secs".to_owned(), "2".to_owned())]),
        details: BTreeMap::from([("tamper".to_owned(), "covered".to_owned())]),
        snapshot: RgbImage::from_pixel(640, 360, image::Rgb([20, 20, 20])),
        snapshot_at: at,
        detections: vec![Detection { label: "person".into(), bbox: [100.0, 50.0, 300.0, 340.0], score: 0.87 }],
        recordings: recordings.to_owned(),
        clip_from: at - Duration::from_secs(3),
        clip_to: at + Duration::from_secs(3),
    }
}

fn open_store(root: &Path) -> Store {
    let key_path = root.join("keys/device.pem");
    let key = if key_path.exists() { DeviceKey::load(&key_path).unwrap() } else { DeviceKey::init(&key_path).unwrap() };
    let models = vec![("centerface".to_owned(), "ab".repeat(32))];
    Store::open(&root.join("evidence"), key, "hosp-1", "edge-1", models).unwrap()
}

fn public(root: &Path) -> PublicKey {
    DeviceKey::load(&root.join("keys/device.pem")).unwrap().public()
}

/// A store with four bundles at seconds 4, 8, 12, 16.
fn four_bundles(root: &Path) -> Vec<PathBuf> {
    let recordings = recording(root);
    let mut store = open_store(root);
    [4, 8, 12, 16].iter().map(|s| store.write(&request(&recordings, *s)).unwrap().dir).collect()
}

fn problems(root: &Path) -> Vec<String> {
    verify::verify(&[root.join("evidence")], &public(root)).problems
}

#[test]
fn bundles_verify_with_vigil_and_with_python_cryptography_alone() {
    let root = tempfile::tempdir().unwrap();
    let bundles = four_bundles(root.path());
    assert_eq!(problems(root.path()), Vec::<String>::new());

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundles[1].join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["sequence"], 2);
    assert_eq!(manifest["event"]["kind"], "camera_tamper");
    assert_eq!(manifest["detections"][0]["score"], "0.870");
    // The clip starts on the keyframe at or before 8 − 3 = 5 s (keyframes every 2 s: 4 s).
    assert_eq!(manifest["clip"]["start"], "2026-11-24T10:00:04.000Z");
    assert!(common::media::keyframes(&bundles[1].join("clip.mp4"))[0]);

    let pem = root.path().join("pub.pem");
    std::fs::write(&pem, public(root.path()).to_pem()).unwrap();
    let out = Command::new(common::python())
        .arg(common::repo("tests/third_party_verify.py"))
        .arg(&pem)
        .arg(root.path().join("evidence"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "third-party verification failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("4 bundles, 0 problems"), "{stdout}");

    // And with `vigil verify`, on the directory and on one bundle.
    for target in [root.path().join("evidence"), bundles[2].clone()] {
        let out = common::vigil().args(["verify", "--key"]).arg(&pem).arg(&target).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
}

#[test]
fn one_changed_byte_of_a_clip_is_named() {
    let root = tempfile::tempdir().unwrap();
    let bundles = four_bundles(root.path());
    let clip = bundles[1].join("clip.mp4");
    let mut bytes = std::fs::read(&clip).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&clip, bytes).unwrap();
    let found = problems(root.path());
    let name = bundles[1].file_name().unwrap().to_str().unwrap();
    assert_eq!(found, vec![format!("{name}: clip.mp4 was modified (SHA-256 or size differs from the manifest)")]);
}

#[test]
fn a_bundle_deleted_from_the_middle_is_named() {
    let root = tempfile::tempdir().unwrap();
    let bundles = four_bundles(root.path());
    std::fs::remove_dir_all(&bundles[1]).unwrap();
    let found = problems(root.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("bundle 2 is missing"), "{found:?}");
}

#[test]
fn two_swapped_bundles_are_named() {
    let root = tempfile::tempdir().unwrap();
    let bundles = four_bundles(root.path());
    let (b, c) = (&bundles[1], &bundles[2]);
    let parent = b.parent().unwrap();
    let (nb, nc) = (b.file_name().unwrap(), c.file_name().unwrap());
    std::fs::rename(b, parent.join("swap")).unwrap();
    std::fs::rename(c, parent.join(nb)).unwrap();
    std::fs::rename(parent.join("swap"), parent.join(nc)).unwrap();
    let found = problems(root.path());
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().all(|p| p.contains("directory name does not match its manifest")), "{found:?}");
}

#[test]
fn a_signature_by_another_key_is_named() {
    let root = tempfile::tempdir().unwrap();
    let bundles = four_bundles(root.path());
    let intruder = DeviceKey::init(&root.path().join("other.pem")).unwrap();
    let manifest = std::fs::read(bundles[3].join("manifest.json")).unwrap();
    std::fs::write(bundles[3].join("manifest.sig"), intruder.sign(&manifest)).unwrap();
    let found = problems(root.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("bad signature"), "{found:?}");
    // `vigil verify` names it and fails.
    let out = common::vigil()
        .args(["verify", "--key", &public(root.path()).to_base64()])
        .arg(root.path().join("evidence"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("bad signature"));
}

#[test]
fn retention_prunes_only_acknowledged_expired_unheld_bundles_and_keeps_the_chain() {
    let root = tempfile::tempdir().unwrap();
    let bundles = four_bundles(root.path());
    let id = |b: &Path| b.file_name().unwrap().to_str().unwrap()[11..].to_owned();
    let now = SystemTime::now();
    let mut store = open_store(root.path());
    store.acknowledge(&id(&bundles[0]), now).unwrap();
    store.acknowledge(&id(&bundles[1]), now).unwrap();
    store.hold(&id(&bundles[1]), "court case 42").unwrap();
    // Not yet expired: nothing pruned.
    assert_eq!(store.prune(1, now).unwrap(), 0);
    // Expired: only the acknowledged, unheld one; a signed prune record says so, no marker file.
    assert_eq!(store.prune(0, now + Duration::from_secs(1)).unwrap(), 1);
    assert!(!bundles[0].join("clip.mp4").exists() && !bundles[0].join("PRUNED").exists());
    assert!(store.bundle_state(&id(&bundles[0])).unwrap().pruned.contains("clip.mp4"));
    assert!(bundles[1].join("clip.mp4").exists() && bundles[2].join("clip.mp4").exists());
    assert_eq!(problems(root.path()), Vec::<String>::new(), "chain still verifies after pruning");
    store.release(&id(&bundles[1]), "").unwrap();
    assert_eq!(store.prune(0, now + Duration::from_secs(2)).unwrap(), 1);
    // The records the writer made (ack, hold, release, prune) read the same to the outsider's verifier.
    assert_eq!(problems(root.path()), Vec::<String>::new(), "after the release and second prune");
    let pem = root.path().join("pub.pem");
    std::fs::write(&pem, public(root.path()).to_pem()).unwrap();
    let out = Command::new(common::python())
        .arg(common::repo("tests/third_party_verify.py"))
        .arg(&pem)
        .arg(root.path().join("evidence"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "third-party verification of a pruned store failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const CRASH_ENV: &str = "VIGIL_TEST_CRASH_AT";

/// Not a test: the body of a writer process killed at a given step (see `crash_after`).
#[test]
fn crash_writer_child() {
    let Ok(spec) = std::env::var(CRASH_ENV) else { return };
    let (step, root) = spec.split_once(':').unwrap();
    let root = Path::new(root);
    let mut store = open_store(root);
    store.crash_after = Some(Step::ALL[step.parse::<usize>().unwrap()]);
    store.write(&request(&root.join("recordings/ward-1"), 12)).unwrap();
    unreachable!("the writer should have died");
}

/// Kills a writer right after `step`, then checks the store holds the two earlier bundles and either
/// the whole third one or none, recovers, and continues the chain.
fn crash_after(step: Step) {
    let root = tempfile::tempdir().unwrap();
    let recordings = recording(root.path());
    {
        let mut store = open_store(root.path());
        store.write(&request(&recordings, 4)).unwrap();
        store.write(&request(&recordings, 8)).unwrap();
    }
    let index = Step::ALL.iter().position(|s| *s == step).unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_writer_child", "--nocapture", "--test-threads=1"])
        .env(CRASH_ENV, format!("{index}:{}", root.path().display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the writer was supposed to die after {step:?}");

    let complete = store::bundles(&root.path().join("evidence")).unwrap().len();
    let expect_third = step >= Step::Renamed;
    assert_eq!(complete, if expect_third { 3 } else { 2 }, "after a crash at {step:?}");
    // Recovery removes what was half-written; the chain verifies and continues.
    let mut store = open_store(root.path());
    let next = store.write(&request(&recordings, 16)).unwrap();
    assert_eq!(next.sequence, complete as u64 + 1);
    let leftovers: Vec<_> = std::fs::read_dir(root.path().join("evidence"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "incomplete bundle left behind after a crash at {step:?}");
    assert_eq!(problems(root.path()), Vec::<String>::new(), "after a crash at {step:?}");
}

#[test]
fn crash_after_temp_dir_created_leaves_no_bundle() {
    crash_after(Step::TempDirCreated);
}

#[test]
fn crash_after_clip_written_leaves_no_bundle() {
    crash_after(Step::ClipWritten);
}

#[test]
fn crash_after_snapshot_written_leaves_no_bundle() {
    crash_after(Step::SnapshotWritten);
}

#[test]
fn crash_after_manifest_written_leaves_no_bundle() {
    crash_after(Step::ManifestWritten);
}

#[test]
fn crash_after_signature_written_leaves_no_bundle() {
    crash_after(Step::SignatureWritten);
}

#[test]
fn crash_after_files_synced_leaves_no_bundle() {
    crash_after(Step::FilesSynced);
}

#[test]
fn crash_after_rename_leaves_the_whole_bundle() {
    crash_after(Step::Renamed);
}

#[test]
fn crash_after_parent_synced_leaves_the_whole_bundle() {
    crash_after(Step::ParentSynced);
}

const CRASH_CHECKIN_ENV: &str = "VIGIL_TEST_CRASH_CHECKIN_AT";

/// A ward phone's upload as the check-in service hands it to the store: a registry photo as sent, the
/// decoded photo with a face box, the checks.
fn checkin_request() -> vigil::evidence::checkin::CheckinRequest {
    let photo = std::fs::read(common::face_images().join("obama.jpg")).unwrap();
    let picture = image::load_from_memory(&photo).unwrap().to_rgb8();
    let at = SystemTime::now();
    let time = |t: SystemTime| humantime::format_rfc3339_millis(t).to_string();
    vigil::evidence::checkin::CheckinRequest {
        event_id: uuid::Uuid::now_v7(),
        kind: "bedside_check_verified".into(),
        camera: "phone:ph-0123456789".into(),
        camera_info: None,
        at,
        details: BTreeMap::from([("patient".to_owned(), "p-obama".to_owned())]),
        checkin: serde_json::json!({
            "phone": "ph-0123456789", "ward": "w3", "mode": "bedside", "claimed": "p-obama",
            "capture_id": uuid::Uuid::new_v4().to_string(), "captured_at": time(at), "received_at": time(at),
            "late": false,
            "checks": [{"name": "signature", "outcome": "passed", "reason": "registered_phone", "detail": "…"}],
        }),
        photo: photo.into(),
        annotation: Some(vigil::evidence::checkin::Annotation {
            picture,
            faces: vec![[100.0, 80.0, 300.0, 320.0]],
            face_passed: true,
        }),
    }
}

/// Not a test: the body of a check-in writer process killed at a given step.
#[test]
fn crash_checkin_writer_child() {
    let Ok(spec) = std::env::var(CRASH_CHECKIN_ENV) else { return };
    let (step, root) = spec.split_once(':').unwrap();
    let mut store = open_store(Path::new(root));
    store.crash_after = Some(Step::ALL[step.parse::<usize>().unwrap()]);
    store.write_checkin(&checkin_request()).unwrap();
    unreachable!("the writer should have died");
}

/// A check-in bundle follows the same protocol: a writer killed right after any step leaves the
/// whole bundle (after the rename) or none of it; the store recovers and the chain continues.
#[test]
fn a_crash_at_any_step_of_a_checkin_bundle_leaves_all_of_it_or_none() {
    for (index, step) in Step::ALL.iter().enumerate() {
        let root = tempfile::tempdir().unwrap();
        open_store(root.path()).write_checkin(&checkin_request()).unwrap();
        let status = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_checkin_writer_child", "--nocapture", "--test-threads=1"])
            .env(CRASH_CHECKIN_ENV, format!("{index}:{}", root.path().display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "the writer was supposed to die after {step:?}");
        let complete = store::bundles(&root.path().join("evidence")).unwrap();
        assert_eq!(complete.len(), if *step >= Step::Renamed { 2 } else { 1 }, "after a crash at {step:?}");
        let mut store = open_store(root.path());
        assert_eq!(store.write_checkin(&checkin_request()).unwrap().sequence, complete.len() as u64 + 1);
        assert_eq!(problems(root.path()), Vec::<String>::new(), "after a crash at {step:?}");
    }
}

/// A window camera playing a file (10 fps, a keyframe every 2 s): the room for `view` of `frames`
/// frames, then black; its config with `settings` (TOML sections) and a device key made by `vigil keys
/// init` (whose output, the public key, is returned with the config's path).
fn covered_window(root: &Path, (frames, view): (usize, usize), settings: &str) -> (PathBuf, std::process::Output) {
    let clip = root.join("window.mp4");
    let room = vigil::analyze::image::frame_from(
        &vigil::analyze::image::load_rgb(&common::face_images().join("obama.jpg")).unwrap(),
        640,
        360,
    );
    common::media::encode_clip(&clip, 640, 360, 10, frames, 20, |i| {
        let mut img = if i < view { room.clone() } else { RgbImage::from_pixel(640, 360, image::Rgb([8, 8, 8])) };
        common::media::add_noise(&mut img, 6, i as u64);
        img
    });
    let config = root.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nid = \"hosp-1\"\ndevice_id = \"edge-1\"\n[storage]\ndata_dir = \"state\"\n{settings}\
             [[cameras]]\nid = \"window\"\nrole = \"settlement_window\"\nurl = \"file://{}\"\n",
            clip.display()
        ),
    )
    .unwrap();
    let keys = common::vigil().args(["keys", "init", "--config"]).arg(&config).output().unwrap();
    assert!(keys.status.success(), "{}", String::from_utf8_lossy(&keys.stderr));
    (config, keys)
}

/// The whole path in a running agent: a camera (a file played like a live stream) goes dark, tamper
/// detection raises `covered`, and a signed bundle with the clip around it verifies.
#[test]
fn tamper_in_a_running_agent_yields_a_verifiable_bundle() {
    let root = tempfile::tempdir().unwrap();
    let (config, keys) = covered_window(
        root.path(),
        (200, 50),
        "[tamper]\ncovered_secs = 2\n[evidence]\npre_roll_secs = 3\npost_roll_secs = 2\n",
    );
    let pem = root.path().join("pub.pem");
    std::fs::write(&pem, &keys.stdout).unwrap();

    let agent =
        common::vigil().arg("run").arg("--config").arg(&config).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let evidence = root.path().join("state/evidence");
    let started = std::time::Instant::now();
    while store::bundles(&evidence).map_or(true, |b| b.is_empty()) && started.elapsed() < Duration::from_secs(40) {
        std::thread::sleep(Duration::from_millis(250));
    }
    Command::new("kill").arg("-INT").arg(agent.id().to_string()).status().unwrap();
    let output = agent.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    let bundles = store::bundles(&evidence).unwrap();
    assert_eq!(bundles.len(), 1, "one tamper, one bundle:\n{log}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundles[0].1.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["event"]["kind"], "camera_tamper");
    assert_eq!(manifest["event"]["details"]["tamper"], "covered");
    // Every model of the bundle, each once (models/manifest.toml's `[[model]]` entries).
    let bundle = std::fs::read_to_string(common::repo("models/manifest.toml")).unwrap();
    assert_eq!(manifest["models"].as_array().unwrap().len(), bundle.matches("\n[[model]]\n").count(), "{manifest}");
    let out = common::vigil().args(["verify", "--key"]).arg(&pem).arg(&evidence).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(log.contains("evidence bundle written"), "{log}");
}

/// `crash_during_post_roll_still_yields_the_bundle`: the agent is SIGKILLed after deciding a tamper but
/// before its post-roll is recorded; the saved request survives, and the next start writes the bundle
/// (with the video recorded up to the kill) and only then forgets the request.
#[test]
fn crash_during_post_roll_still_yields_the_bundle() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("vigil.toml");
    std::fs::write(
        &config,
        "[site]\nid = \"hosp-1\"\ndevice_id = \"edge-1\"\n[storage]\ndata_dir = \"state\"\n\
         [tamper]\ncovered_secs = 2\n[evidence]\npre_roll_secs = 3\npost_roll_secs = 12\n\
         [[cameras]]\nid = \"ward\"\nrole = \"dialysis_room\"\nurl = \"test://black\"\n",
    )
    .unwrap();
    let keys = common::vigil().args(["keys", "init", "--config"]).arg(&config).output().unwrap();
    assert!(keys.status.success(), "{}", String::from_utf8_lossy(&keys.stderr));
    let pem = root.path().join("pub.pem");
    std::fs::write(&pem, &keys.stdout).unwrap();
    let saved = root.path().join("state/evidence-pending");
    let evidence = root.path().join("state/evidence");
    let has_request = || {
        std::fs::read_dir(&saved)
            .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().ends_with(".json")))
            .unwrap_or(false)
    };
    let mut agent =
        common::vigil().arg("run").arg("--config").arg(&config).stderr(std::process::Stdio::null()).spawn().unwrap();
    let started = std::time::Instant::now();
    while !has_request() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    agent.kill().unwrap(); // SIGKILL: most of the 12 s post-roll still to come
    agent.wait().unwrap();
    assert!(has_request(), "the tamper's evidence request was not saved");
    assert!(store::bundles(&evidence).unwrap().is_empty());

    // Restart with the camera gone: the saved request waits for its post-roll time (a camera that is
    // back would record it), then is written from what was recorded.
    let text = std::fs::read_to_string(&config).unwrap().replace("test://black", "rtsp://127.0.0.1:9/none");
    std::fs::write(&config, text).unwrap();
    let agent =
        common::vigil().arg("run").arg("--config").arg(&config).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let started = std::time::Instant::now();
    while (has_request() || store::bundles(&evidence).unwrap().is_empty())
        && started.elapsed() < Duration::from_secs(40)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    Command::new("kill").arg("-INT").arg(agent.id().to_string()).status().unwrap();
    let output = agent.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    let bundles = store::bundles(&evidence).unwrap();
    assert_eq!(bundles.len(), 1, "{log}");
    assert!(!has_request(), "the request must be forgotten once its bundle is written:\n{log}");
    assert!(log.contains("evidence requests saved before the last stop"), "{log}");
    let out = common::vigil().args(["verify", "--key"]).arg(&pem).arg(&evidence).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // The clip holds the tamper's onset (the camera was black from its first frame); what the kill lost
    // (the recorder writes a GOP and a fragment behind the stream) and the camera never sent is named.
    let manifest = manifest_of(&bundles[0].1);
    let clip = &manifest["clip"];
    let (start, end, onset) = (t(&clip["start"]), t(&clip["end"]), t(&manifest["event"]["onset"]));
    assert!(start <= onset && onset <= end, "{manifest}");
    let missing = clip["missing"].as_array().unwrap_or_else(|| panic!("no clip.missing: {manifest}"));
    let tail = missing.last().unwrap();
    assert_eq!((&tail["from"], &tail["to"]), (&clip["end"], &clip["requested_to"]), "{manifest}");
    assert!(tail["reason"].as_str().unwrap().contains("recording ends at"), "{manifest}");
    assert!(log.contains("evidence clip incomplete") && log.contains("WARN"), "{log}");
}

fn manifest_of(bundle: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap()
}

fn t(v: &serde_json::Value) -> SystemTime {
    humantime::parse_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}"))).unwrap()
}

/// After a crash the video of the request's interval may be partly gone (the recorder's unwritten tail,
/// a camera that did not come back): the bundle is still written from what was recorded, and its
/// manifest names each stretch that is missing, with why. Here the recording ends at 19.9 s: one
/// request's event is in it (the clip contains it, its end is named missing), the other's is not.
#[test]
fn crash_recovered_clip_contains_the_event_or_names_the_gap() {
    let root = tempfile::tempdir().unwrap();
    let recordings = recording(root.path());
    let mut store = open_store(root.path());
    let secs = Duration::from_secs;
    let mut inside = request(&recordings, 17);
    inside.clip_to = inside.at + secs(12);
    let mut beyond = request(&recordings, 24);
    beyond.clip_from = beyond.at - secs(12);
    let written: Vec<PathBuf> = [&inside, &beyond].iter().map(|r| store.write(r).unwrap().dir).collect();
    assert_eq!(problems(root.path()), Vec::<String>::new());
    let last_frame = "2026-11-24T10:00:19.900Z";
    for (bundle, req) in written.iter().zip([&inside, &beyond]) {
        let manifest = manifest_of(bundle);
        let clip = &manifest["clip"];
        assert_eq!(clip["end"], last_frame, "{manifest}");
        let missing = clip["missing"].as_array().unwrap_or_else(|| panic!("{manifest}"));
        assert_eq!(missing.len(), 1, "{manifest}");
        assert_eq!(missing[0]["from"], last_frame);
        assert_eq!(t(&missing[0]["to"]), req.clip_to);
        assert!(missing[0]["reason"].as_str().unwrap().contains("recording ends at 2026-11-24T10:00:19.900Z"));
        let contains_event = t(&clip["start"]) <= req.at && req.at <= t(&clip["end"]);
        assert_eq!(contains_event, req.at == inside.at, "{manifest}");
    }
    // A clip the recording covers names nothing missing.
    let whole = store.write(&request(&recordings, 10)).unwrap();
    assert!(manifest_of(&whole.dir)["clip"].get("missing").is_none());
}

/// A camera shows its view, is covered (black) and stays covered until the alarm: the bundle's clip
/// starts pre-roll before the cover, so it shows the uncovered view first. Before, pre-roll counted back
/// from the raise (covered_secs after the cover), and with covered_secs above the pre-roll no frame of
/// the view was in the clip.
#[test]
fn covered_then_uncovered_clip_shows_the_view_before_the_cover() {
    let root = tempfile::tempdir().unwrap();
    // 10 fps, a keyframe every 2 s: the view for 3 s, then black to the end (14 s).
    let (config, _keys) = covered_window(
        root.path(),
        (140, 30),
        "[tamper]\ncovered_secs = 3\n[evidence]\npre_roll_secs = 1\npost_roll_secs = 1\n",
    );
    let agent =
        common::vigil().arg("run").arg("--config").arg(&config).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let evidence = root.path().join("state/evidence");
    let started = std::time::Instant::now();
    while store::bundles(&evidence).map_or(true, |b| b.is_empty()) && started.elapsed() < Duration::from_secs(40) {
        std::thread::sleep(Duration::from_millis(250));
    }
    Command::new("kill").arg("-INT").arg(agent.id().to_string()).status().unwrap();
    let output = agent.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    let bundles = store::bundles(&evidence).unwrap();
    assert!(!bundles.is_empty(), "no bundle:\n{log}");
    let manifest = manifest_of(&bundles[0].1);
    assert_eq!(manifest["event"]["details"]["tamper"], "covered", "{manifest}");
    let (onset, at) = (t(&manifest["event"]["onset"]), t(&manifest["event"]["at"]));
    let held = at.duration_since(onset).unwrap();
    // An idle window decodes keyframes only (decoding on demand), so tamper is judged on keyframes: the
    // raise comes at the first keyframe at least covered_secs after the onset, within one GOP (2 s).
    assert!(
        held >= Duration::from_secs(3) && held < Duration::from_secs(3 + 2),
        "raised covered_secs after onset, within a GOP: {manifest}"
    );
    assert!(t(&manifest["clip"]["start"]) < onset, "{manifest}");
    assert_eq!(manifest["decision"]["thresholds"]["covered_secs"], "3");
    assert_eq!(manifest["camera"]["role"], "settlement_window");

    // Decoded: the view first, then black.
    let luma =
        |img: &RgbImage| img.pixels().map(|p| u64::from(p.0[1])).sum::<u64>() / u64::from(img.width() * img.height());
    let frames = common::media::decode_clip(&bundles[0].1.join("clip.mp4"));
    let lumas: Vec<u64> = frames.iter().map(|(_, img)| luma(img)).collect();
    let covered_from = lumas.iter().position(|l| *l < 20).unwrap_or_else(|| panic!("never black: {lumas:?}"));
    assert!(covered_from >= 5, "the clip must show the uncovered view before the cover: {lumas:?}");
    assert!(lumas[..covered_from].iter().all(|l| *l > 40), "{lumas:?}");
    assert!(lumas[covered_from..].iter().all(|l| *l < 20), "covered until the end of the clip: {lumas:?}");
    // frame.jpg is the decisive frame without boxes, the same size as the snapshot.
    let frame = image::open(bundles[0].1.join("frame.jpg")).unwrap();
    let size = |k: &str| manifest["snapshot"][k].as_u64().unwrap();
    assert_eq!((u64::from(frame.width()), u64::from(frame.height())), (size("width"), size("height")));
}
