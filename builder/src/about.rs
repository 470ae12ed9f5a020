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
    /// The features the docs were built with, as `[package.metadata.docs.rs]` asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs_features: Option<DocsFeatures>,
}

/// The features of a docs build, as cargo was asked for them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DocsFeatures {
    /// `--features`: the features named, besides the default ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_features: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_default_features: bool,
}

impl DocsFeatures {
    /// Every feature of `declared` (name → what it enables) that is on: the ones
    /// asked for, `default` unless turned off, and what they enable in turn.
    pub fn enabled(
        &self,
        declared: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> std::collections::BTreeSet<String> {
        if self.all_features {
            return declared.keys().cloned().collect();
        }
        let mut pending: Vec<&str> = self.features.iter().map(String::as_str).collect();
        if !self.no_default_features {
            pending.push("default");
        }
        let mut on = std::collections::BTreeSet::new();
        while let Some(feature) = pending.pop() {
            // `dep:x` and `x/y` name dependencies, not features of this package.
            let feature = feature.trim();
            if feature.starts_with("dep:") || feature.contains('/') {
                continue;
            }
            if let Some(enables) = declared.get(feature)
                && on.insert(feature.to_string())
            {
                pending.extend(enables.iter().map(String::as_str));
            }
        }
        on
    }
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
            docs_features: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_features_follow_what_each_enables() {
        let declared: std::collections::BTreeMap<String, Vec<String>> = [
            ("default", vec!["std"]),
            ("std", vec!["alloc", "serde?/std"]),
            ("alloc", vec![]),
            ("extra", vec!["dep:rand"]),
            ("unused", vec![]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
        let on = |features: DocsFeatures| -> Vec<String> {
            features.enabled(&declared).into_iter().collect()
        };
        assert_eq!(on(DocsFeatures::default()), ["alloc", "default", "std"]);
        assert_eq!(
            on(DocsFeatures {
                features: vec!["extra".into()],
                no_default_features: true,
                ..Default::default()
            }),
            ["extra"]
        );
        assert_eq!(
            on(DocsFeatures {
                all_features: true,
                ..Default::default()
            })
            .len(),
            5
        );
    }
}
