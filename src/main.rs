//! The `docbuild` command line: argument parsing and output only; the work is done
//! by the `docbuild-builder` and `docbuild-sandbox` libraries.

mod display;
mod image;
mod output;
mod service;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use docbuild_builder::api_check::{ApiOptions, compare};
use docbuild_builder::config::{CRATES_IO, Config, DataDir, ImageConfig};
use docbuild_builder::environment::resolve_image;
use docbuild_builder::host_cargo::Registries;
use docbuild_builder::kept_mount::KeepMounted;
use docbuild_builder::metadata::is_target_triple;
use docbuild_builder::workspace::{Selection, check_workspace};
use docbuild_builder::{
    CacheDirs, CheckOptions, CrateName, CrateReport, Failure, Outcome, RegistryName, SourceMode,
    Toolchain,
};
use docbuild_sandbox::{SandboxImage, SandboxLimits, parse_size};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::display::{Display, Paths, Verbosity};
use crate::output::ColorChoice;

/// The environment variables docbuild reads, for `--help`.
const ENVIRONMENT: &str = "\
Environment:
  DOCBUILD_DATA_DIR   The data directory: queue, stored builds [default: ~/.local/share/docbuild]
  DOCBUILD_CACHE_DIR  check's cache: docbuild's cargo home, and per package a kept target
                      directory, its prepared sources and build.log [default: ~/.cache/docbuild]
  CARGO_HOME          Your cargo home: its config.toml and credentials.toml name registries
                      and their tokens [default: ~/.cargo]
  CARGO_TERM_COLOR    When to colour the output, as for cargo (--color wins)
  NO_COLOR            No colours on a terminal
  BROWSER             The browser `check --open` starts
  RUST_LOG            What docbuild logs on stderr (e.g. debug) [default: warn]
  DOCBUILD_NO_API     `check` does not compare the public API with the published one (as --no-api)
  DOCBUILD_KEEP_MOUNTED
                      How long check's target directory stays mounted once idle, for the
                      next check of the package (e.g. 90s; 0: unmounted as the check ends)
                      [default: 5m]";

#[derive(Parser)]
#[command(
    name = "docbuild",
    version,
    about = "Build Rust documentation exactly as docs.rs does, in a sandbox",
    after_help = ENVIRONMENT
)]
struct Cli {
    /// Where the queue and stored builds live [default: $DOCBUILD_DATA_DIR, else
    /// ~/.local/share/docbuild].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file [default: docbuild.toml in the data directory].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// When to colour the output [default: $CARGO_TERM_COLOR, else auto].
    #[arg(long, global = true, value_name = "WHEN")]
    color: Option<ColorChoice>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build a package's docs as docs.rs would and answer by exit code:
    /// 0 success, 1 build failed, 2 invalid input, 3 out of memory, time or disk,
    /// 4 infrastructure error, 130 interrupted.
    #[command(after_help = ENVIRONMENT)]
    Check(Box<CheckArgs>),
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
    /// Manage stored docs.
    #[command(subcommand)]
    Docs(service::DocsCommand),
    /// Give disk space back: unused work directories, old builds beyond a kept
    /// number, packages no rebuild needs, unused static files.
    Gc(service::GcArgs),
    /// Print the completion script for a shell (e.g. `docbuild completions bash >
    /// /etc/bash_completion.d/docbuild`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print docbuild's man page (roff), or write one page per command into a
    /// directory (`--out`).
    Man {
        /// Write docbuild.1, docbuild-check.1, … into this directory.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Unmounts a check's target directory once it has been idle (started, detached,
    /// by `check`).
    #[command(name = docbuild_builder::kept_mount::RELEASE_COMMAND, hide = true)]
    ReleaseTarget {
        /// The check that kept it mounted.
        #[arg(long)]
        token: String,
        /// Idle time before unmounting.
        #[arg(long)]
        idle_secs: u64,
        /// The check's work directory.
        work_dir: PathBuf,
    },
}

/// The colours chosen for this run (`--color`, else `CARGO_TERM_COLOR`).
static COLOR: OnceLock<ColorChoice> = OnceLock::new();

pub fn color() -> ColorChoice {
    *COLOR.get_or_init(|| ColorChoice::resolve(None))
}

/// Limits and environment of sandboxed builds.
#[derive(Args, Clone)]
struct BuildArgs {
    /// Memory limit of the build, swap included (e.g. 512M, 6G; at least 64M); docs.rs
    /// gives 6 GiB.
    #[arg(long, value_name = "SIZE", default_value = "6G", value_parser = parse_memory)]
    memory: u64,
    /// Time limit of each target's build (e.g. 20s, 15m).
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_timeout)]
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
    /// A package directory (or any directory inside it, as cargo finds it), its
    /// Cargo.toml, or a workspace root [default: .].
    #[arg(value_name = "PATH", conflicts_with = "manifest_path")]
    path: Option<PathBuf>,
    /// Path to the Cargo.toml of the package or workspace, as for cargo.
    #[arg(long, value_name = "PATH", value_parser = parse_manifest_path)]
    manifest_path: Option<PathBuf>,
    /// Check every publishable member of the workspace.
    #[arg(long, conflicts_with = "package")]
    workspace: bool,
    /// Check these workspace members.
    #[arg(short = 'p', long = "package", value_name = "NAME", value_parser = parse_crate_name)]
    package: Vec<String>,
    /// With --workspace or -p: members of a stage built at once.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    jobs: u16,
    /// Build for these targets instead of the metadata's (the first is the default);
    /// each must be one `rustc --print target-list` knows.
    #[arg(long = "target", value_name = "TRIPLE", value_parser = parse_target)]
    targets: Vec<String>,
    /// Make rustdoc's warnings errors, exactly as RUSTDOCFLAGS="-D warnings" does
    /// (docs.rs accepts warnings).
    #[arg(long)]
    deny_warnings: bool,
    /// Print one JSON object per checked crate on stdout, and nothing else there.
    #[arg(long)]
    json: bool,
    /// Stream the build log (the sandboxed command and its output) to stderr.
    #[arg(short, long, conflicts_with = "quiet")]
    verbose: bool,
    /// Print only the final lines: no progress, warnings or errors.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    build: BuildArgs,
    /// Build the directory as it is, not what `cargo package` would publish.
    #[arg(long, conflicts_with_all = ["workspace", "package"])]
    no_package: bool,
    /// Copy the docs into this directory (made if missing).
    #[arg(long, value_name = "DIR", value_parser = parse_out_dir)]
    out: Option<PathBuf>,
    /// Open the docs in a browser after a successful build.
    #[arg(long)]
    open: bool,
    /// Print the commands the build ran (host-side cargo, then the sandbox's `docker
    /// run`) so that it can be replayed by hand; `--json` always has them in
    /// `commands`.
    #[arg(long)]
    explain: bool,
    /// The registry the package is published to, whose newest earlier version the
    /// public API is compared with, as cargo or docbuild.toml names it [default:
    /// crates-io].
    #[arg(long, value_name = "NAME")]
    registry: Option<String>,
    /// Do not compare the public API with the published one (no registry or network
    /// access); also DOCBUILD_NO_API=1.
    #[arg(long)]
    no_api: bool,
}

/// Below this, no rustdoc run fits (a tiny crate takes about 100 MiB).
const MIN_MEMORY: u64 = 64 << 20;

fn parse_memory(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text).map_err(|e| e.to_string())?;
    if bytes < MIN_MEMORY {
        let unitless = text.trim().chars().all(|c| c.is_ascii_digit() || c == '.');
        let hint = if unitless {
            format!(": `{text}` is {bytes} bytes; give a unit, such as {text}G")
        } else {
            String::new()
        };
        return Err(format!(
            "a memory limit below {} MiB is too small for any build{hint}",
            MIN_MEMORY >> 20
        ));
    }
    Ok(bytes)
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

/// A duration such as `90s` or `15m`; zero is refused.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration `{text}`: {e} (e.g. 30s, 15m, 1h)"))?;
    if duration.is_zero() {
        return Err("a duration must be longer than zero".to_string());
    }
    Ok(duration)
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let timeout = parse_duration(text)?;
    if timeout < Duration::from_secs(1) {
        return Err("a time limit below 1s ends every build at once".to_string());
    }
    Ok(timeout)
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

fn parse_crate_name(text: &str) -> Result<String, String> {
    CrateName::new(text)
        .map(|name| name.as_str().to_string())
        .map_err(|e| e.to_string())
}

/// A target's syntax; whether the toolchain knows it is checked before the build.
fn parse_target(text: &str) -> Result<String, String> {
    if is_target_triple(text) {
        Ok(text.to_string())
    } else {
        Err("expected a target triple such as x86_64-unknown-linux-gnu".to_string())
    }
}

/// `--manifest-path`: an existing file named `Cargo.toml`, as cargo requires.
fn parse_manifest_path(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if path.file_name() != Some("Cargo.toml".as_ref()) {
        return Err("the manifest path must be a path to a Cargo.toml file".to_string());
    }
    if !path.is_file() {
        return Err(format!("manifest path `{text}` does not exist"));
    }
    Ok(path)
}

/// `--out`: a directory, or a path where one can be made (its nearest existing
/// ancestor is a directory).
fn parse_out_dir(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    let existing = path
        .ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .find(|a| a.symlink_metadata().is_ok())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    if existing == path && !path.is_dir() {
        return Err(format!("`{text}` is a file, not a directory"));
    }
    if !existing.is_dir() {
        return Err(format!(
            "`{}` is a file, so no directory can be made below it",
            existing.display()
        ));
    }
    Ok(path)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = COLOR.set(ColorChoice::resolve(cli.color));
    match &cli.command {
        Command::Completions { shell } => return completions(*shell),
        Command::Man { out } => return man(out.as_deref()),
        _ => {}
    }
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
            return output::fail(
                Outcome::InfrastructureError,
                &format!("cannot start the async runtime: {error}"),
            );
        }
    };
    match cli.command {
        Command::Check(args) => {
            runtime.block_on(check(*args, cli.data_dir.as_deref(), cli.config.as_deref()))
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
        Command::Token(command) => runtime.block_on(service::token(
            command,
            cli.data_dir.as_deref(),
            cli.config.as_deref(),
        )),
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
        Command::Docs(command) => runtime.block_on(service::docs(
            command,
            cli.data_dir.as_deref(),
            cli.config.as_deref(),
        )),
        Command::Gc(args) => runtime.block_on(service::gc(
            args,
            cli.data_dir.as_deref(),
            cli.config.as_deref(),
        )),
        Command::ReleaseTarget {
            token,
            idle_secs,
            work_dir,
        } => match runtime.block_on(docbuild_builder::kept_mount::release_idle_target(
            &work_dir,
            &token,
            Duration::from_secs(idle_secs),
        )) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => output::fail(
                Outcome::InfrastructureError,
                &format!("cannot unmount {}/target: {error}", work_dir.display()),
            ),
        },
        Command::Completions { .. } | Command::Man { .. } => ExitCode::SUCCESS,
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
                        output::err(&format!("docbuild: {notice}"));
                    }
                    let second = tokio::select! {
                        _ = interrupt.recv() => StopSignal::Interrupt,
                        _ = terminate.recv() => StopSignal::Terminate,
                    };
                    output::err(
                        "docbuild: stopped at once; a build's container may be left behind",
                    );
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

/// The completion script for `shell`, made from the command line's definition.
fn completions(shell: clap_complete::Shell) -> ExitCode {
    use clap::CommandFactory;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "docbuild", &mut script);
    output::finish(output::out(String::from_utf8_lossy(&script).trim_end()))
}

/// The man page, made from the command line's definition: `docbuild.1` on stdout, or
/// a page per command into `out`.
fn man(out: Option<&Path>) -> ExitCode {
    use clap::CommandFactory;
    let command = Cli::command();
    let Some(out) = out else {
        let mut page = Vec::new();
        if let Err(error) = clap_mangen::Man::new(command).render(&mut page) {
            return output::fail(Outcome::InfrastructureError, &error);
        }
        return output::finish(output::out(String::from_utf8_lossy(&page).trim_end()));
    };
    let written =
        std::fs::create_dir_all(out).and_then(|()| clap_mangen::generate_to(command, out));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => output::fail(
            Outcome::InfrastructureError,
            &format!("cannot write the man pages to {}: {error}", out.display()),
        ),
    }
}

/// Arguments that need the toolchain to be judged, before anything is built:
/// each `--target` must be one the toolchain's rustc knows. A toolchain that cannot
/// be found is left to the check, which reports it as its outcome.
async fn validate_targets(toolchain: Option<&str>, targets: &[String]) -> Result<(), ExitCode> {
    if targets.is_empty() {
        return Ok(());
    }
    let Ok(toolchain) = Toolchain::resolve(toolchain).await else {
        return Ok(());
    };
    let Ok(known) = toolchain.target_list().await else {
        return Ok(());
    };
    match targets.iter().find(|target| !known.contains(target)) {
        Some(unknown) => Err(output::fail(
            Outcome::InvalidInput,
            &format!(
                "invalid value '{unknown}' for '--target <TRIPLE>': not a target of toolchain \
                 `{}` (see `rustc --print target-list`)",
                toolchain.display_name()
            ),
        )),
        None => Ok(()),
    }
}

/// How long `check` leaves its target directory mounted once idle, for the next check
/// of the package: `DOCBUILD_KEEP_MOUNTED` (`0` unmounts it as the check ends).
fn keep_mounted() -> Result<Option<KeepMounted>, String> {
    const VARIABLE: &str = "DOCBUILD_KEEP_MOUNTED";
    let idle = match std::env::var(VARIABLE) {
        Err(std::env::VarError::NotPresent) => Duration::from_secs(5 * 60),
        Ok(text) => match humantime::parse_duration(text.trim()) {
            Ok(idle) if idle.is_zero() => return Ok(None),
            Ok(idle) => idle,
            Err(error) => {
                return Err(format!(
                    "{VARIABLE}: invalid duration `{text}`: {error} (e.g. 0, 90s, 5m)"
                ));
            }
        },
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(format!("{VARIABLE}: not a duration (e.g. 0, 90s, 5m)"));
        }
    };
    // Without its own executable, docbuild cannot start the release: unmount at once.
    Ok(std::env::current_exe()
        .ok()
        .map(|program| KeepMounted { idle, program }))
}

async fn check(args: CheckArgs, data_dir: Option<&Path>, config: Option<&Path>) -> ExitCode {
    if let Err(code) = validate_targets(args.build.toolchain.as_deref(), &args.targets).await {
        return code;
    }
    let data = DataDir::resolve(data_dir);
    let loaded = Config::load(config, &data)
        .map_err(|e| Failure::new(Outcome::InvalidInput, e))
        .and_then(|config| Ok((args.build.image(&config.image)?, config)));
    let (image, config) = match loaded {
        Ok(loaded) => loaded,
        Err(failure) => return output::fail(failure.outcome, &failure.message),
    };
    let no_api = args.no_api
        || std::env::var_os("DOCBUILD_NO_API").is_some_and(|v| !v.is_empty() && v != "0");
    let api_registry = match RegistryName::new(args.registry.as_deref().unwrap_or(CRATES_IO)) {
        Ok(name) => name,
        Err(error) => {
            return output::fail(
                Outcome::InvalidInput,
                &format!("invalid value for '--registry <NAME>': {error}"),
            );
        }
    };
    let keep_mounted = match keep_mounted() {
        Ok(keep) => keep,
        Err(message) => return output::fail(Outcome::InvalidInput, &message),
    };
    let shutdown = Shutdown::listen(None);
    let cancel = shutdown.token();
    let path = args
        .manifest_path
        .clone()
        .or_else(|| args.path.clone())
        .unwrap_or_else(|| PathBuf::from("."));

    let options = CheckOptions {
        path,
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
        deny_warnings: args.deny_warnings,
        about: false,
        // Only the public API comparison needs it.
        rustdoc_json: !no_api,
        build_cache: None,
        keep_mounted,
    };
    let verbosity = if args.quiet {
        Verbosity::Quiet
    } else if args.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    let display = Arc::new(Display::new(args.json, verbosity));
    let cache = CacheDirs::from_env();
    let several = args.workspace || !args.package.is_empty();
    let (mut reports, skipped) = if several {
        let selection = if args.workspace {
            Selection::All
        } else {
            Selection::Packages(args.package.clone())
        };
        let checked = check_workspace(
            &options,
            &selection,
            usize::from(args.jobs),
            &cache,
            display.clone(),
            &cancel,
        )
        .await
        .map_err(Failure::from);
        match checked {
            Ok(workspace) => (workspace.reports, workspace.skipped),
            Err(failure) => (vec![CrateReport::from(failure)], Vec::new()),
        }
    } else {
        let report = docbuild_builder::check(&options, &cache, display.as_ref(), &cancel).await;
        (vec![report], Vec::new())
    };

    if !no_api && !cancel.is_cancelled() {
        let path = std::fs::canonicalize(&options.path).unwrap_or_else(|_| options.path.clone());
        let api = ApiOptions {
            registry: api_registry,
            registries: config.registries().with_project(&path),
            server_url: config.server.url.clone(),
            build: options.clone(),
        };
        for report in &mut reports {
            report.api = compare(report, &api, &cache, display.as_ref(), &cancel).await;
            if cancel.is_cancelled() {
                // Stopped, not failed: nothing to say about the API.
                report.api = None;
            }
        }
    }
    display.finish();

    // Builds stopped by Ctrl-C (or SIGTERM) have no outcome of their own: they are
    // left out, and the exit code says how the command ended.
    let signal = shutdown.signal();
    let (shown, interrupted): (Vec<&CrateReport>, Vec<&CrateReport>) = reports
        .iter()
        .partition(|report| signal.is_none() || !report.interrupted);
    let written = if args.json {
        // Stdout holds reports only; members left out are named on stderr.
        for member in &skipped {
            output::err(&format!(
                "docbuild: skipped {} ({})",
                member.name, member.reason
            ));
        }
        print_json(&shown)
    } else {
        print_text(&shown, &skipped, several, verbosity)
    };
    if let Err(error) = written
        && error.kind() != std::io::ErrorKind::BrokenPipe
    {
        // A closed pipe (`| head`) is the reader's choice, not a failure to report.
        output::err(&format!("error: cannot write the results: {error}"));
    }
    if let Some(signal) = signal {
        if !interrupted.is_empty() || reports.is_empty() {
            output::err("docbuild: interrupted");
        }
        return ExitCode::from(signal.exit_code());
    }
    if args.explain {
        for report in &reports {
            let name = report.name.as_deref().unwrap_or("?");
            for command in &report.commands {
                output::err(&output::sanitized(&format!("{name}: {command}")));
            }
        }
    }
    if args.open
        && let Some(docs) = reports.first().and_then(CrateReport::docs)
    {
        display::open_in_browser(docs);
    }
    let worst = reports
        .iter()
        .map(|r| r.outcome)
        .max()
        .unwrap_or(Outcome::Success);
    ExitCode::from(worst.exit_code() as u8)
}

fn print_json(reports: &[&CrateReport]) -> std::io::Result<()> {
    for report in reports {
        let line = serde_json::to_string(report).map_err(std::io::Error::other)?;
        output::out(&line)?;
    }
    Ok(())
}

/// Each crate's warnings and errors on stderr (unless `-q`), its final line on
/// stdout; after several crates, the skipped members and a summary line.
fn print_text(
    reports: &[&CrateReport],
    skipped: &[docbuild_builder::workspace::Skipped],
    several: bool,
    verbosity: Verbosity,
) -> std::io::Result<()> {
    let (out_paint, err_paint) = (color().stdout(), color().stderr());
    let paths = Paths::from_env();
    for member in skipped {
        output::out(&display::skipped_line(member, out_paint))?;
    }
    for report in reports {
        if verbosity != Verbosity::Quiet {
            let diagnostics = display::diagnostics(report, &paths, err_paint);
            if !diagnostics.is_empty() {
                output::err(&format!("{}\n", diagnostics.join("\n\n")));
            }
        }
        output::out(&display::summary_line(report, &paths, out_paint))?;
        if let Some(api) = &report.api {
            output::out(&output::sanitized(&format!("  {}", api.line())))?;
            if let Some(note) = api.note(report.version.as_deref().unwrap_or_default()) {
                output::out(&output::sanitized(&format!("  note: {note}")))?;
            }
        }
    }
    if several {
        output::out(&display::totals_line(reports, skipped, out_paint))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_argument_has_a_help_text() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {} (the command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let command = Cli::command();
        command.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&command, "docbuild", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }
}
