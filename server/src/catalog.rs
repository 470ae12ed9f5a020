//! What has been built and where its files are: the read side of the builds that
//! workers store (`crates/<registry>/<name>/<version>/<build>/`).

use std::path::PathBuf;
use std::sync::Arc;

use docbuild_builder::CrateReport;
use docbuild_builder::config::DataDir;
use docbuild_builder::identity::CrateId;
use rusqlite::{Connection, OptionalExtension, params};
use semver::{Version, VersionReq};

use crate::cache::Cache;

/// One release with docs: its newest successful build.
#[derive(Debug, Clone)]
pub struct Release {
    pub registry: String,
    pub name: String,
    pub version: Version,
    pub build: i64,
    /// The stored build's directory.
    pub dir: PathBuf,
    pub record: Option<CrateReport>,
    lib_name: Option<String>,
    other_targets: Vec<String>,
}

impl Release {
    /// Root of the docs: the default target's at the top, others in `<target>/`.
    pub fn docs(&self) -> PathBuf {
        self.dir.join("docs")
    }

    fn new(registry: String, name: String, version: Version, build: i64, dir: PathBuf) -> Self {
        let record = read_record(&dir);
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
            registry,
            name,
            version,
            build,
            dir,
            record,
            lib_name,
            other_targets,
        }
    }

    /// The library's crate name, from where its `index.html` was stored.
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
pub struct CatalogError(#[from] rusqlite::Error);

/// Read access to the builds.
#[derive(Clone)]
pub struct Catalog {
    data: DataDir,
    cache: Arc<Cache>,
}

/// Crate names match with `-` and `_` alike, as on crates.io.
pub fn normalize(name: &str) -> String {
    name.to_ascii_lowercase().replace('-', "_")
}

impl Catalog {
    pub fn new(data: DataDir) -> Self {
        let cache = Arc::new(Cache::new(&data.database()));
        Self { data, cache }
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    pub fn data(&self) -> &DataDir {
        &self.data
    }

    fn connect(&self) -> Result<Connection, CatalogError> {
        let connection = Connection::open(self.data.database())?;
        connection.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(connection)
    }

    /// Every crate with at least one successful build, with its newest version.
    pub fn crates(&self) -> Result<Vec<(String, String)>, CatalogError> {
        let connection = self.connect()?;
        let mut statement = connection
            .prepare("SELECT name, version FROM builds WHERE outcome = 'success' ORDER BY name")?;
        let rows: Vec<(String, String)> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut newest: std::collections::BTreeMap<String, Version> = Default::default();
        for (name, version) in rows {
            let Ok(version) = Version::parse(&version) else {
                continue;
            };
            let entry = newest.entry(name).or_insert_with(|| version.clone());
            if version > *entry {
                *entry = version;
            }
        }
        Ok(newest
            .into_iter()
            .map(|(n, v)| (n, v.to_string()))
            .collect())
    }

    /// Releases of a crate with docs, newest version first; kept in memory until the
    /// database changes.
    pub fn releases(&self, name: &str) -> Result<Arc<Vec<Arc<Release>>>, CatalogError> {
        let key = normalize(name);
        if let Some(releases) = self.cache.releases(&key) {
            return Ok(releases);
        }
        let releases = Arc::new(
            self.load_releases(&key)?
                .into_iter()
                .map(Arc::new)
                .collect(),
        );
        self.cache.set_releases(&key, Arc::clone(&releases));
        Ok(releases)
    }

    fn load_releases(&self, name: &str) -> Result<Vec<Release>, CatalogError> {
        let connection = self.connect()?;
        let mut statement = connection.prepare(
            "SELECT registry, name, version, MAX(id) FROM builds
             WHERE outcome = 'success' AND replace(lower(name), '-', '_') = ?1
             GROUP BY registry, name, version",
        )?;
        let rows: Vec<(String, String, String, i64)> = statement
            .query_map(params![normalize(name)], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut releases: Vec<Release> = rows
            .into_iter()
            .filter_map(|(registry, name, version, build)| {
                // Rows are validated when written; one that is not is never a path.
                let id = CrateId::new(&registry, &name, &version).ok()?;
                let dir = self.data.build_dir(&id, build);
                Some(Release::new(
                    registry,
                    name,
                    id.krate.semver().clone(),
                    build,
                    dir,
                ))
            })
            .collect();
        releases.sort_by(|a, b| b.version.cmp(&a.version).then(b.build.cmp(&a.build)));
        Ok(releases)
    }

    /// The release a URL's version names: `latest`, an exact version, or a semver
    /// requirement (`1`, `~1.2`, `*`). "Latest" prefers releases that are not
    /// pre-releases.
    pub fn resolve(
        &self,
        name: &str,
        requested: &str,
    ) -> Result<Option<Arc<Release>>, CatalogError> {
        let releases = self.releases(name)?;
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
    pub fn builds(&self, name: &str, version: &str) -> Result<Vec<BuildSummary>, CatalogError> {
        let connection = self.connect()?;
        let mut statement = connection.prepare(
            "SELECT id, registry, outcome, finished_at, record FROM builds
             WHERE replace(lower(name), '-', '_') = ?1 AND version = ?2 ORDER BY id DESC",
        )?;
        let builds = statement
            .query_map(params![normalize(name), version], |row| {
                let record: String = row.get(4)?;
                let report = serde_json::from_str::<serde_json::Value>(&record).unwrap_or_default();
                Ok(BuildSummary {
                    id: row.get(0)?,
                    registry: row.get(1)?,
                    outcome: row.get(2)?,
                    finished_at: row.get(3)?,
                    message: report["message"].as_str().map(str::to_string),
                    toolchain: report["toolchain"].as_str().map(str::to_string),
                    duration_ms: report["duration_ms"].as_u64(),
                    memory_peak_bytes: report["memory_peak_bytes"].as_u64(),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(builds)
    }

    /// Where a build of a crate version keeps its files.
    pub fn build_dir(
        &self,
        name: &str,
        version: &str,
        build: i64,
    ) -> Result<Option<PathBuf>, CatalogError> {
        let row: Option<(String, String)> = self
            .connect()?
            .query_row(
                "SELECT registry, name FROM builds WHERE id = ?1
                 AND replace(lower(name), '-', '_') = ?2 AND version = ?3",
                params![build, normalize(name), version],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        Ok(row
            .and_then(|(registry, name)| CrateId::new(&registry, &name, version).ok())
            .map(|id| self.data.build_dir(&id, build)))
    }
}

fn read_record(dir: &std::path::Path) -> Option<CrateReport> {
    let bytes = std::fs::read(dir.join("record.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}
