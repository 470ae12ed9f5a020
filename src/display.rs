//! `check`'s human output, as cargo shows a build: progress on stderr (a spinner on a
//! terminal, plain lines otherwise), every warning and error with rustc's snippet and
//! paths relative to where the command runs, then one line per crate on stdout and,
//! for several crates, a summary line.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use docbuild_builder::workspace::Skipped;
use docbuild_builder::{CrateReport, ErrorDetail, Outcome, Progress};
use indicatif::{ProgressBar, ProgressStyle};

use crate::output::{BLUE, BOLD, CYAN, GREEN, Paint, RED, YELLOW, err, sanitized};

/// How much `check` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// `-q`: the final lines only.
    Quiet,
    Normal,
    /// `-v`: the build log too, as it is written.
    Verbose,
}

/// Shows progress on stderr, so that stdout keeps only results.
pub struct Display {
    spinner: Option<ProgressBar>,
    plain: bool,
    verbose: bool,
}

impl Display {
    pub fn new(json: bool, verbosity: Verbosity) -> Self {
        let verbose = verbosity == Verbosity::Verbose;
        if verbosity == Verbosity::Quiet {
            return Self {
                spinner: None,
                plain: false,
                verbose: false,
            };
        }
        if std::io::stderr().is_terminal() {
            let spinner = ProgressBar::new_spinner();
            spinner.set_style(
                ProgressStyle::with_template("{spinner:.cyan.bold} {elapsed:>4} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            spinner.enable_steady_tick(Duration::from_millis(120));
            Self {
                spinner: Some(spinner),
                plain: false,
                verbose,
            }
        } else {
            // In JSON mode nothing but results is promised; plain progress lines go
            // to stderr only for people reading a log.
            Self {
                spinner: None,
                plain: !json,
                verbose,
            }
        }
    }

    pub fn finish(&self) {
        if let Some(spinner) = &self.spinner {
            spinner.finish_and_clear();
        }
    }
}

impl Progress for Display {
    fn step(&self, message: &str) {
        match &self.spinner {
            Some(spinner) => spinner.set_message(message.to_string()),
            None if self.plain => err(&format!("docbuild: {message}")),
            None => {}
        }
    }

    fn log(&self, line: &str) {
        if !self.verbose {
            return;
        }
        let line = sanitized(line);
        match &self.spinner {
            Some(spinner) => spinner.suspend(|| err(&line)),
            None => err(&line),
        }
    }
}

/// Paths as the user sees them: relative to the directory the command runs in when
/// below it, else absolute.
pub struct Paths {
    cwd: Option<PathBuf>,
}

impl Paths {
    pub fn from_env() -> Self {
        Self {
            cwd: std::env::current_dir()
                .ok()
                .and_then(|dir| std::fs::canonicalize(dir).ok()),
        }
    }

    /// `file` (relative to the package at `package_dir`, as rustc names it) as the
    /// user reaches it from here. Files that are not the package's own (a
    /// dependency's, or generated in the build) stay as rustc named them.
    pub fn shown(&self, package_dir: Option<&Path>, file: &str) -> String {
        let path = Path::new(file);
        let Some(dir) = package_dir.filter(|_| path.is_relative()) else {
            return file.to_string();
        };
        let full = dir.join(path);
        if !full.exists() {
            return file.to_string();
        }
        match self
            .cwd
            .as_deref()
            .and_then(|cwd| full.strip_prefix(cwd).ok())
        {
            Some(relative) if !relative.as_os_str().is_empty() => relative.display().to_string(),
            _ => full.display().to_string(),
        }
    }

    /// rustc's rendered text with the paths of its ` --> file:line:col` and
    /// ` ::: file:line:col` lines shown from here.
    fn rewrite_rendered(&self, package_dir: Option<&Path>, rendered: &str) -> String {
        rendered
            .lines()
            .map(|line| {
                let indent = line.len() - line.trim_start().len();
                let rest = &line[indent..];
                for arrow in ["--> ", "::: "] {
                    if let Some(location) = rest.strip_prefix(arrow)
                        && let Some((file, position)) = split_location(location)
                    {
                        let file = self.shown(package_dir, file);
                        return format!("{}{arrow}{file}{position}", &line[..indent]);
                    }
                }
                line.to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// `src/lib.rs:2:27` → (`src/lib.rs`, `:2:27`); `Cargo.toml` alone has no position.
fn split_location(location: &str) -> Option<(&str, &str)> {
    let mut parts = location.rsplitn(3, ':');
    let (column, line, file) = (parts.next()?, parts.next(), parts.next());
    match (line, file) {
        (Some(line), Some(file))
            if !line.is_empty()
                && !column.is_empty()
                && line.chars().all(|c| c.is_ascii_digit())
                && column.chars().all(|c| c.is_ascii_digit()) =>
        {
            Some((file, &location[file.len()..]))
        }
        _ => Some((location, "")),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Error,
    Warning,
}

impl Level {
    fn colour(self) -> &'static str {
        match self {
            Level::Error => RED,
            Level::Warning => YELLOW,
        }
    }
}

/// One diagnostic as rustc shows it, with cargo's colours when `paint` has them.
fn diagnostic(
    detail: &ErrorDetail,
    level: Level,
    package_dir: Option<&Path>,
    paths: &Paths,
    paint: Paint,
) -> String {
    let text = match &detail.rendered {
        Some(rendered) => paths.rewrite_rendered(package_dir, &sanitized(rendered)),
        None => {
            let word = match level {
                Level::Error => "error",
                Level::Warning => "warning",
            };
            let mut text = format!("{word}: {}", sanitized(&detail.message));
            if let Some(file) = &detail.file {
                let file = paths.shown(package_dir, &sanitized(file));
                match detail.line {
                    Some(line) => text.push_str(&format!("\n --> {file}:{line}")),
                    None => text.push_str(&format!("\n --> {file}")),
                }
            }
            text
        }
    };
    if !paint.enabled() {
        return text;
    }
    text.lines()
        .map(|line| colour_line(line, level, paint))
        .collect::<Vec<_>>()
        .join("\n")
}

/// rustc's colours for one line of a rendered diagnostic: the level's colour for
/// the header and primary marks, blue for the gutter, arrows and secondary marks.
fn colour_line(line: &str, level: Level, paint: Paint) -> String {
    for (word, colour) in [
        ("error", RED),
        ("warning", YELLOW),
        ("note", GREEN),
        ("help", CYAN),
    ] {
        if let Some(rest) = line.strip_prefix(word)
            && let Some(colon) = rest.find(": ")
            && (colon == 0 || rest.starts_with('['))
        {
            let head = &line[..word.len() + colon];
            let message = &line[word.len() + colon + 2..];
            return format!(
                "{}{} {}",
                paint.style(colour, head),
                paint.style(BOLD, ":"),
                paint.style(BOLD, message)
            );
        }
    }
    let indent = line.len() - line.trim_start().len();
    let rest = &line[indent..];
    for arrow in ["--> ", "::: "] {
        if let Some(location) = rest.strip_prefix(arrow) {
            return format!(
                "{}{} {location}",
                &line[..indent],
                paint.style(BLUE, arrow.trim_end())
            );
        }
    }
    if let Some(note) = rest.strip_prefix("= ") {
        let (word, message) = note.split_once(": ").unwrap_or((note, ""));
        return format!(
            "{}{} {}: {message}",
            &line[..indent],
            paint.style(BLUE, "="),
            paint.style(BOLD, word)
        );
    }
    // The gutter: `12 |` before a source line, ` |` before marks.
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let after_number = &rest[digits..];
    let spaces = after_number.len() - after_number.trim_start_matches(' ').len();
    if after_number[spaces..].starts_with('|') {
        let gutter_end = indent + digits + spaces + 1;
        let (gutter, body) = line.split_at(gutter_end);
        let body = if digits == 0 {
            // Marks under the source: `^^^ label` in the level's colour, `---` blue.
            match body.find('^') {
                Some(caret) => format!(
                    "{}{}",
                    &body[..caret],
                    paint.style(level.colour(), &body[caret..])
                ),
                None if body.trim().is_empty() => body.to_string(),
                None => paint.style(BLUE, body),
            }
        } else {
            body.to_string()
        };
        return format!("{}{body}", paint.style(BLUE, gutter));
    }
    line.to_string()
}

/// Everything one report says before its final line, for stderr: its warnings and
/// errors with rustc's snippets, and cargo's closing count of warnings.
pub fn diagnostics(report: &CrateReport, paths: &Paths, paint: Paint) -> Vec<String> {
    let dir = report.package_dir.as_deref();
    let mut shown = Vec::new();
    for warning in &report.warnings {
        shown.push(diagnostic(warning, Level::Warning, dir, paths, paint));
    }
    for error in &report.errors {
        shown.push(diagnostic(error, Level::Error, dir, paths, paint));
    }
    let name = report.name.as_deref().unwrap_or("the package");
    let warnings = report.warnings.len() + report.omitted.warnings;
    if warnings > 0 {
        let mut count = format!(
            "`{name}` (lib doc) generated {}",
            plural(warnings, "warning")
        );
        if report.omitted.warnings > 0 {
            count.push_str(&format!(
                " ({} not shown: see the log)",
                report.omitted.warnings
            ));
        }
        shown.push(format!(
            "{}{} {count}",
            paint.style(YELLOW, "warning"),
            paint.style(BOLD, ":")
        ));
    }
    if report.omitted.errors > 0 {
        shown.push(format!(
            "{}{} {} more not shown: see the log",
            paint.style(RED, "error"),
            paint.style(BOLD, ":"),
            plural(report.omitted.errors, "error")
        ));
    }
    shown
}

/// `1 warning`, `2 warnings`.
fn plural(count: usize, word: &str) -> String {
    if count == 1 {
        format!("1 {word}")
    } else {
        format!("{count} {word}s")
    }
}

/// `success: foo 0.1.0: docs built; 2 warnings (docs: /abs/foo/index.html)`, after
/// `stage N: ` for workspace members.
pub fn summary_line(report: &CrateReport, paths: &Paths, paint: Paint) -> String {
    let name = match (&report.name, &report.version) {
        (Some(name), Some(version)) => format!("{name} {version}: "),
        _ => String::new(),
    };
    let where_ = match (report.docs(), &report.log) {
        (Some(docs), _) if report.outcome == Outcome::Success => {
            format!(" (docs: {})", docs.display())
        }
        (_, Some(log)) => format!(" (log: {})", log.display()),
        _ => String::new(),
    };
    let stage = report
        .stage
        .map(|stage| format!("stage {stage}: "))
        .unwrap_or_default();
    let mut reason = report.message.clone();
    // The first error's place, as the snippets above show it.
    if let Some(first) = report.errors.first()
        && let Some(file) = &first.file
    {
        let place = |file: &str| match first.line {
            Some(line) => format!("({file}:{line})"),
            None => format!("({file})"),
        };
        let shown = paths.shown(report.package_dir.as_deref(), file);
        reason = reason.replacen(&place(file), &place(&shown), 1);
    }
    let warnings = report.warnings.len() + report.omitted.warnings;
    if warnings > 0 {
        reason.push_str(&format!("; {}", plural(warnings, "warning")));
    }
    format!(
        "{stage}{}: {name}{}{where_}",
        paint.outcome(report.outcome),
        sanitized(&reason)
    )
}

/// The closing line of a check of several crates: how many ended how, which
/// failed, which were skipped, how many warnings.
pub fn totals_line(reports: &[&CrateReport], skipped: &[Skipped], paint: Paint) -> String {
    let mut outcomes: Vec<(Outcome, Vec<&str>)> = Vec::new();
    for report in reports {
        let name = report.name.as_deref().unwrap_or("?");
        match outcomes.iter_mut().find(|(o, _)| *o == report.outcome) {
            Some((_, names)) => names.push(name),
            None => outcomes.push((report.outcome, vec![name])),
        }
    }
    outcomes.sort_by_key(|(outcome, _)| *outcome);
    let counts: Vec<String> = outcomes
        .iter()
        .map(|(outcome, names)| {
            if *outcome == Outcome::Success {
                format!("{} {}", names.len(), paint.outcome(*outcome))
            } else {
                format!(
                    "{} {} ({})",
                    names.len(),
                    paint.outcome(*outcome),
                    names.join(", ")
                )
            }
        })
        .collect();
    let mut line = format!(
        "{}: {} checked",
        paint.style(BOLD, "summary"),
        plural(reports.len(), "crate")
    );
    if !counts.is_empty() {
        line.push_str(&format!(": {}", counts.join(", ")));
    }
    if !skipped.is_empty() {
        let names: Vec<&str> = skipped.iter().map(|s| s.name.as_str()).collect();
        line.push_str(&format!(
            "; {} skipped ({})",
            skipped.len(),
            names.join(", ")
        ));
    }
    let warnings: usize = reports
        .iter()
        .map(|r| r.warnings.len() + r.omitted.warnings)
        .sum();
    if warnings > 0 {
        line.push_str(&format!("; {}", plural(warnings, "warning")));
    }
    line
}

/// A workspace member left out: `skipped: NAME (REASON)`.
pub fn skipped_line(skipped: &Skipped, paint: Paint) -> String {
    format!(
        "{}: {} ({})",
        paint.style(YELLOW, "skipped"),
        skipped.name,
        skipped.reason
    )
}

/// Opens the docs as `cargo doc --open` does: `$BROWSER`, else the desktop's opener.
pub fn open_in_browser(page: &Path) {
    let browser = std::env::var("BROWSER").ok().filter(|b| !b.is_empty());
    let candidates = browser
        .into_iter()
        .chain(["xdg-open".to_string(), "open".to_string()]);
    for program in candidates {
        if std::process::Command::new(&program)
            .arg(page)
            .status()
            .is_ok_and(|s| s.success())
        {
            return;
        }
    }
    err(&format!(
        "docbuild: cannot open a browser; the docs are at {}",
        page.display()
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_split_from_their_position() {
        assert_eq!(
            split_location("src/lib.rs:2:27"),
            Some(("src/lib.rs", ":2:27"))
        );
        assert_eq!(split_location("Cargo.toml"), Some(("Cargo.toml", "")));
        assert_eq!(split_location("a:b/c.rs:1:1"), Some(("a:b/c.rs", ":1:1")));
    }

    #[test]
    fn member_paths_are_shown_from_the_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("member/src")).unwrap();
        std::fs::write(root.join("member/src/lib.rs"), "").unwrap();
        let paths = Paths {
            cwd: Some(root.clone()),
        };
        let member = root.join("member");
        assert_eq!(
            paths.shown(Some(&member), "src/lib.rs"),
            "member/src/lib.rs"
        );
        // Not the package's own file: as rustc named it.
        assert_eq!(paths.shown(Some(&member), "src/gone.rs"), "src/gone.rs");
        assert_eq!(paths.shown(Some(&member), "/opt/x/lib.rs"), "/opt/x/lib.rs");
        let rendered = "error[E0308]: mismatched types\n --> src/lib.rs:2:27\n  |";
        assert_eq!(
            paths.rewrite_rendered(Some(&member), rendered),
            "error[E0308]: mismatched types\n --> member/src/lib.rs:2:27\n  |"
        );
        let elsewhere = Paths {
            cwd: Some(PathBuf::from("/nowhere")),
        };
        assert_eq!(
            elsewhere.shown(Some(&member), "src/lib.rs"),
            member.join("src/lib.rs").display().to_string()
        );
    }

    #[test]
    fn diagnostics_are_coloured_as_rustc_colours_them() {
        let paint = Paint(true);
        let header = colour_line("error[E0308]: mismatched types", Level::Error, paint);
        assert!(
            header.starts_with("\x1b[1;31merror[E0308]\x1b[0m"),
            "{header:?}"
        );
        let marks = colour_line("  |     ^^^ expected `u32`", Level::Warning, paint);
        assert!(marks.contains("\x1b[1;33m^^^ expected `u32`"), "{marks:?}");
        let source = colour_line("2 | pub const A: u32 = \"x\";", Level::Error, paint);
        assert!(source.ends_with(" pub const A: u32 = \"x\";"), "{source:?}");
        assert_eq!(
            colour_line("plain", Level::Error, Paint(false)),
            "plain".to_string()
        );
    }
}
