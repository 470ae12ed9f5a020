//! The items of a crate that have a page of their own in its HTML docs (modules,
//! types, traits, functions, macros, constants…), read from rustdoc's JSON, and a
//! search over them ranked as readers expect: the exact name, then names that start
//! with the query, then names that hold it, then paths that do.

use rustdoc_types::{Crate, ItemKind};
use serde::Serialize;

/// One item with a page, found in a crate's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageItem {
    pub name: String,
    /// The path rustdoc documents it at, from the crate: `tokio::net::TcpStream`.
    pub path: String,
    /// rustdoc's name for its kind, as in its page's file name (`struct`, `fn`…).
    pub kind: &'static str,
    /// Its page, relative to the docs' root: `tokio/net/struct.TcpStream.html`.
    pub page: String,
}

/// rustdoc's file-name prefix of the kinds that have pages of their own.
fn page_kind(kind: &ItemKind) -> Option<&'static str> {
    Some(match kind {
        ItemKind::Module => "mod",
        ItemKind::Struct => "struct",
        ItemKind::Enum => "enum",
        ItemKind::Union => "union",
        ItemKind::Trait => "trait",
        ItemKind::TraitAlias => "traitalias",
        ItemKind::Function => "fn",
        ItemKind::TypeAlias => "type",
        ItemKind::Constant => "constant",
        ItemKind::Static => "static",
        ItemKind::Macro => "macro",
        ItemKind::ProcAttribute => "attr",
        ItemKind::ProcDerive => "derive",
        _ => return None,
    })
}

/// Every item of this crate (not its dependencies') with a page, by the path rustdoc
/// documents it at. A path that holds anything but plain identifiers is skipped: it
/// names no page.
pub fn page_items(krate: &Crate) -> Vec<PageItem> {
    let mut items: Vec<PageItem> = krate
        .paths
        .values()
        .filter(|summary| summary.crate_id == 0)
        .filter_map(|summary| {
            let kind = page_kind(&summary.kind)?;
            let segments = &summary.path;
            let plain =
                |s: &String| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_');
            if segments.is_empty() || !segments.iter().all(plain) {
                return None;
            }
            let name = segments.last()?.clone();
            let page = if kind == "mod" {
                format!("{}/index.html", segments.join("/"))
            } else {
                let dirs = &segments[..segments.len() - 1];
                if dirs.is_empty() {
                    return None;
                }
                format!("{}/{kind}.{name}.html", dirs.join("/"))
            };
            Some(PageItem {
                name,
                path: segments.join("::"),
                kind,
                page,
            })
        })
        .collect();
    items.sort_by(|a, b| a.path.cmp(&b.path).then(a.kind.cmp(b.kind)));
    items.dedup();
    items
}

/// How well `item` answers `query` (lower case): `None` if not at all; else lower is
/// better.
pub fn rank(item: &PageItem, query: &str) -> Option<u8> {
    let name = item.name.to_lowercase();
    if name == query {
        Some(0)
    } else if name.starts_with(query) {
        Some(1)
    } else if name.contains(query) {
        Some(2)
    } else if item.path.to_lowercase().contains(query) {
        Some(3)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, path: &str) -> PageItem {
        PageItem {
            name: name.into(),
            path: path.into(),
            kind: "struct",
            page: String::new(),
        }
    }

    #[test]
    fn exact_names_come_before_prefixes_names_and_paths() {
        let query = "gear";
        assert_eq!(rank(&item("Gear", "core::Gear"), query), Some(0));
        assert_eq!(rank(&item("GearBox", "core::GearBox"), query), Some(1));
        assert_eq!(rank(&item("BigGear", "core::BigGear"), query), Some(2));
        assert_eq!(rank(&item("Tooth", "core::gear::Tooth"), query), Some(3));
        assert_eq!(rank(&item("Wheel", "core::Wheel"), query), None);
    }
}
