//! Build environments made locally from Debian's packages: an image of a small list of
//! our own documents a crate whose build script needs a system library, which the
//! light default image does not have. The real binary, Docker engine and Debian mirror.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

mod common;

fn docbuild(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_docbuild"))
        .args(args)
        .env("DOCBUILD_DATA_DIR", data)
        // No comparison with crates.io's versions of same-named crates.
        .env("DOCBUILD_NO_API", "1")
        .env(
            "DOCBUILD_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("environment-cache"),
        )
        .output()
        .unwrap()
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.code().is_some(),
        "killed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "no output; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    serde_json::from_str(line).unwrap()
}

#[test]
fn an_image_of_a_package_list_documents_what_the_default_image_cannot() {
    let dir = tempfile::tempdir().unwrap();
    // The data directory is shared by this test's runs, so that its base image and
    // environment are made once per machine, as a team's would be.
    let data = Path::new(env!("CARGO_TARGET_TMPDIR")).join("environment-data");
    let list = dir.path().join("packages.txt");
    std::fs::write(
        &list,
        "# a build script's needs\ngcc\nlibc6-dev\npkg-config\nlibgpiod-dev\n",
    )
    .unwrap();
    let list = list.to_str().unwrap();

    let made = json(&docbuild(
        &data,
        &["image", "build", "--list", list, "--json"],
    ));
    let image = made["image"].as_str().unwrap().to_string();
    assert!(image.starts_with("docbuild-env:"), "{made:#}");
    assert_eq!(made["packages"], 4);
    assert!(made["size_bytes"].as_u64().unwrap() > 0);

    // The same list again: nothing is rebuilt.
    let again = json(&docbuild(
        &data,
        &["image", "build", "--list", list, "--json"],
    ));
    assert_eq!(again["image"], image.as_str());
    assert_eq!(again["built"], false, "{again:#}");

    // A changed list names another image, not yet made.
    let changed = dir.path().join("changed.txt");
    std::fs::write(
        &changed,
        "gcc\nlibc6-dev\npkg-config\nlibgpiod-dev\nlibudev-dev\n",
    )
    .unwrap();
    let shown = json(&docbuild(
        &data,
        &[
            "image",
            "show",
            "--list",
            changed.to_str().unwrap(),
            "--json",
        ],
    ));
    assert_ne!(shown["image"], image.as_str());
    assert_eq!(shown["present"], false);

    let (_fixture, path) = common::fixture("needs-system-library");
    let path = path.to_str().unwrap();
    let built = docbuild(&data, &["check", path, "--image", &image, "--json"]);
    let report = json(&built);
    assert_eq!(built.status.code(), Some(0), "{report:#}");
    assert_eq!(report["outcome"], "success");

    // The light default image lacks libgpiod: the message names it and the remedy.
    let failed = docbuild(&data, &["check", path, "--json"]);
    let report = json(&failed);
    assert_eq!(failed.status.code(), Some(1), "{report:#}");
    assert_eq!(report["outcome"], "build-failed");
    let message = report["message"].as_str().unwrap();
    assert!(message.contains("`libgpiod`"), "{message}");
    assert!(message.contains("docbuild image build"), "{message}");
    assert!(message.contains("--image docsrs"), "{message}");
}

#[test]
fn docs_rs_s_environment_is_named_by_its_list() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let plain = json(&docbuild(&data, &["image", "show", "--json"]));
    assert!(
        plain["image"]
            .as_str()
            .unwrap()
            .starts_with("docbuild-docsrs:")
    );
    assert!(plain["packages"].as_u64().unwrap() > 1000, "{plain:#}");
    // A team's own packages make another image.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("docbuild.toml"),
        "[image]\npackages = [\"libgpiod-dev\"]\n",
    )
    .unwrap();
    let team = json(&docbuild(&data, &["image", "show", "--json"]));
    assert_ne!(team["image"], plain["image"]);
    // A name that is not a Debian package name never reaches a shell.
    std::fs::write(
        data.join("docbuild.toml"),
        "[image]\npackages = [\"x; touch /tmp/pwned\"]\n",
    )
    .unwrap();
    let refused = docbuild(&data, &["image", "show", "--json"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("x; touch"));
}
