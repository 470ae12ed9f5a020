//! The public API: every item reachable publicly from the crate root, by public path.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use rustdoc_types::{
    Attribute, Crate, Id, Item, ItemEnum, MacroKind, StructKind, Type, VariantKind, Visibility,
};
use serde::Serialize;

use crate::render::{GenericsSig, Renderer};

/// An item's public path, as a user of the crate writes it: `mycrate::a::b::Name`.
///
/// Members are written below their owner: `mycrate::S::field`, `mycrate::S::method`,
/// `mycrate::E::Variant`, `mycrate::E::Variant::0`, `mycrate::Trait::method`. A trait
/// implementation of a type is written as Rust's qualified path,
/// `<mycrate::S as core::clone::Clone>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ItemPath(pub String);

impl ItemPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ItemPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Module,
    Struct,
    Enum,
    Union,
    Trait,
    TraitAlias,
    Function,
    /// An inherent method or associated function of a public type (`Type::method`).
    Method,
    Constant,
    Static,
    TypeAlias,
    Macro,
    Variant,
    /// A field of a struct, union or enum variant (tuple fields are named `0`, `1`, …).
    Field,
    /// A method of a trait (`Trait::method`); `has_default` says whether it is provided.
    TraitMethod,
    /// An associated type of a trait.
    AssocType,
    /// An associated constant of a trait or of a type's inherent impl.
    AssocConst,
    /// `impl Trait for Type`, written `<Type as Trait>`: including the stable auto traits
    /// (`Send`, `Sync`, `Unpin`, `UnwindSafe`, `RefUnwindSafe`) rustdoc works out for the
    /// type and this crate's blanket impls that cover it.
    Impl,
    /// A foreign type (`extern { type T; }`).
    ExternType,
    /// A `pub use` of an item of another crate, or of a primitive.
    ReExport,
}

impl ItemKind {
    /// The word used in change descriptions.
    pub fn word(self) -> &'static str {
        match self {
            ItemKind::Module => "mod",
            ItemKind::Struct => "struct",
            ItemKind::Enum => "enum",
            ItemKind::Union => "union",
            ItemKind::Trait => "trait",
            ItemKind::TraitAlias => "trait alias",
            ItemKind::Function => "fn",
            ItemKind::Method => "method",
            ItemKind::Constant => "const",
            ItemKind::Static => "static",
            ItemKind::TypeAlias => "type",
            ItemKind::Macro => "macro",
            ItemKind::Variant => "variant",
            ItemKind::Field => "field",
            ItemKind::TraitMethod => "trait method",
            ItemKind::AssocType => "associated type",
            ItemKind::AssocConst => "associated const",
            ItemKind::Impl => "impl",
            ItemKind::ExternType => "extern type",
            ItemKind::ReExport => "re-export",
        }
    }
}

/// The parts of a function's signature, compared one by one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FnSig {
    /// `const async unsafe extern "C" `, as written before `fn`.
    pub qualifiers: String,
    pub generics: GenericsSig,
    /// The parameters' types; names are not part of the API.
    pub params: Vec<String>,
    /// The return type, `()` when none.
    pub output: String,
}

/// One item of the public API.
///
/// Everything that is part of the API is in here; documentation is not (a doc-only
/// change changes nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiItem {
    pub kind: ItemKind,
    /// The canonical one-line signature: paths canonical, bounds sorted and all in the
    /// `where` clause, parameter names left out, no documentation.
    pub signature: String,
    /// The item this one belongs to (a field's struct or variant, a variant's enum, a
    /// method's type, a trait item's trait, an impl's type), if any.
    pub owner: Option<ItemPath>,
    /// Generic parameters and bounds (types, traits, functions, impls, aliases).
    pub generics: Option<GenericsSig>,
    /// The parts of a function or method signature.
    pub function: Option<FnSig>,
    /// `#[non_exhaustive]` (struct, enum, variant).
    pub non_exhaustive: bool,
    /// A struct, union or variant with fields that are private or `#[doc(hidden)]`.
    pub has_private_fields: bool,
    /// A trait method, associated type or constant with a default.
    pub has_default: bool,
    /// Whether a trait is dyn compatible (`dyn Trait` is allowed).
    pub dyn_compatible: Option<bool>,
}

impl ApiItem {
    pub(crate) fn new(kind: ItemKind, signature: String) -> ApiItem {
        ApiItem {
            kind,
            signature,
            owner: None,
            generics: None,
            function: None,
            non_exhaustive: false,
            has_private_fields: false,
            has_default: false,
            dyn_compatible: None,
        }
    }
}

/// A crate's public API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicApi {
    pub crate_name: String,
    /// The version given to rustdoc (`--crate-version`; cargo passes the package's).
    pub crate_version: Option<String>,
    pub items: BTreeMap<ItemPath, ApiItem>,
    /// Every public path of an item of this crate → the path signatures name it by (its
    /// shortest public path). [`crate::diff`] uses it to read an old signature with the
    /// new version's names when an item gained a shorter path.
    #[serde(skip)]
    pub aliases: BTreeMap<String, String>,
}

fn is_hidden(item: &Item) -> bool {
    item.attrs.iter().any(|a| match a {
        Attribute::Other(s) => {
            let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
            s.contains("doc(hidden)")
        }
        _ => false,
    })
}

fn non_exhaustive(item: &Item) -> bool {
    item.attrs
        .iter()
        .any(|a| matches!(a, Attribute::NonExhaustive))
}

fn is_public(item: &Item) -> bool {
    matches!(item.visibility, Visibility::Public)
}

const MAX_DEPTH: usize = 64;

/// The auto traits stable Rust can name.
const STABLE_AUTO_TRAITS: &[&str] = &[
    "core::marker::Send",
    "core::marker::Sync",
    "core::marker::Unpin",
    "core::panic::unwind_safe::UnwindSafe",
    "core::panic::unwind_safe::RefUnwindSafe",
];

/// A macro's matchers as rustdoc gives them (bodies replaced by `{ ... }`), without
/// comments, whitespace normalised.
fn macro_matchers(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| match l.find("//") {
            Some(at) => &l[..at],
            None => l,
        })
        .collect();
    let joined = lines.join(" ");
    let words: Vec<&str> = joined.split_whitespace().collect();
    words.join(" ")
}

/// Finds every public path of every item reachable from the root.
struct Walker<'a> {
    krate: &'a Crate,
    /// Public path → item (local, in the index).
    found: BTreeMap<String, Id>,
    /// Public path → `pub use` of something not in the index (another crate's item, a
    /// primitive): the source path.
    external: BTreeMap<String, String>,
    visited: HashSet<(Id, String)>,
}

impl<'a> Walker<'a> {
    fn module(&mut self, module: &Id, prefix: &str, depth: usize) {
        if depth > MAX_DEPTH || !self.visited.insert((*module, prefix.to_string())) {
            return;
        }
        let Some(ItemEnum::Module(m)) = self.krate.index.get(module).map(|i| &i.inner) else {
            return;
        };
        // Names declared or imported by name shadow glob imports: those go second.
        let mut globs = Vec::new();
        for id in &m.items {
            let Some(item) = self.krate.index.get(id) else {
                continue;
            };
            if is_hidden(item) {
                continue;
            }
            match &item.inner {
                ItemEnum::Use(u) => {
                    if !is_public(item) {
                        continue;
                    }
                    if u.is_glob {
                        globs.push(u);
                        continue;
                    }
                    let path = format!("{prefix}::{}", u.name);
                    match u.id {
                        Some(target) if self.krate.index.contains_key(&target) => {
                            self.add(path, target, depth)
                        }
                        Some(target) => {
                            let source = self
                                .krate
                                .paths
                                .get(&target)
                                .map(|s| s.path.join("::"))
                                .unwrap_or_else(|| u.source.clone());
                            self.external.entry(path).or_insert(source);
                        }
                        None => {
                            self.external.entry(path).or_insert(u.source.clone());
                        }
                    }
                }
                ItemEnum::Impl(_) | ItemEnum::ExternCrate { .. } | ItemEnum::Primitive(_) => {}
                _ => {
                    if let Some(name) = &item.name
                        && is_public(item)
                    {
                        self.add(format!("{prefix}::{name}"), *id, depth);
                    }
                }
            }
        }
        for u in globs {
            let Some(target) = u.id else { continue };
            match self.krate.index.get(&target).map(|i| &i.inner) {
                Some(ItemEnum::Module(_)) => {
                    // The glob's names land in this module, unless already taken.
                    let mut sub = Walker {
                        krate: self.krate,
                        found: BTreeMap::new(),
                        external: BTreeMap::new(),
                        visited: std::mem::take(&mut self.visited),
                    };
                    sub.module(&target, prefix, depth + 1);
                    self.visited = sub.visited;
                    for (p, id) in sub.found {
                        self.found.entry(p).or_insert(id);
                    }
                    for (p, s) in sub.external {
                        self.external.entry(p).or_insert(s);
                    }
                }
                Some(ItemEnum::Enum(e)) => {
                    for v in &e.variants {
                        if let Some(item) = self.krate.index.get(v)
                            && let Some(name) = &item.name
                            && !is_hidden(item)
                        {
                            self.found.entry(format!("{prefix}::{name}")).or_insert(*v);
                        }
                    }
                }
                Some(_) => {}
                None => {
                    let source = self
                        .krate
                        .paths
                        .get(&target)
                        .map(|s| s.path.join("::"))
                        .unwrap_or_else(|| u.source.clone());
                    self.external
                        .entry(format!("{prefix}::{{{source}::*}}"))
                        .or_insert(format!("{source}::*"));
                }
            }
        }
    }

    fn add(&mut self, path: String, id: Id, depth: usize) {
        if self.found.contains_key(&path) {
            return;
        }
        self.found.insert(path.clone(), id);
        if let Some(ItemEnum::Module(_)) = self.krate.index.get(&id).map(|i| &i.inner) {
            self.module(&id, &path, depth + 1);
        }
    }
}

/// Shorter paths first, then alphabetical: the path an item is named by in signatures.
fn better(a: &str, b: &str) -> bool {
    let (na, nb) = (a.matches("::").count(), b.matches("::").count());
    na < nb || (na == nb && a < b)
}

impl PublicApi {
    /// The public API of an already parsed crate (its format version is not checked here;
    /// see [`crate::from_json`]).
    pub fn from_crate(krate: &Crate) -> PublicApi {
        let crate_name = krate
            .index
            .get(&krate.root)
            .and_then(|root| root.name.clone())
            .unwrap_or_default();
        let mut walker = Walker {
            krate,
            found: BTreeMap::new(),
            external: BTreeMap::new(),
            visited: HashSet::new(),
        };
        walker.module(&krate.root, &crate_name, 0);

        let mut canonical: HashMap<Id, String> = HashMap::new();
        canonical.insert(krate.root, crate_name.clone());
        for (path, id) in &walker.found {
            match canonical.get(id) {
                Some(existing) if !better(path, existing) => {}
                _ => {
                    canonical.insert(*id, path.clone());
                }
            }
        }
        let r = Renderer {
            krate,
            public: &canonical,
        };
        let mut b = Builder {
            r: &r,
            items: BTreeMap::new(),
        };
        for (path, id) in &walker.found {
            if let Some(item) = krate.index.get(id) {
                b.item(path, item);
            }
        }
        for (path, source) in &walker.external {
            b.insert(
                path.clone(),
                ApiItem::new(ItemKind::ReExport, format!("pub use {source}")),
            );
        }
        let mut aliases: BTreeMap<String, String> = walker
            .found
            .iter()
            .filter_map(|(path, id)| Some((path.clone(), canonical.get(id)?.clone())))
            .collect();
        // Where this crate's items are defined, which signatures use for the ones with
        // no public path: in a later version such an item may have one.
        for (id, summary) in &krate.paths {
            if summary.crate_id == 0 {
                let defined = summary.path.join("::");
                let named = canonical
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| defined.clone());
                aliases.entry(defined).or_insert(named);
            }
        }
        PublicApi {
            crate_name,
            crate_version: krate.crate_version.clone(),
            items: b.items,
            aliases,
        }
    }
}

struct Builder<'r, 'a> {
    r: &'r Renderer<'a>,
    items: BTreeMap<ItemPath, ApiItem>,
}

impl<'a> Builder<'_, 'a> {
    fn insert(&mut self, path: String, item: ApiItem) {
        self.items.entry(ItemPath(path)).or_insert(item);
    }

    fn get(&self, id: &Id) -> Option<&'a Item> {
        let krate: &'a Crate = self.r.krate;
        krate.index.get(id)
    }

    fn item(&mut self, path: &str, item: &Item) {
        let r = self.r;
        // The name it is public under (`pub use a::S as T` makes a `struct T`).
        let name = path.rsplit("::").next().unwrap_or_default().to_string();
        match &item.inner {
            ItemEnum::Module(_) => self.insert(
                path.into(),
                ApiItem::new(ItemKind::Module, format!("mod {name}")),
            ),
            ItemEnum::Struct(s) => {
                let g = r.generics(&s.generics);
                let ne = non_exhaustive(item);
                let (body, fields, private) = match &s.kind {
                    StructKind::Unit => (";".to_string(), Vec::new(), false),
                    StructKind::Tuple(fields) => {
                        let private = fields.iter().any(|f| f.is_none());
                        let named: Vec<(String, Id)> = fields
                            .iter()
                            .enumerate()
                            .filter_map(|(i, f)| f.map(|f| (i.to_string(), f)))
                            .collect();
                        ("(..);".to_string(), named, private)
                    }
                    StructKind::Plain {
                        fields,
                        has_stripped_fields,
                    } => {
                        let named = fields
                            .iter()
                            .filter_map(|f| {
                                self.get(f).and_then(|i| i.name.clone()).map(|n| (n, *f))
                            })
                            .collect();
                        (" { .. }".to_string(), named, *has_stripped_fields)
                    }
                };
                let mut private = private;
                let fields: Vec<(String, Id)> = fields
                    .into_iter()
                    .filter(|(_, f)| match self.get(f) {
                        Some(i) if !is_hidden(i) && is_public(i) => true,
                        _ => {
                            private = true;
                            false
                        }
                    })
                    .collect();
                let sig = format!(
                    "{}struct {name}{}{}{body}",
                    if ne { "#[non_exhaustive] " } else { "" },
                    g.params_text(),
                    g.where_text()
                );
                let mut api = ApiItem::new(ItemKind::Struct, sig);
                api.generics = Some(g);
                api.non_exhaustive = ne;
                api.has_private_fields = private;
                self.insert(path.into(), api);
                self.fields(path, &fields);
                self.impls(path, &s.impls);
            }
            ItemEnum::Union(u) => {
                let g = r.generics(&u.generics);
                let mut private = u.has_stripped_fields;
                let fields: Vec<(String, Id)> = u
                    .fields
                    .iter()
                    .filter_map(|f| {
                        let i = self.get(f)?;
                        if is_hidden(i) || !is_public(i) {
                            private = true;
                            return None;
                        }
                        Some((i.name.clone()?, *f))
                    })
                    .collect();
                let sig = format!("union {name}{}{} {{ .. }}", g.params_text(), g.where_text());
                let mut api = ApiItem::new(ItemKind::Union, sig);
                api.generics = Some(g);
                api.has_private_fields = private;
                self.insert(path.into(), api);
                self.fields(path, &fields);
                self.impls(path, &u.impls);
            }
            ItemEnum::Enum(e) => {
                let g = r.generics(&e.generics);
                let ne = non_exhaustive(item);
                let sig = format!(
                    "{}enum {name}{}{} {{ .. }}",
                    if ne { "#[non_exhaustive] " } else { "" },
                    g.params_text(),
                    g.where_text()
                );
                let mut api = ApiItem::new(ItemKind::Enum, sig);
                api.generics = Some(g);
                api.non_exhaustive = ne;
                self.insert(path.into(), api);
                for v in &e.variants {
                    if let Some(vi) = self.get(v)
                        && !is_hidden(vi)
                    {
                        let vpath = format!("{path}::{}", vi.name.clone().unwrap_or_default());
                        self.variant(&vpath, vi, Some(path));
                    }
                }
                self.impls(path, &e.impls);
            }
            ItemEnum::Variant(_) => self.variant(path, item, None),
            ItemEnum::Function(f) => {
                let sig = self.function(&name, f);
                let mut api = ApiItem::new(ItemKind::Function, sig.0);
                api.function = Some(sig.1);
                self.insert(path.into(), api);
            }
            ItemEnum::Trait(t) => {
                let g = r.generics(&t.generics);
                let mut sig = format!(
                    "{}{}trait {name}{}",
                    if t.is_unsafe { "unsafe " } else { "" },
                    if t.is_auto { "auto " } else { "" },
                    g.params_text()
                );
                if !t.bounds.is_empty() {
                    let mut supers: Vec<String> = t.bounds.iter().map(|b| r.bound(b)).collect();
                    supers.sort();
                    sig.push_str(": ");
                    sig.push_str(&supers.join(" + "));
                }
                sig.push_str(&g.where_text());
                let mut api = ApiItem::new(ItemKind::Trait, sig);
                api.generics = Some(g);
                api.dyn_compatible = Some(t.is_dyn_compatible);
                self.insert(path.into(), api);
                for id in &t.items {
                    if let Some(ti) = self.get(id)
                        && !is_hidden(ti)
                    {
                        self.trait_item(path, ti);
                    }
                }
                // Impls of this trait for types that are not this crate's (those are
                // recorded with each type).
                for id in &t.implementations {
                    let Some(ItemEnum::Impl(imp)) = self.get(id).map(|i| &i.inner) else {
                        continue;
                    };
                    let local_type = matches!(&imp.for_, Type::ResolvedPath(p)
                        if self.get(&p.id).is_some_and(|i| i.crate_id == 0));
                    if local_type || imp.blanket_impl.is_some() || imp.is_negative {
                        continue;
                    }
                    let for_ = r.ty(&imp.for_);
                    self.impl_item(&for_, None, imp);
                }
            }
            ItemEnum::TraitAlias(t) => {
                let g = r.generics(&t.generics);
                let sig = format!(
                    "trait {name}{} = {}{}",
                    g.params_text(),
                    r.bounds(&t.params),
                    g.where_text()
                );
                let mut api = ApiItem::new(ItemKind::TraitAlias, sig);
                api.generics = Some(g);
                self.insert(path.into(), api);
            }
            ItemEnum::TypeAlias(t) => {
                let g = r.generics(&t.generics);
                let sig = format!(
                    "type {name}{}{} = {}",
                    g.params_text(),
                    g.where_text(),
                    r.ty(&t.type_)
                );
                let mut api = ApiItem::new(ItemKind::TypeAlias, sig);
                api.generics = Some(g);
                self.insert(path.into(), api);
            }
            ItemEnum::Constant { type_, .. } => self.insert(
                path.into(),
                ApiItem::new(ItemKind::Constant, format!("const {name}: {}", r.ty(type_))),
            ),
            ItemEnum::Static(s) => self.insert(
                path.into(),
                ApiItem::new(
                    ItemKind::Static,
                    format!(
                        "{}static {}{name}: {}",
                        if s.is_unsafe { "unsafe " } else { "" },
                        if s.is_mutable { "mut " } else { "" },
                        r.ty(&s.type_)
                    ),
                ),
            ),
            ItemEnum::Macro(text) => {
                self.insert(
                    path.into(),
                    ApiItem::new(ItemKind::Macro, macro_matchers(text)),
                );
            }
            ItemEnum::ProcMacro(p) => {
                let sig = match p.kind {
                    MacroKind::Bang => format!("proc macro {name}!"),
                    MacroKind::Attr => format!("proc macro #[{name}]"),
                    MacroKind::Derive => {
                        format!(
                            "proc macro #[derive({name})] helpers({})",
                            p.helpers.join(", ")
                        )
                    }
                };
                self.insert(path.into(), ApiItem::new(ItemKind::Macro, sig));
            }
            ItemEnum::ExternType => self.insert(
                path.into(),
                ApiItem::new(ItemKind::ExternType, format!("extern type {name}")),
            ),
            ItemEnum::AssocConst { .. } | ItemEnum::AssocType { .. } => {}
            ItemEnum::StructField(t) => self.insert(
                path.into(),
                ApiItem::new(ItemKind::Field, format!("{name}: {}", r.ty(t))),
            ),
            ItemEnum::Use(_)
            | ItemEnum::Impl(_)
            | ItemEnum::ExternCrate { .. }
            | ItemEnum::Primitive(_) => {}
        }
    }

    fn function(&self, name: &str, f: &rustdoc_types::Function) -> (String, FnSig) {
        let r = self.r;
        let sig = FnSig {
            qualifiers: r.header(&f.header),
            generics: r.generics(&f.generics),
            params: r.params(&f.sig),
            output: r.output(&f.sig),
        };
        let mut text = format!(
            "{}fn {name}{}({})",
            sig.qualifiers,
            sig.generics.params_text(),
            sig.params.join(", ")
        );
        if sig.output != "()" {
            text.push_str(" -> ");
            text.push_str(&sig.output);
        }
        text.push_str(&sig.generics.where_text());
        (text, sig)
    }

    fn fields(&mut self, owner: &str, fields: &[(String, Id)]) {
        for (name, id) in fields {
            let Some(ItemEnum::StructField(t)) = self.get(id).map(|i| &i.inner) else {
                continue;
            };
            let mut api = ApiItem::new(ItemKind::Field, format!("{name}: {}", self.r.ty(t)));
            api.owner = Some(ItemPath(owner.to_string()));
            self.insert(format!("{owner}::{name}"), api);
        }
    }

    fn variant(&mut self, path: &str, item: &Item, owner: Option<&str>) {
        let ItemEnum::Variant(v) = &item.inner else {
            return;
        };
        let name = item.name.clone().unwrap_or_default();
        let ne = non_exhaustive(item);
        let (body, fields, mut private) = match &v.kind {
            VariantKind::Plain => (String::new(), Vec::new(), false),
            VariantKind::Tuple(fields) => (
                "(..)".to_string(),
                fields
                    .iter()
                    .enumerate()
                    .filter_map(|(i, f)| f.map(|f| (i.to_string(), f)))
                    .collect(),
                fields.iter().any(|f| f.is_none()),
            ),
            VariantKind::Struct {
                fields,
                has_stripped_fields,
            } => (
                " { .. }".to_string(),
                fields
                    .iter()
                    .filter_map(|f| self.get(f).and_then(|i| i.name.clone()).map(|n| (n, *f)))
                    .collect(),
                *has_stripped_fields,
            ),
        };
        let fields: Vec<(String, Id)> = fields
            .into_iter()
            .filter(|(_, f)| match self.get(f) {
                Some(i) if !is_hidden(i) => true,
                _ => {
                    private = true;
                    false
                }
            })
            .collect();
        let discriminant = v
            .discriminant
            .as_ref()
            .map(|d| format!(" = {}", d.value))
            .unwrap_or_default();
        let sig = format!(
            "{}{name}{body}{discriminant}",
            if ne { "#[non_exhaustive] " } else { "" }
        );
        let mut api = ApiItem::new(ItemKind::Variant, sig);
        api.owner = owner.map(|o| ItemPath(o.to_string()));
        api.non_exhaustive = ne;
        api.has_private_fields = private;
        self.insert(path.to_string(), api);
        self.fields(path, &fields);
    }

    fn trait_item(&mut self, trait_path: &str, item: &Item) {
        let r = self.r;
        let name = item.name.clone().unwrap_or_default();
        let path = format!("{trait_path}::{name}");
        let mut api = match &item.inner {
            ItemEnum::Function(f) => {
                let (sig, parts) = self.function(&name, f);
                let sig = if f.has_body { sig + " { .. }" } else { sig };
                let mut api = ApiItem::new(ItemKind::TraitMethod, sig);
                api.function = Some(parts);
                api.has_default = f.has_body;
                api
            }
            ItemEnum::AssocType {
                generics,
                bounds,
                type_,
            } => {
                let g = r.generics(generics);
                let mut sig = format!("type {name}{}", g.params_text());
                if !bounds.is_empty() {
                    let mut b: Vec<String> = bounds.iter().map(|b| r.bound(b)).collect();
                    b.sort();
                    sig.push_str(": ");
                    sig.push_str(&b.join(" + "));
                }
                sig.push_str(&g.where_text());
                let mut api = ApiItem::new(ItemKind::AssocType, sig);
                api.generics = Some(g);
                api.has_default = type_.is_some();
                api
            }
            ItemEnum::AssocConst { type_, value } => {
                let mut api = ApiItem::new(
                    ItemKind::AssocConst,
                    format!("const {name}: {}", r.ty(type_)),
                );
                api.has_default = value.is_some();
                api
            }
            _ => return,
        };
        api.owner = Some(ItemPath(trait_path.to_string()));
        self.insert(path, api);
    }

    /// A type's impls: inherent ones give its public methods and constants, trait ones
    /// give `<Type as Trait>` items.
    fn impls(&mut self, type_path: &str, impls: &[Id]) {
        for id in impls {
            let Some(item) = self.get(id) else { continue };
            let ItemEnum::Impl(imp) = &item.inner else {
                continue;
            };
            if is_hidden(item) {
                continue;
            }
            match &imp.trait_ {
                None => {
                    let g = self.r.generics(&imp.generics);
                    let context = if g.params.is_empty() && g.predicates.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (in impl{} {}{})",
                            g.params_text(),
                            self.r.ty(&imp.for_),
                            g.where_text()
                        )
                    };
                    for mid in &imp.items {
                        let Some(m) = self.get(mid) else { continue };
                        if !is_public(m) || is_hidden(m) {
                            continue;
                        }
                        let name = m.name.clone().unwrap_or_default();
                        let mut api = match &m.inner {
                            ItemEnum::Function(f) => {
                                let (sig, mut parts) = self.function(&name, f);
                                // The impl's bounds are the method's too.
                                parts
                                    .generics
                                    .predicates
                                    .extend(g.predicates.iter().cloned());
                                let mut api = ApiItem::new(ItemKind::Method, sig + &context);
                                api.function = Some(parts);
                                api
                            }
                            ItemEnum::AssocConst { type_, .. } => ApiItem::new(
                                ItemKind::AssocConst,
                                format!("const {name}: {}{context}", self.r.ty(type_)),
                            ),
                            ItemEnum::AssocType { type_: Some(t), .. } => ApiItem::new(
                                ItemKind::AssocType,
                                format!("type {name} = {}{context}", self.r.ty(t)),
                            ),
                            _ => continue,
                        };
                        api.owner = Some(ItemPath(type_path.to_string()));
                        self.insert(format!("{type_path}::{name}"), api);
                    }
                }
                Some(_) if imp.is_negative => {}
                Some(tr) => {
                    // A trait of this crate that is not public cannot be named by users.
                    if let Some(ti) = self.get(&tr.id)
                        && ti.crate_id == 0
                        && !self.r.public.contains_key(&tr.id)
                    {
                        continue;
                    }
                    // Blanket impls of other crates' traits (`impl<T> From<T> for T`,
                    // `Into`, `Any`, …; the orphan rule makes them other crates' own) hold
                    // for every type alike: they are those crates' API (and toolchain's),
                    // and follow from the impls recorded here.
                    let foreign_trait = self
                        .r
                        .krate
                        .paths
                        .get(&tr.id)
                        .is_none_or(|t| t.crate_id != 0);
                    if imp.blanket_impl.is_some() && foreign_trait {
                        continue;
                    }
                    // Unstable auto traits (`Freeze`, `UnsafeUnpin`) cannot be named on
                    // stable Rust: no user can rely on them.
                    if imp.is_synthetic
                        && !STABLE_AUTO_TRAITS.contains(&self.r.id_path(&tr.id, &tr.path).as_str())
                    {
                        continue;
                    }
                    self.impl_item(type_path, Some(type_path), imp);
                }
            }
        }
    }

    fn impl_item(&mut self, type_key: &str, owner: Option<&str>, imp: &rustdoc_types::Impl) {
        let r = self.r;
        let Some(tr) = &imp.trait_ else { return };
        let trait_text = r.path(tr);
        let g = r.generics(&imp.generics);
        let sig = format!(
            "{}impl{} {trait_text} for {}{}",
            if imp.is_unsafe { "unsafe " } else { "" },
            g.params_text(),
            r.ty(imp.blanket_impl.as_ref().unwrap_or(&imp.for_)),
            g.where_text()
        );
        let mut key = format!("<{type_key} as {trait_text}>");
        if self.items.contains_key(&ItemPath(key.clone())) {
            key = format!("<{} as {trait_text}>", r.ty(&imp.for_));
        }
        let mut api = ApiItem::new(ItemKind::Impl, sig);
        api.generics = Some(g);
        api.owner = owner.map(|o| ItemPath(o.to_string()));
        self.insert(key, api);
    }
}
