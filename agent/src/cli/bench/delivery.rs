//! `vigil bench delivery`: durable outbox appends per second (one fsync'd commit each, and group
//! commits), and the latency from emit (append returned) to the matched PUBACK, through a broker.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use vigil::outbox::{NewRecord, Outbox};
use vigil::publish::commands::Registry;
use vigil::publish::publisher::{Publisher, PublisherCounters, PublisherSettings};

#[derive(Debug, Serialize)]
pub struct DeliveryBench {
    pub appends: usize,
    pub durable_appends_per_second: f64,
    pub batch: usize,
    pub group_commit_appends_per_second: f64,
    pub events: usize,
    pub rate_per_second: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
}

fn record(i: usize) -> NewRecord {
    let id = uuid::Uuid::now_v7().to_string();
    let payload = serde_json::json!({"schema": "vigil.event.v1", "event_id": id, "kind": "bench", "seq": i});
    NewRecord {
        event_id: id,
        topic: "vigil/v1/bench/bench/events/bench".into(),
        payload: serde_json::to_vec(&payload).unwrap(),
        camera: None,
        evidence: None,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub fn delivery(scratch: &Path, port: u16, appends: usize, events: usize, rate: f64) -> anyhow::Result<DeliveryBench> {
    std::fs::create_dir_all(scratch)?;
    // 1. Durable appends, no publisher.
    let mut outbox = Outbox::open(&scratch.join("appends.sqlite"), u64::MAX)?;
    let t = Instant::now();
    for i in 0..appends {
        outbox.append(&record(i))?;
    }
    let single = appends as f64 / t.elapsed().as_secs_f64();
    let batch = 50;
    let t = Instant::now();
    for chunk in (0..appends).collect::<Vec<_>>().chunks(batch) {
        outbox.append_batch(&chunk.iter().map(|i| record(*i)).collect::<Vec<_>>())?;
    }
    let grouped = appends as f64 / t.elapsed().as_secs_f64();
    drop(outbox);

    // 2. Emit → PUBACK latency at a steady rate.
    let outbox = Arc::new(Mutex::new(Outbox::open(&scratch.join("latency.sqlite"), u64::MAX)?));
    let emitted: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let wake = Arc::new(tokio::sync::Notify::new());
    let counters = Arc::new(PublisherCounters::default());
    let (e, l) = (emitted.clone(), latencies.clone());
    let publisher = Publisher {
        settings: PublisherSettings {
            host: "127.0.0.1".into(),
            port,
            client_id: format!("vigil-bench-{}", std::process::id()),
            credentials: None,
            keepalive: Duration::from_secs(30),
            tls: None,
            base_topic: "vigil/v1/bench/bench".into(),
            inflight: 32,
            platform_key: None,
            command_window: Duration::from_secs(300),
        },
        outbox: outbox.clone(),
        wake: wake.clone(),
        shutdown,
        counters: counters.clone(),
        registry: Arc::new(Registry::default()),
        on_delivered: Some(Arc::new(move |delivered: &vigil::publish::publisher::Delivered| {
            if let Some(at) = e.lock().unwrap().remove(&delivered.record) {
                l.lock().unwrap().push(at.elapsed().as_secs_f64() * 1000.0);
            }
        })),
        head: None,
        health: None,
    };
    let thread = std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
            .block_on(publisher.run())
    });
    let connected = Instant::now();
    while !counters.connected.load(std::sync::atomic::Ordering::Relaxed) {
        anyhow::ensure!(connected.elapsed() < Duration::from_secs(10), "no MQTT broker on 127.0.0.1:{port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    for i in 0..events {
        let due = start + interval * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let id = outbox.lock().unwrap().append(&record(i))?;
        emitted.lock().unwrap().insert(id, Instant::now());
        wake.notify_one();
    }
    let drained = Instant::now();
    while latencies.lock().unwrap().len() < events && drained.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = stop.send(true);
    let _ = thread.join();
    let mut l = latencies.lock().unwrap().clone();
    anyhow::ensure!(l.len() == events, "only {} of {events} events acknowledged", l.len());
    l.sort_by(f64::total_cmp);
    Ok(DeliveryBench {
        appends,
        durable_appends_per_second: single,
        batch,
        group_commit_appends_per_second: grouped,
        events,
        rate_per_second: rate,
        latency_p50_ms: percentile(&l, 0.5),
        latency_p99_ms: percentile(&l, 0.99),
        latency_max_ms: l[l.len() - 1],
    })
}
