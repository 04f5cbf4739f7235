//! The embedded [`Store`]: SQLite, bundled (no system library needed).
//!
//! The SQLite schema (version 1; `PRAGMA user_version`), readable with `sqlite3`:
//!
//! ```sql
//! CREATE TABLE checkpoints (account TEXT PRIMARY KEY, data TEXT NOT NULL);  -- JSON
//! CREATE TABLE conversations (
//!   account TEXT NOT NULL, marketplace TEXT NOT NULL, id TEXT NOT NULL, ref TEXT NOT NULL,
//!   kind TEXT, status TEXT, unread INTEGER, last_activity_at TEXT, vendor TEXT NOT NULL,
//!   PRIMARY KEY (account, id));
//! CREATE TABLE messages (
//!   account TEXT NOT NULL, marketplace TEXT NOT NULL, conversation TEXT NOT NULL,
//!   id TEXT NOT NULL, created_at TEXT NOT NULL, author_role TEXT NOT NULL, author TEXT,
//!   text TEXT NOT NULL, status TEXT, read INTEGER, state TEXT NOT NULL, vendor TEXT NOT NULL,
//!   PRIMARY KEY (account, conversation, id));
//! ```
//!
//! `conversation` is the conversation's id; instants are RFC 3339 in UTC; `vendor` is the
//! vendor's object as received.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use super::store::{Store, StoreError};
use super::{message_state, Change, Checkpoint};
use crate::Message;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::new(e.to_string())
    }
}

/// The SQLite store (bundled SQLite; no system library needed).
pub struct SqliteStore {
    db: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

const MIGRATIONS: [&str; 1] = ["
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
"];

impl SqliteStore {
    /// Opens (creating when missing) the database at `path`, brought to the current schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::new(format!("creating {}: {e}", dir.display())))?;
        }
        Self::migrate(Connection::open(path)?)
    }

    /// A store in memory (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::migrate(Connection::open_in_memory()?)
    }

    fn migrate(db: Connection) -> Result<Self, StoreError> {
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.busy_timeout(std::time::Duration::from_secs(10))?;
        let version: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
        if version > known {
            return Err(StoreError::new(format!(
                "the database has schema version {version}; this build knows up to {known}"
            )));
        }
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(version).unwrap_or(0))
        {
            let tx = db.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i + 1)?;
            tx.commit()?;
        }
        Ok(SqliteStore { db: Mutex::new(db) })
    }

    fn db(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.db
            .lock()
            .map_err(|_| StoreError::new("a writer panicked"))
    }

    /// How many messages are stored (for an account, or all).
    pub fn message_count(&self, account: Option<&str>) -> Result<u64, StoreError> {
        let db = self.db()?;
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

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn json(v: &serde_json::Value) -> String {
    v.to_string()
}

impl Store for SqliteStore {
    fn checkpoint(&self, account: &str) -> Result<Checkpoint, StoreError> {
        let data: Option<String> = self
            .db()?
            .query_row(
                "SELECT data FROM checkpoints WHERE account = ?1",
                [account],
                |r| r.get(0),
            )
            .optional()?;
        match data {
            None => Ok(Checkpoint::default()),
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                StoreError::new(format!("the checkpoint of {account} is unreadable: {e}"))
            }),
        }
    }

    fn message_state(
        &self,
        account: &str,
        conversation: &str,
        message: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .db()?
            .query_row(
                "SELECT state FROM messages WHERE account = ?1 AND conversation = ?2 AND id = ?3",
                params![account, conversation, message],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn commit(
        &self,
        account: &str,
        checkpoint: &Checkpoint,
        changes: &[Change],
    ) -> Result<(), StoreError> {
        let mut db = self.db()?;
        let tx = db.transaction()?;
        for change in changes {
            match change {
                Change::Conversation(_, c) => {
                    let unread = c.unread.map(|u| i64::from(u.is_unread()));
                    tx.execute(
                        "INSERT INTO conversations (account, marketplace, id, ref, kind, status, unread, last_activity_at, vendor)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                         ON CONFLICT (account, id) DO UPDATE SET kind = excluded.kind, status = excluded.status,
                           unread = excluded.unread, last_activity_at = excluded.last_activity_at, vendor = excluded.vendor",
                        params![
                            account,
                            c.reference.marketplace.as_str(),
                            c.reference.id,
                            c.reference.to_string(),
                            serde_json::to_value(&c.kind).ok().map(|v| json(&v)),
                            c.status.as_ref().and_then(|s| serde_json::to_value(s).ok()).map(|v| json(&v)),
                            unread,
                            c.last_activity_at.map(time),
                            c.vendor.as_str(),
                        ],
                    )?;
                }
                Change::Message(_, m) => insert_message(&tx, account, m)?,
            }
        }
        let data = serde_json::to_string(checkpoint)
            .map_err(|e| StoreError::new(format!("writing the checkpoint: {e}")))?;
        tx.execute(
            "INSERT INTO checkpoints (account, data) VALUES (?1, ?2)
             ON CONFLICT (account) DO UPDATE SET data = excluded.data",
            params![account, data],
        )?;
        tx.commit()?;
        Ok(())
    }
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
