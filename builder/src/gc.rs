//! `docbuild gc`: giving disk space back. What it removes, in this order:
//!
//! - work directories no build uses (the data directory's `work/<registry>/<name>/
//!   <version>/` without a queued or running job, `staging/<build>/` of a build
//!   that is not running, and `check`'s per-package and
//!   per-workspace directories in its cache), each unmounted first, since its target
//!   directory may be a mounted filesystem image; one locked by a build is kept;
//! - stored builds of a release beyond the newest `keep`, never the one whose docs are
//!   served (its newest successful build);
//! - packages kept for local jobs that no rebuild needs (the newest job of a release
//!   keeps its package);
//! - layers of the build cache (compiled dependencies reused between builds) past
//!   its budget (`[limits] build-cache`), least recently used first, never one a
//!   build is using;
//! - blobs no stored build refers to (files identical across builds are stored once,
//!   so a build's files go only when no other build has them), only while no build
//!   runs anywhere (a running one may be storing them), and only once older than a
//!   grace period.
//!
//! A dry run finds the same and removes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::check::CacheDirs;
use crate::config::LOCAL;
use crate::disk;
use crate::queue::{BuildState, JobStatus, QueueError};
use crate::worker::Service;
use docbuild_store::db::blocking;

/// What `gc` is asked to do.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Stored builds kept per release, newest first (besides the one served).
    pub keep_builds: usize,
    /// Find, but remove nothing.
    pub dry_run: bool,
    /// `check`'s cache, whose per-package work directories are collected too.
    pub check_cache: Option<CacheDirs>,
    /// Blobs younger than this are kept, whatever refers to them.
    pub blob_grace: Duration,
}

/// Kinds of things collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    WorkDir,
    Build,
    JobPackage,
    Layer,
    Blob,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::WorkDir => "work directory",
            Kind::Build => "build",
            Kind::JobPackage => "kept package",
            Kind::Layer => "build cache layer",
            Kind::Blob => "unused stored file",
        }
    }

    /// `1 build`, `2 work directories`.
    pub fn count(self, count: usize) -> String {
        let plural = match self {
            Kind::WorkDir => "work directories",
            Kind::Build => "builds",
            Kind::JobPackage => "kept packages",
            Kind::Layer => "build cache layers",
            Kind::Blob => "unused stored files",
        };
        if count == 1 {
            format!("1 {}", self.describe())
        } else {
            format!("{count} {plural}")
        }
    }
}

/// One thing removed (or, in a dry run, to be removed).
#[derive(Debug, Clone, PartialEq)]
pub struct Collected {
    pub kind: Kind,
    pub path: PathBuf,
    /// Disk space it took (allocated blocks).
    pub bytes: u64,
}

#[derive(Debug, Default)]
pub struct GcReport {
    pub collected: Vec<Collected>,
    /// What the build cache holds afterwards (or would, in a dry run), and its budget.
    pub build_cache: Option<(crate::build_cache::Usage, u64)>,
    /// Things kept because they were in use, or could not be removed, with why.
    pub kept: Vec<(PathBuf, String)>,
}

impl GcReport {
    pub fn bytes(&self) -> u64 {
        self.collected.iter().map(|c| c.bytes).sum()
    }

    /// How many things of `kind` were collected.
    pub fn count(&self, kind: Kind) -> usize {
        self.collected.iter().filter(|c| c.kind == kind).count()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("storage: {0}")]
    Storage(String),
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
}

/// Disk space below `path` (allocated blocks, as `du` counts), staying on its
/// filesystem and following no link.
pub fn disk_usage(path: &Path) -> u64 {
    walkdir::WalkDir::new(path)
        .same_file_system(true)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.metadata().ok())
        .map(|metadata| metadata.blocks() * 512)
        .sum()
}

/// Runs the collection.
pub async fn collect_garbage(service: &Service, options: &GcOptions) -> Result<GcReport, GcError> {
    let mut report = GcReport::default();
    work_dirs(service, options, &mut report).await?;
    builds(service, options, &mut report).await?;
    job_packages(service, options, &mut report).await?;
    build_cache(service, options, &mut report).await?;
    blobs(service, options, &mut report).await?;
    Ok(report)
}

/// The build cache's layers past its budget, least recently used first.
async fn build_cache(
    service: &Service,
    options: &GcOptions,
    report: &mut GcReport,
) -> Result<(), GcError> {
    let budget = service.config.limits.build_cache_bytes();
    let cache = service.data.build_cache(budget);
    let dry_run = options.dry_run;
    let root = cache.root().to_path_buf();
    let (evicted, usage) = blocking(move || {
        let evicted = cache.evict(budget, dry_run)?;
        let usage = cache.usage()?;
        Ok::<_, std::io::Error>((evicted, usage))
    })
    .await
    .map_err(|error| GcError::Io(root, error))?;
    let freed: u64 = evicted.iter().map(|e| e.bytes).sum();
    report
        .collected
        .extend(evicted.into_iter().map(|evicted| Collected {
            kind: Kind::Layer,
            path: evicted.dir,
            bytes: evicted.bytes,
        }));
    let usage = if dry_run {
        crate::build_cache::Usage {
            layers: usage.layers.saturating_sub(report.count(Kind::Layer)),
            bytes: usage.bytes.saturating_sub(freed),
        }
    } else {
        usage
    };
    report.build_cache = Some((usage, budget));
    Ok(())
}

/// Directories `depth` levels below `root` (missing `root`: none).
fn dirs_at(root: &Path, depth: usize) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .min_depth(depth)
        .max_depth(depth)
        .follow_links(false)
        .into_iter()
        .flatten()
        .filter(|entry| entry.file_type().is_dir())
        .map(|entry| entry.into_path())
        .collect()
}

/// A work directory's locks: its own and its slots' (workspaces). Held while it is
/// removed, so that no check starts in it meanwhile; `None` if a build holds one.
fn lock_all(dir: &Path) -> Option<Vec<std::fs::File>> {
    let mut locks = Vec::new();
    let candidates = std::iter::once(dir.join("lock"))
        .chain(dirs_at(dir, 1).into_iter().map(|slot| slot.join("lock")));
    for path in candidates {
        let Ok(file) = std::fs::File::options().read(true).write(true).open(&path) else {
            continue;
        };
        match file.try_lock() {
            Ok(()) => locks.push(file),
            Err(_) => return None,
        }
    }
    Some(locks)
}

async fn work_dirs(
    service: &Service,
    options: &GcOptions,
    report: &mut GcReport,
) -> Result<(), GcError> {
    let pending: BTreeSet<(String, String, String)> = service
        .queue
        .pending_releases()
        .await?
        .into_iter()
        .collect();
    let work_root = service.data.root().join("work");
    let mut candidates = Vec::new();
    for dir in blocking(move || dirs_at(&work_root, 3)).await {
        let key = |depth: usize| {
            dir.iter()
                .rev()
                .nth(depth)
                .map(|c| c.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        if pending.contains(&(key(2), key(1), key(0))) {
            report
                .kept
                .push((dir.clone(), "a job of its release is queued".into()));
            continue;
        }
        candidates.push(dir);
    }
    // Docs put together for a build that is no longer running (its worker died
    // before storing them).
    let staging = service.data.root().join("staging");
    for dir in blocking(move || dirs_at(&staging, 1)).await {
        let build = dir
            .file_name()
            .and_then(|name| name.to_str()?.parse::<i64>().ok());
        let running = match build {
            Some(build) => service
                .queue
                .build(build)
                .await?
                .is_some_and(|b| b.outcome == BuildState::Running),
            None => false,
        };
        if running {
            report.kept.push((dir, "its build is running".into()));
        } else {
            candidates.push(dir);
        }
    }
    if let Some(cache) = &options.check_cache {
        let root = cache.root().to_path_buf();
        candidates.extend(
            blocking(move || {
                ["check", "workspaces"]
                    .iter()
                    .flat_map(|area| dirs_at(&root.join(area), 1))
                    .collect::<Vec<_>>()
            })
            .await,
        );
    }
    for dir in candidates {
        let Some(locks) = lock_all(&dir) else {
            report.kept.push((dir, "a build is using it".into()));
            continue;
        };
        if !options.dry_run {
            // A target directory may be a mounted filesystem image: unmounted first,
            // so that deleting stays on this filesystem and frees the image.
            let points =
                disk::mount_points_below(&dir).map_err(|error| GcError::Io(dir.clone(), error))?;
            let mut unmounted = true;
            for point in points {
                if let Err(error) = disk::unmount(&point).await {
                    report.kept.push((dir.clone(), error.to_string()));
                    unmounted = false;
                    break;
                }
            }
            let still = disk::mount_points_below(&dir).unwrap_or_default();
            if !unmounted || !still.is_empty() {
                if unmounted {
                    report.kept.push((
                        dir.clone(),
                        format!("{} is mounted there", still[0].display()),
                    ));
                }
                continue;
            }
        }
        let (path, dry_run) = (dir.clone(), options.dry_run);
        let removed = blocking(move || {
            let bytes = disk_usage(&path);
            let removed = if dry_run {
                Ok(())
            } else {
                std::fs::remove_dir_all(&path)
            };
            drop(locks);
            removed.map(|()| bytes)
        })
        .await;
        match removed {
            Ok(bytes) => report.collected.push(Collected {
                kind: Kind::WorkDir,
                path: dir,
                bytes,
            }),
            Err(error) => report.kept.push((dir, error.to_string())),
        }
    }
    Ok(())
}

async fn builds(
    service: &Service,
    options: &GcOptions,
    report: &mut GcReport,
) -> Result<(), GcError> {
    let all = service.queue.builds().await?;
    let mut by_release: BTreeMap<(String, String, String), Vec<_>> = BTreeMap::new();
    for build in all {
        by_release
            .entry((
                build.registry.clone(),
                build.name.clone(),
                build.version.clone(),
            ))
            .or_default()
            .push(build);
    }
    let success = BuildState::Finished(crate::outcome::Outcome::Success);
    for ((registry, name, version), builds) in by_release {
        // Newest first, as the queue lists them.
        let served = builds.iter().find(|b| b.outcome == success).map(|b| b.id);
        let old: Vec<i64> = builds
            .iter()
            .skip(options.keep_builds)
            .filter(|b| Some(b.id) != served && b.outcome != BuildState::Running)
            .map(|b| b.id)
            .collect();
        if old.is_empty() {
            continue;
        }
        let release = PathBuf::from(format!("{registry}/{name}/{version}"));
        let deleted = if options.dry_run {
            old
        } else {
            match service.queue.delete_builds(&old).await {
                Ok(deleted) => deleted.into_iter().map(|b| b.id).collect(),
                Err(QueueError::Running(_)) => {
                    report
                        .kept
                        .push((release, "a job of its release is running".into()));
                    continue;
                }
                Err(error) => return Err(error.into()),
            }
        };
        for build in deleted {
            if !options.dry_run {
                service
                    .store
                    .builds()
                    .delete(build)
                    .await
                    .map_err(|e| GcError::Storage(e.to_string()))?;
            }
            report.collected.push(Collected {
                kind: Kind::Build,
                path: release.join(build.to_string()),
                bytes: 0,
            });
        }
    }
    Ok(())
}

async fn job_packages(
    service: &Service,
    options: &GcOptions,
    report: &mut GcReport,
) -> Result<(), GcError> {
    let jobs = service.queue.jobs().await?;
    // The newest job of each local release keeps its package, for `queue rebuild`;
    // pending jobs need theirs.
    let mut newest_seen = BTreeSet::new();
    for job in &jobs {
        let Some(key) = &job.sources else { continue };
        let release = (job.name.clone(), job.version.clone());
        if job.status != JobStatus::Done || (job.registry == LOCAL && newest_seen.insert(release)) {
            continue;
        }
        let builds = service.store.builds();
        let Ok(Some(info)) = builds.blobs().head(key).await else {
            continue;
        };
        if !options.dry_run {
            builds
                .delete_sources(key)
                .await
                .map_err(|e| GcError::Storage(e.to_string()))?;
        }
        report.collected.push(Collected {
            kind: Kind::JobPackage,
            path: PathBuf::from(key),
            bytes: info.size,
        });
    }
    Ok(())
}

async fn blobs(
    service: &Service,
    options: &GcOptions,
    report: &mut GcReport,
) -> Result<(), GcError> {
    let storage = PathBuf::from(service.store.builds().blobs().describe());
    if service.queue.running().await? > 0 {
        report.kept.push((
            storage,
            "builds are running; unused stored files are kept".into(),
        ));
        return Ok(());
    }
    let builds: Vec<i64> = service.queue.builds().await?.iter().map(|b| b.id).collect();
    let unused = service
        .store
        .builds()
        .unused(&builds, options.blob_grace)
        .await
        .map_err(|e| GcError::Storage(e.to_string()))?;
    if !options.dry_run {
        let keys: Vec<String> = unused.iter().map(|blob| blob.key.clone()).collect();
        service
            .store
            .builds()
            .blobs()
            .delete_many(&keys)
            .await
            .map_err(|e| GcError::Storage(e.to_string()))?;
    }
    for blob in unused {
        report.collected.push(Collected {
            kind: Kind::Blob,
            path: PathBuf::from(blob.key),
            bytes: blob.size,
        });
    }
    Ok(())
}
