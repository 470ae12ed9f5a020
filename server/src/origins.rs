//! The viewer's origin model and the gate every request passes.
//!
//! The viewer's own pages and API are on its origin (`[server] url`, or the listen
//! address). Docs are crate content: with `[server] docs-url`, they are served from
//! that origin instead, by the same listener (the `Host` tells them apart); a docs
//! URL asked for on the viewer's origin is redirected there, and the docs origin
//! answers nothing but docs, the static files of their top bar, and the landing of
//! its session (`session`). No viewer cookie ever reaches it, so no script there
//! could act as the reader. Without a docs origin, docs share the viewer's, and
//! their policy lets only docbuild's own scripts run (`policy`, `scripts`).
//!
//! On the viewer's origin, a state-changing request must come from the viewer's own
//! pages (`policy::same_origin`); then, once a first token has been made, it needs
//! one of its route's scope. Tokens stay in force once made: revoking every one
//! leaves the site closed. `[server] public = true` lets anyone read (pages, docs,
//! build records); queueing, rebuilding and managing still need a token.
//!
//! An API request's errors are JSON, whoever makes them (`api::json_error`).

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use docbuild_builder::config::url_origin;

use crate::session::{self, DOCS_COOKIE, LOGIN_COOKIE, encode, local_path};
use crate::views::Visitor;
use crate::{SharedState, api, pages, policy};
use docbuild_store::tokens::{self, Access, Scope};

/// Which origin a request was made to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    Viewer,
    Docs,
}

/// `[server] docs-url`.
#[derive(Debug, Clone)]
pub struct DocsOrigin {
    /// `scheme://host[:port]`
    origin: String,
    /// `host[:port]`, as a `Host` header names it.
    host: String,
    secure: bool,
}

impl DocsOrigin {
    pub fn new(url: &str) -> Result<Self, String> {
        let origin = url_origin(url)?;
        let (scheme, host) = origin.split_once("://").unwrap_or(("http", &origin));
        Ok(Self {
            secure: scheme == "https",
            host: host.to_string(),
            origin,
        })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn host(&self) -> &str {
        &self.host
    }
}

/// Whether a path is one of the docs' (`/{name}/…`), not one of the viewer's own
/// (`/`, `/-/…`, `/crate/…`, `/api/…`, `/releases/…`, `/metrics`, `/{name}/badge.svg`).
fn is_docs_path(path: &str) -> bool {
    let mut segments = path.trim_start_matches('/').split('/');
    let first = segments.next().unwrap_or_default();
    if matches!(first, "" | "-" | "crate" | "api" | "releases") {
        return false;
    }
    match segments.next() {
        None => first != "metrics",
        Some("badge.svg") => segments.next().is_some(),
        Some(_) => true,
    }
}

/// The token of an `Authorization` header, whatever the case of its scheme.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

fn path_and_query(request: &Request) -> String {
    request
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_string(), |p| p.as_str().to_string())
}

/// A refusal, in JSON on the API.
fn refuse(api: bool, status: StatusCode, message: &str) -> Response {
    if api {
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    } else {
        (status, format!("{message}\n")).into_response()
    }
}

fn token_store_failed(error: &tokens::TokenError) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")).into_response()
}

/// The gate before every handler.
pub async fn guard(State(state): State<SharedState>, mut request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let site = if state
        .allowed_hosts
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(host))
    {
        Site::Viewer
    } else if state
        .docs
        .as_ref()
        .is_some_and(|docs| docs.host.eq_ignore_ascii_case(host))
    {
        Site::Docs
    } else {
        // A page of another site reaching this server through DNS rebinding.
        return (StatusCode::MISDIRECTED_REQUEST, "unknown host\n").into_response();
    };
    state.catalog.cache().refresh().await;
    request.extensions_mut().insert(site);
    let changes = request.method() != Method::GET && request.method() != Method::HEAD;
    let api = api::is_api_request(request.method(), request.uri().path(), request.headers())
        .then(|| (request.method().clone(), request.uri().path().to_string()));
    let mut response = match site {
        Site::Viewer => viewer_gate(&state, request, next, api.is_some()).await,
        Site::Docs => docs_gate(&state, request, next, api.is_some()).await,
    };
    if let Some((method, path)) = api {
        response = api::json_error(&method, &path, response).await;
    }
    if changes {
        // What this request changed is seen by the next one, whatever the engine.
        state.catalog.cache().expire();
    }
    response
        .headers_mut()
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    response
}

/// The scope a route of the viewer needs.
fn required_scope(method: &Method, path: &str) -> Option<Scope> {
    if matches!(path, "/-/login" | "/-/logout" | "/-/docs-session")
        || path.starts_with("/-/static/")
    {
        return None;
    }
    if *method == Method::POST && path == "/api/v1/builds" {
        return Some(Scope::Publish);
    }
    if path == "/metrics" {
        return Some(Scope::Admin);
    }
    if *method == Method::POST {
        return Some(Scope::Admin);
    }
    Some(Scope::Read)
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether anyone may read: no token was ever made, or the site is public.
fn open_to_readers(state: &SharedState, access: &Access) -> bool {
    !access.issued || state.config.server.public
}

/// The scope and hash of the viewer token a request presents, if it is in force.
fn viewer_credential(
    headers: &HeaderMap,
    active: &std::collections::HashMap<String, Scope>,
) -> Option<(String, Scope)> {
    let token = bearer(headers).or_else(|| session::cookie(headers, LOGIN_COOKIE))?;
    let hash = tokens::hash(token);
    active.get(&hash).map(|scope| (hash, *scope))
}

async fn viewer_gate(state: &SharedState, mut request: Request, next: Next, api: bool) -> Response {
    let path = request.uri().path().to_string();
    let headers = request.headers();
    let by_cookie = bearer(headers).is_none() && session::cookie(headers, LOGIN_COOKIE).is_some();
    if !is_safe(request.method()) && !policy::same_origin(headers, &state.viewer_origins, by_cookie)
    {
        return refuse(
            api,
            StatusCode::FORBIDDEN,
            "cross-origin request refused: this changes state only from the viewer's own pages",
        );
    }
    // Docs are on an origin of their own: send docs URLs there, with a ticket for a
    // session if reading needs a token.
    if let Some(docs) = &state.docs
        && is_docs_path(&path)
        && is_safe(request.method())
    {
        let wanted = path_and_query(&request);
        let access = match state.access().await {
            Ok(access) => access,
            Err(error) => return token_store_failed(&error),
        };
        if open_to_readers(state, &access) {
            return Redirect::temporary(&format!("{}{wanted}", docs.origin)).into_response();
        }
        return match viewer_credential(request.headers(), &access.active) {
            Some((hash, _)) => Redirect::temporary(&format!(
                "{}/-/session?ticket={}&next={}",
                docs.origin,
                state.signer.ticket(&hash),
                encode(&wanted)
            ))
            .into_response(),
            None => pages::unauthorized(Some(&wanted)),
        };
    }
    let Some(needed) = required_scope(request.method(), &path) else {
        return next.run(request).await;
    };
    // A scraper may hold the metrics token alone; once one is set, metrics need it
    // or an admin token.
    let metrics_token = state.config.server.metrics_token.as_deref();
    if path == "/metrics"
        && let Some(expected) = metrics_token
    {
        let headers = request.headers();
        let presented = bearer(headers).or_else(|| session::cookie(headers, LOGIN_COOKIE));
        if presented.is_some_and(|token| tokens::hash(token) == tokens::hash(expected)) {
            return next.run(request).await;
        }
    }
    let access = match state.access().await {
        Ok(access) => access,
        Err(error) => return token_store_failed(&error),
    };
    // Until a first token is made the site is open; not `/metrics` once it has a
    // token of its own.
    let metrics_guarded = path == "/metrics" && metrics_token.is_some();
    if !access.issued && !metrics_guarded {
        request.extensions_mut().insert(Visitor::default());
        return next.run(request).await;
    }
    let credential = viewer_credential(request.headers(), &access.active);
    if needed == Scope::Read && state.config.server.public {
        // A public site: anyone reads; a token in force still shows who is asking.
        request.extensions_mut().insert(Visitor {
            scope: credential.map(|(_, scope)| scope),
            guarded: true,
        });
        return next.run(request).await;
    }
    match credential {
        Some((_, scope)) if scope >= needed => {
            request.extensions_mut().insert(Visitor {
                scope: Some(scope),
                guarded: true,
            });
            next.run(request).await
        }
        Some(_) => refuse(
            api,
            StatusCode::FORBIDDEN,
            &format!("this token's scope does not allow this; it needs `{needed:?}`")
                .to_lowercase(),
        ),
        None if api => {
            let mut response = refuse(api, StatusCode::UNAUTHORIZED, "a token is needed");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
        None => {
            let wanted = (request.method() == Method::GET).then(|| path_and_query(&request));
            pages::unauthorized(wanted.as_deref())
        }
    }
}

#[derive(serde::Deserialize)]
pub struct SessionQuery {
    #[serde(default)]
    ticket: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    retry: Option<String>,
}

async fn docs_gate(state: &SharedState, request: Request, next: Next, api: bool) -> Response {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return refuse(
            api,
            StatusCode::METHOD_NOT_ALLOWED,
            "the docs origin only serves docs",
        );
    }
    let path = request.uri().path().to_string();
    if path == "/-/session" {
        let query = Query::<SessionQuery>::try_from_uri(request.uri()).ok();
        return docs_landing(state, query.map(|q| q.0)).await;
    }
    if path.starts_with("/-/static/") {
        return next.run(request).await;
    }
    let wanted = path_and_query(&request);
    if !is_docs_path(&path) {
        return Redirect::temporary(&format!("{}{wanted}", state.viewer_base)).into_response();
    }
    let access = match state.access().await {
        Ok(access) => access,
        Err(error) => return token_store_failed(&error),
    };
    if open_to_readers(state, &access) {
        return next.run(request).await;
    }
    let active = &access.active;
    let headers = request.headers();
    let scope = match bearer(headers) {
        Some(token) => active.get(&tokens::hash(token)).copied(),
        None => session::cookie(headers, DOCS_COOKIE)
            .and_then(|value| state.signer.check_docs_session(value, active))
            .map(|(_, scope)| scope),
    };
    if scope.is_some() {
        return next.run(request).await;
    }
    // Every scope reads; a session is had from the viewer, where the reader logs in.
    Redirect::temporary(&format!(
        "{}/-/docs-session?next={}",
        state.viewer_base,
        encode(&wanted)
    ))
    .into_response()
}

/// `/-/session?ticket=…&next=…` on the docs origin: the ticket becomes the docs
/// origin's own session cookie.
async fn docs_landing(state: &SharedState, query: Option<SessionQuery>) -> Response {
    let Some(docs) = &state.docs else {
        return pages::nothing_here();
    };
    let query = query.unwrap_or(SessionQuery {
        ticket: String::new(),
        next: String::new(),
        retry: None,
    });
    let next = local_path(&query.next).unwrap_or("/").to_string();
    let access = match state.access().await {
        Ok(access) => access,
        Err(error) => return token_store_failed(&error),
    };
    if open_to_readers(state, &access) {
        return Redirect::to(&next).into_response();
    }
    let Some((hash, _)) = state.signer.check_ticket(&query.ticket, &access.active) else {
        return pages::expired(&format!(
            "{}/-/docs-session?next={}",
            state.viewer_base,
            encode(&next)
        ));
    };
    let mut response = Redirect::to(&next).into_response();
    let headers = response.headers_mut();
    if let Some(cookie) = session::set_cookie(
        DOCS_COOKIE,
        &state.signer.docs_session(&hash),
        "/",
        // Sent on the navigation from the viewer, which is another site.
        "Lax",
        session::DOCS_SESSION_SECONDS,
        docs.secure,
    ) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `/-/docs-session?next=…` on the viewer: a ticket for the docs origin, for a
/// reader logged in here.
pub async fn docs_session(
    State(state): State<SharedState>,
    Extension(site): Extension<Site>,
    Query(query): Query<SessionQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(docs) = state.docs.as_ref().filter(|_| site == Site::Viewer) else {
        return pages::nothing_here();
    };
    let next = local_path(&query.next).unwrap_or("/").to_string();
    let access = match state.access().await {
        Ok(access) => access,
        Err(error) => return token_store_failed(&error),
    };
    if open_to_readers(&state, &access) {
        return Redirect::to(&format!("{}{next}", docs.origin)).into_response();
    }
    let here = format!("/-/docs-session?next={}", encode(&next));
    match viewer_credential(&headers, &access.active) {
        Some((hash, _)) => {
            let mut response = Redirect::to(&format!(
                "{}/-/session?ticket={}&next={}",
                docs.origin,
                state.signer.ticket(&hash),
                encode(&next)
            ))
            .into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        // Coming from the docs origin, another site, the browser kept back the
        // `SameSite=Strict` login cookie; a navigation from this origin sends it.
        None if query.retry.is_none() => pages::refresh(&format!("{here}&retry=1")),
        None => pages::unauthorized(Some(&here)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_paths_and_the_viewers_are_told_apart() {
        for docs in [
            "/serde",
            "/serde/",
            "/serde/1.0.0/serde/",
            "/serde/latest/serde/de/index.html",
            "/serde/1.0.0/static.files/main.js",
        ] {
            assert!(is_docs_path(docs), "{docs}");
        }
        for viewer in [
            "/",
            "/-/login",
            "/-/static/docbuild.js",
            "/crate/serde/1.0.0",
            "/crate/serde/1.0.0/source/src/lib.rs",
            "/crate/serde/latest/download",
            "/api/v1/builds",
            "/releases/queue",
            "/serde/badge.svg",
            "/metrics",
        ] {
            assert!(!is_docs_path(viewer), "{viewer}");
        }
    }

    #[test]
    fn the_bearer_scheme_is_any_case() {
        let mut headers = HeaderMap::new();
        for value in ["Bearer abc", "bearer abc", "BEARER  abc "] {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(bearer(&headers), Some("abc"), "{value}");
        }
        for value in ["Basic abc", "Bearer", "Bearerabc"] {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(bearer(&headers), None, "{value}");
        }
    }
}
