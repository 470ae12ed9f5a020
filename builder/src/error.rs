//! The build pipeline's one error type. Each variant knows the outcome it amounts to,
//! so `check`, a worker and `check --workspace` classify the same failure the same way.

use crate::copy::CopyError;
use crate::host_cargo::{HostCargoError, HostFailure};
use crate::identity::CrateVersionError;
use crate::outcome::{Failure, Outcome};
use crate::prepare::InputError;
use crate::toolchain::ToolchainError;
use crate::unpack::UnpackError;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Not something that can be built: not a package, a broken manifest, bad
    /// metadata, a link leaving the project.
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Identity(#[from] CrateVersionError),
    #[error(transparent)]
    Toolchain(#[from] ToolchainError),
    #[error("no library target")]
    NoLibrary,
    #[error(
        "the standard library for target `{target}` is not installed for toolchain `{toolchain}` ({remedy})"
    )]
    MissingStd {
        target: String,
        toolchain: String,
        /// The command that installs it.
        remedy: String,
    },
    #[error(transparent)]
    HostCargo(#[from] HostCargoError),
    #[error("refused the crate archive: {0}")]
    Unpack(#[from] UnpackError),
    /// A local package's sources could not be taken as they are.
    #[error(transparent)]
    Sources(CopyError),
    /// What the build wrote could not be copied out safely.
    #[error("cannot take the build's output: {0}")]
    Output(CopyError),
    #[error(transparent)]
    Sandbox(#[from] docbuild_sandbox::SandboxError),
    /// The registry does not have the release asked for (its index says so).
    #[error("{0}")]
    NotInRegistry(String),
    #[error("cargo fetched `{0}` but its archive is not in the cache")]
    NotInCache(String),
    #[error("{0}: {1}")]
    Io(&'static str, #[source] std::io::Error),
    #[error(transparent)]
    Disk(#[from] crate::disk::DiskError),
    #[error("the build was cancelled")]
    Cancelled,
}

impl BuildError {
    pub fn outcome(&self) -> Outcome {
        use Outcome::*;
        match self {
            BuildError::Input(_) | BuildError::Identity(_) | BuildError::NotInRegistry(_) => {
                InvalidInput
            }
            // A toolchain that is not installed is a bad argument; one that does not
            // run is the machine's problem.
            BuildError::Toolchain(ToolchainError::NotInstalled(_)) => InvalidInput,
            BuildError::Toolchain(ToolchainError::Rustc(_)) => InfrastructureError,
            BuildError::NoLibrary | BuildError::Unpack(_) => BuildFailed,
            BuildError::MissingStd { .. } => InfrastructureError,
            BuildError::HostCargo(error) => match error.failure {
                HostFailure::Crate => BuildFailed,
                HostFailure::Infrastructure | HostFailure::Cancelled => InfrastructureError,
            },
            BuildError::Sources(CopyError::Io(..)) => InfrastructureError,
            BuildError::Sources(_) => InvalidInput,
            BuildError::Output(CopyError::Io(..)) => InfrastructureError,
            BuildError::Output(_) => BuildFailed,
            BuildError::Sandbox(_) | BuildError::NotInCache(_) | BuildError::Io(..) => {
                InfrastructureError
            }
            BuildError::Disk(_) | BuildError::Cancelled => InfrastructureError,
        }
    }

    /// `target`'s standard library is not installed for `toolchain`: names the
    /// toolchain builds use and the `rustup` command for exactly that one.
    pub fn missing_std(target: &str, toolchain: &crate::toolchain::Toolchain) -> Self {
        let remedy = match toolchain.rustup_name() {
            Some(name) => format!("rustup target add --toolchain {name} {target}"),
            None => format!("install the standard library for `{target}` for this rustc"),
        };
        BuildError::MissingStd {
            target: target.to_string(),
            toolchain: toolchain.display_name(),
            remedy,
        }
    }

    /// An I/O error while doing `what`.
    pub fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |error| BuildError::Io(what, error)
    }
}

impl From<&BuildError> for Failure {
    fn from(error: &BuildError) -> Self {
        Failure::new(error.outcome(), error)
    }
}

impl From<BuildError> for Failure {
    fn from(error: BuildError) -> Self {
        Failure::from(&error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_failure_is_the_same_outcome_everywhere() {
        let cases = [
            (
                BuildError::Toolchain(ToolchainError::NotInstalled("nope".into())),
                Outcome::InvalidInput,
            ),
            (
                BuildError::HostCargo(HostCargoError {
                    command: "cargo fetch",
                    message: "failed to connect".into(),
                    failure: HostFailure::Infrastructure,
                }),
                Outcome::InfrastructureError,
            ),
            (
                BuildError::Input(InputError::NotAPackage("/x".into())),
                Outcome::InvalidInput,
            ),
            (BuildError::NoLibrary, Outcome::BuildFailed),
            (
                BuildError::Sources(CopyError::LinkOutside {
                    path: "a".into(),
                    target: "/etc/shadow".into(),
                    boundary: "/p".into(),
                }),
                Outcome::InvalidInput,
            ),
        ];
        for (error, outcome) in cases {
            assert_eq!(error.outcome(), outcome, "{error}");
            assert_eq!(Failure::from(&error).outcome, outcome);
        }
    }
}
