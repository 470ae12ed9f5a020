//! Creating, watching and removing one container.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, ContainerState, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    AttachContainerOptions, KillContainerOptions, ListContainersOptions, RemoveContainerOptions,
    StatsOptions,
};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::image::{HostSystem, ensure_default_image};
use crate::{CappedLog, RunSpec, SandboxError, SandboxImage};

/// Label put on every container this crate makes, so that leftovers of a process
/// that died can be found and removed.
const LABEL: &str = "org.docbuild.sandbox";

/// Label naming the run's log, which tells whose container it is.
pub const LOG_LABEL: &str = "org.docbuild.log";

/// The longest line kept whole; a longer one is cut there. Output is the crate's to
/// choose, so no single line may grow without bound in memory.
const MAX_LINE: usize = 1 << 20;

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdStream {
    Stdout,
    Stderr,
}

/// One line of the command's output, handed to the caller's filter, which decides
/// what (if anything) the stored log gets for it.
#[derive(Debug, Clone, Copy)]
pub struct OutputLine<'a> {
    pub stream: StdStream,
    pub text: &'a str,
}

/// How a run ended. Outcomes are read from exit states only, never from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// The command's exit code; `None` when it never exited by itself.
    pub exit_code: Option<i64>,
    /// The kernel's OOM killer killed a process in the container.
    pub oom_killed: bool,
    /// The run passed its time limit and was killed.
    pub timed_out: bool,
    /// The run was cancelled (Ctrl-C) and killed.
    pub cancelled: bool,
    pub duration: Duration,
    /// Highest memory use seen, where the engine reports it.
    pub memory_peak_bytes: Option<u64>,
    /// The log reached its cap and later output was dropped.
    pub log_truncated: bool,
}

impl RunReport {
    /// The command ran to completion and exited 0.
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && !self.oom_killed && !self.timed_out && !self.cancelled
    }
}

/// A connection to the Docker engine.
#[derive(Clone)]
pub struct Sandbox {
    pub(crate) docker: Docker,
    host: HostSystem,
}

impl Sandbox {
    /// Connects to the local engine (`DOCKER_HOST` or the default socket) and agrees
    /// on an API version, so that older engines work too: that one request (the
    /// engine's version) also tells an unreachable engine.
    pub async fn connect() -> Result<Self, SandboxError> {
        let docker = Docker::connect_with_defaults().map_err(SandboxError::EngineUnreachable)?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(SandboxError::EngineUnreachable)?;
        Ok(Self {
            docker,
            host: HostSystem::detect(),
        })
    }

    /// When docbuild itself runs in a container of this engine (the deployment image),
    /// every path it hands the engine to bind is a host path: each of `paths` must lie
    /// in a bind mount whose host source is the same path. Outside a container, or in
    /// one of another engine, there is nothing to check.
    pub async fn check_paths_shared_with_host(&self, paths: &[&Path]) -> Result<(), SandboxError> {
        if !Path::new("/.dockerenv").exists() {
            return Ok(());
        }
        let Ok(hostname) = std::fs::read_to_string("/etc/hostname") else {
            return Ok(());
        };
        let Ok(own) = self.docker.inspect_container(hostname.trim(), None).await else {
            return Ok(());
        };
        let mounts = own.mounts.unwrap_or_default();
        for path in paths {
            let shared = mounts.iter().any(|mount| {
                let (Some(source), Some(destination)) = (&mount.source, &mount.destination) else {
                    return false;
                };
                source == destination && path.starts_with(destination)
            });
            if !shared {
                return Err(SandboxError::NotSharedWithHost(path.to_path_buf()));
            }
        }
        Ok(())
    }

    /// Makes the default image if it is missing and returns its name.
    pub async fn prepare_default_image(&self) -> Result<String, SandboxError> {
        ensure_default_image(&self.docker, &self.host).await
    }

    /// Removes the containers, running or not, whose log lies under `dir`: those of
    /// a process that died while building there. Returns how many were removed.
    pub async fn remove_containers_under(&self, dir: &Path) -> Result<usize, SandboxError> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![LABEL.to_string()],
            )])),
            ..Default::default()
        };
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|source| SandboxError::Engine {
                action: "listing containers",
                source,
            })?;
        let mut removed = 0;
        for container in containers {
            let log = container
                .labels
                .as_ref()
                .and_then(|labels| labels.get(LOG_LABEL))
                .map(Path::new);
            if let (Some(id), Some(log)) = (container.id, log)
                && log.starts_with(dir)
                && self.remove(&id).await.is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Runs `spec` to its end, its time limit, or `cancel`, whichever comes first.
    /// Every output line goes through `filter`, whose answer is what the log stores.
    pub async fn run(
        &self,
        spec: &RunSpec,
        filter: &mut (dyn FnMut(OutputLine<'_>) -> Option<String> + Send),
        cancel: &CancellationToken,
    ) -> Result<RunReport, SandboxError> {
        if spec.user.0 == 0 {
            return Err(SandboxError::RootUser);
        }
        let mut log =
            CappedLog::append(&spec.log_path, spec.limits.log_bytes).map_err(SandboxError::Io)?;
        let body = self.container_body(spec).await?;
        let id = self
            .docker
            .create_container(None, body)
            .await
            .map_err(|source| SandboxError::Engine {
                action: "creating the container",
                source,
            })?
            .id;
        let result = self.watch(&id, spec, filter, &mut log, cancel).await;
        let removal = self.remove(&id).await;
        log.flush().map_err(SandboxError::Io)?;
        let mut report = result?;
        removal.map_err(|source| SandboxError::Engine {
            action: "removing the container",
            source,
        })?;
        report.log_truncated = log.truncated();
        Ok(report)
    }

    /// The `docker run` command that replays `spec` by hand, with the same limits,
    /// binds and environment.
    pub fn replay_command(&self, spec: &RunSpec) -> Vec<String> {
        let limits = &spec.limits;
        let mut command: Vec<String> = [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "--read-only",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
        ]
        .map(String::from)
        .to_vec();
        command.push("--tmpfs".into());
        command.push(format!("/tmp:rw,nosuid,nodev,size={}", limits.tmp_bytes));
        command.push(format!("--memory={}", limits.memory_bytes));
        command.push(format!("--memory-swap={}", limits.memory_bytes));
        command.push(format!("--pids-limit={}", limits.pids));
        if limits.cpus < host_cpus() {
            command.push(format!("--cpus={}", limits.cpus));
        }
        command.push(format!("--user={}:{}", spec.user.0, spec.user.1));
        let image = match &spec.image {
            SandboxImage::Default => {
                for bind in self.host.binds() {
                    command.push(format!("--volume={}", bind.to_docker()));
                }
                self.host.image_name()
            }
            SandboxImage::Named(name) => name.clone(),
        };
        for bind in &spec.binds {
            command.push(format!("--volume={}", bind.to_docker()));
        }
        command.push(format!("--workdir={}", spec.workdir));
        for (key, value) in &spec.env {
            command.push(format!("--env={key}={value}"));
        }
        command.push(image);
        command.extend(spec.command.iter().cloned());
        command
    }

    async fn container_body(&self, spec: &RunSpec) -> Result<ContainerCreateBody, SandboxError> {
        let mut binds = Vec::new();
        let image = match &spec.image {
            SandboxImage::Default => {
                binds.extend(self.host.binds().iter().map(|b| b.to_docker()));
                self.prepare_default_image().await?
            }
            SandboxImage::Named(name) => {
                self.docker
                    .inspect_image(name)
                    .await
                    .map_err(|_| SandboxError::ImageMissing(name.clone()))?;
                name.clone()
            }
        };
        binds.extend(spec.binds.iter().map(|b| b.to_docker()));
        let limits = &spec.limits;
        let memory = i64::try_from(limits.memory_bytes).unwrap_or(i64::MAX);
        let host_config = HostConfig {
            binds: Some(binds),
            network_mode: Some("none".into()),
            memory: Some(memory),
            memory_swap: Some(memory),
            pids_limit: Some(i64::from(limits.pids)),
            // A quota of every CPU limits nothing but still costs CFS throttling.
            nano_cpus: (limits.cpus < host_cpus()).then_some((limits.cpus * 1e9) as i64),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_string(),
                format!("rw,nosuid,nodev,size={}", limits.tmp_bytes),
            )])),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            privileged: Some(false),
            // No `init`: the engine mounts it under `/sbin`, which in the default
            // image is a link into the read-only `/usr`. The container lives for one
            // command and is removed with all its processes.
            // Output is streamed to us through attach; the engine keeps none on disk,
            // so a chatty build cannot fill it.
            log_config: Some(HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            auto_remove: Some(false),
            ..Default::default()
        };
        Ok(ContainerCreateBody {
            image: Some(image),
            cmd: Some(spec.command.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: Some(spec.workdir.clone()),
            user: Some(format!("{}:{}", spec.user.0, spec.user.1)),
            network_disabled: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            labels: Some(HashMap::from([
                (LABEL.to_string(), "1".to_string()),
                (LOG_LABEL.to_string(), spec.log_path.display().to_string()),
            ])),
            host_config: Some(host_config),
            ..Default::default()
        })
    }

    /// The engine's record of the container's state: exit code, OOM kill.
    async fn state(&self, id: &str) -> Result<ContainerState, SandboxError> {
        Ok(self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|source| SandboxError::Engine {
                action: "inspecting the container",
                source,
            })?
            .state
            .unwrap_or_default())
    }

    async fn watch(
        &self,
        id: &str,
        spec: &RunSpec,
        filter: &mut (dyn FnMut(OutputLine<'_>) -> Option<String> + Send),
        log: &mut CappedLog,
        cancel: &CancellationToken,
    ) -> Result<RunReport, SandboxError> {
        let mut output = self.attach_and_start(id).await?;
        let started = Instant::now();
        let peak = Arc::new(AtomicU64::new(0));
        let sampler = tokio::spawn(sample_memory(
            self.docker.clone(),
            id.to_string(),
            peak.clone(),
        ));

        let mut lines = LineSplitter::default();
        let mut wait = self.docker.wait_container(id, None);
        let deadline = tokio::time::sleep(spec.limits.timeout);
        tokio::pin!(deadline);
        let (mut exited, mut output_done) = (false, false);
        let (mut timed_out, mut cancelled) = (false, false);
        let mut write_line = |stream, text: &str| -> Result<(), SandboxError> {
            if let Some(kept) = filter(OutputLine { stream, text }) {
                log.line(&kept).map_err(SandboxError::Io)?;
            }
            Ok(())
        };
        while !(exited && output_done) {
            tokio::select! {
                chunk = output.next(), if !output_done => match chunk {
                    Some(Ok(LogOutput::StdOut { message })) => {
                        lines.push(StdStream::Stdout, &message, &mut write_line)?;
                    }
                    Some(Ok(LogOutput::StdErr { message })) => {
                        lines.push(StdStream::Stderr, &message, &mut write_line)?;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => {
                        tracing::warn!(%error, "container output stream ended early");
                        output_done = true;
                    }
                    None => output_done = true,
                },
                _ = wait.next(), if !exited => exited = true,
                _ = &mut deadline, if !exited && !timed_out => {
                    timed_out = true;
                    self.kill(id).await;
                }
                _ = cancel.cancelled(), if !exited && !cancelled => {
                    cancelled = true;
                    self.kill(id).await;
                }
                // Output of an exited container ends promptly; don't hang on it.
                _ = tokio::time::sleep(Duration::from_secs(5)), if exited => output_done = true,
            }
        }
        lines.finish(&mut write_line)?;
        let duration = started.elapsed();
        sampler.abort();

        let mut state = self.state(id).await?;
        // The engine marks an OOM kill when the runtime's OOM event arrives, which
        // may come after the exit that ended the wait: a failed run that may have
        // run out of memory (no sample, or one near the limit) is looked at again,
        // briefly.
        let sampled = peak.load(Ordering::Relaxed);
        let near_limit = sampled == 0 || sampled >= spec.limits.memory_bytes / 10 * 9;
        for _ in 0..4 {
            let failed = state.exit_code.is_some_and(|code| code != 0);
            if !failed || !near_limit || timed_out || cancelled || state.oom_killed == Some(true) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            state = self.state(id).await?;
        }
        let oom_killed = state.oom_killed.unwrap_or(false);
        // What the engine's samples showed; a run shorter than its sampling interval
        // may end before any sample (an OOM kill is told by `oom_killed`, not here).
        let peak = peak.load(Ordering::Relaxed);
        Ok(RunReport {
            exit_code: if timed_out || cancelled {
                None
            } else {
                state.exit_code
            },
            oom_killed,
            timed_out,
            cancelled,
            duration,
            memory_peak_bytes: (peak > 0).then_some(peak),
            log_truncated: false,
        })
    }

    /// Attaches to a created container's output, then starts it: attached before the
    /// start, no early output is missed.
    pub(crate) async fn attach_and_start(
        &self,
        id: &str,
    ) -> Result<
        std::pin::Pin<
            Box<dyn futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
        >,
        SandboxError,
    > {
        let engine = |action| move |source| SandboxError::Engine { action, source };
        let attach = AttachContainerOptions {
            stream: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let output = self
            .docker
            .attach_container(id, Some(attach))
            .await
            .map_err(engine("attaching to the container"))?
            .output;
        self.docker
            .start_container(id, None)
            .await
            .map_err(engine("starting the container"))?;
        Ok(output)
    }

    async fn kill(&self, id: &str) {
        let options = KillContainerOptions {
            signal: "SIGKILL".into(),
        };
        if let Err(error) = self.docker.kill_container(id, Some(options)).await {
            // It may have exited on its own in the meantime.
            tracing::debug!(%error, "kill failed");
        }
    }

    async fn remove(&self, id: &str) -> Result<(), bollard::errors::Error> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        match self.docker.remove_container(id, Some(options)).await {
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            other => other,
        }
    }
}

fn host_cpus() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

/// Follows the engine's statistics while the container runs and keeps the highest
/// memory figure: cgroup v1 reports its own high-water mark (`max_usage`), v2 only
/// the current use, so the maximum of the samples is kept.
async fn sample_memory(docker: Docker, id: String, peak: Arc<AtomicU64>) {
    let options = StatsOptions {
        stream: true,
        one_shot: false,
    };
    let mut stats = docker.stats(&id, Some(options));
    while let Some(Ok(sample)) = stats.next().await {
        if let Some(memory) = sample.memory_stats {
            let seen = memory.max_usage.or(memory.usage).unwrap_or(0);
            peak.fetch_max(seen, Ordering::Relaxed);
        }
    }
}

/// Cuts the output chunks of both streams into lines.
#[derive(Default)]
struct LineSplitter {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl LineSplitter {
    fn push(
        &mut self,
        stream: StdStream,
        bytes: &[u8],
        emit: &mut impl FnMut(StdStream, &str) -> Result<(), SandboxError>,
    ) -> Result<(), SandboxError> {
        let buffer = match stream {
            StdStream::Stdout => &mut self.stdout,
            StdStream::Stderr => &mut self.stderr,
        };
        for &byte in bytes {
            if byte == b'\n' || buffer.len() >= MAX_LINE {
                emit(stream, &String::from_utf8_lossy(buffer))?;
                buffer.clear();
                if byte == b'\n' {
                    continue;
                }
            }
            buffer.push(byte);
        }
        Ok(())
    }

    fn finish(
        &mut self,
        emit: &mut impl FnMut(StdStream, &str) -> Result<(), SandboxError>,
    ) -> Result<(), SandboxError> {
        for (stream, buffer) in [
            (StdStream::Stdout, &mut self.stdout),
            (StdStream::Stderr, &mut self.stderr),
        ] {
            if !buffer.is_empty() {
                emit(stream, &String::from_utf8_lossy(buffer))?;
                buffer.clear();
            }
        }
        Ok(())
    }
}
