//! The console's page (agent/assets/console/), compiled into the binary like the ward phones' page
//! ([`super::assets`]): one page at `/console/`, plain HTML, CSS and ES modules, nothing from another
//! origin, the page an installer gets is the one this box was built with.
//!
//! Every answer carries the same strict headers: a Content-Security-Policy that allows only this origin
//! (no inline script or style, no `eval`, no frames; `blob:` for the photos an installer picks to
//! enrol), `nosniff`, no Referer, and `no-cache` with an ETag, so a browser revalidates every asset (a
//! 304) and never mixes an old script with a new page after an upgrade. There is no service worker:
//! the console is useless without the box, and a cached console would show stale evidence.

use axum::Router;

use super::assets::{Asset, Page};

/// Where the page lives.
pub const PREFIX: &str = "/console/";

/// Only this origin; `blob:` for the photos picked for an enrolment (previewed before they are sent).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
                   media-src 'self'; connect-src 'self'; worker-src 'none'; manifest-src 'none'; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The console needs no device of the browser.
const PERMISSIONS: &str = "camera=(), geolocation=(), microphone=(), payment=(), usb=()";

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset { name: $name, bytes: include_bytes!(concat!("../../assets/console/", $name)), content_type: $type }
    };
}

/// Every file of the page.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("i18n.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("dom.js", "text/javascript; charset=utf-8"),
    asset!("cameras.js", "text/javascript; charset=utf-8"),
    asset!("editor.js", "text/javascript; charset=utf-8"),
    asset!("events.js", "text/javascript; charset=utf-8"),
    asset!("people.js", "text/javascript; charset=utf-8"),
    asset!("audit.js", "text/javascript; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
];

/// The page's routes: `/console` (redirect), `/console/` (index.html) and `/console/<file>`; anything
/// else of one segment under `/console/` is a 404 (the API is under `/console/api/`, two segments and
/// more, merged beside this by the server).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    PAGE.router("/console")
}

static PAGE: Page = Page::new(ASSETS, CSP, PERMISSIONS);

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use axum::response::Response;
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
        let response = get("/console/", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&response, "cache-control"), "no-cache");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert_eq!(header(&response, "referrer-policy"), "no-referrer");
        let csp = header(&response, "content-security-policy");
        assert!(csp.starts_with("default-src 'self';"), "{csp}");
        assert!(csp.contains("script-src 'self';") && csp.contains("style-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe") && csp.contains("frame-ancestors 'none'"), "{csp}");
        let html = String::from_utf8(body(response).await).unwrap();
        assert!(html.contains("<script type=\"module\" src=\"app.js\"></script>"), "{html}");
    }

    #[tokio::test]
    async fn every_file_is_served_with_its_content_type() {
        for asset in ASSETS {
            let uri = format!("/console/{}", asset.name);
            let response = get(&uri, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{uri}");
            assert_eq!(header(&response, "content-type"), asset.content_type, "{uri}");
            assert_eq!(header(&response, "cache-control"), "no-cache", "{uri}");
            assert!(!body(response).await.is_empty(), "{uri}");
        }
    }

    #[tokio::test]
    async fn unknown_files_and_paths_out_of_the_page_are_not_found() {
        for uri in ["/console/nothing.js", "/console/..%2fCargo.toml", "/console/%2e%2e", "/console/APP.JS"] {
            let response = get(uri, None).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{uri}");
            assert_eq!(header(&response, "x-content-type-options"), "nosniff", "{uri}");
        }
        assert_eq!(get("/console/sub/app.js", None).await.status(), StatusCode::NOT_FOUND);
        let response = get("/console", None).await;
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(header(&response, "location"), "/console/");
    }

    #[tokio::test]
    async fn a_browser_with_the_current_file_gets_a_304() {
        let first = get("/console/app.js", None).await;
        let etag = header(&first, "etag").to_owned();
        let again = get("/console/app.js", Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(body(again).await.is_empty());
        assert_eq!(get("/console/app.js", Some("\"0123\"")).await.status(), StatusCode::OK);
    }

    /// Every module the page imports is served, and every served file is used: a missing one would
    /// break the page only in a browser.
    #[test]
    fn the_modules_imported_are_the_ones_served() {
        let served: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(asset.bytes).unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let target = line.split("\"./").nth(1).and_then(|s| s.split('"').next()).unwrap_or_default();
                assert!(served.contains(&target), "{} imports {target:?}, which is not served", asset.name);
            }
        }
        let all: String = ASSETS.iter().map(|a| String::from_utf8_lossy(a.bytes)).collect();
        for name in served.iter().filter(|n| **n != "index.html") {
            assert!(
                all.contains(&format!("\"./{name}\"")) || all.contains(&format!("\"{name}\"")),
                "{name} is never used"
            );
        }
    }

    /// Every visible string in both languages: the two tables of i18n.js have the same keys.
    #[test]
    fn every_string_is_in_english_and_chinese() {
        let text = std::str::from_utf8(ASSETS.iter().find(|a| a.name == "i18n.js").unwrap().bytes).unwrap();
        let keys = |table: &str| -> Vec<String> {
            let start = text.find(&format!("const {table} = {{")).unwrap_or_else(|| panic!("no table {table}"));
            let body = &text[start..start + text[start..].find("\n};").unwrap()];
            let mut keys: Vec<String> = body
                .lines()
                .skip(1)
                .filter_map(|line| line.trim().split_once(": ").map(|(k, _)| k.trim_matches('"').to_owned()))
                .filter(|k| !k.is_empty() && !k.contains(' '))
                .collect();
            keys.sort();
            keys
        };
        let (en, zh) = (keys("EN"), keys("ZH"));
        assert!(en.len() > 200, "{} English strings", en.len());
        let missing: Vec<&String> = en.iter().filter(|k| !zh.contains(k)).collect();
        let extra: Vec<&String> = zh.iter().filter(|k| !en.contains(k)).collect();
        assert!(missing.is_empty() && extra.is_empty(), "not in Chinese: {missing:?}; only in Chinese: {extra:?}");
    }

    /// No CDN, no external font, no inline script or style (the CSP would block them anyway).
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
                "@font-face",
                "innerHTML",
                "eval(",
            ] {
                assert!(!text.contains(needle), "{} loads or builds something it must not: {needle}", asset.name);
            }
        }
        let html = std::str::from_utf8(ASSETS[0].bytes).unwrap();
        for script in html.split("<script").skip(1) {
            assert!(script.starts_with(" type=\"module\" src="), "inline script in index.html: <script{script}");
        }
        assert!(!html.contains(" style="), "inline style in index.html");
        let handler = html.split(" on").skip(1).find(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(handler.is_none(), "inline handler in index.html: on{}", handler.unwrap_or_default());
    }
}
