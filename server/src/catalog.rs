//! What has been built and where its files are: the store's catalog, with the
//! releases the hot path needs kept in memory.

use std::sync::Arc;

use docbuild_builder::CrateReport;
use docbuild_store::archive::Manifest;
use docbuild_store::{DbError, Store};
use semver::{Version, VersionReq};

use crate::cache::Cache;

pub use docbuild_store::catalog::normalize;

/// One release with docs: its newest successful build.
#[derive(Debug)]
pub struct Release {
    pub registry: String,
    pub name: String,
    pub version: Version,
    pub build: i64,
    pub record: Option<CrateReport>,
    lib_name: Option<String>,
    other_targets: Vec<String>,
    /// Where its files are, read from storage on the first request for one.
    manifest: tokio::sync::OnceCell<Arc<Manifest>>,
}

impl Release {
    fn new(entry: docbuild_store::catalog::ReleaseBuild) -> Self {
        let record: Option<CrateReport> = serde_json::from_str(&entry.record).ok();
        let lib_name = record
            .as_ref()
            .and_then(|r| r.docs())
            .and_then(|docs| docs.parent()?.file_name())
            .map(|dir| dir.to_string_lossy().into_owned());
        let other_targets = record
            .as_ref()
            .map(|r| {
                r.targets
                    .iter()
                    .skip(1)
                    .filter(|t| t.docs.is_some())
                    .map(|t| t.target.clone())
                    .collect()
            })
            .unwrap_or_default();
        Self {
            registry: entry.build.registry,
            name: entry.build.name,
            version: entry.version,
            build: entry.build.id,
            record,
            lib_name,
            other_targets,
            manifest: Default::default(),
        }
    }

    /// The library's crate name, from where its `index.html` was put.
    pub fn lib_name(&self) -> Option<&str> {
        self.lib_name.as_deref()
    }

    pub fn default_target(&self) -> Option<&str> {
        self.record.as_ref()?.default_target.as_deref()
    }

    /// Targets besides the default one that have docs.
    pub fn other_targets(&self) -> &[String] {
        &self.other_targets
    }

    /// Its files: read once, then kept with the release.
    pub async fn manifest(&self, store: &Store) -> Option<Arc<Manifest>> {
        self.manifest
            .get_or_try_init(|| async {
                match store.builds().manifest(self.build).await {
                    Ok(Some(manifest)) => Ok(Arc::new(manifest)),
                    Ok(None) => Err(()),
                    Err(error) => {
                        tracing::error!(build = self.build, %error, "cannot read a build's manifest");
                        Err(())
                    }
                }
            })
            .await
            .ok()
            .cloned()
    }
}

/// A version without docs, as the version picker lists it.
#[derive(Debug, Clone)]
pub struct VersionWithoutDocs {
    pub version: Version,
    /// Its newest build's outcome, or `queued` / `running`.
    pub state: String,
}

/// One build, for a crate's build history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildSummary {
    pub id: i64,
    pub registry: String,
    pub outcome: String,
    pub finished_at: i64,
    pub message: Option<String>,
    pub toolchain: Option<String>,
    pub duration_ms: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
#[error("catalog: {0}")]
pub struct CatalogError(#[from] DbError);

/// Read access to the builds.
#[derive(Clone)]
pub struct Catalog {
    store: Store,
    cache: Arc<Cache>,
}

impl Catalog {
    pub fn new(store: Store) -> Self {
        let cache = Arc::new(Cache::new(&store));
        Self { store, cache }
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Every crate with at least one successful build, with its newest version.
    pub async fn crates(&self) -> Result<Vec<(String, String)>, CatalogError> {
        Ok(self
            .store
            .catalog()
            .crates()
            .await?
            .into_iter()
            .map(|(name, version)| (name, version.to_string()))
            .collect())
    }

    /// Releases of a crate with docs, newest version first; kept in memory until the
    /// store changes.
    pub async fn releases(&self, name: &str) -> Result<Arc<Vec<Arc<Release>>>, CatalogError> {
        let key = normalize(name);
        if let Some(releases) = self.cache.releases(&key) {
            return Ok(releases);
        }
        let releases: Arc<Vec<Arc<Release>>> = Arc::new(
            self.store
                .catalog()
                .releases(&key)
                .await?
                .into_iter()
                .map(|entry| Arc::new(Release::new(entry)))
                .collect(),
        );
        self.cache.set_releases(&key, Arc::clone(&releases));
        Ok(releases)
    }

    /// Versions of a crate without docs (failed, queued, running), newest first;
    /// kept in memory until the store changes.
    pub async fn without_docs(
        &self,
        name: &str,
    ) -> Result<Arc<Vec<VersionWithoutDocs>>, CatalogError> {
        let key = normalize(name);
        if let Some(versions) = self.cache.without_docs(&key) {
            return Ok(versions);
        }
        let builds = self.store.catalog().crate_builds(&key).await?;
        let pending = self.store.queue().pending_jobs().await?;
        let mut versions: Vec<VersionWithoutDocs> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        let with_docs: std::collections::BTreeSet<&str> = builds
            .iter()
            .filter(|b| b.outcome.as_str() == "success")
            .map(|b| b.version.as_str())
            .collect();
        let states = pending
            .iter()
            .filter(|job| normalize(&job.name) == key)
            .map(|job| (job.version.as_str(), job.status.as_str()))
            .chain(
                builds
                    .iter()
                    .map(|b| (b.version.as_str(), b.outcome.as_str())),
            );
        for (version, state) in states {
            if with_docs.contains(version) || !seen.insert(version) {
                continue;
            }
            if let Ok(parsed) = Version::parse(version) {
                versions.push(VersionWithoutDocs {
                    version: parsed,
                    state: state.to_string(),
                });
            }
        }
        versions.sort_by(|a, b| b.version.cmp(&a.version));
        let versions = Arc::new(versions);
        self.cache.set_without_docs(&key, Arc::clone(&versions));
        Ok(versions)
    }

    /// The release a URL's version names: `latest`, an exact version, or a semver
    /// requirement (`1`, `~1.2`, `*`). "Latest" prefers releases that are not
    /// pre-releases.
    pub async fn resolve(
        &self,
        name: &str,
        requested: &str,
    ) -> Result<Option<Arc<Release>>, CatalogError> {
        let releases = self.releases(name).await?;
        if requested == "latest" || requested == "newest" || requested.is_empty() {
            let stable = releases.iter().find(|r| r.version.pre.is_empty());
            return Ok(stable.or(releases.first()).cloned());
        }
        if let Ok(exact) = Version::parse(requested)
            && let Some(release) = releases.iter().find(|r| r.version == exact)
        {
            return Ok(Some(release.clone()));
        }
        let Ok(requirement) = VersionReq::parse(requested) else {
            return Ok(None);
        };
        Ok(releases
            .iter()
            .find(|r| requirement.matches(&r.version))
            .cloned())
    }

    /// Every build of a crate version, newest first, successful or not.
    pub async fn builds(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Vec<BuildSummary>, CatalogError> {
        let builds = self.store.catalog().builds(name, version).await?;
        Ok(builds
            .into_iter()
            .map(|entry| {
                let report =
                    serde_json::from_str::<serde_json::Value>(&entry.record).unwrap_or_default();
                BuildSummary {
                    id: entry.build.id,
                    registry: entry.build.registry,
                    outcome: entry.build.outcome.to_string(),
                    finished_at: entry.build.finished_at,
                    message: report["message"].as_str().map(str::to_string),
                    toolchain: report["toolchain"].as_str().map(str::to_string),
                    duration_ms: report["duration_ms"].as_u64(),
                    memory_peak_bytes: report["memory_peak_bytes"].as_u64(),
                }
            })
            .collect())
    }

    /// The log of a build of a crate version, if it is one of that version's and has
    /// a log.
    pub async fn log(&self, name: &str, version: &str, build: i64) -> Option<String> {
        let entry = self
            .store
            .catalog()
            .build(name, version, build)
            .await
            .ok()??;
        match self.store.builds().log(entry.build.id).await {
            Ok(log) => log,
            Err(error) => {
                tracing::error!(build, %error, "cannot read a build's log");
                None
            }
        }
    }
}
