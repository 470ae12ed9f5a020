//! `docbuild serve` over real HTTP: every route, redirect, error, the API, access
//! control, path traversal and foreign hosts. The builds it serves are made once per
//! test run by a real worker; each test serves its own copy.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

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

/// Builds, once: `documented` 0.1.0 and 0.2.0, `metadata` (with features) and
/// `proc-macro-fixture` (a name with dashes).
fn built() -> &'static Path {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    DATA.get_or_init(|| {
        let root =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("serve-{}", std::process::id()));
        let data = root.join("data");
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
/// a second target's docs the way a worker stores them: under `docs/<target>/`, and
/// listed in the record.
fn add_second_target(data: &Path) {
    const OTHER: &str = "wasm32-unknown-unknown";
    let release = data.join("crates/local/documented/0.1.0");
    let build = std::fs::read_dir(&release)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let docs = build.join("docs");
    std::fs::create_dir_all(docs.join(OTHER)).unwrap();
    let copied = Command::new("cp")
        .arg("-r")
        .arg(docs.join("documented"))
        .arg(docs.join(OTHER).join("documented"))
        .status()
        .unwrap();
    assert!(copied.success());
    let record_path = build.join("record.json");
    let mut record: Value = serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    let mut target = record["targets"][0].clone();
    target["target"] = OTHER.into();
    target["docs"] = docs
        .join(OTHER)
        .join("documented/index.html")
        .to_string_lossy()
        .into();
    record["targets"].as_array_mut().unwrap().push(target);
    std::fs::write(&record_path, serde_json::to_vec(&record).unwrap()).unwrap();
}

/// A server of its own over a copy of the built data.
struct Server {
    port: u16,
    data: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let copied = Command::new("cp")
            .arg("-r")
            .arg(built())
            .arg(&data)
            .status()
            .unwrap();
        assert!(copied.success());
        Self::on(dir, data, extra)
    }

    fn on(dir: tempfile::TempDir, data: PathBuf, extra: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
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
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        response
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

    // The build page: outcome, targets, features, size, history and logs.
    let crate_page = server.get("/crate/metadata/0.1.0");
    assert_eq!(crate_page.status, 200);
    for expected in [
        "success",
        "x86_64-unknown-linux-gnu",
        "<code>chosen</code>",
        "Docs size",
        "/builds/",
    ] {
        assert!(crate_page.body.contains(expected), "{expected}");
    }
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
    // Stored once for every build, not in each build's directory.
    assert!(server.data.join("static").join(stylesheet).is_file());

    let etag = page.header("etag").unwrap().to_string();
    let again = server.request(
        "GET",
        "/documented/0.1.0/documented/",
        &[("if-none-match", &etag)],
        None,
    );
    assert_eq!(again.status, 304);
    let host = format!("127.0.0.1:{}", server.port);
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
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
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
    assert_eq!(
        server
            .request("GET", "/", &[("authorization", &bearer(&read))], None)
            .status,
        401
    );

    // The login form sets a cookie that then opens the pages.
    assert_eq!(server.get("/-/login").status, 200);
    let bad = server.request(
        "POST",
        "/-/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some("token=dbt_wrong"),
    );
    assert_eq!(bad.status, 401);
    let login = server.request(
        "POST",
        "/-/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(&format!("token={publish}")),
    );
    assert_eq!(login.status, 303);
    let cookie = login.header("set-cookie").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let pair = cookie.split(';').next().unwrap();
    assert_eq!(
        server.request("GET", "/", &[("cookie", pair)], None).status,
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
