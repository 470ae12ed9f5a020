//! rustdoc's pages under docs.rs's URL scheme:
//!
//! - `/{name}`, `/{name}/latest/…`, `/{name}/{requirement}/…` redirect to the exact
//!   version (names match with `-` and `_` alike);
//! - `/{name}/{version}/{lib_name}/…` serves the default target's docs,
//!   `/{name}/{version}/{target}/{lib_name}/…` another target's; a URL that spells
//!   out the default target redirects to the one without it;
//! - rustdoc's `static.files/` are served from the build's root `static.files/`,
//!   which the worker made from the toolchain (never the build's own);
//! - every file is sent with a policy for its kind (`files::respond`): pages may run
//!   docbuild's scripts only, anything else from a build runs nothing;
//! - a page missing in this version is a 404 linking to the crate's root.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use std::sync::Arc;

use maud::html;

use crate::SharedState;
use crate::catalog::{Release, VersionWithoutDocs};
use crate::files::{CachePolicy, Source, StoredFile, respond, safe_segments};
use crate::views::{self, Visitor, krate::docs_missing};

/// A page this version's docs lack: 404, linking to the docs' root.
fn not_in_docs(visitor: &Visitor, release: &Release, what: &str) -> axum::response::Response {
    views::not_found(
        visitor,
        html! {
            h1 { "Not found" }
            p { code { (what) } " is not in the docs of " (release.name) " " (release.version.to_string()) "." }
            p { a href=(release_root(release)) { "Go to the crate's root" } }
        },
    )
}

/// Kept in memory after the first request for a crate, so no blocking work remains
/// on the hot path.
async fn resolve(state: &SharedState, name: &str, version: &str) -> Option<Arc<Release>> {
    state.catalog.resolve(name, version).await.ok().flatten()
}

/// A file of a release's stored docs, by its path below the docs' root.
async fn load(state: &SharedState, release: &Release, path: &str) -> Option<StoredFile> {
    let store = state.catalog.store();
    let manifest = release.manifest(store).await?;
    let entry = manifest.files.get(path)?;
    let bytes = docbuild_store::archive::load(store.builds().blobs(), entry)
        .await
        .map_err(|error| tracing::error!(build = release.build, path, %error, "cannot read a stored file"))
        .ok()?;
    Some(StoredFile {
        bytes,
        encoding: entry.encoding,
        hash: entry.hash.clone(),
    })
}

/// Whether `dir/index.html` is in a release's docs.
async fn has_index(state: &SharedState, release: &Release, dir: &str) -> bool {
    let Some(manifest) = release.manifest(state.catalog.store()).await else {
        return false;
    };
    manifest.files.contains_key(&format!("{dir}/index.html"))
}

fn release_root(release: &Release) -> String {
    match release.lib_name() {
        Some(lib) => format!("/{}/{}/{lib}/", release.name, release.version),
        None => format!("/crate/{}/{}", release.name, release.version),
    }
}

pub async fn crate_root(
    State(state): State<SharedState>,
    visitor: Visitor,
    Path(name): Path<String>,
) -> Response {
    match resolve(&state, &name, "latest").await {
        Some(release) => Redirect::temporary(&release_root(&release)).into_response(),
        None => docs_missing(&state, &visitor, &name, "latest").await,
    }
}

pub async fn version_root(
    State(state): State<SharedState>,
    visitor: Visitor,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    match resolve(&state, &name, &version).await {
        Some(release) => Redirect::temporary(&release_root(&release)).into_response(),
        None => docs_missing(&state, &visitor, &name, &version).await,
    }
}

pub async fn file(
    State(state): State<SharedState>,
    visitor: Visitor,
    Path((name, version, path)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(segments) = safe_segments(&path) else {
        return (StatusCode::BAD_REQUEST, "invalid path\n").into_response();
    };
    let Some(release) = resolve(&state, &name, &version).await else {
        return docs_missing(&state, &visitor, &name, &version).await;
    };
    // Names and versions in URLs are canonical: redirect anything else.
    let exact = release.version.to_string();
    if release.name != name || exact != version {
        let target = format!("/{}/{exact}/{path}", release.name);
        return Redirect::temporary(&target).into_response();
    }
    let default_target = release.default_target().unwrap_or_default().to_string();
    if segments.first() == Some(&default_target.as_str()) {
        let rest = segments[1..].join("/");
        return Redirect::temporary(&format!("/{name}/{exact}/{rest}")).into_response();
    }
    let others = release.other_targets();
    let (base, rest, target) = match segments.first() {
        Some(first) if others.iter().any(|t| t == first) => {
            (format!("{first}/"), &segments[1..], Some(first.to_string()))
        }
        _ => (String::new(), &segments[..], None),
    };

    // rustdoc's shared files: the toolchain's, at the root of the stored docs.
    if let Some(position) = rest.iter().position(|s| *s == "static.files")
        && position + 2 == rest.len()
    {
        let stored = format!("static.files/{}", rest[position + 1]);
        let key = std::path::PathBuf::from(format!("{}/{stored}", release.build));
        let loaded = load(&state, &release, &stored);
        return match respond(
            state.catalog.cache(),
            key,
            std::path::Path::new(&stored),
            loaded,
            &headers,
            CachePolicy::Immutable,
            Source::Toolchain,
            None,
        )
        .await
        {
            Some(response) => response,
            None => not_in_docs(&visitor, &release, &path),
        };
    }

    let mut stored = format!("{base}{}", rest.join("/"));
    if path.ends_with('/') || rest.is_empty() {
        if !stored.is_empty() && !stored.ends_with('/') {
            stored.push('/');
        }
        stored.push_str("index.html");
    }
    // The bar is made only when the page is not cached yet, from the releases in
    // memory (`resolve` just read them).
    let without_docs = state
        .catalog
        .without_docs(&release.name)
        .await
        .unwrap_or_default();
    let rewrite = |html: &str| {
        let key = crate::catalog::normalize(&release.name);
        let releases = state.catalog.cache().releases(&key).unwrap_or_default();
        TopBar::new(
            &state,
            &releases,
            &without_docs,
            &release,
            target.as_deref(),
        )
        .insert(html)
    };
    let key = std::path::PathBuf::from(format!("{}/{stored}", release.build));
    if let Some(response) = respond(
        state.catalog.cache(),
        key,
        std::path::Path::new(&stored),
        load(&state, &release, &stored),
        &headers,
        CachePolicy::Revalidate,
        Source::Build,
        Some(&rewrite),
    )
    .await
    {
        return response;
    }
    // A directory without its trailing slash, as rustdoc's relative links need it.
    if !path.ends_with('/') && has_index(&state, &release, &stored).await {
        return Redirect::permanent(&format!("/{name}/{exact}/{path}/")).into_response();
    }
    not_in_docs(&visitor, &release, &path)
}

/// The thin bar over rustdoc's pages: crate, version picker, target picker. It is
/// fixed to the top, and the page is shifted below it, so rustdoc's own layout is
/// left as it is.
struct TopBar {
    head: String,
    body: String,
}

impl TopBar {
    fn new(
        state: &SharedState,
        releases: &[Arc<Release>],
        without_docs: &[VersionWithoutDocs],
        release: &Release,
        target: Option<&str>,
    ) -> Self {
        let name = &release.name;
        let version = release.version.to_string();
        // Versions with docs open them; the others open their crate page, which says
        // why there are none.
        let mut versions: Vec<(&semver::Version, String, Option<&str>)> = releases
            .iter()
            .map(|r| (&r.version, release_root(r), None))
            .chain(without_docs.iter().map(|v| {
                (
                    &v.version,
                    format!("{}/crate/{name}/{}", state.viewer_base, v.version),
                    Some(v.state.as_str()),
                )
            }))
            .collect();
        versions.sort_by(|a, b| b.0.cmp(a.0));
        let lib = release.lib_name().unwrap_or_default();
        // With docs on an origin of their own, the viewer's pages are on the other.
        let viewer = &state.viewer_base;
        let default_target = release.default_target().unwrap_or("default");
        let bar = html! {
            nav #docbuild-bar {
                a href={ (viewer) "/" } { "docbuild" }
                a href={ (viewer) "/crate/" (name) "/" (version) } { (name) }
                select #docbuild-version .docbuild-picker aria-label="Version" {
                    @for (v, url, state) in &versions {
                        @let v = v.to_string();
                        option value=(url) selected[v == version] {
                            (v) @if let Some(state) = state { " (" (state) ")" }
                        }
                    }
                }
                select #docbuild-target .docbuild-picker aria-label="Target" {
                    option value={ "/" (name) "/" (version) "/" (lib) "/" } selected[target.is_none()] { (default_target) }
                    @for other in release.other_targets() {
                        option value={ "/" (name) "/" (version) "/" (other) "/" (lib) "/" } selected[Some(other.as_str()) == target] { (other) }
                    }
                }
                a.docbuild-crate-page href={ (viewer) "/crate/" (name) "/" (version) "/source/" } { "Source" }
            }
        };
        Self {
            head: html! {
                link rel="stylesheet" href="/-/static/docbuild.css";
                script src="/-/static/docbuild.js" defer {}
            }
            .into_string(),
            body: bar.into_string(),
        }
    }

    /// The page with the bar over it, or `None` if `html` is no page (no head and
    /// body to put it in).
    fn insert(&self, html: &str) -> Option<String> {
        let head = html.find("</head>")?;
        let body = html
            .find("<body")
            .and_then(|start| html[start..].find('>').map(|end| start + end + 1))?;
        if head > body {
            return None;
        }
        let mut out = String::with_capacity(html.len() + self.head.len() + self.body.len());
        out.push_str(&html[..head]);
        out.push_str(&self.head);
        out.push_str(&html[head..body]);
        out.push_str(&self.body);
        out.push_str(&html[body..]);
        Some(out)
    }
}
