//! Trusted time: RFC 3161 tokens from a real TSA — `openssl ts -reply` with a throwaway CA and a TSA
//! certificate (extended key usage timeStamping), behind a small HTTP responder on 127.0.0.1 that this
//! test runs — stored as `timestamp.tsr` in each entry and accepted by `openssl ts -verify`. A TSA that
//! is down, or answers garbage or a token over another hash, delays the token and nothing else.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::agent::Agent;
use image::RgbImage;
use vigil::evidence::keys::DeviceKey;
use vigil::evidence::store::{EvidenceRequest, Store};
use vigil::evidence::timestamp::client::TsaError;
use vigil::evidence::timestamp::stamper::{StampFailure, Step};
use vigil::evidence::timestamp::token::TokenError;
use vigil::evidence::timestamp::{Stamper, StamperSettings, check_token};

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// What the TSA answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `openssl ts -reply` to the request.
    Token,
    /// HTTP 200 with a body that is not DER.
    Garbage,
    /// A real token, over a hash that differs from the request's in one byte.
    OtherHash,
    /// HTTP 500.
    ServerError,
}

/// A throwaway CA and TSA, and an HTTP responder on 127.0.0.1:`port` (started by [`Tsa::listen`]).
struct Tsa {
    dir: PathBuf,
    port: u16,
    mode: Arc<Mutex<Mode>>,
    served: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Tsa {
    /// Makes the CA (ca.pem), the TSA's key and certificate (tsa.pem, EKU timeStamping, critical) and
    /// the `openssl ts` configuration in `dir`; nothing listens yet.
    fn new(dir: &Path) -> Tsa {
        std::fs::create_dir_all(dir).unwrap();
        let openssl = || {
            let mut cmd = Command::new("openssl");
            cmd.current_dir(dir);
            cmd
        };
        run(openssl().args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]).args([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Vigil test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]));
        run(openssl().args(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]).args([
            "-keyout",
            "tsa.key",
            "-out",
            "tsa.csr",
            "-subj",
            "/CN=Vigil test TSA",
        ]));
        std::fs::write(
            dir.join("tsa.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\n",
        )
        .unwrap();
        run(openssl().args(["x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key"]).args([
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "tsa.ext",
            "-out",
            "tsa.pem",
        ]));
        std::fs::write(dir.join("serial"), "01\n").unwrap();
        std::fs::write(
            dir.join("ts.cnf"),
            format!(
                "[ tsa ]\ndefault_tsa = tsa1\n[ tsa1 ]\ndir = {}\nserial = $dir/serial\ncrypto_device = builtin\n\
                 signer_cert = $dir/tsa.pem\ncerts = $dir/tsa.pem\nsigner_key = $dir/tsa.key\nsigner_digest = sha256\n\
                 default_policy = 1.2.3.4.1\ndigests = sha256\naccuracy = secs:1\nordering = no\ntsa_name = yes\n\
                 ess_cert_id_chain = no\ness_cert_id_alg = sha256\n",
                dir.display()
            ),
        )
        .unwrap();
        Tsa {
            dir: dir.to_owned(),
            port: common::mqtt::free_port(),
            mode: Arc::new(Mutex::new(Mode::Token)),
            served: Arc::new(AtomicUsize::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/tsa", self.port)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Starts answering on its port.
    fn listen(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let (dir, mode, served, stop) = (self.dir.clone(), self.mode.clone(), self.served.clone(), self.stop.clone());
        self.thread = Some(std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        n += 1;
                        let mode = *mode.lock().unwrap();
                        answer(stream, &dir, mode, n);
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(e) => panic!("TSA accept: {e}"),
                }
            }
        }));
    }

    /// `openssl ts -verify` of a stored token against the manifest's SHA-256, trusting only the CA.
    fn verify(&self, entry: &Path) -> std::process::Output {
        let digest = vigil::hashing::sha256_hex(&std::fs::read(entry.join("manifest.json")).unwrap());
        Command::new("openssl")
            .args(["ts", "-verify", "-digest", &digest, "-in"])
            .arg(entry.join("timestamp.tsr"))
            .arg("-CAfile")
            .arg(self.dir.join("ca.pem"))
            .arg("-untrusted")
            .arg(self.dir.join("tsa.pem"))
            .output()
            .unwrap()
    }

    fn assert_verifies(&self, entry: &Path) {
        let out = self.verify(entry);
        assert!(
            out.status.success(),
            "openssl ts -verify refused the token of {}: {}{}",
            entry.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("Verification: OK"));
    }
}

impl Drop for Tsa {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One HTTP exchange: reads the POSTed TimeStampReq, answers per `mode`, closes.
fn answer(mut stream: TcpStream, dir: &Path, mode: Mode, n: usize) {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let (head_end, length) = loop {
        let got = stream.read(&mut buf).unwrap();
        assert!(got > 0, "the client closed before its request was complete");
        request.extend_from_slice(&buf[..got]);
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
            assert!(head.starts_with("post /tsa "), "{head}");
            assert!(head.contains("content-type: application/timestamp-query"), "{head}");
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse::<usize>().unwrap())
                .expect("no Content-Length");
            break (end + 4, length);
        }
    };
    while request.len() < head_end + length {
        let got = stream.read(&mut buf).unwrap();
        assert!(got > 0);
        request.extend_from_slice(&buf[..got]);
    }
    let mut query = request[head_end..head_end + length].to_vec();
    let (status, body) = match mode {
        Mode::Garbage => ("200 OK", b"<html>this is not a time-stamp token</html>".to_vec()),
        Mode::ServerError => ("500 Internal Server Error", b"TSA out of order".to_vec()),
        Mode::Token | Mode::OtherHash => {
            if mode == Mode::OtherHash {
                // The hashed message follows the SHA-256 AlgorithmIdentifier's NULL: OCTET STRING of 32.
                let at = query.windows(4).position(|w| w == [0x05, 0x00, 0x04, 0x20]).unwrap() + 4;
                query[at] ^= 0x01;
            }
            let (q, r) = (dir.join(format!("q{n}.tsq")), dir.join(format!("r{n}.tsr")));
            std::fs::write(&q, &query).unwrap();
            run(Command::new("openssl")
                .args(["ts", "-reply", "-config"])
                .arg(dir.join("ts.cnf"))
                .arg("-queryfile")
                .arg(&q)
                .arg("-out")
                .arg(&r));
            ("200 OK", std::fs::read(&r).unwrap())
        }
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/timestamp-reply\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body));
}

/// 2026-11-24T10:00:00Z: the recording's first frame.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_514_400)
}

/// A store with `n` bundles cut from a real 12 s recording, as the evidence stage writes them.
fn store_with_bundles(root: &Path, n: u64) -> (PathBuf, Vec<PathBuf>) {
    let recordings = root.join("recordings/ward-1");
    std::fs::create_dir_all(&recordings).unwrap();
    let segment = vigil::source::pipeline::segment_path(&recordings, t0());
    common::media::encode_clip(&segment, 320, 180, 10, 120, 20, |i| {
        let mut img = RgbImage::from_pixel(320, 180, image::Rgb([90, 110, 130]));
        common::media::add_noise(&mut img, 8, i as u64);
        img
    });
    let key = DeviceKey::init(&root.join("keys/device.pem")).unwrap();
    let evidence = root.join("evidence");
    let mut store = Store::open(&evidence, key, "hosp-1", "edge-1", vec![]).unwrap();
    let bundles = (1..=n)
        .map(|i| {
            let at = t0() + Duration::from_secs(3 * i);
            let request = EvidenceRequest {
                event_id: uuid::Uuid::now_v7(),
                kind: "camera_tamper".into(),
                camera: "ward-1".into(),
                camera_info: vigil::evidence::manifest::CameraIdentity::new("ward-1", "ward", None, "file:///ward-1"),
                at,
                onset: Some(at - Duration::from_secs(1)),
                thresholds: BTreeMap::from([("covered_secs".to_owned(), "1".to_owned())]),
                details: BTreeMap::new(),
                snapshot: RgbImage::from_pixel(320, 180, image::Rgb([20, 20, 20])),
                snapshot_at: at,
                detections: vec![],
                recordings: recordings.clone(),
                clip_from: at - Duration::from_secs(2),
                clip_to: at + Duration::from_secs(2),
            };
            store.write(&request).unwrap().dir
        })
        .collect();
    (evidence, bundles)
}

fn manifest_sha256(entry: &Path) -> [u8; 32] {
    let bytes = std::fs::read(entry.join("manifest.json")).unwrap();
    ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref().try_into().unwrap()
}

fn quick(url: &str) -> StamperSettings {
    let mut settings = StamperSettings::new(url, Duration::from_millis(400));
    settings.retry_first = Duration::from_millis(200);
    settings.poll_every = Duration::from_millis(100);
    settings
}

/// The worker (`Stamper::run`, as `vigil run` starts it) gets every entry a token from a real TSA;
/// `openssl ts -verify` accepts each against its manifest's SHA-256, and `check_token` reads the same
/// genTime the TSA wrote. The manifests record the clock's synchronisation state.
#[test]
fn tokens_from_a_real_tsa_verify_with_openssl() {
    let root = tempfile::tempdir().unwrap();
    let mut tsa = Tsa::new(&root.path().join("tsa"));
    tsa.listen();
    let (evidence, bundles) = store_with_bundles(root.path(), 2);
    let before = SystemTime::now() - Duration::from_secs(2);

    let stamper = Stamper::new(&evidence, quick(&tsa.url())).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = stop.clone();
        std::thread::spawn(move || stamper.run(&stop))
    };
    let stamped = || bundles.iter().all(|b| b.join("timestamp.tsr").exists());
    assert!(common::mqtt::wait(Duration::from_secs(20), stamped), "no tokens after 20 s");
    stop.store(true, Ordering::Relaxed);
    let stopping = Instant::now();
    worker.join().unwrap();
    assert!(stopping.elapsed() < Duration::from_secs(2), "the worker took {:?} to stop", stopping.elapsed());
    assert_eq!(tsa.served.load(Ordering::Relaxed), 2, "one request per entry");

    for bundle in &bundles {
        tsa.assert_verifies(bundle);
        let token = check_token(&std::fs::read(bundle.join("timestamp.tsr")).unwrap(), &manifest_sha256(bundle))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(token.gen_time_system >= before && token.gen_time_system <= SystemTime::now(), "{token:?}");
        assert_eq!(token.policy, "1.2.3.4.1");
        // What `vigil verify` reads: the same token, from the entry directory.
        let read = vigil::evidence::timestamp::entry_token(bundle, &manifest_sha256(bundle)).unwrap();
        assert_eq!(read, Some(token.clone()));
        // openssl's own reading of the token shows the same time.
        let text = Command::new("openssl")
            .args(["ts", "-reply", "-text", "-in"])
            .arg(bundle.join("timestamp.tsr"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout).into_owned();
        assert!(text.contains("Status: Granted."), "{text}");
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap();
        let clock = &manifest["clock"];
        assert_eq!(clock["source"], "adjtimex", "{manifest}");
        assert!(clock["synchronized"].is_boolean() && clock["max_error_us"].is_i64(), "{clock}");
        // Nothing else was added to the entry, and no temp directory is left in the store.
        let mut names: Vec<String> =
            std::fs::read_dir(bundle).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        let mut expected: Vec<String> = manifest["files"].as_object().unwrap().keys().cloned().collect();
        expected.extend(["manifest.json", "manifest.sig", "timestamp.tsr"].map(String::from));
        expected.sort();
        assert_eq!(names, expected);
    }
    // The store with its tokens still verifies (`timestamp.tsr` is a known file of an entry).
    let public = DeviceKey::load(&root.path().join("keys/device.pem")).unwrap().public();
    let report = vigil::evidence::verify::verify(std::slice::from_ref(&evidence), &public);
    assert_eq!(report.problems, Vec::<String>::new());
    assert_eq!(report.timestamped, bundles.len(), "vigil verify checks every entry's token: {}", report.verified());
    let leftovers: Vec<_> = std::fs::read_dir(&evidence)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert_eq!(leftovers, Vec::<String>::new());

    // The token is bound to the manifest: against another entry's hash, both refuse it.
    let other = manifest_sha256(&bundles[1]);
    let err = check_token(&std::fs::read(bundles[0].join("timestamp.tsr")).unwrap(), &other).unwrap_err();
    assert!(err.starts_with("the token is over another hash"), "{err}");
    std::fs::copy(bundles[1].join("timestamp.tsr"), bundles[0].join("timestamp.tsr")).unwrap();
    assert!(!tsa.verify(&bundles[0]).status.success(), "openssl accepted a token over another manifest");
    let report = vigil::evidence::verify::verify(std::slice::from_ref(&evidence), &public);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("timestamp token refused: timestamp.tsr: the token is over another hash")),
        "vigil verify accepted a token over another manifest: {:?}",
        report.problems
    );
}

/// Until a step that is not a backoff wait.
fn next_attempt(stamper: &mut Stamper) -> Step {
    let start = Instant::now();
    loop {
        match stamper.run_once() {
            Step::Backoff { retry_in, .. } => std::thread::sleep(retry_in),
            step => return step,
        }
        assert!(start.elapsed() < Duration::from_secs(10), "still backing off after 10 s");
    }
}

/// A TSA answering garbage, HTTP 500, or a real token over another hash: each is refused with its
/// named error, nothing is stored, and the entry is asked for again until a right token comes.
#[test]
fn garbage_or_a_token_over_another_hash_is_refused_and_retried() {
    let root = tempfile::tempdir().unwrap();
    let mut tsa = Tsa::new(&root.path().join("tsa"));
    tsa.listen();
    let (evidence, bundles) = store_with_bundles(root.path(), 1);
    let entry = &bundles[0];
    let mut stamper = Stamper::new(&evidence, quick(&tsa.url())).unwrap();

    tsa.set(Mode::Garbage);
    match next_attempt(&mut stamper) {
        Step::Failed { sequence: 1, error: StampFailure::Tsa(TsaError::Token(TokenError::Der(e))), .. } => {
            assert!(e.what.starts_with("expected TimeStampResp"), "{e}")
        }
        other => panic!("garbage was not refused as such: {other:?}"),
    }
    tsa.set(Mode::ServerError);
    match next_attempt(&mut stamper) {
        Step::Failed { error: e @ StampFailure::Tsa(TsaError::Http { status: 500, .. }), .. } => {
            assert_eq!(e.to_string(), "the TSA answered HTTP 500: TSA out of order")
        }
        other => panic!("HTTP 500 was not refused as such: {other:?}"),
    }
    tsa.set(Mode::OtherHash);
    match next_attempt(&mut stamper) {
        Step::Failed { error: e @ StampFailure::Tsa(TsaError::Token(TokenError::Imprint { .. })), .. } => {
            let text = e.to_string();
            let expected = vigil::hashing::hex(&manifest_sha256(entry));
            assert!(
                text.starts_with("the TSA's reply is not a token for this request: the token is over another hash")
                    && text.ends_with(&format!("the manifest's SHA-256 is {expected}")),
                "{text}"
            );
        }
        other => panic!("a token over another hash was not refused: {other:?}"),
    }
    assert!(!entry.join("timestamp.tsr").exists(), "a refused reply was stored");
    assert_eq!(stamper.waiting(), 1);

    tsa.set(Mode::Token);
    match next_attempt(&mut stamper) {
        Step::Stamped { sequence: 1, .. } => {}
        other => panic!("no token once the TSA answers right: {other:?}"),
    }
    assert!(matches!(stamper.run_once(), Step::Idle));
    tsa.assert_verifies(entry);
    assert_eq!(tsa.served.load(Ordering::Relaxed), 4);
}

/// `vigil run` with a camera whose lens gets covered and a TSA that is down: the tamper bundle is
/// written and announced without a token, the agent says once at WARN that the TSA cannot be reached
/// (naming it); once the TSA is up, the retry gets the token, `openssl ts -verify` accepts it, and
/// the agent says so at INFO and stops cleanly.
#[test]
fn tsa_down_at_first_then_the_token_arrives() {
    let root = tempfile::tempdir().unwrap();
    let mut tsa = Tsa::new(&root.path().join("tsa"));
    // 8 s of room, then 8 s covered, looped.
    let clip = root.path().join("covered.mp4");
    let room = vigil::analyze::image::frame_from(
        &vigil::analyze::image::load_rgb(&common::face_images().join("obama.jpg")).unwrap(),
        640,
        360,
    );
    common::media::encode_clip(&clip, 640, 360, 10, 160, 10, |i| {
        let mut img = if i >= 80 { RgbImage::from_pixel(640, 360, image::Rgb([8, 8, 8])) } else { room.clone() };
        common::media::add_noise(&mut img, 6, i as u64);
        img
    });
    let data_dir = root.path().join("state");
    let config = root.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nid = \"hosp\"\ndevice_id = \"edge\"\n[storage]\ndata_dir = \"{}\"\n[tamper]\ncovered_secs = 2\n\
             [evidence]\npre_roll_secs = 3\npost_roll_secs = 2\ntsa_url = \"{}\"\ntsa_retry_max_secs = 1\n\
             [[cameras]]\nid = \"ward\"\nrole = \"settlement_window\"\nurl = \"file://{}\"\nloop = true\n",
            data_dir.display(),
            tsa.url(),
            clip.display()
        ),
    )
    .unwrap();
    run(common::vigil().args(["keys", "init", "--config"]).arg(&config));
    let agent = Agent::start(&config, root.path().join("agent.log"));

    let evidence = data_dir.join("evidence");
    let first_bundle =
        || vigil::evidence::store::bundles(&evidence).ok().and_then(|b| b.first().map(|(_, p)| p.clone()));
    assert!(
        common::mqtt::wait(Duration::from_secs(90), || agent.log_text().contains("evidence bundle announced")),
        "no bundle announced:\n{}",
        agent.log_text()
    );
    let bundle = first_bundle().unwrap();
    let warned = |log: &str| log.contains("no timestamp token from the TSA") && log.contains(&tsa.url());
    assert!(
        common::mqtt::wait(Duration::from_secs(10), || warned(&agent.log_text())),
        "no WARN:\n{}",
        agent.log_text()
    );
    assert!(!bundle.join("timestamp.tsr").exists());
    // Retried every second meanwhile, said once.
    std::thread::sleep(Duration::from_secs(3));
    let log = agent.log_text();
    let warn_line = log.lines().find(|l| l.contains("no timestamp token from the TSA")).unwrap().to_owned();
    assert!(warn_line.contains("WARN") && warn_line.contains("cannot reach the TSA"), "{warn_line}");
    assert_eq!(log.matches("no timestamp token from the TSA").count(), 1, "{log}");

    tsa.listen();
    assert!(
        common::mqtt::wait(Duration::from_secs(15), || bundle.join("timestamp.tsr").exists()),
        "no token 15 s after the TSA came up:\n{}",
        agent.log_text()
    );
    tsa.assert_verifies(&bundle);
    assert!(common::mqtt::wait(Duration::from_secs(5), || agent
        .log_text()
        .contains("timestamp tokens are obtained again")));
    let log = agent.stop();
    assert!(log.contains("stopped cleanly"), "{log}");
    common::agent::assert_evidence_verifies(&config, &evidence);

    // The announcement went to the outbox before the token existed.
    let outbox = vigil::outbox::Outbox::open(&data_dir.join("outbox.sqlite"), 100_000).unwrap();
    let sha256 = vigil::hashing::hex(&manifest_sha256(&bundle));
    let announced =
        outbox.pending_after(0, 1000).unwrap().iter().any(|r| {
            r.topic.ends_with("/events/evidence_ready") && String::from_utf8_lossy(&r.payload).contains(&sha256)
        });
    assert!(announced, "no evidence_ready for {} in the outbox", bundle.display());
}
