//! Workers: claim a job, get its sources, build them through the same path as
//! `check`, store the result, settle the job.
//!
//! A build's result is stored under the data directory at
//! `crates/<registry>/<name>/<version>/<build>/`: `docs/` (the default target's docs
//! at the top, other targets in `docs/<target>/`), `build.log` and `record.json`
//! (the [`CrateReport`], with paths inside that directory).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use docbuild_sandbox::{Sandbox, SandboxImage, SandboxLimits};
use tokio_util::sync::CancellationToken;

use crate::check::{CheckOptions, check};
use crate::config::{Config, DataDir, LOCAL};
use crate::copy::copy_sources;
use crate::error::BuildError;
use crate::host_cargo::HostCargo;
use crate::identity::{CrateId, CrateVersion, RegistryName};
use crate::outcome::{CrateReport, Failure, Outcome};
use crate::prepare::{LocalPackage, SourceMode, blocking, prepare_source};
use crate::queue::{Job, PRIORITY_NEW, Queue, QueueError};
use crate::registry::fetch_crate;
use crate::static_files::{STATIC_FILES, reference_static_files, share_static_files};
use crate::toolchain::Toolchain;
use crate::unpack::unpack_crate;

/// How workers run.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Builds at once in this process.
    pub jobs: usize,
    /// Stop when no job is left to claim, instead of waiting for more.
    pub once: bool,
    pub lease: Duration,
    /// First retry delay after an infrastructure error; it doubles each time.
    pub retry_base: Duration,
    pub limits: SandboxLimits,
    pub image: SandboxImage,
    pub toolchain: Option<String>,
    /// A name for this process's workers in the queue.
    pub name: String,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            jobs: 1,
            once: false,
            lease: Duration::from_secs(60),
            retry_base: Duration::from_secs(30),
            limits: SandboxLimits::default(),
            image: SandboxImage::Default,
            toolchain: None,
            name: format!("worker-{}", std::process::id()),
        }
    }
}

/// Everything the workers of one process share.
pub struct Service {
    pub data: DataDir,
    pub config: Config,
    pub queue: Queue,
}

impl Service {
    pub fn open(data: DataDir, config: Config) -> Result<Self, QueueError> {
        let queue = Queue::open(&data.database())?;
        Ok(Self {
            data,
            config,
            queue,
        })
    }

    /// Queues a local package: it is packaged now, so the build sees the sources as
    /// of this moment. Returns the job id.
    pub async fn enqueue_path(
        &self,
        path: &Path,
        toolchain: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<i64, Failure> {
        let toolchain = Toolchain::resolve(toolchain)
            .await
            .map_err(BuildError::from)?;
        let dir = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let registries = self.config.registries().with_project(&dir);
        let cargo_home = self.data.cache().cargo_home();
        std::fs::create_dir_all(&cargo_home)
            .map_err(|e| Failure::from(BuildError::Io("cannot create the cargo home", e)))?;
        let cargo = HostCargo::new(&toolchain, &cargo_home, &registries, cancel);
        let package = LocalPackage::locate(path, &cargo).await?;
        let (id, new) = self
            .queue
            .enqueue(LOCAL, package.name(), &package.version(), PRIORITY_NEW)
            .map_err(|e| Failure::new(Outcome::InfrastructureError, e))?;
        if !new {
            return Ok(id);
        }
        match self.package_local(&package, &cargo, id).await {
            Ok(file) => self
                .queue
                .set_crate_file(id, &file)
                .map(|()| id)
                .map_err(|e| Failure::new(Outcome::InfrastructureError, e)),
            Err(error) => {
                let _ = self.queue.forget(id);
                Err(error.into())
            }
        }
    }

    async fn package_local(
        &self,
        package: &LocalPackage,
        cargo: &HostCargo,
        job: i64,
    ) -> Result<PathBuf, BuildError> {
        let job_dir = self.data.job_dir(job);
        tokio::fs::create_dir_all(&job_dir)
            .await
            .map_err(BuildError::io("cannot create the job's directory"))?;
        if package.already_packaged {
            // An unpacked `.crate`: keep a copy of the directory as it is.
            let copy = job_dir.join("src");
            prepare_source(package, SourceMode::AsIs, &copy, &job_dir, cargo).await?;
            return Ok(copy);
        }
        let prefix = package.id.archive_prefix();
        let file = job_dir.join(format!("{prefix}.crate"));
        cargo.package(&package.manifest, &[], &job_dir).await?;
        tokio::fs::rename(
            job_dir.join("package").join(format!("{prefix}.crate")),
            &file,
        )
        .await
        .map_err(BuildError::io("cannot keep the package"))?;
        let _ = tokio::fs::remove_dir_all(job_dir.join("package")).await;
        Ok(file)
    }

    /// Queues a registry crate version.
    pub fn enqueue_registry(
        &self,
        registry: &RegistryName,
        krate: &CrateVersion,
    ) -> Result<i64, Failure> {
        self.queue
            .enqueue(
                registry.as_str(),
                krate.name(),
                &krate.version(),
                PRIORITY_NEW,
            )
            .map(|(id, _)| id)
            .map_err(|e| Failure::new(Outcome::InfrastructureError, e))
    }
}

/// Runs `options.jobs` workers until cancelled, or, with `once`, until no job is left.
/// Returns how many builds finished.
pub async fn run_workers(
    service: Arc<Service>,
    options: WorkerOptions,
    cancel: CancellationToken,
) -> usize {
    let mut tasks = Vec::new();
    for slot in 0..options.jobs.max(1) {
        let service = service.clone();
        let options = options.clone();
        let cancel = cancel.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("{}-{slot}", options.name);
            worker_loop(&service, &options, &name, &cancel).await
        }));
    }
    let mut built = 0;
    for task in tasks {
        built += task.await.unwrap_or(0);
    }
    built
}

async fn worker_loop(
    service: &Service,
    options: &WorkerOptions,
    name: &str,
    cancel: &CancellationToken,
) -> usize {
    let mut built = 0;
    while !cancel.is_cancelled() {
        let claimed = service.queue.claim(name, options.lease);
        let job = match claimed {
            Ok(Some(job)) => job,
            Ok(None) if options.once => break,
            Ok(None) => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                    _ = cancel.cancelled() => break,
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot claim a job");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    _ = cancel.cancelled() => break,
                }
            }
        };
        tracing::info!(job = job.id, name = %job.name, version = %job.version, "building");
        match build_job(service, options, name, &job, cancel).await {
            Ok(outcome) => {
                tracing::info!(job = job.id, %outcome, "built");
                built += 1;
            }
            Err(error) => tracing::error!(job = job.id, %error, "cannot store the build"),
        }
    }
    built
}

async fn build_job(
    service: &Service,
    options: &WorkerOptions,
    worker: &str,
    job: &Job,
    cancel: &CancellationToken,
) -> Result<Outcome, QueueError> {
    let data = &service.data;
    // Rows are validated when queued; one that is not never becomes a path.
    let id = match CrateId::new(&job.registry, &job.name, &job.version) {
        Ok(id) => id,
        Err(error) => {
            let report = CrateReport::early(Outcome::InvalidInput, error.to_string());
            let build = service.queue.begin_build(job)?;
            service
                .queue
                .finish(job, worker, build, &report, options.retry_base)?;
            return Ok(report.outcome);
        }
    };
    let work = data.work_dir(&id);
    // The work directory is this job's alone (one pending job per release), so any
    // container building there belongs to a worker that died or lost the engine.
    if let Ok(sandbox) = Sandbox::connect().await {
        match sandbox.remove_containers_under(&work).await {
            Ok(0) => {}
            Ok(removed) => {
                tracing::info!(job = job.id, removed, "removed a dead build's container")
            }
            Err(error) => tracing::warn!(%error, "cannot look for a dead build's container"),
        }
    }
    let build = service.queue.begin_build(job)?;
    let build_dir = data.build_dir(&id, build);

    // Renew the lease while building; losing it means another worker took the job.
    let job_cancel = cancel.child_token();
    let renewer = {
        let queue = service.queue.clone();
        let (id, worker, lease) = (job.id, worker.to_string(), options.lease);
        let job_cancel = job_cancel.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                if !matches!(queue.renew(id, &worker, lease), Ok(true)) {
                    job_cancel.cancel();
                    break;
                }
            }
        })
    };
    let mut report =
        build_sources(service, options, job, &id, &work, &build_dir, &job_cancel).await;
    renewer.abort();
    if cancel.is_cancelled() {
        // Shutting down: leave the job to be claimed again.
        return Ok(report.outcome);
    }
    let toolchain = Toolchain::resolve(options.toolchain.as_deref()).await;
    if let Err(error) = store(
        &mut report,
        &work,
        &build_dir,
        data,
        toolchain.ok().as_ref(),
        cancel,
    )
    .await
    {
        report.outcome = error.outcome();
        report.message = format!("cannot store the build: {error}");
    }
    service
        .queue
        .finish(job, worker, build, &report, options.retry_base)?;
    Ok(report.outcome)
}

/// Gets the job's sources into `work/job-src` and builds them.
async fn build_sources(
    service: &Service,
    options: &WorkerOptions,
    job: &Job,
    id: &CrateId,
    work: &Path,
    build_dir: &Path,
    cancel: &CancellationToken,
) -> CrateReport {
    let source = work.join("job-src");
    if let Err(error) = get_job_sources(service, options, job, id, work, &source, cancel).await {
        let mut report = CrateReport::early(error.outcome(), error.to_string());
        report.name = Some(id.krate.name().to_string());
        report.version = Some(id.krate.version());
        return report;
    }
    let check_options = CheckOptions {
        path: source,
        mode: SourceMode::AsIs,
        limits: options.limits.clone(),
        image: options.image.clone(),
        toolchain: options.toolchain.clone(),
        targets: Vec::new(),
        out: Some(build_dir.join("docs")),
        work_dir: Some(work.to_path_buf()),
        registries: service.config.registries(),
        // The sources are a published crate's: nothing of its configuration is read.
        project_registries: false,
        extern_map: service.config.extern_map(),
        packaged: None,
        dependencies: Vec::new(),
        workspace_members: Vec::new(),
    };
    let cache = service.data.cache();
    check(&check_options, &cache, &|_: &str| {}, cancel).await
}

async fn get_job_sources(
    service: &Service,
    options: &WorkerOptions,
    job: &Job,
    id: &CrateId,
    work: &Path,
    source: &Path,
    cancel: &CancellationToken,
) -> Result<(), BuildError> {
    const WHAT: &str = "cannot prepare the job's sources";
    tokio::fs::create_dir_all(work)
        .await
        .map_err(BuildError::io(WHAT))?;
    if tokio::fs::symlink_metadata(source).await.is_ok() {
        tokio::fs::remove_dir_all(source)
            .await
            .map_err(BuildError::io(WHAT))?;
    }
    if job.registry == LOCAL {
        let file = job
            .crate_file
            .clone()
            .ok_or_else(|| BuildError::Io(WHAT, std::io::Error::other("the package is missing")))?;
        let (prefix, source) = (id.krate.archive_prefix(), source.to_path_buf());
        return blocking(move || {
            if file.is_dir() {
                // An unpacked `.crate` kept as it was queued (links already resolved).
                copy_sources(&file, &source, &file, &[]).map_err(BuildError::Sources)?;
            } else {
                unpack_crate(&file, &prefix, &source)?;
            }
            crate::prepare::make_standalone(&source)
                .map_err(BuildError::io("cannot read the crate's manifest"))
        })
        .await;
    }
    let toolchain = Toolchain::resolve(options.toolchain.as_deref()).await?;
    let cargo_home = service.data.cache().cargo_home();
    tokio::fs::create_dir_all(&cargo_home)
        .await
        .map_err(BuildError::io(WHAT))?;
    let cargo = HostCargo::new(
        &toolchain,
        &cargo_home,
        &service.config.registries(),
        cancel,
    );
    fetch_crate(&cargo, &id.registry, &id.krate, &work.join("fetch"), source).await?;
    // A published crate is its own workspace root, wherever the data directory is.
    let source = source.to_path_buf();
    blocking(move || {
        crate::prepare::make_standalone(&source)
            .map_err(BuildError::io("cannot read the crate's manifest"))
    })
    .await
}

/// Moves the log next to the docs, keeps rustdoc's shared static files once for all
/// builds (the toolchain's own, never the build's), and writes the record, with paths
/// inside the build's directory. The docs were copied by `check` with the
/// link-refusing copier; their `static.files/` are dropped here.
async fn store(
    report: &mut CrateReport,
    work: &Path,
    build_dir: &Path,
    data: &DataDir,
    toolchain: Option<&Toolchain>,
    cancel: &CancellationToken,
) -> Result<(), BuildError> {
    const WHAT: &str = "cannot store the build";
    tokio::fs::create_dir_all(build_dir)
        .await
        .map_err(BuildError::io(WHAT))?;
    let log = build_dir.join("build.log");
    if tokio::fs::copy(work.join("build.log"), &log).await.is_ok() {
        report.log = Some(log);
    }
    let docs = build_dir.join("docs");
    if tokio::fs::symlink_metadata(&docs)
        .await
        .is_ok_and(|m| m.is_dir())
    {
        if let Some(toolchain) = toolchain {
            let reference = reference_static_files(toolchain, data.cache().root(), cancel).await?;
            share_static_files(&reference, &data.shared_static()).await?;
        }
        let docs_dir = docs.clone();
        report.docs_size_bytes = Some(
            blocking(move || {
                drop_static_files(&docs_dir)?;
                Ok(crate::copy::tree_size(&docs_dir))
            })
            .await?,
        );
    }
    let record = serde_json::to_vec_pretty(report)
        .map_err(|e| BuildError::Io(WHAT, std::io::Error::other(e)))?;
    tokio::fs::write(build_dir.join("record.json"), record)
        .await
        .map_err(BuildError::io(WHAT))
}

/// Removes every target's `static.files/` from stored docs: the viewer serves the
/// shared copy.
fn drop_static_files(docs: &Path) -> Result<(), BuildError> {
    let dirs: Vec<PathBuf> = walkdir::WalkDir::new(docs)
        .max_depth(2)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_dir() && e.file_name() == STATIC_FILES)
        .map(|e| e.into_path())
        .collect();
    for dir in dirs {
        std::fs::remove_dir_all(&dir).map_err(BuildError::io("cannot drop static files"))?;
    }
    Ok(())
}
