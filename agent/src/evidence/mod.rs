//! Evidence: a signed hash chain of bundles (clip, snapshot, manifest; or a phone's photo) and records (ack, hold, release,
//! prune, epoch) — docs/evidence.md.

pub mod canonical;
pub mod checkin;
pub mod credentials;
pub mod head;
pub mod keys;
pub mod manifest;
pub mod pending;
pub mod records;
pub mod settings;
pub mod store;
pub mod timestamp;
pub mod verify;
