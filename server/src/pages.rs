//! The viewer's own pages: the crate list, a crate version's build page, logs, the
//! login form and errors. Plain HTML; the only script is a static file.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::session::{self, CSRF_COOKIE, LOGIN_COOKIE, encode, local_path};
use crate::{SharedState, policy};

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

/// The answer to a request without a valid token; the login link returns to `next`.
pub fn unauthorized(next: Option<&str>) -> Response {
    let login = match next.and_then(local_path) {
        Some(next) => format!("/-/login?next={}", encode(next)),
        None => "/-/login".to_string(),
    };
    let mut response = html(
        StatusCode::UNAUTHORIZED,
        page(
            "Token needed",
            &format!(
                "<h1>Token needed</h1><p>These docs are private. \
                 <a id=\"login\" href=\"{}\">Log in with a token</a>.</p>",
                escape(&login)
            ),
        ),
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// A signed link that is no longer good: start again from `retry`.
pub fn expired(retry: &str) -> Response {
    html(
        StatusCode::FORBIDDEN,
        page(
            "Link expired",
            &format!(
                "<h1>Link expired</h1><p>This link is no longer valid. \
                 <a href=\"{}\">Try again</a>.</p>",
                escape(retry)
            ),
        ),
    )
}

/// A page that goes on to `url` (a path of this origin) at once, as a navigation
/// of this origin's own.
pub fn refresh(url: &str) -> Response {
    let url = escape(url);
    let mut response = html(
        StatusCode::OK,
        page(
            "One moment",
            &format!("<p><a href=\"{url}\">Continue</a></p>"),
        ),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("0; url={url}")) {
        response.headers_mut().insert("refresh", value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
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
    let crates = state.catalog.crates().await.unwrap_or_default();
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
    let release = state.catalog.resolve(&name, &version).await.ok().flatten();
    let builds = state
        .catalog
        .builds(&name, &version)
        .await
        .unwrap_or_default();
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
    match state.catalog.log(&name, &version, id).await {
        // What a build printed: never run as anything.
        Some(log) => (
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

#[derive(serde::Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: String,
}

fn login_page(status: StatusCode, message: &str, csrf: &str, next: &str) -> Response {
    html(
        status,
        page(
            "Log in",
            &format!(
                "<h1>Log in</h1>{message}<form method=\"post\" action=\"/-/login\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <input type=\"hidden\" name=\"next\" value=\"{}\">\
                 <label>Token <input name=\"token\" type=\"password\" autocomplete=\"off\" required></label>\
                 <button type=\"submit\">Log in</button></form>",
                escape(csrf),
                escape(next)
            ),
        ),
    )
}

/// The login form, with a CSRF token that its cookie repeats.
pub async fn login_form(
    State(state): State<SharedState>,
    Query(query): Query<LoginQuery>,
) -> Response {
    let csrf = match session::random_hex(16) {
        Ok(csrf) => csrf,
        Err(error) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response();
        }
    };
    let next = local_path(&query.next).unwrap_or("/");
    let mut response = login_page(StatusCode::OK, "", &csrf, next);
    if let Some(cookie) = session::set_cookie(
        CSRF_COOKIE,
        &csrf,
        "/-/login",
        "Strict",
        3600,
        state.secure_cookies,
    ) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    token: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

pub async fn login(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = session::cookie(&headers, CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !session::same_secret(expected, &form.csrf) {
        return html(
            StatusCode::FORBIDDEN,
            page(
                "Log in",
                "<h1>Log in</h1><p>This form has expired or did not come from this site.</p>\
                 <p><a href=\"/-/login\">Try again</a></p>",
            ),
        );
    }
    let token = form.token.trim().to_string();
    let valid = state.tokens.check(&token).await.ok().flatten().is_some();
    let next = local_path(&form.next).unwrap_or("/");
    if !valid || !token.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return login_page(
            StatusCode::UNAUTHORIZED,
            "<p>That token is not valid.</p>",
            &form.csrf,
            next,
        );
    }
    let mut response = Redirect::to(next).into_response();
    let headers = response.headers_mut();
    for cookie in [
        session::set_cookie(
            LOGIN_COOKIE,
            &token,
            "/",
            "Strict",
            2_592_000,
            state.secure_cookies,
        ),
        session::set_cookie(
            CSRF_COOKIE,
            "",
            "/-/login",
            "Strict",
            0,
            state.secure_cookies,
        ),
    ]
    .into_iter()
    .flatten()
    {
        headers.append(header::SET_COOKIE, cookie);
    }
    response
}

pub async fn logout_form() -> Response {
    html(
        StatusCode::OK,
        page(
            "Log out",
            "<h1>Log out</h1><form method=\"post\" action=\"/-/logout\">\
             <button type=\"submit\">Log out</button></form>",
        ),
    )
}

/// Forgets the login cookie.
pub async fn logout(State(state): State<SharedState>) -> Response {
    let mut response = Redirect::to("/").into_response();
    if let Some(cookie) =
        session::set_cookie(LOGIN_COOKIE, "", "/", "Strict", 0, state.secure_cookies)
    {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}
