//! The docbuild viewer and API over the builds that workers store: docs.rs-style URLs,
//! build pages and logs, and access tokens.
//!
//! Requests pass gates before any handler (`origins`): the `Host` must be one this
//! server answers to (no DNS rebinding), and names the origin asked for, the
//! viewer's or, with `[server] docs-url`, the docs'; a state-changing request must
//! come from the viewer's own pages; and, once a first token has been made (revoked
//! or not), a valid token of a sufficient scope is needed (bearer header, or the
//! cookie the login form sets), except for reading on a site with
//! `[server] public = true`.

mod api;
mod apis;
mod cache;
pub mod catalog;
mod docs;
mod download;
mod files;
mod listen;
pub mod metrics;
mod origins;
mod pages;
mod policy;
mod rustdoc_json;
mod scripts;
mod session;
mod views;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{any, get, post};
use docbuild_builder::config::{Config, DataDir, url_origin};
use docbuild_builder::queue::Queue;

use crate::catalog::Catalog;
use crate::listen::Limits;
use crate::origins::DocsOrigin;
use crate::session::Signer;
use docbuild_store::tokens::{self, Access, Tokens};

/// Shared by every request.
pub struct AppState {
    pub catalog: Catalog,
    /// Builds' APIs read from their rustdoc JSON, for item search and diffs.
    pub apis: apis::ApiIndex,
    /// For admin operations (a cache; never read by the viewer).
    pub data: DataDir,
    pub queue: Queue,
    pub tokens: Tokens,
    pub config: Config,
    /// `Host` header values the viewer answers to.
    allowed_hosts: Vec<String>,
    /// `Origin` values of the viewer's own pages.
    viewer_origins: Vec<String>,
    /// Where the viewer's pages are, as seen from the docs origin (empty without one).
    viewer_base: String,
    /// The docs' own origin, if they have one.
    docs: Option<DocsOrigin>,
    /// Cookies are `Secure` when the viewer is reached over https.
    secure_cookies: bool,
    signer: Signer,
    limits: Limits,
    metrics: metrics::HttpMetrics,
}

pub type SharedState = Arc<AppState>;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, #[source] std::io::Error),
    #[error("cannot make a signing key: {0}")]
    Random(#[source] std::io::Error),
    #[error("[server] in docbuild.toml: {0}")]
    Config(String),
}

impl AppState {
    /// The viewer over `store`, listening on `listen`.
    pub fn new(
        store: docbuild_store::Store,
        data: DataDir,
        config: Config,
        listen: SocketAddr,
    ) -> Result<Self, ServeError> {
        let queue = store.queue();
        let tokens = store.tokens();
        let port = listen.port();
        let mut allowed_hosts = vec![
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
            listen.to_string(),
        ];
        let mut viewer_origins: Vec<String> = allowed_hosts
            .iter()
            .map(|h| format!("http://{h}"))
            .collect();
        let viewer_url = match &config.server.url {
            Some(url) => {
                let host = url
                    .split("://")
                    .nth(1)
                    .unwrap_or(url)
                    .split('/')
                    .next()
                    .unwrap_or_default();
                allowed_hosts.push(host.to_string());
                let origin = url_origin(url).ok();
                viewer_origins.extend(origin.clone());
                origin
            }
            None => None,
        };
        let docs = match &config.server.docs_url {
            Some(url) => Some(DocsOrigin::new(url).map_err(ServeError::Config)?),
            None => None,
        };
        if let Some(docs) = &docs
            && allowed_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(docs.host()))
        {
            return Err(ServeError::Config(format!(
                "docs-url `{}` must name another host than the viewer's",
                docs.origin()
            )));
        }
        let viewer_base = match &docs {
            None => String::new(),
            Some(_) => viewer_url.clone().unwrap_or_else(|| {
                if listen.ip().is_unspecified() {
                    format!("http://localhost:{port}")
                } else {
                    format!("http://{listen}")
                }
            }),
        };
        let secure_cookies = viewer_url.is_some_and(|url| url.starts_with("https://"));
        let limits = Limits::from_config(&config.server);
        Ok(Self {
            catalog: Catalog::new(store),
            apis: Default::default(),
            data,
            queue,
            tokens,
            config,
            allowed_hosts,
            viewer_origins,
            viewer_base,
            docs,
            secure_cookies,
            signer: Signer::new().map_err(ServeError::Random)?,
            limits,
            metrics: Default::default(),
        })
    }

    /// The tokens in force, by hash, and whether any was ever made, from memory when
    /// the database has not changed.
    async fn access(&self) -> Result<Arc<Access>, tokens::TokenError> {
        let cache = self.catalog.cache();
        if let Some(access) = cache.tokens() {
            return Ok(access);
        }
        let access = Arc::new(self.tokens.access().await?);
        cache.set_tokens(Arc::clone(&access));
        Ok(access)
    }
}

/// The whole application.
pub fn router(state: SharedState) -> Router {
    // The viewer's own pages are small and made per request: compressed on the fly.
    // Docs files are compressed once, in the file cache (see `files::respond`).
    let pages = Router::new()
        .route("/", get(views::lists::front))
        .route("/releases/queue", get(views::lists::queue))
        .route("/-/search", get(views::items::search))
        .route(
            "/crate/{name}/{version}/diff/{other}",
            get(views::changes::diff),
        )
        .route("/-/login", get(pages::login_form).post(pages::login))
        .route("/-/logout", get(pages::logout_form).post(pages::logout))
        .route("/-/docs-session", get(origins::docs_session))
        .route("/-/static/{file}", get(pages::asset))
        .route("/crate/{name}", get(views::krate::crate_latest))
        .route("/crate/{name}/{version}", get(views::krate::crate_page))
        .route(
            "/crate/{name}/{version}/features",
            get(views::krate::features),
        )
        .route("/crate/{name}/{version}/builds", get(views::krate::builds))
        .route(
            "/crate/{name}/{version}/builds/{id}",
            get(views::krate::build_page),
        )
        .route("/crate/{name}/{version}/status.json", get(api::status))
        .route("/crate/{name}/{version}/rebuild", post(api::rebuild))
        .route("/crate/{name}/{version}/delete", post(api::delete_docs))
        .route(
            "/crate/{name}/{version}/builds/{id}/log",
            get(pages::build_log),
        )
        .route("/crate/{name}/{version}/source", get(views::source::bare))
        .route("/crate/{name}/{version}/source/", get(views::source::root))
        .route(
            "/crate/{name}/{version}/source/{*path}",
            get(views::source::path),
        )
        .route("/api/v1/builds", post(api::enqueue))
        .route("/api/v1/builds/{id}", get(api::build_status))
        .route("/api/v1/builds/{id}/remove", post(api::remove_build))
        .route("/api/{*rest}", any(api::unknown))
        .route("/{name}/badge.svg", get(api::badge))
        .route("/metrics", get(metrics::metrics))
        .layer(tower_http::compression::CompressionLayer::new());
    Router::new()
        // A zip is compressed already, and streamed with its length: outside `pages`.
        .route("/crate/{name}/{version}/download", get(download::download))
        // rustdoc's JSON is stored gzip and served as stored: outside `pages` too.
        .route("/crate/{name}/{version}/json", get(rustdoc_json::json))
        .route(
            "/crate/{name}/{version}/json.gz",
            get(rustdoc_json::json_gz),
        )
        .route(
            "/crate/{name}/{version}/json.zst",
            get(rustdoc_json::json_zst),
        )
        .route(
            "/crate/{name}/{version}/{target}/json",
            get(rustdoc_json::json),
        )
        .route(
            "/crate/{name}/{version}/{target}/json.gz",
            get(rustdoc_json::json_gz),
        )
        .route(
            "/crate/{name}/{version}/{target}/json.zst",
            get(rustdoc_json::json_zst),
        )
        .route("/{name}", get(docs::crate_root))
        .route("/{name}/", get(docs::crate_root))
        .route("/{name}/{version}", get(docs::version_root))
        .route("/{name}/{version}/", get(docs::version_root))
        .route("/{name}/{version}/{*path}", get(docs::file))
        .merge(pages)
        .fallback(pages::not_found_page)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            origins::guard,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// Serves until the process ends, within the limits of `[server]`.
pub async fn serve(state: AppState, listen: SocketAddr) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| ServeError::Listen(listen, e))?;
    let limits = state.limits;
    tracing::info!(%listen, ?limits, "serving");
    listen::run(listener, router(Arc::new(state)), limits)
        .await
        .map_err(|e| ServeError::Listen(listen, e))
}
