//! Delivery through a real mosquitto on 127.0.0.1: nothing emitted is lost across a broker outage or an
//! agent killed with SIGKILL; per-camera order holds; duplicates only within the in-flight window;
//! retained status with LWT; signed commands and every kind of rejection; connection failures told to
//! the operator at WARN with their cause, and delivery resuming within seconds of the broker's return.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::mqtt::{Mosquitto, Subscriber, settings};
use vigil::outbox::{NewRecord, Outbox};
use vigil::publish::commands::Registry;
use vigil::publish::publisher::{Delivered, Publisher, PublisherCounters};

fn event(camera: usize, seq: usize) -> NewRecord {
    let id = uuid::Uuid::now_v7().to_string();
    let payload = serde_json::json!({"schema": "vigil.event.v1", "event_id": id, "kind": "test", "camera": format!("c{camera}"), "seq": seq});
    NewRecord {
        event_id: id,
        topic: "vigil/v1/hosp/edge/events/test".into(),
        payload: serde_json::to_vec(&payload).unwrap(),
        camera: Some(format!("c{camera}")),
        evidence: None,
    }
}

/// Runs a publisher on its own runtime until the returned guard is dropped.
struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    wake: Arc<tokio::sync::Notify>,
    counters: Arc<PublisherCounters>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start_publisher(outbox: Arc<Mutex<Outbox>>, port: u16, key: Option<vigil::evidence::keys::PublicKey>) -> Running {
    start_publisher_with(outbox, settings(port, key))
}

fn start_publisher_with(outbox: Arc<Mutex<Outbox>>, settings: vigil::publish::publisher::PublisherSettings) -> Running {
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let wake = Arc::new(tokio::sync::Notify::new());
    let counters = Arc::new(PublisherCounters::default());
    let publisher = Publisher {
        settings,
        outbox,
        wake: wake.clone(),
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
    Running { stop, thread: Some(thread), wake, counters }
}

/// The publisher's log, as an operator would read it (level, message, fields).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The lines containing every one of `parts`.
    fn lines(&self, parts: &[&str]) -> Vec<String> {
        self.text().lines().filter(|l| parts.iter().all(|p| l.contains(p))).map(str::to_owned).collect()
    }
}

/// A publisher whose log (vigil's lines, DEBUG and up) is captured: it runs on a current-thread runtime
/// inside the capturing subscriber, so every task logs there.
fn start_publisher_logged(
    outbox: Arc<Mutex<Outbox>>,
    settings: vigil::publish::publisher::PublisherSettings,
) -> (Running, Log) {
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let wake = Arc::new(tokio::sync::Notify::new());
    let counters = Arc::new(PublisherCounters::default());
    let publisher = Publisher {
        settings,
        outbox,
        wake: wake.clone(),
        shutdown,
        counters: counters.clone(),
        registry: Arc::new(Registry::default()),
        on_delivered: None,
        head: None,
        health: None,
    };
    let log = Log::default();
    let writer = log.clone();
    let thread = std::thread::spawn(move || {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_env_filter("warn,vigil=debug")
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(publisher.run());
        });
    });
    (Running { stop, thread: Some(thread), wake, counters }, log)
}

/// Checks what the subscriber got against the emitted event ids: all there, per-camera order.
fn check_delivery(sub: &Subscriber, emitted: &[String]) -> usize {
    let got = sub.payloads("/events/test");
    let ids: Vec<String> = got.iter().map(|p| p["event_id"].as_str().unwrap().to_owned()).collect();
    let distinct: HashSet<&String> = ids.iter().collect();
    let missing: Vec<&String> = emitted.iter().filter(|id| !distinct.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} events lost, e.g. {:?}",
        missing.len(),
        emitted.len(),
        &missing[..missing.len().min(3)]
    );
    // Per camera, first arrivals come in emission order.
    let mut seen = HashSet::new();
    let mut last: HashMap<String, i64> = HashMap::new();
    for p in &got {
        if !seen.insert(p["event_id"].as_str().unwrap().to_owned()) {
            continue;
        }
        let (camera, seq) = (p["camera"].as_str().unwrap().to_owned(), p["seq"].as_i64().unwrap());
        let previous = last.insert(camera.clone(), seq).unwrap_or(-1);
        assert!(seq > previous, "camera {camera}: event {seq} arrived after {previous}");
    }
    ids.len() - distinct.len()
}

/// The publisher never touches evidence files: it reports each record the broker acknowledged, with the
/// event whose bundle it announced, and the runtime marks that bundle acknowledged from the report.
#[test]
fn each_puback_is_reported_with_the_record_s_evidence_event() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let outbox = Arc::new(Mutex::new(Outbox::open(&dir.path().join("outbox.sqlite"), 1000).unwrap()));
    let mut with_bundle = event(0, 0);
    with_bundle.evidence = Some(with_bundle.event_id.clone());
    let plain = event(0, 1);
    let ids: Vec<i64> = outbox.lock().unwrap().append_batch(&[with_bundle.clone(), plain]).unwrap();
    let reports: Arc<Mutex<Vec<Delivered>>> = Arc::default();
    let seen = reports.clone();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let publisher = Publisher {
        settings: settings(broker.port, None),
        outbox: outbox.clone(),
        wake: Arc::new(tokio::sync::Notify::new()),
        shutdown,
        counters: Arc::new(PublisherCounters::default()),
        registry: Arc::new(Registry::default()),
        on_delivered: Some(Arc::new(move |d: &Delivered| seen.lock().unwrap().push(d.clone()))),
        head: None,
        health: None,
    };
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(publisher.run());
    });
    let all_reported = common::mqtt::wait(Duration::from_secs(20), || reports.lock().unwrap().len() == 2);
    let _ = stop.send(true);
    thread.join().unwrap();
    assert!(all_reported, "reports: {:?}", reports.lock().unwrap());
    let mut reports = reports.lock().unwrap().clone();
    reports.sort_by_key(|d| d.record);
    assert_eq!(
        reports,
        vec![
            Delivered { record: ids[0], evidence: Some(with_bundle.event_id.clone()) },
            Delivered { record: ids[1], evidence: None },
        ]
    );
    assert!(outbox.lock().unwrap().is_empty().unwrap(), "delivered records leave the outbox");
}

#[test]
fn thousand_events_survive_a_broker_outage_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(dir.path());
    let sub = Subscriber::start(broker.port, "vigil/v1/hosp/edge/events/#");
    let outbox = Arc::new(Mutex::new(Outbox::open(&dir.path().join("outbox.sqlite"), 100_000).unwrap()));
    let running = start_publisher(outbox.clone(), broker.port, None);

    let mut emitted = Vec::new();
    let started = Instant::now();
    for i in 0..1000 {
        let record = event(i % 3, i / 3);
        outbox.lock().unwrap().append(&record).unwrap();
        running.wake.notify_one();
        emitted.push(record.event_id);
        if i == 300 {
            broker.stop();
        }
        if i == 700 {
            broker.restart();
        }
        std::thread::sleep(Duration::from_millis(4));
    }
    let delivered = sub
        .wait_for(Duration::from_secs(60), |m| m.iter().filter(|(t, _, _)| t.contains("/events/test")).count() >= 1000);
    assert!(delivered, "not all events arrived within 60 s of the last one");
    assert!(
        common::mqtt::wait(Duration::from_secs(10), || outbox.lock().unwrap().is_empty().unwrap()),
        "outbox not drained"
    );
    let duplicates = check_delivery(&sub, &emitted);
    let connections = running.counters.connections.load(Ordering::Relaxed) as usize;
    assert!(connections >= 2, "the publisher should have reconnected");
    assert!(duplicates <= 32 * (connections - 1), "{duplicates} duplicates for {connections} connections");
    eprintln!("1000 events in {:?}, {connections} connections, {duplicates} duplicates", started.elapsed());
}

const CHILD_ENV: &str = "VIGIL_TEST_PUBLISHER";

/// Not a test: a publishing agent process (re-executed test binary). With `emit`, appends events and
/// prints each event id once `append` returned (= emitted); then keeps delivering until killed.
#[test]
fn publisher_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let mut parts = spec.splitn(3, ':');
    let (port, mode, db) = (
        parts.next().unwrap().parse::<u16>().unwrap(),
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
    );
    let outbox = Arc::new(Mutex::new(Outbox::open(Path::new(&db), 100_000).unwrap()));
    let running = start_publisher(outbox.clone(), port, None);
    if mode == "emit" {
        for i in 0..100_000 {
            let record = event(i % 3, i / 3);
            outbox.lock().unwrap().append(&record).unwrap();
            running.wake.notify_one();
            println!("emitted {}", record.event_id);
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    std::thread::sleep(Duration::from_secs(3600));
}

fn spawn_child(port: u16, mode: &str, db: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "publisher_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{port}:{mode}:{}", db.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn agent_killed_mid_stream_loses_nothing_it_emitted() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let sub = Subscriber::start(broker.port, "vigil/v1/hosp/edge/events/#");
    let db = dir.path().join("outbox.sqlite");
    let mut child = spawn_child(broker.port, "emit", &db);
    let mut emitted = Vec::new();
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines {
        let line = line.unwrap();
        if let Some(id) = line.strip_prefix("emitted ") {
            emitted.push(id.to_owned());
            if emitted.len() == 400 {
                child.kill().unwrap();
                break;
            }
        }
    }
    child.wait().unwrap();
    // Restart the agent: it only delivers what is in its outbox.
    let mut again = spawn_child(broker.port, "deliver", &db);
    let all = sub.wait_for(Duration::from_secs(30), |m| {
        let got: HashSet<String> = m
            .iter()
            .filter_map(|(_, p, _)| serde_json::from_slice::<serde_json::Value>(p).ok())
            .filter_map(|v| v["event_id"].as_str().map(str::to_owned))
            .collect();
        emitted.iter().all(|id| got.contains(id))
    });
    again.kill().unwrap();
    again.wait().unwrap();
    assert!(all, "events lost");
    check_delivery(&sub, &emitted);
}

#[test]
fn status_is_online_while_alive_and_offline_when_killed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let sub = Subscriber::start(broker.port, "vigil/v1/hosp/edge/status");
    let status = |sub: &Subscriber| {
        sub.messages.lock().unwrap().iter().map(|(_, p, _)| String::from_utf8_lossy(p).into_owned()).collect::<Vec<_>>()
    };
    let db = dir.path().join("outbox.sqlite");
    let mut child = spawn_child(broker.port, "deliver", &db);
    assert!(
        sub.wait_for(Duration::from_secs(15), |m| m.last().is_some_and(|(_, p, _)| p == b"online")),
        "no birth: {:?}",
        status(&sub)
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // keepalive 5 s: the broker declares the client gone after 1.5 × 5 s.
    assert!(
        sub.wait_for(Duration::from_secs(20), |m| m.last().is_some_and(|(_, p, _)| p == b"offline")),
        "no LWT: {:?}",
        status(&sub)
    );
    let mut back = spawn_child(broker.port, "deliver", &db);
    assert!(
        sub.wait_for(Duration::from_secs(15), |m| m.last().is_some_and(|(_, p, _)| p == b"online")),
        "no rebirth: {:?}",
        status(&sub)
    );
    back.kill().unwrap();
    back.wait().unwrap();
    // A late subscriber sees the retained state.
    let late = Subscriber::start(broker.port, "vigil/v1/hosp/edge/status");
    assert!(late.wait_for(Duration::from_secs(20), |m| m.iter().any(|(_, _, retained)| *retained)));
}

#[test]
fn commands_are_verified_and_every_rejection_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let sub = Subscriber::start(broker.port, "vigil/v1/hosp/edge/cmd-result/#");
    let platform = ring::signature::Ed25519KeyPair::from_pkcs8(
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap().as_ref(),
    )
    .unwrap();
    let intruder = ring::signature::Ed25519KeyPair::from_pkcs8(
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap().as_ref(),
    )
    .unwrap();
    use ring::signature::KeyPair;
    let key = vigil::evidence::keys::PublicKey(platform.public_key().as_ref().try_into().unwrap());
    let outbox = Arc::new(Mutex::new(Outbox::open(&dir.path().join("outbox.sqlite"), 1000).unwrap()));
    let running = start_publisher(outbox, broker.port, Some(key));
    assert!(common::mqtt::wait(Duration::from_secs(15), || running.counters.connected.load(Ordering::Relaxed)));
    std::thread::sleep(Duration::from_millis(500));

    let sign = vigil::publish::commands::sign;
    let now = SystemTime::now();
    let good = sign(&platform, "ping", serde_json::json!({}), now, "nonce-good-0001");
    let mut unsigned = sign(&platform, "ping", serde_json::json!({}), now, "nonce-unsigned-1");
    unsigned.as_object_mut().unwrap().remove("signature");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("ping", serde_json::to_vec(&good).unwrap(), "ok"),
        ("ping", serde_json::to_vec(&good).unwrap(), "replayed"),
        (
            "ping",
            serde_json::to_vec(&sign(
                &platform,
                "ping",
                serde_json::json!({}),
                now - Duration::from_secs(3600),
                "nonce-old-00001",
            ))
            .unwrap(),
            "expired",
        ),
        (
            "ping",
            serde_json::to_vec(&sign(&intruder, "ping", serde_json::json!({}), now, "nonce-intruder1")).unwrap(),
            "bad_signature",
        ),
        ("ping", serde_json::to_vec(&unsigned).unwrap(), "unsigned"),
        ("ping", b"{not json".to_vec(), "malformed"),
        (
            "reboot",
            serde_json::to_vec(&sign(&platform, "ping", serde_json::json!({}), now, "nonce-wrongtopic")).unwrap(),
            "malformed",
        ),
        (
            "selfdestruct",
            serde_json::to_vec(&sign(&platform, "selfdestruct", serde_json::json!({}), now, "nonce-unknown01"))
                .unwrap(),
            "unknown_command",
        ),
    ];
    for (i, (name, payload, _)) in cases.iter().enumerate() {
        sub.publish(&format!("vigil/v1/hosp/edge/cmd/{name}"), payload.clone());
        assert!(sub.wait_for(Duration::from_secs(10), |m| m.len() > i), "no cmd-result for case {i}");
    }
    let results = sub.payloads("/cmd-result/");
    for (i, ((_, _, expected), result)) in cases.iter().zip(&results).enumerate() {
        let got = if result["ok"] == true { "ok" } else { result["reason"].as_str().unwrap() };
        assert_eq!(got, *expected, "case {i}: {result}");
    }
    assert_eq!(results[0]["result"]["pong"].as_str().map(|s| s.len() > 10), Some(true));
}

#[test]
fn broker_unreachable_at_start_is_logged_at_warn() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(dir.path());
    broker.stop();
    let outbox = Arc::new(Mutex::new(Outbox::open(&dir.path().join("outbox.sqlite"), 1000).unwrap()));
    for i in 0..3 {
        outbox.lock().unwrap().append(&event(0, i)).unwrap();
    }
    let (running, log) = start_publisher_logged(outbox.clone(), settings(broker.port, None));
    let cannot = ["WARN", "MQTT cannot connect to the broker", "connection refused", "waiting=3"];
    assert!(common::mqtt::wait(Duration::from_secs(15), || !log.lines(&cannot).is_empty()), "no WARN:\n{}", log.text());
    // Attempts at about 0.5, 1, 2 and 4 s: the repeats are DEBUG, counted; the WARN stays alone.
    assert!(
        common::mqtt::wait(Duration::from_secs(20), || log.lines(&["DEBUG", "failed again", "failures=3"]).len() == 1),
        "repeated failures not counted at DEBUG:\n{}",
        log.text()
    );
    assert_eq!(log.lines(&["MQTT cannot connect"]).len(), 1, "told more than once:\n{}", log.text());

    broker.restart();
    let again = ["INFO", "MQTT connected again after an outage", "down_for=", "waiting=3"];
    assert!(
        common::mqtt::wait(Duration::from_secs(30), || !log.lines(&again).is_empty()),
        "the end of the outage was not told:\n{}",
        log.text()
    );
    assert!(common::mqtt::wait(Duration::from_secs(15), || outbox.lock().unwrap().is_empty().unwrap()));
    drop(running);
    eprintln!("{}", log.lines(&["MQTT"]).join("\n"));
}

/// The same through `vigil run`, as the issue saw it (its only MQTT line was "MQTT delivery configured"):
/// the agent says at WARN that it cannot reach the broker, and says when it is back.
#[test]
fn agent_says_at_warn_that_the_broker_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut broker = Mosquitto::start(root);
    broker.stop();
    let platform = common::agent::Platform::new(root);
    let config = root.join("vigil.toml");
    std::fs::write(&config, common::agent::config_head(broker.port, &platform)).unwrap();
    assert!(common::vigil().args(["keys", "init", "--config"]).arg(&config).output().unwrap().status.success());
    let agent = common::agent::Agent::start(&config, root.join("agent.log"));
    let has = |parts: &[&str]| agent.log_text().lines().any(|l| parts.iter().all(|p| l.contains(p)));
    assert!(
        common::mqtt::wait(Duration::from_secs(60), || has(&["WARN", "MQTT cannot connect", "connection refused"])),
        "{}",
        agent.log_text()
    );
    broker.restart();
    assert!(
        common::mqtt::wait(Duration::from_secs(30), || has(&["MQTT connected again after an outage", "down_for="])),
        "{}",
        agent.log_text()
    );
    let log = agent.stop();
    assert_eq!(log.lines().filter(|l| l.contains("MQTT cannot connect")).count(), 1, "{log}");
}

/// mosquitto with a plain listener (for the platform's subscriber) and a TLS one using `dir`'s
/// certificates; returns (broker, plain port, TLS port).
fn tls_broker(dir: &Path, require_certificate: bool) -> (std::process::Child, u16, u16) {
    let (plain, tls) = (common::mqtt::free_port(), common::mqtt::free_port());
    let d = dir.display();
    let conf = dir.join("tls.conf");
    std::fs::write(
        &conf,
        format!(
            "per_listener_settings false\nallow_anonymous true\npersistence false\nuser root\n\
             listener {plain} 127.0.0.1\n\
             listener {tls} 127.0.0.1\ncafile {d}/ca.crt\ncertfile {d}/server.crt\nkeyfile {d}/server.key\n\
             require_certificate {require_certificate}\n"
        ),
    )
    .unwrap();
    let broker =
        Command::new("mosquitto").arg("-c").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    assert!(common::mqtt::wait(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", tls)).is_ok()));
    (broker, plain, tls)
}

/// Waits until the captured log has a line with every one of `parts`; the publisher must not connect.
fn assert_told(log: &Log, running: &Running, parts: &[&str]) {
    assert!(
        common::mqtt::wait(Duration::from_secs(20), || !log.lines(parts).is_empty()),
        "no line with {parts:?}:\n{}",
        log.text()
    );
    assert!(!running.counters.connected.load(Ordering::Relaxed), "connected anyway");
}

#[test]
fn wrong_ca_is_logged_at_warn_with_cause() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-keyout", "other-ca.key", "-out", "other-ca.crt", "-days", "2", "-subj", "/CN=some-other-ca"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    let (mut broker, _, tls) = tls_broker(dir.path(), false);
    let outbox = Arc::new(Mutex::new(Outbox::open(&dir.path().join("o.sqlite"), 1000).unwrap()));
    outbox.lock().unwrap().append(&event(0, 0)).unwrap();
    let mut wrong = settings(tls, None);
    wrong.tls = Some(vigil::publish::publisher::TlsFiles {
        ca: std::fs::read(dir.path().join("other-ca.crt")).unwrap(),
        client: None,
    });
    let (running, log) = start_publisher_logged(outbox, wrong);
    assert_told(&log, &running, &["WARN", "MQTT cannot connect", "UnknownIssuer", "mqtt.tls.ca_file", "waiting=1"]);
    eprintln!("{}", log.lines(&["MQTT"]).join("\n"));
    drop(running);
    let _ = broker.kill();
    let _ = broker.wait();
}

#[test]
fn client_certificate_refused_is_logged_at_warn_with_cause() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (mut broker, _, tls) = tls_broker(dir.path(), true);
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    // No client certificate where the broker requires one.
    let outbox = Arc::new(Mutex::new(Outbox::open(&dir.path().join("o1.sqlite"), 1000).unwrap()));
    let mut none = settings(tls, None);
    none.tls = Some(vigil::publish::publisher::TlsFiles { ca: read("ca.crt"), client: None });
    let (running, log) = start_publisher_logged(outbox, none);
    assert_told(&log, &running, &["WARN", "MQTT cannot connect", "client certificate"]);
    eprintln!("{}", log.lines(&["MQTT"]).join("\n"));
    drop(running);
    // A client certificate the broker's CA did not sign (self-signed).
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-keyout", "rogue.key", "-out", "rogue.crt", "-days", "2", "-subj", "/CN=rogue"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    let outbox = Arc::new(Mutex::new(Outbox::open(&dir.path().join("o2.sqlite"), 1000).unwrap()));
    let mut rogue = settings(tls, None);
    rogue.tls = Some(vigil::publish::publisher::TlsFiles {
        ca: read("ca.crt"),
        client: Some((read("rogue.crt"), read("rogue.key"))),
    });
    let (running, log) = start_publisher_logged(outbox, rogue);
    assert_told(&log, &running, &["WARN", "MQTT cannot connect", "rejected the client certificate"]);
    eprintln!("{}", log.lines(&["MQTT"]).join("\n"));
    drop(running);
    let _ = broker.kill();
    let _ = broker.wait();
}

#[test]
fn delivery_resumes_within_seconds_of_broker_return() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(dir.path());
    let sub = Subscriber::start(broker.port, "vigil/v1/hosp/edge/events/#");
    let outbox = Arc::new(Mutex::new(Outbox::open(&dir.path().join("outbox.sqlite"), 1000).unwrap()));
    let (running, log) = start_publisher_logged(outbox.clone(), settings(broker.port, None));
    assert!(common::mqtt::wait(Duration::from_secs(15), || running.counters.connected.load(Ordering::Relaxed)));
    broker.stop();
    let record = event(0, 0);
    outbox.lock().unwrap().append(&record).unwrap();
    running.wake.notify_one();
    // Long enough for any backoff to reach its ceiling (the old one, 1 s doubling to 30 s, retried 31 s
    // after the loss, then 61 s: a broker back at 33 s waited 28 s).
    std::thread::sleep(Duration::from_secs(33));
    broker.restart();
    let back = Instant::now();
    let arrived = sub.wait_for(Duration::from_secs(60), |m| {
        m.iter().any(|(_, p, _)| String::from_utf8_lossy(p).contains(&record.event_id))
    });
    let delay = back.elapsed();
    assert!(arrived, "the event never arrived:\n{}", log.text());
    eprintln!("delivery resumed {delay:?} after the broker accepted connections again");
    // Reconnect attempts are at most 5 s apart; 20 s leaves room for a loaded machine.
    assert!(delay < Duration::from_secs(20), "delivery resumed {delay:?} after the broker's return");
    assert_eq!(log.lines(&["WARN", "MQTT connection lost"]).len(), 1, "{}", log.text());
    assert_eq!(log.lines(&["MQTT connected again after an outage", "waiting=1"]).len(), 1, "{}", log.text());
    drop(running);
}

/// Makes a CA, a server certificate for 127.0.0.1 and a client certificate with openssl.
fn certificates(dir: &Path) {
    let sh = |script: &str| {
        let out = Command::new("bash").arg("-ec").arg(script).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    };
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=vigil-test-ca 2>/dev/null
        for who in server client; do
          openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout $who.key -out $who.csr -subj /CN=$who 2>/dev/null
          printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\n' > $who.ext
          openssl x509 -req -in $who.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out $who.crt -days 2 -extfile $who.ext 2>/dev/null
        done");
}

#[test]
fn tls_with_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (plain, tls) = (common::mqtt::free_port(), common::mqtt::free_port());
    let d = dir.path().display();
    let conf = dir.path().join("tls.conf");
    std::fs::write(
        &conf,
        format!(
            "per_listener_settings false\nallow_anonymous true\npersistence false\nuser root\n\
             listener {plain} 127.0.0.1\n\
             listener {tls} 127.0.0.1\ncafile {d}/ca.crt\ncertfile {d}/server.crt\nkeyfile {d}/server.key\nrequire_certificate true\n"
        ),
    )
    .unwrap();
    let mut broker =
        Command::new("mosquitto").arg("-c").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    assert!(common::mqtt::wait(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", tls)).is_ok()));
    let sub = Subscriber::start(plain, "vigil/v1/hosp/edge/events/#");
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();

    // Without a client certificate the broker refuses the connection.
    let outbox = Arc::new(Mutex::new(Outbox::open(&dir.path().join("o1.sqlite"), 1000).unwrap()));
    let mut refused = settings(tls, None);
    refused.tls = Some(vigil::publish::publisher::TlsFiles { ca: read("ca.crt"), client: None });
    let running = start_publisher_with(outbox, refused);
    std::thread::sleep(Duration::from_secs(3));
    assert!(!running.counters.connected.load(Ordering::Relaxed), "connected without a client certificate");
    drop(running);

    // With it, events flow.
    let outbox = Arc::new(Mutex::new(Outbox::open(&dir.path().join("o2.sqlite"), 1000).unwrap()));
    let mut ok = settings(tls, None);
    ok.tls = Some(vigil::publish::publisher::TlsFiles {
        ca: read("ca.crt"),
        client: Some((read("client.crt"), read("client.key"))),
    });
    let running = start_publisher_with(outbox.clone(), ok);
    let record = event(0, 0);
    outbox.lock().unwrap().append(&record).unwrap();
    running.wake.notify_one();
    assert!(sub.wait_for(Duration::from_secs(15), |m| {
        m.iter().any(|(_, p, _)| String::from_utf8_lossy(p).contains(&record.event_id))
    }));
    assert!(common::mqtt::wait(Duration::from_secs(5), || outbox.lock().unwrap().is_empty().unwrap()));
    drop(running);
    let _ = broker.kill();
    let _ = broker.wait();
}
