//! Getting one published crate version from a Cargo registry.
//!
//! cargo itself does the download, on the host, into docbuild's cargo home: it knows
//! every registry the user's configuration and `docbuild.toml` name, speaks the sparse
//! and git protocols, sends tokens, and checks the archive's sha256 against the index.
//! The verified `.crate` is then unpacked again by [`crate::unpack`], which refuses
//! anything but files and directories below `NAME-VERSION/`.

use std::path::{Path, PathBuf};

use cargo_metadata::semver::Version;

use crate::config::CRATES_IO;
use crate::host_cargo::{HostCargo, HostCargoError};
use crate::unpack::{UnpackError, unpack_crate};

/// A crate version as users name it: `NAME@VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrateVersion {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrateVersionError {
    #[error("`{0}` is not NAME@VERSION")]
    Form(String),
    #[error("invalid crate name `{0}`: letters, digits, `-` and `_` only, at most 64")]
    Name(String),
    #[error("invalid version `{0}`: {1}")]
    Version(String, String),
}

impl std::str::FromStr for CrateVersion {
    type Err = CrateVersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, version) = text
            .split_once('@')
            .ok_or_else(|| CrateVersionError::Form(text.to_string()))?;
        Self::new(name, version)
    }
}

impl CrateVersion {
    /// Checks both parts: they end up in a manifest and in paths.
    pub fn new(name: &str, version: &str) -> Result<Self, CrateVersionError> {
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && name.starts_with(|c: char| c.is_ascii_alphabetic());
        if !valid_name {
            return Err(CrateVersionError::Name(name.to_string()));
        }
        let parsed = Version::parse(version)
            .map_err(|e| CrateVersionError::Version(version.to_string(), e.to_string()))?;
        Ok(Self {
            name: name.to_string(),
            version: parsed.to_string(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Cargo(#[from] HostCargoError),
    #[error("cargo fetched `{0}` but its archive is not in the cache")]
    NotInCache(String),
    #[error("refused the crate archive: {0}")]
    Unsafe(#[from] UnpackError),
    #[error("cannot prepare the download in {0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
}

/// Downloads `krate` from `registry` and unpacks it into `dest`. `scratch` holds the
/// throwaway manifest cargo resolves.
pub fn fetch_crate(
    cargo: &HostCargo,
    registry: &str,
    krate: &CrateVersion,
    scratch: &Path,
    dest: &Path,
) -> Result<(), FetchError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e| FetchError::Io(path, e)
    };
    std::fs::create_dir_all(scratch.join("src")).map_err(io(scratch))?;
    let registry_key = if registry == CRATES_IO {
        String::new()
    } else {
        format!(", registry = \"{registry}\"")
    };
    // Names and versions are checked by `CrateVersion`; the registry name comes from
    // the configuration and is checked here, since it lands in TOML.
    if !registry
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(FetchError::Cargo(HostCargoError {
            command: "fetch",
            message: format!("invalid registry name `{registry}`"),
            infrastructure: false,
        }));
    }
    let manifest = format!(
        "[package]\nname = \"docbuild-fetch-scratch\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
         publish = false\n\n[dependencies]\nwanted = {{ package = \"{}\", version = \"={}\"{registry_key} }}\n\n\
         [workspace]\n",
        krate.name, krate.version
    );
    std::fs::write(scratch.join("Cargo.toml"), manifest).map_err(io(scratch))?;
    std::fs::write(scratch.join("src/lib.rs"), "").map_err(io(scratch))?;
    let _ = std::fs::remove_file(scratch.join("Cargo.lock"));
    cargo.fetch(scratch)?;

    let metadata = cargo.metadata(scratch)?;
    let wanted = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == krate.name && p.version.to_string() == krate.version)
        .ok_or_else(|| FetchError::NotInCache(format!("{}@{}", krate.name, krate.version)))?;
    // cargo unpacked it to registry/src/<index>/<name>-<version>/; the verified
    // archive sits at registry/cache/<index>/<name>-<version>.crate.
    let prefix = format!("{}-{}", krate.name, krate.version);
    let archive = wanted
        .manifest_path
        .parent()
        .and_then(|dir| dir.parent())
        .and_then(|index| index.file_name())
        .map(|index| {
            cargo
                .cargo_home()
                .join("registry/cache")
                .join(index)
                .join(format!("{prefix}.crate"))
        })
        .filter(|path| path.is_file())
        .ok_or_else(|| FetchError::NotInCache(prefix.clone()))?;
    if dest.exists() {
        std::fs::remove_dir_all(dest).map_err(io(dest))?;
    }
    unpack_crate(&archive, &prefix, dest)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_versions_are_checked() {
        let parsed: CrateVersion = "serde@1.0.200".parse().unwrap();
        assert_eq!(parsed, CrateVersion::new("serde", "1.0.200").unwrap());
        assert!(matches!(
            "serde".parse::<CrateVersion>(),
            Err(CrateVersionError::Form(_))
        ));
        for name in ["", "a\"b", "../x", "9lives", "a b", &"x".repeat(65)] {
            assert!(
                matches!(
                    CrateVersion::new(name, "1.0.0"),
                    Err(CrateVersionError::Name(_))
                ),
                "{name}"
            );
        }
        for version in ["1", "1.0", "one", "1.0.0\"", ""] {
            assert!(
                matches!(
                    CrateVersion::new("a", version),
                    Err(CrateVersionError::Version(..))
                ),
                "{version}"
            );
        }
    }
}
