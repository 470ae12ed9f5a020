//! `/crate/{name}/{version}/diff/{other}`: the public API added, removed and changed
//! between two versions with docs, each change with the semver bump it needs and
//! links to the item's docs in both versions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use docbuild_api::search::PageItem;
use docbuild_api::{Bump, ChangeKind};
use maud::{Markup, html};

use super::{Visitor, layout, respond};
use crate::SharedState;
use crate::catalog::Release;

/// The page of the item a change names, or of the nearest item above it that has
/// one (a field's struct, a method's type), in a release's docs.
fn page_of<'a>(items: &'a [PageItem], lib: &str, change_path: &str) -> Option<&'a PageItem> {
    // `<crate::S as core::marker::Send>` is about `crate::S`.
    let path = change_path
        .strip_prefix('<')
        .and_then(|p| p.split(" as ").next())
        .unwrap_or(change_path);
    let mut segments: Vec<&str> = path.split("::").collect();
    if segments.first() == Some(&"crate") {
        segments[0] = lib;
    }
    while !segments.is_empty() {
        let wanted = segments.join("::");
        if let Some(item) = items.iter().find(|item| item.path == wanted) {
            return Some(item);
        }
        segments.pop();
    }
    None
}

fn bump_label(bump: Bump) -> Markup {
    let state = match bump {
        Bump::Major => "is-failed",
        Bump::Minor => "is-pending",
        _ => "is-ok",
    };
    html! { span class={ "outcome " (state) " bump-" (bump.to_string()) } { (bump.to_string()) } }
}

fn docs_link(release: &Release, lib: &str, items: &[PageItem], path: &str) -> Markup {
    html! {
        @if let Some(item) = page_of(items, lib, path) {
            a href={ "/" (release.name) "/" (release.version.to_string()) "/" (item.page) } {
                (release.version.to_string())
            }
        }
    }
}

pub async fn diff(
    State(state): State<SharedState>,
    visitor: Visitor,
    Path((name, version, other)): Path<(String, String, String)>,
) -> Response {
    let not_found = |what: &str| {
        super::not_found(
            &visitor,
            html! {
                h1 { "No diff" }
                p { (what) }
                p { a href={ "/crate/" (name) "/" (version) } { "The crate's page" } }
            },
        )
    };
    let resolve = |v: String| {
        let state = state.clone();
        let name = name.clone();
        async move { state.catalog.resolve(&name, &v).await.ok().flatten() }
    };
    let (Some(this), Some(that)) = (resolve(version.clone()).await, resolve(other.clone()).await)
    else {
        return not_found("Both versions need docs here to be compared.");
    };
    let store = state.catalog.store();
    let (Some(this_api), Some(that_api)) = (
        state.apis.of(store, &this).await,
        state.apis.of(store, &that).await,
    ) else {
        return not_found(
            "A version's build has no rustdoc JSON to compare (it was built before docbuild kept it).",
        );
    };
    // Changes go from the older version to the newer.
    let ((old, old_api), (new, new_api)) = if that.version <= this.version {
        ((&that, &that_api), (&this, &this_api))
    } else {
        ((&this, &this_api), (&that, &that_api))
    };
    let changes = docbuild_api::diff(&old_api.api, &new_api.api);
    let lib = new.lib_name().or(old.lib_name()).unwrap_or_default();
    let body = html! {
        h1 {
            a href={ "/crate/" (new.name) "/" (new.version.to_string()) } { (new.name) }
            " " span.version { (old.version.to_string()) " → " (new.version.to_string()) }
        }
        p #api-summary .summary {
            (changes.summary(&old.version, &new.version))
            " "
            @if docbuild_api::is_enough(&old.version, &new.version, changes.needed) {
                span.outcome.is-ok { "enough" }
            } @else {
                span.outcome.is-failed { "too small a bump" }
            }
        }
        @if changes.changes.is_empty() {
            p.empty { "The public API is the same." }
        } @else {
            table.list #changes {
                thead { tr { th { "Change" } th { "Item" } th { "What" } th { "Needs" } th { "Docs" } } }
                tbody {
                    @for change in &changes.changes {
                        @let kind = match change.kind {
                            ChangeKind::Added => "added",
                            ChangeKind::Removed => "removed",
                            ChangeKind::Changed => "changed",
                        };
                        tr class={ "change-" (kind) } {
                            td { (kind) }
                            td { code { (change.path.0) } }
                            td { (change.what) }
                            td { (bump_label(change.bump)) }
                            td.docs {
                                @if change.kind != ChangeKind::Added {
                                    (docs_link(old, lib, &old_api.items, &change.path.0))
                                }
                                " "
                                @if change.kind != ChangeKind::Removed {
                                    (docs_link(new, lib, &new_api.items, &change.path.0))
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        layout(
            &format!("{} {} → {}", new.name, old.version, new.version),
            &visitor,
            body,
        ),
    )
}
