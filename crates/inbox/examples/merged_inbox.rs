//! Prints a merged inbox over every configured account.
//!
//! `cargo run -p marketplace-inbox --example merged_inbox -- accounts.json` reads the
//! accounts of an `inbox --config` file; without an argument it takes them from the
//! environment (`ALLEGRO_TOKEN`, `OZON_CLIENT_ID` + `OZON_API_KEY`, …), and with nothing
//! there it starts the local sandbox, so the example always shows something.

use futures::StreamExt;
use marketplace_inbox::{ConversationQuery, Inbox, InboxConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = match std::env::args_os().nth(1) {
        Some(path) => InboxConfig::from_file(path)?,
        None => InboxConfig::from_env()?,
    };
    let mut _sandbox = None;
    if config.accounts.is_empty() {
        let sandbox = inbox_sandbox::Sandbox::start(inbox_sandbox::Config::default()).await?;
        config = InboxConfig::from_value(sandbox.accounts_config())?;
        _sandbox = Some(sandbox);
        println!("(no accounts configured: reading the local sandbox)");
    }
    // The ten lines from configuration to a merged inbox:
    let inbox = Inbox::from_config(&config)?;
    let mut conversations = inbox.conversations(ConversationQuery::new().unread_only(true));
    while let Some(tagged) = conversations.next().await {
        match tagged.item {
            Ok(c) => println!("{:<14} {:<60} {:?}", tagged.account, c.reference, c.unread),
            Err(e) => eprintln!("{:<14} error: {e}", tagged.account),
        }
    }
    Ok(())
}
