//! The changes between two public APIs and the semver bump each needs, after the Cargo
//! book's SemVer compatibility rules
//! (<https://doc.rust-lang.org/cargo/reference/semver.html>). Where the rules leave room,
//! the larger bump is taken.
//!
//! | change | bump |
//! |---|---|
//! | an item removed, renamed, or no longer public (less visible, `#[doc(hidden)]`) | major |
//! | an item added at a new public path | minor |
//! | a function's parameters, return type, generic parameters, `async`, ABI changed; `const` removed; `unsafe` added | major |
//! | a function's bounds: any added (or a `?Sized` removed) | major |
//! | a function's bounds: only removed (or a `?Sized` added); `const` added, `unsafe` removed | minor |
//! | a trait method, associated type or constant added without a default; a default removed | major |
//! | one added with a default; a default added | minor |
//! | a trait method's signature or bounds changed in any way (implementations repeat them) | major |
//! | supertraits changed; no longer dyn compatible | major |
//! | a public field added to a struct with only public fields, not `#[non_exhaustive]` | major |
//! | a private field added to such a struct | major |
//! | a field added to a struct with private fields, or a `#[non_exhaustive]` one | minor |
//! | a variant added to an exhaustive enum; a field to an exhaustive variant | major |
//! | a variant added to a `#[non_exhaustive]` enum; a field to such a variant | minor |
//! | `#[non_exhaustive]` added to a struct, enum or variant | major (removed: minor) |
//! | a type's shape changed (unit, tuple, plain) while it can be built or matched | major |
//! | defaulted type parameters added after a type's others | minor (other generic changes: major) |
//! | a field's, constant's, static's or alias's type changed; `static mut` changed | major |
//! | a trait impl removed (a lost auto trait: `Send`, `Sync`, `Unpin`, `UnwindSafe`, `RefUnwindSafe`) | major |
//! | a trait impl added | minor |
//! | an impl's bounds tightened (loosened: minor) | major |
//! | a `macro_rules!` macro's matchers changed (not comparable: said so) | minor |
//! | documentation only, a parameter renamed, a bound moved to or from `where` | none |

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use crate::model::{ApiItem, FnSig, ItemKind, ItemPath, PublicApi};
use crate::render::GenericsSig;
use crate::version::required_version;

/// How large a version bump a change needs.
///
/// Ordered: `None < Patch < Minor < Major`, so the bump a set of changes needs is the
/// largest of theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bump {
    /// No change to the public API.
    None,
    /// A change users cannot observe through the API.
    Patch,
    /// A compatible addition (Cargo's "minor" change).
    Minor,
    /// A breaking change (Cargo's "major" change).
    Major,
}

impl fmt::Display for Bump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bump::None => "none",
            Bump::Patch => "patch",
            Bump::Minor => "minor",
            Bump::Major => "major",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

/// One change to the public API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub path: ItemPath,
    pub kind: ChangeKind,
    /// One line saying what changed and, for a breaking change, why it breaks.
    pub what: String,
    pub bump: Bump,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.bump, self.what)
    }
}

/// The changes from one version's public API to another's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiDiff {
    /// Sorted by path. The members of an added or removed item (fields, variants,
    /// methods, impls) are not listed again.
    pub changes: Vec<Change>,
    /// The largest bump of the changes; [`Bump::None`] when there are none.
    pub needed: Bump,
}

impl ApiDiff {
    pub fn count(&self, kind: ChangeKind) -> usize {
        self.changes.iter().filter(|c| c.kind == kind).count()
    }

    /// `public API: 2 added, 1 removed, 1 changed; needs 0.3.0, version is 0.2.1`.
    pub fn summary(&self, old: &semver::Version, new: &semver::Version) -> String {
        format!(
            "public API: {} added, {} removed, {} changed; needs {}, version is {}",
            self.count(ChangeKind::Added),
            self.count(ChangeKind::Removed),
            self.count(ChangeKind::Changed),
            required_version(old, self.needed),
            new
        )
    }
}

/// Replaces whole paths (`a::B`, not `a::BC` nor `xa::B`) by others.
struct Renames(Vec<(String, String)>);

impl Renames {
    fn is_path_char(c: char) -> bool {
        c.is_alphanumeric() || c == '_' || c == ':'
    }

    fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (from, to) in &self.0 {
            if !out.contains(from.as_str()) {
                continue;
            }
            let mut result = String::with_capacity(out.len());
            let mut rest = out.as_str();
            while let Some(at) = rest.find(from.as_str()) {
                let before = rest[..at].chars().next_back();
                let after = rest[at + from.len()..].chars().next();
                result.push_str(&rest[..at]);
                if before.is_some_and(Self::is_path_char) || after.is_some_and(Self::is_path_char) {
                    result.push_str(from);
                } else {
                    result.push_str(to);
                }
                rest = &rest[at + from.len()..];
            }
            result.push_str(rest);
            out = result;
        }
        out
    }

    fn generics(&self, g: &GenericsSig) -> GenericsSig {
        GenericsSig {
            params: g.params.iter().map(|p| self.apply(p)).collect(),
            predicates: g.predicates.iter().map(|p| self.apply(p)).collect(),
        }
    }

    fn item(&self, item: &ApiItem) -> ApiItem {
        let mut item = item.clone();
        item.signature = self.apply(&item.signature);
        item.generics = item.generics.as_ref().map(|g| self.generics(g));
        if let Some(f) = &mut item.function {
            f.generics = self.generics(&f.generics);
            f.params = f.params.iter().map(|p| self.apply(p)).collect();
            f.output = self.apply(&f.output);
        }
        item
    }

    /// An impl's key names its trait by the canonical path: `<T as a::Trait>`.
    fn key(&self, path: &ItemPath) -> ItemPath {
        match path.0.split_once(" as ") {
            Some((ty, tr)) if path.0.starts_with('<') => {
                ItemPath(format!("{ty} as {}", self.apply(tr)))
            }
            _ => path.clone(),
        }
    }
}

/// The old API with its signatures naming this crate's items as the new API does: an
/// item that gained a shorter public path (a new `pub use` at the root) is named by
/// it in every new signature, which is no change of those signatures.
fn renamed(old: &PublicApi, new: &PublicApi) -> Option<PublicApi> {
    let mut renames: Vec<(String, String)> = old
        .aliases
        .values()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter_map(|c_old| {
            let c_new = new.aliases.get(c_old)?;
            (c_new != c_old).then(|| (c_old.clone(), c_new.clone()))
        })
        .collect();
    if renames.is_empty() {
        return None;
    }
    // Longer paths first, so that a path is replaced before any path it starts with.
    renames.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    let renames = Renames(renames);
    Some(PublicApi {
        crate_name: old.crate_name.clone(),
        crate_version: old.crate_version.clone(),
        items: old
            .items
            .iter()
            .map(|(path, item)| (renames.key(path), renames.item(item)))
            .collect(),
        aliases: old.aliases.clone(),
    })
}

/// The changes from `old` to `new`, each with the bump it needs.
pub fn diff(old: &PublicApi, new: &PublicApi) -> ApiDiff {
    let renamed = renamed(old, new);
    let old = renamed.as_ref().unwrap_or(old);
    let mut changes = Vec::new();
    for (path, o) in &old.items {
        match new.items.get(path) {
            None => {
                // Listed with its owner's removal.
                if o.owner.as_ref().is_some_and(|p| !new.items.contains_key(p)) {
                    continue;
                }
                changes.push(removed(path, o));
            }
            Some(n) if n != o => {
                if let Some(c) = changed(path, o, n) {
                    changes.push(c);
                }
            }
            Some(_) => {}
        }
    }
    for (path, n) in &new.items {
        if old.items.contains_key(path) {
            continue;
        }
        let owner = match &n.owner {
            Some(p) => match old.items.get(p) {
                Some(o) => Some(o),
                // Listed with its owner's addition.
                None => continue,
            },
            None => None,
        };
        changes.push(added(path, n, owner));
    }
    changes.sort_by(|a, b| a.path.cmp(&b.path).then(a.what.cmp(&b.what)));
    let needed = changes.iter().map(|c| c.bump).max().unwrap_or(Bump::None);
    ApiDiff { changes, needed }
}

fn label(path: &ItemPath, item: &ApiItem) -> String {
    match item.kind {
        ItemKind::Impl => format!("`{}`", item.signature),
        k => format!("{} {path}", k.word()),
    }
}

fn removed(path: &ItemPath, o: &ApiItem) -> Change {
    let what = match o.kind {
        ItemKind::Impl => format!(
            "`{}` removed: code relying on the trait for {} breaks",
            o.signature,
            o.owner.as_ref().map(|p| p.as_str()).unwrap_or("the type")
        ),
        _ => format!(
            "{} removed or no longer public: code naming it breaks",
            label(path, o)
        ),
    };
    Change {
        path: path.clone(),
        kind: ChangeKind::Removed,
        what,
        bump: Bump::Major,
    }
}

fn added(path: &ItemPath, n: &ApiItem, owner: Option<&ApiItem>) -> Change {
    let (bump, why) = match (n.kind, owner) {
        (ItemKind::Field, Some(o)) => {
            let whose = match o.kind {
                ItemKind::Variant => "variant",
                ItemKind::Union => "union",
                _ => "struct",
            };
            if o.non_exhaustive {
                (Bump::Minor, format!("the {whose} is #[non_exhaustive]"))
            } else if o.has_private_fields && o.kind != ItemKind::Variant {
                (
                    Bump::Minor,
                    format!("the {whose} already had private fields"),
                )
            } else {
                (
                    Bump::Major,
                    format!(
                        "the {whose} had only public fields and is not #[non_exhaustive]: \
                         its literals and exhaustive patterns break"
                    ),
                )
            }
        }
        (ItemKind::Variant, Some(o)) => {
            if o.non_exhaustive {
                (Bump::Minor, "the enum is #[non_exhaustive]".to_string())
            } else {
                (
                    Bump::Major,
                    "the enum is not #[non_exhaustive]: exhaustive matches break".to_string(),
                )
            }
        }
        (ItemKind::TraitMethod | ItemKind::AssocType | ItemKind::AssocConst, Some(o))
            if o.kind == ItemKind::Trait =>
        {
            if n.has_default {
                (
                    Bump::Minor,
                    "it has a default (a name clash with another trait is possible)".to_string(),
                )
            } else {
                (
                    Bump::Major,
                    "it has no default: implementations outside the crate break".to_string(),
                )
            }
        }
        (ItemKind::Impl, _) => (Bump::Minor, String::new()),
        _ => (Bump::Minor, String::new()),
    };
    let mut what = match n.kind {
        ItemKind::Field | ItemKind::Variant => {
            format!("{} `{}` added", label(path, n), n.signature)
        }
        ItemKind::TraitMethod if !n.has_default => {
            format!("required {} added", label(path, n))
        }
        ItemKind::TraitMethod => format!("provided {} added", label(path, n)),
        ItemKind::Impl => format!("`{}` added", n.signature),
        _ => format!("{} added", label(path, n)),
    };
    if !why.is_empty() {
        what.push_str("; ");
        what.push_str(&why);
    }
    Change {
        path: path.clone(),
        kind: ChangeKind::Added,
        what,
        bump,
    }
}

/// Compares generics: a strict subset of the old bounds (with the same parameters)
/// loosens them, which callers cannot notice; anything else may break someone.
fn generics_reasons(
    o: &GenericsSig,
    n: &GenericsSig,
    loosen: Bump,
    of_type: bool,
    out: &mut Vec<(Bump, String)>,
) {
    if o.params != n.params {
        // A type's new parameters with defaults, after the old ones, leave every use of
        // it as it was (Cargo: "adding a defaulted type parameter" is minor); not a
        // function's (turbofish calls name them all).
        let defaulted_added = of_type
            && n.params.len() > o.params.len()
            && n.params.starts_with(&o.params)
            && n.params[o.params.len()..].iter().all(|p| p.contains(" = "));
        out.push((
            if defaulted_added {
                Bump::Minor
            } else {
                Bump::Major
            },
            format!(
                "generic parameters <{}> → <{}>",
                o.params.join(", "),
                n.params.join(", ")
            ),
        ));
    }
    if o.predicates != n.predicates {
        let added: Vec<&String> = n.predicates.difference(&o.predicates).collect();
        let gone: Vec<&String> = o.predicates.difference(&n.predicates).collect();
        // `T: ?Sized` relaxes: adding one loosens, removing one tightens.
        let relaxes = |p: &&String| p.contains(": ?");
        let tightened = added.iter().any(|p| !relaxes(p)) || gone.iter().any(relaxes);
        let list = |v: &[&String]| {
            v.iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut what = Vec::new();
        if !added.is_empty() {
            what.push(format!("{} added", list(&added)));
        }
        if !gone.is_empty() {
            what.push(format!("{} removed", list(&gone)));
        }
        if tightened {
            let only_tightened = gone.iter().all(relaxes) && !added.iter().any(relaxes);
            let word = if only_tightened {
                "tightened"
            } else {
                "changed"
            };
            out.push((Bump::Major, format!("bounds {word}: {}", what.join(", "))));
        } else {
            out.push((loosen, format!("bounds loosened: {}", what.join(", "))));
        }
    }
}

fn qualifier_set(q: &str) -> BTreeSet<&str> {
    let mut set = BTreeSet::new();
    for w in ["const ", "async ", "unsafe "] {
        if q.contains(w) {
            set.insert(w.trim());
        }
    }
    set
}

fn fn_reasons(o: &FnSig, n: &FnSig, trait_method: bool, out: &mut Vec<(Bump, String)>) {
    if o.qualifiers != n.qualifiers {
        let (oq, nq) = (qualifier_set(&o.qualifiers), qualifier_set(&n.qualifiers));
        for q in oq.difference(&nq) {
            let bump = match *q {
                // Callers of an unsafe fn may call a safe one (an unused_unsafe warning).
                "unsafe" if !trait_method => Bump::Minor,
                _ => Bump::Major,
            };
            out.push((bump, format!("no longer {q}")));
        }
        for q in nq.difference(&oq) {
            let bump = match *q {
                "const" if !trait_method => Bump::Minor,
                _ => Bump::Major,
            };
            out.push((bump, format!("now {q}")));
        }
        let abi = |q: &str| q.split("extern").nth(1).map(|s| s.trim().to_string());
        if abi(&o.qualifiers) != abi(&n.qualifiers) {
            out.push((
                Bump::Major,
                format!(
                    "ABI {} → {}",
                    abi(&o.qualifiers).unwrap_or_else(|| "\"Rust\"".into()),
                    abi(&n.qualifiers).unwrap_or_else(|| "\"Rust\"".into())
                ),
            ));
        }
    }
    if o.params != n.params {
        out.push((
            Bump::Major,
            format!(
                "parameters ({}) → ({})",
                o.params.join(", "),
                n.params.join(", ")
            ),
        ));
    }
    if o.output != n.output {
        out.push((
            Bump::Major,
            format!("return type {} → {}", o.output, n.output),
        ));
    }
    // An implementation may not have stricter bounds than the trait's method: loosened
    // bounds of a trait method break implementations that repeat the old ones.
    let loosen = if trait_method {
        Bump::Major
    } else {
        Bump::Minor
    };
    generics_reasons(&o.generics, &n.generics, loosen, false, out);
}

/// The signature without the parts compared structurally (generics, #[non_exhaustive]),
/// and, with `hide_shape`, without the struct's shape (`(..)` or `{ .. }`: a struct
/// with private fields in both versions cannot be built nor matched by shape).
fn residue(item: &ApiItem, hide_shape: bool) -> String {
    let mut s = item.signature.replacen("#[non_exhaustive] ", "", 1);
    if hide_shape {
        s = s.replace("(..);", " { .. }");
    }
    if let Some(g) = &item.generics {
        let w = g.where_text();
        if !w.is_empty() {
            s = s.replacen(&w, "", 1);
        }
        let p = g.params_text();
        if !p.is_empty() {
            s = s.replacen(&p, "", 1);
        }
    }
    s
}

fn changed(path: &ItemPath, o: &ApiItem, n: &ApiItem) -> Option<Change> {
    let mut reasons: Vec<(Bump, String)> = Vec::new();
    if o.kind != n.kind {
        reasons.push((
            Bump::Major,
            format!("was a {}, now a {}", o.kind.word(), n.kind.word()),
        ));
    } else {
        let trait_item = matches!(o.kind, ItemKind::TraitMethod);
        match (&o.function, &n.function) {
            (Some(of), Some(nf)) => fn_reasons(of, nf, trait_item, &mut reasons),
            _ => {
                if let (Some(og), Some(ng)) = (&o.generics, &n.generics) {
                    let loosen = match o.kind {
                        ItemKind::AssocType => Bump::Major,
                        _ => Bump::Minor,
                    };
                    let of_type = matches!(
                        o.kind,
                        ItemKind::Struct
                            | ItemKind::Enum
                            | ItemKind::Union
                            | ItemKind::Trait
                            | ItemKind::TypeAlias
                    );
                    generics_reasons(og, ng, loosen, of_type, &mut reasons);
                }
                let hide_shape =
                    o.kind == ItemKind::Struct && o.has_private_fields && n.has_private_fields;
                if o.kind == ItemKind::Macro {
                    reasons.push((
                        Bump::Minor,
                        format!(
                            "matchers `{}` → `{}` (not compared: check that the old \
                             invocations still match)",
                            o.signature, n.signature
                        ),
                    ));
                } else if residue(o, hide_shape) != residue(n, hide_shape) {
                    reasons.push((
                        Bump::Major,
                        format!("`{}` → `{}`", o.signature, n.signature),
                    ));
                }
            }
        }
        if o.non_exhaustive != n.non_exhaustive {
            reasons.push(if n.non_exhaustive {
                (
                    Bump::Major,
                    "now #[non_exhaustive]: literals and exhaustive patterns outside the crate break"
                        .to_string(),
                )
            } else {
                (Bump::Minor, "no longer #[non_exhaustive]".to_string())
            });
        }
        if o.has_private_fields != n.has_private_fields {
            if n.has_private_fields {
                if !o.non_exhaustive {
                    reasons.push((
                        Bump::Major,
                        "now has private or hidden fields: its literals and exhaustive patterns \
                         break"
                            .to_string(),
                    ));
                }
            } else {
                reasons.push((Bump::Minor, "all its fields are public now".to_string()));
            }
        }
        if o.has_default != n.has_default && o.owner.is_some() {
            reasons.push(if n.has_default {
                (Bump::Minor, "now has a default".to_string())
            } else {
                (
                    Bump::Major,
                    "no longer has a default: implementations that relied on it break".to_string(),
                )
            });
        }
        if let (Some(od), Some(nd)) = (o.dyn_compatible, n.dyn_compatible)
            && od != nd
        {
            reasons.push(if nd {
                (Bump::Minor, "now dyn compatible".to_string())
            } else {
                (
                    Bump::Major,
                    "no longer dyn compatible: `dyn` uses of it break".to_string(),
                )
            });
        }
    }
    if reasons.is_empty() {
        return None;
    }
    let bump = reasons.iter().map(|r| r.0).max().unwrap_or(Bump::None);
    let text: Vec<String> = reasons.into_iter().map(|r| r.1).collect();
    Some(Change {
        path: path.clone(),
        kind: ChangeKind::Changed,
        what: format!("{}: {}", label(path, n), text.join("; ")),
        bump,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn item(kind: ItemKind, sig: &str) -> ApiItem {
        ApiItem::new(kind, sig.to_string())
    }

    fn api(items: Vec<(&str, ApiItem)>) -> PublicApi {
        PublicApi {
            crate_name: "c".into(),
            crate_version: Some("1.0.0".into()),
            items: items
                .into_iter()
                .map(|(p, i)| (ItemPath(p.to_string()), i))
                .collect(),
            aliases: BTreeMap::new(),
        }
    }

    fn owned(mut i: ApiItem, owner: &str) -> ApiItem {
        i.owner = Some(ItemPath(owner.to_string()));
        i
    }

    fn strukt(non_exhaustive: bool, private: bool) -> ApiItem {
        let mut s = item(ItemKind::Struct, "struct S { .. }");
        s.non_exhaustive = non_exhaustive;
        s.has_private_fields = private;
        s
    }

    fn needed(old: Vec<(&str, ApiItem)>, new: Vec<(&str, ApiItem)>) -> Bump {
        diff(&api(old), &api(new)).needed
    }

    #[test]
    fn field_additions_follow_the_struct() {
        let field = || owned(item(ItemKind::Field, "b: u8"), "c::S");
        for (non_exhaustive, private, want) in [
            (false, false, Bump::Major),
            (false, true, Bump::Minor),
            (true, false, Bump::Minor),
        ] {
            let got = needed(
                vec![("c::S", strukt(non_exhaustive, private))],
                vec![
                    ("c::S", strukt(non_exhaustive, private)),
                    ("c::S::b", field()),
                ],
            );
            assert_eq!(
                got, want,
                "non_exhaustive {non_exhaustive}, private {private}"
            );
        }
        // A private field added to a struct with only public fields.
        assert_eq!(
            needed(
                vec![("c::S", strukt(false, false))],
                vec![("c::S", strukt(false, true))]
            ),
            Bump::Major
        );
        // …and to one that already had some: nothing to see.
        assert_eq!(
            needed(
                vec![("c::S", strukt(false, true))],
                vec![("c::S", strukt(false, true))]
            ),
            Bump::None
        );
    }

    #[test]
    fn non_exhaustive_added_is_major_and_removed_minor() {
        let plain = strukt(false, false);
        let mut marked = strukt(true, false);
        marked.signature = "#[non_exhaustive] struct S { .. }".into();
        assert_eq!(
            needed(
                vec![("c::S", plain.clone())],
                vec![("c::S", marked.clone())]
            ),
            Bump::Major
        );
        assert_eq!(
            needed(vec![("c::S", marked)], vec![("c::S", plain)]),
            Bump::Minor
        );
    }

    #[test]
    fn variants_follow_the_enum() {
        let mut exhaustive = item(ItemKind::Enum, "enum E { .. }");
        let variant = || owned(item(ItemKind::Variant, "B"), "c::E");
        assert_eq!(
            needed(
                vec![("c::E", exhaustive.clone())],
                vec![("c::E", exhaustive.clone()), ("c::E::B", variant())]
            ),
            Bump::Major
        );
        exhaustive.non_exhaustive = true;
        assert_eq!(
            needed(
                vec![("c::E", exhaustive.clone())],
                vec![("c::E", exhaustive), ("c::E::B", variant())]
            ),
            Bump::Minor
        );
    }

    #[test]
    fn trait_items_with_defaults_are_minor() {
        let tr = || item(ItemKind::Trait, "trait T");
        let mut provided = owned(item(ItemKind::TraitMethod, "fn p(&self) { .. }"), "c::T");
        provided.has_default = true;
        let required = owned(item(ItemKind::AssocType, "type X"), "c::T");
        assert_eq!(
            needed(
                vec![("c::T", tr())],
                vec![("c::T", tr()), ("c::T::p", provided.clone())]
            ),
            Bump::Minor
        );
        assert_eq!(
            needed(
                vec![("c::T", tr())],
                vec![("c::T", tr()), ("c::T::X", required)]
            ),
            Bump::Major
        );
        // A default taken away.
        let mut no_default = provided.clone();
        no_default.has_default = false;
        no_default.signature = "fn p(&self)".into();
        assert_eq!(
            needed(
                vec![("c::T", tr()), ("c::T::p", provided)],
                vec![("c::T", tr()), ("c::T::p", no_default)]
            ),
            Bump::Major
        );
    }

    #[test]
    fn members_of_added_and_removed_items_are_not_listed_again() {
        let old = api(vec![]);
        let new = api(vec![
            ("c::S", strukt(false, false)),
            ("c::S::a", owned(item(ItemKind::Field, "a: u8"), "c::S")),
            (
                "<c::S as core::marker::Send>",
                owned(item(ItemKind::Impl, "impl Send for c::S"), "c::S"),
            ),
        ]);
        let added = diff(&old, &new);
        assert_eq!(added.changes.len(), 1, "{:#?}", added.changes);
        assert_eq!(added.needed, Bump::Minor);
        let removed = diff(&new, &old);
        assert_eq!(removed.changes.len(), 1, "{:#?}", removed.changes);
        assert_eq!(removed.needed, Bump::Major);
    }

    fn function(predicates: &[&str]) -> ApiItem {
        let generics = GenericsSig {
            params: vec!["T".into()],
            predicates: predicates.iter().map(|p| p.to_string()).collect(),
        };
        let mut f = item(
            ItemKind::Function,
            &format!("fn f<T>(T){}", generics.where_text()),
        );
        f.function = Some(FnSig {
            qualifiers: String::new(),
            generics,
            params: vec!["T".into()],
            output: "()".into(),
        });
        f
    }

    #[test]
    fn bounds_loosened_are_minor_and_tightened_major() {
        let change = |old: &[&str], new: &[&str]| {
            diff(
                &api(vec![("c::f", function(old))]),
                &api(vec![("c::f", function(new))]),
            )
        };
        assert_eq!(
            change(&["T: Clone", "T: Send"], &["T: Clone"]).needed,
            Bump::Minor
        );
        assert_eq!(
            change(&["T: Clone"], &["T: Clone", "T: Send"]).needed,
            Bump::Major
        );
        assert_eq!(change(&["T: Clone"], &["T: Copy"]).needed, Bump::Major);
        // `?Sized` works the other way round.
        assert_eq!(change(&[], &["T: ?Sized"]).needed, Bump::Minor);
        let d = change(&["T: ?Sized"], &[]);
        assert_eq!(d.needed, Bump::Major);
        assert!(
            d.changes[0].what.contains("tightened"),
            "{}",
            d.changes[0].what
        );
        // The same bounds written elsewhere are no change.
        let mut moved = function(&["T: Clone"]);
        moved.signature = "fn f<T: Clone>(T)".into();
        let same = diff(
            &api(vec![("c::f", function(&["T: Clone"]))]),
            &api(vec![("c::f", moved)]),
        );
        assert_eq!(same.changes, Vec::new());
    }

    #[test]
    fn defaulted_type_parameters_added_to_a_type_are_minor() {
        let ty = |params: &[&str]| {
            let mut s = strukt(false, true);
            s.generics = Some(GenericsSig {
                params: params.iter().map(|p| p.to_string()).collect(),
                predicates: BTreeSet::new(),
            });
            s.signature = format!("struct S<{}> {{ .. }}", params.join(", "));
            vec![("c::S", s)]
        };
        assert_eq!(needed(ty(&["T"]), ty(&["T", "A = u8"])), Bump::Minor);
        assert_eq!(needed(ty(&["T"]), ty(&["T", "A"])), Bump::Major);
        assert_eq!(needed(ty(&["T"]), ty(&["A = u8", "T"])), Bump::Major);
        assert_eq!(needed(ty(&["T", "A = u8"]), ty(&["T"])), Bump::Major);
    }

    #[test]
    fn summary_has_the_documented_shape() {
        let d = ApiDiff {
            changes: vec![
                Change {
                    path: ItemPath("c::a".into()),
                    kind: ChangeKind::Added,
                    what: String::new(),
                    bump: Bump::Minor,
                },
                Change {
                    path: ItemPath("c::b".into()),
                    kind: ChangeKind::Added,
                    what: String::new(),
                    bump: Bump::Minor,
                },
                Change {
                    path: ItemPath("c::c".into()),
                    kind: ChangeKind::Removed,
                    what: String::new(),
                    bump: Bump::Major,
                },
                Change {
                    path: ItemPath("c::d".into()),
                    kind: ChangeKind::Changed,
                    what: String::new(),
                    bump: Bump::Major,
                },
            ],
            needed: Bump::Major,
        };
        assert_eq!(
            d.summary(
                &semver::Version::new(0, 2, 0),
                &semver::Version::new(0, 2, 1)
            ),
            "public API: 2 added, 1 removed, 1 changed; needs 0.3.0, version is 0.2.1"
        );
    }

    #[test]
    fn renames_replace_whole_paths_only() {
        let r = Renames(vec![("a::B".into(), "B".into())]);
        assert_eq!(
            r.apply("x: a::B, y: a::BC, z: xa::B, <a::B>"),
            "x: B, y: a::BC, z: xa::B, <B>"
        );
    }
}
