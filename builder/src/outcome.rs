//! How a build ended, in the words users see everywhere: JSON, the database, the web
//! pages and the exit code.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use docbuild_store::Outcome;

/// Something that could not be done, as the outcome it amounts to and one line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub outcome: Outcome,
    pub message: String,
}

impl Failure {
    pub fn new(outcome: Outcome, message: impl std::fmt::Display) -> Self {
        Self {
            outcome,
            message: message.to_string(),
        }
    }
}

impl From<Failure> for CrateReport {
    fn from(failure: Failure) -> Self {
        CrateReport::early(failure.outcome, failure.message)
    }
}

/// An error or a warning the compiler reported, from cargo's JSON messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub message: String,
    /// The primary span's file, relative to the package's root (as rustc names it).
    pub file: Option<String>,
    pub line: Option<usize>,
    /// The lint that raised it, when one did (`rustdoc::broken_intra_doc_links`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lint: Option<String>,
    /// rustc's rendered text: the message with its source snippet, as cargo shows
    /// it. For human output only; not part of the JSON report.
    #[serde(default, skip_serializing)]
    pub rendered: Option<String>,
}

impl std::fmt::Display for ErrorDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, " ({file}:{line})"),
            (Some(file), None) => write!(f, " ({file})"),
            _ => Ok(()),
        }
    }
}

/// One target's build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetReport {
    pub target: String,
    pub outcome: Outcome,
    pub duration_ms: u64,
    /// The library's `index.html` for this target, when docs were made.
    pub docs: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// rustdoc's JSON of the default target, made after its HTML docs succeeded. Its
/// failure never changes the build's outcome (the log says why).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonReport {
    pub target: String,
    /// rustdoc JSON's `format_version`.
    pub format_version: u32,
    /// Bytes of the JSON (uncompressed).
    pub size_bytes: u64,
    /// How long its sandboxed run took.
    pub duration_ms: u64,
    /// The JSON file, copied out of the target directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// The record of one crate's build: one JSON line of `check --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrateReport {
    pub outcome: Outcome,
    pub name: Option<String>,
    pub version: Option<String>,
    pub default_target: Option<String>,
    pub targets: Vec<TargetReport>,
    pub errors: Vec<ErrorDetail>,
    /// rustdoc's warnings for the default target (broken intra-doc links, invalid
    /// HTML, …), and docbuild's own about the package's docs.rs metadata. They never
    /// change the outcome.
    #[serde(default)]
    pub warnings: Vec<ErrorDetail>,
    pub message: String,
    pub log: Option<PathBuf>,
    pub duration_ms: u64,
    pub toolchain: Option<String>,
    pub memory_peak_bytes: Option<u64>,
    /// The shipped `Cargo.lock` failed and the build was retried with a new one.
    #[serde(default)]
    pub lockfile_regenerated: bool,
    /// With `--workspace`: the publishing stage, from 1; a stage depends only on
    /// earlier ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<u32>,
    /// The package's features and what each enables.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub features: std::collections::BTreeMap<String, Vec<String>>,
    /// Bytes of the stored docs (uncompressed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs_size_bytes: Option<u64>,
    /// rustdoc's JSON for the default target, when it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<JsonReport>,
    /// `check`'s comparison of the public API with the newest earlier published
    /// version (never part of the outcome; not read back).
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub api: Option<crate::api_check::ApiReport>,
    /// What the package says about itself: kept with a worker's builds for the
    /// viewer (`check` leaves it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<crate::about::PackageAbout>,
    /// The commands the build ran, host-side cargo and the sandbox's `docker run`,
    /// as they can be replayed by hand (tokens hidden).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
    /// Errors and warnings past the cap kept in `errors` and `warnings` (all of them
    /// are in the log). For human output only.
    #[serde(skip)]
    pub omitted: Omitted,
    /// The local package's directory, which `file`s are relative to. For human
    /// output only.
    #[serde(skip)]
    pub package_dir: Option<PathBuf>,
    /// The build was stopped by cancellation (Ctrl-C, a shutdown) before it ended:
    /// its outcome says nothing about the crate.
    #[serde(skip)]
    pub interrupted: bool,
}

/// How many errors and warnings were not kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Omitted {
    pub errors: usize,
    pub warnings: usize,
}

impl CrateReport {
    /// A report for a build that ended before any target was built.
    pub fn early(outcome: Outcome, message: impl Into<String>) -> Self {
        Self {
            outcome,
            name: None,
            version: None,
            default_target: None,
            targets: Vec::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
            message: message.into(),
            log: None,
            duration_ms: 0,
            toolchain: None,
            memory_peak_bytes: None,
            lockfile_regenerated: false,
            stage: None,
            features: Default::default(),
            docs_size_bytes: None,
            json: None,
            api: None,
            about: None,
            commands: Vec::new(),
            omitted: Omitted::default(),
            package_dir: None,
            interrupted: false,
        }
    }

    /// The default target's docs.
    pub fn docs(&self) -> Option<&PathBuf> {
        self.targets.first().and_then(|t| t.docs.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_map_to_exit_codes_and_words() {
        let all = [
            (Outcome::Success, 0, "success"),
            (Outcome::BuildFailed, 1, "build-failed"),
            (Outcome::InvalidInput, 2, "invalid-input"),
            (Outcome::OutOfMemory, 3, "out-of-memory"),
            (Outcome::TimedOut, 3, "timed-out"),
            (Outcome::OutOfDisk, 3, "out-of-disk"),
            (Outcome::InfrastructureError, 4, "infrastructure-error"),
        ];
        for (outcome, code, word) in all {
            assert_eq!(outcome.exit_code(), code);
            assert_eq!(outcome.as_str(), word);
            assert_eq!(serde_json::to_value(outcome).unwrap(), word);
        }
        // The worst outcome of several is their maximum, and its exit code the highest.
        assert_eq!(
            all.iter().map(|a| a.0).max(),
            Some(Outcome::InfrastructureError)
        );
    }
}
