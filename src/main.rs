//! The `docbuild` command line: argument parsing and output only; the work is done
//! by the `docbuild-builder` and `docbuild-sandbox` libraries.

mod display;
mod image;
mod service;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use docbuild_builder::config::{Config, DataDir, ImageConfig};
use docbuild_builder::environment::resolve_image;
use docbuild_builder::host_cargo::Registries;
use docbuild_builder::workspace::{Selection, check_workspace};
use docbuild_builder::{CacheDirs, CheckOptions, CrateReport, Failure, Outcome, SourceMode};
use docbuild_sandbox::{SandboxImage, SandboxLimits, parse_size};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "docbuild",
    version,
    about = "Build Rust documentation exactly as docs.rs does, in a sandbox"
)]
struct Cli {
    /// Where the queue and stored builds live [default: $DOCBUILD_DATA_DIR, else
    /// ~/.local/share/docbuild].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file [default: docbuild.toml in the data directory].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build a package's docs as docs.rs would and answer by exit code:
    /// 0 success, 1 build failed, 2 invalid input, 3 out of memory or timed out,
    /// 4 infrastructure error.
    Check(CheckArgs),
    /// Queue builds and look at the queue.
    #[command(subcommand)]
    Queue(service::QueueCommand),
    /// Build queued jobs.
    Worker(service::WorkerArgs),
    /// Follow a registry's index and queue its new versions.
    Watch(service::WatchArgs),
    /// Serve the docs, build pages and API.
    Serve(service::ServeArgs),
    /// Make sandbox images: docs.rs's build environment from Debian's packages.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Manage access tokens.
    #[command(subcommand)]
    Token(service::TokenCommand),
}

/// Limits and environment of sandboxed builds.
#[derive(Args, Clone)]
struct BuildArgs {
    /// Memory limit of the build, swap included (e.g. 512M, 6G); docs.rs gives 6 GiB.
    #[arg(long, value_name = "SIZE", default_value = "6G", value_parser = parse_memory)]
    memory: u64,
    /// Time limit of each target's build (e.g. 20s, 15m).
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Disk the build may write, in its target directory (e.g. 500M, 10G); passing
    /// it ends the build as out-of-disk.
    #[arg(long, value_name = "SIZE", default_value = "10G", value_parser = parse_disk)]
    disk: u64,
    /// CPUs the build may use [default: all].
    #[arg(long, value_name = "N", value_parser = parse_cpus)]
    cpus: Option<f64>,
    /// Build in this image (present in the engine) instead of the default one.
    #[arg(long, value_name = "IMAGE")]
    image: Option<String>,
    /// Toolchain to build with [default: nightly if installed, else the default one].
    #[arg(long, value_name = "NAME")]
    toolchain: Option<String>,
}

impl BuildArgs {
    fn limits(&self) -> SandboxLimits {
        let defaults = SandboxLimits::default();
        SandboxLimits {
            memory_bytes: self.memory,
            disk_bytes: self.disk,
            timeout: self.timeout,
            cpus: self.cpus.unwrap_or(defaults.cpus),
            ..defaults
        }
    }

    /// `--image`, else `[image] default`, else the light default; `docsrs` is docs.rs's
    /// environment as `docbuild image build` makes it.
    fn image(&self, config: &ImageConfig) -> Result<SandboxImage, Failure> {
        resolve_image(self.image.as_deref(), config)
            .map_err(|e| Failure::new(Outcome::InvalidInput, e))
    }
}

#[derive(Args)]
struct CheckArgs {
    /// A package directory or a workspace root.
    #[arg(default_value = ".")]
    path: PathBuf,
    /// Check every publishable member of the workspace.
    #[arg(long, conflicts_with = "package")]
    workspace: bool,
    /// Check these workspace members.
    #[arg(short = 'p', long = "package", value_name = "NAME")]
    package: Vec<String>,
    /// With --workspace: members of a stage built at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    jobs: u16,
    /// Build for these targets instead of the metadata's (the first is the default).
    #[arg(long = "target", value_name = "TRIPLE")]
    targets: Vec<String>,
    /// One JSON object per checked crate on stdout, and nothing else.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    build: BuildArgs,
    /// Build the directory as it is, not what `cargo package` would publish.
    #[arg(long)]
    no_package: bool,
    /// Copy the docs into this directory.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Open the docs in a browser after a successful build.
    #[arg(long)]
    open: bool,
    /// Print the commands the build ran (host-side cargo, then the sandbox's `docker
    /// run`) so that it can be replayed by hand; `--json` always has them in
    /// `commands`.
    #[arg(long)]
    explain: bool,
}

fn parse_memory(text: &str) -> Result<u64, String> {
    parse_size(text).map_err(|e| e.to_string())
}

fn parse_disk(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text).map_err(|e| e.to_string())?;
    let min = docbuild_builder::disk::DiskBudget::MIN.0;
    if bytes < min {
        return Err(format!(
            "a disk budget below {} MiB is too small",
            min >> 20
        ));
    }
    Ok(bytes)
}

fn parse_cpus(text: &str) -> Result<f64, String> {
    let available = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    match text.parse::<f64>() {
        Ok(cpus) if cpus > available => Err(format!(
            "{text} CPUs asked for, but this machine has {available}"
        )),
        Ok(cpus) if cpus > 0.0 => Ok(cpus),
        _ => Err(format!(
            "invalid CPU count `{text}`: expected a positive number"
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(Outcome::InfrastructureError.exit_code() as u8);
        }
    };
    match cli.command {
        Command::Check(args) => {
            runtime.block_on(check(args, cli.data_dir.as_deref(), cli.config.as_deref()))
        }
        Command::Image(command) => runtime.block_on(image::image(
            command,
            cli.data_dir.as_deref(),
            cli.config.as_deref(),
        )),
        Command::Queue(command) => runtime.block_on(service::queue(
            command,
            cli.data_dir.as_deref(),
            cli.config.as_deref(),
        )),
        Command::Serve(args) => runtime.block_on(service::serve(
            args,
            cli.data_dir.as_deref(),
            cli.config.as_deref(),
        )),
        Command::Token(command) => service::token(command, cli.data_dir.as_deref()),
        Command::Watch(args) => runtime.block_on(service::watch(
            args,
            cli.data_dir.as_deref(),
            cli.config.as_deref(),
        )),
        Command::Worker(args) => runtime.block_on(service::worker(
            args,
            cli.data_dir.as_deref(),
            cli.config.as_deref(),
        )),
    }
}

/// The signal that asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopSignal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (`kill`, `docker stop`, systemd, Kubernetes).
    Terminate,
}

impl StopSignal {
    /// 128 + the signal's number, as shells report a command the signal ended.
    fn exit_code(self) -> u8 {
        match self {
            StopSignal::Interrupt => 130,
            StopSignal::Terminate => 143,
        }
    }
}

/// Stopping on SIGINT or SIGTERM: the first one cancels the token, so builds stop and
/// remove their containers and the command winds down; a second one ends the process
/// at once (with 128 + its number).
///
/// Signals are received on a thread of their own, so that a runtime whose threads are
/// all busy cannot delay them, and the handlers are in place before this returns.
#[derive(Clone)]
struct Shutdown {
    cancel: CancellationToken,
    signal: Arc<OnceLock<StopSignal>>,
}

impl Shutdown {
    /// Starts listening. `notice` is printed when the first signal arrives.
    fn listen(notice: Option<&'static str>) -> Self {
        let shutdown = Shutdown {
            cancel: CancellationToken::new(),
            signal: Arc::default(),
        };
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for signals");
                return shutdown;
            }
        };
        let streams = {
            let _entered = runtime.enter();
            signal(SignalKind::interrupt()).and_then(|interrupt| {
                signal(SignalKind::terminate()).map(|terminate| (interrupt, terminate))
            })
        };
        let (mut interrupt, mut terminate) = match streams {
            Ok(streams) => streams,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for signals");
                // Dropping a runtime may block, which an async caller must not.
                runtime.shutdown_background();
                return shutdown;
            }
        };
        let listener = shutdown.clone();
        let spawned = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let first = tokio::select! {
                        _ = interrupt.recv() => StopSignal::Interrupt,
                        _ = terminate.recv() => StopSignal::Terminate,
                    };
                    let _ = listener.signal.set(first);
                    listener.cancel.cancel();
                    if let Some(notice) = notice {
                        eprintln!("docbuild: {notice}");
                    }
                    let second = tokio::select! {
                        _ = interrupt.recv() => StopSignal::Interrupt,
                        _ = terminate.recv() => StopSignal::Terminate,
                    };
                    eprintln!("docbuild: stopped at once; a build's container may be left behind");
                    std::process::exit(i32::from(second.exit_code()));
                })
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot listen for signals");
        }
        shutdown
    }

    /// Cancelled by the first signal.
    fn token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// The first signal received, if any.
    fn signal(&self) -> Option<StopSignal> {
        self.signal.get().copied()
    }
}

fn print_reports(reports: &[CrateReport], json: bool) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    for report in reports {
        if json {
            serde_json::to_writer(&mut stdout, report)?;
            writeln!(stdout)?;
        } else {
            writeln!(stdout, "{}", display::summary_line(report))?;
        }
    }
    stdout.flush()
}

async fn check(args: CheckArgs, data_dir: Option<&Path>, config: Option<&Path>) -> ExitCode {
    let shutdown = Shutdown::listen(None);
    let cancel = shutdown.token();
    let data = DataDir::resolve(data_dir);
    let image = match Config::load(config, &data)
        .map_err(|e| Failure::new(Outcome::InvalidInput, e))
        .and_then(|config| args.build.image(&config.image))
    {
        Ok(image) => image,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            return ExitCode::from(failure.outcome.exit_code() as u8);
        }
    };

    let options = CheckOptions {
        path: args.path.clone(),
        mode: if args.no_package {
            SourceMode::AsIs
        } else {
            SourceMode::Package
        },
        limits: args.build.limits(),
        image,
        toolchain: args.build.toolchain.clone(),
        targets: args.targets.clone(),
        out: args.out.clone(),
        work_dir: None,
        registries: Registries::user(&[]),
        project_registries: true,
        extern_map: Vec::new(),
        packaged: None,
        dependencies: Vec::new(),
        workspace_members: Vec::new(),
    };
    let display = display::Display::new(args.json);
    let cache = CacheDirs::from_env();
    let reports = if args.workspace || !args.package.is_empty() {
        let selection = if args.workspace {
            Selection::All
        } else {
            Selection::Packages(args.package.clone())
        };
        let checked = if args.no_package {
            Err(Failure::new(
                Outcome::InvalidInput,
                "--no-package does not go with --workspace or -p: members are built from their packages",
            ))
        } else {
            check_workspace(
                &options,
                &selection,
                usize::from(args.jobs),
                &cache,
                &display,
                &cancel,
            )
            .await
            .map_err(Failure::from)
        };
        display.finish();
        match checked {
            Ok(workspace) => {
                for skipped in &workspace.skipped {
                    display::skipped(&skipped.name, &skipped.reason, args.json);
                }
                workspace.reports
            }
            Err(failure) => vec![CrateReport::from(failure)],
        }
    } else {
        let report = docbuild_builder::check(&options, &cache, &display, &cancel).await;
        display.finish();
        vec![report]
    };

    if let Err(error) = print_reports(&reports, args.json) {
        // A closed pipe (`| head`) is the reader's choice, not a failure to report.
        if error.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: cannot write the results: {error}");
        }
    }
    if args.explain {
        for report in &reports {
            let name = report.name.as_deref().unwrap_or("?");
            for command in &report.commands {
                eprintln!("{name}: {command}");
            }
        }
    }
    if args.open
        && let Some(docs) = reports.first().and_then(CrateReport::docs)
    {
        display::open_in_browser(docs);
    }
    if let Some(signal) = shutdown.signal() {
        return ExitCode::from(signal.exit_code());
    }
    let worst = reports
        .iter()
        .map(|r| r.outcome)
        .max()
        .unwrap_or(Outcome::Success);
    ExitCode::from(worst.exit_code() as u8)
}
