//! `docbuild watch`: following a registry's index for new versions and queueing them.
//!
//! A git index is followed by its history (`git fetch`, then the lines added to index
//! files since the last commit seen). A sparse index has no change feed, so the index
//! files of the crates docbuild knows are polled with `If-None-Match`. Where it
//! stopped is kept in the queue database, so a restarted watcher resumes there. On a
//! registry's first pass nothing is queued: the versions present become the baseline,
//! as on a fresh docs.rs.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;

use crate::queue::{PRIORITY_NEW, Queue, QueueError};

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
}

/// One line of an index file; only what watching needs.
#[derive(Debug, Deserialize)]
struct IndexLine {
    name: String,
    vers: String,
    #[serde(default)]
    yanked: bool,
}

/// One pass over the registry. Returns the versions queued as `name@version`.
pub fn watch_once(
    queue: &Queue,
    registry: &WatchedRegistry,
    extra_crates: &[String],
    git_dir: &Path,
) -> Result<Vec<String>, WatchError> {
    let new = match registry.index.strip_prefix("sparse+") {
        Some(base) => poll_sparse(queue, registry, base, extra_crates)?,
        None => follow_git(queue, registry, git_dir)?,
    };
    let mut queued = Vec::new();
    for line in new {
        if line.yanked {
            continue;
        }
        let (_, fresh) = queue.enqueue(&registry.name, &line.name, &line.vers, PRIORITY_NEW)?;
        if fresh {
            queued.push(format!("{}@{}", line.name, line.vers));
        }
    }
    Ok(queued)
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
) -> Result<Vec<IndexLine>, WatchError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut names: BTreeSet<String> = queue.known_crates(&registry.name)?.into_iter().collect();
    names.extend(extra_crates.iter().cloned());
    let mut new = Vec::new();
    for name in names {
        let key = format!("crate:{name}");
        let saved = queue.watch_state(&registry.name, &key)?;
        let first_pass = saved.is_none();
        let state: SparseState = saved
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        let url = format!("{}/{}", base.trim_end_matches('/'), index_path(&name));
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
        let lines: Vec<IndexLine> = body
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        let versions: BTreeSet<String> = lines.iter().map(|l| l.vers.clone()).collect();
        if !first_pass {
            new.extend(
                lines
                    .into_iter()
                    .filter(|l| !state.versions.contains(&l.vers)),
            );
        }
        let state = SparseState { etag, versions };
        queue.set_watch_state(
            &registry.name,
            &key,
            &serde_json::to_string(&state).unwrap_or_default(),
        )?;
    }
    Ok(new)
}

/// cargo's index layout: `1/a`, `2/ab`, `3/a/abc`, `ab/cd/abcd…`.
pub fn index_path(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    match name.len() {
        1 => format!("1/{name}"),
        2 => format!("2/{name}"),
        3 => format!("3/{}/{name}", &name[..1]),
        _ => format!("{}/{}/{name}", &name[..2], &name[2..4]),
    }
}

fn follow_git(
    queue: &Queue,
    registry: &WatchedRegistry,
    git_dir: &Path,
) -> Result<Vec<IndexLine>, WatchError> {
    if !git_dir.join("HEAD").exists() {
        git(
            None,
            &[
                "clone",
                "--bare",
                "--quiet",
                &registry.index,
                &git_dir.to_string_lossy(),
            ],
        )?;
    } else {
        git(
            Some(git_dir),
            &["fetch", "--quiet", "origin", "+HEAD:refs/heads/watched"],
        )?;
    }
    let head_ref = if has_ref(git_dir, "refs/heads/watched") {
        "refs/heads/watched"
    } else {
        "HEAD"
    };
    let head = git(Some(git_dir), &["rev-parse", head_ref])?;
    let Some(last) = queue.watch_state(&registry.name, "git:last")? else {
        queue.set_watch_state(&registry.name, "git:last", &head)?;
        return Ok(Vec::new());
    };
    let diff = git(
        Some(git_dir),
        &["diff", "--unified=0", "--no-color", &last, &head],
    )?;
    let new = diff
        .lines()
        .filter(|line| line.starts_with('+') && !line.starts_with("+++"))
        .filter_map(|line| serde_json::from_str(&line[1..]).ok())
        .collect();
    queue.set_watch_state(&registry.name, "git:last", &head)?;
    Ok(new)
}

fn has_ref(git_dir: &Path, reference: &str) -> bool {
    git(
        Some(git_dir),
        &["rev-parse", "--verify", "--quiet", reference],
    )
    .is_ok()
}

fn git(dir: Option<&Path>, args: &[&str]) -> Result<String, WatchError> {
    let mut command = Command::new("git");
    if let Some(dir) = dir {
        command.arg("--git-dir").arg(dir);
    }
    let output = command
        .args(args)
        .output()
        .map_err(|e| WatchError::Git(format!("cannot run git: {e}")))?;
    if !output.status.success() {
        return Err(WatchError::Git(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
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
}
