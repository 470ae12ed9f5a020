//! A stored build: every file of a documentation tree as a compressed,
//! content-addressed blob, and a manifest mapping each path to its blob.
//!
//! - **Content-addressed**: a blob's key is the SHA-256 of the file's raw content, so
//!   what builds share (rustdoc's `static.files`, unchanged pages of a rebuild) is
//!   stored once, and storing the same tree again uploads nothing.
//! - **Compressed as served**: a blob is gzip when that saves at least a tenth, and the
//!   server hands it as it is to every client that accepts gzip (all browsers), so
//!   serving costs no CPU. Fonts and images are already compressed and are stored as
//!   they are. The encoding is part of the key (`….gz`), so a blob's bytes and the way
//!   to read them can never disagree, whichever compressor wrote it.
//! - **Hostile input**: the tree was written by crate code. It is walked without
//!   following links, and each file is opened below the tree's root with
//!   `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` (or one `O_NOFOLLOW` component at
//!   a time where that call is missing), so a link, even one swapped in for a file or a
//!   directory meanwhile, is refused and nothing outside the tree is ever read.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use futures_util::{StreamExt, TryStreamExt};
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::blobs::{BlobError, BlobInfo, Blobs};

/// Every path of a stored tree and the blob holding its content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Path relative to the tree's root, `/`-separated, valid UTF-8 (as URLs name
    /// pages); sorted, so the same tree always gives the same manifest.
    pub files: BTreeMap<String, FileEntry>,
}

/// One file of a stored tree: enough to fetch its blob, serve it with the right
/// headers, and check what comes back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Lowercase hex SHA-256 of the raw content: the blob's name.
    pub hash: String,
    /// Size of the raw content (Content-Length for a client without gzip; the cap
    /// when decompressing).
    pub size: u64,
    /// Size of the blob as stored (Content-Length when served as stored).
    pub stored: u64,
    /// How the blob holds the content (and so which key it has).
    pub encoding: Encoding,
}

/// How a blob holds its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// brotli: served with `Content-Encoding: br` to clients that take it.
    Brotli,
    /// gzip: served with `Content-Encoding: gzip` (blobs stored before brotli).
    Gzip,
    /// The content itself (it did not compress by a tenth: fonts, images).
    Identity,
}

/// What storing a tree did, for logs and the build's record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Regular files stored (duplicates included).
    pub files: u64,
    /// Their raw bytes.
    pub bytes: u64,
    /// Distinct contents, each one blob.
    pub blobs: u64,
    /// Bytes those blobs take in storage: what the tree costs on its own.
    pub stored_bytes: u64,
    /// Blobs uploaded because they were missing, and their bytes: what the tree added.
    pub new_blobs: u64,
    pub new_bytes: u64,
    /// Blobs present but written again: older than [`REFRESH_AFTER`] (so a sweep
    /// running meanwhile cannot take them), or not of the size expected.
    pub refreshed: u64,
    /// Entries not stored: links, FIFOs, devices, sockets, unreadable directories and
    /// paths that are not UTF-8.
    pub skipped: u64,
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepStats {
    /// Blobs listed.
    pub examined: u64,
    pub kept_referenced: u64,
    /// Unreferenced but written within the grace period (a build being stored).
    pub kept_young: u64,
    pub deleted: u64,
    pub freed_bytes: u64,
}

/// Any failure of storing or reading a tree, in one line naming the path or the key.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("`{0}` is not a directory (or is a link); only a real directory is stored")]
    NotADirectory(PathBuf),
    #[error("cannot read `{0}`: {1}")]
    Io(PathBuf, #[source] io::Error),
    #[error("`{0}` changed while it was being stored")]
    Changed(PathBuf),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("blob `{key}` is missing from {backend}")]
    Missing { key: String, backend: String },
    #[error("blob `{key}` does not match its manifest entry: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("invalid manifest: {0}")]
    Manifest(String),
    #[error("storing failed in a background task: {0}")]
    Task(String),
}

/// gzip level of stored blobs, by measurement (bench/store.sh, tokio 1.40.0's docs):
/// level 9 stores the same bytes as level 6 to 0.1% (tokio's HTML: 18.6% of raw both)
/// for 40% more CPU; level 1 stores a quarter more. zopfli, gzip that every client
/// reads, would save 6% more at a hundred times the CPU.
pub const GZIP_LEVEL: u32 = 6;

/// Brotli quality of blobs stored with nothing waiting ([`Effort::Smallest`]: an
/// import of earlier builds, a single file). By measurement (bench/storage.sh, tokio
/// 1.40.0 with docs.rs's flags): rustdoc's HTML stores at 13.8% of raw, where quality 9 stores at
/// 15.8% and gzip at 17.8%. It costs CPU: storing tokio's 20 MiB of docs takes 17 s of
/// CPU at quality 10, 8 s at 9 and 0.5 s with gzip (store/examples/store_bench.rs).
/// Browsers ask for brotli over HTTPS, and get the stored bytes; other clients get
/// gzip made once from the content.
pub const BROTLI_QUALITY: u32 = 10;

/// Brotli quality of the blobs of builds ([`Effort::Fast`], what workers store
/// with): a twentieth of quality 10's CPU for about 5% more bytes (bench/queue.sh's
/// sets: 13.8 MB stored against 13.1 MB, 9.3 against 8.9). A build's docs are served
/// only once stored, and a queue's next job waits for the slot.
pub const FAST_BROTLI_QUALITY: u32 = 5;

/// How hard a store compresses new blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Effort {
    /// [`BROTLI_QUALITY`]: the fewest bytes, for a store nothing waits on (an
    /// import of earlier builds, a single file).
    #[default]
    Smallest,
    /// [`FAST_BROTLI_QUALITY`]: for a build's files, which readers and the
    /// queue wait for.
    Fast,
}

impl Effort {
    fn quality(self) -> u32 {
        match self {
            Effort::Smallest => BROTLI_QUALITY,
            Effort::Fast => FAST_BROTLI_QUALITY,
        }
    }
}

/// A blob is kept as gzip only when that saves at least this share (in tenths).
const MIN_SAVING_TENTHS: u64 = 1;

/// A present blob older than this is written again when a tree uses it, so that
/// [`sweep`] with a grace period of at least twice this never removes a blob that a
/// store in progress has found present and is about to reference.
pub const REFRESH_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The grace period to give [`sweep`] in production (see [`REFRESH_AFTER`]).
pub const SWEEP_GRACE: Duration = Duration::from_secs(2 * 24 * 60 * 60);

/// Files read, compressed or uploaded at once. Storing is bound by requests, one per
/// new blob: at 20-50 ms per request to a remote service, 32 in flight make 600-1,600
/// a second. Memory is bounded by [`BYTES_IN_FLIGHT`] whatever the number.
const IN_FLIGHT: usize = 32;

/// Raw bytes held in memory at once while storing, however large the files.
const BYTES_IN_FLIGHT: u32 = 256 << 20;

/// The largest manifest read back (its JSON, decompressed).
const MAX_MANIFEST: u64 = 256 << 20;

/// `blobs/ab/<hash>` for a blob stored as it is, `blobs/ab/<hash>.gz` for gzip,
/// `.br` for brotli; the two-character folder keeps directories small on a local disk.
pub fn blob_key(hash: &str, encoding: Encoding) -> String {
    let fan = hash.get(..2).unwrap_or(hash);
    match encoding {
        Encoding::Brotli => format!("blobs/{fan}/{hash}.br"),
        Encoding::Gzip => format!("blobs/{fan}/{hash}.gz"),
        Encoding::Identity => format!("blobs/{fan}/{hash}"),
    }
}

impl FileEntry {
    /// The key of this entry's blob.
    pub fn key(&self) -> String {
        blob_key(&self.hash, self.encoding)
    }
}

impl Manifest {
    /// The manifest as stored: gzip JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("a manifest always serializes");
        let mut encoder = GzEncoder::new(Vec::with_capacity(json.len() / 4), Compression::new(6));
        encoder
            .write_all(&json)
            .and_then(|()| encoder.finish())
            .expect("writing to memory does not fail")
    }

    /// Reads a stored manifest back, checking every entry (a manifest names keys and
    /// paths, so it is checked as it enters).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ArchiveError> {
        let mut json = Vec::new();
        GzDecoder::new(bytes)
            .take(MAX_MANIFEST + 1)
            .read_to_end(&mut json)
            .map_err(|e| ArchiveError::Manifest(format!("not gzip: {e}")))?;
        if json.len() as u64 > MAX_MANIFEST {
            return Err(ArchiveError::Manifest(format!(
                "larger than {MAX_MANIFEST} bytes"
            )));
        }
        let manifest: Manifest = serde_json::from_slice(&json)
            .map_err(|e| ArchiveError::Manifest(format!("not a manifest: {e}")))?;
        for (path, entry) in &manifest.files {
            if !is_tree_path(path) {
                return Err(ArchiveError::Manifest(format!(
                    "`{}` is not a relative path below the tree",
                    path.escape_debug()
                )));
            }
            if !is_hash(&entry.hash) {
                return Err(ArchiveError::Manifest(format!(
                    "`{}` has an invalid hash `{}`",
                    path.escape_debug(),
                    entry.hash.escape_debug()
                )));
            }
        }
        Ok(manifest)
    }

    /// The keys of the blobs this manifest references, each once: what [`sweep`] must
    /// keep while this build exists.
    pub fn blob_keys(&self) -> impl Iterator<Item = String> + '_ {
        let mut seen = HashSet::new();
        self.files
            .values()
            .map(FileEntry::key)
            .filter(move |key| seen.insert(key.clone()))
    }
}

fn is_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_tree_path(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\0')
        && path
            .split('/')
            .all(|segment| !matches!(segment, "" | "." | ".."))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[usize::from(byte >> 4)] as char);
        text.push(DIGITS[usize::from(byte & 15)] as char);
    }
    text
}

/// Lowercase hex SHA-256 of `content`.
pub fn hash(content: &[u8]) -> String {
    hex(&Sha256::digest(content))
}

/// The gzip form of `raw` at `level`, when it is at least a tenth smaller than `raw`;
/// `None` when `raw` is better stored as it is. Depends on the content alone, so a
/// hash always gets the same encoding from the same compressor. Public for the
/// benchmark, which compares levels; stores use [`GZIP_LEVEL`].
pub fn compress(raw: &[u8], level: u32) -> Option<Vec<u8>> {
    if raw.is_empty() {
        return None;
    }
    let mut encoder = GzEncoder::new(Vec::with_capacity(raw.len() / 3), Compression::new(level));
    let gzip = encoder
        .write_all(raw)
        .and_then(|()| encoder.finish())
        .ok()?;
    let limit = raw.len() as u64 * (10 - MIN_SAVING_TENTHS) / 10;
    (gzip.len() as u64 <= limit).then_some(gzip)
}

/// A blob ready to upload.
struct Encoded {
    hash: String,
    size: u64,
    encoding: Encoding,
    stored: Bytes,
}

/// The brotli form of `raw`, when it is at least a tenth smaller; a quick gzip of its
/// start first tells content that does not compress (fonts, images), so that brotli's
/// slow quality is spent only where it pays.
pub fn compress_brotli(raw: &[u8], quality: u32) -> Option<Vec<u8>> {
    compress(&raw[..raw.len().min(64 << 10)], 1)?;
    let mut out = Vec::with_capacity(raw.len() / 5);
    let params = brotli::enc::BrotliEncoderParams {
        quality: quality as i32,
        size_hint: raw.len(),
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &raw[..], &mut out, &params).ok()?;
    let limit = raw.len() as u64 * (10 - MIN_SAVING_TENTHS) / 10;
    (out.len() as u64 <= limit).then_some(out)
}

fn encode(hash: String, raw: Bytes, effort: Effort) -> Encoded {
    let size = raw.len() as u64;
    match compress_brotli(&raw, effort.quality()) {
        Some(brotli) => Encoded {
            hash,
            size,
            encoding: Encoding::Brotli,
            stored: Bytes::from(brotli),
        },
        None => Encoded {
            hash,
            size,
            encoding: Encoding::Identity,
            stored: raw,
        },
    }
}

/// What uploading one blob did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upload {
    New,
    Refreshed,
    Present,
}

/// Which request comes first when uploading a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// Write unless present (one request for a new blob; a present one costs its
    /// upload, refused, and a look-up): for trees of mostly new content.
    WriteFirst,
    /// Look up, then write if missing (one request for a present blob, two for a new
    /// one): for trees stored before, such as a rebuild.
    LookFirst,
}

async fn put_blob(
    blobs: &Blobs,
    encoded: Encoded,
    probe: Probe,
) -> Result<(FileEntry, Upload), ArchiveError> {
    let entry = FileEntry {
        hash: encoded.hash,
        size: encoded.size,
        stored: encoded.stored.len() as u64,
        encoding: encoded.encoding,
    };
    let key = entry.key();
    if probe == Probe::WriteFirst && blobs.put_new(&key, encoded.stored.clone()).await? {
        return Ok((entry, Upload::New));
    }
    // Kept if young enough that no sweep can take it before this store's manifest is
    // recorded, and whole (a crash before the file system synced can leave a short
    // file).
    let upload = match blobs.head(&key).await? {
        Some(info)
            if info.size == entry.stored
                && age(SystemTime::now(), info.modified) < REFRESH_AFTER =>
        {
            Upload::Present
        }
        None if probe == Probe::LookFirst => Upload::New,
        // Old, damaged, or swept between the two requests.
        _ => Upload::Refreshed,
    };
    if upload != Upload::Present {
        blobs.put(&key, encoded.stored).await?;
    }
    Ok((entry, upload))
}

fn age(now: SystemTime, modified: SystemTime) -> Duration {
    now.duration_since(modified).unwrap_or(Duration::ZERO)
}

fn task_failed(error: tokio::task::JoinError) -> ArchiveError {
    ArchiveError::Task(error.to_string())
}

/// Stores one blob (a build's log, a packaged source) and says how to find it.
pub async fn store_file(blobs: &Blobs, bytes: Bytes) -> Result<FileEntry, ArchiveError> {
    let encoded =
        tokio::task::spawn_blocking(move || encode(hash(&bytes), bytes, Effort::Smallest))
            .await
            .map_err(task_failed)?;
    Ok(put_blob(blobs, encoded, Probe::WriteFirst).await?.0)
}

/// Stores one blob gzip (at [`GZIP_LEVEL`], as it is when that does not save a
/// tenth): for content served as `.gz` as stored, such as rustdoc's JSON.
pub async fn store_gzip_file(blobs: &Blobs, bytes: Bytes) -> Result<FileEntry, ArchiveError> {
    let encoded = tokio::task::spawn_blocking(move || {
        let hash = hash(&bytes);
        let size = bytes.len() as u64;
        match compress(&bytes, GZIP_LEVEL) {
            Some(gzip) => Encoded {
                hash,
                size,
                encoding: Encoding::Gzip,
                stored: Bytes::from(gzip),
            },
            None => Encoded {
                hash,
                size,
                encoding: Encoding::Identity,
                stored: bytes,
            },
        }
    })
    .await
    .map_err(task_failed)?;
    Ok(put_blob(blobs, encoded, Probe::WriteFirst).await?.0)
}

/// The blob of `entry` as stored: gzip when `entry.encoding` is gzip, ready to be
/// served to a client that accepts it.
pub async fn load(blobs: &Blobs, entry: &FileEntry) -> Result<Bytes, ArchiveError> {
    let key = entry.key();
    blobs.get(&key).await?.ok_or_else(|| ArchiveError::Missing {
        key,
        backend: blobs.describe(),
    })
}

/// The content of `stored` bytes in `encoding`, at most `limit` bytes of it: the one
/// place blobs are decompressed (stored builds, logs, the viewer's responses).
pub fn decompress(encoding: Encoding, stored: &[u8], limit: u64) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::with_capacity(limit.min(64 << 20) as usize);
    match encoding {
        Encoding::Identity => raw.extend_from_slice(&stored[..stored.len().min(limit as usize)]),
        Encoding::Gzip => {
            GzDecoder::new(stored).take(limit).read_to_end(&mut raw)?;
        }
        Encoding::Brotli => {
            brotli::Decompressor::new(stored, 64 << 10)
                .take(limit)
                .read_to_end(&mut raw)?;
        }
    }
    Ok(raw)
}

/// The raw content from a blob as stored, checked against its entry (size and hash);
/// gzip is decompressed to at most `entry.size` bytes, so a corrupt or hostile blob
/// cannot expand without bound.
pub fn decode(entry: &FileEntry, stored: Bytes) -> Result<Bytes, ArchiveError> {
    let corrupt = |reason: String| ArchiveError::Corrupt {
        key: entry.key(),
        reason,
    };
    let raw = match entry.encoding {
        Encoding::Identity => stored,
        encoding => decompress(encoding, &stored, entry.size.saturating_add(1))
            .map(Bytes::from)
            .map_err(|e| {
                let name = if encoding == Encoding::Gzip {
                    "gzip"
                } else {
                    "brotli"
                };
                corrupt(format!("not {name}: {e}"))
            })?,
    };
    if raw.len() as u64 != entry.size {
        let found = if raw.len() as u64 > entry.size {
            format!("more than {}", entry.size)
        } else {
            raw.len().to_string()
        };
        return Err(corrupt(format!(
            "its content is {found} bytes, the manifest says {}",
            entry.size
        )));
    }
    if hash(&raw) != entry.hash {
        return Err(corrupt(
            "its content does not have the manifest's hash".into(),
        ));
    }
    Ok(raw)
}

/// A regular file found by the walk.
struct Walked {
    path: String,
    size: u64,
}

/// Regular files below `root` with UTF-8 paths, and how many entries were skipped.
fn walk(root: &Path) -> Result<(Vec<Walked>, u64), ArchiveError> {
    let mut files = Vec::new();
    let mut skipped = 0;
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .follow_root_links(false)
        .min_depth(1);
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                let path = error.path().unwrap_or(root).to_path_buf();
                let io = io::Error::from(error);
                if io.kind() == io::ErrorKind::PermissionDenied {
                    tracing::warn!("not storing `{}`: {io}", path.display());
                    skipped += 1;
                    continue;
                }
                return Err(ArchiveError::Io(path, io));
            }
        };
        let kind = entry.file_type();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            skipped += 1;
            continue;
        }
        let Some(path) = entry
            .path()
            .strip_prefix(root)
            .ok()
            .and_then(Path::to_str)
            .filter(|path| is_tree_path(path))
        else {
            skipped += 1;
            continue;
        };
        let size = entry
            .metadata()
            .map_err(|e| ArchiveError::Io(entry.path().to_path_buf(), e.into()))?
            .len();
        files.push(Walked {
            path: path.to_string(),
            size,
        });
    }
    Ok((files, skipped))
}

fn open_root(root: &Path) -> Result<OwnedFd, ArchiveError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::open(root, flags, Mode::empty()).map_err(|errno| match errno {
        rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP => {
            ArchiveError::NotADirectory(root.to_path_buf())
        }
        errno => ArchiveError::Io(root.to_path_buf(), errno.into()),
    })
}

/// Flags for reading a file of the tree: never through a link, and without blocking
/// on a FIFO swapped in for a file.
const READ_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::CLOEXEC);

/// Opens `relative` below `root` with no link followed in any component.
fn open_beneath(root: &OwnedFd, relative: &str) -> rustix::io::Result<OwnedFd> {
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    match rustix::fs::openat2(root, relative, READ_FLAGS, Mode::empty(), resolve) {
        // Kernels before 5.6, or a seccomp profile that does not know the call.
        Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {
            open_by_components(root, relative)
        }
        result => result,
    }
}

/// [`open_beneath`] without `openat2`: one component at a time, each `O_NOFOLLOW`.
fn open_by_components(root: &OwnedFd, relative: &str) -> rustix::io::Result<OwnedFd> {
    let (parents, name) = relative.rsplit_once('/').unwrap_or(("", relative));
    let directory_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut directory: Option<OwnedFd> = None;
    for component in parents.split('/').filter(|c| !c.is_empty()) {
        if matches!(component, "." | "..") {
            return Err(rustix::io::Errno::XDEV);
        }
        let parent = directory.as_ref().unwrap_or(root);
        directory = Some(rustix::fs::openat(
            parent,
            component,
            directory_flags,
            Mode::empty(),
        )?);
    }
    if matches!(name, "" | "." | "..") {
        return Err(rustix::io::Errno::XDEV);
    }
    rustix::fs::openat(
        directory.as_ref().unwrap_or(root),
        name,
        READ_FLAGS,
        Mode::empty(),
    )
}

/// A file's content, or `None` when it is not a regular file reached without links
/// (it is then skipped). `expected` is the size the walk saw: any other is a change.
fn read_beneath(
    root: &OwnedFd,
    root_path: &Path,
    relative: &str,
    expected: u64,
) -> Result<Option<Vec<u8>>, ArchiveError> {
    let path = || root_path.join(relative);
    let fd = match open_beneath(root, relative) {
        Ok(fd) => fd,
        // A link (ELOOP), a way out of the tree (EXDEV), a link where a directory was
        // (ENOTDIR), a socket (ENXIO).
        Err(
            rustix::io::Errno::LOOP
            | rustix::io::Errno::XDEV
            | rustix::io::Errno::NOTDIR
            | rustix::io::Errno::NXIO,
        ) => return Ok(None),
        Err(errno) => return Err(ArchiveError::Io(path(), errno.into())),
    };
    let mut file = std::fs::File::from(fd);
    let metadata = file.metadata().map_err(|e| ArchiveError::Io(path(), e))?;
    if !metadata.is_file() {
        return Ok(None);
    }
    if metadata.len() != expected {
        return Err(ArchiveError::Changed(path()));
    }
    let mut content = Vec::with_capacity(expected as usize);
    (&mut file)
        .take(expected + 1)
        .read_to_end(&mut content)
        .map_err(|e| ArchiveError::Io(path(), e))?;
    if content.len() as u64 != expected {
        return Err(ArchiveError::Changed(path()));
    }
    Ok(Some(content))
}

/// What became of one walked file.
enum Stored {
    /// Not a regular file after all.
    Skipped,
    /// The first file with this content: its blob.
    First {
        path: String,
        entry: FileEntry,
        upload: Upload,
    },
    /// Same content as another file of the tree, whose task stores the blob.
    Duplicate {
        path: String,
        hash: String,
        size: u64,
    },
}

/// Shared by the tasks of one [`store_tree`].
struct Run {
    blobs: Blobs,
    root: Arc<OwnedFd>,
    root_path: PathBuf,
    budget: Semaphore,
    claimed: Mutex<HashSet<String>>,
    /// Blobs found missing and present so far, to choose each upload's [`Probe`].
    new: AtomicU64,
    present: AtomicU64,
    effort: Effort,
}

async fn store_one(run: Arc<Run>, walked: Walked) -> Result<Stored, ArchiveError> {
    let permits = u32::try_from(walked.size)
        .unwrap_or(u32::MAX)
        .min(BYTES_IN_FLIGHT);
    let _permit = run
        .budget
        .acquire_many(permits)
        .await
        .map_err(|e| ArchiveError::Task(e.to_string()))?;
    let reading = Arc::clone(&run);
    let path = walked.path;
    let read = tokio::task::spawn_blocking(move || {
        let content = read_beneath(&reading.root, &reading.root_path, &path, walked.size)?;
        Ok::<_, ArchiveError>((path, content.map(|c| (hash(&c), c))))
    })
    .await
    .map_err(task_failed)??;
    let (path, Some((hash, content))) = read else {
        return Ok(Stored::Skipped);
    };
    let first = run
        .claimed
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(hash.clone());
    if !first {
        return Ok(Stored::Duplicate {
            path,
            hash,
            size: walked.size,
        });
    }
    // Whichever the blobs so far say is more likely: a new version's pages are all
    // new (each shows the version), a rebuild's are all present.
    let probe = if run.present.load(Ordering::Relaxed) > run.new.load(Ordering::Relaxed) {
        Probe::LookFirst
    } else {
        Probe::WriteFirst
    };
    // Content stored before (a rebuild's pages, rustdoc's static files) is not
    // compressed again: its blob is looked up first where that is cheap or likely.
    if (run.blobs.is_directory() || probe == Probe::LookFirst)
        && let Some(entry) = stored_before(&run.blobs, &hash, walked.size).await?
    {
        run.present.fetch_add(1, Ordering::Relaxed);
        return Ok(Stored::First {
            path,
            entry,
            upload: Upload::Present,
        });
    }
    let effort = run.effort;
    let encoded = tokio::task::spawn_blocking(move || encode(hash, Bytes::from(content), effort))
        .await
        .map_err(task_failed)?;
    let (entry, upload) = put_blob(&run.blobs, encoded, probe).await?;
    match upload {
        Upload::New => &run.new,
        Upload::Present | Upload::Refreshed => &run.present,
    }
    .fetch_add(1, Ordering::Relaxed);
    Ok(Stored::First {
        path,
        entry,
        upload,
    })
}

/// The blob already holding content `hash` of `size` bytes, in whichever encoding it
/// was stored, if it is young enough that no sweep can take it (see
/// [`REFRESH_AFTER`]); an older one is written again by the caller.
async fn stored_before(
    blobs: &Blobs,
    hash: &str,
    size: u64,
) -> Result<Option<FileEntry>, ArchiveError> {
    for encoding in [Encoding::Brotli, Encoding::Identity, Encoding::Gzip] {
        let Some(info) = blobs.head(&blob_key(hash, encoding)).await? else {
            continue;
        };
        let fresh = age(SystemTime::now(), info.modified) < REFRESH_AFTER;
        let whole = encoding != Encoding::Identity || info.size == size;
        let entry = FileEntry {
            hash: hash.to_string(),
            size,
            stored: info.size,
            encoding,
        };
        if !(fresh && whole && info.size > 0) {
            return Ok(None);
        }
        // A local file may have been cut short by a crash before the file system
        // synced it (an object store writes whole objects or nothing): it is read
        // back and checked, which costs far less than compressing again.
        if blobs.is_directory() {
            let stored = load(blobs, &entry).await?;
            let checked =
                tokio::task::spawn_blocking(move || decode(&entry, stored).map(|_| entry))
                    .await
                    .map_err(task_failed)?;
            return Ok(checked.ok());
        }
        return Ok(Some(entry));
    }
    Ok(None)
}

/// Stores every regular file below `root` and returns the manifest that finds them
/// again. Links, special files and non-UTF-8 paths are skipped and counted. Every
/// blob is durable when this returns, so the manifest may be recorded.
pub async fn store_tree(
    blobs: &Blobs,
    root: &Path,
) -> Result<(Manifest, StoreStats), ArchiveError> {
    store_tree_with(blobs, root, Effort::Smallest).await
}

/// [`store_tree`], compressing new blobs with `effort`.
pub async fn store_tree_with(
    blobs: &Blobs,
    root: &Path,
    effort: Effort,
) -> Result<(Manifest, StoreStats), ArchiveError> {
    let root_path = root.to_path_buf();
    let walk_root = root_path.clone();
    let (root_fd, files, skipped) = tokio::task::spawn_blocking(move || {
        let fd = open_root(&walk_root)?;
        let (files, skipped) = walk(&walk_root)?;
        Ok::<_, ArchiveError>((fd, files, skipped))
    })
    .await
    .map_err(task_failed)??;
    let run = Arc::new(Run {
        blobs: blobs.clone(),
        root: Arc::new(root_fd),
        root_path,
        budget: Semaphore::new(BYTES_IN_FLIGHT as usize),
        claimed: Mutex::new(HashSet::new()),
        new: AtomicU64::new(0),
        present: AtomicU64::new(0),
        effort,
    });
    let results: Vec<Stored> = futures_util::stream::iter(files)
        .map(|walked| store_one(Arc::clone(&run), walked))
        .buffer_unordered(IN_FLIGHT)
        .try_collect()
        .await?;

    let mut stats = StoreStats {
        skipped,
        ..StoreStats::default()
    };
    let mut manifest = Manifest::default();
    let mut duplicates = Vec::new();
    let mut by_hash = std::collections::HashMap::new();
    for result in results {
        match result {
            Stored::Skipped => stats.skipped += 1,
            Stored::First {
                path,
                entry,
                upload,
            } => {
                stats.files += 1;
                stats.bytes += entry.size;
                stats.blobs += 1;
                stats.stored_bytes += entry.stored;
                match upload {
                    Upload::New => {
                        stats.new_blobs += 1;
                        stats.new_bytes += entry.stored;
                    }
                    Upload::Refreshed => stats.refreshed += 1,
                    Upload::Present => {}
                }
                by_hash.insert(entry.hash.clone(), entry.clone());
                manifest.files.insert(path, entry);
            }
            Stored::Duplicate { path, hash, size } => {
                stats.files += 1;
                stats.bytes += size;
                duplicates.push((path, hash));
            }
        }
    }
    for (path, hash) in duplicates {
        let entry = by_hash
            .get(&hash)
            .cloned()
            .ok_or_else(|| ArchiveError::Task(format!("no blob was stored for `{path}`")))?;
        manifest.files.insert(path, entry);
    }
    blobs.flush().await?;
    tracing::info!(
        root = %root.display(),
        storage = %blobs.describe(),
        files = stats.files,
        bytes = stats.bytes,
        stored_bytes = stats.stored_bytes,
        new_blobs = stats.new_blobs,
        new_bytes = stats.new_bytes,
        skipped = stats.skipped,
        "stored a tree"
    );
    Ok((manifest, stats))
}

/// Deletes the blobs not in `referenced` (keys, as [`Manifest::blob_keys`] and
/// [`FileEntry::key`] give them) that were last written more than `older_than` ago.
/// The grace period protects builds being stored: their blobs are new, or refreshed
/// when older than [`REFRESH_AFTER`], so with `older_than` ≥ [`SWEEP_GRACE`] a blob
/// a store relies on is never taken. Only keys below `blobs/` are considered.
pub async fn sweep(
    blobs: &Blobs,
    referenced: &HashSet<String>,
    older_than: Duration,
) -> Result<SweepStats, ArchiveError> {
    let (doomed, mut stats) = unreferenced(blobs, referenced, older_than).await?;
    let keys: Vec<String> = doomed.iter().map(|info| info.key.clone()).collect();
    blobs.delete_many(&keys).await?;
    stats.deleted = doomed.len() as u64;
    stats.freed_bytes = doomed.iter().map(|info| info.size).sum();
    tracing::info!(
        storage = %blobs.describe(),
        examined = stats.examined,
        deleted = stats.deleted,
        freed_bytes = stats.freed_bytes,
        "swept blobs"
    );
    Ok(stats)
}

/// What [`sweep`] would delete: blobs not in `referenced` and last written more than
/// `older_than` ago, with the counts of what it keeps. Deletes nothing.
pub async fn unreferenced(
    blobs: &Blobs,
    referenced: &HashSet<String>,
    older_than: Duration,
) -> Result<(Vec<BlobInfo>, SweepStats), ArchiveError> {
    let now = SystemTime::now();
    let mut stats = SweepStats::default();
    let mut doomed = Vec::new();
    for info in blobs.list("blobs").await? {
        stats.examined += 1;
        if referenced.contains(&info.key) {
            stats.kept_referenced += 1;
        } else if age(now, info.modified) < older_than {
            stats.kept_young += 1;
        } else {
            doomed.push(info);
        }
    }
    Ok((doomed, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::testing::{Backend, backends};
    use std::os::unix::ffi::OsStrExt;

    /// Deterministic bytes that do not compress (a font, an image).
    fn noise(len: usize, mut seed: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    }

    fn page(title: &str) -> Vec<u8> {
        let mut html = format!("<!DOCTYPE html><html><head><title>{title}</title></head><body>");
        for i in 0..400 {
            html.push_str(&format!(
                "<div class=\"item\"><a href=\"fn.item_{i}.html\">item_{i}</a></div>\n"
            ));
        }
        html.push_str("</body></html>");
        html.into_bytes()
    }

    struct Tree {
        _temp: tempfile::TempDir,
        root: PathBuf,
        secret: Vec<u8>,
        files: BTreeMap<&'static str, Vec<u8>>,
    }

    /// A documentation tree as crate code might leave it: pages (two identical), a
    /// font, an empty file, links out of the tree, a FIFO and a non-UTF-8 name.
    fn hostile_tree() -> Tree {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("doc");
        let outside = temp.path().join("outside");
        std::fs::create_dir_all(root.join("krate/sub")).unwrap();
        std::fs::create_dir_all(root.join("static.files")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let secret = b"the host's secret, never to be stored".to_vec();
        std::fs::write(outside.join("secret"), &secret).unwrap();

        let mut files = BTreeMap::new();
        files.insert("krate/index.html", page("index"));
        files.insert("krate/sub/copy.html", page("index"));
        files.insert("krate/other.html", page("other"));
        files.insert("static.files/font.woff2", noise(50_000, 7));
        files.insert("empty.txt", Vec::new());
        for (path, content) in &files {
            std::fs::write(root.join(path), content).unwrap();
        }
        std::os::unix::fs::symlink(outside.join("secret"), root.join("krate/link.html")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("krate/linked-dir")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("krate/fifo"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let bad = std::ffi::OsStr::from_bytes(b"bad-\xff.html");
        std::fs::write(root.join("krate").join(bad), b"not UTF-8").unwrap();
        Tree {
            _temp: temp,
            root,
            secret,
            files,
        }
    }

    #[tokio::test]
    async fn store_tree_dedups_skips_links_and_round_trips() {
        let tree = hostile_tree();
        for Backend { blobs, .. } in backends("store-tree") {
            let what = blobs.describe();
            let (manifest, stats) = store_tree(&blobs, &tree.root).await.unwrap();

            let paths: Vec<_> = manifest.files.keys().map(String::as_str).collect();
            let expected: Vec<_> = tree.files.keys().copied().collect();
            assert_eq!(paths, expected, "{what}");
            // Two links, a FIFO and a non-UTF-8 name.
            assert_eq!(stats.skipped, 4, "{what}: {stats:?}");
            assert_eq!(stats.files, 5, "{what}: {stats:?}");
            assert_eq!(stats.blobs, 4, "{what}: {stats:?}");
            assert_eq!(stats.new_blobs, 4, "{what}: {stats:?}");
            let raw: u64 = tree.files.values().map(|c| c.len() as u64).sum();
            assert_eq!(stats.bytes, raw, "{what}");

            let index = &manifest.files["krate/index.html"];
            assert_eq!(index, &manifest.files["krate/sub/copy.html"], "{what}");
            assert_eq!(index.encoding, Encoding::Brotli, "{what}");
            assert!(index.stored * 5 < index.size, "{what}: {index:?}");
            let font = &manifest.files["static.files/font.woff2"];
            assert_eq!(font.encoding, Encoding::Identity, "{what}");
            assert_eq!(font.stored, font.size, "{what}");
            assert_eq!(manifest.files["empty.txt"].encoding, Encoding::Identity);

            // Stored once each.
            let listed = blobs.list("blobs").await.unwrap();
            assert_eq!(listed.len(), 4, "{what}: {listed:?}");
            let keys: HashSet<String> = manifest.blob_keys().collect();
            assert_eq!(keys.len(), 4, "{what}");
            for info in &listed {
                assert!(keys.contains(&info.key), "{what}: {}", info.key);
            }
            // The link's target outside the tree was not read.
            let secret = hash(&tree.secret);
            for encoding in [Encoding::Brotli, Encoding::Gzip, Encoding::Identity] {
                assert!(!blobs.exists(&blob_key(&secret, encoding)).await.unwrap());
            }

            for (path, content) in &tree.files {
                let entry = &manifest.files[*path];
                let stored = load(&blobs, entry).await.unwrap();
                assert_eq!(stored.len() as u64, entry.stored, "{what}: {path}");
                if entry.encoding == Encoding::Gzip {
                    assert_eq!(&stored[..2], &[0x1f, 0x8b], "{what}: {path}");
                }
                assert_eq!(
                    &decode(entry, stored).unwrap()[..],
                    &content[..],
                    "{what}: {path}"
                );
            }

            // The manifest survives storage.
            blobs
                .put("builds/1/manifest.json.gz", manifest.to_bytes().into())
                .await
                .unwrap();
            let back = blobs
                .get("builds/1/manifest.json.gz")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(Manifest::from_bytes(&back).unwrap(), manifest, "{what}");

            // Storing the same tree again uploads nothing.
            let (again, stats) = store_tree(&blobs, &tree.root).await.unwrap();
            assert_eq!(again, manifest, "{what}");
            assert_eq!(
                (stats.new_blobs, stats.new_bytes, stats.refreshed),
                (0, 0, 0),
                "{what}"
            );
            assert_eq!(stats.blobs, 4, "{what}");
        }
    }

    /// Rustdoc-like pages of varied words, each distinct.
    fn varied_page(seed: u64) -> Vec<u8> {
        let words = [
            "impl",
            "struct",
            "trait",
            "Iterator",
            "fn",
            "where",
            "Self",
            "Option",
            "Result",
            "pub",
            "docblock",
            "item-decl",
            "method",
            "Returns",
            "the",
            "value",
        ];
        let mut html = String::from("<!DOCTYPE html><html><body><section id=\"main\">");
        for (i, byte) in noise(6000, seed).iter().enumerate() {
            html.push_str(words[(*byte as usize) % words.len()]);
            html.push(if i % 12 == 0 { '\n' } else { ' ' });
            if i % 40 == 0 {
                html.push_str(&format!("<a href=\"fn.item_{byte}.html\">item_{i}</a>"));
            }
        }
        html.push_str("</section></body></html>");
        html.into_bytes()
    }

    #[tokio::test]
    async fn a_fast_store_reads_back_the_same_and_a_smallest_one_takes_fewer_bytes() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("doc");
        std::fs::create_dir_all(&root).unwrap();
        let pages: Vec<Vec<u8>> = (1..=8).map(varied_page).collect();
        for (i, page) in pages.iter().enumerate() {
            std::fs::write(root.join(format!("page{i}.html")), page).unwrap();
        }
        let mut stored = Vec::new();
        for effort in [Effort::Fast, Effort::Smallest] {
            let dir = tempfile::tempdir().unwrap();
            let blobs = Blobs::open(&crate::StorageLocation::Directory(dir.path().into())).unwrap();
            let (manifest, stats) = store_tree_with(&blobs, &root, effort).await.unwrap();
            for (i, page) in pages.iter().enumerate() {
                let entry = &manifest.files[&format!("page{i}.html")];
                assert_eq!(entry.encoding, Encoding::Brotli, "{effort:?}");
                let blob = load(&blobs, entry).await.unwrap();
                assert_eq!(&decode(entry, blob).unwrap()[..], &page[..], "{effort:?}");
            }
            stored.push(stats.stored_bytes);
        }
        let (fast, smallest) = (stored[0], stored[1]);
        assert!(smallest < fast, "smallest {smallest} B, fast {fast} B");
    }

    #[tokio::test]
    async fn store_file_round_trips_and_dedups() {
        for Backend { blobs, .. } in backends("store-file") {
            let what = blobs.describe();
            let log = Bytes::from("   Compiling tokio v1.40.0\n".repeat(200));
            let entry = store_file(&blobs, log.clone()).await.unwrap();
            assert_eq!(entry.encoding, Encoding::Brotli, "{what}");
            assert!(entry.key().ends_with(".br"), "{what}");
            let stored = load(&blobs, &entry).await.unwrap();
            assert_eq!(decode(&entry, stored).unwrap(), log, "{what}");

            let binary = Bytes::from(noise(10_000, 3));
            let entry = store_file(&blobs, binary.clone()).await.unwrap();
            assert_eq!(entry.encoding, Encoding::Identity, "{what}");
            assert_eq!(load(&blobs, &entry).await.unwrap(), binary, "{what}");

            assert_eq!(store_file(&blobs, binary).await.unwrap(), entry, "{what}");
            assert_eq!(blobs.list("blobs").await.unwrap().len(), 2, "{what}");

            // Both ways of uploading tell new from present.
            let fresh = Bytes::from_static(b"looked up first");
            for (probe, expected) in [
                (Probe::LookFirst, Upload::New),
                (Probe::LookFirst, Upload::Present),
                (Probe::WriteFirst, Upload::Present),
            ] {
                let encoded = encode(hash(&fresh), fresh.clone(), Effort::Smallest);
                let (entry, upload) = put_blob(&blobs, encoded, probe).await.unwrap();
                assert_eq!(upload, expected, "{what}: {probe:?}");
                assert_eq!(load(&blobs, &entry).await.unwrap(), fresh, "{what}");
            }

            blobs.delete(&entry.key()).await.unwrap();
            let missing = load(&blobs, &entry).await.unwrap_err();
            assert!(matches!(missing, ArchiveError::Missing { .. }), "{what}");
            assert!(missing.to_string().contains(&entry.key()), "{missing}");
        }
    }

    #[tokio::test]
    async fn sweep_removes_only_unreferenced_old_blobs() {
        for Backend { blobs, .. } in backends("sweep") {
            let what = blobs.describe();
            let old_unreferenced = store_file(&blobs, Bytes::from_static(b"old, unreferenced"))
                .await
                .unwrap();
            let old_referenced = store_file(&blobs, Bytes::from_static(b"old, referenced"))
                .await
                .unwrap();
            blobs
                .put(
                    "builds/7/manifest.json.gz",
                    Bytes::from_static(b"not a blob"),
                )
                .await
                .unwrap();
            // S3 keeps times to the second.
            tokio::time::sleep(Duration::from_millis(3500)).await;
            let young = store_file(&blobs, Bytes::from_static(b"young, unreferenced"))
                .await
                .unwrap();
            let referenced = HashSet::from([old_referenced.key()]);

            let stats = sweep(&blobs, &referenced, Duration::from_secs(2))
                .await
                .unwrap();
            assert_eq!(
                (
                    stats.examined,
                    stats.kept_referenced,
                    stats.kept_young,
                    stats.deleted
                ),
                (3, 1, 1, 1),
                "{what}: {stats:?}"
            );
            assert_eq!(stats.freed_bytes, old_unreferenced.stored, "{what}");
            assert!(
                !blobs.exists(&old_unreferenced.key()).await.unwrap(),
                "{what}"
            );
            assert!(blobs.exists(&old_referenced.key()).await.unwrap(), "{what}");
            assert!(blobs.exists(&young.key()).await.unwrap(), "{what}");
            assert!(
                blobs.exists("builds/7/manifest.json.gz").await.unwrap(),
                "{what}"
            );

            // With no grace period the young one goes too; the referenced one stays.
            let stats = sweep(&blobs, &referenced, Duration::ZERO).await.unwrap();
            assert_eq!(stats.deleted, 1, "{what}: {stats:?}");
            assert!(!blobs.exists(&young.key()).await.unwrap(), "{what}");
            assert!(blobs.exists(&old_referenced.key()).await.unwrap(), "{what}");
        }
    }

    #[tokio::test]
    async fn old_or_damaged_blobs_are_written_again() {
        let backend = backends("refresh").swap_remove(0);
        let (blobs, storage) = (&backend.blobs, backend.root().unwrap());
        let storage = storage.as_path();
        let content = Bytes::from(page("refresh"));
        let entry = store_file(blobs, content.clone()).await.unwrap();
        let file = storage.join(entry.key());

        // Present and young: left alone.
        let before = std::fs::metadata(&file).unwrap().modified().unwrap();
        store_file(blobs, content.clone()).await.unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().modified().unwrap(),
            before
        );

        // Older than REFRESH_AFTER: written again, so a sweep cannot take it from a
        // store that found it present.
        let long_ago = SystemTime::now() - REFRESH_AFTER - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        store_file(blobs, content.clone()).await.unwrap();
        let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
        assert!(age(SystemTime::now(), modified) < Duration::from_secs(600));

        // Truncated (say, by a crash before the file system synced): written again.
        std::fs::write(&file, b"").unwrap();
        let tree = tempfile::tempdir().unwrap();
        std::fs::write(tree.path().join("page.html"), &content).unwrap();
        let (_, stats) = store_tree(blobs, tree.path()).await.unwrap();
        assert_eq!(stats.refreshed, 1, "{stats:?}");
        let stored = load(blobs, &entry).await.unwrap();
        assert_eq!(decode(&entry, stored).unwrap(), content);
    }

    #[test]
    fn reads_never_follow_a_link_in_any_component() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("doc");
        let outside = temp.path().join("outside");
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("file"), b"secret").unwrap();
        std::fs::write(root.join("real/file"), b"public").unwrap();
        // As if a directory and a file had been swapped for links after the walk.
        std::os::unix::fs::symlink(&outside, root.join("swapped-dir")).unwrap();
        std::os::unix::fs::symlink(outside.join("file"), root.join("real/swapped")).unwrap();
        let fd = open_root(&root).unwrap();

        for read in [
            |fd: &OwnedFd, path: &str| open_beneath(fd, path),
            |fd: &OwnedFd, path: &str| open_by_components(fd, path),
        ] {
            assert!(read(&fd, "real/file").is_ok());
            for refused in ["swapped-dir/file", "real/swapped", "../outside/file"] {
                assert!(read(&fd, refused).is_err(), "{refused}");
            }
        }
        assert_eq!(
            read_beneath(&fd, &root, "real/file", 6).unwrap().unwrap(),
            b"public"
        );
        assert!(
            read_beneath(&fd, &root, "swapped-dir/file", 6)
                .unwrap()
                .is_none()
        );
        assert!(
            read_beneath(&fd, &root, "real/swapped", 6)
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            read_beneath(&fd, &root, "real/file", 5),
            Err(ArchiveError::Changed(_))
        ));
    }

    #[tokio::test]
    async fn only_a_real_directory_is_stored() {
        let temp = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(&crate::blobs::StorageLocation::Directory(
            temp.path().join("storage"),
        ))
        .unwrap();
        std::fs::create_dir(temp.path().join("doc")).unwrap();
        std::os::unix::fs::symlink(temp.path().join("doc"), temp.path().join("link")).unwrap();
        std::fs::write(temp.path().join("file"), b"x").unwrap();
        for root in ["link", "file"] {
            let error = store_tree(&blobs, &temp.path().join(root))
                .await
                .unwrap_err();
            assert!(
                matches!(error, ArchiveError::NotADirectory(_)),
                "{root}: {error}"
            );
        }
        let error = store_tree(&blobs, &temp.path().join("missing"))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("missing"), "{error}");
    }

    #[test]
    fn manifests_round_trip_and_are_checked() {
        let entry = FileEntry {
            hash: hash(b"x"),
            size: 1,
            stored: 1,
            encoding: Encoding::Identity,
        };
        let mut manifest = Manifest::default();
        manifest.files.insert("a/index.html".into(), entry.clone());
        manifest.files.insert("b/index.html".into(), entry.clone());
        let bytes = manifest.to_bytes();
        assert_eq!(&bytes[..2], &[0x1f, 0x8b]);
        assert_eq!(Manifest::from_bytes(&bytes).unwrap(), manifest);
        assert_eq!(manifest.blob_keys().collect::<Vec<_>>(), [entry.key()]);
        assert_eq!(
            entry.key(),
            format!("blobs/{}/{}", &entry.hash[..2], entry.hash)
        );

        for (path, hash) in [
            ("../escape", entry.hash.as_str()),
            ("/abs", entry.hash.as_str()),
            ("a//b", entry.hash.as_str()),
            ("ok", "../../etc/passwd"),
            ("ok", "ABCDEF"),
        ] {
            let mut bad = Manifest::default();
            bad.files.insert(
                path.into(),
                FileEntry {
                    hash: hash.into(),
                    ..entry.clone()
                },
            );
            let error = Manifest::from_bytes(&bad.to_bytes()).unwrap_err();
            assert!(
                matches!(error, ArchiveError::Manifest(_)),
                "{path} {hash}: {error}"
            );
        }
        assert!(Manifest::from_bytes(b"not gzip").is_err());
    }

    #[test]
    fn decode_checks_size_and_hash_and_caps_gzip() {
        let content = page("decode");
        let gzip = compress(&content, GZIP_LEVEL).unwrap();
        let entry = FileEntry {
            hash: hash(&content),
            size: content.len() as u64,
            stored: gzip.len() as u64,
            encoding: Encoding::Gzip,
        };
        assert_eq!(decode(&entry, gzip.clone().into()).unwrap(), content);

        let short = FileEntry {
            size: 100,
            ..entry.clone()
        };
        let error = decode(&short, gzip.clone().into()).unwrap_err().to_string();
        assert!(error.contains("more than 100 bytes"), "{error}");
        let wrong = FileEntry {
            hash: hash(b"other"),
            ..entry.clone()
        };
        assert!(decode(&wrong, gzip.into()).is_err());
        let identity = FileEntry {
            encoding: Encoding::Identity,
            ..entry.clone()
        };
        assert!(decode(&identity, Bytes::from_static(b"truncated")).is_err());

        // Compress only what saves a tenth.
        assert!(compress(&noise(4096, 1), GZIP_LEVEL).is_none());
        assert!(compress(b"", GZIP_LEVEL).is_none());
    }
}
