//! Commands signed as JWS (RFC 7515, EdDSA per RFC 8037) by stock tools reach a box over a real broker:
//! the Python and Node examples of docs/mqtt-api.md, run as printed, are accepted; tampering, a wrong
//! key, a foreign `alg` (`none` included), a replayed nonce and a stale `issued_at` are refused with
//! their reason in the cmd-result; the deprecated canonical-JSON form is still accepted.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use common::mqtt::{Mosquitto, Subscriber, settings};
use vigil::outbox::Outbox;
use vigil::publish::commands::Registry;
use vigil::publish::publisher::{Publisher, PublisherCounters};

/// Signs `header` and `payload` (JSON texts) as a JWS with the Ed25519 key in `key` (PKCS#8 PEM), using
/// Python `cryptography` and base64url only: no Vigil code. An empty `key` makes an empty signature.
const SIGN_PY: &str = r#"
import base64, sys
from cryptography.hazmat.primitives.serialization import load_pem_private_key
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")
key_file, header, payload = sys.argv[1:4]
signing_input = f"{b64(header.encode())}.{b64(payload.encode())}"
signature = b"" if not key_file else load_pem_private_key(open(key_file, "rb").read(), None).sign(signing_input.encode())
print(f"{signing_input}.{b64(signature)}")
"#;

/// Makes an Ed25519 key pair with Python `cryptography`: PKCS#8 PEM file, returns the raw public key.
const KEYGEN_PY: &str = r#"
import base64, sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
key = Ed25519PrivateKey.generate()
open(sys.argv[1], "wb").write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
print(base64.b64encode(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode())
"#;

fn run(program: &Path, args: &[&str], dir: &Path) -> String {
    let out = Command::new(program).args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{} {args:?}: {}", program.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The code block of docs/mqtt-api.md in `language` that contains `marker`.
fn doc_snippet(language: &str, marker: &str) -> String {
    let text = std::fs::read_to_string(common::repo("docs/mqtt-api.md")).unwrap();
    let fence = format!("```{language}\n");
    text.split(&fence)
        .skip(1)
        .map(|rest| rest.split("\n```").next().unwrap().to_owned())
        .find(|code| code.contains(marker))
        .unwrap_or_else(|| panic!("docs/mqtt-api.md has no {language} block with {marker:?}"))
}

fn now_text(offset: Duration, past: bool) -> String {
    let t = if past { SystemTime::now() - offset } else { SystemTime::now() + offset };
    humantime::format_rfc3339_millis(t).to_string()
}

#[test]
fn jws_commands_from_stock_tools_are_verified_and_refusals_named() {
    let dir = tempfile::tempdir().unwrap();
    let python = common::python();
    std::fs::write(dir.path().join("sign.py"), SIGN_PY).unwrap();
    std::fs::write(dir.path().join("keygen.py"), KEYGEN_PY).unwrap();
    let public = run(&python, &["keygen.py", "platform.pem"], dir.path());
    let intruder_dir = dir.path().join("intruder");
    std::fs::create_dir(&intruder_dir).unwrap();
    run(&python, &["../keygen.py", "platform.pem"], &intruder_dir);

    // The documentation's examples, as printed.
    std::fs::write(dir.path().join("sign_command.py"), doc_snippet("python", "def sign_command")).unwrap();
    std::fs::write(dir.path().join("sign_command.mjs"), doc_snippet("js", "function signCommand")).unwrap();
    std::fs::copy(dir.path().join("sign_command.py"), intruder_dir.join("sign_command.py")).unwrap();
    let from_python = run(&python, &["sign_command.py", "ping"], dir.path());
    let from_node = run(Path::new("node"), &["sign_command.mjs", "ping", "{}"], dir.path());
    let from_intruder = run(&python, &["sign_command.py", "ping"], &intruder_dir);
    let vigil = Path::new(env!("CARGO_BIN_EXE_vigil"));
    let from_cli = run(vigil, &["sign-command", "--jws", "--key", "platform.pem", "--name", "ping"], dir.path());

    let sign = |header: &str, payload: &str| run(&python, &["sign.py", "platform.pem", header, payload], dir.path());
    let command = |nonce: &str, issued_at: &str| {
        serde_json::json!({"name": "ping", "issued_at": issued_at, "nonce": nonce, "args": {}}).to_string()
    };
    let now = now_text(Duration::ZERO, true);
    let eddsa = r#"{"alg":"EdDSA"}"#;
    let good = sign(eddsa, &command("nonce-jws-good-1", &now));
    let parts: Vec<&str> = good.split('.').collect();
    let tampered_header = format!("{}.{}.{}", B64URL.encode(r#"{"alg":"EdDSA","kid":"other"}"#), parts[1], parts[2]);
    let tampered_payload = format!("{}.{}.{}", parts[0], B64URL.encode(command("nonce-jws-tamper", &now)), parts[2]);
    let flipped = if parts[2].starts_with('A') { "B" } else { "A" };
    let tampered_signature = format!("{}.{}.{flipped}{}", parts[0], parts[1], &parts[2][1..]);
    let alg_none = run(&python, &["sign.py", "", r#"{"alg":"none"}"#, &command("nonce-jws-none-1", &now)], dir.path());
    let alg_hs256 = sign(r#"{"alg":"HS256","typ":"JWT"}"#, &command("nonce-jws-hs256-1", &now));
    let crit = sign(r#"{"alg":"EdDSA","crit":["exp"],"exp":1}"#, &command("nonce-jws-crit-01", &now));
    let stale = sign(eddsa, &command("nonce-jws-stale-1", &now_text(Duration::from_secs(3600), true)));
    let future = sign(eddsa, &command("nonce-jws-future1", &now_text(Duration::from_secs(3600), false)));
    let wrong_topic = sign(
        eddsa,
        &serde_json::json!({"name": "rollcall", "issued_at": now, "nonce": "nonce-jws-topic-1"}).to_string(),
    );

    let broker = Mosquitto::start(dir.path());
    let sub = Subscriber::start(broker.port, "vigil/v1/hosp/edge/cmd-result/#");
    let key = vigil::evidence::keys::PublicKey::parse(&public).unwrap();
    let outbox = Arc::new(Mutex::new(Outbox::open(&dir.path().join("outbox.sqlite"), 1000).unwrap()));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let counters = Arc::new(PublisherCounters::default());
    let publisher = Publisher {
        settings: settings(broker.port, Some(key)),
        outbox,
        wake: Arc::new(tokio::sync::Notify::new()),
        shutdown,
        counters: counters.clone(),
        registry: Arc::new(Registry::default()),
        on_delivered: None,
        head: None,
        health: None,
    };
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(publisher.run());
    });
    assert!(common::mqtt::wait(Duration::from_secs(15), || counters.connected.load(Ordering::Relaxed)));
    std::thread::sleep(Duration::from_millis(500));

    // The deprecated form, signed over the canonical JSON by Python.
    let canonical = {
        let body = serde_json::json!({"args": {}, "issued_at": now, "name": "ping", "nonce": "nonce-canonical1"});
        run(
            &python,
            &[
                "-c",
                "import base64,json,sys\nfrom cryptography.hazmat.primitives.serialization import load_pem_private_key\n\
                 k=load_pem_private_key(open('platform.pem','rb').read(),None)\nc=json.loads(sys.argv[1])\n\
                 c['signature']=base64.b64encode(k.sign(json.dumps(c,sort_keys=True,separators=(',',':'),ensure_ascii=False).encode())).decode()\n\
                 print(json.dumps(c))",
                &body.to_string(),
            ],
            dir.path(),
        )
    };

    let cases: Vec<(&str, String, &str)> = vec![
        ("ping", from_python.clone(), "ok"),
        ("ping", from_node, "ok"),
        ("ping", from_python, "replayed"),
        ("ping", format!("{good}\n"), "ok"),
        ("ping", tampered_header, "bad_signature"),
        ("ping", tampered_payload, "bad_signature"),
        ("ping", tampered_signature, "bad_signature"),
        ("ping", from_intruder, "bad_signature"),
        ("ping", alg_none, "unsupported_alg"),
        ("ping", alg_hs256, "unsupported_alg"),
        ("ping", crit, "malformed"),
        ("ping", stale, "expired"),
        ("ping", future, "expired"),
        ("ping", wrong_topic, "malformed"),
        ("ping", canonical, "ok"),
        ("ping", from_cli, "ok"),
    ];
    for (i, (name, payload, _)) in cases.iter().enumerate() {
        sub.publish(&format!("vigil/v1/hosp/edge/cmd/{name}"), payload.clone().into_bytes());
        assert!(sub.wait_for(Duration::from_secs(10), |m| m.len() > i), "no cmd-result for case {i}");
    }
    let results = sub.payloads("/cmd-result/");
    for (i, ((_, payload, expected), result)) in cases.iter().zip(&results).enumerate() {
        let got = if result["ok"] == true { "ok" } else { result["reason"].as_str().unwrap() };
        assert_eq!(got, *expected, "case {i} ({payload}): {result}");
    }
    assert_eq!(results[0]["result"]["pong"].as_str().map(|s| s.len() > 10), Some(true));
    assert_eq!(results[2]["nonce"], results[0]["nonce"], "the replay is named by its nonce");
    let none = &results[8];
    assert_eq!(
        none["detail"], "JWS alg \"none\" is not accepted: commands must be signed with EdDSA (Ed25519)",
        "{none}"
    );
    assert!(results[10]["detail"].as_str().unwrap().contains("crit"), "{}", results[10]);
    let _ = stop.send(true);
    thread.join().unwrap();
}
