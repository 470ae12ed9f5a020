//! The build cache: dependencies compiled by one queue build, reused by later builds
//! as read-only layers under their target directory, never at the cost of isolation.
//!
//! **The rule.** Artifacts made while code of crate M ran (its build script, or M as
//! a proc macro, or M linked into one of those) may be used only by a build whose own
//! dependency graph contains M, the same version with the same features. A shared
//! target directory breaks it: any build script could rewrite another crate's
//! compiled dependencies, and with them its docs.
//!
//! **How it is kept.**
//! - A layer is what one build wrote into its target directory while compiling its
//!   dependencies: the upper directory of an overlay (below, the layers it read),
//!   copied out of the budget's filesystem into `<cache>/<key>/<id>/tree/`, no link
//!   and no special file followed or kept, with modes and times as they were.
//! - It is made before any code ran that only the crate being documented runs:
//!   right after the build when the crate has no build script, is no proc macro and
//!   uses none (documenting it then runs no code), else after a first run that
//!   compiles the dependencies for a stub of the crate (its manifest without build
//!   script, an empty library), in which cargo's rustdoc is `/bin/true`: nothing
//!   loads the crate's own proc macros.
//! - A layer records `runs_code`: every package of its build's graph whose code ran
//!   while the dependencies compiled ([`DependencyGraph::runs_code_for_dependencies`]),
//!   as `package-id features`. The crate's own package is never in it, nor are its
//!   units in the layer (docs, fingerprints).
//! - A later build mounts a layer only if every package in its `runs_code` is in its
//!   own graph ([`DependencyGraph::admits`]); everything else it finds there was
//!   written by the compiler. Layers are lower layers of an overlay: a build that
//!   changes a file changes its own copy, never the layer.
//! - Layers are keyed by toolchain and image ([`BuildCache::key`]), kept within a
//!   budget, least recently used evicted first; a layer in use is locked (shared)
//!   and never evicted.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use cargo_metadata::cargo_platform::{CfgExpr, Platform};
use cargo_metadata::{DepKindInfo, DependencyKind, Metadata, NodeDep, PackageId, TargetKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The default budget of the build cache: 20 GiB.
pub const DEFAULT_BUDGET: u64 = 20 << 30;
/// At most this many layers under one build (overlayfs takes 500; the mount's
/// options must fit in a page).
const MAX_LAYERS: usize = 96;
/// The largest `layer.json` read.
const MAX_RECORD_BYTES: u64 = 16 << 20;
/// How long `mount` and `umount` may take.
const MOUNT_TIME_LIMIT: Duration = Duration::from_secs(60);

/// Where layers are kept, and how much space they may take (0: no reuse).
#[derive(Debug, Clone)]
pub struct BuildCache {
    root: PathBuf,
    budget: u64,
}

/// A cache key: layers of one toolchain and image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey(String);

/// What a layer says about itself, in `layer.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Every package (`package-id features`) whose code ran in the build that made
    /// the layer: a build may use the layer only if its graph holds them all.
    pub runs_code: BTreeSet<String>,
    /// The packages it holds units of (crate names, `_` for `-`), to choose useful
    /// layers.
    pub packages: BTreeSet<String>,
    /// Bytes of its files.
    pub bytes: u64,
    /// The crate whose build made it (`name version`), for people.
    pub made_by: String,
}

/// One layer in the cache.
#[derive(Debug)]
pub struct Layer {
    pub id: String,
    pub dir: PathBuf,
    pub record: LayerRecord,
    /// Last used (the lock file's modification time).
    pub used: SystemTime,
}

/// Layers chosen for a build, each locked (shared) until this is dropped.
#[derive(Debug, Default)]
pub struct Chosen {
    /// The directory the layers are in (the key's).
    pub dir: PathBuf,
    /// Newest first: the top layer comes first.
    pub ids: Vec<String>,
    /// Which build made each (`name version`).
    pub made_by: Vec<String>,
    /// The packages they hold units of.
    pub packages: BTreeSet<String>,
    locks: Vec<File>,
}

/// What the cache holds.
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    pub layers: usize,
    pub bytes: u64,
}

/// A layer removed to stay within the budget.
#[derive(Debug)]
pub struct Evicted {
    pub dir: PathBuf,
    pub bytes: u64,
}

impl BuildCache {
    pub fn new(root: impl Into<PathBuf>, budget: u64) -> Self {
        Self {
            root: root.into(),
            budget,
        }
    }

    /// True when builds reuse layers (a budget above zero).
    pub fn enabled(&self) -> bool {
        self.budget > 0
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Layers are shared only between builds with the same toolchain, sandbox image
    /// and sandbox user (who owns their files).
    pub fn key(toolchain_version: &str, image: &str, user: (u32, u32)) -> CacheKey {
        let mut hash = Sha256::new();
        for part in [toolchain_version, image, &format!("{}:{}", user.0, user.1)] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        CacheKey(
            hash.finalize()
                .iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    }

    fn key_dir(&self, key: &CacheKey) -> PathBuf {
        self.root.join(&key.0)
    }

    /// The layers of `key` this build may use and that hold some of its packages,
    /// newest first, each locked (shared) and marked used. Blocking.
    pub fn choose(&self, key: &CacheKey, graph: &DependencyGraph) -> io::Result<Chosen> {
        let dir = self.key_dir(key);
        let mut layers = layers_in(&dir)?;
        layers.retain(|layer| {
            graph.admits(&layer.record) && !layer.record.packages.is_disjoint(&graph.names)
        });
        // Ids grow with time: newest first.
        layers.sort_by(|a, b| b.id.cmp(&a.id));
        let mut chosen = Chosen {
            dir,
            ..Chosen::default()
        };
        for layer in layers {
            if chosen.ids.len() == MAX_LAYERS {
                break;
            }
            // Being evicted (locked exclusively): not for this build.
            let Ok(lock) = std::fs::OpenOptions::new()
                .write(true)
                .open(layer.dir.join("lock"))
            else {
                continue;
            };
            if lock.try_lock_shared().is_err() {
                continue;
            }
            if !layer.dir.join("tree").is_dir() {
                continue;
            }
            let _ = lock.set_modified(SystemTime::now());
            chosen.ids.push(layer.id);
            chosen.made_by.push(layer.record.made_by);
            chosen.packages.extend(layer.record.packages);
            chosen.locks.push(lock);
        }
        Ok(chosen)
    }

    /// Copies `upper` (a build's own writes) into a new layer of `key`, leaving out
    /// docs, the documented crate's own units, links and special files; the layer
    /// records `ran`'s packages as those whose code ran. `None` when nothing was
    /// compiled. Blocking.
    pub fn add_layer(
        &self,
        key: &CacheKey,
        upper: &Path,
        lowers: &[PathBuf],
        graph: &DependencyGraph,
        ran: CodeRan,
        made_by: &str,
    ) -> io::Result<Option<(String, u64)>> {
        let dir = self.key_dir(key);
        std::fs::create_dir_all(&dir)?;
        let id = new_id();
        let partial = dir.join(format!(".new-{id}"));
        let tree = partial.join("tree");
        std::fs::create_dir_all(&tree)?;
        let copied = copy_layer(upper, &tree, lowers, graph);
        let (bytes, packages) = match copied {
            Ok(found) if found.files > 0 => (found.bytes, found.packages),
            Ok(_) => {
                std::fs::remove_dir_all(&partial)?;
                return Ok(None);
            }
            Err(error) => {
                let _ = std::fs::remove_dir_all(&partial);
                return Err(error);
            }
        };
        let record = LayerRecord {
            runs_code: match ran {
                CodeRan::ForDependencies => graph.runs_code_for_dependencies.clone(),
                CodeRan::WholeBuild => graph.runs_code.clone(),
            },
            packages,
            bytes,
            made_by: made_by.to_string(),
        };
        std::fs::write(
            partial.join("layer.json"),
            serde_json::to_vec(&record).map_err(io::Error::other)?,
        )?;
        File::create(partial.join("lock"))?;
        std::fs::rename(&partial, dir.join(&id))?;
        Ok(Some((id, bytes)))
    }

    /// Every layer, of every key.
    pub fn layers(&self) -> io::Result<Vec<Layer>> {
        let mut all = Vec::new();
        let keys = match std::fs::read_dir(&self.root) {
            Ok(keys) => keys,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(all),
            Err(error) => return Err(error),
        };
        for key in keys.flatten() {
            if key.file_type().is_ok_and(|t| t.is_dir()) {
                all.extend(layers_in(&key.path())?);
            }
        }
        Ok(all)
    }

    pub fn usage(&self) -> io::Result<Usage> {
        let layers = self.layers()?;
        Ok(Usage {
            layers: layers.len(),
            bytes: layers.iter().map(|l| l.record.bytes).sum(),
        })
    }

    /// Removes the least recently used layers until the cache is within `budget`;
    /// layers in use are skipped. With `dry_run`, only says which. Blocking.
    pub fn evict(&self, budget: u64, dry_run: bool) -> io::Result<Vec<Evicted>> {
        if !dry_run {
            self.remove_leftovers();
        }
        let mut layers = self.layers()?;
        let mut total: u64 = layers.iter().map(|l| l.record.bytes).sum();
        layers.sort_by_key(|layer| layer.used);
        let mut evicted = Vec::new();
        for layer in layers {
            if total <= budget {
                break;
            }
            let Ok(lock) = File::open(layer.dir.join("lock")) else {
                continue;
            };
            if lock.try_lock().is_err() {
                continue;
            }
            if !dry_run {
                // Renamed first: a half-deleted layer is never chosen.
                let parent = layer.dir.parent().unwrap_or(&self.root);
                let gone = parent.join(format!(".gone-{}", layer.id));
                std::fs::rename(&layer.dir, &gone)?;
                drop(lock);
                std::fs::remove_dir_all(&gone)?;
            }
            total = total.saturating_sub(layer.record.bytes);
            evicted.push(Evicted {
                dir: layer.dir,
                bytes: layer.record.bytes,
            });
        }
        Ok(evicted)
    }
}

impl BuildCache {
    /// Removes what a killed process left: layers renamed for deletion, and
    /// layers being copied more than an hour ago.
    fn remove_leftovers(&self) {
        let Ok(keys) = std::fs::read_dir(&self.root) else {
            return;
        };
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        for entry in keys
            .flatten()
            .flat_map(|key| std::fs::read_dir(key.path()))
            .flatten()
        {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = name.starts_with(".gone-")
                || (name.starts_with(".new-")
                    && entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|modified| modified < an_hour_ago));
            if stale {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// The layers in one key's directory (complete ones: named by id, with a record).
fn layers_in(dir: &Path) -> io::Result<Vec<Layer>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut layers = Vec::new();
    for entry in entries.flatten() {
        let Some(id) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if id.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        let Some(record) = read_record(&path.join("layer.json")) else {
            continue;
        };
        let used = std::fs::metadata(path.join("lock"))
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        layers.push(Layer {
            id,
            dir: path,
            record,
            used,
        });
    }
    Ok(layers)
}

fn read_record(path: &Path) -> Option<LayerRecord> {
    use std::io::Read;
    let mut bytes = Vec::new();
    File::open(path)
        .ok()?
        .take(MAX_RECORD_BYTES)
        .read_to_end(&mut bytes)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Unique ids (the time and the process), which sort by creation time.
pub(crate) fn new_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{nanos:024x}{:08x}", std::process::id())
}

/// Whose code had run in a target directory when a layer is made of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRan {
    /// Only what compiling the dependencies runs
    /// ([`DependencyGraph::runs_code_for_dependencies`]).
    ForDependencies,
    /// Anything the build may run ([`DependencyGraph::runs_code`]).
    WholeBuild,
}

/// A build's dependency graph as the build cache sees it, from `cargo metadata`.
#[derive(Debug, Clone, Default)]
pub struct DependencyGraph {
    /// Every package of the graph but the documented one, as `package-id features`.
    pub packages: BTreeSet<String>,
    /// The packages whose code runs in the build: those with a build script and
    /// what the script links (its build-dependencies and theirs), proc macros and
    /// what they link.
    pub runs_code: BTreeSet<String>,
    /// The packages whose code runs while the dependencies alone are compiled: as
    /// `runs_code`, but a proc macro only when a dependency uses it (one only the
    /// documented package uses runs when that package is compiled or documented).
    pub runs_code_for_dependencies: BTreeSet<String>,
    /// The names of every package but the documented one, and of their targets,
    /// with `_` for `-` (as units are named).
    pub names: BTreeSet<String>,
    /// Each compiled package but the documented one, by name as its units are
    /// named (`-` as `_`).
    pub package_names: BTreeSet<String>,
    /// The documented package's name, and its library's crate name.
    pub root_package: String,
    pub root_crate: String,
    /// Documenting the package runs code the dependencies' compilation does not:
    /// its build script, itself as a proc macro (its scraped examples may use it), or
    /// a proc macro of its own dependencies. Its dependencies are then compiled for
    /// a stub first, so that a layer is made before that code runs.
    pub root_runs_code: bool,
}

impl DependencyGraph {
    /// The graph of `metadata`'s root package: what its build compiles, with every
    /// platform's dependencies; the root's dev-dependencies only when
    /// `with_dev_dependencies` (cargo compiles them to scrape examples only for a
    /// target with `doc-scrape-examples = true`, see [`scrapes_with_dev_dependencies`]).
    pub fn from_metadata(metadata: &Metadata, with_dev_dependencies: bool) -> Option<Self> {
        let resolve = metadata.resolve.as_ref()?;
        let root = resolve.root.as_ref()?;
        let nodes: BTreeMap<&PackageId, &cargo_metadata::Node> =
            resolve.nodes.iter().map(|node| (&node.id, node)).collect();
        let packages: BTreeMap<&PackageId, &cargo_metadata::Package> = metadata
            .packages
            .iter()
            .map(|package| (&package.id, package))
            .collect();
        let key = |id: &PackageId| {
            let features: Vec<String> = nodes
                .get(id)
                .map(|node| node.features.iter().map(|f| f.to_string()).collect())
                .unwrap_or_default();
            format!("{} {}", id.repr, features.join(","))
        };
        let has = |id: &PackageId, kind: TargetKind| {
            packages
                .get(id)
                .is_some_and(|p| p.targets.iter().any(|t| t.is_kind(kind.clone())))
        };
        // What is compiled: everything reachable from the root but through
        // dev-dependencies.
        let mut compiled: BTreeSet<&PackageId> = BTreeSet::new();
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            if !compiled.insert(id) {
                continue;
            }
            for dep in nodes.get(id).map(|n| n.deps.as_slice()).unwrap_or(&[]) {
                let kinds: Vec<_> = live_kinds(dep).collect();
                let dev_only = kinds.iter().all(|k| k.kind == DependencyKind::Development);
                if !kinds.is_empty() && (!dev_only || (id == root && with_dev_dependencies)) {
                    stack.push(&dep.pkg);
                }
            }
        }
        // What runs while the dependencies compile: a build script with its
        // build-dependencies' closure, a proc macro a dependency uses with its own
        // dependencies' closure.
        let mut runs_for_dependencies: BTreeSet<&PackageId> = BTreeSet::new();
        for &id in compiled.iter().filter(|&&id| id != root) {
            let deps = nodes.get(id).map(|n| n.deps.as_slice()).unwrap_or(&[]);
            if has(id, TargetKind::CustomBuild) {
                runs_for_dependencies.insert(id);
                let build_deps = deps
                    .iter()
                    .filter(|d| live_kinds(d).any(|k| k.kind == DependencyKind::Build))
                    .map(|d| &d.pkg)
                    .collect();
                closure(&nodes, build_deps, &mut runs_for_dependencies);
            }
            let used_macros = deps
                .iter()
                .filter(|d| live_kinds(d).any(|k| k.kind != DependencyKind::Development))
                .map(|d| &d.pkg)
                .filter(|&dep| has(dep, TargetKind::ProcMacro))
                .collect();
            closure(&nodes, used_macros, &mut runs_for_dependencies);
        }
        runs_for_dependencies.remove(root);
        // What runs in the whole build: also every proc macro compiled (the
        // documented package's own among them) with its closure.
        let mut runs = runs_for_dependencies.clone();
        let macros = compiled
            .iter()
            .copied()
            .filter(|&id| has(id, TargetKind::ProcMacro))
            .collect();
        closure(&nodes, macros, &mut runs);
        runs.remove(root);
        let root_uses_macros = compiled.iter().any(|&id| {
            id != root && has(id, TargetKind::ProcMacro) && !runs_for_dependencies.contains(id)
        });
        let root_package = packages.get(root)?;
        let root_crate = root_package
            .targets
            .iter()
            .find(|t| t.is_lib() || t.is_proc_macro() || t.is_kind(TargetKind::RLib))
            .map(|t| t.name.replace('-', "_"))
            .unwrap_or_else(|| root_package.name.replace('-', "_"));
        Some(Self {
            packages: compiled
                .iter()
                .filter(|&&id| id != root)
                .map(|id| key(id))
                .collect(),
            runs_code: runs.iter().map(|id| key(id)).collect(),
            runs_code_for_dependencies: runs_for_dependencies.iter().map(|id| key(id)).collect(),
            package_names: compiled
                .iter()
                .filter(|&&id| id != root)
                .filter_map(|id| packages.get(id))
                .map(|p| p.name.replace('-', "_"))
                .collect(),
            names: compiled
                .iter()
                .filter(|&&id| id != root)
                .filter_map(|id| packages.get(id))
                .flat_map(|p| {
                    let lib = p.targets.iter().map(|t| t.name.replace('-', "_"));
                    std::iter::once(p.name.replace('-', "_")).chain(lib)
                })
                .collect(),
            root_package: root_package.name.to_string(),
            root_crate,
            root_runs_code: has(root, TargetKind::CustomBuild)
                || has(root, TargetKind::ProcMacro)
                || root_uses_macros,
        })
    }

    /// The rule: a layer may be used if every package whose code ran while it was
    /// made is in this graph, the same version with the same features.
    pub fn admits(&self, layer: &LayerRecord) -> bool {
        layer.runs_code.is_subset(&self.packages)
    }

    /// True for a unit of the documented package (`.fingerprint/NAME-HASH`,
    /// `deps/libCRATE-HASH.rmeta`, …): never put in a layer.
    fn is_root_unit(&self, file_name: &str) -> bool {
        let prefixes = [
            format!("{}-", self.root_package),
            format!("lib{}-", self.root_crate),
            format!("{}-", self.root_crate),
        ];
        prefixes.iter().any(|prefix| {
            file_name.strip_prefix(prefix.as_str()).is_some_and(|rest| {
                rest.len() >= 16 && rest.as_bytes()[..16].iter().all(u8::is_ascii_hexdigit)
            })
        })
    }
}

/// Adds to `into` the packages reachable from `start` through normal and build
/// dependencies.
fn closure<'m>(
    nodes: &BTreeMap<&'m PackageId, &'m cargo_metadata::Node>,
    start: Vec<&'m PackageId>,
    into: &mut BTreeSet<&'m PackageId>,
) {
    let mut stack = start;
    while let Some(id) = stack.pop() {
        if !into.insert(id) {
            continue;
        }
        for dep in nodes.get(id).map(|n| n.deps.as_slice()).unwrap_or(&[]) {
            if live_kinds(dep).any(|k| k.kind != DependencyKind::Development) {
                stack.push(&dep.pkg);
            }
        }
    }
}

/// The ways `dep` can be compiled: not under a platform no target matches, such as
/// `cfg(any())`, by which serde names serde_derive only to pin its version (cargo
/// metadata lists every platform's dependencies).
fn live_kinds(dep: &NodeDep) -> impl Iterator<Item = &DepKindInfo> {
    dep.dep_kinds.iter().filter(
        |kind| !matches!(&kind.target, Some(Platform::Cfg(expr)) if constant(expr) == Some(false)),
    )
}

/// The value of a `cfg` expression when it is the same whatever the target and its
/// flags; `None` when it depends on them.
fn constant(expr: &CfgExpr) -> Option<bool> {
    match expr {
        CfgExpr::True => Some(true),
        CfgExpr::False => Some(false),
        CfgExpr::Value(_) => None,
        CfgExpr::Not(inner) => constant(inner).map(|value| !value),
        // `all` is false once one is false, `any` true once one is true; else each
        // is the other value only when every operand is constant.
        CfgExpr::All(operands) | CfgExpr::Any(operands) => {
            let decisive = matches!(expr, CfgExpr::Any(_));
            let values: Vec<_> = operands.iter().map(constant).collect();
            if values.contains(&Some(decisive)) {
                Some(decisive)
            } else if values.iter().all(Option::is_some) {
                Some(!decisive)
            } else {
                None
            }
        }
    }
}

/// What [`copy_layer`] copied.
#[derive(Debug, Default)]
struct CopiedLayer {
    files: u64,
    bytes: u64,
    packages: BTreeSet<String>,
}

/// True when `lower` is a file of the same size and modification time as `upper`.
fn unchanged_copy(lower: &Path, upper: &std::fs::Metadata) -> bool {
    std::fs::symlink_metadata(lower).is_ok_and(|lower| {
        lower.is_file()
            && lower.len() == upper.len()
            && lower.mtime() == upper.mtime()
            && lower.mtime_nsec() == upper.mtime_nsec()
    })
}

/// The package a unit's entry belongs to (`.fingerprint/NAME-HASH`,
/// `deps/libNAME-HASH.rmeta`, `deps/NAME-HASH.d`, `build/NAME-HASH`), as a crate
/// name (`-` as `_`).
fn unit_package(file_name: &str) -> Option<String> {
    let (name, hash) = file_name.rsplit_once('-')?;
    if hash.len() < 16 || !hash.as_bytes()[..16].iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let name = name.strip_prefix("lib").filter(|_| {
        // `libNAME-HASH.EXT` is a library; a package may also be named `lib…`.
        hash.contains('.') && !hash.ends_with(".d")
    });
    let name = name.unwrap_or_else(|| file_name.rsplit_once('-').map_or("", |(n, _)| n));
    Some(name.replace('-', "_"))
}

/// Directories of a target directory whose entries are units, named `NAME-HASH…`.
const UNIT_DIRS: [&str; 5] = [".fingerprint", "build", "deps", "incremental", "examples"];

/// Copies a build's upper directory into a layer: directories and regular files
/// only (links, whiteouts and devices are left out: nothing is followed), each with
/// its mode, owner and modification time (cargo compares them); docs, lock files and
/// the documented package's units are left out.
fn copy_layer(
    from: &Path,
    to: &Path,
    lowers: &[PathBuf],
    graph: &DependencyGraph,
) -> io::Result<CopiedLayer> {
    let mut copied = CopiedLayer::default();
    let mut dirs = Vec::new();
    let mut walk = walkdir::WalkDir::new(from).follow_links(false).into_iter();
    while let Some(entry) = walk.next() {
        let entry = entry.map_err(io::Error::other)?;
        let relative = entry
            .path()
            .strip_prefix(from)
            .map_err(io::Error::other)?
            .to_path_buf();
        if relative.as_os_str().is_empty() {
            continue;
        }
        let name = entry.file_name().to_string_lossy();
        let parent = relative
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let skip = (name == "doc" && relative.components().count() <= 2)
            || (name == crate::execute::OLD_DOCS && relative.components().count() == 1)
            // cargo's locks and caches of the whole directory: each build's own.
            || name.starts_with(".cargo-")
            || name == ".rustc_info.json"
            || name == ".rustdoc_fingerprint.json"
            || name == "CACHEDIR.TAG"
            || (UNIT_DIRS.contains(&parent.as_str()) && graph.is_root_unit(&name));
        let file_type = entry.file_type();
        if skip {
            if file_type.is_dir() {
                walk.skip_current_dir();
            }
            continue;
        }
        if UNIT_DIRS.contains(&parent.as_str())
            && let Some(package) = unit_package(&name)
        {
            copied.packages.insert(package);
        }
        let metadata = entry.metadata().map_err(io::Error::other)?;
        let dest = to.join(&relative);
        if file_type.is_dir() {
            std::fs::create_dir(&dest)?;
            dirs.push((dest, metadata));
        } else if file_type.is_file() {
            if lowers
                .iter()
                .any(|lower| unchanged_copy(&lower.join(&relative), &metadata))
            {
                // A lower layer's file copied up unchanged (cargo links a build
                // script's binary again each build): that layer has it.
                continue;
            }
            let mut source = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(entry.path())?;
            let mut out = File::create(&dest)?;
            copied.bytes += io::copy(&mut source, &mut out)?;
            copied.files += 1;
            out.set_permissions(std::fs::Permissions::from_mode(metadata.mode() & 0o7777))?;
            std::os::unix::fs::fchown(&out, Some(metadata.uid()), Some(metadata.gid()))?;
            out.set_modified(metadata.modified()?)?;
        }
    }
    // Directories last, deepest first: their times change as their entries are made.
    for (dir, metadata) in dirs.into_iter().rev() {
        std::fs::set_permissions(
            &dir,
            std::fs::Permissions::from_mode(metadata.mode() & 0o7777),
        )?;
        std::os::unix::fs::chown(&dir, Some(metadata.uid()), Some(metadata.gid()))?;
    }
    Ok(copied)
}

/// A target directory made of layers under a build's own upper directory: an
/// overlay mounted at `path`. Unmounted by [`Overlay::unmount`], or lazily when
/// dropped.
#[derive(Debug)]
pub struct Overlay {
    path: PathBuf,
    mounted: bool,
    chosen: Chosen,
}

impl Overlay {
    /// Mounts `chosen`'s layers (read-only, the first on top) under `upper` at
    /// `path`; `work` is overlayfs's own directory, on `upper`'s filesystem.
    pub async fn mount(
        path: &Path,
        chosen: Chosen,
        upper: &Path,
        work: &Path,
    ) -> io::Result<Overlay> {
        tokio::fs::create_dir_all(path).await?;
        // Layers are named relative to their directory, so that many fit in the
        // options (one page).
        let lower: Vec<String> = chosen.ids.iter().map(|id| format!("{id}/tree")).collect();
        let options = format!(
            "lowerdir={},upperdir={},workdir={},nosuid,nodev",
            lower.join(":"),
            upper.display(),
            work.display()
        );
        let mut command = tokio::process::Command::new("mount");
        command
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(&options)
            .arg(path)
            .current_dir(&chosen.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = tokio::time::timeout(MOUNT_TIME_LIMIT, command.output())
            .await
            .map_err(|_| io::Error::other("mount of the overlay timed out"))??;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "mount of the overlay failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(Overlay {
            path: path.to_path_buf(),
            mounted: true,
            chosen,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unmounts it (lazily if busy); its layers are unlocked.
    pub async fn unmount(mut self) -> io::Result<()> {
        let result = unmount_overlay(&self.path).await;
        self.mounted = false;
        result
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if self.mounted {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.path)
                .current_dir("/")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Unmounts an overlay at `path`, lazily if it is busy; nothing mounted there is
/// not an error (the target directory's own unmounting, which knows overlays).
pub async fn unmount_overlay(path: &Path) -> io::Result<()> {
    crate::disk::unmount(path).await.map_err(io::Error::other)
}

/// A build's target directory over the cache's layers: the budget's filesystem
/// holds the build's own writes (`upper/`) and overlayfs's work directory; the
/// overlay of the chosen layers under `upper/` is mounted at the merged path (or,
/// with no layer to use, `upper/` is the target directory itself).
#[derive(Debug)]
pub struct LayeredTarget {
    cache: BuildCache,
    key: CacheKey,
    pub graph: DependencyGraph,
    upper: PathBuf,
    /// The chosen layers' trees.
    lowers: Vec<PathBuf>,
    /// The packages the chosen layers hold units of.
    covered: BTreeSet<String>,
    path: PathBuf,
    overlay: Option<Overlay>,
    made_by: String,
}

impl LayeredTarget {
    /// Empties the budget's filesystem mounted at `fs_root` (what an earlier build
    /// left is not this build's), chooses layers and mounts them at `merged`.
    pub async fn set_up(
        cache: &BuildCache,
        key: CacheKey,
        graph: DependencyGraph,
        fs_root: &Path,
        merged: &Path,
        made_by: String,
    ) -> io::Result<Self> {
        // A merged directory left mounted by a killed process.
        unmount_overlay(merged).await?;
        let (root, cache_copy, graph_copy, key_copy) = (
            fs_root.to_path_buf(),
            cache.clone(),
            graph.clone(),
            key.clone(),
        );
        let (upper, work, chosen) = tokio::task::spawn_blocking(move || {
            for entry in std::fs::read_dir(&root)? {
                let entry = entry?;
                if entry.file_name() == "lost+found" {
                    continue;
                }
                // Neither follows a link: an entry that is one is removed itself.
                if entry.file_type()?.is_dir() {
                    std::fs::remove_dir_all(entry.path())?;
                } else {
                    std::fs::remove_file(entry.path())?;
                }
            }
            let (upper, work) = (root.join("upper"), root.join("overlay-work"));
            std::fs::create_dir(&upper)?;
            std::fs::create_dir(&work)?;
            let chosen = cache_copy.choose(&key_copy, &graph_copy)?;
            Ok::<_, io::Error>((upper, work, chosen))
        })
        .await
        .map_err(io::Error::other)??;
        let covered = chosen.packages.clone();
        let lowers = chosen
            .ids
            .iter()
            .map(|id| chosen.dir.join(id).join("tree"))
            .collect();
        let (path, overlay) = if chosen.ids.is_empty() {
            (upper.clone(), None)
        } else {
            let overlay = Overlay::mount(merged, chosen, &upper, &work).await?;
            (merged.to_path_buf(), Some(overlay))
        };
        Ok(Self {
            cache: cache.clone(),
            key,
            graph,
            upper,
            lowers,
            covered,
            path,
            overlay,
            made_by,
        })
    }

    /// True when the chosen layers hold units of every package of the graph: the
    /// dependencies likely need no compiling (a guess by name; a wrong one only
    /// means no layer is kept from this build).
    pub fn covers_graph(&self) -> bool {
        self.graph.package_names.is_subset(&self.covered)
    }

    /// The target directory builds are given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The layers under it, top first, each as `id (made by NAME VERSION)`.
    pub fn layers(&self) -> Vec<String> {
        let Some(overlay) = &self.overlay else {
            return Vec::new();
        };
        let chosen = &overlay.chosen;
        chosen
            .ids
            .iter()
            .zip(&chosen.made_by)
            .map(|(id, made_by)| format!("{id} (made by {made_by})"))
            .collect()
    }

    /// Keeps what the build compiled so far as a new layer, recording `ran` as the
    /// code that ran in it, then evicts layers past the budget. The new layer's id
    /// and size, or `None` when nothing new was compiled.
    pub async fn keep_layer(&self, ran: CodeRan) -> io::Result<Option<(String, u64)>> {
        let (cache, key, upper, lowers, graph, made_by) = (
            self.cache.clone(),
            self.key.clone(),
            self.upper.clone(),
            self.lowers.clone(),
            self.graph.clone(),
            self.made_by.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let added = cache.add_layer(&key, &upper, &lowers, &graph, ran, &made_by)?;
            cache.evict(cache.budget(), false)?;
            Ok(added)
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Forgets the documented package's units compiled so far (a stub's), so that
    /// the real build makes its own.
    pub async fn forget_root_units(&self) -> io::Result<()> {
        let (upper, graph) = (self.upper.clone(), self.graph.clone());
        tokio::task::spawn_blocking(move || {
            for entry in walkdir::WalkDir::new(&upper)
                .follow_links(false)
                .max_depth(4)
                .into_iter()
                .flatten()
            {
                let parent = entry
                    .path()
                    .parent()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let name = entry.file_name().to_string_lossy();
                if UNIT_DIRS.contains(&parent.as_str()) && graph.is_root_unit(&name) {
                    if entry.file_type().is_dir() {
                        std::fs::remove_dir_all(entry.path())?;
                    } else {
                        std::fs::remove_file(entry.path())?;
                    }
                }
            }
            Ok(())
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Unmounts the overlay; the layers are unlocked.
    pub async fn tear_down(mut self) -> io::Result<()> {
        match self.overlay.take() {
            Some(overlay) => overlay.unmount().await,
            None => Ok(()),
        }
    }
}

/// True when a target of the package's manifest asks for its examples to be scraped
/// with dev-dependencies (`doc-scrape-examples = true`): cargo then compiles the
/// dev-dependencies for the docs; otherwise it scrapes no example that could need
/// them. A manifest that cannot be read counts as asking.
pub fn scrapes_with_dev_dependencies(manifest: &str) -> bool {
    let Ok(table) = manifest.parse::<toml::Table>() else {
        return true;
    };
    let asks = |target: &toml::Value| {
        target
            .get("doc-scrape-examples")
            .and_then(toml::Value::as_bool)
            == Some(true)
    };
    let single = table.get("lib").is_some_and(asks);
    let many = ["bin", "example", "test", "bench"].iter().any(|kind| {
        table
            .get(*kind)
            .and_then(toml::Value::as_array)
            .is_some_and(|targets| targets.iter().any(asks))
    });
    single || many
}

/// True unless the package's library builds resolve features without its
/// dev-dependencies: cargo's resolver 1 (editions before 2021 without `resolver =
/// "2"`) unifies their features into the dependencies'. Anything not understood
/// counts as unifying.
pub fn unifies_dev_features(manifest: &str) -> bool {
    let Ok(table) = manifest.parse::<toml::Table>() else {
        return true;
    };
    let field = |section: &str, key: &str| {
        table
            .get(section)
            .and_then(|section| section.get(key))
            .map(|value| value.as_str())
    };
    match field("workspace", "resolver").or_else(|| field("package", "resolver")) {
        Some(resolver) => !matches!(resolver, Some("2" | "3")),
        // Editions 2021 and later default to resolver 2 or 3.
        None => field("package", "edition")
            .flatten()
            .and_then(|edition| edition.parse::<u32>().ok())
            .is_none_or(|year| year < 2021),
    }
}

/// Writes a stub of the package at `source` into `stub`: its manifest and lockfile
/// with no build script, no `links`, no target but the library, which is empty, and
/// without dev-dependencies unless `dev_dependencies`. Its dependencies, with their
/// features, are the package's, so the units compiled for it are the ones the
/// package's build uses, and none of the package's code runs.
pub fn write_stub(source: &Path, stub: &Path, dev_dependencies: bool) -> io::Result<()> {
    let manifest = std::fs::read_to_string(source.join("Cargo.toml"))?;
    let mut table: toml::Table = manifest.parse().map_err(io::Error::other)?;
    if !dev_dependencies {
        for name in ["dev-dependencies", "dev_dependencies"] {
            table.remove(name);
            if let Some(toml::Value::Table(platforms)) = table.get_mut("target") {
                for (_, platform) in platforms.iter_mut() {
                    if let toml::Value::Table(platform) = platform {
                        platform.remove(name);
                    }
                }
            }
        }
    }
    if let Some(toml::Value::Table(package)) = table.get_mut("package") {
        package.remove("links");
        package.insert("build".into(), toml::Value::Boolean(false));
        for auto in ["autobins", "autoexamples", "autotests", "autobenches"] {
            package.insert(auto.into(), toml::Value::Boolean(false));
        }
    }
    for targets in ["bin", "example", "test", "bench"] {
        table.remove(targets);
    }
    let lib = table
        .entry("lib")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(lib) = lib {
        lib.insert("path".into(), toml::Value::String("src/lib.rs".into()));
        lib.remove("required-features");
    }
    if stub.exists() {
        std::fs::remove_dir_all(stub)?;
    }
    std::fs::create_dir_all(stub.join("src"))?;
    std::fs::write(stub.join("src/lib.rs"), "")?;
    std::fs::write(
        stub.join("Cargo.toml"),
        toml::to_string(&table).map_err(io::Error::other)?,
    )?;
    match std::fs::copy(source.join("Cargo.lock"), stub.join("Cargo.lock")) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(runs: &[&str], packages: &[&str]) -> LayerRecord {
        LayerRecord {
            runs_code: runs.iter().map(|s| s.to_string()).collect(),
            packages: packages.iter().map(|s| s.to_string()).collect(),
            bytes: 1,
            made_by: "x 1.0.0".into(),
        }
    }

    impl LayerRecord {
        fn with_runs_code(mut self, runs_code: &BTreeSet<String>) -> Self {
            self.runs_code = runs_code.clone();
            self
        }
    }

    #[test]
    fn a_layer_is_admitted_only_when_all_code_that_ran_is_in_the_graph() {
        let graph = DependencyGraph {
            packages: ["a 1.0.0 default", "m 1.0.0 "].map(String::from).into(),
            names: ["a", "m"].map(String::from).into(),
            ..DependencyGraph::default()
        };
        assert!(graph.admits(&record(&[], &["a"])));
        assert!(graph.admits(&record(&["m 1.0.0 "], &["a"])));
        // Another version, other features, another crate: not admitted.
        assert!(!graph.admits(&record(&["m 1.0.1 "], &["a"])));
        assert!(!graph.admits(&record(&["m 1.0.0 std"], &["a"])));
        assert!(!graph.admits(&record(&["m 1.0.0 ", "evil 0.1.0 "], &["a"])));
    }

    /// A layer of `bytes` bytes, last used `age` seconds ago.
    fn fake_layer(dir: &Path, id: &str, bytes: u64, age: u64) {
        let layer = dir.join(id);
        std::fs::create_dir_all(layer.join("tree")).unwrap();
        let mut record = record(&[], &["a"]);
        record.bytes = bytes;
        std::fs::write(
            layer.join("layer.json"),
            serde_json::to_vec(&record).unwrap(),
        )
        .unwrap();
        let lock = File::create(layer.join("lock")).unwrap();
        lock.set_modified(SystemTime::now() - Duration::from_secs(age))
            .unwrap();
    }

    #[test]
    fn the_least_recently_used_layers_go_first_and_layers_in_use_stay() {
        let root = tempfile::tempdir().unwrap();
        let cache = BuildCache::new(root.path(), 150);
        let key = BuildCache::key("rustc 1", "image", (1, 1));
        let dir = cache.key_dir(&key);
        fake_layer(&dir, "03", 100, 10);
        fake_layer(&dir, "02", 100, 30);
        fake_layer(&dir, "01", 100, 20);
        // "02" is the least recently used, but a build holds it.
        let graph = DependencyGraph {
            names: ["a".to_string()].into(),
            ..DependencyGraph::default()
        };
        let in_use = File::open(dir.join("02/lock")).unwrap();
        in_use.lock_shared().unwrap();
        let evicted = cache.evict(150, false).unwrap();
        let gone: Vec<_> = evicted.iter().map(|e| e.dir.clone()).collect();
        assert_eq!(gone, [dir.join("01"), dir.join("03")]);
        assert!(!dir.join("01").exists() && !dir.join("03").exists());
        drop(in_use);
        assert_eq!(cache.usage().unwrap().layers, 1);
        // Choosing marks a layer used, newest first.
        fake_layer(&dir, "04", 100, 40);
        let chosen = cache.choose(&key, &graph).unwrap();
        assert_eq!(chosen.ids, ["04", "02"]);
        drop(chosen);
        let evicted = cache.evict(0, true).unwrap();
        assert_eq!(evicted.len(), 2, "a dry run finds them all");
        assert_eq!(cache.usage().unwrap().layers, 2, "and removes nothing");
    }

    #[test]
    fn units_are_named_after_their_package() {
        let hash = "0123456789abcdef";
        assert_eq!(
            unit_package(&format!("proc-macro2-{hash}")).unwrap(),
            "proc_macro2"
        );
        assert_eq!(
            unit_package(&format!("libserde_json-{hash}.rmeta")).unwrap(),
            "serde_json"
        );
        assert_eq!(
            unit_package(&format!("serde_json-{hash}.d")).unwrap(),
            "serde_json"
        );
        assert_eq!(unit_package(&format!("libc-{hash}")).unwrap(), "libc");
        assert_eq!(
            unit_package(&format!("liblibc-{hash}.rlib")).unwrap(),
            "libc"
        );
        assert_eq!(unit_package("invoked.timestamp"), None);
    }

    #[test]
    fn the_documented_package_s_units_are_told_apart() {
        let graph = DependencyGraph {
            root_package: "my-crate".into(),
            root_crate: "my_crate".into(),
            ..DependencyGraph::default()
        };
        assert!(graph.is_root_unit("my-crate-0123456789abcdef"));
        assert!(graph.is_root_unit("libmy_crate-0123456789abcdef.rmeta"));
        assert!(graph.is_root_unit("my_crate-0123456789abcdef.d"));
        assert!(!graph.is_root_unit("my-crate-derive-0123456789abcdef"));
        assert!(!graph.is_root_unit("libmy_crate_impl-0123456789abcdef.rmeta"));
    }

    /// Writes a path package `name` with `manifest_tail` after `[package]`.
    fn package(root: &Path, name: &str, manifest_tail: &str, files: &[(&str, &str)]) {
        let dir = root.join(name);
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(
            dir.join("Cargo.toml"),
            format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n{manifest_tail}"),
        )
        .unwrap();
        std::fs::write(dir.join("src/lib.rs"), "").unwrap();
        for (path, content) in files {
            std::fs::write(dir.join(path), content).unwrap();
        }
    }

    fn graph_of(root: &Path, name: &str) -> DependencyGraph {
        let metadata = cargo_metadata::MetadataCommand::new()
            .manifest_path(root.join(name).join("Cargo.toml"))
            .other_options(vec!["--offline".to_string()])
            .exec()
            .unwrap();
        DependencyGraph::from_metadata(&metadata, false).unwrap()
    }

    /// The package names of `package-id features` keys (a path package's id names
    /// it by its directory: `path+file:///…/NAME#VERSION`).
    fn names(keys: &BTreeSet<String>) -> Vec<&str> {
        keys.iter()
            .map(|key| {
                let (source, spec) = key.split_once('#').unwrap();
                match spec.split_once('@') {
                    Some((name, _)) => name,
                    None => source.rsplit('/').next().unwrap(),
                }
            })
            .collect()
    }

    #[test]
    fn code_that_only_the_documented_package_runs_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let macro_lib = "[lib]\nproc-macro = true\n";
        package(root, "inner", "", &[]);
        package(root, "helper", "", &[]);
        package(
            root,
            "its-macro",
            &format!("{macro_lib}[dependencies]\ninner = {{ path = \"../inner\" }}\n"),
            &[],
        );
        package(root, "own-macro", macro_lib, &[]);
        package(
            root,
            "scripted",
            "[dependencies]\nits-macro = { path = \"../its-macro\" }\n\
             [build-dependencies]\nhelper = { path = \"../helper\" }\n",
            &[("build.rs", "fn main() {}")],
        );
        let deps = "scripted = { path = \"../scripted\" }\n";
        package(
            root,
            "uses-macro",
            &format!("[dependencies]\n{deps}own-macro = {{ path = \"../own-macro\" }}\n"),
            &[],
        );
        package(root, "plain", &format!("[dependencies]\n{deps}"), &[]);

        // Compiling the dependencies runs `scripted`'s build script (with `helper`)
        // and `its-macro` (with `inner`); documenting `uses-macro` also runs
        // `own-macro`, which only it uses.
        let uses_macro = graph_of(root, "uses-macro");
        assert_eq!(
            names(&uses_macro.runs_code_for_dependencies),
            ["helper", "inner", "its-macro", "scripted"]
        );
        assert_eq!(
            names(&uses_macro.runs_code),
            ["helper", "inner", "its-macro", "own-macro", "scripted"]
        );
        assert!(uses_macro.root_runs_code);
        // A layer made before `own-macro` ran is admitted without it.
        let plain = graph_of(root, "plain");
        assert!(!plain.root_runs_code);
        assert_eq!(plain.runs_code, plain.runs_code_for_dependencies);
        let layer = |ran: &BTreeSet<String>| record(&[], &[]).with_runs_code(ran);
        assert!(plain.admits(&layer(&uses_macro.runs_code_for_dependencies)));
        assert!(!plain.admits(&layer(&uses_macro.runs_code)));
    }

    #[test]
    fn features_only_dev_dependencies_ask_for_are_left_out_of_a_stub_s_graph() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        package(root, "its-macro", "[lib]\nproc-macro = true\n", &[]);
        package(
            root,
            "featured",
            "[dependencies]\nits-macro = { path = \"../its-macro\", optional = true }\n\
             [features]\nderive = [\"dep:its-macro\"]\n",
            &[],
        );
        package(
            root,
            "app",
            "[dependencies]\nfeatured = { path = \"../featured\" }\n\
             [dev-dependencies]\nfeatured = { path = \"../featured\", features = [\"derive\"] }\n\
             [target.'cfg(unix)'.dev-dependencies]\nhelper = { path = \"../helper\" }\n",
            &[("build.rs", "fn main() {}")],
        );
        package(root, "helper", "", &[]);
        // `cargo metadata` unifies the dev-dependency's feature: the macro looks
        // compiled and run.
        let whole = graph_of(root, "app");
        assert!(names(&whole.runs_code).contains(&"its-macro"));
        // The stub without dev-dependencies gives the graph a library build has.
        write_stub(&root.join("app"), &root.join("app-stub"), false).unwrap();
        let stub = std::fs::read_to_string(root.join("app-stub/Cargo.toml")).unwrap();
        assert!(
            !stub.contains("dev-dependencies") && !stub.contains("helper"),
            "{stub}"
        );
        let graph = graph_of(root, "app-stub");
        assert_eq!(names(&graph.packages), ["featured"]);
        assert!(graph.runs_code.is_empty());
        assert!(!graph.root_runs_code, "the stub has no build script");
    }

    #[test]
    fn resolver_1_unifies_dev_features() {
        let manifest = |tail: &str| format!("[package]\nname = \"a\"\nversion = \"0.1.0\"\n{tail}");
        assert!(unifies_dev_features(&manifest("")));
        assert!(unifies_dev_features(&manifest("edition = \"2018\"\n")));
        assert!(!unifies_dev_features(&manifest(
            "edition = \"2018\"\nresolver = \"2\"\n"
        )));
        assert!(!unifies_dev_features(&manifest("edition = \"2021\"\n")));
        assert!(!unifies_dev_features(&manifest("edition = \"2024\"\n")));
        assert!(unifies_dev_features(&manifest(
            "edition = \"2021\"\nresolver = \"1\"\n"
        )));
        assert!(unifies_dev_features(&format!(
            "{}\n[workspace]\nresolver = \"1\"\n",
            manifest("edition = \"2021\"\nresolver = \"2\"")
        )));
        assert!(unifies_dev_features("not toml ["));
    }

    #[test]
    fn a_dependency_under_a_cfg_no_target_matches_is_never_compiled() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        package(root, "its-macro", "[lib]\nproc-macro = true\n", &[]);
        package(root, "helper", "", &[]);
        // As serde names serde_derive: only to pin its version.
        package(
            root,
            "pinned",
            "[target.'cfg(any())'.dependencies]\nits-macro = { path = \"../its-macro\" }\n\
             [target.'cfg(not(all()))'.build-dependencies]\nits-macro = { path = \"../its-macro\" }\n\
             [target.'cfg(any(unix, windows))'.dependencies]\nhelper = { path = \"../helper\" }\n",
            &[],
        );
        package(
            root,
            "app",
            "[dependencies]\npinned = { path = \"../pinned\" }\n",
            &[],
        );
        let graph = graph_of(root, "app");
        assert_eq!(names(&graph.packages), ["helper", "pinned"]);
        assert!(graph.runs_code.is_empty());
    }
}
