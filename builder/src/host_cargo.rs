//! cargo commands that run on the host, with network, before the sandbox: reading
//! manifests, packaging, lockfile generation and dependency fetch. None of them runs
//! code from the crate, and none reads configuration a crate ships.
//!
//! cargo reads `.cargo/config.toml` from its working directory and every ancestor, and
//! such a file can name programs cargo runs (`build.rustc-wrapper`, credential
//! providers) or move a registry's index to a server that then receives its token.
//! So every command here runs from `/` with `--manifest-path`, in docbuild's own cargo
//! home, with a configuration docbuild assembles itself ([`Registries`]): the user's
//! `$CARGO_HOME/config.toml`, `docbuild.toml`, and from a local project's own cargo
//! configuration only registry index URLs, which never get a token.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::identity::RegistryName;
use crate::toolchain::Toolchain;

/// The longest any host-side cargo command may run (a cold fetch of a large graph).
const HOST_COMMAND_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A fetch recorded longer ago than this runs again, whatever its inputs: it also
/// renews cargo's record of what the cargo home's packages are used for.
const FETCH_STAMP_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Where a registry's definition came from, which decides whether it gets a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The user's cargo home or `docbuild.toml`.
    User,
    /// A local project's own `.cargo/config.toml`: an index URL, never a token.
    Project,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Registry {
    pub index: String,
    pub origin: Origin,
    token: Option<String>,
}

impl Registry {
    /// The token, for a registry whose index the user defined; never for one a
    /// project named.
    pub fn token(&self) -> Option<&str> {
        match self.origin {
            Origin::User => self.token.as_deref(),
            Origin::Project => None,
        }
    }
}

/// The registries builds may use, by name, with their tokens. Tokens go to host-side
/// cargo only, and only for registries whose index the user defined.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registries {
    entries: BTreeMap<RegistryName, Registry>,
    /// The user's `$CARGO_HOME/config.toml`, given to host-side cargo.
    user_config: Option<PathBuf>,
}

impl Registries {
    /// The user's registries: `$CARGO_HOME/config.toml` (indexes) and
    /// `credentials.toml` (tokens), then `docbuild` (from `docbuild.toml`, which wins).
    pub fn user(docbuild: &[(String, String, Option<String>)]) -> Self {
        let mut registries = Self::default();
        if let Some(home) = user_cargo_home() {
            let config = home.join("config.toml");
            if let Some(table) = read_table(&config) {
                for (name, index, token) in registry_entries(&table) {
                    registries.define(&name, index, token, Origin::User);
                }
                registries.user_config = Some(config);
            }
            if let Some(table) = read_table(&home.join("credentials.toml")) {
                for (name, _, token) in registry_entries(&table) {
                    if let (Some(token), Ok(name)) = (token, RegistryName::new(&name))
                        && let Some(entry) = registries.entries.get_mut(&name)
                    {
                        entry.token = Some(token);
                    }
                }
            }
        }
        for (name, index, token) in docbuild {
            registries.define(name, Some(index.clone()), token.clone(), Origin::User);
        }
        registries
    }

    /// Adds the index URLs a local project's own cargo configuration names (the
    /// `.cargo/config.toml` of `project_dir` and its ancestors), for registries the
    /// user did not define. Nothing else of those files is used.
    pub fn with_project(mut self, project_dir: &Path) -> Self {
        for dir in project_dir.ancestors() {
            for file in ["config.toml", "config"] {
                let Some(table) = read_table(&dir.join(".cargo").join(file)) else {
                    continue;
                };
                for (name, index, _token) in registry_entries(&table) {
                    let known = RegistryName::new(&name)
                        .map(|n| self.entries.contains_key(&n))
                        .unwrap_or(true);
                    if !known {
                        self.define(&name, index, None, Origin::Project);
                    }
                }
            }
        }
        self
    }

    fn define(&mut self, name: &str, index: Option<String>, token: Option<String>, origin: Origin) {
        let Ok(name) = RegistryName::new(name) else {
            tracing::warn!(name, "ignoring a registry with an invalid name");
            return;
        };
        match (self.entries.get_mut(&name), index) {
            (Some(entry), Some(index)) => {
                entry.index = index;
                entry.token = token.or(entry.token.take());
            }
            (Some(entry), None) => entry.token = token.or(entry.token.take()),
            (None, Some(index)) => {
                self.entries.insert(
                    name,
                    Registry {
                        index,
                        origin,
                        token,
                    },
                );
            }
            (None, None) => {}
        }
    }

    pub fn get(&self, name: &str) -> Option<&Registry> {
        RegistryName::new(name)
            .ok()
            .and_then(|name| self.entries.get(&name))
    }

    /// Environment for host-side cargo: every index, and the tokens of the user's
    /// registries with cargo's built-in token provider.
    pub fn host_env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        for (name, registry) in &self.entries {
            let key = name.env_key();
            env.push((
                format!("CARGO_REGISTRIES_{key}_INDEX"),
                registry.index.clone(),
            ));
            if let Some(token) = registry.token() {
                env.push((format!("CARGO_REGISTRIES_{key}_TOKEN"), token.to_string()));
                env.push((
                    format!("CARGO_REGISTRIES_{key}_CREDENTIAL_PROVIDER"),
                    "cargo:token".into(),
                ));
            }
        }
        env
    }

    /// Environment for the sandbox: index URLs by name, so that cargo inside maps
    /// `registry = "name"` to the sources fetched for it. Never a token.
    pub fn sandbox_env(&self) -> Vec<(String, String)> {
        self.entries
            .iter()
            .map(|(name, registry)| {
                (
                    format!("CARGO_REGISTRIES_{}_INDEX", name.env_key()),
                    registry.index.clone(),
                )
            })
            .collect()
    }
}

fn read_table(path: &Path) -> Option<toml::Table> {
    std::fs::read_to_string(path).ok()?.parse().ok()
}

/// `[registries.NAME]` entries: name, index, token.
fn registry_entries(table: &toml::Table) -> Vec<(String, Option<String>, Option<String>)> {
    let Some(toml::Value::Table(entries)) = table.get("registries") else {
        return Vec::new();
    };
    entries
        .iter()
        .map(|(name, entry)| {
            let text = |key| {
                entry
                    .get(key)
                    .and_then(toml::Value::as_str)
                    .map(str::to_string)
            };
            (name.clone(), text("index"), text("token"))
        })
        .collect()
}

fn user_cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| dirs::home_dir().map(|home| home.join(".cargo")))
}

/// Why a host-side command failed, which decides the build's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostFailure {
    /// The crate's fault: a broken manifest, an unresolvable dependency.
    Crate,
    /// Not the crate's fault: the network, the registry, the machine.
    Infrastructure,
    /// The build was cancelled.
    Cancelled,
}

/// A host-side command that failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{command}` failed: {message}")]
pub struct HostCargoError {
    pub command: &'static str,
    /// The command's error, on one line.
    pub message: String,
    pub failure: HostFailure,
}

impl HostCargoError {
    fn new(command: &'static str, failure: HostFailure, message: impl Into<String>) -> Self {
        Self {
            command,
            message: message.into(),
            failure,
        }
    }
}

/// Runs the build's toolchain's cargo on the host, in docbuild's cargo home.
#[derive(Debug, Clone)]
pub struct HostCargo {
    cargo: PathBuf,
    rustc: PathBuf,
    bootstrap: bool,
    /// docbuild's own cargo home: the registry cache the sandbox mounts read-only.
    cargo_home: PathBuf,
    user_config: Option<PathBuf>,
    env: Vec<(String, String)>,
    cancel: CancellationToken,
    /// Every command run, as it can be replayed by hand (tokens hidden).
    commands: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// Inherited variables that would change what host-side cargo runs or where it
/// sends tokens; docbuild sets what it needs itself.
fn cleared(name: &str) -> bool {
    const PREFIXES: [&str; 5] = [
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
        "CARGO_BUILD_",
        "CARGO_CREDENTIAL_",
        "CARGO_TARGET_",
    ];
    const NAMES: [&str; 6] = [
        "CARGO_HOME",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTUP_TOOLCHAIN",
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || NAMES.contains(&name)
}

impl HostCargo {
    pub fn new(
        toolchain: &Toolchain,
        cargo_home: &Path,
        registries: &Registries,
        cancel: &CancellationToken,
    ) -> Self {
        Self {
            cargo: toolchain.cargo(),
            rustc: toolchain.rustc(),
            bootstrap: toolchain.needs_bootstrap(),
            cargo_home: cargo_home.to_path_buf(),
            user_config: registries.user_config.clone(),
            env: registries.host_env(),
            cancel: cancel.clone(),
            commands: Default::default(),
        }
    }

    /// The commands run so far, shell-quoted, tokens hidden.
    pub fn commands(&self) -> Vec<String> {
        self.commands.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn cargo_home(&self) -> &Path {
        &self.cargo_home
    }

    /// `cargo metadata --no-deps`: validates the manifest and runs nothing.
    pub async fn read_manifest(
        &self,
        manifest: &Path,
    ) -> Result<cargo_metadata::Metadata, HostCargoError> {
        let command = self.command(
            &["metadata", "--format-version", "1", "--no-deps"],
            manifest,
        );
        let stdout = self.run("cargo metadata", command).await?;
        parse_metadata(&stdout)
    }

    /// `cargo package --no-verify` as the user would run it before publishing, without
    /// the verify build (it would run build scripts on the host). With names, those
    /// members of the workspace together, so that they resolve to each other.
    pub async fn package(
        &self,
        manifest: &Path,
        names: &[&str],
        target_dir: &Path,
    ) -> Result<(), HostCargoError> {
        let mut command = self.command(&["package", "--no-verify", "--allow-dirty"], manifest);
        command.arg("--target-dir").arg(target_dir);
        for name in names {
            command.args(["-p", name]);
        }
        self.run("cargo package", command).await.map(drop)
    }

    /// `cargo generate-lockfile`.
    pub async fn generate_lockfile(
        &self,
        manifest: &Path,
        config: &[String],
    ) -> Result<(), HostCargoError> {
        let mut command = self.command(&["generate-lockfile"], manifest);
        add_config(&mut command, config);
        self.run("cargo generate-lockfile", command).await.map(drop)
    }

    /// `cargo fetch`, for every target, so that the sandboxed build runs `--offline`.
    pub async fn fetch(&self, manifest: &Path, config: &[String]) -> Result<(), HostCargoError> {
        let mut command = self.command(&["fetch"], manifest);
        add_config(&mut command, config);
        self.run("cargo fetch", command).await.map(drop)
    }

    /// [`HostCargo::fetch`], unless the last fetch recorded in `stamp` (a file of
    /// the work directory) had exactly these inputs and left them as they are now —
    /// manifest, lockfile, configuration, toolchain, cargo home, registry indexes —
    /// less than a day ago, and every registry package the lockfile names is still
    /// unpacked in the cargo home. Packages from git or local paths always fetch.
    /// Returns whether cargo ran; a skipped fetch is still listed in
    /// [`HostCargo::commands`], since a replay by hand needs it.
    pub async fn fetch_unless_fetched(
        &self,
        manifest: &Path,
        config: &[String],
        stamp: &Path,
    ) -> Result<bool, HostCargoError> {
        // File work off the async runtime.
        let key = |this: &Self, stamp: Option<PathBuf>| {
            let (this, manifest, config) = (this.clone(), manifest.to_path_buf(), config.to_vec());
            tokio::task::spawn_blocking(move || {
                let key = this.fetch_key(&manifest, &config);
                let recorded = stamp.and_then(|stamp| {
                    let age = std::fs::metadata(&stamp)
                        .ok()?
                        .modified()
                        .ok()?
                        .elapsed()
                        .ok()?;
                    let recorded = std::fs::read_to_string(&stamp).ok();
                    recorded.filter(|_| age < FETCH_STAMP_MAX_AGE)
                });
                (key, recorded)
            })
        };
        let mut command = self.command(&["fetch"], manifest);
        add_config(&mut command, config);
        if let Ok((Some(before), Some(recorded))) = key(self, Some(stamp.to_path_buf())).await
            && before == recorded
        {
            if let Ok(mut commands) = self.commands.lock() {
                commands.push(replayable(command.as_std()));
            }
            return Ok(false);
        }
        // Gone until a fetch succeeds again.
        let old = stamp.to_path_buf();
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(old)).await;
        self.run("cargo fetch", command).await?;
        // What the fetch left (it may have updated the lockfile) is what the next
        // check must find to skip it.
        if let Ok((Some(after), _)) = key(self, None).await {
            let stamp = stamp.to_path_buf();
            let _ = tokio::task::spawn_blocking(move || std::fs::write(stamp, after)).await;
        }
        Ok(true)
    }

    /// The digest of everything `cargo fetch` depends on, `None` when it cannot be
    /// skipped: a package not from a registry (git, a path), or one not unpacked.
    fn fetch_key(&self, manifest: &Path, config: &[String]) -> Option<String> {
        let dir = manifest.parent()?;
        let lockfile = std::fs::read(dir.join("Cargo.lock")).ok()?;
        let lock: toml::Table = std::str::from_utf8(&lockfile).ok()?.parse().ok()?;
        // None yet when nothing was ever unpacked (a package without dependencies).
        let unpacked: Vec<PathBuf> = std::fs::read_dir(self.cargo_home.join("registry/src"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|index| index.path())
            .collect();
        let mut roots = 0;
        for package in lock.get("package")?.as_array()? {
            let name = package.get("name")?.as_str()?;
            let version = package.get("version")?.as_str()?;
            match package.get("source").and_then(toml::Value::as_str) {
                None => roots += 1,
                Some(source)
                    if source.starts_with("registry+") || source.starts_with("sparse+") =>
                {
                    let dir = format!("{name}-{version}");
                    if !unpacked
                        .iter()
                        .any(|index| index.join(&dir).join(".cargo-ok").is_file())
                    {
                        return None;
                    }
                }
                Some(_) => return None,
            }
        }
        // The package itself is the lockfile's only package without a source.
        if roots != 1 {
            return None;
        }
        let mut digest = Sha256::new();
        let mut part = |bytes: &[u8]| {
            digest.update((bytes.len() as u64).to_le_bytes());
            digest.update(bytes);
        };
        let stamp_of = |path: &Path| {
            std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)))
                .map(|(len, at)| format!("{len} {at:?}"))
                .unwrap_or_default()
        };
        part(self.cargo.as_os_str().as_encoded_bytes());
        part(stamp_of(&self.cargo).as_bytes());
        part(self.cargo_home.as_os_str().as_encoded_bytes());
        if let Some(user_config) = &self.user_config {
            part(&std::fs::read(user_config).unwrap_or_default());
        }
        // Indexes by name; never a token.
        for (key, value) in &self.env {
            if key.ends_with("_INDEX") {
                part(key.as_bytes());
                part(value.as_bytes());
            }
        }
        for value in config {
            part(value.as_bytes());
        }
        part(&std::fs::read(manifest).ok()?);
        part(&lockfile);
        Some(
            digest
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    }

    /// `cargo metadata` with dependencies, offline, with cargo's default features.
    pub async fn metadata(
        &self,
        manifest: &Path,
        config: &[String],
    ) -> Result<cargo_metadata::Metadata, HostCargoError> {
        self.metadata_with_features(manifest, config, &[]).await
    }

    /// `cargo metadata` with dependencies, offline, its graph resolved with
    /// `features` (cargo's feature arguments).
    pub async fn metadata_with_features(
        &self,
        manifest: &Path,
        config: &[String],
        features: &[String],
    ) -> Result<cargo_metadata::Metadata, HostCargoError> {
        let mut command = self.command(
            &["metadata", "--format-version", "1", "--offline"],
            manifest,
        );
        command.args(features);
        add_config(&mut command, config);
        let stdout = self.run("cargo metadata", command).await?;
        parse_metadata(&stdout)
    }

    /// `cargo [--config USER_CONFIG] --quiet SUBCOMMAND… --manifest-path MANIFEST`,
    /// from `/`, in docbuild's cargo home.
    fn command(&self, subcommand: &[&str], manifest: &Path) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.cargo);
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_none_or(cleared) {
                command.env_remove(&name);
            }
        }
        command
            .current_dir("/")
            .env("CARGO_HOME", &self.cargo_home)
            .env("RUSTC", &self.rustc)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if self.bootstrap {
            command.env("RUSTC_BOOTSTRAP", "1");
        }
        if let Some(file) = &self.user_config {
            command.arg("--config").arg(file);
        }
        command
            .arg("--quiet")
            .args(subcommand)
            .arg("--manifest-path")
            .arg(manifest);
        command
    }

    /// Runs to completion, its time limit or cancellation; returns stdout. A failed
    /// command leaves no half-unpacked dependency behind (cargo unpacks during
    /// `fetch`, `metadata` and resolution, and stops at a hostile archive).
    async fn run(
        &self,
        name: &'static str,
        command: tokio::process::Command,
    ) -> Result<Vec<u8>, HostCargoError> {
        if let Ok(mut commands) = self.commands.lock() {
            commands.push(replayable(command.as_std()));
        }
        let result = run_host(name, command, HOST_COMMAND_TIMEOUT, &self.cancel).await;
        if result.is_err() {
            let home = self.cargo_home.clone();
            let cleaned = tokio::task::spawn_blocking(move || remove_partial_unpacks(&home)).await;
            if let Ok(Err(error)) = cleaned {
                tracing::warn!(%error, "cannot remove partly unpacked dependencies");
            }
        }
        result
    }
}

/// Runs one host process with a time limit, killed when `cancel` fires or the
/// future is dropped. Returns its stdout; a failure carries its stderr on one line,
/// classified by [`looks_like_infrastructure`].
pub(crate) async fn run_host(
    name: &'static str,
    mut command: tokio::process::Command,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<Vec<u8>, HostCargoError> {
    tracing::debug!(?command, "host command");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().map_err(|e| {
        HostCargoError::new(
            name,
            HostFailure::Infrastructure,
            format!("cannot run: {e}"),
        )
    })?;
    let output = tokio::select! {
        output = tokio::time::timeout(limit, child.wait_with_output()) => output,
        _ = cancel.cancelled() => {
            return Err(HostCargoError::new(name, HostFailure::Cancelled, "cancelled"));
        }
    };
    let output = output
        .map_err(|_| {
            HostCargoError::new(
                name,
                HostFailure::Infrastructure,
                format!("no answer within {}", humantime::format_duration(limit)),
            )
        })?
        .map_err(|e| HostCargoError::new(name, HostFailure::Infrastructure, e.to_string()))?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let failure = if looks_like_infrastructure(&stderr) {
        HostFailure::Infrastructure
    } else {
        HostFailure::Crate
    };
    Err(HostCargoError::new(name, failure, one_line_error(&stderr)))
}

/// `cd DIR && VAR=VALUE… PROGRAM ARGS…`, shell-quoted; the values of token variables
/// are hidden.
fn replayable(command: &std::process::Command) -> String {
    let quote =
        |text: &str| shlex::try_quote(text).map_or_else(|_| text.to_string(), |q| q.into_owned());
    let mut parts = Vec::new();
    if let Some(dir) = command.get_current_dir() {
        parts.push(format!("cd {} &&", quote(&dir.to_string_lossy())));
    }
    for (key, value) in command.get_envs() {
        let (Some(key), Some(value)) = (key.to_str(), value) else {
            continue;
        };
        let value = if key.ends_with("_TOKEN") {
            "***".to_string()
        } else {
            value.to_string_lossy().into_owned()
        };
        parts.push(format!("{key}={}", quote(&value)));
    }
    parts.push(quote(&command.get_program().to_string_lossy()));
    parts.extend(command.get_args().map(|arg| quote(&arg.to_string_lossy())));
    parts.join(" ")
}

fn add_config(command: &mut tokio::process::Command, config: &[String]) {
    for value in config {
        command.arg("--config").arg(value);
    }
}

fn parse_metadata(stdout: &[u8]) -> Result<cargo_metadata::Metadata, HostCargoError> {
    cargo_metadata::MetadataCommand::parse(String::from_utf8_lossy(stdout)).map_err(|e| {
        HostCargoError::new("cargo metadata", HostFailure::Infrastructure, e.to_string())
    })
}

/// Removes dependencies cargo began to unpack but did not finish (no `.cargo-ok`),
/// such as a size bomb cut off at cargo's cap, holding cargo's package cache lock so
/// that no unpack under way is touched.
fn remove_partial_unpacks(cargo_home: &Path) -> std::io::Result<()> {
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(cargo_home.join(".package-cache"))?;
    lock.lock()?;
    let Ok(indexes) = std::fs::read_dir(cargo_home.join("registry/src")) else {
        return Ok(());
    };
    for index in indexes.flatten() {
        let Ok(packages) = std::fs::read_dir(index.path()) else {
            continue;
        };
        for package in packages.flatten() {
            let path = package.path();
            let is_dir = package.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && !path.join(".cargo-ok").exists() {
                tracing::info!(path = %path.display(), "removing a partly unpacked dependency");
                std::fs::remove_dir_all(&path)?;
            }
        }
    }
    Ok(())
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
fn looks_like_infrastructure(stderr: &str) -> bool {
    const SIGNS: [&str; 24] = [
        "spurious network error",
        "failed to download",
        "Couldn't resolve host",
        "Could not resolve host",
        "Couldn't connect to server",
        "Could not connect to server",
        "failed to connect",
        "Failed to connect",
        "Connection refused",
        "Operation timed out",
        "Timeout was reached",
        "network failure",
        "SSL connect error",
        "SSL peer certificate",
        "SSL certificate problem",
        "No space left on device",
        "token rejected",
        "got 401",
        "got 403",
        "got 429",
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
    fn project_registries_get_indexes_but_never_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("project");
        std::fs::create_dir_all(project.join(".cargo")).unwrap();
        std::fs::write(
            project.join(".cargo/config.toml"),
            "[registries.ours]\nindex = \"sparse+https://evil.example/index/\"\ntoken = \"planted\"\n\
             [registries.theirs]\nindex = \"sparse+https://reg.example/index/\"\n\
             [build]\nrustc-wrapper = \"/tmp/evil.sh\"\n",
        )
        .unwrap();
        let user = [(
            "ours".to_string(),
            "sparse+https://ours.example/index/".to_string(),
            Some("secret".to_string()),
        )];
        let registries = Registries::user(&user).with_project(&project);
        let env = registries.host_env();
        assert!(env.contains(&(
            "CARGO_REGISTRIES_OURS_INDEX".into(),
            "sparse+https://ours.example/index/".into()
        )));
        assert!(env.contains(&("CARGO_REGISTRIES_OURS_TOKEN".into(), "secret".into())));
        assert!(env.contains(&(
            "CARGO_REGISTRIES_THEIRS_INDEX".into(),
            "sparse+https://reg.example/index/".into()
        )));
        assert!(
            !env.iter()
                .any(|(_, v)| v.contains("evil") || v == "planted")
        );
        assert!(
            registries
                .sandbox_env()
                .iter()
                .all(|(k, _)| k.ends_with("_INDEX"))
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
        assert!(!looks_like_infrastructure(stderr));
        assert!(looks_like_infrastructure(
            "error: spurious network error (3 tries remaining)"
        ));
    }

    #[test]
    fn a_fetch_is_skipped_only_with_every_registry_package_unpacked() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("cargo-home");
        let toolchain = Toolchain {
            name: "nightly".into(),
            sysroot: dir.path().join("toolchain"),
            version: "rustc 1.0.0-nightly".into(),
            host: "x86_64-unknown-linux-gnu".into(),
        };
        let cargo = HostCargo::new(
            &toolchain,
            &home,
            &Registries::default(),
            &CancellationToken::new(),
        );
        let source = dir.path().join("src");
        std::fs::create_dir_all(&source).unwrap();
        let manifest = source.join("Cargo.toml");
        std::fs::write(&manifest, "[package]\nname = \"app\"\n").unwrap();
        let root = "[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n";
        let lock =
            |extra: &str| std::fs::write(source.join("Cargo.lock"), format!("{root}{extra}"));
        // No dependency, nothing ever unpacked.
        lock("").unwrap();
        let alone = cargo.fetch_key(&manifest, &[]).unwrap();
        let dep = "[[package]]\nname = \"dep\"\nversion = \"1.0.0\"\n\
                   source = \"registry+https://github.com/rust-lang/crates.io-index\"\n";
        lock(dep).unwrap();
        assert_eq!(cargo.fetch_key(&manifest, &[]), None, "not unpacked");
        let unpacked = home.join("registry/src/index.crates.io-0123/dep-1.0.0");
        std::fs::create_dir_all(&unpacked).unwrap();
        assert_eq!(cargo.fetch_key(&manifest, &[]), None, "partly unpacked");
        std::fs::write(unpacked.join(".cargo-ok"), "{\"v\":1}").unwrap();
        let with_dep = cargo.fetch_key(&manifest, &[]).unwrap();
        assert_ne!(alone, with_dep);
        assert_ne!(
            cargo.fetch_key(&manifest, &["patch.crates-io.dep.path=\"x\"".into()]),
            Some(with_dep)
        );
        let git = "[[package]]\nname = \"dep\"\nversion = \"1.0.0\"\n\
                   source = \"git+https://example.invalid/dep#0123\"\n";
        lock(git).unwrap();
        assert_eq!(cargo.fetch_key(&manifest, &[]), None, "git");
        lock("[[package]]\nname = \"local\"\nversion = \"0.1.0\"\n").unwrap();
        assert_eq!(cargo.fetch_key(&manifest, &[]), None, "path");
    }

    #[test]
    fn partial_unpacks_are_removed() {
        let home = tempfile::tempdir().unwrap();
        let index = home.path().join("registry/src/index.example-0123");
        std::fs::create_dir_all(index.join("done-1.0.0")).unwrap();
        std::fs::write(index.join("done-1.0.0/.cargo-ok"), "{\"v\":1}").unwrap();
        std::fs::create_dir_all(index.join("bomb-1.0.0")).unwrap();
        std::fs::write(index.join("bomb-1.0.0/huge"), vec![0u8; 1024]).unwrap();
        remove_partial_unpacks(home.path()).unwrap();
        assert!(index.join("done-1.0.0").is_dir());
        assert!(!index.join("bomb-1.0.0").exists());
    }
}
