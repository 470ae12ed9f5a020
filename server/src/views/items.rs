//! `/-/search?q=`: items (modules, types, traits, functions, macros…) across the
//! newest docs of every crate here, ranked by exact name, then prefix, then name,
//! then path; `&kind=` keeps one kind.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use docbuild_api::search::{PageItem, rank};
use maud::html;

use super::{Visitor, layout, respond};
use crate::SharedState;
use crate::catalog::Release;

/// Results a search shows at most.
const SHOWN: usize = 100;

/// Kinds a search may keep, as rustdoc names them in its file names, and as read.
const KINDS: [(&str, &str); 10] = [
    ("struct", "Structs"),
    ("enum", "Enums"),
    ("trait", "Traits"),
    ("fn", "Functions"),
    ("macro", "Macros"),
    ("mod", "Modules"),
    ("type", "Type aliases"),
    ("constant", "Constants"),
    ("static", "Statics"),
    ("union", "Unions"),
];

#[derive(serde::Deserialize)]
pub struct ItemQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    kind: String,
}

/// One result: an item and the release whose docs hold it.
struct Found<'a> {
    rank: u8,
    release: &'a Release,
    item: &'a PageItem,
}

pub async fn search(
    State(state): State<SharedState>,
    visitor: Visitor,
    Query(query): Query<ItemQuery>,
) -> Response {
    let wanted = query.q.trim().to_lowercase();
    let kind = KINDS.iter().map(|(k, _)| *k).find(|k| *k == query.kind);
    let crates = state.catalog.crates().await.unwrap_or_default();
    let store = state.catalog.store();
    let mut releases: Vec<(Arc<Release>, Arc<crate::apis::BuildApi>)> = Vec::new();
    if !wanted.is_empty() {
        for (name, version) in &crates {
            let Some(release) = state.catalog.resolve(name, version).await.ok().flatten() else {
                continue;
            };
            if let Some(api) = state.apis.of(store, &release).await {
                releases.push((release, api));
            }
        }
    }
    let mut found: Vec<Found> = releases
        .iter()
        .flat_map(|(release, api)| {
            api.items
                .iter()
                .filter(|item| kind.is_none_or(|k| item.kind == k))
                .filter_map(|item| {
                    Some(Found {
                        rank: rank(item, &wanted)?,
                        release,
                        item,
                    })
                })
        })
        .collect();
    found.sort_by(|a, b| {
        (a.rank, a.item.path.len(), &a.item.path).cmp(&(b.rank, b.item.path.len(), &b.item.path))
    });
    let total = found.len();
    let body = html! {
        h1 { "Items" }
        form.search-large action="/-/search" method="get" role="search" {
            input #item-search name="q" type="search" value=(query.q)
                placeholder="Search items in every crate's docs" aria-label="Search items";
            select #item-kind name="kind" aria-label="Kind" {
                option value="" { "All kinds" }
                @for (value, label) in KINDS {
                    option value=(value) selected[Some(value) == kind] { (label) }
                }
            }
            button type="submit" { "Search" }
        }
        @if wanted.is_empty() {
            p.empty { "Types, traits, functions, macros and modules of the newest docs of every crate here." }
        } @else if found.is_empty() {
            p.empty { "No item matches." }
        } @else {
            p.summary {
                (total) @if total == 1 { " item" } @else { " items" }
                @if total > SHOWN { ", the first " (SHOWN) " shown" }
            }
            ol #items .items {
                @for hit in found.iter().take(SHOWN) {
                    li data-kind=(hit.item.kind) {
                        span class={ "kind kind-" (hit.item.kind) } { (hit.item.kind) }
                        " "
                        a.item href={ "/" (hit.release.name) "/" (hit.release.version.to_string()) "/" (hit.item.page) } {
                            (hit.item.path)
                        }
                        " "
                        span.version { (hit.release.name) " " (hit.release.version.to_string()) }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, layout("Item search", &visitor, body))
}
