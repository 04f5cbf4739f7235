//! The embedded [`Store`]: SQLite, bundled (no system library needed).
//!
//! The schema (version 3; `PRAGMA user_version`), readable with `sqlite3`:
//!
//! ```sql
//! CREATE TABLE checkpoints (account TEXT PRIMARY KEY, data TEXT NOT NULL,  -- small JSON
//!   version INTEGER NOT NULL DEFAULT 1);
//! CREATE TABLE conversations (
//!   account TEXT NOT NULL, marketplace TEXT NOT NULL, id TEXT NOT NULL, ref TEXT NOT NULL,
//!   kind TEXT, status TEXT, unread INTEGER, last_activity_at TEXT, vendor TEXT NOT NULL,
//!   listing TEXT, last_message_at TEXT, mark_version INTEGER NOT NULL DEFAULT 0,
//!   PRIMARY KEY (account, id));
//! CREATE TABLE messages (
//!   account TEXT NOT NULL, marketplace TEXT NOT NULL, conversation TEXT NOT NULL,
//!   id TEXT NOT NULL, created_at TEXT NOT NULL, author_role TEXT NOT NULL, author TEXT,
//!   text TEXT NOT NULL, status TEXT, read INTEGER, state TEXT NOT NULL, vendor TEXT NOT NULL,
//!   PRIMARY KEY (account, conversation, id));
//! CREATE TABLE malformed (
//!   account TEXT NOT NULL, marketplace TEXT NOT NULL, conversation TEXT NOT NULL,
//!   listing TEXT NOT NULL, raw TEXT NOT NULL, error TEXT NOT NULL,
//!   first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
//!   PRIMARY KEY (account, conversation, raw));
//! CREATE TABLE journal (                  -- push notifications, see sync::journal
//!   id INTEGER PRIMARY KEY AUTOINCREMENT, marketplace TEXT NOT NULL, account TEXT,
//!   received_at TEXT NOT NULL, raw TEXT NOT NULL, dedup_key TEXT NOT NULL,
//!   state TEXT NOT NULL, target TEXT, UNIQUE (marketplace, dedup_key));
//! ```
//!
//! `conversation` is the conversation's id (empty in `malformed` for an element of the
//! conversation listing); instants are RFC 3339 in UTC; `vendor` is the vendor's object
//! as received (`null` for a conversation only a targeted sync has read); `listing` and
//! `last_message_at` are the conversation's mark, `mark_version` its compare-and-set
//! version, `checkpoints.version` the account's. Version 1 kept every mark inside the
//! checkpoint's JSON; opening such a database moves them into their rows.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};

use super::journal::{Entry, JournalState, NewEntry};
use super::store::row::{self, corrupt, parse_time, stored, time, version};
use super::store::{Commit, HandOn, MalformedKey, Store, StoreError, StoreErrorKind};
use super::{message_state, Change, Checkpoint, Mark};
use crate::Message;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let kind = match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StoreErrorKind::Unavailable
            }
            Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
                StoreErrorKind::Corrupt
            }
            _ => StoreErrorKind::Other,
        };
        StoreError::new(kind, e.to_string()).with_source(e)
    }
}

/// The SQLite store (bundled SQLite; no system library needed). Its blocking work runs
/// on tokio's blocking threads; clones of one store share its connection.
#[derive(Clone)]
pub struct SqliteStore {
    db: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

const V1: &str = "
    CREATE TABLE checkpoints (account TEXT PRIMARY KEY, data TEXT NOT NULL);
    CREATE TABLE conversations (
      account TEXT NOT NULL, marketplace TEXT NOT NULL, id TEXT NOT NULL, ref TEXT NOT NULL,
      kind TEXT, status TEXT, unread INTEGER, last_activity_at TEXT, vendor TEXT NOT NULL,
      PRIMARY KEY (account, id));
    CREATE TABLE messages (
      account TEXT NOT NULL, marketplace TEXT NOT NULL, conversation TEXT NOT NULL,
      id TEXT NOT NULL, created_at TEXT NOT NULL, author_role TEXT NOT NULL, author TEXT,
      text TEXT NOT NULL, status TEXT, read INTEGER, state TEXT NOT NULL, vendor TEXT NOT NULL,
      PRIMARY KEY (account, conversation, id));
";

const V2: &str = "
    ALTER TABLE checkpoints ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE conversations ADD COLUMN listing TEXT;
    ALTER TABLE conversations ADD COLUMN last_message_at TEXT;
    ALTER TABLE conversations ADD COLUMN mark_version INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE malformed (
      account TEXT NOT NULL, marketplace TEXT NOT NULL, conversation TEXT NOT NULL,
      listing TEXT NOT NULL, raw TEXT NOT NULL, error TEXT NOT NULL,
      first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
      PRIMARY KEY (account, conversation, raw));
";

/// The journal of push notifications (the same table on PostgreSQL).
pub(crate) const V3: &str = "
    CREATE TABLE journal (
      id INTEGER PRIMARY KEY AUTOINCREMENT, marketplace TEXT NOT NULL, account TEXT,
      received_at TEXT NOT NULL, raw TEXT NOT NULL, dedup_key TEXT NOT NULL,
      state TEXT NOT NULL, target TEXT, UNIQUE (marketplace, dedup_key));
    CREATE INDEX journal_pending ON journal (state, id);
";

/// The schema version this build writes.
const SCHEMA: i64 = 3;

impl SqliteStore {
    /// Opens (creating when missing) the database at `path`, brought to the current
    /// schema. Safe against other processes opening it at the same time.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
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
        Self::migrate(Connection::open(path)?)
    }

    /// A store in memory (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::migrate(Connection::open_in_memory()?)
    }

    fn migrate(mut db: Connection) -> Result<Self, StoreError> {
        db.busy_timeout(std::time::Duration::from_secs(30))?;
        // Switching a new database to WAL can answer "busy" at once while another
        // process is doing the same (SQLite does not wait there): wait a little, again.
        retry_busy(|| db.pragma_update(None, "journal_mode", "WAL"))?;
        // The write lock first, then the version: a second process waits, then finds
        // the schema done.
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA {
            return Err(StoreError::new(
                StoreErrorKind::Corrupt,
                format!(
                    "the database has schema version {version}; this build knows up to {SCHEMA}"
                ),
            ));
        }
        if version < 1 {
            tx.execute_batch(V1)?;
        }
        if version < 2 {
            tx.execute_batch(V2)?;
            move_marks_out_of_checkpoints(&tx)?;
        }
        if version < 3 {
            tx.execute_batch(V3)?;
        }
        if version < SCHEMA {
            tx.pragma_update(None, "user_version", SCHEMA)?;
        }
        tx.commit()?;
        Ok(SqliteStore {
            db: Arc::new(Mutex::new(db)),
        })
    }

    /// Runs `work` on the connection on a blocking thread (or here, without a runtime).
    async fn with<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self.db.clone();
        let run = move || {
            let mut db = db
                .lock()
                .map_err(|_| StoreError::new(StoreErrorKind::Other, "a writer panicked"))?;
            work(&mut db)
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime.spawn_blocking(run).await.map_err(|e| {
                StoreError::new(StoreErrorKind::Other, "the store's task failed").with_source(e)
            })?,
            Err(_) => run(),
        }
    }

    /// How many messages are stored (for an account, or all).
    pub fn message_count(&self, account: Option<&str>) -> Result<u64, StoreError> {
        let db = self
            .db
            .lock()
            .map_err(|_| StoreError::new(StoreErrorKind::Other, "a writer panicked"))?;
        let n: i64 = match account {
            Some(a) => db.query_row(
                "SELECT COUNT(*) FROM messages WHERE account = ?1",
                [a],
                |r| r.get(0),
            )?,
            None => db.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))?,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// Version 1 kept `{"watermark", "newest_created", "last_sweep", "marks": {id: {"listing",
/// "last_message_at"}}}` per account; version 2 keeps each mark on its conversation's row.
fn move_marks_out_of_checkpoints(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    #[derive(serde::Deserialize)]
    struct V1Mark {
        listing: String,
        last_message_at: Option<chrono::DateTime<chrono::Utc>>,
    }
    #[derive(serde::Deserialize)]
    struct V1Checkpoint {
        #[serde(flatten)]
        rest: Checkpoint,
        #[serde(default)]
        marks: std::collections::BTreeMap<String, V1Mark>,
    }
    let rows: Vec<(String, String)> = {
        let mut select = tx.prepare("SELECT account, data FROM checkpoints")?;
        let rows = select.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (account, data) in rows {
        let old: V1Checkpoint = serde_json::from_str(&data).map_err(|e| corrupt(&account, e))?;
        for (id, mark) in old.marks {
            tx.execute(
                "UPDATE conversations SET listing = ?3, last_message_at = ?4, mark_version = 1
                 WHERE account = ?1 AND id = ?2",
                params![account, id, mark.listing, mark.last_message_at.map(time)],
            )?;
        }
        let small = serde_json::to_string(&old.rest).map_err(|e| corrupt(&account, e))?;
        tx.execute(
            "UPDATE checkpoints SET data = ?2 WHERE account = ?1",
            params![account, small],
        )?;
    }
    Ok(())
}

/// `work`, tried again every 20 ms while SQLite answers busy or locked, for up to 30 s.
fn retry_busy<T>(mut work: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match work() {
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Statement parameters a query may take at once (SQLite's default limit is 32,766).
const CHUNK: usize = 500;

impl Store for SqliteStore {
    fn checkpoint<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Result<Checkpoint, StoreError>> {
        let account = account.to_string();
        Box::pin(self.with(move |db| {
            let row: Option<(String, i64)> = db
                .query_row(
                    "SELECT data, version FROM checkpoints WHERE account = ?1",
                    [&account],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            row::checkpoint(&account, row)
        }))
    }

    fn marks<'a>(
        &'a self,
        account: &'a str,
        conversations: Vec<String>,
    ) -> BoxFuture<'a, Result<HashMap<String, Mark>, StoreError>> {
        let account = account.to_string();
        Box::pin(self.with(move |db| {
            let marks = select_in(
                db,
                "SELECT id, listing, last_message_at, mark_version FROM conversations
                 WHERE account = ?1 AND mark_version > 0 AND id",
                &[&account],
                &conversations,
                |r| {
                    Ok(Mark {
                        listing: r.get(1)?,
                        last_message_at: parse_time(r.get(2)?),
                        version: version(r.get(3)?),
                    })
                },
            )?;
            Ok(marks)
        }))
    }

    fn message_states<'a>(
        &'a self,
        account: &'a str,
        conversation: &'a str,
        messages: Vec<String>,
    ) -> BoxFuture<'a, Result<HashMap<String, String>, StoreError>> {
        let (account, conversation) = (account.to_string(), conversation.to_string());
        Box::pin(self.with(move |db| {
            let states = select_in(
                db,
                "SELECT id, state FROM messages WHERE account = ?1 AND conversation = ?2 AND id",
                &[&account, &conversation],
                &messages,
                |r| r.get(1),
            )?;
            Ok(states)
        }))
    }

    fn malformed<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<HashSet<MalformedKey>, StoreError>> {
        let account = account.to_string();
        Box::pin(self.with(move |db| {
            let mut select =
                db.prepare_cached("SELECT conversation, raw FROM malformed WHERE account = ?1")?;
            let rows = select.query_map([&account], |r| {
                Ok(MalformedKey {
                    conversation: r.get(0)?,
                    raw: r.get(1)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        }))
    }

    fn commit<'a>(
        &'a self,
        commit: Commit,
        hand_on: Option<HandOn>,
    ) -> BoxFuture<'a, Result<Commit, StoreError>> {
        Box::pin(self.with(move |db| {
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            write(&tx, &commit)?;
            super::store::hand_on(hand_on, &commit.changes)?;
            tx.commit()?;
            Ok(commit)
        }))
    }

    fn journal_add<'a>(
        &'a self,
        entry: NewEntry,
    ) -> BoxFuture<'a, Result<Option<i64>, StoreError>> {
        Box::pin(self.with(move |db| {
            let added = db.execute(
                "INSERT INTO journal (marketplace, account, received_at, raw, dedup_key, state, target)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (marketplace, dedup_key) DO NOTHING",
                params![
                    entry.marketplace.as_str(),
                    entry.account,
                    time(entry.received_at),
                    entry.raw,
                    entry.dedup_key,
                    entry.state.as_str(),
                    entry.target
                ],
            )?;
            Ok((added == 1).then(|| db.last_insert_rowid()))
        }))
    }

    fn journal_pending<'a>(&'a self) -> BoxFuture<'a, Result<Vec<Entry>, StoreError>> {
        Box::pin(self.with(move |db| {
            let mut select = db.prepare(
                "SELECT id, marketplace, account, received_at, raw, dedup_key, target FROM journal
                 WHERE state = 'pending' ORDER BY id",
            )?;
            let rows = select.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ))
            })?;
            let mut entries = Vec::new();
            for row in rows {
                let (id, marketplace, account, received_at, raw, dedup_key, target) = row?;
                entries.push(row::journal_entry(
                    id,
                    &marketplace,
                    account,
                    received_at,
                    raw,
                    (dedup_key, target),
                )?);
            }
            Ok(entries)
        }))
    }

    fn journal_settle<'a>(
        &'a self,
        ids: Vec<i64>,
        state: JournalState,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.with(move |db| {
            let tx = db.transaction()?;
            {
                let mut update =
                    tx.prepare_cached("UPDATE journal SET state = ?2 WHERE id = ?1")?;
                for id in ids {
                    update.execute(params![id, state.as_str()])?;
                }
            }
            tx.commit()?;
            Ok(())
        }))
    }

    fn journal_prune<'a>(
        &'a self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(self.with(move |db| {
            let removed = db.execute(
                "DELETE FROM journal WHERE state <> 'pending' AND received_at < ?1",
                params![time(before)],
            )?;
            Ok(removed as u64)
        }))
    }
}

/// Rows of `select` (ending in `… AND id`, followed here by `IN (…)`) for these ids, a
/// chunk at a time, by their first column; `args` bind the statement's leading `?`s.
fn select_in<T>(
    db: &Connection,
    select: &str,
    args: &[&String],
    ids: &[String],
    row: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<HashMap<String, T>, StoreError> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let sql = format!("{select} IN ({})", vec!["?"; chunk.len()].join(","));
        let mut statement = db.prepare_cached(&sql)?;
        let params = args.iter().copied().chain(chunk);
        let rows = statement.query_map(params_from_iter(params), |r| {
            Ok((r.get::<_, String>(0)?, row(r)?))
        })?;
        for r in rows {
            let (id, value) = r?;
            found.insert(id, value);
        }
    }
    Ok(found)
}

/// Writes a commit inside `tx`, checking every version first.
fn write(tx: &rusqlite::Transaction<'_>, commit: &Commit) -> Result<(), StoreError> {
    let account = commit.account.as_str();
    if let Some(checkpoint) = &commit.checkpoint {
        let data = serde_json::to_string(checkpoint).map_err(|e| corrupt(account, e))?;
        let written = match checkpoint.version {
            0 => tx.execute(
                "INSERT INTO checkpoints (account, data, version) VALUES (?1, ?2, 1)
                 ON CONFLICT (account) DO NOTHING",
                params![account, data],
            )?,
            v => tx.execute(
                "UPDATE checkpoints SET data = ?2, version = version + 1
                 WHERE account = ?1 AND version = ?3",
                params![account, data, stored(v)],
            )?,
        };
        if written != 1 {
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
                let unread = c.unread.map(|u| i64::from(u.is_unread()));
                tx.execute(
                    "INSERT INTO conversations (account, marketplace, id, ref, kind, status, unread,
                       last_activity_at, vendor, listing, last_message_at, mark_version)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1)
                     ON CONFLICT (account, id) DO UPDATE SET kind = excluded.kind,
                       status = excluded.status, unread = excluded.unread,
                       last_activity_at = excluded.last_activity_at, vendor = excluded.vendor,
                       listing = excluded.listing, last_message_at = excluded.last_message_at,
                       mark_version = conversations.mark_version + 1
                     WHERE conversations.mark_version = ?12",
                    params![
                        account,
                        c.reference.marketplace.as_str(),
                        id,
                        c.reference.to_string(),
                        serde_json::to_string(&c.kind).ok(),
                        c.status.as_ref().and_then(|s| serde_json::to_string(s).ok()),
                        unread,
                        c.last_activity_at.map(time),
                        c.vendor.as_str(),
                        mark.listing,
                        mark.last_message_at.map(time),
                        expected,
                    ],
                )?
            }
            None => tx.execute(
                "INSERT INTO conversations (account, marketplace, id, ref, vendor, last_message_at,
                   mark_version)
                 VALUES (?1, ?2, ?3, ?4, 'null', ?5, 1)
                 ON CONFLICT (account, id) DO UPDATE SET last_message_at = excluded.last_message_at,
                   mark_version = conversations.mark_version + 1
                 WHERE conversations.mark_version = ?6",
                params![
                    account,
                    change.reference.marketplace.as_str(),
                    id,
                    change.reference.to_string(),
                    mark.last_message_at.map(time),
                    expected,
                ],
            )?,
        };
        if written != 1 {
            return Err(StoreError::synced_since(&change.reference));
        }
    }
    let at = time(commit.at);
    for change in &commit.changes {
        match change {
            Change::Message(_, m) => insert_message(tx, account, m)?,
            Change::Malformed(bad) => {
                let key = bad.key();
                tx.execute(
                    "INSERT INTO malformed (account, marketplace, conversation, listing, raw, error,
                       first_seen, last_seen)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
                     ON CONFLICT (account, conversation, raw) DO UPDATE SET error = excluded.error,
                       last_seen = excluded.last_seen",
                    params![
                        account,
                        bad.marketplace.as_str(),
                        key.conversation,
                        bad.listed.as_str(),
                        key.raw,
                        bad.error,
                        at,
                    ],
                )?;
            }
            Change::Conversation(..) => {}
        }
    }
    for rescan in &commit.rescans {
        let stored: Vec<String> = {
            let mut select = tx.prepare_cached(
                "SELECT raw FROM malformed WHERE account = ?1 AND conversation = ?2",
            )?;
            let rows = select.query_map(params![account, rescan.conversation], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for raw in stored {
            if rescan.seen.contains(&raw) {
                tx.execute(
                    "UPDATE malformed SET last_seen = ?4
                     WHERE account = ?1 AND conversation = ?2 AND raw = ?3",
                    params![account, rescan.conversation, raw, at],
                )?;
            } else {
                tx.execute(
                    "DELETE FROM malformed WHERE account = ?1 AND conversation = ?2 AND raw = ?3",
                    params![account, rescan.conversation, raw],
                )?;
            }
        }
    }
    Ok(())
}

fn insert_message(
    tx: &rusqlite::Transaction<'_>,
    account: &str,
    m: &Message,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO messages (account, marketplace, conversation, id, created_at, author_role, author, text, status, read, state, vendor)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (account, conversation, id) DO UPDATE SET status = excluded.status,
           read = excluded.read, state = excluded.state, vendor = excluded.vendor",
        params![
            account,
            m.conversation.marketplace.as_str(),
            m.conversation.id,
            m.id,
            time(m.created_at),
            m.author.role.as_str(),
            m.author.name.clone().or(m.author.id.clone()),
            m.text,
            m.status,
            m.read.map(i64::from),
            message_state(m),
            m.vendor.as_str(),
        ],
    )?;
    Ok(())
}
