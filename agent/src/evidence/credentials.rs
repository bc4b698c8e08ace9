//! Content Credentials (C2PA): the device certificate, and the manifest embedded in every clip and
//! snapshot, so a file copied out of its bundle still says which device made it, for which event, and
//! that it was not changed since (docs/evidence.md, "Content Credentials (C2PA)").
//!
//! The C2PA claim is signed with the device's Ed25519 key (C2PA's `Ed25519` algorithm) under the device
//! certificate `<data_dir>/keys/device-cert.pem`: a PEM chain, leaf first. `vigil keys init` self-issues
//! the leaf (a C2PA validator then reports the signer as untrusted: nobody vouches for a self-issued
//! certificate); `vigil keys csr` prints a PKCS#10 request for the platform's CA and `vigil keys
//! install-cert` installs the chain it returns, so validators that trust that CA trust the device.
//!
//! Offline by construction: the `c2pa` crate is built without any HTTP client, so signing never fetches
//! a timestamp, an OCSP response or a remote manifest.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::keys::DeviceKey;

/// The device certificate chain, relative to the data directory.
pub const CERT_FILE: &str = "keys/device-cert.pem";
/// Label of Vigil's own assertion in every manifest.
pub const ASSERTION: &str = "org.vigil.evidence";
/// How long a self-issued device certificate is valid.
pub const SELF_ISSUED_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);

/// id-kp-documentSigning (RFC 9336), one of the EKUs C2PA accepts for a claim signer.
const DOCUMENT_SIGNING: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 3, 36];
/// EKUs C2PA (and c2pa-rs's certificate profile check) accept on a claim-signing certificate.
const C2PA_EKUS: [&str; 4] =
    ["1.3.6.1.5.5.7.3.4", "1.3.6.1.5.5.7.3.36", "1.3.6.1.4.1.311.76.59.1.9", "1.3.6.1.4.1.62558.2.1"];

pub fn cert_path(data_dir: &Path) -> PathBuf {
    data_dir.join(CERT_FILE)
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "{path}: the certificate's public key ({found}) is not this device's key ({expected}); it was issued \
         for another device or another key (remove it and run `vigil keys init --config FILE` to self-issue one, \
         or install the right chain with `vigil keys install-cert`)"
    )]
    WrongKey { path: PathBuf, found: String, expected: String },
    #[error("cannot make the device certificate: {0}")]
    Issue(String),
    #[error("cannot embed Content Credentials in {file}: {message}")]
    Embed { file: String, message: String },
}

/// What a media file is: decides its MIME type and the actions its manifest records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// `clip.mp4`: the recording around the event, cut from the camera's ring.
    Clip,
    /// `snapshot.jpg`: the decisive frame with the detections' boxes drawn.
    Snapshot,
    /// `frame.jpg`: the decisive frame as the camera delivered it.
    Frame,
    /// `annotated.jpg`: a phone's photo, decoded, with the faces found drawn on it (the photo itself
    /// stays as the phone sent it, without credentials).
    Annotated,
}

impl Media {
    pub fn format(self) -> &'static str {
        match self {
            Media::Clip => "video/mp4",
            Media::Snapshot | Media::Frame | Media::Annotated => "image/jpeg",
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            Media::Clip => "clip.mp4",
            Media::Snapshot => "snapshot.jpg",
            Media::Frame => "frame.jpg",
            Media::Annotated => "annotated.jpg",
        }
    }
}

/// What Vigil's assertion (`org.vigil.evidence`) says about a file.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub site: String,
    pub device: String,
    pub sequence: u64,
    pub event_id: String,
    pub kind: String,
    pub camera: String,
    /// RFC 3339, as in the bundle's manifest.
    pub at: String,
}

impl Provenance {
    fn assertion(&self, media: Media) -> Value {
        json!({
            "schema": "vigil.c2pa.v1",
            "file": media.file_name(),
            "site": self.site,
            "device": self.device,
            "sequence": self.sequence,
            "event": {"id": self.event_id, "kind": self.kind, "camera": self.camera, "at": self.at},
            "agent": {"name": "vigil", "version": env!("CARGO_PKG_VERSION")},
        })
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = B64.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// The DER of every `CERTIFICATE` block of a PEM text, in order.
fn certificates(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let (begin, end) = ("-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(begin) {
        let body = &rest[start + begin.len()..];
        let stop = body.find(end).ok_or_else(|| format!("certificate {} has no END line", out.len() + 1))?;
        let der = B64
            .decode(body[..stop].split_whitespace().collect::<String>())
            .map_err(|e| format!("certificate {} is not valid base64: {e}", out.len() + 1))?;
        out.push(der);
        rest = &body[stop + end.len()..];
    }
    if out.is_empty() {
        return Err("no PEM CERTIFICATE in it".into());
    }
    Ok(out)
}

/// The device key as rcgen signs with it (certificates and requests).
struct RcgenKey<'a> {
    key: &'a DeviceKey,
    public: [u8; 32],
}

impl<'a> RcgenKey<'a> {
    fn new(key: &'a DeviceKey) -> Self {
        RcgenKey { key, public: key.public().0 }
    }
}

impl rcgen::PublicKeyData for RcgenKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ED25519
    }
}

impl rcgen::SigningKey for RcgenKey<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        Ok(self.key.sign(msg).to_vec())
    }
}

fn subject(site: &str, device: &str) -> rcgen::DistinguishedName {
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::CommonName, format!("{site}/{device}"));
    name.push(rcgen::DnType::OrganizationName, site);
    name.push(rcgen::DnType::OrganizationalUnitName, "Vigil edge device");
    name
}

/// The parameters of a C2PA claim-signing certificate for this device.
fn params(site: &str, device: &str, now: SystemTime) -> Result<rcgen::CertificateParams, CredentialsError> {
    let issue = |e: &dyn std::fmt::Display| CredentialsError::Issue(e.to_string());
    let seconds = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = subject(site, device);
    // A minute back, so a validator whose clock is slightly behind still sees a valid certificate.
    params.not_before = time::OffsetDateTime::from_unix_timestamp(seconds(now) - 60).map_err(|e| issue(&e))?;
    params.not_after =
        time::OffsetDateTime::from_unix_timestamp(seconds(now + SELF_ISSUED_VALIDITY)).map_err(|e| issue(&e))?;
    let mut serial = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut serial)
        .map_err(|_| issue(&"no randomness"))?;
    serial[0] &= 0x7f; // positive
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::EmailProtection,
        rcgen::ExtendedKeyUsagePurpose::Other(DOCUMENT_SIGNING.to_vec()),
    ];
    // C2PA requires the authority key identifier on a signing certificate (c2pa-rs refuses one without).
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// A self-issued certificate (PEM) for the device key: CN `<site>/<device>`, digitalSignature, EKUs
/// emailProtection and documentSigning, valid ten years from a minute before `now`.
pub fn self_issue(key: &DeviceKey, site: &str, device: &str, now: SystemTime) -> Result<String, CredentialsError> {
    let cert = params(site, device, now)?
        .self_signed(&RcgenKey::new(key))
        .map_err(|e| CredentialsError::Issue(e.to_string()))?;
    Ok(pem("CERTIFICATE", cert.der()))
}

/// A PKCS#10 certificate signing request (PEM) for the device key, for the platform's CA: the same
/// subject, key usage and EKUs as the self-issued certificate, requested as extensions.
pub fn csr(key: &DeviceKey, site: &str, device: &str) -> Result<String, CredentialsError> {
    let mut params = params(site, device, SystemTime::now())?;
    // The CA chooses the serial and adds the authority key identifier (of its own key).
    params.serial_number = None;
    params.use_authority_key_identifier_extension = false;
    let request = params.serialize_request(&RcgenKey::new(key)).map_err(|e| CredentialsError::Issue(e.to_string()))?;
    Ok(pem("CERTIFICATE REQUEST", request.der()))
}

/// Checks a chain (DER, leaf first) before it is used or installed: every certificate parses, the leaf's
/// public key is the device key, the leaf is a C2PA signing certificate (no CA, digitalSignature, an EKU
/// C2PA accepts, an authority key identifier), and each certificate is signed by the next.
fn check_chain(path: &Path, chain: &[Vec<u8>], key: &DeviceKey) -> Result<(), CredentialsError> {
    use x509_parser::prelude::*;
    let invalid = |message: String| CredentialsError::Invalid { path: path.to_owned(), message };
    let mut parsed = Vec::new();
    for (i, der) in chain.iter().enumerate() {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| invalid(format!("certificate {} is not an X.509 certificate: {e}", i + 1)))?;
        parsed.push(cert);
    }
    let leaf = &parsed[0];
    let expected = key.public();
    let spki = &leaf.tbs_certificate.subject_pki;
    let found = spki.subject_public_key.data.as_ref();
    if spki.algorithm.algorithm.to_id_string() != "1.3.101.112" || found != expected.0 {
        return Err(CredentialsError::WrongKey {
            path: path.to_owned(),
            found: if found.len() == 32 { B64.encode(found) } else { format!("a {} key", spki.algorithm.algorithm) },
            expected: expected.to_base64(),
        });
    }
    if leaf.is_ca() {
        return Err(invalid(
            "the first certificate is a CA certificate; the device's own certificate must come first".into(),
        ));
    }
    let usage = leaf.key_usage().map_err(|e| invalid(format!("key usage: {e}")))?;
    if !usage.is_some_and(|u| u.value.digital_signature()) {
        return Err(invalid("the device certificate lacks the digitalSignature key usage C2PA requires".into()));
    }
    let ekus = leaf.extended_key_usage().map_err(|e| invalid(format!("extended key usage: {e}")))?;
    let accepted = ekus.as_ref().is_some_and(|e| {
        let v = &e.value;
        v.email_protection || v.other.iter().any(|oid| C2PA_EKUS.contains(&oid.to_id_string().as_str()))
    });
    if !accepted || ekus.is_some_and(|e| e.value.any) {
        return Err(invalid(format!(
            "the device certificate has none of the extended key usages C2PA accepts for signing ({})",
            C2PA_EKUS.join(", ")
        )));
    }
    let has_aki =
        leaf.extensions().iter().any(|e| matches!(e.parsed_extension(), ParsedExtension::AuthorityKeyIdentifier(_)));
    if !has_aki {
        return Err(invalid("the device certificate has no authority key identifier, which C2PA requires".into()));
    }
    for (i, pair) in parsed.windows(2).enumerate() {
        pair[0].verify_signature(Some(pair[1].public_key())).map_err(|_| {
            invalid(format!("certificate {} is not signed by certificate {} (chain out of order?)", i + 1, i + 2))
        })?;
    }
    Ok(())
}

fn read_chain(path: &Path) -> Result<String, CredentialsError> {
    let meta =
        std::fs::symlink_metadata(path).map_err(|source| CredentialsError::Io { path: path.to_owned(), source })?;
    if meta.len() > 1024 * 1024 {
        return Err(CredentialsError::Invalid { path: path.to_owned(), message: "larger than 1 MiB".into() });
    }
    std::fs::read_to_string(path).map_err(|source| CredentialsError::Io { path: path.to_owned(), source })
}

/// Installs a chain (PEM, leaf first) as the device certificate `dest`, replacing the old one atomically,
/// after [`check_chain`]: a chain for another key is refused and `dest` is left as it was.
pub fn install(dest: &Path, source: &Path, key: &DeviceKey) -> Result<usize, CredentialsError> {
    let text = read_chain(source)?;
    let chain =
        certificates(&text).map_err(|message| CredentialsError::Invalid { path: source.to_owned(), message })?;
    check_chain(source, &chain, key)?;
    let out: String = chain.iter().map(|der| pem("CERTIFICATE", der)).collect();
    if let Some(dir) = dest.parent() {
        crate::fsio::create_dir(dir, crate::fsio::PRIVATE_DIR)
            .map_err(|source| CredentialsError::Io { path: dir.to_owned(), source })?;
    }
    crate::fsio::write(dest, out.as_bytes(), 0o644)
        .map_err(|source| CredentialsError::Io { path: dest.to_owned(), source })?;
    Ok(chain.len())
}

/// Writes a self-issued certificate for `key` at `path`, replacing whatever is there (for a key just
/// created, whose old certificate was for the key it replaces).
pub fn reissue(path: &Path, key: &DeviceKey, site: &str, device: &str) -> Result<(), CredentialsError> {
    let pem = self_issue(key, site, device, SystemTime::now())?;
    if let Some(dir) = path.parent() {
        crate::fsio::create_dir(dir, crate::fsio::PRIVATE_DIR)
            .map_err(|source| CredentialsError::Io { path: dir.to_owned(), source })?;
    }
    crate::fsio::write(path, pem.as_bytes(), 0o644)
        .map_err(|source| CredentialsError::Io { path: path.to_owned(), source })
}

/// The device's signing credentials: its key's certificate chain (DER, leaf first).
#[derive(Debug, Clone)]
pub struct Credentials {
    chain: Vec<Vec<u8>>,
}

impl Credentials {
    /// Loads the chain at `path`, checked against `key`.
    pub fn load(path: &Path, key: &DeviceKey) -> Result<Credentials, CredentialsError> {
        let text = read_chain(path)?;
        let chain =
            certificates(&text).map_err(|message| CredentialsError::Invalid { path: path.to_owned(), message })?;
        check_chain(path, &chain, key)?;
        Ok(Credentials { chain })
    }

    /// Loads the chain at `path`, or self-issues one there first when there is none (a key made before
    /// Vigil had certificates). Returns whether it issued one.
    pub fn load_or_issue(
        path: &Path,
        key: &DeviceKey,
        site: &str,
        device: &str,
    ) -> Result<(Credentials, bool), CredentialsError> {
        let issued = match std::fs::symlink_metadata(path) {
            Ok(_) => false,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pem = self_issue(key, site, device, SystemTime::now())?;
                if let Some(dir) = path.parent() {
                    crate::fsio::create_dir(dir, crate::fsio::PRIVATE_DIR)
                        .map_err(|source| CredentialsError::Io { path: dir.to_owned(), source })?;
                }
                match crate::fsio::create_new(path, pem.as_bytes(), 0o644) {
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false, // made meanwhile
                    other => {
                        other.map_err(|source| CredentialsError::Io { path: path.to_owned(), source }).map(|()| true)?
                    }
                }
            }
            Err(source) => return Err(CredentialsError::Io { path: path.to_owned(), source }),
        };
        Ok((Credentials::load(path, key)?, issued))
    }

    /// The leaf certificate's subject, for logs.
    pub fn subject(&self) -> String {
        x509_parser::parse_x509_certificate(&self.chain[0]).map(|(_, c)| c.subject().to_string()).unwrap_or_default()
    }

    /// `bytes` (a `media` file) with a C2PA manifest embedded, signed by `key`.
    pub fn embed(
        &self,
        key: &DeviceKey,
        media: Media,
        bytes: &[u8],
        what: &Provenance,
    ) -> Result<Vec<u8>, CredentialsError> {
        let fail = |e: c2pa::Error| CredentialsError::Embed { file: media.file_name().into(), message: e.to_string() };
        let definition = json!({
            "title": media.file_name(),
            "format": media.format(),
            "claim_generator_info": [{"name": "vigil", "version": env!("CARGO_PKG_VERSION")}],
        });
        let mut builder =
            c2pa::Builder::from_context(c2pa::Context::new()).with_definition(definition.to_string()).map_err(fail)?;
        // `c2pa.created`, digitalSourceType digitalCapture: a camera recorded it.
        builder.set_intent(c2pa::BuilderIntent::Create(c2pa::DigitalSourceType::DigitalCapture));
        let drawn = match media {
            Media::Snapshot => Some("boxes of the detections listed in the bundle's manifest drawn over the frame"),
            Media::Annotated => Some("boxes of the faces listed in the bundle's manifest drawn over the phone's photo"),
            Media::Clip | Media::Frame => None,
        };
        if let Some(description) = drawn {
            builder
                .add_action(json!({
                    "action": "c2pa.drawing",
                    "softwareAgent": {"name": "vigil", "version": env!("CARGO_PKG_VERSION")},
                    "description": description,
                }))
                .map_err(fail)?;
        }
        builder.add_assertion(ASSERTION, &what.assertion(media)).map_err(fail)?;
        let signer = DeviceSigner { key, chain: &self.chain };
        let mut out = Cursor::new(Vec::with_capacity(bytes.len() + 32 * 1024));
        builder.sign(&signer, media.format(), &mut Cursor::new(bytes), &mut out).map_err(fail)?;
        Ok(out.into_inner())
    }

    /// Embeds a manifest in the file at `path` (replaced in place: it is a bundle's temp file).
    pub fn embed_file(
        &self,
        key: &DeviceKey,
        media: Media,
        path: &Path,
        what: &Provenance,
    ) -> Result<(), CredentialsError> {
        let io = |source| CredentialsError::Io { path: path.to_owned(), source };
        let bytes = std::fs::read(path).map_err(io)?;
        let signed = self.embed(key, media, &bytes, what)?;
        std::fs::write(path, signed).map_err(io)
    }
}

/// The device key as c2pa signs with it: Ed25519 under the device chain, no timestamp authority, no OCSP.
struct DeviceSigner<'a> {
    key: &'a DeviceKey,
    chain: &'a [Vec<u8>],
}

impl c2pa::Signer for DeviceSigner<'_> {
    fn sign(&self, data: &[u8]) -> c2pa::Result<Vec<u8>> {
        Ok(self.key.sign(data).to_vec())
    }

    fn alg(&self) -> c2pa::SigningAlg {
        c2pa::SigningAlg::Ed25519
    }

    fn certs(&self) -> c2pa::Result<Vec<Vec<u8>>> {
        Ok(self.chain.to_vec())
    }

    fn reserve_size(&self) -> usize {
        // The COSE signature, its headers and the chain (as c2pa's own signers reserve).
        10_000 + self.chain.iter().map(Vec::len).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provenance() -> Provenance {
        Provenance {
            site: "hosp-1".into(),
            device: "edge-1".into(),
            sequence: 7,
            event_id: "0190d3a0-0000-7000-8000-000000000001".into(),
            kind: "camera_tamper".into(),
            camera: "ward-1".into(),
            at: "2026-11-24T10:00:04.000Z".into(),
        }
    }

    fn jpeg() -> Vec<u8> {
        let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 3, y as u8 * 5, 90]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img).unwrap();
        out
    }

    #[test]
    fn self_issued_certificate_signs_a_jpeg_that_c2pa_reads_back_with_valid_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let key = DeviceKey::init(&dir.path().join("keys/device.pem")).unwrap();
        let cert = dir.path().join("keys/device-cert.pem");
        let (credentials, issued) = Credentials::load_or_issue(&cert, &key, "hosp-1", "edge-1").unwrap();
        assert!(issued);
        assert!(credentials.subject().contains("CN=hosp-1/edge-1"), "{}", credentials.subject());
        let (_, issued_again) = Credentials::load_or_issue(&cert, &key, "hosp-1", "edge-1").unwrap();
        assert!(!issued_again, "an existing certificate is kept");

        let original = jpeg();
        let signed = credentials.embed(&key, Media::Snapshot, &original, &provenance()).unwrap();
        assert!(signed.len() > original.len());
        let reader =
            c2pa::Reader::from_context(c2pa::Context::new()).with_stream("image/jpeg", Cursor::new(&signed)).unwrap();
        let manifest = reader.active_manifest().unwrap();
        let ours: Value = manifest.find_assertion(ASSERTION).unwrap();
        assert_eq!(ours["event"]["id"], "0190d3a0-0000-7000-8000-000000000001");
        assert_eq!(ours["file"], "snapshot.jpg");
        assert_eq!(ours["sequence"], 7);
        let codes: Vec<String> =
            reader.validation_status().unwrap_or_default().iter().map(|s| s.code().to_owned()).collect();
        // Nobody vouches for a self-issued certificate; everything else validates.
        assert_eq!(codes, vec!["signingCredential.untrusted".to_owned()], "{}", reader.json());
        let json = reader.json();
        for code in ["claimSignature.validated", "assertion.dataHash.match"] {
            assert!(json.contains(code), "{code} missing: {json}");
        }

        // One flipped byte in the image data: the data hash no longer matches.
        let mut tampered = signed.clone();
        let at = tampered.len() - 100;
        tampered[at] ^= 0x55;
        let reader =
            c2pa::Reader::from_context(c2pa::Context::new()).with_stream("image/jpeg", Cursor::new(&tampered)).unwrap();
        let codes: Vec<&str> = reader.validation_status().unwrap_or_default().iter().map(|s| s.code()).collect();
        assert!(codes.contains(&"assertion.dataHash.mismatch"), "{codes:?}");
    }

    #[test]
    fn a_chain_for_another_key_or_without_c2pa_usage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = DeviceKey::init(&dir.path().join("a.pem")).unwrap();
        let other = DeviceKey::init(&dir.path().join("b.pem")).unwrap();
        let foreign = dir.path().join("foreign.pem");
        std::fs::write(&foreign, self_issue(&other, "s", "d", SystemTime::now()).unwrap()).unwrap();
        let dest = dir.path().join("keys/device-cert.pem");
        let err = install(&dest, &foreign, &key).unwrap_err();
        assert!(matches!(err, CredentialsError::WrongKey { .. }), "{err}");
        assert!(err.to_string().contains("not this device's key"), "{err}");
        assert!(!dest.exists(), "nothing installed");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        assert!(install(&dest, &junk, &key).unwrap_err().to_string().contains("no PEM CERTIFICATE"));
        let own = dir.path().join("own.pem");
        std::fs::write(&own, self_issue(&key, "s", "d", SystemTime::now()).unwrap()).unwrap();
        assert_eq!(install(&dest, &own, &key).unwrap(), 1);
        assert!(Credentials::load(&dest, &key).is_ok());
        assert!(matches!(Credentials::load(&dest, &other).unwrap_err(), CredentialsError::WrongKey { .. }));
    }
}
