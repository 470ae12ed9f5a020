//! docbuild's data directory and its configuration file, `docbuild.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::host_cargo::Registries;
use crate::identity::CrateId;

/// The name cargo gives crates.io.
pub const CRATES_IO: &str = "crates-io";

/// The registry name of jobs built from a local path.
pub const LOCAL: &str = "local";

/// Where the queue, the stored builds and the caches live.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// `explicit` (`--data-dir`), else `DOCBUILD_DATA_DIR`, else the platform's data
    /// directory (`~/.local/share/docbuild`).
    pub fn resolve(explicit: Option<&Path>) -> Self {
        let root = explicit
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("DOCBUILD_DATA_DIR").map(PathBuf::from))
            .or_else(|| dirs::data_dir().map(|dir| dir.join("docbuild")))
            .unwrap_or_else(|| PathBuf::from(".docbuild"));
        // Absolute, so that every path below it stays right wherever a command runs.
        let root = std::path::absolute(&root).unwrap_or(root);
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn database(&self) -> PathBuf {
        self.root.join("docbuild.db")
    }

    pub fn config_file(&self) -> PathBuf {
        self.root.join("docbuild.toml")
    }

    /// Stored builds and packaged sources, when blob storage is the data directory.
    pub fn storage(&self) -> PathBuf {
        self.root.join("storage")
    }

    /// Where a build's docs are put together before they are stored (`crates/` is
    /// where docbuild 0.1.0 kept them for good).
    pub fn build_dir(&self, build: i64) -> PathBuf {
        self.root.join("staging").join(build.to_string())
    }

    /// Work directory of a release's builds; its target directory is reused when
    /// the release is rebuilt.
    pub fn work_dir(&self, id: &CrateId) -> PathBuf {
        self.root.join("work").join(id.relative_dir())
    }

    /// Build cache (docbuild's cargo home).
    pub fn cache(&self) -> crate::check::CacheDirs {
        crate::check::CacheDirs::new(self.root.join("cache"))
    }

    /// Where workers keep compiled dependencies as layers.
    pub fn build_cache(&self, budget: u64) -> crate::build_cache::BuildCache {
        crate::build_cache::BuildCache::new(self.root.join("cache").join("layers"), budget)
    }
}

/// `docbuild.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Registries by the name cargo gives them, as in cargo's `[registries]`.
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryConfig>,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub image: ImageConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// `[limits]`: what workers may keep on this machine.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitsConfig {
    /// Space for compiled dependencies reused between builds (`"20GiB"`, the
    /// default); `"0"` turns reuse off.
    #[serde(default, deserialize_with = "size")]
    pub build_cache: Option<u64>,
}

impl LimitsConfig {
    /// The build cache's budget in bytes.
    pub fn build_cache_bytes(&self) -> u64 {
        self.build_cache
            .unwrap_or(crate::build_cache::DEFAULT_BUDGET)
    }
}

/// A size as humans write it: `20GiB`, `500M`, `0`.
fn size<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(deserializer)? {
        Size::Bytes(bytes) => Ok(Some(bytes)),
        Size::Text(text) if text.trim() == "0" => Ok(Some(0)),
        Size::Text(text) => docbuild_sandbox::parse_size(&text).map(Some).map_err(|_| {
            serde::de::Error::custom(format!(
                "`{text}` is not a size (e.g. 20GiB, 500M, or 0 for none)"
            ))
        }),
    }
}

/// `[database]`: where the queue, the build records and the tokens are.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://…`; default: SQLite in the data directory.
    pub url: Option<String>,
}

/// `[storage]`: where stored builds are.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `s3://bucket/prefix`, or a directory; default: the data directory.
    pub url: Option<String>,
    /// Any S3-compatible service's URL.
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

impl Config {
    /// Where the store is: `[database]` and `[storage]`, each overridden by
    /// `DOCBUILD_DATABASE_URL` and `DOCBUILD_STORAGE_URL`, else the data directory.
    pub fn store_location(&self, data: &DataDir) -> Result<docbuild_store::StoreLocation, String> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let database = match env("DOCBUILD_DATABASE_URL").or_else(|| self.database.url.clone()) {
            Some(url) => {
                docbuild_store::DatabaseLocation::parse(&url).map_err(|e| e.to_string())?
            }
            None => docbuild_store::DatabaseLocation::Sqlite(data.database()),
        };
        let storage = match env("DOCBUILD_STORAGE_URL").or_else(|| self.storage.url.clone()) {
            Some(url) => docbuild_store::StorageLocation::parse(
                &url,
                self.storage.endpoint.as_deref(),
                self.storage.region.as_deref(),
            )
            .map_err(|e| format!("[storage] {e}"))?,
            None => docbuild_store::StorageLocation::Directory(data.storage()),
        };
        Ok(docbuild_store::StoreLocation { database, storage })
    }
}

/// `[image]`: which sandbox image builds use, and what docs.rs's environment gets
/// beyond docs.rs's own packages.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    /// `docsrs`, `default`, or any image in the engine.
    pub default: Option<String>,
    /// Debian packages added to the environment (a team's own C libraries).
    #[serde(default)]
    pub packages: Vec<String>,
    /// Debian mirror for `docbuild image build`.
    pub mirror: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// `sparse+https://…/` (or a git index URL).
    pub index: String,
    /// Sent with index and download requests on the host only; never enters a
    /// container.
    pub token: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerConfig {
    /// The viewer's public URL, where docs of this server's registries are linked.
    pub url: Option<String>,
    /// Another origin the docs are served from (`http(s)://host[:port]`, a name that
    /// reaches the same listener), so that no crate's content shares the viewer's
    /// origin. Pages asked for on the viewer's origin are sent there.
    pub docs_url: Option<String>,
    /// How long a client may take to send a request's head, counted from when the
    /// connection is ready for it (so also how long a kept-alive connection may wait).
    #[serde(default, deserialize_with = "duration")]
    pub header_read_timeout: Option<std::time::Duration>,
    /// A connection on which nothing moves, in either direction, for this long is
    /// closed (a stalled upload, a response nobody reads).
    #[serde(default, deserialize_with = "duration")]
    pub idle_timeout: Option<std::time::Duration>,
    /// Connections served at once; past it a client is told to come back (503).
    pub max_connections: Option<usize>,
    /// A token that reads `/metrics` alone (for a scraper), besides admin tokens.
    #[serde(rename = "metrics-token")]
    pub metrics_token: Option<String>,
    /// Anyone may read pages, docs and build records once tokens exist; queueing,
    /// rebuilding and managing still need a token of their scope. Without it, the
    /// site is open only until a first token is made (revoking every token later
    /// leaves it closed).
    #[serde(default)]
    pub public: bool,
}

/// A duration as humans write it: `10s`, `2m`, `500ms`.
fn duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<std::time::Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("`{text}`: {e}")))
}

/// The origin (`scheme://host[:port]`, lower-case, no path) of an `http` or `https`
/// URL, or why it is not one.
pub fn url_origin(url: &str) -> Result<String, String> {
    let lower = url.trim().to_ascii_lowercase();
    let (scheme, rest) = lower
        .split_once("://")
        .ok_or_else(|| format!("`{url}` is not an http(s) URL"))?;
    if scheme != "http" && scheme != "https" {
        return Err(format!("`{url}` is not an http(s) URL"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let valid = !authority.is_empty()
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]_".contains(c));
    if !valid {
        return Err(format!("`{url}` has no valid host"));
    }
    Ok(format!("{scheme}://{authority}"))
}

impl ServerConfig {
    fn validate(&self) -> Result<(), String> {
        let viewer = self.url.as_deref().and_then(|url| url_origin(url).ok());
        if let Some(docs_url) = &self.docs_url {
            let docs = url_origin(docs_url)?;
            let path = docs_url.trim().split_once("://").map_or("", |(_, rest)| {
                rest.find('/').map_or("", |slash| &rest[slash..])
            });
            if !path.is_empty() && path != "/" {
                return Err(format!(
                    "docs-url `{docs_url}` must be an origin only, without a path"
                ));
            }
            if viewer.as_deref() == Some(docs.as_str()) {
                return Err("docs-url must be another origin than url".to_string());
            }
        }
        if self.max_connections == Some(0) {
            return Err("max-connections must be at least 1".to_string());
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("invalid {0}: {1}")]
    Parse(PathBuf, String),
}

impl Config {
    /// Reads `path`, or the data directory's `docbuild.toml`; a missing default file
    /// is an empty configuration.
    pub fn load(explicit: Option<&Path>, data: &DataDir) -> Result<Self, ConfigError> {
        let path = explicit.map_or_else(|| data.config_file(), Path::to_path_buf);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if explicit.is_none() && error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default());
            }
            Err(error) => return Err(ConfigError::Read(path, error)),
        };
        let config: Self = toml::from_str(&text).map_err(|error| {
            ConfigError::Parse(path.clone(), error.message().replace('\n', " "))
        })?;
        config
            .server
            .validate()
            .map_err(|message| ConfigError::Parse(path, format!("[server] {message}")))?;
        Ok(config)
    }

    /// The registries builds may use: the user's cargo configuration, then these.
    pub fn registries(&self) -> Registries {
        let defined: Vec<(String, String, Option<String>)> = self
            .registries
            .iter()
            .map(|(name, r)| (name.clone(), r.index.clone(), r.token.clone()))
            .collect();
        Registries::user(&defined)
    }

    /// `doc.extern-map.registries` entries: crates of this server's registries link
    /// to this server's docs, at `[server] url` or, without one, by a path from the
    /// root of whatever origin serves the docs.
    pub fn extern_map(&self) -> Vec<(String, String)> {
        let url = self.server.url.as_deref().unwrap_or_default();
        let url = url.trim_end_matches('/');
        self.registries
            .keys()
            .filter(|name| *name != CRATES_IO)
            .map(|name| (name.clone(), format!("{url}/{{pkg_name}}/{{version}}")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_tokens_and_links_come_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::resolve(Some(dir.path()));
        std::fs::write(
            data.config_file(),
            "[registries.my-reg]\nindex = \"sparse+http://127.0.0.1:1/index/\"\ntoken = \"t0k\"\n\
             [server]\nurl = \"http://docs.local/\"\n",
        )
        .unwrap();
        let config = Config::load(None, &data).unwrap();
        assert!(
            !config.server.public,
            "closed once tokens exist, by default"
        );
        let env = config.registries().host_env();
        for expected in [
            (
                "CARGO_REGISTRIES_MY_REG_INDEX",
                "sparse+http://127.0.0.1:1/index/",
            ),
            ("CARGO_REGISTRIES_MY_REG_TOKEN", "t0k"),
            ("CARGO_REGISTRIES_MY_REG_CREDENTIAL_PROVIDER", "cargo:token"),
        ] {
            assert!(
                env.contains(&(expected.0.to_string(), expected.1.to_string())),
                "{env:?}"
            );
        }
        assert_eq!(
            config.extern_map(),
            vec![(
                "my-reg".into(),
                "http://docs.local/{pkg_name}/{version}".into()
            )]
        );
        // Without `[server] url`, links go to the docs' own origin.
        std::fs::write(
            data.config_file(),
            "[registries.my-reg]\nindex = \"sparse+http://127.0.0.1:1/index/\"\n",
        )
        .unwrap();
        assert_eq!(
            Config::load(None, &data).unwrap().extern_map(),
            vec![("my-reg".into(), "/{pkg_name}/{version}".into())]
        );
    }

    #[test]
    fn server_keys_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::resolve(Some(dir.path()));
        std::fs::write(
            data.config_file(),
            "[server]\nurl = \"https://Docs.example.com/\"\ndocs-url = \"https://crates.example-docs.com\"\n\
             header-read-timeout = \"5s\"\nidle-timeout = \"2m\"\nmax-connections = 64\npublic = true\n",
        )
        .unwrap();
        let server = Config::load(None, &data).unwrap().server;
        assert!(server.public);
        assert_eq!(
            server.docs_url.as_deref(),
            Some("https://crates.example-docs.com")
        );
        assert_eq!(
            server.header_read_timeout,
            Some(std::time::Duration::from_secs(5))
        );
        assert_eq!(
            server.idle_timeout,
            Some(std::time::Duration::from_secs(120))
        );
        assert_eq!(server.max_connections, Some(64));
        assert_eq!(
            url_origin("https://Docs.example.com/x").unwrap(),
            "https://docs.example.com"
        );
        for bad in [
            "[server]\nidle-timeout = \"soon\"\n",
            "[server]\ndocs-url = \"ftp://x\"\n",
            "[server]\ndocs-url = \"http://docs.local/docs/\"\n",
            "[server]\nurl = \"http://a.local\"\ndocs-url = \"http://a.local/\"\n",
            "[server]\nmax-connections = 0\n",
            "[server]\npublic = \"yes\"\n",
        ] {
            std::fs::write(data.config_file(), bad).unwrap();
            assert!(Config::load(None, &data).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_build_cache_budget_is_a_size_or_zero() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::resolve(Some(dir.path()));
        let budget = |toml: &str| {
            std::fs::write(data.config_file(), toml).unwrap();
            Config::load(None, &data).map(|c| c.limits.build_cache_bytes())
        };
        assert_eq!(budget("").unwrap(), 20 << 30);
        assert_eq!(
            budget("[limits]\nbuild-cache = \"5GiB\"\n").unwrap(),
            5 << 30
        );
        assert_eq!(budget("[limits]\nbuild-cache = \"0\"\n").unwrap(), 0);
        assert_eq!(budget("[limits]\nbuild-cache = 0\n").unwrap(), 0);
        let error = budget("[limits]\nbuild-cache = \"lots\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("`lots` is not a size"), "{error}");
        assert!(budget("[limits]\nbuild-cach = \"1G\"\n").is_err());
    }

    #[test]
    fn a_missing_default_file_is_empty_but_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::resolve(Some(dir.path()));
        assert!(Config::load(None, &data).unwrap().registries.is_empty());
        std::fs::write(data.config_file(), "[registries.x]\nindx = 1\n").unwrap();
        let error = Config::load(None, &data).unwrap_err().to_string();
        assert!(
            error.contains("docbuild.toml") && error.contains("indx"),
            "{error}"
        );
        let missing = dir.path().join("nope.toml");
        assert!(Config::load(Some(&missing), &data).is_err());
    }
}
