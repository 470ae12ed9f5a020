//! `docbuild image`: docs.rs's build environment (or one of a list of one's own),
//! made locally from Debian's packages.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use docbuild_builder::config::{Config, DataDir};
use docbuild_builder::environment::{docs_rs_packages, docs_rs_spec, list_spec};
use docbuild_builder::{Failure, Outcome};
use docbuild_sandbox::{EnvironmentError, EnvironmentSpec, Sandbox, environment_work_dir};

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Make docs.rs's build environment (its system packages by their Debian names,
    /// plus `[image] packages`), unless an image of the same list exists. Needs root
    /// (debootstrap) and Debian's mirror; nothing is pulled from an image registry.
    Build {
        /// Make an image of this list instead (one Debian package a line).
        #[arg(long, value_name = "FILE")]
        list: Option<PathBuf>,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Show the image the current list names and whether it exists.
    Show {
        /// The image of this list instead of docs.rs's.
        #[arg(long, value_name = "FILE")]
        list: Option<PathBuf>,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub async fn image(
    command: ImageCommand,
    data_dir: Option<&Path>,
    config: Option<&Path>,
) -> ExitCode {
    let data = DataDir::resolve(data_dir);
    let config = match Config::load(config, &data) {
        Ok(config) => config,
        Err(error) => return fail(&Failure::new(Outcome::InvalidInput, error)),
    };
    let (list, json) = match &command {
        ImageCommand::Build { list, json } | ImageCommand::Show { list, json } => (list, *json),
    };
    let spec = match list {
        Some(list) => list_spec(list, &config.image),
        None => docs_rs_spec(&config.image),
    };
    let spec = match spec {
        Ok(spec) => spec,
        Err(error) => return fail(&Failure::new(Outcome::InvalidInput, error)),
    };
    let sandbox = match Sandbox::connect().await {
        Ok(sandbox) => sandbox,
        Err(error) => return fail(&Failure::new(Outcome::InfrastructureError, error)),
    };
    match command {
        ImageCommand::Show { .. } => {
            let present = sandbox.has_environment(&spec).await;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "image": spec.tag(),
                        "present": present,
                        "packages": spec.packages.len(),
                        "release": spec.release,
                    })
                );
            } else {
                let state = if present { "present" } else { "not built" };
                println!("{} ({state}, {} packages)", spec.tag(), spec.packages.len());
            }
            ExitCode::SUCCESS
        }
        ImageCommand::Build { list, .. } => {
            build(&sandbox, &spec, &data, list.is_none(), json).await
        }
    }
}

async fn build(
    sandbox: &Sandbox,
    spec: &EnvironmentSpec,
    data: &DataDir,
    docs_rs: bool,
    json: bool,
) -> ExitCode {
    let work = environment_work_dir(data.cache().root());
    if let Err(error) = std::fs::create_dir_all(&work) {
        return fail(&Failure::new(Outcome::InfrastructureError, error));
    }
    let log = work.join(format!("{}.log", spec.tag().replace([':', '/'], "-")));
    if docs_rs && !json {
        let (_, missing) = docs_rs_packages();
        eprintln!(
            "docbuild: {} packages; {} of docs.rs's have no Debian equivalent: {}",
            spec.packages.len(),
            missing.len(),
            missing.join(", ")
        );
    }
    if !json && !sandbox.has_environment(spec).await {
        eprintln!("docbuild: making {} (log: {})", spec.tag(), log.display());
    }
    let shutdown = crate::Shutdown::listen(None);
    match sandbox
        .build_environment(spec, &work, &log, &shutdown.token())
        .await
    {
        Ok(report) if json => {
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(report) => {
            let verb = if report.built { "made" } else { "up to date:" };
            println!(
                "{verb} {} ({} MB, {} packages, {:.1} s)",
                report.image,
                report.size_bytes / 1_000_000,
                report.packages,
                report.duration_ms as f64 / 1000.0
            );
            ExitCode::SUCCESS
        }
        Err(EnvironmentError::Cancelled) => ExitCode::from(130),
        Err(error @ EnvironmentError::MissingTool(_)) => {
            fail(&Failure::new(Outcome::InvalidInput, error))
        }
        Err(error) => fail(&Failure::new(Outcome::InfrastructureError, error)),
    }
}

fn fail(failure: &Failure) -> ExitCode {
    eprintln!("error: {}", failure.message);
    ExitCode::from(failure.outcome.exit_code() as u8)
}
