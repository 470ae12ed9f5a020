//! How a build ended, in the words users see everywhere: JSON, the database, the web
//! pages and the exit code.

use serde::{Deserialize, Serialize};

/// Every build ends in exactly one outcome. Ordered by exit code, so the outcome of
/// several builds is their maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Success,
    BuildFailed,
    InvalidInput,
    OutOfMemory,
    TimedOut,
    OutOfDisk,
    InfrastructureError,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Success,
        Outcome::BuildFailed,
        Outcome::InvalidInput,
        Outcome::OutOfMemory,
        Outcome::TimedOut,
        Outcome::OutOfDisk,
        Outcome::InfrastructureError,
    ];

    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Success => 0,
            Outcome::BuildFailed => 1,
            Outcome::InvalidInput => 2,
            Outcome::OutOfMemory | Outcome::TimedOut | Outcome::OutOfDisk => 3,
            Outcome::InfrastructureError => 4,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::BuildFailed => "build-failed",
            Outcome::InvalidInput => "invalid-input",
            Outcome::OutOfMemory => "out-of-memory",
            Outcome::TimedOut => "timed-out",
            Outcome::OutOfDisk => "out-of-disk",
            Outcome::InfrastructureError => "infrastructure-error",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Outcome {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == text)
            .ok_or_else(|| format!("unknown outcome `{text}`"))
    }
}
