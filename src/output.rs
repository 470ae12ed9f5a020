//! Writing to the terminal as cargo does: colours only where they are wanted, and a
//! reader that goes away (`docbuild queue list | head -1`) ends the output quietly.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use docbuild_builder::Outcome;

/// `--color`: when to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal (unless NO_COLOR is set or TERM is dumb).
    Auto,
    /// Always, even into a pipe or a file.
    Always,
    /// Never.
    Never,
}

impl ColorChoice {
    /// `--color`, else `CARGO_TERM_COLOR` (as cargo reads it), else `auto`.
    pub fn resolve(flag: Option<ColorChoice>) -> Self {
        flag.or_else(|| {
            let env = std::env::var("CARGO_TERM_COLOR").ok()?;
            <ColorChoice as clap::ValueEnum>::from_str(env.trim(), true).ok()
        })
        .unwrap_or(ColorChoice::Auto)
    }

    fn enabled(self, terminal: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                terminal
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::env::var("TERM").map_or(true, |term| term != "dumb")
            }
        }
    }

    /// Colours for what goes to stdout.
    pub fn stdout(self) -> Paint {
        Paint(self.enabled(std::io::stdout().is_terminal()))
    }

    /// Colours for what goes to stderr.
    pub fn stderr(self) -> Paint {
        Paint(self.enabled(std::io::stderr().is_terminal()))
    }
}

/// ANSI styles, or plain text when colours are off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paint(pub bool);

pub const BOLD: &str = "1";
pub const RED: &str = "1;31";
pub const GREEN: &str = "1;32";
pub const YELLOW: &str = "1;33";
pub const BLUE: &str = "1;34";
pub const CYAN: &str = "1;36";

impl Paint {
    pub fn enabled(self) -> bool {
        self.0
    }

    /// `text` in the SGR style `codes` (such as [`RED`]).
    pub fn style(self, codes: &str, text: &str) -> String {
        if self.0 && !text.is_empty() {
            format!("\x1b[{codes}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// An outcome word in its colour: green for success, red otherwise.
    pub fn outcome(self, outcome: Outcome) -> String {
        let colour = if outcome == Outcome::Success {
            GREEN
        } else {
            RED
        };
        self.style(colour, outcome.as_str())
    }
}

/// Text a crate controls (messages, source lines), made safe for a terminal: control
/// characters other than newline and tab are shown escaped, so that no escape
/// sequence a crate wrote reaches the terminal.
pub fn sanitized(text: &str) -> String {
    let mut safe = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            safe.push_str(&c.escape_unicode().to_string());
        } else {
            safe.push(c);
        }
    }
    safe
}

/// One line on stdout. A closed pipe is an error of kind `BrokenPipe`, which callers
/// end on quietly (see [`finish`]).
pub fn out(line: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

/// One line on stderr; nothing to do if nobody reads it any more.
pub fn err(line: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{line}");
}

/// `error: MESSAGE` on stderr (as cargo says it) and the outcome's exit code.
pub fn fail(outcome: Outcome, error: &dyn std::fmt::Display) -> ExitCode {
    let paint = crate::color().stderr();
    err(&format!(
        "{}: {}",
        paint.style(RED, "error"),
        sanitized(&error.to_string())
    ));
    ExitCode::from(outcome.exit_code() as u8)
}

/// `warning: MESSAGE` on stderr.
pub fn warn(message: &dyn std::fmt::Display) {
    let paint = crate::color().stderr();
    err(&format!(
        "{}: {}",
        paint.style(YELLOW, "warning"),
        sanitized(&message.to_string())
    ));
}

/// `note: MESSAGE` on stderr.
pub fn note(message: &dyn std::fmt::Display) {
    let paint = crate::color().stderr();
    err(&format!(
        "{}: {}",
        paint.style(GREEN, "note"),
        sanitized(&message.to_string())
    ));
}

/// The end of a command that wrote to stdout: a reader that closed the pipe early
/// (`| head -1`) is no failure; any other write error is.
pub fn finish(written: std::io::Result<()>) -> ExitCode {
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => fail(
            Outcome::InfrastructureError,
            &format!("cannot write the output: {error}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_never_reach_the_terminal() {
        assert_eq!(sanitized("a\x1b[2Jb\n\tc"), "a\\u{1b}[2Jb\n\tc");
        assert_eq!(Paint(false).style(RED, "x"), "x");
        assert_eq!(Paint(true).style(RED, "x"), "\x1b[1;31mx\x1b[0m");
    }
}
