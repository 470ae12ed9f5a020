//! The sandbox against the real Docker engine.

use std::time::Duration;

use docbuild_sandbox::{
    Bind, OutputLine, RunReport, RunSpec, SANDBOX_UID, Sandbox, SandboxImage, SandboxLimits,
};
use tokio_util::sync::CancellationToken;

fn spec(dir: &std::path::Path, script: &str, limits: SandboxLimits) -> RunSpec {
    RunSpec {
        image: SandboxImage::Default,
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: vec![("MARKER".into(), "visible".into())],
        workdir: "/tmp".into(),
        binds: vec![Bind::read_only(dir, "/opt/docbuild/src")],
        user: (SANDBOX_UID, SANDBOX_UID),
        limits,
        log_path: dir.join("run.log"),
    }
}

async fn run(script: &str, limits: SandboxLimits) -> (RunReport, String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    run_in(dir.path(), script, limits).await
}

async fn run_in(
    dir: &std::path::Path,
    script: &str,
    limits: SandboxLimits,
) -> (RunReport, String, Vec<String>) {
    std::fs::write(dir.join("input.txt"), "from the host").unwrap();
    let sandbox = Sandbox::connect().await.expect("Docker engine");
    let mut stdout = Vec::new();
    let report = sandbox
        .run(
            &spec(dir, script, limits),
            &mut |line: OutputLine<'_>| {
                stdout.push(line.text.to_string());
                Some(line.text.to_string())
            },
            &CancellationToken::new(),
        )
        .await
        .expect("run");
    let log = std::fs::read_to_string(dir.join("run.log")).unwrap();
    // However the run ended, its container is gone.
    let filter = format!(
        "label={}={}",
        docbuild_sandbox::LOG_LABEL,
        dir.join("run.log").display()
    );
    let left = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &filter])
        .output()
        .expect("docker CLI");
    assert!(left.status.success());
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "",
        "container left"
    );
    (report, log, stdout)
}

#[tokio::test]
async fn exit_code_output_and_environment_are_reported() {
    let (report, log, _) = run(
        "echo out-$MARKER; echo err >&2; cat /opt/docbuild/src/input.txt; exit 3",
        SandboxLimits::default(),
    )
    .await;
    assert_eq!(report.exit_code, Some(3));
    assert!(!report.oom_killed && !report.timed_out);
    assert!(log.contains("out-visible"), "{log}");
    assert!(log.contains("err"), "{log}");
    assert!(log.contains("from the host"), "{log}");
}

#[tokio::test]
async fn the_container_is_locked_down() {
    let script = "ls /sys/class/net; id -u; grep CapEff /proc/self/status; \
                  touch /opt/docbuild/src/x 2>/dev/null && echo src-writable; \
                  touch /root-file 2>/dev/null && echo root-writable; \
                  touch /tmp/ok && echo tmp-writable";
    let (report, log, _) = run(script, SandboxLimits::default()).await;
    assert_eq!(report.exit_code, Some(0), "{log}");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], "lo", "only loopback: {log}");
    assert_eq!(lines[1], SANDBOX_UID.to_string());
    assert_eq!(lines[2].split_whitespace().nth(1), Some("0000000000000000"));
    assert!(
        !log.contains("src-writable") && !log.contains("root-writable"),
        "{log}"
    );
    assert!(log.contains("tmp-writable"), "{log}");
}

#[tokio::test]
async fn memory_limit_kills_with_oom() {
    let limits = SandboxLimits {
        memory_bytes: 64 << 20,
        ..SandboxLimits::default()
    };
    // Fill the tmpfs /tmp, which is charged to the container's memory.
    let (report, log, _) = run(
        "head -c 200000000 /dev/zero > /tmp/fill; echo survived",
        limits,
    )
    .await;
    assert!(report.oom_killed, "{report:?} {log}");
    assert!(!log.contains("survived"), "{log}");
}

#[tokio::test]
async fn peak_memory_is_sampled() {
    let (report, log, _) = run(
        "head -c 100000000 /dev/zero > /tmp/fill; sleep 3",
        SandboxLimits::default(),
    )
    .await;
    assert_eq!(report.exit_code, Some(0), "{log}");
    let peak = report.memory_peak_bytes.expect("peak reported");
    assert!(peak >= 100_000_000, "{peak}");
}

#[tokio::test]
async fn time_limit_kills_and_removes() {
    let limits = SandboxLimits {
        timeout: Duration::from_secs(2),
        ..SandboxLimits::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let (report, _, _) = run_in(dir.path(), "sleep 600", limits).await;
    assert!(report.timed_out);
    assert_eq!(report.exit_code, None);
    assert!(report.duration < Duration::from_secs(60));
    // The container of this run is the one labelled with its log.
    let label = format!(
        "label=org.docbuild.log={}",
        dir.path().join("run.log").display()
    );
    let listed = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &label])
        .output()
        .expect("docker CLI");
    assert!(listed.status.success());
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).trim(),
        "",
        "the container was removed"
    );
}
