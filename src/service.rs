//! `docbuild queue` and `docbuild worker`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use docbuild_builder::config::{CRATES_IO, Config, DataDir};
use docbuild_builder::identity::{CrateVersion, RegistryName};
use docbuild_builder::queue::Job;
use docbuild_builder::watch::{
    WatchError, WatchedRegistry, crate_name, valid_registry_name, watch_once,
};
use docbuild_builder::worker::{Service, WorkerOptions, run_workers};
use docbuild_builder::{Failure, Outcome};
use docbuild_server::tokens::{Scope, Tokens};

use crate::BuildArgs;

#[derive(Subcommand)]
pub enum QueueCommand {
    /// Queue a build of a local package (packaged now) or of NAME@VERSION from a
    /// registry; prints the job id.
    Add {
        /// A package directory, or NAME@VERSION.
        what: String,
        /// The registry of NAME@VERSION, as cargo names it [default: crates-io].
        #[arg(long, value_name = "NAME")]
        registry: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List the jobs, newest first.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one job.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct WorkerArgs {
    /// Builds to run at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// Build what is queued, then exit.
    #[arg(long)]
    once: bool,
    /// How long a claimed job stays this worker's without renewal; a job whose worker
    /// died is claimed again after it.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    lease: std::time::Duration,
    /// First delay before retrying after an infrastructure error; it doubles each time.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    retry_delay: std::time::Duration,
    #[command(flatten)]
    build: BuildArgs,
}

fn open(data_dir: Option<&Path>, config: Option<&Path>) -> Result<Service, ExitCode> {
    let data = DataDir::resolve(data_dir);
    let config = Config::load(config, &data).map_err(|e| fail(Outcome::InvalidInput, &e))?;
    Service::open(data, config).map_err(|e| fail(Outcome::InfrastructureError, &e))
}

fn fail(outcome: Outcome, error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(outcome.exit_code() as u8)
}

fn report_failure(failure: &Failure) -> ExitCode {
    fail(failure.outcome, &failure.message)
}

pub async fn queue(
    command: QueueCommand,
    data_dir: Option<&Path>,
    config: Option<&Path>,
) -> ExitCode {
    let service = match open(data_dir, config) {
        Ok(service) => service,
        Err(code) => return code,
    };
    match command {
        QueueCommand::Add {
            what,
            registry,
            json,
        } => {
            let added = add(&service, &what, registry.as_deref()).await;
            match added {
                Ok(id) if json => println!("{}", serde_json::json!({ "id": id })),
                Ok(id) => println!("{id}"),
                Err(failure) => return report_failure(&failure),
            }
        }
        QueueCommand::List { json } => match service.queue.jobs() {
            Ok(jobs) => {
                for job in jobs {
                    print_job(&job, json);
                }
            }
            Err(error) => return fail(Outcome::InfrastructureError, &error),
        },
        QueueCommand::Show { id, json } => match service.queue.job(id) {
            Ok(job) => print_job(&job, json),
            Err(error) => return fail(Outcome::InvalidInput, &error),
        },
    }
    ExitCode::SUCCESS
}

async fn add(service: &Service, what: &str, registry: Option<&str>) -> Result<i64, Failure> {
    let path = PathBuf::from(what);
    if path.exists() || !what.contains('@') {
        if registry.is_some() {
            return Err(Failure::new(
                Outcome::InvalidInput,
                "--registry goes with NAME@VERSION, not with a path",
            ));
        }
        let cancel = crate::Shutdown::listen(None).token();
        return service.enqueue_path(&path, None, &cancel).await;
    }
    let invalid = |message: String| Failure::new(Outcome::InvalidInput, message);
    let krate: CrateVersion = what
        .parse()
        .map_err(|e: docbuild_builder::registry::CrateVersionError| invalid(e.to_string()))?;
    let registry = registry.unwrap_or(CRATES_IO);
    let known = registry == CRATES_IO || service.config.registries().get(registry).is_some();
    let registry = RegistryName::new(registry).map_err(|e| invalid(e.to_string()))?;
    if !known {
        return Err(invalid(format!(
            "unknown registry `{registry}`: name it under [registries] in docbuild.toml or in cargo's configuration"
        )));
    }
    service.enqueue_registry(&registry, &krate)
}

fn print_job(job: &Job, json: bool) {
    if json {
        if let Ok(line) = serde_json::to_string(job) {
            println!("{line}");
        }
        return;
    }
    let outcome = job.outcome.as_deref().unwrap_or("-");
    let status = serde_json::to_value(job.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    println!(
        "{:>6}  {:<8} {:<21} {} {}@{}",
        job.id, status, outcome, job.registry, job.name, job.version
    );
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
    let service = match open(data_dir, config) {
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
        lease: args.lease.max(std::time::Duration::from_secs(3)),
        retry_base: args.retry_delay,
        limits: args.build.limits(),
        image: match args.build.image(&service.config.image) {
            Ok(image) => image,
            Err(failure) => return report_failure(&failure),
        },
        toolchain: args.build.toolchain.clone(),
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
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    interval: std::time::Duration,
    /// One pass, then exit.
    #[arg(long)]
    once: bool,
}

pub async fn watch(args: WatchArgs, data_dir: Option<&Path>, config: Option<&Path>) -> ExitCode {
    let service = match open(data_dir, config) {
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
                    println!("queued {version}");
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
    service
        .config
        .registries()
        .get(name)
        .map(|registry| WatchedRegistry {
            name: name.to_string(),
            index: registry.index.clone(),
            token: registry.token().map(str::to_string),
        })
        .ok_or_else(|| {
            Failure::new(
                Outcome::InvalidInput,
                format!(
                    "unknown registry `{name}`: name its index under [registries] in docbuild.toml"
                ),
            )
        })
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
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
    let state = match docbuild_server::AppState::new(data.clone(), config.clone(), args.listen) {
        Ok(state) => state,
        Err(error) => return fail(Outcome::InfrastructureError, &error),
    };
    let shutdown = crate::Shutdown::listen(args.with_worker.then_some(STOPPING));
    let cancel = shutdown.token();
    let mut workers = None;
    if args.with_worker {
        let service = match Service::open(data, config) {
            Ok(service) => Arc::new(service),
            Err(error) => return fail(Outcome::InfrastructureError, &error),
        };
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
            ..WorkerOptions::default()
        };
        workers = Some(tokio::spawn(run_workers(service, options, cancel.clone())));
    }
    eprintln!("docbuild: serving on http://{}", args.listen);
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
        #[arg(long, value_parser = ["read", "publish", "admin"])]
        scope: String,
        #[arg(long)]
        json: bool,
    },
    /// List tokens in force (ids and scopes, never the secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token.
    Revoke { id: i64 },
}

pub fn token(command: TokenCommand, data_dir: Option<&Path>) -> ExitCode {
    let data = DataDir::resolve(data_dir);
    let tokens = match Tokens::open(&data.database()) {
        Ok(tokens) => tokens,
        Err(error) => return fail(Outcome::InfrastructureError, &error),
    };
    match command {
        TokenCommand::Create { scope, json } => {
            let Ok(scope) = scope.parse::<Scope>() else {
                return fail(Outcome::InvalidInput, &"unknown scope");
            };
            match tokens.create(scope) {
                Ok(new) if json => println!("{}", serde_json::json!(new)),
                Ok(new) => println!("{}", new.token),
                Err(error) => return fail(Outcome::InfrastructureError, &error),
            }
        }
        TokenCommand::List { json } => match tokens.list() {
            Ok(list) => {
                for token in list {
                    if json {
                        println!("{}", serde_json::json!(token));
                    } else {
                        println!("{:>4}  {:?}", token.id, token.scope);
                    }
                }
            }
            Err(error) => return fail(Outcome::InfrastructureError, &error),
        },
        TokenCommand::Revoke { id } => {
            if let Err(error) = tokens.revoke(id) {
                return fail(Outcome::InvalidInput, &error);
            }
        }
    }
    ExitCode::SUCCESS
}
