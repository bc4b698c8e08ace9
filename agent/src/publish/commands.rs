//! Signed commands from the platform (docs/mqtt-api.md): verified before anything acts on them.
//!
//! Two forms are accepted on `…/cmd/<name>`:
//! - **JWS** (the standard form): a JWS compact serialization (RFC 7515) signed with EdDSA over
//!   Ed25519 (RFC 8037), whose payload is the command `{name, issued_at, nonce, args}`. Any JOSE
//!   library signs it; nothing has to be canonicalised.
//! - **Canonical JSON** (deprecated, logged once): a JSON object `{name, issued_at, nonce, args,
//!   signature}`; `signature` is the base64 Ed25519 signature of the canonical JSON of the object
//!   without `signature`.
//!
//! Both go through the same checks after the signature: issued_at within the window, nonce not seen.
//! Rejected, with the reason in the `cmd-result`: malformed, unsigned, unsupported_alg, bad_signature,
//! expired (issued_at further than the window from now), replayed (nonce already seen), unknown_command.
//! Before parsing, the payload's shape is checked: arrays and objects nest at most [`MAX_NESTING`] deep,
//! and integers fit in 64 bits (JSON parsers read larger ones as floats, which would be misreported).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use serde::Serialize;
use serde_json::{Value, json};

use crate::evidence::canonical;
use crate::evidence::keys::PublicKey;

/// Why a command was refused (the `reason` of its cmd-result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    Malformed(String),
    Unsigned,
    /// A JWS whose `alg` is not `EdDSA` (`none` included).
    UnsupportedAlg(String),
    BadSignature,
    Expired,
    Replayed,
    UnknownCommand(String),
    Failed(String),
}

impl Reject {
    /// Every `reason` a cmd-result can carry.
    pub const CODES: [&'static str; 8] = [
        "malformed",
        "unsigned",
        "unsupported_alg",
        "bad_signature",
        "expired",
        "replayed",
        "unknown_command",
        "failed",
    ];

    pub fn code(&self) -> &'static str {
        match self {
            Reject::Malformed(_) => "malformed",
            Reject::Unsigned => "unsigned",
            Reject::UnsupportedAlg(_) => "unsupported_alg",
            Reject::BadSignature => "bad_signature",
            Reject::Expired => "expired",
            Reject::Replayed => "replayed",
            Reject::UnknownCommand(_) => "unknown_command",
            Reject::Failed(_) => "failed",
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Reject::Malformed(d) | Reject::Failed(d) => d.clone(),
            Reject::Unsigned => "no signature".into(),
            Reject::UnsupportedAlg(alg) => {
                format!("JWS alg {alg} is not accepted: commands must be signed with EdDSA (Ed25519)")
            }
            Reject::BadSignature => "signature does not verify with the platform key".into(),
            Reject::Expired => "issued_at is outside the accepted window".into(),
            Reject::Replayed => "nonce already used".into(),
            Reject::UnknownCommand(n) => format!("no command {n:?}"),
        }
    }
}

/// A verified command.
#[derive(Debug, Clone)]
pub struct Command {
    pub name: String,
    pub nonce: String,
    pub args: Value,
}

/// Arrays and objects nest at most this deep in a command, the command object itself counting as 1
/// (`{"args": {"inpatients": [{…}]}}` is 4 deep). Documented in docs/mqtt-api.md.
pub const MAX_NESTING: usize = 32;

/// Refuses, with the exact reason, what the JSON parser would misname: nesting deeper than
/// [`MAX_NESTING`] (its own limit is 128, reported as a "recursion limit"), and integer literals outside
/// -2^63..2^64-1 (read as floating-point numbers, then refused as such). A lexical scan: it does not
/// need valid JSON, and leaves every other error to the parser.
fn check_shape(payload: &[u8]) -> Result<(), String> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut i = 0;
    while i < payload.len() {
        let b = payload[i];
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(format!(
                        "nested more than {MAX_NESTING} levels deep (arrays and objects, at byte {i}); \
                         a command may nest at most {MAX_NESTING}"
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' => {
                let end = payload[i..]
                    .iter()
                    .position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .map_or(payload.len(), |n| i + n);
                let token = std::str::from_utf8(&payload[i..end]).unwrap_or("");
                let integer = !token.contains(['.', 'e', 'E']);
                let body = token.strip_prefix('-').unwrap_or(token);
                let well_formed = !body.is_empty() && body.bytes().all(|c| c.is_ascii_digit());
                if integer && well_formed && token.parse::<i64>().is_err() && token.parse::<u64>().is_err() {
                    let shown = if token.len() > 40 { format!("{}…", &token[..40]) } else { token.to_owned() };
                    return Err(format!(
                        "integer {shown} ({} digits) does not fit in 64 bits: integers in a command must be \
                         within -9223372036854775808..18446744073709551615",
                        body.len()
                    ));
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Whether a payload is a JWS compact serialization rather than a JSON object: three base64url
/// segments separated by dots (surrounding whitespace allowed).
fn is_jws(payload: &[u8]) -> bool {
    let text = payload.trim_ascii();
    !text.is_empty()
        && text.iter().filter(|&&b| b == b'.').count() == 2
        && text.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Canonical-JSON commands are deprecated: said once per process, at WARN.
static LEGACY_NOTICE: std::sync::Once = std::sync::Once::new();

type Refusal = (Option<String>, Reject);

/// Checks a command received on `…/cmd/<topic_name>`. `seen` records a nonce and says whether it is new.
pub fn verify(
    topic_name: &str,
    payload: &[u8],
    key: Option<&PublicKey>,
    window: Duration,
    now: SystemTime,
    seen: &mut dyn FnMut(&str, SystemTime) -> Result<bool, String>,
) -> Result<Command, Refusal> {
    let (name, nonce, issued_at, args) = if is_jws(payload) {
        verify_jws(topic_name, payload, key)?
    } else {
        verify_canonical(topic_name, payload, key)?
    };
    let skew =
        if issued_at > now { issued_at.duration_since(now) } else { now.duration_since(issued_at) }.unwrap_or_default();
    if skew > window {
        return Err((Some(nonce), Reject::Expired));
    }
    match seen(&nonce, issued_at + window) {
        Ok(true) => {}
        Ok(false) => return Err((Some(nonce), Reject::Replayed)),
        Err(e) => return Err((Some(nonce), Reject::Failed(format!("cannot record the nonce: {e}")))),
    }
    Ok(Command { name, nonce, args })
}

fn malformed(nonce: Option<String>, what: &str) -> Refusal {
    (nonce, Reject::Malformed(what.to_owned()))
}

/// The command's own members, the same in both forms: (name, nonce, issued_at).
fn claims(topic_name: &str, obj: &serde_json::Map<String, Value>) -> Result<(String, String, SystemTime), Refusal> {
    let nonce = obj.get("nonce").and_then(Value::as_str).map(str::to_owned);
    let name =
        obj.get("name").and_then(Value::as_str).ok_or_else(|| malformed(nonce.clone(), "missing name"))?.to_owned();
    if name != topic_name {
        return Err(malformed(nonce, &format!("name {name:?} does not match the topic's {topic_name:?}")));
    }
    let Some(nonce) = nonce.filter(|n| (8..=128).contains(&n.len())) else {
        return Err(malformed(None, "missing nonce (8..128 characters)"));
    };
    let issued_at = obj
        .get("issued_at")
        .and_then(Value::as_str)
        .and_then(|t| crate::times::parse(t, crate::times::Naive::Refuse).ok())
        .ok_or_else(|| malformed(Some(nonce.clone()), "missing or bad issued_at (RFC 3339 with an offset)"))?;
    Ok((name, nonce, issued_at))
}

fn platform_key<'k>(key: Option<&'k PublicKey>, nonce: &str) -> Result<&'k PublicKey, Refusal> {
    key.ok_or_else(|| {
        (Some(nonce.to_owned()), Reject::Failed("no platform key configured (mqtt.platform_public_key)".into()))
    })
}

/// The deprecated form: a JSON object whose `signature` covers the canonical JSON of the rest.
fn verify_canonical(
    topic_name: &str,
    payload: &[u8],
    key: Option<&PublicKey>,
) -> Result<(String, String, SystemTime, Value), Refusal> {
    check_shape(payload).map_err(|what| malformed(None, &what))?;
    let mut value: Value = serde_json::from_slice(payload).map_err(|e| malformed(None, &format!("not JSON: {e}")))?;
    let obj = value.as_object_mut().ok_or_else(|| malformed(None, "not a JSON object"))?;
    let signature = obj.remove("signature");
    let (name, nonce, issued_at) = claims(topic_name, obj)?;
    let signature = match signature {
        None | Some(Value::Null) => return Err((Some(nonce), Reject::Unsigned)),
        Some(Value::String(s)) => {
            B64.decode(s).map_err(|_| malformed(Some(nonce.clone()), "signature is not base64"))?
        }
        Some(_) => return Err(malformed(Some(nonce), "signature is not a string")),
    };
    let bytes = canonical::to_bytes(&value).map_err(|e| malformed(Some(nonce.clone()), &e.to_string()))?;
    if !platform_key(key, &nonce)?.verify(&bytes, &signature) {
        return Err((Some(nonce), Reject::BadSignature));
    }
    LEGACY_NOTICE.call_once(|| {
        tracing::warn!(
            command = %name,
            "a command signed over Vigil's canonical JSON was accepted; this form is deprecated: sign commands \
             as JWS (EdDSA), see docs/mqtt-api.md \"Signing a command\""
        )
    });
    let args = value.get("args").cloned().unwrap_or(Value::Object(Default::default()));
    Ok((name, nonce, issued_at, args))
}

/// The standard form: `BASE64URL(header) "." BASE64URL(command) "." BASE64URL(signature)`, unpadded,
/// with header `alg` = `EdDSA` (RFC 8037) and the Ed25519 signature over the first two segments.
fn verify_jws(
    topic_name: &str,
    payload: &[u8],
    key: Option<&PublicKey>,
) -> Result<(String, String, SystemTime, Value), Refusal> {
    let text = payload.trim_ascii();
    let mut parts = text.split(|&b| b == b'.');
    let (Some(header64), Some(claims64), Some(signature64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed(None, "a JWS has three dot-separated parts"));
    };
    let decode = |part: &[u8], what: &str| {
        B64URL.decode(part).map_err(|_| malformed(None, &format!("JWS {what} is not unpadded base64url")))
    };
    let header = decode(header64, "header")?;
    let header: Value =
        serde_json::from_slice(&header).map_err(|e| malformed(None, &format!("JWS header is not JSON: {e}")))?;
    let header = header.as_object().ok_or_else(|| malformed(None, "JWS header is not a JSON object"))?;
    match header.get("alg") {
        Some(Value::String(alg)) if alg == "EdDSA" => {}
        Some(alg) => return Err((None, Reject::UnsupportedAlg(alg.to_string()))),
        None => return Err(malformed(None, "JWS header has no alg (EdDSA expected)")),
    }
    if let Some(crit) = header.get("crit") {
        // RFC 7515 4.1.11: extensions a recipient does not understand make the JWS invalid.
        return Err(malformed(None, &format!("JWS header crit {crit} names extensions the box does not support")));
    }
    if header.get("b64") == Some(&Value::Bool(false)) {
        return Err(malformed(None, "JWS unencoded payload (b64: false) is not supported"));
    }
    let body = decode(claims64, "payload")?;
    check_shape(&body).map_err(|what| malformed(None, &what))?;
    let value: Value =
        serde_json::from_slice(&body).map_err(|e| malformed(None, &format!("JWS payload is not JSON: {e}")))?;
    let obj = value.as_object().ok_or_else(|| malformed(None, "JWS payload is not a JSON object"))?;
    let (name, nonce, issued_at) = claims(topic_name, obj)?;
    let signature = decode(signature64, "signature").map_err(|(_, r)| (Some(nonce.clone()), r))?;
    let signed = &text[..header64.len() + 1 + claims64.len()];
    if !platform_key(key, &nonce)?.verify(signed, &signature) {
        return Err((Some(nonce), Reject::BadSignature));
    }
    let args = obj.get("args").cloned().unwrap_or(Value::Object(Default::default()));
    Ok((name, nonce, issued_at, args))
}

/// Signs a command for the platform side (and tests): returns the JSON to publish.
pub fn sign(
    key: &ring::signature::Ed25519KeyPair,
    name: &str,
    args: Value,
    issued_at: SystemTime,
    nonce: &str,
) -> Value {
    let mut value = json!({
        "name": name,
        "issued_at": humantime::format_rfc3339_millis(issued_at).to_string(),
        "nonce": nonce,
        "args": args,
    });
    let bytes = canonical::to_bytes(&value).expect("commands carry no floats");
    value["signature"] = Value::String(B64.encode(key.sign(&bytes).as_ref()));
    value
}

/// Signs a command as a JWS compact serialization (EdDSA): the standard form, for the platform side
/// and tests. Returns the text to publish.
pub fn sign_jws(
    key: &ring::signature::Ed25519KeyPair,
    name: &str,
    args: Value,
    issued_at: SystemTime,
    nonce: &str,
) -> String {
    let claims = json!({
        "name": name,
        "issued_at": humantime::format_rfc3339_millis(issued_at).to_string(),
        "nonce": nonce,
        "args": args,
    });
    let header = B64URL.encode(br#"{"alg":"EdDSA","typ":"JWT"}"#);
    let body = B64URL.encode(serde_json::to_vec(&claims).unwrap_or_default());
    let input = format!("{header}.{body}");
    let signature = B64URL.encode(key.sign(input.as_bytes()).as_ref());
    format!("{input}.{signature}")
}

/// Every command the box answers: `…/cmd/{name}` and `…/cmd-result/{name}` (docs/mqtt-api.md,
/// docs/contract/asyncapi.json). [`Registry::register`] takes only these names.
pub const COMMANDS: [&str; 9] =
    ["ping", "settlement", "enroll", "unenroll", "roster", "rollcall", "phone_add", "phone_revoke", "config_apply"];

pub type Handler = Box<dyn Fn(&Command) -> Result<Value, String> + Send + Sync>;

/// Command handlers by name; later stages register `enroll`, `roster`, `settlement`.
pub struct Registry {
    handlers: HashMap<String, Handler>,
}

impl Default for Registry {
    fn default() -> Self {
        let mut registry = Registry { handlers: HashMap::new() };
        registry
            .register("ping", Box::new(|_| Ok(super::events::to_json(&super::results::Pong::at(SystemTime::now())))));
        registry
    }
}

impl Registry {
    /// Registers a command's handler. A name outside [`COMMANDS`] is a programming error: the wire
    /// contract (documentation, schemas, AsyncAPI) would not describe it.
    pub fn register(&mut self, name: &str, handler: Handler) {
        assert!(
            COMMANDS.contains(&name),
            "command {name:?} is not part of the wire contract: add it to publish::commands::COMMANDS, \
             docs/mqtt-api.md and docs/contract/"
        );
        self.handlers.insert(name.to_owned(), handler);
    }

    pub fn knows(&self, name: &str) -> bool {
        self.handlers.contains_key(name)
    }

    pub fn run(&self, command: &Command) -> Result<Value, Reject> {
        let handler = self.handlers.get(&command.name).ok_or_else(|| Reject::UnknownCommand(command.name.clone()))?;
        handler(command).map_err(Reject::Failed)
    }
}

pub const RESULT_SCHEMA: &str = "vigil.cmd-result.v1";

/// The cmd-result payload (docs/mqtt-api.md, "cmd-result"): `result` when `ok`, else `reason` and
/// `detail`.
#[derive(Debug, Clone, Serialize)]
pub struct CmdResult {
    pub schema: &'static str,
    pub name: String,
    pub nonce: Option<String>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub at: String,
}

impl CmdResult {
    pub fn new(name: &str, nonce: Option<&str>, outcome: Result<Value, Reject>, at: SystemTime) -> CmdResult {
        let (ok, result, reason, detail) = match outcome {
            Ok(value) => (true, Some(value), None, None),
            Err(r) => (false, None, Some(r.code()), Some(r.detail())),
        };
        CmdResult {
            schema: RESULT_SCHEMA,
            name: name.to_owned(),
            nonce: nonce.map(str::to_owned),
            ok,
            result,
            reason,
            detail,
            at: humantime::format_rfc3339_millis(at).to_string(),
        }
    }
}

/// The cmd-result payload, now, as JSON (keys in alphabetical order).
pub fn result(name: &str, nonce: Option<&str>, outcome: Result<Value, Reject>) -> Value {
    super::events::to_json(&CmdResult::new(name, nonce, outcome, SystemTime::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(payload: &str) -> (Option<String>, Reject) {
        let key = PublicKey::parse(&B64.encode([1u8; 32])).unwrap();
        let mut seen = |_: &str, _: SystemTime| Ok(true);
        verify("ping", payload.as_bytes(), Some(&key), Duration::from_secs(300), SystemTime::now(), &mut seen)
            .unwrap_err()
    }

    fn command_with_args(args: &str) -> String {
        format!(
            r#"{{"name":"ping","issued_at":"2026-11-28T10:00:00Z","nonce":"0123456789abcdef","args":{args},"signature":"AAAA"}}"#
        )
    }

    #[test]
    fn jws_round_trip_and_forms_told_apart() {
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        use ring::signature::KeyPair;
        let key = PublicKey(pair.public_key().as_ref().try_into().unwrap());
        let now = SystemTime::now();
        let jws = sign_jws(&pair, "ping", json!({"a": 1}), now, "0123456789abcdef");
        assert!(is_jws(jws.as_bytes()) && is_jws(format!(" {jws}\n").as_bytes()));
        assert!(!is_jws(b"{\"name\":\"ping\"}") && !is_jws(b"a.b") && !is_jws(b""));
        let mut fresh = |_: &str, _: SystemTime| Ok(true);
        let command = verify("ping", jws.as_bytes(), Some(&key), Duration::from_secs(300), now, &mut fresh).unwrap();
        assert_eq!(
            (command.name.as_str(), command.nonce.as_str(), &command.args),
            ("ping", "0123456789abcdef", &json!({"a": 1}))
        );
        // Verified over the bytes as sent: the same header encoded with other whitespace is another
        // signing input.
        let (_, rest) = jws.split_once('.').unwrap();
        let respaced = format!("{}.{rest}", B64URL.encode(r#"{"alg": "EdDSA", "typ": "JWT"}"#));
        let (nonce, reject) =
            verify("ping", respaced.as_bytes(), Some(&key), Duration::from_secs(300), now, &mut fresh).unwrap_err();
        assert_eq!((nonce.as_deref(), reject), (Some("0123456789abcdef"), Reject::BadSignature));
    }

    #[test]
    fn huge_integer_is_named_as_such() {
        // 2^70: JSON parsers read it as a float; it used to be refused as "floating-point number 1.18e21".
        let (nonce, reject) = refusal(&command_with_args(r#"{"watch_secs": 1180591620717411303424}"#));
        assert_eq!(nonce, None);
        assert_eq!(
            reject,
            Reject::Malformed(
                "integer 1180591620717411303424 (22 digits) does not fit in 64 bits: integers in a command must be \
                 within -9223372036854775808..18446744073709551615"
                    .into()
            )
        );
        let (_, reject) = refusal(&command_with_args(r#"{"n": -9223372036854775809}"#));
        assert!(reject.detail().starts_with("integer -9223372036854775809 (19 digits) does not fit"), "{reject:?}");
        // The limits themselves, numbers inside strings and real floats are not this error.
        for args in [r#"{"n": 18446744073709551615, "m": -9223372036854775808}"#, r#"{"s": "1180591620717411303424"}"#]
        {
            let (_, reject) = refusal(&command_with_args(args));
            assert_eq!(reject, Reject::BadSignature, "{args}");
        }
        let (_, reject) = refusal(&command_with_args(r#"{"f": 0.5}"#));
        assert_eq!(reject.detail(), "not canonical JSON: floating-point number 0.5");
    }

    #[test]
    fn nesting_limit_is_exact_and_named() {
        // The command object is level 1, args level 2: MAX_NESTING - 2 more levels inside args are fine.
        let nest = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        let (_, reject) = refusal(&command_with_args(&format!("{{\"a\": {}}}", nest(MAX_NESTING - 2))));
        assert_eq!(reject, Reject::BadSignature);
        for levels in [MAX_NESTING - 1, 500] {
            let (_, reject) = refusal(&command_with_args(&format!("{{\"a\": {}}}", nest(levels))));
            assert!(
                reject.detail().starts_with("nested more than 32 levels deep (arrays and objects, at byte"),
                "{levels}: {reject:?}"
            );
        }
        // Brackets inside strings do not count.
        let (_, reject) = refusal(&command_with_args(&format!("{{\"a\": \"{}\\\"\"}}", "[".repeat(100))));
        assert_eq!(reject, Reject::BadSignature);
    }
}
