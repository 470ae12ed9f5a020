//! Scale-out end to end: two workers on "machines" of their own (separate data
//! directories) share one PostgreSQL database and one S3 prefix, one of them dies
//! with SIGKILL mid-build and the other finishes its job once the lease runs out;
//! then a viewer with a third, empty data directory serves every build from the
//! shared services alone.
//!
//! Needs the services `scripts/services.sh` starts (PostgreSQL, moto's S3 server on
//! 127.0.0.1:9000 with the bucket `docbuild-test`) and Docker. A missing service
//! fails the test; it never skips.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use docbuild_store::testing::TestDatabase;
use serde_json::Value;

const BUCKET: &str = "docbuild-test";
/// Short, so that the dead worker's job is free again soon (3 s is the minimum).
const LEASE: &str = "5s";

/// The S3 test server, as the store's own tests name it.
fn s3_endpoint() -> String {
    std::env::var("DOCBUILD_TEST_S3").unwrap_or_else(|_| "http://127.0.0.1:9000".into())
}

fn assert_reachable(endpoint: &str) {
    let host_port = endpoint
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&host_port)
        .ok()
        .and_then(|mut addresses| addresses.next())
        .and_then(|address| TcpStream::connect_timeout(&address, Duration::from_secs(3)).ok());
    assert!(
        reachable.is_some(),
        "the S3 test server at {endpoint} (DOCBUILD_TEST_S3) cannot be reached; \
         start it with `bash scripts/services.sh` (moto, bucket `{BUCKET}`)"
    );
}

/// What every process of the test shares: the database, the bucket's prefix, and
/// the S3 endpoint and credentials.
struct Shared {
    database: String,
    storage: String,
    endpoint: String,
    home: PathBuf,
}

impl Shared {
    /// A machine's data directory: only a `docbuild.toml` naming the S3 endpoint,
    /// which is read from the configuration file alone.
    fn machine(&self, data: PathBuf) -> PathBuf {
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(
            data.join("docbuild.toml"),
            format!(
                "[storage]\nendpoint = \"{}\"\nregion = \"us-east-1\"\n",
                self.endpoint
            ),
        )
        .unwrap();
        data
    }

    fn command(&self, data: &Path) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_docbuild"));
        command
            .arg("--data-dir")
            .arg(data)
            .env_remove("DOCBUILD_DATA_DIR")
            .env("DOCBUILD_DATABASE_URL", &self.database)
            .env("DOCBUILD_STORAGE_URL", &self.storage)
            .env("AWS_ACCESS_KEY_ID", "docbuild-test")
            .env("AWS_SECRET_ACCESS_KEY", "docbuild-test")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("HOME", &self.home);
        command
    }

    fn run(&self, data: &Path, args: &[&str]) -> String {
        let output = self.command(data).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "docbuild {args:?}: exit {:?}: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    fn job(&self, data: &Path, id: i64) -> Value {
        serde_json::from_str(&self.run(data, &["queue", "show", &id.to_string(), "--json"]))
            .unwrap()
    }

    fn jobs(&self, data: &Path) -> Vec<Value> {
        self.run(data, &["queue", "list", "--json"])
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

/// Every process the test started, killed when it ends (passed or not); then the
/// sandbox containers and the target-directory mounts a killed worker left below
/// the test's directory are removed.
struct Processes {
    root: PathBuf,
    children: Vec<Child>,
}

impl Processes {
    fn add(&mut self, child: Child) -> usize {
        self.children.push(child);
        self.children.len() - 1
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let containers: Vec<String> = containers_under(&self.root)
            .into_iter()
            .map(|line| line.split(' ').next().unwrap_or_default().to_string())
            .collect();
        if !containers.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&containers)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        for mount in mounts_under(&self.root) {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&mount)
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Sandbox containers whose build log is below `root`: `ID LOG` lines.
fn containers_under(root: &Path) -> Vec<String> {
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
        .expect("the docker CLI");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| {
            line.split_once(' ')
                .is_some_and(|(_, log)| Path::new(log).starts_with(root))
        })
        .map(str::to_string)
        .collect()
}

/// Mount points below `root` (a killed worker's mounted target directories).
fn mounts_under(root: &Path) -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|mount| mount.starts_with(root))
        .collect();
    // Deepest first.
    mounts.sort_by_key(|mount| std::cmp::Reverse(mount.components().count()));
    mounts
}

/// Lines a process wrote on stderr, each with when it arrived.
type Lines = Arc<Mutex<Vec<(Instant, String)>>>;

struct Worker {
    /// Index in `Processes`.
    process: usize,
    pid: u32,
    data: PathBuf,
    stderr: Lines,
}

impl Worker {
    fn spawn(shared: &Shared, processes: &mut Processes, data: &Path) -> Self {
        let mut child = shared
            .command(data)
            .args(["worker", "--jobs", "1", "--lease", LEASE])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr: Lines = Arc::default();
        let (pipe, lines) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push((Instant::now(), line));
            }
        });
        Self {
            pid: child.id(),
            process: processes.add(child),
            data: data.to_path_buf(),
            stderr,
        }
    }

    /// Worker names are `worker-<pid>-<slot>`.
    fn named(&self, name: &str) -> bool {
        name.starts_with(&format!("worker-{}-", self.pid))
    }

    /// The lines saying that this worker began building `job`, with their times.
    fn building(&self, job: i64) -> Vec<(Instant, String)> {
        let prefix = format!("docbuild: job {job}: building ");
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, line)| line.starts_with(&prefix))
            .cloned()
            .collect()
    }

    fn log(&self) -> String {
        let lines = self.stderr.lock().unwrap();
        let text: Vec<&str> = lines.iter().map(|(_, line)| line.as_str()).collect();
        format!(
            "worker {} ({:?}):\n{}",
            self.pid,
            self.data,
            text.join("\n")
        )
    }
}

fn wait_for(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < limit,
            "{what}: not within {limit:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// GET with no redirects followed: the status and the body.
fn get(port: u16, path: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut response = agent
        .get(format!("http://127.0.0.1:{port}{path}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (status, body)
}

/// The ids of the builds a release's page lists, in its order.
fn listed_builds(page: &str, name: &str) -> Vec<i64> {
    let marker = format!("/crate/{name}/0.1.0/builds/");
    let mut ids = Vec::new();
    for piece in page.split(&marker).skip(1) {
        if let Some((id, _)) = piece.split_once("/log")
            && let Ok(id) = id.parse::<i64>()
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }
    ids
}

struct Fixture {
    name: &'static str,
    lib: &'static str,
    outcome: &'static str,
    items: &'static [&'static str],
}

/// In the order they are queued: the slow build comes third, so that each worker
/// has claimed (and finished) a quick one by the time one of them takes it.
const FIXTURES: [Fixture; 4] = [
    Fixture {
        name: "documented",
        lib: "documented",
        outcome: "success",
        items: &["Widget", "add"],
    },
    Fixture {
        name: "type-error",
        lib: "type_error",
        outcome: "build-failed",
        items: &[],
    },
    Fixture {
        name: "slow-build",
        lib: "slow_build",
        outcome: "success",
        items: &["Patience"],
    },
    Fixture {
        name: "metadata",
        lib: "metadata",
        outcome: "success",
        items: &["ChosenItem"],
    },
];
const KILLED: &str = "slow-build";

#[test]
fn two_machines_share_the_database_and_the_bucket_and_survive_a_killed_worker() {
    let database = TestDatabase::postgres();
    let endpoint = s3_endpoint();
    assert_reachable(&endpoint);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let storage = format!(
        "s3://{BUCKET}/test/scale-out-{}-{nanos}",
        std::process::id()
    );
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared {
        database: database.url(),
        storage,
        endpoint,
        home: Path::new(env!("CARGO_TARGET_TMPDIR")).join("scale-out-home"),
    };
    let mut processes = Processes {
        root: dir.path().to_path_buf(),
        children: Vec::new(),
    };
    let machine_a = shared.machine(dir.path().join("machine-a"));
    let machine_b = shared.machine(dir.path().join("machine-b"));
    let viewer = shared.machine(dir.path().join("viewer"));

    // Local packages are queued on machine A; their packages go to the bucket.
    let ids: BTreeMap<&str, i64> = FIXTURES
        .iter()
        .map(|fixture| {
            let (_copy, path) = common::fixture(fixture.name);
            let id = shared.run(&machine_a, &["queue", "add", path.to_str().unwrap()]);
            (fixture.name, id.parse().unwrap())
        })
        .collect();
    let killed_job = ids[KILLED];

    // Machine A's worker starts first; B's once A has claimed a job, so that each
    // takes one of the quick jobs queued before the slow one.
    let a = Worker::spawn(&shared, &mut processes, &machine_a);
    wait_for(
        "machine A's worker claims a job",
        Duration::from_secs(120),
        || a.log().contains(": building "),
        || a.log(),
    );
    let b = Worker::spawn(&shared, &mut processes, &machine_b);
    let workers = [&a, &b];
    let logs = || format!("{}\n{}", a.log(), b.log());

    // Whichever worker claims the slow build is killed once its container runs.
    let mut holder = String::new();
    wait_for(
        "the slow build is claimed",
        Duration::from_secs(300),
        || {
            let job = shared.job(&machine_a, killed_job);
            holder = job["worker"].as_str().unwrap_or_default().to_string();
            job["status"] == "running"
        },
        logs,
    );
    let victim = *workers
        .iter()
        .find(|w| w.named(&holder))
        .unwrap_or_else(|| panic!("claimed by neither worker: {holder}\n{}", logs()));
    let survivor = *workers.iter().find(|w| w.pid != victim.pid).unwrap();
    wait_for(
        "the slow build's container runs",
        Duration::from_secs(300),
        || !containers_under(&victim.data).is_empty(),
        logs,
    );
    assert_eq!(
        victim.building(killed_job).len(),
        1,
        "the victim says it is building: {}",
        victim.log()
    );
    let running = shared.job(&machine_b, killed_job);
    assert_eq!(running["status"], "running", "{running:#}");
    assert_eq!(running["worker"], holder.as_str(), "{running:#}");
    let victim_child = &mut processes.children[victim.process];
    victim_child.kill().unwrap(); // SIGKILL: no chance to give the job back
    victim_child.wait().unwrap();
    let killed_at = Instant::now();

    // The survivor drains the queue, the dead worker's job included once its lease
    // has run out.
    wait_for(
        "every job is done",
        Duration::from_secs(600),
        || {
            shared
                .jobs(&machine_b)
                .iter()
                .all(|job| job["status"] == "done")
        },
        || format!("{}\n{}", shared.run(&machine_b, &["queue", "list"]), logs()),
    );
    let survivor_child = &mut processes.children[survivor.process];
    let stopped = Command::new("kill")
        .args(["-TERM", &survivor.pid.to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = survivor_child.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(30),
            "the idle survivor did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "survivor: {status:?}\n{}", survivor.log());

    // Every job is done once, with its outcome; the killed one by the survivor, on its
    // second attempt.
    let mut settled_by = BTreeSet::new();
    for fixture in &FIXTURES {
        let id = ids[fixture.name];
        let job = shared.job(&viewer, id);
        assert_eq!(job["status"], "done", "{job:#}");
        assert_eq!(job["outcome"], fixture.outcome, "{job:#}\n{}", logs());
        let worker = job["worker"].as_str().unwrap_or_default();
        if id == killed_job {
            assert_eq!(job["attempts"], 2, "{job:#}");
            assert!(
                survivor.named(worker),
                "finished by the survivor (pid {}): {job:#}",
                survivor.pid
            );
        } else {
            assert_eq!(job["attempts"], 1, "built once: {job:#}");
        }
        let by = workers
            .iter()
            .find(|w| w.named(worker))
            .unwrap_or_else(|| panic!("settled by neither worker: {job:#}"));
        settled_by.insert(by.pid);

        // No job was built twice at once: each began once, on one worker, except the
        // killed one, which the survivor began only after the victim was dead.
        let (on_victim, on_survivor) = (victim.building(id), survivor.building(id));
        if id == killed_job {
            assert_eq!(on_victim.len(), 1, "{}", logs());
            assert!(on_victim[0].1.contains("attempt 1"), "{}", on_victim[0].1);
            assert_eq!(on_survivor.len(), 1, "{}", logs());
            assert!(
                on_survivor[0].1.contains("attempt 2"),
                "{}",
                on_survivor[0].1
            );
            assert!(
                on_survivor[0].0 > killed_at,
                "the survivor took the job over while its holder was alive\n{}",
                logs()
            );
        } else {
            assert_eq!(
                on_victim.len() + on_survivor.len(),
                1,
                "job {id} began once\n{}",
                logs()
            );
        }
    }
    assert_eq!(
        settled_by.len(),
        2,
        "both workers finished jobs: {settled_by:?}\n{}",
        logs()
    );
    for worker in workers {
        let log = worker.log();
        assert!(!log.contains("another worker holds"), "{log}");
        assert!(!log.contains("cannot store the build"), "{log}");
    }

    // A viewer with nothing but the shared services serves every build.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let serve = processes.add(
        shared
            .command(&viewer)
            .args(["serve", "--listen", &listen])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(
        "the viewer listens",
        Duration::from_secs(60),
        || {
            assert!(
                processes.children[serve].try_wait().unwrap().is_none(),
                "serve exited"
            );
            TcpStream::connect(&listen).is_ok()
        },
        String::new,
    );
    for fixture in &FIXTURES {
        let (name, job) = (fixture.name, shared.job(&viewer, ids[fixture.name]));
        let build = job["build"].as_i64().unwrap_or_else(|| panic!("{job:#}"));
        let docs = format!("/{name}/0.1.0/{}/", fixture.lib);
        let (status, page) = get(port, &docs);
        if fixture.outcome == "success" {
            assert_eq!(status, 200, "{docs}: {page}");
            for item in fixture.items {
                assert!(page.contains(item), "{docs} names {item}: {page}");
            }
        } else {
            assert_eq!(status, 404, "{docs} of a failed build: {page}");
        }

        let log_path = format!("/crate/{name}/0.1.0/builds/{build}/log");
        let (status, log) = get(port, &log_path);
        assert_eq!(status, 200, "{log_path}: {log}");
        assert!(log.contains(name), "{log_path}: {log}");
        if fixture.outcome == "build-failed" {
            assert!(log.contains("mismatched types"), "{log_path}: {log}");
        }

        let crate_page = format!("/crate/{name}/0.1.0");
        let (status, page) = get(port, &crate_page);
        assert_eq!(status, 200, "{crate_page}: {page}");
        let builds = listed_builds(&page, name);
        if name == KILLED {
            // The dead worker's build, aborted when its job was taken over, and the
            // survivor's.
            assert_eq!(builds.len(), 2, "{crate_page}: {builds:?}\n{page}");
            assert!(builds.contains(&build), "{crate_page}: {builds:?}");
            assert!(page.contains("outcome-infrastructure-error"), "{page}");
        } else {
            assert_eq!(builds, vec![build], "{crate_page}: one build");
        }
    }

    // rustdoc's static files come from the bucket too.
    let (_, page) = get(port, "/documented/0.1.0/documented/");
    let css = page
        .split("static.files/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|file| file.starts_with("rustdoc-") && file.ends_with(".css"))
        .unwrap_or_else(|| panic!("the page links rustdoc's stylesheet: {page}"));
    let static_file = format!("/documented/0.1.0/static.files/{css}");
    let (status, body) = get(port, &static_file);
    assert_eq!(status, 200, "{static_file}");
    assert!(!body.is_empty(), "{static_file}");

    // Nothing was stored on any machine: the builds are in the bucket, the state in
    // PostgreSQL.
    for machine in [&machine_a, &machine_b, &viewer] {
        assert!(
            !machine.join("storage").exists(),
            "{machine:?} stores builds"
        );
        assert!(
            !machine.join("docbuild.db").exists(),
            "{machine:?} has a SQLite database"
        );
    }
}
