//! rustdoc's JSON over real HTTP from a real `docbuild serve`: a real worker in
//! Docker builds `documented` (its HTML docs, then its JSON in the same target
//! directory), the build's record has the JSON's format version, and
//! `/crate/{name}/{version}[/{target}]/json[.gz|.zst]` answer it, with JSON errors
//! for what is not there. With `DOCBUILD_TEST_DATABASE=postgres` the database is
//! PostgreSQL, else SQLite.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::stored::{DataStore, database_config, test_database};
use docbuild_store::testing::TestDatabase;

const TARGET: &str = "x86_64-unknown-linux-gnu";

fn docbuild(data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_docbuild"));
    command.env("DOCBUILD_DATA_DIR", data).env(
        "HOME",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("rustdoc-json-home"),
    );
    command
}

fn run(data: &Path, args: &[&str]) -> String {
    let output = docbuild(data).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The built data's database, when it is PostgreSQL: servers get copies of it.
static BUILT_DATABASE: OnceLock<Option<TestDatabase>> = OnceLock::new();

/// Builds, once: `documented` 0.1.0, and `type-error`, whose build fails.
fn built() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("rustdoc-json-{}", std::process::id()));
        let data = root.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let database = BUILT_DATABASE.get_or_init(test_database).as_ref();
        std::fs::write(data.join("docbuild.toml"), database_config(database)).unwrap();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        for name in ["documented", "type-error"] {
            let package = root.join(name);
            common::copy_dir(&fixtures.join(name), &package);
            run(&data, &["queue", "add", package.to_str().unwrap()]);
        }
        run(&data, &["worker", "--once", "--jobs", "2"]);
        let jobs = run(&data, &["queue", "list", "--json"]);
        assert_eq!(jobs.matches("\"outcome\":\"success\"").count(), 1, "{jobs}");
        data
    })
}

struct Server {
    port: u16,
    child: Child,
    data: PathBuf,
    _dir: tempfile::TempDir,
    _database: Option<TestDatabase>,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            )
        })
    }
}

impl Server {
    /// A server of its own over a copy of the built data; `prepare` runs on the copy
    /// before it starts.
    fn prepared(prepare: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let copied = Command::new("cp")
            .arg("-r")
            .arg(built())
            .arg(&data)
            .status()
            .unwrap();
        assert!(copied.success());
        let database = BUILT_DATABASE
            .get()
            .unwrap()
            .as_ref()
            .map(TestDatabase::copy);
        std::fs::write(
            data.join("docbuild.toml"),
            database_config(database.as_ref()),
        )
        .unwrap();
        prepare(&data);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let child = docbuild(&data)
            .args(["serve", "--listen", &listen])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if TcpStream::connect(&listen).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            port,
            child,
            data,
            _dir: dir,
            _database: database,
        }
    }

    fn start() -> Self {
        Self::prepared(|_| {})
    }

    /// A GET sent byte for byte, with `accept_encoding` if any: the body as sent.
    fn get(&self, path: &str, accept_encoding: Option<&str>) -> Reply {
        self.get_with(path, accept_encoding, None)
    }

    /// [`Self::get`] with `token` as its bearer, if any.
    fn get_with(&self, path: &str, accept_encoding: Option<&str>, token: Option<&str>) -> Reply {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut accept = accept_encoding
            .map(|a| format!("Accept-Encoding: {a}\r\n"))
            .unwrap_or_default();
        if let Some(token) = token {
            accept.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{accept}Connection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let end = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        let head = String::from_utf8_lossy(&response[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let body = response[end + 4..].to_vec();
        let reply = Reply {
            status,
            headers,
            body,
        };
        assert_ne!(
            reply.header("transfer-encoding"),
            Some("chunked"),
            "{path}: a length is sent"
        );
        reply
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut raw)
        .unwrap();
    raw
}

/// The JSON's format version as recorded with the build.
fn recorded_format_version(data: &Path) -> u64 {
    let store = DataStore::open(data);
    let build = store.current_build("documented", "0.1.0");
    let record = store.record(build);
    let json = &record["json"];
    assert_eq!(json["target"], TARGET, "{record}");
    assert!(json["size_bytes"].as_u64().unwrap() > 0, "{record}");
    assert!(json["duration_ms"].as_u64().is_some(), "{record}");
    let log = store.log(build).unwrap();
    assert!(log.contains("(rustdoc JSON)"), "{log}");
    assert!(log.contains("--output-format"), "{log}");
    json["format_version"].as_u64().expect("a format version")
}

#[test]
fn the_json_is_served_with_the_recorded_format_version() {
    let server = Server::start();
    let format_version = recorded_format_version(&server.data);
    assert!(format_version >= 30, "{format_version}");

    // Without gzip: the JSON itself.
    let plain = server.get("/crate/documented/0.1.0/json", None);
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-type"), Some("application/json"));
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(
        plain.header("x-rustdoc-json-format-version"),
        Some(format_version.to_string().as_str())
    );
    let json = plain.json();
    assert_eq!(json["format_version"].as_u64(), Some(format_version));
    let index = json["index"].as_object().expect("an index");
    let names: Vec<&str> = index
        .values()
        .filter_map(|item| item["name"].as_str())
        .collect();
    assert!(names.contains(&"Widget"), "{names:?}");

    // With gzip: the stored bytes, marked as such.
    let gzipped = server.get("/crate/documented/0.1.0/json", Some("br, gzip"));
    assert_eq!(gzipped.status, 200);
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    assert_eq!(gzipped.header("content-type"), Some("application/json"));
    assert_eq!(gunzip(&gzipped.body), plain.body);

    // `json.gz`: a gzip file, whatever the client takes.
    let file = server.get("/crate/documented/0.1.0/json.gz", None);
    assert_eq!(file.status, 200);
    assert_eq!(file.header("content-type"), Some("application/gzip"));
    assert_eq!(file.header("content-encoding"), None);
    assert_eq!(gunzip(&file.body), plain.body);

    // `json.zst`: zstd.
    let zstd = server.get("/crate/documented/0.1.0/json.zst", None);
    assert_eq!(zstd.status, 200);
    assert_eq!(zstd.header("content-type"), Some("application/zstd"));
    assert_eq!(zstd::decode_all(&zstd.body[..]).unwrap(), plain.body);

    // `latest`, a requirement and the default target name the same JSON.
    for path in [
        format!("/crate/documented/latest/{TARGET}/json"),
        "/crate/documented/0.1/json".to_string(),
        format!("/crate/documented/%5E0.1.0/{TARGET}/json"),
    ] {
        let reply = server.get(&path, None);
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.body, plain.body, "{path}");
    }
    let gz = server.get(&format!("/crate/documented/latest/{TARGET}/json.gz"), None);
    assert_eq!(gunzip(&gz.body), plain.body);

    // The HTML docs built in the same target directory are intact.
    for page in [
        "/documented/0.1.0/documented/index.html",
        "/documented/0.1.0/documented/struct.Widget.html",
    ] {
        let reply = server.get(page, None);
        assert_eq!(reply.status, 200, "{page}");
        assert!(
            String::from_utf8_lossy(&reply.body).contains("Widget"),
            "{page}"
        );
    }
}

#[test]
fn what_has_no_json_is_a_json_404() {
    let server = Server::start();
    for path in [
        "/crate/documented/0.1.0/i686-unknown-linux-gnu/json",
        "/crate/documented/0.1.0/i686-unknown-linux-gnu/json.gz",
        "/crate/documented/0.1.0/x86_64-pc-windows-msvc/json.zst",
        "/crate/documented/9.9.9/json",
        "/crate/documented/not-a-version/json.gz",
        "/crate/no-such-crate/latest/json",
        // Its build failed: no docs, no JSON.
        "/crate/type-error/0.1.0/json",
        "/crate/type-error/latest/x86_64-unknown-linux-gnu/json",
    ] {
        let reply = server.get(path, None);
        assert_eq!(reply.status, 404, "{path}");
        assert!(
            reply
                .header("content-type")
                .unwrap_or_default()
                .starts_with("application/json"),
            "{path}"
        );
        assert!(reply.json()["error"].is_string(), "{path}");
    }
}

#[test]
fn a_build_recorded_without_json_has_none_to_serve() {
    // As a build made before JSON was made, or whose JSON run failed, is recorded.
    let server = Server::prepared(|data| {
        let store = DataStore::open(data);
        let build = store.current_build("documented", "0.1.0");
        store.update_record(build, |record| {
            record.as_object_mut().unwrap().remove("json");
        });
    });
    for path in [
        "/crate/documented/0.1.0/json",
        "/crate/documented/latest/json.gz",
        "/crate/documented/0.1.0/x86_64-unknown-linux-gnu/json.zst",
    ] {
        let reply = server.get(path, None);
        assert_eq!(reply.status, 404, "{path}");
        assert!(
            reply.json()["error"]
                .as_str()
                .unwrap()
                .contains("no rustdoc JSON"),
            "{path}"
        );
    }
    // Its HTML docs are still served.
    let page = server.get("/documented/0.1.0/documented/index.html", None);
    assert_eq!(page.status, 200);
}

#[test]
fn private_sites_need_a_read_token_and_refuse_in_json() {
    let token = OnceLock::new();
    let server = Server::prepared(|data| {
        token
            .set(run(data, &["token", "create", "--scope", "read"]))
            .unwrap();
    });
    let token = token.get().unwrap().as_str();
    for path in [
        "/crate/documented/0.1.0/json",
        "/crate/documented/0.1.0/json.gz",
        format!("/crate/documented/latest/{TARGET}/json.zst").as_str(),
    ] {
        let refused = server.get(path, Some("gzip"));
        assert_eq!(refused.status, 401, "{path}");
        assert!(refused.json()["error"].is_string(), "{path}");
        let allowed = server.get_with(path, None, Some(token));
        assert_eq!(allowed.status, 200, "{path}");
    }
}
