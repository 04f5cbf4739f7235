//! An account's lease: one runner per account across the fleet. [`Lease`] is a guard —
//! renewed while held, given up when dropped, and a lease that is lost (taken by another
//! runner, or not renewed for its whole length) cancels the work it guards.

use std::time::Duration;

use anyhow::{Context, Result};

/// How long a lease holds without renewal.
pub const LEASE: Duration = Duration::from_secs(30);

/// The leases table (and the workers' heartbeat table, created with it).
pub const LEASES: &str = "CREATE TABLE IF NOT EXISTS inbox_leases (
    account TEXT PRIMARY KEY, owner TEXT NOT NULL, until TIMESTAMPTZ NOT NULL,
    fence BIGINT NOT NULL DEFAULT 0);
  CREATE TABLE IF NOT EXISTS inbox_workers (id TEXT PRIMARY KEY, seen TIMESTAMPTZ NOT NULL)";

/// An account's lease, held by this worker: a guard. It is renewed every third of its
/// length while held; dropping it (released or not, an early `?` included) stops the
/// renewal and gives the lease up. A lease found taken by another worker, or not renewed
/// for its whole length, is lost: [`Lease::lost`] resolves, and the work it guards is
/// cancelled (a cancelled chunk's transaction rolls back).
pub struct Lease {
    pool: sqlx::PgPool,
    account: String,
    fence: i64,
    renew: tokio::task::JoinHandle<()>,
    lost: tokio::sync::watch::Receiver<bool>,
    released: bool,
}

/// Takes `account`'s lease for `owner`; when another worker holds it, the instant it
/// lapses.
pub async fn take_lease(
    pool: &sqlx::PgPool,
    account: &str,
    owner: &str,
) -> Result<std::result::Result<Lease, chrono::DateTime<chrono::Utc>>> {
    take_lease_for(pool, account, owner, LEASE).await
}

/// [`take_lease`] for a lease of `length`.
async fn take_lease_for(
    pool: &sqlx::PgPool,
    account: &str,
    owner: &str,
    length: Duration,
) -> Result<std::result::Result<Lease, chrono::DateTime<chrono::Utc>>> {
    let fence: Option<i64> = sqlx::query_scalar(
        "INSERT INTO inbox_leases (account, owner, until, fence)
         VALUES ($1, $2, now() + make_interval(secs => $3), 1)
         ON CONFLICT (account) DO UPDATE SET owner = excluded.owner,
           until = excluded.until, fence = inbox_leases.fence + 1
         WHERE inbox_leases.until < now()
         RETURNING fence",
    )
    .bind(account)
    .bind(owner)
    .bind(length.as_secs_f64())
    .fetch_optional(pool)
    .await
    .context("taking the lease")?;
    let Some(fence) = fence else {
        let until: Option<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar("SELECT until FROM inbox_leases WHERE account = $1")
                .bind(account)
                .fetch_optional(pool)
                .await?;
        return Ok(Err(until.unwrap_or_else(chrono::Utc::now)));
    };
    let (lose, lost) = tokio::sync::watch::channel(false);
    let renew = tokio::spawn(renew(
        pool.clone(),
        account.to_string(),
        fence,
        length,
        lose,
    ));
    Ok(Ok(Lease {
        pool: pool.clone(),
        account: account.to_string(),
        fence,
        renew,
        lost,
        released: false,
    }))
}

/// Renews a lease every third of its `length` until it is found lost (another fence
/// holds it) or could not be renewed for its whole length; then says so on `lose`.
async fn renew(
    pool: sqlx::PgPool,
    account: String,
    fence: i64,
    length: Duration,
    lose: tokio::sync::watch::Sender<bool>,
) {
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(length / 3).await;
        let done = sqlx::query(
            "UPDATE inbox_leases SET until = now() + make_interval(secs => $3)
             WHERE account = $1 AND fence = $2",
        )
        .bind(&account)
        .bind(fence)
        .bind(length.as_secs_f64())
        .execute(&pool)
        .await;
        match done {
            Ok(r) if r.rows_affected() == 1 => renewed = tokio::time::Instant::now(),
            Ok(_) => {
                tracing::warn!(account, "the lease was taken by another runner; stopping");
                let _ = lose.send(true);
                return;
            }
            Err(e) if renewed.elapsed() >= length => {
                tracing::warn!(
                    account,
                    error = %e,
                    "the lease could not be renewed for {} s; stopping",
                    length.as_secs()
                );
                let _ = lose.send(true);
                return;
            }
            Err(e) => {
                tracing::info!(account, error = %e, "renewing the lease failed; trying again")
            }
        }
    }
}

impl Lease {
    /// Resolves once the lease is lost (never while it is held).
    pub async fn lost(&mut self) {
        if self.lost.wait_for(|lost| *lost).await.is_err() {
            // The renewal ended without saying lost (aborted): held until released.
            std::future::pending::<()>().await;
        }
    }

    /// Runs `work` while the lease is held: `None` when the lease was lost first (the
    /// work is cancelled).
    pub async fn guard<T>(&mut self, work: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            done = work => Some(done),
            () = self.lost() => None,
        }
    }

    /// Gives the lease up (only if it is still this one: the fencing token).
    pub async fn release(mut self) -> Result<()> {
        self.renew.abort();
        self.released = true;
        give_up(&self.pool, &self.account, self.fence)
            .await
            .context("releasing the lease")
    }
}

async fn give_up(pool: &sqlx::PgPool, account: &str, fence: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE inbox_leases SET until = now() WHERE account = $1 AND fence = $2")
        .bind(account)
        .bind(fence)
        .execute(pool)
        .await
        .map(|_| ())
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renew.abort();
        if self.released {
            return;
        }
        // Not released (an early return): given up in the background, so the account
        // is free at once rather than when the lease lapses.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (pool, account, fence) = (self.pool.clone(), self.account.clone(), self.fence);
            runtime.spawn(async move {
                let _ = give_up(&pool, &account, fence).await;
            });
        }
    }
}

#[cfg(test)]
#[path = "../../inbox/tests/support/postgres.rs"]
mod pg;

#[cfg(test)]
mod tests {
    use super::*;

    async fn until(pool: &sqlx::PgPool) -> chrono::Duration {
        let until: chrono::DateTime<chrono::Utc> =
            sqlx::query_scalar("SELECT until FROM inbox_leases WHERE account = 'a'")
                .fetch_one(pool)
                .await
                .unwrap();
        until - chrono::Utc::now()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lease_dropped_by_an_early_return_is_given_up_and_renewed_no_more() {
        let Some(db) = pg::database("lease_drop").await else {
            return;
        };
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::raw_sql(LEASES).execute(&pool).await.unwrap();
        let length = Duration::from_secs(3);
        let lease = take_lease_for(&pool, "a", "w1", length)
            .await
            .unwrap()
            .unwrap();
        assert!(until(&pool).await > chrono::Duration::seconds(2));
        // An error after the lease was taken: the guard goes out of scope unreleased.
        let failed = async {
            let _lease = lease;
            Err::<(), _>(anyhow::anyhow!("injected"))
        };
        assert!(failed.await.is_err());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(until(&pool).await <= chrono::Duration::zero(), "given up");
        // Past several renewal periods nothing renews it, and another worker takes it.
        tokio::time::sleep(length).await;
        assert!(
            until(&pool).await <= chrono::Duration::zero(),
            "renewed no more"
        );
        let other = take_lease_for(&pool, "a", "w2", length).await.unwrap();
        assert!(other.is_ok());
        drop(other);
        pool.close().await;
        db.drop_now().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lease_taken_over_cancels_the_work_it_guards() {
        let Some(db) = pg::database("lease_lost").await else {
            return;
        };
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::raw_sql(LEASES).execute(&pool).await.unwrap();
        let mut lease = take_lease_for(&pool, "a", "w1", Duration::from_secs(3))
            .await
            .unwrap()
            .unwrap();
        // Another worker took it (as after this one was presumed dead).
        sqlx::query("UPDATE inbox_leases SET owner = 'w2', fence = fence + 1")
            .execute(&pool)
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let ran = lease
            .guard(tokio::time::sleep(Duration::from_secs(60)))
            .await;
        assert!(ran.is_none(), "the work was cancelled");
        assert!(started.elapsed() < Duration::from_secs(5));
        // Giving it up does not touch the other worker's lease.
        lease.release().await.unwrap();
        assert!(until(&pool).await > chrono::Duration::zero());
        pool.close().await;
        db.drop_now().await;
    }
}
