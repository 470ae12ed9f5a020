//! `docbuild check` on a terminal and into a pipe: on a terminal (a pseudo-terminal
//! made by util-linux's `script`), a progress spinner and cargo's colours; piped,
//! plain progress lines and not one escape sequence. `--color` decides either way.

use std::path::Path;
use std::process::{Command, Output};

use common::fixture;

mod common;

fn cache() -> std::path::PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("docbuild-cache")
}

/// `docbuild check PACKAGE EXTRA…` on a pseudo-terminal: all it wrote there (stdout
/// and stderr both go to the terminal), and its exit code.
fn on_a_terminal(package: &Path, extra: &str) -> (i32, String) {
    let command = format!(
        "{} check {} {extra}",
        env!("CARGO_BIN_EXE_docbuild"),
        package.display()
    );
    let output = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env("DOCBUILD_CACHE_DIR", cache())
        // No comparison with crates.io's versions of same-named crates.
        .env("DOCBUILD_NO_API", "1")
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("CARGO_TERM_COLOR")
        .output()
        .expect("util-linux's script");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn piped(package: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_docbuild"))
        .arg("check")
        .arg(package)
        .args(extra)
        .env("DOCBUILD_CACHE_DIR", cache())
        // No comparison with crates.io's versions of same-named crates.
        .env("DOCBUILD_NO_API", "1")
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("CARGO_TERM_COLOR")
        .output()
        .unwrap()
}

const ESC: char = '\x1b';

#[test]
fn a_terminal_gets_progress_and_colours_a_pipe_gets_plain_lines() {
    let (_dir, package) = fixture("broken-links");

    let (code, screen) = on_a_terminal(&package, "");
    assert_eq!(code, 0, "{screen}");
    // The spinner redraws its line in place, naming the step it is at.
    assert!(screen.contains("\r\x1b[2K"), "no redrawn line: {screen:?}");
    assert!(screen.contains("documenting for"), "{screen:?}");
    // cargo's colours: yellow warnings, blue gutters, a green outcome.
    assert!(screen.contains("\x1b[1;33mwarning\x1b[0m"), "{screen:?}");
    assert!(screen.contains("\x1b[1;34m-->\x1b[0m"), "{screen:?}");
    assert!(screen.contains("\x1b[1;32msuccess\x1b[0m"), "{screen:?}");

    let output = piped(&package, &[]);
    assert_eq!(output.status.code(), Some(0));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        !stdout.contains(ESC) && !stderr.contains(ESC),
        "{stdout}{stderr}"
    );
    assert!(!stderr.contains('\r'), "{stderr:?}");
    assert!(
        stderr.contains("docbuild: documenting for "),
        "plain progress lines: {stderr}"
    );
    assert!(
        stderr.contains("warning: unresolved link to `Gadget`"),
        "{stderr}"
    );
    assert!(
        stdout.starts_with("success: broken-links 0.1.0"),
        "{stdout}"
    );
}

#[test]
fn color_decides_over_the_terminal() {
    let (_dir, package) = fixture("broken-links");
    let (code, screen) = on_a_terminal(&package, "--color never");
    assert_eq!(code, 0, "{screen}");
    assert!(
        !screen.contains("\x1b[1;33m") && !screen.contains("\x1b[1;32m"),
        "{screen:?}"
    );
    assert!(screen.contains("warning: unresolved link to `Gadget`"));

    let output = piped(&package, &["--color", "always", "--quiet"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("\x1b[1;32msuccess\x1b[0m"), "{stdout:?}");
    // -q: the final line only.
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

#[test]
fn verbose_streams_the_build_log() {
    let (_dir, package) = fixture("broken-links");
    let output = piped(&package, &["-v"]);
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("[docbuild] x86_64-unknown-linux-gnu:")
            && stderr.contains("cargo rustdoc --lib"),
        "the sandboxed command: {stderr}"
    );
    assert!(
        stderr.contains("Documenting broken-links v0.1.0"),
        "{stderr}"
    );
}
