//! Every error the server answers, as one enum: a status, a stable snake_case code the page and the
//! platform can rely on, and one English sentence. The body is always
//! `{"error": {"code": "...", "message": "...", "details"?: ...}}`.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    UnknownToken(String),
    #[error("{0}")]
    TokenUsed(String),
    #[error("{0}")]
    TokenExpired(String),
    #[error("no phone {0:?} is registered on this box")]
    UnknownPhone(String),
    #[error("phone {0:?} has not enrolled its key yet: open its enrolment link on the phone")]
    NotEnrolled(String),
    #[error("{0}")]
    BadSignature(String),
    /// The request's clock is too far from the box's (signed GET).
    #[error("{0}")]
    ClockSkew(String),
    /// A revoked phone; an upload's details carry the answer it was judged with.
    #[error("phone {phone:?} was revoked: it can no longer send check-ins")]
    PhoneRevoked { phone: String, details: Option<Value> },
    #[error("the photo is not the one that was signed (its SHA-256 differs from the signed photo_sha256)")]
    PhotoHashMismatch,
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("too many requests from this address: try again in {} s", retry_after.as_secs())]
    RateLimited { retry_after: Duration },
    #[error("the box is busy with other uploads: try again in {} s", retry_after.as_secs())]
    Busy { retry_after: Duration },
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Storage(String),
    #[error("the request took longer than {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("nothing here: {0}")]
    NotFound(String),
    #[error("{0} is not allowed here")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Internal(String),
    /// The console: no session, or an ended one.
    #[error("{0}")]
    Unauthorized(String),
    /// The console: the session's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The console: a state-changing request without its session's CSRF token, or from another origin.
    #[error("refused as a possible cross-site request: {0}")]
    Csrf(String),
    /// The console's sign-in: never says which of the two is wrong.
    #[error("{}", crate::console::LoginError::BadCredentials)]
    BadCredentials,
    #[error("{}", crate::console::LoginError::Locked { retry_after: *retry_after })]
    Locked { retry_after: Duration },
    /// The console: signed in with a one-time password; only choosing one's own is allowed.
    #[error("choose your own password first (POST /console/api/password): this sign-in used a one-time password")]
    PasswordChangeRequired,
    /// The console's password change: the current password given is wrong.
    #[error("{}", crate::console::ChangeError::WrongCurrent)]
    WrongPassword,
    /// The console's enrolment: one uploaded photo over the per-photo limit.
    #[error("photo {photo} is larger than {limit} bytes (each photo may have at most {limit} bytes)")]
    PhotoTooLarge { photo: String, limit: u64 },
    /// The console's enrolment: every photo was rejected; the details carry each photo's verdict.
    #[error("{message}")]
    NoPhotoAccepted { message: String, details: Value },
}

/// Seconds a phone waits before re-sending when the box cannot take an upload now.
const RETRY_LATER: Duration = Duration::from_secs(30);

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::PhotoHashMismatch => StatusCode::BAD_REQUEST,
            ApiError::UnknownToken(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TokenUsed(_) | ApiError::TokenExpired(_) => StatusCode::GONE,
            ApiError::UnknownPhone(_)
            | ApiError::NotEnrolled(_)
            | ApiError::BadSignature(_)
            | ApiError::ClockSkew(_) => StatusCode::UNAUTHORIZED,
            ApiError::PhoneRevoked { .. } => StatusCode::FORBIDDEN,
            ApiError::TooLarge { .. } | ApiError::PhotoTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Busy { .. } | ApiError::Unavailable(_) | ApiError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unauthorized(_) | ApiError::BadCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::Csrf(_) | ApiError::PasswordChangeRequired | ApiError::WrongPassword => {
                StatusCode::FORBIDDEN
            }
            ApiError::Locked { .. } => StatusCode::LOCKED,
            ApiError::NoPhotoAccepted { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    /// The stable code (docs/ward-phones.md, "Protocol").
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::UnknownToken(_) => "unknown_token",
            ApiError::TokenUsed(_) => "token_used",
            ApiError::TokenExpired(_) => "token_expired",
            ApiError::UnknownPhone(_) => "unknown_phone",
            ApiError::NotEnrolled(_) => "not_enrolled",
            ApiError::BadSignature(_) => "bad_signature",
            ApiError::ClockSkew(_) => "clock_skew",
            ApiError::PhoneRevoked { .. } => "phone_revoked",
            ApiError::PhotoHashMismatch => "photo_hash_mismatch",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Busy { .. } => "busy",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Storage(_) => "storage",
            ApiError::Timeout(_) => "timeout",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Internal(_) => "internal",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Csrf(_) => "csrf",
            ApiError::BadCredentials => "bad_credentials",
            ApiError::Locked { .. } => "locked",
            ApiError::PasswordChangeRequired => "password_change_required",
            ApiError::WrongPassword => "wrong_password",
            ApiError::PhotoTooLarge { .. } => "too_large",
            ApiError::NoPhotoAccepted { .. } => "no_photo_accepted",
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after }
            | ApiError::Busy { retry_after }
            | ApiError::Locked { retry_after } => Some(*retry_after),
            ApiError::Unavailable(_) | ApiError::Storage(_) => Some(RETRY_LATER),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code(), "message": self.to_string()});
        if let ApiError::PhoneRevoked { details: Some(details), .. } | ApiError::NoPhotoAccepted { details, .. } = &self
        {
            error["details"] = details.clone();
        }
        let mut response = (self.status(), Json(json!({ "error": error }))).into_response();
        if let Some(after) = self.retry_after() {
            let secs = after.as_secs().max(1).to_string();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_str(&secs).expect("digits"));
        }
        // The access log names the code; the client sees it in the body.
        response.extensions_mut().insert(ErrorCode(self.code()));
        response
    }
}

/// The code of an error response, for the access log.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_names_the_code_and_retry_after_is_set() {
        let response = ApiError::Busy { retry_after: Duration::from_secs(7) }.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        let response = ApiError::Storage("disk full".into()).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "30");
        assert!(ApiError::PhotoHashMismatch.into_response().headers().get(header::RETRY_AFTER).is_none());
    }
}
