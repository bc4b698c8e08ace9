//! `/metrics`, `/readyz` and `/healthz` of a real `vigil run`, scraped by a real Prometheus (Debian's
//! `prometheus`, started here on 127.0.0.1):
//! - during a broker outage, on the HTTPS server's port (plain HTTP on loopback): one camera playing a
//!   generated clip, one whose file is missing (it goes offline: a `camera_offline` event that waits in
//!   the outbox), MQTT pointed at a port where no broker runs. The page parses as Prometheus text,
//!   `vigil_outbox_undelivered` is the number of records in the outbox file, and Prometheus's query
//!   answers with that number;
//! - without `[http]`, on the `[metrics]` loopback listener, with a real mosquitto: a ward camera whose
//!   person detector runs on every frame, and the missing camera again (its offline event is delivered).
//!   Frames analysed, the model-call and PUBACK histograms (its count is the records delivered), restarts
//!   by reason, disk free (against `df`), the process's memory and start time.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::agent::{Agent, Platform};
use common::mqtt::free_port;

fn config(root: &Path, mqtt_port: u16, platform: &Platform, http_port: u16) -> String {
    format!(
        "{}\
         [rollcalls]\nrandom_per_day = 0\n\
         [http]\nlisten = \"127.0.0.1:{http_port}\"\nplain_http = true\n\
         [[cameras]]\nid = \"window-1\"\nrole = \"settlement_window\"\nurl = \"file://{}\"\nloop = true\n\
         [[cameras]]\nid = \"window-2\"\nrole = \"settlement_window\"\nurl = \"file://{}\"\n",
        common::agent::config_head(mqtt_port, platform),
        root.join("ward.mp4").display(),
        root.join("unplugged.mp4").display(),
    )
}

/// GET `url`: status and body (any status is an answer, not an error).
fn get(url: &str) -> Option<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut response = agent.get(url).call().ok()?;
    let status = response.status().as_u16();
    Some((status, response.body_mut().read_to_string().ok()?))
}

/// The samples of a Prometheus/OpenMetrics text page, by `name{labels}`; panics on anything that is
/// not a comment, a sample of a declared metric, or the closing `# EOF`.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut declared = Vec::new();
    let mut samples = HashMap::new();
    assert_eq!(text.lines().last(), Some("# EOF"), "no closing # EOF:\n{text}");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("bad TYPE line {line:?}"));
            assert!(["counter", "gauge", "histogram", "info", "unknown"].contains(&kind), "{line:?}");
            declared.push(name.to_owned());
        } else if line.starts_with('#') {
            continue;
        } else {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line {line:?}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
            let name = series.split('{').next().unwrap();
            let suffixes = [Some(""), Some("_total"), Some("_bucket"), Some("_sum"), Some("_count")];
            assert!(
                declared.iter().any(|d| suffixes.contains(&name.strip_prefix(d.as_str()))),
                "sample of an undeclared metric: {line:?}"
            );
            assert!(name.starts_with("vigil_") || name.starts_with("process_"), "{line:?}");
            samples.insert(series.to_owned(), value);
        }
    }
    samples
}

/// Records in the outbox file now (read beside the running agent: the outbox is SQLite in WAL mode).
fn outbox_records(root: &Path) -> u64 {
    let db = rusqlite::Connection::open_with_flags(
        root.join("state/outbox.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    db.query_row("SELECT COUNT(*) FROM records", [], |r| r.get::<_, i64>(0)).unwrap() as u64
}

fn outbox_kinds(root: &Path) -> Vec<String> {
    let db = rusqlite::Connection::open_with_flags(
        root.join("state/outbox.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = db.prepare("SELECT payload FROM records ORDER BY id").unwrap();
    let payloads: Vec<Vec<u8>> = stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    payloads
        .iter()
        .filter_map(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
        .map(|p| p["kind"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// Debian's Prometheus, scraping the agent every second, its data in `dir`; killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    fn start(dir: &Path, target: u16) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: vigil\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian's `prometheus` package; scripts/setup installs it)");
        Prometheus { child, port }
    }

    /// The value of the instant query `query`, when it has exactly one series.
    fn query(&self, query: &str) -> Option<f64> {
        let (status, body) = get(&format!("http://127.0.0.1:{}/api/v1/query?query={query}", self.port))?;
        let answer: serde_json::Value = serde_json::from_str(&body).ok().filter(|_| status == 200)?;
        let result = answer["data"]["result"].as_array()?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 200 ms until it gives a value or `within` passes.
fn wait_for<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn metrics_during_a_broker_outage_are_scraped_by_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let view = vigil::analyze::image::frame_from(&common::face_photo("obama.jpg"), 640, 360);
    common::media::still_clip(&root.join("ward.mp4"), &view, 50, 3);
    let platform = Platform::new(root);
    // No broker listens here: the whole test is an outage.
    let (mqtt_port, http_port) = (free_port(), free_port());
    let config_file = root.join("vigil.toml");
    std::fs::write(&config_file, config(root, mqtt_port, &platform, http_port)).unwrap();
    let out = common::vigil().args(["keys", "init", "--config"]).arg(&config_file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let agent = Agent::start(&config_file, root.join("agent.log"));
    let base = format!("http://127.0.0.1:{http_port}");

    let healthz = wait_for(Duration::from_secs(60), || get(&format!("{base}/healthz")));
    assert_eq!(healthz.map(|(s, _)| s), Some(200), "no /healthz\n{}", agent.log_text());
    let (status, body) = get(&format!("{base}/readyz")).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["ready"], true, "{body}");

    // The unplugged camera's outage is decided and waits in the outbox; the other camera decodes.
    let samples = wait_for(Duration::from_secs(60), || {
        let samples = parse(&get(&format!("{base}/metrics"))?.1);
        let decided = samples.get("vigil_decisions_total{kind=\"camera_offline\"}").copied().unwrap_or(0.0);
        let decoded = samples.get("vigil_camera_frames_decoded_total{camera=\"window-1\"}").copied()?;
        (decided >= 1.0 && decoded > 0.0).then_some(samples)
    })
    .unwrap_or_else(|| panic!("no camera_offline decision or no frames decoded\n{}", agent.log_text()));
    assert_eq!(samples["vigil_camera_online{camera=\"window-1\"}"], 1.0, "{samples:?}");
    assert_eq!(samples["vigil_camera_online{camera=\"window-2\"}"], 0.0, "{samples:?}");
    assert_eq!(samples["vigil_camera_frames_decoded_total{camera=\"window-2\"}"], 0.0, "{samples:?}");
    assert!(samples.contains_key("vigil_camera_frames_dropped_total{camera=\"window-1\"}"), "{samples:?}");
    assert_eq!(samples["vigil_mqtt_connected"], 0.0, "{samples:?}");
    assert_eq!(samples["vigil_mqtt_delivered_total"], 0.0, "{samples:?}");
    assert_eq!(samples["vigil_checkins_total{verdict=\"verified\"}"], 0.0, "{samples:?}");
    assert!(samples["vigil_outbox_oldest_undelivered_age_seconds"] >= 0.0, "{samples:?}");
    assert!(outbox_kinds(root).contains(&"camera_offline".to_owned()), "{:?}", outbox_kinds(root));

    // The gauge is the outbox's count: compared when the file's count did not change around the scrape.
    let matched = wait_for(Duration::from_secs(30), || {
        let before = outbox_records(root);
        let scraped = parse(&get(&format!("{base}/metrics"))?.1)["vigil_outbox_undelivered"];
        (before == outbox_records(root)).then_some((before, scraped))
    })
    .unwrap();
    assert!(matched.0 >= 1, "the outage's events are not in the outbox");
    assert_eq!(matched.1, matched.0 as f64, "vigil_outbox_undelivered vs the outbox file");

    // A real Prometheus scrapes the page and its query answers with the outbox's count.
    let prometheus = Prometheus::start(root, http_port);
    let queried = wait_for(Duration::from_secs(60), || {
        let value = prometheus.query("vigil_outbox_undelivered")?;
        let records = outbox_records(root);
        (value == records as f64).then_some(value)
    });
    let log = std::fs::read_to_string(root.join("prometheus.log")).unwrap_or_default();
    assert!(queried.is_some_and(|v| v >= 1.0), "Prometheus's vigil_outbox_undelivered never matched the outbox\n{log}");
    assert_eq!(prometheus.query("up"), Some(1.0), "the scrape target is not up\n{log}");
    drop(prometheus);
    agent.stop();
}

/// Free bytes for an unprivileged user on `path`'s file system, as `df` says.
fn df_available(path: &Path) -> f64 {
    let out = Command::new("df").args(["--output=avail", "-B1"]).arg(path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
}

#[test]
fn without_http_the_loopback_listener_serves_the_metrics_prometheus_scrapes() {
    let started = std::time::SystemTime::now();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let view = vigil::analyze::image::frame_from(&common::face_photo("obama.jpg"), 640, 360);
    common::media::still_clip(&root.join("ward.mp4"), &view, 50, 3);
    let platform = Platform::new(root);
    let broker = common::mqtt::Mosquitto::start(root);
    let metrics_port = free_port();
    let config_file = root.join("vigil.toml");
    let config = format!(
        "{}\
         [rollcalls]\nrandom_per_day = 0\n\
         [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\
         [[cameras]]\nid = \"ward-1\"\nrole = \"ward\"\nurl = \"file://{}\"\nloop = true\n\
         [cameras.regions]\nbed-1 = [[0.05, 0.3], [0.5, 0.3], [0.5, 0.95], [0.05, 0.95]]\n\
         [[cameras]]\nid = \"gone\"\nrole = \"settlement_window\"\nurl = \"file://{}\"\n",
        common::agent::config_head(broker.port, &platform),
        root.join("ward.mp4").display(),
        root.join("unplugged.mp4").display(),
    );
    std::fs::write(&config_file, config).unwrap();
    let out = common::vigil().args(["keys", "init", "--config"]).arg(&config_file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let agent = Agent::start(&config_file, root.join("agent.log"));
    let base = format!("http://127.0.0.1:{metrics_port}");

    let healthz = wait_for(Duration::from_secs(60), || get(&format!("{base}/healthz")));
    assert_eq!(healthz.map(|(s, _)| s), Some(200), "no /healthz on the metrics listener\n{}", agent.log_text());
    let (status, body) = get(&format!("{base}/readyz")).unwrap();
    assert_eq!(status, 200, "{body}");
    // The ward camera is analysed (the person detector on every frame) and the missing camera's outage
    // is delivered to the broker.
    let samples = wait_for(Duration::from_secs(60), || {
        let samples = parse(&get(&format!("{base}/metrics"))?.1);
        let analysed = *samples.get("vigil_camera_frames_analysed_total{camera=\"ward-1\"}")?;
        let delivered = *samples.get("vigil_mqtt_delivered_total")?;
        let outage_delivered = outbox_kinds(root).is_empty() && delivered >= 1.0;
        (analysed > 0.0 && outage_delivered).then_some(samples)
    })
    .unwrap_or_else(|| panic!("no frame analysed or nothing delivered\n{}", agent.log_text()));
    let delivered = samples["vigil_mqtt_delivered_total"];
    assert_eq!(samples["vigil_mqtt_puback_duration_seconds_count"], delivered, "one PUBACK timed per delivery");
    assert_eq!(samples["vigil_mqtt_puback_duration_seconds_bucket{le=\"+Inf\"}"], delivered, "{samples:?}");
    assert!(samples["vigil_mqtt_puback_duration_seconds_sum"] > 0.0, "{samples:?}");
    assert_eq!(samples["vigil_mqtt_connected"], 1.0, "{samples:?}");
    let person_calls = samples["vigil_analysis_duration_seconds_count{model=\"person_detector\"}"];
    assert!(person_calls >= samples["vigil_camera_frames_analysed_total{camera=\"ward-1\"}"] - 1.0, "{samples:?}");
    assert!(samples["vigil_analysis_duration_seconds_sum{model=\"person_detector\"}"] > 0.0, "{samples:?}");
    assert_eq!(samples["vigil_analysis_duration_seconds_count{model=\"embedder\"}"], 0.0, "no face was looked for");
    assert_eq!(samples["vigil_camera_online{camera=\"gone\"}"], 0.0, "{samples:?}");
    let restarts: f64 = samples
        .iter()
        .filter(|(k, _)| k.starts_with("vigil_camera_restarts_total{camera=\"gone\""))
        .map(|(_, v)| v)
        .sum();
    assert!(restarts >= 1.0, "the missing camera's restarts are counted by reason: {samples:?}");
    assert_eq!(samples["vigil_camera_tampered{camera=\"ward-1\",condition=\"covered\"}"], 0.0, "{samples:?}");
    assert_eq!(samples["vigil_evidence_pending"], 0.0, "{samples:?}");
    // Disk free is the data directory's file system's, as df sees it (other writers move it a little).
    let free = samples["vigil_storage_free_bytes"];
    let df = df_available(&root.join("state"));
    assert!((free - df).abs() <= (df * 0.01).max(64e6), "vigil_storage_free_bytes {free} vs df {df}");
    assert!(samples["process_resident_memory_bytes"] > 10e6, "{samples:?}");
    assert!(samples["process_cpu_seconds_total"] > 0.0 && samples["process_open_fds"] > 3.0, "{samples:?}");
    let since_epoch = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let start_time = samples["process_start_time_seconds"];
    assert!(start_time >= since_epoch(started) - 1.0 && start_time <= since_epoch(std::time::SystemTime::now()));

    // Prometheus scrapes the loopback listener: analysed frames, and PUBACKs timed as records delivered.
    let prometheus = Prometheus::start(root, metrics_port);
    let analysed = wait_for(Duration::from_secs(60), || {
        prometheus.query("vigil_camera_frames_analysed_total%7Bcamera%3D%22ward-1%22%7D").filter(|v| *v > 0.0)
    });
    let log = std::fs::read_to_string(root.join("prometheus.log")).unwrap_or_default();
    assert!(analysed.is_some(), "Prometheus never saw ward-1's analysed frames\n{log}");
    let matched = wait_for(Duration::from_secs(30), || {
        let count = prometheus.query("vigil_mqtt_puback_duration_seconds_count")?;
        let delivered = prometheus.query("vigil_mqtt_delivered_total")?;
        (count == delivered && count >= 1.0).then_some(count)
    });
    assert!(matched.is_some(), "PUBACK histogram count vs delivered records in Prometheus\n{log}");
    drop(prometheus);
    agent.stop();
}
