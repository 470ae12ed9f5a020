//! `check`: one local package from path to outcome, along the data's path:
//! locate → toolchain → prepare → plan → fetch → sandboxed build → classify.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use docbuild_sandbox::{SANDBOX_UID, Sandbox, SandboxImage, SandboxLimits};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::execute::{BuildEnvironment, TargetRun, append_to_log, build_target};
use crate::host_cargo::{HostCargo, HostCargoError, UserCargoConfig};
use crate::metadata::DocsRsMetadata;
use crate::outcome::{CrateReport, Outcome, TargetReport};
use crate::plan::{BuildPlan, InvocationOptions};
use crate::prepare::{
    LocalPackage, PackagedDependency, PrepareError, SourceMode, add_packaged_dependencies,
    make_readable, prepare_packaged, prepare_source, unlock_members,
};
use crate::toolchain::Toolchain;

/// What `docbuild check` was asked to do for one package.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub path: PathBuf,
    pub mode: SourceMode,
    pub limits: SandboxLimits,
    pub image: SandboxImage,
    pub toolchain: Option<String>,
    /// Targets to build instead of the metadata's; the first is the default.
    pub targets: Vec<String>,
    /// Copy the docs here (default target at the top, others in `<target>/`).
    pub out: Option<PathBuf>,
    /// Work directory (target directory, prepared sources, log) instead of the
    /// cache's per-package one.
    pub work_dir: Option<PathBuf>,
    /// Registries configured for docbuild, beyond the user's cargo configuration.
    pub registries: RegistryAccess,
    /// Build this `.crate` (the package as packaged with its workspace) instead of
    /// packaging `path` now.
    pub packaged: Option<PathBuf>,
    /// Unpublished workspace members the package depends on, as packaged.
    pub dependencies: Vec<PackagedDependency>,
    /// Every member of the package's workspace, whose registry entries in the
    /// package's lockfile are resolved again (see [`crate::prepare::unlock_members`]).
    pub workspace_members: Vec<String>,
}

/// What builds need to know about docbuild's configured registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryAccess {
    /// For host-side cargo only: index URLs and tokens.
    pub host_env: Vec<(String, String)>,
    /// For the sandbox: index URLs by registry name, never tokens.
    pub sandbox_env: Vec<(String, String)>,
    /// `doc.extern-map.registries` entries linking these registries' crates.
    pub extern_map: Vec<(String, String)>,
}

/// Where docbuild keeps its state on this machine.
#[derive(Debug, Clone)]
pub struct CacheDirs {
    root: PathBuf,
}

impl CacheDirs {
    /// `DOCBUILD_CACHE_DIR`, else the platform's cache directory.
    pub fn from_env() -> Self {
        let root = std::env::var_os("DOCBUILD_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| dirs::cache_dir().map(|dir| dir.join("docbuild")))
            .unwrap_or_else(|| std::env::temp_dir().join("docbuild"));
        Self { root }
    }

    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// docbuild's own cargo home: registry index and downloaded dependencies, shared
    /// by all builds and mounted read-only into the sandbox.
    pub fn cargo_home(&self) -> PathBuf {
        self.root.join("cargo-home")
    }

    /// The directory kept for one workspace: its packages, logs and work directories.
    pub fn workspace_dir(&self, root: &Path) -> PathBuf {
        let key = self.package_dir(root);
        let name = key.file_name().map(PathBuf::from).unwrap_or_default();
        self.root.join("workspaces").join(name)
    }

    /// The directory kept for one local package: its target directory (compiled
    /// dependencies reused by the next check), its prepared sources and its log.
    fn package_dir(&self, package_dir: &Path) -> PathBuf {
        let digest = Sha256::digest(package_dir.as_os_str().as_encoded_bytes());
        let short: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let name = package_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "root".into());
        self.root.join("check").join(format!("{name}-{short}"))
    }
}

/// Progress messages for a display.
pub trait Progress: Send + Sync {
    fn step(&self, message: &str);
}

impl<F: Fn(&str) + Send + Sync> Progress for F {
    fn step(&self, message: &str) {
        self(message)
    }
}

/// Checks one local package. Never fails: every problem is an outcome in the report.
pub async fn check(
    options: &CheckOptions,
    cache: &CacheDirs,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> CrateReport {
    let started = Instant::now();
    let mut report = match run_check(options, cache, progress, cancel).await {
        Ok(report) => report,
        Err(early) => *early,
    };
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

type Early = Box<CrateReport>;

fn early(outcome: Outcome, message: impl ToString) -> Early {
    Box::new(CrateReport::early(outcome, message.to_string()))
}

async fn run_check(
    options: &CheckOptions,
    cache: &CacheDirs,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<CrateReport, Early> {
    let toolchain =
        Toolchain::resolve(options.toolchain.as_deref()).map_err(|error| match error {
            crate::toolchain::ToolchainError::NotInstalled(_) => {
                early(Outcome::InvalidInput, &error)
            }
            _ => early(Outcome::InfrastructureError, &error),
        })?;
    let package = LocalPackage::locate(&options.path, &toolchain)
        .map_err(|error| early(Outcome::InvalidInput, error))?;
    let mut report = CrateReport::early(Outcome::BuildFailed, String::new());
    report.name = Some(package.name.clone());
    report.version = Some(package.version.clone());
    report.toolchain = Some(toolchain.version.clone());
    report.features = package.features.clone();
    let mut metadata = DocsRsMetadata::from_package_metadata(&package.metadata)
        .map_err(|error| identified(&report, early(Outcome::InvalidInput, error)))?;
    if !options.targets.is_empty() {
        metadata.default_target = None;
        metadata.targets = Some(options.targets.clone());
        metadata.additional_targets.clear();
    }
    let plan = BuildPlan::new(metadata, package.proc_macro, &toolchain.host);
    report.default_target = Some(plan.default_target.clone());
    // What every early failure from here on carries.
    let base = report.clone();
    let Some(lib_name) = package.lib_name.clone() else {
        return Err(identified(
            &base,
            early(Outcome::BuildFailed, "no library target"),
        ));
    };
    if !toolchain.has_target(&plan.default_target) {
        return Err(identified(
            &base,
            early(
                Outcome::InfrastructureError,
                missing_std(&plan.default_target),
            ),
        ));
    }

    let work = options
        .work_dir
        .clone()
        .unwrap_or_else(|| cache.package_dir(&package.dir));
    let infra = |what: &str, error: std::io::Error| {
        identified(
            &base,
            early(Outcome::InfrastructureError, format!("{what}: {error}")),
        )
    };
    std::fs::create_dir_all(&work).map_err(|e| infra("cannot create the work directory", e))?;
    // One check of a package at a time: they share the target directory.
    let lock = std::fs::File::create(work.join("lock")).map_err(|e| infra("cannot lock", e))?;
    lock.lock().map_err(|e| infra("cannot lock", e))?;
    let log_path = work.join("build.log");
    std::fs::write(&log_path, "").map_err(|e| infra("cannot write the log", e))?;
    report.log = Some(log_path.clone());

    let source = work.join("src");
    let target_dir = work.join("target");
    let cargo_home = cache.cargo_home();
    for dir in [&target_dir, &cargo_home] {
        std::fs::create_dir_all(dir).map_err(|e| infra("cannot create a directory", e))?;
    }
    let host_cargo = HostCargo::new(
        &toolchain,
        &cargo_home,
        UserCargoConfig::discover(&package.dir),
    )
    .with_env(options.registries.host_env.clone());
    let mut sandbox_env = host_cargo.config().sandbox_environment();
    sandbox_env.extend(options.registries.sandbox_env.iter().cloned());
    let mode = if package.already_packaged {
        SourceMode::AsIs
    } else {
        options.mode
    };
    progress.step(match mode {
        SourceMode::Package => "packaging",
        SourceMode::AsIs => "copying sources",
    });
    let prepared = match &options.packaged {
        Some(archive) => prepare_packaged(&package, archive, &source),
        None => prepare_source(&package, mode, &source, &work, &host_cargo),
    };
    let shipped_lockfile = prepared
        .and_then(|lockfile| {
            add_packaged_dependencies(&source, &options.dependencies)?;
            unlock_members(&source, &options.workspace_members)?;
            Ok(lockfile)
        })
        .map_err(|error| identified(&base, prepare_failure(error)))?;

    progress.step("fetching dependencies");
    if !shipped_lockfile {
        host_cargo
            .generate_lockfile(&source)
            .map_err(|error| identified(&base, cargo_failure(error)))?;
    }
    host_cargo
        .fetch(&source)
        .map_err(|error| identified(&base, cargo_failure(error)))?;

    let user = sandbox_user(&work, &[&source, &target_dir, &cargo_home])
        .map_err(|e| infra("cannot give the sandbox access to the sources", e))?;
    let sandbox = Sandbox::connect()
        .await
        .map_err(|error| identified(&base, early(Outcome::InfrastructureError, error)))?;
    let env = BuildEnvironment {
        sandbox: &sandbox,
        image: options.image.clone(),
        limits: options.limits.clone(),
        toolchain: &toolchain,
        source: &source,
        target_dir: &target_dir,
        cargo_home: &cargo_home,
        log_path: &log_path,
        user,
        env: sandbox_env,
        invocation: InvocationOptions {
            jobs: Some(options.limits.cpus.ceil().max(1.0) as u32),
            json_messages: true,
            extern_map: options.registries.extern_map.clone(),
            // Once published, these link to docs.rs like any crates.io dependency.
            extern_html_roots: options
                .dependencies
                .iter()
                .filter_map(|dep| {
                    let lib = dep.lib_name.clone()?;
                    Some((
                        lib,
                        BuildPlan::docs_rs_root(&dep.name, &dep.version, "{target}"),
                    ))
                })
                .collect(),
        },
        cancel,
    };

    progress.step(&format!("documenting for {}", plan.default_target));
    let mut run = build_target(&env, &plan, &plan.default_target, &lib_name).await;
    if shipped_lockfile && matches!(&run, Ok(r) if r.outcome() == Outcome::BuildFailed) {
        // docs.rs's rule: a shipped lockfile that fails gets one retry with a new one.
        progress.step("retrying with a regenerated Cargo.lock");
        let _ = append_to_log(
            &log_path,
            "[docbuild] build failed with the shipped Cargo.lock; regenerating it and trying again",
        );
        std::fs::remove_file(source.join("Cargo.lock"))
            .map_err(|e| infra("cannot remove Cargo.lock", e))?;
        host_cargo
            .generate_lockfile(&source)
            .and_then(|()| host_cargo.fetch(&source))
            .map_err(|error| identified(&base, cargo_failure(error)))?;
        make_readable(&source).map_err(|e| infra("cannot make sources readable", e))?;
        report.lockfile_regenerated = true;
        run = build_target(&env, &plan, &plan.default_target, &lib_name).await;
    }
    let run = run.map_err(|error| identified(&base, early(Outcome::InfrastructureError, error)))?;
    let outcome = run.outcome();
    report.outcome = outcome;
    report.memory_peak_bytes = run.report.memory_peak_bytes;
    report.errors = run.errors.clone();
    report.message = if outcome == Outcome::Success {
        "docs built".to_string()
    } else {
        run.failure_message(&options.limits)
    };
    report
        .targets
        .push(target_report(&plan.default_target, &run, &options.limits));

    if outcome == Outcome::Success {
        // Extra targets never fail the build.
        for target in &plan.other_targets {
            if !toolchain.has_target(target) {
                report.targets.push(TargetReport {
                    target: target.clone(),
                    outcome: Outcome::InfrastructureError,
                    duration_ms: 0,
                    docs: None,
                    message: Some(missing_std(target)),
                });
                continue;
            }
            progress.step(&format!("documenting for {target}"));
            match build_target(&env, &plan, target, &lib_name).await {
                Ok(run) => {
                    report.memory_peak_bytes =
                        report.memory_peak_bytes.max(run.report.memory_peak_bytes);
                    report
                        .targets
                        .push(target_report(target, &run, &options.limits));
                }
                Err(error) => report.targets.push(TargetReport {
                    target: target.clone(),
                    outcome: Outcome::InfrastructureError,
                    duration_ms: 0,
                    docs: None,
                    message: Some(error.to_string()),
                }),
            }
        }
        let failed = report
            .targets
            .iter()
            .filter(|t| t.outcome != Outcome::Success)
            .count();
        if failed > 0 {
            report.message = format!("docs built; {failed} other target(s) failed");
        }
        if let Some(out) = &options.out {
            copy_docs(&mut report, &plan, &target_dir, out)
                .map_err(|e| infra("cannot copy the docs to --out", e))?;
        }
    }
    Ok(report)
}

/// An early failure with the package's identity filled in.
fn identified(base: &CrateReport, mut early: Early) -> Early {
    early.name = base.name.clone();
    early.version = base.version.clone();
    early.toolchain = base.toolchain.clone();
    early.default_target = base.default_target.clone();
    early
}

fn target_report(target: &str, run: &TargetRun, limits: &SandboxLimits) -> TargetReport {
    let outcome = run.outcome();
    TargetReport {
        target: target.to_string(),
        outcome,
        duration_ms: run.report.duration.as_millis() as u64,
        docs: run.docs.clone(),
        message: (outcome != Outcome::Success).then(|| run.failure_message(limits)),
    }
}

fn missing_std(target: &str) -> String {
    format!(
        "the standard library for target `{target}` is not installed (rustup target add {target})"
    )
}

fn prepare_failure(error: PrepareError) -> Early {
    match error {
        PrepareError::Cargo(error) => cargo_failure(error),
        PrepareError::Unpack(error) => early(Outcome::BuildFailed, error),
        PrepareError::Io(..) => early(Outcome::InfrastructureError, error),
    }
}

fn cargo_failure(error: HostCargoError) -> Early {
    let outcome = if error.infrastructure {
        Outcome::InfrastructureError
    } else {
        Outcome::BuildFailed
    };
    early(outcome, error)
}

/// Chooses the sandbox's user and gives it what it needs: the host user itself when
/// that is not root; otherwise a fixed unprivileged uid, which gets the target
/// directory and read access to sources and dependencies.
fn sandbox_user(work: &Path, dirs: &[&Path; 3]) -> std::io::Result<(u32, u32)> {
    let me = std::fs::metadata(work)?;
    if me.uid() != 0 {
        return Ok((me.uid(), me.gid()));
    }
    let [source, target_dir, cargo_home] = *dirs;
    std::os::unix::fs::chown(target_dir, Some(SANDBOX_UID), Some(SANDBOX_UID))?;
    make_readable(source)?;
    make_registry_readable(cargo_home)?;
    Ok((SANDBOX_UID, SANDBOX_UID))
}

/// Marks each unpacked dependency once, so that later builds skip it.
fn make_registry_readable(cargo_home: &Path) -> std::io::Result<()> {
    const MARKER: &str = ".docbuild-readable";
    for root in [
        cargo_home.join("registry/src"),
        cargo_home.join("git/checkouts"),
    ] {
        let Ok(indexes) = std::fs::read_dir(&root) else {
            continue;
        };
        for index in indexes.flatten() {
            let Ok(packages) = std::fs::read_dir(index.path()) else {
                continue;
            };
            for package in packages.flatten() {
                let path = package.path();
                if path.is_dir() && !path.join(MARKER).exists() {
                    make_readable(&path)?;
                    std::fs::write(path.join(MARKER), "")?;
                }
            }
        }
    }
    make_readable_shallow(cargo_home)
}

/// The cargo home's own directories must be searchable too.
fn make_readable_shallow(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o555))
}

fn copy_docs(
    report: &mut CrateReport,
    plan: &BuildPlan,
    target_dir: &Path,
    out: &Path,
) -> std::io::Result<()> {
    for (index, target) in report.targets.iter_mut().enumerate() {
        let Some(docs) = &target.docs else { continue };
        let from = target_dir.join(plan.doc_dir(&target.target));
        let to = if index == 0 {
            out.to_path_buf()
        } else {
            out.join(&target.target)
        };
        let relative = docs.strip_prefix(&from).map_err(std::io::Error::other)?;
        // Replace this crate's earlier copy rather than merge into it; nothing else
        // in `out` is touched.
        if let Some(lib) = relative.components().next() {
            let old = to.join(lib);
            if old.is_dir() {
                std::fs::remove_dir_all(&old)?;
            }
        }
        crate::prepare::copy_tree(&from, &to, false)?;
        target.docs = Some(std::fs::canonicalize(to.join(relative))?);
    }
    Ok(())
}
