//! Validated crate identities: the only way a crate's name, version or registry
//! becomes part of a path, a manifest or a database key.
//!
//! Names come from hostile places (a registry's index, a `.crate`'s manifest, an API
//! request), so each is checked once where it enters, and everything past that point
//! takes these types instead of strings.

use std::fmt;
use std::path::PathBuf;

use semver::Version;

/// A crate name as crates.io accepts it: ASCII letters, digits, `-` and `_`, starting
/// with a letter, at most 64 characters. Safe as a path component and in TOML.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CrateName(String);

/// A registry name as cargo accepts it: ASCII letters, digits, `-` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegistryName(String);

/// A crate version as users name it: `NAME@VERSION`, both parts checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CrateVersion {
    name: CrateName,
    version: Version,
}

/// A release: which registry, which crate, which version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CrateId {
    pub registry: RegistryName,
    pub krate: CrateVersion,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrateVersionError {
    #[error("`{0}` is not NAME@VERSION")]
    Form(String),
    #[error(
        "invalid crate name `{0}`: ASCII letters, digits, `-` and `_` only, starting with a letter, at most 64"
    )]
    Name(String),
    #[error("invalid version `{0}`: {1}")]
    Version(String, String),
    #[error("invalid registry name `{0}`: ASCII letters, digits, `-` and `_` only, at most 64")]
    Registry(String),
}

fn plain_ascii(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl CrateName {
    pub fn new(name: &str) -> Result<Self, CrateVersionError> {
        if plain_ascii(name) && name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            Ok(Self(name.to_string()))
        } else {
            Err(CrateVersionError::Name(printable(name)))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The library's crate name: `-` becomes `_`.
    pub fn lib_name(&self) -> String {
        self.0.replace('-', "_")
    }
}

impl RegistryName {
    pub fn new(name: &str) -> Result<Self, CrateVersionError> {
        if plain_ascii(name) {
            Ok(Self(name.to_string()))
        } else {
            Err(CrateVersionError::Registry(printable(name)))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How cargo spells the name in environment variables (`CARGO_REGISTRIES_<KEY>_…`).
    pub fn env_key(&self) -> String {
        self.0.to_ascii_uppercase().replace('-', "_")
    }
}

impl CrateVersion {
    /// Checks both parts: they end up in manifests and paths.
    pub fn new(name: &str, version: &str) -> Result<Self, CrateVersionError> {
        let name = CrateName::new(name)?;
        let version = Version::parse(version)
            .map_err(|e| CrateVersionError::Version(printable(version), e.to_string()))?;
        Ok(Self { name, version })
    }

    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    pub fn crate_name(&self) -> &CrateName {
        &self.name
    }

    /// The version in its canonical form.
    pub fn version(&self) -> String {
        self.version.to_string()
    }

    pub fn semver(&self) -> &Version {
        &self.version
    }

    /// `NAME-VERSION`: the top directory of its `.crate` and the archive's stem.
    pub fn archive_prefix(&self) -> String {
        format!("{}-{}", self.name.as_str(), self.version)
    }
}

impl std::str::FromStr for CrateVersion {
    type Err = CrateVersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, version) = text
            .split_once('@')
            .ok_or_else(|| CrateVersionError::Form(printable(text)))?;
        Self::new(name, version)
    }
}

impl fmt::Display for CrateVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name.as_str(), self.version)
    }
}

impl fmt::Display for CrateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for RegistryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl CrateId {
    pub fn new(registry: &str, name: &str, version: &str) -> Result<Self, CrateVersionError> {
        Ok(Self {
            registry: RegistryName::new(registry)?,
            krate: CrateVersion::new(name, version)?,
        })
    }

    /// `<registry>/<name>/<version>`: where this release's files live below a root.
    /// Every part is validated, so the result stays below that root.
    pub fn relative_dir(&self) -> PathBuf {
        [
            self.registry.as_str(),
            self.krate.name(),
            &self.krate.version(),
        ]
        .iter()
        .collect()
    }
}

impl fmt::Display for CrateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.krate, self.registry)
    }
}

/// Untrusted text shown in an error: at most 80 characters, control characters
/// escaped, so that a hostile name cannot forge lines or fill a terminal.
fn printable(text: &str) -> String {
    let mut shown: String = text.chars().take(80).flat_map(char::escape_debug).collect();
    if text.chars().count() > 80 {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_versions_are_checked() {
        let parsed: CrateVersion = "serde@1.0.200".parse().unwrap();
        assert_eq!(parsed, CrateVersion::new("serde", "1.0.200").unwrap());
        assert_eq!(parsed.archive_prefix(), "serde-1.0.200");
        assert!(matches!(
            "serde".parse::<CrateVersion>(),
            Err(CrateVersionError::Form(_))
        ));
        for name in [
            "",
            "a\"b",
            "../x",
            "9lives",
            "a b",
            "crâte",
            "a/b",
            &"x".repeat(65),
        ] {
            assert!(
                matches!(
                    CrateVersion::new(name, "1.0.0"),
                    Err(CrateVersionError::Name(_))
                ),
                "{name}"
            );
        }
        for version in ["1", "1.0", "one", "1.0.0\"", "", "1.0.0/../x"] {
            assert!(
                matches!(
                    CrateVersion::new("a", version),
                    Err(CrateVersionError::Version(..))
                ),
                "{version}"
            );
        }
    }

    #[test]
    fn identities_make_paths_below_their_root() {
        let id = CrateId::new("my-reg", "foo_bar", "1.2.3-rc.1+build.5").unwrap();
        assert_eq!(
            id.relative_dir(),
            PathBuf::from("my-reg/foo_bar/1.2.3-rc.1+build.5")
        );
        assert!(id.relative_dir().components().count() == 3);
        for registry in ["..", "a/b", "", "reg istry"] {
            assert!(CrateId::new(registry, "a", "1.0.0").is_err(), "{registry}");
        }
        assert_eq!(
            RegistryName::new("my-reg").unwrap().env_key(),
            "MY_REG".to_string()
        );
    }

    #[test]
    fn hostile_names_are_shown_escaped_and_short() {
        let error = CrateName::new("evil\nname").unwrap_err().to_string();
        assert!(
            error.contains("evil\\nname") && !error.contains('\n'),
            "{error}"
        );
        let long = CrateName::new(&"é".repeat(500)).unwrap_err().to_string();
        assert!(long.chars().count() < 250, "{long}");
    }
}
