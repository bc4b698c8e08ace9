//! A ward phone as the page makes one, for tests that speak the protocol without a browser: an ECDSA
//! P-256 key pair signing as WebCrypto does (r ‖ s, 64 bytes, base64url without padding), and its
//! public key as the SPKI the page registers.
#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use vigil::phones::registry::P256_SPKI_HEADER;

pub struct TestPhone {
    /// The id the box gave it at enrolment (empty before).
    pub id: String,
    pub pair: EcdsaKeyPair,
    pub spki: Vec<u8>,
}

impl TestPhone {
    pub fn new() -> TestPhone {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let spki = [&P256_SPKI_HEADER[..], pair.public_key().as_ref()].concat();
        TestPhone { id: String::new(), pair, spki }
    }

    /// A signature as the page sends it.
    pub fn sign(&self, message: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.pair.sign(&ring::rand::SystemRandom::new(), message).unwrap().as_ref())
    }
}
