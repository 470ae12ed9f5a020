//! `docbuild watch`: following a registry's index for new versions and queueing them.
//!
//! A git index is followed by its history (`git fetch`, then the lines added to index
//! files since the last commit seen). A sparse index has no change feed, so the index
//! files of the crates docbuild knows are polled with `If-None-Match`. Where it
//! stopped is kept in the queue database, so a restarted watcher resumes there. On a
//! registry's first pass nothing is queued: the versions present become the baseline,
//! as on a fresh docs.rs.
//!
//! An index is not trusted: every line is validated as a crate name and version
//! ([`CrateVersion`]) before anything is built from it, and a line that is not valid,
//! or names another crate than its file, is skipped with a warning. `git` runs with a
//! time limit, from docbuild's own directory, and is killed when the pass is
//! cancelled.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::queue::{PRIORITY_NEW, Queue, QueueError};
use crate::registry::{CrateVersion, CrateVersionError};
use docbuild_store::db::blocking;

/// How long one `git` command (a clone or fetch of the index included) may take.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// A registry to watch.
#[derive(Debug, Clone)]
pub struct WatchedRegistry {
    pub name: String,
    /// `sparse+http(s)://…/`, or a git URL (`https://…`, `file://…`).
    pub index: String,
    pub token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("index request {0} failed: {1}")]
    Http(String, String),
    #[error("git failed: {0}")]
    Git(String),
    #[error("invalid registry name `{0}`: letters, digits, `-` and `_` only")]
    RegistryName(String),
    #[error("the watch pass was cancelled")]
    Cancelled,
}

/// Checks a crate name given without a version (`watch --crate`, the names the queue
/// knows) by the same rule as [`CrateVersion`]: it ends up in keys and URLs.
pub fn crate_name(name: &str) -> Result<String, CrateVersionError> {
    CrateVersion::new(name, "0.0.0").map(|krate| krate.name().to_string())
}

/// Whether a registry name is safe in paths and keys (it names `watch/<name>.git`).
pub fn valid_registry_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// One line of an index file; only what watching needs.
#[derive(Debug, Deserialize)]
struct IndexLine {
    name: String,
    vers: String,
    #[serde(default)]
    yanked: bool,
}

/// A version an index lists, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    krate: CrateVersion,
    yanked: bool,
}

/// A line as a log shows it: cut short, control characters escaped.
fn shown(line: &str) -> String {
    let cut: String = line.chars().take(200).collect();
    if cut.len() < line.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// Parses and validates one line of the index file `file`, which lists the versions
/// of the crate `expected` (cargo names index files by the lowercased crate name).
/// Anything else is skipped with a warning naming the line.
fn parse_line(line: &str, file: &str, expected: &str) -> Option<Listed> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let parsed: IndexLine = match serde_json::from_str(line) {
        Ok(parsed) => parsed,
        Err(error) => {
            tracing::warn!(file, line = %shown(line), %error, "skipped an index line: not a version entry");
            return None;
        }
    };
    let krate = match CrateVersion::new(&parsed.name, &parsed.vers) {
        Ok(krate) => krate,
        Err(error) => {
            tracing::warn!(file, line = %shown(line), %error, "skipped an index line: invalid name or version");
            return None;
        }
    };
    if !krate.name().eq_ignore_ascii_case(expected) {
        tracing::warn!(file, line = %shown(line), "skipped an index line: it names another crate than its file");
        return None;
    }
    Some(Listed {
        krate,
        yanked: parsed.yanked,
    })
}

/// One pass over the registry. Returns the versions queued as `name@version`.
/// `extra_crates` are followed besides the crates ever queued (sparse indexes only).
pub async fn watch_once(
    queue: &Queue,
    registry: &WatchedRegistry,
    extra_crates: &[String],
    git_dir: &Path,
    cancel: &CancellationToken,
) -> Result<Vec<String>, WatchError> {
    if !valid_registry_name(&registry.name) {
        return Err(WatchError::RegistryName(registry.name.clone()));
    }
    match registry.index.strip_prefix("sparse+") {
        Some(base) => {
            let (queue, registry, base, extra, cancel) = (
                queue.clone(),
                registry.clone(),
                base.to_string(),
                extra_crates.to_vec(),
                cancel.clone(),
            );
            blocking(move || poll_sparse(&queue, &registry, &base, &extra, &cancel)).await
        }
        None => follow_git(queue, registry, git_dir, cancel).await,
    }
}

/// Queues the versions not yanked; returns them as `name@version`.
async fn enqueue(
    queue: &Queue,
    registry: &str,
    listed: &[Listed],
) -> Result<Vec<String>, WatchError> {
    let registry = crate::identity::RegistryName::new(registry)
        .map_err(|_| WatchError::RegistryName(registry.to_string()))?;
    let mut queued = Vec::new();
    for Listed { krate, yanked } in listed {
        if *yanked {
            continue;
        }
        let id = crate::identity::CrateId {
            registry: registry.clone(),
            krate: krate.clone(),
        };
        let (_, fresh) = queue.enqueue(&id, PRIORITY_NEW).await?;
        if fresh {
            queued.push(krate.to_string());
        }
    }
    Ok(queued)
}

/// The crates a sparse index is polled for: those ever queued from it and `extra`,
/// each checked as a crate name (an invalid one is skipped with a warning).
async fn followed_crates(
    queue: &Queue,
    registry: &str,
    extra: &[String],
) -> Result<BTreeSet<String>, QueueError> {
    let known = queue.known_crates(registry).await?;
    Ok(known
        .iter()
        .chain(extra)
        .filter_map(|name| match crate_name(name) {
            Ok(name) => Some(name),
            Err(error) => {
                tracing::warn!(name = %shown(name), %error, "not following an invalid crate name");
                None
            }
        })
        .collect())
}

/// Saved per crate: the index file's ETag and the versions it listed.
#[derive(Debug, Default, serde::Serialize, Deserialize)]
struct SparseState {
    etag: Option<String>,
    versions: BTreeSet<String>,
}

fn poll_sparse(
    queue: &Queue,
    registry: &WatchedRegistry,
    base: &str,
    extra_crates: &[String],
    cancel: &CancellationToken,
) -> Result<Vec<String>, WatchError> {
    // Runs on a blocking thread (the index is read with a blocking client); the
    // queue's calls are waited for here.
    let runtime = tokio::runtime::Handle::current();
    let agent = crate::http::agent(Duration::from_secs(30));
    let mut queued = Vec::new();
    for name in runtime.block_on(followed_crates(queue, &registry.name, extra_crates))? {
        if cancel.is_cancelled() {
            return Err(WatchError::Cancelled);
        }
        let key = format!("crate:{name}");
        let saved = runtime.block_on(queue.watch_state(&registry.name, &key))?;
        let first_pass = saved.is_none();
        let state: SparseState = saved
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        let file = index_path(&name);
        let url = format!("{}/{file}", base.trim_end_matches('/'));
        let mut request = agent.get(&url);
        if let Some(token) = &registry.token {
            request = request.header("Authorization", token);
        }
        if let Some(etag) = &state.etag {
            request = request.header("If-None-Match", etag);
        }
        let mut response = request
            .call()
            .map_err(|e| WatchError::Http(url.clone(), e.to_string()))?;
        match response.status().as_u16() {
            304 | 404 | 410 | 451 => continue,
            200 => {}
            status => return Err(WatchError::Http(url, format!("status {status}"))),
        }
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| WatchError::Http(url.clone(), e.to_string()))?;
        let listed: Vec<Listed> = body
            .lines()
            .filter_map(|line| parse_line(line, &file, &name))
            .collect();
        let versions: BTreeSet<String> = listed.iter().map(|l| l.krate.version()).collect();
        if !first_pass {
            let new: Vec<Listed> = listed
                .into_iter()
                .filter(|l| !state.versions.contains(&l.krate.version()))
                .collect();
            // Queued before the state moves on, so that a failure in between loses
            // nothing: the next pass finds the same versions new again.
            queued.extend(runtime.block_on(enqueue(queue, &registry.name, &new))?);
        }
        let state = SparseState { etag, versions };
        runtime.block_on(queue.set_watch_state(
            &registry.name,
            &key,
            &serde_json::to_string(&state).unwrap_or_default(),
        ))?;
    }
    Ok(queued)
}

/// cargo's index layout: `1/a`, `2/ab`, `3/a/abc`, `ab/cd/abcd…`. Only ever given
/// valid crate names, but safe (no panic) for any text: it counts characters.
pub fn index_path(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    let chars: Vec<char> = name.chars().collect();
    let part = |range: std::ops::Range<usize>| chars[range].iter().collect::<String>();
    match chars.len() {
        len @ 0..=2 => format!("{len}/{name}"),
        3 => format!("3/{}/{name}", part(0..1)),
        _ => format!("{}/{}/{name}", part(0..2), part(2..4)),
    }
}

/// The lines a `git diff` adds to index files, with the file each is in;
/// `config.json` is not an index file.
fn added_lines(diff: &str) -> Vec<(&str, &str)> {
    let mut file = "";
    let mut added = Vec::new();
    for line in diff.lines() {
        if let Some(header) = line.strip_prefix("+++ ") {
            file = header.strip_prefix("b/").unwrap_or(header);
        } else if let Some(text) = line.strip_prefix('+')
            && !file.is_empty()
            && file != "config.json"
            && file != "/dev/null"
        {
            added.push((file, text));
        }
    }
    added
}

async fn follow_git(
    queue: &Queue,
    registry: &WatchedRegistry,
    git_dir: &Path,
    cancel: &CancellationToken,
) -> Result<Vec<String>, WatchError> {
    // git runs from docbuild's own directory, never from one a crate controls.
    let home = git_dir.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(home)
        .map_err(|e| WatchError::Git(format!("{}: {e}", home.display())))?;
    let git = Git { home, cancel };
    if !git_dir.join("HEAD").exists() {
        let target = git_dir.to_string_lossy();
        git.run(
            None,
            &["clone", "--bare", "--quiet", "--", &registry.index, &target],
        )
        .await?;
    } else {
        git.run(
            Some(git_dir),
            &["fetch", "--quiet", "origin", "+HEAD:refs/heads/watched"],
        )
        .await?;
    }
    let watched = git
        .run(
            Some(git_dir),
            &["rev-parse", "--verify", "--quiet", "refs/heads/watched"],
        )
        .await
        .is_ok();
    let head_ref = if watched {
        "refs/heads/watched"
    } else {
        "HEAD"
    };
    let head = git.run(Some(git_dir), &["rev-parse", head_ref]).await?;
    let last = queue.watch_state(&registry.name, "git:last").await?;
    let Some(last) = last else {
        queue
            .set_watch_state(&registry.name, "git:last", &head)
            .await?;
        return Ok(Vec::new());
    };
    let diff = git
        .run(
            Some(git_dir),
            &[
                "diff",
                "--unified=0",
                "--no-color",
                "--no-ext-diff",
                &last,
                &head,
            ],
        )
        .await?;
    let new: Vec<Listed> = added_lines(&diff)
        .into_iter()
        .filter_map(|(file, line)| {
            let expected = file.rsplit('/').next().unwrap_or(file);
            parse_line(line, file, expected)
        })
        .collect();
    // Queued before the commit seen moves on, so that a failure loses nothing.
    let queued = enqueue(queue, &registry.name, &new).await?;
    queue
        .set_watch_state(&registry.name, "git:last", &head)
        .await?;
    Ok(queued)
}

/// Runs the host's `git`: from a neutral directory, with a time limit, killed when
/// the pass is cancelled or gives up on it.
struct Git<'a> {
    home: &'a Path,
    cancel: &'a CancellationToken,
}

impl Git<'_> {
    async fn run(&self, git_dir: Option<&Path>, args: &[&str]) -> Result<String, WatchError> {
        let mut command = Command::new("git");
        command
            .current_dir(self.home)
            // Never wait for a password on a terminal.
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(dir) = git_dir {
            command.arg("--git-dir").arg(dir);
        }
        command.args(args);
        let what = args.first().copied().unwrap_or("git");
        let output = tokio::select! {
            output = tokio::time::timeout(GIT_TIMEOUT, command.output()) => match output {
                Ok(Ok(output)) => output,
                Ok(Err(e)) => return Err(WatchError::Git(format!("cannot run git: {e}"))),
                Err(_) => {
                    return Err(WatchError::Git(format!(
                        "git {what} took longer than {}; stopped",
                        humantime::format_duration(GIT_TIMEOUT)
                    )));
                }
            },
            _ = self.cancel.cancelled() => return Err(WatchError::Cancelled),
        };
        if !output.status.success() {
            return Err(WatchError::Git(
                String::from_utf8_lossy(&output.stderr).trim().to_string(),
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_paths_follow_cargo() {
        assert_eq!(index_path("a"), "1/a");
        assert_eq!(index_path("ab"), "2/ab");
        assert_eq!(index_path("abc"), "3/a/abc");
        assert_eq!(index_path("Serde"), "se/rd/serde");
    }

    #[test]
    fn index_paths_never_panic() {
        for name in [
            "",
            "é",
            "aé",
            "aéb",
            "cârte",
            "crâte",
            "ñandú",
            "日本語の名前",
        ] {
            index_path(name);
        }
        assert_eq!(index_path("aéb"), "3/a/aéb");
        assert_eq!(index_path("cârte"), "câ/rt/cârte");
    }

    fn line(name: &str, vers: &str) -> String {
        serde_json::json!({"name": name, "vers": vers, "deps": [], "cksum": "0", "yanked": false})
            .to_string()
    }

    #[test]
    fn index_lines_are_validated() {
        let ok = parse_line(
            &line("Good_crate", "1.0.0"),
            "go/od/good_crate",
            "good_crate",
        );
        assert_eq!(
            ok.map(|l| l.krate),
            Some(CrateVersion::new("Good_crate", "1.0.0").unwrap())
        );
        for (name, vers) in [
            ("../../escape", "1.0.0"),
            ("crâte", "1.0.0"),
            ("good_crate/../x", "1.0.0"),
            ("good_crate", "../1.0.0"),
            ("good_crate", "1.0"),
            ("other", "1.0.0"),
        ] {
            assert_eq!(
                parse_line(&line(name, vers), "go/od/good_crate", "good_crate"),
                None,
                "{name} {vers}"
            );
        }
        for text in ["", "not json", "{\"name\": 1}", "[]"] {
            assert_eq!(parse_line(text, "go/od/good_crate", "good_crate"), None);
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn only_valid_names_are_followed() {
        let database = docbuild_store::testing::TestDatabase::sqlite();
        let store = docbuild_store::Store::open(&database.store_location())
            .await
            .unwrap();
        let queue = store.queue();
        // Queued before names were checked everywhere.
        for name in ["../../x", "crâte", "good"] {
            store
                .db()
                .write(move |conn| {
                    conn.execute(
                        "INSERT INTO jobs (registry, name, version, created_at)
                         VALUES ('r', $1, '1.0.0', 0)",
                        docbuild_store::params![name],
                    )
                })
                .await
                .unwrap();
        }
        let followed = followed_crates(
            &queue,
            "r",
            &[
                "also-good".to_string(),
                "a b".to_string(),
                "x/y".to_string(),
            ],
        )
        .await
        .unwrap();
        assert_eq!(
            followed.into_iter().collect::<Vec<_>>(),
            vec!["also-good", "good"]
        );
    }

    #[test]
    fn a_diff_adds_lines_to_index_files_only() {
        let diff = "diff --git a/config.json b/config.json\n--- a/config.json\n+++ b/config.json\n\
                    @@ -1 +1 @@\n-{\"dl\":\"a\"}\n+{\"dl\":\"b\"}\n\
                    diff --git a/gi/tc/gitcrate b/gi/tc/gitcrate\n--- a/gi/tc/gitcrate\n+++ b/gi/tc/gitcrate\n\
                    @@ -1,0 +2 @@\n+{\"name\":\"gitcrate\"}\n";
        assert_eq!(
            added_lines(diff),
            vec![("gi/tc/gitcrate", "{\"name\":\"gitcrate\"}")]
        );
    }
}
