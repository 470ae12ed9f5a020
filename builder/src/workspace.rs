//! `check --workspace`: every publishable member of a workspace, each built from its
//! package as docs.rs would build it, in the order they can be published.
//!
//! Members are packaged together (`cargo package -p …`), which resolves an unpublished
//! member's dependency on another to that member's package. Each member is then built
//! like a single `check` from its `.crate`, with its unpublished dependencies patched in
//! as packaged. Stages: a member's stage is one more than the highest stage of the
//! members it depends on (normal and build dependencies; dev-dependencies do not order
//! publishing, as in cargo). A member whose dependency failed is not built.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cargo_metadata::{DependencyKind, Package};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::check::{CacheDirs, CheckOptions, Progress, check};
use crate::error::BuildError;
use crate::host_cargo::{HostCargo, HostFailure};
use crate::identity::CrateVersion;
use crate::outcome::{CrateReport, Outcome};
use crate::prepare::{InputError, PackagedDependency, find_manifest};
use crate::toolchain::Toolchain;

/// Which members to check.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every publishable member.
    All,
    /// These members (by package name).
    Packages(Vec<String>),
}

/// A member left out, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
    /// The member's directory.
    #[serde(skip)]
    pub dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct WorkspaceReport {
    /// In stage order.
    pub reports: Vec<CrateReport>,
    pub skipped: Vec<Skipped>,
}

/// A member's progress, named.
struct MemberProgress {
    name: String,
    inner: Arc<dyn Progress>,
}

impl Progress for MemberProgress {
    fn step(&self, message: &str) {
        self.inner.step(&format!("{}: {message}", self.name));
    }

    fn log(&self, line: &str) {
        for line in line.lines() {
            self.inner.log(&format!("[{}] {line}", self.name));
        }
    }
}

/// One publishable member.
#[derive(Debug, Clone)]
struct Member {
    name: String,
    id: CrateVersion,
    dir: PathBuf,
    lib_name: Option<String>,
    /// Names of the publishable members it depends on (normal and build).
    depends_on: BTreeSet<String>,
    stage: u32,
}

/// Checks the members of the workspace at `base.path`. `jobs` members of a stage are
/// built at once, each in a work directory of its own.
pub async fn check_workspace(
    base: &CheckOptions,
    selection: &Selection,
    jobs: usize,
    cache: &CacheDirs,
    progress: Arc<dyn Progress>,
    cancel: &CancellationToken,
) -> Result<WorkspaceReport, BuildError> {
    let toolchain =
        Toolchain::resolve_remembered(base.toolchain.as_deref(), &cache.toolchain_file()).await?;
    // From a member's directory (or below it) too, as cargo finds its workspace.
    let found = find_manifest(&base.path)?;
    let found_dir = found.parent().map(Path::to_path_buf).unwrap_or_default();
    let cargo_home = cache.cargo_home();
    tokio::fs::create_dir_all(&cargo_home)
        .await
        .map_err(BuildError::io("cannot create docbuild's cargo home"))?;
    let cargo = HostCargo::new(
        &toolchain,
        &cargo_home,
        &base.registries.clone().with_project(&found_dir),
        cancel,
    );
    let metadata = cargo
        .read_manifest(&found)
        .await
        .map_err(|error| match error.failure {
            HostFailure::Crate => InputError::BrokenManifest(found.clone(), error.message).into(),
            _ => BuildError::HostCargo(error),
        })?;
    let root = std::fs::canonicalize(metadata.workspace_root.as_std_path())
        .unwrap_or_else(|_| metadata.workspace_root.clone().into_std_path_buf());
    let registries = base.registries.clone().with_project(&root);
    let cargo = HostCargo::new(&toolchain, &cargo_home, &registries, cancel);
    let manifest = root.join("Cargo.toml");
    let packages: Vec<&Package> = metadata.workspace_packages();
    let (members, mut skipped) = publishable_members(&packages)?;

    let wanted: BTreeSet<String> = match selection {
        Selection::All => members.keys().cloned().collect(),
        Selection::Packages(names) => {
            let mut wanted = BTreeSet::new();
            for name in names {
                if members.contains_key(name) {
                    wanted.insert(name.clone());
                } else if !skipped.iter().any(|s| &s.name == name) {
                    return Err(InputError::NotAMember(name.clone(), root.clone()).into());
                }
            }
            skipped.retain(|s| names.contains(&s.name));
            // Only unpublished members asked for: checking nothing must not pass for
            // a success.
            if wanted.is_empty()
                && let Some(unpublished) = skipped.first()
            {
                return Err(InputError::NotPublished {
                    name: unpublished.name.clone(),
                    reason: unpublished.reason.clone(),
                    dir: unpublished.dir.clone(),
                }
                .into());
            }
            wanted
        }
    };

    // Package every publishable member together, so that they resolve to each other.
    let work = cache.workspace_dir(&root);
    tokio::fs::create_dir_all(&work)
        .await
        .map_err(BuildError::io(
            "cannot create the workspace's work directory",
        ))?;
    progress.step("packaging the workspace");
    let names: Vec<&str> = members.keys().map(String::as_str).collect();
    let package_dir = work.join("package");
    let packaging = package_members(&cargo, &manifest, &members, &names, &package_dir).await;

    let mut order: Vec<&Member> = members
        .values()
        .filter(|m| wanted.contains(&m.name))
        .collect();
    order.sort_by(|a, b| (a.stage, &a.name).cmp(&(b.stage, &b.name)));
    let logs = work.join("logs");
    tokio::fs::create_dir_all(&logs)
        .await
        .map_err(BuildError::io(
            "cannot create the workspace's log directory",
        ))?;

    let mut done: BTreeMap<String, CrateReport> = BTreeMap::new();
    // Work directories, one per build at once: members built one after the other in
    // the same directory share its target directory, and so their dependencies.
    let jobs = jobs.max(1);
    let slots = Arc::new(Semaphore::new(jobs));
    let free: Arc<std::sync::Mutex<Vec<PathBuf>>> = Arc::new(std::sync::Mutex::new(
        (0..jobs).map(|n| work.join(format!("slot-{n}"))).collect(),
    ));
    let stages: BTreeSet<u32> = order.iter().map(|m| m.stage).collect();
    for stage in stages {
        let mut running = Vec::new();
        for member in order.iter().filter(|m| m.stage == stage) {
            let mut report = if let Some(error) = packaging.get(&member.name) {
                CrateReport::early(error.outcome(), error.to_string())
            } else if let Some((dep, failed)) = member.depends_on.iter().find_map(|dep| {
                done.get(dep)
                    .filter(|r| r.outcome != Outcome::Success)
                    .map(|r| (dep, r))
            }) {
                let mut blocked = CrateReport::early(
                    failed.outcome,
                    format!(
                        "blocked: depends on `{dep}`, which failed: {}",
                        failed.message
                    ),
                );
                blocked.default_target = failed.default_target.clone();
                blocked
            } else {
                let mut options =
                    member_options(base, member, &members, &package_dir, &work.join("docs"));
                let (slots, free, cache, cancel) =
                    (slots.clone(), free.clone(), cache.clone(), cancel.clone());
                let progress = MemberProgress {
                    name: member.name.clone(),
                    inner: progress.clone(),
                };
                let log = logs.join(format!("{}.log", member.name));
                running.push((
                    member.name.clone(),
                    member.stage,
                    tokio::spawn(async move {
                        let _permit = slots.acquire_owned().await;
                        let slot = free.lock().ok().and_then(|mut f| f.pop());
                        options.work_dir = slot.clone();
                        let mut report = check(&options, &cache, &progress, &cancel).await;
                        // The slot's log is the next member's soon; keep this one's.
                        if let Some(from) = &report.log
                            && std::fs::copy(from, &log).is_ok()
                        {
                            report.log = Some(log);
                        }
                        if let (Some(slot), Ok(mut free)) = (slot, free.lock()) {
                            free.push(slot);
                        }
                        report
                    }),
                ));
                continue;
            };
            report.name = Some(member.name.clone());
            report.version = Some(member.id.version());
            report.toolchain = Some(toolchain.version.clone());
            report.stage = Some(member.stage);
            done.insert(member.name.clone(), report);
        }
        if !running.is_empty() {
            progress.step(&format!(
                "stage {stage}: documenting {} crate(s)",
                running.len()
            ));
        }
        for (name, stage, task) in running {
            let mut report = task.await.unwrap_or_else(|e| {
                CrateReport::early(
                    Outcome::InfrastructureError,
                    format!("the build task failed: {e}"),
                )
            });
            report.stage = Some(stage);
            done.insert(name, report);
        }
    }
    let reports = order
        .iter()
        .filter_map(|member| done.remove(&member.name))
        .collect();
    Ok(WorkspaceReport { reports, skipped })
}

/// The members that can be published to crates.io, with their stages, and those
/// that cannot.
fn publishable_members(
    packages: &[&Package],
) -> Result<(BTreeMap<String, Member>, Vec<Skipped>), BuildError> {
    let mut skipped = Vec::new();
    let mut members = BTreeMap::new();
    for package in packages {
        let reason = match &package.publish {
            Some(registries) if registries.is_empty() => Some("publish = false".to_string()),
            Some(registries) if !registries.iter().any(|r| r == crate::config::CRATES_IO) => {
                Some(format!("publish = {registries:?} excludes crates-io"))
            }
            _ => None,
        };
        if let Some(reason) = reason {
            skipped.push(Skipped {
                name: package.name.to_string(),
                reason,
                dir: package
                    .manifest_path
                    .parent()
                    .map(|dir| dir.as_std_path().to_path_buf())
                    .unwrap_or_default(),
            });
            continue;
        }
        let lib = package.targets.iter().find(|t| {
            t.is_lib()
                || t.is_rlib()
                || t.is_proc_macro()
                || t.is_dylib()
                || t.is_cdylib()
                || t.is_staticlib()
        });
        members.insert(
            package.name.to_string(),
            Member {
                name: package.name.to_string(),
                id: CrateVersion::new(&package.name, &package.version.to_string())?,
                dir: package
                    .manifest_path
                    .parent()
                    .map(|dir| dir.as_std_path().to_path_buf())
                    .unwrap_or_default(),
                lib_name: lib.map(|t| t.name.replace('-', "_")),
                depends_on: BTreeSet::new(),
                stage: 0,
            },
        );
    }
    let names: BTreeSet<String> = members.keys().cloned().collect();
    for package in packages {
        let Some(member) = members.get_mut(package.name.as_str()) else {
            continue;
        };
        member.depends_on = package
            .dependencies
            .iter()
            .filter(|dep| dep.path.is_some() && dep.kind != DependencyKind::Development)
            .map(|dep| dep.name.clone())
            .filter(|name| names.contains(name) && *name != package.name.as_str())
            .collect();
    }
    assign_stages(&mut members);
    Ok((members, skipped))
}

/// Stage = 1 + the highest stage among dependencies. Normal and build dependencies
/// between members cannot form a cycle (cargo refuses one), so this terminates; a
/// member caught in one anyway is put last.
fn assign_stages(members: &mut BTreeMap<String, Member>) {
    let mut stages: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..=members.len() {
        let mut changed = false;
        for member in members.values() {
            if stages.contains_key(&member.name) {
                continue;
            }
            let deps: Option<Vec<u32>> = member
                .depends_on
                .iter()
                .map(|d| stages.get(d).copied())
                .collect();
            if let Some(deps) = deps {
                stages.insert(member.name.clone(), 1 + deps.into_iter().max().unwrap_or(0));
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let last = stages.values().max().copied().unwrap_or(0) + 1;
    for member in members.values_mut() {
        member.stage = stages.get(&member.name).copied().unwrap_or(last);
    }
}

/// Packages the members; returns the error of each member that could not be packaged
/// (classified like any host cargo failure: a registry that does not answer is not
/// the member's fault).
/// When packaging them together fails, each is packaged with its own dependencies to
/// find which failed.
async fn package_members(
    cargo: &HostCargo,
    manifest: &Path,
    members: &BTreeMap<String, Member>,
    names: &[&str],
    target_dir: &Path,
) -> BTreeMap<String, BuildError> {
    if names.is_empty() || cargo.package(manifest, names, target_dir).await.is_ok() {
        return BTreeMap::new();
    }
    let mut failed = BTreeMap::new();
    for name in names {
        let mut with_deps: Vec<&str> = transitive_dependencies(members, name).into_iter().collect();
        with_deps.push(name);
        if let Err(error) = cargo.package(manifest, &with_deps, target_dir).await {
            failed.insert(name.to_string(), BuildError::from(error));
        }
    }
    failed
}

fn transitive_dependencies<'a>(
    members: &'a BTreeMap<String, Member>,
    name: &str,
) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![name];
    while let Some(next) = stack.pop() {
        if let Some(member) = members.get(next) {
            for dep in &member.depends_on {
                if seen.insert(dep.as_str()) {
                    stack.push(dep);
                }
            }
        }
    }
    seen
}

fn member_options(
    base: &CheckOptions,
    member: &Member,
    members: &BTreeMap<String, Member>,
    package_dir: &Path,
    docs_dir: &Path,
) -> CheckOptions {
    let archive = |id: &CrateVersion| {
        package_dir
            .join("package")
            .join(format!("{}.crate", id.archive_prefix()))
    };
    let dependencies = transitive_dependencies(members, &member.name)
        .into_iter()
        .filter_map(|name| members.get(name))
        .map(|dep| PackagedDependency {
            id: dep.id.clone(),
            lib_name: dep.lib_name.clone(),
            archive: archive(&dep.id),
        })
        .collect();
    CheckOptions {
        path: member.dir.clone(),
        project_registries: true,
        packaged: (base.mode == crate::prepare::SourceMode::Package).then(|| archive(&member.id)),
        dependencies,
        workspace_members: members.keys().cloned().collect(),
        // Members share target directories, and each build empties the doc
        // directory, so every member's docs are kept apart.
        out: Some(
            base.out
                .clone()
                .unwrap_or_else(|| docs_dir.to_path_buf())
                .join(&member.name),
        ),
        ..base.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, deps: &[&str]) -> (String, Member) {
        (
            name.to_string(),
            Member {
                name: name.to_string(),
                id: CrateVersion::new(name, "0.1.0").unwrap(),
                dir: PathBuf::new(),
                lib_name: Some(name.replace('-', "_")),
                depends_on: deps.iter().map(|d| d.to_string()).collect(),
                stage: 0,
            },
        )
    }

    #[test]
    fn stages_follow_dependencies() {
        let mut members: BTreeMap<String, Member> = [
            member("core", &[]),
            member("macros", &[]),
            member("io", &["core"]),
            member("app", &["io", "macros"]),
            member("cli", &["app", "core"]),
        ]
        .into_iter()
        .collect();
        assign_stages(&mut members);
        let stage = |name: &str| members[name].stage;
        assert_eq!((stage("core"), stage("macros")), (1, 1));
        assert_eq!(stage("io"), 2);
        assert_eq!(stage("app"), 3);
        assert_eq!(stage("cli"), 4);
        assert_eq!(
            transitive_dependencies(&members, "cli"),
            ["app", "core", "io", "macros"].into_iter().collect()
        );
    }
}
