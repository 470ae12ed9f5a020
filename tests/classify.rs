//! The same failure is the same outcome whichever way a crate is built: `check`, `check
//! --workspace` and the queue's worker. The real binary and the real Docker engine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A workspace `ws/` with one member `m` (whose manifest is `manifest`), a data
/// directory and a user cargo home of its own.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(member_manifest: &str, user_config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let member = dir.path().join("ws/m");
        std::fs::create_dir_all(member.join("src")).unwrap();
        std::fs::write(
            dir.path().join("ws/Cargo.toml"),
            "[workspace]\nmembers = [\"m\"]\nresolver = \"2\"\n",
        )
        .unwrap();
        std::fs::write(member.join("Cargo.toml"), member_manifest).unwrap();
        std::fs::write(member.join("src/lib.rs"), "//! A member.\n").unwrap();
        std::fs::create_dir_all(dir.path().join("cargo-home")).unwrap();
        std::fs::write(dir.path().join("cargo-home/config.toml"), user_config).unwrap();
        Self { dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn docbuild(&self, args: &[&str]) -> Output {
        let shared = Path::new(env!("CARGO_TARGET_TMPDIR"));
        Command::new(env!("CARGO_BIN_EXE_docbuild"))
            .args(args)
            .env("DOCBUILD_CACHE_DIR", shared.join("classify-cache"))
            // No comparison with crates.io's versions of same-named crates.
            .env("DOCBUILD_NO_API", "1")
            .env("DOCBUILD_DATA_DIR", self.path("data"))
            .env("CARGO_HOME", self.path("cargo-home"))
            // A registry that does not answer is told at once, without cargo's retries.
            .env("CARGO_NET_RETRY", "0")
            .output()
            .unwrap()
    }

    /// `check ARGS --json`: the exit code and the outcome of its one report.
    fn check(&self, args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["check"];
        all.extend(args);
        all.push("--json");
        let output = self.docbuild(&all);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .last()
            .unwrap_or_else(|| panic!("no report: {}", String::from_utf8_lossy(&output.stderr)));
        let report: Value = serde_json::from_str(line).unwrap();
        (
            output.status.code().unwrap_or(-1),
            report["outcome"].as_str().unwrap_or_default().to_string(),
            report["message"].as_str().unwrap_or_default().to_string(),
        )
    }

    /// Queues `what` and runs one worker pass; returns the job as `queue show` has it.
    fn queue_and_work(&self, what: &[&str], worker: &[&str]) -> Value {
        let mut add = vec!["queue", "add"];
        add.extend(what);
        add.push("--json");
        let added = self.docbuild(&add);
        assert!(
            added.status.success(),
            "{}",
            String::from_utf8_lossy(&added.stderr)
        );
        let id: Value = serde_json::from_slice(&added.stdout).unwrap();
        let id = id["id"].as_i64().unwrap().to_string();
        let mut work = vec!["worker", "--once"];
        work.extend(worker);
        let worked = self.docbuild(&work);
        assert!(
            worked.status.success(),
            "{}",
            String::from_utf8_lossy(&worked.stderr)
        );
        let shown = self.docbuild(&["queue", "show", &id, "--json"]);
        serde_json::from_slice(&shown.stdout).unwrap()
    }
}

const MEMBER: &str = "[package]\nname = \"m\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
                      license = \"MIT\"\ndescription = \"member\"\n";

#[test]
fn a_missing_toolchain_is_invalid_input_everywhere() {
    let setup = Setup::new(MEMBER, "");
    let toolchain = ["--toolchain", "no-such-toolchain"];
    let member = setup.path("ws/m");
    let member = member.to_str().unwrap();
    let ws = setup.path("ws");
    let ws = ws.to_str().unwrap();

    let (code, outcome, message) = setup.check(&[&[member][..], &toolchain].concat());
    assert_eq!((code, outcome.as_str()), (2, "invalid-input"), "{message}");
    assert!(message.contains("no-such-toolchain"), "{message}");

    let (code, outcome, message) = setup.check(&[&[ws, "--workspace"][..], &toolchain].concat());
    assert_eq!((code, outcome.as_str()), (2, "invalid-input"), "{message}");

    // A worker refuses the bad argument before it claims anything: the same exit code,
    // and the job stays queued for a worker that has the toolchain.
    let added = setup.docbuild(&["queue", "add", member, "--json"]);
    assert!(added.status.success());
    let worked = setup.docbuild(&[&["worker", "--once"][..], &toolchain].concat());
    assert_eq!(worked.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&worked.stderr).contains("no-such-toolchain"));
    let listed = setup.docbuild(&["queue", "list", "--json"]);
    let job: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(job["status"], "queued", "{job:#}");
}

#[test]
fn an_unreadable_manifest_is_invalid_input_everywhere() {
    let setup = Setup::new("[package]\nname = \"m\"\nversion = \n", "");
    let member = setup.path("ws/m");
    let ws = setup.path("ws");

    let (code, outcome, message) = setup.check(&[member.to_str().unwrap()]);
    assert_eq!((code, outcome.as_str()), (2, "invalid-input"), "{message}");
    assert!(message.contains("Cargo.toml"), "{message}");

    let (code, outcome, message) = setup.check(&[ws.to_str().unwrap(), "--workspace"]);
    assert_eq!((code, outcome.as_str()), (2, "invalid-input"), "{message}");

    // The queue refuses it where it enters, with the same exit code.
    let added = setup.docbuild(&["queue", "add", member.to_str().unwrap()]);
    assert_eq!(added.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&added.stderr).contains("Cargo.toml"));
}

#[test]
fn an_unreachable_registry_is_an_infrastructure_error_everywhere() {
    // Nothing listens on port 9 (discard) of the loopback address here.
    let index = "sparse+http://127.0.0.1:9/index/";
    let setup = Setup::new(
        &format!("{MEMBER}\n[dependencies]\ngone = {{ version = \"1\", registry = \"gone\" }}\n"),
        &format!("[registries.gone]\nindex = \"{index}\"\n"),
    );
    std::fs::create_dir_all(setup.path("data")).unwrap();
    std::fs::write(
        setup.path("data/docbuild.toml"),
        format!("[registries.gone]\nindex = \"{index}\"\n"),
    )
    .unwrap();
    let member = setup.path("ws/m");
    let ws = setup.path("ws");

    let (code, outcome, message) = setup.check(&[member.to_str().unwrap()]);
    assert_eq!(
        (code, outcome.as_str()),
        (4, "infrastructure-error"),
        "{message}"
    );

    let (code, outcome, message) = setup.check(&[ws.to_str().unwrap(), "--workspace"]);
    assert_eq!(
        (code, outcome.as_str()),
        (4, "infrastructure-error"),
        "{message}"
    );

    let job = setup.queue_and_work(
        &["gone@1.0.0", "--registry", "gone"],
        &["--retry-delay", "1h"],
    );
    // Not the crate's fault: queued again for a later attempt.
    assert_eq!(job["status"], "queued", "{job:#}");
    assert_eq!(job["attempts"], 1, "{job:#}");
    assert!(
        job["message"].as_str().unwrap().contains("connect"),
        "{job:#}"
    );
}
