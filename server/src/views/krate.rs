//! A crate's pages, at docs.rs's URLs: the crate page (README, what the package says
//! of itself, dependencies, versions, features, targets, builds), its features, its
//! builds and one build's log; and the page a docs URL answers with when a version
//! has no docs.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use docbuild_builder::CrateReport;
use docbuild_builder::about::{Dependency, PackageAbout};
use docbuild_store::catalog::normalize;
use docbuild_store::queue::{BuildRecord, Job};
use maud::{Markup, html};
use semver::Version;

use super::{
    Visitor, ago, date, date_time, iso, layout, outcome_label, readme, respond, segment, size, span,
};
use crate::SharedState;
use crate::catalog::Release;

/// One version of a crate as lists show it.
struct VersionRow {
    version: String,
    /// The newest build's outcome, or the pending job's state.
    state: String,
    /// The newest finished build.
    build: Option<i64>,
    when: i64,
    has_docs: bool,
}

/// Everything known of a crate, across versions.
struct CrateHistory {
    /// The name as published.
    name: String,
    registry: String,
    /// Newest version first.
    versions: Vec<VersionRow>,
    pending: Vec<Job>,
}

impl CrateHistory {
    async fn load(state: &SharedState, name: &str) -> Result<Option<Self>, String> {
        let builds: Vec<BuildRecord> = state
            .catalog
            .store()
            .catalog()
            .crate_builds(name)
            .await
            .map_err(|e| e.to_string())?;
        let key = normalize(name);
        let pending: Vec<Job> = state
            .queue
            .pending_jobs()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|job| normalize(&job.name) == key)
            .collect();
        let Some((published, registry)) = pending
            .first()
            .map(|j| (j.name.clone(), j.registry.clone()))
            .or_else(|| builds.first().map(|b| (b.name.clone(), b.registry.clone())))
        else {
            return Ok(None);
        };
        let mut versions: Vec<VersionRow> = Vec::new();
        for job in &pending {
            if !versions.iter().any(|v| v.version == job.version) {
                versions.push(VersionRow {
                    version: job.version.clone(),
                    state: job.status.as_str().to_string(),
                    build: None,
                    when: job.started_at.unwrap_or(job.created_at),
                    has_docs: false,
                });
            }
        }
        // Builds come newest first: the first of a version is its newest.
        for build in &builds {
            let finished = build.outcome.outcome().is_some();
            match versions.iter_mut().find(|v| v.version == build.version) {
                Some(row) => {
                    if row.build.is_none() && finished {
                        row.build = Some(build.id);
                    }
                }
                None => versions.push(VersionRow {
                    version: build.version.clone(),
                    state: build.outcome.as_str().to_string(),
                    build: finished.then_some(build.id),
                    when: build.finished_at,
                    has_docs: false,
                }),
            }
        }
        for row in &mut versions {
            row.has_docs = builds
                .iter()
                .any(|b| b.version == row.version && b.outcome.as_str() == "success");
        }
        versions.sort_by(|a, b| {
            let parsed = |v: &VersionRow| Version::parse(&v.version).ok();
            parsed(b).cmp(&parsed(a))
        });
        Ok(Some(Self {
            name: published,
            registry,
            versions,
            pending,
        }))
    }

    /// The version a URL names: `latest` (the newest that is not a pre-release, if
    /// any) or an exact one.
    fn pick(&self, requested: &str) -> Option<&VersionRow> {
        if requested == "latest" {
            return self
                .versions
                .iter()
                .find(|v| Version::parse(&v.version).is_ok_and(|v| v.pre.is_empty()))
                .or(self.versions.first());
        }
        let wanted = Version::parse(requested).ok();
        self.versions
            .iter()
            .find(|v| v.version == requested || Version::parse(&v.version).ok() == wanted)
    }
}

/// One version's builds with their reports, newest first.
struct VersionBuilds {
    builds: Vec<(BuildRecord, Option<CrateReport>)>,
}

impl VersionBuilds {
    async fn load(state: &SharedState, name: &str, version: &str) -> Result<Self, String> {
        let entries = state
            .catalog
            .store()
            .catalog()
            .builds(name, version)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self {
            builds: entries
                .into_iter()
                .map(|entry| {
                    let report = serde_json::from_str::<CrateReport>(&entry.record).ok();
                    (entry.build, report)
                })
                .collect(),
        })
    }

    /// What the package says of itself, from its newest build that read it.
    fn about(&self) -> Option<&PackageAbout> {
        self.builds
            .iter()
            .find_map(|(_, report)| report.as_ref()?.about.as_ref())
    }

    /// The newest report that knows the package's features.
    fn report(&self) -> Option<&CrateReport> {
        self.builds
            .iter()
            .filter_map(|(_, report)| report.as_ref())
            .find(|report| report.name.is_some())
    }
}

/// A crate's history, the version a URL names, and that version's builds; or the
/// page to answer with when there is none.
async fn load_version(
    state: &SharedState,
    visitor: &Visitor,
    name: &str,
    requested: &str,
) -> Result<(CrateHistory, String, VersionBuilds), Response> {
    let history = match CrateHistory::load(state, name).await {
        Ok(Some(history)) => history,
        Ok(None) => return Err(not_known(visitor, name, None)),
        Err(error) => return Err(super::error_page(visitor, &error)),
    };
    let Some(version) = history.pick(requested).map(|row| row.version.clone()) else {
        return Err(not_known(visitor, name, Some(requested)));
    };
    match VersionBuilds::load(state, name, &version).await {
        Ok(builds) => Ok((history, version, builds)),
        Err(error) => Err(super::error_page(visitor, &error)),
    }
}

fn not_known(visitor: &Visitor, name: &str, version: Option<&str>) -> Response {
    super::not_found(
        visitor,
        html! {
            h1 { "Not found" }
            p {
                "Nothing is known here of " code { (name) }
                @if let Some(version) = version { " " code { (version) } }
                "."
            }
            p { a href="/" { "Search crates" } }
        },
    )
}

/// `/crate/{name}`: the latest version's page.
pub async fn crate_latest(Path(name): Path<String>) -> Response {
    Redirect::temporary(&format!("/crate/{}/latest", segment(&name))).into_response()
}

/// `/crate/{name}/{version}`.
pub async fn crate_page(
    State(state): State<SharedState>,
    visitor: Visitor,
    Path((name, requested)): Path<(String, String)>,
) -> Response {
    let (history, version, builds) = match load_version(&state, &visitor, &name, &requested).await {
        Ok(loaded) => loaded,
        Err(page) => return page,
    };
    let Some(row) = history.pick(&version) else {
        return not_known(&visitor, &name, Some(&requested));
    };
    let release = state.catalog.resolve(&name, &version).await.ok().flatten();
    let release = release.filter(|r| r.version.to_string() == version);
    let known = known_crates(&state).await;
    let published = history
        .pending
        .iter()
        .filter(|j| j.version == version)
        .map(|j| j.created_at)
        .chain(builds.builds.iter().map(|(b, _)| b.finished_at))
        .min();
    let about = builds.about();
    let report = builds.report();
    let base = format!("/crate/{}/{}", history.name, version);
    let body = html! {
        div.crate-head {
            h1 { (history.name) " " span.version { (version) } }
            @if let Some(description) = about.and_then(|a| a.description.as_deref()) {
                p.description { (description) }
            }
            p.status {
                (outcome_label(&row.state))
                @match row.state.as_str() {
                    "queued" => " Waiting for a worker.",
                    "running" => " Building now.",
                    "success" => "",
                    _ => @if let Some(build) = row.build {
                        " " a href={ (base) "/builds/" (build) } { "The build failed: read its log" }
                        @if row.has_docs { ". An earlier build's docs are served." }
                    },
                }
            }
            nav.crate-tabs {
                @if row.has_docs {
                    a.docs-link href={ "/" (history.name) "/" (version) "/" } { "Documentation" }
                }
                a href={ (base) } { "Crate" }
                a href={ (base) "/source/" } { "Source" }
                a href={ (base) "/features" } { "Features" }
                a href={ (base) "/builds" } { "Builds" }
                @if row.has_docs {
                    a href={ (base) "/download" } { "Download docs" }
                }
            }
        }
        div.crate-body {
            article.readme {
                @match about.and_then(|a| a.readme.as_deref()) {
                    Some(markdown) => (readme::render(markdown)),
                    None => p.empty { "This package has no README." },
                }
            }
            aside.crate-meta {
                (metadata(&history, about, published, report, release.as_deref()))
                (dependencies(about, &known))
                (versions(&history, &version))
                @if visitor.is_admin() {
                    form.rebuild method="post" action={ (base) "/rebuild" } {
                        button #rebuild type="submit" { "Rebuild" }
                    }
                }
            }
        }
        (build_table(&history.name, &version, &builds))
    };
    respond(
        StatusCode::OK,
        layout(&format!("{} {version}", history.name), &visitor, body),
    )
}

fn metadata(
    history: &CrateHistory,
    about: Option<&PackageAbout>,
    published: Option<i64>,
    report: Option<&CrateReport>,
    release: Option<&Release>,
) -> Markup {
    let link = |label: &str, url: &Option<String>| -> Markup {
        html! {
            @if let Some(url) = url.as_deref().filter(|u| is_web_link(u)) {
                li { a rel="nofollow noopener noreferrer" href=(url) { (label) } }
            }
        }
    };
    html! {
        section.meta {
            h2 { "Metadata" }
            dl {
                dt { "Registry" } dd { (history.registry) }
                @if let Some(published) = published {
                    dt { "Published" } dd { time datetime=(iso(published)) title=(date_time(published)) { (date(published)) } }
                }
                @if let Some(license) = about.and_then(|a| a.license.as_deref()) {
                    dt { "License" } dd.license { (license) }
                }
                @if let Some(bytes) = release.and_then(|r| r.record.as_ref()?.docs_size_bytes) {
                    dt { "Docs size" } dd { (size(bytes)) }
                }
            }
            @if let Some(about) = about {
                ul.links {
                    (link("Repository", &about.repository))
                    (link("Homepage", &about.homepage))
                    (link("Documentation", &about.documentation))
                }
                @if !about.keywords.is_empty() {
                    ul.keywords {
                        @for keyword in &about.keywords {
                            li { a href={ "/?q=" (segment(keyword)) } { "#" (keyword) } }
                        }
                    }
                }
                @if !about.categories.is_empty() {
                    ul.categories { @for category in &about.categories { li { (category) } } }
                }
            }
            @if let Some(report) = report.filter(|r| !r.targets.is_empty()) {
                h2 { "Targets" }
                ul.targets {
                    @for (i, target) in report.targets.iter().enumerate() {
                        li {
                            @match (release.and_then(Release::lib_name), &target.docs) {
                                (Some(lib), Some(_)) => {
                                    @let prefix = if i == 0 { String::new() } else { format!("{}/", target.target) };
                                    a href={ "/" (history.name) "/" (release.map(|r| r.version.to_string()).unwrap_or_default()) "/" (prefix) (lib) "/" } { (target.target) }
                                }
                                _ => (target.target),
                            }
                            @if i == 0 { " (default)" }
                            " " (outcome_label(target.outcome.as_str()))
                        }
                    }
                }
            }
        }
    }
}

/// Only http(s) links are shown: a manifest may say anything.
fn is_web_link(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// Names (normalized) of crates with docs here.
async fn known_crates(state: &SharedState) -> BTreeSet<String> {
    state
        .catalog
        .crates()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(name, _)| normalize(&name))
        .collect()
}

/// Where a dependency's docs are: here for crates of a registry other than
/// crates.io or crates built here, else docs.rs.
fn dependency_docs(dependency: &Dependency, known: &BTreeSet<String>) -> String {
    let path = format!(
        "/{}/{}",
        segment(&dependency.name),
        segment(&dependency.req)
    );
    if dependency.registry.is_some() || known.contains(&normalize(&dependency.name)) {
        path
    } else {
        format!("https://docs.rs{path}")
    }
}

fn dependencies(about: Option<&PackageAbout>, known: &BTreeSet<String>) -> Markup {
    let Some(about) = about.filter(|a| !a.dependencies.is_empty()) else {
        return html! {};
    };
    html! {
        section.dependencies {
            h2 { "Dependencies" }
            @for (kind, title) in [("normal", "Dependencies"), ("build", "Build dependencies"), ("dev", "Dev dependencies")] {
                @let listed: Vec<&Dependency> = about.dependencies.iter().filter(|d| d.kind == kind).collect();
                @if !listed.is_empty() {
                    h3 { (title) }
                    ul class={ "deps deps-" (kind) } {
                        @for dependency in listed {
                            li {
                                a.dependency href=(dependency_docs(dependency, known)) { (dependency.name) }
                                " " span.req { (dependency.req) }
                                @if dependency.optional { " " span.optional { "optional" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn versions(history: &CrateHistory, current: &str) -> Markup {
    let current_has_docs = history
        .versions
        .iter()
        .any(|v| v.version == current && v.has_docs);
    html! {
        section.versions {
            h2 { "Versions" }
            ol #versions {
                @for row in &history.versions {
                    li class={ @if row.version == current { "current" } } data-version=(row.version) {
                        a href={ "/crate/" (history.name) "/" (row.version) } { (row.version) }
                        " " time datetime=(iso(row.when)) title=(date_time(row.when)) { (date(row.when)) }
                        " "
                        @match row.build.filter(|_| row.state != "success" && row.state != "queued" && row.state != "running") {
                            Some(build) => a href={ "/crate/" (history.name) "/" (row.version) "/builds/" (build) } { (outcome_label(&row.state)) },
                            None => (outcome_label(&row.state)),
                        }
                        @if row.has_docs && current_has_docs && row.version != current {
                            " " a.diff href={ "/crate/" (history.name) "/" (current) "/diff/" (row.version) } title={ "Public API changes between " (row.version) " and " (current) } { "diff" }
                        }
                    }
                }
            }
        }
    }
}

fn build_table(name: &str, version: &str, builds: &VersionBuilds) -> Markup {
    html! {
        section.builds {
            h2 { "Builds" }
            @if builds.builds.is_empty() {
                p.empty { "No build has run yet." }
            } @else {
                table.list.builds {
                    thead { tr { th { "Build" } th { "Outcome" } th { "Finished" } th { "Toolchain" } th { "Duration" } th { "Log" } } }
                    tbody {
                        @for (build, report) in &builds.builds {
                            tr {
                                td { a href={ "/crate/" (name) "/" (version) "/builds/" (build.id) } { "#" (build.id) } }
                                td { (outcome_label(build.outcome.as_str())) }
                                td { time datetime=(iso(build.finished_at)) title=(date_time(build.finished_at)) { (ago(build.finished_at)) } }
                                td { (report.as_ref().and_then(|r| r.toolchain.as_deref()).unwrap_or("")) }
                                td { @if let Some(report) = report { (span((report.duration_ms / 1000) as i64)) } }
                                td { a href={ "/crate/" (name) "/" (version) "/builds/" (build.id) "/log" } { "raw log" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `/crate/{name}/{version}/builds`.
pub async fn builds(
    State(state): State<SharedState>,
    visitor: Visitor,
    Path((name, requested)): Path<(String, String)>,
) -> Response {
    let (history, version, builds) = match load_version(&state, &visitor, &name, &requested).await {
        Ok(loaded) => loaded,
        Err(page) => return page,
    };
    let pending = history.pending.iter().find(|j| j.version == version);
    let body = html! {
        h1 { a href={ "/crate/" (history.name) "/" (version) } { (history.name) " " span.version { (version) } } }
        @if let Some(job) = pending {
            p.status { (outcome_label(job.status.as_str())) " since " (ago(job.started_at.unwrap_or(job.created_at))) }
        }
        (build_table(&history.name, &version, &builds))
    };
    respond(
        StatusCode::OK,
        layout(
            &format!("Builds of {} {version}", history.name),
            &visitor,
            body,
        ),
    )
}

/// `/crate/{name}/{version}/features`: every feature, what it enables, and whether
/// the docs were built with it.
pub async fn features(
    State(state): State<SharedState>,
    visitor: Visitor,
    Path((name, requested)): Path<(String, String)>,
) -> Response {
    let (history, version, builds) = match load_version(&state, &visitor, &name, &requested).await {
        Ok(loaded) => loaded,
        Err(page) => return page,
    };
    let declared = builds
        .report()
        .map(|r| r.features.clone())
        .unwrap_or_default();
    let chosen = builds.about().and_then(|a| a.docs_features.as_ref());
    let enabled = chosen.map(|c| c.enabled(&declared)).unwrap_or_default();
    let body = html! {
        h1 { a href={ "/crate/" (history.name) "/" (version) } { (history.name) " " span.version { (version) } } " features" }
        @if let Some(chosen) = chosen {
            p.built-with {
                "The docs were built with "
                @if chosen.all_features { "all features" }
                @else {
                    @if chosen.no_default_features { "no default features" } @else { "the default features" }
                    @if !chosen.features.is_empty() {
                        " and " code { (chosen.features.join(" ")) }
                    }
                }
                ", as " code { "[package.metadata.docs.rs]" } " asks."
            }
        }
        @if declared.is_empty() {
            p.empty { "This package declares no features." }
        } @else {
            table.list #features {
                thead { tr { th { "Feature" } th { "Enables" } th { "In the docs" } } }
                tbody {
                    @for (feature, enables) in &declared {
                        tr id={ "feature-" (feature) } class={ @if enabled.contains(feature) { "enabled" } } {
                            td { code { (feature) } }
                            td { @for (i, item) in enables.iter().enumerate() { @if i > 0 { ", " } code { (item) } } }
                            td.in-docs { @if enabled.contains(feature) { "✓ built" } @else { "—" } }
                        }
                    }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        layout(
            &format!("Features of {} {version}", history.name),
            &visitor,
            body,
        ),
    )
}

/// `/crate/{name}/{version}/builds/{id}`: one build, its errors, and its log with
/// error lines marked.
pub async fn build_page(
    State(state): State<SharedState>,
    visitor: Visitor,
    Path((name, version, id)): Path<(String, String, String)>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return not_known(&visitor, &name, Some(&version));
    };
    let entry = match state
        .catalog
        .store()
        .catalog()
        .build(&name, &version, id)
        .await
    {
        Ok(Some(entry)) => entry,
        Ok(None) => return not_known(&visitor, &name, Some(&version)),
        Err(error) => return super::error_page(&visitor, &error.to_string()),
    };
    let report = serde_json::from_str::<CrateReport>(&entry.record).ok();
    let log = state.catalog.log(&name, &version, id).await;
    let build = &entry.build;
    let lines: Vec<String> = log
        .as_deref()
        .map(|log| log.lines().map(strip_ansi).collect())
        .unwrap_or_default();
    let first_error = lines.iter().position(|line| is_error_line(line));
    let base = format!("/crate/{}/{}", build.name, build.version);
    let body = html! {
        h1 { a href=(base) { (build.name) " " span.version { (build.version) } } " build #" (build.id) }
        p.status {
            (outcome_label(build.outcome.as_str()))
            @if let Some(message) = report.as_ref().map(|r| r.message.as_str()).filter(|m| !m.is_empty()) {
                " " span.message { (message) }
            }
        }
        dl.build-facts {
            dt { "Finished" } dd { time datetime=(iso(build.finished_at)) { (date_time(build.finished_at)) } }
            @if let Some(report) = &report {
                @if let Some(toolchain) = &report.toolchain { dt { "Toolchain" } dd { (toolchain) } }
                dt { "Duration" } dd { (span((report.duration_ms / 1000) as i64)) }
                @if let Some(peak) = report.memory_peak_bytes { dt { "Memory peak" } dd { (size(peak)) } }
            }
        }
        @if let Some(report) = report.as_ref().filter(|r| !r.errors.is_empty()) {
            h2 { "Errors" }
            ul.errors {
                @for error in &report.errors {
                    li { code { (error.to_string()) } }
                }
            }
        }
        h2 { "Log" }
        @if log.is_none() {
            p.empty { "This build left no log." }
        } @else {
            p.log-links {
                @if let Some(line) = first_error {
                    a #first-error href={ "#L" (line + 1) } { "First error, line " (line + 1) }
                    " · "
                }
                a href={ (base) "/builds/" (build.id) "/log" } { "Raw log" }
            }
            pre #log .log {
                @for (i, line) in lines.iter().enumerate() {
                    span id={ "L" (i + 1) } class={ "line" @if is_error_line(line) { " error" } @else if is_warning_line(line) { " warning" } } {
                        a.line-number href={ "#L" (i + 1) } { (i + 1) }
                        (line) "\n"
                    }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        layout(
            &format!("Build #{} of {} {}", build.id, build.name, build.version),
            &visitor,
            body,
        ),
    )
}

fn is_error_line(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with("error:") || line.starts_with("error[") || line.starts_with("docbuild: error")
}

fn is_warning_line(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with("warning:") || line.starts_with("warning[")
}

/// A log line without terminal colour codes.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // Parameters, then one final byte in `@`..=`~`.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// A docs URL of a version without docs: 404, saying why and linking to the crate
/// page and, for a failed build, its log. `requested` is a version or requirement.
pub async fn docs_missing(
    state: &SharedState,
    visitor: &Visitor,
    name: &str,
    requested: &str,
) -> Response {
    let history = CrateHistory::load(state, name).await.ok().flatten();
    let Some(history) = history else {
        return super::not_found(
            visitor,
            html! {
                h1 { "Not found" }
                p { "No crate named " code { (name) } " has docs here." }
                p { a href={ "/?q=" (segment(name)) } { "Search crates" } }
            },
        );
    };
    // A requirement names the newest version it matches.
    let row = history.pick(requested).or_else(|| {
        let requirement = semver::VersionReq::parse(requested).ok()?;
        history
            .versions
            .iter()
            .find(|v| Version::parse(&v.version).is_ok_and(|version| requirement.matches(&version)))
    });
    let base = row.map(|row| format!("/crate/{}/{}", history.name, row.version));
    let body = html! {
        h1 { "No docs for " (history.name) " " (row.map(|r| r.version.as_str()).unwrap_or(requested)) }
        @match row {
            None => p { "This version of " code { (history.name) } " is not known here." },
            Some(row) => {
                p.status {
                    (outcome_label(&row.state))
                    @match row.state.as_str() {
                        "queued" => " Its build is queued: the docs will be here once a worker has built them.",
                        "running" => " Its build is running: the docs will be here when it is done.",
                        _ => " Its build failed, so there are no docs.",
                    }
                }
                @if let (Some(build), Some(base)) = (row.build, &base) {
                    p { a #build-link href={ (base) "/builds/" (build) } { "Read the build's log" } }
                }
            }
        }
        p {
            @if let Some(base) = &base { a href=(base) { "The crate's page" } " · " }
            a href="/releases/queue" { "The queue" }
        }
    };
    super::not_found(visitor, body)
}
