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
pub mod work;

pub use directory::Directory;
pub use engine::{Engine, Next};
pub use pass::{Outcome, Pass};
pub use push::{push_router, serve, Accounts, Push, ServeOptions};
pub use sink::{Discard, Sink};
pub use store::{open_store, Db};

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
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
