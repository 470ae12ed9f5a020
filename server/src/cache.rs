//! What the hot path needs, in memory: releases, tokens and file responses.
//!
//! Requests check whether the store changed. On SQLite, every commit (by a worker, a
//! `token` command, the API) appends to `docbuild.db-wal`, and checkpoints write
//! `docbuild.db`, so their sizes and modification times change: two `stat` calls, no
//! lock, at most once a millisecond. On PostgreSQL (shared by several machines) the
//! store's change counter is read, at most every [`GENERATION_INTERVAL`]. Only on a
//! change are releases, tokens and rewritten pages (whose bar lists the versions)
//! dropped. Stored builds never change once written, so other files stay cached
//! until the cache is full.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use docbuild_store::archive::Encoding;

use crate::catalog::{Release, VersionWithoutDocs};
use docbuild_store::tokens::Access;

/// The most bytes of file bodies kept; past it the file cache starts over.
const MAX_FILE_BYTES: usize = 256 << 20;
/// Files larger than this are read from disk each time.
const MAX_CACHED_FILE: usize = 8 << 20;

/// How often PostgreSQL's change counter is read.
pub const GENERATION_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// A file ready to send, headers included.
#[derive(Debug)]
pub struct CachedFile {
    /// The tag of the body as it is; the gzip and brotli forms have their own.
    pub etag: String,
    pub gzip_etag: String,
    /// The three, ready to send.
    pub etag_values: [Option<axum::http::HeaderValue>; 3],
    pub headers: axum::http::HeaderMap,
    /// The body as it is: given, or decompressed from the stored gzip on the first
    /// request that does not accept gzip.
    body: std::sync::OnceLock<Bytes>,
    /// The body gzipped: as stored, or made on the first request that accepts it
    /// (text only).
    pub gzip: std::sync::OnceLock<Option<Bytes>>,
    /// The body in brotli, as stored.
    pub brotli: Option<Bytes>,
    /// Bytes held, for the cache's budget.
    size: usize,
}

impl CachedFile {
    /// A file from its body as it is, or as stored in gzip or brotli (at least one).
    pub fn new(
        etag: String,
        headers: axum::http::HeaderMap,
        body: Option<Bytes>,
        gzip: Option<Bytes>,
        brotli: Option<Bytes>,
    ) -> Self {
        let gzip_etag = format!("{}-gzip\"", etag.trim_end_matches('"'));
        let brotli_etag = format!("{}-br\"", etag.trim_end_matches('"'));
        let etag_values =
            [&etag, &gzip_etag, &brotli_etag].map(|t| axum::http::HeaderValue::from_str(t).ok());
        let size = [&body, &gzip, &brotli]
            .iter()
            .map(|b| b.as_ref().map_or(0, Bytes::len))
            .sum();
        let cell = |value: Option<Bytes>| {
            let cell = std::sync::OnceLock::new();
            if let Some(value) = value {
                let _ = cell.set(value);
            }
            cell
        };
        Self {
            etag,
            gzip_etag,
            etag_values,
            headers,
            body: cell(body),
            gzip: match gzip {
                Some(gzip) => std::sync::OnceLock::from(Some(gzip)),
                None => std::sync::OnceLock::new(),
            },
            brotli,
            size,
        }
    }

    /// The body as it is, decompressed from what was stored on first need.
    pub fn body(&self) -> &Bytes {
        self.body.get_or_init(|| {
            // What is stored was checked when it was stored; a corrupt one sends less.
            let (encoding, stored) = match (&self.brotli, self.gzip.get()) {
                (Some(brotli), _) => (Encoding::Brotli, brotli.clone()),
                (None, Some(Some(gzip))) => (Encoding::Gzip, gzip.clone()),
                _ => return Bytes::new(),
            };
            let raw = docbuild_store::archive::decompress(encoding, &stored, u64::MAX);
            Bytes::from(raw.unwrap_or_default())
        })
    }

    /// The gzipped body, if the file is stored gzipped or is text worth compressing.
    pub fn gzipped(&self) -> Option<&Bytes> {
        self.gzip
            .get_or_init(|| {
                let kind = self
                    .headers
                    .get(axum::http::header::CONTENT_TYPE)?
                    .to_str()
                    .ok()?;
                let text =
                    kind.starts_with("text/") || kind.contains("json") || kind.contains("svg");
                let body = self.body();
                if !text || body.len() < 256 {
                    return None;
                }
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                std::io::Write::write_all(&mut encoder, body).ok()?;
                encoder.finish().ok().map(Bytes::from)
            })
            .as_ref()
    }
}

#[derive(Default)]
struct Files {
    entries: HashMap<PathBuf, Arc<CachedFile>>,
    bytes: usize,
}

/// How the cache learns of changes.
enum Changes {
    /// The SQLite file and its write-ahead log.
    Files { database: PathBuf, wal: PathBuf },
    /// PostgreSQL's change counter.
    Generation(docbuild_store::Catalog),
}

pub struct Cache {
    changes: Changes,
    /// What the database files looked like when the caches were filled.
    seen: AtomicU64,
    /// When they were last looked at, in nanoseconds since `started`.
    checked: AtomicU64,
    started: std::time::Instant,
    releases: RwLock<HashMap<String, Arc<Vec<Arc<Release>>>>>,
    /// Per crate, its versions that have no docs (failed, queued, running).
    without_docs: RwLock<HashMap<String, Arc<Vec<VersionWithoutDocs>>>>,
    tokens: RwLock<Option<Arc<Access>>>,
    files: RwLock<Files>,
    pages: RwLock<Files>,
}

impl Cache {
    pub fn new(store: &docbuild_store::Store) -> Self {
        let changes = match &store.location().database {
            docbuild_store::DatabaseLocation::Sqlite(database) => {
                let mut wal = database.as_os_str().to_owned();
                wal.push("-wal");
                Changes::Files {
                    database: database.clone(),
                    wal: PathBuf::from(wal),
                }
            }
            docbuild_store::DatabaseLocation::Postgres(_) => Changes::Generation(store.catalog()),
        };
        Self {
            changes,
            seen: AtomicU64::new(0),
            checked: AtomicU64::new(0),
            started: std::time::Instant::now(),
            releases: RwLock::default(),
            without_docs: RwLock::default(),
            tokens: RwLock::default(),
            files: RwLock::default(),
            pages: RwLock::default(),
        }
    }

    /// Drops what may have changed since the caches were filled. On SQLite it looks
    /// at most once a millisecond: under load that is nothing, and a change (a
    /// revoked token) is seen within a millisecond of its commit.
    pub async fn refresh(&self) {
        let interval = match self.changes {
            Changes::Files { .. } => 1_000_000,
            Changes::Generation(_) => GENERATION_INTERVAL.as_nanos() as u64,
        };
        let now = self.started.elapsed().as_nanos() as u64 + interval;
        let last = self.checked.load(Ordering::Acquire);
        if now.saturating_sub(last) < interval
            || self
                .checked
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let now = match &self.changes {
            Changes::Files { database, wal } => fingerprint(database, wal),
            // Never 0, which stands for "not filled yet"; unreadable: assume changed.
            Changes::Generation(catalog) => match catalog.generation().await {
                Ok(generation) => (generation as u64) << 1 | 1,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the store's change counter");
                    self.seen.load(Ordering::Acquire).wrapping_add(2) | 1
                }
            },
        };
        if self.seen.swap(now, Ordering::AcqRel) != now {
            if let Ok(mut releases) = self.releases.write() {
                releases.clear();
            }
            if let Ok(mut without_docs) = self.without_docs.write() {
                without_docs.clear();
            }
            if let Ok(mut tokens) = self.tokens.write() {
                *tokens = None;
            }
            if let Ok(mut pages) = self.pages.write() {
                *pages = Files::default();
            }
        }
    }

    /// Makes the next [`Cache::refresh`] look for changes, however recent the last.
    pub fn expire(&self) {
        self.checked.store(0, Ordering::Release);
    }

    pub fn releases(&self, key: &str) -> Option<Arc<Vec<Arc<Release>>>> {
        self.releases.read().ok()?.get(key).cloned()
    }

    pub fn set_releases(&self, key: &str, releases: Arc<Vec<Arc<Release>>>) {
        if let Ok(mut cached) = self.releases.write() {
            cached.insert(key.to_string(), releases);
        }
    }

    pub fn without_docs(&self, key: &str) -> Option<Arc<Vec<VersionWithoutDocs>>> {
        self.without_docs.read().ok()?.get(key).cloned()
    }

    pub fn set_without_docs(&self, key: &str, versions: Arc<Vec<VersionWithoutDocs>>) {
        if let Ok(mut cached) = self.without_docs.write() {
            cached.insert(key.to_string(), versions);
        }
    }

    pub fn tokens(&self) -> Option<Arc<Access>> {
        self.tokens.read().ok()?.clone()
    }

    pub fn set_tokens(&self, tokens: Arc<Access>) {
        if let Ok(mut cached) = self.tokens.write() {
            *cached = Some(tokens);
        }
    }

    /// A cached file; `page` selects rewritten HTML, which a change drops.
    pub fn file(&self, path: &Path, page: bool) -> Option<Arc<CachedFile>> {
        let files = if page { &self.pages } else { &self.files };
        files.read().ok()?.entries.get(path).cloned()
    }

    pub fn set_file(&self, path: &Path, page: bool, file: Arc<CachedFile>) {
        if file.size > MAX_CACHED_FILE {
            return;
        }
        let files = if page { &self.pages } else { &self.files };
        if let Ok(mut files) = files.write() {
            if files.bytes + file.size > MAX_FILE_BYTES {
                *files = Files::default();
            }
            files.bytes += file.size;
            files.entries.insert(path.to_path_buf(), file);
        }
    }
}

/// Sizes and modification times of the database and its write-ahead log.
fn fingerprint(database: &Path, wal: &Path) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    for path in [database, wal] {
        match std::fs::metadata(path) {
            Ok(metadata) => (metadata.len(), metadata.modified().ok()).hash(&mut hasher),
            Err(_) => 0u8.hash(&mut hasher),
        }
    }
    // Never 0, which stands for "not filled yet".
    hasher.finish() | 1
}
