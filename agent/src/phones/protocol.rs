//! What a phone sends and signs (docs/ward-phones.md, "Protocol"), and the phone as the registry
//! knows it. The page (agent/assets/ward/) builds exactly these bytes.
//!
//! An upload is one `POST /api/phones/checkins` whose body is the photo's bytes as the phone has them
//! (`Content-Type: image/jpeg` or `image/png`), with three headers:
//! - `X-Vigil-Phone`: the phone's id;
//! - `X-Vigil-Meta`: base64url (no padding) of the [`UploadMeta`] JSON, which names the photo's SHA-256;
//! - `X-Vigil-Signature`: base64url (no padding) of the ECDSA P-256 / SHA-256 signature (IEEE P1363,
//!   r ‖ s, 64 bytes: what WebCrypto produces) over [`upload_message`].
//!
//! A signed GET (the ward's inpatients) signs [`get_message`] of its path and an `X-Vigil-Time`
//! header (RFC 3339), which must be within the skew window.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::report::{Mode, Position};

pub const HEADER_PHONE: &str = "x-vigil-phone";
pub const HEADER_META: &str = "x-vigil-meta";
pub const HEADER_SIGNATURE: &str = "x-vigil-signature";
pub const HEADER_TIME: &str = "x-vigil-time";

/// What the phone says about its photo; signed with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadMeta {
    /// Made by the phone when the photo is taken (UUID); a re-sent upload keeps it.
    pub capture_id: uuid::Uuid,
    pub mode: Mode,
    /// Bedside: the patient the photo shows (from the ward's list). Physician: absent (the phone's own
    /// physician is the one checking in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// When the photo was taken, by the phone's clock (RFC 3339).
    pub captured_at: String,
    /// The browser's position when the photo was taken; absent when the phone could not get one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    /// SHA-256 (lower-case hex) of the body: the signature covers the photo through it.
    pub photo_sha256: String,
}

/// The bytes an upload's signature covers: a fixed label, then the `X-Vigil-Meta` header's value as sent.
pub fn upload_message(meta_header: &str) -> Vec<u8> {
    format!("vigil-checkin-v1\n{meta_header}").into_bytes()
}

/// The bytes a signed GET's signature covers.
pub fn get_message(path: &str, time_header: &str) -> Vec<u8> {
    format!("vigil-get-v1\n{path}\n{time_header}").into_bytes()
}

/// A phone as the registry holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phone {
    /// `ph-` and 10 random characters; in events and evidence.
    pub id: String,
    pub ward: String,
    /// Who carries it, as the operator named it (`--name`).
    pub name: String,
    pub mode: Mode,
    /// Physician mode: the physician (roster id) whose phone it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physician: Option<String>,
    /// SPKI DER of its ECDSA P-256 public key, once enrolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<Vec<u8>>,
    #[serde(with = "crate::phones::protocol::rfc3339")]
    pub created_at: SystemTime,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::phones::protocol::rfc3339_opt")]
    pub enrolled_at: Option<SystemTime>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::phones::protocol::rfc3339_opt")]
    pub revoked_at: Option<SystemTime>,
}

pub(crate) mod rfc3339 {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        humantime::parse_rfc3339_weak(&text).map_err(serde::de::Error::custom)
    }
}

pub(crate) mod rfc3339_opt {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.collect_str(&humantime::format_rfc3339_millis(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        let text = <Option<String> as serde::Deserialize>::deserialize(d)?;
        text.map(|t| humantime::parse_rfc3339_weak(&t).map_err(serde::de::Error::custom)).transpose()
    }
}
