//! The operator's commands: `queue`, `docs`, `gc`, `worker`, `watch`, `serve` and
//! `token`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use docbuild_builder::admin::Queued;
use docbuild_builder::config::{CRATES_IO, Config, DataDir, LOCAL};
use docbuild_builder::gc::{GcOptions, Kind, collect_garbage};
use docbuild_builder::identity::{CrateId, CrateName, CrateVersion};
use docbuild_builder::queue::{Job, JobStatus};
use docbuild_builder::registry::CRATES_IO_INDEX;
use docbuild_builder::watch::{
    WatchError, WatchedRegistry, crate_name, valid_registry_name, watch_once,
};
use docbuild_builder::worker::{
    EventSink, Service, ServiceError, WorkerEvent, WorkerOptions, run_workers,
};
use docbuild_builder::{CacheDirs, Failure, Outcome};
use docbuild_store::tokens::Scope;

use crate::BuildArgs;
use crate::output::{self, BOLD, GREEN, RED, YELLOW, fail, note, warn};

#[derive(Subcommand)]
pub enum QueueCommand {
    /// Queue a build of a local package (packaged now), or of a registry crate
    /// (NAME: its newest version; NAME@VERSION); prints the job id.
    Add {
        /// A package directory, NAME or NAME@VERSION.
        what: String,
        /// The registry of NAME, as cargo names it [default: crates-io].
        #[arg(long, value_name = "NAME")]
        registry: Option<String>,
        /// Print {"id": N} instead of the id alone.
        #[arg(long)]
        json: bool,
    },
    /// List the jobs, newest first.
    List {
        /// Print one JSON object per job.
        #[arg(long)]
        json: bool,
    },
    /// Show one job: its status, outcome and reason, times, build and log.
    Show {
        /// The job's id, as `queue add` and `queue list` print it.
        id: i64,
        /// Print the job as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Queue a release docbuild built before again (after new releases); prints the
    /// job id.
    Rebuild {
        /// The release, as NAME@VERSION.
        #[arg(value_name = "NAME@VERSION", value_parser = parse_release)]
        release: CrateVersion,
        /// Its registry (`local` for a package queued from a path) [default: the
        /// only one docbuild knows the release from].
        #[arg(long, value_name = "NAME")]
        registry: Option<String>,
        /// Print {"id": N} instead of the id alone.
        #[arg(long)]
        json: bool,
    },
    /// Remove jobs that are not running (queued or done).
    Remove {
        /// The jobs' ids.
        #[arg(required = true, value_name = "ID")]
        ids: Vec<i64>,
    },
}

#[derive(Subcommand)]
pub enum DocsCommand {
    /// Delete every stored build of a release (docs, logs, records): the viewer
    /// stops serving it.
    Delete {
        /// The release, as NAME@VERSION.
        #[arg(value_name = "NAME@VERSION", value_parser = parse_release)]
        release: CrateVersion,
        /// Its registry (`local` for a package queued from a path) [default: the
        /// only one docbuild knows the release from].
        #[arg(long, value_name = "NAME")]
        registry: Option<String>,
    },
}

#[derive(Args)]
pub struct GcArgs {
    /// Stored builds kept per release, newest first; the one whose docs are served
    /// is always kept.
    #[arg(long, value_name = "N", default_value_t = 3)]
    keep_builds: usize,
    /// Say what would be removed, and remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Stored files no build refers to are removed once this old (a build being
    /// stored on another machine may be about to refer to a newer one).
    #[arg(long, value_name = "DURATION", default_value = "2days", value_parser = humantime::parse_duration)]
    grace: Duration,
}

fn parse_release(text: &str) -> Result<CrateVersion, String> {
    text.parse()
        .map_err(|e: docbuild_builder::identity::CrateVersionError| e.to_string())
}

#[derive(Args)]
pub struct WorkerArgs {
    /// Builds to run at once.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// Build what is queued, then exit.
    #[arg(long)]
    once: bool,
    /// How long a claimed job stays this worker's without renewal; a job whose worker
    /// died is claimed again after it.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = crate::parse_duration)]
    lease: Duration,
    /// First delay before retrying after an infrastructure error; it doubles each time.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::parse_duration)]
    retry_delay: Duration,
    #[command(flatten)]
    build: BuildArgs,
}

async fn open(data_dir: Option<&Path>, config: Option<&Path>) -> Result<Service, ExitCode> {
    let data = DataDir::resolve(data_dir);
    let config = Config::load(config, &data).map_err(|e| fail(Outcome::InvalidInput, &e))?;
    Service::open(data, config).await.map_err(|e| match e {
        ServiceError::Config(_) => fail(Outcome::InvalidInput, &e),
        ServiceError::Store(_) | ServiceError::Import(_) => fail(Outcome::InfrastructureError, &e),
    })
}

fn report_failure(failure: &Failure) -> ExitCode {
    fail(failure.outcome, &failure.message)
}

/// `{"id": N}` or `N`.
fn print_id(id: i64, json: bool) -> ExitCode {
    let line = if json {
        serde_json::json!({ "id": id }).to_string()
    } else {
        id.to_string()
    };
    output::finish(output::out(&line))
}

pub async fn queue(
    command: QueueCommand,
    data_dir: Option<&Path>,
    config: Option<&Path>,
) -> ExitCode {
    let service = match open(data_dir, config).await {
        Ok(service) => service,
        Err(code) => return code,
    };
    match command {
        QueueCommand::Add {
            what,
            registry,
            json,
        } => match add(&service, &what, registry.as_deref()).await {
            Ok(queued) => print_id(queued.id, json),
            Err(failure) => report_failure(&failure),
        },
        QueueCommand::List { json } => match service.queue.jobs().await {
            Ok(jobs) => output::finish(jobs.iter().try_for_each(|job| {
                if json {
                    output::out(&job_json(&service, job).to_string())
                } else {
                    output::out(&job_line(job))
                }
            })),
            Err(error) => fail(Outcome::InfrastructureError, &error),
        },
        QueueCommand::Show { id, json } => match service.queue.job(id).await {
            Ok(job) if json => output::finish(output::out(&job_json(&service, &job).to_string())),
            Ok(job) => output::finish(show_job(&service, &job)),
            Err(error) => fail(Outcome::InvalidInput, &error),
        },
        QueueCommand::Rebuild {
            release,
            registry,
            json,
        } => {
            let rebuilt = match service.release(&release, registry.as_deref()).await {
                Ok(id) => service.rebuild(&id).await.map(|queued| (id, queued)),
                Err(failure) => Err(failure),
            };
            match rebuilt {
                Ok((id, queued)) => {
                    if !queued.new {
                        note(&format!(
                            "{} {} ({}) is already queued as job {}",
                            id.krate.name(),
                            id.krate.version(),
                            id.registry,
                            queued.id
                        ));
                    }
                    print_id(queued.id, json)
                }
                Err(failure) => report_failure(&failure),
            }
        }
        QueueCommand::Remove { ids } => {
            let mut code = ExitCode::SUCCESS;
            for id in ids {
                match service.remove_job(id).await {
                    Ok(job) => output::err(&format!(
                        "removed job {id} ({} {} of {}, {})",
                        job.name,
                        job.version,
                        job.registry,
                        status_word(&job)
                    )),
                    Err(failure) => code = report_failure(&failure),
                }
            }
            code
        }
    }
}

/// Queues PATH, NAME or NAME@VERSION. A path is one that exists, or that looks
/// like one (`./x`, `a/b`); anything else names a registry crate.
async fn add(service: &Service, what: &str, registry: Option<&str>) -> Result<Queued, Failure> {
    let path = PathBuf::from(what);
    let looks_like_path = what.contains('/') || what.starts_with('.') || what.is_empty();
    if path.exists() || (looks_like_path && !what.contains('@')) {
        if registry.is_some() {
            return Err(Failure::new(
                Outcome::InvalidInput,
                "--registry goes with NAME or NAME@VERSION, not with a path",
            ));
        }
        let cancel = crate::Shutdown::listen(None).token();
        let queued = service.enqueue_path(&path, None, &cancel).await?;
        if !queued.new {
            note(&format!(
                "this package is already queued as job {}",
                queued.id
            ));
        }
        return Ok(queued);
    }
    let invalid = |message: String| Failure::new(Outcome::InvalidInput, message);
    let (name, version) = match what.split_once('@') {
        Some((name, version)) => (name, Some(version)),
        None => (what, None),
    };
    let name = CrateName::new(name).map_err(|e| {
        invalid(format!(
            "`{what}` is no package directory, NAME or NAME@VERSION: {e}"
        ))
    })?;
    let registry = service.registry(registry.unwrap_or(CRATES_IO))?;
    let (queued, warning) = service.enqueue_crate(&registry, &name, version).await?;
    if let Some(warning) = warning {
        warn(&warning);
    }
    let job = service
        .queue
        .job(queued.id)
        .await
        .map_err(|e| Failure::new(Outcome::InfrastructureError, e))?;
    if version.is_none() {
        note(&format!(
            "queued {name} {}, the newest version in `{registry}`",
            job.version
        ));
    }
    if !queued.new {
        note(&format!(
            "{name} {} ({registry}) is already queued as job {}",
            job.version, queued.id
        ));
    }
    Ok(queued)
}

/// `queued`, `running`, or `done` with the outcome.
fn status_word(job: &Job) -> String {
    match (job.status, &job.outcome) {
        (JobStatus::Queued, _) => "queued".into(),
        (JobStatus::Running, _) => "running".into(),
        (JobStatus::Done, Some(outcome)) => format!("done: {outcome}"),
        (JobStatus::Done, None) => "done".into(),
    }
}

/// The stored build's directory of a job, once it has one.
/// The job's build log in its work directory, when it was built on this machine
/// (the stored log is on the build's page).
fn log_of(service: &Service, job: &Job) -> Option<PathBuf> {
    let id = CrateId::new(&job.registry, &job.name, &job.version).ok()?;
    Some(service.data.work_dir(&id).join("build.log")).filter(|log| log.is_file())
}

/// A job as JSON: its row, and the path of its log.
fn job_json(service: &Service, job: &Job) -> serde_json::Value {
    let mut value = serde_json::to_value(job).unwrap_or_default();
    if let Some(log) = log_of(service, job) {
        value["log"] = serde_json::json!(log);
    }
    value
}

fn job_line(job: &Job) -> String {
    let outcome = job.outcome.map_or("-", |o| o.as_str());
    let status = match job.status {
        JobStatus::Queued => "queued",
        JobStatus::Running => "running",
        JobStatus::Done => "done",
    };
    format!(
        "{:>6}  {:<8} {:<21} {} {}@{}",
        job.id, status, outcome, job.registry, job.name, job.version
    )
}

/// A Unix time as RFC 3339 (UTC).
fn when(seconds: i64) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_secs(seconds.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// `12s`, `3m 4s`.
fn took(seconds: i64) -> String {
    humantime::format_duration(Duration::from_secs(seconds.max(0) as u64)).to_string()
}

fn show_job(service: &Service, job: &Job) -> std::io::Result<()> {
    let paint = crate::color().stdout();
    let registry = if job.registry == LOCAL {
        "a local package".to_string()
    } else {
        format!("registry `{}`", job.registry)
    };
    let status = match (job.status, job.outcome) {
        (JobStatus::Done, Some(outcome)) => {
            let colour = if outcome == Outcome::Success {
                GREEN
            } else {
                RED
            };
            format!("done: {}", paint.style(colour, outcome.as_str()))
        }
        (JobStatus::Done, None) => "done".to_string(),
        (JobStatus::Running, _) => paint.style(YELLOW, "running"),
        (JobStatus::Queued, _) => "queued".to_string(),
    };
    let mut lines = vec![
        paint.style(
            BOLD,
            &format!("job {}: {} {} ({registry})", job.id, job.name, job.version),
        ),
        format!("status:    {status}"),
    ];
    if let Some(message) = &job.message {
        let label = if job.status == JobStatus::Queued {
            "last try:  "
        } else {
            "reason:    "
        };
        lines.push(format!("{label}{}", output::sanitized(message)));
    }
    lines.push(format!("queued:    {}", when(job.created_at)));
    if let Some(started) = job.started_at {
        let attempt = match &job.worker {
            Some(worker) => format!(" (attempt {}, {worker})", job.attempts),
            None => format!(" (attempt {})", job.attempts),
        };
        lines.push(format!("started:   {}{attempt}", when(started)));
    }
    if let Some(finished) = job.finished_at {
        let duration = job
            .started_at
            .map(|started| format!(" (took {})", took(finished - started)))
            .unwrap_or_default();
        lines.push(format!("finished:  {}{duration}", when(finished)));
    }
    if let Some(build) = job.build {
        lines.push(format!("build:     {build}"));
    }
    if let Some(log) = log_of(service, job) {
        lines.push(format!("log:       {}", log.display()));
    }
    // Where the viewer serves them (its address, when the configuration names it).
    if job.outcome == Some(Outcome::Success) {
        let url = service.config.server.url.as_deref().unwrap_or_default();
        lines.push(format!(
            "docs:      {}/{}/{}/",
            url.trim_end_matches('/'),
            job.name,
            job.version
        ));
    }
    lines.iter().try_for_each(|line| output::out(line))
}

pub async fn docs(
    command: DocsCommand,
    data_dir: Option<&Path>,
    config: Option<&Path>,
) -> ExitCode {
    let service = match open(data_dir, config).await {
        Ok(service) => service,
        Err(code) => return code,
    };
    match command {
        DocsCommand::Delete { release, registry } => {
            let deleted = match service.release(&release, registry.as_deref()).await {
                Ok(id) => service.delete_docs(&id).await.map(|deleted| (id, deleted)),
                Err(failure) => Err(failure),
            };
            match deleted {
                Ok((id, deleted)) => {
                    output::err(&format!(
                        "deleted {} of {} {} ({}); `docbuild gc` frees the files no other build shares",
                        plural(deleted.builds.len(), "build"),
                        id.krate.name(),
                        id.krate.version(),
                        id.registry,
                    ));
                    ExitCode::SUCCESS
                }
                Err(failure) => report_failure(&failure),
            }
        }
    }
}

fn plural(count: usize, word: &str) -> String {
    if count == 1 {
        format!("1 {word}")
    } else {
        format!("{count} {word}s")
    }
}

/// Bytes for people: `512 B`, `61.2 MiB`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub async fn gc(args: GcArgs, data_dir: Option<&Path>, config: Option<&Path>) -> ExitCode {
    let service = match open(data_dir, config).await {
        Ok(service) => service,
        Err(code) => return code,
    };
    let options = GcOptions {
        keep_builds: args.keep_builds,
        dry_run: args.dry_run,
        check_cache: Some(CacheDirs::from_env()),
        blob_grace: args.grace,
    };
    let report = match collect_garbage(&service, &options).await {
        Ok(report) => report,
        Err(error) => return fail(Outcome::InfrastructureError, &error),
    };
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let lines = report.collected.iter().map(|item| {
        format!(
            "{verb} {} {} ({})",
            item.kind.describe(),
            item.path.display(),
            size(item.bytes)
        )
    });
    let kept = report
        .kept
        .iter()
        .map(|(path, why)| format!("kept {}: {why}", path.display()));
    let mut counts: Vec<String> = Vec::new();
    for kind in [
        Kind::WorkDir,
        Kind::Build,
        Kind::JobPackage,
        Kind::Layer,
        Kind::Blob,
    ] {
        let count = report.collected.iter().filter(|c| c.kind == kind).count();
        if count > 0 {
            counts.push(kind.count(count));
        }
    }
    let total = if counts.is_empty() {
        "gc: nothing to remove".to_string()
    } else {
        format!("gc: {verb} {}: {}", counts.join(", "), size(report.bytes()))
    };
    let cache = report.build_cache.map(|(usage, budget)| {
        let layers = match usage.layers {
            1 => "1 layer".to_string(),
            n => format!("{n} layers"),
        };
        if budget == 0 {
            format!(
                "build cache: {layers}, {} (reuse is off)",
                size(usage.bytes)
            )
        } else {
            format!(
                "build cache: {layers}, {} of {}",
                size(usage.bytes),
                size(budget)
            )
        }
    });
    output::finish(
        lines
            .chain(kept)
            .chain(cache)
            .chain(std::iter::once(total))
            .try_for_each(|line| output::out(&line)),
    )
}

/// Each job's start and end, on stderr: what a worker's operator watches.
fn job_events() -> EventSink {
    let paint = crate::color().stderr();
    EventSink::new(move |event| {
        let name = |job: &Job| {
            let registry = if job.registry == LOCAL {
                String::new()
            } else {
                format!(" ({})", job.registry)
            };
            format!("{} {}{registry}", job.name, job.version)
        };
        let line = match event {
            WorkerEvent::Started { job, worker } => format!(
                "job {}: building {}, attempt {} [{worker}]",
                job.id,
                name(job),
                job.attempts
            ),
            WorkerEvent::Finished {
                job,
                outcome,
                message,
                duration,
                log,
                retried,
            } => {
                let mut line = format!(
                    "job {}: {}: {} in {:.1}s",
                    job.id,
                    paint.outcome(*outcome),
                    name(job),
                    duration.as_secs_f64()
                );
                if *outcome != Outcome::Success {
                    line.push_str(&format!(": {}", output::sanitized(message)));
                }
                if *retried {
                    line.push_str(" (queued again for a later attempt)");
                }
                if let Some(log) = log {
                    line.push_str(&format!(" (log: {})", log.display()));
                }
                line
            }
            WorkerEvent::Released { job } => format!(
                "job {}: {} stopped; queued again for the next worker",
                job.id,
                name(job)
            ),
            WorkerEvent::LeaseLost { job } => format!(
                "job {}: another worker holds {} now; this build is dropped",
                job.id,
                name(job)
            ),
            WorkerEvent::Failed { job, error } => format!(
                "job {}: {}: {}",
                job.id,
                paint.style(RED, "cannot store the build"),
                error
            ),
        };
        output::err(&format!("docbuild: {line}"));
    })
}

/// Run in a container (the deployment image), docbuild hands the host's engine paths
/// to bind: its data directory and toolchain must be the host's, at the same paths.
async fn check_paths_shared_with_host(
    service: &Service,
    toolchain: Option<&str>,
) -> Result<(), ExitCode> {
    let Ok(sandbox) = docbuild_sandbox::Sandbox::connect().await else {
        // Without an engine the builds say so themselves.
        return Ok(());
    };
    let toolchain = docbuild_builder::Toolchain::resolve(toolchain)
        .await
        .map_err(|e| fail(Outcome::InvalidInput, &e))?;
    let root = std::fs::canonicalize(service.data.root())
        .unwrap_or_else(|_| service.data.root().to_path_buf());
    sandbox
        .check_paths_shared_with_host(&[&root, &toolchain.sysroot])
        .await
        .map_err(|e| fail(Outcome::InfrastructureError, &e))
}

pub async fn worker(args: WorkerArgs, data_dir: Option<&Path>, config: Option<&Path>) -> ExitCode {
    let service = match open(data_dir, config).await {
        Ok(service) => Arc::new(service),
        Err(code) => return code,
    };
    if let Err(code) = check_paths_shared_with_host(&service, args.build.toolchain.as_deref()).await
    {
        return code;
    }
    let options = WorkerOptions {
        jobs: usize::from(args.jobs),
        once: args.once,
        lease: args.lease.max(Duration::from_secs(3)),
        retry_base: args.retry_delay,
        limits: args.build.limits(),
        image: match args.build.image(&service.config.image) {
            Ok(image) => image,
            Err(failure) => return report_failure(&failure),
        },
        toolchain: args.build.toolchain.clone(),
        events: job_events(),
        ..WorkerOptions::default()
    };
    let shutdown = crate::Shutdown::listen(Some(STOPPING));
    let built = run_workers(service, options, shutdown.token()).await;
    tracing::info!(built, "workers stopped");
    stopped(&shutdown)
}

const STOPPING: &str = "stopping: running builds end and their jobs go back to the queue (signal again to quit at once)";

/// A service's exit code once it stopped: 130 after Ctrl-C (SIGINT), as for any
/// interrupted command; 0 after SIGTERM, the usual way to stop a service, which it
/// then did cleanly (its interrupted jobs are queued again, nothing is lost).
fn stopped(shutdown: &crate::Shutdown) -> ExitCode {
    match shutdown.signal() {
        Some(crate::StopSignal::Interrupt) => ExitCode::from(130),
        Some(crate::StopSignal::Terminate) | None => ExitCode::SUCCESS,
    }
}

#[derive(Args)]
pub struct WatchArgs {
    /// The registry, as cargo or docbuild.toml names it.
    #[arg(long, value_name = "NAME")]
    registry: String,
    /// Also follow these crates of a sparse registry (the crates ever queued from it
    /// are always followed).
    #[arg(long = "crate", value_name = "NAME")]
    crates: Vec<String>,
    /// Time between passes.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = crate::parse_duration)]
    interval: Duration,
    /// One pass, then exit.
    #[arg(long)]
    once: bool,
}

pub async fn watch(args: WatchArgs, data_dir: Option<&Path>, config: Option<&Path>) -> ExitCode {
    let service = match open(data_dir, config).await {
        Ok(service) => Arc::new(service),
        Err(code) => return code,
    };
    let registry = match watched_registry(&service, &args.registry) {
        Ok(registry) => registry,
        Err(failure) => return report_failure(&failure),
    };
    for name in &args.crates {
        if let Err(error) = crate_name(name) {
            return fail(Outcome::InvalidInput, &error);
        }
    }
    let git_dir = service
        .data
        .root()
        .join("watch")
        .join(format!("{}.git", registry.name));
    let shutdown = crate::Shutdown::listen(None);
    let cancel = shutdown.token();
    loop {
        let pass = watch_once(&service.queue, &registry, &args.crates, &git_dir, &cancel).await;
        match pass {
            Ok(queued) => {
                for version in queued {
                    // A reader that went away does not stop the watch.
                    let _ = output::out(&format!("queued {version}"));
                }
            }
            Err(WatchError::Cancelled) => return stopped(&shutdown),
            Err(error) if args.once => return fail(Outcome::InfrastructureError, &error),
            Err(error) => tracing::warn!(%error, "watch pass failed; trying again later"),
        }
        if args.once {
            return ExitCode::SUCCESS;
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = cancel.cancelled() => return stopped(&shutdown),
        }
    }
}

fn watched_registry(service: &Service, name: &str) -> Result<WatchedRegistry, Failure> {
    if !valid_registry_name(name) {
        return Err(Failure::new(
            Outcome::InvalidInput,
            format!("invalid registry name `{name}`: letters, digits, `-` and `_` only"),
        ));
    }
    if let Some(registry) = service.config.registries.get(name) {
        return Ok(WatchedRegistry {
            name: name.to_string(),
            index: registry.index.clone(),
            token: registry.token.clone(),
        });
    }
    if let Some(registry) = service.config.registries().get(name) {
        return Ok(WatchedRegistry {
            name: name.to_string(),
            index: registry.index.clone(),
            token: registry.token().map(str::to_string),
        });
    }
    // crates.io is cargo's default registry: known without being defined.
    (name == CRATES_IO)
        .then(|| WatchedRegistry {
            name: name.to_string(),
            index: CRATES_IO_INDEX.to_string(),
            token: None,
        })
        .ok_or_else(|| {
            Failure::new(
                Outcome::InvalidInput,
                format!(
                    "unknown registry `{name}`: name its index under [registries] in docbuild.toml or in cargo's configuration"
                ),
            )
        })
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    listen: std::net::SocketAddr,
    /// Also run workers in this process, so that one command gives a whole service.
    #[arg(long)]
    with_worker: bool,
    /// With --with-worker: builds at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    #[command(flatten)]
    build: BuildArgs,
}

pub async fn serve(args: ServeArgs, data_dir: Option<&Path>, config: Option<&Path>) -> ExitCode {
    let data = DataDir::resolve(data_dir);
    let config = match Config::load(config, &data) {
        Ok(config) => config,
        Err(error) => return fail(Outcome::InvalidInput, &error),
    };
    let service = match Service::open(data, config).await {
        Ok(service) => Arc::new(service),
        Err(error) => return fail(Outcome::InfrastructureError, &error),
    };
    let state = match docbuild_server::AppState::new(
        service.store.clone(),
        service.data.clone(),
        service.config.clone(),
        args.listen,
    ) {
        Ok(state) => state,
        Err(error) => return fail(Outcome::InfrastructureError, &error),
    };
    let shutdown = crate::Shutdown::listen(args.with_worker.then_some(STOPPING));
    let cancel = shutdown.token();
    let mut workers = None;
    if args.with_worker {
        if let Err(code) =
            check_paths_shared_with_host(&service, args.build.toolchain.as_deref()).await
        {
            return code;
        }
        let image = match args.build.image(&service.config.image) {
            Ok(image) => image,
            Err(failure) => return report_failure(&failure),
        };
        let options = WorkerOptions {
            jobs: usize::from(args.jobs),
            limits: args.build.limits(),
            image,
            toolchain: args.build.toolchain.clone(),
            events: job_events(),
            ..WorkerOptions::default()
        };
        workers = Some(tokio::spawn(run_workers(service, options, cancel.clone())));
    }
    output::err(&format!("docbuild: serving on http://{}", args.listen));
    let served = tokio::select! {
        served = docbuild_server::serve(state, args.listen) => Some(served),
        _ = cancel.cancelled() => None,
    };
    // Whatever ended serving, the workers stop too; their running builds end (and
    // their containers are removed) before the process does.
    cancel.cancel();
    if let Some(workers) = workers
        && let Err(error) = workers.await
    {
        tracing::error!(%error, "the workers stopped unexpectedly");
    }
    match served {
        Some(Ok(())) => ExitCode::SUCCESS,
        Some(Err(error)) => fail(Outcome::InfrastructureError, &error),
        None => stopped(&shutdown),
    }
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Make a token; prints it alone (it is not shown again).
    Create {
        /// What the token allows: read reads, publish also queues builds, admin
        /// also rebuilds and deletes.
        #[arg(long, value_parser = ["read", "publish", "admin"])]
        scope: String,
        /// Print {"id", "token", "scope"} instead of the token alone.
        #[arg(long)]
        json: bool,
    },
    /// List tokens in force (ids and scopes, never the secrets).
    List {
        /// Print one JSON object per token.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token.
    Revoke {
        /// The token's id, as `token list` prints it.
        id: i64,
    },
}

pub async fn token(
    command: TokenCommand,
    data_dir: Option<&Path>,
    config: Option<&Path>,
) -> ExitCode {
    let tokens = match open(data_dir, config).await {
        Ok(service) => service.store.tokens(),
        Err(code) => return code,
    };
    match command {
        TokenCommand::Create { scope, json } => {
            let Ok(scope) = scope.parse::<Scope>() else {
                return fail(Outcome::InvalidInput, &"unknown scope");
            };
            match tokens.create(scope).await {
                Ok(new) if json => output::finish(output::out(&serde_json::json!(new).to_string())),
                Ok(new) => output::finish(output::out(&new.token)),
                Err(error) => fail(Outcome::InfrastructureError, &error),
            }
        }
        TokenCommand::List { json } => match tokens.list().await {
            Ok(list) => output::finish(list.iter().try_for_each(|token| {
                if json {
                    output::out(&serde_json::json!(token).to_string())
                } else {
                    output::out(&format!("{:>4}  {:?}", token.id, token.scope))
                }
            })),
            Err(error) => fail(Outcome::InfrastructureError, &error),
        },
        TokenCommand::Revoke { id } => match tokens.revoke(id).await {
            Ok(_) => {
                // Tokens stay in force once made: the last one gone, nobody reads.
                if let Ok(false) = tokens.any().await {
                    note(
                        &"no token is in force: the viewer stays closed until a token is \
                          made, or `[server] public = true` lets anyone read",
                    );
                }
                ExitCode::SUCCESS
            }
            Err(error) => fail(Outcome::InvalidInput, &error),
        },
    }
}
