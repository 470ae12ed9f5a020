//! The viewer's pages around access and errors: login, logout, the answer to a
//! request without a token, expired links, and the static assets. Everything a crate
//! has is in `views`.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use crate::session::{self, CSRF_COOKIE, LOGIN_COOKIE, encode, local_path};
use crate::views::{Visitor, layout, respond};
use crate::{SharedState, policy};

const CSS: &str = include_str!("assets/docbuild.css");
const JS: &str = include_str!("assets/docbuild.js");

/// Who sees the pages of this module: nobody logged in, on a site with tokens.
const ANONYMOUS: Visitor = Visitor {
    scope: None,
    guarded: true,
};

fn page(status: StatusCode, title: &str, body: Markup) -> Response {
    respond(status, layout(title, &ANONYMOUS, body))
}

/// A 404 page for a path of the viewer's that holds nothing.
pub fn nothing_here() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        html! { h1 { "Not found" } p { "There is nothing here." } p { a href="/" { "Search crates" } } },
    )
}

/// The fallback: a path the viewer has nothing at.
pub async fn not_found_page(visitor: Visitor) -> Response {
    crate::views::not_found(
        &visitor,
        html! { h1 { "Not found" } p { "There is nothing here." } p { a href="/" { "Search crates" } } },
    )
}

/// The answer to a request without a valid token; the login link returns to `next`.
pub fn unauthorized(next: Option<&str>) -> Response {
    let login = match next.and_then(local_path) {
        Some(next) => format!("/-/login?next={}", encode(next)),
        None => "/-/login".to_string(),
    };
    let mut response = page(
        StatusCode::UNAUTHORIZED,
        "Token needed",
        html! {
            h1 { "Token needed" }
            p { "These docs are private. " a #login-link href=(login) { "Log in with a token" } "." }
        },
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// A signed link that is no longer good: start again from `retry`.
pub fn expired(retry: &str) -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Link expired",
        html! {
            h1 { "Link expired" }
            p { "This link is no longer valid. " a href=(retry) { "Try again" } "." }
        },
    )
}

/// A page that goes on to `url` (a path of this origin) at once, as a navigation
/// of this origin's own.
pub fn refresh(url: &str) -> Response {
    let mut response = page(
        StatusCode::OK,
        "One moment",
        html! { p { a href=(url) { "Continue" } } },
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
        _ => return nothing_here(),
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
        _ => page(
            StatusCode::NOT_FOUND,
            "Not found",
            html! {
                h1 { "Not found" }
                p { "No log of build #" (id) " of " code { (name) " " (version) } "." }
                p { a href={ "/crate/" (name) "/" (version) } { "The crate's page" } }
            },
        ),
    }
}

#[derive(serde::Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: String,
}

fn login_page(status: StatusCode, message: Option<&str>, csrf: &str, next: &str) -> Response {
    page(
        status,
        "Log in",
        html! {
            div.login {
                h1 { "Log in" }
                @if let Some(message) = message { p.error { (message) } }
                form #login-form method="post" action="/-/login" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="next" value=(next);
                    label for="token" { "Access token" }
                    input #token name="token" type="password" autocomplete="off" required autofocus;
                    button type="submit" { "Log in" }
                }
                p.hint { "A token comes from " code { "docbuild token create" } ", run by whoever runs this server." }
            }
        },
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
    let mut response = login_page(StatusCode::OK, None, &csrf, next);
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
        return page(
            StatusCode::FORBIDDEN,
            "Log in",
            html! {
                h1 { "Log in" }
                p { "This form has expired or did not come from this site." }
                p { a href="/-/login" { "Try again" } }
            },
        );
    }
    let token = form.token.trim().to_string();
    let valid = state.tokens.check(&token).await.ok().flatten().is_some();
    let next = local_path(&form.next).unwrap_or("/");
    if !valid || !token.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("That token is not valid."),
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

pub async fn logout_form(visitor: Visitor) -> Response {
    respond(
        StatusCode::OK,
        layout(
            "Log out",
            &visitor,
            html! {
                h1 { "Log out" }
                form method="post" action="/-/logout" { button type="submit" { "Log out" } }
            },
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
