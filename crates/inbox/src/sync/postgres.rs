//! The [`Store`] on PostgreSQL (sqlx), for many processes sharing one mirror.
//!
//! The tables and columns are the SQLite store's (see [`super::SqliteStore`]), with
//! `BIGINT` for its integers; the schema version is kept in `inbox_schema`. Migrations
//! run under a transaction-scoped advisory lock, so processes starting at once wait for
//! the first. A commit is one transaction whose compare-and-set statements (the
//! checkpoint's and each mark's version) block on a concurrent commit of the same row,
//! then find its new version and write nothing: the loser gets
//! [`StoreErrorKind::Conflict`].

use std::collections::{HashMap, HashSet};

use futures::future::BoxFuture;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres, Row, Transaction};

use super::journal::{Entry, JournalState, NewEntry};
use super::store::row::{self, corrupt, parse_time, stored, time, version};
use super::store::{Commit, HandOn, MalformedKey, Store, StoreError, StoreErrorKind};
use super::{message_state, Change, Checkpoint, Mark};
use crate::Message;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let kind = match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreErrorKind::Unavailable,
            // Serialization failures and deadlocks: the same work may pass again.
            sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("40001" | "40P01")) => {
                StoreErrorKind::Unavailable
            }
            sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => StoreErrorKind::Corrupt,
            _ => StoreErrorKind::Other,
        };
        StoreError::new(kind, e.to_string()).with_source(e)
    }
}

/// The PostgreSQL store: a connection pool; clones share it.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

/// How long connecting may take before the server counts as unavailable.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The schema version this build writes (the SQLite store's numbering).
const SCHEMA: i64 = 3;

/// Taken for the length of a migration (an arbitrary constant: "inbox" in ASCII).
const MIGRATION_LOCK: i64 = 0x0069_6e62_6f78;

const V2: &str = "
    CREATE TABLE IF NOT EXISTS checkpoints (account TEXT PRIMARY KEY, data TEXT NOT NULL,
      version BIGINT NOT NULL DEFAULT 1);
    CREATE TABLE IF NOT EXISTS conversations (
      account TEXT NOT NULL, marketplace TEXT NOT NULL, id TEXT NOT NULL, ref TEXT NOT NULL,
      kind TEXT, status TEXT, unread BIGINT, last_activity_at TEXT, vendor TEXT NOT NULL,
      listing TEXT, last_message_at TEXT, mark_version BIGINT NOT NULL DEFAULT 0,
      PRIMARY KEY (account, id));
    CREATE TABLE IF NOT EXISTS messages (
      account TEXT NOT NULL, marketplace TEXT NOT NULL, conversation TEXT NOT NULL,
      id TEXT NOT NULL, created_at TEXT NOT NULL, author_role TEXT NOT NULL, author TEXT,
      text TEXT NOT NULL, status TEXT, read BIGINT, state TEXT NOT NULL, vendor TEXT NOT NULL,
      PRIMARY KEY (account, conversation, id));
    CREATE TABLE IF NOT EXISTS malformed (
      account TEXT NOT NULL, marketplace TEXT NOT NULL, conversation TEXT NOT NULL,
      listing TEXT NOT NULL, raw TEXT NOT NULL, error TEXT NOT NULL,
      first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
      PRIMARY KEY (account, conversation, raw));
";

/// The journal of push notifications: the SQLite store's table, its number a `BIGSERIAL`.
const V3: &str = "
    CREATE TABLE IF NOT EXISTS journal (
      id BIGSERIAL PRIMARY KEY, marketplace TEXT NOT NULL, account TEXT,
      received_at TEXT NOT NULL, raw TEXT NOT NULL, dedup_key TEXT NOT NULL,
      state TEXT NOT NULL, target TEXT, UNIQUE (marketplace, dedup_key));
    CREATE INDEX IF NOT EXISTS journal_pending ON journal (state, id);
";

impl PostgresStore {
    /// Connects to `url` (`postgres://…` or `postgresql://…`) with a pool of at most
    /// `connections`, and brings the database to the current schema.
    pub async fn connect(url: &str, connections: u32) -> Result<Self, StoreError> {
        // The URL may carry a password: no message names any part of it.
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::new(StoreErrorKind::Other, "the PostgreSQL URL is not valid").with_source(e)
        })?;
        let unavailable = |e: sqlx::Error| {
            StoreError::new(StoreErrorKind::Unavailable, "cannot connect to PostgreSQL")
                .with_source(e)
        };
        // One connection first, so that a server that is not there fails at once
        // instead of after the pool's retries.
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| {
                StoreError::new(
                    StoreErrorKind::Unavailable,
                    "PostgreSQL did not answer within 10 s",
                )
            })?
            .map_err(unavailable)?;
        probe.close().await.ok();
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(1))
            .acquire_timeout(std::time::Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        Self::with_pool(pool).await
    }

    /// A store on an existing pool (one shared with other users of the database),
    /// brought to the current schema.
    pub async fn with_pool(pool: PgPool) -> Result<Self, StoreError> {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::raw_sql("CREATE TABLE IF NOT EXISTS inbox_schema (version BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await?;
        let version: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM inbox_schema")
            .fetch_one(&mut *tx)
            .await?;
        let version = version.unwrap_or(0);
        if version > SCHEMA {
            return Err(StoreError::new(
                StoreErrorKind::Corrupt,
                format!(
                    "the database has schema version {version}; this build knows up to {SCHEMA}"
                ),
            ));
        }
        if version < SCHEMA {
            if version < 2 {
                sqlx::raw_sql(V2).execute(&mut *tx).await?;
            }
            sqlx::raw_sql(V3).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM inbox_schema")
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO inbox_schema (version) VALUES ($1)")
                .bind(SCHEMA)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(PostgresStore { pool })
    }

    /// Journals a notification and adds the graphile_worker job that processes it in one
    /// transaction (`graphile_worker.add_job(task, payload, job_key => key,
    /// job_key_mode => 'replace')`): an entry is never kept without its job, nor a job
    /// added for a redelivery. Its number, or `None` for a redelivery.
    pub async fn journal_add_with_job(
        &self,
        entry: &NewEntry,
        task: &str,
        payload: &serde_json::Value,
        job_key: &str,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id = journal_insert(&mut tx, entry).await?;
        if id.is_some() {
            sqlx::query(
                "SELECT graphile_worker.add_job($1::text, $2::text::json, job_key => $3::text,
                   max_attempts => 5, job_key_mode => 'replace')",
            )
            .bind(task)
            .bind(payload.to_string())
            .bind(job_key)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Settles the pending entries of `account` for `target` numbered up to `newest`.
    pub async fn journal_settle_target(
        &self,
        account: &str,
        target: &str,
        newest: i64,
        state: JournalState,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE journal SET state = $4 WHERE account = $1 AND target = $2 AND id <= $3
               AND state = 'pending'",
        )
        .bind(account)
        .bind(target)
        .bind(newest)
        .bind(state.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The pool, to share with other work on the same database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// How many messages are stored (for an account, or all).
    pub async fn message_count(&self, account: Option<&str>) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE $1::TEXT IS NULL OR account = $1",
        )
        .bind(account)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

impl Store for PostgresStore {
    fn checkpoint<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Result<Checkpoint, StoreError>> {
        Box::pin(async move {
            let row: Option<(String, i64)> =
                sqlx::query_as("SELECT data, version FROM checkpoints WHERE account = $1")
                    .bind(account)
                    .fetch_optional(&self.pool)
                    .await?;
            row::checkpoint(account, row)
        })
    }

    fn marks<'a>(
        &'a self,
        account: &'a str,
        conversations: Vec<String>,
    ) -> BoxFuture<'a, Result<HashMap<String, Mark>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT id, listing, last_message_at, mark_version FROM conversations
                 WHERE account = $1 AND mark_version > 0 AND id = ANY($2)",
            )
            .bind(account)
            .bind(&conversations)
            .fetch_all(&self.pool)
            .await?;
            let mut marks = HashMap::with_capacity(rows.len());
            for r in rows {
                let mark = Mark {
                    listing: r.try_get(1)?,
                    last_message_at: parse_time(r.try_get(2)?),
                    version: version(r.try_get(3)?),
                };
                marks.insert(r.try_get(0)?, mark);
            }
            Ok(marks)
        })
    }

    fn message_states<'a>(
        &'a self,
        account: &'a str,
        conversation: &'a str,
        messages: Vec<String>,
    ) -> BoxFuture<'a, Result<HashMap<String, String>, StoreError>> {
        Box::pin(async move {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT id, state FROM messages
                 WHERE account = $1 AND conversation = $2 AND id = ANY($3)",
            )
            .bind(account)
            .bind(conversation)
            .bind(&messages)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().collect())
        })
    }

    fn malformed<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<HashSet<MalformedKey>, StoreError>> {
        Box::pin(async move {
            let rows: Vec<(String, String)> =
                sqlx::query_as("SELECT conversation, raw FROM malformed WHERE account = $1")
                    .bind(account)
                    .fetch_all(&self.pool)
                    .await?;
            Ok(rows
                .into_iter()
                .map(|(conversation, raw)| MalformedKey { conversation, raw })
                .collect())
        })
    }

    fn commit<'a>(
        &'a self,
        commit: Commit,
        hand_on: Option<HandOn>,
    ) -> BoxFuture<'a, Result<Commit, StoreError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            write(&mut tx, &commit).await?;
            super::store::hand_on(hand_on, &commit.changes)?;
            tx.commit().await?;
            Ok(commit)
        })
    }

    fn journal_add<'a>(
        &'a self,
        entry: NewEntry,
    ) -> BoxFuture<'a, Result<Option<i64>, StoreError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let id = journal_insert(&mut tx, &entry).await?;
            tx.commit().await?;
            Ok(id)
        })
    }

    fn journal_pending<'a>(&'a self) -> BoxFuture<'a, Result<Vec<Entry>, StoreError>> {
        Box::pin(async move {
            #[allow(clippy::type_complexity)]
            let rows: Vec<(
                i64,
                String,
                Option<String>,
                String,
                String,
                String,
                Option<String>,
            )> = sqlx::query_as(
                "SELECT id, marketplace, account, received_at, raw, dedup_key, target FROM journal
                 WHERE state = 'pending' ORDER BY id",
            )
            .fetch_all(&self.pool)
            .await?;
            rows.into_iter()
                .map(|(id, m, account, at, raw, key, target)| {
                    row::journal_entry(id, &m, account, at, raw, (key, target))
                })
                .collect()
        })
    }

    fn journal_settle<'a>(
        &'a self,
        ids: Vec<i64>,
        state: JournalState,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query("UPDATE journal SET state = $2 WHERE id = ANY($1)")
                .bind(ids)
                .bind(state.as_str())
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn journal_prune<'a>(
        &'a self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let done =
                sqlx::query("DELETE FROM journal WHERE state <> 'pending' AND received_at < $1")
                    .bind(time(before))
                    .execute(&self.pool)
                    .await?;
            Ok(done.rows_affected())
        })
    }
}

/// Journals `entry` inside `tx` (with other work of the same transaction, such as the
/// job that processes it); its number, or `None` for a redelivery.
pub(crate) async fn journal_insert(
    tx: &mut Transaction<'_, Postgres>,
    entry: &NewEntry,
) -> Result<Option<i64>, StoreError> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO journal (marketplace, account, received_at, raw, dedup_key, state, target)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (marketplace, dedup_key) DO NOTHING
         RETURNING id",
    )
    .bind(entry.marketplace.as_str())
    .bind(entry.account.as_deref())
    .bind(time(entry.received_at))
    .bind(&entry.raw)
    .bind(&entry.dedup_key)
    .bind(entry.state.as_str())
    .bind(entry.target.as_deref())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(id)
}

/// Writes a commit inside `tx`, checking every version first.
async fn write(tx: &mut Transaction<'_, Postgres>, commit: &Commit) -> Result<(), StoreError> {
    let account = commit.account.as_str();
    if let Some(checkpoint) = &commit.checkpoint {
        let data = serde_json::to_string(checkpoint).map_err(|e| corrupt(account, e))?;
        let written = match checkpoint.version {
            0 => {
                sqlx::query(
                    "INSERT INTO checkpoints (account, data, version) VALUES ($1, $2, 1)
                 ON CONFLICT (account) DO NOTHING",
                )
                .bind(account)
                .bind(&data)
                .execute(&mut **tx)
                .await?
            }
            v => {
                sqlx::query(
                    "UPDATE checkpoints SET data = $2, version = version + 1
                 WHERE account = $1 AND version = $3",
                )
                .bind(account)
                .bind(&data)
                .bind(stored(v))
                .execute(&mut **tx)
                .await?
            }
        };
        if written.rows_affected() != 1 {
            return Err(StoreError::synced_since(account));
        }
    }
    let conversations = commit.conversations();
    for change in &commit.marks {
        let id = change.reference.id.as_str();
        let expected = stored(change.expected);
        let mark = &change.mark;
        let written = match conversations.get(id) {
            Some(c) => {
                sqlx::query(
                    "INSERT INTO conversations (account, marketplace, id, ref, kind, status, unread,
                       last_activity_at, vendor, listing, last_message_at, mark_version)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1)
                     ON CONFLICT (account, id) DO UPDATE SET kind = excluded.kind,
                       status = excluded.status, unread = excluded.unread,
                       last_activity_at = excluded.last_activity_at, vendor = excluded.vendor,
                       listing = excluded.listing, last_message_at = excluded.last_message_at,
                       mark_version = conversations.mark_version + 1
                     WHERE conversations.mark_version = $12",
                )
                .bind(account)
                .bind(c.reference.marketplace.as_str())
                .bind(id)
                .bind(c.reference.to_string())
                .bind(serde_json::to_string(&c.kind).ok())
                .bind(c.status.as_ref().and_then(|s| serde_json::to_string(s).ok()))
                .bind(c.unread.map(|u| i64::from(u.is_unread())))
                .bind(c.last_activity_at.map(time))
                .bind(c.vendor.as_str())
                .bind(&mark.listing)
                .bind(mark.last_message_at.map(time))
                .bind(expected)
                .execute(&mut **tx)
                .await?
            }
            None => {
                sqlx::query(
                    "INSERT INTO conversations (account, marketplace, id, ref, vendor, last_message_at,
                       mark_version)
                     VALUES ($1, $2, $3, $4, 'null', $5, 1)
                     ON CONFLICT (account, id) DO UPDATE SET last_message_at = excluded.last_message_at,
                       mark_version = conversations.mark_version + 1
                     WHERE conversations.mark_version = $6",
                )
                .bind(account)
                .bind(change.reference.marketplace.as_str())
                .bind(id)
                .bind(change.reference.to_string())
                .bind(mark.last_message_at.map(time))
                .bind(expected)
                .execute(&mut **tx)
                .await?
            }
        };
        if written.rows_affected() != 1 {
            return Err(StoreError::synced_since(&change.reference));
        }
    }
    let at = time(commit.at);
    for change in &commit.changes {
        match change {
            Change::Message(_, m) => insert_message(tx, account, m).await?,
            Change::Malformed(bad) => {
                let key = bad.key();
                sqlx::query(
                    "INSERT INTO malformed (account, marketplace, conversation, listing, raw, error,
                       first_seen, last_seen)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
                     ON CONFLICT (account, conversation, raw) DO UPDATE SET error = excluded.error,
                       last_seen = excluded.last_seen",
                )
                .bind(account)
                .bind(bad.marketplace.as_str())
                .bind(&key.conversation)
                .bind(bad.listed.as_str())
                .bind(&key.raw)
                .bind(&bad.error)
                .bind(&at)
                .execute(&mut **tx)
                .await?;
            }
            Change::Conversation(..) => {}
        }
    }
    for rescan in &commit.rescans {
        let seen: Vec<&str> = rescan.seen.iter().map(String::as_str).collect();
        sqlx::query(
            "UPDATE malformed SET last_seen = $4
             WHERE account = $1 AND conversation = $2 AND raw = ANY($3)",
        )
        .bind(account)
        .bind(&rescan.conversation)
        .bind(&seen)
        .bind(&at)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "DELETE FROM malformed
             WHERE account = $1 AND conversation = $2 AND NOT (raw = ANY($3))",
        )
        .bind(account)
        .bind(&rescan.conversation)
        .bind(&seen)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn insert_message(
    tx: &mut Transaction<'_, Postgres>,
    account: &str,
    m: &Message,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO messages (account, marketplace, conversation, id, created_at, author_role, author, text, status, read, state, vendor)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (account, conversation, id) DO UPDATE SET status = excluded.status,
           read = excluded.read, state = excluded.state, vendor = excluded.vendor",
    )
    .bind(account)
    .bind(m.conversation.marketplace.as_str())
    .bind(&m.conversation.id)
    .bind(&m.id)
    .bind(time(m.created_at))
    .bind(m.author.role.as_str())
    .bind(m.author.name.clone().or(m.author.id.clone()))
    .bind(&m.text)
    .bind(&m.status)
    .bind(m.read.map(i64::from))
    .bind(message_state(m))
    .bind(m.vendor.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
