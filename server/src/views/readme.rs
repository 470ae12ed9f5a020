//! A package's README: Markdown rendered as GitHub and crates.io render it, then
//! sanitised, since a crate wrote it. Scripts, styles, event handlers and `javascript:`
//! links go; images, badges and links stay (images may come from anywhere).

use maud::{Markup, PreEscaped};
use pulldown_cmark::{Options, Parser, html};

/// The README as sanitised HTML.
pub fn render(markdown: &str) -> Markup {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_TASKLISTS;
    let mut unsafe_html = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut unsafe_html, Parser::new_ext(markdown, options));
    let clean = ammonia::Builder::default()
        .link_rel(Some("nofollow noopener noreferrer"))
        .clean(&unsafe_html)
        .to_string();
    PreEscaped(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_go_and_badges_stay() {
        let page = render(
            "# Title\n\n[![CI](https://ci.example.com/badge.svg)](https://ci.example.com)\n\n\
             <script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n\
             [click](javascript:alert(3))\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        )
        .into_string();
        assert!(page.contains("<h1>Title</h1>"), "{page}");
        assert!(
            page.contains(r#"<img src="https://ci.example.com/badge.svg" alt="CI">"#),
            "{page}"
        );
        assert!(page.contains("<table>"), "{page}");
        for gone in ["<script", "alert(1)", "onerror", "javascript:"] {
            assert!(!page.contains(gone), "{gone} in {page}");
        }
    }
}
