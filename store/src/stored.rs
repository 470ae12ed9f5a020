//! Builds in blob storage: a build's docs as a manifest of content-addressed blobs
//! (identical files across builds and versions are stored once), its log, the files
//! of the package it built (as unpacked before the build, in a manifest of their own,
//! their blobs shared with docs and other builds alike), and the packaged sources of
//! local jobs.
//!
//! Keys: `builds/<build>/manifest.json.gz`, `builds/<build>/build.log.gz`,
//! `builds/<build>/source.json.gz`, `builds/<build>/json.json.gz` (rustdoc's JSON: a
//! manifest of `<target>.json`, its blob stored gzip, as served),
//! `sources/<job>.crate`, and the blobs themselves under `blobs/`.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;

use crate::archive::{self, ArchiveError, Effort, FileEntry, Manifest, StoreStats};
use crate::blobs::{BlobError, BlobInfo, Blobs};

fn manifest_key(build: i64) -> String {
    format!("builds/{build}/manifest.json.gz")
}

fn log_key(build: i64) -> String {
    format!("builds/{build}/build.log.gz")
}

fn source_manifest_key(build: i64) -> String {
    format!("builds/{build}/source.json.gz")
}

fn json_manifest_key(build: i64) -> String {
    format!("builds/{build}/json.json.gz")
}

/// The path of a target's rustdoc JSON in a build's JSON manifest.
pub fn json_path(target: &str) -> String {
    format!("{target}.json")
}

fn sources_key(job: i64) -> String {
    format!("sources/{job}.crate")
}

/// The stored builds: a view of the store's blob storage. Cheap to clone.
#[derive(Clone)]
pub struct StoredBuilds {
    blobs: Blobs,
}

impl std::fmt::Debug for StoredBuilds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.blobs.describe())
    }
}

impl StoredBuilds {
    pub fn new(blobs: Blobs) -> Self {
        Self { blobs }
    }

    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// Stores a build's docs (the tree below `docs`, if any) and its log. Every blob
    /// is durable when this returns, so the build may be recorded as stored.
    pub async fn put(
        &self,
        build: i64,
        docs: Option<&Path>,
        log: Option<Bytes>,
    ) -> Result<Option<StoreStats>, ArchiveError> {
        self.put_with(build, docs, log, Effort::Smallest).await
    }

    /// [`StoredBuilds::put`], compressing the docs' new blobs with `effort`.
    pub async fn put_with(
        &self,
        build: i64,
        docs: Option<&Path>,
        log: Option<Bytes>,
        effort: Effort,
    ) -> Result<Option<StoreStats>, ArchiveError> {
        if let Some(log) = log {
            let compressed = tokio::task::spawn_blocking(move || gzip(&log))
                .await
                .map_err(|e| ArchiveError::Task(e.to_string()))?;
            self.blobs.put(&log_key(build), compressed.into()).await?;
        }
        let Some(docs) = docs else { return Ok(None) };
        let (manifest, stats) = archive::store_tree_with(&self.blobs, docs, effort).await?;
        self.put_manifest(build, &manifest).await?;
        Ok(Some(stats))
    }

    /// Records where a build's files are; written last, once every blob is durable.
    pub async fn put_manifest(&self, build: i64, manifest: &Manifest) -> Result<(), BlobError> {
        self.blobs
            .put(&manifest_key(build), manifest.to_bytes().into())
            .await
    }

    /// A build's manifest; `None` when it has no docs.
    pub async fn manifest(&self, build: i64) -> Result<Option<Manifest>, ArchiveError> {
        match self.blobs.get(&manifest_key(build)).await? {
            Some(bytes) => Manifest::from_bytes(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Records where the files of a build's package are (a tree stored with
    /// [`archive::store_tree`]); written once every blob is durable.
    pub async fn put_source_manifest(
        &self,
        build: i64,
        manifest: &Manifest,
    ) -> Result<(), BlobError> {
        self.blobs
            .put(&source_manifest_key(build), manifest.to_bytes().into())
            .await
    }

    /// The files of a build's package; `None` when they were not kept (a build made
    /// before packages were kept, or one whose package never got unpacked).
    pub async fn source_manifest(&self, build: i64) -> Result<Option<Manifest>, ArchiveError> {
        match self.blobs.get(&source_manifest_key(build)).await? {
            Some(bytes) => Manifest::from_bytes(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Stores rustdoc's JSON of a build's `target` as a gzip blob (content addressed,
    /// shared with any build that made the same), then the small manifest naming it.
    pub async fn put_json(
        &self,
        build: i64,
        target: &str,
        json: Bytes,
    ) -> Result<FileEntry, ArchiveError> {
        let entry = archive::store_gzip_file(&self.blobs, json).await?;
        let mut manifest = self.json_manifest(build).await?.unwrap_or_default();
        manifest.files.insert(json_path(target), entry.clone());
        self.blobs
            .put(&json_manifest_key(build), manifest.to_bytes().into())
            .await?;
        Ok(entry)
    }

    /// Where a build's rustdoc JSON is, by target (`<target>.json`); `None` when it
    /// has none.
    pub async fn json_manifest(&self, build: i64) -> Result<Option<Manifest>, ArchiveError> {
        match self.blobs.get(&json_manifest_key(build)).await? {
            Some(bytes) => Manifest::from_bytes(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// A build's log, as text; `None` when it has none.
    pub async fn log(&self, build: i64) -> Result<Option<String>, ArchiveError> {
        let Some(stored) = self.blobs.get(&log_key(build)).await? else {
            return Ok(None);
        };
        let text = tokio::task::spawn_blocking(move || {
            archive::decompress(archive::Encoding::Gzip, &stored, LOG_LIMIT)
        })
        .await
        .map_err(|e| ArchiveError::Task(e.to_string()))?
        .map_err(|e| ArchiveError::Corrupt {
            key: log_key(build),
            reason: e.to_string(),
        })?;
        Ok(Some(String::from_utf8_lossy(&text).into_owned()))
    }

    /// Removes a build's manifests (docs, package and rustdoc JSON) and log; their blobs go with
    /// the next sweep, if no other build refers to them.
    pub async fn delete(&self, build: i64) -> Result<(), BlobError> {
        self.blobs.delete(&manifest_key(build)).await?;
        self.blobs.delete(&source_manifest_key(build)).await?;
        self.blobs.delete(&json_manifest_key(build)).await?;
        self.blobs.delete(&log_key(build)).await
    }

    /// Keeps a local job's packaged sources; returns their key.
    pub async fn put_sources(&self, job: i64, package: Bytes) -> Result<String, BlobError> {
        let key = sources_key(job);
        self.blobs.put(&key, package).await?;
        Ok(key)
    }

    pub async fn sources(&self, key: &str) -> Result<Option<Bytes>, BlobError> {
        self.blobs.get(key).await
    }

    pub async fn delete_sources(&self, key: &str) -> Result<(), BlobError> {
        self.blobs.delete(key).await
    }

    /// Blobs no stored build refers to, by its docs, its package or its rustdoc JSON, and older than
    /// `grace`: what a sweep may delete. `builds` are every build the database knows;
    /// the grace period keeps the blobs of a build being stored now, before its
    /// manifests are written.
    pub async fn unused(
        &self,
        builds: &[i64],
        grace: Duration,
    ) -> Result<Vec<BlobInfo>, ArchiveError> {
        let mut referenced = HashSet::new();
        for build in builds {
            if let Some(manifest) = self.manifest(*build).await? {
                referenced.extend(manifest.blob_keys());
            }
            if let Some(manifest) = self.source_manifest(*build).await? {
                referenced.extend(manifest.blob_keys());
            }
            if let Some(manifest) = self.json_manifest(*build).await? {
                referenced.extend(manifest.blob_keys());
            }
        }
        Ok(archive::unreferenced(&self.blobs, &referenced, grace)
            .await?
            .0)
    }
}

/// Logs are capped when they are made; this only bounds a corrupt blob.
const LOG_LIMIT: u64 = 256 << 20;

fn gzip(raw: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(raw);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::testing::{Backend, backends};

    #[tokio::test]
    async fn rustdoc_json_is_kept_gzip_with_the_build_and_goes_with_it() {
        for Backend { blobs, .. } in backends("rustdoc-json") {
            let what = blobs.describe();
            let builds = StoredBuilds::new(blobs.clone());
            let json = Bytes::from(format!(
                "{{\"index\": {{}}, \"format_version\": 57, \"pad\": \"{}\"}}",
                "x".repeat(4000)
            ));
            assert!(builds.json_manifest(4).await.unwrap().is_none(), "{what}");
            let entry = builds
                .put_json(4, "x86_64-unknown-linux-gnu", json.clone())
                .await
                .unwrap();
            assert_eq!(entry.encoding, archive::Encoding::Gzip, "{what}");
            let manifest = builds.json_manifest(4).await.unwrap().unwrap();
            assert_eq!(
                manifest.files.get("x86_64-unknown-linux-gnu.json"),
                Some(&entry),
                "{what}"
            );
            let stored = archive::load(&blobs, &entry).await.unwrap();
            assert_eq!(archive::decode(&entry, stored).unwrap(), json, "{what}");

            let unused = builds.unused(&[4], Duration::ZERO).await.unwrap();
            assert!(unused.is_empty(), "{what}: {unused:?}");
            builds.delete(4).await.unwrap();
            assert!(builds.json_manifest(4).await.unwrap().is_none(), "{what}");
            let unused: Vec<String> = builds
                .unused(&[], Duration::ZERO)
                .await
                .unwrap()
                .into_iter()
                .map(|blob| blob.key)
                .collect();
            assert_eq!(unused, vec![entry.key()], "{what}");
        }
    }

    #[tokio::test]
    async fn package_files_are_kept_with_the_build_and_go_with_it() {
        for Backend { blobs, .. } in backends("package-files") {
            let what = blobs.describe();
            let builds = StoredBuilds::new(blobs.clone());
            let package = tempfile::tempdir().unwrap();
            std::fs::create_dir(package.path().join("src")).unwrap();
            std::fs::write(package.path().join("Cargo.toml"), b"[package]\n").unwrap();
            std::fs::write(package.path().join("src/lib.rs"), b"//! Only here.\n").unwrap();
            let (manifest, _) = archive::store_tree(&blobs, package.path()).await.unwrap();
            assert!(builds.source_manifest(3).await.unwrap().is_none(), "{what}");
            builds.put_source_manifest(3, &manifest).await.unwrap();
            assert_eq!(
                builds.source_manifest(3).await.unwrap().as_ref(),
                Some(&manifest),
                "{what}"
            );

            // Referenced while the build exists, whatever the grace period.
            let unused = builds.unused(&[3], Duration::ZERO).await.unwrap();
            assert!(unused.is_empty(), "{what}: {unused:?}");
            // Gone with the build, and then no longer referenced.
            builds.delete(3).await.unwrap();
            assert!(builds.source_manifest(3).await.unwrap().is_none(), "{what}");
            let unused = builds.unused(&[], Duration::ZERO).await.unwrap();
            let mut keys: Vec<String> = unused.into_iter().map(|blob| blob.key).collect();
            let mut expected: Vec<String> = manifest.blob_keys().collect();
            keys.sort();
            expected.sort();
            assert_eq!(keys, expected, "{what}");
        }
    }
}
