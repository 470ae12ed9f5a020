//! The docbuild viewer and API over the builds that workers store: docs.rs-style URLs,
//! build pages and logs, and access tokens.
//!
//! Requests pass two gates before any handler: the `Host` must be one this server
//! answers to (no DNS rebinding), and, once any token exists, a valid token of a
//! sufficient scope (bearer header, or the cookie the login form sets).

mod api;
mod cache;
pub mod catalog;
mod docs;
mod files;
mod listen;
mod pages;
mod policy;
mod scripts;
pub mod tokens;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use docbuild_builder::config::{Config, DataDir};
use docbuild_builder::queue::Queue;

use crate::catalog::Catalog;
use crate::tokens::{Scope, Tokens};

/// Shared by every request.
pub struct AppState {
    pub catalog: Catalog,
    pub queue: Queue,
    pub tokens: Tokens,
    pub config: Config,
    /// `Host` header values this server answers to.
    allowed_hosts: Vec<String>,
}

pub type SharedState = Arc<AppState>;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Queue(#[from] docbuild_builder::queue::QueueError),
    #[error(transparent)]
    Tokens(#[from] tokens::TokenError),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, #[source] std::io::Error),
}

impl AppState {
    pub fn new(data: DataDir, config: Config, listen: SocketAddr) -> Result<Self, ServeError> {
        let queue = Queue::open(&data.database())?;
        let tokens = Tokens::open(&data.database())?;
        let port = listen.port();
        let mut allowed_hosts = vec![
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
            listen.to_string(),
        ];
        if let Some(url) = &config.server.url {
            let host = url
                .split("://")
                .nth(1)
                .unwrap_or(url)
                .split('/')
                .next()
                .unwrap_or_default();
            allowed_hosts.push(host.to_string());
        }
        Ok(Self {
            catalog: Catalog::new(data),
            queue,
            tokens,
            config,
            allowed_hosts,
        })
    }
}

/// The whole application.
pub fn router(state: SharedState) -> Router {
    // The viewer's own pages are small and made per request: compressed on the fly.
    // Docs files are compressed once, in the file cache (see `files::respond`).
    let pages = Router::new()
        .route("/", get(pages::crate_list))
        .route("/-/login", get(pages::login_form).post(pages::login))
        .route("/-/static/{file}", get(pages::asset))
        .route("/crate/{name}/{version}", get(pages::crate_page))
        .route("/crate/{name}/{version}/status.json", get(api::status))
        .route("/crate/{name}/{version}/rebuild", post(api::rebuild))
        .route(
            "/crate/{name}/{version}/builds/{id}/log",
            get(pages::build_log),
        )
        .route("/api/v1/builds", post(api::enqueue))
        .route("/api/v1/builds/{id}", get(api::build_status))
        .route("/{name}/badge.svg", get(api::badge))
        .layer(tower_http::compression::CompressionLayer::new());
    Router::new()
        .route("/{name}", get(docs::crate_root))
        .route("/{name}/", get(docs::crate_root))
        .route("/{name}/{version}", get(docs::version_root))
        .route("/{name}/{version}/", get(docs::version_root))
        .route("/{name}/{version}/{*path}", get(docs::file))
        .merge(pages)
        .fallback(pages::not_found_page)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Serves until the process ends, within the limits of `[server]`.
pub async fn serve(state: AppState, listen: SocketAddr) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| ServeError::Listen(listen, e))?;
    let limits = listen::Limits::from_config(&state.config.server);
    tracing::info!(%listen, ?limits, "serving");
    listen::run(listener, router(Arc::new(state)), limits)
        .await
        .map_err(|e| ServeError::Listen(listen, e))
}

/// The token a request presents: `Authorization: Bearer …`, or the login cookie.
fn presented_token(headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(&format!("{}=", pages::COOKIE)))
        .map(str::to_string)
}

/// The scope a route needs.
fn required_scope(method: &Method, path: &str) -> Option<Scope> {
    if path == "/-/login" || path.starts_with("/-/static/") {
        return None;
    }
    if *method == Method::POST && path == "/api/v1/builds" {
        return Some(Scope::Publish);
    }
    if *method == Method::POST {
        return Some(Scope::Admin);
    }
    Some(Scope::Read)
}

/// The gate before every handler. It refuses requests for hosts this server does not
/// answer to, so that a page of another site cannot reach it through DNS rebinding.
/// Then, once any token exists, it requires one of a sufficient scope.
async fn guard(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !state
        .allowed_hosts
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(host))
    {
        return (StatusCode::MISDIRECTED_REQUEST, "unknown host\n").into_response();
    }
    let mut response = gate(&state, request, next).await;
    response
        .headers_mut()
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(axum::http::HeaderValue::from_static("nosniff"));
    response
}

/// Then, once any token exists, a token of a sufficient scope.
async fn gate(state: &SharedState, request: Request, next: Next) -> Response {
    let cache = state.catalog.cache();
    cache.refresh();
    let Some(needed) = required_scope(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let active = match cache.tokens() {
        Some(active) => active,
        None => match state.tokens.active() {
            Ok(active) => {
                let active = Arc::new(active);
                cache.set_tokens(Arc::clone(&active));
                active
            }
            Err(error) => {
                return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response();
            }
        },
    };
    if active.is_empty() {
        return next.run(request).await; // no tokens: open
    }
    let scope = presented_token(request.headers())
        .and_then(|token| active.get(&tokens::hash(&token)).copied());
    match scope {
        Some(scope) if scope >= needed => next.run(request).await,
        Some(_) => (
            StatusCode::FORBIDDEN,
            format!("this token's scope does not allow this; it needs `{needed:?}`\n")
                .to_lowercase(),
        )
            .into_response(),
        None => pages::unauthorized(),
    }
}
