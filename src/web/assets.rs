//! Static assets compiled into the binary (never a CDN), served with long-lived caching.
//! URLs carry a content hash, so a new build never meets a stale cached file.

use std::collections::HashMap;
use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use super::error::WebError;
use crate::error::Error;

#[derive(rust_embed::Embed)]
#[folder = "assets/"]
#[exclude = "*/LICENSE"]
#[exclude = "*/VERSION"]
#[exclude = "blocklist/*"]
struct Assets;

fn hashes() -> &'static HashMap<String, String> {
    static H: OnceLock<HashMap<String, String>> = OnceLock::new();
    H.get_or_init(|| {
        Assets::iter()
            .filter_map(|name| {
                let f = Assets::get(&name)?;
                Some((
                    name.to_string(),
                    hex::encode(&f.metadata.sha256_hash()[..6]),
                ))
            })
            .collect()
    })
}

/// `/assets/<path>?v=<hash>` for use in pages.
pub fn url(path: &str) -> String {
    match hashes().get(path) {
        Some(h) => format!("/assets/{path}?v={h}"),
        None => format!("/assets/{path}"),
    }
}

pub async fn serve(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, WebError> {
    let file = Assets::get(&path).ok_or(WebError(Error::NotFound))?;
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..12]));
    if req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_str(file.metadata.mimetype())
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
        ))
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .insert_header((header::ETAG, etag))
        .body(file.data.into_owned()))
}
