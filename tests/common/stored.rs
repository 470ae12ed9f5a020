//! The store of a data directory, as tests reach it: which engine the HTTP tests run
//! on (`DOCBUILD_TEST_DATABASE=postgres` for PostgreSQL, else SQLite), and what a
//! build could have stored, written into a stored build the way a worker stores it.

use std::path::Path;

use docbuild_store::testing::TestDatabase;
use docbuild_store::{Store, archive};

/// The database HTTP tests run on: `None` for SQLite in the data directory.
pub fn test_database() -> Option<TestDatabase> {
    match std::env::var("DOCBUILD_TEST_DATABASE").as_deref() {
        Ok("postgres") => Some(TestDatabase::postgres()),
        Ok("sqlite") | Err(_) => None,
        Ok(other) => panic!("DOCBUILD_TEST_DATABASE={other}: postgres or sqlite"),
    }
}

/// `docbuild.toml`'s `[database]` for `database` (nothing for SQLite).
pub fn database_config(database: Option<&TestDatabase>) -> String {
    match database {
        Some(database) => format!("[database]\nurl = \"{}\"\n", database.url()),
        None => String::new(),
    }
}

/// The store a data directory's configuration names, on a runtime of its own.
pub struct DataStore {
    runtime: tokio::runtime::Runtime,
    store: Store,
}

impl DataStore {
    pub fn open(data: &Path) -> Self {
        let data = docbuild_builder::config::DataDir::resolve(Some(data));
        let config = docbuild_builder::config::Config::load(None, &data).unwrap();
        let location = config.store_location(&data).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let store = runtime.block_on(Store::open(&location)).unwrap();
        Self { runtime, store }
    }

    /// The build whose docs are served for `name@version` of the local registry.
    pub fn current_build(&self, name: &str, version: &str) -> i64 {
        let id = docbuild_store::CrateId::new("local", name, version).unwrap();
        self.runtime
            .block_on(self.store.queue().current_build(&id))
            .unwrap()
            .expect("a successful build")
            .id
    }

    /// Adds files to a stored build's docs (as if its build had written them).
    pub fn add_files(&self, build: i64, files: &[(&str, &[u8])]) {
        self.runtime.block_on(async {
            let builds = self.store.builds();
            let mut manifest = builds.manifest(build).await.unwrap().unwrap();
            for (path, content) in files {
                let entry = archive::store_file(builds.blobs(), content.to_vec().into())
                    .await
                    .unwrap();
                manifest.files.insert(path.to_string(), entry);
            }
            builds.put_manifest(build, &manifest).await.unwrap();
        });
    }

    /// Copies a stored build's files below `from/` to below `to/`.
    pub fn copy_dir(&self, build: i64, from: &str, to: &str) {
        self.runtime.block_on(async {
            let builds = self.store.builds();
            let mut manifest = builds.manifest(build).await.unwrap().unwrap();
            let copies: Vec<_> = manifest
                .files
                .iter()
                .filter_map(|(path, entry)| {
                    let rest = path.strip_prefix(&format!("{from}/"))?;
                    Some((format!("{to}/{rest}"), entry.clone()))
                })
                .collect();
            manifest.files.extend(copies);
            builds.put_manifest(build, &manifest).await.unwrap();
        });
    }

    /// Changes a build's recorded report.
    pub fn update_record(&self, build: i64, change: impl FnOnce(&mut serde_json::Value)) {
        let record = self
            .runtime
            .block_on(self.store.queue().build_report(build))
            .unwrap()
            .unwrap();
        let mut record: serde_json::Value = serde_json::from_str(&record).unwrap();
        change(&mut record);
        let record = record.to_string();
        self.runtime
            .block_on(self.store.db().write(move |conn| {
                conn.execute(
                    "UPDATE builds SET record = $1 WHERE id = $2",
                    docbuild_store::params![record, build],
                )
            }))
            .unwrap();
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn block_on<T>(&self, future: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(future)
    }
}

impl DataStore {
    /// A file of a stored build's docs, as it was built.
    pub fn file(&self, build: i64, path: &str) -> Option<Vec<u8>> {
        let builds = self.store.builds();
        let manifest = self.runtime.block_on(builds.manifest(build)).unwrap()?;
        let entry = manifest.files.get(path)?;
        let stored = self
            .runtime
            .block_on(archive::load(builds.blobs(), entry))
            .unwrap();
        Some(archive::decode(entry, stored).unwrap().to_vec())
    }

    /// The report a build was settled with.
    pub fn record(&self, build: i64) -> serde_json::Value {
        let record = self
            .runtime
            .block_on(self.store.queue().build_report(build))
            .unwrap()
            .unwrap();
        serde_json::from_str(&record).unwrap()
    }

    /// A build's stored log.
    pub fn log(&self, build: i64) -> Option<String> {
        self.runtime
            .block_on(self.store.builds().log(build))
            .unwrap()
    }

    /// Every build of a release of the local or any registry, by name and version.
    pub fn builds_of(&self, name: &str, version: &str) -> Vec<i64> {
        self.runtime
            .block_on(self.store.catalog().builds(name, version))
            .unwrap()
            .iter()
            .map(|entry| entry.build.id)
            .collect()
    }
}
