//! The viewer in a real headless Chromium (Debian's, driven through chromedriver):
//! rustdoc's own search box finds an item, a link leads into a dependency's docs on
//! the same server, and the version picker switches versions.

mod registry;
mod webdriver;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use registry::TestRegistry;
use webdriver::{Browser, Process, docbuild, free_port, wait_for_port};

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
