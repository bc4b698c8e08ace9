//! RFC 3161 messages: the TimeStampReq the agent sends and the TimeStampResp it stores as
//! `timestamp.tsr`, read far enough to check what the token says — the message imprint (SHA-256 of
//! manifest.json), the nonce, genTime. The CMS signature over the token is not checked here (that is
//! `openssl ts -verify` with the TSA's certificates, docs/evidence.md "Trusted time").
//!
//! ```text
//! TimeStampReq  ::= SEQUENCE { version 1, messageImprint, reqPolicy OPTIONAL, nonce INTEGER, certReq TRUE }
//! TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken ContentInfo OPTIONAL }
//! ContentInfo   ::= SEQUENCE { id-signedData, [0] EXPLICIT SignedData }
//! SignedData    ::= SEQUENCE { version, digestAlgorithms SET, encapContentInfo, … }
//! encapContentInfo ::= SEQUENCE { id-ct-TSTInfo, [0] EXPLICIT OCTET STRING (DER of TSTInfo) }
//! TSTInfo       ::= SEQUENCE { version 1, policy, messageImprint, serialNumber, genTime,
//!                              accuracy OPTIONAL, ordering BOOLEAN DEFAULT FALSE, nonce OPTIONAL, … }
//! ```

use std::time::SystemTime;

use super::der::{self, DerError, Reader, Tlv};
use crate::hashing::hex;

const OID_SHA256: &str = "2.16.840.1.101.3.4.2.1";
const OID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const OID_TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";
/// The DER of the SHA-256 OID.
const SHA256_OID_DER: [u8; 11] = [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];

/// What a token says (its CMS signature not checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// genTime as RFC 3339 (`2026-11-28T16:47:11Z`, fractions kept as the TSA gave them).
    pub gen_time: String,
    pub gen_time_system: SystemTime,
    /// The TSA's serial number of the token, lower-case hex.
    pub serial: String,
    /// The TSA policy the token was issued under (dotted OID).
    pub policy: String,
    /// The nonce, big-endian magnitude without leading zeros; `None` when the token has none.
    pub nonce: Option<Vec<u8>>,
}

/// Why a TimeStampResp is not a token for the manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a DER TimeStampResp: {0}")]
    Der(#[from] DerError),
    #[error("the TSA refused: status {status} ({}){}{}", status_name(*.status),
        .text.as_ref().map(|t| format!(", \"{t}\"")).unwrap_or_default(),
        if .failure.is_empty() { String::new() } else { format!(", failInfo {}", .failure.join(" ")) })]
    Refused { status: u64, text: Option<String>, failure: Vec<&'static str> },
    #[error("the TSA granted the request but sent no timeStampToken")]
    NoToken,
    #[error("the token is not CMS SignedData (content type {0})")]
    NotSignedData(String),
    #[error("the token's content is not a TSTInfo (content type {0})")]
    NotTstInfo(String),
    #[error("the token's TSTInfo has version {0}, not 1")]
    Version(u64),
    #[error("the token's message imprint uses hash algorithm {0}, not SHA-256")]
    HashAlgorithm(String),
    #[error("the token is over another hash: its message imprint is {token}, the manifest's SHA-256 is {expected}")]
    Imprint { token: String, expected: String },
    #[error("the token has no nonce, the request had {0}")]
    NoNonce(String),
    #[error("the token's nonce {token} is not the request's {expected} (a reply to another request)")]
    Nonce { token: String, expected: String },
    #[error("the token's genTime {0:?} is not a GeneralizedTime in UTC (YYYYMMDDHHMMSS[.f]Z)")]
    GenTime(String),
}

fn status_name(status: u64) -> &'static str {
    match status {
        0 => "granted",
        1 => "grantedWithMods",
        2 => "rejection",
        3 => "waiting",
        4 => "revocationWarning",
        5 => "revocationNotification",
        _ => "unknown",
    }
}

/// PKIFailureInfo bit names (RFC 3161 section 2.4.2).
fn failure_names(bits: &Tlv<'_>) -> Vec<&'static str> {
    const NAMES: [(usize, &str); 8] = [
        (0, "badAlg"),
        (2, "badRequest"),
        (5, "badDataFormat"),
        (14, "timeNotAvailable"),
        (15, "unacceptedPolicy"),
        (16, "unacceptedExtension"),
        (17, "addInfoNotAvailable"),
        (25, "systemFailure"),
    ];
    let data = bits.value.get(1..).unwrap_or(&[]);
    let set = |bit: usize| data.get(bit / 8).is_some_and(|b| b & (0x80 >> (bit % 8)) != 0);
    NAMES.iter().filter(|(bit, _)| set(*bit)).map(|(_, name)| *name).collect()
}

/// The DER TimeStampReq for SHA-256 `imprint`, with `nonce` (big-endian) and certReq TRUE (the token
/// then carries the TSA's certificate, so `openssl ts -verify` needs only the CA).
pub fn request(imprint: &[u8; 32], nonce: &[u8]) -> Vec<u8> {
    let algorithm = der::sequence(&[&SHA256_OID_DER, &der::encode(der::NULL, &[])]);
    let message_imprint = der::sequence(&[&algorithm, &der::encode(der::OCTET_STRING, imprint)]);
    der::sequence(&[
        &der::encode_unsigned(&[1]),
        &message_imprint,
        &der::encode_unsigned(nonce),
        &der::encode(der::BOOLEAN, &[0xff]),
    ])
}

/// Checks a stored `timestamp.tsr` (a TimeStampResp, as `openssl ts -reply` writes it) against the
/// manifest's SHA-256: the status is granted, the token is a TSTInfo over exactly that hash. Returns
/// genTime and the rest of what the token says. The token's CMS signature is not checked.
pub fn check_token(tsr_der: &[u8], manifest_sha256: &[u8; 32]) -> Result<TokenInfo, String> {
    check(tsr_der, manifest_sha256).map_err(|e| e.to_string())
}

/// [`check_token`] with a typed error.
pub fn check(tsr_der: &[u8], manifest_sha256: &[u8; 32]) -> Result<TokenInfo, TokenError> {
    let info = parse(tsr_der)?;
    if info.imprint.as_slice() != manifest_sha256 {
        return Err(TokenError::Imprint { token: hex(&info.imprint), expected: hex(manifest_sha256) });
    }
    Ok(info.token)
}

/// Checks the TSA's reply to a request with `nonce`: [`check`], and the nonce is the request's.
pub fn check_reply(tsr_der: &[u8], manifest_sha256: &[u8; 32], nonce: &[u8]) -> Result<TokenInfo, TokenError> {
    let info = check(tsr_der, manifest_sha256)?;
    let expected: Vec<u8> = nonce.iter().copied().skip_while(|&b| b == 0).collect();
    match &info.nonce {
        None => Err(TokenError::NoNonce(hex(&expected))),
        Some(n) if *n != expected => Err(TokenError::Nonce { token: hex(n), expected: hex(&expected) }),
        Some(_) => Ok(info),
    }
}

struct Parsed {
    token: TokenInfo,
    imprint: Vec<u8>,
}

fn oid_of(tlv: &Tlv<'_>) -> Result<String, TokenError> {
    Ok(der::oid_string(tlv)?)
}

fn parse(bytes: &[u8]) -> Result<Parsed, TokenError> {
    let resp = der::single(bytes, der::SEQUENCE, "TimeStampResp")?;
    let mut resp = Reader::inside(&resp);
    let status_info = resp.expect(der::SEQUENCE, "PKIStatusInfo")?;
    let mut status_info = Reader::inside(&status_info);
    let status = der::small_integer(&status_info.expect(der::INTEGER, "PKIStatus")?, "PKIStatus")?;
    let text = match status_info.optional(der::SEQUENCE)? {
        Some(free_text) => {
            let mut strings = Reader::inside(&free_text);
            let mut parts = Vec::new();
            while !strings.is_empty() {
                parts.push(String::from_utf8_lossy(strings.any()?.value).into_owned());
            }
            Some(parts.join("; "))
        }
        None => None,
    };
    let failure = status_info.optional(0x03)?.map(|bits| failure_names(&bits)).unwrap_or_default();
    if status > 1 {
        return Err(TokenError::Refused { status, text, failure });
    }
    let Some(token) = resp.optional(der::SEQUENCE)? else { return Err(TokenError::NoToken) };
    resp.finish("TimeStampResp")?;

    // ContentInfo → SignedData → encapContentInfo → eContent.
    let mut content_info = Reader::inside(&token);
    let content_type = oid_of(&content_info.expect(der::OID, "ContentInfo contentType")?)?;
    if content_type != OID_SIGNED_DATA {
        return Err(TokenError::NotSignedData(content_type));
    }
    let explicit = content_info.expect(der::CONTEXT_0, "ContentInfo content [0]")?;
    let signed_data = der::single_in(&explicit, der::SEQUENCE, "SignedData")?;
    let mut signed_data = Reader::inside(&signed_data);
    signed_data.expect(der::INTEGER, "SignedData version")?;
    signed_data.expect(der::SET, "SignedData digestAlgorithms")?;
    let encap = signed_data.expect(der::SEQUENCE, "SignedData encapContentInfo")?;
    let mut encap = Reader::inside(&encap);
    let e_content_type = oid_of(&encap.expect(der::OID, "eContentType")?)?;
    if e_content_type != OID_TST_INFO {
        return Err(TokenError::NotTstInfo(e_content_type));
    }
    let e_content = encap.expect(der::CONTEXT_0, "eContent [0]")?;
    let mut e_content = Reader::inside(&e_content);
    let octets = e_content.expect(der::OCTET_STRING, "eContent OCTET STRING")?;
    e_content.finish("eContent")?;
    let tst_info = der::single_in(&octets, der::SEQUENCE, "TSTInfo")?;
    parse_tst_info(&tst_info)
}

fn parse_tst_info(tst_info: &Tlv<'_>) -> Result<Parsed, TokenError> {
    let mut tst = Reader::inside(tst_info);
    let version = der::small_integer(&tst.expect(der::INTEGER, "TSTInfo version")?, "TSTInfo version")?;
    if version != 1 {
        return Err(TokenError::Version(version));
    }
    let policy = oid_of(&tst.expect(der::OID, "TSTInfo policy")?)?;
    let imprint = tst.expect(der::SEQUENCE, "TSTInfo messageImprint")?;
    let mut imprint = Reader::inside(&imprint);
    let algorithm = imprint.expect(der::SEQUENCE, "messageImprint hashAlgorithm")?;
    let algorithm = oid_of(&Reader::inside(&algorithm).expect(der::OID, "hashAlgorithm algorithm")?)?;
    if algorithm != OID_SHA256 {
        return Err(TokenError::HashAlgorithm(algorithm));
    }
    let hashed = imprint.expect(der::OCTET_STRING, "messageImprint hashedMessage")?.value.to_vec();
    imprint.finish("messageImprint")?;
    let serial = der::unsigned_integer(&tst.expect(der::INTEGER, "TSTInfo serialNumber")?, "serialNumber")?;
    let gen_time = tst.expect(der::GENERALIZED_TIME, "TSTInfo genTime")?;
    let gen_time_text = String::from_utf8_lossy(gen_time.value).into_owned();
    let gen_time = rfc3339(&gen_time_text).ok_or_else(|| TokenError::GenTime(gen_time_text.clone()))?;
    let gen_time_system =
        crate::times::parse(&gen_time, crate::times::Naive::Refuse).map_err(|_| TokenError::GenTime(gen_time_text))?;
    tst.optional(der::SEQUENCE)?; // accuracy
    tst.optional(der::BOOLEAN)?; // ordering
    let nonce = match tst.optional(der::INTEGER)? {
        Some(n) => Some(der::unsigned_integer(&n, "nonce")?),
        None => None,
    };
    Ok(Parsed { token: TokenInfo { gen_time, gen_time_system, serial: hex(&serial), policy, nonce }, imprint: hashed })
}

/// `YYYYMMDDHHMMSS[.f+]Z` (DER GeneralizedTime: UTC, no trailing zeros in the fraction) as RFC 3339.
fn rfc3339(text: &str) -> Option<String> {
    let body = text.strip_suffix('Z')?;
    let (whole, fraction) = match body.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (body, None),
    };
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Some(f) = fraction
        && (f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let mut out = format!(
        "{}-{}-{}T{}:{}:{}",
        &whole[0..4],
        &whole[4..6],
        &whole[6..8],
        &whole[8..10],
        &whole[10..12],
        &whole[12..14]
    );
    if let Some(f) = fraction {
        out.push('.');
        out.push_str(f);
    }
    out.push('Z');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TimeStampResp built field by field (unsigned: the signer infos are empty, which is enough
    /// for what this module reads).
    fn response(status: u8, imprint: &[u8], algorithm: &[u8], gen_time: &str, nonce: Option<&[u8]>) -> Vec<u8> {
        let status = der::sequence(&[&der::encode_unsigned(&[status])]);
        let alg = der::sequence(&[algorithm, &der::encode(der::NULL, &[])]);
        let message_imprint = der::sequence(&[&alg, &der::encode(der::OCTET_STRING, imprint)]);
        let policy = der::encode(der::OID, &[0x2a, 0x03, 0x04, 0x01]); // 1.2.3.4.1
        let mut fields = vec![
            der::encode_unsigned(&[1]),
            policy,
            message_imprint,
            der::encode_unsigned(&[0x01, 0x02]),
            der::encode(der::GENERALIZED_TIME, gen_time.as_bytes()),
            der::sequence(&[&der::encode_unsigned(&[1])]), // accuracy: 1 s
        ];
        if let Some(n) = nonce {
            fields.push(der::encode_unsigned(n));
        }
        let tst = der::sequence(&fields.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let tst_oid = der::encode(der::OID, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x04]);
        let encap = der::sequence(&[&tst_oid, &der::encode(der::CONTEXT_0, &der::encode(der::OCTET_STRING, &tst))]);
        let signed = der::sequence(&[
            &der::encode_unsigned(&[3]),
            &der::encode(der::SET, &[]),
            &encap,
            &der::encode(der::SET, &[]),
        ]);
        let sd_oid = der::encode(der::OID, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02]);
        let token = der::sequence(&[&sd_oid, &der::encode(der::CONTEXT_0, &signed)]);
        der::sequence(&[&status, &token])
    }

    const HASH: [u8; 32] = [0xab; 32];

    #[test]
    fn request_is_the_der_openssl_ts_query_writes() {
        // `openssl ts -query -digest <ab…ab> -sha256 -cert` with nonce 0x0102…: the same bytes.
        let req = request(&HASH, &[0x00, 0x81, 0x02]);
        let mut expected = vec![0x30, 0x3e, 0x02, 0x01, 0x01, 0x30, 0x31, 0x30, 0x0d];
        expected.extend(SHA256_OID_DER);
        expected.extend([0x05, 0x00, 0x04, 0x20]);
        expected.extend(HASH);
        expected.extend([0x02, 0x03, 0x00, 0x81, 0x02, 0x01, 0x01, 0xff]);
        assert_eq!(req, expected);
    }

    #[test]
    fn a_granted_token_over_the_hash_is_read() {
        let tsr = response(0, &HASH, &SHA256_OID_DER, "20261128164711.25Z", Some(&[0x42, 0x00]));
        let info = check_reply(&tsr, &HASH, &[0x00, 0x42, 0x00]).unwrap();
        assert_eq!(info.gen_time, "2026-11-28T16:47:11.25Z");
        assert_eq!(
            info.gen_time_system,
            crate::times::parse("2026-11-28T16:47:11.250Z", crate::times::Naive::Refuse).unwrap()
        );
        assert_eq!((info.serial.as_str(), info.policy.as_str()), ("0102", "1.2.3.4.1"));
        assert_eq!(check_token(&tsr, &HASH).unwrap(), info);
    }

    #[test]
    fn every_wrong_reply_is_named() {
        let tsr = response(0, &[0xcd; 32], &SHA256_OID_DER, "20261128164711Z", Some(&[7]));
        assert_eq!(
            check_token(&tsr, &HASH).unwrap_err(),
            format!(
                "the token is over another hash: its message imprint is {}, the manifest's SHA-256 is {}",
                "cd".repeat(32),
                "ab".repeat(32)
            )
        );
        let tsr = response(0, &HASH, &SHA256_OID_DER, "20261128164711Z", Some(&[7]));
        assert_eq!(
            check_reply(&tsr, &HASH, &[8]).unwrap_err().to_string(),
            "the token's nonce 07 is not the request's 08 (a reply to another request)"
        );
        let tsr = response(0, &HASH, &SHA256_OID_DER, "20261128164711Z", None);
        assert_eq!(check_reply(&tsr, &HASH, &[8]).unwrap_err(), TokenError::NoNonce("08".into()));
        let sha1 = [0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a];
        let tsr = response(0, &HASH, &sha1, "20261128164711Z", Some(&[7]));
        assert_eq!(check(&tsr, &HASH).unwrap_err(), TokenError::HashAlgorithm("1.3.14.3.2.26".into()));
        let tsr = response(0, &HASH, &SHA256_OID_DER, "2026112816Z", Some(&[7]));
        assert_eq!(check(&tsr, &HASH).unwrap_err(), TokenError::GenTime("2026112816Z".into()));
        let tsr = response(0, &HASH, &SHA256_OID_DER, "20261340164711Z", Some(&[7]));
        assert!(matches!(check(&tsr, &HASH).unwrap_err(), TokenError::GenTime(_)));
        assert!(
            check_token(b"<html>502 Bad Gateway</html>", &HASH).unwrap_err().starts_with("not a DER TimeStampResp: ")
        );
        let mut truncated = response(0, &HASH, &SHA256_OID_DER, "20261128164711Z", Some(&[7]));
        truncated.truncate(truncated.len() - 3);
        assert!(matches!(check(&truncated, &HASH).unwrap_err(), TokenError::Der(_)));
        let granted_without_token = der::sequence(&[&der::sequence(&[&der::encode_unsigned(&[0])])]);
        assert_eq!(check(&granted_without_token, &HASH).unwrap_err(), TokenError::NoToken);
    }

    #[test]
    fn a_refusal_says_status_text_and_failure() {
        // status rejection, statusString "unsupported algorithm", failInfo badAlg.
        let text = der::sequence(&[&der::encode(0x0c, b"unsupported algorithm")]);
        let fail = der::encode(0x03, &[0x07, 0x80]);
        let tsr = der::sequence(&[&der::sequence(&[&der::encode_unsigned(&[2]), &text, &fail])]);
        assert_eq!(
            check_token(&tsr, &HASH).unwrap_err(),
            "the TSA refused: status 2 (rejection), \"unsupported algorithm\", failInfo badAlg"
        );
    }
}
