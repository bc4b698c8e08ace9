//! systemd's notify protocol and watchdog, as systemd sees them: the test binds the `NOTIFY_SOCKET`
//! datagram socket and runs the real `vigil run` (a looped file:// camera, a real mosquitto) with
//! `WATCHDOG_USEC=2000000`. The agent says READY=1 and pings WATCHDOG=1 regularly; with an analysis
//! thread hung by the test-only fault injection, the pings stop and the WARN and STATUS= name it.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::agent::Platform;
use common::mqtt::Mosquitto;

/// `vigil run` under a pretend systemd: its notifications arrive on `socket`.
struct Notified {
    child: Child,
    log: PathBuf,
    socket: UnixDatagram,
    /// Every notification received so far, in order.
    received: Vec<String>,
}

impl Notified {
    fn start(config: &Path, dir: &Path, name: &str, env: &[(&str, &str)]) -> Notified {
        let path = dir.join(format!("{name}.sock"));
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let log = dir.join(format!("{name}.log"));
        let mut cmd = common::vigil();
        cmd.current_dir(dir).env("NOTIFY_SOCKET", &path).env("WATCHDOG_USEC", "2000000").env_remove("WATCHDOG_PID");
        cmd.env_remove("VIGIL_TEST_HANG_ANALYSIS");
        for (key, value) in env {
            cmd.env(key, value);
        }
        let child =
            cmd.arg("run").arg("--config").arg(config).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
        Notified { child, log, socket, received: Vec::new() }
    }

    /// Receives until `done` holds for what arrived from now on, or `limit` passes.
    fn until(&mut self, limit: Duration, mut done: impl FnMut(&[String]) -> bool) -> bool {
        let from = self.received.len();
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        while start.elapsed() < limit {
            if done(&self.received[from..]) {
                return true;
            }
            if let Ok(n) = self.socket.recv(&mut buf) {
                self.received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        done(&self.received[from..])
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGINT; waits for the clean exit and returns the log.
    fn stop(mut self) -> (String, Vec<String>) {
        Command::new("kill").arg("-INT").arg(self.child.id().to_string()).status().unwrap();
        let status = self.child.wait().unwrap();
        self.until(Duration::from_millis(500), |_| false);
        let log = self.log_text();
        assert!(status.success(), "agent exit {status}; log:\n{log}");
        (log, std::mem::take(&mut self.received))
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pings(messages: &[String]) -> usize {
    messages.iter().filter(|m| m.lines().any(|l| l == "WATCHDOG=1")).count()
}

fn ready(messages: &[String]) -> bool {
    messages.iter().any(|m| m.lines().any(|l| l == "READY=1"))
}

#[test]
fn ready_then_pings_and_a_hung_analysis_thread_stops_them() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let broker = Mosquitto::start(&dir.join("broker"));
    let platform = Platform::new(dir);
    let clip = dir.join("ward.mp4");
    let room = vigil::analyze::image::frame_from(&common::face_photo("obama.jpg"), 640, 360);
    common::media::still_clip(&clip, &room, 40, 4);
    let config = dir.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "{}[[cameras]]\nid = \"ward\"\nrole = \"settlement_window\"\nurl = \"file://{}\"\nloop = true\n",
            common::agent::config_head(broker.port, &platform),
            clip.display()
        ),
    )
    .unwrap();
    let out = common::vigil().current_dir(dir).args(["keys", "init", "--config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Healthy: READY=1 once set up, with the running status, then a ping every second.
    let mut agent = Notified::start(&config, dir, "healthy", &[]);
    assert!(agent.until(Duration::from_secs(90), ready), "no READY=1: {:?}\n{}", agent.received, agent.log_text());
    let ready_message = agent.received.iter().find(|m| m.contains("READY=1")).unwrap();
    assert!(ready_message.contains("STATUS=running: 1 cameras"), "{ready_message}");
    assert!(
        agent.until(Duration::from_secs(15), |m| pings(m) >= 5),
        "fewer than 5 WATCHDOG=1 in 15 s: {:?}\n{}",
        agent.received,
        agent.log_text()
    );
    let (log, received) = agent.stop();
    assert!(received.iter().any(|m| m.contains("STOPPING=1")), "no STOPPING=1: {received:?}");
    assert!(!log.contains("made no progress"), "a healthy agent called a thread stuck:\n{log}");
    let ready_at = received.iter().position(|m| m.contains("READY=1")).unwrap();
    assert_eq!(pings(&received[..ready_at]), 0, "pings before READY=1: {received:?}");

    // The ward camera's analysis thread hangs after its first frame: the pings stop, and the WARN and
    // STATUS= name the thread.
    let mut agent = Notified::start(&config, dir, "hung", &[("VIGIL_TEST_HANG_ANALYSIS", "ward")]);
    assert!(agent.until(Duration::from_secs(90), ready), "no READY=1: {:?}\n{}", agent.received, agent.log_text());
    assert!(
        agent.until(Duration::from_secs(20), |m| m.iter().any(|m| m == "STATUS=stuck: ana-ward")),
        "no STATUS=stuck: ana-ward: {:?}\n{}",
        agent.received,
        agent.log_text()
    );
    let log = agent.log_text();
    let warn = log.lines().find(|l| l.contains("made no progress")).unwrap_or_else(|| panic!("no WARN:\n{log}"));
    assert!(warn.contains("WARN") && warn.contains("ana-ward"), "{warn}");
    assert!(!warn.contains("cam-ward") && !warn.contains("publisher"), "only the hung thread is named: {warn}");
    // Stuck for good: no ping in 4 s (two intervals).
    let from = agent.received.len();
    agent.until(Duration::from_secs(4), |_| false);
    assert_eq!(pings(&agent.received[from..]), 0, "pings went on: {:?}", &agent.received[from..]);
    let (_, received) = agent.stop();
    assert!(received.iter().any(|m| m.contains("STOPPING=1")), "no STOPPING=1: {received:?}");
}
