//! A build's disk budget, enforced by the filesystem.
//!
//! A build can write only to its target directory (and a small tmpfs `/tmp`), so the
//! target directory is made the mount point of a filesystem of the budget's size: a
//! sparse file (`<work>/target.img`) formatted as ext4 (`-m 0`: no blocks reserved for
//! root, the sandbox user is not root) and loop-mounted at the target directory on the
//! host before the build. A build that writes past it gets `ENOSPC` and fails;
//! [`TargetDir::is_full`] then tells `out-of-disk` from `build-failed`.
//!
//! - The image is kept between builds, so compiled dependencies are reused; a changed
//!   budget makes a new image; [`TargetDir::discard`] (after an `out-of-disk` build)
//!   deletes it, freeing the space. It is mounted with `discard`, so what a build
//!   deletes is given back to the host (the image stays sparse).
//! - The budget is the filesystem's size: ext4's own structures (journal, inode
//!   tables: one inode per 8 KiB) take about 4 % of it, the rest is the build's.
//! - The filesystem's root is `root:root 0755` after formatting; chowning the target
//!   directory *after* [`TargetDir::prepare`] changes the filesystem's root (and is
//!   kept in the image for the next build). `lost+found/` (root, 0700) stays in it.
//! - Mounting needs root (effective uid 0 with `CAP_SYS_ADMIN`), `mkfs.ext4`, `mount`
//!   and loop devices. Without them the target directory is a plain directory
//!   ([`TargetDir::mounted`] is false, [`TargetDir::fallback_reason`] says why) and
//!   [`TargetDir::is_full`] compares the directory's size with the budget after the
//!   fact: the budget is reported, not enforced.
//! - A mount left by a killed process is reused by the next `prepare` of the same
//!   directory; dropping a [`TargetDir`] without [`TargetDir::release`] unmounts lazily.
//!
//! The container sees the limit because Docker binds the target directory after it is
//! mounted: docbuild and the Docker engine must share the host's mount namespace.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::process::Command;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A build's disk budget in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DiskBudget(pub u64);

impl DiskBudget {
    /// 10 GiB.
    pub const DEFAULT: DiskBudget = DiskBudget(10 << 30);
    /// The smallest budget a filesystem is made for.
    pub const MIN: DiskBudget = DiskBudget(16 << 20);

    /// Free space below which the filesystem counts as full: max(1 MiB, 0.5 % of the
    /// budget). A write that fails for lack of space leaves less than this.
    fn slack(self) -> u64 {
        (self.0 / 200).max(1 << 20)
    }
}

impl Default for DiskBudget {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a target directory could not be prepared, checked or released.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("`{program}` failed for {}: {detail}", path.display())]
    Command {
        program: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("`{program}` did not finish within {} s for {}", TIME_LIMIT.as_secs(), path.display())]
    TimedOut {
        program: &'static str,
        path: PathBuf,
    },
    #[error("preparing {} was cancelled", path.display())]
    Cancelled { path: PathBuf },
    #[error(
        "a disk budget of {budget} bytes for {} is below the minimum of {} bytes",
        path.display(),
        DiskBudget::MIN.0
    )]
    BudgetTooSmall { budget: u64, path: PathBuf },
}

impl DiskError {
    fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DiskError {
        let path = path.to_path_buf();
        move |source| DiskError::Io {
            action,
            path,
            source,
        }
    }
}

/// Each host command (`mkfs.ext4`, `mount`, `umount`) is killed after this long.
const TIME_LIMIT: Duration = Duration::from_secs(60);
/// How often a mounted target directory's free space is sampled during a build.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);
/// `mount -o`: programs built in the target directory must run (build scripts), so
/// no `noexec`; nothing there is a device or a set-uid program for the host.
const MOUNT_OPTIONS: &str = "loop,nosuid,nodev,noatime,discard";

/// A target directory, mounted from a filesystem image of the budget's size (or a
/// plain directory when mounting is not possible).
#[derive(Debug)]
pub struct TargetDir {
    path: PathBuf,
    image: PathBuf,
    budget: DiskBudget,
    mount: Option<Mounted>,
    fallback: Option<String>,
}

#[derive(Debug)]
struct Mounted {
    /// Set when the free space was seen below the budget's slack at any sample: a
    /// build that hits `ENOSPC` may delete its partial output before it exits.
    seen_full: Arc<AtomicBool>,
    watch: JoinHandle<()>,
}

impl Mounted {
    fn watch(path: &Path, budget: DiskBudget) -> Self {
        let seen_full = Arc::new(AtomicBool::new(false));
        let watch = tokio::spawn(watch(path.to_path_buf(), budget, seen_full.clone()));
        Self { seen_full, watch }
    }
}

impl TargetDir {
    /// Makes `dir` ready as a target directory limited to `budget`: reuses `image`
    /// (e.g. `<work>/target.img`) if it exists with the budget's size, else
    /// (re)creates it; mounts it at `dir` (creating `dir`); if `dir` already is a
    /// mount point of that image (left by a killed process), reuses it. Anything in
    /// `dir` from before it was mounted is deleted. Falls back to a plain directory
    /// when mounting is not possible ([`TargetDir::mounted`] is false).
    ///
    /// Chown `dir` to the sandbox user after this, not before: the chown must reach
    /// the filesystem's root.
    pub async fn prepare(
        dir: &Path,
        image: &Path,
        budget: DiskBudget,
        cancel: &CancellationToken,
    ) -> Result<TargetDir, DiskError> {
        if budget < DiskBudget::MIN {
            return Err(DiskError::BudgetTooSmall {
                budget: budget.0,
                path: dir.to_path_buf(),
            });
        }
        if cancel.is_cancelled() {
            return Err(DiskError::Cancelled {
                path: dir.to_path_buf(),
            });
        }
        // Host commands run from `/`.
        let image = &std::path::absolute(image).map_err(DiskError::io("resolve", image))?;
        let state = blocking(dir, {
            let (dir, image) = (dir.to_path_buf(), image.to_path_buf());
            move || inspect(&dir, &image)
        })
        .await?;
        let mut target = TargetDir {
            path: state.dir.clone(),
            image: image.to_path_buf(),
            budget,
            mount: None,
            fallback: None,
        };
        if let Some(reason) = state.cannot_mount {
            target.fallback = Some(reason);
            return Ok(target);
        }
        match state.mounted {
            Some(Mount::Image { size }) if size == Some(budget.0) => {
                target.mount = Some(Mounted::watch(&target.path, budget));
                return Ok(target);
            }
            Some(Mount::Image { .. }) => unmount(&target.path).await?,
            Some(Mount::Other(what)) => {
                target.fallback = Some(format!(
                    "{} already is a mount point of {what}",
                    dir.display()
                ));
                return Ok(target);
            }
            None => {}
        }

        let mut fresh = state.image_size != Some(budget.0);
        loop {
            if fresh {
                match make_image(image, budget, cancel).await {
                    Ok(()) => {}
                    Err(MakeError::NotInstalled) => {
                        target.fallback = Some("mkfs.ext4 is not installed".to_string());
                        return Ok(target);
                    }
                    Err(MakeError::Disk(error)) => return Err(error),
                }
            }
            if cancel.is_cancelled() {
                return Err(DiskError::Cancelled {
                    path: dir.to_path_buf(),
                });
            }
            let aside = blocking(dir, {
                let dir = target.path.clone();
                move || move_aside(&dir)
            })
            .await?;
            // Not cancellable (it takes milliseconds and is time-limited): a killed
            // `mount` could still leave the filesystem mounted. Should this future be
            // dropped meanwhile, the guard unmounts what got mounted.
            let mut guard = UnmountOnDrop {
                path: target.path.clone(),
                image: target.image.clone(),
                armed: true,
            };
            let mount_options = OsString::from(MOUNT_OPTIONS);
            let result = run(
                "mount",
                &[
                    OsStr::new("-t"),
                    OsStr::new("ext4"),
                    OsStr::new("-o"),
                    &mount_options,
                    image.as_os_str(),
                    target.path.as_os_str(),
                ],
                None,
            )
            .await;
            guard.armed = false;
            let mounted = result.is_ok();
            if mounted {
                target.mount = Some(Mounted::watch(&target.path, budget));
            }
            blocking(dir, {
                let dir = target.path.clone();
                move || put_back(&dir, aside, mounted)
            })
            .await?;
            match result {
                Ok(()) => return Ok(target),
                // An image kept from an earlier build may be damaged: make it anew once.
                Err(Run::Failed(_)) if !fresh => fresh = true,
                Err(error) => {
                    let reason = match error {
                        Run::NotFound => "mount is not installed".to_string(),
                        Run::Failed(detail) => format!("mount failed: {detail}"),
                        error => error.into_disk("mount", dir).to_string(),
                    };
                    remove_file(image).await?;
                    target.fallback = Some(reason);
                    return Ok(target);
                }
            }
        }
    }

    /// The target directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts writing the filesystem's dirty pages back (`syncfs`), off the runtime,
    /// so that its unmount, which must write them, has little left to do: called
    /// while the docs are copied out. `None` for a plain directory.
    pub fn start_writeback(&self) -> Option<tokio::task::JoinHandle<()>> {
        self.mounted().then(|| {
            let path = self.path.clone();
            tokio::task::spawn_blocking(move || {
                use rustix::fs::OFlags;
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                if let Ok(dir) = rustix::fs::open(&path, flags, rustix::fs::Mode::empty()) {
                    let _ = rustix::fs::syncfs(&dir);
                }
            })
        })
    }

    /// True when the budget is enforced by a mounted filesystem.
    pub fn mounted(&self) -> bool {
        self.mount.is_some()
    }

    /// Why the target directory is a plain directory, for one line of the log.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// The budget.
    pub fn budget(&self) -> DiskBudget {
        self.budget
    }

    /// True when the filesystem is (nearly) full: its free space or free inodes are
    /// below max(1 MiB, 0.5 % of the budget) (resp. 0.5 % of the inodes), now or at
    /// any moment since [`TargetDir::prepare`] (sampled twice a second). For a plain
    /// directory: its size (without following links, hard links once) is within that
    /// much of the budget. Ask after a failed build: a build that succeeded did not
    /// run out of space.
    pub async fn is_full(&self) -> Result<bool, DiskError> {
        let path = self.path.clone();
        let budget = self.budget;
        match &self.mount {
            Some(mounted) => {
                if mounted.seen_full.load(Ordering::Relaxed) {
                    return Ok(true);
                }
                let full = blocking(&self.path, move || {
                    nearly_full(&path, budget)
                        .map_err(DiskError::io("read the free space of", &path))
                })
                .await?;
                if full {
                    mounted.seen_full.store(true, Ordering::Relaxed);
                }
                Ok(full)
            }
            None => {
                blocking(&self.path, move || {
                    Ok(disk_usage(&path)? >= budget.0.saturating_sub(budget.slack()))
                })
                .await
            }
        }
    }

    /// Unmounts the filesystem (lazily, `umount -l`, if it is busy); the image is kept
    /// for the next build. Unmounting what is no longer mounted is not an error.
    pub async fn release(mut self) -> Result<(), DiskError> {
        // `mount` stays set until unmounted: if this future is dropped, `drop` unmounts.
        if let Some(mounted) = &self.mount {
            mounted.watch.abort();
            unmount(&self.path).await?;
            self.mount = None;
        }
        Ok(())
    }

    /// Leaves the filesystem mounted: the next [`TargetDir::prepare`] of the directory
    /// reuses it, its files still in memory. Whoever keeps it must see that it is
    /// unmounted later ([`unmount`]). False when there was no mount to keep.
    pub fn keep_mounted(mut self) -> bool {
        match self.mount.take() {
            Some(mounted) => {
                mounted.watch.abort();
                true
            }
            None => false,
        }
    }

    /// Unmounts the filesystem and deletes the image and everything in the target
    /// directory (which stays, empty): the space is freed. After `out-of-disk`.
    pub async fn discard(mut self) -> Result<(), DiskError> {
        if let Some(mounted) = &self.mount {
            mounted.watch.abort();
            unmount(&self.path).await?;
            self.mount = None;
        }
        remove_file(&self.image).await?;
        let path = self.path.clone();
        blocking(&self.path, move || clear(&path)).await
    }
}

impl Drop for TargetDir {
    /// Without [`TargetDir::release`] (a panic, a dropped future): a best-effort lazy
    /// unmount, synchronous (it takes milliseconds). A process killed outright leaves
    /// the mount to the next [`TargetDir::prepare`] of the directory, or [`unmount`].
    fn drop(&mut self) {
        let Some(mounted) = self.mount.take() else {
            return;
        };
        mounted.watch.abort();
        unmount_now(&self.path, &self.image);
    }
}

/// Unmounts lazily, if a future is dropped while `mount` runs.
struct UnmountOnDrop {
    path: PathBuf,
    image: PathBuf,
    armed: bool,
}

impl Drop for UnmountOnDrop {
    fn drop(&mut self) {
        if self.armed {
            unmount_now(&self.path, &self.image);
        }
    }
}

/// `umount -l` of `dir` if `image` is mounted there, synchronously, errors ignored.
fn unmount_now(dir: &Path, image: &Path) {
    if let Ok(Some(Mount::Image { .. })) = mount_at(dir, image) {
        let _ = std::process::Command::new(program("umount"))
            .arg("-l")
            .arg(dir)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Unmounts every loop-mounted filesystem and overlay (a worker's layered target
/// directory) at `dir`, left mounted by a killed process, before its work directory
/// is deleted: `umount`, then `umount -l` if it is busy. Other mounts are left alone.
pub async fn unmount(dir: &Path) -> Result<(), DiskError> {
    for _ in 0..8 {
        let mounted = blocking(dir, {
            let dir = dir.to_path_buf();
            move || {
                top_mount(&dir)
                    .map(|mount| {
                        mount.is_some_and(|mount| mount.loop_device || mount.fstype == "overlay")
                    })
                    .map_err(DiskError::io("read the mounts at", &dir))
            }
        })
        .await?;
        if !mounted {
            return Ok(());
        }
        // Busy (a process still in it): detach it now, the kernel frees it later.
        if run("umount", &[dir.as_os_str()], None).await.is_err() {
            run("umount", &[OsStr::new("-l"), dir.as_os_str()], None)
                .await
                .map_err(|error| error.into_disk("umount -l", dir))?;
        }
    }
    Err(DiskError::Command {
        program: "umount",
        path: dir.to_path_buf(),
        detail: "still a mount point after 8 unmounts".to_string(),
    })
}

/// What [`inspect`] found.
struct State {
    /// `dir`, created and made absolute.
    dir: PathBuf,
    cannot_mount: Option<String>,
    mounted: Option<Mount>,
    image_size: Option<u64>,
}

enum Mount {
    /// A loop mount of the image (`size` is `None` if it was deleted).
    Image { size: Option<u64> },
    /// Anything else, described.
    Other(String),
}

fn inspect(dir: &Path, image: &Path) -> Result<State, DiskError> {
    std::fs::create_dir_all(dir).map_err(DiskError::io("create", dir))?;
    let dir = std::fs::canonicalize(dir).map_err(DiskError::io("resolve", dir))?;
    let cannot_mount = if !rustix::process::geteuid().is_root() {
        Some("docbuild is not running as root".to_string())
    } else if !has_sys_admin() {
        Some("docbuild lacks the capability CAP_SYS_ADMIN".to_string())
    } else {
        None
    };
    let mounted = match cannot_mount {
        Some(_) => None,
        None => mount_at(&dir, image).map_err(DiskError::io("read the mounts at", &dir))?,
    };
    let image_size = match std::fs::metadata(image) {
        Ok(metadata) if metadata.is_file() => Some(metadata.len()),
        Ok(_) => None,
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(error) => return Err(DiskError::io("read", image)(error)),
    };
    Ok(State {
        dir,
        cannot_mount,
        mounted,
        image_size,
    })
}

/// The capability mounting needs, from `/proc/self/status` (`CapEff`, bit 21).
fn has_sys_admin() -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status
                .lines()
                .find_map(|line| line.strip_prefix("CapEff:"))?;
            u64::from_str_radix(line.trim(), 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0)
}

/// The topmost mount at `dir` and whether it is of `image`.
fn mount_at(dir: &Path, image: &Path) -> io::Result<Option<Mount>> {
    let Some(top) = top_mount(dir)? else {
        return Ok(None);
    };
    let backing = if top.loop_device {
        std::fs::read_to_string(format!("/sys/dev/block/{}/loop/backing_file", top.device))
            .ok()
            .map(|name| name.trim_end_matches('\n').to_string())
    } else {
        None
    };
    let Some(backing) = backing else {
        return Ok(Some(Mount::Other(format!(
            "{} ({})",
            top.source, top.fstype
        ))));
    };
    let image = absolute(image);
    let image = image.to_string_lossy();
    Ok(Some(if backing == image {
        Mount::Image {
            size: std::fs::metadata(&*image).ok().map(|m| m.len()),
        }
    } else if backing.strip_suffix(" (deleted)") == Some(&image) {
        Mount::Image { size: None }
    } else {
        Mount::Other(format!("{} ({backing})", top.source))
    }))
}

/// `path` with its parent resolved (the file itself may not exist).
fn absolute(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => std::fs::canonicalize(if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        })
        .map(|parent| parent.join(name))
        .unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

struct MountEntry {
    /// `major:minor` of the mounted device.
    device: String,
    source: String,
    fstype: String,
    loop_device: bool,
}

/// The last (topmost) entry of `/proc/self/mountinfo` mounted at `dir` (absolute).
fn top_mount(dir: &Path) -> io::Result<Option<MountEntry>> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(mountinfo.lines().rev().find_map(|line| {
        // ID PARENT MAJOR:MINOR ROOT MOUNT-POINT OPTIONS [OPTIONAL...] - TYPE SOURCE ...
        let (fields, rest) = line.split_once(" - ")?;
        let fields: Vec<&str> = fields.split(' ').collect();
        let mut rest = rest.split(' ');
        let (device, point) = (*fields.get(2)?, *fields.get(4)?);
        if Path::new(&unescape(point)) != dir {
            return None;
        }
        let fstype = unescape(rest.next()?);
        let source = unescape(rest.next()?);
        let loop_device = device
            .split_once(':')
            .is_some_and(|(major, _)| major == "7")
            || source.starts_with("/dev/loop");
        Some(MountEntry {
            device: device.to_string(),
            source,
            fstype,
            loop_device,
        })
    }))
}

/// Every mount point at `dir` or below it, deepest first: what must be unmounted
/// before the directory is deleted.
pub fn mount_points_below(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|point| PathBuf::from(unescape(point)))
        .filter(|point| point.starts_with(&dir))
        .collect();
    points.sort_by_key(|point| std::cmp::Reverse(point.components().count()));
    points.dedup();
    Ok(points)
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(code) = bytes
                .get(i + 1..i + 4)
                .and_then(|digits| std::str::from_utf8(digits).ok())
                .and_then(|digits| u8::from_str_radix(digits, 8).ok())
        {
            out.push(code);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

enum MakeError {
    NotInstalled,
    Disk(DiskError),
}

/// A new image: a sparse file of the budget's size made into ext4 under a temporary
/// name, then renamed, so an image found at `image` is always complete.
async fn make_image(
    image: &Path,
    budget: DiskBudget,
    cancel: &CancellationToken,
) -> Result<(), MakeError> {
    let mut partial = image.as_os_str().to_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    blocking(image, {
        let (image, partial) = (image.to_path_buf(), partial.clone());
        move || {
            for path in [&image, &partial] {
                remove_file_now(path)?;
            }
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&partial)
                .and_then(|file| file.set_len(budget.0))
                .map_err(DiskError::io("create the filesystem image", &partial))
        }
    })
    .await
    .map_err(MakeError::Disk)?;
    // 8 KiB per inode (ext4's default is 16 KiB): a target directory holds many small
    // files (rustdoc's pages), which should not run out before the bytes do.
    let result = run(
        "mkfs.ext4",
        &[
            OsStr::new("-q"),
            OsStr::new("-F"),
            OsStr::new("-m"),
            OsStr::new("0"),
            OsStr::new("-i"),
            OsStr::new("8192"),
            partial.as_os_str(),
        ],
        Some(cancel),
    )
    .await;
    let result = match result {
        Ok(()) => tokio::fs::rename(&partial, image)
            .await
            .map_err(DiskError::io("rename", &partial))
            .map_err(MakeError::Disk),
        Err(Run::NotFound) => Err(MakeError::NotInstalled),
        Err(error) => Err(MakeError::Disk(error.into_disk("mkfs.ext4", image))),
    };
    if result.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    result
}

/// Moves a non-empty `dir` (a plain target directory from before, hidden and never
/// freed once something is mounted over it) aside to `<dir>.unmounted`, leaving an
/// empty `dir` to mount on.
fn move_aside(dir: &Path) -> Result<Option<PathBuf>, DiskError> {
    let mut entries = std::fs::read_dir(dir).map_err(DiskError::io("read", dir))?;
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".unmounted");
    let aside = dir.with_file_name(name);
    if std::fs::symlink_metadata(&aside).is_ok() {
        remove_all(&aside)?;
    }
    if entries.next().is_none() {
        return Ok(None);
    }
    std::fs::rename(dir, &aside).map_err(DiskError::io("move aside", dir))?;
    std::fs::create_dir(dir).map_err(DiskError::io("create", dir))?;
    Ok(Some(aside))
}

/// After the mount: deletes what was moved aside, or puts it back if the mount failed.
fn put_back(dir: &Path, aside: Option<PathBuf>, mounted: bool) -> Result<(), DiskError> {
    let Some(aside) = aside else {
        return Ok(());
    };
    if mounted {
        return remove_all(&aside);
    }
    std::fs::remove_dir(dir).map_err(DiskError::io("remove", dir))?;
    std::fs::rename(&aside, dir).map_err(DiskError::io("move back", &aside))
}

/// Deletes everything in `dir`, without following links.
fn clear(dir: &Path) -> Result<(), DiskError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(DiskError::io("read", dir)(error)),
    };
    for entry in entries {
        let entry = entry.map_err(DiskError::io("read", dir))?;
        remove_all(&entry.path())?;
    }
    Ok(())
}

fn remove_all(path: &Path) -> Result<(), DiskError> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(error) => Err(error),
    };
    match result {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(DiskError::io("remove", path)(error))
        }
        _ => Ok(()),
    }
}

fn remove_file_now(path: &Path) -> Result<(), DiskError> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(DiskError::io("remove", path)(error))
        }
        _ => Ok(()),
    }
}

async fn remove_file(path: &Path) -> Result<(), DiskError> {
    let owned = path.to_path_buf();
    blocking(path, move || remove_file_now(&owned)).await
}

/// Free space or free inodes of the filesystem at `path` below the budget's slack.
fn nearly_full(path: &Path, budget: DiskBudget) -> io::Result<bool> {
    let stat = rustix::fs::statvfs(path)?;
    let available = stat.f_bavail.saturating_mul(stat.f_frsize);
    let inode_slack = (stat.f_files / 200).max(64);
    Ok(available < budget.slack() || (stat.f_files > 0 && stat.f_favail < inode_slack))
}

/// Bytes allocated under `dir` (blocks, so sparse files count what they take), links
/// not followed, each hard-linked file once.
fn disk_usage(dir: &Path) -> Result<u64, DiskError> {
    let mut seen = std::collections::HashSet::new();
    let mut total: u64 = 0;
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let entry = match entry {
            Ok(entry) => entry,
            // Deleted or unreadable meanwhile: it is not the build's to read.
            Err(error) if error.depth() > 0 => continue,
            Err(error) => {
                let source = error
                    .into_io_error()
                    .unwrap_or_else(|| io::Error::other("cannot walk"));
                return Err(DiskError::io("read", dir)(source));
            }
        };
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if metadata.nlink() > 1
            && !metadata.is_dir()
            && !seen.insert((metadata.dev(), metadata.ino()))
        {
            continue;
        }
        total = total.saturating_add(metadata.blocks().saturating_mul(512));
    }
    Ok(total)
}

/// Samples the free space while the build runs; ends when its [`TargetDir`] does.
async fn watch(path: PathBuf, budget: DiskBudget, seen_full: Arc<AtomicBool>) {
    let mut ticks = tokio::time::interval(WATCH_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        let path = path.clone();
        if let Ok(Ok(true)) = tokio::task::spawn_blocking(move || nearly_full(&path, budget)).await
        {
            seen_full.store(true, Ordering::Relaxed);
        }
    }
}

/// Runs blocking filesystem work off the async threads; `path` names it in an error.
async fn blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> Result<T, DiskError> + Send + 'static,
) -> Result<T, DiskError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| {
            Err(DiskError::Io {
                action: "finish filesystem work on",
                path: path.to_path_buf(),
                source: io::Error::other(error.to_string()),
            })
        })
}

/// How a host command went wrong.
enum Run {
    NotFound,
    Spawn(io::Error),
    TimedOut,
    Cancelled,
    /// Exited unsuccessfully: its message, on one line.
    Failed(String),
}

impl Run {
    fn into_disk(self, program: &'static str, path: &Path) -> DiskError {
        let path = path.to_path_buf();
        match self {
            Run::NotFound => DiskError::Command {
                program,
                path,
                detail: "not installed".to_string(),
            },
            Run::Spawn(source) => DiskError::Io {
                action: "run a command for",
                path,
                source,
            },
            Run::TimedOut => DiskError::TimedOut { program, path },
            Run::Cancelled => DiskError::Cancelled { path },
            Run::Failed(detail) => DiskError::Command {
                program,
                path,
                detail,
            },
        }
    }
}

/// Runs a host command from `/`, input closed, output captured, killed after
/// [`TIME_LIMIT`], on `cancel` or when the future is dropped.
async fn run(
    name: &'static str,
    args: &[&OsStr],
    cancel: Option<&CancellationToken>,
) -> Result<(), Run> {
    let child = Command::new(program(name))
        .args(args)
        .current_dir("/")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => Run::NotFound,
            _ => Run::Spawn(error),
        })?;
    let cancelled = async {
        match cancel {
            Some(cancel) => cancel.cancelled().await,
            None => std::future::pending().await,
        }
    };
    let output = tokio::select! {
        output = tokio::time::timeout(TIME_LIMIT, child.wait_with_output()) => output,
        () = cancelled => return Err(Run::Cancelled),
    };
    match output {
        Err(_) => Err(Run::TimedOut),
        Ok(Err(error)) => Err(Run::Spawn(error)),
        Ok(Ok(output)) if output.status.success() => Ok(()),
        Ok(Ok(output)) => {
            let text = String::from_utf8_lossy(if output.stderr.is_empty() {
                &output.stdout
            } else {
                &output.stderr
            })
            .into_owned();
            let mut detail: String = text
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            if detail.is_empty() {
                detail = output.status.to_string();
            }
            if detail.len() > 300 {
                let mut end = 300;
                while !detail.is_char_boundary(end) {
                    end -= 1;
                }
                detail.truncate(end);
                detail.push('…');
            }
            Err(Run::Failed(detail))
        }
    }
}

/// A system program by absolute path where it usually is (`/usr/sbin` is not on every
/// `PATH`, and a root process should not look programs up there), else by name.
fn program(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

#[cfg(test)]
mod tests {
    //! Real mounts: these tests must run as root (as CI does) and fail otherwise.

    use std::io::Write;
    use std::time::Instant;

    use super::*;

    const MIB: u64 = 1 << 20;

    struct Fixture {
        _temp: tempfile::TempDir,
        dir: PathBuf,
        image: PathBuf,
    }

    fn fixture() -> Fixture {
        assert!(
            rustix::process::geteuid().is_root() && has_sys_admin(),
            "the disk tests mount filesystems: run them as root with CAP_SYS_ADMIN"
        );
        let temp = tempfile::tempdir().expect("temporary directory");
        let dir = temp.path().join("target");
        let image = temp.path().join("target.img");
        Fixture {
            _temp: temp,
            dir,
            image,
        }
    }

    async fn prepare(fixture: &Fixture, budget: u64) -> TargetDir {
        let target = TargetDir::prepare(
            &fixture.dir,
            &fixture.image,
            DiskBudget(budget),
            &CancellationToken::new(),
        )
        .await
        .expect("prepare");
        assert!(
            target.mounted(),
            "not mounted: {:?}",
            target.fallback_reason()
        );
        target
    }

    fn is_mount_point(dir: &Path) -> bool {
        top_mount(dir).expect("mountinfo").is_some()
    }

    /// Writes 1 MiB blocks to `name` until the filesystem is full.
    fn fill(dir: &Path, name: &str) {
        let mut file = std::fs::File::create(dir.join(name)).expect("create");
        let block = vec![7u8; MIB as usize];
        for _ in 0..1024 {
            if let Err(error) = file.write_all(&block).and_then(|()| file.sync_data()) {
                assert_eq!(error.raw_os_error(), Some(28), "{error}");
                return;
            }
        }
        panic!("wrote 1 GiB without ENOSPC");
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn disk_full_is_reported_and_discard_frees_the_space() {
        let fixture = fixture();
        let target = prepare(&fixture, 64 * MIB).await;
        assert!(is_mount_point(&fixture.dir));
        assert_eq!(
            std::fs::metadata(&fixture.image).expect("image").len(),
            64 * MIB
        );
        std::fs::write(fixture.dir.join("small"), vec![1u8; 4 * MIB as usize]).expect("write");
        assert!(!target.is_full().await.expect("is_full"));

        fill(&fixture.dir, "big");
        assert!(target.is_full().await.expect("is_full"));

        target.discard().await.expect("discard");
        assert!(!fixture.image.exists());
        assert!(!is_mount_point(&fixture.dir));
        assert!(entries(&fixture.dir).is_empty());
    }

    #[tokio::test]
    async fn disk_full_counts_even_if_the_build_deleted_its_output() {
        let fixture = fixture();
        let target = prepare(&fixture, 64 * MIB).await;
        fill(&fixture.dir, "big");
        tokio::time::sleep(WATCH_INTERVAL * 3).await;
        std::fs::remove_file(fixture.dir.join("big")).expect("remove");
        assert!(target.is_full().await.expect("is_full"));
        target.release().await.expect("release");
    }

    #[tokio::test]
    async fn disk_image_is_reused_with_its_files() {
        let fixture = fixture();
        let target = prepare(&fixture, 64 * MIB).await;
        std::fs::create_dir(fixture.dir.join("debug")).expect("mkdir");
        std::fs::write(fixture.dir.join("debug/kept"), "compiled").expect("write");
        std::os::unix::fs::chown(&fixture.dir, Some(10001), Some(10001)).expect("chown");
        target.release().await.expect("release");
        assert!(!is_mount_point(&fixture.dir));
        assert!(
            entries(&fixture.dir).is_empty(),
            "unmounted, the mount point is empty"
        );

        let target = prepare(&fixture, 64 * MIB).await;
        let kept = std::fs::read_to_string(fixture.dir.join("debug/kept")).expect("kept file");
        assert_eq!(kept, "compiled");
        let root = std::fs::metadata(&fixture.dir).expect("metadata");
        assert_eq!(
            (root.uid(), root.gid()),
            (10001, 10001),
            "the chown is the filesystem's"
        );
        target.release().await.expect("release");
    }

    #[tokio::test]
    async fn disk_budget_changed_makes_a_new_image() {
        let fixture = fixture();
        let target = prepare(&fixture, 64 * MIB).await;
        std::fs::write(fixture.dir.join("old"), "old").expect("write");
        target.release().await.expect("release");

        let target = prepare(&fixture, 96 * MIB).await;
        assert_eq!(
            std::fs::metadata(&fixture.image).expect("image").len(),
            96 * MIB
        );
        assert!(!fixture.dir.join("old").exists());
        let stat = rustix::fs::statvfs(&fixture.dir).expect("statvfs");
        assert!(stat.f_blocks * stat.f_frsize > 80 * MIB);
        target.release().await.expect("release");
    }

    #[tokio::test]
    async fn disk_stale_mount_is_reused() {
        let fixture = fixture();
        let target = prepare(&fixture, 64 * MIB).await;
        std::fs::write(fixture.dir.join("kept"), "kept").expect("write");
        // A killed process: no release, no drop.
        std::mem::forget(target);
        assert!(is_mount_point(&fixture.dir));

        let target = prepare(&fixture, 64 * MIB).await;
        assert!(fixture.dir.join("kept").exists());
        assert_eq!(mount_count(&fixture.dir), 1, "not mounted twice");
        target.release().await.expect("release");
        assert!(!is_mount_point(&fixture.dir));
    }

    #[tokio::test]
    async fn disk_stale_mount_of_another_budget_is_replaced() {
        let fixture = fixture();
        let target = prepare(&fixture, 64 * MIB).await;
        std::mem::forget(target);

        let target = prepare(&fixture, 80 * MIB).await;
        assert_eq!(mount_count(&fixture.dir), 1);
        assert_eq!(
            std::fs::metadata(&fixture.image).expect("image").len(),
            80 * MIB
        );
        target.release().await.expect("release");
        assert!(!is_mount_point(&fixture.dir));
    }

    #[tokio::test]
    async fn disk_dropped_target_is_unmounted() {
        let fixture = fixture();
        let target = prepare(&fixture, 64 * MIB).await;
        drop(target);
        assert!(!is_mount_point(&fixture.dir));
        assert!(fixture.image.exists(), "the image is kept");
    }

    #[tokio::test]
    async fn disk_release_is_idempotent() {
        let fixture = fixture();
        let target = prepare(&fixture, 64 * MIB).await;
        unmount(&fixture.dir).await.expect("unmount");
        target
            .release()
            .await
            .expect("release of an unmounted target");
        unmount(&fixture.dir).await.expect("unmount of nothing");
    }

    #[tokio::test]
    async fn disk_busy_mount_is_unmounted_lazily() {
        let fixture = fixture();
        let target = prepare(&fixture, 64 * MIB).await;
        let open = std::fs::File::create(fixture.dir.join("open")).expect("create");
        target.release().await.expect("release");
        assert!(!is_mount_point(&fixture.dir));
        drop(open);
    }

    #[tokio::test]
    async fn disk_plain_directory_from_before_is_deleted() {
        let fixture = fixture();
        std::fs::create_dir_all(fixture.dir.join("debug/deps")).expect("mkdir");
        std::fs::write(fixture.dir.join("debug/deps/old.rlib"), "old").expect("write");
        let target = prepare(&fixture, 64 * MIB).await;
        assert_eq!(entries(&fixture.dir), ["lost+found"]);
        target.release().await.expect("release");
        assert!(
            entries(&fixture.dir).is_empty(),
            "nothing hidden under the mount"
        );
        assert_eq!(entries(fixture._temp.path()), ["target", "target.img"]);
    }

    #[tokio::test]
    async fn disk_mount_point_of_something_else_is_a_plain_directory() {
        let fixture = fixture();
        std::fs::create_dir_all(&fixture.dir).expect("mkdir");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&fixture.dir)
            .status()
            .expect("mount");
        assert!(status.success());
        let target = TargetDir::prepare(
            &fixture.dir,
            &fixture.image,
            DiskBudget(64 * MIB),
            &CancellationToken::new(),
        )
        .await
        .expect("prepare");
        assert!(!target.mounted());
        let reason = target.fallback_reason().expect("a reason");
        assert!(reason.contains("tmpfs"), "{reason}");
        target.release().await.expect("release");
        assert!(is_mount_point(&fixture.dir), "not docbuild's to unmount");
        let status = std::process::Command::new("umount")
            .arg(&fixture.dir)
            .status()
            .expect("umount");
        assert!(status.success());
    }

    #[tokio::test]
    async fn disk_relative_paths() {
        let fixture = fixture();
        let here = std::env::current_dir().expect("cwd");
        let relative = |path: &Path| {
            let mut up = PathBuf::new();
            for _ in here.components().skip(1) {
                up.push("..");
            }
            up.join(path.strip_prefix("/").expect("absolute"))
        };
        let target = TargetDir::prepare(
            &relative(&fixture.dir),
            &relative(&fixture.image),
            DiskBudget(64 * MIB),
            &CancellationToken::new(),
        )
        .await
        .expect("prepare");
        assert!(target.mounted(), "{:?}", target.fallback_reason());
        assert_eq!(target.path(), fixture.dir);
        drop(target);
        assert!(!is_mount_point(&fixture.dir));
    }

    #[tokio::test]
    async fn disk_cancelled_prepare_mounts_nothing() {
        let fixture = fixture();
        let cancel = CancellationToken::new();
        cancel.cancel();
        let result =
            TargetDir::prepare(&fixture.dir, &fixture.image, DiskBudget(64 * MIB), &cancel).await;
        assert!(matches!(result, Err(DiskError::Cancelled { .. })));
        assert!(!is_mount_point(&fixture.dir));
    }

    #[tokio::test]
    async fn disk_budget_below_the_minimum_is_refused() {
        let fixture = fixture();
        let result = TargetDir::prepare(
            &fixture.dir,
            &fixture.image,
            DiskBudget(MIB),
            &CancellationToken::new(),
        )
        .await;
        let error = result.expect_err("too small");
        assert!(
            error
                .to_string()
                .contains(&fixture.dir.display().to_string())
        );
    }

    #[tokio::test]
    async fn disk_plain_directory_is_measured() {
        let fixture = fixture();
        std::fs::create_dir_all(&fixture.dir).expect("mkdir");
        let target = TargetDir {
            path: fixture.dir.clone(),
            image: fixture.image.clone(),
            budget: DiskBudget(16 * MIB),
            mount: None,
            fallback: Some("test".to_string()),
        };
        std::fs::write(fixture.dir.join("a"), vec![1u8; 8 * MIB as usize]).expect("write");
        std::fs::hard_link(fixture.dir.join("a"), fixture.dir.join("b")).expect("link");
        std::os::unix::fs::symlink("/usr", fixture.dir.join("usr")).expect("symlink");
        assert!(
            !target.is_full().await.expect("is_full"),
            "links count once"
        );
        std::fs::write(fixture.dir.join("c"), vec![1u8; 8 * MIB as usize]).expect("write");
        assert!(target.is_full().await.expect("is_full"));
        target.discard().await.expect("discard");
        assert!(entries(&fixture.dir).is_empty());
    }

    #[test]
    fn disk_mountinfo_escapes() {
        assert_eq!(unescape(r"/a\040b\134c"), r"/a b\c");
        assert_eq!(unescape(r"/x\0"), r"/x\0");
    }

    /// Prints how long a 10 GiB image takes to make, mount, reuse and unmount
    /// (`cargo test -p docbuild-builder disk_timings -- --nocapture`).
    #[tokio::test]
    async fn disk_timings() {
        let fixture = fixture();
        let budget = DiskBudget::DEFAULT.0;
        let start = Instant::now();
        let target = prepare(&fixture, budget).await;
        let first = start.elapsed();
        let start = Instant::now();
        target.release().await.expect("release");
        let release = start.elapsed();
        let start = Instant::now();
        let target = prepare(&fixture, budget).await;
        let reuse = start.elapsed();
        let start = Instant::now();
        target.discard().await.expect("discard");
        let discard = start.elapsed();
        eprintln!(
            "10 GiB: first prepare {first:?}, release {release:?}, prepare again {reuse:?}, \
             discard {discard:?}"
        );
    }

    fn mount_count(dir: &Path) -> usize {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let dir = dir.to_string_lossy();
        mountinfo
            .lines()
            .filter(|line| line.split(' ').nth(4).map(unescape).as_deref() == Some(&*dir))
            .count()
    }
}
