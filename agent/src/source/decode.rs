//! Placeholder of the decode control (the source helper's module replaces this file at merge).

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeMode {
    Keyframes,
    Full,
}

#[derive(Debug)]
pub struct DecodeControl {
    mode: AtomicU8,
    switches: AtomicU64,
}

impl DecodeControl {
    pub fn new(mode: DecodeMode) -> DecodeControl {
        DecodeControl { mode: AtomicU8::new(mode as u8), switches: AtomicU64::new(0) }
    }

    pub fn set(&self, mode: DecodeMode) {
        let old = self.mode.swap(mode as u8, Ordering::Relaxed);
        if old == DecodeMode::Keyframes as u8 && mode == DecodeMode::Full {
            self.switches.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn mode(&self) -> DecodeMode {
        if self.mode.load(Ordering::Relaxed) == DecodeMode::Full as u8 {
            DecodeMode::Full
        } else {
            DecodeMode::Keyframes
        }
    }

    pub fn switches(&self) -> u64 {
        self.switches.load(Ordering::Relaxed)
    }
}
