//! Access tokens: stored as SHA-256 hashes only, each with a scope. Until a first
//! token is made the viewer is open; from then on every page and call needs one
//! (reading too, unless `[server] public = true`), even once every token is revoked.

use std::collections::HashMap;
use std::io::Read;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db::{Db, DbError, FromValue, Row, ToValue, Value};
use crate::{now, params};

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
    pub fn as_str(self) -> &'static str {
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
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("cannot read random bytes: {0}")]
    Random(#[source] std::io::Error),
    #[error("no token {0}")]
    NoSuchToken(i64),
}

impl ToValue for Scope {
    fn to_value(&self) -> Value {
        Value::Text(self.as_str().into())
    }
}

impl FromValue for Scope {
    fn from_value(value: Value) -> Result<Self, String> {
        String::from_value(value)?.parse()
    }
}

/// Who may do what: the tokens in force, and whether any was ever made.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Every token in force, by hash.
    pub active: HashMap<String, Scope>,
    /// A token was made once, revoked or not: tokens are in force for good.
    pub issued: bool,
}

/// The tokens: a view of the store's database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Tokens {
    db: Db,
}

pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Tokens {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Makes a token with 256 random bits.
    pub async fn create(&self, scope: Scope) -> Result<NewToken, TokenError> {
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut random| random.read_exact(&mut bytes))
            .map_err(TokenError::Random)?;
        let token = format!(
            "dbt_{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let hashed = hash(&token);
        let id = self
            .db
            .write(move |conn| {
                let id: i64 = conn.value(
                    "INSERT INTO tokens (hash, scope, created_at) VALUES ($1, $2, $3)
                     RETURNING id",
                    params![hashed, scope, now()],
                )?;
                crate::queue::changed(conn)?;
                Ok::<_, TokenError>(id)
            })
            .await?;
        Ok(NewToken { id, token, scope })
    }

    pub async fn list(&self) -> Result<Vec<TokenInfo>, TokenError> {
        let rows = self
            .db
            .read(|conn| {
                conn.query(
                    "SELECT id, scope, created_at FROM tokens WHERE revoked = 0 ORDER BY id",
                    &[],
                )
            })
            .await?;
        let info = |row: &Row| {
            Ok(TokenInfo {
                id: row.get(0)?,
                scope: row.get(1)?,
                created_at: row.get(2)?,
            })
        };
        Ok(rows.iter().map(info).collect::<Result<_, DbError>>()?)
    }

    pub async fn revoke(&self, id: i64) -> Result<(), TokenError> {
        self.db
            .write(move |conn| {
                let changed = conn.execute(
                    "UPDATE tokens SET revoked = 1 WHERE id = $1 AND revoked = 0",
                    params![id],
                )?;
                if changed == 0 {
                    return Err(TokenError::NoSuchToken(id));
                }
                crate::queue::changed(conn)?;
                Ok(())
            })
            .await
    }

    /// The tokens in force, and whether any token was ever made, in one read.
    pub async fn access(&self) -> Result<Access, TokenError> {
        let rows = self
            .db
            .read(|conn| conn.query("SELECT hash, scope, revoked FROM tokens", &[]))
            .await?;
        let mut active = HashMap::new();
        for row in &rows {
            let revoked: i64 = row.get(2)?;
            if revoked == 0 {
                active.insert(row.get(0)?, row.get(1)?);
            }
        }
        Ok(Access {
            active,
            issued: !rows.is_empty(),
        })
    }

    /// Whether any token was ever made, revoked ones included: from then on the
    /// site is closed without one.
    pub async fn any_issued(&self) -> Result<bool, TokenError> {
        Ok(self
            .db
            .read(|conn| conn.value("SELECT EXISTS (SELECT 1 FROM tokens)", &[]))
            .await?)
    }

    /// Every token in force, by hash.
    pub async fn active(&self) -> Result<HashMap<String, Scope>, TokenError> {
        let rows = self
            .db
            .read(|conn| conn.query("SELECT hash, scope FROM tokens WHERE revoked = 0", &[]))
            .await?;
        Ok(rows
            .iter()
            .map(|row| Ok((row.get(0)?, row.get(1)?)))
            .collect::<Result<_, DbError>>()?)
    }

    /// Whether any token is in force (none left, nobody can log in; the site stays
    /// closed all the same, see [`Tokens::any_issued`]).
    pub async fn any(&self) -> Result<bool, TokenError> {
        Ok(self
            .db
            .read(|conn| {
                conn.value(
                    "SELECT EXISTS (SELECT 1 FROM tokens WHERE revoked = 0)",
                    &[],
                )
            })
            .await?)
    }

    /// The scope of a presented token, if it is valid.
    pub async fn check(&self, token: &str) -> Result<Option<Scope>, TokenError> {
        let hashed = hash(token);
        Ok(self
            .db
            .read(move |conn| {
                conn.value(
                    "SELECT scope FROM tokens WHERE hash = $1 AND revoked = 0",
                    params![hashed],
                )
            })
            .await?)
    }
}
