//! The viewer's own pages, as maud templates: everything a crate, a registry or a
//! build wrote is escaped by the template, and a README is sanitised (`readme`).
//! One layout and one stylesheet (`assets/docbuild.css`, light and dark).

pub mod changes;
pub mod items;
pub mod krate;
pub mod lists;
pub mod readme;
pub mod source;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use docbuild_store::tokens::Scope;
use maud::{DOCTYPE, Markup, html};

use crate::policy;

/// Who is asking, as the gate found out: put in each viewer request's extensions.
#[derive(Debug, Clone, Copy, Default)]
pub struct Visitor {
    /// The scope of the token presented, if one in force was.
    pub scope: Option<Scope>,
    /// Tokens guard this site: pages offer login and logout.
    pub guarded: bool,
}

/// Read from the request; a request the gate did not mark is treated as an
/// anonymous reader of a guarded site, who may change nothing.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Visitor>()
            .copied()
            .unwrap_or(Visitor {
                scope: None,
                guarded: true,
            }))
    }
}

impl Visitor {
    /// May change the queue: an admin token, or a site without tokens.
    pub fn is_admin(&self) -> bool {
        !self.guarded || self.scope == Some(Scope::Admin)
    }
}

/// A whole page: `title`, the bar with search and the visitor's login, and `body`.
pub fn layout(title: &str, visitor: &Visitor, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · docbuild" }
                link rel="stylesheet" href="/-/static/docbuild.css";
                script src="/-/static/docbuild.js" defer {}
            }
            body.docbuild-page {
                header.topbar {
                    a.brand href="/" { "docbuild" }
                    form.search action="/" method="get" role="search" {
                        input #crate-search name="q" type="search"
                            placeholder="Search crates by name, description or keyword"
                            aria-label="Search crates";
                    }
                    nav {
                        a href="/-/search" { "Items" }
                        a href="/releases/queue" { "Queue" }
                        @if visitor.guarded {
                            @if visitor.scope.is_some() {
                                form.logout method="post" action="/-/logout" {
                                    button #logout type="submit" { "Log out" }
                                }
                            } @else {
                                a #login href="/-/login" { "Log in" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page of the viewer's, under its strict policy.
pub fn respond(status: StatusCode, page: Markup) -> Response {
    let mut response = (status, page).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy::VIEWER_PAGE),
    );
    response
}

/// A 404 page of the viewer's.
pub fn not_found(visitor: &Visitor, body: Markup) -> Response {
    respond(StatusCode::NOT_FOUND, layout("Not found", visitor, body))
}

/// The page for a store that could not answer.
pub fn error_page(visitor: &Visitor, message: &str) -> Response {
    tracing::error!(%message, "a page could not be made");
    respond(
        StatusCode::INTERNAL_SERVER_ERROR,
        layout(
            "Error",
            visitor,
            html! { h1 { "Something went wrong" } p { "The store could not answer: " (message) } },
        ),
    )
}

/// An outcome or a job's state as a coloured label.
pub fn outcome_label(outcome: &str) -> Markup {
    let state = match outcome {
        "success" => "is-ok",
        "queued" | "running" => "is-pending",
        _ => "is-failed",
    };
    html! { span class={ "outcome " (state) " outcome-" (outcome) } { (outcome) } }
}

/// Characters a URL path segment may hold as they are; all else is percent-encoded.
fn keep_in_segment(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'*')
}

/// `text` as one URL path segment (a version requirement such as `^1.2, <2`).
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if keep_in_segment(byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A Unix time as RFC 3339, for `<time datetime>`.
pub fn iso(seconds: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// A Unix time as a UTC date, `2026-11-30`.
pub fn date(seconds: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds.max(0) as u64);
    let text = humantime::format_rfc3339_seconds(time).to_string();
    text.get(..10).unwrap_or(&text).to_string()
}

/// A Unix time as a UTC date and time, `2026-11-30 13:25 UTC`.
pub fn date_time(seconds: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds.max(0) as u64);
    let text = humantime::format_rfc3339_seconds(time).to_string();
    match (text.get(..10), text.get(11..16)) {
        (Some(day), Some(clock)) => format!("{day} {clock} UTC"),
        _ => text,
    }
}

/// A span of seconds as people say it: `45 s`, `3 min 20 s`, `2 h 5 min`, `3 days`.
pub fn span(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} days", s / 86400),
    }
}

/// How long ago a Unix time was.
pub fn ago(seconds: i64) -> String {
    format!("{} ago", span(now() - seconds))
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Bytes as KiB, MiB or GiB.
pub fn size(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
        _ => format!("{:.2} GiB", bytes as f64 / 1_073_741_824.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_sizes_read_as_people_write_them() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date_time(1_796_045_139), "2026-11-30 13:25 UTC");
        assert_eq!(span(200), "3 min 20 s");
        assert_eq!(span(7500), "2 h 5 min");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(segment("^1.2, <2"), "%5E1.2%2C%20%3C2");
    }
}
