//! A build's package files and its docs as one archive, over real HTTP from a real
//! `docbuild serve`: the package as the worker kept it (listings, text with line
//! anchors and escaped HTML, raw bytes, refused paths, missing files), a failed
//! build's package, and the docs' zip that opens offline. The builds are made once
//! per test run by a real worker in Docker; each test serves its own copy. With
//! `DOCBUILD_TEST_DATABASE=postgres` the database is PostgreSQL, else SQLite.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::stored::{database_config, test_database};
use docbuild_store::testing::TestDatabase;

/// A line of the fixture's `src/lib.rs` that is HTML if not escaped.
const HTML_LINE: &str = "// Compared with `a < b && b > c`: <script>alert(\"source\")</script>";

/// Bytes no page shows: not UTF-8, with NULs.
const BINARY: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\xff\xfe";

fn docbuild(data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_docbuild"));
    command.env("DOCBUILD_DATA_DIR", data).env(
        "HOME",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("package-files-home"),
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

/// The package of `documented` as built: its `src/lib.rs`, and where it is.
struct Built {
    data: PathBuf,
    lib_rs: Vec<u8>,
}

/// Builds, once: `documented` 0.1.0 with a line of HTML in its source, a binary file
/// and a text file too large to show; and `type-error`, whose build fails.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("package-files-{}", std::process::id()));
        let data = root.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let database = BUILT_DATABASE.get_or_init(test_database).as_ref();
        std::fs::write(data.join("docbuild.toml"), database_config(database)).unwrap();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let documented = root.join("documented");
        common::copy_dir(&fixtures.join("documented"), &documented);
        let lib_rs = documented.join("src/lib.rs");
        let mut text = std::fs::read_to_string(&lib_rs).unwrap();
        text.push_str(&format!("\n{HTML_LINE}\n"));
        std::fs::write(&lib_rs, &text).unwrap();
        std::fs::create_dir_all(documented.join("assets")).unwrap();
        std::fs::write(documented.join("assets/logo.png"), BINARY).unwrap();
        let large = "a line of text that repeats\n".repeat((2 << 20) / 28 + 100);
        std::fs::write(documented.join("assets/large.txt"), large).unwrap();
        let failing = root.join("type-error");
        common::copy_dir(&fixtures.join("type-error"), &failing);
        for package in [&documented, &failing] {
            run(&data, &["queue", "add", package.to_str().unwrap()]);
        }
        run(&data, &["worker", "--once", "--jobs", "2"]);
        let jobs = run(&data, &["queue", "list", "--json"]);
        assert_eq!(jobs.matches("\"outcome\":\"success\"").count(), 1, "{jobs}");
        assert_eq!(
            jobs.matches("\"outcome\":\"build-failed\"").count(),
            1,
            "{jobs}"
        );
        Built {
            data,
            lib_rs: text.into_bytes(),
        }
    })
}

/// A server of its own over a copy of the built data; `prepare` runs on the copy
/// before it starts.
struct Server {
    port: u16,
    child: Child,
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

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Server {
    fn start() -> Self {
        Self::prepared(|_| {})
    }

    fn prepared(prepare: impl FnOnce(&Path)) -> Self {
        let built = built();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let copied = Command::new("cp")
            .arg("-r")
            .arg(&built.data)
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
            _dir: dir,
            _database: database,
        }
    }

    fn get(&self, path: &str) -> Reply {
        self.get_with(path, None)
    }

    /// A GET with `token` as its bearer, if any.
    fn get_with(&self, path: &str, token: Option<&str>) -> Reply {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        let mut request = agent.get(format!("http://127.0.0.1:{}{path}", self.port));
        if let Some(token) = token {
            request = request.header("authorization", &format!("Bearer {token}"));
        }
        let mut response = request.call().unwrap();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_vec()
            .unwrap();
        Reply {
            status: response.status().as_u16(),
            headers,
            body,
        }
    }

    /// The status of a request sent byte for byte, so that no client tidies the path.
    fn raw_status(&self, path: &str) -> u16 {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        String::from_utf8_lossy(&response)
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SOURCE: &str = "/crate/documented/0.1.0/source/";

#[test]
fn the_package_root_lists_directories_then_files_with_sizes() {
    let server = Server::start();
    let root = server.get(SOURCE);
    assert_eq!(root.status, 200);
    assert!(
        root.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{:?}",
        root.headers
    );
    let page = root.text();
    let at = |name: &str| {
        page.find(&format!("data-name=\"{name}\""))
            .unwrap_or_else(|| panic!("{name} is not listed: {page}"))
    };
    assert!(at("src") < at("Cargo.toml"), "directories first: {page}");
    assert!(at("assets") < at("src"), "{page}");
    // The package as packaged: cargo's original manifest beside the normalized one.
    at("Cargo.toml.orig");
    assert!(
        page.contains("href=\"/crate/documented/0.1.0/source/src/\""),
        "{page}"
    );
    assert!(
        page.contains("href=\"/crate/documented/0.1.0/source/Cargo.toml\""),
        "{page}"
    );
    assert!(
        page.contains(" B<") || page.contains("KiB"),
        "sizes: {page}"
    );
    // Nothing the build wrote.
    for absent in ["target", "build.log", "docs"] {
        assert!(
            !page.contains(&format!("data-name=\"{absent}")),
            "{absent}: {page}"
        );
    }

    let src = server.get(&format!("{SOURCE}src/"));
    assert_eq!(src.status, 200);
    assert!(
        src.text().contains("data-name=\"lib.rs\""),
        "{}",
        src.text()
    );
    // `latest` names the newest version.
    let latest = server.get("/crate/documented/latest/source/src/");
    assert_eq!(latest.status, 200);
    assert!(latest.text().contains("data-name=\"lib.rs\""));
    // A directory without its slash, and the root without its own.
    let bare = server.get(&format!("{SOURCE}src"));
    assert_eq!(bare.status, 308);
    assert_eq!(
        bare.header("location"),
        Some("/crate/documented/0.1.0/source/src/")
    );
    let bare = server.get("/crate/documented/0.1.0/source");
    assert_eq!(bare.header("location"), Some(SOURCE));
}

#[test]
fn a_file_is_text_with_line_anchors_and_escaped_html() {
    let server = Server::start();
    let file = server.get(&format!("{SOURCE}src/lib.rs"));
    assert_eq!(file.status, 200);
    let page = file.text();
    let lines = String::from_utf8(built().lib_rs.clone()).unwrap();
    let count = lines.lines().count();
    for n in [1, count] {
        assert!(page.contains(&format!("id=\"L{n}\"")), "L{n}: {page}");
        assert!(page.contains(&format!("href=\"#L{n}\"")), "L{n}: {page}");
    }
    assert!(!page.contains(&format!("id=\"L{}\"", count + 1)), "{page}");
    assert!(
        page.contains("pub fn add(a: u32, b: u32) -&gt; u32 {"),
        "{page}"
    );
    assert!(
        page.contains(
            "a &lt; b &amp;&amp; b &gt; c`: &lt;script&gt;alert(&quot;source&quot;)&lt;/script&gt;"
        ),
        "{page}"
    );
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(
        file.header("content-security-policy")
            .is_some_and(|p| p.contains("default-src 'self'")),
        "{:?}",
        file.headers
    );
    assert!(
        page.contains("href=\"/crate/documented/0.1.0/source/src/lib.rs?raw=1\""),
        "{page}"
    );

    // The package as unpacked, before docbuild made it a workspace of its own.
    let manifest = server.get(&format!("{SOURCE}Cargo.toml?raw=1"));
    assert_eq!(manifest.status, 200);
    let manifest = manifest.text();
    assert!(manifest.contains("name = \"documented\""), "{manifest}");
    assert!(!manifest.contains("[workspace]"), "{manifest}");

    // The raw file: its bytes exactly, as a download that runs nothing.
    let raw = server.get(&format!("{SOURCE}src/lib.rs?raw=1"));
    assert_eq!(raw.status, 200);
    assert_eq!(raw.body, built().lib_rs);
    assert_eq!(raw.header("content-type"), Some("application/octet-stream"));
    assert_eq!(
        raw.header("content-disposition"),
        Some("attachment; filename=\"lib.rs\"")
    );
    let policy = raw.header("content-security-policy").unwrap();
    assert!(
        policy.starts_with("default-src 'none'") && policy.contains("sandbox"),
        "{policy}"
    );
    assert_eq!(raw.header("x-content-type-options"), Some("nosniff"));
}

#[test]
fn binary_and_large_files_are_offered_raw_only() {
    let server = Server::start();
    let binary = server.get(&format!("{SOURCE}assets/logo.png"));
    assert_eq!(binary.status, 200);
    let page = binary.text();
    assert!(page.contains("id=\"source-not-shown\""), "{page}");
    assert!(!page.contains("id=\"L1\""), "{page}");
    assert!(page.contains("assets/logo.png?raw=1"), "{page}");
    let raw = server.get(&format!("{SOURCE}assets/logo.png?raw=1"));
    assert_eq!(raw.body, BINARY);
    assert_eq!(raw.header("content-type"), Some("application/octet-stream"));

    let large = server.get(&format!("{SOURCE}assets/large.txt"));
    assert_eq!(large.status, 200);
    let page = large.text();
    assert!(page.contains("id=\"source-not-shown\""), "{page}");
    assert!(page.contains("larger than 2.0 MiB"), "{page}");
    let raw = server.get(&format!("{SOURCE}assets/large.txt?raw=1"));
    assert!(raw.body.len() > 2 << 20);
    assert!(raw.body.starts_with(b"a line of text that repeats\n"));
}

#[test]
fn only_the_package_files_are_reached() {
    let server = Server::start();
    for path in [
        "/crate/documented/0.1.0/source/../../../metrics",
        "/crate/documented/0.1.0/source/src/../Cargo.toml",
        "/crate/documented/0.1.0/source/src/%2e%2e/Cargo.toml",
        "/crate/documented/0.1.0/source/src/%2E%2E/%2E%2E/0.1.0/source/Cargo.toml?raw=1",
        "/crate/documented/0.1.0/source/..%2fCargo.toml",
        "/crate/documented/0.1.0/source/src//lib.rs",
        "/crate/documented/0.1.0/source/./Cargo.toml",
        "/crate/documented/0.1.0/source/~root/x",
    ] {
        let status = server.raw_status(path);
        assert!(status == 400 || status == 404, "{path}: {status}");
    }
    // Not in the package: the build's files, docs, storage keys, other crates.
    for path in [
        "src/missing.rs",
        "target/",
        "build.log",
        "documented/index.html",
        "builds/1/manifest.json.gz",
        "blobs/",
    ] {
        let reply = server.get(&format!("{SOURCE}{path}"));
        assert_eq!(reply.status, 404, "{path}");
        assert!(
            reply.text().contains("id=\"source-missing\""),
            "{path}: {}",
            reply.text()
        );
    }
    for path in [
        "/crate/documented/9.9.9/source/",
        "/crate/documented/not-a-version/source/",
        "/crate/no-such-crate/latest/source/",
        "/crate/no-such-crate/0.1.0/source/src/lib.rs",
    ] {
        let reply = server.get(path);
        assert_eq!(reply.status, 404, "{path}");
        assert!(reply.text().contains("id=\"source-missing\""), "{path}");
    }
}

#[test]
fn a_failed_build_keeps_its_package_but_has_no_docs_to_download() {
    let server = Server::start();
    let root = server.get("/crate/type-error/0.1.0/source/");
    assert_eq!(root.status, 200);
    assert!(root.text().contains("data-name=\"src\""), "{}", root.text());
    let lib = server.get("/crate/type-error/0.1.0/source/src/lib.rs");
    assert_eq!(lib.status, 200);
    assert!(lib.text().contains("id=\"L1\""));

    for path in [
        "/crate/type-error/0.1.0/download",
        "/crate/type-error/latest/download",
        "/crate/documented/9.9.9/download",
        "/crate/no-such-crate/0.1.0/download",
    ] {
        let reply = server.get(path);
        assert_eq!(reply.status, 404, "{path}");
        assert!(
            reply.text().contains("id=\"download-missing\""),
            "{path}: {}",
            reply.text()
        );
    }
}

#[test]
fn the_docs_download_is_one_zip_that_opens_offline() {
    let server = Server::start();
    let reply = server.get("/crate/documented/0.1.0/download");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/zip"));
    assert_eq!(
        reply.header("content-disposition"),
        Some("attachment; filename=\"documented-0.1.0-docs.zip\"")
    );
    assert_eq!(
        reply.header("content-length"),
        Some(reply.body.len().to_string().as_str())
    );
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(reply.body.clone())).unwrap();
    let names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
    assert!(
        names.iter().all(|n| n.starts_with("documented-0.1.0/")),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("documented-0.1.0/static.files/")),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("documented-0.1.0/src/documented/")),
        "source pages: {names:?}"
    );
    let mut index = String::new();
    zip.by_name("documented-0.1.0/documented/index.html")
        .unwrap()
        .read_to_string(&mut index)
        .unwrap();
    assert!(index.contains("../static.files/"), "{index}");
    // As rustdoc made it: without the viewer's bar.
    assert!(!index.contains("docbuild-bar"), "{index}");
    // Every static file the page names is in the archive, so it opens offline.
    let mut named = 0;
    for piece in index.split("../static.files/").skip(1) {
        let file: String = piece
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect();
        if file.is_empty() {
            continue;
        }
        named += 1;
        let path = format!("documented-0.1.0/static.files/{file}");
        assert!(names.contains(&path), "{path}: {names:?}");
    }
    assert!(named > 2, "{index}");
    // Each entry is whole.
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        assert_eq!(content.len() as u64, entry.size(), "{:?}", entry.name());
    }

    // `latest` is the same release.
    let latest = server.get("/crate/documented/latest/download");
    assert_eq!(latest.status, 200);
    assert_eq!(
        latest.header("content-disposition"),
        Some("attachment; filename=\"documented-0.1.0-docs.zip\"")
    );
}

#[test]
fn package_files_outlive_a_collection_of_unused_files() {
    // Every stored file no build refers to goes; the package's are referred to.
    let server = Server::prepared(|data| {
        let collected = run(data, &["gc", "--grace", "0s"]);
        // Every stored file is referred to, by docs or by a package.
        assert!(!collected.contains("stored file"), "{collected}");
    });
    let raw = server.get(&format!("{SOURCE}src/lib.rs?raw=1"));
    assert_eq!(raw.status, 200);
    assert_eq!(raw.body, built().lib_rs);
    let raw = server.get("/crate/type-error/0.1.0/source/Cargo.toml?raw=1");
    assert_eq!(raw.status, 200);
    assert!(String::from_utf8_lossy(&raw.body).contains("type-error"));
}

#[test]
fn private_sites_need_a_read_token() {
    let token = std::sync::OnceLock::new();
    let server = Server::prepared(|data| {
        let created = run(data, &["token", "create", "--scope", "read"]);
        token.set(created).unwrap();
    });
    let token = token.get().unwrap().as_str();
    for path in [
        SOURCE,
        "/crate/documented/0.1.0/source/src/lib.rs",
        "/crate/documented/0.1.0/source/src/lib.rs?raw=1",
        "/crate/documented/0.1.0/download",
    ] {
        let refused = server.get(path);
        assert_eq!(refused.status, 401, "{path}");
        assert!(!refused.text().contains("pub fn add"), "{path}");
        assert_eq!(server.get_with(path, Some(token)).status, 200, "{path}");
    }
}
