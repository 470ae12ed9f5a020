//! The one way files leave a build or enter one: docs and `--out`, stored builds,
//! workspace copies, local sources, and clean-ups below a target directory.
//!
//! A build's output is written by crate code, so it may hold links (to `/etc/shadow`,
//! to the data directory), FIFOs and devices, and it may have replaced a directory
//! with a link to a host directory. Nothing here follows a link in build output: a
//! path below a trusted root is walked one component at a time, files are opened with
//! `O_NOFOLLOW`, and anything but a regular file or a directory is dropped and
//! counted. Copies run only after the build's container is gone, so nothing changes
//! the tree while it is read.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// How links are treated.
#[derive(Debug, Clone)]
pub enum Links {
    /// Build output: links and special files are dropped and counted.
    Drop,
    /// A local package's own sources: a link is followed when it resolves inside
    /// this directory (the project); one that leaves it is an error.
    FollowWithin(PathBuf),
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Copied {
    pub files: u64,
    pub bytes: u64,
    /// The first few entries dropped (links, FIFOs, devices), relative to the source.
    pub dropped: Vec<PathBuf>,
    pub dropped_count: u64,
}

impl Copied {
    const KEPT_NAMES: usize = 20;

    fn drop_entry(&mut self, relative: &Path) {
        self.dropped_count += 1;
        if self.dropped.len() < Self::KEPT_NAMES {
            self.dropped.push(relative.to_path_buf());
        }
    }

    /// One line for the log, when something was dropped.
    pub fn dropped_line(&self) -> Option<String> {
        (self.dropped_count > 0).then(|| {
            let names: Vec<String> = self
                .dropped
                .iter()
                .map(|p| p.display().to_string().escape_debug().to_string())
                .collect();
            format!(
                "[docbuild] dropped {} link(s) or special file(s) from the output: {}{}",
                self.dropped_count,
                names.join(", "),
                if self.dropped_count as usize > names.len() {
                    ", …"
                } else {
                    ""
                }
            )
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("`{0}` is a link or not a directory; docbuild does not read through it")]
    NotADirectory(PathBuf),
    #[error("`{path}` is a link to `{target}`, outside the project at `{boundary}`")]
    LinkOutside {
        path: PathBuf,
        target: PathBuf,
        boundary: PathBuf,
    },
    #[error("`{0}` is not a path below its root")]
    NotBelow(PathBuf),
    #[error("cannot copy `{0}`: {1}")]
    Io(PathBuf, #[source] io::Error),
    #[error("`{0}` is larger than {1} bytes")]
    TooLarge(PathBuf, u64),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> CopyError + '_ {
    move |error| CopyError::Io(path.to_path_buf(), error)
}

/// `root/relative`, checked component by component to be a real directory, never a
/// link. `None` when it does not exist.
pub fn checked_dir(root: &Path, relative: &Path) -> Result<Option<PathBuf>, CopyError> {
    let mut path = root.to_path_buf();
    for component in relative.components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => continue,
            _ => return Err(CopyError::NotBelow(relative.to_path_buf())),
        }
        match std::fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => return Err(CopyError::NotADirectory(path)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(CopyError::Io(path, error)),
        }
    }
    Ok(Some(path))
}

/// Removes `root/relative` (a file, a link or a tree) without following any link,
/// above it or in it. Missing is fine.
pub fn remove_below(root: &Path, relative: &Path) -> Result<(), CopyError> {
    let (Some(name), parent) = (relative.file_name(), relative.parent()) else {
        return Err(CopyError::NotBelow(relative.to_path_buf()));
    };
    let Some(parent) = checked_dir(root, parent.unwrap_or(Path::new("")))? else {
        return Ok(());
    };
    let path = parent.join(name);
    match std::fs::symlink_metadata(&path) {
        // `remove_dir_all` removes a tree without following links inside it.
        Ok(metadata) if metadata.is_dir() => std::fs::remove_dir_all(&path).map_err(io_at(&path)),
        Ok(_) => std::fs::remove_file(&path).map_err(io_at(&path)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(CopyError::Io(path, error)),
    }
}

/// Moves `root/relative` (a file, a link or a tree) to `root/aside`, without
/// following any link, so that it can be deleted later with [`remove_below`] while the
/// tree is in use: only `root` is resolved by path then. Whatever was at `root/aside`
/// goes first. Returns whether anything is at `root/aside` now; when the rename is
/// refused (an overlay's lower directory), `root/relative` is removed here instead.
pub fn set_aside(root: &Path, relative: &Path, aside: &str) -> Result<bool, CopyError> {
    remove_below(root, Path::new(aside))?;
    let (Some(name), parent) = (relative.file_name(), relative.parent()) else {
        return Err(CopyError::NotBelow(relative.to_path_buf()));
    };
    let parent = match checked_dir(root, parent.unwrap_or(Path::new(""))) {
        Ok(Some(parent)) => parent,
        Ok(None) => return Ok(false),
        // A link above it: the whole top-level subtree goes.
        Err(CopyError::NotADirectory(_)) => {
            let top = relative
                .components()
                .next()
                .map(|c| PathBuf::from(c.as_os_str()));
            remove_below(root, &top.unwrap_or_else(|| relative.to_path_buf()))?;
            return Ok(false);
        }
        Err(error) => return Err(error),
    };
    let path = parent.join(name);
    match std::fs::rename(&path, root.join(aside)) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(_) => remove_below(root, relative).map(|()| false),
    }
}

/// Copies build output `root/relative` into `to`, dropping links and special files.
/// Top-level entries named in `skip_top` are left out. A missing source copies
/// nothing.
pub fn copy_output(
    root: &Path,
    relative: &Path,
    to: &Path,
    skip_top: &[&str],
) -> Result<Copied, CopyError> {
    copy_output_replacing(root, relative, to, skip_top, None)
}

/// [`copy_output`], and then `to/replace` holds exactly what this copy put there:
/// anything else below it (an earlier copy's pages) is removed, as if `to/replace`
/// had been deleted before the copy. Files already there with the same content are
/// kept rather than written again.
pub fn copy_output_replacing(
    root: &Path,
    relative: &Path,
    to: &Path,
    skip_top: &[&str],
    replace: Option<&Path>,
) -> Result<Copied, CopyError> {
    let Some(from) = checked_dir(root, relative)? else {
        if let Some(replace) = replace {
            prune(to, replace, &HashSet::new())?;
        }
        return Ok(Copied::default());
    };
    walk(&from, Some(to), &Links::Drop, skip_top, replace)
}

/// Copies a local package's sources into `to`: links resolving inside `boundary` are
/// followed, any other is an error naming it; special files are dropped. Afterwards
/// `to` holds the sources and nothing else; files it already held with the same
/// content are kept, not written again.
pub fn copy_sources(
    from: &Path,
    to: &Path,
    boundary: &Path,
    skip_top: &[&str],
) -> Result<Copied, CopyError> {
    walk(
        from,
        Some(to),
        &Links::FollowWithin(boundary.to_path_buf()),
        skip_top,
        Some(Path::new("")),
    )
}

/// Checks, without copying, that every link below `from` resolves inside `boundary`.
pub fn check_links(from: &Path, boundary: &Path, skip_top: &[&str]) -> Result<(), CopyError> {
    walk(
        from,
        None,
        &Links::FollowWithin(boundary.to_path_buf()),
        skip_top,
        None,
    )
    .map(|_| ())
}

/// Walks `from`, copying into `to` when given. With `replace`, every path written
/// below `to/replace` is remembered, and what else is there is removed at the end.
fn walk(
    from: &Path,
    to: Option<&Path>,
    links: &Links,
    skip_top: &[&str],
    replace: Option<&Path>,
) -> Result<Copied, CopyError> {
    let boundary = match links {
        Links::Drop => None,
        Links::FollowWithin(boundary) => {
            Some(std::fs::canonicalize(boundary).map_err(io_at(boundary))?)
        }
    };
    let walker = walkdir::WalkDir::new(from)
        .follow_links(boundary.is_some())
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            !(e.depth() == 1
                && skip_top
                    .iter()
                    .any(|skip| e.file_name() == std::ffi::OsStr::new(skip)))
        });
    let mut copied = Copied::default();
    let mut kept = HashSet::new();
    if let Some(to) = to {
        std::fs::create_dir_all(to).map_err(io_at(to))?;
    }
    for entry in walker {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(from).to_path_buf();
            CopyError::Io(path, io::Error::other(e))
        })?;
        let relative = entry
            .path()
            .strip_prefix(from)
            .map_err(|_| CopyError::NotBelow(entry.path().to_path_buf()))?;
        if let Some(boundary) = &boundary
            && (entry.path_is_symlink() || entry.depth() == 0)
        {
            let target = std::fs::canonicalize(entry.path()).map_err(io_at(entry.path()))?;
            if !target.starts_with(boundary) {
                return Err(CopyError::LinkOutside {
                    path: entry.path().to_path_buf(),
                    target,
                    boundary: boundary.clone(),
                });
            }
        }
        let file_type = entry.file_type();
        if entry.depth() == 0 {
            if !file_type.is_dir() {
                return Err(CopyError::NotADirectory(from.to_path_buf()));
            }
            continue;
        }
        let target = to.map(|to| to.join(relative));
        if file_type.is_dir() {
            if let Some(target) = &target {
                make_dir(target)?;
                kept.insert(relative.to_path_buf());
            }
        } else if file_type.is_file() {
            match copy_file(entry.path(), target.as_deref(), boundary.is_some())? {
                Some(bytes) => {
                    copied.files += 1;
                    copied.bytes += bytes;
                    kept.insert(relative.to_path_buf());
                }
                None => copied.drop_entry(relative),
            }
        } else {
            copied.drop_entry(relative);
        }
    }
    if let (Some(to), Some(replace)) = (to, replace) {
        prune(to, replace, &kept)?;
    }
    Ok(copied)
}

/// A directory at `path`: kept if it is one (never through a link), else whatever
/// is there (a file, a link) is replaced by a new directory.
fn make_dir(path: &Path) -> Result<(), CopyError> {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => return Ok(()),
        Ok(_) => std::fs::remove_file(path).map_err(io_at(path))?,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(CopyError::Io(path.to_path_buf(), error)),
    }
    std::fs::create_dir_all(path).map_err(io_at(path))
}

/// Removes everything below `to/replace` whose path relative to `to` is not in
/// `kept`, without following links.
fn prune(to: &Path, replace: &Path, kept: &HashSet<PathBuf>) -> Result<(), CopyError> {
    fn visit(to: &Path, relative: &Path, kept: &HashSet<PathBuf>) -> Result<(), CopyError> {
        let dir = to.join(relative);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(CopyError::Io(dir, error)),
        };
        for entry in entries {
            let entry = entry.map_err(io_at(&dir))?;
            let relative = relative.join(entry.file_name());
            let is_dir = entry.file_type().map_err(io_at(&entry.path()))?.is_dir();
            if !kept.contains(&relative) {
                let path = entry.path();
                if is_dir {
                    std::fs::remove_dir_all(&path).map_err(io_at(&path))?;
                } else {
                    std::fs::remove_file(&path).map_err(io_at(&path))?;
                }
            } else if is_dir {
                visit(to, &relative, kept)?;
            }
        }
        Ok(())
    }
    if replace.as_os_str().is_empty() {
        return visit(to, Path::new(""), kept);
    }
    // The directory itself: gone when the copy made nothing there.
    let path = to.join(replace);
    match std::fs::symlink_metadata(&path) {
        Ok(metadata) if metadata.is_dir() && kept.contains(replace) => visit(to, replace, kept),
        Ok(metadata) if metadata.is_dir() => std::fs::remove_dir_all(&path).map_err(io_at(&path)),
        Ok(_) if kept.contains(replace) => Ok(()),
        Ok(_) => std::fs::remove_file(&path).map_err(io_at(&path)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(CopyError::Io(path, error)),
    }
}

/// Copies one regular file, keeping its time and permission bits. Returns `None`
/// when the path turned out not to be a regular file (it is then dropped).
fn copy_file(from: &Path, to: Option<&Path>, follow: bool) -> Result<Option<u64>, CopyError> {
    use rustix::fs::OFlags;
    let mut flags = OFlags::NONBLOCK;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    let source = match File::options()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(from)
    {
        Ok(file) => file,
        // `O_NOFOLLOW` on a link.
        Err(error) if error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Ok(None);
        }
        Err(error) => return Err(CopyError::Io(from.to_path_buf(), error)),
    };
    let metadata = source.metadata().map_err(io_at(from))?;
    if !metadata.is_file() {
        return Ok(None);
    }
    let Some(to) = to else {
        return Ok(Some(metadata.len()));
    };
    let mut source = source;
    let mode = metadata.permissions().mode() & 0o777;
    let modified = metadata.modified().ok();
    // The same content already there (an earlier copy): only its mode and time are
    // brought up to date. Rewriting a file costs far more than reading it.
    if let Some(existing) = same_content(&mut source, metadata.len(), to)? {
        let existing_metadata = existing.metadata().map_err(io_at(to))?;
        if existing_metadata.permissions().mode() & 0o777 != mode {
            existing
                .set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(io_at(to))?;
        }
        if let Some(modified) = modified
            && existing_metadata.modified().ok() != Some(modified)
        {
            existing.set_modified(modified).map_err(io_at(to))?;
        }
        return Ok(Some(metadata.len()));
    }
    // Whatever else is there goes (never written through: it may be a link).
    match std::fs::symlink_metadata(to) {
        Ok(existing) if existing.is_dir() => std::fs::remove_dir_all(to).map_err(io_at(to))?,
        Ok(_) => std::fs::remove_file(to).map_err(io_at(to))?,
        Err(_) => {}
    }
    io::Seek::rewind(&mut source).map_err(io_at(from))?;
    let mut target = File::options()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(io_at(to))?;
    let bytes = io::copy(&mut source, &mut target).map_err(io_at(to))?;
    target
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io_at(to))?;
    if let Some(modified) = modified {
        target.set_modified(modified).map_err(io_at(to))?;
    }
    Ok(Some(bytes))
}

/// `to`, opened, when it is a regular file (not a link) holding exactly what
/// `source` (of `len` bytes) holds. Reads `source` from its start.
fn same_content(source: &mut File, len: u64, to: &Path) -> Result<Option<File>, CopyError> {
    use io::Read;
    let existing = match File::options()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOFOLLOW).bits() as i32)
        .open(to)
    {
        Ok(file) => file,
        Err(_) => return Ok(None),
    };
    let metadata = existing.metadata().map_err(io_at(to))?;
    if !metadata.is_file() || metadata.len() != len {
        return Ok(None);
    }
    let (mut ours, mut theirs) = (vec![0; 64 << 10], vec![0; 64 << 10]);
    let mut existing_reader = &existing;
    loop {
        let n = read_full(source, &mut ours).map_err(io_at(to))?;
        let m = read_full(&mut existing_reader, &mut theirs[..n.max(1)]).map_err(io_at(to))?;
        if n != m || ours[..n] != theirs[..m] {
            return Ok(None);
        }
        if n == 0 {
            // Both at their end; `existing` is still open for its mode and time.
            return Ok(Some(existing));
        }
    }

    /// Reads until `buffer` is full or the end.
    fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buffer.len() {
            match reader.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(filled)
    }
}

/// Copies the one build output file `root/relative` to `to` (a new file, replaced if
/// there), at most `max` bytes, no link followed above it or at it. `None` when it is
/// missing, a link or not a regular file; the copy's size otherwise.
pub fn copy_one_out(
    root: &Path,
    relative: &Path,
    to: &Path,
    max: u64,
) -> Result<Option<u64>, CopyError> {
    let (Some(name), parent) = (relative.file_name(), relative.parent()) else {
        return Err(CopyError::NotBelow(relative.to_path_buf()));
    };
    let dir = match checked_dir(root, parent.unwrap_or(Path::new(""))) {
        Ok(Some(dir)) => dir,
        Ok(None) | Err(CopyError::NotADirectory(_)) => return Ok(None),
        Err(error) => return Err(error),
    };
    let from = dir.join(name);
    let source = match File::options()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOFOLLOW).bits() as i32)
        .open(&from)
    {
        Ok(file) => file,
        Err(error)
            if error.kind() == io::ErrorKind::NotFound
                || error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) =>
        {
            return Ok(None);
        }
        Err(error) => return Err(CopyError::Io(from, error)),
    };
    let metadata = source.metadata().map_err(io_at(&from))?;
    if !metadata.is_file() {
        return Ok(None);
    }
    if metadata.len() > max {
        return Err(CopyError::TooLarge(from, max));
    }
    let mut target = File::create(to).map_err(io_at(to))?;
    let bytes = io::copy(&mut io::Read::take(source, max + 1), &mut target).map_err(io_at(to))?;
    if bytes > max {
        drop(target);
        let _ = std::fs::remove_file(to);
        return Err(CopyError::TooLarge(from, max));
    }
    Ok(Some(bytes))
}

/// Bytes of regular files below `root/relative`, links not followed.
pub fn tree_size(root: &Path) -> u64 {
    walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn one_file_is_copied_out_without_links_and_within_its_cap() {
        let root = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let secret = out.path().join("secret");
        std::fs::write(&secret, b"host file").unwrap();
        std::fs::create_dir_all(root.path().join("t/doc")).unwrap();
        std::fs::write(root.path().join("t/doc/lib.json"), b"{}").unwrap();
        let to = out.path().join("copy.json");
        let copy = |relative: &str, max| copy_one_out(root.path(), Path::new(relative), &to, max);
        assert_eq!(copy("t/doc/lib.json", 10).unwrap(), Some(2));
        assert_eq!(std::fs::read(&to).unwrap(), b"{}");
        assert!(matches!(
            copy("t/doc/lib.json", 1),
            Err(CopyError::TooLarge(..))
        ));
        assert_eq!(copy("t/doc/missing.json", 10).unwrap(), None);
        // A link at the file or above it is not followed.
        symlink(&secret, root.path().join("t/doc/link.json")).unwrap();
        assert_eq!(copy("t/doc/link.json", 100).unwrap(), None);
        symlink(out.path(), root.path().join("u")).unwrap();
        assert_eq!(copy("u/secret", 100).unwrap(), None);
        assert_eq!(std::fs::read(&secret).unwrap(), b"host file");
    }

    #[test]
    fn output_copies_drop_links_and_special_files() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret.txt");
        std::fs::write(&secret, "host secret").unwrap();
        let doc = dir.path().join("target/doc");
        std::fs::create_dir_all(doc.join("krate")).unwrap();
        std::fs::write(doc.join("krate/index.html"), "<html>").unwrap();
        symlink(&secret, doc.join("krate/leak.txt")).unwrap();
        symlink(dir.path(), doc.join("krate/hostdir")).unwrap();
        let fifo = doc.join("krate/pipe");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        std::fs::create_dir_all(doc.join("static.files")).unwrap();
        std::fs::write(doc.join("static.files/main.js"), "x").unwrap();

        let out = dir.path().join("out");
        let copied = copy_output(
            &dir.path().join("target"),
            Path::new("doc"),
            &out,
            &["static.files"],
        )
        .unwrap();
        assert_eq!(copied.files, 1);
        assert_eq!(copied.dropped_count, 3);
        assert_eq!(
            std::fs::read_to_string(out.join("krate/index.html")).unwrap(),
            "<html>"
        );
        for gone in [
            "krate/leak.txt",
            "krate/hostdir",
            "krate/pipe",
            "static.files",
        ] {
            assert!(std::fs::symlink_metadata(out.join(gone)).is_err(), "{gone}");
        }
        assert!(copied.dropped_line().unwrap().contains("leak.txt"));
    }

    #[test]
    fn a_copy_over_an_earlier_one_replaces_it_without_writing_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret.txt");
        std::fs::write(&secret, "host secret").unwrap();
        let doc = dir.path().join("target/doc");
        std::fs::create_dir_all(doc.join("krate/sub")).unwrap();
        std::fs::write(doc.join("krate/same.html"), "same").unwrap();
        std::fs::write(doc.join("krate/changed.html"), "new").unwrap();
        std::fs::write(doc.join("krate/linked.html"), "page").unwrap();
        std::fs::write(doc.join("krate/sub/page.html"), "sub").unwrap();
        std::fs::write(doc.join("krate/was-a-dir"), "file now").unwrap();

        let out = dir.path().join("out");
        std::fs::create_dir_all(out.join("krate/was-a-dir")).unwrap();
        std::fs::create_dir_all(out.join("other")).unwrap();
        std::fs::write(out.join("other/keep.html"), "other crate").unwrap();
        std::fs::write(out.join("krate/same.html"), "same").unwrap();
        std::fs::write(out.join("krate/changed.html"), "old").unwrap();
        std::fs::write(out.join("krate/stale.html"), "stale").unwrap();
        std::fs::write(out.join("krate/sub"), "a file where a directory goes").unwrap();
        symlink(&secret, out.join("krate/linked.html")).unwrap();

        let copied = copy_output_replacing(
            &dir.path().join("target"),
            Path::new("doc"),
            &out,
            &[],
            Some(Path::new("krate")),
        )
        .unwrap();
        assert_eq!(copied.files, 5);
        let read = |path: &str| std::fs::read_to_string(out.join(path)).unwrap();
        assert_eq!(read("krate/same.html"), "same");
        assert_eq!(read("krate/changed.html"), "new");
        assert_eq!(read("krate/linked.html"), "page");
        assert!(!out.join("krate/linked.html").is_symlink());
        assert_eq!(read("krate/sub/page.html"), "sub");
        assert_eq!(read("krate/was-a-dir"), "file now");
        assert!(!out.join("krate/stale.html").exists());
        assert_eq!(read("other/keep.html"), "other crate");
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret");
        // Times follow the source, as a fresh copy's do.
        let modified = |path: &Path| std::fs::metadata(path).unwrap().modified().unwrap();
        assert_eq!(
            modified(&out.join("krate/same.html")),
            modified(&doc.join("krate/same.html"))
        );

        // Sources: what is no longer in the package goes.
        let package = dir.path().join("package");
        std::fs::create_dir_all(package.join("src")).unwrap();
        std::fs::write(package.join("src/lib.rs"), "").unwrap();
        let sources = dir.path().join("sources");
        std::fs::create_dir_all(sources.join("src")).unwrap();
        std::fs::write(sources.join("src/old.rs"), "").unwrap();
        std::fs::write(sources.join("Cargo.toml"), "").unwrap();
        copy_sources(&package, &sources, &package, &[]).unwrap();
        assert!(sources.join("src/lib.rs").is_file());
        assert!(!sources.join("src/old.rs").exists());
        assert!(!sources.join("Cargo.toml").exists());
    }

    #[test]
    fn old_output_set_aside_is_deleted_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host");
        std::fs::create_dir(&host).unwrap();
        std::fs::write(host.join("keep.txt"), b"host file").unwrap();
        let root = dir.path().join("target");
        std::fs::create_dir_all(root.join("t/doc/krate")).unwrap();
        std::fs::write(root.join("t/doc/krate/index.html"), b"old").unwrap();
        // A leftover of an earlier deletion goes first.
        std::fs::create_dir_all(root.join("aside/stale")).unwrap();

        assert!(set_aside(&root, Path::new("t/doc"), "aside").unwrap());
        assert!(!root.join("t/doc").exists());
        assert_eq!(
            std::fs::read(root.join("aside/krate/index.html")).unwrap(),
            b"old"
        );
        assert!(!root.join("aside/stale").exists());
        // A build replaces what is aside with a link to a host directory: deleting
        // it removes the link, not what it names.
        std::fs::remove_dir_all(root.join("aside")).unwrap();
        symlink(&host, root.join("aside")).unwrap();
        remove_below(&root, Path::new("aside")).unwrap();
        assert!(std::fs::symlink_metadata(root.join("aside")).is_err());
        assert_eq!(std::fs::read(host.join("keep.txt")).unwrap(), b"host file");

        // Nothing there: nothing aside.
        assert!(!set_aside(&root, Path::new("t/doc"), "aside").unwrap());
        // A link above the output: the top-level subtree goes, the host's files stay.
        std::fs::remove_dir_all(root.join("t")).unwrap();
        symlink(&host, root.join("t")).unwrap();
        assert!(!set_aside(&root, Path::new("t/doc"), "aside").unwrap());
        assert!(std::fs::symlink_metadata(root.join("t")).is_err());
        assert_eq!(std::fs::read(host.join("keep.txt")).unwrap(), b"host file");
    }

    #[test]
    fn a_linked_directory_above_the_output_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host");
        std::fs::create_dir_all(host.join("doc")).unwrap();
        std::fs::write(host.join("doc/keep.txt"), "keep").unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir_all(&target).unwrap();
        symlink(&host, target.join("x86_64-unknown-linux-gnu")).unwrap();

        let relative = Path::new("x86_64-unknown-linux-gnu/doc");
        assert!(matches!(
            copy_output(&target, relative, &dir.path().join("out"), &[]),
            Err(CopyError::NotADirectory(_))
        ));
        assert!(matches!(
            remove_below(&target, relative),
            Err(CopyError::NotADirectory(_))
        ));
        assert!(host.join("doc/keep.txt").is_file());
        // The link itself can go.
        remove_below(&target, Path::new("x86_64-unknown-linux-gnu")).unwrap();
        assert!(host.join("doc/keep.txt").is_file());
        assert!(std::fs::symlink_metadata(target.join("x86_64-unknown-linux-gnu")).is_err());
    }

    #[test]
    fn source_links_must_stay_in_the_project() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("project");
        let package = project.join("member");
        std::fs::create_dir_all(package.join("src")).unwrap();
        std::fs::write(project.join("README.md"), "readme").unwrap();
        symlink("../README.md", package.join("README.md")).unwrap();
        std::fs::write(package.join("src/lib.rs"), "").unwrap();

        let out = dir.path().join("out");
        let copied = copy_sources(&package, &out, &project, &[]).unwrap();
        assert_eq!(copied.files, 2);
        assert_eq!(
            std::fs::read_to_string(out.join("README.md")).unwrap(),
            "readme"
        );

        let secret = dir.path().join("secret.rs");
        std::fs::write(&secret, "// secret").unwrap();
        symlink(&secret, package.join("src/secret.rs")).unwrap();
        let error = check_links(&package, &project, &[]).unwrap_err();
        assert!(
            matches!(&error, CopyError::LinkOutside { path, .. } if path.ends_with("src/secret.rs")),
            "{error}"
        );
    }
}
