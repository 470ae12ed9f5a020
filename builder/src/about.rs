//! What a package says about itself, kept with its build for the viewer's crate page:
//! `Cargo.toml`'s description, links, keywords and dependencies, and its README.
//! Read from `cargo metadata` (which ran nothing of the crate) and from the README
//! file that `prepare` checked lies inside the project.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// READMEs longer than this are cut (docs.rs caps them too).
pub const README_LIMIT: u64 = 512 << 10;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PackageAbout {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
    /// The README as written (Markdown), cut at [`README_LIMIT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readme: Option<String>,
}

/// One dependency as the manifest declares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dependency {
    /// The crate's name in its registry.
    pub name: String,
    /// The version requirement.
    pub req: String,
    /// `normal`, `dev` or `build`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// The index URL of its registry; `None` for crates.io.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
}

impl PackageAbout {
    /// From `cargo metadata`'s view of the package; the README is read by
    /// [`PackageAbout::read_readme`].
    pub fn from_package(package: &cargo_metadata::Package) -> Self {
        let nonempty = |text: &Option<String>| {
            text.as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
        };
        Self {
            description: nonempty(&package.description),
            license: nonempty(&package.license),
            repository: nonempty(&package.repository),
            homepage: nonempty(&package.homepage),
            documentation: nonempty(&package.documentation),
            keywords: package.keywords.clone(),
            categories: package.categories.clone(),
            dependencies: package
                .dependencies
                .iter()
                .map(|d| Dependency {
                    name: d.name.clone(),
                    req: d.req.to_string(),
                    kind: match d.kind {
                        cargo_metadata::DependencyKind::Development => "dev",
                        cargo_metadata::DependencyKind::Build => "build",
                        _ => "normal",
                    }
                    .to_string(),
                    optional: d.optional,
                    registry: d.registry.clone(),
                })
                .collect(),
            readme: None,
        }
    }

    /// Reads the README at `path` (inside the project, as `prepare` checked), without
    /// following a link and cut at [`README_LIMIT`]; a missing or unreadable one is
    /// no README.
    pub fn read_readme(&mut self, path: &Path) {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let Ok(file) = std::fs::File::options()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
        else {
            return;
        };
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return;
        }
        let mut text = Vec::new();
        if file.take(README_LIMIT).read_to_end(&mut text).is_ok() {
            self.readme = Some(String::from_utf8_lossy(&text).into_owned());
        }
    }
}
