//! An operator's operations on the queue and the stored builds, for the command line
//! and the API alike: queueing a registry crate (its newest version when none is
//! named), rebuilding a release, removing a job, deleting a release's docs.

use crate::config::{CRATES_IO, LOCAL};
use crate::identity::{CrateId, CrateName, CrateVersion, RegistryName};
use crate::outcome::{Failure, Outcome};
use crate::queue::{BuildRecord, Job, PRIORITY_NEW, PRIORITY_REBUILD, QueueError};
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
        let release = CrateId {
            registry: registry.clone(),
            krate,
        };
        let queued = self
            .queue
            .enqueue(&release, PRIORITY_NEW)
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
    pub async fn release(
        &self,
        krate: &CrateVersion,
        registry: Option<&str>,
    ) -> Result<CrateId, Failure> {
        let known = self
            .queue
            .registries_of(krate.name(), &krate.version())
            .await
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
        let kept = if id.registry.as_str() == LOCAL {
            let jobs = self.queue.jobs_of(id).await.map_err(infrastructure)?;
            let mut package = None;
            for key in jobs.iter().filter_map(|job| job.sources.as_deref()) {
                let found = self.store.builds().sources(key).await;
                if let Some(bytes) = found.map_err(infrastructure)? {
                    package = Some(bytes);
                    break;
                }
            }
            let gone = || {
                invalid(format!(
                    "the package of {} is no longer kept: queue its directory again",
                    id.krate
                ))
            };
            Some(package.ok_or_else(gone)?)
        } else {
            None
        };
        let (job, new) = self
            .queue
            .enqueue(id, PRIORITY_REBUILD)
            .await
            .map_err(infrastructure)?;
        if let (Some(package), true) = (kept, new) {
            let stored = match self.store.builds().put_sources(job, package).await {
                Ok(key) => self
                    .queue
                    .set_sources(job, &key)
                    .await
                    .map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            };
            if let Err(error) = stored {
                let _ = self.queue.forget(job).await;
                return Err(infrastructure(format!(
                    "cannot keep the package for the rebuild: {error}"
                )));
            }
        }
        Ok(Queued { id: job, new })
    }

    /// Removes a job that is not running, and the package a local job kept.
    pub async fn remove_job(&self, id: i64) -> Result<Job, Failure> {
        let job = self.queue.remove(id).await.map_err(queue_failure)?;
        if let Some(key) = &job.sources {
            let _ = self.store.builds().delete_sources(key).await;
        }
        Ok(job)
    }

    /// Deletes every stored build of a release (docs, logs, records), unless a job of
    /// it is running. The viewer stops serving it at once; the blobs only its builds
    /// used go with the next `docbuild gc`.
    pub async fn delete_docs(&self, id: &CrateId) -> Result<Deleted, Failure> {
        let ids: Vec<i64> = self
            .queue
            .builds()
            .await
            .map_err(infrastructure)?
            .into_iter()
            .filter(|b| {
                b.registry == id.registry.as_str()
                    && b.name == id.krate.name()
                    && b.version == id.krate.version()
            })
            .map(|b| b.id)
            .collect();
        if ids.is_empty() {
            return Err(invalid(format!(
                "no stored build of {} (registry `{}`)",
                id.krate, id.registry
            )));
        }
        let builds = self
            .queue
            .delete_builds(&ids)
            .await
            .map_err(queue_failure)?;
        for build in &builds {
            self.store
                .builds()
                .delete(build.id)
                .await
                .map_err(infrastructure)?;
        }
        Ok(Deleted { builds })
    }
}
