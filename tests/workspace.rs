//! `docbuild check --workspace` and `-p` end to end, on the fixture workspace in
//! `tests/fixtures/workspace` (copied to a temporary directory first):
//!
//! ```text
//! stage 1: base, packaged-break (fails only when packaged)
//! stage 2: middle (→ base), needs-broken (→ packaged-break: blocked)
//! stage 3: top (→ middle, base; base dev-depends on top)
//! skipped: internal (publish = false)
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;

fn workspace() -> (tempfile::TempDir, PathBuf) {
    common::fixture("workspace")
}

fn docbuild(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_docbuild"))
        .args(args)
        .env(
            "DOCBUILD_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("docbuild-cache"),
        )
        // No comparison with crates.io's versions of same-named crates.
        .env("DOCBUILD_NO_API", "1")
        .output()
        .unwrap()
}

/// `check --json` on the workspace: exit code, reports by name, and stderr.
fn check(path: &Path, extra: &[&str]) -> (i32, Vec<Value>, String) {
    let mut args = vec!["check", path.to_str().unwrap(), "--json"];
    args.extend(extra);
    let output = docbuild(&args);
    let reports = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), reports, stderr)
}

fn by_name<'a>(reports: &'a [Value], name: &str) -> &'a Value {
    reports
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing from {reports:#?}"))
}

#[test]
fn a_workspace_is_checked_in_publishing_order() {
    let (_dir, root) = workspace();
    let (code, reports, stderr) = check(&root, &["--workspace"]);
    assert_eq!(code, 1, "one member fails: {reports:#?}");
    let names: Vec<&str> = reports
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["base", "packaged-break", "middle", "needs-broken", "top"],
        "stage order, then name"
    );
    for (name, stage) in [
        ("base", 1),
        ("packaged-break", 1),
        ("middle", 2),
        ("needs-broken", 2),
        ("top", 3),
    ] {
        assert_eq!(by_name(&reports, name)["stage"], stage, "{name}");
    }
    for name in ["base", "middle", "top"] {
        assert_eq!(
            by_name(&reports, name)["outcome"],
            "success",
            "{:#}",
            by_name(&reports, name)
        );
    }

    // Fails only as packaged: the included file is left out of the package.
    let broken = by_name(&reports, "packaged-break");
    assert_eq!(broken["outcome"], "build-failed");
    assert!(
        broken["message"].as_str().unwrap().contains("notes.md"),
        "{broken:#}"
    );

    // Its dependent is not built against nothing: it is blocked, naming it.
    let blocked = by_name(&reports, "needs-broken");
    assert_eq!(blocked["outcome"], "build-failed");
    let message = blocked["message"].as_str().unwrap();
    assert!(
        message.starts_with("blocked: depends on `packaged-break`"),
        "{message}"
    );
    assert!(
        blocked["targets"].as_array().unwrap().is_empty(),
        "not built"
    );

    assert!(
        stderr.contains("skipped internal (publish = false)"),
        "{stderr}"
    );
    assert!(!reports.iter().any(|r| r["name"] == "internal"));

    // A dependent's docs link to its unpublished dependency as docs.rs will.
    let top_docs = Path::new(
        by_name(&reports, "top")["targets"][0]["docs"]
            .as_str()
            .unwrap(),
    );
    let page = std::fs::read_to_string(top_docs.with_file_name("fn.top.html")).unwrap();
    let target = by_name(&reports, "top")["default_target"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        page.contains(&format!(
            "https://docs.rs/middle/0.1.0/{target}/middle/struct.Middle.html"
        )),
        "top links middle"
    );
    assert!(page.contains(&format!(
        "https://docs.rs/base/0.1.0/{target}/base/struct.Base.html"
    )));
}

#[test]
fn human_output_names_stages_and_skipped_members() {
    let (_dir, root) = workspace();
    let output = docbuild(&[
        "check",
        root.to_str().unwrap(),
        "-p",
        "middle",
        "-p",
        "internal",
    ]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[0], "skipped: internal (publish = false)");
    assert!(
        lines[1].starts_with("stage 2: success: middle 0.1.0: docs built (docs: "),
        "{stdout}"
    );
    assert_eq!(
        lines[2],
        "summary: 1 crate checked: 1 success; 1 skipped (internal)"
    );
}

#[test]
fn selected_members_build_against_their_packaged_dependencies() {
    let (_dir, root) = workspace();
    let (code, reports, _) = check(&root, &["-p", "top"]);
    assert_eq!(code, 0, "{reports:#?}");
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["name"], "top");
    assert_eq!(reports[0]["stage"], 3);

    let (code, reports, _) = check(&root, &["-p", "no-such-member"]);
    assert_eq!(code, 2);
    assert!(
        reports[0]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-member")
    );

    // Refused as a bad argument, before anything is built.
    let (code, reports, stderr) = check(&root, &["--workspace", "--no-package"]);
    assert_eq!(code, 2);
    assert!(reports.is_empty(), "{reports:#?}");
    assert!(
        stderr.starts_with("error: the argument '--workspace' cannot be used with '--no-package'"),
        "{stderr}"
    );
}

#[test]
fn a_real_workspace_from_crates_io_sources_documents() {
    // The published tracing crates with their path dependencies restored.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tracing");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/make-tracing-workspace.sh");
    let made = Command::new("bash")
        .arg(script)
        .arg(&root)
        .status()
        .unwrap();
    assert!(made.success());
    let (code, reports, stderr) = check(&root, &["--workspace"]);
    assert_eq!(code, 0, "{reports:#?}\n{stderr}");
    let stages: Vec<(&str, u64)> = reports
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["stage"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        stages,
        [
            ("tracing-attributes", 1),
            ("tracing-core", 1),
            ("tracing", 2),
            ("tracing-log", 2),
            ("tracing-serde", 2),
            ("tracing-subscriber", 3),
        ]
    );
    assert!(reports.iter().all(|r| r["outcome"] == "success"));
}
