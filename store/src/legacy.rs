//! Data directories of docbuild 0.1.0 kept each build as loose files
//! (`crates/<registry>/<name>/<version>/<build>/` with `docs/` and `build.log`),
//! rustdoc's static files once in `static/`, and local jobs' packages in
//! `jobs/<job>/`. On start they are moved into blob storage, each build as it is
//! stored today (with the static files under its `static.files/`), so that nothing
//! is lost and nothing reads the old layout again.

use std::path::{Path, PathBuf};

use crate::archive::{self, ArchiveError};
use crate::queue::JobStatus;
use crate::{Store, params};

/// What an import moved.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Imported {
    pub builds: u64,
    pub packages: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Database(#[from] crate::DbError),
    #[error(transparent)]
    Queue(#[from] crate::QueueError),
    #[error(transparent)]
    Storage(#[from] ArchiveError),
    #[error(transparent)]
    Blob(#[from] crate::blobs::BlobError),
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, #[source] std::io::Error),
}

/// Moves the loose builds and packages below `root` (a data directory) into the
/// store. Builds already stored, and ones whose files are not here (another
/// machine's), are left as they are.
pub async fn import(store: &Store, root: &Path) -> Result<Imported, ImportError> {
    let mut imported = Imported::default();
    let crates = root.join("crates");
    let static_files = root.join("static");
    let jobs = root.join("jobs");
    let is_dir = |path: PathBuf| async move {
        tokio::fs::symlink_metadata(path)
            .await
            .is_ok_and(|m| m.is_dir())
    };
    // Nothing of the old layout (every start after the first): nothing to ask.
    let (had_crates, had_jobs) = (is_dir(crates.clone()).await, is_dir(jobs.clone()).await);
    if had_crates {
        for entry in store.catalog().unstored().await? {
            let Some(id) = entry.build.crate_id() else {
                continue;
            };
            let dir = crates
                .join(id.relative_dir())
                .join(entry.build.id.to_string());
            if !is_dir(dir.clone()).await {
                continue;
            }
            import_build(store, entry.build.id, &dir, &static_files).await?;
            store.queue().set_stored(entry.build.id).await?;
            tracing::info!(build = entry.build.id, release = %id, "moved a build into storage");
            let _ = tokio::fs::remove_dir_all(&dir).await;
            imported.builds += 1;
        }
        // What is left: empty directories, and the static files every moved build
        // now holds itself (kept while a build is still to move).
        let dir = crates.clone();
        if !crate::db::blocking(move || holds_files(&dir)).await {
            let _ = tokio::fs::remove_dir_all(&crates).await;
            let _ = tokio::fs::remove_dir_all(&static_files).await;
        }
    }
    if had_jobs {
        imported.packages = import_packages(store, root).await?;
        let dir = jobs.clone();
        if !crate::db::blocking(move || holds_files(&dir)).await {
            let _ = tokio::fs::remove_dir_all(&jobs).await;
        }
    }
    Ok(imported)
}

/// Whether anything but directories is below `dir` (a missing one holds nothing).
fn holds_files(dir: &Path) -> bool {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .any(|entry| !entry.file_type().is_dir())
}

async fn import_build(
    store: &Store,
    build: i64,
    dir: &Path,
    static_files: &Path,
) -> Result<(), ImportError> {
    let log = match tokio::fs::read(dir.join("build.log")).await {
        Ok(log) => Some(log.into()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(ImportError::Read(dir.join("build.log"), error)),
    };
    let docs = dir.join("docs");
    let has_docs = tokio::fs::symlink_metadata(&docs)
        .await
        .is_ok_and(|m| m.is_dir());
    let builds = store.builds();
    builds.put(build, None, log).await?;
    if has_docs {
        let (mut manifest, _) = archive::store_tree(builds.blobs(), &docs).await?;
        if static_files.is_dir() {
            let (shared, _) = archive::store_tree(builds.blobs(), static_files).await?;
            for (path, entry) in shared.files {
                manifest.files.insert(format!("static.files/{path}"), entry);
            }
        }
        builds.put_manifest(build, &manifest).await?;
    }
    Ok(())
}

/// Packages of local jobs that may still be built (queued, running, or the newest
/// job of a release, which `queue rebuild` uses).
async fn import_packages(store: &Store, root: &Path) -> Result<u64, ImportError> {
    let rows = store
        .db()
        .read(|conn| {
            conn.query(
                "SELECT id, crate_file, status FROM jobs
                 WHERE crate_file IS NOT NULL AND sources IS NULL ORDER BY id DESC",
                &[],
            )
        })
        .await?;
    let mut imported = 0;
    for row in rows {
        let (job, file, _status): (i64, String, JobStatus) =
            (row.get(0)?, row.get(1)?, row.get(2)?);
        // Kept as `jobs/<job>/<file>` below the data directory, wherever it was then.
        let Some(name) = Path::new(&file).file_name() else {
            continue;
        };
        let path = root.join("jobs").join(job.to_string()).join(name);
        let Ok(package) = tokio::fs::read(&path).await else {
            continue;
        };
        let key = store.builds().put_sources(job, package.into()).await?;
        store
            .db()
            .write(move |conn| {
                conn.execute(
                    "UPDATE jobs SET sources = $1 WHERE id = $2",
                    params![key, job],
                )
            })
            .await?;
        let _ = tokio::fs::remove_dir_all(root.join("jobs").join(job.to_string())).await;
        imported += 1;
    }
    Ok(imported)
}
