//! `check`'s public API comparison: the local build's rustdoc JSON against the newest
//! earlier version published in the package's registry, and whether the local version
//! number is a large enough bump for the changes.
//!
//! The baseline's JSON comes from the cache (`<cache>/api-baseline/<registry>/`), else
//! from the viewer at `[server] url`, else from a build of the published `.crate`:
//! downloaded by host-side cargo (checksum verified against the index), unpacked by the
//! link-refusing unpacker and built by the same sandboxed [`crate::check`] pipeline as
//! every build; no code of the crate runs on the host. Nothing here changes a build's
//! outcome: what cannot be compared is said in one line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use docbuild_api::{Bump, Change};
use semver::Version;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::check::{CacheDirs, CheckOptions, Progress, check};
use crate::error::BuildError;
use crate::host_cargo::{HostCargo, Registries};
use crate::identity::{CrateName, CrateVersion, RegistryName};
use crate::outcome::{CrateReport, Outcome};
use crate::prepare::{SourceMode, blocking};
use crate::registry::{LookupError, RegistryIndex, fetch_crate};
use crate::toolchain::Toolchain;

/// How long the viewer may take to answer for a baseline's JSON.
const SERVER_TIMEOUT: Duration = Duration::from_secs(60);

/// The public API compared with the newest earlier published version, or why it was
/// not. `check --json`'s `"api"`, tagged by `"status"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum ApiReport {
    /// Compared with `baseline`.
    Compared {
        registry: String,
        /// The published version compared with.
        baseline: String,
        /// Where its JSON came from: `cache`, `server` or `built`.
        source: BaselineSource,
        /// `public API: 2 added, 1 removed, 1 changed; needs 0.3.0, version is 0.2.1`.
        summary: String,
        /// The largest bump the changes need.
        needed: Bump,
        /// The smallest version after `baseline` that the changes allow.
        required_version: String,
        /// Whether the local version is at least `required_version`.
        enough: bool,
        changes: Vec<Change>,
    },
    /// The registry has no version of the crate lower than the local one.
    NoBaseline { registry: String, message: String },
    /// The comparison could not be made; the outcome is the build's all the same.
    Failed { message: String },
}

impl ApiReport {
    fn failed(message: impl std::fmt::Display) -> Self {
        ApiReport::Failed {
            message: message.to_string(),
        }
    }

    /// One line for the text output, without indentation.
    pub fn line(&self) -> String {
        match self {
            ApiReport::Compared { summary, .. } => summary.clone(),
            ApiReport::NoBaseline { message, .. } => format!("public API: {message}"),
            ApiReport::Failed { message } => format!("public API not compared: {message}"),
        }
    }

    /// For a version number too small for the changes: what it needs and why.
    pub fn note(&self, version: &str) -> Option<String> {
        match self {
            ApiReport::Compared {
                baseline,
                needed,
                required_version,
                enough: false,
                ..
            } => Some(format!(
                "version {version} is not a large enough bump: the changes since {baseline} \
                 are {} and need at least {required_version}",
                match needed {
                    Bump::Major => "breaking",
                    Bump::Minor => "additions",
                    Bump::Patch | Bump::None => "a new release",
                }
            )),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BaselineSource {
    Cache,
    Server,
    Built,
}

/// Where and how the baseline is found and built.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// The registry the package is published to (`crates-io` by default).
    pub registry: RegistryName,
    /// Registries as the user's cargo configuration and `docbuild.toml` define them.
    pub registries: Registries,
    /// `[server] url`: a viewer that may serve the baseline's JSON.
    pub server_url: Option<String>,
    /// The local check's options: the baseline is built with its image, limits and
    /// toolchain.
    pub build: CheckOptions,
}

/// Compares a successful check's rustdoc JSON with the newest earlier version in the
/// registry. `None` when there is nothing to compare (the build failed).
pub async fn compare(
    report: &CrateReport,
    options: &ApiOptions,
    cache: &CacheDirs,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Option<ApiReport> {
    if report.outcome != Outcome::Success {
        return None;
    }
    let (Some(name), Some(version)) = (&report.name, &report.version) else {
        return None;
    };
    Some(
        compare_with_registry(report, name, version, options, cache, progress, cancel)
            .await
            .unwrap_or_else(|report| report),
    )
}

async fn compare_with_registry(
    report: &CrateReport,
    name: &str,
    version: &str,
    options: &ApiOptions,
    cache: &CacheDirs,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<ApiReport, ApiReport> {
    let local = Version::parse(version).map_err(ApiReport::failed)?;
    let Some((json, format_version)) = report
        .json
        .as_ref()
        .and_then(|j| Some((j.path.clone()?, j.format_version)))
    else {
        return Err(ApiReport::failed(
            "no rustdoc JSON was made for this build (the log says why)",
        ));
    };
    // Known before any registry is asked or any baseline built.
    if format_version != docbuild_api::FORMAT_VERSION {
        return Err(ApiReport::failed(docbuild_api::Error::FormatVersion {
            found: format_version,
            supported: docbuild_api::FORMAT_VERSION,
        }));
    }
    let registry = &options.registry;
    let index = RegistryIndex::of(registry, &options.registries).ok_or_else(|| {
        ApiReport::failed(format!(
            "unknown registry `{registry}`: name its index under [registries] in \
             docbuild.toml or in cargo's configuration"
        ))
    })?;
    let crate_name = CrateName::new(name).map_err(ApiReport::failed)?;
    progress.step(&format!("looking up {name} in registry `{registry}`"));
    let versions = index
        .versions(&crate_name)
        .await
        .map_err(|error| match error {
            LookupError::GitIndex(registry) => ApiReport::failed(format!(
                "registry `{registry}` has a git index, which docbuild does not read itself"
            )),
            error => ApiReport::failed(error),
        })?;
    let no_baseline = |message: String| ApiReport::NoBaseline {
        registry: registry.to_string(),
        message,
    };
    let Some(versions) = versions else {
        return Ok(no_baseline(format!(
            "no earlier published version (`{name}` is not in registry `{registry}`)"
        )));
    };
    let Some(baseline) = baseline_of(&versions, &local) else {
        return Ok(no_baseline(format!(
            "no earlier published version of `{name}` below {local} in registry `{registry}`"
        )));
    };
    let krate = CrateVersion::new(name, &baseline.to_string()).map_err(ApiReport::failed)?;
    let (old_json, source) = baseline_json(&krate, options, cache, progress, cancel)
        .await
        .map_err(|why| ApiReport::failed(format!("baseline {name} {baseline}: {why}")))?;
    let new_bytes = tokio::fs::read(&json)
        .await
        .map_err(|e| ApiReport::failed(format!("reading {}: {e}", json.display())))?;
    let (old, new) = blocking(move || {
        let old = docbuild_api::from_json(&old_json);
        let new = docbuild_api::from_json(&new_bytes);
        Ok((old, new))
    })
    .await
    .map_err(ApiReport::failed)?;
    let old = old.map_err(|e| ApiReport::failed(format!("baseline {name} {baseline}: {e}")))?;
    let new = new.map_err(ApiReport::failed)?;
    let diff = docbuild_api::diff(&old, &new);
    Ok(ApiReport::Compared {
        registry: registry.to_string(),
        baseline: baseline.to_string(),
        source,
        summary: diff.summary(&baseline, &local),
        needed: diff.needed,
        required_version: docbuild_api::required_version(&baseline, diff.needed).to_string(),
        enough: docbuild_api::is_enough(&baseline, &local, diff.needed),
        changes: diff.changes,
    })
}

/// The newest version, not yanked, lower than `local`.
fn baseline_of(versions: &[(Version, bool)], local: &Version) -> Option<Version> {
    versions
        .iter()
        .filter(|(version, yanked)| !yanked && version < local)
        .map(|(version, _)| version)
        .max()
        .cloned()
}

/// `<cache>/api-baseline/<registry>/<name>-<version>.json`.
pub fn baseline_path(cache: &CacheDirs, registry: &RegistryName, krate: &CrateVersion) -> PathBuf {
    cache
        .root()
        .join("api-baseline")
        .join(registry.as_str())
        .join(format!("{}.json", krate.archive_prefix()))
}

/// The baseline's rustdoc JSON, checked to be of the supported format: cached, from
/// the viewer, or built in the sandbox (and cached).
async fn baseline_json(
    krate: &CrateVersion,
    options: &ApiOptions,
    cache: &CacheDirs,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<(Vec<u8>, BaselineSource), String> {
    let cached = baseline_path(cache, &options.registry, krate);
    if let Ok(bytes) = tokio::fs::read(&cached).await
        && docbuild_api::parse_crate(&bytes).is_ok()
    {
        return Ok((bytes, BaselineSource::Cache));
    }
    if let Some(url) = &options.server_url {
        progress.step(&format!("asking {url} for the API of {krate}"));
        if let Some(bytes) = from_server(url, krate).await
            && docbuild_api::parse_crate(&bytes).is_ok()
        {
            keep(&cached, &bytes).await;
            return Ok((bytes, BaselineSource::Server));
        }
    }
    progress.step(&format!("building {krate} for its public API"));
    let bytes = build_baseline(krate, options, cache, progress, cancel).await?;
    docbuild_api::parse_crate(&bytes).map_err(|e| e.to_string())?;
    keep(&cached, &bytes).await;
    Ok((bytes, BaselineSource::Built))
}

/// Writes the cache file whole or not at all.
async fn keep(path: &Path, bytes: &[u8]) {
    let (path, bytes) = (path.to_path_buf(), bytes.to_vec());
    let _ = blocking(move || {
        let dir = path.parent().expect("a file in a directory");
        std::fs::create_dir_all(dir).map_err(BuildError::io("cannot cache the baseline"))?;
        let mut file = tempfile::NamedTempFile::new_in(dir)
            .map_err(BuildError::io("cannot cache the baseline"))?;
        std::io::Write::write_all(&mut file, &bytes)
            .map_err(BuildError::io("cannot cache the baseline"))?;
        file.persist(&path)
            .map_err(|e| BuildError::Io("cannot cache the baseline", e.error))?;
        Ok(())
    })
    .await;
}

/// `GET {url}/crate/{name}/{version}/json`; `None` on any failure (404 included).
async fn from_server(url: &str, krate: &CrateVersion) -> Option<Vec<u8>> {
    let url = format!(
        "{}/crate/{}/{}/json",
        url.trim_end_matches('/'),
        krate.name(),
        krate.version()
    );
    tokio::task::spawn_blocking(move || {
        let agent = crate::http::agent(SERVER_TIMEOUT);
        let mut response = agent.get(&url).call().ok()?;
        if response.status().as_u16() != 200 {
            return None;
        }
        response
            .body_mut()
            .with_config()
            .limit(crate::check::MAX_JSON_BYTES)
            .read_to_vec()
            .ok()
    })
    .await
    .ok()
    .flatten()
}

/// Downloads the published `.crate` (cargo verifies its checksum against the index),
/// unpacks it and builds it with the sandboxed check pipeline; its rustdoc JSON.
async fn build_baseline(
    krate: &CrateVersion,
    options: &ApiOptions,
    cache: &CacheDirs,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<Vec<u8>, String> {
    let work = cache
        .root()
        .join("api-baseline")
        .join(options.registry.as_str())
        .join("work")
        .join(krate.archive_prefix());
    let toolchain = Toolchain::resolve(options.build.toolchain.as_deref())
        .await
        .map_err(|e| BuildError::from(e).to_string())?;
    let cargo_home = cache.cargo_home();
    tokio::fs::create_dir_all(&cargo_home)
        .await
        .map_err(|e| format!("cannot create docbuild's cargo home: {e}"))?;
    let cargo = HostCargo::new(&toolchain, &cargo_home, &options.registries, cancel);
    let source = work.join("crate");
    progress.step(&format!("downloading {krate}"));
    fetch_crate(
        &cargo,
        &options.registry,
        krate,
        &work.join("fetch"),
        &source,
    )
    .await
    .map_err(|e| format!("cannot download it: {e}"))?;
    // A published crate is its own workspace root, wherever the cache is.
    let standalone = source.clone();
    blocking(move || {
        crate::prepare::make_standalone(&standalone)
            .map_err(BuildError::io("cannot read the crate's manifest"))
    })
    .await
    .map_err(|e| e.to_string())?;
    let build = CheckOptions {
        path: source,
        mode: SourceMode::AsIs,
        targets: Vec::new(),
        out: None,
        work_dir: Some(work.join("build")),
        registries: options.registries.clone(),
        // A published crate's own configuration is never read.
        project_registries: false,
        extern_map: Vec::new(),
        packaged: None,
        dependencies: Vec::new(),
        workspace_members: Vec::new(),
        deny_warnings: false,
        about: false,
        rustdoc_json: true,
        build_cache: None,
        ..options.build.clone()
    };
    let built = check(&build, cache, progress, cancel).await;
    if built.outcome != Outcome::Success {
        return Err(format!(
            "its build failed ({}): {}",
            built.outcome, built.message
        ));
    }
    let Some(json) = built.json.and_then(|j| j.path) else {
        return Err("its build made no rustdoc JSON (see its log)".to_string());
    };
    tokio::fs::read(&json)
        .await
        .map_err(|e| format!("reading {}: {e}", json.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn the_baseline_is_the_newest_lower_version_not_yanked() {
        let versions = [
            (v("0.1.0"), false),
            (v("0.2.0"), false),
            (v("0.2.1"), false),
            (v("0.2.2"), true),
            (v("0.3.0"), false),
        ];
        assert_eq!(baseline_of(&versions, &v("0.2.1")), Some(v("0.2.0")));
        assert_eq!(baseline_of(&versions, &v("0.2.3")), Some(v("0.2.1")));
        assert_eq!(baseline_of(&versions, &v("1.0.0")), Some(v("0.3.0")));
        assert_eq!(baseline_of(&versions, &v("0.1.0")), None);
        assert_eq!(baseline_of(&versions, &v("0.0.1")), None);
    }

    #[test]
    fn a_small_bump_gets_a_note() {
        let report = ApiReport::Compared {
            registry: "crates-io".into(),
            baseline: "0.2.0".into(),
            source: BaselineSource::Built,
            summary: "public API: 0 added, 1 removed, 0 changed; needs 0.3.0, version is 0.2.1"
                .into(),
            needed: Bump::Major,
            required_version: "0.3.0".into(),
            enough: false,
            changes: Vec::new(),
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["status"], "compared");
        assert_eq!(json["needed"], "major");
        assert_eq!(json["enough"], false);
        let note = report.note("0.2.1").unwrap();
        assert!(
            note.contains("0.3.0") && note.contains("breaking"),
            "{note}"
        );
        let failed = ApiReport::failed("no network");
        assert_eq!(
            serde_json::to_value(&failed).unwrap(),
            serde_json::json!({"status": "failed", "message": "no network"})
        );
        assert_eq!(failed.note("0.2.1"), None);
    }
}
