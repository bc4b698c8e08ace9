//! The order in which `vigil run` stops, as one value every worker holds.
//!
//! Three phases, each set once and never undone:
//! 1. [`Shutdown::trigger`]: producers stop (cameras, analysis, scheduler, evidence, retention, reference
//!    capture); each loop polls [`Shutdown::is_set`] between steps.
//! 2. [`Shutdown::producers_done`]: the producers are joined or given up on; the decision task drains what
//!    they sent and stops. (A producer left behind still holds a channel sender, so the channel closing
//!    cannot be what says the stream of decisions has ended.)
//! 3. [`Shutdown::stop_delivery`]: every event is in the outbox; the MQTT publisher delivers what it can
//!    and disconnects ([`Shutdown::delivery`] is its receiver).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Clone)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    producers_done: Arc<AtomicBool>,
    delivery: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Shutdown {
        Shutdown {
            flag: Arc::default(),
            producers_done: Arc::default(),
            delivery: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Phase 1: asks every producer to stop.
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

    /// Phase 2: no producer will send another decision; the decision task drains and stops.
    pub fn producers_done(&self) {
        self.trigger();
        self.producers_done.store(true, Ordering::Relaxed);
    }

    pub fn are_producers_done(&self) -> bool {
        self.producers_done.load(Ordering::Relaxed)
    }

    /// Phase 3: the publisher delivers what it can and disconnects.
    pub fn stop_delivery(&self) {
        self.producers_done();
        self.delivery.send_replace(true);
    }

    /// For the publisher (a library stage): becomes true at phase 3.
    pub fn delivery(&self) -> tokio::sync::watch::Receiver<bool> {
        self.delivery.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each phase implies the earlier ones, and a clone sees what the original set.
    #[test]
    fn phases_are_ordered_and_shared() {
        let shutdown = Shutdown::new();
        let worker = shutdown.clone();
        let delivery = shutdown.delivery();
        assert!(!worker.is_set() && !worker.are_producers_done() && !*delivery.borrow());
        shutdown.trigger();
        assert!(worker.is_set() && !worker.are_producers_done() && !*delivery.borrow());
        shutdown.producers_done();
        assert!(worker.are_producers_done() && !*delivery.borrow());
        let fresh = Shutdown::new();
        fresh.stop_delivery();
        assert!(fresh.is_set() && fresh.are_producers_done() && *fresh.delivery().borrow());
    }
}
