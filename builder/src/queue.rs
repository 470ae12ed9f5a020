//! The build queue and the build records, in one SQLite database (WAL), shared by any
//! number of workers in any number of processes.
//!
//! A job is claimed with a lease inside an immediate transaction, so two workers
//! never get the same job; a worker that dies stops renewing its lease and the job is
//! claimed again once the lease runs out.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use crate::outcome::{CrateReport, Outcome};

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
    fn parse(text: &str) -> Self {
        match text {
            "running" => Self::Running,
            "done" => Self::Done,
            _ => Self::Queued,
        }
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
    pub outcome: Option<String>,
    pub attempts: i64,
    pub priority: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<i64>,
    /// The worker that holds the job while it runs, or that settled it once done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// The packaged sources of a local-path job.
    #[serde(skip)]
    pub crate_file: Option<PathBuf>,
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

/// One finished build, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildRecord {
    pub id: i64,
    pub registry: String,
    pub name: String,
    pub version: String,
    pub outcome: String,
    pub finished_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue database {0}: {1}")]
    Database(PathBuf, #[source] rusqlite::Error),
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
}

/// A handle on the queue database. Cheap: each operation opens its own connection,
/// so handles can be used from any thread.
#[derive(Debug, Clone)]
pub struct Queue {
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id          INTEGER PRIMARY KEY,
    registry    TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    crate_file  TEXT,
    priority    INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL DEFAULT 'queued',
    outcome     TEXT,
    message     TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    not_before  INTEGER NOT NULL DEFAULT 0,
    lease_until INTEGER,
    worker      TEXT,
    build_id    INTEGER,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS one_pending_job
    ON jobs (registry, name, version) WHERE status != 'done';
CREATE INDEX IF NOT EXISTS claimable ON jobs (status, priority, id);
CREATE TABLE IF NOT EXISTS builds (
    id          INTEGER PRIMARY KEY,
    job_id      INTEGER,
    registry    TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    record      TEXT NOT NULL,
    finished_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS builds_of_release ON builds (registry, name, version, id);
CREATE TABLE IF NOT EXISTS watch_state (
    registry TEXT NOT NULL,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (registry, key)
);
";

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Queue {
    /// Opens (and creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, QueueError> {
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let queue = Self {
            path: path.to_path_buf(),
        };
        let connection = queue.connect()?;
        connection
            .execute_batch(SCHEMA)
            .map_err(|e| queue.error(e))?;
        queue.migrate(&connection)?;
        Ok(queue)
    }

    /// Columns added since a database was made.
    fn migrate(&self, connection: &Connection) -> Result<(), QueueError> {
        let columns: Vec<String> = connection
            .prepare("SELECT name FROM pragma_table_info('jobs')")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| row.get(0))
                    .and_then(|rows| rows.collect())
            })
            .map_err(|e| self.error(e))?;
        if !columns.iter().any(|c| c == "started_at") {
            connection
                .execute_batch("ALTER TABLE jobs ADD COLUMN started_at INTEGER")
                .map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    fn connect(&self) -> Result<Connection, QueueError> {
        let connection = Connection::open(&self.path).map_err(|e| self.error(e))?;
        connection
            .busy_timeout(Duration::from_secs(30))
            .and_then(|()| connection.pragma_update(None, "journal_mode", "WAL"))
            .and_then(|()| connection.pragma_update(None, "synchronous", "NORMAL"))
            .map_err(|e| self.error(e))?;
        Ok(connection)
    }

    fn error(&self, error: rusqlite::Error) -> QueueError {
        QueueError::Database(self.path.clone(), error)
    }

    /// Queues a build unless one of the same release is queued or running, in which
    /// case that job's id is returned. The second value says whether it is new.
    pub fn enqueue(
        &self,
        registry: &str,
        name: &str,
        version: &str,
        priority: i64,
    ) -> Result<(i64, bool), QueueError> {
        let mut connection = self.connect()?;
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.error(e))?;
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM jobs WHERE registry = ?1 AND name = ?2 AND version = ?3
                 AND status != 'done'",
                params![registry, name, version],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))?;
        if let Some(id) = existing {
            return Ok((id, false));
        }
        // A release that was built before is a rebuild: new releases go first.
        let built_before: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM builds WHERE registry = ?1 AND name = ?2
                 AND version = ?3)",
                params![registry, name, version],
                |row| row.get(0),
            )
            .map_err(|e| self.error(e))?;
        let priority = if built_before {
            priority.max(PRIORITY_REBUILD)
        } else {
            priority
        };
        tx.execute(
            "INSERT INTO jobs (registry, name, version, priority, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![registry, name, version, priority, now()],
        )
        .map_err(|e| self.error(e))?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(|e| self.error(e))?;
        Ok((id, true))
    }

    /// Records where a local job's packaged sources are.
    pub fn set_crate_file(&self, job: i64, file: &Path) -> Result<(), QueueError> {
        self.connect()?
            .execute(
                "UPDATE jobs SET crate_file = ?1 WHERE id = ?2",
                params![file.to_string_lossy(), job],
            )
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Removes a job that never became buildable (its sources could not be packaged).
    pub fn forget(&self, job: i64) -> Result<(), QueueError> {
        self.connect()?
            .execute("DELETE FROM jobs WHERE id = ?1", params![job])
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Claims the next job for `worker`, with a lease of `lease` that the worker must
    /// renew while it builds.
    pub fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>, QueueError> {
        let mut connection = self.connect()?;
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.error(e))?;
        let now = now();
        let job = tx
            .query_row(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs
                     WHERE (status = 'queued' AND not_before <= ?1
                            AND (registry != 'local' OR crate_file IS NOT NULL))
                        OR (status = 'running' AND lease_until < ?1)
                     ORDER BY priority, id LIMIT 1"
                ),
                params![now],
                job_from_row,
            )
            .optional()
            .map_err(|e| self.error(e))?;
        let Some(mut job) = job else { return Ok(None) };
        job.taken_over = job.status == JobStatus::Running;
        if job.taken_over {
            // The build its dead worker started never finished.
            tx.execute(
                "UPDATE builds SET outcome = 'infrastructure-error', finished_at = ?1,
                 record = '{\"message\":\"build aborted: its worker stopped answering\"}'
                 WHERE job_id = ?2 AND outcome = 'running'",
                params![now, job.id],
            )
            .map_err(|e| self.error(e))?;
        }
        tx.execute(
            "UPDATE jobs SET status = 'running', worker = ?1, lease_until = ?2,
             attempts = attempts + 1, started_at = ?4 WHERE id = ?3",
            params![worker, now + lease.as_secs() as i64, job.id, now],
        )
        .map_err(|e| self.error(e))?;
        tx.commit().map_err(|e| self.error(e))?;
        job.started_at = Some(now);
        job.status = JobStatus::Running;
        job.attempts += 1;
        job.worker = Some(worker.to_string());
        Ok(Some(job))
    }

    /// Extends the lease of a job this worker holds; false if it is no longer ours.
    pub fn renew(&self, job: i64, worker: &str, lease: Duration) -> Result<bool, QueueError> {
        let changed = self
            .connect()?
            .execute(
                "UPDATE jobs SET lease_until = ?1 WHERE id = ?2 AND worker = ?3
                 AND status = 'running'",
                params![now() + lease.as_secs() as i64, job, worker],
            )
            .map_err(|e| self.error(e))?;
        Ok(changed == 1)
    }

    /// Starts a build record for a claimed job; its id names the build's storage.
    pub fn begin_build(&self, job: &Job) -> Result<i64, QueueError> {
        let connection = self.connect()?;
        connection
            .execute(
                "INSERT INTO builds (job_id, registry, name, version, outcome, record, finished_at)
                 VALUES (?1, ?2, ?3, ?4, 'running', '{}', 0)",
                params![job.id, job.registry, job.name, job.version],
            )
            .map_err(|e| self.error(e))?;
        Ok(connection.last_insert_rowid())
    }

    /// Stores a finished build and settles its job: done, or, after an
    /// `infrastructure-error` with attempts left, queued again after a delay that
    /// doubles with each attempt.
    ///
    /// Only a job still running under `worker` is settled. If its lease was lost
    /// (another worker claimed it, or it was settled meanwhile), nothing changes and
    /// the answer is [`QueueError::LeaseLost`].
    pub fn finish(
        &self,
        job: &Job,
        worker: &str,
        build: i64,
        report: &CrateReport,
        retry_base: Duration,
    ) -> Result<(), QueueError> {
        let mut connection = self.connect()?;
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.error(e))?;
        let now = now();
        let retry = report.outcome == Outcome::InfrastructureError && job.attempts < MAX_ATTEMPTS;
        let settled = if retry {
            let delay = retry_base.as_secs() as i64 * (1 << (job.attempts - 1).clamp(0, 10));
            tx.execute(
                "UPDATE jobs SET status = 'queued', not_before = ?1, message = ?2,
                 build_id = ?3, worker = NULL, lease_until = NULL
                 WHERE id = ?4 AND worker = ?5 AND status = 'running'",
                params![now + delay, report.message, build, job.id, worker],
            )
        } else {
            tx.execute(
                "UPDATE jobs SET status = 'done', outcome = ?1, message = ?2, build_id = ?3,
                 finished_at = ?4, lease_until = NULL
                 WHERE id = ?5 AND worker = ?6 AND status = 'running'",
                params![
                    report.outcome.as_str(),
                    report.message,
                    build,
                    now,
                    job.id,
                    worker
                ],
            )
        }
        .map_err(|e| self.error(e))?;
        if settled != 1 {
            // Dropping the transaction rolls it back: the job and the build record
            // stay as the worker that holds the job now left them.
            return Err(QueueError::LeaseLost(job.id));
        }
        let record = serde_json::to_string(report).unwrap_or_default();
        tx.execute(
            "UPDATE builds SET outcome = ?1, record = ?2, finished_at = ?3 WHERE id = ?4",
            params![report.outcome.as_str(), record, now, build],
        )
        .map_err(|e| self.error(e))?;
        tx.commit().map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Gives back a job this worker holds without settling it (the worker is shutting
    /// down): it is queued again at once, for any worker, and its unfinished build
    /// record, if any, is marked interrupted. False if the job was no longer ours.
    pub fn release(&self, job: &Job, worker: &str, build: Option<i64>) -> Result<bool, QueueError> {
        let mut connection = self.connect()?;
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.error(e))?;
        let released = tx
            .execute(
                "UPDATE jobs SET status = 'queued', worker = NULL, lease_until = NULL
                 WHERE id = ?1 AND worker = ?2 AND status = 'running'",
                params![job.id, worker],
            )
            .map_err(|e| self.error(e))?;
        if released != 1 {
            return Ok(false);
        }
        if let Some(build) = build {
            tx.execute(
                "UPDATE builds SET outcome = 'infrastructure-error', finished_at = ?1,
                 record = '{\"message\":\"build interrupted: its worker shut down\"}'
                 WHERE id = ?2 AND outcome = 'running'",
                params![now(), build],
            )
            .map_err(|e| self.error(e))?;
        }
        tx.commit().map_err(|e| self.error(e))?;
        Ok(true)
    }

    pub fn job(&self, id: i64) -> Result<Job, QueueError> {
        self.connect()?
            .query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                params![id],
                job_from_row,
            )
            .optional()
            .map_err(|e| self.error(e))?
            .ok_or(QueueError::NoSuchJob(id))
    }

    /// Removes a job that is not running; returns it as it was.
    pub fn remove(&self, id: i64) -> Result<Job, QueueError> {
        let mut connection = self.connect()?;
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.error(e))?;
        let job = tx
            .query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                params![id],
                job_from_row,
            )
            .optional()
            .map_err(|e| self.error(e))?
            .ok_or(QueueError::NoSuchJob(id))?;
        if job.status == JobStatus::Running {
            return Err(QueueError::Running(id));
        }
        tx.execute("DELETE FROM jobs WHERE id = ?1", params![id])
            .map_err(|e| self.error(e))?;
        tx.commit().map_err(|e| self.error(e))?;
        Ok(job)
    }

    /// The registries in which the queue knows `name@version` (a job or a build).
    pub fn registries_of(&self, name: &str, version: &str) -> Result<Vec<String>, QueueError> {
        let connection = self.connect()?;
        let mut statement = connection
            .prepare(
                "SELECT registry FROM jobs WHERE name = ?1 AND version = ?2
                 UNION SELECT registry FROM builds WHERE name = ?1 AND version = ?2
                 ORDER BY 1",
            )
            .map_err(|e| self.error(e))?;
        statement
            .query_map(params![name, version], |row| row.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.error(e))
    }

    /// The jobs of one release, newest first.
    pub fn jobs_of(
        &self,
        registry: &str,
        name: &str,
        version: &str,
    ) -> Result<Vec<Job>, QueueError> {
        let connection = self.connect()?;
        let mut statement = connection
            .prepare(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE registry = ?1 AND name = ?2
                 AND version = ?3 ORDER BY id DESC"
            ))
            .map_err(|e| self.error(e))?;
        statement
            .query_map(params![registry, name, version], job_from_row)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.error(e))
    }

    /// One build record.
    pub fn build(&self, id: i64) -> Result<Option<BuildRecord>, QueueError> {
        self.connect()?
            .query_row(
                &format!("SELECT {BUILD_COLUMNS} FROM builds WHERE id = ?1"),
                params![id],
                build_from_row,
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// Every build record, by release and then newest first.
    pub fn builds(&self) -> Result<Vec<BuildRecord>, QueueError> {
        let connection = self.connect()?;
        let mut statement = connection
            .prepare(&format!(
                "SELECT {BUILD_COLUMNS} FROM builds
                 ORDER BY registry, name, version, id DESC"
            ))
            .map_err(|e| self.error(e))?;
        statement
            .query_map([], build_from_row)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.error(e))
    }

    /// Deletes build records, unless a job of their release is running (its build
    /// would be settled into a record that is gone). Returns the records deleted.
    pub fn delete_builds(&self, ids: &[i64]) -> Result<Vec<BuildRecord>, QueueError> {
        let mut connection = self.connect()?;
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.error(e))?;
        let mut deleted = Vec::new();
        for id in ids {
            let Some(build) = tx
                .query_row(
                    &format!("SELECT {BUILD_COLUMNS} FROM builds WHERE id = ?1"),
                    params![id],
                    build_from_row,
                )
                .optional()
                .map_err(|e| self.error(e))?
            else {
                continue;
            };
            let running: Option<i64> = tx
                .query_row(
                    "SELECT id FROM jobs WHERE registry = ?1 AND name = ?2 AND version = ?3
                     AND status = 'running'",
                    params![build.registry, build.name, build.version],
                    |row| row.get(0),
                )
                .optional()
                .map_err(|e| self.error(e))?;
            if let Some(job) = running {
                return Err(QueueError::Running(job));
            }
            tx.execute("DELETE FROM builds WHERE id = ?1", params![id])
                .map_err(|e| self.error(e))?;
            deleted.push(build);
        }
        tx.commit().map_err(|e| self.error(e))?;
        Ok(deleted)
    }

    /// Releases with a job queued or running: (registry, name, version).
    pub fn pending_releases(&self) -> Result<Vec<(String, String, String)>, QueueError> {
        let connection = self.connect()?;
        let mut statement = connection
            .prepare("SELECT DISTINCT registry, name, version FROM jobs WHERE status != 'done'")
            .map_err(|e| self.error(e))?;
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.error(e))
    }

    /// Jobs running now.
    pub fn running(&self) -> Result<usize, QueueError> {
        self.count_jobs("status = 'running'")
    }

    /// Jobs matching `condition` (SQL of this module's own, never input).
    fn count_jobs(&self, condition: &str) -> Result<usize, QueueError> {
        self.connect()?
            .query_row(
                &format!("SELECT COUNT(*) FROM jobs WHERE {condition}"),
                [],
                |row| row.get::<_, i64>(0),
            )
            .map(|n| n as usize)
            .map_err(|e| self.error(e))
    }

    /// Every job, newest first.
    pub fn jobs(&self) -> Result<Vec<Job>, QueueError> {
        let connection = self.connect()?;
        let mut statement = connection
            .prepare(&format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY id DESC"))
            .map_err(|e| self.error(e))?;
        statement
            .query_map([], job_from_row)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.error(e))
    }

    /// Jobs still queued or running.
    pub fn pending(&self) -> Result<usize, QueueError> {
        self.count_jobs("status != 'done'")
    }

    /// The newest successful build of a release: the one whose docs are served.
    /// A failed rebuild never replaces it.
    pub fn current_build(
        &self,
        registry: &str,
        name: &str,
        version: &str,
    ) -> Result<Option<BuildRecord>, QueueError> {
        self.connect()?
            .query_row(
                &format!(
                    "SELECT {BUILD_COLUMNS} FROM builds
                     WHERE registry = ?1 AND name = ?2 AND version = ?3 AND outcome = 'success'
                     ORDER BY id DESC LIMIT 1"
                ),
                params![registry, name, version],
                build_from_row,
            )
            .optional()
            .map_err(|e| self.error(e))
    }
}

/// Runs blocking work (the queue's SQLite calls) on the runtime's blocking threads,
/// so that async tasks and everything else on the runtime keep going meanwhile.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

/// Where `docbuild watch` stopped, per registry: a git commit, or per crate the
/// ETag and versions of its sparse index file.
impl Queue {
    pub fn watch_state(&self, registry: &str, key: &str) -> Result<Option<String>, QueueError> {
        self.connect()?
            .query_row(
                "SELECT value FROM watch_state WHERE registry = ?1 AND key = ?2",
                params![registry, key],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    pub fn set_watch_state(
        &self,
        registry: &str,
        key: &str,
        value: &str,
    ) -> Result<(), QueueError> {
        self.connect()?
            .execute(
                "INSERT INTO watch_state (registry, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (registry, key) DO UPDATE SET value = excluded.value",
                params![registry, key, value],
            )
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Names of the crates of `registry` that were ever queued.
    pub fn known_crates(&self, registry: &str) -> Result<Vec<String>, QueueError> {
        let connection = self.connect()?;
        let mut statement = connection
            .prepare("SELECT DISTINCT name FROM jobs WHERE registry = ?1 ORDER BY name")
            .map_err(|e| self.error(e))?;
        statement
            .query_map(params![registry], |row| row.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.error(e))
    }
}

const JOB_COLUMNS: &str = "id, name, version, registry, status, outcome, attempts, priority, message, build_id, crate_file, worker, created_at, started_at, finished_at";

fn job_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        id: row.get(0)?,
        name: row.get(1)?,
        version: row.get(2)?,
        registry: row.get(3)?,
        status: JobStatus::parse(&row.get::<_, String>(4)?),
        outcome: row.get(5)?,
        attempts: row.get(6)?,
        priority: row.get(7)?,
        message: row.get(8)?,
        build: row.get(9)?,
        crate_file: row.get::<_, Option<String>>(10)?.map(PathBuf::from),
        worker: row.get(11)?,
        taken_over: false,
        created_at: row.get(12)?,
        started_at: row.get(13)?,
        finished_at: row.get(14)?,
    })
}

const BUILD_COLUMNS: &str = "id, registry, name, version, outcome, finished_at";

fn build_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<BuildRecord> {
    Ok(BuildRecord {
        id: row.get(0)?,
        registry: row.get(1)?,
        name: row.get(2)?,
        version: row.get(3)?,
        outcome: row.get(4)?,
        finished_at: row.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> (tempfile::TempDir, Queue) {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(&dir.path().join("q.db")).unwrap();
        (dir, queue)
    }

    fn report(outcome: Outcome) -> CrateReport {
        CrateReport::early(outcome, outcome.as_str())
    }

    const LEASE: Duration = Duration::from_secs(60);

    fn settle(queue: &Queue, job: &Job, outcome: Outcome, retry_base: Duration) -> i64 {
        let build = queue.begin_build(job).unwrap();
        queue
            .finish(job, "w", build, &report(outcome), retry_base)
            .unwrap();
        build
    }

    #[test]
    fn a_release_is_queued_once() {
        let (_dir, queue) = queue();
        let (first, new) = queue
            .enqueue("crates-io", "serde", "1.0.0", PRIORITY_NEW)
            .unwrap();
        assert!(new);
        let (again, new) = queue
            .enqueue("crates-io", "serde", "1.0.0", PRIORITY_NEW)
            .unwrap();
        assert_eq!((again, new), (first, false));
        let (other, new) = queue
            .enqueue("my-reg", "serde", "1.0.0", PRIORITY_NEW)
            .unwrap();
        assert!(new && other != first);
        assert_eq!(queue.pending().unwrap(), 2);
    }

    #[test]
    fn new_releases_go_before_rebuilds() {
        let (_dir, queue) = queue();
        let (rebuild, _) = queue.enqueue("r", "a", "1.0.0", PRIORITY_REBUILD).unwrap();
        let (new, _) = queue.enqueue("r", "b", "1.0.0", PRIORITY_NEW).unwrap();
        assert_eq!(queue.claim("w", LEASE).unwrap().unwrap().id, new);
        assert_eq!(queue.claim("w", LEASE).unwrap().unwrap().id, rebuild);
        assert!(queue.claim("w", LEASE).unwrap().is_none());
    }

    #[test]
    fn a_claimed_job_is_nobody_elses_until_its_lease_runs_out() {
        let (_dir, queue) = queue();
        queue.enqueue("r", "a", "1.0.0", PRIORITY_NEW).unwrap();
        let job = queue.claim("one", Duration::ZERO).unwrap().unwrap();
        assert!(!job.taken_over);
        assert!(
            queue.claim("two", LEASE).unwrap().is_none(),
            "lease still holds this second"
        );
        std::thread::sleep(Duration::from_millis(1100));
        let again = queue.claim("two", LEASE).unwrap().unwrap();
        assert_eq!(again.id, job.id);
        assert!(again.taken_over);
        assert_eq!(again.attempts, 2);
        assert!(
            !queue.renew(job.id, "one", LEASE).unwrap(),
            "the first worker lost it"
        );
        assert!(queue.renew(job.id, "two", LEASE).unwrap());
    }

    #[test]
    fn only_infrastructure_errors_are_retried_and_only_so_often() {
        let (_dir, queue) = queue();
        let (id, _) = queue.enqueue("r", "a", "1.0.0", PRIORITY_NEW).unwrap();
        for attempt in 1..=MAX_ATTEMPTS {
            let job = queue.claim("w", LEASE).unwrap().expect("claimable");
            assert_eq!(job.attempts, attempt);
            settle(&queue, &job, Outcome::InfrastructureError, Duration::ZERO);
        }
        let job = queue.job(id).unwrap();
        assert_eq!(job.status, JobStatus::Done);
        assert_eq!(job.outcome.as_deref(), Some("infrastructure-error"));

        let (id, _) = queue.enqueue("r", "b", "1.0.0", PRIORITY_NEW).unwrap();
        let job = queue.claim("w", LEASE).unwrap().unwrap();
        settle(&queue, &job, Outcome::BuildFailed, Duration::ZERO);
        assert_eq!(queue.job(id).unwrap().status, JobStatus::Done);
        assert!(
            queue.claim("w", LEASE).unwrap().is_none(),
            "a crate's failure is final"
        );
    }

    #[test]
    fn retries_wait() {
        let (_dir, queue) = queue();
        queue.enqueue("r", "a", "1.0.0", PRIORITY_NEW).unwrap();
        let job = queue.claim("w", LEASE).unwrap().unwrap();
        settle(
            &queue,
            &job,
            Outcome::InfrastructureError,
            Duration::from_secs(60),
        );
        assert!(queue.claim("w", LEASE).unwrap().is_none());
    }

    #[test]
    fn a_release_built_before_is_queued_as_a_rebuild() {
        let (_dir, queue) = queue();
        let (id, _) = queue.enqueue("r", "a", "1.0.0", PRIORITY_NEW).unwrap();
        let job = queue.claim("w", LEASE).unwrap().unwrap();
        settle(&queue, &job, Outcome::Success, Duration::ZERO);
        let (again, new) = queue.enqueue("r", "a", "1.0.0", PRIORITY_NEW).unwrap();
        assert!(new && again != id);
        assert_eq!(queue.job(again).unwrap().priority, PRIORITY_REBUILD);
    }

    #[test]
    fn a_dead_workers_build_is_marked_aborted() {
        let (_dir, queue) = queue();
        queue.enqueue("r", "a", "1.0.0", PRIORITY_NEW).unwrap();
        let job = queue.claim("one", Duration::ZERO).unwrap().unwrap();
        let build = queue.begin_build(&job).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        queue.claim("two", LEASE).unwrap().unwrap();
        let outcome: String = queue
            .connect()
            .unwrap()
            .query_row(
                "SELECT outcome FROM builds WHERE id = ?1",
                params![build],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(outcome, "infrastructure-error");
    }

    fn build_outcome(queue: &Queue, build: i64) -> String {
        queue
            .connect()
            .unwrap()
            .query_row(
                "SELECT outcome FROM builds WHERE id = ?1",
                params![build],
                |r| r.get(0),
            )
            .unwrap()
    }

    #[test]
    fn a_worker_that_lost_its_lease_cannot_settle_the_job() {
        let (_dir, queue) = queue();
        let (id, _) = queue.enqueue("r", "a", "1.0.0", PRIORITY_NEW).unwrap();
        let first = queue.claim("one", Duration::ZERO).unwrap().unwrap();
        let first_build = queue.begin_build(&first).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        let second = queue.claim("two", LEASE).unwrap().unwrap();
        let second_build = queue.begin_build(&second).unwrap();

        for outcome in [Outcome::Success, Outcome::InfrastructureError] {
            let refused =
                queue.finish(&first, "one", first_build, &report(outcome), Duration::ZERO);
            assert!(
                matches!(refused, Err(QueueError::LeaseLost(lost)) if lost == id),
                "{refused:?}"
            );
        }
        let job = queue.job(id).unwrap();
        assert_eq!(job.status, JobStatus::Running, "still the second worker's");
        assert_eq!(job.worker.as_deref(), Some("two"));
        assert_eq!(job.attempts, 2);
        assert_eq!(build_outcome(&queue, first_build), "infrastructure-error");

        queue
            .finish(
                &second,
                "two",
                second_build,
                &report(Outcome::BuildFailed),
                Duration::ZERO,
            )
            .unwrap();
        let job = queue.job(id).unwrap();
        assert_eq!(job.status, JobStatus::Done);
        assert_eq!(job.outcome.as_deref(), Some("build-failed"));
        assert_eq!(job.build, Some(second_build));
        assert_eq!(job.worker.as_deref(), Some("two"));

        // Late news from the first worker changes nothing either.
        let late = queue.finish(
            &first,
            "one",
            first_build,
            &report(Outcome::Success),
            Duration::ZERO,
        );
        assert!(matches!(late, Err(QueueError::LeaseLost(_))), "{late:?}");
        assert_eq!(
            queue.job(id).unwrap().outcome.as_deref(),
            Some("build-failed")
        );
        assert!(queue.current_build("r", "a", "1.0.0").unwrap().is_none());
        // Nor can a worker settle a job twice.
        let twice = queue.finish(
            &second,
            "two",
            second_build,
            &report(Outcome::Success),
            Duration::ZERO,
        );
        assert!(matches!(twice, Err(QueueError::LeaseLost(_))), "{twice:?}");
    }

    #[test]
    fn a_released_job_is_anyones_at_once() {
        let (_dir, queue) = queue();
        let (id, _) = queue.enqueue("r", "a", "1.0.0", PRIORITY_NEW).unwrap();
        let job = queue.claim("one", LEASE).unwrap().unwrap();
        let build = queue.begin_build(&job).unwrap();
        assert!(
            !queue.release(&job, "two", Some(build)).unwrap(),
            "not the second worker's to give back"
        );
        assert!(queue.release(&job, "one", Some(build)).unwrap());
        let released = queue.job(id).unwrap();
        assert_eq!(released.status, JobStatus::Queued);
        assert_eq!(released.worker, None);
        assert_eq!(build_outcome(&queue, build), "infrastructure-error");
        let again = queue.claim("two", LEASE).unwrap().unwrap();
        assert_eq!(again.id, id);
        assert!(!again.taken_over);
        assert!(
            !queue.release(&job, "one", None).unwrap(),
            "the first worker has nothing left to give back"
        );
    }

    #[test]
    fn a_failed_rebuild_keeps_the_docs_that_built() {
        let (_dir, queue) = queue();
        queue.enqueue("r", "a", "1.0.0", PRIORITY_NEW).unwrap();
        let job = queue.claim("w", LEASE).unwrap().unwrap();
        let good = settle(&queue, &job, Outcome::Success, Duration::ZERO);
        queue.enqueue("r", "a", "1.0.0", PRIORITY_REBUILD).unwrap();
        let job = queue.claim("w", LEASE).unwrap().unwrap();
        settle(&queue, &job, Outcome::BuildFailed, Duration::ZERO);
        assert_eq!(
            queue.current_build("r", "a", "1.0.0").unwrap().unwrap().id,
            good
        );
    }

    #[test]
    fn local_jobs_wait_for_their_sources() {
        let (_dir, queue) = queue();
        let (id, _) = queue
            .enqueue(crate::config::LOCAL, "a", "1.0.0", PRIORITY_NEW)
            .unwrap();
        assert!(queue.claim("w", LEASE).unwrap().is_none());
        queue
            .set_crate_file(id, Path::new("/x/a-1.0.0.crate"))
            .unwrap();
        let job = queue.claim("w", LEASE).unwrap().unwrap();
        assert_eq!(
            job.crate_file.as_deref(),
            Some(Path::new("/x/a-1.0.0.crate"))
        );
    }
}
