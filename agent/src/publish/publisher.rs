//! The MQTT publisher (docs/outbox.md): one task polls rumqttc's event loop and ties each
//! `Outgoing::Publish(pkid)` to the record sent under it; only the matching `PubAck` deletes the record
//! from the outbox. Another task does all publishing (records, birth, command results), so the order of
//! publish calls — and therefore of pkids — is known. A lost connection drops its pkid map; the next
//! connection (a new event loop, clean session) resends every undelivered record, oldest first.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration, Transport};
use tokio::sync::{Notify, Semaphore, mpsc};
use tracing::{debug, error, info, warn};

use super::commands::{self, Registry};
use crate::evidence::keys::PublicKey;
use crate::outbox::Outbox;

/// Everything the publisher needs from the configuration.
#[derive(Clone)]
pub struct PublisherSettings {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub credentials: Option<(String, String)>,
    pub keepalive: Duration,
    pub tls: Option<TlsFiles>,
    /// `<prefix>/<site>/<device>`.
    pub base_topic: String,
    pub inflight: usize,
    pub platform_key: Option<PublicKey>,
    pub command_window: Duration,
    /// Evidence store, to mark bundles acknowledged when their record is delivered.
    pub evidence_dir: Option<PathBuf>,
}

#[derive(Clone)]
pub struct TlsFiles {
    pub ca: Vec<u8>,
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

/// Counters, readable while running.
#[derive(Default)]
pub struct PublisherCounters {
    pub connections: AtomicU64,
    pub published: AtomicU64,
    pub delivered: AtomicU64,
    pub commands: AtomicU64,
    pub commands_rejected: AtomicU64,
    pub connected: AtomicBool,
}

pub struct Publisher {
    pub settings: PublisherSettings,
    pub outbox: Arc<Mutex<Outbox>>,
    /// Notified when records are appended.
    pub wake: Arc<Notify>,
    /// Becomes true on shutdown.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    pub counters: Arc<PublisherCounters>,
    pub registry: Arc<Registry>,
    /// Called with each record id as its PUBACK is matched (benchmarks measure latency with it).
    pub on_delivered: Option<Arc<dyn Fn(i64) + Send + Sync>>,
}

enum Extra {
    Publish { topic: String, payload: Vec<u8>, retain: bool },
}

impl Publisher {
    pub fn status_topic(&self) -> String {
        format!("{}/status", self.settings.base_topic)
    }

    /// Runs until shutdown: connect, deliver, reconnect with backoff (1 s doubling to 30 s).
    pub async fn run(self) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut backoff = Duration::from_secs(1);
        while !*self.shutdown.borrow() {
            let was_connected = self.session().await;
            self.counters.connected.store(false, Ordering::Relaxed);
            if *self.shutdown.borrow() {
                break;
            }
            if was_connected {
                backoff = Duration::from_secs(1);
            }
            debug!(retry_in = ?backoff, "MQTT reconnecting");
            let mut shutdown = self.shutdown.clone();
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    fn options(&self) -> MqttOptions {
        let s = &self.settings;
        let mut options = MqttOptions::new(&s.client_id, &s.host, s.port);
        options.set_keep_alive(s.keepalive);
        options.set_clean_session(true);
        options.set_inflight((s.inflight as u16).saturating_add(16));
        // Incoming: enrolment commands carry photos (base64); outgoing: events are small.
        options.set_max_packet_size(16 << 20, 1 << 20);
        options.set_last_will(LastWill::new(self.status_topic(), "offline", QoS::AtLeastOnce, true));
        if let Some((user, password)) = &s.credentials {
            options.set_credentials(user, password);
        }
        if let Some(tls) = &s.tls {
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
                ca: tls.ca.clone(),
                alpn: None,
                client_auth: tls.client.clone(),
            }));
        }
        options
    }

    /// One connection's lifetime. Returns whether it got connected.
    async fn session(&self) -> bool {
        let (client, mut eventloop) = AsyncClient::new(self.options(), 64);
        // The record (or None for a non-record publish) of each publish call, in call order.
        let tied: Arc<Mutex<VecDeque<Option<i64>>>> = Arc::new(Mutex::new(VecDeque::new()));
        let mut by_pkid: HashMap<u16, Option<i64>> = HashMap::new();
        let window = Arc::new(Semaphore::new(self.settings.inflight.max(1)));
        let (extra_tx, extra_rx) = mpsc::unbounded_channel::<Extra>();
        let mut extra_rx = Some(extra_rx);
        let mut sender: Option<tokio::task::JoinHandle<()>> = None;
        // Verified commands run one after another, in arrival order, off this task: an enrolment decodes
        // photos and runs models, and the event loop must keep polling meanwhile.
        let (run_tx, mut run_rx) = mpsc::unbounded_channel::<commands::Command>();
        let (registry, results) = (self.registry.clone(), extra_tx.clone());
        let base = self.settings.base_topic.clone();
        let runner = tokio::spawn(async move {
            while let Some(command) = run_rx.recv().await {
                let registry = registry.clone();
                let (name, nonce) = (command.name.clone(), command.nonce.clone());
                let outcome = tokio::task::spawn_blocking(move || registry.run(&command))
                    .await
                    .unwrap_or_else(|e| Err(commands::Reject::Failed(format!("the command crashed: {e}"))));
                match &outcome {
                    Ok(_) => info!(command = %name, nonce = %nonce, "command done"),
                    Err(reject) => {
                        warn!(command = %name, reason = reject.code(), detail = %reject.detail(), "command failed")
                    }
                }
                let body = commands::result(&name, Some(&nonce), outcome);
                let _ = results.send(Extra::Publish {
                    topic: format!("{base}/cmd-result/{name}"),
                    payload: serde_json::to_vec(&body).unwrap_or_default(),
                    retain: false,
                });
            }
        });
        let mut connected = false;
        let mut shutdown = self.shutdown.clone();
        let end = loop {
            if *shutdown.borrow() {
                break "shutdown";
            }
            let event = tokio::select! {
                e = eventloop.poll() => e,
                _ = shutdown.changed() => break "shutdown",
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    connected = true;
                    self.counters.connections.fetch_add(1, Ordering::Relaxed);
                    self.counters.connected.store(true, Ordering::Relaxed);
                    info!(host = %self.settings.host, port = self.settings.port, session_present = ack.session_present, "MQTT connected");
                    if let Some(rx) = extra_rx.take() {
                        sender = Some(tokio::spawn(send_loop(SendLoop {
                            client: client.clone(),
                            tied: tied.clone(),
                            window: window.clone(),
                            outbox: self.outbox.clone(),
                            wake: self.wake.clone(),
                            extra: rx,
                            base: self.settings.base_topic.clone(),
                            counters: self.counters.clone(),
                        })));
                    }
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    let record = tied.lock().unwrap().pop_front().flatten();
                    by_pkid.insert(pkid, record);
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    if let Some(Some(id)) = by_pkid.remove(&ack.pkid) {
                        self.delivered(id);
                        window.add_permits(1);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => self.command(&p.topic, &p.payload, &extra_tx, &run_tx),
                Ok(_) => {}
                Err(e) => {
                    if connected {
                        warn!(error = %e, "MQTT connection lost");
                    } else {
                        debug!(error = %e, "MQTT connection failed");
                    }
                    break "error";
                }
            }
        };
        if end == "shutdown" && connected {
            // A clean stop says so (the LWT is only for deaths): retained offline, then disconnect.
            let _ = client.try_publish(self.status_topic(), QoS::AtLeastOnce, true, "offline");
            let _ = client.try_disconnect();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while tokio::time::Instant::now() < deadline {
                match tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await {
                    Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                        if let Some(Some(id)) = by_pkid.remove(&ack.pkid) {
                            self.delivered(id);
                        }
                    }
                    Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                        let record = tied.lock().unwrap().pop_front().flatten();
                        by_pkid.insert(pkid, record);
                    }
                    Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) | Ok(Err(_)) => break,
                    _ => {}
                }
            }
        }
        if let Some(task) = sender {
            task.abort();
        }
        runner.abort();
        connected
    }

    fn delivered(&self, id: i64) {
        let result = self.outbox.lock().unwrap().delivered(id);
        match result {
            Ok(evidence) => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(hook) = &self.on_delivered {
                    hook(id);
                }
                if let (Some(event), Some(dir)) = (evidence, &self.settings.evidence_dir) {
                    if let Err(e) = crate::evidence::store::acknowledge(dir, &event, SystemTime::now()) {
                        warn!(event, error = %e, "cannot mark the evidence bundle acknowledged");
                    }
                }
            }
            Err(e) => error!(record = id, error = %e, "cannot mark a delivered record; it will be sent again"),
        }
    }

    fn command(
        &self,
        topic: &str,
        payload: &[u8],
        extra: &mpsc::UnboundedSender<Extra>,
        run: &mpsc::UnboundedSender<commands::Command>,
    ) {
        let prefix = format!("{}/cmd/", self.settings.base_topic);
        let Some(name) = topic.strip_prefix(&prefix) else { return };
        self.counters.commands.fetch_add(1, Ordering::Relaxed);
        let outbox = self.outbox.clone();
        let mut seen = |nonce: &str, expires: SystemTime| {
            let ms = expires.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(i64::MAX);
            outbox.lock().unwrap().remember_nonce(nonce, ms).map_err(|e| e.to_string())
        };
        let verified = commands::verify(
            name,
            payload,
            self.settings.platform_key.as_ref(),
            self.settings.command_window,
            SystemTime::now(),
            &mut seen,
        );
        let (nonce, reject) = match verified {
            Ok(command) if self.registry.knows(&command.name) => {
                info!(command = %command.name, nonce = %command.nonce, "command accepted");
                let _ = run.send(command);
                return;
            }
            Ok(command) => (Some(command.nonce), commands::Reject::UnknownCommand(command.name)),
            Err((nonce, reject)) => (nonce, reject),
        };
        self.counters.commands_rejected.fetch_add(1, Ordering::Relaxed);
        warn!(command = name, reason = reject.code(), detail = %reject.detail(), "command rejected");
        let body = commands::result(name, nonce.as_deref(), Err(reject));
        let _ = extra.send(Extra::Publish {
            topic: format!("{}/cmd-result/{name}", self.settings.base_topic),
            payload: serde_json::to_vec(&body).unwrap_or_default(),
            retain: false,
        });
    }
}

struct SendLoop {
    client: AsyncClient,
    tied: Arc<Mutex<VecDeque<Option<i64>>>>,
    window: Arc<Semaphore>,
    outbox: Arc<Mutex<Outbox>>,
    wake: Arc<Notify>,
    extra: mpsc::UnboundedReceiver<Extra>,
    base: String,
    counters: Arc<PublisherCounters>,
}

/// All publishing of one connection: subscribe, birth, then records oldest first within the window.
async fn send_loop(mut s: SendLoop) {
    if s.client.subscribe(format!("{}/cmd/+", s.base), QoS::AtLeastOnce).await.is_err() {
        return;
    }
    let publish = |s: &SendLoop, record: Option<i64>, topic: String, payload: Vec<u8>, retain: bool| {
        s.tied.lock().unwrap().push_back(record);
        let client = s.client.clone();
        async move { client.publish(topic, QoS::AtLeastOnce, retain, payload).await.is_ok() }
    };
    if !publish(&s, None, format!("{}/status", s.base), b"online".to_vec(), true).await {
        return;
    }
    let mut last_sent = 0i64;
    loop {
        while let Ok(Extra::Publish { topic, payload, retain }) = s.extra.try_recv() {
            if !publish(&s, None, topic, payload, retain).await {
                return;
            }
        }
        let Ok(permit) = s.window.clone().acquire_owned().await else { return };
        let next = s.outbox.lock().unwrap().pending_after(last_sent, 1);
        match next {
            Ok(records) if !records.is_empty() => {
                let record = records.into_iter().next().unwrap();
                permit.forget();
                last_sent = record.id;
                if !publish(&s, Some(record.id), record.topic, record.payload, false).await {
                    return;
                }
                s.counters.published.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {
                drop(permit);
                tokio::select! {
                    _ = s.wake.notified() => {}
                    Some(Extra::Publish { topic, payload, retain }) = s.extra.recv() => {
                        if !publish(&s, None, topic, payload, retain).await {
                            return;
                        }
                    }
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
            Err(e) => {
                drop(permit);
                error!(error = %e, "cannot read the outbox");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
