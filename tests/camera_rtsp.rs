//! A camera behind a real RTSP server on 127.0.0.1 (gstreamer-rtsp-server, in a child process so it can
//! really die): the agent's pipeline streams, records, notices the server's death, retries with backoff
//! and streams again after the restart — with one `camera_offline` and one `camera_online`.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;
use vigil::config::{Camera, Role};
use vigil::decide::{Decision, DecisionKind};
use vigil::source::camera::{CameraCounters, CameraWorker};
use vigil::source::slot::FrameSlot;

const CHILD_ENV: &str = "VIGIL_TEST_RTSP_PORT";

/// Not a test: the body of the RTSP server child process (re-executed test binary). Serves a live test
/// pattern as H.264 at rtsp://127.0.0.1:PORT/cam until killed.
#[test]
fn rtsp_server_child() {
    let Ok(port) = std::env::var(CHILD_ENV) else { return };
    gst::init().unwrap();
    let server = rtsp::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(&port);
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(
        "( videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=640,height=360,framerate=25/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=800 ! video/x-h264,profile=main \
         ! rtph264pay name=pay0 pt=96 config-interval=1 )",
    );
    factory.set_shared(true);
    server.mount_points().unwrap().add_factory("/cam", factory);
    let _id = server.attach(None).unwrap();
    glib::MainLoop::new(None, false).run();
}

struct Server(Child);

impl Server {
    fn start(port: u16) -> Server {
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "rtsp_server_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, port.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Server(child)
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn camera(url: String) -> Camera {
    let text = format!("id = \"door\"\nrole = \"settlement_window\"\nurl = \"{url}\"\nstall_secs = 4\n");
    let camera: Camera = toml::from_str(&text).unwrap();
    assert_eq!(camera.role, Role::SettlementWindow);
    camera
}

#[test]
fn stream_survives_an_rtsp_server_restart() {
    gst::init().unwrap();
    let port = free_port();
    let mut server = Server::start(port);
    let recordings = tempfile::tempdir().unwrap();
    let slot = Arc::new(FrameSlot::default());
    let (tx, rx) = mpsc::channel::<Decision>();
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(CameraCounters::default());
    let worker = CameraWorker {
        camera: camera(format!("rtsp://127.0.0.1:{port}/cam")).stream(),
        recordings: Some(recordings.path().join("door")),
        segment: Duration::from_secs(4),
        max_recording_bytes: 1 << 30,
        slot: slot.clone(),
        health: Arc::new(tx),
        shutdown: stop.clone(),
        restart: None,
        counters: counters.clone(),
        supervision: Default::default(),
        decode: Default::default(),
    };
    let thread = std::thread::spawn(move || worker.run());

    // The server may take a moment to listen; the worker retries with backoff until it does.
    assert!(wait_until(Duration::from_secs(30), || slot.delivered() > 25), "no frames from the RTSP server");
    let before = slot.take(Duration::from_secs(1)).expect("a frame");
    assert_eq!(before.image.dimensions(), (640, 360));

    server.kill();
    let offline = rx.recv_timeout(Duration::from_secs(20)).expect("camera_offline after the server died");
    assert!(matches!(offline.kind, DecisionKind::CameraOffline { .. }), "{offline:?}");
    // Let a few retries fail while the server is down: still one offline decision.
    std::thread::sleep(Duration::from_secs(4));
    let frames_while_down = slot.delivered();

    let restarted = Instant::now();
    let _server = Server::start(port);
    let online = rx.recv_timeout(Duration::from_secs(30)).expect("camera_online within 30 s of the restart");
    assert!(matches!(online.kind, DecisionKind::CameraOnline), "{online:?}");
    assert!(restarted.elapsed() < Duration::from_secs(30));
    assert!(
        wait_until(Duration::from_secs(10), || slot.delivered() > frames_while_down + 25),
        "frames do not flow again"
    );

    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
    let extra: Vec<Decision> = rx.try_iter().collect();
    assert!(extra.is_empty(), "one offline and one online only; also got {extra:?}");
    assert!(counters.restarts.load(Ordering::Relaxed) >= 2, "retries while the server was down");
    let segments = vigil::source::recorder::segments(&recordings.path().join("door")).unwrap();
    assert!(!segments.is_empty(), "nothing recorded");
}
