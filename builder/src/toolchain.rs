//! The Rust toolchain a build uses, found on the host and mounted into the sandbox.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

/// `rustup` and `rustc` answer in well under a second; a hung one is not waited for.
const TOOLCHAIN_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// An installed toolchain.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Toolchain {
    /// The name it was asked for by (`nightly`, `1.95.0`), or `default`.
    pub name: String,
    /// Its root: `bin/`, `lib/rustlib/<target>/` live below.
    pub sysroot: PathBuf,
    /// `rustc -V`, recorded with every build.
    pub version: String,
    /// The host target triple.
    pub host: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ToolchainError {
    #[error("toolchain `{0}` is not installed (see `rustup toolchain list`)")]
    NotInstalled(String),
    #[error("cannot run rustc: {0}")]
    Rustc(String),
}

impl Toolchain {
    /// `requested`, else `nightly` when installed, else the default toolchain.
    /// Without `nightly`, builds run with `RUSTC_BOOTSTRAP=1` so that docs.rs's
    /// nightly-only flags work (see [`Toolchain::needs_bootstrap`]).
    ///
    /// Two queries of the toolchain's rustc, run at once: its sysroot, and `-vV`
    /// (whose first line is `rustc -V`, whose `host:` line names the host).
    pub async fn resolve(requested: Option<&str>) -> Result<Self, ToolchainError> {
        let (name, sysroot, verbose) = match requested {
            Some(name) => {
                let (sysroot, verbose) = query_rustup(name)
                    .await
                    .ok_or_else(|| ToolchainError::NotInstalled(name.to_string()))?;
                (Some(name.to_string()), sysroot, verbose?)
            }
            // `nightly` when rustup runs it (it is installed), else the default.
            None => match query_rustup("nightly").await {
                Some((sysroot, verbose)) => (Some("nightly".to_string()), sysroot, verbose?),
                None => {
                    let rustc = Path::new("rustc");
                    let (sysroot, verbose) = tokio::join!(
                        rustc_output(rustc, &["--print", "sysroot"]),
                        rustc_output(rustc, &["-vV"])
                    );
                    (None, sysroot?, verbose?)
                }
            },
        };
        let sysroot = PathBuf::from(sysroot);
        let version = verbose
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        if !version.starts_with("rustc ") {
            return Err(ToolchainError::Rustc(format!(
                "`rustc -vV` names no version: {version}"
            )));
        }
        let host = verbose
            .lines()
            .find_map(|line| line.strip_prefix("host: "))
            .ok_or_else(|| ToolchainError::Rustc("`rustc -vV` names no host".into()))?
            .to_string();
        Ok(Self {
            name: name.unwrap_or_else(|| "default".into()),
            sysroot,
            version,
            host,
        })
    }

    /// [`Toolchain::resolve`], remembered in `file` between runs: a resolution costs
    /// four process start-ups (rustup and rustc, twice), a look-up a few `stat`s. What
    /// is remembered holds while the environment that chose it is the same and the
    /// files it came from are unchanged: the toolchain's `rustc` and `lib/`, and
    /// rustup's settings and list of toolchains (a `nightly` installed or removed,
    /// another default). A file that cannot be read or written only costs the
    /// resolution.
    pub async fn resolve_remembered(
        requested: Option<&str>,
        file: &Path,
    ) -> Result<Self, ToolchainError> {
        let remembered = {
            let (requested, file) = (requested.map(str::to_string), file.to_path_buf());
            tokio::task::spawn_blocking(move || Remembered::read(&file, requested.as_deref()))
                .await
                .ok()
                .flatten()
        };
        if let Some(toolchain) = remembered {
            return Ok(toolchain);
        }
        let toolchain = Self::resolve(requested).await?;
        let record = Remembered::new(requested, &toolchain);
        let file = file.to_path_buf();
        let _ = tokio::task::spawn_blocking(move || record.write(&file)).await;
        Ok(toolchain)
    }

    /// The name `rustup` knows it by: the name it was asked for, else (the default
    /// toolchain) its directory under rustup's `toolchains/`; `None` when rustup
    /// does not manage it.
    pub fn rustup_name(&self) -> Option<String> {
        if self.name != "default" {
            return Some(self.name.clone());
        }
        let parent = self.sysroot.parent()?;
        (parent.file_name()? == "toolchains")
            .then(|| self.sysroot.file_name())
            .flatten()
            .map(|name| name.to_string_lossy().into_owned())
    }

    /// How messages name it: its rustup name, else its version.
    pub fn display_name(&self) -> String {
        self.rustup_name().unwrap_or_else(|| self.version.clone())
    }

    /// The targets this toolchain's rustc knows (`rustc --print target-list`),
    /// whether or not their standard library is installed.
    pub async fn target_list(&self) -> Result<Vec<String>, ToolchainError> {
        let list = rustc_output(&self.rustc(), &["--print", "target-list"]).await?;
        Ok(list.lines().map(str::trim).map(str::to_string).collect())
    }

    pub fn cargo(&self) -> PathBuf {
        self.sysroot.join("bin/cargo")
    }

    pub fn rustc(&self) -> PathBuf {
        self.sysroot.join("bin/rustc")
    }

    pub fn rustdoc(&self) -> PathBuf {
        self.sysroot.join("bin/rustdoc")
    }

    /// A stable or beta toolchain needs `RUSTC_BOOTSTRAP=1` for docs.rs's `-Z` flags
    /// and for `#![feature(doc_cfg)]` under `--cfg docsrs`.
    pub fn needs_bootstrap(&self) -> bool {
        !(self.version.contains("-nightly") || self.version.contains("-dev"))
    }

    /// Whether the standard library for `target` is installed, without which rustdoc
    /// cannot document for it.
    pub fn has_target(&self, target: &str) -> bool {
        self.sysroot
            .join("lib/rustlib")
            .join(target)
            .join("lib")
            .is_dir()
    }
}

/// A file's modification time (seconds, nanoseconds), inode and size.
type FileStamp = (i64, i64, u64, u64);

/// A resolution and what it depended on.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Remembered {
    requested: Option<String>,
    /// The variables rustup and the search for `rustc` read.
    environment: Vec<(String, Option<String>)>,
    stamps: Vec<(PathBuf, Option<FileStamp>)>,
    toolchain: Toolchain,
}

impl Remembered {
    const ENVIRONMENT: [&str; 5] = [
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
        "CARGO_HOME",
        "HOME",
        "PATH",
    ];

    fn new(requested: Option<&str>, toolchain: &Toolchain) -> Self {
        Self {
            requested: requested.map(str::to_string),
            environment: Self::environment(),
            stamps: Self::stamps(&toolchain.sysroot),
            toolchain: toolchain.clone(),
        }
    }

    fn environment() -> Vec<(String, Option<String>)> {
        Self::ENVIRONMENT
            .iter()
            .map(|name| (name.to_string(), std::env::var(name).ok()))
            .collect()
    }

    fn stamps(sysroot: &Path) -> Vec<(PathBuf, Option<FileStamp>)> {
        use std::os::unix::fs::MetadataExt;
        let rustup_home = std::env::var_os("RUSTUP_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".rustup")));
        let mut files = vec![sysroot.join("bin/rustc"), sysroot.join("lib")];
        if let Some(home) = rustup_home {
            files.push(home.join("settings.toml"));
            files.push(home.join("toolchains"));
        }
        files
            .into_iter()
            .map(|file| {
                let stamp = std::fs::metadata(&file)
                    .ok()
                    .map(|m| (m.mtime(), m.mtime_nsec(), m.ino(), m.size()));
                (file, stamp)
            })
            .collect()
    }

    /// The toolchain remembered for `requested`, if it still holds.
    fn read(file: &Path, requested: Option<&str>) -> Option<Toolchain> {
        let text = std::fs::read(file).ok()?;
        let remembered: Self = serde_json::from_slice(&text).ok()?;
        let holds = remembered.requested.as_deref() == requested
            && remembered.environment == Self::environment()
            && remembered.stamps == Self::stamps(&remembered.toolchain.sysroot);
        holds.then_some(remembered.toolchain)
    }

    /// Written whole under another name, then renamed: a reader never sees half.
    fn write(&self, file: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        let partial = file.with_extension(format!("{}.partial", std::process::id()));
        std::fs::write(&partial, json)?;
        std::fs::rename(&partial, file)
    }
}

/// The sysroot of the toolchain rustup knows as `name` (`None` when rustup cannot
/// run it: not installed, or no rustup), and its rustc's `-vV`.
async fn query_rustup(name: &str) -> Option<(String, Result<String, ToolchainError>)> {
    let rustup = |args: &[&str]| {
        let mut command = Command::new("rustup");
        command
            .args(["run", name, "rustc"])
            .args(args)
            .env("RUSTUP_AUTO_INSTALL", "0");
        output(command)
    };
    let (sysroot, verbose) = tokio::join!(rustup(&["--print", "sysroot"]), rustup(&["-vV"]));
    let sysroot = sysroot.ok().filter(|output| output.status.success())?;
    let verbose = match verbose {
        Ok(output) if output.status.success() => Ok(stdout_line(&output.stdout)),
        Ok(output) => Err(ToolchainError::Rustc(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        )),
        Err(error) => Err(ToolchainError::Rustc(format!("rustup: {error}"))),
    };
    Some((stdout_line(&sysroot.stdout), verbose))
}

/// Runs a toolchain query outside any project (so that no `rust-toolchain` file
/// chooses for us), with a time limit.
async fn output(mut command: Command) -> std::io::Result<std::process::Output> {
    command
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    tokio::time::timeout(TOOLCHAIN_COMMAND_TIMEOUT, command.output())
        .await
        .map_err(|_| std::io::Error::other("no answer within a minute"))?
}

async fn rustc_output(rustc: &Path, args: &[&str]) -> Result<String, ToolchainError> {
    let mut command = Command::new(rustc);
    command.args(args);
    let output = output(command)
        .await
        .map_err(|e| ToolchainError::Rustc(format!("{}: {e}", rustc.display())))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(ToolchainError::Rustc(stderr.trim().to_string()));
    }
    Ok(stdout_line(&output.stdout))
}

fn stdout_line(stdout: &[u8]) -> String {
    String::from_utf8_lossy(stdout).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_toolchain_holds_until_its_files_change() {
        let dir = tempfile::tempdir().unwrap();
        let sysroot = dir.path().join("toolchain");
        std::fs::create_dir_all(sysroot.join("bin")).unwrap();
        std::fs::create_dir_all(sysroot.join("lib")).unwrap();
        std::fs::write(sysroot.join("bin/rustc"), b"rustc 1").unwrap();
        let toolchain = Toolchain {
            name: "nightly".into(),
            sysroot: sysroot.clone(),
            version: "rustc 1.99.0-nightly".into(),
            host: "x86_64-unknown-linux-gnu".into(),
        };
        let file = dir.path().join("toolchain.json");
        Remembered::new(Some("nightly"), &toolchain)
            .write(&file)
            .unwrap();

        assert_eq!(Remembered::read(&file, Some("nightly")), Some(toolchain));
        // Asked for another toolchain, or for the default: resolved again.
        assert_eq!(Remembered::read(&file, Some("1.95.0")), None);
        assert_eq!(Remembered::read(&file, None), None);
        // The toolchain was updated: its rustc is another file.
        std::fs::remove_file(sysroot.join("bin/rustc")).unwrap();
        std::fs::write(sysroot.join("bin/rustc"), b"rustc 2").unwrap();
        assert_eq!(Remembered::read(&file, Some("nightly")), None);
        // What cannot be read is not remembered.
        std::fs::write(&file, b"{").unwrap();
        assert_eq!(Remembered::read(&file, Some("nightly")), None);
    }
}
