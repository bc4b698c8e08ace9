//! The GStreamer pipeline of one camera:
//!
//! ```text
//! source (rtspsrc | filesrc+demux | videotestsrc+x264enc) ! h264parse ! h264timestamper ! tee
//!   tee ! queue ! splitmuxsink (≈10 s fragmented MP4 segments, H.264 as received: no re-encode)
//!   tee ! queue (leaky) ! identity name=gate ! avdec_h264 max-threads=1 direct-rendering=false
//!       ! videoscale ! videoconvert ! RGB ≤ analysis_max_width ! appsink → FrameSlot (latest frame wins)
//! ```
//! With a `detect_url` (a camera's low-resolution sub-stream) there is no tee: `url`'s source feeds the
//! recording branch and `detect_url`'s the decoding branch, in the same pipeline, so one supervisor runs
//! both and a failure of either restarts both.
//!
//! The decoding branch, stage by stage, and why:
//! - The queue before the decoder is leaky (8 units): a decoder that falls behind loses frames, never
//!   the recording. A probe on its sink pad numbers the units (in the buffer's `offset`) so the gate
//!   sees what the queue dropped.
//! - `gate` carries a buffer probe on its sink pad driving [`DecodeGate`]: keyframes only, every frame,
//!   or as the camera's [`DecodeControl`] says, with the GOP replayed on a switch to full (pushed on
//!   the gate's source pad from the probe, on the same streaming thread, so order is kept); and no
//!   delta after a gap until the next keyframe, so no corrupt frame is decoded (see [`super::decode`]).
//! - `avdec_h264 max-threads=1`: cameras are the parallelism (as ONNX Runtime's `threads = 1`); frame
//!   threads would each hold frames and add a frame of latency per thread. 1080p25 fits one thread.
//! - `direct-rendering=false`: with it on, avdec_h264 decodes a 1080p stream (coded 1920×1088) into a
//!   pool of its own and copies each frame into a second, 1920×1080 pool anyway (videoscale takes no
//!   crop), so a camera held two pools of 3 MB frames. Off, libavcodec keeps its reference frames and
//!   the copy goes to the one output pool: 4.75 MB less per camera (8 keyframes cameras 391 → 353 MB),
//!   the same CPU decoding every frame (750 1080p frames: 4.46–4.72 s on, 4.55–4.62 s off).
//! - Except for cameras that decode keyframes only, a [`RateGate`] on the decoder's source pad drops
//!   decoded frames beyond `analysis_fps` (by timestamp, fractions exact) before they are converted;
//!   keyframes (0.5 fps at a 2 s GOP) pass unthinned. It replaces `videorate drop-only max-rate` (a
//!   whole-fps first cut, blind to streams that report a variable frame rate) with the exact cut at
//!   the same place; a replay burst is thinned there too, so only the frames analysis gets are
//!   converted.
//! - `videoscale ! videoconvert`: scaled first, in the decoder's I420 (1.5 bytes a pixel), then only
//!   the output pixels are converted to RGB. The other order (as before) converted every 1080p pixel
//!   and kept a pool of full-size RGB frames (6 MB each). GStreamer 1.22's single `videoconvertscale`
//!   saves that pool too but converts before scaling (as much CPU as the old order); CPU time for 750
//!   1080p frames decoded (2.06 s alone) and 150 of them made 1280×720 RGB: convert+scale 3.05 s,
//!   videoconvertscale 3.05 s, scale+convert 2.7 s. It costs 1.4 MB a camera more than
//!   videoconvertscale (the I420 pool).
//! - appsink keeps one buffer and drops older ones; its callback copies the frame out (respecting the
//!   row stride) into the [`FrameSlot`]. `enable-last-sample=false`: a sink otherwise holds on to the
//!   last buffer it rendered, which kept a second RGB frame of videoconvert's pool alive for nothing
//!   (2.8 MB a camera at 1280×720).
//!
//! Segments are fragmented MP4 (a fragment per second), so a segment open when the process is killed
//! still plays up to its last complete fragment (the file sink is unbuffered). Each segment file is named by the wall-clock time of
//! its first frame (Unix milliseconds), which is how clips are found later.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use image::RgbImage;

use super::decode::{Action, DecodeControl, DecodeGate, StoreLimits, Unit};
use super::rate::RateGate;
use super::settings::{Decode, StreamSettings as Camera, Transport};
use super::slot::FrameSlot;
use super::{Frame, SourceError};
use crate::clock::Clock;
use crate::redact::redact_url;

/// What a pipeline reports to its supervisor, shared with the streaming threads.
#[derive(Default)]
pub struct PipelineStats {
    /// Frames decoded and handed to the slot.
    pub frames: AtomicU64,
    /// Milliseconds since the Unix epoch of the last frame (0: none yet).
    pub last_frame_ms: AtomicU64,
    /// Set once the supervisor has given up on this pipeline: its frames are dropped from then on, so a
    /// pipeline being torn down (or left behind, stuck) never ends an outage the supervisor announced.
    retired: RwLock<bool>,
    /// Of `frames`, those already added to the camera's counters ([`PipelineStats::uncounted`]).
    counted: AtomicU64,
}

impl PipelineStats {
    /// Frames decoded since the last call: the camera's running total follows its pipeline while it runs
    /// (not only when the run ends), so `/metrics` and the console see a camera that never restarts.
    pub fn uncounted(&self) -> u64 {
        let frames = self.frames.load(Ordering::Relaxed);
        frames.saturating_sub(self.counted.swap(frames, Ordering::Relaxed))
    }

    /// The wall time of the last frame, if any came.
    pub fn last_frame(&self) -> Option<SystemTime> {
        let ms = self.last_frame_ms.load(Ordering::Relaxed);
        (ms != 0).then(|| UNIX_EPOCH + Duration::from_millis(ms))
    }

    /// Stops this pipeline's frames reaching the slot; when it returns, none will.
    pub fn retire(&self) {
        *self.retired.write().unwrap_or_else(|e| e.into_inner()) = true;
    }
}

/// Options of a camera pipeline that do not come from the camera's own config.
#[derive(Clone)]
pub struct PipelineOptions {
    /// Where this camera's segments go: `<recordings_dir>/<camera id>/`. None: no recording.
    pub recordings: Option<PathBuf>,
    /// Target segment length.
    pub segment: Duration,
    /// The wall clock frames and segments are stamped with.
    pub clock: Arc<dyn Clock>,
    /// The decode mode the camera's analysis asks for (obeyed with [`Decode::OnDemand`]).
    pub decode: Arc<DecodeControl>,
}

pub fn init() -> Result<(), SourceError> {
    gst::init().map_err(|e| SourceError::Init(e.to_string()))
}

fn element_exists(name: &str) -> bool {
    gst::ElementFactory::find(name).is_some()
}

/// The launch description up to the encoded H.264 elementary stream of `url`, its source element named
/// `name`.
fn source_description(camera: &Camera, url: &str, name: &str) -> Result<String, SourceError> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    Ok(match scheme {
        "rtsp" | "rtsps" => {
            let protocols = match camera.transport {
                Transport::Tcp => "tcp",
                Transport::Udp => "udp",
            };
            // The location is set as a property afterwards, so credentials never pass through a string
            // GStreamer could echo in an error.
            format!("rtspsrc name={name} protocols={protocols} latency=200 tcp-timeout=5000000 ! rtph264depay")
        }
        "file" => {
            let demux = if rest.to_ascii_lowercase().ends_with(".mkv") { "matroskademux" } else { "qtdemux" };
            // Paced to the clock, so a file behaves like a live camera: recording, analysis and the
            // latest-frame hand-over see frames at the rate they were shot.
            format!("filesrc name={name} ! {demux} ! identity sync=true")
        }
        "test" => format!(
            "videotestsrc name={name} is-live=true pattern={rest} ! video/x-raw,format=I420,width=1280,height=720,framerate=25/1 \
             ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=50 bitrate=2000 \
             ! video/x-h264,profile=main"
        ),
        other => return Err(SourceError::Unsupported(other.to_owned())),
    })
}

/// Builds (but does not start) the pipeline of `camera`.
pub fn build(
    camera: &Camera,
    options: &PipelineOptions,
    slot: Arc<FrameSlot>,
    stats: Arc<PipelineStats>,
) -> Result<gst::Pipeline, SourceError> {
    let timestamper = if element_exists("h264timestamper") { "! h264timestamper " } else { "" };
    // Set in the description, not afterwards: linking requests splitmuxsink's pad, which creates the
    // first muxer with whatever properties are set at that moment. muxer-properties take effect only
    // with async-finalize. The file sink is unbuffered (buffer-mode 2): each 1 s fragment reaches the
    // disk at once, so a clip can be cut from the open segment even of a camera that sends a few kB/s
    // (a covered lens). splitmuxsink cuts before the GOP that would cross max-size-time, so a little
    // over the target keeps segments at the target length.
    let record = |input: &str| {
        format!(
            "{input} ! queue name=recq max-size-buffers=0 max-size-bytes=0 max-size-time=5000000000 \
             ! splitmuxsink name=rec async-finalize=true muxer-factory=mp4mux \
             muxer-properties=\"properties,fragment-duration=(uint)1000\" \
             sink-properties=\"properties,buffer-mode=(int)2\" max-size-time={} ",
            (options.segment + Duration::from_millis(100)).as_nanos()
        )
    };
    let parse = format!("h264parse config-interval=-1 {timestamper}");
    let decode = format!(
        "queue name=decq leaky=downstream max-size-buffers=8 max-size-bytes=0 max-size-time=0 \
         ! identity name=gate silent=true ! avdec_h264 name=dec max-threads=1 direct-rendering=false \
         ! videoscale ! videoconvert ! video/x-raw,format=RGB,width=[16,{width}],pixel-aspect-ratio=1/1 \
         ! appsink name=frames enable-last-sample=false",
        width = camera.analysis_max_width,
    );
    let recording = options.recordings.is_some();
    let description = match &camera.detect_url {
        None => format!(
            "{source} ! {parse}! tee name=t {record}t. ! {decode}",
            source = source_description(camera, &camera.url, "src")?,
            record = if recording { record("t.") } else { String::new() },
        ),
        // Without recording the main stream is not read at all.
        Some(detect) => format!(
            "{record}{source} ! {parse}! {decode}",
            source = source_description(camera, detect, "dsrc")?,
            record = if recording {
                record(&format!("{} ! {parse}", source_description(camera, &camera.url, "src")?))
            } else {
                String::new()
            },
        ),
    };
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| SourceError::Build(format!("{e} (pipeline: {description})")))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| SourceError::Build("not a pipeline".into()))?;

    let by_name = |name: &str| pipeline.by_name(name).ok_or_else(|| SourceError::Build(format!("no element {name}")));
    let sources = [("src", Some(&camera.url)), ("dsrc", camera.detect_url.as_ref())];
    for (name, url) in sources {
        let Some(url) = url else { continue };
        let Some(element) = pipeline.by_name(name) else { continue };
        if let Some(rest) = url.strip_prefix("file://") {
            element.set_property("location", rest);
        } else if url.starts_with("rtsp") {
            element.set_property("location", url.as_str());
        }
    }
    install_gate(&by_name("decq")?, &by_name("gate")?, camera.decode, options.decode.clone())?;
    if camera.decode != Decode::Keyframes {
        install_rate_gate(&by_name("dec")?, camera.analysis_fps)?;
    }

    if let Some(dir) = &options.recordings {
        std::fs::create_dir_all(dir).map_err(|e| SourceError::Recording(format!("{}: {e}", dir.display())))?;
        let rec = by_name("rec")?;
        let (dir, clock) = (dir.clone(), options.clock.clone());
        rec.connect("format-location-full", false, move |args| {
            let element = args[0].get::<gst::Element>().ok()?;
            let sample = args[2].get::<gst::Sample>().ok();
            let wall = sample.as_ref().and_then(|s| wall_time_of(&element, s, &*clock)).unwrap_or_else(|| clock.now());
            Some(segment_path(&dir, wall).to_string_lossy().into_owned().to_value())
        });
    }

    let sink = by_name("frames")?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| SourceError::Build("frames is not an appsink".into()))?;
    sink.set_max_buffers(1);
    sink.set_drop(true);
    // Sources are live or paced already; rendering on time would only add latency.
    sink.set_sync(false);
    let camera_id: Arc<str> = Arc::from(camera.id.as_str());
    let clock = options.clock.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let retired = stats.retired.read().unwrap_or_else(|e| e.into_inner());
                if *retired {
                    return Ok(gst::FlowSuccess::Ok);
                }
                let frame = to_frame(sink.upcast_ref(), &sample, stats.frames.load(Ordering::Relaxed), &*clock)
                    .map_err(|e| {
                        gst::element_error!(sink, gst::StreamError::Decode, ("camera {camera_id}: {e}"));
                        gst::FlowError::Error
                    })?;
                let ms = frame.captured.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
                slot.put(frame);
                stats.frames.fetch_add(1, Ordering::Relaxed);
                stats.last_frame_ms.store(ms, Ordering::Relaxed);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(pipeline)
}

/// What a buffer probe returns to drop the buffer. `Handled` (the probe consumed it), not `Drop`: with
/// gstreamer-rs, which takes the buffer out of the probe's info, GStreamer 1.22 then unrefs a null
/// pointer for `Drop` and logs a critical warning on every dropped buffer.
const DROP: gst::PadProbeReturn = gst::PadProbeReturn::Handled;

/// Numbers the encoded units entering the decoder's queue and puts the [`DecodeGate`] on `gate`'s sink
/// pad, pushing replays on its source pad.
fn install_gate(
    queue: &gst::Element,
    gate: &gst::Element,
    decode: Decode,
    control: Arc<DecodeControl>,
) -> Result<(), SourceError> {
    let pad = |element: &gst::Element, name: &str| {
        element.static_pad(name).ok_or_else(|| SourceError::Build(format!("no pad {name} on {}", element.name())))
    };
    let next = AtomicU64::new(0);
    // Runs on the upstream thread, before the queue may leak. tee hands the same buffer to the
    // recording branch: making it writable copies the buffer's header only, not its data.
    pad(queue, "sink")?.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data {
            buffer.make_mut().set_offset(next.fetch_add(1, Ordering::Relaxed));
        }
        gst::PadProbeReturn::Ok
    });
    let src = pad(gate, "src")?;
    let state = std::sync::Mutex::new(DecodeGate::new(decode, control, StoreLimits::default()));
    pad(gate, "sink")?.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(gst::PadProbeData::Buffer(buffer)) = &info.data else { return gst::PadProbeReturn::Ok };
        let unit = Unit {
            keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
            seq: Some(buffer.offset()),
            bytes: buffer.size(),
            time: buffer.dts_or_pts().map(|t| Duration::from_nanos(t.nseconds())),
            buffer: buffer.clone(),
        };
        let action = state.lock().unwrap_or_else(|e| e.into_inner()).admit(unit);
        match action {
            Action::Pass => gst::PadProbeReturn::Ok,
            Action::Drop => DROP,
            Action::Replay(stored) => {
                // The stream lock held here is the gate's sink pad's; pushing on its source pad goes
                // straight to the decoder, ahead of the unit being probed.
                for buffer in stored {
                    if src.push(buffer).is_err() {
                        // Flushing or shutting down: the unit being probed meets the same fate.
                        return DROP;
                    }
                }
                gst::PadProbeReturn::Ok
            }
        }
    });
    Ok(())
}

/// Thins decoded frames to `fps` on the decoder's source pad, before conversion.
fn install_rate_gate(decoder: &gst::Element, fps: f64) -> Result<(), SourceError> {
    let src = decoder.static_pad("src").ok_or_else(|| SourceError::Build("no pad src on the decoder".into()))?;
    let gate = std::sync::Mutex::new(RateGate::new(fps));
    src.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(gst::PadProbeData::Buffer(buffer)) = &info.data else { return gst::PadProbeReturn::Ok };
        let Some(pts) = buffer.pts() else { return gst::PadProbeReturn::Ok };
        if gate.lock().unwrap_or_else(|e| e.into_inner()).admit(Duration::from_nanos(pts.nseconds())) {
            gst::PadProbeReturn::Ok
        } else {
            DROP
        }
    });
    Ok(())
}

/// Whether a bus message comes from the recording branch (its queue, splitmuxsink, or the muxer and
/// file sink inside it): a failed write there is a recording failure, not a camera failure.
pub fn from_recording_branch(pipeline: &gst::Pipeline, message: &gst::Message) -> bool {
    let Some(src) = message.src() else { return false };
    ["rec", "recq"].iter().filter_map(|name| pipeline.by_name(name)).any(|branch| {
        let branch = branch.upcast_ref::<gst::Object>();
        src == branch || src.has_as_ancestor(branch)
    })
}

/// `<dir>/<unix ms, 13 digits>.mp4`: names sort by time.
pub fn segment_path(dir: &Path, start: SystemTime) -> PathBuf {
    let ms = start.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    dir.join(format!("{ms:013}.mp4"))
}

/// Wall-clock time at which the sample's buffer was (or will be) rendered: now, minus how far the
/// element's running time is past the buffer's.
fn wall_time_of(element: &gst::Element, sample: &gst::Sample, clock: &dyn Clock) -> Option<SystemTime> {
    let buffer = sample.buffer()?;
    let pts = buffer.pts()?;
    let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
    let buffer_rt = segment.to_running_time(pts)?;
    let now_rt = element.current_running_time()?;
    let now = clock.now();
    Some(if now_rt >= buffer_rt {
        now - Duration::from_nanos((now_rt - buffer_rt).nseconds())
    } else {
        now + Duration::from_nanos((buffer_rt - now_rt).nseconds())
    })
}

/// Copies a decoded RGB sample into an image, respecting the row stride.
fn to_frame(element: &gst::Element, sample: &gst::Sample, seq: u64, clock: &dyn Clock) -> Result<Frame, String> {
    let caps = sample.caps().ok_or("sample without caps")?;
    let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| format!("bad caps {caps}: {e}"))?;
    let buffer = sample.buffer().ok_or("sample without buffer")?;
    let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
        .map_err(|e| format!("cannot map frame: {e}"))?;
    let (w, h) = (info.width() as usize, info.height() as usize);
    let stride = frame.plane_stride()[0] as usize;
    let data = frame.plane_data(0).map_err(|e| format!("no plane 0: {e}"))?;
    let mut pixels = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        pixels.extend_from_slice(&data[row * stride..row * stride + w * 3]);
    }
    let image = RgbImage::from_raw(w as u32, h as u32, pixels).ok_or("frame size mismatch")?;
    let captured = wall_time_of(element, sample, clock).unwrap_or_else(|| clock.now());
    Ok(Frame { image, captured, seq, keyframe })
}

/// The URL as it may appear in logs (credentials replaced, see [`crate::redact`]), with the analysis
/// sub-stream's if there is one.
pub fn display_url(camera: &Camera) -> String {
    match &camera.detect_url {
        None => redact_url(&camera.url),
        Some(detect) => format!("{} (analysis: {})", redact_url(&camera.url), redact_url(detect)),
    }
}

/// Text GStreamer produced with the camera's credentials removed, in case it echoed a URL.
pub fn scrub(text: &str, camera: &Camera) -> String {
    let text = crate::redact::scrub_text(text, &camera.url);
    match &camera.detect_url {
        None => text,
        Some(detect) => crate::redact::scrub_text(&text, detect),
    }
}
