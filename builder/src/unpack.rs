//! Unpacking `.crate` archives as cargo and crates.io do: a crate archive is hostile
//! input, and no registry but crates.io can be trusted to have checked it.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

/// cargo's cap on unpacked size: the larger of 512 MiB and 20 times the archive.
pub fn unpacked_size_cap(compressed: u64) -> u64 {
    (512u64 << 20).max(compressed.saturating_mul(20))
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("cannot read crate archive: {0}")]
    Io(#[from] io::Error),
    #[error("crate archive entry `{0}` is not under `{1}/`")]
    OutsidePrefix(String, String),
    #[error("crate archive entry `{0}` has an absolute path or `..`")]
    UnsafePath(String),
    #[error(
        "crate archive entry `{0}` is a link or special file; only files and directories are allowed"
    )]
    NotAFile(String),
    #[error("crate archive unpacks to more than {0} bytes")]
    TooLarge(u64),
}

/// Unpacks the gzipped tar `archive` into `dest` (which must be empty or absent),
/// dropping the top-level `prefix` directory (`NAME-VERSION`). File times are kept,
/// so that unchanged sources stay fresh for cargo between builds.
pub fn unpack_crate(archive: &Path, prefix: &str, dest: &Path) -> Result<(), UnpackError> {
    let compressed = std::fs::metadata(archive)?.len();
    let cap = unpacked_size_cap(compressed);
    let exceeded = Rc::new(Cell::new(false));
    let reader = CappedReader {
        inner: flate2::read::GzDecoder::new(File::open(archive)?),
        remaining: cap,
        exceeded: exceeded.clone(),
    };
    std::fs::create_dir_all(dest)?;
    let mut result = unpack_entries(tar::Archive::new(reader), prefix, dest);
    if exceeded.get() {
        result = Err(UnpackError::TooLarge(cap));
    }
    if result.is_err() {
        // Nothing of a refused archive stays on disk.
        if let Err(error) = std::fs::remove_dir_all(dest) {
            tracing::warn!(%error, dest = %dest.display(), "cannot remove a refused archive's files");
        }
    }
    result
}

fn unpack_entries(
    mut archive: tar::Archive<impl Read>,
    prefix: &str,
    dest: &Path,
) -> Result<(), UnpackError> {
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.into_owned();
        let shown = raw.display().to_string();
        let relative = checked_relative(&raw, prefix, &shown)?;
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Directory => {}
            _ => return Err(UnpackError::NotAFile(shown)),
        }
        let Some(relative) = relative else { continue };
        if relative == Path::new(".cargo-ok") {
            continue;
        }
        let target = dest.join(&relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Safe to unpack directly: the path is checked to stay below `dest`, and no
        // links exist below `dest` because links are refused above.
        entry.unpack(&target)?;
    }
    Ok(())
}

/// The entry's path below `prefix`, or `None` for the prefix directory itself.
fn checked_relative(raw: &Path, prefix: &str, shown: &str) -> Result<Option<PathBuf>, UnpackError> {
    let mut components = raw.components();
    match components.next() {
        Some(Component::Normal(first)) if first == prefix => {}
        Some(Component::Normal(_)) => {
            return Err(UnpackError::OutsidePrefix(
                shown.to_string(),
                prefix.to_string(),
            ));
        }
        _ => return Err(UnpackError::UnsafePath(shown.to_string())),
    }
    let mut relative = PathBuf::new();
    for component in components {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            _ => return Err(UnpackError::UnsafePath(shown.to_string())),
        }
    }
    Ok((!relative.as_os_str().is_empty()).then_some(relative))
}

/// Stops reading once `remaining` bytes were read, remembering that it did.
struct CappedReader<R> {
    inner: R,
    remaining: u64,
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // One byte more tells a stream that ends exactly at the cap from one
            // that goes on.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.exceeded.set(true);
            return Err(io::Error::other("size cap reached"));
        }
        let len = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let read = self.inner.read(&mut buf[..len])?;
        self.remaining -= read as u64;
        Ok(read)
    }
}

/// Packs a directory of sources into a `.crate` archive (gzipped tar, every path
/// below `prefix/`), as `cargo package` would lay it out. Only directories and
/// regular files are taken; links are not followed.
pub fn pack_dir(dir: &Path, prefix: &str) -> Result<Vec<u8>, crate::error::BuildError> {
    let failed = |e| crate::error::BuildError::Io("cannot archive the package", e);
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut archive = tar::Builder::new(encoder);
    archive.follow_symlinks(false);
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| failed(io::Error::other(e)))?;
        let Ok(relative) = entry.path().strip_prefix(dir) else {
            continue;
        };
        if relative.as_os_str().is_empty() || !entry.file_type().is_file() {
            continue;
        }
        let name = Path::new(prefix).join(relative);
        archive
            .append_path_with_name(entry.path(), &name)
            .map_err(failed)?;
    }
    archive
        .into_inner()
        .and_then(|encoder| encoder.finish())
        .map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;

    enum Item<'a> {
        File(&'a str, &'a [u8]),
        Link(&'a str, &'a str),
        RawPath(&'a str),
    }

    fn archive(items: &[Item<'_>]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.crate");
        let gz = GzEncoder::new(File::create(&path).unwrap(), Compression::default());
        let mut tar = tar::Builder::new(gz);
        for item in items {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o644);
            match item {
                Item::File(name, data) => {
                    header.set_size(data.len() as u64);
                    tar.append_data(&mut header, name, *data).unwrap();
                }
                Item::Link(name, target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    tar.append_link(&mut header, name, target).unwrap();
                }
                Item::RawPath(name) => {
                    // Bypass the builder's own path checks, as a hostile tool would.
                    let bytes = name.as_bytes();
                    header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
                    header.set_size(1);
                    header.set_cksum();
                    tar.append(&header, &b"x"[..]).unwrap();
                }
            }
        }
        tar.into_inner().unwrap().finish().unwrap();
        (dir, path)
    }

    fn unpack(items: &[Item<'_>]) -> (tempfile::TempDir, Result<(), UnpackError>) {
        let (dir, path) = archive(items);
        let result = unpack_crate(&path, "foo-1.0.0", &dir.path().join("out"));
        (dir, result)
    }

    #[test]
    fn a_normal_crate_unpacks_without_its_prefix() {
        let (dir, result) = unpack(&[
            Item::File("foo-1.0.0/Cargo.toml", b"[package]"),
            Item::File("foo-1.0.0/src/lib.rs", b"//! docs"),
            Item::File("foo-1.0.0/.cargo-ok", b"ok"),
        ]);
        result.unwrap();
        let out = dir.path().join("out");
        assert_eq!(std::fs::read(out.join("src/lib.rs")).unwrap(), b"//! docs");
        assert!(out.join("Cargo.toml").is_file());
        assert!(!out.join(".cargo-ok").exists());
    }

    #[test]
    fn parent_components_are_refused() {
        let (dir, result) = unpack(&[Item::RawPath("foo-1.0.0/../../escaped")]);
        assert!(
            matches!(result, Err(UnpackError::UnsafePath(_))),
            "{result:?}"
        );
        assert!(!dir.path().join("escaped").exists());
    }

    #[test]
    fn absolute_paths_are_refused() {
        let (_dir, result) = unpack(&[Item::RawPath("/tmp/docbuild-absolute-escape")]);
        assert!(
            matches!(result, Err(UnpackError::UnsafePath(_))),
            "{result:?}"
        );
        assert!(!Path::new("/tmp/docbuild-absolute-escape").exists());
    }

    #[test]
    fn links_are_refused() {
        let (dir, result) = unpack(&[
            Item::Link("foo-1.0.0/evil", "/etc"),
            Item::File("foo-1.0.0/evil/passwd", b"x"),
        ]);
        assert!(
            matches!(result, Err(UnpackError::NotAFile(_))),
            "{result:?}"
        );
        assert!(!dir.path().join("out/evil").exists());
    }

    #[test]
    fn entries_outside_the_prefix_are_refused() {
        let (dir, result) = unpack(&[
            Item::File("foo-1.0.0/src/lib.rs", b""),
            Item::File("bar-1.0.0/src/lib.rs", b""),
        ]);
        assert!(
            matches!(result, Err(UnpackError::OutsidePrefix(..))),
            "{result:?}"
        );
        // What was unpacked before the refusal is gone too.
        assert!(!dir.path().join("out").exists());
    }

    #[test]
    fn size_bombs_are_refused() {
        let mut reader = CappedReader {
            inner: io::repeat(0).take(1000),
            remaining: 100,
            exceeded: Rc::new(Cell::new(false)),
        };
        let mut sink = Vec::new();
        assert!(reader.read_to_end(&mut sink).is_err());
        assert!(reader.exceeded.get());
        assert_eq!(sink.len(), 100);

        let mut exact = CappedReader {
            inner: io::repeat(0).take(100),
            remaining: 100,
            exceeded: Rc::new(Cell::new(false)),
        };
        assert_eq!(exact.read_to_end(&mut Vec::new()).unwrap(), 100);
        assert_eq!(unpacked_size_cap(1 << 20), 512 << 20);
        assert_eq!(unpacked_size_cap(100 << 20), 2000 << 20);
    }
}
