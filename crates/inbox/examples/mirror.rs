//! Keeps a local mirror of every account in SQLite: one sync pass, printing what changed
//! since the previous pass on the same file.
//!
//! `cargo run -p marketplace-inbox --example mirror [-- mirror.db [accounts.json]]`: the
//! accounts of an `inbox --config` file, else the environment's, else the local sandbox.
//! Run it twice on one file: the second pass prints only what is new.

#[allow(dead_code)]
mod support;

use marketplace_inbox::sync::{self, Event, SqliteStore};
use marketplace_inbox::Inbox;

/// One pass of every account into `store`: the new messages found, per account.
pub async fn mirror(
    inbox: &Inbox,
    store: &SqliteStore,
) -> Result<Vec<(String, usize)>, marketplace_inbox::Error> {
    let mut counts = Vec::new();
    for synced in sync::sync(inbox, store, sync::ACCOUNTS_AT_ONCE).await {
        let changes = synced.item?.changes;
        let new = changes
            .iter()
            .filter(|c| c.event() == Event::NewMessage)
            .count();
        counts.push((synced.account, new));
    }
    counts.sort();
    Ok(counts)
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let db = args.next().unwrap_or_else(|| "mirror.db".into());
    let (config, _sandbox) = support::accounts(args.next()).await?;
    let inbox = Inbox::from_config(&config)?;
    let store = SqliteStore::open(&db).await?;
    for (account, new) in mirror(&inbox, &store).await? {
        println!("{account:<16} {new} new messages");
    }
    Ok(())
}
