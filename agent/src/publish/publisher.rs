//! The MQTT publisher (docs/outbox.md): one task polls rumqttc's event loop and ties each
//! `Outgoing::Publish(pkid)` to the record sent under it; only the matching `PubAck` deletes the record
//! from the outbox. Another task does all publishing (records, birth, command results), so the order of
//! publish calls — and therefore of pkids — is known. A lost connection drops its pkid map; the next
//! connection (a new event loop, clean session) resends every undelivered record, oldest first.
//!
//! Connection trouble is the operator's business (docs/outbox.md, "Connection failures"): every failed
//! attempt is classified ([`Failure`]: DNS, refused, TLS `UnknownIssuer`, client certificate rejected,
//! CONNACK refusals…); an outage is told once at WARN with its cause (again if the cause changes), the
//! further attempts at DEBUG with their count, a WARN reminder every five minutes while it lasts, and one
//! line when it ends saying how long it lasted and how many events waited. Reconnection is fast: 0.5 s
//! doubling to 5 s with jitter, so delivery resumes within seconds of the broker's return.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, LastWill, MqttOptions, Outgoing, Packet, QoS, StateError,
    TlsConfiguration, Transport,
};
use tokio::sync::{Notify, Semaphore, mpsc};
use tracing::{debug, error, info, warn};

use super::commands::{self, Registry};
use super::events::{self, EvidenceHead};
use super::health::{self as health_payload, Health};
use crate::evidence::keys::PublicKey;
use crate::histogram::Histogram;
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
}

/// The TLS files' contents (PEM): the CA that signs the broker's certificate, and the client
/// certificate and key when the broker wants one.
#[derive(Clone)]
pub struct TlsFiles {
    pub ca: Vec<u8>,
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

/// A TLS file that cannot be used; nothing can connect until it is fixed.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("mqtt.tls.ca_file: {0}")]
    Ca(String),
    #[error("mqtt.tls.client_cert: {0}")]
    ClientCert(String),
    #[error("mqtt.tls.client_key: {0}")]
    ClientKey(String),
    #[error("mqtt.tls: {0}")]
    Rustls(rustls::Error),
}

impl TlsFiles {
    /// The rustls client configuration. Built here rather than by rumqttc (`TlsConfiguration::Simple`)
    /// so that a bad file is reported once, by name, before any connection, and so that rumqttc's own
    /// PEM path (rustls-pemfile, unmaintained) is never run; certificates are verified by rustls 0.23
    /// with its rustls-webpki 0.103 (docs/outbox.md, "Dependencies and advisories").
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certificates = |pem: &[u8]| {
            CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())
                .and_then(|certs| if certs.is_empty() { Err("no PEM certificate in it".to_owned()) } else { Ok(certs) })
        };
        let mut roots = rustls::RootCertStore::empty();
        for ca in certificates(&self.ca).map_err(TlsSetupError::Ca)? {
            roots.add(ca).map_err(|e| TlsSetupError::Ca(format!("not a usable CA certificate: {e}")))?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(TlsSetupError::Rustls)?
            .with_root_certificates(roots);
        let config = match &self.client {
            Some((cert, key)) => {
                let chain = certificates(cert).map_err(TlsSetupError::ClientCert)?;
                let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsSetupError::ClientKey(e.to_string()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsSetupError::ClientKey(format!("unusable with the client certificate: {e}")))?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

/// The first reconnection delay, doubled after each failure up to [`RETRY_MAX`]; each delay is drawn
/// between half and all of it (jitter: agents that lost the same broker do not return in step).
const RETRY_FIRST: Duration = Duration::from_millis(500);
/// The longest delay between attempts: how late delivery can resume after the broker is back.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// A connection that lasted this long starts the delays over from [`RETRY_FIRST`]; a shorter one (a
/// broker that accepts then drops us) keeps backing off.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// While the broker stays unreachable, a WARN reminder this often.
const REMIND_EVERY: Duration = Duration::from_secs(300);
/// How often the delivery and outbox counters are logged.
const COUNTERS_EVERY: Duration = Duration::from_secs(300);

/// Why a connection attempt failed or a connection was lost, in an operator's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The broker's host name does not resolve.
    Dns(String),
    /// Nothing listens on the broker's port (or a firewall rejects).
    Refused,
    /// No route to the broker's host or network.
    Unreachable(String),
    /// No complete TCP, TLS and MQTT handshake within the connection timeout.
    Timeout,
    /// The broker's certificate is not signed by the configured CA.
    UnknownIssuer,
    /// The broker's certificate is otherwise unacceptable (expired, issued for another name…).
    BrokerCertificate(String),
    /// The broker wants a client certificate and none is configured.
    ClientCertificateRequired,
    /// The broker refused the client certificate (the TLS alert it sent).
    ClientCertificateRejected(String),
    /// Another TLS failure.
    Tls(String),
    /// The broker answered CONNECT with a refusal.
    Refusal(ConnectReturnCode),
    /// The broker closed the connection.
    Closed,
    /// Anything else, as rumqttc put it.
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Dns(e) => write!(f, "the broker's host name does not resolve (DNS): {e}"),
            Failure::Refused => write!(f, "connection refused: nothing listens on the broker's port"),
            Failure::Unreachable(e) => write!(f, "the broker's host is unreachable: {e}"),
            Failure::Timeout => write!(f, "no answer from the broker within the connection timeout"),
            Failure::UnknownIssuer => {
                write!(f, "TLS: the broker's certificate is not signed by the CA in mqtt.tls.ca_file (UnknownIssuer)")
            }
            Failure::BrokerCertificate(e) => write!(f, "TLS: the broker's certificate is not acceptable: {e}"),
            Failure::ClientCertificateRequired => write!(
                f,
                "TLS: the broker requires a client certificate (alert CertificateRequired): \
                 set mqtt.tls.client_cert and mqtt.tls.client_key"
            ),
            Failure::ClientCertificateRejected(alert) => write!(
                f,
                "TLS: the broker rejected the client certificate (alert {alert}): check mqtt.tls.client_cert, \
                 mqtt.tls.client_key and the CA the broker trusts"
            ),
            Failure::Tls(e) => write!(f, "TLS: {e}"),
            Failure::Refusal(code) => {
                let (number, what) = match code {
                    ConnectReturnCode::Success => (0, "a CONNACK that is not a refusal"),
                    ConnectReturnCode::RefusedProtocolVersion => (1, "the broker does not accept MQTT 3.1.1"),
                    ConnectReturnCode::BadClientId => (2, "the broker refused the client id (mqtt.client_id)"),
                    ConnectReturnCode::ServiceUnavailable => (3, "the broker says it is unavailable"),
                    ConnectReturnCode::BadUserNamePassword => {
                        (4, "the broker refused the user name or password (mqtt.username, mqtt.password_file)")
                    }
                    ConnectReturnCode::NotAuthorized => (5, "the broker says this client is not authorized"),
                };
                write!(f, "{what} (CONNACK return code {number})")
            }
            Failure::Closed => write!(f, "the broker closed the connection"),
            Failure::Other(e) => write!(f, "{e}"),
        }
    }
}

impl Failure {
    /// Finds the cause in rumqttc's error: its variants, then the error chain down to the `io::Error`
    /// and the `rustls::Error` inside it (rumqttc and tokio-rustls wrap TLS failures in I/O errors).
    pub fn of(error: &ConnectionError) -> Failure {
        match error {
            ConnectionError::ConnectionRefused(code) => return Failure::Refusal(*code),
            ConnectionError::NetworkTimeout => return Failure::Timeout,
            _ => {}
        }
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = next {
            if let Some(tls) = e.downcast_ref::<rustls::Error>() {
                return Failure::of_tls(tls);
            }
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                // `io::Error::source` skips its own payload: look at it first.
                if let Some(tls) = io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                    return Failure::of_tls(tls);
                }
                use std::io::ErrorKind as Kind;
                match io.kind() {
                    Kind::ConnectionRefused => return Failure::Refused,
                    Kind::HostUnreachable | Kind::NetworkUnreachable => return Failure::Unreachable(io.to_string()),
                    Kind::TimedOut => return Failure::Timeout,
                    Kind::ConnectionReset | Kind::ConnectionAborted | Kind::UnexpectedEof | Kind::BrokenPipe => {
                        return Failure::Closed;
                    }
                    // The standard library reports getaddrinfo failures with this message and no kind.
                    _ if io.to_string().contains("failed to lookup address") => return Failure::Dns(io.to_string()),
                    _ => {}
                }
            }
            if let Some(StateError::ConnectionAborted) = e.downcast_ref::<StateError>() {
                return Failure::Closed;
            }
            next = e.source();
        }
        Failure::Other(error.to_string())
    }

    fn of_tls(error: &rustls::Error) -> Failure {
        use rustls::{AlertDescription as Alert, CertificateError};
        match error {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => Failure::UnknownIssuer,
            rustls::Error::InvalidCertificate(e) => Failure::BrokerCertificate(format!("{e:?}")),
            rustls::Error::AlertReceived(Alert::CertificateRequired) => Failure::ClientCertificateRequired,
            rustls::Error::AlertReceived(
                alert @ (Alert::BadCertificate
                | Alert::UnsupportedCertificate
                | Alert::CertificateRevoked
                | Alert::CertificateExpired
                | Alert::CertificateUnknown
                | Alert::UnknownCA
                | Alert::AccessDenied),
            ) => Failure::ClientCertificateRejected(format!("{alert:?}")),
            e => Failure::Tls(e.to_string()),
        }
    }
}

/// The operator's view of the broker connection: an outage is told once at WARN (and again if its
/// cause changes), each further failed attempt only at DEBUG, a WARN reminder every [`REMIND_EVERY`]
/// while it lasts, and its end once. Times are arguments so tests can drive it.
#[derive(Default)]
struct Link {
    outage: Option<Outage>,
}

struct Outage {
    since: Instant,
    /// Failed attempts (and lost connections) in this outage.
    failures: u64,
    cause: Failure,
    /// When the operator was last told at WARN.
    told: Instant,
}

/// How loudly to log a failure.
#[derive(Debug, PartialEq, Eq)]
enum Loudness {
    /// A new outage or a new cause.
    Warn,
    /// The same again: DEBUG, with the count.
    Debug,
}

impl Link {
    /// An attempt failed or a connection was lost.
    fn failed(&mut self, now: Instant, cause: Failure) -> (Loudness, u64) {
        match &mut self.outage {
            Some(outage) => {
                outage.failures += 1;
                if outage.cause == cause {
                    return (Loudness::Debug, outage.failures);
                }
                outage.cause = cause;
                outage.told = now;
                (Loudness::Warn, outage.failures)
            }
            None => {
                self.outage = Some(Outage { since: now, failures: 1, cause, told: now });
                (Loudness::Warn, 1)
            }
        }
    }

    /// Connected: the outage, if there was one, ends; returns how long it lasted and its failures.
    fn connected(&mut self, now: Instant) -> Option<(Duration, u64)> {
        self.outage.take().map(|o| (now.saturating_duration_since(o.since), o.failures))
    }

    /// A reminder is due: how long the outage has lasted, its failures and its last cause.
    fn remind(&mut self, now: Instant) -> Option<(Duration, u64, Failure)> {
        let outage = self.outage.as_mut()?;
        if now.saturating_duration_since(outage.told) < REMIND_EVERY {
            return None;
        }
        outage.told = now;
        Some((now.saturating_duration_since(outage.since), outage.failures, outage.cause.clone()))
    }
}

/// Delays between connection attempts: [`RETRY_FIRST`] doubling to [`RETRY_MAX`], with jitter.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff { next: RETRY_FIRST }
    }

    fn reset(&mut self) {
        self.next = RETRY_FIRST;
    }

    fn delay(&mut self) -> Duration {
        use ring::rand::SecureRandom;
        let nominal = self.next;
        self.next = (nominal * 2).min(RETRY_MAX);
        let mut bytes = [0u8; 2];
        // Without randomness (never seen) the full delay is still a correct delay.
        let draw = match ring::rand::SystemRandom::new().fill(&mut bytes) {
            Ok(()) => f64::from(u16::from_le_bytes(bytes)) / f64::from(u16::MAX),
            Err(_) => 1.0,
        };
        nominal.mul_f64(0.5 + 0.5 * draw)
    }
}

/// A duration for the log, to the millisecond.
fn span(d: Duration) -> String {
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
}

/// How one connection ended.
struct Ended {
    /// How long it was connected (None: it never got a CONNACK).
    connected_for: Option<Duration>,
    /// The failure; None on shutdown.
    error: Option<ConnectionError>,
}

/// How often the publisher's loops turn at least, for its progress counter.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Counters, readable while running.
pub struct PublisherCounters {
    pub connections: AtomicU64,
    pub published: AtomicU64,
    pub delivered: AtomicU64,
    pub commands: AtomicU64,
    pub commands_rejected: AtomicU64,
    pub connected: AtomicBool,
    /// Turns of the publisher's loops, at least once a second while it runs, idle or not: standing still
    /// means the publisher is stuck (the systemd watchdog watches it).
    pub progress: Arc<AtomicU64>,
    /// From a record's PUBLISH leaving to its PUBACK, for each record counted in `delivered`.
    pub ack_latency: Histogram,
}

impl Default for PublisherCounters {
    fn default() -> Self {
        PublisherCounters {
            connections: AtomicU64::new(0),
            published: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            commands: AtomicU64::new(0),
            commands_rejected: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            progress: Arc::default(),
            ack_latency: Histogram::new(crate::histogram::ACK_BOUNDS),
        }
    }
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
    /// Called for each record once its PUBACK is matched and the outbox has let it go: the runtime marks
    /// the record's evidence bundle acknowledged with it (the publisher never touches evidence files);
    /// benchmarks measure latency with it.
    pub on_delivered: Option<Arc<dyn Fn(&Delivered) + Send + Sync>>,
    /// The evidence chain's head, published retained on `…/evidence/head` on every connection and
    /// whenever it changes (the runtime passes it in: the publisher reads no evidence files).
    pub head: Option<tokio::sync::watch::Receiver<Option<EvidenceHead>>>,
    /// The box's health, published retained on `…/health` on every connection and whenever the runtime
    /// sends a new one. Not through the outbox: a state, of which only the newest matters, so while the
    /// broker is away the channel keeps the last one instead of queueing them all.
    pub health: Option<tokio::sync::watch::Receiver<Option<Health>>>,
}

/// A record the broker acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The outbox record id.
    pub record: i64,
    /// The event whose evidence bundle the record announced, if it did.
    pub evidence: Option<String>,
}

enum Extra {
    Publish { topic: String, payload: Vec<u8>, retain: bool },
}

impl Publisher {
    pub fn status_topic(&self) -> String {
        format!("{}/status", self.settings.base_topic)
    }

    /// Runs until shutdown: connect, deliver, reconnect after a failure (0.5 s doubling to 5 s, jittered),
    /// telling the operator about outages (module docs).
    pub async fn run(self) {
        let tls = match self.settings.tls.as_ref().map(TlsFiles::client_config).transpose() {
            Ok(tls) => tls,
            Err(e) => {
                error!(host = %self.settings.host, error = %e,
                    "MQTT TLS settings unusable: nothing is delivered until they are fixed (events wait in the outbox)");
                let mut shutdown = self.shutdown.clone();
                while !*shutdown.borrow() {
                    self.counters.progress.fetch_add(1, Ordering::Relaxed);
                    if let Ok(Err(_)) = tokio::time::timeout(PROGRESS_EVERY, shutdown.changed()).await {
                        break;
                    }
                }
                return;
            }
        };
        let link = Arc::new(Mutex::new(Link::default()));
        let reporter = tokio::spawn(report(
            link.clone(),
            self.outbox.clone(),
            self.counters.clone(),
            self.settings.host.clone(),
            self.shutdown.clone(),
        ));
        let mut backoff = Backoff::new();
        while !*self.shutdown.borrow() {
            let ended = self.session(tls.clone(), &link).await;
            self.counters.connected.store(false, Ordering::Relaxed);
            let Some(error) = ended.error else { break };
            if *self.shutdown.borrow() {
                break;
            }
            let cause = Failure::of(&error);
            let (host, port) = (&self.settings.host, self.settings.port);
            let (loudness, failures) = link.lock().unwrap().failed(Instant::now(), cause.clone());
            match (ended.connected_for, loudness) {
                (Some(up), _) => {
                    warn!(host = %host, port, cause = %cause, up_for = %span(up), waiting = self.waiting(),
                    "MQTT connection lost; reconnecting (events wait in the outbox)")
                }
                (None, Loudness::Warn) => warn!(host = %host, port, cause = %cause, error = %error,
                    waiting = self.waiting(), "MQTT cannot connect to the broker; retrying (events wait in the outbox)"),
                (None, Loudness::Debug) => debug!(host = %host, port, cause = %cause, failures,
                    "MQTT connection attempt failed again"),
            }
            if ended.connected_for.is_some_and(|up| up >= STABLE_AFTER) {
                backoff.reset();
            }
            let delay = backoff.delay();
            debug!(retry_in = %span(delay), "MQTT reconnecting");
            let mut shutdown = self.shutdown.clone();
            let retry_at = tokio::time::Instant::now() + delay;
            while tokio::time::Instant::now() < retry_at {
                self.counters.progress.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    _ = tokio::time::sleep_until(retry_at.min(tokio::time::Instant::now() + PROGRESS_EVERY)) => {}
                    _ = shutdown.changed() => break,
                }
            }
        }
        reporter.abort();
    }

    /// Undelivered records in the outbox.
    fn waiting(&self) -> u64 {
        self.outbox.lock().unwrap().len().unwrap_or(0)
    }

    fn options(&self, tls: Option<Arc<rustls::ClientConfig>>) -> MqttOptions {
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
        if let Some(config) = tls {
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
        }
        options
    }

    /// One connection's lifetime.
    async fn session(&self, tls: Option<Arc<rustls::ClientConfig>>, link: &Mutex<Link>) -> Ended {
        let (client, mut eventloop) = AsyncClient::new(self.options(tls), 64);
        // The record (or None for a non-record publish) of each publish call, in call order.
        let tied: Arc<Mutex<VecDeque<Option<i64>>>> = Arc::new(Mutex::new(VecDeque::new()));
        // The record (or None) of each pkid in flight, and when its PUBLISH left.
        let mut by_pkid: HashMap<u16, (Option<i64>, Instant)> = HashMap::new();
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
        let mut connected: Option<Instant> = None;
        let mut shutdown = self.shutdown.clone();
        let mut progress = tokio::time::interval(PROGRESS_EVERY);
        let error = 'session: loop {
            if *shutdown.borrow() {
                break None;
            }
            self.counters.progress.fetch_add(1, Ordering::Relaxed);
            // The poll is not cancelled by the progress ticks (an idle connection polls for seconds).
            let poll = eventloop.poll();
            tokio::pin!(poll);
            let event = loop {
                tokio::select! {
                    e = &mut poll => break e,
                    _ = progress.tick() => {
                        self.counters.progress.fetch_add(1, Ordering::Relaxed);
                    }
                    _ = shutdown.changed() => break 'session None,
                }
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    let now = Instant::now();
                    connected = Some(now);
                    self.counters.connections.fetch_add(1, Ordering::Relaxed);
                    self.counters.connected.store(true, Ordering::Relaxed);
                    let (host, port) = (&self.settings.host, self.settings.port);
                    let outage = link.lock().unwrap().connected(now);
                    match outage {
                        Some((down_for, failures)) => info!(host = %host, port, down_for = %span(down_for), failures,
                            waiting = self.waiting(), "MQTT connected again after an outage; sending the waiting events"),
                        None => info!(host = %host, port, session_present = ack.session_present, "MQTT connected"),
                    }
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
                            head: self.head.clone(),
                            health: self.health.clone(),
                        })));
                    }
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    let record = tied.lock().unwrap().pop_front().flatten();
                    by_pkid.insert(pkid, (record, Instant::now()));
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    if let Some((Some(id), sent)) = by_pkid.remove(&ack.pkid) {
                        self.delivered(id, sent.elapsed());
                        window.add_permits(1);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => self.command(&p.topic, &p.payload, &extra_tx, &run_tx),
                Ok(_) => {}
                // Told by `run`, with its cause.
                Err(e) => break Some(e),
            }
        };
        if error.is_none() && connected.is_some() {
            // A clean stop says so (the LWT is only for deaths): retained offline, then disconnect.
            let _ = client.try_publish(self.status_topic(), QoS::AtLeastOnce, true, "offline");
            let _ = client.try_disconnect();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while tokio::time::Instant::now() < deadline {
                match tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await {
                    Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                        if let Some((Some(id), sent)) = by_pkid.remove(&ack.pkid) {
                            self.delivered(id, sent.elapsed());
                        }
                    }
                    Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                        let record = tied.lock().unwrap().pop_front().flatten();
                        by_pkid.insert(pkid, (record, Instant::now()));
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
        Ended { connected_for: connected.map(|at| at.elapsed()), error }
    }

    /// Record `id` was acknowledged `latency` after its PUBLISH left.
    fn delivered(&self, id: i64, latency: Duration) {
        let result = self.outbox.lock().unwrap().delivered(id);
        match result {
            Ok(evidence) => {
                self.counters.ack_latency.observe(latency);
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(hook) = &self.on_delivered {
                    hook(&Delivered { record: id, evidence });
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

/// While the publisher runs: the WARN reminder of an ongoing outage, and the counters every
/// [`COUNTERS_EVERY`] (docs/outbox.md: `dropped` among them).
async fn report(
    link: Arc<Mutex<Link>>,
    outbox: Arc<Mutex<Outbox>>,
    counters: Arc<PublisherCounters>,
    host: String,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let mut counted = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return },
        }
        let now = Instant::now();
        let reminder = link.lock().unwrap().remind(now);
        if let Some((down_for, failures, cause)) = reminder {
            let waiting = outbox.lock().unwrap().len().unwrap_or(0);
            warn!(host = %host, down_for = %span(down_for), failures, cause = %cause, waiting,
                "MQTT still cannot reach the broker; events wait in the outbox");
        }
        if now.saturating_duration_since(counted) >= COUNTERS_EVERY {
            counted = now;
            let (undelivered, kept) = {
                let outbox = outbox.lock().unwrap();
                (outbox.len().unwrap_or(0), outbox.counters())
            };
            let c = &counters;
            info!(
                connected = c.connected.load(Ordering::Relaxed),
                connections = c.connections.load(Ordering::Relaxed),
                published = c.published.load(Ordering::Relaxed),
                delivered = c.delivered.load(Ordering::Relaxed),
                undelivered,
                appended = kept.appended,
                dropped = kept.dropped,
                commands = c.commands.load(Ordering::Relaxed),
                commands_rejected = c.commands_rejected.load(Ordering::Relaxed),
                "delivery counters"
            );
        }
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
    head: Option<tokio::sync::watch::Receiver<Option<EvidenceHead>>>,
    health: Option<tokio::sync::watch::Receiver<Option<Health>>>,
}

/// Resolves when a retained state (the head, the health) changes; never without one to watch (or once
/// its sender is gone).
async fn head_changed<T>(head: &mut Option<tokio::sync::watch::Receiver<Option<T>>>) {
    if let Some(rx) = head {
        if rx.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}

/// The head to publish now: the current one when `all` (a new connection, or [`head_changed`] fired),
/// else only one that changed meanwhile.
fn head_to_send<T: Clone>(head: &mut Option<tokio::sync::watch::Receiver<Option<T>>>, all: bool) -> Option<T> {
    let rx = head.as_mut()?;
    if !all && !rx.has_changed().unwrap_or(false) {
        return None;
    }
    rx.borrow_and_update().clone()
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
    let head_topic = events::head_topic(&s.base);
    let health_topic = health_payload::health_topic(&s.base);
    // The current head and health on a new connection, then each change.
    let (mut send_head, mut send_health) = (true, true);
    let mut last_sent = 0i64;
    loop {
        if let Some(head) = head_to_send(&mut s.head, std::mem::take(&mut send_head)) {
            let payload = serde_json::to_vec(&events::to_json(&head)).unwrap_or_default();
            if !publish(&s, None, head_topic.clone(), payload, true).await {
                return;
            }
        }
        if let Some(health) = head_to_send(&mut s.health, std::mem::take(&mut send_health)) {
            let payload = serde_json::to_vec(&health).unwrap_or_default();
            if !publish(&s, None, health_topic.clone(), payload, true).await {
                return;
            }
        }
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
                    _ = head_changed(&mut s.head) => send_head = true,
                    _ = head_changed(&mut s.health) => send_health = true,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn io_tls(e: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn connection_failures_are_named_by_their_cause() {
        let unknown_issuer = || io_tls(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer));
        // As rumqttc wraps a failed handshake (tls_connect), a failed read of the CONNACK, a TCP connect.
        let cases = [
            (ConnectionError::Tls(rumqttc::TlsError::Io(unknown_issuer())), Failure::UnknownIssuer),
            (ConnectionError::Io(unknown_issuer()), Failure::UnknownIssuer),
            (
                ConnectionError::MqttState(StateError::Deserialization(rumqttc::Error::Io(io_tls(
                    rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
                )))),
                Failure::ClientCertificateRequired,
            ),
            (
                ConnectionError::Io(io_tls(rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA))),
                Failure::ClientCertificateRejected("UnknownCA".into()),
            ),
            (
                ConnectionError::Io(io_tls(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName,
                ))),
                Failure::BrokerCertificate("NotValidForName".into()),
            ),
            (ConnectionError::Io(io::Error::from(io::ErrorKind::ConnectionRefused)), Failure::Refused),
            (ConnectionError::MqttState(StateError::ConnectionAborted), Failure::Closed),
            (ConnectionError::NetworkTimeout, Failure::Timeout),
            (
                ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword),
                Failure::Refusal(ConnectReturnCode::BadUserNamePassword),
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(Failure::of(&error), expected, "{error:?}");
        }
        let dns = io::Error::other("failed to lookup address information: Name or service not known");
        assert!(matches!(Failure::of(&ConnectionError::Io(dns)), Failure::Dns(_)));
        let said = Failure::Refusal(ConnectReturnCode::BadUserNamePassword).to_string();
        assert!(said.contains("user name or password") && said.contains("CONNACK return code 4"), "{said}");
        assert!(Failure::UnknownIssuer.to_string().contains("mqtt.tls.ca_file"));
    }

    #[test]
    fn an_outage_is_told_once_then_reminded_then_ended() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut link = Link::default();
        assert_eq!(link.failed(at(0), Failure::Refused), (Loudness::Warn, 1));
        assert_eq!(link.failed(at(5), Failure::Refused), (Loudness::Debug, 2));
        assert!(link.remind(at(60)).is_none());
        // The broker comes back with the wrong certificate: a new cause is told.
        assert_eq!(link.failed(at(100), Failure::UnknownIssuer), (Loudness::Warn, 3));
        assert_eq!(link.failed(at(105), Failure::UnknownIssuer), (Loudness::Debug, 4));
        assert!(link.remind(at(399)).is_none(), "reminded sooner than REMIND_EVERY after the last WARN");
        let (down_for, failures, cause) = link.remind(at(400)).unwrap();
        assert_eq!((down_for, failures, cause), (Duration::from_secs(400), 4, Failure::UnknownIssuer));
        assert!(link.remind(at(450)).is_none());
        assert!(link.remind(at(700)).is_some());
        assert_eq!(link.connected(at(730)), Some((Duration::from_secs(730), 4)));
        assert_eq!(link.connected(at(740)), None, "connected twice: only one outage ended");
        assert!(link.remind(at(2000)).is_none());
        // The next loss starts a new outage, told again.
        assert_eq!(link.failed(at(2000), Failure::Closed), (Loudness::Warn, 1));
    }

    #[test]
    fn reconnect_delays_grow_to_five_seconds_with_jitter() {
        let mut backoff = Backoff::new();
        let delays: Vec<Duration> = (0..8).map(|_| backoff.delay()).collect();
        let nominal = [500, 1000, 2000, 4000, 5000, 5000, 5000, 5000];
        for (delay, ms) in delays.iter().zip(nominal) {
            let ms = Duration::from_millis(ms);
            assert!(*delay >= ms / 2 && *delay <= ms, "{delay:?} outside [{:?}, {ms:?}]", ms / 2);
        }
        backoff.reset();
        assert!(backoff.delay() <= RETRY_FIRST);
        let draws: std::collections::HashSet<Duration> = (0..20).map(|_| Backoff::new().delay()).collect();
        assert!(draws.len() > 1, "no jitter: {draws:?}");
    }

    #[test]
    fn unusable_tls_files_are_named() {
        let files = TlsFiles { ca: b"not a certificate".to_vec(), client: None };
        let e = files.client_config().err().expect("garbage accepted as a CA");
        assert!(e.to_string().starts_with("mqtt.tls.ca_file: no PEM certificate"), "{e}");
    }
}
