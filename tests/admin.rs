//! The queue managed from the command line: `queue add NAME`, a missing registry
//! version named with its registry, `queue show`, the worker's job log, `queue
//! rebuild`, `queue remove`, `docs delete`, `gc`, broken pipes and `crates-io` as a
//! registry name. The real binary and Docker engine, a sparse registry served by the
//! test on 127.0.0.1.

mod common;
mod registry;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use registry::TestRegistry;
use serde_json::Value;

/// A data directory and a `check` cache of the test's own (gc collects the cache's
/// work directories, which other tests' checks must keep).
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_docbuild"));
        command
            .args(args)
            .env("DOCBUILD_DATA_DIR", self.data())
            .env("DOCBUILD_CACHE_DIR", self.dir.path().join("check-cache"))
            .env(
                "HOME",
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("queue-home"),
            )
            .env_remove("CARGO_TERM_COLOR");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a command that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?}: exit {:?}: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    fn add(&self, args: &[&str]) -> i64 {
        let mut all = vec!["queue", "add"];
        all.extend(args);
        self.ok(&all).parse().unwrap()
    }

    fn job(&self, id: i64) -> Value {
        serde_json::from_str(&self.ok(&["queue", "show", &id.to_string(), "--json"])).unwrap()
    }

    fn work(&self) -> String {
        let output = self.run(&["worker", "--once"]);
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    fn registry(&self, registry: &TestRegistry) {
        std::fs::create_dir_all(self.data()).unwrap();
        std::fs::write(
            self.data().join("docbuild.toml"),
            format!(
                "[registries.testreg]\nindex = \"{}\"\n",
                registry.index_url()
            ),
        )
        .unwrap();
    }
}

fn lib(text: &str) -> [(&str, &str); 1] {
    [("src/lib.rs", text)]
}

#[test]
fn queue_add_takes_the_newest_version_and_refuses_a_missing_one() {
    let registry = TestRegistry::start(None);
    for version in ["0.1.0", "0.2.0", "0.3.0-rc.1"] {
        registry.publish("several", version, "", &lib("//! Several.\n"), &[]);
    }
    let setup = Setup::new();
    setup.registry(&registry);

    let output = setup.run(&["queue", "add", "several", "--registry", "testreg"]);
    assert!(output.status.success(), "{output:?}");
    let id: i64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap();
    assert_eq!(setup.job(id)["version"], "0.2.0", "the newest release");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("note: queued several 0.2.0, the newest version in `testreg`"),
        "{stderr}"
    );

    // Twice: the same job, and said so.
    let output = setup.run(&["queue", "add", "several@0.2.0", "--registry", "testreg"]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        id.to_string()
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(&format!("is already queued as job {id}")),
        "{output:?}"
    );

    for (what, said) in [
        (
            "several@9.9.9",
            "error: `several` has no version 9.9.9 in registry `testreg` (newest: 0.2.0)",
        ),
        ("nothing-here", "error: no crate `nothing-here`"),
        (
            "nothing-here@1.0.0",
            "error: no crate `nothing-here` in registry `testreg`",
        ),
    ] {
        let output = setup.run(&["queue", "add", what, "--registry", "testreg"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{what}: {stderr}");
        assert!(stderr.starts_with(said), "{what}: {stderr}");
    }
    assert_eq!(setup.ok(&["queue", "list"]).lines().count(), 1);
}

#[test]
fn a_version_gone_from_its_registry_is_named_with_its_registry() {
    let registry = TestRegistry::start(None);
    registry.publish("gone", "0.1.0", "", &lib("//! Gone.\n"), &[]);
    let setup = Setup::new();
    setup.registry(&registry);
    let id = setup.add(&["gone@0.1.0", "--registry", "testreg"]);
    registry.unpublish("gone");
    setup.work();
    let job = setup.job(id);
    assert_eq!(job["status"], "done", "{job:#}");
    assert_eq!(job["outcome"], "invalid-input", "{job:#}");
    let message = job["message"].as_str().unwrap();
    assert_eq!(message, "no crate `gone` in registry `testreg`");
    assert!(
        !message.contains("scratch") && !message.contains('/'),
        "{message}"
    );
}

#[test]
fn queue_show_tells_the_reason_times_and_log_and_the_worker_logs_each_job() {
    let setup = Setup::new();
    let (_dir, failing) = common::fixture("type-error");
    let (_dir2, good) = common::fixture("documented");
    let bad = setup.add(&[failing.to_str().unwrap()]);
    let fine = setup.add(&[good.to_str().unwrap()]);
    let log = setup.work();
    for expected in [
        format!("docbuild: job {bad}: building type-error 0.1.0, attempt 1 ["),
        format!("docbuild: job {bad}: build-failed: type-error 0.1.0 in "),
        format!("docbuild: job {fine}: building documented 0.1.0, attempt 1 ["),
        format!("docbuild: job {fine}: success: documented 0.1.0 in "),
    ] {
        assert!(log.contains(&expected), "{expected:?} in {log}");
    }
    assert!(
        log.contains(": rustdoc failed: mismatched types (src/lib.rs:2) (log: "),
        "{log}"
    );

    let shown = setup.ok(&["queue", "show", &bad.to_string()]);
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(
        lines[0],
        format!("job {bad}: type-error 0.1.0 (a local package)")
    );
    for (label, value) in [
        ("status:", "done: build-failed"),
        ("reason:", "rustdoc failed: mismatched types (src/lib.rs:2)"),
    ] {
        assert!(
            lines.contains(&format!("{label:<11}{value}").as_str()),
            "{label} {value}: {shown}"
        );
    }
    for label in ["queued:", "started:", "finished:", "build:", "log:"] {
        assert!(
            lines.iter().any(|line| line.starts_with(label)),
            "{label}: {shown}"
        );
    }
    let log_line = lines.iter().find(|l| l.starts_with("log:")).unwrap();
    let log_path = Path::new(log_line.trim_start_matches("log:").trim());
    assert!(
        std::fs::read_to_string(log_path)
            .unwrap()
            .contains("mismatched types")
    );

    let job = setup.job(bad);
    assert_eq!(job["log"], log_path.to_str().unwrap());
    let (created, started, finished) = (
        job["created_at"].as_i64().unwrap(),
        job["started_at"].as_i64().unwrap(),
        job["finished_at"].as_i64().unwrap(),
    );
    assert!(created <= started && started <= finished, "{job:#}");
    let shown = setup.ok(&["queue", "show", &fine.to_string()]);
    assert!(shown.contains("docs:      /"), "{shown}");
}

#[test]
fn queue_list_into_a_closed_pipe_ends_quietly() {
    let setup = Setup::new();
    // More than a pipe holds (64 KiB), so that the reader leaves mid-way.
    // Queued straight into the store: two thousand `queue add`s would take long.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let location = docbuild_store::StoreLocation {
            database: docbuild_store::DatabaseLocation::Sqlite(setup.data().join("docbuild.db")),
            storage: docbuild_store::StorageLocation::Directory(setup.data().join("storage")),
        };
        let queue = docbuild_store::Store::open(&location)
            .await
            .unwrap()
            .queue();
        for n in 0..2000 {
            let id = docbuild_store::CrateId::new("crates-io", &format!("many-{n}"), "0.1.0");
            queue.enqueue(&id.unwrap(), 0).await.unwrap();
        }
    });
    for command in ["queue list", "queue list --json"] {
        let script = format!(
            "set -o pipefail; '{}' {command} | head -1",
            env!("CARGO_BIN_EXE_docbuild")
        );
        let output = Command::new("bash")
            .args(["-c", &script])
            .env("DOCBUILD_DATA_DIR", setup.data())
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        assert_eq!(output.status.code(), Some(0), "{command}: {stderr}");
        assert_eq!(stderr, "", "{command}");
        assert_eq!(stdout.lines().count(), 1, "{command}");
        assert!(stdout.contains("many-1999"), "{command}: {stdout}");
    }
}

#[test]
fn releases_are_rebuilt_removed_deleted_and_collected() {
    let setup = Setup::new();
    let (_dir, package) = common::fixture("documented");
    let first = setup.add(&[package.to_str().unwrap()]);
    setup.work();
    let first_build = setup.job(first)["build"].as_i64().unwrap();
    // Whether a build's docs are in storage (a store opened afresh each time, so that
    // it sees what the commands did).
    let stored = |build: i64| {
        let store = common::stored::DataStore::open(&setup.data());
        store
            .block_on(store.store().builds().manifest(build))
            .unwrap()
            .is_some()
    };
    assert!(stored(first_build));

    // A rebuild is queued once, from the package the first job kept.
    let rebuild = setup
        .ok(&["queue", "rebuild", "documented@0.1.0"])
        .parse::<i64>()
        .unwrap();
    assert_ne!(rebuild, first);
    let again = setup.run(&["queue", "rebuild", "documented@0.1.0", "--json"]);
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["id"], rebuild);
    // Removed while queued, and queued again.
    let removed = setup.run(&["queue", "remove", &rebuild.to_string()]);
    assert!(removed.status.success(), "{removed:?}");
    assert!(
        String::from_utf8_lossy(&removed.stderr).contains(&format!(
            "removed job {rebuild} (documented 0.1.0 of local, queued)"
        )),
        "{removed:?}"
    );
    let missing = setup.run(&["queue", "show", &rebuild.to_string()]);
    assert_eq!(missing.status.code(), Some(2));
    let gone = setup.run(&["queue", "remove", &rebuild.to_string()]);
    assert_eq!(gone.status.code(), Some(2));
    let rebuild = setup
        .ok(&[
            "queue",
            "rebuild",
            "documented@0.1.0",
            "--registry",
            "local",
        ])
        .parse::<i64>()
        .unwrap();
    setup.work();
    let second = setup.job(rebuild);
    assert_eq!(second["outcome"], "success", "{second:#}");
    let second_build = second["build"].as_i64().unwrap();
    assert_ne!(second_build, first_build);

    let unknown = setup.run(&["queue", "rebuild", "never-queued@1.0.0"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&unknown.stderr)
            .starts_with("error: docbuild knows no release never-queued@1.0.0"),
        "{unknown:?}"
    );

    // gc: a dry run removes nothing; then the old build, the work directory (its
    // target directory unmounted first) and the first job's package go.
    let work_dir = setup.data().join("work/local/documented/0.1.0");
    assert!(work_dir.join("target").is_dir());
    // As a build killed mid-way leaves it: its target directory still mounted.
    let mounted = mount_image(&work_dir);
    let dry = setup.ok(&["gc", "--keep-builds", "1", "--dry-run"]);
    if mounted {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            mounts.contains(work_dir.join("target").to_str().unwrap()),
            "a dry run unmounts nothing"
        );
    }
    assert!(
        dry.contains(&format!(
            "would remove build local/documented/0.1.0/{first_build}"
        )),
        "{dry}"
    );
    assert!(
        dry.contains(&format!(
            "would remove work directory {}",
            work_dir.display()
        )),
        "{dry}"
    );
    assert!(
        dry.lines().last().unwrap().starts_with("gc: would remove "),
        "{dry}"
    );
    assert!(stored(first_build) && work_dir.is_dir());

    let collected = setup.ok(&["gc", "--keep-builds", "1"]);
    assert!(
        collected
            .lines()
            .last()
            .unwrap()
            .starts_with("gc: removed "),
        "{collected}"
    );
    assert!(!stored(first_build), "{collected}");
    assert!(!work_dir.exists(), "{collected}");
    let package = |job: i64| setup.data().join(format!("storage/sources/{job}.crate"));
    assert!(
        !package(first).exists(),
        "no rebuild needs the first job's package: {collected}"
    );
    assert!(
        package(rebuild).exists(),
        "the newest job keeps its package: {collected}"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(setup.data().to_str().unwrap()),
        "nothing stays mounted"
    );
    // Every file the served build refers to is kept, whatever its age.
    let collected = setup.ok(&["gc", "--keep-builds", "1", "--grace", "0s"]);
    assert_eq!(
        collected.lines().collect::<Vec<_>>(),
        [
            "build cache: 0 layers, 0 B of 20.0 GiB",
            "gc: nothing to remove"
        ],
        "a crate without dependencies leaves no layer"
    );
    let blobs = |build: i64| {
        let store = common::stored::DataStore::open(&setup.data());
        let manifest = store
            .block_on(store.store().builds().manifest(build))
            .unwrap()
            .unwrap();
        manifest.blob_keys().collect::<Vec<_>>()
    };
    let served = blobs(second_build);
    assert!(served.iter().any(|key| key.contains('/')));
    for key in &served {
        assert!(
            setup.data().join("storage").join(key).is_file(),
            "{key} was collected"
        );
    }

    // docs delete: every build of the release goes, and the viewer's record of it.
    let deleted = setup.run(&["docs", "delete", "documented@0.1.0"]);
    assert!(deleted.status.success(), "{deleted:?}");
    assert!(
        String::from_utf8_lossy(&deleted.stderr)
            .starts_with("deleted 1 build of documented 0.1.0 (local)"),
        "{deleted:?}"
    );
    assert!(!stored(second_build));
    // Its files go with the next collection, once no build refers to them.
    let collected = setup.ok(&["gc", "--grace", "0s"]);
    assert!(collected.contains("unused stored file"), "{collected}");
    for key in &served {
        assert!(
            !setup.data().join("storage").join(key).exists(),
            "{key} is kept"
        );
    }
    let twice = setup.run(&["docs", "delete", "documented@0.1.0"]);
    assert_eq!(twice.status.code(), Some(2));
    // The job's history stays, without a log.
    assert_eq!(setup.job(rebuild)["outcome"], "success");
}

/// Mounts a fresh ext4 image at `work_dir/target`, as docbuild's disk budget does;
/// false where this process may not mount (not root).
fn mount_image(work_dir: &Path) -> bool {
    let image = work_dir.join("target.img");
    let made = Command::new("truncate")
        .args(["-s", "16M"])
        .arg(&image)
        .status()
        .unwrap()
        .success()
        && Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&image)
            .status()
            .is_ok_and(|s| s.success());
    made && Command::new("mount")
        .args(["-o", "loop"])
        .arg(&image)
        .arg(work_dir.join("target"))
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn crates_io_is_a_registry_name_everywhere() {
    let setup = Setup::new();
    // Watching crates.io follows the crates docbuild knows: none yet, so this pass
    // asks nothing and sets the baseline.
    let output = setup.run(&["watch", "--registry", "crates-io", "--once"]);
    assert!(output.status.success(), "{output:?}");
    let output = setup.run(&["watch", "--registry", "no-such-registry", "--once"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("unknown registry `no-such-registry`")
    );
}
