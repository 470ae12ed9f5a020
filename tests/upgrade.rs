//! Upgrading from docbuild 0.1.0: a data directory that release made (its schema
//! without versions, builds as loose files under `crates/`, rustdoc's static files
//! once under `static/`, local packages under `jobs/`) keeps its jobs, builds, logs
//! and tokens; the first start moves the files into `storage/`, a second start
//! changes nothing, and a release queued from a path can be rebuilt afterwards.
//!
//! `tests/fixtures/upgrade/data-0.1.0.tar.gz` holds job 1, `documented 0.1.0` (local,
//! success, build 1), and job 2, `type-error 0.1.0` (local, build-failed, build 2), and
//! a read token whose secret is `tests/fixtures/upgrade/read-token`.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::Digest;

fn fixture(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/upgrade")
        .join(file)
}

fn unpack(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let archive = std::fs::File::open(fixture("data-0.1.0.tar.gz")).unwrap();
    tar::Archive::new(flate2::read::GzDecoder::new(archive))
        .unpack(to)
        .unwrap();
}

/// The embedded defaults: SQLite and storage in the data directory.
fn docbuild(data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_docbuild"));
    command
        .arg("--data-dir")
        .arg(data)
        .env_remove("DOCBUILD_DATA_DIR")
        .env_remove("DOCBUILD_DATABASE_URL")
        .env_remove("DOCBUILD_STORAGE_URL")
        .env(
            "HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("upgrade-home"),
        );
    command
}

fn run(data: &Path, args: &[&str]) -> String {
    let output = docbuild(data).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "docbuild {args:?}: exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn jobs(data: &Path) -> Vec<Value> {
    run(data, &["queue", "list", "--json"])
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn job(data: &Path, id: i64) -> Value {
    serde_json::from_str(&run(data, &["queue", "show", &id.to_string(), "--json"])).unwrap()
}

/// Every file and directory below `dir`, relative, with the files' SHA-256; not the
/// SQLite database's files (they change with checkpoints, and come and go with
/// connections): the database is compared by what the commands show of it.
fn snapshot(dir: &Path) -> BTreeMap<String, Option<String>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let relative = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .to_string();
            if entry.file_type().unwrap().is_dir() {
                pending.push(path);
                found.insert(format!("{relative}/"), None);
            } else if !relative.starts_with("docbuild.db") {
                let digest = sha2::Sha256::digest(std::fs::read(&path).unwrap());
                let hex = digest.iter().map(|byte| format!("{byte:02x}")).collect();
                found.insert(relative, Some(hex));
            }
        }
    }
    found
}

/// What changed from one snapshot to the next, one line per path.
fn changes(
    before: &BTreeMap<String, Option<String>>,
    after: &BTreeMap<String, Option<String>>,
) -> Vec<String> {
    let mut changed = Vec::new();
    for (path, was) in before {
        match after.get(path) {
            None => changed.push(format!("removed {path}")),
            Some(now) if now != was => changed.push(format!("changed {path}")),
            Some(_) => {}
        }
    }
    for path in after.keys().filter(|path| !before.contains_key(*path)) {
        changed.push(format!("added {path}"));
    }
    changed
}

/// Files (not directories) below `dir`.
fn files_below(dir: &Path) -> Vec<String> {
    snapshot(dir)
        .into_iter()
        .filter(|(path, _)| !path.ends_with('/'))
        .map(|(path, _)| path)
        .collect()
}

/// `docbuild serve` on a free port, killed when dropped.
struct Server {
    port: u16,
    child: Child,
}

impl Server {
    fn start(data: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let child = docbuild(data)
            .args(["serve", "--listen", &listen])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Self { port, child };
        let started = Instant::now();
        while TcpStream::connect(&listen).is_err() {
            assert!(
                server.child.try_wait().unwrap().is_none(),
                "serve exited before it listened"
            );
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "serve does not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// GET, following no redirect: status, `location` header, body.
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        let mut request = agent.get(format!("http://127.0.0.1:{}{path}", self.port));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_vec().unwrap_or_default();
        (status, location, body)
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).to_string()
}

/// What a server over an upgraded data directory must answer, with the token and
/// without it.
fn check_served(server: &Server, token: &str, original: &Path) {
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str())];

    let page_path = "/documented/0.1.0/documented/";
    let (status, _, page) = server.get(page_path, &auth);
    let page = text(&page);
    assert_eq!(status, 200, "{page_path}: {page}");
    assert!(page.contains("Widget"), "{page_path}: {page}");

    // A shared static file the page links, as 0.1.0 kept it in `static/`.
    let css = page
        .split("static.files/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|file| file.starts_with("rustdoc-") && file.ends_with(".css"))
        .unwrap_or_else(|| panic!("{page_path} links rustdoc's stylesheet: {page}"));
    let static_path = format!("/documented/0.1.0/static.files/{css}");
    let (status, _, body) = server.get(&static_path, &auth);
    assert_eq!(status, 200, "{static_path}");
    assert_eq!(
        body,
        std::fs::read(original.join("static").join(css)).unwrap(),
        "{static_path} is 0.1.0's file"
    );

    let log_path = "/crate/type-error/0.1.0/builds/2/log";
    let (status, _, log) = server.get(log_path, &auth);
    let log = text(&log);
    assert_eq!(status, 200, "{log_path}: {log}");
    assert!(log.contains("mismatched types"), "{log_path}: {log}");

    let (status, _, log) = server.get("/crate/documented/0.1.0/builds/1/log", &auth);
    assert_eq!(status, 200);
    assert!(text(&log).contains("Documenting documented v0.1.0"));

    // The token survived, and so did access control: without it, nothing.
    for (path, accept) in [
        (page_path, "text/html"),
        (page_path, "*/*"),
        (log_path, "*/*"),
        ("/", "text/html"),
    ] {
        let (status, location, _) = server.get(path, &[("accept", accept)]);
        assert!(
            status == 401 || ((300..400).contains(&status) && location.contains("/-/login")),
            "{path} without the token: {status} {location}"
        );
    }
    let (status, _, _) = server.get(page_path, &[("authorization", "Bearer dbt_wrong")]);
    assert_eq!(status, 401, "a wrong token");
}

#[test]
fn a_data_directory_of_0_1_0_is_moved_in_once_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let original = dir.path().join("original");
    unpack(&data);
    unpack(&original);
    let token = std::fs::read_to_string(fixture("read-token"))
        .unwrap()
        .trim()
        .to_string();
    assert!(
        !files_below(&data.join("crates")).is_empty(),
        "0.1.0 kept loose builds"
    );

    // The first start: both jobs, with their outcomes and builds.
    let listed = jobs(&data);
    let by_id: BTreeMap<i64, &Value> = listed
        .iter()
        .map(|job| (job["id"].as_i64().unwrap(), job))
        .collect();
    assert_eq!(by_id.len(), 2, "{listed:#?}");
    for (id, name, outcome) in [
        (1, "documented", "success"),
        (2, "type-error", "build-failed"),
    ] {
        let job = by_id[&id];
        assert_eq!(job["name"], name, "{job:#}");
        assert_eq!(job["version"], "0.1.0", "{job:#}");
        assert_eq!(job["registry"], "local", "{job:#}");
        assert_eq!(job["status"], "done", "{job:#}");
        assert_eq!(job["outcome"], outcome, "{job:#}");
        assert_eq!(job["build"], id, "{job:#}");
    }
    let tokens = run(&data, &["token", "list", "--json"]);
    assert_eq!(tokens.lines().count(), 1, "{tokens}");

    // The loose files were moved into storage, and the old layout is gone.
    for old in ["crates", "jobs", "static"] {
        assert!(!data.join(old).exists(), "{old}/ is left");
    }
    let stored = files_below(&data.join("storage"));
    assert!(stored.len() > 10, "the builds are in storage/: {stored:#?}");

    // Served from storage, with the token of 0.1.0.
    let before = snapshot(&data);
    let server = Server::start(&data);
    check_served(&server, &token, &original);
    server.stop();

    // That second start changed nothing, and neither does a third.
    assert_eq!(
        changes(&before, &snapshot(&data)),
        Vec::<String>::new(),
        "a second start changes no file"
    );
    assert_eq!(jobs(&data), listed, "a second start changes no job");
    assert_eq!(run(&data, &["token", "list", "--json"]), tokens);
    assert_eq!(
        changes(&before, &snapshot(&data)),
        Vec::<String>::new(),
        "a third start changes no file"
    );

    // The local package was moved into storage too: the release can be rebuilt.
    let rebuild: Value = serde_json::from_str(&run(
        &data,
        &["queue", "rebuild", "documented@0.1.0", "--json"],
    ))
    .unwrap();
    let id = rebuild["id"].as_i64().unwrap();
    assert!(id > 2, "a new job: {rebuild}");
    run(&data, &["worker", "--once"]);
    let rebuilt = job(&data, id);
    assert_eq!(rebuilt["status"], "done", "{rebuilt:#}");
    assert_eq!(rebuilt["outcome"], "success", "{rebuilt:#}");
    let build = rebuilt["build"].as_i64().unwrap();
    assert!(build > 2, "{rebuilt:#}");

    let server = Server::start(&data);
    let auth = format!("Bearer {token}");
    let (status, _, page) = server.get("/crate/documented/0.1.0", &[("authorization", &auth)]);
    let page = text(&page);
    assert_eq!(status, 200, "{page}");
    for listed in [1, build] {
        assert!(
            page.contains(&format!("/crate/documented/0.1.0/builds/{listed}/log")),
            "build {listed} is listed: {page}"
        );
    }
    let (status, _, docs) = server.get(
        "/documented/0.1.0/documented/struct.Widget.html",
        &[("authorization", &auth)],
    );
    assert_eq!(status, 200);
    assert!(text(&docs).contains("Widget"));
}
