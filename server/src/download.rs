//! `/crate/{name}/{version}/download`: a release's docs as one zip archive that opens
//! offline. It holds the current build's docs tree as stored, under
//! `{name}-{version}/`: each crate's directory, rustdoc's `static.files/` (the
//! toolchain's), the search index, `src/` pages and other targets' directories.
//! rustdoc links its pages to the static files by relative paths
//! (`../static.files/…`), so the unpacked tree works from `file://`. The pages are as
//! rustdoc made them: the viewer's bar is put over pages only when they are served.
//!
//! The archive is written off the async runtime into an unnamed temporary file while
//! blobs are read ahead, then streamed; a few are written at once at most.

use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use docbuild_store::Blobs;
use docbuild_store::archive::{self, Encoding, FileEntry, Manifest};
use futures_util::StreamExt;
use maud::html;
use tokio::sync::Semaphore;
use tokio_util::io::ReaderStream;
use zip::write::SimpleFileOptions;

use crate::SharedState;
use crate::policy;
use crate::views::{Visitor, layout, respond};

/// Archives written at once; more wait their turn.
static WRITING: Semaphore = Semaphore::const_new(2);

/// Blobs read ahead of the writer.
const READ_AHEAD: usize = 16;

pub async fn download(
    State(state): State<SharedState>,
    Path((name, version)): Path<(String, String)>,
    visitor: Visitor,
) -> Response {
    let release = state.catalog.resolve(&name, &version).await.ok().flatten();
    let store = state.catalog.store();
    let manifest = match &release {
        Some(release) => release.manifest(store).await,
        None => None,
    };
    let (Some(release), Some(manifest)) = (release, manifest) else {
        return respond(
            StatusCode::NOT_FOUND,
            layout(
                "Not found",
                &visitor,
                html! {
                    h1 { "Not found" }
                    p #download-missing {
                        code { (name) " " (version) } " has no docs to download."
                    }
                    p { a href=(format!("/crate/{}/{}", crate::session::encode(&name), crate::session::encode(&version))) {
                        "Its builds"
                    } }
                },
            ),
        );
    };
    let top = format!("{}-{}", release.name, release.version);
    let written = match WRITING.acquire().await {
        Ok(_permit) => write_archive(store.builds().blobs().clone(), manifest, top.clone()).await,
        Err(error) => Err(error.to_string()),
    };
    let file = match written {
        Ok(file) => file,
        Err(error) => {
            tracing::error!(build = release.build, %error, "cannot make a docs archive");
            return respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                layout(
                    "Archive failed",
                    &visitor,
                    html! {
                        h1 { "Archive failed" }
                        p { "The docs cannot be read from storage now." }
                    },
                ),
            );
        }
    };
    let length = file.metadata().map(|m| m.len()).ok();
    let body = Body::from_stream(ReaderStream::new(tokio::fs::File::from_std(file)));
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    // Names and versions are validated ASCII (letters, digits, `-`, `_`, `.`, `+`).
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{top}-docs.zip\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy::INERT),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The zip of every file of `manifest` under `top/`, in an unnamed temporary file
/// positioned at its start. Content that did not compress when stored (fonts) is
/// stored as it is; everything else is deflated.
async fn write_archive(
    blobs: Blobs,
    manifest: Arc<Manifest>,
    top: String,
) -> Result<std::fs::File, String> {
    let (sender, mut receiver) =
        tokio::sync::mpsc::channel::<(String, FileEntry, Bytes)>(READ_AHEAD);
    let writer = tokio::task::spawn_blocking(move || {
        let temporary = tempfile::tempfile().map_err(|e| format!("temporary file: {e}"))?;
        let mut zip = zip::ZipWriter::new(temporary);
        while let Some((path, entry, stored)) = receiver.blocking_recv() {
            let content = archive::decode(&entry, stored).map_err(|e| e.to_string())?;
            let method = match entry.encoding {
                Encoding::Identity => zip::CompressionMethod::Stored,
                Encoding::Brotli | Encoding::Gzip => zip::CompressionMethod::Deflated,
            };
            let options = SimpleFileOptions::default()
                .compression_method(method)
                .unix_permissions(0o644)
                .large_file(content.len() as u64 >= u64::from(u32::MAX));
            zip.start_file(format!("{top}/{path}"), options)
                .map_err(|e| format!("{path}: {e}"))?;
            zip.write_all(&content)
                .map_err(|e| format!("{path}: {e}"))?;
        }
        let mut file = zip.finish().map_err(|e| e.to_string())?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| format!("temporary file: {e}"))?;
        Ok::<_, String>(file)
    });
    let files: Vec<(String, FileEntry)> = manifest
        .files
        .iter()
        .map(|(path, entry)| (path.clone(), entry.clone()))
        .collect();
    let mut loads = futures_util::stream::iter(files.into_iter().map(|(path, entry)| {
        let blobs = blobs.clone();
        async move {
            archive::load(&blobs, &entry)
                .await
                .map(|stored| (path, entry, stored))
        }
    }))
    .buffered(READ_AHEAD);
    let mut read = Ok(());
    while let Some(loaded) = loads.next().await {
        match loaded {
            Ok(file) => {
                // The writer stopped: its error says why.
                if sender.send(file).await.is_err() {
                    break;
                }
            }
            Err(error) => {
                read = Err(error.to_string());
                break;
            }
        }
    }
    drop(sender);
    let written = writer.await.map_err(|e| e.to_string())?;
    read?;
    written
}
