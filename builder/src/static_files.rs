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
