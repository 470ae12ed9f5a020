//! The viewer against hostile docs and other sites, in a real headless Chromium:
//!
//! - `hostile-scripts` (tests/fixtures) puts scripts of its own into its docs: an
//!   inline script and script files through `--html-in-header`, `x.js` files its
//!   build script writes among the docs, a rewritten `sidebar-items.js`, and an SVG
//!   with a script. Each would retitle the page and queue builds with the reader's
//!   cookie. None runs, on one origin or with docs on their own, while rustdoc's
//!   search and the viewer's version picker work.
//! - A page of another origin (another port of the same host, so the same site to
//!   `SameSite` cookies) posts forms to rebuild and to queue with a logged-in admin's
//!   cookie: refused, while the same requests from the viewer's own page pass.

mod common;
mod webdriver;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};
use webdriver::{Browser, Process, docbuild, free_port, wait_for_port};

const INDEX_TITLE: &str = "hostile_scripts - Rust";

/// Builds `hostile-scripts` 0.1.0 and 0.2.0 once, and checks that the attack is in
/// place: the crate's own files are among its stored docs.
fn built() -> &'static Path {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    DATA.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("browser-security-{}", std::process::id()));
        let data = root.join("data");
        std::fs::create_dir_all(&root).unwrap();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile-scripts");
        for version in ["0.1.0", "0.2.0"] {
            let package = root.join(format!("hostile-scripts-{version}"));
            let copied = Command::new("cp")
                .arg("-r")
                .arg(&fixture)
                .arg(&package)
                .status()
                .unwrap();
            assert!(copied.success());
            let manifest = std::fs::read_to_string(package.join("Cargo.toml")).unwrap();
            std::fs::write(
                package.join("Cargo.toml"),
                manifest.replace("version = \"0.1.0\"", &format!("version = \"{version}\"")),
            )
            .unwrap();
            docbuild(&data, &["queue", "add", package.to_str().unwrap()]);
        }
        docbuild(&data, &["worker", "--once", "--jobs", "2"]);
        let jobs = docbuild(&data, &["queue", "list", "--json"]);
        assert_eq!(jobs.matches("\"outcome\":\"success\"").count(), 2, "{jobs}");
        let store = common::stored::DataStore::open(&data);
        let build = store.current_build("hostile-scripts", "0.2.0");
        let builds = store.store().builds();
        let manifest = store.block_on(builds.manifest(build)).unwrap().unwrap();
        for planted in ["x.js", "evil.svg", "hostile_scripts/x.js"] {
            assert!(
                manifest.files.contains_key(planted),
                "{planted} is not among the docs"
            );
        }
        let sidebar = &manifest.files["hostile_scripts/sidebar-items.js"];
        let stored = store
            .block_on(docbuild_store::archive::load(builds.blobs(), sidebar))
            .unwrap();
        let sidebar = docbuild_store::archive::decode(sidebar, stored).unwrap();
        assert!(String::from_utf8_lossy(&sidebar).contains("hostile-scripts-tampered"));
        data
    })
}

/// `docbuild serve` over a copy of the built data, with `config` (where `{port}` is
/// its port) as its `docbuild.toml`.
struct Viewer {
    port: u16,
    data: PathBuf,
    _server: Process,
    _dir: tempfile::TempDir,
}

impl Viewer {
    fn start(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        for entry in std::fs::read_dir(built()).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // Not the build's work directories (target directory images).
            if name.starts_with("docbuild.db") || name == "storage" {
                let copied = Command::new("cp")
                    .arg("-r")
                    .arg(entry.path())
                    .arg(data.join(&*name))
                    .status()
                    .unwrap();
                assert!(copied.success());
            }
        }
        let port = free_port();
        std::fs::write(
            data.join("docbuild.toml"),
            config.replace("{port}", &port.to_string()),
        )
        .unwrap();
        let server = Process(
            Command::new(env!("CARGO_BIN_EXE_docbuild"))
                .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
                .env("DOCBUILD_DATA_DIR", &data)
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_for_port(port);
        Self {
            port,
            data,
            _server: server,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn token(&self, scope: &str) -> String {
        docbuild(&self.data, &["token", "create", "--scope", scope])
            .trim()
            .to_string()
    }

    fn jobs(&self) -> Vec<Value> {
        docbuild(&self.data, &["queue", "list", "--json"])
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// Logs in through the login form.
    fn log_in(&self, browser: &Browser, token: &str) {
        browser.open(&self.url("/-/login"));
        browser.type_into("input[name='token']", token);
        browser.click("button[type='submit']");
        browser.wait_for_url(|url| !url.contains("/-/login"));
    }
}

/// The scripts a hostile crate's docs hold had time to run, had they run.
fn settle() {
    std::thread::sleep(Duration::from_millis(1500));
}

/// On a docs page of the crate: its header is in the page (the attack is there),
/// the top bar and rustdoc's own scripts work, and nothing of the crate's ran.
fn assert_page_untouched(browser: &Browser) {
    browser.find("meta[name='hostile-header']");
    browser.find("#docbuild-bar");
    browser.find("rustdoc-toolbar #search-button");
    settle();
    assert_eq!(browser.title(), INDEX_TITLE);
}

/// rustdoc's search finds an item, and its page opens.
fn assert_search_works(browser: &Browser) {
    browser.click("#search-button");
    browser.type_into("input.search-input", "Needle");
    browser.click(".search-results a[href*='struct.Needle.html']");
    browser.wait_for_url(|url| url.ends_with("/hostile_scripts/struct.Needle.html"));
    settle();
    assert_eq!(browser.title(), "Needle in hostile_scripts - Rust");
}

fn assert_nothing_queued(viewer: &Viewer, before: usize) {
    let jobs = viewer.jobs();
    assert_eq!(jobs.len(), before, "{jobs:#?}");
    assert!(
        jobs.iter()
            .all(|job| !job["name"].as_str().unwrap_or_default().contains("pwned")),
        "{jobs:#?}"
    );
}

#[test]
fn a_crates_scripts_never_run_while_search_and_the_picker_work() {
    let viewer = Viewer::start("");
    let admin = viewer.token("admin");
    let browser = Browser::start();
    viewer.log_in(&browser, &admin);
    let before = viewer.jobs().len();

    browser.open(&viewer.url("/hostile-scripts"));
    browser.wait_for_url(|url| url.ends_with("/hostile-scripts/0.2.0/hostile_scripts/"));
    assert_page_untouched(&browser);
    assert_search_works(&browser);

    // The version picker.
    browser.open(&viewer.url("/hostile-scripts/0.2.0/hostile_scripts/"));
    browser.click("#docbuild-version option[value='/hostile-scripts/0.1.0/hostile_scripts/']");
    browser.wait_for_url(|url| url.ends_with("/hostile-scripts/0.1.0/hostile_scripts/"));
    assert_page_untouched(&browser);

    // The crate's files opened on their own: the SVG's script does not run.
    browser.open(&viewer.url("/hostile-scripts/0.2.0/evil.svg"));
    browser.find("rect");
    settle();
    assert_eq!(browser.title(), "hostile svg");
    browser.open(&viewer.url("/hostile-scripts/0.2.0/hostile_scripts/x.js"));
    settle();
    assert!(!browser.title().contains("pwned"), "{}", browser.title());

    assert_nothing_queued(&viewer, before);
}

/// Serves `page` to anyone, on a port of its own, until the test ends.
fn serve_page(page: String) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    port
}

#[test]
fn another_origin_cannot_rebuild_or_queue_with_an_admins_cookie() {
    let viewer = Viewer::start("");
    let admin = viewer.token("admin");
    let browser = Browser::start();
    viewer.log_in(&browser, &admin);
    let before = viewer.jobs().len();

    // Another port of the same host: the same site, so `SameSite=Strict` sends the
    // cookie along.
    let target = viewer.url("");
    let attacker = serve_page(format!(
        r#"<!DOCTYPE html><html><body>
<iframe name="rebuild"></iframe><iframe name="queue"></iframe>
<form id="rebuild" target="rebuild" method="post" action="{target}/crate/hostile-scripts/0.2.0/rebuild"></form>
<form id="queue" target="queue" method="post" enctype="text/plain" action="{target}/api/v1/builds">
<input name='{{"name": "pwned-csrf", "version": "1.0.0", "pad": "' value='"}}'></form>
<script>
document.getElementById("rebuild").submit();
document.getElementById("queue").submit();
</script></body></html>"#
    ));
    browser.open(&format!("http://127.0.0.1:{attacker}/"));
    for frame in ["rebuild", "queue"] {
        browser.enter_frame(&format!("iframe[name='{frame}']"));
        let answer = browser.wait_for("answer", |b| {
            let source = b.source();
            source.contains("refused").then_some(source)
        });
        assert!(answer.contains("cross-origin request refused"), "{answer}");
        browser.leave_frame();
    }
    settle();
    assert_nothing_queued(&viewer, before);

    // The same requests from the viewer's own page pass: the cookie was good.
    browser.open(&viewer.url("/crate/hostile-scripts/0.2.0"));
    let rebuild = browser.execute(
        "return (await fetch('/crate/hostile-scripts/0.2.0/rebuild', {method: 'POST'})).status;",
        json!([]),
    );
    assert_eq!(rebuild, 202);
    let queue = browser.execute(
        "return (await fetch('/api/v1/builds', {method: 'POST', \
         headers: {'content-type': 'application/json'}, \
         body: JSON.stringify({name: 'itoa', version: '1.0.11'})})).status;",
        json!([]),
    );
    assert_eq!(queue, 202);
    assert_eq!(viewer.jobs().len(), before + 2);
}

#[test]
fn docs_on_an_origin_of_their_own_never_see_the_viewers_cookie() {
    let viewer = Viewer::start(
        "[server]\nurl = \"http://127.0.0.1:{port}\"\ndocs-url = \"http://docs.localhost:{port}\"\n",
    );
    let docs = format!("http://docs.localhost:{}", viewer.port);
    let admin = viewer.token("admin");
    let browser = Browser::start();
    viewer.log_in(&browser, &admin);
    let before = viewer.jobs().len();

    // From the viewer to the docs' origin, with a session of their own.
    browser.open(&viewer.url("/hostile-scripts"));
    let index = format!("{docs}/hostile-scripts/0.2.0/hostile_scripts/");
    browser.wait_for_url(|url| url == index);
    assert_page_untouched(&browser);
    let cookies: Vec<String> = browser
        .cookies()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(cookies, ["docbuild_docs"]);
    assert_search_works(&browser);

    // Straight to the docs' origin without its session: it is had from the viewer,
    // where the reader is logged in.
    browser.call("DELETE", "/cookie/docbuild_docs", Value::Null);
    let other = format!("{docs}/hostile-scripts/0.1.0/hostile_scripts/");
    browser.open(&other);
    browser.wait_for_url(|url| url == other);
    assert_page_untouched(&browser);

    // The bar leads back to the viewer's pages.
    browser.click("#docbuild-bar a[href$='/crate/hostile-scripts/0.1.0']");
    browser.wait_for_url(|url| url == viewer.url("/crate/hostile-scripts/0.1.0"));
    assert_nothing_queued(&viewer, before);
}
