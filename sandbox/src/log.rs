//! The stored log of a run: lines appended to a file up to a size cap.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Appends lines to a log file and stops, with one line saying so, once the cap is
/// reached. A crate controls what its build prints, so the log must not be able to
/// fill the disk.
pub struct CappedLog {
    out: BufWriter<File>,
    written: u64,
    cap: u64,
    truncated: bool,
}

impl CappedLog {
    /// Opens `path` for appending; earlier content counts against the cap.
    pub fn append(path: &Path, cap: u64) -> io::Result<Self> {
        let file = File::options().create(true).append(true).open(path)?;
        let written = file.metadata()?.len();
        Ok(Self {
            out: BufWriter::new(file),
            written,
            cap,
            truncated: false,
        })
    }

    /// Writes one line (a newline is added).
    pub fn line(&mut self, line: &str) -> io::Result<()> {
        if self.truncated {
            return Ok(());
        }
        let len = line.len() as u64 + 1;
        if self.written + len > self.cap {
            self.truncated = true;
            return writeln!(
                self.out,
                "[docbuild] log truncated: output past {} bytes was dropped",
                self.cap
            );
        }
        self.written += len;
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")
    }

    /// Whether output was dropped.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_stops_at_cap_with_a_marker() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("build.log");
        let mut log = CappedLog::append(&path, 12).unwrap();
        log.line("hello").unwrap();
        log.line("world").unwrap();
        log.line("dropped").unwrap();
        log.line("dropped too").unwrap();
        assert!(log.truncated());
        log.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "hello\nworld\n[docbuild] log truncated: output past 12 bytes was dropped\n"
        );
    }
}
