//! The viewer's own pages: the crate list, a crate version's build page, logs, the
//! login form and errors. Plain HTML; the only script is a static file.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::{SharedState, policy};

/// The cookie the login form sets.
pub const COOKIE: &str = "docbuild_token";

const CSS: &str = include_str!("assets/docbuild.css");
const JS: &str = include_str!("assets/docbuild.js");

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · docbuild</title><link rel=\"stylesheet\" href=\"/-/static/docbuild.css\">\
         <script src=\"/-/static/docbuild.js\" defer></script></head>\
         <body class=\"docbuild-page\"><header><a href=\"/\">docbuild</a></header><main>{body}</main></body></html>",
        escape(title)
    )
}

/// Strict CSP for the viewer's own pages.
fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, Html(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy::VIEWER_PAGE),
    );
    response
}

pub fn not_found(message: &str, link: Option<&str>) -> Response {
    let link = link
        .map(|href| format!("<p><a href=\"{href}\">Go to the crate's root</a></p>"))
        .unwrap_or_default();
    html(
        StatusCode::NOT_FOUND,
        page(
            "Not found",
            &format!("<h1>Not found</h1><p>{message}</p>{link}"),
        ),
    )
}

pub async fn not_found_page() -> Response {
    not_found("There is nothing here.", None)
}

pub fn unauthorized() -> Response {
    let mut response = html(
        StatusCode::UNAUTHORIZED,
        page(
            "Token needed",
            "<h1>Token needed</h1><p>These docs are private. <a href=\"/-/login\">Log in with a token</a>.</p>",
        ),
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "docbuild.css" => (CSS, "text/css; charset=utf-8"),
        "docbuild.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return not_found("No such file.", None),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::CONTENT_SECURITY_POLICY, policy::INERT),
        ],
        body,
    )
        .into_response()
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    q: Option<String>,
}

pub async fn crate_list(
    State(state): State<SharedState>,
    Query(query): Query<ListQuery>,
) -> Response {
    let catalog = state.catalog.clone();
    let crates = tokio::task::spawn_blocking(move || catalog.crates().unwrap_or_default())
        .await
        .unwrap_or_default();
    let filter = query.q.unwrap_or_default().to_lowercase();
    let items: String = crates
        .iter()
        .filter(|(name, _)| name.to_lowercase().contains(&filter))
        .map(|(name, version)| {
            let name = escape(name);
            format!(
                "<li data-name=\"{name}\"><a href=\"/{name}/{version}/\">{name}</a> \
                 <span class=\"version\">{version}</span> <a class=\"build\" href=\"/crate/{name}/{version}\">build</a></li>",
                version = escape(version)
            )
        })
        .collect();
    let body = format!(
        "<h1>Crates</h1><form action=\"/\" method=\"get\"><input id=\"crate-filter\" name=\"q\" \
         type=\"search\" placeholder=\"Filter crates\" value=\"{}\" autofocus></form>\
         <ul id=\"crate-list\">{items}</ul>{}",
        escape(&filter),
        if crates.is_empty() {
            "<p>No docs built yet.</p>"
        } else {
            ""
        }
    );
    html(StatusCode::OK, page("Crates", &body))
}

pub async fn crate_page(
    State(state): State<SharedState>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    let catalog = state.catalog.clone();
    let (n, v) = (name.clone(), version.clone());
    let (release, builds) = tokio::task::spawn_blocking(move || {
        (
            catalog.resolve(&n, &v).ok().flatten(),
            catalog.builds(&n, &v).unwrap_or_default(),
        )
    })
    .await
    .unwrap_or((None, Vec::new()));
    if builds.is_empty() {
        return not_found(
            &format!(
                "No build of {} {} is known.",
                escape(&name),
                escape(&version)
            ),
            Some(&format!("/{}", escape(&name))),
        );
    }
    let latest = &builds[0];
    let mut body = format!(
        "<h1>{} {}</h1><p class=\"outcome outcome-{outcome}\">Latest build: <strong>{outcome}</strong>{}</p>",
        escape(&name),
        escape(&version),
        latest
            .message
            .as_deref()
            .map(|m| format!(" — {}", escape(m)))
            .unwrap_or_default(),
        outcome = escape(&latest.outcome),
    );
    if let Some(release) = &release {
        let record = release.record.as_ref();
        let lib = release.lib_name().unwrap_or_default();
        body.push_str(&format!(
            "<h2>Docs</h2><ul class=\"targets\"><li><a href=\"/{n}/{v}/{lib}/\">{}</a> (default)</li>",
            escape(release.default_target().unwrap_or("default")),
            n = escape(&release.name),
            v = release.version,
        ));
        for target in release.other_targets() {
            body.push_str(&format!(
                "<li><a href=\"/{n}/{v}/{t}/{lib}/\">{t}</a></li>",
                n = escape(&release.name),
                v = release.version,
                t = escape(target)
            ));
        }
        body.push_str("</ul>");
        if let Some(record) = record {
            if !record.features.is_empty() {
                body.push_str("<h2>Features</h2><ul class=\"features\">");
                for (feature, enables) in &record.features {
                    body.push_str(&format!(
                        "<li><code>{}</code>{}</li>",
                        escape(feature),
                        if enables.is_empty() {
                            String::new()
                        } else {
                            format!(" = {}", escape(&enables.join(", ")))
                        }
                    ));
                }
                body.push_str("</ul>");
            }
            if let Some(size) = record.docs_size_bytes {
                body.push_str(&format!(
                    "<p class=\"docs-size\">Docs size: {} KiB</p>",
                    size / 1024
                ));
            }
        }
    }
    body.push_str("<h2>Builds</h2><table class=\"builds\"><tr><th>Build</th><th>Outcome</th><th>Toolchain</th><th>Duration</th><th>Log</th></tr>");
    for build in &builds {
        body.push_str(&format!(
            "<tr><td>#{id}</td><td class=\"outcome-{o}\">{o}</td><td>{t}</td><td>{d}</td>\
             <td><a href=\"/crate/{n}/{v}/builds/{id}/log\">log</a></td></tr>",
            id = build.id,
            o = escape(&build.outcome),
            t = escape(build.toolchain.as_deref().unwrap_or("")),
            d = build
                .duration_ms
                .map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
                .unwrap_or_default(),
            n = escape(&name),
            v = escape(&version),
        ));
    }
    body.push_str("</table>");
    html(StatusCode::OK, page(&format!("{name} {version}"), &body))
}

pub async fn build_log(
    State(state): State<SharedState>,
    Path((name, version, id)): Path<(String, String, i64)>,
) -> Response {
    let catalog = state.catalog.clone();
    let (n, v) = (name.clone(), version.clone());
    let dir = tokio::task::spawn_blocking(move || catalog.build_dir(&n, &v, id).ok().flatten())
        .await
        .ok()
        .flatten();
    match dir.map(|dir| std::fs::read(dir.join("build.log"))) {
        // What a build printed: never run as anything.
        Some(Ok(log)) => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CONTENT_SECURITY_POLICY, policy::INERT),
            ],
            log,
        )
            .into_response(),
        _ => not_found(
            &format!(
                "No log of build #{id} of {} {}.",
                escape(&name),
                escape(&version)
            ),
            Some(&format!("/crate/{}/{}", escape(&name), escape(&version))),
        ),
    }
}

pub async fn login_form() -> Response {
    html(
        StatusCode::OK,
        page(
            "Log in",
            "<h1>Log in</h1><form method=\"post\" action=\"/-/login\">\
             <label>Token <input name=\"token\" type=\"password\" autocomplete=\"off\" required></label>\
             <button type=\"submit\">Log in</button></form>",
        ),
    )
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    token: String,
}

pub async fn login(State(state): State<SharedState>, Form(form): Form<LoginForm>) -> Response {
    let tokens = state.tokens.clone();
    let token = form.token.trim().to_string();
    let presented = token.clone();
    let valid =
        tokio::task::spawn_blocking(move || tokens.check(&presented).ok().flatten().is_some())
            .await
            .unwrap_or(false);
    if !valid || !token.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return html(
            StatusCode::UNAUTHORIZED,
            page(
                "Log in",
                "<h1>Log in</h1><p>That token is not valid.</p><p><a href=\"/-/login\">Try again</a></p>",
            ),
        );
    }
    let mut response = Redirect::to("/").into_response();
    if let Ok(cookie) = HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000"
    )) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}
