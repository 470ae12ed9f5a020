//! What browsers are told about each kind of response: content security policies.

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

/// The viewer's own pages.
pub const VIEWER_PAGE: &str = "default-src 'self'; object-src 'none'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";
