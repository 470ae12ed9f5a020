//! Workers: claim a job, get its sources, build them through the same path as
//! `check`, store the result, settle the job.
//!
//! A build's docs are put together under the data directory at
//! `staging/<build>/docs/` (the default target's docs at
//! the top, other targets in `docs/<target>/`, each with the toolchain's
//! `static.files/`), then
//! stored in the store's blob storage with the build's log and the package's files
//! as unpacked before the build; the report is recorded in the database. The data
//! directory is only a cache: workers on several machines share one database and one
//! storage.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use docbuild_sandbox::{Sandbox, SandboxImage, SandboxLimits};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::check::{CheckOptions, check};
use crate::config::{Config, DataDir, LOCAL};
use crate::error::BuildError;
use crate::host_cargo::HostCargo;
use crate::identity::CrateId;
use crate::outcome::{CrateReport, Failure, Outcome};
use crate::prepare::{LocalPackage, SourceMode, prepare_source};
use crate::queue::{BuildResult, Job, PRIORITY_NEW, Queue, QueueError};
use crate::registry::{fetch_archive, unpack_archive};
use crate::toolchain::Toolchain;
use docbuild_store::Store;
use docbuild_store::archive::{self, Effort, Manifest};
use docbuild_store::db::blocking;

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
    /// Told when each job starts and ends.
    pub events: EventSink,
}

/// What a worker tells about its jobs.
#[derive(Debug)]
pub enum WorkerEvent<'a> {
    /// A job was claimed and its build begins.
    Started { job: &'a Job, worker: &'a str },
    /// A job's build ended and was stored.
    Finished {
        job: &'a Job,
        outcome: Outcome,
        message: &'a str,
        duration: Duration,
        log: Option<&'a Path>,
        /// An infrastructure error with attempts left: queued again for later.
        retried: bool,
    },
    /// The build was stopped (a shutdown) and the job given back to the queue.
    Released { job: &'a Job },
    /// Another worker holds the job now; this build was dropped.
    LeaseLost { job: &'a Job },
    /// The build could not be stored or settled.
    Failed { job: &'a Job, error: &'a str },
}

/// A function told of worker events.
type EventFn = dyn Fn(&WorkerEvent<'_>) + Send + Sync;

/// Where worker events go: nowhere by default.
#[derive(Clone, Default)]
pub struct EventSink(Option<Arc<EventFn>>);

impl EventSink {
    pub fn new(sink: impl Fn(&WorkerEvent<'_>) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(sink)))
    }

    fn send(&self, event: &WorkerEvent<'_>) {
        if let Some(sink) = &self.0 {
            sink(event);
        }
    }
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "EventSink(..)"
        } else {
            "EventSink(none)"
        })
    }
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
            events: EventSink::default(),
        }
    }
}

/// Everything the workers of one process share.
pub struct Service {
    pub data: DataDir,
    pub config: Config,
    pub store: Store,
    pub queue: Queue,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("docbuild.toml: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] docbuild_store::StoreError),
    #[error("cannot move the data directory's builds into storage: {0}")]
    Import(String),
}

impl Service {
    /// Opens the store `config` names (migrating its schema) for the data directory.
    pub async fn open(data: DataDir, config: Config) -> Result<Self, ServiceError> {
        let location = config.store_location(&data).map_err(ServiceError::Config)?;
        let store = Store::open(&location).await?;
        // A data directory of docbuild 0.1.0 kept builds as loose files.
        let imported = docbuild_store::legacy::import(&store, data.root())
            .await
            .map_err(|e| ServiceError::Import(e.to_string()))?;
        if imported != Default::default() {
            tracing::info!(?imported, "moved the data directory's builds into storage");
        }
        Ok(Self {
            data,
            config,
            queue: store.queue(),
            store,
        })
    }

    /// Queues a local package: it is packaged now, so the build sees the sources as
    /// of this moment. Returns the job id.
    pub async fn enqueue_path(
        &self,
        path: &Path,
        toolchain: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<crate::admin::Queued, Failure> {
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
        let release = CrateId::new(LOCAL, package.name(), &package.version())
            .map_err(|e| Failure::new(Outcome::InvalidInput, e))?;
        let (id, new) = self
            .queue
            .enqueue(&release, PRIORITY_NEW)
            .await
            .map_err(|e| Failure::new(Outcome::InfrastructureError, e))?;
        let queued = crate::admin::Queued { id, new };
        if !new {
            return Ok(queued);
        }
        let kept = match self.package_local(&package, &cargo, id).await {
            Ok(package) => self
                .store
                .builds()
                .put_sources(id, package.into())
                .await
                .map_err(|e| Failure::new(Outcome::InfrastructureError, e)),
            Err(error) => Err(error.into()),
        };
        let kept = match kept {
            Ok(key) => self
                .queue
                .set_sources(id, &key)
                .await
                .map_err(|e| Failure::new(Outcome::InfrastructureError, e)),
            Err(error) => Err(error),
        };
        if let Err(error) = kept {
            let _ = self.queue.forget(id).await;
            return Err(error);
        }
        Ok(queued)
    }

    /// The package of a local crate, as a `.crate` archive.
    async fn package_local(
        &self,
        package: &LocalPackage,
        cargo: &HostCargo,
        job: i64,
    ) -> Result<Vec<u8>, BuildError> {
        let job_dir = self.data.root().join("jobs").join(job.to_string());
        tokio::fs::create_dir_all(&job_dir)
            .await
            .map_err(BuildError::io("cannot create the job's directory"))?;
        let prefix = package.id.archive_prefix();
        let packaged = if package.already_packaged {
            // An unpacked `.crate`: archive a copy of the directory as it is.
            let copy = job_dir.join("src");
            match prepare_source(package, SourceMode::AsIs, &copy, &job_dir, cargo).await {
                Ok(_) => blocking(move || crate::unpack::pack_dir(&copy, &prefix)).await,
                Err(error) => Err(error),
            }
        } else {
            match cargo.package(&package.manifest, &[], &job_dir).await {
                Ok(_) => tokio::fs::read(job_dir.join("package").join(format!("{prefix}.crate")))
                    .await
                    .map_err(BuildError::io("cannot read the package")),
                Err(error) => Err(error.into()),
            }
        };
        let _ = tokio::fs::remove_dir_all(&job_dir).await;
        packaged
    }
}

/// Runs `options.jobs` workers until cancelled, or, with `once`, until no job is left.
/// Returns how many builds finished.
///
/// Once `cancel` fires, each worker stops its running build (the sandbox kills and
/// removes its container), gives its job back to the queue for any worker to claim,
/// and ends; this returns when all of them have.
pub async fn run_workers(
    service: Arc<Service>,
    options: WorkerOptions,
    cancel: CancellationToken,
) -> usize {
    let options = Arc::new(options);
    let mut workers = JoinSet::new();
    for slot in 0..options.jobs.max(1) {
        let name = format!("{}-{slot}", options.name);
        workers.spawn(worker_loop(
            service.clone(),
            options.clone(),
            name,
            cancel.clone(),
        ));
    }
    let mut built = 0;
    while let Some(ended) = workers.join_next().await {
        match ended {
            Ok(count) => built += count,
            Err(error) => tracing::error!(%error, "a worker stopped unexpectedly"),
        }
    }
    built
}

async fn worker_loop(
    service: Arc<Service>,
    options: Arc<WorkerOptions>,
    name: String,
    cancel: CancellationToken,
) -> usize {
    let mut built = 0;
    // Removing a stored build's staging copy overlaps the next job.
    let mut cleanups = JoinSet::new();
    while !cancel.is_cancelled() {
        while cleanups.try_join_next().is_some() {}
        let claimed = service.queue.claim(&name, options.lease).await;
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
        tracing::info!(job = job.id, name = %job.name, version = %job.version, worker = %name, "building");
        options.events.send(&WorkerEvent::Started {
            job: &job,
            worker: &name,
        });
        let started = Instant::now();
        match build_job(&service, &options, &name, &job, &mut cleanups, &cancel).await {
            Ok(Settled::Built(report)) => {
                tracing::info!(job = job.id, outcome = %report.outcome, "built");
                let retried = report.outcome == Outcome::InfrastructureError
                    && job.attempts < crate::queue::MAX_ATTEMPTS;
                options.events.send(&WorkerEvent::Finished {
                    job: &job,
                    outcome: report.outcome,
                    message: &report.message,
                    duration: started.elapsed(),
                    log: report.log.as_deref(),
                    retried,
                });
                built += 1;
            }
            Ok(Settled::Released) => {
                tracing::info!(job = job.id, "build stopped; the job is queued again");
                options.events.send(&WorkerEvent::Released { job: &job });
            }
            Ok(Settled::LeaseLost) => {
                tracing::warn!(
                    job = job.id,
                    worker = %name,
                    "lease lost: another worker holds the job now; this build is dropped"
                );
                options.events.send(&WorkerEvent::LeaseLost { job: &job });
            }
            Err(error) => {
                tracing::error!(job = job.id, %error, "cannot store the build");
                options.events.send(&WorkerEvent::Failed {
                    job: &job,
                    error: &error.to_string(),
                });
            }
        }
    }
    while cleanups.join_next().await.is_some() {}
    built
}

/// How a claimed job left this worker's hands.
enum Settled {
    /// Built, stored and settled with this report.
    Built(Box<CrateReport>),
    /// Given back unsettled, for any worker to claim at once: the worker is shutting
    /// down, or could not renew the lease.
    Released,
    /// Another worker holds the job now; this build's result was not recorded.
    LeaseLost,
}

/// Keeps a claimed job's lease alive from an OS thread of its own, so that blocking
/// work on the async runtime, however much of it, cannot starve the renewal. When
/// the lease is lost (another worker claimed the job, or renewing failed for a whole
/// lease), `on_lost` is cancelled, which stops the build. Dropping the keeper stops
/// the renewal.
struct LeaseKeeper {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    lost: Arc<AtomicBool>,
}

impl LeaseKeeper {
    fn start(
        queue: Queue,
        job: i64,
        worker: &str,
        lease: Duration,
        on_lost: CancellationToken,
    ) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let lost = Arc::new(AtomicBool::new(false));
        let (flag, worker, cancel) = (lost.clone(), worker.to_string(), on_lost.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("lease-{job}"))
            .spawn(move || {
                let every = lease / 3;
                let mut renewed = Instant::now();
                loop {
                    match stopped.recv_timeout(every) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        // Stopped, or the keeper was dropped.
                        _ => return,
                    }
                    match queue.renew_blocking(job, &worker, lease) {
                        Ok(true) => renewed = Instant::now(),
                        Ok(false) => {
                            if matches!(
                                stopped.try_recv(),
                                Err(mpsc::TryRecvError::Empty)
                            ) {
                                tracing::warn!(job, %worker, "lease lost: the job was claimed by another worker");
                                break;
                            }
                            return;
                        }
                        Err(error) if renewed.elapsed() < lease => {
                            tracing::warn!(job, %error, "cannot renew the lease; trying again");
                        }
                        Err(error) => {
                            tracing::error!(job, %error, "cannot renew the lease; giving the build up");
                            break;
                        }
                    }
                }
                flag.store(true, Ordering::SeqCst);
                cancel.cancel();
            });
        let thread = match spawned {
            Ok(thread) => Some(thread),
            Err(error) => {
                tracing::error!(job, %error, "cannot start the lease renewal; giving the job back");
                lost.store(true, Ordering::SeqCst);
                on_lost.cancel();
                None
            }
        };
        Self {
            stop: Some(stop),
            thread,
            lost,
        }
    }

    /// Whether the lease was lost, so that the build was stopped.
    fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Stops renewing and waits for the renewal thread (at most one renewal long):
    /// after this, nothing renews the lease. Blocking.
    fn stop(mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        // Disconnecting the channel ends the thread at its next wake-up; not joined,
        // so that dropping never blocks the runtime.
        self.stop.take();
    }
}

async fn build_job(
    service: &Service,
    options: &WorkerOptions,
    worker: &str,
    job: &Job,
    cleanups: &mut JoinSet<()>,
    cancel: &CancellationToken,
) -> Result<Settled, QueueError> {
    let data = &service.data;
    // Renew the lease while building; losing it means another worker took the job,
    // and stops this build.
    let job_cancel = cancel.child_token();
    let keeper = LeaseKeeper::start(
        service.queue.clone(),
        job.id,
        worker,
        options.lease,
        job_cancel.clone(),
    );
    let give_back = |keeper: LeaseKeeper, build: Option<i64>| {
        let (queue, job, worker) = (service.queue.clone(), job.clone(), worker.to_string());
        async move {
            blocking(move || keeper.stop()).await;
            let released = queue.release(&job, &worker, build).await?;
            Ok(if released {
                Settled::Released
            } else {
                Settled::LeaseLost
            })
        }
    };
    // Rows are validated when queued; one that is not never becomes a path.
    let id = match CrateId::new(&job.registry, &job.name, &job.version) {
        Ok(id) => id,
        Err(error) => {
            let build = give_back_or_settle_invalid(service, options, worker, job, &error).await;
            keeper.stop();
            return build;
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
    if job_cancel.is_cancelled() {
        return give_back(keeper, None).await;
    }
    let begun = service.queue.begin_build(job).await;
    let build = match begun {
        Ok(build) => build,
        Err(error) => {
            // Give the job back at once rather than when its lease runs out.
            let _ = give_back(keeper, None).await;
            return Err(error);
        }
    };
    let build_dir = data.build_dir(build);

    let (mut report, package) =
        build_sources(service, options, job, &id, &work, &build_dir, &job_cancel).await;
    // A build that was stopped (shutdown, or the lease lost) is not the crate's
    // outcome: the job goes back to the queue, if it is still ours. A build that
    // succeeded before the shutdown reached it is kept.
    let stopped = keeper.lost() || (cancel.is_cancelled() && report.outcome != Outcome::Success);
    if stopped {
        return give_back(keeper, Some(build)).await;
    }
    let stored = match store(
        &mut report,
        &work,
        &build_dir,
        build,
        package.as_ref(),
        service,
    )
    .await
    {
        Ok(()) => true,
        Err(error) => {
            report.outcome = error.outcome();
            report.message = format!("cannot store the build: {error}");
            false
        }
    };
    // The data directory is a cache: the build lives in the store now.
    cleanups.spawn(async move {
        let _ = tokio::fs::remove_dir_all(&build_dir).await;
    });
    let result = build_result(&report, stored);
    // Renewal ends first, so that it cannot see the settled job as a lost lease.
    blocking(move || keeper.stop()).await;
    let settled = service
        .queue
        .finish(job, worker, build, result, options.retry_base)
        .await;
    match settled {
        Ok(()) => Ok(Settled::Built(Box::new(report))),
        Err(QueueError::LeaseLost(_)) => Ok(Settled::LeaseLost),
        Err(error) => Err(error),
    }
}

/// Settles a job whose row names no valid crate as `invalid-input`.
async fn give_back_or_settle_invalid(
    service: &Service,
    options: &WorkerOptions,
    worker: &str,
    job: &Job,
    error: &crate::identity::CrateVersionError,
) -> Result<Settled, QueueError> {
    let report = CrateReport::early(Outcome::InvalidInput, error.to_string());
    let build = service.queue.begin_build(job).await?;
    service
        .queue
        .finish(
            job,
            worker,
            build,
            build_result(&report, false),
            options.retry_base,
        )
        .await?;
    Ok(Settled::Built(Box::new(report)))
}

/// A report as the queue records it.
fn build_result(report: &CrateReport, stored: bool) -> BuildResult {
    BuildResult {
        outcome: report.outcome,
        message: Some(report.message.clone()),
        record: serde_json::to_string(report).unwrap_or_else(|_| "{}".into()),
        stored,
    }
}

/// Gets the job's sources into `work/job-src` and builds them, while the package's
/// files are stored from a copy of their own. Answers the report, and where the
/// package's files were stored if it was unpacked (whatever came next).
async fn build_sources(
    service: &Service,
    options: &WorkerOptions,
    job: &Job,
    id: &CrateId,
    work: &Path,
    build_dir: &Path,
    cancel: &CancellationToken,
) -> (CrateReport, Option<Manifest>) {
    let source = work.join("job-src");
    // Unpacked twice: nothing but `keep_package` reads or writes this copy, so the
    // package's files are stored as unpacked while the build runs on the other.
    let package_dir = work.join("job-package");
    let early = |error: BuildError| {
        let mut report = CrateReport::early(error.outcome(), error.to_string());
        report.name = Some(id.krate.name().to_string());
        report.version = Some(id.krate.version());
        report
    };
    let unpacked = unpack_job_sources(
        service,
        options,
        job,
        id,
        work,
        &[&package_dir, &source],
        cancel,
    )
    .await;
    if let Err(error) = unpacked {
        return (early(error), None);
    }
    let keeping = keep_package(service, &package_dir);
    if let Err(error) = make_standalone(&source).await {
        return (early(error), keeping.await);
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
        deny_warnings: false,
        about: true,
        rustdoc_json: true,
        build_cache: Some(
            service
                .data
                .build_cache(service.config.limits.build_cache_bytes()),
        ),
        keep_mounted: None,
    };
    let cache = service.data.cache();
    let building = check(&check_options, &cache, &|_: &str| {}, cancel);
    tokio::join!(building, keeping)
}

/// A published crate is its own workspace root, wherever the data directory is.
async fn make_standalone(source: &Path) -> Result<(), BuildError> {
    let source = source.to_path_buf();
    crate::prepare::blocking(move || {
        crate::prepare::make_standalone(&source)
            .map_err(BuildError::io("cannot read the crate's manifest"))
    })
    .await
}

/// Stores the files of the package as unpacked, from a copy nothing else reads or
/// writes (the build runs on another, `job-src`, copied again to `work/src`, and
/// writes below `work/target`): their blobs now, their manifest with the build's. The
/// tree is read as every stored tree is, no link followed (`archive::store_tree`), and
/// removed after. Not keeping them does not fail the build.
async fn keep_package(service: &Service, package_dir: &Path) -> Option<Manifest> {
    let blobs = service.store.builds().blobs();
    let kept = match archive::store_tree_with(blobs, package_dir, STORE_EFFORT).await {
        Ok((manifest, stats)) => {
            tracing::debug!(
                files = stats.files,
                new_blobs = stats.new_blobs,
                skipped = stats.skipped,
                "kept the package's files"
            );
            Some(manifest)
        }
        Err(error) => {
            tracing::warn!(%error, "cannot keep the package's files");
            None
        }
    };
    let _ = tokio::fs::remove_dir_all(package_dir).await;
    kept
}

/// The job's package, unpacked into each of `dirs`: a local job's `.crate` from
/// storage, or a registry's, fetched by cargo.
async fn unpack_job_sources(
    service: &Service,
    options: &WorkerOptions,
    job: &Job,
    id: &CrateId,
    work: &Path,
    dirs: &[&Path],
    cancel: &CancellationToken,
) -> Result<(), BuildError> {
    const WHAT: &str = "cannot prepare the job's sources";
    tokio::fs::create_dir_all(work)
        .await
        .map_err(BuildError::io(WHAT))?;
    for dir in dirs {
        if tokio::fs::symlink_metadata(dir).await.is_ok() {
            tokio::fs::remove_dir_all(dir)
                .await
                .map_err(BuildError::io(WHAT))?;
        }
    }
    let dirs = dirs.iter().map(|dir| dir.to_path_buf()).collect();
    if job.registry == LOCAL {
        let missing = || BuildError::Io(WHAT, std::io::Error::other("the package is missing"));
        let key = job.sources.clone().ok_or_else(missing)?;
        let package = service
            .store
            .builds()
            .sources(&key)
            .await
            .map_err(|e| BuildError::Io(WHAT, std::io::Error::other(e)))?
            .ok_or_else(missing)?;
        let file = work.join("job.crate");
        tokio::fs::write(&file, &package)
            .await
            .map_err(BuildError::io(WHAT))?;
        return unpack_archive(file, &id.krate, dirs).await;
    }
    let toolchain = fetch_toolchain(options.toolchain.as_deref()).await?;
    let cargo_home = service.data.cache().cargo_home();
    tokio::fs::create_dir_all(&cargo_home)
        .await
        .map_err(BuildError::io(WHAT))?;
    let registries = service.config.registries();
    let cargo = HostCargo::new(&toolchain, &cargo_home, &registries, cancel);
    let fetched = fetch_archive(&cargo, &id.registry, &id.krate, &work.join("fetch")).await;
    if let Err(BuildError::HostCargo(error)) = &fetched
        && error.failure == crate::host_cargo::HostFailure::Crate
        && let Some(why) = crate::registry::unavailable(&registries, &id.registry, &id.krate).await
    {
        return Err(BuildError::NotInRegistry(why));
    }
    unpack_archive(fetched?, &id.krate, dirs).await
}

/// The toolchain whose cargo downloads jobs' crates, resolved once per process (a
/// few rustup and rustc runs) and again if its cargo is gone. Only the download uses
/// it: `check` resolves the build's toolchain itself.
async fn fetch_toolchain(requested: Option<&str>) -> Result<Toolchain, BuildError> {
    static RESOLVED: Mutex<Vec<(Option<String>, Toolchain)>> = Mutex::new(Vec::new());
    let key = requested.map(str::to_string);
    let known = RESOLVED.lock().ok().and_then(|resolved| {
        resolved
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, toolchain)| toolchain.clone())
    });
    if let Some(toolchain) = known.filter(|toolchain| toolchain.cargo().is_file()) {
        return Ok(toolchain);
    }
    let toolchain = Toolchain::resolve(requested).await?;
    if let Ok(mut resolved) = RESOLVED.lock() {
        resolved.retain(|(name, _)| *name != key);
        resolved.push((key, toolchain.clone()));
    }
    Ok(toolchain)
}

/// Stores the build's docs and log, and records where its package's files are. The
/// docs were copied out by `check` with the link-refusing copier, each target's
/// `static.files/` already the toolchain's own
/// (`static_files::replace_static_files`), never the build's.
async fn store(
    report: &mut CrateReport,
    work: &Path,
    build_dir: &Path,
    build: i64,
    package: Option<&Manifest>,
    service: &Service,
) -> Result<(), BuildError> {
    let log = tokio::fs::read(work.join("build.log")).await.ok();
    if log.is_some() {
        report.log = Some(work.join("build.log"));
    }
    let docs = build_dir.join("docs");
    let has_docs = tokio::fs::symlink_metadata(&docs)
        .await
        .is_ok_and(|m| m.is_dir());
    let stats = service
        .store
        .builds()
        .put_with(
            build,
            has_docs.then_some(docs.as_path()),
            log.map(Into::into),
            STORE_EFFORT,
        )
        .await
        .map_err(|e| BuildError::Io("cannot store the build", std::io::Error::other(e)))?;
    if let Some(stats) = stats {
        report.docs_size_bytes = Some(stats.bytes);
    }
    // rustdoc's JSON, copied out of the target directory by `check` without following
    // links. Not keeping it does not fail the build: the record then has none.
    if let Some(json) = report.json.clone() {
        let kept = match json.path.as_deref() {
            Some(path) => read_json(path).await,
            None => Err("no file".to_string()),
        };
        let stored = match kept {
            Ok(bytes) => service
                .store
                .builds()
                .put_json(build, &json.target, bytes.into())
                .await
                .map_err(|e| e.to_string()),
            Err(error) => Err(error),
        };
        if let Err(error) = stored {
            tracing::warn!(build, %error, "cannot keep the rustdoc JSON");
            report.json = None;
        }
    }
    if let Some(package) = package {
        service
            .store
            .builds()
            .put_source_manifest(build, package)
            .await
            .map_err(|e| {
                BuildError::Io("cannot store the package's files", std::io::Error::other(e))
            })?;
    }
    Ok(())
}

/// How hard a job's files are compressed as they are stored: brotli's quality 5.
/// Quality 10 saves about 5% of the bytes for twenty-five times the CPU, and a
/// build's docs are readable only once stored: axum 0.8.9's 23 MB of pages take
/// 8.7 s of CPU at quality 10 and 0.3 s at 5, which its readers and the jobs behind
/// it would wait for.
const STORE_EFFORT: Effort = Effort::Fast;

/// The rustdoc JSON `check` kept, at most [`crate::check::MAX_JSON_BYTES`].
async fn read_json(path: &Path) -> Result<Vec<u8>, String> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(crate::check::MAX_JSON_BYTES + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > crate::check::MAX_JSON_BYTES {
        return Err("too large".into());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use docbuild_store::testing::TestDatabase;

    /// A store on SQLite with one job, and the runtime that opened it.
    fn queue_with_a_job() -> (TestDatabase, tokio::runtime::Runtime, Queue) {
        let database = TestDatabase::sqlite();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let queue = runtime.block_on(async {
            let store = Store::open(&database.store_location()).await.unwrap();
            let id = CrateId::new("r", "a", "1.0.0").unwrap();
            store.queue().enqueue(&id, PRIORITY_NEW).await.unwrap();
            store.queue()
        });
        (database, runtime, queue)
    }

    #[test]
    fn the_lease_is_renewed_while_the_runtime_is_blocked() {
        let (_database, store_runtime, queue) = queue_with_a_job();
        let lease = Duration::from_secs(2);
        let job = store_runtime
            .block_on(queue.claim("one", lease))
            .unwrap()
            .unwrap();
        let cancel = CancellationToken::new();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let keeper = LeaseKeeper::start(queue.clone(), job.id, "one", lease, cancel.clone());
            // The runtime's only thread is busy with blocking work for more than two
            // leases; no task of it runs meanwhile.
            std::thread::sleep(lease * 5 / 2);
            assert!(!keeper.lost() && !cancel.is_cancelled());
            keeper.stop();
        });
        let claim = |worker| store_runtime.block_on(queue.claim(worker, lease)).unwrap();
        assert!(claim("two").is_none(), "the lease was renewed");
        // Without renewal the lease runs out.
        std::thread::sleep(lease + Duration::from_millis(1100));
        let taken = claim("two").unwrap();
        assert!(taken.taken_over);
        assert_eq!(taken.attempts, 2);
    }

    #[test]
    fn a_lost_lease_stops_the_build() {
        let (_database, runtime, queue) = queue_with_a_job();
        let lease = Duration::from_secs(3);
        let job = runtime
            .block_on(queue.claim("one", lease))
            .unwrap()
            .unwrap();
        let cancel = CancellationToken::new();
        let keeper = LeaseKeeper::start(queue.clone(), job.id, "one", lease, cancel.clone());
        // Another worker gets the job (as after a lease that ran out).
        assert!(runtime.block_on(queue.release(&job, "one", None)).unwrap());
        runtime
            .block_on(queue.claim("two", lease))
            .unwrap()
            .unwrap();
        let waited = Instant::now();
        while !cancel.is_cancelled() {
            assert!(waited.elapsed() < lease * 10, "the renewal never noticed");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(keeper.lost());
        assert_eq!(
            runtime
                .block_on(queue.job(job.id))
                .unwrap()
                .worker
                .as_deref(),
            Some("two"),
            "the other worker's claim stands"
        );
    }
}
