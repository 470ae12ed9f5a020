//! Which sandbox image a build uses: the light default (the host's `/usr`), docs.rs's
//! build environment made locally from Debian's packages (`docsrs`), or any image.
//!
//! docs.rs builds in rust-lang/crates-build-env, Ubuntu with 1,141 system packages.
//! `image/docs-rs-packages.tsv` keeps that list with the Debian name of each (`-` for
//! the few Debian has not); `[image] packages` in `docbuild.toml` adds a team's own.

use std::path::Path;

use docbuild_sandbox::{EnvironmentError, EnvironmentSpec, SandboxImage};

use crate::config::ImageConfig;

/// The name that selects docs.rs's environment (`--image docsrs`).
pub const DOCS_RS: &str = "docsrs";

/// Debian's mirror unless `[image] mirror` names another.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

const DOCS_RS_PACKAGES: &str = include_str!("../../image/docs-rs-packages.tsv");

/// docs.rs's packages by their Debian names, and the Ubuntu names Debian lacks.
pub fn docs_rs_packages() -> (Vec<String>, Vec<String>) {
    let mut debian = Vec::new();
    let mut missing = Vec::new();
    for line in DOCS_RS_PACKAGES.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        match line.split_once('\t') {
            Some((ubuntu, "-")) => missing.push(ubuntu.to_string()),
            Some((_, name)) => debian.push(name.to_string()),
            None => {}
        }
    }
    (debian, missing)
}

/// docs.rs's environment plus the team's packages.
pub fn docs_rs_spec(config: &ImageConfig) -> Result<EnvironmentSpec, EnvironmentError> {
    let (packages, _) = docs_rs_packages();
    EnvironmentSpec::for_host(
        DOCS_RS,
        mirror(config),
        packages.into_iter().chain(config.packages.iter().cloned()),
    )
}

/// An environment from a list of one's own (one package a line, `#` comments) plus
/// the team's packages.
pub fn list_spec(list: &Path, config: &ImageConfig) -> Result<EnvironmentSpec, EnvironmentError> {
    let text = std::fs::read_to_string(list).map_err(|e| EnvironmentError::Step {
        step: "reading the package list",
        detail: format!("{}: {e}", list.display()),
    })?;
    let packages = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter(|line| !line.is_empty())
        .map(str::to_string);
    EnvironmentSpec::for_host(
        "env",
        mirror(config),
        packages.chain(config.packages.iter().cloned()),
    )
}

fn mirror(config: &ImageConfig) -> &str {
    config.mirror.as_deref().unwrap_or(DEFAULT_MIRROR)
}

/// The image a build runs in: `--image`, else `[image] default`, else the light
/// default. `docsrs` names docs.rs's environment as currently listed.
pub fn resolve_image(
    requested: Option<&str>,
    config: &ImageConfig,
) -> Result<SandboxImage, EnvironmentError> {
    match requested.or(config.default.as_deref()) {
        None | Some("default") => Ok(SandboxImage::Default),
        Some(DOCS_RS) => Ok(SandboxImage::Named(docs_rs_spec(config)?.tag())),
        Some(other) => Ok(SandboxImage::Named(other.to_string())),
    }
}

/// Whether `image` is docs.rs's environment (any version of its list).
pub fn is_docs_rs(image: &SandboxImage) -> bool {
    matches!(image, SandboxImage::Named(name) if name.starts_with("docbuild-docsrs:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docs_rs_list_maps_to_debian_names() {
        let (debian, missing) = docs_rs_packages();
        assert!(debian.len() > 1000, "{}", debian.len());
        assert!(missing.len() < 100, "{missing:?}");
        for name in [
            "libasound2-dev",
            "libudev-dev",
            "libdbus-1-dev",
            "pkg-config",
        ] {
            assert!(debian.iter().any(|p| p == name), "{name}");
        }
        assert!(debian.iter().all(|p| docbuild_sandbox::is_package_name(p)));
    }

    #[test]
    fn team_packages_change_the_image() {
        let plain = docs_rs_spec(&ImageConfig::default()).unwrap();
        let team = docs_rs_spec(&ImageConfig {
            packages: vec!["libgpiod-dev".into()],
            ..Default::default()
        })
        .unwrap();
        assert_ne!(plain.tag(), team.tag());
        assert!(plain.tag().starts_with("docbuild-docsrs:"));
        assert_eq!(
            resolve_image(Some(DOCS_RS), &ImageConfig::default()).unwrap(),
            SandboxImage::Named(plain.tag())
        );
        assert_eq!(
            resolve_image(None, &ImageConfig::default()).unwrap(),
            SandboxImage::Default
        );
        let bad = ImageConfig {
            packages: vec!["x; rm -rf /".into()],
            ..Default::default()
        };
        assert!(docs_rs_spec(&bad).is_err());
    }
}
