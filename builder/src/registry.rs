//! Getting one published crate version from a Cargo registry.
//!
//! cargo itself does the download, on the host, into docbuild's cargo home: it knows
//! every registry the user's configuration and `docbuild.toml` name, speaks the sparse
//! and git protocols, sends tokens, and checks the archive's sha256 against the index.
//! The verified `.crate` is then unpacked again by [`crate::unpack`], which refuses
//! anything but files and directories below `NAME-VERSION/`.

use std::path::Path;

use crate::config::CRATES_IO;
use crate::error::BuildError;
use crate::host_cargo::HostCargo;
use crate::identity::RegistryName;
use crate::prepare::blocking;
use crate::unpack::unpack_crate;

pub use crate::identity::{CrateVersion, CrateVersionError};

/// Downloads `krate` from `registry` and unpacks it into `dest`. `scratch` holds the
/// throwaway manifest cargo resolves.
pub async fn fetch_crate(
    cargo: &HostCargo,
    registry: &RegistryName,
    krate: &CrateVersion,
    scratch: &Path,
    dest: &Path,
) -> Result<(), BuildError> {
    const WHAT: &str = "cannot prepare the download";
    tokio::fs::create_dir_all(scratch.join("src"))
        .await
        .map_err(BuildError::io(WHAT))?;
    let registry_key = if registry.as_str() == CRATES_IO {
        String::new()
    } else {
        format!(", registry = \"{registry}\"")
    };
    // Every part is a validated identity, safe inside TOML strings.
    let manifest = format!(
        "[package]\nname = \"docbuild-fetch-scratch\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
         publish = false\n\n[dependencies]\nwanted = {{ package = \"{}\", version = \"={}\"{registry_key} }}\n\n\
         [workspace]\n",
        krate.name(),
        krate.version()
    );
    let manifest_path = scratch.join("Cargo.toml");
    tokio::fs::write(&manifest_path, manifest)
        .await
        .map_err(BuildError::io(WHAT))?;
    tokio::fs::write(scratch.join("src/lib.rs"), "")
        .await
        .map_err(BuildError::io(WHAT))?;
    let _ = tokio::fs::remove_file(scratch.join("Cargo.lock")).await;
    cargo.fetch(&manifest_path, &[]).await?;

    let metadata = cargo.metadata(&manifest_path, &[]).await?;
    let wanted = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == krate.name() && &p.version == krate.semver())
        .ok_or_else(|| BuildError::NotInCache(krate.to_string()))?;
    // cargo unpacked it to registry/src/<index>/<name>-<version>/; the verified
    // archive sits at registry/cache/<index>/<name>-<version>.crate.
    let prefix = krate.archive_prefix();
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
        .ok_or_else(|| BuildError::NotInCache(krate.to_string()))?;
    let dest = dest.to_path_buf();
    blocking(move || {
        if dest.exists() {
            std::fs::remove_dir_all(&dest).map_err(BuildError::io(WHAT))?;
        }
        unpack_crate(&archive, &prefix, &dest)?;
        Ok(())
    })
    .await
}
