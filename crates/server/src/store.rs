//! Which store the engine keeps its mirror in: a `postgres://` URL or a SQLite file.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use marketplace_inbox::sync::{PostgresStore, SqliteStore, Store};

/// Where a store is: a PostgreSQL database by URL, or a SQLite file.
#[derive(Clone, Debug)]
pub enum Db {
    /// A PostgreSQL database, by URL.
    Postgres(String),
    /// A SQLite file.
    Sqlite(PathBuf),
}

impl std::str::FromStr for Db {
    type Err = String;

    /// A `postgres://` or `postgresql://` URL (any case), else a file path.
    fn from_str(text: &str) -> std::result::Result<Db, String> {
        let lower = text.get(..13).unwrap_or(text).to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Ok(Db::Postgres(text.to_string()))
        } else if text.is_empty() {
            Err("the database path is empty".into())
        } else {
            Ok(Db::Sqlite(PathBuf::from(text)))
        }
    }
}

/// PostgreSQL connections a store opened here holds at most.
pub(crate) const POSTGRES_CONNECTIONS: u32 = 16;

/// Opens the store at `db`, else at `$XDG_DATA_HOME/inbox/inbox.db` (or
/// `~/.local/share/inbox/inbox.db`).
pub async fn open_store(db: Option<Db>) -> Result<Box<dyn Store>> {
    let path = match db {
        Some(Db::Postgres(url)) => {
            let store = PostgresStore::connect(&url, POSTGRES_CONNECTIONS)
                .await
                .context("opening the PostgreSQL database")?;
            return Ok(Box::new(store));
        }
        Some(Db::Sqlite(p)) => p,
        None => default_path()?,
    };
    let store = SqliteStore::open(&path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(Box::new(store))
}

/// `$XDG_DATA_HOME/inbox/inbox.db`, else `~/.local/share/inbox/inbox.db`.
pub(crate) fn default_path() -> Result<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let base = env("XDG_DATA_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".local").join("share")))
        .ok_or_else(|| anyhow!("no --db given and neither XDG_DATA_HOME nor HOME is set"))?;
    Ok(base.join("inbox").join("inbox.db"))
}
