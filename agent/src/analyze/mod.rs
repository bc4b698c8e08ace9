//! Analysis: ONNX models over decoded frames. [`Models::load`] verifies the model files once; sessions
//! are then opened per user ([`Models::face_analyzer`], [`Models::person_detector`], [`Models::sessions`])
//! and used from dedicated blocking threads, never on the async runtime. Sessions are not shared:
//! each camera's analysis and the enrolment worker own theirs.

pub mod align;
pub mod boxes;
pub mod embedder;
pub mod face_detector;
pub mod faces;
pub mod image;
pub mod model_set;
pub mod motion;
pub mod person_detector;
pub mod quality;
pub mod runtime;
pub mod session;
pub mod settings;

use embedder::Embedder;
use face_detector::{FaceDetector, FaceDetectorOptions};
use faces::FaceAnalyzer;
use model_set::{ModelSet, ModelSetError};
use person_detector::{PersonDetector, PersonDetectorOptions};
use runtime::{Runtime, RuntimeError};
use session::ModelError;
pub use settings::ModelSettings;

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    ModelSet(#[from] ModelSetError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// The verified model set and how to open sessions from it.
pub struct Models {
    pub set: ModelSet,
    runtime: &'static Runtime,
    threads: usize,
    faces: FaceDetectorOptions,
    persons: PersonDetectorOptions,
}

/// One user's sessions of every model (the CLI's model commands, tests).
pub struct Sessions {
    pub faces: FaceAnalyzer,
    pub persons: PersonDetector,
}

impl Models {
    /// Loads ONNX Runtime and verifies the model set's hashes; opens no session yet.
    pub fn load(
        models: &ModelSettings,
        face_options: &FaceDetectorOptions,
        person_options: &PersonDetectorOptions,
    ) -> Result<Models, AnalyzeError> {
        let runtime = runtime::init(models.ort_library.as_deref())?;
        let set = ModelSet::open(&models.models_dir().path)?;
        Ok(Models { set, runtime, threads: models.threads, faces: *face_options, persons: *person_options })
    }

    /// New sessions of the face detector and the embedder.
    pub fn face_analyzer(&self) -> Result<FaceAnalyzer, AnalyzeError> {
        let detector =
            FaceDetector::new(session::open(self.runtime, self.set.model("centerface")?, self.threads)?, self.faces);
        let embedder = Embedder::new(session::open(self.runtime, self.set.model("dlib-resnet-v1")?, self.threads)?);
        Ok(FaceAnalyzer::new(detector, embedder))
    }

    /// New sessions of the person detector's two stages (MoveNet multi-pose, and BlazePose's
    /// face-anchored detector for patients covered to the chin).
    pub fn person_detector(&self) -> Result<PersonDetector, AnalyzeError> {
        let movenet = session::open(self.runtime, self.set.model("movenet-multipose")?, self.threads)?;
        let body = session::open(self.runtime, self.set.model("blazepose-detector")?, self.threads)?;
        Ok(PersonDetector::new(movenet, self.persons).with_body_detector(body))
    }

    /// New sessions of every model.
    pub fn sessions(&self) -> Result<Sessions, AnalyzeError> {
        Ok(Sessions { faces: self.face_analyzer()?, persons: self.person_detector()? })
    }

    /// Verifies the models and opens one set of sessions (for one-shot commands and tests).
    pub fn load_sessions(
        models: &ModelSettings,
        face_options: &FaceDetectorOptions,
        person_options: &PersonDetectorOptions,
    ) -> Result<Sessions, AnalyzeError> {
        Models::load(models, face_options, person_options)?.sessions()
    }

    /// Drops the verified bytes once every session is open (tens of MB not kept twice); sessions
    /// opened after this fail.
    pub fn release_bytes(&mut self) {
        self.set.release_bytes();
    }
}
