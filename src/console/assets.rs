//! The console's static files, compiled into the binary and served under names that carry
//! their content's hash (`console.<10 hex of SHA-256>.css`): a browser may keep them forever,
//! and a new release's files have new names.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// The files as written: (name, content type, content).
const FILES: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    ),
];

/// One embedded file under its hashed name.
pub struct Asset {
    /// As written, e.g. `console.css`.
    pub name: &'static str,
    /// As served, e.g. `console.3f2a9c01be.css`.
    pub hashed: String,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// The hashed names, computed once.
static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(name, content_type, body)| {
            let digest = Sha256::digest(body.as_bytes());
            let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
            let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
            Asset {
                name,
                hashed: format!("{stem}.{hex}.{ext}"),
                content_type,
                body,
            }
        })
        .collect()
});

pub fn all() -> &'static [Asset] {
    &ASSETS
}

/// The URL of the file written as `name` (`/console/assets/console.<hash>.css`).
pub fn url(name: &str) -> String {
    let hashed = ASSETS
        .iter()
        .find(|a| a.name == name)
        .map_or(name, |a| a.hashed.as_str());
    format!("/console/assets/{hashed}")
}

/// `GET /console/assets/{name}`: the file under its hashed name, cacheable forever. Any other
/// name (an old hash included) is 404, so a stale page never gets a mismatched file.
pub async fn serve(Path(name): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.hashed == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}
