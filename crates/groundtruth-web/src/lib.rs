//! `groundtruth-web`: the pages inspectors and analysts use, served by the
//! same axum process as the review API.
//!
//! The pages are plain HTML, CSS and JavaScript modules under `assets/`,
//! compiled into the binary with `include_bytes!`: nothing to build, no
//! CDN, no map tiles, works offline. [`routes`] serves `/` (the page shell)
//! and `/assets/{name}`; the page app then talks to `/api/v1` with the
//! signed-in token. Every response carries a strict Content-Security-Policy
//! (scripts and styles from this origin only, no inline script), so text
//! from events or findings can never run as code even if it slipped past
//! the pages' `textContent`-only rendering.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Its name under `/assets/` (`index.html` is served at `/`).
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// An [`Asset`] from `assets/NAME`.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../assets/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every embedded file.
pub const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("charts.js", JS),
    asset!("i18n.js", JS),
    asset!("favicon.svg", "image/svg+xml"),
];

/// What the pages may load: only this origin; the API on the same origin.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The asset called `name`, if embedded.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// `/` and `/assets/{name}`, for any router state.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/favicon.ico", get(favicon))
        .route("/assets/{name}", get(serve_asset))
}

async fn index(headers: HeaderMap) -> Response {
    respond(
        asset("index.html").expect("index.html is embedded"),
        &headers,
    )
}

async fn favicon(headers: HeaderMap) -> Response {
    respond(
        asset("favicon.svg").expect("favicon.svg is embedded"),
        &headers,
    )
}

async fn serve_asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match asset(&name) {
        Some(a) => respond(a, &headers),
        None => (
            StatusCode::NOT_FOUND,
            with_security_headers(HeaderMap::new()),
            format!(
                "no asset called {name:?}; the pages are at /",
                name = name.chars().take(80).collect::<String>()
            ),
        )
            .into_response(),
    }
}

/// An ETag per asset: a hash of its bytes, computed once.
fn etag(a: &Asset) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|x| format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(x.body)))
            .collect()
    });
    let i = ASSETS
        .iter()
        .position(|x| std::ptr::eq(x, a))
        .expect("assets come from ASSETS");
    &tags[i]
}

fn respond(a: &'static Asset, req: &HeaderMap) -> Response {
    let tag = etag(a);
    let mut headers = with_security_headers(HeaderMap::new());
    headers.insert(header::ETAG, HeaderValue::from_static(tag));
    // Revalidate every time: a new binary serves new pages at once, and an
    // unchanged file costs a 304.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    (StatusCode::OK, headers, a.body).into_response()
}

fn with_security_headers(mut h: HeaderMap) -> HeaderMap {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(path: &str, etag: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut req = Request::get(path);
        if let Some(t) = etag {
            req = req.header(header::IF_NONE_MATCH, t);
        }
        let resp = routes::<()>()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, headers, body)
    }

    #[tokio::test]
    async fn serves_the_shell_and_every_asset_with_its_type_and_policy() {
        let (status, h, body) = get("/", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(String::from_utf8(body).unwrap().contains("/assets/app.js"));
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        for a in ASSETS {
            let (status, h, body) = get(&format!("/assets/{}", a.name), None).await;
            assert_eq!(status, StatusCode::OK, "{}", a.name);
            assert_eq!(h[header::CONTENT_TYPE], a.content_type, "{}", a.name);
            assert_eq!(body, a.body, "{}", a.name);
        }
    }

    #[tokio::test]
    async fn an_unchanged_asset_is_a_304_and_an_unknown_one_a_404() {
        let (_, h, _) = get("/assets/app.js", None).await;
        let tag = h[header::ETAG].to_str().unwrap().to_string();
        let (status, _, body) = get("/assets/app.js", Some(&tag)).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
        let (status, _, _) = get("/assets/app.js", Some("\"stale\"")).await;
        assert_eq!(status, StatusCode::OK);
        for bad in ["/assets/nope.js", "/assets/..%2FCargo.toml", "/assets/%00"] {
            let (status, h, _) = get(bad, None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{bad}");
            assert!(h.contains_key(header::CONTENT_SECURITY_POLICY));
        }
    }

    /// Every module the pages import and every file the shell links is
    /// embedded (a file added to assets/ but not to ASSETS would 404).
    #[test]
    fn every_referenced_file_is_embedded() {
        let mut referenced = Vec::new();
        for a in ASSETS {
            let text = std::str::from_utf8(a.body).unwrap();
            for (pat, end) in [("from './", '\''), ("/assets/", '"')] {
                let mut rest = text;
                while let Some(i) = rest.find(pat) {
                    rest = &rest[i + pat.len()..];
                    let name: String = rest.chars().take_while(|&c| c != end).collect();
                    referenced.push(name);
                }
            }
        }
        assert!(referenced.len() >= 4, "{referenced:?}");
        for name in referenced {
            assert!(
                asset(&name).is_some(),
                "{name} is referenced but not embedded"
            );
        }
        let on_disk: Vec<String> = std::fs::read_dir(
            std::path::Path::new(
                &std::env::var("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
            )
            .join("assets"),
        )
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
        for f in on_disk {
            assert!(asset(&f).is_some(), "assets/{f} is not in ASSETS");
        }
    }

    /// The pages never parse server text as HTML.
    #[test]
    fn scripts_never_use_inner_html_or_eval() {
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap();
            for bad in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "eval(",
                "new Function",
                "document.write",
            ] {
                assert!(!text.contains(bad), "{} uses {bad}", a.name);
            }
        }
    }
}
