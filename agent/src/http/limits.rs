//! The limits every request passes, as middleware layers set once in [`super::server::router`]:
//! the access log (outermost, so it sees every refusal), a per-client rate limit, a request timeout, a
//! declared-size check; and, on the upload route only, a bounded line for the check workers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::HttpBody;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::{ApiError, ErrorCode};
use super::listener::ClientAddr;
use crate::phones::protocol::HEADER_PHONE;

/// The phone a response concerns, once the server knows it (set by the handlers for the access log).
#[derive(Debug, Clone)]
pub struct PhoneId(pub String);

fn client(request: &Request) -> Option<IpAddr> {
    request.extensions().get::<ConnectInfo<ClientAddr>>().map(|c| c.0.0.ip())
}

/// One line per request: method, path (never the query or fragment: an enrolment token travels in a
/// fragment, and nothing secret is logged), status, sizes, duration, client address and phone. Errors
/// and the API at INFO (a phone's request is rare and worth seeing), server failures at WARN, the
/// page's files at DEBUG.
pub async fn access_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().chars().take(200).collect::<String>();
    let client = client(&request).map_or_else(|| "-".to_owned(), |ip| ip.to_string());
    let claimed = request.headers().get(HEADER_PHONE).and_then(|v| v.to_str().ok()).map(sanitize);
    let request_bytes: Option<u64> =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let phone = response.extensions().get::<PhoneId>().map(|p| p.0.clone()).or(claimed).unwrap_or_default();
    let code = response.extensions().get::<ErrorCode>().map_or("", |c| c.0);
    let bytes = response.body().size_hint().exact();
    let ms = started.elapsed().as_millis() as u64;
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(target: "vigil::http::access", %method, path = %path, status, code = %code, bytes,
                request_bytes, ms, client = %client, phone = %phone, "http request")
        };
    }
    if status >= 500 {
        line!(warn);
    } else if status >= 400 || path.starts_with("/api/") || path.starts_with("/console/api/") {
        line!(info);
    } else {
        line!(debug);
    }
    response
}

/// A claimed phone id as it may appear in a log line: short, printable.
fn sanitize(text: &str) -> String {
    text.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').take(32).collect()
}

/// Requests per minute per client address: a token bucket of a minute's allowance, refilled
/// continuously. Memory is bounded: at most [`MAX_CLIENTS`] addresses are tracked; when that many are,
/// the ones whose bucket is full again are forgotten, and if none is, newcomers share one bucket (a
/// flood from many addresses slows everyone rather than growing the table).
pub struct RateLimiter {
    per_minute: f64,
    buckets: Mutex<HashMap<Option<IpAddr>, Bucket>>,
}

const MAX_CLIENTS: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter { per_minute: f64::from(per_minute.max(1)), buckets: Mutex::default() }
    }

    /// Takes one request's token for `ip`, or says how long until there is one.
    pub fn take(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let per_sec = self.per_minute / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = Some(ip);
        if !buckets.contains_key(&key) && buckets.len() >= MAX_CLIENTS {
            let full = self.per_minute;
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec < full);
            if buckets.len() >= MAX_CLIENTS {
                key = None;
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: self.per_minute, at: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * per_sec).min(self.per_minute);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_sec).max(Duration::from_secs(1)))
        }
    }
}

pub async fn rate_limit(State(limiter): State<Arc<RateLimiter>>, request: Request, next: Next) -> Response {
    if let Some(ip) = client(&request)
        && let Err(wait) = limiter.take(ip, Instant::now())
    {
        let retry_after = Duration::from_secs(wait.as_secs_f64().ceil() as u64);
        return ApiError::RateLimited { retry_after }.into_response();
    }
    next.run(request).await
}

/// 408 when a request (its upload included) takes longer than `[http] request_timeout_secs`. An upload
/// already handed to the checks finishes anyway; the phone re-sends and gets the stored answer.
pub async fn timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(limit).into_response(),
    }
}

/// 413 at once for a body declared larger than `[http] max_body_bytes`, before any of it is read (a
/// body without a declared length is cut off at the limit while it is read).
pub async fn declared_size(State(limit): State<u64>, request: Request, next: Next) -> Response {
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return ApiError::TooLarge { limit }.into_response();
    }
    next.run(request).await
}

/// The line for the check workers: `max_concurrent_uploads` uploads are read and checked at once;
/// up to `max_waiting` more wait (holding only their headers); beyond that, `503 busy` with a
/// Retry-After, and the phone keeps the capture and re-sends it.
pub struct UploadGate {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
}

impl UploadGate {
    pub fn new(concurrent: usize, max_waiting: usize) -> UploadGate {
        UploadGate { slots: Arc::new(Semaphore::new(concurrent.max(1))), waiting: AtomicUsize::new(0), max_waiting }
    }

    pub async fn enter(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::Busy { retry_after: Duration::from_secs(10) });
        }
        // Counted out again however the wait ends (a timeout drops this future).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _waiting = Waiting(&self.waiting);
        self.slots.clone().acquire_owned().await.map_err(|_| ApiError::Unavailable("the box is stopping".into()))
    }
}

pub async fn upload_gate(State(gate): State<Arc<UploadGate>>, request: Request, next: Next) -> Response {
    match gate.enter().await {
        Ok(_slot) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_a_minutes_allowance_then_waits() {
        let limiter = RateLimiter::new(60);
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..60 {
            limiter.take(a, t0).unwrap();
        }
        let wait = limiter.take(a, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        limiter.take(b, t0).unwrap();
        limiter.take(a, t0 + Duration::from_millis(1500)).unwrap();
    }

    #[test]
    fn the_table_is_bounded() {
        let limiter = RateLimiter::new(10);
        let t0 = Instant::now();
        for i in 0..(MAX_CLIENTS as u32 + 100) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = limiter.take(ip, t0);
        }
        assert!(limiter.buckets.lock().unwrap().len() <= MAX_CLIENTS + 1);
    }

    #[tokio::test]
    async fn the_line_is_bounded() {
        let gate = Arc::new(UploadGate::new(1, 1));
        let first = gate.enter().await.unwrap();
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.enter().await.map(|_| ()) }
        });
        while gate.waiting.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(gate.enter().await, Err(ApiError::Busy { .. })));
        drop(first);
        waiter.await.unwrap().unwrap();
        assert_eq!(gate.waiting.load(Ordering::SeqCst), 0);
    }
}
