//! An operator's operations on the queue and the stored builds, for the command line
//! and the API alike: queueing a registry crate (its newest version when none is
//! named), rebuilding a release, removing a job, deleting a release's docs.

use std::path::{Path, PathBuf};

use crate::config::{CRATES_IO, LOCAL};
use crate::copy::copy_sources;
use crate::identity::{CrateId, CrateName, CrateVersion, RegistryName};
use crate::outcome::{Failure, Outcome};
use crate::queue::{BuildRecord, Job, PRIORITY_NEW, PRIORITY_REBUILD, QueueError, blocking};
use crate::registry::{LookupError, RegistryIndex};
use crate::worker::Service;

/// A job queued, or found already queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    pub id: i64,
    /// False when a job of the same release was queued or running already.
    pub new: bool,
}

/// What deleting a release's docs removed.
#[derive(Debug, Clone, PartialEq)]
pub struct Deleted {
    pub builds: Vec<BuildRecord>,
    pub bytes: u64,
}

fn invalid(message: impl std::fmt::Display) -> Failure {
    Failure::new(Outcome::InvalidInput, message)
}

fn infrastructure(error: impl std::fmt::Display) -> Failure {
    Failure::new(Outcome::InfrastructureError, error)
}

fn queue_failure(error: QueueError) -> Failure {
    match error {
        QueueError::NoSuchJob(_) | QueueError::Running(_) => invalid(error),
        _ => infrastructure(error),
    }
}

impl Service {
    /// A registry by the name cargo gives it: `crates-io`, or one defined in cargo's
    /// configuration or `docbuild.toml`.
    pub fn registry(&self, name: &str) -> Result<RegistryName, Failure> {
        let registry = RegistryName::new(name).map_err(invalid)?;
        if name != CRATES_IO && self.config.registries().get(name).is_none() {
            return Err(invalid(format!(
                "unknown registry `{name}`: name its index under [registries] in docbuild.toml or in cargo's configuration"
            )));
        }
        Ok(registry)
    }

    /// Queues a registry crate: `version` if given (refused when the registry's index
    /// says it has no such version), else its newest version. A registry that cannot
    /// be asked does not stop a named version from being queued: the worker retries.
    /// The second value is a warning worth showing.
    pub async fn enqueue_crate(
        &self,
        registry: &RegistryName,
        name: &CrateName,
        version: Option<&str>,
    ) -> Result<(Queued, Option<String>), Failure> {
        let index = RegistryIndex::of(registry, &self.config.registries());
        let mut warning = None;
        let krate = match version {
            Some(version) => {
                let krate = CrateVersion::new(name.as_str(), version).map_err(invalid)?;
                if let Some(index) = &index {
                    match index.listing(&krate).await {
                        Ok(listing) => {
                            if let Some(reason) = listing.reason(&krate, registry) {
                                return Err(invalid(reason));
                            }
                        }
                        Err(error) => {
                            warning = Some(format!(
                                "queued without checking that the version exists: {error}"
                            ))
                        }
                    }
                }
                krate
            }
            None => {
                let index =
                    index.ok_or_else(|| invalid(format!("unknown registry `{registry}`")))?;
                match index.newest(name).await {
                    Ok(Some(newest)) => newest,
                    Ok(None) => {
                        return Err(invalid(format!(
                            "no crate `{name}` with a version to build in registry `{registry}`"
                        )));
                    }
                    Err(error @ LookupError::GitIndex(_)) => return Err(invalid(error)),
                    Err(error) => return Err(infrastructure(error)),
                }
            }
        };
        let (queue, registry, krate) = (self.queue.clone(), registry.clone(), krate.clone());
        let queued = blocking(move || {
            queue.enqueue(
                registry.as_str(),
                krate.name(),
                &krate.version(),
                PRIORITY_NEW,
            )
        })
        .await
        .map_err(infrastructure)?;
        Ok((
            Queued {
                id: queued.0,
                new: queued.1,
            },
            warning,
        ))
    }

    /// The release `krate` names: in `registry` if given, else in the one registry
    /// the queue knows it from.
    pub fn release(
        &self,
        krate: &CrateVersion,
        registry: Option<&str>,
    ) -> Result<CrateId, Failure> {
        let known = self
            .queue
            .registries_of(krate.name(), &krate.version())
            .map_err(infrastructure)?;
        let registry = match registry {
            Some(registry) => registry.to_string(),
            None => match known.as_slice() {
                [only] => only.clone(),
                [] => {
                    return Err(invalid(format!(
                        "docbuild knows no release {krate}: queue it with `docbuild queue add`"
                    )));
                }
                several => {
                    return Err(invalid(format!(
                        "{krate} is known from registries {}: name one with --registry",
                        several.join(", ")
                    )));
                }
            },
        };
        if !known.contains(&registry) {
            return Err(invalid(format!(
                "docbuild knows no release {krate} of registry `{registry}`"
            )));
        }
        CrateId::new(&registry, krate.name(), &krate.version()).map_err(invalid)
    }

    /// Queues a release docbuild knows again, after new releases. A local package
    /// is rebuilt from the package its newest job kept.
    pub async fn rebuild(&self, id: &CrateId) -> Result<Queued, Failure> {
        let (name, version) = (id.krate.name().to_string(), id.krate.version());
        let registry = id.registry.as_str().to_string();
        let kept = if registry == LOCAL {
            let jobs = self
                .queue
                .jobs_of(&registry, &name, &version)
                .map_err(infrastructure)?;
            let file = jobs
                .iter()
                .filter_map(|job| job.crate_file.clone())
                .find(|file| file.exists())
                .ok_or_else(|| {
                    invalid(format!(
                        "the package of {} is no longer kept: queue its directory again",
                        id.krate
                    ))
                })?;
            Some(file)
        } else {
            None
        };
        let (queue, r, n, v) = (self.queue.clone(), registry.clone(), name, version);
        let (job, new) = blocking(move || queue.enqueue(&r, &n, &v, PRIORITY_REBUILD))
            .await
            .map_err(infrastructure)?;
        if let (Some(file), true) = (kept, new) {
            let dest = self.data.job_dir(job);
            let copied = blocking(move || copy_package(&file, &dest)).await;
            match copied.and_then(|file| {
                self.queue
                    .set_crate_file(job, &file)
                    .map_err(|e| e.to_string())
            }) {
                Ok(()) => {}
                Err(error) => {
                    let _ = self.queue.forget(job);
                    return Err(infrastructure(format!(
                        "cannot keep the package for the rebuild: {error}"
                    )));
                }
            }
        }
        Ok(Queued { id: job, new })
    }

    /// Removes a job that is not running, and the package a local job kept.
    pub async fn remove_job(&self, id: i64) -> Result<Job, Failure> {
        let queue = self.queue.clone();
        let job = blocking(move || queue.remove(id))
            .await
            .map_err(queue_failure)?;
        let dir = self.data.job_dir(id);
        let _ = tokio::fs::remove_dir_all(dir).await;
        Ok(job)
    }

    /// Deletes every stored build of a release (docs, logs, records), unless a job of
    /// it is running. The viewer stops serving it at once.
    pub async fn delete_docs(&self, id: &CrateId) -> Result<Deleted, Failure> {
        let (queue, key) = (self.queue.clone(), id.clone());
        let ids: Vec<i64> = blocking(move || queue.builds())
            .await
            .map_err(infrastructure)?
            .into_iter()
            .filter(|b| {
                b.registry == key.registry.as_str()
                    && b.name == key.krate.name()
                    && b.version == key.krate.version()
            })
            .map(|b| b.id)
            .collect();
        if ids.is_empty() {
            return Err(invalid(format!(
                "no stored build of {} (registry `{}`)",
                id.krate, id.registry
            )));
        }
        let queue = self.queue.clone();
        let builds = blocking(move || queue.delete_builds(&ids))
            .await
            .map_err(queue_failure)?;
        let dirs: Vec<PathBuf> = builds
            .iter()
            .map(|b| self.data.build_dir(id, b.id))
            .collect();
        let release_dir = self.data.build_dir(id, 0).parent().map(Path::to_path_buf);
        let bytes = blocking(move || {
            let mut bytes = 0;
            for dir in dirs {
                bytes += crate::gc::disk_usage(&dir);
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => {}
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => return Err(error.to_string()),
                }
            }
            // The release's and the crate's directories, once empty.
            if let Some(release) = release_dir {
                let _ = std::fs::remove_dir(&release);
                if let Some(name) = release.parent() {
                    let _ = std::fs::remove_dir(name);
                }
            }
            Ok(bytes)
        })
        .await
        .map_err(infrastructure)?;
        Ok(Deleted { builds, bytes })
    }
}

/// Copies a kept package (a `.crate`, or an unpacked one kept as a directory) into
/// a new job's directory.
fn copy_package(file: &Path, job_dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(job_dir).map_err(|e| e.to_string())?;
    let name = file.file_name().ok_or("the kept package has no name")?;
    let dest = job_dir.join(name);
    if file.is_dir() {
        copy_sources(file, &dest, file, &[]).map_err(|e| e.to_string())?;
    } else {
        std::fs::copy(file, &dest).map_err(|e| e.to_string())?;
    }
    Ok(dest)
}
