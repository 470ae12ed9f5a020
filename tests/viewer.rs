//! The viewer's own pages over real HTTP and in a real headless Chromium: the front
//! page and its search, the queue, crate pages with README, metadata, dependencies,
//! versions, features and builds, build logs, and what a docs URL says of a version
//! without docs. The builds are made once per run by a real worker from a registry of
//! the test's own, with no `[server] url`:
//!
//! - `team-core` 0.1.0: a README with a badge and a `<script>`, features, keywords;
//! - `team-core` 0.2.0: does not compile (its build fails);
//! - `team-core` 0.3.0: `Gear` removed, `Cog` and `spin` added;
//! - `team-app` 0.1.0: depends on `team-core` from the same registry;
//! - `team-app` 0.2.0: queued after the worker stopped, so never built.

mod registry;
mod webdriver;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use registry::TestRegistry;
use webdriver::{Browser, Process, docbuild, free_port, wait_for_port};

const CORE_README: &str = "# team-core\n\n\
[![build](https://ci.example.com/team-core/badge.svg)](https://ci.example.com/team-core)\n\n\
Shared widgets for the payments team. Read the [manual](https://docs.example.com/manual).\n\n\
<script>document.title = 'pwned'</script>\n\n\
<img src=\"https://img.example.com/logo.png\" alt=\"logo\" onerror=\"alert(1)\">\n\n\
| Widget | Use |\n|---|---|\n| `Gear` | turning |\n";

const CORE_MANIFEST: &str = "description = \"Shared widgets for the payments team\"\n\
license = \"MIT OR Apache-2.0\"\n\
repository = \"https://git.example.com/team/core\"\n\
keywords = [\"widgets\", \"ledger\"]\n\
readme = \"README.md\"\n\n\
[features]\ndefault = [\"std\"]\nstd = []\nserde = []\nunused = []\n\n\
[package.metadata.docs.rs]\nfeatures = [\"serde\"]\n";

const APP_MANIFEST: &str = "description = \"The payments app, on team-core\"\n\
license = \"MIT\"\n\n\
[dependencies.team-core]\nversion = \"0.1.0\"\nregistry = \"testreg\"\n";

struct Built {
    data: PathBuf,
    _registry: TestRegistry,
    _dir: tempfile::TempDir,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let registry = TestRegistry::start(None);
        registry.publish(
            "team-core",
            "0.1.0",
            CORE_MANIFEST,
            &[
                ("README.md", CORE_README),
                (
                    "src/lib.rs",
                    "//! Widgets.\n\n/// A widget that turns.\npub struct Gear;\n",
                ),
            ],
            &[],
        );
        registry.publish(
            "team-core",
            "0.2.0",
            CORE_MANIFEST,
            &[
                ("README.md", CORE_README),
                ("src/lib.rs", "pub struct Broken(pub NoSuchType);\n"),
            ],
            &[],
        );
        registry.publish(
            "team-core",
            "0.3.0",
            CORE_MANIFEST,
            &[
                ("README.md", CORE_README),
                (
                    "src/lib.rs",
                    "//! Widgets.\n\n/// A cog.\npub struct Cog;\n\n/// Spins.\npub fn spin() {}\n",
                ),
            ],
            &[],
        );
        for version in ["0.1.0", "0.2.0"] {
            registry.publish(
                "team-app",
                version,
                APP_MANIFEST,
                &[(
                    "src/lib.rs",
                    "//! The app.\n\n/// Holds a [`team_core::Gear`].\npub struct App(pub team_core::Gear);\n",
                )],
                &["team-core"],
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(
            data.join("docbuild.toml"),
            format!(
                "[registries.testreg]\nindex = \"{}\"\n",
                registry.index_url()
            ),
        )
        .unwrap();
        for krate in [
            "team-core@0.1.0",
            "team-core@0.2.0",
            "team-core@0.3.0",
            "team-app@0.1.0",
        ] {
            docbuild(&data, &["queue", "add", krate, "--registry", "testreg"]);
        }
        docbuild(&data, &["worker", "--once"]);
        docbuild(
            &data,
            &["queue", "add", "team-app@0.2.0", "--registry", "testreg"],
        );
        let jobs = docbuild(&data, &["queue", "list", "--json"]);
        assert_eq!(jobs.matches("\"outcome\":\"success\"").count(), 3, "{jobs}");
        assert_eq!(
            jobs.matches("\"outcome\":\"build-failed\"").count(),
            1,
            "{jobs}"
        );
        Built {
            data,
            _registry: registry,
            _dir: dir,
        }
    })
}

/// A server of its own over a copy of the built data.
struct Server {
    port: u16,
    data: PathBuf,
    _process: Process,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let copied = Command::new("cp")
            .arg("-r")
            .arg(&built().data)
            .arg(&data)
            .status()
            .unwrap();
        assert!(copied.success());
        Self::on(dir, data)
    }

    fn on(dir: tempfile::TempDir, data: PathBuf) -> Self {
        let port = free_port();
        let process = Process(
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
            _process: process,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], "")
    }

    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
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
        let mut response = agent
            .run(request.body(body.to_string()).unwrap())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        Reply {
            status: response.status().as_u16(),
            location: response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            csp: response
                .headers()
                .get("content-security-policy")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: response.body_mut().read_to_string().unwrap_or_default(),
        }
    }
}

struct Reply {
    status: u16,
    location: Option<String>,
    csp: Option<String>,
    body: String,
}

impl Reply {
    /// The page, which must have answered `status`.
    fn page(self, status: u16, what: &str) -> String {
        assert_eq!(self.status, status, "{what}: {}", self.body);
        self.body
    }
}

/// The first `<li>` of a list for crate `name`.
fn listed<'a>(page: &'a str, name: &str) -> Option<&'a str> {
    let start = page.find(&format!("data-name=\"{name}\""))?;
    let end = page[start..].find("</li>")?;
    Some(&page[start..start + end])
}

/// The `<li>` of a list for `name` `version`.
fn listed_version<'a>(page: &'a str, name: &str, version: &str) -> Option<&'a str> {
    page.split("<li").find(|item| {
        item.contains(&format!("data-name=\"{name}\""))
            && item.contains(&format!("href=\"/crate/{name}/{version}\""))
    })
}

#[test]
fn the_front_page_lists_every_release_and_searches_descriptions_and_keywords() {
    let server = Server::start();
    let front = server.get("/").page(200, "/");
    for (name, version, outcome) in [
        ("team-app", "0.2.0", "queued"),
        ("team-core", "0.2.0", "build-failed"),
    ] {
        let row = listed_version(&front, name, version)
            .unwrap_or_else(|| panic!("{name} {version} in {front}"));
        assert!(row.contains(&format!("outcome-{outcome}")), "{row}");
    }
    // Each failure links to its build, each pending release to the queue.
    let failed = listed_version(&front, "team-core", "0.2.0").unwrap();
    assert!(
        failed.contains("class=\"to-build\" href=\"/crate/team-core/0.2.0/builds/"),
        "{failed}"
    );
    let queued = listed(&front, "team-app").unwrap();
    assert!(
        queued.contains("class=\"to-queue\" href=\"/releases/queue\""),
        "{queued}"
    );
    // The newest first: the queued release, then the releases built.
    let queued = front.find("data-name=\"team-app\"").unwrap();
    let built = front.find("data-name=\"team-core\"").unwrap();
    assert!(queued < built, "{front}");
    assert!(front.contains("Shared widgets for the payments team"));
    assert!(front.contains("<time datetime=\""));

    // Search: a word of a description, a keyword, a name.
    for (query, found, not_found) in [
        ("payments%20widgets", "team-core", "team-app"),
        ("ledger", "team-core", "team-app"),
        ("app", "team-app", "team-core"),
    ] {
        let page = server.get(&format!("/?q={query}")).page(200, query);
        assert!(listed(&page, found).is_some(), "{query}: {page}");
        assert!(listed(&page, not_found).is_none(), "{query}: {page}");
    }
    let nothing = server.get("/?q=%3Cscript%3Ezzz").page(200, "no match");
    assert!(nothing.contains("&lt;script&gt;zzz") && !nothing.contains("<script>zzz"));
}

#[test]
fn the_queue_page_shows_pending_builds_in_order_and_recent_failures() {
    let server = Server::start();
    let queue = server.get("/releases/queue").page(200, "queue");
    let queued = queue.split("id=\"queued\"").nth(1).expect("a queued table");
    assert!(queued.contains("href=\"/crate/team-app/0.2.0\""), "{queue}");
    assert!(queue.contains("0 running, 1 queued"), "{queue}");
    let failures = queue.split("id=\"failures\"").nth(1).expect("failures");
    assert!(
        failures.contains("/crate/team-core/0.2.0/builds/"),
        "{queue}"
    );
    assert!(failures.contains("outcome-build-failed"), "{queue}");
}

#[test]
fn a_crate_page_has_its_readme_metadata_dependencies_versions_and_builds() {
    let server = Server::start();
    let latest = server.get("/crate/team-core");
    assert_eq!(latest.status, 307);
    assert_eq!(latest.location.as_deref(), Some("/crate/team-core/latest"));
    let latest = server.get("/crate/team-core/latest").page(200, "latest");
    assert!(latest.contains("<h1>team-core <span class=\"version\">0.3.0</span>"));
    let failed = server.get("/crate/team-core/0.2.0").page(200, "failed");
    assert!(failed.contains("The build failed: read its log"));
    assert!(failed.contains("href=\"/crate/team-core/0.2.0/builds/"));

    let page = server.get("/crate/team-core/0.1.0").page(200, "0.1.0");
    // The README, rendered and sanitised: the badge, the logo and the table stay;
    // the script and the handler go.
    assert!(
        page.contains("<img src=\"https://ci.example.com/team-core/badge.svg\" alt=\"build\">"),
        "{page}"
    );
    assert!(page.contains("src=\"https://img.example.com/logo.png\""));
    assert!(page.contains("<td><code>Gear</code></td>"));
    assert!(
        !page.contains("pwned") && !page.contains("onerror"),
        "{page}"
    );
    for expected in [
        "Shared widgets for the payments team",
        "MIT OR Apache-2.0",
        "href=\"https://git.example.com/team/core\"",
        "#widgets",
        "#ledger",
        "testreg",
        "Docs size",
        "x86_64-unknown-linux-gnu",
        "href=\"/team-core/0.1.0/\"",
        "href=\"/crate/team-core/0.1.0/source/\"",
        "href=\"/crate/team-core/0.1.0/features\"",
        "id=\"rebuild\"",
    ] {
        assert!(page.contains(expected), "{expected} in {page}");
    }
    // Every version, with its outcome; the failed one links to its build.
    let versions = page.split("id=\"versions\"").nth(1).unwrap();
    assert!(versions.contains("data-version=\"0.2.0\""));
    assert!(versions.contains("outcome-build-failed"));
    assert!(versions.contains("/crate/team-core/0.2.0/builds/"));
    // Builds with logs.
    assert!(page.contains("/log\">raw log</a>"));
    // The README's images may come from anywhere; scripts only from the viewer.
    let csp = server.get("/crate/team-core/0.1.0").csp.unwrap();
    assert!(csp.contains("img-src * data:"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");

    // A dependency of the same private registry links to its docs here.
    let app = server.get("/crate/team-app/0.1.0").page(200, "app");
    assert!(
        app.contains("class=\"dependency\" href=\"/team-core/%5E0.1.0\""),
        "{app}"
    );
    let followed = server.get("/team-core/%5E0.1.0");
    assert_eq!(
        followed.location.as_deref(),
        Some("/team-core/0.1.0/team_core/")
    );

    assert_eq!(server.get("/crate/team-core/9.9.9").status, 404);
    assert_eq!(server.get("/crate/no-such-crate/latest").status, 404);
}

#[test]
fn features_builds_and_a_log_with_its_errors_marked() {
    let server = Server::start();
    let features = server
        .get("/crate/team-core/0.1.0/features")
        .page(200, "features");
    let row = |feature: &str| {
        let start = features
            .find(&format!("id=\"feature-{feature}\""))
            .unwrap_or_else(|| panic!("{feature} in {features}"));
        features[start..start + features[start..].find("</tr>").unwrap()].to_string()
    };
    // Built with `serde` and the default features; `unused` is not in the docs.
    for on in ["default", "std", "serde"] {
        assert!(row(on).contains("class=\"enabled\""), "{on}: {}", row(on));
    }
    assert!(!row("unused").contains("enabled"), "{}", row("unused"));

    let builds = server
        .get("/crate/team-core/0.2.0/builds")
        .page(200, "builds");
    let build = builds
        .split("/crate/team-core/0.2.0/builds/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let log = server
        .get(&format!("/crate/team-core/0.2.0/builds/{build}"))
        .page(200, "log page");
    assert!(log.contains("outcome-build-failed"));
    assert!(log.contains("id=\"first-error\""), "{log}");
    let error_line = log
        .split("class=\"line error\"")
        .nth(1)
        .expect("a marked error line");
    assert!(
        error_line.contains("error[E0425]: cannot find type `NoSuchType`"),
        "{}",
        &error_line[..error_line.len().min(500)]
    );
    assert!(log.contains("cannot find type"), "{log}");
    assert_eq!(
        server
            .get(&format!("/crate/team-core/0.2.0/builds/{build}/log"))
            .status,
        200
    );
    assert_eq!(
        server.get("/crate/team-core/0.1.0/builds/999999").status,
        404
    );
}

#[test]
fn docs_urls_of_versions_without_docs_say_why_and_link_to_the_build() {
    let server = Server::start();
    // Failed: a 404 that links to the build's log.
    for path in ["/team-core/0.2.0/", "/team-core/0.2.0/team_core/index.html"] {
        let page = server.get(path).page(404, path);
        assert!(page.contains("build failed"), "{path}: {page}");
        assert!(
            page.contains("id=\"build-link\" href=\"/crate/team-core/0.2.0/builds/"),
            "{path}: {page}"
        );
        assert!(!page.contains('`'), "no raw backticks: {page}");
    }
    // Queued: says so.
    let queued = server.get("/team-app/0.2.0/").page(404, "queued");
    assert!(queued.contains("queued"), "{queued}");
    assert!(
        queued.contains("href=\"/crate/team-app/0.2.0\""),
        "{queued}"
    );
    // The version picker lists them too, opening their crate pages.
    let docs = server
        .get("/team-core/0.1.0/team_core/")
        .page(200, "team-core docs");
    assert!(
        docs.contains("<option value=\"/crate/team-core/0.2.0\">0.2.0 (build-failed)</option>"),
        "{docs}"
    );
    let app = server
        .get("/team-app/0.1.0/team_app/")
        .page(200, "app docs");
    assert!(
        app.contains("<option value=\"/crate/team-app/0.2.0\">0.2.0 (queued)</option>"),
        "{app}"
    );
}

#[test]
fn a_private_registrys_crates_link_to_each_other_here_with_no_server_url() {
    let server = Server::start();
    let page = server
        .get("/team-app/0.1.0/team_app/struct.App.html")
        .page(200, "App");
    assert!(
        page.contains("href=\"/team-core/0.1.0/team_core/struct.Gear.html\""),
        "{page}"
    );
    assert_eq!(
        server
            .get("/team-core/0.1.0/team_core/struct.Gear.html")
            .status,
        200
    );
}

#[test]
fn a_rebuild_button_queues_the_version_again() {
    let server = Server::start();
    let page = server.get("/crate/team-core/0.1.0").page(200, "page");
    assert!(page.contains("action=\"/crate/team-core/0.1.0/rebuild\""));
    let reply = server.send(
        "POST",
        "/crate/team-core/0.1.0/rebuild",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", &server.url("")),
        ],
        "",
    );
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(
        reply.location.as_deref(),
        Some("/crate/team-core/0.1.0/builds")
    );
    let queue = server.get("/releases/queue").page(200, "queue");
    let queued = queue.split("id=\"queued\"").nth(1).unwrap();
    assert!(
        queued.contains("href=\"/crate/team-core/0.1.0\""),
        "{queue}"
    );
    let jobs = docbuild(&server.data, &["queue", "list", "--json"]);
    assert!(
        jobs.lines()
            .any(|l| l.contains("\"team-core\"") && l.contains("\"queued\"")),
        "{jobs}"
    );
}

/// Where screenshots go when `DOCBUILD_SCREENSHOTS` names a directory (see
/// `scripts/screenshots.sh`).
fn screenshot(browser: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("DOCBUILD_SCREENSHOTS") {
        browser.screenshot(&Path::new(&dir).join(format!("{name}.png")));
    }
}

#[test]
fn a_reader_finds_a_crate_reads_it_follows_a_dependency_and_opens_a_failed_log() {
    let server = Server::start();
    let browser = Browser::start();
    let site = server.url("");
    browser.open(&format!("{site}/"));
    screenshot(&browser, "front-page");
    // Search by a word of the description.
    browser.type_into("#crate-filter", "payments app\n");
    browser.wait_for_url(|url| url.contains("q=payments"));
    browser.click("li[data-name='team-app'] a.release-name");
    browser.wait_for_url(|url| url.ends_with("/crate/team-app/0.2.0"));
    // The queued version's page says so; the built one has the README and links.
    assert!(browser.text("p.status").contains("queued"));
    browser.click("#versions li[data-version='0.1.0'] a");
    browser.wait_for_url(|url| url.ends_with("/crate/team-app/0.1.0"));
    browser.click("a.dependency");
    let docs = browser.wait_for_url(|url| url.contains("/team_core/"));
    assert!(docs.ends_with("/team-core/0.1.0/team_core/"), "{docs}");
    // The dependency's crate page, with its README rendered.
    browser.open(&format!("{site}/crate/team-core/0.1.0"));
    let readme = browser.text("article.readme");
    assert!(
        readme.contains("Shared widgets for the payments team"),
        "{readme}"
    );
    assert_ne!(browser.title(), "pwned");
    screenshot(&browser, "crate-page");
    // The failed version's log, from the version list.
    browser.click("#versions li[data-version='0.2.0'] a[href*='/builds/']");
    browser.wait_for_url(|url| url.contains("/crate/team-core/0.2.0/builds/"));
    screenshot(&browser, "failed-build");
    browser.click("#first-error");
    // The log's first error line (after docbuild's own lines about the build).
    let jumped = browser.wait_for_url(|url| url.contains("#L"));
    let line: usize = jumped.rsplit("#L").next().unwrap().parse().unwrap();
    assert!((3..=8).contains(&line), "{jumped}");
    let error = browser.text(".line.error");
    assert!(error.contains("cannot find type `NoSuchType`"), "{error}");
    browser.open(&format!("{site}/releases/queue"));
    browser.find("#queued a[href='/crate/team-app/0.2.0']");
    screenshot(&browser, "queue");
}

#[test]
fn a_reader_logs_in_on_a_deep_link_lands_on_it_and_logs_out() {
    let server = Server::start();
    let token = docbuild(&server.data, &["token", "create", "--scope", "read"]);
    let browser = Browser::start();
    let deep = server.url("/crate/team-core/0.1.0/features");
    browser.open(&deep);
    browser.click("#login-link");
    browser.wait_for_url(|url| url.contains("/-/login?next="));
    browser.type_into("#token", token.trim());
    browser.click("#login-form button[type='submit']");
    browser.wait_for_url(|url| url == deep);
    browser.find("#feature-serde");
    // Logged in: the bar offers logout, and it works.
    browser.click("#logout");
    browser.wait_for_url(|url| !url.contains("/features"));
    browser.open(&deep);
    browser.find("#login-link");
    assert!(
        !browser
            .cookies()
            .iter()
            .any(|(name, _)| name == "docbuild_token"),
        "{:?}",
        browser.cookies()
    );
}

#[test]
fn items_are_searched_across_the_newest_docs_of_every_crate() {
    let server = Server::start();
    let page = server.get("/-/search?q=cog").page(200, "search");
    let first = page.split("<li data-kind").nth(1).expect("a result");
    assert!(
        first.contains("href=\"/team-core/0.3.0/team_core/struct.Cog.html\""),
        "{page}"
    );
    assert!(first.contains("team_core::Cog") && first.starts_with("=\"struct\""));
    // Two crates: the exact name first, then names that hold the query, then paths.
    let page = server.get("/-/search?q=app").page(200, "search");
    let app = page.find("team_app::App<").expect("App");
    let module = page.find("team_app<").expect("the module");
    assert!(app < module, "{page}");
    // A kind filter; the newest docs only (0.1.0's `Gear` is gone in 0.3.0).
    let functions = server.get("/-/search?q=s&kind=fn").page(200, "fn");
    assert!(functions.contains("team_core::spin"), "{functions}");
    assert!(!functions.contains("data-kind=\"struct\""), "{functions}");
    let gone = server.get("/-/search?q=gear").page(200, "gear");
    assert!(!gone.contains("struct.Gear.html"), "{gone}");
    let nothing = server.get("/-/search?q=%3Cb%3E").page(200, "escaped");
    assert!(nothing.contains("value=\"&lt;b&gt;\""), "{nothing}");
}

#[test]
fn a_diff_page_lists_api_changes_with_the_bump_they_need() {
    let server = Server::start();
    let crate_page = server.get("/crate/team-core/0.3.0").page(200, "crate");
    assert!(
        crate_page.contains("class=\"diff\" href=\"/crate/team-core/0.3.0/diff/0.1.0\""),
        "{crate_page}"
    );
    let diff = server
        .get("/crate/team-core/0.3.0/diff/0.1.0")
        .page(200, "diff");
    assert!(
        diff.contains("public API: 2 added, 1 removed, 0 changed; needs 0.2.0, version is 0.3.0"),
        "{diff}"
    );
    let removed = diff
        .split("class=\"change-removed\"")
        .nth(1)
        .expect("a removal");
    assert!(
        removed.contains("<code>team_core::Gear</code>") && removed.contains("bump-major"),
        "{removed}"
    );
    assert!(
        removed.contains("href=\"/team-core/0.1.0/team_core/struct.Gear.html\""),
        "{removed}"
    );
    let added = diff
        .split("class=\"change-added\"")
        .nth(1)
        .expect("an addition");
    assert!(added.contains("bump-minor"), "{added}");
    assert!(diff.contains("href=\"/team-core/0.3.0/team_core/struct.Cog.html\""));
    // Either order names the same change; a version without docs has no diff.
    let reversed = server
        .get("/crate/team-core/0.1.0/diff/0.3.0")
        .page(200, "reversed");
    assert!(reversed.contains("1 removed"), "{reversed}");
    assert_eq!(server.get("/crate/team-core/0.3.0/diff/0.2.0").status, 404);
}

#[test]
fn a_reader_searches_an_item_and_opens_a_diff_from_the_version_list() {
    let server = Server::start();
    let browser = Browser::start();
    browser.open(&server.url("/-/search"));
    browser.type_into("#item-search", "Cog\n");
    browser.click("#items a[href$='/struct.Cog.html']");
    browser.wait_for_url(|url| url.ends_with("/team-core/0.3.0/team_core/struct.Cog.html"));
    browser.open(&server.url("/crate/team-core/0.3.0"));
    browser.click("#versions li[data-version='0.1.0'] a.diff");
    browser.wait_for_url(|url| url.ends_with("/crate/team-core/0.3.0/diff/0.1.0"));
    let summary = browser.text("#api-summary");
    assert!(summary.contains("1 removed"), "{summary}");
}
