//! `check`: one local package from path to outcome, along the data's path:
//! toolchain → locate → plan → prepare → fetch → sandboxed build → collect.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use docbuild_sandbox::{SANDBOX_UID, Sandbox, SandboxImage, SandboxLimits};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::build_cache::{BuildCache, CodeRan, DependencyGraph, LayeredTarget};
use crate::copy::{Copied, copy_output_replacing};
use crate::disk::{DiskBudget, TargetDir};
use crate::environment::is_docs_rs;
use crate::error::BuildError;
use crate::execute::{
    BuildEnvironment, TargetRun, append_to_log, build_dependencies, build_json, build_target,
};
use crate::host_cargo::{HostCargo, Registries};
use crate::kept_mount::{KeepMounted, leave_mounted};
use crate::metadata::{DocsRsMetadata, is_target_triple};
use crate::outcome::{CrateReport, ErrorDetail, JsonReport, Outcome, TargetReport};
use crate::plan::{BuildPlan, InvocationOptions};
use crate::prepare::{
    InputError, LocalPackage, PackagedDependency, PreparedSource, SourceMode,
    add_packaged_dependencies, blocking, make_readable, prepare_packaged, prepare_source,
    unlock_members,
};
use crate::static_files::{reference_static_files, replace_static_files};
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
    /// The user's registries (cargo home and `docbuild.toml`).
    pub registries: Registries,
    /// `path` is the user's own project: its cargo configuration may name registry
    /// indexes (never anything else). Off for crates from a registry or a queue.
    pub project_registries: bool,
    /// `doc.extern-map.registries` entries linking registries' crates to a viewer.
    pub extern_map: Vec<(String, String)>,
    /// Build this `.crate` (the package as packaged with its workspace) instead of
    /// packaging `path` now.
    pub packaged: Option<PathBuf>,
    /// Unpublished workspace members the package depends on, as packaged.
    pub dependencies: Vec<PackagedDependency>,
    /// Every member of the package's workspace, whose registry entries in the
    /// package's lockfile are resolved again (see [`crate::prepare::unlock_members`]).
    pub workspace_members: Vec<String>,
    /// rustdoc's warnings are errors, as with `RUSTDOCFLAGS="-D warnings"`.
    pub deny_warnings: bool,
    /// Keep what the package says about itself (description, links, README) in the
    /// report, for the viewer.
    pub about: bool,
    /// Also make rustdoc's JSON of the default target: workers keep it with every
    /// build, and `check` needs it to compare the public API (without that, the run
    /// and its container would be time spent for nothing).
    pub rustdoc_json: bool,
    /// Reuse compiled dependencies from this build cache, and add to it (workers).
    /// Only with a mounted target directory (the overlay needs root).
    pub build_cache: Option<crate::build_cache::BuildCache>,
    /// Leave the target directory mounted after the check, for the next check of the
    /// package (`docbuild check`; not workers, whose builds never share one); not
    /// after a cancelled or out-of-disk check.
    pub keep_mounted: Option<KeepMounted>,
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
        self.workspace_key(root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The last toolchain resolution ([`Toolchain::resolve_remembered`]).
    pub fn toolchain_file(&self) -> PathBuf {
        self.root.join("toolchain.json")
    }

    /// The directory kept for one local package: its target directory (compiled
    /// dependencies reused by the next check), its prepared sources and its log.
    /// Keyed by the package's name and its path: another package found at the same
    /// path later never sees what this one's build scripts left.
    fn package_dir(&self, package: &LocalPackage) -> PathBuf {
        let mut key = Sha256::new();
        key.update(package.dir.as_os_str().as_encoded_bytes());
        key.update([0]);
        key.update(package.name().as_bytes());
        let short: String = key
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        self.root
            .join("check")
            .join(format!("{}-{short}", package.name()))
    }

    /// The directory kept for one workspace: its packages, logs and work directories.
    fn workspace_key(&self, root: &Path) -> PathBuf {
        let digest = Sha256::digest(root.as_os_str().as_encoded_bytes());
        let short: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "root".into());
        self.root.join("workspaces").join(format!("{name}-{short}"))
    }
}

/// Progress messages for a display.
pub trait Progress: Send + Sync {
    /// What the check does now ("fetching dependencies").
    fn step(&self, message: &str);
    /// A line the build log gets (the sandboxed command and its output).
    fn log(&self, _line: &str) {}
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
    let mut report = CrateReport::early(Outcome::BuildFailed, String::new());
    if let Err(error) = run_check(options, cache, progress, cancel, &mut report).await {
        report.outcome = error.outcome();
        report.message = error.to_string();
        if let Some(log) = &report.log {
            let _ = append_to_log(log, &format!("[docbuild] {}: {error}", error.outcome()));
        }
    }
    // Stopped from outside: the outcome (an infrastructure error) is not the crate's.
    report.interrupted = cancel.is_cancelled() && report.outcome == Outcome::InfrastructureError;
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

/// The steps of one check; each fills in what it learns, and the first failure
/// ends it with its outcome.
async fn run_check(
    options: &CheckOptions,
    cache: &CacheDirs,
    progress: &dyn Progress,
    cancel: &CancellationToken,
    report: &mut CrateReport,
) -> Result<(), BuildError> {
    if let Some(bad) = options.targets.iter().find(|t| !is_target_triple(t)) {
        return Err(InputError::Target(bad.clone()).into());
    }
    let toolchain =
        Toolchain::resolve_remembered(options.toolchain.as_deref(), &cache.toolchain_file())
            .await?;
    tracing::debug!(toolchain = %toolchain.version, "check: toolchain resolved");
    report.toolchain = Some(toolchain.version.clone());
    if !options.targets.is_empty() {
        let known = toolchain.target_list().await?;
        if let Some(unknown) = options.targets.iter().find(|t| !known.contains(t)) {
            return Err(InputError::UnknownTarget {
                target: unknown.clone(),
                toolchain: toolchain.display_name(),
            }
            .into());
        }
    }
    let cargo_home = cache.cargo_home();
    tokio::fs::create_dir_all(&cargo_home)
        .await
        .map_err(BuildError::io("cannot create docbuild's cargo home"))?;
    let mut registries = options.registries.clone();
    if options.project_registries {
        let dir = std::fs::canonicalize(&options.path).unwrap_or_else(|_| options.path.clone());
        registries = registries.with_project(&dir);
    }
    let cargo = HostCargo::new(&toolchain, &cargo_home, &registries, cancel);
    let run = CheckRun {
        options,
        cache,
        progress,
        cancel,
        toolchain: &toolchain,
        cargo: &cargo,
        registries: &registries,
    };
    let result = run.build_package(report).await;
    // What ran on the host, then in the sandbox, as it can be replayed by hand.
    report.commands.splice(0..0, cargo.commands());
    result
}

/// What every step of one check works with.
struct CheckRun<'a> {
    options: &'a CheckOptions,
    cache: &'a CacheDirs,
    progress: &'a dyn Progress,
    cancel: &'a CancellationToken,
    toolchain: &'a Toolchain,
    cargo: &'a HostCargo,
    registries: &'a Registries,
}

impl CheckRun<'_> {
    /// From the package's location to its docs, in a target directory of the budget's size.
    async fn build_package(&self, report: &mut CrateReport) -> Result<(), BuildError> {
        let CheckRun {
            options,
            cache,
            cancel,
            toolchain,
            cargo,
            ..
        } = *self;
        // locate
        let package = LocalPackage::locate(&options.path, cargo).await?;
        tracing::debug!("check: package located");
        report.name = Some(package.name().to_string());
        report.version = Some(package.version());
        report.features = package.features.clone();
        report.package_dir = Some(package.dir.clone());
        if options.about {
            let mut about = package.about.clone();
            if let Some(readme) = package.readme.clone() {
                about = blocking(move || {
                    about.read_readme(&readme);
                    Ok(about)
                })
                .await?;
            }
            report.about = Some(about);
        }

        // plan
        let plan = plan_build(&package, options, toolchain)?;
        report.default_target = Some(plan.default_target.clone());
        if let Some(about) = report.about.as_mut() {
            about.docs_features = Some(crate::about::DocsFeatures {
                features: plan.metadata.features.clone().unwrap_or_default(),
                all_features: plan.metadata.all_features,
                no_default_features: plan.metadata.no_default_features,
            });
        }
        report.warnings = plan
            .metadata
            .unknown_keys
            .iter()
            .map(|key| unknown_key_warning(key, &package))
            .collect();
        let lib_name = package.lib_name.clone().ok_or(BuildError::NoLibrary)?;
        if !toolchain.has_target(&plan.default_target) {
            return Err(BuildError::missing_std(&plan.default_target, toolchain));
        }

        // prepare
        let work = options
            .work_dir
            .clone()
            .unwrap_or_else(|| cache.package_dir(&package));
        let _lock = lock_work_dir(&work).await?;
        let log_path = work.join("build.log");
        tokio::fs::write(&log_path, "")
            .await
            .map_err(BuildError::io("cannot write the log"))?;
        report.log = Some(log_path.clone());
        // The target directory is the only place a build writes: a filesystem of the
        // budget's size, so that no build fills the host's disk.
        let target = TargetDir::prepare(
            &work.join("target"),
            &work.join("target.img"),
            DiskBudget(options.limits.disk_bytes),
            cancel,
        )
        .await?;
        tracing::debug!("check: target directory ready");
        if let Some(reason) = target.fallback_reason() {
            append_to_log(
                &log_path,
                &format!("[docbuild] the disk budget is not enforced: {reason}"),
            )?;
        }
        let mut layered = None;
        let built = self
            .build_in(
                report,
                &package,
                &plan,
                &lib_name,
                &work,
                &target,
                &mut layered,
            )
            .await;
        if let Some(layered) = layered {
            finish_layers(layered, report, cancel, &log_path).await?;
        }
        // Space goes back to the host after a build that used up its budget.
        let released = match &options.keep_mounted {
            _ if report.outcome == Outcome::OutOfDisk => target.discard().await.map_err(Into::into),
            Some(keep) if !cancel.is_cancelled() => leave_mounted(target, keep, &work).await,
            _ => target.release().await.map_err(Into::into),
        };
        tracing::debug!("check: target directory released");
        built?;
        released
    }

    /// The steps after the target directory is ready: prepare, fetch, build, collect.
    /// With a build cache, the target directory is `layered`'s, set here.
    #[allow(clippy::too_many_arguments)]
    async fn build_in(
        &self,
        report: &mut CrateReport,
        package: &LocalPackage,
        plan: &BuildPlan,
        lib_name: &str,
        work: &Path,
        target: &TargetDir,
        layered: &mut Option<LayeredTarget>,
    ) -> Result<(), BuildError> {
        let CheckRun {
            options,
            cache,
            progress,
            cancel,
            toolchain,
            cargo,
            registries,
        } = *self;
        let mut target_dir = target.path().to_path_buf();
        let log_path = work.join("build.log");
        let cargo_home = cache.cargo_home();
        let mode = if package.already_packaged {
            SourceMode::AsIs
        } else {
            options.mode
        };
        progress.step(match mode {
            SourceMode::Package => "packaging",
            SourceMode::AsIs => "copying sources",
        });
        let source_dir = work.join("src");
        let mut source = match &options.packaged {
            Some(archive) => prepare_packaged(&package.id, archive, &source_dir).await?,
            None => prepare_source(package, mode, &source_dir, work, cargo).await?,
        };
        add_packaged_dependencies(&mut source, &options.dependencies).await?;
        tracing::debug!("check: sources prepared");
        let (dir, members) = (source.dir.clone(), options.workspace_members.clone());
        blocking(move || unlock_members(&dir, &members)).await?;

        // fetch; meanwhile, rustdoc's static files and the engine's connection
        progress.step("fetching dependencies");
        let fetch = async {
            if !source.shipped_lockfile {
                cargo
                    .generate_lockfile(&source.manifest(), &source.host_config)
                    .await?;
            }
            let stamp = work.join("fetched");
            let fetched = cargo
                .fetch_unless_fetched(&source.manifest(), &source.host_config, &stamp)
                .await?;
            if !fetched {
                append_to_log(
                    &log_path,
                    "[docbuild] dependencies unchanged since the last fetch: `cargo fetch` skipped",
                )?;
            }
            Ok::<_, BuildError>(())
        };
        let (fetched, reference, sandbox) = tokio::join!(
            fetch,
            reference_static_files(toolchain, cache.root(), cancel),
            Sandbox::connect()
        );
        fetched?;
        tracing::debug!("check: fetched");
        let reference = reference?;
        if let Some(build_cache) = options.build_cache.as_ref().filter(|c| c.enabled())
            && target.mounted()
        {
            match self
                .set_up_layers(
                    build_cache,
                    package,
                    &source,
                    &plan.feature_args(),
                    target,
                    work,
                )
                .await
            {
                Ok(set_up) => {
                    let layers = set_up.layers();
                    append_to_log(
                        &log_path,
                        &format!(
                            "[docbuild] build cache: {} layer(s) of compiled dependencies \
                             under the target directory{}{}",
                            layers.len(),
                            if layers.is_empty() { "" } else { ": " },
                            layers.join(", ")
                        ),
                    )?;
                    target_dir = set_up.path().to_path_buf();
                    *layered = Some(set_up);
                }
                Err(why) => append_to_log(
                    &log_path,
                    &format!("[docbuild] build cache not used: {why}"),
                )?,
            }
        }

        // build
        let user = {
            let (work, source, target, home) = (
                work.to_path_buf(),
                source.dir.clone(),
                target_dir.clone(),
                cargo_home.clone(),
            );
            blocking(move || {
                sandbox_user(&work, &source, &target, &home).map_err(BuildError::io(
                    "cannot give the sandbox access to the sources",
                ))
            })
            .await?
        };
        let sandbox = sandbox?;
        tracing::debug!("check: sandbox ready");
        let env = BuildEnvironment {
            sandbox: &sandbox,
            image: options.image.clone(),
            limits: options.limits.clone(),
            toolchain,
            source: &source.dir,
            target_dir: &target_dir,
            cargo_home: &cargo_home,
            log_path: &log_path,
            user,
            env: registries.sandbox_env(),
            invocation: InvocationOptions {
                jobs: Some(options.limits.cpus.ceil().max(1.0) as u32),
                json_messages: true,
                deny_warnings: options.deny_warnings,
                extern_map: options.extern_map.clone(),
                // Once published, these link to docs.rs like any crate from crates.io.
                extern_html_roots: options
                    .dependencies
                    .iter()
                    .filter_map(|dep| {
                        let lib = dep.lib_name.clone()?;
                        let root =
                            BuildPlan::docs_rs_root(dep.id.name(), &dep.id.version(), "{target}");
                        Some((lib, root))
                    })
                    .collect(),
            },
            cancel,
            progress,
        };
        // A package without dependencies has nothing to compile apart, nor one
        // whose dependencies the layers already hold.
        if let Some(layers) = layered.as_ref()
            && layers.graph.root_runs_code
            && !layers.graph.packages.is_empty()
            && !layers.covers_graph()
        {
            progress.step("compiling dependencies");
            self.compile_dependencies_apart(&env, plan, lib_name, layers, &source, work, report)
                .await?;
        }
        progress.step(&format!("documenting for {}", plan.default_target));
        let mut run = build_target(&env, plan, &plan.default_target, lib_name).await?;
        tracing::debug!("check: built");
        report.commands.push(run.replay.clone());
        run.out_of_disk = !run.report.succeeded() && target.is_full().await?;
        if source.shipped_lockfile && run.outcome() == Outcome::BuildFailed {
            // docs.rs's rule: a shipped lockfile that fails gets one retry with a new one.
            progress.step("retrying with a regenerated Cargo.lock");
            append_to_log(
                &log_path,
                "[docbuild] build failed with the shipped Cargo.lock; regenerating it and trying again",
            )?;
            regenerate_lockfile(cargo, &source).await?;
            report.lockfile_regenerated = true;
            run = build_target(&env, plan, &plan.default_target, lib_name).await?;
            report.commands.push(run.replay.clone());
            run.out_of_disk = !run.report.succeeded() && target.is_full().await?;
        }
        let outcome = run.outcome();
        report.outcome = outcome;
        report.memory_peak_bytes = run.report.memory_peak_bytes;
        report.errors = run.errors.clone();
        report.warnings.extend(run.warnings.iter().cloned());
        report.omitted = run.omitted;
        report.message = if outcome == Outcome::Success {
            "docs built".to_string()
        } else {
            run.failure_message(&options.limits)
        };
        if outcome == Outcome::BuildFailed
            && !is_docs_rs(&options.image)
            && let Some(probe) = &run.build_script_failed
        {
            // The light default image has the host's libraries, not docs.rs's.
            let what = match probe {
                Some(library) => format!("the system library `{library}`"),
                None => "a system library".to_string(),
            };
            report.message = format!(
                "{}; a build script failed, likely probing for {what}, which docs.rs's \
             build environment may have: `docbuild image build`, then check with \
             `--image docsrs`",
                report.message
            );
        }
        report
            .targets
            .push(target_report(&plan.default_target, &run, &options.limits));
        if outcome != Outcome::Success {
            return Ok(());
        }
        build_other_targets(&env, plan, toolchain, lib_name, progress, report).await;

        // collect
        for target in report.targets.iter().filter(|t| t.docs.is_some()) {
            replace_static_files(
                &target_dir,
                Path::new(&plan.doc_dir(&target.target)),
                &reference,
            )
            .await?;
        }
        // The target directory is unmounted after the build: the docs are copied out of
        // it, to `--out` or to the work directory.
        let out = options.out.clone().unwrap_or_else(|| work.join("docs"));
        let writeback = target.start_writeback();
        let copied = copy_docs(report, plan, &target_dir, &out).await?;
        if let Some(writeback) = writeback {
            let _ = writeback.await;
        }
        tracing::debug!("check: docs copied");
        if let Some(line) = copied.dropped_line() {
            append_to_log(&log_path, &line)?;
        }

        // rustdoc JSON, once the HTML docs are out of the target directory (its run
        // starts by removing the doc directory, and cargo removes the crate's HTML).
        if options.rustdoc_json {
            progress.step(&format!("rustdoc JSON for {}", plan.default_target));
            report.json = match make_json(&env, plan, lib_name, work, report).await {
                Ok(json) => json,
                Err(error) => {
                    append_to_log(&log_path, &format!("[docbuild] rustdoc JSON: {error}"))?;
                    None
                }
            };
        }
        Ok(())
    }
}

impl CheckRun<'_> {
    /// The build cache for this build: its dependency graph (`cargo metadata`,
    /// offline, after the fetch, with the features the build turns on: a
    /// dependency behind one of them is compiled, and its code runs), layers it may
    /// use, mounted under the target directory.
    ///
    /// `cargo metadata` resolves features with the dev-dependencies', which a
    /// library's docs do not build unless they scrape examples with them or cargo's
    /// resolver 1 unifies them: otherwise the graph is read from a stub of the
    /// package without dev-dependencies, so that a feature only a dev-dependency
    /// asks for (serde's `derive`, say) sets no layer apart.
    async fn set_up_layers(
        &self,
        build_cache: &BuildCache,
        package: &LocalPackage,
        source: &PreparedSource,
        features: &[String],
        target: &TargetDir,
        work: &Path,
    ) -> Result<LayeredTarget, String> {
        let manifest = tokio::fs::read_to_string(source.manifest())
            .await
            .map_err(|e| format!("cannot read the manifest: {e}"))?;
        let dev = crate::build_cache::scrapes_with_dev_dependencies(&manifest);
        let metadata_of = |manifest: PathBuf| async move {
            self.cargo
                .metadata_with_features(&manifest, &source.host_config, features)
                .await
        };
        let mut from_stub = None;
        if !dev && !crate::build_cache::unifies_dev_features(&manifest) {
            let (from, stub) = (source.dir.clone(), work.join("graph"));
            let written = blocking(move || {
                crate::build_cache::write_stub(&from, &stub, false)
                    .map_err(BuildError::io("cannot write the package's stub"))
            })
            .await;
            if written.is_ok() {
                from_stub = metadata_of(work.join("graph/Cargo.toml")).await.ok();
            }
        }
        // Else, or when the stub cannot be resolved: the package's own manifest.
        let metadata = match from_stub {
            Some(metadata) => metadata,
            None => metadata_of(source.manifest())
                .await
                .map_err(|e| e.to_string())?,
        };
        let mut graph = DependencyGraph::from_metadata(&metadata, dev)
            .ok_or("cargo metadata gave no dependency graph")?;
        // The stub has no build script; the package may.
        graph.root_runs_code |= package.build_script;
        let key = BuildCache::key(
            &self.toolchain.version,
            &format!("{:?}", self.options.image),
            (SANDBOX_UID, SANDBOX_UID),
        );
        let made_by = metadata
            .root_package()
            .map(|p| format!("{} {}", p.name, p.version))
            .unwrap_or_default();
        LayeredTarget::set_up(
            build_cache,
            key,
            graph,
            target.path(),
            &work.join("layered"),
            made_by,
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// Compiles the dependencies for a stub of the package (no build script, an
    /// empty library) and keeps them as a layer, before any code of the package
    /// runs; then forgets the stub's own units. Cargo's rustdoc is `/bin/true` for
    /// the stub: rustdoc would load every proc macro the package names, and with
    /// them code the dependencies' compilation never ran.
    #[allow(clippy::too_many_arguments)]
    async fn compile_dependencies_apart(
        &self,
        env: &BuildEnvironment<'_>,
        plan: &BuildPlan,
        lib_name: &str,
        layers: &LayeredTarget,
        source: &PreparedSource,
        work: &Path,
        report: &mut CrateReport,
    ) -> Result<(), BuildError> {
        let stub = work.join("stub");
        let (from, to) = (source.dir.clone(), stub.clone());
        blocking(move || {
            crate::build_cache::write_stub(&from, &to, true)
                .and_then(|()| make_readable(&to))
                .map_err(BuildError::io("cannot write the package's stub"))
        })
        .await?;
        let mut stub_env = env.with_source(&stub);
        stub_env
            .env
            .push(("RUSTDOC".to_string(), "/bin/true".to_string()));
        let run = build_dependencies(&stub_env, plan, &plan.default_target, lib_name).await?;
        report.memory_peak_bytes = report.memory_peak_bytes.max(run.report.memory_peak_bytes);
        if self.cancel.is_cancelled() {
            return Ok(());
        }
        // Only a run that succeeded with no docs for the stub ran no rustdoc: else
        // whatever a rustdoc loaded may have run, and the layer records all the
        // code the build may run.
        let ran = if run.report.succeeded() && run.docs.is_none() {
            CodeRan::ForDependencies
        } else {
            CodeRan::WholeBuild
        };
        append_to_log(env.log_path, &keep_layer(layers, ran).await)?;
        layers
            .forget_root_units()
            .await
            .map_err(BuildError::io("cannot clear the stub's units"))
    }
}

/// Keeps a layer; the log's line about it.
async fn keep_layer(layers: &LayeredTarget, ran: CodeRan) -> String {
    let started = Instant::now();
    let kept = layers.keep_layer(ran).await;
    match kept {
        Ok(Some((id, bytes))) => format!(
            "[docbuild] build cache: kept {} KiB of compiled dependencies as layer {id} \
             ({} ms)",
            bytes >> 10,
            started.elapsed().as_millis()
        ),
        Ok(None) => "[docbuild] build cache: nothing new compiled to keep".to_string(),
        Err(error) => format!("[docbuild] build cache: cannot keep a layer: {error}"),
    }
}

/// After the build: keeps what it compiled as a layer when documenting the package
/// ran no code the dependencies' compilation did not (else that was done before it
/// did), and unmounts the layers.
async fn finish_layers(
    layered: LayeredTarget,
    report: &CrateReport,
    cancel: &CancellationToken,
    log_path: &Path,
) -> Result<(), BuildError> {
    // A retry with a regenerated lockfile compiled other versions than the graph
    // holds, and ran their code: nothing of that build may be kept.
    let keep = !layered.graph.root_runs_code
        && !report.lockfile_regenerated
        && !cancel.is_cancelled()
        && !matches!(
            report.outcome,
            Outcome::OutOfDisk | Outcome::InfrastructureError
        );
    if keep {
        append_to_log(
            log_path,
            &keep_layer(&layered, CodeRan::ForDependencies).await,
        )?;
    }
    layered
        .tear_down()
        .await
        .map_err(BuildError::io("cannot unmount the build's layers"))
}

/// The largest rustdoc JSON kept.
pub const MAX_JSON_BYTES: u64 = 512 << 20;

/// Runs rustdoc JSON for the default target and copies the file out of the target
/// directory to `work/json/`, without following links; `None` when it failed (the
/// log says why). Never changes the build's outcome.
async fn make_json(
    env: &BuildEnvironment<'_>,
    plan: &BuildPlan,
    lib_name: &str,
    work: &Path,
    report: &mut CrateReport,
) -> Result<Option<JsonReport>, BuildError> {
    let target = plan.default_target.clone();
    // An earlier check's JSON must not pass for this one's.
    let dir = work.join("json");
    if tokio::fs::symlink_metadata(&dir).await.is_ok() {
        tokio::fs::remove_dir_all(&dir)
            .await
            .map_err(BuildError::io("cannot remove the earlier rustdoc JSON"))?;
    }
    let run = build_json(env, plan, &target, lib_name).await?;
    report.commands.push(run.replay.clone());
    report.memory_peak_bytes = report.memory_peak_bytes.max(run.report.memory_peak_bytes);
    let duration_ms = run.report.duration.as_millis() as u64;
    let Some(file) = run.docs.clone().filter(|_| run.report.succeeded()) else {
        let why = run.failure_message(&env.limits);
        append_to_log(
            env.log_path,
            &format!("[docbuild] rustdoc JSON failed: {why}"),
        )?;
        return Ok(None);
    };
    let relative = file
        .strip_prefix(env.target_dir)
        .map_err(|_| {
            BuildError::Io(
                "JSON outside the target directory",
                std::io::Error::other(""),
            )
        })?
        .to_path_buf();
    let to = dir.join(format!("{lib_name}.json"));
    let (root, copy_to) = (env.target_dir.to_path_buf(), to.clone());
    let copied = blocking(move || {
        std::fs::create_dir_all(&dir).map_err(BuildError::io("cannot keep the rustdoc JSON"))?;
        let size = crate::copy::copy_one_out(&root, &relative, &copy_to, MAX_JSON_BYTES)
            .map_err(BuildError::Output)?;
        let Some(size) = size else { return Ok(None) };
        let version = format_version(&copy_to)
            .map_err(|e| BuildError::Io("the rustdoc JSON is not valid", e))?;
        Ok(Some((size, version)))
    })
    .await?;
    let Some((size_bytes, format_version)) = copied else {
        append_to_log(
            env.log_path,
            "[docbuild] rustdoc JSON failed: no JSON file to read",
        )?;
        return Ok(None);
    };
    append_to_log(
        env.log_path,
        &format!(
            "[docbuild] rustdoc JSON: format version {format_version}, {size_bytes} bytes, {} ms",
            duration_ms
        ),
    )?;
    Ok(Some(JsonReport {
        target,
        format_version,
        size_bytes,
        duration_ms,
        path: Some(to),
    }))
}

/// rustdoc JSON's `format_version`, the whole file read as JSON (other fields skipped).
pub fn format_version(path: &Path) -> std::io::Result<u32> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        format_version: u32,
    }
    let file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let versioned: Versioned = serde_json::from_reader(file).map_err(std::io::Error::other)?;
    Ok(versioned.format_version)
}

/// docs.rs's metadata, with `--target` arguments in place of its targets.
fn plan_build(
    package: &LocalPackage,
    options: &CheckOptions,
    toolchain: &Toolchain,
) -> Result<BuildPlan, BuildError> {
    let mut metadata =
        DocsRsMetadata::from_package_metadata(&package.metadata).map_err(InputError::Metadata)?;
    if !options.targets.is_empty() {
        metadata.default_target = None;
        metadata.targets = Some(options.targets.clone());
        metadata.additional_targets.clear();
    }
    Ok(BuildPlan::new(
        metadata,
        package.proc_macro,
        &toolchain.host,
    ))
}

/// One check of a work directory at a time: they share its target directory. The
/// lock is held as long as the returned file lives.
async fn lock_work_dir(work: &Path) -> Result<std::fs::File, BuildError> {
    let work = work.to_path_buf();
    blocking(move || {
        std::fs::create_dir_all(&work)
            .map_err(BuildError::io("cannot create the work directory"))?;
        let lock = std::fs::File::create(work.join("lock"))
            .map_err(BuildError::io("cannot lock the work directory"))?;
        lock.lock()
            .map_err(BuildError::io("cannot lock the work directory"))?;
        Ok(lock)
    })
    .await
}

async fn regenerate_lockfile(cargo: &HostCargo, source: &PreparedSource) -> Result<(), BuildError> {
    tokio::fs::remove_file(source.dir.join("Cargo.lock"))
        .await
        .map_err(BuildError::io("cannot remove Cargo.lock"))?;
    cargo
        .generate_lockfile(&source.manifest(), &source.host_config)
        .await?;
    cargo.fetch(&source.manifest(), &source.host_config).await?;
    let dir = source.dir.clone();
    blocking(move || make_readable(&dir).map_err(BuildError::io("cannot make sources readable")))
        .await
}

/// Extra targets, built only after the default target succeeded; their failures
/// never fail the build.
async fn build_other_targets(
    env: &BuildEnvironment<'_>,
    plan: &BuildPlan,
    toolchain: &Toolchain,
    lib_name: &str,
    progress: &dyn Progress,
    report: &mut CrateReport,
) {
    for target in &plan.other_targets {
        if !toolchain.has_target(target) {
            report.targets.push(TargetReport {
                target: target.clone(),
                outcome: Outcome::InfrastructureError,
                duration_ms: 0,
                docs: None,
                message: Some(BuildError::missing_std(target, toolchain).to_string()),
            });
            continue;
        }
        progress.step(&format!("documenting for {target}"));
        match build_target(env, plan, target, lib_name).await {
            Ok(run) => {
                report.commands.push(run.replay.clone());
                report.memory_peak_bytes =
                    report.memory_peak_bytes.max(run.report.memory_peak_bytes);
                report
                    .targets
                    .push(target_report(target, &run, &env.limits));
            }
            Err(error) => report.targets.push(TargetReport {
                target: target.clone(),
                outcome: error.outcome(),
                duration_ms: 0,
                docs: None,
                message: Some(error.to_string()),
            }),
        }
    }
    let failed: Vec<String> = report
        .targets
        .iter()
        .filter(|t| t.outcome != Outcome::Success)
        .map(|t| match &t.message {
            Some(why) => format!("{} ({why})", t.target),
            None => format!("{} ({})", t.target, t.outcome),
        })
        .collect();
    report.message = match failed.len() {
        0 => return,
        1 => format!("docs built; 1 other target failed: {}", failed[0]),
        n => format!(
            "docs built; {n} other targets failed: {}",
            failed.join("; ")
        ),
    };
}

/// docs.rs ignores keys it does not know; a typo (`all-feature`) would pass unseen,
/// so each is named in a warning, with the key meant when one is close.
fn unknown_key_warning(key: &str, package: &LocalPackage) -> ErrorDetail {
    let suggestion = crate::metadata::closest_key(key)
        .map(|known| format!(" (did you mean `{known}`?)"))
        .unwrap_or_default();
    let message = format!(
        "unknown key `{key}` in [package.metadata.docs.rs]: docs.rs ignores it{suggestion}"
    );
    let manifest = package
        .manifest
        .strip_prefix(&package.dir)
        .unwrap_or(&package.manifest)
        .display()
        .to_string();
    ErrorDetail {
        rendered: Some(format!("warning: {message}\n --> {manifest}")),
        message,
        file: Some(manifest),
        line: None,
        lint: None,
    }
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

/// Chooses the sandbox's user and gives it what it needs: the host user itself when
/// that is not root; otherwise a fixed unprivileged uid, which gets the target
/// directory and read access to sources and dependencies.
fn sandbox_user(
    work: &Path,
    source: &Path,
    target_dir: &Path,
    cargo_home: &Path,
) -> std::io::Result<(u32, u32)> {
    let me = std::fs::metadata(work)?;
    if me.uid() != 0 {
        return Ok((me.uid(), me.gid()));
    }
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

/// Copies each built target's docs into `out` (the default target's at the top,
/// others in `<target>/`) through the link-refusing copier.
async fn copy_docs(
    report: &mut CrateReport,
    plan: &BuildPlan,
    target_dir: &Path,
    out: &Path,
) -> Result<Copied, BuildError> {
    let mut total = Copied::default();
    for (index, target) in report.targets.iter_mut().enumerate() {
        let Some(docs) = &target.docs else { continue };
        let relative_dir = PathBuf::from(plan.doc_dir(&target.target));
        let to = if index == 0 {
            out.to_path_buf()
        } else {
            out.join(&target.target)
        };
        let index_html = docs
            .strip_prefix(target_dir.join(&relative_dir))
            .map_err(|_| {
                BuildError::Io(
                    "docs outside the target directory",
                    std::io::Error::other(""),
                )
            })?
            .to_path_buf();
        let (root, dest) = (target_dir.to_path_buf(), to.clone());
        let lib = index_html
            .components()
            .next()
            .map(|c| PathBuf::from(c.as_os_str()));
        let copied = blocking(move || {
            // Replace this crate's earlier copy rather than merge into it (unchanged
            // files are kept, not written again); nothing else in `out` is touched.
            copy_output_replacing(&root, &relative_dir, &dest, &[], lib.as_deref())
                .map_err(BuildError::Output)
        })
        .await?;
        total.files += copied.files;
        total.bytes += copied.bytes;
        total.dropped_count += copied.dropped_count;
        total.dropped.extend(copied.dropped);
        target.docs = Some(to.join(index_html));
    }
    Ok(total)
}
