//! Signed commands from the platform (docs/mqtt-api.md): verified before anything acts on them.
//!
//! A command is a JSON object `{name, issued_at, nonce, args, signature}`; `signature` is the base64
//! Ed25519 signature, by the platform key from the config, of the canonical JSON of the object without
//! `signature`. Rejected, with the reason in the `cmd-result`: malformed, unsigned, bad_signature,
//! expired (issued_at further than the window from now), replayed (nonce already seen), unknown_command.
//! Before parsing, the payload's shape is checked: arrays and objects nest at most [`MAX_NESTING`] deep,
//! and integers fit in 64 bits (JSON parsers read larger ones as floats, which would be misreported).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::evidence::canonical;
use crate::evidence::keys::PublicKey;

/// Why a command was refused (the `reason` of its cmd-result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    Malformed(String),
    Unsigned,
    BadSignature,
    Expired,
    Replayed,
    UnknownCommand(String),
    Failed(String),
}

impl Reject {
    pub fn code(&self) -> &'static str {
        match self {
            Reject::Malformed(_) => "malformed",
            Reject::Unsigned => "unsigned",
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

/// Checks a command received on `…/cmd/<topic_name>`. `seen` records a nonce and says whether it is new.
pub fn verify(
    topic_name: &str,
    payload: &[u8],
    key: Option<&PublicKey>,
    window: Duration,
    now: SystemTime,
    seen: &mut dyn FnMut(&str, SystemTime) -> Result<bool, String>,
) -> Result<Command, (Option<String>, Reject)> {
    let malformed = |nonce: Option<String>, what: &str| (nonce, Reject::Malformed(what.to_owned()));
    check_shape(payload).map_err(|what| malformed(None, &what))?;
    let mut value: Value = serde_json::from_slice(payload).map_err(|e| malformed(None, &format!("not JSON: {e}")))?;
    let obj = value.as_object_mut().ok_or_else(|| malformed(None, "not a JSON object"))?;
    let nonce = obj.get("nonce").and_then(Value::as_str).map(str::to_owned);
    let signature = obj.remove("signature");
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
    let signature = match signature {
        None | Some(Value::Null) => return Err((Some(nonce), Reject::Unsigned)),
        Some(Value::String(s)) => {
            B64.decode(s).map_err(|_| malformed(Some(nonce.clone()), "signature is not base64"))?
        }
        Some(_) => return Err(malformed(Some(nonce), "signature is not a string")),
    };
    let bytes = canonical::to_bytes(&value).map_err(|e| malformed(Some(nonce.clone()), &e.to_string()))?;
    let key = key.ok_or_else(|| {
        (Some(nonce.clone()), Reject::Failed("no platform key configured (mqtt.platform_public_key)".into()))
    })?;
    if !key.verify(&bytes, &signature) {
        return Err((Some(nonce), Reject::BadSignature));
    }
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
    let args = value.get("args").cloned().unwrap_or(Value::Object(Default::default()));
    Ok(Command { name, nonce, args })
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

pub type Handler = Box<dyn Fn(&Command) -> Result<Value, String> + Send + Sync>;

/// Command handlers by name; later stages register `enroll`, `roster`, `settlement`.
pub struct Registry {
    handlers: HashMap<String, Handler>,
}

impl Default for Registry {
    fn default() -> Self {
        let mut registry = Registry { handlers: HashMap::new() };
        registry.register(
            "ping",
            Box::new(|_| Ok(json!({"pong": humantime::format_rfc3339_millis(SystemTime::now()).to_string()}))),
        );
        registry
    }
}

impl Registry {
    pub fn register(&mut self, name: &str, handler: Handler) {
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

/// The cmd-result payload.
pub fn result(name: &str, nonce: Option<&str>, outcome: Result<Value, Reject>) -> Value {
    let at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    match outcome {
        Ok(value) => {
            json!({"schema": "vigil.cmd-result.v1", "name": name, "nonce": nonce, "ok": true, "result": value, "at": at})
        }
        Err(r) => {
            json!({"schema": "vigil.cmd-result.v1", "name": name, "nonce": nonce, "ok": false, "reason": r.code(), "detail": r.detail(), "at": at})
        }
    }
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
