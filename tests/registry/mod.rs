// Shared by several test crates, each of which uses only part of it.
#![allow(dead_code)]

//! A sparse Cargo registry served on 127.0.0.1 by the tests themselves, with
//! `.crate` archives they make, hostile ones included.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use docbuild_builder::watch::index_path;
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

/// An entry of a crate archive.
pub enum Entry<'a> {
    File(&'a str, &'a [u8]),
    /// A file entry with a path written as is, bypassing the tar builder's checks.
    RawPath(&'a str),
    Symlink(&'a str, &'a str),
    /// A file of this many zero bytes.
    Zeros(&'a str, u64),
}

pub struct TestRegistry {
    pub port: u16,
    token: Option<String>,
    /// Where `cargo package` keeps what it fetches from this registry.
    cargo_home: tempfile::TempDir,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    /// `PATH STATUS` of each request, and whether it carried the token.
    pub requests: Arc<Mutex<Vec<(String, bool)>>>,
}

impl TestRegistry {
    /// Serves until the test process ends; with a token, every request needs it.
    pub fn start(token: Option<&str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let requests: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
        let config = serde_json::json!({
            "dl": format!("http://127.0.0.1:{port}/dl/{{crate}}/{{version}}"),
            "auth-required": token.is_some(),
        });
        files
            .lock()
            .unwrap()
            .insert("/index/config.json".into(), config.to_string().into_bytes());
        let (served, seen, token_for_server) =
            (files.clone(), requests.clone(), token.map(str::to_string));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (served, seen, token) =
                    (served.clone(), seen.clone(), token_for_server.clone());
                std::thread::spawn(move || serve(stream, &served, &seen, token.as_deref()));
            }
        });
        Self {
            port,
            token: token.map(str::to_string),
            cargo_home: tempfile::tempdir().unwrap(),
            files,
            requests,
        }
    }

    pub fn index_url(&self) -> String {
        format!("sparse+http://127.0.0.1:{}/index/", self.port)
    }

    /// Publishes a well-formed crate, packaged by `cargo package` from a fixture
    /// written out here: `manifest_tail` follows `[package]`'s name and version (a
    /// dependency on this registry says `registry = "testreg"`), `deps` lists this
    /// registry's crates it depends on, for the index.
    pub fn publish(
        &self,
        name: &str,
        version: &str,
        manifest_tail: &str,
        files: &[(&str, &str)],
        deps: &[&str],
    ) {
        let dir = tempfile::tempdir().unwrap();
        // A tail that describes the package itself replaces the default description.
        let about = if manifest_tail.starts_with("description") {
            ""
        } else {
            "description = \"test registry fixture\"\nlicense = \"MIT\"\n"
        };
        let manifest = format!(
            "[package]\nname = \"{name}\"\nversion = \"{version}\"\nedition = \"2021\"\n\
             {about}{manifest_tail}\n[workspace]\n"
        );
        std::fs::write(dir.path().join("Cargo.toml"), manifest).unwrap();
        for (path, content) in files {
            let file = dir.path().join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, content).unwrap();
        }
        let mut cargo = std::process::Command::new("cargo");
        cargo
            .args(["package", "--no-verify", "--allow-dirty", "--quiet"])
            .current_dir(dir.path())
            .env("CARGO_HOME", self.cargo_home.path())
            .env("CARGO_REGISTRIES_TESTREG_INDEX", self.index_url());
        if let Some(token) = &self.token {
            cargo.env("CARGO_REGISTRIES_TESTREG_TOKEN", token).env(
                "CARGO_REGISTRIES_TESTREG_CREDENTIAL_PROVIDER",
                "cargo:token",
            );
        }
        let output = cargo.output().unwrap();
        assert!(
            output.status.success(),
            "cargo package: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let archive = std::fs::read(
            dir.path()
                .join("target/package")
                .join(format!("{name}-{version}.crate")),
        )
        .unwrap();
        let sum = sha256(&archive);
        self.publish_raw(name, version, archive, &sum, deps);
    }

    /// Publishes any archive with any checksum.
    pub fn publish_raw(
        &self,
        name: &str,
        version: &str,
        archive: Vec<u8>,
        cksum: &str,
        deps: &[&str],
    ) {
        let deps: Vec<_> = deps
            .iter()
            .map(|dep| {
                serde_json::json!({
                    "name": dep, "req": "^0.1", "features": [], "optional": false,
                    "default_features": true, "target": null, "kind": "normal"
                })
            })
            .collect();
        let line = serde_json::json!({
            "name": name, "vers": version, "deps": deps, "cksum": cksum,
            "features": {}, "yanked": false, "v": 2, "features2": {}
        });
        let mut files = self.files.lock().unwrap();
        let index_path = format!("/index/{}", index_path(name));
        let entry = files.entry(index_path).or_default();
        entry.extend_from_slice(line.to_string().as_bytes());
        entry.push(b'\n');
        files.insert(format!("/dl/{name}/{version}"), archive);
    }

    /// Makes the index entry of `name@version` say what its manifest does about
    /// features: `features` (the index's `features2`, which may name `dep:`
    /// dependencies) and which dependencies are optional.
    pub fn declare_features(
        &self,
        name: &str,
        version: &str,
        features: serde_json::Value,
        optional: &[&str],
    ) {
        let mut files = self.files.lock().unwrap();
        let entry = files
            .get_mut(&format!("/index/{}", index_path(name)))
            .unwrap();
        let lines: Vec<String> = String::from_utf8_lossy(entry)
            .lines()
            .map(|line| {
                let mut line: serde_json::Value = serde_json::from_str(line).unwrap();
                if line["vers"] == version {
                    line["features2"] = features.clone();
                    for dep in line["deps"].as_array_mut().unwrap() {
                        if optional.contains(&dep["name"].as_str().unwrap()) {
                            dep["optional"] = true.into();
                        }
                    }
                }
                line.to_string() + "\n"
            })
            .collect();
        *entry = lines.concat().into_bytes();
    }

    /// Takes every version of `crate_name` off the index (its archives stay), as
    /// after a registry lost it.
    pub fn unpublish(&self, crate_name: &str) {
        let mut files = self.files.lock().unwrap();
        files.remove(&format!("/index/{}", index_path(crate_name)));
    }

    /// Appends `line` as it is to the index file of `crate_name`, as a hostile or
    /// broken registry could.
    pub fn append_index_line(&self, crate_name: &str, line: &str) {
        let mut files = self.files.lock().unwrap();
        let entry = files
            .entry(format!("/index/{}", index_path(crate_name)))
            .or_default();
        entry.extend_from_slice(line.as_bytes());
        entry.push(b'\n');
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A gzipped tar of `entries`.
pub fn archive(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        match entry {
            Entry::File(path, content) => {
                header.set_size(content.len() as u64);
                tar.append_data(&mut header, path, *content).unwrap();
            }
            Entry::RawPath(path) => {
                let bytes = path.as_bytes();
                header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
                header.set_size(5);
                header.set_cksum();
                tar.append(&header, &b"owned"[..]).unwrap();
            }
            Entry::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                tar.append_link(&mut header, path, target).unwrap();
            }
            Entry::Zeros(path, size) => {
                header.set_size(*size);
                tar.append_data(&mut header, path, std::io::repeat(0).take(*size))
                    .unwrap();
            }
        }
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn serve(
    stream: TcpStream,
    files: &Mutex<HashMap<String, Vec<u8>>>,
    requests: &Mutex<Vec<(String, bool)>>,
    token: Option<&str>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        let mut authorized = false;
        let mut if_none_match = None;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((key, value)) = header.split_once(':') {
                if key.eq_ignore_ascii_case("authorization") && Some(value.trim()) == token {
                    authorized = true;
                }
                if key.eq_ignore_ascii_case("if-none-match") {
                    if_none_match = Some(value.trim().to_string());
                }
            }
        }
        let mut response = if token.is_some() && !authorized {
            (401, b"token required".to_vec())
        } else {
            match files.lock().unwrap().get(&path) {
                Some(body) => (200, body.clone()),
                None => (404, b"not found".to_vec()),
            }
        };
        let etag = format!("\"{}\"", sha256(&response.1));
        if response.0 == 200 && if_none_match.as_deref() == Some(etag.as_str()) {
            response = (304, Vec::new());
        }
        requests
            .lock()
            .unwrap()
            .push((format!("{path} {}", response.0), authorized));
        let status = match response.0 {
            200 => "200 OK",
            304 => "304 Not Modified",
            401 => "401 Unauthorized",
            _ => "404 Not Found",
        };
        let extra = match response.0 {
            401 => "www-authenticate: Cargo login_url=\"http://127.0.0.1/login\"\r\n".to_string(),
            200 | 304 => format!("etag: {etag}\r\n"),
            _ => String::new(),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\n{extra}\r\n",
            response.1.len()
        );
        if stream.write_all(head.as_bytes()).is_err() || stream.write_all(&response.1).is_err() {
            return;
        }
    }
}
