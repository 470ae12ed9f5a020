//! docs.rs build semantics and the build pipeline, from a package to an outcome.
//!
//! The data's path: [`prepare`] (locate the package, package it, fetch dependencies
//! on the host) → [`plan`] (docs.rs metadata → targets and cargo arguments) →
//! [`execute`] (the sandboxed `cargo rustdoc`) → [`outcome`] (classify and report).
//! [`check`] runs that path for `docbuild check`.

pub mod about;
pub mod admin;
pub mod api_check;
pub mod build_cache;
pub mod check;
pub mod config;
pub mod copy;
pub mod disk;
pub mod environment;
pub mod error;
pub mod execute;
pub mod gc;
pub mod host_cargo;
pub mod http;
pub mod kept_mount;
pub use docbuild_store::identity;
pub mod metadata;
pub mod outcome;
pub mod plan;
pub mod prepare;
pub use docbuild_store::queue;
pub mod registry;
pub mod static_files;
pub mod toolchain;
pub mod unpack;
pub mod watch;
pub mod worker;
pub mod workspace;

pub use check::{CacheDirs, CheckOptions, Progress, check};
pub use error::BuildError;
pub use identity::{CrateId, CrateName, CrateVersion, RegistryName};
pub use metadata::{DocsRsMetadata, MetadataError};
pub use outcome::{CrateReport, ErrorDetail, Failure, Omitted, Outcome, TargetReport};
pub use plan::{BuildPlan, InvocationOptions};
pub use prepare::SourceMode;
pub use toolchain::Toolchain;
