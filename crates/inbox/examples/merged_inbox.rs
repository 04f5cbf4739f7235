//! Prints a merged inbox over every configured account.
//!
//! `cargo run -p marketplace-inbox --example merged_inbox -- accounts.json` reads the
//! accounts of an `inbox --config` file; without an argument it takes them from the
//! environment (`ALLEGRO_TOKEN`, `OZON_CLIENT_ID` + `OZON_API_KEY`, …), and with nothing
//! there it starts the local sandbox, so the example always shows something.

#[allow(dead_code)]
mod support;

use futures::StreamExt;
use marketplace_inbox::{ConversationQuery, Inbox};

/// Every account's unread conversations, one line each, in the order they arrive (the
/// accounts are read at once); an account's error is a line too.
pub async fn merged_inbox(inbox: &Inbox) -> Vec<String> {
    let mut lines = Vec::new();
    let mut conversations = inbox.conversations(ConversationQuery::new().unread_only(true));
    while let Some(tagged) = conversations.next().await {
        lines.push(match tagged.item {
            Ok(c) => format!(
                "{:<14} {:<60} {}",
                tagged.account,
                c.reference,
                c.unread.map_or("-".to_string(), |u| u.to_string())
            ),
            Err(e) => format!("{:<14} error: {e}", tagged.account),
        });
    }
    lines
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (config, _sandbox) = support::accounts(std::env::args_os().nth(1)).await?;
    let inbox = Inbox::from_config(&config)?;
    for line in merged_inbox(&inbox).await {
        println!("{line}");
    }
    Ok(())
}
