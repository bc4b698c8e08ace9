//! Analysis: ONNX models over decoded frames. Sessions are created once ([`Models::load`]) and used from
//! dedicated blocking threads, never on the async runtime.

pub mod align;
pub mod boxes;
pub mod bundle;
pub mod embedder;
pub mod face_detector;
pub mod image;
pub mod person_detector;
pub mod runtime;
pub mod session;
pub mod settings;

use std::path::PathBuf;

use ::image::RgbImage;
use serde::Serialize;

use bundle::{Bundle, BundleError};
use embedder::{Embedder, Embedding};
use face_detector::{Face, FaceDetector, FaceDetectorOptions};
use person_detector::{PersonDetector, PersonDetectorOptions};
use runtime::RuntimeError;
use session::ModelError;
pub use settings::ModelSettings;

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// The three models, verified and loaded.
pub struct Models {
    pub bundle: Bundle,
    pub faces: FaceDetector,
    pub embedder: Embedder,
    pub persons: PersonDetector,
}

impl Models {
    /// Loads ONNX Runtime, verifies the bundle's hashes and creates one session per model.
    pub fn load(
        models: &ModelSettings,
        face_options: &FaceDetectorOptions,
        person_options: &PersonDetectorOptions,
    ) -> Result<Models, AnalyzeError> {
        let runtime = runtime::init(models.ort_library.as_deref())?;
        let dir: PathBuf = models.dir.clone().unwrap_or_else(Bundle::default_dir);
        let mut bundle = Bundle::open(&dir)?;
        let threads = models.threads;
        let faces = FaceDetector::new(
            session::open(runtime, bundle.model("centerface")?, threads)?,
            *face_options,
        );
        let embedder = Embedder::new(session::open(runtime, bundle.model("dlib-resnet-v1")?, threads)?);
        let persons = PersonDetector::new(
            session::open(runtime, bundle.model("nanodet")?, threads)?,
            *person_options,
        );
        bundle.release_bytes();
        Ok(Models { bundle, faces, embedder, persons })
    }

    /// Detects faces, aligns each and embeds them in one batch.
    pub fn embed_faces(&mut self, img: &RgbImage) -> Result<Vec<EmbeddedFace>, ModelError> {
        let faces = self.faces.detect(img)?;
        let chips: Vec<RgbImage> = faces.iter().map(|f| align::extract_chip(img, &f.landmarks)).collect();
        let embeddings = self.embedder.embed(&chips)?;
        Ok(faces.into_iter().zip(embeddings).map(|(face, embedding)| EmbeddedFace { face, embedding }).collect())
    }
}

/// A face with its embedding.
#[derive(Debug, Clone, Serialize)]
pub struct EmbeddedFace {
    #[serde(flatten)]
    pub face: Face,
    #[serde(skip)]
    pub embedding: Embedding,
}

impl EmbeddedFace {
    pub fn area(&self) -> f32 {
        boxes::area(&self.face.bbox)
    }
}
