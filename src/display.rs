//! Human output: a spinner on a terminal, plain lines otherwise, one summary line per
//! crate at the end.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use docbuild_builder::{CrateReport, Outcome, Progress};
use indicatif::{ProgressBar, ProgressStyle};

/// Shows progress on stderr, so that stdout keeps only results.
pub struct Display {
    spinner: Option<ProgressBar>,
    plain: bool,
}

impl Display {
    pub fn new(json: bool) -> Self {
        if std::io::stderr().is_terminal() {
            let spinner = ProgressBar::new_spinner();
            spinner.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            spinner.enable_steady_tick(Duration::from_millis(120));
            Self {
                spinner: Some(spinner),
                plain: false,
            }
        } else {
            // In JSON mode nothing but results is promised; plain progress lines go
            // to stderr only for people reading a log.
            Self {
                spinner: None,
                plain: !json,
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
            None if self.plain => eprintln!("docbuild: {message}"),
            None => {}
        }
    }
}

/// A workspace member left out: named on stdout, or on stderr when stdout is JSON.
pub fn skipped(name: &str, reason: &str, json: bool) {
    if json {
        eprintln!("docbuild: skipped {name} ({reason})");
    } else {
        println!("skipped: {name} ({reason})");
    }
}

/// `success: foo 0.1.0: docs built (docs: /abs/foo/index.html)`, after `stage N: `
/// for workspace members.
pub fn summary_line(report: &CrateReport) -> String {
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
    format!(
        "{stage}{}: {name}{}{where_}",
        report.outcome, report.message
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
    eprintln!(
        "docbuild: cannot open a browser; the docs are at {}",
        page.display()
    );
}
