//! The agent's Prometheus metrics, registered in one place ([`Metrics::new`]) and served at
//! `GET /metrics` with `/readyz` beside it (`http::ops`), on the HTTPS server or on the plain loopback
//! listener of `[metrics]`. docs/operations.md lists every series.
//!
//! Counters the stages already keep (a camera's [`CameraCounters`], [`FrameSlot`] and
//! [`AnalysisCounters`], the model calls' and PUBACKs' histograms, the publisher's
//! [`PublisherCounters`], the evidence store's [`StoreCounters`]) and gauges whose truth lives elsewhere
//! (the outbox's records, the saved evidence requests, the file system, `/proc/self`) are read at
//! scrape time by one collector over [`Sources`], never copied: a scrape says what the agent holds at
//! that moment. The health message (`runtime::health`) reads the same [`Sources`]. Only what nothing
//! else counts is counted here ([`EventCounters`]). Names follow Prometheus's rules: the `vigil_`
//! prefix (the process's own series keep the standard `process_` names), base units (seconds, bytes),
//! `_total` for counters; labels name cameras, reasons, models and kinds, never a person.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::camera::{AnalysisCounters, ModelTimings, TAMPER_KINDS};
use crate::evidence::pending::Pending;
use crate::evidence::store::StoreCounters;
use crate::histogram::Histogram;
use crate::outbox::Outbox;
use crate::publish::publisher::PublisherCounters;
use crate::source::camera::CameraCounters;
use crate::source::health::{HealthChange, HealthReport, HealthSink};
use crate::source::slot::FrameSlot;
use crate::source::supervisor::RetryReason;

/// A camera's counters, as its supervisor and analysis threads keep them.
#[derive(Clone)]
pub struct CameraSource {
    pub id: String,
    pub counters: Arc<CameraCounters>,
    pub slot: Arc<FrameSlot>,
    /// Set by the health reports: an outage announced and not yet over.
    pub offline: Arc<AtomicBool>,
    /// Frames analysed, tamper conditions.
    pub analysis: Arc<AnalysisCounters>,
}

impl CameraSource {
    /// Online: frames have been decoded and no outage is announced (a camera still starting is not).
    pub fn online(&self) -> bool {
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
struct ReasonLabel {
    camera: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabel {
    camera: String,
    condition: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabel {
    model: &'static str,
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

/// The restart reason of a recording failure (the pipeline restarts without its recording branch),
/// beside [`RetryReason::LABELS`].
const RECORDING_FAILED: &str = "recording_failed";

/// Everything the metrics and the health message read, where the stages keep it.
pub struct Sources {
    pub cameras: Vec<CameraSource>,
    pub outbox: Arc<Mutex<Outbox>>,
    /// The publisher's (never connected when no `[mqtt]` is configured).
    pub mqtt: Arc<PublisherCounters>,
    /// Every camera's model calls.
    pub models: ModelTimings,
    pub evidence: Arc<StoreCounters>,
    /// The saved evidence requests (`<data_dir>/evidence-pending`).
    pub pending: Arc<Pending>,
    /// Whose file system's free space is reported.
    pub data_dir: PathBuf,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources").field("cameras", &self.cameras.len()).finish_non_exhaustive()
    }
}

/// The outbox now: records waiting, and the oldest one's age.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutboxState {
    pub undelivered: u64,
    /// Zero when none waits.
    pub oldest_age: Duration,
}

impl Sources {
    /// The outbox's state; None when it cannot be read (its gauges are then left out, and `/readyz`
    /// says why: no made-up zero).
    pub fn outbox(&self) -> Option<OutboxState> {
        let outbox = self.outbox.lock().ok()?;
        let (undelivered, oldest) = (outbox.len().ok()?, outbox.oldest_created().ok()?);
        let oldest_age = oldest.map_or(Duration::ZERO, |at| SystemTime::now().duration_since(at).unwrap_or_default());
        Some(OutboxState { undelivered, oldest_age })
    }

    /// Records not yet delivered (one count; [`Sources::outbox`] also reads the oldest one's age).
    pub fn undelivered(&self) -> Option<u64> {
        self.outbox.lock().ok()?.len().ok()
    }

    /// Free bytes on the data directory's file system, for the agent's user.
    pub fn free_bytes(&self) -> Option<u64> {
        crate::source::recorder::free_bytes(&self.data_dir).ok()
    }

    /// What is not ready, each as a short phrase: the metrics are made once every camera's threads are
    /// started (the servers, and so `/readyz`, come up after them), so what remains to check is that
    /// the outbox still answers.
    pub fn not_ready(&self) -> Vec<String> {
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

    /// Restarts of `camera` by reason, [`RetryReason::LABELS`] then recording failures.
    fn restarts(camera: &CameraSource) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        let c = &camera.counters;
        RetryReason::LABELS
            .into_iter()
            .zip(c.restarts_by_reason.iter().map(|n| n.load(Ordering::Relaxed)))
            .chain(std::iter::once((RECORDING_FAILED, c.recording_failures.load(Ordering::Relaxed))))
    }
}

/// The process as `/proc/self` describes it (the standard `process_*` series).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    /// User and system CPU time.
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub open_fds: u64,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time: f64,
}

impl ProcessStats {
    /// Reads `/proc/self/{stat,statm,fd}` and the boot time in `/proc/stat`; None off Linux or when
    /// they cannot be read (the series are then left out).
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) is in parentheses and may hold spaces: fields from 3 on follow
        // the last `)`.
        let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        let (utime, stime, started) = (field(14)?, field(15)?, field(22)?);
        // SAFETY: sysconf reads a configuration value; no memory is passed.
        let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        let (ticks, page) = (u64::try_from(ticks).ok().filter(|t| *t > 0)?, u64::try_from(page).ok()?);
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let btime: u64 = boot.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        Some(ProcessStats {
            cpu_seconds: (utime + stime) as f64 / ticks as f64,
            resident_bytes: resident_pages * page,
            open_fds,
            start_time: btime as f64 + started as f64 / ticks as f64,
        })
    }

    /// How long the process has been running.
    pub fn uptime(&self) -> Duration {
        let started = UNIX_EPOCH + Duration::from_secs_f64(self.start_time.max(0.0));
        SystemTime::now().duration_since(started).unwrap_or_default()
    }
}

/// The registry, and the sources the health message shares with it.
pub struct Metrics {
    registry: Registry,
    sources: Arc<Sources>,
}

impl Metrics {
    /// Registers every metric of the agent.
    pub fn new(sources: Sources, events: &EventCounters) -> Metrics {
        let mut registry = Registry::default();
        // Registered without the suffix: the encoder appends `_total` to counters.
        registry.register("vigil_decisions", "Decisions recorded, by kind", events.decisions.clone());
        registry.register("vigil_checkins", "Ward phones' check-ins recorded, by verdict", events.checkins.clone());
        // Both verdicts from the start, at 0: a rate over them needs the series before the first check-in.
        for verdict in ["verified", "rejected"] {
            drop(events.checkins.get_or_create(&VerdictLabel { verdict: verdict.to_owned() }));
        }
        let sources = Arc::new(sources);
        registry.register_collector(Box::new(Collect(sources.clone())));
        Metrics { registry, sources }
    }

    /// What the health message reads (the same counters as the metrics).
    pub fn sources(&self) -> Arc<Sources> {
        self.sources.clone()
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

    fn not_ready(&self) -> Vec<String> {
        self.sources.not_ready()
    }
}

/// The collector over [`Sources`], registered once.
#[derive(Debug)]
struct Collect(Arc<Sources>);

fn counter<N: prometheus_client::encoding::EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> Result<(), std::fmt::Error> {
    let counter = ConstCounter::new(value);
    counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)
}

fn gauge<N: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

/// One histogram series per label set, under one descriptor.
fn histograms<'a, L: EncodeLabelSet + 'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, &'a Histogram)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (label, histogram) in series {
        let s = histogram.snapshot();
        family.encode_family(&label)?.encode_histogram::<NoLabelSet>(s.sum, s.count, &s.buckets, None)?;
    }
    Ok(())
}

impl Collector for Collect {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sources = &self.0;
        let cameras = &sources.cameras;
        let label = |c: &CameraSource| CameraLabel { camera: c.id.clone() };
        // Per camera, one descriptor each: (name, help, value).
        type Read = fn(&CameraSource) -> u64;
        let per_camera: [(&str, &str, Read); 3] = [
            ("vigil_camera_frames_decoded", "Frames decoded, over every pipeline run of the camera", |c| {
                c.counters.frames.load(Ordering::Relaxed)
            }),
            ("vigil_camera_frames_analysed", "Frames the camera's analysis thread took and analysed", |c| {
                c.analysis.frames.load(Ordering::Relaxed)
            }),
            ("vigil_camera_frames_dropped", "Frames replaced by a newer one before analysis took them", |c| {
                c.slot.dropped()
            }),
        ];
        for (name, help, read) in per_camera {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for c in cameras {
                ConstCounter::new(read(c)).encode(family.encode_family(&label(c))?)?;
            }
        }
        let mut restarts = encoder.encode_descriptor(
            "vigil_camera_restarts",
            "Pipeline restarts, by reason (error, end_of_stream, stalled, start_failed, recording_failed)",
            None,
            MetricType::Counter,
        )?;
        for c in cameras {
            for (reason, n) in Sources::restarts(c) {
                ConstCounter::new(n).encode(restarts.encode_family(&ReasonLabel { camera: c.id.clone(), reason })?)?;
            }
        }
        let mut online = encoder.encode_descriptor(
            "vigil_camera_online",
            "1 when the camera delivers frames and no outage is announced",
            None,
            MetricType::Gauge,
        )?;
        for c in cameras {
            ConstGauge::new(i64::from(c.online())).encode(online.encode_family(&label(c))?)?;
        }
        let mut tampered = encoder.encode_descriptor(
            "vigil_camera_tampered",
            "1 while the tamper condition (covered, frozen, moved) holds on the camera",
            None,
            MetricType::Gauge,
        )?;
        for c in cameras {
            let now = c.analysis.tampered();
            for kind in TAMPER_KINDS {
                let series = ConditionLabel { camera: c.id.clone(), condition: kind.as_str() };
                ConstGauge::new(i64::from(now.contains(&kind))).encode(tampered.encode_family(&series)?)?;
            }
        }
        let m = &sources.models;
        histograms(
            &mut encoder,
            "vigil_analysis_duration_seconds",
            "ONNX Runtime session.run time of one model call, by model (every camera's analysis)",
            [
                (ModelLabel { model: "face_detector" }, &*m.face_detector),
                (ModelLabel { model: "embedder" }, &*m.embedder),
                (ModelLabel { model: "person_detector" }, &*m.person_detector),
            ],
        )?;
        if let Some(outbox) = sources.outbox() {
            let help = "Records in the outbox not yet acknowledged by the broker";
            gauge(&mut encoder, "vigil_outbox_undelivered", help, outbox.undelivered as i64)?;
            let help = "Age of the oldest undelivered record (0 when none waits)";
            gauge(&mut encoder, "vigil_outbox_oldest_undelivered_age_seconds", help, outbox.oldest_age.as_secs_f64())?;
        }
        let mqtt = &sources.mqtt;
        let help = "1 while the publisher holds a session with the broker";
        gauge(&mut encoder, "vigil_mqtt_connected", help, i64::from(mqtt.connected.load(Ordering::Relaxed)))?;
        let publisher = [
            ("vigil_mqtt_connections", "Sessions established with the broker", &mqtt.connections),
            ("vigil_mqtt_publishes", "Outbox records published (QoS 1), resends included", &mqtt.published),
            ("vigil_mqtt_delivered", "Outbox records the broker acknowledged (PUBACK)", &mqtt.delivered),
        ];
        for (name, help, count) in publisher {
            counter(&mut encoder, name, help, count.load(Ordering::Relaxed))?;
        }
        let acks = mqtt.ack_latency.snapshot();
        encoder
            .encode_descriptor(
                "vigil_mqtt_puback_duration_seconds",
                "From an outbox record's PUBLISH leaving to its PUBACK, per delivered record",
                None,
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(acks.sum, acks.count, &acks.buckets, None)?;
        let evidence = &sources.evidence;
        let help = "Evidence bundles written (camera events and check-ins)";
        counter(
            &mut encoder,
            "vigil_evidence_bundles_written",
            help,
            evidence.bundles_written.load(Ordering::Relaxed),
        )?;
        let help = "Evidence bundles whose media retention removed (manifests are kept)";
        counter(&mut encoder, "vigil_evidence_bundles_pruned", help, evidence.bundles_pruned.load(Ordering::Relaxed))?;
        let help = "Evidence requests saved and not yet written and announced";
        gauge(&mut encoder, "vigil_evidence_pending", help, sources.pending.count() as i64)?;
        if let Some(free) = sources.free_bytes() {
            let help = "Free bytes (for the agent's user) on the data directory's file system";
            gauge(&mut encoder, "vigil_storage_free_bytes", help, free as i64)?;
        }
        if let Some(p) = ProcessStats::read() {
            counter(
                &mut encoder,
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                p.cpu_seconds,
            )?;
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                p.resident_bytes as i64,
            )?;
            gauge(&mut encoder, "process_open_fds", "Number of open file descriptors", p.open_fds as i64)?;
            let help = "Start time of the process since unix epoch in seconds";
            gauge(&mut encoder, "process_start_time_seconds", help, p.start_time)?;
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

    fn record(n: usize) -> NewRecord {
        NewRecord {
            event_id: format!("e{n}"),
            topic: "vigil/v1/h/d/events/camera_offline".into(),
            payload: b"{}".to_vec(),
            camera: None,
            evidence: None,
        }
    }

    fn sources(
        dir: &std::path::Path,
        cameras: Vec<CameraSource>,
        outbox: Arc<Mutex<Outbox>>,
        mqtt: Arc<PublisherCounters>,
    ) -> Sources {
        Sources {
            cameras,
            outbox,
            mqtt,
            models: ModelTimings::default(),
            evidence: Arc::default(),
            pending: Arc::new(Pending::new(&dir.join("evidence-pending"))),
            data_dir: dir.to_owned(),
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
        let camera = CameraSource {
            id: "w1".into(),
            counters: Arc::default(),
            slot: Arc::default(),
            offline: Arc::default(),
            analysis: Arc::default(),
        };
        let (tx, rx) = mpsc::channel::<HealthReport>();
        let health = Watched { inner: tx, offline: camera.offline.clone() };
        let (mqtt, events) = (Arc::new(PublisherCounters::default()), EventCounters::default());
        let sources = sources(dir.path(), vec![camera.clone()], outbox.clone(), mqtt.clone());
        let (timings, evidence) = (sources.models.embedder.clone(), sources.evidence.clone());
        let metrics = Metrics::new(sources, &events);

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

        // Analysis, restarts by reason, tamper, the histograms, evidence, the process.
        camera.analysis.frames.fetch_add(7, Ordering::Relaxed);
        camera.counters.restarts_by_reason[RetryReason::Eos.index()].fetch_add(2, Ordering::Relaxed);
        camera.counters.recording_failures.fetch_add(1, Ordering::Relaxed);
        let moved = crate::runtime::camera::tamper_bit(crate::source::tamper::TamperKind::Moved);
        camera.analysis.tampered.fetch_or(moved, Ordering::Relaxed);
        timings.observe(std::time::Duration::from_millis(30));
        mqtt.ack_latency.observe(std::time::Duration::from_millis(3));
        evidence.bundles_written.fetch_add(4, Ordering::Relaxed);
        let page = metrics.metrics();
        assert_eq!(sample(&page, "vigil_camera_frames_analysed_total{camera=\"w1\"}"), Some(7.0), "{page}");
        let restarts =
            |reason: &str| sample(&page, &format!("vigil_camera_restarts_total{{camera=\"w1\",reason=\"{reason}\"}}"));
        assert_eq!(restarts("end_of_stream"), Some(2.0), "{page}");
        assert_eq!(restarts("stalled"), Some(0.0), "{page}");
        assert_eq!(restarts("recording_failed"), Some(1.0), "{page}");
        let tampered = |c: &str| sample(&page, &format!("vigil_camera_tampered{{camera=\"w1\",condition=\"{c}\"}}"));
        assert_eq!((tampered("moved"), tampered("covered")), (Some(1.0), Some(0.0)), "{page}");
        let embedder = |le: &str| {
            sample(&page, &format!("vigil_analysis_duration_seconds_bucket{{le=\"{le}\",model=\"embedder\"}}"))
        };
        assert_eq!(
            (embedder("0.025"), embedder("0.05"), embedder("+Inf")),
            (Some(0.0), Some(1.0), Some(1.0)),
            "{page}"
        );
        assert_eq!(sample(&page, "vigil_analysis_duration_seconds_count{model=\"person_detector\"}"), Some(0.0));
        assert_eq!(sample(&page, "vigil_mqtt_puback_duration_seconds_count"), Some(1.0), "{page}");
        assert_eq!(sample(&page, "vigil_mqtt_puback_duration_seconds_bucket{le=\"+Inf\"}"), Some(1.0), "{page}");
        assert_eq!(sample(&page, "vigil_evidence_bundles_written_total"), Some(4.0), "{page}");
        assert_eq!(sample(&page, "vigil_evidence_pending"), Some(0.0), "{page}");
        assert!(sample(&page, "vigil_storage_free_bytes").is_some_and(|b| b > 0.0), "{page}");
        assert!(sample(&page, "process_resident_memory_bytes").is_some_and(|b| b > 1e6), "{page}");
        assert!(sample(&page, "process_cpu_seconds_total").is_some_and(|s| s > 0.0), "{page}");
        let started = sample(&page, "process_start_time_seconds").unwrap();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        assert!(started <= now && started > now - 86_400.0 * 365.0, "{started} vs {now}");

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
        let metrics =
            Metrics::new(sources(dir.path(), Vec::new(), outbox.clone(), Arc::default()), &EventCounters::default());
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
