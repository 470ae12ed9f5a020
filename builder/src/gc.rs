//! `docbuild gc`: giving disk space back. What it removes, in this order:
//!
//! - work directories no build uses (the data directory's `work/<registry>/<name>/
//!   <version>/` without a queued or running job, and `check`'s per-package and
//!   per-workspace directories in its cache), each unmounted first, since its target
//!   directory may be a mounted filesystem image; one locked by a build is kept;
//! - stored builds of a release beyond the newest `keep`, never the one whose docs are
//!   served (its newest successful build);
//! - packages kept for local jobs that no rebuild needs (the newest job of a release
//!   keeps its package);
//! - rustdoc's shared static files of no kept build's toolchain (rustdoc names them
//!   by content; each toolchain's set is kept in the cache), only while no build
//!   runs (a running one may be about to use them).
//!
//! A dry run finds the same and removes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::check::CacheDirs;
use crate::config::LOCAL;
use crate::disk;
use crate::identity::CrateId;
use crate::queue::{JobStatus, QueueError, blocking};
use crate::static_files::reference_dir;
use crate::worker::Service;

/// What `gc` is asked to do.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Stored builds kept per release, newest first (besides the one served).
    pub keep_builds: usize,
    /// Find, but remove nothing.
    pub dry_run: bool,
    /// `check`'s cache, whose per-package work directories are collected too.
    pub check_cache: Option<CacheDirs>,
}

/// Kinds of things collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    WorkDir,
    Build,
    JobPackage,
    StaticFile,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::WorkDir => "work directory",
            Kind::Build => "build",
            Kind::JobPackage => "kept package",
            Kind::StaticFile => "static file",
        }
    }

    /// `1 build`, `2 work directories`.
    pub fn count(self, count: usize) -> String {
        let plural = match self {
            Kind::WorkDir => "work directories",
            Kind::Build => "builds",
            Kind::JobPackage => "kept packages",
            Kind::StaticFile => "static files",
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
    /// Things kept because they were in use, or could not be removed, with why.
    pub kept: Vec<(PathBuf, String)>,
}

impl GcReport {
    pub fn bytes(&self) -> u64 {
        self.collected.iter().map(|c| c.bytes).sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Queue(#[from] QueueError),
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
    static_files(service, options, &mut report).await?;
    Ok(report)
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
    let queue = service.queue.clone();
    let pending: BTreeSet<(String, String, String)> = blocking(move || queue.pending_releases())
        .await?
        .into_iter()
        .collect();
    let work_root = service.data.root().join("work");
    let mut candidates = Vec::new();
    for dir in dirs_at(&work_root, 3) {
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
    if let Some(cache) = &options.check_cache {
        for area in ["check", "workspaces"] {
            candidates.extend(dirs_at(&cache.root().join(area), 1));
        }
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
    let queue = service.queue.clone();
    let all = blocking(move || queue.builds()).await?;
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
    for ((registry, name, version), builds) in by_release {
        // Newest first, as the queue lists them.
        let served = builds.iter().find(|b| b.outcome == "success").map(|b| b.id);
        let old: Vec<i64> = builds
            .iter()
            .skip(options.keep_builds)
            .filter(|b| Some(b.id) != served && b.outcome != "running")
            .map(|b| b.id)
            .collect();
        if old.is_empty() {
            continue;
        }
        let Ok(id) = CrateId::new(&registry, &name, &version) else {
            continue;
        };
        let deleted = if options.dry_run {
            old
        } else {
            let queue = service.queue.clone();
            match blocking(move || queue.delete_builds(&old)).await {
                Ok(deleted) => deleted.into_iter().map(|b| b.id).collect(),
                Err(QueueError::Running(_)) => {
                    let release = service.data.build_dir(&id, 0);
                    report.kept.push((
                        release.parent().map_or(release.clone(), Path::to_path_buf),
                        "a job of its release is running".into(),
                    ));
                    continue;
                }
                Err(error) => return Err(error.into()),
            }
        };
        for build in deleted {
            let dir = service.data.build_dir(&id, build);
            remove_tree(report, Kind::Build, dir, options.dry_run).await;
        }
    }
    Ok(())
}

/// Measures a tree docbuild wrote, removes it unless this is a dry run, and counts it.
async fn remove_tree(report: &mut GcReport, kind: Kind, path: PathBuf, dry_run: bool) {
    let measured = path.clone();
    let bytes = blocking(move || {
        let bytes = disk_usage(&measured);
        if !dry_run {
            let _ = std::fs::remove_dir_all(&measured);
        }
        bytes
    })
    .await;
    report.collected.push(Collected { kind, path, bytes });
}

async fn job_packages(
    service: &Service,
    options: &GcOptions,
    report: &mut GcReport,
) -> Result<(), GcError> {
    let queue = service.queue.clone();
    let jobs = blocking(move || queue.jobs()).await?;
    // The newest job of each local release keeps its package, for `queue rebuild`;
    // pending jobs need theirs.
    let mut needed = BTreeSet::new();
    let mut newest_seen = BTreeSet::new();
    for job in &jobs {
        let release = (job.name.clone(), job.version.clone());
        if job.status != JobStatus::Done
            || (job.registry == LOCAL && job.crate_file.is_some() && newest_seen.insert(release))
        {
            needed.insert(job.id.to_string());
        }
    }
    for dir in dirs_at(&service.data.root().join("jobs"), 1) {
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if needed.contains(&id) {
            continue;
        }
        remove_tree(report, Kind::JobPackage, dir, options.dry_run).await;
    }
    Ok(())
}

async fn static_files(
    service: &Service,
    options: &GcOptions,
    report: &mut GcReport,
) -> Result<(), GcError> {
    let shared = service.data.shared_static();
    let queue = service.queue.clone();
    if blocking(move || queue.running()).await? > 0 {
        if shared.is_dir() {
            report
                .kept
                .push((shared, "builds are running; static files are kept".into()));
        }
        return Ok(());
    }
    let removed: BTreeSet<PathBuf> = report
        .collected
        .iter()
        .filter(|c| c.kind == Kind::Build)
        .map(|c| c.path.clone())
        .collect();
    let crates = service.data.root().join("crates");
    let references = service.data.cache().root().to_path_buf();
    let dry_run = options.dry_run;
    let collected = blocking(move || -> Result<Result<Vec<Collected>, String>, GcError> {
        let Ok(entries) = std::fs::read_dir(&shared) else {
            return Ok(Ok(Vec::new()));
        };
        let names: BTreeSet<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with('.'))
            .collect();
        // A build's pages use its toolchain's static files (rustdoc names them by
        // content): those of every kept build's toolchain stay.
        let mut toolchains = BTreeSet::new();
        for build in dirs_at(&crates, 4) {
            if removed.contains(&build) || !build.join("docs").is_dir() {
                continue;
            }
            let toolchain = std::fs::read(build.join("record.json"))
                .ok()
                .and_then(|record| serde_json::from_slice::<serde_json::Value>(&record).ok())
                .and_then(|record| record["toolchain"].as_str().map(str::to_string));
            match toolchain {
                Some(toolchain) => {
                    toolchains.insert(toolchain);
                }
                None => {
                    return Ok(Err(format!(
                        "{} names no toolchain; static files are kept",
                        build.display()
                    )));
                }
            }
        }
        let mut used = BTreeSet::new();
        for toolchain in toolchains {
            let reference = reference_dir(&toolchain, &references);
            let Ok(files) = std::fs::read_dir(&reference) else {
                return Ok(Err(format!(
                    "the static files of {toolchain} are no longer in {}; static files are kept",
                    reference.display()
                )));
            };
            used.extend(
                files
                    .flatten()
                    .map(|f| f.file_name().to_string_lossy().into_owned()),
            );
        }
        let mut collected = Vec::new();
        for name in names.difference(&used) {
            let path = shared.join(name);
            let bytes = std::fs::symlink_metadata(&path).map_or(0, |m| m.blocks() * 512);
            if !dry_run {
                std::fs::remove_file(&path).map_err(|e| GcError::Io(path.clone(), e))?;
            }
            collected.push(Collected {
                kind: Kind::StaticFile,
                path,
                bytes,
            });
        }
        Ok(Ok(collected))
    })
    .await?;
    match collected {
        Ok(collected) => report.collected.extend(collected),
        Err(why) => report.kept.push((service.data.shared_static(), why)),
    }
    Ok(())
}
