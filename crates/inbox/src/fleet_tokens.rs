//! Rotated OAuth tokens shared by a fleet of processes: kept in PostgreSQL, encrypted at
//! rest (ChaCha20-Poly1305, a 256-bit key the operator gives in `INBOX_TOKEN_KEY`, the
//! account's name as associated data so that a row cannot be moved to another account),
//! and refreshed by one process at a time.
//!
//! A refresh first *claims* the account's refresh (a short transaction: the row locked,
//! `claimed_until` set, its `generation` raised); a process that finds a live claim waits
//! for the rotated tokens to appear. The vendor is called with no transaction open. The
//! rotated pair is then kept in this process's memory and written with retries (the claim
//! is extended meanwhile); a store that fails after the vendor answered never costs the
//! pair: the process goes on with it and keeps trying to store it. The one window left:
//! the process dies between the vendor's answer and the first successful write (one round
//! trip when the database answers; as long as it does not, otherwise), leaving a spent
//! refresh token stored.

use futures::future::BoxFuture;
use inbox_core::{Grant, Refused, Secret, Tokens};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::config::TokenStore;
use crate::key::{TokenKey, TOKEN_KEY_ENV};
use crate::Error;

/// Refresh this long before a stored access token expires.
const SKEW: chrono::Duration = chrono::Duration::seconds(60);

/// What a row holds, once decrypted.
#[derive(Serialize, Deserialize)]
struct Sealed {
    access_token: Option<String>,
    refresh_token: String,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The fleet's [`TokenStore`]: table `inbox_tokens (account, sealed, updated_at,
/// claimed_until, generation)`. Clones share the rotated pairs not stored yet.
#[derive(Clone)]
pub struct PostgresTokens {
    pool: PgPool,
    key: TokenKey,
    /// Rotated pairs the store has not taken yet, by account: the newest this process
    /// knows, used and written again until the store takes them.
    unsaved: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Tokens>>>,
}

/// How long a claimed refresh keeps other processes waiting (extended while its rotated
/// pair is being written).
const CLAIM_SECS: f64 = 120.0;

/// How often a process waiting for another's refresh looks again.
const CLAIM_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// How long the rotated pair is written again (every 2 s) before this process leaves the
/// retries to a task of their own.
const SAVE_TRIES: u32 = 15;

/// What claiming a refresh found.
enum Claim {
    /// Another process refreshed since: its fresh tokens.
    Fresh(Tokens),
    /// Another process is refreshing now.
    Busy,
    /// This process refreshes, with the newest refresh token stored.
    Claimed(Tokens, i64),
}

impl std::fmt::Debug for PostgresTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTokens").finish_non_exhaustive()
    }
}

const TABLE: &str = "CREATE TABLE IF NOT EXISTS inbox_tokens (
    account TEXT PRIMARY KEY, sealed BYTEA NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now());
  ALTER TABLE inbox_tokens ADD COLUMN IF NOT EXISTS claimed_until TIMESTAMPTZ;
  ALTER TABLE inbox_tokens ADD COLUMN IF NOT EXISTS generation BIGINT NOT NULL DEFAULT 0";

impl PostgresTokens {
    /// The store on `pool` (its table created when missing), encrypting with `key`.
    pub async fn new(pool: PgPool, key: TokenKey) -> Result<Self, Error> {
        let failed = |e: sqlx::Error| {
            Error::Store(
                crate::sync::StoreError::new(
                    crate::sync::StoreErrorKind::Unavailable,
                    "creating the token table",
                )
                .with_source(e),
            )
        };
        let mut tx = pool.begin().await.map_err(failed)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('inbox_tokens'))")
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        sqlx::raw_sql(TABLE)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(PostgresTokens {
            pool,
            key,
            unsaved: Default::default(),
        })
    }

    fn seal(&self, account: &str, tokens: &Tokens) -> Result<Vec<u8>, String> {
        let plain = serde_json::to_vec(&Sealed {
            access_token: tokens.access_token.as_ref().map(|t| t.expose().to_string()),
            refresh_token: tokens.refresh_token.expose().to_string(),
            expires_at: tokens.expires_at,
        })
        .map_err(|e| e.to_string())?;
        self.key.seal(account, &plain)
    }

    fn open(&self, account: &str, sealed: &[u8]) -> Result<Tokens, String> {
        let unreadable = || {
            format!("the stored tokens of {account} cannot be decrypted (another {TOKEN_KEY_ENV}?)")
        };
        let plain = self.key.open(account, sealed).ok_or_else(unreadable)?;
        let s: Sealed = serde_json::from_slice(&plain).map_err(|_| unreadable())?;
        Ok(Tokens {
            access_token: s.access_token.map(Secret::new),
            refresh_token: Secret::new(s.refresh_token),
            expires_at: s.expires_at,
        })
    }

    /// The refresh, claimed, made and stored; `Err` is a failure of the store itself
    /// before the vendor was called.
    async fn exclusive<'a>(
        &'a self,
        account: &'a str,
        held: Tokens,
        grant: Grant<'a>,
    ) -> Result<Result<Tokens, Refused>, String> {
        // A rotated pair this process holds and the store has not taken is the newest.
        let held = match self.unsaved_pair(account) {
            Some(pair) if fresh(&pair) => return Ok(Ok(pair)),
            Some(pair) => pair,
            None => held,
        };
        let waited = std::time::Instant::now();
        let (stored, generation) = loop {
            match self.claim(account, &held).await? {
                Claim::Fresh(tokens) => return Ok(Ok(tokens)),
                Claim::Claimed(stored, generation) => break (stored, generation),
                Claim::Busy if waited.elapsed().as_secs_f64() > 2.0 * CLAIM_SECS => {
                    return Err("another process's refresh did not finish".into())
                }
                Claim::Busy => tokio::time::sleep(CLAIM_POLL).await,
            }
        };
        // The vendor, with no transaction open.
        let granted = match grant(stored.refresh_token).await {
            Ok(t) => t,
            Err(refused) => {
                let _ = self.unclaim(account, generation).await;
                return Ok(Err(refused));
            }
        };
        self.keep(account, &granted);
        for attempt in 0..SAVE_TRIES {
            match self.store_pair(account, &granted).await {
                Ok(()) => {
                    self.stored(account, &granted);
                    return Ok(Ok(granted));
                }
                Err(e) => {
                    tracing::warn!(account, attempt, error = %e, "rotated tokens not stored yet; trying again");
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                }
            }
        }
        // Still not stored: go on with the pair, and keep trying in the background.
        tracing::error!(account, "rotated tokens could not be stored; still trying");
        let (store, account_name, pair) = (self.clone(), account.to_string(), granted.clone());
        tokio::spawn(async move {
            loop {
                if store.unsaved_pair(&account_name).as_ref() != Some(&pair) {
                    return; // a newer pair replaced it
                }
                if store.store_pair(&account_name, &pair).await.is_ok() {
                    store.stored(&account_name, &pair);
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        });
        Ok(Ok(granted))
    }

    /// Claims the account's refresh, unless another process refreshed (fresh tokens) or
    /// is refreshing.
    async fn claim(&self, account: &str, held: &Tokens) -> Result<Claim, String> {
        let db = |e: sqlx::Error| format!("the token store failed: {e}");
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO inbox_tokens (account, sealed) VALUES ($1, $2)
             ON CONFLICT (account) DO NOTHING",
        )
        .bind(account)
        .bind(self.seal(account, held)?)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let (sealed, busy): (Vec<u8>, bool) = sqlx::query_as(
            "SELECT sealed, COALESCE(claimed_until > now(), false) FROM inbox_tokens
             WHERE account = $1 FOR UPDATE",
        )
        .bind(account)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let stored = self.open(account, &sealed)?;
        let claim = if stored.refresh_token != held.refresh_token && fresh(&stored) {
            Claim::Fresh(stored)
        } else if busy {
            Claim::Busy
        } else {
            let generation: i64 = sqlx::query_scalar(
                "UPDATE inbox_tokens SET claimed_until = now() + make_interval(secs => $2),
                   generation = generation + 1 WHERE account = $1 RETURNING generation",
            )
            .bind(account)
            .bind(CLAIM_SECS)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            Claim::Claimed(stored, generation)
        };
        tx.commit().await.map_err(db)?;
        Ok(claim)
    }

    /// Gives a claim up (the vendor refused: nothing changed).
    async fn unclaim(&self, account: &str, generation: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE inbox_tokens SET claimed_until = NULL WHERE account = $1 AND generation = $2",
        )
        .bind(account)
        .bind(generation)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// Writes a rotated pair and ends the claim.
    async fn store_pair(&self, account: &str, tokens: &Tokens) -> Result<(), String> {
        let sealed = self.seal(account, tokens)?;
        sqlx::query(
            "UPDATE inbox_tokens SET sealed = $2, updated_at = now(), claimed_until = NULL
             WHERE account = $1",
        )
        .bind(account)
        .bind(sealed)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(|e| format!("the token store failed: {e}"))
    }

    fn unsaved_pair(&self, account: &str) -> Option<Tokens> {
        self.unsaved.lock().ok()?.get(account).cloned()
    }

    fn keep(&self, account: &str, tokens: &Tokens) {
        if let Ok(mut unsaved) = self.unsaved.lock() {
            unsaved.insert(account.to_string(), tokens.clone());
        }
    }

    /// `tokens` are stored: no longer kept (unless a newer pair replaced them).
    fn stored(&self, account: &str, tokens: &Tokens) {
        if let Ok(mut unsaved) = self.unsaved.lock() {
            if unsaved.get(account) == Some(tokens) {
                unsaved.remove(account);
            }
        }
    }
}

/// Whether `tokens` hold an access token that is good for a while yet.
fn fresh(tokens: &Tokens) -> bool {
    tokens.access_token.is_some()
        && tokens
            .expires_at
            .is_none_or(|at| at - SKEW > chrono::Utc::now())
}

impl TokenStore for PostgresTokens {
    /// Stores `tokens` (in the background: refreshes go through
    /// [`TokenStore::refresh_exclusively`], which stores before it returns).
    fn save(&self, account: &str, tokens: &Tokens) -> Result<(), String> {
        let sealed = self.seal(account, tokens)?;
        let (pool, account) = (self.pool.clone(), account.to_string());
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?;
        runtime.spawn(async move {
            let written = sqlx::query(
                "INSERT INTO inbox_tokens (account, sealed) VALUES ($1, $2)
                 ON CONFLICT (account) DO UPDATE SET sealed = excluded.sealed, updated_at = now()",
            )
            .bind(&account)
            .bind(sealed)
            .execute(&pool)
            .await;
            if let Err(e) = written {
                tracing::error!(account, error = %e, "tokens could not be stored");
            }
        });
        Ok(())
    }

    fn refresh_exclusively<'a>(
        &'a self,
        account: &'a str,
        held: Tokens,
        grant: Grant<'a>,
    ) -> BoxFuture<'a, Result<Tokens, Refused>> {
        Box::pin(async move {
            match self.exclusive(account, held, grant).await {
                Ok(outcome) => outcome,
                Err(why) => {
                    tracing::error!(account, error = %why, "token store");
                    let body = serde_json::json!({
                        "error": "token_store_unavailable",
                        "error_description": why,
                    });
                    let body = bytes::Bytes::from(body.to_string());
                    Err(Refused::Answer(inbox_core::token_answer(503, body)))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_64_hex_digits_and_never_shown() {
        let key = TokenKey::from_hex(&"ab".repeat(32)).unwrap();
        assert_eq!(format!("{key:?}"), "TokenKey(…)");
        for bad in ["", "abc", &"zz".repeat(32), &"ab".repeat(33)] {
            assert!(TokenKey::from_hex(bad).is_err(), "{bad}");
        }
    }
}
