//! One shutdown signal for every worker thread of `vigil run` (cameras, analysis, scheduler, evidence,
//! retention, reference capture): set once, polled by each loop between steps.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Asks every worker to stop.
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// The flag itself, for the source stage's camera supervisor (a library stage knows no runtime type).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }
}
