//! Signed commands from the platform (docs/mqtt-api.md): verified before anything acts on them.
//!
//! A command is a JSON object `{name, issued_at, nonce, args, signature}`; `signature` is the base64
//! Ed25519 signature, by the platform key from the config, of the canonical JSON of the object without
//! `signature`. Rejected, with the reason in the `cmd-result`: malformed, unsigned, bad_signature,
//! expired (issued_at further than the window from now), replayed (nonce already seen), unknown_command.

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
