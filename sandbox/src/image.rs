//! The default sandbox image: an empty root filesystem made locally, into which the
//! host's system directories are bound read-only at run time. Nothing is pulled, so a
//! fresh machine with a Docker engine and no registry access can build.

use std::path::Path;

use bollard::Docker;
use bollard::query_parameters::CreateImageOptions;
use futures_util::TryStreamExt;

use crate::{Bind, SandboxError};

/// The top-level directories a Debian-like host may have either as real directories
/// or as links into `/usr` (merged `/usr`).
const TOP_LEVEL_SYSTEM_DIRS: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Host files outside `/usr` that compilers and linkers need: `cc` is a link through
/// `/etc/alternatives`, and the loader's cache speeds up and directs library look-ups.
const HOST_ETC_PATHS: [&str; 2] = ["/etc/alternatives", "/etc/ld.so.cache"];

/// Mount points of the build inside any image; the builder binds onto these.
pub const CONTAINER_ROOT: &str = "/opt/docbuild";

/// Uid and gid of the unprivileged user named in the default image's `/etc/passwd`.
pub const SANDBOX_UID: u32 = 10001;

/// The host's system layout as the default image must mirror it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSystem {
    /// Top-level names that are links on the host (`bin -> usr/bin`), recreated in
    /// the image.
    links: Vec<(String, String)>,
    /// Host paths bound read-only into every default-image container.
    binds: Vec<Bind>,
}

impl HostSystem {
    pub fn detect() -> Self {
        let mut links = Vec::new();
        let mut binds = vec![Bind::read_only("/usr", "/usr")];
        for name in TOP_LEVEL_SYSTEM_DIRS {
            let path = Path::new("/").join(name);
            match std::fs::read_link(&path) {
                Ok(target) => links.push((name.to_string(), target.to_string_lossy().into_owned())),
                Err(_) if path.is_dir() => binds.push(Bind::read_only(&path, &path)),
                Err(_) => {}
            }
        }
        for path in HOST_ETC_PATHS {
            if Path::new(path).exists() {
                binds.push(Bind::read_only(path, path));
            }
        }
        Self { links, binds }
    }

    /// The binds a default-image container needs.
    pub fn binds(&self) -> &[Bind] {
        &self.binds
    }

    /// Image tag: the layout is part of it, so that a host with another layout never
    /// reuses an image with the wrong links.
    pub fn image_name(&self) -> String {
        let mut layout: String = self
            .links
            .iter()
            .map(|(name, _)| name.chars().next().unwrap_or('x'))
            .collect();
        if layout.is_empty() {
            layout.push_str("split");
        }
        format!("docbuild-sandbox:1-{layout}-{}", self.links.len())
    }

    /// The image's root filesystem as a tar archive.
    fn rootfs_tar(&self) -> std::io::Result<Vec<u8>> {
        let mut tar = tar::Builder::new(Vec::new());
        let dirs = [
            "tmp",
            "proc",
            "dev",
            "sys",
            "etc",
            "usr",
            "opt",
            "opt/docbuild",
            "opt/docbuild/src",
            "opt/docbuild/target",
            "opt/docbuild/cargo-home",
            "opt/docbuild/toolchain",
        ];
        for dir in dirs {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(if dir == "tmp" { 0o1777 } else { 0o755 });
            header.set_size(0);
            tar.append_data(&mut header, dir, std::io::empty())?;
        }
        for (name, target) in &self.links {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            tar.append_link(&mut header, name, target)?;
        }
        let uid = SANDBOX_UID;
        let files = [
            (
                "etc/passwd",
                format!("root:x:0:0::/:/bin/false\ndocbuild:x:{uid}:{uid}::/tmp:/bin/false\n"),
            ),
            ("etc/group", format!("root:x:0:\ndocbuild:x:{uid}:\n")),
        ];
        for (path, content) in files {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o644);
            header.set_size(content.len() as u64);
            tar.append_data(&mut header, path, content.as_bytes())?;
        }
        tar.into_inner()
    }
}

/// Makes the default image unless it exists. Takes well under a second: the archive
/// holds a few empty directories and links.
pub(crate) async fn ensure_default_image(
    docker: &Docker,
    host: &HostSystem,
) -> Result<String, SandboxError> {
    let name = host.image_name();
    if docker.inspect_image(&name).await.is_ok() {
        return Ok(name);
    }
    let (repo, tag) = name.split_once(':').unwrap_or((&name, "latest"));
    let rootfs = host.rootfs_tar().map_err(SandboxError::Io)?;
    let options = CreateImageOptions {
        from_src: Some("-".into()),
        repo: Some(repo.into()),
        tag: Some(tag.into()),
        ..Default::default()
    };
    docker
        .create_image(Some(options), Some(bollard::body_full(rootfs.into())), None)
        .try_collect::<Vec<_>>()
        .await
        .map_err(|source| SandboxError::ImageCreate {
            image: name.clone(),
            source,
        })?;
    tracing::info!(image = %name, "made the default sandbox image");
    Ok(name)
}
