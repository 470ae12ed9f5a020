//! The viewer in a real headless Chromium (Debian's, driven through chromedriver):
//! rustdoc's own search box finds an item, a link leads into a dependency's docs on
//! the same server, and the version picker switches versions.

mod registry;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use registry::TestRegistry;
use serde_json::{Value, json};

/// Kills a child process when the test ends, however it ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nothing listens on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn docbuild(data: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_docbuild"))
        .args(args)
        .env("DOCBUILD_DATA_DIR", data)
        .env(
            "HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-home"),
        )
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A minimal WebDriver client.
struct Browser {
    base: String,
    session: String,
    agent: ureq::Agent,
    _driver: Process,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start() -> Self {
        let port = free_port();
        let driver = Process(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver (Debian's chromium-driver; scripts/setup.sh installs it)"),
        );
        wait_for_port(port);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().unwrap().keep();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--window-size=1280,900", format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let reply: Value = serde_json::from_str(
            &agent
                .post(&format!("{base}/session"))
                .header("content-type", "application/json")
                .send(capabilities.to_string())
                .unwrap()
                .body_mut()
                .read_to_string()
                .unwrap(),
        )
        .unwrap();
        let session = reply["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("{reply}"))
            .to_string();
        Self {
            base,
            session,
            agent,
            _driver: driver,
        }
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut response = match method {
            "GET" => self.agent.get(&url).call(),
            _ => self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.to_string()),
        }
        .unwrap();
        let mut reply: Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        reply["value"].take()
    }

    fn open(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }

    fn url(&self) -> String {
        self.call("GET", "/url", Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits for an element matching `css` and returns its id.
    fn find(&self, css: &str) -> String {
        let start = Instant::now();
        loop {
            let found = self.call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            );
            if let Some(id) = found[ELEMENT].as_str() {
                return id.to_string();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no `{css}` on {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/click"), json!({}));
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        );
    }

    fn wait_for_url(&self, wanted: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let url = self.url();
            if wanted(&url) {
                return url;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "stuck on {url}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .agent
            .delete(&format!("{}/session/{}", self.base, self.session))
            .call();
    }
}

/// Builds `viewer-dep` 0.1.0 and `viewer-app` 0.1.0 and 0.2.0 (which depend on it)
/// from a registry of the test's, with docs linking to this server.
fn build(port: u16) -> (tempfile::TempDir, PathBuf, TestRegistry) {
    let registry = TestRegistry::start(None);
    registry.publish(
        "viewer-dep",
        "0.1.0",
        "",
        &[(
            "src/lib.rs",
            "//! The dependency.\n\n/// A part from the dependency.\npub struct Part;\n",
        )],
        &[],
    );
    let dependency = "\n[dependencies.viewer-dep]\nversion = \"0.1.0\"\nregistry = \"testreg\"\n";
    for (version, item) in [("0.1.0", "Widget"), ("0.2.0", "Gadget")] {
        let source = format!(
            "//! The app.\n\n/// Found by search; holds a [`viewer_dep::Part`].\npub struct {item}(pub viewer_dep::Part);\n"
        );
        registry.publish(
            "viewer-app",
            version,
            dependency,
            &[("src/lib.rs", &source)],
            &["viewer-dep"],
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("docbuild.toml"),
        format!(
            "[registries.testreg]\nindex = \"{}\"\n\n[server]\nurl = \"http://127.0.0.1:{port}\"\n",
            registry.index_url()
        ),
    )
    .unwrap();
    for krate in ["viewer-dep@0.1.0", "viewer-app@0.1.0", "viewer-app@0.2.0"] {
        docbuild(&data, &["queue", "add", krate, "--registry", "testreg"]);
    }
    docbuild(&data, &["worker", "--once"]);
    let jobs = docbuild(&data, &["queue", "list", "--json"]);
    assert_eq!(jobs.matches("\"outcome\":\"success\"").count(), 3, "{jobs}");
    (dir, data, registry)
}

#[test]
fn search_links_and_the_version_picker_work_in_a_browser() {
    let port = free_port();
    let (_dir, data, _registry) = build(port);
    let _server = Process(
        Command::new(env!("CARGO_BIN_EXE_docbuild"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("DOCBUILD_DATA_DIR", &data)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port);
    let browser = Browser::start();
    let site = format!("http://127.0.0.1:{port}");

    // rustdoc's search box finds an item.
    browser.open(&format!("{site}/viewer-app"));
    browser.wait_for_url(|url| url.ends_with("/viewer-app/0.2.0/viewer_app/"));
    browser.click("#search-button");
    browser.type_into("input.search-input", "Gadget");
    browser.click(".search-results a[href*='struct.Gadget.html']");
    browser.wait_for_url(|url| url.ends_with("/viewer-app/0.2.0/viewer_app/struct.Gadget.html"));

    // A link into the dependency's docs, on this server.
    browser.click("a[href*='/viewer-dep/0.1.0/viewer_dep/struct.Part.html']");
    let dep = browser.wait_for_url(|url| url.contains("/viewer_dep/struct.Part.html"));
    assert!(dep.starts_with(&site), "{dep}");

    // The picker switches versions.
    browser.open(&format!("{site}/viewer-app/0.2.0/viewer_app/"));
    browser.click("#docbuild-version option[value='/viewer-app/0.1.0/viewer_app/']");
    browser.wait_for_url(|url| url.ends_with("/viewer-app/0.1.0/viewer_app/"));
    browser.find("a[href='struct.Widget.html']");
}
