//! A fleet of sync runners on one PostgreSQL database. Each runner steps every account
//! into its own pool of the same database, all at once; a commit is a compare-and-set on
//! the account's checkpoint, so a step another runner already committed is refused as a
//! conflict, and every message is stored once however many runners there are. (In
//! production each runner is a process: `inbox worker --db postgres://…` adds job
//! scheduling, leases and token sharing on top of the same store.)
//!
//! `cargo run -p marketplace-inbox --features postgres --example fleet -- postgres://USER@HOST/DB [RUNNERS [accounts.json]]`:
//! the accounts of an `inbox --config` file, else the environment's, else the local
//! sandbox.

#[allow(dead_code)]
mod support;

use marketplace_inbox::sync::{self, Event, PostgresStore, StoreErrorKind};
use marketplace_inbox::{Error, Inbox};

/// What one runner did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Runner {
    /// Steps it committed.
    pub committed: usize,
    /// Steps refused because another runner committed first.
    pub conflicts: usize,
    /// New messages it stored.
    pub new_messages: usize,
}

/// `runners` runners, each `passes` passes over every account of `inbox` into the
/// database at `url`, all at once: what each did, and the messages stored in the end.
pub async fn fleet(
    inbox: &Inbox,
    url: &str,
    runners: usize,
    passes: usize,
) -> Result<(Vec<Runner>, u64), Error> {
    // Migrations run once, before the runners start (they are safe to race, too).
    let first = PostgresStore::connect(url, 2).await?;
    let runs = (0..runners).map(|_| async {
        let store = PostgresStore::connect(url, 2).await?;
        let mut runner = Runner::default();
        for _ in 0..passes {
            for synced in sync::sync(inbox, &store, sync::ACCOUNTS_AT_ONCE).await {
                match synced.item {
                    Ok(step) => {
                        runner.committed += 1;
                        runner.new_messages += step
                            .changes
                            .iter()
                            .filter(|c| c.event() == Event::NewMessage)
                            .count();
                    }
                    Err(Error::Store(e)) if e.kind() == StoreErrorKind::Conflict => {
                        runner.conflicts += 1
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        store.pool().close().await;
        Ok::<_, Error>(runner)
    });
    let done = futures::future::try_join_all(runs).await?;
    let stored = first.message_count(None).await?;
    first.pool().close().await;
    Ok((done, stored))
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let url = args
        .next()
        .and_then(|u| u.into_string().ok())
        .ok_or("usage: fleet postgres://USER@HOST/DB [RUNNERS [accounts.json]]")?;
    let runners = match args.next() {
        Some(n) => n.to_string_lossy().parse()?,
        None => 3,
    };
    let (config, _sandbox) = support::accounts(args.next()).await?;
    let inbox = Inbox::from_config(&config)?;
    let (done, stored) = fleet(&inbox, &url, runners, 2).await?;
    for (i, runner) in done.iter().enumerate() {
        println!(
            "runner {}: {} steps committed, {} conflicts, {} new messages",
            i + 1,
            runner.committed,
            runner.conflicts,
            runner.new_messages
        );
    }
    let found: usize = done.iter().map(|r| r.new_messages).sum();
    println!("{stored} messages stored; {found} found new by the runners together");
    Ok(())
}
