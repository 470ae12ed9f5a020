//! cargo commands that run on the host, with network, before the sandbox: packaging,
//! lockfile generation and dependency fetch. None of them runs code from the crate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::toolchain::Toolchain;

/// The user's cargo configuration that matters for fetching: config files (with
/// registry definitions and credentials) and the registries they name.
#[derive(Debug, Clone, Default)]
pub struct UserCargoConfig {
    /// Passed to host-side cargo as `--config FILE`, lowest precedence first.
    pub files: Vec<PathBuf>,
    /// Registry name → index URL, given to the sandbox (without any token) so that
    /// cargo inside can map `registry = "name"` to the sources it fetched.
    pub registries: BTreeMap<String, String>,
}

impl UserCargoConfig {
    /// Finds the configuration cargo would read for a project in `project_dir`:
    /// `$CARGO_HOME/config.toml` and `credentials.toml`, then `.cargo/config.toml`
    /// in every ancestor, the nearest last (it takes precedence).
    pub fn discover(project_dir: &Path) -> Self {
        let mut files = Vec::new();
        if let Some(home) = user_cargo_home() {
            files.extend(
                ["config.toml", "credentials.toml"]
                    .map(|name| home.join(name))
                    .into_iter()
                    .filter(|path| path.is_file()),
            );
        }
        let mut project_files: Vec<PathBuf> = project_dir
            .ancestors()
            .map(|dir| dir.join(".cargo/config.toml"))
            .filter(|path| path.is_file())
            .collect();
        project_files.reverse();
        files.extend(project_files);
        let mut registries = BTreeMap::new();
        for file in &files {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            let Ok(table) = text.parse::<toml::Table>() else {
                continue;
            };
            let Some(toml::Value::Table(entries)) = table.get("registries") else {
                continue;
            };
            for (name, entry) in entries {
                if let Some(index) = entry.get("index").and_then(toml::Value::as_str) {
                    registries.insert(name.clone(), index.to_string());
                }
            }
        }
        Self { files, registries }
    }

    /// `CARGO_REGISTRIES_<NAME>_INDEX` variables for the sandbox: names only, never
    /// tokens.
    pub fn sandbox_environment(&self) -> Vec<(String, String)> {
        self.registries
            .iter()
            .map(|(name, index)| {
                let name = name.to_ascii_uppercase().replace('-', "_");
                (format!("CARGO_REGISTRIES_{name}_INDEX"), index.clone())
            })
            .collect()
    }
}

fn user_cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| dirs::home_dir().map(|home| home.join(".cargo")))
}

/// A host-side cargo command that failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`cargo {command}` failed: {message}")]
pub struct HostCargoError {
    pub command: &'static str,
    /// cargo's error, on one line.
    pub message: String,
    /// The failure looks like the network or the registry, not the crate.
    pub infrastructure: bool,
}

/// Runs the build's toolchain's cargo on the host.
#[derive(Debug, Clone)]
pub struct HostCargo {
    cargo: PathBuf,
    rustc: PathBuf,
    bootstrap: bool,
    /// docbuild's own cargo home: the registry cache the sandbox mounts read-only.
    cargo_home: PathBuf,
    config: UserCargoConfig,
    /// Extra environment for commands in docbuild's cargo home (registry tokens).
    env: Vec<(String, String)>,
}

impl HostCargo {
    pub fn new(toolchain: &Toolchain, cargo_home: &Path, config: UserCargoConfig) -> Self {
        Self {
            cargo: toolchain.cargo(),
            rustc: toolchain.rustc(),
            bootstrap: toolchain.needs_bootstrap(),
            cargo_home: cargo_home.to_path_buf(),
            config,
            env: Vec::new(),
        }
    }

    /// Adds environment for the commands that fetch into docbuild's cargo home.
    pub fn with_env(mut self, env: Vec<(String, String)>) -> Self {
        self.env = env;
        self
    }

    pub fn config(&self) -> &UserCargoConfig {
        &self.config
    }

    /// `cargo package` as the user would run it before publishing (their cargo home
    /// and configuration), without the verify build: that build would run the
    /// crate's build scripts on the host.
    pub fn package(&self, package_dir: &Path, target_dir: &Path) -> Result<(), HostCargoError> {
        self.package_members(package_dir, &[], target_dir)
    }

    /// `cargo package -p NAME…` in a workspace: members packaged together resolve
    /// their dependencies on each other to each other's packages. With no names,
    /// the package in `dir`.
    pub fn package_members(
        &self,
        dir: &Path,
        names: &[&str],
        target_dir: &Path,
    ) -> Result<(), HostCargoError> {
        let mut command = Command::new(&self.cargo);
        command
            .current_dir(dir)
            .env("RUSTC", &self.rustc)
            .args([
                "package",
                "--no-verify",
                "--allow-dirty",
                "--quiet",
                "--target-dir",
            ])
            .arg(target_dir);
        for name in names {
            command.args(["-p", name]);
        }
        run("package", command)
    }

    /// `cargo generate-lockfile` into docbuild's cargo home.
    pub fn generate_lockfile(&self, source: &Path) -> Result<(), HostCargoError> {
        let mut command = self.in_docbuild_home(source);
        command.arg("generate-lockfile");
        run("generate-lockfile", command)
    }

    /// `cargo fetch` into docbuild's cargo home, for every target, so that the
    /// sandboxed build runs `--offline`.
    pub fn fetch(&self, source: &Path) -> Result<(), HostCargoError> {
        let mut command = self.in_docbuild_home(source);
        command.arg("fetch");
        run("fetch", command)
    }

    /// `cargo metadata` (with dependencies) in docbuild's cargo home.
    pub fn metadata(&self, source: &Path) -> Result<cargo_metadata::Metadata, HostCargoError> {
        let mut command = self.in_docbuild_home(source);
        command.args(["metadata", "--format-version", "1", "--offline"]);
        let output = command.output().map_err(|e| HostCargoError {
            command: "metadata",
            message: format!("cannot run cargo: {e}"),
            infrastructure: true,
        })?;
        if !output.status.success() {
            return Err(HostCargoError {
                command: "metadata",
                message: one_line_error(&String::from_utf8_lossy(&output.stderr)),
                infrastructure: false,
            });
        }
        serde_json::from_slice(&output.stdout).map_err(|e| HostCargoError {
            command: "metadata",
            message: e.to_string(),
            infrastructure: true,
        })
    }

    pub fn cargo_home(&self) -> &Path {
        &self.cargo_home
    }

    fn in_docbuild_home(&self, source: &Path) -> Command {
        let mut command = Command::new(&self.cargo);
        command
            .current_dir(source)
            .env("CARGO_HOME", &self.cargo_home)
            .env("RUSTC", &self.rustc)
            .env_remove("CARGO_TARGET_DIR");
        if self.bootstrap {
            command.env("RUSTC_BOOTSTRAP", "1");
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        for file in &self.config.files {
            command.arg("--config").arg(file);
        }
        command.arg("--quiet");
        command
    }
}

fn run(name: &'static str, mut command: Command) -> Result<(), HostCargoError> {
    tracing::debug!(?command, "host cargo");
    let output = command.output().map_err(|e| HostCargoError {
        command: name,
        message: format!("cannot run cargo: {e}"),
        infrastructure: true,
    })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(HostCargoError {
        command: name,
        message: one_line_error(&stderr),
        infrastructure: looks_like_network_failure(&stderr),
    })
}

/// cargo's error from its first `error:` line on, with its "Caused by" chain, folded
/// onto one line: the innermost cause is usually the one that says what went wrong.
pub(crate) fn one_line_error(stderr: &str) -> String {
    const MAX: usize = 600;
    let start = stderr.find("error").unwrap_or(0);
    let parts: Vec<&str> = stderr[start..]
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && *line != "Caused by:")
        .collect();
    let mut message = parts.join(": ");
    if message.len() > MAX {
        let mut cut = MAX;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    if message.is_empty() {
        "cargo failed without a message".to_string()
    } else {
        message
    }
}

/// Host-side failures are classified from cargo's words, as docs.rs does in its
/// prepare step: there is no structured output for them. Only the split between
/// "the crate's fault" and "not the crate's fault" depends on it.
fn looks_like_network_failure(stderr: &str) -> bool {
    const SIGNS: [&str; 16] = [
        "spurious network error",
        "failed to download",
        "Couldn't resolve host",
        "Could not resolve host",
        "failed to connect",
        "Connection refused",
        "network failure",
        "SSL connect error",
        "No space left on device",
        "token rejected",
        "got 401",
        "got 403",
        "got 500",
        "got 502",
        "got 503",
        "got 504",
    ];
    SIGNS.iter().any(|sign| stderr.contains(sign))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_read_from_config_files_without_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("project");
        std::fs::create_dir_all(project.join(".cargo")).unwrap();
        std::fs::write(
            project.join(".cargo/config.toml"),
            "[registries.my-reg]\nindex = \"sparse+https://reg.example/index/\"\ntoken = \"secret\"\n",
        )
        .unwrap();
        let config = UserCargoConfig::discover(&project);
        assert!(config.files.contains(&project.join(".cargo/config.toml")));
        assert_eq!(
            config.sandbox_environment(),
            vec![(
                "CARGO_REGISTRIES_MY_REG_INDEX".to_string(),
                "sparse+https://reg.example/index/".to_string()
            )]
        );
    }

    #[test]
    fn errors_are_folded_onto_one_line() {
        let stderr = "    Updating index\nerror: failed to select a version for `foo`.\n  required by bar\n\n";
        assert_eq!(
            one_line_error(stderr),
            "error: failed to select a version for `foo`.: required by bar"
        );
        let chained = "error: failed to get `a`\n\nCaused by:\n  failed to load source\n\nCaused by:\n  401 Unauthorized\n";
        assert_eq!(
            one_line_error(chained),
            "error: failed to get `a`: failed to load source: 401 Unauthorized"
        );
        assert!(!looks_like_network_failure(stderr));
        assert!(looks_like_network_failure(
            "error: spurious network error (3 tries remaining)"
        ));
    }
}
