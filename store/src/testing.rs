//! Databases for tests, on both engines: a fresh SQLite file, or a fresh database on
//! the PostgreSQL server that `scripts/services.sh` starts (`DOCBUILD_TEST_POSTGRES`
//! names another). Each is dropped with its guard. A test that needs PostgreSQL fails
//! when it is not there; it never skips.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::db::DatabaseLocation;

/// The server tests use, as a URL of a database its role may create databases from.
pub fn postgres_admin_url() -> String {
    std::env::var("DOCBUILD_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://docbuild:docbuild@127.0.0.1:5432/docbuild".into())
}

/// A database that exists as long as this does, with a storage directory.
pub struct TestDatabase {
    pub location: DatabaseLocation,
    dir: tempfile::TempDir,
    postgres: Option<String>,
}

impl TestDatabase {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        Self {
            location: DatabaseLocation::Sqlite(dir.path().join("docbuild.db")),
            dir,
            postgres: None,
        }
    }

    pub fn postgres() -> Self {
        Self::postgres_from(None)
    }

    /// A new PostgreSQL database with the content of this one, which nothing may be
    /// connected to meanwhile (PostgreSQL copies it as a template).
    pub fn copy(&self) -> Self {
        match &self.postgres {
            Some(name) => Self::postgres_from(Some(name)),
            None => panic!("only PostgreSQL test databases are copied this way"),
        }
    }

    fn postgres_from(template: Option<&str>) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "docbuild_test_{}_{}_{}",
            std::process::id(),
            crate::now(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = postgres_admin_url();
        let template = template.map_or(String::new(), |t| format!(" TEMPLATE {t}"));
        admin_statement(&admin, &format!("CREATE DATABASE {name}{template}"));
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(base, _)| base);
        Self {
            location: DatabaseLocation::Postgres(format!("{base}/{name}")),
            dir: tempfile::tempdir().expect("a temporary directory"),
            postgres: Some(name),
        }
    }

    /// One of each engine.
    pub fn both() -> [Self; 2] {
        [Self::sqlite(), Self::postgres()]
    }

    /// This database, with blob storage in a directory of its own.
    pub fn store_location(&self) -> crate::StoreLocation {
        crate::StoreLocation {
            database: self.location.clone(),
            storage: crate::StorageLocation::Directory(self.dir.path().join("storage")),
        }
    }

    pub fn engine(&self) -> &'static str {
        match self.location {
            DatabaseLocation::Sqlite(_) => "sqlite",
            DatabaseLocation::Postgres(_) => "postgres",
        }
    }

    /// The URL or path, as `DOCBUILD_DATABASE_URL` takes it.
    pub fn url(&self) -> String {
        match &self.location {
            DatabaseLocation::Sqlite(path) => path.display().to_string(),
            DatabaseLocation::Postgres(url) => url.clone(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(name) = &self.postgres {
            admin_statement(
                &postgres_admin_url(),
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

/// Runs one statement on its own thread: the blocking client must not run on an
/// async runtime's thread, and tests call this from inside one.
fn admin_statement(url: &str, statement: &str) {
    let (url, statement) = (url.to_string(), statement.to_string());
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(|e| {
                    format!("cannot reach the test PostgreSQL at {url} (run `bash scripts/services.sh`): {e}")
                })?;
            tokio::spawn(connection);
            client
                .batch_execute(&statement)
                .await
                .map_err(|e| format!("{statement}: {e}"))
        })
    })
    .join()
    .expect("the PostgreSQL admin thread");
    if let Err(error) = outcome
        && !std::thread::panicking()
    {
        panic!("{error}");
    }
}
