//! A check's target directory left mounted for a while after the check ends.
//!
//! Unmounting drops the filesystem's cached files: the next warm check of the same
//! package would read cargo's fingerprints and its dependencies' metadata through the
//! loop device again, and mount and unmount anew, about 0.14 s of a 2 s warm check
//! of axum. So `check` leaves the filesystem mounted and starts a detached process
//! (docbuild's hidden `release-target` command, [`release_idle_target`]) that
//! unmounts it once the work directory has been idle for [`KeepMounted::idle`].
//!
//! Who owns the mount is written in the work directory (`target.kept`): every check
//! that keeps it writes a new token, and a waiting release whose token is no longer
//! there leaves the mount to the newer one. A release never unmounts while a check
//! holds the work directory's lock. A killed release leaves the mount to the next
//! check of the package, or to `docbuild gc`, as a killed check does.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::build_cache::new_id;
use crate::disk::{TargetDir, unmount};
use crate::error::BuildError;

/// The hidden command of `program` that runs [`release_idle_target`]:
/// `program release-target --token TOKEN --idle-secs N WORK_DIR`.
pub const RELEASE_COMMAND: &str = "release-target";

/// The file naming the check that last kept the target directory mounted.
const TOKEN_FILE: &str = "target.kept";

/// Leave check's target directory mounted after the check, unmounted by `program`
/// once idle this long.
#[derive(Debug, Clone)]
pub struct KeepMounted {
    pub idle: Duration,
    /// The docbuild executable, run detached as [`RELEASE_COMMAND`].
    pub program: PathBuf,
}

/// Ends a check's use of `target`: leaves it mounted with a release process waiting,
/// or, when that process cannot start or there is no mount, releases it now.
/// Called with the work directory's lock held.
pub(crate) async fn leave_mounted(
    target: TargetDir,
    keep: &KeepMounted,
    work: &Path,
) -> Result<(), BuildError> {
    if !target.mounted() {
        return Ok(target.release().await?);
    }
    let token = new_id();
    let token_path = work.join(TOKEN_FILE);
    let started = match tokio::fs::write(&token_path, &token).await {
        // Never waited for: dropping the child leaves it running (the runtime
        // reaps it when it exits).
        Ok(()) => tokio::process::Command::new(&keep.program)
            .arg(RELEASE_COMMAND)
            .arg("--token")
            .arg(&token)
            .arg("--idle-secs")
            .arg(keep.idle.as_secs().to_string())
            .arg(work)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Out of the terminal's process group: Ctrl-C of the next command in
            // this shell does not reach it.
            .process_group(0)
            .spawn()
            .map(drop),
        Err(error) => Err(error),
    };
    match started {
        Ok(()) => {
            target.keep_mounted();
            Ok(())
        }
        Err(error) => {
            tracing::warn!(%error, "cannot start the release of the target directory");
            let _ = tokio::fs::remove_file(&token_path).await;
            Ok(target.release().await?)
        }
    }
}

/// The detached end of [`KeepMounted`]: waits until `work`'s target directory has
/// been idle for `idle`, then unmounts it. Returns early, leaving the mount, if a
/// later check kept it (another token) or a check is using it (the lock is held):
/// that check sees to it.
pub async fn release_idle_target(work: &Path, token: &str, idle: Duration) -> io::Result<()> {
    let deadline = Instant::now() + idle;
    loop {
        match owner(work).await? {
            Some(owner) if owner != token => return Ok(()),
            Some(_) => {}
            // Released by a later check, or the work directory was deleted: only
            // what may still be mounted is left to do.
            None => break,
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
    }
    // Never created here: every check makes it before it uses the directory, and a
    // work directory being deleted must not get it back.
    let lock = match tokio::fs::OpenOptions::new()
        .write(true)
        .open(work.join("lock"))
        .await
    {
        Ok(lock) => Some(lock.into_std().await),
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(error) => return Err(error),
    };
    if let Some(lock) = &lock {
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(()),
            Err(std::fs::TryLockError::Error(error)) => return Err(error),
        }
        if owner(work).await?.is_some_and(|owner| owner != token) {
            return Ok(());
        }
    }
    unmount(&work.join("target"))
        .await
        .map_err(io::Error::other)?;
    match tokio::fs::remove_file(work.join(TOKEN_FILE)).await {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// The token of the check that last kept `work`'s target directory mounted.
async fn owner(work: &Path) -> io::Result<Option<String>> {
    match tokio::fs::read_to_string(work.join(TOKEN_FILE)).await {
        Ok(token) => Ok(Some(token)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}
