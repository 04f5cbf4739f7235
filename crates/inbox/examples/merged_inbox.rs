//! Prints a merged inbox over every configured account.
//!
//! `cargo run -p marketplace-inbox --example merged_inbox -- accounts.json` reads the
//! accounts of an `inbox --config` file; without an argument it takes them from the
//! environment (`ALLEGRO_TOKEN`, `OZON_CLIENT_ID` + `OZON_API_KEY`, …), and with nothing
//! there it starts the local sandbox, so the example always shows something.

mod support;

use futures::StreamExt;
use marketplace_inbox::{ConversationQuery, Inbox};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (config, _sandbox) = support::accounts(std::env::args_os().nth(1)).await?;
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
