//! The marketplace-inbox engine as a library: what `inbox worker` and `inbox serve` run,
//! for a host to run inside its own service.
//!
//! - An [`Engine`] holds the accounts (an [`Inbox`](marketplace_inbox::Inbox)), the
//!   store and a [`Sink`] for what it does. Its reconcile step
//!   ([`Engine::reconcile`]) syncs one account in chunks, each committed with its changes
//!   handed to the sink inside the commit, and answers when the account runs next: its
//!   interval, a backoff with jitter while it fails (capped at an hour), or parked when
//!   the seller must authorise again.
//! - Two schedulers run it: [`schedule::Local`] in this process, and
//!   [`schedule::jobs::run`], graphile_worker jobs on PostgreSQL shared by any number of
//!   processes, each account under a [`lease::Lease`] (one runner per account; a lost
//!   lease cancels the work it guards).
//! - The push intake ([`push::Push`], [`push::push_router`]) journals Mercado Libre's
//!   and Ozon's notifications, answers each with the vendor's own answer, and hands the
//!   work to the scheduler; a host mounts its router in its own axum app.
//! - One token store per process ([`tokens`]): the config file, refreshed under a lock
//!   file, or PostgreSQL for a fleet.
//! - The HTTP API ([`api`]) and webhooks ([`webhooks`]): the store's event log delivered
//!   to endpoints, signed per Standard Webhooks, at least once through any crash.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use inbox_server::{push::Push, Discard, Engine};
//! use marketplace_inbox::{sync::SqliteStore, Inbox, InboxConfig};
//!
//! let inbox = Inbox::from_config(&InboxConfig::from_env()?)?;
//! let store = SqliteStore::open("inbox.db").await?;
//! let engine = Arc::new(Engine::new(Arc::new(inbox), Arc::new(store), Arc::new(Discard)));
//! let push = Push::local(engine, Some("a-long-secret".into()), std::time::Duration::from_secs(300)).await?;
//! let app = axum::Router::new().merge(push.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod api;
pub mod connect;
pub mod directory;
pub mod engine;
pub mod follow;
pub mod lease;
pub mod metrics;
pub mod pass;
pub mod push;
pub mod schedule;
pub mod sink;
pub mod store;
pub mod text;
pub mod tokens;
pub mod webhooks;
pub mod work;

pub use directory::Directory;
pub use engine::{Engine, Next};
pub use pass::{Outcome, Pass};
pub use push::{push_router, serve, Accounts, Push, ServeOptions};
pub use sink::{Discard, Sink};
pub use store::{open_store, Db};

/// Resolves once the process has received SIGTERM or SIGINT — also when the signal came
/// before this call, so that a step that was not listening at that moment (a job engine
/// restarting, say) still stops. The first call starts listening for the whole process;
/// call it early (as `inbox worker` and `inbox serve` do) so that no signal finds the
/// default action instead.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut received = shutdown::received();
    async move {
        // The sender lives for the whole process; should it be gone, nothing can stop
        // this future but the process itself.
        if received.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

mod shutdown {
    use std::sync::OnceLock;
    use tokio::sync::watch;

    /// Whether the process was asked to stop, set by a listener on a thread of its own
    /// (so it outlives any one runtime).
    pub(crate) fn received() -> watch::Receiver<bool> {
        static FLAG: OnceLock<watch::Receiver<bool>> = OnceLock::new();
        FLAG.get_or_init(listen).clone()
    }

    /// Starts the listener and returns once its handlers are installed.
    fn listen() -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let started = std::thread::Builder::new()
            .name("inbox-shutdown".into())
            .spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                runtime.block_on(async move {
                    use tokio::signal::unix::{signal, SignalKind};
                    let term = signal(SignalKind::terminate());
                    let int = signal(SignalKind::interrupt());
                    let _ = ready_tx.send(());
                    let (Ok(mut term), Ok(mut int)) = (term, int) else {
                        return std::future::pending::<()>().await;
                    };
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                    tx.send_replace(true);
                    // Keep the sender (and the handlers) for the rest of the process.
                    std::future::pending::<()>().await
                });
            });
        if started.is_ok() {
            let _ = ready_rx.recv();
        }
        rx
    }
}
