//! A real RTSP server on 127.0.0.1 for soak runs and by-hand experiments (not shipped: an example,
//! built with the dev-dependency gstreamer-rtsp-server).
//!
//!     cargo run --example rtsp_test_server -- --port 8554 [--short-secs 4]
//!
//! Serves H.264 Main 640×360 at 25 fps:
//! - `rtsp://127.0.0.1:PORT/live`: a moving test pattern, endless, shared by all clients;
//! - `rtsp://127.0.0.1:PORT/short`: a clip of `--short-secs` seconds served without looping: each client
//!   gets its own stream, which ends (a camera whose stream stops every few seconds).
//!
//! Runs until killed; killing and restarting it is how a soak run makes cameras drop.

use gstreamer as gst;
use gstreamer::glib;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn encoded(source: &str) -> String {
    format!(
        "( {source} ! video/x-raw,format=I420,width=640,height=360,framerate=25/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=800 ! video/x-h264,profile=main \
         ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
}

fn main() {
    let port = arg("--port").unwrap_or_else(|| "8554".into());
    let short_secs: u32 = arg("--short-secs").and_then(|s| s.parse().ok()).unwrap_or(4);
    gst::init().expect("GStreamer");
    let server = rtsp::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(&port);
    let mounts = server.mount_points().expect("mount points");

    let live = rtsp::RTSPMediaFactory::new();
    live.set_launch(&encoded("videotestsrc is-live=true pattern=ball"));
    live.set_shared(true);
    mounts.add_factory("/live", live);

    let short = rtsp::RTSPMediaFactory::new();
    short.set_launch(&encoded(&format!("videotestsrc is-live=true pattern=smpte num-buffers={}", short_secs * 25)));
    short.set_shared(false);
    short.set_eos_shutdown(true);
    mounts.add_factory("/short", short);

    let _id = server.attach(None).expect("cannot listen (port taken?)");
    eprintln!("rtsp_test_server: rtsp://127.0.0.1:{port}/live and /short ({short_secs} s, no loop)");
    glib::MainLoop::new(None, false).run();
}
