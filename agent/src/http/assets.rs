//! The ward phones' page (agent/assets/ward/), compiled into the binary: no CDN, no file on disk that
//! a package upgrade could leave half-replaced, the page a phone gets is the one this box was built with.
//!
//! Every answer carries the same strict headers: a Content-Security-Policy that allows only this origin
//! (no inline script, no `eval`, no frames), `nosniff`, no Referer (the enrolment token lives in the
//! fragment and must never leak), and `no-cache` with an ETag: the file names carry no version, so a
//! phone revalidates every asset (a 304, a few bytes) and never mixes an old script with a new page
//! after the box is upgraded. The service worker (sw.js) keeps the shell for opening without network.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// Where the page lives; the service worker's scope.
pub const PREFIX: &str = "/ward/";

/// Only this origin; `blob:` for the photo just taken, `mediastream:` for the camera preview.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
                   media-src 'self' blob: mediastream:; connect-src 'self'; worker-src 'self'; \
                   manifest-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

/// The page may use the camera and the position, nothing else, and nothing in a frame.
const PERMISSIONS: &str = "camera=(self), geolocation=(self), microphone=(), payment=(), usb=()";

/// One file of a page compiled into the binary.
pub(super) struct Asset {
    pub name: &'static str,
    pub bytes: &'static [u8],
    pub content_type: &'static str,
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset { name: $name, bytes: include_bytes!(concat!("../../assets/ward/", $name)), content_type: $type }
    };
}

/// Every file of the page. sw.js lists the same names (its shell cache); a unit test keeps them equal.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("i18n.js", "text/javascript; charset=utf-8"),
    asset!("store.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("queue.js", "text/javascript; charset=utf-8"),
    asset!("camera.js", "text/javascript; charset=utf-8"),
    asset!("sw.js", "text/javascript; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("manifest.webmanifest", "application/manifest+json"),
];

/// The page's routes: `/ward` (redirect), `/ward/` (index.html) and `/ward/<file>`; anything else
/// under `/ward/` is a 404. The HTTP server merges this into its router.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    PAGE.router("/ward")
}

static PAGE: Page = Page::new(ASSETS, CSP, PERMISSIONS);

/// A page's files with its headers: what the ward phones' page and the console's page
/// (`super::console_page`) both serve the same way.
pub(super) struct Page {
    assets: &'static [Asset],
    csp: &'static str,
    permissions: &'static str,
    /// A strong ETag per asset (its SHA-256, shortened), in `assets` order; computed once.
    etags: OnceLock<Vec<String>>,
}

impl Page {
    pub const fn new(assets: &'static [Asset], csp: &'static str, permissions: &'static str) -> Page {
        Page { assets, csp, permissions, etags: OnceLock::new() }
    }

    /// `<at>` (a redirect to `<at>/`), `<at>/` (index.html) and `<at>/<file>`; any other file of one
    /// segment is a 404.
    pub fn router<S: Clone + Send + Sync + 'static>(&'static self, at: &str) -> Router<S> {
        let prefix = format!("{at}/");
        Router::new()
            .route(at, get(move || std::future::ready(Redirect::permanent(&prefix))))
            .route(&format!("{at}/"), get(move |headers: HeaderMap| async move { self.serve("index.html", &headers) }))
            .route(
                &format!("{at}/{{file}}"),
                get(move |Path(file): Path<String>, headers: HeaderMap| async move { self.serve(&file, &headers) }),
            )
    }

    fn serve(&self, name: &str, request: &HeaderMap) -> Response {
        let Some((index, asset)) = self.assets.iter().enumerate().find(|(_, a)| a.name == name) else {
            let mut response = (StatusCode::NOT_FOUND, "no such file on this page\n").into_response();
            self.security_headers(response.headers_mut());
            return response;
        };
        let etags = self.etags.get_or_init(|| {
            self.assets.iter().map(|a| format!("\"{}\"", &crate::hashing::sha256_hex(a.bytes)[..32])).collect()
        });
        let etag = &etags[index];
        let fresh = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
        let mut response = if fresh {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let mut response = asset.bytes.into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
            response
        };
        let headers = response.headers_mut();
        headers.insert(header::ETAG, HeaderValue::from_str(etag).expect("hex is a valid header value"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        self.security_headers(headers);
        response
    }

    fn security_headers(&self, headers: &mut HeaderMap) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(self.csp));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        headers.insert(HeaderName::from_static("permissions-policy"), HeaderValue::from_static(self.permissions));
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get(uri: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::get(uri);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        router::<()>().oneshot(request.body(Body::empty()).unwrap()).await.unwrap()
    }

    async fn body(response: Response) -> Vec<u8> {
        axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap().to_vec()
    }

    fn header<'a>(response: &'a Response, name: &str) -> &'a str {
        response.headers().get(name).unwrap_or_else(|| panic!("no {name}")).to_str().unwrap()
    }

    #[tokio::test]
    async fn the_page_is_served_with_strict_headers() {
        let response = get("/ward/", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&response, "cache-control"), "no-cache");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert_eq!(header(&response, "referrer-policy"), "no-referrer");
        let csp = header(&response, "content-security-policy");
        assert!(csp.starts_with("default-src 'self';"), "{csp}");
        assert!(csp.contains("script-src 'self';") && !csp.contains("unsafe"), "{csp}");
        let html = String::from_utf8(body(response).await).unwrap();
        assert!(html.contains("<script type=\"module\" src=\"app.js\"></script>"), "{html}");
    }

    #[tokio::test]
    async fn each_file_has_its_content_type() {
        for (uri, content_type) in [
            ("/ward/index.html", "text/html; charset=utf-8"),
            ("/ward/app.js", "text/javascript; charset=utf-8"),
            ("/ward/sw.js", "text/javascript; charset=utf-8"),
            ("/ward/style.css", "text/css; charset=utf-8"),
            ("/ward/icon.svg", "image/svg+xml"),
            ("/ward/manifest.webmanifest", "application/manifest+json"),
        ] {
            let response = get(uri, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{uri}");
            assert_eq!(header(&response, "content-type"), content_type, "{uri}");
            assert_eq!(header(&response, "cache-control"), "no-cache", "{uri}");
            assert!(!body(response).await.is_empty(), "{uri}");
        }
    }

    #[tokio::test]
    async fn unknown_files_and_paths_out_of_the_page_are_not_found() {
        for uri in ["/ward/nothing.js", "/ward/..%2fCargo.toml", "/ward/%2e%2e", "/ward/APP.JS"] {
            let response = get(uri, None).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{uri}");
            assert_eq!(header(&response, "x-content-type-options"), "nosniff", "{uri}");
        }
        assert_eq!(get("/ward/sub/app.js", None).await.status(), StatusCode::NOT_FOUND);
        let response = get("/ward", None).await;
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(header(&response, "location"), "/ward/");
    }

    #[tokio::test]
    async fn a_phone_with_the_current_file_gets_a_304() {
        let first = get("/ward/app.js", None).await;
        let etag = header(&first, "etag").to_owned();
        let again = get("/ward/app.js", Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(body(again).await.is_empty());
        let stale = get("/ward/app.js", Some("\"0123\"")).await;
        assert_eq!(stale.status(), StatusCode::OK);
    }

    /// The service worker's shell is exactly the page's files: a file missing there would not open
    /// offline, a name there that is not served would fail the worker's installation.
    #[test]
    fn the_service_worker_caches_every_file_of_the_page() {
        let sw = std::str::from_utf8(ASSETS.iter().find(|a| a.name == "sw.js").unwrap().bytes).unwrap();
        let start = sw.find("const SHELL = [").expect("sw.js lists its SHELL");
        let list = &sw[start..start + sw[start..].find("];").unwrap()];
        let mut cached: Vec<&str> = list.split('"').skip(1).step_by(2).map(|s| s.trim_start_matches("./")).collect();
        cached.sort();
        // "./" is the page itself (index.html under its directory's name).
        let mut served: Vec<&str> = ASSETS.iter().map(|a| a.name).chain([""]).collect();
        served.sort();
        assert_eq!(cached, served);
    }

    /// No CDN, no external font, no inline script (the CSP would block it on the phone anyway).
    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for asset in ASSETS {
            let text = String::from_utf8_lossy(asset.bytes).replace(' ', "");
            for needle in [
                "src=\"http",
                "href=\"http",
                "url(http",
                "url(\"http",
                "from\"http",
                "import(\"http",
                "fetch(\"http",
                "//cdn",
                "@import",
            ] {
                assert!(!text.contains(needle), "{} loads something from elsewhere: {needle}", asset.name);
            }
        }
        let html = std::str::from_utf8(ASSETS[0].bytes).unwrap();
        for script in html.split("<script").skip(1) {
            assert!(script.starts_with(" type=\"module\" src="), "inline script in index.html: <script{script}");
        }
        assert!(!html.contains(" style=") && !html.contains("onclick"), "inline style or handler in index.html");
    }
}
