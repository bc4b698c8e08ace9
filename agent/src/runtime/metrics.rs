//! The agent's Prometheus metrics, registered in one place ([`Metrics::new`]) and served at
//! `GET /metrics` with `/readyz` beside it (`http::ops`).
//!
//! Counters the stages already keep (a camera's [`CameraCounters`] and [`FrameSlot`], the publisher's
//! [`PublisherCounters`]) and gauges whose truth lives elsewhere (the outbox's records) are read at
//! scrape time by one collector, never copied: a scrape says what the agent holds at that moment. Only
//! what nothing else counts is counted here ([`EventCounters`]). Names follow Prometheus's rules: the
//! `vigil_` prefix, base units (seconds), `_total` for counters; labels name cameras and kinds, never a
//! person.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::outbox::Outbox;
use crate::publish::publisher::PublisherCounters;
use crate::source::camera::CameraCounters;
use crate::source::health::{HealthChange, HealthReport, HealthSink};
use crate::source::slot::FrameSlot;

/// A camera's counters, as its supervisor and analysis threads keep them.
#[derive(Clone)]
pub struct CameraSource {
    pub id: String,
    pub counters: Arc<CameraCounters>,
    pub slot: Arc<FrameSlot>,
    /// Set by the health reports: an outage announced and not yet over.
    pub offline: Arc<AtomicBool>,
}

impl CameraSource {
    /// Online: frames have been decoded and no outage is announced (a camera still starting is not).
    fn online(&self) -> bool {
        self.counters.frames.load(Ordering::Relaxed) > 0 && !self.offline.load(Ordering::Relaxed)
    }
}

/// A health sink that notes outages for [`CameraSource::offline`] and passes every report on.
pub struct Watched<S> {
    pub inner: S,
    pub offline: Arc<AtomicBool>,
}

impl<S: HealthSink> HealthSink for Watched<S> {
    fn report(&self, report: HealthReport) {
        match report.change {
            HealthChange::Offline { .. } => self.offline.store(true, Ordering::Relaxed),
            HealthChange::Online { .. } => self.offline.store(false, Ordering::Relaxed),
            HealthChange::RecordingStopped { .. } | HealthChange::RecordingResumed { .. } => {}
        }
        self.inner.report(report);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CameraLabel {
    camera: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabel {
    verdict: String,
}

/// What nothing else counts: decisions by kind, ward phones' check-ins by verdict. Counted where they
/// are recorded (the emitter carries a clone; clones share the counts).
#[derive(Clone, Debug, Default)]
pub struct EventCounters {
    decisions: Family<KindLabel, Counter>,
    checkins: Family<VerdictLabel, Counter>,
}

impl EventCounters {
    pub fn decision(&self, kind: &str) {
        self.decisions.get_or_create(&KindLabel { kind: kind.to_owned() }).inc();
    }

    /// A check-in recorded with `verdict` (`verified` or `rejected`).
    pub fn checkin(&self, verdict: &str) {
        self.checkins.get_or_create(&VerdictLabel { verdict: verdict.to_owned() }).inc();
    }
}

/// What the collector reads at each scrape.
struct Sources {
    cameras: Vec<CameraSource>,
    outbox: Arc<Mutex<Outbox>>,
    /// The publisher's (never connected when no `[mqtt]` is configured).
    mqtt: Arc<PublisherCounters>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources").field("cameras", &self.cameras.len()).finish_non_exhaustive()
    }
}

/// The registry and what readiness needs.
pub struct Metrics {
    registry: Registry,
    outbox: Arc<Mutex<Outbox>>,
}

impl Metrics {
    /// Registers every metric of the agent.
    pub fn new(
        cameras: Vec<CameraSource>,
        outbox: Arc<Mutex<Outbox>>,
        mqtt: Arc<PublisherCounters>,
        events: &EventCounters,
    ) -> Metrics {
        let mut registry = Registry::default();
        // Registered without the suffix: the encoder appends `_total` to counters.
        registry.register("vigil_decisions", "Decisions recorded, by kind", events.decisions.clone());
        registry.register("vigil_checkins", "Ward phones' check-ins recorded, by verdict", events.checkins.clone());
        // Both verdicts from the start, at 0: a rate over them needs the series before the first check-in.
        for verdict in ["verified", "rejected"] {
            drop(events.checkins.get_or_create(&VerdictLabel { verdict: verdict.to_owned() }));
        }
        registry.register_collector(Box::new(Sources { cameras, outbox: outbox.clone(), mqtt }));
        Metrics { registry, outbox }
    }
}

impl crate::http::Operations for Metrics {
    fn metrics(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        text
    }

    /// The metrics are made once every camera's threads are started (the server, and so `/readyz`,
    /// comes up after them): what remains to check is that the outbox still answers.
    fn not_ready(&self) -> Vec<String> {
        let mut not_ready = Vec::new();
        let outbox = match self.outbox.lock() {
            Ok(outbox) => outbox.len().map(|_| ()).map_err(|e| e.to_string()),
            Err(_) => Err("its lock is poisoned (a thread panicked holding it)".to_owned()),
        };
        if let Err(e) = outbox {
            not_ready.push(format!("outbox: {e}"));
        }
        not_ready
    }
}

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let cameras = &self.cameras;
        let label = |c: &CameraSource| CameraLabel { camera: c.id.clone() };
        let mut decoded = encoder.encode_descriptor(
            "vigil_camera_frames_decoded",
            "Frames decoded, over every pipeline run of the camera",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for c in cameras {
            ConstCounter::new(c.counters.frames.load(Ordering::Relaxed)).encode(decoded.encode_family(&label(c))?)?;
        }
        let mut dropped = encoder.encode_descriptor(
            "vigil_camera_frames_dropped",
            "Frames replaced by a newer one before analysis took them",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for c in cameras {
            ConstCounter::new(c.slot.dropped()).encode(dropped.encode_family(&label(c))?)?;
        }
        let mut online = encoder.encode_descriptor(
            "vigil_camera_online",
            "1 when the camera delivers frames and no outage is announced",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for c in cameras {
            ConstGauge::new(i64::from(c.online())).encode(online.encode_family(&label(c))?)?;
        }
        // A failed read of the outbox leaves its gauges out (and `/readyz` says why): no made-up zero.
        let outbox = self.outbox.lock().ok().and_then(|o| Some((o.len().ok()?, o.oldest_created().ok()?)));
        if let Some((undelivered, oldest)) = outbox {
            let gauge = ConstGauge::new(undelivered as i64);
            gauge.encode(encoder.encode_descriptor(
                "vigil_outbox_undelivered",
                "Records in the outbox not yet acknowledged by the broker",
                None,
                gauge.metric_type(),
            )?)?;
            let age = oldest.map_or(0.0, |at| SystemTime::now().duration_since(at).unwrap_or_default().as_secs_f64());
            let gauge = ConstGauge::new(age);
            gauge.encode(encoder.encode_descriptor(
                "vigil_outbox_oldest_undelivered_age_seconds",
                "Age of the oldest undelivered record (0 when none waits)",
                None,
                gauge.metric_type(),
            )?)?;
        }
        let connected = self.mqtt.connected.load(Ordering::Relaxed);
        let gauge = ConstGauge::new(i64::from(connected));
        gauge.encode(encoder.encode_descriptor(
            "vigil_mqtt_connected",
            "1 while the publisher holds a session with the broker",
            None,
            gauge.metric_type(),
        )?)?;
        let publisher = [
            ("vigil_mqtt_connections", "Sessions established with the broker", &self.mqtt.connections),
            ("vigil_mqtt_publishes", "Outbox records published (QoS 1), resends included", &self.mqtt.published),
            ("vigil_mqtt_delivered", "Outbox records the broker acknowledged (PUBACK)", &self.mqtt.delivered),
        ];
        for (name, help, count) in publisher {
            let counter = ConstCounter::new(count.load(Ordering::Relaxed));
            counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::http::Operations;
    use crate::outbox::NewRecord;
    use crate::source::supervisor::RetryReason;

    fn record(n: usize) -> NewRecord {
        NewRecord {
            event_id: format!("e{n}"),
            topic: "vigil/v1/h/d/events/camera_offline".into(),
            payload: b"{}".to_vec(),
            camera: None,
            evidence: None,
        }
    }

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn a_scrape_reads_the_outbox_and_the_counters_as_they_are_then() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Arc::new(Mutex::new(Outbox::open(&dir.path().join("o.sqlite"), 100).unwrap()));
        let ids = outbox.lock().unwrap().append_batch(&[record(1), record(2)]).unwrap();
        let camera =
            CameraSource { id: "w1".into(), counters: Arc::default(), slot: Arc::default(), offline: Arc::default() };
        let (tx, rx) = mpsc::channel::<HealthReport>();
        let health = Watched { inner: tx, offline: camera.offline.clone() };
        let (mqtt, events) = (Arc::new(PublisherCounters::default()), EventCounters::default());
        let metrics = Metrics::new(vec![camera.clone()], outbox.clone(), mqtt.clone(), &events);

        let page = metrics.metrics();
        assert_eq!(sample(&page, "vigil_camera_online{camera=\"w1\"}"), Some(0.0), "no frame yet:\n{page}");
        assert_eq!(sample(&page, "vigil_outbox_undelivered"), Some(2.0), "{page}");
        assert_eq!(sample(&page, "vigil_checkins_total{verdict=\"rejected\"}"), Some(0.0), "{page}");
        assert!(page.ends_with("# EOF\n"), "{page}");

        camera.counters.frames.fetch_add(25, Ordering::Relaxed);
        events.decision("camera_offline");
        events.checkin("verified");
        mqtt.connected.store(true, Ordering::Relaxed);
        mqtt.delivered.fetch_add(1, Ordering::Relaxed);
        outbox.lock().unwrap().delivered(ids[0]).unwrap();
        let page = metrics.metrics();
        assert_eq!(sample(&page, "vigil_camera_frames_decoded_total{camera=\"w1\"}"), Some(25.0), "{page}");
        assert_eq!(sample(&page, "vigil_camera_online{camera=\"w1\"}"), Some(1.0), "{page}");
        assert_eq!(sample(&page, "vigil_decisions_total{kind=\"camera_offline\"}"), Some(1.0), "{page}");
        assert_eq!(sample(&page, "vigil_checkins_total{verdict=\"verified\"}"), Some(1.0), "{page}");
        assert_eq!(sample(&page, "vigil_mqtt_connected"), Some(1.0), "{page}");
        assert_eq!(sample(&page, "vigil_mqtt_delivered_total"), Some(1.0), "{page}");
        assert_eq!(sample(&page, "vigil_mqtt_publishes_total"), Some(0.0), "{page}");
        assert_eq!(sample(&page, "vigil_outbox_undelivered"), Some(1.0), "{page}");

        // An outage announced: offline until frames flow again; every report still reaches the sink.
        let at = SystemTime::now();
        let offline =
            HealthChange::Offline { reason: RetryReason::Eos, by: crate::source::health::Reporter::Supervisor };
        health.report(HealthReport { camera: "w1".into(), at, change: offline });
        assert_eq!(sample(&metrics.metrics(), "vigil_camera_online{camera=\"w1\"}"), Some(0.0));
        let online = HealthChange::Online { down: std::time::Duration::from_secs(3) };
        health.report(HealthReport { camera: "w1".into(), at, change: online });
        assert_eq!(sample(&metrics.metrics(), "vigil_camera_online{camera=\"w1\"}"), Some(1.0));
        assert_eq!(rx.try_iter().count(), 2);

        outbox.lock().unwrap().delivered(ids[1]).unwrap();
        let page = metrics.metrics();
        assert_eq!(sample(&page, "vigil_outbox_undelivered"), Some(0.0), "{page}");
        assert_eq!(sample(&page, "vigil_outbox_oldest_undelivered_age_seconds"), Some(0.0), "{page}");
        assert!(metrics.not_ready().is_empty());
    }

    #[test]
    fn readiness_names_an_outbox_that_cannot_be_read() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Arc::new(Mutex::new(Outbox::open(&dir.path().join("o.sqlite"), 100).unwrap()));
        let metrics = Metrics::new(Vec::new(), outbox.clone(), Arc::default(), &EventCounters::default());
        let holder = outbox.clone();
        let _ = std::thread::spawn(move || {
            let _guard = holder.lock().unwrap();
            panic!("a thread dies holding the outbox");
        })
        .join();
        let not_ready = metrics.not_ready();
        assert_eq!(not_ready.len(), 1, "{not_ready:?}");
        assert!(not_ready[0].starts_with("outbox: its lock is poisoned"), "{not_ready:?}");
        // The outbox's gauges are left out rather than reported as a made-up value.
        assert!(!metrics.metrics().contains("vigil_outbox_undelivered"));
    }
}
