//! Running one target's `cargo rustdoc` in the sandbox and reading what happened.

use std::io::Write;
use std::path::{Path, PathBuf};

use cargo_metadata::Message;
use cargo_metadata::diagnostic::{Diagnostic, DiagnosticLevel};
use docbuild_sandbox::{
    Bind, OutputLine, RunReport, RunSpec, Sandbox, SandboxError, SandboxImage, SandboxLimits,
    StdStream,
};
use tokio_util::sync::CancellationToken;

use crate::check::Progress;
use crate::copy::{checked_dir, remove_below, set_aside};
use crate::error::BuildError;
use crate::outcome::{ErrorDetail, Omitted, Outcome};
use crate::plan::{BuildPlan, DocFormat, InvocationOptions};
use crate::toolchain::Toolchain;

/// Where a build's old docs go, directly below the target directory, to be deleted
/// while the next build runs.
pub(crate) const OLD_DOCS: &str = ".docbuild-old-docs";

/// Errors and warnings kept per build: a crate chooses what its build prints, so
/// neither their number nor their size may grow without bound in memory. The log has
/// them all.
const MAX_ERRORS: usize = 50;
const MAX_WARNINGS: usize = 50;
const MAX_ERROR_TEXT: usize = 2000;
/// rustc's rendered text of one diagnostic: the message and its source snippet.
const MAX_RENDERED_TEXT: usize = 4000;

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
    /// Sees every line the build log gets (`check -v`).
    pub progress: &'a dyn Progress,
}

impl<'a> BuildEnvironment<'a> {
    /// The same environment for other sources.
    pub fn with_source(&self, source: &'a Path) -> Self {
        Self {
            sandbox: self.sandbox,
            image: self.image.clone(),
            limits: self.limits.clone(),
            toolchain: self.toolchain,
            source,
            target_dir: self.target_dir,
            cargo_home: self.cargo_home,
            log_path: self.log_path,
            user: self.user,
            env: self.env.clone(),
            invocation: self.invocation.clone(),
            cancel: self.cancel,
            progress: self.progress,
        }
    }
}

/// The result of one target's build.
#[derive(Debug)]
pub struct TargetRun {
    pub report: RunReport,
    pub errors: Vec<ErrorDetail>,
    /// rustdoc's warnings about the documented library.
    pub warnings: Vec<ErrorDetail>,
    /// Errors and warnings past the caps.
    pub omitted: Omitted,
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
                    let more = self.errors.len() - 1 + self.omitted.errors;
                    match more {
                        0 => format!("rustdoc failed: {error}"),
                        1 => format!("rustdoc failed: {error} and 1 more error"),
                        n => format!("rustdoc failed: {error} and {n} more errors"),
                    }
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
    run_rustdoc(env, plan, target, lib_name, DocFormat::Html, None).await
}

/// Compiles `target`'s dependencies for a stub of the package (the build cache's
/// first run): its rustdoc run (JSON, no scraped examples) documents an empty
/// library. Its docs are never used.
pub async fn build_dependencies(
    env: &BuildEnvironment<'_>,
    plan: &BuildPlan,
    target: &str,
    lib_name: &str,
) -> Result<TargetRun, BuildError> {
    let label = "dependencies, for the build cache";
    run_rustdoc(env, plan, target, lib_name, DocFormat::Json, Some(label)).await
}

/// Makes rustdoc's JSON for `target` in a fresh container, in the same target
/// directory as its HTML docs: the dependencies those compiled are reused. Its
/// `docs` is `<doc dir>/<lib name>.json`. Like every build, it starts by removing the
/// target's doc directory (and cargo removes `<doc dir>/<lib name>/` before rustdoc
/// runs, cargo#9447): the HTML docs must have been copied out before.
pub async fn build_json(
    env: &BuildEnvironment<'_>,
    plan: &BuildPlan,
    target: &str,
    lib_name: &str,
) -> Result<TargetRun, BuildError> {
    run_rustdoc(env, plan, target, lib_name, DocFormat::Json, None).await
}

async fn run_rustdoc(
    env: &BuildEnvironment<'_>,
    plan: &BuildPlan,
    target: &str,
    lib_name: &str,
    format: DocFormat,
    label: Option<&str>,
) -> Result<TargetRun, BuildError> {
    // Docs left by an earlier build must not pass for this build's, and docs of
    // other crates built in the same target directory must not be linked locally
    // (docs.rs builds every crate in a fresh one). They are moved aside before the
    // container starts and deleted while it runs.
    let doc_dir = PathBuf::from(plan.doc_dir(target));
    let (root, relative) = (env.target_dir.to_path_buf(), doc_dir.clone());
    let old_docs = crate::prepare::blocking(move || {
        set_aside(&root, &relative, OLD_DOCS).map_err(BuildError::Output)
    })
    .await?
    .then(|| {
        let root = env.target_dir.to_path_buf();
        tokio::task::spawn_blocking(move || remove_below(&root, Path::new(OLD_DOCS)))
    });

    let mut command = vec![format!("{TOOLCHAIN}/bin/cargo")];
    command.extend(plan.cargo_args_for(target, &env.invocation, format));
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
    let started = match (format, label) {
        (_, Some(label)) => format!("[docbuild] {target} ({label}): {quoted}"),
        (DocFormat::Html, None) => format!("[docbuild] {target}: {quoted}"),
        (DocFormat::Json, None) => format!("[docbuild] {target} (rustdoc JSON): {quoted}"),
    };
    append_to_log(env.log_path, &started)?;
    env.progress.log(&started);
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
    let mut warnings = Vec::new();
    let mut omitted = Omitted::default();
    let mut cargo_error = None;
    let mut build_script_failed: Option<Option<String>> = None;
    let mut filter = |line: OutputLine<'_>| -> Option<String> {
        let logged = match line.stream {
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
                    let of_library = documents(&message.target, lib_name);
                    let diagnostic = message.message;
                    if let Some(error) = error_detail(&diagnostic) {
                        if errors.len() < MAX_ERRORS {
                            errors.push(error);
                        } else {
                            omitted.errors += 1;
                        }
                    } else if of_library && let Some(warning) = warning_detail(&diagnostic) {
                        if warnings.len() < MAX_WARNINGS {
                            warnings.push(warning);
                        } else {
                            omitted.warnings += 1;
                        }
                    }
                    Some(diagnostic.rendered.unwrap_or(diagnostic.message))
                }
                // Artifacts, build-script results and the final summary: not for the log.
                Ok(_) => None,
                Err(_) => Some(line.text.to_string()),
            },
        };
        if let Some(text) = &logged {
            env.progress.log(text.trim_end_matches('\n'));
        }
        logged
    };
    let replay = shlex::try_join(env.sandbox.replay_command(&spec).iter().map(String::as_str))
        .unwrap_or_default();
    let report = env.sandbox.run(&spec, &mut filter, env.cancel).await;
    if let Some(removal) = old_docs {
        // The build may have changed the old docs while they were deleted; what is
        // left goes before the next build's. Nothing there is read.
        if let Ok(Err(error)) = removal.await {
            tracing::debug!(%error, "old docs not all deleted");
        }
    }
    let report = report?;
    // The container is gone: nothing changes the target directory while it is read.
    let docs = if report.succeeded() && format == DocFormat::Json {
        let (root, dir, name) = (
            env.target_dir.to_path_buf(),
            doc_dir.clone(),
            format!("{lib_name}.json"),
        );
        crate::prepare::blocking(move || {
            let dir = checked_dir(&root, &dir).map_err(BuildError::Output)?;
            Ok(dir.map(|dir| dir.join(name)).filter(|json| {
                std::fs::symlink_metadata(json).is_ok_and(|m| m.file_type().is_file())
            }))
        })
        .await?
    } else if report.succeeded() {
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
        warnings,
        omitted,
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

/// Whether a compiler message is about the library being documented (rustdoc on its
/// sources), not a dependency or its build script.
fn documents(target: &cargo_metadata::Target, lib_name: &str) -> bool {
    !target.is_custom_build() && target.name.replace('-', "_") == lib_name
}

/// An error-level diagnostic with its primary location. The closing "aborting due to
/// N previous errors" summary carries no location and no news, so it is skipped.
fn error_detail(diagnostic: &Diagnostic) -> Option<ErrorDetail> {
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
    Some(detail(diagnostic))
}

/// A warning-level diagnostic. The closing "N warnings emitted" summary is skipped.
fn warning_detail(diagnostic: &Diagnostic) -> Option<ErrorDetail> {
    if diagnostic.level != DiagnosticLevel::Warning {
        return None;
    }
    let summary = diagnostic.spans.is_empty()
        && (diagnostic.message.ends_with("warning emitted")
            || diagnostic.message.ends_with("warnings emitted"));
    (!summary).then(|| detail(diagnostic))
}

fn detail(diagnostic: &Diagnostic) -> ErrorDetail {
    let primary = diagnostic.spans.iter().find(|span| span.is_primary);
    ErrorDetail {
        message: capped(&diagnostic.message, MAX_ERROR_TEXT),
        file: primary.map(|span| capped(&span.file_name, MAX_ERROR_TEXT)),
        line: primary.map(|span| span.line_start),
        lint: lint_name(diagnostic),
        rendered: diagnostic
            .rendered
            .as_deref()
            .map(|text| capped(text.trim_end(), MAX_RENDERED_TEXT)),
    }
}

/// The lint a diagnostic names; rustc's error codes (`E0308`) are not lints.
fn lint_name(diagnostic: &Diagnostic) -> Option<String> {
    let code = &diagnostic.code.as_ref()?.code;
    let error_code =
        code.len() == 5 && code.starts_with('E') && code[1..].chars().all(|c| c.is_ascii_digit());
    let plausible = !code.is_empty()
        && code.len() <= 100
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-'));
    (!error_code && plausible).then(|| code.clone())
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
