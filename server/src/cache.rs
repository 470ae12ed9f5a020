//! What the hot path needs, in memory: releases, tokens and file responses.
//!
//! Each request checks whether the database changed: in WAL mode every commit (by a
//! worker, a `token` command, the API) appends to `docbuild.db-wal`, and checkpoints
//! write `docbuild.db`, so their sizes and modification times change. Two `stat`
//! calls, no lock. Only then are releases, tokens and rewritten pages (whose bar
//! lists the versions) dropped. Stored builds never change once written, so other
//! files stay cached until the cache is full.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::body::Bytes;

use crate::catalog::Release;
use crate::tokens::Scope;

/// The most bytes of file bodies kept; past it the file cache starts over.
const MAX_FILE_BYTES: usize = 256 << 20;
/// Files larger than this are read from disk each time.
const MAX_CACHED_FILE: usize = 8 << 20;

/// A file ready to send, headers included.
#[derive(Debug)]
pub struct CachedFile {
    /// The tag of the body as it is; the gzipped body has its own.
    pub etag: String,
    pub gzip_etag: String,
    /// Both, ready to send.
    pub etag_values: [Option<axum::http::HeaderValue>; 2],
    pub headers: axum::http::HeaderMap,
    pub body: Bytes,
    /// The body gzipped, made on the first request that accepts it (text only).
    pub gzip: std::sync::OnceLock<Option<Bytes>>,
}

impl CachedFile {
    /// The gzipped body, if the file is text worth compressing.
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
                if !text || self.body.len() < 256 {
                    return None;
                }
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                std::io::Write::write_all(&mut encoder, &self.body).ok()?;
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

pub struct Cache {
    database: PathBuf,
    wal: PathBuf,
    /// What the database files looked like when the caches were filled.
    seen: AtomicU64,
    /// When they were last looked at, in nanoseconds since `started`.
    checked: AtomicU64,
    started: std::time::Instant,
    releases: RwLock<HashMap<String, Arc<Vec<Arc<Release>>>>>,
    tokens: RwLock<Option<Arc<HashMap<String, Scope>>>>,
    files: RwLock<Files>,
    pages: RwLock<Files>,
}

impl Cache {
    pub fn new(database: &Path) -> Self {
        let mut wal = database.as_os_str().to_owned();
        wal.push("-wal");
        Self {
            database: database.to_path_buf(),
            wal: PathBuf::from(wal),
            seen: AtomicU64::new(0),
            checked: AtomicU64::new(0),
            started: std::time::Instant::now(),
            releases: RwLock::default(),
            tokens: RwLock::default(),
            files: RwLock::default(),
            pages: RwLock::default(),
        }
    }

    /// Drops what may have changed since the caches were filled. Looks at most once
    /// a millisecond: under load that is nothing, and a change (a revoked token) is
    /// seen within a millisecond of its commit.
    pub fn refresh(&self) {
        const INTERVAL_NANOS: u64 = 1_000_000;
        let now = self.started.elapsed().as_nanos() as u64 + INTERVAL_NANOS;
        let last = self.checked.load(Ordering::Acquire);
        if now.saturating_sub(last) < INTERVAL_NANOS
            || self
                .checked
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let now = self.fingerprint();
        if self.seen.swap(now, Ordering::AcqRel) != now {
            if let Ok(mut releases) = self.releases.write() {
                releases.clear();
            }
            if let Ok(mut tokens) = self.tokens.write() {
                *tokens = None;
            }
            if let Ok(mut pages) = self.pages.write() {
                *pages = Files::default();
            }
        }
    }

    /// Sizes and modification times of the database and its write-ahead log.
    fn fingerprint(&self) -> u64 {
        let mut hasher = std::hash::DefaultHasher::new();
        for path in [&self.database, &self.wal] {
            match std::fs::metadata(path) {
                Ok(metadata) => (metadata.len(), metadata.modified().ok()).hash(&mut hasher),
                Err(_) => 0u8.hash(&mut hasher),
            }
        }
        // Never 0, which stands for "not filled yet".
        hasher.finish() | 1
    }

    pub fn releases(&self, key: &str) -> Option<Arc<Vec<Arc<Release>>>> {
        self.releases.read().ok()?.get(key).cloned()
    }

    pub fn set_releases(&self, key: &str, releases: Arc<Vec<Arc<Release>>>) {
        if let Ok(mut cached) = self.releases.write() {
            cached.insert(key.to_string(), releases);
        }
    }

    pub fn tokens(&self) -> Option<Arc<HashMap<String, Scope>>> {
        self.tokens.read().ok()?.clone()
    }

    pub fn set_tokens(&self, tokens: Arc<HashMap<String, Scope>>) {
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
        if file.body.len() > MAX_CACHED_FILE {
            return;
        }
        let files = if page { &self.pages } else { &self.files };
        if let Ok(mut files) = files.write() {
            if files.bytes + file.body.len() > MAX_FILE_BYTES {
                *files = Files::default();
            }
            files.bytes += file.body.len();
            files.entries.insert(path.to_path_buf(), file);
        }
    }
}
