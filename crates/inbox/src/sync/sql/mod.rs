//! The one store implementation, on sqlx, for SQLite and PostgreSQL alike: the same
//! tables, the same statements and the same compare-and-set commit on both. What truly
//! differs (binding instants and lists, column types, how a write transaction begins,
//! where the schema version lives, the migration lock) is one hook each in
//! [`backend`].
//!
//! The schema (version 4; version 5 adds `accounts`, `connect_links` and `api_keys`, see
//! [`accounts`], [`links`] and [`keys`]; version 6 the HTTP API's `sends`, see [`sends`], and
//! its read side is [`read`]), written once for both (`{int}` is `INTEGER` on SQLite and
//! `BIGINT` on PostgreSQL; `{time}` an instant: integer microseconds since 1970 UTC on
//! SQLite, `TIMESTAMPTZ` on PostgreSQL):
//!
//! ```sql
//! CREATE TABLE checkpoints (account TEXT PRIMARY KEY, data TEXT NOT NULL,  -- small JSON
//!   version {int} NOT NULL DEFAULT 1, updated_at {time});
//! CREATE TABLE conversations (
//!   account TEXT NOT NULL, marketplace TEXT NOT NULL, id TEXT NOT NULL, ref TEXT NOT NULL,
//!   kind TEXT, status TEXT, unread {int}, unread_count {int}, created_at {time},
//!   last_activity_at {time}, last_author_role TEXT, vendor TEXT NOT NULL, json TEXT,
//!   listing TEXT, last_message_at {time}, synced_at {time}, updated_at {time} NOT NULL,
//!   mark_version {int} NOT NULL DEFAULT 0, PRIMARY KEY (account, id));
//! CREATE TABLE messages (
//!   account TEXT NOT NULL, marketplace TEXT NOT NULL, conversation TEXT NOT NULL,
//!   id TEXT NOT NULL, created_at {time} NOT NULL, author_role TEXT NOT NULL,
//!   author_id TEXT, author_name TEXT, text TEXT NOT NULL, status TEXT, read {int},
//!   state TEXT NOT NULL, vendor TEXT NOT NULL, json TEXT, updated_at {time} NOT NULL,
//!   PRIMARY KEY (account, conversation, id));
//! CREATE TABLE malformed (account, marketplace, conversation, listing, raw, error,
//!   first_seen {time}, last_seen {time}, PRIMARY KEY (account, conversation, raw));
//! CREATE TABLE journal (id {serial}, marketplace, account, received_at {time}, raw,
//!   dedup_key, state, target, UNIQUE (marketplace, dedup_key));
//! CREATE TABLE changes (seq {int} PRIMARY KEY, account, marketplace, event,
//!   conversation, message, at {time}, data TEXT);   -- one row per change
//! ```
//!
//! Indexes: conversations by `last_activity_at` (over all accounts and per account) and
//! by `updated_at`; messages by (`account`, `conversation`, `created_at`, `id`); pending
//! journal entries. `json` is the row's JSON form (the line `inbox --json` prints,
//! references in full) without `vendor`, which is the `vendor` column beside it. A row of
//! `changes` says what changed and where (its `data` is empty for a change of the mirror:
//! the row holds it). `seq` increases in commit order across the whole store: a commit
//! takes its numbers from the `inbox_counters` row last, just before it is made durable,
//! so no reader ever sees a later number committed before an earlier one.
//!
//! On SQLite the journal of push notifications is kept in a database file of its own
//! beside the mirror (`FILE-push`, same tables and schema version), so that journaling a
//! notification never waits for a commit of the mirror.

mod accounts;
pub mod backend;
mod events;
mod keys;
mod links;
mod read;
mod read_state;
mod schema;
mod sends;
mod webhooks;
mod write;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

pub use self::accounts::{AccountState, Imported, StoredAccount};
pub use self::backend::Backend;
#[cfg(feature = "postgres")]
pub use self::backend::Postgres;
#[cfg(feature = "sqlite")]
pub use self::backend::Sqlite;
use self::backend::{args, Dialect, Row};
pub use self::events::{check_event_types, event_types, EventFilter};
pub use self::keys::ApiKey;
pub use self::links::{ConnectLink, LinkKey};
pub use self::read::{
    ConversationFilter, ConversationKey, MessageKey, StoredConversation, StoredMessage, UnreadCount,
};
pub use self::sends::{Claim, SendRecord};
pub use self::webhooks::{Attempt, Backlog, DeliveryOutcome, Due, Replay, Webhook, WebhookChange};
use super::journal::{Entry, JournalState, NewEntry};
use super::store::row;
use super::store::{Commit, HandOn, MalformedKey, Store, StoreError, StoreErrorKind, Stored};
use super::{Checkpoint, Mark};

/// The sync engine's store on a SQL database: SQLite ([`SqliteStore`]) or PostgreSQL
/// ([`PostgresStore`]), one implementation. Clones share the pool.
pub struct SqlStore<B: Backend> {
    pool: B::Pool,
    /// Where the journal of notifications is written (SQLite: a file of its own).
    journal: B::Pool,
    /// Where the read side (the HTTP API's lists, the event log, key lookups) reads:
    /// on a SQLite file, read-only connections of their own, so that many readers run at
    /// once beside the one writer (WAL); else the pool.
    reads: B::Pool,
    /// Raised after each commit that numbered events (this process's; on PostgreSQL,
    /// any process's once [`SqlStore::listen_for_events`] runs).
    events: Arc<tokio::sync::watch::Sender<u64>>,
}

impl<B: Backend> Clone for SqlStore<B> {
    fn clone(&self) -> Self {
        SqlStore {
            pool: self.pool.clone(),
            journal: self.journal.clone(),
            reads: self.reads.clone(),
            events: self.events.clone(),
        }
    }
}

/// A new store's event signal.
fn event_signal() -> Arc<tokio::sync::watch::Sender<u64>> {
    Arc::new(tokio::sync::watch::channel(0).0)
}

impl<B: Backend> std::fmt::Debug for SqlStore<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the path nor the URL (which may hold a password).
        f.debug_struct("SqlStore").finish_non_exhaustive()
    }
}

/// The embedded store: SQLite (bundled; no system library needed), in WAL mode.
#[cfg(feature = "sqlite")]
pub type SqliteStore = SqlStore<Sqlite>;

/// The store on PostgreSQL, for many processes sharing one mirror.
#[cfg(feature = "postgres")]
pub type PostgresStore = SqlStore<Postgres>;

/// Statement parameters bound as one list at most (a larger list is split).
const LIST: usize = 1000;

impl<B: Dialect> SqlStore<B> {
    async fn conn(&self) -> Result<B::Pooled, StoreError> {
        B::acquire(&self.pool).await
    }

    /// Changes (to an unspecified count) when events may have been committed: a reader of
    /// the log waits on it instead of polling.
    pub fn event_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.events.subscribe()
    }

    /// Raises the event signal (after a commit that numbered events).
    fn committed(&self) {
        self.events.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A connection of the read side's pool.
    async fn read_conn(&self) -> Result<B::Pooled, StoreError> {
        B::acquire(&self.reads).await
    }

    /// How many messages are stored (for an account, or all).
    pub async fn message_count(&self, account: Option<&str>) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let rows = B::fetch(
            &mut conn,
            "SELECT COUNT(*) FROM messages WHERE $1 IS NULL OR account = $1".into(),
            args![account],
        )
        .await?;
        let n = first_int(&rows)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The highest change number committed (0: none yet).
    pub async fn last_change(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let rows = B::fetch(
            &mut conn,
            "SELECT value FROM inbox_counters WHERE name = 'changes'".into(),
            vec![],
        )
        .await?;
        Ok(row::version(first_int(&rows)?))
    }

    /// Settles the pending entries of `account` for `target` numbered up to `newest`.
    pub async fn journal_settle_target(
        &self,
        account: &str,
        target: &str,
        newest: i64,
        state: JournalState,
    ) -> Result<(), StoreError> {
        let mut conn = B::acquire(&self.journal).await?;
        B::execute(
            &mut conn,
            "UPDATE journal SET state = $4 WHERE account = $1 AND target = $2 AND id <= $3
               AND state = 'pending'"
                .into(),
            args![account, target, newest, state.as_str()],
        )
        .await?;
        Ok(())
    }
}

fn first_int<R: Row>(rows: &[R]) -> Result<i64, StoreError> {
    match rows.first() {
        Some(r) => Ok(r.int(0)?.unwrap_or(0)),
        None => Ok(0),
    }
}

#[cfg(feature = "sqlite")]
mod open_sqlite {
    use std::path::Path;
    use std::str::FromStr;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    use super::*;

    /// Readers at once on one SQLite file (writers take turns).
    const CONNECTIONS: u32 = 1;

    impl SqlStore<Sqlite> {
        /// Opens (creating when missing) the database at `path`, and the journal of
        /// notifications beside it (`path` with `-push` appended), brought to the
        /// current schema. Safe against other processes opening them at the same time.
        pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
            let path = path.as_ref();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::new(
                        StoreErrorKind::Unavailable,
                        format!("creating {}", dir.display()),
                    )
                    .with_source(e)
                })?;
            }
            let mut push = path.as_os_str().to_owned();
            push.push("-push");
            let pool = file_pool(path).await?;
            schema::migrate::<Sqlite>(&pool).await?;
            let journal = file_pool(Path::new(&push)).await?;
            schema::migrate::<Sqlite>(&journal).await?;
            move_journal(&pool, &journal).await?;
            let reads = read_pool(path).await?;
            Ok(SqlStore {
                pool,
                journal,
                reads,
                events: event_signal(),
            })
        }

        /// A store in memory (tests, examples): one connection, gone when dropped.
        pub async fn in_memory() -> Result<Self, StoreError> {
            let pool = memory_pool().await?;
            schema::migrate::<Sqlite>(&pool).await?;
            let journal = memory_pool().await?;
            schema::migrate::<Sqlite>(&journal).await?;
            Ok(SqlStore {
                reads: pool.clone(),
                pool,
                journal,
                events: event_signal(),
            })
        }
    }

    async fn file_pool(path: &Path) -> Result<sqlx::SqlitePool, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(30));
        // Switching a new database to WAL answers "busy" at once while another process
        // does the same (SQLite does not wait there): try again for a while.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let opened = SqlitePoolOptions::new()
                .max_connections(CONNECTIONS)
                .acquire_timeout(std::time::Duration::from_secs(60))
                .connect_with(options.clone())
                .await
                .map_err(StoreError::from);
            match opened {
                Err(e)
                    if e.kind() == StoreErrorKind::Unavailable
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                other => return other,
            }
        }
    }

    /// Read-only connections at once on one SQLite file, for the read side.
    const READERS: u32 = 4;

    /// The read side's pool on the file at `path` (its schema already made).
    async fn read_pool(path: &Path) -> Result<sqlx::SqlitePool, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .busy_timeout(std::time::Duration::from_secs(30));
        Ok(SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(std::time::Duration::from_secs(60))
            .connect_lazy_with(options))
    }

    async fn memory_pool() -> Result<sqlx::SqlitePool, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?;
        Ok(SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?)
    }

    /// Journal entries of a database migrated from version 3 (where the journal was a
    /// table of the mirror's file) move to the journal's file, keeping their numbers.
    async fn move_journal(
        pool: &sqlx::SqlitePool,
        journal: &sqlx::SqlitePool,
    ) -> Result<(), StoreError> {
        let mut conn = Sqlite::acquire(pool).await?;
        let rows = Sqlite::fetch(
            &mut conn,
            "SELECT id, marketplace, account, received_at, raw, dedup_key, state, target
             FROM journal ORDER BY id"
                .into(),
            vec![],
        )
        .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = Sqlite::begin(journal).await?;
        for r in &rows {
            Sqlite::execute(
                &mut tx,
                "INSERT INTO journal (id, marketplace, account, received_at, raw, dedup_key,
                   state, target) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT DO NOTHING"
                    .into(),
                args![
                    r.int(0)?,
                    r.text(1)?,
                    r.text(2)?,
                    r.time(3)?,
                    r.text(4)?,
                    r.text(5)?,
                    r.text(6)?,
                    r.text(7)?
                ],
            )
            .await?;
        }
        Sqlite::commit(tx).await?;
        Sqlite::execute(&mut conn, "DELETE FROM journal".into(), vec![]).await?;
        Ok(())
    }
}

#[cfg(feature = "postgres")]
mod open_postgres {
    use std::str::FromStr;

    use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
    use sqlx::Connection;

    use super::*;

    /// How long connecting may take before the server counts as unavailable.
    const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

    impl SqlStore<Postgres> {
        /// Connects to `url` (`postgres://…` or `postgresql://…`) with a pool of at most
        /// `connections`, and brings the database to the current schema.
        pub async fn connect(url: &str, connections: u32) -> Result<Self, StoreError> {
            // The URL may carry a password: no message names any part of it.
            let options = PgConnectOptions::from_str(url).map_err(|e| {
                StoreError::new(StoreErrorKind::Other, "the PostgreSQL URL is not valid")
                    .with_source(e)
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
            schema::migrate::<Postgres>(&pool).await?;
            Ok(SqlStore {
                journal: pool.clone(),
                reads: pool.clone(),
                pool,
                events: event_signal(),
            })
        }

        /// Listens (`LISTEN inbox_events`) for the events any process commits and raises
        /// this store's [`event_signal`](SqlStore::event_signal) for each, until the
        /// returned task is aborted, on a connection of its own beside the pool; a lost
        /// connection is opened again.
        pub async fn listen_for_events(&self) -> Result<tokio::task::JoinHandle<()>, StoreError> {
            // A listener keeps its connection for good: one of its own, never one of the
            // pool the work is sized for.
            let own = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(self.pool.connect_options().as_ref().clone())
                .await?;
            let mut listener = sqlx::postgres::PgListener::connect_with(&own).await?;
            listener.listen("inbox_events").await?;
            let store = self.clone();
            Ok(tokio::spawn(async move {
                loop {
                    // `Ok(None)`: the connection was lost and opened again, so
                    // notifications may have been missed: readers look again anyway.
                    if listener.try_recv().await.is_err() {
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                    store.committed();
                }
            }))
        }

        /// The pool, to share with other work on the same database.
        pub fn pool(&self) -> &PgPool {
            &self.pool
        }

        /// Journals a notification and adds the graphile_worker job that processes it in
        /// one transaction (`graphile_worker.add_job(task, payload, job_key => key,
        /// job_key_mode => 'replace')`): an entry is never kept without its job, nor a
        /// job added for a redelivery. Its number, or `None` for a redelivery.
        pub async fn journal_add_with_job(
            &self,
            entry: &NewEntry,
            task: &str,
            payload: &serde_json::Value,
            job_key: &str,
        ) -> Result<Option<i64>, StoreError> {
            let mut tx = Postgres::begin(&self.pool).await?;
            let id = journal_insert::<Postgres>(&mut tx, entry).await?;
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
            Postgres::commit(tx).await?;
            Ok(id)
        }
    }
}

/// Journals `entry` (with other work of the same transaction, such as the job that
/// processes it); its number, or `None` for a redelivery.
async fn journal_insert<B: Dialect>(
    conn: &mut B::Conn,
    entry: &NewEntry,
) -> Result<Option<i64>, StoreError> {
    let rows = B::fetch(
        conn,
        "INSERT INTO journal (marketplace, account, received_at, raw, dedup_key, state, target)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (marketplace, dedup_key) DO NOTHING
         RETURNING id"
            .into(),
        args![
            entry.marketplace.as_str(),
            entry.account.as_deref(),
            entry.received_at,
            entry.raw.as_str(),
            entry.dedup_key.as_str(),
            entry.state.as_str(),
            entry.target.as_deref(),
        ],
    )
    .await?;
    match rows.first() {
        Some(r) => Ok(r.int(0)?),
        None => Ok(None),
    }
}

impl<B: Dialect> Store for SqlStore<B> {
    fn checkpoint<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Result<Checkpoint, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let rows = B::fetch(
                &mut conn,
                "SELECT data, version FROM checkpoints WHERE account = $1".into(),
                args![account],
            )
            .await?;
            let row = match rows.first() {
                Some(r) => Some((r.text(0)?.unwrap_or_default(), r.int(1)?.unwrap_or(0))),
                None => None,
            };
            row::checkpoint(account, row)
        })
    }

    fn marks<'a>(
        &'a self,
        account: &'a str,
        conversations: Vec<String>,
    ) -> BoxFuture<'a, Result<HashMap<String, Mark>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let sql = format!(
                "SELECT id, listing, last_message_at, mark_version, synced_at FROM conversations
                 WHERE account = $1 AND mark_version > 0 AND {}",
                B::in_list("id", "$2")
            );
            let mut marks = HashMap::with_capacity(conversations.len());
            for chunk in conversations.chunks(LIST) {
                let rows = B::fetch(&mut conn, sql.clone(), args![account, chunk.to_vec()]).await?;
                for r in rows {
                    let mark = Mark {
                        listing: r.text(1)?,
                        last_message_at: r.time(2)?,
                        version: row::version(r.int(3)?.unwrap_or(0)),
                        synced_at: r.time(4)?,
                    };
                    marks.insert(r.text(0)?.unwrap_or_default(), mark);
                }
            }
            Ok(marks)
        })
    }

    fn message_states<'a>(
        &'a self,
        account: &'a str,
        conversation: &'a str,
        messages: Vec<String>,
    ) -> BoxFuture<'a, Result<HashMap<String, Stored>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let sql = format!(
                "SELECT id, state FROM messages WHERE account = $1 AND conversation = $2 AND {}",
                B::in_list("id", "$3")
            );
            let mut states = HashMap::with_capacity(messages.len());
            for chunk in messages.chunks(LIST) {
                let rows = B::fetch(
                    &mut conn,
                    sql.clone(),
                    args![account, conversation, chunk.to_vec()],
                )
                .await?;
                for r in rows {
                    let stored = Stored {
                        state: r.text(1)?.unwrap_or_default(),
                    };
                    states.insert(r.text(0)?.unwrap_or_default(), stored);
                }
            }
            Ok(states)
        })
    }

    fn malformed<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<HashSet<MalformedKey>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let rows = B::fetch(
                &mut conn,
                "SELECT conversation, raw FROM malformed WHERE account = $1".into(),
                args![account],
            )
            .await?;
            let mut keys = HashSet::with_capacity(rows.len());
            for r in rows {
                keys.insert(MalformedKey {
                    conversation: r.text(0)?.unwrap_or_default(),
                    raw: r.text(1)?.unwrap_or_default(),
                });
            }
            Ok(keys)
        })
    }

    fn commit<'a>(
        &'a self,
        mut commit: Commit,
        hand_on: Option<HandOn<'a>>,
    ) -> BoxFuture<'a, Result<Commit, StoreError>> {
        Box::pin(async move {
            let mut tx = B::begin(&self.pool).await?;
            write::write::<B>(&mut tx, &mut commit).await?;
            super::store::hand_on(hand_on, &commit.changes)?;
            write::number_changes::<B>(&mut tx, &commit).await?;
            B::commit(tx).await?;
            if !commit.changes.is_empty() {
                self.committed();
            }
            Ok(commit)
        })
    }

    fn journal_add<'a>(
        &'a self,
        entry: NewEntry,
    ) -> BoxFuture<'a, Result<Option<i64>, StoreError>> {
        Box::pin(async move {
            let mut conn = B::acquire(&self.journal).await?;
            journal_insert::<B>(&mut conn, &entry).await
        })
    }

    fn journal_pending<'a>(&'a self) -> BoxFuture<'a, Result<Vec<Entry>, StoreError>> {
        Box::pin(async move {
            let mut conn = B::acquire(&self.journal).await?;
            let rows = B::fetch(
                &mut conn,
                "SELECT id, marketplace, account, received_at, raw, dedup_key, target FROM journal
                 WHERE state = 'pending' ORDER BY id"
                    .into(),
                vec![],
            )
            .await?;
            let mut entries = Vec::with_capacity(rows.len());
            for r in rows {
                entries.push(row::journal_entry(
                    r.int(0)?.unwrap_or(0),
                    &r.text(1)?.unwrap_or_default(),
                    r.text(2)?,
                    r.time(3)?,
                    r.text(4)?.unwrap_or_default(),
                    (r.text(5)?.unwrap_or_default(), r.text(6)?),
                )?);
            }
            Ok(entries)
        })
    }

    fn journal_settle<'a>(
        &'a self,
        ids: Vec<i64>,
        state: JournalState,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut conn = B::acquire(&self.journal).await?;
            let sql = format!(
                "UPDATE journal SET state = $2 WHERE {}",
                B::in_list("id", "$1")
            );
            for chunk in ids.chunks(LIST) {
                B::execute(
                    &mut conn,
                    sql.clone(),
                    args![chunk.to_vec(), state.as_str()],
                )
                .await?;
            }
            Ok(())
        })
    }

    fn journal_prune<'a>(
        &'a self,
        before: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut conn = B::acquire(&self.journal).await?;
            B::execute(
                &mut conn,
                "DELETE FROM journal WHERE state <> 'pending' AND received_at < $1".into(),
                args![before],
            )
            .await
        })
    }
}
