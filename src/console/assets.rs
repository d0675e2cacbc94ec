//! The console's one asset, its stylesheet, compiled in and served under a name that
//! carries a hash of its content, so that browsers may keep it for a year and still
//! get a new one when it changes.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

pub const CSS: &str = include_str!("assets/console.css");

/// FNV-1a over the stylesheet, computed at compile time.
const fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
}

pub const CSS_HASH: u64 = fnv(CSS.as_bytes());
/// The route; the hash goes in the query (`href` of every page), so a new build's
/// stylesheet is a new address.
pub const CSS_PATH: &str = "/console/assets/console.css";

pub fn css_href() -> String {
    format!("{CSS_PATH}?v={CSS_HASH:016x}")
}

pub async fn css() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        CSS,
    )
        .into_response()
}
