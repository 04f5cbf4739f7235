//! API keys (table `api_keys`): who may use the HTTP API, with which scopes, over which
//! accounts. The store keeps a hash of each key, never the key; a revoked key stays
//! listed with when it was revoked.

use chrono::{DateTime, Utc};

use super::backend::{args, Dialect, Row};
use super::SqlStore;
use crate::sync::{StoreError, StoreErrorKind};

/// An API key as the store holds it (without the key).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ApiKey {
    /// Its id (`key_` and 16 hex digits), shown and used to revoke it.
    pub id: String,
    /// A label for people.
    pub label: Option<String>,
    /// What it may do: `read`, `write`, `events`, `admin`.
    pub scopes: Vec<String>,
    /// The account names it is limited to; `None`: every account.
    pub accounts: Option<Vec<String>>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Requests it may make a minute; `None`: the service's default.
    pub per_minute: Option<u32>,
}

const COLUMNS: &str = "id, label, scopes, accounts, created_at, revoked_at, per_minute";

fn key<R: Row>(row: &R) -> Result<ApiKey, StoreError> {
    let corrupt = || StoreError::new(StoreErrorKind::Corrupt, "an API key's row is unreadable");
    let scopes: Vec<String> =
        serde_json::from_str(&row.text(2)?.unwrap_or_default()).map_err(|_| corrupt())?;
    let accounts: Option<Vec<String>> = match row.text(3)? {
        Some(text) => Some(serde_json::from_str(&text).map_err(|_| corrupt())?),
        None => None,
    };
    Ok(ApiKey {
        id: row.text(0)?.unwrap_or_default(),
        label: row.text(1)?,
        scopes,
        accounts,
        created_at: row.time(4)?.unwrap_or_default(),
        revoked_at: row.time(5)?,
        per_minute: row.int(6)?.and_then(|n| u32::try_from(n).ok()),
    })
}

impl<B: Dialect> SqlStore<B> {
    /// Stores a key by its `hash`.
    pub async fn add_key(
        &self,
        id: &str,
        hash: &str,
        label: Option<&str>,
        scopes: &[String],
        accounts: Option<&[String]>,
        per_minute: Option<u32>,
    ) -> Result<ApiKey, StoreError> {
        let scopes_json = serde_json::to_string(scopes)
            .map_err(|e| StoreError::new(StoreErrorKind::Other, e.to_string()))?;
        let accounts_json = accounts
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::new(StoreErrorKind::Other, e.to_string()))?;
        let mut tx = B::begin(&self.pool).await?;
        B::execute(
            &mut tx,
            "INSERT INTO api_keys (id, hash, label, scopes, accounts, created_at, per_minute)
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
                .into(),
            args![
                id,
                hash,
                label,
                scopes_json,
                accounts_json,
                Utc::now(),
                per_minute.map(i64::from)
            ],
        )
        .await?;
        let rows = B::fetch(
            &mut tx,
            format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1"),
            args![id],
        )
        .await?;
        let added = rows
            .first()
            .map(key)
            .transpose()?
            .ok_or_else(|| StoreError::new(StoreErrorKind::Other, "the key was not stored"))?;
        B::commit(tx).await?;
        Ok(added)
    }

    /// Every key, newest first.
    pub async fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let mut conn = self.conn().await?;
        let rows = B::fetch(
            &mut conn,
            format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at DESC, id"),
            vec![],
        )
        .await?;
        rows.iter().map(key).collect()
    }

    /// The unrevoked key whose hash is `hash`, with the hash stored (for a comparison in
    /// constant time).
    pub async fn key_by_hash(&self, hash: &str) -> Result<Option<(ApiKey, String)>, StoreError> {
        let mut conn = self.read_conn().await?;
        let rows = B::fetch(
            &mut conn,
            format!("SELECT {COLUMNS}, hash FROM api_keys WHERE hash = $1 AND revoked_at IS NULL"),
            args![hash],
        )
        .await?;
        match rows.first() {
            Some(row) => Ok(Some((key(row)?, row.text(7)?.unwrap_or_default()))),
            None => Ok(None),
        }
    }

    /// Revokes the key `id`; false when there is no such unrevoked key.
    pub async fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let n = B::execute(
            &mut conn,
            "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL".into(),
            args![id, Utc::now()],
        )
        .await?;
        Ok(n == 1)
    }
}
