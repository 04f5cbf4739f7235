//! A database of its own for each test, on the PostgreSQL server the machine runs.
//!
//! The server is `INBOX_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`).
//! Without one, a test prints one line saying it was skipped and how to run it — unless
//! `INBOX_REQUIRE_POSTGRES` is set (CI sets it), where a silent server fails the test.
#![allow(dead_code)]

use sqlx::{Connection, PgConnection};

/// The server tests use when `INBOX_TEST_POSTGRES` is not set.
pub const DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh database; [`TestDb::drop_now`] removes it, and so does dropping it (a test
/// that panics leaves no database behind).
pub struct TestDb {
    /// Its URL.
    pub url: String,
    name: String,
    admin: String,
    dropped: bool,
}

fn server() -> String {
    std::env::var("INBOX_TEST_POSTGRES")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT.to_string())
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let slash = base
        .rfind('/')
        .filter(|i| *i > "postgres://".len())
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", base.get(..slash).unwrap_or(base));
    if !query.is_empty() {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Creates a database for the test `label`, or says why there is none.
pub async fn database(label: &str) -> Option<TestDb> {
    let admin = server();
    let connected = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        PgConnection::connect(&admin),
    )
    .await;
    let mut conn = match connected {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return unavailable(&admin, &e.to_string()),
        Err(_) => return unavailable(&admin, "no answer in 10 s"),
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let name = format!("inbox_{label}_{}_{stamp}", std::process::id());
    let create = format!(r#"CREATE DATABASE "{name}""#);
    sqlx::raw_sql(sqlx::AssertSqlSafe(create))
        .execute(&mut conn)
        .await
        .expect("creating the test database");
    conn.close().await.ok();
    Some(TestDb {
        url: with_database(&admin, &name),
        name,
        admin,
        dropped: false,
    })
}

fn unavailable(url: &str, why: &str) -> Option<TestDb> {
    if std::env::var_os("INBOX_REQUIRE_POSTGRES").is_some() {
        panic!("PostgreSQL at {url} does not answer ({why}), and INBOX_REQUIRE_POSTGRES is set");
    }
    eprintln!(
        "skipped: no PostgreSQL at {url} ({why}); start one or set INBOX_TEST_POSTGRES=postgres://… to run this test"
    );
    None
}

impl TestDb {
    /// Drops the database (its connections are closed first).
    pub async fn drop_now(mut self) {
        drop_database(&self.admin, &self.name).await;
        self.dropped = true;
    }
}

async fn drop_database(admin: &str, name: &str) {
    if let Ok(mut conn) = PgConnection::connect(admin).await {
        let drop = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
        sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(&mut conn)
            .await
            .ok();
        conn.close().await.ok();
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // Not dropped by the test (it panicked, or returned early): on a thread and
        // runtime of its own, since this may run inside the test's runtime.
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let done = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(drop_database(&admin, &name));
            }
        });
        let _ = done.join();
    }
}

/// The rows `sql` selects from the database at `url`, on a connection of its own.
pub async fn rows<T>(url: &str, sql: &'static str) -> Result<Vec<T>, sqlx::Error>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let mut conn = PgConnection::connect(url).await?;
    let rows = sqlx::query_as(sql).fetch_all(&mut conn).await;
    conn.close().await.ok();
    rows
}
