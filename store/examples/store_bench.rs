//! Measures storing a documentation tree, to choose the gzip level and check the
//! storage's speed (bench/store.sh runs it on tokio's documentation).
//!
//! 1. Compression alone, per gzip level: bytes stored (each distinct file gzip when
//!    that saves a tenth, as stored blobs are) and the time on all cores.
//! 2. `store_tree` into a fresh local directory, then the same tree again.
//! 3. The same into an S3 service (a fresh prefix, removed afterwards).
//!
//! Usage: store_bench TREE [--s3 ENDPOINT] [--bucket NAME] [--levels 1,6,9]
//! S3 credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use docbuild_store::archive::{self, compress};
use docbuild_store::{Blobs, StorageLocation};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Distinct contents of a tree, each with one of its paths.
type Contents = Vec<(String, Vec<u8>)>;

/// Per file: its kind, raw size and stored size.
type Measured = Vec<(&'static str, u64, u64)>;

struct Options {
    tree: PathBuf,
    s3: Option<String>,
    bucket: String,
    levels: Vec<u32>,
}

fn options() -> Result<Options, Error> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        tree: PathBuf::new(),
        s3: None,
        bucket: "docbuild-test".into(),
        levels: vec![1, 6, 9],
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--s3" => options.s3 = Some(args.next().ok_or("--s3 ENDPOINT")?),
            "--bucket" => options.bucket = args.next().ok_or("--bucket NAME")?,
            "--levels" => {
                options.levels = args
                    .next()
                    .ok_or("--levels 1,6,9")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            _ if options.tree.as_os_str().is_empty() => options.tree = arg.into(),
            _ => return Err(format!("unexpected argument `{arg}`").into()),
        }
    }
    if options.tree.as_os_str().is_empty() {
        return Err(
            "usage: store_bench TREE [--s3 ENDPOINT] [--bucket NAME] [--levels 1,6,9]".into(),
        );
    }
    Ok(options)
}

/// Every regular file of the tree (no links followed), distinct contents once.
fn read_tree(root: &Path) -> Result<(Contents, u64, usize), Error> {
    let mut seen = HashSet::new();
    let mut unique = Vec::new();
    let (mut raw, mut files) = (0, 0);
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry?;
        if !entry.file_type().is_file() {
            continue;
        }
        let content = std::fs::read(entry.path())?;
        raw += content.len() as u64;
        files += 1;
        if seen.insert(archive::hash(&content)) {
            let path = entry
                .path()
                .strip_prefix(root)?
                .to_string_lossy()
                .into_owned();
            unique.push((path, content));
        }
    }
    Ok((unique, raw, files))
}

fn kind(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "html",
        Some("js" | "css" | "json" | "svg" | "txt" | "md") => "other text",
        _ => "binary/other",
    }
}

#[derive(Default, Clone, Copy)]
struct Sizes {
    raw: u64,
    stored: u64,
}

/// Stored sizes per kind of file at `level`, and the wall time on all cores.
fn measure_level(
    files: &[(String, Vec<u8>)],
    level: u32,
) -> (HashMap<&'static str, Sizes>, Duration, Duration) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = Instant::now();
    let chunks: Vec<(Measured, Duration)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let start = thread_cpu();
                    let sizes = files
                        .iter()
                        .skip(t)
                        .step_by(threads)
                        .map(|(path, content)| {
                            let stored =
                                compress(content, level).map_or(content.len(), |g| g.len());
                            (kind(path), content.len() as u64, stored as u64)
                        })
                        .collect();
                    (sizes, thread_cpu() - start)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a compressing thread"))
            .collect()
    });
    let cpu_used: Duration = chunks.iter().map(|(_, cpu)| *cpu).sum();
    let elapsed = start.elapsed();
    let mut sizes: HashMap<&'static str, Sizes> = HashMap::new();
    for (kind, raw, stored) in chunks.into_iter().flat_map(|(sizes, _)| sizes) {
        for key in [kind, "all"] {
            let s = sizes.entry(key).or_default();
            s.raw += raw;
            s.stored += stored;
        }
    }
    (sizes, elapsed, cpu_used)
}

/// CPU time of this process so far (all threads, user and system), from /proc: the
/// machine may be busy with other work, and CPU time is what a build pays.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command (in parentheses) start at the 3rd (state): utime and
    // stime, the 14th and 15th, are the 12th and 13th of those, in clock ticks.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let ticks = field(11) + field(12);
    Duration::from_millis(ticks * 10)
}

/// Time this thread has run, from the scheduler's own count (nanoseconds).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let nanos = stat
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(nanos)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn percent(part: u64, whole: u64) -> String {
    format!("{:.1}%", part as f64 * 100.0 / whole.max(1) as f64)
}

async fn store_twice(blobs: &Blobs, tree: &Path) -> Result<(), Error> {
    for run in ["first store", "second store"] {
        let (start, cpu_start) = (Instant::now(), cpu());
        let (manifest, stats) = archive::store_tree(blobs, tree).await?;
        let (elapsed, cpu_used) = (start.elapsed(), cpu() - cpu_start);
        println!(
            "  {run:<13} {:>6.2} s (CPU {:>5.2} s)  files {} blobs {} raw {} stored {} ({}) new blobs {} new {} skipped {} manifest {}",
            elapsed.as_secs_f64(),
            cpu_used.as_secs_f64(),
            stats.files,
            stats.blobs,
            mib(stats.bytes),
            mib(stats.stored_bytes),
            percent(stats.stored_bytes, stats.bytes),
            stats.new_blobs,
            mib(stats.new_bytes),
            stats.skipped,
            mib(manifest.to_bytes().len() as u64),
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let options = options()?;
    let (unique, raw, files) = read_tree(&options.tree)?;
    let unique_raw: u64 = unique.iter().map(|(_, c)| c.len() as u64).sum();
    println!(
        "tree {}: {files} files, {} raw; {} distinct contents, {}",
        options.tree.display(),
        mib(raw),
        unique.len(),
        mib(unique_raw)
    );

    println!("compression alone (distinct contents, gzip kept when it saves a tenth):");
    for &level in &options.levels {
        let (sizes, elapsed, cpu_used) = measure_level(&unique, level);
        let mut kinds: Vec<_> = sizes.into_iter().collect();
        kinds.sort_by_key(|(k, _)| *k);
        let line: Vec<String> = kinds
            .iter()
            .map(|(k, s)| {
                format!(
                    "{k} {} → {} ({})",
                    mib(s.raw),
                    mib(s.stored),
                    percent(s.stored, s.raw)
                )
            })
            .collect();
        println!(
            "  level {level}: {:>6.2} s (CPU {:>5.2} s)  {}",
            elapsed.as_secs_f64(),
            cpu_used.as_secs_f64(),
            line.join("; ")
        );
    }
    println!("  stores use level {}", archive::GZIP_LEVEL);

    let temp = tempfile::tempdir()?;
    let local = Blobs::open(&StorageLocation::Directory(temp.path().join("storage")))?;
    println!("store_tree into {}:", local.describe());
    store_twice(&local, &options.tree).await?;

    if let Some(endpoint) = options.s3 {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let location = StorageLocation::parse(
            &format!(
                "s3://{}/bench-{stamp}-{}",
                options.bucket,
                std::process::id()
            ),
            Some(&endpoint),
            Some("us-east-1"),
        )?;
        let s3 = Blobs::open(&location)?;
        println!("store_tree into {}:", s3.describe());
        store_twice(&s3, &options.tree).await?;
        let swept = archive::sweep(&s3, &HashSet::new(), Duration::ZERO).await?;
        println!("  cleaned up: {} blobs deleted", swept.deleted);
    }
    Ok(())
}
