//! `vigil detect IMAGE...` and `vigil compare A B`: the models on still images, for operators checking
//! an installation and for tests.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use image::RgbImage;
use serde::Serialize;

use vigil::analyze::Sessions;
use vigil::analyze::embedder;
use vigil::analyze::face_detector::Face;
use vigil::analyze::faces::EmbeddedFace;
use vigil::analyze::image::{draw_box, draw_dot, load_rgb};
use vigil::analyze::person_detector::Person;

use super::{CliError, CliResult, ModelSettings};

#[derive(clap::Args)]
pub struct DetectArgs {
    /// Configuration file (model settings); default settings without it.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Also write each image with boxes drawn (faces green with landmarks red, persons blue) here.
    #[arg(long, value_name = "DIR")]
    annotate: Option<PathBuf>,
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

pub fn detect(args: DetectArgs) -> CliResult {
    let mut models = ModelSettings::load(args.config.as_deref(), None)?.sessions()?;
    let failed = detect_all(&mut models, &args.images, args.annotate.as_deref())
        .map_err(|e| CliError::Failed(format!("vigil: {e:#}")))?;
    if failed == 0 { Ok(()) } else { Err(CliError::Reported) }
}

#[derive(clap::Args)]
pub struct CompareArgs {
    /// Configuration file (model settings, faces.match_distance); default settings without it.
    #[arg(long, short)]
    config: Option<PathBuf>,
    a: PathBuf,
    b: PathBuf,
}

pub fn compare(args: CompareArgs) -> CliResult {
    let settings = ModelSettings::load(args.config.as_deref(), None)?;
    let mut models = settings.sessions()?;
    let c = compare_faces(&mut models, &args.a, &args.b, settings.faces.match_distance)
        .map_err(|e| CliError::Failed(format!("vigil: {e:#}")))?;
    let verdict = if c.same_person { "same person" } else { "different people" };
    println!("distance {:.4}: {verdict} (threshold {})", c.distance, c.threshold);
    Ok(())
}

#[derive(Serialize)]
struct Detections<'a> {
    image: &'a str,
    width: u32,
    height: u32,
    faces: Vec<Face>,
    persons: Vec<Person>,
}

#[derive(Serialize)]
struct Failure<'a> {
    image: &'a str,
    error: String,
}

/// Runs both detectors on each image and prints one JSON object per image and line. A file that
/// cannot be read is reported (JSON `error` and stderr) and the others still run. Returns the number
/// of files that failed.
fn detect_all(models: &mut Sessions, images: &[PathBuf], annotate: Option<&Path>) -> anyhow::Result<usize> {
    if let Some(dir) = annotate {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let stdout = std::io::stdout();
    let mut failures = 0;
    for path in images {
        let name = path.display().to_string();
        let line = match detect_one(models, path, annotate) {
            Ok((img, faces, persons)) => serde_json::to_string(&Detections {
                image: &name,
                width: img.width(),
                height: img.height(),
                faces,
                persons,
            })?,
            Err(e) => {
                failures += 1;
                eprintln!("vigil detect: {e:#}");
                serde_json::to_string(&Failure { image: &name, error: format!("{e:#}") })?
            }
        };
        writeln!(stdout.lock(), "{line}")?;
    }
    Ok(failures)
}

fn detect_one(
    models: &mut Sessions,
    path: &Path,
    annotate: Option<&Path>,
) -> anyhow::Result<(RgbImage, Vec<Face>, Vec<Person>)> {
    let img = load_rgb(path)?;
    let faces = models.faces.detect(&img)?;
    let persons = models.persons.detect(&img)?;
    if let Some(dir) = annotate {
        let out = dir.join(annotated_name(path));
        let mut canvas = img.clone();
        let thickness = (img.width().max(img.height()) / 400).max(2);
        for p in &persons {
            draw_box(&mut canvas, p.bbox, [40, 120, 255], thickness);
        }
        for f in &faces {
            draw_box(&mut canvas, f.bbox, [0, 220, 0], thickness);
            for point in f.landmarks {
                draw_dot(&mut canvas, point, [255, 40, 40], thickness);
            }
        }
        canvas.save(&out).with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok((img, faces, persons))
}

/// `photo.jpg` → `photo.annotated.png` (lossless, so thin boxes stay crisp).
fn annotated_name(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
    format!("{stem}.annotated.png")
}

/// The largest face in an image, embedded; an error names the file when there is none.
pub fn main_face(models: &mut Sessions, path: &Path) -> anyhow::Result<EmbeddedFace> {
    let img = load_rgb(path)?;
    models.faces.main_face(&img)?.ok_or_else(|| anyhow::anyhow!("{}: no face found", path.display()))
}

#[derive(Serialize)]
struct Comparison {
    distance: f32,
    threshold: f32,
    same_person: bool,
}

/// Distance between the largest faces of two images, and the verdict at `threshold`.
fn compare_faces(models: &mut Sessions, a: &Path, b: &Path, threshold: f32) -> anyhow::Result<Comparison> {
    let fa = main_face(models, a)?;
    let fb = main_face(models, b)?;
    let distance = embedder::distance(&fa.embedding, &fb.embedding);
    Ok(Comparison { distance, threshold, same_person: distance < threshold })
}
