//! Camera ingestion: a supervised GStreamer pipeline per camera that records the original H.264 into
//! a ring of segments and hands decoded frames to analysis, latest frame first.

pub mod bounded;
pub mod camera;
pub mod clip;
pub mod decode;
pub mod health;
pub mod liveness;
pub mod pipeline;
pub mod rate;
pub mod recorder;
pub mod settings;
pub mod slot;
pub mod supervisor;
pub mod tamper;

use std::time::SystemTime;

use image::RgbImage;

/// A decoded frame, RGB, at most `analysis_max_width` wide.
#[derive(Debug, Clone)]
pub struct Frame {
    pub image: RgbImage,
    /// Wall-clock time the frame was captured (as far as the stream tells).
    pub captured: SystemTime,
    /// Position in this pipeline run's frame sequence.
    pub seq: u64,
    /// The frame was a keyframe (always true when decoding keyframes only).
    pub keyframe: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot initialise GStreamer: {0}")]
    Init(String),
    #[error("unsupported source scheme {0:?}")]
    Unsupported(String),
    #[error("cannot build the camera pipeline: {0}")]
    Build(String),
    #[error("recording: {0}")]
    Recording(String),
    #[error("clip: {0}")]
    Clip(String),
}
