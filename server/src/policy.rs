//! What browsers are told about each kind of response: content security policies,
//! and the same-origin check every state-changing request passes.

use axum::http::{HeaderMap, header};

/// rustdoc's pages. Scripts only from this origin, and what this origin serves as a
/// script is docbuild's own: rustdoc's shared `static.files/` (made from the
/// toolchain), the viewer's `/-/static/` files, and rustdoc's data scripts remade
/// from their data (`scripts`). No inline script, so HTML a crate puts into its
/// pages (`--html-in-header`, doc comments) cannot run; no plugins, frames or forms.
/// Images may come from anywhere (badges, logos).
pub const DOCS_PAGE: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src * data:; font-src 'self' data:; \
     connect-src 'self'; object-src 'none'; frame-src 'none'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'none'";

/// An HTML file of a crate's docs that is not one of rustdoc's pages (no top bar
/// could be put over it): as a page, and in a sandbox of its own origin.
pub const DOCS_FRAGMENT: &str = "default-src 'self'; script-src 'none'; \
     style-src 'self' 'unsafe-inline'; img-src * data:; font-src 'self' data:; \
     object-src 'none'; frame-src 'none'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'; sandbox";

/// Anything else from a build (SVG, scripts, data, logs), should it be opened as a
/// document: nothing runs, and it has no origin to act for.
pub const INERT: &str =
    "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox";

/// The viewer's own pages: scripts and styles from this origin only; images from
/// anywhere, for READMEs' badges and logos.
pub const VIEWER_PAGE: &str = "default-src 'self'; script-src 'self'; img-src * data:; \
     object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Whether a state-changing request comes from this viewer's own pages, or from no
/// browser at all. Browsers say where a request comes from: `Sec-Fetch-Site` (which
/// tells ports apart, unlike `SameSite` cookies), else `Origin`. A request with
/// neither is not a browser's, unless it carries the login cookie.
pub fn same_origin(headers: &HeaderMap, origins: &[String], by_cookie: bool) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = origin.trim_end_matches('/');
        return origins.iter().any(|o| o.eq_ignore_ascii_case(origin));
    }
    !by_cookie
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_this_origin_may_change_anything() {
        let origins = vec!["http://127.0.0.1:3000".to_string()];
        let check = |pairs: &[(&'static str, &'static str)], cookie| {
            same_origin(&headers(pairs), &origins, cookie)
        };
        assert!(check(&[("sec-fetch-site", "same-origin")], true));
        assert!(!check(&[("sec-fetch-site", "same-site")], true));
        assert!(!check(&[("sec-fetch-site", "cross-site")], false));
        assert!(!check(&[("sec-fetch-site", "none")], false));
        assert!(check(&[("origin", "http://127.0.0.1:3000")], true));
        assert!(!check(&[("origin", "http://127.0.0.1:4000")], true));
        assert!(!check(&[("origin", "null")], false));
        assert!(check(&[], false), "a client that is no browser");
        assert!(!check(&[], true), "a browser that says nothing");
    }
}
