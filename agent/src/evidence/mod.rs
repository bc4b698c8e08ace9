//! Evidence: signed, hash-chained bundles (clip, snapshot, manifest) — docs/evidence.md.

pub mod canonical;
pub mod credentials;
pub mod keys;
pub mod manifest;
pub mod pending;
pub mod settings;
pub mod store;
pub mod verify;
