//! Fixture crate pairs (`tests/fixtures/<case>/{old,new}`), documented as JSON by the
//! host's nightly rustdoc, then diffed.

use std::path::{Path, PathBuf};
use std::process::Command;

use docbuild_api::{ApiDiff, Bump, ChangeKind, PublicApi, diff, is_enough, required_version};
use semver::Version;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The fixture's rustdoc JSON, made in a copy of it (so nothing is written below
/// `tests/`), with a target directory of its own (so fixtures build in parallel).
fn rustdoc_json(case: &str, side: &str) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(case)
        .join(side);
    let work = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("api-fixtures")
        .join(case)
        .join(side);
    let package = work.join("package");
    let _ = std::fs::remove_dir_all(&package);
    copy_dir(&source, &package);
    let target = work.join("target");
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly")
        .args(["rustdoc", "--offline", "--quiet", "--manifest-path"])
        .arg(package.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .args(["--", "-Z", "unstable-options", "--output-format", "json"]);
    for var in [
        "RUSTC",
        "RUSTDOC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_ENCODED_RUSTDOCFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd
        .output()
        .expect("cargo +nightly rustdoc runs (a nightly toolchain is needed)");
    assert!(
        out.status.success(),
        "cargo +nightly rustdoc failed for {case}/{side}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target.join("doc").join(format!("{case}.json"))
}

fn api(case: &str, side: &str) -> PublicApi {
    let path = rustdoc_json(case, side);
    docbuild_api::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Pair {
    old: PublicApi,
    new: PublicApi,
    diff: ApiDiff,
}

impl Pair {
    fn old_version(&self) -> Version {
        Version::parse(self.old.crate_version.as_deref().unwrap()).unwrap()
    }

    fn new_version(&self) -> Version {
        Version::parse(self.new.crate_version.as_deref().unwrap()).unwrap()
    }

    fn summary(&self) -> String {
        self.diff.summary(&self.old_version(), &self.new_version())
    }

    /// The one change at `path`.
    fn change(&self, path: &str) -> &docbuild_api::Change {
        let found: Vec<_> = self
            .diff
            .changes
            .iter()
            .filter(|c| c.path.as_str() == path)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one change at {path}: {:#?}",
            self.diff.changes
        );
        found[0]
    }
}

fn pair(case: &str) -> Pair {
    let (old, new) = std::thread::scope(|s| {
        let old = s.spawn(|| api(case, "old"));
        let new = s.spawn(|| api(case, "new"));
        (old.join().unwrap(), new.join().unwrap())
    });
    let diff = diff(&old, &new);
    Pair { old, new, diff }
}

#[test]
fn removed_function_is_major() {
    let p = pair("removed_fn");
    assert!(p.old.items.contains_key(&path("removed_fn::foo")));
    assert!(p.new.items.contains_key(&path("removed_fn::keep")));
    let c = p.change("removed_fn::foo");
    assert_eq!(c.kind, ChangeKind::Removed);
    assert_eq!(c.bump, Bump::Major);
    assert_eq!(p.diff.changes.len(), 1, "{:#?}", p.diff.changes);
    assert_eq!(p.diff.needed, Bump::Major);
    assert_eq!(
        required_version(&p.old_version(), p.diff.needed),
        Version::new(0, 3, 0)
    );
    assert!(!is_enough(
        &p.old_version(),
        &p.new_version(),
        p.diff.needed
    ));
    assert_eq!(
        p.summary(),
        "public API: 0 added, 1 removed, 0 changed; needs 0.3.0, version is 0.2.1"
    );
    let json = serde_json::to_value(&p.diff).unwrap();
    assert_eq!(json["needed"], "major");
    assert_eq!(json["changes"][0]["kind"], "removed");
    assert_eq!(json["changes"][0]["path"], "removed_fn::foo");
    assert_eq!(json["changes"][0]["bump"], "major");
    assert!(
        json["changes"][0]["what"]
            .as_str()
            .unwrap()
            .contains("fn removed_fn::foo")
    );
}

fn path(s: &str) -> docbuild_api::ItemPath {
    docbuild_api::ItemPath(s.to_string())
}

#[test]
fn new_required_trait_method_is_major() {
    let p = pair("trait_required");
    let c = p.change("trait_required::Shape::perimeter");
    assert_eq!(c.kind, ChangeKind::Added);
    assert_eq!(c.bump, Bump::Major, "{}", c.what);
    assert!(c.what.contains("required"), "{}", c.what);
    assert_eq!(p.diff.needed, Bump::Major);
    // The provided method is known as such.
    assert!(p.new.items[&path("trait_required::Shape::name")].has_default);
    assert!(!p.new.items[&path("trait_required::Shape::area")].has_default);
}

#[test]
fn field_added_to_exhaustive_struct_with_public_fields_is_major() {
    let p = pair("struct_field");
    let c = p.change("struct_field::Point::y");
    assert_eq!(c.kind, ChangeKind::Added);
    assert_eq!(c.bump, Bump::Major, "{}", c.what);
    assert_eq!(p.diff.needed, Bump::Major);
    assert_eq!(p.diff.changes.len(), 1, "{:#?}", p.diff.changes);
}

#[test]
fn added_function_is_minor() {
    let p = pair("added_fn");
    let c = p.change("added_fn::second");
    assert_eq!(c.kind, ChangeKind::Added);
    assert_eq!(c.bump, Bump::Minor);
    assert_eq!(p.diff.changes.len(), 1, "{:#?}", p.diff.changes);
    assert_eq!(p.diff.needed, Bump::Minor);
    assert_eq!(
        required_version(&p.old_version(), p.diff.needed),
        Version::new(0, 2, 1)
    );
    assert!(is_enough(&p.old_version(), &p.new_version(), p.diff.needed));
    assert_eq!(
        p.summary(),
        "public API: 1 added, 0 removed, 0 changed; needs 0.2.1, version is 0.2.1"
    );
    assert_eq!(
        p.new.items[&path("added_fn::second")].signature,
        "fn second(u8) -> u8"
    );
}

#[test]
fn doc_only_change_is_no_change() {
    let p = pair("doc_only");
    assert!(p.old.items.contains_key(&path("doc_only::add_one")));
    assert!(p.old.items.contains_key(&path("doc_only::Pair::0")));
    assert_eq!(p.diff.changes, Vec::new());
    assert_eq!(p.diff.needed, Bump::None);
}

#[test]
fn changed_return_type_is_major() {
    let p = pair("return_type");
    let c = p.change("return_type::count");
    assert_eq!(c.kind, ChangeKind::Changed);
    assert_eq!(c.bump, Bump::Major);
    assert!(c.what.contains("return type u32 → u64"), "{}", c.what);
    assert_eq!(p.diff.needed, Bump::Major);
}

#[test]
fn variant_added_to_non_exhaustive_enum_is_minor() {
    let p = pair("non_exhaustive_variant");
    let c = p.change("non_exhaustive_variant::Color::Blue");
    assert_eq!(c.kind, ChangeKind::Added);
    assert_eq!(c.bump, Bump::Minor, "{}", c.what);
    // The new variant's field is part of the variant's addition, not a change of its own.
    assert_eq!(p.diff.changes.len(), 1, "{:#?}", p.diff.changes);
    assert_eq!(p.diff.needed, Bump::Minor);
    assert!(p.old.items[&path("non_exhaustive_variant::Color")].non_exhaustive);
}

#[test]
fn moved_item_reexported_at_the_same_path_is_no_change() {
    let p = pair("moved_reexport");
    assert!(p.new.items.contains_key(&path("moved_reexport::Token")));
    assert!(p.new.items.contains_key(&path("moved_reexport::make")));
    // The signature names the type by its public path, wherever it is defined.
    assert_eq!(
        p.new.items[&path("moved_reexport::make")].signature,
        "fn make(u32) -> moved_reexport::Token"
    );
    assert_eq!(p.diff.changes, Vec::new());
    assert_eq!(p.diff.needed, Bump::None);
}

#[test]
fn losing_send_is_major() {
    let p = pair("send_lost");
    let c = p.change("<send_lost::Handle as core::marker::Send>");
    assert_eq!(c.kind, ChangeKind::Removed);
    assert_eq!(c.bump, Bump::Major);
    assert_eq!(p.diff.needed, Bump::Major);
    // The inherent method is part of the API, and unchanged.
    assert!(p.new.items.contains_key(&path("send_lost::Handle::count")));
    assert!(
        p.diff
            .changes
            .iter()
            .all(|c| c.path.as_str() != "send_lost::Handle::count")
    );
}

#[test]
fn item_given_a_shorter_path_keeps_its_signatures() {
    let p = pair("shorter_reexport");
    // Signatures name the trait by its shortest public path: new in the new version.
    assert_eq!(
        p.new.items[&path("shorter_reexport::engine::start")].signature,
        "fn start<E>(&E) where E: shorter_reexport::Engine"
    );
    let c = p.change("shorter_reexport::Engine");
    assert_eq!(c.kind, ChangeKind::Added);
    // Only the new path is a change: the trait's items and impls, the function's
    // bounds are the same.
    assert_eq!(p.diff.changes.len(), 1, "{:#?}", p.diff.changes);
    assert_eq!(p.diff.needed, Bump::Minor);
}

#[test]
fn doc_hidden_items_are_not_public_api() {
    let p = pair("hidden");
    assert!(p.old.items.contains_key(&path("hidden::shown")));
    assert!(!p.old.items.contains_key(&path("hidden::internal")));
    assert!(!p.old.items.contains_key(&path("hidden::Config::__private")));
    // A hidden field makes the struct one with private fields.
    assert!(p.old.items[&path("hidden::Config")].has_private_fields);
    assert_eq!(p.diff.changes, Vec::new());
    assert_eq!(p.diff.needed, Bump::None);
}

#[test]
fn signatures_of_every_kind_and_their_changes() {
    let p = pair("kinds");
    let sig = |path: &str| -> &str { &p.old.items[&self::path(path)].signature };
    // Glob re-exports give the module's items a second path; signatures name them by the
    // shorter one.
    assert_eq!(
        sig("kinds::Shape"),
        "trait Shape: core::clone::Clone + core::marker::Send"
    );
    assert_eq!(sig("kinds::shapes::Shape"), sig("kinds::Shape"));
    assert_eq!(sig("kinds::Shape::Unit"), "type Unit");
    assert_eq!(sig("kinds::Shape::SIDES"), "const SIDES: u32");
    assert_eq!(
        sig("kinds::Shape::scale"),
        "fn scale(&mut self, f64) { .. }"
    );
    assert_eq!(sig("kinds::Square"), "struct Square(..);");
    assert_eq!(sig("kinds::Square::0"), "0: f64");
    assert_eq!(sig("kinds::Kind::C::x"), "x: i32");
    assert_eq!(
        sig("kinds::Wrapper::get"),
        "async fn get<'a>(&'a self) -> &'a T where T: core::marker::Sync \
         (in impl<T> kinds::Wrapper<T> where T: core::clone::Clone)"
    );
    assert_eq!(
        sig("kinds::Wrapper::new"),
        "const fn new(T) -> Self (in impl<T> kinds::Wrapper<T> where T: core::clone::Clone)"
    );
    assert_eq!(
        sig("kinds::apply"),
        "fn apply<F>(F, &[u8]) -> impl core::iter::traits::iterator::Iterator<Item = u8> + '_ \
         where F: core::marker::Copy, F: core::ops::function::Fn(u8) -> u8"
    );
    assert_eq!(
        sig("kinds::dynamic"),
        "fn dynamic(alloc::boxed::Box<dyn core::error::Error + core::marker::Send + \
         core::marker::Sync>) -> core::option::Option<fn(u32) -> u32>"
    );
    assert_eq!(
        sig("kinds::array"),
        "fn array([u8; 4], &mut [u16]) -> (u8,)"
    );
    assert_eq!(sig("kinds::Pair"), "type Pair<T> = (T, T)");
    assert_eq!(sig("kinds::LIMIT"), "const LIMIT: usize");
    assert_eq!(sig("kinds::COUNTER"), "static mut COUNTER: u32");
    assert_eq!(sig("kinds::Bits::u"), "u: u32");
    assert_eq!(
        sig("kinds::square"),
        "macro_rules! square { ($e:expr) => { ... }; }"
    );
    assert!(
        p.old
            .items
            .contains_key(&path("<kinds::Square as kinds::Shape>"))
    );
    assert!(
        p.old
            .items
            .contains_key(&path("<kinds::Square as core::clone::Clone>"))
    );
    // This crate's blanket impls are part of its API; the standard library's are not.
    assert_eq!(
        p.old.items[&path("<kinds::Square as kinds::Describe>")].signature,
        "impl<T> kinds::Describe for T where T: kinds::Shape"
    );
    assert!(
        !p.old
            .items
            .contains_key(&path("<kinds::Square as core::convert::Into<U>>"))
    );

    let bump = |path: &str| p.change(path).bump;
    assert_eq!(bump("kinds::Shape"), Bump::Major, "a supertrait added");
    assert_eq!(bump("kinds::Wrapper::new"), Bump::Major, "no longer const");
    assert_eq!(bump("kinds::apply"), Bump::Minor, "a bound removed");
    assert_eq!(bump("kinds::Kind"), Bump::Major, "now #[non_exhaustive]");
    assert_eq!(bump("kinds::COUNTER"), Bump::Major, "no longer mut");
    let added = p.change("<kinds::Square as core::default::Default>");
    assert_eq!((added.kind, added.bump), (ChangeKind::Added, Bump::Minor));
    assert_eq!(
        p.diff.changes.len(),
        8,
        "the five above, the trait at its second path, the impl at both of the struct's \
         paths: {:#?}",
        p.diff.changes
    );
    assert_eq!(p.diff.needed, Bump::Major);
}

#[test]
fn less_visible_items_are_removed() {
    let p = pair("visibility");
    // A glob re-export of an enum's variants gives them a path of their own.
    assert!(p.old.items.contains_key(&path("visibility::On")));
    for gone in ["visibility::open", "visibility::extra"] {
        let c = p.change(gone);
        assert_eq!(
            (c.kind, c.bump),
            (ChangeKind::Removed, Bump::Major),
            "{gone}"
        );
    }
    // The module's function goes with it, listed too (a module does not own its items).
    assert_eq!(
        p.change("visibility::extra::helper").kind,
        ChangeKind::Removed
    );
    assert_eq!(p.diff.changes.len(), 3, "{:#?}", p.diff.changes);
    assert_eq!(
        p.summary(),
        "public API: 0 added, 3 removed, 0 changed; needs 2.0.0, version is 1.3.0"
    );
    assert!(!is_enough(
        &p.old_version(),
        &p.new_version(),
        p.diff.needed
    ));
}

#[test]
fn items_with_pages_are_found_at_the_paths_rustdoc_documents_them() {
    let json = std::fs::read(rustdoc_json("kinds", "new")).unwrap();
    let krate = docbuild_api::parse_crate(&json).unwrap();
    let items = docbuild_api::search::page_items(&krate);
    let page = |path: &str| {
        items
            .iter()
            .find(|i| i.path == path)
            .map(|i| (i.kind, i.page.as_str()))
            .unwrap_or_else(|| panic!("{path} in {items:#?}"))
    };
    assert_eq!(page("kinds"), ("mod", "kinds/index.html"));
    assert_eq!(page("kinds::shapes"), ("mod", "kinds/shapes/index.html"));
    assert_eq!(
        page("kinds::shapes::Square"),
        ("struct", "kinds/shapes/struct.Square.html")
    );
    assert_eq!(
        page("kinds::shapes::Shape"),
        ("trait", "kinds/shapes/trait.Shape.html")
    );
    assert_eq!(page("kinds::Kind"), ("enum", "kinds/enum.Kind.html"));
    assert_eq!(page("kinds::apply"), ("fn", "kinds/fn.apply.html"));
    // Only this crate's items: none of core's or std's.
    assert!(
        items.iter().all(|i| i.path.starts_with("kinds")),
        "{items:#?}"
    );
}
