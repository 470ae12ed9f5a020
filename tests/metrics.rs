//! `GET /metrics` over real HTTP after real builds: the queue by state, builds by
//! outcome with their durations, and the server's own requests; only for the metrics
//! token or an admin token.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn docbuild(data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_docbuild"));
    command.env("DOCBUILD_DATA_DIR", data).env(
        "HOME",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("metrics-home"),
    );
    command
}

fn run(data: &Path, args: &[&str]) -> String {
    let output = docbuild(data).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(&format!("http://127.0.0.1:{port}{path}"));
    if let Some(token) = token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let mut response = request.call().unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// The value of one sample line, `name{labels} value`.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{series}` in:\n{text}"))
}

#[test]
fn metrics_count_the_queue_builds_and_requests_for_the_right_token_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("docbuild.toml"),
        "[server]\nmetrics-token = \"scrape-7c1e\"\n",
    )
    .unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for fixture in ["documented", "type-error"] {
        run(
            &data,
            &["queue", "add", fixtures.join(fixture).to_str().unwrap()],
        );
    }
    run(&data, &["worker", "--once"]);
    // Queued after the worker ran: it stays queued.
    run(
        &data,
        &["queue", "add", fixtures.join("metadata").to_str().unwrap()],
    );
    let admin = run(&data, &["token", "create", "--scope", "admin"]);
    let reader = run(&data, &["token", "create", "--scope", "read"]);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let _server = Server(
        docbuild(&data)
            .args(["serve", "--listen", &listen])
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    assert_eq!(get(port, "/metrics", None).0, 401);
    assert_eq!(get(port, "/metrics", Some("wrong")).0, 401);
    assert_eq!(get(port, "/metrics", Some(&reader)).0, 403);
    assert_eq!(get(port, "/metrics", Some(&admin)).0, 200);
    // A page, for the request counters.
    assert_eq!(get(port, "/", Some(&reader)).0, 200);

    let (status, text) = get(port, "/metrics", Some("scrape-7c1e"));
    assert_eq!(status, 200, "{text}");
    assert_eq!(sample(&text, "docbuild_jobs{state=\"queued\"}"), 1.0);
    assert_eq!(sample(&text, "docbuild_jobs{state=\"running\"}"), 0.0);
    assert_eq!(sample(&text, "docbuild_jobs{state=\"done\"}"), 2.0);
    assert_eq!(
        sample(&text, "docbuild_builds_total{outcome=\"success\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "docbuild_builds_total{outcome=\"build-failed\"}"),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "docbuild_build_duration_seconds_count{outcome=\"success\"}"
        ),
        1.0
    );
    assert!(
        sample(
            &text,
            "docbuild_build_duration_seconds_sum{outcome=\"success\"}"
        ) > 0.0
    );
    assert!(
        sample(
            &text,
            "docbuild_http_requests_total{route=\"home\",method=\"GET\",status=\"2xx\"}"
        ) >= 1.0
    );
    assert!(
        sample(
            &text,
            "docbuild_http_requests_total{route=\"metrics\",method=\"GET\",status=\"4xx\"}"
        ) >= 3.0
    );
    assert!(
        sample(
            &text,
            "docbuild_http_request_duration_seconds_count{route=\"home\"}"
        ) >= 1.0
    );
}
