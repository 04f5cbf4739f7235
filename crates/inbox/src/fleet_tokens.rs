//! Rotated OAuth tokens shared by a fleet of processes: kept in PostgreSQL, encrypted at
//! rest (ChaCha20-Poly1305, a 256-bit key the operator gives in `INBOX_TOKEN_KEY`, the
//! account's name as associated data so that a row cannot be moved to another account),
//! and refreshed by one process at a time: a refresh holds the account's row locked
//! (`SELECT … FOR UPDATE`), stores the rotated tokens before they are used, and a process
//! that waited finds them and refreshes nothing.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use futures::future::BoxFuture;
use inbox_core::{Grant, Refused, Secret, Tokens};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::config::TokenStore;
use crate::Error;

/// The environment variable holding the key: 64 hex digits.
pub const TOKEN_KEY_ENV: &str = "INBOX_TOKEN_KEY";

/// Refresh this long before a stored access token expires.
const SKEW: chrono::Duration = chrono::Duration::seconds(60);

/// The key tokens are encrypted with. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct TokenKey(Key);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(…)")
    }
}

impl TokenKey {
    /// A key from 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let bad = || Error::config(format!("{TOKEN_KEY_ENV} must be 64 hex digits (32 bytes)"));
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut key = [0u8; 32];
        for (byte, pair) in key.iter_mut().zip(text.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(TokenKey(Key::from(key)))
    }

    /// The key in [`TOKEN_KEY_ENV`], if it is set.
    pub fn from_env() -> Result<Option<Self>, Error> {
        match std::env::var(TOKEN_KEY_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::from_hex(&v).map(Some),
            _ => Ok(None),
        }
    }
}

/// What a row holds, once decrypted.
#[derive(Serialize, Deserialize)]
struct Sealed {
    access_token: Option<String>,
    refresh_token: String,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The fleet's [`TokenStore`]: table `inbox_tokens (account, sealed, updated_at)`.
#[derive(Clone)]
pub struct PostgresTokens {
    pool: PgPool,
    key: TokenKey,
}

impl std::fmt::Debug for PostgresTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTokens").finish_non_exhaustive()
    }
}

const TABLE: &str = "CREATE TABLE IF NOT EXISTS inbox_tokens (
    account TEXT PRIMARY KEY, sealed BYTEA NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now())";

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
        Ok(PostgresTokens { pool, key })
    }

    fn seal(&self, account: &str, tokens: &Tokens) -> Result<Vec<u8>, String> {
        let plain = serde_json::to_vec(&Sealed {
            access_token: tokens.access_token.as_ref().map(|t| t.expose().to_string()),
            refresh_token: tokens.refresh_token.expose().to_string(),
            expires_at: tokens.expires_at,
        })
        .map_err(|e| e.to_string())?;
        let cipher = ChaCha20Poly1305::new(&self.key.0);
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plain,
                    aad: account.as_bytes(),
                },
            )
            .map_err(|_| "the tokens could not be encrypted".to_string())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(&self, account: &str, sealed: &[u8]) -> Result<Tokens, String> {
        let unreadable = || {
            format!("the stored tokens of {account} cannot be decrypted (another {TOKEN_KEY_ENV}?)")
        };
        let (nonce, body) = sealed.split_at_checked(12).ok_or_else(unreadable)?;
        let cipher = ChaCha20Poly1305::new(&self.key.0);
        let plain = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: account.as_bytes(),
                },
            )
            .map_err(|_| unreadable())?;
        let s: Sealed = serde_json::from_slice(&plain).map_err(|_| unreadable())?;
        Ok(Tokens {
            access_token: s.access_token.map(Secret::new),
            refresh_token: Secret::new(s.refresh_token),
            expires_at: s.expires_at,
        })
    }

    /// The refresh under the row lock; `Err` is a failure of the store itself.
    async fn exclusive<'a>(
        &'a self,
        account: &'a str,
        held: Tokens,
        grant: Grant<'a>,
    ) -> Result<Result<Tokens, Refused>, String> {
        let db = |e: sqlx::Error| format!("the token store failed: {e}");
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO inbox_tokens (account, sealed) VALUES ($1, $2)
             ON CONFLICT (account) DO NOTHING",
        )
        .bind(account)
        .bind(self.seal(account, &held)?)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let sealed: Vec<u8> =
            sqlx::query_scalar("SELECT sealed FROM inbox_tokens WHERE account = $1 FOR UPDATE")
                .bind(account)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
        let stored = self.open(account, &sealed)?;
        let fresh = stored.access_token.is_some()
            && stored
                .expires_at
                .is_none_or(|at| at - SKEW > chrono::Utc::now());
        if stored.refresh_token != held.refresh_token && fresh {
            // Another process refreshed since this one read its tokens.
            tx.commit().await.map_err(db)?;
            return Ok(Ok(stored));
        }
        let granted = match grant(stored.refresh_token).await {
            Ok(t) => t,
            Err(refused) => {
                tx.rollback().await.ok();
                return Ok(Err(refused));
            }
        };
        sqlx::query("UPDATE inbox_tokens SET sealed = $2, updated_at = now() WHERE account = $1")
            .bind(account)
            .bind(self.seal(account, &granted)?)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if let Err(e) = tx.commit().await {
            // The grant spent the old refresh token: this process goes on with the new
            // one, which no other process will find.
            tracing::error!(account, error = %e, "rotated tokens could not be stored");
        }
        Ok(Ok(granted))
    }
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
