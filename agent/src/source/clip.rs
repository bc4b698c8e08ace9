//! Cutting a clip [from, to] out of a camera's recorded segments, without re-encoding.
//!
//! 1. Pick the segments that overlap the interval (each file is named by its first frame's wall time).
//! 2. Read their H.264 access units (demux + parse to byte-stream with SPS/PPS in every keyframe, so
//!    segments from different pipeline runs join cleanly) and give each a wall time: segment start +
//!    (PTS − the segment's first PTS).
//! 3. Keep from the last keyframe at or before `from` to the last frame at or before `to`, re-stamp the
//!    timestamps to start at zero, and mux them into one ordinary (non-fragmented, faststart) MP4.
//!
//! The clip therefore starts on a keyframe, contains the whole interval that was recorded, and plays
//! anywhere. Time in the clip maps back to wall time by `ClipInfo::start`.
//!
//! What the recording does not hold of the interval is named in `ClipInfo::missing`: before its first
//! frame, between two frames further apart than a few frame intervals, after its last frame. A camera
//! that was offline leaves such holes, and so does a crash: the recorder writes video a GOP and a
//! fragment (1 s) behind the live stream (splitmuxsink holds each GOP until the next keyframe, the muxer
//! each fragment until it is complete), so a SIGKILL loses the last GOP plus up to one second.

use std::path::Path;
use std::time::{Duration, SystemTime};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::SourceError;
use super::recorder::{self, Segment};

/// What was cut.
#[derive(Debug, Clone)]
pub struct ClipInfo {
    /// Wall time of the clip's first frame (a keyframe at or before the requested start).
    pub start: SystemTime,
    /// Wall time of its last frame.
    pub end: SystemTime,
    pub frames: usize,
    pub segments: usize,
    /// Stretches of the requested interval with no recorded video, in time order; empty when the clip
    /// covers it all.
    pub missing: Vec<Missing>,
}

/// A stretch of a requested clip that was not recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Missing {
    /// The last frame before the hole (or the requested start).
    pub from: SystemTime,
    /// The first frame after it (or the requested end).
    pub to: SystemTime,
    pub reason: String,
}

/// Frames further apart than this many typical frame intervals (and at least [`MIN_GAP`]) leave a hole.
const GAP_INTERVALS: u32 = 3;
const MIN_GAP: Duration = Duration::from_millis(500);

struct Unit {
    buffer: gst::Buffer,
    wall: SystemTime,
    keyframe: bool,
    /// PTS − DTS: how far decode order runs ahead (B-frames).
    reorder: Duration,
}

fn clip_err(msg: impl Into<String>) -> SourceError {
    SourceError::Clip(msg.into())
}

/// Cuts `[from, to]` from the segments in `dir` into `out`.
pub fn cut(dir: &Path, from: SystemTime, to: SystemTime, out: &Path) -> Result<ClipInfo, SourceError> {
    if to <= from {
        return Err(clip_err("the end of the clip must be after its start"));
    }
    super::pipeline::init()?;
    let all = recorder::segments(dir).map_err(|e| clip_err(format!("cannot list {}: {e}", dir.display())))?;
    // A segment covers [its start, the next one's start); the last one is open-ended.
    let mut chosen: Vec<&Segment> = Vec::new();
    for (i, segment) in all.iter().enumerate() {
        let next_start = all.get(i + 1).map(|s| s.start);
        if segment.start <= to && next_start.is_none_or(|n| n > from) {
            chosen.push(segment);
        }
    }
    if chosen.is_empty() {
        return Err(clip_err(format!("no recording in {} covers the requested interval", dir.display())));
    }
    let mut units = Vec::new();
    let mut caps = None;
    for segment in &chosen {
        read_segment(segment, &mut units, &mut caps)?;
    }
    let start_index = units
        .iter()
        .rposition(|u| u.keyframe && u.wall <= from)
        .or_else(|| units.iter().position(|u| u.keyframe))
        .ok_or_else(|| clip_err("the recording has no keyframe"))?;
    let kept: Vec<&Unit> = units[start_index..].iter().take_while(|u| u.wall <= to).collect();
    if kept.is_empty() {
        return Err(clip_err("no frame in the requested interval"));
    }
    let caps = caps.ok_or_else(|| clip_err("no caps"))?;
    mux(&kept, &caps, out)?;
    let walls: Vec<SystemTime> = kept.iter().map(|u| u.wall).collect();
    let newest_recorded = units.last().map(|u| u.wall);
    let recording_ends_here =
        chosen.last().map(|s| &s.path) == all.last().map(|s| &s.path) && newest_recorded == walls.last().copied();
    let missing = holes(&walls, from, to, all[0].start, recording_ends_here);
    Ok(ClipInfo {
        start: kept[0].wall,
        end: kept[kept.len() - 1].wall,
        frames: kept.len(),
        segments: chosen.len(),
        missing,
    })
}

/// How far the camera's recording has reached: the wall time of the newest segment's last written
/// frame, and when that file was last modified. None without segments.
pub fn recorded_until(dir: &Path) -> Result<Option<(SystemTime, SystemTime)>, SourceError> {
    let all = recorder::segments(dir).map_err(|e| clip_err(format!("cannot list {}: {e}", dir.display())))?;
    let Some(newest) = all.last() else { return Ok(None) };
    super::pipeline::init()?;
    let modified = std::fs::metadata(&newest.path)
        .and_then(|m| m.modified())
        .map_err(|e| clip_err(format!("{}: {e}", newest.path.display())))?;
    let (mut units, mut caps) = (Vec::new(), None);
    read_segment(newest, &mut units, &mut caps)?;
    Ok(Some((units.last().map_or(newest.start, |u| u.wall), modified)))
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// What of `[from, to]` the frames at `walls` (in order, at least one) leave without video.
/// `oldest` is the start of the camera's oldest kept segment; `recording_ends_here`: the last frame is
/// the last one the camera's recording holds.
fn holes(
    walls: &[SystemTime],
    from: SystemTime,
    to: SystemTime,
    oldest: SystemTime,
    recording_ends_here: bool,
) -> Vec<Missing> {
    let mut steps: Vec<Duration> = walls.windows(2).filter_map(|w| w[1].duration_since(w[0]).ok()).collect();
    steps.sort();
    let typical = steps.get(steps.len() / 2).copied().unwrap_or(Duration::from_secs(1));
    let gap = (typical * GAP_INTERVALS).max(MIN_GAP);
    const NOT_RECORDED: &str = "not recorded: no video between these times (the camera was offline, recording \
                                stopped, or the agent was not running)";
    let mut missing = Vec::new();
    let (first, last) = (walls[0], walls[walls.len() - 1]);
    if first.duration_since(from).is_ok_and(|d| d > gap) {
        let reason = if oldest > from {
            format!("not recorded: the oldest recording kept for this camera starts at {}", rfc3339(oldest))
        } else {
            NOT_RECORDED.to_owned()
        };
        missing.push(Missing { from, to: first, reason });
    }
    for w in walls.windows(2) {
        if w[1].duration_since(w[0]).is_ok_and(|d| d > gap) {
            missing.push(Missing { from: w[0], to: w[1], reason: NOT_RECORDED.to_owned() });
        }
    }
    if to.duration_since(last).is_ok_and(|d| d > gap) {
        let reason = if recording_ends_here {
            format!(
                "not recorded: the camera's recording ends at {} (the camera went offline, or the agent stopped; \
                 a crash loses the video the recorder had not written yet: the last GOP and up to 1 s)",
                rfc3339(last)
            )
        } else {
            NOT_RECORDED.to_owned()
        };
        missing.push(Missing { from: last, to, reason });
    }
    missing
}

fn read_segment(segment: &Segment, units: &mut Vec<Unit>, caps: &mut Option<gst::Caps>) -> Result<(), SourceError> {
    let pipeline = gst::parse::launch(
        "filesrc name=src ! qtdemux ! h264parse config-interval=-1 \
         ! video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=sink sync=false",
    )
    .map_err(|e| clip_err(e.to_string()))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| clip_err("not a pipeline"))?;
    pipeline.by_name("src").unwrap().set_property("location", segment.path.to_string_lossy().as_ref());
    let sink = pipeline.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).map_err(|e| clip_err(format!("{}: {e}", segment.path.display())))?;
    let mut first_pts = None;
    let bus = pipeline.bus().unwrap();
    let result = loop {
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(200)) else {
            if sink.is_eos() {
                break Ok(());
            }
            // A segment cut short by a crash makes the demuxer fail at its end instead of finishing;
            // its complete fragments, already read, are still good.
            if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
                if let gst::MessageView::Error(err) = msg.view() {
                    tracing::warn!(segment = %segment.path.display(), error = %err.error(), frames = units.len(), "segment ends early (unfinished?)");
                }
                break Ok(());
            }
            continue;
        };
        let Some(buffer) = sample.buffer_owned() else { continue };
        let Some(pts) = buffer.pts() else { continue };
        if caps.is_none() {
            *caps = sample.caps().map(|c| c.to_owned());
        }
        let first = *first_pts.get_or_insert(pts);
        let offset = Duration::from_nanos(pts.saturating_sub(first).nseconds());
        let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let reorder =
            buffer.dts().map_or(Duration::ZERO, |dts| Duration::from_nanos(pts.saturating_sub(dts).nseconds()));
        units.push(Unit { buffer, wall: segment.start + offset, keyframe, reorder });
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_800_000_000_000 + ms)
    }

    /// 10 fps from `a` to `b` ms.
    fn frames(a: u64, b: u64) -> Vec<SystemTime> {
        (a..=b).step_by(100).map(at).collect()
    }

    #[test]
    fn a_clip_covering_its_interval_misses_nothing() {
        // Starts on the keyframe before the interval, last frame within one interval of its end.
        assert_eq!(holes(&frames(0, 9_900), at(500), at(9_950), at(0), true), vec![]);
    }

    #[test]
    fn holes_before_between_and_after_the_frames_are_named() {
        let mut walls = frames(3_000, 5_000);
        walls.extend(frames(8_000, 9_000));
        let missing = holes(&walls, at(1_000), at(12_000), at(3_000), true);
        let spans: Vec<(SystemTime, SystemTime)> = missing.iter().map(|m| (m.from, m.to)).collect();
        assert_eq!(spans, [(at(1_000), at(3_000)), (at(5_000), at(8_000)), (at(9_000), at(12_000))]);
        assert!(missing[0].reason.contains("oldest recording kept for this camera starts at"), "{missing:?}");
        assert!(missing[1].reason.starts_with("not recorded: no video between these times"), "{missing:?}");
        assert!(missing[2].reason.contains("recording ends at 2027-01-15T08:00:09.000Z"), "{missing:?}");
        // The same tail with later video recorded (the camera came back after the interval).
        let later = holes(&walls, at(1_000), at(12_000), at(0), false);
        assert!(later[0].reason.starts_with("not recorded: no video"), "{later:?}");
        assert!(later[2].reason.starts_with("not recorded: no video"), "{later:?}");
    }
}

fn mux(units: &[&Unit], caps: &gst::Caps, out: &Path) -> Result<(), SourceError> {
    let pipeline =
        gst::parse::launch("appsrc name=src format=time ! h264parse ! mp4mux faststart=true ! filesink name=out")
            .map_err(|e| clip_err(e.to_string()))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| clip_err("not a pipeline"))?;
    let partial = out.with_extension("mp4.partial");
    pipeline.by_name("out").unwrap().set_property("location", partial.to_string_lossy().as_ref());
    let src = pipeline.by_name("src").unwrap().downcast::<gst_app::AppSrc>().unwrap();
    src.set_caps(Some(caps));
    pipeline.set_state(gst::State::Playing).map_err(|e| clip_err(format!("cannot start the muxer: {e}")))?;
    let t0 = units[0].wall;
    for unit in units {
        let mut buffer = unit.buffer.copy();
        let pts = gst::ClockTime::from_nseconds(unit.wall.duration_since(t0).unwrap_or_default().as_nanos() as u64);
        let b = buffer.make_mut();
        b.set_pts(pts);
        b.set_dts(pts.saturating_sub(gst::ClockTime::from_nseconds(unit.reorder.as_nanos() as u64)));
        src.push_buffer(buffer).map_err(|e| clip_err(format!("muxer refused a frame: {e:?}")))?;
    }
    let _ = src.end_of_stream();
    let bus = pipeline.bus().unwrap();
    let done =
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(60), &[gst::MessageType::Eos, gst::MessageType::Error]);
    let _ = pipeline.set_state(gst::State::Null);
    match done.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(err)) => return Err(clip_err(format!("muxing failed: {}", err.error()))),
        _ => return Err(clip_err("muxing did not finish within 60 s")),
    }
    std::fs::rename(&partial, out).map_err(|e| clip_err(format!("cannot write {}: {e}", out.display())))?;
    Ok(())
}
