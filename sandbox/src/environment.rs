//! Build environments: Debian root filesystems with a list of system packages (such
//! as docs.rs's), made locally with nothing pulled.
//!
//! A base is made once per Debian release with `debootstrap --variant=minbase` and
//! imported (`docbuild-base:<release>`); the packages are then installed by `apt-get`
//! in a container of that base, which is committed as the environment. The tag holds a
//! digest of the release, the mirror and the package list, so a changed list makes a
//! new image and an unchanged one is never rebuilt.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::models::{ContainerConfig, ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CommitContainerOptions, CreateImageOptions, RemoveContainerOptions,
};
use futures_util::{StreamExt, TryStreamExt};
use tokio_util::sync::CancellationToken;

use crate::{CONTAINER_ROOT, SANDBOX_UID, Sandbox, SandboxError};

/// `debootstrap` and `apt-get install` of a thousand packages take minutes, not hours.
const STEP_TIMEOUT: Duration = Duration::from_secs(90 * 60);

/// What an environment is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvironmentSpec {
    /// The image's repository name: `docbuild-<name>`.
    pub name: String,
    /// The Debian release (`bookworm`).
    pub release: String,
    pub mirror: String,
    /// Debian package names.
    pub packages: BTreeSet<String>,
}

/// How a build of an environment went.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EnvironmentReport {
    pub image: String,
    /// False when the image was already there.
    pub built: bool,
    pub size_bytes: u64,
    pub duration_ms: u64,
    pub packages: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvironmentError {
    #[error("invalid Debian package name `{0}`")]
    PackageName(String),
    #[error("`{0}` is not installed; install it (apt-get install {0}) to build environments")]
    MissingTool(&'static str),
    #[error("{step} failed: {detail}")]
    Step { step: &'static str, detail: String },
    #[error("building the environment was cancelled")]
    Cancelled,
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

impl EnvironmentSpec {
    /// The spec for this machine's Debian release, from `/etc/os-release`.
    pub fn for_host(
        name: &str,
        mirror: &str,
        packages: impl IntoIterator<Item = String>,
    ) -> Result<Self, EnvironmentError> {
        let release = host_release().unwrap_or_else(|| "bookworm".to_string());
        let packages: BTreeSet<String> = packages.into_iter().collect();
        if let Some(bad) = packages.iter().find(|p| !is_package_name(p)) {
            return Err(EnvironmentError::PackageName(bad.clone()));
        }
        Ok(Self {
            name: name.to_string(),
            release,
            mirror: mirror.to_string(),
            packages,
        })
    }

    /// `docbuild-<name>:<digest>`.
    pub fn tag(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut digest = Sha256::new();
        digest.update(self.release.as_bytes());
        digest.update([0]);
        digest.update(self.mirror.as_bytes());
        for package in &self.packages {
            digest.update([0]);
            digest.update(package.as_bytes());
        }
        let short: String = digest
            .finalize()
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("docbuild-{}:{short}", self.name)
    }

    fn base_tag(&self) -> String {
        format!("docbuild-base:{}", self.release)
    }
}

/// Debian's rule for package names: lower-case letters, digits, `+`, `-`, `.`,
/// starting with a letter or digit. Names reach a shell command line.
pub fn is_package_name(name: &str) -> bool {
    name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '-' | '.'))
}

fn host_release() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("VERSION_CODENAME="))
        .map(|value| value.trim_matches('"').to_string())
        .filter(|value| !value.is_empty())
}

impl Sandbox {
    /// Whether the environment's image is present.
    pub async fn has_environment(&self, spec: &EnvironmentSpec) -> bool {
        self.docker.inspect_image(&spec.tag()).await.is_ok()
    }

    /// Makes the environment unless its image exists. `work` holds the base's root
    /// filesystem while it is made; `log` is appended with what the steps print.
    pub async fn build_environment(
        &self,
        spec: &EnvironmentSpec,
        work: &Path,
        log: &Path,
        cancel: &CancellationToken,
    ) -> Result<EnvironmentReport, EnvironmentError> {
        let started = Instant::now();
        let tag = spec.tag();
        let built = if self.docker.inspect_image(&tag).await.is_ok() {
            false
        } else {
            if self.docker.inspect_image(&spec.base_tag()).await.is_err() {
                self.make_base(spec, work, log, cancel).await?;
            }
            self.install_packages(spec, log, cancel).await?;
            true
        };
        let size_bytes = self
            .docker
            .inspect_image(&tag)
            .await
            .ok()
            .and_then(|image| image.size)
            .and_then(|size| u64::try_from(size).ok())
            .unwrap_or(0);
        Ok(EnvironmentReport {
            image: tag,
            built,
            size_bytes,
            duration_ms: started.elapsed().as_millis() as u64,
            packages: spec.packages.len(),
        })
    }

    /// `debootstrap --variant=minbase` into `work/rootfs`, imported as the base.
    async fn make_base(
        &self,
        spec: &EnvironmentSpec,
        work: &Path,
        log: &Path,
        cancel: &CancellationToken,
    ) -> Result<(), EnvironmentError> {
        let rootfs = work.join("rootfs");
        let step = |detail: String| EnvironmentError::Step {
            step: "debootstrap",
            detail,
        };
        if rootfs.exists() {
            tokio::fs::remove_dir_all(&rootfs)
                .await
                .map_err(|e| step(e.to_string()))?;
        }
        tokio::fs::create_dir_all(work)
            .await
            .map_err(|e| step(e.to_string()))?;
        let debootstrap = ["/usr/sbin/debootstrap", "/usr/bin/debootstrap"]
            .into_iter()
            .find(|path| Path::new(path).exists())
            .ok_or(EnvironmentError::MissingTool("debootstrap"))?;
        let mut command = tokio::process::Command::new(debootstrap);
        command
            .args(["--variant=minbase", &spec.release])
            .arg(&rootfs)
            .arg(&spec.mirror);
        run_logged("debootstrap", command, log, cancel).await?;
        let archive = work.join("rootfs.tar");
        let mut tar = tokio::process::Command::new("tar");
        tar.arg("-C").arg(&rootfs).arg("-cf").arg(&archive).arg(".");
        run_logged("tar", tar, log, cancel).await?;
        let (repo, tag) = spec
            .base_tag()
            .split_once(':')
            .map(|(r, t)| (r.to_string(), t.to_string()))
            .unwrap_or_default();
        let file = tokio::fs::File::open(&archive)
            .await
            .map_err(|e| step(e.to_string()))?;
        let body = tokio_util::io::ReaderStream::new(file);
        let options = CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo),
            tag: Some(tag),
            ..Default::default()
        };
        let imported = self
            .docker
            .clone()
            .with_timeout(STEP_TIMEOUT)
            .create_image(Some(options), Some(bollard::body_try_stream(body)), None)
            .try_collect::<Vec<_>>()
            .await;
        let _ = tokio::fs::remove_file(&archive).await;
        let _ = tokio::fs::remove_dir_all(&rootfs).await;
        imported.map_err(|source| SandboxError::ImageCreate {
            image: spec.base_tag(),
            source,
        })?;
        Ok(())
    }

    /// `apt-get install` of the packages in a container of the base (with network:
    /// Debian's mirror), committed as the environment.
    async fn install_packages(
        &self,
        spec: &EnvironmentSpec,
        log: &Path,
        cancel: &CancellationToken,
    ) -> Result<(), EnvironmentError> {
        let packages: Vec<&str> = spec.packages.iter().map(String::as_str).collect();
        let uid = SANDBOX_UID;
        // Package names are checked (`is_package_name`); nothing else is interpolated.
        let script = format!(
            "set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -q; \
             apt-get install -y -q --no-install-recommends {packages}; apt-get clean; \
             rm -rf /var/lib/apt/lists/*; \
             mkdir -p {root}/src {root}/target {root}/cargo-home {root}/toolchain; \
             grep -q '^docbuild:' /etc/passwd || echo 'docbuild:x:{uid}:{uid}::/tmp:/bin/false' >> /etc/passwd; \
             grep -q '^docbuild:' /etc/group || echo 'docbuild:x:{uid}:' >> /etc/group",
            packages = packages.join(" "),
            root = CONTAINER_ROOT,
        );
        let body = ContainerCreateBody {
            image: Some(spec.base_tag()),
            cmd: Some(vec!["/bin/sh".into(), "-c".into(), script]),
            user: Some("0:0".into()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(HostConfig::default()),
            ..Default::default()
        };
        let engine = |action| move |source| SandboxError::Engine { action, source };
        let id = self
            .docker
            .create_container(None, body)
            .await
            .map_err(engine("creating the environment's container"))?
            .id;
        let result = self.run_to_end(&id, log, cancel).await;
        let committed = match result {
            Ok(0) => {
                let (repo, tag) = spec.tag().split_once(':').map_or_else(
                    || (spec.tag(), "latest".to_string()),
                    |(r, t)| (r.to_string(), t.to_string()),
                );
                let options = CommitContainerOptions {
                    container: Some(id.clone()),
                    repo: Some(repo),
                    tag: Some(tag),
                    comment: Some(format!("{} packages", spec.packages.len())),
                    ..Default::default()
                };
                // Committing gigabytes takes longer than the engine client's default.
                self.docker
                    .clone()
                    .with_timeout(STEP_TIMEOUT)
                    .commit_container(options, ContainerConfig::default())
                    .await
                    .map(drop)
                    .map_err(|e| engine("committing the environment")(e).into())
            }
            Ok(code) => Err(EnvironmentError::Step {
                step: "apt-get install",
                detail: format!("exited with {code}; see {}", log.display()),
            }),
            Err(error) => Err(error),
        };
        let remove = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        let _ = self.docker.remove_container(&id, Some(remove)).await;
        committed
    }

    /// Starts a container, appends its output to `log`, and returns its exit code.
    async fn run_to_end(
        &self,
        id: &str,
        log: &Path,
        cancel: &CancellationToken,
    ) -> Result<i64, EnvironmentError> {
        let engine = |action| move |source| SandboxError::Engine { action, source };
        let mut output = self.attach_and_start(id).await?;
        let mut file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(SandboxError::Io)?;
        let deadline = tokio::time::sleep(STEP_TIMEOUT);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                chunk = output.next() => match chunk {
                    Some(Ok(LogOutput::StdOut { message } | LogOutput::StdErr { message })) => {
                        file.write_all(&message).map_err(SandboxError::Io)?;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                },
                _ = &mut deadline => {
                    return Err(EnvironmentError::Step {
                        step: "apt-get install",
                        detail: "ran past its time limit".into(),
                    });
                }
                _ = cancel.cancelled() => return Err(EnvironmentError::Cancelled),
            }
        }
        let mut wait = self.docker.wait_container(id, None);
        let code = match wait.next().await {
            Some(Ok(response)) => response.status_code,
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(error)) => {
                return Err(engine("waiting for the environment's container")(error).into());
            }
            None => -1,
        };
        Ok(code)
    }
}

/// Runs a host step with a time limit, its output appended to `log`, killed when
/// cancelled.
async fn run_logged(
    step: &'static str,
    mut command: tokio::process::Command,
    log: &Path,
    cancel: &CancellationToken,
) -> Result<(), EnvironmentError> {
    let failed = |detail: String| EnvironmentError::Step { step, detail };
    let file = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| failed(e.to_string()))?;
    let stderr = file.try_clone().map_err(|e| failed(e.to_string()))?;
    command
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| failed(e.to_string()))?;
    let status = tokio::select! {
        status = tokio::time::timeout(STEP_TIMEOUT, child.wait()) => status,
        _ = cancel.cancelled() => return Err(EnvironmentError::Cancelled),
    };
    match status {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(failed(format!("{status}; see {}", log.display()))),
        Ok(Err(error)) => Err(failed(error.to_string())),
        Err(_) => Err(failed("ran past its time limit".into())),
    }
}

/// Where an environment's base root filesystem is made.
pub fn environment_work_dir(cache: &Path) -> PathBuf {
    cache.join("environments")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_list_is_a_new_tag() {
        let spec = |packages: &[&str]| EnvironmentSpec {
            name: "env".into(),
            release: "bookworm".into(),
            mirror: "http://deb.debian.org/debian".into(),
            packages: packages.iter().map(|p| p.to_string()).collect(),
        };
        let one = spec(&["gcc", "libc6-dev"]);
        assert_eq!(one.tag(), spec(&["libc6-dev", "gcc"]).tag());
        assert_ne!(one.tag(), spec(&["gcc", "libc6-dev", "pkg-config"]).tag());
        assert!(one.tag().starts_with("docbuild-env:"));
    }

    #[test]
    fn package_names_are_checked() {
        for good in [
            "gcc",
            "libgtk-3-dev",
            "g++",
            "libstdc++-12-dev",
            "python3.11",
        ] {
            assert!(is_package_name(good), "{good}");
        }
        for bad in ["", "a", "Gcc", "gcc; rm -rf /", "$(x)", "-flag", "a b"] {
            assert!(!is_package_name(bad), "{bad}");
        }
    }
}
