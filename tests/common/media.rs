//! Generated test media: H.264 clips composed frame by frame with a known timeline, and decoding them
//! back, with GStreamer.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use image::RgbImage;

/// Encodes `count` frames of `width`×`height` at `fps` into an MP4 (H.264 Main, 4:2:0, a keyframe
/// every `gop` frames). `frame(i)` draws frame i.
pub fn encode_clip(
    path: &Path,
    width: u32,
    height: u32,
    fps: u32,
    count: usize,
    gop: u32,
    mut frame: impl FnMut(usize) -> RgbImage,
) {
    gst::init().unwrap();
    let description = format!(
        "appsrc name=src format=time caps=video/x-raw,format=RGB,width={width},height={height},framerate={fps}/1 \
         ! videoconvert ! video/x-raw,format=I420 \
         ! x264enc speed-preset=ultrafast key-int-max={gop} bitrate=3000 ! video/x-h264,profile=main \
         ! h264parse ! mp4mux ! filesink name=out"
    );
    let pipeline = gst::parse::launch(&description).unwrap().downcast::<gst::Pipeline>().unwrap();
    pipeline.by_name("out").unwrap().set_property("location", path.to_str().unwrap());
    let src = pipeline.by_name("src").unwrap().downcast::<gst_app::AppSrc>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    for i in 0..count {
        let img = frame(i);
        assert_eq!(img.dimensions(), (width, height));
        let mut buffer = gst::Buffer::from_mut_slice(img.into_raw());
        let b = buffer.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_nseconds(i as u64 * 1_000_000_000 / u64::from(fps)));
        b.set_duration(gst::ClockTime::from_nseconds(1_000_000_000 / u64::from(fps)));
        src.push_buffer(buffer).unwrap();
    }
    src.end_of_stream().unwrap();
    let bus = pipeline.bus().unwrap();
    let msg =
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(120), &[gst::MessageType::Eos, gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(matches!(msg.as_ref().map(|m| m.view()), Some(gst::MessageView::Eos(_))), "encoding failed: {msg:?}");
}

/// Plays an MP4's H.264 stream through `middle` into an appsink, as fast as possible.
fn play_into_appsink(path: &Path, middle: &str) -> (gst::Pipeline, gst_app::AppSink) {
    gst::init().unwrap();
    let description = format!("filesrc name=src ! qtdemux ! h264parse ! {middle} ! appsink name=sink sync=false");
    let pipeline = gst::parse::launch(&description).unwrap().downcast::<gst::Pipeline>().unwrap();
    pipeline.by_name("src").unwrap().set_property("location", path.to_str().unwrap());
    let sink = pipeline.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    (pipeline, sink)
}

/// Decodes every frame of an MP4 (as fast as possible), with its presentation time from the start.
pub fn decode_clip(path: &Path) -> Vec<(Duration, RgbImage)> {
    let (pipeline, sink) = play_into_appsink(path, "avdec_h264 ! videoconvert ! video/x-raw,format=RGB");
    let mut frames = Vec::new();
    let mut first = None;
    while let Ok(sample) = sink.pull_sample() {
        let caps = sample.caps().unwrap();
        let s = caps.structure(0).unwrap();
        let (w, h) = (s.get::<i32>("width").unwrap() as usize, s.get::<i32>("height").unwrap() as usize);
        let buffer = sample.buffer().unwrap();
        let pts = buffer.pts().unwrap();
        let first = *first.get_or_insert(pts);
        let map = buffer.map_readable().unwrap();
        let stride = map.len() / h;
        let mut pixels = Vec::with_capacity(w * h * 3);
        for row in 0..h {
            pixels.extend_from_slice(&map[row * stride..row * stride + w * 3]);
        }
        frames.push((
            Duration::from_nanos((pts - first).nseconds()),
            RgbImage::from_raw(w as u32, h as u32, pixels).unwrap(),
        ));
    }
    pipeline.set_state(gst::State::Null).unwrap();
    frames
}

/// Keyframe flags of an MP4's video stream, in order (demuxed, not decoded).
pub fn keyframes(path: &Path) -> Vec<bool> {
    let (pipeline, sink) = play_into_appsink(path, "identity");
    let mut flags = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        flags.push(!sample.buffer().unwrap().flags().contains(gst::BufferFlags::DELTA_UNIT));
    }
    pipeline.set_state(gst::State::Null).unwrap();
    flags
}

/// Adds deterministic pseudo-random noise of ±`amplitude` grey levels, different for each `seed`:
/// the sensor noise that makes a real static scene differ from frame to frame.
pub fn add_noise(img: &mut RgbImage, amplitude: i32, seed: u64) {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    for p in img.pixels_mut() {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let n = ((state >> 33) % (2 * amplitude as u64 + 1)) as i32 - amplitude;
        for c in p.0.iter_mut() {
            *c = (i32::from(*c) + n).clamp(0, 255) as u8;
        }
    }
}

/// Scales every channel by `factor` (lighting change).
pub fn scale_brightness(img: &mut RgbImage, factor: f32) {
    for p in img.pixels_mut() {
        for c in p.0.iter_mut() {
            *c = (f32::from(*c) * factor).round().clamp(0.0, 255.0) as u8;
        }
    }
}

/// A still scene as a camera sees it: `img` with fresh sensor noise (± `noise`) in each of `count`
/// frames, 10 fps, a keyframe every 2 s.
pub fn still_clip(path: &Path, img: &RgbImage, count: usize, noise: i32) {
    encode_clip(path, img.width(), img.height(), 10, count, 20, |i| {
        let mut frame = img.clone();
        add_noise(&mut frame, noise, i as u64);
        frame
    });
}
