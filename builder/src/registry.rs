//! Getting one published crate version from a Cargo registry.
//!
//! cargo itself does the download, on the host, into docbuild's cargo home: it knows
//! every registry the user's configuration and `docbuild.toml` name, speaks the sparse
//! and git protocols, sends tokens, and checks the archive's sha256 against the index.
//! The verified `.crate` is then unpacked again by [`crate::unpack`], which refuses
//! anything but files and directories below `NAME-VERSION/`.

use std::path::{Path, PathBuf};

use crate::config::CRATES_IO;
use crate::error::BuildError;
use crate::host_cargo::HostCargo;
use crate::host_cargo::Registries;
use crate::identity::{CrateName, RegistryName};
use crate::prepare::blocking;
use crate::unpack::unpack_crate;

pub use crate::identity::{CrateVersion, CrateVersionError};

/// The throwaway package cargo resolves a download for.
const SCRATCH_NAME: &str = "docbuild-fetch-scratch";

/// Downloads `krate` from `registry` and unpacks it into `dest`. `scratch` holds the
/// throwaway manifest cargo resolves.
pub async fn fetch_crate(
    cargo: &HostCargo,
    registry: &RegistryName,
    krate: &CrateVersion,
    scratch: &Path,
    dest: &Path,
) -> Result<(), BuildError> {
    let archive = fetch_archive(cargo, registry, krate, scratch).await?;
    unpack_archive(archive, krate, vec![dest.to_path_buf()]).await
}

/// Unpacks a verified `archive` of `krate` into each of `dests` (each replaced).
pub async fn unpack_archive(
    archive: PathBuf,
    krate: &CrateVersion,
    dests: Vec<PathBuf>,
) -> Result<(), BuildError> {
    let prefix = krate.archive_prefix();
    blocking(move || {
        for dest in dests {
            if dest.exists() {
                std::fs::remove_dir_all(&dest).map_err(BuildError::io(WHAT))?;
            }
            unpack_crate(&archive, &prefix, &dest)?;
        }
        Ok(())
    })
    .await
}

const WHAT: &str = "cannot prepare the download";

/// Downloads `krate` from `registry` with cargo, and answers where cargo keeps its
/// archive, checked against the index's sha256. `scratch` holds the throwaway
/// manifest cargo resolves.
pub async fn fetch_archive(
    cargo: &HostCargo,
    registry: &RegistryName,
    krate: &CrateVersion,
    scratch: &Path,
) -> Result<PathBuf, BuildError> {
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
        "[package]\nname = \"{SCRATCH_NAME}\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
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
    let lockfile = scratch.join("Cargo.lock");
    let _ = tokio::fs::remove_file(&lockfile).await;
    // A version cargo downloaded before (a rebuild) needs no index round trip: the
    // scratch package resolves from cargo's copy of the index, offline. Anything
    // missing from it (or from the downloads) sends cargo to the registry.
    let prefix = krate.archive_prefix();
    let home = cargo.cargo_home().to_path_buf();
    let cached = blocking(move || Ok(!cached_archives(&home, &prefix).is_empty())).await?;
    let offline = cached
        && cargo
            .fetch(&manifest_path, &["net.offline=true".to_string()])
            .await
            .is_ok();
    if !offline {
        let _ = tokio::fs::remove_file(&lockfile).await;
        cargo
            .fetch(&manifest_path, &[])
            .await
            .map_err(|mut error| {
                // The scratch package is docbuild's, not the user's: not in the message.
                error.message = without_scratch(&error.message, scratch, krate);
                error
            })?;
    }
    // The lockfile cargo just wrote has the index's sha256 of the archive.
    let (home, wanted) = (cargo.cargo_home().to_path_buf(), krate.clone());
    let locked = blocking(move || Ok(locked_archive(&home, &lockfile, &wanted))).await?;
    if let Some(archive) = locked {
        return Ok(archive);
    }

    // Not told apart by the lockfile (the same name and version from two
    // registries): where cargo unpacked the one the scratch package depends on.
    let metadata = cargo.metadata(&manifest_path, &[]).await?;
    let wanted = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == krate.name() && &p.version == krate.semver())
        .ok_or_else(|| BuildError::NotInCache(krate.to_string()))?;
    // cargo unpacked it to registry/src/<index>/<name>-<version>/; the verified
    // archive sits at registry/cache/<index>/<name>-<version>.crate.
    let prefix = krate.archive_prefix();
    wanted
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
        .ok_or_else(|| BuildError::NotInCache(krate.to_string()))
}

/// Every `<prefix>.crate` in cargo's download cache, whichever registry it came from.
fn cached_archives(cargo_home: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(indexes) = std::fs::read_dir(cargo_home.join("registry/cache")) else {
        return Vec::new();
    };
    indexes
        .flatten()
        .map(|index| index.path().join(format!("{prefix}.crate")))
        .filter(|path| path.is_file())
        .collect()
}

/// The archive of `krate` in cargo's download cache whose sha256 is the one the
/// scratch package's lockfile has for it (the index's, which cargo checked when it
/// downloaded it); `None` when the lockfile does not name exactly one.
fn locked_archive(cargo_home: &Path, lockfile: &Path, krate: &CrateVersion) -> Option<PathBuf> {
    let lock: toml::Table = std::fs::read_to_string(lockfile).ok()?.parse().ok()?;
    let mut checksums = lock
        .get("package")?
        .as_array()?
        .iter()
        .filter(|package| {
            package.get("name").and_then(toml::Value::as_str) == Some(krate.name())
                && package
                    .get("version")
                    .and_then(toml::Value::as_str)
                    .and_then(|v| cargo_metadata::semver::Version::parse(v).ok())
                    .as_ref()
                    == Some(krate.semver())
        })
        .map(|package| package.get("checksum").and_then(toml::Value::as_str));
    let checksum = checksums.next()??.to_ascii_lowercase();
    if checksums.next().is_some() {
        return None;
    }
    cached_archives(cargo_home, &krate.archive_prefix())
        .into_iter()
        .find(|archive| sha256_file(archive).is_ok_and(|hash| hash == checksum))
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// cargo's error about the scratch manifest, without the scratch package's name and
/// path ("required by package `docbuild-fetch-scratch v0.0.0 (/…)`").
fn without_scratch(message: &str, scratch: &Path, krate: &CrateVersion) -> String {
    let scratch = scratch.display().to_string();
    message
        .split(": ")
        .filter(|part| !part.contains(SCRATCH_NAME) && !part.contains(&scratch))
        .collect::<Vec<_>>()
        .join(": ")
        .replace("`wanted = ", &format!("`{} = ", krate.name()))
        .replace("`wanted`", &format!("`{}`", krate.name()))
}

/// crates.io's sparse index, for registries named `crates-io` that nobody redefined.
pub const CRATES_IO_INDEX: &str = "sparse+https://index.crates.io/";

/// How long one index request may take.
const INDEX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A registry's index as docbuild reads it itself: its name, URL and token.
#[derive(Debug, Clone)]
pub struct RegistryIndex {
    pub name: RegistryName,
    pub url: String,
    token: Option<String>,
}

/// What an index says about one crate version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// Listed, and not yanked.
    Available,
    /// Listed, but yanked: cargo fetches it for no new dependent.
    Yanked,
    /// Not listed: `newest` is the newest version the index has, if any.
    Missing {
        newest: Option<cargo_metadata::semver::Version>,
    },
    /// The index has no such crate.
    NoCrate,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LookupError {
    #[error(
        "registry `{0}` has a git index, which docbuild does not read itself: name the version (NAME@VERSION)"
    )]
    GitIndex(String),
    #[error("cannot read the index of registry `{registry}`: {message}")]
    Unreachable { registry: String, message: String },
}

impl RegistryIndex {
    /// The index of `registry` as `registries` (the user's cargo configuration and
    /// `docbuild.toml`) define it; `crates-io` is crates.io's sparse index unless
    /// redefined. `None` for a registry nobody defined.
    pub fn of(registry: &RegistryName, registries: &Registries) -> Option<Self> {
        match registries.get(registry.as_str()) {
            Some(defined) => Some(Self {
                name: registry.clone(),
                url: defined.index.clone(),
                token: defined.token().map(str::to_string),
            }),
            None if registry.as_str() == CRATES_IO => Some(Self {
                name: registry.clone(),
                url: CRATES_IO_INDEX.to_string(),
                token: None,
            }),
            None => None,
        }
    }

    /// Every valid, non-yanked version the index lists for `name` (`None`: no such
    /// crate), read over HTTP from a sparse index, with the registry's token.
    pub async fn versions(
        &self,
        name: &CrateName,
    ) -> Result<Option<Vec<(cargo_metadata::semver::Version, bool)>>, LookupError> {
        let Some(base) = self.url.strip_prefix("sparse+") else {
            return Err(LookupError::GitIndex(self.name.to_string()));
        };
        let url = format!(
            "{}/{}",
            base.trim_end_matches('/'),
            crate::watch::index_path(name.as_str())
        );
        let (token, registry, expected) = (
            self.token.clone(),
            self.name.to_string(),
            name.as_str().to_string(),
        );
        let unreachable = move |message: String| LookupError::Unreachable {
            registry: registry.clone(),
            message,
        };
        let fetched = tokio::task::spawn_blocking(move || -> Result<Option<String>, String> {
            let agent = crate::http::agent(INDEX_TIMEOUT);
            let mut request = agent.get(&url);
            if let Some(token) = &token {
                request = request.header("Authorization", token);
            }
            let mut response = request.call().map_err(|e| format!("{url}: {e}"))?;
            match response.status().as_u16() {
                200 => {}
                404 | 410 | 451 => return Ok(None),
                status => return Err(format!("{url}: status {status}")),
            }
            response
                .body_mut()
                .with_config()
                .limit(64 << 20)
                .read_to_string()
                .map(Some)
                .map_err(|e| format!("{url}: {e}"))
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|fetched| fetched);
        let body = match fetched {
            Ok(Some(body)) => body,
            Ok(None) => return Ok(None),
            Err(message) => return Err(unreachable(message)),
        };
        #[derive(serde::Deserialize)]
        struct Line {
            name: String,
            vers: String,
            #[serde(default)]
            yanked: bool,
        }
        // An index is not trusted: each line is validated, others are skipped.
        let versions = body
            .lines()
            .filter_map(|line| serde_json::from_str::<Line>(line).ok())
            .filter_map(|line| {
                let krate = CrateVersion::new(&line.name, &line.vers).ok()?;
                krate
                    .name()
                    .eq_ignore_ascii_case(&expected)
                    .then(|| (krate.semver().clone(), line.yanked))
            })
            .collect();
        Ok(Some(versions))
    }

    /// The newest version of `name` as `cargo install NAME` picks it: the highest
    /// release that is not yanked, else the highest pre-release.
    pub async fn newest(&self, name: &CrateName) -> Result<Option<CrateVersion>, LookupError> {
        let Some(versions) = self.versions(name).await? else {
            return Ok(None);
        };
        let newest = newest_of(&versions);
        Ok(newest.and_then(|v| CrateVersion::new(name.as_str(), &v.to_string()).ok()))
    }

    /// Whether the index lists `krate`.
    pub async fn listing(&self, krate: &CrateVersion) -> Result<Listing, LookupError> {
        let Some(versions) = self.versions(krate.crate_name()).await? else {
            return Ok(Listing::NoCrate);
        };
        Ok(
            match versions
                .iter()
                .find(|(version, _)| version == krate.semver())
            {
                Some((_, false)) => Listing::Available,
                Some((_, true)) => Listing::Yanked,
                None => Listing::Missing {
                    newest: newest_of(&versions),
                },
            },
        )
    }
}

fn newest_of(
    versions: &[(cargo_metadata::semver::Version, bool)],
) -> Option<cargo_metadata::semver::Version> {
    let available = versions.iter().filter(|(_, yanked)| !yanked);
    available
        .clone()
        .filter(|(version, _)| version.pre.is_empty())
        .map(|(version, _)| version)
        .max()
        .or_else(|| available.map(|(version, _)| version).max())
        .cloned()
}

impl Listing {
    /// Why the index does not offer `krate`, naming the registry; `None` when it does.
    pub fn reason(&self, krate: &CrateVersion, registry: &RegistryName) -> Option<String> {
        match self {
            Listing::Available => None,
            Listing::Yanked => Some(format!(
                "`{}` {} is yanked in registry `{registry}`",
                krate.name(),
                krate.version()
            )),
            Listing::Missing { newest } => Some(format!(
                "`{}` has no version {} in registry `{registry}`{}",
                krate.name(),
                krate.version(),
                newest
                    .as_ref()
                    .map(|v| format!(" (newest: {v})"))
                    .unwrap_or_default()
            )),
            Listing::NoCrate => Some(format!(
                "no crate `{}` in registry `{registry}`",
                krate.name()
            )),
        }
    }
}

/// Why `krate` cannot be had from `registry`, in words that name both, when its
/// index says so; `None` when it lists the version (or cannot be read).
pub async fn unavailable(
    registries: &Registries,
    registry: &RegistryName,
    krate: &CrateVersion,
) -> Option<String> {
    let index = RegistryIndex::of(registry, registries)?;
    index.listing(krate).await.ok()?.reason(krate, registry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cargo_metadata::semver::Version;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn the_newest_version_is_the_highest_release_not_yanked() {
        let versions = [
            (v("0.1.0"), false),
            (v("0.2.0"), false),
            (v("0.3.0"), true),
            (v("0.4.0-rc.1"), false),
        ];
        assert_eq!(newest_of(&versions), Some(v("0.2.0")));
        let only_pre = [(v("1.0.0-alpha"), false), (v("1.0.0-beta"), false)];
        assert_eq!(newest_of(&only_pre), Some(v("1.0.0-beta")));
        assert_eq!(newest_of(&[(v("1.0.0"), true)]), None);
    }

    #[test]
    fn a_missing_release_is_named_with_its_registry() {
        let krate = CrateVersion::new("serde", "9.9.9").unwrap();
        let registry = RegistryName::new("my-reg").unwrap();
        let missing = Listing::Missing {
            newest: Some(v("1.0.0")),
        };
        assert_eq!(
            missing.reason(&krate, &registry).unwrap(),
            "`serde` has no version 9.9.9 in registry `my-reg` (newest: 1.0.0)"
        );
        assert_eq!(
            Listing::NoCrate.reason(&krate, &registry).unwrap(),
            "no crate `serde` in registry `my-reg`"
        );
        assert_eq!(Listing::Available.reason(&krate, &registry), None);
    }

    #[test]
    fn the_archive_is_the_one_with_the_locked_checksum() {
        let home = tempfile::tempdir().unwrap();
        let archive = |index: &str, content: &[u8]| {
            let dir = home.path().join("registry/cache").join(index);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("x-1.0.0.crate"), content).unwrap();
            dir.join("x-1.0.0.crate")
        };
        archive("other.example-1", b"another registry's x");
        let ours = archive("index.crates.io-2", b"crates.io's x");
        let checksum = sha256_file(&ours).unwrap();
        let krate = CrateVersion::new("x", "1.0.0").unwrap();
        let lockfile = home.path().join("Cargo.lock");
        let lock = |checksum: &str| {
            format!(
                "version = 4\n\n[[package]]\nname = \"docbuild-fetch-scratch\"\nversion = \"0.0.0\"\n\
                 dependencies = [\"x\"]\n\n[[package]]\nname = \"x\"\nversion = \"1.0.0\"\n\
                 source = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{checksum}\"\n"
            )
        };
        std::fs::write(&lockfile, lock(&checksum)).unwrap();
        assert_eq!(locked_archive(home.path(), &lockfile, &krate), Some(ours));
        // An archive whose content is not what the index says is never taken.
        std::fs::write(&lockfile, lock(&"0".repeat(64))).unwrap();
        assert_eq!(locked_archive(home.path(), &lockfile, &krate), None);
    }

    #[test]
    fn cargo_errors_lose_the_scratch_package() {
        let message = "failed to select a version for the requirement `wanted = \"=9.9.9\"`: \
                       location searched: crates.io index: required by package \
                       `docbuild-fetch-scratch v0.0.0 (/data/work/crates-io/x/9.9.9/fetch)`";
        let krate = CrateVersion::new("x", "9.9.9").unwrap();
        let cleaned = without_scratch(
            message,
            Path::new("/data/work/crates-io/x/9.9.9/fetch"),
            &krate,
        );
        assert!(
            !cleaned.contains("scratch") && !cleaned.contains("/data"),
            "{cleaned}"
        );
        assert!(cleaned.contains("requirement `x = "), "{cleaned}");
        assert!(cleaned.contains("location searched"), "{cleaned}");
    }
}
