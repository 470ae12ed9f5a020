//! `/crate/{name}/{version}[/{target}]/json[.gz|.zst]`: rustdoc's JSON of a release's
//! current build, for its default target, at docs.rs's URLs. It is stored gzip
//! (`StoredBuilds::put_json`): `json.gz` answers the stored bytes, `json` answers
//! them with `Content-Encoding: gzip` to a client that takes gzip and the JSON
//! itself to others, and `json.zst` answers zstd, made on request. Every error is
//! `{"error": "…"}` (`api::is_api_request`).

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use docbuild_store::archive::{self, Encoding};
use docbuild_store::stored::json_path;

use crate::SharedState;
use crate::api::error;

/// Which of the three forms a URL asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Json,
    Gzip,
    Zstd,
}

impl Form {
    /// The form a URL's last segment names, if it is one of these routes'.
    pub fn from_segment(segment: &str) -> Option<Self> {
        match segment {
            "json" => Some(Self::Json),
            "json.gz" => Some(Self::Gzip),
            "json.zst" => Some(Self::Zstd),
            _ => None,
        }
    }
}

/// zstd's level for `json.zst`, made on each request: its default, fast (tokio's
/// JSON in well under a second) and smaller than the stored gzip.
const ZSTD_LEVEL: i32 = 3;

pub async fn json(
    State(state): State<SharedState>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    serve(state, params, headers, Form::Json).await
}

pub async fn json_gz(
    State(state): State<SharedState>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    serve(state, params, headers, Form::Gzip).await
}

pub async fn json_zst(
    State(state): State<SharedState>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    serve(state, params, headers, Form::Zstd).await
}

async fn serve(
    state: SharedState,
    params: HashMap<String, String>,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let name = params.get("name").map(String::as_str).unwrap_or_default();
    let version = params
        .get("version")
        .map(String::as_str)
        .unwrap_or_default();
    let release = match state.catalog.resolve(name, version).await {
        Ok(Some(release)) => release,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                None,
                format!("no release of `{name}` matches `{version}`"),
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read the catalog");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "the catalog cannot be read now",
            );
        }
    };
    let Some(json) = release.record.as_ref().and_then(|r| r.json.as_ref()) else {
        return error(
            StatusCode::NOT_FOUND,
            None,
            format!("{} {} has no rustdoc JSON", release.name, release.version),
        );
    };
    if let Some(target) = params.get("target")
        && *target != json.target
    {
        return error(
            StatusCode::NOT_FOUND,
            None,
            format!(
                "rustdoc JSON is made for the default target only, `{}`",
                json.target
            ),
        );
    }
    let builds = state.catalog.store().builds();
    let entry = match builds.json_manifest(release.build).await {
        Ok(manifest) => manifest.and_then(|m| m.files.get(&json_path(&json.target)).cloned()),
        Err(e) => {
            tracing::error!(build = release.build, error = %e, "cannot read the JSON manifest");
            None
        }
    };
    let Some(entry) = entry else {
        return error(
            StatusCode::NOT_FOUND,
            None,
            format!(
                "the rustdoc JSON of {} {} is not stored",
                release.name, release.version
            ),
        );
    };
    let stored = match archive::load(builds.blobs(), &entry).await {
        Ok(stored) => stored,
        Err(e) => {
            tracing::error!(build = release.build, error = %e, "cannot read the rustdoc JSON");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "the rustdoc JSON cannot be read from storage now",
            );
        }
    };
    let gzip_stored = entry.encoding == Encoding::Gzip;
    let made = tokio::task::spawn_blocking(
        move || -> Result<(Bytes, Option<&'static str>, &'static str), String> {
            let raw = || archive::decode(&entry, stored.clone()).map_err(|e| e.to_string());
            Ok(match form {
                Form::Json if gzip_stored && accepts(&headers, "gzip") => {
                    (stored.clone(), Some("gzip"), "application/json")
                }
                Form::Json => (raw()?, None, "application/json"),
                Form::Gzip if gzip_stored => (stored.clone(), None, "application/gzip"),
                Form::Gzip => {
                    let raw = raw()?;
                    let gzip =
                        archive::compress(&raw, archive::GZIP_LEVEL).ok_or("cannot compress")?;
                    (Bytes::from(gzip), None, "application/gzip")
                }
                Form::Zstd => {
                    let raw = raw()?;
                    let zstd = zstd_bytes(&raw).map_err(|e| e.to_string())?;
                    (Bytes::from(zstd), None, "application/zstd")
                }
            })
        },
    )
    .await;
    let (body, encoding, kind) = match made {
        Ok(Ok(made)) => made,
        Ok(Err(e)) => {
            tracing::error!(build = release.build, error = %e, "cannot serve the rustdoc JSON");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "the stored rustdoc JSON is damaged",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "rustdoc JSON task failed");
            return error(StatusCode::INTERNAL_SERVER_ERROR, None, "internal error");
        }
    };
    let length = body.len();
    let mut response = (StatusCode::OK, Body::from(body)).into_response();
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Some(encoding) = encoding {
        out.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if form == Form::Json {
        out.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if let Ok(value) = HeaderValue::from_str(&json.format_version.to_string()) {
        out.insert("x-rustdoc-json-format-version", value);
    }
    if form != Form::Json {
        let file = format!(
            "{}_{}_{}_{}.json.{}",
            release.name,
            release.version,
            json.target,
            json.format_version,
            if form == Form::Gzip { "gz" } else { "zst" }
        );
        if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
            out.insert(header::CONTENT_DISPOSITION, value);
        }
    }
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn zstd_bytes(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    zstd::bulk::compress(raw, ZSTD_LEVEL)
}

/// Whether the request's `Accept-Encoding` takes `encoding` (not at `q=0`).
fn accepts(headers: &HeaderMap, encoding: &str) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            parts
                .next()
                .is_some_and(|e| e.trim().eq_ignore_ascii_case(encoding))
                && !parts.any(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f32>().ok())
                        == Some(0.0)
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_sent_only_to_clients_that_take_it() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(value).unwrap(),
            );
            accepts(&headers, "gzip")
        };
        assert!(with("gzip"));
        assert!(with("br, GZIP;q=0.5"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br, identity"));
        assert!(!accepts(&HeaderMap::new(), "gzip"));
    }

    #[test]
    fn the_three_forms_are_named_by_the_last_segment() {
        assert_eq!(Form::from_segment("json"), Some(Form::Json));
        assert_eq!(Form::from_segment("json.gz"), Some(Form::Gzip));
        assert_eq!(Form::from_segment("json.zst"), Some(Form::Zstd));
        assert_eq!(Form::from_segment("status.json"), None);
    }
}
