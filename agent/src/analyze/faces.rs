//! The face path, written once: detect → align → quality gate → embed. `vigil run` (each camera's
//! analysis), enrolment (photos), the CLI's model commands, the benchmarks and the tests all go through
//! [`FaceAnalyzer`].
//!
//! A `FaceAnalyzer` owns its two ONNX sessions (`Session::run` needs `&mut`): each camera's analysis
//! thread and the enrolment worker have their own, so no lock is shared between them (issue 13: one
//! `Mutex<Models>` for every camera and the `enroll` command serialised all face analysis).

use image::RgbImage;
use serde::Serialize;

use super::AnalyzeError;
use super::align;
use super::boxes::{self, Rect};
use super::embedder::{Embedder, Embedding};
use super::face_detector::{Face, FaceDetector};
use super::quality::{self, Quality, QualityThresholds};
use super::session::ModelError;

/// The face detector and the embedder, owned by one user.
pub struct FaceAnalyzer {
    pub detector: FaceDetector,
    pub embedder: Embedder,
}

/// A detected face after alignment and the quality gate.
#[derive(Debug, Clone)]
pub struct AnalysedFace {
    pub face: Face,
    /// The aligned 150×150 chip the gate and the embedder saw.
    pub chip: RgbImage,
    pub quality: Quality,
    /// The embedding, when the face passed the gate and the embedder ran.
    pub embedding: Result<Embedding, NotEmbedded>,
}

/// Why a detected face has no embedding.
#[derive(Debug, Clone, PartialEq)]
pub enum NotEmbedded {
    /// Below the quality gate: [`Quality::problems`] says why.
    BelowGate,
    /// The embedder failed on the chip.
    Model(String),
}

/// A face embedded without the gate (still images: `vigil detect`, `compare`, pair benchmarks).
#[derive(Debug, Clone, Serialize)]
pub struct EmbeddedFace {
    #[serde(flatten)]
    pub face: Face,
    #[serde(skip)]
    pub chip: RgbImage,
    #[serde(skip)]
    pub embedding: Embedding,
}

impl EmbeddedFace {
    pub fn area(&self) -> f32 {
        boxes::area(&self.face.bbox)
    }
}

impl FaceAnalyzer {
    pub fn new(detector: FaceDetector, embedder: Embedder) -> FaceAnalyzer {
        FaceAnalyzer { detector, embedder }
    }

    /// Faces in the image, not yet aligned.
    pub fn detect(&mut self, img: &RgbImage) -> Result<Vec<Face>, ModelError> {
        self.detector.detect(img)
    }

    /// Aligns one detected face, applies the gate and embeds the face when it passes.
    pub fn examine(&mut self, img: &RgbImage, face: Face, gate: &QualityThresholds) -> AnalysedFace {
        let chip = align::extract_chip(img, &face.landmarks);
        let quality = quality::assess(&face, &chip, gate);
        let embedding = if quality.ok() {
            match self.embedder.embed(std::slice::from_ref(&chip)) {
                Ok(e) => Ok(e[0]),
                Err(e) => Err(NotEmbedded::Model(e.to_string())),
            }
        } else {
            Err(NotEmbedded::BelowGate)
        };
        AnalysedFace { face, chip, quality, embedding }
    }

    /// The whole path on one frame: every detected face, embedded when it passes the gate.
    pub fn analyse(&mut self, img: &RgbImage, gate: &QualityThresholds) -> Result<Vec<AnalysedFace>, ModelError> {
        let faces = self.detect(img)?;
        Ok(faces.into_iter().map(|face| self.examine(img, face, gate)).collect())
    }

    /// As [`FaceAnalyzer::analyse`], detecting only in `rect` of the frame when given (a camera's face
    /// window; the whole frame when `None`). Boxes and landmarks are in frame coordinates and each chip
    /// is cut from the full frame, so a face at the window's edge keeps the pixels beyond it.
    pub fn analyse_in(
        &mut self,
        img: &RgbImage,
        rect: Option<Rect>,
        gate: &QualityThresholds,
    ) -> Result<Vec<AnalysedFace>, AnalyzeError> {
        let faces = match rect {
            Some(rect) => self.detector.detect_in(img, rect)?,
            None => self.detector.detect(img)?,
        };
        Ok(faces.into_iter().map(|face| self.examine(img, face, gate)).collect())
    }

    /// Every face aligned and embedded in one batch, without the gate.
    pub fn embed_all(&mut self, img: &RgbImage) -> Result<Vec<EmbeddedFace>, ModelError> {
        let faces = self.detect(img)?;
        let chips: Vec<RgbImage> = faces.iter().map(|f| align::extract_chip(img, &f.landmarks)).collect();
        let embeddings = self.embedder.embed(&chips)?;
        Ok(faces
            .into_iter()
            .zip(chips)
            .zip(embeddings)
            .map(|((face, chip), embedding)| EmbeddedFace { face, chip, embedding })
            .collect())
    }

    /// The largest face, embedded without the gate; `None` when there is none.
    pub fn main_face(&mut self, img: &RgbImage) -> Result<Option<EmbeddedFace>, ModelError> {
        Ok(self.embed_all(img)?.into_iter().max_by(|a, b| a.area().total_cmp(&b.area())))
    }
}
