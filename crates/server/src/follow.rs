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

/// How often credentials that expire (Ozon's API keys) are read again.
pub const EXPIRY_EVERY: Duration = Duration::from_secs(6 * 3600);

/// How often the expiry watch looks for re-reads that fell due (besides every change of
/// the accounts).
const EXPIRY_POLL: Duration = Duration::from_secs(60);

/// How long before its credentials expire an account is said to be expiring.
pub const EXPIRING: chrono::Duration = chrono::Duration::days(14);

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
        let expiry = tokio::spawn(watch_expiry(engine.clone()));
        let _stop_with_this = AbortOnDrop(expiry);
        let mut failing = false;
        loop {
            tokio::time::sleep(FOLLOW_EVERY).await;
            // Read before loading: a change made while loading is seen next time.
            let read = match directory.version().await {
                Ok(now) if now == version => Ok(None),
                Ok(now) => directory
                    .load(&key, &tokens, &loaded)
                    .await
                    .map(|next| Some((now, next))),
                Err(e) => Err(e),
            };
            match read {
                Ok(None) => failing = false,
                Ok(Some((now, next))) => {
                    report(&engine, &next, &loaded);
                    engine.follow(directory.clone(), next.clone());
                    loaded = next;
                    version = now;
                    failing = false;
                }
                // Said once per outage.
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

/// Aborts a task when dropped (the follower's own tasks end with it).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads when each followed account's credentials expire, where the vendor says (Ozon's
/// API keys): when an account is loaded, then every [`EXPIRY_EVERY`]. The expiry is
/// stored with the account; one expiring within [`EXPIRING`] is said (once per
/// reading), one expired turns `reauthorize`. Woken by every change of the accounts, and
/// every minute.
async fn watch_expiry(engine: Arc<Engine>) {
    let mut checked: std::collections::HashMap<(String, i64), tokio::time::Instant> =
        std::collections::HashMap::new();
    let mut changes = engine.accounts_changed();
    loop {
        if let Some((directory, loaded)) = engine.followed() {
            // Only the rows loaded now are remembered.
            let current: std::collections::HashSet<(&str, i64)> = loaded
                .accounts()
                .map(|(s, _)| (s.id.as_str(), s.version))
                .collect();
            checked.retain(|(id, version), _| current.contains(&(id.as_str(), *version)));
            for (stored, account) in loaded.accounts() {
                if stored.marketplace != marketplace_inbox::Marketplace::Ozon {
                    continue;
                }
                let key = (stored.id.clone(), stored.version);
                if checked
                    .get(&key)
                    .is_some_and(|at| at.elapsed() < EXPIRY_EVERY)
                {
                    continue;
                }
                checked.insert(key, tokio::time::Instant::now());
                let Ok(Some(at)) = account.credentials_expiry().await else {
                    continue;
                };
                let _ = directory.set_credentials_expiry(&stored.id, Some(at)).await;
                let name = &stored.name;
                let now = chrono::Utc::now();
                if at <= now {
                    let marked = directory
                        .set_state(
                            &stored.id,
                            marketplace_inbox::sync::AccountState::Reauthorize,
                        )
                        .await;
                    if marked.is_ok_and(|changed| changed) {
                        engine.sink().note(&format!(
                            "inbox: {name}: its API key expired on {}; marked reauthorize (connect it again with a new key)",
                            at.format("%Y-%m-%d %H:%M UTC")
                        ));
                    }
                } else if at - now < EXPIRING {
                    engine.sink().note(&format!(
                        "inbox: {name}: its API key expires on {} (in {} days); connect it again with a new key before then",
                        at.format("%Y-%m-%d %H:%M UTC"),
                        (at - now).num_days()
                    ));
                }
            }
        }
        // Again when the accounts change (a new row is read at once), else within a
        // minute of a re-read falling due.
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep(EXPIRY_POLL) => {}
        }
    }
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
