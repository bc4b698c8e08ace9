//! `/metrics`, `/readyz` and `/healthz` of a real `vigil run` during a broker outage: one camera
//! playing a generated clip, one whose file is missing (it goes offline: a `camera_offline` event that
//! waits in the outbox), MQTT pointed at a port where no broker runs. The page parses as Prometheus
//! text, `vigil_outbox_undelivered` is the number of records in the outbox file, and a real Prometheus
//! (Debian's `prometheus`, started here on 127.0.0.1) scrapes it and answers a query with that number.

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
            assert!(
                declared.iter().any(|d| name == d || name.strip_prefix(d.as_str()) == Some("_total")),
                "sample of an undeclared metric: {line:?}"
            );
            assert!(name.starts_with("vigil_"), "{line:?}");
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
