//! Asking a TSA for a token (RFC 3161 over HTTP, section 3.4): POST the DER TimeStampReq as
//! `application/timestamp-query`, read the TimeStampResp, check it answers this request. Blocking
//! (ureq): it runs on the timestamp worker's own thread, never on the async runtime.

use std::sync::Arc;
use std::time::Duration;

use super::token::{self, TokenError, TokenInfo};
use crate::redact::{redact_url, scrub_text};

/// A reply larger than this is not a token (a token with a certificate chain is a few kB).
const MAX_REPLY_BYTES: u64 = 1 << 20;

/// Why no token was obtained.
#[derive(Debug, thiserror::Error)]
pub enum TsaError {
    /// No HTTP answer: DNS, connection refused, timeout, TLS.
    #[error("cannot reach the TSA: {0}")]
    Unreachable(String),
    #[error("the TSA answered HTTP {status}{}", if .body.is_empty() { String::new() } else { format!(": {}", .body) })]
    Http { status: u16, body: String },
    #[error("the TSA's reply is not a token for this request: {0}")]
    Token(#[from] TokenError),
    #[error("cannot make a nonce: the system's random source failed")]
    Random,
}

/// A reply that was checked: the DER TimeStampResp to store and what its token says.
#[derive(Debug, Clone)]
pub struct Stamp {
    pub tsr: Vec<u8>,
    pub info: TokenInfo,
}

/// One TSA.
pub struct TsaClient {
    url: String,
    agent: ureq::Agent,
}

impl TsaClient {
    /// A client for `url` (http:// or https://, already validated by the settings); each request is
    /// given `timeout` in total (connect, send, reply). https:// verifies the TSA's certificate
    /// against the system's root certificates.
    pub fn new(url: &str, timeout: Duration) -> Result<TsaClient, String> {
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")));
        if url.starts_with("https://") {
            let loaded = rustls_native_certs::load_native_certs();
            if loaded.certs.is_empty() {
                let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
                return Err(format!(
                    "evidence.tsa_url {}: no system root certificates to verify the TSA with ({})",
                    redact_url(url),
                    if errors.is_empty() { "none found".to_owned() } else { errors.join("; ") }
                ));
            }
            let roots: Vec<ureq::tls::Certificate<'static>> =
                loaded.certs.iter().map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned()).collect();
            let tls = ureq::tls::TlsConfig::builder()
                .provider(ureq::tls::TlsProvider::Rustls)
                .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
                .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .build();
            config = config.tls_config(tls);
        }
        Ok(TsaClient { url: url.to_owned(), agent: config.build().into() })
    }

    /// The URL as logs may show it (credentials hidden).
    pub fn url_redacted(&self) -> String {
        redact_url(&self.url)
    }

    /// Asks for a token over `manifest_sha256` with a fresh random nonce; the reply is checked
    /// (granted, imprint, nonce) before it is returned.
    pub fn stamp(&self, manifest_sha256: &[u8; 32]) -> Result<Stamp, TsaError> {
        use ring::rand::SecureRandom;
        let mut nonce = [0u8; 8];
        ring::rand::SystemRandom::new().fill(&mut nonce).map_err(|_| TsaError::Random)?;
        let request = token::request(manifest_sha256, &nonce);
        let reply = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/timestamp-query")
            .header("Accept", "application/timestamp-reply")
            .send(&request[..])
            .map_err(|e| TsaError::Unreachable(scrub_text(&e.to_string(), &self.url)))?;
        let status = reply.status().as_u16();
        let mut body = reply.into_body();
        let bytes = body.with_config().limit(MAX_REPLY_BYTES).read_to_vec().map_err(|e| {
            TsaError::Unreachable(format!("reading the reply: {}", scrub_text(&e.to_string(), &self.url)))
        })?;
        if status != 200 {
            let text: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
            return Err(TsaError::Http { status, body: scrub_text(text.trim(), &self.url) });
        }
        let info = token::check_reply(&bytes, manifest_sha256, &nonce)?;
        Ok(Stamp { tsr: bytes, info })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// https:// builds a rustls client (ring, the system's roots) and a server that does not speak TLS
    /// is an error naming the TSA as unreachable, not a panic.
    #[test]
    fn https_to_a_server_without_tls_is_unreachable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 512];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        });
        let client = TsaClient::new(&format!("https://127.0.0.1:{port}/tsa"), Duration::from_secs(5)).unwrap();
        match client.stamp(&[1; 32]) {
            Err(TsaError::Unreachable(e)) => assert!(!e.is_empty()),
            other => panic!("{other:?}"),
        }
        server.join().unwrap();
    }

    #[test]
    fn credentials_in_the_url_are_not_shown() {
        let client = TsaClient::new("http://user:secret@127.0.0.1:9/tsa", Duration::from_secs(1)).unwrap();
        assert_eq!(client.url_redacted(), "http://user:***@127.0.0.1:9/tsa");
        let err = client.stamp(&[1; 32]).unwrap_err().to_string();
        assert!(err.starts_with("cannot reach the TSA: ") && !err.contains("secret"), "{err}");
    }
}
