//! The `[package.metadata.docs.rs]` table, read with docs.rs's semantics.
//!
//! The table comes from `cargo metadata` (as JSON), so the manifest is parsed by cargo
//! itself. Unknown keys are ignored, as docs.rs does, but named
//! ([`DocsRsMetadata::unknown_keys`]) so that a typo does not pass unseen; a known key
//! of the wrong type is an error naming the key (docs.rs used to retry such builds
//! silently).

use serde_json::{Map, Value};

/// The docs.rs build settings of one package.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocsRsMetadata {
    /// `None` means cargo's default features; `Some([])` passes `--features ""`.
    pub features: Option<Vec<String>>,
    pub all_features: bool,
    pub no_default_features: bool,
    pub default_target: Option<String>,
    /// `None` (unset) and `Some([])` differ only in docs.rs's old five-target default;
    /// both build the default target alone today.
    pub targets: Option<Vec<String>>,
    pub additional_targets: Vec<String>,
    pub rustc_args: Vec<String>,
    pub rustdoc_args: Vec<String>,
    pub cargo_args: Vec<String>,
    /// Keys of the table docs.rs does not know (and ignores), at most
    /// [`MAX_UNKNOWN_KEYS`], each shown safely (see [`shown_key`]).
    pub unknown_keys: Vec<String>,
}

/// The keys docs.rs reads.
pub const KNOWN_KEYS: [&str; 9] = [
    "features",
    "all-features",
    "no-default-features",
    "default-target",
    "targets",
    "additional-targets",
    "rustc-args",
    "rustdoc-args",
    "cargo-args",
];

/// Unknown keys named at most; a crate chooses how many it has.
pub const MAX_UNKNOWN_KEYS: usize = 20;

/// A key as a message shows it: a plain key as it is, anything else quoted with its
/// control characters escaped, and cut short.
fn shown_key(key: &str) -> String {
    let plain = key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if plain {
        return key.to_string();
    }
    let cut: String = key.chars().take(64).collect();
    let quoted = format!("{cut:?}");
    if cut.len() < key.len() {
        format!("{quoted}…")
    } else {
        quoted
    }
}

/// The known key an unknown one most likely meant: one at most two edits away
/// (`all-feature`, `default_target`).
pub fn closest_key(unknown: &str) -> Option<&'static str> {
    let normalized = unknown.replace('_', "-");
    KNOWN_KEYS
        .iter()
        .map(|known| (edit_distance(&normalized, known), *known))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, known)| known)
}

/// Levenshtein distance, for short keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len() > 64 || b.len() > 64 {
        return usize::MAX;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// A docs.rs metadata key with a value of the wrong type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid docs.rs metadata: `{key}` must be {expected}")]
pub struct MetadataError {
    pub key: String,
    pub expected: &'static str,
}

impl DocsRsMetadata {
    /// Reads the table out of a package's `metadata` value as `cargo metadata` gives
    /// it. `[package.metadata.docs.rs]` wins over `[package.metadata."docs.rs"]`.
    pub fn from_package_metadata(metadata: &Value) -> Result<Self, MetadataError> {
        let nested = metadata
            .get("docs")
            .and_then(|docs| docs.get("rs"))
            .and_then(Value::as_object);
        let quoted = metadata.get("docs.rs").and_then(Value::as_object);
        match nested.or(quoted) {
            Some(table) => Self::from_table(table),
            None => Ok(Self::default()),
        }
    }

    fn from_table(table: &Map<String, Value>) -> Result<Self, MetadataError> {
        let triples = |key: &str| -> Result<Option<Vec<String>>, MetadataError> {
            let list = strings(table, key)?;
            match &list {
                Some(items) if !items.iter().all(|t| is_target_triple(t)) => {
                    Err(wrong_type(key, TRIPLES))
                }
                _ => Ok(list),
            }
        };
        let default_target = string(table, "default-target")?;
        if default_target
            .as_deref()
            .is_some_and(|t| !is_target_triple(t))
        {
            return Err(wrong_type("default-target", "a target triple"));
        }
        Ok(Self {
            features: strings(table, "features")?,
            all_features: boolean(table, "all-features")?,
            no_default_features: boolean(table, "no-default-features")?,
            default_target,
            targets: triples("targets")?,
            additional_targets: triples("additional-targets")?.unwrap_or_default(),
            rustc_args: strings(table, "rustc-args")?.unwrap_or_default(),
            rustdoc_args: strings(table, "rustdoc-args")?.unwrap_or_default(),
            cargo_args: strings(table, "cargo-args")?.unwrap_or_default(),
            unknown_keys: table
                .keys()
                .filter(|key| !KNOWN_KEYS.contains(&key.as_str()))
                .take(MAX_UNKNOWN_KEYS)
                .map(|key| shown_key(key))
                .collect(),
        })
    }
}

const TRIPLES: &str = "an array of target triples";

/// A target names a directory below the target directory, so it is a plain name:
/// ASCII letters, digits, `-`, `_` and `.`, not starting with `.`.
pub fn is_target_triple(target: &str) -> bool {
    !target.is_empty()
        && target.len() <= 100
        && !target.starts_with('.')
        && target
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn boolean(table: &Map<String, Value>, key: &str) -> Result<bool, MetadataError> {
    match table.get(key) {
        None => Ok(false),
        Some(Value::Bool(value)) => Ok(*value),
        Some(_) => Err(wrong_type(key, "true or false")),
    }
}

fn string(table: &Map<String, Value>, key: &str) -> Result<Option<String>, MetadataError> {
    match table.get(key) {
        None => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(wrong_type(key, "a string")),
    }
}

fn strings(table: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, MetadataError> {
    let expected = "an array of strings";
    match table.get(key) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| wrong_type(key, expected))
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err(wrong_type(key, expected)),
    }
}

fn wrong_type(key: &str, expected: &'static str) -> MetadataError {
    MetadataError {
        key: key.to_string(),
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(metadata: Value) -> Result<DocsRsMetadata, MetadataError> {
        DocsRsMetadata::from_package_metadata(&metadata)
    }

    #[test]
    fn targets_must_be_plain_names() {
        for bad in ["../../etc", "a/b", ".hidden", ""] {
            assert!(
                parse(json!({"docs": {"rs": {"targets": [bad]}}})).is_err(),
                "{bad}"
            );
            assert!(
                parse(json!({"docs": {"rs": {"default-target": bad}}})).is_err(),
                "{bad}"
            );
        }
        assert!(is_target_triple("thumbv7em-none-eabihf"));
        assert!(is_target_triple("x86_64-unknown-linux-gnu"));
    }

    #[test]
    fn full_table_is_read() {
        let metadata = parse(json!({"docs": {"rs": {
            "features": ["feature1", "feature2"],
            "all-features": true,
            "no-default-features": true,
            "default-target": "x86_64-unknown-linux-gnu",
            "targets": ["aarch64-apple-darwin", "x86_64-pc-windows-msvc"],
            "additional-targets": ["i686-pc-windows-msvc"],
            "rustc-args": ["--example-rustc-arg"],
            "rustdoc-args": ["--example-rustdoc-arg"],
            "cargo-args": ["-Zbuild-std"],
        }}}))
        .unwrap();
        assert_eq!(
            metadata,
            DocsRsMetadata {
                features: Some(vec!["feature1".into(), "feature2".into()]),
                all_features: true,
                no_default_features: true,
                default_target: Some("x86_64-unknown-linux-gnu".into()),
                targets: Some(vec![
                    "aarch64-apple-darwin".into(),
                    "x86_64-pc-windows-msvc".into()
                ]),
                additional_targets: vec!["i686-pc-windows-msvc".into()],
                rustc_args: vec!["--example-rustc-arg".into()],
                rustdoc_args: vec!["--example-rustdoc-arg".into()],
                cargo_args: vec!["-Zbuild-std".into()],
                unknown_keys: Vec::new(),
            }
        );
    }

    #[test]
    fn quoted_table_is_read() {
        let metadata =
            parse(json!({"docs.rs": {"features": ["a"], "all-features": true}})).unwrap();
        assert_eq!(metadata.features, Some(vec!["a".to_string()]));
        assert!(metadata.all_features);
    }

    #[test]
    fn nested_table_wins_over_quoted() {
        let metadata = parse(json!({
            "docs": {"rs": {"features": ["nested"]}},
            "docs.rs": {"features": ["quoted"]},
        }))
        .unwrap();
        assert_eq!(metadata.features, Some(vec!["nested".to_string()]));
    }

    #[test]
    fn missing_table_is_the_default() {
        assert_eq!(parse(Value::Null).unwrap(), DocsRsMetadata::default());
        assert_eq!(
            parse(json!({"other": 1})).unwrap(),
            DocsRsMetadata::default()
        );
        assert_eq!(
            parse(json!({"docs": 3})).unwrap(),
            DocsRsMetadata::default()
        );
    }

    #[test]
    fn unset_and_empty_targets_differ() {
        assert_eq!(
            parse(json!({"docs": {"rs": {"features": []}}}))
                .unwrap()
                .targets,
            None
        );
        assert_eq!(
            parse(json!({"docs": {"rs": {"targets": []}}}))
                .unwrap()
                .targets,
            Some(vec![])
        );
    }

    #[test]
    fn unknown_keys_are_ignored_but_named() {
        let metadata =
            parse(json!({"docs": {"rs": {"no-such-key": 3, "all-features": true}}})).unwrap();
        assert!(metadata.all_features);
        assert_eq!(metadata.unknown_keys, ["no-such-key"]);
        let hostile = parse(json!({"docs": {"rs": {"a\u{1b}[2Jb": 1}}})).unwrap();
        assert_eq!(hostile.unknown_keys, [r#""a\u{1b}[2Jb""#]);
    }

    #[test]
    fn typos_find_the_key_meant() {
        assert_eq!(closest_key("all-feature"), Some("all-features"));
        assert_eq!(closest_key("default_target"), Some("default-target"));
        assert_eq!(closest_key("rustdocargs"), Some("rustdoc-args"));
        assert_eq!(closest_key("completely-else"), None);
    }

    #[test]
    fn wrong_types_name_the_key() {
        let cases = [
            (json!({"features": "a"}), "features"),
            (json!({"features": [1]}), "features"),
            (json!({"all-features": "yes"}), "all-features"),
            (json!({"no-default-features": 1}), "no-default-features"),
            (json!({"default-target": ["x"]}), "default-target"),
            (json!({"targets": "x86_64-unknown-linux-gnu"}), "targets"),
            (json!({"additional-targets": [true]}), "additional-targets"),
            (json!({"rustc-args": "--cfg x"}), "rustc-args"),
            (json!({"rustdoc-args": {"a": 1}}), "rustdoc-args"),
            (json!({"cargo-args": 3}), "cargo-args"),
        ];
        for (table, key) in cases {
            let error = parse(json!({"docs": {"rs": table}})).unwrap_err();
            assert_eq!(error.key, key);
            assert!(error.to_string().contains(&format!("`{key}`")), "{error}");
        }
    }
}
