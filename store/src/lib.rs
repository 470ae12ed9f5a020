//! docbuild's state, behind one boundary: the database (SQLite in the data directory,
//! or PostgreSQL) holding the queue, the build records and the tokens, and the blob
//! storage (the data directory, or any S3-compatible service) holding the stored
//! builds, compressed and deduplicated.
//!
//! Validated domain types cross this boundary ([`CrateId`], [`Outcome`],
//! [`queue::JobStatus`], [`tokens::Scope`]), never loose strings. The queue, the
//! catalog and the tokens are views of one database handle ([`db::Db`]).

pub mod archive;
pub mod blobs;
pub mod catalog;
pub mod db;
pub mod identity;
pub mod legacy;
pub mod outcome;
pub mod queue;
pub mod schema;
pub mod stored;
#[doc(hidden)]
pub mod testing;
pub mod tokens;

use std::time::{SystemTime, UNIX_EPOCH};

pub use blobs::{Blobs, StorageLocation};
pub use catalog::Catalog;
pub use db::{DatabaseLocation, Db, DbError};
pub use identity::{CrateId, CrateName, CrateVersion, RegistryName};
pub use outcome::Outcome;
pub use queue::{Queue, QueueError};
pub use stored::StoredBuilds;
pub use tokens::Tokens;

/// Now, in Unix seconds: how every time is stored.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Storage(#[from] blobs::BlobError),
}

/// Where the store keeps things: `[database]` and `[storage]`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreLocation {
    pub database: DatabaseLocation,
    pub storage: StorageLocation,
}

/// The store: one database pool and one blob storage, and the views over them.
#[derive(Clone)]
pub struct Store {
    db: Db,
    location: StoreLocation,
    builds: StoredBuilds,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} and {}",
            self.db.name(),
            self.location.storage.describe()
        )
    }
}

impl Store {
    /// Connects to both and brings the schema up to date. Must be called on a Tokio
    /// runtime.
    pub async fn open(location: &StoreLocation) -> Result<Self, StoreError> {
        let blobs = Blobs::open(&location.storage)?;
        let db = Db::connect(&location.database)?;
        let applied = db
            .write(|conn| schema::migrate(conn))
            .await
            .map_err(|e| match e {
                DbError::TooNew(_, found, known) => {
                    DbError::TooNew(location.database.describe(), found, known)
                }
                other => other,
            })?;
        if !applied.is_empty() {
            tracing::info!(database = %location.database.describe(), ?applied, "database schema migrated");
        }
        Ok(Self {
            db,
            location: location.clone(),
            builds: StoredBuilds::new(blobs),
        })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// Stored builds' docs and logs, and local jobs' sources.
    pub fn builds(&self) -> &StoredBuilds {
        &self.builds
    }

    pub fn queue(&self) -> Queue {
        Queue::new(self.db.clone())
    }

    pub fn catalog(&self) -> Catalog {
        Catalog::new(self.db.clone())
    }

    pub fn tokens(&self) -> Tokens {
        Tokens::new(self.db.clone())
    }
}
