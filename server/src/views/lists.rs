//! Lists across crates: the front page (recent releases, and search over names,
//! descriptions and keywords) and the queue.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use docbuild_store::catalog::{ReleaseSummary, normalize};
use docbuild_store::queue::Job;
use maud::{Markup, html};

use super::{Visitor, ago, date_time, iso, layout, outcome_label, respond, span};
use crate::SharedState;

/// Releases the front page shows when not searching.
const RECENT: usize = 100;
/// Failed builds the queue page shows.
const RECENT_FAILURES: i64 = 20;

/// One release in a list: its newest build's outcome, or its job's state while one
/// is pending.
struct Entry {
    name: String,
    version: String,
    /// An outcome, or `queued` / `running`.
    state: String,
    /// When it was built, or queued.
    when: i64,
    /// Its newest finished build, if it failed.
    failed_build: Option<i64>,
    description: Option<String>,
    keywords: Vec<String>,
}

impl Entry {
    fn from_summary(summary: ReleaseSummary) -> Self {
        Self {
            name: summary.build.name,
            version: summary.build.version,
            state: summary.build.outcome.as_str().to_string(),
            when: summary.build.finished_at,
            failed_build: (summary.build.outcome.as_str() != "success").then_some(summary.build.id),
            description: summary.description,
            keywords: summary.keywords,
        }
    }

    fn from_job(job: &Job) -> Self {
        Self {
            name: job.name.clone(),
            version: job.version.clone(),
            state: job.status.as_str().to_string(),
            when: job.started_at.unwrap_or(job.created_at),
            failed_build: None,
            description: None,
            keywords: Vec::new(),
        }
    }

    fn version(&self) -> Option<semver::Version> {
        semver::Version::parse(&self.version).ok()
    }

    /// How well it answers `words` (lower case): `None` if some word is not in its
    /// name, description or keywords; else lower is better (exact name, a name that
    /// starts with the query, a name that holds it, then the rest).
    fn rank(&self, query: &str, words: &[String]) -> Option<u8> {
        let name = normalize(&self.name);
        let description = self.description.as_deref().unwrap_or("").to_lowercase();
        let found = words.iter().all(|word| {
            name.contains(&normalize(word))
                || description.contains(word.as_str())
                || self
                    .keywords
                    .iter()
                    .any(|k| k.to_lowercase().contains(word))
        });
        if !found {
            return None;
        }
        let query = normalize(query);
        Some(if name == query {
            0
        } else if name.starts_with(&query) {
            1
        } else if name.contains(&query) {
            2
        } else {
            3
        })
    }
}

/// Every release, one entry each: a pending job stands for its release.
async fn entries(state: &SharedState) -> Result<Vec<Entry>, String> {
    let summaries = state
        .catalog
        .store()
        .catalog()
        .summaries()
        .await
        .map_err(|e| e.to_string())?;
    let pending = state
        .queue
        .pending_jobs()
        .await
        .map_err(|e| e.to_string())?;
    // One entry per release, found by its name and version; a crate's description
    // by its name (lookups in maps, so a long list stays linear).
    let mut entries: Vec<Entry> = pending.iter().map(Entry::from_job).collect();
    let mut index: HashMap<(String, String), usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| ((e.name.clone(), e.version.clone()), i))
        .collect();
    let mut described: HashMap<String, String> = HashMap::new();
    for summary in summaries {
        if let Some(description) = &summary.description {
            described
                .entry(summary.build.name.clone())
                .or_insert_with(|| description.clone());
        }
        let key = (summary.build.name.clone(), summary.build.version.clone());
        match index.get(&key) {
            // Keep what the package says about itself on its pending entry.
            Some(&i) => {
                entries[i].description = summary.description;
                entries[i].keywords = summary.keywords;
            }
            None => {
                index.insert(key, entries.len());
                entries.push(Entry::from_summary(summary));
            }
        }
    }
    // A queued release of a crate known before gets the crate's description.
    for entry in entries.iter_mut().filter(|e| e.description.is_none()) {
        entry.description = described.get(&entry.name).cloned();
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.when));
    Ok(entries)
}

fn entry_row(entry: &Entry) -> Markup {
    html! {
        li.release data-name=(entry.name) {
            a.release-name href={ "/crate/" (entry.name) "/" (entry.version) } {
                (entry.name) " " span.version { (entry.version) }
            }
            span.description { (entry.description.as_deref().unwrap_or("")) }
            time datetime=(iso(entry.when)) title=(date_time(entry.when)) { (ago(entry.when)) }
            @match (entry.failed_build, entry.state.as_str()) {
                (Some(build), _) => a.to-build href={ "/crate/" (entry.name) "/" (entry.version) "/builds/" (build) } {
                    (outcome_label(&entry.state))
                },
                (None, "queued" | "running") => a.to-queue href="/releases/queue" { (outcome_label(&entry.state)) },
                _ => (outcome_label(&entry.state)),
            }
        }
    }
}

#[derive(serde::Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// `/`: recent releases, newest first, failures and pending builds included; with
/// `?q=`, crates whose name, description or keywords hold every word.
pub async fn front(
    State(state): State<SharedState>,
    visitor: Visitor,
    Query(query): Query<SearchQuery>,
) -> Response {
    let entries = match entries(&state).await {
        Ok(entries) => entries,
        Err(error) => return super::error_page(&visitor, &error),
    };
    let query = query.q.trim().to_string();
    let body = if query.is_empty() {
        html! {
            h1 { "Recent releases" }
            (search_form(""))
            @if entries.is_empty() {
                p.empty { "Nothing built or queued yet." }
            } @else {
                ol #crate-list .releases {
                    @for entry in entries.iter().take(RECENT) { (entry_row(entry)) }
                }
            }
        }
    } else {
        let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        // One entry per crate: its newest version.
        let mut newest: Vec<&Entry> = Vec::new();
        for entry in &entries {
            match newest.iter_mut().find(|e| e.name == entry.name) {
                Some(known) if known.version() >= entry.version() => {}
                Some(known) => *known = entry,
                None => newest.push(entry),
            }
        }
        let mut found: Vec<(u8, &Entry)> = newest
            .into_iter()
            .filter_map(|e| Some((e.rank(&query, &words)?, e)))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.name.cmp(&b.1.name)));
        html! {
            h1 { "Crates matching “" (query) "”" }
            (search_form(&query))
            @if found.is_empty() {
                p.empty { "No crate's name, description or keywords hold all of that." }
            } @else {
                ol #crate-list .releases {
                    @for (_, entry) in &found { (entry_row(entry)) }
                }
            }
        }
    };
    let title = if query.is_empty() { "Crates" } else { "Search" };
    respond(StatusCode::OK, layout(title, &visitor, body))
}

fn search_form(query: &str) -> Markup {
    html! {
        form.search-large action="/" method="get" role="search" {
            input #crate-filter name="q" type="search" value=(query)
                placeholder="Search by name, description or keyword" aria-label="Search crates";
            button type="submit" { "Search" }
        }
    }
}

/// `/releases/queue`: what runs, what waits in the order workers take it, and what
/// failed lately.
pub async fn queue(State(state): State<SharedState>, visitor: Visitor) -> Response {
    let pending = match state.queue.pending_jobs().await {
        Ok(pending) => pending,
        Err(error) => return super::error_page(&visitor, &error.to_string()),
    };
    let failures = state
        .catalog
        .store()
        .catalog()
        .recent_failures(RECENT_FAILURES)
        .await
        .unwrap_or_default();
    let now = super::now();
    let (running, queued): (Vec<&Job>, Vec<&Job>) = pending
        .iter()
        .partition(|job| job.status.as_str() == "running");
    let body = html! {
        h1 { "Build queue" }
        p.summary { (running.len()) " running, " (queued.len()) " queued" }
        h2 { "Running" }
        @if running.is_empty() {
            p.empty { "No build is running." }
        } @else {
            table #running .list {
                thead { tr { th { "Crate" } th { "Version" } th { "Running for" } th { "Worker" } th { "Attempt" } } }
                tbody {
                    @for job in &running {
                        tr data-name=(job.name) {
                            td { a href={ "/crate/" (job.name) "/" (job.version) } { (job.name) } }
                            td { (job.version) }
                            td { (span(now - job.started_at.unwrap_or(job.created_at))) }
                            td { (job.worker.as_deref().unwrap_or("")) }
                            td { (job.attempts) }
                        }
                    }
                }
            }
        }
        h2 { "Queued" }
        @if queued.is_empty() {
            p.empty { "Nothing is waiting." }
        } @else {
            table #queued .list {
                thead { tr { th { "#" } th { "Crate" } th { "Version" } th { "Priority" } th { "Waiting for" } } }
                tbody {
                    @for (position, job) in queued.iter().enumerate() {
                        tr data-name=(job.name) {
                            td { (position + 1) }
                            td { a href={ "/crate/" (job.name) "/" (job.version) } { (job.name) } }
                            td { (job.version) }
                            td { (job.priority) }
                            td { (span(now - job.created_at)) }
                        }
                    }
                }
            }
        }
        h2 { "Recent failures" }
        @if failures.is_empty() {
            p.empty { "No build has failed." }
        } @else {
            table #failures .list {
                thead { tr { th { "Crate" } th { "Version" } th { "Outcome" } th { "Why" } th { "When" } } }
                tbody {
                    @for failure in &failures {
                        @let build = &failure.build;
                        @let message = serde_json::from_str::<serde_json::Value>(&failure.record)
                            .ok()
                            .and_then(|r| r["message"].as_str().map(str::to_string));
                        tr data-name=(build.name) {
                            td { a href={ "/crate/" (build.name) "/" (build.version) } { (build.name) } }
                            td { (build.version) }
                            td { a href={ "/crate/" (build.name) "/" (build.version) "/builds/" (build.id) } {
                                (outcome_label(build.outcome.as_str()))
                            } }
                            td.message { (message.as_deref().unwrap_or("")) }
                            td { time datetime=(iso(build.finished_at)) title=(date_time(build.finished_at)) { (ago(build.finished_at)) } }
                        }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, layout("Queue", &visitor, body))
}
