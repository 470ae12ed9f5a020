//! Diffs two rustdoc JSON files and prints the changes, the summary and the time taken.
//!
//! `cargo run -p docbuild-api --example diff -- OLD.json NEW.json [--json] [--items]`
//! (`--items`: also list the new version's public API).

use std::path::Path;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let files: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [old, new] = files[..] else {
        eprintln!("usage: diff OLD.json NEW.json [--json] [--items]");
        std::process::exit(2);
    };
    let start = Instant::now();
    let load = |p: &str| {
        docbuild_api::from_file(Path::new(p)).unwrap_or_else(|e| {
            eprintln!("{p}: {e}");
            std::process::exit(1);
        })
    };
    let (old, new) = (load(old), load(new));
    let loaded = start.elapsed();
    let d = docbuild_api::diff(&old, &new);
    let total = start.elapsed();
    if args.iter().any(|a| a == "--items") {
        for (path, item) in &new.items {
            println!("{path}  {}", item.signature);
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&d).expect("serialisable")
        );
    } else {
        for c in &d.changes {
            println!("{c}");
        }
    }
    let version = |v: &Option<String>| {
        v.as_deref()
            .and_then(|v| semver::Version::parse(v).ok())
            .unwrap_or(semver::Version::new(0, 0, 0))
    };
    println!(
        "{}",
        d.summary(&version(&old.crate_version), &version(&new.crate_version))
    );
    eprintln!(
        "{} items → {} items; parsed and modelled in {:.3}s, diffed in {:.3}s",
        old.items.len(),
        new.items.len(),
        loaded.as_secs_f64(),
        (total - loaded).as_secs_f64()
    );
}
