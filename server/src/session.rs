//! Cookies and signed values: the viewer's login cookie, the login form's CSRF
//! token, and, with a separate docs origin, the read-only session that origin keeps.
//!
//! The docs origin never sees the viewer's cookie. When tokens are in force, the
//! viewer hands a signed, one-minute ticket to it in a redirect
//! (`/-/session?ticket=…`), naming the token it was given for; the docs origin then
//! sets a cookie of its own, signed the same way, good for reading docs only and
//! only while that token is in force. The signing key is made at start.

use std::collections::HashMap;
use std::io::Read;

use axum::http::{HeaderMap, HeaderValue, header};
use sha2::{Digest, Sha256};

use docbuild_store::tokens::Scope;

/// The cookie the login form sets on the viewer's origin.
pub const LOGIN_COOKIE: &str = "docbuild_token";
/// The login form's CSRF token, on the viewer's origin.
pub const CSRF_COOKIE: &str = "docbuild_csrf";
/// The docs origin's own session.
pub const DOCS_COOKIE: &str = "docbuild_docs";

/// How long a ticket may take from the viewer to the docs origin.
const TICKET_SECONDS: u64 = 60;
/// How long the docs origin's session lasts.
pub const DOCS_SESSION_SECONDS: u64 = 12 * 3600;
/// Characters of a token's hash that name it in a ticket or docs cookie.
const HINT: usize = 16;

/// `n` random bytes, hex-encoded.
pub fn random_hex(n: usize) -> std::io::Result<String> {
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal, in a time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Signs and checks values with a key made at start.
pub struct Signer {
    key: [u8; 64],
}

impl Signer {
    pub fn new() -> std::io::Result<Self> {
        let mut key = [0u8; 64];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut key[..32])?;
        Ok(Self { key })
    }

    /// HMAC-SHA-256 of the parts, each length-prefixed.
    fn mac(&self, parts: &[&[u8]]) -> String {
        let pad = |byte: u8| self.key.map(|k| k ^ byte);
        let mut inner = Sha256::new();
        inner.update(pad(0x36));
        for part in parts {
            inner.update((part.len() as u64).to_be_bytes());
            inner.update(part);
        }
        let mut outer = Sha256::new();
        outer.update(pad(0x5c));
        outer.update(inner.finalize());
        hex(&outer.finalize())
    }

    fn sign(&self, kind: &str, token_hash: &str, lifetime: u64) -> String {
        let expiry = (now() + lifetime).to_string();
        let hint = &token_hash[..HINT.min(token_hash.len())];
        let mac = self.mac(&[kind.as_bytes(), expiry.as_bytes(), hint.as_bytes()]);
        format!("{expiry}.{hint}.{mac}")
    }

    /// The hash of the token in force that `value` was signed for, if it is valid,
    /// unexpired, and of `kind`.
    fn check(
        &self,
        kind: &str,
        value: &str,
        active: &HashMap<String, Scope>,
    ) -> Option<(String, Scope)> {
        let mut parts = value.splitn(3, '.');
        let (expiry, hint, mac) = (parts.next()?, parts.next()?, parts.next()?);
        let expected = self.mac(&[kind.as_bytes(), expiry.as_bytes(), hint.as_bytes()]);
        if !same_secret(&expected, mac) || expiry.parse::<u64>().ok()? < now() {
            return None;
        }
        if hint.len() != HINT {
            return None;
        }
        active
            .iter()
            .find(|(hash, _)| hash.starts_with(hint))
            .map(|(hash, scope)| (hash.clone(), *scope))
    }

    pub fn ticket(&self, token_hash: &str) -> String {
        self.sign("ticket", token_hash, TICKET_SECONDS)
    }

    pub fn check_ticket(
        &self,
        ticket: &str,
        active: &HashMap<String, Scope>,
    ) -> Option<(String, Scope)> {
        self.check("ticket", ticket, active)
    }

    pub fn docs_session(&self, token_hash: &str) -> String {
        self.sign("docs", token_hash, DOCS_SESSION_SECONDS)
    }

    pub fn check_docs_session(
        &self,
        value: &str,
        active: &HashMap<String, Scope>,
    ) -> Option<(String, Scope)> {
        self.check("docs", value, active)
    }
}

/// The value of the cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

/// A `Set-Cookie` value: HttpOnly, `Secure` on https.
pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    same_site: &str,
    max_age: u64,
    secure: bool,
) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}"
    ))
    .ok()
}

/// A path on this server to go to after a login or a redirect, if `next` is one:
/// absolute, not leaving the origin (`//host`, `/\host`), no control characters.
pub fn local_path(next: &str) -> Option<&str> {
    let safe = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= 4096
        && !next.chars().any(|c| c.is_control() || c == '\\');
    safe.then_some(next)
}

/// Percent-encodes a query parameter's value.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_values_hold_only_for_their_kind_and_token() {
        let signer = Signer::new().unwrap();
        let hash = docbuild_store::tokens::hash("dbt_secret");
        let mut active = HashMap::from([(hash.clone(), Scope::Read)]);
        let ticket = signer.ticket(&hash);
        assert_eq!(
            signer.check_ticket(&ticket, &active),
            Some((hash.clone(), Scope::Read))
        );
        assert_eq!(signer.check_docs_session(&ticket, &active), None, "kind");
        let session = signer.docs_session(&hash);
        assert!(signer.check_docs_session(&session, &active).is_some());
        let (expiry, rest) = session.split_once('.').unwrap();
        let later = format!("{}.{rest}", expiry.parse::<u64>().unwrap() + 1);
        assert_eq!(signer.check_docs_session(&later, &active), None, "forged");
        let other = Signer::new().unwrap();
        assert_eq!(other.check_docs_session(&session, &active), None, "key");
        active.clear();
        assert_eq!(
            signer.check_docs_session(&session, &active),
            None,
            "revoked"
        );
    }

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(local_path("/crate/x/1.0.0"), Some("/crate/x/1.0.0"));
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "x",
            "/a\nb",
        ] {
            assert_eq!(local_path(bad), None, "{bad:?}");
        }
        assert_eq!(encode("/a b?c=d&e"), "/a%20b%3Fc%3Dd%26e");
    }
}
