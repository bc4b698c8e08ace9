//! `vigil-demo-scenes`: the demo's camera clips, composed from registry photos (PyPI face_recognition's
//! test images) so that every event the demo shows has a known cause:
//! - `window.mp4`: a settlement counter with Obama at it (obama2.jpg);
//! - `ward-empty.mp4`: a ward room with two made, empty beds (the installer's empty reference);
//! - `ward.mp4`: the same room with Obama lying in bed 1 (obama3.jpg); bed 2 stays empty.
//!
//! Each is a still picture with fresh sensor noise in every frame (a perfectly still picture is what a
//! frozen camera sends), 20 s at 1280×720, 10 fps, a keyframe every 2 s; the agent loops them (a
//! reference is taken from the fifth frame a camera decodes: a ward camera decodes keyframes only).
//!
//!     vigil-demo-scenes SAMPLES_DIR OUT_DIR

use std::path::Path;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use image::RgbImage;

const W: u32 = 1280;
const H: u32 = 720;

fn room() -> RgbImage {
    RgbImage::from_fn(W, H, |x, y| {
        let shade = ((x / 40 + y / 40) % 2 * 4) as u8;
        if y < H * 55 / 100 { image::Rgb([180 + shade, 175, 160]) } else { image::Rgb([120, 110 + shade, 100]) }
    })
}

fn fill(img: &mut RgbImage, x0: u32, y0: u32, w: u32, h: u32, color: [u8; 3]) {
    for y in y0..(y0 + h).min(H) {
        for x in x0..(x0 + w).min(W) {
            img.put_pixel(x, y, image::Rgb(color));
        }
    }
}

fn paste(img: &mut RgbImage, photo: &RgbImage, x: u32, y: u32, height: u32) {
    let width = photo.width() * height / photo.height();
    let scaled = image::imageops::resize(photo, width, height, image::imageops::FilterType::Triangle);
    image::imageops::overlay(img, &scaled, i64::from(x), i64::from(y));
}

/// The ward: bed 1 (left) and bed 2 (right), as config/demo.toml's regions draw them.
fn ward(lying: Option<&RgbImage>) -> RgbImage {
    let mut img = room();
    fill(&mut img, 100, 380, 480, 220, [200, 215, 235]);
    fill(&mut img, 700, 380, 480, 220, [200, 215, 235]);
    if let Some(person) = lying {
        paste(&mut img, &image::imageops::rotate270(person), 120, 400, 180);
    }
    img
}

/// The counter: the customer's head and shoulders behind the window.
fn window(person: &RgbImage) -> RgbImage {
    let mut img = room();
    fill(&mut img, 0, 560, W, 160, [70, 70, 80]);
    paste(&mut img, person, 440, 60, 520);
    img
}

fn add_noise(img: &mut RgbImage, amplitude: i32, seed: u64) {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    for p in img.pixels_mut() {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let n = ((state >> 33) % (2 * amplitude as u64 + 1)) as i32 - amplitude;
        for c in p.0.iter_mut() {
            *c = (i32::from(*c) + n).clamp(0, 255) as u8;
        }
    }
}

/// Encodes `count` noisy frames of `img` into an MP4 (H.264 Main, 4:2:0).
fn still_clip(path: &Path, img: &RgbImage, count: u64) -> Result<(), String> {
    let description = format!(
        "appsrc name=src format=time caps=video/x-raw,format=RGB,width={W},height={H},framerate=10/1 \
         ! videoconvert ! video/x-raw,format=I420 \
         ! x264enc speed-preset=ultrafast key-int-max=20 bitrate=3000 ! video/x-h264,profile=main \
         ! h264parse ! mp4mux ! filesink name=out"
    );
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| format!("GStreamer: {e} (install gstreamer1.0-plugins-ugly for x264enc)"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline")?;
    pipeline.by_name("out").ok_or("no filesink")?.set_property("location", path.to_string_lossy().as_ref());
    let src = pipeline.by_name("src").ok_or("no appsrc")?.downcast::<gst_app::AppSrc>().map_err(|_| "appsrc")?;
    pipeline.set_state(gst::State::Playing).map_err(|e| e.to_string())?;
    for i in 0..count {
        let mut frame = img.clone();
        add_noise(&mut frame, 3, i);
        let mut buffer = gst::Buffer::from_mut_slice(frame.into_raw());
        let b = buffer.get_mut().ok_or("buffer")?;
        b.set_pts(gst::ClockTime::from_mseconds(i * 100));
        b.set_duration(gst::ClockTime::from_mseconds(100));
        src.push_buffer(buffer).map_err(|e| e.to_string())?;
    }
    src.end_of_stream().map_err(|e| e.to_string())?;
    let bus = pipeline.bus().ok_or("no bus")?;
    let msg =
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(120), &[gst::MessageType::Eos, gst::MessageType::Error]);
    let _ = pipeline.set_state(gst::State::Null);
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => Ok(()),
        other => Err(format!("encoding {} failed: {other:?}", path.display())),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [samples, out] = args.as_slice() else {
        eprintln!("usage: vigil-demo-scenes SAMPLES_DIR OUT_DIR");
        std::process::exit(2);
    };
    let run = || -> Result<(), String> {
        gst::init().map_err(|e| e.to_string())?;
        let photo = |name: &str| {
            image::open(Path::new(samples).join(name)).map(|i| i.to_rgb8()).map_err(|e| format!("{name}: {e}"))
        };
        let out = Path::new(out);
        std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
        let lying = photo("obama3.jpg")?;
        still_clip(&out.join("window.mp4"), &window(&photo("obama2.jpg")?), 200)?;
        still_clip(&out.join("ward-empty.mp4"), &ward(None), 200)?;
        still_clip(&out.join("ward.mp4"), &ward(Some(&lying)), 200)?;
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("vigil-demo-scenes: {e}");
        std::process::exit(1);
    }
}
