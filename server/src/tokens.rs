//! Access tokens: stored as SHA-256 hashes only, each with a scope. With no token
//! defined the viewer is open; with any, every page and call needs one.

use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// What a token may do; each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read pages, docs and build records.
    Read,
    /// Also queue builds.
    Publish,
    /// Also rebuild and manage.
    Admin,
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "read" => Ok(Self::Read),
            "publish" => Ok(Self::Publish),
            "admin" => Ok(Self::Admin),
            _ => Err(format!("unknown scope `{text}`: read, publish or admin")),
        }
    }
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Publish => "publish",
            Self::Admin => "admin",
        }
    }
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub id: i64,
    pub scope: Scope,
    pub created_at: i64,
}

/// A newly made token: the secret is shown once.
#[derive(Debug, Clone, Serialize)]
pub struct NewToken {
    pub id: i64,
    pub token: String,
    pub scope: Scope,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token store {0}: {1}")]
    Database(PathBuf, #[source] rusqlite::Error),
    #[error("cannot read random bytes: {0}")]
    Random(#[source] std::io::Error),
    #[error("no token {0}")]
    NoSuchToken(i64),
}

/// The tokens, in the data directory's database.
#[derive(Debug, Clone)]
pub struct Tokens {
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (
    id         INTEGER PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    scope      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0
);";

pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Tokens {
    pub fn open(database: &Path) -> Result<Self, TokenError> {
        let tokens = Self {
            path: database.to_path_buf(),
        };
        tokens
            .connect()?
            .execute_batch(SCHEMA)
            .map_err(|e| tokens.error(e))?;
        Ok(tokens)
    }

    fn connect(&self) -> Result<Connection, TokenError> {
        if let Some(parent) = self.path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let connection = Connection::open(&self.path).map_err(|e| self.error(e))?;
        connection
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| self.error(e))?;
        Ok(connection)
    }

    fn error(&self, error: rusqlite::Error) -> TokenError {
        TokenError::Database(self.path.clone(), error)
    }

    /// Makes a token with 256 random bits.
    pub fn create(&self, scope: Scope) -> Result<NewToken, TokenError> {
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut random| random.read_exact(&mut bytes))
            .map_err(TokenError::Random)?;
        let token = format!(
            "dbt_{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let connection = self.connect()?;
        connection
            .execute(
                "INSERT INTO tokens (hash, scope, created_at) VALUES (?1, ?2, ?3)",
                params![hash(&token), scope.as_str(), docbuild_builder::queue::now()],
            )
            .map_err(|e| self.error(e))?;
        Ok(NewToken {
            id: connection.last_insert_rowid(),
            token,
            scope,
        })
    }

    pub fn list(&self) -> Result<Vec<TokenInfo>, TokenError> {
        let connection = self.connect()?;
        let mut statement = connection
            .prepare("SELECT id, scope, created_at FROM tokens WHERE revoked = 0 ORDER BY id")
            .map_err(|e| self.error(e))?;
        statement
            .query_map([], |row| {
                let scope: String = row.get(1)?;
                Ok(TokenInfo {
                    id: row.get(0)?,
                    scope: scope.parse().unwrap_or(Scope::Read),
                    created_at: row.get(2)?,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(|e| self.error(e))
    }

    pub fn revoke(&self, id: i64) -> Result<(), TokenError> {
        let changed = self
            .connect()?
            .execute(
                "UPDATE tokens SET revoked = 1 WHERE id = ?1 AND revoked = 0",
                params![id],
            )
            .map_err(|e| self.error(e))?;
        if changed == 0 {
            return Err(TokenError::NoSuchToken(id));
        }
        Ok(())
    }

    /// Every token in force, by hash.
    pub fn active(&self) -> Result<std::collections::HashMap<String, Scope>, TokenError> {
        let connection = self.connect()?;
        let mut statement = connection
            .prepare("SELECT hash, scope FROM tokens WHERE revoked = 0")
            .map_err(|e| self.error(e))?;
        statement
            .query_map([], |row| {
                let scope: String = row.get(1)?;
                Ok((row.get(0)?, scope.parse().unwrap_or(Scope::Read)))
            })
            .and_then(|rows| rows.collect())
            .map_err(|e| self.error(e))
    }

    /// Whether any token is in force (then every request needs one).
    pub fn any(&self) -> Result<bool, TokenError> {
        self.connect()?
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM tokens WHERE revoked = 0)",
                [],
                |row| row.get(0),
            )
            .map_err(|e| self.error(e))
    }

    /// The scope of a presented token, if it is valid.
    pub fn check(&self, token: &str) -> Result<Option<Scope>, TokenError> {
        let scope: Option<String> = self
            .connect()?
            .query_row(
                "SELECT scope FROM tokens WHERE hash = ?1 AND revoked = 0",
                params![hash(token)],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))?;
        Ok(scope.and_then(|s| s.parse().ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_hashed_scoped_and_revocable() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("docbuild.db");
        let tokens = Tokens::open(&database).unwrap();
        assert!(!tokens.any().unwrap());
        let new = tokens.create(Scope::Publish).unwrap();
        assert!(new.token.starts_with("dbt_") && new.token.len() == 68);
        assert_eq!(tokens.check(&new.token).unwrap(), Some(Scope::Publish));
        assert_eq!(tokens.check("dbt_wrong").unwrap(), None);
        let stored = std::fs::read(&database).unwrap();
        assert!(
            !stored
                .windows(new.token.len())
                .any(|w| w == new.token.as_bytes()),
            "the secret itself is not stored"
        );
        tokens.revoke(new.id).unwrap();
        assert_eq!(tokens.check(&new.token).unwrap(), None);
        assert!(!tokens.any().unwrap());
        assert!(matches!(
            tokens.revoke(new.id),
            Err(TokenError::NoSuchToken(_))
        ));
        assert!(Scope::Admin > Scope::Publish && Scope::Publish > Scope::Read);
    }
}
