//! Wires the stages together and runs them until a shutdown signal.

use anyhow::Context;
use tracing::info;

use crate::analyze::{Models, runtime};
use crate::config::{Config, redact_url};

/// Runs the agent with a validated configuration until SIGINT or SIGTERM.
pub fn run(config: Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vigil-rt")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(run_async(config))
}

async fn run_async(config: Config) -> anyhow::Result<()> {
    // Listen before anything else, so a signal during start-up is a clean shutdown, not a kill.
    let shutdown = shutdown_signal()?;
    let ort = runtime::init(config.models.ort_library.as_deref())?;
    info!(version = %ort.version, path = %ort.path.display(), "ONNX Runtime loaded");
    // Refuse to start on a missing or modified model: every decision and evidence manifest names them.
    let models = Models::load(&config.models, &config.faces, &config.persons)?;
    for model in &models.bundle.models {
        info!(model = %model.name, sha256 = %model.sha256, path = %model.path.display(), "model verified");
    }
    for camera in &config.cameras {
        info!(camera = %camera.id, role = camera.role.as_str(), url = %redact_url(&camera.url), regions = camera.regions.len(), "camera configured");
    }
    info!(site = %config.site.id, device = %config.site.device_id, cameras = config.cameras.len(), "vigil started");

    let signal = shutdown.await;
    info!(signal, "shutting down");
    info!("stopped cleanly");
    Ok(())
}

/// Starts listening for SIGINT and SIGTERM now; the future resolves with the first one's name.
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = &'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}
