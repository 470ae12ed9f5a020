//! The queue and its workers end to end: the real binary, the real Docker engine, and
//! a sparse registry served on 127.0.0.1 by the test.

mod common;
mod registry;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use registry::{Entry, TestRegistry, archive, sha256};
use serde_json::Value;

fn docbuild(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_docbuild"))
        .args(args)
        .env("DOCBUILD_DATA_DIR", data)
        // Share the test run's dependency cache; the data directory is the test's own.
        .env(
            "HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("queue-home"),
        )
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn add(data: &Path, args: &[&str]) -> i64 {
    let mut all = vec!["queue", "add"];
    all.extend(args);
    all.push("--json");
    let out: Value = serde_json::from_str(&stdout(&docbuild(data, &all))).unwrap();
    out["id"].as_i64().unwrap()
}

fn job(data: &Path, id: i64) -> Value {
    serde_json::from_str(&stdout(&docbuild(
        data,
        &["queue", "show", &id.to_string(), "--json"],
    )))
    .unwrap()
}

fn work(data: &Path, extra: &[&str]) {
    let mut args = vec!["worker", "--once"];
    args.extend(extra);
    stdout(&docbuild(data, &args));
}

/// The stored build of a job: its directory under the data directory.
/// A finished job's build in the data directory's store.
fn stored(data: &Path, job: &Value) -> (common::stored::DataStore, i64) {
    (
        common::stored::DataStore::open(data),
        job["build"].as_i64().unwrap(),
    )
}

/// A file of a finished job's stored docs.
fn stored_file(data: &Path, job: &Value, path: &str) -> String {
    let (store, build) = stored(data, job);
    String::from_utf8(
        store
            .file(build, path)
            .unwrap_or_else(|| panic!("no {path}")),
    )
    .unwrap()
}

fn config(data: &Path, registry: &TestRegistry, token: Option<&str>) {
    std::fs::create_dir_all(data).unwrap();
    let token = token
        .map(|t| format!("token = \"{t}\"\n"))
        .unwrap_or_default();
    std::fs::write(
        data.join("docbuild.toml"),
        format!(
            "[registries.testreg]\nindex = \"{}\"\n{token}\n[server]\nurl = \"http://docs.test\"\n",
            registry.index_url()
        ),
    )
    .unwrap();
}

#[test]
fn registry_crates_are_built_stored_and_linked_to_each_other() {
    let registry = TestRegistry::start(Some("reg-s3cret"));
    registry.publish(
        "shared-a",
        "0.1.0",
        "",
        &[(
            "src/lib.rs",
            "//! Shared.\n\n/// A thing.\npub struct Thing;\n",
        )],
        &[],
    );
    let dependency = "\n[dependencies.shared-a]\nversion = \"0.1.0\"\nregistry = \"testreg\"\n";
    registry.publish(
        "app-b",
        "0.1.0",
        dependency,
        &[(
            "src/lib.rs",
            "//! Uses shared-a.\n\n/// Makes a [`shared_a::Thing`].\npub fn make() -> shared_a::Thing {\n    shared_a::Thing\n}\n",
        )],
        &["shared-a"],
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    config(&data, &registry, Some("reg-s3cret"));

    let a = add(&data, &["shared-a@0.1.0", "--registry", "testreg"]);
    let b = add(&data, &["app-b@0.1.0", "--registry", "testreg"]);
    assert_eq!(
        add(&data, &["app-b@0.1.0", "--registry", "testreg"]),
        b,
        "queued once"
    );
    assert_eq!(job(&data, b)["status"], "queued");
    work(&data, &["--jobs", "2"]);

    for id in [a, b] {
        let job = job(&data, id);
        assert_eq!(job["status"], "done", "{job:#}");
        assert_eq!(job["outcome"], "success", "{job:#}");
        let (store, build) = stored(&data, &job);
        assert_eq!(store.record(build)["outcome"], "success");
        assert!(store.log(build).is_some_and(|log| !log.is_empty()));
    }
    let html = stored_file(&data, &job(&data, b), "app_b/fn.make.html");
    assert!(
        html.contains("http://docs.test/shared-a/0.1.0/shared_a/struct.Thing.html"),
        "app-b links shared-a's docs on this server"
    );
    let requests = registry.requests.lock().unwrap();
    assert!(
        requests
            .iter()
            .any(|(path, authorized)| path.starts_with("/dl/app-b") && *authorized)
    );
    assert!(
        requests
            .iter()
            .all(|(path, authorized)| *authorized || path == "/index/config.json 401"),
        "{requests:?}"
    );
}

#[test]
fn a_registry_that_refuses_us_is_not_the_crates_fault() {
    let registry = TestRegistry::start(Some("right-token"));
    registry.publish("locked", "0.1.0", "", &[("src/lib.rs", "")], &[]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    config(&data, &registry, Some("wrong-token"));
    let id = add(&data, &["locked@0.1.0", "--registry", "testreg"]);
    work(&data, &["--retry-delay", "1h"]);
    let job = job(&data, id);
    assert_eq!(job["status"], "queued", "retried later: {job:#}");
    assert_eq!(job["attempts"], 1);
    assert!(job["message"].as_str().unwrap().contains("401"), "{job:#}");
}

#[test]
fn hostile_archives_are_refused() {
    let registry = TestRegistry::start(None);
    let manifest = |name: &str| {
        format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n")
    };
    let dir = tempfile::tempdir().unwrap();
    let escape = dir.path().join("escaped.txt");
    let cases: Vec<(&str, Vec<u8>, Option<String>)> = vec![
        (
            "dotdot",
            archive(&[
                Entry::File("dotdot-0.1.0/Cargo.toml", manifest("dotdot").as_bytes()),
                Entry::RawPath("dotdot-0.1.0/../../../../../../../../../../../escaped.txt"),
            ]),
            None,
        ),
        (
            "absolute",
            archive(&[
                Entry::File("absolute-0.1.0/Cargo.toml", manifest("absolute").as_bytes()),
                Entry::RawPath("/tmp/docbuild-test-absolute-escape.txt"),
            ]),
            None,
        ),
        (
            "linked",
            archive(&[
                Entry::File("linked-0.1.0/Cargo.toml", manifest("linked").as_bytes()),
                Entry::Symlink("linked-0.1.0/src", "/etc"),
            ]),
            None,
        ),
        (
            "bomb",
            archive(&[
                Entry::File("bomb-0.1.0/Cargo.toml", manifest("bomb").as_bytes()),
                Entry::Zeros("bomb-0.1.0/src/lib.rs", 600 << 20),
            ]),
            None,
        ),
        (
            "badsum",
            archive(&[
                Entry::File("badsum-0.1.0/Cargo.toml", manifest("badsum").as_bytes()),
                Entry::File("badsum-0.1.0/src/lib.rs", b""),
            ]),
            Some("0".repeat(64)),
        ),
    ];
    for (name, archive, cksum) in cases {
        let sum = cksum.unwrap_or_else(|| sha256(&archive));
        registry.publish_raw(name, "0.1.0", archive, &sum, &[]);
    }
    let data = dir.path().join("data");
    config(&data, &registry, None);
    let ids: Vec<(&str, i64)> = ["dotdot", "absolute", "linked", "bomb", "badsum"]
        .iter()
        .map(|name| {
            (
                *name,
                add(&data, &[&format!("{name}@0.1.0"), "--registry", "testreg"]),
            )
        })
        .collect();
    work(&data, &[]);
    for (name, id) in ids {
        let job = job(&data, id);
        assert_eq!(job["status"], "done", "{name}: {job:#}");
        assert_eq!(job["outcome"], "build-failed", "{name}: {job:#}");
        assert!(!job["message"].as_str().unwrap_or("").is_empty());
    }
    assert!(!escape.exists());
    assert!(!Path::new("/tmp/docbuild-test-absolute-escape.txt").exists());
    assert!(!data.parent().unwrap().join("escaped.txt").exists());
    // Nothing of a refused archive stays: not cargo's partial unpack of the bomb in
    // docbuild's cargo home, not docbuild's own unpack in the work directory.
    let unpacked = data.join("cache/cargo-home/registry/src");
    let indexes: Vec<_> = std::fs::read_dir(&unpacked).unwrap().flatten().collect();
    assert!(
        !indexes.is_empty(),
        "cargo unpacked nothing in {unpacked:?}"
    );
    for index in indexes {
        let bomb = index.path().join("bomb-0.1.0");
        assert!(!bomb.exists(), "{bomb:?} left");
    }
    for name in ["dotdot", "absolute", "linked", "bomb", "badsum"] {
        let source = data.join("work/testreg").join(name).join("0.1.0/job-src");
        assert!(!source.exists(), "{source:?}");
    }
}

#[test]
fn local_paths_are_packaged_when_queued() {
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("snapshot");
    std::fs::create_dir_all(package.join("src")).unwrap();
    std::fs::write(
        package.join("Cargo.toml"),
        "[package]\nname = \"snapshot\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        package.join("src/lib.rs"),
        "/// As queued.\npub struct Queued;\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let id = add(&data, &[package.to_str().unwrap()]);
    std::fs::write(
        package.join("src/lib.rs"),
        "/// Changed later.\npub struct Later;\n",
    )
    .unwrap();
    work(&data, &[]);
    let job = job(&data, id);
    assert_eq!(job["outcome"], "success", "{job:#}");
    assert_eq!(job["registry"], "local");
    let html = stored_file(&data, &job, "snapshot/all.html");
    assert!(html.contains("Queued") && !html.contains("Later"));
}

fn fixture_copy(dir: &Path, name: &str, as_name: &str) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let to = dir.join(as_name);
    std::fs::create_dir_all(to.join("src")).unwrap();
    for file in ["build.rs", "src/lib.rs"] {
        if from.join(file).exists() {
            std::fs::copy(from.join(file), to.join(file)).unwrap();
        }
    }
    let manifest = std::fs::read_to_string(from.join("Cargo.toml"))
        .unwrap()
        .replace(
            &format!("name = \"{name}\""),
            &format!("name = \"{as_name}\""),
        );
    std::fs::write(to.join("Cargo.toml"), manifest).unwrap();
    to
}

/// Sandbox containers whose build works under `data`.
fn containers_under(data: &Path) -> Vec<String> {
    let output = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            "label=org.docbuild.sandbox",
            "--format",
            "{{.ID}} {{.Label \"org.docbuild.log\"}}",
        ])
        .output()
        .expect("docker CLI");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| {
            line.split_once(' ')
                .is_some_and(|(_, log)| Path::new(log).starts_with(data))
        })
        .map(|line| line.to_string())
        .collect()
}

/// The job succeeded on its second attempt, and no container of it is left.
fn assert_built_on_second_attempt(data: &Path, id: i64) {
    let job = job(data, id);
    assert_eq!(job["outcome"], "success", "{job:#}");
    assert_eq!(job["attempts"], 2);
    assert_eq!(
        containers_under(data),
        Vec::<String>::new(),
        "no container left"
    );
}

fn wait_for_container(data: &Path) {
    let started = std::time::Instant::now();
    while containers_under(data).is_empty() {
        assert!(started.elapsed().as_secs() < 300, "no build started");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

fn spawn_worker(data: &Path, extra: &[&str], docker_host: Option<&str>) -> std::process::Child {
    let mut args = vec!["worker", "--once"];
    args.extend(extra);
    spawn(data, &args, docker_host)
}

fn spawn(data: &Path, args: &[&str], docker_host: Option<&str>) -> std::process::Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_docbuild"));
    command
        .args(args)
        .env("DOCBUILD_DATA_DIR", data)
        .env(
            "HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("queue-home"),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(host) = docker_host {
        command.env("DOCKER_HOST", host);
    }
    command.spawn().unwrap()
}

#[test]
fn two_workers_build_each_job_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ids: Vec<i64> = (1..=4)
        .map(|n| {
            let package = fixture_copy(dir.path(), "documented", &format!("shared-queue-{n}"));
            add(&data, &[package.to_str().unwrap()])
        })
        .collect();
    let workers = [
        spawn_worker(&data, &[], None),
        spawn_worker(&data, &[], None),
    ];
    let pids: Vec<u32> = workers.iter().map(|w| w.id()).collect();
    for mut worker in workers {
        assert!(worker.wait().unwrap().success());
    }
    let mut built_by = std::collections::BTreeMap::<u32, usize>::new();
    for id in ids {
        let job = job(&data, id);
        assert_eq!(job["outcome"], "success", "{job:#}");
        assert_eq!(job["attempts"], 1, "built once: {job:#}");
        let (store, _) = stored(&data, &job);
        let builds = store.builds_of(
            job["name"].as_str().unwrap(),
            job["version"].as_str().unwrap(),
        );
        assert_eq!(builds.len(), 1, "one stored build of {}", job["name"]);
        // Worker names are `worker-<pid>-<slot>`.
        let worker = job["worker"].as_str().expect("the job names its worker");
        let pid = pids
            .iter()
            .find(|pid| worker.starts_with(&format!("worker-{pid}-")))
            .unwrap_or_else(|| panic!("built by neither worker: {job:#}"));
        *built_by.entry(*pid).or_default() += 1;
    }
    assert_eq!(
        built_by.len(),
        2,
        "each worker built at least one job: {built_by:?}"
    );
}

#[test]
fn a_killed_worker_s_job_is_finished_by_another() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let package = fixture_copy(dir.path(), "slow-build", "killed-worker");
    let id = add(&data, &[package.to_str().unwrap()]);
    let mut first = spawn_worker(&data, &["--lease", "4s"], None);
    wait_for_container(&data);
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    assert!(
        !containers_under(&data).is_empty(),
        "the dead worker's build goes on"
    );
    // Once the dead worker's lease runs out, the job is anyone's.
    std::thread::sleep(std::time::Duration::from_secs(5));
    let mut second = spawn_worker(&data, &["--lease", "4s"], None);
    assert!(second.wait().unwrap().success());
    assert_built_on_second_attempt(&data, id);
}

/// A UNIX socket in front of the Docker engine that the test can cut and restore.
struct EngineProxy {
    path: PathBuf,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::os::unix::net::UnixStream>>>,
}

impl EngineProxy {
    fn start(path: PathBuf) -> Self {
        use std::os::unix::net::{UnixListener, UnixStream};
        let listener = UnixListener::bind(&path).unwrap();
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (is_down, streams) = (down.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if is_down.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped unanswered
                }
                let Ok(engine) = UnixStream::connect("/var/run/docker.sock") else {
                    continue;
                };
                let mut tracked = streams.lock().unwrap();
                tracked.push(client.try_clone().unwrap());
                tracked.push(engine.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), engine.try_clone().unwrap()),
                    (engine, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self { path, down, open }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    fn cut(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn an_engine_that_stops_answering_is_retried_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let proxy = EngineProxy::start(dir.path().join("docker.sock"));
    let package = fixture_copy(dir.path(), "slow-build", "engine-outage");
    let id = add(&data, &[package.to_str().unwrap()]);
    let mut worker = spawn_worker(&data, &["--retry-delay", "2s"], Some(&proxy.host()));
    wait_for_container(&data);
    proxy.cut();
    assert!(worker.wait().unwrap().success());
    let waiting = job(&data, id);
    assert_eq!(waiting["status"], "queued", "to be retried: {waiting:#}");
    assert_eq!(waiting["attempts"], 1);
    assert!(
        waiting["message"].as_str().unwrap().contains("Docker"),
        "{waiting:#}"
    );

    proxy.restore();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let mut worker = spawn_worker(&data, &["--retry-delay", "2s"], Some(&proxy.host()));
    assert!(worker.wait().unwrap().success());
    assert_built_on_second_attempt(&data, id);
}

fn queued(data: &Path) -> Vec<String> {
    stdout(&docbuild(data, &["queue", "list", "--json"]))
        .lines()
        .map(|line| {
            let job: Value = serde_json::from_str(line).unwrap();
            format!(
                "{}@{}",
                job["name"].as_str().unwrap(),
                job["version"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn watch_follows_a_sparse_registry_with_etags() {
    let registry = TestRegistry::start(Some("watch-token"));
    registry.publish("watched", "0.1.0", "", &[("src/lib.rs", "")], &[]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    config(&data, &registry, Some("watch-token"));
    let watch = || {
        stdout(&docbuild(
            &data,
            &[
                "watch",
                "--registry",
                "testreg",
                "--crate",
                "watched",
                "--once",
            ],
        ))
    };
    assert_eq!(watch(), "", "the first pass sets the baseline");
    assert!(queued(&data).is_empty());
    registry.publish("watched", "0.2.0", "", &[("src/lib.rs", "")], &[]);
    assert_eq!(watch(), "queued watched@0.2.0");
    assert_eq!(queued(&data), vec!["watched@0.2.0"]);
    assert_eq!(watch(), "", "nothing new");
    let requests = registry.requests.lock().unwrap();
    assert!(
        requests
            .iter()
            .any(|(r, _)| r == "/index/wa/tc/watched 304"),
        "{requests:?}"
    );
    assert!(requests.iter().all(|(_, authorized)| *authorized));
}

#[test]
fn watch_follows_a_git_index_by_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index");
    std::fs::create_dir_all(index.join("gi/tc")).unwrap();
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t", "-C"])
            .arg(&index)
            .args(args)
            .status()
            .unwrap();
        assert!(status.success());
    };
    let line = |version: &str| {
        format!(
            "{{\"name\":\"gitcrate\",\"vers\":\"{version}\",\"deps\":[],\"cksum\":\"{}\",\"features\":{{}},\"yanked\":false}}\n",
            "0".repeat(64)
        )
    };
    std::fs::write(
        index.join("config.json"),
        "{\"dl\":\"http://127.0.0.1:1/dl\"}",
    )
    .unwrap();
    std::fs::write(index.join("gi/tc/gitcrate"), line("0.1.0")).unwrap();
    git(&["init", "--quiet"]);
    git(&["add", "."]);
    git(&["commit", "--quiet", "-m", "0.1.0"]);

    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("docbuild.toml"),
        format!(
            "[registries.gitreg]\nindex = \"file://{}\"\n",
            index.display()
        ),
    )
    .unwrap();
    let watch = || {
        stdout(&docbuild(
            &data,
            &["watch", "--registry", "gitreg", "--once"],
        ))
    };
    assert_eq!(watch(), "");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(index.join("gi/tc/gitcrate"))
        .unwrap();
    std::io::Write::write_all(&mut file, line("0.2.0").as_bytes()).unwrap();
    git(&["commit", "--quiet", "-am", "0.2.0"]);
    assert_eq!(watch(), "queued gitcrate@0.2.0");
    assert_eq!(watch(), "");
    assert_eq!(queued(&data), vec!["gitcrate@0.2.0"]);
}

/// Kills the child if the test fails before it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn send_signal(child: &std::process::Child, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the child to exit, for at most `limit`.
fn exit_within(child: &mut std::process::Child, limit: std::time::Duration) -> i32 {
    let sent = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().expect("exited, not killed by a signal");
        }
        assert!(
            sent.elapsed() < limit,
            "still running {limit:?} after the signal"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Starts `args` (a worker, or a server with workers) on a job of `fixture`, signals
/// it once the job's container runs, and checks that it stops within 10 s with
/// `code`, leaving no container and the job queued again. Returns the job id.
fn stop_mid_build(dir: &Path, fixture: &str, args: &[&str], signal: &str, code: i32) -> i64 {
    let data = dir.join("data");
    let package = fixture_copy(dir, fixture, &format!("stopped-{}", signal.to_lowercase()));
    let id = add(&data, &[package.to_str().unwrap()]);
    let mut process = KillOnDrop(spawn(&data, args, None));
    wait_for_container(&data);
    assert_eq!(job(&data, id)["status"], "running");
    send_signal(&process.0, signal);
    assert_eq!(
        exit_within(&mut process.0, std::time::Duration::from_secs(10)),
        code
    );
    assert_eq!(
        containers_under(&data),
        Vec::<String>::new(),
        "the build's container was removed"
    );
    let job = job(&data, id);
    assert_eq!(job["status"], "queued", "left for another worker: {job:#}");
    assert_eq!(job["worker"], Value::Null, "{job:#}");
    id
}

#[test]
fn ctrl_c_stops_a_worker_s_build_and_its_job_is_built_later() {
    let dir = tempfile::tempdir().unwrap();
    let id = stop_mid_build(dir.path(), "slow-build", &["worker"], "INT", 130);
    let data = dir.path().join("data");
    let mut next = spawn_worker(&data, &[], None);
    assert!(next.wait().unwrap().success());
    assert_built_on_second_attempt(&data, id);
}

#[test]
fn sigterm_stops_a_worker_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    stop_mid_build(
        dir.path(),
        "never-ends",
        &["worker", "--jobs", "2"],
        "TERM",
        0,
    );
}

#[test]
fn ctrl_c_stops_the_builds_of_serve_with_worker() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["serve", "--listen", "127.0.0.1:0", "--with-worker"];
    stop_mid_build(dir.path(), "never-ends", &args, "INT", 130);
}

#[test]
fn sigterm_stops_the_builds_of_serve_with_worker() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["serve", "--listen", "127.0.0.1:0", "--with-worker"];
    stop_mid_build(dir.path(), "never-ends", &args, "TERM", 0);
}

#[test]
fn a_lease_shorter_than_the_build_is_renewed_with_more_workers_than_cores() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let slow: Vec<i64> = (1..=2)
        .map(|n| {
            let package = fixture_copy(dir.path(), "slow-build", &format!("long-lease-{n}"));
            add(&data, &[package.to_str().unwrap()])
        })
        .collect();
    let quick: Vec<i64> = (1..=2)
        .map(|n| {
            let package = fixture_copy(dir.path(), "documented", &format!("short-lease-{n}"));
            add(&data, &[package.to_str().unwrap()])
        })
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = (cores + 2).max(4).to_string();
    work(&data, &["--jobs", &jobs, "--lease", "3s"]);
    for id in slow.iter().chain(&quick) {
        let job = job(&data, *id);
        assert_eq!(job["status"], "done", "{job:#}");
        assert_eq!(job["outcome"], "success", "{job:#}");
        assert_eq!(job["attempts"], 1, "claimed once: {job:#}");
    }
    for id in slow {
        let job = job(&data, id);
        let (store, build) = stored(&data, &job);
        let record = store.record(build);
        let took = record["targets"][0]["duration_ms"].as_u64().unwrap();
        assert!(took > 9_000, "the build outlasted three leases: {took} ms");
    }
}

#[test]
fn watch_skips_hostile_index_lines() {
    let registry = TestRegistry::start(None);
    registry.publish("hostile-index", "0.1.0", "", &[("src/lib.rs", "")], &[]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    config(&data, &registry, None);
    let watch = |extra: &[&str]| {
        let mut args = vec!["watch", "--registry", "testreg", "--once"];
        args.extend(extra);
        docbuild(&data, &args)
    };
    assert_eq!(
        stdout(&watch(&["--crate", "hostile-index"])),
        "",
        "baseline"
    );
    let line = |name: &str, version: &str| {
        serde_json::json!({
            "name": name, "vers": version, "deps": [], "cksum": "0".repeat(64),
            "features": {}, "yanked": false
        })
        .to_string()
    };
    for hostile in [
        line("../../escape", "0.2.0"),
        line("../../../../../escape", "0.2.0"),
        line("crâte", "0.2.0"),
        line("cârte", "0.2.0"),
        line("hostile-index", "../../0.2.0"),
        line("another-crate", "0.2.0"),
        "not json at all".to_string(),
    ] {
        registry.append_index_line("hostile-index", &hostile);
    }
    registry.append_index_line("hostile-index", &line("hostile-index", "0.3.0"));

    let pass = watch(&["--crate", "hostile-index"]);
    let warnings = String::from_utf8_lossy(&pass.stderr).to_string();
    assert_eq!(
        stdout(&pass),
        "queued hostile-index@0.3.0",
        "only the valid line"
    );
    for named in [
        "../../escape",
        "crâte",
        "cârte",
        "another-crate",
        "not json",
    ] {
        assert!(
            warnings.contains(named),
            "a warning names the line with {named}: {warnings}"
        );
    }
    assert_eq!(stdout(&watch(&["--crate", "hostile-index"])), "");
    assert_eq!(queued(&data), vec!["hostile-index@0.3.0"]);
    // Nothing was made outside the data directory.
    let outside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec!["data"]);
    assert!(
        walk(dir.path())
            .iter()
            .all(|path| !path.to_string_lossy().contains("escape")),
        "no path made from a hostile name"
    );

    for name in ["crâte", "../../escape", "a b"] {
        let refused = watch(&["--crate", name]);
        assert_eq!(refused.status.code(), Some(2), "--crate {name}");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}
