//! A build's package files, as docs.rs shows them: `/crate/{name}/{version}/source/`
//! lists the package's root, `…/source/{path}` a directory or a file (text with
//! numbered, linkable lines), `?raw=1` a file's bytes as a download.
//!
//! The files are the package as the worker unpacked it before the build, stored with
//! no link followed (`StoredBuilds::source_manifest`); they are found only through
//! that manifest, by paths made of safe segments, so nothing else of the storage is
//! ever named. Everything a crate wrote is escaped by the template; raw files are sent
//! as downloads that run nothing.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use docbuild_store::archive::{self, FileEntry, Manifest};
use docbuild_store::queue::{BuildRecord, BuildState};
use maud::{Markup, html};
use semver::Version;

use crate::SharedState;
use crate::files::safe_segments;
use crate::policy;
use crate::session::encode;
use crate::views::{Visitor, layout, respond, size};

/// Files larger than this are not shown in the page, only offered raw.
pub const MAX_SHOWN: u64 = 2 << 20;

/// Builds of a version looked at for stored package files, newest first.
const BUILDS_LOOKED_AT: usize = 20;

#[derive(Debug, Default, serde::Deserialize)]
pub struct SourceQuery {
    raw: Option<String>,
}

impl SourceQuery {
    fn raw(&self) -> bool {
        self.raw
            .as_deref()
            .is_some_and(|v| v != "0" && v != "false")
    }
}

/// The package files of one build.
struct Package {
    name: String,
    version: String,
    build: i64,
    manifest: Manifest,
}

impl Package {
    fn base(&self) -> String {
        format!("/crate/{}/{}/source/", self.name, self.version)
    }
}

/// The version a URL names: an exact one, or `latest` (the newest that is not a
/// pre-release, else the newest), among the versions built.
fn wanted_version(builds: &[BuildRecord], requested: &str) -> Option<Version> {
    let versions = builds
        .iter()
        .filter_map(|b| Version::parse(&b.version).ok());
    if requested == "latest" {
        let all: Vec<Version> = versions.collect();
        let stable = all.iter().filter(|v| v.pre.is_empty()).max();
        return stable.or_else(|| all.iter().max()).cloned();
    }
    let exact = Version::parse(requested).ok()?;
    versions.into_iter().find(|v| *v == exact)
}

/// The newest finished build of `name` `version` whose package files are stored.
async fn package(state: &SharedState, name: &str, version: &str) -> Option<Package> {
    let store = state.catalog.store();
    let builds = store
        .catalog()
        .crate_builds(name)
        .await
        .map_err(|error| tracing::error!(name, %error, "cannot list a crate's builds"))
        .ok()?;
    let wanted = wanted_version(&builds, version)?;
    let candidates = builds
        .iter()
        .filter(|b| b.outcome != BuildState::Running)
        .filter(|b| Version::parse(&b.version).is_ok_and(|v| v == wanted))
        // Rows are validated when written; one that is not is never served.
        .filter(|b| b.crate_id().is_some())
        .take(BUILDS_LOOKED_AT);
    for build in candidates {
        match store.builds().source_manifest(build.id).await {
            Ok(Some(manifest)) => {
                return Some(Package {
                    name: build.name.clone(),
                    version: build.version.clone(),
                    build: build.id,
                    manifest,
                });
            }
            Ok(None) => {}
            Err(error) => {
                tracing::error!(build = build.id, %error, "cannot read a build's package files");
            }
        }
    }
    None
}

/// One entry of a directory listing.
enum Item<'a> {
    Dir { files: u64, bytes: u64 },
    File(&'a FileEntry),
}

/// What is directly below `dir` (empty for the root, else ending in `/`): directories
/// with how many files and bytes they hold, and files.
fn listing<'a>(manifest: &'a Manifest, dir: &str) -> BTreeMap<(bool, &'a str), Item<'a>> {
    let mut items: BTreeMap<(bool, &str), Item<'_>> = BTreeMap::new();
    let below = manifest
        .files
        .range::<str, _>((std::ops::Bound::Included(dir), std::ops::Bound::Unbounded))
        .take_while(|(path, _)| path.starts_with(dir));
    for (path, entry) in below {
        let rest = &path[dir.len()..];
        match rest.split_once('/') {
            // Directories sort before files: `false` < `true`.
            Some((sub, _)) => {
                let item = items
                    .entry((false, sub))
                    .or_insert(Item::Dir { files: 0, bytes: 0 });
                if let Item::Dir { files, bytes } = item {
                    *files += 1;
                    *bytes += entry.size;
                }
            }
            None => {
                items.insert((true, rest), Item::File(entry));
            }
        }
    }
    items
}

fn not_found(visitor: &Visitor, message: Markup, back: Option<&str>) -> Response {
    respond(
        StatusCode::NOT_FOUND,
        layout(
            "Not found",
            visitor,
            html! {
                h1 { "Not found" }
                p #source-missing { (message) }
                @if let Some(back) = back {
                    p { a href=(back) { "Back to the package's files" } }
                }
            },
        ),
    )
}

/// Links to each directory above `path`, then its last segment.
fn breadcrumbs(package: &Package, path: &str) -> Markup {
    let base = package.base();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    html! {
        nav.source-path aria-label="Path" {
            a href=(format!("/crate/{}/{}", package.name, package.version)) {
                (package.name) " " (package.version)
            }
            " / "
            a href=(base) { "source" }
            @for (i, segment) in segments.iter().enumerate() {
                " / "
                @if i + 1 == segments.len() {
                    span { (segment) }
                } @else {
                    a href=(format!("{base}{}/", encode(&segments[..=i].join("/")))) { (segment) }
                }
            }
        }
    }
}

/// `GET /crate/{name}/{version}/source`: to the root's listing.
pub async fn bare(Path((name, version)): Path<(String, String)>) -> Response {
    let (name, version) = (encode(&name), encode(&version));
    Redirect::permanent(&format!("/crate/{name}/{version}/source/")).into_response()
}

/// `GET /crate/{name}/{version}/source/`: the package's root.
pub async fn root(
    State(state): State<SharedState>,
    Path((name, version)): Path<(String, String)>,
    visitor: Visitor,
) -> Response {
    show(&state, &name, &version, "/", false, &visitor).await
}

/// `GET /crate/{name}/{version}/source/{*path}`: a directory, or a file.
pub async fn path(
    State(state): State<SharedState>,
    Path((name, version, path)): Path<(String, String, String)>,
    Query(query): Query<SourceQuery>,
    visitor: Visitor,
) -> Response {
    show(&state, &name, &version, &path, query.raw(), &visitor).await
}

async fn show(
    state: &SharedState,
    name: &str,
    version: &str,
    path: &str,
    raw: bool,
    visitor: &Visitor,
) -> Response {
    let path = path.strip_prefix('/').unwrap_or(path);
    let Some(segments) = safe_segments(path) else {
        return (StatusCode::BAD_REQUEST, "invalid path\n").into_response();
    };
    let Some(package) = package(state, name, version).await else {
        return not_found(
            visitor,
            html! { "No files of " code { (name) " " (version) } " are kept here." },
            None,
        );
    };
    let joined = segments.join("/");
    let base = package.base();
    if joined.is_empty() {
        return directory(&package, "", visitor);
    }
    if let Some(entry) = package.manifest.files.get(&joined) {
        if path.ends_with('/') {
            return Redirect::permanent(&format!("{base}{}", encode(&joined))).into_response();
        }
        return file(state, &package, &joined, entry, raw, visitor).await;
    }
    let dir = format!("{joined}/");
    if package.manifest.files.keys().any(|p| p.starts_with(&dir)) {
        if !path.ends_with('/') {
            return Redirect::permanent(&format!("{base}{}", encode(&dir))).into_response();
        }
        return directory(&package, &dir, visitor);
    }
    not_found(
        visitor,
        html! {
            code { (joined) } " is not in the package of " (package.name) " " (package.version) "."
        },
        Some(&base),
    )
}

fn directory(package: &Package, dir: &str, visitor: &Visitor) -> Response {
    let base = package.base();
    let items = listing(&package.manifest, dir);
    let title = match dir {
        "" => format!("{} {} · source", package.name, package.version),
        dir => format!("{} {} · {dir}", package.name, package.version),
    };
    respond(
        StatusCode::OK,
        layout(
            &title,
            visitor,
            html! {
                (breadcrumbs(package, dir))
                table #source-listing.source-listing {
                    thead { tr { th { "Name" } th { "Size" } } }
                    tbody {
                        @if !dir.is_empty() {
                            tr.source-dir {
                                td { a href=(format!("{base}{}", encode(parent(dir)))) { "../" } }
                                td {}
                            }
                        }
                        @for ((_, name), item) in &items {
                            @match item {
                                Item::Dir { files, bytes } => tr.source-dir data-name=(name) {
                                    td { a href=(format!("{base}{}/", encode(&format!("{dir}{name}")))) { (name) "/" } }
                                    td {
                                        (size(*bytes)) ", " (files)
                                        @if *files == 1 { " file" } @else { " files" }
                                    }
                                },
                                Item::File(entry) => tr.source-file data-name=(name) {
                                    td { a href=(format!("{base}{}", encode(&format!("{dir}{name}")))) { (name) } }
                                    td { (size(entry.size)) }
                                },
                            }
                        }
                    }
                }
            },
        ),
    )
}

/// `dir/sub/` → `dir/`; `dir/` → ``.
fn parent(dir: &str) -> &str {
    let trimmed = dir.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(at) => &trimmed[..=at],
        None => "",
    }
}

/// The content of a stored file, checked against its entry.
async fn content(state: &SharedState, build: i64, path: &str, entry: &FileEntry) -> Option<Bytes> {
    let blobs = state.catalog.store().builds().blobs();
    let stored = archive::load(blobs, entry)
        .await
        .map_err(|error| tracing::error!(build, path, %error, "cannot read a package file"))
        .ok()?;
    let entry = entry.clone();
    tokio::task::spawn_blocking(move || archive::decode(&entry, stored))
        .await
        .ok()?
        .map_err(|error| tracing::error!(build, path, %error, "cannot read a package file"))
        .ok()
}

/// A file name fit for a `Content-Disposition` header: what is not a plain ASCII
/// letter, digit, `.`, `-` or `_` becomes `_`.
fn download_name(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.trim_matches('.').is_empty() {
        "file".to_string()
    } else {
        clean
    }
}

async fn file(
    state: &SharedState,
    package: &Package,
    path: &str,
    entry: &FileEntry,
    raw: bool,
    visitor: &Visitor,
) -> Response {
    let base = package.base();
    let unreadable = || {
        respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            layout(
                "Unreadable file",
                visitor,
                html! { h1 { "Unreadable file" } p { "This file cannot be read from storage now." } },
            ),
        )
    };
    if raw {
        let Some(bytes) = content(state, package.build, path, entry).await else {
            return unreadable();
        };
        let disposition = format!("attachment; filename=\"{}\"", download_name(path));
        let mut response = bytes.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(policy::INERT),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        return response;
    }
    let raw_link = format!("{base}{}?raw=1", encode(path));
    let text = if entry.size <= MAX_SHOWN {
        let Some(bytes) = content(state, package.build, path, entry).await else {
            return unreadable();
        };
        String::from_utf8(bytes.to_vec())
            .ok()
            .filter(|text| !text.contains('\0'))
    } else {
        None
    };
    let title = format!("{} {} · {path}", package.name, package.version);
    let body = html! {
        (breadcrumbs(package, path))
        p.source-meta {
            (size(entry.size)) " · "
            a #source-raw href=(raw_link) download { "Raw file" }
        }
        @match &text {
            Some(text) => (lines(text)),
            None => p #source-not-shown.source-note {
                @if entry.size > MAX_SHOWN {
                    "This file is larger than " (size(MAX_SHOWN)) " and is not shown here."
                } @else {
                    "This file is not UTF-8 text and is not shown here."
                }
                " "
                a href=(raw_link) download { "Download it" }
                "."
            },
        }
    };
    respond(StatusCode::OK, layout(&title, visitor, body))
}

/// A text's lines, each numbered and linkable as `#L{n}`.
fn lines(text: &str) -> Markup {
    html! {
        div #source-text.source-text {
            @for (index, line) in text.lines().enumerate() {
                @let n = index + 1;
                div.source-line id=(format!("L{n}")) {
                    a.source-number href=(format!("#L{n}")) { (n) }
                    code { (line) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use docbuild_store::archive::Encoding;

    fn manifest(paths: &[(&str, u64)]) -> Manifest {
        let mut manifest = Manifest::default();
        for (path, size) in paths {
            manifest.files.insert(
                path.to_string(),
                FileEntry {
                    hash: "0".repeat(64),
                    size: *size,
                    stored: *size,
                    encoding: Encoding::Identity,
                },
            );
        }
        manifest
    }

    #[test]
    fn listings_put_directories_first_with_their_sizes() {
        let manifest = manifest(&[
            ("Cargo.toml", 10),
            ("README.md", 5),
            ("src/lib.rs", 100),
            ("src/a/b.rs", 7),
            ("srcx", 1),
            ("benches/x.rs", 3),
        ]);
        let root: Vec<(bool, &str)> = listing(&manifest, "").into_keys().collect();
        assert_eq!(
            root,
            [
                (false, "benches"),
                (false, "src"),
                (true, "Cargo.toml"),
                (true, "README.md"),
                (true, "srcx"),
            ]
        );
        let src = listing(&manifest, "src/");
        let keys: Vec<_> = src.keys().copied().collect();
        assert_eq!(keys, [(false, "a"), (true, "lib.rs")]);
        match listing(&manifest, "")[&(false, "src")] {
            Item::Dir { files, bytes } => assert_eq!((files, bytes), (2, 107)),
            Item::File(_) => panic!("a directory"),
        }
        assert_eq!(parent("src/a/"), "src/");
        assert_eq!(parent("src/"), "");
    }

    #[test]
    fn lines_are_numbered_anchors_and_escaped() {
        let page = lines("fn a() {}\n// <script>alert(1)</script> & more\n").into_string();
        assert!(page.contains("id=\"L1\""), "{page}");
        assert!(page.contains("href=\"#L2\""), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"),
            "{page}"
        );
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("id=\"L3\""), "{page}");
    }

    #[test]
    fn versions_and_download_names() {
        let record = |version: &str| BuildRecord {
            id: 1,
            registry: "local".into(),
            name: "a".into(),
            version: version.into(),
            outcome: BuildState::Running,
            finished_at: 0,
            stored: true,
        };
        let builds = [record("1.0.0"), record("2.0.0-beta.1"), record("0.9.0")];
        let v = |text: &str| Version::parse(text).unwrap();
        assert_eq!(wanted_version(&builds, "latest"), Some(v("1.0.0")));
        assert_eq!(wanted_version(&builds, "0.9.0"), Some(v("0.9.0")));
        assert_eq!(wanted_version(&builds, "3.0.0"), None);
        assert_eq!(wanted_version(&builds, "*"), None);
        assert_eq!(
            wanted_version(&builds[1..2], "latest"),
            Some(v("2.0.0-beta.1"))
        );
        assert_eq!(download_name("src/lib.rs"), "lib.rs");
        assert_eq!(download_name("a/\"x\r\n;y"), "_x___y");
        assert_eq!(download_name(".."), "file");
    }
}
