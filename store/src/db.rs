//! The database behind the store: SQLite in the data directory (the embedded
//! default) or PostgreSQL, through one pool and one small SQL surface.
//!
//! Every statement is written once, with `$1`-style parameters, and runs on both
//! engines; the few places where they differ ask [`Conn::dialect`]. Values cross as
//! [`Value`]s, converted from and to domain types by [`ToValue`] and [`FromValue`],
//! so that no caller handles an engine's own types.
//!
//! Statements run on the runtime's blocking threads ([`Db::read`], [`Db::write`]),
//! never on its async workers: SQLite's driver blocks, and PostgreSQL's async client
//! is driven from there with the runtime's handle, so that a transaction is one plain
//! closure on either engine.

use std::path::PathBuf;
use std::time::Duration;

use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// Which engine, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Where the database is: `[database] url` or `DOCBUILD_DATABASE_URL`, else SQLite in
/// the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    Sqlite(PathBuf),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl DatabaseLocation {
    /// A `postgres://` URL, a `sqlite://` path or a plain path to an SQLite file.
    pub fn parse(url: &str) -> Result<Self, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_string()));
        }
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        if path.is_empty() || url.contains("://") && !url.starts_with("sqlite://") {
            return Err(DbError::Location(format!(
                "`{url}` is neither a postgres:// URL nor an SQLite file's path"
            )));
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }

    /// For messages: the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("SQLite {}", path.display()),
            Self::Postgres(url) => match (url.find("://"), url.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    let credentials = &url[scheme + 3..at];
                    let user = credentials.split(':').next().unwrap_or_default();
                    format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
                }
                _ => url.clone(),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Location(String),
    #[error("database {0}: {1}")]
    Sqlite(String, #[source] rusqlite::Error),
    #[error("database {0}: {1}")]
    Postgres(String, #[source] tokio_postgres::Error),
    #[error("database {0}: cannot connect: {1}")]
    Pool(String, String),
    #[error("database: column {0}: {1}")]
    Column(usize, String),
    #[error(
        "database {0}: schema version {1} is newer than this docbuild knows ({2}); upgrade docbuild"
    )]
    TooNew(String, i64, i64),
}

/// One value in or out of a statement. Booleans are integers, as in SQLite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

/// Domain types that go into a statement.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

/// Domain types that come out of a row; a value that is not one is an error naming it.
pub trait FromValue: Sized {
    fn from_value(value: Value) -> Result<Self, String>;
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}
impl ToValue for i64 {
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
}
impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

impl FromValue for Value {
    fn from_value(value: Value) -> Result<Self, String> {
        Ok(value)
    }
}
impl FromValue for i64 {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Int(n) => Ok(n),
            other => Err(format!("expected an integer, found {other:?}")),
        }
    }
}
impl FromValue for bool {
    fn from_value(value: Value) -> Result<Self, String> {
        i64::from_value(value).map(|n| n != 0)
    }
}
impl FromValue for String {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Text(text) => Ok(text),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            value => T::from_value(value).map(Some),
        }
    }
}

/// Parameters of a statement: `params![a, b]`.
#[macro_export]
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        &[$($crate::db::ToValue::to_value(&$value)),*] as &[$crate::db::Value]
    };
}

/// One row of a result.
#[derive(Debug, Clone)]
pub struct Row(Vec<Value>);

impl Row {
    pub fn get<T: FromValue>(&self, index: usize) -> Result<T, DbError> {
        let value = self.0.get(index).cloned().unwrap_or(Value::Null);
        T::from_value(value).map_err(|e| DbError::Column(index, e))
    }
}

/// A connection, or a transaction on one: what every statement runs on.
pub trait Conn {
    fn dialect(&self) -> Dialect;
    /// Rows changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError>;
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError>;

    fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
}

impl dyn Conn + '_ {
    pub fn value<T: FromValue>(&mut self, sql: &str, params: &[Value]) -> Result<T, DbError> {
        let value = self
            .query_opt(sql, params)?
            .and_then(|row| row.0.into_iter().next())
            .unwrap_or(Value::Null);
        T::from_value(value).map_err(|e| DbError::Column(0, e))
    }
}

type SqlitePool = r2d2::Pool<r2d2_sqlite::SqliteConnectionManager>;
#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    /// With the runtime that drives its connections.
    Postgres(deadpool_postgres::Pool, tokio::runtime::Handle),
}

/// The database: a pool of connections to one engine. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    name: std::sync::Arc<str>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// How long a statement waits for a lock (SQLite) or a connection (both).
const WAIT: Duration = Duration::from_secs(30);

impl Db {
    /// Connects (creating an SQLite file and its directory if needed), from within a
    /// Tokio runtime, which then drives PostgreSQL's connections. The schema is not
    /// touched here; see [`crate::schema::migrate`].
    pub fn connect(location: &DatabaseLocation) -> Result<Self, DbError> {
        let name: std::sync::Arc<str> = location.describe().into();
        let pool = match location {
            DatabaseLocation::Sqlite(path) => {
                if let Some(parent) = path.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                let manager =
                    r2d2_sqlite::SqliteConnectionManager::file(path).with_init(|connection| {
                        connection.busy_timeout(WAIT)?;
                        connection.pragma_update(None, "journal_mode", "WAL")?;
                        connection.pragma_update(None, "synchronous", "NORMAL")?;
                        Ok(())
                    });
                let pool = r2d2::Pool::builder()
                    .max_size(8)
                    .min_idle(Some(0))
                    .connection_timeout(WAIT)
                    .build(manager)
                    .map_err(|e| DbError::Pool(name.to_string(), e.to_string()))?;
                Pool::Sqlite(pool)
            }
            DatabaseLocation::Postgres(url) => {
                let config: tokio_postgres::Config =
                    url.parse().map_err(|e: tokio_postgres::Error| {
                        DbError::Location(format!("{}: {e}", location.describe()))
                    })?;
                let handle = tokio::runtime::Handle::try_current().map_err(|_| {
                    DbError::Location("PostgreSQL needs a Tokio runtime to connect from".into())
                })?;
                let manager = deadpool_postgres::Manager::new(config, tokio_postgres::NoTls);
                let pool = deadpool_postgres::Pool::builder(manager)
                    .max_size(16)
                    .wait_timeout(Some(WAIT))
                    .create_timeout(Some(WAIT))
                    .runtime(deadpool_postgres::Runtime::Tokio1)
                    .build()
                    .map_err(|e| DbError::Pool(name.to_string(), e.to_string()))?;
                Pool::Postgres(pool, handle)
            }
        };
        Ok(Self { pool, name })
    }

    pub fn dialect(&self) -> Dialect {
        match self.pool {
            Pool::Sqlite(_) => Dialect::Sqlite,
            Pool::Postgres(..) => Dialect::Postgres,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `work` on one connection without a transaction, on this thread. For
    /// threads that are not the runtime's (use [`Db::read`] from async code).
    pub fn read_blocking<T>(
        &self,
        work: impl FnOnce(&mut dyn Conn) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                let connection = pool.get().map_err(|e| self.pool_error(e))?;
                work(&mut SqliteConn {
                    connection: &connection,
                    name: &self.name,
                })
            }
            Pool::Postgres(pool, handle) => {
                let client = handle
                    .block_on(pool.get())
                    .map_err(|e| self.pool_error(e))?;
                work(&mut PostgresConn {
                    client: &**client,
                    handle,
                    name: &self.name,
                })
            }
        }
    }

    /// Runs `work` in one transaction, on this thread: committed if it returns `Ok`,
    /// rolled back otherwise. On SQLite the transaction takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so read-then-write sequences never deadlock.
    pub fn write_blocking<T, E: From<DbError>>(
        &self,
        work: impl FnOnce(&mut dyn Conn) -> Result<T, E>,
    ) -> Result<T, E> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mut connection = pool.get().map_err(|e| self.pool_error(e))?;
                let tx = connection
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(|e| self.sqlite_error(e))?;
                let value = work(&mut SqliteConn {
                    connection: &tx,
                    name: &self.name,
                })?;
                tx.commit().map_err(|e| self.sqlite_error(e))?;
                Ok(value)
            }
            Pool::Postgres(pool, handle) => {
                let mut client = handle
                    .block_on(pool.get())
                    .map_err(|e| self.pool_error(e))?;
                let tx = handle
                    .block_on(client.transaction())
                    .map_err(|e| self.postgres_error(e))?;
                let value = work(&mut PostgresConn {
                    client: &*tx,
                    handle,
                    name: &self.name,
                })?;
                handle
                    .block_on(tx.commit())
                    .map_err(|e| self.postgres_error(e))?;
                Ok(value)
            }
        }
    }

    /// [`Db::read_blocking`] on a blocking thread.
    pub async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut dyn Conn) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        let db = self.clone();
        blocking(move || db.read_blocking(work)).await
    }

    /// [`Db::write_blocking`] on a blocking thread.
    pub async fn write<T: Send + 'static, E: From<DbError> + Send + 'static>(
        &self,
        work: impl FnOnce(&mut dyn Conn) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let db = self.clone();
        blocking(move || db.write_blocking(work)).await
    }

    fn pool_error(&self, error: impl std::fmt::Display) -> DbError {
        DbError::Pool(self.name.to_string(), error.to_string())
    }
    fn sqlite_error(&self, error: rusqlite::Error) -> DbError {
        DbError::Sqlite(self.name.to_string(), error)
    }
    fn postgres_error(&self, error: tokio_postgres::Error) -> DbError {
        DbError::Postgres(self.name.to_string(), error)
    }
}

/// Runs blocking work on the runtime's blocking threads, so that async tasks keep
/// going meanwhile; a panic in it is the caller's.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

struct SqliteConn<'a> {
    connection: &'a rusqlite::Connection,
    name: &'a str,
}

/// SQLite reads `$1` as a parameter named "$1", numbered by first appearance; `?1`
/// is numbered by its digits, as PostgreSQL numbers `$1`.
fn sqlite_sql(sql: &str) -> std::borrow::Cow<'_, str> {
    let bytes = sql.as_bytes();
    let placeholder =
        |i: usize| bytes[i] == b'$' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
    if !(0..bytes.len()).any(placeholder) {
        return sql.into();
    }
    sql.char_indices()
        .map(|(i, c)| if placeholder(i) { '?' } else { c })
        .collect::<String>()
        .into()
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(n) => ToSqlOutput::Borrowed(ValueRef::Integer(*n)),
            Value::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
        })
    }
}

impl SqliteConn<'_> {
    fn error(&self, error: rusqlite::Error) -> DbError {
        DbError::Sqlite(self.name.to_string(), error)
    }
}

impl Conn for SqliteConn<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let mut statement = self
            .connection
            .prepare_cached(&sqlite_sql(sql))
            .map_err(|e| self.error(e))?;
        let changed = statement
            .execute(rusqlite::params_from_iter(params))
            .map_err(|e| self.error(e))?;
        Ok(changed as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        use rusqlite::types::ValueRef;
        let mut statement = self
            .connection
            .prepare_cached(&sqlite_sql(sql))
            .map_err(|e| self.error(e))?;
        let columns = statement.column_count();
        let mut rows = statement
            .query(rusqlite::params_from_iter(params))
            .map_err(|e| self.error(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.error(e))? {
            let mut values = Vec::with_capacity(columns);
            for index in 0..columns {
                values.push(match row.get_ref(index).map_err(|e| self.error(e))? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::Int(n),
                    ValueRef::Real(x) => Value::Int(x as i64),
                    ValueRef::Text(text) | ValueRef::Blob(text) => {
                        Value::Text(String::from_utf8_lossy(text).into_owned())
                    }
                });
            }
            out.push(Row(values));
        }
        Ok(out)
    }
}

struct PostgresConn<'a, C: tokio_postgres::GenericClient> {
    client: &'a C,
    handle: &'a tokio::runtime::Handle,
    name: &'a str,
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(n) => match *ty {
                Type::INT8 => n.to_sql(ty, out),
                Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
                Type::BOOL => (*n != 0).to_sql(ty, out),
                _ => Err(format!("an integer cannot be a {ty}").into()),
            },
            Value::Text(text) => text.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl<C: tokio_postgres::GenericClient + Sync> PostgresConn<'_, C> {
    fn error(&self, error: tokio_postgres::Error) -> DbError {
        DbError::Postgres(self.name.to_string(), error)
    }

    fn bind(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
        params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
    }
}

impl<C: tokio_postgres::GenericClient + Sync> Conn for PostgresConn<'_, C> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let params = Self::bind(params);
        let result = self.handle.block_on(self.client.execute(sql, &params));
        result.map_err(|e| self.error(e))
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let params = Self::bind(params);
        let result = self.handle.block_on(self.client.query(sql, &params));
        let rows = result.map_err(|e| self.error(e))?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|index| postgres_value(row, index))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Row)
            })
            .collect()
    }
}

fn postgres_value(row: &tokio_postgres::Row, index: usize) -> Result<Value, DbError> {
    let ty = row.columns()[index].type_().clone();
    let column = |e: tokio_postgres::Error| DbError::Column(index, e.to_string());
    Ok(match ty {
        Type::INT8 => row
            .try_get::<_, Option<i64>>(index)
            .map_err(column)?
            .map_or(Value::Null, Value::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(index)
            .map_err(column)?
            .map_or(Value::Null, |n| Value::Int(n.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(index)
            .map_err(column)?
            .map_or(Value::Null, |n| Value::Int(n.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(index)
            .map_err(column)?
            .map_or(Value::Null, |b| Value::Int(b.into())),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => row
            .try_get::<_, Option<String>>(index)
            .map_err(column)?
            .map_or(Value::Null, Value::Text),
        other => {
            return Err(DbError::Column(
                index,
                format!("unsupported column type {other}"),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_numbered_parameters_are_renamed_for_sqlite() {
        assert_eq!(
            super::sqlite_sql("SELECT json_extract(record, '$.x') FROM t WHERE a = $1 AND b = $12"),
            "SELECT json_extract(record, '$.x') FROM t WHERE a = ?1 AND b = ?12"
        );
        assert_eq!(super::sqlite_sql("SELECT 1"), "SELECT 1");
    }
}
