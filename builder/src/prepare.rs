//! Preparing a build's sources on the host: reading the package, packaging it as
//! `cargo package` would publish it, removing files docs.rs removes, and making the
//! result readable for the sandbox's unprivileged user.

use std::path::{Path, PathBuf};

use cargo_metadata::{Package, TargetKind};

use crate::copy::{check_links, copy_sources, remove_below};
use crate::error::BuildError;
use crate::host_cargo::{HostCargo, HostFailure};
use crate::identity::CrateVersion;
use crate::unpack::unpack_crate;

/// Files docs.rs deletes from the sources: they would change how cargo builds.
const OVERRIDE_FILES: [&str; 4] = [
    ".cargo/config",
    ".cargo/config.toml",
    "rust-toolchain",
    "rust-toolchain.toml",
];

/// Top-level entries of a local package never copied into a build.
const NOT_SOURCES: [&str; 2] = ["target", ".git"];

/// A package found at a local path.
#[derive(Debug, Clone)]
pub struct LocalPackage {
    pub id: CrateVersion,
    pub dir: PathBuf,
    pub manifest: PathBuf,
    /// The library's crate name (`-` replaced by `_`); `None` without a library.
    pub lib_name: Option<String>,
    pub proc_macro: bool,
    /// It has a build script.
    pub build_script: bool,
    /// `package.metadata`, holding the docs.rs table.
    pub metadata: serde_json::Value,
    /// The directory is an unpacked `.crate` (it has `Cargo.toml.orig`).
    pub already_packaged: bool,
    pub features: std::collections::BTreeMap<String, Vec<String>>,
    /// Where links in its sources may point: its git repository, else its workspace.
    pub project_root: PathBuf,
    /// What it says about itself (its README not read yet).
    pub about: crate::about::PackageAbout,
    /// Its README, checked to lie inside the project.
    pub readme: Option<PathBuf>,
}

/// The input is not something we can build. `invalid-input`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InputError {
    #[error("no such package directory or manifest: {0}")]
    NoSuchPath(PathBuf),
    #[error("could not find `Cargo.toml` in `{0}` or any parent directory")]
    NotAPackage(PathBuf),
    #[error("the manifest path must be a path to a Cargo.toml file: {0}")]
    NotAManifest(PathBuf),
    #[error(
        "`{name}` is not published ({reason}), so docs.rs never builds it; check it alone with `docbuild check {}`",
        dir.display()
    )]
    NotPublished {
        name: String,
        reason: String,
        dir: PathBuf,
    },
    #[error("broken manifest {0}: {1}")]
    BrokenManifest(PathBuf, String),
    #[error("{0} is a workspace root without a package; use --workspace or -p NAME")]
    VirtualWorkspace(PathBuf),
    #[error("the package's {what} `{path}` lies outside the project at `{root}`")]
    OutsideProject {
        what: &'static str,
        path: PathBuf,
        root: PathBuf,
    },
    #[error("`{0}` is not a publishable member of the workspace at {1}")]
    NotAMember(String, PathBuf),
    #[error("invalid target `{0}`: expected a target triple such as x86_64-unknown-linux-gnu")]
    Target(String),
    #[error(
        "unknown target `{target}`: toolchain `{toolchain}` does not know it (see `rustc --print target-list`)"
    )]
    UnknownTarget { target: String, toolchain: String },
    #[error("{0}")]
    Metadata(#[from] crate::metadata::MetadataError),
}

impl LocalPackage {
    pub fn name(&self) -> &str {
        self.id.name()
    }

    pub fn version(&self) -> String {
        self.id.version()
    }

    /// Reads the package at `path` (its directory or its `Cargo.toml`) with `cargo
    /// metadata --no-deps`, which validates the manifest and runs nothing from the
    /// crate, and checks that nothing it would package lies outside its project.
    pub async fn locate(path: &Path, cargo: &HostCargo) -> Result<Self, BuildError> {
        let manifest = find_manifest(path)?;
        let dir = manifest
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| InputError::NotAManifest(manifest.clone()))?;
        let metadata =
            cargo
                .read_manifest(&manifest)
                .await
                .map_err(|error| match error.failure {
                    HostFailure::Crate => {
                        InputError::BrokenManifest(manifest.clone(), error.message).into()
                    }
                    _ => BuildError::HostCargo(error),
                })?;
        let package = metadata
            .packages
            .into_iter()
            .find(|p| p.manifest_path.as_std_path() == manifest)
            .ok_or_else(|| InputError::VirtualWorkspace(dir.clone()))?;
        let project_root = project_root(metadata.workspace_root.as_std_path());
        let located = Self::from_package(package, dir, manifest, project_root)?;
        let (dir, root) = (located.dir.clone(), located.project_root.clone());
        blocking(move || check_links(&dir, &root, &NOT_SOURCES).map_err(BuildError::Sources))
            .await?;
        Ok(located)
    }

    fn from_package(
        package: Package,
        dir: PathBuf,
        manifest: PathBuf,
        project_root: PathBuf,
    ) -> Result<Self, BuildError> {
        let library_kinds = [
            TargetKind::Lib,
            TargetKind::RLib,
            TargetKind::DyLib,
            TargetKind::CDyLib,
            TargetKind::StaticLib,
            TargetKind::ProcMacro,
        ];
        // `cargo package` copies these into the package wherever they are.
        let mut packaged_files: Vec<(&'static str, PathBuf)> = Vec::new();
        if let Some(readme) = &package.readme {
            packaged_files.push(("readme", dir.join(readme)));
        }
        if let Some(license) = &package.license_file {
            packaged_files.push(("license-file", dir.join(license)));
        }
        for target in &package.targets {
            packaged_files.push(("target source", target.src_path.clone().into()));
        }
        for (what, path) in packaged_files {
            let Ok(resolved) = std::fs::canonicalize(&path) else {
                continue;
            };
            if !resolved.starts_with(&project_root) {
                return Err(InputError::OutsideProject {
                    what,
                    path,
                    root: project_root,
                }
                .into());
            }
        }
        let lib = package
            .targets
            .iter()
            .find(|t| t.kind.iter().any(|k| library_kinds.contains(k)));
        Ok(Self {
            about: crate::about::PackageAbout::from_package(&package),
            readme: package.readme.as_ref().map(|readme| dir.join(readme)),
            id: CrateVersion::new(&package.name, &package.version.to_string())?,
            lib_name: lib.map(|t| t.name.replace('-', "_")),
            proc_macro: lib.is_some_and(|t| t.is_proc_macro()),
            build_script: package.targets.iter().any(|t| t.is_custom_build()),
            features: package.features.clone(),
            metadata: package.metadata,
            already_packaged: dir.join("Cargo.toml.orig").is_file(),
            dir,
            manifest,
            project_root,
        })
    }
}

/// The manifest `path` names, as cargo finds it: `path` itself when it is a
/// `Cargo.toml`, else the `Cargo.toml` of the directory or of its nearest ancestor
/// that has one (so that a check run from `src/` finds its package). Canonical.
pub fn find_manifest(path: &Path) -> Result<PathBuf, InputError> {
    let found = std::fs::canonicalize(path).map_err(|_| InputError::NoSuchPath(path.into()))?;
    if !found.is_dir() {
        return if found.file_name() == Some("Cargo.toml".as_ref()) && found.is_file() {
            Ok(found)
        } else {
            Err(InputError::NotAManifest(path.into()))
        };
    }
    found
        .ancestors()
        .map(|dir| dir.join("Cargo.toml"))
        .find(|manifest| manifest.is_file())
        .ok_or(InputError::NotAPackage(found))
}

/// The project a package belongs to: the git repository around its workspace, else
/// the workspace itself.
fn project_root(workspace_root: &Path) -> PathBuf {
    let root = std::fs::canonicalize(workspace_root).unwrap_or_else(|_| workspace_root.into());
    root.ancestors()
        .find(|dir| dir.join(".git").exists())
        .map_or(root.clone(), Path::to_path_buf)
}

/// Runs blocking file work off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BuildError> + Send + 'static,
) -> Result<T, BuildError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BuildError::Io("a file task failed", std::io::Error::other(e)))?
}

/// How the sources reach the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceMode {
    /// What `cargo package` would publish (the default).
    Package,
    /// The directory as it is (`--no-package`, or an unpacked `.crate`).
    AsIs,
}

/// Sources prepared for a build.
#[derive(Debug, Clone)]
pub struct PreparedSource {
    pub dir: PathBuf,
    /// The package ships a `Cargo.lock`.
    pub shipped_lockfile: bool,
    /// `--config` values host-side cargo needs for these sources (packaged workspace
    /// dependencies patched in, with absolute paths).
    pub host_config: Vec<String>,
}

impl PreparedSource {
    pub fn manifest(&self) -> PathBuf {
        self.dir.join("Cargo.toml")
    }
}

/// Puts the package's sources into `dest` (replacing what was there): what `cargo
/// package` would publish, or the directory as it is.
pub async fn prepare_source(
    package: &LocalPackage,
    mode: SourceMode,
    dest: &Path,
    scratch: &Path,
    cargo: &HostCargo,
) -> Result<PreparedSource, BuildError> {
    if mode == SourceMode::Package && !package.already_packaged {
        remove_dir(dest).await?;
        let target_dir = scratch.join("package");
        cargo.package(&package.manifest, &[], &target_dir).await?;
        let archive = target_dir
            .join("package")
            .join(format!("{}.crate", package.id.archive_prefix()));
        return prepare_packaged(&package.id, &archive, dest).await;
    }
    let (from, to, root) = (
        package.dir.clone(),
        dest.to_path_buf(),
        package.project_root.clone(),
    );
    // Copied over the previous check's copy: what did not change is not written
    // again, and what is no longer in the package is removed.
    blocking(move || {
        copy_sources(&from, &to, &root, &NOT_SOURCES).map_err(BuildError::Sources)?;
        finish_source(&to)
    })
    .await
}

/// Puts a packaged `.crate` into `dest` (replacing what was there).
pub async fn prepare_packaged(
    id: &CrateVersion,
    archive: &Path,
    dest: &Path,
) -> Result<PreparedSource, BuildError> {
    remove_dir(dest).await?;
    let (archive, prefix, dest) = (
        archive.to_path_buf(),
        id.archive_prefix(),
        dest.to_path_buf(),
    );
    blocking(move || {
        unpack_crate(&archive, &prefix, &dest)?;
        finish_source(&dest)
    })
    .await
}

async fn remove_dir(dir: &Path) -> Result<(), BuildError> {
    match tokio::fs::remove_dir_all(dir).await {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(BuildError::Io("cannot clear the sources", error))
        }
        _ => Ok(()),
    }
}

/// What every prepared source gets: its own workspace root, docs.rs's removals.
fn finish_source(dest: &Path) -> Result<PreparedSource, BuildError> {
    make_standalone(dest).map_err(BuildError::io("cannot read the prepared manifest"))?;
    for file in OVERRIDE_FILES {
        remove_below(dest, Path::new(file)).map_err(BuildError::Sources)?;
    }
    Ok(PreparedSource {
        dir: dest.to_path_buf(),
        shipped_lockfile: dest.join("Cargo.lock").is_file(),
        host_config: Vec::new(),
    })
}

/// An unpublished workspace member another member depends on, as packaged.
#[derive(Debug, Clone)]
pub struct PackagedDependency {
    pub id: CrateVersion,
    pub lib_name: Option<String>,
    pub archive: PathBuf,
}

/// Where packaged workspace dependencies go inside a prepared source.
const WORKSPACE_DEPS: &str = ".docbuild-workspace";

/// Makes unpublished dependencies resolve to their packages, as they will once
/// published: each is unpacked below the source and patched in for crates.io, in the
/// source's own `.cargo/config.toml` for the sandbox (relative paths) and as
/// `--config` values for host-side cargo (absolute paths), which never reads a
/// configuration file below the sources.
pub async fn add_packaged_dependencies(
    source: &mut PreparedSource,
    dependencies: &[PackagedDependency],
) -> Result<(), BuildError> {
    if dependencies.is_empty() {
        return Ok(());
    }
    let dest = source.dir.clone();
    let dependencies = dependencies.to_vec();
    let host_config = blocking(move || {
        let mut patch = String::from("[patch.crates-io]\n");
        let mut host_config = Vec::new();
        for dependency in &dependencies {
            let prefix = dependency.id.archive_prefix();
            let dir = dest.join(WORKSPACE_DEPS).join(&prefix);
            unpack_crate(&dependency.archive, &prefix, &dir)?;
            make_standalone(&dir).map_err(BuildError::io("cannot read a member's manifest"))?;
            let name = dependency.id.name();
            patch.push_str(&format!(
                "{name} = {{ path = \"{WORKSPACE_DEPS}/{prefix}\" }}\n"
            ));
            host_config.push(format!(
                "patch.crates-io.{name}.path={}",
                toml_string(&dir.to_string_lossy())
            ));
        }
        let config = dest.join(".cargo");
        std::fs::create_dir_all(&config).map_err(BuildError::io("cannot write the patch"))?;
        std::fs::write(config.join("config.toml"), patch)
            .map_err(BuildError::io("cannot write the patch"))?;
        Ok(host_config)
    })
    .await?;
    source.host_config.extend(host_config);
    Ok(())
}

/// Drops from the source's `Cargo.lock` the registry entries of `names`: workspace
/// members packaged together get each other's *local* package checksums there, which
/// a published version of the same number would not match. cargo resolves just those
/// entries again; every other pin stays.
pub fn unlock_members(dest: &Path, names: &[String]) -> Result<(), BuildError> {
    let lockfile = dest.join("Cargo.lock");
    const WHAT: &str = "cannot rewrite Cargo.lock";
    let Ok(text) = std::fs::read_to_string(&lockfile) else {
        return Ok(());
    };
    let Ok(mut lock) = text.parse::<toml::Table>() else {
        return Ok(());
    };
    let Some(toml::Value::Array(packages)) = lock.get_mut("package") else {
        return Ok(());
    };
    let before = packages.len();
    packages.retain(|package| {
        let name = package
            .get("name")
            .and_then(toml::Value::as_str)
            .unwrap_or_default();
        !(package.get("source").is_some() && names.iter().any(|n| n == name))
    });
    if packages.len() != before {
        let text =
            toml::to_string(&lock).map_err(|e| BuildError::Io(WHAT, std::io::Error::other(e)))?;
        std::fs::write(&lockfile, text).map_err(BuildError::io(WHAT))?;
    }
    Ok(())
}

/// A quoted TOML string (JSON's string escapes are TOML's).
fn toml_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// Makes the prepared manifest its own workspace root, as a published crate is: the
/// prepared copy lives under docbuild's cache, and cargo must not take a
/// `Cargo.toml` above it for its workspace. A manifest that names a workspace of
/// its own is left alone.
pub(crate) fn make_standalone(dest: &Path) -> std::io::Result<()> {
    let manifest = dest.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)?;
    let has_workspace = text
        .parse::<toml::Table>()
        .map(|table| table.contains_key("workspace"))
        .unwrap_or(true);
    if !has_workspace {
        let mut file = std::fs::File::options().append(true).open(&manifest)?;
        std::io::Write::write_all(&mut file, b"\n[workspace]\n")?;
    }
    Ok(())
}

/// Makes every file under `root` readable (and directories searchable) for the
/// sandbox's user. Published crates may hold owner-only files, which a root host
/// would otherwise unpack unreadable for the unprivileged build.
pub fn make_readable(root: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.map_err(std::io::Error::other)?;
        if entry.path_is_symlink() {
            continue;
        }
        let metadata = entry.metadata().map_err(std::io::Error::other)?;
        let mode = metadata.permissions().mode();
        let wanted = if metadata.is_dir() || mode & 0o100 != 0 {
            mode | 0o555
        } else {
            mode | 0o444
        };
        if wanted != mode {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(wanted))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_unlocked_and_other_pins_kept() {
        let dir = tempfile::tempdir().unwrap();
        let lock = "version = 4\n\n\
            [[package]]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\"member\", \"serde\"]\n\n\
            [[package]]\nname = \"member\"\nversion = \"0.1.0\"\nsource = \"registry+https://example.invalid/index\"\nchecksum = \"00\"\n\n\
            [[package]]\nname = \"serde\"\nversion = \"1.0.0\"\nsource = \"registry+https://example.invalid/index\"\nchecksum = \"11\"\n";
        std::fs::write(dir.path().join("Cargo.lock"), lock).unwrap();
        unlock_members(dir.path(), &["member".into(), "app".into()]).unwrap();
        let kept: toml::Table = std::fs::read_to_string(dir.path().join("Cargo.lock"))
            .unwrap()
            .parse()
            .unwrap();
        let names: Vec<&str> = kept["package"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["app", "serde"]);
    }
}
