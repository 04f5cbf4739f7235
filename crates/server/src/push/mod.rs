//! The push intake: Mercado Libre's and Ozon's notifications journaled, answered with
//! the vendor's exact answer, and handed to a [`Scheduler`]; Mercado Libre's missed feeds
//! read at start and every hour; the journal replayed at start.
//!
//! A host mounts [`push_router`] in its own axum app ([`Push::router`]); [`serve`] is the
//! whole of `inbox serve`: the intake, the engine and a listener.
//!
//! - A notification is journaled in the store, then answered; its work (reading the
//!   notified conversation again with that account's credentials) happens after, under
//!   the scheduler. Pending entries are replayed at start, so a process killed between
//!   answer and work loses nothing.
//! - Accounts that push (Mercado Libre, Ozon) are reconciled every `poll_interval` as the
//!   safety net; the others at their own interval.
//! - Mercado Libre's missed feeds are read at start and every hour, per application, and
//!   processed like pushes (their keys drop the ones already journaled).

mod receive;

pub use receive::{push_router, MAX_BODY};

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use marketplace_inbox::push::{self, Notice, Unaddressed};
use marketplace_inbox::sync::journal::JournalState;
use marketplace_inbox::sync::PostgresStore;
use marketplace_inbox::{Inbox, InboxConfig, Marketplace};
use tokio::task::JoinHandle;

use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::schedule::{jobs, Local, Scheduler, Waiting};
use crate::sink::Sink;
use crate::store::Db;
use crate::text::{describe, one_line, MAX_LINE};
use crate::webhooks::WebhookOptions;
use crate::work::{Budgets, Target, JOURNAL_PER_MINUTE};

/// How often Mercado Libre's missed feeds are read.
const MISSED_FEEDS_EVERY: Duration = Duration::from_secs(3600);
/// How long settled journal entries are kept (their keys keep redeliveries out; Mercado
/// Libre keeps missed feeds two days).
const JOURNAL_KEPT: chrono::Duration = chrono::Duration::days(3);
/// How long a stopping process waits for the steps under way.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How many accounts a fleet member's job engine runs at once.
const FLEET_CONCURRENCY: usize = 16;

/// What the routes share: the engine, where work goes, the counters.
pub struct PushState {
    engine: Arc<Engine>,
    scheduler: Scheduler,
    metrics: Arc<Metrics>,
    /// Each account's journal writes: a flood of notifications naming a configured seller
    /// (Mercado Libre seller ids are public) costs the store a bounded number of rows.
    journal_budgets: Budgets,
    secret: Option<String>,
    ready: AtomicBool,
    /// Sellers already logged as naming no configured account (bounded).
    unaddressed: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for PushState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushState")
            .field("scheduler", &self.scheduler)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

impl PushState {
    /// Logs, once per marketplace and seller, a notification for no configured account.
    fn log_unaddressed(&self, notice: &Notice, why: Unaddressed) {
        let seller = notice.seller.as_deref().unwrap_or("(none)");
        let key = format!("{}|{seller}|{}", notice.marketplace, why.as_str());
        let first = self
            .unaddressed
            .lock()
            .is_ok_and(|mut seen| seen.len() < 1024 && seen.insert(key));
        if first {
            let what = match why {
                Unaddressed::UnknownSeller => "names no configured account",
                Unaddressed::WrongApplication => {
                    "names a configured seller but not the account's application"
                }
            };
            self.engine.sink().note(&one_line(
                &format!(
                    "inbox: serve: a {} notification for seller {seller:?} {what}; acknowledged, not acted on (logged once)",
                    notice.marketplace
                ),
                MAX_LINE,
            ));
        }
    }
}

/// The push intake, running: its state (for [`push_router`]), and the missed-feeds task.
pub struct Push {
    state: Arc<PushState>,
    local: Option<Arc<Local>>,
    missed: JoinHandle<()>,
}

impl Push {
    /// The intake of one process: `engine`'s accounts run by the in-process scheduler
    /// (accounts that push reconciled every `poll_interval`), the journal's pending
    /// entries replayed first. `secret` is the notification routes' path segment (`None`
    /// serves them to anyone who can reach the host).
    pub async fn local(
        engine: Arc<Engine>,
        secret: Option<String>,
        poll_interval: Duration,
    ) -> Result<Push> {
        let pending = engine
            .store()
            .journal_pending()
            .await
            .context("reading the notification journal")?;
        let metrics = Arc::new(Metrics::new());
        let local = Local::start(engine.clone(), metrics.clone(), Some(poll_interval));
        let state = Arc::new(PushState::new(
            engine,
            Scheduler::Local(local.clone()),
            metrics,
            secret,
        ));
        replay(&state, &local, pending).await;
        Ok(Push::started(state, Some(local)))
    }

    /// A fleet member's intake: a notification's journal entry and its job are one
    /// transaction on `store`, and any process running [`jobs::run`] on the database
    /// does the work.
    /// Its counters go to `metrics`, which `/metrics` renders.
    pub fn fleet(
        engine: Arc<Engine>,
        store: PostgresStore,
        secret: Option<String>,
        metrics: Arc<Metrics>,
    ) -> Push {
        let state = Arc::new(PushState::new(
            engine,
            Scheduler::Jobs(store),
            metrics,
            secret,
        ));
        Push::started(state, None)
    }

    fn started(state: Arc<PushState>, local: Option<Arc<Local>>) -> Push {
        let missed = tokio::spawn(missed_feeds(state.clone()));
        state.ready.store(true, Ordering::SeqCst);
        Push {
            state,
            local,
            missed,
        }
    }

    /// The counters `/metrics` renders.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.state.metrics.clone()
    }

    /// The routes, to serve or to merge into the host's own router.
    pub fn router(&self) -> axum::Router {
        push_router(self.state.clone())
    }

    /// The shared state.
    pub fn state(&self) -> Arc<PushState> {
        self.state.clone()
    }

    /// Stops reading missed feeds and, in one process, the account loops (the steps
    /// under way finish first, for up to 30 s; notifications not done stay pending in
    /// the journal and are replayed at the next start).
    pub async fn shutdown(self) {
        self.missed.abort();
        if let Some(local) = &self.local {
            if !local.stop(SHUTDOWN_GRACE).await {
                self.state.engine.sink().note(&format!(
                    "inbox: serve: steps still running after {} s were left; their notifications stay in the journal",
                    SHUTDOWN_GRACE.as_secs()
                ));
            }
        }
    }
}

impl PushState {
    fn new(
        engine: Arc<Engine>,
        scheduler: Scheduler,
        metrics: Arc<Metrics>,
        secret: Option<String>,
    ) -> PushState {
        PushState {
            engine,
            scheduler,
            metrics,
            journal_budgets: Budgets::per_minute(JOURNAL_PER_MINUTE),
            secret,
            ready: AtomicBool::new(false),
            unaddressed: Mutex::new(HashSet::new()),
        }
    }
}

/// `inbox serve`'s options.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Where to listen (`HOST:PORT`; port 0 picks one, printed as a note).
    pub listen: String,
    /// The store.
    pub db: Option<Db>,
    /// The secret path segment of the notification routes.
    pub secret: Option<String>,
    /// The safety-net poll of accounts that push.
    pub poll_interval: Duration,
    /// The service's public base URL: with the store's accounts, sellers connect their
    /// accounts through `PUBLIC/connect/…` ([`crate::connect`]).
    pub public_url: Option<String>,
    /// The apps sellers connect through (a config file's `applications`; the
    /// environment's otherwise).
    pub applications: InboxConfig,
    /// How webhooks are delivered and how long events are kept.
    pub webhooks: WebhookOptions,
}

/// Where `inbox serve` and `inbox worker` take their accounts from.
#[derive(Debug)]
pub enum Accounts {
    /// A fixed set: `inbox` (a config file's, when `config` is given; required for a
    /// fleet on PostgreSQL, whose tokens are then kept in the database).
    Fixed {
        /// The accounts.
        inbox: Inbox,
        /// The config file's entries, when they came from one.
        config: Option<InboxConfig>,
    },
    /// The store's own accounts, followed as they change (see [`crate::follow`]); their
    /// credentials are opened with this key.
    Store(marketplace_inbox::TokenKey),
}

/// `inbox serve`: receives notifications and keeps every account synced, handing changes
/// to `sink`, until SIGTERM or SIGINT. With a PostgreSQL store it is a fleet member: the
/// accounts run as graphile_worker jobs that this process and every worker on the
/// database share, with OAuth tokens in the database.
pub async fn serve(accounts: Accounts, options: ServeOptions, sink: Arc<dyn Sink>) -> Result<()> {
    if let Some(Db::Postgres(url)) = &options.db {
        let connections = u32::try_from(FLEET_CONCURRENCY)
            .unwrap_or(16)
            .saturating_add(4);
        let store = PostgresStore::connect(url, connections)
            .await
            .context("opening the PostgreSQL database")?;
        let (engine, following, connect) = match accounts {
            Accounts::Store(key) => {
                let engine = Arc::new(Engine::new(
                    Arc::new(Inbox::new()),
                    Arc::new(store.clone()),
                    sink,
                ));
                let directory = crate::Directory::Postgres(store.clone());
                let connect = store_routes(&options, &directory, &key, &engine)?;
                let following = crate::follow::follow(&engine, directory, key).await?;
                (engine, Some(following), connect)
            }
            Accounts::Fixed { config: None, .. } => {
                anyhow::bail!("inbox serve on PostgreSQL needs its accounts in --config FILE or in the database (inbox accounts add)")
            }
            Accounts::Fixed {
                config: Some(mut config),
                ..
            } => {
                // The safety-net poll of the accounts that push.
                for a in &mut config.accounts {
                    if matches!(a.marketplace, Marketplace::MercadoLibre | Marketplace::Ozon) {
                        a.poll_interval_secs = Some(options.poll_interval.as_secs_f64());
                    }
                }
                // The fleet's tokens, not the config file's: a refresh made here (missed
                // feeds) is the one every worker sees.
                let inbox = crate::tokens::fleet_inbox(&config, &store).await?;
                let engine = Arc::new(Engine::new(Arc::new(inbox), Arc::new(store.clone()), sink));
                (engine, None, None)
            }
        };
        let listener = bind(&options.listen).await?;
        announce(engine.sink(), &listener, options.secret.as_deref())?;
        unconnectable(engine.sink(), &options, connect.is_some());
        let metrics = Arc::new(Metrics::new());
        let webhooks = WebhookOptions {
            metrics: Some(metrics.clone()),
            ..options.webhooks.clone()
        };
        // The jobs first: the engine creates its schema, which the journal's jobs need.
        let jobs = {
            let (engine, store) = (engine.clone(), store.clone());
            tokio::spawn(
                async move { jobs::run(engine, store, FLEET_CONCURRENCY, &webhooks).await },
            )
        };
        let push = Push::fleet(engine, store, options.secret.clone(), metrics);
        let served = answer_until_stopped(&push, connect, listener).await;
        push.shutdown().await;
        if let Some(f) = following {
            f.abort();
        }
        match jobs.await {
            Ok(ran) => ran?,
            Err(e) => anyhow::bail!("the job engine's task failed: {e}"),
        }
        return served;
    }
    // The store as a directory too: its webhooks are delivered from this process.
    let directory = crate::Directory::open(options.db.clone()).await?;
    let (engine, following, connect) = match accounts {
        Accounts::Fixed { inbox, .. } => (
            Arc::new(Engine::new(Arc::new(inbox), directory.store(), sink)),
            None,
            None,
        ),
        Accounts::Store(key) => {
            let engine = Arc::new(Engine::new(Arc::new(Inbox::new()), directory.store(), sink));
            let connect = store_routes(&options, &directory, &key, &engine)?;
            let following = crate::follow::follow(&engine, directory.clone(), key).await?;
            (engine, Some(following), connect)
        }
    };
    let listener = bind(&options.listen).await?;
    announce(engine.sink(), &listener, options.secret.as_deref())?;
    unconnectable(engine.sink(), &options, connect.is_some());
    let push = Push::local(engine, options.secret.clone(), options.poll_interval).await?;
    let webhooks = WebhookOptions {
        metrics: Some(push.metrics()),
        ..options.webhooks.clone()
    };
    let delivering = crate::webhooks::spawn(directory, &webhooks)?;
    let served = answer_until_stopped(&push, connect, listener).await;
    push.shutdown().await;
    delivering.abort();
    if let Some(f) = following {
        f.abort();
    }
    served
}

/// Says that a public URL was given to a service whose accounts come from a file, where
/// sellers cannot connect theirs.
fn unconnectable(sink: &dyn Sink, options: &ServeOptions, store_accounts: bool) {
    if options.public_url.is_some() && !store_accounts {
        sink.note("inbox: serve: warning: --public-url is ignored: the accounts come from --config, so sellers cannot connect accounts here (run on the database's accounts to connect them)");
    }
}

/// The routes of a service that runs the store's accounts: the HTTP API, and the
/// connect routes when it has a public URL.
fn store_routes(
    options: &ServeOptions,
    directory: &crate::Directory,
    key: &marketplace_inbox::TokenKey,
    engine: &Arc<Engine>,
) -> Result<Option<axum::Router>> {
    let api = crate::api::api_router(
        crate::api::ApiState::new(
            directory.clone(),
            engine.clone(),
            key,
            options.public_url.as_deref(),
        )
        .webhooks_allow_private(options.webhooks.allow_private),
    );
    let Some(public) = &options.public_url else {
        return Ok(Some(api));
    };
    let connect = crate::connect::Connect::new(
        directory.clone(),
        key.clone(),
        options.applications.clone(),
        public,
        engine.sink_arc(),
    )?;
    Ok(Some(
        api.merge(crate::connect::connect_router(Arc::new(connect))),
    ))
}

async fn bind(listen: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))
}

/// Says where it listens.
fn announce(
    sink: &dyn Sink,
    listener: &tokio::net::TcpListener,
    secret: Option<&str>,
) -> Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    let routes = match secret {
        Some(_) => "/notifications/***/mercadolibre and /notifications/***/ozon",
        None => {
            sink.note(&format!(
                "inbox: serve: warning: no notification secret, so anyone who can reach {addr} can post notifications (they cause reads only for the accounts they name)"
            ));
            "/notifications/mercadolibre and /notifications/ozon"
        }
    };
    sink.note(&format!(
        "inbox: serve: listening on http://{addr} ({routes}; /healthz, /readyz, /metrics)"
    ));
    Ok(())
}

/// Answers on `listener` until SIGTERM or SIGINT.
async fn answer_until_stopped(
    push: &Push,
    extra: Option<axum::Router>,
    listener: tokio::net::TcpListener,
) -> Result<()> {
    let router = match extra {
        Some(extra) => push.router().merge(extra),
        None => push.router(),
    }
    .fallback(crate::api::no_route);
    axum::serve(listener, router)
        .with_graceful_shutdown(crate::shutdown_signal())
        .await
        .context("serving")
}

/// Hands the journal's pending entries to their accounts' worklists again.
async fn replay(
    shared: &PushState,
    local: &Local,
    pending: Vec<marketplace_inbox::sync::journal::Entry>,
) {
    if pending.is_empty() {
        return;
    }
    shared.engine.sink().note(&format!(
        "inbox: serve: {} notifications from before the last stop are processed now",
        pending.len()
    ));
    let mut dropped = Vec::new();
    for e in pending {
        // What the entry asks: its target as journaled (an entry of an older journal
        // without one: its body read again).
        let target = e
            .entry
            .target
            .as_deref()
            .and_then(Target::parse)
            .or_else(|| {
                push::read(e.entry.marketplace, e.entry.raw.as_bytes())
                    .ok()
                    .and_then(|notice| Target::of(&notice.hint))
            });
        let queued = match (target, e.entry.account.as_deref()) {
            (Some(target), Some(account)) => local.add(
                account,
                target,
                Waiting {
                    journal: e.id,
                    received: Instant::now(),
                    attempts: 0,
                },
            ),
            _ => false,
        };
        if !queued {
            dropped.push(e.id);
        }
    }
    if !dropped.is_empty() {
        // An account no longer configured, or a body this build does not read.
        if let Err(err) = shared
            .engine
            .store()
            .journal_settle(dropped, JournalState::Ignored)
            .await
        {
            shared
                .engine
                .sink()
                .note(&format!("inbox: serve: settling the journal failed: {err}"));
        }
    }
}

/// Reads Mercado Libre's missed feeds at start and every hour, once per application (with
/// one of its accounts' credentials), processing them like pushes; prunes the journal.
async fn missed_feeds(shared: Arc<PushState>) {
    loop {
        let mut applications: BTreeMap<String, marketplace_inbox::Account> = BTreeMap::new();
        for a in shared.engine.inbox().accounts() {
            if a.marketplace() == Marketplace::MercadoLibre {
                if let Some(app) = a.push_application() {
                    applications
                        .entry(app.to_string())
                        .or_insert_with(|| a.clone());
                }
            }
        }
        for (app, account) in &applications {
            match account.missed_notifications(app).await {
                Ok(missed) => {
                    for m in missed {
                        let journaled = receive::journal(
                            &shared,
                            &m.notice,
                            m.body.as_bytes(),
                            chrono::Utc::now(),
                            Instant::now(),
                        )
                        .await;
                        if let Err(e) = journaled {
                            shared.engine.sink().note(&format!(
                                "inbox: serve: journaling a missed notification failed: {e}"
                            ));
                        }
                    }
                }
                Err(e) => shared.engine.sink().note(&one_line(
                    &format!(
                        "inbox: serve: reading Mercado Libre's missed feeds of application {app} failed: {}",
                        describe(&anyhow::anyhow!("{e}"))
                    ),
                    MAX_LINE,
                )),
            }
        }
        if let Err(e) = shared
            .engine
            .store()
            .journal_prune(chrono::Utc::now() - JOURNAL_KEPT)
            .await
        {
            shared
                .engine
                .sink()
                .note(&format!("inbox: serve: pruning the journal failed: {e}"));
        }
        tokio::time::sleep(MISSED_FEEDS_EVERY).await;
    }
}
