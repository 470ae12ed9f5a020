//! Blob storage: one interface over a local directory and any S3-compatible service,
//! so everything above it (stored builds, logs, manifests) is written once and runs on
//! either.
//!
//! Both backends are `object_store` implementations behind an `Arc<dyn ObjectStore>`:
//! its `LocalFileSystem` writes each object to a staging file beside the target and
//! renames it into place, so a reader sees a whole object or none (as S3 guarantees),
//! and its S3 client is the one tested against AWS, MinIO and moto.
//!
//! Keys are docbuild's own (`blobs/ab/<sha256>`, `builds/12/manifest.json.gz`). Each is
//! still checked where it enters ([`check_key`]): no `..`, no empty segment, no leading
//! `/`, only a few plain characters. A key is never a path an attacker chose, and if a
//! bug ever made it one, it still could not name a file outside the storage.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

/// Where stored builds live, as configured (`[storage] url` in docbuild.toml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageLocation {
    /// A local directory (the data directory's, by default); made if missing.
    Directory(PathBuf),
    /// A bucket of an S3-compatible service, every key below `prefix` (may be empty).
    S3 {
        bucket: String,
        prefix: String,
        /// `None` is AWS itself; otherwise the service's URL (`http://` is allowed,
        /// for MinIO, moto or a service on the same host).
        endpoint: Option<String>,
        region: Option<String>,
    },
}

/// Any failure of the blob storage, in one line that names the key and the backend.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("invalid storage location `{url}`: {reason}")]
    Location { url: String, reason: String },
    #[error("invalid blob key `{key}`: {reason}")]
    Key { key: String, reason: &'static str },
    #[error("cannot open {backend}: {message}")]
    Open {
        backend: String,
        message: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot {operation} `{key}` in {backend}: {message}")]
    Storage {
        operation: &'static str,
        key: String,
        backend: String,
        message: String,
        #[source]
        source: Box<object_store::Error>,
    },
}

/// One stored object, as listing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The key, relative to the storage's prefix (what [`Blobs::get`] takes).
    pub key: String,
    pub size: u64,
    /// Last written: [`crate::archive::sweep`] keeps what is younger than its grace
    /// period, so a build being stored is never swept.
    pub modified: SystemTime,
}

/// The blob storage, cheap to clone (one client shared by all clones).
#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// Prepended to every key, without a trailing `/`; empty for a directory.
    prefix: String,
    description: Arc<str>,
    /// The directory, for [`Blobs::flush`]; `None` on S3.
    directory: Option<PathBuf>,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl StorageLocation {
    /// `s3://bucket/some/prefix` (endpoint and region come from the `[storage]`
    /// settings, not the URL), `file:///abs/path` or a plain absolute path.
    pub fn parse(
        url: &str,
        endpoint: Option<&str>,
        region: Option<&str>,
    ) -> Result<Self, BlobError> {
        let invalid = |reason: &str| BlobError::Location {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = strip_prefix_ignore_case(url, "s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty()
                || !bucket
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
            {
                return Err(invalid(
                    "the bucket name must be ASCII letters, digits, `.`, `-` or `_`",
                ));
            }
            let prefix = prefix.trim_end_matches('/');
            if !prefix.is_empty() {
                check_key(prefix).map_err(|error| match error {
                    BlobError::Key { reason, .. } => invalid(&format!("its prefix: {reason}")),
                    other => other,
                })?;
            }
            if let Some(endpoint) = endpoint {
                let lower = endpoint.to_ascii_lowercase();
                if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                    return Err(invalid(&format!(
                        "the endpoint `{endpoint}` is not an http:// or https:// URL"
                    )));
                }
            }
            return Ok(StorageLocation::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
                endpoint: endpoint.map(|e| e.trim_end_matches('/').to_string()),
                region: region.map(str::to_string),
            });
        }
        let path = if let Some(rest) = strip_prefix_ignore_case(url, "file://") {
            if !rest.starts_with('/') {
                return Err(invalid(
                    "a file URL names a local absolute path: file:///abs/path",
                ));
            }
            rest
        } else if url.contains("://") {
            return Err(invalid(
                "only s3://, file:// and absolute paths are supported",
            ));
        } else {
            url
        };
        let path = Path::new(path);
        if !path.is_absolute() {
            return Err(invalid("a directory must be given as an absolute path"));
        }
        Ok(StorageLocation::Directory(path.to_path_buf()))
    }

    /// How logs and errors name this location: `directory /x`, or
    /// `s3://bucket/prefix at http://endpoint`.
    pub fn describe(&self) -> String {
        match self {
            StorageLocation::Directory(path) => format!("directory {}", path.display()),
            StorageLocation::S3 {
                bucket,
                prefix,
                endpoint,
                region,
            } => {
                let mut text = format!("s3://{bucket}");
                if !prefix.is_empty() {
                    text.push('/');
                    text.push_str(prefix);
                }
                match (endpoint, region) {
                    (Some(endpoint), _) => text.push_str(&format!(" at {endpoint}")),
                    (None, Some(region)) => text.push_str(&format!(" in {region}")),
                    (None, None) => {}
                }
                text
            }
        }
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// The longest key S3 accepts; longer ones are refused here rather than by the server.
const MAX_KEY_LEN: usize = 1024;

/// Checks a key: `/`-separated segments of ASCII letters, digits, `.`, `_`, `-` and
/// `+` (versions' build metadata); no empty, `.` or `..` segment, no leading or
/// trailing `/`; no `#` either, as the directory backend names its staging files
/// `KEY#N` and would hide such a key. Defence in depth: every key is docbuild's own.
pub fn check_key(key: &str) -> Result<(), BlobError> {
    let refuse = |reason| {
        Err(BlobError::Key {
            key: key.escape_debug().to_string(),
            reason,
        })
    };
    if key.is_empty() {
        return refuse("it is empty");
    }
    if key.len() > MAX_KEY_LEN {
        return refuse("it is longer than 1024 bytes");
    }
    if key.starts_with('/') {
        return refuse("it starts with `/`");
    }
    for segment in key.split('/') {
        match segment {
            "" => return refuse("it has an empty segment"),
            "." | ".." => return refuse("it has a `.` or `..` segment"),
            _ => {}
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
        {
            return refuse("only ASCII letters, digits, `.`, `_`, `-` and `+` are allowed");
        }
    }
    Ok(())
}

/// object_store's error in one line (S3 errors may carry an XML body over lines).
fn one_line(error: &dyn std::fmt::Display) -> String {
    let text = error.to_string();
    let mut line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.len() > 400 {
        let mut end = 400;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push('…');
    }
    line
}

impl Blobs {
    /// Opens the storage. A directory is made if missing. On S3, credentials come
    /// from the environment as AWS tools take them (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, or the instance's role), never
    /// from docbuild.toml; bucket, endpoint and region from the location override the
    /// environment. Requests are path-style and may be plain HTTP, so MinIO, moto or
    /// Ceph on a private network work as AWS does.
    pub fn open(location: &StorageLocation) -> Result<Self, BlobError> {
        Self::open_with(location, |builder| builder)
    }

    /// [`Blobs::open`], with a last say on the S3 client (tests give dummy
    /// credentials this way rather than through the process's environment).
    fn open_with(
        location: &StorageLocation,
        customize: impl FnOnce(AmazonS3Builder) -> AmazonS3Builder,
    ) -> Result<Self, BlobError> {
        let description: Arc<str> = location.describe().into();
        let fail = |source: Box<dyn std::error::Error + Send + Sync>| BlobError::Open {
            backend: description.to_string(),
            message: one_line(&source),
            source,
        };
        match location {
            StorageLocation::Directory(path) => {
                std::fs::create_dir_all(path).map_err(|e| fail(e.into()))?;
                let store = LocalFileSystem::new_with_prefix(path)
                    .map_err(|e| fail(e.into()))?
                    // Deleting a build's last file leaves no empty directory behind.
                    .with_automatic_cleanup(true);
                Ok(Blobs {
                    store: Arc::new(store),
                    prefix: String::new(),
                    description,
                    directory: Some(path.clone()),
                })
            }
            StorageLocation::S3 {
                bucket,
                prefix,
                endpoint,
                region,
            } => {
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_allow_http(true)
                    .with_virtual_hosted_style_request(false);
                if let Some(endpoint) = endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let Some(region) = region {
                    builder = builder.with_region(region);
                }
                let store = customize(builder).build().map_err(|e| fail(e.into()))?;
                Ok(Blobs {
                    store: Arc::new(store),
                    prefix: prefix.trim_matches('/').to_string(),
                    description,
                    directory: None,
                })
            }
        }
    }

    /// `directory /x` or `s3://bucket/prefix at endpoint`, for logs and errors.
    /// Whether this is a local directory, where looking a blob up is cheap.
    pub fn is_directory(&self) -> bool {
        self.directory.is_some()
    }

    pub fn describe(&self) -> String {
        self.description.to_string()
    }

    fn path(&self, key: &str) -> Result<ObjectPath, BlobError> {
        check_key(key)?;
        let full = if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        };
        ObjectPath::parse(&full).map_err(|_| BlobError::Key {
            key: key.to_string(),
            reason: "the storage cannot name it",
        })
    }

    fn failed(&self, operation: &'static str, key: &str, source: object_store::Error) -> BlobError {
        BlobError::Storage {
            operation,
            key: key.to_string(),
            backend: self.describe(),
            message: one_line(&source),
            source: Box::new(source),
        }
    }

    /// Writes `bytes` under `key`, replacing what was there. Atomic on both backends:
    /// a reader sees the old object, the new one or none, never part of one.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        let path = self.path(key)?;
        self.store
            .put(&path, bytes.into())
            .await
            .map_err(|e| self.failed("write", key, e))?;
        Ok(())
    }

    /// Writes `bytes` under `key` only if there is no object there yet, in one
    /// request (S3's `If-None-Match: *`; a hard link in a directory), and says whether
    /// it wrote. Content-addressed blobs are mostly new, so this saves the look-up
    /// that would come first. A service that ignores the condition overwrites, which
    /// for a blob named by its content changes nothing.
    pub async fn put_new(&self, key: &str, bytes: Bytes) -> Result<bool, BlobError> {
        let path = self.path(key)?;
        // In a directory the condition costs a whole write (a staging file that then
        // fails to link), and a look-up only a stat: look first.
        if self.directory.is_some() && self.exists(key).await? {
            return Ok(false);
        }
        let options = object_store::PutOptions::from(object_store::PutMode::Create);
        match self.store.put_opts(&path, bytes.into(), options).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.failed("write", key, e)),
        }
    }

    /// The object's bytes, `None` when there is no such object.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, BlobError> {
        let path = self.path(key)?;
        let result = match self.store.get(&path).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.failed("read", key, e)),
        };
        match result.bytes().await {
            Ok(bytes) => Ok(Some(bytes)),
            // Deleted between the request and reading its body (a directory).
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.failed("read", key, e)),
        }
    }

    /// Size and age of the object, `None` when there is no such object; one request,
    /// no body.
    pub async fn head(&self, key: &str) -> Result<Option<BlobInfo>, BlobError> {
        let path = self.path(key)?;
        match self.store.head(&path).await {
            Ok(meta) => Ok(Some(BlobInfo {
                key: key.to_string(),
                size: meta.size,
                modified: meta.last_modified.into(),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.failed("look up", key, e)),
        }
    }

    /// Whether there is an object under `key`.
    pub async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        Ok(self.head(key).await?.is_some())
    }

    /// Removes the object; one that is already gone is fine (deletes are retried and
    /// may race with another sweeper).
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = self.path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.failed("delete", key, e)),
        }
    }

    /// Removes many objects: S3 takes a thousand per request (`DeleteObjects`), a
    /// directory deletes them concurrently. Ones already gone are fine.
    pub async fn delete_many(&self, keys: &[String]) -> Result<(), BlobError> {
        let paths = keys
            .iter()
            .map(|key| self.path(key))
            .collect::<Result<Vec<_>, _>>()?;
        let locations = futures_util::stream::iter(paths.into_iter().map(Ok)).boxed();
        let mut results = self.store.delete_stream(locations);
        while let Some(result) = results.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    let key = format!("one of {} keys", keys.len());
                    return Err(self.failed("delete", &key, e));
                }
            }
        }
        Ok(())
    }

    /// Every object below `prefix`, a folder matched by whole segments (`blobs`,
    /// `builds/12`; `""` for all), sorted by key. Keys are relative to the storage's
    /// own prefix, as [`Blobs::get`] takes them.
    pub async fn list(&self, prefix: &str) -> Result<Vec<BlobInfo>, BlobError> {
        let prefix = prefix.trim_end_matches('/');
        let path = if prefix.is_empty() {
            if self.prefix.is_empty() {
                None
            } else {
                Some(ObjectPath::parse(&self.prefix).map_err(|_| BlobError::Key {
                    key: self.prefix.clone(),
                    reason: "the storage cannot name it",
                })?)
            }
        } else {
            Some(self.path(prefix)?)
        };
        let objects: Vec<_> = self
            .store
            .list(path.as_ref())
            .try_collect()
            .await
            .map_err(|e| self.failed("list", prefix, e))?;
        let own = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut infos: Vec<BlobInfo> = objects
            .into_iter()
            .filter_map(|meta| {
                let key = meta
                    .location
                    .as_ref()
                    .strip_prefix(own.as_str())?
                    .to_string();
                Some(BlobInfo {
                    key,
                    size: meta.size,
                    modified: meta.last_modified.into(),
                })
            })
            .collect();
        infos.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(infos)
    }

    /// Makes every write so far durable. Writes to a directory are not synced one by
    /// one (an fsync per file would make storing 10,000 files take minutes); this
    /// syncs the whole file system once, before a build's record points at its files.
    /// On S3 a write is durable when it returns, so this does nothing there.
    pub async fn flush(&self) -> Result<(), BlobError> {
        let Some(directory) = self.directory.clone() else {
            return Ok(());
        };
        let fail = |source: std::io::Error| BlobError::Storage {
            operation: "sync",
            key: String::new(),
            backend: self.describe(),
            message: one_line(&source),
            source: Box::new(object_store::Error::Generic {
                store: "LocalFileSystem",
                source: source.into(),
            }),
        };
        tokio::task::spawn_blocking(move || {
            let dir = std::fs::File::open(&directory)?;
            rustix::fs::syncfs(&dir).map_err(std::io::Error::from)
        })
        .await
        .map_err(|e| fail(std::io::Error::other(e)))?
        .map_err(fail)
    }
}

/// What the storage tests share: both backends, each test in a fresh place.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// The S3 test server (moto, started by scripts/services.sh).
    pub fn s3_endpoint() -> String {
        std::env::var("DOCBUILD_TEST_S3").unwrap_or_else(|_| "http://127.0.0.1:9000".into())
    }

    pub const S3_BUCKET: &str = "docbuild-test";

    /// One storage under test; the directory is removed when this is dropped.
    pub struct Backend {
        pub blobs: Blobs,
        pub directory: Option<tempfile::TempDir>,
    }

    impl Backend {
        /// The storage's directory (tests that age files by hand).
        pub fn root(&self) -> Option<PathBuf> {
            self.directory.as_ref().map(|d| d.path().join("storage"))
        }
    }

    /// A fresh temporary directory and a fresh prefix in the S3 test bucket. Panics
    /// with how to start the server when it cannot be reached: a storage test never
    /// passes without having run against S3.
    pub fn backends(test: &str) -> Vec<Backend> {
        let directory = tempfile::tempdir().expect("temporary directory");
        let local = Blobs::open(&StorageLocation::Directory(
            directory.path().join("storage"),
        ))
        .expect("open a directory");
        vec![
            Backend {
                blobs: local,
                directory: Some(directory),
            },
            Backend {
                blobs: s3(test),
                directory: None,
            },
        ]
    }

    /// A fresh prefix in the S3 test bucket, checked to be reachable.
    pub fn s3(test: &str) -> Blobs {
        let endpoint = s3_endpoint();
        let reachable = (|| {
            let rest = endpoint
                .strip_prefix("http://")
                .or_else(|| endpoint.strip_prefix("https://"))?;
            let host_port = rest.split('/').next()?;
            use std::net::ToSocketAddrs;
            let address = host_port.to_socket_addrs().ok()?.next()?;
            std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(3)).ok()
        })();
        assert!(
            reachable.is_some(),
            "the S3 test server at {endpoint} (DOCBUILD_TEST_S3) cannot be reached; \
             start it with scripts/services.sh (moto, bucket `{S3_BUCKET}`)"
        );
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let prefix = format!("test/{test}-{}-{nanos}", std::process::id());
        let location = StorageLocation::S3 {
            bucket: S3_BUCKET.into(),
            prefix,
            endpoint: Some(endpoint),
            region: Some("us-east-1".into()),
        };
        Blobs::open_with(&location, |builder| {
            builder
                .with_access_key_id("docbuild-test")
                .with_secret_access_key("docbuild-test")
        })
        .expect("open the S3 test bucket")
    }
}

#[cfg(test)]
mod tests {
    use super::testing::backends;
    use super::*;

    #[tokio::test]
    async fn put_get_exists_delete_list_round_trip() {
        for backend in backends("round-trip") {
            let blobs = &backend.blobs;
            let what = blobs.describe();
            assert_eq!(blobs.get("blobs/ab/missing").await.unwrap(), None, "{what}");
            assert!(!blobs.exists("blobs/ab/missing").await.unwrap(), "{what}");
            assert!(blobs.list("blobs").await.unwrap().is_empty(), "{what}");

            blobs
                .put("blobs/ab/one", Bytes::from_static(b"first"))
                .await
                .unwrap();
            blobs
                .put("blobs/cd/two", Bytes::from_static(b"second!"))
                .await
                .unwrap();
            blobs
                .put("builds/12/manifest.json.gz", Bytes::from_static(b"m"))
                .await
                .unwrap();
            // Overwriting replaces.
            blobs
                .put("blobs/ab/one", Bytes::from_static(b"1st"))
                .await
                .unwrap();

            assert_eq!(
                blobs.get("blobs/ab/one").await.unwrap().as_deref(),
                Some(&b"1st"[..]),
                "{what}"
            );
            assert!(blobs.exists("blobs/cd/two").await.unwrap(), "{what}");
            let info = blobs.head("blobs/cd/two").await.unwrap().expect("head");
            assert_eq!(info.size, 7, "{what}");

            let listed = blobs.list("blobs").await.unwrap();
            let keys: Vec<_> = listed.iter().map(|b| (b.key.as_str(), b.size)).collect();
            assert_eq!(keys, [("blobs/ab/one", 3), ("blobs/cd/two", 7)], "{what}");
            let all = blobs.list("").await.unwrap();
            assert_eq!(all.len(), 3, "{what}");
            // A prefix is a folder: `blob` does not match `blobs/…`.
            assert!(blobs.list("blob").await.unwrap().is_empty(), "{what}");
            let age = SystemTime::now()
                .duration_since(listed[0].modified)
                .unwrap_or_default();
            assert!(age.as_secs() < 600, "{what}: modified {age:?} ago");

            // Written only when missing; what was there stays.
            assert!(
                !blobs
                    .put_new("blobs/ab/one", Bytes::from_static(b"other"))
                    .await
                    .unwrap()
            );
            assert_eq!(
                blobs.get("blobs/ab/one").await.unwrap().as_deref(),
                Some(&b"1st"[..]),
                "{what}"
            );
            assert!(
                blobs
                    .put_new("blobs/ef/new", Bytes::from_static(b"new"))
                    .await
                    .unwrap()
            );
            assert_eq!(
                blobs.get("blobs/ef/new").await.unwrap().as_deref(),
                Some(&b"new"[..]),
                "{what}"
            );
            blobs.delete("blobs/ef/new").await.unwrap();

            blobs.delete("blobs/ab/one").await.unwrap();
            blobs.delete("blobs/ab/one").await.unwrap(); // already gone: fine
            assert!(!blobs.exists("blobs/ab/one").await.unwrap(), "{what}");
            assert_eq!(blobs.list("blobs").await.unwrap().len(), 1, "{what}");
            let rest: Vec<String> = blobs
                .list("")
                .await
                .unwrap()
                .into_iter()
                .map(|b| b.key)
                .collect();
            assert_eq!(rest.len(), 2, "{what}");
            let mut doomed = rest.clone();
            doomed.push("blobs/00/never-there".into());
            blobs.delete_many(&doomed).await.unwrap();
            assert!(blobs.list("").await.unwrap().is_empty(), "{what}");
        }
    }

    #[tokio::test]
    async fn hostile_keys_are_refused_by_every_operation() {
        for backend in backends("keys") {
            let blobs = &backend.blobs;
            for key in [
                "",
                "/etc/passwd",
                "blobs/../../etc/passwd",
                "..",
                "blobs/./x",
                "blobs//x",
                "blobs/x/",
                "blobs/x#1",
                "blobs/x y",
                "blobs\\..\\x",
                "blobs/\u{e9}",
            ] {
                let put = blobs.put(key, Bytes::from_static(b"x")).await;
                assert!(
                    matches!(put, Err(BlobError::Key { .. })),
                    "{key:?}: {put:?}"
                );
                let put_new = blobs.put_new(key, Bytes::from_static(b"x")).await;
                assert!(matches!(put_new, Err(BlobError::Key { .. })), "{key:?}");
                assert!(matches!(blobs.get(key).await, Err(BlobError::Key { .. })));
                assert!(matches!(
                    blobs.exists(key).await,
                    Err(BlobError::Key { .. })
                ));
                assert!(matches!(
                    blobs.delete(key).await,
                    Err(BlobError::Key { .. })
                ));
            }
            let error = blobs.get("blobs/../x").await.unwrap_err().to_string();
            assert!(
                error.contains("blobs/../x") && !error.contains('\n'),
                "{error}"
            );
            assert!(blobs.list("").await.unwrap().is_empty());
        }
    }

    #[tokio::test]
    async fn a_missing_directory_is_made() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("a/b/storage");
        let blobs = Blobs::open(&StorageLocation::Directory(root.clone())).unwrap();
        assert!(root.is_dir());
        assert!(blobs.list("").await.unwrap().is_empty());
        blobs
            .put("builds/1/x", Bytes::from_static(b"x"))
            .await
            .unwrap();
        assert_eq!(std::fs::read(root.join("builds/1/x")).unwrap(), b"x");
        // No staging file is left beside the object.
        let names: Vec<_> = std::fs::read_dir(root.join("builds/1"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["x"]);
        blobs.flush().await.unwrap();
        // Deleting the last file of a folder removes the folder, not the storage.
        blobs.delete("builds/1/x").await.unwrap();
        assert!(!root.join("builds").exists());
        assert!(root.is_dir());
    }

    #[test]
    fn locations_parse() {
        assert_eq!(
            StorageLocation::parse(
                "s3://docs/some/prefix/",
                Some("http://127.0.0.1:9000/"),
                None
            )
            .unwrap(),
            StorageLocation::S3 {
                bucket: "docs".into(),
                prefix: "some/prefix".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: None,
            }
        );
        assert_eq!(
            StorageLocation::parse("s3://docs", None, Some("eu-west-1")).unwrap(),
            StorageLocation::S3 {
                bucket: "docs".into(),
                prefix: String::new(),
                endpoint: None,
                region: Some("eu-west-1".into()),
            }
        );
        assert_eq!(
            StorageLocation::parse("file:///var/lib/docbuild/storage", None, None).unwrap(),
            StorageLocation::Directory("/var/lib/docbuild/storage".into())
        );
        assert_eq!(
            StorageLocation::parse("/srv/docs", None, None).unwrap(),
            StorageLocation::Directory("/srv/docs".into())
        );
        for bad in [
            "relative/dir",
            "file://host/x",
            "gs://bucket",
            "s3://",
            "s3:///prefix",
            "s3://bucket/../x",
            "s3://bucket//x",
            "s3://bu cket/x",
        ] {
            let error = StorageLocation::parse(bad, None, None).unwrap_err();
            assert!(
                matches!(error, BlobError::Location { .. }),
                "{bad}: {error}"
            );
        }
        assert!(StorageLocation::parse("s3://b", Some("ftp://x"), None).is_err());
        assert_eq!(
            StorageLocation::parse("s3://b/p", Some("http://h:9000"), None)
                .unwrap()
                .describe(),
            "s3://b/p at http://h:9000"
        );
        assert_eq!(
            StorageLocation::Directory("/x".into()).describe(),
            "directory /x"
        );
    }

    #[tokio::test]
    async fn errors_name_the_key_and_the_backend() {
        // Nothing listens on port 9 (discard) here; one quick failure, no retries.
        let location = StorageLocation::S3 {
            bucket: "nowhere".into(),
            prefix: "p".into(),
            endpoint: Some("http://127.0.0.1:9".into()),
            region: Some("us-east-1".into()),
        };
        let blobs = Blobs::open_with(&location, |builder| {
            builder
                .with_access_key_id("x")
                .with_secret_access_key("x")
                .with_retry(object_store::RetryConfig {
                    max_retries: 0,
                    ..Default::default()
                })
        })
        .unwrap();
        let error = blobs.get("blobs/ab/abc").await.unwrap_err().to_string();
        assert!(error.contains("`blobs/ab/abc`"), "{error}");
        assert!(
            error.contains("s3://nowhere/p at http://127.0.0.1:9"),
            "{error}"
        );
        assert!(!error.contains('\n'), "{error}");
    }
}
