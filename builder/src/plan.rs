//! What to build and with which arguments: docs.rs's target selection and its exact
//! `cargo rustdoc` command line.

use crate::metadata::DocsRsMetadata;

/// docs.rs builds at most this many targets besides the default one.
pub const MAX_OTHER_TARGETS: usize = 10;

/// The targets of one build and how to invoke cargo for each.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildPlan {
    pub metadata: DocsRsMetadata,
    pub proc_macro: bool,
    /// Built first; its failure fails the build.
    pub default_target: String,
    /// Built only after the default target succeeded; their failures are reported
    /// but do not fail the build.
    pub other_targets: Vec<String>,
}

/// What rustdoc writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocFormat {
    /// The docs' pages, in `<doc dir>/<lib name>/`.
    Html,
    /// rustdoc's JSON, `<doc dir>/<lib name>.json`.
    Json,
}

/// Settings of the invocation that do not come from the crate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvocationOptions {
    /// Passed as `-jN`, as docs.rs does when a CPU limit is set.
    pub jobs: Option<u32>,
    /// Ask cargo for JSON messages on stdout, from which error details are read.
    pub json_messages: bool,
    /// rustdoc's warnings are errors (`-D warnings` in place of `--cap-lints warn`).
    pub deny_warnings: bool,
    /// `doc.extern-map.registries.NAME` entries for private registries, so that their
    /// crates link to this server's docs (crates.io always links to docs.rs).
    pub extern_map: Vec<(String, String)>,
    /// `--extern-html-root-url` for dependencies that are not from a registry yet
    /// (unpublished workspace members): lib name → URL of their docs, in which
    /// `{target}` stands for the target being built.
    pub extern_html_roots: Vec<(String, String)>,
}

impl BuildPlan {
    /// Chooses targets as docs.rs does: a proc-macro builds for the host only; else
    /// the default target is `default-target`, else the first of `targets`, else the
    /// host; the others are `targets` and `additional-targets` without the default,
    /// deduplicated, at most [`MAX_OTHER_TARGETS`]. With `targets` unset only the
    /// default target is built (docs.rs since 2026-05).
    pub fn new(metadata: DocsRsMetadata, proc_macro: bool, host: &str) -> Self {
        if proc_macro {
            return Self {
                metadata,
                proc_macro,
                default_target: host.to_string(),
                other_targets: Vec::new(),
            };
        }
        let listed = metadata.targets.as_deref().unwrap_or_default();
        let default_target = metadata
            .default_target
            .clone()
            .or_else(|| listed.first().cloned())
            .unwrap_or_else(|| host.to_string());
        let mut other_targets: Vec<String> = Vec::new();
        for target in listed.iter().chain(&metadata.additional_targets) {
            if *target != default_target && !other_targets.contains(target) {
                other_targets.push(target.clone());
            }
        }
        other_targets.truncate(MAX_OTHER_TARGETS);
        Self {
            metadata,
            proc_macro,
            default_target,
            other_targets,
        }
    }

    /// Every target, the default first.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.default_target.as_str())
            .chain(self.other_targets.iter().map(String::as_str))
    }

    /// Environment docs.rs sets for the build.
    pub fn environment(&self) -> Vec<(String, String)> {
        vec![("DOCS_RS".to_string(), "1".to_string())]
    }

    /// The features docs.rs turns on, as cargo's arguments (`--features`,
    /// `--all-features`, `--no-default-features`).
    pub fn feature_args(&self) -> Vec<String> {
        let metadata = &self.metadata;
        let mut args = Vec::new();
        if let Some(features) = &metadata.features {
            args.push("--features".into());
            args.push(features.join(" "));
        }
        if metadata.all_features {
            args.push("--all-features".into());
        }
        if metadata.no_default_features {
            args.push("--no-default-features".into());
        }
        args
    }

    /// The arguments after `cargo`, in docs.rs's order.
    pub fn cargo_args(&self, target: &str, options: &InvocationOptions) -> Vec<String> {
        self.cargo_args_for(target, options, DocFormat::Html)
    }

    /// The arguments after `cargo` for docs in `format`: rustdoc's JSON is the HTML
    /// run's command with `--output-format json` and without scraped examples, as
    /// docs.rs runs it, so that it reuses the dependencies the HTML run compiled.
    pub fn cargo_args_for(
        &self,
        target: &str,
        options: &InvocationOptions,
        format: DocFormat,
    ) -> Vec<String> {
        let metadata = &self.metadata;
        let mut args: Vec<String> = ["rustdoc", "--lib", "-Zrustdoc-map"]
            .map(String::from)
            .into();
        args.extend(self.feature_args());
        if !metadata.rustc_args.is_empty() {
            let flags = toml_array(&metadata.rustc_args);
            args.push("--config".into());
            args.push(format!("build.rustflags={flags}"));
            // So that rustc-args reach build scripts too (docs.rs#1580). Not for
            // proc-macros, where it would suppress the rustdoc flags.
            if !self.proc_macro {
                args.extend(
                    ["-Zhost-config", "-Ztarget-applies-to-host", "--config"].map(String::from),
                );
                args.push(format!("host.rustflags={flags}"));
            }
        }
        // Only `cargo rustdoc`'s final rustdoc sees these flags, so dependencies never
        // see `--cfg docsrs`.
        let mut rustdoc_flags: Vec<String> = vec!["--cfg".into(), "docsrs".into()];
        rustdoc_flags.extend(metadata.rustdoc_args.iter().cloned());
        for (lib_name, url) in &options.extern_html_roots {
            rustdoc_flags.push("--extern-html-root-url".into());
            rustdoc_flags.push(format!("{lib_name}={}", url.replace("{target}", target)));
        }
        rustdoc_flags.extend(["-Z", "unstable-options"].map(String::from));
        if format == DocFormat::Json {
            rustdoc_flags.extend(["--output-format", "json"].map(String::from));
        }
        // docs.rs caps lints at `warn`, so that no lint fails a build. Denying
        // warnings is `RUSTDOCFLAGS="-D warnings"`, which no cap may soften.
        if options.deny_warnings {
            rustdoc_flags.extend(["-D", "warnings"].map(String::from));
        } else {
            rustdoc_flags.extend(["--cap-lints", "warn"].map(String::from));
        }
        rustdoc_flags.push("--extern-html-root-takes-precedence".into());
        args.push("--config".into());
        args.push(format!("build.rustdocflags={}", toml_array(&rustdoc_flags)));
        args.extend(["--offline", "-Zunstable-options"].map(String::from));
        args.push(format!(
            "--config=doc.extern-map.registries.crates-io={}",
            toml_string(&format!(
                "https://docs.rs/{{pkg_name}}/{{version}}/{target}"
            ))
        ));
        for (registry, url) in &options.extern_map {
            args.push(format!(
                "--config=doc.extern-map.registries.{registry}={}",
                toml_string(url)
            ));
        }
        if let Some(jobs) = options.jobs {
            args.push(format!("-j{jobs}"));
        }
        if !self.proc_macro {
            args.push("--target".into());
            args.push(target.to_string());
        }
        if options.json_messages {
            args.push("--message-format=json".into());
        }
        args.extend(without_scrape_examples(&metadata.cargo_args));
        if format == DocFormat::Html {
            args.push("-Zrustdoc-scrape-examples".into());
        }
        args
    }

    /// Where docs.rs keeps a published crate's docs for `target`; crates.io
    /// dependencies link there.
    pub fn docs_rs_root(name: &str, version: &str, target: &str) -> String {
        format!("https://docs.rs/{name}/{version}/{target}")
    }

    /// Where rustdoc writes a target's docs, relative to the target directory:
    /// proc-macros are built without `--target`, so their docs sit in `doc/`.
    pub fn doc_dir(&self, target: &str) -> String {
        if self.proc_macro {
            "doc".to_string()
        } else {
            format!("{target}/doc")
        }
    }
}

/// docs.rs adds `-Zrustdoc-scrape-examples` itself and drops the user's copy.
fn without_scrape_examples(args: &[String]) -> Vec<String> {
    let mut kept = Vec::with_capacity(args.len());
    let mut iter = args.iter().peekable();
    while let Some(arg) = iter.next() {
        if arg == "-Zrustdoc-scrape-examples" {
            continue;
        }
        if arg == "-Z"
            && iter
                .peek()
                .is_some_and(|next| *next == "rustdoc-scrape-examples")
        {
            iter.next();
            continue;
        }
        kept.push(arg.clone());
    }
    kept
}

/// A TOML basic string; JSON's escapes are valid TOML.
fn toml_string(value: &str) -> String {
    serde_json::Value::from(value).to_string()
}

/// A TOML array of strings, rendered as docs.rs renders it (`", "` separators).
fn toml_array(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| toml_string(v)).collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "x86_64-unknown-linux-gnu";

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    fn plan(metadata: DocsRsMetadata) -> BuildPlan {
        BuildPlan::new(metadata, false, HOST)
    }

    #[test]
    fn unset_targets_build_the_host_only() {
        let plan = plan(DocsRsMetadata::default());
        assert_eq!(plan.default_target, HOST);
        assert!(plan.other_targets.is_empty());
    }

    #[test]
    fn empty_targets_build_the_default_only() {
        let plan = plan(DocsRsMetadata {
            targets: Some(vec![]),
            ..Default::default()
        });
        assert_eq!(plan.default_target, HOST);
        assert!(plan.other_targets.is_empty());
    }

    #[test]
    fn first_listed_target_is_the_default() {
        let plan = plan(DocsRsMetadata {
            targets: Some(strings(&["i686-pc-windows-msvc", "i686-apple-darwin"])),
            ..Default::default()
        });
        assert_eq!(plan.default_target, "i686-pc-windows-msvc");
        assert_eq!(plan.other_targets, strings(&["i686-apple-darwin"]));
    }

    #[test]
    fn default_is_not_built_twice_and_targets_are_deduplicated() {
        let host_only = plan(DocsRsMetadata {
            targets: Some(strings(&[HOST])),
            ..Default::default()
        });
        assert!(host_only.other_targets.is_empty());
        let repeated = plan(DocsRsMetadata {
            targets: Some(strings(&["i686-pc-windows-msvc", "i686-pc-windows-msvc"])),
            ..Default::default()
        });
        assert_eq!(repeated.default_target, "i686-pc-windows-msvc");
        assert!(repeated.other_targets.is_empty());
    }

    #[test]
    fn default_target_beats_first_listed_and_host() {
        let listed = plan(DocsRsMetadata {
            default_target: Some("i686-apple-darwin".into()),
            targets: Some(strings(&["i686-pc-windows-msvc", "i686-pc-windows-msvc"])),
            ..Default::default()
        });
        assert_eq!(listed.default_target, "i686-apple-darwin");
        assert_eq!(listed.other_targets, strings(&["i686-pc-windows-msvc"]));
        for targets in [Some(vec![]), None] {
            let plan = plan(DocsRsMetadata {
                default_target: Some("i686-apple-darwin".into()),
                targets,
                ..Default::default()
            });
            assert_eq!(plan.default_target, "i686-apple-darwin");
            assert!(plan.other_targets.is_empty());
        }
    }

    #[test]
    fn additional_targets_are_always_added() {
        let with_targets = plan(DocsRsMetadata {
            targets: Some(strings(&["i686-pc-windows-msvc", "aarch64-apple-darwin"])),
            additional_targets: strings(&["i686-apple-darwin", "aarch64-apple-darwin"]),
            ..Default::default()
        });
        assert_eq!(with_targets.default_target, "i686-pc-windows-msvc");
        assert_eq!(
            with_targets.other_targets,
            strings(&["aarch64-apple-darwin", "i686-apple-darwin"])
        );
        let without_targets = plan(DocsRsMetadata {
            additional_targets: strings(&["i686-apple-darwin", HOST]),
            ..Default::default()
        });
        assert_eq!(without_targets.default_target, HOST);
        assert_eq!(
            without_targets.other_targets,
            strings(&["i686-apple-darwin"])
        );
    }

    #[test]
    fn other_targets_are_capped() {
        let many: Vec<String> = (0..15).map(|i| format!("target-{i}")).collect();
        let plan = plan(DocsRsMetadata {
            targets: Some(many),
            ..Default::default()
        });
        assert_eq!(plan.default_target, "target-0");
        assert_eq!(plan.other_targets.len(), MAX_OTHER_TARGETS);
        assert_eq!(plan.other_targets[0], "target-1");
    }

    #[test]
    fn proc_macros_build_for_the_host_only() {
        let metadata = DocsRsMetadata {
            default_target: Some("i686-apple-darwin".into()),
            targets: Some(strings(&["aarch64-apple-darwin"])),
            additional_targets: strings(&["i686-pc-windows-msvc"]),
            ..Default::default()
        };
        let plan = BuildPlan::new(metadata, true, HOST);
        assert_eq!(plan.default_target, HOST);
        assert!(plan.other_targets.is_empty());
        let args = plan.cargo_args(HOST, &InvocationOptions::default());
        assert!(!args.contains(&"--target".to_string()), "{args:?}");
        assert_eq!(plan.doc_dir(HOST), "doc");
    }

    /// The arguments that docs.rs's metadata crate produces, followed by the flags
    /// its builder adds.
    fn expected(extra: &[&str], rustdoc_flags: &str) -> Vec<String> {
        let mut args = strings(&["rustdoc", "--lib", "-Zrustdoc-map"]);
        args.extend(strings(extra));
        args.push("--config".into());
        args.push(format!(
            "build.rustdocflags=[\"--cfg\", \"docsrs\", {rustdoc_flags}\"-Z\", \"unstable-options\", \
             \"--cap-lints\", \"warn\", \"--extern-html-root-takes-precedence\"]"
        ));
        args.extend(strings(&[
            "--offline",
            "-Zunstable-options",
            "--config=doc.extern-map.registries.crates-io=\"https://docs.rs/{pkg_name}/{version}/x86_64-unknown-linux-gnu\"",
            "--target",
            HOST,
        ]));
        args
    }

    fn args_for(metadata: DocsRsMetadata) -> Vec<String> {
        let mut args = plan(metadata).cargo_args(HOST, &InvocationOptions::default());
        assert_eq!(args.pop().as_deref(), Some("-Zrustdoc-scrape-examples"));
        args
    }

    #[test]
    fn default_arguments() {
        assert_eq!(args_for(DocsRsMetadata::default()), expected(&[], ""));
        assert_eq!(
            plan(DocsRsMetadata::default()).environment(),
            vec![("DOCS_RS".to_string(), "1".to_string())]
        );
    }

    #[test]
    fn feature_flags() {
        let all = DocsRsMetadata {
            all_features: true,
            ..Default::default()
        };
        assert_eq!(args_for(all), expected(&["--all-features"], ""));
        let no_default = DocsRsMetadata {
            no_default_features: true,
            ..Default::default()
        };
        assert_eq!(
            args_for(no_default),
            expected(&["--no-default-features"], "")
        );
        let both = DocsRsMetadata {
            all_features: true,
            no_default_features: true,
            ..Default::default()
        };
        assert_eq!(
            args_for(both),
            expected(&["--all-features", "--no-default-features"], "")
        );
    }

    #[test]
    fn features_are_one_argument() {
        for (features, joined) in [
            (vec![], ""),
            (strings(&["some_feature"]), "some_feature"),
            (strings(&["feature1", "feature2"]), "feature1 feature2"),
        ] {
            let metadata = DocsRsMetadata {
                features: Some(features),
                ..Default::default()
            };
            assert_eq!(args_for(metadata), expected(&["--features", joined], ""));
        }
    }

    #[test]
    fn rustdoc_args_follow_cfg_docsrs() {
        let metadata = DocsRsMetadata {
            rustdoc_args: strings(&["--html-in-header", "header.html"]),
            ..Default::default()
        };
        assert_eq!(
            args_for(metadata),
            expected(&[], "\"--html-in-header\", \"header.html\", ")
        );
    }

    #[test]
    fn rustc_args_reach_the_whole_graph_and_build_scripts() {
        let metadata = DocsRsMetadata {
            rustc_args: strings(&["--cfg", "x"]),
            ..Default::default()
        };
        assert_eq!(
            args_for(metadata),
            expected(
                &[
                    "--config",
                    "build.rustflags=[\"--cfg\", \"x\"]",
                    "-Zhost-config",
                    "-Ztarget-applies-to-host",
                    "--config",
                    "host.rustflags=[\"--cfg\", \"x\"]",
                ],
                ""
            )
        );
    }

    #[test]
    fn cargo_args_come_last_without_scrape_examples() {
        let metadata = DocsRsMetadata {
            cargo_args: strings(&[
                "-Zbuild-std",
                "-Z",
                "rustdoc-scrape-examples",
                "-Zrustdoc-scrape-examples",
            ]),
            ..Default::default()
        };
        let mut want = expected(&[], "");
        want.push("-Zbuild-std".into());
        assert_eq!(args_for(metadata), want);
    }

    #[test]
    fn json_is_the_html_command_with_json_output_and_no_scraped_examples() {
        let plan = plan(DocsRsMetadata::default());
        let options = InvocationOptions::default();
        let html = plan.cargo_args(HOST, &options);
        let json = plan.cargo_args_for(HOST, &options, DocFormat::Json);
        let flags = |args: &[String]| {
            args.iter()
                .find(|a| a.starts_with("build.rustdocflags="))
                .cloned()
                .unwrap()
        };
        assert!(flags(&json).contains(r#""-Z", "unstable-options", "--output-format", "json""#));
        assert!(!flags(&html).contains("--output-format"));
        assert!(!json.iter().any(|a| a.contains("scrape")));
        // Everything else is the same, so the HTML run's dependencies are reused.
        let rest = |args: &[String]| -> Vec<String> {
            args.iter()
                .filter(|a| !a.starts_with("build.rustdocflags=") && !a.contains("scrape"))
                .cloned()
                .collect()
        };
        assert_eq!(rest(&html), rest(&json));
    }

    #[test]
    fn special_characters_are_escaped() {
        let metadata = DocsRsMetadata {
            rustdoc_args: strings(&["a \"quoted\" \\ value"]),
            ..Default::default()
        };
        let args = args_for(metadata);
        let flags = args
            .iter()
            .find(|a| a.starts_with("build.rustdocflags="))
            .unwrap();
        assert!(flags.contains(r#""a \"quoted\" \\ value""#), "{flags}");
    }

    #[test]
    fn invocation_options_are_passed() {
        let options = InvocationOptions {
            jobs: Some(2),
            json_messages: true,
            extern_map: vec![(
                "private".into(),
                "https://docs.example/{pkg_name}/{version}".into(),
            )],
            extern_html_roots: vec![("ws_a".into(), "https://docs.rs/ws-a/0.1.0/{target}".into())],
            deny_warnings: false,
        };
        let args = plan(DocsRsMetadata::default()).cargo_args(HOST, &options);
        assert!(args.contains(&"-j2".to_string()));
        assert!(args.contains(&"--message-format=json".to_string()));
        assert!(args.contains(
            &"--config=doc.extern-map.registries.private=\"https://docs.example/{pkg_name}/{version}\"".to_string()
        ));
        let flags = args
            .iter()
            .find(|a| a.starts_with("build.rustdocflags="))
            .unwrap();
        assert!(
            flags.contains(&format!(
                r#""--extern-html-root-url", "ws_a=https://docs.rs/ws-a/0.1.0/{HOST}""#
            )),
            "{flags}"
        );
    }

    #[test]
    fn denied_warnings_are_not_capped() {
        let rustdoc_flags = |deny_warnings| {
            let options = InvocationOptions {
                deny_warnings,
                ..Default::default()
            };
            plan(DocsRsMetadata::default())
                .cargo_args(HOST, &options)
                .into_iter()
                .find(|a| a.starts_with("build.rustdocflags="))
                .unwrap()
        };
        let capped = rustdoc_flags(false);
        assert!(capped.contains(r#""--cap-lints", "warn""#), "{capped}");
        assert!(!capped.contains("warnings"), "{capped}");
        let denied = rustdoc_flags(true);
        assert!(denied.contains(r#""-D", "warnings""#), "{denied}");
        assert!(!denied.contains("--cap-lints"), "{denied}");
    }
}
