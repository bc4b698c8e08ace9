//! The phones' API (docs/ward-phones.md, "Protocol"): enrolment with a one-time token, the signed GET
//! of the ward's view, and signed uploads. Who sent a request is settled here (registry, signature,
//! the photo's hash); what the upload shows is the runtime's [`Checkins`], on a blocking thread.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::limits::PhoneId;
use super::listener::ClientAddr;
use crate::phones::protocol::{HEADER_META, HEADER_PHONE, HEADER_SIGNATURE, HEADER_TIME, get_message, upload_message};
use crate::phones::registry::{EnrolError, Registry};
use crate::phones::service::{Checkins, SignedUpload, SubmitError};
use crate::phones::signature::{self, decode_b64url};
use crate::phones::{Phone, UploadMeta};

/// What the phone routes share.
#[derive(Clone)]
pub struct PhoneApi {
    pub registry: Arc<Registry>,
    pub checkins: Arc<dyn Checkins>,
    /// `[phones] skew_secs`: how far a signed GET's time may be from the box's clock.
    pub skew: Duration,
    /// `[http] max_body_bytes`.
    pub max_body_bytes: u64,
}

/// Runs a registry call (SQLite, which may wait for the CLI's transaction) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::Internal(format!("a worker failed: {e}")))
}

fn registry_failed(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "the phone registry cannot be read");
    ApiError::Internal("the phone registry cannot be read".into())
}

/// An enrolment is a token and a 91-byte key: far below this.
const MAX_ENROL_BYTES: u64 = 16 << 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrolRequest {
    token: String,
    public_key: String,
}

/// `POST /api/phones/enrol {"token", "public_key"}` → `{"phone": {...}}`.
pub async fn enrol(State(api): State<PhoneApi>, request: Request) -> Result<Response, ApiError> {
    let body = read_body(request.into_body(), MAX_ENROL_BYTES).await?;
    let request: EnrolRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!("the body must be JSON {{\"token\": ..., \"public_key\": ...}}: {e}"))
    })?;
    let key = STANDARD
        .decode(request.public_key.trim())
        .or_else(|_| URL_SAFE_NO_PAD.decode(request.public_key.trim()))
        .map_err(|_| ApiError::BadRequest("public_key is not base64 (the SPKI DER of the key)".into()))?;
    let registry = api.registry.clone();
    let token = request.token;
    let result = blocking(move || registry.enrol(&token, &key, SystemTime::now())).await?;
    let phone = result.map_err(|e| match e {
        EnrolError::UnknownToken => ApiError::UnknownToken(e.to_string()),
        EnrolError::TokenUsed => ApiError::TokenUsed(e.to_string()),
        EnrolError::TokenExpired(_) => ApiError::TokenExpired(e.to_string()),
        EnrolError::BadKey(_) => ApiError::BadRequest(e.to_string()),
        EnrolError::Registry(e) => registry_failed(e),
    })?;
    let key_sha256 = phone.public_key.as_deref().map(crate::hashing::sha256_hex).unwrap_or_default();
    tracing::info!(phone = %phone.id, ward = %phone.ward, name = %phone.name, key_sha256 = %key_sha256,
        "phone enrolled");
    let mut body = json!({"id": phone.id, "ward": phone.ward, "name": phone.name, "mode": phone.mode});
    if let Some(physician) = &phone.physician {
        body["physician"] = json!(physician);
    }
    Ok(with_phone(&phone.id, Json(json!({ "phone": body })).into_response()))
}

fn with_phone(id: &str, mut response: Response) -> Response {
    response.extensions_mut().insert(PhoneId(id.to_owned()));
    response
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ApiError> {
    headers
        .get(name)
        .ok_or_else(|| ApiError::BadRequest(format!("the {name} header is missing")))?
        .to_str()
        .map_err(|_| ApiError::BadRequest(format!("the {name} header is not text")))
}

/// The registered phone whose key verifies `signature` over `message`; refused as unknown, not
/// enrolled or bad signature (logged at WARN with the client's address: someone is knocking).
async fn authenticate(
    api: &PhoneApi,
    client: Option<ClientAddr>,
    phone_id: &str,
    message: Vec<u8>,
    signature: &str,
) -> Result<Phone, ApiError> {
    let client = client.map_or_else(|| "-".to_owned(), |c| c.0.ip().to_string());
    let registry = api.registry.clone();
    let id = phone_id.to_owned();
    let phone = blocking(move || registry.get(&id)).await?.map_err(registry_failed)?;
    let Some(phone) = phone else {
        tracing::warn!(client = %client, phone = %phone_id.chars().take(32).collect::<String>(),
            "request refused: unknown phone");
        return Err(ApiError::UnknownPhone(phone_id.chars().take(32).collect()));
    };
    let Some(key) = &phone.public_key else {
        tracing::warn!(client = %client, phone = %phone.id, "request refused: the phone has not enrolled");
        return Err(ApiError::NotEnrolled(phone.id));
    };
    if let Err(e) = signature::verify(key, &message, signature) {
        tracing::warn!(client = %client, phone = %phone.id, error = %e, "request refused: bad signature");
        return Err(ApiError::BadSignature(e.to_string()));
    }
    Ok(phone)
}

fn client_of(request: &Request) -> Option<ClientAddr> {
    request.extensions().get::<ConnectInfo<ClientAddr>>().map(|c| c.0)
}

/// `GET /api/phones/ward`, signed: who the phone is and its ward's inpatients.
pub async fn ward(State(api): State<PhoneApi>, request: Request) -> Result<Response, ApiError> {
    let client = client_of(&request);
    let headers = request.headers();
    let phone_id = header_text(headers, HEADER_PHONE)?;
    let time = header_text(headers, HEADER_TIME)?;
    let signature = header_text(headers, HEADER_SIGNATURE)?;
    let message = get_message(request.uri().path(), time);
    let phone = authenticate(&api, client, phone_id, message, signature).await?;
    // Checked after the signature: the time is what was signed.
    signature::check_time(time, SystemTime::now(), api.skew).map_err(|e| ApiError::ClockSkew(e.to_string()))?;
    if phone.revoked_at.is_some() {
        let id = phone.id.clone();
        return Ok(with_phone(&id, ApiError::PhoneRevoked { phone: id.clone(), details: None }.into_response()));
    }
    let checkins = api.checkins.clone();
    let id = phone.id.clone();
    let view = blocking(move || checkins.ward_view(&phone)).await?;
    Ok(with_phone(&id, Json(view).into_response()))
}

/// `POST /api/phones/checkins`, signed: the photo and its metadata, judged by the runtime's checks.
pub async fn checkin(State(api): State<PhoneApi>, request: Request) -> Response {
    let phone = request.headers().get(HEADER_PHONE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    match upload(api, request).await {
        Ok(response) => response,
        Err(e) => with_phone(&phone, e.into_response()),
    }
}

async fn upload(api: PhoneApi, request: Request) -> Result<Response, ApiError> {
    let received_at = SystemTime::now();
    let client = client_of(&request);
    let (parts, body) = request.into_parts();
    let phone_id = header_text(&parts.headers, HEADER_PHONE)?;
    let meta_header = header_text(&parts.headers, HEADER_META)?;
    let signature = header_text(&parts.headers, HEADER_SIGNATURE)?;
    // Who sent it, before a byte of the body is read.
    let phone = authenticate(&api, client, phone_id, upload_message(meta_header), signature).await?;
    let meta: UploadMeta = decode_b64url(meta_header)
        .ok_or_else(|| ApiError::BadRequest(format!("{HEADER_META} is not base64url")))
        .and_then(|json| {
            serde_json::from_slice(&json).map_err(|e| ApiError::BadRequest(format!("{HEADER_META}: {e}")))
        })?;
    if meta.mode != phone.mode {
        return Err(ApiError::BadRequest(format!(
            "meta.mode is {:?} but phone {} is a {:?} phone",
            meta.mode, phone.id, phone.mode
        )));
    }
    let photo = read_body(body, api.max_body_bytes).await?;
    if !crate::hashing::sha256_hex(&photo).eq_ignore_ascii_case(meta.photo_sha256.trim()) {
        tracing::warn!(phone = %phone.id, capture_id = %meta.capture_id, bytes = photo.len(),
            "upload refused: the photo is not the one that was signed");
        return Err(ApiError::PhotoHashMismatch);
    }
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let revoked = phone.revoked_at.is_some();
    let id = phone.id.clone();
    let upload = SignedUpload { phone, revoked, meta, photo, content_type, received_at };
    let checkins = api.checkins.clone();
    let answer = blocking(move || checkins.submit(upload)).await?.map_err(|e| match e {
        SubmitError::Unavailable(m) => ApiError::Unavailable(format!("the box cannot take check-ins now: {m}")),
        SubmitError::Storage(m) => {
            tracing::error!(phone = %id, error = %m, "a check-in could not be recorded");
            ApiError::Storage(format!("the box could not record the check-in: {m}"))
        }
        SubmitError::BadRequest(m) => ApiError::BadRequest(m),
    })?;
    if revoked {
        let details = serde_json::to_value(&answer).ok();
        return Ok(with_phone(&id, ApiError::PhoneRevoked { phone: id.clone(), details }.into_response()));
    }
    Ok(with_phone(&id, Json(answer).into_response()))
}

/// The body, refused with 413 as soon as it passes `limit` (no more is read).
async fn read_body(mut body: Body, limit: u64) -> Result<Vec<u8>, ApiError> {
    let hint = body.size_hint().lower().min(limit) as usize;
    let mut data = Vec::with_capacity(hint);
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| ApiError::BadRequest(format!("the upload was cut off: {e}")))?;
        if let Ok(chunk) = frame.into_data() {
            if (data.len() + chunk.len()) as u64 > limit {
                return Err(ApiError::TooLarge { limit });
            }
            data.extend_from_slice(&chunk);
        }
    }
    Ok(data)
}
