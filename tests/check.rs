//! `docbuild check` end to end: the real binary, the real Docker engine, and fixture
//! crates from `tests/fixtures/`, each copied to a temporary directory first.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::fixture;
use serde_json::Value;

mod common;
mod registry;

/// docbuild with a cache shared by the tests of this run, and a user cargo home of
/// its own holding a registry token that must never reach the sandbox.
fn docbuild(args: &[&str]) -> Output {
    docbuild_command(args)
        // No comparison with crates.io's versions of same-named crates.
        .env("DOCBUILD_NO_API", "1")
        .output()
        .unwrap()
}

/// [`docbuild`]'s command, comparing the public API (so that `check` makes rustdoc's
/// JSON) as asked by `args`.
fn docbuild_command(args: &[&str]) -> Command {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let user_cargo_home = root.join("user-cargo-home");
    std::fs::create_dir_all(&user_cargo_home).unwrap();
    std::fs::write(
        user_cargo_home.join("credentials.toml"),
        "[registry]\ntoken = \"docbuild-test-secret-7f3a\"\n",
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_docbuild"));
    command
        .args(args)
        .env("DOCBUILD_CACHE_DIR", root.join("docbuild-cache"))
        .env_remove("DOCBUILD_NO_API")
        .env("CARGO_HOME", &user_cargo_home)
        .env("CARGO_REGISTRY_TOKEN", "docbuild-test-secret-7f3a");
    command
}

/// Runs `check --json` and returns the exit code and the one JSON line.
fn check(path: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["check", path.to_str().unwrap(), "--json"];
    args.extend(extra);
    report_of(docbuild(&args))
}

/// `check --json` with the public API comparison on, so rustdoc's JSON is made; the
/// comparison itself names a registry nobody defined, so it asks no registry (and
/// says so in `"api"`).
fn check_with_json(path: &Path) -> (i32, Value) {
    let args = [
        "check",
        path.to_str().unwrap(),
        "--json",
        "--registry",
        "no-such-registry",
    ];
    let (code, report) = report_of(docbuild_command(&args).output().unwrap());
    assert_eq!(report["api"]["status"], "failed", "{report:#}");
    (code, report)
}

/// The exit code and the one JSON line of a `check --json`.
fn report_of(output: Output) -> (i32, Value) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one JSON line expected on stdout, got {stdout:?}; stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(lines[0]).unwrap();
    (output.status.code().unwrap_or(-1), report)
}

fn docs_html(report: &Value) -> String {
    let docs = report["targets"][0]["docs"]
        .as_str()
        .unwrap_or_else(|| panic!("no docs: {report:#}"));
    let index = std::fs::read_to_string(docs).unwrap();
    // Items live on pages of their own; the crate's index lists them all.
    let all = Path::new(docs).with_file_name("all.html");
    index + &std::fs::read_to_string(all).unwrap_or_default()
}

fn log(report: &Value) -> String {
    std::fs::read_to_string(report["log"].as_str().unwrap()).unwrap_or_default()
}

#[test]
fn a_documented_crate_succeeds() {
    let (_dir, path) = fixture("documented");
    let (code, report) = check(&path, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["outcome"], "success");
    assert_eq!(report["name"], "documented");
    assert_eq!(report["version"], "0.1.0");
    assert_eq!(report["targets"][0]["outcome"], "success");
    assert_eq!(report["default_target"], report["targets"][0]["target"]);
    assert!(report["toolchain"].as_str().unwrap().starts_with("rustc "));
    let docs = report["targets"][0]["docs"].as_str().unwrap();
    assert!(Path::new(docs).is_absolute() && docs.ends_with("documented/index.html"));
    assert!(docs_html(&report).contains("Widget"));
    // rustdoc JSON only when the public API is compared.
    assert!(report.get("json").is_none(), "{report:#}");
    assert!(!log(&report).contains("(rustdoc JSON)"));
    // With it: rustdoc JSON for the default target, made in the same target directory
    // after the HTML docs, which it leaves intact.
    let (code, report) = check_with_json(&path);
    assert_eq!(code, 0, "{report:#}");
    let docs = report["targets"][0]["docs"].as_str().unwrap();
    let json = &report["json"];
    assert_eq!(json["target"], report["default_target"], "{report:#}");
    let file = std::fs::read(json["path"].as_str().unwrap()).unwrap();
    assert_eq!(json["size_bytes"].as_u64(), Some(file.len() as u64));
    let rustdoc: Value = serde_json::from_slice(&file).unwrap();
    assert_eq!(rustdoc["format_version"], json["format_version"]);
    assert!(rustdoc["index"].to_string().contains("\"Widget\""));
    assert!(Path::new(docs).is_file());
    assert!(log(&report).contains("(rustdoc JSON)"));
    // The commands it ran, to replay by hand: host cargo from `/`, then the sandbox.
    let commands: Vec<&str> = report["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("cd / &&") && c.contains(" fetch ")),
        "{commands:#?}"
    );
    let run = commands.last().unwrap();
    assert!(
        run.starts_with("docker run") && run.contains("--network none") && run.contains("rustdoc"),
        "{run}"
    );
    assert!(!commands.iter().any(|c| c.contains("docbuild-test-secret")));
}

#[test]
fn a_failing_rustdoc_json_run_does_not_fail_the_build() {
    // rustdoc refuses a second `--output-format`: the HTML run takes it, the JSON run
    // (which adds `--output-format json`) fails.
    let (_dir, path) = fixture("documented");
    let mut manifest = std::fs::read_to_string(path.join("Cargo.toml")).unwrap();
    manifest
        .push_str("\n[package.metadata.docs.rs]\nrustdoc-args = [\"--output-format\", \"html\"]\n");
    std::fs::write(path.join("Cargo.toml"), manifest).unwrap();
    let (code, report) = check_with_json(&path);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["outcome"], "success");
    assert_eq!(report["message"], "docs built");
    assert!(docs_html(&report).contains("Widget"));
    assert!(report.get("json").is_none(), "{report:#}");
    let log = log(&report);
    assert!(log.contains("rustdoc JSON failed"), "{log}");
}

#[test]
fn a_second_check_still_reports_fresh_docs() {
    let (_dir, path) = fixture("documented");
    let (first, _) = check(&path, &[]);
    assert_eq!(first, 0);
    std::fs::write(
        path.join("src/lib.rs"),
        "//! Changed.\n\n/// Renamed.\npub struct Gadget;\n",
    )
    .unwrap();
    let (second, report) = check(&path, &[]);
    assert_eq!(second, 0, "{report:#}");
    let html = docs_html(&report);
    assert!(html.contains("Gadget") && !html.contains("Widget"));
}

/// The mount ID (mountinfo's first field) of the topmost filesystem mounted at `dir`.
fn mount_id(dir: &Path) -> Option<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = dir.to_str().unwrap();
    mountinfo.lines().rev().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        (fields.get(4) == Some(&dir)).then(|| fields[0].to_string())
    })
}

#[test]
fn the_target_directory_stays_mounted_for_the_next_check_until_idle() {
    let (_dir, path) = fixture("documented");
    let check_keeping = |keep: &str| {
        report_of(
            docbuild_command(&["check", path.to_str().unwrap(), "--json"])
                .env("DOCBUILD_NO_API", "1")
                .env("DOCBUILD_KEEP_MOUNTED", keep)
                .output()
                .unwrap(),
        )
    };
    let (code, report) = check_keeping("1h");
    assert_eq!(code, 0, "{report:#}");
    let work = Path::new(report["log"].as_str().unwrap()).parent().unwrap();
    let target = std::fs::canonicalize(work.join("target")).unwrap();
    let mounted = mount_id(&target).expect("the target directory stays mounted after a check");

    // The next check builds in the same mount, and its release takes over.
    let (code, report) = check_keeping("2s");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(mount_id(&target), Some(mounted));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let released = || mount_id(&target).is_none() && !work.join("target.kept").exists();
    while !released() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(mount_id(&target), None, "unmounted once idle for 2 s");
    assert!(
        !work.join("target.kept").exists(),
        "the release forgets its token"
    );
    assert!(docs_html(&report).contains("Widget"));

    // `0`: unmounted as the check ends.
    let (code, report) = check_keeping("0");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(mount_id(&target), None);

    let refused = docbuild_command(&["check", path.to_str().unwrap()])
        .env("DOCBUILD_KEEP_MOUNTED", "soon")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("DOCBUILD_KEEP_MOUNTED"), "{stderr}");
}

#[test]
fn a_type_error_fails_with_file_and_line() {
    let (_dir, path) = fixture("type-error");
    let (code, report) = check(&path, &[]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["outcome"], "build-failed");
    let error = &report["errors"][0];
    assert_eq!(error["message"], "mismatched types");
    assert_eq!(error["file"], "src/lib.rs");
    assert_eq!(error["line"], 2);
    assert_eq!(
        report["message"],
        "rustdoc failed: mismatched types (src/lib.rs:2)"
    );
    assert!(report["targets"][0]["docs"].is_null());
    assert!(log(&report).contains("mismatched types"));
}

#[test]
fn docs_rs_metadata_is_honoured() {
    let (_dir, path) = fixture("metadata");
    let (code, report) = check(&path, &[]);
    assert_eq!(code, 0, "{report:#}\n{}", log(&report));
    let html = docs_html(&report);
    assert!(html.contains("ChosenItem"), "chosen feature documented");
    assert!(
        !html.contains("UnchosenItem"),
        "feature not chosen is absent"
    );
    assert!(
        html.contains("DocsRsOnlyItem"),
        "#[cfg(docsrs)] item present"
    );
    let docs = Path::new(report["targets"][0]["docs"].as_str().unwrap());
    let item =
        std::fs::read_to_string(docs.with_file_name("struct.BuildScriptEnvironment.html")).unwrap();
    assert!(
        item.contains("build-script-saw-DOCS_RS=1"),
        "DOCS_RS reaches build scripts"
    );
    assert!(
        item.contains(r#"content="rustdoc-args-applied""#),
        "rustdoc-args (--html-in-header) applied"
    );
    let docs_rs_only =
        std::fs::read_to_string(docs.with_file_name("struct.DocsRsOnlyItem.html")).unwrap();
    assert!(docs_rs_only.contains("chosen"), "doc(cfg) note rendered");
}

#[test]
fn a_file_left_out_of_the_package_fails_unless_no_package() {
    let (_dir, path) = fixture("excluded-file");
    let (code, report) = check(&path, &[]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["outcome"], "build-failed");
    assert!(
        report["message"].as_str().unwrap().contains("guide.md"),
        "{report:#}"
    );
    let (code, report) = check(&path, &["--no-package"]);
    assert_eq!(code, 0, "{report:#}");
    assert!(docs_html(&report).contains("The guide"));
}

#[test]
fn a_proc_macro_crate_builds_for_the_host() {
    let (_dir, path) = fixture("proc-macro-fixture");
    let (code, report) = check(&path, &[]);
    assert_eq!(code, 0, "{report:#}\n{}", log(&report));
    let docs = report["targets"][0]["docs"].as_str().unwrap();
    assert!(docs.ends_with("/proc_macro_fixture/index.html"), "{docs}");
    assert!(Path::new(docs).is_file(), "{docs}");
    assert!(
        !log(&report).contains("--target"),
        "no --target for proc-macros"
    );
}

#[test]
fn a_crate_without_a_library_fails() {
    let (_dir, path) = fixture("binary-only");
    let (code, report) = check(&path, &[]);
    assert_eq!(code, 1);
    assert_eq!(report["outcome"], "build-failed");
    assert_eq!(report["message"], "no library target");
}

#[test]
fn invalid_inputs_are_named() {
    let (_dir, path) = fixture("wrong-metadata");
    let (code, report) = check(&path, &[]);
    assert_eq!(code, 2);
    assert_eq!(report["outcome"], "invalid-input");
    assert!(
        report["message"].as_str().unwrap().contains("`features`"),
        "{report:#}"
    );

    let (_dir, path) = fixture("broken-manifest");
    let (code, report) = check(&path, &[]);
    assert_eq!(code, 2);
    assert_eq!(report["outcome"], "invalid-input");
    assert!(
        report["message"].as_str().unwrap().contains("Cargo.toml"),
        "{report:#}"
    );

    let (code, report) = check(Path::new("/no/such/crate"), &[]);
    assert_eq!(code, 2);
    assert_eq!(report["outcome"], "invalid-input");
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("/no/such/crate")
    );

    let output = docbuild(&["check", ".", "--memory", "lots"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("lots"));
}

#[test]
fn a_build_that_eats_memory_is_out_of_memory() {
    let (_dir, path) = fixture("memory-hog");
    let (code, report) = check(&path, &["--memory", "512M"]);
    assert_eq!(code, 3, "{report:#}");
    assert_eq!(report["outcome"], "out-of-memory");
    assert!(
        report["message"].as_str().unwrap().contains("512 MiB"),
        "{report:#}"
    );
}

/// The containers, running or not, of the build that writes `log`.
fn containers_of(log: &Path) -> String {
    let filter = format!("label=org.docbuild.log={}", log.display());
    let output = Command::new("docker")
        .args(["ps", "-aq", "--filter", &filter])
        .output()
        .expect("docker CLI");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The log a check writes once it started, in a cache directory of its own.
fn only_log_in(cache: &Path) -> Option<PathBuf> {
    std::fs::read_dir(cache.join("check"))
        .ok()?
        .flatten()
        .map(|entry| entry.path().join("build.log"))
        .find(|log| log.exists())
}

/// Kills the child if the test fails before it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_build_that_never_ends_times_out_and_leaves_no_container() {
    let (_dir, path) = fixture("never-ends");
    let (code, report) = check(&path, &["--timeout", "20s"]);
    assert_eq!(code, 3, "{report:#}");
    assert_eq!(report["outcome"], "timed-out");
    let duration = report["targets"][0]["duration_ms"].as_u64().unwrap();
    assert!((20_000..60_000).contains(&duration), "{duration}");
    let log = PathBuf::from(report["log"].as_str().unwrap());
    assert_eq!(containers_of(&log), "", "the container was removed");
}

#[test]
fn ctrl_c_removes_the_container() {
    let (_dir, path) = fixture("never-ends");
    let cache = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_docbuild"))
            .args(["check", path.to_str().unwrap(), "--json"])
            .env("DOCBUILD_CACHE_DIR", cache.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = std::time::Instant::now();
    let log = loop {
        assert!(started.elapsed().as_secs() < 300, "the build never started");
        std::thread::sleep(std::time::Duration::from_millis(200));
        let Some(log) = only_log_in(cache.path()) else {
            continue;
        };
        if !containers_of(&log).is_empty() {
            break log;
        }
    };
    let status = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(containers_of(&log), "", "the container was removed");
    // An interrupted build has no outcome of its own: no report claims one.
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.0.stdout.take().unwrap(), &mut stdout).unwrap();
    assert!(!stdout.contains("infrastructure-error"), "{stdout}");
    assert_eq!(stdout, "", "nothing was checked to the end");
}

#[test]
fn ctrl_c_of_a_text_check_says_interrupted() {
    let (_dir, path) = fixture("never-ends");
    let cache = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_docbuild"))
            .args(["check", path.to_str().unwrap()])
            .env("DOCBUILD_CACHE_DIR", cache.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let started = std::time::Instant::now();
    loop {
        assert!(started.elapsed().as_secs() < 300, "the build never started");
        std::thread::sleep(std::time::Duration::from_millis(200));
        if let Some(log) = only_log_in(cache.path())
            && !containers_of(&log).is_empty()
        {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = std::mem::replace(&mut child.0, Command::new("true").spawn().unwrap())
        .wait_with_output()
        .unwrap();
    assert_eq!(output.status.code(), Some(130));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(!stdout.contains("infrastructure-error"), "{stdout}");
    assert!(stderr.contains("docbuild: interrupted"), "{stderr}");
}

#[test]
fn a_build_script_is_contained() {
    let (_dir, path) = fixture("probe");
    let (code, report) = check(&path, &["--no-package"]);
    assert_eq!(code, 0, "{report:#}\n{}", log(&report));
    let html = docs_html(&report)
        + &std::fs::read_to_string(
            Path::new(report["targets"][0]["docs"].as_str().unwrap())
                .with_file_name("struct.Report.html"),
        )
        .unwrap();
    let start = html.find("probe-report: ").expect("report in the docs");
    let probe = &html[start
        ..html[start..]
            .find('<')
            .map_or(html.len(), |end| start + end)];
    let field = |name: &str| -> String {
        probe
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} missing from {probe}"))
            .to_string()
    };
    assert_eq!(field("interfaces"), "lo", "{probe}");
    assert_ne!(field("uid"), "0", "{probe}");
    assert_eq!(field("capeff"), "0000000000000000", "{probe}");
    assert_eq!(field("secret-visible"), "false", "{probe}");
    assert_eq!(field("docker-socket"), "false", "{probe}");
    assert_eq!(field("source-writable"), "false", "{probe}");
    let threads: u32 = field("threads-started").parse().unwrap();
    assert!(threads < 512, "pids limit holds: {threads} threads started");
    assert!(!path.join("probe-was-here").exists());
}

#[test]
fn a_failing_shipped_lockfile_is_regenerated_once() {
    // The shipped lockfile pins lexical-core 0.7.4, which no current compiler builds.
    let (_dir, path) = fixture("stale-lockfile");
    let (code, report) = check(&path, &["--no-package"]);
    assert_eq!(code, 0, "{report:#}\n{}", log(&report));
    assert_eq!(report["lockfile_regenerated"], true);
    let log = log(&report);
    assert!(
        log.contains("lexical-core-0.7.4"),
        "the first build used the shipped lockfile"
    );
    assert!(log.contains("regenerating it and trying again"));
}

#[test]
fn a_build_past_its_disk_budget_is_out_of_disk_and_its_space_is_freed() {
    let (_dir, path) = fixture("disk-filler");
    let (code, report) = check(&path, &["--disk", "1G", "--no-package"]);
    assert_eq!(code, 3, "{report:#}\n{}", log(&report));
    assert_eq!(report["outcome"], "out-of-disk");
    assert!(
        report["message"].as_str().unwrap().contains("1024 MiB"),
        "{report:#}"
    );
    // The build's filesystem is gone with what it wrote.
    let work = Path::new(report["log"].as_str().unwrap()).parent().unwrap();
    assert!(!work.join("target.img").exists());
    let kept: u64 = walk_size(work);
    assert!(kept < 64 << 20, "{kept} bytes kept in {work:?}");
}

/// Bytes of the regular files below `dir`.
fn walk_size(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            total += walk_size(&entry.path());
        } else if kind.is_file() {
            total += entry.metadata().unwrap().len();
        }
    }
    total
}

/// A local version of `apicheck` with `old` removed, in a directory of its own.
fn apicheck(dir: &Path, version: &str) -> PathBuf {
    let path = dir.join("apicheck");
    std::fs::create_dir_all(path.join("src")).unwrap();
    std::fs::write(
        path.join("Cargo.toml"),
        format!(
            "[package]\nname = \"apicheck\"\nversion = \"{version}\"\nedition = \"2021\"\n\
             description = \"API check fixture\"\nlicense = \"MIT\"\n\n[workspace]\n"
        ),
    )
    .unwrap();
    std::fs::write(path.join("src/lib.rs"), "//! Kept.\n\npub fn kept() {}\n").unwrap();
    path
}

#[test]
fn the_public_api_is_compared_with_the_newest_earlier_published_version() {
    let registry = registry::TestRegistry::start(None);
    let published = "//! Published.\n\npub fn old() {}\npub fn kept() {}\n";
    registry.publish("apicheck", "0.1.0", "", &[("src/lib.rs", "")], &[]);
    registry.publish("apicheck", "0.2.0", "", &[("src/lib.rs", published)], &[]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("docbuild.toml");
    std::fs::write(
        &config,
        format!(
            "[registries.testreg]\nindex = \"{}\"\n",
            registry.index_url()
        ),
    )
    .unwrap();
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let baseline_dir = root.join("docbuild-cache/api-baseline/testreg");
    let _ = std::fs::remove_dir_all(&baseline_dir);
    let cached = baseline_dir.join("apicheck-0.2.0.json");
    let run = |path: &Path, extra: &[&str]| -> Output {
        let mut args = vec!["--config", config.to_str().unwrap(), "check"];
        args.push(path.to_str().unwrap());
        args.extend(extra);
        Command::new(env!("CARGO_BIN_EXE_docbuild"))
            .args(&args)
            .env("DOCBUILD_CACHE_DIR", root.join("docbuild-cache"))
            .env("CARGO_HOME", root.join("user-cargo-home"))
            .env_remove("DOCBUILD_NO_API")
            .output()
            .unwrap()
    };
    let json = |output: &Output| -> Value {
        let stdout = String::from_utf8_lossy(&output.stdout);
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "{e}: {stdout}; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
    };

    // 0.2.1 removes `old`: a breaking change, which needs 0.3.0.
    let path = apicheck(dir.path(), "0.2.1");
    let output = run(&path, &["--json", "--registry", "testreg"]);
    let report = json(&output);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(report["outcome"], "success");
    let api = &report["api"];
    assert_eq!(api["status"], "compared", "{report:#}");
    assert_eq!(api["baseline"], "0.2.0");
    assert_eq!(api["source"], "built", "{api:#}");
    assert_eq!(api["needed"], "major");
    assert_eq!(api["required_version"], "0.3.0");
    assert_eq!(api["enough"], false);
    assert_eq!(
        api["summary"],
        "public API: 0 added, 1 removed, 0 changed; needs 0.3.0, version is 0.2.1"
    );
    assert_eq!(api["changes"][0]["path"], "apicheck::old", "{api:#}");
    assert_eq!(api["changes"][0]["kind"], "removed");
    assert_eq!(api["changes"][0]["bump"], "major");
    assert!(cached.is_file(), "the baseline's JSON is cached");
    let mtime = std::fs::metadata(&cached).unwrap().modified().unwrap();
    // Built in the sandbox, by the check pipeline, in a work directory of its own.
    let baseline_log = baseline_dir.join("work/apicheck-0.2.0/build/build.log");
    assert!(
        std::fs::read_to_string(&baseline_log)
            .unwrap()
            .contains("(rustdoc JSON)"),
        "the baseline was built by the sandboxed check pipeline"
    );
    let log_mtime = std::fs::metadata(&baseline_log)
        .unwrap()
        .modified()
        .unwrap();

    // The same in text: one line after the outcome, and a note; still exit code 0.
    let output = run(&path, &["--registry", "testreg"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("success: apicheck 0.2.1"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(
        lines[at + 1],
        "  public API: 0 added, 1 removed, 0 changed; needs 0.3.0, version is 0.2.1"
    );
    assert!(
        lines[at + 2].contains("not a large enough bump") && lines[at + 2].contains("0.3.0"),
        "{stdout}"
    );

    // 0.3.0 is enough; the baseline comes from the cache, not built again.
    let path = apicheck(dir.path(), "0.3.0");
    let output = run(&path, &["--json", "--registry", "testreg"]);
    let report = json(&output);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    let api = &report["api"];
    assert_eq!(api["baseline"], "0.2.0", "{report:#}");
    assert_eq!(api["source"], "cache");
    assert_eq!(api["enough"], true);
    assert_eq!(
        api["summary"],
        "public API: 0 added, 1 removed, 0 changed; needs 0.3.0, version is 0.3.0"
    );
    assert_eq!(
        std::fs::metadata(&cached).unwrap().modified().unwrap(),
        mtime
    );
    assert_eq!(
        std::fs::metadata(&baseline_log)
            .unwrap()
            .modified()
            .unwrap(),
        log_mtime,
        "the baseline was not built again"
    );

    // With a viewer configured, the baseline's JSON is asked of it first: a real
    // `docbuild serve` over a worker's build of the published 0.2.0.
    std::fs::remove_file(&cached).unwrap();
    let viewer = Viewer::of_registry(&registry.index_url(), "apicheck@0.2.0");
    std::fs::write(
        &config,
        format!(
            "[registries.testreg]\nindex = \"{}\"\n[server]\nurl = \"http://127.0.0.1:{}\"\n",
            registry.index_url(),
            viewer.port
        ),
    )
    .unwrap();
    let output = run(&path, &["--json", "--registry", "testreg"]);
    let report = json(&output);
    assert_eq!(report["api"]["source"], "server", "{report:#}");
    assert_eq!(report["api"]["enough"], true);
    assert_eq!(report["api"]["baseline"], "0.2.0");
    assert!(cached.is_file(), "the viewer's JSON is cached too");
    drop(viewer);

    // --no-api: no registry is asked, and no "api".
    let before = registry.requests.lock().unwrap().len();
    let output = run(&path, &["--json", "--registry", "testreg", "--no-api"]);
    let report = json(&output);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert!(report.get("api").is_none(), "{report:#}");
    assert!(
        report.get("json").is_none(),
        "no rustdoc JSON run: {report:#}"
    );
    assert_eq!(registry.requests.lock().unwrap().len(), before);

    // A version below every published one has nothing to compare with.
    let path = apicheck(dir.path(), "0.0.1");
    let output = run(&path, &["--json", "--registry", "testreg"]);
    let report = json(&output);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(report["api"]["status"], "no-baseline", "{report:#}");

    // A registry nobody defined: said in one line, the outcome unchanged.
    let output = run(&path, &["--json", "--registry", "nosuch"]);
    let report = json(&output);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(report["outcome"], "success");
    assert_eq!(report["api"]["status"], "failed", "{report:#}");
    let message = report["api"]["message"].as_str().unwrap();
    assert!(message.contains("unknown registry `nosuch`"), "{message}");
}

/// `docbuild serve` over a data directory of its own in which a worker built `krate`
/// from the registry at `index`; ended when dropped.
struct Viewer {
    port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Viewer {
    fn of_registry(index: &str, krate: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(
            data.join("docbuild.toml"),
            format!("[registries.testreg]\nindex = \"{index}\"\n"),
        )
        .unwrap();
        let docbuild = |args: &[&str]| {
            let output = Command::new(env!("CARGO_BIN_EXE_docbuild"))
                .args(args)
                .env("DOCBUILD_DATA_DIR", &data)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        docbuild(&["queue", "add", krate, "--registry", "testreg"]);
        docbuild(&["worker", "--once"]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_docbuild"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("DOCBUILD_DATA_DIR", &data)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self {
            port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
