//! Content Credentials (C2PA): a bundle's clip.mp4 and snapshot.jpg carry a manifest signed with the
//! device key under its certificate, which `c2patool` (the C2PA project's own tool, installed by
//! scripts/setup) reads and validates; a flipped byte in the media is reported. The device certificate
//! comes from `vigil keys init` (self-issued: untrusted, everything else valid) or from a CA through
//! `vigil keys csr` / `vigil keys install-cert` (trusted when c2patool is given that CA as an anchor).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::vigil;
use image::RgbImage;
use serde_json::Value;
use vigil::evidence::credentials::{self, Credentials};
use vigil::evidence::keys::DeviceKey;
use vigil::evidence::store::{Detection, EvidenceRequest, Store};
use vigil::evidence::verify;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `$VIGIL_CACHE/c2patool/bin/c2patool`, installed by scripts/setup.
fn c2patool() -> PathBuf {
    let tool = vigil::cache::dir().join("c2patool/bin/c2patool");
    assert!(tool.exists(), "{} is missing: run scripts/setup first (scripts/test does)", tool.display());
    tool
}

/// 2026-11-24T10:00:00Z: the recording's first frame.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_514_400)
}

/// A config in `root` (data under `root/state`), its device key and certificate made by `vigil keys init`.
fn config(root: &Path) -> PathBuf {
    let file = root.join("vigil.toml");
    std::fs::write(
        &file,
        "[site]\nid = \"hosp-1\"\ndevice_id = \"edge-1\"\n[storage]\ndata_dir = \"state\"\n\
         [[cameras]]\nid = \"ward-1\"\nrole = \"settlement_window\"\nurl = \"test://smpte\"\n",
    )
    .unwrap();
    let out = vigil().args(["keys", "init", "--config"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "keys init: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("device certificate self-issued"), "{}", text(&out.stderr));
    file
}

fn key(root: &Path) -> DeviceKey {
    DeviceKey::load(&root.join("state/keys/device-ed25519.pem")).unwrap()
}

fn cert_file(root: &Path) -> PathBuf {
    credentials::cert_path(&root.join("state"))
}

/// One bundle written through the store with the device's credentials, from a 10 s recording.
fn bundle(root: &Path) -> PathBuf {
    let recordings = root.join("recordings/ward-1");
    std::fs::create_dir_all(&recordings).unwrap();
    let segment = vigil::source::pipeline::segment_path(&recordings, t0());
    common::media::encode_clip(&segment, 320, 240, 10, 100, 20, |i| {
        let mut img = RgbImage::from_pixel(320, 240, image::Rgb([90, 110, 130]));
        common::media::add_noise(&mut img, 8, i as u64);
        img
    });
    let key = key(root);
    let credentials = Credentials::load(&cert_file(root), &key).unwrap();
    let models = vec![("centerface".to_owned(), "ab".repeat(32))];
    let mut store = Store::open(&root.join("state/evidence"), key, "hosp-1", "edge-1", models).unwrap();
    store.credentials = Some(credentials);
    let at = t0() + Duration::from_secs(5);
    let request = EvidenceRequest {
        event_id: uuid::Uuid::now_v7(),
        kind: "camera_tamper".into(),
        camera: "ward-1".into(),
        camera_info: vigil::evidence::manifest::CameraIdentity::new("ward-1", "ward", None, "rtsp://10.0.0.7/stream1"),
        at,
        onset: Some(at - Duration::from_secs(2)),
        thresholds: BTreeMap::from([("covered_secs".to_owned(), "2".to_owned())]),
        details: BTreeMap::from([("tamper".to_owned(), "covered".to_owned())]),
        snapshot: RgbImage::from_pixel(320, 240, image::Rgb([20, 20, 20])),
        snapshot_at: at,
        detections: vec![Detection { label: "person".into(), bbox: [50.0, 30.0, 150.0, 200.0], score: 0.87 }],
        recordings,
        clip_from: at - Duration::from_secs(2),
        clip_to: at + Duration::from_secs(2),
    };
    let dir = store.write(&request).unwrap().dir;
    // The hashes in manifest.json are of the files as stored, Content Credentials included.
    let report = verify::verify(&[root.join("state/evidence")], &self::key(root).public());
    assert_eq!(report.problems, Vec::<String>::new());
    dir
}

/// c2patool's report on `file` (JSON), run with no user settings; `anchors` as its trust anchors.
fn c2patool_report(home: &Path, file: &Path, anchors: Option<&Path>) -> Value {
    let mut cmd = Command::new(c2patool());
    cmd.arg(file)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("C2PATOOL_SETTINGS", home.join("config/none.toml"))
        .env_remove("C2PATOOL_TRUST_ANCHORS")
        .env_remove("C2PATOOL_ALLOWED_LIST")
        .env_remove("C2PATOOL_TRUST_CONFIG");
    if let Some(anchors) = anchors {
        cmd.arg("trust").arg("--trust_anchors").arg(anchors);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "c2patool {}: {}{}", file.display(), text(&out.stdout), text(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("c2patool output is not JSON ({e}): {}", text(&out.stdout)))
}

/// The validation codes of the active manifest: (success, failure).
fn codes(report: &Value) -> (Vec<String>, Vec<String>) {
    let active = &report["validation_results"]["activeManifest"];
    let list = |k: &str| -> Vec<String> {
        active[k]
            .as_array()
            .map(|a| a.iter().map(|s| s["code"].as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    (list("success"), list("failure"))
}

fn vigil_assertion(report: &Value) -> Value {
    let label = report["active_manifest"].as_str().unwrap();
    let manifest = &report["manifests"][label];
    let assertions = manifest["assertions"].as_array().unwrap();
    let ours = assertions.iter().find(|a| a["label"] == credentials::ASSERTION).expect("org.vigil.evidence assertion");
    ours["data"].clone()
}

fn openssl(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "openssl {}: {}", args.join(" "), text(&out.stderr));
    out
}

#[test]
fn self_issued_clip_and_snapshot_validate_in_c2patool_except_trust_and_a_flipped_byte_is_caught() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    config(root);
    let dir = bundle(root);
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let event_id = manifest["event"]["id"].as_str().unwrap().to_owned();

    for (file, hash_code) in [
        ("clip.mp4", "assertion.bmffHash.match"),
        ("snapshot.jpg", "assertion.dataHash.match"),
        ("frame.jpg", "assertion.dataHash.match"),
    ] {
        // Copied out of its bundle, the file still says where it came from.
        let loose = root.join(format!("copied-{file}"));
        std::fs::copy(dir.join(file), &loose).unwrap();
        let report = c2patool_report(root, &loose, None);
        let (success, failure) = codes(&report);
        // A self-issued certificate is on nobody's trust list: that is the only failure.
        assert_eq!(failure, vec!["signingCredential.untrusted".to_owned()], "{file}: {report:#}");
        for code in ["claimSignature.validated", hash_code] {
            assert!(success.iter().any(|c| c == code), "{file}: {code} missing from {success:?}");
        }
        // C2PA's states: Invalid (a check failed) < Valid (all checks but trust) < Trusted.
        assert_eq!(report["validation_state"], "Valid", "{file}: valid, signer not trusted");
        let ours = vigil_assertion(&report);
        assert_eq!(ours["event"]["id"], event_id.as_str(), "{file}");
        assert_eq!(ours["event"]["kind"], "camera_tamper");
        assert_eq!(ours["event"]["camera"], "ward-1");
        assert_eq!((ours["site"].as_str(), ours["device"].as_str()), (Some("hosp-1"), Some("edge-1")));
        assert_eq!(ours["file"], file);
        let label = report["active_manifest"].as_str().unwrap();
        let issuer = report["manifests"][label]["signature_info"]["common_name"].as_str().unwrap_or_default();
        assert_eq!(issuer, "hosp-1/edge-1", "{:#}", report["manifests"][label]["signature_info"]);
    }

    // One flipped byte in the media data (the middle of the clip's mdat, the end of the JPEG's scan).
    for (file, mismatch) in
        [("clip.mp4", "assertion.bmffHash.mismatch"), ("snapshot.jpg", "assertion.dataHash.mismatch")]
    {
        let mut bytes = std::fs::read(dir.join(file)).unwrap();
        let at = if file == "clip.mp4" {
            let mdat = bytes.windows(4).position(|w| w == b"mdat").expect("an mdat box");
            mdat + (bytes.len() - mdat) / 2
        } else {
            bytes.len() - 64
        };
        bytes[at] ^= 0x01;
        let tampered = root.join(format!("tampered-{file}"));
        std::fs::write(&tampered, &bytes).unwrap();
        let report = c2patool_report(root, &tampered, None);
        let (_, failure) = codes(&report);
        assert!(failure.iter().any(|c| c == mismatch), "{file}: {mismatch} missing from {failure:?}");
        assert_eq!(report["validation_state"], "Invalid");
    }
}

#[test]
fn a_ca_issued_chain_installed_with_keys_install_cert_is_trusted_by_c2patool() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let file = config(root);

    // `vigil keys csr`: a PKCS#10 request OpenSSL accepts, for the device key.
    let out = vigil().args(["keys", "csr", "--config"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::write(root.join("device.csr"), &out.stdout).unwrap();
    let verified = openssl(root, &["req", "-in", "device.csr", "-verify", "-noout", "-subject"]);
    assert!(text(&verified.stdout).contains("CN = hosp-1/edge-1"), "{}", text(&verified.stdout));
    let public = openssl(root, &["req", "-in", "device.csr", "-pubkey", "-noout"]);
    assert_eq!(text(&public.stdout), key(root).public().to_pem());

    // A throwaway platform CA (Ed25519) issues the device certificate from the request.
    std::fs::write(
        root.join("ca.cnf"),
        "[req]\ndistinguished_name = dn\n[dn]\n\
         [ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n\
         [leaf]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n\
         extendedKeyUsage = emailProtection\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n",
    )
    .unwrap();
    openssl(root, &["genpkey", "-algorithm", "ed25519", "-out", "ca.key"]);
    #[rustfmt::skip]
    openssl(root, &["req", "-new", "-x509", "-key", "ca.key", "-subj", "/CN=Platform Test CA/O=hosp-1",
        "-days", "30", "-config", "ca.cnf", "-extensions", "ca", "-out", "ca.pem"]);
    #[rustfmt::skip]
    openssl(root, &["x509", "-req", "-in", "device.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "30", "-extfile", "ca.cnf", "-extensions", "leaf", "-out", "device.pem"]);
    let chain = [
        std::fs::read_to_string(root.join("device.pem")).unwrap(),
        std::fs::read_to_string(root.join("ca.pem")).unwrap(),
    ]
    .concat();
    std::fs::write(root.join("chain.pem"), chain).unwrap();

    // A certificate for another key is refused and the self-issued one stays.
    let before = std::fs::read(cert_file(root)).unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other = DeviceKey::init(&other_dir.path().join("k.pem")).unwrap();
    let foreign = other_dir.path().join("foreign.pem");
    std::fs::write(&foreign, credentials::self_issue(&other, "hosp-1", "edge-1", SystemTime::now()).unwrap()).unwrap();
    let out = vigil().args(["keys", "install-cert", "--config"]).arg(&file).arg(&foreign).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("is not this device's key"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(cert_file(root)).unwrap(), before);
    // So is a chain out of order (the CA first).
    let reversed = root.join("reversed.pem");
    std::fs::write(
        &reversed,
        [
            std::fs::read_to_string(root.join("ca.pem")).unwrap(),
            std::fs::read_to_string(root.join("device.pem")).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    let out = vigil().args(["keys", "install-cert", "--config"]).arg(&file).arg(&reversed).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(cert_file(root)).unwrap(), before);

    let out =
        vigil().args(["keys", "install-cert", "--config"]).arg(&file).arg(root.join("chain.pem")).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("2 certificates"), "{}", text(&out.stderr));

    let dir = bundle(root);
    for (file, hash_code) in [("clip.mp4", "assertion.bmffHash.match"), ("snapshot.jpg", "assertion.dataHash.match")] {
        let report = c2patool_report(root, &dir.join(file), Some(&root.join("ca.pem")));
        let (success, failure) = codes(&report);
        assert_eq!(failure, Vec::<String>::new(), "{file}: {report:#}");
        for code in ["signingCredential.trusted", "claimSignature.validated", hash_code] {
            assert!(success.iter().any(|c| c == code), "{file}: {code} missing from {success:?}");
        }
        assert_eq!(report["validation_state"], "Trusted", "{file}");
        // Without the anchor the same file is untrusted, nothing else.
        let (_, failure) = codes(&c2patool_report(root, &dir.join(file), None));
        assert_eq!(failure, vec!["signingCredential.untrusted".to_owned()], "{file}");
    }
}
