//! The scheduler on PostgreSQL: every account's work as graphile_worker jobs, so that
//! any number of processes, on any number of machines, share it.
//!
//! - One job per account (`job_key` `inbox-sync:{account}`): it runs the account's
//!   reconcile step under its lease and schedules the next run when the step says (its
//!   interval, a backoff with jitter, or parked). At start every account that has no job
//!   gets one (adding it again changes nothing), so one process or ten with one config do
//!   the same.
//! - An account never runs in two processes at once: a job first takes the account's
//!   [`Lease`](crate::lease::Lease); a job that finds it held runs again when it lapses. Should the engine run
//!   a job twice anyway (recovery of a process it believed dead), the store's
//!   compare-and-set lets only one commit count.
//! - A job for an account this process does not know is requeued, never dropped: a
//!   process whose configuration lacks it must not stop it for the whole fleet.
//! - A process that died is recovered (heartbeats; its jobs run again after a sweep); one
//!   stopped with SIGTERM or SIGINT finishes or hands back its running jobs.
//! - Application-wide rate limits (Allegro's, per client id) hold for the fleet: every
//!   process beats in `inbox_workers` and sends its share (1 / live processes) of them.

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
use marketplace_inbox::InboxConfig;
use serde::{Deserialize, Serialize};

use crate::engine::{Engine, Next};
use crate::lease::{take_lease, LEASES};
use crate::sink::Sink;
use crate::text::describe;
use crate::webhooks::WebhookOptions;
use crate::work::{run_target, Ran, Target};

/// What every job of this process shares.
#[derive(Clone)]
struct Fleet {
    engine: Arc<Engine>,
    store: PostgresStore,
    /// The store's accounts, when the engine follows them (else a config file's).
    directory: Option<crate::Directory>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").finish_non_exhaustive()
    }
}

/// The job: one reconcile step of one account.
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
        fleet.engine.sink().note(&format!(
            "inbox: {}: the step's bookkeeping failed: {}; trying again in {} s",
            self.account,
            describe(&e),
            RETRY_SOON.as_secs()
        ));
        let soon = chrono::Utc::now() + chrono::Duration::seconds(RETRY_SOON.as_secs() as i64);
        schedule(&utils, &self.account, soon, JobKeyMode::Replace)
            .await
            .map_err(|again| format!("{e:#}; then {again:#}"))
    }
}

/// How soon an account whose step's bookkeeping failed runs again.
const RETRY_SOON: Duration = Duration::from_secs(5);

/// How often a process says it is alive and counts the others.
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

/// How soon the job of an account this process does not know runs again (another
/// process may know it, or this one after its configuration changes).
const UNKNOWN_AGAIN: chrono::Duration = chrono::Duration::seconds(30);

impl Fleet {
    /// Runs one reconcile step of `name` under its lease and schedules the next.
    async fn step(&self, utils: &WorkerUtils, owner: &str, name: &str) -> Result<()> {
        let engine = &self.engine;
        let Some(account) = engine.account(name) else {
            // Following the store's accounts: one that is not there (removed, renamed)
            // has no next run; one added a moment ago that this process has not loaded
            // yet runs again shortly.
            if let Some(directory) = &self.directory {
                if active(directory, name).await? {
                    let soon = chrono::Utc::now() + chrono::Duration::seconds(2);
                    return schedule(utils, name, soon, JobKeyMode::Replace).await;
                }
                // Removed, renamed, disabled or waiting to be authorised again: no next
                // run (one is added when it is active in the engine again).
                return Ok(());
            }
            engine.sink().note(&format!(
                "inbox: {name}: not in this worker's configuration; left for another worker"
            ));
            let at = chrono::Utc::now() + UNKNOWN_AGAIN;
            return schedule(utils, name, at, JobKeyMode::Replace).await;
        };
        let mut lease = match take_lease(self.store.pool(), name, owner).await? {
            Ok(lease) => lease,
            // Another process runs it: come back when its lease ends.
            Err(until) => {
                let at = until + chrono::Duration::milliseconds(100);
                return schedule(utils, name, at, JobKeyMode::Replace).await;
            }
        };
        // No time limit: a step commits in chunks, so a long first import makes
        // durable progress, and the lease is renewed while it runs.
        let outcome = tokio::select! {
            outcome = lease.guard(engine.reconcile(&account)) => outcome,
            // Removed or renamed meanwhile: the step stops, nothing is scheduled.
            _ = engine.gone(name) => {
                lease.release().await?;
                return Ok(());
            }
        };
        lease.release().await?;
        let next = match outcome {
            Some((_, next)) => next,
            None => {
                engine.sink().note(&format!(
                    "inbox: {name}: the lease was lost; the step was stopped"
                ));
                Next::Interval(account.poll_interval())
            }
        };
        let next = chrono::Duration::from_std(next.wait()).unwrap_or(chrono::Duration::seconds(60));
        schedule(utils, name, chrono::Utc::now() + next, JobKeyMode::Replace).await
    }

    /// Runs what notifications asked of `name` (`target`) under the account's lease, and
    /// settles the journal entries it answers.
    async fn target(&self, utils: &WorkerUtils, owner: &str, job: &SyncTarget) -> Result<()> {
        // Requeued, its journal entries left pending, when this process does not know
        // the account.
        let Some(account) = self.engine.account(&job.account) else {
            if let Some(directory) = &self.directory {
                if !active(directory, &job.account).await? {
                    // The account is gone: what its notifications asked is moot.
                    self.store
                        .journal_settle_target(
                            &job.account,
                            &job.target,
                            i64::MAX,
                            JournalState::Ignored,
                        )
                        .await?;
                    return Ok(());
                }
                let soon = chrono::Utc::now() + chrono::Duration::seconds(2);
                return add_target(utils, job, soon).await;
            }
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
        let ran = match Target::parse(&job.target) {
            Some(target) => match lease
                .guard(run_target(&self.engine, &account, &target))
                .await
            {
                Some(ran) => Some(ran),
                // The lease was lost: the entries stay pending, the work runs again.
                None => {
                    drop(lease);
                    let soon = chrono::Utc::now() + chrono::Duration::seconds(1);
                    return add_target(utils, job, soon).await;
                }
            },
            None => None,
        };
        lease.release().await?;
        let state = match ran {
            Some(Ran::Done) => JournalState::Done,
            // The entries stay pending; the engine runs the job again after its backoff.
            Some(Ran::Retry(reason)) => {
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

/// Whether the store holds an active account named `name`.
async fn active(directory: &crate::Directory, name: &str) -> Result<bool> {
    Ok(directory
        .named(name)
        .await?
        .is_some_and(|a| a.state == marketplace_inbox::sync::AccountState::Active))
}

/// A notification's work: what it asks of one account (`conversation:ID`,
/// `message:ID` or `status:ID`), keyed per account and target so that notifications that
/// arrive before it runs are one run, and those that arrive while it runs one more.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SyncTarget {
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

/// The job key of a notification's work (the journal's entry and this job are added in
/// one transaction: [`marketplace_inbox::sync::PostgresStore::journal_add_with_job`]).
pub fn target_key(account: &str, target: &str) -> String {
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

/// The job engine on `store`'s pool, running this module's jobs with `fleet`.
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
        // One signal for the whole process: a SIGTERM that came while the engine was
        // starting again still stops it.
        .listen_os_shutdown_signals(false)
        .shutdown_signal(crate::shutdown_signal())
        .shutdown_grace_period(Duration::from_secs(30))
        .shutdown_interrupted_job_retry_delay(Duration::from_secs(1))
        .define_job::<SyncAccount>()
        .define_job::<SyncTarget>()
        .add_extension(fleet)
        .init()
        .await
        .context("starting the job engine")
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

/// Adds the job of every account that appears in the engine (the store's accounts
/// changed), for as long as the engine runs.
async fn add_jobs_of_new_accounts(engine: Arc<Engine>, store: PostgresStore) {
    let mut changes = engine.accounts_changed();
    let utils = WorkerUtils::new(store.pool().clone(), "graphile_worker");
    let mut known: HashSet<String> = engine
        .inbox()
        .accounts()
        .map(|a| a.name().to_string())
        .collect();
    while changes.changed().await.is_ok() {
        let now: HashSet<String> = engine
            .inbox()
            .accounts()
            .map(|a| a.name().to_string())
            .collect();
        let added: Vec<String> = now.difference(&known).cloned().collect();
        if let Err(e) = add_missing_jobs(&store, &utils, &added).await {
            engine.sink().note(&format!("inbox: worker: scheduling new accounts failed: {e:#}; they start at the next change or restart"));
            continue;
        }
        known = now;
    }
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
        fleet.engine.sink().note(&format!(
            "inbox: worker: {}; starting again in {} s",
            describe(&failed),
            pause.as_secs()
        ));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = crate::shutdown_signal() => return Ok(()),
        }
        pause = (pause * 2).min(RESTART_MAX);
    }
}

/// Runs `engine`'s accounts as jobs on `store`'s database, `concurrency` at a time in this
/// process, until SIGTERM or SIGINT. Every process on the same database shares the work
/// (and `engine`'s inbox should refresh OAuth tokens through the database:
/// [`crate::tokens::fleet_inbox`]).
///
/// Every such process also delivers the database's webhooks as `webhooks` says, sharing
/// them with the others ([`crate::webhooks`]), woken by `LISTEN inbox_events`.
pub async fn run(
    engine: Arc<Engine>,
    store: PostgresStore,
    concurrency: usize,
    webhooks: &WebhookOptions,
) -> Result<()> {
    let concurrency = concurrency.clamp(1, 256);
    prepare(&store).await?;
    let listening = store
        .listen_for_events()
        .await
        .context("listening for events")?;
    let delivering = crate::webhooks::spawn(crate::Directory::Postgres(store.clone()), webhooks)?;
    let names: Vec<String> = engine
        .inbox()
        .accounts()
        .map(|a| a.name().to_string())
        .collect();
    let id = format!(
        "{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    heartbeat(store.pool(), &id)
        .await
        .context("registering the worker")?;
    let beating = {
        let (pool, id, engine) = (store.pool().clone(), id.clone(), engine.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                if let Err(e) = heartbeat(&pool, &id).await {
                    engine
                        .sink()
                        .note(&format!("inbox: worker heartbeat failed: {e:#}"));
                }
            }
        })
    };
    let directory = engine.directory();
    let adding = tokio::spawn(add_jobs_of_new_accounts(engine.clone(), store.clone()));
    let fleet = Fleet {
        engine,
        store: store.clone(),
        directory,
    };
    let ran = supervise(&store, fleet, concurrency, &names).await;
    beating.abort();
    adding.abort();
    listening.abort();
    delivering.abort();
    // Leaving: the others take this process's share at their next heartbeat.
    let _ = sqlx::query("DELETE FROM inbox_workers WHERE id = $1")
        .bind(&id)
        .execute(store.pool())
        .await;
    ran
}

/// Creates the leases table; processes starting together wait for the one creating it.
async fn prepare(store: &PostgresStore) -> Result<()> {
    let mut tx = store.pool().begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('inbox_leases'))")
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(LEASES)
        .execute(&mut *tx)
        .await
        .context("creating the leases table")?;
    tx.commit().await?;
    Ok(())
}

/// `inbox worker`: `config`'s accounts (or, with `None`, the database's own accounts,
/// followed as they change, their credentials opened with `key`) run as jobs on the
/// database at `url` until SIGTERM or SIGINT, their OAuth tokens shared through the
/// database ([`crate::tokens::fleet_inbox`]), changes handed to `sink`, webhooks
/// delivered as `webhooks` says.
pub async fn worker(
    config: Option<InboxConfig>,
    key: Option<marketplace_inbox::TokenKey>,
    url: &str,
    concurrency: usize,
    sink: Arc<dyn Sink>,
    webhooks: &WebhookOptions,
) -> Result<()> {
    let concurrency = concurrency.clamp(1, 256);
    let connections = u32::try_from(concurrency).unwrap_or(256).saturating_add(4);
    let store = PostgresStore::connect(url, connections)
        .await
        .context("opening the PostgreSQL database")?;
    let Some(config) = config else {
        let key = match key {
            Some(key) => key,
            None => crate::directory::required_key()?,
        };
        let engine = Arc::new(Engine::new(
            Arc::new(marketplace_inbox::Inbox::new()),
            Arc::new(store.clone()),
            sink,
        ));
        let following =
            crate::follow::follow(&engine, crate::Directory::Postgres(store.clone()), key).await?;
        let ran = run(engine, store, concurrency, webhooks).await;
        following.abort();
        return ran;
    };
    let inbox = crate::tokens::fleet_inbox(&config, &store).await?;
    let engine = Arc::new(Engine::new(Arc::new(inbox), Arc::new(store.clone()), sink));
    run(engine, store, concurrency, webhooks).await
}
