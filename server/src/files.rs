//! Answering with a stored file: safe paths, content types, policies, ETags and
//! caching. A file sent as stored (not rewritten) passes its stored gzip through to
//! clients that accept it, and is decompressed only for those that do not.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use sha2::{Digest, Sha256};

use crate::cache::{Cache, CachedFile};
use crate::{policy, scripts};
use docbuild_store::archive::Encoding;

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

/// A file as storage holds it.
pub struct StoredFile {
    pub bytes: Bytes,
    pub encoding: Encoding,
    /// The SHA-256 of the content, hex.
    pub hash: String,
}

impl StoredFile {
    fn content(self) -> Option<Vec<u8>> {
        docbuild_store::archive::decompress(self.encoding, &self.bytes, u64::MAX).ok()
    }
}

/// Whether a file goes out as it is stored: anything but pages to rewrite and a
/// build's scripts.
fn sent_as_stored(kind: &str, source: Source, rewrite: bool) -> bool {
    match kind {
        "text/html; charset=utf-8" => !rewrite,
        "text/javascript; charset=utf-8" => source == Source::Toolchain,
        _ => true,
    }
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

/// The file named `key` in the cache (`load` fetches it on a miss; `path` gives its
/// type), with its ETag honoured; served from memory once read. Rewritten pages are
/// cached apart, since they change when the set of versions does.
#[allow(clippy::too_many_arguments)]
pub async fn respond(
    cache: &Cache,
    key: PathBuf,
    path: &Path,
    load: impl Future<Output = Option<StoredFile>>,
    request_headers: &HeaderMap,
    policy: CachePolicy,
    source: Source,
    rewrite: Option<Rewrite<'_>>,
) -> Option<Response> {
    let kind = content_type(path);
    let page = rewrite.is_some() && kind == "text/html; charset=utf-8";
    let file = match cache.file(&key, page) {
        Some(file) => file,
        None => {
            let stored = load.await?;
            let as_stored = sent_as_stored(kind, source, rewrite.is_some());
            let (tag, body, gzip, brotli, kind, csp) = if as_stored {
                let csp = if kind == "text/html; charset=utf-8" {
                    policy::DOCS_FRAGMENT
                } else {
                    policy::INERT
                };
                let tag = format!("\"{}\"", &stored.hash[..stored.hash.len().min(24)]);
                let bytes = Some(stored.bytes);
                match stored.encoding {
                    Encoding::Identity => (tag, bytes, None, None, kind, csp),
                    Encoding::Gzip => (tag, None, bytes, None, kind, csp),
                    Encoding::Brotli => (tag, None, None, bytes, kind, csp),
                }
            } else {
                let (body, kind, csp) = prepare(path, stored.content()?, source, rewrite);
                (etag(&body), Some(body), None, None, kind, csp)
            };
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
            let file = Arc::new(CachedFile::new(tag, headers, body, gzip, brotli));
            cache.set_file(&key, page, Arc::clone(&file));
            file
        }
    };
    let accepts = |encoding: &str| {
        request_headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',').any(|e| {
                    let mut parts = e.split(';');
                    parts.next().is_some_and(|e| e.trim() == encoding)
                        && !parts.any(|p| {
                            p.trim()
                                .strip_prefix("q=")
                                .and_then(|q| q.trim().parse::<f32>().ok())
                                == Some(0.0)
                        })
                })
            })
    };
    // The stored brotli as it is; else gzip (stored, or made once); else the body.
    let (encoded, encoding, tag_index) = match &file.brotli {
        Some(brotli) if accepts("br") => (Some(brotli), "br", 2),
        _ => match if accepts("gzip") {
            file.gzipped()
        } else {
            None
        } {
            Some(gzip) => (Some(gzip), "gzip", 1),
            None => (None, "", 0),
        },
    };
    let tag_value = &file.etag_values[tag_index];
    let tag = tag_value
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or(&file.etag)
        .to_string();
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
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag.as_str());
    if matches {
        return Some((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    if let Some(encoded) = encoded {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
        return Some((StatusCode::OK, headers, Body::from(encoded.clone())).into_response());
    }
    Some((StatusCode::OK, headers, Body::from(file.body().clone())).into_response())
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
