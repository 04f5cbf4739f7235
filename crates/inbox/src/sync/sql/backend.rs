//! What differs between SQLite and PostgreSQL, and nothing else: how a statement's
//! arguments are bound and its columns read (instants as integer microseconds on SQLite,
//! `TIMESTAMPTZ` on PostgreSQL; a list as a JSON array on SQLite, an array on
//! PostgreSQL), the column types of the schema, how a write transaction begins, how the
//! schema version is kept and how migrations are serialised. Every statement text and
//! all the logic are shared (`super`).

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use super::super::store::{StoreError, StoreErrorKind};

/// One argument of a statement.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub enum Arg {
    /// An integer (or NULL).
    Int(Option<i64>),
    /// Text (or NULL).
    Text(Option<String>),
    /// An instant (or NULL).
    Time(Option<DateTime<Utc>>),
    /// A list of texts, for `id IN` lists (see [`Backend::in_list`]).
    Texts(Vec<String>),
    /// A list of integers, likewise.
    Ints(Vec<i64>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_string()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_string))
    }
}
impl From<DateTime<Utc>> for Arg {
    fn from(v: DateTime<Utc>) -> Self {
        Arg::Time(Some(v))
    }
}
impl From<Option<DateTime<Utc>>> for Arg {
    fn from(v: Option<DateTime<Utc>>) -> Self {
        Arg::Time(v)
    }
}
impl From<Vec<String>> for Arg {
    fn from(v: Vec<String>) -> Self {
        Arg::Texts(v)
    }
}
impl From<Vec<i64>> for Arg {
    fn from(v: Vec<i64>) -> Self {
        Arg::Ints(v)
    }
}

/// A statement's arguments, in order (`$1`, `$2`, …).
macro_rules! args {
    ($($a:expr),* $(,)?) => { vec![$($crate::sync::backend::Arg::from($a)),*] };
}
pub(crate) use args;

/// A row read back, column by column (by position).
#[doc(hidden)]
pub trait Row: Send {
    /// An integer column.
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    /// A text column.
    fn text(&self, i: usize) -> Result<Option<String>, StoreError>;
    /// An instant column.
    fn time(&self, i: usize) -> Result<Option<DateTime<Utc>>, StoreError>;
}

/// A database the store runs on. Sealed: SQLite and PostgreSQL.
pub trait Backend: Send + Sync + 'static + sealed::Sealed {
    /// The connection pool.
    #[doc(hidden)]
    type Pool: Clone + Send + Sync + 'static;
    /// One connection (of the pool, or inside a transaction).
    #[doc(hidden)]
    type Conn: Send;
    /// A write transaction.
    #[doc(hidden)]
    type Tx: Send + std::ops::DerefMut<Target = Self::Conn>;
    /// A connection taken from the pool.
    #[doc(hidden)]
    type Pooled: Send + std::ops::DerefMut<Target = Self::Conn>;
    /// A row read back.
    #[doc(hidden)]
    type Row: Row;
}

/// What each backend does its own way (internal to the store).
#[doc(hidden)]
pub trait Dialect: Backend {
    /// The name shown in messages.
    const NAME: &'static str;
    /// The column type of an integer.
    const INT: &'static str;
    /// The column type of an instant.
    const TIME: &'static str;
    /// The column type of an increasing key.
    const SERIAL: &'static str;
    /// What a `SELECT` ends with to hold its rows against updates until the transaction
    /// ends (nothing on SQLite, whose writers take turns).
    const LOCK_SHARED: &'static str;
    /// How an instant column sorts newest first with its empty values last (SQLite
    /// sorts NULL lowest; PostgreSQL highest unless told).
    const NEWEST_FIRST: &'static str;
    /// What a transaction that numbered events runs to wake other processes' readers
    /// when it commits (nothing on SQLite, whose readers share this process's signal).
    const NOTIFY_EVENTS: &'static str;

    /// `column` belongs to the list bound as `param` (`$3`).
    fn in_list(column: &str, param: &str) -> String;

    /// The placeholder of the `n`th argument (from 1) of a statement whose arguments
    /// each stand once, in order: SQLite's anonymous `?` (its named ones are looked up
    /// one by one when bound, which costs the square of their number), else `$n`.
    fn placeholder(n: usize) -> String;

    /// A connection of the pool.
    fn acquire(pool: &Self::Pool) -> BoxFuture<'_, Result<Self::Pooled, StoreError>>;

    /// A write transaction (on SQLite it takes the write lock at once).
    fn begin(pool: &Self::Pool) -> BoxFuture<'_, Result<Self::Tx, StoreError>>;

    /// Makes a transaction durable.
    fn commit(tx: Self::Tx) -> BoxFuture<'static, Result<(), StoreError>>;

    /// Runs a statement; the rows it changed.
    fn execute<'c>(
        conn: &'c mut Self::Conn,
        sql: String,
        args: Vec<Arg>,
    ) -> BoxFuture<'c, Result<u64, StoreError>>;

    /// Runs a query; its rows.
    fn fetch<'c>(
        conn: &'c mut Self::Conn,
        sql: String,
        args: Vec<Arg>,
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, StoreError>>;

    /// Runs several statements without arguments (DDL).
    fn batch<'c>(conn: &'c mut Self::Conn, sql: String) -> BoxFuture<'c, Result<(), StoreError>>;

    /// Inside a migration's transaction: waits for any other process migrating, then
    /// gives the schema version stored (0: a new database).
    fn schema_version<'c>(conn: &'c mut Self::Conn) -> BoxFuture<'c, Result<i64, StoreError>>;

    /// After journal rows were copied with their numbers: the next number follows them.
    fn after_journal_copy<'c>(conn: &'c mut Self::Conn) -> BoxFuture<'c, Result<(), StoreError>>;

    /// Records the schema version (inside the migration's transaction).
    fn set_schema_version<'c>(
        conn: &'c mut Self::Conn,
        version: i64,
    ) -> BoxFuture<'c, Result<(), StoreError>>;
}

mod sealed {
    pub trait Sealed {}
}

/// A row whose column did not hold the type expected.
fn column(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, "a stored column cannot be read").with_source(e)
}

/// The earliest and latest instants PostgreSQL's `TIMESTAMPTZ` holds (4713 BC to
/// 294276 AD); instants outside are stored at the nearest end (the exact value stays in
/// the row's JSON form).
#[cfg(feature = "postgres")]
fn pg_range(t: DateTime<Utc>) -> DateTime<Utc> {
    let low = DateTime::from_timestamp(-210_866_803_200, 0).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let high = DateTime::from_timestamp(9_224_318_015_999, 0).unwrap_or(DateTime::<Utc>::MAX_UTC);
    t.clamp(low, high)
}

/// The calls both backends make the same way through their own sqlx types (inside each
/// `impl Dialect`, with that module's `bind`).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
macro_rules! driver_calls {
    () => {
        fn acquire(pool: &Self::Pool) -> BoxFuture<'_, Result<Self::Pooled, StoreError>> {
            Box::pin(async move { Ok(pool.acquire().await?) })
        }

        fn commit(tx: Self::Tx) -> BoxFuture<'static, Result<(), StoreError>> {
            Box::pin(async move { Ok(tx.commit().await?) })
        }

        fn execute<'c>(
            conn: &'c mut Self::Conn,
            sql: String,
            args: Vec<Arg>,
        ) -> BoxFuture<'c, Result<u64, StoreError>> {
            Box::pin(async move {
                let args = bind(args)?;
                let done = sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
                    .execute(&mut *conn)
                    .await?;
                Ok(done.rows_affected())
            })
        }

        fn fetch<'c>(
            conn: &'c mut Self::Conn,
            sql: String,
            args: Vec<Arg>,
        ) -> BoxFuture<'c, Result<Vec<Self::Row>, StoreError>> {
            Box::pin(async move {
                let args = bind(args)?;
                Ok(sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
                    .fetch_all(&mut *conn)
                    .await?)
            })
        }

        fn batch<'c>(
            conn: &'c mut Self::Conn,
            sql: String,
        ) -> BoxFuture<'c, Result<(), StoreError>> {
            Box::pin(async move {
                conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql)))
                    .await?;
                Ok(())
            })
        }
    };
}

#[cfg(feature = "sqlite")]
pub use self::lite::Sqlite;

#[cfg(feature = "sqlite")]
mod lite {
    use super::*;
    use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqlitePool, SqliteRow};
    use sqlx::{Arguments, Executor, Row as _};

    /// SQLite (bundled), through sqlx: a pool of connections in WAL mode, each on its own
    /// thread, so no write ever blocks an async thread.
    #[derive(Debug)]
    pub enum Sqlite {}

    impl sealed::Sealed for Sqlite {}

    impl Backend for Sqlite {
        type Pool = SqlitePool;
        type Conn = SqliteConnection;
        type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;
        type Pooled = sqlx::pool::PoolConnection<sqlx::Sqlite>;
        type Row = SqliteRow;
    }

    fn bind(args: Vec<Arg>) -> Result<SqliteArguments, StoreError> {
        let mut out = SqliteArguments::default();
        for arg in args {
            let added = match arg {
                Arg::Int(v) => out.add(v),
                Arg::Text(v) => out.add(v),
                Arg::Time(v) => out.add(v.map(|t| t.timestamp_micros())),
                Arg::Texts(v) => out.add(serde_json::to_string(&v).unwrap_or_default()),
                Arg::Ints(v) => out.add(serde_json::to_string(&v).unwrap_or_default()),
            };
            added.map_err(|e| {
                StoreError::new(StoreErrorKind::Other, format!("binding an argument: {e}"))
            })?;
        }
        Ok(out)
    }

    impl Row for SqliteRow {
        fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
            self.try_get(i).map_err(column)
        }
        fn text(&self, i: usize) -> Result<Option<String>, StoreError> {
            self.try_get(i).map_err(column)
        }
        fn time(&self, i: usize) -> Result<Option<DateTime<Utc>>, StoreError> {
            let micros: Option<i64> = self.try_get(i).map_err(column)?;
            Ok(micros.and_then(DateTime::from_timestamp_micros))
        }
    }

    impl Dialect for Sqlite {
        const NAME: &'static str = "SQLite";
        const INT: &'static str = "INTEGER";
        const TIME: &'static str = "INTEGER";
        const SERIAL: &'static str = "INTEGER PRIMARY KEY AUTOINCREMENT";
        const LOCK_SHARED: &'static str = "";
        const NEWEST_FIRST: &'static str = "DESC";
        const NOTIFY_EVENTS: &'static str = "";

        fn in_list(column: &str, param: &str) -> String {
            format!("{column} IN (SELECT value FROM json_each({param}))")
        }

        fn placeholder(_: usize) -> String {
            "?".into()
        }

        fn begin(pool: &Self::Pool) -> BoxFuture<'_, Result<Self::Tx, StoreError>> {
            Box::pin(async move { Ok(pool.begin_with("BEGIN IMMEDIATE").await?) })
        }

        driver_calls!();

        fn schema_version<'c>(conn: &'c mut Self::Conn) -> BoxFuture<'c, Result<i64, StoreError>> {
            // The migration's transaction began IMMEDIATE: it holds the write lock, so
            // a second process waits here, then finds the schema done.
            Box::pin(async move {
                let v: i64 = sqlx::query_scalar("PRAGMA user_version")
                    .fetch_one(&mut *conn)
                    .await?;
                Ok(v)
            })
        }

        fn after_journal_copy<'c>(
            _conn: &'c mut Self::Conn,
        ) -> BoxFuture<'c, Result<(), StoreError>> {
            // AUTOINCREMENT follows the largest number inserted by itself.
            Box::pin(async { Ok(()) })
        }

        fn set_schema_version<'c>(
            conn: &'c mut Self::Conn,
            version: i64,
        ) -> BoxFuture<'c, Result<(), StoreError>> {
            Box::pin(async move {
                conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "PRAGMA user_version = {version}"
                ))))
                .await?;
                Ok(())
            })
        }
    }
}

#[cfg(feature = "postgres")]
pub use self::pg::Postgres;

#[cfg(feature = "postgres")]
mod pg {
    use super::*;
    use sqlx::postgres::{PgArguments, PgConnection, PgPool, PgRow};
    use sqlx::{Arguments, Executor, Row as _};

    /// PostgreSQL, through sqlx: a pool shared with the fleet's other work.
    #[derive(Debug)]
    pub enum Postgres {}

    impl sealed::Sealed for Postgres {}

    impl Backend for Postgres {
        type Pool = PgPool;
        type Conn = PgConnection;
        type Tx = sqlx::Transaction<'static, sqlx::Postgres>;
        type Pooled = sqlx::pool::PoolConnection<sqlx::Postgres>;
        type Row = PgRow;
    }

    fn bind(args: Vec<Arg>) -> Result<PgArguments, StoreError> {
        let mut out = PgArguments::default();
        for arg in args {
            let added = match arg {
                Arg::Int(v) => out.add(v),
                Arg::Text(v) => out.add(v),
                Arg::Time(v) => out.add(v.map(pg_range)),
                Arg::Texts(v) => out.add(v),
                Arg::Ints(v) => out.add(v),
            };
            added.map_err(|e| {
                StoreError::new(StoreErrorKind::Other, format!("binding an argument: {e}"))
            })?;
        }
        Ok(out)
    }

    impl Row for PgRow {
        fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
            self.try_get(i).map_err(column)
        }
        fn text(&self, i: usize) -> Result<Option<String>, StoreError> {
            self.try_get(i).map_err(column)
        }
        fn time(&self, i: usize) -> Result<Option<DateTime<Utc>>, StoreError> {
            self.try_get(i).map_err(column)
        }
    }

    /// Taken for the length of a migration (an arbitrary constant: "inbox" in ASCII).
    const MIGRATION_LOCK: i64 = 0x0069_6e62_6f78;

    impl Dialect for Postgres {
        const NAME: &'static str = "PostgreSQL";
        const INT: &'static str = "BIGINT";
        const TIME: &'static str = "TIMESTAMPTZ";
        const SERIAL: &'static str = "BIGSERIAL PRIMARY KEY";
        const LOCK_SHARED: &'static str = " FOR SHARE";
        const NEWEST_FIRST: &'static str = "DESC NULLS LAST";
        const NOTIFY_EVENTS: &'static str = "NOTIFY inbox_events";

        fn in_list(column: &str, param: &str) -> String {
            format!("{column} = ANY({param})")
        }

        fn placeholder(n: usize) -> String {
            format!("${n}")
        }

        fn begin(pool: &Self::Pool) -> BoxFuture<'_, Result<Self::Tx, StoreError>> {
            Box::pin(async move { Ok(pool.begin().await?) })
        }

        driver_calls!();

        fn schema_version<'c>(conn: &'c mut Self::Conn) -> BoxFuture<'c, Result<i64, StoreError>> {
            Box::pin(async move {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(MIGRATION_LOCK)
                    .execute(&mut *conn)
                    .await?;
                conn.execute(sqlx::raw_sql(
                    "CREATE TABLE IF NOT EXISTS inbox_schema (version BIGINT NOT NULL)",
                ))
                .await?;
                let v: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM inbox_schema")
                    .fetch_one(&mut *conn)
                    .await?;
                Ok(v.unwrap_or(0))
            })
        }

        fn after_journal_copy<'c>(
            conn: &'c mut Self::Conn,
        ) -> BoxFuture<'c, Result<(), StoreError>> {
            Box::pin(async move {
                conn.execute(sqlx::raw_sql(
                    "SELECT setval(pg_get_serial_sequence('journal', 'id'),
                       COALESCE((SELECT max(id) FROM journal), 0) + 1, false)",
                ))
                .await?;
                Ok(())
            })
        }

        fn set_schema_version<'c>(
            conn: &'c mut Self::Conn,
            version: i64,
        ) -> BoxFuture<'c, Result<(), StoreError>> {
            Box::pin(async move {
                conn.execute(sqlx::raw_sql("DELETE FROM inbox_schema"))
                    .await?;
                sqlx::query("INSERT INTO inbox_schema (version) VALUES ($1)")
                    .bind(version)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        }
    }
}

/// The one mapping of a driver's error to the store's kinds.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let kind = match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreErrorKind::Unavailable,
            sqlx::Error::Database(d) => database_error(d.as_ref()),
            sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => StoreErrorKind::Corrupt,
            _ => StoreErrorKind::Other,
        };
        StoreError::new(kind, e.to_string()).with_source(e)
    }
}

/// What kind of failure a database's own error is.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn database_error(d: &dyn sqlx::error::DatabaseError) -> StoreErrorKind {
    let code = d.code();
    #[cfg(feature = "sqlite")]
    if d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // Primary result codes (the low byte of the extended code): busy 5, locked 6,
        // corrupt 11, not a database 26.
        return match code.and_then(|c| c.parse::<i64>().ok()).map(|c| c & 0xff) {
            Some(5 | 6) => StoreErrorKind::Unavailable,
            Some(11 | 26) => StoreErrorKind::Corrupt,
            _ => StoreErrorKind::Other,
        };
    }
    // PostgreSQL's SQLSTATE: serialization failures, deadlocks, the server going away.
    match code.as_deref() {
        Some("40001" | "40P01" | "57P01" | "57P02" | "57P03" | "08006" | "08003" | "08001") => {
            StoreErrorKind::Unavailable
        }
        _ => StoreErrorKind::Other,
    }
}
