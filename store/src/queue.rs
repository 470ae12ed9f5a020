//! The build queue and the build records, shared by any number of workers in any
//! number of processes on any number of machines.
//!
//! A job is claimed with a lease: inside a transaction that holds SQLite's write lock,
//! or on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so two workers never get the same
//! job and never wait on each other's row. A worker that dies stops renewing its lease
//! and the job is claimed again once the lease runs out.

use std::time::Duration;

use serde::Serialize;

use crate::db::{Conn, Db, DbError, Dialect, FromValue, Row, ToValue, Value};
use crate::identity::CrateId;
use crate::outcome::Outcome;
use crate::{now, params};

/// Attempts a job gets when its builds end in `infrastructure-error`.
pub const MAX_ATTEMPTS: i64 = 5;

/// Priorities: lower builds sooner. New releases go before rebuilds, as on docs.rs.
pub const PRIORITY_NEW: i64 = 0;
pub const PRIORITY_REBUILD: i64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Done,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
        }
    }
}

impl ToValue for JobStatus {
    fn to_value(&self) -> Value {
        Value::Text(self.as_str().into())
    }
}

impl FromValue for JobStatus {
    fn from_value(value: Value) -> Result<Self, String> {
        match String::from_value(value)?.as_str() {
            "queued" => Ok(Self::Queued),
            "running" => Ok(Self::Running),
            "done" => Ok(Self::Done),
            other => Err(format!("unknown job status `{other}`")),
        }
    }
}

impl ToValue for Outcome {
    fn to_value(&self) -> Value {
        Value::Text(self.as_str().into())
    }
}

impl FromValue for Outcome {
    fn from_value(value: Value) -> Result<Self, String> {
        String::from_value(value)?.parse()
    }
}

/// Where a build stands: running, or finished with an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "&'static str")]
pub enum BuildState {
    Running,
    Finished(Outcome),
}

impl BuildState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Finished(outcome) => outcome.as_str(),
        }
    }

    pub fn outcome(self) -> Option<Outcome> {
        match self {
            Self::Running => None,
            Self::Finished(outcome) => Some(outcome),
        }
    }
}

impl From<BuildState> for &'static str {
    fn from(state: BuildState) -> Self {
        state.as_str()
    }
}

impl std::fmt::Display for BuildState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromValue for BuildState {
    fn from_value(value: Value) -> Result<Self, String> {
        match String::from_value(value)?.as_str() {
            "running" => Ok(Self::Running),
            other => other.parse().map(Self::Finished),
        }
    }
}

impl ToValue for BuildState {
    fn to_value(&self) -> Value {
        Value::Text(self.as_str().into())
    }
}

/// One job as `queue list` and `queue show` print it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: i64,
    pub name: String,
    pub version: String,
    pub registry: String,
    pub status: JobStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    pub attempts: i64,
    pub priority: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<i64>,
    /// The worker that holds the job while it runs, or that settled it once done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Where a local-path job's packaged sources are kept in blob storage.
    #[serde(skip)]
    pub sources: Option<String>,
    /// The job was running under a worker whose lease ran out.
    #[serde(skip)]
    pub taken_over: bool,
    /// When it was queued, its latest attempt began, and it was done (Unix seconds).
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
}

impl Job {
    /// The release it builds. Rows are validated when written, so this fails only on
    /// a database edited by hand.
    pub fn crate_id(&self) -> Result<CrateId, QueueError> {
        CrateId::new(&self.registry, &self.name, &self.version)
            .map_err(|e| QueueError::Corrupt(self.id, e.to_string()))
    }
}

/// One build, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildRecord {
    pub id: i64,
    pub registry: String,
    pub name: String,
    pub version: String,
    pub outcome: BuildState,
    pub finished_at: i64,
    /// Its docs and log are in blob storage (else it predates blob storage, or never
    /// got that far).
    #[serde(skip)]
    pub stored: bool,
}

impl BuildRecord {
    pub fn crate_id(&self) -> Option<CrateId> {
        CrateId::new(&self.registry, &self.name, &self.version).ok()
    }
}

/// How a build ended, as a worker settles its job.
#[derive(Debug, Clone)]
pub struct BuildResult {
    pub outcome: Outcome,
    pub message: Option<String>,
    /// The full report, as JSON.
    pub record: String,
    /// Its docs and log were put in blob storage.
    pub stored: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("no job {0}")]
    NoSuchJob(i64),
    /// The job is no longer this worker's: its lease ran out and another worker
    /// claimed it, or it was settled meanwhile. Nothing was changed.
    #[error("job {0} is no longer this worker's: its lease was lost")]
    LeaseLost(i64),
    /// A running job, or the builds of a release one of whose jobs runs, cannot be
    /// removed under its worker.
    #[error("job {0} is running; try again once it is done")]
    Running(i64),
    #[error("job {0} in the database is not valid: {1}")]
    Corrupt(i64, String),
}

/// The queue: a view of the store's database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Queue {
    db: Db,
}

const JOB_COLUMNS: &str = "id, name, version, registry, status, outcome, attempts, priority, message, build_id, sources, worker, created_at, started_at, finished_at";

fn job_from_row(row: &Row) -> Result<Job, DbError> {
    Ok(Job {
        id: row.get(0)?,
        name: row.get(1)?,
        version: row.get(2)?,
        registry: row.get(3)?,
        status: row.get(4)?,
        outcome: row.get(5)?,
        attempts: row.get(6)?,
        priority: row.get(7)?,
        message: row.get(8)?,
        build: row.get(9)?,
        sources: row.get(10)?,
        worker: row.get(11)?,
        taken_over: false,
        created_at: row.get(12)?,
        started_at: row.get(13)?,
        finished_at: row.get(14)?,
    })
}

const BUILD_COLUMNS: &str = "id, registry, name, version, outcome, finished_at, stored";

pub(crate) fn build_from_row(row: &Row) -> Result<BuildRecord, DbError> {
    Ok(BuildRecord {
        id: row.get(0)?,
        registry: row.get(1)?,
        name: row.get(2)?,
        version: row.get(3)?,
        outcome: row.get(4)?,
        finished_at: row.get(5)?,
        stored: row.get(6)?,
    })
}

fn jobs(conn: &mut dyn Conn, condition: &str, params: &[Value]) -> Result<Vec<Job>, DbError> {
    conn.query(
        &format!("SELECT {JOB_COLUMNS} FROM jobs {condition}"),
        params,
    )?
    .iter()
    .map(job_from_row)
    .collect()
}

fn builds(
    conn: &mut dyn Conn,
    condition: &str,
    params: &[Value],
) -> Result<Vec<BuildRecord>, DbError> {
    conn.query(
        &format!("SELECT {BUILD_COLUMNS} FROM builds {condition}"),
        params,
    )?
    .iter()
    .map(build_from_row)
    .collect()
}

/// Bumps the counter that tells viewers their caches of builds and tokens are stale.
/// On PostgreSQL a sequence, which transactions do not queue on.
pub(crate) fn changed(conn: &mut dyn Conn) -> Result<(), DbError> {
    let statement = match conn.dialect() {
        Dialect::Sqlite => "UPDATE store_state SET value = value + 1 WHERE key = 'generation'",
        Dialect::Postgres => "SELECT nextval('store_generation')",
    };
    conn.execute(statement, &[])?;
    Ok(())
}

impl Queue {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Queues a build unless one of the same release is queued or running, in which
    /// case that job's id is returned. The second value says whether it is new.
    pub async fn enqueue(&self, id: &CrateId, priority: i64) -> Result<(i64, bool), QueueError> {
        let (registry, name, version) = (
            id.registry.to_string(),
            id.krate.name().to_string(),
            id.krate.version(),
        );
        self.db
            .write(move |conn| {
                let existing: Option<i64> = conn.value(
                    "SELECT id FROM jobs WHERE registry = $1 AND name = $2 AND version = $3
                     AND status != 'done'",
                    params![registry, name, version],
                )?;
                if let Some(id) = existing {
                    return Ok((id, false));
                }
                // A release that was built before is a rebuild: new releases go first.
                let built_before: bool = conn.value(
                    "SELECT EXISTS (SELECT 1 FROM builds WHERE registry = $1 AND name = $2
                     AND version = $3)",
                    params![registry, name, version],
                )?;
                let priority = if built_before {
                    priority.max(PRIORITY_REBUILD)
                } else {
                    priority
                };
                // Two processes may race here on PostgreSQL: the unique index on
                // pending jobs lets one insert; the other finds its job.
                let inserted: Option<i64> = conn.value(
                    "INSERT INTO jobs (registry, name, version, priority, created_at)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (registry, name, version) WHERE status != 'done' DO NOTHING
                     RETURNING id",
                    params![registry, name, version, priority, now()],
                )?;
                match inserted {
                    Some(id) => Ok((id, true)),
                    None => {
                        let id: i64 = conn.value(
                            "SELECT id FROM jobs WHERE registry = $1 AND name = $2
                             AND version = $3 AND status != 'done'",
                            params![registry, name, version],
                        )?;
                        Ok((id, false))
                    }
                }
            })
            .await
    }

    /// Records where a local job's packaged sources are kept.
    pub async fn set_sources(&self, job: i64, key: &str) -> Result<(), QueueError> {
        let key = key.to_string();
        self.db
            .write(move |conn| {
                conn.execute(
                    "UPDATE jobs SET sources = $1 WHERE id = $2",
                    params![key, job],
                )
                .map_err(QueueError::from)
            })
            .await?;
        Ok(())
    }

    /// Removes a job that never became buildable (its sources could not be packaged).
    pub async fn forget(&self, job: i64) -> Result<(), QueueError> {
        self.db
            .write(move |conn| {
                conn.execute("DELETE FROM jobs WHERE id = $1", params![job])
                    .map_err(QueueError::from)
            })
            .await?;
        Ok(())
    }

    /// Claims the next job for `worker`, with a lease of `lease` that the worker must
    /// renew while it builds.
    pub async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>, QueueError> {
        let worker = worker.to_string();
        self.db.write(move |conn| claim(conn, &worker, lease)).await
    }

    /// Extends the lease of a job this worker holds; false if it is no longer ours.
    /// Blocking: for the thread that keeps a build's lease.
    pub fn renew_blocking(
        &self,
        job: i64,
        worker: &str,
        lease: Duration,
    ) -> Result<bool, QueueError> {
        let changed = self.db.write_blocking(|conn| {
            conn.execute(
                "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND worker = $3
                 AND status = 'running'",
                params![now() + lease.as_secs() as i64, job, worker],
            )
            .map_err(QueueError::from)
        })?;
        Ok(changed == 1)
    }

    pub async fn renew(&self, job: i64, worker: &str, lease: Duration) -> Result<bool, QueueError> {
        let (queue, worker) = (self.clone(), worker.to_string());
        crate::db::blocking(move || queue.renew_blocking(job, &worker, lease)).await
    }

    /// Starts a build record for a claimed job; its id names the build's storage.
    pub async fn begin_build(&self, job: &Job) -> Result<i64, QueueError> {
        let job = job.clone();
        self.db
            .write(move |conn| {
                let id: i64 = conn.value(
                    "INSERT INTO builds (job_id, registry, name, version, outcome, record, finished_at)
                     VALUES ($1, $2, $3, $4, 'running', '{}', 0) RETURNING id",
                    params![job.id, job.registry, job.name, job.version],
                )?;
                Ok::<_, QueueError>(id)
            })
            .await
    }

    /// Stores a finished build and settles its job: done, or, after an
    /// `infrastructure-error` with attempts left, queued again after a delay that
    /// doubles with each attempt.
    ///
    /// Only a job still running under `worker` is settled. If its lease was lost
    /// (another worker claimed it, or it was settled meanwhile), nothing changes and
    /// the answer is [`QueueError::LeaseLost`].
    pub async fn finish(
        &self,
        job: &Job,
        worker: &str,
        build: i64,
        result: BuildResult,
        retry_base: Duration,
    ) -> Result<(), QueueError> {
        let (job, worker) = (job.clone(), worker.to_string());
        self.db
            .write(move |conn| finish(conn, &job, &worker, build, &result, retry_base))
            .await
    }

    /// Gives back a job this worker holds without settling it (the worker is shutting
    /// down): it is queued again at once, for any worker, and its unfinished build
    /// record, if any, is marked interrupted. False if the job was no longer ours.
    pub async fn release(
        &self,
        job: &Job,
        worker: &str,
        build: Option<i64>,
    ) -> Result<bool, QueueError> {
        let (id, worker) = (job.id, worker.to_string());
        self.db
            .write(move |conn| {
                let released = conn.execute(
                    "UPDATE jobs SET status = 'queued', worker = NULL, lease_until = NULL
                     WHERE id = $1 AND worker = $2 AND status = 'running'",
                    params![id, worker],
                )?;
                if released != 1 {
                    return Ok(false);
                }
                if let Some(build) = build {
                    conn.execute(
                        "UPDATE builds SET outcome = 'infrastructure-error', finished_at = $1,
                         record = '{\"message\":\"build interrupted: its worker shut down\"}'
                         WHERE id = $2 AND outcome = 'running'",
                        params![now(), build],
                    )?;
                    changed(conn)?;
                }
                Ok::<_, QueueError>(true)
            })
            .await
    }

    pub async fn job(&self, id: i64) -> Result<Job, QueueError> {
        self.db
            .read(move |conn| jobs(conn, "WHERE id = $1", params![id]))
            .await?
            .into_iter()
            .next()
            .ok_or(QueueError::NoSuchJob(id))
    }

    /// Removes a job that is not running; returns it as it was.
    pub async fn remove(&self, id: i64) -> Result<Job, QueueError> {
        self.db
            .write(move |conn| {
                let job = jobs(conn, "WHERE id = $1", params![id])?
                    .into_iter()
                    .next()
                    .ok_or(QueueError::NoSuchJob(id))?;
                if job.status == JobStatus::Running {
                    return Err(QueueError::Running(id));
                }
                conn.execute("DELETE FROM jobs WHERE id = $1", params![id])?;
                Ok(job)
            })
            .await
    }

    /// The registries in which the queue knows `name@version` (a job or a build).
    pub async fn registries_of(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Vec<String>, QueueError> {
        let (name, version) = (name.to_string(), version.to_string());
        let rows = self
            .db
            .read(move |conn| {
                conn.query(
                    "SELECT registry FROM jobs WHERE name = $1 AND version = $2
                     UNION SELECT registry FROM builds WHERE name = $1 AND version = $2
                     ORDER BY 1",
                    params![name, version],
                )
            })
            .await?;
        Ok(rows
            .iter()
            .map(|row| row.get(0))
            .collect::<Result<_, _>>()?)
    }

    /// The jobs of one release, newest first.
    pub async fn jobs_of(&self, id: &CrateId) -> Result<Vec<Job>, QueueError> {
        let params = release_params(id);
        Ok(self
            .db
            .read(move |conn| {
                jobs(
                    conn,
                    "WHERE registry = $1 AND name = $2 AND version = $3 ORDER BY id DESC",
                    &params,
                )
            })
            .await?)
    }

    /// One build record.
    pub async fn build(&self, id: i64) -> Result<Option<BuildRecord>, QueueError> {
        Ok(self
            .db
            .read(move |conn| builds(conn, "WHERE id = $1", params![id]))
            .await?
            .into_iter()
            .next())
    }

    /// Every build record, by release and then newest first.
    pub async fn builds(&self) -> Result<Vec<BuildRecord>, QueueError> {
        Ok(self
            .db
            .read(|conn| builds(conn, "ORDER BY registry, name, version, id DESC", &[]))
            .await?)
    }

    /// The full report a build was settled with, as JSON.
    pub async fn build_report(&self, id: i64) -> Result<Option<String>, QueueError> {
        Ok(self
            .db
            .read(move |conn| conn.value("SELECT record FROM builds WHERE id = $1", params![id]))
            .await?)
    }

    /// Marks a build's docs and log as being in blob storage.
    pub async fn set_stored(&self, build: i64) -> Result<(), QueueError> {
        self.db
            .write(move |conn| {
                conn.execute("UPDATE builds SET stored = 1 WHERE id = $1", params![build])?;
                changed(conn)?;
                Ok::<_, QueueError>(())
            })
            .await
    }

    /// Deletes build records, unless a job of their release is running (its build
    /// would be settled into a record that is gone). Returns the records deleted.
    pub async fn delete_builds(&self, ids: &[i64]) -> Result<Vec<BuildRecord>, QueueError> {
        let ids = ids.to_vec();
        self.db
            .write(move |conn| {
                let mut deleted = Vec::new();
                for id in ids {
                    let Some(build) = builds(conn, "WHERE id = $1", params![id])?
                        .into_iter()
                        .next()
                    else {
                        continue;
                    };
                    let running: Option<i64> = conn.value(
                        "SELECT id FROM jobs WHERE registry = $1 AND name = $2 AND version = $3
                         AND status = 'running'",
                        params![build.registry, build.name, build.version],
                    )?;
                    if let Some(job) = running {
                        return Err(QueueError::Running(job));
                    }
                    conn.execute("DELETE FROM builds WHERE id = $1", params![id])?;
                    deleted.push(build);
                }
                changed(conn)?;
                Ok(deleted)
            })
            .await
    }

    /// Releases with a job queued or running: (registry, name, version).
    pub async fn pending_releases(&self) -> Result<Vec<(String, String, String)>, QueueError> {
        let rows = self
            .db
            .read(|conn| {
                conn.query(
                    "SELECT DISTINCT registry, name, version FROM jobs WHERE status != 'done'",
                    &[],
                )
            })
            .await?;
        Ok(rows
            .iter()
            .map(|row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .collect::<Result<_, DbError>>()?)
    }

    /// Jobs running now.
    pub async fn running(&self) -> Result<usize, QueueError> {
        self.count_jobs("status = 'running'").await
    }

    /// Jobs still queued or running.
    pub async fn pending(&self) -> Result<usize, QueueError> {
        self.count_jobs("status != 'done'").await
    }

    /// Jobs matching `condition` (SQL of this module's own, never input).
    async fn count_jobs(&self, condition: &'static str) -> Result<usize, QueueError> {
        let count: i64 = self
            .db
            .read(move |conn| {
                conn.value(&format!("SELECT COUNT(*) FROM jobs WHERE {condition}"), &[])
            })
            .await?;
        Ok(count as usize)
    }

    /// Every job, newest first.
    pub async fn jobs(&self) -> Result<Vec<Job>, QueueError> {
        Ok(self
            .db
            .read(|conn| jobs(conn, "ORDER BY id DESC", &[]))
            .await?)
    }

    /// Jobs queued or running, in the order workers take them: running ones first,
    /// then by priority and age.
    pub async fn pending_jobs(&self) -> Result<Vec<Job>, DbError> {
        self.db
            .read(|conn| {
                jobs(
                    conn,
                    "WHERE status != 'done'
                     ORDER BY CASE status WHEN 'running' THEN 0 ELSE 1 END, priority, id",
                    &[],
                )
            })
            .await
    }

    /// The build whose docs are served for a release: its newest successful one. A
    /// failed rebuild never replaces it.
    pub async fn current_build(&self, id: &CrateId) -> Result<Option<BuildRecord>, QueueError> {
        let params = release_params(id);
        Ok(self
            .db
            .read(move |conn| {
                builds(
                    conn,
                    &format!(
                        "WHERE registry = $1 AND name = $2 AND version = $3 AND {CURRENT}
                         ORDER BY id DESC LIMIT 1"
                    ),
                    &params,
                )
            })
            .await?
            .into_iter()
            .next())
    }

    /// Where `docbuild watch` stopped, per registry: a git commit, or per crate the
    /// ETag and versions of its sparse index file.
    pub async fn watch_state(
        &self,
        registry: &str,
        key: &str,
    ) -> Result<Option<String>, QueueError> {
        let (registry, key) = (registry.to_string(), key.to_string());
        Ok(self
            .db
            .read(move |conn| {
                conn.value(
                    "SELECT value FROM watch_state WHERE registry = $1 AND key = $2",
                    params![registry, key],
                )
            })
            .await?)
    }

    pub async fn set_watch_state(
        &self,
        registry: &str,
        key: &str,
        value: &str,
    ) -> Result<(), QueueError> {
        let (registry, key, value) = (registry.to_string(), key.to_string(), value.to_string());
        self.db
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO watch_state (registry, key, value) VALUES ($1, $2, $3)
                     ON CONFLICT (registry, key) DO UPDATE SET value = excluded.value",
                    params![registry, key, value],
                )
                .map_err(QueueError::from)
            })
            .await?;
        Ok(())
    }

    /// Names of the crates of `registry` that were ever queued.
    pub async fn known_crates(&self, registry: &str) -> Result<Vec<String>, QueueError> {
        let registry = registry.to_string();
        let rows = self
            .db
            .read(move |conn| {
                conn.query(
                    "SELECT DISTINCT name FROM jobs WHERE registry = $1 ORDER BY name",
                    params![registry],
                )
            })
            .await?;
        Ok(rows
            .iter()
            .map(|row| row.get(0))
            .collect::<Result<_, _>>()?)
    }
}

/// The condition on `builds` that picks the ones whose docs are served: written once,
/// used by the queue and the catalog alike.
pub(crate) const CURRENT: &str = "outcome = 'success'";

fn release_params(id: &CrateId) -> Vec<Value> {
    vec![
        id.registry.as_str().to_value(),
        id.krate.name().to_value(),
        id.krate.version().to_value(),
    ]
}

fn claim(conn: &mut dyn Conn, worker: &str, lease: Duration) -> Result<Option<Job>, QueueError> {
    let now = now();
    // On PostgreSQL, rows other workers are claiming are skipped, not waited for; on
    // SQLite the transaction already holds the only write lock.
    let lock = match conn.dialect() {
        Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
        Dialect::Sqlite => "",
    };
    let job = jobs(
        conn,
        &format!(
            "WHERE (status = 'queued' AND not_before <= $1
                    AND (registry != 'local' OR sources IS NOT NULL))
                OR (status = 'running' AND lease_until < $1)
             ORDER BY priority, id LIMIT 1 {lock}"
        ),
        params![now],
    )?
    .into_iter()
    .next();
    let Some(mut job) = job else { return Ok(None) };
    job.taken_over = job.status == JobStatus::Running;
    if job.taken_over {
        // The build its dead worker started never finished.
        conn.execute(
            "UPDATE builds SET outcome = 'infrastructure-error', finished_at = $1,
             record = '{\"message\":\"build aborted: its worker stopped answering\"}'
             WHERE job_id = $2 AND outcome = 'running'",
            params![now, job.id],
        )?;
        changed(conn)?;
    }
    conn.execute(
        "UPDATE jobs SET status = 'running', worker = $1, lease_until = $2,
         attempts = attempts + 1, started_at = $4 WHERE id = $3",
        params![worker, now + lease.as_secs() as i64, job.id, now],
    )?;
    job.started_at = Some(now);
    job.status = JobStatus::Running;
    job.attempts += 1;
    job.worker = Some(worker.to_string());
    Ok(Some(job))
}

fn finish(
    conn: &mut dyn Conn,
    job: &Job,
    worker: &str,
    build: i64,
    result: &BuildResult,
    retry_base: Duration,
) -> Result<(), QueueError> {
    let now = now();
    let retry = result.outcome == Outcome::InfrastructureError && job.attempts < MAX_ATTEMPTS;
    let settled = if retry {
        let delay = retry_base.as_secs() as i64 * (1 << (job.attempts - 1).clamp(0, 10));
        conn.execute(
            "UPDATE jobs SET status = 'queued', not_before = $1, message = $2,
             build_id = $3, worker = NULL, lease_until = NULL
             WHERE id = $4 AND worker = $5 AND status = 'running'",
            params![now + delay, result.message, build, job.id, worker],
        )
    } else {
        conn.execute(
            "UPDATE jobs SET status = 'done', outcome = $1, message = $2, build_id = $3,
             finished_at = $4, lease_until = NULL
             WHERE id = $5 AND worker = $6 AND status = 'running'",
            params![result.outcome, result.message, build, now, job.id, worker],
        )
    }?;
    if settled != 1 {
        // Returning an error rolls the transaction back: the job and the build record
        // stay as the worker that holds the job now left them.
        return Err(QueueError::LeaseLost(job.id));
    }
    conn.execute(
        "UPDATE builds SET outcome = $1, record = $2, finished_at = $3, stored = $4
         WHERE id = $5",
        params![result.outcome, result.record, now, result.stored, build],
    )?;
    changed(conn)?;
    Ok(())
}
