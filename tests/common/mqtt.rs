//! A real mosquitto broker on 127.0.0.1 for the tests, a subscriber that records what the platform
//! would see, and an in-process publisher.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// mosquitto on 127.0.0.1:`port`, persistence in `dir` (so a restart keeps subscriber sessions).
pub struct Mosquitto {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl Mosquitto {
    pub fn start(dir: &Path) -> Mosquitto {
        let mut m = Mosquitto { child: None, port: free_port(), dir: dir.to_owned() };
        m.restart();
        m
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let conf = self.dir.join("mosquitto.conf");
        let persist = self.dir.join("persist");
        std::fs::create_dir_all(&persist).unwrap();
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nuser root\n",
                self.port,
                persist.display()
            ),
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (scripts/setup installs it)");
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(10), "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the broker (SIGTERM: it saves its sessions, as a real broker restart would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A platform-side subscriber with a persistent session: records (topic, payload, retained) in order.
pub struct Subscriber {
    pub messages: Arc<Mutex<Vec<(String, Vec<u8>, bool)>>>,
    runtime: tokio::runtime::Runtime,
    pub client: AsyncClient,
}

impl Subscriber {
    pub fn start(port: u16, filter: &str) -> Subscriber {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let mut options = MqttOptions::new(format!("platform-{}", uuid::Uuid::now_v7().simple()), "127.0.0.1", port);
        options.set_clean_session(false);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 1000);
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        let sub = client.clone();
        let filter = filter.to_owned();
        let subscribed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = subscribed.clone();
        runtime.spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = sub.subscribe(&filter, QoS::AtLeastOnce).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => flag.store(true, std::sync::atomic::Ordering::Relaxed),
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        sink.lock().unwrap().push((p.topic.clone(), p.payload.to_vec(), p.retain))
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        let start = Instant::now();
        while !subscribed.load(std::sync::atomic::Ordering::Relaxed) {
            assert!(start.elapsed() < Duration::from_secs(10), "subscriber did not subscribe");
            std::thread::sleep(Duration::from_millis(20));
        }
        Subscriber { messages, runtime, client }
    }

    pub fn publish(&self, topic: &str, payload: Vec<u8>) {
        let client = self.client.clone();
        let topic = topic.to_owned();
        self.runtime.block_on(async move { client.publish(topic, QoS::AtLeastOnce, false, payload).await.unwrap() });
    }

    pub fn payloads(&self, topic_part: &str) -> Vec<serde_json::Value> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _, _)| t.contains(topic_part))
            .filter_map(|(_, p, _)| serde_json::from_slice(p).ok())
            .collect()
    }

    pub fn wait_for(&self, limit: Duration, mut done: impl FnMut(&[(String, Vec<u8>, bool)]) -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if done(&self.messages.lock().unwrap()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

/// Settings of an in-process publisher talking to 127.0.0.1:`port` as site `hosp`, device `edge`.
pub fn settings(
    port: u16,
    platform_key: Option<vigil::evidence::keys::PublicKey>,
) -> vigil::publish::publisher::PublisherSettings {
    vigil::publish::publisher::PublisherSettings {
        host: "127.0.0.1".into(),
        port,
        client_id: format!("vigil-test-{}", uuid::Uuid::now_v7().simple()),
        credentials: None,
        keepalive: Duration::from_secs(5),
        tls: None,
        base_topic: "vigil/v1/hosp/edge".into(),
        inflight: 32,
        platform_key,
        command_window: Duration::from_secs(300),
    }
}

pub fn wait(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
