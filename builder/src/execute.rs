//! Running one target's `cargo rustdoc` in the sandbox and reading what happened.

use std::io::Write;
use std::path::{Path, PathBuf};

use cargo_metadata::Message;
use cargo_metadata::diagnostic::DiagnosticLevel;
use docbuild_sandbox::{
    Bind, OutputLine, RunReport, RunSpec, Sandbox, SandboxError, SandboxImage, SandboxLimits,
    StdStream,
};
use tokio_util::sync::CancellationToken;

use crate::copy::{checked_dir, remove_below};
use crate::error::BuildError;
use crate::outcome::{ErrorDetail, Outcome};
use crate::plan::{BuildPlan, InvocationOptions};
use crate::toolchain::Toolchain;

/// Errors kept per build: a crate chooses what its build prints, so neither their
/// number nor their size may grow without bound in memory.
const MAX_ERRORS: usize = 50;
const MAX_ERROR_TEXT: usize = 2000;

/// Everything a sandboxed build needs besides the plan.
pub struct BuildEnvironment<'a> {
    pub sandbox: &'a Sandbox,
    pub image: SandboxImage,
    pub limits: SandboxLimits,
    pub toolchain: &'a Toolchain,
    pub source: &'a Path,
    pub target_dir: &'a Path,
    pub cargo_home: &'a Path,
    pub log_path: &'a Path,
    pub user: (u32, u32),
    /// Extra environment, such as registry index names.
    pub env: Vec<(String, String)>,
    pub invocation: InvocationOptions,
    pub cancel: &'a CancellationToken,
}

/// The result of one target's build.
#[derive(Debug)]
pub struct TargetRun {
    pub report: RunReport,
    pub errors: Vec<ErrorDetail>,
    /// cargo's own error line when there was no compiler error (a failing build
    /// script, an unresolvable offline dependency), for the message only.
    pub cargo_error: Option<String>,
    pub docs: Option<PathBuf>,
    /// The build failed with its disk budget used up.
    pub out_of_disk: bool,
    /// A build script failed; with the system library it was probing for, when
    /// pkg-config or the script named one. For the message only, never the outcome.
    pub build_script_failed: Option<Option<String>>,
    /// The `docker run` command that replays this build by hand.
    pub replay: String,
}

impl TargetRun {
    /// The outcome, from exit states only.
    pub fn outcome(&self) -> Outcome {
        if self.report.oom_killed {
            Outcome::OutOfMemory
        } else if self.report.timed_out {
            Outcome::TimedOut
        } else if self.report.cancelled {
            Outcome::InfrastructureError
        } else if self.report.exit_code == Some(0) && self.docs.is_some() {
            Outcome::Success
        } else if self.out_of_disk {
            Outcome::OutOfDisk
        } else {
            Outcome::BuildFailed
        }
    }

    /// One line saying why it did not succeed.
    pub fn failure_message(&self, limits: &SandboxLimits) -> String {
        match self.outcome() {
            Outcome::OutOfMemory => format!(
                "the build ran out of memory (limit {} MiB)",
                limits.memory_bytes >> 20
            ),
            Outcome::TimedOut => format!(
                "the build ran past its time limit of {}",
                humantime::format_duration(limits.timeout)
            ),
            Outcome::OutOfDisk => format!(
                "the build wrote more than its disk budget of {} MiB",
                limits.disk_bytes >> 20
            ),
            _ if self.report.cancelled => "the build was cancelled".to_string(),
            _ => {
                if let Some(error) = self.errors.first() {
                    format!("rustdoc failed: {error}")
                } else if let Some(error) = &self.cargo_error {
                    format!("cargo failed: {error}")
                } else if self.report.exit_code == Some(0) {
                    "rustdoc exited 0 but wrote no docs for the library".to_string()
                } else {
                    let code = self.report.exit_code.unwrap_or(-1);
                    format!("cargo exited with code {code}; see the log")
                }
            }
        }
    }
}

const SOURCE: &str = "/opt/docbuild/src";
const TARGET: &str = "/opt/docbuild/target";
const CARGO_HOME: &str = "/opt/docbuild/cargo-home";
const TOOLCHAIN: &str = "/opt/docbuild/toolchain";

/// Builds `target`'s docs in a fresh container.
pub async fn build_target(
    env: &BuildEnvironment<'_>,
    plan: &BuildPlan,
    target: &str,
    lib_name: &str,
) -> Result<TargetRun, BuildError> {
    // Docs left by an earlier build must not pass for this build's, and docs of
    // other crates built in the same target directory must not be linked locally
    // (docs.rs builds every crate in a fresh one). An earlier build may have made
    // any part of that path a link to a host directory: nothing is followed.
    let doc_dir = PathBuf::from(plan.doc_dir(target));
    let (root, relative) = (env.target_dir.to_path_buf(), doc_dir.clone());
    crate::prepare::blocking(move || {
        match remove_below(&root, &relative) {
            // A link above the doc directory: remove the target's whole subtree.
            Err(crate::copy::CopyError::NotADirectory(_)) => {
                let top = relative
                    .components()
                    .next()
                    .map(|c| PathBuf::from(c.as_os_str()));
                remove_below(&root, &top.unwrap_or(relative))
            }
            other => other,
        }
        .map_err(BuildError::Output)
    })
    .await?;

    let mut command = vec![format!("{TOOLCHAIN}/bin/cargo")];
    command.extend(plan.cargo_args(target, &env.invocation));
    let mut environment = vec![
        (
            "PATH".to_string(),
            format!("{TOOLCHAIN}/bin:/usr/local/bin:/usr/bin:/bin"),
        ),
        ("CARGO_HOME".to_string(), CARGO_HOME.to_string()),
        ("CARGO_TARGET_DIR".to_string(), TARGET.to_string()),
        ("HOME".to_string(), "/tmp".to_string()),
        ("TMPDIR".to_string(), "/tmp".to_string()),
        ("CARGO_TERM_COLOR".to_string(), "never".to_string()),
    ];
    if env.toolchain.needs_bootstrap() {
        environment.push(("RUSTC_BOOTSTRAP".to_string(), "1".to_string()));
    }
    environment.extend(plan.environment());
    environment.extend(env.env.iter().cloned());

    // Shell-quoted, so that the command can be replayed by hand.
    let quoted =
        shlex::try_join(command.iter().map(String::as_str)).unwrap_or_else(|_| command.join(" "));
    append_to_log(env.log_path, &format!("[docbuild] {target}: {quoted}"))?;
    let spec = RunSpec {
        image: env.image.clone(),
        command,
        env: environment,
        workdir: SOURCE.to_string(),
        binds: vec![
            Bind::read_only(env.source, SOURCE),
            Bind::writable(env.target_dir, TARGET),
            Bind::read_only(env.cargo_home, CARGO_HOME),
            Bind::read_only(&env.toolchain.sysroot, TOOLCHAIN),
        ],
        user: env.user,
        limits: env.limits.clone(),
        log_path: env.log_path.to_path_buf(),
    };

    let mut errors = Vec::new();
    let mut cargo_error = None;
    let mut build_script_failed: Option<Option<String>> = None;
    let mut filter = |line: OutputLine<'_>| -> Option<String> {
        match line.stream {
            StdStream::Stderr => {
                if cargo_error.is_none() && line.text.starts_with("error") {
                    cargo_error = Some(capped(line.text, MAX_ERROR_TEXT));
                }
                if line
                    .text
                    .starts_with("error: failed to run custom build command")
                {
                    build_script_failed.get_or_insert(None);
                }
                if let Some(probe) = &mut build_script_failed
                    && probe.is_none()
                {
                    *probe = probed_library(line.text);
                }
                Some(line.text.to_string())
            }
            StdStream::Stdout => match serde_json::from_str::<Message>(line.text) {
                Ok(Message::CompilerMessage(message)) => {
                    let diagnostic = message.message;
                    if errors.len() < MAX_ERRORS
                        && let Some(error) = error_detail(&diagnostic)
                    {
                        errors.push(error);
                    }
                    Some(diagnostic.rendered.unwrap_or(diagnostic.message))
                }
                // Artifacts, build-script results and the final summary: not for the log.
                Ok(_) => None,
                Err(_) => Some(line.text.to_string()),
            },
        }
    };
    let replay = shlex::try_join(env.sandbox.replay_command(&spec).iter().map(String::as_str))
        .unwrap_or_default();
    let report = env.sandbox.run(&spec, &mut filter, env.cancel).await?;
    // The container is gone: nothing changes the target directory while it is read.
    let docs = if report.succeeded() {
        let (root, lib_docs) = (env.target_dir.to_path_buf(), doc_dir.join(lib_name));
        crate::prepare::blocking(move || {
            let dir = checked_dir(&root, &lib_docs).map_err(BuildError::Output)?;
            Ok(dir.map(|dir| dir.join("index.html")).filter(|index| {
                std::fs::symlink_metadata(index).is_ok_and(|m| m.file_type().is_file())
            }))
        })
        .await?
    } else {
        None
    };
    Ok(TargetRun {
        report,
        errors,
        cargo_error,
        docs,
        out_of_disk: false,
        build_script_failed,
        replay,
    })
}

/// The system library a failed build script was looking for, from what pkg-config
/// (or the pkg-config crate) printed.
fn probed_library(line: &str) -> Option<String> {
    let name = if let Some(rest) = line.split("The system library `").nth(1) {
        rest.split('`').next()
    } else if let Some(rest) = line.split("Package ").nth(1)
        && line.contains("was not found in the pkg-config search path")
    {
        rest.split_whitespace().next()
    } else if line.contains("pkg-config") && line.contains("--libs") {
        // `"pkg-config" "--libs" "--cflags" "alsa"`: the last quoted word.
        line.rsplit('"').nth(1)
    } else {
        None
    }?;
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'));
    valid.then(|| name.to_string())
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn capped(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// An error-level diagnostic with its primary location. The closing "aborting due to
/// N previous errors" summary carries no location and no news, so it is skipped.
fn error_detail(diagnostic: &cargo_metadata::diagnostic::Diagnostic) -> Option<ErrorDetail> {
    if !matches!(
        diagnostic.level,
        DiagnosticLevel::Error | DiagnosticLevel::Ice
    ) {
        return None;
    }
    let primary = diagnostic.spans.iter().find(|span| span.is_primary);
    if primary.is_none() && diagnostic.message.starts_with("aborting due to") {
        return None;
    }
    Some(ErrorDetail {
        message: capped(&diagnostic.message, MAX_ERROR_TEXT),
        file: primary.map(|span| capped(&span.file_name, MAX_ERROR_TEXT)),
        line: primary.map(|span| span.line_start),
    })
}

pub(crate) fn append_to_log(path: &Path, line: &str) -> Result<(), SandboxError> {
    let mut file = std::fs::File::options()
        .create(true)
        .append(true)
        .open(path)
        .map_err(SandboxError::Io)?;
    writeln!(file, "{line}").map_err(SandboxError::Io)
}

#[cfg(test)]
mod tests {
    use super::probed_library;

    #[test]
    fn probed_libraries_are_named() {
        assert_eq!(
            probed_library(
                "  The system library `alsa` required by crate `alsa-sys` was not found."
            ),
            Some("alsa".into())
        );
        assert_eq!(
            probed_library("Package libudev was not found in the pkg-config search path."),
            Some("libudev".into())
        );
        assert_eq!(
            probed_library(
                "Could not run `PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=\"1\" \"pkg-config\" \"--libs\" \"--cflags\" \"dbus-1\"`"
            ),
            Some("dbus-1".into())
        );
        assert_eq!(probed_library("error: could not compile `foo`"), None);
        assert_eq!(probed_library("The system library `a b;c` was"), None);
    }
}
