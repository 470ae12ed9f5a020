//! Runs one command in a locked-down Docker container and reports how it ended.
//!
//! The container has no network, a memory limit without swap, a pids limit, a CPU
//! limit, a read-only root filesystem with a small tmpfs `/tmp`, no capabilities,
//! `no-new-privileges`, and a non-root user. It is removed on every path: normal exit,
//! timeout, cancellation (Ctrl-C), and errors. This crate knows nothing about Rust.

mod environment;
mod image;
mod limits;
mod log;
mod run;

use std::path::{Path, PathBuf};

pub use environment::{
    EnvironmentError, EnvironmentReport, EnvironmentSpec, environment_work_dir, is_package_name,
};
pub use image::{CONTAINER_ROOT, HostSystem, SANDBOX_UID};
pub use limits::{InvalidSize, SandboxLimits, parse_size};
pub use log::CappedLog;
pub use run::{LOG_LABEL, OutputLine, RunReport, Sandbox, StdStream};

/// A host path made visible in the container.
#[derive(Debug, Clone, PartialEq)]
pub struct Bind {
    pub host: PathBuf,
    pub container: String,
    pub writable: bool,
}

impl Bind {
    pub fn read_only(host: impl AsRef<Path>, container: impl AsRef<Path>) -> Self {
        Self::new(host, container, false)
    }

    pub fn writable(host: impl AsRef<Path>, container: impl AsRef<Path>) -> Self {
        Self::new(host, container, true)
    }

    fn new(host: impl AsRef<Path>, container: impl AsRef<Path>, writable: bool) -> Self {
        Self {
            host: host.as_ref().to_path_buf(),
            container: container.as_ref().to_string_lossy().into_owned(),
            writable,
        }
    }

    pub(crate) fn to_docker(&self) -> String {
        let mode = if self.writable { "rw" } else { "ro" };
        format!("{}:{}:{mode}", self.host.display(), self.container)
    }
}

/// Which image a run uses.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum SandboxImage {
    /// The locally made empty image with the host's system directories bound in.
    #[default]
    Default,
    /// Any image present in the engine (for example docs.rs's build environment).
    Named(String),
}

/// One command to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub image: SandboxImage,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: String,
    pub binds: Vec<Bind>,
    /// `uid:gid`; never root.
    pub user: (u32, u32),
    pub limits: SandboxLimits,
    /// Where the log is appended.
    pub log_path: PathBuf,
}

/// Why a run could not be carried out. None of these is the command's own fault.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot reach the Docker engine: {0}")]
    EngineUnreachable(#[source] bollard::errors::Error),
    #[error(
        "sandbox image `{0}` is not present in the Docker engine (nothing is pulled; `docbuild image build` makes the docs.rs environment)"
    )]
    ImageMissing(String),
    #[error("cannot make the sandbox image `{image}`: {source}")]
    ImageCreate {
        image: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("Docker engine error while {action}: {source}")]
    Engine {
        action: &'static str,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("refusing to run as root inside the sandbox")]
    RootUser,
    #[error(
        "docbuild runs in a container: `{path}` must be mounted from the same path on the host (-v {path}:{path}), since the engine binds host paths", path = .0.display()
    )]
    NotSharedWithHost(PathBuf),
    #[error("cannot write the log: {0}")]
    Io(#[source] std::io::Error),
}
