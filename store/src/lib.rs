//! docbuild's state, behind one boundary: the database (SQLite in the data directory,
//! or PostgreSQL) holding the queue, the build records and the tokens, and the blob
//! storage (the data directory, or any S3-compatible service) holding the stored
//! builds, compressed and deduplicated.
//!
//! Validated domain types cross this boundary ([`CrateId`], [`Outcome`]), never loose
//! strings.

pub mod identity;
pub mod outcome;

pub use identity::{CrateId, CrateName, CrateVersion, RegistryName};
pub use outcome::Outcome;
