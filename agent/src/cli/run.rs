//! `vigil run`, `vigil check-config` and `vigil reference`.

use std::path::PathBuf;

use vigil::{config, runtime};

use super::{CliError, CliResult, load_config};

#[derive(clap::Args)]
pub struct RunArgs {
    /// Configuration file.
    #[arg(long, short)]
    config: PathBuf,
}

pub fn run(args: RunArgs) -> CliResult {
    let config = config::load_for_run(&args.config).map_err(|e| CliError::Usage(e.to_string()))?;
    runtime::run(config, &args.config).map_err(|e| {
        tracing::error!("{e:#}");
        CliError::Failed(format!("vigil: {e:#}"))
    })
}

#[derive(clap::Args)]
pub struct CheckConfigArgs {
    /// Configuration file.
    file: PathBuf,
}

pub fn check_config(args: CheckConfigArgs) -> CliResult {
    let file = &args.file;
    let config = config::load_for_run(file).map_err(|e| CliError::Usage(e.to_string()))?;
    println!(
        "{}: OK (site {}, device {}, {} camera{})",
        file.display(),
        config.site.id,
        config.site.device_id,
        config.cameras.len(),
        if config.cameras.len() == 1 { "" } else { "s" }
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct ReferenceArgs {
    #[arg(long, short)]
    config: PathBuf,
    #[arg(long)]
    camera: String,
    /// The camera's regions (beds, chairs) are empty in this frame. Stored as the empty reference of
    /// the lighting the picture shows (day colour or night infrared, told from the picture): take one
    /// by day and one while the camera is in its night mode.
    #[arg(long)]
    empty: bool,
    /// The view is uniform by nature (a bare counter or wall), not covered: accept it, and count the
    /// camera as covered only when its brightness changes.
    #[arg(long)]
    uniform: bool,
}

pub fn reference(args: ReferenceArgs) -> CliResult {
    let ReferenceArgs { config: file, camera, empty, uniform } = args;
    let config = load_config(&file)?;
    let Some(cam) = config.cameras.iter().find(|c| c.id == camera) else {
        return Err(CliError::Usage(format!("vigil reference: no camera {camera:?} in {}", file.display())));
    };
    let path = runtime::capture_reference(&config, cam, std::time::Duration::from_secs(60), empty, uniform)
        .map_err(super::failed("reference"))?;
    println!("reference frame of {camera} saved to {}", path.display());
    if empty {
        println!("(also the empty reference of its regions)");
    }
    Ok(())
}
