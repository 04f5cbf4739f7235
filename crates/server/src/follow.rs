//! Following the store's accounts at runtime: the engine is given the active accounts of
//! a [`Directory`], and given them again whenever the accounts' counter moves (checked
//! every [`FOLLOW_EVERY`], on SQLite and PostgreSQL alike), so that an account added,
//! renamed, disabled or removed by any process is started or stopped within seconds,
//! without a restart. Accounts whose row did not change keep their [`Account`] (its
//! limiter, its tokens).
//!
//! [`Account`]: marketplace_inbox::Account

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use marketplace_inbox::TokenKey;
use tokio::task::JoinHandle;

use crate::directory::{Directory, Loaded};
use crate::text::describe;
use crate::Engine;

/// How often the accounts' counter is read.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// Gives `engine` the active accounts of `directory` now, then keeps them current until
/// the task returned is aborted. An account that cannot be built (its credentials
/// unreadable with `key`, say) is left out and said once.
pub async fn follow(
    engine: &Arc<Engine>,
    directory: Directory,
    key: TokenKey,
) -> Result<JoinHandle<()>> {
    let tokens = directory.tokens(&key).await?;
    let mut version = directory.version().await?;
    let mut loaded = directory.load(&key, &tokens, &Loaded::default()).await?;
    report(engine, &loaded, &Loaded::default());
    engine.follow(directory.clone(), loaded.clone());
    let engine = engine.clone();
    Ok(tokio::spawn(async move {
        let mut failing = false;
        loop {
            tokio::time::sleep(FOLLOW_EVERY).await;
            // Read before loading: a change made while loading is seen next time.
            let now = match directory.version().await {
                Ok(v) => v,
                Err(e) => {
                    if !failing {
                        engine.sink().note(&format!(
                            "inbox: reading the accounts failed: {}; the current ones run on",
                            describe(&e.into())
                        ));
                    }
                    failing = true;
                    continue;
                }
            };
            if now == version {
                continue;
            }
            match directory.load(&key, &tokens, &loaded).await {
                Ok(next) => {
                    report(&engine, &next, &loaded);
                    engine.follow(directory.clone(), next.clone());
                    loaded = next;
                    version = now;
                    failing = false;
                }
                Err(e) => {
                    if !failing {
                        engine.sink().note(&format!(
                            "inbox: reading the accounts failed: {}; the current ones run on",
                            describe(&e.into())
                        ));
                    }
                    failing = true;
                }
            }
        }
    }))
}

/// Says which accounts could not be built (each once while it stays so).
fn report(engine: &Engine, now: &Loaded, before: &Loaded) {
    for (name, why) in &now.failed {
        if !before.failed.iter().any(|(n, w)| n == name && w == why) {
            engine
                .sink()
                .note(&format!("inbox: {name}: not synced: {why}"));
        }
    }
}
