//! What has been built, as the viewer reads it: crates, their releases with docs, and
//! every build of a release.

use semver::Version;

use crate::db::{Db, DbError, Row};
use crate::params;
use crate::queue::{BuildRecord, CURRENT};

/// Crate names match with `-` and `_` alike, as on crates.io.
pub fn normalize(name: &str) -> String {
    name.to_ascii_lowercase().replace('-', "_")
}

/// SQL for [`normalize`] applied to the `name` column.
const NORMALIZED_NAME: &str = "replace(lower(name), '-', '_')";

/// One release with docs: its current build (see [`crate::queue::Queue::current_build`]).
#[derive(Debug, Clone)]
pub struct ReleaseBuild {
    pub build: BuildRecord,
    pub version: Version,
    /// The report it was settled with, as JSON.
    pub record: String,
}

/// One build of a release, for its build history.
#[derive(Debug, Clone)]
pub struct BuildEntry {
    pub build: BuildRecord,
    pub record: String,
}

/// A release as lists show it: its newest finished build and what the package says
/// of itself.
#[derive(Debug, Clone)]
pub struct ReleaseSummary {
    pub build: BuildRecord,
    pub description: Option<String>,
    pub keywords: Vec<String>,
}

/// The catalog: a view of the store's database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Catalog {
    db: Db,
}

const COLUMNS: &str = "id, registry, name, version, outcome, finished_at, stored, record";

fn entry(row: &Row) -> Result<BuildEntry, DbError> {
    Ok(BuildEntry {
        build: crate::queue::build_from_row(row)?,
        record: row.get(7)?,
    })
}

impl Catalog {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Every crate with docs, with its newest version that has them.
    pub async fn crates(&self) -> Result<Vec<(String, Version)>, DbError> {
        let rows = self
            .db
            .read(|conn| {
                conn.query(
                    &format!(
                        "SELECT DISTINCT name, version FROM builds WHERE {CURRENT} ORDER BY name"
                    ),
                    &[],
                )
            })
            .await?;
        let mut newest: std::collections::BTreeMap<String, Version> = Default::default();
        for row in rows {
            let (name, version): (String, String) = (row.get(0)?, row.get(1)?);
            let Ok(version) = Version::parse(&version) else {
                continue;
            };
            match newest.get(&name) {
                Some(known) if *known >= version => {}
                _ => {
                    newest.insert(name, version);
                }
            }
        }
        Ok(newest.into_iter().collect())
    }

    /// Releases of a crate (by normalized name) with docs, newest version first, each
    /// with its current build.
    pub async fn releases(&self, name: &str) -> Result<Vec<ReleaseBuild>, DbError> {
        let name = normalize(name);
        let rows = self
            .db
            .read(move |conn| {
                conn.query(
                    &format!(
                        "SELECT {COLUMNS} FROM builds WHERE id IN (
                             SELECT MAX(id) FROM builds
                             WHERE {CURRENT} AND {NORMALIZED_NAME} = $1
                             GROUP BY registry, name, version)"
                    ),
                    params![name],
                )
            })
            .await?;
        let mut releases: Vec<ReleaseBuild> = rows
            .iter()
            .map(entry)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter_map(|entry| {
                // Rows are validated when written; one that is not is never served.
                let id = entry.build.crate_id()?;
                Some(ReleaseBuild {
                    version: id.krate.semver().clone(),
                    build: entry.build,
                    record: entry.record,
                })
            })
            .collect();
        releases.sort_by(|a, b| b.version.cmp(&a.version).then(b.build.id.cmp(&a.build.id)));
        Ok(releases)
    }

    /// Every build of a crate version, newest first, successful or not.
    pub async fn builds(&self, name: &str, version: &str) -> Result<Vec<BuildEntry>, DbError> {
        let (name, version) = (normalize(name), version.to_string());
        let rows = self
            .db
            .read(move |conn| {
                conn.query(
                    &format!(
                        "SELECT {COLUMNS} FROM builds WHERE {NORMALIZED_NAME} = $1 AND version = $2
                         ORDER BY id DESC"
                    ),
                    params![name, version],
                )
            })
            .await?;
        rows.iter().map(entry).collect()
    }

    /// One build of a crate version, if it is one of that version's.
    pub async fn build(
        &self,
        name: &str,
        version: &str,
        id: i64,
    ) -> Result<Option<BuildEntry>, DbError> {
        let (name, version) = (normalize(name), version.to_string());
        let rows = self
            .db
            .read(move |conn| {
                conn.query(
                    &format!(
                        "SELECT {COLUMNS} FROM builds WHERE id = $1 AND {NORMALIZED_NAME} = $2
                         AND version = $3"
                    ),
                    params![id, name, version],
                )
            })
            .await?;
        rows.iter().map(entry).next().transpose()
    }

    /// Every release's newest finished build, whatever its outcome, newest first,
    /// with what the package says of itself for lists and search.
    pub async fn summaries(&self) -> Result<Vec<ReleaseSummary>, DbError> {
        let rows = self
            .db
            .read(|conn| {
                let about = |field: &str| match conn.dialect() {
                    crate::db::Dialect::Sqlite => {
                        format!("json_extract(record, '$.about.{field}')")
                    }
                    crate::db::Dialect::Postgres => {
                        format!("(record::json->'about'->'{field}')::TEXT")
                    }
                };
                let statement = format!(
                    "SELECT id, registry, name, version, outcome, finished_at, stored, {}, {}
                     FROM builds WHERE id IN (
                         SELECT MAX(id) FROM builds WHERE outcome != 'running'
                         GROUP BY registry, name, version)
                     ORDER BY id DESC",
                    about("description"),
                    about("keywords"),
                );
                conn.query(&statement, &[])
            })
            .await?;
        rows.iter()
            .map(|row| {
                let description: Option<String> = row.get(7)?;
                let keywords: Option<String> = row.get(8)?;
                Ok(ReleaseSummary {
                    build: crate::queue::build_from_row(row)?,
                    // SQLite gives the string itself, PostgreSQL its JSON text.
                    description: description
                        .map(|text| serde_json::from_str::<String>(&text).unwrap_or(text)),
                    keywords: keywords
                        .and_then(|text| serde_json::from_str(&text).ok())
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Every build of a crate (by normalized name), newest first, without reports.
    pub async fn crate_builds(&self, name: &str) -> Result<Vec<BuildRecord>, DbError> {
        let name = normalize(name);
        let rows = self
            .db
            .read(move |conn| {
                conn.query(
                    &format!(
                        "SELECT id, registry, name, version, outcome, finished_at, stored
                         FROM builds WHERE {NORMALIZED_NAME} = $1 ORDER BY id DESC"
                    ),
                    params![name],
                )
            })
            .await?;
        rows.iter().map(crate::queue::build_from_row).collect()
    }

    /// The newest `limit` builds that did not succeed, newest first.
    pub async fn recent_failures(&self, limit: i64) -> Result<Vec<BuildEntry>, DbError> {
        let rows = self
            .db
            .read(move |conn| {
                conn.query(
                    &format!(
                        "SELECT {COLUMNS} FROM builds
                         WHERE outcome != 'success' AND outcome != 'running'
                         ORDER BY id DESC LIMIT $1"
                    ),
                    params![limit],
                )
            })
            .await?;
        rows.iter().map(entry).collect()
    }

    /// Every build that finished and is not stored in blob storage yet (made before
    /// blob storage existed).
    pub async fn unstored(&self) -> Result<Vec<BuildEntry>, DbError> {
        let rows = self
            .db
            .read(|conn| {
                conn.query(
                    &format!("SELECT {COLUMNS} FROM builds WHERE stored = 0 AND outcome != 'running' ORDER BY id"),
                    &[],
                )
            })
            .await?;
        rows.iter().map(entry).collect()
    }

    /// A number that changes whenever builds or tokens do: caches keyed on it are
    /// fresh while it stays the same.
    pub async fn generation(&self) -> Result<i64, DbError> {
        self.db
            .read(|conn| {
                let statement = match conn.dialect() {
                    crate::db::Dialect::Sqlite => {
                        "SELECT value FROM store_state WHERE key = 'generation'"
                    }
                    crate::db::Dialect::Postgres => {
                        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM store_generation"
                    }
                };
                conn.value(statement, &[])
            })
            .await
    }

    /// Jobs by status, and every finished build's outcome and duration: what
    /// `/metrics` reports.
    pub async fn metrics(&self) -> Result<StoreMetrics, DbError> {
        self.db
            .read(|conn| {
                let duration = match conn.dialect() {
                    crate::db::Dialect::Sqlite => "json_extract(record, '$.duration_ms')",
                    crate::db::Dialect::Postgres => "(record::json->>'duration_ms')::BIGINT",
                };
                let jobs = conn
                    .query("SELECT status, COUNT(*) FROM jobs GROUP BY status", &[])?
                    .iter()
                    .map(|row| Ok((row.get(0)?, row.get(1)?)))
                    .collect::<Result<_, DbError>>()?;
                let builds = conn
                    .query(
                        &format!(
                            "SELECT outcome, {duration} FROM builds WHERE outcome != 'running'"
                        ),
                        &[],
                    )?
                    .iter()
                    .map(|row| Ok((row.get(0)?, row.get(1)?)))
                    .collect::<Result<_, DbError>>()?;
                Ok(StoreMetrics { jobs, builds })
            })
            .await
    }
}

/// What the database says for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct StoreMetrics {
    /// (status, count).
    pub jobs: Vec<(String, i64)>,
    /// (outcome, duration in milliseconds) of every finished build.
    pub builds: Vec<(String, Option<i64>)>,
}
