//! The JSON API: queueing builds, their status, a release's doc status, a badge.
//! Requests that queue come from a client that is no browser or from the viewer's
//! own pages (see `origins`), and carry JSON. Its errors are JSON whoever makes
//! them: its handlers, the gate, an extractor's rejection or the router
//! (`json_error`).

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use docbuild_builder::config::CRATES_IO;
use docbuild_builder::identity::{CrateId, CrateVersion, CrateVersionError, RegistryName};
use docbuild_builder::queue::{PRIORITY_NEW, PRIORITY_REBUILD};
use serde_json::{Value, json};

use crate::SharedState;

pub(crate) fn error(
    status: StatusCode,
    field: Option<&str>,
    message: impl std::fmt::Display,
) -> Response {
    let mut body = json!({ "error": message.to_string() });
    if let Some(field) = field {
        body["field"] = json!(field);
    }
    (status, Json(body)).into_response()
}

/// Whether a request is an HTML form's (the viewer's own buttons post forms).
fn is_form(headers: &HeaderMap) -> bool {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|kind| kind.trim().to_ascii_lowercase());
    matches!(
        kind.as_deref(),
        Some("application/x-www-form-urlencoded" | "multipart/form-data")
    )
}

/// Whether a request is the API's, whose errors are JSON: everything under
/// `/api/`, a release's `status.json`, and its `rebuild` and `delete` unless posted
/// by an HTML form.
pub fn is_api_request(method: &Method, path: &str, headers: &HeaderMap) -> bool {
    if path == "/api" || path.starts_with("/api/") {
        return true;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["crate", _, _, "status.json"] => true,
        ["crate", _, _, last] | ["crate", _, _, _, last]
            if crate::rustdoc_json::Form::from_segment(last).is_some() =>
        {
            true
        }
        ["crate", _, _, "rebuild" | "delete"] => !(*method == Method::POST && is_form(headers)),
        _ => false,
    }
}

/// The longest error body read to make its JSON message.
const ERROR_TEXT_LIMIT: usize = 4096;

/// An error answer to an API request as `{"error": "…"}`, whatever made it (the
/// gate, an extractor's rejection, the router's `405`); other answers as they are.
/// A plain-text body gives the message (its first line); any other, the status.
pub async fn json_error(method: &Method, path: &str, response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let kind = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if kind.starts_with("application/json") {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let plain =
        kind.starts_with("text/plain") && !parts.headers.contains_key(header::CONTENT_ENCODING);
    let mut message = None;
    if plain && let Ok(bytes) = axum::body::to_bytes(body, ERROR_TEXT_LIMIT).await {
        message = String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .map(str::to_string);
    }
    let message = message.unwrap_or_else(|| match status {
        StatusCode::UNAUTHORIZED => "a token is needed".to_string(),
        StatusCode::NOT_FOUND => format!("no such API route: {path}"),
        // The router names the methods it takes in `Allow`.
        StatusCode::METHOD_NOT_ALLOWED => format!("{method} is not allowed on {path}"),
        _ => status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase(),
    });
    let body = json!({ "error": message }).to_string();
    for name in [
        header::CONTENT_ENCODING,
        header::CONTENT_LENGTH,
        header::ETAG,
        header::LAST_MODIFIED,
    ] {
        parts.headers.remove(name);
    }
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

/// Any other path under `/api/`.
pub async fn unknown(uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        None,
        format!("no such API route: {}", uri.path()),
    )
}

/// A request the API refuses, naming the field at fault.
struct BadRequest {
    field: Option<&'static str>,
    message: String,
}

impl BadRequest {
    fn new(field: Option<&'static str>, message: impl std::fmt::Display) -> Self {
        Self {
            field,
            message: message.to_string(),
        }
    }
}

/// Reads `{"name", "version", "registry"}`; the registry defaults to crates.io.
fn parse_build_request(
    body: &[u8],
    state: &SharedState,
) -> Result<(CrateVersion, String), BadRequest> {
    let request: Value = match serde_json::from_slice(body) {
        Ok(value @ Value::Object(_)) => value,
        Ok(_) => return Err(BadRequest::new(None, "the body must be a JSON object")),
        Err(e) => return Err(BadRequest::new(None, format!("invalid JSON: {e}"))),
    };
    let field = |name: &'static str| match request.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(BadRequest::new(
            Some(name),
            format!("`{name}` must be a string"),
        )),
    };
    let name = field("name")?.ok_or_else(|| BadRequest::new(Some("name"), "`name` is required"))?;
    let version = field("version")?
        .ok_or_else(|| BadRequest::new(Some("version"), "`version` is required"))?;
    let krate = CrateVersion::new(&name, &version).map_err(|e| match e {
        CrateVersionError::Name(_) => BadRequest::new(Some("name"), e),
        _ => BadRequest::new(Some("version"), e),
    })?;
    let registry = field("registry")?.unwrap_or_else(|| CRATES_IO.to_string());
    if registry != CRATES_IO && !state.config.registries.contains_key(&registry) {
        return Err(BadRequest::new(
            Some("registry"),
            format!("unknown registry `{registry}`"),
        ));
    }
    Ok((krate, registry))
}

/// `POST /api/v1/builds` `{"name", "version", "registry"}` → `202 {"id"}`. For a
/// registry's upload webhook or a publishing pipeline.
pub async fn enqueue(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Only JSON: a form of another site can send `text/plain` without asking.
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|kind| kind.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            "the body must be JSON, sent as `Content-Type: application/json`",
        );
    }
    let (krate, registry) = match parse_build_request(&body, &state) {
        Ok(request) => request,
        Err(bad) => return error(StatusCode::BAD_REQUEST, bad.field, bad.message),
    };
    match RegistryName::new(&registry) {
        Ok(registry) => queue_build(&state, CrateId { registry, krate }, PRIORITY_NEW).await,
        Err(e) => error(StatusCode::BAD_REQUEST, Some("registry"), e),
    }
}

/// Queues a release and answers `202 {"id"}`.
async fn queue_build(state: &SharedState, id: CrateId, priority: i64) -> Response {
    match state.queue.enqueue(&id, priority).await {
        Ok((id, _)) => (StatusCode::ACCEPTED, Json(json!({ "id": id }))).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, None, e),
    }
}

/// `GET /api/v1/builds/{id}`: the job's status and, once done, its outcome.
pub async fn build_status(State(state): State<SharedState>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            Some("id"),
            "the build id must be a number",
        );
    };
    match state.queue.job(id).await {
        Ok(job) => Json(job).into_response(),
        Err(docbuild_builder::queue::QueueError::NoSuchJob(_)) => {
            error(StatusCode::NOT_FOUND, None, format!("no build {id}"))
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, None, e),
    }
}

/// `POST /crate/{name}/{version}/rebuild` (admin): queue the release again →
/// `202 {"id"}`; posted by the viewer's form, `303` to the release's builds.
pub async fn rebuild(
    State(state): State<SharedState>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let form = is_form(&headers);
    let fail = |status: StatusCode, message: String| {
        if form {
            (status, format!("{message}\n")).into_response()
        } else {
            error(status, None, message)
        }
    };
    let builds = state
        .catalog
        .builds(&name, &version)
        .await
        .unwrap_or_default();
    let Some(last) = builds.first() else {
        return fail(
            StatusCode::NOT_FOUND,
            format!("no build of {name} {version}"),
        );
    };
    let id = match CrateId::new(&last.registry, &name, &version) {
        Ok(id) => id,
        Err(e) => return fail(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if !form {
        return queue_build(&state, id, PRIORITY_REBUILD).await;
    }
    match state.queue.enqueue(&id, PRIORITY_REBUILD).await {
        // Checked by `CrateId::new`: the name and version are safe in a path.
        Ok(_) => Redirect::to(&format!("/crate/{name}/{version}/builds")).into_response(),
        Err(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A service over the server's data directory and store, for admin operations.
fn service(state: &SharedState) -> docbuild_builder::worker::Service {
    docbuild_builder::worker::Service {
        data: state.data.clone(),
        config: state.config.clone(),
        store: state.catalog.store().clone(),
        queue: state.queue.clone(),
    }
}

/// `POST /crate/{name}/{version}/delete` (admin): delete every stored build of the
/// release → `200 {"deleted": N, "bytes": B}`; `409` while a build of it runs.
pub async fn delete_docs(
    State(state): State<SharedState>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    let wanted = (crate::catalog::normalize(&name), version.clone());
    let found = async {
        let builds = state.queue.builds().await?;
        let Some(build) = builds
            .into_iter()
            .find(|b| crate::catalog::normalize(&b.name) == wanted.0 && b.version == wanted.1)
        else {
            return Ok(None);
        };
        let Some(id) = build.crate_id() else {
            return Ok(None);
        };
        let jobs = state.queue.jobs_of(&id).await?;
        let running = jobs
            .iter()
            .any(|j| j.status == docbuild_builder::queue::JobStatus::Running);
        Ok::<_, docbuild_builder::queue::QueueError>(Some((build, running)))
    }
    .await;
    let (build, running) = match found {
        Ok(Some(found)) => found,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                None,
                format!("no build of {name} {version}"),
            );
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, None, e),
    };
    if running {
        return error(
            StatusCode::CONFLICT,
            None,
            format!("a build of {name} {version} is running; try again once it is done"),
        );
    }
    let id = match CrateId::new(&build.registry, &build.name, &build.version) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, None, e),
    };
    match service(&state).delete_docs(&id).await {
        Ok(deleted) => Json(json!({ "deleted": deleted.builds.len() })).into_response(),
        Err(failure) => error(StatusCode::CONFLICT, None, failure.message),
    }
}

/// `POST /api/v1/builds/{id}/remove` (admin): remove a job that is not running →
/// `200 {"removed": id}`; `409` while it runs.
pub async fn remove_build(State(state): State<SharedState>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            Some("id"),
            "the build id must be a number",
        );
    };
    match state.queue.job(id).await {
        Ok(job) if job.status == docbuild_builder::queue::JobStatus::Running => {
            return error(
                StatusCode::CONFLICT,
                None,
                format!("build {id} is running; try again once it is done"),
            );
        }
        Ok(_) => {}
        Err(docbuild_builder::queue::QueueError::NoSuchJob(_)) => {
            return error(StatusCode::NOT_FOUND, None, format!("no build {id}"));
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, None, e),
    }
    match service(&state).remove_job(id).await {
        Ok(_) => Json(json!({ "removed": id })).into_response(),
        Err(failure) => error(StatusCode::CONFLICT, None, failure.message),
    }
}

/// `GET /crate/{name}/{version}/status.json`, as docs.rs answers it.
pub async fn status(
    State(state): State<SharedState>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    let release = state.catalog.resolve(&name, &version).await.ok().flatten();
    let body = match &release {
        Some(release) => json!({ "version": release.version.to_string(), "doc_status": true }),
        None => json!({ "version": version, "doc_status": false }),
    };
    (
        [(
            header::CACHE_CONTROL,
            "no-cache, no-store, must-revalidate, max-age=0",
        )],
        Json(body),
    )
        .into_response()
}

/// `GET /{name}/badge.svg`: the newest version's doc status.
pub async fn badge(State(state): State<SharedState>, Path(name): Path<String>) -> Response {
    let release = state.catalog.resolve(&name, "latest").await.ok().flatten();
    let (text, color) = match &release {
        Some(release) => (release.version.to_string(), "#4c1"),
        None => ("none".to_string(), "#9f9f9f"),
    };
    let width = 40 + 7 * text.len();
    let svg = maud::html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(width) height="20" role="img" aria-label={ "docs: " (text) } {
            rect width="36" height="20" fill="#555" {}
            rect x="36" width=(width - 36) height="20" fill=(color) {}
            g fill="#fff" font-family="Verdana,sans-serif" font-size="11" {
                text x="5" y="14" { "docs" }
                text x="41" y="14" { (text) }
            }
        }
    }
    .into_string();
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, crate::policy::INERT),
        ],
        svg,
    )
        .into_response()
}
