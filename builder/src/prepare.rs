//! Preparing a build's sources on the host: reading the package, packaging it as
//! `cargo package` would publish it, removing files docs.rs removes, and making the
//! result readable for the sandbox's unprivileged user.

use std::path::{Path, PathBuf};

use cargo_metadata::{MetadataCommand, Package, TargetKind};

use crate::host_cargo::{HostCargo, HostCargoError};
use crate::toolchain::Toolchain;
use crate::unpack::{UnpackError, unpack_crate};

/// Files docs.rs deletes from the sources: they would change how cargo builds.
const OVERRIDE_FILES: [&str; 4] = [
    ".cargo/config",
    ".cargo/config.toml",
    "rust-toolchain",
    "rust-toolchain.toml",
];

/// A package found at a local path.
#[derive(Debug, Clone)]
pub struct LocalPackage {
    pub name: String,
    pub version: String,
    pub dir: PathBuf,
    /// The library's crate name (`-` replaced by `_`); `None` without a library.
    pub lib_name: Option<String>,
    pub proc_macro: bool,
    /// `package.metadata`, holding the docs.rs table.
    pub metadata: serde_json::Value,
    /// The directory is an unpacked `.crate` (it has `Cargo.toml.orig`).
    pub already_packaged: bool,
    pub features: std::collections::BTreeMap<String, Vec<String>>,
}

/// The input is not something we can build. `invalid-input`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InputError {
    #[error("no such directory: {0}")]
    NoSuchPath(PathBuf),
    #[error("not a Cargo package: {0} has no Cargo.toml")]
    NotAPackage(PathBuf),
    #[error("broken manifest {0}: {1}")]
    BrokenManifest(PathBuf, String),
    #[error("{0} is a workspace root without a package; use --workspace or -p NAME")]
    VirtualWorkspace(PathBuf),
    #[error("{0}")]
    Metadata(#[from] crate::metadata::MetadataError),
}

impl LocalPackage {
    /// Reads the package at `path` with `cargo metadata --no-deps`, which validates the
    /// manifest and runs nothing from the crate.
    pub fn locate(path: &Path, toolchain: &Toolchain) -> Result<Self, InputError> {
        let dir = std::fs::canonicalize(path).map_err(|_| InputError::NoSuchPath(path.into()))?;
        if !dir.is_dir() {
            return Err(InputError::NoSuchPath(path.into()));
        }
        let manifest = dir.join("Cargo.toml");
        if !manifest.is_file() {
            return Err(InputError::NotAPackage(dir));
        }
        let metadata = MetadataCommand::new()
            .cargo_path(toolchain.cargo())
            .env("RUSTC", toolchain.rustc())
            .current_dir(&dir)
            .manifest_path(&manifest)
            .no_deps()
            .exec()
            .map_err(|error| InputError::BrokenManifest(manifest.clone(), manifest_error(error)))?;
        let package = metadata
            .packages
            .into_iter()
            .find(|p| p.manifest_path.as_std_path() == manifest)
            .ok_or_else(|| InputError::VirtualWorkspace(dir.clone()))?;
        Ok(Self::from_package(package, dir))
    }

    fn from_package(package: Package, dir: PathBuf) -> Self {
        let library_kinds = [
            TargetKind::Lib,
            TargetKind::RLib,
            TargetKind::DyLib,
            TargetKind::CDyLib,
            TargetKind::StaticLib,
            TargetKind::ProcMacro,
        ];
        let lib = package
            .targets
            .iter()
            .find(|t| t.kind.iter().any(|k| library_kinds.contains(k)));
        Self {
            name: package.name.to_string(),
            version: package.version.to_string(),
            lib_name: lib.map(|t| t.name.replace('-', "_")),
            proc_macro: lib.is_some_and(|t| t.is_proc_macro()),
            features: package.features.clone(),
            metadata: package.metadata,
            already_packaged: dir.join("Cargo.toml.orig").is_file(),
            dir,
        }
    }
}

fn manifest_error(error: cargo_metadata::Error) -> String {
    match error {
        cargo_metadata::Error::CargoMetadata { stderr } => {
            crate::host_cargo::one_line_error(&stderr)
        }
        other => other.to_string(),
    }
}

/// How the sources reach the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceMode {
    /// What `cargo package` would publish (the default).
    Package,
    /// The directory as it is (`--no-package`, or an unpacked `.crate`).
    AsIs,
}

/// Preparing sources failed.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Cargo(#[from] HostCargoError),
    #[error("packaged crate is unsafe: {0}")]
    Unpack(#[from] UnpackError),
    #[error("cannot prepare sources in {0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
}

/// Puts the package's sources into `dest` (replacing what was there) and returns
/// whether they ship a `Cargo.lock`.
pub fn prepare_source(
    package: &LocalPackage,
    mode: SourceMode,
    dest: &Path,
    scratch: &Path,
    cargo: &HostCargo,
) -> Result<bool, PrepareError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| PrepareError::Io(path, error)
    };
    if dest.exists() {
        std::fs::remove_dir_all(dest).map_err(io(dest))?;
    }
    if mode == SourceMode::Package && !package.already_packaged {
        let target_dir = scratch.join("package");
        cargo.package(&package.dir, &target_dir)?;
        let prefix = format!("{}-{}", package.name, package.version);
        let archive = target_dir.join("package").join(format!("{prefix}.crate"));
        unpack_crate(&archive, &prefix, dest)?;
    } else {
        copy_tree(&package.dir, dest, true).map_err(io(dest))?;
    }
    finish_source(dest)
}

/// Puts an already packaged `.crate` (a workspace member packaged with its siblings)
/// into `dest` and returns whether it ships a `Cargo.lock`.
pub fn prepare_packaged(
    package: &LocalPackage,
    archive: &Path,
    dest: &Path,
) -> Result<bool, PrepareError> {
    if dest.exists() {
        std::fs::remove_dir_all(dest).map_err(|e| PrepareError::Io(dest.to_path_buf(), e))?;
    }
    unpack_crate(
        archive,
        &format!("{}-{}", package.name, package.version),
        dest,
    )?;
    finish_source(dest)
}

/// What every prepared source gets: its own workspace root, docs.rs's removals.
fn finish_source(dest: &Path) -> Result<bool, PrepareError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| PrepareError::Io(path, error)
    };
    make_standalone(dest).map_err(io(dest))?;
    for file in OVERRIDE_FILES {
        let path = dest.join(file);
        if path.is_file() {
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Ok(dest.join("Cargo.lock").is_file())
}

/// An unpublished workspace member another member depends on, as packaged.
#[derive(Debug, Clone)]
pub struct PackagedDependency {
    pub name: String,
    pub version: String,
    pub lib_name: Option<String>,
    pub archive: PathBuf,
}

/// Where packaged workspace dependencies go inside a prepared source.
const WORKSPACE_DEPS: &str = ".docbuild-workspace";

/// Makes unpublished dependencies resolve to their packages, as they will once
/// published: each is unpacked below the source and patched in for crates.io in the
/// source's own `.cargo/config.toml` (read by cargo on the host and in the sandbox;
/// its paths are relative, so both see the same files).
pub fn add_packaged_dependencies(
    dest: &Path,
    dependencies: &[PackagedDependency],
) -> Result<(), PrepareError> {
    if dependencies.is_empty() {
        return Ok(());
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| PrepareError::Io(path, error)
    };
    let mut patch = String::from("[patch.crates-io]\n");
    for dependency in dependencies {
        let prefix = format!("{}-{}", dependency.name, dependency.version);
        let dir = dest.join(WORKSPACE_DEPS).join(&prefix);
        unpack_crate(&dependency.archive, &prefix, &dir)?;
        make_standalone(&dir).map_err(io(&dir))?;
        patch.push_str(&format!(
            "{} = {{ path = \"{WORKSPACE_DEPS}/{prefix}\" }}\n",
            toml_key(&dependency.name)
        ));
    }
    let config = dest.join(".cargo");
    std::fs::create_dir_all(&config).map_err(io(&config))?;
    std::fs::write(config.join("config.toml"), patch).map_err(io(&config))
}

/// Drops from the source's `Cargo.lock` the registry entries of `names`: workspace
/// members packaged together get each other's *local* package checksums there, which
/// a published version of the same number would not match. cargo resolves just those
/// entries again; every other pin stays.
pub fn unlock_members(dest: &Path, names: &[String]) -> Result<(), PrepareError> {
    let lockfile = dest.join("Cargo.lock");
    let io = |error| PrepareError::Io(lockfile.clone(), error);
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
        let text = toml::to_string(&lock).map_err(|e| io(std::io::Error::other(e)))?;
        std::fs::write(&lockfile, text).map_err(io)?;
    }
    Ok(())
}

/// A quoted TOML key (JSON's string escapes are TOML's).
fn toml_key(name: &str) -> String {
    serde_json::Value::from(name).to_string()
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

/// Copies a directory as rustwide copies a local crate: links followed, file times
/// kept so unchanged sources stay fresh, and the top-level `target/` skipped when
/// `skip_target` is set.
pub(crate) fn copy_tree(from: &Path, to: &Path, skip_target: bool) -> std::io::Result<()> {
    let walker = walkdir::WalkDir::new(from)
        .follow_links(true)
        .into_iter()
        .filter_entry(|e| !(skip_target && e.depth() == 1 && e.file_name() == "target"));
    for entry in walker {
        let entry = entry.map_err(std::io::Error::other)?;
        let relative = entry
            .path()
            .strip_prefix(from)
            .map_err(std::io::Error::other)?;
        let target = to.join(relative);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target)?;
        } else if entry.file_type().is_file() {
            std::fs::copy(entry.path(), &target)?;
            let modified = entry
                .metadata()
                .map_err(std::io::Error::other)?
                .modified()?;
            std::fs::File::options()
                .write(true)
                .open(&target)?
                .set_modified(modified)?;
        }
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
