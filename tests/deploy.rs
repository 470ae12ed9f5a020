//! The deployment artifacts end to end: the Debian package installed into a fresh
//! root filesystem, and the container image serving and building against the host's
//! Docker engine. Both made by `scripts/package.sh` from this build's binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `scripts/package.sh WHAT` with the binary under test; returns its line of figures.
fn package(what: &str) -> Vec<String> {
    let binary = Path::new(env!("CARGO_BIN_EXE_docbuild"));
    let relative = binary.strip_prefix(root()).unwrap_or(binary);
    let output = run(Command::new("bash")
        .arg("scripts/package.sh")
        .arg(what)
        .arg("--binary")
        .arg(relative)
        .current_dir(root()));
    let line = stdout(&output)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    line.split_whitespace().map(str::to_string).collect()
}

/// A minimal Debian made with debootstrap, as `docbuild image build` makes its base.
fn fresh_debian() -> String {
    let list = root().join("deploy/container-packages.txt");
    let made = run(Command::new(env!("CARGO_BIN_EXE_docbuild"))
        .args(["image", "build", "--json", "--list"])
        .arg(list)
        .env(
            "DOCBUILD_DATA_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("deploy-data"),
        ));
    let report: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    assert!(
        report["image"]
            .as_str()
            .unwrap()
            .starts_with("docbuild-env:")
    );
    // The base below that image: debootstrap's root filesystem, imported.
    let release = image_release();
    assert!(
        run(Command::new("docker").args(["image", "inspect", &format!("docbuild-base:{release}")]))
            .status
            .success()
    );
    format!("docbuild-base:{release}")
}

fn image_release() -> String {
    std::fs::read_to_string("/etc/os-release")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .unwrap()
        .trim_matches('"')
        .to_string()
}

#[test]
fn the_debian_package_installs_into_a_fresh_system_with_its_units() {
    let figures = package("deb");
    let deb = root().join(&figures[1]);
    assert!(deb.is_file(), "{figures:?}");

    let listing = stdout(&run(Command::new("dpkg-deb").arg("--contents").arg(&deb)));
    for path in [
        "./usr/bin/docbuild",
        "./etc/docbuild/docbuild.toml",
        "./lib/systemd/system/docbuild-serve.service",
        "./lib/systemd/system/docbuild-worker.service",
        "./lib/systemd/system/docbuild-watch@.service",
        "./usr/share/bash-completion/completions/docbuild",
        "./usr/share/man/man1/docbuild.1.gz",
        "./usr/share/man/man1/docbuild-check.1.gz",
    ] {
        assert!(listing.contains(path), "{path} missing:\n{listing}");
    }
    let info = stdout(&run(Command::new("dpkg-deb").arg("--info").arg(&deb)));
    assert!(
        info.contains("conffiles") && info.contains("postinst"),
        "{info}"
    );
    for unit in ["docbuild-serve", "docbuild-worker", "docbuild-watch@"] {
        let text =
            std::fs::read_to_string(root().join(format!("deploy/systemd/{unit}.service"))).unwrap();
        for hardening in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ReadWritePaths=/var/lib/docbuild",
            "User=docbuild",
        ] {
            assert!(text.contains(hardening), "{unit}: {hardening}");
        }
    }

    // Installed with its dependencies into a fresh Debian, then checked there.
    let base = fresh_debian();
    let dir = deb.parent().unwrap();
    let name = deb.file_name().unwrap().to_str().unwrap();
    let script = format!(
        "set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/dev/null; \
         apt-get install -y -q --no-install-recommends /debs/{name} systemd >/dev/null; \
         docbuild --version; id docbuild; test -s /usr/share/bash-completion/completions/docbuild; test -f /etc/docbuild/docbuild.toml; \
         ls -ld /var/lib/docbuild; \
         systemd-analyze verify --man=no /lib/systemd/system/docbuild-serve.service \
           /lib/systemd/system/docbuild-worker.service \
           /lib/systemd/system/docbuild-watch@main.service 2>&1 | grep -v -e docker.service -e 'man:' || true; \
         echo VERIFIED"
    );
    let output = run(Command::new("docker")
        .args(["run", "--rm", "-v"])
        .arg(format!("{}:/debs:ro", dir.display()))
        .args([&base, "sh", "-c", &script]));
    let text = stdout(&output);
    assert!(
        text.contains(&format!("docbuild {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(
        text.contains("uid=") && text.contains("(docbuild)"),
        "{text}"
    );
    assert!(
        text.contains("docbuild docbuild") && text.contains("/var/lib/docbuild"),
        "{text}"
    );
    // systemd-analyze printed nothing but what is expected without Docker installed.
    let verified = text.split("/var/lib/docbuild").last().unwrap_or_default();
    assert_eq!(verified.trim(), "VERIFIED", "{text}");
}

#[test]
fn the_container_image_serves_and_builds_against_the_host_engine() {
    let figures = package("image");
    let image = figures[1].clone();
    assert!(image.starts_with("docbuild:"), "{figures:?}");

    // Identical paths on host and in the container: the engine binds host paths.
    let data = tempfile::tempdir().unwrap();
    let data = data.path().canonicalize().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    std::fs::write(
        data.join("docbuild.toml"),
        format!("[server]\nurl = \"http://127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let home = std::env::var("HOME").unwrap();
    let rustup = std::env::var("RUSTUP_HOME").unwrap_or(format!("{home}/.rustup"));
    let cargo = std::env::var("CARGO_HOME").unwrap_or(format!("{home}/.cargo"));
    let name = format!("docbuild-deploy-test-{port}");
    let data_mount = format!("{0}:{0}", data.display());
    run(Command::new("docker").args([
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock",
        "-v",
        &data_mount,
        "-e",
        &format!("DOCBUILD_DATA_DIR={}", data.display()),
        "-v",
        &format!("{rustup}:{rustup}:ro"),
        "-v",
        &format!("{cargo}/bin:{cargo}/bin:ro"),
        "-e",
        &format!("RUSTUP_HOME={rustup}"),
        "-e",
        &format!("PATH={cargo}/bin:/usr/bin:/bin"),
        "-v",
        "/etc/ssl/certs:/etc/ssl/certs:ro",
        "-p",
        &format!("127.0.0.1:{port}:3000"),
        &image,
    ]));
    let stop = Stopper(name.clone());

    let base = format!("http://127.0.0.1:{port}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let started = Instant::now();
    let queued = loop {
        let answer = agent
            .post(&format!("{base}/api/v1/builds"))
            .header("Content-Type", "application/json")
            .send(r#"{"name":"itoa","version":"1.0.11"}"#);
        match answer {
            Ok(mut response) if response.status() == 202 => {
                break response.body_mut().read_to_string().unwrap();
            }
            _ if started.elapsed() < Duration::from_secs(60) => {
                std::thread::sleep(Duration::from_millis(300))
            }
            other => panic!("the container never answered: {other:?}"),
        }
    };
    let id: serde_json::Value = serde_json::from_str(&queued).unwrap();
    let id = id["id"].as_i64().unwrap();
    let job = loop {
        let mut response = agent
            .get(&format!("{base}/api/v1/builds/{id}"))
            .call()
            .unwrap();
        let job: serde_json::Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        if job["status"] == "done" {
            break job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "not built: {job:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(job["outcome"], "success", "{job:#}");
    let mut page = agent
        .get(&format!("{base}/itoa/1.0.11/itoa/"))
        .call()
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.body_mut().read_to_string().unwrap();
    assert!(html.contains("itoa"), "{html}");
    drop(stop);
}

/// Removes the test's container however the test ends.
struct Stopper(String);

impl Drop for Stopper {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}
