//! Checking what a phone signed (docs/ward-phones.md, "Protocol"): ECDSA P-256 with SHA-256, the
//! signature as WebCrypto makes it (IEEE P1363: r ‖ s, 64 bytes), over the bytes of
//! [`upload_message`](super::protocol::upload_message) or [`get_message`](super::protocol::get_message),
//! by the key the registry holds for the phone. A signed GET also carries its time, which must be
//! within the skew window: a recorded request cannot be replayed later.

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

use super::registry::p256_point;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature is not base64url")]
    Encoding,
    #[error("the signature is {0} bytes; an ECDSA P-256 signature (r ‖ s) is 64")]
    Length(usize),
    #[error("the registered key is not an ECDSA P-256 key: {0}")]
    Key(String),
    #[error("the signature does not verify with the phone's registered key")]
    Mismatch,
}

/// Decodes a base64url value (the page sends it without padding; padding is tolerated).
pub fn decode_b64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim()).or_else(|_| URL_SAFE.decode(text.trim())).ok()
}

/// Verifies `signature` (base64url, as in `X-Vigil-Signature`) over `message` with `spki` (the SPKI DER
/// the phone enrolled).
pub fn verify(spki: &[u8], message: &[u8], signature: &str) -> Result<(), SignatureError> {
    let signature = decode_b64url(signature).ok_or(SignatureError::Encoding)?;
    if signature.len() != 64 {
        return Err(SignatureError::Length(signature.len()));
    }
    let point = p256_point(spki).map_err(SignatureError::Key)?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        .verify(message, &signature)
        .map_err(|_| SignatureError::Mismatch)
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TimeError {
    #[error("X-Vigil-Time {0:?} is not an RFC 3339 time: {1}")]
    Unparsable(String, String),
    #[error(
        "X-Vigil-Time is {secs} s {} the box's clock (at most {skew} s allowed): check the phone's clock",
        if *.ahead { "ahead of" } else { "behind" }
    )]
    Skewed { secs: u64, ahead: bool, skew: u64 },
}

/// The time of a signed GET (`X-Vigil-Time`, RFC 3339 with an offset), when within `skew` of `now`.
pub fn check_time(header: &str, now: SystemTime, skew: Duration) -> Result<SystemTime, TimeError> {
    let at = crate::times::parse(header, crate::times::Naive::Refuse)
        .map_err(|e| TimeError::Unparsable(header.chars().take(64).collect(), e))?;
    let (by, ahead) = match at.duration_since(now) {
        Ok(ahead) => (ahead, true),
        Err(behind) => (behind.duration(), false),
    };
    if by > skew {
        return Err(TimeError::Skewed { secs: by.as_secs(), ahead, skew: skew.as_secs() });
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    use super::*;
    use crate::phones::Mode;
    use crate::phones::protocol::{get_message, upload_message};
    use crate::phones::registry::{NewPhone, P256_SPKI_HEADER, Registry};

    /// A phone as the page makes one: a P-256 key pair; its SPKI is what it registers.
    fn phone() -> (EcdsaKeyPair, Vec<u8>) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let spki = [&P256_SPKI_HEADER[..], pair.public_key().as_ref()].concat();
        (pair, spki)
    }

    fn sign(pair: &EcdsaKeyPair, message: &[u8]) -> String {
        let signature = pair.sign(&ring::rand::SystemRandom::new(), message).unwrap();
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    }

    #[test]
    fn the_phone_signs_and_the_box_verifies() {
        let (pair, spki) = phone();
        let message = upload_message("eyJjYXB0dXJlX2lkIjoi");
        let signature = sign(&pair, &message);
        assert_eq!(decode_b64url(&signature).unwrap().len(), 64, "P1363, as WebCrypto");
        verify(&spki, &message, &signature).unwrap();
        // Padding added by a client that pads is accepted too.
        let padded = URL_SAFE.encode(decode_b64url(&signature).unwrap());
        verify(&spki, &message, &padded).unwrap();
    }

    #[test]
    fn another_key_a_flipped_byte_or_another_message_fails() {
        let (pair, spki) = phone();
        let (_, other) = phone();
        let message = get_message("/api/phones/ward", "2026-12-05T10:00:00Z");
        let signature = sign(&pair, &message);
        assert_eq!(verify(&other, &message, &signature), Err(SignatureError::Mismatch));
        let mut flipped = decode_b64url(&signature).unwrap();
        flipped[10] ^= 0x01;
        assert_eq!(verify(&spki, &message, &URL_SAFE_NO_PAD.encode(&flipped)), Err(SignatureError::Mismatch));
        let later = get_message("/api/phones/ward", "2026-12-05T10:00:01Z");
        assert_eq!(verify(&spki, &later, &signature), Err(SignatureError::Mismatch));
        assert_eq!(verify(&spki, &message, "not base64!"), Err(SignatureError::Encoding));
        assert_eq!(verify(&spki, &message, &URL_SAFE_NO_PAD.encode([0u8; 70])), Err(SignatureError::Length(70)));
        // A DER-encoded signature (what a non-WebCrypto client might send) is refused by its length.
        let der = EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            EcdsaKeyPair::generate_pkcs8(
                &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                &ring::rand::SystemRandom::new(),
            )
            .unwrap()
            .as_ref(),
            &ring::rand::SystemRandom::new(),
        )
        .unwrap()
        .sign(&ring::rand::SystemRandom::new(), &message)
        .unwrap();
        assert!(matches!(
            verify(&spki, &message, &URL_SAFE_NO_PAD.encode(der.as_ref())),
            Err(SignatureError::Length(_))
        ));
    }

    /// The registry's key is the one that verifies; a revoked phone still verifies (the server refuses
    /// it as revoked, and the attempt is recorded), an expired or used token enrols nothing.
    #[test]
    fn registered_key_verifies_revoked_is_known_tokens_expire() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(&Registry::path_in(dir.path())).unwrap();
        let new = NewPhone { ward: "ward-3".into(), name: "Li Na".into(), mode: Mode::Bedside, physician: None };
        let now = SystemTime::now();
        let invitation = registry.add(new.clone(), Duration::from_secs(60), now).unwrap();
        let (pair, spki) = phone();
        let enrolled = registry.enrol(&invitation.token, &spki, now).unwrap();
        let message = upload_message("meta");
        let signature = sign(&pair, &message);
        let key = registry.get(&enrolled.id).unwrap().unwrap().public_key.unwrap();
        verify(&key, &message, &signature).unwrap();
        registry.revoke(&enrolled.id, "stolen", now).unwrap();
        let revoked = registry.get(&enrolled.id).unwrap().unwrap();
        assert!(revoked.revoked_at.is_some());
        verify(revoked.public_key.as_deref().unwrap(), &message, &signature).unwrap();

        let expired = registry.add(new, Duration::from_secs(60), now).unwrap();
        let (_, spki2) = phone();
        assert!(registry.enrol(&expired.token, &spki2, now + Duration::from_secs(3600)).is_err());
        assert!(registry.enrol(&invitation.token, &spki2, now).is_err(), "a used token enrols again");
        assert_eq!(registry.get(&enrolled.id).unwrap().unwrap().public_key.as_deref(), Some(&spki[..]));
    }

    #[test]
    fn a_get_time_must_be_within_the_skew() {
        let now = crate::times::parse("2026-12-05T10:00:00Z", crate::times::Naive::Refuse).unwrap();
        let skew = Duration::from_secs(300);
        assert!(check_time("2026-12-05T10:04:59Z", now, skew).is_ok());
        assert!(check_time("2026-12-05T18:00:00+08:00", now, skew).is_ok());
        assert_eq!(
            check_time("2026-12-05T10:06:00Z", now, skew),
            Err(TimeError::Skewed { secs: 360, ahead: true, skew: 300 })
        );
        let behind = check_time("2026-12-05T09:50:00.000Z", now, skew).unwrap_err();
        assert!(behind.to_string().contains("600 s behind"), "{behind}");
        assert!(matches!(check_time("yesterday", now, skew), Err(TimeError::Unparsable(..))));
        assert!(matches!(check_time("2026-12-05T10:00:00", now, skew), Err(TimeError::Unparsable(..))));
    }
}
