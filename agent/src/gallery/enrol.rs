//! Enrolment from photos (`vigil enroll`, the MQTT `enroll` command): each photo goes through the face
//! path with the enrolment gate; every rejected photo is named with the reason.

use std::path::Path;

use crate::analyze::faces::{FaceAnalyzer, NotEmbedded};
use crate::analyze::image::{decode_rgb, load_rgb};
use crate::analyze::quality::{Quality, QualityThresholds};
use crate::gallery::{Entry, Gallery, PersonKind};

#[derive(Debug)]
pub struct ImageVerdict {
    pub image: String,
    pub accepted: bool,
    pub reason: Option<String>,
    pub quality: Option<Quality>,
}

/// An enrolment photo: a file (`vigil enroll`) or bytes (the `enroll` command), with its name for reports.
pub enum Photo<'a> {
    File(&'a Path),
    Bytes { name: String, bytes: &'a [u8] },
}

impl Photo<'_> {
    fn name(&self) -> String {
        match self {
            Photo::File(path) => path.display().to_string(),
            Photo::Bytes { name, .. } => name.clone(),
        }
    }
}

/// Checks one enrolment photo: exactly one face, large, sharp, clear and frontal enough.
pub fn check_image(
    faces: &mut FaceAnalyzer,
    photo: &Photo,
    t: &QualityThresholds,
) -> (ImageVerdict, Option<(Vec<f32>, f32)>) {
    let name = photo.name();
    let reject = |reason: String, quality: Option<Quality>| {
        (ImageVerdict { image: name.clone(), accepted: false, reason: Some(reason), quality }, None)
    };
    let loaded = match photo {
        Photo::File(path) => load_rgb(path),
        Photo::Bytes { name, bytes } => decode_rgb(name, bytes),
    };
    let img = match loaded {
        Ok(img) => img,
        Err(e) => return reject(e.to_string(), None),
    };
    let found = match faces.detect(&img) {
        Ok(f) => f,
        Err(e) => return reject(e.to_string(), None),
    };
    let face = match found.len() {
        0 => return reject("no face found".into(), None),
        1 => found.into_iter().next().expect("one face"),
        n => return reject(format!("{n} faces found; an enrolment photo must show one person"), None),
    };
    let analysed = faces.examine(&img, face, t);
    let q = analysed.quality;
    let embedding = match analysed.embedding {
        Ok(e) => e.to_vec(),
        Err(NotEmbedded::BelowGate) => return reject(q.problems.join("; "), Some(q)),
        Err(NotEmbedded::Model(e)) => return reject(e, Some(q)),
    };
    let score = q.score01(t);
    (ImageVerdict { image: name, accepted: true, reason: None, quality: Some(q) }, Some((embedding, score)))
}

/// What an enrolment did; on the wire as `publish::results::Enrolled`.
#[derive(Debug)]
pub struct EnrollReport {
    pub id: String,
    pub role: PersonKind,
    pub enrolled: bool,
    pub images: Vec<ImageVerdict>,
}

/// Enrols a person from photos (each checked) and embeddings computed elsewhere (the platform's, from
/// photos it checked; their quality is not known here and counts as 0). Replaces an earlier enrolment.
pub fn enroll(
    faces: &mut FaceAnalyzer,
    gallery: &mut Gallery,
    id: &str,
    role: PersonKind,
    photos: &[Photo],
    given: Vec<Vec<f32>>,
    t: &QualityThresholds,
) -> anyhow::Result<EnrollReport> {
    let mut verdicts = Vec::new();
    let mut scores = vec![0.0; given.len()];
    let mut embeddings = given;
    for photo in photos {
        let (verdict, accepted) = check_image(faces, photo, t);
        if let Some((embedding, score)) = accepted {
            embeddings.push(embedding);
            scores.push(score);
        }
        verdicts.push(verdict);
    }
    let enrolled = !embeddings.is_empty();
    if enrolled {
        gallery.upsert(Entry {
            id: id.to_owned(),
            role,
            quality: scores.iter().sum::<f32>() / scores.len() as f32,
            embeddings,
            enrolled_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        });
        gallery.save()?;
    }
    Ok(EnrollReport { id: id.to_owned(), role, enrolled, images: verdicts })
}

/// Person ids as the gallery takes them: 1..64 letters, digits, `-` and `_` (they appear in events and
/// file listings, never as paths, but keep them plain).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
