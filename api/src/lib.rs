//! A crate's public API read from rustdoc's JSON, and the changes between two versions
//! with the semver bump each needs.
//!
//! [`from_json`] reads the JSON (`cargo +nightly rustdoc -- -Z unstable-options
//! --output-format json`) into a [`PublicApi`]: every item reachable publicly from the
//! crate root, by each of its public paths, with a canonical signature. [`diff`] compares
//! two of them after the Cargo book's SemVer rules, and [`required_version`] says which
//! version number the changes need.
//!
//! The JSON is parsed with [`rustdoc_types`], the rust-lang project's own definition of
//! the format, published from rustdoc's sources and versioned with it: its
//! [`FORMAT_VERSION`] is exactly the format it reads, so a JSON of another version is
//! refused by name instead of misread.
//!
//! What counts as public: items reached from the root through public modules and
//! `pub use` (named or glob) re-exports; `#[doc(hidden)]` items are not public API (as
//! cargo-semver-checks holds; rustdoc leaves them out of its JSON unless asked for them).
//! Documentation is no part of a signature.

mod diff;
mod model;
mod render;
pub mod search;
mod version;

use std::path::Path;

pub use diff::{ApiDiff, Bump, Change, ChangeKind, diff};
pub use model::{ApiItem, FnSig, ItemKind, ItemPath, PublicApi};
pub use render::GenericsSig;
pub use rustdoc_types::FORMAT_VERSION;
pub use version::{is_enough, required_version};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "rustdoc JSON format version {found} is not supported: docbuild reads format version \
         {supported} (rustdoc-types {supported}); generate the JSON with a toolchain whose \
         rustdoc writes version {supported}"
    )]
    FormatVersion { found: u32, supported: u32 },
    #[error("not rustdoc JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

#[derive(serde::Deserialize)]
struct Probe {
    format_version: u32,
}

/// Parses rustdoc's JSON, after checking that its `format_version` is the one supported
/// ([`FORMAT_VERSION`]).
pub fn parse_crate(json: &[u8]) -> Result<rustdoc_types::Crate, Error> {
    let probe: Probe = serde_json::from_slice(json)?;
    if probe.format_version != FORMAT_VERSION {
        return Err(Error::FormatVersion {
            found: probe.format_version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(serde_json::from_slice(json)?)
}

/// The public API described by rustdoc's JSON.
pub fn from_json(json: &[u8]) -> Result<PublicApi, Error> {
    Ok(PublicApi::from_crate(&parse_crate(json)?))
}

/// The public API described by a rustdoc JSON file.
pub fn from_file(path: &Path) -> Result<PublicApi, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    from_json(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_format_version_is_refused_by_name() {
        let err = from_json(br#"{"format_version": 56, "root": 0}"#).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(
            err,
            Error::FormatVersion {
                found: 56,
                supported: 57
            }
        ));
        assert!(msg.contains("56") && msg.contains("57"), "{msg}");
    }

    #[test]
    fn a_crate_without_its_root_is_an_empty_api() {
        let json = format!(
            r#"{{"root": 0, "crate_version": "1.0.0", "includes_private": false, "index": {{}},
            "paths": {{}}, "external_crates": {{}},
            "target": {{"triple": "x86_64-unknown-linux-gnu", "target_features": []}},
            "format_version": {FORMAT_VERSION}}}"#
        );
        let api = from_json(json.as_bytes()).unwrap();
        assert!(api.items.is_empty());
        assert_eq!(api.crate_version.as_deref(), Some("1.0.0"));
    }

    #[test]
    fn not_json_is_an_error() {
        assert!(matches!(from_json(b"<html>"), Err(Error::Json(_))));
    }
}
