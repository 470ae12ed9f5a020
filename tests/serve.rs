//! `docbuild serve` over real HTTP: every route, redirect, error, the API, access
//! control, path traversal and foreign hosts. The builds it serves are made once per
//! test run by a real worker; each test serves its own copy. With
//! `DOCBUILD_TEST_DATABASE=postgres` every server's database is PostgreSQL (each a
//! copy of the one the worker filled), else SQLite.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::stored::{DataStore, database_config, test_database};
use docbuild_store::testing::TestDatabase;
use serde_json::Value;

fn docbuild(data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_docbuild"));
    command.env("DOCBUILD_DATA_DIR", data).env(
        "HOME",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-home"),
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

/// Builds, once: `documented` 0.1.0 and 0.2.0, `metadata` (with features) and
/// `proc-macro-fixture` (a name with dashes).
fn built() -> &'static Path {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    DATA.get_or_init(|| {
        let root =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("serve-{}", std::process::id()));
        let data = root.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let database = BUILT_DATABASE.get_or_init(test_database).as_ref();
        std::fs::write(data.join("docbuild.toml"), database_config(database)).unwrap();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let newer = root.join("documented-0.2.0");
        std::fs::create_dir_all(newer.join("src")).unwrap();
        let manifest = std::fs::read_to_string(fixtures.join("documented/Cargo.toml")).unwrap();
        std::fs::write(newer.join("Cargo.toml"), manifest.replace("0.1.0", "0.2.0")).unwrap();
        std::fs::write(
            newer.join("src/lib.rs"),
            "//! Newer.\n\n/// Only in 0.2.0.\npub struct Gadget;\n",
        )
        .unwrap();
        for package in [
            fixtures.join("documented"),
            newer,
            fixtures.join("metadata"),
            fixtures.join("proc-macro-fixture"),
        ] {
            run(&data, &["queue", "add", package.to_str().unwrap()]);
        }
        run(&data, &["worker", "--once", "--jobs", "2"]);
        let jobs = run(&data, &["queue", "list", "--json"]);
        assert_eq!(jobs.matches("\"outcome\":\"success\"").count(), 4, "{jobs}");
        add_second_target(&data);
        data
    })
}

/// Only the host's standard library is installed here, so one stored build is given
/// a second target's docs the way a worker stores them: under `<target>/`, and
/// listed in the record.
fn add_second_target(data: &Path) {
    const OTHER: &str = "wasm32-unknown-unknown";
    let store = DataStore::open(data);
    let build = store.current_build("documented", "0.1.0");
    store.copy_dir(build, "documented", &format!("{OTHER}/documented"));
    store.update_record(build, |record| {
        let mut target = record["targets"][0].clone();
        target["target"] = OTHER.into();
        target["docs"] = format!("/docs/{OTHER}/documented/index.html").into();
        record["targets"].as_array_mut().unwrap().push(target);
    });
}

/// A server of its own over a copy of the built data.
struct Server {
    port: u16,
    data: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
    /// Its PostgreSQL database, if that is the engine.
    _database: Option<TestDatabase>,
}

impl Server {
    fn start(extra: &[&str]) -> Self {
        Self::configured("", extra)
    }

    /// A server whose `docbuild.toml` is `config`, where `{port}` is its port.
    fn configured(config: &str, extra: &[&str]) -> Self {
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
        Self::on_with(dir, data, config, database, extra)
    }

    /// A server over a new data directory.
    fn on(dir: tempfile::TempDir, data: PathBuf, extra: &[&str]) -> Self {
        Self::on_with(dir, data, "", test_database(), extra)
    }

    fn on_with(
        dir: tempfile::TempDir,
        data: PathBuf,
        config: &str,
        database: Option<TestDatabase>,
        extra: &[&str],
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(
            data.join("docbuild.toml"),
            format!(
                "{}{}",
                config.replace("{port}", &port.to_string()),
                database_config(database.as_ref())
            ),
        )
        .unwrap();
        let listen = format!("127.0.0.1:{port}");
        let child = docbuild(&data)
            .args(["serve", "--listen", &listen])
            .args(extra)
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
            data,
            child,
            _dir: dir,
            _database: database,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], None)
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = match body {
            Some(body) => agent.run(request.body(body.to_string()).unwrap()),
            None => agent.run(request.body(()).unwrap()),
        }
        .unwrap();
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A request sent byte for byte, so that no client tidies the path or host.
    fn raw(&self, path: &str, host: &str) -> u16 {
        let response = self.raw_response(path, host, "");
        let text = String::from_utf8_lossy(&response);
        text.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    fn raw_response(&self, path: &str, host: &str, headers: &str) -> Vec<u8> {
        self.raw_request("GET", path, host, headers)
    }

    fn raw_request(&self, method: &str, path: &str, host: &str, headers: &str) -> Vec<u8> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Content-Length: 0\r\n\
             Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        response
    }

    /// The login form's CSRF token and the cookie that carries it.
    fn login_form(&self) -> (String, String) {
        let form = self.get("/-/login");
        assert_eq!(form.status, 200);
        let cookie = form
            .header("set-cookie")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let csrf = form
            .body
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap()
            .to_string();
        assert!(cookie.starts_with("docbuild_csrf=") && cookie.ends_with(&csrf));
        (cookie, csrf)
    }

    /// Logs in through the form, as the viewer's own page does; answers the reply.
    fn log_in(&self, token: &str) -> Reply {
        let (cookie, csrf) = self.login_form();
        self.request(
            "POST",
            "/-/login",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", &self.url("")),
                ("cookie", &cookie),
            ],
            Some(&format!("token={token}&csrf={csrf}")),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn redirects_to(&self, path: &str) -> bool {
        (300..400).contains(&self.status) && self.header("location") == Some(path)
    }
}

#[test]
fn pages_and_docs_follow_docs_rs_urls() {
    let server = Server::start(&[]);
    let list = server.get("/");
    assert_eq!(list.status, 200);
    assert!(list.body.contains("id=\"crate-filter\""));
    for name in ["documented", "metadata", "proc-macro-fixture"] {
        assert!(
            list.body.contains(&format!("data-name=\"{name}\"")),
            "{name}"
        );
    }
    assert!(
        server
            .get("/?q=meta")
            .body
            .contains("data-name=\"metadata\"")
    );
    assert!(
        !server
            .get("/?q=meta")
            .body
            .contains("data-name=\"documented\"")
    );

    // Redirects to the exact version's docs.
    for (from, to) in [
        ("/documented", "/documented/0.2.0/documented/"),
        ("/documented/", "/documented/0.2.0/documented/"),
        ("/documented/latest", "/documented/0.2.0/documented/"),
        ("/documented/0.1", "/documented/0.1.0/documented/"),
        ("/documented/~0.1.0", "/documented/0.1.0/documented/"),
        ("/documented/*", "/documented/0.2.0/documented/"),
        (
            "/documented/latest/documented/struct.Gadget.html",
            "/documented/0.2.0/documented/struct.Gadget.html",
        ),
        (
            "/documented/0.1/documented/struct.Widget.html",
            "/documented/0.1.0/documented/struct.Widget.html",
        ),
        (
            "/proc_macro_fixture",
            "/proc-macro-fixture/0.1.0/proc_macro_fixture/",
        ),
        (
            "/proc_macro_fixture/0.1.0/proc_macro_fixture/",
            "/proc-macro-fixture/0.1.0/proc_macro_fixture/",
        ),
        (
            "/documented/0.1.0/x86_64-unknown-linux-gnu/documented/index.html",
            "/documented/0.1.0/documented/index.html",
        ),
        (
            "/documented/0.1.0/documented",
            "/documented/0.1.0/documented/",
        ),
    ] {
        let reply = server.get(from);
        assert!(
            reply.redirects_to(to),
            "{from} → {} {:?}",
            reply.status,
            reply.header("location")
        );
    }

    // The default target's docs, with the bar over them and a strict policy.
    let page = server.get("/documented/0.1.0/documented/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"docbuild-bar\"") && page.body.contains("Widget"));
    assert!(
        page.body
            .contains("<option value=\"/documented/0.2.0/documented/\">0.2.0</option>")
    );
    let csp = page.header("content-security-policy").unwrap();
    let scripts = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"));
    assert_eq!(
        scripts,
        Some("script-src 'self'"),
        "no inline scripts: {csp}"
    );
    assert!(
        server
            .get("/documented/0.2.0/documented/struct.Gadget.html")
            .status
            == 200
    );

    // A page this version lacks: 404 with a link to the crate's root.
    let missing = server.get("/documented/0.1.0/documented/struct.Gadget.html");
    assert_eq!(missing.status, 404);
    assert!(
        missing
            .body
            .contains("href=\"/documented/0.1.0/documented/\"")
    );
    assert_eq!(server.get("/documented/9.9.9/documented/").status, 404);
    assert_eq!(server.get("/no-such-crate").status, 404);

    // The crate page: outcome, targets, size, history and logs; features on their own.
    let crate_page = server.get("/crate/metadata/0.1.0");
    assert_eq!(crate_page.status, 200);
    for expected in [
        "success",
        "x86_64-unknown-linux-gnu",
        "Docs size",
        "/builds/",
    ] {
        assert!(crate_page.body.contains(expected), "{expected}");
    }
    let features = server.get("/crate/metadata/0.1.0/features");
    assert!(
        features.body.contains("<code>chosen</code>"),
        "{}",
        features.body
    );
    let log_link = crate_page
        .body
        .split("href=\"")
        .find(|s| s.contains("/log\""))
        .unwrap();
    let log = server.get(log_link.split('"').next().unwrap());
    assert_eq!(log.status, 200);
    assert!(log.body.contains("cargo") && log.body.contains("rustdoc"));
    assert_eq!(server.get("/crate/metadata/9.9.9").status, 404);

    let status: Value =
        serde_json::from_str(&server.get("/crate/documented/0.1/status.json").body).unwrap();
    assert_eq!(
        status,
        serde_json::json!({"version": "0.1.0", "doc_status": true})
    );
    let badge = server.get("/documented/badge.svg");
    assert_eq!(badge.header("content-type"), Some("image/svg+xml"));
    assert!(badge.body.contains("0.2.0"));
}

#[test]
fn files_are_cached_validated_and_compressed() {
    let server = Server::start(&[]);
    let page = server.get("/documented/0.1.0/documented/");
    let stylesheet = page
        .body
        .split("href=\"../static.files/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .filter(|s| s.starts_with("rustdoc-"))
        .or_else(|| {
            page.body
                .split("../static.files/")
                .filter_map(|s| s.split('"').next())
                .find(|s| s.starts_with("rustdoc-") && s.ends_with(".css"))
        })
        .expect("rustdoc's stylesheet");
    let css = server.get(&format!("/documented/0.1.0/static.files/{stylesheet}"));
    assert_eq!(css.status, 200);
    assert_eq!(
        css.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    // Sent as stored (brotli) to a client that takes it; as gzip made once to one
    // that takes only gzip; decompressed for one that takes neither. Identical files of every build are stored once: both versions'
    // stylesheets are one blob.
    let store = DataStore::open(&server.data);
    let entry = |version: &str| {
        let build = store.current_build("documented", version);
        let manifest = store
            .block_on(store.store().builds().manifest(build))
            .unwrap()
            .unwrap();
        manifest.files[&format!("static.files/{stylesheet}")].clone()
    };
    let stored = entry("0.1.0");
    assert_eq!(stored.key(), entry("0.2.0").key());
    assert_eq!(stored.encoding, docbuild_store::archive::Encoding::Brotli);
    let blob = store
        .block_on(docbuild_store::archive::load(
            store.store().builds().blobs(),
            &stored,
        ))
        .unwrap();
    drop(store);
    let host = format!("127.0.0.1:{}", server.port);
    let path = format!("/documented/0.1.0/static.files/{stylesheet}");
    let split = |response: Vec<u8>| {
        let end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&response[..end]).to_lowercase();
        (head, response[end + 4..].to_vec())
    };
    let (head, body) = split(server.raw_response(&path, &host, "Accept-Encoding: gzip, br\r\n"));
    assert!(head.contains("content-encoding: br"), "{head}");
    assert_eq!(body, blob.to_vec(), "the stored bytes, as they are");
    let (head, body) = split(server.raw_response(&path, &host, "Accept-Encoding: gzip\r\n"));
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let mut css = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut css).unwrap();
    assert!(css.contains("font-family"), "gzip made from the content");
    let (head, body) = split(server.raw_response(&path, &host, ""));
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("font-family"));

    let etag = page.header("etag").unwrap().to_string();
    let again = server.request(
        "GET",
        "/documented/0.1.0/documented/",
        &[("if-none-match", &etag)],
        None,
    );
    assert_eq!(again.status, 304);
    let gzipped = server.raw_response(
        "/documented/0.1.0/documented/",
        &host,
        "Accept-Encoding: gzip\r\n",
    );
    let head = String::from_utf8_lossy(&gzipped[..gzipped.len().min(1024)]).to_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
}

#[test]
fn the_api_queues_builds_and_names_bad_fields() {
    let server = Server::start(&[]);
    let post = |body: &str| {
        server.request(
            "POST",
            "/api/v1/builds",
            &[("content-type", "application/json")],
            Some(body),
        )
    };
    let accepted = post(r#"{"name": "itoa", "version": "1.0.11"}"#);
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let id = serde_json::from_str::<Value>(&accepted.body).unwrap()["id"]
        .as_i64()
        .unwrap();
    let job: Value =
        serde_json::from_str(&server.get(&format!("/api/v1/builds/{id}")).body).unwrap();
    assert_eq!(job["status"], "queued");
    assert_eq!(job["registry"], "crates-io");

    for (body, field) in [
        (r#"{"version": "1.0.0"}"#, Some("name")),
        (r#"{"name": "a b", "version": "1.0.0"}"#, Some("name")),
        (r#"{"name": "itoa", "version": "one"}"#, Some("version")),
        (r#"{"name": "itoa"}"#, Some("version")),
        (
            r#"{"name": "itoa", "version": "1.0.0", "registry": "nowhere"}"#,
            Some("registry"),
        ),
        (r#"{"name": 3, "version": "1.0.0"}"#, Some("name")),
        ("{not json", None),
        ("[1]", None),
    ] {
        let reply = post(body);
        assert_eq!(reply.status, 400, "{body}");
        let error: Value = serde_json::from_str(&reply.body).unwrap();
        assert!(error["error"].is_string(), "{body}");
        assert_eq!(error["field"].as_str(), field, "{body}");
    }
    assert_eq!(server.get("/api/v1/builds/999999").status, 404);
    assert_eq!(server.get("/api/v1/builds/nope").status, 400);
}

#[test]
fn admins_delete_docs_and_remove_jobs_through_the_api() {
    let server = Server::start(&[]);
    let admin = run(&server.data, &["token", "create", "--scope", "admin"]);
    let publish = run(&server.data, &["token", "create", "--scope", "publish"]);
    let post = |path: &str, token: &str| {
        server.request(
            "POST",
            path,
            &[("authorization", &format!("Bearer {token}"))],
            None,
        )
    };
    let page = "/documented/0.2.0/documented/";
    let with_admin = |path: &str| {
        server
            .request(
                "GET",
                path,
                &[("authorization", &format!("Bearer {admin}"))],
                None,
            )
            .status
    };
    assert_eq!(with_admin(page), 200);
    assert_eq!(
        post("/crate/documented/0.2.0/delete", &publish).status,
        403,
        "publish cannot delete"
    );
    let deleted = post("/crate/documented/0.2.0/delete", &admin);
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let deleted: Value = serde_json::from_str(&deleted.body).unwrap();
    assert_eq!(deleted["deleted"], 1);
    assert_eq!(with_admin(page), 404, "no longer served");
    assert_eq!(post("/crate/documented/0.2.0/delete", &admin).status, 404);

    let queued = server.request(
        "POST",
        "/api/v1/builds",
        &[
            ("authorization", &format!("Bearer {publish}")),
            ("content-type", "application/json"),
        ],
        Some(r#"{"name": "itoa", "version": "1.0.11"}"#),
    );
    let id = serde_json::from_str::<Value>(&queued.body).unwrap()["id"]
        .as_i64()
        .unwrap();
    let remove = format!("/api/v1/builds/{id}/remove");
    assert_eq!(post(&remove, &publish).status, 403, "publish cannot remove");
    let removed = post(&remove, &admin);
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(with_admin(&format!("/api/v1/builds/{id}")), 404);
    assert_eq!(post(&remove, &admin).status, 404);
}

#[test]
fn tokens_guard_every_page_and_call() {
    let server = Server::start(&[]);
    let token = |scope: &str| run(&server.data, &["token", "create", "--scope", scope]);
    let read = token("read");
    let publish = token("publish");
    let admin = token("admin");
    let bearer = |t: &str| format!("Bearer {t}");

    for path in [
        "/",
        "/documented/0.1.0/documented/",
        "/crate/documented/0.1.0",
        "/api/v1/builds/1",
    ] {
        assert_eq!(server.get(path).status, 401, "{path}");
        let with = server.request("GET", path, &[("authorization", &bearer(&read))], None);
        assert!(with.status < 400, "{path}: {}", with.status);
    }
    let build = r#"{"name": "itoa", "version": "1.0.11"}"#;
    let post = |t: Option<&str>| {
        let auth = t.map(bearer);
        let mut headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        headers.push(("content-type", "application/json"));
        server
            .request("POST", "/api/v1/builds", &headers, Some(build))
            .status
    };
    assert_eq!(post(None), 401);
    assert_eq!(post(Some(&read)), 403, "read cannot queue");
    assert_eq!(post(Some(&publish)), 202);
    assert_eq!(post(Some("dbt_not-a-token")), 401);
    let rebuild = |t: &str| {
        server
            .request(
                "POST",
                "/crate/documented/0.1.0/rebuild",
                &[("authorization", &bearer(t))],
                None,
            )
            .status
    };
    assert_eq!(rebuild(&publish), 403, "publish cannot rebuild");
    assert_eq!(rebuild(&admin), 202);

    // Revoked tokens are refused.
    let listed = run(&server.data, &["token", "list", "--json"]);
    let first: Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    run(&server.data, &["token", "revoke", &first["id"].to_string()]);
    settle();
    assert_eq!(
        server
            .request("GET", "/", &[("authorization", &bearer(&read))], None)
            .status,
        401
    );

    // The login form sets a cookie that then opens the pages.
    let bad = server.log_in("dbt_wrong");
    assert_eq!(bad.status, 401);
    let login = server.log_in(&publish);
    assert_eq!(login.status, 303);
    let cookie = login
        .headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.as_str())
        .find(|v| v.starts_with("docbuild_token="))
        .unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(!cookie.contains("Secure"), "not over https: {cookie}");
    let pair = cookie.split(';').next().unwrap();
    assert_eq!(
        server.request("GET", "/", &[("cookie", pair)], None).status,
        200
    );
    // The scheme is any case.
    assert_eq!(
        server
            .request(
                "GET",
                "/",
                &[("authorization", &format!("bearer {admin}"))],
                None
            )
            .status,
        200
    );
    assert_eq!(
        server
            .request(
                "GET",
                "/",
                &[("authorization", &format!("BEARER {admin}"))],
                None
            )
            .status,
        200
    );
}

#[test]
fn traversal_and_foreign_hosts_are_refused() {
    let server = Server::start(&[]);
    let host = format!("127.0.0.1:{}", server.port);
    for path in [
        "/documented/0.1.0/../../../../etc/passwd",
        "/documented/0.1.0/documented/../../../../../../etc/passwd",
        "/documented/0.1.0/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/documented/0.1.0/documented/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/documented/0.1.0/documented/%2e%2e%5c%2e%2e%5cetc%5cpasswd",
        "/documented/0.1.0/static.files/..%2f..%2f..%2fdocbuild.db",
        "/crate/documented/0.1.0/builds/1%2f..%2f..%2f/log",
        "/-/static/..%2f..%2fCargo.toml",
    ] {
        let status = server.raw(path, &host);
        assert!(status == 400 || status == 404, "{path}: {status}");
    }
    assert_eq!(server.raw("/", "evil.example"), 421);
    assert_eq!(server.raw("/", &format!("localhost:{}", server.port)), 200);
}

#[test]
fn serve_with_worker_is_a_whole_service() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::on(dir, data, &["--with-worker"]);
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/documented");
    let id: i64 = run(&server.data, &["queue", "add", package.to_str().unwrap()])
        .parse()
        .unwrap();
    let mut job = Value::Null;
    for _ in 0..600 {
        job = serde_json::from_str(&server.get(&format!("/api/v1/builds/{id}")).body).unwrap();
        if job["status"] == "done" {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(job["outcome"], "success", "{job:#}");
    assert_eq!(server.get("/documented/0.1.0/documented/").status, 200);
}

#[test]
fn nothing_a_crate_wrote_runs_as_a_script() {
    let server = Server::start(&[]);
    // What a build script could leave among the docs: a script of its own, an SVG
    // with a script, a rewritten data script, an HTML file that is no page, and a
    // script among rustdoc's static files.
    let evil = "document.title = 'pwned'; fetch('/api/v1/builds', {method: 'POST'});";
    let sidebar = format!("window.SIDEBAR_ITEMS = {{}}; {evil}");
    {
        let store = DataStore::open(&server.data);
        let build = store.current_build("documented", "0.1.0");
        store.add_files(
            build,
            &[
                ("x.js", evil.as_bytes()),
                (
                    "documented/evil.svg",
                    b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>",
                ),
                ("documented/sidebar-items.js", sidebar.as_bytes()),
                ("documented/part.html", b"<script>alert(1)</script>"),
            ],
        );
    }

    let inert = |reply: &Reply| {
        let csp = reply.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.split(';').any(|d| d.trim() == "sandbox"),
            "no sandbox: {csp}"
        );
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    };
    for path in [
        "/documented/0.1.0/x.js",
        "/documented/0.1.0/documented/sidebar-items.js",
    ] {
        let script = server.get(path);
        assert_eq!(script.status, 200, "{path}");
        assert_eq!(
            script.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{path} is not served as a script"
        );
        inert(&script);
    }
    let svg = server.get("/documented/0.1.0/documented/evil.svg");
    assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
    inert(&svg);
    let part = server.get("/documented/0.1.0/documented/part.html");
    assert_eq!(part.status, 200);
    inert(&part);
    assert!(
        part.header("content-security-policy")
            .unwrap()
            .contains("script-src 'none'")
    );
    assert_eq!(
        server
            .get("/documented/0.1.0/static.files/evil-0123abcd.js")
            .status,
        404,
        "static files are the toolchain's only"
    );

    // rustdoc's own data scripts are served, remade from their data.
    let crates = server.get("/documented/0.1.0/crates.js");
    assert_eq!(
        crates.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(crates.body, "window.ALL_CRATES=[\"documented\"];\n");
    inert(&crates);

    // Pages: docbuild's scripts only, no inline script, no forms, no frames.
    let page = server.get("/documented/0.1.0/documented/");
    let csp = page.header("content-security-policy").unwrap();
    for directive in [
        "script-src 'self'",
        "object-src 'none'",
        "frame-src 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(
            csp.split(';').any(|d| d.trim() == directive),
            "{directive}: {csp}"
        );
    }

    // A build's log is its text, and only text.
    let crate_page = server.get("/crate/documented/0.1.0");
    let log = crate_page
        .body
        .split("href=\"")
        .find(|s| s.contains("/log\""))
        .and_then(|s| s.split('"').next())
        .unwrap();
    inert(&server.get(log));
    assert_eq!(
        server
            .get("/api/v1/builds/1")
            .header("x-content-type-options"),
        Some("nosniff")
    );
}

#[test]
fn state_changes_come_only_from_the_viewers_own_pages() {
    let server = Server::start(&[]);
    let json = ("content-type", "application/json");
    let build = r#"{"name": "itoa", "version": "1.0.11"}"#;
    let here = server.url("");
    let other = format!("http://127.0.0.1:{}", server.port + 1);
    let queue = |headers: &[(&str, &str)]| {
        let mut all = vec![json];
        all.extend_from_slice(headers);
        server.request("POST", "/api/v1/builds", &all, Some(build))
    };
    // With no token at all, another site still cannot queue.
    for (headers, expected) in [
        (vec![("origin", other.as_str())], 403),
        (vec![("origin", "null")], 403),
        (vec![("sec-fetch-site", "same-site")], 403),
        (vec![("sec-fetch-site", "cross-site")], 403),
        (
            vec![("sec-fetch-site", "cross-site"), ("origin", here.as_str())],
            403,
        ),
        (vec![("origin", here.as_str())], 202),
        (vec![("sec-fetch-site", "same-origin")], 202),
        (vec![], 202),
    ] {
        let reply = queue(&headers);
        assert_eq!(reply.status, expected, "{headers:?}: {}", reply.body);
        if expected == 403 {
            let error: Value = serde_json::from_str(&reply.body).unwrap();
            assert!(
                error["error"].as_str().unwrap().contains("cross-origin"),
                "{error}"
            );
        }
    }
    // The API takes JSON only: a form's `text/plain` is refused.
    for kind in ["text/plain", "application/x-www-form-urlencoded", ""] {
        let mut headers = vec![("origin", here.as_str())];
        if !kind.is_empty() {
            headers.push(("content-type", kind));
        }
        let reply = server.request("POST", "/api/v1/builds", &headers, Some(build));
        assert_eq!(reply.status, 415, "{kind:?}");
        assert!(serde_json::from_str::<Value>(&reply.body).unwrap()["error"].is_string());
    }
    assert_eq!(
        queue(&[("content-type", "application/json; charset=utf-8")]).status,
        202
    );

    // With tokens: an admin's cookie does not make another origin's request pass.
    let admin = run(&server.data, &["token", "create", "--scope", "admin"]);
    let login = server.log_in(&admin);
    assert_eq!(login.status, 303);
    let cookie = format!("docbuild_token={admin}");
    let rebuild = |headers: &[(&str, &str)]| {
        server
            .request("POST", "/crate/documented/0.1.0/rebuild", headers, None)
            .status
    };
    assert_eq!(
        rebuild(&[("cookie", &cookie), ("origin", &other)]),
        403,
        "another port"
    );
    assert_eq!(
        rebuild(&[("cookie", &cookie), ("sec-fetch-site", "same-site")]),
        403
    );
    assert_eq!(
        rebuild(&[("cookie", &cookie)]),
        403,
        "a browser's cookie without a word on where it comes from"
    );
    let bearer = format!("Bearer {admin}");
    assert_eq!(
        rebuild(&[("authorization", &bearer), ("origin", &other)]),
        403
    );
    assert_eq!(rebuild(&[("cookie", &cookie), ("origin", &here)]), 202);
    assert_eq!(
        rebuild(&[("cookie", &cookie), ("sec-fetch-site", "same-origin")]),
        202
    );
    assert_eq!(rebuild(&[("authorization", &bearer)]), 202, "no browser");

    // The login form: its CSRF token, and this origin only.
    let (csrf_cookie, csrf) = server.login_form();
    let form = ("content-type", "application/x-www-form-urlencoded");
    let body = format!("token={admin}&csrf={csrf}");
    let login = |headers: &[(&str, &str)], body: &str| {
        let mut all = vec![form];
        all.extend_from_slice(headers);
        server.request("POST", "/-/login", &all, Some(body)).status
    };
    assert_eq!(login(&[("origin", &here)], &body), 403, "no CSRF cookie");
    assert_eq!(
        login(
            &[("origin", &here), ("cookie", &csrf_cookie)],
            &format!("token={admin}&csrf=0123")
        ),
        403,
        "another CSRF token"
    );
    assert_eq!(
        login(
            &[("origin", &here), ("cookie", &csrf_cookie)],
            &format!("token={admin}")
        ),
        403,
        "no CSRF token"
    );
    assert_eq!(
        login(&[("origin", &other), ("cookie", &csrf_cookie)], &body),
        403,
        "another origin"
    );
    assert_eq!(
        login(&[("origin", &here), ("cookie", &csrf_cookie)], &body),
        303
    );

    // Logging out forgets the cookie, from this origin only.
    let logout = |origin: &str| {
        server.request(
            "POST",
            "/-/logout",
            &[("origin", origin), ("cookie", &cookie)],
            None,
        )
    };
    assert_eq!(logout(&other).status, 403);
    let out = logout(&here);
    assert_eq!(out.status, 303);
    let cleared = out.header("set-cookie").unwrap();
    assert!(cleared.starts_with("docbuild_token=;") && cleared.contains("Max-Age=0"));
}

#[test]
fn cookies_are_secure_when_the_viewer_is_on_https() {
    let server = Server::configured("[server]\nurl = \"https://docs.example.test\"\n", &[]);
    let admin = run(&server.data, &["token", "create", "--scope", "admin"]);
    let (csrf_cookie, _) = server.login_form();
    assert!(
        server
            .get("/-/login")
            .header("set-cookie")
            .unwrap()
            .contains("; Secure")
    );
    assert!(csrf_cookie.starts_with("docbuild_csrf="));
    let login = server.log_in(&admin);
    assert_eq!(login.status, 303);
    let cookies: Vec<&str> = login
        .headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(!cookies.is_empty());
    for cookie in cookies {
        assert!(cookie.contains("; Secure"), "{cookie}");
    }
    // The viewer's https origin counts as its own.
    let reply = server.request(
        "POST",
        "/crate/documented/0.1.0/rebuild",
        &[
            ("authorization", &format!("Bearer {admin}")),
            ("origin", "https://docs.example.test"),
        ],
        None,
    );
    assert_eq!(reply.status, 202);
}

/// How long until the server closes `stream` (reading and dropping what it sends).
fn time_to_close(stream: &mut TcpStream) -> Duration {
    let start = std::time::Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                return start.elapsed();
            }
            Err(error) => panic!("still open after {:?}: {error}", start.elapsed()),
        }
    }
}

#[test]
fn slow_and_silent_clients_cannot_hold_the_server() {
    let server = Server::configured(
        "[server]\nidle-timeout = \"1s\"\nheader-read-timeout = \"4s\"\nmax-connections = 3\n",
        &[],
    );
    let address = ("127.0.0.1", server.port);

    // A silent connection is closed once idle, well before the header timeout.
    let mut silent = TcpStream::connect(address).unwrap();
    let closed = time_to_close(&mut silent);
    assert!(
        closed >= Duration::from_millis(800) && closed < Duration::from_millis(3000),
        "{closed:?}"
    );

    // A kept-alive connection that goes quiet after a request, likewise.
    let mut kept = TcpStream::connect(address).unwrap();
    write!(
        kept,
        "GET /-/static/docbuild.css HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
        server.port
    )
    .unwrap();
    let closed = time_to_close(&mut kept);
    assert!(closed < Duration::from_millis(3000), "{closed:?}");

    // A client that sends its head a byte at a time, never idle, is cut off when
    // the head takes too long.
    let mut slow = TcpStream::connect(address).unwrap();
    let start = std::time::Instant::now();
    let head = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-Padding: {}\r\n\r\n",
        server.port,
        "a".repeat(60)
    );
    let mut cut = None;
    for byte in head.bytes() {
        if slow.write_all(&[byte]).is_err() {
            cut = Some(start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
        let mut probe = [0u8; 64];
        slow.set_nonblocking(true).unwrap();
        let read = slow.read(&mut probe);
        slow.set_nonblocking(false).unwrap();
        match read {
            Ok(0) => {
                cut = Some(start.elapsed());
                break;
            }
            Ok(_) => panic!("answered a head that never ended"),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => {
                cut = Some(start.elapsed());
                break;
            }
        }
    }
    let cut = cut.expect("the slow head was read to its end");
    assert!(
        cut >= Duration::from_millis(3500) && cut < Duration::from_millis(7000),
        "{cut:?}"
    );

    // Past the connection cap the next client is answered at once, told to come
    // back; once the silent ones are gone, it is served.
    let holders: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(address).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let start = std::time::Instant::now();
    let busy = String::from_utf8_lossy(&server.raw_response(
        "/",
        &format!("127.0.0.1:{}", server.port),
        "",
    ))
    .into_owned();
    assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
    assert!(busy.to_lowercase().contains("retry-after: 1"), "{busy}");
    assert!(start.elapsed() < Duration::from_millis(500));
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(server.get("/").status, 200);
    drop(holders);
}

#[test]
fn etags_follow_the_representation_and_the_version_list() {
    let server = Server::start(&[]);
    let page = "/documented/0.1.0/documented/";
    let host = format!("127.0.0.1:{}", server.port);
    // Status, ETag, Content-Encoding and body, byte for byte.
    let get = |headers: &str| {
        let raw = server.raw_response(page, &host, headers);
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
        let header = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .map(str::to_string)
        };
        let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = String::from_utf8_lossy(&raw[split + 4..]).into_owned();
        (status, header("etag"), header("content-encoding"), body)
    };
    let (status, tag, encoding, _) = get("");
    assert_eq!((status, encoding), (200, None));
    let tag = tag.unwrap();
    let (_, gzip_tag, encoding, _) = get("Accept-Encoding: gzip\r\n");
    assert_eq!(encoding.as_deref(), Some("gzip"));
    let gzip_tag = gzip_tag.unwrap();
    assert_ne!(tag, gzip_tag, "each representation has its own tag");
    let revalidate = |tag: &str, gzip: bool| {
        let encoding = if gzip {
            "Accept-Encoding: gzip\r\n"
        } else {
            ""
        };
        get(&format!("If-None-Match: {tag}\r\n{encoding}"))
    };
    assert_eq!(revalidate(&tag, false).0, 304);
    assert_eq!(revalidate(&gzip_tag, true).0, 304);
    assert_eq!(revalidate(&tag, true).0, 200, "another representation");
    assert_eq!(revalidate(&gzip_tag, false).0, 200);
    assert_eq!(revalidate(&tag, false).1.as_deref(), Some(tag.as_str()));

    // A new version changes the version picker on every page, and so their tags.
    let dir = tempfile::tempdir().unwrap();
    let newer = dir.path().join("documented");
    std::fs::create_dir_all(newer.join("src")).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let manifest = std::fs::read_to_string(fixtures.join("documented/Cargo.toml")).unwrap();
    std::fs::write(newer.join("Cargo.toml"), manifest.replace("0.1.0", "0.3.0")).unwrap();
    std::fs::write(newer.join("src/lib.rs"), "//! Newest.\n").unwrap();
    run(&server.data, &["queue", "add", newer.to_str().unwrap()]);
    run(&server.data, &["worker", "--once"]);
    let (status, new_tag, _, body) = revalidate(&tag, false);
    assert_eq!(status, 200, "the version list changed");
    assert!(body.contains("<option value=\"/documented/0.3.0/documented/\">0.3.0</option>"));
    let new_tag = new_tag.unwrap();
    assert_ne!(new_tag, tag);
    assert_eq!(revalidate(&new_tag, false).0, 304);
    assert_eq!(revalidate(&gzip_tag, true).0, 200);
}

#[test]
fn docs_have_an_origin_of_their_own() {
    let server = Server::configured(
        "[server]\nurl = \"http://127.0.0.1:{port}\"\ndocs-url = \"http://docs.localhost:{port}\"\n",
        &[],
    );
    let viewer_host = format!("127.0.0.1:{}", server.port);
    let docs_host = format!("docs.localhost:{}", server.port);
    let docs = format!("http://{docs_host}");
    let reply = |method: &str, path: &str, host: &str, headers: &str| {
        let raw = server.raw_request(method, path, host, headers);
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, text)
    };
    let location = |text: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix("location: ")
                    .or_else(|| l.strip_prefix("Location: "))
            })
            .map(|l| l.trim().to_string())
            .unwrap_or_default()
    };

    // Docs URLs on the viewer go to the docs' origin; the viewer's pages stay.
    let (status, text) = reply("GET", "/documented/0.1.0/documented/", &viewer_host, "");
    assert!((300..400).contains(&status), "{text}");
    assert_eq!(
        location(&text),
        format!("{docs}/documented/0.1.0/documented/")
    );
    assert_eq!(
        reply("GET", "/crate/documented/0.1.0", &viewer_host, "").0,
        200
    );

    // The docs' origin serves docs, with the bar leading back to the viewer.
    let (status, page) = reply("GET", "/documented/0.1.0/documented/", &docs_host, "");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&format!(
        "href=\"{}/crate/documented/0.1.0\"",
        server.url("")
    )));
    assert!(page.contains("script-src 'self'"));
    assert!(!page.to_lowercase().contains("set-cookie"));
    let (status, text) = reply("GET", "/crate/documented/0.1.0", &docs_host, "");
    assert!((300..400).contains(&status));
    assert_eq!(location(&text), server.url("/crate/documented/0.1.0"));
    for path in [
        "/api/v1/builds",
        "/crate/documented/0.1.0/rebuild",
        "/-/login",
    ] {
        assert_eq!(reply("POST", path, &docs_host, "").0, 405, "{path}");
    }

    // With tokens, the docs' origin has a session of its own, had from the viewer.
    let admin = run(&server.data, &["token", "create", "--scope", "admin"]);
    let viewer_cookie = format!("Cookie: docbuild_token={admin}\r\n");
    let (status, text) = reply(
        "GET",
        "/documented/0.1.0/documented/",
        &docs_host,
        &viewer_cookie,
    );
    assert!(
        (300..400).contains(&status),
        "the viewer's cookie means nothing here"
    );
    let bounce = location(&text);
    assert_eq!(
        bounce,
        server.url("/-/docs-session?next=/documented/0.1.0/documented/")
    );
    let (status, text) = reply(
        "GET",
        "/-/docs-session?next=/documented/0.1.0/documented/",
        &viewer_host,
        "",
    );
    assert_eq!(
        status, 200,
        "a navigation of the viewer's own, for its cookie"
    );
    assert!(text.contains("retry=1"));
    let (status, _) = reply(
        "GET",
        "/-/docs-session?next=/documented/0.1.0/documented/&retry=1",
        &viewer_host,
        "",
    );
    assert_eq!(status, 401);
    let (status, text) = reply(
        "GET",
        "/-/docs-session?next=/documented/0.1.0/documented/",
        &viewer_host,
        &viewer_cookie,
    );
    assert!((300..400).contains(&status), "{text}");
    let landing = location(&text);
    let landing = landing.strip_prefix(&docs).unwrap().to_string();
    assert!(landing.starts_with("/-/session?ticket="), "{landing}");
    let (status, text) = reply("GET", &landing, &docs_host, "");
    assert!((300..400).contains(&status), "{text}");
    assert_eq!(location(&text), "/documented/0.1.0/documented/");
    let session = text
        .lines()
        .find(|l| l.to_lowercase().starts_with("set-cookie: docbuild_docs="))
        .unwrap()
        .split_once(": ")
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (status, _) = reply(
        "GET",
        "/documented/0.1.0/documented/",
        &docs_host,
        &format!("Cookie: {session}\r\n"),
    );
    assert_eq!(status, 200);
    // A forged ticket or session gets nothing.
    let forged = landing.replace("ticket=", "ticket=9");
    assert_eq!(reply("GET", &forged, &docs_host, "").0, 403);
    let (status, _) = reply(
        "GET",
        "/documented/0.1.0/documented/",
        &docs_host,
        &format!("Cookie: {session}0\r\n"),
    );
    assert!((300..400).contains(&status));
    // The session ends with its token.
    run(&server.data, &["token", "create", "--scope", "read"]);
    let listed = run(&server.data, &["token", "list", "--json"]);
    let admin_id = listed
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|token| token["scope"] == "admin")
        .unwrap()["id"]
        .to_string();
    run(&server.data, &["token", "revoke", &admin_id]);
    settle();
    let (status, _) = reply(
        "GET",
        "/documented/0.1.0/documented/",
        &docs_host,
        &format!("Cookie: {session}\r\n"),
    );
    assert!((300..400).contains(&status));
}

/// An API error: JSON whose `error` is one line, whatever the status.
fn json_error(reply: &Reply, status: u16, what: &str) -> String {
    assert_eq!(reply.status, status, "{what}: {}", reply.body);
    let kind = reply.header("content-type").unwrap_or_default();
    assert!(kind.starts_with("application/json"), "{what}: {kind}");
    let body: Value =
        serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{what}: {e}: {}", reply.body));
    let error = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: {body}"));
    assert!(
        !error.is_empty() && !error.contains('\n'),
        "{what}: {error}"
    );
    error.to_string()
}

/// `token revoke`, answering what it said on stderr.
fn revoke(data: &Path, id: &str) -> String {
    let output = docbuild(data)
        .args(["token", "revoke", id])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    stderr
}

/// Waits until a server has seen what another process changed in the store: on
/// PostgreSQL it reads the store's change counter at most every 250 ms.
fn settle() {
    std::thread::sleep(Duration::from_millis(400));
}

/// Every token's id, as `token list --json` gives them.
fn token_ids(data: &Path) -> Vec<String> {
    run(data, &["token", "list", "--json"])
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["id"].to_string())
        .collect()
}

#[test]
fn revoking_the_last_token_leaves_the_site_closed() {
    let server = Server::start(&[]);
    let read = run(&server.data, &["token", "create", "--scope", "read"]);
    let admin = run(&server.data, &["token", "create", "--scope", "admin"]);
    let ids = token_ids(&server.data);
    assert_eq!(ids.len(), 2);
    assert!(
        !revoke(&server.data, &ids[0]).contains("public"),
        "a token is still in force"
    );
    let said = revoke(&server.data, &ids[1]);
    assert!(
        said.contains("closed") && said.contains("[server] public = true"),
        "{said}"
    );
    settle();

    for path in [
        "/",
        "/crate/documented/0.1.0",
        "/documented/0.1.0/documented/",
        "/documented/latest/documented/",
    ] {
        let reply = server.get(path);
        assert_eq!(reply.status, 401, "{path}: {}", reply.body);
        assert!(reply.body.contains("/-/login"), "{path}");
        for token in [&read, &admin] {
            let auth = format!("Bearer {token}");
            let with = server.request("GET", path, &[("authorization", &auth)], None);
            assert_eq!(with.status, 401, "{path}: a revoked token opens nothing");
        }
    }
    for path in ["/api/v1/builds/1", "/crate/documented/0.1.0/status.json"] {
        let reply = server.get(path);
        json_error(&reply, 401, path);
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"), "{path}");
    }
    let queued = server.request(
        "POST",
        "/api/v1/builds",
        &[("content-type", "application/json")],
        Some(r#"{"name": "itoa", "version": "1.0.11"}"#),
    );
    json_error(&queued, 401, "queueing");
    json_error(
        &server.request("POST", "/crate/documented/0.1.0/rebuild", &[], None),
        401,
        "rebuilding",
    );
    assert_eq!(server.get("/metrics").status, 401);
    // The login form is still there, for the next token.
    assert_eq!(server.get("/-/login").status, 200);
    let next = run(&server.data, &["token", "create", "--scope", "read"]);
    settle();
    let auth = format!("Bearer {next}");
    assert_eq!(
        server
            .request("GET", "/", &[("authorization", &auth)], None)
            .status,
        200
    );

    // Docs on an origin of their own stay closed too.
    let server = Server::configured(
        "[server]\nurl = \"http://127.0.0.1:{port}\"\ndocs-url = \"http://docs.localhost:{port}\"\n",
        &[],
    );
    run(&server.data, &["token", "create", "--scope", "read"]);
    let ids = token_ids(&server.data);
    revoke(&server.data, &ids[0]);
    let docs_host = format!("docs.localhost:{}", server.port);
    let raw = server.raw_response("/documented/0.1.0/documented/", &docs_host, "");
    let text = String::from_utf8_lossy(&raw).to_lowercase();
    assert!(text.starts_with("http/1.1 307"), "{text}");
    assert!(
        text.contains("location: http://127.0.0.1:") && text.contains("/-/docs-session?next="),
        "{text}"
    );
    let viewer_host = format!("127.0.0.1:{}", server.port);
    assert_eq!(
        server.raw("/documented/0.1.0/documented/", &viewer_host),
        401
    );
    assert_eq!(
        server.raw(
            "/-/docs-session?next=/documented/0.1.0/documented/&retry=1",
            &viewer_host
        ),
        401
    );
}

#[test]
fn a_public_site_is_read_without_a_token_and_changed_with_one() {
    let server = Server::configured("[server]\npublic = true\n", &[]);
    let token = |scope: &str| run(&server.data, &["token", "create", "--scope", scope]);
    let read = token("read");
    let publish = token("publish");
    let admin = token("admin");
    let bearer = |t: &str| format!("Bearer {t}");

    let reading = [
        "/",
        "/crate/documented/0.1.0",
        "/documented/0.1.0/documented/",
        "/crate/documented/0.1.0/status.json",
        "/api/v1/builds/1",
    ];
    for path in reading {
        let reply = server.get(path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    }
    let list = server.get("/");
    for name in ["documented", "metadata", "proc-macro-fixture"] {
        assert!(list.body.contains(name), "{name}");
    }
    assert!(
        server
            .get("/documented/0.1.0/documented/")
            .body
            .contains("documented")
    );

    let build = r#"{"name": "itoa", "version": "1.0.11"}"#;
    let queue = |t: Option<&str>| {
        let auth = t.map(bearer);
        let mut headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        headers.push(("content-type", "application/json"));
        server.request("POST", "/api/v1/builds", &headers, Some(build))
    };
    let refused = queue(None);
    json_error(&refused, 401, "queueing without a token");
    assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
    json_error(&queue(Some(&read)), 403, "read cannot queue");
    assert_eq!(queue(Some(&publish)).status, 202, "publish queues");

    let rebuild = |t: Option<&str>| {
        let auth = t.map(bearer);
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        server.request("POST", "/crate/documented/0.1.0/rebuild", &headers, None)
    };
    json_error(&rebuild(None), 401, "rebuilding without a token");
    json_error(&rebuild(Some(&publish)), 403, "publish cannot rebuild");
    let rebuilt = rebuild(Some(&admin));
    assert_eq!(rebuilt.status, 202, "{}", rebuilt.body);
    assert!(
        serde_json::from_str::<Value>(&rebuilt.body).unwrap()["id"].is_i64(),
        "{}",
        rebuilt.body
    );
    json_error(
        &server.request("POST", "/crate/documented/0.1.0/delete", &[], None),
        401,
        "deleting without a token",
    );
    assert_eq!(server.get("/metrics").status, 401);
    let metrics = server.request(
        "GET",
        "/metrics",
        &[("authorization", &bearer(&admin))],
        None,
    );
    assert_eq!(metrics.status, 200);

    // Still public with every token revoked; changes then need a token nobody has.
    for id in token_ids(&server.data) {
        revoke(&server.data, &id);
    }
    settle();
    for path in reading {
        assert_eq!(server.get(path).status, 200, "{path}");
    }
    json_error(
        &queue(Some(&publish)),
        401,
        "a revoked token queues nothing",
    );
    json_error(
        &rebuild(Some(&admin)),
        401,
        "a revoked token rebuilds nothing",
    );

    // With docs on an origin of their own, they are read there with no session.
    let server = Server::configured(
        "[server]\npublic = true\nurl = \"http://127.0.0.1:{port}\"\n\
         docs-url = \"http://docs.localhost:{port}\"\n",
        &[],
    );
    run(&server.data, &["token", "create", "--scope", "admin"]);
    let docs_host = format!("docs.localhost:{}", server.port);
    let viewer_host = format!("127.0.0.1:{}", server.port);
    let raw = server.raw_response("/documented/0.1.0/documented/", &viewer_host, "");
    let text = String::from_utf8_lossy(&raw).to_lowercase();
    assert!(
        text.contains(&format!(
            "location: http://{docs_host}/documented/0.1.0/documented/\r\n"
        )),
        "straight to the docs: {text}"
    );
    assert_eq!(server.raw("/documented/0.1.0/documented/", &docs_host), 200);
    assert_eq!(server.raw("/crate/documented/0.1.0", &viewer_host), 200);
}

#[test]
fn api_errors_are_json_whatever_the_status() {
    let server = Server::start(&[]);
    let get = |path: &str| server.get(path);
    let message = json_error(&get("/api/v1/nope"), 404, "unknown API path");
    assert!(message.contains("/api/v1/nope"), "{message}");
    json_error(&get("/api/nothing"), 404, "unknown API path");
    json_error(&get("/api/v1/builds/999999"), 404, "no such build");
    json_error(&get("/api/v1/builds/nope"), 400, "a bad build id");
    json_error(&get("/api/v1/builds/%FF"), 400, "a path that is no text");
    let post = |path: &str, kind: &str, body: &str| {
        server.request("POST", path, &[("content-type", kind)], Some(body))
    };
    json_error(
        &post("/api/v1/builds", "application/json", "{not json"),
        400,
        "malformed JSON",
    );
    json_error(
        &post("/api/v1/builds", "text/plain", r#"{"name": "itoa"}"#),
        415,
        "not JSON",
    );
    let wrong = get("/api/v1/builds");
    let message = json_error(&wrong, 405, "GET on a POST route");
    assert!(message.contains("GET"), "{message}");
    assert_eq!(wrong.header("allow"), Some("POST"));
    json_error(
        &server.request("DELETE", "/api/v1/builds/1", &[], None),
        405,
        "DELETE",
    );
    json_error(
        &server.request("GET", "/crate/documented/0.1.0/rebuild", &[], None),
        405,
        "GET on rebuild",
    );
    json_error(
        &server.request(
            "POST",
            "/api/v1/builds",
            &[
                ("content-type", "application/json"),
                ("origin", "http://elsewhere.example"),
            ],
            Some(r#"{"name": "itoa", "version": "1.0.11"}"#),
        ),
        403,
        "another site's request",
    );
    // Compressed or not, an error is JSON.
    let host = format!("127.0.0.1:{}", server.port);
    let raw = server.raw_response("/api/v1/builds/%FF", &host, "Accept-Encoding: gzip\r\n");
    let text = String::from_utf8_lossy(&raw);
    let lower = text.to_lowercase();
    assert!(lower.starts_with("http/1.1 400"), "{text}");
    assert!(lower.contains("content-type: application/json"), "{text}");
    assert!(!lower.contains("content-encoding"), "{text}");
    let body = text.split("\r\n\r\n").nth(1).unwrap();
    assert!(
        serde_json::from_str::<Value>(body).unwrap()["error"].is_string(),
        "{body}"
    );

    // Once tokens exist: a missing token, and one of too small a scope.
    let read = run(&server.data, &["token", "create", "--scope", "read"]);
    settle();
    let auth = format!("Bearer {read}");
    for path in [
        "/api/v1/builds/1",
        "/api/v1/nope",
        "/crate/documented/0.1.0/status.json",
    ] {
        let reply = get(path);
        json_error(&reply, 401, path);
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"), "{path}");
    }
    json_error(
        &server.request("POST", "/crate/documented/0.1.0/rebuild", &[], None),
        401,
        "rebuild without a token",
    );
    for path in [
        "/api/v1/builds/1/remove",
        "/crate/documented/0.1.0/rebuild",
        "/crate/documented/0.1.0/delete",
    ] {
        let reply = server.request("POST", path, &[("authorization", &auth)], None);
        let message = json_error(&reply, 403, path);
        assert!(message.contains("admin"), "{path}: {message}");
    }
    let reply = server.request(
        "POST",
        "/api/v1/builds",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        Some(r#"{"name": "itoa", "version": "1.0.11"}"#),
    );
    json_error(&reply, 403, "read cannot queue");
    let reply = server.request("GET", "/api/v1/nope", &[("authorization", &auth)], None);
    json_error(&reply, 404, "unknown API path, with a token");
    // The viewer's pages stay HTML.
    let page = get("/");
    assert_eq!(page.status, 401);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
}

#[test]
fn the_rebuild_form_goes_to_the_builds_page() {
    let server = Server::start(&[]);
    let admin = run(&server.data, &["token", "create", "--scope", "admin"]);
    let read = run(&server.data, &["token", "create", "--scope", "read"]);
    let queued = || {
        run(&server.data, &["queue", "list", "--json"])
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .filter(|job| {
                job["name"] == "documented"
                    && job["version"] == "0.1.0"
                    && job["status"] == "queued"
            })
            .count()
    };
    assert_eq!(queued(), 0);
    let origin = server.url("");
    let submit = |path: &str, token: &str| {
        let cookie = format!("docbuild_token={token}");
        server.request(
            "POST",
            path,
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", &origin),
                ("cookie", &cookie),
            ],
            Some(""),
        )
    };
    let refused = submit("/crate/documented/0.1.0/rebuild", &read);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(queued(), 0, "a reader queues nothing");
    let missing = submit("/crate/documented/9.9.9/rebuild", &admin);
    assert_eq!(missing.status, 404, "{}", missing.body);
    let done = submit("/crate/documented/0.1.0/rebuild", &admin);
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(
        done.redirects_to("/crate/documented/0.1.0/builds"),
        "{:?}",
        done.header("location")
    );
    assert_eq!(queued(), 1, "the rebuild is queued");
    // A form of another site is refused.
    let cookie = format!("docbuild_token={admin}");
    let foreign = server.request(
        "POST",
        "/crate/metadata/0.1.0/rebuild",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", "http://elsewhere.example"),
            ("cookie", &cookie),
        ],
        Some(""),
    );
    assert_eq!(foreign.status, 403);
}
