//! Canonical text of types, bounds and generics.
//!
//! Every path is written as the item's canonical path, never as the source spelled it:
//! this crate's items by their public path (the shortest), other crates' items by the
//! path rustdoc records for them. So `Option<u32>` and `std::option::Option<u32>` render
//! alike, and an item moved between private modules but re-exported at the same place
//! renders as before.

use std::collections::{BTreeSet, HashMap};

use rustdoc_types::{
    Abi, AssocItemConstraint, AssocItemConstraintKind, Crate, FunctionHeader, FunctionSignature,
    GenericArg, GenericArgs, GenericBound, GenericParamDef, GenericParamDefKind, Generics, Id,
    Path, PolyTrait, PreciseCapturingArg, Term, TraitBoundModifier, Type, WherePredicate,
};
use serde::Serialize;

/// Generics split into their parameters (no bounds) and their bounds, each bound one
/// atomic predicate (`T: Clone`), wherever the source wrote it (inline or in `where`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GenericsSig {
    /// `'a`, `T`, `T = u32`, `const N: usize`, in declaration order.
    pub params: Vec<String>,
    /// `T: Clone`, `'a: 'b`, `<T as Iterator>::Item: Send`, sorted.
    pub predicates: BTreeSet<String>,
}

impl GenericsSig {
    /// `<'a, T>`, or nothing.
    pub fn params_text(&self) -> String {
        if self.params.is_empty() {
            String::new()
        } else {
            format!("<{}>", self.params.join(", "))
        }
    }

    /// ` where T: Clone, 'a: 'b`, or nothing.
    pub fn where_text(&self) -> String {
        if self.predicates.is_empty() {
            String::new()
        } else {
            let p: Vec<&str> = self.predicates.iter().map(String::as_str).collect();
            format!(" where {}", p.join(", "))
        }
    }
}

pub(crate) struct Renderer<'a> {
    pub krate: &'a Crate,
    /// This crate's items by their canonical public path.
    pub public: &'a HashMap<Id, String>,
}

impl Renderer<'_> {
    /// The canonical path of an item: its public path in this crate, else rustdoc's path
    /// for it, else the path as written.
    pub fn id_path(&self, id: &Id, written: &str) -> String {
        if let Some(p) = self.public.get(id) {
            return p.clone();
        }
        if let Some(summary) = self.krate.paths.get(id) {
            return summary.path.join("::");
        }
        written.to_string()
    }

    pub fn path(&self, p: &Path) -> String {
        let mut s = self.id_path(&p.id, &p.path);
        // The standard library's `Result` aliases, written out, so that
        // `io::Result<T>` and `Result<T, io::Error>` read alike.
        let error = match s.as_str() {
            "std::io::error::Result" => Some("std::io::error::Error"),
            "core::fmt::Result" => Some("core::fmt::Error"),
            _ => None,
        };
        if let Some(error) = error {
            let ok = match p.args.as_deref() {
                Some(GenericArgs::AngleBracketed { args, .. }) if args.len() == 1 => {
                    self.generic_arg(&args[0])
                }
                _ => "()".to_string(),
            };
            return format!("core::result::Result<{ok}, {error}>");
        }
        if let Some(args) = &p.args {
            s.push_str(&self.generic_args(args));
        }
        s
    }

    pub fn generic_args(&self, args: &GenericArgs) -> String {
        match args {
            GenericArgs::AngleBracketed { args, constraints } => {
                let mut parts: Vec<String> = args.iter().map(|a| self.generic_arg(a)).collect();
                parts.extend(constraints.iter().map(|c| self.constraint(c)));
                if parts.is_empty() {
                    String::new()
                } else {
                    format!("<{}>", parts.join(", "))
                }
            }
            GenericArgs::Parenthesized { inputs, output } => {
                let inputs: Vec<String> = inputs.iter().map(|t| self.ty(t)).collect();
                let mut s = format!("({})", inputs.join(", "));
                if let Some(out) = output {
                    s.push_str(" -> ");
                    s.push_str(&self.ty(out));
                }
                s
            }
            GenericArgs::ReturnTypeNotation => "(..)".to_string(),
        }
    }

    fn generic_arg(&self, arg: &GenericArg) -> String {
        match arg {
            GenericArg::Lifetime(l) => l.clone(),
            GenericArg::Type(t) => self.ty(t),
            GenericArg::Const(c) => c.expr.clone(),
            GenericArg::Infer => "_".to_string(),
        }
    }

    fn constraint(&self, c: &AssocItemConstraint) -> String {
        let args = c
            .args
            .as_ref()
            .map(|a| self.generic_args(a))
            .unwrap_or_default();
        match &c.binding {
            AssocItemConstraintKind::Equality(term) => {
                format!("{}{args} = {}", c.name, self.term(term))
            }
            AssocItemConstraintKind::Constraint(bounds) => {
                format!("{}{args}: {}", c.name, self.bounds(bounds))
            }
        }
    }

    fn term(&self, t: &Term) -> String {
        match t {
            Term::Type(t) => self.ty(t),
            Term::Constant(c) => c.expr.clone(),
        }
    }

    pub fn ty(&self, t: &Type) -> String {
        match t {
            Type::ResolvedPath(p) => self.path(p),
            Type::DynTrait(d) => {
                let mut parts: Vec<String> = d.traits.iter().map(|p| self.poly_trait(p)).collect();
                if let Some(l) = &d.lifetime {
                    parts.push(l.clone());
                }
                format!("dyn {}", parts.join(" + "))
            }
            Type::Generic(g) => g.clone(),
            Type::Primitive(p) => p.clone(),
            Type::FunctionPointer(fp) => {
                let hrtb = self.hrtb(&fp.generic_params);
                format!(
                    "{hrtb}{}fn{}",
                    self.header(&fp.header),
                    self.fn_params_output(&fp.sig)
                )
            }
            Type::Tuple(ts) => {
                let parts: Vec<String> = ts.iter().map(|t| self.ty(t)).collect();
                if parts.len() == 1 {
                    format!("({},)", parts[0])
                } else {
                    format!("({})", parts.join(", "))
                }
            }
            Type::Slice(t) => format!("[{}]", self.ty(t)),
            Type::Array { type_, len } => format!("[{}; {len}]", self.ty(type_)),
            Type::Pat { type_, .. } => self.ty(type_),
            Type::ImplTrait(bounds) => format!("impl {}", self.bounds(bounds)),
            Type::Infer => "_".to_string(),
            Type::RawPointer { is_mutable, type_ } => format!(
                "*{} {}",
                if *is_mutable { "mut" } else { "const" },
                self.ty(type_)
            ),
            Type::BorrowedRef {
                lifetime,
                is_mutable,
                type_,
            } => {
                let mut s = "&".to_string();
                if let Some(l) = lifetime {
                    s.push_str(l);
                    s.push(' ');
                }
                if *is_mutable {
                    s.push_str("mut ");
                }
                s.push_str(&self.ty(type_));
                s
            }
            Type::QualifiedPath {
                name,
                args,
                self_type,
                trait_,
            } => {
                let args = args
                    .as_ref()
                    .map(|a| self.generic_args(a))
                    .unwrap_or_default();
                match trait_ {
                    Some(tr) if !tr.path.is_empty() => {
                        format!(
                            "<{} as {}>::{name}{args}",
                            self.ty(self_type),
                            self.path(tr)
                        )
                    }
                    _ => format!("{}::{name}{args}", self.ty(self_type)),
                }
            }
        }
    }

    fn poly_trait(&self, p: &PolyTrait) -> String {
        format!("{}{}", self.hrtb(&p.generic_params), self.path(&p.trait_))
    }

    fn hrtb(&self, params: &[GenericParamDef]) -> String {
        if params.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            format!("for<{}> ", names.join(", "))
        }
    }

    pub fn bound(&self, b: &GenericBound) -> String {
        match b {
            GenericBound::TraitBound {
                trait_,
                generic_params,
                modifier,
            } => {
                let m = match modifier {
                    TraitBoundModifier::None => "",
                    TraitBoundModifier::Maybe => "?",
                    TraitBoundModifier::MaybeConst => "~const ",
                };
                format!("{}{m}{}", self.hrtb(generic_params), self.path(trait_))
            }
            GenericBound::Outlives(l) => l.clone(),
            GenericBound::Use(args) => {
                let a: Vec<&str> = args
                    .iter()
                    .map(|a| match a {
                        PreciseCapturingArg::Lifetime(l) | PreciseCapturingArg::Param(l) => {
                            l.as_str()
                        }
                    })
                    .collect();
                format!("use<{}>", a.join(", "))
            }
        }
    }

    pub fn bounds(&self, bounds: &[GenericBound]) -> String {
        let parts: Vec<String> = bounds.iter().map(|b| self.bound(b)).collect();
        parts.join(" + ")
    }

    pub fn generics(&self, g: &Generics) -> GenericsSig {
        let mut sig = GenericsSig::default();
        for p in &g.params {
            match &p.kind {
                GenericParamDefKind::Lifetime { outlives } => {
                    sig.params.push(p.name.clone());
                    for o in outlives {
                        sig.predicates.insert(format!("{}: {o}", p.name));
                    }
                }
                GenericParamDefKind::Type {
                    bounds,
                    default,
                    is_synthetic,
                } => {
                    // `impl Trait` in argument position: shown as the argument's type.
                    if *is_synthetic {
                        continue;
                    }
                    match default {
                        Some(d) => sig.params.push(format!("{} = {}", p.name, self.ty(d))),
                        None => sig.params.push(p.name.clone()),
                    }
                    for b in bounds {
                        sig.predicates
                            .insert(format!("{}: {}", p.name, self.bound(b)));
                    }
                }
                GenericParamDefKind::Const { type_, default } => {
                    let mut s = format!("const {}: {}", p.name, self.ty(type_));
                    if let Some(d) = default {
                        s.push_str(" = ");
                        s.push_str(d);
                    }
                    sig.params.push(s);
                }
            }
        }
        for w in &g.where_predicates {
            match w {
                WherePredicate::BoundPredicate {
                    type_,
                    bounds,
                    generic_params,
                } => {
                    let lhs = format!("{}{}", self.hrtb(generic_params), self.ty(type_));
                    for b in bounds {
                        sig.predicates.insert(format!("{lhs}: {}", self.bound(b)));
                    }
                }
                WherePredicate::LifetimePredicate { lifetime, outlives } => {
                    for o in outlives {
                        sig.predicates.insert(format!("{lifetime}: {o}"));
                    }
                }
                WherePredicate::EqPredicate { lhs, rhs } => {
                    sig.predicates
                        .insert(format!("{} == {}", self.ty(lhs), self.term(rhs)));
                }
            }
        }
        sig
    }

    /// `const async unsafe extern "C" `: the qualifiers before `fn`.
    pub fn header(&self, h: &FunctionHeader) -> String {
        let mut s = String::new();
        if h.is_const {
            s.push_str("const ");
        }
        if h.is_async {
            s.push_str("async ");
        }
        if h.is_unsafe {
            s.push_str("unsafe ");
        }
        let abi = match &h.abi {
            Abi::Rust => None,
            Abi::C { unwind } => Some(("C", *unwind)),
            Abi::Cdecl { unwind } => Some(("cdecl", *unwind)),
            Abi::Stdcall { unwind } => Some(("stdcall", *unwind)),
            Abi::Fastcall { unwind } => Some(("fastcall", *unwind)),
            Abi::Aapcs { unwind } => Some(("aapcs", *unwind)),
            Abi::Win64 { unwind } => Some(("win64", *unwind)),
            Abi::SysV64 { unwind } => Some(("sysv64", *unwind)),
            Abi::System { unwind } => Some(("system", *unwind)),
            Abi::Other(o) => {
                s.push_str(&format!("extern {o} "));
                None
            }
        };
        if let Some((name, unwind)) = abi {
            let unwind = if unwind { "-unwind" } else { "" };
            s.push_str(&format!("extern \"{name}{unwind}\" "));
        }
        s
    }

    /// The parameters' types (names are not part of the API), `self` spelled as Rust does.
    pub fn params(&self, sig: &FunctionSignature) -> Vec<String> {
        let mut out: Vec<String> = sig
            .inputs
            .iter()
            .map(|(name, t)| {
                if name == "self" {
                    match t {
                        Type::Generic(g) if g == "Self" => return "self".to_string(),
                        Type::BorrowedRef {
                            lifetime,
                            is_mutable,
                            type_,
                        } if matches!(&**type_, Type::Generic(g) if g == "Self") => {
                            let mut s = "&".to_string();
                            if let Some(l) = lifetime {
                                s.push_str(l);
                                s.push(' ');
                            }
                            if *is_mutable {
                                s.push_str("mut ");
                            }
                            s.push_str("self");
                            return s;
                        }
                        _ => return format!("self: {}", self.ty(t)),
                    }
                }
                self.ty(t)
            })
            .collect();
        if sig.is_c_variadic {
            out.push("...".to_string());
        }
        out
    }

    pub fn output(&self, sig: &FunctionSignature) -> String {
        match &sig.output {
            Some(t) => self.ty(t),
            None => "()".to_string(),
        }
    }

    fn fn_params_output(&self, sig: &FunctionSignature) -> String {
        let mut s = format!("({})", self.params(sig).join(", "));
        if sig.output.is_some() {
            s.push_str(" -> ");
            s.push_str(&self.output(sig));
        }
        s
    }
}
