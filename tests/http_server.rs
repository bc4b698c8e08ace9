//! The phones' HTTPS server, in process, over real TLS (its self-signed certificate, trusted by the
//! test as a phone would be told to trust it) on 127.0.0.1: enrolment with a one-time token, signed
//! requests (ECDSA P-256 as WebCrypto makes them), every refusal with its status and code, the limits
//! (size before the body is read, rate, timeout), the access log, and a graceful stop that lets an
//! upload being checked finish.
//!
//! The check-in service behind the server is the runtime's (tests/checkins.rs runs it end to end);
//! here a recorder stands in for it, so the test sees exactly what the server hands over.

mod common;

use std::io::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::phone::TestPhone;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vigil::http::{HttpSettings, PhoneApi, Server};
use vigil::phones::protocol::{get_message, upload_message};
use vigil::phones::registry::{NewPhone, Registry};
use vigil::phones::service::{Answer, Checkins, SignedUpload, SubmitError, WardView};
use vigil::phones::{Mode, Phone, UploadMeta};

/// What the server handed to the check-in service.
#[derive(Default)]
struct Recorder {
    uploads: Mutex<Vec<SignedUpload>>,
    /// Uploads handed over, counted as they arrive (before the delay).
    entered: std::sync::atomic::AtomicUsize,
    /// How long a check takes (the graceful-stop test makes it slow).
    delay: Duration,
}

impl Checkins for Recorder {
    fn submit(&self, upload: SignedUpload) -> Result<Answer, SubmitError> {
        self.entered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(self.delay);
        let answer = Answer {
            capture_id: upload.meta.capture_id,
            event_id: uuid::Uuid::now_v7(),
            verdict: if upload.revoked { "rejected" } else { "verified" },
            late: false,
            repeated: false,
            checks: Vec::new(),
        };
        self.uploads.lock().unwrap().push(upload);
        Ok(answer)
    }

    fn ward_view(&self, phone: &Phone) -> WardView {
        WardView {
            phone: phone.id.clone(),
            phone_name: phone.name.clone(),
            mode: phone.mode,
            physician: None,
            ward: phone.ward.clone(),
            ward_name: "Ward 3".into(),
            inpatients: Vec::new(),
        }
    }
}

/// Every log line of this test binary (all tests share the subscriber).
fn log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .init();
        buffer
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Served {
    server: Server,
    registry: Arc<Registry>,
    checkins: Arc<Recorder>,
    tls: tokio_rustls::TlsConnector,
    dir: tempfile::TempDir,
}

async fn start(extra: &str, delay: Duration) -> Served {
    log();
    let dir = tempfile::tempdir().unwrap();
    let settings: HttpSettings = toml::from_str(&format!("listen = \"127.0.0.1:0\"\n{extra}")).unwrap();
    assert!(settings.problems().is_empty(), "{:?}", settings.problems());
    let registry = Arc::new(Registry::open(&Registry::path_in(dir.path())).unwrap());
    let checkins = Arc::new(Recorder { delay, ..Default::default() });
    let api = PhoneApi {
        registry: registry.clone(),
        checkins: checkins.clone(),
        skew: Duration::from_secs(300),
        max_body_bytes: settings.max_body_bytes,
    };
    let server = Server::start(&settings, dir.path(), api, None, None).unwrap();
    // The phone is told to trust this certificate (its fingerprint was logged).
    let pem = std::fs::read(dir.path().join("http/cert.pem")).unwrap();
    let cert = CertificateDer::from_pem_slice(&pem).unwrap();
    assert_eq!(vigil::http::tls::fingerprint(&cert), server.cert.as_ref().unwrap().fingerprint);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config));
    Served { server, registry, checkins, tls, dir }
}

/// A response, as read off the wire.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or("").to_owned()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl Served {
    /// One request on its own TLS connection: `head` is the request line and headers (without the final
    /// blank line), `body` is sent after them as is.
    async fn send(&self, head: &str, body: &[u8]) -> Reply {
        let tcp = tokio::net::TcpStream::connect(self.server.local_addr).await.unwrap();
        let name = ServerName::IpAddress(self.server.local_addr.ip().into());
        let mut tls = self.tls.connect(name, tcp).await.unwrap();
        let request = format!("{head}\r\nHost: box\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).await.unwrap();
        // The server may answer (413) and close before the body is sent: that is the point.
        let _ = tls.write_all(body).await;
        let _ = tls.flush().await;
        read_reply(&mut tls).await
    }

    async fn request(&self, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Reply {
        let mut head = format!("{method} {path} HTTP/1.1\r\nContent-Length: {}", body.len());
        for (name, value) in headers {
            head.push_str(&format!("\r\n{name}: {value}"));
        }
        self.send(&head, body).await
    }

    fn invite(&self, mode: Mode) -> (String, String) {
        let physician = (mode == Mode::Physician).then(|| "dr-wang".to_owned());
        let new = NewPhone { ward: "ward-3".into(), name: "Li Na".into(), mode, physician };
        let invitation = self.registry.add(new, Duration::from_secs(600), SystemTime::now()).unwrap();
        (invitation.phone.id, invitation.token)
    }

    async fn enrol(&self, token: &str, key: &TestPhone) -> Reply {
        let body = json!({"token": token, "public_key": STANDARD.encode(&key.spki)}).to_string();
        self.request("POST", "/api/phones/enrol", &[("Content-Type", "application/json".into())], body.as_bytes()).await
    }

    /// An enrolled bedside phone.
    async fn phone(&self) -> TestPhone {
        let (id, token) = self.invite(Mode::Bedside);
        let mut phone = TestPhone::new();
        assert_eq!(self.enrol(&token, &phone).await.status, 200);
        phone.id = id;
        phone
    }

    async fn upload(&self, phone: &TestPhone, photo: &[u8], signed_photo: &[u8]) -> Reply {
        let (meta, signature) = phone.sign_upload(signed_photo);
        let headers = [
            ("Content-Type", "image/jpeg".to_owned()),
            ("X-Vigil-Phone", phone.id.clone()),
            ("X-Vigil-Meta", meta),
            ("X-Vigil-Signature", signature),
        ];
        self.request("POST", "/api/phones/checkins", &headers, photo).await
    }
}

async fn read_reply(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Reply {
    let mut raw = Vec::new();
    // A server that closes without TLS close_notify (after an early 413) ends the read with an error.
    let _ = stream.read_to_end(&mut raw).await;
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
        panic!("no complete response: {:?}", String::from_utf8_lossy(&raw));
    });
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())).collect();
    Reply { status, headers, body: raw[end + 4..].to_vec() }
}

impl TestPhone {
    /// The X-Vigil-Meta and X-Vigil-Signature of an upload of `photo`.
    fn sign_upload(&self, photo: &[u8]) -> (String, String) {
        let meta = UploadMeta {
            capture_id: uuid::Uuid::new_v4(),
            mode: Mode::Bedside,
            patient: Some("ins-3301958842".into()),
            captured_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            position: None,
            photo_sha256: vigil::hashing::sha256_hex(photo),
        };
        let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&meta).unwrap());
        let signature = self.sign(&upload_message(&header));
        (header, signature)
    }

    fn signed_get(&self, path: &str, at: SystemTime) -> Vec<(&'static str, String)> {
        let time = humantime::format_rfc3339_millis(at).to_string();
        let signature = self.sign(&get_message(path, &time));
        vec![("X-Vigil-Phone", self.id.clone()), ("X-Vigil-Time", time), ("X-Vigil-Signature", signature)]
    }
}

const PHOTO: &[u8] = b"\xff\xd8\xff\xe0 a photo as the phone took it \xff\xd9";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_enrols_once_and_the_phone_signs_what_it_sends() {
    let server = start("", Duration::ZERO).await;
    let (id, token) = server.invite(Mode::Bedside);
    let mut phone = TestPhone::new();
    let enrolled = server.enrol(&token, &phone).await;
    assert_eq!(enrolled.status, 200, "{:?}", enrolled);
    assert_eq!(enrolled.json(), json!({"phone": {"id": id, "ward": "ward-3", "name": "Li Na", "mode": "bedside"}}));
    phone.id = id.clone();
    let again = server.enrol(&token, &TestPhone::new()).await;
    assert_eq!((again.status, again.code()), (410, "token_used".into()));
    let unknown = server.enrol("not-a-token", &TestPhone::new()).await;
    assert_eq!((unknown.status, unknown.code()), (404, "unknown_token".into()));
    let (_, fresh) = server.invite(Mode::Bedside);
    let bad_key = server
        .request("POST", "/api/phones/enrol", &[], json!({"token": fresh, "public_key": "AAAA"}).to_string().as_bytes())
        .await;
    assert_eq!((bad_key.status, bad_key.code()), (400, "bad_request".into()));
    assert!(bad_key.json()["error"]["message"].as_str().unwrap().contains("P-256"), "{:?}", bad_key.json());

    let view =
        server.request("GET", "/api/phones/ward", &phone.signed_get("/api/phones/ward", SystemTime::now()), b"").await;
    assert_eq!(view.status, 200, "{view:?}");
    assert_eq!(view.json()["phone"], json!(id));
    // A recorded GET replayed later (or a phone with a wrong clock) is refused.
    let stale = phone.signed_get("/api/phones/ward", SystemTime::now() - Duration::from_secs(600));
    let stale = server.request("GET", "/api/phones/ward", &stale, b"").await;
    assert_eq!((stale.status, stale.code()), (401, "clock_skew".into()));

    let answer = server.upload(&phone, PHOTO, PHOTO).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["verdict"], "verified");
    {
        let uploads = server.checkins.uploads.lock().unwrap();
        assert_eq!(uploads.len(), 1);
        assert_eq!(uploads[0].photo, PHOTO, "the photo is handed over byte for byte");
        assert_eq!((uploads[0].phone.id.as_str(), uploads[0].revoked), (id.as_str(), false));
        assert_eq!(uploads[0].content_type.as_deref(), Some("image/jpeg"));
    }

    let root = server.request("GET", "/", &[], b"").await;
    assert_eq!((root.status, root.header("location")), (303, Some("/ward/")));
    let missing = server.request("GET", "/api/nothing", &[], b"").await;
    assert_eq!((missing.status, missing.code()), (404, "not_found".into()));
    let wrong_method = server.request("GET", "/api/phones/checkins", &[], b"").await;
    assert_eq!((wrong_method.status, wrong_method.code()), (405, "method_not_allowed".into()));

    // The access log: one line per request with who and what, never the token or a signature.
    let text = String::from_utf8_lossy(&log().lock().unwrap()).into_owned();
    let line = text
        .lines()
        .find(|l| {
            l.contains("http request") && l.contains(&format!("phone={id}")) && l.contains("path=/api/phones/checkins")
        })
        .unwrap_or_else(|| panic!("no access log line for the upload:\n{text}"));
    for field in ["method=POST", "status=200", "client=127.0.0.1", "ms=", "bytes=", "request_bytes="] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
    assert!(!text.contains(&token), "the enrolment token was logged");
    let (_, signature) = phone.sign_upload(PHOTO);
    assert!(!text.contains(&signature[..20]));
    assert!(text.lines().any(|l| l.contains("status=410") && l.contains("token_used")), "refusals are logged");
    server.server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_unsigned_revoked_and_tampered_uploads_are_refused() {
    let server = start("", Duration::ZERO).await;
    let phone = server.phone().await;

    let mut stranger = TestPhone::new();
    stranger.id = "ph-nobodyhere".into();
    let unknown = server.upload(&stranger, PHOTO, PHOTO).await;
    assert_eq!((unknown.status, unknown.code()), (401, "unknown_phone".into()));

    // Signed by another key under this phone's id.
    let mut impostor = TestPhone::new();
    impostor.id = phone.id.clone();
    let forged = server.upload(&impostor, PHOTO, PHOTO).await;
    assert_eq!((forged.status, forged.code()), (401, "bad_signature".into()));

    // Not enrolled yet.
    let (pending, _) = server.invite(Mode::Bedside);
    let mut waiting = TestPhone::new();
    waiting.id = pending;
    let early = server.upload(&waiting, PHOTO, PHOTO).await;
    assert_eq!((early.status, early.code()), (401, "not_enrolled".into()));

    // The photo is not the one whose hash was signed.
    let swapped = server.upload(&phone, b"\xff\xd8 another photo \xff\xd9", PHOTO).await;
    assert_eq!((swapped.status, swapped.code()), (400, "photo_hash_mismatch".into()));
    assert!(server.checkins.uploads.lock().unwrap().is_empty(), "nothing refused reaches the checks");

    server.registry.revoke(&phone.id, "lost on the ward", SystemTime::now()).unwrap();
    let revoked = server.upload(&phone, PHOTO, PHOTO).await;
    assert_eq!((revoked.status, revoked.code()), (403, "phone_revoked".into()));
    assert_eq!(revoked.json()["error"]["details"]["verdict"], "rejected", "{:?}", revoked.json());
    {
        let uploads = server.checkins.uploads.lock().unwrap();
        assert!(uploads.len() == 1 && uploads[0].revoked, "a revoked phone's upload is judged (and recorded) as such");
    }
    let view =
        server.request("GET", "/api/phones/ward", &phone.signed_get("/api/phones/ward", SystemTime::now()), b"").await;
    assert_eq!((view.status, view.code()), (403, "phone_revoked".into()));

    let text = String::from_utf8_lossy(&log().lock().unwrap()).into_owned();
    assert!(
        text.lines().any(|l| l.contains("WARN") && l.contains("bad signature") && l.contains("client=127.0.0.1")),
        "a refused sender is logged at WARN with its address"
    );
    server.server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_upload_is_refused_before_its_body_is_read() {
    let server = start("max_body_bytes = 65536", Duration::ZERO).await;
    let phone = server.phone().await;
    let (meta, signature) = phone.sign_upload(PHOTO);
    let head = format!(
        "POST /api/phones/checkins HTTP/1.1\r\nContent-Type: image/jpeg\r\nX-Vigil-Phone: {}\r\nX-Vigil-Meta: \
         {meta}\r\nX-Vigil-Signature: {signature}",
        phone.id
    );
    // Declared 50 MB, none of it sent: the answer comes anyway (the server did not wait for the body).
    let declared = server.send(&format!("{head}\r\nContent-Length: 50000000"), b"").await;
    assert_eq!((declared.status, declared.code()), (413, "too_large".into()));
    // No declared length: cut off while reading, at the limit.
    let mut chunked = Vec::new();
    for _ in 0..3 {
        chunked.extend_from_slice(format!("{:x}\r\n", 40_000).as_bytes());
        chunked.extend_from_slice(&[0u8; 40_000]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let streamed = server.send(&format!("{head}\r\nTransfer-Encoding: chunked"), &chunked).await;
    assert_eq!((streamed.status, streamed.code()), (413, "too_large".into()));
    assert!(server.checkins.uploads.lock().unwrap().is_empty());
    server.server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_rate_is_told_when_to_come_back() {
    let server = start("rate_limit_per_minute = 5", Duration::ZERO).await;
    for _ in 0..5 {
        assert_eq!(server.request("GET", "/", &[], b"").await.status, 303);
    }
    let limited = server.request("GET", "/", &[], b"").await;
    assert_eq!((limited.status, limited.code()), (429, "rate_limited".into()));
    let after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=12).contains(&after), "Retry-After {after}");
    server.server.stop(Duration::from_secs(5)).await;
}

/// A request that does not finish within `request_timeout_secs` is answered 408; a stop lets an upload
/// being checked finish and answers it, then refuses connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_time_out_and_a_stop_finishes_uploads_in_flight() {
    let server = start("request_timeout_secs = 5", Duration::from_millis(1500)).await;
    let phone = server.phone().await;
    let (meta, signature) = phone.sign_upload(PHOTO);
    let head = format!(
        "POST /api/phones/checkins HTTP/1.1\r\nX-Vigil-Phone: {}\r\nX-Vigil-Meta: {meta}\r\nX-Vigil-Signature: \
         {signature}\r\nContent-Length: {}",
        phone.id,
        PHOTO.len()
    );
    // Half the body, then silence.
    let slow = server.send(&head, &PHOTO[..10]).await;
    assert_eq!((slow.status, slow.code()), (408, "timeout".into()));

    let in_flight = {
        let (tls, addr) = (server.tls.clone(), server.server.local_addr);
        let request = format!("{head}\r\nHost: box\r\nConnection: close\r\n\r\n").into_bytes();
        tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut tls = tls.connect(ServerName::IpAddress(addr.ip().into()), tcp).await.unwrap();
            tls.write_all(&request).await.unwrap();
            tls.write_all(PHOTO).await.unwrap();
            read_reply(&mut tls).await
        })
    };
    // The upload is being checked (the recorder takes 1.5 s) when the stop comes.
    while server.checkins.entered.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(!in_flight.is_finished(), "the upload was answered before it was checked");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let addr = server.server.local_addr;
    assert!(server.server.stop(Duration::from_secs(10)).await, "the stop waited for the upload");
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(server.checkins.uploads.lock().unwrap().len(), 1);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still accepting after the stop");
}

/// Plain HTTP: served on loopback when asked; refused by validation on an address phones reach, unless
/// explicitly allowed (a TLS proxy in front).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_only_on_loopback_unless_explicitly_allowed() {
    let settings = |text: &str| -> HttpSettings { toml::from_str(text).unwrap() };
    let problems = settings("listen = \"0.0.0.0:8080\"\nplain_http = true").problems();
    assert!(problems.len() == 1 && problems[0].0 == "plain_http", "{problems:?}");
    assert!(settings("listen = \"0.0.0.0:8080\"\nplain_http = true\ninsecure_plain_http = true").problems().is_empty());

    log();
    let dir = tempfile::tempdir().unwrap();
    let plain = settings("listen = \"127.0.0.1:0\"\nplain_http = true");
    assert!(plain.problems().is_empty());
    let api = PhoneApi {
        registry: Arc::new(Registry::open(&Registry::path_in(dir.path())).unwrap()),
        checkins: Arc::new(Recorder::default()),
        skew: Duration::from_secs(300),
        max_body_bytes: plain.max_body_bytes,
    };
    let server = Server::start(&plain, dir.path(), api, None, None).unwrap();
    assert!(server.cert.is_none() && !dir.path().join("http").exists());
    let mut tcp = tokio::net::TcpStream::connect(server.local_addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: box\r\nConnection: close\r\n\r\n").await.unwrap();
    let reply = read_reply(&mut tcp).await;
    assert_eq!(reply.status, 303);
    server.stop(Duration::from_secs(5)).await;
    std::io::stderr().flush().unwrap();
}

/// `vigil phones` works beside the running server on the same registry: a phone added on the command
/// line enrols over HTTPS with the printed link; revoked on the command line, the server refuses it at
/// its next request. Mistakes exit 2 naming what is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_adds_lists_and_revokes_phones_of_the_running_server() {
    let server = start("", Duration::ZERO).await;
    let config = server.dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nid = \"h\"\ndevice_id = \"d\"\n[storage]\ndata_dir = {:?}\n[http]\n\
             public_url = \"https://vigil-ward3.lan:8443\"\n[[wards]]\nid = \"ward-3\"\n\
             geofence = {{ center = [31.2, 121.4], radius_m = 80 }}\n",
            server.dir.path()
        ),
    )
    .unwrap();
    let vigil = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let png = server.dir.path().join("qr.png");
    let (code, stdout, stderr) =
        vigil(&["phones", "add", "--ward", "ward-3", "--name", "Li Na", "--qr-png", png.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    let link = stdout.lines().find(|l| l.starts_with("https://")).unwrap_or_else(|| panic!("{stdout}"));
    let token = link.strip_prefix("https://vigil-ward3.lan:8443/ward/#enrol=").unwrap_or_else(|| panic!("{link}"));
    assert!(stdout.contains('▀') || stdout.contains('▄'), "a QR code in the terminal:\n{stdout}");
    let qr = image::open(&png).unwrap().to_luma8();
    assert!(qr.width() > 200 && qr.pixels().any(|p| p.0[0] == 0), "a black-on-white PNG");

    let mut phone = TestPhone::new();
    let enrolled = server.enrol(token, &phone).await;
    assert_eq!(enrolled.status, 200, "{enrolled:?}");
    phone.id = enrolled.json()["phone"]["id"].as_str().unwrap().to_owned();
    let (_, listed, _) = vigil(&["phones", "list", "--json"]);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["id"], json!(phone.id));
    assert!(listed[0]["enrolled_at"].is_string() && listed[0]["key_sha256"].is_string(), "{listed}");

    let (code, stdout, stderr) = vigil(&["phones", "revoke", &phone.id, "--reason", "lost on ward 3"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("revoked"), "{stdout}");
    let view =
        server.request("GET", "/api/phones/ward", &phone.signed_get("/api/phones/ward", SystemTime::now()), b"").await;
    assert_eq!((view.status, view.code()), (403, "phone_revoked".into()));
    let (_, table, _) = vigil(&["phones", "list"]);
    assert!(table.contains("revoked") && table.contains("lost on ward 3"), "{table}");

    let (code, _, stderr) = vigil(&["phones", "add", "--ward", "ward-9", "--name", "X"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("no ward \"ward-9\"") && stderr.contains("ward-3"), "{stderr}");
    let (code, _, stderr) = vigil(&["phones", "revoke", "ph-nobodyhere", "--reason", "x"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("no phone \"ph-nobodyhere\""), "{stderr}");
    server.server.stop(Duration::from_secs(5)).await;
}
