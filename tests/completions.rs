//! Shell completions and man pages, made from the command line's definition.

use std::process::Command;

fn docbuild(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_docbuild"))
        .args(args)
        .output()
        .unwrap();
    assert!(output.stderr.is_empty(), "{output:?}");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn completions_know_every_command_and_flag() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (code, script) = docbuild(&["completions", shell]);
        assert_eq!(code, 0, "{shell}");
        for word in [
            "check",
            "queue",
            "rebuild",
            "gc",
            "deny-warnings",
            "manifest-path",
        ] {
            assert!(script.contains(word), "{shell}: {word}");
        }
    }
    let (_, bash) = docbuild(&["completions", "bash"]);
    let checked = Command::new("bash")
        .args(["-n", "-c", &bash])
        .status()
        .unwrap();
    assert!(checked.success(), "the bash script parses");
    let output = Command::new(env!("CARGO_BIN_EXE_docbuild"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "an unknown shell is a bad argument"
    );
}

#[test]
fn man_pages_document_every_command() {
    let (code, page) = docbuild(&["man"]);
    assert_eq!(code, 0);
    assert!(page.starts_with(".ie"), "roff: {}", &page[..80]);
    assert!(page.contains(".TH docbuild 1"), "{page}");
    assert!(
        page.contains("DOCBUILD_DATA_DIR"),
        "the environment: {page}"
    );

    let dir = tempfile::tempdir().unwrap();
    let (code, _) = docbuild(&["man", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0);
    for page in [
        "docbuild.1",
        "docbuild-check.1",
        "docbuild-queue-rebuild.1",
        "docbuild-gc.1",
    ] {
        assert!(dir.path().join(page).is_file(), "{page}");
    }
    let check = std::fs::read_to_string(dir.path().join("docbuild-check.1")).unwrap();
    assert!(check.contains("deny\\-warnings"), "{check}");
    assert!(check.contains("DOCBUILD_CACHE_DIR"), "{check}");
}
