//! rustdoc's data scripts, vetted.
//!
//! Besides its shared `static.files/` (the toolchain's, stored by docbuild), rustdoc
//! writes scripts into each crate's docs that only carry data: the sidebar's items,
//! the crate list, the search index's shards, the source tree, trait and type
//! implementations. rustdoc's own scripts load them, so they must run for the sidebar
//! and the search to work; but they sit among what a crate's build wrote, and a
//! process the build left running can rewrite them, or add a script of its own.
//!
//! So no script from a build is served as it is. A `.js` file from a crate's docs is
//! read as one of rustdoc's known shapes (a fixed statement whose only variable parts
//! are literals: strings, numbers, arrays, objects), and what is served is that
//! shape written out again by docbuild, with the literals re-encoded. Whatever the
//! file held, the answer is data handed to rustdoc's own callbacks. A file of any
//! other shape is not served as a script at all (see `files`), and since every
//! response says `nosniff`, a browser will not run it.

/// The shapes rustdoc writes (current and recent toolchains). `$` is one literal,
/// `$*` literals separated by commas, `a|b` either word; tokens are separated by
/// spaces, and a statement may end with `;`.
const SHAPES: &[&str] = &[
    // crates.js, sidebar-items.js
    "window . ALL_CRATES = $",
    "window . SIDEBAR_ITEMS = $",
    // search.index/**/*.js (stringdex)
    "rr_|rd_|rb_|rn_ ( $* )",
    // src-files.js
    "createSrcSidebar ( $* )",
    "var|const srcIndex = new Map ( JSON . parse ( $ ) ) ; createSrcSidebar ( )",
    // trait.impl/**/*.js, type.impl/**/*.js
    "( function ( ) { var|const implementors = Object . fromEntries ( $ ) ; \
     if ( window . register_implementors ) { window . register_implementors ( implementors ) ; } \
     else { window . pending_implementors = implementors ; } } ) ( )",
    "( function ( ) { var|const implementors = $ ; \
     if ( window . register_implementors ) { window . register_implementors ( implementors ) ; } \
     else { window . pending_implementors = implementors ; } } ) ( )",
    "( function ( ) { var|const type_impls = Object . fromEntries ( $ ) ; \
     if ( window . register_type_impls ) { window . register_type_impls ( type_impls ) ; } \
     else { window . pending_type_impls = type_impls ; } } ) ( )",
    "( function ( ) { var|const type_impls = $ ; \
     if ( window . register_type_impls ) { window . register_type_impls ( type_impls ) ; } \
     else { window . pending_type_impls = type_impls ; } } ) ( )",
    // search-index.js and its description shards (older toolchains)
    "var|const searchIndex = new Map ( JSON . parse ( $ ) ) ; \
     if ( typeof exports !== $ ) exports . searchIndex = searchIndex ; \
     else if ( window . initSearch ) window . initSearch ( searchIndex )",
    "searchState . loadedDescShard ( $* )",
];

/// Deepest nesting of arrays and objects accepted.
const MAX_DEPTH: usize = 128;

/// The script re-made from `source`'s data if it has one of rustdoc's shapes.
pub fn vet(source: &str) -> Option<String> {
    let tokens = lex(source)?;
    let shapes: Vec<Vec<&str>> = SHAPES
        .iter()
        .map(|shape| shape.split_whitespace().collect())
        .collect();
    let mut out = String::with_capacity(source.len() + 16);
    let mut at = 0;
    while at < tokens.len() {
        let (end, written) = shapes
            .iter()
            .find_map(|shape| match_shape(shape, &tokens, at))?;
        out.push_str(&written);
        out.push_str(";\n");
        at = end;
        if tokens.get(at) == Some(&Token::Punct(";")) {
            at += 1;
        }
    }
    (!out.is_empty()).then_some(out)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Punct(&'static str),
    Str(String),
    /// A number as written, checked to be a JSON number.
    Number(String),
}

/// A literal, as it will be written out again.
enum Literal {
    Str(String),
    Number(String),
    Word(&'static str),
    Array(Vec<Literal>),
    Object(Vec<(String, Literal)>),
}

impl Literal {
    fn write(&self, out: &mut String) {
        match self {
            Self::Str(text) => out.push_str(&quote(text)),
            Self::Number(number) => out.push_str(number),
            Self::Word(word) => out.push_str(word),
            Self::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Self::Object(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&quote(key));
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// A JSON string, which is also a JavaScript string literal.
fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
}

/// Matches `shape` at `tokens[at..]`: the end and the statement written anew.
fn match_shape(shape: &[&str], tokens: &[Token], at: usize) -> Option<(usize, String)> {
    let mut out = String::new();
    let mut i = at;
    let mut last_word = false;
    for part in shape {
        match *part {
            "$" => {
                let (literal, next) = literal(tokens, i, 0)?;
                literal.write(&mut out);
                i = next;
                last_word = false;
            }
            "$*" => {
                let mut first = true;
                while tokens.get(i) != Some(&Token::Punct(")")) {
                    if !first {
                        if tokens.get(i) != Some(&Token::Punct(",")) {
                            return None;
                        }
                        out.push(',');
                        i += 1;
                    }
                    let (literal, next) = literal(tokens, i, 0)?;
                    literal.write(&mut out);
                    i = next;
                    first = false;
                }
                last_word = false;
            }
            expected => {
                let word = match tokens.get(i)? {
                    Token::Word(word) => word.as_str(),
                    Token::Punct(punct) => punct,
                    _ => return None,
                };
                if !expected.split('|').any(|choice| choice == word) {
                    return None;
                }
                let is_word = word.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
                if is_word && last_word {
                    out.push(' ');
                }
                out.push_str(word);
                last_word = is_word;
                i += 1;
            }
        }
    }
    Some((i, out))
}

/// One literal at `tokens[at..]` and the index after it.
fn literal(tokens: &[Token], at: usize, depth: usize) -> Option<(Literal, usize)> {
    if depth > MAX_DEPTH {
        return None;
    }
    match tokens.get(at)? {
        Token::Str(text) => Some((Literal::Str(text.clone()), at + 1)),
        Token::Number(number) => Some((Literal::Number(number.clone()), at + 1)),
        Token::Punct("-") => match tokens.get(at + 1)? {
            Token::Number(number) => Some((Literal::Number(format!("-{number}")), at + 2)),
            _ => None,
        },
        Token::Word(word) => {
            let word = match word.as_str() {
                "true" => "true",
                "false" => "false",
                "null" => "null",
                _ => return None,
            };
            Some((Literal::Word(word), at + 1))
        }
        Token::Punct("[") => {
            let mut items = Vec::new();
            let mut i = at + 1;
            loop {
                if tokens.get(i)? == &Token::Punct("]") {
                    return Some((Literal::Array(items), i + 1));
                }
                if !items.is_empty() {
                    if tokens.get(i)? != &Token::Punct(",") {
                        return None;
                    }
                    i += 1;
                    // A trailing comma.
                    if tokens.get(i)? == &Token::Punct("]") {
                        return Some((Literal::Array(items), i + 1));
                    }
                }
                let (item, next) = literal(tokens, i, depth + 1)?;
                items.push(item);
                i = next;
            }
        }
        Token::Punct("{") => {
            let mut members = Vec::new();
            let mut i = at + 1;
            loop {
                if tokens.get(i)? == &Token::Punct("}") {
                    return Some((Literal::Object(members), i + 1));
                }
                if !members.is_empty() {
                    if tokens.get(i)? != &Token::Punct(",") {
                        return None;
                    }
                    i += 1;
                    if tokens.get(i)? == &Token::Punct("}") {
                        return Some((Literal::Object(members), i + 1));
                    }
                }
                let key = match tokens.get(i)? {
                    Token::Str(key) | Token::Word(key) => key.clone(),
                    _ => return None,
                };
                if tokens.get(i + 1)? != &Token::Punct(":") {
                    return None;
                }
                let (value, next) = literal(tokens, i + 2, depth + 1)?;
                members.push((key, value));
                i = next;
            }
        }
        _ => None,
    }
}

const PUNCTUATION: &[&str] = &[
    "!==", "(", ")", "[", "]", "{", "}", ",", ";", ".", "=", ":", "-",
];

/// The tokens of a small subset of JavaScript: words, punctuation, string and number
/// literals, comments. Anything else fails.
fn lex(source: &str) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = source.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        let rest = &source[start..];
        if c.is_whitespace() || c == '\u{feff}' {
            chars.next();
        } else if rest.starts_with("//") {
            while chars.next_if(|&(_, c)| !is_line_end(c)).is_some() {}
        } else if let Some(comment) = rest.strip_prefix("/*") {
            let end = comment.find("*/")? + 4;
            while chars.next_if(|&(i, _)| i < start + end).is_some() {}
        } else if c == '\'' || c == '"' {
            chars.next();
            tokens.push(Token::Str(string(&mut chars, c)?));
        } else if c.is_ascii_digit() {
            let mut end = start;
            while let Some((i, c)) =
                chars.next_if(|&(_, c)| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'))
            {
                // A sign belongs to the number only right after its exponent.
                if matches!(c, '+' | '-') && !source[..i].ends_with(['e', 'E']) {
                    return None;
                }
                end = i + c.len_utf8();
            }
            let number = &source[start..end];
            if !is_json_number(number) {
                return None;
            }
            tokens.push(Token::Number(number.to_string()));
        } else if c.is_ascii_alphabetic() || c == '_' || c == '$' {
            let mut end = start;
            while let Some((i, c)) =
                chars.next_if(|&(_, c)| c.is_ascii_alphanumeric() || c == '_' || c == '$')
            {
                end = i + c.len_utf8();
            }
            tokens.push(Token::Word(source[start..end].to_string()));
        } else {
            let punct = PUNCTUATION.iter().find(|p| rest.starts_with(**p))?;
            for _ in 0..punct.len() {
                chars.next();
            }
            tokens.push(Token::Punct(punct));
        }
    }
    Some(tokens)
}

fn is_line_end(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')
}

fn is_json_number(text: &str) -> bool {
    serde_json::from_str::<serde_json::Number>(text).is_ok()
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || b".eE+-".contains(&b))
}

/// A JavaScript string literal's value, after its opening `quote`.
fn string(chars: &mut std::iter::Peekable<std::str::CharIndices>, quote: char) -> Option<String> {
    let mut value = String::new();
    loop {
        let (_, c) = chars.next()?;
        match c {
            c if c == quote => return Some(value),
            '\n' | '\r' => return None,
            '\\' => {
                let (_, escaped) = chars.next()?;
                match escaped {
                    'b' => value.push('\u{8}'),
                    'f' => value.push('\u{c}'),
                    'n' => value.push('\n'),
                    'r' => value.push('\r'),
                    't' => value.push('\t'),
                    'v' => value.push('\u{b}'),
                    '0' if !chars.peek().is_some_and(|(_, c)| c.is_ascii_digit()) => {
                        value.push('\0')
                    }
                    'x' => {
                        let code = hex(chars, 2)?;
                        value.push(char::from_u32(code)?);
                    }
                    'u' => {
                        let code = unicode_escape(chars)?;
                        if (0xD800..0xDC00).contains(&code) {
                            // A surrogate pair, written as two escapes.
                            if chars.next()?.1 != '\\' || chars.next()?.1 != 'u' {
                                return None;
                            }
                            let low = unicode_escape(chars)?;
                            if !(0xDC00..0xE000).contains(&low) {
                                return None;
                            }
                            let code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                            value.push(char::from_u32(code)?);
                        } else {
                            value.push(char::from_u32(code)?);
                        }
                    }
                    // A line continuation.
                    '\n' | '\u{2028}' | '\u{2029}' => {}
                    '\r' => {
                        chars.next_if(|&(_, c)| c == '\n');
                    }
                    // Legacy octal escapes.
                    '0'..='9' => return None,
                    other => value.push(other),
                }
            }
            c => value.push(c),
        }
    }
}

fn hex(chars: &mut std::iter::Peekable<std::str::CharIndices>, digits: usize) -> Option<u32> {
    let mut code = 0;
    for _ in 0..digits {
        code = code * 16 + chars.next()?.1.to_digit(16)?;
    }
    Some(code)
}

/// `XXXX` or `{X…}` after `\u`.
fn unicode_escape(chars: &mut std::iter::Peekable<std::str::CharIndices>) -> Option<u32> {
    if chars.next_if(|&(_, c)| c == '{').is_some() {
        let mut code: u32 = 0;
        let mut digits = 0;
        loop {
            let (_, c) = chars.next()?;
            if c == '}' && digits > 0 {
                return (code <= 0x10FFFF).then_some(code);
            }
            code = code.checked_mul(16)?.checked_add(c.to_digit(16)?)?;
            digits += 1;
            if digits > 6 {
                return None;
            }
        }
    }
    hex(chars, 4)
}

/// For tests and logs: a short description of why a file is not one of the shapes.
#[cfg(test)]
fn describe(source: &str) -> String {
    let mut out = String::new();
    match lex(source) {
        None => out.push_str("not lexable"),
        Some(tokens) => out.push_str(&format!("{} tokens", tokens.len())),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustdoc_data_scripts_are_remade() {
        for (source, expected) in [
            (
                "window.ALL_CRATES = [\"documented\"];\n//{\"start\":21,\"fragment_lengths\":[12]}",
                "window.ALL_CRATES=[\"documented\"];\n",
            ),
            (
                "window.SIDEBAR_ITEMS = {\"struct\":[\"Gadget\"],\"fn\":[\"f\"]};",
                "window.SIDEBAR_ITEMS={\"struct\":[\"Gadget\"],\"fn\":[\"f\"]};\n",
            ),
            ("rd_(\"jdocumented\")", "rd_(\"jdocumented\");\n"),
            (
                "rr_('{\"normalizedName\":{\"I\":\"FQ\\\\x\"}}')",
                "rr_(\"{\\\"normalizedName\\\":{\\\"I\\\":\\\"FQ\\\\x\\\"}}\");\n",
            ),
            (
                "createSrcSidebar('[[\"documented\",[\"\",[],[\"lib.rs\"]]]]');\n//{\"start\":19}",
                "createSrcSidebar(\"[[\\\"documented\\\",[\\\"\\\",[],[\\\"lib.rs\\\"]]]]\");\n",
            ),
            (
                "rd_(\"\\xff\\u00e9\\u{1F600}\\ud83d\\ude00\\'\")",
                "rd_(\"ÿé😀😀'\");\n",
            ),
        ] {
            assert_eq!(vet(source).as_deref(), Some(expected), "{source}");
        }
        let implementors = "(function() {\n    const implementors = Object.fromEntries([[\"documented\",[[\"impl <a>Send</a>\",0,1,[\"documented::Gadget\"]]]]]);\n    if (window.register_implementors) {\n        window.register_implementors(implementors);\n    } else {\n        window.pending_implementors = implementors;\n    }\n})()\n//{\"start\":59,\"fragment_lengths\":[296]}";
        assert_eq!(
            vet(implementors).as_deref(),
            Some(
                "(function(){const implementors=Object.fromEntries([[\"documented\",[[\"impl <a>Send</a>\",0,1,[\"documented::Gadget\"]]]]]);if(window.register_implementors){window.register_implementors(implementors);}else{window.pending_implementors=implementors;}})();\n"
            )
        );
        let type_impls = implementors
            .replace("implementors", "type_impls")
            .replace("const", "var");
        assert!(
            vet(&type_impls)
                .unwrap()
                .starts_with("(function(){var type_impls=")
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for source in [
            "",
            "alert(1)",
            "document.title = 'x'",
            "window.SIDEBAR_ITEMS = {}; document.title = 'pwned'",
            "window.SIDEBAR_ITEMS = {\"a\": alert(1)}",
            "window.location = 'javascript:alert(1)'",
            "rd_(\"a\")(\"b\")",
            "rd_(\"a\" + x)",
            "rd_(`template ${alert(1)}`)",
            "rd_(\"unterminated)",
            "rd_(\"a\\\nb\" , alert)",
            "rd_(\"\\1\")",
            "rd_(\"\\ud800\")",
            "rd_(0x10)",
            "rd_(1e+)",
            "eval(\"alert(1)\")",
            "(function() { const implementors = Object.fromEntries([]); alert(1); })()",
            "rd_(\"</script><script>alert(1)</script>\") ; fetch('/api')",
        ] {
            assert_eq!(vet(source), None, "{source}: {}", describe(source));
        }
        // Deep nesting is refused rather than followed.
        let deep = format!("rd_({}{})", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(vet(&deep), None);
    }

    #[test]
    fn what_is_written_again_is_only_data() {
        // A string that tries to close itself is re-encoded, not continued.
        let remade = vet("rd_('\\u0022); alert(1); (\\u0022')").unwrap();
        assert_eq!(remade, "rd_(\"\\\"); alert(1); (\\\"\");\n");
        let remade = vet("rd_(\"a\\u2028b\")").unwrap();
        assert_eq!(remade, "rd_(\"a\u{2028}b\");\n");
    }
}
