//! Answering with a stored file: safe paths, content types, policies, ETags and
//! caching.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use sha2::{Digest, Sha256};

use crate::cache::{Cache, CachedFile};
use crate::{policy, scripts};

/// The segments of a URL path below a docs root, or `None` if any could leave it:
/// `..`, `.`, empty segments in the middle, backslashes, NUL. Percent-encoding was
/// decoded by the router already, so `%2e%2e` arrives here as `..`.
pub fn safe_segments(path: &str) -> Option<Vec<&str>> {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    if trimmed.is_empty() {
        return Some(Vec::new());
    }
    let segments: Vec<&str> = trimmed.split('/').collect();
    let safe = segments.iter().all(|s| {
        !s.is_empty() && *s != "." && *s != ".." && !s.contains(['\\', '\0']) && !s.starts_with('~')
    });
    safe.then_some(segments)
}

/// How long a response may be kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CachePolicy {
    /// Named by content (rustdoc's `static.files/*-<hash>.*`): forever.
    Immutable,
    /// May change with a rebuild: revalidate with the ETag each time.
    Revalidate,
}

pub fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "txt" | "md" | "log" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Whose file a response is: rustdoc's shared static files, made by docbuild from
/// the toolchain, or anything else below a build's docs, which the crate wrote.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Source {
    Toolchain,
    Build,
}

/// Puts the top bar over a page, or answers `None` if the HTML is no page.
pub type Rewrite<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// A strong validator of exactly these bytes. Pages are rewritten (the top bar lists
/// the versions), so the tag is taken from what is sent, not from the file.
fn etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// The tag of the gzipped representation of the body tagged `tag`.
fn gzip_etag(tag: &str) -> String {
    format!("{}-gzip\"", tag.trim_end_matches('"'))
}

/// How a file from `source` is sent: its body, type and policy. HTML is given the top
/// bar by `rewrite` (which answers `None` if the file is no page it can go over); a
/// script from a build is remade from its data, or not sent as a script at all.
fn prepare(
    path: &Path,
    bytes: Vec<u8>,
    source: Source,
    rewrite: Option<Rewrite<'_>>,
) -> (Bytes, &'static str, &'static str) {
    let kind = content_type(path);
    match kind {
        "text/html; charset=utf-8" => {
            let page = rewrite.and_then(|rewrite| rewrite(&String::from_utf8_lossy(&bytes)));
            match page {
                Some(page) => (Bytes::from(page), kind, policy::DOCS_PAGE),
                None => (Bytes::from(bytes), kind, policy::DOCS_FRAGMENT),
            }
        }
        "text/javascript; charset=utf-8" if source == Source::Build => {
            let script = std::str::from_utf8(&bytes).ok().and_then(scripts::vet);
            match script {
                Some(script) => (Bytes::from(script), kind, policy::INERT),
                None => (
                    Bytes::from(bytes),
                    "text/plain; charset=utf-8",
                    policy::INERT,
                ),
            }
        }
        _ => (Bytes::from(bytes), kind, policy::INERT),
    }
}

/// The file at `path` (a regular file, not a link), with its ETag honoured; served
/// from memory once read. Rewritten pages are cached apart, since they change when
/// the set of versions does.
pub async fn respond(
    cache: &Cache,
    path: PathBuf,
    request_headers: &HeaderMap,
    policy: CachePolicy,
    source: Source,
    rewrite: Option<Rewrite<'_>>,
) -> Option<Response> {
    let page = rewrite.is_some() && content_type(&path) == "text/html; charset=utf-8";
    let file = match cache.file(&path, page) {
        Some(file) => file,
        None => {
            let metadata = tokio::fs::symlink_metadata(&path).await.ok()?;
            if !metadata.is_file() {
                return None;
            }
            let bytes = tokio::fs::read(&path).await.ok()?;
            let (body, kind, csp) = prepare(&path, bytes, source, rewrite);
            let tag = etag(&body);
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static(match policy {
                    CachePolicy::Immutable => "public, max-age=31536000, immutable",
                    CachePolicy::Revalidate => "no-cache",
                }),
            );
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(csp),
            );
            headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
            let gzip_tag = gzip_etag(&tag);
            let etags = [&tag, &gzip_tag].map(|t| HeaderValue::from_str(t).ok());
            let file = Arc::new(CachedFile {
                etag: tag,
                gzip_etag: gzip_tag,
                etag_values: etags,
                headers,
                body,
                gzip: Default::default(),
            });
            cache.set_file(&path, page, Arc::clone(&file));
            file
        }
    };
    let accepts_gzip = request_headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|e| {
                let mut parts = e.split(';');
                parts.next().is_some_and(|e| e.trim() == "gzip")
                    && !parts.any(|p| {
                        p.trim()
                            .strip_prefix("q=")
                            .and_then(|q| q.trim().parse::<f32>().ok())
                            == Some(0.0)
                    })
            })
        });
    let gzipped = if accepts_gzip { file.gzipped() } else { None };
    let (tag, tag_value) = match gzipped {
        Some(_) => (&file.gzip_etag, &file.etag_values[1]),
        None => (&file.etag, &file.etag_values[0]),
    };
    let mut headers = file.headers.clone();
    if let Some(value) = tag_value {
        headers.insert(header::ETAG, value.clone());
    }
    let matches = request_headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag);
    if matches {
        return Some((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    if let Some(gzipped) = gzipped {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        return Some((StatusCode::OK, headers, Body::from(gzipped.clone())).into_response());
    }
    Some((StatusCode::OK, headers, Body::from(file.body.clone())).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_is_refused() {
        assert_eq!(
            safe_segments("a/b/index.html"),
            Some(vec!["a", "b", "index.html"])
        );
        assert_eq!(safe_segments("a/"), Some(vec!["a"]));
        assert_eq!(safe_segments(""), Some(vec![]));
        for bad in [
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a\\..\\b",
            "a/\0",
            "~root",
        ] {
            assert_eq!(safe_segments(bad), None, "{bad:?}");
        }
    }
}
