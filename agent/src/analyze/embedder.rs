//! Face embeddings with dlib's ResNet (ported to ONNX by models/tools/convert_dlib.py): a 150×150 RGB
//! chip in, 128 numbers out. Two faces are the same person when their Euclidean distance is small
//! (dlib's own pipeline uses 0.6).

use image::RgbImage;
use ort::session::Session;
use ort::value::TensorRef;

use super::align::CHIP_SIZE;
use super::session::{CallTiming, ModelError, Stopwatch};

pub const EMBEDDING_DIM: usize = 128;
pub type Embedding = [f32; EMBEDDING_DIM];

pub struct Embedder {
    session: Session,
    input: Vec<f32>,
    /// Timing of the last call, for benchmarks.
    pub last: CallTiming,
    /// Where each call's `session.run` time is also counted (the runtime's metrics), if anywhere.
    pub timings: Option<std::sync::Arc<crate::histogram::Histogram>>,
}

impl Embedder {
    pub fn new(session: Session) -> Embedder {
        Embedder { session, input: Vec::new(), last: CallTiming::default(), timings: None }
    }

    /// Embeds aligned chips (from [`super::align::extract_chip`]), one batch per call.
    pub fn embed(&mut self, chips: &[RgbImage]) -> Result<Vec<Embedding>, ModelError> {
        if chips.is_empty() {
            return Ok(Vec::new());
        }
        let mut watch = Stopwatch::start();
        let side = CHIP_SIZE as usize;
        let plane = side * side;
        self.input.resize(chips.len() * 3 * plane, 0.0);
        for (n, chip) in chips.iter().enumerate() {
            assert_eq!(chip.dimensions(), (CHIP_SIZE, CHIP_SIZE), "chips come from align::extract_chip");
            let base = n * 3 * plane;
            // Raw 0..255 RGB, planar; the graph subtracts dlib's channel means and divides by 256.
            for (i, px) in chip.pixels().enumerate() {
                for c in 0..3 {
                    self.input[base + c * plane + i] = f32::from(px.0[c]);
                }
            }
        }
        self.last.pre = watch.lap();
        let run_err = |e: ort::Error| ModelError::Run { model: "dlib-resnet-v1", message: e.to_string() };
        let tensor =
            TensorRef::from_array_view(([chips.len(), 3, side, side], self.input.as_slice())).map_err(run_err)?;
        let outputs = self.session.run(ort::inputs!["input" => tensor]).map_err(run_err)?;
        self.last.run = watch.lap();
        if let Some(timings) = &self.timings {
            timings.observe(self.last.run);
        }
        let (shape, data) = outputs["embedding"]
            .try_extract_tensor::<f32>()
            .map_err(|e| ModelError::Output { model: "dlib-resnet-v1", message: e.to_string() })?;
        if shape.len() != 2 || shape[0] as usize != chips.len() || shape[1] as usize != EMBEDDING_DIM {
            return Err(ModelError::Output {
                model: "dlib-resnet-v1",
                message: format!("embedding has shape {shape:?}"),
            });
        }
        let result = data
            .chunks_exact(EMBEDDING_DIM)
            .map(|row| {
                let mut e = [0f32; EMBEDDING_DIM];
                e.copy_from_slice(row);
                e
            })
            .collect();
        self.last.post = watch.lap();
        Ok(result)
    }
}

/// Euclidean distance between two embeddings.
pub fn distance(a: &Embedding, b: &Embedding) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt()
}

/// Cosine similarity between two embeddings.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}
