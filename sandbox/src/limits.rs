//! Resource limits of one sandboxed run, and parsing of the sizes users type.

use std::time::Duration;

/// What one container may use. Defaults follow docs.rs: 6 GiB of memory (its builds
/// pages show 6.44 GB) and 15 minutes of wall time per build.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxLimits {
    /// Memory limit in bytes; swap is set equal to it, so there is no swap.
    pub memory_bytes: u64,
    /// Maximum number of processes and threads in the container.
    pub pids: u32,
    /// CPUs the container may use (fractions allowed).
    pub cpus: f64,
    /// Wall time after which the container is killed.
    pub timeout: Duration,
    /// Size of the writable `/tmp` (a tmpfs, counted against the memory limit).
    pub tmp_bytes: u64,
    /// Size cap of the stored log; output past it is dropped and a line says so.
    pub log_bytes: u64,
    /// What the build may write to its writable directory; enforced by the caller,
    /// which gives the sandbox a size-limited filesystem there.
    pub disk_bytes: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 6 << 30,
            pids: 512,
            cpus: std::thread::available_parallelism().map_or(2, |n| n.get()) as f64,
            timeout: Duration::from_secs(15 * 60),
            tmp_bytes: 256 << 20,
            log_bytes: 10 << 20,
            disk_bytes: 10 << 30,
        }
    }
}

/// A size that could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid size `{0}`: expected a number with an optional unit, such as 512M or 3G")]
pub struct InvalidSize(pub String);

/// Parses a byte size the way `docker run --memory` does: a number with an optional
/// binary unit `b`, `k`, `m`, `g`, `t` (case-insensitive, an optional trailing `b`
/// or `ib` accepted, so `3G`, `3g`, `3GB` and `3GiB` all mean 3 GiB).
pub fn parse_size(text: &str) -> Result<u64, InvalidSize> {
    let invalid = || InvalidSize(text.to_string());
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = number.parse().map_err(|_| invalid())?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b').filter(|u| !u.is_empty()))
        .unwrap_or(&unit);
    let shift = match unit {
        "" | "b" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(invalid()),
    };
    let bytes = number * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("3g"), Ok(3 << 30));
        assert_eq!(parse_size("3GiB"), Ok(3 << 30));
        assert_eq!(parse_size("3GB"), Ok(3 << 30));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("100b"), Ok(100));
    }

    #[test]
    fn bad_sizes_are_refused() {
        for bad in ["", "M", "12X", "-1G", "0", "1e99t", "abc"] {
            assert!(parse_size(bad).is_err(), "{bad} was accepted");
        }
    }
}
