//! The engine and the push intake inside a host's own axum app: the host keeps its own
//! routes, mounts the intake's, and receives every committed change through its own
//! [`Sink`] (here it keeps the texts of new messages; a real host writes them to its own
//! tables or a queue).
//!
//! `cargo run -p inbox-server --example embedded`: against the local sandbox, listening on
//! a free port until Ctrl-C.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use inbox_server::push::Push;
use inbox_server::{Engine, Sink};
use marketplace_inbox::sync::{Change, SqliteStore};
use marketplace_inbox::{Inbox, InboxConfig};

/// The host's sink: the texts of the new messages, in the order they were committed.
#[derive(Default)]
pub struct Texts(pub Mutex<Vec<String>>);

impl Sink for Texts {
    fn changes(&self, _: &Inbox, _: &str, changes: &[Change]) -> std::io::Result<()> {
        let mut texts = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        for change in changes {
            if let Change::Message(marketplace_inbox::sync::Event::NewMessage, m) = change {
                texts.push(m.text.clone());
            }
        }
        Ok(())
    }
}

/// The engine over `config`'s accounts (a mirror in memory), its push intake under
/// `secret`, and the host's sink.
pub async fn start(config: &InboxConfig, secret: &str) -> anyhow::Result<(Push, Arc<Texts>)> {
    let inbox = Inbox::from_config(config)?;
    let store = SqliteStore::in_memory().await?;
    let texts = Arc::new(Texts::default());
    let engine = Arc::new(Engine::new(Arc::new(inbox), Arc::new(store), texts.clone()));
    let push = Push::local(engine, Some(secret.to_string()), Duration::from_secs(300)).await?;
    Ok((push, texts))
}

/// The host's app: its own route (`GET /host/texts`, the texts so far) beside the push
/// intake's.
pub fn app(push: &Push, texts: Arc<Texts>) -> axum::Router {
    let host = axum::Router::new().route(
        "/host/texts",
        get(move || {
            let texts = texts.clone();
            async move {
                let all = texts.0.lock().map(|t| t.clone()).unwrap_or_default();
                axum::Json(all)
            }
        }),
    );
    host.merge(push.router())
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sandbox = inbox_sandbox::Sandbox::start(inbox_sandbox::Config::default()).await?;
    let config = InboxConfig::from_value(sandbox.accounts_config())?;
    let (push, texts) = start(&config, "a-long-notification-secret").await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(&push, texts))
        .with_graceful_shutdown(inbox_server::shutdown_signal())
        .await?;
    push.shutdown().await;
    Ok(())
}
