//! The playground's files (`serve --www DIR`): tower-http's `ServeDir`, with what a production
//! site adds to it.
//!
//! - **Compression, chosen by `Accept-Encoding`.** `scripts/build-www` writes `file.br` (brotli,
//!   quality 11) and `file.gz` beside each file, and `ServeDir` sends the best one the client
//!   takes. Precompressed rather than a compression layer: no CPU per request, brotli at a
//!   quality too slow to run per response, and `Content-Length` and ranges stay intact (a
//!   layer streams its output without a length and cannot serve a range of it).
//! - **Caching.** A file whose name carries a hash of its content (`chunk-2AJOG724.js`) never
//!   changes under that name: `public, max-age=31536000, immutable`. Every other file (the
//!   pages, `widget.js` and the package's fixed names) is `no-cache`: kept, but revalidated.
//! - **ETag.** `ServeDir` sends `Last-Modified` only. The tag here is the representation's size
//!   and modification time, and its encoding (as nginx makes them, without reading the file);
//!   `If-None-Match` answers 304, and a range whose `If-Range` no longer matches gets the
//!   whole file. Ranges themselves are `ServeDir`'s.
//! - **The package for other sites.** A docs page embeds the widget from `/pkg/` as a module
//!   script, which a browser fetches in CORS mode: those files are open to every origin (they
//!   are public and use no credentials). The pages are not.

use std::path::Path;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, MethodRouter};
use tower_http::services::ServeDir;

/// What a content-hashed file is sent with.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// What every other file is sent with.
const REVALIDATE: &str = "no-cache";
/// Where the package lives, for pages of other sites to import.
const PACKAGE: &str = "/pkg/";

/// Serves the files under `dir`; a path with no file answers the API's 404.
pub(super) fn serve(dir: &Path) -> MethodRouter {
    let files = ServeDir::new(dir)
        .precompressed_br()
        .precompressed_gzip()
        .fallback(get(super::meta::not_found));
    any(move |request: Request| respond(files.clone(), request))
}

/// The files, with the API's 404 for a path that has none.
type Files = ServeDir<MethodRouter>;

async fn respond(mut files: Files, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let if_none_match = parts.headers.get(header::IF_NONE_MATCH).cloned();
    let if_range = parts.headers.get(header::IF_RANGE).cloned();
    let conditional = matches!(parts.method, Method::GET | Method::HEAD);
    let hashed = is_content_hashed(parts.uri.path());
    let package = parts.uri.path().starts_with(PACKAGE);
    let request = |drop: &[header::HeaderName]| {
        let mut request = Request::new(Body::empty());
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = parts.uri.clone();
        *request.headers_mut() = parts.headers.clone();
        // If-None-Match decides alone when present (RFC 9110 13.2.2).
        if if_none_match.is_some() {
            request.headers_mut().remove(header::IF_MODIFIED_SINCE);
        }
        for name in drop {
            request.headers_mut().remove(name);
        }
        request
    };
    let mut response = send(&mut files, request(&[])).await;
    // A range of a representation that changed since: the whole new one instead.
    if let (Some(wanted), Some(tag)) = (&if_range, etag(&response)) {
        if response.status() == StatusCode::PARTIAL_CONTENT && !tag_matches(wanted, &tag, false) {
            response = send(&mut files, request(&[header::RANGE, header::IF_RANGE])).await;
        }
    }
    if !(response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED) {
        return response;
    }
    let tag = etag(&response);
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if hashed { IMMUTABLE } else { REVALIDATE }),
    );
    if package {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    }
    let Some(tag) = tag else { return response };
    headers.insert(header::ETAG, tag.clone());
    if conditional
        && if_none_match
            .as_ref()
            .is_some_and(|wanted| tag_matches(wanted, &tag, true))
    {
        return not_modified(response.headers());
    }
    response
}

async fn send(files: &mut Files, request: Request) -> Response {
    match files.try_call(request).await {
        Ok(response) => response.map(Body::new),
        Err(e) => {
            tracing::warn!("reading a www file: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A 304 carrying the validators and caching headers of the response it stands for.
fn not_modified(full: &HeaderMap) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    for name in [
        header::ETAG,
        header::CACHE_CONTROL,
        header::VARY,
        header::LAST_MODIFIED,
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
    ] {
        if let Some(value) = full.get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

/// The representation's tag: its full size, its modification time and its encoding. None when
/// the response does not tell them (an error, or ServeDir's own 304).
fn etag(response: &Response) -> Option<HeaderValue> {
    let headers = response.headers();
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let size = match response.status() {
        StatusCode::PARTIAL_CONTENT => text(header::CONTENT_RANGE)?.rsplit('/').next()?.to_owned(),
        _ => text(header::CONTENT_LENGTH)?.to_owned(),
    };
    let modified = fnv1a(text(header::LAST_MODIFIED)?.as_bytes());
    let encoding = text(header::CONTENT_ENCODING)
        .map(|e| format!("-{e}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!("\"{size}-{modified:016x}{encoding}\"")).ok()
}

/// Whether an `If-None-Match` (`weak`: its weak comparison) or `If-Range` (strong) value names
/// `tag`: `*`, or one of a list.
fn tag_matches(wanted: &HeaderValue, tag: &HeaderValue, weak: bool) -> bool {
    let (Ok(wanted), Ok(tag)) = (wanted.to_str(), tag.to_str()) else {
        return false;
    };
    let strip = |w: &str| if weak { w.trim_start_matches("W/") } else { w }.to_owned();
    (weak && wanted.trim() == "*") || wanted.split(',').any(|w| strip(w.trim()) == tag)
}

/// Whether the last segment of `path` is `name-HASH.ext`, HASH being esbuild's eight
/// characters (or build-www's for the wasm).
fn is_content_hashed(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or("");
    let Some((stem, _ext)) = file.rsplit_once('.') else {
        return false;
    };
    let Some((_, hash)) = stem.rsplit_once('-') else {
        return false;
    };
    hash.len() == 8 && hash.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// FNV-1a, 64 bits: a stable short digest of a date for the tag.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_with_a_content_hash_are_immutable() {
        for hashed in [
            "/chunk-2AJOG724.js",
            "/flankbox_bg-0C40D9DC.wasm",
            "/pkg/widget/editor-33QSHIAJ.js",
        ] {
            assert!(is_content_hashed(hashed), "{hashed}");
        }
        for fixed in [
            "/",
            "/index.html",
            "/pkg/widget.js",
            "/pkg/flankbox_bg.wasm",
            "/widget-demo.html",
            "/a-lowercas.js",
            "/x-ABCDEFG.js",
        ] {
            assert!(!is_content_hashed(fixed), "{fixed}");
        }
    }

    #[test]
    fn tags_match_as_validators_list_them() {
        let tag = HeaderValue::from_static("\"10-ab-br\"");
        for wanted in ["\"10-ab-br\"", "*", "\"x\", \"10-ab-br\"", "W/\"10-ab-br\""] {
            assert!(tag_matches(&HeaderValue::from_static(wanted), &tag, true), "{wanted}");
        }
        for wanted in ["\"10-ab\"", "\"10-ab-gzip\"", ""] {
            assert!(!tag_matches(&HeaderValue::from_static(wanted), &tag, true), "{wanted}");
        }
        // If-Range compares strongly: a weak tag never matches.
        assert!(tag_matches(&HeaderValue::from_static("\"10-ab-br\""), &tag, false));
        assert!(!tag_matches(&HeaderValue::from_static("W/\"10-ab-br\""), &tag, false));
    }
}
