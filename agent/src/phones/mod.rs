//! Ward phones: enrolled devices (a key pair made in the phone's browser), the uploads they sign, and
//! the checks a bedside photo or a physician's check-in passes on the box before it becomes evidence.
//!
//! docs/ward-phones.md is the operator's side of it; the wire format (what the phone page signs) is
//! in docs/ward-phones.md, "Protocol".

pub mod checks;
pub mod exif;
pub mod geofence;
pub mod image;
pub mod phash;
pub mod protocol;
pub mod registry;
pub mod replay;
pub mod report;
pub mod service;
pub mod settings;
pub mod signature;

pub use protocol::{Phone, UploadMeta};
pub use report::{Check, CheckName, CheckReport, Mode, Outcome, Position};
pub use settings::{Geofence, PhoneSettings, Ward};
