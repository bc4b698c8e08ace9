//! `vigil enroll` and `vigil gallery`: enrolling people from photos (the face path with the enrolment
//! gate, `gallery::enrol`), listing and removing them.

use std::path::PathBuf;

use vigil::gallery::enrol::{self, Photo};
use vigil::gallery::{Gallery, PersonKind};

use super::{CliError, CliResult, ModelSettings, load_config};

#[derive(clap::Args)]
pub struct EnrollArgs {
    #[arg(long, short)]
    config: PathBuf,
    #[arg(long)]
    id: String,
    #[arg(long, value_enum)]
    role: PersonKind,
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

#[derive(clap::Subcommand)]
pub enum GalleryCmd {
    /// List enrolled people (id, role, embeddings, quality; never the embeddings themselves).
    List {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Remove a person.
    Remove {
        #[arg(long, short)]
        config: PathBuf,
        id: String,
    },
}

fn open_gallery(config: &vigil::config::Config) -> Result<Gallery, CliError> {
    Gallery::open(&config.storage.gallery_file(), &config.storage.gallery_key_file())
        .map_err(|e| CliError::Failed(format!("vigil: {e}")))
}

pub fn enroll(args: EnrollArgs) -> CliResult {
    let EnrollArgs { config: file, id, role, images } = args;
    let config = load_config(&file)?;
    if !enrol::valid_id(&id) {
        return Err(CliError::Usage(format!("vigil enroll: --id {id:?}: use 1..64 letters, digits, '-' and '_'")));
    }
    let mut gallery = open_gallery(&config)?;
    let thresholds = config.faces.quality();
    let mut models = ModelSettings::load(Some(&file), None)?.sessions()?;
    let photos: Vec<_> = images.iter().map(|p| Photo::File(p)).collect();
    let report = enrol::enroll(&mut models.faces, &mut gallery, &id, role, &photos, Vec::new(), &thresholds)
        .map_err(|e| CliError::Failed(format!("vigil: {e:#}")))?;
    for v in report.images.iter().filter(|v| !v.accepted) {
        eprintln!("rejected {}: {}", v.image, v.reason.as_deref().unwrap_or(""));
    }
    // The same object as the `enroll` command's result.
    super::print_json(&vigil::publish::results::Enrolled::from(&report))?;
    if report.enrolled { Ok(()) } else { Err(CliError::Reported) }
}

pub fn gallery(cmd: GalleryCmd) -> CliResult {
    let (file, remove) = match &cmd {
        GalleryCmd::List { config } => (config, None),
        GalleryCmd::Remove { config, id } => (config, Some(id.as_str())),
    };
    let config = load_config(file)?;
    let mut gallery = open_gallery(&config)?;
    if let Some(id) = remove {
        if !gallery.remove(id) {
            return Err(CliError::Failed(format!("vigil gallery: no {id:?} in the gallery")));
        }
        gallery.save().map_err(|e| CliError::Failed(format!("vigil gallery: {e}")))?;
        println!("removed {id}");
        return Ok(());
    }
    for e in gallery.entries() {
        println!(
            "{}	{:?}	{} embedding(s)	quality {:.2}	enrolled {}",
            e.id,
            e.role,
            e.embeddings.len(),
            e.quality,
            e.enrolled_at
        );
    }
    println!("{} enrolled", gallery.entries().len());
    Ok(())
}
