//! rustdoc's shared static files (`static.files/`: its scripts, styles and fonts),
//! made by docbuild from the toolchain, never taken from a crate's build.
//!
//! A crate's build writes its own copy of them into its doc directory, and a process
//! a build script left running can rewrite that copy after rustdoc wrote it. Served
//! from the viewer's origin, such a script would run on every crate's pages. So the
//! copy a build leaves is always replaced by the toolchain's own: rustdoc run by
//! docbuild on an empty crate, once per toolchain version.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::copy::{checked_dir, copy_output, remove_below};
use crate::error::BuildError;
use crate::host_cargo::run_host;
use crate::prepare::blocking;
use crate::toolchain::Toolchain;

/// The name of rustdoc's shared static file directory.
pub const STATIC_FILES: &str = "static.files";

/// Where the static files of the toolchain whose `rustc -V` is `version` are kept
/// below `cache` (a build's record names its toolchain that way).
pub fn reference_dir(version: &str, cache: &Path) -> PathBuf {
    let digest = Sha256::digest(version.as_bytes());
    let key: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    cache.join("static-files").join(key).join(STATIC_FILES)
}

/// The toolchain's `static.files/`, made on first use below `cache`.
pub async fn reference_static_files(
    toolchain: &Toolchain,
    cache: &Path,
    cancel: &CancellationToken,
) -> Result<PathBuf, BuildError> {
    let files = reference_dir(&toolchain.version, cache);
    let dir = files.parent().map(Path::to_path_buf).unwrap_or_default();
    if files.is_dir() {
        return Ok(files);
    }
    // Builds at once may make them at once: each in a directory of its own.
    let parent = cache.join("static-files");
    tokio::fs::create_dir_all(&parent)
        .await
        .map_err(BuildError::io("cannot make rustdoc's static files"))?;
    let scratch_dir = tempfile::Builder::new()
        .prefix("tmp-")
        .tempdir_in(&parent)
        .map_err(BuildError::io("cannot make rustdoc's static files"))?;
    let scratch = scratch_dir.path().to_path_buf();
    let input = scratch.join("lib.rs");
    tokio::fs::write(&input, "//! Shared files.\n")
        .await
        .map_err(BuildError::io("cannot make rustdoc's static files"))?;
    let mut command = tokio::process::Command::new(toolchain.rustdoc());
    command
        .current_dir("/")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .args([
            "--crate-type",
            "lib",
            "--crate-name",
            "docbuild_static",
            "-o",
        ])
        .arg(scratch.join("doc"))
        .arg(&input);
    let made = run_host("rustdoc", command, Duration::from_secs(120), cancel).await;
    let result = match made {
        Ok(_) => {
            let from = scratch.join("doc").join(STATIC_FILES);
            match tokio::fs::create_dir_all(&dir).await {
                // Another build may have made them in the meantime; either copy is good.
                Ok(()) => match tokio::fs::rename(&from, &files).await {
                    Ok(()) => Ok(files.clone()),
                    Err(_) if files.is_dir() => Ok(files.clone()),
                    Err(error) => Err(BuildError::Io("cannot keep rustdoc's static files", error)),
                },
                Err(error) => Err(BuildError::Io("cannot keep rustdoc's static files", error)),
            }
        }
        Err(error) => Err(BuildError::HostCargo(error)),
    };
    drop(scratch_dir);
    result
}

/// Replaces the `static.files/` a build left in `root/doc_dir` with the toolchain's
/// own copy (`reference`).
pub async fn replace_static_files(
    root: &Path,
    doc_dir: &Path,
    reference: &Path,
) -> Result<(), BuildError> {
    let (root, doc_dir, reference) = (
        root.to_path_buf(),
        doc_dir.to_path_buf(),
        reference.to_path_buf(),
    );
    blocking(move || {
        let Some(doc) = checked_dir(&root, &doc_dir).map_err(BuildError::Output)? else {
            return Ok(());
        };
        remove_below(&root, &doc_dir.join(STATIC_FILES)).map_err(BuildError::Output)?;
        copy_output(&reference, Path::new(""), &doc.join(STATIC_FILES), &[])
            .map_err(BuildError::Output)?;
        Ok(())
    })
    .await
}

/// Puts any of the toolchain's static files missing from `shared` there.
pub async fn share_static_files(reference: &Path, shared: &Path) -> Result<(), BuildError> {
    let (reference, shared) = (reference.to_path_buf(), shared.to_path_buf());
    blocking(move || {
        std::fs::create_dir_all(&shared).map_err(BuildError::io("cannot share static files"))?;
        let entries =
            std::fs::read_dir(&reference).map_err(BuildError::io("cannot read static files"))?;
        for entry in entries.flatten() {
            let kept = shared.join(entry.file_name());
            if !kept.exists() {
                // Workers share this directory: each copy goes to a file of its own and
                // is renamed into place (same content, so whichever lands last is fine).
                let copied = tempfile::Builder::new()
                    .prefix(".partial-")
                    .tempfile_in(&shared)
                    .and_then(|partial| {
                        std::fs::copy(entry.path(), partial.path())?;
                        partial.persist(&kept).map_err(|e| e.error)
                    });
                copied.map_err(BuildError::io("cannot share static files"))?;
            }
        }
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn workers_share_static_files_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let reference = dir.path().join("reference");
        std::fs::create_dir_all(&reference).unwrap();
        for n in 0..20 {
            std::fs::write(reference.join(format!("file-{n}.js")), format!("// {n}")).unwrap();
        }
        let shared = dir.path().join("shared");
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (reference, shared) = (reference.clone(), shared.clone());
            tasks.spawn(async move { share_static_files(&reference, &shared).await });
        }
        while let Some(result) = tasks.join_next().await {
            result.unwrap().unwrap();
        }
        let names: Vec<_> = std::fs::read_dir(&shared).unwrap().flatten().collect();
        assert_eq!(names.len(), 20, "no partial file left: {names:?}");
        assert_eq!(
            std::fs::read_to_string(shared.join("file-7.js")).unwrap(),
            "// 7"
        );
    }
}
