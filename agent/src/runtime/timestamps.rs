//! The timestamp worker: when `[evidence] tsa_url` is set, a thread that gets each chain entry an RFC
//! 3161 token from the TSA (`evidence::timestamp::Stamper`: the queue is the entries without
//! `timestamp.tsr`, found by scanning the store, so nothing else in the agent tells it about new
//! entries). It stops with the agent's shutdown: its pauses poll the shutdown flag every 100 ms, and a
//! request in flight ends within the request timeout (5 s, inside the shutdown grace).

use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;

use super::Shutdown;
use crate::config::Config;
use crate::evidence::timestamp::{Stamper, StamperSettings};

/// Starts the worker when a TSA is configured; `None` when not.
pub fn start(config: &Config, shutdown: &Shutdown) -> anyhow::Result<Option<JoinHandle<()>>> {
    let Some(url) = &config.evidence.tsa_url else { return Ok(None) };
    let settings = StamperSettings::new(url, Duration::from_secs(config.evidence.tsa_retry_max_secs));
    let stamper = Stamper::new(&config.storage.evidence_dir(), settings).map_err(anyhow::Error::msg)?;
    let stop = shutdown.flag();
    let thread = std::thread::Builder::new()
        .name("vigil-timestamps".into())
        .spawn(move || stamper.run(&stop))
        .context("cannot start the timestamp worker")?;
    Ok(Some(thread))
}
