//! `inbox worker`: syncs the configured accounts as graphile_worker jobs on PostgreSQL,
//! so that any number of worker processes, on any number of machines, share the work.
//!
//! - One job per account (`job_key` `inbox-sync:{account}`): it runs one sync step,
//!   commits it (compare-and-set on the account's checkpoint), and schedules the
//!   account's next run `poll_interval_secs` later. At start a worker adds the job of
//!   every configured account that has none (adding it again changes nothing), so one
//!   worker or ten with one config do the same.
//! - An account never runs in two workers at once: a job first takes the account's
//!   lease (`inbox_leases`: owner, expiry, fencing token), renewed while the step runs
//!   and released after; a job that finds it held runs again when it expires. Should the
//!   engine run a job twice anyway (recovery of a worker it believed dead), the store's
//!   compare-and-set lets only one commit count.
//! - A worker that died is recovered (heartbeats; its jobs run again after a sweep); a
//!   worker stopped with SIGTERM or SIGINT finishes or hands back its running jobs.
//! - Application-wide rate limits (Allegro's, per client id) hold for the fleet: every
//!   worker beats in `inbox_workers` and sends its share (1 / live workers) of them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use graphile_worker::{
    IntoTaskHandlerResult, JobKeyMode, JobSpecBuilder, TaskHandler, WorkerContext, WorkerOptions,
    WorkerUtils,
};
use marketplace_inbox::sync::journal::JournalState;
use marketplace_inbox::sync::PostgresStore;
use marketplace_inbox::{Credentials, Inbox, InboxConfig, PostgresTokens, TokenKey, TOKEN_KEY_ENV};
use serde::{Deserialize, Serialize};

/// How long a lease holds without renewal.
const LEASE: Duration = Duration::from_secs(30);

/// What every job of this process shares.
#[derive(Clone)]
struct Fleet {
    inbox: Arc<Inbox>,
    store: PostgresStore,
    json: bool,
    /// The notification fetch budget of each account, in this process.
    budgets: Arc<crate::serve::Budgets>,
    /// Steps failed in a row, by account (this process's view): the backoff.
    failures: Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").finish_non_exhaustive()
    }
}

/// The job: one sync step of one account.
#[derive(Debug, Deserialize, Serialize)]
struct SyncAccount {
    account: String,
}

fn job_key(account: &str) -> String {
    format!("inbox-sync:{account}")
}

impl TaskHandler for SyncAccount {
    const IDENTIFIER: &'static str = "inbox_sync_account";

    async fn run(self, ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        let Some(fleet) = ctx.get_ext::<Fleet>().cloned() else {
            return Err("the worker has no accounts".to_string());
        };
        let utils = WorkerUtils::new(ctx.database().clone(), ctx.schema().clone());
        let Err(e) = fleet.step(&utils, ctx.worker_id(), &self.account).await else {
            return Ok(());
        };
        // The database failed under the step (taking or giving up the lease, scheduling):
        // the account runs again shortly, not after the engine's exponential backoff,
        // which reaches hours; only when even that cannot be scheduled does the job fail.
        eprintln!(
            "inbox: {}: the step's bookkeeping failed: {}; trying again in {} s",
            self.account,
            crate::describe(&e),
            RETRY_SOON.as_secs()
        );
        let soon = chrono::Utc::now() + chrono::Duration::seconds(RETRY_SOON.as_secs() as i64);
        schedule(&utils, &self.account, soon, JobKeyMode::Replace)
            .await
            .map_err(|again| format!("{e:#}; then {again:#}"))
    }
}

/// How soon an account whose step's bookkeeping failed runs again.
const RETRY_SOON: Duration = Duration::from_secs(5);

const LEASES: &str = "CREATE TABLE IF NOT EXISTS inbox_leases (
    account TEXT PRIMARY KEY, owner TEXT NOT NULL, until TIMESTAMPTZ NOT NULL,
    fence BIGINT NOT NULL DEFAULT 0);
  CREATE TABLE IF NOT EXISTS inbox_workers (id TEXT PRIMARY KEY, seen TIMESTAMPTZ NOT NULL)";

/// How often a worker says it is alive and counts the others.
const HEARTBEAT: Duration = Duration::from_secs(3);
/// A worker not heard from for this long no longer counts.
const ALIVE_SECS: f64 = 10.0;

/// Says this worker is alive, and takes its share of the application-wide rate limits
/// from the number of live workers (so that together they keep to the vendor's limit).
async fn heartbeat(pool: &sqlx::PgPool, id: &str) -> Result<u32> {
    sqlx::query(
        "INSERT INTO inbox_workers (id, seen) VALUES ($1, now())
         ON CONFLICT (id) DO UPDATE SET seen = now()",
    )
    .bind(id)
    .execute(pool)
    .await?;
    let live: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM inbox_workers WHERE seen > now() - make_interval(secs => $1)",
    )
    .bind(ALIVE_SECS)
    .fetch_one(pool)
    .await?;
    sqlx::query("DELETE FROM inbox_workers WHERE seen < now() - interval '1 hour'")
        .execute(pool)
        .await?;
    let share = u32::try_from(live).unwrap_or(u32::MAX).max(1);
    marketplace_inbox::set_fleet_share(share);
    Ok(share)
}

/// An account's lease, held by this worker: a guard. It is renewed every third of its
/// length while held; dropping it (released or not, an early `?` included) stops the
/// renewal and gives the lease up. A lease found taken by another worker, or not renewed
/// for its whole length, is lost: [`Lease::lost`] resolves, and the work it guards is
/// cancelled (a cancelled chunk's transaction rolls back).
struct Lease {
    pool: sqlx::PgPool,
    account: String,
    fence: i64,
    renew: tokio::task::JoinHandle<()>,
    lost: tokio::sync::watch::Receiver<bool>,
    released: bool,
}

/// Takes `account`'s lease for `owner`; when another worker holds it, the instant it
/// lapses.
async fn take_lease(
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
                eprintln!("inbox: {account}: the lease was taken by another worker; stopping");
                let _ = lose.send(true);
                return;
            }
            Err(e) if renewed.elapsed() >= length => {
                eprintln!(
                    "inbox: {account}: the lease could not be renewed for {} s ({e}); stopping",
                    length.as_secs()
                );
                let _ = lose.send(true);
                return;
            }
            Err(e) => eprintln!("inbox: {account}: renewing the lease failed ({e}); trying again"),
        }
    }
}

impl Lease {
    /// Resolves once the lease is lost (never while it is held).
    async fn lost(&mut self) {
        if self.lost.wait_for(|lost| *lost).await.is_err() {
            // The renewal ended without saying lost (aborted): held until released.
            std::future::pending::<()>().await;
        }
    }

    /// Runs `work` while the lease is held: `None` when the lease was lost first (the
    /// work is cancelled).
    async fn guard<T>(&mut self, work: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            done = work => Some(done),
            () = self.lost() => None,
        }
    }

    /// Gives the lease up (only if it is still this one: the fencing token).
    async fn release(mut self) -> Result<()> {
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

/// How long an account that must be authorised again waits before it is tried again.
const PARKED: Duration = Duration::from_secs(3600);

/// The longest wait between the steps of an account that keeps failing.
const BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// When an account whose last `failures` steps failed runs again: its interval doubled
/// per failure, capped at [`BACKOFF_MAX`] (the one retry policy's backoff), less up to a
/// fifth (a jitter fixed per account and failure, so accounts that failed together
/// spread out).
fn backoff(interval: Duration, failures: u32, account: &str) -> Duration {
    let policy = marketplace_inbox::RetryPolicy {
        base_delay: interval,
        max_delay: BACKOFF_MAX,
        ..marketplace_inbox::RetryPolicy::default()
    };
    let mut seed: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(failures);
    for b in account.bytes() {
        seed = (seed ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let fifth = (seed % 1000) as f64 / 1000.0 * 0.2;
    policy.backoff(failures.saturating_add(1), 1.0 - fifth)
}

/// How soon the job of an account this worker does not know runs again (another worker
/// may know it, or this one after its configuration changes).
const UNKNOWN_AGAIN: chrono::Duration = chrono::Duration::seconds(30);

impl Fleet {
    /// Runs one step of `name` under its lease and schedules the next.
    async fn step(&self, utils: &WorkerUtils, owner: &str, name: &str) -> Result<()> {
        // An account this worker does not know is requeued, never dropped: a worker
        // whose configuration lacks it must not stop it for the whole fleet.
        let Some(account) = self.inbox.account(name) else {
            eprintln!("inbox: {name}: not in this worker's configuration; left for another worker");
            let at = chrono::Utc::now() + UNKNOWN_AGAIN;
            return schedule(utils, name, at, JobKeyMode::Replace).await;
        };
        let mut lease = match take_lease(self.store.pool(), name, owner).await? {
            Ok(lease) => lease,
            // Another worker runs it: come back when its lease ends.
            Err(until) => {
                let at = until + chrono::Duration::milliseconds(100);
                return schedule(utils, name, at, JobKeyMode::Replace).await;
            }
        };
        // No time limit: a step commits in chunks, so a long first import makes
        // durable progress, and the lease is renewed while it runs.
        let pass = crate::sync::account_pass(&self.inbox, account, &self.store, self.json);
        let outcome = lease.guard(pass).await;
        if outcome.is_none() {
            eprintln!("inbox: {name}: the lease was lost; the step was stopped");
        }
        lease.release().await?;
        let interval = account.poll_interval();
        let next = match outcome {
            Some(o) if o.committed => {
                self.recovered(name);
                interval
            }
            // Parked: no token call can succeed until the seller authorises again.
            Some(o) if o.reauthorize => {
                eprintln!(
                    "inbox: {name}: needs authorising again; parked for {} min (no further token calls)",
                    PARKED.as_secs() / 60
                );
                PARKED
            }
            Some(_) => backoff(interval, self.failed(name), name),
            None => interval,
        };
        let next = chrono::Duration::from_std(next).unwrap_or(chrono::Duration::seconds(60));
        schedule(utils, name, chrono::Utc::now() + next, JobKeyMode::Replace).await
    }

    /// Counts a failed step of `name`; the steps failed in a row.
    fn failed(&self, name: &str) -> u32 {
        let Ok(mut all) = self.failures.lock() else {
            return 0;
        };
        let n = all.entry(name.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// A step of `name` was committed: its failures are forgotten.
    fn recovered(&self, name: &str) {
        if let Ok(mut all) = self.failures.lock() {
            all.remove(name);
        }
    }

    /// Runs what notifications asked of `name` (`target`) under the account's lease, and
    /// settles the journal entries it answers.
    async fn target(&self, utils: &WorkerUtils, owner: &str, job: &SyncTarget) -> Result<()> {
        // Requeued, its journal entries left pending, when this worker does not know the
        // account.
        let Some(account) = self.inbox.account(&job.account) else {
            return add_target(utils, job, chrono::Utc::now() + UNKNOWN_AGAIN).await;
        };
        let pool = self.store.pool();
        let mut lease = match take_lease(pool, &job.account, owner).await? {
            Ok(lease) => lease,
            // The account is being synced: come back shortly.
            Err(until) => {
                let soon = chrono::Utc::now() + chrono::Duration::milliseconds(500);
                return add_target(utils, job, until.min(soon)).await;
            }
        };
        // The entries this run answers: those journaled before it started (a later one
        // has replaced this job with the next run).
        let newest: Option<i64> = sqlx::query_scalar(
            "SELECT max(id) FROM journal WHERE account = $1 AND target = $2 AND state = 'pending'",
        )
        .bind(&job.account)
        .bind(&job.target)
        .fetch_one(pool)
        .await?;
        let ran = match crate::serve::Target::parse(&job.target) {
            Some(target) => {
                let work = crate::serve::run_target(
                    &self.inbox,
                    account,
                    &self.store,
                    &target,
                    self.json,
                    &self.budgets,
                );
                match lease.guard(work).await {
                    Some(ran) => Some(ran),
                    // The lease was lost: the entries stay pending, the work runs again.
                    None => {
                        drop(lease);
                        let soon = chrono::Utc::now() + chrono::Duration::seconds(1);
                        return add_target(utils, job, soon).await;
                    }
                }
            }
            None => None,
        };
        lease.release().await?;
        let state = match ran {
            Some(crate::serve::Ran::Done) => JournalState::Done,
            // The entries stay pending; the engine runs the job again after its backoff.
            Some(crate::serve::Ran::Retry(reason)) => {
                anyhow::bail!("a notification's work failed ({reason}); it runs again")
            }
            _ => JournalState::Ignored,
        };
        if let Some(newest) = newest {
            self.store
                .journal_settle_target(&job.account, &job.target, newest, state)
                .await?;
        }
        Ok(())
    }
}

/// A notification's work: what it asks of one account (`conversation:ID`,
/// `message:ID` or `status:ID`), keyed per account and target so that notifications that
/// arrive before it runs are one run, and those that arrive while it runs one more.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct SyncTarget {
    /// The account.
    pub account: String,
    /// What to read again.
    pub target: String,
}

impl TaskHandler for SyncTarget {
    const IDENTIFIER: &'static str = "inbox_sync_target";

    async fn run(self, ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        let Some(fleet) = ctx.get_ext::<Fleet>().cloned() else {
            return Err("the worker has no accounts".to_string());
        };
        let utils = WorkerUtils::new(ctx.database().clone(), ctx.schema().clone());
        fleet
            .target(&utils, ctx.worker_id(), &self)
            .await
            .map_err(|e| format!("{e:#}"))
    }
}

/// The job key of a notification's work.
pub(crate) fn target_key(account: &str, target: &str) -> String {
    format!("inbox-target:{account}:{target}")
}

async fn add_target(
    utils: &WorkerUtils,
    job: &SyncTarget,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let spec = JobSpecBuilder::new()
        .job_key(target_key(&job.account, &job.target))
        .job_key_mode(JobKeyMode::Replace)
        .run_at(at)
        .max_attempts(5)
        .build();
    utils
        .add_job(job.clone(), spec)
        .await
        .map(|_| ())
        .context("scheduling a notification's work")
}

/// The account's job, to run at `at`; a pending one is replaced (`Replace`), or keeps
/// its own time (`PreserveRunAt`).
async fn schedule(
    utils: &WorkerUtils,
    account: &str,
    at: chrono::DateTime<chrono::Utc>,
    mode: JobKeyMode,
) -> Result<()> {
    let spec = JobSpecBuilder::new()
        .job_key(job_key(account))
        .job_key_mode(mode)
        .run_at(at)
        .max_attempts(1000)
        .build();
    utils
        .add_job(
            SyncAccount {
                account: account.to_string(),
            },
            spec,
        )
        .await
        .map(|_| ())
        .with_context(|| format!("scheduling the next run of {account}"))
}

/// How long the job engine waits before starting again after it failed (doubling up to
/// [`RESTART_MAX`] while it keeps failing).
const RESTART_MIN: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(30);

/// The job engine on `store`'s pool, running [`SyncAccount`] jobs with `fleet`.
async fn engine(
    store: &PostgresStore,
    fleet: Fleet,
    concurrency: usize,
) -> Result<graphile_worker::Worker> {
    WorkerOptions::default()
        .pg_pool(store.pool().clone())
        .schema("graphile_worker")
        .concurrency(concurrency)
        .poll_interval(Duration::from_millis(500))
        .heartbeat_interval(Duration::from_secs(5))
        .sweep_interval(Duration::from_secs(10))
        .sweep_threshold(Duration::from_secs(30))
        .recovery_delay(Duration::from_secs(1))
        .shutdown_grace_period(Duration::from_secs(30))
        .shutdown_interrupted_job_retry_delay(Duration::from_secs(1))
        .define_job::<SyncAccount>()
        .define_job::<SyncTarget>()
        .add_extension(fleet)
        .init()
        .await
        .context("starting the job engine")
}

/// Resolves on SIGTERM or SIGINT.
pub(crate) async fn stop_requested() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Adds the job of each account that has none, to run now. A worker joining a running
/// fleet adds nothing — and never a second job beside one another worker is running (the
/// engine would add one, since a running job cannot be changed).
async fn add_missing_jobs(
    store: &PostgresStore,
    utils: &WorkerUtils,
    names: &[String],
) -> Result<()> {
    let keys: Vec<String> = names.iter().map(|n| job_key(n)).collect();
    let existing: HashSet<String> =
        sqlx::query_scalar("SELECT key FROM graphile_worker._private_jobs WHERE key = ANY($1)")
            .bind(&keys)
            .fetch_all(store.pool())
            .await
            .context("listing the accounts' jobs")?
            .into_iter()
            .collect();
    for name in names.iter().filter(|n| !existing.contains(&job_key(n))) {
        // Added meanwhile by another worker starting too: its time is kept.
        schedule(utils, name, chrono::Utc::now(), JobKeyMode::PreserveRunAt).await?;
    }
    Ok(())
}

/// Runs the job engine until it is stopped by SIGTERM or SIGINT. Should it fail (the
/// database gone for a moment: a fetch or a release that errs ends the engine's run), it
/// starts again after a pause, so that a blip costs a worker nothing; every start adds
/// the job of each account that has none.
async fn supervise(
    store: &PostgresStore,
    fleet: Fleet,
    concurrency: usize,
    names: &[String],
) -> Result<()> {
    let mut pause = RESTART_MIN;
    loop {
        let began = std::time::Instant::now();
        let failed = match engine(store, fleet.clone(), concurrency).await {
            Ok(worker) => {
                let utils = worker.create_utils();
                match add_missing_jobs(store, &utils, names).await {
                    Ok(()) => match worker.run().await {
                        Ok(()) => return Ok(()),
                        Err(e) => anyhow::Error::new(e).context("running jobs"),
                    },
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        if began.elapsed() > RESTART_MAX * 2 {
            pause = RESTART_MIN;
        }
        eprintln!(
            "inbox: worker: {}; starting again in {} s",
            crate::describe(&failed),
            pause.as_secs()
        );
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop_requested() => return Ok(()),
        }
        pause = (pause * 2).min(RESTART_MAX);
    }
}

/// Runs jobs for the accounts of `config` until SIGTERM or SIGINT. OAuth accounts keep
/// their rotated tokens in the database, encrypted with [`TOKEN_KEY_ENV`], and refresh one
/// worker at a time.
/// The fleet's inbox: `config`'s accounts, their OAuth tokens in the database
/// (`inbox_tokens`, encrypted with [`TOKEN_KEY_ENV`]), shared with every process of the
/// fleet — workers and `serve` alike refresh through it, never behind each other's back.
pub(crate) async fn fleet_inbox(config: &InboxConfig, store: &PostgresStore) -> Result<Inbox> {
    let oauth = config
        .accounts
        .iter()
        .any(|a| matches!(a.credentials, Credentials::OAuth(_)));
    let key = TokenKey::from_env()?;
    if oauth && key.is_none() {
        anyhow::bail!(
            "the OAuth accounts of a fleet need {TOKEN_KEY_ENV} (64 hex digits): their rotated tokens are shared, encrypted, in the database"
        );
    }
    Ok(match key {
        Some(key) => {
            let tokens = PostgresTokens::new(store.pool().clone(), key).await?;
            Inbox::from_config_with_store(config, Arc::new(tokens))?
        }
        None => Inbox::from_config(config)?,
    })
}

pub async fn run(config: InboxConfig, url: String, concurrency: usize, json: bool) -> Result<()> {
    let url = url.as_str();
    let concurrency = concurrency.clamp(1, 256);
    let connections = u32::try_from(concurrency).unwrap_or(256).saturating_add(4);
    let store = PostgresStore::connect(url, connections)
        .await
        .context("opening the PostgreSQL database")?;
    // Workers starting together: one creates the table, the others wait for it.
    let mut tx = store.pool().begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('inbox_leases'))")
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(LEASES)
        .execute(&mut *tx)
        .await
        .context("creating the leases table")?;
    tx.commit().await?;
    let inbox = fleet_inbox(&config, &store).await?;
    let names: Vec<String> = inbox.accounts().map(|a| a.name().to_string()).collect();
    let id = format!(
        "{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    heartbeat(store.pool(), &id)
        .await
        .context("registering the worker")?;
    let beating = {
        let (pool, id) = (store.pool().clone(), id.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                if let Err(e) = heartbeat(&pool, &id).await {
                    eprintln!("inbox: worker heartbeat failed: {e:#}");
                }
            }
        })
    };
    let fleet = Fleet {
        inbox: Arc::new(inbox),
        store: store.clone(),
        json,
        budgets: Arc::new(crate::serve::Budgets::default()),
        failures: Arc::default(),
    };
    let ran = supervise(&store, fleet, concurrency, &names).await;
    beating.abort();
    // Leaving: the others take this worker's share at their next heartbeat.
    let _ = sqlx::query("DELETE FROM inbox_workers WHERE id = $1")
        .bind(&id)
        .execute(store.pool())
        .await;
    ran
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

    #[test]
    fn a_failing_account_backs_off_doubling_with_jitter_up_to_an_hour() {
        let second = Duration::from_secs(1);
        for (failures, low, high) in [
            (1u32, 1.6, 2.0),
            (2, 3.2, 4.0),
            (5, 25.6, 32.0),
            (12, 2880.0, 3600.0),
            (40, 2880.0, 3600.0),
        ] {
            let wait = backoff(second, failures, "allegro-7").as_secs_f64();
            assert!((low..=high).contains(&wait), "{failures}: {wait}");
            assert_eq!(backoff(second, failures, "allegro-7").as_secs_f64(), wait);
        }
        // Accounts that failed together spread out.
        let waits: std::collections::HashSet<u128> = (0..50)
            .map(|i| backoff(second, 3, &format!("ozon-{i}")).as_millis())
            .collect();
        assert!(waits.len() > 25, "{waits:?}");
        assert_eq!(backoff(Duration::from_secs(86_400), 1, "a").as_secs(), {
            let w = backoff(Duration::from_secs(86_400), 1, "a").as_secs();
            assert!(w <= 3600);
            w
        });
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
