//! `vigil-demo-phone`: a ward phone without a browser, for the demo and the check-in benchmark. It
//! speaks the protocol of docs/ward-phones.md exactly as the phone page does: an ECDSA P-256 key made
//! on the "phone", enrolled with a one-time link, every upload signed.
//!
//!     vigil-demo-phone enrol --link URL --ca CERT.pem --state FILE
//!     vigil-demo-phone ward  --state FILE
//!     vigil-demo-phone send  --state FILE --photo P [--patient ID] --lat D --lon D [--accuracy M]
//!                            [--captured-secs-ago S]
//!     vigil-demo-phone bench --state FILE --photo P [--patient ID] --lat D --lon D --count N --concurrency C
//!
//! `--ca` is the box's certificate (its self-signed one: `<data_dir>/http/cert.pem`), trusted as the
//! only root: the phone talks to this box and no other. The state file holds the phone's id, the box's
//! address and certificate, and its private key (PKCS#8): it is a test phone's, not a real one's.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

/// The DER header of a P-256 `SubjectPublicKeyInfo` before its 65-byte uncompressed point.
const P256_SPKI_HEADER: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn need(args: &[String], name: &str) -> Result<String, Failure> {
    arg(args, name).ok_or_else(|| format!("missing {name}").into())
}

fn number(args: &[String], name: &str) -> Result<Option<f64>, Failure> {
    arg(args, name).map(|v| v.parse::<f64>().map_err(|e| format!("{name} {v:?}: {e}").into())).transpose()
}

/// A phone: its id, the box it is enrolled with, and its key.
struct Phone {
    id: String,
    base: String,
    agent: ureq::Agent,
    key: EcdsaKeyPair,
}

fn agent(ca_pem: &str) -> Result<ureq::Agent, Failure> {
    let der = pem_body(ca_pem).ok_or("--ca: not a PEM certificate")?;
    let cert = ureq::tls::Certificate::from_der(&der).to_owned();
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]))
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build();
    let config = ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build();
    Ok(config.into())
}

fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    STANDARD.decode(body).ok()
}

fn read_json(response: ureq::http::Response<ureq::Body>) -> Result<(u16, Value), Failure> {
    let status = response.status().as_u16();
    let text = response.into_body().read_to_string()?;
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, value))
}

fn enrol(args: &[String]) -> Result<(), Failure> {
    let link = need(args, "--link")?;
    let ca = std::fs::read_to_string(need(args, "--ca")?)?;
    let state = PathBuf::from(need(args, "--state")?);
    let (base, token) =
        link.split_once("/ward/#enrol=").ok_or("--link: not an enrolment link (…/ward/#enrol=TOKEN)")?;
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(|_| "key generation")?;
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).map_err(|_| "key parsing")?;
    let mut spki = P256_SPKI_HEADER.to_vec();
    spki.extend_from_slice(key.public_key().as_ref());
    let body = json!({"token": token, "public_key": STANDARD.encode(&spki)});
    let response = agent(&ca)?
        .post(format!("{base}/api/phones/enrol"))
        .header("Content-Type", "application/json")
        .send(body.to_string())?;
    let (status, answer) = read_json(response)?;
    if status != 200 {
        return Err(format!("enrolment refused: HTTP {status} {answer}").into());
    }
    let id = answer["phone"]["id"].as_str().ok_or("enrolment answer without phone.id")?;
    let saved = json!({"id": id, "base": base, "ca": ca, "pkcs8": STANDARD.encode(pkcs8.as_ref())});
    std::fs::write(&state, serde_json::to_vec_pretty(&saved)?)?;
    println!("{}", serde_json::to_string(&answer)?);
    Ok(())
}

fn load(state: &Path) -> Result<Phone, Failure> {
    let saved: Value = serde_json::from_slice(&std::fs::read(state)?)?;
    let text = |k: &str| saved[k].as_str().map(str::to_owned).ok_or(format!("{}: no {k}", state.display()));
    let pkcs8 = STANDARD.decode(text("pkcs8")?)?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &SystemRandom::new())
        .map_err(|_| "state: bad key")?;
    Ok(Phone { id: text("id")?, base: text("base")?, agent: agent(&text("ca")?)?, key })
}

impl Phone {
    fn sign(&self, message: &[u8]) -> Result<String, Failure> {
        let signature = self.key.sign(&SystemRandom::new(), message).map_err(|_| "signing failed")?;
        Ok(URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    fn ward(&self) -> Result<(u16, Value), Failure> {
        let path = "/api/phones/ward";
        let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let signature = self.sign(format!("vigil-get-v1\n{path}\n{time}").as_bytes())?;
        let response = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("X-Vigil-Phone", &self.id)
            .header("X-Vigil-Time", &time)
            .header("X-Vigil-Signature", &signature)
            .call()?;
        read_json(response)
    }

    /// One upload, signed as the page signs it; (HTTP status, answer).
    fn send(&self, photo: &[u8], upload: &Upload) -> Result<(u16, Value), Failure> {
        let mut meta = json!({
            "capture_id": uuid::Uuid::new_v4().to_string(),
            "mode": if upload.patient.is_some() { "bedside" } else { "physician" },
            "captured_at": humantime::format_rfc3339_millis(upload.captured_at).to_string(),
            "position": {"lat": upload.lat, "lon": upload.lon, "accuracy_m": upload.accuracy},
            "photo_sha256": hex(ring::digest::digest(&ring::digest::SHA256, photo).as_ref()),
        });
        if let Some(patient) = &upload.patient {
            meta["patient"] = json!(patient);
        }
        let meta = URL_SAFE_NO_PAD.encode(meta.to_string());
        let signature = self.sign(format!("vigil-checkin-v1\n{meta}").as_bytes())?;
        let content_type = if photo.starts_with(b"\x89PNG") { "image/png" } else { "image/jpeg" };
        let response = self
            .agent
            .post(format!("{}/api/phones/checkins", self.base))
            .header("Content-Type", content_type)
            .header("X-Vigil-Phone", &self.id)
            .header("X-Vigil-Meta", &meta)
            .header("X-Vigil-Signature", &signature)
            .send(photo)?;
        read_json(response)
    }
}

/// The verdict as the phone page shows it, in one line per check.
fn print_answer(status: u16, answer: &Value) {
    let Some(checks) = answer["checks"].as_array() else {
        println!("    HTTP {status}: {answer}");
        return;
    };
    let late = if answer["late"] == true { " (late)" } else { "" };
    println!("    HTTP {status}: {}{late}, event {}", answer["verdict"].as_str().unwrap_or("?"), answer["event_id"]);
    for check in checks {
        let mark = match check["outcome"].as_str() {
            Some("passed") => "ok  ",
            Some("failed") => "FAIL",
            _ => "skip",
        };
        println!(
            "      {mark} {:<10} {}",
            check["name"].as_str().unwrap_or("?"),
            check["detail"].as_str().unwrap_or("")
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Upload {
    patient: Option<String>,
    lat: f64,
    lon: f64,
    accuracy: f64,
    captured_at: SystemTime,
}

fn upload(args: &[String]) -> Result<Upload, Failure> {
    let ago = number(args, "--captured-secs-ago")?.unwrap_or(0.0);
    Ok(Upload {
        patient: arg(args, "--patient"),
        lat: number(args, "--lat")?.ok_or("missing --lat")?,
        lon: number(args, "--lon")?.ok_or("missing --lon")?,
        accuracy: number(args, "--accuracy")?.unwrap_or(12.0),
        captured_at: SystemTime::now() - Duration::from_secs_f64(ago.max(0.0)),
    })
}

/// Sends `--count` uploads from `--concurrency` threads; prints the rate and latency percentiles.
fn bench(phone: Phone, photo: Vec<u8>, upload: Upload, args: &[String]) -> Result<(), Failure> {
    let count = number(args, "--count")?.unwrap_or(50.0) as usize;
    let concurrency = (number(args, "--concurrency")?.unwrap_or(4.0) as usize).max(1);
    let (phone, photo, upload) = (Arc::new(phone), Arc::new(photo), Arc::new(upload));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (phone, photo, upload, next) = (phone.clone(), photo.clone(), upload.clone(), next.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                    let sent = Instant::now();
                    let status = match phone.send(&photo, &upload) {
                        Ok((status, _)) => status,
                        Err(_) => 0,
                    };
                    seen.push((status, sent.elapsed()));
                }
                seen
            })
        })
        .collect();
    let mut results: Vec<(u16, Duration)> = workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect();
    let wall = started.elapsed();
    let answered = results.iter().filter(|(s, _)| *s == 200).count();
    results.sort_by_key(|(_, d)| *d);
    let pct = |p: f64| results[((results.len() as f64 * p).ceil() as usize).clamp(1, results.len()) - 1].1;
    let statuses: std::collections::BTreeMap<u16, usize> = results.iter().fold(Default::default(), |mut m, (s, _)| {
        *m.entry(*s).or_default() += 1;
        m
    });
    println!(
        "{}",
        json!({
            "uploads": results.len(),
            "answered_200": answered,
            "statuses": statuses,
            "concurrency": concurrency,
            "wall_secs": format!("{:.2}", wall.as_secs_f64()),
            "checkins_per_sec": format!("{:.2}", answered as f64 / wall.as_secs_f64()),
            "latency_p50_ms": pct(0.50).as_millis(),
            "latency_p99_ms": pct(0.99).as_millis(),
            "latency_max_ms": results.last().map_or(0, |(_, d)| d.as_millis()),
        })
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = (|| -> Result<(), Failure> {
        match args.first().map(String::as_str) {
            Some("enrol") => enrol(&args),
            Some("ward") => {
                let (status, answer) = load(Path::new(&need(&args, "--state")?))?.ward()?;
                println!("{}", serde_json::to_string(&answer)?);
                if status == 200 { Ok(()) } else { Err(format!("HTTP {status}").into()) }
            }
            Some("send") => {
                let phone = load(Path::new(&need(&args, "--state")?))?;
                let photo = std::fs::read(need(&args, "--photo")?)?;
                let (status, answer) = phone.send(&photo, &upload(&args)?)?;
                print_answer(status, &answer);
                Ok(())
            }
            Some("bench") => {
                let phone = load(Path::new(&need(&args, "--state")?))?;
                let photo = std::fs::read(need(&args, "--photo")?)?;
                bench(phone, photo, upload(&args)?, &args)
            }
            _ => Err("usage: vigil-demo-phone enrol|ward|send|bench … (see the source's header)".into()),
        }
    })();
    if let Err(e) = result {
        eprintln!("vigil-demo-phone: {e}");
        std::process::exit(1);
    }
}
