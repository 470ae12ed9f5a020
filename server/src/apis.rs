//! What the viewer reads from a build's rustdoc JSON: the items that have pages (for
//! the item search) and the public API (for diffs between versions). Each build's is
//! read once, off the async runtime, and kept: a build never changes once stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use docbuild_api::PublicApi;
use docbuild_api::search::PageItem;
use docbuild_store::Store;

use crate::catalog::Release;

/// The most bytes of rustdoc JSON read for one build.
const MAX_JSON: u64 = 512 << 20;

/// One build's API, as its JSON says.
#[derive(Debug)]
pub struct BuildApi {
    /// Items with a page in the build's docs, by the path rustdoc documents them at.
    pub items: Vec<PageItem>,
    pub api: PublicApi,
}

/// Builds' APIs, read on first need and kept.
#[derive(Default)]
pub struct ApiIndex {
    builds: Mutex<HashMap<i64, Option<Arc<BuildApi>>>>,
}

impl ApiIndex {
    /// The API of `release`'s build, or `None` when it has no JSON that this docbuild
    /// reads (made before JSON was kept, or of another format version).
    pub async fn of(&self, store: &Store, release: &Release) -> Option<Arc<BuildApi>> {
        if let Some(known) = self.builds.lock().ok()?.get(&release.build) {
            return known.clone();
        }
        let loaded = load(store, release).await;
        if let Ok(mut builds) = self.builds.lock() {
            builds.insert(release.build, loaded.clone());
        }
        loaded
    }
}

async fn load(store: &Store, release: &Release) -> Option<Arc<BuildApi>> {
    let target = release.default_target()?;
    let build = release.build;
    let manifest = store
        .builds()
        .json_manifest(build)
        .await
        .map_err(|error| tracing::error!(build, %error, "cannot read a build's JSON manifest"))
        .ok()??;
    let entry = manifest
        .files
        .get(&docbuild_store::stored::json_path(target))?
        .clone();
    let stored = docbuild_store::archive::load(store.builds().blobs(), &entry)
        .await
        .map_err(|error| tracing::error!(build, %error, "cannot read a build's JSON"))
        .ok()?;
    let docs = release.manifest(store).await?;
    tokio::task::spawn_blocking(move || {
        let json = docbuild_store::archive::decompress(entry.encoding, &stored, MAX_JSON).ok()?;
        let krate = docbuild_api::parse_crate(&json)
            .map_err(|error| tracing::warn!(build, %error, "a build's JSON is not read"))
            .ok()?;
        // Only items whose page is in the stored docs: a link never leads nowhere.
        let items = docbuild_api::search::page_items(&krate)
            .into_iter()
            .filter(|item| docs.files.contains_key(&item.page))
            .collect();
        let api = PublicApi::from_crate(&krate);
        Some(Arc::new(BuildApi { items, api }))
    })
    .await
    .ok()?
}
