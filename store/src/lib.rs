//! docbuild's state, behind one boundary: the database (SQLite in the data directory,
//! or PostgreSQL) holding the queue, the build records and the tokens, and the blob
//! storage (the data directory, or any S3-compatible service) holding the stored
//! builds, compressed and deduplicated.
//!
//! Validated domain types cross this boundary ([`CrateId`], [`Outcome`],
//! [`queue::JobStatus`], [`tokens::Scope`]), never loose strings. The queue, the
//! catalog and the tokens are views of one database handle ([`db::Db`]).

pub mod catalog;
pub mod db;
pub mod identity;
pub mod outcome;
pub mod queue;
pub mod schema;
#[doc(hidden)]
pub mod testing;
pub mod tokens;

use std::time::{SystemTime, UNIX_EPOCH};

pub use catalog::Catalog;
pub use db::{DatabaseLocation, Db, DbError};
pub use identity::{CrateId, CrateName, CrateVersion, RegistryName};
pub use outcome::Outcome;
pub use queue::{Queue, QueueError};
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
}

/// The store: one database pool, and the views over it.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    location: DatabaseLocation,
}

impl Store {
    /// Connects and brings the schema up to date.
    pub async fn open(location: &DatabaseLocation) -> Result<Self, StoreError> {
        let db = Db::connect(location)?;
        let applied = db
            .write(|conn| schema::migrate(conn))
            .await
            .map_err(|e| match e {
                DbError::TooNew(_, found, known) => {
                    DbError::TooNew(location.describe(), found, known)
                }
                other => other,
            })?;
        if !applied.is_empty() {
            tracing::info!(database = %location.describe(), ?applied, "database schema migrated");
        }
        Ok(Self {
            db,
            location: location.clone(),
        })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn location(&self) -> &DatabaseLocation {
        &self.location
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
