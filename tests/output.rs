//! What `docbuild check` tells a crate's author, as cargo would: every warning and
//! error with rustc's snippet and paths from where the command runs, `--deny-warnings`,
//! `--manifest-path` and discovery from inside a package, and bad arguments refused
//! before anything is built. The real binary and the real Docker engine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::fixture;
use serde_json::Value;

mod common;

fn cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("docbuild-cache")
}

/// `docbuild ARGS` from `dir`, with the test run's shared cache.
fn docbuild_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_docbuild"))
        .args(args)
        .current_dir(dir)
        .env("DOCBUILD_CACHE_DIR", cache())
        // No comparison with crates.io's versions of same-named crates.
        .env("DOCBUILD_NO_API", "1")
        .env_remove("CARGO_TERM_COLOR")
        .output()
        .unwrap()
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_in(dir: &Path, args: &[&str]) -> Run {
    let output = docbuild_in(dir, args);
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `check ARGS --json` from `dir`: the exit code and the one report.
fn check_json(dir: &Path, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["check"];
    all.extend(args);
    all.push("--json");
    let run = run_in(dir, &all);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stdout {:?}; stderr {}",
        run.stdout,
        run.stderr
    );
    (run.code, serde_json::from_str(lines[0]).unwrap())
}

#[test]
fn broken_links_are_warnings_in_text_and_json() {
    let (dir, path) = fixture("broken-links");
    let (code, report) = check_json(dir.path(), &[path.to_str().unwrap()]);
    assert_eq!(code, 0, "warnings never fail a check: {report:#}");
    assert_eq!(report["outcome"], "success");
    let warnings = report["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 2, "{report:#}");
    for (warning, item) in warnings.iter().zip(["Gadget", "Missing"]) {
        assert_eq!(
            warning["message"],
            format!("unresolved link to `{item}`"),
            "{warning:#}"
        );
        assert_eq!(warning["file"], "src/lib.rs");
        assert_eq!(warning["line"], 3);
        assert_eq!(warning["lint"], "rustdoc::broken_intra_doc_links");
    }
    assert!(report["errors"].as_array().unwrap().is_empty());

    // In text, from the directory above the package: each with rustc's snippet.
    let run = run_in(dir.path(), &["check", "broken-links"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for expected in [
        "warning: unresolved link to `Gadget`",
        " --> broken-links/src/lib.rs:3:17",
        "/// Made for a [Gadget]; see also [`Missing`].",
        "^^^^^^ no item named `Gadget` in scope",
        "warning: unresolved link to `Missing`",
        " --> broken-links/src/lib.rs:3:37",
        "warning: `broken-links` (lib doc) generated 2 warnings",
    ] {
        assert!(
            run.stderr.contains(expected),
            "{expected:?} in {}",
            run.stderr
        );
    }
    assert!(
        run.stdout
            .starts_with("success: broken-links 0.1.0: docs built; 2 warnings (docs: "),
        "{}",
        run.stdout
    );
}

#[test]
fn deny_warnings_fails_the_check_as_rustdocflags_would() {
    let (dir, path) = fixture("broken-links");
    let (code, report) = check_json(dir.path(), &[path.to_str().unwrap(), "--deny-warnings"]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["outcome"], "build-failed");
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{report:#}");
    assert_eq!(errors[0]["message"], "unresolved link to `Gadget`");
    assert_eq!(errors[0]["lint"], "rustdoc::broken_intra_doc_links");
    assert!(report["targets"][0]["docs"].is_null());
    let log = std::fs::read_to_string(report["log"].as_str().unwrap()).unwrap();
    assert!(
        log.contains(r#""-D", "warnings""#),
        "rustdoc got -D warnings"
    );
    assert!(log.contains("implied by `-D warnings`"), "{log}");
}

#[test]
fn every_error_is_shown_with_its_snippet() {
    let (dir, path) = fixture("two-errors");
    let (code, report) = check_json(dir.path(), &[path.to_str().unwrap()]);
    assert_eq!(code, 1, "{report:#}");
    let lines: Vec<u64> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [2, 5], "{report:#}");
    assert_eq!(
        report["message"],
        "rustdoc failed: mismatched types (src/lib.rs:2) and 1 more error"
    );

    let run = run_in(&path, &["check"]);
    assert_eq!(run.code, 1);
    for expected in [
        "error[E0308]: mismatched types\n --> src/lib.rs:2:25",
        "2 | pub const ANSWER: u32 = \"forty-two\";",
        "expected `u32`, found `&str`",
        "error[E0308]: mismatched types\n --> src/lib.rs:5:28",
        "5 | pub const QUESTION: bool = 6 * 9;",
        "expected `bool`, found integer",
    ] {
        assert!(
            run.stderr.contains(expected),
            "{expected:?} in {}",
            run.stderr
        );
    }
    assert!(
        run.stdout.starts_with(
            "build-failed: two-errors 0.1.0: rustdoc failed: mismatched types (src/lib.rs:2) and 1 more error (log: "
        ),
        "{}",
        run.stdout
    );
}

/// A workspace `ws/` with a good member `good` and a member `bad` whose constant has
/// the wrong type.
fn workspace_with_an_error() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("Cargo.toml"),
        "[workspace]\nmembers = [\"good\", \"crates/bad\"]\nresolver = \"2\"\n",
    )
    .unwrap();
    for (member, source) in [
        ("good", "//! Fine.\n"),
        ("crates/bad", "//! Broken.\npub const N: u8 = \"eight\";\n"),
    ] {
        let name = member.rsplit('/').next().unwrap();
        std::fs::create_dir_all(root.join(member).join("src")).unwrap();
        std::fs::write(
            root.join(member).join("Cargo.toml"),
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
                 license = \"MIT\"\ndescription = \"member\"\n"
            ),
        )
        .unwrap();
        std::fs::write(root.join(member).join("src/lib.rs"), source).unwrap();
    }
    (dir, root)
}

#[test]
fn a_members_errors_are_shown_from_the_workspace_root_with_a_summary() {
    let (_dir, root) = workspace_with_an_error();
    let run = run_in(&root, &["check", "--workspace"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(" --> crates/bad/src/lib.rs:2:19"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains(
            "build-failed: bad 0.1.0: rustdoc failed: mismatched types (crates/bad/src/lib.rs:2)"
        ),
        "{}",
        run.stdout
    );
    let last = run.stdout.lines().last().unwrap();
    assert_eq!(
        last, "summary: 2 crates checked: 1 success, 1 build-failed (bad)",
        "{}",
        run.stdout
    );

    // From the member's own directory, as cargo would show it there.
    let member = root.join("crates/bad");
    let run = run_in(&member, &["check", "-p", "bad"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(" --> src/lib.rs:2:19"),
        "{}",
        run.stderr
    );
}

#[test]
fn manifest_path_names_the_package() {
    let (dir, path) = fixture("documented");
    let manifest = path.join("Cargo.toml");
    let (code, report) = check_json(dir.path(), &["--manifest-path", manifest.to_str().unwrap()]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["name"], "documented");
    // PATH may be the manifest too.
    let (code, report) = check_json(dir.path(), &["documented/Cargo.toml"]);
    assert_eq!((code, report["name"].as_str()), (0, Some("documented")));

    let lib = path.join("src/lib.rs");
    for (wrong, said) in [
        (lib.to_str().unwrap(), "must be a path to a Cargo.toml file"),
        ("/no/such/Cargo.toml", "does not exist"),
    ] {
        let run = run_in(dir.path(), &["check", "--manifest-path", wrong]);
        assert_eq!(run.code, 2, "{wrong}: {}", run.stderr);
        assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
        assert!(run.stderr.contains(said), "{}", run.stderr);
        assert!(run.stdout.is_empty());
    }
}

#[test]
fn a_check_run_inside_a_package_finds_it() {
    let (_dir, path) = fixture("documented");
    let (code, report) = check_json(&path.join("src"), &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["name"], "documented");
    let docs = report["targets"][0]["docs"].as_str().unwrap();
    assert!(docs.ends_with("documented/index.html"), "{docs}");

    // Outside any package: cargo's words.
    let nowhere = tempfile::tempdir().unwrap();
    let (code, report) = check_json(nowhere.path(), &[]);
    assert_eq!(code, 2, "{report:#}");
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("could not find `Cargo.toml`"),
        "{report:#}"
    );
}

#[test]
fn bad_arguments_are_refused_before_anything_is_built() {
    let (dir, path) = fixture("documented");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let below_file = file.join("docs");
    let package = path.to_str().unwrap();
    let cases: [(&[&str], &str); 9] = [
        (&["--memory", "3"], "`3` is 3 bytes"),
        (&["--memory", "lots"], "invalid size `lots`"),
        (&["--disk", "1M"], "too small"),
        (&["--timeout", "0s"], "longer than zero"),
        (&["--timeout", "15"], "invalid duration `15`"),
        (&["--target", "not-a-triple"], "not a target of toolchain"),
        (&["--target", "../x"], "expected a target triple"),
        (&["--out", file.to_str().unwrap()], "is a file"),
        (&["--out", below_file.to_str().unwrap()], "is a file"),
    ];
    for (args, said) in cases {
        let own_cache = tempfile::tempdir().unwrap();
        let mut all = vec!["check", package];
        all.extend(args);
        let started = std::time::Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_docbuild"))
            .args(&all)
            .env("DOCBUILD_CACHE_DIR", own_cache.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: ") && first.contains(said),
            "{args:?}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{args:?}");
        // Nothing was prepared, so no container could have started.
        assert!(
            std::fs::read_dir(own_cache.path())
                .unwrap()
                .next()
                .is_none(),
            "{args:?} left {:?}",
            std::fs::read_dir(own_cache.path())
                .unwrap()
                .collect::<Vec<_>>()
        );
        assert!(started.elapsed().as_secs() < 30, "{args:?}");
    }
    // -p names a member by a crate name.
    let run = run_in(dir.path(), &["check", package, "-p", "a/b"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[test]
fn an_unknown_metadata_key_is_named_in_a_warning() {
    let (dir, path) = fixture("metadata-typo");
    let (code, report) = check_json(dir.path(), &[path.to_str().unwrap()]);
    assert_eq!(
        code, 0,
        "docs.rs ignores it, so does the outcome: {report:#}"
    );
    let warnings = report["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{report:#}");
    let message = warnings[0]["message"].as_str().unwrap();
    assert!(
        message.contains("`all-feature`") && message.contains("did you mean `all-features`"),
        "{message}"
    );
    assert_eq!(warnings[0]["file"], "Cargo.toml");
}

#[test]
fn failed_other_targets_are_named_with_their_reason() {
    let (dir, path) = fixture("documented");
    let host = "x86_64-unknown-linux-gnu";
    // Known to rustc, its standard library not installed here.
    let other = "aarch64-apple-darwin";
    let (code, report) = check_json(
        dir.path(),
        &[path.to_str().unwrap(), "--target", host, "--target", other],
    );
    assert_eq!(code, 0, "other targets never fail a check: {report:#}");
    let message = report["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("docs built; 1 other target failed: {other} (")),
        "{message}"
    );
    // The hint names the toolchain the build used.
    let toolchain = if report["toolchain"].as_str().unwrap().contains("nightly") {
        "nightly"
    } else {
        "stable"
    };
    assert!(
        message.contains(&format!("rustup target add --toolchain {toolchain}")),
        "{message}"
    );
}

#[test]
fn a_member_that_is_not_published_is_not_checked_silently() {
    let (_dir, root) = common::fixture("workspace");
    let run = run_in(&root, &["check", "-p", "internal"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("invalid-input") && run.stdout.contains("publish = false"),
        "{}",
        run.stdout
    );
}

#[test]
fn help_names_every_argument_and_the_environment() {
    let run = run_in(Path::new("/"), &["check", "--help"]);
    assert_eq!(run.code, 0);
    for expected in [
        "DOCBUILD_CACHE_DIR",
        "DOCBUILD_DATA_DIR",
        "--deny-warnings",
        "--manifest-path",
        "--json",
        "--color",
    ] {
        assert!(run.stdout.contains(expected), "{expected}: {}", run.stdout);
    }
    // Every argument of every command has a help text (see the unit test in
    // src/main.rs); spot checks of those that had none.
    let run = run_in(Path::new("/"), &["token", "create", "--help"]);
    assert!(
        run.stdout.contains("What the token allows"),
        "{}",
        run.stdout
    );
    let run = run_in(Path::new("/"), &["queue", "show", "--help"]);
    assert!(run.stdout.contains("The job's id"), "{}", run.stdout);
}
