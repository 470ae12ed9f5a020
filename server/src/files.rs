//! Answering with a stored file: safe paths, content types, ETags and caching.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::cache::{Cache, CachedFile};

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

/// A weak validator from size and modification time, as nginx makes it: a rebuild
/// writes new files, so either changes.
pub fn etag(metadata: &std::fs::Metadata) -> String {
    let modified = metadata
        .modified()
        .ok()
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("\"{modified:x}-{:x}\"", metadata.len())
}

/// The file at `path` (a regular file, not a link), with its ETag honoured; served
/// from memory once read. `rewrite` changes an HTML body (the top bar); such pages
/// are cached apart, since they change when the set of versions does.
pub async fn respond(
    cache: &Cache,
    path: PathBuf,
    request_headers: &HeaderMap,
    policy: CachePolicy,
    rewrite: Option<&(dyn Fn(&str) -> String + Sync)>,
) -> Option<Response> {
    let is_html = content_type(&path) == "text/html; charset=utf-8";
    let page = is_html && rewrite.is_some();
    let file = match cache.file(&path, page) {
        Some(file) => file,
        None => {
            let metadata = tokio::fs::symlink_metadata(&path).await.ok()?;
            if !metadata.is_file() {
                return None;
            }
            let bytes = tokio::fs::read(&path).await.ok()?;
            let body = match rewrite {
                Some(rewrite) if is_html => Bytes::from(rewrite(&String::from_utf8_lossy(&bytes))),
                _ => Bytes::from(bytes),
            };
            let tag = etag(&metadata);
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(&path)),
            );
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
            if let Ok(value) = HeaderValue::from_str(&tag) {
                headers.insert(header::ETAG, value);
            }
            let file = Arc::new(CachedFile {
                etag: tag,
                headers,
                body,
                gzip: Default::default(),
            });
            cache.set_file(&path, page, Arc::clone(&file));
            file
        }
    };
    let matches = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == file.etag || t.trim() == "*")
        });
    if matches {
        return Some((StatusCode::NOT_MODIFIED, file.headers.clone()).into_response());
    }
    let accepts_gzip = request_headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|e| e.split(';').next().is_some_and(|e| e.trim() == "gzip"))
        });
    let mut headers = file.headers.clone();
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if accepts_gzip && let Some(gzipped) = file.gzipped() {
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
