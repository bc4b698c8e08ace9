//! Creating ONNX Runtime sessions the same way for every model, and timing what happens around them.

use std::time::{Duration, Instant};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;

use super::model_set::VerifiedModel;
use super::runtime::Runtime;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot load model {path}: {message}")]
    Load { path: String, message: String },
    #[error("{model}: inference failed: {message}")]
    Run { model: &'static str, message: String },
    /// The caller asked for something the model cannot be run on (a region outside the frame).
    #[error("{model}: bad input: {message}")]
    Input { model: &'static str, message: String },
    #[error("{model}: unexpected output: {message}")]
    Output { model: &'static str, message: String },
}

/// One session per model, created once and reused for every call. `threads` is ONNX Runtime's
/// intra-op thread count for this session. Built from the bytes that were hashed, never by reopening the
/// file: a model swapped on disk after the check cannot be loaded (ONNX Runtime copies the bytes).
pub fn open(runtime: &Runtime, model: &VerifiedModel, threads: usize) -> Result<Session, ModelError> {
    let load = |e: ort::Error| ModelError::Load { path: model.path.display().to_string(), message: e.to_string() };
    let bytes = model
        .bytes()
        .map_err(|e| ModelError::Load { path: model.path.display().to_string(), message: e.to_string() })?;
    let builder = Session::builder(&runtime.environment).map_err(load)?;
    let mut builder = builder
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| load(e.into()))?
        .with_intra_threads(threads.max(1))
        .map_err(|e| load(e.into()))?
        .with_inter_threads(1)
        .map_err(|e| load(e.into()))?;
    // No memory pattern: ONNX Runtime would otherwise keep, per session, one block planned for all of a
    // run's intermediate tensors. Measured for issue 18 (`vigil bench cameras --analysis faces`, 4 rounds
    // alternated): `rss_per_face_sessions_bytes` 110 → 102 MB, the process 239 → 220 MB, faces per
    // CPU-second unchanged (21.55 → 21.5). The CPU arena stays: without it each run maps and unmaps its
    // buffers (49 MB less a set, but 15 % fewer faces per CPU-second). One PrepackedWeights container
    // shared by a model's sessions saved nothing measurable.
    builder = builder.with_memory_pattern(false).map_err(|e| load(e.into()))?;
    builder.commit_from_memory(bytes).map_err(load)
}

/// Where the time of one model call went: preparing the input, `session.run`, decoding the output.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallTiming {
    pub pre: Duration,
    pub run: Duration,
    pub post: Duration,
}

impl CallTiming {
    pub fn total(&self) -> Duration {
        self.pre + self.run + self.post
    }
}

/// Measures consecutive phases of a call.
pub(crate) struct Stopwatch {
    last: Instant,
}

impl Stopwatch {
    pub(crate) fn start() -> Stopwatch {
        Stopwatch { last: Instant::now() }
    }

    /// Time since the previous lap (or the start).
    pub(crate) fn lap(&mut self) -> Duration {
        let now = Instant::now();
        let d = now - self.last;
        self.last = now;
        d
    }
}
