//! `inbox serve`: one long-running process that receives Mercado Libre's and Ozon's push
//! notifications, keeps every account synced, and prints every change as `watch` does.
//!
//! - A notification is journaled in the store, then answered with the vendor's exact
//!   answer; its work (reading the notified conversation again with that account's
//!   credentials) happens after, in the account's worklist ([`queue`]). Pending entries
//!   are replayed at start, so a process killed between answer and work loses nothing.
//! - Accounts that push (Mercado Libre, Ozon) are polled every `--poll-interval` as the
//!   safety net; the others at their own interval.
//! - Mercado Libre's missed feeds are read at start and every hour, per application, and
//!   processed like pushes (their keys drop the ones already journaled).

mod metrics;
mod queue;
mod receive;

pub(crate) use queue::{run_target, Budgets, Ran, Target};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use marketplace_inbox::push::{self, Notice, Unaddressed};
use marketplace_inbox::sync::journal::JournalState;
use marketplace_inbox::sync::Store;
use marketplace_inbox::{Inbox, InboxConfig, Marketplace};

use crate::sync::Db;

/// How often Mercado Libre's missed feeds are read.
const MISSED_FEEDS_EVERY: Duration = Duration::from_secs(3600);
/// How long settled journal entries are kept (their keys keep redeliveries out; Mercado
/// Libre keeps missed feeds two days).
const JOURNAL_KEPT: chrono::Duration = chrono::Duration::days(3);
/// How long a stopping process waits for the steps under way.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// `inbox serve`'s options.
pub struct Options {
    /// Where to listen (`HOST:PORT`; port 0 picks one, printed on stderr).
    pub listen: String,
    /// The store.
    pub db: Option<Db>,
    /// The secret path segment of the notification routes.
    pub secret: Option<String>,
    /// The safety-net poll of accounts that push.
    pub poll_interval: Duration,
    /// JSON lines rather than a table.
    pub json: bool,
}

/// What the routes and the account loops share.
pub struct Shared {
    inbox: Arc<Inbox>,
    store: Arc<dyn Store>,
    metrics: metrics::Metrics,
    queues: HashMap<String, Arc<queue::Queue>>,
    budgets: Budgets,
    /// Each account's journal writes: a flood of notifications naming a configured seller
    /// (Mercado Libre seller ids are public) costs the store a bounded number of rows.
    journal_budgets: Budgets,
    /// On PostgreSQL: the store whose journal entries and jobs are one transaction (any
    /// worker of the fleet runs the job); `None` in one process.
    fleet: Option<marketplace_inbox::sync::PostgresStore>,
    secret: Option<String>,
    json: bool,
    ready: AtomicBool,
    /// Sellers already logged as naming no configured account (bounded).
    unaddressed: Mutex<HashSet<String>>,
}

impl Shared {
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
            eprintln!(
                "{}",
                crate::one_line(
                    &format!(
                        "inbox: serve: a {} notification for seller {seller:?} {what}; acknowledged, not acted on (logged once)",
                        notice.marketplace
                    ),
                    crate::MAX_LINE
                )
            );
        }
    }
}

/// Runs until SIGTERM or SIGINT. With a PostgreSQL `--db`, `config` (the accounts'
/// file) runs them as a fleet member: the account polls and the notifications' work are
/// graphile_worker jobs that this process and every `inbox worker` on the database run.
pub async fn run(inbox: Inbox, options: Options, config: Option<InboxConfig>) -> Result<()> {
    if let Some(Db::Postgres(url)) = &options.db {
        let Some(mut config) = config else {
            anyhow::bail!("inbox serve on PostgreSQL needs its accounts in --config FILE");
        };
        // The safety-net poll of the accounts that push.
        for a in &mut config.accounts {
            if matches!(a.marketplace, Marketplace::MercadoLibre | Marketplace::Ozon) {
                a.poll_interval_secs = Some(options.poll_interval.as_secs_f64());
            }
        }
        let url = url.clone();
        return fleet(options, config, url).await;
    }
    let store: Arc<dyn Store> = Arc::from(crate::sync::open_store(options.db).await?);
    let pending = store
        .journal_pending()
        .await
        .context("reading the notification journal")?;
    let listener = tokio::net::TcpListener::bind(&options.listen)
        .await
        .with_context(|| format!("listening on {}", options.listen))?;
    let addr: SocketAddr = listener.local_addr()?;
    let inbox = Arc::new(inbox);
    let queues: HashMap<String, Arc<queue::Queue>> = inbox
        .accounts()
        .map(|a| (a.name().to_string(), Arc::new(queue::Queue::new())))
        .collect();
    let shared = Arc::new(Shared {
        inbox: inbox.clone(),
        store,
        metrics: metrics::Metrics::new(),
        queues,
        budgets: Budgets::default(),
        journal_budgets: Budgets::per_minute(queue::JOURNAL_PER_MINUTE),
        fleet: None,
        secret: options.secret.clone(),
        json: options.json,
        ready: AtomicBool::new(false),
        unaddressed: Mutex::new(HashSet::new()),
    });
    announce(addr, options.secret.as_deref());

    replay(&shared, pending).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut loops = Vec::new();
    for account in inbox.accounts() {
        let pushed = matches!(
            account.marketplace(),
            Marketplace::MercadoLibre | Marketplace::Ozon
        );
        let interval = if pushed {
            options.poll_interval
        } else {
            account.poll_interval()
        };
        let Some(queue) = shared.queues.get(account.name()).cloned() else {
            continue;
        };
        loops.push(tokio::spawn(queue::run(
            shared.clone(),
            account.clone(),
            queue,
            interval,
            stop_rx.clone(),
        )));
    }
    let served = answer_until_stopped(shared, listener, stop_tx).await;
    // Finish the steps under way (their notifications stay pending in the journal
    // otherwise, and are replayed at the next start).
    let finished = tokio::time::timeout(SHUTDOWN_GRACE, futures::future::join_all(loops)).await;
    if finished.is_err() {
        eprintln!(
            "inbox: serve: steps still running after {} s were left; their notifications stay in the journal",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    served
}

/// Says where it listens, and warns when anyone who can reach it can post.
fn announce(addr: SocketAddr, secret: Option<&str>) {
    let routes = match secret {
        Some(_) => "/notifications/***/mercadolibre and /notifications/***/ozon",
        None => {
            eprintln!(
                "inbox: serve: warning: no --notify-secret, so anyone who can reach {addr} can post notifications (they cause reads only for the accounts they name)"
            );
            "/notifications/mercadolibre and /notifications/ozon"
        }
    };
    eprintln!("inbox: serve: listening on http://{addr} ({routes}; /healthz, /readyz, /metrics)");
}

/// A fleet member: the HTTP side here, the work in graphile_worker jobs (run by this
/// process's engine and by every `inbox worker` on the same database).
async fn fleet(options: Options, config: InboxConfig, url: String) -> Result<()> {
    let store = marketplace_inbox::sync::PostgresStore::connect(&url, 4)
        .await
        .context("opening the PostgreSQL database")?;
    // The fleet's tokens, not the config file's: a refresh made here (missed feeds) is
    // the one every worker sees.
    let inbox = crate::worker::fleet_inbox(&config, &store).await?;
    let listener = tokio::net::TcpListener::bind(&options.listen)
        .await
        .with_context(|| format!("listening on {}", options.listen))?;
    let addr: SocketAddr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        inbox: Arc::new(inbox),
        store: Arc::new(store.clone()),
        metrics: metrics::Metrics::new(),
        queues: HashMap::new(),
        budgets: Budgets::default(),
        journal_budgets: Budgets::per_minute(queue::JOURNAL_PER_MINUTE),
        fleet: Some(store),
        secret: options.secret.clone(),
        json: options.json,
        ready: AtomicBool::new(false),
        unaddressed: Mutex::new(HashSet::new()),
    });
    announce(addr, options.secret.as_deref());
    // The engine first: it creates its schema, which the journal's jobs need.
    let engine = tokio::spawn(crate::worker::run(config, url, 16, options.json));
    let (stop_tx, _) = tokio::sync::watch::channel(false);
    let served = answer_until_stopped(shared, listener, stop_tx).await;
    match engine.await {
        Ok(ran) => ran?,
        Err(e) => anyhow::bail!("the job engine's task failed: {e}"),
    }
    served
}

/// Answers on `listener` (reading missed feeds meanwhile) until SIGTERM or SIGINT, then
/// tells the rest to stop through `stop`.
async fn answer_until_stopped(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    stop: tokio::sync::watch::Sender<bool>,
) -> Result<()> {
    let recovery = tokio::spawn(missed_feeds(shared.clone(), stop.subscribe()));
    shared
        .ready
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let served = axum::serve(listener, receive::router(shared))
        .with_graceful_shutdown(crate::worker::stop_requested())
        .await
        .context("serving");
    let _ = stop.send(true);
    recovery.abort();
    served
}

/// Hands the journal's pending entries to their accounts' worklists again.
async fn replay(shared: &Shared, pending: Vec<marketplace_inbox::sync::journal::Entry>) {
    if pending.is_empty() {
        return;
    }
    eprintln!(
        "inbox: serve: {} notifications from before the last stop are processed now",
        pending.len()
    );
    let mut dropped = Vec::new();
    for e in pending {
        let read = push::read(e.entry.marketplace, e.entry.raw.as_bytes());
        let queued = match (read, e.entry.account.as_deref()) {
            (Ok(notice), Some(account)) => shared.queues.get(account).is_some_and(|q| {
                q.add(
                    &notice.hint,
                    queue::Waiting {
                        journal: e.id,
                        received: Instant::now(),
                        attempts: 0,
                    },
                )
            }),
            _ => false,
        };
        if !queued {
            dropped.push(e.id);
        }
    }
    if !dropped.is_empty() {
        // An account no longer configured, or a body this build does not read.
        if let Err(err) = shared
            .store
            .journal_settle(dropped, JournalState::Ignored)
            .await
        {
            eprintln!("inbox: serve: settling the journal failed: {err}");
        }
    }
}

/// Reads Mercado Libre's missed feeds at start and every hour, once per application (with
/// one of its accounts' credentials), processing them like pushes; prunes the journal.
async fn missed_feeds(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let mut applications: BTreeMap<String, marketplace_inbox::Account> = BTreeMap::new();
        for a in shared.inbox.accounts() {
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
                            eprintln!("inbox: serve: journaling a missed notification failed: {e}");
                        }
                    }
                }
                Err(e) => eprintln!(
                    "{}",
                    crate::one_line(
                        &format!(
                            "inbox: serve: reading Mercado Libre's missed feeds of application {app} failed: {}",
                            crate::describe(&anyhow::anyhow!("{e}"))
                        ),
                        crate::MAX_LINE
                    )
                ),
            }
        }
        if let Err(e) = shared
            .store
            .journal_prune(chrono::Utc::now() - JOURNAL_KEPT)
            .await
        {
            eprintln!("inbox: serve: pruning the journal failed: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(MISSED_FEEDS_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}
